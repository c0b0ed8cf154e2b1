#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

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

float *scratch_floats(float **buf, size_t *cap, size_t n) {
    if (n > *cap) {
        size_t bytes = n ? (n * sizeof **buf + 63) / 64 * 64 : 64;
        free(*buf);
        *buf = aligned_alloc(64, bytes);
        if (!*buf) oom(bytes);
        *cap = n;
    }
    return *buf;
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

/* The number on the first line of dir/name, or -1 if there is none (a
 * missing file, or "max"). */
static double read_number(const char *dir, const char *name) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    double v;
    int ok = fscanf(f, "%lf", &v) == 1;
    fclose(f);
    return ok ? v : -1;
}

/* The value of `key` in dir/memory.stat, 0 if absent. */
static double stat_number(const char *dir, const char *key) {
    char path[4200], line[256];
    snprintf(path, sizeof path, "%s/memory.stat", dir);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    double v = 0;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0 && line[n] == ' ') {
            v = strtod(line + n + 1, NULL);
            break;
        }
    fclose(f);
    return v;
}

double cgroup_headroom(const char *proc_cgroup, const char *sys_root) {
    FILE *f = fopen(proc_cgroup, "r");
    if (!f) return -1;
    char line[2048], dir[4096];
    double best = -1;
    while (fgets(line, sizeof line, f)) { /* "id:controllers:path" */
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2 || c2[1] != '/') continue;
        *c2 = 0;
        char *ctl = c1 + 1, *path = c2 + 1;
        path[strcspn(path, "\n")] = 0;
        int v2 = *ctl == 0, memory = 0;
        for (char *t = strtok(ctl, ","); t; t = strtok(NULL, ",")) memory |= strcmp(t, "memory") == 0;
        if (!v2 && !memory) continue;
        /* The cgroup and each ancestor: a limit may sit higher up, and
         * inside a container without a cgroup namespace the listed path
         * does not exist but the container's own cgroup is the root. */
        for (;;) {
            snprintf(dir, sizeof dir, "%s%s%s", sys_root, v2 ? "" : "/memory", path);
            double limit = read_number(dir, v2 ? "memory.max" : "memory.limit_in_bytes");
            double usage = read_number(dir, v2 ? "memory.current" : "memory.usage_in_bytes");
            if (limit >= 0 && limit < 1e18 && usage >= 0) { /* v1 writes "no limit" as ~2^63 */
                /* page cache is reclaimed before anything is killed, but
                 * not tmpfs and shared memory, which it includes */
                double cache = v2 ? stat_number(dir, "file") - stat_number(dir, "shmem")
                                  : stat_number(dir, "total_cache") - stat_number(dir, "total_shmem");
                double h = limit - usage + cache;
                if (h < 0) h = 0;
                if (best < 0 || h < best) best = h;
            }
            char *slash = strrchr(path, '/');
            if (slash == path && path[1] == 0) break;
            slash[slash == path] = 0; /* "/a/b" -> "/a", "/a" -> "/" */
        }
    }
    fclose(f);
    return best;
}

double mem_available(const char **source) {
    FILE *f = fopen("/proc/meminfo", "r");
    double avail = -1;
    if (f) {
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
        if (found) avail = kb * 1024;
    }
    if (source) *source = "of memory and swap are available";
    double cg = cgroup_headroom("/proc/self/cgroup", "/sys/fs/cgroup");
    if (cg >= 0 && (avail < 0 || cg < avail)) {
        avail = cg;
        if (source) *source = "are left under this process's cgroup memory limit";
    }
    return avail;
}

int mkdir_p(const char *path, const char *what, Err *e) {
    char tmp[4096];
    if (!*path) return err_set(e, "%s: an empty path", what);
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) return err_set(e, "%s: the path is too long", what);
    for (char *p = tmp + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(tmp, 0777) != 0 && errno != EEXIST) return err_sys(e, "%s: cannot create directory %s", what, tmp);
            *p = c;
            if (!c) break;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return err_set(e, "%s: %s is not a directory", what, path);
    if (access(path, W_OK) != 0) return err_sys(e, "%s: %s is not writable", what, path);
    return 0;
}

/* The pid holding a flock on the file (dev, ino), from /proc/locks
 * ("1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"), or 0. */
static int lock_holder(dev_t dev, ino_t ino) {
    FILE *f = fopen("/proc/locks", "r");
    if (!f) return 0;
    char line[256], kind[16];
    int pid = 0;
    while (!pid && fgets(line, sizeof line, f)) {
        unsigned maj, min;
        unsigned long long in;
        int p;
        if (sscanf(line, "%*d: %15s %*s %*s %d %x:%x:%llu", kind, &p, &maj, &min, &in) == 5 &&
            strcmp(kind, "FLOCK") == 0 && maj == major(dev) && min == minor(dev) && in == (unsigned long long)ino)
            pid = p;
    }
    fclose(f);
    return pid;
}

int dir_lock(const char *path, const char *what, Err *e) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return err_sys(e, "%s: cannot open %s", what, path);
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return fd;
    int busy = errno == EWOULDBLOCK;
    struct stat st;
    int pid = busy && fstat(fd, &st) == 0 ? lock_holder(st.st_dev, st.st_ino) : 0;
    if (!busy) {
        err_sys(e, "%s: cannot lock %s (make sure no other run uses it)", what, path);
        close(fd);
        return -2;
    }
    close(fd);
    char by[32] = "";
    if (pid > 0) snprintf(by, sizeof by, " (pid %d)", pid);
    return err_set(e, "%s: %s is in use by another ./train%s: two runs in one directory would overwrite each "
                      "other's files; wait for it to finish, stop it, or choose another directory", what, path, by);
}
