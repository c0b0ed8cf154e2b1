/* Config files and key=value overrides: any bytes give a config or an error. */
#include "../../model/config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    Config c;
    Err e;
    config_defaults(&c);
    const char *path = fuzz_file("x.cfg", data, n);
    if (config_load(&c, path, &e) == 0) config_validate(&c, 1, &e);
    char arg[512];
    size_t k = n < sizeof arg - 1 ? n : sizeof arg - 1;
    memcpy(arg, data, k);
    arg[k] = 0;
    config_set_arg(&c, arg, &e);
    return 0;
}
