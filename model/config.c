#include "config.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef enum { K_INT, K_I64, K_REAL, K_STR, K_CHOICE } KeyType;

typedef struct {
    const char *name;
    KeyType type;
    size_t offset;
    const char *def;
    double lo, hi;          /* numeric range, inclusive */
    const char *choices;    /* K_CHOICE: '|'-separated */
    const char *help;
} Key;

#define F(field) offsetof(Config, field)
static const Key KEYS[] = {
    {"n_layer", K_INT, F(n_layer), "12", 1, 1000, NULL, "transformer blocks"},
    {"n_head", K_INT, F(n_head), "12", 1, 1000, NULL, "attention heads per block"},
    {"n_embd", K_INT, F(n_embd), "768", 1, 65536, NULL, "width; divisible by n_head"},
    {"block_size", K_INT, F(block_size), "1024", 1, 1 << 24, NULL, "longest context (position embeddings)"},
    {"vocab_size", K_INT, F(vocab_size), "50257", 2, 65536, NULL, "tokens (50257 for GPT-2's tokenizer)"},
    {"attention", K_CHOICE, F(attention), "softmax", 0, 0, "softmax|polynomial|polysketch", "attention kind"},
    {"degree", K_INT, F(degree), "4", 2, 32, NULL, "polynomial degree (even)"},
    {"sketch", K_CHOICE, F(sketch), "random", 0, 0, "random|learned", "PolySketch sketch"},
    {"sketch_size", K_INT, F(sketch_size), "32", 1, 4096, NULL, "PolySketch sketch size r"},
    {"attn_block", K_INT, F(attn_block), "256", 1, 1 << 24, NULL, "PolySketch block b (divides seq_len)"},
    {"local_exact", K_INT, F(local_exact), "1", 0, 1, NULL, "PolySketch: exact weights in diagonal blocks"},
    {"lr", K_REAL, F(lr), "6e-4", 0, 1e6, NULL, "peak learning rate"},
    {"min_lr", K_REAL, F(min_lr), "6e-5", 0, 1e6, NULL, "learning rate at the end of the schedule"},
    {"warmup_steps", K_INT, F(warmup_steps), "100", 0, 1 << 30, NULL, "linear warmup steps"},
    {"schedule", K_CHOICE, F(schedule), "cosine", 0, 0, "cosine|linear|constant", "decay after warmup"},
    {"beta1", K_REAL, F(beta1), "0.9", 0, 0.999999, NULL, "AdamW beta1"},
    {"beta2", K_REAL, F(beta2), "0.95", 0, 0.999999, NULL, "AdamW beta2"},
    {"eps", K_REAL, F(eps), "1e-8", 0, 1, NULL, "AdamW epsilon"},
    {"weight_decay", K_REAL, F(weight_decay), "0.1", 0, 10, NULL, "decoupled, on 2-D weights only"},
    {"grad_clip", K_REAL, F(grad_clip), "1.0", 0, 1e9, NULL, "global gradient norm clip; 0 is off"},
    {"dropout", K_REAL, F(dropout), "0.0", 0, 0.95, NULL, "dropout on the embeddings and residual branches in training"},
    {"batch_size", K_INT, F(batch_size), "4", 1, 1 << 20, NULL, "sequences per micro-batch"},
    {"seq_len", K_INT, F(seq_len), "1024", 1, 1 << 24, NULL, "tokens per sequence (<= block_size)"},
    {"grad_accum", K_INT, F(grad_accum), "1", 1, 1 << 20, NULL, "micro-batches per step"},
    {"max_steps", K_INT, F(max_steps), "1000", 1, 1 << 30, NULL, "optimiser steps"},
    {"eval_interval", K_INT, F(eval_interval), "100", 0, 1 << 30, NULL, "steps between val evals; 0 is off"},
    {"eval_steps", K_INT, F(eval_steps), "20", 1, 1 << 30, NULL, "val batches per eval"},
    {"checkpoint_interval", K_INT, F(checkpoint_interval), "0", 0, 1 << 30, NULL, "steps between checkpoints; 0: only at the end"},
    {"keep_checkpoints", K_INT, F(keep_checkpoints), "3", 1, 1 << 20, NULL, "newest checkpoints kept"},
    {"keep_best", K_INT, F(keep_best), "0", 0, 1, NULL, "1: checkpoint each new lowest val loss, kept as out_dir/best"},
    {"patience", K_INT, F(patience), "0", 0, 1 << 30, NULL, "with keep_best: stop after this many evals without a new best; 0 is off"},
    {"out_dir", K_STR, F(out_dir), "runs/default", 0, 0, NULL, "metrics and checkpoints"},
    {"seed", K_I64, F(seed), "1337", 0, 9.2e18, NULL, "initialisation and data order"},
    {"threads", K_INT, F(threads), "0", 0, 1024, NULL, "OpenMP threads; 0 is OMP_NUM_THREADS or all cores"},
    {"shuffle", K_INT, F(shuffle), "1", 0, 1, NULL, "shuffle training windows each epoch"},
    {"train_data", K_STR, F(train_data), "", 0, 0, NULL, "glob of training shards, or several, comma-separated (required)"},
    {"val_data", K_STR, F(val_data), "", 0, 0, NULL, "glob(s) of validation shards; empty is none"},
    {"init_from", K_STR, F(init_from), "", 0, 0, NULL, "weights to start from: a checkpoint or hf:DIR; empty is random"},
    {"resume", K_STR, F(resume), "auto", 0, 0, NULL, "auto (continue out_dir/latest), never, or a checkpoint"},
    {"precision", K_CHOICE, F(precision), "fp32", 0, 0, "fp32|bf16", "linear layers' products (bf16: AVX512-BF16, fp32 accumulation)"},
    {"recompute", K_INT, F(recompute), "0", 0, 1, NULL, "1: backward recomputes LayerNorm and GELU outputs (3/8 less activation memory)"},
    {"memory_check", K_INT, F(memory_check), "1", 0, 1, NULL, "refuse a run that cannot fit in memory and swap; 0: try anyway"},
    {"sample_tokens", K_INT, F(sample_tokens), "0", 0, 1 << 20, NULL, "tokens to sample after training"},
    {"peak_gflops", K_REAL, F(peak_gflops), "350", 1e-3, 1e9, NULL, "machine peak for MFU (fp32 SGEMM, 2 cores: 350)"},
    {"dump_step", K_STR, F(dump_step), "", 0, 0, NULL, "write loss, logits and grads of step 1 here"},
};
#define N_KEYS (sizeof KEYS / sizeof *KEYS)
_Static_assert(N_KEYS <= 64, "Config.from_cli has a bit a key");

static const Key *find_key(const char *name) {
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(KEYS[i].name, name) == 0) return &KEYS[i];
    return NULL;
}

static int in_choices(const char *choices, const char *v) {
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t k = bar ? (size_t)(bar - p) : strlen(p);
        if (k == n && strncmp(p, v, n) == 0) return 1;
        p += k + (bar != NULL);
    }
    return 0;
}

/* Sets a key from text; on failure fills e with "key: what was expected". */
static int set_key(Config *c, const Key *k, const char *v, Err *e) {
    char *base = (char *)c + k->offset, *end;
    errno = 0;
    switch (k->type) {
    case K_INT:
    case K_I64: {
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end || x < k->lo || (double)x > k->hi)
            return err_set(e, "%s: '%s' is not an integer in [%.0f, %.0f]", k->name, v, k->lo, k->hi);
        if (k->type == K_INT) *(int *)base = (int)x;
        else *(int64_t *)base = x;
        return 0;
    }
    case K_REAL: {
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x) || x < k->lo || x > k->hi)
            return err_set(e, "%s: '%s' is not a number in [%g, %g]", k->name, v, k->lo, k->hi);
        *(double *)base = x;
        return 0;
    }
    case K_CHOICE:
        if (!in_choices(k->choices, v))
            return err_set(e, "%s: '%s' is not one of %s", k->name, v, k->choices);
        /* fall through */
    case K_STR:
        if (strlen(v) >= (k->type == K_STR ? CONFIG_STR : 32))
            return err_set(e, "%s: value is too long", k->name);
        strcpy(base, v);
        return 0;
    }
    return -1;
}

void config_defaults(Config *c) {
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < N_KEYS; i++) set_key(c, &KEYS[i], KEYS[i].def, NULL);
}

static int set_pair(Config *c, const char *name, const char *value, Err *e) {
    const Key *k = find_key(name);
    if (!k) return err_set(e, "unknown key '%s' (./train --help lists the keys)", name);
    /* '#' after whitespace starts a comment (inih only strips ';' comments) */
    char v[CONFIG_STR + 64];
    snprintf(v, sizeof v, "%s", value);
    for (char *p = v; *p; p++)
        if (*p == '#' && (p == v || p[-1] == ' ' || p[-1] == '\t')) {
            *p = 0;
            break;
        }
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t')) v[--n] = 0;
    return set_key(c, k, v, e);
}

typedef struct {
    Config *c;
    Err err;
    int failed;
} LoadCtx;

static int config_ini_line(void *user, const char *section, const char *name, const char *value) {
    LoadCtx *x = user;
    Err e;
    int rc = section[0] ? err_set(&e, "[%s]: sections are not used; write plain key = value lines", section)
                        : set_pair(x->c, name, value, &e);
    if (rc && !x->failed) {
        x->failed = 1;
        x->err = e;
    }
    return rc == 0;
}

int config_load(Config *c, const char *path, Err *e) {
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return err_set(e, "%s: not a regular file; expected a config file of 'key = value' lines", path);
    LoadCtx x = {c, {{0}}, 0};
    int line = ini_parse(path, config_ini_line, &x);
    if (line < 0) return err_sys(e, "%s: cannot read config file", path);
    if (line > 0)
        return err_set(e, "%s:%d: %s", path, line, x.failed ? x.err.msg : "expected 'key = value'");
    return 0;
}

int config_set_arg(Config *c, const char *arg, Err *e) {
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) return err_set(e, "command line: '%s' is not key=value", arg);
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)(eq - arg), arg);
    Err inner;
    if (set_pair(c, name, eq + 1, &inner)) return err_set(e, "command line: %s", inner.msg);
    return 0;
}

int config_set_cli(Config *c, const char *arg, Err *e) {
    if (config_set_arg(c, arg, e)) return -1;
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)(strchr(arg, '=') - arg), arg);
    c->from_cli |= 1ull << (find_key(name) - KEYS); /* config_set_arg found it */
    return 0;
}

int config_validate(const Config *c, int need_train, Err *e) {
    if (c->n_embd % c->n_head)
        return err_set(e, "n_embd (%d) must be divisible by n_head (%d)", c->n_embd, c->n_head);
    if (c->seq_len > c->block_size)
        return err_set(e, "seq_len (%d) must be at most block_size (%d)", c->seq_len, c->block_size);
    if (c->degree % 2)
        return err_set(e, "degree: %d is odd; polynomial attention needs an even degree", c->degree);
    if (c->min_lr > c->lr)
        return err_set(e, "min_lr (%g) must be at most lr (%g)", c->min_lr, c->lr);
    int hs = c->n_embd / c->n_head, poly = strcmp(c->attention, "softmax") != 0;
    if (poly && hs > 1024)
        return err_set(e, "attention: %s supports head sizes up to 1024 (n_embd / n_head = %d)", c->attention, hs);
    if (strcmp(c->attention, "polysketch") == 0) {
        if (strcmp(c->sketch, "random") == 0 && (c->degree < 4 || (c->degree & (c->degree - 1))))
            return err_set(e, "degree: %d; polysketch needs a power of two >= 4 (the sketch is squared "
                              "log2(degree) - 1 times)", c->degree);
        if (strcmp(c->sketch, "learned") == 0 && c->degree != 4)
            return err_set(e, "degree: %d with sketch=learned; the learned sketch is squared once, an estimate "
                              "of degree 4 only (degree 8, 16, ...: sketch=random)", c->degree);
        if (c->seq_len % c->attn_block)
            return err_set(e, "attn_block (%d) must divide seq_len (%d)", c->attn_block, c->seq_len);
    }
    if (need_train && !c->train_data[0]) return err_set(e, "train_data: required (a glob of shards from ./train prepare)");
    if (need_train && c->keep_best && (!c->val_data[0] || c->eval_interval == 0))
        return err_set(e, "keep_best: needs a validation loss to compare (val_data set and eval_interval > 0)");
    if (need_train && c->patience && !c->keep_best)
        return err_set(e, "patience: %d needs keep_best=1 (it counts evaluations since the best one)", c->patience);
    return 0;
}

static void format_value(const Config *c, const Key *k, char *out, size_t n) {
    const char *base = (const char *)c + k->offset;
    switch (k->type) {
    case K_INT: snprintf(out, n, "%d", *(const int *)base); break;
    case K_I64: snprintf(out, n, "%lld", (long long)*(const int64_t *)base); break;
    case K_REAL: /* the shortest text that reads back as the same double */
        for (int prec = 6; prec <= 17; prec++) {
            snprintf(out, n, "%.*g", prec, *(const double *)base);
            if (strtod(out, NULL) == *(const double *)base) break;
        }
        break;
    default: snprintf(out, n, "%s", base); break;
    }
}

void config_help(FILE *f) {
    fprintf(f, "config keys (file: 'key = value' lines; command line: key=value):\n");
    for (size_t i = 0; i < N_KEYS; i++) {
        const Key *k = &KEYS[i];
        char def[64];
        snprintf(def, sizeof def, "%s", k->def[0] ? k->def : "\"\"");
        fprintf(f, "  %-20s %-14s %s%s%s\n", k->name, def, k->help, k->choices ? ": " : "",
                k->choices ? k->choices : "");
    }
}

int config_n_keys(void) { return (int)N_KEYS; }
const char *config_key(int i) { return KEYS[i].name; }
void config_format(const Config *c, int i, char *out, size_t n) { format_value(c, &KEYS[i], out, n); }
int config_set(Config *c, int i, const char *value, Err *e) { return set_key(c, &KEYS[i], value, e); }

void config_write(const Config *c, FILE *f) {
    char v[CONFIG_STR + 32];
    for (size_t i = 0; i < N_KEYS; i++) {
        format_value(c, &KEYS[i], v, sizeof v);
        fprintf(f, "%s = %s\n", KEYS[i].name, v);
    }
}
