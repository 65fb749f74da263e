/* json_write.h - a small JSON writer for the objects the server prints on every message: the
 * event payload (event_format.c), the members' view of a new event (event_view.c).
 *
 * cJSON_PrintUnformatted prints every number through sprintf("%1.15g") and reads it back with
 * sscanf, and walks a tree that first had to be built node by node; on the send path its three
 * passes were 17% of the instructions per message (docs/performance.md). This writer appends
 * to one growing buffer: integers in plain decimal without printf, strings escaped exactly as
 * cJSON escapes them (so a payload written here is byte for byte the one cJSON wrote,
 * docs/event-format.md), and a cJSON subtree, such as an event's content, printed as
 * cJSON_PrintUnformatted would print it (its whole numbers below 1e15 as the same decimal
 * digits, any other number by cJSON itself).
 *
 * Part of kzevent: libc and cJSON only. Not thread-safe per buffer; reentrant. */
#ifndef KIZUNA_JSON_WRITE_H
#define KIZUNA_JSON_WRITE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The caller owns it (stack or struct); kz_json_take hands the text over, kz_json_free drops
 * it. Zero-initialised is empty. After an allocation failure every call is a no-op and
 * kz_json_take returns NULL. */
struct kz_json {
    char *buf;
    size_t len, cap;
    bool failed;
};

/* An integer's decimal digits, written to out (no NUL); returns how many. */
#define KZ_JSON_INT_CHARS 20
size_t kz_json_digits(int64_t v, char out[KZ_JSON_INT_CHARS]);

/* Reserves room for about `hint` bytes up front (optional). */
void kz_json_init(struct kz_json *j, size_t hint);
/* Bytes, as they are. */
void kz_json_raw(struct kz_json *j, const char *s, size_t n);
/* A comma if a value came before in the current object or array, then "key": */
void kz_json_key(struct kz_json *j, const char *key);
/* Values. kz_json_str(j, NULL) writes "" as cJSON does. */
void kz_json_str(struct kz_json *j, const char *s);
void kz_json_strn(struct kz_json *j, const char *s, size_t n);
void kz_json_int(struct kz_json *j, int64_t v);
void kz_json_bool(struct kz_json *j, bool v);
/* Any cJSON item, as cJSON_PrintUnformatted prints it. Marks the buffer failed for an item cJSON
 * cannot print (an invalid or raw-without-text item). */
void kz_json_item(struct kz_json *j, const cJSON *item);
/* The text, NUL-terminated, its length in *len (may be NULL); the caller frees it with free().
 * NULL if anything failed. The buffer is empty afterwards. */
char *kz_json_take(struct kz_json *j, size_t *len);
void kz_json_free(struct kz_json *j);

#endif
