/* test_webpush.c - Web Push's cryptography (server/webpush.c): RFC 8291 Appendix A's
 * encryption example byte for byte, a round trip through an independent decryption written
 * here with OpenSSL's primitives, VAPID tokens verified against their public key, the signer
 * that hands a token out again for an hour, and the checks on endpoints and keys a subscription
 * hands over. */
#include "webpush.h"

#include <criterion/criterion.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <sodium.h>
#include <string.h>

/* RFC 8291, Appendix A. */
static const char *PLAIN = "When I grow up, I want to be a watermelon";
static const char *AS_PRIV = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
static const char *AS_PUB =
    "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
static const char *UA_PUB =
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
static const char *UA_PRIV = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
static const char *AUTH = "BTBZMqHH6r4Tts7J_aSIgg";
static const char *SALT = "DGv6ra1nlYgDCS1FRnbzlw";
static const char *BODY =
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6"
    "TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy"
    "4a-fN";

static void init(void)
{
    cr_assert(sodium_init() >= 0);
}

Test(webpush, rfc8291_appendix_a, .init = init)
{
    uint8_t as_priv[32], ua_pub[65], auth[16], salt[16], out[200];
    cr_assert(wp_b64u_decode(AS_PRIV, as_priv, 32) == 0);
    cr_assert(wp_b64u_decode(UA_PUB, ua_pub, 65) == 0);
    cr_assert(wp_b64u_decode(AUTH, auth, 16) == 0);
    cr_assert(wp_b64u_decode(SALT, salt, 16) == 0);
    size_t n = 0;
    cr_assert(wp_encrypt(ua_pub, auth, (const uint8_t *)PLAIN, strlen(PLAIN), as_priv, salt, out,
                         &n) == 0);
    cr_assert_eq(n, strlen(PLAIN) + WP_OVERHEAD);
    char got[400];
    wp_b64u_encode(out, n, got, sizeof got);
    cr_assert_str_eq(got, BODY);
    /* The header carries the sender's public key, which the RFC gives separately. */
    char as_pub[100];
    wp_b64u_encode(out + 21, 65, as_pub, sizeof as_pub);
    cr_assert_str_eq(as_pub, AS_PUB);
}

/* ---- an independent receiver: the browser's half, from the RFC's steps ---- */

static EVP_PKEY *priv_key(const uint8_t priv[32], const uint8_t pub[65])
{
    unsigned char le[32];
    BIGNUM *bn = BN_bin2bn(priv, 32, NULL);
    cr_assert(BN_bn2nativepad(bn, le, 32) == 32);
    BN_free(bn);
    OSSL_PARAM p[] = {OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0),
                      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pub, 65),
                      OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_PRIV_KEY, le, 32),
                      OSSL_PARAM_construct_end()};
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    cr_assert(EVP_PKEY_fromdata_init(c) == 1);
    cr_assert(EVP_PKEY_fromdata(c, &k, pub ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, p) == 1);
    EVP_PKEY_CTX_free(c);
    return k;
}

static EVP_PKEY *pub_key(const uint8_t pub[65])
{
    OSSL_PARAM p[] = {OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0),
                      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pub, 65),
                      OSSL_PARAM_construct_end()};
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    cr_assert(EVP_PKEY_fromdata_init(c) == 1);
    cr_assert(EVP_PKEY_fromdata(c, &k, EVP_PKEY_PUBLIC_KEY, p) == 1);
    EVP_PKEY_CTX_free(c);
    return k;
}

static void hmac256(const uint8_t *key, size_t kl, const uint8_t *d, size_t dl, uint8_t out[32])
{
    size_t n = 32;
    cr_assert(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, kl, d, dl, out, 32, &n) != NULL);
}

/* HKDF written out (extract, one expand block) so the test does not reuse the server's. */
static void hkdf1(const uint8_t *salt, size_t sl, const uint8_t *ikm, size_t il, const char *label,
                  const uint8_t *extra, size_t el, uint8_t *out, size_t ol)
{
    uint8_t prk[32], t[32], info[256];
    hmac256(salt, sl, ikm, il, prk);
    size_t n = strlen(label) + 1;
    memcpy(info, label, n);
    if (el)
        memcpy(info + n, extra, el);
    info[n + el] = 1;
    hmac256(prk, 32, info, n + el + 1, t);
    memcpy(out, t, ol);
}

/* Decrypts one aes128gcm record for (ua_priv, ua_pub, auth); returns the plaintext length. */
static size_t decrypt(const uint8_t *body, size_t n, const uint8_t ua_priv[32],
                      const uint8_t ua_pub[65], const uint8_t auth[16], uint8_t *plain)
{
    cr_assert(n > 86 + 17);
    cr_assert_eq(body[20], 65);
    const uint8_t *salt = body, *as_pub = body + 21;
    EVP_PKEY *me = priv_key(ua_priv, ua_pub), *them = pub_key(as_pub);
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, me, NULL);
    uint8_t secret[32];
    size_t sl = 32;
    cr_assert(EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, them) == 1 &&
              EVP_PKEY_derive(c, secret, &sl) == 1);
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(me);
    EVP_PKEY_free(them);
    uint8_t both[130], ikm[32], cek[16], nonce[12];
    memcpy(both, ua_pub, 65);
    memcpy(both + 65, as_pub, 65);
    hkdf1(auth, 16, secret, 32, "WebPush: info", both, 130, ikm, 32);
    hkdf1(salt, 16, ikm, 32, "Content-Encoding: aes128gcm", NULL, 0, cek, 16);
    hkdf1(salt, 16, ikm, 32, "Content-Encoding: nonce", NULL, 0, nonce, 12);
    const uint8_t *ct = body + 86;
    size_t cl = n - 86 - 16;
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    int a = 0, b = 0;
    cr_assert(EVP_DecryptInit_ex(x, EVP_aes_128_gcm(), NULL, cek, nonce) == 1);
    cr_assert(EVP_DecryptUpdate(x, plain, &a, ct, (int)cl) == 1);
    cr_assert(EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_TAG, 16, (void *)(ct + cl)) == 1);
    cr_assert(EVP_DecryptFinal_ex(x, plain + a, &b) == 1, "the tag does not verify");
    EVP_CIPHER_CTX_free(x);
    size_t pl = (size_t)(a + b);
    cr_assert_eq(plain[pl - 1], 2, "the last record ends with delimiter 2");
    return pl - 1;
}

Test(webpush, round_trip_with_fresh_keys, .init = init)
{
    uint8_t ua_priv[32], ua_pub[65], auth[16], out[300], plain[300];
    cr_assert(wp_keypair_new(ua_priv, ua_pub) == 0);
    randombytes_buf(auth, sizeof auth);
    const char *msg = "{\"kind\":\"notice\",\"title\":\"避難所を開設しました\"}";
    size_t n = 0;
    cr_assert(wp_encrypt(ua_pub, auth, (const uint8_t *)msg, strlen(msg), NULL, NULL, out, &n) ==
              0);
    size_t pl = decrypt(out, n, ua_priv, ua_pub, auth, plain);
    cr_assert_eq(pl, strlen(msg));
    cr_assert(memcmp(plain, msg, pl) == 0);
    /* Two encryptions of one message differ (fresh sender key and salt each time). */
    uint8_t out2[300];
    size_t n2 = 0;
    cr_assert(wp_encrypt(ua_pub, auth, (const uint8_t *)msg, strlen(msg), NULL, NULL, out2, &n2) ==
              0);
    cr_assert(memcmp(out, out2, n) != 0);
    /* The RFC's receiver key decrypts the RFC's body. */
    uint8_t rfc[200], rpriv[32], rpub[65], rauth[16];
    cr_assert(wp_b64u_decode(BODY, rfc, strlen(PLAIN) + WP_OVERHEAD) == 0);
    cr_assert(wp_b64u_decode(UA_PRIV, rpriv, 32) == 0);
    cr_assert(wp_b64u_decode(UA_PUB, rpub, 65) == 0);
    cr_assert(wp_b64u_decode(AUTH, rauth, 16) == 0);
    pl = decrypt(rfc, strlen(PLAIN) + WP_OVERHEAD, rpriv, rpub, rauth, plain);
    cr_assert(pl == strlen(PLAIN) && memcmp(plain, PLAIN, pl) == 0);
}

Test(webpush, vapid_header_verifies, .init = init)
{
    uint8_t priv[32], pub[65];
    cr_assert(wp_keypair_new(priv, pub) == 0);
    char h[WP_AUTH_HEADER_MAX];
    cr_assert(wp_vapid_header(priv, pub, "https://push.example.net", 1700000000,
                              "mailto:bousai@example.lg.jp", h, sizeof h) == 0);
    cr_assert(strncmp(h, "vapid t=", 8) == 0);
    char *k = strstr(h, ", k=");
    cr_assert(k);
    uint8_t kpub[65];
    cr_assert(wp_b64u_decode(k + 4, kpub, 65) == 0);
    cr_assert(memcmp(kpub, pub, 65) == 0);
    *k = '\0';
    const char *jwt = h + 8;
    const char *dot2 = strrchr(jwt, '.');
    cr_assert(dot2);
    const char *dot1 = strchr(jwt, '.');
    char claims[512];
    size_t cl = 0;
    cr_assert(sodium_base642bin((unsigned char *)claims, sizeof claims - 1, dot1 + 1,
                                (size_t)(dot2 - dot1 - 1), NULL, &cl, NULL,
                                sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0);
    claims[cl] = '\0';
    cr_assert_str_eq(claims, "{\"aud\":\"https://push.example.net\",\"exp\":1700000000,"
                             "\"sub\":\"mailto:bousai@example.lg.jp\"}");
    /* r || s back to DER, verified with the public key alone. */
    uint8_t sig[64];
    cr_assert(wp_b64u_decode(dot2 + 1, sig, 64) == 0);
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
    unsigned char *der = NULL;
    int dl = i2d_ECDSA_SIG(es, &der);
    EVP_PKEY *vk = pub_key(pub);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    cr_assert(EVP_DigestVerifyInit_ex(md, NULL, "SHA256", NULL, NULL, vk, NULL) == 1);
    cr_assert_eq(
        EVP_DigestVerify(md, der, (size_t)dl, (const unsigned char *)jwt, (size_t)(dot2 - jwt)), 1);
    /* One flipped byte of the signed part fails. */
    char bad[1400];
    snprintf(bad, sizeof bad, "%.*s", (int)(dot2 - jwt), jwt);
    bad[3] ^= 1;
    cr_assert(EVP_DigestVerifyInit_ex(md, NULL, "SHA256", NULL, NULL, vk, NULL) == 1);
    cr_assert_neq(EVP_DigestVerify(md, der, (size_t)dl, (const unsigned char *)bad, strlen(bad)),
                  1);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(vk);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    /* Claims that would need escaping are refused rather than written wrong. */
    cr_assert(wp_vapid_header(priv, pub, "https://a\"b", 1, "mailto:x@y", h, sizeof h) == -1);
}

Test(webpush, endpoints_and_keys, .init = init)
{
    char o[WP_AUD_MAX + 1];
    cr_assert_null(wp_endpoint_check("https://fcm.googleapis.com/fcm/send/abc", 2048, o));
    cr_assert_str_eq(o, "https://fcm.googleapis.com");
    cr_assert_null(wp_endpoint_check("http://127.0.0.1:8080/p/1?x", 2048, o));
    cr_assert_str_eq(o, "http://127.0.0.1:8080");
    cr_assert_not_null(wp_endpoint_check("ftp://x/y", 2048, o));
    cr_assert_not_null(wp_endpoint_check("javascript:alert(1)", 2048, o));
    cr_assert_not_null(wp_endpoint_check("https:///nohost", 2048, o));
    cr_assert_not_null(wp_endpoint_check("https://user:pw@host/", 2048, o));
    cr_assert_not_null(wp_endpoint_check("https://host/a b", 2048, o));
    cr_assert_not_null(wp_endpoint_check("https://host/\r\nX-Evil: 1", 2048, o));
    cr_assert_not_null(wp_endpoint_check("https://host/abcdef", 10, o));
    uint8_t pub[65], priv[32];
    cr_assert(wp_keypair_new(priv, pub) == 0);
    cr_assert(wp_pub_valid(pub));
    pub[64] ^= 1; /* off the curve */
    cr_assert_not(wp_pub_valid(pub));
    pub[64] ^= 1;
    pub[0] = 0x02;
    cr_assert_not(wp_pub_valid(pub));
    uint8_t zero[65] = {4};
    cr_assert_not(wp_pub_valid(zero));
    uint8_t a[16];
    cr_assert(wp_b64u_decode("BTBZMqHH6r4Tts7J_aSIgg", a, 16) == 0);
    cr_assert(wp_b64u_decode("BTBZMqHH6r4Tts7J_aSIgg==", a, 16) == 0);
    cr_assert(wp_b64u_decode("BTBZMqHH6r4Tts7J_aSI", a, 16) == -1);
    cr_assert(wp_b64u_decode("BTBZMqHH6r4Tts7J+aSIgg", a, 16) == -1);
}

/* The JWT's claims of a header, decoded, in out. */
static void claims_of(const char *h, char *out, size_t n)
{
    const char *jwt = h + 8, *dot1 = strchr(jwt, '.'), *dot2 = strrchr(jwt, '.');
    cr_assert(strncmp(h, "vapid t=", 8) == 0 && dot1 && dot2 > dot1);
    size_t cl = 0;
    cr_assert(sodium_base642bin((unsigned char *)out, n - 1, dot1 + 1, (size_t)(dot2 - dot1 - 1),
                                NULL, &cl, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0);
    out[cl] = '\0';
}

Test(webpush, vapid_signer_reuses_a_header_per_audience_for_an_hour, .init = init)
{
    uint8_t priv[32], pub[65];
    cr_assert(wp_keypair_new(priv, pub) == 0);
    struct wp_vapid *v = wp_vapid_new(priv, pub);
    cr_assert(v);
    const char *sub = "mailto:bousai@example.lg.jp";
    const int64_t t0 = 1700000000;
    char a[WP_AUTH_HEADER_MAX], b[WP_AUTH_HEADER_MAX], c[WP_AUTH_HEADER_MAX], claims[512];
    bool fresh = false;
    cr_assert(wp_vapid_get(v, "https://fcm.googleapis.com", sub, t0, a, sizeof a, &fresh) == 0);
    cr_assert(fresh);
    claims_of(a, claims, sizeof claims);
    cr_assert_str_eq(claims, "{\"aud\":\"https://fcm.googleapis.com\",\"exp\":1700043200,"
                             "\"sub\":\"mailto:bousai@example.lg.jp\"}");
    /* The same header for the same audience within the hour (ECDSA signatures are randomised:
     * an equal header is a reused one). */
    cr_assert(wp_vapid_get(v, "https://fcm.googleapis.com", sub, t0 + WP_VAPID_REUSE_S - 1, b,
                           sizeof b, &fresh) == 0);
    cr_assert(!fresh);
    cr_assert_str_eq(a, b);
    /* Another audience, or another subject, gets its own. */
    cr_assert(wp_vapid_get(v, "https://updates.push.services.mozilla.com", sub, t0 + 1, c, sizeof c,
                           &fresh) == 0);
    cr_assert(fresh);
    claims_of(c, claims, sizeof claims);
    cr_assert(strstr(claims, "\"aud\":\"https://updates.push.services.mozilla.com\""));
    cr_assert(wp_vapid_get(v, "https://fcm.googleapis.com", "mailto:other@example.lg.jp", t0 + 1, c,
                           sizeof c, &fresh) == 0);
    cr_assert(fresh);
    cr_assert(strstr(c, ", k="));
    /* An hour on, or with the clock set back, it is signed again, valid 12 hours from then. */
    cr_assert(wp_vapid_get(v, "https://fcm.googleapis.com", sub, t0 + WP_VAPID_REUSE_S, c, sizeof c,
                           &fresh) == 0);
    cr_assert(fresh);
    claims_of(c, claims, sizeof claims);
    cr_assert(strstr(claims, "\"exp\":1700046800,"));
    cr_assert(wp_vapid_get(v, "https://fcm.googleapis.com", sub, t0, b, sizeof b, &fresh) == 0);
    cr_assert(fresh);
    /* More audiences than slots: all are served, the oldest make room. */
    for (int i = 0; i < WP_VAPID_SLOTS + 4; i++) {
        char aud[64];
        snprintf(aud, sizeof aud, "https://push%d.example.net", i);
        cr_assert(wp_vapid_get(v, aud, sub, t0 + 10 + i, c, sizeof c, &fresh) == 0);
        cr_assert(fresh);
    }
    /* What wp_vapid_header refuses, the signer refuses; a bad key makes no signer. */
    cr_assert(wp_vapid_get(v, "https://a\"b", sub, t0, c, sizeof c, &fresh) == -1);
    cr_assert(wp_vapid_get(v, "https://a.example", sub, t0, c, 100, &fresh) == -1);
    wp_vapid_free(v);
    priv[0] ^= 1;
    cr_assert_null(wp_vapid_new(priv, pub));
}

Test(webpush, vapid_signer_header_verifies_with_the_public_key, .init = init)
{
    /* The signer signs with the key it imported once: its signature verifies with the public
     * key alone, as a push service checks it. */
    uint8_t priv[32], pub[65], kpub[65], sig[64];
    cr_assert(wp_keypair_new(priv, pub) == 0);
    struct wp_vapid *v = wp_vapid_new(priv, pub);
    char h[WP_AUTH_HEADER_MAX];
    bool fresh = false;
    cr_assert(wp_vapid_get(v, "https://push.example.net", "mailto:x@example.lg.jp", 1700000000, h,
                           sizeof h, &fresh) == 0);
    wp_vapid_free(v);
    char *k = strstr(h, ", k=");
    cr_assert(k);
    cr_assert(wp_b64u_decode(k + 4, kpub, 65) == 0);
    cr_assert(memcmp(kpub, pub, 65) == 0);
    *k = '\0';
    const char *jwt = h + 8, *dot2 = strrchr(jwt, '.');
    cr_assert(wp_b64u_decode(dot2 + 1, sig, 64) == 0);
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
    unsigned char *der = NULL;
    int dl = i2d_ECDSA_SIG(es, &der);
    EVP_PKEY *vk = pub_key(pub);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    cr_assert(EVP_DigestVerifyInit_ex(md, NULL, "SHA256", NULL, NULL, vk, NULL) == 1);
    cr_assert_eq(
        EVP_DigestVerify(md, der, (size_t)dl, (const unsigned char *)jwt, (size_t)(dot2 - jwt)), 1);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(vk);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
}
