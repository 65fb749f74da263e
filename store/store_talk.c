/* store_talk.c - rooms, their event logs, messages, read markers and search. */
#include "store_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum talk_stmt {
    T_ROOM_INSERT,
    T_ROOM_GET,
    T_ROOM_GET_ID,
    T_ROOM_GET_DIRECT,
    T_ROOM_UPDATE,
    T_ROOM_ARCHIVE,
    T_ROOM_NAMED,
    T_MEMBER_JOIN,
    T_MEMBER_LEAVE,
    T_MEMBER_ROLE,
    T_MEMBER_EACH_ALL,
    T_MEMBER_COUNT,
    T_MEMBER_READ_SET,
    T_READ_MARK,
    T_READ_COUNT,
    T_READ_TIME,
    T_EVENT_KEY_AT,
    T_MEMBER_KEY_SET,
    T_MEMBER_KEY_GET,
    T_READ_COUNT_KEY,
    T_READ_GROUPS_KEY,
    T_LOG_HEAD,
    T_LOG_START,
    T_LOG_ADVANCE,
    T_EVENT_INSERT,
    T_EVENT_FOR_USER,
    T_EVENT_GET,
    T_EVENT_LAST,
    T_EVENT_POS,
    T_EVENT_SIG,
    T_MSG_INSERT,
    T_MSG_GET,
    T_MSG_EDIT,
    T_MSG_DELETE,
    T_HIST_ANCHOR_BEFORE,
    T_HIST_ANCHOR_AFTER,
    T_HIST_EXACT,
    T_HIST_KEY_BEFORE,
    T_HIST_KEY_AFTER,
    T_HIST_BEFORE,
    T_HIST_AFTER,
    T_UNREAD,
    T_LAST_MSG,
    T_ROOMS_OF_USER,
    T_CID_GET,
    T_CID_PUT,
    T_FTS_FLUSH,
    T_MSG_MAXPOS,
    T_ROOM_HLC,
    T_ROOM_LAST_POS,
    T_LAST_PHOTO,
    T_RECORD_AFTER,
    T_COUNT
};
_Static_assert(T_COUNT <= STORE_TALK_STMTS, "raise STORE_TALK_STMTS");

#define ROOM_COLS                                                                                  \
    "r.id, r.room_id, r.kind, r.name, r.topic, r.created_by, r.created_at, r.history,"             \
    " r.archived_at, r.authority"
#define MEMBER_COLS                                                                                \
    "m.room, m.user_id, u.login, u.name, m.role, m.joined_pos, m.left_pos,"                        \
    " m.read_pos, m.read_at"
#define EVENT_COLS                                                                                 \
    "e.pos, e.room, r.room_id, e.origin, e.inc, e.seq, e.event_id, e.type,"                        \
    " e.sender, e.ts, e.payload, e.sig, e.hlc, e.received_at, e.invalid, e.late,"                  \
    " r.authority IS NOT NULL"
#define MSG_COLS "m.pos, m.room, m.sender, m.body, m.ts, m.edited_at, m.deleted, m.deleted_by"
#define MY_ROOMS "SELECT room FROM room_members WHERE user_id = ?2 AND left_pos IS NULL"

static const char *const talk_sql[T_COUNT] = {
    [T_ROOM_INSERT] = "INSERT INTO rooms (room_id, kind, name, topic, direct_key, created_by,"
                      " created_at, history, authority) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [T_ROOM_GET] = "SELECT " ROOM_COLS " FROM rooms r WHERE r.room_id = ?",
    [T_ROOM_GET_ID] = "SELECT " ROOM_COLS " FROM rooms r WHERE r.id = ?",
    [T_ROOM_GET_DIRECT] = "SELECT " ROOM_COLS " FROM rooms r WHERE r.direct_key = ?",
    [T_ROOM_UPDATE] = "UPDATE rooms SET name = ?, topic = ? WHERE id = ?",
    [T_ROOM_ARCHIVE] = "UPDATE rooms SET archived_at = nullif(?, 0) WHERE id = ?",
    [T_ROOM_NAMED] = "SELECT " ROOM_COLS " FROM room_members m JOIN rooms r ON r.id = m.room"
                     " WHERE m.user_id = ? AND m.left_pos IS NULL AND r.kind = 'group'"
                     " AND r.name = ? ORDER BY r.id DESC LIMIT 1",
    [T_MEMBER_JOIN] =
        "INSERT INTO room_members (room, user_id, role, joined_pos) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(room, user_id) DO UPDATE SET role = excluded.role,"
        " joined_pos = excluded.joined_pos, left_pos = NULL",
    [T_MEMBER_LEAVE] = "UPDATE room_members SET left_pos = ? WHERE room = ? AND user_id = ?"
                       " AND left_pos IS NULL",
    [T_MEMBER_ROLE] = "UPDATE room_members SET role = ? WHERE room = ? AND user_id = ?"
                      " AND left_pos IS NULL",
    /* Every member row of a room, for the room cache (store_room_cache.c): the index
     * room_members_joined gives them in join order, ties by user, without a sort. */
    [T_MEMBER_EACH_ALL] = "SELECT " MEMBER_COLS " FROM room_members m JOIN users u"
                          " ON u.id = m.user_id WHERE m.room = ? ORDER BY m.joined_pos, m.user_id",
    [T_MEMBER_COUNT] = "SELECT count(*) FROM room_members WHERE room = ? AND left_pos IS NULL",
    [T_MEMBER_READ_SET] = "UPDATE room_members SET read_pos = ?, read_at = ? WHERE room = ?"
                          " AND user_id = ? AND read_pos < ?",
    [T_READ_MARK] = "INSERT OR IGNORE INTO read_marks (room, user_id, pos, at) VALUES (?, ?, ?, ?)",
    [T_READ_COUNT] = "SELECT count(*) FROM room_members WHERE room = ? AND user_id != ?"
                     " AND read_pos >= ?",
    /* Markers only move forward, so the earliest mark at or past pos is when it was read. */
    [T_READ_TIME] = "SELECT min(at) FROM read_marks WHERE room = ? AND user_id = ? AND pos >= ?",
    /* Read keys of shared rooms (migration 16): compared as SQLite row values, which order
     * like the room's display order (hlc, origin, inc, seq). */
    [T_EVENT_KEY_AT] = "SELECT hlc, origin, inc, seq FROM events WHERE room = ? AND pos <= ?"
                       " ORDER BY pos DESC LIMIT 1",
    [T_MEMBER_KEY_SET] = "UPDATE room_members SET read_hlc = ?3, read_origin = ?4, read_inc = ?5,"
                         " read_seq = ?6 WHERE room = ?1 AND user_id = ?2 AND (read_hlc IS NULL"
                         " OR (read_hlc, read_origin, read_inc, read_seq) < (?3, ?4, ?5, ?6))",
    [T_MEMBER_KEY_GET] = "SELECT read_hlc, read_origin, read_inc, read_seq FROM room_members"
                         " WHERE room = ? AND user_id = ? AND read_hlc IS NOT NULL",
    /* Current members only: whoever left a shared room no longer counts on any server. */
    [T_READ_COUNT_KEY] = "SELECT count(*) FROM room_members WHERE room = ?1 AND user_id != ?2"
                         " AND left_pos IS NULL AND read_hlc IS NOT NULL"
                         " AND (read_hlc, read_origin, read_inc, read_seq) >= (?3, ?4, ?5, ?6)",
    /* The same count grouped by each member's server (issue 18, item 4), in one statement: a
     * user of this server (home NULL) under ?7, this server's id, so that the groups and their
     * order (by server id) are the same on every server; with the peer's pinned name. It takes
     * ~19 µs against ~6 µs for T_READ_COUNT_KEY (20 members of 5 servers, SQLite 3.40, timed
     * from Python): a shared room's page of 100 messages costs ~1.3 ms more; it replaces that
     * count there (the count is its sum), and rooms of one server never run it. */
    [T_READ_GROUPS_KEY] =
        "SELECT g.server, g.nread, g.members, coalesce(p.name, '') FROM (SELECT"
        " coalesce(nullif(u.home, ''), ?7) AS server, count(*) AS members,"
        " count(*) FILTER (WHERE m.read_hlc IS NOT NULL AND (m.read_hlc, m.read_origin,"
        " m.read_inc, m.read_seq) >= (?3, ?4, ?5, ?6)) AS nread FROM room_members m JOIN users u"
        " ON u.id = m.user_id WHERE m.room = ?1 AND m.user_id != ?2 AND m.left_pos IS NULL"
        " GROUP BY 1) g LEFT JOIN peers p ON p.server_id = g.server AND g.server != ?7"
        " ORDER BY g.server",
    [T_LOG_HEAD] = "SELECT head_seq, head_id FROM logs WHERE room = ? AND origin = ? AND inc = ?",
    /* A log moves only from its head to the next seq: no row changed means a gap or a reused
     * seq, told without reading the head first. */
    [T_LOG_START] = "INSERT INTO logs (room, origin, inc, head_seq, head_id) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT(room, origin, inc) DO NOTHING",
    [T_LOG_ADVANCE] = "UPDATE logs SET head_seq = ?4, head_id = ?5 WHERE room = ?1 AND origin = ?2"
                      " AND inc = ?3 AND head_seq = ?4 - 1",
    /* Positions follow the newest one, or the floor a restore set (?11), whichever is
     * higher. */
    [T_EVENT_INSERT] = "INSERT INTO events (pos, room, origin, inc, seq, event_id, type, sender,"
                       " ts, payload, sig, hlc, received_at, invalid, late) VALUES (max((SELECT"
                       " coalesce(max(pos), 0) FROM events), ?11) + 1, ?1, ?2, ?3, ?4, ?5, ?6,"
                       " ?7, ?8, ?9, ?10, ?12, nullif(?13, 0), ?14, nullif(?15, 0))",
    [T_EVENT_FOR_USER] = "SELECT " EVENT_COLS " FROM events e"
                         " JOIN room_members m ON m.room = e.room AND m.user_id = ?1"
                         " JOIN rooms r ON r.id = e.room"
                         " WHERE e.pos > ?2 AND e.pos >= m.joined_pos AND e.invalid IS NULL"
                         " AND e.type != 'room.read'"
                         " AND (m.left_pos IS NULL OR e.pos <= m.left_pos)"
                         " ORDER BY e.pos LIMIT ?3",
    [T_EVENT_GET] = "SELECT " EVENT_COLS " FROM events e JOIN rooms r ON r.id = e.room"
                    " WHERE e.pos = ?",
    [T_EVENT_LAST] = "SELECT coalesce(max(pos), 0) FROM events",
    [T_EVENT_POS] = "SELECT pos FROM events WHERE event_id = ?",
    [T_EVENT_SIG] = "UPDATE events SET sig = ? WHERE pos = ?",
    [T_MSG_INSERT] = "INSERT INTO messages (pos, room, sender, body, ts) VALUES (?, ?, ?, ?, ?)",
    [T_MSG_GET] = "SELECT " MSG_COLS " FROM messages m WHERE m.pos = ?",
    [T_MSG_EDIT] = "UPDATE messages SET body = ?, edited_at = ? WHERE pos = ? AND deleted = 0",
    [T_MSG_DELETE] = "UPDATE messages SET body = '', deleted = 1, edited_at = ?, deleted_by = ?"
                     " WHERE pos = ? AND deleted = 0",
    /* History is shown in the room's order, (hlc, origin, inc, seq), the same on every
     * server that holds the same events (issue 17, item 4); clients page by position. The
     * anchor is the event at the position given (exclusive) or, if the position is none of
     * this room's, the nearest one inside the range (inclusive). On one server the two orders
     * agree, so pages are what they were before shared rooms. */
    [T_HIST_ANCHOR_BEFORE] = "SELECT hlc, origin, inc, seq, pos = ?2 FROM events"
                             " WHERE room = ?1 AND pos <= ?2 ORDER BY pos DESC LIMIT 1",
    [T_HIST_ANCHOR_AFTER] = "SELECT hlc, origin, inc, seq, pos = ?2 FROM events"
                            " WHERE room = ?1 AND pos >= ?2 ORDER BY pos ASC LIMIT 1",
    /* In a shared room events arrive out of room order, so the nearest event by position is
     * not the last (first) in room order among those below (above) it: the position given,
     * if it is the room's, else the greatest (least) room-order key in range. */
    [T_HIST_EXACT] = "SELECT hlc, origin, inc, seq, 1 FROM events WHERE pos = ?2 AND room = ?1",
    [T_HIST_KEY_BEFORE] = "SELECT hlc, origin, inc, seq, 0 FROM events WHERE room = ?1"
                          " AND pos < ?2 ORDER BY hlc DESC, origin DESC, inc DESC, seq DESC"
                          " LIMIT 1",
    [T_HIST_KEY_AFTER] = "SELECT hlc, origin, inc, seq, 0 FROM events WHERE room = ?1"
                         " AND pos > ?2 ORDER BY hlc ASC, origin ASC, inc ASC, seq ASC LIMIT 1",
    [T_HIST_BEFORE] = "SELECT " EVENT_COLS ", " MSG_COLS " FROM events e"
                      " JOIN rooms r ON r.id = e.room LEFT JOIN messages m ON m.pos = e.pos"
                      " WHERE e.room = ?1 AND ((e.hlc, e.origin, e.inc, e.seq) < (?2, ?3, ?4, ?5)"
                      " OR (?7 AND e.hlc = ?2 AND e.origin = ?3 AND e.inc = ?4 AND e.seq = ?5))"
                      " AND e.type NOT IN ('msg.edit', 'msg.delete', 'room.read')"
                      " AND e.invalid IS NULL"
                      " ORDER BY e.hlc DESC, e.origin DESC, e.inc DESC, e.seq DESC LIMIT ?6",
    [T_HIST_AFTER] = "SELECT " EVENT_COLS ", " MSG_COLS " FROM events e"
                     " JOIN rooms r ON r.id = e.room LEFT JOIN messages m ON m.pos = e.pos"
                     " WHERE e.room = ?1 AND ((e.hlc, e.origin, e.inc, e.seq) > (?2, ?3, ?4, ?5)"
                     " OR (?7 AND e.hlc = ?2 AND e.origin = ?3 AND e.inc = ?4 AND e.seq = ?5))"
                     " AND e.type NOT IN ('msg.edit', 'msg.delete', 'room.read')"
                     " AND e.invalid IS NULL"
                     " ORDER BY e.hlc ASC, e.origin ASC, e.inc ASC, e.seq ASC LIMIT ?6",
    /* Unread: messages and encrypted photos from others (a photo has no messages row: the
     * server cannot read it, but people see it as a message). */
    [T_UNREAD] = "SELECT (SELECT count(*) FROM messages WHERE room = ?1 AND pos > ?2"
                 " AND sender != ?3 AND deleted = 0) + (SELECT count(*) FROM events"
                 " WHERE room = ?1 AND pos > ?2 AND sender != ?3 AND type = 'e2ee.photo')",
    [T_LAST_MSG] = "SELECT " MSG_COLS " FROM messages m WHERE m.room = ? ORDER BY m.pos DESC"
                   " LIMIT 1",
    /* Newest activity first. In a shared room someone reading (room.read) is no activity: the
     * newest other event, walking back from the end (one index step, a row look-up each);
     * a room of this server alone keeps the index-only max(pos). */
    [T_ROOMS_OF_USER] =
        "SELECT " ROOM_COLS ", " MEMBER_COLS " FROM room_members m"
        " JOIN rooms r ON r.id = m.room JOIN users u ON u.id = m.user_id"
        " WHERE m.user_id = ? AND m.left_pos IS NULL AND r.kind != 'notice' ORDER BY"
        " CASE WHEN r.authority IS NULL THEN (SELECT max(pos) FROM events WHERE room = r.id)"
        " ELSE (SELECT pos FROM events WHERE room = r.id AND type != 'room.read'"
        " ORDER BY pos DESC LIMIT 1) END DESC",
    [T_CID_GET] = "SELECT pos FROM client_ids WHERE user_id = ? AND client_id = ?",
    [T_CID_PUT] = "INSERT INTO client_ids (user_id, client_id, pos) VALUES (?, ?, ?)",
    [T_FTS_FLUSH] = "INSERT INTO messages_fts(rowid, body) SELECT pos, body FROM messages"
                    " WHERE pos > ? AND deleted = 0",
    [T_MSG_MAXPOS] = "SELECT coalesce(max(pos), 0) FROM messages",
    /* One seek in events_hlc (room, hlc, ...). */
    [T_ROOM_HLC] = "SELECT coalesce(max(hlc), 0) FROM events WHERE room = ?",
    /* One seek in events_room (room, pos). */
    [T_ROOM_LAST_POS] = "SELECT coalesce(max(pos), 0) FROM events WHERE room = ?",
    /* events_room_photo (migration 19) holds the photos alone: no walk past messages. */
    [T_LAST_PHOTO] = "SELECT pos, coalesce(sender, 0), ts FROM events"
                     " WHERE room = ? AND type = 'e2ee.photo' AND invalid IS NULL"
                     " ORDER BY pos DESC LIMIT 1",
    /* The record (issue 22): every event of a room, invalid ones and read markers too (the
     * record proves its logs whole), after a room-order key (?2..?5), of hlc in [?6, ?7) (hlc
     * rises along each log, so a range leaves no gap in one), in the room's order. */
    [T_RECORD_AFTER] = "SELECT " EVENT_COLS ", " MSG_COLS " FROM events e"
                       " JOIN rooms r ON r.id = e.room LEFT JOIN messages m ON m.pos = e.pos"
                       " WHERE e.room = ?1 AND (e.hlc, e.origin, e.inc, e.seq) > (?2, ?3, ?4, ?5)"
                       " AND e.hlc >= ?6 AND e.hlc < ?7"
                       " ORDER BY e.hlc ASC, e.origin ASC, e.inc ASC, e.seq ASC LIMIT ?8",
};

enum store_rc store_talk_prepare(struct store *st, char *err, size_t errlen)
{
    return store_prepare_all(st, talk_sql, st->talk, T_COUNT, "talk", err, errlen);
}

static sqlite3_stmt *stmt(struct store *st, enum talk_stmt id)
{
    return st->talk[id];
}

/* For UPDATEs addressed by key: no changed row means no such row. */
static enum store_rc step_changed(struct store *st, sqlite3_stmt *s, const char *what)
{
    enum store_rc rc = store_step_done(st, s, what);
    if (rc == STORE_OK && sqlite3_changes(st->db) == 0)
        rc = STORE_NOT_FOUND;
    return rc;
}

/* ---- rooms ---- */

static int read_room(sqlite3_stmt *s, int col, struct store_room *r)
{
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(s, col);
    store_copy_text(r->room_id, sizeof r->room_id, s, col + 1);
    store_copy_text(r->kind, sizeof r->kind, s, col + 2);
    store_copy_text(r->name, sizeof r->name, s, col + 3);
    store_copy_text(r->topic, sizeof r->topic, s, col + 4);
    r->created_by = sqlite3_column_int64(s, col + 5);
    r->created_at = sqlite3_column_int64(s, col + 6);
    store_copy_text(r->history, sizeof r->history, s, col + 7);
    r->archived_at = sqlite3_column_int64(s, col + 8);
    store_copy_text(r->authority, sizeof r->authority, s, col + 9);
    return col + 10;
}

static enum store_rc step_room(struct store *st, sqlite3_stmt *s, struct store_room *out)
{
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_OK;
    if (rc == SQLITE_ROW)
        read_room(s, 0, out);
    else if (rc == SQLITE_DONE)
        r = STORE_NOT_FOUND;
    else
        r = store_fail(st, "room lookup");
    store_finish(s);
    return r;
}

enum store_rc store_room_insert(struct store *st, struct store_room *r, const char *direct_key)
{
    sqlite3_stmt *s = stmt(st, T_ROOM_INSERT);
    sqlite3_bind_text(s, 1, r->room_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, r->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, r->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, r->topic, -1, SQLITE_STATIC);
    if (direct_key)
        sqlite3_bind_text(s, 5, direct_key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, r->created_by);
    sqlite3_bind_int64(s, 7, r->created_at);
    sqlite3_bind_text(s, 8, r->history[0] ? r->history : "shared", -1, SQLITE_STATIC);
    if (r->authority[0])
        sqlite3_bind_text(s, 9, r->authority, -1, SQLITE_STATIC);
    enum store_rc rc = store_step_done(st, s, "room insert");
    if (rc == STORE_OK)
        r->id = sqlite3_last_insert_rowid(st->db);
    return rc;
}

static int read_member(sqlite3_stmt *s, int col, struct store_member *m);

/* Reads a room's member rows, past ones too, into a new cache entry (store_room_cache.c).
 * Returns the cache's entry, or NULL with *rc set. */
static struct store_room_entry *room_fill(struct store *st, const struct store_room *room,
                                          enum store_rc *rc)
{
    struct store_room_entry *e = store_room_entry_new(room);
    if (!e) {
        *rc = STORE_ERROR;
        snprintf(st->errmsg, sizeof st->errmsg, "member list: out of memory");
        return NULL;
    }
    sqlite3_stmt *s = stmt(st, T_MEMBER_EACH_ALL);
    sqlite3_bind_int64(s, 1, room->id);
    struct store_member m;
    int r;
    bool oom = false;
    while (!oom && (r = sqlite3_step(s)) == SQLITE_ROW) {
        read_member(s, 0, &m);
        oom = store_room_entry_add(e, &m) != 0;
    }
    *rc = oom || r == SQLITE_DONE ? STORE_OK : store_fail(st, "member list");
    store_finish(s);
    if (*rc == STORE_OK && (oom || store_room_cache_put(st, e) != 0)) {
        *rc = STORE_ERROR;
        snprintf(st->errmsg, sizeof st->errmsg, "member list: out of memory");
    }
    store_room_entry_release(e);
    return *rc == STORE_OK ? store_room_cache_get(st, room->id) : NULL;
}

/* A room and its members by the room's row id, from the cache or read into it. NULL with
 * *rc STORE_NOT_FOUND if there is no such room. */
static struct store_room_entry *room_entry(struct store *st, int64_t id, enum store_rc *rc)
{
    struct store_room_entry *e = store_room_cache_get(st, id);
    if (e) {
        *rc = STORE_OK;
        return e;
    }
    struct store_room room;
    sqlite3_stmt *s = stmt(st, T_ROOM_GET_ID);
    sqlite3_bind_int64(s, 1, id);
    *rc = step_room(st, s, &room);
    return *rc == STORE_OK ? room_fill(st, &room, rc) : NULL;
}

enum store_rc store_room_get(struct store *st, const char *room_id, struct store_room *out)
{
    struct store_room_entry *e = store_room_cache_find(st, room_id);
    if (e) {
        *out = *store_room_entry_room(e);
        return STORE_OK;
    }
    sqlite3_stmt *s = stmt(st, T_ROOM_GET);
    sqlite3_bind_text(s, 1, room_id, -1, SQLITE_STATIC);
    enum store_rc rc = step_room(st, s, out);
    if (rc == STORE_OK)
        room_fill(st, out, &rc);
    return rc;
}

enum store_rc store_room_get_by_id(struct store *st, int64_t id, struct store_room *out)
{
    enum store_rc rc;
    struct store_room_entry *e = room_entry(st, id, &rc);
    if (e)
        *out = *store_room_entry_room(e);
    return rc;
}

enum store_rc store_room_get_direct(struct store *st, const char *direct_key,
                                    struct store_room *out)
{
    sqlite3_stmt *s = stmt(st, T_ROOM_GET_DIRECT);
    sqlite3_bind_text(s, 1, direct_key, -1, SQLITE_STATIC);
    return step_room(st, s, out);
}

enum store_rc store_room_update(struct store *st, int64_t id, const char *name, const char *topic)
{
    sqlite3_stmt *s = stmt(st, T_ROOM_UPDATE);
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, topic, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, id);
    return step_changed(st, s, "room update");
}

enum store_rc store_room_set_archived(struct store *st, int64_t id, int64_t at)
{
    sqlite3_stmt *s = stmt(st, T_ROOM_ARCHIVE);
    sqlite3_bind_int64(s, 1, at);
    sqlite3_bind_int64(s, 2, id);
    return step_changed(st, s, "room archive");
}

enum store_rc store_room_find_named(struct store *st, int64_t user_id, const char *name,
                                    struct store_room *out)
{
    sqlite3_stmt *s = stmt(st, T_ROOM_NAMED);
    sqlite3_bind_int64(s, 1, user_id);
    sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
    return step_room(st, s, out);
}

/* ---- members ---- */

static int read_member(sqlite3_stmt *s, int col, struct store_member *m)
{
    memset(m, 0, sizeof *m);
    m->room = sqlite3_column_int64(s, col);
    m->user_id = sqlite3_column_int64(s, col + 1);
    store_copy_text(m->login, sizeof m->login, s, col + 2);
    store_copy_text(m->name, sizeof m->name, s, col + 3);
    store_copy_text(m->role, sizeof m->role, s, col + 4);
    m->joined_pos = sqlite3_column_int64(s, col + 5);
    m->left_pos = sqlite3_column_int64(s, col + 6);
    m->read_pos = sqlite3_column_int64(s, col + 7);
    m->read_at = sqlite3_column_int64(s, col + 8);
    return col + 9;
}

enum store_rc store_member_get(struct store *st, int64_t room, int64_t user_id,
                               struct store_member *out)
{
    enum store_rc rc;
    struct store_room_entry *e = room_entry(st, room, &rc);
    if (!e)
        return rc; /* no room has no members */
    return store_room_entry_member(e, user_id, out) ? STORE_OK : STORE_NOT_FOUND;
}

enum store_rc store_member_join(struct store *st, int64_t room, int64_t user_id, const char *role,
                                int64_t joined_pos)
{
    sqlite3_stmt *s = stmt(st, T_MEMBER_JOIN);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_int64(s, 2, user_id);
    sqlite3_bind_text(s, 3, role, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, joined_pos);
    store_room_forget(st, room);
    return store_step_done(st, s, "member join");
}

enum store_rc store_member_leave(struct store *st, int64_t room, int64_t user_id, int64_t left_pos)
{
    sqlite3_stmt *s = stmt(st, T_MEMBER_LEAVE);
    sqlite3_bind_int64(s, 1, left_pos);
    sqlite3_bind_int64(s, 2, room);
    sqlite3_bind_int64(s, 3, user_id);
    store_room_forget(st, room);
    return step_changed(st, s, "member leave");
}

enum store_rc store_member_set_role(struct store *st, int64_t room, int64_t user_id,
                                    const char *role)
{
    sqlite3_stmt *s = stmt(st, T_MEMBER_ROLE);
    sqlite3_bind_text(s, 1, role, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, room);
    sqlite3_bind_int64(s, 3, user_id);
    store_room_forget(st, room);
    return step_changed(st, s, "member role");
}

enum store_rc store_member_each(struct store *st, int64_t room, bool include_past,
                                store_member_fn fn, void *ctx)
{
    enum store_rc rc;
    struct store_room_entry *e = room_entry(st, room, &rc);
    if (!e)
        return rc == STORE_NOT_FOUND ? STORE_OK : rc; /* no room, no members */
    /* Held: a callback may write, and so forget the entry, or fill its slot with another. */
    store_room_entry_hold(e);
    struct store_member m;
    size_t n = store_room_entry_count(e);
    for (size_t i = 0; i < n; i++)
        if (store_room_entry_member_at(e, i, include_past, &m) && fn(ctx, &m) != 0)
            break;
    store_room_entry_release(e);
    return STORE_OK;
}

enum store_rc store_member_count(struct store *st, int64_t room, int64_t *out)
{
    sqlite3_stmt *s = stmt(st, T_MEMBER_COUNT);
    sqlite3_bind_int64(s, 1, room);
    return store_step_int(st, s, out, "member count");
}

enum store_rc store_member_read(struct store *st, int64_t room, int64_t user_id, int64_t pos,
                                int64_t at, bool *moved, int64_t *old_pos)
{
    struct store_member m;
    enum store_rc rc = store_member_get(st, room, user_id, &m);
    if (rc != STORE_OK)
        return rc;
    *old_pos = m.read_pos;
    *moved = pos > m.read_pos;
    if (!*moved)
        return STORE_OK;
    sqlite3_stmt *s = stmt(st, T_MEMBER_READ_SET);
    sqlite3_bind_int64(s, 1, pos);
    sqlite3_bind_int64(s, 2, at);
    sqlite3_bind_int64(s, 3, room);
    sqlite3_bind_int64(s, 4, user_id);
    sqlite3_bind_int64(s, 5, pos);
    store_room_forget(st, room);
    if ((rc = store_step_done(st, s, "read marker")) != STORE_OK)
        return rc;
    s = stmt(st, T_READ_MARK);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_int64(s, 2, user_id);
    sqlite3_bind_int64(s, 3, pos);
    sqlite3_bind_int64(s, 4, at);
    return store_step_done(st, s, "read mark");
}

enum store_rc store_read_count(struct store *st, int64_t room, int64_t pos, int64_t sender,
                               int64_t *out)
{
    sqlite3_stmt *s = stmt(st, T_READ_COUNT);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_int64(s, 2, sender);
    sqlite3_bind_int64(s, 3, pos);
    return store_step_int(st, s, out, "read count");
}

enum store_rc store_read_time(struct store *st, int64_t room, int64_t user_id, int64_t pos,
                              int64_t *at)
{
    sqlite3_stmt *s = stmt(st, T_READ_TIME);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_int64(s, 2, user_id);
    sqlite3_bind_int64(s, 3, pos);
    return store_step_int(st, s, at, "read time"); /* min() of nothing is NULL, read as 0 */
}

/* ---- read keys (shared rooms) ---- */

static enum store_rc step_key(struct store *st, sqlite3_stmt *s, struct store_order_key *out,
                              const char *what)
{
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_OK;
    memset(out, 0, sizeof *out);
    if (rc == SQLITE_ROW) {
        out->hlc = sqlite3_column_int64(s, 0);
        store_copy_text(out->origin, sizeof out->origin, s, 1);
        out->inc = sqlite3_column_int64(s, 2);
        out->seq = sqlite3_column_int64(s, 3);
    } else if (rc == SQLITE_DONE) {
        r = STORE_NOT_FOUND;
    } else {
        r = store_fail(st, what);
    }
    store_finish(s);
    return r;
}

enum store_rc store_event_key_at(struct store *st, int64_t room, int64_t pos,
                                 struct store_order_key *out)
{
    sqlite3_stmt *s = stmt(st, T_EVENT_KEY_AT);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_int64(s, 2, pos);
    return step_key(st, s, out, "event key");
}

static void bind_key(sqlite3_stmt *s, int first, const struct store_order_key *k)
{
    sqlite3_bind_int64(s, first, k->hlc);
    sqlite3_bind_text(s, first + 1, k->origin, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, first + 2, k->inc);
    sqlite3_bind_int64(s, first + 3, k->seq);
}

enum store_rc store_member_read_key(struct store *st, int64_t room, int64_t user_id,
                                    const struct store_order_key *k, bool *moved)
{
    sqlite3_stmt *s = stmt(st, T_MEMBER_KEY_SET);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_int64(s, 2, user_id);
    bind_key(s, 3, k);
    enum store_rc rc = store_step_done(st, s, "read key");
    *moved = rc == STORE_OK && sqlite3_changes(st->db) > 0;
    return rc;
}

enum store_rc store_member_read_key_get(struct store *st, int64_t room, int64_t user_id,
                                        struct store_order_key *out)
{
    sqlite3_stmt *s = stmt(st, T_MEMBER_KEY_GET);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_int64(s, 2, user_id);
    return step_key(st, s, out, "read key");
}

enum store_rc store_read_count_event(struct store *st, const struct store_event *e, int64_t *out)
{
    if (!e->shared)
        return store_read_count(st, e->room, e->pos, e->sender, out);
    sqlite3_stmt *s = stmt(st, T_READ_COUNT_KEY);
    sqlite3_bind_int64(s, 1, e->room);
    sqlite3_bind_int64(s, 2, e->sender);
    struct store_order_key k = {.hlc = e->hlc, .inc = e->inc, .seq = e->seq};
    snprintf(k.origin, sizeof k.origin, "%s", e->origin);
    bind_key(s, 3, &k);
    return store_step_int(st, s, out, "read count");
}

enum store_rc store_read_groups_event(struct store *st, const struct store_event *e,
                                      const char *self, store_read_group_fn fn, void *ctx)
{
    sqlite3_stmt *s = stmt(st, T_READ_GROUPS_KEY);
    sqlite3_bind_int64(s, 1, e->room);
    sqlite3_bind_int64(s, 2, e->sender);
    struct store_order_key k = {.hlc = e->hlc, .inc = e->inc, .seq = e->seq};
    snprintf(k.origin, sizeof k.origin, "%s", e->origin);
    bind_key(s, 3, &k);
    sqlite3_bind_text(s, 7, self, -1, SQLITE_STATIC);
    enum store_rc r = STORE_OK;
    struct store_read_group g;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        store_copy_text(g.server, sizeof g.server, s, 0);
        g.read = sqlite3_column_int64(s, 1);
        g.members = sqlite3_column_int64(s, 2);
        store_copy_text(g.name, sizeof g.name, s, 3);
        if (fn(ctx, &g))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        r = store_fail(st, "read groups");
    store_finish(s);
    return r;
}

/* ---- event logs ---- */

enum store_rc store_log_head(struct store *st, int64_t room, const char *origin, int64_t inc,
                             int64_t *seq, char head_id[STORE_ROOM_ID_MAX + 1])
{
    sqlite3_stmt *s = stmt(st, T_LOG_HEAD);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_text(s, 2, origin, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, inc);
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_OK;
    *seq = 0;
    head_id[0] = '\0';
    if (rc == SQLITE_ROW) {
        *seq = sqlite3_column_int64(s, 0);
        store_copy_text(head_id, STORE_ROOM_ID_MAX + 1, s, 1);
    } else if (rc != SQLITE_DONE) {
        r = store_fail(st, "log head");
    }
    store_finish(s);
    return r;
}

enum store_rc store_room_hlc(struct store *st, int64_t room, int64_t *hlc)
{
    sqlite3_stmt *s = stmt(st, T_ROOM_HLC);
    sqlite3_bind_int64(s, 1, room);
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_OK;
    *hlc = 0;
    if (rc == SQLITE_ROW)
        *hlc = sqlite3_column_int64(s, 0);
    else
        r = store_fail(st, "room hlc");
    store_finish(s);
    return r;
}

enum store_rc store_room_last_pos(struct store *st, int64_t room, int64_t *pos)
{
    sqlite3_stmt *s = stmt(st, T_ROOM_LAST_POS);
    sqlite3_bind_int64(s, 1, room);
    return store_step_int(st, s, pos, "room's last position");
}

/* The floor positions continue above after a restore (meta's pos_floor), read once: only
 * store_meta_set changes it, and a rollback forgets it. */
static enum store_rc pos_floor(struct store *st, int64_t *out)
{
    if (!st->pos_floor_known) {
        st->pos_floor = 0;
        enum store_rc rc = store_meta_get(st, "pos_floor", &st->pos_floor);
        if (rc != STORE_OK && rc != STORE_NOT_FOUND)
            return rc;
        st->pos_floor_known = true;
    }
    *out = st->pos_floor;
    return STORE_OK;
}

enum store_rc store_event_insert(struct store *st, struct store_event *e)
{
    int64_t floor;
    enum store_rc rc = pos_floor(st, &floor);
    if (rc != STORE_OK)
        return rc;
    /* The log first: its head moves only to seq (one statement instead of a read of the head
     * and an upsert, ~4,000 instructions per message). */
    sqlite3_stmt *s = stmt(st, e->seq == 1 ? T_LOG_START : T_LOG_ADVANCE);
    sqlite3_bind_int64(s, 1, e->room);
    sqlite3_bind_text(s, 2, e->origin, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, e->inc);
    sqlite3_bind_int64(s, 4, e->seq);
    sqlite3_bind_text(s, 5, e->event_id, -1, SQLITE_STATIC);
    if ((rc = store_step_done(st, s, "log head")) != STORE_OK)
        return rc;
    if (sqlite3_changes(st->db) == 0) {
        /* A gap or a reused seq would fork the log; refused, and nothing was written. */
        int64_t head = 0;
        char head_id[STORE_ROOM_ID_MAX + 1];
        store_log_head(st, e->room, e->origin, e->inc, &head, head_id);
        snprintf(st->errmsg, sizeof st->errmsg, "event seq %lld does not follow head %lld",
                 (long long)e->seq, (long long)head);
        return STORE_CONFLICT;
    }
    s = stmt(st, T_EVENT_INSERT);
    sqlite3_bind_int64(s, 1, e->room);
    sqlite3_bind_text(s, 2, e->origin, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, e->inc);
    sqlite3_bind_int64(s, 4, e->seq);
    sqlite3_bind_text(s, 5, e->event_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, e->type, -1, SQLITE_STATIC);
    if (e->sender)
        sqlite3_bind_int64(s, 7, e->sender);
    sqlite3_bind_int64(s, 8, e->ts);
    sqlite3_bind_blob(s, 9, e->payload, (int)e->payload_len, SQLITE_STATIC);
    sqlite3_bind_blob(s, 10, e->sig, (int)e->sig_len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 11, floor);
    sqlite3_bind_int64(s, 12, e->hlc ? e->hlc : e->ts);
    sqlite3_bind_int64(s, 13, e->received_at);
    if (e->invalid)
        sqlite3_bind_text(s, 14, e->invalid, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 15, e->late);
    if ((rc = store_step_done(st, s, "event insert")) != STORE_OK)
        return rc;
    e->pos = sqlite3_last_insert_rowid(st->db);
    return STORE_OK;
}

static int read_event(sqlite3_stmt *s, int col, struct store_event *e)
{
    memset(e, 0, sizeof *e);
    e->pos = sqlite3_column_int64(s, col);
    e->room = sqlite3_column_int64(s, col + 1);
    store_copy_text(e->room_id, sizeof e->room_id, s, col + 2);
    store_copy_text(e->origin, sizeof e->origin, s, col + 3);
    e->inc = sqlite3_column_int64(s, col + 4);
    e->seq = sqlite3_column_int64(s, col + 5);
    store_copy_text(e->event_id, sizeof e->event_id, s, col + 6);
    store_copy_text(e->type, sizeof e->type, s, col + 7);
    e->sender = sqlite3_column_int64(s, col + 8);
    e->ts = sqlite3_column_int64(s, col + 9);
    e->payload = sqlite3_column_blob(s, col + 10);
    e->payload_len = (size_t)sqlite3_column_bytes(s, col + 10);
    e->sig = sqlite3_column_blob(s, col + 11);
    e->sig_len = (size_t)sqlite3_column_bytes(s, col + 11);
    e->hlc = sqlite3_column_int64(s, col + 12);
    e->received_at = sqlite3_column_int64(s, col + 13);
    e->invalid = (const char *)sqlite3_column_text(s, col + 14);
    e->late = sqlite3_column_int(s, col + 15) != 0;
    e->shared = sqlite3_column_int(s, col + 16) != 0;
    return col + 17;
}

static enum store_rc walk_events(struct store *st, sqlite3_stmt *s, store_event_fn fn, void *ctx,
                                 const char *what)
{
    struct store_event e;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        read_event(s, 0, &e);
        if (fn(ctx, &e) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, what);
    store_finish(s);
    return r;
}

enum store_rc store_event_each_for_user(struct store *st, int64_t user_id, int64_t since, int limit,
                                        store_event_fn fn, void *ctx)
{
    sqlite3_stmt *s = stmt(st, T_EVENT_FOR_USER);
    sqlite3_bind_int64(s, 1, user_id);
    sqlite3_bind_int64(s, 2, since);
    sqlite3_bind_int(s, 3, limit);
    return walk_events(st, s, fn, ctx, "sync");
}

enum store_rc store_event_get(struct store *st, int64_t pos, store_event_fn fn, void *ctx)
{
    sqlite3_stmt *s = stmt(st, T_EVENT_GET);
    sqlite3_bind_int64(s, 1, pos);
    return walk_events(st, s, fn, ctx, "event get");
}

enum store_rc store_event_last_pos(struct store *st, int64_t *out)
{
    return store_step_int(st, stmt(st, T_EVENT_LAST), out, "last position");
}

enum store_rc store_event_pos(struct store *st, const char *event_id, int64_t *pos)
{
    sqlite3_stmt *s = stmt(st, T_EVENT_POS);
    sqlite3_bind_text(s, 1, event_id, -1, SQLITE_STATIC);
    return store_step_int(st, s, pos, "event position");
}

enum store_rc store_event_set_sig(struct store *st, int64_t pos, const void *sig, size_t len)
{
    sqlite3_stmt *s = stmt(st, T_EVENT_SIG);
    sqlite3_bind_blob(s, 1, sig, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, pos);
    return step_changed(st, s, "event signature");
}

/* ---- the full-text index ---- */

enum store_rc store_fts_flush(struct store *st)
{
    int64_t max = 0;
    enum store_rc rc = store_step_int(st, stmt(st, T_MSG_MAXPOS), &max, "fts position");
    if (rc != STORE_OK || max <= st->fts_pos)
        return rc;
    sqlite3_stmt *s = stmt(st, T_FTS_FLUSH);
    sqlite3_bind_int64(s, 1, st->fts_pos);
    if ((rc = store_step_done(st, s, "fts flush")) == STORE_OK)
        st->fts_pos = max;
    return rc;
}

enum store_rc store_fts_init(struct store *st, char *err, size_t errlen)
{
    /* Every commit flushes first, so everything committed is indexed. */
    if (store_step_int(st, stmt(st, T_MSG_MAXPOS), &st->fts_pos, "fts position") != STORE_OK) {
        snprintf(err, errlen, "%s", st->errmsg);
        return STORE_ERROR;
    }
    st->fts_pos_committed = st->fts_pos_op = st->fts_pos;
    return STORE_OK;
}

/* ---- messages ---- */

static int read_message(sqlite3_stmt *s, int col, struct store_message *m)
{
    memset(m, 0, sizeof *m);
    m->pos = sqlite3_column_int64(s, col);
    m->room = sqlite3_column_int64(s, col + 1);
    m->sender = sqlite3_column_int64(s, col + 2);
    m->body = (const char *)sqlite3_column_text(s, col + 3);
    m->ts = sqlite3_column_int64(s, col + 4);
    m->edited_at = sqlite3_column_int64(s, col + 5);
    m->deleted = sqlite3_column_int(s, col + 6) != 0;
    m->deleted_by = sqlite3_column_int64(s, col + 7);
    if (!m->body)
        m->body = "";
    return col + 8;
}

enum store_rc store_message_insert(struct store *st, const struct store_message *m)
{
    sqlite3_stmt *s = stmt(st, T_MSG_INSERT);
    sqlite3_bind_int64(s, 1, m->pos);
    sqlite3_bind_int64(s, 2, m->room);
    sqlite3_bind_int64(s, 3, m->sender);
    sqlite3_bind_text(s, 4, m->body, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, m->ts);
    return store_step_done(st, s, "message insert");
}

enum store_rc store_message_get(struct store *st, int64_t pos, struct store_message *out)
{
    sqlite3_stmt *s = stmt(st, T_MSG_GET);
    sqlite3_bind_int64(s, 1, pos);
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_OK;
    if (rc == SQLITE_ROW) {
        read_message(s, 0, out);
        out->body = NULL;
    } else if (rc == SQLITE_DONE) {
        r = STORE_NOT_FOUND;
    } else {
        r = store_fail(st, "message get");
    }
    store_finish(s);
    return r;
}

enum store_rc store_message_edit(struct store *st, int64_t pos, const char *body, int64_t at)
{
    /* The edit trigger removes the old text from the index: it must be there first. */
    enum store_rc rc = store_fts_flush(st);
    if (rc != STORE_OK)
        return rc;
    sqlite3_stmt *s = stmt(st, T_MSG_EDIT);
    sqlite3_bind_text(s, 1, body, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, at);
    sqlite3_bind_int64(s, 3, pos);
    return step_changed(st, s, "message edit");
}

enum store_rc store_message_delete(struct store *st, int64_t pos, int64_t at, int64_t by)
{
    enum store_rc rc = store_fts_flush(st);
    if (rc != STORE_OK)
        return rc;
    sqlite3_stmt *s = stmt(st, T_MSG_DELETE);
    sqlite3_bind_int64(s, 1, at);
    sqlite3_bind_int64(s, 2, by);
    sqlite3_bind_int64(s, 3, pos);
    return step_changed(st, s, "message delete");
}

enum store_rc store_history(struct store *st, int64_t room, int64_t before, int64_t after,
                            int limit, store_history_fn fn, void *ctx)
{
    struct store_room rm;
    rm.authority[0] = '\0'; /* gcc -O2 cannot see that a failed lookup leaves it unread */
    bool shared = store_room_get_by_id(st, room, &rm) == STORE_OK && rm.authority[0];
    int64_t at = before > 0 ? before : after;
    sqlite3_stmt *a = stmt(st, shared       ? T_HIST_EXACT
                               : before > 0 ? T_HIST_ANCHOR_BEFORE
                                            : T_HIST_ANCHOR_AFTER);
    sqlite3_bind_int64(a, 1, room);
    sqlite3_bind_int64(a, 2, at);
    int rc = sqlite3_step(a);
    if (shared && rc == SQLITE_DONE) {
        store_finish(a);
        a = stmt(st, before > 0 ? T_HIST_KEY_BEFORE : T_HIST_KEY_AFTER);
        sqlite3_bind_int64(a, 1, room);
        sqlite3_bind_int64(a, 2, at);
        rc = sqlite3_step(a);
    }
    if (rc != SQLITE_ROW) {
        store_finish(a);
        return rc == SQLITE_DONE ? STORE_OK : store_fail(st, "history anchor");
    }
    sqlite3_stmt *s = stmt(st, before > 0 ? T_HIST_BEFORE : T_HIST_AFTER);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_int64(s, 2, sqlite3_column_int64(a, 0));
    sqlite3_bind_text(s, 3, (const char *)sqlite3_column_text(a, 1), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 4, sqlite3_column_int64(a, 2));
    sqlite3_bind_int64(s, 5, sqlite3_column_int64(a, 3));
    sqlite3_bind_int(s, 6, limit);
    sqlite3_bind_int(s, 7, sqlite3_column_int(a, 4) == 0); /* the anchor itself is in range */
    store_finish(a);
    struct store_event e;
    struct store_message m;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int col = read_event(s, 0, &e);
        bool is_msg = sqlite3_column_type(s, col) != SQLITE_NULL;
        if (is_msg)
            read_message(s, col, &m);
        if (fn(ctx, &e, is_msg ? &m : NULL) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "history");
    store_finish(s);
    return r;
}

enum store_rc store_record_events(struct store *st, int64_t room, int64_t after, int64_t from,
                                  int64_t to, int limit, store_history_fn fn, void *ctx)
{
    /* The first page starts below every key: hlc and inc are never negative. */
    int64_t hlc = -1, inc = 0, seq = 0;
    char origin[STORE_ORIGIN_MAX + 1] = "";
    if (after > 0) {
        sqlite3_stmt *a = stmt(st, T_HIST_EXACT);
        sqlite3_bind_int64(a, 1, room);
        sqlite3_bind_int64(a, 2, after);
        int rc = sqlite3_step(a);
        if (rc != SQLITE_ROW) {
            store_finish(a);
            return rc == SQLITE_DONE ? STORE_NOT_FOUND : store_fail(st, "record anchor");
        }
        hlc = sqlite3_column_int64(a, 0);
        store_copy_text(origin, sizeof origin, a, 1);
        inc = sqlite3_column_int64(a, 2);
        seq = sqlite3_column_int64(a, 3);
        store_finish(a);
    }
    sqlite3_stmt *s = stmt(st, T_RECORD_AFTER);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_int64(s, 2, hlc);
    sqlite3_bind_text(s, 3, origin, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 4, inc);
    sqlite3_bind_int64(s, 5, seq);
    sqlite3_bind_int64(s, 6, from);
    sqlite3_bind_int64(s, 7, to);
    sqlite3_bind_int(s, 8, limit);
    struct store_event e;
    struct store_message m;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int col = read_event(s, 0, &e);
        bool is_msg = sqlite3_column_type(s, col) != SQLITE_NULL;
        if (is_msg)
            read_message(s, col, &m);
        if (fn(ctx, &e, is_msg ? &m : NULL) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "record");
    store_finish(s);
    return r;
}

enum store_rc store_room_unread(struct store *st, int64_t room, int64_t user_id, int64_t read_pos,
                                int64_t *out)
{
    sqlite3_stmt *s = stmt(st, T_UNREAD);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_int64(s, 2, read_pos);
    sqlite3_bind_int64(s, 3, user_id);
    return store_step_int(st, s, out, "unread count");
}

static enum store_rc walk_messages(struct store *st, sqlite3_stmt *s, store_message_fn fn,
                                   void *ctx, const char *what)
{
    struct store_message m;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        read_message(s, 0, &m);
        if (fn(ctx, &m) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, what);
    store_finish(s);
    return r;
}

enum store_rc store_room_last_message(struct store *st, int64_t room, store_message_fn fn,
                                      void *ctx)
{
    sqlite3_stmt *s = stmt(st, T_LAST_MSG);
    sqlite3_bind_int64(s, 1, room);
    return walk_messages(st, s, fn, ctx, "last message");
}

enum store_rc store_room_last_photo(struct store *st, int64_t room, int64_t *pos, int64_t *sender,
                                    int64_t *ts)
{
    sqlite3_stmt *s = stmt(st, T_LAST_PHOTO);
    sqlite3_bind_int64(s, 1, room);
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_OK;
    if (rc == SQLITE_ROW) {
        *pos = sqlite3_column_int64(s, 0);
        *sender = sqlite3_column_int64(s, 1);
        *ts = sqlite3_column_int64(s, 2);
    } else {
        r = rc == SQLITE_DONE ? STORE_NOT_FOUND : store_fail(st, "last photo");
    }
    store_finish(s);
    return r;
}

enum store_rc store_room_each_of_user(struct store *st, int64_t user_id, store_room_fn fn,
                                      void *ctx)
{
    sqlite3_stmt *s = stmt(st, T_ROOMS_OF_USER);
    sqlite3_bind_int64(s, 1, user_id);
    /* Collected first: fn may run other statements, and nesting this one's reads with their
     * writes is best avoided. */
    size_t n = 0, cap = 0;
    struct row {
        struct store_room r;
        struct store_member m;
    } *rows = NULL;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            struct row *grown = realloc(rows, cap * sizeof *rows);
            if (!grown) {
                rc = SQLITE_NOMEM;
                break;
            }
            rows = grown;
        }
        read_member(s, read_room(s, 0, &rows[n].r), &rows[n].m);
        n++;
    }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "room list");
    store_finish(s);
    for (size_t i = 0; r == STORE_OK && i < n; i++)
        if (fn(ctx, &rows[i].r, &rows[i].m) != 0)
            break;
    free(rows);
    return r;
}

/* ---- search ---- */

static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

/* Where the space at q ends: ASCII white space or the ideographic space U+3000 (E3 80 80),
 * which Japanese input methods type between words. q itself if it is no space. */
static const char *skip_space(const char *q)
{
    for (;;) {
        if (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
            q++;
        else if ((unsigned char)q[0] == 0xe3 && (unsigned char)q[1] == 0x80 &&
                 (unsigned char)q[2] == 0x80)
            q += 3;
        else
            return q;
    }
}

struct search_term {
    const char *at;
    size_t len;
};

/* Splits a query into words: at spaces, except inside "double quotes". Returns how many (at
 * most max + 1, so that too many can be told apart from just enough). */
static int search_terms(const char *q, struct search_term *out, int max)
{
    int n = 0;
    for (q = skip_space(q); *q && n <= max; q = skip_space(q)) {
        const char *start = q;
        if (*q == '"') {
            start = ++q;
            while (*q && *q != '"')
                q++;
        } else {
            while (*q && *q != '"' && skip_space(q) == q)
                q++;
        }
        if (q > start && n < max)
            out[n] = (struct search_term){start, (size_t)(q - start)};
        if (q > start)
            n++;
        if (*q == '"')
            q++;
    }
    return n;
}

/* A LIKE pattern that finds the term anywhere: %term%, with LIKE's wildcards made literal. */
static char *like_pattern(const struct search_term *t)
{
    char *pattern = malloc(t->len * 2 + 3), *p = pattern;
    if (!pattern)
        return NULL;
    *p++ = '%';
    for (size_t i = 0; i < t->len; i++) {
        if (t->at[i] == '%' || t->at[i] == '_' || t->at[i] == '\\')
            *p++ = '\\';
        *p++ = t->at[i];
    }
    *p++ = '%';
    *p = '\0';
    return pattern;
}

/* Appends to a growing string; false once out of memory (the string is then freed). */
static bool cat(char **buf, size_t *len, size_t *cap, const char *text, size_t n)
{
    if (!*buf)
        return false;
    if (*len + n + 1 > *cap) {
        size_t grown = (*len + n + 1) * 2;
        char *b = realloc(*buf, grown);
        if (!b) {
            free(*buf);
            *buf = NULL;
            return false;
        }
        *buf = b;
        *cap = grown;
    }
    memcpy(*buf + *len, text, n);
    *len += n;
    (*buf)[*len] = '\0';
    return true;
}
#define CATS(s) cat(&sql, &sql_len, &sql_cap, s, strlen(s))

/* The statement is built per query, since the number of words varies: ?1 the FTS5 expression
 * (words of three or more characters, each a quoted phrase, all of them required), ?2 the
 * user, ?3 the room (0: all), ?4 the position bound, ?5 the limit, ?6... each word as a LIKE
 * pattern. Messages match the long words through the trigram index and the short ones (which
 * trigrams cannot match) with LIKE; notices, few per person, are scanned with LIKE for every
 * word, in the title or the body. Preparing it costs tens of microseconds, next to the search
 * itself. */
enum store_rc store_search(struct store *st, int64_t user_id, int64_t room, const char *query,
                           int64_t before, int limit, store_search_fn fn, void *ctx)
{
    struct search_term terms[STORE_SEARCH_TERMS_MAX];
    int n = search_terms(query, terms, STORE_SEARCH_TERMS_MAX);
    if (n == 0 || n > STORE_SEARCH_TERMS_MAX) {
        snprintf(st->errmsg, sizeof st->errmsg, "a search needs 1 to %d words",
                 STORE_SEARCH_TERMS_MAX);
        return STORE_CONFLICT;
    }
    size_t sql_len = 0, sql_cap = 2048, fts_len = 0, fts_cap = 512;
    char *sql = malloc(sql_cap), *fts = malloc(fts_cap), *like[STORE_SEARCH_TERMS_MAX] = {0};
    if (sql)
        sql[0] = '\0';
    if (fts)
        fts[0] = '\0';
    bool any_fts = false;
    for (int i = 0; i < n; i++) {
        if (utf8_chars(terms[i].at, terms[i].len) < 3)
            continue;
        /* A quoted FTS5 phrase; quotes inside it doubled. */
        if (any_fts)
            cat(&fts, &fts_len, &fts_cap, " AND ", 5);
        cat(&fts, &fts_len, &fts_cap, "\"", 1);
        for (size_t k = 0; k < terms[i].len; k++) {
            if (terms[i].at[k] == '"')
                cat(&fts, &fts_len, &fts_cap, "\"\"", 2);
            else
                cat(&fts, &fts_len, &fts_cap, terms[i].at + k, 1);
        }
        cat(&fts, &fts_len, &fts_cap, "\"", 1);
        any_fts = true;
    }
    CATS("SELECT pos, room, sender, body, ts, notice, title, withdrawn_at FROM (SELECT m.pos AS"
         " pos, m.room AS room, m.sender AS sender, m.body AS body, m.ts AS ts, 0 AS notice,"
         " NULL AS title, 0 AS withdrawn_at FROM ");
    CATS(any_fts ? "messages_fts f JOIN messages m ON m.pos = f.rowid WHERE messages_fts MATCH ?1"
                   " AND "
                 : "messages m WHERE ");
    CATS("m.room IN (" MY_ROOMS ") AND (?3 = 0 OR m.room = ?3) AND m.pos < ?4"
         " AND m.deleted = 0");
    char num[48];
    for (int i = 0; i < n; i++) {
        if (utf8_chars(terms[i].at, terms[i].len) >= 3)
            continue;
        snprintf(num, sizeof num, " AND m.body LIKE ?%d ESCAPE '\\'", 6 + i);
        CATS(num);
    }
    CATS(" UNION ALL SELECT (SELECT min(e.pos) FROM events e WHERE e.room = n.room), n.room,"
         " n.author, n.body, n.created_at, n.id, n.title, coalesce(n.withdrawn_at, 0)"
         " FROM notices n WHERE ?3 = 0 AND n.id IN (SELECT notice FROM notice_recipients"
         " WHERE user_id = ?2 UNION SELECT id FROM notices WHERE author = ?2)");
    for (int i = 0; i < n; i++) {
        snprintf(num, sizeof num, " AND (n.title LIKE ?%d ESCAPE '\\'", 6 + i);
        CATS(num);
        snprintf(num, sizeof num, " OR n.body LIKE ?%d ESCAPE '\\')", 6 + i);
        CATS(num);
    }
    CATS(") WHERE pos < ?4 ORDER BY pos DESC LIMIT ?5");
    enum store_rc r = STORE_OK;
    for (int i = 0; i < n && r == STORE_OK; i++)
        if (!(like[i] = like_pattern(&terms[i])))
            r = STORE_ERROR;
    sqlite3_stmt *s = NULL;
    if (r != STORE_OK || !sql || !fts) {
        snprintf(st->errmsg, sizeof st->errmsg, "search: out of memory");
        r = STORE_ERROR;
    } else if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
        r = store_fail(st, "search");
    }
    if (r == STORE_OK) {
        sqlite3_bind_text(s, 1, fts, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, user_id);
        sqlite3_bind_int64(s, 3, room);
        sqlite3_bind_int64(s, 4, before > 0 ? before : INT64_MAX);
        sqlite3_bind_int(s, 5, limit);
        for (int i = 0; i < n; i++)
            sqlite3_bind_text(s, 6 + i, like[i], -1, SQLITE_STATIC);
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            const char *body = (const char *)sqlite3_column_text(s, 3);
            const char *title = (const char *)sqlite3_column_text(s, 6);
            struct store_search_hit h = {.pos = sqlite3_column_int64(s, 0),
                                         .room = sqlite3_column_int64(s, 1),
                                         .sender = sqlite3_column_int64(s, 2),
                                         .body = body ? body : "",
                                         .ts = sqlite3_column_int64(s, 4),
                                         .notice = sqlite3_column_int64(s, 5),
                                         .title = title ? title : "",
                                         .withdrawn_at = sqlite3_column_int64(s, 7)};
            if (fn(ctx, &h) != 0) {
                rc = SQLITE_DONE;
                break;
            }
        }
        if (rc != SQLITE_DONE)
            r = store_fail(st, "search");
    }
    sqlite3_finalize(s);
    for (int i = 0; i < n; i++)
        free(like[i]);
    free(sql);
    free(fts);
    return r;
}
#undef CATS

enum store_rc store_client_id_get(struct store *st, int64_t user_id, const char *client_id,
                                  int64_t *pos)
{
    sqlite3_stmt *s = stmt(st, T_CID_GET);
    sqlite3_bind_int64(s, 1, user_id);
    sqlite3_bind_text(s, 2, client_id, -1, SQLITE_STATIC);
    return store_step_int(st, s, pos, "client id");
}

enum store_rc store_client_id_put(struct store *st, int64_t user_id, const char *client_id,
                                  int64_t pos)
{
    sqlite3_stmt *s = stmt(st, T_CID_PUT);
    sqlite3_bind_int64(s, 1, user_id);
    sqlite3_bind_text(s, 2, client_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, pos);
    return store_step_done(st, s, "client id");
}
