/* json_write.c - a small JSON writer with cJSON's escaping and layout; see json_write.h. */
#include "json_write.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool grow(struct kz_json *j, size_t more)
{
    if (j->failed)
        return false;
    if (j->len + more + 1 <= j->cap)
        return true;
    size_t cap = j->cap ? j->cap : 256;
    while (cap < j->len + more + 1)
        cap *= 2;
    char *b = realloc(j->buf, cap);
    if (!b) {
        j->failed = true;
        return false;
    }
    j->buf = b;
    j->cap = cap;
    return true;
}

void kz_json_init(struct kz_json *j, size_t hint)
{
    memset(j, 0, sizeof *j);
    grow(j, hint);
}

void kz_json_raw(struct kz_json *j, const char *s, size_t n)
{
    if (!grow(j, n))
        return;
    memcpy(j->buf + j->len, s, n);
    j->len += n;
}

static void put(struct kz_json *j, char c)
{
    if (grow(j, 1))
        j->buf[j->len++] = c;
}

/* As cJSON's print_string_ptr: " and \ escaped, \b \f \n \r \t by name, the other bytes below
 * 0x20 as \u00xx in lowercase hex, everything else (0x7f and all of UTF-8) as it is. */
void kz_json_strn(struct kz_json *j, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    /* At most six bytes per input byte, plus the quotes. */
    if (!grow(j, n * 6 + 2))
        return;
    char *o = j->buf + j->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '\b':
            *o++ = 'b';
            break;
        case '\f':
            *o++ = 'f';
            break;
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    j->len = (size_t)(o - j->buf);
}

void kz_json_str(struct kz_json *j, const char *s)
{
    kz_json_strn(j, s ? s : "", s ? strlen(s) : 0);
}

void kz_json_key(struct kz_json *j, const char *key)
{
    if (j->len && j->buf[j->len - 1] != '{' && j->buf[j->len - 1] != '[')
        put(j, ',');
    kz_json_str(j, key);
    put(j, ':');
}

size_t kz_json_digits(int64_t v, char out[KZ_JSON_INT_CHARS])
{
    char digits[KZ_JSON_INT_CHARS], *p = digits + sizeof digits;
    /* Through the unsigned value, so that INT64_MIN negates without overflow. */
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    size_t n = (size_t)(digits + sizeof digits - p);
    memcpy(out, p, n);
    return n;
}

void kz_json_int(struct kz_json *j, int64_t v)
{
    char digits[KZ_JSON_INT_CHARS];
    kz_json_raw(j, digits, kz_json_digits(v, digits));
}

void kz_json_bool(struct kz_json *j, bool v)
{
    if (v)
        kz_json_raw(j, "true", 4);
    else
        kz_json_raw(j, "false", 5);
}

void kz_json_item(struct kz_json *j, const cJSON *item)
{
    if (!item) {
        j->failed = true;
        return;
    }
    switch (item->type & 0xff) {
    case cJSON_NULL:
        kz_json_raw(j, "null", 4);
        return;
    case cJSON_False:
        kz_json_raw(j, "false", 5);
        return;
    case cJSON_True:
        kz_json_raw(j, "true", 4);
        return;
    case cJSON_String:
        kz_json_str(j, item->valuestring);
        return;
    case cJSON_Raw:
        if (!item->valuestring) {
            j->failed = true;
            return;
        }
        kz_json_raw(j, item->valuestring, strlen(item->valuestring));
        return;
    case cJSON_Number: {
        /* A whole number below 1e15 in size is its decimal digits in cJSON too ("%1.15g" has
         * room for all of them), except -0: written here without printf, as a request's id in
         * every reply is (~3,800 instructions through cJSON). */
        double d = item->valuedouble;
        if (d > -1e15 && d < 1e15 && d == (double)(int64_t)d && (d != 0 || !signbit(d))) {
            kz_json_int(j, (int64_t)d);
            return;
        }
        /* Else cJSON's own digits (%1.15g, or %1.17g when that does not read back): rare in
         * what the server writes, and the format's bytes depend on them. */
        char *n = cJSON_PrintUnformatted(item);
        if (!n) {
            j->failed = true;
            return;
        }
        kz_json_raw(j, n, strlen(n));
        cJSON_free(n);
        return;
    }
    case cJSON_Array:
        put(j, '[');
        for (const cJSON *c = item->child; c; c = c->next) {
            if (c != item->child)
                put(j, ',');
            kz_json_item(j, c);
        }
        put(j, ']');
        return;
    case cJSON_Object:
        put(j, '{');
        for (const cJSON *c = item->child; c; c = c->next) {
            if (c != item->child)
                put(j, ',');
            kz_json_str(j, c->string);
            put(j, ':');
            kz_json_item(j, c);
        }
        put(j, '}');
        return;
    default:
        j->failed = true; /* cJSON_Invalid: cJSON would not print it either */
    }
}

char *kz_json_take(struct kz_json *j, size_t *len)
{
    char *text = NULL;
    if (!j->failed && grow(j, 0)) {
        j->buf[j->len] = '\0';
        text = j->buf;
        if (len)
            *len = j->len;
        j->buf = NULL;
    }
    kz_json_free(j);
    return text;
}

void kz_json_free(struct kz_json *j)
{
    free(j->buf);
    memset(j, 0, sizeof *j);
}
