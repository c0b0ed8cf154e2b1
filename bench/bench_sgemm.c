/* Our SGEMM beside OpenBLAS's cblas_sgemm on the products GPT-2 124M needs
 * at B*T = 256 tokens: for each linear layer the forward (out = x W^T), the
 * input gradient (dx = dout W) and the weight gradient (dW = dout^T x).
 * Best of REPEATS; prints GFLOP/s and the ratio, then totals weighted by how
 * often each shape runs in a training step. Run by bench/sgemm.sh.
 *   bench_sgemm [REPEATS [TOKENS WIDTH LAYERS]]   (default 5 256 768 12: GPT-2 124M) */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "../model/matmul.h"

static float *rnd(size_t n) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = (float)rand() / RAND_MAX - 0.5f;
    return p;
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 5, N = argc > 2 ? atoi(argv[2]) : 256, W = argc > 3 ? atoi(argv[3]) : 768;
    int L = argc > 4 ? atoi(argv[4]) : 12, bf16 = sgemm_bf16_supported();
    if (reps < 1 || N < 1 || W < 1 || L < 1) {
        fprintf(stderr, "usage: bench_sgemm [REPEATS [TOKENS WIDTH LAYERS]]\n");
        return 1;
    }
    struct { const char *name; int in, out, count; } layers[] = {
        {"c_attn", W, 3 * W, L}, {"attn.c_proj", W, W, L}, {"mlp.c_fc", W, 4 * W, L},
        {"mlp.c_proj", 4 * W, W, L}, {"lm_head", W, 50257, 1},
    };
    printf("%d tokens, width %d, %d layers\n", N, W, L);
    double t_ours = 0, t_blas = 0, t_bf16 = 0, flops_all = 0;
    printf("%-12s %-6s %6s %6s %6s %10s %10s %7s %10s\n", "layer", "pass", "M", "N", "K", "ours GF/s", "BLAS GF/s",
           "ratio", "bf16 GF/s");
    for (int l = 0; l < 5; l++)
        for (int pass = 0; pass < 3; pass++) {
            int C = layers[l].in, OC = layers[l].out, M, Nn, K, ta, tb, lda, ldb;
            /* forward: [N,C] x [OC,C]^T; dinp: [N,OC] x [OC,C]; dW: [N,OC]^T x [N,C] */
            if (pass == 0) { M = N; Nn = OC; K = C; ta = 0; tb = 1; lda = C; ldb = C; }
            else if (pass == 1) { M = N; Nn = C; K = OC; ta = 0; tb = 0; lda = OC; ldb = C; }
            else { M = OC; Nn = C; K = N; ta = 1; tb = 0; lda = OC; ldb = C; }
            float *A = rnd((size_t)M * K), *B = rnd((size_t)K * Nn), *Cm = rnd((size_t)M * Nn);
            double best[3] = {1e9, 1e9, 1e9};
            for (int r = 0; r < reps; r++) {
                double t = omp_get_wtime();
                sgemm(M, Nn, K, A, lda, ta, B, ldb, tb, Cm, Nn, 0);
                t = omp_get_wtime() - t;
                if (t < best[0]) best[0] = t;
                t = omp_get_wtime();
                cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, Nn, K, 1.0f,
                            A, lda, B, ldb, 0.0f, Cm, Nn);
                t = omp_get_wtime() - t;
                if (t < best[1]) best[1] = t;
                if (bf16) {
                    t = omp_get_wtime();
                    sgemm_bf16(M, Nn, K, A, lda, ta, B, ldb, tb, Cm, Nn, 0);
                    t = omp_get_wtime() - t;
                    if (t < best[2]) best[2] = t;
                }
            }
            double fl = 2.0 * M * Nn * K;
            printf("%-12s %-6s %6d %6d %6d %10.1f %10.1f %6.2fx", layers[l].name,
                   pass == 0 ? "fwd" : pass == 1 ? "dinp" : "dW", M, Nn, K, fl / best[0] / 1e9, fl / best[1] / 1e9,
                   best[1] / best[0]);
            if (bf16) printf(" %10.1f\n", fl / best[2] / 1e9);
            else printf(" %10s\n", "-"); /* no AVX512-BF16, or TRAIN_SIMD below avx512 */
            t_ours += best[0] * layers[l].count;
            t_blas += best[1] * layers[l].count;
            t_bf16 += best[2] * layers[l].count;
            flops_all += fl * layers[l].count;
            free(A);
            free(B);
            free(Cm);
        }
    printf("one training step's products: ours %.0f ms (%.0f GF/s), OpenBLAS %.0f ms (%.0f GF/s): ours at %.2fx "
           "OpenBLAS's speed", t_ours * 1e3, flops_all / t_ours / 1e9, t_blas * 1e3, flops_all / t_blas / 1e9,
           t_blas / t_ours);
    if (bf16) printf("; bf16 %.0f ms (%.0f GF/s)", t_bf16 * 1e3, flops_all / t_bf16 / 1e9);
    printf("\n");
    return 0;
}
