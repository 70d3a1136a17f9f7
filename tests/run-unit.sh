#!/usr/bin/env bash
# Run the unit test program of every tests/unit/test_*.c from the given folder; print each result and a
# closing summary line. Exit non-zero if any failed.
set -u
dir=${1:?usage: run-unit.sh BUILD/tests}
pass=0; fail=0; failed=()
# One program per tests/unit/test_*.c: a binary left in the folder by a
# source since removed is not run (it would count for nothing), and a
# missing binary fails.
src=$(cd "$(dirname "$0")/unit" && pwd)
for s in "$src"/test_*.c; do
    t=$dir/$(basename "$s" .c)
    echo "== $(basename "$t")"
    if [ ! -x "$t" ]; then
        echo "missing: $t (make unit-bin)"
        fail=$((fail + 1)); failed+=("$(basename "$t")"); continue
    fi
    if "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed+=("$(basename "$t")"); fi
done
echo
[ ${#failed[@]} -gt 0 ] && echo "unit: failed programs: ${failed[*]}"
echo "unit programs: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
