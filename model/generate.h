/* Text generation with a cache: each new token runs the network on one
 * position (matrix-vector products) and the attention kind's decode step,
 * which reads a per-layer state (softmax: the K and V of the context), so a
 * token costs O(context), not a full forward. The prompt is run through the
 * batched forward once and its states are filled from the q, k, v it saved.
 *
 * Past block_size the context slides: the newest block_size/2 tokens are
 * kept and run through again at positions 0.. (learned absolute positions
 * leave no cheaper exact option). Without the cache (for comparison), every
 * token re-runs the full forward over the same window. */
#ifndef MODEL_GENERATE_H
#define MODEL_GENERATE_H

#include "gpt2.h"

typedef struct {
    GPT2 *m;              /* built with B = 1, T = block_size */
    int use_cache;
    int *tokens, len;     /* the context window */
    float *state;         /* [L][n_state] */
    float *x, *ln, *qkv, *att, *fc, *fcg; /* one position's activations */
    float *mean_rstd;     /* [2] */
    float *logits;        /* [V], the next-token logits */
} Generator;

int generator_init(Generator *g, GPT2 *m, int use_cache, Err *e);
void generator_free(Generator *g);
/* Starts from these tokens (at least one; only the last block_size are kept). */
void generator_prompt(Generator *g, const int *tokens, int n);
/* Appends a token and computes the next logits. */
void generator_push(Generator *g, int token);

#endif
