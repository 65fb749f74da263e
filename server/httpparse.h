/* httpparse.h - the pure header parsers of the blob and upload endpoints (Range,
 * Upload-Metadata, Upload-Checksum). No libwebsockets and no state, so that unit tests and the
 * fuzz harness (tests/fuzz/fuzz_upload_headers.c) can call them directly; transport.c and
 * blobs.c use them on the header values they copied out of the request. */
#ifndef KIZUNA_HTTPPARSE_H
#define KIZUNA_HTTPPARSE_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

/* "bytes=a-b", "bytes=a-", "bytes=-n": one range within size, as [*from, *to); false if the
 * header is malformed or the range unsatisfiable. */
bool kz_parse_range(const char *text, int64_t size, int64_t *from, int64_t *to);
/* tus Upload-Metadata, "key base64,key base64": finds `blob` and decodes it into out, which
 * then holds 64 lowercase hex digits. md is split in place (strtok_r). */
bool kz_parse_upload_metadata_blob(char *md, char out[STORE_BLOB_ID_LEN + 1]);
/* "blake2b <base64 of 32 bytes>" (tus Checksum extension, with BLAKE2b-256). */
bool kz_parse_upload_checksum(const char *text, uint8_t out[32]);

#endif
