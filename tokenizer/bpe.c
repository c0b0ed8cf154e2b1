/* GPT-2 byte-level BPE: loading the vocabulary, pre-tokenising with PCRE2,
 * merging, a per-thread piece cache, and decoding. See bpe.h. */
#include "bpe.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>

/* ------------------------------------------------------------------------ */
/* data structures                                                          */

struct Bpe {
    int n_vocab;
    int eot;                  /* id of "<|endoftext|>", -1 if absent */
    uint32_t *tok_off;        /* [n_vocab + 1] offsets into tok_bytes */
    unsigned char *tok_bytes; /* the bytes of every token, back to back */
    int32_t byte_id[256];     /* the token of each single byte */
    /* (left id, right id) -> merge rank and merged id, open addressing */
    uint64_t *pair_key;       /* left << 32 | right; PAIR_EMPTY when free */
    int32_t *pair_rank, *pair_id;
    size_t pair_mask;
    pcre2_code *re;
};

#define PAIR_EMPTY UINT64_MAX
#define CACHE_BITS 14
#define CACHE_KEY 30
#define CACHE_IDS 8

typedef struct {
    uint8_t klen, nid;           /* klen 0: empty slot */
    char key[CACHE_KEY];
    uint16_t ids[CACHE_IDS];
} CacheEntry;                    /* 48 bytes */

typedef struct {
    int32_t rank, pos;
} HeapItem;

struct BpeCtx {
    const Bpe *bpe;
    pcre2_match_data *md;
    pcre2_match_context *mc;
    pcre2_jit_stack *js;
    size_t heap_threshold;
    int use_cache;
    CacheEntry *cache;           /* [1 << CACHE_BITS], NULL if off */
    /* merge scratch, grown on demand and kept */
    size_t cap;
    int32_t *sym, *rank, *mid, *prev, *next;
    HeapItem *heap;
};

/* GPT-2's pattern with \s written as the White_Space property. */
#define WS "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}" \
           "\\x{202F}\\x{205F}\\x{3000}"
static const char *GPT2_PATTERN =
    "'(?:s|t|re|ve|m|ll|d)| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+"
    "|[" WS "]+(?![^" WS "])|[" WS "]+";

static const char SPECIAL_EOT[] = "<|endoftext|>";

void tokvec_push(TokVec *v, int32_t id) {
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 256;
        v->ids = xrealloc(v->ids, v->cap * sizeof *v->ids);
    }
    v->ids[v->n++] = id;
}

void tokvec_append(TokVec *v, const int32_t *ids, size_t n) {
    if (v->n + n > v->cap) {
        while (v->n + n > v->cap) v->cap = v->cap ? 2 * v->cap : 256;
        v->ids = xrealloc(v->ids, v->cap * sizeof *v->ids);
    }
    if (n) memcpy(v->ids + v->n, ids, n * sizeof *ids);
    v->n += n;
}

void tokvec_free(TokVec *v) {
    free(v->ids);
    v->ids = NULL;
    v->n = v->cap = 0;
}

static uint64_t fnv1a(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ULL;
    return h;
}

static inline size_t pair_slot(uint64_t key, size_t mask) {
    return (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 20) & mask;
}

/* Rank of merging (a, b), INT_MAX if the pair never merges; *merged gets its id. */
static inline int32_t pair_get(const Bpe *b, int32_t x, int32_t y, int32_t *merged) {
    uint64_t key = (uint64_t)(uint32_t)x << 32 | (uint32_t)y;
    for (size_t i = pair_slot(key, b->pair_mask);; i = (i + 1) & b->pair_mask) {
        if (b->pair_key[i] == key) {
            *merged = b->pair_id[i];
            return b->pair_rank[i];
        }
        if (b->pair_key[i] == PAIR_EMPTY) return INT_MAX;
    }
}

/* ------------------------------------------------------------------------ */
/* loading                                                                  */

/* GPT-2's bytes_to_unicode(): printable bytes stand for themselves, the
 * others are shifted to code points 256 and up, in byte order. */
static void byte_unicode_map(int b2u[256], int u2b[512]) {
    int n = 0;
    for (int i = 0; i < 512; i++) u2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        b2u[b] = printable ? b : 256 + n++;
        u2b[b2u[b]] = b;
    }
}

/* Decodes a vocabulary string (UTF-8 of mapped code points) into raw bytes.
 * Returns the byte count, or -1 if a character is not part of the mapping. */
static int unmap_token(const char *s, size_t n, const int u2b[512], unsigned char *out) {
    int k = 0;
    for (size_t i = 0; i < n;) {
        unsigned c = (unsigned char)s[i];
        unsigned cp;
        if (c < 0x80) {
            cp = c;
            i += 1;
        } else if ((c & 0xE0) == 0xC0 && i + 1 < n) {
            cp = (c & 0x1F) << 6 | ((unsigned char)s[i + 1] & 0x3F);
            i += 2;
        } else {
            return -1; /* every mapped code point is below U+0800 */
        }
        if (cp >= 512 || u2b[cp] < 0) return -1;
        out[k++] = (unsigned char)u2b[cp];
    }
    return k;
}

static int read_file(const char *path, char **data, size_t *len, Err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return err_sys(e, "%s: cannot open (run scripts/setup.sh to fetch the tokenizer)", path);
    size_t cap = 1 << 20, n = 0;
    char *buf = xmalloc(cap + 1);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = xrealloc(buf, (cap *= 2) + 1);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return err_sys(e, "%s: read error", path);
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}

/* Temporary map from token bytes to id, used while reading vocab.bpe. */
typedef struct {
    int32_t *slot;
    size_t mask;
} BytesMap;

static int32_t bytesmap_get(const BytesMap *m, const Bpe *b, const unsigned char *s, size_t n) {
    for (size_t i = fnv1a(s, n) & m->mask;; i = (i + 1) & m->mask) {
        int32_t id = m->slot[i];
        if (id < 0) return -1;
        size_t len = b->tok_off[id + 1] - b->tok_off[id];
        if (len == n && memcmp(b->tok_bytes + b->tok_off[id], s, n) == 0) return id;
    }
}

static int load_encoder(Bpe *b, const char *path, const int u2b[512], Err *e) {
    char *text;
    size_t len;
    if (read_file(path, &text, &len, e)) return -1;
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    free(text);
    if (!json_is_object(root)) {
        if (root) json_decref(root);
        return err_set(e, "%s:%d: expected a JSON object of token -> id (%s); re-run "
                          "scripts/setup.sh", path, root ? 1 : je.line, root ? "not an object" : je.text);
    }
    size_t n = json_object_size(root);
    if (n < 256 || n > (1 << 24)) {
        json_decref(root);
        return err_set(e, "%s: %zu entries, expected a GPT-2 vocabulary", path, n);
    }
    b->n_vocab = (int)n;
    b->eot = -1;
    b->tok_off = xcalloc(n + 1, sizeof *b->tok_off);
    uint32_t *lens = xcalloc(n, sizeof *lens);
    unsigned char **bytes = xcalloc(n, sizeof *bytes);
    unsigned char tmp[1024];
    int rc = 0;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        json_int_t id = json_is_integer(val) ? json_integer_value(val) : -1;
        size_t klen = strlen(key);
        int blen = klen < sizeof tmp / 2 ? unmap_token(key, klen, u2b, tmp) : -1;
        if (id < 0 || id >= (json_int_t)n || bytes[id] || blen <= 0) {
            rc = err_set(e, "%s: bad entry \"%.40s\" (ids must be unique integers 0..%zu "
                            "and tokens GPT-2 byte strings)", path, key, n - 1);
            break;
        }
        bytes[id] = memcpy(xmalloc((size_t)blen), tmp, (size_t)blen);
        lens[id] = (uint32_t)blen;
        if (strcmp(key, SPECIAL_EOT) == 0) b->eot = (int)id;
    }
    json_decref(root);
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) b->tok_off[i + 1] = b->tok_off[i] + lens[i];
        b->tok_bytes = xmalloc(b->tok_off[n]);
        for (size_t i = 0; i < n; i++) memcpy(b->tok_bytes + b->tok_off[i], bytes[i], lens[i]);
    }
    for (size_t i = 0; i < n; i++) free(bytes[i]);
    free(bytes);
    free(lens);
    return rc;
}

static int load_merges(Bpe *b, const char *path, const int u2b[512], Err *e) {
    char *text;
    size_t len;
    if (read_file(path, &text, &len, e)) return -1;

    BytesMap m;
    m.mask = 1;
    while (m.mask < 2 * (size_t)b->n_vocab) m.mask <<= 1;
    m.slot = xmalloc(m.mask * sizeof *m.slot);
    memset(m.slot, 0xff, m.mask * sizeof *m.slot);
    m.mask -= 1;
    for (int id = 0; id < b->n_vocab; id++) {
        const unsigned char *s = b->tok_bytes + b->tok_off[id];
        size_t n = b->tok_off[id + 1] - b->tok_off[id];
        size_t i = fnv1a(s, n) & m.mask;
        while (m.slot[i] >= 0) i = (i + 1) & m.mask;
        m.slot[i] = id;
    }
    for (int c = 0; c < 256; c++) {
        unsigned char byte = (unsigned char)c;
        b->byte_id[c] = bytesmap_get(&m, b, &byte, 1);
    }

    size_t cap = 1;
    while (cap < 2 * (size_t)b->n_vocab) cap <<= 1;
    b->pair_mask = cap - 1;
    b->pair_key = xmalloc(cap * sizeof *b->pair_key);
    b->pair_rank = xmalloc(cap * sizeof *b->pair_rank);
    b->pair_id = xmalloc(cap * sizeof *b->pair_id);
    for (size_t i = 0; i < cap; i++) b->pair_key[i] = PAIR_EMPTY;

    int rc = 0, rank = 0;
    long lineno = 0;
    unsigned char left[512], right[512], both[1024];
    for (char *line = text, *end; rc == 0 && line < text + len; line = end + 1) {
        end = memchr(line, '\n', (size_t)(text + len - line));
        if (!end) end = text + len;
        lineno++;
        size_t n = (size_t)(end - line);
        if (n && line[n - 1] == '\r') n--;
        if (n == 0 || (lineno == 1 && strncmp(line, "#version", 8) == 0)) continue;
        char *sp = memchr(line, ' ', n);
        int nl = -1, nr = -1;
        if (sp && n < sizeof left) {
            nl = unmap_token(line, (size_t)(sp - line), u2b, left);
            nr = unmap_token(sp + 1, (size_t)(line + n - sp - 1), u2b, right);
        }
        int32_t a = nl > 0 ? bytesmap_get(&m, b, left, (size_t)nl) : -1;
        int32_t c = nr > 0 ? bytesmap_get(&m, b, right, (size_t)nr) : -1;
        int32_t ab = -1;
        if (a >= 0 && c >= 0) {
            memcpy(both, left, (size_t)nl);
            memcpy(both + nl, right, (size_t)nr);
            ab = bytesmap_get(&m, b, both, (size_t)(nl + nr));
        }
        if (ab < 0) {
            rc = err_set(e, "%s:%ld: expected a merge \"A B\" of two tokens whose "
                            "concatenation is a token", path, lineno);
            break;
        }
        uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)c;
        size_t i = pair_slot(key, b->pair_mask);
        while (b->pair_key[i] != PAIR_EMPTY && b->pair_key[i] != key) i = (i + 1) & b->pair_mask;
        if (b->pair_key[i] == PAIR_EMPTY) { /* the first (lowest-rank) occurrence wins */
            b->pair_key[i] = key;
            b->pair_rank[i] = rank;
            b->pair_id[i] = ab;
        }
        rank++;
    }
    free(m.slot);
    free(text);
    if (rc == 0 && rank == 0) rc = err_set(e, "%s: no merges found", path);
    for (int c = 0; rc == 0 && c < 256; c++)
        if (b->byte_id[c] < 0) rc = err_set(e, "%s: byte 0x%02x has no token", path, c);
    return rc;
}

int bpe_load(Bpe **out, const char *encoder_json, const char *vocab_bpe, Err *e) {
    int b2u[256], u2b[512];
    byte_unicode_map(b2u, u2b);
    Bpe *b = xcalloc(1, sizeof *b);
    *out = NULL;
    if (load_encoder(b, encoder_json, u2b, e) || load_merges(b, vocab_bpe, u2b, e)) {
        bpe_free(b);
        return -1;
    }
    int code;
    PCRE2_SIZE off;
    b->re = pcre2_compile((PCRE2_SPTR)GPT2_PATTERN, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &off, NULL);
    if (!b->re) {
        bpe_free(b);
        return err_set(e, "PCRE2 could not compile GPT-2's pattern (error %d at %zu); "
                          "PCRE2 >= 10.34 with Unicode support is needed", code, (size_t)off);
    }
    pcre2_jit_compile(b->re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    *out = b;
    return 0;
}

int bpe_load_dir(Bpe **out, const char *dir, Err *e) {
    char enc[4096], voc[4096];
    snprintf(enc, sizeof enc, "%s/encoder.json", dir);
    snprintf(voc, sizeof voc, "%s/vocab.bpe", dir);
    return bpe_load(out, enc, voc, e);
}

void bpe_free(Bpe *b) {
    if (!b) return;
    free(b->tok_off);
    free(b->tok_bytes);
    free(b->pair_key);
    free(b->pair_rank);
    free(b->pair_id);
    if (b->re) pcre2_code_free(b->re);
    free(b);
}

int bpe_vocab_size(const Bpe *b) { return b->n_vocab; }
int bpe_eot(const Bpe *b) { return b->eot; }

const unsigned char *bpe_token_bytes(const Bpe *b, int id, size_t *len) {
    if (id < 0 || id >= b->n_vocab) {
        *len = 0;
        return NULL;
    }
    *len = b->tok_off[id + 1] - b->tok_off[id];
    return b->tok_bytes + b->tok_off[id];
}

/* ------------------------------------------------------------------------ */
/* per-thread context                                                       */

BpeCtx *bpe_ctx_new(const Bpe *b) {
    BpeCtx *c = xcalloc(1, sizeof *c);
    c->bpe = b;
    c->md = pcre2_match_data_create_from_pattern(b->re, NULL);
    c->mc = pcre2_match_context_create(NULL);
    c->js = pcre2_jit_stack_create(64 << 10, 64 << 20, NULL);
    if (!c->md || !c->mc) {
        fprintf(stderr, "error: out of memory creating PCRE2 match data\n");
        abort();
    }
    if (c->js) pcre2_jit_stack_assign(c->mc, NULL, c->js);
    c->heap_threshold = 64;
    bpe_ctx_tune(c, 64, 1);
    return c;
}

void bpe_ctx_tune(BpeCtx *c, size_t heap_threshold, int use_cache) {
    c->heap_threshold = heap_threshold;
    c->use_cache = use_cache && c->bpe->n_vocab <= 65536;
    if (c->use_cache && !c->cache) c->cache = xcalloc((size_t)1 << CACHE_BITS, sizeof *c->cache);
    if (c->cache) memset(c->cache, 0, ((size_t)1 << CACHE_BITS) * sizeof *c->cache);
}

void bpe_ctx_free(BpeCtx *c) {
    if (!c) return;
    pcre2_match_data_free(c->md);
    pcre2_match_context_free(c->mc);
    if (c->js) pcre2_jit_stack_free(c->js);
    free(c->cache);
    free(c->sym);
    free(c->rank);
    free(c->mid);
    free(c->prev);
    free(c->next);
    free(c->heap);
    free(c);
}

static void ctx_reserve(BpeCtx *c, size_t n) {
    if (n <= c->cap) return;
    c->cap = n + n / 2;
    c->sym = xrealloc(c->sym, c->cap * sizeof *c->sym);
    c->rank = xrealloc(c->rank, c->cap * sizeof *c->rank);
    c->mid = xrealloc(c->mid, c->cap * sizeof *c->mid);
    c->prev = xrealloc(c->prev, c->cap * sizeof *c->prev);
    c->next = xrealloc(c->next, c->cap * sizeof *c->next);
    c->heap = xrealloc(c->heap, 3 * c->cap * sizeof *c->heap);
}

/* ------------------------------------------------------------------------ */
/* merging                                                                  */

/* Short pieces: repeatedly merge the lowest-ranked adjacent pair (leftmost on
 * ties), keeping each pair's rank in an array so a merge costs two lookups. */
static void merge_simple(BpeCtx *c, const unsigned char *p, size_t n, TokVec *out) {
    const Bpe *b = c->bpe;
    int32_t *sym = c->sym, *rank = c->rank, *mid = c->mid;
    for (size_t i = 0; i < n; i++) sym[i] = b->byte_id[p[i]];
    for (size_t i = 0; i + 1 < n; i++) rank[i] = pair_get(b, sym[i], sym[i + 1], &mid[i]);
    size_t m = n;
    while (m > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < m; i++)
            if (rank[i] < rank[best]) best = i;
        if (rank[best] == INT_MAX) break;
        sym[best] = mid[best];
        m--;
        memmove(sym + best + 1, sym + best + 2, (m - best - 1) * sizeof *sym);
        memmove(rank + best + 1, rank + best + 2, (m > best + 2 ? m - best - 2 : 0) * sizeof *rank);
        memmove(mid + best + 1, mid + best + 2, (m > best + 2 ? m - best - 2 : 0) * sizeof *mid);
        if (best + 1 < m) rank[best] = pair_get(b, sym[best], sym[best + 1], &mid[best]);
        if (best > 0) rank[best - 1] = pair_get(b, sym[best - 1], sym[best], &mid[best - 1]);
    }
    for (size_t i = 0; i < m; i++) tokvec_push(out, sym[i]);
}

static inline int heap_less(HeapItem a, HeapItem b) {
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void heap_push(HeapItem *h, size_t *n, HeapItem x) {
    size_t i = (*n)++;
    while (i > 0 && heap_less(x, h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = x;
}

static HeapItem heap_pop(HeapItem *h, size_t *n) {
    HeapItem top = h[0], x = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, s = i;
        if (l < *n && heap_less(h[l], x)) s = l;
        if (l + 1 < *n && heap_less(h[l + 1], s == i ? x : h[l])) s = l + 1;
        if (s == i) break;
        h[i] = h[s];
        i = s;
    }
    if (*n) h[i] = x;
    return top;
}

/* Long pieces (runs of spaces, digits, garbage): the same merge order in
 * O(n log n), with a linked list of symbols and a heap of candidate pairs
 * keyed by (rank, position); stale candidates are skipped when popped. */
static void merge_heap(BpeCtx *c, const unsigned char *p, size_t n, TokVec *out) {
    const Bpe *b = c->bpe;
    int32_t *sym = c->sym, *prev = c->prev, *next = c->next, merged = 0;
    HeapItem *heap = c->heap;
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        sym[i] = b->byte_id[p[i]];
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        int32_t r = pair_get(b, sym[i], sym[i + 1], &merged);
        if (r != INT_MAX) heap_push(heap, &hn, (HeapItem){r, (int32_t)i});
    }
    while (hn) {
        HeapItem it = heap_pop(heap, &hn);
        int32_t i = it.pos, j = next[i];
        if (sym[i] < 0 || j < 0 || pair_get(b, sym[i], sym[j], &merged) != it.rank) continue;
        sym[i] = merged;
        sym[j] = -1; /* dead */
        next[i] = next[j];
        if (next[j] >= 0) prev[next[j]] = i;
        if (prev[i] >= 0) {
            int32_t r = pair_get(b, sym[prev[i]], sym[i], &merged);
            if (r != INT_MAX) heap_push(heap, &hn, (HeapItem){r, prev[i]});
        }
        if (next[i] >= 0) {
            int32_t r = pair_get(b, sym[i], sym[next[i]], &merged);
            if (r != INT_MAX) heap_push(heap, &hn, (HeapItem){r, i});
        }
    }
    for (int32_t i = 0; i >= 0; i = next[i]) tokvec_push(out, sym[i]);
}

static void encode_piece(BpeCtx *c, const unsigned char *p, size_t n, TokVec *out) {
    if (n == 1) {
        tokvec_push(out, c->bpe->byte_id[p[0]]);
        return;
    }
    CacheEntry *ce = NULL;
    if (c->use_cache && n <= CACHE_KEY) {
        ce = &c->cache[fnv1a(p, n) & ((1u << CACHE_BITS) - 1)];
        if (ce->klen == n && memcmp(ce->key, p, n) == 0) {
            for (int i = 0; i < ce->nid; i++) tokvec_push(out, ce->ids[i]);
            return;
        }
    }
    size_t start = out->n;
    ctx_reserve(c, n);
    if (n > c->heap_threshold)
        merge_heap(c, p, n, out);
    else
        merge_simple(c, p, n, out);
    size_t k = out->n - start;
    if (ce && k <= CACHE_IDS) {
        ce->klen = (uint8_t)n;
        ce->nid = (uint8_t)k;
        memcpy(ce->key, p, n);
        for (size_t i = 0; i < k; i++) ce->ids[i] = (uint16_t)out->ids[start + i];
    }
}

static void encode_ordinary(BpeCtx *c, const unsigned char *t, size_t len, TokVec *out) {
    size_t pos = 0;
    while (pos < len) {
        int rc = pcre2_match(c->bpe->re, t, len, pos, 0, c->md, c->mc);
        if (rc == PCRE2_ERROR_NOMATCH) { /* only invalid UTF-8 is left */
            encode_piece(c, t + pos, len - pos, out);
            return;
        }
        if (rc < 0) {
            /* Cannot happen for this pattern (no nested backtracking); if the
             * library ever fails, stopping beats emitting wrong ids. */
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            fprintf(stderr, "error: PCRE2 match failed at byte %zu: %s\n", pos, (char *)msg);
            abort();
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
        size_t s = ov[0], e = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
        if (s > pos) encode_piece(c, t + pos, s - pos, out); /* invalid UTF-8 run */
        encode_piece(c, t + s, e - s, out);
        pos = e;
    }
}

void bpe_encode(BpeCtx *c, const char *text, size_t len, int allow_special, TokVec *out) {
    const unsigned char *t = (const unsigned char *)text;
    if (allow_special && c->bpe->eot >= 0) {
        const size_t k = sizeof SPECIAL_EOT - 1;
        const unsigned char *end = t + len, *hit;
        while ((hit = memmem(t, (size_t)(end - t), SPECIAL_EOT, k)) != NULL) {
            encode_ordinary(c, t, (size_t)(hit - t), out);
            tokvec_push(out, c->bpe->eot);
            t = hit + k;
        }
        encode_ordinary(c, t, (size_t)(end - t), out);
        return;
    }
    encode_ordinary(c, t, len, out);
}
