/* store_blob_fetch.c - the blobs this server wants from other servers (store_fed.h, migration
 * 17): which received events wait for each, how far its fetch has come, which servers' bytes
 * failed its hash, and the checks that decide who may be served or may read one. The bytes
 * themselves are files (server/fed_blobs.c); a want's `have` moves only after they are fsynced,
 * and their sum is what federation_blob_staging_bytes bounds (moved_at, migration 18, says which
 * partial files stalled longest).
 * Statements are prepared at first use and kept until store_close. */
#include "store_fed.h"
#include "store_internal.h"

#include <stdio.h>
#include <string.h>

enum bf_stmt {
    B_WANT_ADD,
    B_REF_ADD,
    B_WANT_GET,
    B_WANT_DUE,
    B_WANT_EACH,
    B_PROGRESS,
    B_RETRY,
    B_SOURCES,
    B_BAD_ADD,
    B_BAD_LAST,
    B_BAD_CLEAR,
    B_DONE_BLOB,
    B_DONE_REFS,
    B_DONE_DEL_REFS,
    B_DONE_DEL_WANT,
    B_READABLE,
    B_SERVABLE,
    B_IN_ROOM_HERE,
    B_IN_ROOM_WANTED,
    B_WAKE,
    B_WAKE_WHY,
    B_WAIT,
    B_STAGED,
    B_STALE,
    B_COUNT
};
_Static_assert(B_COUNT <= STORE_BLOB_STMTS, "raise STORE_BLOB_STMTS");

#define WANT_COLS                                                                                  \
    "blob, coalesce(total, 0), have, coalesce(source, ''), tries, next_at, state,"                 \
    " coalesce(last_error, ''), uploader, moved_at"

static const char *const bf_sql[B_COUNT] = {
    [B_WANT_ADD] = "INSERT OR IGNORE INTO blob_wants (blob, uploader, created_at) VALUES (?, ?, ?)",
    [B_REF_ADD] = "INSERT OR IGNORE INTO blob_want_refs (blob, room, pos, origin)"
                  " VALUES (?, ?, ?, ?)",
    [B_WANT_GET] = "SELECT " WANT_COLS " FROM blob_wants WHERE blob = ?",
    [B_WANT_DUE] = "SELECT " WANT_COLS " FROM blob_wants WHERE next_at <= ?1"
                   " ORDER BY next_at, blob LIMIT ?2",
    [B_WANT_EACH] = "SELECT " WANT_COLS " FROM blob_wants ORDER BY blob",
    /* moved_at: when the staged bytes last grew (the old have is the one compared). */
    [B_PROGRESS] = "UPDATE blob_wants SET have = ?2, total = nullif(?3, 0), source = ?4,"
                   " state = ?5, moved_at = CASE WHEN ?2 > have THEN ?6 ELSE moved_at END"
                   " WHERE blob = ?1",
    [B_RETRY] = "UPDATE blob_wants SET state = ?2, have = ?3, tries = ?4, next_at = ?5,"
                " last_error = ?6, source = CASE WHEN ?3 = 0 THEN NULL ELSE source END,"
                " total = CASE WHEN ?3 = 0 THEN NULL ELSE total END WHERE blob = ?1",
    /* Admitted member servers of the waiting events' rooms: origins first. A server that is
     * the origin in one room and a plain member in another counts as an origin (max). */
    [B_SOURCES] = "SELECT s.server_id, min(ro.room_id), max(s.server_id = w.origin)"
                  " FROM blob_want_refs w JOIN room_servers s ON s.room = w.room"
                  " AND s.admitted = 1 JOIN rooms ro ON ro.id = w.room"
                  " WHERE w.blob = ?1 AND s.server_id != ?2 AND s.server_id NOT IN"
                  " (SELECT server_id FROM blob_bad_sources WHERE blob = ?1)"
                  " GROUP BY s.server_id ORDER BY 3 DESC, 1",
    [B_BAD_ADD] = "INSERT INTO blob_bad_sources (blob, server_id, at) VALUES (?1, ?2, ?3)"
                  " ON CONFLICT (blob, server_id) DO UPDATE SET at = ?3",
    [B_BAD_LAST] = "SELECT server_id FROM blob_bad_sources WHERE blob = ? ORDER BY at DESC,"
                   " server_id LIMIT 1",
    [B_BAD_CLEAR] = "DELETE FROM blob_bad_sources WHERE blob = ?",
    [B_DONE_BLOB] = "INSERT OR IGNORE INTO blobs (id, size, uploader, created_at)"
                    " SELECT blob, ?2, uploader, ?3 FROM blob_wants WHERE blob = ?1",
    [B_DONE_REFS] = "INSERT OR IGNORE INTO blob_refs (blob, room, pos)"
                    " SELECT blob, room, pos FROM blob_want_refs WHERE blob = ?",
    [B_DONE_DEL_REFS] = "DELETE FROM blob_want_refs WHERE blob = ?",
    [B_DONE_DEL_WANT] = "DELETE FROM blob_wants WHERE blob = ?",
    /* store_e2ee.c's E_READABLE over the events that wait for the blob. */
    [B_READABLE] = "SELECT 1 FROM blob_want_refs r JOIN room_members m ON m.room = r.room"
                   " JOIN rooms ro ON ro.id = r.room"
                   " WHERE r.blob = ?1 AND m.user_id = ?2 AND m.left_pos IS NULL"
                   " AND (ro.history = 'shared' OR r.pos >= m.joined_pos) LIMIT 1",
    [B_SERVABLE] = "SELECT b.size FROM blobs b JOIN blob_refs r ON r.blob = b.id"
                   " JOIN rooms ro ON ro.id = r.room JOIN room_servers s ON s.room = r.room"
                   " WHERE b.id = ?1 AND ro.room_id = ?2 AND s.server_id = ?3 AND s.admitted = 1"
                   " LIMIT 1",
    [B_IN_ROOM_HERE] = "SELECT 1 FROM blob_refs WHERE blob = ? AND room = ? LIMIT 1",
    [B_IN_ROOM_WANTED] = "SELECT 1 FROM blob_want_refs WHERE blob = ? AND room = ? LIMIT 1",
    [B_WAKE] = "UPDATE blob_wants SET next_at = 0 WHERE next_at > 0",
    [B_WAKE_WHY] = "UPDATE blob_wants SET next_at = 0 WHERE next_at > 0 AND last_error = ?",
    [B_WAIT] = "UPDATE blob_wants SET state = 'waiting', total = nullif(?2, 0), next_at = ?3,"
               " last_error = ?4 WHERE blob = ?1",
    /* Both over the partial index blob_wants_staged (migration 18). */
    [B_STAGED] = "SELECT coalesce(sum(have), 0) FROM blob_wants WHERE have > 0",
    [B_STALE] = "SELECT " WANT_COLS " FROM blob_wants WHERE have > 0 AND moved_at <= ?1"
                " ORDER BY moved_at, blob LIMIT ?2",
};

static sqlite3_stmt *bstmt(struct store *st, enum bf_stmt id)
{
    if (!st->blob[id] && sqlite3_prepare_v3(st->db, bf_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                            &st->blob[id], NULL) != SQLITE_OK) {
        store_fail(st, "blob fetch statement");
        st->blob[id] = NULL;
    }
    return st->blob[id];
}

#define BSTMT(st, id, s)                                                                           \
    sqlite3_stmt *s = bstmt(st, id);                                                               \
    if (!s)                                                                                        \
    return STORE_ERROR

enum store_rc store_blob_want_add(struct store *st, const char *blob, int64_t room, int64_t pos,
                                  const char *origin, int64_t uploader, int64_t now)
{
    BSTMT(st, B_WANT_ADD, s);
    sqlite3_bind_text(s, 1, blob, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, uploader);
    sqlite3_bind_int64(s, 3, now);
    enum store_rc r = store_step_done(st, s, "blob want");
    if (r != STORE_OK)
        return r;
    BSTMT(st, B_REF_ADD, f);
    sqlite3_bind_text(f, 1, blob, -1, SQLITE_STATIC);
    sqlite3_bind_int64(f, 2, room);
    sqlite3_bind_int64(f, 3, pos);
    sqlite3_bind_text(f, 4, origin, -1, SQLITE_STATIC);
    return store_step_done(st, f, "blob want reference");
}

static void want_row(sqlite3_stmt *s, struct store_blob_want *w)
{
    memset(w, 0, sizeof *w);
    store_copy_text(w->blob, sizeof w->blob, s, 0);
    w->total = sqlite3_column_int64(s, 1);
    w->have = sqlite3_column_int64(s, 2);
    store_copy_text(w->source, sizeof w->source, s, 3);
    w->tries = sqlite3_column_int64(s, 4);
    w->next_at = sqlite3_column_int64(s, 5);
    store_copy_text(w->state, sizeof w->state, s, 6);
    store_copy_text(w->last_error, sizeof w->last_error, s, 7);
    w->uploader = sqlite3_column_int64(s, 8);
    w->moved_at = sqlite3_column_int64(s, 9);
}

enum store_rc store_blob_want_get(struct store *st, const char *blob, struct store_blob_want *out)
{
    BSTMT(st, B_WANT_GET, s);
    sqlite3_bind_text(s, 1, blob, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        want_row(s, out);
    store_finish(s);
    if (rc == SQLITE_ROW)
        return STORE_OK;
    return rc == SQLITE_DONE ? STORE_NOT_FOUND : store_fail(st, "blob want");
}

/* Steps s, calling fn with each want. */
static enum store_rc each_want(struct store *st, sqlite3_stmt *s, store_blob_want_fn fn, void *ctx)
{
    int rc;
    struct store_blob_want w;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        want_row(s, &w);
        if (fn(ctx, &w)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    store_finish(s);
    return rc == SQLITE_DONE ? STORE_OK : store_fail(st, "blob wants");
}

enum store_rc store_blob_want_due(struct store *st, int64_t now, int limit, store_blob_want_fn fn,
                                  void *ctx)
{
    BSTMT(st, B_WANT_DUE, s);
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int(s, 2, limit);
    return each_want(st, s, fn, ctx);
}

enum store_rc store_blob_want_each(struct store *st, store_blob_want_fn fn, void *ctx)
{
    BSTMT(st, B_WANT_EACH, s);
    return each_want(st, s, fn, ctx);
}

enum store_rc store_blob_want_progress(struct store *st, const char *blob, int64_t have,
                                       int64_t total, const char *source, const char *state,
                                       int64_t now)
{
    BSTMT(st, B_PROGRESS, s);
    sqlite3_bind_text(s, 1, blob, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, have);
    sqlite3_bind_int64(s, 3, total);
    sqlite3_bind_text(s, 4, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, state, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, now);
    return store_step_done(st, s, "blob want progress");
}

enum store_rc store_blob_want_wait(struct store *st, const char *blob, int64_t total,
                                   int64_t next_at, const char *why)
{
    BSTMT(st, B_WAIT, s);
    sqlite3_bind_text(s, 1, blob, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, total);
    sqlite3_bind_int64(s, 3, next_at);
    sqlite3_bind_text(s, 4, why, -1, SQLITE_STATIC);
    return store_step_done(st, s, "blob want wait");
}

enum store_rc store_blob_staged_bytes(struct store *st, int64_t *out)
{
    BSTMT(st, B_STAGED, s);
    *out = 0;
    enum store_rc r = store_step_int(st, s, out, "staged blob bytes");
    return r == STORE_NOT_FOUND ? STORE_OK : r;
}

enum store_rc store_blob_want_stale(struct store *st, int64_t before, int limit,
                                    store_blob_want_fn fn, void *ctx)
{
    BSTMT(st, B_STALE, s);
    sqlite3_bind_int64(s, 1, before);
    sqlite3_bind_int(s, 2, limit);
    return each_want(st, s, fn, ctx);
}

enum store_rc store_blob_want_retry(struct store *st, const char *blob, const char *state,
                                    int64_t have, int64_t tries, int64_t next_at, const char *why)
{
    BSTMT(st, B_RETRY, s);
    sqlite3_bind_text(s, 1, blob, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, state, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, have);
    sqlite3_bind_int64(s, 4, tries);
    sqlite3_bind_int64(s, 5, next_at);
    sqlite3_bind_text(s, 6, why, -1, SQLITE_STATIC);
    return store_step_done(st, s, "blob want retry");
}

enum store_rc store_blob_want_sources(struct store *st, const char *blob, const char *self,
                                      store_blob_source_fn fn, void *ctx)
{
    BSTMT(st, B_SOURCES, s);
    sqlite3_bind_text(s, 1, blob, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, self, -1, SQLITE_STATIC);
    int rc;
    char server[STORE_SERVER_ID_MAX + 1], room[STORE_ROOM_ID_MAX + 1];
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        store_copy_text(server, sizeof server, s, 0);
        store_copy_text(room, sizeof room, s, 1);
        if (fn(ctx, server, room, sqlite3_column_int(s, 2) != 0)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    store_finish(s);
    return rc == SQLITE_DONE ? STORE_OK : store_fail(st, "blob sources");
}

enum store_rc store_blob_bad_add(struct store *st, const char *blob, const char *server,
                                 int64_t now)
{
    BSTMT(st, B_BAD_ADD, s);
    sqlite3_bind_text(s, 1, blob, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, server, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now);
    return store_step_done(st, s, "blob bad source");
}

enum store_rc store_blob_bad_last(struct store *st, const char *blob, char *out, size_t n)
{
    BSTMT(st, B_BAD_LAST, s);
    sqlite3_bind_text(s, 1, blob, -1, SQLITE_STATIC);
    out[0] = '\0';
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        store_copy_text(out, n, s, 0);
    store_finish(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK : store_fail(st, "blob bad source");
}

static enum store_rc by_blob(struct store *st, enum bf_stmt id, const char *blob, const char *what)
{
    BSTMT(st, id, s);
    sqlite3_bind_text(s, 1, blob, -1, SQLITE_STATIC);
    return store_step_done(st, s, what);
}

enum store_rc store_blob_bad_clear(struct store *st, const char *blob)
{
    return by_blob(st, B_BAD_CLEAR, blob, "blob bad sources");
}

enum store_rc store_blob_want_done(struct store *st, const char *blob, int64_t size, int64_t now)
{
    BSTMT(st, B_DONE_BLOB, s);
    sqlite3_bind_text(s, 1, blob, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, size);
    sqlite3_bind_int64(s, 3, now);
    enum store_rc r = store_step_done(st, s, "fetched blob");
    if (r == STORE_OK)
        r = by_blob(st, B_DONE_REFS, blob, "fetched blob references");
    if (r == STORE_OK)
        r = by_blob(st, B_DONE_DEL_REFS, blob, "blob want references");
    if (r == STORE_OK)
        r = by_blob(st, B_BAD_CLEAR, blob, "blob bad sources");
    if (r == STORE_OK)
        r = by_blob(st, B_DONE_DEL_WANT, blob, "blob want");
    return r;
}

enum store_rc store_blob_want_readable(struct store *st, const char *blob, int64_t user_id,
                                       bool *out)
{
    BSTMT(st, B_READABLE, s);
    sqlite3_bind_text(s, 1, blob, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, user_id);
    int64_t one = 0;
    enum store_rc r = store_step_int(st, s, &one, "blob want access");
    *out = r == STORE_OK;
    return r == STORE_NOT_FOUND ? STORE_OK : r;
}

enum store_rc store_blob_servable(struct store *st, const char *blob, const char *room_id,
                                  const char *server, int64_t *size)
{
    BSTMT(st, B_SERVABLE, s);
    sqlite3_bind_text(s, 1, blob, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, room_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, server, -1, SQLITE_STATIC);
    return store_step_int(st, s, size, "blob to serve");
}

static enum store_rc blob_room_has(struct store *st, enum bf_stmt id, const char *blob,
                                   int64_t room, bool *out)
{
    BSTMT(st, id, s);
    sqlite3_bind_text(s, 1, blob, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, room);
    int64_t one = 0;
    enum store_rc r = store_step_int(st, s, &one, "blob in room");
    *out = r == STORE_OK;
    return r == STORE_NOT_FOUND ? STORE_OK : r;
}

enum store_rc store_blob_in_room(struct store *st, const char *blob, int64_t room, bool *here,
                                 bool *wanted)
{
    enum store_rc r = blob_room_has(st, B_IN_ROOM_HERE, blob, room, here);
    return r == STORE_OK ? blob_room_has(st, B_IN_ROOM_WANTED, blob, room, wanted) : r;
}

enum store_rc store_blob_want_wake(struct store *st)
{
    BSTMT(st, B_WAKE, s);
    return store_step_done(st, s, "blob wants wake");
}

enum store_rc store_blob_want_wake_why(struct store *st, const char *why)
{
    BSTMT(st, B_WAKE_WHY, s);
    sqlite3_bind_text(s, 1, why, -1, SQLITE_STATIC);
    return store_step_done(st, s, "blob wants wake");
}
