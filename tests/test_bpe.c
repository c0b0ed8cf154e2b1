/* Tokenizer tests: ids against tiktoken's (tests/data/tokenizer_refs.jsonl,
 * made by scripts/make_tokenizer_refs.js), round trips of arbitrary bytes,
 * agreement of the two merge algorithms and of the cache, and load errors. */
#include <jansson.h>
#include <unistd.h>
#include <string.h>

#include "../common/rng.h"
#include "../tokenizer/bpe.h"
#include "test.h"

static Bpe *bpe;

static void decode(const TokVec *v, char **out, size_t *len) {
    size_t n = 0, cap = 64;
    char *buf = xmalloc(cap);
    for (size_t i = 0; i < v->n; i++) {
        size_t k;
        const unsigned char *s = bpe_token_bytes(bpe, v->ids[i], &k);
        if (!s) continue;
        while (n + k > cap) buf = xrealloc(buf, cap *= 2);
        memcpy(buf + n, s, k);
        n += k;
    }
    *out = buf;
    *len = n;
}

static uint64_t hash_ids(const TokVec *v) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < v->n; i++)
        for (int b = 0; b < 4; b++) h = (h ^ (((uint32_t)v->ids[i] >> (8 * b)) & 255)) * 0x100000001b3ULL;
    return h;
}

static void test_reference_ids(void) {
    FILE *f = fopen("tests/data/tokenizer_refs.jsonl", "r");
    CHECK(f != NULL, "tests/data/tokenizer_refs.jsonl is missing");
    if (!f) return;
    BpeCtx *c = bpe_ctx_new(bpe);
    char line[1 << 16];
    int texts = 0;
    while (fgets(line, sizeof line, f)) {
        json_error_t je;
        json_t *r = json_loads(line, JSON_ALLOW_NUL, &je);
        CHECK(r != NULL, "bad reference line: %s", je.text);
        if (!r) continue;
        const char *name = json_string_value(json_object_get(r, "name"));
        json_t *text = json_object_get(r, "text"), *ids = json_object_get(r, "ids");
        if (strcmp(name, "moby_dick_full") == 0) {
            size_t len;
            char path[4096];
            snprintf(path, sizeof path, "%s/moby_dick.txt", test_assets());
            char *moby = test_slurp(path, &len);
            CHECK(moby != NULL, "%s missing", path);
            if (moby) {
                TokVec v = {0};
                bpe_encode(c, moby, len, 0, &v);
                char hex[32];
                snprintf(hex, sizeof hex, "%llx", (unsigned long long)hash_ids(&v));
                CHECK((json_int_t)v.n == json_integer_value(json_object_get(r, "count")),
                      "Moby-Dick: %zu tokens", v.n);
                CHECK(strcmp(hex, json_string_value(json_object_get(r, "fnv1a64"))) == 0,
                      "Moby-Dick ids hash %s differs from tiktoken's", hex);
                tokvec_free(&v);
                free(moby);
            }
        } else {
            texts++;
            TokVec v = {0};
            size_t n = json_string_length(text);
            bpe_encode(c, json_string_value(text), n, json_is_true(json_object_get(r, "special")), &v);
            int same = v.n == json_array_size(ids);
            for (size_t i = 0; same && i < v.n; i++)
                same = v.ids[i] == json_integer_value(json_array_get(ids, i));
            CHECK(same, "text '%s': ids differ from tiktoken (%zu vs %zu ids)", name, v.n,
                  json_array_size(ids));
            char *back;
            size_t blen;
            decode(&v, &back, &blen);
            CHECK(blen == n && memcmp(back, json_string_value(text), n) == 0, "'%s' does not round-trip", name);
            free(back);
            tokvec_free(&v);
        }
        json_decref(r);
    }
    fclose(f);
    CHECK(texts >= 30, "only %d reference texts", texts);
    bpe_ctx_free(c);
}

/* Random byte strings: uniform bytes, mostly ASCII, and UTF-8 with damage. */
static size_t random_text(Rng *r, char *buf, int kind) {
    size_t n = rng_below(r, 400);
    for (size_t i = 0; i < n;) {
        if (kind == 0) {
            buf[i++] = (char)rng_below(r, 256);
        } else if (kind == 1) {
            buf[i++] = (char)(rng_below(r, 10) ? 32 + rng_below(r, 95) : rng_below(r, 256));
        } else { /* valid UTF-8 code points, with an occasional stray byte or cut */
            uint32_t cp = (uint32_t)rng_below(r, 4) == 0 ? (uint32_t)rng_below(r, 0x110000) : (uint32_t)rng_below(r, 0x3000);
            if (cp >= 0xD800 && cp < 0xE000) cp = 'x';
            unsigned char u[4];
            int k = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
            if (k == 1) u[0] = (unsigned char)cp;
            if (k == 2) u[0] = (unsigned char)(0xC0 | cp >> 6);
            if (k == 3) u[0] = (unsigned char)(0xE0 | cp >> 12);
            if (k == 4) u[0] = (unsigned char)(0xF0 | cp >> 18);
            for (int j = 1; j < k; j++) u[j] = (unsigned char)(0x80 | ((cp >> (6 * (k - 1 - j))) & 0x3F));
            if (rng_below(r, 30) == 0) k = 1 + (int)rng_below(r, (uint64_t)k); /* cut short */
            for (int j = 0; j < k && i < n; j++) buf[i++] = (char)u[j];
        }
    }
    return n;
}

static void test_round_trip_random_bytes(void) {
    BpeCtx *c = bpe_ctx_new(bpe);
    Rng r;
    rng_seed(&r, 7, 0);
    char buf[512];
    int bad = 0;
    for (int t = 0; t < 6000; t++) {
        size_t n = random_text(&r, buf, t % 3);
        if (t % 50 == 0 && n > 20) memcpy(buf + n / 2, "<|endoftext|>", 13);
        TokVec v = {0};
        bpe_encode(c, buf, n, t % 2, &v);
        char *back;
        size_t blen;
        decode(&v, &back, &blen);
        int ok = blen == n && memcmp(back, buf, n) == 0;
        for (size_t i = 0; i < v.n; i++) ok &= v.ids[i] >= 0 && v.ids[i] < bpe_vocab_size(bpe);
        bad += !ok;
        free(back);
        tokvec_free(&v);
    }
    CHECK(bad == 0, "%d of 6000 random byte strings did not round-trip", bad);
    bpe_ctx_free(c);
}

static void test_heap_merge_and_cache_agree(void) {
    BpeCtx *plain = bpe_ctx_new(bpe), *heap = bpe_ctx_new(bpe);
    bpe_ctx_tune(plain, (size_t)-1, 0); /* simple merge everywhere, no cache */
    bpe_ctx_tune(heap, 0, 1);           /* heap merge everywhere, with cache */
    Rng r;
    rng_seed(&r, 11, 0);
    char buf[512];
    int bad = 0;
    for (int t = 0; t < 3000; t++) {
        size_t n = random_text(&r, buf, t % 3);
        TokVec a = {0}, b = {0};
        bpe_encode(plain, buf, n, 0, &a);
        bpe_encode(heap, buf, n, 0, &b);
        bad += a.n != b.n || (a.n && memcmp(a.ids, b.ids, a.n * sizeof *a.ids) != 0);
        tokvec_free(&a);
        tokvec_free(&b);
    }
    CHECK(bad == 0, "%d random texts tokenized differently by the two merge paths", bad);

    /* long single pieces: runs of letters, digits, punctuation, spaces */
    const char *seeds[] = {"abcdefghij", "0123456789", "!?.,;:-()", "   \t", "\xff\xfe"};
    for (int s = 0; s < 5; s++) {
        size_t n = 5000, k = strlen(seeds[s]);
        char *p = xmalloc(n);
        for (size_t i = 0; i < n; i++) p[i] = seeds[s][rng_below(&r, k)];
        TokVec a = {0}, b = {0};
        bpe_encode(plain, p, n, 0, &a);
        bpe_encode(heap, p, n, 0, &b);
        CHECK(a.n == b.n && memcmp(a.ids, b.ids, a.n * sizeof *a.ids) == 0,
              "long piece %d: merge paths differ", s);
        char *back;
        size_t blen;
        decode(&b, &back, &blen);
        CHECK(blen == n && memcmp(back, p, n) == 0, "long piece %d does not round-trip", s);
        free(back);
        free(p);
        tokvec_free(&a);
        tokvec_free(&b);
    }
    bpe_ctx_free(plain);
    bpe_ctx_free(heap);
}

/* Every token's own bytes round-trip, and the marker is special only on request. */
static void test_every_token_and_special(void) {
    BpeCtx *c = bpe_ctx_new(bpe);
    int bad = 0;
    for (int id = 0; id < bpe_vocab_size(bpe); id++) {
        size_t n;
        const unsigned char *s = bpe_token_bytes(bpe, id, &n);
        TokVec v = {0};
        bpe_encode(c, (const char *)s, n, 0, &v);
        char *back;
        size_t blen;
        decode(&v, &back, &blen);
        bad += blen != n || memcmp(back, s, n) != 0;
        free(back);
        tokvec_free(&v);
    }
    CHECK(bad == 0, "%d tokens' bytes do not round-trip", bad);
    CHECK(bpe_vocab_size(bpe) == 50257 && bpe_eot(bpe) == 50256, "vocab %d eot %d",
          bpe_vocab_size(bpe), bpe_eot(bpe));
    size_t n;
    CHECK(bpe_token_bytes(bpe, 50257, &n) == NULL && bpe_token_bytes(bpe, -1, &n) == NULL,
          "out-of-range ids must have no bytes");
    TokVec v = {0};
    bpe_encode(c, "<|endoftext|>", 13, 0, &v);
    int has_eot = 0;
    for (size_t i = 0; i < v.n; i++) has_eot |= v.ids[i] == 50256;
    CHECK(!has_eot && v.n > 1, "ordinary text must not produce the special token");
    v.n = 0;
    bpe_encode(c, "<|endoftext|>", 13, 1, &v);
    CHECK(v.n == 1 && v.ids[0] == 50256, "allow_special must give exactly [50256]");
    tokvec_free(&v);
    bpe_ctx_free(c);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void test_load_errors(void) {
    Err e;
    Bpe *b = NULL;
    CHECK(bpe_load(&b, "/nonexistent/encoder.json", "/nonexistent/vocab.bpe", &e) == -1 &&
              strstr(e.msg, "/nonexistent/encoder.json") && strstr(e.msg, "setup.sh"),
          "missing file: %s", e.msg);
    char dir[] = "/tmp/test_bpe_XXXXXX", enc[64], voc[64], real_enc[4096];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(enc, sizeof enc, "%s/encoder.json", dir);
    snprintf(voc, sizeof voc, "%s/vocab.bpe", dir);
    snprintf(real_enc, sizeof real_enc, "%s/encoder.json", test_assets());
    write_file(enc, "{\"a\": 0, \"b\": ");
    CHECK(bpe_load(&b, enc, voc, &e) == -1 && strstr(e.msg, enc), "bad JSON: %s", e.msg);
    write_file(voc, "#version: 0.2\n\xc4\xa0 t\nnot-a-merge\n");
    CHECK(bpe_load(&b, real_enc, voc, &e) == -1 && strstr(e.msg, "vocab.bpe:3"), "bad merge line: %s", e.msg);
    unlink(enc);
    unlink(voc);
    rmdir(dir);
}

int main(void) {
    Err e;
    if (bpe_load_dir(&bpe, test_assets(), &e)) {
        printf("FAIL load_tokenizer: %s\n", e.msg);
        return 1;
    }
    RUN(test_reference_ids);
    RUN(test_round_trip_random_bytes);
    RUN(test_heap_merge_and_cache_agree);
    RUN(test_every_token_and_special);
    RUN(test_load_errors);
    bpe_free(bpe);
    return 0;
}
