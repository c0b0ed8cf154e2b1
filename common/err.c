#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int err_set(Err *e, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int err_sys(Err *e, const char *fmt, ...) {
    int saved = errno;
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < sizeof e->msg)
            snprintf(e->msg + n, sizeof e->msg - (size_t)n, ": %s", strerror(saved));
    }
    return -1;
}

static void oom(size_t n) {
    fprintf(stderr, "error: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

void strlist_push(StrList *l, const char *s) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->s = xrealloc(l->s, (size_t)l->cap * sizeof *l->s);
    }
    l->s[l->n++] = xstrdup(s);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void strlist_sort(StrList *l) {
    if (l->n > 1) qsort(l->s, (size_t)l->n, sizeof *l->s, cmp_str);
}

void strlist_free(StrList *l) {
    for (int i = 0; i < l->n; i++) free(l->s[i]);
    free(l->s);
    l->s = NULL;
    l->n = l->cap = 0;
}

/* Transparent huge pages are opt-in here (THP "madvise"): advised, a 2 MB
 * region faults in once instead of 512 times (~12 us each on these VMs),
 * which takes a second off GPT-2 124M's start. */
void *big_alloc(size_t n) {
    size_t huge = (size_t)2 << 20;
    if (n < huge) return aligned_alloc(64, n ? (n + 63) / 64 * 64 : 64); /* never 0 bytes: NULL means out of memory */
    size_t bytes = (n + huge - 1) / huge * huge;
    void *p = aligned_alloc(huge, bytes);
    if (p) madvise(p, bytes, MADV_HUGEPAGE);
    return p;
}

double mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[128];
    double kb = 0;
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        double v;
        if (sscanf(line, "MemAvailable: %lf kB", &v) == 1 || sscanf(line, "SwapFree: %lf kB", &v) == 1) {
            kb += v;
            found++;
        }
    }
    fclose(f);
    return found ? kb * 1024 : -1;
}
