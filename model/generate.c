#include "generate.h"

#include <stdlib.h>
#include <string.h>

#include "../common/vmath.h"
#include "ops.h"

int generator_init(Generator *g, GPT2 *m, int use_cache, Err *e) {
    memset(g, 0, sizeof *g);
    const GPT2Config *c = &m->cfg;
    if (m->B != 1 || m->T != c->block_size)
        return err_set(e, "internal error: the generator needs a model built for B = 1, T = block_size");
    size_t C = (size_t)c->n_embd, ns = c->kind->n_state(&c->attn, c->block_size);
    g->m = m;
    g->use_cache = use_cache;
    g->tokens = malloc((size_t)c->block_size * sizeof *g->tokens);
    g->state = use_cache ? malloc((size_t)c->n_layer * ns * sizeof *g->state) : NULL;
    g->x = malloc((14 * C + 2 + (size_t)c->vocab_size) * sizeof *g->x);
    if (!g->tokens || !g->x || (use_cache && !g->state)) {
        generator_free(g);
        return err_set(e, "out of memory for the generation cache (%.1f MB)",
                       (double)c->n_layer * (double)ns * 4 / 1e6);
    }
    g->ln = g->x + C;
    g->qkv = g->ln + C;
    g->att = g->qkv + 3 * C;
    g->fc = g->att + C;
    g->fcg = g->fc + 4 * C;
    g->mean_rstd = g->fcg + 4 * C;
    g->logits = g->mean_rstd + 2;
    return 0;
}

void generator_free(Generator *g) {
    free(g->tokens);
    free(g->state);
    free(g->x);
    memset(g, 0, sizeof *g);
}

/* out[OC] = W[OC, C] . x + bias. Memory-bound: all of W is read once a
 * token (GPT-2 124M's weights, 0.5 GB, at 50-60 GB/s on 2 threads), row
 * after row (one stream a thread), each row with four running sums so that
 * the FMAs' latency does not hold the loads back (one sum was 10-20 %
 * slower; four rows at a time, four streams, slower still). */
static void gemv(float *out, const float *W, const float *bias, const float *x, int C, int OC) {
    #pragma omp parallel for schedule(static)
    for (int o = 0; o < OC; o++) {
        const float *w = W + (size_t)o * C;
        vfn a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        int i = 0;
        for (; i + 4 * VN <= C; i += 4 * VN) {
            a0 += vfn_load(w + i) * vfn_load(x + i);
            a1 += vfn_load(w + i + VN) * vfn_load(x + i + VN);
            a2 += vfn_load(w + i + 2 * VN) * vfn_load(x + i + 2 * VN);
            a3 += vfn_load(w + i + 3 * VN) * vfn_load(x + i + 3 * VN);
        }
        for (; i + VN <= C; i += VN) a0 += vfn_load(w + i) * vfn_load(x + i);
        vfn acc = (a0 + a1) + (a2 + a3);
        float l[VN], s = 0.0f;
        vfn_store(l, acc);
        for (int k = 0; k < VN; k++) s += l[k];
        for (; i < C; i++) s += w[i] * x[i];
        out[o] = s + (bias ? bias[o] : 0.0f);
    }
}

/* Runs the batched forward over the window; refills the cache from its q, k, v. */
static void run_window(Generator *g) {
    GPT2 *m = g->m;
    const GPT2Config *c = &m->cfg;
    int n = g->len, C = c->n_embd;
    size_t na = c->kind->n_params(&c->attn), ns = c->kind->n_state(&c->attn, c->block_size);
    gpt2_forward(m, g->tokens, NULL, 1, n);
    memcpy(g->logits, gpt2_logits(m, n - 1), (size_t)c->vocab_size * sizeof *g->logits);
    if (!g->use_cache) return;
    for (int l = 0; l < c->n_layer; l++) {
        const float *qkv = m->a.qkv + (size_t)l * n * 3 * C;
        for (int t = 0; t < n; t++)
            c->kind->decode(&c->attn, m->p.attn + l * na, qkv + (size_t)t * 3 * C, g->state + l * ns, t, NULL);
    }
}

/* One position through the network with the cache: the logits after it. */
static void step(Generator *g, int token, int pos) {
    GPT2 *m = g->m;
    const GPT2Config *c = &m->cfg;
    const ParamTensors *p = &m->p;
    const int C = c->n_embd;
    size_t na = c->kind->n_params(&c->attn), ns = c->kind->n_state(&c->attn, c->block_size);
    float *x = g->x, *ln = g->ln;
    for (int i = 0; i < C; i++) x[i] = p->wte[(size_t)token * C + i] + p->wpe[(size_t)pos * C + i];
    for (int l = 0; l < c->n_layer; l++) {
        layernorm_forward(ln, g->mean_rstd, g->mean_rstd + 1, x, p->ln1w + l * C, p->ln1b + l * C, 1, C);
        gemv(g->qkv, p->qkvw + (size_t)l * 3 * C * C, p->qkvb + l * 3 * C, ln, C, 3 * C);
        c->kind->decode(&c->attn, p->attn + l * na, g->qkv, g->state + l * ns, pos, g->att);
        gemv(ln, p->attprojw + (size_t)l * C * C, p->attprojb + l * C, g->att, C, C);
        for (int i = 0; i < C; i++) x[i] += ln[i];
        layernorm_forward(ln, g->mean_rstd, g->mean_rstd + 1, x, p->ln2w + l * C, p->ln2b + l * C, 1, C);
        gemv(g->fc, p->fcw + (size_t)l * 4 * C * C, p->fcb + l * 4 * C, ln, C, 4 * C);
        gelu_forward(g->fcg, g->fc, 4 * C);
        gemv(ln, p->fcprojw + (size_t)l * 4 * C * C, p->fcprojb + l * C, g->fcg, 4 * C, C);
        for (int i = 0; i < C; i++) x[i] += ln[i];
    }
    layernorm_forward(ln, g->mean_rstd, g->mean_rstd + 1, x, p->lnfw, p->lnfb, 1, C);
    gemv(g->logits, p->wte, NULL, ln, C, c->vocab_size);
}

void generator_prompt(Generator *g, const int *tokens, int n) {
    int T = g->m->cfg.block_size;
    if (n > T) {
        tokens += n - T;
        n = T;
    }
    memcpy(g->tokens, tokens, (size_t)n * sizeof *tokens);
    g->len = n;
    run_window(g);
}

void generator_push(Generator *g, int token) {
    int T = g->m->cfg.block_size;
    if (g->len == T) { /* full: keep the newest T/2 tokens, this one included */
        int keep = T / 2 > 0 ? T / 2 : 1;
        memmove(g->tokens, g->tokens + T - (keep - 1), (size_t)(keep - 1) * sizeof *g->tokens);
        g->tokens[keep - 1] = token;
        g->len = keep;
        run_window(g);
        return;
    }
    g->tokens[g->len++] = token;
    if (g->use_cache) step(g, token, g->len - 1);
    else run_window(g);
}
