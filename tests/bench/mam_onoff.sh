#!/usr/bin/env bash
# tests/bench/mam_onoff.sh BUILD - one-to-one throughput with the XEP-0313
# archive on and off, interleaved in one run (issue 11): for each
# repetition, the Kiln processes start with presenced.mam_enabled = true,
# then false (router restarted too: it archives once an archiver has
# registered), and kiln-load's throughput scenario runs against each.
# Server CPU is Kiln's five daemons plus the PostgreSQL backends; with the
# archive on, the script also waits until both parties' rows of every
# delivered message are in mam_messages and reports the archive's rows/s
# (rows written / time from the run's start until the archive caught up).
#
# Private stack: KILN_VAR (default var/bench-mam), KILN_PG_PORT,
# KILN_PORT_OFFSET as for the tests. Sizes: KILN_BENCH_PAIRS (200),
# KILN_BENCH_RATES (5000,10000,20000), KILN_BENCH_REPEAT (2),
# KILN_BENCH_STEP (5 s per rate).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-build}" && pwd)
export KILN_BIN=$build/bin
export KILN_VAR=${KILN_VAR:-$top/var/bench-mam}
load=$build/bin/kiln-load
pairs=${KILN_BENCH_PAIRS:-200}
rates=${KILN_BENCH_RATES:-5000,10000,20000}
reps=${KILN_BENCH_REPEAT:-2}
step=${KILN_BENCH_STEP:-5}
off=${KILN_PORT_OFFSET:-0}
stack=$top/deploy/dev/stack
"$stack" up >/dev/null || exit 1
eval "$("$stack" env)"
RUN=$KILN_VAR/run LOG=$KILN_VAR/log
mkdir -p "$RUN" "$LOG"
PROCS=("router kiln-router" "presenced kiln-presenced" "mucd kiln-mucd"
       "c2s-a kiln-c2s --node c2s-a" "c2s-b kiln-c2s --node c2s-b")

stop_kiln() {
    for ((i = ${#PROCS[@]} - 1; i >= 0; i--)); do
        set -- ${PROCS[$i]}
        local f=$RUN/$1.pid
        if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then
            local pid; pid=$(cat "$f")
            kill "$pid"
            while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        fi
        rm -f "$f"
    done
}

start_kiln() { # conf
    for p in "${PROCS[@]}"; do
        set -- $p
        local name=$1 bin=$2; shift 2
        local start=$(($(wc -l <"$LOG/$name.log" 2>/dev/null || echo 0) + 1))
        nohup "$KILN_BIN/$bin" -c "$CONF_NOW" "$@" >>"$LOG/$name.log" 2>&1 &
        echo $! >"$RUN/$name.pid"
        for _ in $(seq 300); do
            tail -n +"$start" "$LOG/$name.log" | grep -q 'ready:' && break
            sleep 0.1
        done
    done
}

sql() { psql "$KILN_PG" -XAtqc "$1"; }

server_pids() {
    local pids
    pids=$(cat "$RUN"/*.pid | paste -sd,)
    local pm; pm=$(head -1 "$KILN_VAR/pg/data/postmaster.pid" 2>/dev/null ||
                   head -1 "$(readlink -f "$KILN_VAR/pg")/data/postmaster.pid")
    local backends; backends=$(pgrep -P "$pm" | paste -sd,)
    echo "$pids,$pm,$backends"
}

max=$((2 * pairs))
"$top/tests/bench/provision" kiln --kilnctl "$build/bin/kilnctl" \
    --config "$KILN_CONF" --users "$max" >/dev/null || exit 1
for mode in true false; do
    sed "s/^presenced = {/presenced = {\n  mam_enabled = $mode;/" \
        "$KILN_CONF" >"$KILN_VAR/kiln-mam-$mode.conf"
done
common=(--port $((5222 + off)),$((5322 + off)) --users "$max"
        --scram-cache "$KILN_VAR/scram-keys" --pairs "$pairs" --rates "$rates"
        --step-seconds "$step")
CONF_NOW=$KILN_VAR/kiln-mam-false.conf
start_kiln
"$load" connections --port $((5222 + off)),$((5322 + off)) --users "$max" \
    --scram-cache "$KILN_VAR/scram-keys" --hold 1 >/dev/null
stop_kiln
for rep in $(seq "$reps"); do
    for mode in true false; do
        CONF_NOW=$KILN_VAR/kiln-mam-$mode.conf
        start_kiln
        sql "truncate mam_messages" >/dev/null
        t0=$(date +%s.%N)
        out=$("$load" throughput "${common[@]}" --label "mam-$mode" \
              --server-pids "$(server_pids)" 2>/dev/null)
        line=$(grep '^RESULT' <<<"$out")
        echo "== rep $rep, archive $mode"
        echo "$out"
        if [ "$mode" = true ]; then
            # each delivered message: one row per party
            sent=$(sed -n 's/.* sent=\([0-9]*\).*/\1/p' <<<"$line")
            lost=$(sed -n 's/.* lost=\([0-9]*\).*/\1/p' <<<"$line")
            want=$((2 * (${sent:-0} - ${lost:-0})))
            for _ in $(seq 600); do
                n=$(sql "select count(*) from mam_messages")
                [ "$n" -ge "$want" ] && break
                sleep 0.1
            done
            t1=$(date +%s.%N)
            echo "rep $rep archive rows: $n of $want in $(echo "$t1 - $t0" | bc) s:" \
                "$(echo "$n / ($t1 - $t0)" | bc) rows/s"
        fi
        stop_kiln
    done
done
"$stack" down >/dev/null
