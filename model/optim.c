#include "optim.h"

#include <math.h>
#include <stdlib.h>

#define CHUNK 65536

void adamw_update(float *params, float *grads, float *m, float *v, size_t n, const AdamW *o,
                  float weight_decay, int t, float grad_scale, int zero_grads) {
    const float b1 = o->beta1, b2 = o->beta2, lr = o->lr;
    const float bc1 = 1.0f - powf(b1, (float)t), bc2 = 1.0f - powf(b2, (float)t);
    const float step = lr / bc1, bc2_sqrt = sqrtf(bc2), decay = 1.0f - lr * weight_decay;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = grads[i] * grad_scale;
        if (zero_grads) grads[i] = 0.0f;
        float p = params[i] * decay;
        float mi = b1 * m[i] + (1.0f - b1) * g;
        float vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        params[i] = p - step * mi / (sqrtf(vi) / bc2_sqrt + o->eps);
    }
}

/* Chunk sums in parallel, then added in chunk order: the same bits for any
 * thread count. Called from one thread at a time. */
float grad_norm(const float *g, size_t n) {
    static double *part;
    static size_t part_cap;
    size_t chunks = (n + CHUNK - 1) / CHUNK;
    if (chunks > part_cap) {
        free(part);
        part = malloc(chunks * sizeof *part);
        if (!part) abort();
        part_cap = chunks;
    }
    #pragma omp parallel for schedule(static)
    for (size_t c = 0; c < chunks; c++) {
        size_t end = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
        /* 8 running sums, one per lane, so the loop vectorises without
         * reordering any sum; then added in a fixed order */
        double lane[8] = {0};
        size_t i = c * CHUNK;
        for (; i + 8 <= end; i += 8)
            for (int j = 0; j < 8; j++) lane[j] += (double)g[i + j] * g[i + j];
        double s = 0.0;
        for (; i < end; i++) s += (double)g[i] * g[i];
        for (int j = 0; j < 8; j++) s += lane[j];
        part[c] = s;
    }
    double total = 0.0;
    for (size_t c = 0; c < chunks; c++) total += part[c];
    return (float)sqrt(total);
}

void scale_grads(float *g, size_t n, float s) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) g[i] *= s;
}

float lr_at(int step, int max_steps, int warmup, float lr, float min_lr, Schedule s) {
    if (step < warmup) return lr * (float)(step + 1) / (float)warmup;
    if (s == SCHED_CONSTANT || max_steps <= warmup) return lr;
    float ratio = (float)(step - warmup) / (float)(max_steps - warmup);
    if (ratio > 1.0f) ratio = 1.0f;
    if (s == SCHED_LINEAR) return lr - (lr - min_lr) * ratio;
    return min_lr + 0.5f * (1.0f + cosf(3.14159265358979f * ratio)) * (lr - min_lr);
}
