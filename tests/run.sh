#!/usr/bin/env bash
# Runs every test program (build/tests/test_*) and shell test (tests/test_*.sh),
# counts their PASS/FAIL lines, and ends with "N passed, N failed".
# A program that exits non-zero without reporting a failure (a crash) counts
# as one failure. Exit status: 0 only if nothing failed.
set -u
cd "$(dirname "$0")/.."
build=${BUILD:-build}
export TRAIN_ASSETS=${TRAIN_ASSETS:-$PWD/assets}
pass=0 fail=0
if [ ! -f assets/encoder.json ] || [ ! -f assets/moby_dick.txt ]; then
    echo "FAIL assets: assets/ is incomplete; run scripts/setup.sh first"
    echo "0 passed, 1 failed"
    exit 1
fi
for t in "$build"/tests/test_* tests/test_*.sh; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    echo "== $name"
    start=$EPOCHREALTIME
    out=$(BUILD="$build" "$t" 2>&1)
    rc=$?
    echo "$out"
    p=$(grep -c '^PASS ' <<<"$out")
    f=$(grep -c '^FAIL ' <<<"$out")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $name (exit status $rc)"
        f=1
    fi
    awk -v n="$name" -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "   (%s: %.1f s)\n", n, b - a }'
    pass=$((pass + p)) fail=$((fail + f))
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
