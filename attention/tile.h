/* Dense tile products shared by the exact attention kinds (and
 * PolySketch's diagonal blocks).
 *
 * Tiles are row-major with widths padded to multiples of 16 (TILE = 64 keys
 * or queries; head dimension rounded up to HP = 16k), padding zero-filled, so
 * every product runs the same vector code. tile_mm is a small GEMM with an
 * 8 x 32 register block (16 accumulators of 16 floats) and A read with any
 * row and k stride, which covers A, A^T and the products of backward. */
#ifndef ATTENTION_TILE_H
#define ATTENTION_TILE_H

#include <stdlib.h>
#include <string.h>

#include "../common/err.h"
#include "../common/vmath.h"

#define TILE 64 /* query and key block size */

static inline int tile_pad(int hs) { return (hs + 15) / 16 * 16; }

/* Rows of one head lie 3C floats apart in qkv: the hardware prefetcher does
 * not run ahead of such a walk, so the row TILE_PF ahead is requested by
 * hand (a prefetch per cache line; write: for a row about to be updated). */
#define TILE_PF 8
static inline void tile_prefetch_row(const float *x, int hs, int write) {
    for (int d = 0; d < hs; d += 16) {
        if (write) __builtin_prefetch(x + d, 1);
        else __builtin_prefetch(x + d, 0);
    }
}

/* dst[i][0:hp] = rows t0+i of one head of a [T, stride] tensor (zero padded
 * to hp, rows beyond n zeroed up to TILE); dstT, if given, gets the
 * transpose dstT[d][i] of width TILE. */
static inline void tile_load(float *dst, float *dstT, const float *src, size_t stride, int t0, int n, int hs,
                             int hp) {
    for (int i = 0; i < n && i < TILE_PF; i++) tile_prefetch_row(src + (size_t)(t0 + i) * stride, hs, 0);
    if (dst) {
        for (int i = 0; i < n; i++) {
            if (i + TILE_PF < n) tile_prefetch_row(src + (size_t)(t0 + i + TILE_PF) * stride, hs, 0);
            memcpy(dst + (size_t)i * hp, src + (size_t)(t0 + i) * stride, (size_t)hs * sizeof *dst);
            memset(dst + (size_t)i * hp + hs, 0, (size_t)(hp - hs) * sizeof *dst);
        }
        memset(dst + (size_t)n * hp, 0, (size_t)(TILE - n) * hp * sizeof *dst);
    }
    if (dstT) {
        memset(dstT, 0, (size_t)hp * TILE * sizeof *dstT);
        for (int i = 0; i < n; i++) {
            if (!dst && i + TILE_PF < n) tile_prefetch_row(src + (size_t)(t0 + i + TILE_PF) * stride, hs, 0);
            const float *s = src + (size_t)(t0 + i) * stride;
            for (int d = 0; d < hs; d++) dstT[(size_t)d * TILE + i] = s[d];
        }
    }
}

/* the lane numbers 0, 1, ..., VN - 1 */
static inline vin tile_iota(void) {
    static const int lanes[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    vin v;
    memcpy(&v, lanes, sizeof v);
    return v;
}

/* v (keys j to j + VN - 1) with its lanes at j + l >= n zeroed (keys past a
 * row's causal limit) */
static inline vfn tile_mask(vfn v, int j, int n) {
    return j + VN > n ? vfn_select(tile_iota() + j < n, v, (vfn){0}) : v;
}

/* Lane i of the result is the sum (max = 0) or the largest (max = 1) of
 * v[i]'s 16 lanes: sixteen horizontal reductions at once, by a tree of
 * shuffles that at each stage folds the halves of each block of lanes of
 * two vectors into one (16 vectors, then 8, 4, 2, 1), instead of a chain
 * of 15 dependent scalar operations per vector. v is overwritten. */
#define TILE_FOLD(w, i, xs, ys)                                                                  \
    do {                                                                                         \
        vf16 x_ = __builtin_shufflevector(v[i], v[(i) + (w)], xs);                               \
        vf16 y_ = __builtin_shufflevector(v[i], v[(i) + (w)], ys);                               \
        v[i] = max ? vf16_select(x_ > y_, x_, y_) : x_ + y_;                                     \
    } while (0)
#define TILE_X8 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#define TILE_Y8 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define TILE_X4 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27
#define TILE_Y4 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31
#define TILE_X2 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29
#define TILE_Y2 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31
#define TILE_X1 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30
#define TILE_Y1 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31
static inline vf16 tile_reduce16(vf16 v[16], int max) {
    for (int i = 0; i < 8; i++) TILE_FOLD(8, i, TILE_X8, TILE_Y8); /* lanes 0-7: v[i]'s, 8-15: v[i + 8]'s */
    for (int i = 0; i < 4; i++) TILE_FOLD(4, i, TILE_X4, TILE_Y4);
    for (int i = 0; i < 2; i++) TILE_FOLD(2, i, TILE_X2, TILE_Y2);
    TILE_FOLD(1, 0, TILE_X1, TILE_Y1);
    return v[0];
}

/* The same for 16 rows' partials of the build's width: on AVX-512 the tree
 * above; narrower builds reduce each row's VN lanes in order. */
static inline vf16 tile_reduce_rows(vfn v[16], int max) {
#if VN == 16
    return tile_reduce16(v, max);
#else
    float r[16];
    for (int i = 0; i < 16; i++) {
        float l[VN], x;
        vfn_store(l, v[i]);
        x = l[0];
        for (int k = 1; k < VN; k++) x = max ? (l[k] > x ? l[k] : x) : x + l[k];
        r[i] = x;
    }
    return vf16_load(r);
#endif
}

/* The same for a whole head at once, Tp = T rounded up to TILE, zero
 * padded; loaded once and read by every tile: dst [Tp][hp], and/or dstT as
 * Tp / TILE transposed tiles one after another, tile t0 at dstT + t0 * hp
 * ([hp][TILE]: a whole-head [hp][Tp] would put a tile's rows 4 Tp bytes
 * apart, at T = 2048 all in one L1 set). */
static inline void head_load(float *dst, float *dstT, const float *src, size_t stride, int T, int hs, int hp) {
    int Tp = (T + TILE - 1) / TILE * TILE;
    for (int t0 = 0; t0 < Tp; t0 += TILE) {
        int n = T - t0 < TILE ? T - t0 : TILE;
        tile_load(dst ? dst + (size_t)t0 * hp : NULL, dstT ? dstT + (size_t)t0 * hp : NULL, src, stride, t0, n, hs,
                  hp);
    }
}

/* An 8 x 32 block of C (+)= A(r, k) B[k][0:32] over k < K: 16 accumulators,
 * two loads of B and eight broadcasts of A per k (a 4 x 64 block needs four
 * loads of B per k, which the compiler folds into the FMAs and reloads).
 * The loop over k unrolled 4 times, as matmul.c's tile: on x2 a softmax
 * attention layer (T = 2048, 4 heads) took 0.94-0.97x its time, PolySketch's
 * (12 heads, r = 32, local exact) 0.93x; the same bits. */
/* With rowmax (the softmax forward's scores), also rowmax[i] = the lanewise
 * maximum of rowmax[i] and row i's two vectors of C, taken from the
 * registers: the same values as max_row reading C back. Always inlined, so
 * that tile_block8x32 (rowmax NULL) compiles as it did without it. */
static inline __attribute__((always_inline)) void tile_block8x32_max(float *restrict C, int ldc,
                                                                     const float *restrict A, int ars, int aks,
                                                                     const float *restrict B, int ldb, int K,
                                                                     int accumulate, vfn *rowmax) {
#ifndef __AVX512F__
    /* narrower registers: pieces of 4 rows x 2 vectors, 8 accumulators (a
     * 16-float type there compiles to stack traffic, see vmath.h) */
    for (int r0 = 0; r0 < 8; r0 += 4)
        for (int j0 = 0; j0 < 32; j0 += 2 * VN) {
            vfn c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};
            const float *a0 = A + (size_t)r0 * ars, *a1 = a0 + ars, *a2 = a1 + ars, *a3 = a2 + ars;
            for (int k = 0; k < K; k++) {
                size_t ak = (size_t)k * aks;
                vfn b0 = vfn_load(B + (size_t)k * ldb + j0), b1 = vfn_load(B + (size_t)k * ldb + j0 + VN);
                c00 += a0[ak] * b0; c01 += a0[ak] * b1;
                c10 += a1[ak] * b0; c11 += a1[ak] * b1;
                c20 += a2[ak] * b0; c21 += a2[ak] * b1;
                c30 += a3[ak] * b0; c31 += a3[ak] * b1;
            }
            vfn acc[4][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};
            for (int i = 0; i < 4; i++)
                for (int h = 0; h < 2; h++) {
                    float *c = C + (size_t)(r0 + i) * ldc + j0 + h * VN;
                    vfn_store(c, accumulate ? vfn_load(c) + acc[i][h] : acc[i][h]);
                    if (rowmax) rowmax[r0 + i] = vfn_select(acc[i][h] > rowmax[r0 + i], acc[i][h], rowmax[r0 + i]);
                }
        }
#else
    vf16 c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};
    vf16 c40 = {0}, c41 = {0}, c50 = {0}, c51 = {0}, c60 = {0}, c61 = {0}, c70 = {0}, c71 = {0};
    const float *a0 = A, *a1 = A + ars, *a2 = A + 2 * (size_t)ars, *a3 = A + 3 * (size_t)ars;
    const float *a4 = A + 4 * (size_t)ars, *a5 = A + 5 * (size_t)ars, *a6 = A + 6 * (size_t)ars, *a7 = A + 7 * (size_t)ars;
    #pragma GCC unroll 4
    for (int k = 0; k < K; k++) {
        size_t ak = (size_t)k * aks;
        vf16 b0 = vf16_load(B + (size_t)k * ldb), b1 = vf16_load(B + (size_t)k * ldb + 16);
        c00 += a0[ak] * b0; c01 += a0[ak] * b1;
        c10 += a1[ak] * b0; c11 += a1[ak] * b1;
        c20 += a2[ak] * b0; c21 += a2[ak] * b1;
        c30 += a3[ak] * b0; c31 += a3[ak] * b1;
        c40 += a4[ak] * b0; c41 += a4[ak] * b1;
        c50 += a5[ak] * b0; c51 += a5[ak] * b1;
        c60 += a6[ak] * b0; c61 += a6[ak] * b1;
        c70 += a7[ak] * b0; c71 += a7[ak] * b1;
    }
    vf16 acc[8][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}, {c60, c61}, {c70, c71}};
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 2; j++) {
            float *c = C + (size_t)i * ldc + 16 * j;
            vf16_store(c, accumulate ? vf16_load(c) + acc[i][j] : acc[i][j]);
            if (rowmax) rowmax[i] = vf16_select(acc[i][j] > rowmax[i], acc[i][j], rowmax[i]);
        }
#endif
}

static inline void tile_block8x32(float *restrict C, int ldc, const float *restrict A, int ars, int aks,
                                  const float *restrict B, int ldb, int K, int accumulate) {
    tile_block8x32_max(C, ldc, A, ars, aks, B, ldb, K, accumulate, NULL);
}

/* C[r][0:cols] (+)= sum_k A(r, k) B[k][0:cols] for r < rows, k < K, with
 * A(r, k) = A[r * ars + k * aks]; cols a multiple of 16. 8 x 32 blocks,
 * then what is left one row and one vector of columns at a time. */
static inline void tile_mm(float *restrict C, int ldc, const float *restrict A, int ars, int aks,
                           const float *restrict B, int ldb, int rows, int K, int cols, int accumulate) {
    int c32 = cols / 32 * 32, r8 = rows / 8 * 8;
    for (int c0 = 0; c0 < c32; c0 += 32)
        for (int r = 0; r < r8; r += 8)
            tile_block8x32(C + (size_t)r * ldc + c0, ldc, A + (size_t)r * ars, ars, aks, B + c0, ldb, K, accumulate);
    for (int r = 0; r < rows; r++)
        for (int c0 = r < r8 ? c32 : 0; c0 < cols; c0 += VN) {
            float *c = C + (size_t)r * ldc + c0;
            vfn acc = accumulate ? vfn_load(c) : (vfn){0};
            const float *a = A + (size_t)r * ars, *b = B + c0;
            for (int k = 0; k < K; k++) acc += a[(size_t)k * aks] * vfn_load(b + (size_t)k * ldb);
            vfn_store(c, acc);
        }
}

/* Causal tiles: key j is visible to query row i when j <= i + diag (diag =
 * q0 - k0, a multiple of TILE). Off the diagonal (diag > 0) every key is;
 * on it (diag = 0) the rows g to g + ng - 1 see keys j < g + ng only, so
 * the products there are taken in groups of TILE_GROUP rows (or keys) over
 * just those: the rest of the tile is masked, exact zeros that change no
 * sum, so the bits are the same. The keys such a group of rows sees: */
#define TILE_GROUP 16
static inline int tile_seen(int diag, int g, int ng, int nk) { return !diag && g + ng < nk ? g + ng : nk; }

/* The rows (or keys) from g of n taken together: all of them off the
 * diagonal, TILE_GROUP on it */
static inline int tile_group(int diag, int g, int n) { return diag || n - g < TILE_GROUP ? n - g : TILE_GROUP; }

/* x^p on VN lanes: the same products in the same order as lnorm.h's powi */
static inline vfn vfn_powi(vfn x, int p) {
    vfn r = vfn_splat(1.0f);
    for (; p > 0; p >>= 1, x *= x)
        if (p & 1) r *= x;
    return r;
}

/* Polynomial weights over one query tile and one key tile, the exact
 * attention of polynomial.c and PolySketch's local blocks: w_ij = x_ij^p,
 * x_ij = q_i . k_j over dim, rows i < nq, keys j < nk, key j visible to row
 * i when j <= i + diag (diag = q0 - k0 >= 0: causal). Q is [nq][ldq], Kt the
 * key tile transposed [dim][TILE], V [TILE][hp]; X is TILE x TILE scratch.
 * O[i][0:hp] += sum_j w_ij v_j and acc[i] += sum_j w_ij. */
static inline void poly_tile_forward(float *O, float *acc, float *X, const float *Q, int ldq, const float *Kt,
                                     const float *V, int nq, int nk, int diag, int dim, int hp, int p) {
    for (int g = 0, ng; g < nq; g += ng) { /* see tile_seen */
        ng = tile_group(diag, g, nq);
        int seen = tile_seen(diag, g, ng, nk);
        tile_mm(X + (size_t)g * TILE, TILE, Q + (size_t)g * ldq, ldq, 1, Kt, TILE, ng, dim, tile_pad(seen), 0);
        for (int i = g; i < g + ng; i++) {
            float *x = X + (size_t)i * TILE;
            int n = diag + i + 1 < nk ? diag + i + 1 : nk;
            vfn sum = {0};
            for (int j = 0; j < TILE; j += VN) {
                vfn w = j < n ? tile_mask(vfn_powi(vfn_load(x + j), p), j, n) : (vfn){0};
                vfn_store(x + j, w);
                sum += w;
            }
            acc[i] += vfn_lanes_sum(sum);
        }
        tile_mm(O + (size_t)g * hp, hp, X + (size_t)g * TILE, TILE, 1, V, hp, ng, seen, hp, 1);
    }
}

/* Its backward, with o_i = sum_j w_ij v_j / D_i and the loss's gradient
 * dw_ij = (g_i . v_j - delta_i) / D_i (D NULL: D_i = 1): dx_ij = p x^(p-1)
 * dw_ij, then dV[j] += sum_i w_ij / D_i g_i, dK[j] += sum_i dx_ij q_i and
 * dQ[i] += sum_j dx_ij k_j. Q, K, dQ, dK are rows of stride dp (dim used),
 * G and dV of stride hp (hs used), Kt [dim][TILE] and Vt [hs][TILE] the key
 * tile's keys and values transposed; delta and D indexed by query row i of
 * the tile. X, dX, P: TILE x TILE scratch. */
static inline void poly_tile_backward(float *dQ, float *dK, float *dV, float *X, float *dX, float *P, const float *Q,
                                      const float *K, const float *Kt, const float *G, const float *Vt,
                                      const float *delta, const float *D, int nq, int nk, int diag, int dim, int dp,
                                      int hs, int hp, int p) {
    for (int g = 0, ng; g < nq; g += ng) { /* see tile_seen */
        ng = tile_group(diag, g, nq);
        int cols = tile_pad(tile_seen(diag, g, ng, nk));
        tile_mm(X + (size_t)g * TILE, TILE, Q + (size_t)g * dp, dp, 1, Kt, TILE, ng, dim, cols, 0); /* x_ij */
        tile_mm(dX + (size_t)g * TILE, TILE, G + (size_t)g * hp, hp, 1, Vt, TILE, ng, hs, cols, 0); /* g_i . v_j */
        for (int i = g; i < g + ng; i++) {
            float *x = X + (size_t)i * TILE, *dx = dX + (size_t)i * TILE, *pr = P + (size_t)i * TILE;
            float Dinv = D ? 1.0f / D[i] : 1.0f, di = delta[i];
            int n = diag + i + 1 < nk ? diag + i + 1 : nk;
            for (int j = 0; j < cols; j += VN) {
                vfn xj = vfn_load(x + j), xp1 = vfn_powi(xj, p - 1);
                vfn dw = (vfn_load(dx + j) - di) * Dinv;
                vfn_store(pr + j, tile_mask(xp1 * xj * Dinv, j, n));      /* w_ij / D_i */
                vfn_store(dx + j, tile_mask((float)p * xp1 * dw, j, n)); /* dL/dx_ij */
            }
        }
    }
    for (int g = 0, ng; g < nk; g += ng) { /* keys j.. take queries i >= j only, on the diagonal */
        ng = tile_group(diag, g, nk);
        int i0 = diag ? 0 : g;
        tile_mm(dV + (size_t)g * hp, hp, P + (size_t)i0 * TILE + g, 1, TILE, G + (size_t)i0 * hp, hp, ng, nq - i0,
                hp, 1); /* dv_j += sum_i w_ij / D_i g_i */
        tile_mm(dK + (size_t)g * dp, dp, dX + (size_t)i0 * TILE + g, 1, TILE, Q + (size_t)i0 * dp, dp, ng, nq - i0,
                dp, 1); /* dk_j += sum_i dx_ij q_i */
    }
    for (int g = 0, ng; g < nq; g += ng) {
        ng = tile_group(diag, g, nq);
        tile_mm(dQ + (size_t)g * dp, dp, dX + (size_t)g * TILE, TILE, 1, K, dp, ng, tile_seen(diag, g, ng, nk), dp,
                1); /* dq_i += sum_j dx_ij k_j */
    }
}

/* Parameter-gradient partials: n zeroed floats shared by the threads (one
 * row per batch and head, summed afterwards in order). Called outside
 * parallel regions; grown when needed, never freed. */
static inline float *attn_partials(size_t n) {
    static float *buf;
    static size_t cap;
    return memset(scratch_floats(&buf, &cap, n), 0, n * sizeof *buf);
}

/* Per-thread scratch of at least n floats, allocated once and kept. */
static inline float *tile_scratch(size_t n) {
    static _Thread_local float *buf;
    static _Thread_local size_t cap;
    return scratch_floats(&buf, &cap, n);
}

#endif
