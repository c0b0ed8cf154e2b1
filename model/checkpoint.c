#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

void weights_describe(const GPT2 *m, const char *prefix, StTensor *t) {
    for (int i = 0; i < gpt2_n_tensors(m); i++) {
        TensorInfo ti;
        gpt2_tensor_info(m, i, &ti);
        memset(&t[i], 0, sizeof t[i]);
        snprintf(t[i].name, sizeof t[i].name, "%s%s", prefix, ti.name);
        strcpy(t[i].dtype, "F32");
        t[i].ndim = ti.ndim;
        t[i].shape[0] = ti.shape[0];
        t[i].shape[1] = ti.shape[1];
    }
}

/* dst[c][r] = src[r][c] for an R x C source: 16 x 16 blocks, parallel over
 * row blocks (a plain strided loop runs at a tenth of the speed) */
static void transpose(float *restrict dst, const float *restrict src, int R, int C) {
    #pragma omp parallel for schedule(static)
    for (int r0 = 0; r0 < R; r0 += 16)
        for (int c0 = 0; c0 < C; c0 += 16) {
            int r1 = r0 + 16 < R ? r0 + 16 : R, c1 = c0 + 16 < C ? c0 + 16 : C;
            for (int c = c0; c < c1; c++)
                for (int r = r0; r < r1; r++) dst[(size_t)c * R + r] = src[(size_t)r * C + c];
        }
}

static float *scratch_for(const GPT2 *m) {
    size_t most = 0;
    for (int i = 0; i < gpt2_n_tensors(m); i++) {
        TensorInfo ti;
        gpt2_tensor_info(m, i, &ti);
        size_t n = (size_t)ti.shape[0] * (size_t)(ti.ndim == 2 ? ti.shape[1] : 1);
        if (ti.transposed && n > most) most = n;
    }
    return malloc((most ? most : 1) * sizeof(float));
}

int weights_write(const GPT2 *m, StWriter *w, const float *base, Err *e) {
    float *tmp = scratch_for(m);
    if (!tmp) return err_set(e, "%s: out of memory", w->path);
    int rc = 0;
    for (int i = 0; rc == 0 && i < gpt2_n_tensors(m); i++) {
        TensorInfo ti;
        gpt2_tensor_info(m, i, &ti);
        size_t n = (size_t)ti.shape[0] * (size_t)(ti.ndim == 2 ? ti.shape[1] : 1);
        const float *src = base + ti.offset;
        if (ti.transposed) { /* ours [out, in] -> HF [in, out] */
            transpose(tmp, src, ti.shape[1], ti.shape[0]);
            src = tmp;
        }
        rc = st_writer_data(w, src, n * sizeof(float), e);
    }
    free(tmp);
    return rc;
}

/* Our name for a tensor in f, or the same without "transformer." (a bare
 * GPT2Model's names). */
static const StTensor *find_ours(const StFile *f, const char *name) {
    const StTensor *t = st_find(f, name);
    return t || strncmp(name, "transformer.", 12) != 0 ? t : st_find(f, name + 12);
}

/* f's name `theirs` is our `ours`, with or without "transformer." */
static int same_name(const char *ours, const char *theirs) {
    return strcmp(ours, theirs) == 0 || (strncmp(ours, "transformer.", 12) == 0 && strcmp(ours + 12, theirs) == 0);
}

static int same_shape(const StTensor *t, const TensorInfo *ti) {
    return t->ndim == ti->ndim && t->shape[0] == ti->shape[0] && (ti->ndim == 1 || t->shape[1] == ti->shape[1]);
}

/* weights_read; with kept (not NULL) the attention kind's own tensors may
 * be missing or of another shape (another sketch_size): they are read from
 * their stand-in (kept[i] = 2) or keep what base holds (kept[i] = 1). */
static int read_tensors(const GPT2 *m, const StFile *f, const char *prefix, float *base, char *kept, Err *e) {
    float *tmp = scratch_for(m);
    if (!tmp) return err_set(e, "%s: out of memory", f->path);
    int rc = 0;
    for (int i = 0; rc == 0 && i < gpt2_n_tensors(m); i++) {
        TensorInfo ti;
        char name[256];
        gpt2_tensor_info(m, i, &ti);
        snprintf(name, sizeof name, "%s%s", prefix, ti.name);
        const StTensor *t = prefix[0] ? st_find(f, name) : find_ours(f, name);
        if (kept) kept[i] = 0;
        if (kept && ti.own && !(t && same_shape(t, &ti))) {
            t = ti.alt[0] ? find_ours(f, ti.alt) : NULL;
            kept[i] = t && same_shape(t, &ti) ? 2 : 1;
            if (kept[i] == 1) continue;
        }
        if (!t) {
            rc = err_set(e, "%s: missing tensor '%s'", f->path, name);
            break;
        }
        if (!same_shape(t, &ti)) {
            char got[64] = "", want[64];
            for (int k = 0; k < t->ndim && k < 4; k++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", k ? ", " : "", (long long)t->shape[k]);
            if (ti.ndim == 1) snprintf(want, sizeof want, "%d", ti.shape[0]);
            else snprintf(want, sizeof want, "%d, %d", ti.shape[0], ti.shape[1]);
            rc = err_set(e, "%s: tensor '%s' has shape [%s], the model expects [%s] (a checkpoint of "
                            "another model shape?)", f->path, name, got, want);
            break;
        }
        size_t n = (size_t)st_numel(t);
        float *dst = ti.transposed ? tmp : base + ti.offset;
        rc = st_read(f, t, "F32", n, dst, e);
        if (rc == 0 && ti.transposed) transpose(base + ti.offset, tmp, ti.shape[0], ti.shape[1]);
    }
    free(tmp);
    return rc;
}

int weights_read(const GPT2 *m, const StFile *f, const char *prefix, float *base, Err *e) {
    return read_tensors(m, f, prefix, base, NULL, e);
}

/* ------------------------------------------------------------------------ */
/* files                                                                    */

static int fsync_path(const char *path, Err *e) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return err_sys(e, "%s: cannot open to fsync", path);
    int rc = fsync(fd) == 0 ? 0 : err_sys(e, "%s: cannot fsync", path);
    close(fd);
    return rc;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) { return remove(path); }

static void rm_rf(const char *path) { nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* Writes text to path, fsynced; reports its size and CRC-32. */
static int write_text(const char *path, const char *text, uint64_t *bytes, uint32_t *crc, Err *e) {
    size_t n = strlen(text);
    FILE *f = fopen(path, "wb");
    if (!f) return err_sys(e, "%s: cannot create", path);
    int ok = fwrite(text, 1, n, f) == n && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (!ok) return err_sys(e, "%s: cannot write", path);
    if (bytes) *bytes = n;
    if (crc) *crc = (uint32_t)crc32_z(0, (const Bytef *)text, n);
    return 0;
}

static int file_crc(const char *path, uint64_t *bytes, uint32_t *crc, Err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return err_sys(e, "%s: cannot open", path);
    static _Thread_local unsigned char buf[1 << 20];
    size_t got;
    *bytes = 0;
    *crc = 0;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        *crc = (uint32_t)crc32_z(*crc, buf, got);
        *bytes += got;
    }
    int bad = ferror(f);
    fclose(f);
    return bad ? err_sys(e, "%s: read error", path) : 0;
}

static json_t *config_json(const Config *c) {
    json_t *o = json_object();
    char v[CONFIG_STR + 32];
    for (int i = 0; i < config_n_keys(); i++) {
        config_format(c, i, v, sizeof v);
        json_object_set_new(o, config_key(i), json_string(v));
    }
    return o;
}

/* Hugging Face GPT2Config keys, plus ours for the attention kind. */
static char *hf_config_text(const Config *c) {
    json_t *o = json_pack("{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:n, s:s, s:f, s:f, s:f, s:f, s:f, s:b, s:b,"
                          " s:i, s:i, s:b, s:s}",
                          "architectures", "GPT2LMHeadModel", "model_type", "gpt2", "vocab_size", c->vocab_size,
                          "n_positions", c->block_size, "n_ctx", c->block_size, "n_embd", c->n_embd, "n_layer",
                          c->n_layer, "n_head", c->n_head, "n_inner", "activation_function", "gelu_new",
                          "layer_norm_epsilon", 1e-5, "resid_pdrop", c->dropout, "embd_pdrop", c->dropout, "attn_pdrop", 0.0,
                          "initializer_range", 0.02, "scale_attn_weights", 1, "use_cache", 1, "bos_token_id", 50256,
                          "eos_token_id", 50256, "tie_word_embeddings", 1, "torch_dtype", "float32");
    json_object_set_new(o, "attention", json_string(c->attention));
    json_object_set_new(o, "degree", json_integer(c->degree));
    json_object_set_new(o, "sketch", json_string(c->sketch));
    json_object_set_new(o, "sketch_size", json_integer(c->sketch_size));
    json_object_set_new(o, "attn_block", json_integer(c->attn_block));
    json_object_set_new(o, "local_exact", json_integer(c->local_exact));
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)); /* 0.1, not 0.10000000000000001 */
    json_decref(o);
    return text;
}

static int write_tensors(const char *path, const GPT2 *m, const float *const *bases, const char *const *prefixes,
                         int nb, const char *metadata, uint64_t *bytes, uint32_t *crc, Err *e) {
    int n = gpt2_n_tensors(m);
    StTensor *t = xcalloc((size_t)(n * nb), sizeof *t);
    for (int b = 0; b < nb; b++) weights_describe(m, prefixes[b], t + b * n);
    StWriter w;
    int rc = st_writer_open(&w, path, t, n * nb, metadata, e);
    for (int b = 0; rc == 0 && b < nb; b++) rc = weights_write(m, &w, bases[b], e);
    if (rc == 0) {
        *bytes = w.bytes;
        *crc = w.crc;
        rc = st_writer_close(&w, e);
    } else {
        st_writer_abort(&w);
    }
    free(t);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* save                                                                     */

static void prune(const char *out_dir, int keep, const char *newest, int64_t best_step) {
    DIR *d = opendir(out_dir);
    if (!d) return;
    long steps[4096];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < 4096) {
        char *end;
        if (strncmp(de->d_name, "step_", 5) != 0) continue;
        long s = strtol(de->d_name + 5, &end, 10);
        if (*end == 0 && end != de->d_name + 5) steps[n++] = s;
    }
    closedir(d);
    for (int i = 0; i < n; i++) { /* newest first */
        for (int j = i + 1; j < n; j++)
            if (steps[j] > steps[i]) {
                long t = steps[i];
                steps[i] = steps[j];
                steps[j] = t;
            }
        char name[64], path[CONFIG_STR + 80];
        snprintf(name, sizeof name, "step_%08ld", steps[i]);
        if (i < keep || strcmp(name, newest) == 0 || steps[i] == best_step) continue;
        snprintf(path, sizeof path, "%s/%s", out_dir, name);
        rm_rf(path);
    }
}

int checkpoint_save(const char *out_dir, const GPT2 *m, const float *adam_m, const float *adam_v,
                    const Config *c, const TrainState *st, Err *e) {
    char name[64], tmp[CONFIG_STR + 80], final[CONFIG_STR + 80], old[CONFIG_STR + 80], path[CONFIG_STR + 128];
    snprintf(name, sizeof name, "step_%08lld", (long long)st->step);
    snprintf(tmp, sizeof tmp, "%s/.tmp_%s", out_dir, name);
    snprintf(final, sizeof final, "%s/%s", out_dir, name);
    snprintf(old, sizeof old, "%s/.old_%s", out_dir, name);
    rm_rf(tmp);
    if (mkdir(tmp, 0777) != 0) return err_sys(e, "%s: cannot create checkpoint directory", tmp);

    uint64_t bytes[3];
    uint32_t crc[3];
    const char *files[3] = {"model.safetensors", "optimizer.safetensors", "config.json"};
    const float *mb[1] = {m->params}, *ob[2] = {adam_m, adam_v};
    const char *mp[1] = {""}, *op[2] = {"exp_avg.", "exp_avg_sq."};
    char *hf = hf_config_text(c);
    int rc = 0;
    snprintf(path, sizeof path, "%s/%s", tmp, files[0]);
    rc = write_tensors(path, m, mb, mp, 1, "{\"format\": \"pt\"}", &bytes[0], &crc[0], e);
    snprintf(path, sizeof path, "%s/%s", tmp, files[1]);
    if (rc == 0) rc = write_tensors(path, m, ob, op, 2, NULL, &bytes[1], &crc[1], e);
    snprintf(path, sizeof path, "%s/%s", tmp, files[2]);
    if (rc == 0) rc = write_text(path, hf, &bytes[2], &crc[2], e);
    free(hf);
    if (rc == 0) {
        json_t *fs = json_object();
        for (int i = 0; i < 3; i++) {
            char hex[16];
            snprintf(hex, sizeof hex, "%08x", crc[i]);
            json_object_set_new(fs, files[i], json_pack("{s:I, s:s}", "bytes", (json_int_t)bytes[i], "crc32", hex));
        }
        char r[4][24];
        for (int i = 0; i < 4; i++) snprintf(r[i], sizeof r[i], "%016llx", (unsigned long long)st->rng.s[i]);
        json_t *state = json_pack("{s:i, s:I, s:{s:I, s:I, s:I}, s:[s, s, s, s], s:o, s:o}", "format", 1, "step",
                                  (json_int_t)st->step, "loader", "epoch", (json_int_t)st->loader.epoch, "shard",
                                  (json_int_t)st->loader.shard, "sample", (json_int_t)st->loader.sample, "rng", r[0],
                                  r[1], r[2], r[3], "files", fs, "config", config_json(c));
        if (st->best_step >= 0)
            json_object_set_new(state, "best", json_pack("{s:I, s:f}", "step", (json_int_t)st->best_step, "val_loss",
                                                         st->best_val));
        char hex[16]; /* state.json checks itself */
        checkpoint_state_checksum(state, hex);
        json_object_set_new(state, "checksum", json_string(hex));
        char *text = json_dumps(state, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(state);
        snprintf(path, sizeof path, "%s/state.json", tmp);
        rc = write_text(path, text, NULL, NULL, e);
        free(text);
    }
    if (rc == 0) rc = fsync_path(tmp, e);
    if (rc == 0) {
        struct stat sb;
        if (stat(final, &sb) == 0) { /* the same step again (after a resume): replace it */
            rm_rf(old);
            if (rename(final, old) != 0) rc = err_sys(e, "cannot move aside %s", final);
        }
    }
    if (rc == 0 && rename(tmp, final) != 0) rc = err_sys(e, "cannot rename %s to %s", tmp, final);
    if (rc == 0) rc = fsync_path(out_dir, e);
    if (rc == 0) rc = checkpoint_point(out_dir, "latest", st->step, e);
    if (rc == 0 && st->best_step == st->step) rc = checkpoint_point(out_dir, "best", st->step, e);
    if (rc) {
        rm_rf(tmp); /* the previous checkpoint and `latest` are untouched */
        return -1;
    }
    rm_rf(old);
    prune(out_dir, c->keep_checkpoints, name, st->best_step);
    return 0;
}

int checkpoint_point(const char *out_dir, const char *link, int64_t step, Err *e) {
    char line[80], tmp[CONFIG_STR + 80], path[CONFIG_STR + 80];
    snprintf(line, sizeof line, "step_%08lld\n", (long long)step);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", out_dir, link);
    snprintf(path, sizeof path, "%s/%s", out_dir, link);
    int rc = write_text(tmp, line, NULL, NULL, e);
    if (rc == 0 && rename(tmp, path) != 0) rc = err_sys(e, "cannot rename %s to %s", tmp, path);
    if (rc == 0) rc = fsync_path(out_dir, e);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* load                                                                     */

int checkpoint_exists(const char *out_dir) {
    char p[CONFIG_STR + 16];
    snprintf(p, sizeof p, "%s/latest", out_dir);
    return access(p, F_OK) == 0;
}

int checkpoint_resolve(const char *ckpt, char *dir, size_t n, Err *e) {
    char p[CONFIG_STR + 80];
    snprintf(p, sizeof p, "%s/model.safetensors", ckpt);
    if (access(p, F_OK) == 0) {
        snprintf(dir, n, "%s", ckpt);
        return 0;
    }
    char parent[CONFIG_STR + 8];
    struct stat sb;
    if (stat(ckpt, &sb) == 0 && S_ISREG(sb.st_mode)) { /* out_dir/latest or out_dir/best itself */
        snprintf(p, sizeof p, "%s", ckpt);
        snprintf(parent, sizeof parent, "%s", ckpt);
        char *slash = strrchr(parent, '/');
        if (slash) *slash = 0;
        else snprintf(parent, sizeof parent, ".");
    } else {
        snprintf(p, sizeof p, "%s/latest", ckpt);
        snprintf(parent, sizeof parent, "%s", ckpt);
    }
    FILE *f = fopen(p, "r");
    if (!f) return err_set(e, "%s: not a checkpoint (no model.safetensors) nor an out_dir with one (no 'latest')", ckpt);
    char name[256] = "";
    if (!fgets(name, sizeof name, f)) name[0] = 0;
    fclose(f);
    name[strcspn(name, "\r\n")] = 0;
    if (!name[0] || strchr(name, '/')) return err_set(e, "%s: malformed; expected the name of a step_ directory", p);
    snprintf(dir, n, "%s/%s", parent, name);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (access(p, F_OK) != 0) return err_set(e, "%s names %s, which has no model.safetensors", ckpt, dir);
    return 0;
}

static json_t *load_json(const char *path, Err *e) {
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) err_set(e, "%s:%d: %s", path, je.line, je.text);
    else if (!json_is_object(j)) {
        json_decref(j);
        j = NULL;
        err_set(e, "%s: expected a JSON object", path);
    }
    return j;
}

static int json_int_key(json_t *o, const char *path, const char *key, int *out, int required, Err *e) {
    json_t *v = json_object_get(o, key);
    if (!v) return required ? err_set(e, "%s: missing key \"%s\"", path, key) : 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (1 << 30))
        return err_set(e, "%s: \"%s\" must be a non-negative integer", path, key);
    *out = (int)json_integer_value(v);
    return 0;
}

int checkpoint_read_config(const char *dir, Config *c, Err *e) {
    char path[CONFIG_STR + 32];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *o = load_json(path, e);
    if (!o) return -1;
    int rc = json_int_key(o, path, "n_layer", &c->n_layer, 1, e);
    if (rc == 0) rc = json_int_key(o, path, "n_head", &c->n_head, 1, e);
    if (rc == 0) rc = json_int_key(o, path, "n_embd", &c->n_embd, 1, e);
    if (rc == 0) rc = json_int_key(o, path, "vocab_size", &c->vocab_size, 1, e);
    if (rc == 0) rc = json_int_key(o, path, "n_positions", &c->block_size, 1, e);
    if (rc == 0) rc = json_int_key(o, path, "degree", &c->degree, 0, e);
    if (rc == 0) rc = json_int_key(o, path, "sketch_size", &c->sketch_size, 0, e);
    if (rc == 0) rc = json_int_key(o, path, "attn_block", &c->attn_block, 0, e);
    if (rc == 0) rc = json_int_key(o, path, "local_exact", &c->local_exact, 0, e);
    const char *act = json_string_value(json_object_get(o, "activation_function"));
    json_t *eps = json_object_get(o, "layer_norm_epsilon"), *inner = json_object_get(o, "n_inner");
    if (rc == 0 && act && strcmp(act, "gelu_new") != 0 && strcmp(act, "gelu_pytorch_tanh") != 0)
        rc = err_set(e, "%s: activation_function \"%s\" is not GPT-2's tanh GELU (gelu_new)", path, act);
    if (rc == 0 && eps && (!json_is_number(eps) || json_number_value(eps) != 1e-5))
        rc = err_set(e, "%s: layer_norm_epsilon must be 1e-05", path);
    if (rc == 0 && inner && !json_is_null(inner) && json_integer_value(inner) != 4 * c->n_embd)
        rc = err_set(e, "%s: n_inner must be null or 4 * n_embd", path);
    if (rc == 0 && json_is_true(json_object_get(o, "scale_attn_by_inverse_layer_idx")))
        rc = err_set(e, "%s: scale_attn_by_inverse_layer_idx is not supported", path);
    const char *att = json_string_value(json_object_get(o, "attention"));
    const char *sk = json_string_value(json_object_get(o, "sketch"));
    Err inner_e;
    /* no attention key: a Hugging Face GPT-2, whose attention is softmax */
    if (rc == 0 && config_set_arg(c, (snprintf(path, sizeof path, "attention=%s", att ? att : "softmax"), path), &inner_e))
        rc = err_set(e, "%s/config.json: %s", dir, inner_e.msg);
    if (rc == 0 && sk && config_set_arg(c, (snprintf(path, sizeof path, "sketch=%s", sk), path), &inner_e))
        rc = err_set(e, "%s/config.json: %s", dir, inner_e.msg);
    if (rc == 0 && (c->n_head == 0 || c->n_embd % c->n_head))
        rc = err_set(e, "%s/config.json: n_embd must be divisible by n_head", dir);
    json_decref(o);
    return rc;
}

void checkpoint_state_checksum(json_t *state, char hex[16]) {
    json_object_del(state, "checksum");
    char *compact = json_dumps(state, JSON_COMPACT | JSON_PRESERVE_ORDER);
    snprintf(hex, 16, "%08x", compact ? (uint32_t)crc32_z(0, (const Bytef *)compact, strlen(compact)) : 0u);
    free(compact);
}

int checkpoint_read_state(const char *dir, TrainState *st, Config *saved, Err *e) {
    char path[CONFIG_STR + 80];
    snprintf(path, sizeof path, "%s/state.json", dir);
    json_t *o = load_json(path, e);
    if (!o) return -1;
    int rc = 0;
    const char *sum = json_string_value(json_object_get(o, "checksum"));
    char recorded[16] = "";
    snprintf(recorded, sizeof recorded, "%s", sum ? sum : "");
    char got[16];
    checkpoint_state_checksum(o, got);
    if (strcmp(recorded, got) != 0)
        rc = err_set(e, "%s: checksum %s does not match its content (%s): the file is damaged", path,
                     recorded[0] ? recorded : "missing", got);
    json_t *files = json_object_get(o, "files"), *cfg = json_object_get(o, "config");
    json_t *ld = json_object_get(o, "loader"), *rng = json_object_get(o, "rng");
    json_t *step = json_object_get(o, "step");
    if (rc == 0 && (!json_is_object(files) || !json_is_object(cfg) || !json_is_object(ld) || !json_is_array(rng) ||
                    json_array_size(rng) != 4 || !json_is_integer(step) ||
                    !json_is_integer(json_object_get(ld, "epoch")) || !json_is_integer(json_object_get(ld, "shard")) ||
                    !json_is_integer(json_object_get(ld, "sample"))))
        rc = err_set(e, "%s: missing or malformed step, loader, rng, files or config", path);
    const char *fname;
    json_t *fv;
    if (rc == 0) json_object_foreach(files, fname, fv) {
        char fpath[CONFIG_STR + 160];
        snprintf(fpath, sizeof fpath, "%s/%s", dir, fname);
        const char *want = json_string_value(json_object_get(fv, "crc32"));
        json_t *wb = json_object_get(fv, "bytes");
        uint64_t bytes = 0;
        uint32_t crc = 0;
        if (!want || !json_is_integer(wb) || strchr(fname, '/')) {
            rc = err_set(e, "%s: malformed entry for %s", path, fname);
            break;
        }
        if ((rc = file_crc(fpath, &bytes, &crc, e)) != 0) break;
        char hex[16];
        snprintf(hex, sizeof hex, "%08x", crc);
        if (bytes != (uint64_t)json_integer_value(wb)) {
            rc = err_set(e, "%s: %llu bytes, state.json says %lld (truncated or replaced)", fpath,
                         (unsigned long long)bytes, (long long)json_integer_value(wb));
            break;
        }
        if (strcmp(hex, want) != 0) {
            rc = err_set(e, "%s: CRC-32 %s does not match state.json's %s: the file is corrupt", fpath, hex, want);
            break;
        }
    }
    json_t *best = json_object_get(o, "best");
    if (rc == 0 && best && (!json_is_integer(json_object_get(best, "step")) ||
                            !json_is_number(json_object_get(best, "val_loss"))))
        rc = err_set(e, "%s: malformed \"best\": expected {\"step\": integer, \"val_loss\": number}", path);
    if (rc == 0) {
        st->step = json_integer_value(step);
        st->best_step = best ? json_integer_value(json_object_get(best, "step")) : -1;
        st->best_val = best ? json_number_value(json_object_get(best, "val_loss")) : INFINITY;
        st->loader.epoch = json_integer_value(json_object_get(ld, "epoch"));
        st->loader.shard = json_integer_value(json_object_get(ld, "shard"));
        st->loader.sample = json_integer_value(json_object_get(ld, "sample"));
        for (int i = 0; i < 4; i++) {
            const char *h = json_string_value(json_array_get(rng, (size_t)i));
            st->rng.s[i] = h ? strtoull(h, NULL, 16) : 0;
        }
        config_defaults(saved);
        const char *key;
        json_t *v;
        json_object_foreach(cfg, key, v) {
            char arg[CONFIG_STR + 64];
            Err inner;
            snprintf(arg, sizeof arg, "%s=%s", key, json_is_string(v) ? json_string_value(v) : "");
            if (config_set_arg(saved, arg, &inner)) {
                rc = err_set(e, "%s: config: %s", path, inner.msg);
                break;
            }
        }
    }
    json_decref(o);
    return rc;
}

int checkpoint_load_model(const char *dir, GPT2 *m, Err *e) {
    char path[CONFIG_STR + 32];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    StFile f;
    if (st_open(&f, path, e)) return -1;
    int rc = weights_read(m, &f, "", m->params, e);
    st_close(&f);
    return rc;
}

/* Layer 0's attention tensor `name` (with or without "transformer.") as
 * its short name, or NULL for another tensor. */
static const char *short_name(const char *name) {
    const char *at = strncmp(name, "transformer.", 12) == 0 ? name + 12 : name;
    return strncmp(at, "h.0.attn.", 9) == 0 ? at + 9 : NULL;
}

/* Appends ", name" (or ", name = alt") to out, of capacity n, for layer 0. */
static void note_name(char *out, size_t n, const char *name, const char *alt) {
    const char *s = short_name(name);
    size_t len = strlen(out);
    if (s && len + strlen(s) + (alt ? strlen(alt) : 0) + 6 < n)
        snprintf(out + len, n - len, "%s%s%s%s", len ? ", " : "", s, alt ? " = " : "", alt ? short_name(alt) : "");
}

int checkpoint_init_model(const char *dir, GPT2 *m, uint64_t seed, char *note, size_t n, Err *e) {
    char path[CONFIG_STR + 32];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    StFile f;
    if (st_open(&f, path, e)) return -1;
    int nt = gpt2_n_tensors(m);
    char *kept = calloc((size_t)nt, 1);
    int rc = kept ? read_tensors(m, &f, "", m->params, kept, e) : err_set(e, "%s: out of memory", path);
    if (rc == 0 && memchr(kept, 1, (size_t)nt)) { /* some start from the seed: initialise all, read again */
        gpt2_init(m, seed);
        rc = read_tensors(m, &f, "", m->params, kept, e);
    }
    char fresh[1024] = "", stand[1024] = "", unused[1024] = "";
    for (int i = 0; rc == 0 && i < nt; i++) {
        TensorInfo ti;
        gpt2_tensor_info(m, i, &ti);
        if (kept[i]) note_name(kept[i] == 1 ? fresh : stand, sizeof fresh, ti.name, kept[i] == 2 ? ti.alt : NULL);
    }
    for (int j = 0; rc == 0 && j < f.n; j++) { /* the source's attention tensors this model has no place for */
        const char *name = f.t[j].name;
        int found = 0;
        for (int i = 0; !found && i < nt; i++) { /* one of ours, or the stand-in read for one */
            TensorInfo ti;
            gpt2_tensor_info(m, i, &ti);
            found = same_name(ti.name, name) || (kept[i] == 2 && same_name(ti.alt, name));
        }
        if (!found && !strstr(name, ".attn.bias") && !strstr(name, ".attn.masked_bias")) /* HF's mask buffers */
            note_name(unused, sizeof unused, name, NULL);
    }
    note[0] = 0;
    if (rc == 0 && fresh[0])
        snprintf(note, n, "%s lacks (or holds in another shape) the attention tensors %s (every layer): they start "
                 "from the seed's initialisation", dir, fresh);
    if (rc == 0 && stand[0]) {
        size_t len = strlen(note);
        snprintf(note + len, n - len, "%sfrom %s's other kind: %s (every layer)", len ? "; " : "", dir, stand);
    }
    if (rc == 0 && unused[0]) {
        size_t len = strlen(note);
        snprintf(note + len, n - len, "%s%s's attention tensors %s (every layer) have no place in a %s model: not used",
                 len ? "; " : "", dir, unused, m->cfg.kind->name);
    }
    free(kept);
    st_close(&f);
    return rc;
}

int checkpoint_load_optimizer(const char *dir, const GPT2 *m, float *adam_m, float *adam_v, Err *e) {
    char path[CONFIG_STR + 32];
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    StFile f;
    if (st_open(&f, path, e)) return -1;
    int rc = weights_read(m, &f, "exp_avg.", adam_m, e);
    if (rc == 0) rc = weights_read(m, &f, "exp_avg_sq.", adam_v, e);
    st_close(&f);
    return rc;
}
