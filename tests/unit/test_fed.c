/* test_fed.c - federation's server identity (server/fed_identity.c): the fingerprint against
 * the fixed vectors of tests/vectors/federation/ (made by a separate implementation, Python's
 * hashlib and cryptography), and what counts as a server id, a key, an address, a TLS pin and
 * a fingerprint as an admin types it. */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "fed.h"
#include "vectors.h"

static void unhex32(const char *hex, uint8_t out[32])
{
    size_t len;
    unsigned char *b = vec_unhex(hex, &len);
    cr_assert_eq(len, 32);
    memcpy(out, b, 32);
    free(b);
}

Test(fed, fingerprint_vectors, .timeout = 60)
{
    cr_assert_geq(sodium_init(), 0);
    cJSON *j = vec_load("federation", "fingerprint.json");
    const cJSON *v;
    int n = 0;
    cJSON_ArrayForEach(v, vec_item(j, "vectors"))
    {
        uint8_t seed[32], pk[32], sk[64], want_pk[32];
        unhex32(vec_str(v, "seed_hex"), seed);
        unhex32(vec_str(v, "public_key_hex"), want_pk);
        crypto_sign_seed_keypair(pk, sk, seed);
        cr_assert_eq(memcmp(pk, want_pk, 32), 0, "public key from the seed");
        char b64[FED_KEY_B64LEN + 1], why[160];
        fed_key_encode(pk, b64, sizeof b64);
        cr_assert_str_eq(b64, vec_str(v, "public_key_b64url"));
        uint8_t parsed[32];
        cr_assert(fed_key_parse(b64, parsed, why, sizeof why), "%s", why);
        cr_assert_eq(memcmp(parsed, pk, 32), 0);
        char fp[FED_FINGERPRINT_LEN + 1];
        cr_assert_eq(fed_fingerprint(vec_str(v, "server_id"), pk, fp), 0);
        cr_assert_str_eq(fp, vec_str(v, "fingerprint"), "%s", vec_str(v, "server_id"));
        cr_assert_eq(strlen(fp), 71, "12 groups of 5 and 11 spaces");
        char id[64];
        fed_server_id_derive(pk, id, sizeof id);
        cr_assert_str_eq(id, vec_str(v, "derived_id"));
        cr_assert(fed_server_id_valid(id), "a derived id is a valid id");
        fed_server_id_legacy(pk, "", id, sizeof id);
        cr_assert_str_eq(id, vec_str(v, "legacy_id"));
        fed_server_id_legacy(pk, "town-a", id, sizeof id);
        cr_assert_str_eq(id, "town-a", "a configured id is the one a database used");
        sodium_memzero(sk, sizeof sk);
        n++;
    }
    cr_assert_geq(n, 4);
    cJSON_Delete(j);
}

Test(fed, server_ids)
{
    const char *good[] = {"jp-38-ehime-pref",
                          "abc",
                          "a1b",
                          "kz-03a107bff3ce",
                          "123",
                          "a-b-c-d-e-f-g-h-i-j-k-l-m-n-o-p-q-r-s-t-u-v-w-x-y-z-0-1-2-3-4-5"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert(fed_server_id_valid(good[i]), "%s", good[i]);
    cr_assert_eq(strlen(good[5]), 63);
    const char *bad[] = {"",
                         "ab",
                         "-abc",
                         "abc-",
                         "Abc",
                         "a_b",
                         "a.b",
                         "a b",
                         "ab\xc3\xa9",
                         "kz-A6Eb_-PO",
                         "jp/38",
                         "a\tb",
                         "a-b-c-d-e-f-g-h-i-j-k-l-m-n-o-p-q-r-s-t-u-v-w-x-y-z-0-1-2-3-4-5-6"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(fed_server_id_valid(bad[i]), "%s", bad[i]);
}

Test(fed, keys)
{
    cr_assert_geq(sodium_init(), 0);
    uint8_t pk[32], sk[64], out[32];
    crypto_sign_keypair(pk, sk);
    char b64[FED_KEY_B64LEN + 1], why[160], text[80];
    fed_key_encode(pk, b64, sizeof b64);
    cr_assert(fed_key_parse(b64, out, why, sizeof why), "%s", why);
    /* Too short, too long, padded, standard base64, not base64 at all. */
    snprintf(text, sizeof text, "%.42s", b64);
    cr_assert_not(fed_key_parse(text, out, why, sizeof why));
    cr_assert(strstr(why, "43 characters of base64url"), "%s", why);
    snprintf(text, sizeof text, "%sA", b64);
    cr_assert_not(fed_key_parse(text, out, why, sizeof why));
    snprintf(text, sizeof text, "%s=", b64);
    cr_assert_not(fed_key_parse(text, out, why, sizeof why));
    snprintf(text, sizeof text, "%s", b64);
    text[3] = '+';
    cr_assert_not(fed_key_parse(text, out, why, sizeof why));
    text[3] = '!';
    cr_assert_not(fed_key_parse(text, out, why, sizeof why));
    /* A key of all zeros is a point of small order: no one holds its secret half. */
    uint8_t zero[32] = {0};
    fed_key_encode(zero, b64, sizeof b64);
    cr_assert_not(fed_key_parse(b64, out, why, sizeof why));
    cr_assert(strstr(why, "not a valid Ed25519"), "%s", why);
}

Test(fed, fingerprints_as_typed)
{
    char d[FED_FINGERPRINT_DIGITS + 1];
    const char *want = "123456789012345678901234567890123456789012345678901234567890";
    cr_assert(fed_fingerprint_parse(want, d));
    cr_assert_str_eq(d, want);
    cr_assert(fed_fingerprint_parse("12345 67890 12345 67890 12345 67890 12345 67890 12345 67890 "
                                    "12345 67890",
                                    d));
    cr_assert_str_eq(d, want);
    cr_assert(fed_fingerprint_parse("12345-67890-12345-67890-12345-67890-12345-67890-12345-67890-"
                                    "12345-67890",
                                    d));
    /* 59 or 61 digits, a letter, a full-width digit. */
    cr_assert_not(fed_fingerprint_parse(want + 1, d));
    char longer[80];
    snprintf(longer, sizeof longer, "%s1", want);
    cr_assert_not(fed_fingerprint_parse(longer, d));
    snprintf(longer, sizeof longer, "%s", want);
    longer[10] = 'O';
    cr_assert_not(fed_fingerprint_parse(longer, d));
    cr_assert_not(fed_fingerprint_parse("", d));
    cr_assert_not(fed_fingerprint_parse("\xef\xbc\x91", d));
}

Test(fed, addresses)
{
    char why[160];
    const char *good[] = {"10.0.0.2:8443",   "kizuna.city.matsuyama.ehime.jp:443",
                          "[::1]:8443",      "[2001:db8::1]:1",
                          "localhost:65535", "a-b.c:80"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert(fed_address_valid(good[i], why, sizeof why), "%s: %s", good[i], why);
    const char *bad[] = {"10.0.0.2", "10.0.0.2:",    "10.0.0.2:0", "10.0.0.2:65536", ":80",
                         "host:80x", "host name:80", "-host:80",   "host-:80",       "a..b:80",
                         "[::1]",    "[::1]80",      "[]:80",      "[::g]:80",       "::1:80",
                         "host:080", "ホスト:80",    "host:80 ",   "http://host:80", "host/x:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_not(fed_address_valid(bad[i], why, sizeof why), "%s", bad[i]);
        cr_assert(strstr(why, "HOST:PORT"), "%s", why);
    }
    char huge[300];
    memset(huge, 'a', sizeof huge);
    snprintf(huge + 250, 50, ":80");
    cr_assert_not(fed_address_valid(huge, why, sizeof why), "a label over 63 bytes");
}

Test(fed, tls_pins)
{
    unsigned char h[32];
    crypto_hash_sha256(h, (const unsigned char *)"spki", 4);
    char pin[64];
    sodium_bin2base64(pin, sizeof pin, h, 32, sodium_base64_VARIANT_ORIGINAL);
    cr_assert_eq(strlen(pin), 44);
    cr_assert(fed_tls_pin_valid(pin));
    char bad[64];
    snprintf(bad, sizeof bad, "%.43s", pin);
    cr_assert_not(fed_tls_pin_valid(bad), "no padding");
    sodium_bin2base64(bad, sizeof bad, h, 32, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    cr_assert_not(fed_tls_pin_valid(bad), "base64url");
    sodium_bin2base64(bad, sizeof bad, h, 31, sodium_base64_VARIANT_ORIGINAL);
    cr_assert_not(fed_tls_pin_valid(bad), "31 bytes");
    cr_assert_not(fed_tls_pin_valid(""));
}

/* The link handshake's signed bytes and signatures, against hello.json (made by Python's
 * cryptography, none of this code): a second implementation that reproduces these bytes
 * interoperates. Every change of a signed fact must break the signature. */
Test(fed, hello_vectors)
{
    cr_assert_geq(sodium_init(), 0);
    cJSON *j = vec_load("federation", "hello.json");
    const cJSON *v;
    int n = 0;
    cJSON_ArrayForEach(v, vec_item(j, "vectors"))
    {
        enum fed_signer signer =
            strcmp(vec_str(v, "signer"), "dialer") == 0 ? FED_SIGNER_DIALER : FED_SIGNER_ACCEPTOR;
        const char *did = vec_str(v, "dialer_id"), *aid = vec_str(v, "acceptor_id");
        uint8_t dn[FED_NONCE_BYTES], an[FED_NONCE_BYTES], seed[32], pk[32], sk[64], want_pk[32];
        cr_assert(fed_b64url_decode(vec_str(v, "dialer_nonce_b64url"), dn, sizeof dn));
        cr_assert(fed_b64url_decode(vec_str(v, "acceptor_nonce_b64url"), an, sizeof an));
        unhex32(vec_str(v, "seed_hex"), seed);
        unhex32(vec_str(v, "public_key_hex"), want_pk);
        crypto_sign_seed_keypair(pk, sk, seed);
        cr_assert_eq(memcmp(pk, want_pk, 32), 0);
        uint8_t t[FED_TRANSCRIPT_MAX];
        size_t tl = fed_hello_transcript(signer, did, dn, aid, an, t);
        size_t wl;
        unsigned char *want = vec_unhex(vec_str(v, "transcript_hex"), &wl);
        cr_assert_eq(tl, wl, "transcript length %s -> %s", did, aid);
        cr_assert_eq(memcmp(t, want, wl), 0, "transcript bytes %s -> %s", did, aid);
        free(want);
        uint8_t sig[FED_SIG_BYTES], want_sig[FED_SIG_BYTES];
        cr_assert_eq(fed_hello_sign(signer, did, dn, aid, an, sk, sig), 0);
        cr_assert(fed_b64url_decode(vec_str(v, "signature_b64url"), want_sig, sizeof want_sig));
        cr_assert_eq(memcmp(sig, want_sig, sizeof sig), 0, "signature");
        cr_assert(fed_hello_verify(signer, did, dn, aid, an, pk, sig));
        /* The other role, swapped ids, another nonce: each must fail. */
        enum fed_signer other =
            signer == FED_SIGNER_DIALER ? FED_SIGNER_ACCEPTOR : FED_SIGNER_DIALER;
        cr_assert_not(fed_hello_verify(other, did, dn, aid, an, pk, sig));
        cr_assert_not(fed_hello_verify(signer, aid, an, did, dn, pk, sig));
        dn[0] ^= 1;
        cr_assert_not(fed_hello_verify(signer, did, dn, aid, an, pk, sig));
        sodium_memzero(sk, sizeof sk);
        n++;
    }
    cr_assert_geq(n, 6);
    cJSON_Delete(j);
    uint8_t x[32], t[FED_TRANSCRIPT_MAX];
    memset(x, 0, sizeof x);
    cr_assert_eq(fed_hello_transcript(FED_SIGNER_DIALER, "", x, "abc", x, t), 0, "empty id");
    char long_id[80];
    memset(long_id, 'a', 64);
    long_id[64] = '\0';
    cr_assert_eq(fed_hello_transcript(FED_SIGNER_DIALER, long_id, x, "abc", x, t), 0, "64 bytes");
    cr_assert_not(fed_b64url_decode("AAAA", x, 32), "too short");
    cr_assert_not(fed_b64url_decode("ar5KkJwp_1dKoqPcBjNYfEbup6NxuzSY_HNaYInNQdU=", x, 32),
                  "padding");
    cr_assert_not(fed_b64url_decode("ar5KkJwp+1dKoqPcBjNYfEbup6NxuzSY/HNaYInNQdU", x, 32),
                  "standard alphabet");
}
