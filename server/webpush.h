/* webpush.h - Web Push's cryptography, pure functions over bytes: RFC 8291 message encryption
 * (aes128gcm, RFC 8188), RFC 8292 VAPID tokens (ES256 JWT), P-256 key pairs, and the checks a
 * subscription's endpoint and keys must pass. No network, no database, no global state (the
 * VAPID signer's cache belongs to whoever made it): the push sender (push.c) calls these on its
 * worker threads, the tests call them directly.
 * Keys are raw bytes: a private key is its 32-byte scalar, a public key its 65-byte
 * uncompressed point (0x04 || X || Y), as browsers give p256dh and applicationServerKey. */
#ifndef KIZUNA_WEBPUSH_H
#define KIZUNA_WEBPUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WP_PRIV_LEN 32
#define WP_PUB_LEN  65
#define WP_AUTH_LEN 16
#define WP_SALT_LEN 16
/* What encryption adds to a plaintext: header (salt, rs, idlen, key id), delimiter, GCM tag. */
#define WP_OVERHEAD (WP_SALT_LEN + 4 + 1 + WP_PUB_LEN + 1 + 16)
/* A VAPID Authorization header: "vapid t=" JWT ", k=" key; the JWT's claims are bounded by
 * the endpoint origin's and the subject's lengths (callers check them against these). */
#define WP_AUD_MAX         256
#define WP_SUB_MAX         256
#define WP_AUTH_HEADER_MAX 1400

/* A new P-256 key pair. 0, or -1 if the random source or OpenSSL failed. */
int wp_keypair_new(uint8_t priv[WP_PRIV_LEN], uint8_t pub[WP_PUB_LEN]);
/* Whether pub is a point on P-256 (uncompressed form, not the identity). */
bool wp_pub_valid(const uint8_t pub[WP_PUB_LEN]);

/* Encrypts plain for a subscription (ua_pub = its p256dh, auth = its auth secret) into one
 * aes128gcm record: out must hold len + WP_OVERHEAD bytes; *outlen is what was written.
 * as_priv/salt are the sender's ephemeral key and the salt: NULL makes fresh ones (always, but
 * for the RFC's test vector). 0, or -1 (bad key, OpenSSL failure). */
int wp_encrypt(const uint8_t ua_pub[WP_PUB_LEN], const uint8_t auth[WP_AUTH_LEN],
               const uint8_t *plain, size_t len, const uint8_t *as_priv, const uint8_t *salt,
               uint8_t *out, size_t *outlen);

/* The Authorization header's value for a push to a service whose origin is aud (RFC 8292):
 * "vapid t=<ES256 JWT {aud, exp, sub}>, k=<public key>", NUL-terminated in out (outlen
 * >= WP_AUTH_HEADER_MAX). 0, or -1 (too long, bad key, OpenSSL failure). */
int wp_vapid_header(const uint8_t priv[WP_PRIV_LEN], const uint8_t pub[WP_PUB_LEN], const char *aud,
                    int64_t exp_s, const char *sub, char *out, size_t outlen);

/* A VAPID signer: the server's key, imported once, and the headers it signed, one per audience
 * and subject, handed out again for WP_VAPID_REUSE_S. Each token is valid WP_VAPID_EXP_S from its
 * signing (RFC 8292 allows 24 hours; 12 leave room for a push service's clock), so a reused one
 * has at least 11 hours left. A flood of pushes to one push service signs once an hour instead
 * of once a push. Threads may share one signer (a mutex guards the table, not the signing). */
#define WP_VAPID_REUSE_S 3600
#define WP_VAPID_EXP_S   (12 * 3600)
#define WP_VAPID_SLOTS   16
struct wp_vapid;
/* A signer for the key pair; NULL if it is not a valid key or out of memory. The caller frees
 * it with wp_vapid_free once no thread uses it. */
struct wp_vapid *wp_vapid_new(const uint8_t priv[WP_PRIV_LEN], const uint8_t pub[WP_PUB_LEN]);
void wp_vapid_free(struct wp_vapid *v);
/* The Authorization header's value (as wp_vapid_header's, outlen >= WP_AUTH_HEADER_MAX) for
 * aud and sub at now_s (Unix seconds): the one signed within the last WP_VAPID_REUSE_S, or a new
 * one (*signed_now). 0, or -1 (aud or sub too long or not plain, OpenSSL failure). */
int wp_vapid_get(struct wp_vapid *v, const char *aud, const char *sub, int64_t now_s, char *out,
                 size_t outlen, bool *signed_now);

/* An endpoint a subscription may name: http:// or https://, a host, no spaces or controls or
 * user info, at most max bytes. Copies its origin ("scheme://host[:port]", the VAPID audience)
 * into origin (WP_AUD_MAX + 1 bytes). NULL if acceptable, else why not (a static string). */
const char *wp_endpoint_check(const char *url, size_t max, char origin[WP_AUD_MAX + 1]);

/* base64url without padding (what browsers give and JWTs use). Decoding accepts padding or
 * none; -1 unless exactly want bytes come out. Encoding needs 4 * ceil(n / 3) + 1 bytes. */
int wp_b64u_decode(const char *s, uint8_t *out, size_t want);
void wp_b64u_encode(const uint8_t *in, size_t n, char *out, size_t outlen);

#endif
