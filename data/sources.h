/* Readers for the three corpora: PG19 books, Wikipedia-style JSON lines, C4.
 *
 *   pg19   a directory of <id>.txt books (PG19's release layout) or .txt files;
 *          each file is one document.
 *   jsonl  JSON lines with a "text" field (wikiextractor --json, HF to_json),
 *          plain or gzip; a directory is read recursively (wikiextractor writes
 *          AA/wiki_00 ...). Blank lines are skipped.
 *   c4     C4's c4-*.json.gz files (gzip JSON lines with text, timestamp, url),
 *          or a directory of them.
 * Files are read in the order given, and within a directory in sorted order,
 * so the document sequence (and everything derived from it) is deterministic.
 *
 * The reader only splits input into raw records (a whole file, or a line);
 * json_record_text() extracts the text of a line. Keeping the JSON parsing out
 * of the reader lets the caller run it in parallel. */
#ifndef DATA_SOURCES_H
#define DATA_SOURCES_H

#include <stddef.h>
#include <stdint.h>

#include "../common/err.h"

typedef enum { SOURCE_PG19, SOURCE_JSONL, SOURCE_C4 } SourceKind;

int source_kind_parse(const char *name, SourceKind *kind);

/* Expands INPUT arguments into the files to read, in order. */
int source_list_files(SourceKind kind, char *const *inputs, int n, StrList *files, Err *e);

typedef struct {
    const char *data;   /* valid until the next call to source_reader_next */
    size_t len;
    const char *file;   /* where it came from */
    long line;          /* 1-based line for JSON lines, 0 for whole files */
    int file_index;     /* file's place in the list being read */
} Record;

typedef struct SourceReader SourceReader;

SourceReader *source_reader_open(SourceKind kind, const StrList *files);
/* 1: a record; 0: end of input; -1: error (unreadable, truncated or corrupt
 * gzip, a file without any document). */
int source_reader_next(SourceReader *r, Record *rec, Err *e);
/* Uncompressed bytes read so far. */
uint64_t source_reader_bytes(const SourceReader *r);
void source_reader_close(SourceReader *r);

/* Reads a gzip file through to its end: -1 with a message if it is corrupt
 * or truncated. A record that fails to parse may be the first sign of
 * corruption that gzip's checksum only reveals at the end. */
int source_check_gzip(const char *path, Err *e);

/* The "text" string of a JSON-lines record, copied into *text (malloc'd,
 * NUL-terminated, may contain NUL bytes). Errors name file and line. */
int json_record_text(const Record *rec, char **text, size_t *len, Err *e);

#endif
