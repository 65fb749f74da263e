/* fed.h - federation's pure parts: identity (fed_identity.c), what names a server and what two
 * admins compare when they pair two servers; and the link handshake (fed_hello.c), the bytes
 * two servers sign to prove who is on each end of a link. Pure functions over bytes and text
 * (libsodium and media/ only): kizunad init, serve and fingerprint, the peer.* ops (ops_peer.c),
 * the links (fed_link.c, kizunad only) and the tests all use these, so an id, key, address,
 * fingerprint or handshake is judged the same way everywhere.
 *
 * docs/federation.md explains pairing and links to administrators; docs/protocol.md ("Server to
 * server") has the frames and the handshake's bytes.
 */
#ifndef KIZUNA_FED_H
#define KIZUNA_FED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FED_ID_MIN     3
#define FED_ID_MAX     63 /* store_fed.h's STORE_SERVER_ID_MAX */
#define FED_KEY_BYTES  32 /* Ed25519 public key */
#define FED_KEY_B64LEN 43 /* its base64url, no padding */
/* 60 digits in 12 groups of 5, separated by single spaces, and a NUL. */
#define FED_FINGERPRINT_DIGITS 60
#define FED_FINGERPRINT_LEN    (FED_FINGERPRINT_DIGITS + 11)
#define FED_FINGERPRINT_DOMAIN "kizuna/fingerprint/v1"

/* A server id as an admin chooses it: 3-63 of lower-case a-z, 0-9 and '-', beginning and ending
 * with a letter or digit (`jp-38-ehime-pref`). Ids of databases made before ids were stored are
 * kept as they were (kz-<base64url>, or whatever server_id said) and need not pass. */
bool fed_server_id_valid(const char *id);
/* The id `kizunad init` gives a server when none is chosen: "kz-" and the first 12 lower-case
 * hex digits of its public key. out needs 16 bytes. */
void fed_server_id_derive(const uint8_t pk[FED_KEY_BYTES], char *out, size_t n);
/* The id a database made before ids were stored has been using: the configured server_id, else
 * "kz-" and the first 12 characters of the key's base64url (what kizunad 0.1 derived). */
void fed_server_id_legacy(const uint8_t pk[FED_KEY_BYTES], const char *configured, char *out,
                          size_t n);

/* A public key as base64url without padding (FED_KEY_B64LEN characters); out needs 44 bytes. */
void fed_key_encode(const uint8_t pk[FED_KEY_BYTES], char *out, size_t n);
/* Parses such a key; false (with the reason in why) unless it is exactly 43 base64url
 * characters that decode to 32 bytes forming a valid Ed25519 point. */
bool fed_key_parse(const char *text, uint8_t pk[FED_KEY_BYTES], char *why, size_t n);

/* The server's fingerprint: media_numeric_digits with FED_FINGERPRINT_DOMAIN over u16 len ||
 * server id || public key, 12 groups (docs/federation.md; tests/vectors/federation/). out gets
 * the 60 digits as 12 groups of 5 separated by spaces. -1 if the id is empty or too long. */
int fed_fingerprint(const char *server_id, const uint8_t pk[FED_KEY_BYTES],
                    char out[FED_FINGERPRINT_LEN + 1]);
/* Digits as an admin types what the other read out: spaces and '-' between them are ignored.
 * Writes the 60 digits (and a NUL) to out; false unless there are exactly 60 digits and nothing
 * else. */
bool fed_fingerprint_parse(const char *text, char out[FED_FINGERPRINT_DIGITS + 1]);

/* A peer's address: HOST:PORT with a DNS name or IPv4 address, or [IPv6]:PORT; port 1-65535;
 * at most 263 bytes. false with the reason in why. */
bool fed_address_valid(const char *addr, char *why, size_t n);
/* A TLS key pin: standard base64 (with its '=') of a SHA-256, 44 characters. */
bool fed_tls_pin_valid(const char *pin);

/* ---- the link handshake (fed_hello.c; docs/protocol.md, "Server to server") ---- */
#define FED_PROTOCOL      "kizuna.fed.v1" /* the WebSocket subprotocol of federation links */
#define FED_HELLO_DOMAIN  "kizuna/hello/v1"
#define FED_HELLO_VERSION 1
#define FED_NONCE_BYTES   32
#define FED_NONCE_B64LEN  43 /* base64url, no padding */
#define FED_SIG_BYTES     64
#define FED_SIG_B64LEN    86
#define FED_SKEW_ALARM_MS 120000 /* a peer's HELLO time further off than this raises an alarm */
/* Most bytes the signed transcript can have: domain, NUL, version, signer, and per side a
 * length byte, an id and a nonce. */
#define FED_TRANSCRIPT_MAX (sizeof FED_HELLO_DOMAIN + 2 + 2 * (1 + FED_ID_MAX + FED_NONCE_BYTES))

/* Who signs a transcript: the side that opened the connection, or the one that accepted it. */
enum fed_signer { FED_SIGNER_DIALER = 1, FED_SIGNER_ACCEPTOR = 2 };

/* The bytes each side of a link signs (docs/protocol.md):
 *   "kizuna/hello/v1" 0x00 | u8 version | u8 signer |
 *   u8 len | dialer id | dialer nonce (32) | u8 len | acceptor id | acceptor nonce (32)
 * Writes them to out (FED_TRANSCRIPT_MAX bytes) and returns their length; 0 if an id is empty
 * or longer than FED_ID_MAX. */
size_t fed_hello_transcript(enum fed_signer signer, const char *dialer_id,
                            const uint8_t dialer_nonce[FED_NONCE_BYTES], const char *acceptor_id,
                            const uint8_t acceptor_nonce[FED_NONCE_BYTES],
                            uint8_t out[FED_TRANSCRIPT_MAX]);
/* Signs the transcript as signer with the Ed25519 secret key sk (64 bytes). -1 on a bad id. */
int fed_hello_sign(enum fed_signer signer, const char *dialer_id,
                   const uint8_t dialer_nonce[FED_NONCE_BYTES], const char *acceptor_id,
                   const uint8_t acceptor_nonce[FED_NONCE_BYTES], const uint8_t sk[64],
                   uint8_t sig[FED_SIG_BYTES]);
/* Whether sig is signer's signature of the transcript under the public key pk. */
bool fed_hello_verify(enum fed_signer signer, const char *dialer_id,
                      const uint8_t dialer_nonce[FED_NONCE_BYTES], const char *acceptor_id,
                      const uint8_t acceptor_nonce[FED_NONCE_BYTES],
                      const uint8_t pk[FED_KEY_BYTES], const uint8_t sig[FED_SIG_BYTES]);
/* Decodes exactly n bytes of unpadded base64url (a nonce, a signature); false otherwise. */
bool fed_b64url_decode(const char *text, uint8_t *out, size_t n);

#endif
