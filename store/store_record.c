/* store_record.c - the record's reviews, their passages and redactions, the rooms' reviewers
 * and holds (migration 20, docs/records.md). Statements are prepared per call: reviews are
 * made by a few people a day, never on a message's path. */
#include "store_internal.h"

#include <stdio.h>
#include <string.h>

static sqlite3_stmt *prepare(struct store *st, const char *sql)
{
    return store_prepare_once(st, sql, "record statement");
}

/* Runs s (no rows), finalises it; a constraint is STORE_CONFLICT, no row changed
 * STORE_NOT_FOUND when must_change. */
static enum store_rc run(struct store *st, sqlite3_stmt *s, bool must_change, const char *what)
{
    enum store_rc out = store_run_once(st, s, what);
    if (out == STORE_OK && must_change && sqlite3_changes(st->db) == 0)
        out = STORE_NOT_FOUND;
    return out;
}

enum store_rc store_reviewer_set(struct store *st, int64_t room, int64_t user_id, bool on,
                                 int64_t by, int64_t at)
{
    sqlite3_stmt *s =
        prepare(st, on ? "INSERT INTO record_reviewers (room, user_id, granted_by,"
                         " granted_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING"
                       : "DELETE FROM record_reviewers WHERE room = ?1 AND user_id = ?2");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_int64(s, 2, user_id);
    if (on) {
        sqlite3_bind_int64(s, 3, by);
        sqlite3_bind_int64(s, 4, at);
    }
    return run(st, s, false, "reviewer");
}

/* One integer from sql with up to two integer parameters; STORE_NOT_FOUND if no row. */
static enum store_rc one_int(struct store *st, const char *sql, int64_t a, int64_t b, int64_t *out)
{
    sqlite3_stmt *s = prepare(st, sql);
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, a);
    sqlite3_bind_int64(s, 2, b);
    int rc = sqlite3_step(s);
    enum store_rc r = rc == SQLITE_ROW    ? STORE_OK
                      : rc == SQLITE_DONE ? STORE_NOT_FOUND
                                          : store_fail(st, "record read");
    if (r == STORE_OK && out)
        *out = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return r;
}

enum store_rc store_reviewer_get(struct store *st, int64_t room, int64_t user_id)
{
    return one_int(st, "SELECT 1 FROM record_reviewers WHERE room = ? AND user_id = ?", room,
                   user_id, NULL);
}

enum store_rc store_review_insert(struct store *st, struct store_review *r)
{
    sqlite3_stmt *s = prepare(st, "INSERT INTO record_reviews (room, author, title, from_ts, to_ts,"
                                  " created_at) VALUES (?, ?, ?, ?, ?, ?)");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, r->room);
    sqlite3_bind_int64(s, 2, r->author);
    sqlite3_bind_text(s, 3, r->title, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 4, r->from_ts);
    sqlite3_bind_int64(s, 5, r->to_ts);
    sqlite3_bind_int64(s, 6, r->created_at);
    enum store_rc rc = run(st, s, false, "review insert");
    if (rc == STORE_OK)
        r->id = sqlite3_last_insert_rowid(st->db);
    return rc;
}

enum store_rc store_review_get(struct store *st, int64_t id, struct store_review *out)
{
    sqlite3_stmt *s = prepare(st, "SELECT id, room, author, title, from_ts, to_ts, created_at,"
                                  " coalesce(approver, 0), coalesce(approved_at, 0)"
                                  " FROM record_reviews WHERE id = ?");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s);
    enum store_rc r = rc == SQLITE_ROW    ? STORE_OK
                      : rc == SQLITE_DONE ? STORE_NOT_FOUND
                                          : store_fail(st, "review");
    if (r == STORE_OK) {
        memset(out, 0, sizeof *out);
        out->id = sqlite3_column_int64(s, 0);
        out->room = sqlite3_column_int64(s, 1);
        out->author = sqlite3_column_int64(s, 2);
        store_copy_text(out->title, sizeof out->title, s, 3);
        out->from_ts = sqlite3_column_int64(s, 4);
        out->to_ts = sqlite3_column_int64(s, 5);
        out->created_at = sqlite3_column_int64(s, 6);
        out->approver = sqlite3_column_int64(s, 7);
        out->approved_at = sqlite3_column_int64(s, 8);
    }
    sqlite3_finalize(s);
    return r;
}

enum store_rc store_review_approve(struct store *st, int64_t id, int64_t approver, int64_t at)
{
    sqlite3_stmt *s = prepare(st, "UPDATE record_reviews SET approver = ?2, approved_at = ?3"
                                  " WHERE id = ?1 AND approver IS NULL");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, approver);
    sqlite3_bind_int64(s, 3, at);
    return run(st, s, true, "review approve");
}

enum store_rc store_passage_set(struct store *st, int64_t review, const char *event_id, bool on)
{
    sqlite3_stmt *s =
        prepare(st, on ? "INSERT INTO record_passages (review, event_id) VALUES (?, ?)"
                         " ON CONFLICT DO NOTHING"
                       : "DELETE FROM record_passages WHERE review = ? AND event_id = ?");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, review);
    sqlite3_bind_text(s, 2, event_id, -1, SQLITE_TRANSIENT);
    return run(st, s, false, "passage");
}

enum store_rc store_passage_get(struct store *st, int64_t review, const char *event_id)
{
    sqlite3_stmt *s =
        prepare(st, "SELECT 1 FROM record_passages WHERE review = ? AND event_id = ?");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, review);
    sqlite3_bind_text(s, 2, event_id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s);
    enum store_rc r = rc == SQLITE_ROW    ? STORE_OK
                      : rc == SQLITE_DONE ? STORE_NOT_FOUND
                                          : store_fail(st, "passage");
    sqlite3_finalize(s);
    return r;
}

enum store_rc store_passage_count(struct store *st, int64_t review, int64_t *n)
{
    return one_int(st, "SELECT count(*) FROM record_passages WHERE review = ?1 AND ?2 = ?2", review,
                   0, n);
}

enum store_rc store_passage_each(struct store *st, int64_t review, store_passage_fn fn, void *ctx)
{
    sqlite3_stmt *s = prepare(st, "SELECT event_id FROM record_passages WHERE review = ?"
                                  " ORDER BY event_id");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, review);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (fn(ctx, (const char *)sqlite3_column_text(s, 0)) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "passages");
    sqlite3_finalize(s);
    return r;
}

enum store_rc store_redaction_insert(struct store *st, struct store_redaction *r)
{
    sqlite3_stmt *s = prepare(st, "INSERT INTO record_redactions (review, event_id, start, end,"
                                  " kind, by_hand, state, decided_by, decided_at)"
                                  " VALUES (?, ?, ?, ?, ?, ?, ?, nullif(?, 0), nullif(?, 0))");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, r->review);
    sqlite3_bind_text(s, 2, r->event_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 3, r->start);
    sqlite3_bind_int64(s, 4, r->end);
    sqlite3_bind_text(s, 5, r->kind, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(s, 6, r->by_hand);
    sqlite3_bind_text(s, 7, r->state, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 8, r->decided_by);
    sqlite3_bind_int64(s, 9, r->decided_at);
    enum store_rc rc = run(st, s, false, "redaction insert");
    if (rc == STORE_OK)
        r->id = sqlite3_last_insert_rowid(st->db);
    return rc;
}

enum store_rc store_redaction_decide(struct store *st, int64_t review, int64_t id,
                                     const char *state, int64_t by, int64_t at)
{
    sqlite3_stmt *s = prepare(st, "UPDATE record_redactions SET state = ?3, decided_by = ?4,"
                                  " decided_at = ?5 WHERE review = ?1 AND id = ?2");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, review);
    sqlite3_bind_int64(s, 2, id);
    sqlite3_bind_text(s, 3, state, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 4, by);
    sqlite3_bind_int64(s, 5, at);
    return run(st, s, true, "redaction decide");
}

enum store_rc store_redaction_each(struct store *st, int64_t review, const char *event_id,
                                   store_redaction_fn fn, void *ctx)
{
    sqlite3_stmt *s =
        prepare(st, "SELECT id, review, event_id, start, end, kind, by_hand, state,"
                    " coalesce(decided_by, 0), coalesce(decided_at, 0)"
                    " FROM record_redactions WHERE review = ?1"
                    " AND (?2 IS NULL OR event_id = ?2) ORDER BY event_id, start, id");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, review);
    if (event_id)
        sqlite3_bind_text(s, 2, event_id, -1, SQLITE_TRANSIENT);
    int rc;
    struct store_redaction r;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        memset(&r, 0, sizeof r);
        r.id = sqlite3_column_int64(s, 0);
        r.review = sqlite3_column_int64(s, 1);
        store_copy_text(r.event_id, sizeof r.event_id, s, 2);
        r.start = sqlite3_column_int64(s, 3);
        r.end = sqlite3_column_int64(s, 4);
        store_copy_text(r.kind, sizeof r.kind, s, 5);
        r.by_hand = sqlite3_column_int(s, 6) != 0;
        store_copy_text(r.state, sizeof r.state, s, 7);
        r.decided_by = sqlite3_column_int64(s, 8);
        r.decided_at = sqlite3_column_int64(s, 9);
        if (fn(ctx, &r) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    enum store_rc out = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "redactions");
    sqlite3_finalize(s);
    return out;
}

enum store_rc store_redaction_pending(struct store *st, int64_t review, int64_t *n)
{
    return one_int(st,
                   "SELECT count(*) FROM record_redactions WHERE review = ?1 AND ?2 = ?2"
                   " AND state = 'proposed'",
                   review, 0, n);
}

enum store_rc store_hold_set(struct store *st, int64_t room, bool on, int64_t by, int64_t at)
{
    sqlite3_stmt *s = prepare(st, on ? "INSERT INTO record_holds (room, held_by, held_at)"
                                       " VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING"
                                     : "DELETE FROM record_holds WHERE room = ?1");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, room);
    if (on) {
        sqlite3_bind_int64(s, 2, by);
        sqlite3_bind_int64(s, 3, at);
    }
    return run(st, s, false, "hold");
}

enum store_rc store_hold_get(struct store *st, int64_t room, int64_t *held_at)
{
    return one_int(st, "SELECT held_at FROM record_holds WHERE room = ?1 AND ?2 = ?2", room, 0,
                   held_at);
}

enum store_rc store_log_walk(struct store *st, int64_t room, const char *origin, int64_t inc,
                             int64_t after_seq, store_event_fn fn, void *ctx)
{
    sqlite3_stmt *s = prepare(st, "SELECT event_id, type, seq, payload, sig FROM events"
                                  " WHERE room = ? AND origin = ? AND inc = ? AND seq > ?"
                                  " ORDER BY seq");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_text(s, 2, origin, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 3, inc);
    sqlite3_bind_int64(s, 4, after_seq);
    int rc;
    struct store_event e;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        memset(&e, 0, sizeof e);
        e.room = room;
        snprintf(e.origin, sizeof e.origin, "%s", origin);
        e.inc = inc;
        store_copy_text(e.event_id, sizeof e.event_id, s, 0);
        store_copy_text(e.type, sizeof e.type, s, 1);
        e.seq = sqlite3_column_int64(s, 2);
        e.payload = sqlite3_column_blob(s, 3);
        e.payload_len = (size_t)sqlite3_column_bytes(s, 3);
        e.sig = sqlite3_column_blob(s, 4);
        e.sig_len = (size_t)sqlite3_column_bytes(s, 4);
        if (fn(ctx, &e) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    enum store_rc out = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "log walk");
    sqlite3_finalize(s);
    return out;
}
