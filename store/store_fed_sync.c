/* store_fed_sync.c - the tables of shared rooms and their replication (store_fed.h, migration
 * 16): other servers' users as local actors, a shared room's member servers, the logs a room
 * holds (its version vector), each peer's durable cursor per log, and fork evidence.
 * Statements are prepared at first use and kept until store_close. */
#include "store_fed.h"
#include "store_internal.h"

#include <stdio.h>
#include <string.h>

enum fed_stmt {
    F_ACTOR_GET,
    F_ACTOR_INSERT,
    F_ACTOR_RENAME,
    F_SERVER_SET,
    F_SERVER_ADMITTED,
    F_SERVER_EACH,
    F_SHARED_ROOMS,
    F_LOG_EACH,
    F_LOG_RANGE,
    F_EVENT_ID_AT,
    F_CURSOR_GET,
    F_CURSOR_SET,
    F_LAG,
    F_ACKED_EACH,
    F_FORK_ADD,
    F_QUARANTINE,
    F_FORK_COUNT,
    F_SERVER_STATE,
    F_EVENT_LOG_POS,
    F_CUTOFF_GET,
    F_CUTOFF_SET,
    F_CUT_MSGS,
    F_CUT_EVENTS,
    F_CUT_MEMBERS,
    F_LOG_LATEST,
    F_HOTLINE_SET,
    F_HOTLINE_GET,
    F_ROLE_SET,
    F_ROLE_GET,
    F_HOTLINE_EACH,
    F_SEAT_SET,
    F_SEAT_HOLDER,
    F_SEAT_OF,
    F_SEATS_EACH,
    F_AUTH_SET,
    F_AUTH_EVENT,
    F_CREATOR,
    F_AUTH_HANDED,
    F_COUNT
};
_Static_assert(F_COUNT <= STORE_FED_STMTS, "raise STORE_FED_STMTS");

static const char *const fed_sql[F_COUNT] = {
    [F_ACTOR_GET] = "SELECT id, name FROM users WHERE home = ?1 AND login = ?2",
    [F_ACTOR_INSERT] = "INSERT INTO users (login, name, role, disabled, must_change_pw, pw_hash,"
                       " created_at, updated_at, home) VALUES (?2, ?3, 'staff', 1, 0, '', ?4, ?4,"
                       " ?1)",
    [F_ACTOR_RENAME] = "UPDATE users SET name = ?2, updated_at = ?3 WHERE id = ?1",
    [F_SERVER_SET] = "INSERT INTO room_servers (room, server_id, admitted, changed_pos)"
                     " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (room, server_id) DO UPDATE"
                     " SET admitted = ?3, changed_pos = ?4",
    [F_SERVER_ADMITTED] = "SELECT admitted FROM room_servers WHERE room = ? AND server_id = ?",
    [F_SERVER_EACH] = "SELECT server_id, admitted FROM room_servers WHERE room = ?"
                      " ORDER BY server_id",
    [F_SHARED_ROOMS] = "SELECT r.id, r.room_id FROM room_servers s JOIN rooms r ON r.id = s.room"
                       " WHERE s.server_id = ?1 AND s.admitted = 1 AND s.room > ?2"
                       " ORDER BY s.room LIMIT ?3",
    [F_LOG_EACH] = "SELECT origin, inc, head_seq, head_id FROM logs WHERE room = ?"
                   " ORDER BY origin, inc",
    [F_LOG_RANGE] = "SELECT pos, seq, event_id, type, ts, hlc, payload, sig FROM events"
                    " WHERE room = ?1 AND origin = ?2 AND inc = ?3 AND seq > ?4"
                    " ORDER BY seq LIMIT ?5",
    [F_EVENT_ID_AT] = "SELECT event_id FROM events WHERE room = ? AND origin = ? AND inc = ?"
                      " AND seq = ?",
    [F_CURSOR_GET] = "SELECT acked_seq FROM fed_cursors WHERE peer = ? AND room = ? AND origin = ?"
                     " AND inc = ?",
    [F_CURSOR_SET] = "INSERT INTO fed_cursors (peer, room, origin, inc, acked_seq, acked_at)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (peer, room, origin, inc)"
                     " DO UPDATE SET acked_seq = ?5, acked_at = ?6 WHERE acked_seq < ?5",
    /* Per log of every room shared with the peer: the events past its cursor. */
    [F_LAG] = "SELECT count(*), coalesce(sum(length(e.payload)), 0), coalesce(min(e.ts), 0)"
              " FROM room_servers s JOIN logs l ON l.room = s.room"
              " JOIN events e ON e.room = l.room AND e.origin = l.origin AND e.inc = l.inc"
              " AND e.seq > coalesce((SELECT acked_seq FROM fed_cursors c WHERE c.peer = ?1"
              " AND c.room = l.room AND c.origin = l.origin AND c.inc = l.inc), 0)"
              " WHERE s.server_id = ?1 AND s.admitted = 1 AND l.origin != ?1",
    [F_ACKED_EACH] = "SELECT s.server_id, s.server_id = ?2 OR coalesce((SELECT acked_seq >= ?4"
                     " FROM fed_cursors c WHERE c.peer = s.server_id AND c.room = ?1"
                     " AND c.origin = ?2 AND c.inc = ?3), 0)"
                     " FROM room_servers s WHERE s.room = ?1 AND s.admitted = 1"
                     " ORDER BY s.server_id",
    [F_FORK_ADD] =
        "INSERT OR IGNORE INTO fed_forks (room, origin, inc, seq, held_id, other_id,"
        " other_payload, other_sig, from_peer, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [F_QUARANTINE] = "SELECT min(seq) FROM fed_forks WHERE room = ? AND origin = ? AND inc = ?",
    [F_FORK_COUNT] = "SELECT count(*) FROM fed_forks WHERE origin = ?",
    [F_SERVER_STATE] = "SELECT admitted, changed_pos FROM room_servers WHERE room = ?"
                       " AND server_id = ?",
    [F_EVENT_LOG_POS] = "SELECT origin, seq, inc FROM events WHERE pos = ?",
    [F_CUTOFF_GET] =
        "SELECT cutoff_inc, cutoff_seq FROM room_servers WHERE room = ? AND server_id = ?"
        " AND cutoff_inc IS NOT NULL",
    [F_CUTOFF_SET] = "UPDATE room_servers SET cutoff_inc = ?3, cutoff_seq = ?4 WHERE room = ?1"
                     " AND server_id = ?2",
    /* Past the cutoff: (inc, seq) above it. Messages first (the FTS trigger drops them from
     * search when deleted goes to 1), then the events themselves. */
    [F_CUT_MSGS] = "UPDATE messages SET body = '', deleted = 1 WHERE deleted = 0 AND pos IN"
                   " (SELECT pos FROM events WHERE room = ?1 AND origin = ?2"
                   " AND (inc, seq) > (?3, ?4))",
    [F_CUT_EVENTS] = "UPDATE events SET invalid = 'past its server''s removal from the room'"
                     " WHERE room = ?1 AND origin = ?2 AND (inc, seq) > (?3, ?4)"
                     " AND invalid IS NULL",
    [F_CUT_MEMBERS] = "UPDATE room_members SET left_pos = ?3 WHERE room = ?1 AND left_pos IS NULL"
                      " AND user_id IN (SELECT id FROM users WHERE CASE WHEN ?4 THEN home IS NULL"
                      " ELSE home = ?2 END)",
    [F_HOTLINE_SET] = "UPDATE rooms SET hotline = 1 WHERE id = ?",
    [F_HOTLINE_GET] = "SELECT coalesce(hotline, 0) FROM rooms WHERE id = ?",
    [F_ROLE_SET] = "UPDATE room_servers SET role = ?3 WHERE room = ?1 AND server_id = ?2",
    [F_ROLE_GET] = "SELECT coalesce(role, '') FROM room_servers WHERE room = ? AND server_id = ?",
    [F_HOTLINE_EACH] =
        "SELECT r.id, r.room_id, r.name, s.server_id, s.admitted, coalesce(s.role, '')"
        " FROM rooms r JOIN room_servers s ON s.room = r.id WHERE r.hotline = 1"
        " ORDER BY r.name, r.id, s.server_id",
    [F_SEAT_SET] = "INSERT INTO room_seats (room, server_id, seat, holder, on_duty, changed_pos)"
                   " VALUES (?1, ?2, ?3, nullif(?4, 0), ?5, ?6) ON CONFLICT (room, server_id, seat)"
                   " DO UPDATE SET holder = nullif(?4, 0), on_duty = ?5, changed_pos = ?6",
    [F_SEAT_HOLDER] = "SELECT coalesce(holder, 0) FROM room_seats WHERE room = ? AND server_id = ?"
                      " AND seat = ?",
    [F_SEAT_OF] = "SELECT seat FROM room_seats WHERE room = ? AND server_id = ? AND holder = ?"
                  " ORDER BY seat LIMIT 1",
    [F_SEATS_EACH] = "SELECT s.server_id, s.seat, coalesce(s.holder, 0), coalesce(u.login, ''),"
                     " coalesce(u.name, ''), s.on_duty FROM room_seats s"
                     " LEFT JOIN users u ON u.id = s.holder WHERE s.room = ?"
                     " ORDER BY s.server_id, s.seat",
    [F_AUTH_SET] = "UPDATE rooms SET authority = ?2, authority_event = ?3 WHERE id = ?1",
    [F_AUTH_EVENT] = "SELECT coalesce(authority_event, '') FROM rooms WHERE id = ?",
    [F_CREATOR] = "SELECT origin FROM events WHERE room = ? AND seq = 1 AND type = 'room.create'"
                  " ORDER BY pos LIMIT 1",
    [F_AUTH_HANDED] = "SELECT count(*) FROM events WHERE room = ?1 AND origin = ?2"
                      " AND (inc, seq) < (?3, ?4) AND type = 'room.authority' AND invalid IS NULL"
                      " AND coalesce(json_extract(CAST(payload AS TEXT), '$.content.authority'),"
                      " '') = ?5",
    [F_LOG_LATEST] = "SELECT inc, head_seq FROM logs WHERE room = ? AND origin = ?"
                     " ORDER BY inc DESC LIMIT 1",
};

static sqlite3_stmt *fstmt(struct store *st, enum fed_stmt id)
{
    if (!st->fed[id] && sqlite3_prepare_v3(st->db, fed_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                           &st->fed[id], NULL) != SQLITE_OK) {
        store_fail(st, "federation statement");
        st->fed[id] = NULL;
    }
    return st->fed[id];
}

#define FSTMT(st, id, s)                                                                           \
    sqlite3_stmt *s = fstmt(st, id);                                                               \
    if (!s)                                                                                        \
    return STORE_ERROR

enum store_rc store_actor_get(struct store *st, const char *server, const char *login,
                              const char *name, int64_t now, int64_t *user_id)
{
    FSTMT(st, F_ACTOR_GET, s);
    sqlite3_bind_text(s, 1, server, -1, SQLITE_STATIC);
    char handle[STORE_LOGIN_MAX + 1];
    int n = snprintf(handle, sizeof handle, "%s@%s", login, server);
    if (n < 0 || (size_t)n >= sizeof handle) {
        store_finish(s);
        snprintf(st->errmsg, sizeof st->errmsg, "actor name too long");
        return STORE_ERROR;
    }
    sqlite3_bind_text(s, 2, handle, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *user_id = sqlite3_column_int64(s, 0);
        bool renamed = name && name[0] && strcmp((const char *)sqlite3_column_text(s, 1), name);
        store_finish(s);
        if (!renamed)
            return STORE_OK;
        FSTMT(st, F_ACTOR_RENAME, u);
        sqlite3_bind_int64(u, 1, *user_id);
        sqlite3_bind_text(u, 2, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(u, 3, now);
        return store_step_done(st, u, "actor rename");
    }
    store_finish(s);
    if (rc != SQLITE_DONE)
        return store_fail(st, "actor");
    FSTMT(st, F_ACTOR_INSERT, i);
    sqlite3_bind_text(i, 1, server, -1, SQLITE_STATIC);
    sqlite3_bind_text(i, 2, handle, -1, SQLITE_STATIC);
    sqlite3_bind_text(i, 3, name && name[0] ? name : handle, -1, SQLITE_STATIC);
    sqlite3_bind_int64(i, 4, now);
    enum store_rc r = store_step_done(st, i, "actor insert");
    if (r == STORE_OK)
        *user_id = sqlite3_last_insert_rowid(st->db);
    return r;
}

enum store_rc store_room_server_set(struct store *st, int64_t room, const char *server,
                                    bool admitted, int64_t pos)
{
    FSTMT(st, F_SERVER_SET, s);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_text(s, 2, server, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, admitted);
    sqlite3_bind_int64(s, 4, pos);
    return store_step_done(st, s, "room server");
}

enum store_rc store_room_server_admitted(struct store *st, int64_t room, const char *server,
                                         bool *out)
{
    FSTMT(st, F_SERVER_ADMITTED, s);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_text(s, 2, server, -1, SQLITE_STATIC);
    int64_t v = 0;
    enum store_rc r = store_step_int(st, s, &v, "room server");
    *out = r == STORE_OK && v;
    return r == STORE_NOT_FOUND ? STORE_OK : r;
}

/* Steps s, calling fn with each row's text column 0 and integer column 1. */
static enum store_rc each_text_int(struct store *st, sqlite3_stmt *s, store_room_server_fn fn,
                                   void *ctx, const char *what)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (fn(ctx, (const char *)sqlite3_column_text(s, 0), sqlite3_column_int(s, 1) != 0)) {
            rc = SQLITE_DONE;
            break;
        }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, what);
    store_finish(s);
    return r;
}

enum store_rc store_room_server_each(struct store *st, int64_t room, store_room_server_fn fn,
                                     void *ctx)
{
    FSTMT(st, F_SERVER_EACH, s);
    sqlite3_bind_int64(s, 1, room);
    return each_text_int(st, s, fn, ctx, "room servers");
}

enum store_rc store_shared_rooms_each(struct store *st, const char *server, int64_t after_room,
                                      int limit, store_shared_room_fn fn, void *ctx)
{
    FSTMT(st, F_SHARED_ROOMS, s);
    sqlite3_bind_text(s, 1, server, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, after_room);
    sqlite3_bind_int(s, 3, limit);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (fn(ctx, sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1))) {
            rc = SQLITE_DONE;
            break;
        }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "shared rooms");
    store_finish(s);
    return r;
}

enum store_rc store_log_each(struct store *st, int64_t room, store_log_fn fn, void *ctx)
{
    FSTMT(st, F_LOG_EACH, s);
    sqlite3_bind_int64(s, 1, room);
    struct store_log l;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        memset(&l, 0, sizeof l);
        store_copy_text(l.origin, sizeof l.origin, s, 0);
        l.inc = sqlite3_column_int64(s, 1);
        l.head_seq = sqlite3_column_int64(s, 2);
        store_copy_text(l.head_id, sizeof l.head_id, s, 3);
        if (fn(ctx, &l)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "logs");
    store_finish(s);
    return r;
}

enum store_rc store_log_range(struct store *st, int64_t room, const char *origin, int64_t inc,
                              int64_t after, int limit, store_event_fn fn, void *ctx)
{
    FSTMT(st, F_LOG_RANGE, s);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_text(s, 2, origin, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, inc);
    sqlite3_bind_int64(s, 4, after);
    sqlite3_bind_int(s, 5, limit);
    struct store_event e;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        memset(&e, 0, sizeof e);
        e.pos = sqlite3_column_int64(s, 0);
        e.room = room;
        snprintf(e.origin, sizeof e.origin, "%s", origin);
        e.inc = inc;
        e.seq = sqlite3_column_int64(s, 1);
        store_copy_text(e.event_id, sizeof e.event_id, s, 2);
        store_copy_text(e.type, sizeof e.type, s, 3);
        e.ts = sqlite3_column_int64(s, 4);
        e.hlc = sqlite3_column_int64(s, 5);
        e.payload = sqlite3_column_blob(s, 6);
        e.payload_len = (size_t)sqlite3_column_bytes(s, 6);
        e.sig = sqlite3_column_blob(s, 7);
        e.sig_len = (size_t)sqlite3_column_bytes(s, 7);
        if (fn(ctx, &e)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "log range");
    store_finish(s);
    return r;
}

enum store_rc store_event_id_at(struct store *st, int64_t room, const char *origin, int64_t inc,
                                int64_t seq, char id[STORE_ROOM_ID_MAX + 1])
{
    FSTMT(st, F_EVENT_ID_AT, s);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_text(s, 2, origin, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, inc);
    sqlite3_bind_int64(s, 4, seq);
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_OK;
    if (rc == SQLITE_ROW)
        store_copy_text(id, STORE_ROOM_ID_MAX + 1, s, 0);
    else
        r = rc == SQLITE_DONE ? STORE_NOT_FOUND : store_fail(st, "event at");
    store_finish(s);
    return r;
}

enum store_rc store_fed_cursor_get(struct store *st, const char *peer, int64_t room,
                                   const char *origin, int64_t inc, int64_t *acked)
{
    FSTMT(st, F_CURSOR_GET, s);
    sqlite3_bind_text(s, 1, peer, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, room);
    sqlite3_bind_text(s, 3, origin, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, inc);
    *acked = 0;
    enum store_rc r = store_step_int(st, s, acked, "cursor");
    return r == STORE_NOT_FOUND ? STORE_OK : r;
}

enum store_rc store_fed_cursor_set(struct store *st, const char *peer, int64_t room,
                                   const char *origin, int64_t inc, int64_t acked, int64_t now)
{
    FSTMT(st, F_CURSOR_SET, s);
    sqlite3_bind_text(s, 1, peer, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, room);
    sqlite3_bind_text(s, 3, origin, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, inc);
    sqlite3_bind_int64(s, 5, acked);
    sqlite3_bind_int64(s, 6, now);
    return store_step_done(st, s, "cursor");
}

enum store_rc store_fed_lag(struct store *st, const char *peer, int64_t *events, int64_t *bytes,
                            int64_t *oldest_ts)
{
    FSTMT(st, F_LAG, s);
    sqlite3_bind_text(s, 1, peer, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    *events = *bytes = *oldest_ts = 0;
    if (rc == SQLITE_ROW) {
        *events = sqlite3_column_int64(s, 0);
        *bytes = sqlite3_column_int64(s, 1);
        *oldest_ts = sqlite3_column_int64(s, 2);
    }
    store_finish(s);
    return rc == SQLITE_ROW ? STORE_OK : store_fail(st, "lag");
}

enum store_rc store_fed_acked_each(struct store *st, int64_t room, const char *origin, int64_t inc,
                                   int64_t seq, store_room_server_fn fn, void *ctx)
{
    FSTMT(st, F_ACKED_EACH, s);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_text(s, 2, origin, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, inc);
    sqlite3_bind_int64(s, 4, seq);
    return each_text_int(st, s, fn, ctx, "acknowledgements");
}

enum store_rc store_fed_fork_add(struct store *st, const struct store_fork *f)
{
    FSTMT(st, F_FORK_ADD, s);
    sqlite3_bind_int64(s, 1, f->room);
    sqlite3_bind_text(s, 2, f->origin, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, f->inc);
    sqlite3_bind_int64(s, 4, f->seq);
    sqlite3_bind_text(s, 5, f->held_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, f->other_id, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 7, f->payload, (int)f->payload_len, SQLITE_STATIC);
    sqlite3_bind_blob(s, 8, f->sig_len ? f->sig : "", (int)f->sig_len, SQLITE_STATIC);
    sqlite3_bind_text(s, 9, f->from_peer, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 10, f->at);
    return store_step_done(st, s, "fork");
}

enum store_rc store_fed_quarantine(struct store *st, int64_t room, const char *origin, int64_t inc,
                                   int64_t *seq)
{
    FSTMT(st, F_QUARANTINE, s);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_text(s, 2, origin, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, inc);
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_NOT_FOUND;
    if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
        *seq = sqlite3_column_int64(s, 0);
        r = STORE_OK;
    } else if (rc != SQLITE_ROW)
        r = store_fail(st, "quarantine");
    store_finish(s);
    return r;
}

enum store_rc store_fed_fork_count(struct store *st, const char *origin, int64_t *out)
{
    FSTMT(st, F_FORK_COUNT, s);
    sqlite3_bind_text(s, 1, origin, -1, SQLITE_STATIC);
    return store_step_int(st, s, out, "forks");
}

enum store_rc store_room_server_state(struct store *st, int64_t room, const char *server,
                                      bool *known, bool *admitted, int64_t *changed_pos)
{
    FSTMT(st, F_SERVER_STATE, s);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_text(s, 2, server, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    *known = rc == SQLITE_ROW;
    *admitted = *known && sqlite3_column_int(s, 0) != 0;
    *changed_pos = *known ? sqlite3_column_int64(s, 1) : 0;
    store_finish(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK : store_fail(st, "room server");
}

enum store_rc store_event_log_pos(struct store *st, int64_t pos,
                                  char origin[STORE_SERVER_ID_MAX + 1], int64_t *inc, int64_t *seq)
{
    FSTMT(st, F_EVENT_LOG_POS, s);
    sqlite3_bind_int64(s, 1, pos);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        store_copy_text(origin, STORE_SERVER_ID_MAX + 1, s, 0);
        *seq = sqlite3_column_int64(s, 1);
        *inc = sqlite3_column_int64(s, 2);
    }
    store_finish(s);
    return rc == SQLITE_ROW    ? STORE_OK
           : rc == SQLITE_DONE ? STORE_NOT_FOUND
                               : store_fail(st, "event");
}

enum store_rc store_room_server_cutoff(struct store *st, int64_t room, const char *server,
                                       int64_t *inc, int64_t *seq)
{
    FSTMT(st, F_CUTOFF_GET, s);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_text(s, 2, server, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *inc = sqlite3_column_int64(s, 0);
        *seq = sqlite3_column_int64(s, 1);
    }
    store_finish(s);
    return rc == SQLITE_ROW    ? STORE_OK
           : rc == SQLITE_DONE ? STORE_NOT_FOUND
                               : store_fail(st, "cutoff");
}

static enum store_rc cut_step(struct store *st, enum fed_stmt id, int64_t room, const char *server,
                              int64_t a, int64_t b, const char *what)
{
    FSTMT(st, id, s);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_text(s, 2, server, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, a);
    sqlite3_bind_int64(s, 4, b);
    return store_step_done(st, s, what);
}

enum store_rc store_room_server_cut(struct store *st, int64_t room, const char *server, bool local,
                                    int64_t inc, int64_t seq, int64_t pos)
{
    enum store_rc rc;
    if ((rc = cut_step(st, F_CUTOFF_SET, room, server, inc, seq, "cutoff")) ||
        (rc = cut_step(st, F_CUT_MSGS, room, server, inc, seq, "cutoff messages")) ||
        (rc = cut_step(st, F_CUT_EVENTS, room, server, inc, seq, "cutoff events")) ||
        (rc = cut_step(st, F_CUT_MEMBERS, room, server, pos, local, "cutoff members")))
        return rc;
    store_room_forget(st, room); /* its member list changed */
    return STORE_OK;
}

enum store_rc store_log_latest(struct store *st, int64_t room, const char *server, int64_t *inc,
                               int64_t *seq)
{
    FSTMT(st, F_LOG_LATEST, s);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_text(s, 2, server, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    *inc = *seq = 0;
    if (rc == SQLITE_ROW) {
        *inc = sqlite3_column_int64(s, 0);
        *seq = sqlite3_column_int64(s, 1);
    }
    store_finish(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK : store_fail(st, "log latest");
}

enum store_rc store_room_set_hotline(struct store *st, int64_t room)
{
    FSTMT(st, F_HOTLINE_SET, s);
    sqlite3_bind_int64(s, 1, room);
    return store_step_done(st, s, "hotline");
}

enum store_rc store_room_is_hotline(struct store *st, int64_t room, bool *out)
{
    FSTMT(st, F_HOTLINE_GET, s);
    sqlite3_bind_int64(s, 1, room);
    int64_t v = 0;
    enum store_rc r = store_step_int(st, s, &v, "hotline");
    *out = r == STORE_OK && v;
    return r == STORE_NOT_FOUND ? STORE_OK : r;
}

enum store_rc store_room_server_role_set(struct store *st, int64_t room, const char *server,
                                         const char *role)
{
    FSTMT(st, F_ROLE_SET, s);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_text(s, 2, server, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, role, -1, SQLITE_STATIC);
    return store_step_done(st, s, "role");
}

enum store_rc store_room_server_role(struct store *st, int64_t room, const char *server, char *role,
                                     size_t n)
{
    FSTMT(st, F_ROLE_GET, s);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_text(s, 2, server, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    role[0] = '\0';
    if (rc == SQLITE_ROW)
        store_copy_text(role, n, s, 0);
    store_finish(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK : store_fail(st, "role");
}

enum store_rc store_hotline_each(struct store *st, store_hotline_fn fn, void *ctx)
{
    FSTMT(st, F_HOTLINE_EACH, s);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (fn(ctx, sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1),
               (const char *)sqlite3_column_text(s, 2), (const char *)sqlite3_column_text(s, 3),
               sqlite3_column_int(s, 4) != 0, (const char *)sqlite3_column_text(s, 5))) {
            rc = SQLITE_DONE;
            break;
        }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "hotlines");
    store_finish(s);
    return r;
}

enum store_rc store_seat_set(struct store *st, int64_t room, const char *server, const char *seat,
                             int64_t holder, bool on_duty, int64_t pos)
{
    FSTMT(st, F_SEAT_SET, s);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_text(s, 2, server, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, seat, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, holder);
    sqlite3_bind_int(s, 5, on_duty);
    sqlite3_bind_int64(s, 6, pos);
    return store_step_done(st, s, "seat");
}

enum store_rc store_seat_holder(struct store *st, int64_t room, const char *server,
                                const char *seat, int64_t *holder)
{
    FSTMT(st, F_SEAT_HOLDER, s);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_text(s, 2, server, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, seat, -1, SQLITE_STATIC);
    return store_step_int(st, s, holder, "seat");
}

enum store_rc store_seat_of(struct store *st, int64_t room, const char *server, int64_t user,
                            char *seat, size_t n)
{
    FSTMT(st, F_SEAT_OF, s);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_text(s, 2, server, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, user);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        store_copy_text(seat, n, s, 0);
    store_finish(s);
    return rc == SQLITE_ROW    ? STORE_OK
           : rc == SQLITE_DONE ? STORE_NOT_FOUND
                               : store_fail(st, "seat");
}

enum store_rc store_seats_each(struct store *st, int64_t room, store_seat_fn fn, void *ctx)
{
    FSTMT(st, F_SEATS_EACH, s);
    sqlite3_bind_int64(s, 1, room);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (fn(ctx, (const char *)sqlite3_column_text(s, 0),
               (const char *)sqlite3_column_text(s, 1), sqlite3_column_int64(s, 2),
               (const char *)sqlite3_column_text(s, 3), (const char *)sqlite3_column_text(s, 4),
               sqlite3_column_int(s, 5) != 0)) {
            rc = SQLITE_DONE;
            break;
        }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "seats");
    store_finish(s);
    return r;
}

enum store_rc store_room_set_authority(struct store *st, int64_t room, const char *server,
                                       const char *event_id)
{
    FSTMT(st, F_AUTH_SET, s);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_text(s, 2, server, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, event_id, -1, SQLITE_STATIC);
    enum store_rc rc = store_step_done(st, s, "authority");
    store_room_forget(st, room); /* the cache holds the room's authority */
    return rc;
}

/* Steps s, which yields one text, into out ("" when no row). */
static enum store_rc one_text(struct store *st, sqlite3_stmt *s, char *out, size_t n,
                              const char *what)
{
    int rc = sqlite3_step(s);
    out[0] = '\0';
    if (rc == SQLITE_ROW)
        store_copy_text(out, n, s, 0);
    store_finish(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK : store_fail(st, what);
}

enum store_rc store_room_authority_event(struct store *st, int64_t room, char *out, size_t n)
{
    FSTMT(st, F_AUTH_EVENT, s);
    sqlite3_bind_int64(s, 1, room);
    return one_text(st, s, out, n, "authority");
}

enum store_rc store_room_creator(struct store *st, int64_t room, char *out, size_t n)
{
    FSTMT(st, F_CREATOR, s);
    sqlite3_bind_int64(s, 1, room);
    return one_text(st, s, out, n, "creator");
}

enum store_rc store_authority_handed(struct store *st, int64_t room, const char *origin,
                                     int64_t inc, int64_t seq, const char *basis, int64_t *out)
{
    FSTMT(st, F_AUTH_HANDED, s);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_text(s, 2, origin, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, inc);
    sqlite3_bind_int64(s, 4, seq);
    sqlite3_bind_text(s, 5, basis, -1, SQLITE_STATIC);
    *out = 0;
    return store_step_int(st, s, out, "authority handed");
}
