/* test_e2ee_vectors.c - the end-to-end encryption formats (media/) against the fixed vectors in
 * tests/vectors/e2ee/, which were made by a separate implementation (make_vectors.py there:
 * Python's hashlib and cryptography, with HSalsa20, HChaCha20 and secretstream written out, no
 * libsodium and none of media/). Every output comes out byte for byte: device ids, signatures,
 * key-check values, device list encodings, safety numbers, padded sizes, and also envelopes,
 * photo messages and blobs, whose nonce or key media/ draws at random, sealed under a fixed
 * random source that hands out the stored ones; those must also open the stored ciphertext to
 * the stored plaintext and refuse it with one byte flipped. README.md in the vectors directory
 * lists what each file holds. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "media.h"
#include "vectors.h"

static uint64_t num(const cJSON *o, const char *key)
{
    return (uint64_t)vec_num(o, key);
}

/* Exactly n bytes of hex into out. */
static void unhex_n(const char *hex, unsigned char *out, size_t n)
{
    size_t len;
    unsigned char *b = vec_unhex(hex, &len);
    cr_assert_eq(len, n, "%s: %zu bytes, want %zu", hex, len, n);
    memcpy(out, b, n);
    free(b);
}

static void assert_hex(const unsigned char *got, size_t n, const char *want, const char *what)
{
    char *h = malloc(2 * n + 1);
    cr_assert(h);
    sodium_bin2hex(h, 2 * n + 1, got, n);
    cr_assert_str_eq(h, want, "%s", what);
    free(h);
}

/* A device's keys from a vector's key object; its id from the sign key. */
struct vkey {
    uint8_t sign_pk[32], sign_sk[64], box_pk[32], box_sk[32];
    char id[MEDIA_DEVICE_ID_LEN + 1];
};

static void vkey_of(const cJSON *k, struct vkey *out)
{
    uint8_t seed[32];
    unhex_n(vec_str(k, "sign_seed_hex"), seed, 32);
    crypto_sign_seed_keypair(out->sign_pk, out->sign_sk, seed);
    assert_hex(out->sign_pk, 32, vec_str(k, "sign_pk_hex"), "sign_pk from the seed");
    unhex_n(vec_str(k, "box_sk_hex"), out->box_sk, 32);
    unhex_n(vec_str(k, "box_pk_hex"), out->box_pk, 32);
    uint8_t pk[32];
    crypto_scalarmult_base(pk, out->box_sk);
    cr_assert_eq(memcmp(pk, out->box_pk, 32), 0, "box_pk from box_sk");
    media_device_id(out->sign_pk, out->id);
}

/* The keys of a vector file's "keys" array, looked up by device id. */
static size_t keys_of(const cJSON *j, struct vkey *k, size_t cap)
{
    size_t n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vec_item(j, "keys"))
    {
        cr_assert(n < cap);
        vkey_of(e, &k[n++]);
    }
    return n;
}

static const struct vkey *key_by_id(const struct vkey *k, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(k[i].id, id) == 0)
            return &k[i];
    cr_assert_fail("no key with id %s", id);
    return NULL;
}

/* A fixed random source, so that media/'s seal functions, which draw their nonces and keys from
 * randombytes_buf, can be given the vector's nonce (and key) and must then write the vector's
 * bytes exactly. Armed with the bytes the next draws must take; a draw that is not planned for
 * fails the test. Unarmed (libsodium's own start-up, its guard-page canary), it gives a counter
 * pattern. Each Criterion test is its own process, so this never leaks into another test. */
static struct {
    const unsigned char *p;
    size_t len;
    bool armed;
    unsigned char filler;
} fixed;

static void fixed_buf(void *const buf, const size_t size)
{
    if (!fixed.armed) {
        for (size_t i = 0; i < size; i++)
            ((unsigned char *)buf)[i] = fixed.filler++;
        return;
    }
    cr_assert_leq(size, fixed.len, "media/ drew %zu random bytes, %zu planned", size, fixed.len);
    memcpy(buf, fixed.p, size);
    fixed.p += size;
    fixed.len -= size;
}

static uint32_t fixed_random(void)
{
    uint32_t v;
    fixed_buf(&v, sizeof v);
    return v;
}

static const char *fixed_name(void)
{
    return "kizuna-test-fixed";
}

static struct randombytes_implementation fixed_impl = {
    .implementation_name = fixed_name, .random = fixed_random, .buf = fixed_buf};

static void fixed_use(void)
{
    randombytes_set_implementation(&fixed_impl);
    cr_assert_geq(sodium_init(), 0);
}

/* The next draws take exactly these n bytes; fixed_done checks they were all taken. */
static void fixed_arm(const unsigned char *p, size_t n)
{
    fixed.p = p;
    fixed.len = n;
    fixed.armed = true;
}

static void fixed_done(void)
{
    cr_assert_eq(fixed.len, 0, "%zu planned random bytes were not drawn", fixed.len);
    fixed.armed = false;
}

Test(e2ee_vectors, device_id)
{
    cJSON *j = vec_load("e2ee", "device_id.json");
    const cJSON *v;
    int n = 0;
    cJSON_ArrayForEach(v, vec_item(j, "vectors"))
    {
        uint8_t pk[32];
        char id[MEDIA_DEVICE_ID_LEN + 1];
        unhex_n(vec_str(v, "sign_pk_hex"), pk, 32);
        media_device_id(pk, id);
        cr_assert_str_eq(id, vec_str(v, "device_id"));
        cr_assert_eq(strlen(id), MEDIA_DEVICE_ID_LEN);
        n++;
    }
    cr_assert_geq(n, 6);
    cJSON_Delete(j);
}

Test(e2ee_vectors, domains_and_signatures)
{
    cJSON *j = vec_load("e2ee", "domains.json");
    struct vkey k;
    vkey_of(vec_item(j, "key"), &k);
    size_t mlen;
    unsigned char *msg = vec_unhex(vec_str(j, "message_hex"), &mlen);
    static const struct {
        const char *name, *value;
    } ours[] = {{"MEDIA_DOMAIN_DEVKEY", MEDIA_DOMAIN_DEVKEY},
                {"MEDIA_DOMAIN_KEYS", MEDIA_DOMAIN_KEYS},
                {"MEDIA_DOMAIN_PHOTO", MEDIA_DOMAIN_PHOTO},
                {"MEDIA_DOMAIN_KEYCHECK", MEDIA_DOMAIN_KEYCHECK},
                {"MEDIA_DOMAIN_DEVLIST", MEDIA_DOMAIN_DEVLIST},
                {"MEDIA_DOMAIN_POLICY", MEDIA_DOMAIN_POLICY}};
    size_t n = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, vec_item(j, "domains"))
    {
        cr_assert(n < sizeof ours / sizeof *ours);
        cr_assert_str_eq(vec_str(d, "name"), ours[n].name);
        cr_assert_str_eq(vec_str(d, "domain"), ours[n].value, "%s", ours[n].name);
        uint8_t sig[64];
        cr_assert_eq(media_sign(ours[n].value, msg, mlen, k.sign_sk, sig), MEDIA_OK);
        assert_hex(sig, 64, vec_str(d, "signature_hex"), ours[n].name);
        cr_assert(media_verify(ours[n].value, msg, mlen, k.sign_pk, sig));
        /* Under any other domain, the same signature is refused. */
        const char *other = ours[(n + 1) % (sizeof ours / sizeof *ours)].value;
        cr_assert_not(media_verify(other, msg, mlen, k.sign_pk, sig));
        sig[10] ^= 1;
        cr_assert_not(media_verify(ours[n].value, msg, mlen, k.sign_pk, sig));
        n++;
    }
    cr_assert_eq(n, sizeof ours / sizeof *ours, "every domain string has a vector");
    free(msg);
    cJSON_Delete(j);
}

Test(e2ee_vectors, devkey)
{
    cJSON *j = vec_load("e2ee", "devkey.json");
    const cJSON *v;
    int n = 0;
    cJSON_ArrayForEach(v, vec_item(j, "vectors"))
    {
        struct vkey k;
        vkey_of(vec_item(v, "key"), &k);
        cr_assert_str_eq(k.id, vec_str(v, "device_id"));
        struct media_device_keys dk;
        memcpy(dk.sign_pk, k.sign_pk, 32);
        memcpy(dk.sign_sk, k.sign_sk, 64);
        memcpy(dk.box_pk, k.box_pk, 32);
        memcpy(dk.box_sk, k.box_sk, 32);
        uint8_t sig[64];
        cr_assert_eq(media_devkey_sign(vec_str(v, "user"), k.id, &dk, sig), MEDIA_OK);
        assert_hex(sig, 64, vec_str(v, "signature_hex"), "device self-signature");
        cr_assert(media_devkey_verify(vec_str(v, "user"), k.id, k.sign_pk, k.box_pk, sig));
        cr_assert_not(media_devkey_verify("someone", k.id, k.sign_pk, k.box_pk, sig));
        sig[63] ^= 0x40;
        cr_assert_not(media_devkey_verify(vec_str(v, "user"), k.id, k.sign_pk, k.box_pk, sig));
        media_device_keys_wipe(&dk);
        n++;
    }
    cr_assert_geq(n, 2);
    cJSON_Delete(j);
}

Test(e2ee_vectors, policy)
{
    cJSON *j = vec_load("e2ee", "policy.json");
    const cJSON *v;
    int n = 0;
    cJSON_ArrayForEach(v, vec_item(j, "vectors"))
    {
        struct vkey k;
        vkey_of(vec_item(v, "key"), &k);
        uint8_t sig[64];
        cr_assert_eq(media_policy_sign(vec_str(v, "login"), vec_str(v, "history"), k.sign_sk, sig),
                     MEDIA_OK);
        assert_hex(sig, 64, vec_str(v, "signature_hex"), "history policy signature");
        cr_assert(media_policy_verify(vec_str(v, "login"), vec_str(v, "history"), k.sign_pk, sig));
        cr_assert_not(media_policy_verify(vec_str(v, "login"), "other", k.sign_pk, sig));
        sig[5] ^= 2;
        cr_assert_not(
            media_policy_verify(vec_str(v, "login"), vec_str(v, "history"), k.sign_pk, sig));
        n++;
    }
    cr_assert_geq(n, 2);
    cJSON_Delete(j);
}

Test(e2ee_vectors, envelope)
{
    fixed_use();
    cJSON *j = vec_load("e2ee", "envelope.json");
    struct vkey s, r;
    vkey_of(vec_item(j, "sender"), &s);
    vkey_of(vec_item(j, "recipient"), &r);
    const cJSON *v;
    int n = 0;
    cJSON_ArrayForEach(v, vec_item(j, "vectors"))
    {
        size_t plen, elen;
        unsigned char *plain = vec_unhex(vec_str(v, "plain_hex"), &plen);
        unsigned char *env = vec_unhex(vec_str(v, "envelope_hex"), &elen);
        cr_assert_eq(elen, plen + MEDIA_ENVELOPE_OVERHEAD);
        unsigned char *got = malloc(plen + 1);
        cr_assert(got);
        cr_assert_eq(media_envelope_open(env, elen, s.box_pk, r.box_sk, got), MEDIA_OK);
        cr_assert_eq(memcmp(got, plain, plen), 0, "envelope %d opens to its plaintext", n);
        /* Opened from the other side: the shared key is symmetric. */
        cr_assert_eq(media_envelope_open(env, elen, r.box_pk, s.box_sk, got), MEDIA_OK);
        /* One flipped byte anywhere (nonce, tag, body) is refused. */
        size_t at[] = {0, 23, 24, 39, elen - 1};
        for (size_t i = 0; i < sizeof at / sizeof *at; i++) {
            env[at[i]] ^= 0x01;
            cr_assert_eq(media_envelope_open(env, elen, s.box_pk, r.box_sk, got), MEDIA_AUTH,
                         "envelope %d with byte %zu flipped", n, at[i]);
            env[at[i]] ^= 0x01;
        }
        /* Sealing with the vector's nonce gives the vector's bytes. */
        unsigned char nonce[24], *fresh = malloc(elen);
        cr_assert(fresh);
        unhex_n(vec_str(v, "nonce_hex"), nonce, sizeof nonce);
        fixed_arm(nonce, sizeof nonce);
        cr_assert_eq(media_envelope_seal(plain, plen, s.box_sk, r.box_pk, fresh), MEDIA_OK);
        fixed_done();
        assert_hex(fresh, elen, vec_str(v, "envelope_hex"), "envelope sealed with the fixed nonce");
        free(fresh);
        free(got);
        free(env);
        free(plain);
        n++;
    }
    cr_assert_geq(n, 3);
    cJSON_Delete(j);
}

static void photo_ad_of(const cJSON *a, struct media_photo_ad *ad)
{
    ad->room = vec_str(a, "room");
    ad->epoch = vec_str(a, "epoch");
    ad->device = vec_str(a, "device");
    ad->seq = num(a, "seq");
    const cJSON *ts = vec_item(a, "ts");
    cr_assert(cJSON_IsNumber(ts));
    ad->ts = (int64_t)ts->valuedouble;
}

Test(e2ee_vectors, photo_v2)
{
    fixed_use();
    cJSON *j = vec_load("e2ee", "photo.json");
    uint8_t key[MEDIA_EPOCH_KEYBYTES];
    unhex_n(vec_str(j, "key_hex"), key, sizeof key);
    const cJSON *v;
    int n = 0;
    cJSON_ArrayForEach(v, vec_item(j, "vectors"))
    {
        struct media_photo_ad ad;
        photo_ad_of(vec_item(v, "ad"), &ad);
        size_t mlen, clen;
        unsigned char *msg = vec_unhex(vec_str(v, "message_hex"), &mlen);
        unsigned char *ct = vec_unhex(vec_str(v, "sealed_hex"), &clen);
        cr_assert_eq(media_photo_padded_len(mlen), num(v, "padded_len"));
        cr_assert_eq(clen, num(v, "padded_len") + MEDIA_AEAD_OVERHEAD);
        char *got = NULL;
        size_t glen = 0;
        cr_assert_eq(media_photo_open(&ad, ct, clen, key, &got, &glen), MEDIA_OK, "photo %d", n);
        cr_assert_eq(glen, mlen);
        cr_assert_eq(memcmp(got, msg, mlen), 0, "photo %d opens to its message", n);
        free(got);
        /* One flipped byte: nonce, tag, the length prefix, the padding. */
        size_t at[] = {0, 24, clen - 17, clen - 1};
        for (size_t i = 0; i < sizeof at / sizeof *at; i++) {
            ct[at[i]] ^= 0x80;
            cr_assert_eq(media_photo_open(&ad, ct, clen, key, &got, &glen), MEDIA_AUTH,
                         "photo %d with byte %zu flipped", n, at[i]);
            cr_assert_null(got);
            ct[at[i]] ^= 0x80;
        }
        /* Any other additional data: another counter, time, room. */
        struct media_photo_ad moved = ad;
        moved.seq++;
        cr_assert_eq(media_photo_open(&moved, ct, clen, key, &got, &glen), MEDIA_AUTH);
        moved = ad;
        moved.ts++;
        cr_assert_eq(media_photo_open(&moved, ct, clen, key, &got, &glen), MEDIA_AUTH);
        moved = ad;
        moved.room = "another";
        cr_assert_eq(media_photo_open(&moved, ct, clen, key, &got, &glen), MEDIA_AUTH);
        /* Sealing with the vector's nonce gives the vector's bytes, padding included. */
        unsigned char nonce[24], *fresh = NULL;
        size_t flen = 0;
        unhex_n(vec_str(v, "nonce_hex"), nonce, sizeof nonce);
        fixed_arm(nonce, sizeof nonce);
        cr_assert_eq(media_photo_seal(&ad, msg, mlen, key, &fresh, &flen), MEDIA_OK);
        fixed_done();
        cr_assert_eq(flen, clen);
        assert_hex(fresh, flen, vec_str(v, "sealed_hex"), "photo sealed with the fixed nonce");
        free(fresh);
        free(ct);
        free(msg);
        n++;
    }
    cr_assert_geq(n, 3);
    int refused = 0;
    cJSON_ArrayForEach(v, vec_item(j, "refused"))
    {
        struct media_photo_ad ad;
        photo_ad_of(vec_item(v, "ad"), &ad);
        size_t clen;
        unsigned char *ct = vec_unhex(vec_str(v, "sealed_hex"), &clen);
        char *got = NULL;
        size_t glen;
        cr_assert_eq(media_photo_open(&ad, ct, clen, key, &got, &glen), MEDIA_AUTH, "%s",
                     vec_str(v, "why"));
        free(ct);
        refused++;
    }
    cr_assert_geq(refused, 2);
    cJSON_Delete(j);
}

Test(e2ee_vectors, keycheck)
{
    cJSON *j = vec_load("e2ee", "keycheck.json");
    const cJSON *v;
    int n = 0;
    cJSON_ArrayForEach(v, vec_item(j, "vectors"))
    {
        uint8_t key[MEDIA_EPOCH_KEYBYTES], check[MEDIA_EPOCH_CHECKBYTES];
        unhex_n(vec_str(v, "key_hex"), key, sizeof key);
        cr_assert_eq(media_epoch_check(vec_str(v, "room"), vec_str(v, "owner"), vec_str(v, "epoch"),
                                       key, check),
                     MEDIA_OK);
        assert_hex(check, sizeof check, vec_str(v, "check_hex"), "key-check value");
        n++;
    }
    cr_assert_geq(n, 3);
    cJSON_Delete(j);
}

Test(e2ee_vectors, devlist)
{
    cJSON *j = vec_load("e2ee", "devlist.json");
    struct vkey keys[8];
    size_t nk = keys_of(j, keys, 8);
    static struct media_devlist lists[8];
    static unsigned char enc[8][MEDIA_DEVLIST_ENCODED_MAX];
    size_t enc_len[8];
    int n = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, vec_item(j, "lists"))
    {
        cr_assert(n < 8);
        struct media_devlist *l = &lists[n];
        memset(l, 0, sizeof *l);
        snprintf(l->login, sizeof l->login, "%s", vec_str(v, "login"));
        l->seq = num(v, "seq");
        unhex_n(vec_str(v, "prev_hex"), l->prev, 32);
        const cJSON *d;
        cJSON_ArrayForEach(d, vec_item(v, "devices"))
        {
            const struct vkey *k = key_by_id(keys, nk, vec_str(d, "id"));
            memcpy(l->dev[l->n].sign_pk, k->sign_pk, 32);
            memcpy(l->dev[l->n].box_pk, k->box_pk, 32);
            l->n++;
        }
        cr_assert_eq(media_devlist_encode(l, enc[n], sizeof enc[n], &enc_len[n]), MEDIA_OK);
        assert_hex(enc[n], enc_len[n], vec_str(v, "encoding_hex"), "device list encoding");
        assert_hex(l->hash, 32, vec_str(v, "hash_hex"), "device list hash");
        struct media_devlist dec;
        cr_assert_eq(media_devlist_decode(enc[n], enc_len[n], &dec), MEDIA_OK);
        cr_assert_str_eq(dec.login, l->login);
        cr_assert_eq(dec.seq, l->seq);
        cr_assert_eq(dec.n, l->n);
        for (size_t i = 0; i < dec.n; i++)
            cr_assert_str_eq(dec.dev[i].id, l->dev[i].id);
        cr_assert_eq(memcmp(dec.hash, l->hash, 32), 0);
        cr_assert_eq(media_devlist_is_root(&dec), sodium_is_zero(l->prev, 32) == 1);

        const char *by = vec_str(v, "signer");
        const struct vkey *signer = key_by_id(keys, nk, by);
        uint8_t sig[64];
        cr_assert_eq(media_devlist_sign(enc[n], enc_len[n], signer->sign_sk, sig), MEDIA_OK);
        assert_hex(sig, 64, vec_str(v, "signature_hex"), "device list signature");

        const cJSON *f = vec_item(v, "follows");
        const struct media_devlist *prev = cJSON_IsNull(f) ? NULL : &lists[(int)f->valuedouble];
        cr_assert_eq(media_devlist_follows(prev, &dec, enc[n], enc_len[n], by, sig), MEDIA_OK,
                     "list %d follows", n);
        uint8_t bad[64];
        memcpy(bad, sig, 64);
        bad[0] ^= 1;
        cr_assert_eq(media_devlist_follows(prev, &dec, enc[n], enc_len[n], by, bad), MEDIA_AUTH);
        n++;
    }
    cr_assert_geq(n, 3);
    int bad = 0;
    cJSON_ArrayForEach(v, vec_item(j, "malformed"))
    {
        size_t len;
        unsigned char *b = vec_unhex(vec_str(v, "encoding_hex"), &len);
        struct media_devlist dec;
        cr_assert_eq(media_devlist_decode(b, len, &dec), MEDIA_FORMAT, "%s", vec_str(v, "why"));
        free(b);
        bad++;
    }
    cr_assert_geq(bad, 9);
    cJSON_Delete(j);
}

static size_t devs_of(const cJSON *ids, const struct vkey *k, size_t nk,
                      struct media_device_pub *out)
{
    size_t n = 0;
    const cJSON *id;
    cJSON_ArrayForEach(id, ids)
    {
        const struct vkey *key = key_by_id(k, nk, cJSON_GetStringValue(id));
        out[n].device_id = key->id;
        memcpy(out[n].sign_pk, key->sign_pk, 32);
        memcpy(out[n].box_pk, key->box_pk, 32);
        n++;
    }
    return n;
}

Test(e2ee_vectors, safety_number, .timeout = 60)
{
    cJSON *j = vec_load("e2ee", "safety.json");
    struct vkey keys[8];
    size_t nk = keys_of(j, keys, 8);
    const cJSON *v;
    int n = 0;
    cJSON_ArrayForEach(v, vec_item(j, "vectors"))
    {
        struct media_device_pub a[8], b[8];
        size_t na = devs_of(vec_item(v, "devices_a"), keys, nk, a);
        size_t nb = devs_of(vec_item(v, "devices_b"), keys, nk, b);
        char fa[MEDIA_FINGERPRINT_DIGITS + 1], fb[MEDIA_FINGERPRINT_DIGITS + 1];
        cr_assert_eq(media_fingerprint(vec_str(v, "user_a"), a, na, fa), MEDIA_OK);
        cr_assert_eq(media_fingerprint(vec_str(v, "user_b"), b, nb, fb), MEDIA_OK);
        cr_assert_str_eq(fa, vec_str(v, "fingerprint_a"));
        cr_assert_str_eq(fb, vec_str(v, "fingerprint_b"));
        char sn[MEDIA_SAFETY_NUMBER_LEN + 1];
        cr_assert_eq(
            media_safety_number(vec_str(v, "user_a"), a, na, vec_str(v, "user_b"), b, nb, sn),
            MEDIA_OK);
        cr_assert_str_eq(sn, vec_str(v, "safety_number"));
        cr_assert_eq(
            media_safety_number(vec_str(v, "user_b"), b, nb, vec_str(v, "user_a"), a, na, sn),
            MEDIA_OK);
        cr_assert_str_eq(sn, vec_str(v, "safety_number"), "the same from both sides");
        n++;
    }
    cr_assert_geq(n, 3);
    cJSON_Delete(j);
}

struct mem {
    unsigned char *p;
    size_t len, pos, cap;
};

static int mem_write(void *ctx, const void *buf, size_t len)
{
    struct mem *m = ctx;
    if (m->len + len > m->cap)
        return -1;
    memcpy(m->p + m->len, buf, len);
    m->len += len;
    return 0;
}

static long mem_read(void *ctx, void *buf, size_t len)
{
    struct mem *m = ctx;
    size_t n = m->len - m->pos < len ? m->len - m->pos : len;
    memcpy(buf, m->p + m->pos, n);
    m->pos += n;
    return (long)n;
}

static enum media_rc decrypt(unsigned char *blob, size_t len, const uint8_t key[32],
                             const uint8_t *hash, uint64_t plain_len, struct mem *out)
{
    struct mem in = {blob, len, 0, len};
    out->len = 0;
    return media_blob_decrypt(mem_read, &in, mem_write, out, key, hash, plain_len, NULL);
}

Test(e2ee_vectors, blob)
{
    fixed_use();
    cJSON *j = vec_load("e2ee", "blob.json");
    const cJSON *v;
    cJSON_ArrayForEach(v, vec_item(j, "padded_len"))
        cr_assert_eq(media_blob_padded_len(num(v, "n")), num(v, "padded"), "padded length of %llu",
                     (unsigned long long)num(v, "n"));
    int n = 0;
    cJSON_ArrayForEach(v, vec_item(j, "vectors"))
    {
        uint8_t key[32], hash[32];
        unhex_n(vec_str(v, "key_hex"), key, 32);
        unhex_n(vec_str(v, "blob_id_hex"), hash, 32);
        const char *b64 = vec_str(v, "blob_b64");
        size_t cap = strlen(b64), blen;
        unsigned char *blob = malloc(cap);
        cr_assert(blob);
        cr_assert_eq(sodium_base642bin(blob, cap, b64, strlen(b64), NULL, &blen, NULL,
                                       sodium_base64_VARIANT_ORIGINAL),
                     0);
        cr_assert_eq(blen, num(v, "blob_len"));
        uint64_t plain_len = num(v, "plain_len"), padded = num(v, "padded_len");
        cr_assert_eq(media_blob_padded_len(plain_len), padded);
        cr_assert_eq(memcmp(blob, "KZB1\x01", 5), 0);
        uint8_t id[32];
        crypto_generichash(id, 32, blob, blen, NULL, 0);
        cr_assert_eq(memcmp(id, hash, 32), 0, "the blob id is BLAKE2b-256 of the blob");

        unsigned char *plain;
        if (cJSON_GetObjectItemCaseSensitive(v, "plain_hex")) {
            size_t pl;
            plain = vec_unhex(vec_str(v, "plain_hex"), &pl);
            cr_assert_eq(pl, plain_len);
        } else {
            cr_assert_str_eq(vec_str(v, "plain_pattern"), "(7*j+3)%251");
            plain = malloc(plain_len + 1);
            cr_assert(plain);
            for (uint64_t i = 0; i < plain_len; i++)
                plain[i] = (unsigned char)((7 * i + 3) % 251);
        }
        /* Encrypting with the vector's key and secretstream header gives the vector's blob. */
        unsigned char kh[32 + 24];
        memcpy(kh, key, 32);
        unhex_n(vec_str(v, "header_hex"), kh + 32, 24);
        struct mem enc = {malloc(blen + 1), 0, 0, blen + 1};
        cr_assert(enc.p);
        struct media_blob_info info;
        fixed_arm(kh, sizeof kh);
        cr_assert_eq(media_blob_encrypt(plain, plain_len, mem_write, &enc, &info), MEDIA_OK);
        fixed_done();
        cr_assert_eq(enc.len, blen);
        cr_assert_eq(memcmp(enc.p, blob, blen), 0, "blob %d encrypted with the fixed key", n);
        cr_assert_eq(memcmp(info.hash, hash, 32), 0);
        cr_assert_eq(memcmp(info.key, key, 32), 0);
        cr_assert_eq(info.blob_len, blen);
        cr_assert_eq(info.plain_len, plain_len);
        cr_assert_eq(info.padded_len, padded);
        free(enc.p);

        struct mem out = {malloc(padded + 1), 0, 0, padded + 1};
        cr_assert(out.p);
        enum media_rc rc = decrypt(blob, blen, key, hash, plain_len, &out);
        cr_assert_eq(rc, MEDIA_OK, "blob %d: %s", n, media_rc_name(rc));
        cr_assert_eq(out.len, plain_len);
        cr_assert_eq(memcmp(out.p, plain, plain_len), 0, "blob %d decrypts to its plaintext", n);
        /* Length unknown: the padding comes out too, all zero. */
        cr_assert_eq(decrypt(blob, blen, key, hash, MEDIA_BLOB_LEN_UNKNOWN, &out), MEDIA_OK);
        cr_assert_eq(out.len, padded);
        cr_assert(padded == plain_len || sodium_is_zero(out.p + plain_len, padded - plain_len));
        /* One flipped byte in the header fields, the secretstream header, a chunk's body and
         * the last tag: refused every time, whether or not the id is checked. */
        size_t at[] = {9 + 7, 17, MEDIA_BLOB_HEADER + 1, blen - 1};
        for (size_t i = 0; i < sizeof at / sizeof *at; i++) {
            blob[at[i]] ^= 0x04;
            cr_assert_neq(decrypt(blob, blen, key, NULL, MEDIA_BLOB_LEN_UNKNOWN, &out), MEDIA_OK,
                          "blob %d with byte %zu flipped", n, at[i]);
            cr_assert_neq(decrypt(blob, blen, key, hash, plain_len, &out), MEDIA_OK);
            blob[at[i]] ^= 0x04;
        }
        blob[MEDIA_BLOB_HEADER + 1] ^= 0x04;
        cr_assert_eq(decrypt(blob, blen, key, NULL, MEDIA_BLOB_LEN_UNKNOWN, &out),
                     MEDIA_BLOB_TAMPERED);
        blob[MEDIA_BLOB_HEADER + 1] ^= 0x04;
        /* The wrong key. */
        key[0] ^= 1;
        cr_assert_eq(decrypt(blob, blen, key, NULL, MEDIA_BLOB_LEN_UNKNOWN, &out),
                     MEDIA_BLOB_TAMPERED);
        free(out.p);
        free(plain);
        free(blob);
        n++;
    }
    cr_assert_geq(n, 3);
    cJSON_Delete(j);
}
