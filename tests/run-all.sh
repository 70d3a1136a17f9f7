#!/usr/bin/env bash
# tests/run-all.sh BUILD - what `make test` runs after building BUILD (the
# ASan/UBSan variant): a fresh private stack in var/test, the C unit tests,
# the integration tests (pytest), then the stack down again, even when
# tests fail. Ends with each runner's own summary; exit non-zero if any
# failed. var/test is kept when tests failed (its logs say why), and
# with KILN_TEST_KEEP=1 always.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:?usage: run-all.sh BUILD}" && pwd)
stack=$top/deploy/dev/stack

export KILN_VAR=${KILN_TEST_VAR:-$top/var/test}
export KILN_BIN=$build/bin
export KILN_PG_PORT=${KILN_PG_PORT:-15433}  # apart from make run's 15432
export KILN_PORT_OFFSET=${KILN_PORT_OFFSET:-20000}  # and its XMPP ports
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# A failed run keeps var/test: its logs (log/*.log, sanitizer reports
# included), unit.log and pytest.log are what explains the failure. The
# next run purges it first.
rc=1
cleanup() {
    if [ "${KILN_TEST_KEEP:-0}" = 1 ]; then
        "$stack" down >/dev/null 2>&1
        echo "run-all: kept $KILN_VAR (KILN_TEST_KEEP=1)"
    elif [ "$rc" -ne 0 ]; then
        "$stack" down >/dev/null 2>&1
        echo "run-all: tests failed: kept $KILN_VAR (process logs in $KILN_VAR/log," \
            "unit.log, pytest.log)"
    else
        "$stack" down --purge >/dev/null 2>&1
    fi
}
trap cleanup EXIT

"$stack" down --purge >/dev/null 2>&1
"$stack" up || { echo "run-all: the private stack did not come up"; exit 1; }
eval "$("$stack" env)"
export KILN_TEST_PG="$KILN_PG"
export KILN_TEST_REDIS="unix:$KILN_REDIS_SOCK"

echo
echo "==== unit tests ($build/tests)"
"$top/tests/run-unit.sh" "$build/tests" >"$KILN_VAR/unit.log" 2>&1
unit_rc=$?
cat "$KILN_VAR/unit.log"

echo
echo "==== integration tests (pytest)"
cd "$top/tests/integration" &&
    /usr/bin/python3 -m pytest -v -p no:cacheprovider --tb=short ${KILN_PYTEST_ARGS:-.} 2>&1 |
    tee "$KILN_VAR/pytest.log"
it_rc=${PIPESTATUS[0]}
[ $it_rc -eq 5 ] && echo "run-all: pytest collected no tests"

echo
echo "==== summary"
read -r uc uf ue < <(grep -hE '^[0-9]+%: Checks' "$KILN_VAR/unit.log" |
    awk '{c+=$3; f+=$5; e+=$7} END {print c+0, f+0, e+0}')
final=$(grep -E '^=+ .*[0-9]+ (passed|failed|error).* in [0-9.]+s' "$KILN_VAR/pytest.log" | tail -n 1)
ip=$(echo "$final" | grep -oE '[0-9]+ passed' | cut -d' ' -f1)
ifl=$(echo "$final" | grep -oE '[0-9]+ (failed|errors?)' | awk '{s+=$1} END {print s+0}')
[ $it_rc -ne 0 ] && [ "${ifl:-0}" -eq 0 ] && ifl=1
[ $unit_rc -ne 0 ] && [ $((uf + ue)) -eq 0 ] && ue=1
echo "unit (Check): $uc checks, $uf failures, $ue errors; $(tail -n 1 "$KILN_VAR/unit.log")"
echo "integration (pytest): $(grep -E '^=+ .*[0-9]+ (passed|failed|error).* in [0-9.]+s' "$KILN_VAR/pytest.log" | tail -n 1 | tr -d '=')"
[ $unit_rc -eq 0 ] && [ $it_rc -eq 0 ] && rc=0 || rc=1
echo "tests: $((uc - uf - ue + ${ip:-0})) passed, $((uf + ue + ${ifl:-0})) failed"
exit $rc
