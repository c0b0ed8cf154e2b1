/* Dense tile products shared by the exact attention kinds.
 *
 * Tiles are row-major with widths padded to multiples of 16 (TILE = 64 keys
 * or queries; head dimension rounded up to HP = 16k), padding zero-filled, so
 * every product runs the same vector code. tile_mm is a small GEMM with a
 * 4 x 64 register block (16 accumulators of 16 floats) and A read with any
 * row and k stride, which covers A, A^T and the products of backward. */
#ifndef ATTENTION_TILE_H
#define ATTENTION_TILE_H

#include <stdlib.h>
#include <string.h>

#include "../common/vmath.h"

#define TILE 64 /* query and key block size */

static inline int tile_pad(int hs) { return (hs + 15) / 16 * 16; }

/* dst[i][0:hp] = rows t0+i of one head of a [T, stride] tensor (zero padded
 * to hp, rows beyond n zeroed up to TILE); dstT, if given, gets the
 * transpose dstT[d][i] of width TILE. */
static inline void tile_load(float *dst, float *dstT, const float *src, size_t stride, int t0, int n, int hs,
                             int hp) {
    if (dst) {
        for (int i = 0; i < n; i++) {
            memcpy(dst + (size_t)i * hp, src + (size_t)(t0 + i) * stride, (size_t)hs * sizeof *dst);
            memset(dst + (size_t)i * hp + hs, 0, (size_t)(hp - hs) * sizeof *dst);
        }
        memset(dst + (size_t)n * hp, 0, (size_t)(TILE - n) * hp * sizeof *dst);
    }
    if (dstT) {
        memset(dstT, 0, (size_t)hp * TILE * sizeof *dstT);
        for (int i = 0; i < n; i++) {
            const float *s = src + (size_t)(t0 + i) * stride;
            for (int d = 0; d < hs; d++) dstT[(size_t)d * TILE + i] = s[d];
        }
    }
}

/* C[r][0:cols] (+)= sum_k A(r, k) B[k][0:cols] for r < rows, k < K, with
 * A(r, k) = A[r * ars + k * aks]; cols a multiple of 16. */
static inline void tile_mm(float *restrict C, int ldc, const float *restrict A, int ars, int aks,
                           const float *restrict B, int ldb, int rows, int K, int cols, int accumulate) {
    for (int c0 = 0; c0 < cols; c0 += 64) {
        int nv = cols - c0 >= 64 ? 4 : (cols - c0) / 16;
        int r = 0;
        if (nv == 4) {
            for (; r + 4 <= rows; r += 4) {
                vf16 acc[4][4];
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++)
                        acc[i][j] = accumulate ? vf16_load(C + (size_t)(r + i) * ldc + c0 + 16 * j) : (vf16){0};
                const float *a = A + (size_t)r * ars, *b = B + c0;
                for (int k = 0; k < K; k++, a += aks, b += ldb) {
                    vf16 b0 = vf16_load(b), b1 = vf16_load(b + 16), b2 = vf16_load(b + 32), b3 = vf16_load(b + 48);
                    #pragma GCC unroll 4
                    for (int i = 0; i < 4; i++) {
                        float ai = a[(size_t)i * ars];
                        acc[i][0] += ai * b0;
                        acc[i][1] += ai * b1;
                        acc[i][2] += ai * b2;
                        acc[i][3] += ai * b3;
                    }
                }
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++) vf16_store(C + (size_t)(r + i) * ldc + c0 + 16 * j, acc[i][j]);
            }
        }
        for (; r < rows; r++) { /* one row at a time: leftover rows, narrow tiles */
            for (int j = 0; j < nv; j++) {
                float *c = C + (size_t)r * ldc + c0 + 16 * j;
                vf16 acc = accumulate ? vf16_load(c) : (vf16){0};
                const float *a = A + (size_t)r * ars, *b = B + c0 + 16 * j;
                for (int k = 0; k < K; k++) acc += a[(size_t)k * aks] * vf16_load(b + (size_t)k * ldb);
                vf16_store(c, acc);
            }
        }
    }
}

/* Parameter-gradient partials: n zeroed floats shared by the threads (one
 * row per batch and head, summed afterwards in order). Called outside
 * parallel regions; grown when needed, never freed. */
static inline float *attn_partials(size_t n) {
    static float *buf;
    static size_t cap;
    if (n > cap) {
        free(buf);
        buf = malloc(n * sizeof *buf);
        if (!buf) abort();
        cap = n;
    }
    memset(buf, 0, n * sizeof *buf);
    return buf;
}

/* Per-thread scratch of at least n floats, allocated once and kept. */
static inline float *tile_scratch(size_t n) {
    static _Thread_local float *buf;
    static _Thread_local size_t cap;
    if (n > cap) {
        free(buf);
        buf = aligned_alloc(64, ((n * sizeof *buf + 63) / 64) * 64);
        if (!buf) abort();
        cap = n;
    }
    return buf;
}

#endif
