/* A minimal test harness. Each test is a void function; RUN(fn) prints
 * "PASS fn" or "FAIL fn" (after the first few failed checks), and
 * tests/run.sh counts those lines. */
#ifndef TESTS_TEST_H
#define TESTS_TEST_H

#include <stdio.h>
#include <stdlib.h>

static int test_fails_;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            if (test_fails_++ < 5) {                                       \
                printf("  %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
                printf(__VA_ARGS__);                                       \
                printf("\n");                                              \
            }                                                              \
        }                                                                  \
    } while (0)

static inline void run_test_(const char *name, void (*fn)(void)) {
    test_fails_ = 0;
    fn();
    printf("%s %s\n", test_fails_ ? "FAIL" : "PASS", name);
    fflush(stdout);
}
#define RUN(fn) run_test_(#fn, fn)

/* A whole file, NUL-terminated (NULL if unreadable); *len gets its size. */
static inline char *test_slurp(const char *path, size_t *len) {
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    *len = fread(buf, 1, (size_t)n, f);
    buf[*len] = 0;
    fclose(f);
    return buf;
}

/* The assets directory: $TRAIN_ASSETS or ./assets (tests run from the repo root). */
static inline const char *test_assets(void) {
    const char *a = getenv("TRAIN_ASSETS");
    return a && *a ? a : "assets";
}

#endif
