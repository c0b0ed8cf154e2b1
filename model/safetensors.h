/* The safetensors format: an 8-byte little-endian header length, a JSON
 * header {"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * "__metadata__": {string: string}}, then the raw little-endian data.
 *
 * The writer streams: st_writer_open writes the header for a list of
 * tensors, then the caller writes each tensor's bytes in that order. The
 * reader checks the whole header against the file before anything is read:
 * dtypes, shapes, offsets inside the file, sizes that match the shapes. */
#ifndef MODEL_SAFETENSORS_H
#define MODEL_SAFETENSORS_H

#include <stdint.h>
#include <stdio.h>

#include "../common/err.h"

#define ST_MAX_DIMS 8

typedef struct {
    char name[128];
    char dtype[8];          /* "F32", "I32", ... */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t begin, end;    /* byte offsets in the data section */
} StTensor;

/* Writes go through an aligned staging buffer to a file opened with O_DIRECT
 * where the file system allows it: the data skips the page cache, which on
 * this kind of machine writes about 1.6x faster than buffered writes plus
 * fsync (bench/RESULTS.md); the tail that is not a whole block is written
 * without O_DIRECT at close. */
typedef struct {
    int fd, direct;
    unsigned char *buf;     /* ST_STAGE bytes, 4096-aligned */
    size_t fill;
    char path[4096];
    uint64_t written, expected;
    uint64_t bytes;         /* file bytes so far, header included */
    uint32_t crc;           /* zlib CRC-32 of those bytes */
} StWriter;

/* metadata: NULL or a JSON object of string values (borrowed, as text). */
int st_writer_open(StWriter *w, const char *path, StTensor *tensors, int n, const char *metadata, Err *e);
int st_writer_data(StWriter *w, const void *data, size_t nbytes, Err *e);
/* Checks every byte was written, flushes and fsyncs, closes. */
int st_writer_close(StWriter *w, Err *e);
void st_writer_abort(StWriter *w);

typedef struct {
    char path[4096];
    int fd;
    StTensor *t;
    int n;
    uint64_t data_start;
    char *metadata;         /* the __metadata__ object as JSON text, or NULL */
} StFile;

int st_open(StFile *f, const char *path, Err *e);
const StTensor *st_find(const StFile *f, const char *name);
/* Reads a tensor, checking its dtype and element count. */
int st_read(const StFile *f, const StTensor *t, const char *dtype, size_t count, void *dst, Err *e);
void st_close(StFile *f);

size_t st_dtype_size(const char *dtype);   /* 0 if unknown */
int64_t st_numel(const StTensor *t);

#endif
