/* ./train prepare: text sources -> GPT-2 tokens -> llm.c token shards.
 *
 * Documents are read in order (see sources.h), each is tokenized with
 * "<|endoftext|>" (50256) in front, and its tokens go to the train or the
 * validation split. Tokenizing runs in parallel over documents (and over
 * pieces of long books, cut where the tokenizer would cut anyway); one thread
 * reads the next batch while the others tokenize. Output is written in
 * document order, so the shards are byte-identical for any thread count.
 *
 * Validation split: document i (0-based) goes to val when
 * floor((i+1)*F) > floor(i*F), i.e. every (1/F)-th whole document. When that
 * selects none (fewer than 1/F documents, e.g. a single book), val is the last
 * F of the last document's tokens instead. F = 0 writes no val shard.
 *
 * Or the split is given (val_inputs: PG19's validation/, C4's
 * c4-validation.*): every document of inputs goes to train and every one of
 * val_inputs to val, and val_fraction must be 0; inputs may then be none
 * (a val split alone). A split the run writes nothing to must have no
 * shards in out_dir already: the commit would remove them. */
#ifndef DATA_PREPARE_H
#define DATA_PREPARE_H

#include <signal.h>
#include <stdint.h>

#include "../common/err.h"
#include "../tokenizer/bpe.h"
#include "sources.h"

typedef struct {
    SourceKind kind;
    char *const *inputs;
    int n_inputs;
    char *const *val_inputs;  /* documents for val, whole; none: val_fraction decides */
    int n_val_inputs;
    const char *out_dir;
    double val_fraction;      /* in [0, 1) */
    int64_t shard_tokens;     /* tokens per shard, at most INT32_MAX */
    int threads;              /* 0: OpenMP's default (OMP_NUM_THREADS) */
    size_t chunk_bytes;       /* split books into pieces of about this size; 0: default */
    int progress;             /* print progress lines on stderr */
    const Bpe *bpe;
    const volatile sig_atomic_t *stop; /* or NULL: set (by a signal), the run stops after its batch
                                        * and removes what it wrote: an error */
} PrepareOpts;

typedef struct {
    int64_t docs, val_docs, train_tokens, val_tokens;
    int train_shards, val_shards;
    uint64_t bytes;           /* uncompressed input bytes */
    double seconds;
} PrepareStats;

int prepare_run(const PrepareOpts *o, PrepareStats *st, Err *e);

#endif
