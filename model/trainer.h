/* The training run: builds the model and loaders from a Config (resuming
 * from out_dir/latest, or starting from init_from weights, or from a random
 * initialisation), then steps (gradient accumulation, clipping, AdamW, the
 * schedule), evaluates, logs a line per step and out_dir/metrics.csv, writes
 * checkpoints every checkpoint_interval steps and at the end, and optionally
 * dumps step 1 and prints a sample.
 *
 * Resuming restores parameters, AdamW moments, the step and the loader
 * position, so the losses continue bit for bit as if the run had never
 * stopped. The model shape and the data order (batch_size, seq_len,
 * grad_accum, train_data, shuffle, seed) must match the checkpoint; other
 * keys may change, and each change is printed. */
#ifndef MODEL_TRAINER_H
#define MODEL_TRAINER_H

#include <signal.h>

#include "../tokenizer/bpe.h"
#include "config.h"
#include "gpt2.h"

/* bpe may be NULL (then no sample is printed). When *stop becomes non-zero
 * (a signal), the run finishes its step, writes a checkpoint and returns 0. */
int trainer_run(const Config *c, const Bpe *bpe, volatile sig_atomic_t *stop, Err *e);

/* The model configuration a Config describes. */
int trainer_model_config(const Config *c, GPT2Config *g, Err *e);

/* Validation loss of the weights in ckpt_dir over val_data: every window,
 * or the first c->eval_steps when limit is set; with buckets > 0, also the
 * loss at each of that many equal spans of positions in the window (how
 * much a model gains from longer context). */
int trainer_eval(const Config *c, const char *ckpt_dir, int limit, int buckets, Err *e);

#endif
