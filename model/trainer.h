/* The training run: builds the model and loaders from a Config, then steps
 * (gradient accumulation, clipping, AdamW, the schedule), evaluates, logs a
 * line per step and out_dir/metrics.csv, and optionally dumps step 1 and
 * prints a sample at the end. */
#ifndef MODEL_TRAINER_H
#define MODEL_TRAINER_H

#include "../tokenizer/bpe.h"
#include "config.h"

/* bpe may be NULL (then no sample is printed). */
int trainer_run(const Config *c, const Bpe *bpe, Err *e);

#endif
