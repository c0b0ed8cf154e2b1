#!/usr/bin/env bash
# ./train sample and ./train eval on a small trained model: the KV cache
# gives exactly the tokens a full re-forward gives (also past block_size),
# seeds reproduce, bad arguments are errors, and eval agrees with training.
set -u
cd "$(dirname "$0")/.."
TEST_NAME=test_generate
source tests/lib.sh

head -c 300000 assets/moby_dick.txt >"$T/book.txt"
$TRAIN prepare --source pg19 "$T/book.txt" --out "$T/data" --val-fraction 0.1 >/dev/null 2>&1
$TRAIN config/default.cfg n_layer=2 n_head=2 n_embd=64 block_size=48 batch_size=4 seq_len=48 max_steps=120 \
    eval_interval=120 eval_steps=3 sample_tokens=0 warmup_steps=10 lr=3e-3 train_data="$T/data/train_*.bin" \
    val_data="$T/data/val_*.bin" out_dir="$T/run" >"$T/train.log" 2>&1 || fail train "$(tail -2 "$T/train.log")"

# greedy: the cached decoder and a full forward per token agree, through two slides of the 48-token window
S="$TRAIN sample $T/run --prompt Whale --max-new-tokens 130"
$S --temperature 0 >"$T/g1" && $S --temperature 0 --no-cache >"$T/g2"
cmp -s "$T/g1" "$T/g2" && [ "$(wc -c <"$T/g1")" -gt 130 ] && pass kv_cache_matches_full_forward ||
    fail kv_cache_matches_full_forward "$(head -c 200 "$T/g1") | $(head -c 200 "$T/g2")"
$S --top-k 1 >"$T/g3"
cmp -s "$T/g1" "$T/g3" && pass top_k_1_is_greedy || fail top_k_1_is_greedy "differs"
$S --seed 3 >"$T/s1"; $S --seed 3 >"$T/s2"; $S --seed 4 >"$T/s3"; $S --seed 3 --no-cache >"$T/s4"
cmp -s "$T/s1" "$T/s2" && ! cmp -s "$T/s1" "$T/s3" && pass same_seed_same_text || fail same_seed_same_text "seeds"
cmp -s "$T/s1" "$T/s4" && pass sampling_cache_no_cache_agree || fail sampling_cache_no_cache_agree "differs"
$S --seed 3 --top-p 0.5 >"$T/s5"
[ -s "$T/s5" ] && ! cmp -s "$T/s1" "$T/s5" && pass top_p_changes_the_draw || fail top_p_changes_the_draw "same text"
# --num-samples: the first sample is the one sample of the same seed, then more from the same stream
$S --seed 3 --num-samples 3 >"$T/n3"
{ cat "$T/s1"; echo ---------------; } | cmp -s - <(head -c "$(($(wc -c <"$T/s1") + 16))" "$T/n3") &&
    [ "$(grep -c '^---------------$' "$T/n3")" -eq 3 ] && [ "$(grep -c '^Whale' "$T/n3")" -ge 3 ] &&
    [ "$(awk '/^---------------$/ { n++; next } { t[n] = t[n] $0 } END { print (t[0] != t[1] && t[1] != t[2]) }' "$T/n3")" = 1 ] &&
    pass num_samples_continue_the_stream || fail num_samples_continue_the_stream "$(head -c 300 "$T/n3")"
expect_error sample_bad_num_samples "--num-samples: '0'" $TRAIN sample "$T/run" --num-samples 0
head -c 6 "$T/g1" | grep -q "^Whale" && pass prompt_is_printed_first || fail prompt_is_printed_first "$(head -c 20 "$T/g1")"
$TRAIN sample "$T/run/step_00000120" --max-new-tokens 5 --temperature 0 >"$T/d1" && pass sample_from_step_dir ||
    fail sample_from_step_dir "$(cat "$T/d1")"
# prompts: longer than the context, invalid UTF-8, NUL-free bytes of any kind
long=$(head -c 3000 assets/moby_dick.txt)
$TRAIN sample "$T/run" --prompt "$long" --max-new-tokens 5 >"$T/l1" 2>"$T/l1.err"
[ $? -eq 0 ] && grep -q "the model sees the last 48" "$T/l1.err" && pass long_prompt_slides || fail long_prompt_slides "$(cat "$T/l1.err")"
$TRAIN sample "$T/run" --prompt "$(printf 'bad \xff\xfe utf8 \xc3')" --max-new-tokens 5 >"$T/u1" 2>&1
[ $? -eq 0 ] && head -c 13 "$T/u1" | cmp -s - <(printf 'bad \xff\xfe utf8 \xc3') && pass invalid_utf8_prompt ||
    fail invalid_utf8_prompt "$(head -c 40 "$T/u1" | od -c | head -2)"
# bad arguments
expect_error sample_needs_ckpt "sample: CKPT is required" $TRAIN sample
expect_error sample_bad_ckpt "not a checkpoint" $TRAIN sample "$T"
expect_error sample_bad_temperature "--temperature: 'hot'" $TRAIN sample "$T/run" --temperature hot
expect_error sample_bad_top_p "--top-p: '1.5'" $TRAIN sample "$T/run" --top-p 1.5
expect_error sample_unknown_option "unknown option '--beam'" $TRAIN sample "$T/run" --beam 4

# eval: the same number training printed for the same batches; all batches by default
want=$(grep -E '^step +120 \| val loss' "$T/train.log" | sed -E 's/.*val loss ([0-9.]+).*/\1/')
got=$($TRAIN eval "$T/run" eval_steps=3 | sed -E 's/.*val loss ([0-9.]+),.*/\1/')
[ -n "$want" ] && [ "$want" = "$got" ] && pass eval_matches_training || fail eval_matches_training "'$got' vs '$want'"
$TRAIN eval "$T/run" >"$T/e1" && grep -qE "val loss [0-9.]+, perplexity [0-9.]+ \([0-9]+ batches of 4 x 48" "$T/e1" &&
    pass eval_all_batches || fail eval_all_batches "$(cat "$T/e1")"
# eval --positions: the loss at each span of positions; equal spans average to the whole loss
$TRAIN eval "$T/run" eval_steps=3 --positions 4 >"$T/pos" 2>&1
all=$(sed -nE 's/.*val loss ([0-9.]+),.*/\1/p' "$T/pos")
[ "$(grep -cE '^positions [0-9]+-[0-9]+: val loss [0-9.]+$' "$T/pos")" -eq 4 ] && grep -q "^positions 36-47:" "$T/pos" &&
    awk -v a="$all" '/^positions/ { s += $NF; n++ } END { d = s / n - a; exit !(n == 4 && d < 2e-4 && d > -2e-4) }' "$T/pos" &&
    pass eval_by_position || fail eval_by_position "$(cat "$T/pos")"
expect_error eval_positions_too_many "more spans than seq_len (48)" $TRAIN eval "$T/run" --positions 49
expect_error eval_unknown_key "eval: command line: unknown key 'val'" $TRAIN eval "$T/run" val=x
expect_error eval_missing_val_data "no files match" $TRAIN eval "$T/run" val_data="$T/none_*.bin"
# every attention kind samples with its decoding state exactly as with full forwards
for kind in polynomial "polysketch sketch_size=8 attn_block=16 local_exact=1" "polysketch sketch_size=8 attn_block=16 local_exact=0" \
            "polysketch sketch=learned sketch_size=8 attn_block=16 local_exact=0"; do
    name=$(echo "$kind" | tr ' =' '_-')
    $TRAIN config/default.cfg n_layer=2 n_head=2 n_embd=32 block_size=48 batch_size=4 seq_len=48 max_steps=30 \
        eval_interval=0 warmup_steps=5 lr=3e-3 train_data="$T/data/train_*.bin" val_data="$T/data/val_*.bin" \
        attention=$kind out_dir="$T/g_$name" >/dev/null 2>&1
    K="$TRAIN sample $T/g_$name --prompt Whale --max-new-tokens 100 --temperature 0"
    $K >"$T/k1" 2>&1 && $K --no-cache >"$T/k2" 2>&1
    cmp -s "$T/k1" "$T/k2" && [ "$(wc -c <"$T/k1")" -gt 100 ] && pass "decode_matches_forward_$name" ||
        fail "decode_matches_forward_$name" "$(head -c 120 "$T/k1") | $(head -c 120 "$T/k2")"
done
# a polynomial model evaluated as PolySketch with one exact block of the whole sequence (b = T, local exact:
# its LayerNorms stand in for the local ones) is the same model; a sketch of size 8 is not
ev() { $TRAIN eval "$T/g_polynomial" eval_steps=3 "$@" 2>/dev/null | sed -nE 's/.*val loss ([0-9.]+),.*/\1/p'; }
lp=$(ev); lx=$(ev attention=polysketch attn_block=48 local_exact=1); ls8=$(ev attention=polysketch attn_block=48 local_exact=0 sketch_size=8)
[ -n "$lp" ] && [ -n "$ls8" ] && awk -v a="$lp" -v b="$lx" -v c="$ls8" 'BEGIN { d = a - b; exit !(d < 2e-4 && d > -2e-4 && a != c) }' &&
    pass eval_converts_polynomial_to_polysketch || fail eval_converts_polynomial_to_polysketch "$lp $lx $ls8"
$TRAIN sample "$T/g_polynomial" --prompt Whale --max-new-tokens 20 attention=polysketch attn_block=16 >"$T/c1" 2>"$T/c1.err"
[ $? -eq 0 ] && grep -q "q_norm_local.weight = qk_norm.weight" "$T/c1.err" && [ "$(wc -c <"$T/c1")" -gt 20 ] &&
    pass sample_converts_attention || fail sample_converts_attention "$(cat "$T/c1.err")"
# bench/sketch_error.sh on that model: the exact loss, then a row per sketch size with each seed's loss
TRAIN=$TRAIN SIZES=8 SEEDS="1 2" BLOCK=16 EVAL_ARGS="eval_steps=2" bench/sketch_error.sh "$T/g_polynomial" >"$T/se" 2>&1
grep -qE "exact polynomial [0-9.]+;" "$T/se" && grep -qE "^8 +[0-9.]+ [0-9.]+ \([+-][0-9.]+\) +[0-9.]+ [0-9.]+ \([+-][0-9.]+\)$" "$T/se" &&
    pass bench_sketch_error || fail bench_sketch_error "$(cat "$T/se")"
expect_error sample_bad_key "sample: command line: unknown key 'atention'" $TRAIN sample "$T/run" atention=polysketch
# Hugging Face directories sample and evaluate too
$TRAIN sample hf:tests/data/hf_tiny --max-new-tokens 3 --temperature 0 >/dev/null 2>"$T/hf.err"
grep -q "vocabulary (192) is smaller" "$T/hf.err" && pass hf_vocab_checked || fail hf_vocab_checked "$(cat "$T/hf.err")"
exit 0
