/* Checkpoints and Hugging Face interop: a GPT-2 saved by (the layout of)
 * save_pretrained loads and gives PyTorch's logits; our checkpoint writes
 * exactly that layout back; save/load round trips; `latest` and pruning;
 * and every kind of damage is an error naming the file. */
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../model/checkpoint.h"
#include "../model/trainer.h"
#include "test.h"

static StFile ref, real_ref;
static char root[] = "/tmp/test_ckpt_XXXXXX";

/* hf_tiny: what our reference script writes in save_pretrained's layout;
 * hf_real: what transformers' own save_pretrained wrote (scripts/hf_interop.py) */
static const char *const HF_TINY = "tests/data/hf_tiny", *const HF_REAL = "tests/data/hf_real";

static void hf_config(Config *c, const char *dir) {
    config_defaults(c);
    Err e;
    if (checkpoint_read_config(dir, c, &e)) printf("  %s\n", e.msg);
    c->batch_size = 2;
    c->seq_len = 24;
    c->keep_checkpoints = 2;
}

static void build(GPT2 *m, const Config *c) {
    GPT2Config g;
    Err e;
    CHECK(trainer_model_config(c, &g, &e) == 0 && gpt2_build(m, &g, c->batch_size, c->seq_len, &e) == 0, "%s", e.msg);
}

static void tiny_config(Config *c) { hf_config(c, HF_TINY); }

/* dir loads with the shape from its config.json and gives the logits in ref */
static void check_hf_logits(const char *dir, const StFile *want_file) {
    Config c;
    hf_config(&c, dir);
    CHECK(c.n_layer == 2 && c.n_head == 2 && c.n_embd == 32 && c.block_size == 32 && c.vocab_size == 192,
          "%s: shape from config.json: %d %d %d %d %d", dir, c.n_layer, c.n_head, c.n_embd, c.block_size, c.vocab_size);
    GPT2 m;
    build(&m, &c);
    Err e;
    CHECK(checkpoint_load_model(dir, &m, &e) == 0, "%s", e.msg);
    int in[48];
    const StTensor *ti = st_find(want_file, "inputs"), *tl = st_find(want_file, "logits");
    CHECK(ti && tl && st_numel(ti) == 48 && st_read(want_file, ti, "I32", 48, in, &e) == 0, "inputs");
    float *want = malloc((size_t)st_numel(tl) * sizeof *want);
    st_read(want_file, tl, "F32", (size_t)st_numel(tl), want, &e);
    gpt2_forward(&m, in, NULL, 2, 24);
    double err = 0, scale = 0;
    for (int64_t i = 0; i < st_numel(tl); i++) {
        err = fmax(err, fabs(m.a.logits[i] - want[i]));
        scale = fmax(scale, fabs(want[i]));
    }
    CHECK(err < 1e-5 * scale, "%s: logits differ from torch by %g", dir, err / scale);
    free(want);
    gpt2_free(&m);
}

static void test_hf_directory_loads_and_matches_torch(void) { check_hf_logits(HF_TINY, &ref); }

/* transformers 5's own save_pretrained output (dtype key, generation_config.json) */
static void test_transformers_directory_loads_and_matches_transformers(void) { check_hf_logits(HF_REAL, &real_ref); }

/* ours holds n tensors, each in theirs with the same dtype, shape and bytes;
 * theirs has `buffers` more (legacy attention buffers loaders ignore) */
static void check_same_tensors(const char *ours_path, const char *theirs_path, int n, int buffers) {
    StFile ours, theirs;
    Err e;
    CHECK(st_open(&ours, ours_path, &e) == 0, "%s", e.msg);
    CHECK(st_open(&theirs, theirs_path, &e) == 0, "%s", e.msg);
    CHECK(ours.n == n && theirs.n == n + buffers && ours.metadata && strstr(ours.metadata, "\"format\":\"pt\""),
          "%d and %d tensors (want %d and %d), metadata %s", ours.n, theirs.n, n, n + buffers, ours.metadata ? ours.metadata : "none");
    int same = 1;
    for (int i = 0; i < ours.n; i++) {
        const StTensor *a = &ours.t[i], *b = st_find(&theirs, a->name);
        if (!b || a->ndim != b->ndim || memcmp(a->shape, b->shape, sizeof a->shape) || strcmp(a->dtype, b->dtype)) {
            same = 0;
            printf("  %s: no match in %s\n", a->name, theirs_path);
            continue;
        }
        size_t k = (size_t)st_numel(a);
        float *x = malloc(k * 4), *y = malloc(k * 4);
        st_read(&ours, a, "F32", k, x, &e);
        st_read(&theirs, b, "F32", k, y, &e);
        same &= memcmp(x, y, k * 4) == 0;
        free(x);
        free(y);
    }
    CHECK(same, "%s: tensors differ from %s", ours_path, theirs_path);
    st_close(&ours);
    st_close(&theirs);
}

/* A directory transformers wrote, saved again as our checkpoint, holds the
 * tensors transformers wrote (scripts/hf_interop.py check verifies, where
 * transformers is installed, that it loads our checkpoints). */
static void test_transformers_directory_saves_back_the_same(void) {
    Config c;
    hf_config(&c, HF_REAL);
    c.batch_size = 1;
    c.seq_len = 8;
    snprintf(c.out_dir, sizeof c.out_dir, "%s/real", root);
    mkdir(c.out_dir, 0777);
    GPT2 m;
    build(&m, &c);
    Err e;
    CHECK(checkpoint_load_model(HF_REAL, &m, &e) == 0, "%s", e.msg);
    float *zero = calloc(m.n_params, sizeof *zero);
    TrainState st = {.step = 1, .loader = {0, 0, 0}, .rng = {{1, 2, 3, 4}}};
    char dir[4096], path[4200];
    CHECK(checkpoint_save(c.out_dir, &m, zero, zero, &c, &st, &e) == 0 && checkpoint_resolve(c.out_dir, dir, sizeof dir, &e) == 0,
          "%s", e.msg);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    check_same_tensors(path, "tests/data/hf_real/model.safetensors", gpt2_n_tensors(&m), 0);
    free(zero);
    gpt2_free(&m);
}

/* A config.json without our attention keys (transformers' own) describes a
 * softmax GPT-2, whatever the Config held before (init_from converts only
 * on the command line's word). */
static void test_hf_config_is_softmax(void) {
    Config c;
    Err e;
    config_defaults(&c);
    CHECK(config_set_arg(&c, "attention=polysketch", &e) == 0, "%s", e.msg);
    CHECK(checkpoint_read_config(HF_REAL, &c, &e) == 0, "%s", e.msg);
    CHECK(strcmp(c.attention, "softmax") == 0 && c.n_layer == 2 && c.vocab_size == 192, "attention %s, %d layers",
          c.attention, c.n_layer);
}

/* Our checkpoint's model.safetensors holds the same tensors, byte for byte,
 * as the Hugging Face layout the reference script wrote. */
static void test_checkpoint_layout_is_hugging_face(void) {
    Config c;
    tiny_config(&c);
    snprintf(c.out_dir, sizeof c.out_dir, "%s/run", root);
    mkdir(c.out_dir, 0777);
    GPT2 m;
    build(&m, &c);
    Err e;
    checkpoint_load_model("tests/data/hf_tiny", &m, &e);
    float *am = calloc(m.n_params, sizeof *am), *av = calloc(m.n_params, sizeof *av);
    TrainState st = {.step = 7, .loader = {1, 0, 3}, .rng = {{1, 2, 3, 4}}};
    CHECK(checkpoint_save(c.out_dir, &m, am, av, &c, &st, &e) == 0, "%s", e.msg);
    char dir[4096], path[4200];
    CHECK(checkpoint_resolve(c.out_dir, dir, sizeof dir, &e) == 0 && strstr(dir, "step_00000007"), "%s", e.msg);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    check_same_tensors(path, "tests/data/hf_tiny/model.safetensors", gpt2_n_tensors(&m), 1);

    /* state and config come back */
    Config saved, back;
    TrainState st2;
    CHECK(checkpoint_read_state(dir, &st2, &saved, &e) == 0, "%s", e.msg);
    CHECK(st2.step == 7 && st2.loader.epoch == 1 && st2.loader.sample == 3 && st2.rng.s[3] == 4, "state fields");
    CHECK(saved.n_embd == 32 && saved.batch_size == 2 && strcmp(saved.out_dir, c.out_dir) == 0, "saved config");
    config_defaults(&back);
    CHECK(checkpoint_read_config(dir, &back, &e) == 0 && back.n_layer == 2 && back.vocab_size == 192, "%s", e.msg);

    /* parameters and moments round trip */
    for (size_t i = 0; i < m.n_params; i++) {
        am[i] = (float)i * 1e-3f;
        av[i] = (float)i * 2e-3f;
    }
    st.step = 9;
    CHECK(checkpoint_save(c.out_dir, &m, am, av, &c, &st, &e) == 0, "%s", e.msg);
    GPT2 m2;
    build(&m2, &c);
    float *bm = calloc(m.n_params, sizeof *bm), *bv = calloc(m.n_params, sizeof *bv);
    checkpoint_resolve(c.out_dir, dir, sizeof dir, &e);
    CHECK(checkpoint_load_model(dir, &m2, &e) == 0 && checkpoint_load_optimizer(dir, &m2, bm, bv, &e) == 0, "%s", e.msg);
    CHECK(memcmp(m.params, m2.params, m.n_params * 4) == 0 && memcmp(am, bm, m.n_params * 4) == 0 &&
              memcmp(av, bv, m.n_params * 4) == 0, "round trip changed the values");

    /* keep_checkpoints = 2: step 7 and 9 kept; a third prunes step 7 */
    st.step = 11;
    checkpoint_save(c.out_dir, &m, am, av, &c, &st, &e);
    snprintf(path, sizeof path, "%s/step_00000007", c.out_dir);
    char p9[4200];
    snprintf(p9, sizeof p9, "%s/step_00000009", c.out_dir);
    CHECK(access(path, F_OK) != 0 && access(p9, F_OK) == 0, "pruning keeps the newest 2");
    free(am);
    free(av);
    free(bm);
    free(bv);
    gpt2_free(&m);
    gpt2_free(&m2);
}

static void corrupt(const char *path, long offset, int truncate_to) {
    FILE *f = fopen(path, "r+b");
    if (truncate_to >= 0) {
        if (ftruncate(fileno(f), truncate_to) != 0) printf("  truncate failed\n");
    } else {
        fseek(f, offset, offset < 0 ? SEEK_END : SEEK_SET);
        int ch = fgetc(f);
        fseek(f, -1, SEEK_CUR);
        fputc(ch ^ 0x40, f);
    }
    fclose(f);
}

static void copy_dir(const char *from, const char *to) {
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", to, from, to);
    if (system(cmd) != 0) printf("  copy failed\n");
}

static void test_damage_is_reported(void) {
    char good[4096], bad[4200], path[4400];
    snprintf(good, sizeof good, "%s/run/step_00000011", root);
    snprintf(bad, sizeof bad, "%s/bad", root);
    struct {
        const char *file;
        long offset;
        int truncate_to;
        const char *expect;
    } cases[] = {
        {"model.safetensors", -100, -1, "CRC-32"},
        {"model.safetensors", 0, 1000, "truncated or replaced"},
        {"optimizer.safetensors", 5000, -1, "CRC-32"},
        {"config.json", 10, -1, "CRC-32"},
        {"state.json", 0, 5, "state.json"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        copy_dir(good, bad);
        snprintf(path, sizeof path, "%s/%s", bad, cases[i].file);
        corrupt(path, cases[i].offset, cases[i].truncate_to);
        TrainState st;
        Config saved;
        Err e = {{0}};
        int rc = checkpoint_read_state(bad, &st, &saved, &e);
        CHECK(rc == -1 && strstr(e.msg, cases[i].expect) && strstr(e.msg, "bad/"), "%s: %s", cases[i].file, e.msg);
    }
    /* state.json still valid JSON, one digit changed: its own checksum catches it */
    copy_dir(good, bad);
    snprintf(path, sizeof path, "%s/state.json", bad);
    size_t len;
    char *text = test_slurp(path, &len), *digit = text ? strstr(text, "\"step\": ") : NULL;
    CHECK(digit != NULL, "no step in state.json");
    if (digit) {
        digit += 8;
        *digit = *digit == '9' ? '8' : (char)(*digit + 1);
        FILE *f = fopen(path, "wb");
        fwrite(text, 1, len, f);
        fclose(f);
        TrainState st;
        Config saved;
        Err e = {{0}};
        CHECK(checkpoint_read_state(bad, &st, &saved, &e) == -1 && strstr(e.msg, "state.json: checksum"), "%s", e.msg);
    }
    free(text);
    /* a model file of another shape, or with a tensor missing */
    Config c;
    tiny_config(&c);
    c.n_embd = 64;
    GPT2 m;
    build(&m, &c);
    Err e;
    CHECK(checkpoint_load_model(good, &m, &e) == -1 && strstr(e.msg, "shape") && strstr(e.msg, "model.safetensors"),
          "%s", e.msg);
    gpt2_free(&m);
    tiny_config(&c);
    c.n_layer = 3;
    build(&m, &c);
    CHECK(checkpoint_load_model(good, &m, &e) == -1 && strstr(e.msg, "missing tensor 'transformer.h.2."), "%s", e.msg);
    gpt2_free(&m);
    /* not a checkpoint at all */
    CHECK(checkpoint_resolve(root, path, sizeof path, &e) == -1 && strstr(e.msg, "not a checkpoint"), "%s", e.msg);
    snprintf(path, sizeof path, "%s/run/latest", root);
    FILE *f = fopen(path, "w");
    fputs("../../etc\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/run", root);
    CHECK(checkpoint_resolve(path, bad, sizeof bad, &e) == -1 && strstr(e.msg, "latest"), "%s", e.msg);
    /* a header that lies about its length, and one that is not JSON */
    snprintf(path, sizeof path, "%s/x.safetensors", root);
    f = fopen(path, "wb");
    fwrite("\xff\xff\xff\xff\x00\x00\x00\x00{}", 1, 10, f);
    fclose(f);
    StFile sf;
    CHECK(st_open(&sf, path, &e) == -1 && strstr(e.msg, "x.safetensors"), "%s", e.msg);
    f = fopen(path, "wb");
    fwrite("\x04\x00\x00\x00\x00\x00\x00\x00{{{{", 1, 12, f);
    fclose(f);
    CHECK(st_open(&sf, path, &e) == -1 && strstr(e.msg, "corrupt header"), "%s", e.msg);
}

int main(void) {
    Err e;
    if (st_open(&ref, "tests/data/gpt2_ref.safetensors", &e) || st_open(&real_ref, "tests/data/hf_real_ref.safetensors", &e) ||
        !mkdtemp(root)) {
        printf("FAIL setup: %s\n", e.msg);
        return 1;
    }
    RUN(test_hf_directory_loads_and_matches_torch);
    RUN(test_transformers_directory_loads_and_matches_transformers);
    RUN(test_checkpoint_layout_is_hugging_face);
    RUN(test_transformers_directory_saves_back_the_same);
    RUN(test_damage_is_reported);
    RUN(test_hf_config_is_softmax);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0) printf("  (could not remove %s)\n", root);
    st_close(&ref);
    st_close(&real_ref);
    return 0;
}
