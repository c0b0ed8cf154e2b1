/* The tokenizer: any bytes encode to valid ids that decode back to the same
 * bytes (with and without special tokens); any ids decode without harm. */
#include "../../tokenizer/bpe.h"
#include "fuzz.h"

static Bpe *bpe;
static BpeCtx *ctx;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    if (!bpe) {
        Err e;
        const char *dir = getenv("TRAIN_ASSETS") ? getenv("TRAIN_ASSETS") : "assets";
        if (bpe_load_dir(&bpe, dir, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            abort();
        }
        ctx = bpe_ctx_new(bpe);
    }
    TokVec v = {0};
    bpe_encode(ctx, (const char *)data, n, n && (data[0] & 1), &v);
    unsigned char *back = malloc(n + 16);
    size_t m = 0;
    for (size_t i = 0; i < v.n; i++) {
        size_t k;
        const unsigned char *s = bpe_token_bytes(bpe, v.ids[i], &k);
        if (!s || m + k > n) __builtin_trap(); /* an id outside the vocabulary, or too many bytes */
        memcpy(back + m, s, k);
        m += k;
    }
    if (m != n || (n && memcmp(back, data, n) != 0)) __builtin_trap(); /* not a round trip */
    free(back);
    tokvec_free(&v);
    for (size_t i = 0; i + 1 < n; i += 2) { /* the bytes as ids, some out of range */
        size_t k;
        bpe_token_bytes(bpe, (int)((data[i] | data[i + 1] << 8) % 50300) - 20, &k);
    }
    return 0;
}
