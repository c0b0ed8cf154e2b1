#include "gpt2.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "matmul.h"
#include "ops.h"
#include "optim.h"

/* ------------------------------------------------------------------------ */
/* layout                                                                   */

void gpt2_config_finish(GPT2Config *cfg) {
    cfg->attn.n_head = cfg->n_head;
    cfg->attn.n_embd = cfg->n_embd;
    cfg->attn.head_size = cfg->n_embd / cfg->n_head;
}

static void param_sizes(const GPT2Config *c, size_t s[N_PARAM_TENSORS]) {
    size_t L = (size_t)c->n_layer, C = (size_t)c->n_embd;
    size_t sizes[N_PARAM_TENSORS] = {
        (size_t)c->vocab_size * C, (size_t)c->block_size * C, L * C, L * C, L * 3 * C * C, L * 3 * C,
        L * C * C, L * C, L * C, L * C, L * 4 * C * C, L * 4 * C, L * C * 4 * C, L * C, C, C,
        L * c->kind->n_params(&c->attn),
    };
    memcpy(s, sizes, sizeof sizes);
}

/* positions whose logits are held at once */
static int head_rows(const GPT2Config *c, int BT) { return c->head_rows > 0 && c->head_rows < BT ? c->head_rows : BT; }

/* Activations kept for backward are [L, B, T, ...]; the residual branches'
 * projections (backward never reads them) and, with recompute, the
 * LayerNorm and GELU outputs (backward computes them again) hold one
 * layer's [B, T, ...], which every layer overwrites. The logits come first,
 * at the allocation's start: their rows, gpt2_logits_ld floats apart, then
 * each start 64-byte aligned. */
static void act_sizes(const GPT2Config *c, int B, int T, size_t s[N_ACT_TENSORS]) {
    size_t L = (size_t)c->n_layer, C = (size_t)c->n_embd, BT = (size_t)B * T, Lr = c->recompute ? 1 : L;
    size_t sizes[N_ACT_TENSORS] = {
        (size_t)head_rows(c, B * T) * gpt2_logits_ld(c->vocab_size),
        BT * C, Lr * BT * C, L * BT, L * BT, L * BT * 3 * C, L * BT * C,
        L * c->kind->n_saved(&c->attn, B, T), BT * C, L * BT * C, Lr * BT * C, L * BT, L * BT,
        L * BT * 4 * C, Lr * BT * 4 * C, BT * C, L * BT * C, BT * C, BT, BT, BT,
    };
    memcpy(s, sizes, sizeof sizes);
}

/* The backward's activation gradients, one layer's at a time (GradScratch) */
#define N_SCRATCH 6
static void scratch_sizes(const GPT2Config *c, int B, int T, size_t s[N_SCRATCH]) {
    size_t BT = (size_t)B * T, C = (size_t)c->n_embd;
    size_t sizes[N_SCRATCH] = {BT * C, BT * C, BT * C, BT * 3 * C, BT * 4 * C, BT};
    memcpy(s, sizes, sizeof sizes);
}

size_t gpt2_floats(const GPT2Config *cfg, int B, int T, size_t *n_params) {
    size_t p[N_PARAM_TENSORS], a[N_ACT_TENSORS], d[N_SCRATCH], np = 0, n = 0;
    param_sizes(cfg, p);
    act_sizes(cfg, B, T, a);
    scratch_sizes(cfg, B, T, d);
    for (int i = 0; i < N_PARAM_TENSORS; i++) np += p[i];
    for (int i = 0; i < N_ACT_TENSORS; i++) n += a[i];
    for (int i = 0; i < N_SCRATCH; i++) n += d[i];
    if (n_params) *n_params = np;
    return 2 * np + n;
}

/* Cuts one allocation into the tensors named by an array of pointers. */
static float *carve(float **ptrs[], const size_t *sizes, int n, size_t *total) {
    *total = 0;
    for (int i = 0; i < n; i++) *total += sizes[i];
    float *mem = big_alloc(*total * sizeof(float));
    if (!mem) return NULL;
    float *p = mem;
    for (int i = 0; i < n; i++) {
        *ptrs[i] = p;
        p += sizes[i];
    }
    return mem;
}

static void param_ptrs(ParamTensors *t, float **ptrs[N_PARAM_TENSORS]) {
    float **p[N_PARAM_TENSORS] = {&t->wte, &t->wpe, &t->ln1w, &t->ln1b, &t->qkvw, &t->qkvb,
                                  &t->attprojw, &t->attprojb, &t->ln2w, &t->ln2b, &t->fcw, &t->fcb,
                                  &t->fcprojw, &t->fcprojb, &t->lnfw, &t->lnfb, &t->attn};
    memcpy(ptrs, p, sizeof p);
}

int gpt2_build(GPT2 *m, const GPT2Config *cfg, int B, int T, Err *e) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->B = B;
    m->T = T;
    float **ptrs[N_PARAM_TENSORS];
    param_sizes(cfg, m->param_sizes);
    param_ptrs(&m->p, ptrs);
    m->params = carve(ptrs, m->param_sizes, N_PARAM_TENSORS, &m->n_params);
    if (!cfg->inference) {
        param_ptrs(&m->g, ptrs);
        m->grads = carve(ptrs, m->param_sizes, N_PARAM_TENSORS, &m->n_params);
    }

    ActTensors *a = &m->a;
    float **aptrs[N_ACT_TENSORS] = {&a->logits, &a->encoded, &a->ln1, &a->ln1_mean, &a->ln1_rstd, &a->qkv,
                                    &a->atty, &a->attsaved, &a->attproj, &a->residual2, &a->ln2, &a->ln2_mean,
                                    &a->ln2_rstd, &a->fch, &a->fch_gelu, &a->fcproj, &a->residual3,
                                    &a->lnf, &a->lnf_mean, &a->lnf_rstd, &a->losses};
    act_sizes(cfg, B, T, m->act_sizes);
    m->acts = carve(aptrs, m->act_sizes, N_ACT_TENSORS, &m->n_acts);

    size_t BT = (size_t)B * T, total, dsizes[N_SCRATCH];
    GradScratch *d = &m->d;
    float **dptrs[N_SCRATCH] = {&d->dres, &d->dC1, &d->dC2, &d->dqkv, &d->d4C, &d->lse};
    scratch_sizes(cfg, B, T, dsizes);
    m->scratch_mem = carve(dptrs, dsizes, N_SCRATCH, &total);
    m->inputs = malloc(BT * sizeof *m->inputs);
    m->targets = malloc(BT * sizeof *m->targets);
    if (!m->params || (!cfg->inference && !m->grads) || !m->acts || !m->scratch_mem || !m->inputs || !m->targets) {
        double gb = (double)((cfg->inference ? 1 : 2) * m->n_params + m->n_acts + total) * 4 / 1e9;
        gpt2_free(m);
        return err_set(e, "out of memory: the model needs %.1f GB for parameters, gradients and "
                          "activations at batch_size %d, seq_len %d", gb, B, T);
    }
    if (m->grads) memset(m->grads, 0, m->n_params * sizeof *m->grads);
    return 0;
}

void gpt2_free(GPT2 *m) {
    free(m->params);
    free(m->grads);
    free(m->acts);
    free(m->scratch_mem);
    free(m->inputs);
    free(m->targets);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------------ */
/* initialisation                                                           */

static void normal_fill(float *x, size_t n, float std, Rng *r) {
    for (size_t i = 0; i < n; i += 2) { /* Box-Muller */
        float u1 = rng_float(r), u2 = rng_float(r);
        float rad = sqrtf(-2.0f * logf(1.0f - u1)), th = 6.283185307179586f * u2;
        x[i] = std * rad * cosf(th);
        if (i + 1 < n) x[i + 1] = std * rad * sinf(th);
    }
}

void gpt2_init(GPT2 *m, uint64_t seed) {
    const GPT2Config *c = &m->cfg;
    ParamTensors *p = &m->p;
    size_t L = (size_t)c->n_layer, C = (size_t)c->n_embd;
    Rng r;
    rng_seed(&r, seed, 0x67707432); /* "gpt2" */
    float resid = 0.02f / sqrtf(2.0f * (float)c->n_layer);
    memset(m->params, 0, m->n_params * sizeof *m->params);
    normal_fill(p->wte, (size_t)c->vocab_size * C, 0.02f, &r);
    normal_fill(p->wpe, (size_t)c->block_size * C, 0.02f, &r);
    for (size_t i = 0; i < L * C; i++) p->ln1w[i] = p->ln2w[i] = 1.0f;
    for (size_t i = 0; i < C; i++) p->lnfw[i] = 1.0f;
    normal_fill(p->qkvw, L * 3 * C * C, 0.02f, &r);
    normal_fill(p->attprojw, L * C * C, resid, &r);
    normal_fill(p->fcw, L * 4 * C * C, 0.02f, &r);
    normal_fill(p->fcprojw, L * 4 * C * C, resid, &r);
    size_t na = c->kind->n_params(&c->attn);
    for (size_t l = 0; l < L; l++) c->kind->init(&c->attn, p->attn + l * na, &r);
}

/* ------------------------------------------------------------------------ */
/* forward and backward                                                     */

/* out = res + dropout(x w^T + b) over the last forward's positions, w
 * [C, cin]: a projection back into the residual stream (dropout site
 * `site`), the product in proj (one layer's [B, T, C]). Without dropout the
 * sum is done on each block of the product as it is finished. */
static void project_into_stream(GPT2 *m, float *out, const float *res, float *proj, const float *x, const float *w,
                                const float *b, int cin, int site) {
    const GPT2Config *c = &m->cfg;
    const int BT = m->fwd_B * m->fwd_T, C = c->n_embd;
    ResidualAdd add = {res, out};
    matmul_forward_ld(proj, C, x, w, b, BT, cin, C, c->bf16, m->fwd_dropout ? NULL : residual_block, &add);
    if (!m->fwd_dropout) return;
    dropout_apply(proj, proj, (size_t)BT * C, c->dropout, m->fwd_key, site);
    residual_forward(out, res, proj, BT * C);
}

/* Every layer and the final LayerNorm (a->lnf). */
static void body_forward(GPT2 *m, const int *inputs, const int *targets, int B, int T) {
    const GPT2Config *c = &m->cfg;
    const int L = c->n_layer, C = c->n_embd, BT = B * T;
    const size_t na = c->kind->n_params(&c->attn), ns = c->kind->n_saved(&c->attn, B, T);
    ParamTensors *p = &m->p;
    ActTensors *a = &m->a;
    memcpy(m->inputs, inputs, (size_t)BT * sizeof *inputs);
    if (targets) memcpy(m->targets, targets, (size_t)BT * sizeof *targets);
    m->fwd_B = B;
    m->fwd_T = T;
    const int drop = m->fwd_dropout = m->training && c->dropout > 0.0f;
    const uint64_t key = m->fwd_key = m->dropout_key;
    const size_t nC = (size_t)BT * C;

    encoder_forward(a->encoded, inputs, p->wte, p->wpe, B, T, C);
    if (drop) dropout_apply(a->encoded, a->encoded, nC, c->dropout, key, 0);
    for (int l = 0; l < L; l++) {
        size_t lC = (size_t)l * BT * C, lB = (size_t)l * BT, lr = c->recompute ? 0 : lC;
        float *res = l == 0 ? a->encoded : a->residual3 + lC - (size_t)BT * C;
        float *ln1 = a->ln1 + lr, *qkv = a->qkv + 3 * lC, *atty = a->atty + lC;
        float *ln2 = a->ln2 + lr, *fch = a->fch + 4 * lC, *fch_gelu = a->fch_gelu + 4 * lr;
        layernorm_forward(ln1, a->ln1_mean + lB, a->ln1_rstd + lB, res, p->ln1w + l * C, p->ln1b + l * C, BT, C);
        matmul_forward(qkv, ln1, p->qkvw + (size_t)l * 3 * C * C, p->qkvb + l * 3 * C, BT, C, 3 * C, c->bf16);
        c->kind->forward(&c->attn, p->attn + l * na, qkv, atty, a->attsaved + l * ns, B, T);
        project_into_stream(m, a->residual2 + lC, res, a->attproj, atty, p->attprojw + (size_t)l * C * C,
                            p->attprojb + l * C, C, 1 + 2 * l);
        layernorm_forward(ln2, a->ln2_mean + lB, a->ln2_rstd + lB, a->residual2 + lC, p->ln2w + l * C,
                          p->ln2b + l * C, BT, C);
        matmul_forward_ld(fch, 4 * C, ln2, p->fcw + (size_t)l * 4 * C * C, p->fcb + l * 4 * C, BT, C, 4 * C, c->bf16,
                          gelu_forward_block, fch_gelu); /* fch_gelu = gelu(fch) */
        project_into_stream(m, a->residual3 + lC, a->residual2 + lC, a->fcproj, fch_gelu,
                            p->fcprojw + (size_t)l * 4 * C * C, p->fcprojb + l * C, 4 * C, 2 + 2 * l);
    }
    float *last = a->residual3 + (size_t)(L - 1) * BT * C;
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, last, p->lnfw, p->lnfb, BT, C);
}

/* The LM head and the loss over the last forward's BT positions, head_rows
 * at a time: a chunk's logits, their cross-entropy (a->losses, d->lse) and,
 * with grad, their gradient (the loss is the mean over BT: each row's is
 * dloss_scale / BT) into d->dC1 (lnf's gradient) and g->wte (the tied
 * embedding's). Returns the mean loss. Chunks of a multiple of 512 rows
 * keep the bits: every product sums over k in the same slices (256 or 512
 * wide, from the L2's size: see matmul.c), in the same order, as over all
 * rows at once. */
static float head_loss(GPT2 *m, const int *targets, int BT, int grad, float dloss_scale) {
    const GPT2Config *c = &m->cfg;
    const int V = c->vocab_size, ld = gpt2_logits_ld(V), C = c->n_embd, R = head_rows(c, BT);
    ActTensors *a = &m->a;
    GradScratch *d = &m->d;
    for (int r0 = 0; r0 < BT; r0 += R) {
        int n = BT - r0 < R ? BT - r0 : R;
        const float *x = a->lnf + (size_t)r0 * C;
        matmul_forward_ld(a->logits, ld, x, m->p.wte, NULL, n, C, V, c->bf16, NULL, NULL);
        m->logits_from = r0;
        if (!grad) {
            crossentropy_forward(a->losses + r0, d->lse + r0, a->logits, targets + r0, n, V, ld);
            continue;
        }
        crossentropy_forward_backward(a->losses + r0, d->lse + r0, a->logits, targets + r0, dloss_scale / (float)BT,
                                      n, V, ld);
        matmul_backward_ld(d->dC1 + (size_t)r0 * C, m->g.wte, NULL, a->logits, ld, x, m->p.wte, n, C, V,
                           r0 > 0 || !m->grads_stale, c->bf16, NULL, NULL);
    }
    double total = 0.0; /* in position order, whatever the chunks */
    for (int i = 0; i < BT; i++) total += a->losses[i];
    return (float)(total / BT);
}

float gpt2_forward(GPT2 *m, const int *inputs, const int *targets, int B, int T) {
    const GPT2Config *c = &m->cfg;
    const int BT = B * T, R = head_rows(c, BT);
    body_forward(m, inputs, targets, B, T);
    if (targets) return head_loss(m, targets, BT, 0, 0.0f);
    m->logits_from = BT - R; /* the last positions: what generation reads */
    matmul_forward_ld(m->a.logits, gpt2_logits_ld(c->vocab_size), m->a.lnf + (size_t)m->logits_from * c->n_embd,
                      m->p.wte, NULL, R, c->n_embd, c->vocab_size, c->bf16, NULL, NULL);
    return 0.0f;
}

const float *gpt2_logits(const GPT2 *m, int pos) {
    int held = head_rows(&m->cfg, m->fwd_B * m->fwd_T);
    if (pos < m->logits_from || pos >= m->logits_from + held || pos >= m->fwd_B * m->fwd_T) return NULL;
    return m->a.logits + (size_t)(pos - m->logits_from) * gpt2_logits_ld(m->cfg.vocab_size);
}

/* The gradient reaching a residual branch's output (dropout site `site`):
 * d->dres itself, or with dropout d->dres through the site's mask, in d->dC1
 * (free at both places backward asks, until the MLP's or qkv's input
 * gradient is written there). */
static const float *branch_grad(GPT2 *m, size_t n, int site) {
    if (!m->fwd_dropout) return m->d.dres;
    dropout_apply(m->d.dC1, m->d.dres, n, m->cfg.dropout, m->fwd_key, site);
    return m->d.dC1;
}

/* Backward from lnf's gradient in d->dC1 down to the embeddings. */
static void body_backward(GPT2 *m) {
    const GPT2Config *c = &m->cfg;
    const int B = m->fwd_B, T = m->fwd_T, L = c->n_layer, C = c->n_embd, BT = B * T;
    const size_t na = c->kind->n_params(&c->attn), ns = c->kind->n_saved(&c->attn, B, T);
    ParamTensors *p = &m->p, *g = &m->g;
    ActTensors *a = &m->a;
    GradScratch *d = &m->d;
    const size_t nC = (size_t)BT * C;
    const int add = !m->grads_stale; /* the weight gradients: written or added to */

    memset(d->dres, 0, nC * sizeof(float));
    float *last = a->residual3 + (size_t)(L - 1) * nC;
    layernorm_backward(d->dres, g->lnfw, g->lnfb, d->dC1, last, p->lnfw, a->lnf_mean, a->lnf_rstd, BT, C);

    for (int l = L - 1; l >= 0; l--) {
        size_t lC = (size_t)l * nC, lB = (size_t)l * BT, lr = c->recompute ? 0 : lC;
        float *res = l == 0 ? a->encoded : a->residual3 + lC - nC;
        float *ln1 = a->ln1 + lr, *ln2 = a->ln2 + lr, *fch_gelu = a->fch_gelu + 4 * lr;
        if (c->recompute) { /* the forward's calls on the same inputs: the same bits */
            layernorm_forward(ln1, a->ln1_mean + lB, a->ln1_rstd + lB, res, p->ln1w + l * C, p->ln1b + l * C, BT, C);
            layernorm_forward(ln2, a->ln2_mean + lB, a->ln2_rstd + lB, a->residual2 + lC, p->ln2w + l * C,
                              p->ln2b + l * C, BT, C);
            gelu_forward(fch_gelu, a->fch + 4 * lC, BT * 4 * C);
        }
        /* residual3 = residual2 + dropout(fcproj): dres flows to both */
        /* d4C through the GELU as it is made: gelu'(fch) d4C */
        matmul_backward_ld(d->d4C, g->fcprojw + (size_t)l * 4 * C * C, g->fcprojb + l * C,
                           branch_grad(m, nC, 2 + 2 * l), C, fch_gelu, p->fcprojw + (size_t)l * 4 * C * C, BT, 4 * C,
                           C, add, c->bf16, gelu_backward_block, a->fch + 4 * lC);
        matmul_backward(d->dC1, g->fcw + (size_t)l * 4 * C * C, g->fcb + l * 4 * C, d->d4C, ln2,
                        p->fcw + (size_t)l * 4 * C * C, BT, C, 4 * C, add, c->bf16);
        layernorm_backward(d->dres, g->ln2w + l * C, g->ln2b + l * C, d->dC1, a->residual2 + lC,
                           p->ln2w + l * C, a->ln2_mean + lB, a->ln2_rstd + lB, BT, C);
        /* residual2 = res + dropout(attproj) */
        matmul_backward(d->dC2, g->attprojw + (size_t)l * C * C, g->attprojb + l * C, branch_grad(m, nC, 1 + 2 * l),
                        a->atty + lC, p->attprojw + (size_t)l * C * C, BT, C, C, add, c->bf16);
        memset(d->dqkv, 0, 3 * nC * sizeof(float));
        c->kind->backward(&c->attn, p->attn + l * na, a->qkv + 3 * lC, a->atty + lC, a->attsaved + l * ns,
                          d->dC2, d->dqkv, g->attn + l * na, B, T);
        matmul_backward(d->dC1, g->qkvw + (size_t)l * 3 * C * C, g->qkvb + l * 3 * C, d->dqkv, ln1,
                        p->qkvw + (size_t)l * 3 * C * C, BT, C, 3 * C, add, c->bf16);
        layernorm_backward(d->dres, g->ln1w + l * C, g->ln1b + l * C, d->dC1, res, p->ln1w + l * C,
                           a->ln1_mean + lB, a->ln1_rstd + lB, BT, C);
    }
    if (m->fwd_dropout) dropout_apply(d->dres, d->dres, nC, c->dropout, m->fwd_key, 0);
    encoder_backward(g->wte, g->wpe, d->dres, m->inputs, B, T, C); /* after the LM head's product wrote g->wte */
    m->grads_stale = 0;
}

void gpt2_backward(GPT2 *m, float dloss_scale) {
    const GPT2Config *c = &m->cfg;
    const int BT = m->fwd_B * m->fwd_T, C = c->n_embd, V = c->vocab_size;
    if (head_rows(c, BT) < BT) { /* the forward kept only the last chunk's logits */
        head_loss(m, m->targets, BT, 1, dloss_scale);
    } else {
        crossentropy_backward(m->a.logits, m->a.logits, m->targets, dloss_scale / (float)BT, BT, V,
                              gpt2_logits_ld(V));
        matmul_backward_ld(m->d.dC1, m->g.wte, NULL, m->a.logits, gpt2_logits_ld(V), m->a.lnf, m->p.wte, BT, C, V,
                           !m->grads_stale, c->bf16, NULL, NULL);
    }
    body_backward(m);
}

float gpt2_forward_backward(GPT2 *m, const int *inputs, const int *targets, int B, int T, float dloss_scale) {
    body_forward(m, inputs, targets, B, T);
    float loss = head_loss(m, targets, B * T, 1, dloss_scale);
    body_backward(m);
    return loss;
}

/* Whether the gradient at offset k of m->grads belongs to a weight that a
 * backward's first weight-gradient product writes whole (matmul_backward's
 * dw_add): wte (the LM head's product, before the embedding adds to it) and
 * the four linear layers' weights. */
static int written_by_product(const GPT2 *m, size_t k) {
    static const int tensors[] = {0, 4, 6, 10, 12}; /* wte, qkvw, attprojw, fcw, fcprojw */
    const float *g = m->grads + k;
    const float *const starts[] = {m->g.wte, m->g.qkvw, m->g.attprojw, m->g.fcw, m->g.fcprojw};
    for (int i = 0; i < 5; i++)
        if (g >= starts[i] && g < starts[i] + m->param_sizes[tensors[i]]) return 1;
    return 0;
}

void gpt2_update(GPT2 *m, float *adam_m, float *adam_v, const AdamW *o, int t, float grad_scale) {
    for (int i = 0; i < gpt2_n_tensors(m); i++) {
        TensorInfo ti;
        gpt2_tensor_info(m, i, &ti);
        if (!ti.trainable) continue;
        size_t n = (size_t)ti.shape[0] * (size_t)(ti.ndim == 2 ? ti.shape[1] : 1), k = ti.offset;
        adamw_update(m->params + k, m->grads + k, adam_m + k, adam_v + k, n, o, ti.decay ? o->weight_decay : 0.0f, t,
                     grad_scale, !written_by_product(m, k));
    }
    m->grads_stale = 1;
}

double gpt2_flops_per_token(const GPT2 *m, int T) {
    const GPT2Config *c = &m->cfg;
    double C = c->n_embd, L = c->n_layer;
    double matmul_params = L * 12 * C * C + (double)c->vocab_size * C;
    double attention = L * c->kind->flops(&c->attn, T); /* forward; backward twice that */
    return 6.0 * matmul_params + 3.0 * attention;
}

/* ------------------------------------------------------------------------ */
/* Hugging Face names                                                       */

typedef struct {
    const char *fmt;    /* name, %d for the layer */
    int tensor;         /* index in ParamTensors */
    int rows, cols;     /* per layer, in units: -1 V, -2 maxT, k > 0: k * C, 0: absent */
    int transposed, decay;
} NameRule;

static const NameRule RULES[] = {
    {"transformer.wte.weight", 0, -1, 1, 0, 1},
    {"transformer.wpe.weight", 1, -2, 1, 0, 1},
    {"transformer.h.%d.ln_1.weight", 2, 1, 0, 0, 0},
    {"transformer.h.%d.ln_1.bias", 3, 1, 0, 0, 0},
    {"transformer.h.%d.attn.c_attn.weight", 4, 1, 3, 1, 1},
    {"transformer.h.%d.attn.c_attn.bias", 5, 3, 0, 0, 0},
    {"transformer.h.%d.attn.c_proj.weight", 6, 1, 1, 1, 1},
    {"transformer.h.%d.attn.c_proj.bias", 7, 1, 0, 0, 0},
    {"transformer.h.%d.ln_2.weight", 8, 1, 0, 0, 0},
    {"transformer.h.%d.ln_2.bias", 9, 1, 0, 0, 0},
    {"transformer.h.%d.mlp.c_fc.weight", 10, 1, 4, 1, 1},
    {"transformer.h.%d.mlp.c_fc.bias", 11, 4, 0, 0, 0},
    {"transformer.h.%d.mlp.c_proj.weight", 12, 4, 1, 1, 1},
    {"transformer.h.%d.mlp.c_proj.bias", 13, 1, 0, 0, 0},
    {"transformer.ln_f.weight", 14, 1, 0, 0, 0},
    {"transformer.ln_f.bias", 15, 1, 0, 0, 0},
};
#define N_RULES (int)(sizeof RULES / sizeof *RULES)

static int per_layer(const NameRule *r) { return strstr(r->fmt, "%d") != NULL; }

static int n_rule_tensors(const GPT2 *m) {
    int n = 0;
    for (int i = 0; i < N_RULES; i++) n += per_layer(&RULES[i]) ? m->cfg.n_layer : 1;
    return n;
}

int gpt2_n_tensors(const GPT2 *m) {
    AttnTensor at[ATTN_MAX_TENSORS];
    return n_rule_tensors(m) + m->cfg.n_layer * m->cfg.kind->tensors(&m->cfg.attn, at);
}

void gpt2_tensor_info(const GPT2 *m, int idx, TensorInfo *t) {
    const GPT2Config *c = &m->cfg;
    int nr = n_rule_tensors(m);
    if (idx >= nr) { /* the attention kind's tensors, layer by layer */
        AttnTensor at[ATTN_MAX_TENSORS];
        int nt = c->kind->tensors(&c->attn, at), l = (idx - nr) / nt;
        const AttnTensor *a = &at[(idx - nr) % nt];
        size_t base = 0;
        for (int k = 0; k < N_PARAM_TENSORS - 1; k++) base += m->param_sizes[k];
        memset(t, 0, sizeof *t);
        snprintf(t->name, sizeof t->name, "transformer.h.%d.attn.%s", l, a->name);
        t->offset = base + (size_t)l * c->kind->n_params(&c->attn) + a->offset;
        t->ndim = a->cols ? 2 : 1;
        t->shape[0] = a->rows;
        t->shape[1] = a->cols;
        t->decay = a->decay;
        t->trainable = a->trainable;
        t->own = 1;
        if (a->alt) snprintf(t->alt, sizeof t->alt, "transformer.h.%d.attn.%s", l, a->alt);
        return;
    }
    for (int i = 0; i < N_RULES; i++) {
        const NameRule *r = &RULES[i];
        int count = per_layer(r) ? c->n_layer : 1;
        if (idx >= count) {
            idx -= count;
            continue;
        }
        size_t base = 0;
        for (int k = 0; k < r->tensor; k++) base += m->param_sizes[k];
        size_t each = m->param_sizes[r->tensor] / (size_t)count;
        int dim0 = r->rows == -1 ? c->vocab_size : r->rows == -2 ? c->block_size : r->rows * c->n_embd;
        memset(t, 0, sizeof *t);
        snprintf(t->name, sizeof t->name, r->fmt, idx);
        t->offset = base + (size_t)idx * each;
        t->ndim = r->cols ? 2 : 1;
        t->shape[0] = dim0;
        t->shape[1] = r->cols * c->n_embd;
        t->transposed = r->transposed;
        t->decay = r->decay;
        t->trainable = 1;
        return;
    }
}
