#!/usr/bin/env bash
# Two builds of ./train, A and B, timed on the same training step in turns
# (A B A B ...): this machine's speed drifts by up to a third within an
# hour, more than most changes gain, so only alternated runs compare them.
#   bench/ab_step.sh A_TRAIN B_TRAIN [ROUNDS]
# SHAPE=L,H,C,B,T (default 4,4,256,1,2048), STEPS (default 10; the median
# of all but the first two steps counts), ARGS (more key=value for both,
# e.g. other train_data). Prints each round's medians, then the median of
# each column and B's time as a fraction of A's.
# Needs: shards/moby (README). A second build: git worktree add /tmp/a REV && make -C /tmp/a
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: bench/ab_step.sh A_TRAIN B_TRAIN [ROUNDS]" >&2; exit 1; }
a=$1 b=$2 rounds=${3:-3} steps=${STEPS:-10}
IFS=, read -r L H C B T <<<"${SHAPE:-4,4,256,1,2048}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
read -ra extra <<<"${ARGS:-}" # split on spaces, no globbing
source bench/lib.sh
step_ms() {
    rm -rf "$tmp/run"
    if ! OMP_NUM_THREADS=2 "$1" config/default.cfg n_layer=$L n_head=$H n_embd=$C batch_size=$B seq_len=$T \
        block_size=$(( T > 1024 ? T : 1024 )) max_steps=$steps eval_interval=0 sample_tokens=0 warmup_steps=0 \
        checkpoint_interval=0 out_dir="$tmp/run" resume=never "${extra[@]}" >"$tmp/log" 2>&1; then
        echo "bench/ab_step.sh: $1 failed:" >&2
        tail -n 5 "$tmp/log" >&2
        exit 1
    fi
    step_ms_median "$tmp/log" $((steps - 2))
}
echo "== L=$L H=$H C=$C B=$B T=$T, 2 threads, ms/step: A=$a B=$b"
for ((r = 1; r <= rounds; r++)); do
    ma=$(step_ms "$a"); mb=$(step_ms "$b")
    echo "$ma $mb" | tee -a "$tmp/all"
done
ab_summary "$tmp/all"
