#!/usr/bin/env bash
# Run every unit test binary in the given folder; print each result and a
# closing summary line. Exit non-zero if any failed.
set -u
dir=${1:?usage: run-unit.sh BUILD/tests}
pass=0; fail=0; failed=()
for t in "$dir"/test_*; do
    [ -x "$t" ] || continue
    echo "== $(basename "$t")"
    if "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed+=("$(basename "$t")"); fi
done
echo
[ ${#failed[@]} -gt 0 ] && echo "unit: failed programs: ${failed[*]}"
echo "unit programs: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
