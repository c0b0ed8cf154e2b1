/* Finite-difference checks of every op's backward on tiny shapes, the SGEMM
 * against a double-precision reference for every transpose and edge shape,
 * and softmax attention against a dense masked reference, with causality.
 *
 * Each check projects the op's output on a fixed random R, L = sum(out * R)
 * (in double), runs backward with dout = R, and compares a sample of input
 * coordinates with a central difference, Richardson-extrapolated
 * ((4 D(h/2) - D(h)) / 3) so that the truncation error is O(h^4). */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "../attention/attention.h"
#include "../common/rng.h"
#include "../common/vmath.h"
#include "../model/matmul.h"
#include "../model/ops.h"
#include "../model/sampler.h"
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

/* Finite differences of a double-precision forward are accurate to ~1e-9,
 * so our float backward can be held to 1e-4 of the gradient's scale. Each
 * op below has a double forward (a few lines, from its formula) that maps
 * the double inputs in ctx to the loss sum(out * R). */
typedef double (*LossD)(void *ctx);

/* Checks grad at 40 coordinates of x (20 evenly spread, 20 random). */
static int fd_check(const char *what, LossD loss, void *ctx, double *x, const float *grad, size_t n) {
    double scale = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(grad[i]));
    int bad = 0;
    for (int s = 0; s < 40 && s < (int)n; s++) {
        size_t i = n <= 40 ? (size_t)s : s < 20 ? (size_t)s * n / 20 : rng_below(&rng, n);
        double orig = x[i];
        x[i] = orig + 1e-6;
        double lp = loss(ctx);
        x[i] = orig - 1e-6;
        double lm = loss(ctx);
        x[i] = orig;
        double fd = (lp - lm) / 2e-6;
        if (fabs(fd - grad[i]) > 1e-4 * scale + 1e-4 * fabs(fd)) {
            if (bad++ < 3) printf("  %s[%zu]: analytic %.7g, finite difference %.7g\n", what, i, grad[i], fd);
        }
    }
    return bad;
}

static double dot(const float *a, const float *r, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * r[i];
    return s;
}

static double *to_double(const float *x, size_t n) {
    double *d = owned(malloc(n * sizeof *d));
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* max |a - b| over max |b| */
static double rel_diff(const float *a, const double *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs(a[i] - b[i]));
        den = fmax(den, fabs(b[i]));
    }
    return num / (den > 0 ? den : 1);
}

/* ------------------------------------------------------------------------ */

/* Every micro-kernel build this CPU can run: AVX-512, AVX2, portable. */
static void test_sgemm_against_reference(void) {
    int shapes[][3] = {{1, 1, 1}, {7, 33, 5}, {8, 32, 256}, {9, 31, 257}, {130, 70, 300}, {64, 600, 40}, {3, 1030, 17}, {40, 1100, 300}, {600, 40, 600},
                       {48, 96, 8195}, {44, 64, 8192}, /* deep: A read in place where its rows allow */
                       {256, 64, 600}}; /* tall and deep (B packed whole), A in place */
    int best = sgemm_simd(-1), tested = 0;
    for (int level = SGEMM_PORTABLE; level <= best; level++, tested++) {
        sgemm_simd(level);
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
                CHECK(err < 1e-4 * sqrt(K), "%s: M%d N%d K%d transA %d transB %d acc %d: max error %g",
                      sgemm_simd_name(), M, N, K, ta, tb, acc, err);
                release();
            }
    }
    sgemm_simd(best);
    printf("  SGEMM kernels tested: %d of 3 (this CPU's best: %s)\n", tested, sgemm_simd_name());
    CHECK(tested >= 1, "no kernel tested");
}

/* A transposed is read in place while its rows are less than a page apart,
 * packed beyond: the same sums in the same order, so the same bits. */
static void test_sgemm_in_place_bits(void) {
    const int M = 256, N = 64, K = 600, far = 1100; /* lda M: in place; lda far: packed */
    float *A = randn((size_t)K * M, 1), *B = randn((size_t)K * N, 1);
    float *Af = owned(calloc((size_t)K * far, sizeof *Af));
    float *C1 = owned(calloc((size_t)M * N, sizeof *C1)), *C2 = owned(calloc((size_t)M * N, sizeof *C2));
    for (int k = 0; k < K; k++) memcpy(Af + (size_t)k * far, A + (size_t)k * M, M * sizeof *A);
    int best = sgemm_simd(-1);
    for (int level = SGEMM_AVX2; level <= best; level++) { /* the builds that read in place */
        sgemm_simd(level);
        sgemm(M, N, K, A, M, 1, B, N, 0, C1, N, 0);
        sgemm(M, N, K, Af, far, 1, B, N, 0, C2, N, 0);
        CHECK(memcmp(C1, C2, (size_t)M * N * sizeof *C1) == 0, "%s: A^T read in place and packed differ",
              sgemm_simd_name());
    }
    sgemm_simd(best);
    release();
}

/* An A read in place that is far larger than the caches (16 MB and up: the
 * lm_head's input gradient) is walked row group by row group rather than
 * column panel by column panel (see tiles_in_place): the same bits as the
 * same product summed one KC slice per call, each call's A small enough
 * for the column order. */
static void test_sgemm_rows_first_bits(void) {
    const int M = 64, N = 256, K = 65600; /* 64 x 65600 floats: 16.8 MB */
    int mc = 0, nc = 0, kc = 0;
    sgemm_blocks(&mc, &nc, &kc);
    float *A = randn((size_t)M * K, 1), *B = randn((size_t)K * N, 1);
    float *C1 = owned(malloc((size_t)M * N * sizeof *C1)), *C2 = owned(malloc((size_t)M * N * sizeof *C2));
    int best = sgemm_simd(-1);
    for (int level = SGEMM_AVX2; level <= best; level++) { /* the builds that read in place */
        sgemm_simd(level);
        sgemm(M, N, K, A, K, 0, B, N, 0, C1, N, 0);
        for (int p0 = 0; p0 < K; p0 += kc)
            sgemm(M, N, K - p0 < kc ? K - p0 : kc, A + p0, K, 0, B + (size_t)p0 * N, N, 0, C2, N, p0 > 0);
        CHECK(memcmp(C1, C2, (size_t)M * N * sizeof *C1) == 0, "%s: A read row group first and by slices differ",
              sgemm_simd_name());
    }
    sgemm_simd(best);
    release();
}

/* A copy of n floats, 64-byte aligned (freed by release) */
static float *owned_copy(const float *src, size_t n) {
    float *p = owned(aligned_alloc(64, (n * sizeof *p + 63) / 64 * 64));
    memcpy(p, src, n * sizeof *p);
    return p;
}

/* The largest difference between c and ref, and (in *scale) ref's largest
 * magnitude */
static double max_diff(const float *c, const float *ref, size_t n, double *scale) {
    double err = 0;
    *scale = 0;
    for (size_t i = 0; i < n; i++) {
        err = fmax(err, fabs((double)c[i] - ref[i]));
        *scale = fmax(*scale, fabs((double)ref[i]));
    }
    return err;
}

/* x W^T with W wide (the forward over few tokens, the lm_head's) runs as
 * C^T = W x^T stored transposed (sgemm_transposed): the same bits as the
 * ordinary route, with K within one slice and across several, a last tile
 * of W's rows cut short (N % 8), a ldc wider than N, accumulation, 1 and 2
 * threads; and near the double reference. */
static void test_sgemm_transposed_bits(void) {
    if (sgemm_simd(-1) != SGEMM_AVX512) {
        printf("  (the transposed route is AVX-512's: nothing to test)\n");
        return;
    }
    int shapes[][4] = {{32, 128, 256, 128}, {64, 1031, 768, 1031}, {96, 2304, 300, 2310}, {32, 4100, 1024, 4100}};
    int threads = omp_get_max_threads();
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int acc = 0; acc < 2; acc++)
            for (int nt = 1; nt <= 2; nt++) {
                int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], ldc = shapes[s][3];
                float *A = randn((size_t)M * K, 1), *B = randn((size_t)N * K, 1), *C0 = randn((size_t)M * ldc, 1);
                float *C1 = owned_copy(C0, (size_t)M * ldc), *C2 = owned_copy(C0, (size_t)M * ldc);
                float *ref = owned_copy(C0, (size_t)M * ldc);
                omp_set_num_threads(nt);
                sgemm_transposed(1);
                sgemm(M, N, K, A, K, 0, B, K, 1, C1, ldc, acc);
                sgemm_transposed(0);
                sgemm(M, N, K, A, K, 0, B, K, 1, C2, ldc, acc);
                sgemm_transposed(1);
                sgemm_reference(M, N, K, A, K, 0, B, K, 1, ref, ldc, acc);
                CHECK(memcmp(C1, C2, (size_t)M * ldc * sizeof *C1) == 0,
                      "%dx%dx%d ldc %d acc %d, %d threads: transposed and ordinary routes differ", M, N, K, ldc, acc, nt);
                double scale, err = max_diff(C1, ref, (size_t)M * ldc, &scale);
                CHECK(err <= 1e-5 * scale, "%dx%dx%d acc %d: transposed route vs reference: %g of %g", M, N, K, acc,
                      err, scale);
                release();
            }
    omp_set_num_threads(threads);
}

/* A C written in one pass, 64-byte aligned rows, streamed past the caches
 * (sgemm_stream; non-temporal stores) gives the bits of the ordinary
 * stores; products it must not take (K deeper than a slice, rows not
 * aligned, accumulating) are still right. */
static void test_sgemm_stream_bits(void) {
    if (sgemm_simd(-1) != SGEMM_AVX512) {
        printf("  (streamed stores are AVX-512's: nothing to test)\n");
        return;
    }
    /* M, N, K, ldc, transA, transB: x W^T, A in place, a weight gradient,
     * then too deep, and rows not aligned */
    int shapes[][6] = {{64, 1040, 256, 1040, 0, 1}, {300, 1100, 200, 1104, 0, 0}, {512, 96, 256, 96, 1, 0},
                       {64, 1040, 600, 1040, 0, 1}, {64, 1030, 256, 1030, 0, 1}};
    int threads = omp_get_max_threads();
    double min = sgemm_stream(-1);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int t = 0; t < 4; t++) {
            int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], ldc = shapes[s][3], ta = shapes[s][4];
            int tb = shapes[s][5], acc = t & 1, nt = 1 + (t >> 1);
            float *A = randn((size_t)M * K, 1), *B = randn((size_t)K * N, 1), *C0 = randn((size_t)M * ldc, 1);
            float *C1 = owned_copy(C0, (size_t)M * ldc), *C2 = owned_copy(C0, (size_t)M * ldc);
            float *ref = owned_copy(C0, (size_t)M * ldc);
            omp_set_num_threads(nt);
            sgemm_stream(1);
            sgemm(M, N, K, A, ta ? M : K, ta, B, tb ? K : N, tb, C1, ldc, acc);
            sgemm_stream(0);
            sgemm_transposed(0);
            sgemm(M, N, K, A, ta ? M : K, ta, B, tb ? K : N, tb, C2, ldc, acc);
            sgemm_transposed(1);
            sgemm_reference(M, N, K, A, ta ? M : K, ta, B, tb ? K : N, tb, ref, ldc, acc);
            CHECK(memcmp(C1, C2, (size_t)M * ldc * sizeof *C1) == 0,
                  "%dx%dx%d ldc %d acc %d, %d threads: streamed and ordinary stores differ", M, N, K, ldc, acc, nt);
            double scale, err = max_diff(C1, ref, (size_t)M * ldc, &scale);
            CHECK(err <= 1e-5 * scale, "%dx%dx%d acc %d: streamed stores vs reference: %g of %g", M, N, K, acc, err,
                  scale);
            release();
        }
    sgemm_stream(min);
    omp_set_num_threads(threads);
}

/* Either size of the blocks kept in L2 (sgemm_blocks: 128 x 512 for 1 MB
 * of L2, 256 x 512 from 2 MB, and 1024 columns), and the tall-and-deep
 * order on or off (sgemm_tall), give the same bits, on shapes that take
 * each of region's orders (tall and deep, wide, the plain one) and cross
 * several blocks, with every transpose; at either depth of a
 * slice (256 below 2 MB of L2, 512 from 2 MB), whose bits differ but which
 * both agree with the reference. */
static void test_sgemm_blocks_bits(void) {
    int shapes[][3] = {{700, 300, 700}, {100, 3000, 300}, {600, 1100, 600}, {300, 2100, 260}, {300, 1100, 1100}};
    int mc = 0, nc = 0, kc = 0, tall = sgemm_tall(-1);
    sgemm_blocks(&mc, &nc, &kc); /* the sizes in effect, to put back */
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int t = 0; t < 8; t++) {
            int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], ta = t & 1, tb = (t >> 1) & 1;
            int depth = t >> 2 ? 512 : 256;
            float *A = randn((size_t)M * K, 1), *B = randn((size_t)K * N, 1);
            float *C1 = owned(calloc((size_t)M * N, sizeof *C1)), *C2 = owned(calloc((size_t)M * N, sizeof *C2));
            float *C3 = owned(calloc((size_t)M * N, sizeof *C3)), *R = owned(calloc((size_t)M * N, sizeof *R));
            float *C4 = owned(calloc((size_t)M * N, sizeof *C4));
            int sizes[3][3] = {{128, 512, depth}, {256, 512, depth}, {256, 1024, depth}};
            float *out[3] = {C1, C2, C3};
            for (int b = 0; b < 3; b++) {
                sgemm_blocks(&sizes[b][0], &sizes[b][1], &sizes[b][2]);
                sgemm(M, N, K, A, ta ? M : K, ta, B, tb ? K : N, tb, out[b], N, 0);
            }
            sgemm_tall(!tall); /* the tall-and-deep order (the first shape's) the other way */
            sgemm(M, N, K, A, ta ? M : K, ta, B, tb ? K : N, tb, C4, N, 0);
            sgemm_tall(tall);
            size_t bytes = (size_t)M * N * sizeof *C1;
            CHECK(sizes[2][0] == 256 && sizes[2][1] == 1024 && sizes[2][2] == depth && memcmp(C1, C2, bytes) == 0 &&
                      memcmp(C1, C3, bytes) == 0 && memcmp(C1, C4, bytes) == 0,
                  "%dx%dx%d ta %d tb %d, %d deep: the block sizes or the order differ", M, N, K, ta, tb, depth);
            sgemm_reference(M, N, K, A, ta ? M : K, ta, B, tb ? K : N, tb, R, N, 0);
            double err = 0;
            for (size_t i = 0; i < (size_t)M * N; i++) err = fmax(err, fabs(C1[i] - R[i]));
            CHECK(err < 1e-4 * sqrt(K), "%dx%dx%d ta %d tb %d, %d deep: max error %g", M, N, K, ta, tb, depth, err);
            release();
        }
    sgemm_blocks(&mc, &nc, &kc);
}

static float round_bf16(float x) { /* to nearest even, as the packing does */
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u += 0x7fff + ((u >> 16) & 1);
    u &= 0xffff0000u;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* bf16 products, on each kernel this CPU has (AVX512-BF16, and AMX where
 * it can run): with the inputs rounded to bf16 beforehand, the reference
 * in double must match to fp32 accumulation (so pairing, padding of odd k,
 * transposes, edges and AMX's blocks of 512 k, 128 rows and 512 columns are
 * all right); the result stays near fp32's; and 1 and 2 threads give the
 * same bits. */
static void test_sgemm_bf16(void) {
    if (!sgemm_bf16_supported()) {
        printf("  (this CPU has no AVX512-BF16: nothing to test)\n");
        return;
    }
    int shapes[][3] = {{1, 1, 1}, {7, 33, 5}, {8, 32, 256}, {9, 31, 257}, {130, 70, 301}, {3, 1030, 17}, {48, 1100, 67},
                       {601, 40, 601}, {300, 530, 1100}, {64, 64, 1024}};
    int amx = sgemm_bf16_amx(-1);
    for (int kernel = 0; kernel <= amx; kernel++) {
        sgemm_bf16_amx(kernel);
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            for (int t = 0; t < 8; t++) {
                int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], ta = t & 1, tb = (t >> 1) & 1, acc = t >> 2;
                size_t na = (size_t)M * K, nb = (size_t)K * N, nc = (size_t)M * N;
                float *A = randn(na, 1), *B = randn(nb, 1), *C = randn(nc, 1);
                float *Ar = owned(malloc(na * 4)), *Br = owned(malloc(nb * 4)), *R = owned(malloc(nc * 4));
                float *F = owned(malloc(nc * 4)), *C1 = owned(malloc(nc * 4));
                for (size_t i = 0; i < na; i++) Ar[i] = round_bf16(A[i]);
                for (size_t i = 0; i < nb; i++) Br[i] = round_bf16(B[i]);
                memcpy(R, C, nc * 4);
                memcpy(F, C, nc * 4);
                memcpy(C1, C, nc * 4);
                sgemm_bf16(M, N, K, A, ta ? M : K, ta, B, tb ? K : N, tb, C, N, acc);
                omp_set_num_threads(1);
                sgemm_bf16(M, N, K, A, ta ? M : K, ta, B, tb ? K : N, tb, C1, N, acc);
                omp_set_num_threads(omp_get_num_procs());
                sgemm_reference(M, N, K, Ar, ta ? M : K, ta, Br, tb ? K : N, tb, R, N, acc);
                sgemm_reference(M, N, K, A, ta ? M : K, ta, B, tb ? K : N, tb, F, N, acc);
                double err = 0, far = 0;
                for (size_t i = 0; i < nc; i++) {
                    err = fmax(err, fabs(C[i] - R[i]));
                    far = fmax(far, fabs(C[i] - F[i]));
                }
                const char *name = kernel ? "AMX" : "AVX512-BF16";
                CHECK(err < 1e-4 * sqrt(K), "%s: M%d N%d K%d transA %d transB %d acc %d: %g from the bf16-rounded "
                      "reference", name, M, N, K, ta, tb, acc, err);
                CHECK(far < 2e-2 * sqrt(K), "%s: M%d N%d K%d: %g from fp32", name, M, N, K, far);
                CHECK(memcmp(C, C1, nc * 4) == 0, "%s: M%d N%d K%d transA %d transB %d: 1 and 2 threads differ",
                      name, M, N, K, ta, tb);
                release();
            }
    }
    sgemm_bf16_amx(amx);
    printf("  bf16 kernels tested: AVX512-BF16%s\n", amx ? " and AMX" : " (this CPU has no AMX)");
}

typedef struct {
    double *inp, *w, *b, *r;
    int N, C, OC;
} MatmulD;

static double matmul_d(void *p) {
    MatmulD *c = p;
    double L = 0;
    for (int n = 0; n < c->N; n++)
        for (int o = 0; o < c->OC; o++) {
            double y = c->b[o];
            for (int k = 0; k < c->C; k++) y += c->inp[n * c->C + k] * c->w[o * c->C + k];
            L += y * c->r[n * c->OC + o];
        }
    return L;
}

static void test_matmul_backward(void) {
    const int N = 13, C = 19, OC = 83; /* the bias gradient: a vector of 64 columns, then a tail */
    float *inp = randn((size_t)N * C, 1), *w = randn((size_t)OC * C, 0.5f), *b = randn(OC, 0.5f), *r = randn((size_t)N * OC, 1);
    /* dinp starts as garbage: it is overwritten, the parameter gradients accumulate */
    float *out = zeros((size_t)N * OC), *dinp = randn((size_t)N * C, 1), *dw = zeros((size_t)OC * C);
    float *db0 = randn(OC, 1), *db = owned_copy(db0, OC);
    matmul_forward(out, inp, w, b, N, C, OC, 0);
    matmul_backward(dinp, dw, db, r, inp, w, N, C, OC, 1, 0);
    for (int o = 0; o < OC; o++) db[o] -= db0[o]; /* added to what it held */
    MatmulD d = {to_double(inp, (size_t)N * C), to_double(w, (size_t)OC * C), to_double(b, OC), to_double(r, (size_t)N * OC), N, C, OC};
    double ref[13 * 83];
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            ref[n * OC + o] = d.b[o];
            for (int k = 0; k < C; k++) ref[n * OC + o] += d.inp[n * C + k] * d.w[o * C + k];
        }
    CHECK(rel_diff(out, ref, (size_t)N * OC) < 1e-6, "forward");
    CHECK(!fd_check("dinp", matmul_d, &d, d.inp, dinp, (size_t)N * C), "matmul dinp");
    CHECK(!fd_check("dweight", matmul_d, &d, d.w, dw, (size_t)OC * C), "matmul dweight");
    CHECK(!fd_check("dbias", matmul_d, &d, d.b, db, OC), "matmul dbias");
    /* without dw_add the weight gradient is written, whatever it held */
    float *dw2 = randn((size_t)OC * C, 1), *db2 = zeros(OC);
    matmul_backward(dinp, dw2, db2, r, inp, w, N, C, OC, 0, 0);
    CHECK(memcmp(dw2, dw, (size_t)OC * C * sizeof *dw) == 0, "matmul dweight written (dw_add 0) differs from added to zero");
}

/* The GELU, a residual (and the bias) done on each block of the product as
 * it is finished (matmul_forward_ld / _backward_ld with a BlockFn): the
 * same bits as the product, then a pass over all of it; in shapes that take
 * each of gemm's orders (tall and deep, wide, the rest; the transposed
 * route with one K slice and with two), at every SIMD level, and in bf16
 * (AMX where the CPU has it). A block left out, or done twice, differs. */
static void test_matmul_then_bits(void) {
    const int shapes[][3] = {{40, 24, 72}, {64, 128, 512}, {256, 768, 1024}, {600, 200, 1100}}; /* N, C, OC */
    int best = sgemm_simd(-1);
    for (int s = 0; s < 4; s++) {
        const int N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        const size_t no = (size_t)N * OC, ni = (size_t)N * C;
        float *inp = randn(ni, 1), *w = randn((size_t)OC * C, 0.1f), *b = randn(OC, 0.5f), *r = randn(no, 1);
        float *x = randn(ni, 1); /* the GELU's input for the backward */
        float *out = zeros(no), *g = zeros(no), *out2 = zeros(no), *g2 = zeros(no);
        float *dinp = zeros(ni), *dinp2 = zeros(ni), *dw = zeros((size_t)OC * C), *db = zeros(OC);
        for (int run = SGEMM_PORTABLE; run <= best + 1; run++) { /* each level in fp32, then bf16 (AMX where there) */
            int bf16 = run > best;
            if (bf16 && !sgemm_bf16_supported()) break;
            sgemm_simd(bf16 ? best : run);
            const char *what = bf16 ? "bf16" : sgemm_simd_name();
            matmul_forward(out, inp, w, b, N, C, OC, bf16);
            gelu_forward(g, out, (int)no);
            matmul_forward_ld(out2, OC, inp, w, b, N, C, OC, bf16, gelu_forward_block, g2);
            CHECK(memcmp(out, out2, no * sizeof *out) == 0 && memcmp(g, g2, no * sizeof *g) == 0,
                  "%s, N %d C %d OC %d: the forward with the GELU on its blocks differs", what, N, C, OC);
            residual_forward(g, r, out, (int)no); /* a residual added to the output, g = r + out */
            ResidualAdd add = {r, g2};
            matmul_forward_ld(out2, OC, inp, w, b, N, C, OC, bf16, residual_block, &add);
            CHECK(memcmp(g, g2, no * sizeof *g) == 0, "%s, N %d C %d OC %d: the residual added on its blocks differs",
                  what, N, C, OC);
            matmul_backward(dinp, dw, db, r, inp, w, N, C, OC, 0, bf16);
            gelu_backward(dinp, x, dinp, (int)ni);
            matmul_backward_ld(dinp2, dw, NULL, r, OC, inp, w, N, C, OC, 0, bf16, gelu_backward_block, x);
            CHECK(memcmp(dinp, dinp2, ni * sizeof *dinp) == 0,
                  "%s, N %d C %d OC %d: the input gradient through the GELU on its blocks differs", what, N, C, OC);
        }
        sgemm_simd(best);
        release();
    }
}

typedef struct {
    double *inp, *w, *b, *r;
    int N, C;
} LnD;

static void layernorm_d(double *out, const LnD *c) {
    for (int n = 0; n < c->N; n++) {
        const double *x = c->inp + n * c->C;
        double m = 0, v = 0;
        for (int k = 0; k < c->C; k++) m += x[k] / c->C;
        for (int k = 0; k < c->C; k++) v += (x[k] - m) * (x[k] - m) / c->C;
        for (int k = 0; k < c->C; k++) out[n * c->C + k] = (x[k] - m) / sqrt(v + 1e-5) * c->w[k] + c->b[k];
    }
}

static double ln_d(void *p) {
    LnD *c = p;
    double *out = malloc((size_t)c->N * c->C * sizeof *out), L = 0;
    layernorm_d(out, c);
    for (int i = 0; i < c->N * c->C; i++) L += out[i] * c->r[i];
    free(out);
    return L;
}

/* Shapes: one chunk of rows (ops.c's LN_ROWS, 32), and three with the last
 * one short and channels past whole vectors. The gradients are added to
 * what the buffers hold; 1 and 2 threads give the same bits. */
static void test_layernorm_backward(void) {
    const int shapes[][2] = {{6, 24}, {70, 40}};
    int threads = omp_get_max_threads();
    for (size_t sh = 0; sh < sizeof shapes / sizeof *shapes; sh++) {
        const int N = shapes[sh][0], C = shapes[sh][1];
        float *inp = randn(N * C, 2), *w = randn(C, 1), *b = randn(C, 1), *r = randn(N * C, 1);
        float *out = zeros(N * C), *mean = zeros(N), *rstd = zeros(N);
        float *dinp0 = randn(N * C, 1), *dw0 = randn(C, 1), *db0 = randn(C, 1);
        float *dinp[2], *dw[2], *db[2];
        layernorm_forward(out, mean, rstd, inp, w, b, N, C);
        for (int nt = 1; nt <= 2; nt++) {
            dinp[nt - 1] = owned_copy(dinp0, N * C), dw[nt - 1] = owned_copy(dw0, C), db[nt - 1] = owned_copy(db0, C);
            omp_set_num_threads(nt);
            layernorm_backward(dinp[nt - 1], dw[nt - 1], db[nt - 1], r, inp, w, mean, rstd, N, C);
        }
        omp_set_num_threads(threads);
        CHECK(!memcmp(dinp[0], dinp[1], (size_t)N * C * sizeof(float)) && !memcmp(dw[0], dw[1], C * sizeof(float)) &&
                  !memcmp(db[0], db[1], C * sizeof(float)),
              "N %d C %d: 1 and 2 threads give other bits", N, C);
        for (int i = 0; i < N * C; i++) dinp[1][i] -= dinp0[i];
        for (int i = 0; i < C; i++) dw[1][i] -= dw0[i], db[1][i] -= db0[i];
        LnD d = {to_double(inp, N * C), to_double(w, C), to_double(b, C), to_double(r, N * C), N, C};
        double *ref = owned(malloc((size_t)N * C * sizeof *ref));
        layernorm_d(ref, &d);
        CHECK(rel_diff(out, ref, N * C) < 1e-6, "N %d C %d: forward", N, C);
        CHECK(!fd_check("dinp", ln_d, &d, d.inp, dinp[1], N * C), "N %d C %d: layernorm dinp", N, C);
        CHECK(!fd_check("dweight", ln_d, &d, d.w, dw[1], C), "N %d C %d: layernorm dweight", N, C);
        CHECK(!fd_check("dbias", ln_d, &d, d.b, db[1], C), "N %d C %d: layernorm dbias", N, C);
        release();
    }
}

static double gelu1_d(double x) { return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); }

typedef struct {
    double *x, *r;
    int n;
} GeluD;

static double gelu_d(void *p) {
    GeluD *c = p;
    double L = 0;
    for (int i = 0; i < c->n; i++) L += gelu1_d(c->x[i]) * c->r[i];
    return L;
}

static void test_gelu_backward(void) {
    float *x = randn(40, 2), *r = randn(40, 1), *out = zeros(40), *dinp = randn(40, 1); /* overwritten */
    gelu_forward(out, x, 40);
    gelu_backward(dinp, x, r, 40);
    GeluD d = {to_double(x, 40), to_double(r, 40), 40};
    double ref[40];
    for (int i = 0; i < 40; i++) ref[i] = gelu1_d(d.x[i]);
    CHECK(rel_diff(out, ref, 40) < 1e-6, "forward: the tanh approximation");
    CHECK(!fd_check("dinp", gelu_d, &d, d.x, dinp, 40), "gelu dinp");
}

/* GELU and its derivative on a grid over [-12, 12], 64 points a unit,
 * against the formula in double, to a few float roundings of each value
 * (times 1 + |2u|, which exp(-2u) multiplies them by): through the
 * saturation on both sides, the far negative tail (where 0.5 x (1 + tanh u)
 * computed as written in float is 0 from x = -7 on, the true value there
 * about 1e-16), and the turn near x = -0.75 where the derivative crosses
 * 0. */
static void test_gelu_grid(void) {
    enum { n = 24 * 64 + 1 };
    float *x = zeros(n), *out = zeros(n), *g = zeros(n);
    for (int i = 0; i < n; i++) x[i] = -12.0f + (float)i / 64;
    for (int i = 0; i < n; i++) g[i] = 1.0f;
    gelu_forward(out, x, n);
    gelu_backward(g, x, g, n);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        /* 0.5 v (1 + tanh u) as v sigmoid(2u): 1 + tanh u cancels to 0 in
         * double below v = -7 */
        double v = x[i], u = sqrt(2 / M_PI) * (v + 0.044715 * v * v * v), e = exp(-2 * u), s = 1 / (1 + e);
        double f = v * s, df = s + 2 * v * sqrt(2 / M_PI) * (1 + 3 * 0.044715 * v * v) * e * s * s;
        double rel = 3e-7 * (1 + 2 * fabs(u)); /* float's rounding of u, through exp(-2u) */
        if (!(fabs(out[i] - f) <= rel * fabs(f) + 1e-30 && fabs(g[i] - df) <= rel * fabs(df) + 1e-6) && bad++ < 3)
            printf("  gelu(%g) = %.9g (want %.9g), gelu'(%g) = %.9g (want %.9g)\n", v, out[i], f, v, g[i], df);
    }
    CHECK(bad == 0, "%d of %d grid points off", bad, n);
}

typedef struct {
    double *l;
    int *targets, N, V;
} CeD;

static double ce_d(void *p) {
    CeD *c = p;
    double L = 0;
    for (int n = 0; n < c->N; n++) {
        const double *l = c->l + n * c->V;
        double mx = l[0], s = 0;
        for (int v = 1; v < c->V; v++) mx = fmax(mx, l[v]);
        for (int v = 0; v < c->V; v++) s += exp(l[v] - mx);
        L += (mx + log(s) - l[c->targets[n]]) / c->N;
    }
    return L;
}

/* Rows shorter than a vector and longer (full vectors and a tail); the
 * fused forward and backward gives the same loss and bits; rows further
 * apart than V (the model's logits, 16-float rows) the same bits again,
 * the floats between rows untouched. */
static void test_crossentropy_backward(void) {
    const int N = 5, Vs[2] = {11, 53};
    for (int i = 0; i < 2; i++) {
        const int V = Vs[i], ld = V + 5;
        float *logits = randn(N * V, 3), *losses = zeros(N), *lse = zeros(N), *d = zeros(N * V);
        float *fused = owned(malloc((size_t)N * V * sizeof *fused)), *losses2 = zeros(N), *lse2 = zeros(N);
        int targets[5];
        for (int n = 0; n < N; n++) targets[n] = (n * 13) % V;
        float loss = crossentropy_forward(losses, lse, logits, targets, N, V, V);
        crossentropy_backward(d, logits, targets, 1.0f / N, N, V, V);
        CeD c = {to_double(logits, N * V), targets, N, V};
        double want = ce_d(&c);
        CHECK(fabs(loss - want) < 1e-6 * fabs(want), "V %d: loss %.8f vs %.8f", V, loss, want);
        CHECK(!fd_check("dlogits", ce_d, &c, c.l, d, N * V), "V %d: cross-entropy dlogits", V);
        memcpy(fused, logits, (size_t)N * V * sizeof *fused);
        float loss2 = crossentropy_forward_backward(losses2, lse2, fused, targets, 1.0f / N, N, V, V);
        CHECK(loss2 == loss && memcmp(lse2, lse, N * sizeof *lse) == 0 && memcmp(fused, d, (size_t)N * V * sizeof *d) == 0,
              "V %d: forward_backward differs from forward then backward", V);
        float *wide = owned(malloc((size_t)N * ld * sizeof *wide));
        float *wide_d = owned(malloc((size_t)N * ld * sizeof *wide_d));
        for (int n = 0; n < N; n++) {
            memcpy(wide + (size_t)n * ld, logits + (size_t)n * V, (size_t)V * sizeof *wide);
            for (int k = V; k < ld; k++) wide[(size_t)n * ld + k] = wide_d[(size_t)n * ld + k] = 1e30f;
        }
        float loss3 = crossentropy_forward(losses2, lse2, wide, targets, N, V, ld);
        crossentropy_backward(wide_d, wide, targets, 1.0f / N, N, V, ld);
        float loss4 = crossentropy_forward_backward(losses2, lse2, wide, targets, 1.0f / N, N, V, ld);
        int same = loss3 == loss && loss4 == loss;
        for (int n = 0; n < N; n++) {
            same &= memcmp(wide + (size_t)n * ld, d + (size_t)n * V, (size_t)V * sizeof *d) == 0 &&
                    memcmp(wide_d + (size_t)n * ld, d + (size_t)n * V, (size_t)V * sizeof *d) == 0;
            for (int k = V; k < ld; k++)
                same &= wide[(size_t)n * ld + k] == 1e30f && wide_d[(size_t)n * ld + k] == 1e30f;
        }
        CHECK(same, "V %d: rows %d apart differ from rows V apart", V, ld);
        release();
    }
}

typedef struct {
    double *wte, *wpe, *r;
    int *inp, B, T, C;
} EncD;

static double enc_d(void *p) {
    EncD *c = p;
    double L = 0;
    for (int bt = 0; bt < c->B * c->T; bt++)
        for (int k = 0; k < c->C; k++)
            L += (c->wte[c->inp[bt] * c->C + k] + c->wpe[(bt % c->T) * c->C + k]) * c->r[bt * c->C + k];
    return L;
}

static void test_encoder_backward(void) {
    float *wte = randn(7 * 20, 1), *wpe = randn(5 * 20, 1), *r = randn(2 * 5 * 20, 1);
    float *dwte = zeros(7 * 20), *dwpe = zeros(5 * 20);
    int inp[10];
    for (int i = 0; i < 10; i++) inp[i] = i % 3; /* repeated tokens accumulate */
    encoder_backward(dwte, dwpe, r, inp, 2, 5, 20);
    EncD d = {to_double(wte, 140), to_double(wpe, 100), to_double(r, 200), inp, 2, 5, 20};
    CHECK(!fd_check("dwte", enc_d, &d, d.wte, dwte, 140), "encoder dwte");
    CHECK(!fd_check("dwpe", enc_d, &d, d.wpe, dwpe, 100), "encoder dwpe");
}

/* Dropout's masks: about p of the elements dropped (within 6 standard
 * deviations), the rest scaled by exactly 1 / (1 - p); the same key and site
 * give the same mask whatever the thread count, applied in place or to a
 * gradient; another site or key gives an independent one (both drop about
 * p^2); p = 0 is the identity. */
static void test_dropout_masks(void) {
    const size_t n = (size_t)1 << 20;
    const float p = 0.3f, scale = 1.0f / (1.0f - p);
    float *ones = zeros(n), *a = zeros(n), *b = zeros(n), *c = zeros(n), *x = randn(n, 1), *y = zeros(n);
    for (size_t i = 0; i < n; i++) ones[i] = 1.0f;
    omp_set_num_threads(2);
    dropout_apply(a, ones, n, p, 42, 3);
    omp_set_num_threads(1);
    dropout_apply(b, ones, n, p, 42, 3);
    omp_set_num_threads(omp_get_num_procs());
    CHECK(memcmp(a, b, n * sizeof *a) == 0, "the mask depends on the thread count");
    size_t dropped = 0, bad = 0, both_site = 0, both_key = 0;
    dropout_apply(b, ones, n, p, 42, 4);
    dropout_apply(c, ones, n, p, 43, 3);
    for (size_t i = 0; i < n; i++) {
        dropped += a[i] == 0.0f;
        bad += a[i] != 0.0f && a[i] != scale;
        both_site += a[i] == 0.0f && b[i] == 0.0f;
        both_key += a[i] == 0.0f && c[i] == 0.0f;
    }
    double sd = sqrt(p * (1 - p) / (double)n), f = (double)dropped / (double)n;
    CHECK(fabs(f - p) < 6 * sd, "dropped %.5f of the elements, want %.2f", f, (double)p);
    CHECK(bad == 0, "%zu kept values are not scaled by exactly 1/(1-p)", bad);
    double sd2 = sqrt(p * p * (1 - p * p) / (double)n);
    CHECK(fabs((double)both_site / (double)n - p * p) < 6 * sd2, "sites 3 and 4 share %.5f of their drops, want %.4f",
          (double)both_site / (double)n, (double)(p * p));
    CHECK(fabs((double)both_key / (double)n - p * p) < 6 * sd2, "keys 42 and 43 share %.5f of their drops, want %.4f",
          (double)both_key / (double)n, (double)(p * p));
    memcpy(y, x, n * sizeof *y);
    dropout_apply(y, y, n, p, 42, 3); /* in place, on other values: the same mask */
    for (size_t i = 0; i < n; i++) bad += y[i] != (a[i] != 0.0f ? x[i] * scale : 0.0f);
    CHECK(bad == 0, "%zu elements masked differently in place", bad);
    dropout_apply(y, x, n, 0.0f, 42, 3);
    CHECK(memcmp(x, y, n * sizeof *x) == 0, "p = 0 changes values");
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

/* The tiled forward (att_loss) against dense_softmax on the same inputs:
 * the largest difference of the outputs. */
static double softmax_dense_error(AttCtx *c) {
    size_t n = (size_t)c->B * c->T * c->a.n_embd, nq = n * 3;
    att_loss(c);
    double *x = calloc(nq, sizeof *x), *o = calloc(n, sizeof *o), err = 0;
    for (size_t i = 0; i < nq; i++) x[i] = c->qkv[i];
    dense_softmax(x, o, c->B, c->T, c->a.n_head, c->a.head_size);
    for (size_t i = 0; i < n; i++) err = fmax(err, fabs(o[i] - c->out[i]));
    free(x);
    free(o);
    return err;
}

static void test_softmax_attention(void) {
    AttCtx c = att_setup(2, 150, 2, 8); /* three query and key tiles, a partial one last */
    size_t n = (size_t)c.B * c.T * c.a.n_embd, nq = n * 3;
    double err = softmax_dense_error(&c);
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
    free(before);
}

/* Scores hundreds apart (queries and keys scaled by 40): the output is
 * exact only if every row's shift is its true maximum over all visible
 * keys, in every tile (a shift short of it by more than 88 saturates exp).
 * The forward takes the maxima of full tiles from the product's registers,
 * of the others from the stored scores; T = 150 has both. */
static void test_softmax_attention_far_scores(void) {
    AttCtx c = att_setup(1, 150, 2, 8);
    for (int t = 0; t < c.T; t++)
        for (int d = 0; d < 2 * c.a.n_embd; d++) c.qkv[(size_t)t * 3 * c.a.n_embd + d] *= 40.0f;
    double err = softmax_dense_error(&c);
    CHECK(err < 1e-3, "tiled vs dense, scores hundreds apart: max error %g", err);
}

static void test_vector_exp_and_tanh(void) {
    double worst_exp = 0, worst_tanh = 0;
    for (float x = -87.0f; x < 88.3f; x += 0.00731f) worst_exp = fmax(worst_exp, fabs(exp_fast(x) - exp(x)) / exp(x));
    for (float x = -10; x < 10; x += 0.000913f)
        if (fabs(tanh(x)) > 1e-30) worst_tanh = fmax(worst_tanh, fabs(tanh_fast(x) - tanh(x)) / fabs(tanh(x)));
    CHECK(worst_exp < 5e-7 && worst_tanh < 5e-7, "relative errors: exp %g, tanh %g", worst_exp, worst_tanh);
    CHECK(exp_fast(-100) == 0 && exp_fast(0) == 1 && isnan(exp_fast(NAN)), "exp edge cases");
}

/* descending probability, then ascending id */
static int prob_order(const void *a, const void *b, void *key) {
    const float *p = key;
    int i = *(const int *)a, j = *(const int *)b;
    return p[i] != p[j] ? (p[i] > p[j] ? -1 : 1) : i - j;
}

/* top-k selects the same ids in the same order as sorting every id, ties
 * included (logits on 16 levels: thousands of equal probabilities), and
 * the token drawn is one of them. */
static void test_sampler_top_k(void) {
    enum { V = 5000 };
    int ks[] = {1, 2, 50, 777, V - 1}, *ref = malloc(V * sizeof *ref);
    float *logits = malloc(V * sizeof *logits);
    for (size_t c = 0; c < sizeof ks / sizeof *ks; c++) {
        Sampler s;
        sampler_init(&s, V, 1.0f, ks[c], 1.0f);
        for (int round = 0; round < 3; round++) {
            for (int v = 0; v < V; v++) logits[v] = (float)rng_below(&rng, 16) * 0.25f;
            int tok = sampler_pick(&s, logits, &rng);
            for (int v = 0; v < V; v++) ref[v] = v;
            qsort_r(ref, V, sizeof *ref, prob_order, s.prob);
            CHECK(memcmp(s.idx, ref, (size_t)ks[c] * sizeof *ref) == 0, "k = %d: not the first k of a full sort", ks[c]);
            int in = 0;
            for (int i = 0; i < ks[c]; i++) in |= ref[i] == tok;
            CHECK(in, "k = %d: token %d is not among the k most probable", ks[c], tok);
        }
        sampler_free(&s);
    }
    free(ref);
    free(logits);
}

/* Each test draws from its own random stream and frees its buffers after. */
static void run_seeded(const char *name, void (*fn)(void), int stream) {
    rng_seed(&rng, 99, (uint64_t)stream);
    run_test_(name, fn);
    release();
}

int main(void) {
    run_seeded("test_sgemm_against_reference", test_sgemm_against_reference, 1);
    run_seeded("test_sgemm_in_place_bits", test_sgemm_in_place_bits, 2);
    run_seeded("test_sgemm_rows_first_bits", test_sgemm_rows_first_bits, 2);
    run_seeded("test_sgemm_transposed_bits", test_sgemm_transposed_bits, 2);
    run_seeded("test_sgemm_stream_bits", test_sgemm_stream_bits, 2);
    run_seeded("test_sgemm_blocks_bits", test_sgemm_blocks_bits, 2);
    run_seeded("test_matmul_backward", test_matmul_backward, 2);
    run_seeded("test_matmul_then_bits", test_matmul_then_bits, 2);
    run_seeded("test_sgemm_bf16", test_sgemm_bf16, 3);
    run_seeded("test_layernorm_backward", test_layernorm_backward, 4);
    run_seeded("test_gelu_backward", test_gelu_backward, 5);
    run_seeded("test_gelu_grid", test_gelu_grid, 5);
    run_seeded("test_crossentropy_backward", test_crossentropy_backward, 6);
    run_seeded("test_encoder_backward", test_encoder_backward, 7);
    run_seeded("test_softmax_attention", test_softmax_attention, 8);
    run_seeded("test_softmax_attention_far_scores", test_softmax_attention_far_scores, 8);
    run_seeded("test_vector_exp_and_tanh", test_vector_exp_and_tanh, 9);
    run_seeded("test_sampler_top_k", test_sampler_top_k, 10);
    run_seeded("test_dropout_masks", test_dropout_masks, 11);
    return 0;
}
