/* bf16 products on AMX, the tile matrix unit of Intel's Xeons since
 * Sapphire Rapids: what sgemm_bf16 (model/matmul.h) runs where the CPU has
 * it. One TDPBF16PS multiplies a 16 x 32 tile of bf16 by a 32 x 16 one into
 * a 16 x 16 fp32 tile, 16 times the work of an AVX-512 vdpbf16ps: here
 * about 2 TFLOP/s a core on operands in cache, against AVX512-BF16's 0.1-0.2
 * on the same Intel cores (AMD's Zen 5, without AMX, runs vdpbf16ps at
 * twice its fp32 rate instead). Internal to model/matmul.c. */
#ifndef MODEL_AMX_H
#define MODEL_AMX_H

/* Whether sgemm_bf16 runs on AMX. on < 0 keeps the setting, which the
 * first call makes: yes where the CPU has AMX-BF16, the kernel lets this
 * process use the tile registers, and TRAIN_AMX is not 0 (to compare with,
 * or test, the AVX512-BF16 kernel on such a CPU). on = 0 or 1 turns it off,
 * or back on where it can run (tests run both). */
int amx_use(int on);

/* One thread's region of sgemm_bf16: C[i0:i1, j0:j1] (+)= A . B over all K
 * (K > 0), operands as sgemm's, rounded to bf16 (to nearest even) as they
 * are packed, products summed in fp32. Each element sums its k in a fixed
 * order, so the bits do not depend on the regions. */
void amx_region(int K, const float *A, int lda, int transA, const float *B, int ldb, int transB, float *C,
                int ldc, int accumulate, int i0, int i1, int j0, int j1);

#endif
