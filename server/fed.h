/* fed.h - federation's identity (fed_identity.c): what names a server and what two admins
 * compare when they pair two servers. Pure functions over bytes and text (libsodium and media/
 * only): kizunad init, serve and fingerprint, the peer.* ops (ops_peer.c) and the tests all use
 * these, so an id, key, address or fingerprint is judged the same way everywhere.
 *
 * Later work adds the federation listener and links (fed_link.c, ...) behind this header's
 * prefix; docs/federation.md explains pairing to administrators.
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

#endif
