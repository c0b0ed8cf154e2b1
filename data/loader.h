/* Batches of B*T+1 tokens from token shards (a glob such as
 * "data/moby/train_*.bin", or several separated by commas), viewed as B rows
 * of T inputs and the same rows shifted by one as targets.
 *
 * Each shard is cut into windows of B*T tokens (the last one overlapping the
 * next by a token for the final target). One epoch visits every window of
 * every shard once; with shuffle on, the shard order and the window order
 * inside each shard are permutations drawn from (seed, epoch), so the whole
 * position is three integers that a checkpoint saves and restores exactly. */
#ifndef DATA_LOADER_H
#define DATA_LOADER_H

#include <stdint.h>

#include "../common/err.h"

typedef struct {
    int64_t epoch, shard, sample;  /* shard and sample count visits, not file indices */
} LoaderPos;

typedef struct {
    const char *what;              /* names the data in errors: "train_data" */
    StrList files;
    int64_t *ntok;                 /* tokens per shard */
    int B, T, shuffle, vocab_size;
    uint64_t seed;
    LoaderPos pos;
    int64_t *shard_order;          /* [files.n] for the current epoch */
    int64_t *sample_order;         /* [max windows] for the current shard */
    int64_t n_samples;             /* windows in the current shard */
    int64_t total_samples;         /* windows in all shards */
    int fd, fd_shard;              /* the open shard file and its index */
    uint16_t *buf;                 /* [B*T+1] */
} Loader;

/* Opens every shard matching pattern and checks its header. `what` names the
 * pattern in errors (e.g. "train_data"; a string that outlives the loader). */
int loader_open(Loader *l, const char *what, const char *pattern, int B, int T, int shuffle,
                uint64_t seed, int vocab_size, Err *e);
/* Fills inputs and targets, each [B*T]. Rejects out-of-vocabulary tokens. */
int loader_next(Loader *l, int32_t *inputs, int32_t *targets, Err *e);
LoaderPos loader_tell(const Loader *l);
int loader_seek(Loader *l, LoaderPos pos, Err *e);
void loader_reset(Loader *l);
void loader_close(Loader *l);
/* An error if a shard file (the same file, whatever its path) is in both:
 * training on validation data must not pass unnoticed. */
int loader_disjoint(const Loader *a, const Loader *b, Err *e);

#endif
