/* store_fed.h - federation's durable state (store_fed.c): this server's own id, fixed at
 * `kizunad init`, and the peers an admin pinned (server id, Ed25519 key, addresses, TLS pin,
 * municipality name). Both live in the database, so a backup carries them and a restore brings
 * them back with the logs they name.
 *
 * The same contract as store.h: one struct store, one thread; writes inside the caller's
 * transaction (store_tx_begin) or savepoint. Statements here are prepared per call, not kept:
 * they run at start-up and on an admin's rare peer.* op, never on a message's path.
 */
#ifndef KIZUNA_STORE_FED_H
#define KIZUNA_STORE_FED_H

#include "store.h"

#define STORE_SERVER_ID_MAX  63  /* bytes; a new id is 3-63 of [a-z0-9-] (fed_server_id_valid) */
#define STORE_PEER_ADDR_MAX  263 /* HOST:PORT, [V6]:PORT: a 253-byte name, ':' and 5 digits */
#define STORE_PEER_ADDRS_MAX 16  /* the bound of the peer_max_addresses setting */
#define STORE_PEER_PIN_MAX   44  /* base64 of a 32-byte SHA-256 */
#define STORE_PEER_KEY_BYTES 32  /* an Ed25519 public key */

/* The id this database's logs are written under, as stored by init or adopted at the first
 * start after the upgrade. out gets it (n bytes); STORE_NOT_FOUND if none is stored. */
enum store_rc store_server_id_get(struct store *st, char *out, size_t n);
/* Stores the id (once: STORE_CONFLICT if one is already stored). adopted records that it was
 * taken over from a database made before ids were stored, rather than given at init. */
enum store_rc store_server_id_set(struct store *st, const char *id, bool adopted, int64_t now);

struct store_peer {
    char server_id[STORE_SERVER_ID_MAX + 1];
    uint8_t key[STORE_PEER_KEY_BYTES];
    int naddr;
    char addr[STORE_PEER_ADDRS_MAX][STORE_PEER_ADDR_MAX + 1];
    char tls_pin[STORE_PEER_PIN_MAX + 1]; /* "" when none */
    char name[STORE_NAME_MAX + 1];        /* the municipality's display name, "" when none */
    char fingerprint[72];                 /* as fed_fingerprint wrote it at peer.add */
    char added_by[STORE_LOGIN_MAX + 1];
    int64_t added_at;
};

/* Inserts a peer; STORE_CONFLICT if its server id or its key is already a peer's. */
enum store_rc store_peer_insert(struct store *st, const struct store_peer *p);
/* The peer with this server id, or STORE_NOT_FOUND. */
enum store_rc store_peer_get(struct store *st, const char *server_id, struct store_peer *out);
/* The peer pinned to this key, or STORE_NOT_FOUND. */
enum store_rc store_peer_get_by_key(struct store *st, const uint8_t key[STORE_PEER_KEY_BYTES],
                                    struct store_peer *out);
/* Removes a peer; STORE_NOT_FOUND if there is none with this id. */
enum store_rc store_peer_delete(struct store *st, const char *server_id);
enum store_rc store_peer_count(struct store *st, int64_t *out);
/* Every peer in server id order; fn's p is valid during the call only. A non-zero return from
 * fn stops the walk (STORE_OK). */
typedef int (*store_peer_fn)(void *ctx, const struct store_peer *p);
enum store_rc store_peer_each(struct store *st, store_peer_fn fn, void *ctx);

#endif
