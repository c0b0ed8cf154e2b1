/* LayerNorm over one head's vector (n = head size), as the polynomial kinds
 * apply to q and k: y = (x - mean) * rstd * gain + bias, eps 1e-5. */
#ifndef ATTENTION_LNORM_H
#define ATTENTION_LNORM_H

#include <math.h>

#include "../common/vmath.h"

/* y = LN(x) with (gain, bias), and y2 with (gain2, bias2) if y2 is given:
 * two LayerNorms of one vector share its mean and rstd */
static inline void ln_row2(float *y, float *y2, const float *x, const float *gain, const float *bias,
                           const float *gain2, const float *bias2, int n, float *mean_out, float *rstd_out) {
    float m = sum16(x, n) / (float)n;
    for (int i = 0; i < n; i++) y[i] = (x[i] - m) * (x[i] - m); /* y as scratch */
    float s = 1.0f / sqrtf(sum16(y, n) / (float)n + 1e-5f);
    for (int i = 0; i < n; i++) y[i] = (x[i] - m) * s * gain[i] + bias[i];
    if (y2)
        for (int i = 0; i < n; i++) y2[i] = (x[i] - m) * s * gain2[i] + bias2[i];
    if (mean_out) *mean_out = m;
    if (rstd_out) *rstd_out = s;
}

static inline void ln_row(float *y, const float *x, const float *gain, const float *bias, int n, float *mean_out,
                          float *rstd_out) {
    ln_row2(y, NULL, x, gain, bias, NULL, NULL, n, mean_out, rstd_out);
}

/* dx += d/dx; dgain, dbias += their gradients. */
static inline void ln_row_backward(float *dx, float *dgain, float *dbias, const float *dy, const float *x,
                                   const float *gain, float mean, float rstd, int n) {
    /* forward: y = xhat * gain + bias, xhat = (x - mean) * rstd */
    float a = 0.0f, b = 0.0f;
    for (int i = 0; i < n; i++) {
        float xhat = (x[i] - mean) * rstd, d = dy[i] * gain[i];
        a += d;
        b += d * xhat;
        dgain[i] += dy[i] * xhat;
        dbias[i] += dy[i];
    }
    a /= (float)n;
    b /= (float)n;
    for (int i = 0; i < n; i++) dx[i] += (dy[i] * gain[i] - a - (x[i] - mean) * rstd * b) * rstd;
}

/* x^p for a small non-negative integer p */
static inline float powi(float x, int p) {
    float r = 1.0f;
    for (; p > 0; p >>= 1, x *= x)
        if (p & 1) r *= x;
    return r;
}

#endif
