/* Data pipeline tests: shard writer and reader, the three sources on real
 * text (Moby-Dick, the State of the Union addresses), determinism across
 * threads, the validation split, bad input, and the loader. */
#include <dirent.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../common/rng.h"
#include "../data/loader.h"
#include "../data/prepare.h"
#include "../data/shard.h"
#include "test.h"

static Bpe *bpe;
static char root[] = "/tmp/test_data_XXXXXX";

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */

static void spit(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

static void path_of(char *out, const char *name) { snprintf(out, 4096, "%s/%s", root, name); }

/* All tokens of DIR/<prefix>_*.bin in order; -1 count if a shard is invalid. */
static TokVec read_split(const char *dir, const char *prefix, int *shards) {
    TokVec v = {0};
    *shards = 0;
    for (int i = 0;; i++) {
        char p[4096];
        shard_path(p, sizeof p, dir, prefix, i);
        if (access(p, F_OK) != 0) break;
        int64_t n;
        Err e;
        if (shard_open(p, &n, &e)) {
            *shards = -1;
            return v;
        }
        size_t len;
        char *data = test_slurp(p, &len);
        const uint16_t *t = (const uint16_t *)(data + SHARD_HEADER_BYTES);
        for (int64_t k = 0; k < n; k++) tokvec_push(&v, t[k]);
        free(data);
        (*shards)++;
    }
    return v;
}

static int same_files(const char *a, const char *b) {
    size_t na, nb;
    char *x = test_slurp(a, &na), *y = test_slurp(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* Every shard file in two directories is identical, and there are as many. */
static int same_dirs(const char *a, const char *b) {
    int n = 0;
    for (int s = 0; s < 2; s++)
        for (int i = 0;; i++, n++) {
            char pa[4096], pb[4096];
            shard_path(pa, sizeof pa, a, s ? "val" : "train", i);
            shard_path(pb, sizeof pb, b, s ? "val" : "train", i);
            int ea = access(pa, F_OK) == 0, eb = access(pb, F_OK) == 0;
            if (ea != eb) return 0;
            if (!ea) break;
            if (!same_files(pa, pb)) return 0;
        }
    return n > 0;
}

/* Files in dir whose names end in .bin or .tmp. */
static int count_outputs(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t k = strlen(de->d_name);
        n += k > 4 && (strcmp(de->d_name + k - 4, ".bin") == 0 || strcmp(de->d_name + k - 4, ".tmp") == 0);
    }
    closedir(d);
    return n;
}

static int run_prepare(SourceKind kind, const char *input, const char *out, double F, int64_t shard_tokens,
                       int threads, size_t chunk, PrepareStats *st, Err *e) {
    char *inputs[1] = {(char *)input};
    PrepareOpts o = {.kind = kind, .inputs = inputs, .n_inputs = 1, .out_dir = out, .val_fraction = F,
                     .shard_tokens = shard_tokens, .threads = threads, .chunk_bytes = chunk, .bpe = bpe};
    return prepare_run(&o, st, e);
}

/* The split given: train from train_input, val from val_input (--val). */
static int run_prepare_split(SourceKind kind, const char *train_input, const char *val_input, const char *out,
                             int threads, PrepareStats *st, Err *e) {
    char *inputs[1] = {(char *)train_input}, *val[1] = {(char *)val_input};
    PrepareOpts o = {.kind = kind, .inputs = inputs, .n_inputs = 1, .val_inputs = val, .n_val_inputs = 1,
                     .out_dir = out, .shard_tokens = 100000000, .threads = threads, .bpe = bpe};
    return prepare_run(&o, st, e);
}

static void encode_doc(BpeCtx *c, const char *text, size_t n, TokVec *out) {
    tokvec_push(out, bpe_eot(bpe));
    bpe_encode(c, text, n, 0, out);
}

static int same_tokens(const TokVec *a, const TokVec *b) {
    return a->n == b->n && memcmp(a->ids, b->ids, a->n * sizeof *a->ids) == 0;
}

/* The SOTU addresses as a JSON-lines file; returns the texts' tokens (each
 * with its EOT) through docs. */
static int make_sotu_jsonl(const char *path, int gz, TokVec **docs) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/sotu", test_assets());
    StrList files = {0};
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t k = strlen(de->d_name);
        if (k > 5 && strcmp(de->d_name + k - 5, ".json") == 0) {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            strlist_push(&files, p);
        }
    }
    closedir(d);
    strlist_sort(&files);
    gzFile g = gz ? gzopen(path, "wb") : NULL;
    FILE *f = gz ? NULL : fopen(path, "w");
    BpeCtx *c = bpe_ctx_new(bpe);
    if (docs) *docs = xcalloc((size_t)files.n, sizeof **docs);
    for (int i = 0; i < files.n; i++) {
        json_t *j = json_load_file(files.s[i], 0, NULL);
        char *line = json_dumps(j, JSON_COMPACT);
        if (g) {
            gzwrite(g, line, (unsigned)strlen(line));
            gzwrite(g, "\n", 1);
        } else {
            fprintf(f, "%s\n", line);
        }
        if (docs) {
            json_t *t = json_object_get(j, "text");
            encode_doc(c, json_string_value(t), json_string_length(t), &(*docs)[i]);
        }
        free(line);
        json_decref(j);
    }
    if (g) gzclose(g);
    if (f) fclose(f);
    bpe_ctx_free(c);
    int n = files.n;
    strlist_free(&files);
    return n;
}

/* ------------------------------------------------------------------------ */
/* shards                                                                   */

static void test_shard_writer(void) {
    char dir[4096], stale[4096], stale_tmp[4200];
    path_of(dir, "shards");
    mkdir(dir, 0777);
    shard_path(stale, sizeof stale, dir, "train", 9);
    spit(stale, "old", 3);
    snprintf(stale_tmp, sizeof stale_tmp, "%s/train_000007.bin.tmp", dir); /* of a run killed before its commit */
    spit(stale_tmp, "old", 3);
    int32_t ids[1000];
    for (int i = 0; i < 1000; i++) ids[i] = (i * 7919) % 50257;
    ShardWriter w;
    Err e;
    shard_writer_init(&w, dir, "train", 300);
    CHECK(shard_writer_append(&w, ids, 650, &e) == 0 && shard_writer_append(&w, ids + 650, 350, &e) == 0,
          "append: %s", e.msg);
    CHECK(count_outputs(dir) == 6, "4 .tmp, the stale .bin and the stale .tmp expected before commit");
    int shards;
    TokVec none = read_split(dir, "train", &shards);
    CHECK(shards == 0, "no shard may look valid before commit");
    tokvec_free(&none);
    CHECK(shard_writer_finish(&w, &e) == 0 && shard_writer_commit(&w, &e) == 0, "%s", e.msg);
    shard_writer_abort(&w);
    TokVec v = read_split(dir, "train", &shards);
    CHECK(shards == 4 && v.n == 1000 && memcmp(v.ids, ids, sizeof ids) == 0, "%d shards, %zu tokens", shards, v.n);
    int64_t n;
    char p[4096];
    shard_path(p, sizeof p, dir, "train", 3);
    CHECK(shard_open(p, &n, &e) == 0 && n == 100, "last shard has %lld", (long long)n);
    CHECK(access(stale, F_OK) != 0, "a stale shard from an older run must be removed");
    CHECK(access(stale_tmp, F_OK) != 0, "a killed run's temporary must be removed");
    CHECK(count_outputs(dir) == 4, "only the 4 shards remain");
    tokvec_free(&v);

    /* abort leaves nothing */
    shard_writer_init(&w, dir, "val", 300);
    CHECK(shard_writer_append(&w, ids, 1000, &e) == 0, "%s", e.msg);
    shard_writer_abort(&w);
    CHECK(count_outputs(dir) == 4, "abort must remove its temporaries");
}

static void test_shard_open_rejects_bad_files(void) {
    char p[4096];
    path_of(p, "bad.bin");
    int32_t h[SHARD_HEADER_INTS + 2] = {SHARD_MAGIC, SHARD_VERSION, 4};
    Err e;
    int64_t n;
    struct {
        int word, value;
        size_t size;
        const char *expect;
    } cases[] = {
        {0, 12345, sizeof h, "bad magic"},
        {1, 2, sizeof h, "version 2"},
        {2, 5, sizeof h, "truncated or corrupt"},
        {2, 4, sizeof h - 2, "truncated or corrupt"},
        {0, SHARD_MAGIC, 100, "shorter than"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int32_t b[SHARD_HEADER_INTS + 2];
        memcpy(b, h, sizeof h);
        b[cases[i].word] = cases[i].value;
        spit(p, b, cases[i].size);
        CHECK(shard_open(p, &n, &e) == -1 && strstr(e.msg, p) && strstr(e.msg, cases[i].expect),
              "case %zu: %s", i, e.msg);
    }
    spit(p, h, sizeof h);
    CHECK(shard_open(p, &n, &e) == 0 && n == 4, "a valid shard must open: %s", e.msg);
    unlink(p);
}

/* ------------------------------------------------------------------------ */
/* prepare                                                                  */

static void test_prepare_moby_as_pg19_book(void) {
    char books[4096], book[4096], out1[4096], out2[4096], src[4096];
    path_of(books, "pg19");
    mkdir(books, 0777);
    snprintf(book, sizeof book, "%s/2701.txt", books);
    snprintf(src, sizeof src, "%s/moby_dick.txt", test_assets());
    size_t len;
    char *moby = test_slurp(src, &len);
    CHECK(moby != NULL, "%s missing", src);
    if (!moby) return;
    spit(book, moby, len);
    path_of(out1, "moby1");
    path_of(out2, "moby2");
    PrepareStats st;
    Err e;
    CHECK(run_prepare(SOURCE_PG19, books, out1, 0.1, 100000000, 1, 0, &st, &e) == 0, "%s", e.msg);
    CHECK(st.docs == 1 && st.val_docs == 0 && st.train_shards == 1 && st.val_shards == 1,
          "docs %lld, shards %d/%d", (long long)st.docs, st.train_shards, st.val_shards);

    BpeCtx *c = bpe_ctx_new(bpe);
    TokVec want = {0};
    encode_doc(c, moby, len, &want);
    int s1, s2;
    TokVec train = read_split(out1, "train", &s1), val = read_split(out1, "val", &s2);
    CHECK(val.n == (size_t)(want.n * 0.1), "the val tail is %zu of %zu tokens", val.n, want.n);
    TokVec all = {0};
    for (size_t i = 0; i < train.n; i++) tokvec_push(&all, train.ids[i]);
    for (size_t i = 0; i < val.n; i++) tokvec_push(&all, val.ids[i]);
    CHECK(same_tokens(&all, &want), "train + val must be EOT + the book's tokens");

    /* 2 threads, and tiny pieces (many cuts inside the book): same bytes */
    CHECK(run_prepare(SOURCE_PG19, books, out2, 0.1, 100000000, 2, 1000, &st, &e) == 0, "%s", e.msg);
    CHECK(same_dirs(out1, out2), "2 threads with 1 KB pieces must give identical shards");
    CHECK(run_prepare(SOURCE_PG19, books, out2, 0.1, 100000000, 2, 100, &st, &e) == 0, "%s", e.msg);
    CHECK(same_dirs(out1, out2), "2 threads with 100 B pieces must give identical shards");
    tokvec_free(&train);
    tokvec_free(&val);
    tokvec_free(&all);
    tokvec_free(&want);
    bpe_ctx_free(c);
    free(moby);
}

static void test_prepare_jsonl_sotu(void) {
    char plain[4096], gz[4096], a[4096], b[4096], small[4096];
    path_of(plain, "sotu.jsonl");
    path_of(gz, "sotu.jsonl.gz");
    TokVec *docs;
    int n = make_sotu_jsonl(plain, 0, &docs);
    CHECK(n == 233, "expected 233 addresses, found %d (run scripts/setup.sh)", n);
    if (n != 233) return;
    make_sotu_jsonl(gz, 1, NULL);
    path_of(a, "sotu_a");
    path_of(b, "sotu_b");
    path_of(small, "sotu_small");
    PrepareStats st;
    Err e;
    CHECK(run_prepare(SOURCE_JSONL, plain, a, 0.05, 100000000, 1, 0, &st, &e) == 0, "%s", e.msg);
    CHECK(st.docs == 233 && st.val_docs == 11, "docs %lld val %lld", (long long)st.docs, (long long)st.val_docs);
    /* expected: every 20th document (i = 19, 39, ...) in val, in order */
    TokVec want_train = {0}, want_val = {0};
    for (int i = 0; i < n; i++) {
        TokVec *dst = (i + 1) % 20 == 0 ? &want_val : &want_train;
        for (size_t k = 0; k < docs[i].n; k++) tokvec_push(dst, docs[i].ids[k]);
    }
    int s;
    TokVec train = read_split(a, "train", &s), val = read_split(a, "val", &s);
    CHECK(same_tokens(&train, &want_train), "train split differs (%zu vs %zu tokens)", train.n, want_train.n);
    CHECK(same_tokens(&val, &want_val), "val split differs (%zu vs %zu tokens)", val.n, want_val.n);

    CHECK(run_prepare(SOURCE_JSONL, gz, b, 0.05, 100000000, 2, 0, &st, &e) == 0, "%s", e.msg);
    CHECK(same_dirs(a, b), "gzip input on 2 threads must give identical shards");
    CHECK(run_prepare(SOURCE_JSONL, plain, small, 0.05, 200000, 2, 0, &st, &e) == 0, "%s", e.msg);
    TokVec train2 = read_split(small, "train", &s);
    CHECK(s == (int)((want_train.n + 199999) / 200000) && same_tokens(&train2, &want_train),
          "200k-token shards: %d shards", s);
    for (int i = 0; i < n; i++) tokvec_free(&docs[i]);
    free(docs);
    tokvec_free(&train);
    tokvec_free(&val);
    tokvec_free(&train2);
    tokvec_free(&want_train);
    tokvec_free(&want_val);
}

/* Moby-Dick's chapters as C4 files (gzip JSON lines with text, timestamp, url). */
static void test_prepare_c4_chapters(void) {
    char dir[4096], src[4096], out[4096];
    path_of(dir, "c4");
    mkdir(dir, 0777);
    snprintf(src, sizeof src, "%s/moby_dick.txt", test_assets());
    size_t len;
    char *moby = test_slurp(src, &len);
    if (!moby) return;
    BpeCtx *c = bpe_ctx_new(bpe);
    TokVec want = {0};
    int chapters = 0;
    gzFile g = NULL;
    for (char *p = moby, *next; p && *p; p = next) {
        next = strstr(p + 1, "CHAPTER ");
        size_t n = next ? (size_t)(next - p) : strlen(p);
        if (chapters % 70 == 0) {
            char name[4096];
            snprintf(name, sizeof name, "%s/c4-train.%05d-of-00002.json.gz", dir, chapters / 70);
            if (g) gzclose(g);
            g = gzopen(name, "wb");
        }
        json_t *j = json_pack("{s:s%, s:s, s:s}", "text", p, n, "timestamp", "2019-04-25T12:57:54Z",
                              "url", "https://example.com/moby");
        char *line = json_dumps(j, JSON_COMPACT);
        gzwrite(g, line, (unsigned)strlen(line));
        gzwrite(g, "\n", 1);
        free(line);
        json_decref(j);
        encode_doc(c, p, n, &want);
        chapters++;
    }
    gzclose(g);
    char readme[4096];
    snprintf(readme, sizeof readme, "%s/README", dir);
    spit(readme, "not data", 8);
    path_of(out, "c4_out");
    PrepareStats st;
    Err e;
    CHECK(run_prepare(SOURCE_C4, dir, out, 0, 100000000, 2, 0, &st, &e) == 0, "%s", e.msg);
    CHECK(st.docs == chapters && chapters > 130, "%lld docs of %d chapters", (long long)st.docs, chapters);
    int s;
    TokVec train = read_split(out, "train", &s);
    CHECK(same_tokens(&train, &want), "c4 tokens differ");
    CHECK(count_outputs(out) == 1, "val_fraction 0 writes no val shard");

    /* C4's own split (--val): a directory holding both is refused, since
     * taken whole its validation documents would go to training; given
     * apart, every validation document goes to val and no other */
    char vdir[4096], vfile[4096], from[4096], out2[4096], out3[4096];
    snprintf(vdir, sizeof vdir, "%s/c4_split", dir);
    mkdir(vdir, 0777);
    snprintf(from, sizeof from, "%s/c4-train.00001-of-00002.json.gz", dir);
    snprintf(vfile, sizeof vfile, "%s/c4-validation.00000-of-00001.json.gz", vdir);
    size_t vlen;
    char *vbytes = test_slurp(from, &vlen);
    spit(vfile, vbytes, vlen);
    snprintf(from, sizeof from, "%s/c4-train.00000-of-00002.json.gz", dir);
    char *tbytes = test_slurp(from, &vlen);
    snprintf(from, sizeof from, "%s/c4-train.00000-of-00001.json.gz", vdir);
    spit(from, tbytes, vlen);
    path_of(out2, "c4_split_out");
    CHECK(run_prepare(SOURCE_C4, vdir, out2, 0.01, 100000000, 2, 0, &st, &e) == -1 &&
              strstr(e.msg, "holds both C4 splits") && strstr(e.msg, "--val") && strstr(e.msg, vdir),
          "a directory of both C4 splits: '%s'", e.msg);
    CHECK(count_outputs(out2) == 0, "the refused run wrote shards");
    CHECK(run_prepare_split(SOURCE_C4, from, vfile, out2, 2, &st, &e) == 0, "%s", e.msg);
    TokVec t2 = read_split(out2, "train", &s), v2 = read_split(out2, "val", &s);
    /* files 00000 and 00001 of the three hold chapters 0-69 and 70-139 */
    CHECK(st.docs == 140 && st.val_docs == 70 && t2.n + v2.n < want.n && v2.n > 0 && v2.ids[0] == bpe_eot(bpe) &&
              memcmp(t2.ids, want.ids, t2.n * sizeof *t2.ids) == 0 &&
              memcmp(v2.ids, want.ids + t2.n, v2.n * sizeof *v2.ids) == 0,
          "--val: %lld docs, %lld val, %zu + %zu of %zu tokens", (long long)st.docs, (long long)st.val_docs, t2.n,
          v2.n, want.n);
    path_of(out3, "c4_split_out1");
    CHECK(run_prepare_split(SOURCE_C4, from, vfile, out3, 1, &st, &e) == 0 && same_dirs(out2, out3),
          "--val: 1 and 2 threads differ");
    CHECK(run_prepare_split(SOURCE_C4, vfile, vfile, out3, 2, &st, &e) == -1 &&
              strstr(e.msg, "both a training and a validation"), "the same file on both sides: '%s'", e.msg);
    tokvec_free(&t2);
    tokvec_free(&v2);
    free(vbytes);
    free(tbytes);
    tokvec_free(&train);
    tokvec_free(&want);
    bpe_ctx_free(c);
    free(moby);
}

static void test_prepare_pg19_directory(void) {
    char dir[4096], out[4096];
    snprintf(dir, sizeof dir, "%s/sotu", test_assets());
    path_of(out, "sotu_pg19");
    PrepareStats st;
    Err e;
    CHECK(run_prepare(SOURCE_PG19, dir, out, 0.1, 100000000, 2, 0, &st, &e) == 0, "%s", e.msg);
    CHECK(st.docs == 233 && st.val_docs == 23, "%lld docs (only the .txt files), %lld val",
          (long long)st.docs, (long long)st.val_docs);
}

/* Bad input: an error naming the file (and line), nothing that looks like a shard. */
static void test_prepare_bad_input(void) {
    char good[4096], gz[4096], p[4096], out[4096];
    path_of(good, "sotu.jsonl");
    path_of(gz, "sotu.jsonl.gz");
    size_t glen;
    char *gzdata = test_slurp(gz, &glen);
    CHECK(gzdata != NULL && glen > 100000, "needs the gzip file of the jsonl test");
    if (!gzdata) return;
    path_of(out, "bad_out");
    struct {
        const char *name, *content;
        size_t len;
        SourceKind kind;
        const char *expect1, *expect2;
    } cases[] = {
        {"trunc.jsonl.gz", gzdata, glen / 2, SOURCE_JSONL, "truncated gzip", NULL},
        {"trunc_tail.jsonl.gz", gzdata, glen - 4, SOURCE_JSONL, "truncated gzip", NULL},
        {"corrupt.jsonl.gz", NULL, glen, SOURCE_JSONL, "corrupt gzip", NULL},
        {"plain.jsonl.gz", "{\"text\": \"x\"}\n", 14, SOURCE_JSONL, "not a gzip file", NULL},
        {"malformed.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": \"c\n", 41, SOURCE_JSONL,
         "malformed.jsonl:3:", "malformed JSON"},
        {"notext.jsonl", "{\"text\": \"a\"}\n{\"body\": \"b\"}\n", 28, SOURCE_JSONL, "notext.jsonl:2:",
         "missing \"text\""},
        {"numtext.jsonl", "{\"text\": 5}\n", 12, SOURCE_JSONL, "numtext.jsonl:1:", "not a string"},
        {"array.jsonl", "[1, 2]\n", 7, SOURCE_JSONL, "array.jsonl:1:", "JSON object"},
        {"empty.jsonl", "", 0, SOURCE_JSONL, "empty.jsonl", "empty input"},
        {"blank.jsonl", "\n  \n", 4, SOURCE_JSONL, "blank.jsonl", "empty input"},
        {"allempty.jsonl", "{\"text\": \"\"}\n", 13, SOURCE_JSONL, "no document has any text", NULL},
        {"empty.txt", "", 0, SOURCE_PG19, "empty.txt", "empty input"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        path_of(p, cases[i].name);
        if (cases[i].content) {
            spit(p, cases[i].content, cases[i].len);
        } else { /* flip bytes in the middle of the deflate stream */
            char *copy = memcpy(xmalloc(glen), gzdata, glen);
            for (size_t k = glen / 2; k < glen / 2 + 64; k++) copy[k] ^= 0x5a;
            spit(p, copy, glen);
            free(copy);
        }
        PrepareStats st;
        Err e = {{0}};
        int rc = run_prepare(cases[i].kind, p, out, 0.01, 100000, 2, 0, &st, &e);
        CHECK(rc == -1 && strstr(e.msg, cases[i].name) && strstr(e.msg, cases[i].expect1) &&
                  (!cases[i].expect2 || strstr(e.msg, cases[i].expect2)),
              "%s: rc %d, message: %s", cases[i].name, rc, e.msg);
        CHECK(count_outputs(out) == 0, "%s: shards were left behind", cases[i].name);
        unlink(p);
    }

    /* a bad line after several complete shards: none of them may survive */
    path_of(p, "late_error.jsonl");
    size_t len;
    char *text = test_slurp(good, &len);
    char *both = xmalloc(len + 32);
    memcpy(both, text, len);
    memcpy(both + len, "{\"text\": oops}\n", 15);
    spit(p, both, len + 15);
    PrepareStats st;
    Err e;
    CHECK(run_prepare(SOURCE_JSONL, p, out, 0.01, 50000, 2, 0, &st, &e) == -1 &&
              strstr(e.msg, "late_error.jsonl:234:"), "late error: %s", e.msg);
    CHECK(count_outputs(out) == 0, "shards finished before the error were left behind");

    /* a failed run leaves an earlier good run's shards as they were */
    char keep[4096], before[4096];
    shard_path(keep, sizeof keep, out, "train", 0);
    CHECK(run_prepare(SOURCE_JSONL, good, out, 0.01, 100000000, 2, 0, &st, &e) == 0, "%s", e.msg);
    path_of(before, "keep_copy.bin");
    size_t klen;
    char *kept = test_slurp(keep, &klen);
    spit(before, kept, klen);
    CHECK(run_prepare(SOURCE_JSONL, p, out, 0.01, 100000000, 2, 0, &st, &e) == -1, "must fail");
    CHECK(same_files(keep, before), "a failed run must not touch the previous shards");
    free(kept);
    free(text);
    free(both);
    unlink(p);

    /* missing input, empty directory, unwritable output */
    path_of(p, "no_such_dir");
    CHECK(run_prepare(SOURCE_PG19, p, out, 0.01, 1000, 1, 0, &st, &e) == -1 && strstr(e.msg, "no_such_dir"),
          "missing input: %s", e.msg);
    path_of(p, "empty_dir");
    mkdir(p, 0777);
    CHECK(run_prepare(SOURCE_PG19, p, out, 0.01, 1000, 1, 0, &st, &e) == -1 && strstr(e.msg, "empty_dir") &&
              strstr(e.msg, "empty input"), "empty dir: %s", e.msg);
    char under_file[4096];
    snprintf(under_file, sizeof under_file, "%s/sub", good);
    CHECK(run_prepare(SOURCE_JSONL, good, under_file, 0.01, 1000, 1, 0, &st, &e) == -1 &&
              strstr(e.msg, "sotu.jsonl"), "unwritable output: %s", e.msg);
    free(gzdata);
}

/* ------------------------------------------------------------------------ */
/* loader                                                                   */

static void test_loader(void) {
    char dir[4096], pattern[4096];
    path_of(dir, "moby1"); /* from test_prepare_moby_as_pg19_book */
    snprintf(pattern, sizeof pattern, "%s/train_*.bin", dir);
    int s;
    TokVec all = read_split(dir, "train", &s);
    CHECK(s == 1 && all.n > 200000, "needs the Moby-Dick shards");
    if (s != 1) return;
    const int B = 4, T = 64, BT = B * T;
    Loader l;
    Err e;
    CHECK(loader_open(&l, "train_data", pattern, B, T, 0, 1, 50257, &e) == 0, "%s", e.msg);
    int64_t windows = (int64_t)(all.n - 1) / BT;
    int32_t x[256], y[256];
    int ok = 1;
    for (int64_t k = 0; k < windows + 2; k++) {
        CHECK(loader_next(&l, x, y, &e) == 0, "%s", e.msg);
        int64_t w = k % windows;
        for (int i = 0; i < BT; i++) ok &= x[i] == all.ids[w * BT + i] && y[i] == all.ids[w * BT + i + 1];
    }
    CHECK(ok, "sequential batches must be the shard's tokens in order, wrapping after an epoch");
    CHECK(loader_tell(&l).epoch == 1 && loader_tell(&l).sample == 2, "position after wrap");
    loader_close(&l);

    /* shuffled: every window once per epoch, reproducible, seekable */
    Loader a, b;
    CHECK(loader_open(&a, "train_data", pattern, B, T, 1, 42, 50257, &e) == 0, "%s", e.msg);
    CHECK(loader_open(&b, "train_data", pattern, B, T, 1, 42, 50257, &e) == 0, "%s", e.msg);
    char *seen = xcalloc((size_t)windows, 1);
    int in_order = 1, dup = 0, lost = 0;
    for (int64_t k = 0; k < windows; k++) {
        loader_next(&a, x, y, &e);
        int64_t w = -1;
        for (int64_t c = 0; c < windows && w < 0; c++)
            if (memcmp(x, all.ids + c * BT, sizeof x) == 0 && y[BT - 1] == all.ids[c * BT + BT]) w = c;
        lost += w < 0;
        if (w >= 0) {
            dup += seen[w]++;
            in_order &= w == k;
        }
    }
    CHECK(!lost && !dup && !in_order, "one shuffled epoch: %d unknown, %d repeated windows, in order %d",
          lost, dup, in_order);
    free(seen);
    int32_t x2[256], y2[256], saved[3][256];
    for (int k = 0; k < 5; k++) loader_next(&b, x2, y2, &e);
    LoaderPos pos = loader_tell(&b);
    for (int k = 0; k < 3; k++) loader_next(&b, saved[k], y2, &e);
    CHECK(loader_seek(&b, pos, &e) == 0, "%s", e.msg);
    int same = 1;
    for (int k = 0; k < 3; k++) {
        loader_next(&b, x2, y2, &e);
        same &= memcmp(x2, saved[k], sizeof x2) == 0;
    }
    CHECK(same, "seek to a saved position must replay the same batches");
    /* a and b (same seed) agree across an epoch boundary */
    loader_seek(&b, loader_tell(&a), &e);
    int agree = 1;
    for (int64_t k = 0; k < windows + 3; k++) {
        loader_next(&a, x, y, &e);
        loader_next(&b, x2, y2, &e);
        agree &= memcmp(x, x2, sizeof x) == 0;
    }
    CHECK(agree && loader_tell(&a).epoch == 2, "same seed, same batches");
    loader_close(&a);
    loader_close(&b);
    tokvec_free(&all);
}

static void test_loader_errors(void) {
    Loader l;
    Err e;
    char pattern[4096], p[4096];
    path_of(pattern, "nothing_*.bin");
    CHECK(loader_open(&l, "val_data", pattern, 4, 64, 0, 1, 50257, &e) == -1 && strstr(e.msg, "val_data") &&
              strstr(e.msg, "no files match"), "%s", e.msg);
    /* a token outside the vocabulary */
    char dir[4096];
    path_of(dir, "oov");
    mkdir(dir, 0777);
    int32_t ids[600];
    for (int i = 0; i < 600; i++) ids[i] = i == 300 ? 60000 : i;
    ShardWriter w;
    shard_writer_init(&w, dir, "train", 100000);
    shard_writer_append(&w, ids, 600, &e);
    shard_writer_finish(&w, &e);
    shard_writer_commit(&w, &e);
    shard_writer_abort(&w);
    snprintf(pattern, sizeof pattern, "%s/train_*.bin", dir);
    shard_path(p, sizeof p, dir, "train", 0);
    int32_t x[256], y[256];
    CHECK(loader_open(&l, "train_data", pattern, 4, 64, 0, 1, 50257, &e) == 0, "%s", e.msg);
    CHECK(loader_next(&l, x, y, &e) == 0, "first window is fine: %s", e.msg);
    CHECK(loader_next(&l, x, y, &e) == -1 && strstr(e.msg, p) && strstr(e.msg, "60000") &&
              strstr(e.msg, "vocabulary"), "%s", e.msg);
    loader_close(&l);
    /* a shard too small for one batch */
    CHECK(loader_open(&l, "train_data", pattern, 8, 128, 0, 1, 50257, &e) == -1 &&
              strstr(e.msg, "B*T+1 = 1025"), "%s", e.msg);
    /* a damaged shard among good ones is named */
    spit(p, "garbage", 7);
    CHECK(loader_open(&l, "train_data", pattern, 4, 64, 0, 1, 50257, &e) == -1 && strstr(e.msg, p),
          "%s", e.msg);
}

/* Several corpora in one run: a comma-separated list of patterns. */
static void test_loader_pattern_list(void) {
    char a[4096], b[4096], list[9000];
    const char *names[2] = {"mix_a", "mix_b"};
    Err e;
    for (int d = 0; d < 2; d++) { /* one shard each: 300 tokens, 1000 + d * 1000 + i */
        char *dir = d ? b : a;
        path_of(dir, names[d]);
        mkdir(dir, 0777);
        int32_t ids[300];
        for (int i = 0; i < 300; i++) ids[i] = 1000 * (d + 1) + i;
        ShardWriter w;
        shard_writer_init(&w, dir, "train", 100000);
        shard_writer_append(&w, ids, 300, &e);
        shard_writer_finish(&w, &e);
        shard_writer_commit(&w, &e);
        shard_writer_abort(&w);
    }
    Loader l;
    int32_t x[64], y[64];
    snprintf(list, sizeof list, "%s/train_*.bin , %s/train_*.bin", b, a);
    CHECK(loader_open(&l, "train_data", list, 1, 64, 0, 1, 50257, &e) == 0, "%s", e.msg);
    int firsts[8], ok = 1;
    for (int k = 0; k < 8; k++) {
        ok &= loader_next(&l, x, y, &e) == 0;
        firsts[k] = x[0];
    }
    loader_close(&l);
    /* 4 windows of 64 in each 300-token shard, b's first as listed */
    CHECK(ok && firsts[0] == 2000 && firsts[3] == 2192 && firsts[4] == 1000 && firsts[7] == 1192,
          "windows of the listed shards in order: %d %d %d %d", firsts[0], firsts[3], firsts[4], firsts[7]);
    snprintf(list, sizeof list, "%s/train_*.bin,%s/nothing_*.bin", a, b);
    CHECK(loader_open(&l, "train_data", list, 1, 64, 0, 1, 50257, &e) == -1 && strstr(e.msg, "nothing_*.bin") &&
              strstr(e.msg, "no files match"), "a pattern of the list that matches nothing: %s", e.msg);
    snprintf(list, sizeof list, "%s/*.bin, %s/train_*.bin", a, a);
    CHECK(loader_open(&l, "train_data", list, 1, 64, 0, 1, 50257, &e) == -1 && strstr(e.msg, "two of the patterns"),
          "a shard matched twice: %s", e.msg);
    snprintf(list, sizeof list, "%s/train_*.bin, ", a);
    CHECK(loader_open(&l, "train_data", list, 1, 64, 0, 1, 50257, &e) == -1 && strstr(e.msg, "empty pattern"),
          "an empty pattern: %s", e.msg);
}

int main(void) {
    Err e;
    if (bpe_load_dir(&bpe, test_assets(), &e)) {
        printf("FAIL load_tokenizer: %s\n", e.msg);
        return 1;
    }
    if (!mkdtemp(root)) {
        printf("FAIL mkdtemp\n");
        return 1;
    }
    RUN(test_shard_writer);
    RUN(test_shard_open_rejects_bad_files);
    RUN(test_prepare_moby_as_pg19_book);
    RUN(test_prepare_jsonl_sotu);
    RUN(test_prepare_c4_chapters);
    RUN(test_prepare_pg19_directory);
    RUN(test_prepare_bad_input);
    RUN(test_loader);
    RUN(test_loader_errors);
    RUN(test_loader_pattern_list);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0) printf("  (could not remove %s)\n", root);
    bpe_free(bpe);
    return 0;
}
