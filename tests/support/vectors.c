/* vectors.c - see vectors.h. */
#include "vectors.h"

#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cJSON *vec_load(const char *subdir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%s", VECTORS_DIR, subdir, name);
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert(n > 0, "%s is empty", path);
    rewind(f);
    char *buf = malloc((size_t)n);
    cr_assert(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    cJSON *j = cJSON_ParseWithLength(buf, (size_t)n);
    free(buf);
    cr_assert(j, "%s is not JSON", path);
    return j;
}

const cJSON *vec_item(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(v, "no %s", key);
    return v;
}

const char *vec_str_or_null(const cJSON *o, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

const char *vec_str(const cJSON *o, const char *key)
{
    const char *s = cJSON_GetStringValue(vec_item(o, key));
    cr_assert(s, "%s is not a string", key);
    return s;
}

int64_t vec_num(const cJSON *o, const char *key)
{
    const cJSON *v = vec_item(o, key);
    cr_assert(cJSON_IsNumber(v), "%s is not a number", key);
    return (int64_t)v->valuedouble;
}

unsigned char *vec_unhex(const char *hex, size_t *len)
{
    size_t cap = strlen(hex) / 2 + 1;
    unsigned char *b = malloc(cap);
    cr_assert(b);
    cr_assert_eq(sodium_hex2bin(b, cap, hex, strlen(hex), NULL, len, NULL), 0, "bad hex");
    return b;
}
