/* LD_PRELOAD shim for the tests: a file system that refuses O_DIRECT, the
 * way some do, to exercise the checkpoint writer's fallback to buffered
 * writes. NODIRECT=open: open() with O_DIRECT fails with EINVAL (tmpfs on
 * older kernels, some FUSE and network file systems). NODIRECT=write: open()
 * succeeds but write() on a descriptor with O_DIRECT fails with EINVAL (file
 * systems that check alignment only at I/O time). Each refusal is reported
 * once on stderr, so a test can tell that the path it means to test ran. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static int mode(const char *want) {
    const char *m = getenv("NODIRECT");
    return m && strcmp(m, want) == 0;
}

static void report(const char *what) {
    static int said;
    if (said++) return;
    static const char pre[] = "nodirect: refused O_DIRECT in ";
    ssize_t (*real_write)(int, const void *, size_t) = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    if (real_write(2, pre, sizeof pre - 1) < 0 || real_write(2, what, strlen(what)) < 0 || real_write(2, "\n", 1) < 0)
        return;
}

static int open_common(const char *name, const char *path, int flags, mode_t m) {
    if ((flags & O_DIRECT) && mode("open")) {
        report("open");
        errno = EINVAL;
        return -1;
    }
    int (*real)(const char *, int, ...) = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, name);
    return real(path, flags, m);
}

/* open and open64, which the caller reaches depending on _FILE_OFFSET_BITS */
#define OPEN_WRAPPER(fn)                                                                                               \
    int fn(const char *path, int flags, ...) {                                                                         \
        mode_t m = 0;                                                                                                  \
        if (flags & (O_CREAT | O_TMPFILE)) {                                                                           \
            va_list ap;                                                                                                \
            va_start(ap, flags);                                                                                       \
            m = (mode_t)va_arg(ap, int);                                                                               \
            va_end(ap);                                                                                                \
        }                                                                                                              \
        return open_common(#fn, path, flags, m);                                                                       \
    }
OPEN_WRAPPER(open)
OPEN_WRAPPER(open64)

ssize_t write(int fd, const void *buf, size_t n) {
    if (mode("write") && (fcntl(fd, F_GETFL) & O_DIRECT)) {
        report("write");
        errno = EINVAL;
        return -1;
    }
    ssize_t (*real)(int, const void *, size_t) = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    return real(fd, buf, n);
}
