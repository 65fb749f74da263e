/* epoch.c - what binds an epoch key to the device that owns it (issue 14, item 3): the key-check
 * value the owner publishes, signed, so that a key another member forwards is taken only if it
 * is the owner's. The check is a keyed BLAKE2b-256 with the epoch key as its key: one-way (it
 * tells nobody the key, nor lets anyone test a guess without the full 256-bit key) and binding
 * (a second key with the same check is a BLAKE2b collision). */
#include "media.h"

#include <sodium.h>
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
