#!/usr/bin/env bash
# One attention layer, forward + backward, H=12, d=64, B=1, 2 threads, for
# T = 1k ... 64k: softmax, exact polynomial, PolySketch (r = 32 and 64,
# b = 256, local exact on and off; the learned sketch at r = 32). Prints each ./train bench-attn line, then
# a table of fwd+bwd ms with speed-ups over softmax and ms per 1k tokens.
# MIN_T (default 1024), MAX_T (default 65536) and MAX_T_QUADRATIC (the O(T^2) kinds, default MAX_T)
# shorten it; TORCH=1 adds PyTorch's exact attention (1k to 8k; 16k needs more than 24 GiB).
# LOG=FILE appends the lines to FILE and summarises all of FILE (to combine runs).
set -euo pipefail
cd "$(dirname "$0")/.."
max=${MAX_T:-65536}
maxq=${MAX_T_QUADRATIC:-$max}
if [ -n "${LOG:-}" ]; then log=$LOG; else log=$(mktemp); trap 'rm -f "$log"' EXIT; fi
kinds=("attention=softmax" "attention=polynomial"
       "attention=polysketch sketch_size=32 attn_block=256 local_exact=1"
       "attention=polysketch sketch_size=32 attn_block=256 local_exact=0"
       "attention=polysketch sketch_size=64 attn_block=256 local_exact=1"
       "attention=polysketch sketch_size=64 attn_block=256 local_exact=0"
       "attention=polysketch sketch=learned sketch_size=32 attn_block=256 local_exact=1")
for ((T = ${MIN_T:-1024}; T <= max; T *= 2)); do
    for k in "${kinds[@]}"; do
        case $k in *polysketch*) ;; *) [ $T -le $maxq ] || continue ;; esac
        reps=$(( T >= 16384 ? 2 : 3 ))
        case $k in *polysketch*) ;; *) [ $T -lt 16384 ] || reps=0 ;; esac # one pass: minutes each for the O(T^2) kinds
        OMP_NUM_THREADS=2 ./train bench-attn $k seq_len=$T n_head=12 n_embd=768 batch_size=1 reps=$reps | tee -a "$log"
    done
done
if [ "${TORCH:-0}" = 1 ]; then # a process per T: jemalloc, tuned not to return memory, would add 4k's to 8k's 16 GB
    for T in 1024 2048 4096 8192; do
        LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 \
        MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1 OPENBLAS_CORETYPE=SkylakeX \
            /usr/bin/python3 bench/torch_attention.py $T || echo "pytorch exact attention T=$T: exit status $? (killed?)"
    done
fi
echo
awk '{
    kind = substr($1, 11); split($3, t, "="); T = t[2];
    for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "fwd_bwd_ms") ms = kv[2]; if (kv[1] == "max_rss_mb") rss = kv[2] }
    v[kind, T] = ms; r[kind, T] = rss; if (!(kind in seen)) { seen[kind] = 1; order[++nk] = kind } if (!(T in ts)) { ts[T] = 1; tl[++nt] = T }
} END {
    for (i = 1; i <= nt; i++) for (j = i + 1; j <= nt; j++) if (tl[j] + 0 < tl[i] + 0) { x = tl[i]; tl[i] = tl[j]; tl[j] = x }
    printf "%-46s", "fwd+bwd ms (x faster than softmax)"; for (j = 1; j <= nt; j++) printf "%18s", tl[j]; printf "\n";
    for (i = 1; i <= nk; i++) { printf "%-46s", order[i];
        for (j = 1; j <= nt; j++) { k = order[i]; T = tl[j];
            if ((k, T) in v) { s = ("softmax", T) in v ? sprintf("(%.1fx)", v["softmax", T] / v[k, T]) : ""; printf "%10.0f %7s", v[k, T], s }
            else printf "%18s", "-" } printf "\n" }
    printf "\n%-42s", "ms per 1k tokens"; for (j = 1; j <= nt; j++) printf "%18s", tl[j]; printf "\n";
    for (i = 1; i <= nk; i++) { printf "%-46s", order[i];
        for (j = 1; j <= nt; j++) { k = order[i]; T = tl[j]; if ((k, T) in v) printf "%18.1f", v[k, T] / T * 1024; else printf "%18s", "-" } printf "\n" }
    printf "\n%-42s", "peak RSS MB"; for (j = 1; j <= nt; j++) printf "%18s", tl[j]; printf "\n";
    for (i = 1; i <= nk; i++) { printf "%-46s", order[i];
        for (j = 1; j <= nt; j++) { k = order[i]; T = tl[j]; if ((k, T) in r) printf "%18.0f", r[k, T]; else printf "%18s", "-" } printf "\n" }
}' "$log"
