/* The matrix products every layer uses.
 *
 * sgemm is a packed, cache-blocked single-precision GEMM (BLIS-style loops,
 * an 8x32 register-tiled micro-kernel), parallel over output blocks with
 * OpenMP. Every output element is computed by one thread, summing over k in
 * a fixed order, so results are bit-identical for any thread count.
 *
 * A linear layer stores its weight as [OC, C] (out x in, PyTorch's Linear
 * layout); checkpoints transpose to Hugging Face's Conv1D [in, out]. */
#ifndef MODEL_MATMUL_H
#define MODEL_MATMUL_H

/* C[M,N] (+)= A[M,K] . B[K,N]. A(i,k) is A[i*lda + k], or A[k*lda + i] when
 * transA; B(k,j) is B[k*ldb + j], or B[j*ldb + k] when transB. With
 * accumulate 0, C is overwritten. */
void sgemm(int M, int N, int K, const float *A, int lda, int transA, const float *B, int ldb,
           int transB, float *C, int ldc, int accumulate);

/* The same with A and B rounded to bfloat16 (fp32 accumulation and output),
 * on AVX512-BF16, or on AMX where the CPU has it (model/amx.h); only where
 * sgemm_bf16_supported(). */
void sgemm_bf16(int M, int N, int K, const float *A, int lda, int transA, const float *B, int ldb,
                int transB, float *C, int ldc, int accumulate);
int sgemm_bf16_supported(void);
/* Whether sgemm_bf16 runs on AMX: on < 0 asks; 0 or 1 turns it off, or
 * back on where the CPU has it (TRAIN_AMX=0 starts it off). */
int sgemm_bf16_amx(int on);

/* Whether a short product against a wide transposed B (x W^T) may be
 * computed as C^T = W x^T and stored transposed (AVX-512, fp32): on 1, off
 * 0 (for tests: the two give the same bits), -1 asks. */
int sgemm_transposed(int on);

/* Whether a tall, deep region (a weight gradient over many tokens) takes
 * its own order, B packed whole and each block of C kept in cache through
 * every K slice: on 1, off 0 (the two give the same bits), -1 asks. Chosen
 * from the L2's size at the first product (see matmul.c). */
int sgemm_tall(int on);

/* The size in bytes from which a C written whole in one pass over k (no
 * accumulate, K within one slice, rows 64-byte aligned) is written with
 * non-temporal stores (AVX-512, fp32); 0 never; a negative size asks. */
double sgemm_stream(double min_bytes);

/* The blocks of A (*mc rows) and B (*nc columns) a thread keeps in L2, and
 * the depth of a slice (*kc), chosen from the L2's size at the first
 * product: set to *mc, *nc, *kc where they are multiples of 8 up to 256, of
 * 32 up to 1024 and of 16 up to 512 (else kept), then the sizes in effect
 * written back. For tests: the bits depend on kc only. */
void sgemm_blocks(int *mc, int *nc, int *kc);

/* out[N,OC] = inp[N,C] . weight[OC,C]^T + bias[OC] (bias may be NULL); bf16:
 * the product in bfloat16 (precision=bf16) */
void matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                    int N, int C, int OC, int bf16);

/* dinp[N,C] = dout . weight (overwritten);  dweight[OC,C] += dout^T . inp
 * (= without dw_add);  dbias += column sums (parameter gradients accumulate
 * over micro-batches). dinp or dbias may be NULL. */
void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int N, int C, int OC, int dw_add, int bf16);

/* Work on a finished block of a product's output, rows i0..i1 and columns
 * j0..j1 of C (rows ldc apart), done by the thread that computed it while
 * the block is still in its cache; ctx is the caller's. */
typedef void (*BlockFn)(void *ctx, float *C, int ldc, int i0, int i1, int j0, int j1);

/* The same two with out's (dout's) rows ldo >= OC floats apart (the LM
 * head's logits, whose rows are padded to 64-byte multiples) and, if then
 * is given, then(ctx, ...) on every block of out (after the bias), or of
 * dinp, once it is final: the GELU after the MLP's first layer and its
 * gradient, the residual stream's sum after a projection (ops.h), without
 * a pass of their own over the output. then may be NULL. */
void matmul_forward_ld(float *out, int ldo, const float *inp, const float *weight, const float *bias, int N, int C,
                       int OC, int bf16, BlockFn then, void *ctx);
void matmul_backward_ld(float *dinp, float *dweight, float *dbias, const float *dout, int ldo, const float *inp,
                        const float *weight, int N, int C, int OC, int dw_add, int bf16, BlockFn then, void *ctx);

/* The micro-kernel build in use: chosen at the first call from the CPU
 * (AVX-512, else AVX2 with FMA, else portable SSE2), lowered by the
 * environment variable TRAIN_SIMD=avx2|portable, or set by passing a level
 * (tests run all three). Returns the level now in use. */
enum { SGEMM_PORTABLE, SGEMM_AVX2, SGEMM_AVX512 };
int sgemm_simd(int level);   /* level < 0: keep (or choose) */
const char *sgemm_simd_name(void);

/* A plain triple loop with double accumulation, for tests. */
void sgemm_reference(int M, int N, int K, const float *A, int lda, int transA, const float *B,
                     int ldb, int transB, float *C, int ldc, int accumulate);

#endif
