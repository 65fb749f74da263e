/* store_e2ee.c - device public keys, encrypted blobs, resumable uploads. Nothing here can
 * decrypt anything: the keys are public halves, the blobs ciphertext. */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum e2ee_stmt {
    E_DEV_INSERT,
    E_DEV_GET,
    E_DEV_REVOKE,
    E_DEV_BY_SESSION,
    E_DEV_OF_USER,
    E_DEV_IN_ROOM,
    E_DEV_REBIND,
    E_DEV_RESIGN,
    E_UP_INSERT,
    E_UP_GET,
    E_UP_OFFSET,
    E_UP_DELETE,
    E_UP_USAGE,
    E_UP_EXPIRED,
    E_BLOB_INSERT,
    E_BLOB_GET,
    E_REF_ADD,
    E_READABLE,
    E_DEV_CURRENT,
    E_HOLDER_ADD,
    E_HOLDER_GONE,
    E_DL_INSERT,
    E_DL_OF_USER,
    E_DL_LATEST,
    E_DL_IN_ROOM,
    E_UP_LIVE,
    E_PEND_ADD,
    E_PEND_SETTLE,
    E_PEND_DEL,
    E_PEND_READABLE,
    E_COUNT
};
_Static_assert(E_COUNT <= STORE_E2EE_STMTS, "raise STORE_E2EE_STMTS");

#define DEV_FIELDS                                                                                 \
    "d.id, d.device_id, d.user_id, u.login, coalesce(d.session_id, 0), d.label, d.sign_pk,"        \
    " d.box_pk, d.self_sig, d.created_at, coalesce(d.revoked_at, 0), coalesce(d.revoked_pos, 0)"
#define DEV_FROM " FROM devices d JOIN users u ON u.id = d.user_id"
#define DEV_COLS DEV_FIELDS DEV_FROM
/* The device has a live session here, or belongs to another server's user (u: its owner). */
#define DEV_LIVE                                                                                   \
    "(u.home IS NOT NULL OR EXISTS (SELECT 1 FROM sessions s WHERE s.id = d.session_id"            \
    " AND s.ended_at IS NULL))"
#define UP_COLS "id, user_id, blob, length, offset, created_at, expires_at, coalesce(done_at, 0)"
#define DL_COLS                                                                                    \
    "dl.user_id, u.login, dl.seq, dl.list, dl.by_device, dl.sig, dl.created_at"                    \
    " FROM device_lists dl JOIN users u ON u.id = dl.user_id"

static const char *const e2ee_sql[E_COUNT] = {
    [E_DEV_INSERT] = "INSERT INTO devices (device_id, user_id, session_id, label, sign_pk,"
                     " box_pk, self_sig, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    [E_DEV_GET] = "SELECT " DEV_COLS " WHERE d.device_id = ?",
    /* The position as T_EVENT_INSERT counts them: the newest, or a restore's floor. */
    [E_DEV_REVOKE] = "UPDATE devices SET revoked_at = ?, revoked_pos = max((SELECT"
                     " coalesce(max(pos), 0) FROM events), coalesce((SELECT value FROM meta"
                     " WHERE key = 'pos_floor'), 0)) WHERE id = ? AND revoked_at IS NULL",
    [E_DEV_BY_SESSION] = "SELECT " DEV_COLS " WHERE d.session_id = ? AND d.revoked_at IS NULL"
                         " ORDER BY d.id LIMIT ?",
    [E_DEV_OF_USER] = "SELECT " DEV_COLS " WHERE d.user_id = ? ORDER BY d.id",
    /* A device whose session ended (logout, reset, expiry) receives nothing until it logs in
     * again and re-registers: its keys may be on a phone nobody holds any more. A device of
     * another server's user (u.home) has no session here: its server's device lines in the
     * room's log say whether it is active (issue 19). */
    [E_DEV_IN_ROOM] = "SELECT " DEV_FIELDS ", m.joined_pos" DEV_FROM
                      " JOIN room_members m ON m.user_id = d.user_id"
                      " WHERE m.room = ? AND m.left_pos IS NULL AND d.revoked_at IS NULL"
                      " AND " DEV_LIVE " ORDER BY u.login, d.id",
    [E_DEV_REBIND] = "UPDATE devices SET session_id = ? WHERE id = ? AND revoked_at IS NULL",
    [E_DEV_RESIGN] = "UPDATE devices SET self_sig = ? WHERE id = ? AND revoked_at IS NULL",
    [E_UP_INSERT] = "INSERT INTO uploads (id, user_id, blob, length, offset, created_at,"
                    " expires_at, done_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    [E_UP_GET] = "SELECT " UP_COLS " FROM uploads WHERE id = ?",
    [E_UP_OFFSET] = "UPDATE uploads SET offset = ?, done_at = ? WHERE id = ?",
    [E_UP_DELETE] = "DELETE FROM uploads WHERE id = ?",
    [E_UP_USAGE] = "SELECT (SELECT coalesce(sum(size), 0) FROM blobs WHERE uploader = ?1)"
                   " + (SELECT coalesce(sum(length), 0) FROM uploads"
                   " WHERE user_id = ?1 AND done_at IS NULL)",
    [E_UP_EXPIRED] = "SELECT id FROM uploads WHERE done_at IS NULL AND expires_at <= ?"
                     " ORDER BY expires_at LIMIT ?",
    [E_BLOB_INSERT] = "INSERT OR IGNORE INTO blobs (id, size, uploader, created_at)"
                      " VALUES (?, ?, ?, ?)",
    [E_BLOB_GET] = "SELECT size, uploader FROM blobs WHERE id = ?",
    [E_REF_ADD] = "INSERT OR IGNORE INTO blob_refs (blob, room, pos) VALUES (?, ?, ?)",
    /* In a room whose history is 'joined', only photos posted since one joined. */
    [E_READABLE] = "SELECT 1 FROM blob_refs r JOIN room_members m ON m.room = r.room"
                   " JOIN rooms ro ON ro.id = r.room"
                   " WHERE r.blob = ?1 AND m.user_id = ?2 AND m.left_pos IS NULL"
                   " AND (ro.history = 'shared' OR r.pos >= m.joined_pos) LIMIT 1",
    /* One device of E_DEV_IN_ROOM's set, by its id: the same three conditions. */
    [E_DEV_CURRENT] = "SELECT 1 FROM devices d JOIN users u ON u.id = d.user_id"
                      " JOIN room_members m ON m.user_id = d.user_id AND m.room = ?1"
                      " WHERE d.device_id = ?2 AND m.left_pos IS NULL AND d.revoked_at IS NULL"
                      " AND " DEV_LIVE,
    [E_HOLDER_ADD] = "INSERT OR IGNORE INTO epoch_devices (room, epoch, device) VALUES (?, ?, ?)",
    /* A device the epoch's key went to that is no longer in E_DEV_IN_ROOM's set. */
    [E_HOLDER_GONE] = "SELECT h.device FROM epoch_devices h WHERE h.room = ?1 AND h.epoch = ?2"
                      " AND NOT EXISTS (SELECT 1 FROM devices d JOIN users u ON u.id = d.user_id"
                      " JOIN room_members m ON m.user_id = d.user_id AND m.room = ?1"
                      " WHERE d.device_id = h.device AND m.left_pos IS NULL"
                      " AND d.revoked_at IS NULL AND " DEV_LIVE ")"
                      " ORDER BY h.device LIMIT 1",
    [E_DL_INSERT] = "INSERT INTO device_lists (user_id, seq, list, by_device, sig, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
    [E_DL_OF_USER] = "SELECT " DL_COLS " WHERE dl.user_id = ? ORDER BY dl.seq",
    [E_DL_LATEST] = "SELECT " DL_COLS " WHERE dl.user_id = ? ORDER BY dl.seq DESC LIMIT 1",
    /* The newest list of each current member (members without one have none to give). */
    [E_DL_IN_ROOM] = "SELECT " DL_COLS " JOIN room_members m ON m.user_id = dl.user_id"
                     " WHERE m.room = ? AND m.left_pos IS NULL AND dl.seq ="
                     " (SELECT max(seq) FROM device_lists WHERE user_id = dl.user_id)"
                     " ORDER BY u.login",
    [E_UP_LIVE] = "SELECT offset, length FROM uploads WHERE user_id = ? AND blob = ?"
                  " AND done_at IS NULL AND expires_at > ? ORDER BY offset DESC LIMIT 1",
    [E_PEND_ADD] =
        "INSERT OR IGNORE INTO blob_pending (blob, room, pos, user_id) VALUES (?, ?, ?, ?)",
    [E_PEND_SETTLE] = "INSERT OR IGNORE INTO blob_refs (blob, room, pos)"
                      " SELECT blob, room, pos FROM blob_pending WHERE blob = ?1 AND user_id = ?2",
    [E_PEND_DEL] = "DELETE FROM blob_pending WHERE blob = ?1 AND user_id = ?2",
    /* As E_READABLE, over the events that wait for an upload; ?3 = 0: in any room. */
    [E_PEND_READABLE] = "SELECT p.user_id FROM blob_pending p"
                        " JOIN room_members m ON m.room = p.room JOIN rooms ro ON ro.id = p.room"
                        " WHERE p.blob = ?1 AND m.user_id = ?2 AND m.left_pos IS NULL"
                        " AND (?3 = 0 OR p.room = ?3)"
                        " AND (ro.history = 'shared' OR p.pos >= m.joined_pos) LIMIT 1",
};

enum store_rc store_e2ee_prepare(struct store *st, char *err, size_t errlen)
{
    return store_prepare_all(st, e2ee_sql, st->e2ee, E_COUNT, "e2ee", err, errlen);
}

static void copy_blob(uint8_t *dst, size_t n, sqlite3_stmt *s, int col)
{
    memset(dst, 0, n);
    if ((size_t)sqlite3_column_bytes(s, col) == n)
        memcpy(dst, sqlite3_column_blob(s, col), n);
}

static void read_device(sqlite3_stmt *s, struct store_device *d)
{
    memset(d, 0, sizeof *d);
    d->id = sqlite3_column_int64(s, 0);
    store_copy_text(d->device_id, sizeof d->device_id, s, 1);
    d->user_id = sqlite3_column_int64(s, 2);
    store_copy_text(d->login, sizeof d->login, s, 3);
    d->session_id = sqlite3_column_int64(s, 4);
    store_copy_text(d->label, sizeof d->label, s, 5);
    copy_blob(d->sign_pk, sizeof d->sign_pk, s, 6);
    copy_blob(d->box_pk, sizeof d->box_pk, s, 7);
    copy_blob(d->self_sig, sizeof d->self_sig, s, 8);
    d->created_at = sqlite3_column_int64(s, 9);
    d->revoked_at = sqlite3_column_int64(s, 10);
    d->revoked_pos = sqlite3_column_int64(s, 11);
    d->joined_pos = sqlite3_column_count(s) > 12 ? sqlite3_column_int64(s, 12) : 0;
}

enum store_rc store_device_insert(struct store *st, struct store_device *d)
{
    sqlite3_stmt *s = st->e2ee[E_DEV_INSERT];
    sqlite3_bind_text(s, 1, d->device_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, d->user_id);
    if (d->session_id)
        sqlite3_bind_int64(s, 3, d->session_id);
    sqlite3_bind_text(s, 4, d->label, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 5, d->sign_pk, sizeof d->sign_pk, SQLITE_STATIC);
    sqlite3_bind_blob(s, 6, d->box_pk, sizeof d->box_pk, SQLITE_STATIC);
    sqlite3_bind_blob(s, 7, d->self_sig, sizeof d->self_sig, SQLITE_STATIC);
    sqlite3_bind_int64(s, 8, d->created_at);
    enum store_rc rc = store_step_done(st, s, "device insert");
    if (rc == STORE_OK)
        d->id = sqlite3_last_insert_rowid(st->db);
    return rc;
}

enum store_rc store_device_get(struct store *st, const char *device_id, struct store_device *out)
{
    sqlite3_stmt *s = st->e2ee[E_DEV_GET];
    sqlite3_bind_text(s, 1, device_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_OK;
    if (rc == SQLITE_ROW)
        read_device(s, out);
    else if (rc == SQLITE_DONE)
        r = STORE_NOT_FOUND;
    else
        r = store_fail(st, "device lookup");
    store_finish(s);
    return r;
}

enum store_rc store_device_revoke(struct store *st, int64_t id, int64_t now)
{
    sqlite3_stmt *s = st->e2ee[E_DEV_REVOKE];
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int64(s, 2, id);
    return store_step_done(st, s, "device revoke");
}

enum store_rc store_device_by_session(struct store *st, int64_t session_id,
                                      struct store_device *out, int max, int *n)
{
    sqlite3_stmt *s = st->e2ee[E_DEV_BY_SESSION];
    sqlite3_bind_int64(s, 1, session_id);
    sqlite3_bind_int(s, 2, max);
    int rc;
    *n = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < max)
        read_device(s, &out[(*n)++]);
    enum store_rc r =
        rc == SQLITE_DONE || rc == SQLITE_ROW ? STORE_OK : store_fail(st, "session devices");
    store_finish(s);
    return r;
}

static enum store_rc each_device(struct store *st, sqlite3_stmt *s, store_device_fn fn, void *ctx)
{
    struct store_device d;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        read_device(s, &d);
        if (fn(ctx, &d) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "device list");
    store_finish(s);
    return r;
}

enum store_rc store_device_each_of_user(struct store *st, int64_t user_id, store_device_fn fn,
                                        void *ctx)
{
    sqlite3_stmt *s = st->e2ee[E_DEV_OF_USER];
    sqlite3_bind_int64(s, 1, user_id);
    return each_device(st, s, fn, ctx);
}

enum store_rc store_device_each_in_room(struct store *st, int64_t room, store_device_fn fn,
                                        void *ctx)
{
    sqlite3_stmt *s = st->e2ee[E_DEV_IN_ROOM];
    sqlite3_bind_int64(s, 1, room);
    return each_device(st, s, fn, ctx);
}

enum store_rc store_device_rebind(struct store *st, int64_t id, int64_t session_id)
{
    sqlite3_stmt *s = st->e2ee[E_DEV_REBIND];
    sqlite3_bind_int64(s, 1, session_id);
    sqlite3_bind_int64(s, 2, id);
    return store_step_done(st, s, "device rebind");
}

enum store_rc store_device_resign(struct store *st, int64_t id, const uint8_t self_sig[64])
{
    sqlite3_stmt *s = st->e2ee[E_DEV_RESIGN];
    sqlite3_bind_blob(s, 1, self_sig, 64, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, id);
    return store_step_done(st, s, "device resign");
}

/* ---- uploads ---- */

enum store_rc store_upload_insert(struct store *st, const struct store_upload *u)
{
    sqlite3_stmt *s = st->e2ee[E_UP_INSERT];
    sqlite3_bind_text(s, 1, u->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, u->user_id);
    sqlite3_bind_text(s, 3, u->blob, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, u->length);
    sqlite3_bind_int64(s, 5, u->offset);
    sqlite3_bind_int64(s, 6, u->created_at);
    sqlite3_bind_int64(s, 7, u->expires_at);
    if (u->done_at)
        sqlite3_bind_int64(s, 8, u->done_at);
    return store_step_done(st, s, "upload insert");
}

enum store_rc store_upload_get(struct store *st, const char *id, struct store_upload *out)
{
    sqlite3_stmt *s = st->e2ee[E_UP_GET];
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_OK;
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        store_copy_text(out->id, sizeof out->id, s, 0);
        out->user_id = sqlite3_column_int64(s, 1);
        store_copy_text(out->blob, sizeof out->blob, s, 2);
        out->length = sqlite3_column_int64(s, 3);
        out->offset = sqlite3_column_int64(s, 4);
        out->created_at = sqlite3_column_int64(s, 5);
        out->expires_at = sqlite3_column_int64(s, 6);
        out->done_at = sqlite3_column_int64(s, 7);
    } else if (rc == SQLITE_DONE) {
        r = STORE_NOT_FOUND;
    } else {
        r = store_fail(st, "upload lookup");
    }
    store_finish(s);
    return r;
}

enum store_rc store_upload_set_offset(struct store *st, const char *id, int64_t offset,
                                      int64_t done_at)
{
    sqlite3_stmt *s = st->e2ee[E_UP_OFFSET];
    sqlite3_bind_int64(s, 1, offset);
    if (done_at)
        sqlite3_bind_int64(s, 2, done_at);
    sqlite3_bind_text(s, 3, id, -1, SQLITE_STATIC);
    return store_step_done(st, s, "upload offset");
}

enum store_rc store_upload_delete(struct store *st, const char *id)
{
    sqlite3_stmt *s = st->e2ee[E_UP_DELETE];
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    return store_step_done(st, s, "upload delete");
}

enum store_rc store_upload_usage(struct store *st, int64_t user_id, int64_t *bytes)
{
    sqlite3_stmt *s = st->e2ee[E_UP_USAGE];
    sqlite3_bind_int64(s, 1, user_id);
    return store_step_int(st, s, bytes, "upload usage");
}

enum store_rc store_totals(struct store *st, struct store_totals *out)
{
    static const char sql[] =
        "SELECT (SELECT count(*) FROM blobs), (SELECT coalesce(sum(size), 0) FROM blobs),"
        " (SELECT count(*) FROM uploads WHERE done_at IS NULL),"
        " (SELECT coalesce(sum(offset), 0) FROM uploads WHERE done_at IS NULL),"
        " (SELECT count(*) FROM sessions WHERE ended_at IS NULL)";
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
        return store_fail(st, "totals");
    enum store_rc r = STORE_OK;
    if (sqlite3_step(s) == SQLITE_ROW) {
        out->blobs = sqlite3_column_int64(s, 0);
        out->blob_bytes = sqlite3_column_int64(s, 1);
        out->uploads_open = sqlite3_column_int64(s, 2);
        out->upload_open_bytes = sqlite3_column_int64(s, 3);
        out->sessions_open = sqlite3_column_int64(s, 4);
    } else {
        r = store_fail(st, "totals");
    }
    sqlite3_finalize(s);
    return r;
}

enum store_rc store_messages_since(struct store *st, int64_t since, int64_t *out)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db, "SELECT count(*) FROM messages WHERE ts >= ? AND deleted = 0",
                           -1, &s, NULL) != SQLITE_OK)
        return store_fail(st, "messages since");
    sqlite3_bind_int64(s, 1, since);
    enum store_rc r = STORE_OK;
    if (sqlite3_step(s) == SQLITE_ROW)
        *out = sqlite3_column_int64(s, 0);
    else
        r = store_fail(st, "messages since");
    sqlite3_finalize(s);
    return r;
}

enum store_rc store_upload_expired(struct store *st, int64_t now,
                                   char (*ids)[STORE_UPLOAD_ID_MAX + 1], int max, int *n)
{
    sqlite3_stmt *s = st->e2ee[E_UP_EXPIRED];
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int(s, 2, max);
    int rc;
    *n = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < max)
        store_copy_text(ids[(*n)++], STORE_UPLOAD_ID_MAX + 1, s, 0);
    enum store_rc r =
        rc == SQLITE_DONE || rc == SQLITE_ROW ? STORE_OK : store_fail(st, "expired uploads");
    store_finish(s);
    return r;
}

/* ---- blobs ---- */

enum store_rc store_blob_insert(struct store *st, const char *id, int64_t size, int64_t uploader,
                                int64_t now)
{
    sqlite3_stmt *s = st->e2ee[E_BLOB_INSERT];
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, size);
    sqlite3_bind_int64(s, 3, uploader);
    sqlite3_bind_int64(s, 4, now);
    return store_step_done(st, s, "blob insert");
}

enum store_rc store_blob_get(struct store *st, const char *id, int64_t *size, int64_t *uploader)
{
    sqlite3_stmt *s = st->e2ee[E_BLOB_GET];
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_OK;
    if (rc == SQLITE_ROW) {
        *size = sqlite3_column_int64(s, 0);
        *uploader = sqlite3_column_int64(s, 1);
    } else if (rc == SQLITE_DONE) {
        r = STORE_NOT_FOUND;
    } else {
        r = store_fail(st, "blob lookup");
    }
    store_finish(s);
    return r;
}

enum store_rc store_blob_ref_add(struct store *st, const char *blob, int64_t room, int64_t pos)
{
    sqlite3_stmt *s = st->e2ee[E_REF_ADD];
    sqlite3_bind_text(s, 1, blob, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, room);
    sqlite3_bind_int64(s, 3, pos);
    return store_step_done(st, s, "blob reference");
}

enum store_rc store_blob_readable(struct store *st, const char *blob, int64_t user_id, bool *out)
{
    sqlite3_stmt *s = st->e2ee[E_READABLE];
    sqlite3_bind_text(s, 1, blob, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, user_id);
    int64_t one;
    enum store_rc rc = store_step_int(st, s, &one, "blob access");
    *out = rc == STORE_OK;
    return rc == STORE_NOT_FOUND ? STORE_OK : rc;
}

/* ---- photos posted before their blob is here (thumbnail first) ---- */

enum store_rc store_upload_live(struct store *st, int64_t user_id, const char *blob, int64_t now,
                                int64_t *offset, int64_t *length)
{
    sqlite3_stmt *s = st->e2ee[E_UP_LIVE];
    sqlite3_bind_int64(s, 1, user_id);
    sqlite3_bind_text(s, 2, blob, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now);
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_OK;
    if (rc == SQLITE_ROW) {
        *offset = sqlite3_column_int64(s, 0);
        *length = sqlite3_column_int64(s, 1);
    } else {
        r = rc == SQLITE_DONE ? STORE_NOT_FOUND : store_fail(st, "live upload");
    }
    store_finish(s);
    return r;
}

enum store_rc store_blob_pending_add(struct store *st, const char *blob, int64_t room, int64_t pos,
                                     int64_t user_id)
{
    sqlite3_stmt *s = st->e2ee[E_PEND_ADD];
    sqlite3_bind_text(s, 1, blob, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, room);
    sqlite3_bind_int64(s, 3, pos);
    sqlite3_bind_int64(s, 4, user_id);
    return store_step_done(st, s, "pending blob reference");
}

static enum store_rc pending_by(struct store *st, enum e2ee_stmt id, const char *blob,
                                int64_t user_id, const char *what)
{
    sqlite3_stmt *s = st->e2ee[id];
    sqlite3_bind_text(s, 1, blob, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, user_id);
    return store_step_done(st, s, what);
}

enum store_rc store_blob_pending_settle(struct store *st, const char *blob, int64_t user_id)
{
    enum store_rc r = pending_by(st, E_PEND_SETTLE, blob, user_id, "settle pending blob");
    return r == STORE_OK ? pending_by(st, E_PEND_DEL, blob, user_id, "settle pending blob") : r;
}

enum store_rc store_blob_pending_readable(struct store *st, const char *blob, int64_t user_id,
                                          int64_t room, bool *out, int64_t *poster)
{
    sqlite3_stmt *s = st->e2ee[E_PEND_READABLE];
    sqlite3_bind_text(s, 1, blob, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, user_id);
    sqlite3_bind_int64(s, 3, room);
    enum store_rc rc = store_step_int(st, s, poster, "pending blob access");
    *out = rc == STORE_OK;
    return rc == STORE_NOT_FOUND ? STORE_OK : rc;
}

/* ---- who was sent which epoch key ---- */

enum store_rc store_device_current_in_room(struct store *st, int64_t room, const char *device_id,
                                           bool *out)
{
    sqlite3_stmt *s = st->e2ee[E_DEV_CURRENT];
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_text(s, 2, device_id, -1, SQLITE_STATIC);
    int64_t one;
    enum store_rc rc = store_step_int(st, s, &one, "room device");
    *out = rc == STORE_OK;
    return rc == STORE_NOT_FOUND ? STORE_OK : rc;
}

enum store_rc store_epoch_holder_add(struct store *st, int64_t room, const char *epoch,
                                     const char *device_id)
{
    sqlite3_stmt *s = st->e2ee[E_HOLDER_ADD];
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_text(s, 2, epoch, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, device_id, -1, SQLITE_STATIC);
    return store_step_done(st, s, "epoch holder");
}

enum store_rc store_epoch_holder_gone(struct store *st, int64_t room, const char *epoch,
                                      char device_id[STORE_DEVICE_ID_MAX + 1])
{
    sqlite3_stmt *s = st->e2ee[E_HOLDER_GONE];
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_text(s, 2, epoch, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_OK;
    device_id[0] = '\0';
    if (rc == SQLITE_ROW)
        store_copy_text(device_id, STORE_DEVICE_ID_MAX + 1, s, 0);
    else if (rc != SQLITE_DONE)
        r = store_fail(st, "epoch holders");
    store_finish(s);
    return r;
}

/* ---- signed device lists ---- */

static void read_devlist(sqlite3_stmt *s, struct store_devlist *d)
{
    memset(d, 0, sizeof *d);
    d->user_id = sqlite3_column_int64(s, 0);
    store_copy_text(d->login, sizeof d->login, s, 1);
    d->seq = sqlite3_column_int64(s, 2);
    size_t n = (size_t)sqlite3_column_bytes(s, 3);
    d->len = n <= sizeof d->list ? n : 0; /* the server stores none longer (ops_e2ee.c) */
    if (d->len)
        memcpy(d->list, sqlite3_column_blob(s, 3), d->len);
    store_copy_text(d->by, sizeof d->by, s, 4);
    copy_blob(d->sig, sizeof d->sig, s, 5);
    d->created_at = sqlite3_column_int64(s, 6);
}

enum store_rc store_devlist_insert(struct store *st, const struct store_devlist *d)
{
    sqlite3_stmt *s = st->e2ee[E_DL_INSERT];
    sqlite3_bind_int64(s, 1, d->user_id);
    sqlite3_bind_int64(s, 2, d->seq);
    sqlite3_bind_blob(s, 3, d->list, (int)d->len, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, d->by, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 5, d->sig, sizeof d->sig, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, d->created_at);
    return store_step_done(st, s, "device list insert");
}

enum store_rc store_devlist_latest(struct store *st, int64_t user_id, struct store_devlist *out)
{
    sqlite3_stmt *s = st->e2ee[E_DL_LATEST];
    sqlite3_bind_int64(s, 1, user_id);
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_OK;
    if (rc == SQLITE_ROW)
        read_devlist(s, out);
    else if (rc == SQLITE_DONE)
        r = STORE_NOT_FOUND;
    else
        r = store_fail(st, "device list");
    store_finish(s);
    return r;
}

static enum store_rc each_devlist(struct store *st, sqlite3_stmt *s, store_devlist_fn fn, void *ctx)
{
    struct store_devlist *d = malloc(sizeof *d);
    if (!d) {
        store_finish(s);
        return STORE_ERROR;
    }
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        read_devlist(s, d);
        if (fn(ctx, d) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    free(d);
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "device lists");
    store_finish(s);
    return r;
}

enum store_rc store_devlist_each_of_user(struct store *st, int64_t user_id, store_devlist_fn fn,
                                         void *ctx)
{
    sqlite3_stmt *s = st->e2ee[E_DL_OF_USER];
    sqlite3_bind_int64(s, 1, user_id);
    return each_devlist(st, s, fn, ctx);
}

enum store_rc store_devlist_each_in_room(struct store *st, int64_t room, store_devlist_fn fn,
                                         void *ctx)
{
    sqlite3_stmt *s = st->e2ee[E_DL_IN_ROOM];
    sqlite3_bind_int64(s, 1, room);
    return each_devlist(st, s, fn, ctx);
}
