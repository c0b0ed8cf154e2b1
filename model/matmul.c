/* Packed, blocked SGEMM. See matmul.h.
 *
 * Loop structure (BLIS): each thread owns a region of the output; for each
 * NC column block and KC slice it packs B (KC x NC, into NR-column panels)
 * once, then for each MC row block packs A (MC x KC, into MR-row panels) and
 * runs the micro-kernel over every MR x NR tile: one B panel (KC x NR, 32
 * or 64 KB) is read again for every A panel, from L1 or L2, the A panels
 * from L2. Packing handles transposition (16 x 16 register transposes on
 * AVX-512) and zero-pads the edges; a last panel of at most 16 columns, or
 * of one, gets a narrower kernel. Two shapes change the loop order (see
 * region); a short product against a wide transposed B is computed
 * transposed, and a C far larger than the caches written past them (see
 * gemm). */
#include "matmul.h"

#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/err.h"
#include "../common/vmath.h"
#include "amx.h"
#include "transpose16.h"

/* Off x86 (aarch64, ...) one build remains: the portable kernel and
 * packing in plain C and GCC vectors, compiled for that CPU's own SIMD. */
#if defined(__x86_64__) || defined(__i386__)
#define X86 1
#include <immintrin.h>
#define TARGET(isa) __attribute__((target(isa)))
#else
#define X86 0
#define TARGET(isa)
#endif

#define MR 8
#define NR 32
/* The MC x KC block of A and KC x NC block of B that a thread keeps in its
 * L2, in rows and columns, and the depth KC of a slice: 128, 512 and 256
 * for 1 MB of L2 a core (AMD Zen 4 and 5: A's block 128 KB, B's 512 KB),
 * 256, 512 and 512 from 2 MB with AVX-512 (Intel's Xeons since Sapphire
 * Rapids: 512 KB and 1 MB). Set from the L2's size and the SIMD level at
 * the first product (choose_blocks); sgemm_blocks sets them for tests. On
 * x2 (2 MB), against 256 x 1024 blocks 256 deep: the T=2048 step 0.96-0.98x
 * its time, B8 T256's 0.96x, GPT-2 124M's 0.985-0.99x (ab_step, 5-6 rounds;
 * 1024 columns with 512 deep the same within the noise): half as many
 * slices, so C is read and written back half as often and a row of A read
 * in place is 2 KB long, not 1 KB, in each slice (the lm_head's input
 * gradient reads 400 MB of A from memory in such pieces); B's 32-column
 * panel (64 KB) then streams from L2 rather than staying in L1, at no cost
 * seen. Not for the AVX2 tile, which reads B's panel three times: 512 deep
 * it made the AVX2 build's T=2048 and 124M steps 1.023x and 1.008x slower
 * on x2. The smaller sizes fit Zen's L2.
 * The bits do not depend on MC and NC: every C element sums its KC slices
 * in the same order. They depend on KC: the two kinds of CPU give different
 * last bits (one machine's runs repeat bit for bit). */
#define MC_MAX 256
#define NC_MAX 1024
#define KC_MAX 512
static int mc_blk, nc_blk, kc_blk; /* 0 until choose_blocks */
/* region's tall-and-deep order (see there): taken where the L2 is under 2
 * MB, as on Zen, where it was measured faster. With the larger blocks of a
 * 2 MB L2 (x2) the ordinary order was faster on every weight gradient
 * timed alone (best of 8, in turns): the T=2048 model's lm_head 152.5 -> 146.0
 * ms, its attention qkv and MLP 0.93x and 0.91x, narrow ones (64 and 32
 * columns over 4096 and 8192 tokens) 0.95x, none slower; the same bits.
 * Whole steps on x2 moved within their noise (T=2048 0.999x and 1.006x,
 * B8 T256 0.969x and 1.007x, ab_step). */
static int tall_route = -1;
/* Whether an A^T (a weight gradient's dout^T) with rows under a page apart
 * is read in place (kernel_avx512_cols) in a region wider than 64 columns,
 * rather than packed: where the L2 is under 2 MB, as on Zen, where it was
 * measured faster. On x2 packing was faster for every such product timed
 * alone (best of 20, three alternations): the T=2048 model's weight
 * gradients of qkv 2.50-2.53 -> 2.34-2.40 ms, the attention projection
 * 0.89 -> 0.83-0.87, the MLP's projection 3.43-3.69 -> 3.24-3.30; GPT-2
 * 124M's attention projection 0.91-0.94 -> 0.82; with the AVX2 kernels a
 * T=2048 layer's weight gradients 16.9 -> 15.6 ms. Narrow regions (the
 * learned sketch's 32 or 64 columns, where each packed element would feed
 * one or two column panels) read in place on every machine. */
static int cols_wide = -1;

static void choose_blocks(void) {
    if (mc_blk) return;
    int large = sysconf(_SC_LEVEL2_CACHE_SIZE) >= 2 << 20; /* 0 or -1 where unknown */
    mc_blk = large ? 256 : 128;
    nc_blk = 512;
    kc_blk = large && sgemm_simd(-1) == SGEMM_AVX512 ? 512 : 256;
    if (tall_route < 0) tall_route = !large;
    if (cols_wide < 0) cols_wide = !large;
}

int sgemm_tall(int on) {
    choose_blocks();
    if (on >= 0) tall_route = on != 0;
    return tall_route;
}

typedef vf16 v16;
typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));

/* The micro-kernel: c[MR x NR] (+)= a (an MR-row panel, kc deep) . b (an
 * NR-column panel). Three builds of it, chosen at run time (sgemm_simd):
 * AVX-512 keeps the whole 8 x 32 tile in 16 registers of 16 floats; AVX2 and
 * the portable build walk it in pieces in their own registers' width (8 and
 * 4 floats): generic vectors wider than the target's registers (a 16-float
 * type on AVX2) compile with GCC to stack traffic, at a tenth of the speed. */
/* Vector load and store written out in each kernel: calling a helper built
 * for another ISA would pass vectors under a different ABI. */
#define KLOAD(p) __extension__({ v16 v_; __builtin_memcpy(&v_, (p), sizeof v_); v_; })
#define KSTORE(p, x) __extension__({ v16 x_ = (x); __builtin_memcpy((p), &x_, sizeof x_); })

/* The 8 x 32 tile's loop over k; row r of A at step k is a[r * RS] before a
 * moves on by KS: RS = 1, KS = MR in a packed panel, RS = lda, KS = 1 in A's
 * own rows (kernel_avx512_rows), RS = 1, KS = lda in A's columns
 * (kernel_avx512_cols). Unrolled 4 times: the loop's own three integer
 * operations share ports with the FMAs, and an Intel Xeon (x2) ran the
 * tile in L1 at 85 % of its FMA peak rolled, 94 % unrolled. C's 16 lines are
 * prefetched (for writing) as it starts, so that the read or the
 * write-allocate at the end finds them in cache: a product that writes C
 * once (the lm_head's forward) waited there. The two together: GPT-2 124M's
 * training step 0.94x its time on x2 (RESULTS), the same bits. */
#define TILE_SUMS(RS, KS)                                                                          \
    v16 c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};     \
    v16 c40 = {0}, c41 = {0}, c50 = {0}, c51 = {0}, c60 = {0}, c61 = {0}, c70 = {0}, c71 = {0};     \
    _Pragma("GCC unroll 4")                                                                        \
    for (int k = 0; k < kc; k++, a += (KS), b += NR) {                                             \
        v16 b0 = KLOAD(b), b1 = KLOAD(b + 16);                                                   \
        c00 += a[0] * b0; c01 += a[0] * b1;                                                        \
        c10 += a[1 * (RS)] * b0; c11 += a[1 * (RS)] * b1;                                          \
        c20 += a[2 * (RS)] * b0; c21 += a[2 * (RS)] * b1;                                          \
        c30 += a[3 * (RS)] * b0; c31 += a[3 * (RS)] * b1;                                          \
        c40 += a[4 * (RS)] * b0; c41 += a[4 * (RS)] * b1;                                          \
        c50 += a[5 * (RS)] * b0; c51 += a[5 * (RS)] * b1;                                          \
        c60 += a[6 * (RS)] * b0; c61 += a[6 * (RS)] * b1;                                          \
        c70 += a[7 * (RS)] * b0; c71 += a[7 * (RS)] * b1;                                          \
    }                                                                                              \
    v16 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31},                              \
                      {c40, c41}, {c50, c51}, {c60, c61}, {c70, c71}};

/* A non-temporal store of 16 floats to a 64-byte aligned p: written to
 * memory without reading the line into the caches first */
#define STREAM 2
#if X86
#define STREAM_STORE(p, x) __asm__ volatile("vmovntps %1, %0" : "=m"(*(v16 *)(p)) : "v"(x))
#else
#define STREAM_STORE(p, x) KSTORE(p, x)
#endif

/* C's lines of an 8 x 32 tile (ROWS rows of LINES lines) prefetched for
 * writing */
#define PREFETCH_C(ROWS, LINES)                                                                    \
    for (int r = 0; r < (ROWS); r++)                                                               \
        for (int l = 0; l < (LINES); l++) __builtin_prefetch(c + (size_t)r * ldc + 16 * l, 1, 3);

/* accumulate: 0 writes C, 1 adds to it, STREAM writes it past the caches
 * (see gemm), C's lines then not prefetched */
#define TILE_8X32(RS, KS)                                                                          \
    if (accumulate != STREAM) PREFETCH_C(MR, 2)                                                    \
    TILE_SUMS(RS, KS)                                                                              \
    for (int r = 0; r < MR; r++)                                                                   \
        for (int j = 0; j < 2; j++) {                                                              \
            float *row = c + (size_t)r * ldc + 16 * j;                                             \
            if (accumulate == STREAM) STREAM_STORE(row, acc[r][j]);                               \
            else KSTORE(row, accumulate ? KLOAD(row) + acc[r][j] : acc[r][j]);                   \
        }

#define KERNEL_FULL(name, arch)                                                                    \
    TARGET(arch) static void name(int kc, const float *restrict a, const float *restrict b,        \
                                  float *restrict c, int ldc, int accumulate) {                    \
        TILE_8X32(1, MR)                                                                           \
    }

/* An edge panel with at most 16 valid columns (N = 65 in PolySketch's
 * [v; 1] products): half the work of the full tile. AVX-512 only. */
TARGET("arch=x86-64-v4") static void kernel_avx512_half(int kc, const float *restrict a, const float *restrict b,
                                                        float *restrict c, int ldc) {
    v16 c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0}, c4 = {0}, c5 = {0}, c6 = {0}, c7 = {0};
    for (int k = 0; k < kc; k++, a += MR, b += NR) {
        v16 b0 = KLOAD(b);
        c0 += a[0] * b0; c1 += a[1] * b0; c2 += a[2] * b0; c3 += a[3] * b0;
        c4 += a[4] * b0; c5 += a[5] * b0; c6 += a[6] * b0; c7 += a[7] * b0;
    }
    v16 acc[MR] = {c0, c1, c2, c3, c4, c5, c6, c7};
    for (int r = 0; r < MR; r++) KSTORE(c + (size_t)r * ldc, acc[r]);
}

/* An edge panel of one column (the [v; 1] products' 65th): one 8-row vector
 * and one FMA per k, an eighth of the 8 x 16 kernel's work. Four running
 * sums (k mod 4) hide the FMA latency; added at the end. */
TARGET("arch=x86-64-v3") static void kernel_col1(int kc, const float *restrict a, const float *restrict b,
                                                 float *restrict c) {
    v8 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, x0, x1, x2, x3;
    int k = 0;
    for (; k + 4 <= kc; k += 4, a += 4 * MR, b += 4 * NR) {
        __builtin_memcpy(&x0, a, sizeof x0);
        __builtin_memcpy(&x1, a + MR, sizeof x1);
        __builtin_memcpy(&x2, a + 2 * MR, sizeof x2);
        __builtin_memcpy(&x3, a + 3 * MR, sizeof x3);
        s0 += x0 * b[0];
        s1 += x1 * b[NR];
        s2 += x2 * b[2 * NR];
        s3 += x3 * b[3 * NR];
    }
    for (; k < kc; k++, a += MR, b += NR) {
        __builtin_memcpy(&x0, a, sizeof x0);
        s0 += x0 * b[0];
    }
    v8 sum = (s0 + s1) + (s2 + s3);
    for (int r = 0; r < MR; r++) c[(size_t)r * NR] = sum[r];
}

KERNEL_FULL(kernel_avx512, "arch=x86-64-v4")

/* The same tile with A read in place, 8 rows lda apart, not packed. In a
 * deep product (the lm_head's input gradient, K = 50257) each block of A is
 * read from memory once, and packing it cost a write and a second read; in
 * a narrow one (PolySketch's learned sketch: 32 or 64 output columns) each
 * packed element fed only one or two column panels, and the packing took as
 * long as the products. Eight row streams are what the hardware prefetcher
 * follows well: on Zen 5 the tile runs as fast on them as on a packed
 * panel, so A is not packed where it can be read in place (region). The
 * sums are the packed kernel's, in the same order. */
TARGET("arch=x86-64-v4") static void kernel_avx512_rows(int kc, const float *restrict a, size_t lda,
                                                        const float *restrict b, float *restrict c, int ldc,
                                                        int accumulate) {
    TILE_8X32(lda, 1)
}
/* ... and A transposed (a weight gradient's dout^T), read in place: the
 * tile's 8 rows at step k are 8 consecutive floats of A's row k, the next
 * step lda further on, and the next tile takes the other half of the same
 * cache lines while they are in L1. The learned sketch's dW2 += G^T dY
 * (N = 32) runs 2x faster than packed, GPT-2's weight gradients with rows
 * under a page apart 2-10 % on Zen 5 (same bits, test_sgemm_in_place_bits;
 * on a 2 MB L2 only narrow regions, see cols_wide). */
TARGET("arch=x86-64-v4") static void kernel_avx512_cols(int kc, const float *restrict a, size_t lda,
                                                        const float *restrict b, float *restrict c, int ldc,
                                                        int accumulate) {
    TILE_8X32(1, lda)
}
/* ... and with the tile stored transposed: its row r, column j goes to
 * c[j * ldc + r]. gemm computes a product whose B is wide and whose A is
 * short (a forward over a few hundred tokens: out = x W^T) as
 * out^T = W x^T, so that the weight is the operand read in place, row by
 * row, rather than packed, transposed, for each use; this kernel writes
 * out^T's tiles back into out. The same products in the same order: the
 * same bits. Per 16 columns the 8 x 16 block is transposed in registers in
 * three rounds (32-bit interleaves within 128-bit lanes, then 64-bit, then
 * lanes across the two halves of the block), then each column's 8 floats
 * are one store. */
#if X86
/* (its ISA listed: GCC does not inline the AVX-512 intrinsics into an
 * "arch=x86-64-v4" function) */
TARGET("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma")
static void kernel_avx512_rows_tc(int kc, const float *restrict a, size_t lda, const float *restrict b,
                                  float *restrict c, int ldc, int accumulate) {
    PREFETCH_C(NR, 1)
    TILE_SUMS(lda, 1)
    const __m512i lanes_lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i lanes_hi = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
    for (int h = 0; h < 2; h++) {
        __m512 t[MR], u[MR];
        for (int r = 0; r < MR; r += 2) { /* lane l of t[r]: rows r, r+1 of columns 4l, 4l+1; of t[r+1]: 4l+2, 4l+3 */
            t[r] = _mm512_unpacklo_ps((__m512)acc[r][h], (__m512)acc[r + 1][h]);
            t[r + 1] = _mm512_unpackhi_ps((__m512)acc[r][h], (__m512)acc[r + 1][h]);
        }
        for (int q = 0; q < MR; q += 4) /* lane l of u[q + i]: rows q..q+3 of column 4l + i */
            for (int i = 0; i < 4; i += 2) {
                u[q + i] = _mm512_shuffle_ps(t[q + i / 2], t[q + i / 2 + 2], 0x44);
                u[q + i + 1] = _mm512_shuffle_ps(t[q + i / 2], t[q + i / 2 + 2], 0xee);
            }
        for (int i = 0; i < 4; i++) { /* columns i, 4+i, 8+i, 12+i: rows 0-3 from u[i], 4-7 from u[4+i] */
            __m512 x = _mm512_permutex2var_ps(u[i], lanes_lo, u[4 + i]);
            __m512 y = _mm512_permutex2var_ps(u[i], lanes_hi, u[4 + i]);
            __m256 col[4] = {_mm512_castps512_ps256(x), _mm512_extractf32x8_ps(x, 1), _mm512_castps512_ps256(y),
                             _mm512_extractf32x8_ps(y, 1)};
            for (int g = 0; g < 4; g++) {
                float *dst = c + (size_t)(16 * h + 4 * g + i) * ldc;
                _mm256_storeu_ps(dst, accumulate ? _mm256_add_ps(_mm256_loadu_ps(dst), col[g]) : col[g]);
            }
        }
    }
}
#else /* never called off x86: gemm transposes only on AVX-512 */
static void kernel_avx512_rows_tc(int kc, const float *restrict a, size_t lda, const float *restrict b,
                                  float *restrict c, int ldc, int accumulate) {
    abort();
}
#endif

/* B's two vectors held in registers: tuned for some CPUs, GCC would fold
 * them into the FMAs as memory operands, 12 loads per 8 FMAs (a third
 * slower) */
#if X86
#define PIN_REGS(x, y) __asm__("" : "+x"(x), "+x"(y))
#else
#define PIN_REGS(x, y) ((void)0)
#endif

/* C rows r0.. (+)= a piece's accumulators acc[R][H], H vectors of type vt
 * from column j0 (c, ldc and accumulate are the kernel's) */
#define STORE_PIECE(vt, acc, R, H, r0, j0)                                                         \
    for (int r = 0; r < (R); r++)                                                                  \
        for (int h = 0; h < (H); h++) {                                                            \
            float *row = c + (size_t)((r0) + r) * ldc + (j0) + h * (int)(sizeof(vt) / sizeof(float)); \
            vt old = {0};                                                                          \
            if (accumulate) __builtin_memcpy(&old, row, sizeof old);                               \
            old += acc[r][h];                                                                      \
            __builtin_memcpy(row, &old, sizeof old);                                               \
        }

/* AVX2: rows 0-5 in two pieces of 6 x 16 (12 accumulators, so that FMA
 * latencies of up to 6 cycles stay hidden at two FMAs a cycle, where 8
 * accumulators hide 4: Zen 2 and 3 take 5), rows 6-7 in one of 2 x 32. */
/* The AVX2 tile's loops over k, row r of A at step k at ap[r * RS], as in
 * TILE_8X32 */
#define TILE_AVX2(RS, KS)                                                                          \
    for (int j0 = 0; j0 < NR; j0 += 16) {                                                          \
        v8 c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0};                       \
        v8 c30 = {0}, c31 = {0}, c40 = {0}, c41 = {0}, c50 = {0}, c51 = {0};                       \
        const float *ap = a, *bp = b + j0;                                                         \
        for (int k = 0; k < kc; k++, ap += (KS), bp += NR) {                                       \
            v8 b0, b1;                                                                             \
            __builtin_memcpy(&b0, bp, sizeof b0);                                                  \
            __builtin_memcpy(&b1, bp + 8, sizeof b1);                                              \
            PIN_REGS(b0, b1);                                                                      \
            c00 += ap[0] * b0; c01 += ap[0] * b1;                                                  \
            c10 += ap[1 * (RS)] * b0; c11 += ap[1 * (RS)] * b1;                                    \
            c20 += ap[2 * (RS)] * b0; c21 += ap[2 * (RS)] * b1;                                    \
            c30 += ap[3 * (RS)] * b0; c31 += ap[3 * (RS)] * b1;                                    \
            c40 += ap[4 * (RS)] * b0; c41 += ap[4 * (RS)] * b1;                                    \
            c50 += ap[5 * (RS)] * b0; c51 += ap[5 * (RS)] * b1;                                    \
        }                                                                                          \
        v8 acc[6][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};   \
        STORE_PIECE(v8, acc, 6, 2, 0, j0)                                                          \
    }                                                                                              \
    v8 c60 = {0}, c61 = {0}, c62 = {0}, c63 = {0}, c70 = {0}, c71 = {0}, c72 = {0}, c73 = {0};     \
    const float *ap = a + 6 * (RS), *bp = b;                                                       \
    for (int k = 0; k < kc; k++, ap += (KS), bp += NR) {                                           \
        v8 b0, b1, b2, b3;                                                                         \
        __builtin_memcpy(&b0, bp, sizeof b0);                                                      \
        __builtin_memcpy(&b1, bp + 8, sizeof b1);                                                  \
        __builtin_memcpy(&b2, bp + 16, sizeof b2);                                                 \
        __builtin_memcpy(&b3, bp + 24, sizeof b3);                                                 \
        PIN_REGS(b0, b1);                                                                          \
        PIN_REGS(b2, b3);                                                                          \
        c60 += ap[0] * b0; c61 += ap[0] * b1; c62 += ap[0] * b2; c63 += ap[0] * b3;                \
        c70 += ap[RS] * b0; c71 += ap[RS] * b1; c72 += ap[RS] * b2; c73 += ap[RS] * b3;            \
    }                                                                                              \
    v8 acc[2][4] = {{c60, c61, c62, c63}, {c70, c71, c72, c73}};                                   \
    STORE_PIECE(v8, acc, 2, 4, 6, 0)

TARGET("arch=x86-64-v3") static void kernel_avx2(int kc, const float *restrict a, const float *restrict b,
                                                 float *restrict c, int ldc, int accumulate) {
    TILE_AVX2(1, MR)
}

/* A read in place, as kernel_avx512_rows and _cols */
TARGET("arch=x86-64-v3") static void kernel_avx2_rows(int kc, const float *restrict a, size_t lda,
                                                      const float *restrict b, float *restrict c, int ldc,
                                                      int accumulate) {
    TILE_AVX2(lda, 1)
}

TARGET("arch=x86-64-v3") static void kernel_avx2_cols(int kc, const float *restrict a, size_t lda,
                                                      const float *restrict b, float *restrict c, int ldc,
                                                      int accumulate) {
    TILE_AVX2(1, lda)
}

/* The portable build (x86-64's SSE2, or another CPU's 4-float vectors) in
 * pieces of 4 rows x 8 columns, 8 accumulators. */
TARGET("arch=x86-64") static void kernel_portable(int kc, const float *restrict a, const float *restrict b,
                                                  float *restrict c, int ldc, int accumulate) {
    for (int r0 = 0; r0 < MR; r0 += 4)
        for (int j0 = 0; j0 < NR; j0 += 8) {
            v4 c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};
            const float *ap = a + r0, *bp = b + j0;
            for (int k = 0; k < kc; k++, ap += MR, bp += NR) {
                v4 b0, b1;
                __builtin_memcpy(&b0, bp, sizeof b0);
                __builtin_memcpy(&b1, bp + 4, sizeof b1);
                PIN_REGS(b0, b1);
                c00 += ap[0] * b0; c01 += ap[0] * b1;
                c10 += ap[1] * b0; c11 += ap[1] * b1;
                c20 += ap[2] * b0; c21 += ap[2] * b1;
                c30 += ap[3] * b0; c31 += ap[3] * b1;
            }
            v4 acc[4][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};
            STORE_PIECE(v4, acc, 4, 2, r0, j0)
        }
}

typedef void (*KernelFn)(int, const float *, const float *, float *, int, int);
static const struct {
    const char *name;
    KernelFn fn;
} KERNELS[] = {{"portable", kernel_portable}, {"avx2", kernel_avx2}, {"avx512", kernel_avx512}};
static KernelFn kernel_8x32;
static int simd_level = -1;

int sgemm_simd(int level) {
    if (level >= 0 && level <= SGEMM_AVX512) {
        simd_level = level;
    } else if (simd_level < 0) {
        const char *env = getenv("TRAIN_SIMD");
#if X86
        __builtin_cpu_init();
        simd_level = __builtin_cpu_supports("avx512f") ? SGEMM_AVX512
                   : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? SGEMM_AVX2 : SGEMM_PORTABLE;
#else
        simd_level = SGEMM_PORTABLE;
#endif
        int known = !env || !*env;
        for (int i = 0; env && i <= SGEMM_AVX512; i++)
            if (strcmp(env, KERNELS[i].name) == 0) {
                known = 1;
                if (i <= simd_level) simd_level = i;
            }
        if (!known)
            fprintf(stderr, "note: TRAIN_SIMD=%s is not avx512, avx2 or portable: ignored (using %s)\n", env,
                    KERNELS[simd_level].name);
    }
    kernel_8x32 = KERNELS[simd_level].fn;
    return simd_level;
}

const char *sgemm_simd_name(void) { return KERNELS[sgemm_simd(-1)].name; }

void sgemm_blocks(int *mc, int *nc, int *kc) {
    choose_blocks();
    if (*mc >= MR && *mc <= MC_MAX && *mc % MR == 0) mc_blk = *mc;
    if (*nc >= NR && *nc <= NC_MAX && *nc % NR == 0) nc_blk = *nc;
    if (*kc >= 16 && *kc <= KC_MAX && *kc % 16 == 0) kc_blk = *kc;
    *mc = mc_blk;
    *nc = nc_blk;
    *kc = kc_blk;
}

/* Packing that transposes (A by rows, B^T by rows) moves one float at a time
 * in plain C; on AVX-512 whole 16 x 16 blocks go through registers instead,
 * on AVX2 8 x 8 blocks. */

#if X86
/* 16 rows src[i*ld + k], k in [0, k16), into out[k*stride + i]; k16 a
 * multiple of 16. With split, rows 0-7 go to out and rows 8-15 to out2 (two
 * MR-row panels of A, stride MR); else all 16 to out (half a B panel). */
__attribute__((target("avx512f"))) static void pack16_avx512(float *out, float *out2, int split, const float *src,
                                                             size_t ld, int k16, int stride) {
    for (int k0 = 0; k0 < k16; k0 += 16) {
        __m512 r[16];
        for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * ld + k0);
        if (k0 + 64 < k16) /* 16 strided streams: the hardware prefetcher alone lags (lm_head dinp 9 % slower) */
            for (int i = 0; i < 16; i++) _mm_prefetch((const char *)(src + i * ld + k0 + 64), _MM_HINT_T0);
        transpose16(r);
        for (int k = 0; k < 16; k++) {
            float *o = out + (size_t)(k0 + k) * stride;
            if (split) {
                _mm256_storeu_ps(o, _mm512_castps512_ps256(r[k]));
                _mm256_storeu_ps(out2 + (size_t)(k0 + k) * stride,
                                 _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(r[k]), 1)));
            } else {
                _mm512_storeu_ps(o, r[k]);
            }
        }
    }
}

/* The same on AVX2 for 8 rows: src[i*ld + k], k in [0, k8), into
 * out[k*stride + i]; k8 a multiple of 8 (one MR-row panel of A, or a quarter
 * of a B panel). */
__attribute__((target("avx2"))) static void pack8_avx2(float *out, const float *src, size_t ld, int k8, int stride) {
    for (int k0 = 0; k0 < k8; k0 += 8) {
        __m256 r[8], a[8], b[8];
        for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * ld + k0);
        for (int i = 0; i < 4; i++) {
            a[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            a[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        for (int i = 0; i < 2; i++)
            for (int h = 0; h < 2; h++) {
                __m256 x = a[4 * i + h], y = a[4 * i + h + 2];
                b[4 * i + 2 * h] = _mm256_shuffle_ps(x, y, 0x44);
                b[4 * i + 2 * h + 1] = _mm256_shuffle_ps(x, y, 0xee);
            }
        for (int j = 0; j < 4; j++) { /* b[j] holds rows 0-3 of columns j, j + 4; b[j + 4] rows 4-7 */
            _mm256_storeu_ps(out + (size_t)(k0 + j) * stride, _mm256_permute2f128_ps(b[j], b[j + 4], 0x20));
            _mm256_storeu_ps(out + (size_t)(k0 + j + 4) * stride, _mm256_permute2f128_ps(b[j], b[j + 4], 0x31));
        }
    }
}

#else /* never called off x86: simd_level stays portable */
static void pack16_avx512(float *out, float *out2, int split, const float *src, size_t ld, int k16, int stride) {
    abort();
}
static void pack8_avx2(float *out, const float *src, size_t ld, int k8, int stride) { abort(); }
#endif

/* Packs A[i0:i0+mc, p0:p0+kc] into MR-row panels: out[panel][k][r]. */
static void pack_a(float *out, const float *A, int lda, int transA, int i0, int mc, int p0, int kc) {
    int fast = simd_level == SGEMM_AVX512 && !transA, k16 = kc / 16 * 16, k8 = kc / 8 * 8;
    if (transA) {
        /* Row k of A^T holds the panels' rows side by side, mc floats
         * contiguous; the rows lie lda apart (the lm_head's weight gradient:
         * 200 KB, in memory). 16 rows at a time: each panel gets its 16
         * steps of k, 512 bytes, as whole lines, from rows now in L1, while
         * the next 16 rows are requested into L2. The whole of the lm_head's
         * logit gradient over 2048 tokens, packed alone on x2: 31.6 -> 16.5
         * ms (k by k, 4 panels at a time, and no prefetch, as before: 13 GB/s
         * against the 32 GB/s that reading it in this order reaches); its
         * weight gradient 157 -> 147 ms. */
        int full = mc / MR * MR;
        for (int k0 = 0; k0 < kc; k0 += 16) {
            int kn = kc - k0 < 16 ? kc - k0 : 16;
            for (int k = k0 + 16; k < k0 + 32 && k < kc; k++)
                for (int q = 0; q < mc; q += 16) __builtin_prefetch(A + (size_t)(p0 + k) * lda + i0 + q, 0, 2);
            for (int q = 0; q < full; q += MR) {
                float *o = out + (size_t)q * kc + (size_t)k0 * MR;
                const float *src = A + (size_t)(p0 + k0) * lda + i0 + q;
                for (int k = 0; k < kn; k++) memcpy(o + k * MR, src + (size_t)k * lda, MR * sizeof *src);
            }
        }
        if (full < mc)
            for (int k = 0; k < kc; k++) {
                const float *src = A + (size_t)(p0 + k) * lda + i0 + full;
                float *o = out + (size_t)full * kc + k * MR;
                for (int r = 0; r < MR; r++) o[r] = full + r < mc ? src[r] : 0.0f;
            }
        return;
    }
    for (int ip = 0; ip < mc; ip += MR, out += MR * kc) {
        int rows = mc - ip < MR ? mc - ip : MR;
        int k0 = 0;
        if (fast && ip % (2 * MR) == 0 && ip + 2 * MR <= mc) { /* this panel and the next, 16 rows */
            pack16_avx512(out, out + MR * kc, 1, A + (size_t)(i0 + ip) * lda + p0, (size_t)lda, k16, MR);
            k0 = k16;
        } else if (fast && ip % (2 * MR) == MR && ip + MR <= mc) {
            k0 = k16; /* packed with the previous panel */
        } else if (simd_level == SGEMM_AVX2 && rows == MR) {
            pack8_avx2(out, A + (size_t)(i0 + ip) * lda + p0, (size_t)lda, k8, MR);
            k0 = k8;
        }
        for (int r = 0; r < rows; r++) {
            const float *src = A + (size_t)(i0 + ip + r) * lda + p0;
            for (int k = k0; k < kc; k++) out[k * MR + r] = src[k];
        }
        for (int r = rows; r < MR; r++)
            for (int k = 0; k < kc; k++) out[k * MR + r] = 0.0f;
    }
}

/* Packs B[p0:p0+kc, j0:j0+nc] into NR-column panels: out[panel][k][c]. */
static void pack_b(float *out, const float *B, int ldb, int transB, int p0, int kc, int j0, int nc) {
    int fast = simd_level == SGEMM_AVX512 && transB, k16 = kc / 16 * 16, k8 = kc / 8 * 8;
    int avx2 = simd_level == SGEMM_AVX2 && transB;
    for (int jp = 0; jp < nc; jp += NR, out += NR * kc) {
        int cols = nc - jp < NR ? nc - jp : NR;
        if (transB) {
            int c = 0, kdone = fast ? k16 : k8; /* columns below c are packed up to kdone */
            for (; fast && c + 16 <= cols; c += 16)
                pack16_avx512(out + c, NULL, 0, B + (size_t)(j0 + jp + c) * ldb + p0, (size_t)ldb, k16, NR);
            for (; avx2 && c + 8 <= cols; c += 8)
                pack8_avx2(out + c, B + (size_t)(j0 + jp + c) * ldb + p0, (size_t)ldb, k8, NR);
            for (int cc = 0; cc < cols; cc++) {
                const float *src = B + (size_t)(j0 + jp + cc) * ldb + p0;
                for (int k = cc < c ? kdone : 0; k < kc; k++) out[k * NR + cc] = src[k];
            }
            for (int cc = cols; cc < NR; cc++)
                for (int k = 0; k < kc; k++) out[k * NR + cc] = 0.0f;
        } else {
            for (int k = 0; k < kc; k++) {
                const float *src = B + (size_t)(p0 + k) * ldb + j0 + jp;
                if (cols == NR) { /* a fixed size: copied inline, not by a call */
                    memcpy(out + k * NR, src, NR * sizeof *src);
                    continue;
                }
                memcpy(out + k * NR, src, (size_t)cols * sizeof *src);
                for (int c = cols; c < NR; c++) out[k * NR + c] = 0.0f;
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* bf16 products (precision=bf16): A and B are rounded to bfloat16 as they
 * are packed, in pairs along k; AVX512-BF16's vdpbf16ps multiplies a pair of
 * A by a pair of B and adds both products to an fp32 lane. Accumulation,
 * the output and the master weights stay fp32. */

static inline uint16_t to_bf16(float x) { /* round to nearest even */
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 0x40); /* NaN stays NaN */
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* Packed pairs: X(l, k) = src[l * ls + k * ks] for lines l (rows of A,
 * columns of B) and k < kc. The block is cut into panels of `width` lines
 * (MR or NR), out[panel][p][line] = the pair (X(l, 2p), X(l, 2p+1)) as two
 * bf16 in 32 bits, zero past kc and past the last line. */
#if X86
static void store_pair16(uint32_t *out, int width, size_t pstride, int p, const uint32_t v[16]) {
    if (width >= 16) {
        memcpy(out + (size_t)p * width, v, 16 * sizeof *v);
    } else { /* 8 lines in this panel, 8 in the next */
        memcpy(out + (size_t)p * width, v, 8 * sizeof *v);
        memcpy(out + pstride + (size_t)p * width, v + 8, 8 * sizeof *v);
    }
}

/* Pairs [0, pv) of the 16 lines at src, all valid, through AVX512-BF16's
 * vcvtne2ps2bf16 (round to nearest even, as to_bf16, except that it flushes
 * denormals to zero): k contiguous (ks == 1): 32 k of each line converted,
 * then a 16 x 16 transpose of the pairs; lines contiguous (ls == 1): rows k
 * and k+1 converted together and interleaved with one vpermw. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void pairs16_avx512(uint32_t *out, int width,
                                                                                  size_t pstride, const float *src,
                                                                                  size_t ls, size_t ks, int pv) {
    uint32_t v[16];
    if (ks == 1) {
        for (int p0 = 0; p0 < pv; p0 += 16) {
            __m512 r[16];
            for (int i = 0; i < 16; i++) {
                const float *x = src + i * ls + 2 * p0;
                r[i] = (__m512)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + 16), _mm512_loadu_ps(x));
            }
            transpose16(r);
            for (int p = 0; p < 16; p++) {
                _mm512_storeu_ps(v, r[p]);
                store_pair16(out, width, pstride, p0 + p, v);
            }
        }
        return;
    }
    short idx[32];
    for (int i = 0; i < 16; i++) {
        idx[2 * i] = (short)i;
        idx[2 * i + 1] = (short)(16 + i);
    }
    __m512i perm = _mm512_loadu_si512(idx);
    for (int p = 0; p < pv; p++) {
        const float *x = src + 2 * (size_t)p * ks;
        __m512bh b = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + ks), _mm512_loadu_ps(x));
        _mm512_storeu_si512(v, _mm512_permutexvar_epi16(perm, (__m512i)b));
        store_pair16(out, width, pstride, p, v);
    }
}

#else /* never called off x86: sgemm_bf16_supported() is 0 */
static void pairs16_avx512(uint32_t *out, int width, size_t pstride, const float *src, size_t ls, size_t ks, int pv) {
    abort();
}
#endif

static void pack_pairs(uint32_t *out, int width, const float *src, size_t ls, size_t ks, int lines, int kc) {
    int kp = (kc + 1) / 2, padded = (lines + width - 1) / width * width;
    size_t pstride = (size_t)width * kp;
    int pv = ks == 1 ? kc / 32 * 16 : kc / 2; /* pairs the vector path covers */
    for (int l0 = 0; l0 < padded; l0 += 16) {
        int n = padded - l0 < 16 ? padded - l0 : 16, p = 0;
        uint32_t *o = out + (size_t)(l0 / width) * pstride + l0 % width;
        if (n == 16 && l0 + 16 <= lines && pv > 0) {
            pairs16_avx512(o, width, pstride, src + (size_t)l0 * ls, ls, ks, pv);
            p = pv;
        }
        for (int l = l0; l < l0 + n; l++) {
            uint32_t *ol = out + (size_t)(l / width) * pstride + l % width;
            for (int q = p; q < kp; q++) {
                float lo = 0.0f, hi = 0.0f;
                if (l < lines) {
                    lo = src[(size_t)l * ls + (size_t)(2 * q) * ks];
                    if (2 * q + 1 < kc) hi = src[(size_t)l * ls + (size_t)(2 * q + 1) * ks];
                }
                ol[(size_t)q * width] = (uint32_t)to_bf16(lo) | (uint32_t)to_bf16(hi) << 16;
            }
        }
    }
}

/* A[i0:i0+mc, p0:p0+kc] into MR-row panels of pairs along k */
static void pack_a_bf16(uint32_t *out, const float *A, int lda, int transA, int i0, int mc, int p0, int kc) {
    if (transA) pack_pairs(out, MR, A + (size_t)p0 * lda + i0, 1, (size_t)lda, mc, kc);
    else pack_pairs(out, MR, A + (size_t)i0 * lda + p0, (size_t)lda, 1, mc, kc);
}

/* B[p0:p0+kc, j0:j0+nc] into NR-column panels of pairs along k */
static void pack_b_bf16(uint32_t *out, const float *B, int ldb, int transB, int p0, int kc, int j0, int nc) {
    if (transB) pack_pairs(out, NR, B + (size_t)j0 * ldb + p0, (size_t)ldb, 1, nc, kc);
    else pack_pairs(out, NR, B + (size_t)p0 * ldb + j0, 1, (size_t)ldb, nc, kc);
}

#if X86
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void kernel_bf16(int kp, const uint32_t *restrict a,
                                                                               const uint32_t *restrict b,
                                                                               float *restrict c, int ldc,
                                                                               int accumulate) {
    __m512 acc[MR][2];
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int k = 0; k < kp; k++, a += MR, b += NR) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(b), b1 = (__m512bh)_mm512_loadu_si512(b + 16);
        #pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            __m512bh ar = (__m512bh)_mm512_set1_epi32((int)a[r]);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], ar, b0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], ar, b1);
        }
    }
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < 2; j++) {
            float *row = c + (size_t)r * ldc + 16 * j;
            _mm512_storeu_ps(row, accumulate ? _mm512_add_ps(_mm512_loadu_ps(row), acc[r][j]) : acc[r][j]);
        }
}

int sgemm_bf16_supported(void) { /* and not lowered below AVX-512 by TRAIN_SIMD */
    __builtin_cpu_init();
    amx_use(-1); /* asked here, before any parallel region */
    return sgemm_simd(-1) == SGEMM_AVX512 && __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw");
}
#else
static void kernel_bf16(int kp, const uint32_t *restrict a, const uint32_t *restrict b, float *restrict c, int ldc,
                        int accumulate) {
    abort();
}

int sgemm_bf16_supported(void) { return 0; }
#endif

/* Per-thread packing buffers, allocated on first use and kept: one MC x KC
 * block of A, one KC x NC block of B, and a cache that holds either all of
 * a region's A for one KC slice or all of its B (see region). */
static _Thread_local float *pack_a_buf, *pack_b_buf, *cache;
#define CACHE (1 << 20) /* floats: all of A's rows for one KC slice, or all of B for one NC block */

/* C[ic:ic+mc, jc:jc+nc] (+)= the packed A block ap (mc x kc) . the packed B
 * block bp (kc x nc): the micro-kernel over every MR x NR tile, edge tiles
 * through a scratch tile. */
static void macro_tile(const float *ap0, const float *bp0, float *C, int ldc, int acc, int ic, int mc, int jc,
                       int nc, int kc, int bf16, int tc) {
    int kp = (kc + 1) / 2; /* bf16: k in pairs; the packed panels hold kp pairs */
    float edge[MR * NR];
    for (int jp = 0; jp < nc; jp += NR) {
        const float *bp = bp0 + (size_t)jp * (bf16 ? kp : kc);
        int cols = nc - jp < NR ? nc - jp : NR;
        for (int ip = 0; ip < mc; ip += MR) {
            const float *ap = ap0 + (size_t)ip * (bf16 ? kp : kc);
            int rows = mc - ip < MR ? mc - ip : MR;
            float *c = C + (size_t)(ic + ip) * ldc + jc + jp;
            int full = rows == MR && cols == NR && !tc; /* tc: C stored transposed, each tile through edge */
            if (bf16)
                kernel_bf16(kp, (const uint32_t *)ap, (const uint32_t *)bp, full ? c : edge, full ? ldc : NR,
                            full ? acc : 0);
            else if (cols == 1 && simd_level >= SGEMM_AVX2)
                kernel_col1(kc, ap, bp, edge);
            else if (cols <= 16 && simd_level == SGEMM_AVX512)
                kernel_avx512_half(kc, ap, bp, edge, NR);
            else
                kernel_8x32(kc, ap, bp, full ? c : edge, full ? ldc : NR, full ? acc : 0);
            if (full) continue;
            /* an edge tile: computed in full, now keep the valid part */
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < cols; j++) {
                    float *o = tc ? C + (size_t)(jc + jp + j) * ldc + ic + ip + r : c + (size_t)r * ldc + j;
                    *o = acc == 1 ? *o + edge[r * NR + j] : edge[r * NR + j];
                }
        }
    }
}

/* C[ic:ic+mc, jc:jc+nc] (+)= A's block (rows ic.., k from p0, kc deep) read
 * in place . the packed B block bp: every tile full (mc % MR == 0 and
 * nc % NR == 0), AVX-512 or AVX2, fp32; with tc (AVX-512, A not
 * transposed) C is stored transposed, see kernel_avx512_rows_tc. The tiles
 * go column panel by column panel, each down all the block's rows, B's
 * panel read again from L1 or L2 for each. With rows_outer (A not
 * transposed and far larger than the caches, so read from memory: the
 * lm_head's input gradient) they go row group by row group instead: a
 * group's 8 rows, fetched from memory once, serve every column panel from
 * L1, and A's memory reads spread over the whole block rather than all
 * falling in its first column panel. On x2: that product over 2048 tokens
 * (A: 400 MB) 0.96x its time, the T=2048 step 0.975x (ab_step, 5 rounds);
 * GPT-2 124M's in-cache products ran 1.01-1.02x slower rows first, so
 * they keep the column order. The same bits either way. */
static void tiles_in_place(const float *A, int lda, int transA, const float *bp, float *C, int ldc, int acc, int ic,
                           int mc, int jc, int nc, int p0, int kc, int tc, int rows_outer) {
    int tr = mc / MR, tcn = nc / NR;
    for (int u = 0; u < tr * tcn; u++) {
        int ip = (rows_outer ? u / tcn : u % tr) * MR, jp = (rows_outer ? u % tcn : u / tr) * NR;
        float *c = C + (size_t)(ic + ip) * ldc + jc + jp;
        const float *b = bp + (size_t)jp * kc;
        const float *at = transA ? A + (size_t)p0 * lda + ic + ip : A + (size_t)(ic + ip) * lda + p0;
        if (tc) kernel_avx512_rows_tc(kc, at, (size_t)lda, b, C + (size_t)(jc + jp) * ldc + ic + ip, ldc, acc);
        else if (simd_level == SGEMM_AVX512) (transA ? kernel_avx512_cols : kernel_avx512_rows)(kc, at, (size_t)lda, b, c, ldc, acc);
        else (transA ? kernel_avx2_cols : kernel_avx2_rows)(kc, at, (size_t)lda, b, c, ldc, acc);
    }
}

static void pack_a_any(float *out, const float *A, int lda, int transA, int i0, int mc, int p0, int kc, int bf16) {
    if (bf16) pack_a_bf16((uint32_t *)out, A, lda, transA, i0, mc, p0, kc);
    else pack_a(out, A, lda, transA, i0, mc, p0, kc);
}

static void pack_b_any(float *out, const float *B, int ldb, int transB, int p0, int kc, int j0, int nc, int bf16) {
    if (bf16) pack_b_bf16((uint32_t *)out, B, ldb, transB, p0, kc, j0, nc);
    else pack_b(out, B, ldb, transB, p0, kc, j0, nc);
}

/* What is done to each block of C once its last KC slice is in, while it
 * is still in cache: the bias added to every row, then fn (the GELU of
 * the MLP's first layer or its gradient, the residual stream's sum: see
 * matmul_forward_ld). The
 * same operations as a pass over all of C afterwards, the same bits; a C
 * block at a time, the pass does not read C back from memory. */
typedef struct {
    const float *bias;
    BlockFn fn;
    void *ctx;
} Finish;

/* C's rows i0..i1, columns j0..j1, finished; with tc (region computing C
 * transposed) the same in region's coordinates, swapped back here */
static void finish(const Finish *f, float *C, int ldc, int i0, int i1, int j0, int j1, int tc) {
    if (!f) return;
    if (tc) {
        int t0 = i0, t1 = i1;
        i0 = j0, i1 = j1, j0 = t0, j1 = t1;
    }
    if (f->bias)
        for (int i = i0; i < i1; i++) {
            float *c = C + (size_t)i * ldc;
            for (int j = j0; j < j1; j++) c[j] += f->bias[j];
        }
    if (f->fn) f->fn(f->ctx, C, ldc, i0, i1, j0, j1);
}

/* One thread's region C[i0:i1, j0:j1], in BLIS order: for each NC column
 * block and KC slice, B is packed once and reused by every MC row block.
 * Two shapes get another order:
 * - tall and deep (several MC blocks and KC slices, at most one NC block,
 *   all of B fits the cache: a weight gradient over thousands of tokens):
 *   B is packed once, whole, and each MC block of C stays in cache while it
 *   runs through every slice, instead of the whole region of C being swept
 *   once per slice (where the L2 is under 2 MB: tall_route);
 * - wide (several NC blocks, the region's rows of A fit the cache: the
 *   lm_head's forward over 50257 columns): the KC slice goes outside and A
 *   is packed once per slice rather than once per NC block.
 * In every order each C element sums its KC slices in the same order, so
 * the bits do not depend on which one runs. */
static void region(int K, const float *A, int lda, int transA, const float *B, int ldb, int transB, float *C,
                   int ldc, int accumulate, int i0, int i1, int j0, int j1, int bf16, int tc, const Finish *fin) {
    if (!pack_a_buf) {
        pack_a_buf = aligned_alloc(64, sizeof(float) * MC_MAX * KC_MAX);
        pack_b_buf = aligned_alloc(64, sizeof(float) * KC_MAX * NC_MAX);
        cache = aligned_alloc(64, sizeof(float) * CACHE);
        if (!pack_a_buf || !pack_b_buf || !cache) abort();
    }
    if (K == 0) {
        for (int r = i0; accumulate == 0 && r < i1; r++) memset(C + (size_t)r * ldc + j0, 0, (size_t)(j1 - j0) * sizeof *C);
        finish(fin, C, ldc, i0, i1, j0, j1, tc);
        return;
    }
    /* A read in place (tiles_in_place) rather than packed; transposed only
     * while a step in k moves less than a 4 KB page (each step of a tile
     * else touches a page of its own: KC pages for one slice, past the
     * L1 TLB), and where the L2 is 2 MB only in a narrow region (cols_wide) */
    int m = i1 - i0, mpad = (m + MR - 1) / MR * MR;
    int n = j1 - j0, npad = (n + NR - 1) / NR * NR;
    int in_place = (!transA || ((size_t)lda * sizeof *A < 4096 && (cols_wide || n <= 64))) && !bf16 &&
                   simd_level >= SGEMM_AVX2;
    int from_memory = !transA && !tc && (double)m * K * sizeof *A >= 16 << 20; /* see tiles_in_place */
    if (tall_route && m > mc_blk && K > kc_blk && n <= nc_blk && (size_t)K * npad <= CACHE) {
        /* tall and deep (a weight gradient over many tokens): B packed once
         * for every KC slice, then each MC row block runs through all the
         * slices while its block of C stays in cache */
        for (int p0 = 0; p0 < K; p0 += kc_blk)
            pack_b_any(cache + (size_t)p0 * npad, B, ldb, transB, p0, K - p0 < kc_blk ? K - p0 : kc_blk, j0, n, bf16);
        for (int ic = i0; ic < i1; ic += mc_blk) {
            int mc = i1 - ic < mc_blk ? i1 - ic : mc_blk;
            for (int p0 = 0; p0 < K; p0 += kc_blk) {
                int kc = K - p0 < kc_blk ? K - p0 : kc_blk;
                if (in_place && mc % MR == 0 && n % NR == 0) {
                    tiles_in_place(A, lda, transA, cache + (size_t)p0 * npad, C, ldc, p0 > 0 ? 1 : accumulate, ic, mc,
                                   j0, n, p0, kc, tc, 0);
                    continue;
                }
                pack_a_any(pack_a_buf, A, lda, transA, ic, mc, p0, kc, bf16);
                macro_tile(pack_a_buf, cache + (size_t)p0 * npad, C, ldc, p0 > 0 ? 1 : accumulate, ic, mc, j0, n, kc,
                           bf16, tc);
            }
            finish(fin, C, ldc, ic, ic + mc, j0, j1, tc);
        }
        return;
    }
    if (n > nc_blk && (size_t)mpad * kc_blk <= CACHE && !tc) { /* wide: A packed once per KC slice */
        for (int p0 = 0; p0 < K; p0 += kc_blk) {
            int kc = K - p0 < kc_blk ? K - p0 : kc_blk;
            for (int ic = i0; ic < i1; ic += mc_blk)
                pack_a_any(cache + (size_t)(ic - i0) * kc, A, lda, transA, ic, i1 - ic < mc_blk ? i1 - ic : mc_blk, p0,
                           kc, bf16);
            for (int jc = j0; jc < j1; jc += nc_blk) {
                int nc = j1 - jc < nc_blk ? j1 - jc : nc_blk;
                pack_b_any(pack_b_buf, B, ldb, transB, p0, kc, jc, nc, bf16);
                for (int ic = i0; ic < i1; ic += mc_blk) {
                    int mc = i1 - ic < mc_blk ? i1 - ic : mc_blk;
                    macro_tile(cache + (size_t)(ic - i0) * kc, pack_b_buf, C, ldc, p0 > 0 ? 1 : accumulate, ic, mc, jc,
                               nc, kc, bf16, tc);
                    if (p0 + kc == K) finish(fin, C, ldc, ic, ic + mc, jc, jc + nc, tc);
                }
            }
        }
        return;
    }
    for (int jc = j0; jc < j1; jc += nc_blk) {
        int nc = j1 - jc < nc_blk ? j1 - jc : nc_blk;
        for (int p0 = 0; p0 < K; p0 += kc_blk) {
            int kc = K - p0 < kc_blk ? K - p0 : kc_blk;
            pack_b_any(pack_b_buf, B, ldb, transB, p0, kc, jc, nc, bf16);
            for (int ic = i0; ic < i1; ic += mc_blk) {
                int mc = i1 - ic < mc_blk ? i1 - ic : mc_blk;
                if (in_place && mc % MR == 0 && nc % NR == 0) {
                    tiles_in_place(A, lda, transA, pack_b_buf, C, ldc, p0 > 0 ? 1 : accumulate, ic, mc, jc, nc, p0, kc,
                                   tc, from_memory);
                } else {
                    pack_a_any(pack_a_buf, A, lda, transA, ic, mc, p0, kc, bf16);
                    macro_tile(pack_a_buf, pack_b_buf, C, ldc, p0 > 0 ? 1 : accumulate, ic, mc, jc, nc, kc, bf16, tc);
                }
                if (p0 + kc == K) finish(fin, C, ldc, ic, ic + mc, jc, jc + nc, tc);
            }
        }
    }
}

static double stream_min = 32 << 20; /* sgemm_stream */

double sgemm_stream(double min_bytes) {
    if (min_bytes >= 0) stream_min = min_bytes;
    return stream_min;
}

static int transposed_route = 1; /* sgemm_transposed */

int sgemm_transposed(int on) {
    if (on >= 0) transposed_route = on;
    return transposed_route;
}

/* The output is split into one region per thread, evenly in NR-column
 * panels along N, or in MR-row panels along M: along N when M <= N, since
 * each thread then packs all of A (M x K), the smaller operand, and its own
 * share of B. Each element is still summed over k in the same order by
 * exactly one thread, so the bits do not depend on the thread count. */
static void gemm(int M, int N, int K, const float *A, int lda, int transA, const float *B, int ldb, int transB,
                 float *C, int ldc, int accumulate, int bf16, const Finish *fin) {
    if (M <= 0 || N <= 0) return;
    if (!kernel_8x32) sgemm_simd(-1);
    choose_blocks();
    /* A short A against a wide, transposed B (x W^T: a forward over a few
     * hundred tokens, or the lm_head's over any number) is computed as
     * C^T = B A^T and stored back transposed (kernel_avx512_rows_tc): the
     * weight W, the large operand, is then read in place row by row instead
     * of packed, transposed, for every product; A^T is packed, once. GPT-2
     * 124M's forward products on x2 (Intel Xeon), 256 tokens: lm_head 0.81x
     * their time, c_attn 0.94x, all 0.91x; over 2048 tokens the lm_head's
     * 0.99x. The transposed stores cost about a tenth of the product: where
     * B is not many times wider than A is tall, packing B costs less. */
    /* A C that is written whole in one pass over k and is far larger than
     * the caches (the lm_head's logits over 2048 tokens: 400 MB; its weight
     * gradient, 150 MB at GPT-2 124M) goes to memory with non-temporal
     * stores: the ordinary ones first read each line in (for ownership) and
     * stall the tile there, the prefetch notwithstanding. On x2 the lm_head's
     * forward over 2048 tokens took 0.9x its time, the T=2048 and B8 T256
     * steps 0.987x and 0.973x (ab_step), GPT-2 124M's the same; its rows
     * must start 64-byte aligned (the model's logits: gpt2_logits_ld). Not
     * with the transposed route, whose 32-byte column stores would leave
     * lines half written. */
    int stream = stream_min > 0 && !accumulate && !bf16 && simd_level == SGEMM_AVX512 && K > 0 && K <= kc_blk &&
                 ldc % 16 == 0 && (uintptr_t)C % 64 == 0 && (double)M * N * sizeof *C >= stream_min;
    if (stream) accumulate = STREAM;
    int tc = !stream && transposed_route && !bf16 && simd_level == SGEMM_AVX512 && K > 0 && transB && !transA &&
             M % NR == 0 && N >= 4 * M;
    if (tc) {
        const float *t = A;
        A = B, B = t;
        int ld = lda, m = M;
        lda = ldb, ldb = ld, M = N, N = m;
        transB = 1; /* B is the old A, read as A^T; the new A is the old B as stored, transA stays 0 */
    }
    int nt = (double)M * N * K < 2e5 ? 1 : omp_get_max_threads();
    int split_n = M <= N && (N + NR - 1) / NR >= nt;
    int amx = bf16 && K > 0 && amx_use(-1);
    #pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        int i0 = 0, i1 = M, j0 = 0, j1 = N;
        if (split_n) {
            int units = (N + NR - 1) / NR;
            j0 = (int)((long)units * t / n) * NR;
            j1 = (int)((long)units * (t + 1) / n) * NR;
            if (j1 > N) j1 = N;
        } else {
            int units = (M + MR - 1) / MR;
            i0 = (int)((long)units * t / n) * MR;
            i1 = (int)((long)units * (t + 1) / n) * MR;
            if (i1 > M) i1 = M;
        }
        if (i0 < i1 && j0 < j1 && amx) {
            amx_region(K, A, lda, transA, B, ldb, transB, C, ldc, accumulate, i0, i1, j0, j1);
            finish(fin, C, ldc, i0, i1, j0, j1, 0);
        } else if (i0 < i1 && j0 < j1) {
            region(K, A, lda, transA, B, ldb, transB, C, ldc, accumulate, i0, i1, j0, j1, bf16, tc, fin);
        }
#if X86
        if (stream) __builtin_ia32_sfence(); /* the streamed lines in memory before the threads join */
#endif
    }
}

void sgemm(int M, int N, int K, const float *A, int lda, int transA, const float *B, int ldb, int transB, float *C,
           int ldc, int accumulate) {
    gemm(M, N, K, A, lda, transA, B, ldb, transB, C, ldc, accumulate, 0, NULL);
}

void sgemm_bf16(int M, int N, int K, const float *A, int lda, int transA, const float *B, int ldb, int transB,
                float *C, int ldc, int accumulate) {
    gemm(M, N, K, A, lda, transA, B, ldb, transB, C, ldc, accumulate, 1, NULL);
}

int sgemm_bf16_amx(int on) { return amx_use(on); }

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

void matmul_forward_ld(float *out, int ldo, const float *inp, const float *weight, const float *bias, int N, int C,
                       int OC, int bf16, BlockFn then, void *ctx) {
    /* out = inp . weight^T + bias, then `then` on each finished block */
    Finish fin = {bias, then, ctx};
    gemm(N, OC, C, inp, C, 0, weight, C, 1, out, ldo, 0, bf16, bias || then ? &fin : NULL);
}

void matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                    int N, int C, int OC, int bf16) {
    matmul_forward_ld(out, OC, inp, weight, bias, N, C, OC, bf16, NULL, NULL);
}

void matmul_backward_ld(float *dinp, float *dweight, float *dbias, const float *dout, int ldo, const float *inp,
                        const float *weight, int N, int C, int OC, int dw_add, int bf16, BlockFn then, void *ctx) {
    /* forward: out[n,o] = sum_c inp[n,c] weight[o,c] + bias[o] */
    Finish fin = {NULL, then, ctx};
    if (dinp) gemm(N, C, OC, dout, ldo, 0, weight, C, 0, dinp, C, 0, bf16, then ? &fin : NULL); /* dinp = dout . W */
    gemm(OC, C, N, dout, ldo, 1, inp, C, 0, dweight, C, dw_add, bf16, NULL);                   /* dW (+)= dout^T . inp */
    if (!dbias) return;
    /* each thread owns columns of dbias, 64 at a time, summed over the rows
     * in order in registers (the same additions as dbias[o] += d[o] row by
     * row, which GCC leaves in memory, a store and a load per addition) */
    #pragma omp parallel for schedule(static)
    for (int o0 = 0; o0 < OC; o0 += 64) {
        if (o0 + 64 <= OC) {
            vfn sum[64 / VN];
            #pragma GCC unroll 16
            for (int k = 0; k < 64 / VN; k++) sum[k] = vfn_load(dbias + o0 + k * VN);
            for (int n = 0; n < N; n++) {
                const float *d = dout + (size_t)n * ldo + o0;
                #pragma GCC unroll 16
                for (int k = 0; k < 64 / VN; k++) sum[k] += vfn_load(d + k * VN);
            }
            #pragma GCC unroll 16
            for (int k = 0; k < 64 / VN; k++) vfn_store(dbias + o0 + k * VN, sum[k]);
            continue;
        }
        for (int n = 0; n < N; n++) {
            const float *d = dout + (size_t)n * ldo;
            for (int o = o0; o < OC; o++) dbias[o] += d[o];
        }
    }
}

void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int N, int C, int OC, int dw_add, int bf16) {
    matmul_backward_ld(dinp, dweight, dbias, dout, OC, inp, weight, N, C, OC, dw_add, bf16, NULL, NULL);
}
