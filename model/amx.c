/* bf16 products on AMX. See amx.h.
 *
 * A tile register holds 16 rows of 64 bytes. TDPBF16PS adds to a 16 x 16
 * fp32 tile of C the products of a tile of A (16 rows of 32 bf16 along k)
 * and a tile of B in pairs (row q: the pairs (B(2q, j), B(2q+1, j)) of 16
 * columns j). The micro-kernel holds a 32 x 32 block of C in four tiles
 * and loads two tiles of A and two of B per 32 k: all eight registers.
 *
 * Loops as in matmul.c's region: for each NCA column block and KCA slice, B
 * is packed once into 32-column panels of pairs; for each MCA row block, A
 * into rows of bf16; then each 32 x 32 block of C runs through the slice,
 * B's panel (64 KB for a whole slice) read again from L1 and L2 for every
 * 32 rows of A, which come from L2. 1024 k a slice measured faster than
 * 512 (more passes over C) and 2048 (less in cache; bench/RESULTS.md). Packing
 * rounds to nearest even (vcvtne2ps2bf16, as the AVX512-BF16 kernel's) and
 * pads with zeros to multiples of 32 in every direction; edge blocks of C
 * go through a scratch block. */
#include "amx.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "transpose16.h"

#define AMX_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16,amx-tile,amx-bf16")))
#define KCA 1024           /* k per slice, a multiple of 32 */
#define MCA 128            /* rows of A per packed block, a multiple of 32 */
#define NCA 512            /* columns of B per packed block, a multiple of 32 */
#define AROW (KCA + 32)    /* bf16 per packed row of A: a slice, and a cache line more, off a power of two */

int amx_use(int on) {
    static int can = -1, use; /* set before any parallel region: sgemm_bf16_supported asks first */
    if (can < 0) {
        unsigned a, b, c, d;
        const char *env = getenv("TRAIN_AMX");
        can = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d >> 22 & 1) /* AMX-BF16 */ && (d >> 24 & 1) /* AMX-TILE */ &&
              syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
        if (env && *env && strcmp(env, "0") != 0 && strcmp(env, "1") != 0)
            fprintf(stderr, "note: TRAIN_AMX=%s is not 0 or 1: ignored (AMX %s)\n", env, can ? "on" : "not available");
        use = can && !(env && strcmp(env, "0") == 0);
    }
    if (on >= 0) use = on && can;
    return use;
}

/* Every tile 16 rows of 64 bytes, once per thread (the configuration is
 * the thread's own state, kept across context switches). */
AMX_TARGET static void configure(void) {
    static _Thread_local int done;
    if (done) return;
    struct {
        uint8_t palette, start_row, reserved[14];
        uint16_t colsb[16];
        uint8_t rows[16];
    } cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    _tile_loadconfig(&cfg);
    done = 1;
}

static inline __mmask16 first(int n) { return n <= 0 ? 0 : n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1); }

/* Two rows of 16 floats as 16 bf16 pairs (x0[i], x1[i]) */
AMX_TARGET static inline __m512 pairs(__m512 x0, __m512 x1) {
    static const short idx[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                  8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    return (__m512)_mm512_permutexvar_epi16(_mm512_loadu_si512(idx), (__m512i)_mm512_cvtne2ps_pbh(x1, x0));
}

/* A[i0:i0+mc, p0:p0+kc] as rows of bf16: out[r * AROW + k] for r < mpad,
 * k < kpad, zero past mc and kc. */
AMX_TARGET static void pack_a(uint16_t *out, const float *A, int lda, int transA, int i0, int mc, int p0, int kc,
                              int mpad, int kpad) {
    for (int r = mc; r < mpad; r++) memset(out + (size_t)r * AROW, 0, (size_t)kpad * sizeof *out);
    if (!transA) { /* rows of A along k: 32 k converted per store */
        for (int r = 0; r < mc; r++)
            for (int k = 0; k < kpad; k += 32) {
                const float *x = A + (size_t)(i0 + r) * lda + p0 + k;
                __m512 x0 = _mm512_maskz_loadu_ps(first(kc - k), x), x1 = _mm512_maskz_loadu_ps(first(kc - k - 16), x + 16);
                _mm512_storeu_si512(out + (size_t)r * AROW + k, (__m512i)_mm512_cvtne2ps_pbh(x1, x0));
            }
        return;
    }
    /* A's columns along k (a weight gradient's dout^T, its rows far apart):
     * pairs of k rows for 16 rows of A at a time, then a 16 x 16 transpose
     * of the pairs; all the rows for the same 32 k before the next 32, so
     * that their 32 pages stay in the TLB */
    for (int q0 = 0; q0 < kpad / 2; q0 += 16)
        for (int r0 = 0; r0 < mc; r0 += 16) {
            __mmask16 rows = first(mc - r0);
            __m512 v[16];
            for (int q = 0; q < 16; q++) {
                int k = 2 * (q0 + q);
                const float *x = A + (size_t)(p0 + (k < kc ? k : 0)) * lda + i0 + r0;
                __m512 x0 = _mm512_maskz_loadu_ps(k < kc ? rows : 0, x);
                __m512 x1 = _mm512_maskz_loadu_ps(k + 1 < kc ? rows : 0, k + 1 < kc ? x + lda : x);
                v[q] = pairs(x0, x1);
            }
            transpose16(v);
            for (int r = 0; r < 16 && r0 + r < mpad; r++) _mm512_storeu_ps(out + (size_t)(r0 + r) * AROW + 2 * q0, v[r]);
        }
}

/* B[p0:p0+kc, j0:j0+nc] as 32-column panels of bf16 pairs: out[(panel *
 * kpad / 2 + q) * 32 + c] = (B(2q, j), B(2q+1, j)), j = 32 panel + c, for
 * c0 + c < npad; zero past kc and nc. */
AMX_TARGET static void pack_b(uint32_t *out, const float *B, int ldb, int transB, int p0, int kc, int j0, int nc,
                              int npad, int kpad) {
    const int kq = kpad / 2;
    for (int c0 = 0; c0 < npad; c0 += 16) {
        uint32_t *o = out + (size_t)(c0 / 32) * kq * 32 + c0 % 32;
        if (c0 >= nc) {
            for (int q = 0; q < kq; q++) _mm512_storeu_si512(o + (size_t)q * 32, _mm512_setzero_si512());
            continue;
        }
        if (!transB) { /* B's rows along j: two rows make 16 pairs */
            __mmask16 cols = first(nc - c0);
            for (int q = 0; q < kq; q++) {
                int k = 2 * q;
                const float *x = B + (size_t)(p0 + (k < kc ? k : 0)) * ldb + j0 + c0;
                __m512 x0 = _mm512_maskz_loadu_ps(k < kc ? cols : 0, x);
                __m512 x1 = _mm512_maskz_loadu_ps(k + 1 < kc ? cols : 0, k + 1 < kc ? x + ldb : x);
                _mm512_storeu_ps(o + (size_t)q * 32, pairs(x0, x1));
            }
            continue;
        }
        /* B's columns along k (a weight, transposed): 32 k of a column are
         * its 16 pairs, then a 16 x 16 transpose */
        for (int q0 = 0; q0 < kq; q0 += 16) {
            __m512 v[16];
            int n = kc - 2 * q0;
            for (int c = 0; c < 16; c++) {
                const float *x = B + (size_t)(j0 + (c0 + c < nc ? c0 + c : 0)) * ldb + p0 + 2 * q0;
                int m = c0 + c < nc ? n : 0;
                v[c] = (__m512)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(first(m - 16), x + 16),
                                                  _mm512_maskz_loadu_ps(first(m), x));
            }
            transpose16(v);
            for (int q = 0; q < 16; q++) _mm512_storeu_ps(o + (size_t)(q0 + q) * 32, v[q]);
        }
    }
}

/* c[32 x 32] (+ with load) = 32 packed rows of A . a packed 32-column
 * panel of B, kpad deep; c's rows ldc floats apart */
AMX_TARGET static void block32(const uint16_t *a, const uint32_t *b, int kpad, float *c, int ldc, int load) {
    const size_t cs = (size_t)ldc * sizeof *c;
    if (load) {
        _tile_loadd(0, c, cs);
        _tile_loadd(1, c + 16, cs);
        _tile_loadd(2, c + (size_t)16 * ldc, cs);
        _tile_loadd(3, c + (size_t)16 * ldc + 16, cs);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    for (int k = 0; k < kpad; k += 32) {
        _tile_loadd(4, a + k, AROW * sizeof *a);
        _tile_loadd(5, a + (size_t)16 * AROW + k, AROW * sizeof *a);
        _tile_loadd(6, b + (size_t)k / 2 * 32, 32 * sizeof *b);
        _tile_loadd(7, b + (size_t)k / 2 * 32 + 16, 32 * sizeof *b);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, c, cs);
    _tile_stored(1, c + 16, cs);
    _tile_stored(2, c + (size_t)16 * ldc, cs);
    _tile_stored(3, c + (size_t)16 * ldc + 16, cs);
}

/* Per-thread packing buffers, allocated on first use and kept */
static _Thread_local uint16_t *abuf;
static _Thread_local uint32_t *bbuf;

void amx_region(int K, const float *A, int lda, int transA, const float *B, int ldb, int transB, float *C,
                int ldc, int accumulate, int i0, int i1, int j0, int j1) {
    if (!abuf) {
        abuf = aligned_alloc(64, sizeof *abuf * MCA * AROW);
        bbuf = aligned_alloc(64, sizeof *bbuf * NCA * KCA / 2);
        if (!abuf || !bbuf) abort();
    }
    configure();
    float edge[32 * 32] __attribute__((aligned(64)));
    for (int jc = j0; jc < j1; jc += NCA) {
        int nc = j1 - jc < NCA ? j1 - jc : NCA, npad = (nc + 31) & ~31;
        for (int p0 = 0; p0 < K; p0 += KCA) {
            int kc = K - p0 < KCA ? K - p0 : KCA, kpad = (kc + 31) & ~31, load = accumulate || p0 > 0;
            pack_b(bbuf, B, ldb, transB, p0, kc, jc, nc, npad, kpad);
            for (int ic = i0; ic < i1; ic += MCA) {
                int mc = i1 - ic < MCA ? i1 - ic : MCA, mpad = (mc + 31) & ~31;
                pack_a(abuf, A, lda, transA, ic, mc, p0, kc, mpad, kpad);
                for (int jp = 0; jp < npad; jp += 32) {
                    const uint32_t *b = bbuf + (size_t)jp * (kpad / 2);
                    int cols = nc - jp < 32 ? nc - jp : 32;
                    for (int ip = 0; ip < mpad; ip += 32) {
                        const uint16_t *a = abuf + (size_t)ip * AROW;
                        int rows = mc - ip < 32 ? mc - ip : 32;
                        float *c = C + (size_t)(ic + ip) * ldc + jc + jp;
                        if (rows == 32 && cols == 32) {
                            block32(a, b, kpad, c, ldc, load);
                            continue;
                        }
                        for (int r = 0; r < 32; r++) /* an edge block: through edge[] */
                            for (int j = 0; j < 32; j++)
                                edge[r * 32 + j] = load && r < rows && j < cols ? c[(size_t)r * ldc + j] : 0.0f;
                        block32(a, b, kpad, edge, 32, 1);
                        for (int r = 0; r < rows; r++) memcpy(c + (size_t)r * ldc, edge + r * 32, (size_t)cols * sizeof *c);
                    }
                }
            }
        }
    }
}

#else /* off x86: no AMX */
int amx_use(int on) { return 0; }

void amx_region(int K, const float *A, int lda, int transA, const float *B, int ldb, int transB, float *C,
                int ldc, int accumulate, int i0, int i1, int j0, int j1) {
    abort();
}
#endif
