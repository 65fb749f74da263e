/* epoch.c - what an epoch key seals and what binds it (issue 14): the key-check value the owner
 * publishes, signed, so that a key another member forwards is taken only if it is the owner's
 * (item 3), and the photo message sealed under the key, bound to its sender's counter and clock
 * (item 4). The check is a keyed BLAKE2b-256 with the epoch key as its key: one-way (it tells
 * nobody the key, nor lets anyone test a guess without the full 256-bit key) and binding (a
 * second key with the same check is a BLAKE2b collision). */
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

enum media_rc media_photo_seal(const struct media_photo_ad *ad, const void *msg, size_t len,
                               const uint8_t key[MEDIA_EPOCH_KEYBYTES], unsigned char **out,
                               size_t *out_len)
{
    *out = NULL;
    if (!ad->seq || len > PHOTO_MSG_MAX)
        return MEDIA_INVALID;
    size_t ad_len;
    char *adb = photo_ad(ad, &ad_len);
    unsigned char *ct = adb ? malloc(len + MEDIA_AEAD_OVERHEAD) : NULL;
    enum media_rc rc = ct ? media_aead_seal(msg, len, adb, ad_len, key, ct) : MEDIA_NOMEM;
    free(adb);
    if (rc != MEDIA_OK) {
        free(ct);
        return rc;
    }
    *out = ct;
    *out_len = len + MEDIA_AEAD_OVERHEAD;
    return MEDIA_OK;
}

enum media_rc media_photo_open(const struct media_photo_ad *ad, const unsigned char *ct,
                               size_t ct_len, const uint8_t key[MEDIA_EPOCH_KEYBYTES], char **msg,
                               size_t *len)
{
    *msg = NULL;
    if (!ad->seq)
        return MEDIA_INVALID;
    if (ct_len < MEDIA_AEAD_OVERHEAD)
        return MEDIA_AUTH;
    size_t ad_len, n = ct_len - MEDIA_AEAD_OVERHEAD;
    char *adb = photo_ad(ad, &ad_len);
    char *plain = adb ? malloc(n + 1) : NULL;
    enum media_rc rc =
        plain ? media_aead_open(ct, ct_len, adb, ad_len, key, (unsigned char *)plain) : MEDIA_NOMEM;
    free(adb);
    if (rc != MEDIA_OK) {
        free(plain);
        return rc;
    }
    plain[n] = '\0';
    *msg = plain;
    *len = n;
    return MEDIA_OK;
}
