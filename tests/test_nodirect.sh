#!/usr/bin/env bash
# The checkpoint writer on a file system that refuses O_DIRECT (at open, or
# only at the first write): it must fall back to buffered writes and produce
# the same files, which a resume then reads back. The refusal comes from an
# LD_PRELOAD shim (tests/shim/nodirect.c), since every local file system here
# accepts O_DIRECT.
set -u
cd "$(dirname "$0")/.."
TEST_NAME=test_nodirect
source tests/lib.sh
shim="$PWD/${BUILD:-build}/nodirect.so"
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 # the shim before the sanitizer build's runtime

tiny_setup 100000
cat >>"$T/tiny.cfg" <<CFG
max_steps = 2
eval_interval = 0
checkpoint_interval = 2
sample_tokens = 0
CFG
$TRAIN "$T/tiny.cfg" out_dir="$T/direct" >"$T/direct.log" 2>&1 || fail direct_run "$(tail -2 "$T/direct.log")"
for how in open write; do
    NODIRECT=$how LD_PRELOAD="$shim" $TRAIN "$T/tiny.cfg" out_dir="$T/$how" >"$T/$how.log" 2>&1
    rc=$?
    same=1
    for f in "$T"/direct/step_00000002/*.safetensors; do
        cmp -s "$f" "$T/$how/step_00000002/$(basename "$f")" || same=0
    done
    if [ $rc -ne 0 ]; then fail "refused_at_$how" "exit status $rc: $(tail -2 "$T/$how.log")"
    elif ! grep -q "nodirect: refused O_DIRECT in $how" "$T/$how.log"; then fail "refused_at_$how" "the shim never refused (was O_DIRECT used?)"
    elif [ $same -ne 1 ]; then fail "refused_at_$how" "checkpoint files differ from those written with O_DIRECT"
    else pass "refused_at_$how"; fi
done
# the fallback's checkpoint resumes (state.json's sizes and CRC-32s are checked on load)
NODIRECT=write LD_PRELOAD="$shim" $TRAIN "$T/tiny.cfg" out_dir="$T/write" max_steps=3 >"$T/resume.log" 2>&1
if grep -q "resumed from .*step_00000002 at step 2" "$T/resume.log" && [ -f "$T/write/step_00000003/model.safetensors" ]; then
    pass resume_after_fallback
else
    fail resume_after_fallback "$(tail -3 "$T/resume.log")"
fi
