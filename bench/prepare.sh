#!/usr/bin/env bash
# ./train prepare throughput on 1 and 2 threads for each source type, on the
# State of the Union addresses repeated COPIES times (default 4, ~43 MB):
# pg19 (one .txt per address), jsonl (one line per address), c4 (gzip files).
# Prints MB/s of (uncompressed) input and the 2-thread / 1-thread ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
copies=${COPIES:-4}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/pg19" "$tmp/c4"
for c in $(seq 1 "$copies"); do
    for f in assets/sotu/*.txt; do cp "$f" "$tmp/pg19/${c}_$(basename "$f")"; done
    for f in assets/sotu/*.json; do cat "$f"; echo; done >>"$tmp/sotu.jsonl"
done
split -n l/4 -d -a 5 --additional-suffix=-of-00004.json "$tmp/sotu.jsonl" "$tmp/c4/c4-train."
gzip "$tmp"/c4/*.json
rate() { sed -nE 's/.*\(([0-9.]+) MB\/s\).*/\1/p' | tail -1; }
for src in pg19 jsonl c4; do
    case $src in pg19) in="$tmp/pg19";; jsonl) in="$tmp/sotu.jsonl";; c4) in="$tmp/c4";; esac
    r1=$(./train prepare --source $src "$in" --out "$tmp/o1" --threads 1 2>&1 >/dev/null | rate)
    r2=$(./train prepare --source $src "$in" --out "$tmp/o2" --threads 2 2>&1 >/dev/null | rate)
    same=$(cmp -s "$tmp/o1/train_000000.bin" "$tmp/o2/train_000000.bin" && echo identical || echo DIFFERENT)
    awk -v s=$src -v a="$r1" -v b="$r2" -v d="$same" \
        'BEGIN { printf "%-6s 1 thread %6.1f MB/s   2 threads %6.1f MB/s   ratio %.2fx   shards %s\n", s, a, b, b / a, d }'
done
