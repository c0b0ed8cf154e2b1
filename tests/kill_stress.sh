#!/usr/bin/env bash
# kill -9 at random moments, many times: the CI test (test_resume.sh) kills
# a run three times; this one goes on until KILLS kills (default 100) have
# been survived. Rounds of: a fresh run of 60 steps with a checkpoint every
# 2, killed after 3 % to 35 % of an uninterrupted run's time and resumed,
# again and again until it finishes; each round must end with the losses and
# the weights of the uninterrupted run, bit for bit, and leave no temporary
# directory. Not part of `make test` (minutes); run it by hand:
#   tests/kill_stress.sh [KILLS] [key=value ...]   e.g. attention=polysketch
# Prints one line per round and ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
TEST_NAME=kill_stress
source tests/lib.sh
want=100
case ${1:-} in [0-9]*) want=$1; shift ;; esac
resume_setup
[ -x "$TRAIN" ] || { echo "FAIL kill_stress: $TRAIN is not built (make)"; echo "0 passed, 1 failed"; exit 1; }
t0=$EPOCHREALTIME
$TRAIN "$T/tiny.cfg" "$@" out_dir="$T/straight" >"$T/straight.log" 2>&1 ||
    { echo "FAIL straight_run: $(tail -2 "$T/straight.log")"; echo "0 passed, 1 failed"; exit 1; }
ms=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", (b - a) * 1000 }')
final="step_00000060/model.safetensors"
total=0 rounds=0 passed=0 failed=0
while [ $total -lt "$want" ]; do
    rounds=$((rounds + 1)) kills=0 runs=0
    rm -rf "$T/killed"
    while [ ! -d "$T/killed/step_00000060" ] && [ $runs -lt 500 ]; do
        runs=$((runs + 1))
        $TRAIN "$T/tiny.cfg" "$@" out_dir="$T/killed" >>"$T/killed.log" 2>&1 &
        pid=$!
        sleep "$(awk -v ms="$ms" -v r=$RANDOM 'BEGIN { printf "%.3f", ms * (0.03 + 0.32 * r / 32768) / 1000 }')"
        if kill -9 $pid 2>/dev/null; then kills=$((kills + 1)); fi
        wait $pid 2>/dev/null
    done
    total=$((total + kills))
    if [ -d "$T/killed/step_00000060" ] && cmp -s <(losses "$T/straight") <(losses "$T/killed") &&
       cmp -s "$T/straight/$final" "$T/killed/$final" && ! ls -a "$T/killed" | grep -q "^\.tmp_"; then
        passed=$((passed + 1))
        echo "PASS round_$rounds ($kills kill -9s in $runs runs, $total in all)"
    else
        failed=$((failed + 1))
        echo "FAIL round_$rounds: after $kills kill -9s in $runs runs the run differs from the uninterrupted one"
        cp -r "$T/killed" "/tmp/kill_stress_round_$rounds" && echo "   (kept in /tmp/kill_stress_round_$rounds)"
    fi
done
echo "$total kill -9s survived in $rounds rounds"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
