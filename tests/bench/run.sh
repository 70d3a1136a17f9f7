#!/usr/bin/env bash
# tests/bench/run.sh BUILD - what `make bench` does: the four kiln-load
# scenarios at full size against the Kiln dev stack (deploy/dev/run.sh;
# c2s nodes on 5222 and 5322, plus KILN_PORT_OFFSET; KILN_VAR). Sizes can be changed through the
# environment: KILN_BENCH_USERS (20000 connections), KILN_BENCH_PAIRS
# (1000), KILN_BENCH_RATES, KILN_BENCH_OCCUPANTS (200), KILN_BENCH_PROCS
# (2), KILN_BENCH_ROSTER (100 contacts) and KILN_BENCH_PRES_USERS (505) for
# presence. For the comparison with Prosody, ejabberd and jabberd2:
# tests/bench/compare.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-build}" && pwd)
load=$build/bin/kiln-load
users=${KILN_BENCH_USERS:-20000}
pairs=${KILN_BENCH_PAIRS:-1000}
rates=${KILN_BENCH_RATES:-1000,5000,10000,20000,50000,100000}
occupants=${KILN_BENCH_OCCUPANTS:-200}
procs=${KILN_BENCH_PROCS:-2}
roster=${KILN_BENCH_ROSTER:-100}
pres_users=${KILN_BENCH_PRES_USERS:-505}
[ -x "$load" ] || { echo "bench: $load not built" >&2; exit 2; }
if [ ! -x "$build/bin/kiln-c2s" ]; then
    echo "bench: kiln: not built yet (no $build/bin/kiln-c2s): nothing to measure"
    exit 1
fi
"$top/deploy/dev/run.sh" "$build" >/dev/null || exit 1
var=${KILN_VAR:-$top/var/dev}
conf=${KILN_CONF:-$var/kiln.conf}
off=${KILN_PORT_OFFSET:-0}
max=$users
[ $((2 * pairs)) -gt $max ] && max=$((2 * pairs))
[ "$occupants" -gt $max ] && max=$occupants
echo "bench: provisioning $max users"
"$top/tests/bench/provision" kiln --kilnctl "$build/bin/kilnctl" \
    --config "$conf" --users "$max" || exit 1
echo "bench: provisioning $pres_users users with $roster contacts each"
"$top/tests/bench/provision" kiln --kilnctl "$build/bin/kilnctl" \
    --config "$conf" --users "$pres_users" --user-fmt 'pres%d' \
    --roster "$roster" || exit 1
common=(--port $((5222 + off)),$((5322 + off)) --procs "$procs" --label kiln
        --server-pidfile-glob "$var/run/*.pid" --scram-cache "$var/scram-keys")
# Unmeasured warm-up: fill the key file, so the measured logins are not
# bounded by the load tool's own PBKDF2 on the same cores (a fleet of real
# clients caches these keys too).
echo "bench: warm-up logins (SCRAM key file $var/scram-keys)"
"$load" connections "${common[@]}" --users "$max" --hold 1 >/dev/null || exit 1
"$load" connections "${common[@]}" --users "$pres_users" --user-fmt 'pres%d' \
    --hold 1 >/dev/null || exit 1
# Fresh daemons for the measured runs: after the warm-up their allocators
# would reuse freed memory and memory per session would read about 0.
"$top/deploy/dev/run.sh" --stop "$build" >/dev/null
"$top/deploy/dev/run.sh" "$build" >/dev/null || exit 1
rc=0
"$load" connections "${common[@]}" --users "$users" --hold 30 || rc=1
"$load" throughput "${common[@]}" --pairs "$pairs" --rates "$rates" \
    --step-seconds 10 || rc=1
"$load" presence "${common[@]}" --users "$pres_users" --user-fmt 'pres%d' \
    --roster "$roster" --rounds 1 --drain 30 || rc=1
"$load" muc "${common[@]}" --occupants "$occupants" \
    --rates 10,50,100,200,500,1000 --step-seconds 10 || rc=1
exit $rc
