#include "prepare.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shard.h"

#define BATCH_BYTES (8u << 20)   /* input read per batch */
#define DEFAULT_CHUNK (64u << 10)

/* A unit of parallel work: a whole record, or a piece of a long book. */
typedef struct {
    size_t off, len;             /* in the batch's arena */
    const char *file;
    long line;
    int first;                   /* first unit of its document: gets the EOT */
    int json;                    /* the bytes are a JSON line, not text */
    int skip;                    /* set by the worker: a JSON document with empty text */
    int failed;
    int val;                     /* from one of the val inputs */
} Unit;

typedef struct {
    Unit *u;
    int n, cap;
    char *arena;
    size_t used, arena_cap;
    TokVec *out;                 /* per unit, capacity kept across batches */
    Err *err;                    /* per unit */
    int eof, read_failed;
    Err read_err;
} Batch;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int printable(unsigned char c) { return c > 0x20 && c < 0x7f; }

/* Next cut at or after `from`: a position p with text[p-2] and text[p]
 * printable ASCII and text[p-1] == '\n'. GPT-2's regex always ends a piece
 * at such a p, and what precedes p ("X\n") is tokenized the same whether or
 * not text follows it, so the pieces can be tokenized independently. */
static size_t next_cut(const char *t, size_t n, size_t from) {
    for (size_t p = from < 2 ? 2 : from; p < n;) {
        const char *nl = memchr(t + p - 1, '\n', n - (p - 1));
        if (!nl) return n;
        p = (size_t)(nl - t) + 1;
        if (p < n && printable((unsigned char)t[p - 2]) && printable((unsigned char)t[p])) return p;
        p++;
    }
    return n;
}

static void add_unit(Batch *b, Unit u) {
    if (b->n == b->cap) {
        int old = b->cap;
        b->cap = b->cap ? 2 * b->cap : 1024;
        b->u = xrealloc(b->u, (size_t)b->cap * sizeof *b->u);
        b->out = xrealloc(b->out, (size_t)b->cap * sizeof *b->out);
        b->err = xrealloc(b->err, (size_t)b->cap * sizeof *b->err);
        memset(b->out + old, 0, (size_t)(b->cap - old) * sizeof *b->out);
    }
    b->u[b->n++] = u;
}

/* Reads records until about `target` bytes are in; runs on one thread.
 * Files from first_val on are the val inputs'. */
static void read_batch(SourceReader *r, SourceKind kind, size_t chunk, size_t target, int first_val, Batch *b) {
    b->n = 0;
    b->used = 0;
    b->read_failed = 0;
    while (!b->eof && b->used < target) {
        Record rec;
        int rc = source_reader_next(r, &rec, &b->read_err);
        if (rc <= 0) {
            b->eof = 1;
            b->read_failed = rc < 0;
            break;
        }
        if (b->used + rec.len > b->arena_cap) {
            while (b->used + rec.len > b->arena_cap) b->arena_cap = b->arena_cap ? 2 * b->arena_cap : 2 * BATCH_BYTES;
            b->arena = xrealloc(b->arena, b->arena_cap);
        }
        memcpy(b->arena + b->used, rec.data, rec.len);
        if (kind == SOURCE_PG19) {
            const char *t = b->arena + b->used;
            for (size_t s = 0, e; s < rec.len; s = e) {
                e = next_cut(t, rec.len, s + chunk);
                add_unit(b, (Unit){b->used + s, e - s, rec.file, rec.line, s == 0, 0, 0, 0, rec.file_index >= first_val});
            }
        } else {
            add_unit(b, (Unit){b->used, rec.len, rec.file, rec.line, 1, 1, 0, 0, rec.file_index >= first_val});
        }
        b->used += rec.len;
    }
}

/* A thread's token vector, alone on its cache line. */
typedef struct {
    _Alignas(64) TokVec v;
} Scratch;

/* Tokenizes unit i into b->out[i]. Tokens are built in the thread's own
 * vector and copied once: the TokVec headers of neighbouring units share
 * cache lines, and updating them per token from two threads serialises them. */
static void process_unit(Batch *b, int i, BpeCtx *ctx, TokVec *scratch, int eot) {
    Unit *u = &b->u[i];
    scratch->n = 0;
    if (u->first) tokvec_push(scratch, eot);
    const char *text = b->arena + u->off;
    size_t len = u->len;
    char *owned = NULL;
    if (u->json) {
        if (json_record_text(&(Record){text, len, u->file, u->line, 0}, &owned, &len, &b->err[i])) {
            u->failed = 1;
            return;
        }
        text = owned;
        u->skip = len == 0;
    }
    bpe_encode(ctx, text, len, 0, scratch);
    free(owned);
    TokVec *v = &b->out[i];
    if (v->cap < scratch->n) {
        v->cap = scratch->n;
        v->ids = xrealloc(v->ids, v->cap * sizeof *v->ids);
    }
    memcpy(v->ids, scratch->ids, scratch->n * sizeof *v->ids);
    v->n = scratch->n;
}

typedef struct {
    ShardWriter train, val;
    TokVec pending;              /* the last document, held while val is still empty */
    ShardWriter *dest;           /* where the current document goes; NULL: to pending */
    double F;
    int given;                   /* the split is given by the inputs, not by F */
    PrepareStats *st;
} Router;

/* Starts document number st->docs (from a val input or not): decides its
 * split. While no document has gone to val yet, each train document is held
 * back until the next one starts, in case it is the last and its tail must
 * become val. */
static int route_begin(Router *r, int val_input, Err *e) {
    int64_t i = r->st->docs++;
    int to_val = r->given ? val_input : r->F > 0 && floor((double)(i + 1) * r->F) > floor((double)i * r->F);
    if (r->pending.n && shard_writer_append(&r->train, r->pending.ids, r->pending.n, e)) return -1;
    r->pending.n = 0;
    r->st->val_docs += to_val;
    r->dest = to_val ? &r->val : r->st->val_docs > 0 || r->F == 0 ? &r->train : NULL;
    return 0;
}

static int route_tokens(Router *r, const TokVec *v, Err *e) {
    if (r->dest) return shard_writer_append(r->dest, v->ids, v->n, e);
    tokvec_append(&r->pending, v->ids, v->n);
    return 0;
}

/* Emits a processed batch in order. */
static int emit_batch(Router *r, Batch *b, Err *e) {
    for (int i = 0; i < b->n; i++) {
        Unit *u = &b->u[i];
        if (u->failed) {
            size_t k = strlen(u->file);
            Err gz;
            if (k > 3 && strcmp(u->file + k - 3, ".gz") == 0 && source_check_gzip(u->file, &gz))
                return err_set(e, "%s; line %ld was the first bad record", gz.msg, u->line);
            *e = b->err[i];
            return -1;
        }
        if (u->skip) continue;
        if (u->first && route_begin(r, u->val, e)) return -1;
        if (route_tokens(r, &b->out[i], e)) return -1;
    }
    if (b->read_failed) {
        *e = b->read_err;
        return -1;
    }
    return 0;
}

static int finish_split(Router *r, Err *e) {
    size_t n = r->pending.n;
    if (n == 0) return 0;
    size_t k = (size_t)((double)n * r->F);
    if (k < 1) k = 1;
    if (k >= n) k = n - 1;
    if (shard_writer_append(&r->train, r->pending.ids, n - k, e)) return -1;
    if (shard_writer_append(&r->val, r->pending.ids + (n - k), k, e)) return -1;
    r->pending.n = 0;
    return 0;
}

static void progress(const PrepareStats *st, double t0, int final) {
    double dt = now() - t0;
    fprintf(stderr, "%sprepare: %.1f MB in %.1f s (%.1f MB/s), %lld documents, %.2fM tokens%s",
            isatty(2) ? "\r" : "", (double)st->bytes / 1e6, dt, (double)st->bytes / 1e6 / (dt > 0 ? dt : 1),
            (long long)st->docs, (double)(st->train_tokens + st->val_tokens) / 1e6,
            final || !isatty(2) ? "\n" : "");
}

/* A file listed among both the train inputs (files before first_val) and
 * the val inputs would put the same documents on both sides. */
static int check_disjoint(const StrList *files, int first_val, Err *e) {
    StrList train = {0};
    char buf[PATH_MAX];
    for (int i = 0; i < first_val; i++) strlist_push(&train, realpath(files->s[i], buf) ? buf : files->s[i]);
    strlist_sort(&train);
    int rc = 0;
    for (int i = first_val; rc == 0 && i < files->n; i++) {
        const char *v = realpath(files->s[i], buf) ? buf : files->s[i];
        for (int lo = 0, hi = train.n; lo < hi;) { /* binary search */
            int mid = lo + (hi - lo) / 2, c = strcmp(train.s[mid], v);
            if (c == 0) {
                rc = err_set(e, "%s: both a training and a validation (--val) input", files->s[i]);
                break;
            }
            if (c < 0) lo = mid + 1;
            else hi = mid;
        }
    }
    strlist_free(&train);
    return rc;
}

int prepare_run(const PrepareOpts *o, PrepareStats *st, Err *e) {
    memset(st, 0, sizeof *st);
    if (!(o->val_fraction >= 0 && o->val_fraction < 1))
        return err_set(e, "--val-fraction must be in [0, 1), got %g", o->val_fraction);
    if (o->shard_tokens < 1 || o->shard_tokens > INT32_MAX)
        return err_set(e, "--shard-tokens must be in [1, %d], got %lld", INT32_MAX, (long long)o->shard_tokens);
    if (bpe_vocab_size(o->bpe) > 65536 || bpe_eot(o->bpe) < 0)
        return err_set(e, "the tokenizer must have at most 65536 tokens and <|endoftext|>");
    if (o->n_val_inputs > 0 && o->val_fraction != 0)
        return err_set(e, "--val-fraction %g with --val: the val inputs are the validation split (drop one)",
                       o->val_fraction);
    StrList files = {0};
    int first_val = INT32_MAX;
    int rc = o->n_inputs > 0 || o->n_val_inputs == 0 ? source_list_files(o->kind, o->inputs, o->n_inputs, &files, e) : 0;
    if (rc == 0 && o->n_val_inputs > 0) {
        first_val = files.n;
        rc = source_list_files(o->kind, o->val_inputs, o->n_val_inputs, &files, e);
        if (rc == 0) rc = check_disjoint(&files, first_val, e);
    }
    /* a split this run writes nothing to would have its shards in out_dir
     * removed by the commit (they are another run's): refuse instead */
    const char *none = o->n_inputs == 0 ? "train" : o->val_fraction == 0 && o->n_val_inputs == 0 ? "val" : NULL;
    if (rc == 0 && none && shard_dir_has(o->out_dir, none))
        rc = err_set(e, "%s holds %s_*.bin shards, and this run writes no %s split, so they would be removed "
                        "(they come from another run): give another --out, or remove them first",
                     o->out_dir, none, none);
    int lock = rc ? -1 : mkdir_p(o->out_dir, "--out", e) ? -1 : dir_lock(o->out_dir, "--out", e);
    if (lock == -1) {
        strlist_free(&files);
        return -1;
    }
    if (lock == -2 && o->progress) fprintf(stderr, "note: %s\n", e->msg); /* a filesystem without locks: go on */
    int nt = o->threads > 0 ? o->threads : omp_get_max_threads();
    size_t chunk = o->chunk_bytes ? o->chunk_bytes : DEFAULT_CHUNK;
    BpeCtx **ctx = xmalloc((size_t)nt * sizeof *ctx);
    Scratch *scratch = aligned_alloc(64, (size_t)nt * sizeof *scratch);
    memset(scratch, 0, (size_t)nt * sizeof *scratch);
    for (int t = 0; t < nt; t++) ctx[t] = bpe_ctx_new(o->bpe);
    int eot = bpe_eot(o->bpe);

    Router r = {.F = o->val_fraction, .given = o->n_val_inputs > 0, .st = st};
    shard_writer_init(&r.train, o->out_dir, "train", o->shard_tokens);
    shard_writer_init(&r.val, o->out_dir, "val", o->shard_tokens);
    SourceReader *reader = source_reader_open(o->kind, &files);
    Batch batch[2] = {0};
    double t0 = now(), last = t0;
    int cur = 0;

    /* the first batch is read before anything can overlap it: keep it small */
    read_batch(reader, o->kind, chunk, BATCH_BYTES / 16, first_val, &batch[0]);
    while (batch[cur].n > 0 || batch[cur].read_failed) {
        Batch *b = &batch[cur], *next = &batch[cur ^ 1];
        int more = !b->eof;
        next->eof = b->eof;
        #pragma omp parallel num_threads(nt)
        {
            #pragma omp single nowait
            if (more) read_batch(reader, o->kind, chunk, BATCH_BYTES, first_val, next);
            #pragma omp for schedule(dynamic, 1) nowait
            for (int i = 0; i < b->n; i++) {
                int t = omp_get_thread_num();
                process_unit(b, i, ctx[t], &scratch[t].v, eot);
            }
        }
        if (!more) next->n = 0;
        if (emit_batch(&r, b, e)) {
            rc = -1;
            break;
        }
        if (o->stop && *o->stop) {
            rc = err_set(e, "interrupted: %s keeps no shard of this run (its temporary files are removed)", o->out_dir);
            break;
        }
        st->bytes = source_reader_bytes(reader);
        st->train_tokens = r.train.total;
        st->val_tokens = r.val.total;
        if (o->progress && now() - last > 1.0) {
            progress(st, t0, 0);
            last = now();
        }
        cur ^= 1;
    }
    if (rc == 0 && st->docs == 0)
        rc = err_set(e, "%s%s: empty input: no document has any text", o->n_inputs ? o->inputs[0] : o->val_inputs[0],
                     o->n_inputs + o->n_val_inputs > 1 ? " ..." : "");
    if (rc == 0 && r.given && ((o->n_inputs > 0 && r.train.total == 0) || r.val.total == 0))
        rc = err_set(e, "%s%s: empty input: no %s document has any text", r.train.total ? o->val_inputs[0] : o->inputs[0],
                     (r.train.total ? o->n_val_inputs : o->n_inputs) > 1 ? " ..." : "",
                     r.train.total ? "validation" : "training");
    if (rc == 0) rc = finish_split(&r, e);
    if (rc == 0) rc = shard_writer_finish(&r.train, e);
    if (rc == 0) rc = shard_writer_finish(&r.val, e);
    if (rc == 0) rc = shard_writer_commit(&r.train, e);
    if (rc == 0) rc = shard_writer_commit(&r.val, e);
    st->train_tokens = r.train.total;
    st->val_tokens = r.val.total;
    st->train_shards = r.train.index;
    st->val_shards = r.val.index;
    st->bytes = source_reader_bytes(reader);
    st->seconds = now() - t0;
    if (rc == 0 && o->progress) progress(st, t0, 1);

    shard_writer_abort(&r.train); /* after a commit there is nothing left to remove */
    shard_writer_abort(&r.val);
    source_reader_close(reader);
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < batch[k].cap; i++) tokvec_free(&batch[k].out[i]);
        free(batch[k].u);
        free(batch[k].out);
        free(batch[k].err);
        free(batch[k].arena);
    }
    tokvec_free(&r.pending);
    for (int t = 0; t < nt; t++) {
        bpe_ctx_free(ctx[t]);
        tokvec_free(&scratch[t].v);
    }
    free(scratch);
    free(ctx);
    strlist_free(&files);
    if (lock >= 0) close(lock);
    return rc;
}
