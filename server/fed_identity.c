/* fed_identity.c - server ids, keys, fingerprints, addresses and pins, as fed.h describes:
 * checked and computed in one place for kizunad's commands, the peer ops and the tests. */
#include "fed.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "media.h"

static bool id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

bool fed_server_id_valid(const char *id)
{
    size_t len = strlen(id);
    if (len < FED_ID_MIN || len > FED_ID_MAX || id[0] == '-' || id[len - 1] == '-')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!id_char(id[i]))
            return false;
    return true;
}

void fed_server_id_derive(const uint8_t pk[FED_KEY_BYTES], char *out, size_t n)
{
    snprintf(out, n, "kz-%02x%02x%02x%02x%02x%02x", pk[0], pk[1], pk[2], pk[3], pk[4], pk[5]);
}

void fed_server_id_legacy(const uint8_t pk[FED_KEY_BYTES], const char *configured, char *out,
                          size_t n)
{
    if (configured && *configured) {
        snprintf(out, n, "%s", configured);
        return;
    }
    char b64[FED_KEY_B64LEN + 1];
    fed_key_encode(pk, b64, sizeof b64);
    snprintf(out, n, "kz-%.12s", b64);
}

void fed_key_encode(const uint8_t pk[FED_KEY_BYTES], char *out, size_t n)
{
    char b64[sodium_base64_ENCODED_LEN(FED_KEY_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    sodium_bin2base64(b64, sizeof b64, pk, FED_KEY_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(out, n, "%s", b64);
}

bool fed_key_parse(const char *text, uint8_t pk[FED_KEY_BYTES], char *why, size_t n)
{
    size_t bin_len = 0;
    const char *end = NULL;
    if (strlen(text) != FED_KEY_B64LEN ||
        sodium_base642bin(pk, FED_KEY_BYTES, text, FED_KEY_B64LEN, NULL, &bin_len, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        bin_len != FED_KEY_BYTES || (end && *end)) {
        snprintf(why, n,
                 "a server key is 43 characters of base64url (as kizunad fingerprint prints it)");
        return false;
    }
    if (sodium_init() < 0 || !crypto_core_ed25519_is_valid_point(pk)) {
        snprintf(why, n, "the server key is not a valid Ed25519 public key");
        return false;
    }
    return true;
}

int fed_fingerprint(const char *server_id, const uint8_t pk[FED_KEY_BYTES],
                    char out[FED_FINGERPRINT_LEN + 1])
{
    out[0] = '\0';
    size_t len = strlen(server_id);
    if (len == 0 || len > 255)
        return -1;
    /* u16 len || id || key, as the safety numbers encode their strings (media/keys.c). */
    unsigned char m[2 + 255 + FED_KEY_BYTES];
    m[0] = (unsigned char)(len >> 8);
    m[1] = (unsigned char)len;
    memcpy(m + 2, server_id, len);
    memcpy(m + 2 + len, pk, FED_KEY_BYTES);
    char digits[FED_FINGERPRINT_DIGITS + 1];
    if (media_numeric_digits(FED_FINGERPRINT_DOMAIN, m, 2 + len + FED_KEY_BYTES, 12, digits) !=
        MEDIA_OK)
        return -1;
    char *o = out;
    for (int g = 0; g < 12; g++) {
        if (g)
            *o++ = ' ';
        memcpy(o, digits + g * 5, 5);
        o += 5;
    }
    *o = '\0';
    return 0;
}

bool fed_fingerprint_parse(const char *text, char out[FED_FINGERPRINT_DIGITS + 1])
{
    size_t k = 0;
    for (const char *p = text; *p; p++) {
        if (*p == ' ' || *p == '-')
            continue;
        if (!isdigit((unsigned char)*p) || k == FED_FINGERPRINT_DIGITS)
            return false;
        out[k++] = *p;
    }
    out[k] = '\0';
    return k == FED_FINGERPRINT_DIGITS;
}

static bool port_valid(const char *p)
{
    if (!*p || strlen(p) > 5 || *p == '0')
        return false;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q))
            return false;
    long v = strtol(p, NULL, 10);
    return v >= 1 && v <= 65535;
}

/* A DNS name or an IPv4 address: labels of letters, digits and '-' (not at either end),
 * separated by single dots, at most 253 bytes. */
static bool host_valid(const char *h, size_t len)
{
    if (len == 0 || len > 253)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char c = h[i];
        if (c == '.') {
            if (label == 0 || h[i - 1] == '-')
                return false;
            label = 0;
        } else if (isalnum((unsigned char)c) || c == '-') {
            if (c == '-' && label == 0)
                return false;
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label > 0 && h[len - 1] != '-';
}

bool fed_address_valid(const char *addr, char *why, size_t n)
{
    size_t len = strlen(addr);
    const char *colon = strrchr(addr, ':');
    bool ok = false;
    if (len > 263 || !colon) {
        ok = false;
    } else if (addr[0] == '[') {
        /* [IPv6]:PORT: the brackets hold hex digits, ':' and '.' (an embedded IPv4). */
        const char *close = strchr(addr, ']');
        ok = close && close + 1 == colon && close - addr > 2;
        for (const char *p = addr + 1; ok && p < close; p++)
            ok = isxdigit((unsigned char)*p) || *p == ':' || *p == '.';
        ok = ok && port_valid(colon + 1);
    } else {
        ok = host_valid(addr, (size_t)(colon - addr)) && port_valid(colon + 1);
    }
    if (!ok)
        snprintf(why, n, "'%.64s' is not an address: HOST:PORT or [IPv6]:PORT, port 1-65535", addr);
    return ok;
}

bool fed_tls_pin_valid(const char *pin)
{
    unsigned char bin[32];
    size_t bin_len = 0;
    const char *end = NULL;
    return strlen(pin) == 44 &&
           sodium_base642bin(bin, sizeof bin, pin, 44, NULL, &bin_len, &end,
                             sodium_base64_VARIANT_ORIGINAL) == 0 &&
           bin_len == 32 && (!end || !*end);
}
