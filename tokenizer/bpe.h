/* GPT-2's byte-level BPE tokenizer: encode and decode, identical to OpenAI's
 * encoder (and tiktoken's "gpt2" encoding) on every valid UTF-8 text.
 *
 * Pre-tokenisation uses GPT-2's regex, run by PCRE2 (UTF, UCP, JIT):
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * with \s spelled out as Unicode's White_Space property, which is what the
 * reference implementations mean by it (PCRE2's own \s differs on U+180E).
 *
 * Bytes that are not valid UTF-8 cannot be matched by the regex: each maximal
 * run of them becomes one piece of its own and is BPE-encoded byte-wise, so any
 * byte string round-trips, decode(encode(x)) == x.
 *
 * The text "<|endoftext|>" is ordinary text unless the caller passes
 * allow_special; then each occurrence becomes the single special token 50256.
 * Data preparation never sets it: documents are separated by inserting the id,
 * so a document that quotes the marker cannot forge a boundary.
 *
 * A Bpe is read-only once loaded and may be shared by threads; each thread
 * encodes through its own BpeCtx (regex match state and a piece cache). */
#ifndef TOKENIZER_BPE_H
#define TOKENIZER_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/err.h"

typedef struct Bpe Bpe;
typedef struct BpeCtx BpeCtx;

typedef struct {
    int32_t *ids;
    size_t n, cap;
} TokVec;

void tokvec_push(TokVec *v, int32_t id);
void tokvec_append(TokVec *v, const int32_t *ids, size_t n);
void tokvec_free(TokVec *v);

/* Loads encoder.json and vocab.bpe. Errors name the file (and line). */
int bpe_load(Bpe **out, const char *encoder_json, const char *vocab_bpe, Err *e);
/* Loads DIR/encoder.json and DIR/vocab.bpe. */
int bpe_load_dir(Bpe **out, const char *dir, Err *e);
void bpe_free(Bpe *b);

int bpe_vocab_size(const Bpe *b);   /* 50257 for GPT-2 */
int bpe_eot(const Bpe *b);          /* id of <|endoftext|> (50256) */

BpeCtx *bpe_ctx_new(const Bpe *b);
void bpe_ctx_free(BpeCtx *c);

/* Appends the ids of text[0:len] to out. */
void bpe_encode(BpeCtx *c, const char *text, size_t len, int allow_special, TokVec *out);

/* The bytes of one token; NULL (and *len 0) for an id outside the vocabulary. */
const unsigned char *bpe_token_bytes(const Bpe *b, int id, size_t *len);

/* For tests: force the O(n log n) heap merge on pieces longer than `n` bytes
 * (default 64); pass 0 to use it everywhere. Also turns the cache on or off. */
void bpe_ctx_tune(BpeCtx *c, size_t heap_threshold, int use_cache);

#endif
