#!/usr/bin/env bash
# run.sh - runs test binaries, each in its own process with a timeout.
#
# Each binary gets its own folder in $YARD_TEST_ROOT (YARD_TEST_DIR); after
# it exits, passes, fails or is killed by the timeout, every server PID it
# recorded there (<name>.pid) is stopped, so nothing outlives the run.
# Output per binary is capped; the last line is "N passed, N failed" (test
# cases, as cmocka counts them; a binary that crashes counts as one failure).
#
# Environment: YARD_TEST_TIMEOUT (seconds per binary, default 600),
# YARD_TEST_TIMEOUT_SCALE (multiplier, e.g. 3 under sanitizers),
# YARD_TEST_FILTER (substring of binary names to run), YARD_TEST_KEEP=1
# (keep folders for inspection).
set -u

timeout_s=${YARD_TEST_TIMEOUT:-600}
scale=${YARD_TEST_TIMEOUT_SCALE:-1}
timeout_s=$((timeout_s * scale))
max_lines=${YARD_TEST_MAX_LINES:-150}

root=$(mktemp -d "${TMPDIR:-/tmp}/yard-tests.XXXXXX")
chmod 755 "$root"
export YARD_TEST_ROOT=$root
export YARD_SRC_DIR=${YARD_SRC_DIR:-$(pwd)}

stop_leftovers() {
    local dir=$1 pidfile pid
    for pidfile in "$dir"/*.pid; do
        [ -e "$pidfile" ] || continue
        pid=$(cat "$pidfile" 2>/dev/null)
        [ -n "$pid" ] || continue
        if kill -0 "$pid" 2>/dev/null; then
            echo "run.sh: stopping leftover $(basename "$pidfile" .pid) (pid $pid)"
            kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
            for _ in 1 2 3 4 5 6 7 8 9 10; do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.3
            done
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
        fi
    done
}

cleanup() {
    local d
    for d in "$root"/*/; do
        [ -d "$d" ] && stop_leftovers "$d"
    done
    [ -n "${YARD_TEST_KEEP:-}" ] || rm -rf "$root"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
bin_failed=()
start_all=$(date +%s)
for t in "$@"; do
    name=$(basename "$t")
    [ -n "${YARD_TEST_FILTER:-}" ] && [[ $name != *"$YARD_TEST_FILTER"* ]] && continue
    dir="$root/$name"
    mkdir -p "$dir"
    chmod 755 "$dir"
    out="$root/$name.out"
    t0=$(date +%s.%N)
    YARD_TEST_DIR=$dir timeout -k 10 "$timeout_s" "$t" >"$out" 2>&1
    rc=$?
    t1=$(date +%s.%N)
    stop_leftovers "$dir"
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
    p=$(grep -ho '\[  PASSED  \] [0-9]* test' "$out" | awk '{s += $4} END {print s + 0}')
    f=$(grep -ho '\[  FAILED  \] [0-9]* test' "$out" | awk '{s += $4} END {print s + 0}')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1 # crashed, timed out, or failed outside cmocka's count
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$rc" -eq 0 ]; then
        echo "PASS $name: $p tests in ${secs}s"
    else
        why="exit $rc"
        [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && why="timed out after ${timeout_s}s"
        echo "FAIL $name: $why after ${secs}s; last $max_lines lines of its output:"
        tail -n "$max_lines" "$out" | sed 's/^/    /'
        bin_failed+=("$name")
    fi
done
end_all=$(date +%s)
echo "----"
echo "wall time $((end_all - start_all))s; failed binaries: ${bin_failed[*]:-none}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
