/* A checkpoint directory's config.json and state.json (the first byte picks
 * which one the rest becomes), and a model.safetensors next to them. */
#include "../../model/checkpoint.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    if (n < 1) return 0;
    const char *dir = fuzz_dir();
    Config c, saved;
    TrainState st;
    Err e;
    config_defaults(&c);
    fuzz_file("model.safetensors", NULL, 0);
    if (data[0] & 1) {
        fuzz_file("config.json", data + 1, n - 1);
        checkpoint_read_config(dir, &c, &e);
    } else {
        fuzz_file("state.json", data + 1, n - 1);
        checkpoint_read_state(dir, &st, &saved, &e);
    }
    char out[512];
    checkpoint_resolve(dir, out, sizeof out, &e);
    return 0;
}
