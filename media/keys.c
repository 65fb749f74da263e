/* keys.c - device keys, domain-separated signatures, key envelopes, the message AEAD and
 * safety numbers (E1, E4, E5, E12). Thin, on purpose: libsodium does the cryptography, this
 * file only fixes the encodings so that every client produces the same bytes. */
#include "media.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define FINGERPRINT_ROUNDS 5200 /* as Signal: > 112 bits of work for a 30-digit collision */

enum media_rc media_device_keys_new(struct media_device_keys *out)
{
    if (sodium_init() < 0)
        return MEDIA_NOMEM;
    /* Two independent pairs: no Ed25519 -> X25519 conversion (research §1.7). */
    crypto_sign_keypair(out->sign_pk, out->sign_sk);
    crypto_box_keypair(out->box_pk, out->box_sk);
    return MEDIA_OK;
}

void media_device_keys_wipe(struct media_device_keys *k)
{
    sodium_memzero(k, sizeof *k);
}

/* domain || 0x00 || msg in one malloc'd buffer; the domain has no NUL, so the split point is
 * unambiguous. */
static unsigned char *with_domain(const char *domain, const void *msg, size_t len, size_t *out)
{
    size_t dl = strlen(domain);
    if (len > SIZE_MAX - dl - 1)
        return NULL;
    unsigned char *b = malloc(dl + 1 + len + 1); /* +1: malloc(0)-proof and never NULL-size */
    if (!b)
        return NULL;
    memcpy(b, domain, dl + 1);
    if (len)
        memcpy(b + dl + 1, msg, len);
    *out = dl + 1 + len;
    return b;
}

enum media_rc media_sign(const char *domain, const void *msg, size_t len, const uint8_t sk[64],
                         uint8_t sig[64])
{
    if (sodium_init() < 0)
        return MEDIA_NOMEM;
    size_t n;
    unsigned char *b = with_domain(domain, msg, len, &n);
    if (!b)
        return MEDIA_NOMEM;
    crypto_sign_detached(sig, NULL, b, n, sk);
    free(b);
    return MEDIA_OK;
}

bool media_verify(const char *domain, const void *msg, size_t len, const uint8_t pk[32],
                  const uint8_t sig[64])
{
    if (sodium_init() < 0)
        return false;
    size_t n;
    unsigned char *b = with_domain(domain, msg, len, &n);
    if (!b)
        return false;
    bool ok = crypto_sign_verify_detached(sig, b, n, pk) == 0;
    free(b);
    return ok;
}

/* u16 length-prefixed strings, so ("ab", "c") and ("a", "bc") never encode the same. */
static bool put_str(unsigned char **p, const char *s)
{
    size_t n = strlen(s);
    if (n > 0xffff)
        return false;
    (*p)[0] = (unsigned char)(n >> 8);
    (*p)[1] = (unsigned char)n;
    memcpy(*p + 2, s, n);
    *p += 2 + n;
    return true;
}

/* The device record that the self-signature covers; malloc'd, NULL if too long or no memory. */
static unsigned char *devkey_msg(const char *user, const char *device_id, const uint8_t sign_pk[32],
                                 const uint8_t box_pk[32], size_t *len)
{
    size_t ul = strlen(user), dl = strlen(device_id);
    if (ul > 0xffff || dl > 0xffff)
        return NULL;
    unsigned char *m = malloc(2 + ul + 2 + dl + 64), *p = m;
    if (!m)
        return NULL;
    put_str(&p, user);
    put_str(&p, device_id);
    memcpy(p, sign_pk, 32);
    memcpy(p + 32, box_pk, 32);
    *len = (size_t)(p + 64 - m);
    return m;
}

enum media_rc media_devkey_sign(const char *user, const char *device_id,
                                const struct media_device_keys *k, uint8_t sig[64])
{
    if (strlen(user) > 0xffff || strlen(device_id) > 0xffff)
        return MEDIA_INVALID;
    size_t len;
    unsigned char *m = devkey_msg(user, device_id, k->sign_pk, k->box_pk, &len);
    if (!m)
        return MEDIA_NOMEM;
    enum media_rc rc = media_sign(MEDIA_DOMAIN_DEVKEY, m, len, k->sign_sk, sig);
    free(m);
    return rc;
}

bool media_devkey_verify(const char *user, const char *device_id, const uint8_t sign_pk[32],
                         const uint8_t box_pk[32], const uint8_t sig[64])
{
    size_t len;
    unsigned char *m = devkey_msg(user, device_id, sign_pk, box_pk, &len);
    if (!m)
        return false;
    bool ok = media_verify(MEDIA_DOMAIN_DEVKEY, m, len, sign_pk, sig);
    free(m);
    return ok;
}

enum media_rc media_envelope_seal(const void *plain, size_t len, const uint8_t sender_box_sk[32],
                                  const uint8_t recipient_box_pk[32], unsigned char *out)
{
    if (sodium_init() < 0)
        return MEDIA_NOMEM;
    if (len > SIZE_MAX - MEDIA_ENVELOPE_OVERHEAD)
        return MEDIA_INVALID;
    randombytes_buf(out, crypto_box_NONCEBYTES);
    if (crypto_box_easy(out + crypto_box_NONCEBYTES, plain, len, out, recipient_box_pk,
                        sender_box_sk) != 0)
        return MEDIA_INVALID; /* a low-order recipient key: refuse rather than encrypt */
    return MEDIA_OK;
}

enum media_rc media_envelope_open(const unsigned char *env, size_t env_len,
                                  const uint8_t sender_box_pk[32],
                                  const uint8_t recipient_box_sk[32], unsigned char *plain)
{
    if (sodium_init() < 0)
        return MEDIA_NOMEM;
    if (env_len < MEDIA_ENVELOPE_OVERHEAD)
        return MEDIA_AUTH;
    if (crypto_box_open_easy(plain, env + crypto_box_NONCEBYTES, env_len - crypto_box_NONCEBYTES,
                             env, sender_box_pk, recipient_box_sk) != 0) {
        sodium_memzero(plain, env_len - MEDIA_ENVELOPE_OVERHEAD);
        return MEDIA_AUTH;
    }
    return MEDIA_OK;
}

enum media_rc media_aead_seal(const void *plain, size_t len, const void *ad, size_t ad_len,
                              const uint8_t key[32], unsigned char *out)
{
    if (sodium_init() < 0)
        return MEDIA_NOMEM;
    if (len > SIZE_MAX - MEDIA_AEAD_OVERHEAD)
        return MEDIA_INVALID;
    enum { NB = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES };
    randombytes_buf(out, NB);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + NB, NULL, plain, len, ad, ad_len, NULL, out,
                                               key);
    return MEDIA_OK;
}

enum media_rc media_aead_open(const unsigned char *ct, size_t ct_len, const void *ad, size_t ad_len,
                              const uint8_t key[32], unsigned char *plain)
{
    if (sodium_init() < 0)
        return MEDIA_NOMEM;
    enum { NB = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES };
    if (ct_len < MEDIA_AEAD_OVERHEAD)
        return MEDIA_AUTH;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, NULL, NULL, ct + NB, ct_len - NB, ad,
                                                   ad_len, ct, key) != 0) {
        sodium_memzero(plain, ct_len - MEDIA_AEAD_OVERHEAD);
        return MEDIA_AUTH;
    }
    return MEDIA_OK;
}

/* ---- safety numbers ---- */

static int dev_cmp(const void *a, const void *b)
{
    const struct media_device_pub *x = *(const struct media_device_pub *const *)a;
    const struct media_device_pub *y = *(const struct media_device_pub *const *)b;
    int c = strcmp(x->device_id, y->device_id);
    if (c == 0)
        c = memcmp(x->sign_pk, y->sign_pk, 32);
    if (c == 0)
        c = memcmp(x->box_pk, y->box_pk, 32);
    return c;
}

enum media_rc media_fingerprint(const char *user, const struct media_device_pub *devs, size_t n,
                                char out[MEDIA_FINGERPRINT_DIGITS + 1])
{
    out[0] = '\0';
    if (sodium_init() < 0)
        return MEDIA_NOMEM;
    if (strlen(user) > 0xffff || n > 0xffff)
        return MEDIA_INVALID;
    /* The key material: u16 len || user || u16 count || per device in sorted order
     * (u16 len || device_id || sign_pk || box_pk). Sorting makes it independent of the order
     * the directory happens to list devices in. */
    size_t len = 2 + strlen(user) + 2;
    for (size_t i = 0; i < n; i++) {
        if (strlen(devs[i].device_id) > 0xffff)
            return MEDIA_INVALID;
        len += 2 + strlen(devs[i].device_id) + 64;
    }
    const struct media_device_pub **order = malloc(sizeof *order * (n ? n : 1));
    unsigned char *m = malloc(len), *p = m;
    if (!order || !m) {
        free(order);
        free(m);
        return MEDIA_NOMEM;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = &devs[i];
    qsort(order, n, sizeof *order, dev_cmp);
    put_str(&p, user);
    p[0] = (unsigned char)(n >> 8);
    p[1] = (unsigned char)n;
    p += 2;
    for (size_t i = 0; i < n; i++) {
        put_str(&p, order[i]->device_id);
        memcpy(p, order[i]->sign_pk, 32);
        memcpy(p + 32, order[i]->box_pk, 32);
        p += 64;
    }
    free(order);

    enum media_rc rc = media_numeric_digits("kizuna/safety/v1", m, len, 6, out);
    free(m);
    return rc;
}

enum media_rc media_numeric_digits(const char *domain, const unsigned char *m, size_t len,
                                   int groups, char *out)
{
    out[0] = '\0';
    if (groups < 1 || groups > 12)
        return MEDIA_INVALID;
    if (sodium_init() < 0)
        return MEDIA_NOMEM;
    /* As Signal's NumericFingerprintGenerator, with BLAKE2b-512 and our own version string:
     * h = H(domain || 0x00 || m), then h = H(h || m) for every further round. */
    unsigned char h[crypto_generichash_BYTES_MAX];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    crypto_generichash_update(&st, (const unsigned char *)domain, strlen(domain) + 1);
    crypto_generichash_update(&st, m, len);
    crypto_generichash_final(&st, h, sizeof h);
    for (int r = 1; r < FINGERPRINT_ROUNDS; r++) {
        crypto_generichash_init(&st, NULL, 0, sizeof h);
        crypto_generichash_update(&st, h, sizeof h);
        crypto_generichash_update(&st, m, len);
        crypto_generichash_final(&st, h, sizeof h);
    }
    /* 5-byte big-endian numbers, each mod 100000: five digits a group (12 use 60 of the 64
     * bytes). */
    for (int i = 0; i < groups; i++) {
        uint64_t v = 0;
        for (int j = 0; j < 5; j++)
            v = v << 8 | h[i * 5 + j];
        unsigned d = (unsigned)(v % 100000);
        for (int j = 4; j >= 0; j--, d /= 10)
            out[i * 5 + j] = (char)('0' + d % 10);
    }
    out[groups * 5] = '\0';
    sodium_memzero(h, sizeof h);
    return MEDIA_OK;
}

enum media_rc media_safety_number(const char *user_a, const struct media_device_pub *devs_a,
                                  size_t n_a, const char *user_b,
                                  const struct media_device_pub *devs_b, size_t n_b,
                                  char out[MEDIA_SAFETY_NUMBER_LEN + 1])
{
    out[0] = '\0';
    char a[MEDIA_FINGERPRINT_DIGITS + 1], b[MEDIA_FINGERPRINT_DIGITS + 1];
    enum media_rc rc = media_fingerprint(user_a, devs_a, n_a, a);
    if (rc == MEDIA_OK)
        rc = media_fingerprint(user_b, devs_b, n_b, b);
    if (rc != MEDIA_OK)
        return rc;
    char digits[2 * MEDIA_FINGERPRINT_DIGITS];
    bool a_first = strcmp(a, b) <= 0;
    memcpy(digits, a_first ? a : b, MEDIA_FINGERPRINT_DIGITS);
    memcpy(digits + MEDIA_FINGERPRINT_DIGITS, a_first ? b : a, MEDIA_FINGERPRINT_DIGITS);
    char *o = out;
    for (int g = 0; g < 12; g++) {
        if (g)
            *o++ = ' ';
        memcpy(o, digits + g * 5, 5);
        o += 5;
    }
    *o = '\0';
    return MEDIA_OK;
}
