/* Token shards in llm.c's format: a header of 256 int32 (magic 20240520,
 * version 1, token count, then zeros), followed by the tokens as uint16.
 *
 * The writer fills DIR/<prefix>_000000.bin, _000001.bin ... of at most
 * shard_tokens tokens each. Every shard is written under a ".tmp" name and
 * only renamed to its real name by shard_writer_commit, after all shards of
 * the run are complete and fsynced, so a failed or killed run never leaves a
 * shard that looks valid; shard_writer_abort removes the temporaries. */
#ifndef DATA_SHARD_H
#define DATA_SHARD_H

#include <stdint.h>
#include <stdio.h>

#include "../common/err.h"

#define SHARD_MAGIC 20240520
#define SHARD_VERSION 1
#define SHARD_HEADER_INTS 256
#define SHARD_HEADER_BYTES (SHARD_HEADER_INTS * 4)

typedef struct {
    char dir[2048], prefix[32];
    int64_t shard_tokens;   /* tokens per shard */
    int index;              /* shards started so far */
    FILE *f;                /* the shard being written, NULL between shards */
    int64_t in_shard;       /* tokens in the current shard */
    int64_t total;          /* tokens written in all shards */
    uint16_t *buf;          /* conversion buffer */
} ShardWriter;

void shard_writer_init(ShardWriter *w, const char *dir, const char *prefix, int64_t shard_tokens);
/* Appends tokens (each must be < 65536), starting new shards as needed. */
int shard_writer_append(ShardWriter *w, const int32_t *ids, size_t n, Err *e);
/* Finishes the last shard (header, fsync). */
int shard_writer_finish(ShardWriter *w, Err *e);
/* Renames the temporaries to their real names, removes this prefix's older
 * shards beyond the new count, and fsyncs the directory. */
int shard_writer_commit(ShardWriter *w, Err *e);
/* Closes and removes the temporaries. Safe to call in any state. */
void shard_writer_abort(ShardWriter *w);

void shard_path(char *out, size_t size, const char *dir, const char *prefix, int index);
/* Whether dir holds any <prefix>_NNNNNN.bin. */
int shard_dir_has(const char *dir, const char *prefix);

/* Reads and checks a shard's header against its file size; *ntok gets the
 * token count. Errors name the file and what is wrong. */
int shard_open(const char *path, int64_t *ntok, Err *e);

#endif
