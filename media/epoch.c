/* epoch.c - what an epoch key seals and what binds it (issue 14): the key-check value the owner
 * publishes, signed, so that a key another member forwards is taken only if it is the owner's
 * (item 3), and the photo message sealed under the key, bound to its sender's counter and clock
 * (item 4) and padded to a size bucket (item 5). The check is a keyed BLAKE2b-256 with the epoch
 * key as its key: one-way (it tells nobody the key, nor lets anyone test a guess without the full
 * 256-bit key) and binding (a second key with the same check is a BLAKE2b collision). */
#include "media.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum media_rc media_epoch_check(const char *room, const char *owner, const char *epoch,
                                const uint8_t key[MEDIA_EPOCH_KEYBYTES],
                                uint8_t check[MEDIA_EPOCH_CHECKBYTES])
{
    if (sodium_init() < 0)
        return MEDIA_NOMEM;
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, MEDIA_EPOCH_KEYBYTES, MEDIA_EPOCH_CHECKBYTES);
    /* Each part NUL-terminated, so no two (room, owner, epoch) give the same bytes. */
    const char *parts[] = {MEDIA_DOMAIN_KEYCHECK, room, owner, epoch};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        crypto_generichash_update(&st, (const unsigned char *)parts[i], strlen(parts[i]) + 1);
    crypto_generichash_final(&st, check, MEDIA_EPOCH_CHECKBYTES);
    sodium_memzero(&st, sizeof st);
    return MEDIA_OK;
}

/* The additional data of a photo message (media.h); the caller frees it. NULL for seq 0 or no
 * memory. */
static char *photo_ad(const struct media_photo_ad *ad, size_t *len)
{
    if (!ad->seq)
        return NULL;
    char nums[48];
    int nl = snprintf(nums, sizeof nums, "%llu%c%lld", (unsigned long long)ad->seq, 0,
                      (long long)ad->ts);
    size_t n = sizeof MEDIA_DOMAIN_PHOTO + strlen(ad->room) + 1 + strlen(ad->epoch) + 1 +
               strlen(ad->device) + 1 + (size_t)nl;
    char *buf = malloc(n), *p = buf;
    if (!buf)
        return NULL;
    p = stpcpy(p, MEDIA_DOMAIN_PHOTO) + 1;
    p = stpcpy(p, ad->room) + 1;
    p = stpcpy(p, ad->epoch) + 1;
    p = stpcpy(p, ad->device) + 1;
    memcpy(p, nums, (size_t)nl);
    *len = n;
    return buf;
}

#define PHOTO_MSG_MAX (16u << 20) /* far above any photo message (a thumbnail is <= 12 KiB) */
#define PAD_PREFIX    4           /* the u32 big-endian length before the message */

size_t media_photo_padded_len(size_t len)
{
    return (size_t)media_blob_padded_len((uint64_t)len + PAD_PREFIX);
}

enum media_rc media_photo_seal(const struct media_photo_ad *ad, const void *msg, size_t len,
                               const uint8_t key[MEDIA_EPOCH_KEYBYTES], unsigned char **out,
                               size_t *out_len)
{
    *out = NULL;
    if (!ad->seq || len > PHOTO_MSG_MAX)
        return MEDIA_INVALID;
    /* u32 length || message || zeros, to the size bucket blobs use (issue 14, item 5): the
     * caption, file name, GPS and thumbnail show only as the bucket they fall in. */
    size_t padded = media_photo_padded_len(len), ad_len;
    unsigned char *plain = calloc(1, padded);
    char *adb = plain ? photo_ad(ad, &ad_len) : NULL;
    unsigned char *ct = adb ? malloc(padded + MEDIA_AEAD_OVERHEAD) : NULL;
    enum media_rc rc = MEDIA_NOMEM;
    if (ct) {
        for (int i = 0; i < PAD_PREFIX; i++)
            plain[i] = (unsigned char)(len >> (8 * (PAD_PREFIX - 1 - i)));
        memcpy(plain + PAD_PREFIX, msg, len);
        rc = media_aead_seal(plain, padded, adb, ad_len, key, ct);
    }
    if (plain)
        sodium_memzero(plain, padded);
    free(plain);
    free(adb);
    if (rc != MEDIA_OK) {
        free(ct);
        return rc;
    }
    *out = ct;
    *out_len = padded + MEDIA_AEAD_OVERHEAD;
    return MEDIA_OK;
}

enum media_rc media_photo_open(const struct media_photo_ad *ad, const unsigned char *ct,
                               size_t ct_len, const uint8_t key[MEDIA_EPOCH_KEYBYTES], char **msg,
                               size_t *len)
{
    *msg = NULL;
    if (!ad->seq)
        return MEDIA_INVALID;
    if (ct_len < MEDIA_AEAD_OVERHEAD + PAD_PREFIX)
        return MEDIA_AUTH;
    size_t ad_len, n = ct_len - MEDIA_AEAD_OVERHEAD;
    char *adb = photo_ad(ad, &ad_len);
    unsigned char *plain = adb ? malloc(n) : NULL;
    enum media_rc rc = plain ? media_aead_open(ct, ct_len, adb, ad_len, key, plain) : MEDIA_NOMEM;
    free(adb);
    size_t m = 0;
    for (int i = 0; rc == MEDIA_OK && i < PAD_PREFIX; i++)
        m = m << 8 | plain[i];
    /* Authentic, but not as a sender makes it (a length past the end, padding that is not
     * zero): refused like a damaged message. The bucket itself is the sender's choice, not
     * checked: a client whose arithmetic rounds to another bucket still interoperates. */
    bool padding_zero = true;
    for (size_t i = PAD_PREFIX + m; rc == MEDIA_OK && m <= n - PAD_PREFIX && i < n; i++)
        padding_zero = padding_zero && plain[i] == 0;
    if (rc == MEDIA_OK && (m > n - PAD_PREFIX || !padding_zero))
        rc = MEDIA_AUTH;
    char *text = rc == MEDIA_OK ? malloc(m + 1) : NULL;
    if (rc == MEDIA_OK && !text)
        rc = MEDIA_NOMEM;
    if (text) {
        memcpy(text, plain + PAD_PREFIX, m);
        text[m] = '\0';
    }
    if (plain)
        sodium_memzero(plain, n);
    free(plain);
    if (rc != MEDIA_OK)
        return rc;
    *msg = text;
    *len = m;
    return MEDIA_OK;
}
