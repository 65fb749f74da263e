/* fed_hello.c - the bytes two servers sign when a federation link opens (fed.h), in one place
 * for the links (fed_link.c) and the tests (tests/vectors/federation/hello.json).
 *
 * Each side signs the same facts: both ids and both nonces, the dialer's first. The signer's
 * role is in the bytes too, so neither side's signature can ever serve as the other's, even
 * if one key were pinned under two ids; the version is in them so that a later handshake can
 * never be mistaken for this one. A fresh 32-byte nonce from each side makes every transcript
 * new: a recorded handshake replays nowhere. */
#include "fed.h"

#include <sodium.h>
#include <string.h>

size_t fed_hello_transcript(enum fed_signer signer, const char *dialer_id,
                            const uint8_t dialer_nonce[FED_NONCE_BYTES], const char *acceptor_id,
                            const uint8_t acceptor_nonce[FED_NONCE_BYTES],
                            uint8_t out[FED_TRANSCRIPT_MAX])
{
    size_t dl = strlen(dialer_id), al = strlen(acceptor_id);
    if (!dl || !al || dl > FED_ID_MAX || al > FED_ID_MAX)
        return 0;
    size_t n = 0;
    memcpy(out, FED_HELLO_DOMAIN, sizeof FED_HELLO_DOMAIN); /* with its NUL */
    n += sizeof FED_HELLO_DOMAIN;
    out[n++] = FED_HELLO_VERSION;
    out[n++] = (uint8_t)signer;
    out[n++] = (uint8_t)dl;
    memcpy(out + n, dialer_id, dl);
    n += dl;
    memcpy(out + n, dialer_nonce, FED_NONCE_BYTES);
    n += FED_NONCE_BYTES;
    out[n++] = (uint8_t)al;
    memcpy(out + n, acceptor_id, al);
    n += al;
    memcpy(out + n, acceptor_nonce, FED_NONCE_BYTES);
    n += FED_NONCE_BYTES;
    return n;
}

int fed_hello_sign(enum fed_signer signer, const char *dialer_id,
                   const uint8_t dialer_nonce[FED_NONCE_BYTES], const char *acceptor_id,
                   const uint8_t acceptor_nonce[FED_NONCE_BYTES], const uint8_t sk[64],
                   uint8_t sig[FED_SIG_BYTES])
{
    uint8_t m[FED_TRANSCRIPT_MAX];
    size_t n =
        fed_hello_transcript(signer, dialer_id, dialer_nonce, acceptor_id, acceptor_nonce, m);
    if (!n)
        return -1;
    crypto_sign_detached(sig, NULL, m, n, sk);
    return 0;
}

bool fed_hello_verify(enum fed_signer signer, const char *dialer_id,
                      const uint8_t dialer_nonce[FED_NONCE_BYTES], const char *acceptor_id,
                      const uint8_t acceptor_nonce[FED_NONCE_BYTES],
                      const uint8_t pk[FED_KEY_BYTES], const uint8_t sig[FED_SIG_BYTES])
{
    uint8_t m[FED_TRANSCRIPT_MAX];
    size_t n =
        fed_hello_transcript(signer, dialer_id, dialer_nonce, acceptor_id, acceptor_nonce, m);
    return n && crypto_sign_verify_detached(sig, m, n, pk) == 0;
}

bool fed_b64url_decode(const char *text, uint8_t *out, size_t n)
{
    size_t bin_len = 0, len = strlen(text);
    const char *end = NULL;
    return len == sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING) - 1 &&
           sodium_base642bin(out, n, text, len, NULL, &bin_len, &end,
                             sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 &&
           bin_len == n && (!end || !*end);
}
