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

static const char *fuzz_dir(void) {
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/fuzz_%d_XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
                 (int)getpid());
        if (!mkdtemp(dir)) abort();
    }
    return dir;
}

/* dir/name with the input's bytes; returns the path (static). */
static const char *fuzz_file(const char *name, const uint8_t *data, size_t n) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(data, 1, n, f) != n) abort();
    fclose(f);
    return path;
}

#endif
