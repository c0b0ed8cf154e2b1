#include "shard.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUF_TOKENS (1 << 16)

void shard_path(char *out, size_t size, const char *dir, const char *prefix, int index) {
    snprintf(out, size, "%s/%s_%06d.bin", dir, prefix, index);
}

static void tmp_path(char *out, size_t size, const ShardWriter *w, int index) {
    snprintf(out, size, "%s/%s_%06d.bin.tmp", w->dir, w->prefix, index);
}

void shard_writer_init(ShardWriter *w, const char *dir, const char *prefix, int64_t shard_tokens) {
    memset(w, 0, sizeof *w);
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    snprintf(w->prefix, sizeof w->prefix, "%s", prefix);
    w->shard_tokens = shard_tokens;
    w->buf = xmalloc(BUF_TOKENS * sizeof *w->buf);
}

static int write_header(FILE *f, int64_t ntok, const char *path, Err *e) {
    int32_t h[SHARD_HEADER_INTS] = {SHARD_MAGIC, SHARD_VERSION, (int32_t)ntok};
    if (fseek(f, 0, SEEK_SET) != 0 || fwrite(h, sizeof h, 1, f) != 1)
        return err_sys(e, "%s: cannot write header", path);
    return 0;
}

static int close_shard(ShardWriter *w, Err *e) {
    char path[2200];
    tmp_path(path, sizeof path, w, w->index - 1);
    int rc = write_header(w->f, w->in_shard, path, e);
    if (rc == 0 && (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0))
        rc = err_sys(e, "%s: cannot write", path);
    if (fclose(w->f) != 0 && rc == 0) rc = err_sys(e, "%s: cannot write", path);
    w->f = NULL;
    return rc;
}

static int open_shard(ShardWriter *w, Err *e) {
    char path[2200];
    tmp_path(path, sizeof path, w, w->index);
    w->f = fopen(path, "wb");
    if (!w->f) return err_sys(e, "%s: cannot create shard", path);
    w->index++;
    w->in_shard = 0;
    return write_header(w->f, 0, path, e); /* placeholder until the shard is closed */
}

int shard_writer_append(ShardWriter *w, const int32_t *ids, size_t n, Err *e) {
    while (n > 0) {
        if (!w->f && open_shard(w, e)) return -1;
        size_t room = (size_t)(w->shard_tokens - w->in_shard);
        size_t k = n < room ? n : room;
        if (k > BUF_TOKENS) k = BUF_TOKENS;
        for (size_t i = 0; i < k; i++) {
            if (ids[i] < 0 || ids[i] > 65535)
                return err_set(e, "%s shard: token id %d does not fit in uint16", w->prefix, ids[i]);
            w->buf[i] = (uint16_t)ids[i];
        }
        if (fwrite(w->buf, sizeof *w->buf, k, w->f) != k) {
            char path[2200];
            tmp_path(path, sizeof path, w, w->index - 1);
            return err_sys(e, "%s: cannot write", path);
        }
        w->in_shard += (int64_t)k;
        w->total += (int64_t)k;
        ids += k;
        n -= k;
        if (w->in_shard == w->shard_tokens && close_shard(w, e)) return -1;
    }
    return 0;
}

int shard_writer_finish(ShardWriter *w, Err *e) {
    return w->f ? close_shard(w, e) : 0;
}

/* The index of a shard named prefix_NNNNNN.bin (with tmp, of its temporary
 * prefix_NNNNNN.bin.tmp), or -1 */
static int name_index(const char *name, const char *prefix, int tmp) {
    size_t p = strlen(prefix);
    if (strncmp(name, prefix, p) != 0 || name[p] != '_') return -1;
    char *end;
    long idx = strtol(name + p + 1, &end, 10);
    if (end != name + p + 7 || strcmp(end, tmp ? ".bin.tmp" : ".bin") != 0 || idx < 0) return -1;
    return (int)idx;
}

static int shard_index(const char *name, const char *prefix) { return name_index(name, prefix, 0); }

int shard_dir_has(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *de;
    int found = 0;
    while (!found && (de = readdir(d)) != NULL) found = shard_index(de->d_name, prefix) >= 0;
    closedir(d);
    return found;
}

int shard_writer_commit(ShardWriter *w, Err *e) {
    char from[2200], to[2200];
    for (int i = 0; i < w->index; i++) {
        tmp_path(from, sizeof from, w, i);
        shard_path(to, sizeof to, w->dir, w->prefix, i);
        if (rename(from, to) != 0) return err_sys(e, "cannot rename %s to %s", from, to);
    }
    DIR *d = opendir(w->dir);
    if (!d) return err_sys(e, "%s: cannot list", w->dir);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        int idx = shard_index(de->d_name, w->prefix);
        /* left over from an earlier, larger run; or a temporary of a run
         * killed before its commit (this run's are all renamed by now) */
        if (idx >= w->index || name_index(de->d_name, w->prefix, 1) >= 0) {
            snprintf(to, sizeof to, "%s/%s", w->dir, de->d_name);
            unlink(to);
        }
    }
    int fd = dirfd(d);
    int rc = fsync(fd) == 0 ? 0 : err_sys(e, "%s: cannot fsync directory", w->dir);
    closedir(d);
    return rc;
}

void shard_writer_abort(ShardWriter *w) {
    char path[2200];
    if (w->f) {
        fclose(w->f);
        w->f = NULL;
    }
    for (int i = 0; i < w->index; i++) {
        tmp_path(path, sizeof path, w, i);
        unlink(path);
    }
    w->index = 0;
    free(w->buf);
    w->buf = NULL;
}

int shard_open(const char *path, int64_t *ntok, Err *e) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return err_sys(e, "%s: cannot open shard", path);
    struct stat st;
    int32_t h[SHARD_HEADER_INTS];
    ssize_t got = fstat(fd, &st) == 0 ? pread(fd, h, sizeof h, 0) : -1;
    close(fd);
    if (got != (ssize_t)sizeof h)
        return err_set(e, "%s: not a token shard (shorter than its %d-byte header)", path,
                       SHARD_HEADER_BYTES);
    if (h[0] != SHARD_MAGIC)
        return err_set(e, "%s: bad magic %d, expected %d (an llm.c-format token shard made "
                          "by ./train prepare)", path, h[0], SHARD_MAGIC);
    if (h[1] != SHARD_VERSION)
        return err_set(e, "%s: version %d, expected %d (uint16 tokens)", path, h[1], SHARD_VERSION);
    int64_t want = SHARD_HEADER_BYTES + 2 * (int64_t)h[2];
    if (h[2] < 0 || (int64_t)st.st_size != want)
        return err_set(e, "%s: header says %d tokens (%lld bytes) but the file has %lld bytes "
                          "(truncated or corrupt)", path, h[2], (long long)want,
                       (long long)st.st_size);
    *ntok = h[2];
    return 0;
}
