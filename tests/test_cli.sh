#!/usr/bin/env bash
# Command-line tests: tokenize/decode round trips, prepare through the CLI
# (thread determinism, messages and exit codes for bad arguments and input).
set -u
cd "$(dirname "$0")/.."
TEST_NAME=test_cli
source tests/lib.sh

# tokenize and decode round trip on real text
$TRAIN tokenize <assets/moby_dick.txt >"$T/ids" && $TRAIN tokenize --decode <"$T/ids" >"$T/back"
if cmp -s assets/moby_dick.txt "$T/back" && [ "$(wc -w <"$T/ids")" -eq 317756 ]; then pass tokenize_round_trip_moby
else fail tokenize_round_trip_moby "decode(encode(moby)) differs or wrong count"; fi
head -c 100000 /dev/urandom >"$T/rand"
$TRAIN tokenize <"$T/rand" | $TRAIN tokenize --decode >"$T/rand_back"
if cmp -s "$T/rand" "$T/rand_back"; then pass tokenize_round_trip_random_bytes
else fail tokenize_round_trip_random_bytes "random bytes do not round-trip"; fi
[ "$(printf 'a<|endoftext|>b' | $TRAIN tokenize --allow-special)" = "64 50256 65" ] &&
    [ "$(printf 'a<|endoftext|>b' | $TRAIN tokenize | wc -w)" -gt 3 ] &&
    pass tokenize_special_only_on_request || fail tokenize_special_only_on_request "wrong ids"
expect_error decode_rejects_bad_id "id 50257 is outside the vocabulary" sh -c 'echo "1 2 50257" | $0 tokenize --decode' "$TRAIN"
expect_error decode_rejects_non_integer "token 2: 'x1' is not an integer" sh -c 'echo "1 x1" | $0 tokenize --decode' "$TRAIN"
expect_error tokenize_missing_assets "encoder.json" env TRAIN_ASSETS="$T/none" $TRAIN tokenize </dev/null

# prepare: the same bytes on 1 and 2 threads, through the CLI
mkdir -p "$T/books" && cp assets/sotu/18*.txt "$T/books/"
$TRAIN prepare --source pg19 "$T/books" --out "$T/o1" --threads 1 >/dev/null 2>&1
OMP_NUM_THREADS=2 $TRAIN prepare --source pg19 "$T/books" --out "$T/o2" >/dev/null 2>"$T/progress"
if cmp -s "$T/o1/train_000000.bin" "$T/o2/train_000000.bin" && cmp -s "$T/o1/val_000000.bin" "$T/o2/val_000000.bin"
then pass prepare_threads_identical; else fail prepare_threads_identical "shards differ"; fi
grep -q "MB/s" "$T/progress" && grep -q "documents" "$T/progress" && pass prepare_progress_line ||
    fail prepare_progress_line "no progress line"

# Ctrl-C / SIGTERM during prepare: it stops after its batch, removes its
# temporary shards, and leaves an earlier run's shards in --out as they were
mkdir -p "$T/big" && for i in $(seq 1 300); do ln -s "$PWD/assets/moby_dick.txt" "$T/big/$i.txt"; done
cp -r "$T/o1" "$T/o1_before"
$TRAIN prepare --source pg19 "$T/big" --out "$T/o1" --threads 1 >/dev/null 2>"$T/intr.err" &
pid=$!
sleep 0.5
kill -TERM $pid
wait $pid
rc=$?
if [ $rc -eq 1 ] && grep -q "interrupted: .* keeps no shard of this run" "$T/intr.err" &&
   [ -z "$(ls -A "$T/o1" | grep -v '^\(train\|val\)_000000\.bin$')" ] && diff -r "$T/o1" "$T/o1_before" >/dev/null; then
    pass prepare_interrupted_removes_its_files
else fail prepare_interrupted_removes_its_files "exit $rc, $(ls -A "$T/o1" | head -5 | tr '\n' ' '), $(tail -1 "$T/intr.err")"; fi

# PG19's own split: train/ to train_*.bin, validation/ after --val to val_*.bin
# whole (EOT + the book's tokens); the release's root alone is refused with
# the command to use
mkdir -p "$T/pg19/train" "$T/pg19/validation" "$T/pg19/test"
cp assets/sotu/18*.txt "$T/pg19/train/" && cp assets/sotu/179*.txt "$T/pg19/validation/"
$TRAIN prepare --source pg19 "$T/pg19/train" --out "$T/split" --val "$T/pg19/validation" >"$T/split.log" 2>&1
want=0
for f in "$T"/pg19/validation/*.txt; do want=$(( want + 1 + $($TRAIN tokenize <"$f" | wc -w) )); done
got=$(( ($(stat -c %s "$T/split/val_000000.bin") - 1024) / 2 ))
n=$(ls "$T"/pg19/validation | wc -l)
if grep -q "($want tokens, $n documents of $(( n + $(ls "$T"/pg19/train | wc -l) )))" "$T/split.log" &&
   [ "$got" -eq "$want" ] && [ "$n" -ge 10 ]; then pass prepare_given_val_split
else fail prepare_given_val_split "val holds $got tokens, want $want: $(tail -1 "$T/split.log")"; fi
# a split on its own (PG19's test/ for eval), into its own directory; into
# one holding the other split's shards it is refused, since committing would
# remove them
$TRAIN prepare --source pg19 --val "$T/pg19/validation" --out "$T/val_only" >/dev/null 2>&1
if cmp -s "$T/split/val_000000.bin" "$T/val_only/val_000000.bin" && [ "$(ls "$T/val_only")" = val_000000.bin ]
then pass prepare_val_split_alone; else fail prepare_val_split_alone "$(ls "$T/val_only")"; fi
expect_error prepare_keeps_other_runs_shards "holds train_*.bin shards, and this run writes no train split" \
    $TRAIN prepare --source pg19 --val "$T/pg19/validation" --out "$T/split"
[ -f "$T/split/train_000000.bin" ] && pass prepare_refusal_removes_nothing || fail prepare_refusal_removes_nothing "gone"
expect_error prepare_pg19_root_names_the_split "give $T/pg19/train, and $T/pg19/validation after --val" \
    $TRAIN prepare --source pg19 "$T/pg19" --out "$T/x"
expect_error prepare_val_needs_input "--val: no INPUT after it" $TRAIN prepare --source pg19 "$T/books" --out "$T/x" --val
expect_error prepare_val_or_fraction "--val-fraction 0.1 with --val" \
    $TRAIN prepare --source pg19 "$T/books" --out "$T/x" --val-fraction 0.1 --val "$T/pg19/validation"

# bad arguments and input
expect_error prepare_unknown_source "unknown source 'pg20'" $TRAIN prepare --source pg20 x --out "$T/x"
expect_error prepare_missing_out "--out DIR is required" $TRAIN prepare --source pg19 "$T/books"
expect_error prepare_bad_fraction "--val-fraction: '1.5'" $TRAIN prepare --source pg19 "$T/books" --out "$T/x" --val-fraction 1.5
expect_error prepare_bad_shard_tokens "--shard-tokens: '0'" $TRAIN prepare --source pg19 "$T/books" --out "$T/x" --shard-tokens 0
expect_error prepare_unknown_option "unknown option '--shuffle'" $TRAIN prepare --source pg19 "$T/books" --out "$T/x" --shuffle 1
expect_error prepare_missing_input "$T/nope" $TRAIN prepare --source pg19 "$T/nope" --out "$T/x"
printf '{"text": "fine"}\n{"text": "fine"}\n{"txt": "oops"}\n' >"$T/w.jsonl"
expect_error prepare_names_file_and_line "$T/w.jsonl:3: missing \"text\" field" $TRAIN prepare --source jsonl "$T/w.jsonl" --out "$T/x"
[ -z "$(ls "$T/x" 2>/dev/null)" ] && pass prepare_failure_leaves_no_shards || fail prepare_failure_leaves_no_shards "$(ls "$T/x")"
expect_error unknown_command "unknown command 'frobnicate'" $TRAIN frobnicate

# every command's --help: its own usage on stdout, exit 0, nothing else run
# (sample's and eval's CKPT is not looked at, tokenize does not read stdin)
help_ok=1
for cmd in prepare tokenize sample eval bench-attn; do
    out=$($TRAIN $cmd --help </dev/zero 2>&1) && [[ $out == "usage: ./train $cmd"* ]] || { help_ok=0; echo "  $cmd: $out" | head -2; }
done
out=$($TRAIN sample no/such/dir -h 2>&1) && [[ $out == "usage: ./train sample"* ]] || help_ok=0
[ $help_ok = 1 ] && pass every_command_has_help || fail every_command_has_help "a --help that did not print its usage"
exit 0
