#!/usr/bin/env bash
# Attention kinds on equal terms: the same model, data, batches (same seed,
# same shuffled order), schedule and step count for each kind, one after
# another in one run; prints each kind's validation loss at every eval, its
# final loss against the first kind's (softmax), and its median ms/step, and
# plots the validation curves together (scripts/plot.sh --compare).
#
# Default: the default run's model (4 layers, 4 heads, 256 wide) on
# Moby-Dick with context 1024 (batch 2: the default run's 2,048 tokens a
# step), so PolySketch's blocks of 256 leave three quarters of each row's
# keys to the sketch. Env: KINDS (lines "name:key=value,key=value"), STEPS
# (default 300), EVAL (eval_interval, default 50), SEQ (default 1024),
# BATCH (default 2048 / SEQ), MODEL (extra key=value words), OUT (default
# runs/quality; each kind's run goes to OUT/name, a finished one is reused).
# Each evaluation reads EVAL_TOKENS tokens (default 30,720: Moby-Dick's
# validation split has 32k): eval_steps = EVAL_TOKENS / (BATCH x SEQ), at
# least 1. TRAIN: the binary (default ./train).
# Needs: make, shards/moby (README, first command).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${STEPS:-300}
eval=${EVAL:-50}
seq=${SEQ:-1024}
batch=${BATCH:-$((2048 / seq > 0 ? 2048 / seq : 1))}
out=${OUT:-runs/quality}
eval_tokens=${EVAL_TOKENS:-30720}
eval_steps=$((eval_tokens / (batch * seq) > 0 ? eval_tokens / (batch * seq) : 1))
train=${TRAIN:-./train}
kinds=${KINDS:-"softmax:attention=softmax
polynomial:attention=polynomial
polysketch_r32_local:attention=polysketch,sketch_size=32,local_exact=1
polysketch_r32:attention=polysketch,sketch_size=32,local_exact=0
polysketch_learned_r32_local:attention=polysketch,sketch=learned,sketch_size=32,local_exact=1"}
[ -x "$train" ] || { echo "quality: $train not built: run make" >&2; exit 1; }
mkdir -p "$out"
source bench/lib.sh
echo "model: config/default.cfg ${MODEL:-} seq_len=$seq batch_size=$batch max_steps=$steps eval_steps=$eval_steps, 2 threads"
dirs=()
for k in $kinds; do
    name=${k%%:*}
    keys=${k#*:}
    dir="$out/$name"
    dirs+=("$dir")
    # resume=auto: a finished run is reused, an interrupted one goes on
    OMP_NUM_THREADS=2 "$train" config/default.cfg ${MODEL:-} ${keys//,/ } seq_len="$seq" block_size="$seq" \
        batch_size="$batch" max_steps="$steps" eval_interval="$eval" eval_steps="$eval_steps" sample_tokens=0 \
        out_dir="$dir" resume=auto >"$dir.log" 2>&1 || { echo "quality: $name failed, see $dir.log" >&2; exit 1; }
done
# a row per kind: the validation losses in step order, then the final one's
# difference from the first kind's and the median ms of the steps
printf '%-30s' kind
awk -F, 'NR > 1 && $3 != "" { printf " %8s", "val@" $1 }' "${dirs[0]}/metrics.csv"
printf ' %9s %8s\n' vs_first ms/step
base=""
for dir in "${dirs[@]}"; do
    final=$(awk -F, 'NR > 1 && $3 != "" { v = $3 } END { print v }' "$dir/metrics.csv")
    [ -z "$base" ] && base=$final
    ms=$(awk -F, 'NR > 1 && $6 != "" { print $6 }' "$dir/metrics.csv" | median)
    printf '%-30s' "$(basename "$dir")"
    awk -F, 'NR > 1 && $3 != "" { printf " %8.4f", $3 }' "$dir/metrics.csv"
    awk -v f="$final" -v b="$base" -v ms="$ms" 'BEGIN { printf " %+9.4f %8.0f\n", f - b, ms }'
done
if command -v gnuplot >/dev/null; then scripts/plot.sh --compare "$out/val_loss.png" "${dirs[@]}"; fi
