/* fuzz_upload_headers.c - the header parsers of the upload and blob endpoints
 * (server/httpparse.c): Range, Upload-Metadata and Upload-Checksum.
 *
 * Input: a mode byte, then the header's value.
 *   'r'  a decimal blob size, a newline, then a Range value
 *   'm'  an Upload-Metadata value
 *   'c'  an Upload-Checksum value
 *   anything else: the whole input goes to all three (with a size of 1000 for Range).
 * Checks besides memory errors: a range is within the blob and not empty; a blob id is 64
 * lowercase hex digits. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *msg, const char *text)
{
    fprintf(stderr, "fuzz_upload_headers: %s: '%s'\n", msg, text);
    abort();
}

static void range(const char *text, int64_t size)
{
    int64_t from = -1, to = -1;
    if (kz_parse_range(text, size, &from, &to) && !(0 <= from && from < to && to <= size))
        fail("a range outside the blob was accepted", text);
}

static void metadata(const char *text)
{
    char *md = strdup(text), out[STORE_BLOB_ID_LEN + 1];
    if (kz_parse_upload_metadata_blob(md, out)) {
        if (strlen(out) != STORE_BLOB_ID_LEN || strspn(out, "0123456789abcdef") != 64)
            fail("a blob id that is not 64 hex digits was accepted", text);
    }
    free(md);
}

static void checksum(const char *text)
{
    uint8_t out[32];
    kz_parse_upload_checksum(text, out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* Header values reach the parsers as C strings (lws copies them NUL-terminated). */
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    switch (data[0]) {
    case 'r': {
        char *nl = strchr(text, '\n');
        if (!nl)
            break;
        *nl = '\0';
        long long blob_size = strtoll(text, NULL, 10);
        if (blob_size >= 0) /* a file's size */
            range(nl + 1, blob_size);
        break;
    }
    case 'm':
        metadata(text);
        break;
    case 'c':
        checksum(text);
        break;
    default: {
        char *all = malloc(size + 1);
        memcpy(all, data, size);
        all[size] = '\0';
        range(all, 1000);
        metadata(all);
        checksum(all);
        free(all);
        break;
    }
    }
    free(text);
    return 0;
}
