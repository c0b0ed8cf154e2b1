#!/usr/bin/env bash
# The hostile-input table: each bad input, and exactly what it gets: exit
# status 1, a message naming the file, line or key and what was expected,
# no crash, and nothing of value overwritten.
#
# Rows elsewhere: bad data sources (truncated/corrupt gzip, malformed JSON
# lines, missing "text", empty inputs, unwritable output) in test_data.c and
# test_cli.sh; damaged checkpoints (size, CRC, header, missing tensor, other
# shape) in test_checkpoint.c and test_resume.sh; resume refusals in
# test_resume.sh; sampling arguments and prompts longer than the context in
# test_generate.sh; NaN losses in test_train.sh.
set -u
cd "$(dirname "$0")/.."
TEST_NAME=test_hostile
source tests/lib.sh

tiny_setup 200000
cat >>"$T/tiny.cfg" <<CFG
max_steps = 4
eval_interval = 2
eval_steps = 2
CFG
C="$T/tiny.cfg"

# --- config: unknown, malformed, out of range, inconsistent ----------------
printf 'n_layer = 2\nlrr = 0.1\n' >"$T/bad1.cfg"
expect_error config_unknown_key "$T/bad1.cfg:2: unknown key 'lrr'" $TRAIN "$T/bad1.cfg"
printf 'n_layer = two\n' >"$T/bad2.cfg"
expect_error config_bad_value "$T/bad2.cfg:1: n_layer: 'two' is not an integer" $TRAIN "$T/bad2.cfg"
printf '[model]\nn_layer = 2\n' >"$T/bad4.cfg"
expect_error config_sections "$T/bad4.cfg:2: [model]: sections are not used" $TRAIN "$T/bad4.cfg"
printf 'this line has no equals sign\n' >"$T/bad5.cfg"
expect_error config_syntax "$T/bad5.cfg:1:" $TRAIN "$T/bad5.cfg"
expect_error config_missing_file "$T/none.cfg: cannot read config file" $TRAIN "$T/none.cfg"
expect_error config_is_a_directory "$T: not a regular file" $TRAIN "$T"
expect_error override_unknown_key "command line: unknown key 'nlayer'" $TRAIN "$C" nlayer=3
expect_error override_not_key_value "command line: 'n_layer' is not key=value" $TRAIN "$C" n_layer
expect_error zero_layers "n_layer: '0' is not an integer in [1," $TRAIN "$C" n_layer=0
expect_error negative_batch "batch_size: '-1' is not an integer in [1," $TRAIN "$C" batch_size=-1
expect_error zero_seq_len "seq_len: '0' is not an integer in [1," $TRAIN "$C" seq_len=0
expect_error lr_not_a_number "lr: 'fast' is not a number" $TRAIN "$C" lr=fast
expect_error lr_nan "lr: 'nan' is not a number" $TRAIN "$C" lr=nan
expect_error keep_best_without_eval "keep_best: needs a validation loss" $TRAIN "$C" keep_best=1 eval_interval=0
expect_error patience_without_keep_best "patience: 2 needs keep_best=1" $TRAIN "$C" patience=2
expect_error dropout_of_one "dropout: '1' is not a number in [0, 0.95]" $TRAIN "$C" dropout=1
expect_error heads_divide_width "n_embd (32) must be divisible by n_head (3)" $TRAIN "$C" n_head=3
expect_error seq_len_le_block "seq_len (128) must be at most block_size (64)" $TRAIN "$C" seq_len=128
expect_error odd_degree "degree: 3 is odd" $TRAIN "$C" attention=polynomial degree=3
expect_error learned_sketch_degree "degree: 8 with sketch=learned" $TRAIN "$C" attention=polysketch sketch=learned degree=8 attn_block=16
expect_error unknown_attention "attention: 'flash' is not one of softmax|polynomial|polysketch" $TRAIN "$C" attention=flash
expect_error block_divides_seq_len "attn_block (48) must divide seq_len (32)" $TRAIN "$C" attention=polysketch attn_block=48
expect_error min_lr_above_lr "min_lr (0.1) must be at most lr" $TRAIN "$C" lr=0.01 min_lr=0.1
# more memory than the machine has: refused before allocating (with
# overcommit the kernel would kill it at first touch, without a message)
expect_error run_too_big_for_memory "batch_size 1000000 x seq_len 32 needs" $TRAIN "$C" batch_size=1000000 n_layer=200
# memory_check=0 skips that estimate; here the allocation itself fails (264 TB: beyond the address
# space, whatever the kernel's overcommit mode), an error all the same (the sanitizer build's
# allocator must be told to return NULL rather than abort)
expect_error memory_check_off "out of memory: the model needs" \
    env ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}allocator_may_return_null=1" \
    $TRAIN "$C" batch_size=1000000 n_layer=1000 n_embd=64 seq_len=64 memory_check=0

# --- missing files ------------------------------------------------------------
expect_error missing_train_data "train_data: no files match \"$T/nope_*.bin\"" $TRAIN "$C" train_data="$T/nope_*.bin"
expect_error train_data_takes_val_shards "train_data and val_data both take $T/data/val_000000.bin" \
    $TRAIN "$C" train_data="$T/data/*.bin" out_dir="$T/overlap"
ln -s "$T/data/train_000000.bin" "$T/alias.bin"
expect_error val_data_is_train_data "both take $T/data/train_000000.bin = $T/alias.bin" \
    $TRAIN "$C" val_data="$T/alias.bin" out_dir="$T/overlap"
[ -z "$(ls -A "$T/overlap" 2>/dev/null)" ] && pass overlap_refused_before_any_output ||
    fail overlap_refused_before_any_output "$(ls -A "$T/overlap")"
expect_error missing_tokenizer "encoder.json: cannot open" env TRAIN_ASSETS="$T/none" $TRAIN tokenize </dev/null
expect_error missing_checkpoint "$T/none: not a checkpoint" $TRAIN sample "$T/none"

# --- one run a directory: a second ./train on a busy out_dir or --out --------
# is refused, naming the pid, and takes nothing from the running one (which
# would otherwise have its metrics.csv truncated and its checkpoints pruned);
# the lock ends with its process, kill -9 included
$TRAIN "$C" out_dir="$T/busy" max_steps=1000000 eval_interval=0 >/dev/null 2>&1 &
pid=$!
for _ in $(seq 300); do [ -f "$T/busy/metrics.csv" ] && [ "$(wc -l <"$T/busy/metrics.csv")" -ge 3 ] && break; sleep 0.1; done
head -2 "$T/busy/metrics.csv" >"$T/busy_head"
expect_error out_dir_in_use "out_dir: $T/busy is in use by another ./train (pid $pid)" $TRAIN "$C" out_dir="$T/busy"
expect_error out_dir_in_use_resume_never "out_dir: $T/busy is in use" $TRAIN "$C" out_dir="$T/busy" resume=never
expect_error prepare_out_in_use "--out: $T/busy is in use by another ./train (pid $pid)" \
    $TRAIN prepare --source pg19 "$T/book.txt" --out "$T/busy"
head -2 "$T/busy/metrics.csv" | cmp -s - "$T/busy_head" && ! ls "$T/busy" | grep -q '_000000.bin' &&
    pass busy_out_dir_untouched || fail busy_out_dir_untouched "$(ls "$T/busy") $(head -2 "$T/busy/metrics.csv")"
kill -9 $pid
wait $pid 2>/dev/null
$TRAIN "$C" out_dir="$T/busy" max_steps=1 >"$T/busy.out" 2>&1 && pass lock_ends_with_its_process ||
    fail lock_ends_with_its_process "$(tail -2 "$T/busy.out")"

# --- damaged shards -----------------------------------------------------------
mkdir -p "$T/cut" && head -c 5000 "$T/data/train_000000.bin" >"$T/cut/train_000000.bin"
expect_error truncated_shard "$T/cut/train_000000.bin: header says" $TRAIN "$C" train_data="$T/cut/train_*.bin"
mkdir -p "$T/flip" && cp "$T/data/train_000000.bin" "$T/flip/" && printf '\x21' | dd of="$T/flip/train_000000.bin" bs=1 seek=1 conv=notrunc 2>/dev/null
expect_error bit_flipped_magic "$T/flip/train_000000.bin: bad magic" $TRAIN "$C" train_data="$T/flip/train_*.bin"
# a token id beyond the vocabulary in the middle of a shard
mkdir -p "$T/oov" && cp "$T/data/train_000000.bin" "$T/oov/"
printf '\x60\xea' | dd of="$T/oov/train_000000.bin" bs=1 seek=$((1024 + 2 * 100)) conv=notrunc 2>/dev/null
expect_error out_of_vocabulary_token "$T/oov/train_000000.bin: token 60000 at position 100 is outside the vocabulary" \
    $TRAIN "$C" train_data="$T/oov/train_*.bin" shuffle=0

# --- disk full while writing a checkpoint: the previous one survives ---------
$TRAIN "$C" out_dir="$T/run" >/dev/null 2>&1
before=$(cat "$T/run/latest")
( ulimit -f 2048; $TRAIN "$C" out_dir="$T/run" max_steps=6 >"$T/full.out" 2>"$T/full.err" ); rc=$?
if [ $rc -eq 1 ] && grep -q "cannot write" "$T/full.err" && grep -q "File too large" "$T/full.err" &&
   [ "$(cat "$T/run/latest")" = "$before" ] && ! ls -a "$T/run" | grep -q '^\.tmp_'; then pass disk_full_checkpoint
else fail disk_full_checkpoint "exit $rc: $(cat "$T/full.err")"; fi
$TRAIN "$C" out_dir="$T/run" max_steps=6 >"$T/after.out" 2>&1 &&
    grep -q "resumed from .*$before at step 4" "$T/after.out" && pass resumes_after_disk_full ||
    fail resumes_after_disk_full "$(head -3 "$T/after.out")"
( ulimit -f 100; $TRAIN prepare --source pg19 "$T/book.txt" --out "$T/full_prep" >/dev/null 2>"$T/prep.err" ); rc=$?
[ $rc -eq 1 ] && grep -q "File too large" "$T/prep.err" && [ -z "$(ls "$T/full_prep")" ] && pass disk_full_prepare ||
    fail disk_full_prepare "exit $rc: $(cat "$T/prep.err") $(ls "$T/full_prep")"

# --- prompts: invalid UTF-8, NUL bytes -----------------------------------------
printf 'nul\0byte \xff\xfe and \xc3' >"$T/prompt.bin"
$TRAIN sample "$T/run" --prompt-file "$T/prompt.bin" --max-new-tokens 3 >"$T/p.out" 2>"$T/p.err"
[ $? -eq 0 ] && head -c "$(wc -c <"$T/prompt.bin")" "$T/p.out" | cmp -s - "$T/prompt.bin" && pass prompt_with_nul_and_invalid_utf8 ||
    fail prompt_with_nul_and_invalid_utf8 "$(cat "$T/p.err")"
expect_error missing_prompt_file "$T/none.txt: No such file" $TRAIN sample "$T/run" --prompt-file "$T/none.txt"
exit 0
