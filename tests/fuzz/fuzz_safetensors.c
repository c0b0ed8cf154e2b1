/* safetensors headers: open, then read every tensor the header describes
 * (up to 1 MB each): the reader must check offsets and sizes itself. */
#include "../../model/safetensors.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    StFile f;
    Err e;
    if (st_open(&f, fuzz_file("x.safetensors", data, n), &e)) return 0;
    for (int i = 0; i < f.n; i++) {
        size_t bytes = (size_t)(f.t[i].end - f.t[i].begin), size = st_dtype_size(f.t[i].dtype);
        if (bytes > (1u << 20) || size == 0) continue;
        void *buf = malloc(bytes + 1);
        st_read(&f, &f.t[i], f.t[i].dtype, bytes / size, buf, &e);
        free(buf);
    }
    st_close(&f);
    return 0;
}
