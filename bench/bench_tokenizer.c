/* Tokenizer throughput, one thread: encodes a file several times (a fresh
 * context, so a cold piece cache, each time) and prints the best MB/s and a
 * hash of the ids. Usage: bench_tokenizer FILE [REPEATS] [IDS_OUT] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../tokenizer/bpe.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE [REPEATS] [IDS_OUT]\n", argv[0]);
        return 1;
    }
    const char *assets = getenv("TRAIN_ASSETS") ? getenv("TRAIN_ASSETS") : "assets";
    Err e;
    Bpe *b;
    if (bpe_load_dir(&b, assets, &e)) {
        fprintf(stderr, "error: %s\n", e.msg);
        return 1;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    size_t n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = xmalloc(n);
    if (fread(text, 1, n, f) != n) return 1;
    fclose(f);
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    double best = 1e9;
    TokVec v = {0};
    for (int r = 0; r < reps; r++) {
        BpeCtx *c = bpe_ctx_new(b);
        v.n = 0;
        double t = now();
        bpe_encode(c, text, n, 0, &v);
        t = now() - t;
        if (t < best) best = t;
        bpe_ctx_free(c);
    }
    if (argc > 3) {
        FILE *o = fopen(argv[3], "w");
        for (size_t i = 0; i < v.n; i++) fprintf(o, i ? " %d" : "%d", v.ids[i]);
        fprintf(o, "\n");
        fclose(o);
    }
    printf("ours: %.2f MB in %.1f ms, %.1f MB/s, %zu tokens\n", (double)n / 1e6, best * 1e3,
           (double)n / 1e6 / best, v.n);
    return 0;
}
