#!/usr/bin/env bash
# One attention layer (./train bench-attn, forward + backward) timed for two
# builds, or two kinds, in turns (A B A B ...): this machine's speed drifts
# by up to a third within an hour, so only alternated runs compare them.
#   bench/ab_attn.sh A_TRAIN B_TRAIN [ROUNDS]
# KEYS: bench-attn keys for both sides (default "attention=polysketch
# sketch_size=32 local_exact=1"); KEYS_A and KEYS_B replace them for one
# side, e.g. KEYS_A=attention=softmax bench/ab_attn.sh ./train ./train to
# set PolySketch against softmax in one build. T (default 2048), H (12), C
# (768), REPS (passes after a warm-up, the best counts; default 3). Prints
# each round's fwd+bwd ms, then the median of each column and B's time as a
# fraction of A's. A second build: git worktree add /tmp/a REV && make -C /tmp/a
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: bench/ab_attn.sh A_TRAIN B_TRAIN [ROUNDS]" >&2; exit 1; }
a=$1 b=$2 rounds=${3:-3}
keys=${KEYS:-attention=polysketch sketch_size=32 local_exact=1}
read -ra ka <<<"${KEYS_A:-$keys}" # split on spaces, no globbing
read -ra kb <<<"${KEYS_B:-$keys}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
source bench/lib.sh
layer_ms() { # BINARY KEY=VALUE...
    local bin=$1; shift
    if ! OMP_NUM_THREADS=2 "$bin" bench-attn "$@" batch_size=1 seq_len="${T:-2048}" n_head="${H:-12}" \
        n_embd="${C:-768}" reps="${REPS:-3}" >"$tmp/log" 2>&1; then
        echo "bench/ab_attn.sh: $bin $* failed:" >&2
        tail -n 5 "$tmp/log" >&2
        exit 1
    fi
    grep -o 'fwd_bwd_ms=[0-9.]*' "$tmp/log" | cut -d= -f2
}
echo "== T=${T:-2048} H=${H:-12} C=${C:-768} B=1, 2 threads, fwd+bwd ms: A=$a ${ka[*]}  B=$b ${kb[*]}"
for ((r = 1; r <= rounds; r++)); do
    ma=$(layer_ms "$a" "${ka[@]}") # assigned, so that a failure stops the script (set -e)
    mb=$(layer_ms "$b" "${kb[@]}")
    echo "$ma $mb" | tee -a "$tmp/all"
done
ab_summary "$tmp/all"
