#include "sampler.h"

#include <math.h>
#include <stdlib.h>

#include "../common/err.h"

void sampler_init(Sampler *s, int V, float temperature, int top_k, float top_p) {
    s->V = V;
    s->temperature = temperature;
    s->top_k = top_k > 0 && top_k < V ? top_k : V;
    s->top_p = top_p > 0 && top_p < 1 ? top_p : 1.0f;
    s->prob = xmalloc((size_t)V * sizeof *s->prob);
    s->idx = xmalloc((size_t)V * sizeof *s->idx);
}

void sampler_free(Sampler *s) {
    free(s->prob);
    free(s->idx);
}

/* descending probability, then ascending id: a total order, so the same
 * logits and seed always give the same token */
static int by_prob(const void *a, const void *b, void *key) {
    const float *p = key;
    int i = *(const int *)a, j = *(const int *)b;
    if (p[i] != p[j]) return p[i] > p[j] ? -1 : 1;
    return i - j;
}

int sampler_pick(Sampler *s, const float *logits, Rng *r) {
    int V = s->V, best = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = v;
    if (s->temperature <= 0) return best;
    double sum = 0;
    for (int v = 0; v < V; v++) {
        s->prob[v] = expf((logits[v] - logits[best]) / s->temperature);
        sum += s->prob[v];
    }
    for (int v = 0; v < V; v++) s->prob[v] = (float)(s->prob[v] / sum);
    int n = V;
    if (s->top_k < V || s->top_p < 1) {
        for (int v = 0; v < V; v++) s->idx[v] = v;
        qsort_r(s->idx, (size_t)V, sizeof *s->idx, by_prob, s->prob);
        n = s->top_k;
        double cum = 0;
        for (int k = 0; k < n; k++) {
            cum += s->prob[s->idx[k]];
            if (cum >= s->top_p) {
                n = k + 1;
                break;
            }
        }
    } else {
        for (int v = 0; v < V; v++) s->idx[v] = v;
    }
    double mass = 0;
    for (int k = 0; k < n; k++) mass += s->prob[s->idx[k]];
    double u = rng_float(r) * mass, c = 0;
    for (int k = 0; k < n; k++) {
        c += s->prob[s->idx[k]];
        if (u < c) return s->idx[k];
    }
    return s->idx[n - 1];
}
