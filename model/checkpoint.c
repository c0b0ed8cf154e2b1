#include "checkpoint.h"

#include <stdlib.h>
#include <string.h>

void weights_describe(const GPT2 *m, const char *prefix, StTensor *t) {
    for (int i = 0; i < gpt2_n_tensors(m); i++) {
        TensorInfo ti;
        gpt2_tensor_info(m, i, &ti);
        memset(&t[i], 0, sizeof t[i]);
        snprintf(t[i].name, sizeof t[i].name, "%s%s", prefix, ti.name);
        strcpy(t[i].dtype, "F32");
        t[i].ndim = ti.ndim;
        t[i].shape[0] = ti.shape[0];
        t[i].shape[1] = ti.shape[1];
    }
}

/* dst[c][r] = src[r][c] for an R x C source */
static void transpose(float *dst, const float *src, int R, int C) {
    for (int r0 = 0; r0 < R; r0 += 32)
        for (int c = 0; c < C; c++)
            for (int r = r0; r < R && r < r0 + 32; r++) dst[(size_t)c * R + r] = src[(size_t)r * C + c];
}

static float *scratch_for(const GPT2 *m) {
    size_t most = 0;
    for (int i = 0; i < gpt2_n_tensors(m); i++) {
        TensorInfo ti;
        gpt2_tensor_info(m, i, &ti);
        size_t n = (size_t)ti.shape[0] * (size_t)(ti.ndim == 2 ? ti.shape[1] : 1);
        if (ti.transposed && n > most) most = n;
    }
    return malloc((most ? most : 1) * sizeof(float));
}

int weights_write(const GPT2 *m, StWriter *w, const float *base, Err *e) {
    float *tmp = scratch_for(m);
    if (!tmp) return err_set(e, "%s: out of memory", w->path);
    int rc = 0;
    for (int i = 0; rc == 0 && i < gpt2_n_tensors(m); i++) {
        TensorInfo ti;
        gpt2_tensor_info(m, i, &ti);
        size_t n = (size_t)ti.shape[0] * (size_t)(ti.ndim == 2 ? ti.shape[1] : 1);
        const float *src = base + ti.offset;
        if (ti.transposed) { /* ours [out, in] -> HF [in, out] */
            transpose(tmp, src, ti.shape[1], ti.shape[0]);
            src = tmp;
        }
        rc = st_writer_data(w, src, n * sizeof(float), e);
    }
    free(tmp);
    return rc;
}

int weights_read(const GPT2 *m, const StFile *f, const char *prefix, float *base, Err *e) {
    float *tmp = scratch_for(m);
    if (!tmp) return err_set(e, "%s: out of memory", f->path);
    int rc = 0;
    for (int i = 0; rc == 0 && i < gpt2_n_tensors(m); i++) {
        TensorInfo ti;
        char name[256];
        gpt2_tensor_info(m, i, &ti);
        snprintf(name, sizeof name, "%s%s", prefix, ti.name);
        const StTensor *t = st_find(f, name);
        if (!t) {
            rc = err_set(e, "%s: missing tensor '%s'", f->path, name);
            break;
        }
        int same = t->ndim == ti.ndim && t->shape[0] == ti.shape[0] && (ti.ndim == 1 || t->shape[1] == ti.shape[1]);
        if (!same) {
            char got[64] = "", want[64];
            for (int k = 0; k < t->ndim && k < 4; k++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", k ? ", " : "", (long long)t->shape[k]);
            if (ti.ndim == 1) snprintf(want, sizeof want, "%d", ti.shape[0]);
            else snprintf(want, sizeof want, "%d, %d", ti.shape[0], ti.shape[1]);
            rc = err_set(e, "%s: tensor '%s' has shape [%s], the model expects [%s] (a checkpoint of "
                            "another model shape?)", f->path, name, got, want);
            break;
        }
        size_t n = (size_t)st_numel(t);
        float *dst = ti.transposed ? tmp : base + ti.offset;
        rc = st_read(f, t, "F32", n, dst, e);
        if (rc == 0 && ti.transposed) transpose(base + ti.offset, tmp, ti.shape[0], ti.shape[1]);
    }
    free(tmp);
    return rc;
}
