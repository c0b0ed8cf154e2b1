/* Tests of the shared helpers in common/: the cgroup memory headroom that
 * the trainer's memory check reads, on fake /proc/self/cgroup files and
 * /sys/fs/cgroup trees (v1 and v2) built in a temporary directory; making
 * and locking output directories. */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/err.h"
#include "test.h"

static char root[] = "/tmp/test_common_XXXXXX";

/* Writes text to root/rel, making its directories. */
static void put(const char *rel, const char *text) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = 0;
        mkdir(path, 0755);
        *p = '/';
    }
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

/* headroom for the cgroup file root/name with the tree under root/sys */
static double headroom(const char *name) {
    char proc[4096], sys[4096];
    snprintf(proc, sizeof proc, "%s/%s", root, name);
    snprintf(sys, sizeof sys, "%s/sys", root);
    return cgroup_headroom(proc, sys);
}

static void test_cgroup_headroom(void) {
    /* v2: the limit sits on the parent; the child has none ("max"). The
     * parent's page cache other than shared memory counts as free:
     * limit - usage + file - shmem. */
    put("v2", "0::/a/b\n");
    put("sys/a/memory.max", "1000000000\n");
    put("sys/a/memory.current", "600000000\n");
    put("sys/a/memory.stat", "anon 400000000\nfile_mapped 5\nfile 200000000\nshmem 100000000\n");
    put("sys/a/b/memory.max", "max\n");
    put("sys/a/b/memory.current", "300000000\n");
    double h = headroom("v2");
    CHECK(h == 500e6, "v2 headroom %.0f, expected 500000000", h);

    /* a tighter limit lower down wins */
    put("sys/a/b/memory.max", "400000000\n");
    h = headroom("v2");
    CHECK(h == 100e6, "v2 headroom %.0f, expected 100000000", h);

    /* usage above the limit (cache not yet reclaimed) is no headroom, not a negative one */
    put("sys/a/b/memory.current", "900000000\n");
    h = headroom("v2");
    CHECK(h == 0, "v2 headroom %.0f, expected 0", h);

    /* v1: other controllers ignored; "no limit" (~2^63) on the listed
     * cgroup; a container's view where the listed path does not exist and
     * the limit is at the root of the memory hierarchy. */
    put("v1", "5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n");
    put("sys/memory/memory.limit_in_bytes", "2000000000\n");
    put("sys/memory/memory.usage_in_bytes", "700000000\n");
    put("sys/memory/memory.stat", "cache 1\nshmem 2\ntotal_cache 300000000\ntotal_shmem 100000000\n");
    h = headroom("v1");
    CHECK(h == 1500e6, "v1 headroom %.0f, expected 1500000000", h);
    put("sys/memory/docker/abc/memory.limit_in_bytes", "9223372036854771712\n");
    put("sys/memory/docker/abc/memory.usage_in_bytes", "100\n");
    h = headroom("v1");
    CHECK(h == 1500e6, "v1 headroom with an unlimited child %.0f, expected 1500000000", h);

    /* no limit anywhere, or no file at all: -1 */
    put("none", "0::/\n");
    CHECK(headroom("none") == -1, "no limit gave %.0f", headroom("none"));
    CHECK(headroom("missing") == -1, "a missing cgroup file gave %.0f", headroom("missing"));

    /* this machine's own answer is either no limit or a plausible number */
    const char *source = NULL;
    double avail = mem_available(&source);
    CHECK(avail > 0 && source != NULL, "mem_available %.0f", avail);
}

/* mkdir_p makes parents and names what gave the path; dir_lock admits one
 * holder at a time (flock locks belong to an open file, so a second open
 * in this same process is refused too) and names it by pid. */
static void test_dirs(void) {
    char dir[4096], file[4096], under[4200];
    Err e;
    snprintf(dir, sizeof dir, "%s/a/b/c", root);
    CHECK(mkdir_p(dir, "out_dir", &e) == 0, "%s", e.msg);
    CHECK(mkdir_p(dir, "out_dir", &e) == 0, "again: %s", e.msg);
    struct stat st;
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode), "%s not made", dir);
    put("file", "x");
    snprintf(file, sizeof file, "%s/file", root);
    snprintf(under, sizeof under, "%s/sub", file);
    CHECK(mkdir_p(under, "--out", &e) == -1 && strstr(e.msg, "--out: cannot create directory") &&
              strstr(e.msg, file), "under a file: %s", e.msg);
    CHECK(mkdir_p(file, "--out", &e) == -1 && strstr(e.msg, "is not a directory"), "a file: %s", e.msg);
    CHECK(mkdir_p("", "out_dir", &e) == -1 && strstr(e.msg, "out_dir: an empty path"), "empty: %s", e.msg);

    int fd = dir_lock(dir, "out_dir", &e);
    CHECK(fd >= 0, "first lock: %s", e.msg);
    char want[64];
    snprintf(want, sizeof want, "(pid %d)", (int)getpid());
    CHECK(dir_lock(dir, "out_dir", &e) == -1 && strstr(e.msg, "out_dir: ") && strstr(e.msg, dir) &&
              strstr(e.msg, "is in use") && strstr(e.msg, want), "second lock: %s", e.msg);
    close(fd);
    fd = dir_lock(dir, "out_dir", &e);
    CHECK(fd >= 0, "after release: %s", e.msg);
    close(fd);
    CHECK(dir_lock(file, "out_dir", &e) == -1 && strstr(e.msg, "cannot open"), "a file: %s", e.msg);
}

int main(void) {
    if (!mkdtemp(root)) return 1;
    RUN(test_cgroup_headroom);
    RUN(test_dirs);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    return system(cmd) != 0;
}
