/* Picks the next token from a row of logits: temperature, then top-k, then
 * top-p (nucleus), then a draw from the renormalised distribution.
 * Temperature 0 is greedy (the first maximum). */
#ifndef MODEL_SAMPLER_H
#define MODEL_SAMPLER_H

#include "../common/rng.h"

typedef struct {
    float temperature;  /* 0: greedy */
    int top_k;          /* 0: all */
    float top_p;        /* 1: all */
    int V;
    float *prob;        /* [V] scratch */
    int *idx;           /* [V] scratch */
} Sampler;

void sampler_init(Sampler *s, int V, float temperature, int top_k, float top_p);
void sampler_free(Sampler *s);
int sampler_pick(Sampler *s, const float *logits, Rng *r);

#endif
