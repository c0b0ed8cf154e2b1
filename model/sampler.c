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

static int before(const float *p, int i, int j) { return p[i] > p[j] || (p[i] == p[j] && i < j); }

/* The k ids that come first in by_prob's order, into idx[0, k) in that
 * order: a heap of the best k so far with the last of them at its root
 * (one comparison for most ids), then those k sorted; the same ids in the
 * same order as sorting all V, in O(V log k) instead of O(V log V). */
static void top_k_ids(int *idx, const float *p, int V, int k) {
    for (int v = 0; v < V; v++) {
        int n = v < k ? v : k, i;
        if (n == k) {
            if (!before(p, v, idx[0])) continue;
            i = 0; /* replace the root, then sift it down */
            for (;;) {
                int c = 2 * i + 1;
                if (c >= k) break;
                if (c + 1 < k && before(p, idx[c], idx[c + 1])) c++; /* the later child */
                if (!before(p, v, idx[c])) break;
                idx[i] = idx[c];
                i = c;
            }
        } else { /* grow: sift up from the end */
            for (i = n; i > 0 && before(p, idx[(i - 1) / 2], v); i = (i - 1) / 2) idx[i] = idx[(i - 1) / 2];
        }
        idx[i] = v;
    }
    qsort_r(idx, (size_t)k, sizeof *idx, by_prob, (void *)p);
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
        top_k_ids(s->idx, s->prob, V, s->top_k);
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
