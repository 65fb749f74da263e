/* fuzz_blob.c - the decoders of media/'s encryption formats: the chunked blob
 * (media_blob_decrypt), the key envelope (media_envelope_open), the message AEAD
 * (media_aead_open) and the padded photo message (media_photo_open), all with fixed keys, so
 * that seeds made by kz-fuzzseeds authenticate and the fuzzer gets past the first chunk
 * (fuzz_rng.h).
 *
 * Input: a mode byte, then its data.
 *   'k'  u64 big-endian true length, then a blob: decrypted with that length and its own hash
 *   'e'  a key envelope
 *   'a'  one byte n, n bytes of additional data, then a sealed message
 *   'r'  plaintext: encrypted, then decrypted whole (must give it back) and cut short (must
 *        fail)
 *   'p'  a sealed photo message (room "r", epoch "e", device "d", counter 1, time 0): opened,
 *        and what opens must fit in what was sealed
 *   'q'  a photo message: sealed and padded, then opened (must give it back)
 *   'd'  a signed device list's encoding: decoded; what decodes must encode back to the same
 *        bytes and hash, and is checked as the version after itself and as a first version
 *   anything else: the whole input is a blob, decrypted with its length unknown. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_rng.h"
#include "media.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static uint8_t blob_key[32], sender_pk[32], sender_sk[32], recipient_pk[32], recipient_sk[32],
    aead_key[32];

static void fail(const char *msg, enum media_rc rc)
{
    fprintf(stderr, "fuzz_blob: %s (%s)\n", msg, media_rc_name(rc));
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (fz_rng_install() != 0)
        abort();
    fz_rng_blob_key(blob_key);
    fz_fixed_keys(sender_pk, sender_sk, recipient_pk, recipient_sk, aead_key);
    return 0;
}

struct src {
    const uint8_t *p;
    size_t len, pos;
};

/* Short reads of varying size, as from a socket or a file read in pieces. */
static long src_read(void *ctx, void *buf, size_t len)
{
    struct src *s = ctx;
    size_t n = s->len - s->pos, piece = 1 + (s->pos * 7919) % 5000;
    if (n > len)
        n = len;
    if (n > piece)
        n = piece;
    memcpy(buf, s->p + s->pos, n);
    s->pos += n;
    return (long)n;
}

struct sink {
    uint8_t *buf; /* NULL: count only */
    size_t cap, len;
};

static int sink_write(void *ctx, const void *buf, size_t len)
{
    struct sink *s = ctx;
    if (s->buf) {
        if (len > s->cap - s->len)
            return -1;
        memcpy(s->buf + s->len, buf, len);
    }
    s->len += len;
    return 0;
}

static enum media_rc decrypt(const uint8_t *blob, size_t len, const uint8_t key[32],
                             const uint8_t *hash, uint64_t plain_len, struct sink *out)
{
    struct src in = {.p = blob, .len = len};
    uint64_t written = 0;
    enum media_rc rc =
        media_blob_decrypt(src_read, &in, sink_write, out, key, hash, plain_len, &written);
    if (written != out->len)
        fail("*written differs from what was written", rc);
    if (rc == MEDIA_OK && plain_len != MEDIA_BLOB_LEN_UNKNOWN && written != plain_len)
        fail("a blob decrypted to another length than declared", rc);
    if (written > len)
        fail("more plaintext than ciphertext", rc);
    return rc;
}

static void roundtrip(const uint8_t *plain, size_t len)
{
    size_t cap = (size_t)media_blob_padded_len(len) + len / 1024 + 4096;
    struct sink blob = {.buf = malloc(cap), .cap = cap};
    struct media_blob_info info;
    fz_rng_reset();
    enum media_rc rc = media_blob_encrypt(plain, len, sink_write, &blob, &info);
    if (rc != MEDIA_OK)
        fail("encrypting failed", rc);
    struct sink back = {.buf = malloc(len + 1), .cap = len};
    rc = decrypt(blob.buf, blob.len, info.key, info.hash, len, &back);
    if (rc != MEDIA_OK || back.len != len || memcmp(back.buf, plain, len) != 0)
        fail("a blob did not decrypt to its plaintext", rc);
    struct sink none = {0};
    rc = decrypt(blob.buf, blob.len - 1, info.key, NULL, MEDIA_BLOB_LEN_UNKNOWN, &none);
    if (rc != MEDIA_BLOB_TRUNCATED)
        fail("a blob cut short was not reported as truncated", rc);
    free(blob.buf);
    free(back.buf);
}

/* One encoding per list: decode, encode again, compare; then the chain rule on it. */
static void devlist(const uint8_t *enc, size_t len)
{
    static struct media_devlist l, again;
    static unsigned char back[MEDIA_DEVLIST_ENCODED_MAX];
    if (media_devlist_decode(enc, len, &l) != MEDIA_OK)
        return;
    again = l;
    size_t n;
    enum media_rc rc = media_devlist_encode(&again, back, sizeof back, &n);
    if (rc != MEDIA_OK || n != len || memcmp(back, enc, len) != 0 ||
        memcmp(again.hash, l.hash, sizeof l.hash) != 0)
        fail("a device list did not encode back to its bytes", rc);
    uint8_t sig[64] = {0};
    const char *by = l.n ? l.dev[0].id : "";
    if (media_devlist_follows(&l, &l, enc, len, by, sig) == MEDIA_OK ||
        media_devlist_follows(NULL, &l, enc, len, by, sig) == MEDIA_OK)
        fail("a zero signature was taken", MEDIA_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *rest = data + 1;
    size_t len = size - 1;
    struct sink out = {0};
    switch (data[0]) {
    case 'k': {
        if (len < 8)
            return 0;
        uint64_t plain_len = 0;
        for (int i = 0; i < 8; i++)
            plain_len = plain_len << 8 | rest[i];
        uint8_t hash[MEDIA_BLOB_HASHBYTES];
        crypto_generichash(hash, sizeof hash, rest + 8, len - 8, NULL, 0);
        decrypt(rest + 8, len - 8, blob_key, hash, plain_len, &out);
        break;
    }
    case 'e': {
        /* Exactly the plaintext's size: an overflow is caught by ASan. */
        size_t n = len > MEDIA_ENVELOPE_OVERHEAD ? len - MEDIA_ENVELOPE_OVERHEAD : 0;
        unsigned char *plain = malloc(n ? n : 1);
        media_envelope_open(rest, len, sender_pk, recipient_sk, plain);
        free(plain);
        break;
    }
    case 'a': {
        if (len < 1)
            return 0;
        size_t ad_len = rest[0] < len - 1 ? rest[0] : len - 1;
        const uint8_t *ad = rest + 1, *ct = rest + 1 + ad_len;
        size_t ct_len = len - 1 - ad_len;
        size_t n = ct_len > MEDIA_AEAD_OVERHEAD ? ct_len - MEDIA_AEAD_OVERHEAD : 0;
        unsigned char *plain = malloc(n ? n : 1);
        media_aead_open(ct, ct_len, ad_len ? ad : NULL, ad_len, aead_key, plain);
        free(plain);
        break;
    }
    case 'r':
        roundtrip(rest, len);
        break;
    case 'p':
    case 'q': {
        const struct media_photo_ad ad = {"r", "e", "d", 1, 0};
        unsigned char *sealed = NULL;
        size_t sealed_len = len, n = 0;
        char *msg = NULL;
        if (data[0] == 'q' &&
            media_photo_seal(&ad, rest, len, aead_key, &sealed, &sealed_len) != MEDIA_OK)
            fail("sealing a photo message failed", MEDIA_INVALID);
        enum media_rc rc =
            media_photo_open(&ad, sealed ? sealed : rest, sealed_len, aead_key, &msg, &n);
        if (rc == MEDIA_OK && (n + 4 + MEDIA_AEAD_OVERHEAD > sealed_len || strlen(msg) > n))
            fail("a photo message opened to more than it holds", rc);
        if (sealed && (rc != MEDIA_OK || n != len || memcmp(msg, rest, len) != 0))
            fail("a photo message did not open to what was sealed", rc);
        free(msg);
        free(sealed);
        break;
    }
    case 'd':
        devlist(rest, len);
        break;
    default:
        decrypt(data, size, blob_key, NULL, MEDIA_BLOB_LEN_UNKNOWN, &out);
        break;
    }
    return 0;
}
