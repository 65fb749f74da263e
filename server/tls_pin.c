/* tls_pin.c - the pin of a TLS peer's public key (tls_pin.h). */
#include "tls_pin.h"

#include <libwebsockets.h>
#include <sodium.h>

bool kz_tls_peer_pin(struct lws *wsi, char *out, size_t outlen)
{
    /* lws writes the key's DER bytes into the union's trailing name buffer. */
    char big[4096];
    union lws_tls_cert_info_results *r = (union lws_tls_cert_info_results *)big;
    if (outlen <
            sodium_base64_ENCODED_LEN(crypto_hash_sha256_BYTES, sodium_base64_VARIANT_ORIGINAL) ||
        lws_tls_peer_cert_info(wsi, LWS_TLS_CERT_INFO_OPAQUE_PUBLIC_KEY, r,
                               sizeof big - sizeof *r + sizeof r->ns.name) != 0)
        return false;
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)r->ns.name, (unsigned long long)r->ns.len);
    sodium_bin2base64(out, outlen, h, sizeof h, sodium_base64_VARIANT_ORIGINAL);
    return true;
}
