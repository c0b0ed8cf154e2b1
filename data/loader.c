#include "loader.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/rng.h"
#include "shard.h"

static void permute(int64_t *a, int64_t n, int shuffle, uint64_t seed, uint64_t stream) {
    for (int64_t i = 0; i < n; i++) a[i] = i;
    if (!shuffle) return;
    Rng r;
    rng_seed(&r, seed, stream);
    for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
        int64_t j = (int64_t)rng_below(&r, (uint64_t)i + 1), t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

static int64_t windows(const Loader *l, int64_t ntok) {
    int64_t bt = (int64_t)l->B * l->T;
    return ntok > bt ? (ntok - 1) / bt : 0;
}

/* Sets up the permutations for pos.epoch and pos.shard. */
static void enter(Loader *l) {
    permute(l->shard_order, l->files.n, l->shuffle, l->seed, 2 * (uint64_t)l->pos.epoch + 1);
    int64_t s = l->shard_order[l->pos.shard];
    l->n_samples = windows(l, l->ntok[s]);
    permute(l->sample_order, l->n_samples, l->shuffle, l->seed,
            ((uint64_t)l->pos.epoch << 32 | (uint64_t)s) * 2 + 2);
}

/* The shards of a comma-separated list of glob patterns (several corpora
 * mixed: "shards/pg19/train_*.bin, shards/wiki/train_*.bin"), each
 * pattern's matches in sorted order. A pattern that matches nothing, or a
 * file that two patterns both match, is an error: a typo in one corpus's
 * path must not quietly train on the others alone. */
static int add_files(StrList *files, const char *what, const char *list, Err *e) {
    for (const char *p = list;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n && (*p == ' ' || *p == '\t')) p++, n--;
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
        char pattern[4096];
        if (n == 0 || n >= sizeof pattern)
            return err_set(e, "%s: \"%s\": %s", what, list,
                           n ? "a pattern is too long" : "an empty pattern in the list");
        memcpy(pattern, p, n);
        pattern[n] = 0;
        glob_t g;
        int grc = glob(pattern, 0, NULL, &g);
        if (grc != 0) {
            if (grc != GLOB_NOMATCH) globfree(&g);
            return err_set(e, "%s: no files match \"%s\" (run ./train prepare first?)", what, pattern);
        }
        for (size_t i = 0; i < g.gl_pathc; i++) {
            for (int j = 0; j < files->n; j++)
                if (strcmp(files->s[j], g.gl_pathv[i]) == 0) {
                    err_set(e, "%s: %s is matched by two of the patterns in \"%s\"", what, g.gl_pathv[i], list);
                    globfree(&g);
                    return -1;
                }
            strlist_push(files, g.gl_pathv[i]);
        }
        globfree(&g);
        if (!end) return 0;
        p = end + 1;
    }
}

int loader_open(Loader *l, const char *what, const char *pattern, int B, int T, int shuffle,
                uint64_t seed, int vocab_size, Err *e) {
    memset(l, 0, sizeof *l);
    l->fd = -1;
    l->fd_shard = -1;
    l->what = what;
    if (B < 1 || T < 1) return err_set(e, "%s: batch size and sequence length must be >= 1", what);
    if (add_files(&l->files, what, pattern, e)) {
        loader_close(l);
        return -1;
    }
    l->B = B;
    l->T = T;
    l->shuffle = shuffle;
    l->seed = seed;
    l->vocab_size = vocab_size;
    l->ntok = xcalloc((size_t)l->files.n, sizeof *l->ntok);
    int64_t most = 0;
    for (int i = 0; i < l->files.n; i++) {
        if (shard_open(l->files.s[i], &l->ntok[i], e)) {
            loader_close(l);
            return -1;
        }
        int64_t w = windows(l, l->ntok[i]);
        l->total_samples += w;
        if (w > most) most = w;
    }
    if (l->total_samples == 0) {
        int64_t sum = 0;
        for (int i = 0; i < l->files.n; i++) sum += l->ntok[i];
        err_set(e, "%s: \"%s\" has %lld tokens, but a batch needs B*T+1 = %lld in one shard; "
                   "lower batch_size or seq_len", what, pattern, (long long)sum,
                (long long)B * T + 1);
        loader_close(l);
        return -1;
    }
    l->shard_order = xmalloc((size_t)l->files.n * sizeof *l->shard_order);
    l->sample_order = xmalloc((size_t)most * sizeof *l->sample_order);
    l->buf = xmalloc(((size_t)B * T + 1) * sizeof *l->buf);
    enter(l);
    return 0;
}

int loader_disjoint(const Loader *a, const Loader *b, Err *e) {
    struct stat *sb = xcalloc((size_t)b->files.n + 1, sizeof *sb);
    for (int j = 0; j < b->files.n; j++)
        if (stat(b->files.s[j], &sb[j]) != 0) sb[j].st_ino = 0; /* opened a moment ago: reading reports it */
    int rc = 0;
    for (int i = 0; i < a->files.n && rc == 0; i++) {
        struct stat sa;
        if (stat(a->files.s[i], &sa) != 0) continue;
        for (int j = 0; j < b->files.n && rc == 0; j++) {
            if (sb[j].st_ino == 0 || sa.st_dev != sb[j].st_dev || sa.st_ino != sb[j].st_ino) continue;
            int same = strcmp(a->files.s[i], b->files.s[j]) == 0;
            rc = err_set(e, "%s and %s both take %s%s%s: the validation loss would be measured on tokens the "
                            "model trains on (a pattern such as DIR/*.bin takes both splits)",
                         a->what, b->what, a->files.s[i], same ? "" : " = ", same ? "" : b->files.s[j]);
        }
    }
    free(sb);
    return rc;
}

void loader_close(Loader *l) {
    if (l->fd >= 0) close(l->fd);
    strlist_free(&l->files);
    free(l->ntok);
    free(l->shard_order);
    free(l->sample_order);
    free(l->buf);
    memset(l, 0, sizeof *l);
    l->fd = -1;
}

LoaderPos loader_tell(const Loader *l) { return l->pos; }

int loader_seek(Loader *l, LoaderPos pos, Err *e) {
    if (pos.epoch < 0 || pos.shard < 0 || pos.shard >= l->files.n || pos.sample < 0)
        return err_set(e, "loader position (epoch %lld, shard %lld, sample %lld) is outside "
                          "the data (%d shards)", (long long)pos.epoch, (long long)pos.shard,
                       (long long)pos.sample, l->files.n);
    l->pos = pos;
    enter(l);
    if (pos.sample > l->n_samples)
        return err_set(e, "loader position: sample %lld of a shard with %lld windows (did the "
                          "data or batch shape change?)", (long long)pos.sample, (long long)l->n_samples);
    return 0;
}

void loader_reset(Loader *l) {
    l->pos = (LoaderPos){0, 0, 0};
    enter(l);
}

int loader_next(Loader *l, int32_t *inputs, int32_t *targets, Err *e) {
    while (l->pos.sample >= l->n_samples) { /* next shard, or next epoch */
        l->pos.sample = 0;
        if (++l->pos.shard == l->files.n) {
            l->pos.shard = 0;
            l->pos.epoch++;
        }
        enter(l);
    }
    int64_t s = l->shard_order[l->pos.shard];
    const char *path = l->files.s[s];
    if (l->fd_shard != s) {
        if (l->fd >= 0) close(l->fd);
        l->fd = open(path, O_RDONLY);
        l->fd_shard = l->fd >= 0 ? (int)s : -1;
        if (l->fd < 0) return err_sys(e, "%s: cannot open shard", path);
    }
    size_t n = (size_t)l->B * l->T + 1;
    int64_t first = l->sample_order[l->pos.sample] * ((int64_t)l->B * l->T);
    off_t off = SHARD_HEADER_BYTES + 2 * (off_t)first;
    ssize_t got = pread(l->fd, l->buf, n * sizeof *l->buf, off);
    if (got != (ssize_t)(n * sizeof *l->buf))
        return err_sys(e, "%s: short read at token %lld (was the shard changed?)", path, (long long)first);
    for (size_t i = 0; i < n; i++)
        if (l->buf[i] >= l->vocab_size)
            return err_set(e, "%s: token %u at position %lld is outside the vocabulary (vocab_size "
                              "%d)", path, l->buf[i], (long long)(first + (int64_t)i), l->vocab_size);
    for (size_t i = 0; i + 1 < n; i++) {
        inputs[i] = l->buf[i];
        targets[i] = l->buf[i + 1];
    }
    l->pos.sample++;
    return 0;
}
