/* The layer operations of GPT-2 besides matmul and attention. Each is a pair
 * X_forward / X_backward: outputs first, then inputs, then sizes (B, T, C,
 * V). Backward functions accumulate (+=) into their gradient outputs. All are
 * parallel over rows or channels with static schedules: deterministic. */
#ifndef MODEL_OPS_H
#define MODEL_OPS_H

#include <stddef.h>
#include <stdint.h>

/* out[B,T,C] = wte[inp[b,t]] + wpe[t] */
void encoder_forward(float *out, const int *inp, const float *wte, const float *wpe, int B, int T, int C);
void encoder_backward(float *dwte, float *dwpe, const float *dout, const int *inp, int B, int T, int C);

/* out = (inp - mean) * rstd * weight + bias over the last dimension C;
 * mean and rstd [B*T] are saved for backward. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C);
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, const float *mean, const float *rstd, int N, int C);

/* GELU, tanh approximation (GPT-2's). The backward overwrites dinp. */
void gelu_forward(float *out, const float *inp, int n);
void gelu_backward(float *dinp, const float *inp, const float *dout, int n); /* dinp may be dout */
/* The same on a block of a product's output as it is finished (matmul.h's
 * BlockFn: rows i0..i1, columns j0..j1 of C, rows ldc apart): out = gelu(C),
 * out laid out as C; C = gelu'(inp) * C, inp laid out as C. The same bits
 * as the passes above. */
void gelu_forward_block(void *out, float *C, int ldc, int i0, int i1, int j0, int j1);
void gelu_backward_block(void *inp, float *C, int ldc, int i0, int i1, int j0, int j1);

void residual_forward(float *out, const float *a, const float *b, int n);
/* The same on a block of a product's output as it is finished (BlockFn,
 * ctx a ResidualAdd): out = res + C, res and out laid out as C. */
typedef struct {
    const float *res;
    float *out;
} ResidualAdd;
void residual_block(void *ctx, float *C, int ldc, int i0, int i1, int j0, int j1);

/* Dropout with masks drawn from a counter-based hash instead of a random
 * stream: element i of (key, site) is kept iff
 *     mix32(mix32(i ^ k0 ^ mix32(k1)) + k1) >= p 2^32,
 * k0, k1 the low and high words of splitmix64(key ^ (site + 1) 0xd1342543de82ef95)
 * (for i < 2^32; scripts/make_torch_refs.py computes the same masks), and
 * kept values are scaled by 1 / (1 - p). out = mask(in): the forward (out
 * may be in) and, applied to the output's gradient with the same key and
 * site, the backward. Nothing is stored, the mask does not depend on the
 * thread count, and a resumed run draws the same masks. */
void dropout_apply(float *out, const float *in, size_t n, float p, uint64_t key, int site);

/* Cross-entropy of softmax(logits) against targets, per row of V logits,
 * rows ld floats apart (ld >= V): losses[N]; lse[N] keeps each row's
 * log-sum-exp. Returns the mean loss. */
float crossentropy_forward(float *losses, float *lse, const float *logits, const int *targets, int N, int V, int ld);
/* dlogits = (softmax(logits) - onehot(target)) * dloss (logits and dlogits
 * may be the same buffer; both rows ld apart): the same bits as
 * crossentropy_forward_backward. */
void crossentropy_backward(float *dlogits, const float *logits, const int *targets, float dloss, int N, int V,
                           int ld);
/* Both, row by row (a row of 50257 logits is still in cache for its
 * gradient, where two passes would read every row from memory twice):
 * the same numbers, the gradient in place of the logits. */
float crossentropy_forward_backward(float *losses, float *lse, float *logits, const int *targets, float dloss,
                                    int N, int V, int ld);

#endif
