#!/usr/bin/env bash
# tests/bench/web_bench.sh BUILD - issue 12's web figures beside TCP's, on
# a stack of deploy/dev/run.sh (KILN_VAR, KILN_PORT_OFFSET, KILN_PG_PORT
# as for it): for each transport (tcp = STARTTLS, ws = WebSocket on the
# HTTP ports, wss = WebSocket on the HTTPS ports) fresh daemons, then
# kiln-load connections (logins/s; c2s RssAnon per idle session after a
# hold long enough for the idle sweep to park parsers) and throughput
# (one-to-one messages/s, p99); then BOSH requests/s (bosh_bench.py).
# Users user1..N must exist (tests/bench/provision kiln ...); the SCRAM
# key file is filled by an unmeasured warm-up. Sizes: KILN_WB_USERS
# (1000), KILN_WB_PAIRS (200), KILN_WB_RATES, KILN_WB_BOSH_SESSIONS (200),
# KILN_WB_BOSH_RATES.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-build}" && pwd)
load=$build/bin/kiln-load
var=${KILN_VAR:-$top/var/dev}
off=${KILN_PORT_OFFSET:-0}
users=${KILN_WB_USERS:-1000}
pairs=${KILN_WB_PAIRS:-200}
rates=${KILN_WB_RATES:-2000,10000,20000,40000}
bsess=${KILN_WB_BOSH_SESSIONS:-200}
brates=${KILN_WB_BOSH_RATES:-1000,2000,4000,8000,16000}
restart() {
    "$top/deploy/dev/run.sh" --stop "$build" >/dev/null 2>&1
    "$top/deploy/dev/run.sh" "$build" >/dev/null || exit 1
    c2s=$(cat "$var/run/c2s-a.pid"),$(cat "$var/run/c2s-b.pid")
}
common=(--procs 2 --scram-cache "$var/scram-keys")
"$load" connections --port $((5222 + off)),$((5322 + off)) "${common[@]}" \
    --users "$users" --hold 1 >/dev/null || exit 1 # warm-up (SCRAM keys)
for t in tcp ws wss; do
    case $t in
    tcp) tp=(--port $((5222 + off)),$((5322 + off))) ;;
    ws) tp=(--ws --port $((5280 + off)),$((5380 + off))) ;;
    wss) tp=(--ws --direct-tls --port $((5281 + off)),$((5381 + off))) ;;
    esac
    restart
    echo "== $t: connections"
    "$load" connections "${tp[@]}" "${common[@]}" --users "$users" --hold 15 \
        --server-pids "$c2s" | grep -E 'per second|per session|RESULT'
    echo "== $t: throughput"
    "$load" throughput "${tp[@]}" "${common[@]}" --pairs "$pairs" \
        --rates "$rates" --step-seconds 3 --server-pids "$c2s" |
        grep -E '^ +[0-9]|highest|RESULT'
done
echo "== bosh"
"$top/tests/bench/bosh_bench.py" --port $((5280 + off)) --sessions "$bsess" \
    --rates "$brates" --step 5 --procs 2
