/* vectors.h - reading the fixed test vectors under tests/vectors/ (JSON files made by an
 * independent implementation) for the unit tests that check a format against them. Every
 * function asserts (Criterion) instead of returning an error. */
#ifndef KIZUNA_TEST_VECTORS_H
#define KIZUNA_TEST_VECTORS_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

/* tests/vectors/SUBDIR/NAME parsed; the caller deletes it. */
cJSON *vec_load(const char *subdir, const char *name);
/* o[key], which must exist. */
const cJSON *vec_item(const cJSON *o, const char *key);
/* o[key] as a string, or NULL when missing or not a string (the caller decides whether that
 * is an error). */
const char *vec_str_or_null(const cJSON *o, const char *key);
/* o[key] as a string, which must be one. */
const char *vec_str(const cJSON *o, const char *key);
/* o[key] as an integer, which must be a number. */
int64_t vec_num(const cJSON *o, const char *key);
/* Hex into a buffer the caller frees (never NULL, even for ""); *len its size. */
unsigned char *vec_unhex(const char *hex, size_t *len);

#endif
