#!/usr/bin/env bash
# tests/bench/muc_fanout.sh BUILD - issue 15's group fan-out: one room of
# KILN_FO_OCCUPANTS (1000) occupants spread over three c2s nodes (c2s-a,
# c2s-b and c2s-c of the dev stack), occupants posting at rising total
# rates (KILN_FO_RATES); kiln-load's muc scenario reports deliveries/s
# (messages x occupants), p50/p99 latency and lost deliveries, and the
# server CPU of the Kiln daemons (router, mucd, the three c2s nodes), from
# which the cost per delivery follows. Repeats KILN_FO_REPEAT (3) times
# with fresh daemons. Stack: deploy/dev/run.sh (KILN_VAR, KILN_PORT_OFFSET,
# KILN_PG_PORT as for it); users user1..N are created here if missing.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-build}" && pwd)
load=$build/bin/kiln-load
var=${KILN_VAR:-$top/var/dev}
off=${KILN_PORT_OFFSET:-0}
occ=${KILN_FO_OCCUPANTS:-1000}
rates=${KILN_FO_RATES:-100,200,500,1000,1500}
reps=${KILN_FO_REPEAT:-3}
step=${KILN_FO_STEP:-5}
export KILN_VAR=$var

start() {
    "$top/deploy/dev/run.sh" --stop "$build" >/dev/null 2>&1
    pkill -f "kiln-c2s .*--node c2s-c" 2>/dev/null
    "$top/deploy/dev/run.sh" "$build" >/dev/null || exit 1
    eval "$("$top/deploy/dev/stack" env)"
    conf=$KILN_CONF
    nohup "$build/bin/kiln-c2s" -c "$conf" --node c2s-c \
        >>"$var/log/c2s-c.log" 2>&1 &
    echo $! >"$var/run/c2s-c.pid"
    for _ in $(seq 100); do
        ss -ltn | grep -q ":$((5422 + off)) " && break
        sleep 0.1
    done
    pids=$(cat "$var/run/router.pid"),$(cat "$var/run/mucd.pid")
    for n in a b c; do pids=$pids,$(cat "$var/run/c2s-$n.pid"); done
}

start
have=$("$build/bin/kilnctl" -c "$conf" user list 2>/dev/null | wc -l)
if [ "$have" -lt "$occ" ]; then
    "$top/tests/bench/provision" kiln --users "$occ" \
        --kilnctl "$build/bin/kilnctl" --config "$conf" >/dev/null ||
        exit 1
fi
ports=$((5222 + off)),$((5322 + off)),$((5422 + off))
for r in $(seq "$reps"); do
    [ "$r" -gt 1 ] && start
    echo "== run $r: $occ occupants over c2s-a, c2s-b, c2s-c; rates $rates msgs/s"
    "$load" muc --port "$ports" --occupants "$occ" --procs 2 \
        --room "fanout$r@conference.localhost" --rates "$rates" \
        --step-seconds "$step" --scram-cache "$var/scram-keys" \
        --p99-limit-ms 100 --server-pids "$pids" |
        grep -E '^ +[0-9]|highest|per delivery|RESULT'
done
"$top/deploy/dev/run.sh" --stop "$build" >/dev/null 2>&1
kill "$(cat "$var/run/c2s-c.pid")" 2>/dev/null
exit 0
