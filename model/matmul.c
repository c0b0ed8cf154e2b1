/* Packed, blocked SGEMM. See matmul.h.
 *
 * Loop structure (BLIS): each thread owns a region of the output; for each
 * NC column block and KC slice it packs B (KC x NC, into NR-column panels)
 * once, then for each MC row block packs A (MC x KC, into MR-row panels) and
 * runs the micro-kernel over every MR x NR tile: one B panel (KC x NR =
 * 32 KB) stays in L1 while the A panels stream from L2. Packing handles
 * transposition and zero-pads the edges. */
#include "matmul.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"
#include "../common/vmath.h"

#define MR 8
#define NR 32
#define KC 256
#define MC 128
#define NC 512

typedef vf16 v16;
#define load16 vf16_load
#define store16 vf16_store

/* c[MR x NR] (+)= a (MR-row panel, kc deep) . b (NR-column panel). */
static void kernel_8x32(int kc, const float *restrict a, const float *restrict b, float *restrict c,
                        int ldc, int accumulate) {
    v16 c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};
    v16 c40 = {0}, c41 = {0}, c50 = {0}, c51 = {0}, c60 = {0}, c61 = {0}, c70 = {0}, c71 = {0};
    for (int k = 0; k < kc; k++, a += MR, b += NR) {
        v16 b0 = load16(b), b1 = load16(b + 16);
        c00 += a[0] * b0; c01 += a[0] * b1;
        c10 += a[1] * b0; c11 += a[1] * b1;
        c20 += a[2] * b0; c21 += a[2] * b1;
        c30 += a[3] * b0; c31 += a[3] * b1;
        c40 += a[4] * b0; c41 += a[4] * b1;
        c50 += a[5] * b0; c51 += a[5] * b1;
        c60 += a[6] * b0; c61 += a[6] * b1;
        c70 += a[7] * b0; c71 += a[7] * b1;
    }
    v16 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31},
                      {c40, c41}, {c50, c51}, {c60, c61}, {c70, c71}};
    for (int r = 0; r < MR; r++) {
        float *row = c + (size_t)r * ldc;
        if (accumulate) {
            store16(row, load16(row) + acc[r][0]);
            store16(row + 16, load16(row + 16) + acc[r][1]);
        } else {
            store16(row, acc[r][0]);
            store16(row + 16, acc[r][1]);
        }
    }
}

/* Packs A[i0:i0+mc, p0:p0+kc] into MR-row panels: out[panel][k][r]. */
static void pack_a(float *out, const float *A, int lda, int transA, int i0, int mc, int p0, int kc) {
    for (int ip = 0; ip < mc; ip += MR, out += MR * kc) {
        int rows = mc - ip < MR ? mc - ip : MR;
        if (transA) {
            for (int k = 0; k < kc; k++) {
                const float *src = A + (size_t)(p0 + k) * lda + i0 + ip;
                for (int r = 0; r < rows; r++) out[k * MR + r] = src[r];
                for (int r = rows; r < MR; r++) out[k * MR + r] = 0.0f;
            }
        } else {
            for (int r = 0; r < rows; r++) {
                const float *src = A + (size_t)(i0 + ip + r) * lda + p0;
                for (int k = 0; k < kc; k++) out[k * MR + r] = src[k];
            }
            for (int r = rows; r < MR; r++)
                for (int k = 0; k < kc; k++) out[k * MR + r] = 0.0f;
        }
    }
}

/* Packs B[p0:p0+kc, j0:j0+nc] into NR-column panels: out[panel][k][c]. */
static void pack_b(float *out, const float *B, int ldb, int transB, int p0, int kc, int j0, int nc) {
    for (int jp = 0; jp < nc; jp += NR, out += NR * kc) {
        int cols = nc - jp < NR ? nc - jp : NR;
        if (transB) {
            for (int c = 0; c < cols; c++) {
                const float *src = B + (size_t)(j0 + jp + c) * ldb + p0;
                for (int k = 0; k < kc; k++) out[k * NR + c] = src[k];
            }
            for (int c = cols; c < NR; c++)
                for (int k = 0; k < kc; k++) out[k * NR + c] = 0.0f;
        } else {
            for (int k = 0; k < kc; k++) {
                const float *src = B + (size_t)(p0 + k) * ldb + j0 + jp;
                memcpy(out + k * NR, src, (size_t)cols * sizeof *src);
                for (int c = cols; c < NR; c++) out[k * NR + c] = 0.0f;
            }
        }
    }
}

/* Per-thread packing buffers, allocated on first use and kept. */
static _Thread_local float *pack_a_buf, *pack_b_buf;

/* One thread's region C[i0:i1, j0:j1], in BLIS order: for each NC column
 * block and KC slice, B is packed once and reused by every MC row block. */
static void region(int K, const float *A, int lda, int transA, const float *B, int ldb, int transB, float *C,
                   int ldc, int accumulate, int i0, int i1, int j0, int j1) {
    if (!pack_a_buf) {
        pack_a_buf = aligned_alloc(64, sizeof(float) * MC * KC);
        pack_b_buf = aligned_alloc(64, sizeof(float) * KC * NC);
        if (!pack_a_buf || !pack_b_buf) abort();
    }
    float edge[MR * NR];
    for (int jc = j0; jc < j1; jc += NC) {
        int nc = j1 - jc < NC ? j1 - jc : NC;
        if (K == 0 && !accumulate)
            for (int r = i0; r < i1; r++) memset(C + (size_t)r * ldc + jc, 0, (size_t)nc * sizeof *C);
        for (int p0 = 0; p0 < K; p0 += KC) {
            int kc = K - p0 < KC ? K - p0 : KC;
            int acc = accumulate || p0 > 0;
            pack_b(pack_b_buf, B, ldb, transB, p0, kc, jc, nc);
            for (int ic = i0; ic < i1; ic += MC) {
                int mc = i1 - ic < MC ? i1 - ic : MC;
                pack_a(pack_a_buf, A, lda, transA, ic, mc, p0, kc);
                for (int jp = 0; jp < nc; jp += NR) {
                    const float *bp = pack_b_buf + (size_t)jp * kc;
                    int cols = nc - jp < NR ? nc - jp : NR;
                    for (int ip = 0; ip < mc; ip += MR) {
                        const float *ap = pack_a_buf + (size_t)ip * kc;
                        int rows = mc - ip < MR ? mc - ip : MR;
                        float *c = C + (size_t)(ic + ip) * ldc + jc + jp;
                        if (rows == MR && cols == NR) {
                            kernel_8x32(kc, ap, bp, c, ldc, acc);
                            continue;
                        }
                        /* an edge tile: compute in full, then keep the valid part */
                        kernel_8x32(kc, ap, bp, edge, NR, 0);
                        for (int r = 0; r < rows; r++)
                            for (int j = 0; j < cols; j++)
                                c[(size_t)r * ldc + j] = acc ? c[(size_t)r * ldc + j] + edge[r * NR + j] : edge[r * NR + j];
                    }
                }
            }
        }
    }
}

/* The output is split into one region per thread: along N in whole NC
 * blocks when there are enough of them, else along M in MR multiples. Each
 * element is still summed over k in the same order by exactly one thread. */
void sgemm(int M, int N, int K, const float *A, int lda, int transA, const float *B, int ldb,
           int transB, float *C, int ldc, int accumulate) {
    if (M <= 0 || N <= 0) return;
    int nt = (double)M * N * K < 2e5 ? 1 : omp_get_max_threads();
    int nblocks = (N + NC - 1) / NC;
    int split_n = nblocks >= nt && nblocks * MC >= M;
    #pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        int i0 = 0, i1 = M, j0 = 0, j1 = N;
        if (split_n) {
            j0 = (int)((long)nblocks * t / n) * NC;
            j1 = (int)((long)nblocks * (t + 1) / n) * NC;
            if (j1 > N) j1 = N;
        } else {
            int units = (M + MR - 1) / MR;
            i0 = (int)((long)units * t / n) * MR;
            i1 = (int)((long)units * (t + 1) / n) * MR;
            if (i1 > M) i1 = M;
        }
        if (i0 < i1 && j0 < j1) region(K, A, lda, transA, B, ldb, transB, C, ldc, accumulate, i0, i1, j0, j1);
    }
}

void sgemm_reference(int M, int N, int K, const float *A, int lda, int transA, const float *B,
                     int ldb, int transB, float *C, int ldc, int accumulate) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = accumulate ? C[(size_t)i * ldc + j] : 0.0;
            for (int k = 0; k < K; k++) {
                float a = transA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = transB ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += (double)a * b;
            }
            C[(size_t)i * ldc + j] = (float)s;
        }
}

void matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                    int N, int C, int OC) {
    /* out = inp . weight^T + bias */
    sgemm(N, OC, C, inp, C, 0, weight, C, 1, out, OC, 0);
    if (!bias) return;
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * OC;
        for (int j = 0; j < OC; j++) o[j] += bias[j];
    }
}

void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int N, int C, int OC) {
    /* forward: out[n,o] = sum_c inp[n,c] weight[o,c] + bias[o] */
    if (dinp) sgemm(N, C, OC, dout, OC, 0, weight, C, 0, dinp, C, 1);     /* dinp += dout . W */
    sgemm(OC, C, N, dout, OC, 1, inp, C, 0, dweight, C, 1);               /* dW += dout^T . inp */
    if (!dbias) return;
    #pragma omp parallel for schedule(static)
    for (int o0 = 0; o0 < OC; o0 += 64) {
        int o1 = o0 + 64 < OC ? o0 + 64 : OC;
        for (int n = 0; n < N; n++) {
            const float *d = dout + (size_t)n * OC;
            for (int o = o0; o < o1; o++) dbias[o] += d[o];
        }
    }
}
