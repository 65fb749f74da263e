/* store_fed.c - federation's tables (store_fed.h): this server's id and its pinned peers. A
 * peer's addresses are kept as one space-separated column: no address holds a space
 * (fed_address_valid), and the list is read and written whole. */
#include "store_fed.h"
#include "store_internal.h"

#include <stdio.h>
#include <string.h>

/* Prepares sql for one call; the caller finalizes. */
static enum store_rc prep(struct store *st, const char *sql, sqlite3_stmt **s, const char *what)
{
    if (sqlite3_prepare_v2(st->db, sql, -1, s, NULL) != SQLITE_OK) {
        *s = NULL;
        return store_fail(st, what);
    }
    return STORE_OK;
}

/* Steps a statement that returns no rows and finalizes it; a constraint is STORE_CONFLICT. */
static enum store_rc run_done(struct store *st, sqlite3_stmt *s, const char *what)
{
    enum store_rc rc = store_step_done(st, s, what);
    sqlite3_finalize(s);
    return rc;
}

enum store_rc store_server_id_get(struct store *st, char *out, size_t n)
{
    sqlite3_stmt *s;
    if (prep(st, "SELECT server_id FROM server_identity WHERE only = 1", &s, "server id"))
        return STORE_ERROR;
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_OK;
    if (rc == SQLITE_ROW)
        store_copy_text(out, n, s, 0);
    else if (rc == SQLITE_DONE)
        r = STORE_NOT_FOUND;
    else
        r = store_fail(st, "server id");
    sqlite3_finalize(s);
    return r;
}

enum store_rc store_server_id_set(struct store *st, const char *id, bool adopted, int64_t now)
{
    sqlite3_stmt *s;
    if (prep(st,
             "INSERT INTO server_identity (only, server_id, adopted, created_at)"
             " VALUES (1, ?, ?, ?)",
             &s, "server id"))
        return STORE_ERROR;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(s, 2, adopted);
    sqlite3_bind_int64(s, 3, now);
    return run_done(st, s, "server id");
}

#define PEER_COLS                                                                                  \
    "server_id, public_key, addresses, tls_pin, name, added_by, added_at, fingerprint FROM peers"

static void read_peer(sqlite3_stmt *s, struct store_peer *p)
{
    memset(p, 0, sizeof *p);
    store_copy_text(p->server_id, sizeof p->server_id, s, 0);
    if (sqlite3_column_bytes(s, 1) == STORE_PEER_KEY_BYTES)
        memcpy(p->key, sqlite3_column_blob(s, 1), STORE_PEER_KEY_BYTES);
    const char *a = (const char *)sqlite3_column_text(s, 2);
    while (a && *a && p->naddr < STORE_PEER_ADDRS_MAX) {
        size_t len = strcspn(a, " ");
        if (len && len <= STORE_PEER_ADDR_MAX) {
            memcpy(p->addr[p->naddr], a, len);
            p->addr[p->naddr++][len] = '\0';
        }
        a += len;
        a += *a == ' ';
    }
    store_copy_text(p->tls_pin, sizeof p->tls_pin, s, 3);
    store_copy_text(p->name, sizeof p->name, s, 4);
    store_copy_text(p->added_by, sizeof p->added_by, s, 5);
    p->added_at = sqlite3_column_int64(s, 6);
    store_copy_text(p->fingerprint, sizeof p->fingerprint, s, 7);
}

enum store_rc store_peer_insert(struct store *st, const struct store_peer *p)
{
    char addrs[STORE_PEER_ADDRS_MAX * (STORE_PEER_ADDR_MAX + 1) + 1] = "";
    size_t len = 0;
    for (int i = 0; i < p->naddr && i < STORE_PEER_ADDRS_MAX; i++) {
        size_t n = strlen(p->addr[i]);
        if (len)
            addrs[len++] = ' ';
        memcpy(addrs + len, p->addr[i], n);
        len += n;
        addrs[len] = '\0';
    }
    sqlite3_stmt *s;
    if (prep(st,
             "INSERT INTO peers (server_id, public_key, addresses, tls_pin, name, added_by,"
             " added_at, fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
             &s, "peer insert"))
        return STORE_ERROR;
    sqlite3_bind_text(s, 1, p->server_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(s, 2, p->key, STORE_PEER_KEY_BYTES, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 3, addrs, (int)len, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 4, p->tls_pin, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 5, p->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 6, p->added_by, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 7, p->added_at);
    sqlite3_bind_text(s, 8, p->fingerprint, -1, SQLITE_TRANSIENT);
    return run_done(st, s, "peer insert");
}

static enum store_rc step_peer(struct store *st, sqlite3_stmt *s, struct store_peer *out)
{
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_OK;
    if (rc == SQLITE_ROW)
        read_peer(s, out);
    else if (rc == SQLITE_DONE)
        r = STORE_NOT_FOUND;
    else
        r = store_fail(st, "peer");
    sqlite3_finalize(s);
    return r;
}

enum store_rc store_peer_get(struct store *st, const char *server_id, struct store_peer *out)
{
    sqlite3_stmt *s;
    if (prep(st, "SELECT " PEER_COLS " WHERE server_id = ?", &s, "peer get"))
        return STORE_ERROR;
    sqlite3_bind_text(s, 1, server_id, -1, SQLITE_TRANSIENT);
    return step_peer(st, s, out);
}

enum store_rc store_peer_get_by_key(struct store *st, const uint8_t key[STORE_PEER_KEY_BYTES],
                                    struct store_peer *out)
{
    sqlite3_stmt *s;
    if (prep(st, "SELECT " PEER_COLS " WHERE public_key = ?", &s, "peer get"))
        return STORE_ERROR;
    sqlite3_bind_blob(s, 1, key, STORE_PEER_KEY_BYTES, SQLITE_TRANSIENT);
    return step_peer(st, s, out);
}

enum store_rc store_peer_delete(struct store *st, const char *server_id)
{
    sqlite3_stmt *s;
    if (prep(st, "DELETE FROM peers WHERE server_id = ?", &s, "peer delete"))
        return STORE_ERROR;
    sqlite3_bind_text(s, 1, server_id, -1, SQLITE_TRANSIENT);
    enum store_rc rc = run_done(st, s, "peer delete");
    if (rc == STORE_OK && sqlite3_changes(st->db) == 0)
        rc = STORE_NOT_FOUND;
    return rc;
}

enum store_rc store_peer_count(struct store *st, int64_t *out)
{
    sqlite3_stmt *s;
    if (prep(st, "SELECT count(*) FROM peers", &s, "peer count"))
        return STORE_ERROR;
    enum store_rc rc = store_step_int(st, s, out, "peer count");
    sqlite3_finalize(s);
    return rc;
}

enum store_rc store_peer_each(struct store *st, store_peer_fn fn, void *ctx)
{
    sqlite3_stmt *s;
    if (prep(st, "SELECT " PEER_COLS " ORDER BY server_id", &s, "peer list"))
        return STORE_ERROR;
    struct store_peer p;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        read_peer(s, &p);
        if (fn(ctx, &p))
            break;
    }
    enum store_rc r =
        rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK : store_fail(st, "peer list");
    sqlite3_finalize(s);
    return r;
}
