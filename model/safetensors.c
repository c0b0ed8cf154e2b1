#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define MAX_HEADER (100u << 20)
#define ST_ALIGN 4096          /* O_DIRECT: buffer, size and offset in whole blocks */
#define ST_STAGE (8u << 20)    /* staging buffer, a multiple of ST_ALIGN */

size_t st_dtype_size(const char *d) {
    static const struct { const char *name; size_t size; } types[] = {
        {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
        {"I8", 1}, {"U8", 1}, {"BOOL", 1},
    };
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (strcmp(types[i].name, d) == 0) return types[i].size;
    return 0;
}

int64_t st_numel(const StTensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

int st_writer_open(StWriter *w, const char *path, StTensor *tensors, int n, const char *metadata, Err *e) {
    memset(w, 0, sizeof *w);
    w->fd = -1;
    snprintf(w->path, sizeof w->path, "%s", path);
    json_t *h = json_object();
    if (metadata) {
        json_error_t je;
        json_t *md = json_loads(metadata, 0, &je);
        if (!json_is_object(md)) {
            json_decref(h);
            return err_set(e, "%s: internal error: metadata is not a JSON object", path);
        }
        json_object_set_new(h, "__metadata__", md);
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        StTensor *t = &tensors[i];
        json_t *shape = json_array();
        for (int k = 0; k < t->ndim; k++) json_array_append_new(shape, json_integer(t->shape[k]));
        t->begin = off;
        t->end = off + (uint64_t)st_numel(t) * st_dtype_size(t->dtype);
        off = t->end;
        json_object_set_new(h, t->name, json_pack("{s:s, s:o, s:[I, I]}", "dtype", t->dtype, "shape", shape,
                                                  "data_offsets", (json_int_t)t->begin, (json_int_t)t->end));
    }
    char *text = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    size_t len = strlen(text), padded = (len + 7) / 8 * 8;
    w->expected = off;
    uint64_t hl = padded;
    unsigned char le[8];
    for (int k = 0; k < 8; k++) le[k] = (unsigned char)(hl >> (8 * k));
    char *full = realloc(text, padded + 1);
    if (!full) {
        free(text);
        return err_set(e, "%s: out of memory", path);
    }
    memset(full + len, ' ', padded - len);
    w->buf = aligned_alloc(ST_ALIGN, ST_STAGE);
    if (!w->buf) {
        free(full);
        return err_set(e, "%s: out of memory", path);
    }
    w->direct = 1;
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT, 0666);
    if (w->fd < 0 && errno == EINVAL) { /* a file system without O_DIRECT (tmpfs) */
        w->direct = 0;
        w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    }
    if (w->fd < 0) {
        free(full);
        free(w->buf);
        w->buf = NULL;
        return err_sys(e, "%s: cannot create", path);
    }
    int rc = st_writer_data(w, le, 8, e);
    if (rc == 0) rc = st_writer_data(w, full, padded, e);
    w->written = 0; /* the header does not count as tensor data */
    free(full);
    if (rc) st_writer_abort(w);
    return rc;
}

/* Writes n bytes of the staging buffer. A short write with O_DIRECT (the
 * file size limit, a full disk) or one the file system refuses turns
 * O_DIRECT off and goes on, so the error that comes is the real one. */
static int stage_flush(StWriter *w, size_t n, Err *e) {
    size_t off = 0;
    while (off < n) {
        ssize_t k = write(w->fd, w->buf + off, n - off);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && errno == EINVAL && w->direct) {
            w->direct = 0;
            fcntl(w->fd, F_SETFL, fcntl(w->fd, F_GETFL) & ~O_DIRECT);
            continue;
        }
        if (k < 0) return err_sys(e, "%s: cannot write", w->path);
        if (k == 0) {
            errno = ENOSPC;
            return err_sys(e, "%s: cannot write", w->path);
        }
        off += (size_t)k;
        if (off < n && w->direct) {
            w->direct = 0;
            fcntl(w->fd, F_SETFL, fcntl(w->fd, F_GETFL) & ~O_DIRECT);
        }
    }
    return 0;
}

int st_writer_data(StWriter *w, const void *data, size_t nbytes, Err *e) {
    const unsigned char *p = data;
    w->crc = (uint32_t)crc32_z(w->crc, p, nbytes);
    w->written += nbytes;
    w->bytes += nbytes;
    while (nbytes) {
        size_t k = ST_STAGE - w->fill < nbytes ? ST_STAGE - w->fill : nbytes;
        memcpy(w->buf + w->fill, p, k);
        w->fill += k;
        p += k;
        nbytes -= k;
        if (w->fill == ST_STAGE) {
            if (stage_flush(w, ST_STAGE, e)) return -1;
            w->fill = 0;
        }
    }
    return 0;
}

int st_writer_close(StWriter *w, Err *e) {
    int rc = 0;
    if (w->written != w->expected)
        rc = err_set(e, "%s: internal error: wrote %llu data bytes, header says %llu", w->path,
                     (unsigned long long)w->written, (unsigned long long)w->expected);
    size_t whole = w->fill / ST_ALIGN * ST_ALIGN;
    if (rc == 0 && whole) rc = stage_flush(w, whole, e);
    if (rc == 0 && w->fill > whole) { /* the last partial block: not O_DIRECT */
        memmove(w->buf, w->buf + whole, w->fill - whole);
        if (w->direct) fcntl(w->fd, F_SETFL, fcntl(w->fd, F_GETFL) & ~O_DIRECT);
        w->direct = 0;
        rc = stage_flush(w, w->fill - whole, e);
    }
    if (rc == 0 && fsync(w->fd) != 0) rc = err_sys(e, "%s: cannot write", w->path);
    if (close(w->fd) != 0 && rc == 0) rc = err_sys(e, "%s: cannot write", w->path);
    w->fd = -1;
    free(w->buf);
    w->buf = NULL;
    return rc;
}

void st_writer_abort(StWriter *w) {
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
    free(w->buf);
    w->buf = NULL;
}

static int parse_entry(StFile *f, const char *name, json_t *v, uint64_t data_size, StTensor *t, Err *e) {
    memset(t, 0, sizeof *t);
    json_t *dtype = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape");
    json_t *offs = json_object_get(v, "data_offsets");
    if (strlen(name) >= sizeof t->name) return err_set(e, "%s: tensor name too long: %.60s...", f->path, name);
    snprintf(t->name, sizeof t->name, "%s", name);
    if (!json_is_string(dtype) || !st_dtype_size(json_string_value(dtype)))
        return err_set(e, "%s: tensor '%s': missing or unknown dtype", f->path, name);
    snprintf(t->dtype, sizeof t->dtype, "%s", json_string_value(dtype));
    if (!json_is_array(shape) || json_array_size(shape) > ST_MAX_DIMS)
        return err_set(e, "%s: tensor '%s': shape must be an array of at most %d sizes", f->path, name, ST_MAX_DIMS);
    t->ndim = (int)json_array_size(shape);
    double numel = 1;
    for (int k = 0; k < t->ndim; k++) {
        json_t *d = json_array_get(shape, (size_t)k);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return err_set(e, "%s: tensor '%s': shape entries must be non-negative integers", f->path, name);
        t->shape[k] = json_integer_value(d);
        numel *= (double)t->shape[k];
    }
    json_t *b = json_array_get(offs, 0), *en = json_array_get(offs, 1);
    if (!json_is_array(offs) || json_array_size(offs) != 2 || !json_is_integer(b) || !json_is_integer(en) ||
        json_integer_value(b) < 0 || json_integer_value(en) < json_integer_value(b))
        return err_set(e, "%s: tensor '%s': data_offsets must be [begin, end]", f->path, name);
    t->begin = (uint64_t)json_integer_value(b);
    t->end = (uint64_t)json_integer_value(en);
    if (t->end > data_size)
        return err_set(e, "%s: tensor '%s' ends at byte %llu of a %llu-byte data section (truncated file?)",
                       f->path, name, (unsigned long long)t->end, (unsigned long long)data_size);
    if ((double)(t->end - t->begin) != numel * (double)st_dtype_size(t->dtype))
        return err_set(e, "%s: tensor '%s': %llu bytes do not hold its shape", f->path, name,
                       (unsigned long long)(t->end - t->begin));
    return 0;
}

int st_open(StFile *f, const char *path, Err *e) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    f->fd = open(path, O_RDONLY);
    if (f->fd < 0) return err_sys(e, "%s: cannot open", path);
    struct stat st;
    unsigned char le[8];
    if (fstat(f->fd, &st) != 0 || pread(f->fd, le, 8, 0) != 8) {
        st_close(f);
        return err_set(e, "%s: not a safetensors file (shorter than 8 bytes)", path);
    }
    uint64_t hl = 0;
    for (int k = 0; k < 8; k++) hl |= (uint64_t)le[k] << (8 * k);
    if (hl > MAX_HEADER || hl + 8 > (uint64_t)st.st_size) {
        st_close(f);
        return err_set(e, "%s: not a safetensors file or truncated (header length %llu, file %lld bytes)", path,
                       (unsigned long long)hl, (long long)st.st_size);
    }
    char *text = malloc(hl + 1);
    if (!text || pread(f->fd, text, hl, 8) != (ssize_t)hl) {
        free(text);
        st_close(f);
        return err_sys(e, "%s: cannot read header", path);
    }
    json_error_t je;
    json_t *h = json_loadb(text, hl, 0, &je);
    free(text);
    if (!json_is_object(h)) {
        if (h) json_decref(h);
        st_close(f);
        return err_set(e, "%s: corrupt header (%s)", path, h ? "not a JSON object" : je.text);
    }
    f->data_start = 8 + hl;
    uint64_t data_size = (uint64_t)st.st_size - f->data_start;
    f->t = calloc(json_object_size(h) + 1, sizeof *f->t);
    const char *name;
    json_t *v;
    int rc = 0;
    json_object_foreach(h, name, v) {
        if (strcmp(name, "__metadata__") == 0) {
            f->metadata = json_dumps(v, JSON_COMPACT);
            continue;
        }
        if (!json_is_object(v)) {
            rc = err_set(e, "%s: tensor '%s' is not described by an object", path, name);
            break;
        }
        if ((rc = parse_entry(f, name, v, data_size, &f->t[f->n], e)) != 0) break;
        f->n++;
    }
    json_decref(h);
    if (rc) st_close(f);
    return rc;
}

const StTensor *st_find(const StFile *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
    return NULL;
}

int st_read(const StFile *f, const StTensor *t, const char *dtype, size_t count, void *dst, Err *e) {
    if (strcmp(t->dtype, dtype) != 0)
        return err_set(e, "%s: tensor '%s' has dtype %s, expected %s", f->path, t->name, t->dtype, dtype);
    if ((uint64_t)st_numel(t) != count)
        return err_set(e, "%s: tensor '%s' has %lld elements, expected %zu", f->path, t->name,
                       (long long)st_numel(t), count);
    size_t n = (size_t)(t->end - t->begin);
    char *p = dst;
    for (size_t done = 0; done < n;) {
        ssize_t got = pread(f->fd, p + done, n - done, (off_t)(f->data_start + t->begin + done));
        if (got <= 0) return err_sys(e, "%s: cannot read tensor '%s'", f->path, t->name);
        done += (size_t)got;
    }
    return 0;
}

void st_close(StFile *f) {
    if (f->fd >= 0) close(f->fd);
    free(f->t);
    free(f->metadata);
    f->fd = -1;
    f->t = NULL;
    f->metadata = NULL;
    f->n = 0;
}
