#!/usr/bin/env bash
# Checkpoint write of GPT-2 124M (model + AdamW moments, ~1.5 GB, fsynced)
# beside the disk's sequential write speed (dd of the same size into the
# same directory, buffered with fdatasync, and with O_DIRECT as our writer
# uses), and sampling speed of that model on 2 threads with the KV cache and
# without it (a full forward per token).
# Needs: make, shards/moby (README). DIR defaults to a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d "${DIR:-/tmp}/bench_ckpt_XXXXXX"); trap 'rm -rf "$dir"' EXIT
gpt2="n_layer=12 n_head=12 n_embd=768 block_size=1024 batch_size=1 seq_len=64 eval_interval=0 threads=2"
OMP_NUM_THREADS=2 ./train config/default.cfg $gpt2 max_steps=1 out_dir="$dir/run" >"$dir/log"
bytes=$(du -cb "$dir"/run/step_00000001/*.safetensors | tail -1 | cut -f1)
secs=$(sed -nE 's/^checkpoint: .* \(([0-9.]+) s\)$/\1/p' "$dir/log")
mb=$((bytes / 1000000))
dd_out=$(dd if=/dev/zero of="$dir/dd.bin" bs=1M count=$((bytes / 1048576)) conv=fdatasync 2>&1 | tail -1)
rm -f "$dir/dd.bin"
direct_out=$(dd if=/dev/zero of="$dir/dd.bin" bs=8M count=$((bytes / 8388608)) oflag=direct conv=fdatasync 2>&1 | tail -1)
rm -f "$dir/dd.bin"
rate() { sed -nE 's/.*, ([0-9.]+) ([GM])B\/s$/\1 \2/p' | awk '{ print $2 == "G" ? $1 * 1000 : $1 }'; }
dd_rate=$(rate <<<"$dd_out")
direct_rate=$(rate <<<"$direct_out")
awk -v mb="$mb" -v s="$secs" -v d="$dd_rate" -v o="$direct_rate" 'BEGIN {
    printf "checkpoint: %d MB in %.2f s = %.0f MB/s; dd (fdatasync): %.0f MB/s, ratio %.2f; dd (O_DIRECT): %.0f MB/s, ratio %.2f\n",
        mb, s, mb / s, d, mb / s / d, o, mb / s / o }'

prompt=$(head -c 3000 assets/moby_dick.txt)
for mode in cache no-cache; do
    flag=""; [ $mode = no-cache ] && flag=--no-cache
    # the difference of a 1-token and a (k+1)-token run removes start-up and
    # the prompt; the best of 3 each, since loading the model varies by more
    # than 32 cached tokens take
    k=128; [ $mode = no-cache ] && k=8
    for n in 1 $((k + 1)); do
        best=
        for rep in 1 2 3; do
            t0=$EPOCHREALTIME
            OMP_NUM_THREADS=2 ./train sample "$dir/run" --prompt "$prompt" --max-new-tokens $n --seed 1 $flag >/dev/null
            best=$(awk -v a=$t0 -v b=$EPOCHREALTIME -v m="$best" 'BEGIN { t = b - a; print (m == "" || t < m) ? t : m }')
        done
        [ $n = 1 ] && t_a=$best || t_b=$best
    done
    awk -v m=$mode -v a="$t_a" -v b="$t_b" -v k=$k 'BEGIN {
        printf "sample %-8s: %.1f tokens/s (%d tokens after a 660-token prompt, %.0f ms/token)\n", m, k / (b - a), k, (b - a) / k * 1000 }'
done
