/* store_push.c - Web Push's tables (store_push.h, migration 21): the VAPID key pair, the
 * subscriptions and the push outbox. Most statements run once per op and are prepared per call;
 * those run once per recipient (a roll-call to thousands queues a push per person) are kept
 * (store_kept). */
#include "store_internal.h"
#include "store_push.h"

#include <stdlib.h>
#include <string.h>

static sqlite3_stmt *prepare(struct store *st, const char *sql)
{
    return store_prepare_once(st, sql, "push statement");
}

enum store_rc store_push_vapid_get(struct store *st, uint8_t priv[32], uint8_t pub[65])
{
    sqlite3_stmt *s = prepare(st, "SELECT priv, pub FROM push_vapid WHERE id = 1");
    if (!s)
        return STORE_ERROR;
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_NOT_FOUND;
    if (rc == SQLITE_ROW && sqlite3_column_bytes(s, 0) == 32 && sqlite3_column_bytes(s, 1) == 65) {
        memcpy(priv, sqlite3_column_blob(s, 0), 32);
        memcpy(pub, sqlite3_column_blob(s, 1), 65);
        r = STORE_OK;
    } else if (rc == SQLITE_ROW) {
        r = store_fail(st, "push: the VAPID key row is malformed");
    } else if (rc != SQLITE_DONE) {
        r = store_fail(st, "push: vapid get");
    }
    sqlite3_finalize(s);
    return r;
}

enum store_rc store_push_vapid_init(struct store *st, const uint8_t priv[32], const uint8_t pub[65],
                                    int64_t now, bool *made)
{
    sqlite3_stmt *s = prepare(st, "INSERT OR IGNORE INTO push_vapid (id, priv, pub, created_at)"
                                  " VALUES (1, ?, ?, ?)");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_blob(s, 1, priv, 32, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, pub, 65, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now);
    enum store_rc r = store_run_once(st, s, "push: vapid init");
    *made = r == STORE_OK && sqlite3_changes(st->db) > 0;
    return r;
}

/* A subscription counts while its session is live and its user enabled. */
#define LIVE_SUB                                                                                   \
    " JOIN sessions se ON se.id = p.session_id AND se.ended_at IS NULL"                            \
    " JOIN users u ON u.id = p.user_id AND u.disabled = 0"

enum store_rc store_push_sub_count(struct store *st, int64_t user_id, int64_t *n)
{
    sqlite3_stmt *s =
        prepare(st, "SELECT count(*) FROM push_subs p" LIVE_SUB " WHERE p.user_id = ?");
    if (s)
        sqlite3_bind_int64(s, 1, user_id);
    return store_int_once(st, s, n, "push: count");
}

enum store_rc store_push_sub_put(struct store *st, int64_t user_id, int64_t session_id,
                                 const char *endpoint, const uint8_t p256dh[65],
                                 const uint8_t auth[16], int64_t max, int64_t now, int64_t *id)
{
    /* Subscriptions of ended sessions go first: they no longer count and never send. */
    enum store_rc r =
        store_run_once(st,
                       prepare(st, "DELETE FROM push_subs WHERE user_id = ? AND session_id IN"
                                   " (SELECT id FROM sessions WHERE ended_at IS NOT NULL)"),
                       "push: tidy");
    if (r != STORE_OK)
        return r;
    sqlite3_stmt *s =
        prepare(st, "SELECT count(*) FROM push_subs WHERE user_id = ?1 AND endpoint != ?2");
    if (s) {
        sqlite3_bind_int64(s, 1, user_id);
        sqlite3_bind_text(s, 2, endpoint, -1, SQLITE_STATIC);
    }
    int64_t n = 0;
    if ((r = store_int_once(st, s, &n, "push: count")) != STORE_OK)
        return r;
    if (n >= max)
        return STORE_CONFLICT;
    s = prepare(st,
                "INSERT INTO push_subs (user_id, session_id, endpoint, p256dh, auth, created_at)"
                " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (endpoint) DO UPDATE SET"
                " user_id = ?1, session_id = ?2, p256dh = ?4, auth = ?5, created_at = ?6"
                " RETURNING id");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, user_id);
    sqlite3_bind_int64(s, 2, session_id);
    sqlite3_bind_text(s, 3, endpoint, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 4, p256dh, 65, SQLITE_STATIC);
    sqlite3_bind_blob(s, 5, auth, 16, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, now);
    return store_int_once(st, s, id, "push: subscribe");
}

static enum store_rc drop_sends(struct store *st, int64_t sub)
{
    sqlite3_stmt *s = prepare(st, "DELETE FROM push_outbox WHERE sub = ?");
    if (s)
        sqlite3_bind_int64(s, 1, sub);
    return store_run_once(st, s, "push: drop sends");
}

enum store_rc store_push_sub_remove(struct store *st, int64_t user_id, const char *endpoint)
{
    sqlite3_stmt *s = prepare(st, "SELECT id FROM push_subs WHERE user_id = ? AND endpoint = ?");
    if (s) {
        sqlite3_bind_int64(s, 1, user_id);
        sqlite3_bind_text(s, 2, endpoint, -1, SQLITE_STATIC);
    }
    int64_t id = 0;
    enum store_rc r = store_int_once(st, s, &id, "push: find");
    return r == STORE_OK ? store_push_sub_delete(st, id) : r;
}

enum store_rc store_push_sub_delete(struct store *st, int64_t sub)
{
    enum store_rc r = drop_sends(st, sub);
    if (r != STORE_OK)
        return r;
    sqlite3_stmt *s = prepare(st, "DELETE FROM push_subs WHERE id = ?");
    if (s)
        sqlite3_bind_int64(s, 1, sub);
    return store_run_once(st, s, "push: unsubscribe");
}

/* Whether the subscription's owner takes pushes of kind ?2: their choice, or the kind's default
 * (?10) when they made none (notify_prefs). */
#define WANTS_PUSH                                                                                 \
    " AND coalesce((SELECT np.push FROM notify_prefs np WHERE np.user_id = p.user_id"              \
    " AND np.kind = ?2), ?10)"

/* Binds a queuing statement: ?1 the notice, room or user, ?3 the notice or the event's position
 * (0: NULL), then the send's own fields, and ?10 the kind's default. */
static enum store_rc queue(struct store *st, sqlite3_stmt *s, bool kept, int64_t key,
                           const char *kind, bool dflt, int64_t notice, const char *payload,
                           const char *urgency, int64_t ttl_s, int64_t next_at, int64_t now,
                           int64_t *n)
{
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int(s, 10, dflt);
    sqlite3_bind_int64(s, 1, key);
    sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
    if (notice)
        sqlite3_bind_int64(s, 3, notice);
    sqlite3_bind_text(s, 4, payload, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, urgency, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, ttl_s);
    sqlite3_bind_int64(s, 7, next_at);
    sqlite3_bind_int64(s, 8, now);
    enum store_rc r =
        kept ? store_step_done(st, s, "push: queue") : store_run_once(st, s, "push: queue");
    *n = r == STORE_OK ? sqlite3_changes(st->db) : 0;
    return r;
}

enum store_rc store_push_queue_notice(struct store *st, int64_t notice, const char *kind, bool dflt,
                                      const char *payload, const char *urgency, int64_t ttl_s,
                                      int64_t next_at, int64_t now, int64_t *n)
{
    sqlite3_stmt *s =
        prepare(st, "INSERT INTO push_outbox (sub, kind, notice, payload, urgency, ttl, next_at,"
                    " created_at) SELECT p.id, ?2, ?3, ?4, ?5, ?6, ?7, ?8 FROM notice_recipients r"
                    " JOIN push_subs p ON p.user_id = r.user_id" LIVE_SUB
                    " WHERE r.notice = ?1" WANTS_PUSH);
    return queue(st, s, false, notice, kind, dflt, notice, payload, urgency, ttl_s, next_at, now,
                 n);
}

enum store_rc store_push_queue_reminder(struct store *st, int64_t notice, int64_t reminded_at,
                                        const char *kind, bool dflt, const char *payload,
                                        const char *urgency, int64_t ttl_s, int64_t next_at,
                                        int64_t now, int64_t *n)
{
    /* Those store_notice_remind just marked carry its time: one statement for all of them. */
    sqlite3_stmt *s =
        prepare(st, "INSERT INTO push_outbox (sub, kind, notice, payload, urgency, ttl, next_at,"
                    " created_at) SELECT p.id, ?2, ?3, ?4, ?5, ?6, ?7, ?8 FROM notice_recipients r"
                    " JOIN push_subs p ON p.user_id = r.user_id" LIVE_SUB
                    " WHERE r.notice = ?1 AND r.reminded_at = ?9" WANTS_PUSH);
    if (s)
        sqlite3_bind_int64(s, 9, reminded_at);
    return queue(st, s, false, notice, kind, dflt, notice, payload, urgency, ttl_s, next_at, now,
                 n);
}

enum store_rc store_push_queue_user(struct store *st, int64_t user_id, const char *kind, bool dflt,
                                    int64_t notice, const char *payload, const char *urgency,
                                    int64_t ttl_s, int64_t next_at, int64_t now, int64_t *n)
{
    sqlite3_stmt *s = store_kept(
        st, NS_PUSH_QUEUE_USER,
        "INSERT INTO push_outbox (sub, kind, notice, payload, urgency, ttl, next_at, created_at)"
        " SELECT p.id, ?2, ?3, ?4, ?5, ?6, ?7, ?8 FROM push_subs p" LIVE_SUB
        " WHERE p.user_id = ?1" WANTS_PUSH,
        "push statement");
    return queue(st, s, true, user_id, kind, dflt, notice, payload, urgency, ttl_s, next_at, now,
                 n);
}

enum store_rc store_push_notice_users(struct store *st, int64_t notice, int64_t reminded_at,
                                      const char *kind, bool dflt,
                                      void (*fn)(void *, int64_t user_id), void *arg)
{
    sqlite3_stmt *s =
        prepare(st, "SELECT DISTINCT p.user_id FROM notice_recipients r"
                    " JOIN push_subs p ON p.user_id = r.user_id" LIVE_SUB
                    " WHERE r.notice = ?1 AND (?9 = 0 OR r.reminded_at = ?9)" WANTS_PUSH
                    " ORDER BY p.user_id");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, notice);
    sqlite3_bind_int64(s, 9, reminded_at);
    sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 10, dflt);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        fn(arg, sqlite3_column_int64(s, 0));
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "push: notice users");
    sqlite3_finalize(s);
    return r;
}

enum store_rc store_push_queue_room(struct store *st, const struct store_push_room_q *q, int64_t *n)
{
    /* One statement for the whole room, whoever wants what: each recipient's payload is chosen
     * by their previews choice in SQL (notify_user), not by a round trip per member. */
    sqlite3_stmt *s = prepare(
        st, "INSERT INTO push_outbox (sub, kind, room, pos, payload, urgency, ttl, next_at,"
            " created_at) SELECT p.id, ?2, ?1, ?3, CASE WHEN ?11 IS NOT NULL AND coalesce(("
            "SELECT nu.previews FROM notify_user nu WHERE nu.user_id = p.user_id), 0) THEN ?11"
            " ELSE ?4 END, ?5, ?6, ?7, ?8 FROM room_members rm"
            " JOIN push_subs p ON p.user_id = rm.user_id" LIVE_SUB
            " WHERE rm.room = ?1 AND rm.left_pos IS NULL AND rm.user_id != ?9"
            " AND (?12 IS NULL OR u.home IS NULL AND u.login IN (SELECT value FROM json_each(?12)))"
            " AND (?13 = 0 OR EXISTS (SELECT 1 FROM room_watch w WHERE w.room = rm.room"
            " AND w.user_id = rm.user_id))" WANTS_PUSH);
    if (s) {
        sqlite3_bind_int64(s, 9, q->except);
        if (q->preview)
            sqlite3_bind_text(s, 11, q->preview, -1, SQLITE_STATIC);
        if (q->logins)
            sqlite3_bind_text(s, 12, q->logins, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 13, q->watchers);
    }
    return queue(st, s, false, q->room, q->kind, q->dflt, q->pos, q->payload, q->urgency, q->ttl_s,
                 q->next_at, q->now, n);
}

enum store_rc store_room_watch_set(struct store *st, int64_t room, int64_t user_id, bool watch)
{
    sqlite3_stmt *s =
        watch ? prepare(st, "INSERT OR IGNORE INTO room_watch (room, user_id) VALUES (?, ?)")
              : prepare(st, "DELETE FROM room_watch WHERE room = ? AND user_id = ?");
    if (s) {
        sqlite3_bind_int64(s, 1, room);
        sqlite3_bind_int64(s, 2, user_id);
    }
    return store_run_once(st, s, "push: watch");
}

enum store_rc store_room_watched(struct store *st, int64_t room, int64_t user_id, bool *watched)
{
    sqlite3_stmt *s = prepare(st, "SELECT 1 FROM room_watch WHERE room = ? AND user_id = ?");
    if (s) {
        sqlite3_bind_int64(s, 1, room);
        sqlite3_bind_int64(s, 2, user_id);
    }
    int64_t v = 0;
    enum store_rc r = store_int_once(st, s, &v, "push: watched");
    *watched = r == STORE_OK;
    return r == STORE_NOT_FOUND ? STORE_OK : r;
}

enum store_rc store_push_due(struct store *st, int64_t now, int limit, const int64_t *skip,
                             size_t nskip, void (*fn)(void *, const struct store_push_send *),
                             void *arg)
{
    /* Rows past the in-flight ones: ask for that many more and skip them here. */
    sqlite3_stmt *s = prepare(
        st, "SELECT o.id, o.sub, coalesce(p.user_id, 0), coalesce(o.notice, 0), o.ttl, o.tries,"
            " o.created_at, o.kind, o.urgency, coalesce(p.endpoint, ''), p.p256dh, p.auth,"
            " o.payload, se.id IS NOT NULL AND u.id IS NOT NULL,"
            /* A reminder asks for what the notice asks (an answer, an acknowledgement, a
             * reading), so only that spares it; anything else is spared by any of them. */
            " CASE WHEN o.kind = 'reminder' THEN n.withdrawn_at IS NOT NULL OR CASE"
            " WHEN n.choices IS NOT NULL THEN r.responded_at IS NOT NULL"
            " WHEN n.ask_ack THEN r.acked_at IS NOT NULL ELSE r.read_at IS NOT NULL END"
            " ELSE r.read_at IS NOT NULL OR r.acked_at IS NOT NULL OR r.responded_at IS NOT NULL"
            " OR coalesce(m.read_pos >= o.pos, 0) END, coalesce(q.start_min, -1),"
            " coalesce(q.end_min, -1)"
            " FROM push_outbox o LEFT JOIN push_subs p ON p.id = o.sub"
            " LEFT JOIN sessions se ON se.id = p.session_id AND se.ended_at IS NULL"
            " LEFT JOIN users u ON u.id = p.user_id AND u.disabled = 0"
            " LEFT JOIN notice_recipients r ON r.notice = o.notice AND r.user_id = p.user_id"
            " LEFT JOIN notices n ON n.id = o.notice"
            " LEFT JOIN room_members m ON m.room = o.room AND m.user_id = p.user_id"
            " LEFT JOIN push_quiet q ON q.user_id = p.user_id"
            " WHERE o.next_at <= ? ORDER BY o.next_at, o.id LIMIT ?");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int64(s, 2, (int64_t)limit + (int64_t)nskip);
    int rc, given = 0;
    struct store_push_send *p = calloc(1, sizeof *p);
    if (!p) {
        sqlite3_finalize(s);
        return STORE_ERROR;
    }
    while (given < limit && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(s, 0);
        bool busy = false;
        for (size_t i = 0; i < nskip && !busy; i++)
            busy = skip[i] == id;
        if (busy)
            continue;
        memset(p, 0, sizeof *p);
        p->id = id;
        p->sub = sqlite3_column_int64(s, 1);
        p->user_id = sqlite3_column_int64(s, 2);
        p->notice = sqlite3_column_int64(s, 3);
        p->ttl = sqlite3_column_int64(s, 4);
        p->tries = sqlite3_column_int64(s, 5);
        p->created_at = sqlite3_column_int64(s, 6);
        store_copy_text(p->kind, sizeof p->kind, s, 7);
        store_copy_text(p->urgency, sizeof p->urgency, s, 8);
        store_copy_text(p->endpoint, sizeof p->endpoint, s, 9);
        p->live = sqlite3_column_int(s, 13) && sqlite3_column_bytes(s, 10) == 65 &&
                  sqlite3_column_bytes(s, 11) == 16;
        if (p->live) {
            memcpy(p->p256dh, sqlite3_column_blob(s, 10), 65);
            memcpy(p->auth, sqlite3_column_blob(s, 11), 16);
        }
        store_copy_text(p->payload, sizeof p->payload, s, 12);
        p->seen = sqlite3_column_int(s, 14) != 0;
        p->quiet_start = sqlite3_column_int(s, 15);
        p->quiet_end = sqlite3_column_int(s, 16);
        fn(arg, p);
        given++;
    }
    free(p);
    sqlite3_finalize(s);
    return STORE_OK;
}

enum store_rc store_push_next_due(struct store *st, int64_t *at)
{
    return store_int_once(st, prepare(st, "SELECT min(next_at) FROM push_outbox"), at,
                          "push: next");
}

enum store_rc store_push_sent(struct store *st, int64_t id)
{
    sqlite3_stmt *s =
        store_kept(st, NS_PUSH_SENT, "DELETE FROM push_outbox WHERE id = ?", "push statement");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, id);
    return store_step_done(st, s, "push: sent");
}

enum store_rc store_push_retry(struct store *st, int64_t id, int64_t tries, int64_t next_at,
                               const char *error)
{
    sqlite3_stmt *s = prepare(
        st, "UPDATE push_outbox SET tries = ?2, next_at = ?3, last_error = ?4 WHERE id = ?1");
    if (s) {
        sqlite3_bind_int64(s, 1, id);
        sqlite3_bind_int64(s, 2, tries);
        sqlite3_bind_int64(s, 3, next_at);
        sqlite3_bind_text(s, 4, error, -1, SQLITE_STATIC);
    }
    return store_run_once(st, s, "push: retry");
}

enum store_rc store_push_pending(struct store *st, int64_t *n)
{
    return store_int_once(st, prepare(st, "SELECT count(*) FROM push_outbox"), n, "push: pending");
}

enum store_rc store_push_defer(struct store *st, int64_t id, int64_t next_at)
{
    sqlite3_stmt *s = prepare(st, "UPDATE push_outbox SET next_at = ? WHERE id = ?");
    if (s) {
        sqlite3_bind_int64(s, 1, next_at);
        sqlite3_bind_int64(s, 2, id);
    }
    return store_run_once(st, s, "push: defer");
}

enum store_rc store_push_quiet_set(struct store *st, int64_t user_id, int start, int end)
{
    sqlite3_stmt *s = start < 0 ? prepare(st, "DELETE FROM push_quiet WHERE user_id = ?")
                                : prepare(st, "INSERT INTO push_quiet (user_id, start_min, end_min)"
                                              " VALUES (?1, ?2, ?3) ON CONFLICT (user_id) DO UPDATE"
                                              " SET start_min = ?2, end_min = ?3");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, user_id);
    if (start >= 0) {
        sqlite3_bind_int(s, 2, start);
        sqlite3_bind_int(s, 3, end);
    }
    return store_run_once(st, s, "push: quiet");
}

enum store_rc store_push_quiet_get(struct store *st, int64_t user_id, int *start, int *end)
{
    sqlite3_stmt *s = prepare(st, "SELECT start_min, end_min FROM push_quiet WHERE user_id = ?");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, user_id);
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_NOT_FOUND;
    if (rc == SQLITE_ROW) {
        *start = sqlite3_column_int(s, 0);
        *end = sqlite3_column_int(s, 1);
        r = STORE_OK;
    } else if (rc != SQLITE_DONE) {
        r = store_fail(st, "push: quiet get");
    }
    sqlite3_finalize(s);
    return r;
}

/* ---- what reaches whom (notify_prefs, notify_user) ---- */

enum store_rc store_notify_pref_set(struct store *st, int64_t user_id, const char *kind, bool push,
                                    bool email)
{
    sqlite3_stmt *s = prepare(st, "INSERT INTO notify_prefs (user_id, kind, push, email)"
                                  " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (user_id, kind)"
                                  " DO UPDATE SET push = ?3, email = ?4");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, user_id);
    sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, push);
    sqlite3_bind_int(s, 4, email);
    return store_run_once(st, s, "notify: pref set");
}

enum store_rc store_notify_pref_get(struct store *st, int64_t user_id, const char *kind, bool *push,
                                    bool *email)
{
    sqlite3_stmt *s =
        prepare(st, "SELECT push, email FROM notify_prefs WHERE user_id = ? AND kind = ?");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, user_id);
    sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_NOT_FOUND;
    if (rc == SQLITE_ROW) {
        *push = sqlite3_column_int(s, 0) != 0;
        *email = sqlite3_column_int(s, 1) != 0;
        r = STORE_OK;
    } else if (rc != SQLITE_DONE) {
        r = store_fail(st, "notify: pref get");
    }
    sqlite3_finalize(s);
    return r;
}

enum store_rc store_notify_previews_set(struct store *st, int64_t user_id, bool previews)
{
    sqlite3_stmt *s = prepare(st, "INSERT INTO notify_user (user_id, previews) VALUES (?1, ?2)"
                                  " ON CONFLICT (user_id) DO UPDATE SET previews = ?2");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, user_id);
    sqlite3_bind_int(s, 2, previews);
    return store_run_once(st, s, "notify: previews set");
}

enum store_rc store_notify_previews_get(struct store *st, int64_t user_id, bool *previews)
{
    int64_t v = 0;
    sqlite3_stmt *s = prepare(st, "SELECT previews FROM notify_user WHERE user_id = ?");
    if (s)
        sqlite3_bind_int64(s, 1, user_id);
    enum store_rc r = store_int_once(st, s, &v, "notify: previews get");
    *previews = r == STORE_OK && v != 0;
    return r == STORE_NOT_FOUND ? STORE_OK : r;
}
