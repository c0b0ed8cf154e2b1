#!/usr/bin/env bash
# A whole training step at long context, every attention kind side by side in
# one run: the default model (4 layers, 4 heads, 256 wide, vocabulary 50257)
# or MODEL (e.g. "n_layer=12 n_head=12 n_embd=768", GPT-2 124M), batch 1,
# seq_len T (block_size T), 2 threads. Prints the median ms/step of STEPS
# steps after a first one, tokens/s, the ratio to the first kind (softmax)
# and peak RSS. Env: TS (default "2048 8192 32768"), STEPS (default 3), KINDS
# (a list of "name:key=value,key=value"). Needs: make, shards/moby (README).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${STEPS:-3}
ts=${TS:-"2048 8192 32768"}
kinds=${KINDS:-"softmax:attention=softmax polynomial:attention=polynomial
polysketch_r32_local:attention=polysketch,sketch_size=32,local_exact=1
polysketch_r32:attention=polysketch,sketch_size=32,local_exact=0"}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
source bench/lib.sh
printf '%-22s %7s %10s %9s %8s %9s\n' kind T ms/step tok/s x_softmax rss_MB
for T in $ts; do
    base=""
    for k in $kinds; do
        name=${k%%:*}
        keys=${k#*:}
        OMP_NUM_THREADS=2 /usr/bin/time -f '%M' -o "$tmp/rss" ./train config/default.cfg ${MODEL:-} ${keys//,/ } batch_size=1 \
            seq_len="$T" block_size="$T" max_steps=$((steps + 1)) warmup_steps=0 eval_interval=0 val_data= \
            sample_tokens=0 checkpoint_interval=0 out_dir="$tmp/run" resume=never >"$tmp/log"
        ms=$(step_ms_median "$tmp/log" "$steps")
        rss=$(($(tail -n 1 "$tmp/rss") / 1024))
        [ -z "$base" ] && base=$ms
        awk -v n="$name" -v T="$T" -v ms="$ms" -v b="$base" -v rss="$rss" \
            'BEGIN { printf "%-22s %7d %10.0f %9.0f %8.2fx %9d\n", n, T, ms, T / ms * 1000, b / ms, rss }'
        rm -rf "$tmp/run"
    done
done
