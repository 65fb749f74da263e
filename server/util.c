/* util.c - small helpers with no state: time, UTF-8, passwords, tokens. */
#include "server.h"

#include <sodium.h>
#include <string.h>
#include <time.h>

int64_t kz_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF. */
bool kz_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str, *end = s + len;
    while (s < end) {
        unsigned c = *s;
        size_t n;
        unsigned min;
        if (c < 0x80) {
            s++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, min = 0x10000, c &= 0x07;
        } else {
            return false;
        }
        if ((size_t)(end - s) <= n)
            return false;
        for (size_t i = 1; i <= n; i++) {
            if ((s[i] & 0xc0) != 0x80)
                return false;
            c = (c << 6) | (s[i] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return false;
        s += n + 1;
    }
    return true;
}

void kz_password_generate(char *out, size_t n)
{
    /* No 0/O, 1/l/I, 8/B: the password is read off a screen and typed on a phone. */
    static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXYZ2345679";
    for (size_t i = 0; i + 1 < n; i++)
        out[i] = alphabet[randombytes_uniform(sizeof alphabet - 1)];
    if (n)
        out[n - 1] = '\0';
}

bool kz_login_valid(const char *login)
{
    size_t len = strlen(login);
    if (len == 0 || len > STORE_LOGIN_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = login[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return false;
    }
    return true;
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

const char *kz_password_problem(const char *password, const char *login, long long min_len)
{
    if ((long long)utf8_chars(password) < min_len)
        return "password is too short";
    if (strlen(password) > 255)
        return "password is longer than 255 bytes";
    if (login && strcasecmp(password, login) == 0)
        return "password must not be the login id";
    return NULL;
}

void kz_token_new(char token[KZ_TOKEN_CHARS], uint8_t hash[STORE_TOKEN_HASH])
{
    uint8_t raw[KZ_TOKEN_BYTES];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(token, KZ_TOKEN_CHARS, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
    kz_token_hash(token, hash);
}

bool kz_token_hash(const char *token, uint8_t hash[STORE_TOKEN_HASH])
{
    if (strlen(token) != KZ_TOKEN_CHARS - 1)
        return false;
    /* The token is high-entropy, so a fast keyless hash is enough: the database alone never
     * yields a usable token. */
    crypto_generichash(hash, STORE_TOKEN_HASH, (const unsigned char *)token, KZ_TOKEN_CHARS - 1,
                       NULL, 0);
    return true;
}
