#!/usr/bin/env bash
# Resume, signals, and kill -9 at random moments: every interrupted run must
# end with the losses and weights of a run that was never stopped, bit for bit.
set -u
cd "$(dirname "$0")/.."
TEST_NAME=test_resume
source tests/lib.sh

resume_setup

t0=$EPOCHREALTIME
$TRAIN "$T/tiny.cfg" out_dir="$T/straight" >"$T/straight.log" 2>&1 || fail straight_run "$(tail -2 "$T/straight.log")"
ms=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", (b - a) * 1000 }') # the run's length, for kill times
final="step_00000060/model.safetensors"

# resume from an earlier checkpoint of the same run
cp -r "$T/straight" "$T/rewound"
rm -rf "$T/rewound/step_00000060" && echo step_00000058 >"$T/rewound/latest"
$TRAIN "$T/tiny.cfg" out_dir="$T/rewound" >"$T/rewound.log" 2>&1
if grep -q "resumed from .*step_00000058 at step 58" "$T/rewound.log" && cmp -s <(losses "$T/straight") <(losses "$T/rewound") &&
   cmp -s "$T/straight/$final" "$T/rewound/$final"; then pass resume_is_bit_identical
else fail resume_is_bit_identical "$(head -3 "$T/rewound.log")"; fi

# dropout draws its masks from (seed, step, micro-batch) alone: a run resumed
# on another thread count draws the same ones, and ends the same, bit for bit
d="dropout=0.2 grad_accum=2 max_steps=12 eval_interval=6"
$TRAIN "$T/tiny.cfg" out_dir="$T/dropout" $d threads=2 >"$T/dropout.log" 2>&1 || fail dropout_run "$(tail -2 "$T/dropout.log")"
cp -r "$T/dropout" "$T/dropout_r"
rm -rf "$T/dropout_r/step_00000012" && echo step_00000010 >"$T/dropout_r/latest"
$TRAIN "$T/tiny.cfg" out_dir="$T/dropout_r" $d threads=1 >"$T/dropout_r.log" 2>&1
$TRAIN "$T/tiny.cfg" out_dir="$T/nodrop" ${d/dropout=0.2/dropout=0} max_steps=1 >"$T/nodrop.log" 2>&1
# evaluation never drops: the run's last val loss is eval's (which has no dropout) on its last checkpoint
$TRAIN eval "$T/dropout" eval_steps=2 >"$T/dropout_eval.log" 2>&1
v12=$(sed -nE 's/^step +12 \| val loss ([0-9.]+)$/\1/p' "$T/dropout.log")
if grep -q "at step 10" "$T/dropout_r.log" && [ -n "$v12" ] && grep -q "val loss $v12," "$T/dropout_eval.log" && cmp -s <(losses "$T/dropout") <(losses "$T/dropout_r") &&
   cmp -s "$T/dropout/step_00000012/model.safetensors" "$T/dropout_r/step_00000012/model.safetensors" &&
   [ "$(sed -n 3p "$T/dropout/metrics.csv" | cut -d, -f2)" != "$(sed -n 3p "$T/nodrop/metrics.csv" | cut -d, -f2)" ] &&
   [ "$(sed -n 2p "$T/dropout/metrics.csv" | cut -d, -f3)" = "$(sed -n 2p "$T/nodrop/metrics.csv" | cut -d, -f3)" ]; then
    pass dropout_resumes_bit_identical_on_any_thread_count
else fail dropout_resumes_bit_identical_on_any_thread_count "$(tail -2 "$T/dropout_r.log")"; fi

# kill -9 at random moments (mid-step, mid-checkpoint), resume each time:
# after 3% to 35% of an uninterrupted run's time. A run that ends before
# three kills (the machine faster now than when the straight run was timed,
# by other work then) starts over with the times halved. Slower than then
# (other work now), each run gets less done: up to 200 runs (a CI run
# beside another test suite needed more than 60; alone, about ten).
kills=0 attempts=0 done=0
while [ $done -eq 0 ] && [ $attempts -lt 200 ]; do
    attempts=$((attempts + 1))
    $TRAIN "$T/tiny.cfg" out_dir="$T/killed" >>"$T/killed.log" 2>&1 &
    pid=$!
    sleep "$(awk -v ms="$ms" -v r=$RANDOM 'BEGIN { printf "%.3f", ms * (0.03 + 0.32 * r / 32768) / 1000 }')"
    if kill -9 $pid 2>/dev/null; then kills=$((kills + 1)); fi
    wait $pid 2>/dev/null
    if [ -d "$T/killed/step_00000060" ]; then
        if [ $kills -ge 3 ]; then done=1; else rm -rf "$T/killed"; kills=0; ms=$((ms / 2)); fi
    fi
done
if [ $done -eq 1 ] && [ $kills -ge 3 ] && cmp -s <(losses "$T/straight") <(losses "$T/killed") &&
   cmp -s "$T/straight/$final" "$T/killed/$final"; then pass kill9_anywhere_then_resume
else fail kill9_anywhere_then_resume "finished $done after $kills kills in $attempts runs; metrics differ?"; fi
echo "   ($kills kill -9s survived in $attempts runs)"
ls -a "$T/killed" | grep -q "^\.tmp_" && fail no_temporaries_left "$(ls -a "$T/killed")" || pass no_temporaries_left

# SIGTERM: finish the step, checkpoint, exit 0; a later run resumes to the same end
cat "$T/tiny.cfg" >"$T/slow.cfg"
printf 'n_layer = 4\nn_embd = 256\nn_head = 4\nbatch_size = 8\nseq_len = 64\nmax_steps = 400\ncheckpoint_interval = 0\n' >>"$T/slow.cfg"
$TRAIN "$T/slow.cfg" out_dir="$T/term" >"$T/term.log" 2>&1 &
pid=$!
sleep 1.5
kill -TERM $pid
wait $pid
rc=$?
step=$(sed -n 's/^step_0*\([0-9]*\)$/\1/p' "$T/term/latest" 2>/dev/null)
if [ $rc -eq 0 ] && grep -q "stopped by a signal after step $step" "$T/term.log" && [ -n "$step" ] && [ "$step" -lt 400 ]; then
    pass sigterm_checkpoints_and_exits_0
else fail sigterm_checkpoints_and_exits_0 "exit $rc, latest '$step': $(tail -2 "$T/term.log")"; fi
# a second signal quits at once
$TRAIN "$T/slow.cfg" out_dir="$T/int2" >"$T/int2.log" 2>&1 &
pid=$!
sleep 1.5
kill -INT $pid; sleep 0.05; kill -INT $pid   # a step takes ~200 ms here
wait $pid
rc=$?
[ $rc -eq 130 ] && [ ! -e "$T/int2/latest" ] && pass second_ctrl_c_quits_at_once || fail second_ctrl_c_quits_at_once "exit $rc"

# what may and may not change on resume
$TRAIN "$T/tiny.cfg" out_dir="$T/straight" max_steps=62 lr=1e-3 >"$T/more.log" 2>&1
grep -q "resume: lr changed from '0.003' to '0.001'" "$T/more.log" && grep -qE "^step +62/62" "$T/more.log" &&
    pass resume_allows_lr_and_max_steps || fail resume_allows_lr_and_max_steps "$(head -3 "$T/more.log")"
expect_error resume_refuses_new_shape "n_embd is '32' there but '64' now" $TRAIN "$T/tiny.cfg" out_dir="$T/straight" n_embd=64
expect_error resume_refuses_new_data_order "batch_size is '4' there but '8' now" $TRAIN "$T/tiny.cfg" out_dir="$T/straight" batch_size=8
expect_error resume_never_refuses_nonempty "resume=never refuses to overwrite" $TRAIN "$T/tiny.cfg" out_dir="$T/straight" resume=never
# a damaged latest checkpoint: an error naming the file, nothing overwritten
cp -r "$T/straight" "$T/damaged"
latest=$(cat "$T/damaged/latest")
printf 'X' | dd of="$T/damaged/$latest/model.safetensors" bs=1 seek=5000 conv=notrunc 2>/dev/null
before=$(ls -R "$T/damaged" | md5sum)
expect_error damaged_checkpoint_is_refused "$latest/model.safetensors: CRC-32" $TRAIN "$T/tiny.cfg" out_dir="$T/damaged" max_steps=70
[ "$(ls -R "$T/damaged" | md5sum)" = "$before" ] && pass damaged_checkpoint_left_alone || fail damaged_checkpoint_left_alone "files changed"
# resume=PATH and init_from
$TRAIN "$T/tiny.cfg" out_dir="$T/frompath" resume="$T/straight/step_00000060" max_steps=61 >"$T/fp.log" 2>&1
grep -q "resumed from $T/straight/step_00000060 at step 60" "$T/fp.log" && [ -d "$T/frompath/step_00000061" ] &&
    pass resume_from_path || fail resume_from_path "$(head -2 "$T/fp.log")"
$TRAIN "$T/tiny.cfg" out_dir="$T/init" init_from="$T/straight" n_layer=1 max_steps=2 >"$T/init.log" 2>&1
grep -q "the model shape comes from" "$T/init.log" && grep -qE "^model: 2 layers" "$T/init.log" &&
    pass init_from_takes_shape_and_weights || fail init_from_takes_shape_and_weights "$(head -3 "$T/init.log")"
# the same command again resumes that run (its shape is the checkpoint's, not the config file's)
$TRAIN "$T/tiny.cfg" out_dir="$T/init" init_from="$T/straight" n_layer=1 max_steps=3 >"$T/init2.log" 2>&1
grep -q "resumed from $T/init/step_00000002 at step 2" "$T/init2.log" && [ -d "$T/init/step_00000003" ] &&
    pass init_from_run_resumes || fail init_from_run_resumes "$(tail -2 "$T/init2.log")"
# attention keys on the command line convert the weights to another kind: its own tensors start from the seed
conv="$TRAIN $T/tiny.cfg out_dir=$T/conv init_from=$T/straight attention=polysketch attn_block=16 sketch_size=8"
$conv max_steps=2 >"$T/conv.log" 2>&1
grep -q "the attention tensors qk_norm.weight, qk_norm.bias, q_norm_local.weight, .*sketch.0.g2 (every layer)" "$T/conv.log" &&
    grep -qE "^model: 2 layers.*polysketch attention" "$T/conv.log" && [ -d "$T/conv/step_00000002" ] &&
    pass init_from_converts_attention || fail init_from_converts_attention "$(head -4 "$T/conv.log")"
$conv max_steps=3 >"$T/conv2.log" 2>&1
grep -q "resumed from $T/conv/step_00000002 at step 2" "$T/conv2.log" && pass converted_run_resumes ||
    fail converted_run_resumes "$(tail -2 "$T/conv2.log")"
# another sketch size: the sketches (of another shape) start from the seed, the LayerNorms load
$TRAIN "$T/tiny.cfg" out_dir="$T/resize" init_from="$T/conv" sketch_size=4 max_steps=1 >"$T/resize.log" 2>&1
grep -q "the attention tensors sketch.0.g1, sketch.0.g2 (every layer): they start" "$T/resize.log" && [ -d "$T/resize/step_00000001" ] &&
    pass init_from_new_sketch_size || fail init_from_new_sketch_size "$(head -4 "$T/resize.log")"
# without them the source's kind is kept, whatever the config file says
{ cat "$T/tiny.cfg"; echo "attention = softmax"; } >"$T/soft.cfg"
$TRAIN "$T/tiny.cfg" out_dir="$T/keep" init_from="$T/conv" attention=softmax max_steps=1 >"$T/drop.log" 2>&1
$TRAIN "$T/soft.cfg" out_dir="$T/keep2" init_from="$T/conv" max_steps=1 >"$T/keep.log" 2>&1
grep -qE "^model: .*polysketch attention" "$T/keep.log" && ! grep -q "no attention tensors" "$T/keep.log" &&
    grep -q "attention tensors qk_norm.weight, .* have no place in a softmax model" "$T/drop.log" &&
    pass init_from_keeps_source_kind || fail init_from_keeps_source_kind "$(head -3 "$T/keep.log") / $(head -3 "$T/drop.log")"
# keep_best: each new lowest validation loss is checkpointed and `best`
# names it (the lowest in metrics.csv), kept when keep_checkpoints prunes;
# CKPT may be that file; a resume points `best` again from state.json
head -c 30000 assets/moby_dick.txt >"$T/kb.txt"
$TRAIN prepare --source pg19 "$T/kb.txt" --out "$T/kbd" --val-fraction 0.2 >/dev/null 2>&1
cat "$T/tiny.cfg" >"$T/best.cfg"
printf 'n_embd = 64\nbatch_size = 8\nseq_len = 64\nlr = 1e-2\nwarmup_steps = 2\nschedule = constant\nmax_steps = 30\neval_interval = 5\neval_steps = 2\ncheckpoint_interval = 0\nkeep_checkpoints = 1\nkeep_best = 1\n' >>"$T/best.cfg"
printf 'train_data = %s\nval_data = %s\n' "$T/kbd/train_*.bin" "$T/kbd/val_*.bin" >>"$T/best.cfg"
$TRAIN "$T/best.cfg" out_dir="$T/best" >"$T/best.log" 2>&1
lowest=$(awk -F, 'NR > 2 && $3 != "" { if (min == "" || $3 < min) { min = $3; s = $1 } } END { printf "step_%08d", s }' "$T/best/metrics.csv")
val=$(awk -F, -v s="$lowest" 'NR > 2 && $3 != "" && sprintf("step_%08d", $1) == s { printf "%.4f", $3 }' "$T/best/metrics.csv")
$TRAIN eval "$T/best/best" eval_steps=2 >"$T/best_eval.log" 2>&1
if [ "$(cat "$T/best/best")" = "$lowest" ] && [ -f "$T/best/$lowest/model.safetensors" ] &&
   [ "$(ls -d "$T"/best/step_* | wc -l)" -le 2 ] && [ -d "$T/best/step_00000030" ] &&
   grep -q "val loss $val," "$T/best_eval.log"; then pass keep_best_names_lowest_val_loss
else fail keep_best_names_lowest_val_loss "best $(cat "$T/best/best" 2>/dev/null), lowest $lowest ($val): $(cat "$T/best_eval.log")"; fi
rm "$T/best/best"
$TRAIN "$T/best.cfg" out_dir="$T/best" max_steps=31 >"$T/best2.log" 2>&1
[ "$(cat "$T/best/best" 2>/dev/null)" = "$lowest" ] && [ -d "$T/best/$lowest" ] && pass keep_best_survives_resume ||
    fail keep_best_survives_resume "best $(cat "$T/best/best" 2>/dev/null), want $lowest: $(tail -2 "$T/best2.log")"
# patience: the run stops at the first evaluation that makes `patience`
# without a new best (found from the run above, whose steps up to there it
# repeats bit for bit), with a final checkpoint; run again, it trains nothing
read -r want wbest < <(awk -F, 'NR > 2 && $3 != "" { if (b == "" || $3 < min) { min = $3; b = $1 } else if (int($1 / 5) - int(b / 5) >= 1) { printf "%d step_%08d\n", $1, b; exit } }' "$T/best/metrics.csv")
$TRAIN "$T/best.cfg" out_dir="$T/patient" patience=1 >"$T/patient.log" 2>&1
$TRAIN "$T/best.cfg" out_dir="$T/patient" patience=1 >"$T/patient2.log" 2>&1
if [ -n "$want" ] && grep -q "early stop after step $want: no new best in 1 evaluation (" "$T/patient.log" &&
   [ "$(cat "$T/patient/latest")" = "$(printf step_%08d "$want")" ] && [ "$(cat "$T/patient/best")" = "$wbest" ] &&
   cmp -s <(head -n $((want + 2)) "$T/best/metrics.csv" | cut -d, -f1-5) <(cut -d, -f1-5 "$T/patient/metrics.csv") &&
   grep -q "stopped early before" "$T/patient2.log" && ! grep -qE "^step +[0-9]+/" "$T/patient2.log"; then
    pass patience_stops_early_and_stays_stopped
else fail patience_stops_early_and_stays_stopped "want step '$want': $(grep -E "early|stopped" "$T/patient.log" "$T/patient2.log")"; fi
exit 0
