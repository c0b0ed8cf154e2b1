#!/usr/bin/env bash
# Training through the command line on a tiny model: the loss falls, logs and
# metrics.csv are written, runs are deterministic, dump_step writes a
# readable file, and bad configs are errors naming the file, line or key.
set -u
cd "$(dirname "$0")/.."
TEST_NAME=test_train
source tests/lib.sh

tiny_setup 200000
cat >>"$T/tiny.cfg" <<CFG
lr = 3e-3
warmup_steps = 5
max_steps = 40
eval_interval = 20
eval_steps = 4
out_dir = $T/run
CFG

# a run: the loss falls, logs and metrics
$TRAIN "$T/tiny.cfg" >"$T/log1" 2>&1 || fail tiny_run "exit status $?: $(tail -3 "$T/log1")"
first=$(grep -m1 -E '^step +1/' "$T/log1" | sed -E 's/.*loss ([0-9.]+).*/\1/')
v0=$(grep -E '^step +0 \| val' "$T/log1" | sed -E 's/.*val loss ([0-9.]+).*/\1/')
v40=$(grep -E '^step +40 \| val' "$T/log1" | sed -E 's/.*val loss ([0-9.]+).*/\1/')
if [ -n "$v0" ] && [ -n "$v40" ] && awk -v a="$v0" -v b="$v40" 'BEGIN { exit !(b < a - 2) }'; then
    pass training_lowers_val_loss
else fail training_lowers_val_loss "val loss $v0 -> $v40 (first train loss $first)"; fi
grep -qE '^step +40/40 \| loss [0-9.]+ \| lr [0-9.e+-]+ \| norm [0-9.]+ \| [0-9]+ ms \| [0-9]+ tok/s \| MFU [0-9.]+% \| ETA' "$T/log1" &&
    pass log_line_format || fail log_line_format "$(grep -m1 -E '^step +40/' "$T/log1")"
# eval_steps beyond val_data's windows: each window counted once, as ./train eval counts them
$TRAIN "$T/tiny.cfg" eval_steps=1000 max_steps=1 eval_interval=1 out_dir="$T/evalall" >"$T/evalall.log" 2>&1
v1=$(sed -nE 's/^step +1 \| val loss ([0-9.]+)$/\1/p' "$T/evalall.log")
if grep -qE '^eval: val_data holds [0-9]+ windows .*\(eval_steps 1000\)' "$T/evalall.log" && [ -n "$v1" ] &&
   $TRAIN eval "$T/evalall" | grep -q "val loss $v1,"; then pass eval_steps_past_the_val_data
else fail eval_steps_past_the_val_data "$(grep -E 'eval:|val loss' "$T/evalall.log" | head -3)"; fi
csv="$T/run/metrics.csv"
if [ "$(head -1 "$csv")" = "step,loss,val_loss,lr,grad_norm,ms,tok_per_s" ] && [ "$(wc -l <"$csv")" -eq 42 ] &&
   [ "$(awk -F, 'NR > 1 && $3 != "" {n++} END {print n}' "$csv")" -eq 3 ]; then pass metrics_csv
else fail metrics_csv "$(head -3 "$csv")"; fi
grep -q "^n_embd = 32$" "$T/run/config.cfg" && pass resolved_config_written || fail resolved_config_written "no config.cfg"
if command -v gnuplot >/dev/null; then
    scripts/plot.sh "$T/run" "$T/loss.png" >/dev/null 2>"$T/plot.err" && [ "$(head -c 4 "$T/loss.png" | od -An -c | tr -d ' ')" = "211PNG" ] &&
        pass plot_writes_png || fail plot_writes_png "$(cat "$T/plot.err")"
else
    fail plot_writes_png "gnuplot is missing: scripts/setup.sh installs gnuplot-nox"
fi
expect_error plot_needs_metrics "metrics.csv not found" scripts/plot.sh "$T/nowhere"

# determinism: same seed and threads, same losses bit for bit; another seed differs
$TRAIN "$T/tiny.cfg" out_dir="$T/run2" >/dev/null 2>&1
$TRAIN "$T/tiny.cfg" out_dir="$T/run3" seed=7 >/dev/null 2>&1
cols() { cut -d, -f1-5 "$1"; }
if cmp -s <(cols "$csv") <(cols "$T/run2/metrics.csv") && ! cmp -s <(cols "$csv") <(cols "$T/run3/metrics.csv"); then
    pass same_seed_same_losses
else fail same_seed_same_losses "metrics differ between identical runs, or not between seeds"; fi
if command -v gnuplot >/dev/null; then
    scripts/plot.sh --compare "$T/cmp.png" "$T/run" "$T/run3" >/dev/null 2>"$T/plot.err" &&
        [ "$(head -c 4 "$T/cmp.png" | od -An -c | tr -d ' ')" = "211PNG" ] &&
        pass plot_compares_runs || fail plot_compares_runs "$(cat "$T/plot.err")"
fi

# bench/quality.sh: each kind trained on the same data, a row of validation
# losses each, the first kind's difference from itself zero, a plot of both
STEPS=4 EVAL=2 SEQ=32 BATCH=4 EVAL_TOKENS=256 OUT="$T/q" TRAIN="$TRAIN" \
    KINDS="softmax:attention=softmax polysketch:attention=polysketch,sketch_size=8,attn_block=16" \
    MODEL="n_layer=1 n_head=2 n_embd=32 warmup_steps=1 train_data=$T/data/train_*.bin val_data=$T/data/val_*.bin" \
    bench/quality.sh >"$T/q.out" 2>&1
num='[0-9]+\.[0-9]{4}'
if grep -qE "^softmax +$num +$num +$num +\+0\.0000 +[0-9]+$" "$T/q.out" &&
   grep -qE "^polysketch +$num +$num +$num +[+-]$num +[0-9]+$" "$T/q.out" &&
   grep -q "eval_steps=2," "$T/q.out" && { ! command -v gnuplot >/dev/null || [ -s "$T/q/val_loss.png" ]; }; then
    pass quality_compares_kinds
else fail quality_compares_kinds "$(cat "$T/q.out")"; fi

# bench/ab_step.sh: two builds in turns, a median each and their ratio
SHAPE=1,2,32,4,32 STEPS=4 ARGS="train_data=$T/data/train_*.bin val_data=" bench/ab_step.sh "$TRAIN" "$TRAIN" 2 \
    >"$T/ab.out" 2>&1
if [ "$(grep -cE '^[0-9.]+ [0-9.]+$' "$T/ab.out")" -eq 2 ] &&
   grep -qE '^medians: A [0-9.]+, B [0-9.]+: B takes [0-9.]+x A.s time$' "$T/ab.out"; then pass ab_step_alternates
else fail ab_step_alternates "$(cat "$T/ab.out")"; fi

# bench/ab_attn.sh: one attention layer of two kinds in turns
KEYS_A=attention=softmax T=256 H=2 C=32 REPS=0 bench/ab_attn.sh "$TRAIN" "$TRAIN" 2 >"$T/aba.out" 2>&1
if [ "$(grep -cE '^[0-9.]+ [0-9.]+$' "$T/aba.out")" -eq 2 ] &&
   grep -q 'A=.* attention=softmax  B=.* attention=polysketch' "$T/aba.out" &&
   grep -qE '^medians: A [0-9.]+, B [0-9.]+: B takes [0-9.]+x A.s time$' "$T/aba.out"; then pass ab_attn_alternates
else fail ab_attn_alternates "$(cat "$T/aba.out")"; fi

# dump_step: loss, logits and gradients under HF names
$TRAIN "$T/tiny.cfg" max_steps=1 eval_interval=0 dump_step="$T/dump.safetensors" out_dir="$T/run4" >"$T/log4" 2>&1
hl=$(od -An -t u8 -N 8 "$T/dump.safetensors" 2>/dev/null | tr -d ' ')
hdr=$(head -c $((8 + ${hl:-0})) "$T/dump.safetensors" 2>/dev/null | tail -c +9)
if grep -q '"loss"' <<<"$hdr" && grep -q '"logits":{"dtype":"F32","shape":\[4,32,50257\]' <<<"$hdr" &&
   grep -q '"grad.transformer.h.1.attn.c_attn.weight":{"dtype":"F32","shape":\[32,96\]' <<<"$hdr" &&
   [ "$(grep -o '"grad\.' <<<"$hdr" | wc -l)" -eq 28 ]; then pass dump_step_file
else fail dump_step_file "$(head -c 300 <<<"$hdr")"; fi

# every attention kind learns about as fast as softmax on the same data
drop() { # val loss at step 0 minus at step 40
    awk '/^step +0 \| val loss/ {a = $6} /^step +40 \| val loss/ {b = $6} END {print a - b}' "$1"
}
ref=$(drop "$T/log1")
for kind in "polynomial" "polysketch sketch_size=16 attn_block=16 local_exact=1" "polysketch sketch_size=16 attn_block=16 local_exact=0" \
            "polysketch sketch_size=8 attn_block=8 degree=8" "polysketch sketch=learned sketch_size=8 attn_block=16 local_exact=1"; do
    name=$(echo "$kind" | tr ' =' '_-')
    $TRAIN "$T/tiny.cfg" attention=$kind out_dir="$T/k_$name" >"$T/k_$name.log" 2>&1
    d=$(drop "$T/k_$name.log")
    if awk -v d="$d" -v r="$ref" 'BEGIN { exit !(d > 0.85 * r) }'; then pass "kind_learns_$name"
    else fail "kind_learns_$name" "val loss fell by ${d:-nothing} (softmax: $ref): $(tail -2 "$T/k_$name.log")"; fi
done
# gradient accumulation: 2 micro-batches of 2 sequences step like 1 batch of 4 (the same tokens, shuffle off)
G="max_steps=4 eval_interval=0 shuffle=0 warmup_steps=0"
$TRAIN "$T/tiny.cfg" $G batch_size=4 grad_accum=1 out_dir="$T/acc1" >/dev/null 2>&1
$TRAIN "$T/tiny.cfg" $G batch_size=2 grad_accum=2 out_dir="$T/acc2" >/dev/null 2>&1
if paste -d, <(cut -d, -f2 "$T/acc1/metrics.csv" | tail -n +2) <(cut -d, -f2 "$T/acc2/metrics.csv" | tail -n +2) |
   awk -F, 'NF == 2 && $1 != "" { n++; d = ($1 - $2) / $1; if (d > 1e-4 || d < -1e-4) bad++ } END { exit !(n == 4 && !bad) }'
then pass grad_accum_matches_big_batch
else fail grad_accum_matches_big_batch "$(paste -d' ' "$T/acc1/metrics.csv" "$T/acc2/metrics.csv" | head -4)"; fi

# precision=bf16 tracks fp32 (where the CPU has AVX512-BF16 and TRAIN_SIMD
# does not lower the level, as make test ISA=avx2 does; elsewhere a clear error)
if grep -q avx512_bf16 /proc/cpuinfo && [[ ${TRAIN_SIMD:-avx512} == avx512 ]]; then
    $TRAIN "$T/tiny.cfg" precision=bf16 out_dir="$T/bf16" >"$T/bf16.log" 2>&1
    a=$(grep -E '^step +40 \| val loss' "$T/log1" | sed -E 's/.*val loss //'); b=$(grep -E '^step +40 \| val loss' "$T/bf16.log" | sed -E 's/.*val loss //')
    awk -v a="$a" -v b="$b" 'BEGIN { d = (a - b) / a; exit !(a > 0 && b > 0 && d < 0.02 && d > -0.02) }' &&
        grep -q "bf16 products" "$T/bf16.log" && pass bf16_tracks_fp32 || fail bf16_tracks_fp32 "val loss fp32 $a, bf16 $b"
    # a bf16 run resumed halfway gives the same losses and weights, bit for bit (on AMX where the CPU has it)
    $TRAIN "$T/tiny.cfg" precision=bf16 max_steps=20 eval_interval=10 checkpoint_interval=10 out_dir="$T/bf_a" >/dev/null 2>&1
    cp -r "$T/bf_a" "$T/bf_b" && rm -rf "$T/bf_b/step_00000020" && echo step_00000010 >"$T/bf_b/latest"
    $TRAIN "$T/tiny.cfg" precision=bf16 max_steps=20 eval_interval=10 checkpoint_interval=10 out_dir="$T/bf_b" >/dev/null 2>&1
    cmp -s <(cut -d, -f1-5 "$T/bf_a/metrics.csv") <(cut -d, -f1-5 "$T/bf_b/metrics.csv") &&
        cmp -s "$T/bf_a/step_00000020/model.safetensors" "$T/bf_b/step_00000020/model.safetensors" &&
        pass bf16_resume_bit_identical || fail bf16_resume_bit_identical "differs"
    # where the CPU has AMX, the run above used it; TRAIN_AMX=0 takes the AVX512-BF16 kernel, which tracks too
    if grep -qw amx_bf16 /proc/cpuinfo; then
        TRAIN_AMX=0 $TRAIN "$T/tiny.cfg" precision=bf16 out_dir="$T/bf16v" >"$T/bf16v.log" 2>&1
        c=$(grep -E '^step +40 \| val loss' "$T/bf16v.log" | sed -E 's/.*val loss //')
        grep -q "bf16 products on AMX" "$T/bf16.log" && grep -q "bf16 products$" "$T/bf16v.log" &&
            awk -v a="$a" -v c="$c" 'BEGIN { d = (a - c) / a; exit !(c > 0 && d < 0.02 && d > -0.02) }' &&
            pass bf16_amx_and_avx512_bf16_track_fp32 || fail bf16_amx_and_avx512_bf16_track_fp32 "fp32 $a, AMX $b, AVX512-BF16 $c"
    fi
    # a TRAIN_AMX that is neither 0 nor 1 is named, and changes nothing
    TRAIN_AMX=off $TRAIN "$T/tiny.cfg" precision=bf16 max_steps=1 eval_interval=0 sample_tokens=0 out_dir="$T/amx" \
        >"$T/amx.log" 2>"$T/amx.err" && grep -q "TRAIN_AMX=off is not 0 or 1: ignored" "$T/amx.err" &&
        pass unknown_train_amx_is_named || fail unknown_train_amx_is_named "$(head -c 300 "$T/amx.err")"
else
    expect_error bf16_needs_avx512_bf16 "precision: bf16 needs a CPU with AVX512-BF16" $TRAIN "$T/tiny.cfg" precision=bf16
fi

# a PolySketch run resumed halfway gives the same losses (its sketches come back from the checkpoint)
P="attention=polysketch sketch_size=16 attn_block=16 max_steps=20 eval_interval=10"
$TRAIN "$T/tiny.cfg" $P checkpoint_interval=10 out_dir="$T/ps_a" >/dev/null 2>&1
cp -r "$T/ps_a" "$T/ps_b" && rm -rf "$T/ps_b/step_00000020" && echo step_00000010 >"$T/ps_b/latest"
$TRAIN "$T/tiny.cfg" $P checkpoint_interval=10 out_dir="$T/ps_b" >/dev/null 2>&1
cmp -s <(cut -d, -f1-5 "$T/ps_a/metrics.csv") <(cut -d, -f1-5 "$T/ps_b/metrics.csv") &&
    cmp -s "$T/ps_a/step_00000020/model.safetensors" "$T/ps_b/step_00000020/model.safetensors" &&
    pass polysketch_resume_bit_identical || fail polysketch_resume_bit_identical "differs"
grep -q '"attention": "polysketch"' "$T/ps_a/step_00000020/config.json" &&
    od -An -c -N 4000 "$T/ps_a/step_00000020/model.safetensors" | tr -d ' \n' | grep -q "sketch.0.g1" &&
    pass polysketch_checkpoint_has_its_tensors || fail polysketch_checkpoint_has_its_tensors "no sketch tensors"

# bad configs (the general table is tests/test_hostile.sh)
expect_error polysketch_degree "degree: 6; polysketch needs a power of two" $TRAIN "$T/tiny.cfg" attention=polysketch degree=6
expect_error sketch_size_positive "sketch_size: '0' is not an integer in [1," $TRAIN "$T/tiny.cfg" attention=polysketch sketch_size=0
expect_error batch_too_big_for_val "val_data:" $TRAIN "$T/tiny.cfg" batch_size=512
expect_error nan_loss_stops "is NaN" $TRAIN "$T/tiny.cfg" lr=1e6 grad_clip=0 warmup_steps=0 eval_interval=0 out_dir="$T/run5"
TRAIN_SIMD=avx3 $TRAIN "$T/tiny.cfg" max_steps=1 eval_interval=0 sample_tokens=0 out_dir="$T/simd" >/dev/null 2>"$T/simd.err" &&
    grep -q "TRAIN_SIMD=avx3 is not avx512, avx2 or portable" "$T/simd.err" && pass unknown_train_simd_is_named ||
    fail unknown_train_simd_is_named "$(head -c 300 "$T/simd.err")"
$TRAIN --help | grep -qE '^  warmup_steps +100 ' && pass help_lists_keys || fail help_lists_keys "no warmup_steps line"
# the shipped example configs: every key parses and every combination is
# valid; what stops them here is only their data, which is not prepared
ok=1
for cfg in config/*.cfg; do
    [ "$cfg" = config/default.cfg ] && continue
    out=$($TRAIN "$cfg" out_dir="$T/example" 2>&1)
    echo "$out" | grep -q '^error: train_data: no files match' || { ok=0; echo "   $cfg: $out"; }
done
[ $ok -eq 1 ] && pass example_configs_are_valid || fail example_configs_are_valid "see above"
exit 0
