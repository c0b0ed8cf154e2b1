/* Training configuration: every key of DESIGN.md, with defaults, parsed from
 * an INI-style file (libinih: "key = value", '#' or ';' comments, no
 * sections) and then from "key=value" command-line overrides.
 *
 * Errors name the file and line (or "command line") and the key, and say
 * what was expected: unknown keys, values of the wrong type or out of range,
 * and invalid combinations (odd degree, n_embd not divisible by n_head,
 * seq_len > block_size, ...). */
#ifndef MODEL_CONFIG_H
#define MODEL_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "../common/err.h"

#define CONFIG_STR 1024

typedef struct {
    /* model */
    int n_layer, n_head, n_embd, block_size, vocab_size;
    /* attention */
    char attention[32];
    int degree;
    char sketch[32];
    int sketch_size, attn_block, local_exact;
    /* optimiser */
    double lr, min_lr;
    int warmup_steps;
    char schedule[32];
    double beta1, beta2, eps, weight_decay, grad_clip, dropout;
    /* run */
    int batch_size, seq_len, grad_accum, max_steps, eval_interval, eval_steps;
    int checkpoint_interval, keep_checkpoints, keep_best, patience;
    char out_dir[CONFIG_STR];
    int64_t seed;
    int threads, shuffle;
    char train_data[CONFIG_STR], val_data[CONFIG_STR], init_from[CONFIG_STR], resume[CONFIG_STR];
    char precision[32];
    int recompute, memory_check;
    /* reporting and debugging */
    int sample_tokens;
    double peak_gflops;
    char dump_step[CONFIG_STR];
    /* not a key: bit i is set when key i came from the command line */
    uint64_t from_cli;
} Config;

void config_defaults(Config *c);
/* Reads a config file on top of c. */
int config_load(Config *c, const char *path, Err *e);
/* Applies one "key=value" override. */
int config_set_arg(Config *c, const char *arg, Err *e);
/* The same for the command line's, marking the key in from_cli. */
int config_set_cli(Config *c, const char *arg, Err *e);
/* Checks the combination of keys; run after everything is set. With
 * need_train, train_data is required. */
int config_validate(const Config *c, int need_train, Err *e);
/* Prints every key with its default and a description. */
void config_help(FILE *f);
/* Writes the resolved config as "key = value" lines. */
void config_write(const Config *c, FILE *f);

/* The keys, for saving a config and comparing two. */
int config_n_keys(void);
const char *config_key(int i);
void config_format(const Config *c, int i, char *out, size_t n);
/* Sets key i from text (as a file line would). */
int config_set(Config *c, int i, const char *value, Err *e);

#endif
