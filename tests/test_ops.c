/* Finite-difference checks of every op's backward on tiny shapes, the SGEMM
 * against a double-precision reference for every transpose and edge shape,
 * and softmax attention against a dense masked reference, with causality.
 *
 * Each check projects the op's output on a fixed random R, L = sum(out * R)
 * (in double), runs backward with dout = R, and compares a sample of input
 * coordinates with a central difference, Richardson-extrapolated
 * ((4 D(h/2) - D(h)) / 3) so that the truncation error is O(h^4). */
#include <math.h>
#include <string.h>

#include "../attention/attention.h"
#include "../common/rng.h"
#include "../common/vmath.h"
#include "../model/matmul.h"
#include "../model/ops.h"
#include "test.h"

static Rng rng;

/* Buffers made by randn/zeros/owned, freed after each test. */
static void *owned_ptrs[256];
static int n_owned;

static void *owned(void *p) {
    if (n_owned < 256) owned_ptrs[n_owned++] = p;
    return p;
}

static void release(void) {
    while (n_owned) free(owned_ptrs[--n_owned]);
}

static float *randn(size_t n, float scale) {
    float *x = owned(malloc(n * sizeof *x));
    for (size_t i = 0; i < n; i++) {
        float u1 = rng_float(&rng), u2 = rng_float(&rng);
        x[i] = scale * sqrtf(-2.0f * logf(1.0f - u1)) * cosf(6.2831853f * u2);
    }
    return x;
}

static float *zeros(size_t n) { return owned(calloc(n, sizeof(float))); }

typedef double (*LossFn)(void *ctx);

/* Checks grad (the analytic gradient of loss wrt x) at 40 coordinates (20
 * evenly spread, 20 random):
 * |fd - analytic| <= tol (|fd| + |analytic|) + atol, atol covering the float
 * rounding of the forward outputs (about 1e-7 |out| / h). */
static int fd_check(const char *what, LossFn loss, void *ctx, float *x, const float *grad, size_t n, float h,
                    double tol, double atol) {
    int bad = 0;
    for (int s = 0; s < 40 && s < (int)n; s++) {
        size_t i = n <= 40 ? (size_t)s : s < 20 ? (size_t)s * n / 20 : rng_below(&rng, n);
        float orig = x[i];
        double d[2];
        for (int k = 0; k < 2; k++) {
            float hk = k ? h / 2 : h;
            x[i] = orig + hk;
            double lp = loss(ctx);
            x[i] = orig - hk;
            double lm = loss(ctx);
            d[k] = (lp - lm) / (2.0 * (double)hk);
        }
        x[i] = orig;
        double fd = (4 * d[1] - d[0]) / 3, an = grad[i];
        if (fabs(fd - an) > tol * (fabs(an) + fabs(fd)) + atol) {
            if (bad++ < 3) printf("  %s[%zu]: analytic %.7g, finite difference %.7g\n", what, i, an, fd);
        }
    }
    return bad;
}

static double dot(const float *a, const float *r, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * r[i];
    return s;
}

/* ------------------------------------------------------------------------ */

static void test_sgemm_against_reference(void) {
    int shapes[][3] = {{1, 1, 1}, {7, 33, 5}, {8, 32, 256}, {9, 31, 257}, {130, 70, 300}, {64, 600, 40}, {3, 1030, 17}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int t = 0; t < 8; t++) {
            int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], ta = t & 1, tb = (t >> 1) & 1, acc = t >> 2;
            float *A = randn((size_t)M * K, 1), *B = randn((size_t)K * N, 1), *C = randn((size_t)M * N, 1);
            float *R = owned(malloc((size_t)M * N * sizeof *R));
            memcpy(R, C, (size_t)M * N * sizeof *R);
            sgemm(M, N, K, A, ta ? M : K, ta, B, tb ? K : N, tb, C, N, acc);
            sgemm_reference(M, N, K, A, ta ? M : K, ta, B, tb ? K : N, tb, R, N, acc);
            double err = 0;
            for (size_t i = 0; i < (size_t)M * N; i++) err = fmax(err, fabs(C[i] - R[i]));
            CHECK(err < 1e-4 * sqrt(K), "M%d N%d K%d transA %d transB %d acc %d: max error %g", M, N, K, ta, tb, acc, err);
            release();
        }
}

typedef struct {
    float *out, *inp, *w, *b, *r;
    int N, C, OC;
} MatmulCtx;

static double matmul_loss(void *p) {
    MatmulCtx *c = p;
    matmul_forward(c->out, c->inp, c->w, c->b, c->N, c->C, c->OC);
    return dot(c->out, c->r, (size_t)c->N * c->OC);
}

static void test_matmul_backward(void) {
    MatmulCtx c = {NULL, NULL, NULL, NULL, NULL, 13, 19, 37};
    size_t no = (size_t)c.N * c.OC;
    c.out = zeros(no);
    c.inp = randn((size_t)c.N * c.C, 1);
    c.w = randn((size_t)c.OC * c.C, 0.5f);
    c.b = randn((size_t)c.OC, 0.5f);
    c.r = randn(no, 1);
    float *dinp = zeros((size_t)c.N * c.C), *dw = zeros((size_t)c.OC * c.C), *db = zeros((size_t)c.OC);
    matmul_forward(c.out, c.inp, c.w, c.b, c.N, c.C, c.OC);
    matmul_backward(dinp, dw, db, c.r, c.inp, c.w, c.N, c.C, c.OC);
    CHECK(!fd_check("dinp", matmul_loss, &c, c.inp, dinp, (size_t)c.N * c.C, 1e-2f, 1e-3, 1e-5), "matmul dinp");
    CHECK(!fd_check("dweight", matmul_loss, &c, c.w, dw, (size_t)c.OC * c.C, 1e-2f, 1e-3, 1e-5), "matmul dweight");
    CHECK(!fd_check("dbias", matmul_loss, &c, c.b, db, (size_t)c.OC, 1e-2f, 1e-3, 1e-5), "matmul dbias");
}

typedef struct {
    float *out, *mean, *rstd, *inp, *w, *b, *r;
    int N, C;
} LnCtx;

static double ln_loss(void *p) {
    LnCtx *c = p;
    layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->w, c->b, c->N, c->C);
    return dot(c->out, c->r, (size_t)c->N * c->C);
}

static void test_layernorm_backward(void) {
    LnCtx c = {NULL, NULL, NULL, NULL, NULL, NULL, NULL, 6, 24};
    size_t n = (size_t)c.N * c.C;
    c.out = zeros(n);
    c.mean = zeros((size_t)c.N);
    c.rstd = zeros((size_t)c.N);
    c.inp = randn(n, 2);
    c.w = randn((size_t)c.C, 1);
    c.b = randn((size_t)c.C, 1);
    c.r = randn(n, 1);
    float *dinp = zeros(n), *dw = zeros((size_t)c.C), *db = zeros((size_t)c.C);
    ln_loss(&c);
    layernorm_backward(dinp, dw, db, c.r, c.inp, c.w, c.mean, c.rstd, c.N, c.C);
    CHECK(!fd_check("dinp", ln_loss, &c, c.inp, dinp, n, 1e-2f, 1e-3, 1e-5), "layernorm dinp");
    CHECK(!fd_check("dweight", ln_loss, &c, c.w, dw, (size_t)c.C, 1e-2f, 1e-3, 1e-5), "layernorm dweight");
    CHECK(!fd_check("dbias", ln_loss, &c, c.b, db, (size_t)c.C, 1e-2f, 1e-3, 1e-5), "layernorm dbias");
}

typedef struct {
    float *out, *inp, *r;
    int n;
} GeluCtx;

static double gelu_loss(void *p) {
    GeluCtx *c = p;
    gelu_forward(c->out, c->inp, c->n);
    return dot(c->out, c->r, (size_t)c->n);
}

static void test_gelu_backward(void) {
    GeluCtx c = {zeros(40), randn(40, 2), randn(40, 1), 40};
    float *dinp = zeros(40);
    gelu_backward(dinp, c.inp, c.r, c.n);
    CHECK(!fd_check("dinp", gelu_loss, &c, c.inp, dinp, 40, 5e-2f, 1e-4, 1e-5), "gelu dinp");
    /* the tanh approximation itself, against its formula in double */
    double worst = 0;
    gelu_forward(c.out, c.inp, c.n);
    for (int i = 0; i < 40; i++) {
        double x = c.inp[i], y = 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
        worst = fmax(worst, fabs(y - c.out[i]));
    }
    CHECK(worst < 1e-6, "gelu forward error %g", worst);
}

typedef struct {
    float *losses, *lse, *logits;
    int *targets, N, V;
} CeCtx;

static double ce_loss(void *p) {
    CeCtx *c = p;
    return crossentropy_forward(c->losses, c->lse, c->logits, c->targets, c->N, c->V);
}

static void test_crossentropy_backward(void) {
    CeCtx c = {zeros(5), zeros(5), randn(5 * 11, 3), owned(malloc(5 * sizeof(int))), 5, 11};
    for (int i = 0; i < 5; i++) c.targets[i] = (i * 13) % 11; /* row n's target at n*11 + 2n (mod 11) */
    double loss = ce_loss(&c), want = 0;
    for (int n = 0; n < 5; n++) { /* against log-softmax in double */
        double mx = -1e30, s = 0;
        for (int v = 0; v < 11; v++) mx = fmax(mx, c.logits[n * 11 + v]);
        for (int v = 0; v < 11; v++) s += exp(c.logits[n * 11 + v] - mx);
        want += (mx + log(s) - c.logits[n * 11 + c.targets[n]]) / 5;
    }
    CHECK(fabs(loss - want) < 1e-6 * fabs(want), "loss %.8f vs %.8f", loss, want);
    float *d = zeros(5 * 11);
    crossentropy_backward(d, c.logits, c.lse, c.targets, 1.0f / 5, 5, 11);
    CHECK(!fd_check("dlogits", ce_loss, &c, c.logits, d, 55, 0.25f, 1e-4, 3e-6), "cross-entropy dlogits");
}

typedef struct {
    float *out, *wte, *wpe, *r;
    int *inp, B, T, C;
} EncCtx;

static double enc_loss(void *p) {
    EncCtx *c = p;
    encoder_forward(c->out, c->inp, c->wte, c->wpe, c->B, c->T, c->C);
    return dot(c->out, c->r, (size_t)c->B * c->T * c->C);
}

static void test_encoder_backward(void) {
    EncCtx c = {zeros(2 * 5 * 20), randn(7 * 20, 1), randn(5 * 20, 1), randn(2 * 5 * 20, 1), owned(malloc(10 * sizeof(int))), 2, 5, 20};
    for (int i = 0; i < 10; i++) c.inp[i] = i % 3; /* repeated tokens accumulate */
    float *dwte = zeros(7 * 20), *dwpe = zeros(5 * 20);
    encoder_backward(dwte, dwpe, c.r, c.inp, 2, 5, 20);
    CHECK(!fd_check("dwte", enc_loss, &c, c.wte, dwte, 7 * 20, 1e-2f, 1e-4, 1e-5), "encoder dwte");
    CHECK(!fd_check("dwpe", enc_loss, &c, c.wpe, dwpe, 5 * 20, 1e-2f, 1e-4, 1e-5), "encoder dwpe");
}

/* ------------------------------------------------------------------------ */
/* softmax attention                                                        */

typedef struct {
    const AttentionKind *k;
    AttnConfig a;
    float *qkv, *out, *saved, *r;
    int B, T;
} AttCtx;

static double att_loss(void *p) {
    AttCtx *c = p;
    c->k->forward(&c->a, NULL, c->qkv, c->out, c->saved, c->B, c->T);
    return dot(c->out, c->r, (size_t)c->B * c->T * c->a.n_embd);
}

static AttCtx att_setup(int B, int T, int NH, int hs) {
    AttCtx c = {&attention_softmax, {NH, NH * hs, hs, 4, 0, 0, 0, 0}, NULL, NULL, NULL, NULL, B, T};
    size_t C = (size_t)NH * hs;
    c.qkv = randn((size_t)B * T * 3 * C, 1);
    c.out = zeros((size_t)B * T * C);
    c.saved = zeros(c.k->n_saved(&c.a, B, T));
    c.r = randn((size_t)B * T * C, 1);
    return c;
}

/* Dense masked softmax attention in double, on double inputs. */
static void dense_softmax(const double *qkv, double *o, int B, int T, int NH, int hs) {
    int C = NH * hs;
    double *w = malloc((size_t)T * sizeof *w);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < T; i++) {
                const double *q = qkv + ((size_t)b * T + i) * 3 * C + h * hs;
                double mx = -1e300, sum = 0;
                for (int j = 0; j <= i; j++) {
                    const double *k = qkv + ((size_t)b * T + j) * 3 * C + C + h * hs;
                    double s = 0;
                    for (int d = 0; d < hs; d++) s += q[d] * k[d];
                    w[j] = s / sqrt(hs);
                    mx = fmax(mx, w[j]);
                }
                for (int j = 0; j <= i; j++) sum += (w[j] = exp(w[j] - mx));
                for (int d = 0; d < hs; d++) {
                    double acc = 0;
                    for (int j = 0; j <= i; j++) acc += w[j] * qkv[((size_t)b * T + j) * 3 * C + 2 * C + h * hs + d];
                    o[((size_t)b * T + i) * C + h * hs + d] = acc / sum;
                }
            }
    free(w);
}

typedef void (*DenseFn)(const double *qkv, double *o, int B, int T, int NH, int hs);

/* The analytic dqkv of a kind (float, tiled) against central differences of
 * its dense double-precision reference, which are accurate to ~1e-9: a check
 * of the backward that float finite differences are too noisy for at this
 * size. Coordinates: 40 spread over q, k and v of every tile, plus 20 in the
 * last (partial) tile. Returns the number of bad coordinates. */
static int dense_grad_check(DenseFn dense, const AttCtx *c, const float *dqkv) {
    int C = c->a.n_embd, T = c->T;
    size_t nq = (size_t)c->B * T * 3 * C, no = (size_t)c->B * T * C;
    double *x = malloc(nq * sizeof *x), *o = malloc(no * sizeof *o);
    for (size_t i = 0; i < nq; i++) x[i] = c->qkv[i];
    int bad = 0;
    double scale = 0;
    for (size_t i = 0; i < nq; i++) scale = fmax(scale, fabs(dqkv[i]));
    for (int s = 0; s < 60; s++) {
        size_t i = s < 40 ? (size_t)s * (nq / 40) + (size_t)s % 7 : nq - 1 - rng_below(&rng, 20 * 3 * (size_t)C);
        double orig = x[i], l[2];
        for (int k = 0; k < 2; k++) {
            x[i] = orig + (k ? -1e-5 : 1e-5);
            dense(x, o, c->B, T, c->a.n_head, c->a.head_size);
            l[k] = 0;
            for (size_t j = 0; j < no; j++) l[k] += o[j] * c->r[j];
        }
        x[i] = orig;
        double fd = (l[0] - l[1]) / 2e-5;
        if (fabs(fd - dqkv[i]) > 1e-4 * scale + 1e-3 * fabs(fd)) {
            if (bad++ < 3) printf("  dqkv[%zu]: analytic %.7g, dense finite difference %.7g\n", i, dqkv[i], fd);
        }
    }
    free(x);
    free(o);
    return bad;
}

static void test_softmax_attention(void) {
    AttCtx c = att_setup(2, 150, 2, 8); /* three query and key tiles, a partial one last */
    size_t n = (size_t)c.B * c.T * c.a.n_embd, nq = n * 3;
    att_loss(&c);
    double *x = calloc(nq, sizeof *x), *o = calloc(n, sizeof *o), err = 0;
    for (size_t i = 0; i < nq; i++) x[i] = c.qkv[i];
    dense_softmax(x, o, c.B, c.T, c.a.n_head, c.a.head_size);
    for (size_t i = 0; i < n; i++) err = fmax(err, fabs(o[i] - c.out[i]));
    CHECK(err < 1e-5, "tiled vs dense: max error %g", err);
    float *dqkv = zeros(nq);
    c.k->backward(&c.a, NULL, c.qkv, c.out, c.saved, c.r, dqkv, NULL, c.B, c.T);
    CHECK(!dense_grad_check(dense_softmax, &c, dqkv), "attention dqkv against the dense reference");

    /* causality: changing position j changes no output before j */
    float *before = malloc(n * sizeof *before);
    memcpy(before, c.out, n * sizeof *before);
    int j = 97;
    for (int d = 0; d < 3 * c.a.n_embd; d++) c.qkv[(size_t)j * 3 * c.a.n_embd + d] += 1.0f;
    att_loss(&c);
    int leaked = 0, changed = 0;
    for (int i = 0; i < c.T; i++)
        for (int d = 0; d < c.a.n_embd; d++) {
            int diff = c.out[(size_t)i * c.a.n_embd + d] != before[(size_t)i * c.a.n_embd + d];
            leaked += i < j && diff;
            changed += i >= j && diff;
        }
    CHECK(leaked == 0 && changed > 0, "%d outputs before position %d changed (%d after)", leaked, j, changed);
    CHECK(c.k->n_saved(&c.a, 1, 2000) * 2 == c.k->n_saved(&c.a, 1, 4000), "saved memory must be linear in T");
    free(x);
    free(o);
    free(before);
}

static void test_vector_exp_and_tanh(void) {
    double worst_exp = 0, worst_tanh = 0;
    for (float x = -87.0f; x < 88.3f; x += 0.00731f) worst_exp = fmax(worst_exp, fabs(exp_fast(x) - exp(x)) / exp(x));
    for (float x = -10; x < 10; x += 0.000913f)
        if (fabs(tanh(x)) > 1e-30) worst_tanh = fmax(worst_tanh, fabs(tanh_fast(x) - tanh(x)) / fabs(tanh(x)));
    CHECK(worst_exp < 5e-7 && worst_tanh < 5e-7, "relative errors: exp %g, tanh %g", worst_exp, worst_tanh);
    CHECK(exp_fast(-100) == 0 && exp_fast(0) == 1 && isnan(exp_fast(NAN)), "exp edge cases");
}

int main(void) {
    rng_seed(&rng, 99, 0);
    RUN(test_sgemm_against_reference);
    release();
    RUN(test_matmul_backward);
    release();
    RUN(test_layernorm_backward);
    release();
    RUN(test_gelu_backward);
    release();
    RUN(test_crossentropy_backward);
    release();
    RUN(test_encoder_backward);
    release();
    RUN(test_softmax_attention);
    release();
    RUN(test_vector_exp_and_tanh);
    release();
    return 0;
}
