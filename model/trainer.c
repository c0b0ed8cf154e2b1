#include "trainer.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/vmath.h"
#include "../data/loader.h"
#include "checkpoint.h"
#include "gpt2.h"
#include "matmul.h"
#include "optim.h"
#include "sampler.h"

typedef struct {
    Config cfg;                 /* the run's config: init_from may set the shape */
    const Config *c;            /* = &cfg */
    GPT2 model;
    Loader train, val;
    int has_train, has_val;
    int eval_batches;              /* eval_steps, or fewer: val_data's windows, each counted once */
    float *adam_m, *adam_v;
    int *inputs, *targets;
    FILE *metrics;
    int lock_fd;                /* holds out_dir's lock: one run a directory */
    TrainState st;              /* step done so far, RNG; the loader keeps its own position */
    int64_t saved_step;         /* the step of the newest checkpoint written */
} Run;

/* Keys that must match to resume: the model (its attention among them)
 * and the data order. */
static const char *const ATTN_KEYS[] = {"attention", "degree", "sketch", "sketch_size", "attn_block", "local_exact"};
static const char *const FIXED_KEYS[] = {"n_layer", "n_head", "n_embd", "block_size", "vocab_size", "batch_size",
                                         "seq_len", "grad_accum", "train_data", "shuffle", "seed"};
#define IN_LIST(k, list) in_list(k, list, sizeof list / sizeof *list)

static int in_list(const char *k, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(k, list[i]) == 0) return 1;
    return 0;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int trainer_model_config(const Config *c, GPT2Config *g, Err *e) {
    memset(g, 0, sizeof *g);
    g->n_layer = c->n_layer;
    g->n_head = c->n_head;
    g->n_embd = c->n_embd;
    g->block_size = c->block_size;
    g->vocab_size = c->vocab_size;
    g->kind = attention_find(c->attention);
    if (!g->kind) return err_set(e, "attention: unknown kind '%s'", c->attention);
    g->attn.degree = c->degree;
    g->attn.sketch_learned = strcmp(c->sketch, "learned") == 0;
    g->attn.sketch_size = c->sketch_size;
    g->attn.block = c->attn_block;
    g->attn.local_exact = c->local_exact;
    g->bf16 = strcmp(c->precision, "bf16") == 0;
    g->head_rows = GPT2_HEAD_ROWS;
    g->recompute = c->recompute;
    g->dropout = (float)c->dropout;
    if (g->bf16 && !sgemm_bf16_supported())
        return err_set(e, "precision: bf16 needs a CPU with AVX512-BF16 (this one has none, or TRAIN_SIMD is set below avx512); use precision=fp32");
    gpt2_config_finish(g);
    return 0;
}

/* The dropout masks of a micro-batch: a function of the seed and its place
 * in the run only, so that a resumed run draws the same ones. */
static uint64_t dropout_key(int64_t seed, int step, int micro) {
    uint64_t x = (uint64_t)seed ^ 0x64726f706f7574ULL; /* "dropout" */
    x = rng_splitmix(&x) ^ ((uint64_t)step << 20 | (uint64_t)micro);
    return rng_splitmix(&x);
}

/* Mean validation loss over eval_steps batches, always the same ones. */
static int evaluate(Run *r, float *out, Err *e) {
    const Config *c = r->c;
    loader_reset(&r->val);
    r->model.training = 0; /* no dropout */
    double sum = 0;
    for (int i = 0; i < r->eval_batches; i++) {
        if (loader_next(&r->val, r->inputs, r->targets, e)) return -1;
        sum += gpt2_forward(&r->model, r->inputs, r->targets, c->batch_size, c->seq_len);
    }
    *out = (float)(sum / r->eval_batches);
    return 0;
}

/* loss, logits and every gradient of the first micro-batch, named as in a checkpoint */
static int write_dump(Run *r, float loss, const float *logits, Err *e) {
    GPT2 *m = &r->model;
    int n = gpt2_n_tensors(m);
    StTensor *t = xcalloc((size_t)n + 2, sizeof *t);
    snprintf(t[0].name, sizeof t[0].name, "loss");
    strcpy(t[0].dtype, "F32");
    snprintf(t[1].name, sizeof t[1].name, "logits");
    strcpy(t[1].dtype, "F32");
    t[1].ndim = 3;
    t[1].shape[0] = r->c->batch_size;
    t[1].shape[1] = r->c->seq_len;
    t[1].shape[2] = r->c->vocab_size;
    weights_describe(m, "grad.", t + 2);
    StWriter w;
    int rc = st_writer_open(&w, r->c->dump_step, t, n + 2, NULL, e);
    if (rc == 0) rc = st_writer_data(&w, &loss, sizeof loss, e);
    if (rc == 0) rc = st_writer_data(&w, logits, (size_t)st_numel(&t[1]) * sizeof *logits, e);
    if (rc == 0) rc = weights_write(m, &w, m->grads, e);
    if (rc == 0) rc = st_writer_close(&w, e);
    else st_writer_abort(&w);
    free(t);
    return rc;
}

static void print_sample(Run *r, const Bpe *bpe) {
    const Config *c = r->c;
    r->model.training = 0;
    int n = c->sample_tokens, T = c->seq_len, V = c->vocab_size;
    int *ctx = xmalloc((size_t)T * sizeof *ctx), len = 1;
    ctx[0] = bpe_eot(bpe);
    Sampler s;
    sampler_init(&s, V, 1.0f, 40, 1.0f);
    printf("sample (%d tokens, temperature 1, top-k 40):\n", n);
    for (int i = 0; i < n; i++) {
        gpt2_forward(&r->model, ctx, NULL, 1, len);
        int tok = sampler_pick(&s, gpt2_logits(&r->model, len - 1), &r->st.rng);
        size_t k;
        const unsigned char *bytes = bpe_token_bytes(bpe, tok, &k);
        if (bytes) fwrite(bytes, 1, k, stdout);
        fflush(stdout);
        if (len == T) { /* slide the window */
            memmove(ctx, ctx + 1, (size_t)(T - 1) * sizeof *ctx);
            len--;
        }
        ctx[len++] = tok;
    }
    printf("\n");
    sampler_free(&s);
    free(ctx);
}

static void fmt_eta(char *out, size_t n, double sec) {
    int s = (int)sec;
    if (s >= 3600) snprintf(out, n, "%dh%02dm", s / 3600, s / 60 % 60);
    else snprintf(out, n, "%dm%02ds", s / 60, s % 60);
}

static int dir_is_empty(const char *path) {
    DIR *d = opendir(path);
    if (!d) return 1;
    struct dirent *de;
    int empty = 1;
    while (empty && (de = readdir(d)) != NULL) empty = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
    closedir(d);
    return empty;
}

/* Bytes of the run's large arrays: the model's (gpt2_floats) and AdamW's
 * two moments. */
static double run_bytes(const Config *c, const GPT2Config *g) {
    size_t np;
    size_t n = gpt2_floats(g, c->batch_size, c->seq_len, &np);
    return ((double)n + 2.0 * (double)np) * sizeof(float);
}

/* Refuses a run that cannot fit before allocating it: with overcommit the
 * allocation succeeds and the kernel kills the process at first touch,
 * minutes in and without a word. */
static int check_memory(const Config *c, const GPT2Config *g, Err *e) {
    const char *source;
    double need = run_bytes(c, g), avail = mem_available(&source);
    if (!c->memory_check || avail < 0 || need <= avail) return 0;
    char hint[96] = "";
    GPT2Config lean = *g;
    lean.recompute = 1;
    if (!g->recompute)
        snprintf(hint, sizeof hint, ", or set recompute=1 (%.1f GB)", run_bytes(c, &lean) / 1e9);
    return err_set(e, "batch_size %d x seq_len %d needs %.1f GB for parameters, gradients, AdamW's moments and "
                      "activations, but %.1f GB %s: lower batch_size or seq_len%s (or memory_check=0 to try anyway)",
                   c->batch_size, c->seq_len, need / 1e9, avail / 1e9, source, hint);
}

/* Compares the checkpoint's config with ours: fixed keys must be equal;
 * other changes are printed. */
static int compare_configs(const Config *saved, const Config *now, const char *dir, Err *e) {
    char a[CONFIG_STR + 32], b[CONFIG_STR + 32];
    for (int i = 0; i < config_n_keys(); i++) {
        const char *k = config_key(i);
        config_format(saved, i, a, sizeof a);
        config_format(now, i, b, sizeof b);
        if (strcmp(a, b) == 0 || strcmp(k, "resume") == 0 || strcmp(k, "init_from") == 0) continue;
        int fixed = IN_LIST(k, FIXED_KEYS) || IN_LIST(k, ATTN_KEYS);
        if (fixed)
            return err_set(e, "cannot resume from %s: %s is '%s' there but '%s' now (the model and the data order "
                              "must match; to start a new run from these weights use init_from=%s with a new "
                              "out_dir)", dir, k, a, b, dir);
        printf("resume: %s changed from '%s' to '%s'\n", k, a, b);
    }
    return 0;
}

/* Keeps metrics.csv rows up to `step` (later ones are about to be redone). */
static int trim_metrics(const char *path, int64_t step, Err *e) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char tmp[CONFIG_STR + 48], line[1024];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *o = fopen(tmp, "w");
    if (!o) {
        fclose(f);
        return err_sys(e, "%s: cannot write", tmp);
    }
    for (int n = 0; fgets(line, sizeof line, f); n++) /* a line without '\n' was cut by a kill */
        if (strchr(line, '\n') && (n == 0 || strtoll(line, NULL, 10) <= step)) fputs(line, o);
    fclose(f);
    int bad = fclose(o) != 0;
    if (bad || rename(tmp, path) != 0) return err_sys(e, "%s: cannot rewrite", path);
    return 0;
}

static int setup(Run *r, Err *e) {
    Config *c = &r->cfg;
    char ckpt[CONFIG_STR + 64] = "", init[CONFIG_STR + 64] = "";
    if (mkdir_p(c->out_dir, "out_dir", e)) return -1;
    r->lock_fd = dir_lock(c->out_dir, "out_dir", e);
    if (r->lock_fd == -1) return -1;
    if (r->lock_fd == -2) fprintf(stderr, "note: %s\n", e->msg); /* a filesystem without locks: go on */
    if (strcmp(c->resume, "never") == 0) {
        if (!dir_is_empty(c->out_dir))
            return err_set(e, "out_dir %s is not empty and resume=never refuses to overwrite it (use another "
                              "out_dir, or resume=auto to continue it)", c->out_dir);
    } else if (strcmp(c->resume, "auto") == 0) {
        if (checkpoint_exists(c->out_dir) && checkpoint_resolve(c->out_dir, ckpt, sizeof ckpt, e)) return -1;
    } else if (checkpoint_resolve(c->resume, ckpt, sizeof ckpt, e)) {
        return -1;
    }
    if (!ckpt[0] && c->init_from[0]) {
        const char *src = strncmp(c->init_from, "hf:", 3) == 0 ? c->init_from + 3 : c->init_from;
        if (checkpoint_resolve(src, init, sizeof init, e)) return -1;
    }
    /* A run from init_from takes its model's shape and attention from the
     * source's config.json (resumed, from its own checkpoint's, which holds
     * the same), except the attention keys this command line sets: those
     * convert the weights to another kind (checkpoint_init_model). */
    const char *shape_from = init[0] ? init : ckpt[0] && c->init_from[0] ? ckpt : NULL;
    if (shape_from) {
        Config before = *c;
        if (checkpoint_read_config(shape_from, c, e)) return -1;
        for (int i = 0; i < config_n_keys(); i++) {
            char v[CONFIG_STR + 32];
            config_format(&before, i, v, sizeof v);
            if (IN_LIST(config_key(i), ATTN_KEYS) && (before.from_cli >> i & 1) && config_set(c, i, v, e)) return -1;
        }
        if (config_validate(c, 1, e)) return -1;
        if (init[0] && (c->n_layer != before.n_layer || c->n_embd != before.n_embd || c->n_head != before.n_head ||
                        c->block_size != before.block_size || c->vocab_size != before.vocab_size))
            printf("init_from: the model shape comes from %s/config.json: %d layers, %d heads, %d wide, "
                   "context %d, vocabulary %d\n", init, c->n_layer, c->n_head, c->n_embd, c->block_size, c->vocab_size);
    }
    GPT2Config g;
    if (trainer_model_config(c, &g, e)) return -1;
    if (c->dump_step[0]) g.head_rows = 0; /* the dump holds every position's logits */
    if (check_memory(c, &g, e) || gpt2_build(&r->model, &g, c->batch_size, c->seq_len, e)) return -1;
    if (loader_open(&r->train, "train_data", c->train_data, c->batch_size, c->seq_len, c->shuffle, (uint64_t)c->seed,
                    c->vocab_size, e))
        return -1;
    r->has_train = 1;
    if (c->val_data[0]) {
        if (loader_open(&r->val, "val_data", c->val_data, c->batch_size, c->seq_len, 0, 0, c->vocab_size, e))
            return -1;
        r->has_val = 1;
        if (loader_disjoint(&r->train, &r->val, e)) return -1;
        r->eval_batches = c->eval_steps;
        if (r->val.total_samples < c->eval_steps) { /* more would count some windows twice */
            r->eval_batches = (int)r->val.total_samples;
            printf("eval: val_data holds %d windows of %d x %d tokens: each evaluation takes those %d "
                   "(eval_steps %d)\n", r->eval_batches, c->batch_size, c->seq_len, r->eval_batches, c->eval_steps);
        }
    }
    size_t n = r->model.n_params, bt = (size_t)c->batch_size * c->seq_len;
    r->adam_m = big_alloc(n * sizeof(float));
    r->adam_v = big_alloc(n * sizeof(float));
    if (r->adam_m) memset(r->adam_m, 0, n * sizeof(float));
    if (r->adam_v) memset(r->adam_v, 0, n * sizeof(float));
    r->inputs = malloc(bt * sizeof(int));
    r->targets = malloc(bt * sizeof(int));
    if (!r->adam_m || !r->adam_v || !r->inputs || !r->targets) return err_set(e, "out of memory for optimiser state");
    rng_seed(&r->st.rng, (uint64_t)c->seed, 0x72756e);
    r->st.best_step = -1;
    r->st.best_val = INFINITY;
    r->saved_step = -1;

    char path[CONFIG_STR + 32];
    snprintf(path, sizeof path, "%s/metrics.csv", c->out_dir);
    if (ckpt[0]) {
        Config saved;
        TrainState st;
        if (checkpoint_read_state(ckpt, &st, &saved, e) || compare_configs(&saved, c, ckpt, e) ||
            checkpoint_load_model(ckpt, &r->model, e) ||
            checkpoint_load_optimizer(ckpt, &r->model, r->adam_m, r->adam_v, e) ||
            loader_seek(&r->train, st.loader, e) || trim_metrics(path, st.step, e))
            return -1;
        r->st = st;
        r->saved_step = st.step;
        printf("resumed from %s at step %lld\n", ckpt, (long long)st.step);
        char best[CONFIG_STR + 32];
        snprintf(best, sizeof best, "%s/step_%08lld", c->out_dir, (long long)st.best_step);
        struct stat sb; /* a kill between `latest` and `best` left `best` behind: point it again */
        if (st.best_step >= 0 && stat(best, &sb) == 0 && checkpoint_point(c->out_dir, "best", st.best_step, e))
            return -1;
    } else if (init[0]) {
        char note[3200];
        if (checkpoint_init_model(init, &r->model, (uint64_t)c->seed, note, sizeof note, e)) return -1;
        printf("initialised from %s\n", init);
        if (note[0]) printf("init_from: %s\n", note);
    } else {
        gpt2_init(&r->model, (uint64_t)c->seed);
    }
    snprintf(path, sizeof path, "%s/config.cfg", c->out_dir);
    FILE *f = fopen(path, "w");
    if (!f) return err_sys(e, "%s: cannot write", path);
    config_write(c, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/metrics.csv", c->out_dir);
    r->metrics = fopen(path, ckpt[0] ? "a" : "w");
    if (!r->metrics) return err_sys(e, "%s: cannot write", path);
    if (!ckpt[0]) fprintf(r->metrics, "step,loss,val_loss,lr,grad_norm,ms,tok_per_s\n");
    return 0;
}

static int save(Run *r, Err *e) {
    double t0 = now();
    r->st.loader = loader_tell(&r->train);
    if (checkpoint_save(r->c->out_dir, &r->model, r->adam_m, r->adam_v, r->c, &r->st, e)) return -1;
    r->saved_step = r->st.step;
    printf("checkpoint: %s/step_%08lld (%.1f s)\n", r->c->out_dir, (long long)r->st.step, now() - t0);
    return 0;
}

static void teardown(Run *r) {
    gpt2_free(&r->model);
    if (r->has_train) loader_close(&r->train);
    if (r->has_val) loader_close(&r->val);
    free(r->adam_m);
    free(r->adam_v);
    free(r->inputs);
    free(r->targets);
    if (r->metrics) fclose(r->metrics);
    if (r->lock_fd >= 0) close(r->lock_fd);
}

/* patience: whether the last `patience` evaluations (every eval_interval
 * steps, counted from the step done) brought no new best. A function of
 * the state alone, so a resumed run agrees. */
static int stalled(const Run *r) {
    const Config *c = r->c;
    if (!c->patience || r->st.best_step < 0 || c->eval_interval <= 0) return 0;
    return r->st.step / c->eval_interval - r->st.best_step / c->eval_interval >= c->patience;
}

static int train_loop(Run *r, const Bpe *bpe, volatile sig_atomic_t *stop, Err *e) {
    const Config *c = r->c;
    GPT2 *m = &r->model;
    const int B = c->batch_size, T = c->seq_len;
    const double tokens = (double)B * T * c->grad_accum, flops = gpt2_flops_per_token(m, T) * tokens;
    Schedule sched = strcmp(c->schedule, "linear") == 0 ? SCHED_LINEAR
                   : strcmp(c->schedule, "constant") == 0 ? SCHED_CONSTANT : SCHED_COSINE;
    AdamW opt = {0, (float)c->beta1, (float)c->beta2, (float)c->eps, (float)c->weight_decay};
    const char *products = !m->cfg.bf16 ? "fp32" : sgemm_bf16_amx(-1) ? "bf16 products on AMX" : "bf16 products";
    printf("model: %d layers, %d heads, %d wide, %s attention, %.2fM parameters; %d threads, %s SGEMM, %d-float "
           "vectors, %s\n", c->n_layer, c->n_head, c->n_embd, c->attention, (double)m->n_params / 1e6,
           omp_get_max_threads(), sgemm_simd_name(), VN, products);
    int level = sgemm_simd(-1);
    if ((level == SGEMM_AVX512 && VN < 16) || (level == SGEMM_AVX2 && VN < 8))
        fprintf(stderr, "note: this build's vector code is %d floats wide and this CPU has %s: attention and the "
                "element-wise passes run up to %dx slower than a build with -march=native (make's default)\n",
                VN, level == SGEMM_AVX512 ? "AVX-512" : "AVX2", (level == SGEMM_AVX512 ? 16 : 8) / VN);
    printf("data: %lld training windows of %d x %d tokens\n", (long long)r->train.total_samples, B, T);
    float val;
    int first = (int)r->st.step + 1;
    if (first > c->max_steps) printf("already at step %lld of max_steps %d: nothing to train\n", (long long)r->st.step, c->max_steps);
    if (first == 1 && r->has_val && c->eval_interval > 0) {
        if (evaluate(r, &val, e)) return -1;
        printf("step %5d | val loss %.4f\n", 0, val);
        fprintf(r->metrics, "0,,%.6f,,,,\n", val);
    }
    double timed = 0;
    int timed_steps = 0;
    if (first <= c->max_steps && stalled(r)) {
        printf("stopped early before (patience %d: no new best since step %lld); nothing to train\n", c->patience,
               (long long)r->st.best_step);
        first = c->max_steps + 1;
    }
    for (int step = first; step <= c->max_steps; step++) {
        double t0 = now();
        float lr = lr_at(step - 1, c->max_steps, c->warmup_steps, (float)c->lr, (float)c->min_lr, sched);
        double loss = 0; /* the gradients are zero, or stale where backward writes them (gpt2_update) */
        for (int micro = 0; micro < c->grad_accum; micro++) {
            if (loader_next(&r->train, r->inputs, r->targets, e)) return -1;
            m->training = 1;
            m->dropout_key = dropout_key(c->seed, step, micro);
            if (step > 1 || micro > 0 || !c->dump_step[0]) {
                loss += gpt2_forward_backward(m, r->inputs, r->targets, B, T, 1.0f / c->grad_accum) / c->grad_accum;
                continue;
            }
            float l = gpt2_forward(m, r->inputs, r->targets, B, T);
            loss += l / c->grad_accum;
            size_t V = (size_t)c->vocab_size; /* backward overwrites the logits: a copy for the dump */
            float *logits = xmalloc((size_t)B * T * V * sizeof *logits);
            for (int pos = 0; pos < B * T; pos++) memcpy(logits + pos * V, gpt2_logits(m, pos), V * sizeof *logits);
            gpt2_backward(m, 1.0f / c->grad_accum);
            if (c->grad_accum > 1) scale_grads(m->grads, m->n_params, (float)c->grad_accum);
            int rc = write_dump(r, l, logits, e);
            if (c->grad_accum > 1) scale_grads(m->grads, m->n_params, 1.0f / c->grad_accum);
            free(logits);
            if (rc) return -1;
            printf("wrote %s (loss, logits and gradients of the first micro-batch)\n", c->dump_step);
        }
        float norm = grad_norm(m->grads, m->n_params);
        if (!isfinite(loss) || !isfinite(norm))
            return err_set(e, "step %d: the %s is %s; stopping (lower lr or check the data)", step,
                           isfinite(loss) ? "gradient norm" : "loss", isnan(isfinite(loss) ? norm : loss) ? "NaN" : "infinite");
        float clip = c->grad_clip > 0 && norm > c->grad_clip ? (float)c->grad_clip / (norm + 1e-6f) : 1.0f;
        opt.lr = lr;
        gpt2_update(m, r->adam_m, r->adam_v, &opt, step, clip);
        double dt = now() - t0;
        if (step > 1) { /* the first step pays for page faults */
            timed += dt;
            timed_steps++;
        }
        double avg = timed_steps ? timed / timed_steps : dt;
        char eta[32];
        fmt_eta(eta, sizeof eta, avg * (c->max_steps - step));
        printf("step %5d/%d | loss %.4f | lr %.2e | norm %.3f | %.0f ms | %.0f tok/s | MFU %.1f%% | ETA %s\n", step,
               c->max_steps, loss, lr, norm, dt * 1e3, tokens / dt, 100 * flops / dt / (c->peak_gflops * 1e9), eta);
        int do_eval = r->has_val && c->eval_interval > 0 && (step % c->eval_interval == 0 || step == c->max_steps);
        int new_best = 0;
        if (do_eval) {
            if (evaluate(r, &val, e)) return -1;
            new_best = c->keep_best && val < r->st.best_val;
            printf("step %5d | val loss %.4f%s\n", step, val, new_best ? " (best so far: checkpointed as best)" : "");
            if (new_best) {
                r->st.best_step = step;
                r->st.best_val = val;
            }
        }
        char row[256], vs[32] = "";
        if (do_eval) snprintf(vs, sizeof vs, "%.6f", val);
        snprintf(row, sizeof row, "%d,%.6f,%s,%.6e,%.6f,%.3f,%.1f\n", step, loss, vs, lr, norm, dt * 1e3, tokens / dt);
        fputs(row, r->metrics); /* one write: a kill leaves a whole row or a cut last line */
        fflush(r->metrics);
        r->st.step = step;
        if ((c->checkpoint_interval > 0 && step % c->checkpoint_interval == 0) || new_best || (stop && *stop)) {
            if (save(r, e)) return -1;
        }
        fflush(stdout);
        if (stop && *stop) {
            printf("stopped by a signal after step %d; resume with the same command\n", step);
            return 0;
        }
        if (do_eval && stalled(r)) {
            printf("early stop after step %d: no new best in %d evaluation%s (the best: val loss %.4f at step %lld, "
                   "out_dir/best)\n", step, c->patience, c->patience == 1 ? "" : "s", r->st.best_val,
                   (long long)r->st.best_step);
            break;
        }
    }
    if (r->saved_step != r->st.step && save(r, e)) return -1;
    if (bpe && c->sample_tokens > 0) print_sample(r, bpe);
    return 0;
}

int trainer_run(const Config *c, const Bpe *bpe, volatile sig_atomic_t *stop, Err *e) {
    if (c->threads > 0) omp_set_num_threads(c->threads);
    Run r = {.cfg = *c, .lock_fd = -1};
    r.c = &r.cfg;
    int rc = setup(&r, e);
    if (rc == 0) rc = train_loop(&r, bpe, stop, e);
    teardown(&r);
    return rc;
}

int trainer_eval(const Config *c, const char *ckpt_dir, int limit, int buckets, Err *e) {
    if (c->threads > 0) omp_set_num_threads(c->threads);
    if (!c->val_data[0]) return err_set(e, "val_data: required (a glob of shards), e.g. val_data=shards/moby/val_*.bin");
    GPT2Config g;
    GPT2 m;
    Loader val;
    if (trainer_model_config(c, &g, e)) return -1;
    g.inference = 1;
    if (gpt2_build(&m, &g, c->batch_size, c->seq_len, e)) return -1;
    char note[3200];
    int rc = checkpoint_init_model(ckpt_dir, &m, (uint64_t)c->seed, note, sizeof note, e);
    if (rc == 0 && note[0]) printf("eval: %s\n", note);
    if (rc == 0) rc = loader_open(&val, "val_data", c->val_data, c->batch_size, c->seq_len, 0, 0, c->vocab_size, e);
    if (rc) {
        gpt2_free(&m);
        return -1;
    }
    int64_t n = val.total_samples;
    if (limit && c->eval_steps < n) n = c->eval_steps;
    size_t bt = (size_t)c->batch_size * c->seq_len;
    int *x = xmalloc(bt * sizeof *x), *y = xmalloc(bt * sizeof *y), T = c->seq_len;
    double sum = 0, t0 = now(), *at = buckets ? xcalloc((size_t)T, sizeof *at) : NULL; /* loss summed per position */
    for (int64_t i = 0; rc == 0 && i < n; i++) {
        rc = loader_next(&val, x, y, e);
        if (rc == 0) sum += gpt2_forward(&m, x, y, c->batch_size, c->seq_len);
        for (size_t k = 0; rc == 0 && at && k < bt; k++) at[k % T] += m.a.losses[k];
    }
    if (rc == 0) {
        double loss = sum / (double)n;
        printf("%s: val loss %.4f, perplexity %.2f (%lld batches of %d x %d tokens, %.1f s)\n", ckpt_dir, loss, exp(loss),
               (long long)n, c->batch_size, c->seq_len, now() - t0);
        for (int k = 0; at && k < buckets; k++) { /* span k: positions [T k / buckets, T (k + 1) / buckets) */
            int p0 = (int)((int64_t)T * k / buckets), p1 = (int)((int64_t)T * (k + 1) / buckets);
            double s = 0;
            for (int p = p0; p < p1; p++) s += at[p];
            printf("positions %d-%d: val loss %.4f\n", p0, p1 - 1, s / ((double)(p1 - p0) * n * c->batch_size));
        }
    }
    free(at);
    free(x);
    free(y);
    loader_close(&val);
    gpt2_free(&m);
    return rc;
}
