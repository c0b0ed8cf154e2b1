#!/usr/bin/env bash
# Tokenizer speed, one thread, side by side with tiktoken's npm package (WASM,
# run by node) on the same texts and machine; checks the ids are identical.
# Usage: bench/tokenizer.sh   (after scripts/setup.sh and make bench)
set -euo pipefail
cd "$(dirname "$0")/.."
export NODE_PATH=$(scripts/node_deps.sh)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cat assets/sotu/*.txt >"$tmp/sotu.txt"
for f in assets/moby_dick.txt "$tmp/sotu.txt"; do
    echo "== $(basename "$f")"
    ours=$(build/bench_tokenizer "$f" 5 "$tmp/ours.ids")
    theirs=$(node bench/tiktoken_bench.js "$f" 5 "$tmp/tt.ids")
    echo "$ours"; echo "$theirs"
    same=$(cmp -s "$tmp/ours.ids" "$tmp/tt.ids" && echo identical || echo DIFFERENT)
    a=$(sed -E 's/.* ([0-9.]+) MB\/s.*/\1/' <<<"$ours"); b=$(sed -E 's/.* ([0-9.]+) MB\/s.*/\1/' <<<"$theirs")
    awk -v a="$a" -v b="$b" -v s="$same" 'BEGIN { printf "ratio: %.2fx tiktoken, ids %s\n", a / b, s }'
done
