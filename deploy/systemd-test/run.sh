#!/usr/bin/env bash
# deploy/systemd-test/run.sh - `make systemd-test`: the package under a
# real systemd (tests/systemd/test_nspawn.py), in a Debian 12 tree booted
# with systemd-nspawn, with the package as it is now (make deb). Root only. The tree is debootstrapped once into
# $KILN_SYSTEMD_ROOT (default var/systemd-root) and reused.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=${KILN_SYSTEMD_ROOT:-$PWD/var/systemd-root}
export KILN_SYSTEMD_ROOT=$root
deploy/systemd-test/rootfs.sh "$root"
deb=$(deploy/deb/build.sh | tail -n 1)
export KILN_DEB=$PWD/$deb
exec /usr/bin/python3 -m pytest -p no:cacheprovider -x -v ${KILN_PYTEST_ARGS:-} tests/systemd
