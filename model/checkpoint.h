/* Checkpoints: a directory out_dir/step_%08d/ with
 *   model.safetensors      parameters under Hugging Face GPT-2 names and
 *                          layouts (Conv1D weights [in, out]), metadata format=pt
 *   optimizer.safetensors  AdamW moments, exp_avg.<name> and exp_avg_sq.<name>
 *   config.json            Hugging Face GPT2Config keys plus the attention keys
 *   state.json             step, RNG state, loader position, the resolved
 *                          config, the size and CRC-32 of each file above,
 *                          and a CRC-32 of itself (of its compact form)
 * written into a temporary directory, fsynced, renamed into place; then
 * out_dir/latest (a one-line file naming the directory) is replaced by
 * rename. A crash at any moment leaves `latest` naming a complete checkpoint.
 * A softmax checkpoint directory loads in transformers' from_pretrained. */
#ifndef MODEL_CHECKPOINT_H
#define MODEL_CHECKPOINT_H

#include "../data/loader.h"
#include "config.h"
#include "gpt2.h"
#include "safetensors.h"

/* Fills t[0 .. gpt2_n_tensors) with prefix + name, dtype F32, HF shape. */
void weights_describe(const GPT2 *m, const char *prefix, StTensor *t);
/* Writes the tensors of base (a buffer in the parameter layout: params,
 * grads or a moment) in weights_describe's order. */
int weights_write(const GPT2 *m, StWriter *w, const float *base, Err *e);
/* Reads every tensor prefix + name from f into base, checking shapes. Names
 * without the "transformer." prefix (a bare GPT2Model) are accepted too. */
int weights_read(const GPT2 *m, const StFile *f, const char *prefix, float *base, Err *e);

typedef struct {
    int64_t step;          /* optimiser steps done */
    LoaderPos loader;      /* the training loader's next position */
    Rng rng;               /* the run's RNG */
    int64_t best_step;     /* keep_best: the step of the lowest validation loss so far; -1: none */
    double best_val;       /* that loss */
} TrainState;

/* Writes out_dir/step_<step>/ atomically, points `latest` at it (and `best`
 * when st->best_step is this step), and keeps the newest
 * c->keep_checkpoints and st->best_step's. */
int checkpoint_save(const char *out_dir, const GPT2 *m, const float *adam_m, const float *adam_v,
                    const Config *c, const TrainState *st, Err *e);

/* CKPT -> a checkpoint directory: a directory holding model.safetensors, an
 * out_dir whose `latest` names one, or such a file itself (out_dir/best). */
int checkpoint_resolve(const char *ckpt, char *dir, size_t n, Err *e);
/* Whether out_dir has a `latest` checkpoint. */
int checkpoint_exists(const char *out_dir);
/* Points out_dir/<link> (latest, best) at step_<step>, atomically. */
int checkpoint_point(const char *out_dir, const char *link, int64_t step, Err *e);

/* Model shape and attention keys from dir/config.json (ours or Hugging
 * Face's) into c. */
int checkpoint_read_config(const char *dir, Config *c, Err *e);
/* dir/state.json: checks each file's size and CRC-32, then fills st and
 * `saved` (the config of the run that wrote it, on top of defaults). */
int checkpoint_read_state(const char *dir, TrainState *st, Config *saved, Err *e);

/* state.json's self-checksum, 8 hex digits: the CRC-32 of the object's
 * compact form without its "checksum" key (removed from state if there). */
struct json_t;
void checkpoint_state_checksum(struct json_t *state, char hex[16]);
int checkpoint_load_model(const char *dir, GPT2 *m, Err *e);
/* For init_from, eval and sample, where the model's attention kind may
 * differ from the one dir was trained with: loads every tensor as
 * checkpoint_load_model does, except that the kind's own tensors dir lacks
 * (or holds in another shape: another sketch_size) are read from their
 * stand-ins (AttnTensor.alt) or keep gpt2_init(seed)'s values, and dir's
 * attention tensors the kind has no place for are skipped. note (capacity
 * n) gets a sentence naming each, or "". */
int checkpoint_init_model(const char *dir, GPT2 *m, uint64_t seed, char *note, size_t n, Err *e);
int checkpoint_load_optimizer(const char *dir, const GPT2 *m, float *adam_m, float *adam_v, Err *e);

#endif
