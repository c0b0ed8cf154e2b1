/* Helpers for the libFuzzer targets: each input is written to a file in a
 * per-process directory, because the parsers under test read files. The
 * directory is on tmpfs (/dev/shm) when there is one: thousands of rewrites
 * a second of a file on ext4 each reach the disk (auto_da_alloc). */
#ifndef TESTS_FUZZ_H
#define TESTS_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_dir_path[64];
static char fuzz_names[16][64]; /* the files written there, removed at exit */
static int fuzz_n_names;

static void fuzz_cleanup(void) {
    char path[160];
    for (int i = 0; i < fuzz_n_names; i++) {
        snprintf(path, sizeof path, "%s/%s", fuzz_dir_path, fuzz_names[i]);
        unlink(path);
    }
    rmdir(fuzz_dir_path);
}

static const char *fuzz_dir(void) {
    if (!fuzz_dir_path[0]) {
        snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/fuzz_%d_XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (int)getpid());
        if (!mkdtemp(fuzz_dir_path)) abort();
        atexit(fuzz_cleanup);
    }
    return fuzz_dir_path;
}

/* dir/name with the input's bytes; returns the path (static). */
static const char *fuzz_file(const char *name, const uint8_t *data, size_t n) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    int known = 0;
    for (int i = 0; i < fuzz_n_names; i++) known |= strcmp(fuzz_names[i], name) == 0;
    if (!known && fuzz_n_names < 16) snprintf(fuzz_names[fuzz_n_names++], sizeof fuzz_names[0], "%s", name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(data, 1, n, f) != n) abort();
    fclose(f);
    return path;
}

#endif
