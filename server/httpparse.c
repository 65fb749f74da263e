/* httpparse.c - header parsers moved out of transport.c and blobs.c unchanged; see
 * httpparse.h. */
#include "httpparse.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

bool kz_parse_upload_metadata_blob(char *md, char out[STORE_BLOB_ID_LEN + 1])
{
    for (char *save, *kv = strtok_r(md, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        while (*kv == ' ')
            kv++;
        if (strncmp(kv, "blob ", 5) != 0)
            continue;
        size_t n = 0;
        if (sodium_base642bin((unsigned char *)out, STORE_BLOB_ID_LEN, kv + 5, strlen(kv + 5), NULL,
                              &n, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
            n != STORE_BLOB_ID_LEN)
            return false;
        out[n] = '\0';
        return srv_blob_id_valid(out);
    }
    return false;
}

bool kz_parse_range(const char *text, int64_t size, int64_t *from, int64_t *to)
{
    long long a = -1, b = -1;
    if (strncmp(text, "bytes=", 6) != 0 || strchr(text, ','))
        return false;
    const char *p = text + 6;
    char *end;
    if (*p == '-') {
        b = strtoll(p + 1, &end, 10);
        if (*end || b <= 0)
            return false;
        *from = b >= size ? 0 : size - b;
        *to = size;
        return size > 0;
    }
    a = strtoll(p, &end, 10);
    if (end == p || *end != '-' || a < 0 || a >= size)
        return false;
    if (end[1]) {
        b = strtoll(end + 1, &end, 10);
        if (*end || b < a)
            return false;
    }
    *from = a;
    *to = b < 0 || b >= size ? size : b + 1;
    return true;
}

bool kz_parse_upload_checksum(const char *text, uint8_t out[32])
{
    if (!text || strncmp(text, "blake2b ", 8) != 0)
        return false;
    size_t n = 0;
    const char *b64 = text + 8;
    return sodium_base642bin(out, 32, b64, strlen(b64), NULL, &n, NULL,
                             sodium_base64_VARIANT_ORIGINAL) == 0 &&
           n == 32;
}
