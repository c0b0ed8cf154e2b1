/* PolySketch attention in linear time (ALGORITHMS.md section 3).
 *
 * Per layer: a LayerNorm shared by q, k and all heads (q~, k~), and a
 * degree-2 Gaussian sketch m(x) = (x G1) o (x G2) / sqrt(r), applied
 * recursively for degree 8 and up (m of m, log2(p) - 1 levels). With
 * a = m(q~), c = m(k~), the weight w_ij = (a_i . c_j)^2 >= 0 is the inner
 * product of the self-tensored features phi(a) . phi(c); phi is stored
 * symmetric, r(r+1)/2 entries (sqrt 2 on the off-diagonal pairs).
 *
 * Causal block algorithm, block b: S = sum over earlier blocks of
 * phi(c_j) [v_j; 1]^T (r(r+1)/2 x (hs+1)); for block l,
 * u_i = phi(a_i)^T S + sum_{j in block, j <= i} w_ij [v_j; 1], then
 * S += phi(C_l)^T V_l. D_i = 1 + u_i[hs], o_i = u_i[:hs] / D_i. The
 * products with S go through sgemm; the block's own weights through the
 * 64 x 64 tiles of tile.h, as exact attention's. With local_exact, the
 * diagonal blocks use the exact weight (q^_i . k^_j)^p with two LayerNorms
 * of their own (as the official "mixed" variant). Saved for backward:
 * D [B, NH, T]; everything else is recomputed. Per-thread scratch is O(T)
 * for one head. */
#include <math.h>
#include <stdio.h>

#include "../model/matmul.h"
#include "attention.h"
#include "lnorm.h"
#include "sketch_net.h"
#include "tile.h"

typedef struct {
    int hs, r, F, hs1, b, p, levels, local, learned;
    size_t lnq, lnk, sk, n;   /* offsets of the local LayerNorms and the sketch; total */
} Shape;

static Shape shape_of(const AttnConfig *a) {
    Shape s;
    s.hs = a->head_size;
    s.r = a->sketch_size;
    s.F = s.r * (s.r + 1) / 2;
    s.hs1 = s.hs + 1;
    s.b = a->block;
    s.p = a->degree;
    s.levels = 0;
    for (int d = a->degree; d > 2; d /= 2) s.levels++;
    s.local = a->local_exact;
    s.learned = a->sketch_learned;
    s.lnq = s.learned ? 0 : 2 * (size_t)s.hs; /* the random sketch's LayerNorm (qk_norm) comes first */
    s.lnk = s.lnq + (s.local ? 2 * (size_t)s.hs : 0);
    s.sk = s.lnk + (s.local ? 2 * (size_t)s.hs : 0);
    s.n = s.sk;
    if (s.learned) s.n += sketch_net_n_params(s.hs, s.r);
    else
        for (int l = 0; l < s.levels; l++) s.n += 2 * (size_t)(l ? s.r : s.hs) * s.r;
    return s;
}

/* Offset of G1 (which 0) or G2 (which 1) of level l, each [in x r]. */
static size_t sketch_off(const Shape *s, int l, int which) {
    size_t off = s->sk;
    for (int k = 0; k < l; k++) off += 2 * (size_t)(k ? s->r : s->hs) * s->r;
    return off + (size_t)which * (l ? s->r : s->hs) * s->r;
}

static const float *sketch_g(const float *params, const Shape *s, int l, int which) {
    return params + sketch_off(s, l, which);
}

static int ps_tensors(const AttnConfig *a, AttnTensor *out) {
    Shape s = shape_of(a);
    int n = 0;
    if (!s.learned) {
        out[n++] = (AttnTensor){"qk_norm.weight", 0, s.hs, 0, 1, 0, NULL};
        out[n++] = (AttnTensor){"qk_norm.bias", (size_t)s.hs, s.hs, 0, 1, 0, NULL};
    }
    if (s.local) {
        /* from a polynomial model, the exact weights' LayerNorm is its qk_norm */
        out[n++] = (AttnTensor){"q_norm_local.weight", s.lnq, s.hs, 0, 1, 0, "qk_norm.weight"};
        out[n++] = (AttnTensor){"q_norm_local.bias", s.lnq + s.hs, s.hs, 0, 1, 0, "qk_norm.bias"};
        out[n++] = (AttnTensor){"k_norm_local.weight", s.lnk, s.hs, 0, 1, 0, "qk_norm.weight"};
        out[n++] = (AttnTensor){"k_norm_local.bias", s.lnk + s.hs, s.hs, 0, 1, 0, "qk_norm.bias"};
    }
    if (s.learned) return n + sketch_net_tensors(s.hs, s.r, s.sk, out + n);
    for (int l = 0; l < s.levels && n + 2 <= ATTN_MAX_TENSORS; l++)
        for (int w = 0; w < 2; w++) {
            out[n] = (AttnTensor){"", sketch_off(&s, l, w), l ? s.r : s.hs, s.r, 0, 0, NULL};
            snprintf(out[n].name, sizeof out[n].name, "sketch.%d.g%d", l, w + 1);
            n++;
        }
    return n;
}

static size_t ps_n_params(const AttnConfig *a) { return shape_of(a).n; }

static size_t ps_n_saved(const AttnConfig *a, int B, int T) { return (size_t)B * a->n_head * T; }

static void ps_init(const AttnConfig *a, float *params, Rng *r) {
    Shape s = shape_of(a);
    for (size_t off = 0; off < s.sk; off += 2 * (size_t)s.hs)
        for (int i = 0; i < s.hs; i++) {
            params[off + i] = 1.0f;
            params[off + s.hs + i] = 0.0f;
        }
    if (s.learned) {
        sketch_net_init(params + s.sk, s.hs, s.r, r);
        return;
    }
    for (size_t i = s.sk; i < s.n; i += 2) { /* N(0, 1), Box-Muller */
        float u1 = rng_float(r), u2 = rng_float(r), rad = sqrtf(-2.0f * logf(1.0f - u1));
        params[i] = rad * cosf(6.2831853f * u2);
        if (i + 1 < s.n) params[i + 1] = rad * sinf(6.2831853f * u2);
    }
}

/* ------------------------------------------------------------------------ */
/* pieces                                                                   */

/* Phi[i] = phi(A[i]) for n rows of r: a_p a_q (p <= q), times sqrt 2 off the diagonal */
static void phi_rows(float *Phi, const float *A, int n, int r, int F) {
    enum { R_SMALL = 64 };
    if (r <= R_SMALL) { /* whole vectors only: a zero-padded copy of the row in, a row with slack out */
        float ab[R_SMALL + VN] = {0}, fb[R_SMALL * (R_SMALL + 1) / 2 + VN];
        for (int i = 0; i < n; i++) {
            memcpy(ab, A + (size_t)i * r, (size_t)r * sizeof *ab);
            for (int p = 0, k = 0; p < r; p++) {
                fb[k++] = ab[p] * ab[p];
                vfn ap = vfn_splat((float)M_SQRT2 * ab[p]);
                for (int q = 0; q < r - p - 1; q += VN) /* may write past this p's pairs: the next p overwrites */
                    vfn_store(fb + k + q, ap * vfn_load(ab + p + 1 + q));
                k += r - p - 1;
            }
            memcpy(Phi + (size_t)i * F, fb, (size_t)F * sizeof *fb);
        }
        return;
    }
    for (int i = 0; i < n; i++) {
        const float *a = A + (size_t)i * r;
        float *f = Phi + (size_t)i * F;
        for (int p = 0, k = 0; p < r; p++) {
            f[k++] = a[p] * a[p];
            float ap = (float)M_SQRT2 * a[p];
            int m = r - p - 1, q = 0; /* f[k + q] = ap a[p + 1 + q], a vector at a time */
            for (; q + VN <= m; q += VN) vfn_store(f + k + q, ap * vfn_load(a + p + 1 + q));
            for (; q < m; q++) f[k + q] = ap * a[p + 1 + q];
            k += m;
        }
    }
}

/* A^T [r][n] of n rows of r */
static void transpose_rows(float *AT, const float *A, int n, int r) {
    for (int i = 0; i < n; i++)
        for (int p = 0; p < r; p++) AT[(size_t)p * n + i] = A[(size_t)i * r + p];
}

/* The same feature-major, PhiT [F][n] (column f holds pair f of every row),
 * for the products that read phi(A) as the left factor: their packing then
 * copies rows instead of transposing them. From AT = A^T [r][n] (written
 * here), each pair is one product of two rows over the n rows of A, in
 * phi_rows' order and with its bits. */
static void phi_cols(float *PhiT, float *AT, const float *A, int n, int r) {
    transpose_rows(AT, A, n, r);
    for (int p = 0, f = 0; p < r; p++) {
        const float *ap = AT + (size_t)p * n;
        float *out = PhiT + (size_t)f++ * n;
        for (int i = 0; i < n; i++) out[i] = ap[i] * ap[i];
        for (int q = p + 1; q < r; q++, f++) {
            const float *aq = AT + (size_t)q * n;
            out = PhiT + (size_t)f * n;
            for (int i = 0; i < n; i++) out[i] = (float)M_SQRT2 * ap[i] * aq[i];
        }
    }
}

/* dA [n x r] += d phi(A) / dA . dPhi, dPhi feature-major (dPhiT [F][n]) and
 * AT = A^T as phi_cols left it: with t = sqrt2 dPhi_pq (q > p),
 * da_p += 2 dPhi_pp a_p + sum_q t a_q and da_q += t a_p, row by row of AT
 * over all n at once; dAT [r][n] is scratch. */
static void dphi_cols(float *dA, float *dAT, const float *dPhiT, const float *AT, int n, int r) {
    memset(dAT, 0, (size_t)r * n * sizeof *dAT);
    for (int p = 0, f = 0; p < r; p++) {
        const float *ap = AT + (size_t)p * n, *g = dPhiT + (size_t)f++ * n;
        float *dp = dAT + (size_t)p * n;
        for (int i = 0; i < n; i++) dp[i] += 2.0f * g[i] * ap[i];
        for (int q = p + 1; q < r; q++, f++) {
            const float *aq = AT + (size_t)q * n;
            float *dq = dAT + (size_t)q * n;
            g = dPhiT + (size_t)f * n;
            for (int i = 0; i < n; i++) {
                float t = (float)M_SQRT2 * g[i];
                dp[i] += t * aq[i];
                dq[i] += t * ap[i];
            }
        }
    }
    for (int i = 0; i < n; i++)
        for (int p = 0; p < r; p++) dA[(size_t)i * r + p] += dAT[(size_t)p * n + i];
}

/* LN of T rows of one head, and into out2 with gain2 if given; stats for backward */
static void ln_head(float *out, float *out2, float *mean, float *rstd, const float *x, size_t stride, int T, int hs,
                    const float *gain, const float *gain2) {
    for (int t = 0; t < T; t++) {
        if (t + TILE_PF < T) tile_prefetch_row(x + (size_t)(t + TILE_PF) * stride, hs, 0);
        ln_row2(out + (size_t)t * hs, out2 ? out2 + (size_t)t * hs : NULL, x + (size_t)t * stride, gain, gain + hs,
                gain2, gain2 ? gain2 + hs : NULL, hs, mean + t, rstd + t);
    }
}

/* The sketch of T rows X [T x hs] through every level; Y holds each level's
 * (X G1, X G2) for backward: Y + 2l T r and Y + (2l+1) T r. Out: M [T x r]. */
static void sketch_rows(float *M, float *Y, const float *X, int T, const float *params, const Shape *s) {
    const float isr = 1.0f / sqrtf((float)s->r);
    const float *in = X;
    for (int l = 0; l < s->levels; l++) {
        int din = l ? s->r : s->hs;
        float *y1 = Y + (size_t)(2 * l) * T * s->r, *y2 = y1 + (size_t)T * s->r;
        sgemm(T, s->r, din, in, din, 0, sketch_g(params, s, l, 0), s->r, 0, y1, s->r, 0);
        sgemm(T, s->r, din, in, din, 0, sketch_g(params, s, l, 1), s->r, 0, y2, s->r, 0);
        float *m = l + 1 < s->levels ? y2 + (size_t)T * s->r : M; /* the next level's input */
        if (l + 1 < s->levels) m = Y + (size_t)(2 * s->levels) * T * s->r + (size_t)l * T * s->r;
        for (size_t i = 0; i < (size_t)T * s->r; i++) m[i] = y1[i] * y2[i] * isr;
        in = m;
    }
}

/* dX [T x hs] = d sketch / dX . dM, through the levels in reverse (G fixed). */
static void sketch_backward(float *dX, float *dM, float *tmp, const float *Y, int T, const float *params,
                            const Shape *s) {
    const float isr = 1.0f / sqrtf((float)s->r);
    for (int l = s->levels - 1; l >= 0; l--) {
        /* forward: m = (x G1) o (x G2) / sqrt(r) */
        int din = l ? s->r : s->hs;
        const float *y1 = Y + (size_t)(2 * l) * T * s->r, *y2 = y1 + (size_t)T * s->r;
        float *dy1 = tmp, *dy2 = tmp + (size_t)T * s->r, *out = l ? dM : dX;
        for (size_t i = 0; i < (size_t)T * s->r; i++) {
            dy1[i] = dM[i] * y2[i] * isr;
            dy2[i] = dM[i] * y1[i] * isr;
        }
        sgemm(T, din, s->r, dy1, s->r, 0, sketch_g(params, s, l, 0), s->r, 1, out, din, 0);
        sgemm(T, din, s->r, dy2, s->r, 0, sketch_g(params, s, l, 1), s->r, 1, out, din, 1);
    }
}

/* [v | 1] rows of one head */
static void vbar_rows(float *Vb, const float *v, size_t stride, int n, int hs) {
    for (int i = 0; i < n; i++) {
        if (i + TILE_PF < n) tile_prefetch_row(v + (size_t)(i + TILE_PF) * stride, hs, 0);
        memcpy(Vb + (size_t)i * (hs + 1), v + (size_t)i * stride, (size_t)hs * sizeof *Vb);
        Vb[(size_t)i * (hs + 1) + hs] = 1.0f;
    }
}

/* The diagonal blocks' own weights (exact, or the sketch's (a_i . c_j)^2):
 * TILE x TILE tiles of the block's lower triangle, as polynomial.c's, all
 * in L1 and without packing. The block's rows are first copied, zero
 * padded to dp = dim and hp = hs rounded up to 16, into Loc's buffers:
 * queries Q and keys K [bp][dp] (bp = b rounded up to TILE), the keys as
 * transposed tiles Kt, and v (V: rows, or Vt: transposed tiles). */
typedef struct {
    int dim, dp, hp, bp;
    float *Q, *K, *Kt, *V, *G, *delta, *dQ, *dK, *dV, *O, *acc, *X, *dX, *P;
} Loc;

/* Lays Loc's buffers out from base (NULL: only counts them); returns the
 * floats they take. */
static size_t loc_carve(Loc *L, const Shape *s, float *base) {
    L->dim = s->local ? s->hs : s->r;
    L->dp = tile_pad(L->dim), L->hp = tile_pad(s->hs), L->bp = (s->b + TILE - 1) / TILE * TILE;
    const size_t bp = (size_t)L->bp, dp = (size_t)L->dp, hp = (size_t)L->hp;
    struct {
        float **p;
        size_t n;
    } parts[] = {
        {&L->Q, bp * dp}, {&L->K, bp * dp}, {&L->Kt, bp * dp}, {&L->dQ, bp * dp},       /* the block's rows */
        {&L->V, bp * hp}, {&L->G, bp * hp}, {&L->delta, bp},                           /* ... of v and g-bar */
        {&L->dK, TILE * dp}, {&L->dV, TILE * hp}, {&L->O, TILE * hp}, {&L->acc, TILE}, /* a key or query tile */
        {&L->X, TILE * TILE}, {&L->dX, TILE * TILE}, {&L->P, TILE * TILE},             /* a tile pair */
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
        *parts[i].p = base ? base + n : NULL;
        n += parts[i].n;
    }
    return n;
}

static size_t loc_floats(const Shape *s) {
    Loc L;
    return loc_carve(&L, s, NULL);
}

/* The block's queries and keys (rows t0 .. t0+n of lq, lk, stride dim) and
 * values (from its [v; 1] rows), v as rows (forward) or transposed tiles
 * (backward). */
static void loc_load(Loc *L, const float *lq, const float *lk, const float *Vb, int n, int hs, int transposed_v) {
    head_load(L->Q, NULL, lq, (size_t)L->dim, n, L->dim, L->dp);
    head_load(L->K, L->Kt, lk, (size_t)L->dim, n, L->dim, L->dp);
    if (transposed_v) head_load(NULL, L->V, Vb, (size_t)hs + 1, n, hs, L->hp);
    else head_load(L->V, NULL, Vb, (size_t)hs + 1, n, hs, L->hp);
}

/* U [n][hs + 1] += sum_{j <= i in the block} w_ij [v_j; 1] */
static void loc_forward(Loc *L, float *U, int n, int hs, int p) {
    int dp = L->dp, hp = L->hp;
    for (int q0 = 0; q0 < n; q0 += TILE) {
        int nq = n - q0 < TILE ? n - q0 : TILE;
        memset(L->O, 0, (size_t)TILE * hp * sizeof *L->O);
        memset(L->acc, 0, TILE * sizeof *L->acc);
        for (int k0 = 0; k0 <= q0; k0 += TILE)
            poly_tile_forward(L->O, L->acc, L->X, L->Q + (size_t)q0 * dp, dp, L->Kt + (size_t)k0 * dp,
                              L->V + (size_t)k0 * hp, nq, n - k0 < TILE ? n - k0 : TILE, q0 - k0, L->dim, hp, p);
        for (int i = 0; i < nq; i++) {
            float *u = U + (size_t)(q0 + i) * (hs + 1);
            for (int d = 0; d < hs; d++) u[d] += L->O[(size_t)i * hp + d];
            u[hs] += L->acc[i];
        }
    }
}

/* Its backward, from g-bar [n][hs + 1] (gb_i = [g_i / D_i; -(g_i . o_i) / D_i],
 * so dw_ij = gb_i . [v_j; 1]): dlq, dlk [n][dim] and dVb [n][hs + 1] (v's part) += */
static void loc_backward(Loc *L, float *dlq, float *dlk, float *dVb, const float *gb, int n, int hs, int p) {
    int dp = L->dp, hp = L->hp, dim = L->dim;
    head_load(L->G, NULL, gb, (size_t)hs + 1, n, hs, hp);
    for (int i = 0; i < n; i++) L->delta[i] = -gb[(size_t)i * (hs + 1) + hs];
    memset(L->dQ, 0, (size_t)L->bp * dp * sizeof *L->dQ);
    for (int k0 = 0; k0 < n; k0 += TILE) {
        int nk = n - k0 < TILE ? n - k0 : TILE;
        memset(L->dK, 0, (size_t)TILE * dp * sizeof *L->dK);
        memset(L->dV, 0, (size_t)TILE * hp * sizeof *L->dV);
        for (int q0 = k0; q0 < n; q0 += TILE)
            poly_tile_backward(L->dQ + (size_t)q0 * dp, L->dK, L->dV, L->X, L->dX, L->P, L->Q + (size_t)q0 * dp,
                               L->K + (size_t)k0 * dp, L->Kt + (size_t)k0 * dp, L->G + (size_t)q0 * hp,
                               L->V + (size_t)k0 * hp, L->delta + q0, NULL, n - q0 < TILE ? n - q0 : TILE, nk,
                               q0 - k0, dim, dp, hs, hp, p);
        for (int j = 0; j < nk; j++) {
            float *dk = dlk + (size_t)(k0 + j) * dim, *dv = dVb + (size_t)(k0 + j) * (hs + 1);
            for (int d = 0; d < dim; d++) dk[d] += L->dK[(size_t)j * dp + d];
            for (int d = 0; d < hs; d++) dv[d] += L->dV[(size_t)j * hp + d];
        }
    }
    for (int i = 0; i < n; i++)
        for (int d = 0; d < dim; d++) dlq[(size_t)i * dim + d] += L->dQ[(size_t)i * dp + d];
}

/* ------------------------------------------------------------------------ */
/* forward and backward                                                     */

/* Scratch of one head: everything the two passes keep for all T rows. */
typedef struct {
    float *Qs, *Ks, *A, *Cc, *Yq, *Yk, *Ql, *Kl, *stats, *tmp;
    float *S, *Phi, *Vb, *U, *AT, *dAT;
    Loc L;
} Work;

/* floats of the sketch's intermediates for T rows, and of its scratch */
static size_t sketch_work(const Shape *s, int T) {
    return s->learned ? sketch_net_work(T, s->hs, s->r) : (size_t)(3 * s->levels) * T * s->r;
}

static size_t sketch_tmp(const Shape *s, int T) {
    return s->learned ? sketch_net_tmp(T, s->hs, s->r) : 2 * (size_t)T * s->r;
}

static float *work_carve(Work *w, const Shape *s, int T, size_t extra) {
    size_t Tr = (size_t)T * s->r, Ths = (size_t)T * s->hs, ny = sketch_work(s, T), bb = (size_t)s->b;
    size_t n = 2 * Ths + 2 * Tr + 2 * ny + (s->local ? 2 * Ths : 0) + 4 * (size_t)T + sketch_tmp(s, T) +
               (size_t)s->F * s->hs1 + bb * s->F + bb * s->hs1 + bb * s->hs1 + 2 * bb * s->r + loc_floats(s) + extra;
    float *p = tile_scratch(n), *base = p;
    w->Qs = p, p += Ths;
    w->Ks = p, p += Ths;
    w->A = p, p += Tr;
    w->Cc = p, p += Tr;
    w->Yq = p, p += ny;
    w->Yk = p, p += ny;
    w->Ql = s->local ? p : NULL, p += s->local ? Ths : 0;
    w->Kl = s->local ? p : NULL, p += s->local ? Ths : 0;
    w->stats = p, p += 4 * (size_t)T;
    w->tmp = p, p += sketch_tmp(s, T);
    w->S = p, p += (size_t)s->F * s->hs1;
    w->Phi = p, p += bb * s->F;
    w->Vb = p, p += bb * s->hs1;
    w->U = p, p += bb * s->hs1;
    w->AT = p, p += bb * s->r;
    w->dAT = p, p += bb * s->r;
    loc_carve(&w->L, s, p);
    return base + (n - extra);
}

/* LN, sketches and local LNs of one head. w->stats: mean and rstd of q's
 * rows, then of k's, for the sketch's LayerNorm and the local block's,
 * which share them (random sketch), or for the local block's alone (the
 * learned sketch has LayerNorms of its own). */
static void prepare_head(Work *w, const Shape *s, const float *params, const float *q, const float *k, size_t stride,
                         int T) {
    float *st = w->stats;
    if (s->learned) { /* the network has LayerNorms of its own: it takes q and k as they are */
        for (int t = 0; t < T; t++) {
            memcpy(w->Qs + (size_t)t * s->hs, q + (size_t)t * stride, (size_t)s->hs * sizeof *w->Qs);
            memcpy(w->Ks + (size_t)t * s->hs, k + (size_t)t * stride, (size_t)s->hs * sizeof *w->Ks);
        }
        sketch_net_forward(w->A, w->Qs, T, s->hs, s->r, params + s->sk, w->Yq, w->tmp);
        sketch_net_forward(w->Cc, w->Ks, T, s->hs, s->r, params + s->sk, w->Yk, w->tmp);
    } else { /* the sketch's LayerNorm, and the local block's of the same rows in the same pass */
        ln_head(w->Qs, w->Ql, st, st + T, q, stride, T, s->hs, params, s->local ? params + s->lnq : NULL);
        ln_head(w->Ks, w->Kl, st + 2 * T, st + 3 * T, k, stride, T, s->hs, params, s->local ? params + s->lnk : NULL);
        sketch_rows(w->A, w->Yq, w->Qs, T, params, s);
        sketch_rows(w->Cc, w->Yk, w->Ks, T, params, s);
        return;
    }
    if (s->local) {
        ln_head(w->Ql, NULL, st, st + T, q, stride, T, s->hs, params + s->lnq, NULL);
        ln_head(w->Kl, NULL, st + 2 * T, st + 3 * T, k, stride, T, s->hs, params + s->lnk, NULL);
    }
}

static void ps_forward(const AttnConfig *a, const float *params, const float *qkv, float *out, float *saved, int B,
                       int T) {
    const Shape s = shape_of(a);
    const int NH = a->n_head, C = a->n_embd, hs = s.hs, hs1 = s.hs1, r = s.r, F = s.F;
    const size_t C3 = 3 * (size_t)C;
    #pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        int bi = bh / NH, h = bh % NH;
        const float *q = qkv + attn_qkv_at(a, bi, h, T), *k = q + C, *v = q + 2 * C;
        float *o = out + attn_out_at(a, bi, h, T), *D = saved + (size_t)bh * T;
        Work w;
        work_carve(&w, &s, T, 0);
        prepare_head(&w, &s, params, q, k, C3, T);
        memset(w.S, 0, (size_t)F * hs1 * sizeof *w.S);
        for (int t0 = 0; t0 < T; t0 += s.b) {
            int n = T - t0 < s.b ? T - t0 : s.b;
            vbar_rows(w.Vb, v + (size_t)t0 * C3, C3, n, hs);
            if (t0 > 0) {
                phi_cols(w.Phi, w.AT, w.A + (size_t)t0 * r, n, r);
                sgemm(n, hs1, F, w.Phi, n, 1, w.S, hs1, 0, w.U, hs1, 0); /* u_i = phi(a_i)^T S */
            } else {
                memset(w.U, 0, (size_t)n * hs1 * sizeof *w.U); /* S is still zero */
            }
            if (s.local) loc_load(&w.L, w.Ql + (size_t)t0 * hs, w.Kl + (size_t)t0 * hs, w.Vb, n, hs, 0);
            else loc_load(&w.L, w.A + (size_t)t0 * r, w.Cc + (size_t)t0 * r, w.Vb, n, hs, 0);
            loc_forward(&w.L, w.U, n, hs, s.local ? s.p : 2); /* + sum_j w_ij [v_j; 1] */
            for (int i = 0; i < n; i++) {
                float Di = 1.0f + w.U[(size_t)i * hs1 + hs], inv = 1.0f / Di;
                for (int d = 0; d < hs; d++) o[(size_t)(t0 + i) * C + d] = w.U[(size_t)i * hs1 + d] * inv;
                D[t0 + i] = Di;
            }
            if (t0 + n == T) break; /* no later block reads S */
            phi_rows(w.Phi, w.Cc + (size_t)t0 * r, n, r, F);
            sgemm(F, hs1, n, w.Phi, F, 1, w.Vb, hs1, 0, w.S, hs1, 1); /* S += phi(C)^T [V 1] */
        }
    }
}

static void ps_backward(const AttnConfig *a, const float *params, const float *qkv, const float *out,
                        const float *saved, const float *dout, float *dqkv, float *dparams, int B, int T) {
    const Shape s = shape_of(a);
    const int NH = a->n_head, C = a->n_embd, hs = s.hs, hs1 = s.hs1, r = s.r, F = s.F;
    const size_t C3 = 3 * (size_t)C, np = s.learned ? s.n : s.sk; /* a random sketch gets no gradient */
    float *part = attn_partials((size_t)B * NH * (np ? np : 1));
    #pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        int bi = bh / NH, h = bh % NH;
        const float *q = qkv + attn_qkv_at(a, bi, h, T), *k = q + C, *v = q + 2 * C;
        const float *o = out + attn_out_at(a, bi, h, T), *g = dout + attn_out_at(a, bi, h, T);
        const float *D = saved + (size_t)bh * T;
        float *dq = dqkv + attn_qkv_at(a, bi, h, T), *dk = dq + C, *dv = dq + 2 * C, *pg = part + bh * np;
        size_t Tr = (size_t)T * r, Ths = (size_t)T * hs, Thp = (size_t)T * hs1, bb = (size_t)s.b;
        size_t extra = 2 * Tr + 2 * Thp + 2 * Ths + 2 * Ths + bb * F;
        Work w;
        float *e = work_carve(&w, &s, T, extra);
        float *dA = e, *dC = dA + Tr, *Gb = dC + Tr, *dVb = Gb + Thp;
        float *dQ = dVb + Thp, *dK = dQ + Ths, *t2 = w.tmp, *dQl = dK + Ths, *dKl = dQl + Ths;
        float *dPhi = dKl + Ths;
        prepare_head(&w, &s, params, q, k, C3, T);
        memset(dA, 0, 2 * Tr * sizeof *dA);
        memset(dVb, 0, Thp * sizeof *dVb);
        memset(dQl, 0, 2 * Ths * sizeof *dQl);
        for (int i = 0; i < T; i++) { /* g-bar_i = [g_i / D_i ; -(g_i . o_i) / D_i] */
            if (i + TILE_PF < T) {
                tile_prefetch_row(g + (size_t)(i + TILE_PF) * C, hs, 0);
                tile_prefetch_row(o + (size_t)(i + TILE_PF) * C, hs, 0);
            }
            float dot = 0.0f, inv = 1.0f / D[i];
            for (int d = 0; d < hs; d++) {
                Gb[(size_t)i * hs1 + d] = g[(size_t)i * C + d] * inv;
                dot += g[(size_t)i * C + d] * o[(size_t)i * C + d];
            }
            Gb[(size_t)i * hs1 + hs] = -dot * inv;
        }
        /* forward scan: the query side through S, and the local blocks */
        memset(w.S, 0, (size_t)F * hs1 * sizeof *w.S);
        for (int t0 = 0; t0 < T; t0 += s.b) {
            int n = T - t0 < s.b ? T - t0 : s.b;
            const float *gb = Gb + (size_t)t0 * hs1;
            vbar_rows(w.Vb, v + (size_t)t0 * C3, C3, n, hs);
            if (t0 > 0) {
                sgemm(F, n, hs1, w.S, hs1, 0, gb, hs1, 1, dPhi, n, 0); /* d phi(a_i) = S g-bar_i, feature-major */
                transpose_rows(w.AT, w.A + (size_t)t0 * r, n, r);
                dphi_cols(dA + (size_t)t0 * r, w.dAT, dPhi, w.AT, n, r);
            }
            if (s.local) {
                loc_load(&w.L, w.Ql + (size_t)t0 * hs, w.Kl + (size_t)t0 * hs, w.Vb, n, hs, 1);
                loc_backward(&w.L, dQl + (size_t)t0 * hs, dKl + (size_t)t0 * hs, dVb + (size_t)t0 * hs1, gb, n, hs, s.p);
            } else {
                loc_load(&w.L, w.A + (size_t)t0 * r, w.Cc + (size_t)t0 * r, w.Vb, n, hs, 1);
                loc_backward(&w.L, dA + (size_t)t0 * r, dC + (size_t)t0 * r, dVb + (size_t)t0 * hs1, gb, n, hs, 2);
            }
            if (t0 + n == T) break;
            phi_rows(w.Phi, w.Cc + (size_t)t0 * r, n, r, F);
            sgemm(F, hs1, n, w.Phi, F, 1, w.Vb, hs1, 0, w.S, hs1, 1);
        }
        /* reverse scan: the key side through R = sum over later blocks of phi(a_i) g-bar_i^T */
        float *R = w.S;
        memset(R, 0, (size_t)F * hs1 * sizeof *R);
        int last = (T - 1) / s.b * s.b;
        for (int t0 = last; t0 >= 0; t0 -= s.b) {
            int n = T - t0 < s.b ? T - t0 : s.b;
            if (t0 < last) {
                vbar_rows(w.Vb, v + (size_t)t0 * C3, C3, n, hs);
                phi_cols(w.Phi, w.AT, w.Cc + (size_t)t0 * r, n, r);
                sgemm(n, hs1, F, w.Phi, n, 1, R, hs1, 0, dVb + (size_t)t0 * hs1, hs1, 1); /* dv-bar_j += phi(c_j)^T R */
                sgemm(F, n, hs1, R, hs1, 0, w.Vb, hs1, 1, dPhi, n, 0); /* d phi(c_j) = R v-bar_j, feature-major */
                dphi_cols(dC + (size_t)t0 * r, w.dAT, dPhi, w.AT, n, r);
            }
            if (t0 == 0) break; /* no earlier block reads R */
            phi_rows(w.Phi, w.A + (size_t)t0 * r, n, r, F);
            sgemm(F, hs1, n, w.Phi, F, 1, Gb + (size_t)t0 * hs1, hs1, 0, R, hs1, 1);
        }
        /* back through the sketches and the LayerNorms */
        if (s.learned) {
            memset(dQ, 0, 2 * Ths * sizeof *dQ);
            sketch_net_backward(dQ, pg + s.sk, dA, w.Qs, T, hs, r, params + s.sk, w.Yq, t2);
            sketch_net_backward(dK, pg + s.sk, dC, w.Ks, T, hs, r, params + s.sk, w.Yk, t2);
        } else {
            sketch_backward(dQ, dA, t2, w.Yq, T, params, &s);
            sketch_backward(dK, dC, t2, w.Yk, T, params, &s);
        }
        const float *st = w.stats;
        for (int t = 0; t < T; t++) {
            size_t ti = (size_t)t;
            if (t + TILE_PF < T) {
                size_t tp = ti + TILE_PF;
                tile_prefetch_row(q + tp * C3, hs, 0);
                tile_prefetch_row(k + tp * C3, hs, 0);
                tile_prefetch_row(dq + tp * C3, hs, 1);
                tile_prefetch_row(dk + tp * C3, hs, 1);
                tile_prefetch_row(dv + tp * C3, hs, 1);
            }
            for (int d = 0; d < hs; d++) dv[ti * C3 + d] += dVb[ti * hs1 + d];
            if (s.learned) { /* gradients of q and k themselves */
                for (int d = 0; d < hs; d++) {
                    dq[ti * C3 + d] += dQ[ti * hs + d];
                    dk[ti * C3 + d] += dK[ti * hs + d];
                }
            } else {
                ln_row_backward(dq + ti * C3, pg, pg + hs, dQ + ti * hs, q + ti * C3, params, st[t], st[T + t], hs);
                ln_row_backward(dk + ti * C3, pg, pg + hs, dK + ti * hs, k + ti * C3, params, st[2 * T + t],
                                st[3 * T + t], hs);
            }
            if (s.local) {
                ln_row_backward(dq + ti * C3, pg + s.lnq, pg + s.lnq + hs, dQl + ti * hs, q + ti * C3, params + s.lnq,
                                st[t], st[T + t], hs);
                ln_row_backward(dk + ti * C3, pg + s.lnk, pg + s.lnk + hs, dKl + ti * hs, k + ti * C3, params + s.lnk,
                                st[2 * T + t], st[3 * T + t], hs);
            }
        }
    }
    for (int bh = 0; bh < B * NH; bh++)
        for (size_t i = 0; i < np; i++) dparams[i] += part[bh * np + i];
}

/* ------------------------------------------------------------------------ */
/* decoding: per head, S and the current block's c, local k^ and v       */

static size_t head_state(const Shape *s) {
    return (size_t)s->F * s->hs1 + (size_t)s->b * (s->r + (s->local ? s->hs : 0) + s->hs);
}

static size_t ps_n_state(const AttnConfig *a, int T) {
    Shape s = shape_of(a);
    return (size_t)a->n_head * head_state(&s);
}

/* The sketch of one vector (levels applied in turn). */
static void sketch_one(float *m, const float *x, const float *params, const Shape *s, float *tmp) {
    const float isr = 1.0f / sqrtf((float)s->r);
    memcpy(tmp, x, (size_t)s->hs * sizeof *tmp);
    for (int l = 0; l < s->levels; l++) {
        int din = l ? s->r : s->hs;
        const float *g1 = sketch_g(params, s, l, 0), *g2 = sketch_g(params, s, l, 1);
        for (int j = 0; j < s->r; j++) {
            float y1 = 0.0f, y2 = 0.0f;
            for (int i = 0; i < din; i++) {
                y1 += tmp[i] * g1[(size_t)i * s->r + j];
                y2 += tmp[i] * g2[(size_t)i * s->r + j];
            }
            m[j] = y1 * y2 * isr;
        }
        memcpy(tmp, m, (size_t)s->r * sizeof *tmp);
    }
}

/* a_t or c_t of one raw q or k vector, with the LayerNorm the sketch needs */
static void feature_one(float *out, const float *x, const float *params, const Shape *s, float *buf) {
    if (s->learned) {
        float *work = buf, *tmp = work + sketch_net_work(1, s->hs, s->r);
        sketch_net_forward(out, x, 1, s->hs, s->r, params + s->sk, work, tmp);
        return;
    }
    ln_row(buf, x, params, params + s->hs, s->hs, NULL, NULL);
    sketch_one(out, buf, params, s, buf + s->hs);
}

/* One token through every head, the heads shared out over the threads. At
 * the start of a block the previous block is folded into S with the
 * training's own product, S += phi(C)^T [V 1] (phi_rows and sgemm). */
static void ps_decode(const AttnConfig *a, const float *params, const float *qkv_t, float *state, int t,
                      float *out_t) {
    const Shape s = shape_of(a);
    const int C = a->n_embd, hs = s.hs, hs1 = s.hs1, r = s.r, F = s.F, row = r + (s.local ? hs : 0) + hs;
    const int slot = t % s.b;
    const size_t nbuf = 2 * (size_t)(hs + r) + sketch_net_work(1, hs, r) + sketch_net_tmp(1, hs, r);
    const size_t bb = (size_t)s.b;
    #pragma omp parallel for schedule(static)
    for (int h = 0; h < a->n_head; h++) {
        float *buf = tile_scratch((size_t)F + 2 * (size_t)(hs + r) + bb + (size_t)hs1 + nbuf + bb * (F + r + hs1));
        float *phi = buf, *am = phi + F, *ql = am + hs + r, *wt = ql + hs + r, *u = wt + bb, *fb = u + hs1;
        float *Phi = fb + nbuf, *Cb = Phi + bb * F, *Vb = Cb + bb * r;
        float *S = state + (size_t)h * head_state(&s), *blk = S + (size_t)F * hs1;
        const float *q = qkv_t + h * hs, *k = qkv_t + C + h * hs, *v = qkv_t + 2 * C + h * hs;
        if (t == 0) memset(S, 0, (size_t)F * hs1 * sizeof *S);
        if (slot == 0 && t > 0) { /* a block ended: fold it into S */
            for (int j = 0; j < s.b; j++) {
                const float *bj = blk + (size_t)j * row;
                memcpy(Cb + (size_t)j * r, bj, (size_t)r * sizeof *Cb);
                memcpy(Vb + (size_t)j * hs1, bj + row - hs, (size_t)hs * sizeof *Vb);
                Vb[(size_t)j * hs1 + hs] = 1.0f;
            }
            phi_rows(Phi, Cb, s.b, r, F);
            sgemm(F, hs1, s.b, Phi, F, 1, Vb, hs1, 0, S, hs1, 1);
        }
        float *mine = blk + (size_t)slot * row;
        feature_one(mine, k, params, &s, fb); /* c_t */
        if (s.local) ln_row(mine + r, k, params + s.lnk, params + s.lnk + hs, hs, NULL, NULL);
        memcpy(mine + row - hs, v, (size_t)hs * sizeof *mine);
        if (!out_t) continue;
        feature_one(am, q, params, &s, fb); /* a_t */
        if (s.local) ln_row(ql, q, params + s.lnq, params + s.lnq + hs, hs, NULL, NULL);
        memset(u, 0, (size_t)hs1 * sizeof *u);
        phi_rows(phi, am, 1, r, F);
        for (int f = 0; f < F; f++)
            for (int d = 0; d < hs1; d++) u[d] += phi[f] * S[(size_t)f * hs1 + d];
        for (int j = 0; j <= slot; j++) {
            const float *bj = blk + (size_t)j * row, *x = s.local ? ql : am, *y = s.local ? bj + r : bj;
            int dim = s.local ? hs : r;
            wt[j] = powi(dot16(x, y, dim), s.local ? s.p : 2);
            for (int d = 0; d < hs; d++) u[d] += wt[j] * bj[row - hs + d];
            u[hs] += wt[j];
        }
        for (int d = 0; d < hs; d++) out_t[h * hs + d] = u[d] / (1.0f + u[hs]);
    }
}

/* Per token and head: the sketches of q and k (2 FLOPs a weight), phi(a)^T S
 * and the update of S (F x (hs+1) each), and the local block's weights and
 * w.[v; 1] over b/2 keys on average: flat in T. */
static double ps_flops(const AttnConfig *a, int T) {
    const Shape s = shape_of(a);
    double sketch = 0.0;
    if (s.learned) sketch = 2.0 * sketch_net_n_params(s.hs, s.r);
    else
        for (int l = 0; l < s.levels; l++) sketch += 2.0 * 2.0 * (l ? s.r : s.hs) * s.r;
    double prefix = 2.0 * 2.0 * s.F * s.hs1;
    double local = 2.0 * (s.b / 2.0) * ((s.local ? s.hs : s.r) + s.hs1);
    return a->n_head * (2.0 * sketch + prefix + local);
}

const AttentionKind attention_polysketch = {
    "polysketch", ps_tensors, ps_n_params, ps_n_saved, ps_init, ps_forward, ps_backward, ps_n_state, ps_decode,
    ps_flops,
};
