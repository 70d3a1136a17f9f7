#!/usr/bin/env bash
# tests/bench/path_ab.sh BUILD_A [BUILD_B] - the one-to-one message path
# of two builds side by side in one run (issue 15), with the XEP-0313
# archive on and off (issue 11).
#
# For each repetition, for each build (A then B), for each archive mode
# (KILN_AB_MAM, default "true false"): the five Kiln daemons of that build
# start on one private PostgreSQL + Redis (deploy/dev/stack), and
# kiln-load's throughput scenario runs once per offered rate
# (KILN_AB_RATES, default 2000,10000,40000), each a separate kiln-load
# run, so that the server CPU of each rate can be split by process and
# into user and kernel time from /proc/PID/stat (before and after the
# run; PostgreSQL = the postmaster and its backends, Redis included in
# "other"). One line per run:
#
#   AB build=A mam=true rate=2000 rep=1 delivered=... p50_ms=... p99_ms=...
#      lost=... us_per_msg=... user_us=... sys_us=... router=... c2s=...
#      presenced=... pg=... other=...      (per-process figures: us/msg)
#
# and at the end the medians per (build, mam, rate). Builds are
# directories with bin/ (e.g. build, or a copy of an older build's bin/
# under var/); each run's STEPCPU lines and the command line of every
# measured pid stay in $KILN_VAR/runs/. Private stack: KILN_VAR (default var/bench-ab),
# KILN_PG_PORT, KILN_PORT_OFFSET. Sizes: KILN_AB_PAIRS (200),
# KILN_AB_REPEAT (3), KILN_AB_STEP (5 s per rate), KILN_AB_EXPIRE_MS
# (presenced.mam_expire_interval_ms, default 3600000). Builds with different
# schemas: KILN_AB_SQL_A / KILN_AB_SQL_B, a SQL file applied (psql) before
# each start of that build (e.g. tests/bench/mam_schema_0022.sql to run a
# build from before migration 0023 against its schema).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
bA=$(cd "${1:-build}" && pwd)
bB=$(cd "${2:-${1:-build}}" && pwd)
export KILN_VAR=${KILN_VAR:-$top/var/bench-ab}
export KILN_BIN=$bA/bin
pairs=${KILN_AB_PAIRS:-200}
rates=${KILN_AB_RATES:-2000,10000,40000}
reps=${KILN_AB_REPEAT:-3}
step=${KILN_AB_STEP:-5}
modes=${KILN_AB_MAM:-true false}
off=${KILN_PORT_OFFSET:-0}
stack=$top/deploy/dev/stack
load=$bB/bin/kiln-load
"$stack" up >/dev/null || exit 1
eval "$("$stack" env)"
RUN=$KILN_VAR/run LOG=$KILN_VAR/log
mkdir -p "$RUN" "$LOG"
PROCS=("router kiln-router" "presenced kiln-presenced" "mucd kiln-mucd"
       "c2s-a kiln-c2s --node c2s-a" "c2s-b kiln-c2s --node c2s-b")
TICK=$(getconf CLK_TCK)
out=$KILN_VAR/ab-results.txt
: >"$out"

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

start_kiln() { # bindir conf
    local bin=$1 conf=$2
    for p in "${PROCS[@]}"; do
        set -- $p
        local name=$1 exe=$2; shift 2
        local start=$(($(wc -l <"$LOG/$name.log" 2>/dev/null || echo 0) + 1))
        nohup "$bin/$exe" -c "$conf" "$@" >>"$LOG/$name.log" 2>&1 &
        echo $! >"$RUN/$name.pid"
        for _ in $(seq 300); do
            tail -n +"$start" "$LOG/$name.log" | grep -q 'ready:' && break
            sleep 0.1
        done
    done
}

pg_pids() {
    local pm; pm=$(head -1 "$(readlink -f "$KILN_VAR/pg")/data/postmaster.pid")
    echo "$pm $(pgrep -P "$pm" | tr '\n' ' ')"
}

redis_pid() { pgrep -f "redis-server.*$KILN_VAR" | head -1; }

# "name pid" of everything measured
pid_map() {
    for p in router presenced mucd c2s-a c2s-b; do
        echo "$p $(cat "$RUN/$p.pid")"
    done
    for pid in $(pg_pids); do echo "pg $pid"; done
    echo "redis $(redis_pid)"
}

max=$((2 * pairs))
"$top/tests/bench/provision" kiln --kilnctl "$bA/bin/kilnctl" \
    --config "$KILN_CONF" --users "$max" >/dev/null || exit 1
# The retention sweep at presenced's default period (1 h), not the test
# config's 500 ms (which exists so that the tests see retention act: a
# sweep probes every account's rows); KILN_AB_EXPIRE_MS to change it.
expire=${KILN_AB_EXPIRE_MS:-3600000}
for mode in true false; do
    sed -e "s/^presenced = {/presenced = {\n  mam_enabled = $mode;/" \
        -e "s/mam_expire_interval_ms = [0-9]*;/mam_expire_interval_ms = $expire;/" \
        "$KILN_CONF" >"$KILN_VAR/kiln-mam-$mode.conf"
done
ports=$((5222 + off)),$((5322 + off))
start_kiln "$bA/bin" "$KILN_VAR/kiln-mam-false.conf"
"$load" connections --port "$ports" --users "$max" \
    --scram-cache "$KILN_VAR/scram-keys" --hold 1 >/dev/null
stop_kiln

one_run() { # label bin mam rate rep
    local label=$1 bin=$2 mam=$3 rate=$4 rep=$5
    pid_map >"$KILN_VAR/pids"
    local all; all=$(awk '{print $2}' "$KILN_VAR/pids" | paste -sd,)
    "$load" throughput --port "$ports" --users "$max" \
        --scram-cache "$KILN_VAR/scram-keys" --pairs "$pairs" \
        --rates "$rate" --step-seconds "$step" --label "$label" \
        --server-pids "$all" >"$KILN_VAR/run.out" 2>"$KILN_VAR/run.err"
    cat "$KILN_VAR/run.out" >>"$KILN_VAR/ab-raw.txt"
    # per-pid detail: STEPCPU lines and what each pid was
    mkdir -p "$KILN_VAR/runs"
    local keep=$KILN_VAR/runs/$label-$mam-$rate-$rep
    cp "$KILN_VAR/run.err" "$keep.err"
    ps -o pid=,args= -p "$all" >"$keep.ps" 2>/dev/null
    python3 "$top/tests/bench/path_ab_row.py" "$KILN_VAR/pids" \
        "$KILN_VAR/run.out" "$KILN_VAR/run.err" "$label" "$mam" "$rate" \
        "$rep" "$step" | tee -a "$out"
}

for rep in $(seq "$reps"); do
    for which in A B; do
        if [ $which = A ]; then bin=$bA/bin; else bin=$bB/bin; fi
        for mam in $modes; do
            psql "$KILN_PG" -XAtqc "truncate mam_messages" >/dev/null
            schema=KILN_AB_SQL_$which
            if [ -n "${!schema:-}" ]; then
                psql "$KILN_PG" -XAtq -v ON_ERROR_STOP=1 -f "${!schema}" \
                    >/dev/null || exit 1
            fi
            start_kiln "$bin" "$KILN_VAR/kiln-mam-$mam.conf"
            for rate in ${rates//,/ }; do
                sleep 1
                one_run "$which" "$bin" "$mam" "$rate" "$rep"
            done
            stop_kiln
        done
    done
done
"$stack" down >/dev/null
echo "== medians (us per delivered message; p99 in ms)"
python3 - "$out" <<'EOF'
import sys, statistics, collections
rows = collections.defaultdict(list)
failed = []
for line in open(sys.argv[1]):
    kv = dict(w.split("=", 1) for w in line.split()[1:])
    if kv.get("delivered_ps") in (None, "-"):  # the run failed (see runs/)
        failed.append("%s %s %s rep %s" % (kv["build"], kv["mam"], kv["rate"],
                                          kv["rep"]))
        continue
    rows[(kv["build"], kv["mam"], int(kv["rate"]))].append(kv)
keys = ["delivered_ps", "p99_ms", "us_per_msg", "user_us", "sys_us", "router",
        "c2s", "presenced", "pg", "other"]
print("build mam rate " + " ".join(keys))
for k in sorted(rows, key=lambda k: (k[2], k[1], k[0])):
    med = []
    for f in keys:
        vals = [float(r[f]) for r in rows[k] if r.get(f) not in (None, "None")]
        med.append("%.1f" % statistics.median(vals) if vals else "-")
    print("%s %s %d %s   (runs: %s)" % (k[0], k[1], k[2], " ".join(med),
          " / ".join(r["us_per_msg"] for r in rows[k])))
if failed:
    print("failed runs (left out): " + ", ".join(failed))
EOF
