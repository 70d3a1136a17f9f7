#!/bin/sh
# tests/fuzz/campaign.sh - the long libFuzzer campaign (`make fuzz`).
#
#   tests/fuzz/campaign.sh SECONDS JOBS TARGET...
#
# Runs build/fuzz/bin/fuzz_TARGET for SECONDS of wall time each, JOBS
# targets at a time (JOBS=1: one after another, as before; JOBS=0 or more
# than the targets: all at once), growing build/fuzz/corpus/TARGET from
# the committed seeds in tests/fuzz/corpus/TARGET. FUZZ_NICE (default 0)
# lowers their priority. At the end one line per target: executions,
# CPU seconds it got (user+system), coverage (edges, features), corpus
# size before and after, and crashes (reproducers in build/fuzz/artifacts/).
# Exit status 1 if any target found a crash, leak, UB or timeout.
set -u
secs=$1; jobs=$2; shift 2
[ "$jobs" -gt 0 ] 2>/dev/null || jobs=$#
out=build/fuzz/campaign
mkdir -p build/fuzz/artifacts "$out"
opts="-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1"

run_one() {
    t=$1
    dict=tests/fuzz/$t.dict; [ -f "$dict" ] || dict=tests/fuzz/xmpp.dict
    case $t in env|jid) dict= ;; esac
    seeds=tests/fuzz/corpus/$t; [ -d "$seeds" ] || seeds=
    mkdir -p build/fuzz/corpus/$t
    ls build/fuzz/corpus/$t | wc -l >"$out/$t.before"
    /usr/bin/time -f "%U %S" -o "$out/$t.cpu" nice -n "${FUZZ_NICE:-0}" \
        build/fuzz/bin/fuzz_$t $opts -max_total_time="$secs" \
        -artifact_prefix=build/fuzz/artifacts/$t- ${dict:+-dict=$dict} \
        build/fuzz/corpus/$t $seeds >"$out/$t.log" 2>&1
    echo $? >"$out/$t.rc"
}

running=0
for t in "$@"; do
    echo "== fuzz_$t ($secs s)"
    run_one "$t" &
    running=$((running + 1))
    if [ $running -ge "$jobs" ]; then wait; running=0; fi
done
wait

rc=0
printf '%-12s %12s %8s %8s %12s %10s %s\n' target runs cpu_s cov ft corpus result
for t in "$@"; do
    log=$out/$t.log
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | cut -d' ' -f2)
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -n 1 | cut -d' ' -f2)
    cpu=$(awk '{ printf "%.0f", $1 + $2 }' "$out/$t.cpu" 2>/dev/null)
    after=$(ls build/fuzz/corpus/$t | wc -l)
    if [ "$(cat "$out/$t.rc")" = 0 ]; then res=clean; else
        res="FAILED: $(grep -m1 -oE 'ERROR: [A-Za-z]+: [^ ]+|ERROR: libFuzzer: [a-z-]+' "$log") (log $log)"
        rc=1
    fi
    printf '%-12s %12s %8s %8s %12s %10s %s\n' "$t" "${runs:-?}" "${cpu:-?}" \
        "${cov:-?}" "${ft:-?}" "$(cat "$out/$t.before")->$after" "$res"
done
exit $rc
