/* tls_pin.h - a TLS peer pinned by its public key: the SHA-256 of its certificate's
 * SubjectPublicKeyInfo, in base64, which both kizunad's federation links and the kizuna
 * client compare with what their administrator pinned. One implementation for both, so the
 * check cannot drift between them. */
#ifndef KIZUNA_TLS_PIN_H
#define KIZUNA_TLS_PIN_H

#include <stdbool.h>
#include <stddef.h>

struct lws;

/* The pin of the peer's certificate on wsi's TLS connection, written to out (base64 of the
 * SHA-256 of the SubjectPublicKeyInfo, 44 characters and a NUL). false if the connection has
 * no peer certificate or out is too small. */
bool kz_tls_peer_pin(struct lws *wsi, char *out, size_t outlen);

#endif
