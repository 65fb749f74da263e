/* devlist.c - what a user's own devices sign about the user (issue 14): the list of devices the
 * user vouches for (item 1), in a strict binary encoding (one byte string per list, so signer
 * and reader hash and sign the same bytes without any canonical-JSON rules) with the rule by
 * which one version may follow another, and the history policy of a room the user creates
 * (item 6). Everything here is pure: the server checks what it stores with it, clients check
 * what the server serves them. Formats and rules: media.h. */
#include "media.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC   "KZDL"
#define VERSION 1

void media_device_id(const uint8_t sign_pk[32], char out[MEDIA_DEVICE_ID_LEN + 1])
{
    uint8_t h[16];
    crypto_generichash(h, sizeof h, sign_pk, 32, NULL, 0);
    sodium_bin2base64(out, MEDIA_DEVICE_ID_LEN + 1, h, sizeof h,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static bool login_ok(const char *login, size_t len)
{
    if (len == 0 || len > MEDIA_DEVLIST_LOGIN_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)login[i] < 0x21 || (unsigned char)login[i] == 0x7f)
            return false; /* no NUL, space or control character: the server's logins never do */
    return true;
}

static int by_sign_pk(const void *a, const void *b)
{
    return memcmp(((const struct media_devlist_entry *)a)->sign_pk,
                  ((const struct media_devlist_entry *)b)->sign_pk, 32);
}

enum media_rc media_devlist_encode(struct media_devlist *l, unsigned char *out, size_t cap,
                                   size_t *len)
{
    size_t ll = strnlen(l->login, sizeof l->login);
    if (!login_ok(l->login, ll) || l->n > MEDIA_DEVLIST_MAX || l->seq == 0 ||
        cap < MEDIA_DEVLIST_ENCODED_MAX)
        return MEDIA_INVALID;
    qsort(l->dev, l->n, sizeof *l->dev, by_sign_pk);
    for (size_t i = 0; i < l->n; i++) {
        if (i && memcmp(l->dev[i - 1].sign_pk, l->dev[i].sign_pk, 32) == 0)
            return MEDIA_INVALID;
        media_device_id(l->dev[i].sign_pk, l->dev[i].id);
    }
    unsigned char *p = out;
    memcpy(p, MAGIC, 4);
    p[4] = VERSION;
    p[5] = (unsigned char)ll;
    memcpy(p + 6, l->login, ll);
    p += 6 + ll;
    for (int i = 7; i >= 0; i--)
        *p++ = (unsigned char)(l->seq >> (8 * i));
    memcpy(p, l->prev, 32);
    p += 32;
    *p++ = (unsigned char)l->n;
    for (size_t i = 0; i < l->n; i++, p += 64) {
        memcpy(p, l->dev[i].sign_pk, 32);
        memcpy(p + 32, l->dev[i].box_pk, 32);
    }
    *len = (size_t)(p - out);
    crypto_generichash(l->hash, sizeof l->hash, out, *len, NULL, 0);
    return MEDIA_OK;
}

enum media_rc media_devlist_decode(const unsigned char *buf, size_t len, struct media_devlist *out)
{
    memset(out, 0, sizeof *out);
    if (sodium_init() < 0)
        return MEDIA_NOMEM;
    if (len < 6 || memcmp(buf, MAGIC, 4) != 0 || buf[4] != VERSION)
        return MEDIA_FORMAT;
    size_t ll = buf[5];
    if (len < 6 + ll + 8 + 32 + 1 || !login_ok((const char *)buf + 6, ll))
        return MEDIA_FORMAT;
    memcpy(out->login, buf + 6, ll);
    const unsigned char *p = buf + 6 + ll;
    for (int i = 0; i < 8; i++)
        out->seq = out->seq << 8 | *p++;
    memcpy(out->prev, p, 32);
    p += 32;
    out->n = *p++;
    if (out->seq == 0 || out->n > MEDIA_DEVLIST_MAX ||
        (size_t)(buf + len - p) != out->n * 64) /* exactly the devices, nothing after */
        return MEDIA_FORMAT;
    for (size_t i = 0; i < out->n; i++, p += 64) {
        memcpy(out->dev[i].sign_pk, p, 32);
        memcpy(out->dev[i].box_pk, p + 32, 32);
        /* Sorted and distinct: one encoding per list, so equal lists have equal hashes. */
        if (i && memcmp(out->dev[i - 1].sign_pk, out->dev[i].sign_pk, 32) >= 0)
            return MEDIA_FORMAT;
        media_device_id(out->dev[i].sign_pk, out->dev[i].id);
    }
    crypto_generichash(out->hash, sizeof out->hash, buf, len, NULL, 0);
    return MEDIA_OK;
}

bool media_devlist_is_root(const struct media_devlist *l)
{
    static const uint8_t zero[32];
    return sodium_memcmp(l->prev, zero, 32) == 0;
}

int media_devlist_find(const struct media_devlist *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->dev[i].id, id) == 0)
            return (int)i;
    return -1;
}

enum media_rc media_devlist_sign(const unsigned char *enc, size_t len, const uint8_t sign_sk[64],
                                 uint8_t sig[64])
{
    return media_sign(MEDIA_DOMAIN_DEVLIST, enc, len, sign_sk, sig);
}

enum media_rc media_devlist_follows(const struct media_devlist *prev,
                                    const struct media_devlist *next, const unsigned char *enc,
                                    size_t len, const char *by, const uint8_t sig[64])
{
    uint8_t h[32];
    crypto_generichash(h, sizeof h, enc, len, NULL, 0);
    if (sodium_memcmp(h, next->hash, 32) != 0)
        return MEDIA_INVALID; /* enc is not the encoding of next */
    bool root = media_devlist_is_root(next);
    if (prev && (strcmp(prev->login, next->login) != 0 || next->seq != prev->seq + 1 ||
                 (!root && sodium_memcmp(next->prev, prev->hash, 32) != 0)))
        return MEDIA_FORMAT;
    if (!prev && !root)
        return MEDIA_FORMAT; /* nothing to follow: only a root stands on its own */
    /* A change is approved by a device of the version before; a new start by one of its own. */
    const struct media_devlist *signers = root ? next : prev;
    int i = media_devlist_find(signers, by ? by : "");
    if (i < 0)
        return MEDIA_AUTH;
    return media_verify(MEDIA_DOMAIN_DEVLIST, enc, len, signers->dev[i].sign_pk, sig) ? MEDIA_OK
                                                                                      : MEDIA_AUTH;
}

/* u8 len || login || u8 len || history, after the domain. */
static size_t policy_msg(const char *login, const char *history, unsigned char out[2 + 2 * 255])
{
    size_t ll = strlen(login), hl = strlen(history);
    if (ll > 255 || hl > 255)
        return 0;
    out[0] = (unsigned char)ll;
    memcpy(out + 1, login, ll);
    out[1 + ll] = (unsigned char)hl;
    memcpy(out + 2 + ll, history, hl);
    return 2 + ll + hl;
}

enum media_rc media_policy_sign(const char *login, const char *history, const uint8_t sign_sk[64],
                                uint8_t sig[64])
{
    unsigned char m[2 + 2 * 255];
    size_t n = policy_msg(login, history, m);
    return n ? media_sign(MEDIA_DOMAIN_POLICY, m, n, sign_sk, sig) : MEDIA_INVALID;
}

bool media_policy_verify(const char *login, const char *history, const uint8_t sign_pk[32],
                         const uint8_t sig[64])
{
    unsigned char m[2 + 2 * 255];
    size_t n = policy_msg(login, history, m);
    return n && media_verify(MEDIA_DOMAIN_POLICY, m, n, sign_pk, sig);
}
