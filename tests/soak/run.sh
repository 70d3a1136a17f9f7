#!/usr/bin/env bash
# tests/soak/run.sh BUILD - what `make soak` runs: a private PostgreSQL and
# Redis in var/soak (deploy/dev/stack; KILN_PG_PORT default 15434, port
# offset 21000, apart from make run's and make test's), the five Kiln
# processes from BUILD/bin, the churn of tests/soak/soak.py for
# SOAK_SECONDS (3600), then everything down again. Results in
# var/soak/out: soak.csv (RSS, RssAnon, open fds per process every 10 s),
# soak-rss.png (gnuplot), soak.log and summary.json. Exit 1 when a message
# was lost or duplicated, a sanitizer report appeared, or a Kiln process's
# RSS grew more than SOAK_RSS_GROWTH_MB after the warm-up.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?usage: run.sh BUILD}" && pwd)
stack=$top/deploy/dev/stack

export KILN_VAR=${KILN_SOAK_VAR:-$top/var/soak}
export KILN_BIN=$build/bin
export KILN_PG_PORT=${KILN_PG_PORT:-15434}
export KILN_PORT_OFFSET=${KILN_PORT_OFFSET:-21000}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:quarantine_size_mb=32}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
out=$KILN_VAR/out

"$stack" down --purge >/dev/null 2>&1
trap '"$stack" down >/dev/null 2>&1' EXIT
"$stack" up >/dev/null || { echo "soak: the private stack did not come up"; exit 1; }
eval "$("$stack" env)"
# Group traffic fills the absent members' offline storage; a quota bounce
# is correct but not what the soak measures.
sed -i 's/^presenced = {/presenced = {\n  offline_quota_bytes = 67108864;/' "$KILN_CONF"
rm -rf "$out" "$KILN_VAR/log"
/usr/bin/python3 "$top/tests/soak/main.py" "$out"
rc=$?
echo "soak: results in $out (soak.csv, soak-rss.png, soak.log, summary.json)"
exit $rc
