/* Polynomial and PolySketch attention (ALGORITHMS.md section 4):
 *  1. against dense references in double (explicit masked n x n weights),
 *     for block sizes 1, 2, 4, 48 and n, with and without local exact,
 *     degree 4 and 8;
 *  2. gradients for q, k, v and every trainable parameter against central
 *     differences of the dense reference (a block of 80 rows: two 64-row
 *     tiles and the tile pair below its diagonal);
 *  3. causality;
 *  4. the sketch approximates exact polynomial attention better as r grows
 *     (clustered inputs), and every weight is >= 0 (D >= 1);
 *  5. saved memory linear in n; decoding one position at a time gives the
 *     forward's outputs, with the same bits on 1 thread and on 2;
 *  6. the FLOP counts behind MFU. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "../attention/attention.h"
#include "../attention/tile.h"
#include "../common/rng.h"
#include "test.h"

static Rng rng;

static float randn1(void) {
    float u1 = rng_float(&rng), u2 = rng_float(&rng);
    return sqrtf(-2.0f * logf(1.0f - u1)) * cosf(6.2831853f * u2);
}

static AttnConfig cfg(int NH, int hs, int degree, int r, int b, int local) {
    return (AttnConfig){NH, NH * hs, hs, degree, 0, r, b, local};
}

static AttnConfig learned(int NH, int hs, int r, int b, int local) {
    AttnConfig a = cfg(NH, hs, 4, r, b, local);
    a.sketch_learned = 1;
    return a;
}

/* ------------------------------------------------------------------------ */
/* dense references in double                                               */

static void ln_d(double *y, const double *x, const double *g, const double *b, int n) {
    double m = 0, v = 0;
    for (int i = 0; i < n; i++) m += x[i];
    m /= n;
    for (int i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
    double s = 1 / sqrt(v / n + 1e-5);
    for (int i = 0; i < n; i++) y[i] = (x[i] - m) * s * g[i] + b[i];
}

/* The sketch m applied level by level, as in ALGORITHMS.md, in double. */
static void sketch_d(double *out, const double *x, const double *params, const AttnConfig *a, size_t sk) {
    int r = a->sketch_size, levels = 0;
    for (int d = a->degree; d > 2; d /= 2) levels++;
    double in[1024], y[1024];
    memcpy(in, x, (size_t)a->head_size * sizeof *in);
    size_t off = sk;
    for (int l = 0; l < levels; l++) {
        int din = l ? r : a->head_size;
        const double *g1 = params + off, *g2 = g1 + (size_t)din * r;
        for (int j = 0; j < r; j++) {
            double y1 = 0, y2 = 0;
            for (int i = 0; i < din; i++) {
                y1 += in[i] * g1[(size_t)i * r + j];
                y2 += in[i] * g2[(size_t)i * r + j];
            }
            y[j] = y1 * y2 / sqrt(r);
        }
        memcpy(in, y, (size_t)r * sizeof *in);
        off += 2 * (size_t)din * r;
    }
    memcpy(out, in, (size_t)r * sizeof *out);
}

static double gelu_d(double x) { return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); }

/* The learned sketch in double: two towers of two levels of
 * Dense_r(GELU(Dense_8r(LN(x)))), f = sqrt(r) tanh(t1 o t2 / sqrt(r)). */
static void sketch_net_d(double *out, const double *x, const double *params, int hs, int r) {
    double t[2][512];
    size_t off = 0;
    for (int tw = 0; tw < 2; tw++) {
        double in[512], ln[512], h[4096];
        memcpy(in, x, (size_t)hs * sizeof *in);
        for (int l = 0; l < 2; l++) {
            int din = l ? r : hs;
            const double *g = params + off, *b = g + din, *w1 = b + din, *w2 = w1 + (size_t)din * 8 * r;
            ln_d(ln, in, g, b, din);
            for (int j = 0; j < 8 * r; j++) {
                double acc = 0;
                for (int i = 0; i < din; i++) acc += ln[i] * w1[(size_t)i * 8 * r + j];
                h[j] = gelu_d(acc);
            }
            for (int j = 0; j < r; j++) {
                double acc = 0;
                for (int i = 0; i < 8 * r; i++) acc += h[i] * w2[(size_t)i * r + j];
                in[j] = acc;
            }
            off += 2 * (size_t)din + (size_t)din * 8 * r + (size_t)8 * r * r;
        }
        memcpy(t[tw], in, (size_t)r * sizeof *in);
    }
    for (int j = 0; j < r; j++) out[j] = sqrt(r) * tanh(t[0][j] * t[1][j] / sqrt(r));
}

/* Dense causal attention of a polynomial kind: weights from q and k
 * features, o_i = sum_j w_ij v_j / (1 + sum_j w_ij). sketch: PolySketch. */
static void dense(const AttnConfig *a, int sketch, const double *qkv, const double *params, double *o, int B, int T) {
    int NH = a->n_head, hs = a->head_size, C = a->n_embd, r = a->sketch_size, p = a->degree;
    size_t lnq = a->sketch_learned ? 0 : 2 * (size_t)hs, lnk = lnq + (a->local_exact ? 2 * (size_t)hs : 0);
    size_t sk = lnk + (a->local_exact ? 2 * (size_t)hs : 0);
    double *fq = malloc((size_t)T * 1024 * sizeof *fq), *fk = malloc((size_t)T * 1024 * sizeof *fk);
    double *lq = malloc((size_t)T * 1024 * sizeof *lq), *lk = malloc((size_t)T * 1024 * sizeof *lk), tmp[1024];
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            for (int t = 0; t < T; t++) {
                const double *q = qkv + ((size_t)b * T + t) * 3 * C + h * hs, *k = q + C;
                if (sketch && a->sketch_learned) {
                    sketch_net_d(fq + (size_t)t * 1024, q, params + sk, hs, r);
                    sketch_net_d(fk + (size_t)t * 1024, k, params + sk, hs, r);
                } else {
                    ln_d(tmp, q, params, params + hs, hs);
                    if (sketch) sketch_d(fq + (size_t)t * 1024, tmp, params, a, sk);
                    else memcpy(fq + (size_t)t * 1024, tmp, (size_t)hs * sizeof *tmp);
                    ln_d(tmp, k, params, params + hs, hs);
                    if (sketch) sketch_d(fk + (size_t)t * 1024, tmp, params, a, sk);
                    else memcpy(fk + (size_t)t * 1024, tmp, (size_t)hs * sizeof *tmp);
                }
                if (sketch && a->local_exact) {
                    ln_d(lq + (size_t)t * 1024, q, params + lnq, params + lnq + hs, hs);
                    ln_d(lk + (size_t)t * 1024, k, params + lnk, params + lnk + hs, hs);
                }
            }
            for (int i = 0; i < T; i++) {
                double sum = 0, acc[1024] = {0};
                for (int j = 0; j <= i; j++) {
                    int exact_here = !sketch || (a->local_exact && i / a->block == j / a->block);
                    const double *x = exact_here && sketch ? lq + (size_t)i * 1024 : fq + (size_t)i * 1024;
                    const double *y = exact_here && sketch ? lk + (size_t)j * 1024 : fk + (size_t)j * 1024;
                    int dim = sketch && !exact_here ? r : hs;
                    double z = 0;
                    for (int d = 0; d < dim; d++) z += x[d] * y[d];
                    double w = pow(z, sketch && !exact_here ? 2 : p);
                    sum += w;
                    for (int d = 0; d < hs; d++) acc[d] += w * qkv[((size_t)b * T + j) * 3 * C + 2 * C + h * hs + d];
                }
                for (int d = 0; d < hs; d++) o[((size_t)b * T + i) * C + h * hs + d] = acc[d] / (1 + sum);
            }
        }
    free(fq);
    free(fk);
    free(lq);
    free(lk);
}

/* ------------------------------------------------------------------------ */

typedef struct {
    const AttentionKind *k;
    AttnConfig a;
    int sketch, B, T;
    float *qkv, *params, *out, *saved;
} Case;

static Case make_case(const AttentionKind *k, AttnConfig a, int B, int T, float scale) {
    Case c = {k, a, k == &attention_polysketch, B, T, NULL, NULL, NULL, NULL};
    size_t nq = (size_t)B * T * 3 * a.n_embd, np = k->n_params(&a);
    c.qkv = malloc(nq * sizeof *c.qkv);
    for (size_t i = 0; i < nq; i++) c.qkv[i] = randn1();
    c.params = malloc(np * sizeof *c.params);
    k->init(&a, c.params, &rng);
    AttnTensor at[ATTN_MAX_TENSORS]; /* perturb the trainable parameters so none is trivially 1 or 0 */
    int nt = k->tensors(&a, at);
    for (int t = 0; t < nt; t++)
        for (int i = 0; at[t].trainable && i < at[t].rows; i++) c.params[at[t].offset + i] += scale * randn1();
    c.out = calloc((size_t)B * T * a.n_embd, sizeof *c.out);
    c.saved = calloc(k->n_saved(&a, B, T), sizeof *c.saved);
    return c;
}

static void free_case(Case *c) {
    free(c->qkv);
    free(c->params);
    free(c->out);
    free(c->saved);
}

static double dense_error(const Case *c, double *scale_out) {
    size_t nq = (size_t)c->B * c->T * 3 * c->a.n_embd, no = (size_t)c->B * c->T * c->a.n_embd;
    size_t np = c->k->n_params(&c->a);
    double *x = malloc(nq * sizeof *x), *pp = malloc(np * sizeof *pp), *o = malloc(no * sizeof *o), err = 0, sc = 0;
    for (size_t i = 0; i < nq; i++) x[i] = c->qkv[i];
    for (size_t i = 0; i < np; i++) pp[i] = c->params[i];
    dense(&c->a, c->sketch, x, pp, o, c->B, c->T);
    for (size_t i = 0; i < no; i++) {
        err = fmax(err, fabs(o[i] - c->out[i]));
        sc = fmax(sc, fabs(o[i]));
    }
    free(x);
    free(pp);
    free(o);
    if (scale_out) *scale_out = sc;
    return err / (sc > 0 ? sc : 1);
}

static void test_against_dense_reference(void) {
    struct {
        const AttentionKind *k;
        int degree, r, b, local;
    } cases[] = {
        {&attention_polynomial, 4, 0, 0, 0}, {&attention_polynomial, 2, 0, 0, 0},
        {&attention_polynomial, 6, 0, 0, 0}, {&attention_polysketch, 4, 6, 1, 0},
        {&attention_polysketch, 4, 6, 2, 0}, {&attention_polysketch, 4, 6, 4, 0},
        {&attention_polysketch, 4, 6, 70, 0}, {&attention_polysketch, 4, 6, 1, 1},
        {&attention_polysketch, 4, 6, 2, 1}, {&attention_polysketch, 4, 6, 4, 1},
        {&attention_polysketch, 4, 6, 70, 1}, {&attention_polysketch, 4, 6, 48, 1},
        {&attention_polysketch, 4, 6, 48, 0}, {&attention_polysketch, 8, 5, 4, 0},
        {&attention_polysketch, 8, 5, 4, 1}, {&attention_polysketch, 4, 6, 16, 1},
        {&attention_polysketch, -1, 4, 4, 0}, {&attention_polysketch, -1, 4, 16, 1}, /* -1: learned sketch */
        {&attention_polysketch, 4, 33, 16, 0}, {&attention_polysketch, 4, 70, 16, 1}, /* r up to 64 and over it */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        AttnConfig a = cases[i].degree < 0 ? learned(2, 8, cases[i].r, cases[i].b, cases[i].local)
                                           : cfg(2, 8, cases[i].degree, cases[i].r, cases[i].b, cases[i].local);
        Case c = make_case(cases[i].k, a, 2, 70, 0.1f); /* T = 70: two tiles, and blocks that do not divide it */
        c.k->forward(&c.a, c.params, c.qkv, c.out, c.saved, c.B, c.T);
        double err = dense_error(&c, NULL);
        CHECK(err < 2e-5, "%s degree %d r %d b %d local %d: relative error %g", c.k->name, a.degree, a.sketch_size,
              a.block, a.local_exact, err);
        double dmin = 1e30;
        for (size_t j = 0; j < c.k->n_saved(&a, c.B, c.T); j++) dmin = fmin(dmin, c.saved[j]);
        CHECK(dmin >= 1.0, "%s: D = 1 + sum of weights fell to %g: a negative weight", c.k->name, dmin);
        free_case(&c);
    }
    /* b = n without local exact equals the fully sketched dense attention, with local exact the exact one */
    AttnConfig ae = cfg(2, 8, 4, 6, 64, 1), ap = cfg(2, 8, 4, 0, 0, 0);
    Case c = make_case(&attention_polysketch, ae, 1, 64, 0.0f), e = make_case(&attention_polynomial, ap, 1, 64, 0.0f);
    memcpy(e.qkv, c.qkv, (size_t)64 * 3 * 16 * sizeof *c.qkv);
    c.k->forward(&c.a, c.params, c.qkv, c.out, c.saved, 1, 64);
    e.k->forward(&e.a, e.params, e.qkv, e.out, e.saved, 1, 64);
    double worst = 0;
    for (int i = 0; i < 64 * 16; i++) worst = fmax(worst, fabs(c.out[i] - e.out[i]));
    CHECK(worst < 1e-5, "polysketch with b = n and local exact must equal polynomial attention (%g)", worst);
    free_case(&c);
    free_case(&e);
}

/* Analytic gradients against central differences of the dense reference. */
static void grad_check(const AttentionKind *k, AttnConfig a, int B, int T) {
    Case c = make_case(k, a, B, T, 0.1f);
    size_t nq = (size_t)B * T * 3 * a.n_embd, no = (size_t)B * T * a.n_embd, np = k->n_params(&a);
    float *R = malloc(no * sizeof *R), *dqkv = calloc(nq, sizeof *dqkv), *dp = calloc(np, sizeof *dp);
    for (size_t i = 0; i < no; i++) R[i] = randn1();
    k->forward(&c.a, c.params, c.qkv, c.out, c.saved, B, T);
    k->backward(&c.a, c.params, c.qkv, c.out, c.saved, R, dqkv, dp, B, T);
    double *x = malloc(nq * sizeof *x), *pp = malloc(np * sizeof *pp), *o = malloc(no * sizeof *o);
    for (size_t i = 0; i < nq; i++) x[i] = c.qkv[i];
    for (size_t i = 0; i < np; i++) pp[i] = c.params[i];
    AttnTensor at[ATTN_MAX_TENSORS];
    int nt = k->tensors(&a, at), bad = 0, checked = 0;
    double scale = 0;
    for (size_t i = 0; i < nq; i++) scale = fmax(scale, fabs(dqkv[i]));
    /* 45 qkv coordinates (q, k, v of early and late positions), then up to
     * 12 entries spread over every trainable parameter tensor */
    int plan[ATTN_MAX_TENSORS * 12][2], nplan = 0;
    for (int t = 0; t < nt; t++) {
        int size = at[t].rows * (at[t].cols ? at[t].cols : 1), m = size < 12 ? size : 12;
        for (int j = 0; at[t].trainable && j < m; j++) {
            plan[nplan][0] = t;
            plan[nplan++][1] = (int)((long)j * size / m + j % 3) % size;
        }
    }
    for (int s = 0; s < 45 + nplan; s++) {
        double *target;
        float an;
        if (s < 45) {
            size_t i = (size_t)s * (nq / 45) + (size_t)(s % 3) * a.n_embd;
            target = &x[i % nq];
            an = dqkv[i % nq];
        } else {
            const AttnTensor *t = &at[plan[s - 45][0]];
            target = &pp[t->offset + (size_t)plan[s - 45][1]];
            an = dp[t->offset + (size_t)plan[s - 45][1]];
        }
        double orig = *target, l[2];
        for (int side = 0; side < 2; side++) {
            *target = orig + (side ? -1e-5 : 1e-5);
            dense(&c.a, c.sketch, x, pp, o, B, T);
            l[side] = 0;
            for (size_t j = 0; j < no; j++) l[side] += o[j] * R[j];
        }
        *target = orig;
        double fd = (l[0] - l[1]) / 2e-5;
        checked++;
        if (fabs(fd - an) > 2e-4 * fmax(scale, fabs(fd)) + 1e-4 * fabs(fd)) {
            if (bad++ < 4) printf("  %s b%d local %d, coordinate %d: analytic %.7g, dense finite difference %.7g\n",
                                  k->name, a.block, a.local_exact, s, an, fd);
        }
    }
    CHECK(bad == 0, "%s (degree %d, r %d, b %d, local %d): %d of %d gradients wrong", k->name, a.degree, a.sketch_size,
          a.block, a.local_exact, bad, checked);
    free(R);
    free(dqkv);
    free(dp);
    free(x);
    free(pp);
    free(o);
    free_case(&c);
}

static void test_gradients(void) {
    grad_check(&attention_polynomial, cfg(2, 8, 4, 0, 0, 0), 2, 70);
    grad_check(&attention_polynomial, cfg(1, 12, 6, 0, 0, 0), 1, 20);
    grad_check(&attention_polysketch, cfg(2, 8, 4, 6, 16, 0), 1, 40);
    grad_check(&attention_polysketch, cfg(2, 8, 4, 6, 16, 1), 1, 40);
    grad_check(&attention_polysketch, cfg(1, 8, 4, 5, 1, 1), 1, 12);
    grad_check(&attention_polysketch, cfg(2, 8, 4, 6, 80, 1), 1, 100); /* a block of two tiles, and the tile pair below */
    grad_check(&attention_polysketch, cfg(2, 8, 4, 6, 80, 0), 1, 100); /* its diagonal (TILE = 64) */
    grad_check(&attention_polysketch, cfg(1, 8, 4, 20, 8, 0), 1, 24); /* the self-tensoring's paths: 2 and 4 */
    grad_check(&attention_polysketch, cfg(1, 8, 4, 40, 8, 0), 1, 24); /* vectors a row, and r over 64 */
    grad_check(&attention_polysketch, cfg(1, 8, 4, 70, 8, 0), 1, 24);
    grad_check(&attention_polysketch, cfg(2, 8, 8, 4, 8, 0), 1, 24);
    grad_check(&attention_polysketch, cfg(2, 8, 8, 4, 8, 1), 1, 24);
    grad_check(&attention_polysketch, learned(2, 8, 4, 8, 0), 1, 24);
    grad_check(&attention_polysketch, learned(2, 8, 4, 8, 1), 1, 24);
}

static void test_causality(void) {
    const AttentionKind *kinds[] = {&attention_polynomial, &attention_polysketch, &attention_polysketch};
    int local[] = {0, 0, 1};
    for (int i = 0; i < 3; i++) {
        Case c = make_case(kinds[i], cfg(2, 8, 4, 6, 16, local[i]), 1, 100, 0.1f);
        c.k->forward(&c.a, c.params, c.qkv, c.out, c.saved, 1, 100);
        float *before = malloc(100 * 16 * sizeof *before);
        memcpy(before, c.out, 100 * 16 * sizeof *before);
        for (int d = 0; d < 48; d++) c.qkv[61 * 48 + d] += 0.5f;
        c.k->forward(&c.a, c.params, c.qkv, c.out, c.saved, 1, 100);
        int leaked = 0, changed = 0;
        for (int t = 0; t < 100; t++)
            for (int d = 0; d < 16; d++) {
                int diff = c.out[t * 16 + d] != before[t * 16 + d];
                leaked += t < 61 && diff;
                changed += t >= 61 && diff;
            }
        CHECK(leaked == 0 && changed > 0, "%s local %d: %d earlier outputs changed", c.k->name, local[i], leaked);
        free(before);
        free_case(&c);
    }
}

/* Relative error of fully sketched attention against exact degree-4
 * polynomial attention on clustered inputs (8 directions), n=256, d=64. */
static double sketch_error(int r, uint64_t seed) {
    rng_seed(&rng, seed, 5);
    const int T = 256, hs = 64;
    AttnConfig as = cfg(1, hs, 4, r, T, 0), ae = cfg(1, hs, 4, 0, 0, 0);
    Case s = make_case(&attention_polysketch, as, 1, T, 0.0f), e = make_case(&attention_polynomial, ae, 1, T, 0.0f);
    float centers[8][64];
    for (int c = 0; c < 8; c++)
        for (int d = 0; d < hs; d++) centers[c][d] = randn1();
    for (int t = 0; t < T; t++)
        for (int part = 0; part < 2; part++) { /* q and k near a shared direction */
            int c = (int)rng_below(&rng, 8);
            for (int d = 0; d < hs; d++) s.qkv[(size_t)t * 3 * hs + part * hs + d] = centers[c][d] + 0.3f * randn1();
        }
    memcpy(e.qkv, s.qkv, (size_t)T * 3 * hs * sizeof *s.qkv);
    s.k->forward(&s.a, s.params, s.qkv, s.out, s.saved, 1, T);
    e.k->forward(&e.a, e.params, e.qkv, e.out, e.saved, 1, T);
    double num = 0, den = 0;
    for (int i = 0; i < T * hs; i++) {
        num += (s.out[i] - e.out[i]) * (s.out[i] - e.out[i]);
        den += e.out[i] * e.out[i];
    }
    free_case(&s);
    free_case(&e);
    return sqrt(num / den);
}

static void test_sketch_error_falls_with_r(void) {
    double err[3] = {0};
    int rs[3] = {8, 32, 128};
    for (int i = 0; i < 3; i++) {
        for (uint64_t seed = 1; seed <= 3; seed++) err[i] += sketch_error(rs[i], seed) / 3;
    }
    printf("  relative error of o: r=8 %.3f, r=32 %.3f, r=128 %.3f\n", err[0], err[1], err[2]);
    CHECK(err[0] > err[1] && err[1] > err[2] && err[2] < 0.6, "the error must fall as r grows");
}

static void test_memory_and_decode(void) {
    const AttentionKind *kinds[] = {&attention_polynomial, &attention_polysketch, &attention_polysketch,
                                    &attention_polysketch, &attention_softmax};
    int local[] = {0, 0, 1, 1, 0};
    for (int i = 0; i < 5; i++) {
        AttnConfig a = i == 3 ? learned(2, 8, 6, 16, 1) : cfg(2, 8, 4, 6, 16, local[i]);
        CHECK(kinds[i]->n_saved(&a, 1, 2000) * 2 == kinds[i]->n_saved(&a, 1, 4000), "%s: saved memory not linear",
              kinds[i]->name);
        if (kinds[i] == &attention_polysketch)
            CHECK(kinds[i]->n_state(&a, 100) == kinds[i]->n_state(&a, 100000), "polysketch decoding state must not grow");
        int T = 50;
        Case c = make_case(kinds[i], a, 1, T, 0.1f);
        c.k->forward(&c.a, c.params, c.qkv, c.out, c.saved, 1, T);
        float *state = calloc(c.k->n_state(&a, T), sizeof *state), o[16];
        double err = 0;
        for (int t = 0; t < T; t++) {
            c.k->decode(&a, c.params, c.qkv + (size_t)t * 48, state, t, o);
            for (int d = 0; d < 16; d++) err = fmax(err, fabs(o[d] - c.out[t * 16 + d]) / (fabs(c.out[t * 16 + d]) + 1e-2));
        }
        CHECK(err < 1e-4, "%s local %d: decoding differs from the forward by %g", c.k->name, local[i], err);
        free(state);
        free_case(&c);
    }
}

/* Decoding shares a token's heads out over the threads: one thread and
 * the run's own count (2 here; 5 heads: uneven shares) must give the same
 * bits, for every kind. (No count above the run's: libgomp would end the
 * extra threads afterwards, and their kept scratch would read as leaks.) */
static void test_decode_threads(void) {
    const AttentionKind *kinds[] = {&attention_softmax, &attention_polynomial, &attention_polysketch,
                                    &attention_polysketch};
    int local[] = {0, 0, 0, 1}, T = 40, NH = 5, C = NH * 8, threads = omp_get_max_threads();
    if (threads < 2) printf("  one thread only: nothing to compare\n");
    for (int i = 0; i < 4; i++) {
        AttnConfig a = cfg(NH, 8, 4, 6, 16, local[i]);
        Case c = make_case(kinds[i], a, 1, T, 0.1f);
        float *out[2];
        for (int run = 0; run < 2; run++) {
            omp_set_num_threads(run ? threads : 1);
            float *state = calloc(c.k->n_state(&a, T), sizeof *state);
            out[run] = malloc((size_t)T * C * sizeof(float));
            for (int t = 0; t < T; t++) c.k->decode(&a, c.params, c.qkv + (size_t)t * 3 * C, state, t, out[run] + t * C);
            free(state);
        }
        CHECK(memcmp(out[0], out[1], (size_t)T * C * sizeof(float)) == 0,
              "%s local %d: decoding's bits depend on the thread count (1 and %d)", c.k->name, local[i], threads);
        free(out[0]);
        free(out[1]);
        free_case(&c);
    }
}

/* MFU counts each kind's own products: dense kinds grow with T, PolySketch
 * does not. The figures by hand for H=12, d=64 (C=768), r=32, b=256:
 * softmax at T=2048: q.k and w.v, 2 FLOPs each, over 1024 keys: 4 C 1024;
 * PolySketch per head: sketches of q and k 2 x (2 x 2 x 64 x 32), phi^T S
 * and the S update 2 x 2 x 528 x 65, the local block 2 x 128 x (64 + 65)
 * (local exact: the exact weight's q^.k^ has d = 64 terms). */
static void test_flops_count(void) {
    AttnConfig a = cfg(12, 64, 4, 32, 256, 1);
    double dense = attention_softmax.flops(&a, 2048), ps = attention_polysketch.flops(&a, 2048);
    CHECK(dense == 4.0 * 768 * 1024, "softmax: %.0f FLOPs per token", dense);
    CHECK(attention_polynomial.flops(&a, 4096) == 2 * dense, "polynomial at 4k: %.0f", attention_polynomial.flops(&a, 4096));
    double want = 12 * (2 * (2 * 2 * 64 * 32) + 2 * 2 * 528 * 65 + 2 * 128 * (64 + 65));
    CHECK(ps == want, "polysketch: %.0f FLOPs per token, want %.0f", ps, want);
    CHECK(attention_polysketch.flops(&a, 65536) == ps, "polysketch's count must not grow with T");
    a.local_exact = 0; /* the local block's weights then come from the r-wide sketches */
    want -= 12 * 2 * 128 * (64 - 32);
    CHECK(attention_polysketch.flops(&a, 2048) == want, "polysketch local 0: %.0f, want %.0f",
          attention_polysketch.flops(&a, 2048), want);
}

/* tile_reduce16: lane i of the result is the sum or the largest of v[i]'s
 * lanes, for each of 16 vectors at once (the softmax forward's row maxima
 * and sums); against plain loops, with a distinct largest lane per row. */
static void test_reduce16(void) {
    vf16 v[16], w[16];
    float x[16][16];
    for (int i = 0; i < 16; i++)
        for (int k = 0; k < 16; k++) x[i][k] = (float)randn1();
    for (int i = 0; i < 16; i++) x[i][(i * 7) % 16] = 10.0f + (float)i; /* row i's max in a lane of its own */
    for (int i = 0; i < 16; i++) v[i] = w[i] = vf16_load(x[i]);
    vf16 sum = tile_reduce16(v, 0), mx = tile_reduce16(w, 1);
    int bad = 0;
    for (int i = 0; i < 16; i++) {
        double s = 0;
        for (int k = 0; k < 16; k++) s += x[i][k];
        bad += fabs(sum[i] - s) > 1e-5 * (1 + fabs(s)) || mx[i] != 10.0f + (float)i;
    }
    CHECK(bad == 0, "%d of 16 rows reduced wrongly", bad);
}

int main(void) {
    rng_seed(&rng, 2024, 0);
    RUN(test_reduce16);
    RUN(test_against_dense_reference);
    RUN(test_gradients);
    RUN(test_causality);
    RUN(test_sketch_error_falls_with_r);
    RUN(test_memory_and_decode);
    RUN(test_decode_threads);
    RUN(test_flops_count);
    return 0;
}
