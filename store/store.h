/* store.h - Kizuna's durable state: one SQLite database per data directory.
 *
 * All SQL in Kizuna lives behind this header. Callers pass and receive plain C structs; they
 * never see SQL text or sqlite3 handles. One struct store is owned by one thread (the server's
 * event loop); it is not safe to share between threads.
 *
 * Writes happen inside a transaction opened with store_tx_begin() and closed with
 * store_tx_commit(); the server groups all writes of one loop turn into one transaction and
 * acknowledges them only after the commit returns (DESIGN.md, "group commit"). Each request
 * runs inside a savepoint (store_op_begin/store_op_end) so that one failed request rolls back
 * alone without disturbing the others in the same transaction.
 */
#ifndef KIZUNA_STORE_H
#define KIZUNA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum store_rc {
    STORE_OK = 0,
    STORE_NOT_FOUND, /* no such row */
    STORE_CONFLICT,  /* a uniqueness rule was broken (duplicate login, ...) */
    STORE_TOO_NEW,   /* the database was written by a newer Kizuna */
    STORE_ERROR,     /* I/O, corruption, full disk, misuse: see store_errmsg() */
};

#define STORE_LOGIN_MAX  64  /* bytes, not counting the NUL */
#define STORE_NAME_MAX   255 /* bytes of UTF-8 */
#define STORE_ROLE_MAX   15
#define STORE_HASH_MAX   128 /* >= crypto_pwhash_STRBYTES */
#define STORE_DEVICE_MAX 127
#define STORE_ADDR_MAX   63
#define STORE_TOKEN_HASH 32 /* bytes of BLAKE2b over a session token */

struct store;

struct store_options {
    const char *path;    /* database file; created if missing */
    bool sync_full;      /* PRAGMA synchronous=FULL (true) or NORMAL */
    int busy_timeout_ms; /* how long to wait on a lock held by another process */
};

struct store_user {
    int64_t id;
    char login[STORE_LOGIN_MAX + 1];
    char name[STORE_NAME_MAX + 1];
    char role[STORE_ROLE_MAX + 1];
    bool disabled;
    bool must_change_password;
    char pw_hash[STORE_HASH_MAX + 1];
    int64_t created_at; /* milliseconds since the Unix epoch */
    int64_t updated_at;
};

struct store_session {
    int64_t id;
    int64_t user_id;
    char device[STORE_DEVICE_MAX + 1];
    char address[STORE_ADDR_MAX + 1];
    int64_t created_at;
    int64_t last_seen;
};

/* Opens (creating if needed) and migrates the database. On success *out is owned by the
 * caller and released with store_close(). On failure a message is written to err. */
enum store_rc store_open(const struct store_options *opt, struct store **out, char *err,
                         size_t errlen);
/* Checkpoints the WAL, finalizes every statement and closes. Accepts NULL. */
void store_close(struct store *st);
/* The message of the last STORE_ERROR; valid until the next store call. */
const char *store_errmsg(struct store *st);
/* The schema version this binary writes (the number of migrations it knows). */
int store_schema_latest(void);
int store_schema_version(struct store *st);

/* Transactions. store_tx_begin() is a no-op if one is already open. */
enum store_rc store_tx_begin(struct store *st);
enum store_rc store_tx_commit(struct store *st);
void store_tx_rollback(struct store *st);
bool store_tx_is_open(const struct store *st);
/* Savepoint around one request; store_op_end(st, false) undoes only that request. */
enum store_rc store_op_begin(struct store *st);
enum store_rc store_op_end(struct store *st, bool keep);

/* Users. store_user_insert fills u->id, created_at and updated_at from `now`. */
enum store_rc store_user_insert(struct store *st, struct store_user *u, int64_t now);
enum store_rc store_user_get(struct store *st, int64_t id, struct store_user *out);
enum store_rc store_user_get_by_login(struct store *st, const char *login, struct store_user *out);
enum store_rc store_user_set_disabled(struct store *st, int64_t id, bool disabled, int64_t now);
enum store_rc store_user_set_password(struct store *st, int64_t id, const char *pw_hash,
                                      bool must_change, int64_t now);
enum store_rc store_user_count(struct store *st, int64_t *out);
/* Calls fn for every user in login order; a nonzero return from fn stops the walk. The
 * struct passed to fn is only valid during the call. */
typedef int (*store_user_fn)(void *ctx, const struct store_user *u);
enum store_rc store_user_each(struct store *st, store_user_fn fn, void *ctx);

/* Sessions. Only a hash of the token is stored. Fills s->id. */
enum store_rc store_session_insert(struct store *st, const uint8_t token_hash[STORE_TOKEN_HASH],
                                   struct store_session *s);
/* Finds a session that has not ended. */
enum store_rc store_session_lookup(struct store *st, const uint8_t token_hash[STORE_TOKEN_HASH],
                                   struct store_session *out);
/* A session by id, if it has not ended. */
enum store_rc store_session_get(struct store *st, int64_t id, struct store_session *out);
enum store_rc store_session_touch(struct store *st, int64_t id, int64_t now);
enum store_rc store_session_end(struct store *st, int64_t id, int64_t now);
/* Ends every live session of a user except `keep_id` (0 keeps none). */
enum store_rc store_session_end_user(struct store *st, int64_t user_id, int64_t keep_id,
                                     int64_t now);

#endif
