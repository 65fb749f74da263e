/* webpush.c - Web Push's cryptography (webpush.h): RFC 8291 encryption, RFC 8292 VAPID
 * signatures, P-256 keys and the checks on what a browser hands over when it subscribes.
 * OpenSSL's EVP does the curve and cipher work: libwebsockets already links it into kizunad for
 * TLS, so this adds no library, and libsodium (used everywhere else) has neither P-256 nor
 * AES-128-GCM on machines without AES-NI, both of which Web Push requires. */
#include "webpush.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A P-256 EVP key from raw bytes: pub alone (a peer's), or priv with its pub. NULL if either
 * is not a valid key. */
static EVP_PKEY *pkey_from_raw(const uint8_t *priv, const uint8_t pub[WP_PUB_LEN])
{
    OSSL_PARAM params[4];
    int n = 0;
    BIGNUM *bn = NULL;
    unsigned char *privle = NULL;
    params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
    params[n++] =
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pub, WP_PUB_LEN);
    unsigned char le[WP_PRIV_LEN];
    if (priv) {
        /* OSSL_PARAM integers are native-endian: the scalar goes through a BIGNUM. */
        bn = BN_bin2bn(priv, WP_PRIV_LEN, NULL);
        if (!bn || BN_bn2nativepad(bn, le, sizeof le) < 0) {
            BN_free(bn);
            return NULL;
        }
        privle = le;
        params[n++] = OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_PRIV_KEY, privle, sizeof le);
    }
    params[n] = OSSL_PARAM_construct_end();
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &key, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) <= 0)
        key = NULL;
    EVP_PKEY_CTX_free(ctx);
    BN_free(bn);
    sodium_memzero(le, sizeof le);
    if (key) {
        /* fromdata trusts the bytes: check that the point is on the curve (and, with a private
         * key, that it is pub's). */
        EVP_PKEY_CTX *chk = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
        int ok = chk && (priv ? EVP_PKEY_pairwise_check(chk) : EVP_PKEY_public_check(chk)) == 1;
        EVP_PKEY_CTX_free(chk);
        if (!ok) {
            EVP_PKEY_free(key);
            key = NULL;
        }
    }
    return key;
}

static int pkey_to_raw(EVP_PKEY *key, uint8_t *priv, uint8_t pub[WP_PUB_LEN])
{
    size_t len = 0;
    if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pub, WP_PUB_LEN, &len) != 1 ||
        len != WP_PUB_LEN || pub[0] != 0x04)
        return -1;
    if (priv) {
        BIGNUM *bn = NULL;
        int rc = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &bn) == 1 &&
                         BN_bn2binpad(bn, priv, WP_PRIV_LEN) == WP_PRIV_LEN
                     ? 0
                     : -1;
        BN_clear_free(bn);
        return rc;
    }
    return 0;
}

/* The public point of a private scalar (priv * G), uncompressed. */
static int pub_from_priv(const uint8_t priv[WP_PRIV_LEN], uint8_t pub[WP_PUB_LEN])
{
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT *pt = g ? EC_POINT_new(g) : NULL;
    BIGNUM *d = BN_bin2bn(priv, WP_PRIV_LEN, NULL);
    int rc = pt && d && !BN_is_zero(d) && EC_POINT_mul(g, pt, d, NULL, NULL, NULL) == 1 &&
                     EC_POINT_point2oct(g, pt, POINT_CONVERSION_UNCOMPRESSED, pub, WP_PUB_LEN,
                                        NULL) == WP_PUB_LEN
                 ? 0
                 : -1;
    BN_clear_free(d);
    EC_POINT_free(pt);
    EC_GROUP_free(g);
    return rc;
}

int wp_keypair_new(uint8_t priv[WP_PRIV_LEN], uint8_t pub[WP_PUB_LEN])
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!key)
        return -1;
    /* Uncompressed points: what browsers and the VAPID header's k expect. */
    EVP_PKEY_set_utf8_string_param(key, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "uncompressed");
    int rc = pkey_to_raw(key, priv, pub);
    EVP_PKEY_free(key);
    return rc;
}

bool wp_pub_valid(const uint8_t pub[WP_PUB_LEN])
{
    if (pub[0] != 0x04)
        return false;
    EVP_PKEY *key = pkey_from_raw(NULL, pub);
    EVP_PKEY_free(key);
    return key != NULL;
}

/* HKDF-SHA256 (RFC 5869): extract with salt over ikm, then expand with info to outlen. */
static int hkdf(const uint8_t *salt, size_t saltlen, const uint8_t *ikm, size_t ikmlen,
                const uint8_t *info, size_t infolen, uint8_t *out, size_t outlen)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf);
    if (!ctx)
        return -1;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, saltlen),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikmlen),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, infolen),
        OSSL_PARAM_construct_end()};
    int rc = EVP_KDF_derive(ctx, out, outlen, params) == 1 ? 0 : -1;
    EVP_KDF_CTX_free(ctx);
    return rc;
}

static int ecdh(EVP_PKEY *mine, EVP_PKEY *theirs, uint8_t secret[32])
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, mine, NULL);
    size_t len = 32;
    int rc = ctx && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, theirs) == 1 &&
                     EVP_PKEY_derive(ctx, secret, &len) == 1 && len == 32
                 ? 0
                 : -1;
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

static int aes128gcm(const uint8_t key[16], const uint8_t nonce[12], const uint8_t *in, size_t len,
                     uint8_t *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0;
    int rc = ctx && EVP_EncryptInit_ex(ctx, EVP_aes_128_gcm(), NULL, key, nonce) == 1 &&
                     EVP_EncryptUpdate(ctx, out, &n, in, (int)len) == 1 &&
                     EVP_EncryptFinal_ex(ctx, out + n, &fin) == 1 &&
                     EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out + n + fin) == 1
                 ? 0
                 : -1;
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int wp_encrypt(const uint8_t ua_pub[WP_PUB_LEN], const uint8_t auth[WP_AUTH_LEN],
               const uint8_t *plain, size_t len, const uint8_t *as_priv, const uint8_t *salt,
               uint8_t *out, size_t *outlen)
{
    /* One record holds it all: rs must exceed the record (plaintext, delimiter, tag). */
    if (len > 3993)
        return -1;
    int rc = -1;
    uint8_t as_pub[WP_PUB_LEN], fresh_salt[WP_SALT_LEN];
    uint8_t secret[32], prk_key_ikm[32], cek[16], nonce[12];
    uint8_t info[14 + 2 * WP_PUB_LEN];
    uint8_t *rec = NULL;
    EVP_PKEY *ua = NULL, *as = NULL;
    if (!salt) {
        randombytes_buf(fresh_salt, sizeof fresh_salt);
        salt = fresh_salt;
    }
    if (!(ua = pkey_from_raw(NULL, ua_pub)))
        goto out;
    if (!as_priv) {
        /* The usual case: a fresh key used as generated, not exported and imported again
         * (that costs a pairwise check per push). */
        if (!(as = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")))
            goto out;
        EVP_PKEY_set_utf8_string_param(as, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                       "uncompressed");
        if (pkey_to_raw(as, NULL, as_pub))
            goto out;
    } else if (pub_from_priv(as_priv, as_pub) || !(as = pkey_from_raw(as_priv, as_pub))) {
        goto out;
    }
    if (ecdh(as, ua, secret))
        goto out;
    /* RFC 8291 section 3.4: IKM from the shared secret keyed by the auth secret, bound to both
     * public keys; then CEK and nonce from IKM under the salt (RFC 8188). */
    memcpy(info, "WebPush: info", 14); /* its NUL included */
    memcpy(info + 14, ua_pub, WP_PUB_LEN);
    memcpy(info + 14 + WP_PUB_LEN, as_pub, WP_PUB_LEN);
    static const uint8_t cek_info[] = "Content-Encoding: aes128gcm";
    static const uint8_t nonce_info[] = "Content-Encoding: nonce";
    if (hkdf(auth, WP_AUTH_LEN, secret, sizeof secret, info, sizeof info, prk_key_ikm, 32) ||
        hkdf(salt, WP_SALT_LEN, prk_key_ikm, 32, cek_info, sizeof cek_info, cek, sizeof cek) ||
        hkdf(salt, WP_SALT_LEN, prk_key_ikm, 32, nonce_info, sizeof nonce_info, nonce,
             sizeof nonce))
        goto out;
    /* Header: salt, record size (4096, big-endian), key id length, key id (the sender's key). */
    uint8_t *p = out;
    memcpy(p, salt, WP_SALT_LEN);
    p += WP_SALT_LEN;
    *p++ = 0x00;
    *p++ = 0x00;
    *p++ = 0x10;
    *p++ = 0x00;
    *p++ = WP_PUB_LEN;
    memcpy(p, as_pub, WP_PUB_LEN);
    p += WP_PUB_LEN;
    /* The only (so last) record: the plaintext and the delimiter 0x02, no padding. */
    if (!(rec = malloc(len + 1)))
        goto out;
    memcpy(rec, plain, len);
    rec[len] = 0x02;
    if (aes128gcm(cek, nonce, rec, len + 1, p))
        goto out;
    *outlen = (size_t)(p - out) + len + 1 + 16;
    rc = 0;
out:
    free(rec);
    EVP_PKEY_free(ua);
    EVP_PKEY_free(as);
    sodium_memzero(secret, sizeof secret);
    sodium_memzero(prk_key_ikm, sizeof prk_key_ikm);
    sodium_memzero(cek, sizeof cek);
    return rc;
}

void wp_b64u_encode(const uint8_t *in, size_t n, char *out, size_t outlen)
{
    sodium_bin2base64(out, outlen, in, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int wp_b64u_decode(const char *s, uint8_t *out, size_t want)
{
    size_t n = 0;
    const char *end = NULL;
    size_t len = strlen(s);
    while (len && s[len - 1] == '=')
        len--;
    if (sodium_base642bin(out, want, s, len, NULL, &n, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        n != want || end != s + len)
        return -1;
    return 0;
}

/* ES256 over msg with key: the 64-byte r || s JWS wants (OpenSSL gives DER). key is only read,
 * so threads may share it: each signs with an EVP_MD_CTX of its own (openssl-threads(7)). */
static int es256_sign(EVP_PKEY *key, const char *msg, size_t len, uint8_t sig[64])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char der[80];
    size_t derlen = sizeof der;
    int rc = -1;
    if (key && md && EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, key, NULL) == 1 &&
        EVP_DigestSign(md, der, &derlen, (const unsigned char *)msg, len) == 1) {
        const unsigned char *p = der;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
        if (es && BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32) == 32 &&
            BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32) == 32)
            rc = 0;
        ECDSA_SIG_free(es);
    }
    EVP_MD_CTX_free(md);
    return rc;
}

/* Whether s may sit in a JSON string as is (the claims are written by hand). */
static bool json_plain(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == '"' || *s == '\\')
            return false;
    return true;
}

/* wp_vapid_header with the key already imported. */
static int vapid_header(EVP_PKEY *key, const uint8_t pub[WP_PUB_LEN], const char *aud,
                        int64_t exp_s, const char *sub, char *out, size_t outlen)
{
    if (strlen(aud) > WP_AUD_MAX || strlen(sub) > WP_SUB_MAX || !json_plain(aud) ||
        !json_plain(sub) || outlen < WP_AUTH_HEADER_MAX)
        return -1;
    static const char head[] = "{\"typ\":\"JWT\",\"alg\":\"ES256\"}";
    char claims[WP_AUD_MAX + WP_SUB_MAX + 64];
    snprintf(claims, sizeof claims, "{\"aud\":\"%s\",\"exp\":%lld,\"sub\":\"%s\"}", aud,
             (long long)exp_s, sub);
    /* signing input: b64u(header) "." b64u(claims) */
    char input[1024];
    size_t hl =
        sodium_base64_ENCODED_LEN(sizeof head - 1, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    size_t cl = sodium_base64_ENCODED_LEN(strlen(claims), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if (hl + cl + 1 > sizeof input)
        return -1;
    wp_b64u_encode((const uint8_t *)head, sizeof head - 1, input, hl);
    size_t n = strlen(input);
    input[n++] = '.';
    wp_b64u_encode((const uint8_t *)claims, strlen(claims), input + n, sizeof input - n);
    uint8_t sig[64];
    if (es256_sign(key, input, strlen(input), sig))
        return -1;
    char sig64[100], key64[100];
    wp_b64u_encode(sig, sizeof sig, sig64, sizeof sig64);
    wp_b64u_encode(pub, WP_PUB_LEN, key64, sizeof key64);
    int w = snprintf(out, outlen, "vapid t=%s.%s, k=%s", input, sig64, key64);
    return w > 0 && (size_t)w < outlen ? 0 : -1;
}

int wp_vapid_header(const uint8_t priv[WP_PRIV_LEN], const uint8_t pub[WP_PUB_LEN], const char *aud,
                    int64_t exp_s, const char *sub, char *out, size_t outlen)
{
    EVP_PKEY *key = pkey_from_raw(priv, pub);
    int rc = key ? vapid_header(key, pub, aud, exp_s, sub, out, outlen) : -1;
    EVP_PKEY_free(key);
    return rc;
}

/* One audience's header, as last signed. */
struct vapid_slot {
    int64_t made_s; /* 0: empty */
    char aud[WP_AUD_MAX + 1], sub[WP_SUB_MAX + 1];
    char header[WP_AUTH_HEADER_MAX];
};

struct wp_vapid {
    EVP_PKEY *key;
    uint8_t pub[WP_PUB_LEN];
    pthread_mutex_t mu;
    struct vapid_slot slot[WP_VAPID_SLOTS];
};

struct wp_vapid *wp_vapid_new(const uint8_t priv[WP_PRIV_LEN], const uint8_t pub[WP_PUB_LEN])
{
    struct wp_vapid *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    if (!(v->key = pkey_from_raw(priv, pub))) {
        free(v);
        return NULL;
    }
    memcpy(v->pub, pub, WP_PUB_LEN);
    pthread_mutex_init(&v->mu, NULL);
    return v;
}

void wp_vapid_free(struct wp_vapid *v)
{
    if (!v)
        return;
    EVP_PKEY_free(v->key);
    pthread_mutex_destroy(&v->mu);
    free(v);
}

/* The slot holding aud and sub's header if it may still be handed out at now_s, else NULL. */
static struct vapid_slot *vapid_find(struct wp_vapid *v, const char *aud, const char *sub,
                                     int64_t now_s)
{
    for (size_t i = 0; i < WP_VAPID_SLOTS; i++) {
        struct vapid_slot *e = &v->slot[i];
        /* A clock set back makes a header look young: it is signed again instead. */
        if (e->made_s && now_s >= e->made_s && now_s < e->made_s + WP_VAPID_REUSE_S &&
            strcmp(e->aud, aud) == 0 && strcmp(e->sub, sub) == 0)
            return e;
    }
    return NULL;
}

int wp_vapid_get(struct wp_vapid *v, const char *aud, const char *sub, int64_t now_s, char *out,
                 size_t outlen, bool *signed_now)
{
    *signed_now = false;
    if (outlen < WP_AUTH_HEADER_MAX)
        return -1;
    pthread_mutex_lock(&v->mu);
    struct vapid_slot *e = vapid_find(v, aud, sub, now_s);
    if (e)
        snprintf(out, outlen, "%s", e->header);
    pthread_mutex_unlock(&v->mu);
    if (e)
        return 0;
    /* Signed outside the lock: workers posting to other services do not wait for it. Two
     * workers missing at once for one audience both sign; the later one's header is kept. */
    if (vapid_header(v->key, v->pub, aud, now_s + WP_VAPID_EXP_S, sub, out, outlen) != 0)
        return -1;
    *signed_now = true;
    pthread_mutex_lock(&v->mu);
    struct vapid_slot *put = NULL;
    for (size_t i = 0; i < WP_VAPID_SLOTS && !put; i++)
        if (strcmp(v->slot[i].aud, aud) == 0 && strcmp(v->slot[i].sub, sub) == 0)
            put = &v->slot[i];
    for (size_t i = 0; i < WP_VAPID_SLOTS && !put; i++)
        if (!v->slot[i].made_s)
            put = &v->slot[i];
    /* Full: the oldest goes (a server posts to a handful of push services, not sixteen). */
    if (!put) {
        put = &v->slot[0];
        for (size_t i = 1; i < WP_VAPID_SLOTS; i++)
            if (v->slot[i].made_s < put->made_s)
                put = &v->slot[i];
    }
    put->made_s = now_s;
    snprintf(put->aud, sizeof put->aud, "%s", aud);
    snprintf(put->sub, sizeof put->sub, "%s", sub);
    snprintf(put->header, sizeof put->header, "%s", out);
    pthread_mutex_unlock(&v->mu);
    return 0;
}

const char *wp_endpoint_check(const char *url, size_t max, char origin[WP_AUD_MAX + 1])
{
    size_t len = strlen(url);
    if (len > max)
        return "the endpoint is too long";
    size_t skip;
    if (strncmp(url, "https://", 8) == 0)
        skip = 8;
    else if (strncmp(url, "http://", 7) == 0)
        skip = 7;
    else
        return "the endpoint must be an http(s) URL";
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return "the endpoint has spaces, controls or non-ASCII bytes";
    size_t host = strcspn(url + skip, "/?#");
    if (host == 0)
        return "the endpoint names no host";
    if (memchr(url + skip, '@', host))
        return "the endpoint may not carry a user name or password";
    if (url[skip] == ':')
        return "the endpoint names no host";
    if (skip + host > WP_AUD_MAX)
        return "the endpoint's host is too long";
    memcpy(origin, url, skip + host);
    origin[skip + host] = '\0';
    return NULL;
}
