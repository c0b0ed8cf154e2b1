#include "sources.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

int source_kind_parse(const char *name, SourceKind *kind) {
    if (strcmp(name, "pg19") == 0) *kind = SOURCE_PG19;
    else if (strcmp(name, "jsonl") == 0) *kind = SOURCE_JSONL;
    else if (strcmp(name, "c4") == 0) *kind = SOURCE_C4;
    else return -1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* listing                                                                  */

static int wanted(SourceKind kind, const char *name) {
    if (name[0] == '.') return 0;
    switch (kind) {
    case SOURCE_PG19: return fnmatch("*.txt", name, 0) == 0;
    case SOURCE_C4: return fnmatch("c4-*.json.gz", name, 0) == 0 || fnmatch("c4-*.json", name, 0) == 0;
    case SOURCE_JSONL: return 1;
    }
    return 0;
}

static int list_dir(SourceKind kind, const char *dir, StrList *out, Err *e) {
    DIR *d = opendir(dir);
    if (!d) return err_sys(e, "%s: cannot read directory", dir);
    StrList here = {0};
    struct dirent *de;
    char path[4096];
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) != 0) {
            rc = err_sys(e, "%s: cannot stat", path);
            break;
        }
        if (S_ISDIR(st.st_mode) ? kind == SOURCE_JSONL : wanted(kind, de->d_name))
            strlist_push(&here, path);
    }
    closedir(d);
    strlist_sort(&here);
    for (int i = 0; rc == 0 && i < here.n; i++) {
        struct stat st;
        if (stat(here.s[i], &st) == 0 && S_ISDIR(st.st_mode))
            rc = list_dir(kind, here.s[i], out, e);
        else
            strlist_push(out, here.s[i]);
    }
    strlist_free(&here);
    return rc;
}

int source_list_files(SourceKind kind, char *const *inputs, int n, StrList *files, Err *e) {
    static const char *what[] = {"*.txt books", "files", "c4-*.json.gz files"};
    if (n == 0) return err_set(e, "no INPUT given");
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (stat(inputs[i], &st) != 0) return err_sys(e, "%s", inputs[i]);
        if (S_ISDIR(st.st_mode)) {
            int before = files->n;
            if (list_dir(kind, inputs[i], files, e)) return -1;
            if (files->n == before) {
                char sub[4096];
                snprintf(sub, sizeof sub, "%s/train", inputs[i]);
                if (kind == SOURCE_PG19 && stat(sub, &st) == 0 && S_ISDIR(st.st_mode))
                    return err_set(e, "%s: empty input: no %s in this directory (PG19's release is split in train/, "
                                   "validation/ and test/: give %s/train, and %s/validation after --val)",
                                   inputs[i], what[kind], inputs[i], inputs[i]);
                return err_set(e, "%s: empty input: no %s in this directory", inputs[i], what[kind]);
            }
            int train = 0, val = 0;
            for (int k = before; kind == SOURCE_C4 && k < files->n; k++) {
                const char *base = strrchr(files->s[k], '/') + 1;
                train |= strncmp(base, "c4-train.", 9) == 0;
                val |= strncmp(base, "c4-validation.", 14) == 0;
            }
            if (train && val) /* taken together, C4's validation documents would leak into training */
                return err_set(e, "%s: holds both C4 splits: give the training files as INPUT and the validation "
                               "ones after --val (%s/c4-train.* --val %s/c4-validation.*)", inputs[i], inputs[i],
                               inputs[i]);
        } else {
            strlist_push(files, inputs[i]);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* reading                                                                  */

struct SourceReader {
    SourceKind kind;
    const StrList *files;
    int fi;               /* index of the current file */
    gzFile gz;            /* JSON lines: the open file */
    long line, records;   /* in the current file */
    char *buf;
    size_t cap, start, end;
    int eof;
    uint64_t bytes;
};

SourceReader *source_reader_open(SourceKind kind, const StrList *files) {
    SourceReader *r = xcalloc(1, sizeof *r);
    r->kind = kind;
    r->files = files;
    r->cap = 64 << 10; /* grows to fit the longest line or book */
    r->buf = xmalloc(r->cap);
    return r;
}

void source_reader_close(SourceReader *r) {
    if (!r) return;
    if (r->gz) gzclose(r->gz);
    free(r->buf);
    free(r);
}

uint64_t source_reader_bytes(const SourceReader *r) { return r->bytes; }

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* A whole file as one record. */
static int next_book(SourceReader *r, Record *rec, Err *e) {
    if (r->fi == r->files->n) return 0;
    const char *path = r->files->s[r->fi++];
    FILE *f = fopen(path, "rb");
    if (!f) return err_sys(e, "%s: cannot open", path);
    size_t n = 0, got;
    while ((got = fread(r->buf + n, 1, r->cap - n, f)) > 0) {
        n += got;
        if (n == r->cap) r->buf = xrealloc(r->buf, r->cap *= 2);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) return err_sys(e, "%s: read error", path);
    if (n == 0) return err_set(e, "%s: empty input: the book has no text", path);
    r->bytes += n;
    *rec = (Record){r->buf, n, path, 0, r->fi - 1};
    return 1;
}

static int open_lines(SourceReader *r, Err *e) {
    const char *path = r->files->s[r->fi];
    if (ends_with(path, ".gz")) { /* zlib would silently read a non-gzip file as plain text */
        FILE *f = fopen(path, "rb");
        if (!f) return err_sys(e, "%s: cannot open", path);
        unsigned char m[2] = {0, 0};
        size_t got = fread(m, 1, 2, f);
        fclose(f);
        if (got < 2 || m[0] != 0x1f || m[1] != 0x8b)
            return err_set(e, "%s: not a gzip file (bad magic bytes)", path);
    }
    r->gz = gzopen(path, "rb");
    if (!r->gz) return err_sys(e, "%s: cannot open", path);
    gzbuffer(r->gz, 1 << 18);
    r->line = r->records = 0;
    r->start = r->end = 0;
    r->eof = 0;
    return 0;
}

/* Classifies a gzread result: -1 with a message for corrupt or truncated
 * data, 0 otherwise; *at_end is set at a clean end of the file. */
static int gz_status(gzFile gz, int got, const char *path, long line, int *at_end, Err *e) {
    int errnum;
    const char *msg = gzerror(gz, &errnum);
    size_t k = strlen(path);
    if (strncmp(msg, path, k) == 0 && msg[k] == ':') msg += k + 2; /* zlib prefixes the path */
    *at_end = 0;
    if (got < 0 || (errnum != Z_OK && errnum != Z_BUF_ERROR)) {
        if (errnum == Z_ERRNO) return err_sys(e, "%s: read error", path);
        return err_set(e, "%s: corrupt gzip data near line %ld (%s)", path, line, msg);
    }
    if (got == 0) {
        if (errnum == Z_BUF_ERROR)
            return err_set(e, "%s: truncated gzip file (it ends in the middle of the stream, "
                              "near line %ld)", path, line);
        *at_end = 1;
    }
    return 0;
}

static int fill(SourceReader *r, Err *e) {
    const char *path = r->files->s[r->fi];
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    if (r->end == r->cap) r->buf = xrealloc(r->buf, r->cap *= 2);
    size_t want = r->cap - r->end;
    if (want > (1u << 30)) want = 1u << 30;
    int got = gzread(r->gz, r->buf + r->end, (unsigned)want);
    if (gz_status(r->gz, got, path, r->line + 1, &r->eof, e)) return -1;
    r->end += (size_t)got;
    r->bytes += (uint64_t)got;
    return 0;
}

int source_check_gzip(const char *path, Err *e) {
    gzFile gz = gzopen(path, "rb");
    if (!gz) return err_sys(e, "%s: cannot open", path);
    static __thread char scratch[1 << 16];
    int rc = 0, end = 0;
    long lines = 0;
    while (rc == 0 && !end) {
        int got = gzread(gz, scratch, sizeof scratch);
        rc = gz_status(gz, got, path, lines + 1, &end, e);
        for (int i = 0; i < got; i++) lines += scratch[i] == '\n';
    }
    gzclose(gz);
    return rc;
}

static int blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

static int next_line(SourceReader *r, Record *rec, Err *e) {
    for (;;) {
        if (!r->gz) {
            if (r->fi == r->files->n) return 0;
            if (open_lines(r, e)) return -1;
        }
        const char *path = r->files->s[r->fi];
        char *s = r->buf + r->start;
        char *nl = memchr(s, '\n', r->end - r->start);
        if (nl || (r->eof && r->end > r->start)) {
            size_t n = nl ? (size_t)(nl - s) : r->end - r->start;
            r->start += n + (nl != NULL);
            r->line++;
            if (blank(s, n)) continue;
            r->records++;
            *rec = (Record){s, n, path, r->line, r->fi};
            return 1;
        }
        if (!r->eof) {
            if (fill(r, e)) return -1;
            continue;
        }
        gzclose(r->gz);
        r->gz = NULL;
        r->fi++;
        if (r->records == 0) return err_set(e, "%s: empty input: no JSON lines in this file", path);
    }
}

int source_reader_next(SourceReader *r, Record *rec, Err *e) {
    return r->kind == SOURCE_PG19 ? next_book(r, rec, e) : next_line(r, rec, e);
}

int json_record_text(const Record *rec, char **text, size_t *len, Err *e) {
    json_error_t je;
    json_t *root = json_loadb(rec->data, rec->len, JSON_ALLOW_NUL, &je);
    if (!root)
        return err_set(e, "%s:%ld: malformed JSON at column %d: %s", rec->file, rec->line,
                       je.column, je.text);
    int rc = 0;
    json_t *t = json_is_object(root) ? json_object_get(root, "text") : NULL;
    if (!json_is_object(root))
        rc = err_set(e, "%s:%ld: expected a JSON object with a \"text\" field", rec->file, rec->line);
    else if (!t)
        rc = err_set(e, "%s:%ld: missing \"text\" field", rec->file, rec->line);
    else if (!json_is_string(t))
        rc = err_set(e, "%s:%ld: \"text\" is not a string", rec->file, rec->line);
    else {
        *len = json_string_length(t);
        *text = xmalloc(*len + 1);
        memcpy(*text, json_string_value(t), *len + 1);
    }
    json_decref(root);
    return rc;
}
