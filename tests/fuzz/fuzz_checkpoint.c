/* A checkpoint directory's config.json and state.json (the first byte picks
 * which one the rest becomes), and a model.safetensors next to them. A
 * state.json checks itself with a CRC-32 that random bytes almost never
 * match, so for half the inputs the harness writes the right checksum into
 * the object it parsed: the fuzzer then reaches the checks behind it. */
#include <jansson.h>
#include "../../model/checkpoint.h"
#include "fuzz.h"

/* state.json as the input, or, when it parses to an object, that object with
 * a correct "checksum" (the CRC-32 of its compact form without one). */
static void state_file(const uint8_t *data, size_t n, int fix) {
    json_t *o = fix ? json_loadb((const char *)data, n, 0, NULL) : NULL;
    if (!json_is_object(o)) {
        json_decref(o);
        fuzz_file("state.json", data, n);
        return;
    }
    char hex[16];
    checkpoint_state_checksum(o, hex);
    json_object_set_new(o, "checksum", json_string(hex));
    char *text = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    fuzz_file("state.json", (const uint8_t *)text, text ? strlen(text) : 0);
    free(text);
    json_decref(o);
}

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
        state_file(data + 1, n - 1, data[0] & 2);
        checkpoint_read_state(dir, &st, &saved, &e);
    }
    char out[512];
    checkpoint_resolve(dir, out, sizeof out, &e);
    return 0;
}
