/* Errors and small allocation helpers shared by every module.
 *
 * Library code never prints and never exits: a function that can fail returns
 * -1 and fills an Err with one sentence naming the file, line or key at fault
 * and what was expected. train.c prints it and exits non-zero. */
#ifndef COMMON_ERR_H
#define COMMON_ERR_H

#include <stddef.h>

typedef struct {
    char msg[1024];
} Err;

/* Formats the message into e (if e is not NULL) and returns -1. */
int err_set(Err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Like err_set, but appends ": strerror(errno)". */
int err_sys(Err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* malloc/realloc that abort with a message on exhaustion. Used for small,
 * bounded allocations only; large buffers are checked by their callers. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* Scratch kept from call to call: *buf grown to at least n floats, 64-byte
 * aligned (its contents then lost; *cap counts what it holds), never
 * freed; aborts with a message on exhaustion. buf and cap are the
 * caller's own statics (thread-local for a buffer per thread). */
float *scratch_floats(float **buf, size_t *cap, size_t n);

/* For the model's and optimiser's large arrays: 64-byte aligned, and from
 * 2 MB on aligned to 2 MB and advised to use transparent huge pages. */
void *big_alloc(size_t n);

/* Bytes the kernel could still give this process: MemAvailable plus
 * SwapFree from /proc/meminfo, or less where a cgroup's memory limit
 * (a container's, a systemd unit's) leaves less; -1 when none can be read.
 * *source (if not NULL) gets words for which applied, to follow
 * "N GB ...": "of memory and swap are available" or "are left under
 * this process's cgroup memory limit". */
double mem_available(const char **source);

/* Headroom under the memory limits of the cgroups named in the file
 * proc_cgroup (/proc/self/cgroup's format; v1 "memory" and v2 lines),
 * their files under sys_root (/sys/fs/cgroup): the least over the cgroup
 * and its ancestors of limit - usage + page cache other than tmpfs and
 * shared memory (what the kernel reclaims before it kills).
 * Swap beyond the limit is not counted. -1 if no limit is set. */
double cgroup_headroom(const char *proc_cgroup, const char *sys_root);

/* Creates directory path and its parents; an error naming `what` (the key
 * or option that gave the path: "out_dir", "--out") unless path is then a
 * writable directory. */
int mkdir_p(const char *path, const char *what, Err *e);

/* Locks directory path against every other process (flock on the directory
 * itself: no file is written, and the kernel drops the lock when the process
 * ends, kill -9 included). Returns the descriptor to keep open for as long
 * as the lock should hold (close it to release); -1 with e set when another
 * process holds the lock (named by its pid where /proc/locks shows it); -2
 * with e set where this filesystem cannot lock (an NFS mount without lock
 * support): the caller decides whether to go on. */
int dir_lock(const char *path, const char *what, Err *e);

/* A growable array of strings (owned). */
typedef struct {
    char **s;
    int n, cap;
} StrList;

void strlist_push(StrList *l, const char *s);
void strlist_sort(StrList *l);
void strlist_free(StrList *l);

#endif
