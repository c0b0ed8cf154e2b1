/* GPT-2 against PyTorch (tests/data/gpt2_ref.safetensors, made by
 * scripts/make_torch_refs.py): loss and logits to 1e-5, every parameter
 * gradient to 1e-5, and the losses of 5 AdamW steps with clipping. The
 * other attention kinds against dense float64 PyTorch versions of them
 * (tests/data/attn_refs.safetensors, same script), and dropout with
 * the same masks (tests/data/dropout_ref.safetensors). Plus determinism: the
 * same seed and threads give the same losses bit for bit. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "../model/checkpoint.h"
#include "../model/gpt2.h"
#include "../model/optim.h"
#include "../model/trainer.h"
#include "test.h"

static StFile ref;
static GPT2Config cfg;
static int B, T;
static int *inputs, *targets;

/* The value of "key":"..." in a safetensors file's metadata, or "" */
static void meta_str(const StFile *f, const char *key, char *out, size_t n) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = f->metadata ? strstr(f->metadata, pat) : NULL;
    size_t k = 0;
    for (p = p ? p + strlen(pat) : ""; *p && *p != '"' && k + 1 < n; p++) out[k++] = *p;
    out[k] = '\0';
}

/* The same as a number (NaN if missing) */
static double meta_num(const StFile *f, const char *key) {
    char text[64];
    meta_str(f, key, text, sizeof text);
    return text[0] ? atof(text) : NAN;
}

static double meta(const char *key) { return meta_num(&ref, key); }

static float *read_f32_from(const StFile *f, const char *name, size_t n) {
    const StTensor *t = st_find(f, name);
    float *x = malloc(n * sizeof *x);
    Err e;
    if (!t || st_read(f, t, "F32", n, x, &e)) {
        printf("  reference tensor %s missing\n", name);
        memset(x, 0, n * sizeof *x);
    }
    return x;
}

static float *read_f32(const char *name, size_t n) { return read_f32_from(&ref, name, n); }

/* max |a - b| / max |b| */
static double rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return num / (den > 0 ? den : 1);
}

static void build(GPT2 *m) {
    Err e;
    CHECK(gpt2_build(m, &cfg, B, T, &e) == 0, "%s", e.msg);
    CHECK(weights_read(m, &ref, "", m->params, &e) == 0, "%s", e.msg);
}

static void test_forward_matches_torch(void) {
    GPT2 m;
    build(&m);
    float loss = gpt2_forward(&m, inputs, targets, B, T);
    float *want = read_f32("loss", 1);
    CHECK(fabsf(loss - want[0]) <= 1e-5f * fabsf(want[0]), "loss %.7f vs torch %.7f", loss, want[0]);
    size_t n = (size_t)B * T * cfg.vocab_size;
    float *logits = read_f32("logits", n);
    double err = rel_err(m.a.logits, logits, n);
    CHECK(err < 1e-5, "logits relative error %.2e", err);
    free(want);
    free(logits);
    gpt2_free(&m);
}

/* Every parameter gradient of m against f's grad.<name> to 1e-5; prints the worst. */
static void grads_vs(const GPT2 *m, const StFile *f) {
    double worst = 0;
    char worst_name[128] = "";
    for (int i = 0; i < gpt2_n_tensors(m); i++) {
        TensorInfo ti;
        gpt2_tensor_info(m, i, &ti);
        size_t n = (size_t)ti.shape[0] * (size_t)(ti.ndim == 2 ? ti.shape[1] : 1);
        char name[128];
        snprintf(name, sizeof name, "grad.%s", ti.name);
        float *want = read_f32_from(f, name, n), *got = malloc(n * sizeof *got);
        if (ti.transposed) { /* ours [out, in], torch's [in, out] */
            int R = ti.shape[1], Cc = ti.shape[0];
            for (int r = 0; r < R; r++)
                for (int c = 0; c < Cc; c++) got[(size_t)c * R + r] = m->grads[ti.offset + (size_t)r * Cc + c];
        } else {
            memcpy(got, m->grads + ti.offset, n * sizeof *got);
        }
        double err = rel_err(got, want, n);
        CHECK(err < 1e-5, "%s: relative error %.2e", name, err);
        if (err > worst) {
            worst = err;
            snprintf(worst_name, sizeof worst_name, "%s", name);
        }
        free(want);
        free(got);
    }
    printf("  worst gradient relative error %.1e (%s)\n", worst, worst_name);
}

static void test_gradients_match_torch(void) {
    GPT2 m;
    build(&m);
    gpt2_forward(&m, inputs, targets, B, T);
    gpt2_backward(&m, 1.0f);
    grads_vs(&m, &ref);
    gpt2_free(&m);
}

/* Dropout against PyTorch given the same masks (tests/data/dropout_ref,
 * whose script computes them from model/ops.h's definition): loss, logits
 * and every gradient; forward and backward in one call give the same bits;
 * another key draws other masks; with training off there is no dropout. */
static void test_dropout_matches_torch(void) {
    StFile f;
    Err e;
    if (st_open(&f, "tests/data/dropout_ref.safetensors", &e)) {
        CHECK(0, "%s", e.msg);
        return;
    }
    char text[32];
    meta_str(&f, "key", text, sizeof text);
    uint64_t key = strtoull(text, NULL, 10);
    GPT2Config g = cfg;
    g.dropout = (float)meta_num(&f, "p");
    CHECK(key != 0 && g.dropout > 0 && meta_num(&f, "batch_size") == B && meta_num(&f, "seq_len") == T &&
              meta_num(&f, "n_embd") == cfg.n_embd, "dropout_ref: metadata");
    int *in = malloc((size_t)B * T * sizeof *in), *tg = malloc((size_t)B * T * sizeof *tg);
    const StTensor *ti = st_find(&f, "inputs"), *tt = st_find(&f, "targets");
    CHECK(ti && tt && st_read(&f, ti, "I32", (size_t)B * T, in, &e) == 0 &&
              st_read(&f, tt, "I32", (size_t)B * T, tg, &e) == 0, "dropout_ref: inputs/targets");
    GPT2 m;
    CHECK(gpt2_build(&m, &g, B, T, &e) == 0, "%s", e.msg);
    CHECK(weights_read(&m, &f, "", m.params, &e) == 0, "%s", e.msg);
    m.training = 1;
    m.dropout_key = key;
    float loss = gpt2_forward(&m, in, tg, B, T);
    float *want = read_f32_from(&f, "loss", 1), *plain = read_f32_from(&f, "loss_without_dropout", 1);
    CHECK(fabsf(loss - want[0]) <= 1e-5f * fabsf(want[0]), "loss %.7f vs torch %.7f", loss, want[0]);
    CHECK(fabsf(want[0] - plain[0]) > 1e-3f, "the reference's dropout changes its loss too little to test");
    size_t n = (size_t)B * T * cfg.vocab_size;
    float *logits = read_f32_from(&f, "logits", n);
    double err = rel_err(m.a.logits, logits, n);
    CHECK(err < 1e-5, "logits relative error %.2e", err);
    gpt2_backward(&m, 1.0f);
    grads_vs(&m, &f);

    float *g1 = malloc(m.n_params * sizeof *g1);
    memcpy(g1, m.grads, m.n_params * sizeof *g1);
    memset(m.grads, 0, m.n_params * sizeof *m.grads);
    float again = gpt2_forward_backward(&m, in, tg, B, T, 1.0f);
    CHECK(again == loss && memcmp(g1, m.grads, m.n_params * sizeof *g1) == 0,
          "forward_backward with dropout: loss %.9g vs %.9g, or gradients differ", again, loss);
    m.dropout_key = key + 1;
    float other = gpt2_forward(&m, in, tg, B, T);
    CHECK(other != loss, "another key gives the same loss (%.9g): the masks do not depend on the key", other);
    m.training = 0;
    float off = gpt2_forward(&m, in, tg, B, T);
    CHECK(fabsf(off - plain[0]) <= 1e-5f * fabsf(plain[0]), "training off: loss %.7f vs torch without dropout %.7f",
          off, plain[0]);
    free(g1);
    free(want);
    free(plain);
    free(logits);
    free(in);
    free(tg);
    gpt2_free(&m);
    st_close(&f);
}

static void test_adamw_steps_match_torch(void) {
    GPT2 m;
    build(&m);
    int steps = (int)meta("steps");
    float *want = read_f32("adamw_losses", (size_t)steps + 1), *norms = read_f32("adamw_grad_norms", (size_t)steps);
    float *am = calloc(m.n_params, sizeof *am), *av = calloc(m.n_params, sizeof *av);
    AdamW o = {(float)meta("lr"), (float)meta("beta1"), (float)meta("beta2"), (float)meta("eps"),
               (float)meta("weight_decay")};
    float clip = (float)meta("grad_clip");
    for (int s = 0; s <= steps; s++) {
        float loss = gpt2_forward(&m, inputs, targets, B, T);
        CHECK(fabsf(loss - want[s]) <= 1e-5f * want[s], "step %d: loss %.7f vs torch %.7f", s, loss, want[s]);
        if (s == steps) break;
        gpt2_backward(&m, 1.0f);
        float norm = grad_norm(m.grads, m.n_params);
        CHECK(fabsf(norm - norms[s]) <= 1e-4f * norms[s], "step %d: grad norm %.6f vs %.6f", s, norm, norms[s]);
        gpt2_update(&m, am, av, &o, s + 1, norm > clip ? clip / (norm + 1e-6f) : 1.0f);
    }
    free(want);
    free(norms);
    free(am);
    free(av);
    gpt2_free(&m);
}

/* Ten steps from a random init; returns the losses. */
static void run_steps(int threads, float *losses) {
    omp_set_num_threads(threads);
    GPT2 m;
    Err e;
    gpt2_build(&m, &cfg, B, T, &e);
    gpt2_init(&m, 42);
    float *am = calloc(m.n_params, sizeof *am), *av = calloc(m.n_params, sizeof *av);
    AdamW o = {1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f};
    for (int s = 0; s < 10; s++) {
        losses[s] = gpt2_forward(&m, inputs, targets, B, T);
        gpt2_backward(&m, 1.0f);
        float norm = grad_norm(m.grads, m.n_params);
        gpt2_update(&m, am, av, &o, s + 1, norm > 1.0f ? 1.0f / (norm + 1e-6f) : 1.0f);
    }
    free(am);
    free(av);
    gpt2_free(&m);
}

/* AdamW steps from m's weights (its gradients zeroed), each loss against
 * the reference tensor t; the optimiser's settings from f's metadata. */
static void adamw_steps_vs(GPT2 *m, const StFile *f, const StTensor *t, const int *in, const int *tg, int Bk, int Tk,
                           const char *what) {
    const char *keys[] = {"lr", "beta1", "beta2", "eps", "weight_decay", "grad_clip", "steps"};
    double v[7];
    for (int i = 0; i < 7; i++) v[i] = meta_num(f, keys[i]);
    int steps = (int)v[6];
    float *want = malloc(((size_t)steps + 1) * sizeof *want);
    float *am = calloc(m->n_params, sizeof *am), *av = calloc(m->n_params, sizeof *av);
    Err e;
    CHECK(st_read(f, t, "F32", (size_t)steps + 1, want, &e) == 0, "%s", e.msg);
    AdamW o = {(float)v[0], (float)v[1], (float)v[2], (float)v[3], (float)v[4]};
    memset(m->grads, 0, m->n_params * sizeof *m->grads);
    for (int s = 0; s <= steps; s++) {
        float loss = gpt2_forward(m, in, tg, Bk, Tk);
        CHECK(fabsf(loss - want[s]) <= 1e-5f * want[s], "%s, AdamW step %d: loss %.7f vs torch %.7f", what, s, loss,
              want[s]);
        if (s == steps) break;
        gpt2_backward(m, 1.0f);
        float norm = grad_norm(m->grads, m->n_params);
        gpt2_update(m, am, av, &o, s + 1, norm > v[5] ? (float)v[5] / (norm + 1e-6f) : 1.0f);
    }
    /* the kind's own tensors after the steps: a fixed sketch must not have
     * moved, weight decay must have reached exactly the 2-D weights */
    double worst = 0;
    int compared = 0;
    for (int i = 0; i < gpt2_n_tensors(m); i++) {
        TensorInfo inf;
        gpt2_tensor_info(m, i, &inf);
        char name[160];
        snprintf(name, sizeof name, "%s.after.%s", what, inf.name);
        const StTensor *r = st_find(f, name);
        if (!r) continue;
        size_t n = (size_t)inf.shape[0] * (size_t)(inf.ndim == 2 ? inf.shape[1] : 1);
        float *after = malloc(n * sizeof *after);
        CHECK(st_read(f, r, "F32", n, after, &e) == 0, "%s", e.msg);
        double err = rel_err(m->params + inf.offset, after, n);
        CHECK(err < 2e-5, "%s after %d AdamW steps: relative error %.2e", inf.name, steps, err);
        worst = fmax(worst, err);
        compared++;
        free(after);
    }
    CHECK(compared > 0, "%s: the reference holds none of the kind's tensors after the steps", what);
    printf("  %-16s %d AdamW steps: losses agree, the kind's tensors after them to %.1e\n", what, steps, worst);
    free(want);
    free(am);
    free(av);
}

/* Each attention kind in a one-layer GPT-2 against PyTorch's dense float64
 * version of it: loss and logits to 1e-5, every gradient that passes through
 * attention's backward to 1e-4 (the fixed random sketches must get none). */
static void test_attention_kinds_match_torch(void) {
    static const char *kinds[] = {"polynomial", "sketch_p4", "sketch_p4_local", "sketch_p8_local", "learned_local"};
    StFile f;
    Err e;
    if (st_open(&f, "tests/data/attn_refs.safetensors", &e)) {
        CHECK(0, "%s", e.msg);
        return;
    }
    char shape[128], keys[256];
    double bd = meta_num(&f, "batch_size"), td = meta_num(&f, "seq_len");
    if (!(bd >= 1 && td >= 1)) {
        CHECK(0, "attn_refs: batch_size / seq_len missing from the metadata");
        st_close(&f);
        return;
    }
    int Bk = (int)bd, Tk = (int)td;
    int *in = malloc((size_t)Bk * Tk * sizeof *in), *tg = malloc((size_t)Bk * Tk * sizeof *tg);
    const StTensor *ti = st_find(&f, "inputs"), *tt = st_find(&f, "targets");
    CHECK(ti && tt && st_read(&f, ti, "I32", (size_t)Bk * Tk, in, &e) == 0 &&
              st_read(&f, tt, "I32", (size_t)Bk * Tk, tg, &e) == 0, "attn_refs: inputs/targets");
    for (size_t c = 0; c < sizeof kinds / sizeof *kinds; c++) {
        Config cf;
        GPT2Config g;
        GPT2 m;
        config_defaults(&cf);
        const char *model_keys[] = {"n_layer", "n_head", "n_embd", "block_size", "vocab_size"};
        for (int i = 0; i < 5; i++) {
            char arg[96];
            meta_str(&f, model_keys[i], shape, sizeof shape);
            snprintf(arg, sizeof arg, "%s=%s", model_keys[i], shape);
            CHECK(config_set_arg(&cf, arg, &e) == 0, "%s", e.msg);
        }
        meta_str(&f, kinds[c], keys, sizeof keys); /* "attention=polysketch degree=4 ..." */
        CHECK(keys[0], "attn_refs: no keys for %s", kinds[c]);
        for (char *tok = strtok(keys, " "); tok; tok = strtok(NULL, " "))
            CHECK(config_set_arg(&cf, tok, &e) == 0, "%s", e.msg);
        if (trainer_model_config(&cf, &g, &e) || gpt2_build(&m, &g, Bk, Tk, &e)) {
            CHECK(0, "%s: %s", kinds[c], e.msg);
            continue;
        }
        CHECK(weights_read(&m, &f, "", m.params, &e) == 0, "%s: %s", kinds[c], e.msg);
        char name[160];
        snprintf(name, sizeof name, "%s.loss", kinds[c]);
        float loss = gpt2_forward(&m, in, tg, Bk, Tk), want;
        const StTensor *t = st_find(&f, name);
        CHECK(t && st_read(&f, t, "F32", 1, &want, &e) == 0 && fabsf(loss - want) <= 1e-5f * want,
              "%s: loss %.7f vs torch %.7f", kinds[c], loss, t ? want : NAN);
        size_t nl = (size_t)Bk * Tk * g.vocab_size;
        float *ref_logits = malloc(nl * sizeof *ref_logits);
        snprintf(name, sizeof name, "%s.logits", kinds[c]);
        t = st_find(&f, name);
        CHECK(t && st_read(&f, t, "F32", nl, ref_logits, &e) == 0 && rel_err(m.a.logits, ref_logits, nl) < 1e-5,
              "%s: logits differ from torch's (%.2e)", kinds[c], rel_err(m.a.logits, ref_logits, nl));
        free(ref_logits);
        gpt2_backward(&m, 1.0f);
        double worst = 0;
        int compared = 0;
        for (int i = 0; i < gpt2_n_tensors(&m); i++) {
            TensorInfo inf;
            gpt2_tensor_info(&m, i, &inf);
            size_t n = (size_t)inf.shape[0] * (size_t)(inf.ndim == 2 ? inf.shape[1] : 1);
            const float *got = m.grads + inf.offset;
            if (!inf.trainable) {
                size_t nz = 0;
                for (size_t k = 0; k < n; k++) nz += got[k] != 0.0f;
                CHECK(nz == 0, "%s: %s is fixed but got a gradient", kinds[c], inf.name);
                continue;
            }
            if (strstr(inf.name, ".mlp.")) continue; /* not reached by attention's backward: checked above */
            snprintf(name, sizeof name, "%s.grad.%s", kinds[c], inf.name);
            t = st_find(&f, name);
            float *want_g = malloc(n * sizeof *want_g), *mine = malloc(n * sizeof *mine);
            if (inf.transposed) { /* ours [out, in], torch's [in, out] */
                for (int r = 0; r < inf.shape[1]; r++)
                    for (int k = 0; k < inf.shape[0]; k++) mine[(size_t)k * inf.shape[1] + r] = got[(size_t)r * inf.shape[0] + k];
            } else {
                memcpy(mine, got, n * sizeof *mine);
            }
            if (!t || st_read(&f, t, "F32", n, want_g, &e)) {
                CHECK(0, "%s: reference gradient %s missing", kinds[c], name);
            } else {
                double err = rel_err(mine, want_g, n);
                CHECK(err < 1e-4, "%s: relative error %.2e", name, err);
                worst = fmax(worst, err);
                compared++;
            }
            free(want_g);
            free(mine);
        }
        printf("  %-16s loss %.6f, %d gradients, worst relative error %.1e\n", kinds[c], loss, compared, worst);
        snprintf(name, sizeof name, "%s.adamw_losses", kinds[c]);
        if ((t = st_find(&f, name))) /* AdamW steps: which of the kind's tensors train and decay */
            adamw_steps_vs(&m, &f, t, in, tg, Bk, Tk, kinds[c]);
        gpt2_free(&m);
    }
    free(in);
    free(tg);
    st_close(&f);
}

/* The LM head a chunk of positions at a time (head_rows): the loss, every
 * gradient and the logits it keeps are the bits of the head over all rows
 * at once, whether forward and backward run in one call or two, and only
 * head_rows of logits are allocated. Chunks of 512 rows (a multiple of the
 * SGEMM's K slice, 256 or 512 deep) keep the bits; other sizes agree to
 * rounding. A vocabulary of 197 puts the rows of logits 208 floats apart
 * (gpt2_logits_ld): the logits read back are the LM head's products. */
static void test_chunked_head(void) {
    enum { BK = 3, TK = 200, BTK = BK * TK };
    int *in = malloc(BTK * sizeof *in), *tg = malloc(BTK * sizeof *tg);
    Rng r;
    rng_seed(&r, 7, 0);
    GPT2Config g = cfg;
    g.block_size = TK;
    g.vocab_size = 197;
    const int ld = gpt2_logits_ld(g.vocab_size);
    CHECK(ld == 208, "rows of 197 logits are %d floats apart, want 208", ld);
    for (int i = 0; i < BTK; i++) in[i] = (int)rng_below(&r, (uint64_t)g.vocab_size);
    for (int i = 0; i < BTK; i++) tg[i] = (int)rng_below(&r, (uint64_t)g.vocab_size);
    GPT2 full, chunk, odd;
    Err e;
    g.head_rows = 0;
    CHECK(gpt2_build(&full, &g, BK, TK, &e) == 0, "%s", e.msg);
    g.head_rows = 512;
    CHECK(gpt2_build(&chunk, &g, BK, TK, &e) == 0, "%s", e.msg);
    g.head_rows = 100;
    CHECK(gpt2_build(&odd, &g, BK, TK, &e) == 0, "%s", e.msg);
    CHECK(full.n_acts - chunk.n_acts == (size_t)(BTK - 512) * ld,
          "512-row chunks must hold 512 rows of logits, not %zu", full.n_acts - chunk.n_acts);
    gpt2_init(&full, 5);
    gpt2_init(&chunk, 5);
    gpt2_init(&odd, 5);
    size_t bytes = full.n_params * sizeof(float);

    float lf = gpt2_forward(&full, in, tg, BK, TK);
    gpt2_backward(&full, 0.5f);
    float lc = gpt2_forward_backward(&chunk, in, tg, BK, TK, 0.5f);
    CHECK(lc == lf && memcmp(full.grads, chunk.grads, bytes) == 0,
          "forward_backward in chunks differs from the whole head (loss %.9g vs %.9g)", lc, lf);
    memset(chunk.grads, 0, bytes); /* forward, then backward computing the logits again */
    lc = gpt2_forward(&chunk, in, tg, BK, TK);
    gpt2_backward(&chunk, 0.5f);
    CHECK(lc == lf && memcmp(full.grads, chunk.grads, bytes) == 0, "forward + backward in chunks differ");

    float lo = gpt2_forward_backward(&odd, in, tg, BK, TK, 0.5f);
    double err = rel_err(odd.grads, full.grads, full.n_params);
    CHECK(fabsf(lo - lf) <= 1e-6f * lf && err < 1e-5, "100-row chunks: loss %.7f vs %.7f, gradients %.1e", lo, lf, err);

    gpt2_forward(&full, in, NULL, BK, TK); /* generation reads the last position's */
    gpt2_forward(&chunk, in, NULL, BK, TK);
    const float *a = gpt2_logits(&full, BTK - 1), *b = gpt2_logits(&chunk, BTK - 1);
    CHECK(a && b && memcmp(a, b, (size_t)g.vocab_size * sizeof *a) == 0, "the last position's logits differ");
    double worst = 0;
    for (int pos = BTK - 3; pos < BTK; pos++) /* rows whose starts lie 208 floats apart: each against its product */
        for (int v = 0; v < g.vocab_size; v++) {
            double dot = 0;
            for (int k = 0; k < g.n_embd; k++)
                dot += (double)full.a.lnf[(size_t)pos * g.n_embd + k] * full.p.wte[(size_t)v * g.n_embd + k];
            worst = fmax(worst, fabs(gpt2_logits(&full, pos)[v] - dot));
        }
    CHECK(worst < 1e-4, "logits read back differ from lnf . wte by %g", worst);
    CHECK(gpt2_logits(&chunk, BTK - 513) == NULL && gpt2_logits(&chunk, BTK - 512) == b - (size_t)511 * ld &&
              gpt2_logits(&full, 0) == full.a.logits && gpt2_logits(&full, BTK) == NULL,
          "gpt2_logits must give exactly the positions held");
    gpt2_free(&full);
    gpt2_free(&chunk);
    gpt2_free(&odd);
    free(in);
    free(tg);
}

/* recompute=1: the LayerNorm and GELU outputs computed again in backward
 * instead of kept per layer give the same loss and gradients, bit for bit
 * (with dropout too),
 * from (L - 1) x 6 x B x T x C fewer floats of activations. */
static void test_recompute(void) {
    GPT2 keep, again;
    Err e;
    GPT2Config g = cfg;
    CHECK(gpt2_build(&keep, &g, B, T, &e) == 0, "%s", e.msg);
    g.recompute = 1;
    CHECK(gpt2_build(&again, &g, B, T, &e) == 0, "%s", e.msg);
    size_t saved = (size_t)(g.n_layer - 1) * 6 * B * T * g.n_embd;
    CHECK(g.n_layer > 1 && keep.n_acts - again.n_acts == saved, "recompute saves %zu floats, want %zu",
          keep.n_acts - again.n_acts, saved);
    gpt2_init(&keep, 9);
    gpt2_init(&again, 9);
    for (int step = 0; step < 4; step++) { /* again over activations the first left behind; then with dropout */
        keep.cfg.dropout = again.cfg.dropout = step < 2 ? 0.0f : 0.3f;
        keep.training = again.training = 1;
        keep.dropout_key = again.dropout_key = 77 + (uint64_t)step;
        memset(keep.grads, 0, keep.n_params * sizeof(float));
        memset(again.grads, 0, again.n_params * sizeof(float));
        float a = gpt2_forward_backward(&keep, inputs, targets, B, T, 1.0f);
        float b = gpt2_forward_backward(&again, inputs, targets, B, T, 1.0f);
        CHECK(a == b && memcmp(keep.grads, again.grads, keep.n_params * sizeof(float)) == 0,
              "pass %d (dropout %.1f): recompute changes the loss (%.9g vs %.9g) or the gradients", step,
              (double)keep.cfg.dropout, b, a);
    }
    gpt2_free(&keep);
    gpt2_free(&again);
}

static void test_determinism(void) {
    float a[10], b[10], c[10];
    run_steps(2, a);
    run_steps(2, b);
    run_steps(1, c);
    CHECK(memcmp(a, b, sizeof a) == 0, "two runs with 2 threads differ");
    CHECK(memcmp(a, c, sizeof a) == 0, "1 and 2 threads differ");
    CHECK(a[9] < a[0] - 0.5f, "training on one batch must lower the loss (%.3f -> %.3f)", a[0], a[9]);
    omp_set_num_threads(omp_get_num_procs());
}

int main(void) {
    Err e;
    if (st_open(&ref, "tests/data/gpt2_ref.safetensors", &e) || !ref.metadata) {
        printf("FAIL load_reference: %s\n", e.msg);
        return 1;
    }
    cfg.n_layer = (int)meta("n_layer");
    cfg.n_head = (int)meta("n_head");
    cfg.n_embd = (int)meta("n_embd");
    cfg.block_size = (int)meta("block_size");
    cfg.vocab_size = (int)meta("vocab_size");
    cfg.kind = &attention_softmax;
    gpt2_config_finish(&cfg);
    B = (int)meta("batch_size");
    T = (int)meta("seq_len");
    inputs = malloc((size_t)B * T * sizeof *inputs);
    targets = malloc((size_t)B * T * sizeof *targets);
    const StTensor *ti = st_find(&ref, "inputs"), *tt = st_find(&ref, "targets");
    if (!ti || !tt || st_read(&ref, ti, "I32", (size_t)B * T, inputs, &e) ||
        st_read(&ref, tt, "I32", (size_t)B * T, targets, &e)) {
        printf("FAIL load_reference: inputs/targets\n");
        return 1;
    }
    RUN(test_forward_matches_torch);
    RUN(test_gradients_match_torch);
    RUN(test_adamw_steps_match_torch);
    RUN(test_dropout_matches_torch);
    RUN(test_attention_kinds_match_torch);
    RUN(test_chunked_head);
    RUN(test_recompute);
    RUN(test_determinism);
    st_close(&ref);
    return 0;
}
