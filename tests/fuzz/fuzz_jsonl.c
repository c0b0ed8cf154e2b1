/* JSON lines, plain or gzip (by the magic bytes), through the reader and the
 * text extraction that ./train prepare uses; and a checked gzip read. */
#include "../../data/sources.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    int gz = n >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    const char *path = fuzz_file(gz ? "x.jsonl.gz" : "x.jsonl", data, n);
    StrList files = {0};
    strlist_push(&files, path);
    SourceReader *r = source_reader_open(SOURCE_JSONL, &files);
    Record rec;
    Err e;
    for (int i = 0; i < 1000 && source_reader_next(r, &rec, &e) == 1; i++) {
        char *text;
        size_t len;
        if (json_record_text(&rec, &text, &len, &e) == 0) free(text);
    }
    source_reader_close(r);
    if (gz) source_check_gzip(path, &e);
    strlist_free(&files);
    return 0;
}
