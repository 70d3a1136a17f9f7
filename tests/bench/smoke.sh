#!/usr/bin/env bash
# tests/bench/smoke.sh BUILD PORT [PORT...] - kiln-load's selftest, then
# every scenario once (connections twice: the second run with the SCRAM
# key file the first one wrote), at a small size, against a running
# server; exits non-zero when any scenario fails or loses a message.
# `make test` calls it once Kiln's servers exist.
#
# Users user1..user20 (password = name) must exist; when BUILD/bin/kilnctl
# and $KILN_CONF (default var/dev/kiln.conf) exist they are created here.
# The presence scenario needs rosters (pres1..pres22 in cliques of 11),
# provisioned here too for Kiln; against another server set
# KILN_BENCH_ROSTERS=1 once they exist there.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: smoke.sh BUILD PORT [PORT...]}
shift
[ $# -ge 1 ] || { echo "usage: smoke.sh BUILD PORT [PORT...]" >&2; exit 2; }
ports=$(IFS=,; echo "$*")
load=$build/bin/kiln-load
[ -x "$load" ] || { echo "smoke: $load not built" >&2; exit 2; }
conf=${KILN_CONF:-$top/var/dev/kiln.conf}
if [ -x "$build/bin/kilnctl" ] && [ -f "$conf" ]; then
    "$top/tests/bench/provision" kiln --kilnctl "$build/bin/kilnctl" \
        --config "$conf" --users 20 >/dev/null || exit 1
    "$top/tests/bench/provision" kiln --kilnctl "$build/bin/kilnctl" \
        --config "$conf" --users 22 --user-fmt 'pres%d' --roster 10 \
        >/dev/null || exit 1
    KILN_BENCH_ROSTERS=1
fi
common=(--port "$ports" --login-timeout 20)
pidglob=${KILN_PIDFILE_GLOB:-}
[ -n "$pidglob" ] && common+=(--server-pidfile-glob "$pidglob")

fail=0
step() {
    local name=$1; shift
    echo "smoke: $name: $load $*"
    if timeout 120 "$load" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"; then
        grep '^RESULT' "$tmp/$name.out"
    else
        echo "smoke: $name FAILED (exit $?):"
        grep -v '^kiln-load  ' "$tmp/$name.err" | tail -5
        grep '^RESULT' "$tmp/$name.out"
        fail=1
    fi
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "smoke: selftest: $load selftest"
"$load" selftest || fail=1
# The SCRAM key file: the second run finds every user's keys in it.
step connections connections "${common[@]}" --users 20 --hold 1 \
    --scram-cache "$tmp/scram.cache"
step connections-cached connections "${common[@]}" --users 20 --hold 1 \
    --scram-cache "$tmp/scram.cache"
# One line per user: the second run found all 20 and added none.
lines=$(wc -l <"$tmp/scram.cache" 2>/dev/null || echo 0)
if [ "$lines" != 20 ]; then
    echo "smoke: SCRAM key file has $lines lines, expected 20"
    fail=1
fi
step throughput throughput "${common[@]}" --pairs 10 --rates 200 \
    --step-seconds 2 --drain 5
step muc muc "${common[@]}" --occupants 20 --rates 20 --step-seconds 2 \
    --drain 5
if [ "${KILN_BENCH_ROSTERS:-0}" = 1 ]; then
    step presence presence "${common[@]}" --users 22 --user-fmt 'pres%d' \
        --roster 10 --rounds 1 --drain 10 --status-rate 20 --step-seconds 2
else
    echo "smoke: presence: not run (no kilnctl and config here to give" \
         "pres1..pres22 their rosters; KILN_BENCH_ROSTERS=1 once they exist)"
fi
exit $fail
