#!/usr/bin/env bash
# What the sketch alone costs, the weights held fixed: a model trained with
# exact polynomial attention is evaluated with PolySketch in its place
# (./train eval CKPT attention=polysketch ...; local exact's LayerNorms take
# the model's qk_norm), for each sketch size, without and with local exact,
# its sketches drawn from several seeds. Prints the exact loss, then per
# size each seed's loss and the mean's distance from the exact one.
#   bench/sketch_error.sh [CKPT]
# Without CKPT it trains one first: the default run's model with polynomial
# attention at context 1024 (batch 2), STEPS (default 300) steps, into OUT
# (default runs/sketch_error; a finished run is reused). Env: SIZES (default
# "8 16 32 64 128"), SEEDS (default "1 2 3"), BLOCK (attn_block, default
# 256), EVAL_ARGS (more key=value for eval, e.g. "eval_steps=4"), TRAIN (the
# binary, default ./train), MODEL (more key=value for the training run).
# Needs: make, shards/moby (README, first command).
set -euo pipefail
cd "$(dirname "$0")/.."
train=${TRAIN:-./train}
sizes=${SIZES:-8 16 32 64 128}
seeds=${SEEDS:-1 2 3}
block=${BLOCK:-256}
read -ra extra <<<"${EVAL_ARGS:-}"
read -ra model <<<"${MODEL:-}"
[ -x "$train" ] || { echo "sketch_error: $train not built: run make" >&2; exit 1; }
ckpt=${1:-}
if [ -z "$ckpt" ]; then
    ckpt=${OUT:-runs/sketch_error}
    steps=${STEPS:-300}
    if [ ! -d "$ckpt/step_$(printf %08d "$steps")" ]; then
        echo "training $ckpt: polynomial attention, context 1024, $steps steps"
        OMP_NUM_THREADS=2 "$train" config/default.cfg attention=polynomial seq_len=1024 block_size=1024 batch_size=2 \
            max_steps="$steps" eval_interval=0 out_dir="$ckpt" "${model[@]}" >"$ckpt.log" 2>&1 ||
            { echo "sketch_error: training failed:" >&2; tail -n 3 "$ckpt.log" >&2; exit 1; }
    fi
fi
loss() { # eval's validation loss for key=value...
    local out
    out=$(OMP_NUM_THREADS=2 "$train" eval "$ckpt" batch_size=1 "${extra[@]}" "$@" 2>&1) ||
        { echo "sketch_error: eval $*: $out" >&2; exit 1; }
    sed -nE 's/.* val loss ([0-9.]+),.*/\1/p' <<<"$out"
}
exact=$(loss)
[ -n "$exact" ] || { echo "sketch_error: no loss from eval of $ckpt" >&2; exit 1; }
echo "$ckpt: exact polynomial $exact; PolySketch with attn_block=$block, sketch seeds $seeds"
printf '%-6s %-40s %s\n' r "local_exact=0 (mean - exact)" "local_exact=1 (mean - exact)"
for r in $sizes; do
    row=$(printf '%-6s' "$r")
    for local in 0 1; do
        all=""
        for s in $seeds; do
            all="${all:+$all }$(loss attention=polysketch attn_block="$block" local_exact=$local sketch_size="$r" seed="$s")"
        done
        row="$row $(awk -v e="$exact" -v all="$all" -v w=$((local ? 0 : 40)) 'BEGIN { n = split(all, v, " ")
            m = 0; for (i = 1; i <= n; i++) m += v[i]; printf "%-*s", w, sprintf("%s (%+.4f)", all, m / n - e) }')"
    done
    echo "$row"
done
