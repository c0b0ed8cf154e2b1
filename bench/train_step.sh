#!/usr/bin/env bash
# Training step time, ours beside PyTorch CPU (tuned: OpenBLAS's OpenMP build
# with its AVX-512 kernels, jemalloc), same machine, same model, 2 threads. Shapes: GPT-2 124M B=4 T=64; L4 H4 C256 B8 T256;
# L4 H4 C256 B1 T2048. Prints median ms/step of each and the ratio.
# ROUNDS=R (default 1) runs ours and PyTorch in turns R times a shape and
# prints, after each round's lines, the median of the R ratios and their
# range: the machine's speed drifts 5-20 % within minutes, and one pair of
# runs can land on either side of a goal that a median of several settles.
# ISA=avx2: both as on a CPU without AVX-512: ours built with make ISA=avx2
# (x86-64-v3) and its AVX2 SGEMM, PyTorch with ATEN_CPU_CAPABILITY=avx2 and
# OpenBLAS's Haswell kernels.
# Needs: make, shards/moby (README), and for PyTorch:
#   apt-get install python3-torch python3-numpy libopenblas0-openmp libjemalloc2
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${STEPS:-10}
shapes=${SHAPES:-"12,12,768,4,64 4,4,256,8,256 4,4,256,1,2048"}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
source bench/lib.sh
train=./train coretype=SkylakeX torch_isa=
case ${ISA:-} in
    "") ;;
    avx2) make -s ISA=avx2 build-avx2/train
          train=build-avx2/train coretype=Haswell torch_isa=avx2
          export TRAIN_SIMD=avx2 ;;
    *) echo "bench/train_step.sh: ISA=$ISA: expected avx2" >&2; exit 1 ;;
esac
rounds=${ROUNDS:-1}
case $rounds in ""|*[!0-9]*|0) echo "bench/train_step.sh: ROUNDS=$rounds: expected a positive whole number" >&2; exit 1 ;; esac
for s in $shapes; do
    IFS=, read -r L H C B T <<<"$s"
    echo "== L=$L H=$H C=$C B=$B T=$T, 2 threads${ISA:+, as built for $ISA}"
    ratios=()
    for ((round = 1; round <= rounds; round++)); do
        [ "$rounds" = 1 ] || echo "-- round $round of $rounds"
        OMP_NUM_THREADS=2 $train config/default.cfg n_layer=$L n_head=$H n_embd=$C batch_size=$B seq_len=$T \
            block_size=$(( T > 1024 ? T : 1024 )) max_steps=$((steps + 2)) eval_interval=0 sample_tokens=0 \
            warmup_steps=0 out_dir="$tmp/run" resume=never >"$tmp/ours.log"
        ours=$(step_ms_median "$tmp/ours.log" "$steps")
        echo "ours: $ours ms/step (median of $steps)"
        if [ "$s" = "12,12,768,4,64" ] && [ -z "${ISA:-}" ] && [ "$round" = 1 ] && grep -q avx512_bf16 /proc/cpuinfo; then
            OMP_NUM_THREADS=2 $train config/default.cfg n_layer=$L n_head=$H n_embd=$C batch_size=$B seq_len=$T \
                block_size=1024 max_steps=$((steps + 2)) eval_interval=0 warmup_steps=0 precision=bf16 out_dir="$tmp/bf16" >"$tmp/bf16.log"
            bf=$(step_ms_median "$tmp/bf16.log" "$steps")
            kernel=AVX512-BF16; grep -q "bf16 products on AMX" "$tmp/bf16.log" && kernel=AMX
            echo "ours, precision=bf16 ($kernel): $bf ms/step (median of $steps)"
        fi
        rm -rf "$tmp/run" "$tmp/bf16"
        theirs=$(LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1 \
                 OPENBLAS_CORETYPE=$coretype OMP_NUM_THREADS=2 env ${torch_isa:+ATEN_CPU_CAPABILITY=$torch_isa} /usr/bin/python3 bench/torch_step.py $L $H $C $B $T "$steps" 2)
        echo "$theirs"
        t=$(sed -E 's/.*: ([0-9]+) ms.*/\1/' <<<"$theirs")
        awk -v a="$ours" -v b="$t" 'BEGIN { printf "ratio: ours takes %.2fx PyTorch'"'"'s time (%.2fx faster)\n", a / b, b / a }'
        ratios+=("$(awk -v a="$ours" -v b="$t" 'BEGIN { printf "%.4f", a / b }')")
    done
    if [ "$rounds" -gt 1 ]; then
        med=$(printf '%s\n' "${ratios[@]}" | median)
        lo=$(printf '%s\n' "${ratios[@]}" | sort -n | head -n 1)
        hi=$(printf '%s\n' "${ratios[@]}" | sort -n | tail -n 1)
        awk -v m="$med" -v lo="$lo" -v hi="$hi" -v r="$rounds" \
            'BEGIN { printf "median ratio of %d rounds: %.3fx PyTorch'"'"'s time (range %.3f-%.3f)\n", r, m, lo, hi }'
    fi
done
