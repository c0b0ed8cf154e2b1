/* Token shards: the header check, then the loader over what it accepted
 * (out-of-vocabulary tokens must be errors, not reads out of bounds). */
#include "../../data/loader.h"
#include "../../data/shard.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    char pattern[256];
    const char *path = fuzz_file("train_000000.bin", data, n);
    int64_t ntok;
    Err e;
    if (shard_open(path, &ntok, &e)) return 0;
    snprintf(pattern, sizeof pattern, "%s/train_*.bin", fuzz_dir());
    Loader l;
    if (loader_open(&l, "train_data", pattern, 1, 4, 1, 7, 50257, &e)) return 0;
    int x[4], y[4];
    for (int i = 0; i < 8; i++)
        if (loader_next(&l, x, y, &e)) break;
    loader_close(&l);
    return 0;
}
