#include "ops.h"

#include <math.h>
#include <string.h>

#include "../common/err.h"
#include "../common/rng.h"
#include "../common/vmath.h"

void encoder_forward(float *out, const int *inp, const float *wte, const float *wpe, int B, int T, int C) {
    #pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        float *o = out + (size_t)bt * C;
        const float *e = wte + (size_t)inp[bt] * C, *p = wpe + (size_t)(bt % T) * C;
        for (int c = 0; c < C; c++) o[c] = e[c] + p[c];
    }
}

/* Threads own slices of channels and visit the tokens in order, so repeated
 * tokens accumulate in a fixed order without atomics. */
void encoder_backward(float *dwte, float *dwpe, const float *dout, const int *inp, int B, int T, int C) {
    /* forward: out[b,t,:] = wte[inp[b,t],:] + wpe[t,:] */
    #pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < C; c0 += 16) {
        int c1 = c0 + 16 < C ? c0 + 16 : C;
        for (int bt = 0; bt < B * T; bt++) {
            const float *d = dout + (size_t)bt * C;
            float *we = dwte + (size_t)inp[bt] * C, *wp = dwpe + (size_t)(bt % T) * C;
            for (int c = c0; c < c1; c++) {
                we[c] += d[c];
                wp[c] += d[c];
            }
        }
    }
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C) {
    const float eps = 1e-5f;
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float m = sum16(x, C) / (float)C, v = sumsq_dev16(x, m, C) / (float)C;
        float s = 1.0f / sqrtf(v + eps);
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * weight[c] + bias[c];
        mean[n] = m;
        rstd[n] = s;
    }
}

#define LN_ROWS 32 /* rows whose parameter gradients one partial sums */

/* Rows run in parallel, in chunks of LN_ROWS. Each chunk sums its rows'
 * parameter gradients into a partial of its own (vectors along the
 * channels, in L1); the partials are then added to dweight and dbias in
 * chunk order. The chunks do not depend on the thread count: nor do the
 * bits. (Threads that owned slices of channels and walked every row for
 * each took half the time of the whole backward: a 64-byte piece of each
 * row per slice, and sums kept in memory.) */
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, const float *mean, const float *rstd, int N, int C) {
    /* forward: out = norm * weight + bias, norm = (x - mean) * rstd */
    static float *scratch;
    static size_t cap;
    const int chunks = (N + LN_ROWS - 1) / LN_ROWS;
    float *part = scratch_floats(&scratch, &cap, (size_t)chunks * 2 * C); /* [chunk][dweight, dbias][C] */
    #pragma omp parallel for schedule(static)
    for (int ch = 0; ch < chunks; ch++) {
        float *pw = part + (size_t)ch * 2 * C, *pb = pw + C;
        memset(pw, 0, 2 * (size_t)C * sizeof *pw);
        for (int n = ch * LN_ROWS; n < N && n < (ch + 1) * LN_ROWS; n++) {
            const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
            float m = mean[n], s = rstd[n];
            /* the two sums in VN lanes each, added in order (vmath.h's dot16) */
            vfn a = {0}, b = {0};
            int c0 = 0;
            for (; c0 + VN <= C; c0 += VN) {
                vfn dnorm = vfn_load(weight + c0) * vfn_load(d + c0);
                a += dnorm;
                b += dnorm * ((vfn_load(x + c0) - m) * s);
            }
            float dnorm_mean = vfn_lanes_sum(a), dnorm_norm_mean = vfn_lanes_sum(b);
            for (int c = c0; c < C; c++) {
                float dnorm = weight[c] * d[c];
                dnorm_mean += dnorm;
                dnorm_norm_mean += dnorm * ((x[c] - m) * s);
            }
            dnorm_mean /= (float)C;
            dnorm_norm_mean /= (float)C;
            float *di = dinp + (size_t)n * C;
            int c = 0;
            for (; c + VN <= C; c += VN) { /* written out: GCC leaves the loop scalar (aliasing) */
                vfn dc = vfn_load(d + c), norm = (vfn_load(x + c) - m) * s;
                vfn_store(di + c, vfn_load(di + c) +
                                      (vfn_load(weight + c) * dc - dnorm_mean - norm * dnorm_norm_mean) * s);
                vfn_store(pw + c, vfn_load(pw + c) + norm * dc);
                vfn_store(pb + c, vfn_load(pb + c) + dc);
            }
            for (; c < C; c++) {
                float norm = (x[c] - m) * s;
                di[c] += (weight[c] * d[c] - dnorm_mean - norm * dnorm_norm_mean) * s;
                pw[c] += norm * d[c];
                pb[c] += d[c];
            }
        }
    }
    #pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < C; c0 += 64) {
        int c1 = c0 + 64 < C ? c0 + 64 : C;
        for (int ch = 0; ch < chunks; ch++) {
            const float *pw = part + (size_t)ch * 2 * C, *pb = pw + C;
            for (int c = c0; c < c1; c++) {
                dweight[c] += pw[c];
                dbias[c] += pb[c];
            }
        }
    }
}

#define GELU_SCALE 0.7978845608028654f /* sqrt(2 / pi) */

/* gelu(x) = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), computed
 * as x sigmoid(2u) = x / (1 + e), e = exp(-2u): the same function (tanh(u)
 * = 2 sigmoid(2u) - 1), one exp and one division, and no cancellation
 * anywhere (tanh needs a series near 0, where 1 - exp(-2|u|) would
 * cancel). exp's argument stops at 80: below x = -10 the result is 0 to
 * float precision either way, and e s s below stays out of subnormals. */
static inline vfn gelu_e(vfn x) {
    vfn a = -2.0f * GELU_SCALE * (x + 0.044715f * x * x * x);
    return vfn_exp(vfn_select(a > vfn_splat(80.0f), vfn_splat(80.0f), a));
}

static inline vfn gelu_v(vfn x) { return x / (1.0f + gelu_e(x)); }

/* d/dx x s(2u) = s + x 2u' s (1 - s), s = 1 / (1 + e), 1 - s = e s */
static inline vfn gelu_grad_v(vfn x) {
    vfn e = gelu_e(x), s = 1.0f / (1.0f + e);
    return s + 2.0f * GELU_SCALE * x * (1.0f + 3.0f * 0.044715f * x * x) * (e * s) * s;
}

/* VN values (a register) at a time; a tail of n % VN goes through
 * zero-padded vectors (whole vectors are loaded directly: a copy per vector
 * had cost a memcpy call each). In the calling thread. */
static void gelu_span(float *out, const float *inp, int n) {
    int i = 0;
    for (; i + VN <= n; i += VN) vfn_store(out + i, gelu_v(vfn_load(inp + i)));
    if (i == n) return;
    float x[VN] = {0}, y[VN];
    for (int k = 0; k < n - i; k++) x[k] = inp[i + k];
    vfn_store(y, gelu_v(vfn_load(x)));
    for (int k = 0; k < n - i; k++) out[i + k] = y[k];
}

static void gelu_grad_span(float *dinp, const float *inp, const float *dout, int n) {
    int i = 0;
    for (; i + VN <= n; i += VN) vfn_store(dinp + i, gelu_grad_v(vfn_load(inp + i)) * vfn_load(dout + i));
    if (i == n) return;
    float x[VN] = {0}, d[VN] = {0}, g[VN];
    for (int k = 0; k < n - i; k++) {
        x[k] = inp[i + k];
        d[k] = dout[i + k];
    }
    vfn_store(g, gelu_grad_v(vfn_load(x)) * vfn_load(d));
    for (int k = 0; k < n - i; k++) dinp[i + k] = g[k];
}

#define GELU_CHUNK 4096 /* values per piece of the parallel loops (a multiple of VN) */

void gelu_forward(float *out, const float *inp, int n) {
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i += GELU_CHUNK) gelu_span(out + i, inp + i, n - i < GELU_CHUNK ? n - i : GELU_CHUNK);
}

void gelu_backward(float *dinp, const float *inp, const float *dout, int n) {
    /* forward: out = gelu(x) */
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i += GELU_CHUNK)
        gelu_grad_span(dinp + i, inp + i, dout + i, n - i < GELU_CHUNK ? n - i : GELU_CHUNK);
}

void gelu_forward_block(void *out, float *C, int ldc, int i0, int i1, int j0, int j1) {
    for (int i = i0; i < i1; i++) {
        size_t at = (size_t)i * ldc + j0;
        gelu_span((float *)out + at, C + at, j1 - j0);
    }
}

void gelu_backward_block(void *inp, float *C, int ldc, int i0, int i1, int j0, int j1) {
    for (int i = i0; i < i1; i++) {
        size_t at = (size_t)i * ldc + j0;
        gelu_grad_span(C + at, (const float *)inp + at, C + at, j1 - j0);
    }
}

void residual_forward(float *out, const float *a, const float *b, int n) {
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void residual_block(void *ctx, float *C, int ldc, int i0, int i1, int j0, int j1) {
    const ResidualAdd *r = ctx;
    for (int i = i0; i < i1; i++) {
        size_t at = (size_t)i * ldc;
        for (int j = j0; j < j1; j++) r->out[at + j] = r->res[at + j] + C[at + j];
    }
}

/* lowbias32 (Chris Wellons' integer hash): a bijection of 32-bit words
 * whose output bits each depend on every input bit */
static inline uint32_t mix32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    return x ^ (x >> 16);
}

void dropout_apply(float *out, const float *in, size_t n, float p, uint64_t key, int site) {
    uint64_t x = key ^ ((uint64_t)(site + 1) * 0xd1342543de82ef95ULL);
    uint64_t k = rng_splitmix(&x);
    const uint32_t k0 = (uint32_t)k, k1 = (uint32_t)(k >> 32);
    const uint32_t thr = (uint32_t)((double)p * 4294967296.0);
    const float scale = 1.0f / (1.0f - p);
    for (size_t base = 0; base < n; base += (size_t)1 << 32) { /* one block unless n >= 2^32 */
        const uint32_t kk = k0 ^ mix32((uint32_t)(base >> 32) + k1);
        const int64_t len = (int64_t)(n - base < ((size_t)1 << 32) ? n - base : (size_t)1 << 32);
        const float *a = in + base;
        float *o = out + base;
        #pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < len; i++) {
            uint32_t h = mix32(mix32((uint32_t)i ^ kk) + k1);
            o[i] = h >= thr ? a[i] * scale : 0.0f;
        }
    }
}

/* sum over v of exp(l[v] - mx), in VN fixed lanes added in a fixed order;
 * with out (which may be l), each exp(l[v] - mx) is stored there too */
static inline float sum_exp(const float *l, float *out, int V, float mx, const float *next) {
    vfn acc = {0};
    int v = 0;
    for (; v + VN <= V; v += VN) {
        if (next && v % 16 == 0) __builtin_prefetch(next + v, 0, 3); /* see ce_prefetch */
        vfn e = vfn_exp(vfn_load(l + v) - mx);
        if (out) vfn_store(out + v, e);
        acc += e;
    }
    float tail[VN];
    for (int k = 0; k < VN; k++) tail[k] = v + k < V ? l[v + k] - mx : -INFINITY;
    vfn e = vfn_exp(vfn_load(tail));
    acc += e;
    vfn_store(tail, e);
    for (int k = 0; out && v + k < V; k++) out[v + k] = tail[k];
    return vfn_lanes_sum(acc);
}

/* A row of logits (200 KB at GPT-2's vocabulary) comes from memory, and
 * its maximum, the first pass over it, waits on that; the exponentials
 * are compute. So while a row's exponentials are computed, the next row
 * is requested (a line per 16 floats): its own first pass then finds it in
 * cache. The cross-entropy and its gradient over 2048 x 50257 logits on x2:
 * 25.8 -> 20.9 ms (prefetcht0; into L2 only, 22.6 ms), the same bits. The
 * next row of the array: a thread's last row fetches a row of the next
 * thread's, which is harmless; NULL after the last. */
static inline const float *ce_prefetch(const float *logits, int n, int N, int ld) {
    return n + 1 < N ? logits + (size_t)(n + 1) * ld : NULL;
}

/* one row: its log-sum-exp into *lse, and the loss */
static inline float ce_row(const float *l, int V, int target, float *lse, const float *next) {
    float mx = row_max(l, V);
    *lse = mx + logf(sum_exp(l, NULL, V, mx, next));
    return *lse - l[target];
}

/* One row's loss and, in place of its logits, their gradient
 * (softmax(l) - onehot(target)) x dloss: exp(l - max) is stored over l as it
 * is summed (ce_row's sum, so lse is the same bits), then scaled by
 * dloss / sum: one exp per logit. */
static float ce_row_loss_grad(float *l, int V, int target, float *lse, float dloss, const float *next) {
    float mx = row_max(l, V), target_logit = l[target], sum = sum_exp(l, l, V, mx, next);
    *lse = mx + logf(sum);
    const float scale = dloss / sum;
    int v = 0;
    for (; v + VN <= V; v += VN) vfn_store(l + v, vfn_load(l + v) * scale);
    for (; v < V; v++) l[v] *= scale;
    l[target] -= dloss;
    return *lse - target_logit;
}

static float mean_loss(const float *losses, int N) {
    double total = 0.0;
    for (int n = 0; n < N; n++) total += losses[n];
    return (float)(total / N);
}

float crossentropy_forward(float *losses, float *lse, const float *logits, const int *targets, int N, int V,
                           int ld) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        losses[n] = ce_row(logits + (size_t)n * ld, V, targets[n], lse + n, ce_prefetch(logits, n, N, ld));
    return mean_loss(losses, N);
}

void crossentropy_backward(float *dlogits, const float *logits, const int *targets, float dloss, int N, int V,
                           int ld) {
    /* forward: loss = lse - logits[target], lse = log sum exp(logits); each
     * row's maximum and sum found again, for crossentropy_forward_backward's
     * bits */
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *d = dlogits + (size_t)n * ld, row_lse;
        if (d != logits + (size_t)n * ld) memcpy(d, logits + (size_t)n * ld, (size_t)V * sizeof *d);
        /* the next row read first, copied from or (in place) the same */
        ce_row_loss_grad(d, V, targets[n], &row_lse, dloss, ce_prefetch(logits, n, N, ld));
    }
}

float crossentropy_forward_backward(float *losses, float *lse, float *logits, const int *targets, float dloss,
                                    int N, int V, int ld) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) { /* the row still in cache for its gradient */
        losses[n] = ce_row_loss_grad(logits + (size_t)n * ld, V, targets[n], lse + n, dloss,
                                     ce_prefetch(logits, n, N, ld));
    }
    return mean_loss(losses, N);
}
