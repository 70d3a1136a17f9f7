#!/usr/bin/env bash
# deploy/deps.sh - install the Debian 12 packages Kiln needs (make deps).
#
# Idempotent: only missing packages are installed (and those whose
# installed build lacks a required feature, see features.sh), and
# `apt-get update` runs only when something is missing. As root it
# installs; otherwise it prints the exact sudo line and fails.
set -euo pipefail

PKGS=(
    # build
    gcc make pkg-config clang-format libev-dev libexpat1-dev libzmq3-dev libpq-dev
    libhiredis-dev libssl-dev libidn-dev libconfig-dev libsystemd-dev
    check libsubunit-dev uthash-dev libhttp-parser-dev libwslay-dev
    # libFuzzer targets (make fuzz, make fuzz-check in make test): clang
    # and its runtime (libclang_rt.fuzzer, the sanitizers)
    clang libclang-rt-14-dev
    # run
    postgresql redis-server openssl
    # tests
    python3 python3-slixmpp python3-pytest postgresql-client redis-tools
    iproute2 procps
    # TLS scan of the c2s ports (test_29), the soak's RSS plot (make soak)
    testssl.sh gnuplot-nox
    # packaging and systemd (test_23, test_24, make systemd-test):
    # dpkg-deb/dpkg-shlibdeps/dpkg-buildflags, lintian, systemd-analyze,
    # debootstrap + systemd-nspawn for the booted container
    dpkg-dev lintian systemd debootstrap systemd-container
    # allocators for `make MALLOC=jemalloc|mimalloc` and tests/bench/scale
    # --malloc (issue 15)
    libjemalloc-dev libmimalloc-dev
    # metrics (test_27): promtool checks /metrics, a private prometheus
    # scrapes the test cluster
    prometheus curl time
    # real clients besides slixmpp (test_15, test_16)
    go-sendxmpp profanity tmux
    # gateways and calls (test_22, test_23): IRC server, IRC gateway
    # (XEP-0114 component), TURN server with turnutils_uclient
    ngircd biboumi coturn
    # browser tests of the web chat (Debian's Chromium, driven by
    # playwright-core from `make web`; no browser download)
    chromium
)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

# npm fetches the web client (`make web`). Node.js may come from Debian
# (nodejs + npm) or from NodeSource (nodejs, npm included): ask for the
# command, not a package name.
if ! command -v npm >/dev/null 2>&1; then
    missing+=(nodejs npm)
fi

# Present is not enough: an older Debian build of a -dev package may lack
# what the build uses (features.sh probes it). Required features that are
# missing name their packages, which are then upgraded like missing ones.
features() { "$(dirname "$0")/features.sh" check; }

if [ ${#missing[@]} -eq 0 ]; then
    if out=$(features); then
        [ -n "$out" ] && echo "$out"
        echo "deps: all ${#PKGS[@]} packages present"
        exit 0
    fi
    echo "$out"
    missing=($(echo "$out" | sed -n 's/^upgrade: //p'))
fi

if [ "$(id -u)" != 0 ]; then
    echo "deps: missing or too old: ${missing[*]}" >&2
    echo "deps: run this, then try again:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Debian starts the system-wide services on install; Kiln runs its own
# private ones, so leave the system's as they were configured.
if ! out=$(features); then
    echo "$out" >&2
    echo "deps: the installed packages still lack what the build needs" >&2
    exit 1
fi
[ -n "$out" ] && echo "$out"
echo "deps: done"
