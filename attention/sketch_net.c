#include "sketch_net.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../model/matmul.h"
#include "lnorm.h"

static int level_in(int l, int hs, int r) { return l ? r : hs; }

/* Parameters of tower t, level l: ln gain, ln bias [in], w1 [in x 8r], w2 [8r x r] */
static size_t level_size(int in, int r) { return 2 * (size_t)in + (size_t)in * 8 * r + (size_t)8 * r * r; }

static size_t level_off(int t, int l, int hs, int r) {
    size_t per_tower = level_size(hs, r) + level_size(r, r);
    return (size_t)t * per_tower + (l ? level_size(hs, r) : 0);
}

size_t sketch_net_n_params(int hs, int r) { return 2 * (level_size(hs, r) + level_size(r, r)); }

int sketch_net_tensors(int hs, int r, size_t base, AttnTensor *out) {
    int n = 0;
    for (int t = 0; t < 2; t++)
        for (int l = 0; l < 2; l++) {
            int in = level_in(l, hs, r);
            size_t o = base + level_off(t, l, hs, r);
            const char *names[4] = {"ln.weight", "ln.bias", "w1", "w2"};
            size_t offs[4] = {o, o + in, o + 2 * (size_t)in, o + 2 * (size_t)in + (size_t)in * 8 * r};
            int rows[4] = {in, in, in, 8 * r}, cols[4] = {0, 0, 8 * r, r};
            for (int k = 0; k < 4; k++) {
                out[n] = (AttnTensor){"", offs[k], rows[k], cols[k], 1, cols[k] != 0, NULL};
                snprintf(out[n].name, sizeof out[n].name, "sketch.t%d.%d.%s", t + 1, l, names[k]);
                n++;
            }
        }
    return n;
}

void sketch_net_init(float *params, int hs, int r, Rng *rng) {
    for (int t = 0; t < 2; t++)
        for (int l = 0; l < 2; l++) {
            int in = level_in(l, hs, r);
            float *p = params + level_off(t, l, hs, r);
            for (int i = 0; i < in; i++) {
                p[i] = 1.0f;
                p[in + i] = 0.0f;
            }
            float *w = p + 2 * in; /* N(0, 1/fan_in), as flax's default (LeCun) */
            size_t n1 = (size_t)in * 8 * r, n2 = (size_t)8 * r * r;
            for (size_t i = 0; i < n1 + n2; i++) {
                float u1 = rng_float(rng), u2 = rng_float(rng);
                float z = sqrtf(-2.0f * logf(1.0f - u1)) * cosf(6.2831853f * u2);
                w[i] = z / sqrtf((float)(i < n1 ? in : 8 * r));
            }
        }
}

/* Per tower and level, work holds: LN out [T x in], LN mean, rstd [T],
 * pre-GELU [T x 8r], level out [T x r]. */
static size_t level_work(int T, int in, int r) { return (size_t)T * (in + 2 + 8 * r + r); }

size_t sketch_net_work(int T, int hs, int r) { return 2 * (level_work(T, hs, r) + level_work(T, r, r)); }

size_t sketch_net_tmp(int T, int hs, int r) { return (size_t)T * (2 * 8 * r + 2 * r + (hs > r ? hs : r)); }

static float *level_ptr(float *work, int t, int l, int T, int hs, int r) {
    size_t per_tower = level_work(T, hs, r) + level_work(T, r, r);
    return work + (size_t)t * per_tower + (l ? level_work(T, hs, r) : 0);
}

/* GPT-2's GELU, 0.5 x (1 + tanh u) with u = sqrt(2/pi) (x + 0.044715 x^3),
 * written as x sigmoid(2u): one exp and one division, half the work of the
 * model's tanh form (the same function in other roundings); with grad, its
 * derivative s + 2 x s (1 - s) u' too (s = sigmoid(2u)). grad may be x. */
static inline void gelu_sig_v(float *out, float *grad, const float *x) {
    const float k = 0.7978845608028654f; /* sqrt(2 / pi) */
    vfn v = vfn_load(x), u = k * (v + 0.044715f * v * v * v);
    vfn s = 1.0f / (1.0f + vfn_exp(-2.0f * u));
    vfn_store(out, v * s);
    if (grad) vfn_store(grad, s + 2.0f * v * s * (1.0f - s) * k * (1.0f + 3.0f * 0.044715f * v * v));
}

static void gelu_sig(float *out, float *grad, const float *x, size_t n) {
    size_t i = 0;
    for (; i + VN <= n; i += VN) gelu_sig_v(out + i, grad ? grad + i : NULL, x + i);
    if (i == n) return;
    float xb[VN] = {0}, ob[VN], gb[VN];
    memcpy(xb, x + i, (n - i) * sizeof *xb);
    gelu_sig_v(ob, grad ? gb : NULL, xb);
    memcpy(out + i, ob, (n - i) * sizeof *ob);
    if (grad) memcpy(grad + i, gb, (n - i) * sizeof *gb);
}

/* tanh(y1 y2 / sqrt r) of n values, a vector at a time (a tail through a
 * padded vector): the towers' combination, in the forward and again in
 * backward */
static void tanh_of_product(float *out, const float *y1, const float *y2, size_t n, float sr) {
    size_t i = 0;
    for (; i + VN <= n; i += VN) vfn_store(out + i, vfn_tanh(vfn_load(y1 + i) * vfn_load(y2 + i) / sr));
    for (; i < n; i++) out[i] = tanh_fast(y1[i] * y2[i] / sr);
}

void sketch_net_forward(float *F, const float *X, int T, int hs, int r, const float *params, float *work,
                        float *tmp) {
    const int h8 = 8 * r;
    const float *out[2];
    for (int t = 0; t < 2; t++) {
        const float *in = X;
        for (int l = 0; l < 2; l++) {
            int din = level_in(l, hs, r);
            const float *p = params + level_off(t, l, hs, r), *w1 = p + 2 * din, *w2 = w1 + (size_t)din * h8;
            float *L = level_ptr(work, t, l, T, hs, r), *mean = L + (size_t)T * din, *rstd = mean + T;
            float *H = rstd + T, *Y = H + (size_t)T * h8;
            for (int i = 0; i < T; i++)
                ln_row(L + (size_t)i * din, in + (size_t)i * din, p, p + din, din, mean + i, rstd + i);
            sgemm(T, h8, din, L, din, 0, w1, h8, 0, H, h8, 0);  /* H = LN(x) W1 */
            gelu_sig(tmp, NULL, H, (size_t)T * h8);
            sgemm(T, r, h8, tmp, h8, 0, w2, r, 0, Y, r, 0);     /* y = GELU(H) W2 */
            in = Y;
        }
        out[t] = in;
    }
    const float sr = sqrtf((float)r);
    tanh_of_product(F, out[0], out[1], (size_t)T * r, sr);
    for (size_t i = 0; i < (size_t)T * r; i++) F[i] *= sr;
}

void sketch_net_backward(float *dX, float *dparams, float *dF, const float *X, int T, int hs, int r,
                         const float *params, float *work, float *tmp) {
    /* forward: f = sqrt(r) tanh(z), z = y1 o y2 / sqrt(r), y_t = level 2 of tower t */
    const int h8 = 8 * r;
    const float sr = sqrtf((float)r);
    float *dY[2] = {tmp, tmp + (size_t)T * r};
    float *dG = dY[1] + (size_t)T * r, *dL = dG + (size_t)T * h8, *G = dL + (size_t)T * (hs > r ? hs : r);
    const float *y1 = level_ptr(work, 0, 1, T, hs, r) + (size_t)T * (r + 2 + h8);
    const float *y2 = level_ptr(work, 1, 1, T, hs, r) + (size_t)T * (r + 2 + h8);
    tanh_of_product(dY[0], y1, y2, (size_t)T * r, sr);
    for (size_t i = 0; i < (size_t)T * r; i++) {
        float th = dY[0][i], dz = dF[i] * sr * (1.0f - th * th);
        dY[0][i] = dz * y2[i] / sr;
        dY[1][i] = dz * y1[i] / sr;
    }
    for (int t = 0; t < 2; t++)
        for (int l = 1; l >= 0; l--) {
            /* forward: y = gelu(LN(x) W1) W2 */
            int din = level_in(l, hs, r);
            const float *p = params + level_off(t, l, hs, r), *w1 = p + 2 * din, *w2 = w1 + (size_t)din * h8;
            float *dp = dparams + level_off(t, l, hs, r), *dw1 = dp + 2 * din, *dw2 = dw1 + (size_t)din * h8;
            float *L = level_ptr(work, t, l, T, hs, r), *mean = L + (size_t)T * din, *rstd = mean + T, *H = rstd + T;
            const float *xin = l ? level_ptr(work, t, 0, T, hs, r) + (size_t)T * (hs + 2 + h8) : X;
            gelu_sig(G, H, H, (size_t)T * h8); /* G = GELU(H); H becomes GELU'(H), read once below */
            sgemm(h8, r, T, G, h8, 1, dY[t], r, 0, dw2, r, 1);       /* dW2 += G^T dY */
            sgemm(T, h8, r, dY[t], r, 0, w2, r, 1, dG, h8, 0);       /* dG = dY W2^T */
            for (size_t i = 0; i < (size_t)T * h8; i++) dG[i] *= H[i]; /* dH = GELU'(H) dG */
            sgemm(din, h8, T, L, din, 1, dG, h8, 0, dw1, h8, 1);    /* dW1 += L^T dH */
            sgemm(T, din, h8, dG, h8, 0, w1, h8, 1, dL, din, 0);    /* dL = dH W1^T */
            float *dxin = l ? dY[t] : dX; /* level 1's input gradient is level 0's output gradient */
            if (l) memset(dxin, 0, (size_t)T * r * sizeof *dxin);
            for (int i = 0; i < T; i++)
                ln_row_backward(dxin + (size_t)i * din, dp, dp + din, dL + (size_t)i * din, xin + (size_t)i * din, p,
                                mean[i], rstd[i], din);
        }
}
