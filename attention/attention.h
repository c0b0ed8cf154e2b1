/* The attention interface. Every kind implements one table of functions, so
 * the model never branches on the kind. qkv is the [B, T, 3C] output of
 * c_attn (q, k, v side by side, each split into n_head heads of head_size);
 * out is [B, T, C] before c_proj. No kind allocates a T x T buffer: tiles
 * live in per-thread scratch, and what is saved for backward is O(B*T).
 *
 * Departure from DESIGN.md: backward also receives the forward's output
 * `out`, which both softmax (delta_i = do_i . o_i) and polynomial attention
 * need; saving a second copy of it would double that memory. Also beyond
 * it: n_state and decode (generation), flops (MFU), tensors (checkpoints). */
#ifndef ATTENTION_ATTENTION_H
#define ATTENTION_ATTENTION_H

#include <stddef.h>

#include "../common/rng.h"

typedef struct {
    int n_head, n_embd, head_size;  /* n_embd = n_head * head_size */
    int degree;                     /* polynomial kinds: even, default 4 */
    int sketch_learned;             /* polysketch: 0 random, 1 learned */
    int sketch_size;                /* polysketch: r */
    int block;                      /* polysketch: b, divides T */
    int local_exact;                /* polysketch: exact weights in diagonal blocks */
} AttnConfig;

/* Where head h of sequence b starts: in qkv (and dqkv), whose rows are 3C
 * wide with k at +C and v at +2C; and in out (and dout), rows C wide. */
static inline size_t attn_qkv_at(const AttnConfig *a, int b, int h, int T) {
    return (size_t)b * T * 3 * a->n_embd + (size_t)h * a->head_size;
}
static inline size_t attn_out_at(const AttnConfig *a, int b, int h, int T) {
    return (size_t)b * T * a->n_embd + (size_t)h * a->head_size;
}

/* One of a kind's parameter tensors, for checkpoints and the optimiser:
 * saved as transformer.h.<layer>.attn.<name>, shape [rows] or [rows, cols]. */
typedef struct {
    char name[48];
    size_t offset;                  /* floats from the start of the layer's parameters */
    int rows, cols;                 /* cols 0: a vector */
    int trainable;                  /* 0: fixed (random sketches), no gradient, not updated */
    int decay;                      /* AdamW weight decay applies */
    const char *alt;                /* or NULL: the tensor that stands in for this one when a checkpoint
                                     * of another kind lacks it (init_from, eval: converting kinds) */
} AttnTensor;

#define ATTN_MAX_TENSORS 32

typedef struct {
    const char *name;
    /* its parameter tensors (at most ATTN_MAX_TENSORS); returns how many */
    int (*tensors)(const AttnConfig *, AttnTensor *out);
    size_t (*n_params)(const AttnConfig *);
    size_t (*n_saved)(const AttnConfig *, int B, int T);
    void (*init)(const AttnConfig *, float *params, Rng *);
    void (*forward)(const AttnConfig *, const float *params, const float *qkv, float *out,
                    float *saved, int B, int T);
    /* accumulates (+=) into dqkv and dparams */
    void (*backward)(const AttnConfig *, const float *params, const float *qkv, const float *out,
                     const float *saved, const float *dout, float *dqkv, float *dparams, int B, int T);
    /* Generation, one position at a time: the floats of decoding state per
     * layer for contexts up to T (softmax: the K and V cache), and a step
     * that takes position t's q, k, v (qkv_t [3C]), updates the state, and
     * writes out_t [C] (out_t NULL: only update the state). */
    size_t (*n_state)(const AttnConfig *, int T);
    void (*decode)(const AttnConfig *, const float *params, const float *qkv_t, float *state, int t,
                   float *out_t);
    /* The forward's FLOPs per token of one layer at context T, averaged over
     * the T positions, counting the products of the kind's own algorithm
     * (for MFU: softmax's grow with T, PolySketch's do not). */
    double (*flops)(const AttnConfig *, int T);
} AttentionKind;

extern const AttentionKind attention_softmax, attention_polynomial, attention_polysketch;

/* The forward FLOPs per token of exact causal attention at context T (q.k
 * and w.v over T/2 earlier keys on average): softmax's and polynomial's. */
double attn_dense_flops(const AttnConfig *a, int T);

/* The kind called `name`, or NULL. */
const AttentionKind *attention_find(const char *name);

#endif
