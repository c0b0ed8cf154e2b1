/* ./train: the command line.
 *
 *   ./train CONFIG [key=value ...]   train (./train --help lists the keys)
 *   ./train prepare --source pg19|jsonl|c4 INPUT... --out DIR [--val-fraction F | --val INPUT...]
 *                   [--shard-tokens N] [--threads N]
 *   ./train tokenize [--allow-special] | --decode
 *
 * Everything here is argument handling: each subcommand parses its options,
 * calls into the library, prints the library's error and exits 1 on failure. */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <sys/resource.h>
#include <time.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "data/prepare.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/generate.h"
#include "model/sampler.h"
#include "model/trainer.h"
#include "tokenizer/bpe.h"

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */

static int parse_i64(const char *s, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) return -1;
    *out = v;
    return 0;
}

static int parse_f64(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end) return -1;
    *out = v;
    return 0;
}

/* `--help` or `-h` anywhere among a subcommand's arguments: its usage on
 * stdout and exit 0, before anything else is checked. */
static void help_exit(int argc, char **argv, const char *usage) {
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            exit(0);
        }
}

/* The tokenizer files live in assets/ next to the executable, unless
 * TRAIN_ASSETS names another directory. */
static void assets_dir(char *out, size_t size) {
    const char *env = getenv("TRAIN_ASSETS");
    if (env && *env) {
        snprintf(out, size, "%s", env);
        return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(out, size, "assets");
        return;
    }
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    snprintf(out, size, "%s/assets", exe);
}

static Bpe *load_tokenizer(void) {
    char dir[PATH_MAX];
    Err e;
    Bpe *b;
    assets_dir(dir, sizeof dir);
    if (bpe_load_dir(&b, dir, &e)) die("%s", e.msg);
    return b;
}

static char *read_all(FILE *f, const char *name, size_t *len) {
    size_t cap = 1 << 16, n = 0, got;
    char *buf = xmalloc(cap);
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = xrealloc(buf, cap *= 2);
    }
    if (ferror(f)) die("%s: read error: %s", name, strerror(errno));
    *len = n;
    return buf;
}

/* ------------------------------------------------------------------------ */
/* tokenize                                                                 */

static const char *TOKENIZE_USAGE =
    "usage: ./train tokenize [--allow-special] < text   print GPT-2 token ids, space-separated\n"
    "       ./train tokenize --decode < ids             print the text of ids\n"
    "  --allow-special: <|endoftext|> in the text is token 50256 (otherwise it is\n"
    "  ordinary text, as OpenAI's encoder does by default)\n";

static int cmd_tokenize(int argc, char **argv) {
    int decode = 0, special = 0;
    help_exit(argc, argv, TOKENIZE_USAGE);
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--decode") == 0) decode = 1;
        else if (strcmp(argv[i], "--allow-special") == 0) special = 1;
        else die("tokenize: unknown option '%s' (expected --decode or --allow-special)\n%s", argv[i], TOKENIZE_USAGE);
    }
    Bpe *b = load_tokenizer();
    size_t len;
    char *in = read_all(stdin, "stdin", &len);
    if (!decode) {
        BpeCtx *c = bpe_ctx_new(b);
        TokVec v = {0};
        bpe_encode(c, in, len, special, &v);
        for (size_t i = 0; i < v.n; i++) printf(i ? " %d" : "%d", v.ids[i]);
        putchar('\n');
        tokvec_free(&v);
        bpe_ctx_free(c);
    } else {
        in = xrealloc(in, len + 1);
        in[len] = 0;
        long count = 0;
        for (char *tok = strtok(in, " \t\r\n"); tok; tok = strtok(NULL, " \t\r\n")) {
            int64_t id;
            size_t n;
            count++;
            if (parse_i64(tok, &id)) die("stdin: token %ld: '%.20s' is not an integer id", count, tok);
            const unsigned char *s = id < 0 || id > INT_MAX ? NULL : bpe_token_bytes(b, (int)id, &n);
            if (!s) die("stdin: token %ld: id %lld is outside the vocabulary [0, %d)", count,
                        (long long)id, bpe_vocab_size(b));
            fwrite(s, 1, n, stdout);
        }
    }
    free(in);
    bpe_free(b);
    if (fflush(stdout) != 0) die("stdout: write error: %s", strerror(errno));
    return 0;
}

/* ------------------------------------------------------------------------ */
/* signals                                                                  */

/* Ctrl-C / SIGTERM: the first sets stop_requested (training finishes its
 * step and checkpoints; prepare stops after its batch and removes what it
 * wrote); a second exits at once. */
static volatile sig_atomic_t stop_requested;
static char stop_message[160];
static size_t stop_message_len;

static void on_signal(int sig) {
    if (stop_requested) _exit(128 + sig);
    stop_requested = 1;
    ssize_t w = write(2, stop_message, stop_message_len);
    (void)w;
}

static void on_stop_signals(const char *what) {
    snprintf(stop_message, sizeof stop_message, "\nsignal: %s (again to quit now)\n", what);
    stop_message_len = strlen(stop_message);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ------------------------------------------------------------------------ */
/* prepare                                                                  */

static const char *PREPARE_USAGE =
    "usage: ./train prepare --source pg19|jsonl|c4 INPUT... --out DIR\n"
    "                       [--val-fraction F | --val INPUT...] [--shard-tokens N] [--threads N]\n"
    "  pg19   directories of <id>.txt books, or .txt files (one document each)\n"
    "  jsonl  JSON lines with a \"text\" field, plain or .gz; directories are read recursively\n"
    "  c4     C4's c4-*.json.gz files, or directories of them\n"
    "  --val-fraction F   share of documents for val_*.bin (default 0.01); a single\n"
    "                     document gives its last F of tokens\n"
    "  --val INPUT...     the validation split as the corpus gives it (PG19's validation/,\n"
    "                     C4's c4-validation.*): every INPUT after --val goes to val_*.bin\n"
    "                     whole, every one before it to train_*.bin (none: val only)\n"
    "  --shard-tokens N   tokens per shard (default 100000000)\n"
    "  --threads N        default: OMP_NUM_THREADS or all cores\n";

static int cmd_prepare(int argc, char **argv) {
    PrepareOpts o = {.val_fraction = 0.01, .shard_tokens = 100000000, .progress = 1};
    const char *source = NULL;
    char **inputs = xmalloc((size_t)(argc + 1) * sizeof *inputs), **val = xmalloc((size_t)(argc + 1) * sizeof *val);
    int n = 0, nv = 0, after_val = 0, fraction_given = 0;
    help_exit(argc, argv, PREPARE_USAGE);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        int64_t v;
        if (strcmp(a, "--source") == 0 && has_value) {
            source = argv[++i];
        } else if (strcmp(a, "--out") == 0 && has_value) {
            o.out_dir = argv[++i];
        } else if (strcmp(a, "--val-fraction") == 0 && has_value) {
            if (parse_f64(argv[++i], &o.val_fraction) || !(o.val_fraction >= 0 && o.val_fraction < 1))
                die("prepare: --val-fraction: '%s' is not a number in [0, 1)", argv[i]);
            fraction_given = 1;
        } else if (strcmp(a, "--val") == 0) {
            after_val = 1;
        } else if (strcmp(a, "--shard-tokens") == 0 && has_value) {
            if (parse_i64(argv[++i], &o.shard_tokens) || o.shard_tokens < 1 || o.shard_tokens > INT_MAX)
                die("prepare: --shard-tokens: '%s' is not an integer in [1, %d]", argv[i], INT_MAX);
        } else if (strcmp(a, "--threads") == 0 && has_value) {
            if (parse_i64(argv[++i], &v) || v < 1 || v > 1024)
                die("prepare: --threads: '%s' is not an integer in [1, 1024]", argv[i]);
            o.threads = (int)v;
        } else if (a[0] == '-' && a[1] == '-') {
            die("prepare: %s option '%s'\n%s", has_value ? "unknown" : "missing value for", a,
                PREPARE_USAGE);
        } else if (after_val) {
            val[nv++] = argv[i];
        } else {
            inputs[n++] = argv[i];
        }
    }
    if (after_val && nv == 0) die("prepare: --val: no INPUT after it\n%s", PREPARE_USAGE);
    if (after_val && fraction_given && o.val_fraction > 0)
        die("prepare: --val-fraction %g with --val: the inputs after --val are the validation split (drop one)",
            o.val_fraction);
    if (after_val) o.val_fraction = 0;
    if (!source) die("prepare: --source is required\n%s", PREPARE_USAGE);
    if (source_kind_parse(source, &o.kind)) die("prepare: --source: unknown source '%s' (pg19, jsonl or c4)", source);
    if (!o.out_dir) die("prepare: --out DIR is required\n%s", PREPARE_USAGE);
    if (n == 0 && nv == 0) die("prepare: no INPUT given\n%s", PREPARE_USAGE);
    o.inputs = inputs;
    o.n_inputs = n;
    o.val_inputs = val;
    o.n_val_inputs = nv;
    o.bpe = load_tokenizer();
    o.stop = &stop_requested;
    on_stop_signals("stopping after this batch and removing this run's shards");
    PrepareStats st;
    Err e;
    if (prepare_run(&o, &st, &e)) die("prepare: %s", e.msg);
    printf("wrote %d train shard(s) (%lld tokens) and %d val shard(s) (%lld tokens, %lld "
           "documents of %lld) to %s\n", st.train_shards, (long long)st.train_tokens, st.val_shards,
           (long long)st.val_tokens, (long long)st.val_docs, (long long)st.docs, o.out_dir);
    bpe_free((Bpe *)o.bpe);
    free(inputs);
    free(val);
    return 0;
}

/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/* train                                                                    */

static int cmd_train(int argc, char **argv) {
    Config c;
    Err e;
    config_defaults(&c);
    if (config_load(&c, argv[0], &e)) die("%s", e.msg);
    for (int i = 1; i < argc; i++)
        if (config_set_cli(&c, argv[i], &e)) die("%s", e.msg);
    if (config_validate(&c, 1, &e)) die("%s", e.msg);
    Bpe *bpe = c.sample_tokens > 0 ? load_tokenizer() : NULL;
    on_stop_signals("finishing this step and writing a checkpoint");
    int rc = trainer_run(&c, bpe, &stop_requested, &e);
    bpe_free(bpe);
    if (rc) die("%s", e.msg);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* sample and eval                                                          */

/* CKPT (an out_dir, a step directory, out_dir/best, or hf:DIR) -> its directory and
 * config: the run's own (state.json) when there is one, else defaults with
 * the shape of config.json. */
static void load_checkpoint_config(const char *ckpt, char *dir, size_t n, Config *c) {
    Err e;
    const char *path = strncmp(ckpt, "hf:", 3) == 0 ? ckpt + 3 : ckpt;
    if (checkpoint_resolve(path, dir, n, &e)) die("%s", e.msg);
    char state[PATH_MAX + 16];
    snprintf(state, sizeof state, "%s/state.json", dir);
    TrainState st;
    if (access(state, F_OK) == 0) {
        if (checkpoint_read_state(dir, &st, c, &e)) die("%s", e.msg);
    } else {
        config_defaults(c);
    }
    if (checkpoint_read_config(dir, c, &e)) die("%s", e.msg);
}

static const char *SAMPLE_USAGE =
    "usage: ./train sample CKPT [--prompt TEXT | --prompt-file PATH] [--max-new-tokens N]\n"
    "                      [--temperature T] [--top-k K] [--top-p P] [--seed S] [--no-cache]\n"
    "                      [--num-samples N] [key=value ...]\n"
    "  CKPT: an out_dir (its latest checkpoint), a step directory, out_dir/best\n"
    "  (keep_best=1), or hf:DIR (a Hugging Face GPT-2: config.json +\n"
    "  model.safetensors). Defaults: the prompt is <|endoftext|>, 200 tokens,\n"
    "  temperature 1 (0 is greedy), top-k 50, top-p 1, seed 1337, 1 sample. --no-cache\n"
    "  re-runs the whole context for each token. --num-samples N: N continuations\n"
    "  of the prompt, one random stream, each printed with its prompt and followed\n"
    "  by a line of dashes (the first is the one sample of the same seed).\n"
    "  key=value: config keys over the checkpoint's; attention keys convert it\n"
    "  (e.g. a polynomial model sampled with attention=polysketch: the kind's\n"
    "  tensors the checkpoint lacks start from the initialisation of its seed key).\n";

static int cmd_sample(int argc, char **argv) {
    help_exit(argc, argv, SAMPLE_USAGE);
    if (argc < 1 || argv[0][0] == '-') die("sample: CKPT is required\n%s", SAMPLE_USAGE);
    const char *prompt = NULL, *prompt_file = NULL;
    int64_t max_new = 200, top_k = 50, seed = 1337, n_samples = 1;
    double temperature = 1.0, top_p = 1.0;
    int use_cache = 1, n_keys = 0;
    const char *keys[64]; /* key=value: another attention kind than the checkpoint's */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (strcmp(a, "--prompt") == 0 && has) prompt = argv[++i];
        else if (strcmp(a, "--prompt-file") == 0 && has) prompt_file = argv[++i];
        else if (strcmp(a, "--max-new-tokens") == 0 && has) {
            if (parse_i64(argv[++i], &max_new) || max_new < 0) die("sample: --max-new-tokens: '%s' is not a count", argv[i]);
        } else if (strcmp(a, "--temperature") == 0 && has) {
            if (parse_f64(argv[++i], &temperature) || !(temperature >= 0 && temperature <= 100))
                die("sample: --temperature: '%s' is not a number in [0, 100]", argv[i]);
        } else if (strcmp(a, "--top-k") == 0 && has) {
            if (parse_i64(argv[++i], &top_k) || top_k < 0) die("sample: --top-k: '%s' is not a count (0: all)", argv[i]);
        } else if (strcmp(a, "--top-p") == 0 && has) {
            if (parse_f64(argv[++i], &top_p) || !(top_p > 0 && top_p <= 1))
                die("sample: --top-p: '%s' is not a number in (0, 1]", argv[i]);
        } else if (strcmp(a, "--seed") == 0 && has) {
            if (parse_i64(argv[++i], &seed) || seed < 0) die("sample: --seed: '%s' is not a non-negative integer", argv[i]);
        } else if (strcmp(a, "--num-samples") == 0 && has) {
            if (parse_i64(argv[++i], &n_samples) || n_samples < 1 || n_samples > 1000000)
                die("sample: --num-samples: '%s' is not a count of at least 1", argv[i]);
        } else if (strcmp(a, "--no-cache") == 0) {
            use_cache = 0;
        } else if (a[0] != '-' && strchr(a, '=') && n_keys < 64) {
            keys[n_keys++] = a;
        } else {
            die("sample: %s '%s'\n%s", has || a[0] != '-' ? "unknown option" : "missing value for", a, SAMPLE_USAGE);
        }
    }
    char dir[PATH_MAX];
    Config c;
    Err e;
    load_checkpoint_config(argv[0], dir, sizeof dir, &c);
    for (int i = 0; i < n_keys; i++)
        if (config_set_arg(&c, keys[i], &e)) die("sample: %s", e.msg);
    if (n_keys && config_validate(&c, 0, &e)) die("sample: %s", e.msg);
    GPT2Config g;
    GPT2 m;
    Generator gen;
    char note[3200];
    if (trainer_model_config(&c, &g, &e)) die("sample: %s", e.msg);
    g.head_rows = 1; /* a forward's LM head for its last position only: what generation reads */
    g.inference = 1;
    if (gpt2_build(&m, &g, 1, c.block_size, &e)) die("sample: %s", e.msg);
    if (checkpoint_init_model(dir, &m, (uint64_t)c.seed, note, sizeof note, &e) ||
        generator_init(&gen, &m, use_cache, &e))
        die("sample: %s", e.msg);
    if (note[0]) fprintf(stderr, "sample: %s\n", note);
    Bpe *bpe = load_tokenizer();
    if (bpe_vocab_size(bpe) > c.vocab_size) die("sample: the model's vocabulary (%d) is smaller than GPT-2's", c.vocab_size);
    BpeCtx *ctx = bpe_ctx_new(bpe);
    TokVec ids = {0};
    size_t plen = prompt ? strlen(prompt) : 0;
    char *owned = NULL;
    if (prompt_file) { /* any bytes, NUL included */
        FILE *f = fopen(prompt_file, "rb");
        if (!f) die("sample: --prompt-file %s: %s", prompt_file, strerror(errno));
        prompt = owned = read_all(f, prompt_file, &plen);
        fclose(f);
    }
    tokvec_push(&ids, bpe_eot(bpe));
    if (plen) {
        ids.n = 0;
        bpe_encode(ctx, prompt, plen, 0, &ids);
    }
    if ((int)ids.n >= c.block_size)
        fprintf(stderr, "sample: the prompt has %zu tokens; the model sees the last %d\n", ids.n, c.block_size);
    Sampler s;
    sampler_init(&s, c.vocab_size, (float)temperature, (int)top_k, (float)top_p);
    Rng rng;
    rng_seed(&rng, (uint64_t)seed, 0x73616d70);
    for (int64_t n = 0; n < n_samples; n++) {
        if (plen) fwrite(prompt, 1, plen, stdout);
        generator_prompt(&gen, ids.ids, (int)ids.n);
        for (int64_t i = 0; i < max_new; i++) {
            int tok = sampler_pick(&s, gen.logits, &rng);
            size_t k;
            const unsigned char *bytes = bpe_token_bytes(bpe, tok, &k);
            if (bytes) fwrite(bytes, 1, k, stdout);
            fflush(stdout);
            if (i + 1 < max_new) generator_push(&gen, tok);
        }
        putchar('\n');
        if (n_samples > 1) puts("---------------");
    }
    free(owned);
    sampler_free(&s);
    tokvec_free(&ids);
    bpe_ctx_free(ctx);
    bpe_free(bpe);
    generator_free(&gen);
    gpt2_free(&m);
    return 0;
}

static const char *EVAL_USAGE =
    "usage: ./train eval CKPT [--positions N] [key=value ...]\n"
    "  the validation loss of a checkpoint (an out_dir, a step directory, out_dir/best\n"
    "  or hf:DIR)\n"
    "  key=value: config keys over the checkpoint's, e.g. val_data=shards/moby/val_*.bin\n"
    "  eval_steps=20 (default: all of val_data)\n"
    "  --positions N: the loss in each of N equal spans of the window's positions too\n";

static int cmd_eval(int argc, char **argv) {
    help_exit(argc, argv, EVAL_USAGE);
    if (argc < 1 || argv[0][0] == '-') die("eval: CKPT is required\n%s", EVAL_USAGE);
    char dir[PATH_MAX];
    Config c;
    Err e;
    int limit = 0;
    int64_t buckets = 0;
    load_checkpoint_config(argv[0], dir, sizeof dir, &c);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--positions") == 0) {
            if (i + 1 == argc) die("eval: --positions needs a count of spans");
            if (parse_i64(argv[++i], &buckets) || buckets < 1) die("eval: --positions: '%s' is not a count", argv[i]);
            continue;
        }
        if (config_set_arg(&c, argv[i], &e)) die("eval: %s", e.msg);
        limit |= strncmp(argv[i], "eval_steps=", 11) == 0;
    }
    if (buckets > c.seq_len)
        die("eval: --positions %lld is more spans than seq_len (%d) has positions", (long long)buckets, c.seq_len);
    if (config_validate(&c, 0, &e) || trainer_eval(&c, dir, limit, (int)buckets, &e)) die("eval: %s", e.msg);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* bench-attn                                                               */

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *BENCH_ATTN_USAGE =
    "usage: ./train bench-attn [key=value ...] [reps=N] [decode=1]\n"
    "  one attention layer on random inputs: the best of N (default 3) forward and\n"
    "  backward passes after a warm-up, the saved activations and the peak RSS.\n"
    "  key=value: config keys (attention, seq_len, n_head, n_embd, batch_size,\n"
    "  sketch_size, attn_block, ...); defaults GPT-2 small's heads, B=1, T=1024.\n"
    "  decode=1: ms per generated token instead (the kind's decoding state)\n";

/* One attention layer alone: the best of `reps` forward and backward passes
 * on random inputs, after one warm-up. Defaults: GPT-2 small's heads. */
static int cmd_bench_attn(int argc, char **argv) {
    help_exit(argc, argv, BENCH_ATTN_USAGE);
    Config c;
    Err e;
    config_defaults(&c);
    c.batch_size = 1;
    c.seq_len = 1024;
    int reps = 3, decode = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "decode=1") == 0) {
            decode = 1;
        } else if (strncmp(argv[i], "reps=", 5) == 0) {
            int64_t v;
            if (parse_i64(argv[i] + 5, &v) || v < 0) die("bench-attn: reps: '%s' is not a count (0: one pass, no warm-up)", argv[i] + 5);
            reps = (int)v;
        } else if (config_set_arg(&c, argv[i], &e)) {
            die("bench-attn: %s", e.msg);
        }
    }
    if (c.block_size < c.seq_len) c.block_size = c.seq_len;
    if (config_validate(&c, 0, &e)) die("bench-attn: %s", e.msg);
    if (c.threads > 0) omp_set_num_threads(c.threads);
    GPT2Config g;
    if (trainer_model_config(&c, &g, &e)) die("bench-attn: %s", e.msg);
    const AttentionKind *k = g.kind;
    const AttnConfig *a = &g.attn;
    int B = c.batch_size, T = c.seq_len, C = c.n_embd;
    size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, np = k->n_params(a), ns = k->n_saved(a, B, T);
    /* the layer's tensors as the model holds them: huge pages (big_alloc), so
     * that a head's walk down rows 3C floats apart is not a TLB miss a row */
    float *qkv = big_alloc(nqkv * sizeof *qkv), *dqkv = big_alloc(nqkv * sizeof *dqkv);
    float *out = big_alloc(nout * sizeof *out), *dout = big_alloc(nout * sizeof *dout), *params = malloc((np + 1) * sizeof *params);
    float *dparams = calloc(np + 1, sizeof *dparams), *saved = malloc((ns + 1) * sizeof *saved);
    if (!qkv || !dqkv || !out || !dout || !params || !dparams || !saved) die("bench-attn: out of memory");
    Rng r;
    rng_seed(&r, 1, 2);
    for (size_t i = 0; i < nqkv; i++) qkv[i] = rng_float(&r) * 2 - 1;
    for (size_t i = 0; i < nout; i++) dout[i] = rng_float(&r) * 2 - 1;
    k->init(a, params, &r);
    if (decode) { /* generation: ms per token just after the start and after T positions */
        float *state = malloc(k->n_state(a, T + 256) * sizeof *state), *o = malloc((size_t)C * sizeof *o);
        if (!state || !o) die("bench-attn: out of memory for the decoding state");
        /* per token over a whole block of 256 positions (PolySketch folds its
         * block state once per block), just after the start and after T */
        const float *x = qkv;
        const int W = 256;
        for (int t = 0; t < W; t++) k->decode(a, params, x + (size_t)(t % T) * 3 * C, state, t, NULL);
        double t0 = seconds();
        for (int t = W; t < 2 * W; t++) k->decode(a, params, x + (size_t)(t % T) * 3 * C, state, t, o);
        double early = (seconds() - t0) / W;
        for (int t = 2 * W; t < T; t++) k->decode(a, params, x + (size_t)(t % T) * 3 * C, state, t, NULL);
        t0 = seconds();
        for (int t = T; t < T + W; t++) k->decode(a, params, x + (size_t)(t % T) * 3 * C, state, t, o);
        double late = (seconds() - t0) / W;
        printf("attention=%s H=%d d=%d decode_ms_per_token positions_256-511=%.3f positions_%d-%d=%.3f state_mb=%.1f\n",
               c.attention, c.n_head, C / c.n_head, early * 1e3, T, T + W - 1, late * 1e3,
               (double)k->n_state(a, T + W) * 4 / 1e6);
        free(state);
        free(o);
        return 0;
    }
    double fwd = 1e30, bwd = 1e30;
    for (int i = 0; i <= reps; i++) { /* the first pass warms up (page faults, scratch) */
        double t0 = seconds();
        k->forward(a, params, qkv, out, saved, B, T);
        double t1 = seconds();
        memset(dqkv, 0, nqkv * sizeof *dqkv);
        double t2 = seconds();
        k->backward(a, params, qkv, out, saved, dout, dqkv, dparams, B, T);
        double t3 = seconds();
        if (i > 0 || reps == 0) {
            fwd = fmin(fwd, t1 - t0);
            bwd = fmin(bwd, t3 - t2);
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    char kind[96];
    if (strcmp(c.attention, "polysketch") == 0)
        snprintf(kind, sizeof kind, "polysketch(r=%d,b=%d,local=%d,p=%d%s)", c.sketch_size, c.attn_block,
                 c.local_exact, c.degree, strcmp(c.sketch, "learned") == 0 ? ",learned" : "");
    else if (strcmp(c.attention, "polynomial") == 0)
        snprintf(kind, sizeof kind, "polynomial(p=%d)", c.degree);
    else
        snprintf(kind, sizeof kind, "softmax");
    printf("attention=%s B=%d T=%d H=%d d=%d threads=%d fwd_ms=%.1f bwd_ms=%.1f fwd_bwd_ms=%.1f saved_mb=%.2f "
           "max_rss_mb=%.0f\n", kind, B, T, c.n_head, C / c.n_head, omp_get_max_threads(), fwd * 1e3, bwd * 1e3,
           (fwd + bwd) * 1e3, (double)ns * 4 / 1e6, (double)ru.ru_maxrss / 1024);
    free(qkv);
    free(dqkv);
    free(out);
    free(dout);
    free(params);
    free(dparams);
    free(saved);
    return 0;
}

/* ------------------------------------------------------------------------ */

static const char *USAGE =
    "usage: ./train CONFIG [key=value ...]   train a model\n"
    "       ./train prepare --source pg19|jsonl|c4 INPUT... --out DIR [options]\n"
    "       ./train sample CKPT [--prompt TEXT | --prompt-file PATH] [--max-new-tokens N]\n"
    "                      [--temperature T] [--top-k K] [--top-p P] [--seed S] [--no-cache]\n"
    "                      [--num-samples N] [key=value ...]\n"
    "       ./train eval CKPT [--positions N] [key=value ...]   validation loss (and by position)\n"
    "       ./train bench-attn [key=value ...] [reps=N]   time one attention layer (fwd, bwd, memory)\n"
    "       ./train tokenize [--allow-special] < text      print GPT-2 token ids\n"
    "       ./train tokenize --decode < ids                print the text of ids\n"
    "       ./train COMMAND --help                         a command's options\n";

int main(int argc, char **argv) {
    /* a file-size limit (ulimit -f) must fail the write, which we report, not kill us */
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        if (argc >= 2) {
            putchar('\n');
            config_help(stdout);
        }
        return argc < 2 ? 1 : 0;
    }
    if (strcmp(argv[1], "tokenize") == 0) return cmd_tokenize(argc - 2, argv + 2);
    if (strcmp(argv[1], "prepare") == 0) return cmd_prepare(argc - 2, argv + 2);
    if (strcmp(argv[1], "sample") == 0) return cmd_sample(argc - 2, argv + 2);
    if (strcmp(argv[1], "eval") == 0) return cmd_eval(argc - 2, argv + 2);
    if (strcmp(argv[1], "bench-attn") == 0) return cmd_bench_attn(argc - 2, argv + 2);
    if (argv[1][0] == '-') die("unknown option '%s'\n%s", argv[1], USAGE);
    if (access(argv[1], F_OK) != 0 && !strchr(argv[1], '.') && !strchr(argv[1], '/'))
        die("unknown command '%s'\n%s", argv[1], USAGE);
    return cmd_train(argc - 1, argv + 1);
}
