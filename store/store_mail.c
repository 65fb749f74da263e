/* store_mail.c - e-mail's outbox and roll-calls' one-tap answer links (store_push.h, migration
 * 21); a message's retries and failure are store_outbox.c's, shared with the webhook. Mail is
 * sent per person per urgent notice or roll-call: statements are prepared per call, as push's
 * are. */
#include "store_internal.h"
#include "store_push.h"

#include <stdlib.h>
#include <string.h>

static sqlite3_stmt *prepare(struct store *st, const char *sql)
{
    return store_prepare_once(st, sql, "mail statement");
}

enum store_rc store_mail_recipients(
    struct store *st, int64_t notice, int64_t reminded_at, const char *kind, bool dflt,
    void (*fn)(void *, int64_t user_id, const char *email, const char *name), void *arg)
{
    sqlite3_stmt *s =
        prepare(st, "SELECT u.id, u.email, u.name FROM notice_recipients r"
                    " JOIN users u ON u.id = r.user_id"
                    " WHERE r.notice = ?1 AND u.email != '' AND u.disabled = 0"
                    " AND (?4 = 0 OR r.reminded_at = ?4)"
                    " AND coalesce((SELECT np.email FROM notify_prefs np WHERE np.user_id = u.id"
                    " AND np.kind = ?2), ?3) ORDER BY u.id");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, notice);
    sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, dflt);
    sqlite3_bind_int64(s, 4, reminded_at);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        fn(arg, sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1),
           (const char *)sqlite3_column_text(s, 2));
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "mail: recipients");
    sqlite3_finalize(s);
    return r;
}

enum store_rc store_mail_queue(struct store *st, int64_t user_id, const char *to,
                               const char *subject, const char *body, int64_t notice,
                               int64_t next_at, int64_t now)
{
    sqlite3_stmt *s = store_kept(st, NS_MAIL_QUEUE,
                                 "INSERT INTO mail_outbox (user_id, to_addr, subject, body, notice,"
                                 " next_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 "mail statement");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, user_id);
    sqlite3_bind_text(s, 2, to, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, subject, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, body, -1, SQLITE_STATIC);
    if (notice)
        sqlite3_bind_int64(s, 5, notice);
    sqlite3_bind_int64(s, 6, next_at);
    sqlite3_bind_int64(s, 7, now);
    return store_step_done(st, s, "mail: queue");
}

enum store_rc store_mail_due(struct store *st, int64_t now, int limit, const int64_t *skip,
                             size_t nskip, void (*fn)(void *, const struct store_mail_send *),
                             void *arg)
{
    sqlite3_stmt *s = prepare(
        st, "SELECT o.id, o.user_id, o.tries, o.created_at, o.to_addr, o.subject, o.body,"
            " u.id IS NOT NULL, coalesce(o.notice, 0) FROM mail_outbox o LEFT JOIN users u ON "
            "u.id = o.user_id"
            " AND u.disabled = 0 AND u.email = o.to_addr"
            " WHERE o.state = 'pending' AND o.next_at <= ? ORDER BY o.next_at, o.id LIMIT ?");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int64(s, 2, (int64_t)limit + (int64_t)nskip);
    int rc, given = 0;
    while (given < limit && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_mail_send m = {0};
        m.id = sqlite3_column_int64(s, 0);
        bool busy = false;
        for (size_t i = 0; i < nskip && !busy; i++)
            busy = skip[i] == m.id;
        if (busy)
            continue;
        m.user_id = sqlite3_column_int64(s, 1);
        m.tries = sqlite3_column_int64(s, 2);
        m.created_at = sqlite3_column_int64(s, 3);
        m.to = (const char *)sqlite3_column_text(s, 4);
        m.subject = (const char *)sqlite3_column_text(s, 5);
        m.body = (const char *)sqlite3_column_text(s, 6);
        m.live = sqlite3_column_int(s, 7) != 0;
        m.notice = sqlite3_column_int64(s, 8);
        fn(arg, &m);
        given++;
    }
    sqlite3_finalize(s);
    return STORE_OK;
}

enum store_rc store_answer_link_add(struct store *st, const uint8_t hash[32], int64_t notice,
                                    int64_t user_id, int64_t expires_at, const char *channel)
{
    sqlite3_stmt *s =
        store_kept(st, NS_ANSWER_LINK_ADD,
                   "INSERT INTO answer_links (token_hash, notice, user_id, expires_at, channel)"
                   " VALUES (?, ?, ?, ?, ?)",
                   "answer link statement");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_blob(s, 1, hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, notice);
    sqlite3_bind_int64(s, 3, user_id);
    sqlite3_bind_int64(s, 4, expires_at);
    sqlite3_bind_text(s, 5, channel, -1, SQLITE_STATIC);
    return store_step_done(st, s, "mail: link");
}

enum store_rc store_answer_link_get(struct store *st, const uint8_t hash[32],
                                    struct store_answer_link *out)
{
    sqlite3_stmt *s = prepare(st, "SELECT notice, user_id, expires_at, coalesce(used_at, 0)"
                                  " FROM answer_links WHERE token_hash = ?");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_blob(s, 1, hash, 32, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_NOT_FOUND;
    if (rc == SQLITE_ROW) {
        out->notice = sqlite3_column_int64(s, 0);
        out->user_id = sqlite3_column_int64(s, 1);
        out->expires_at = sqlite3_column_int64(s, 2);
        out->used_at = sqlite3_column_int64(s, 3);
        r = STORE_OK;
    } else if (rc != SQLITE_DONE) {
        r = store_fail(st, "mail: link get");
    }
    sqlite3_finalize(s);
    return r;
}

enum store_rc store_answer_link_use(struct store *st, const uint8_t hash[32], int64_t choice,
                                    int64_t now)
{
    sqlite3_stmt *s = prepare(st, "UPDATE answer_links SET used_at = ?2, choice = ?3"
                                  " WHERE token_hash = ?1 AND used_at IS NULL");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_blob(s, 1, hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, now);
    sqlite3_bind_int64(s, 3, choice);
    enum store_rc r = store_run_once(st, s, "mail: link use");
    if (r == STORE_OK && sqlite3_changes(st->db) == 0)
        r = STORE_CONFLICT;
    return r;
}

enum store_rc store_reach_add(struct store *st, int64_t notice, int64_t user_id,
                              const char *channel, int64_t now)
{
    sqlite3_stmt *s = store_kept(st, NS_REACH_ADD,
                                 "INSERT OR IGNORE INTO notice_reach (notice, user_id, channel, at)"
                                 " VALUES (?, ?, ?, ?)",
                                 "reach statement");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, notice);
    sqlite3_bind_int64(s, 2, user_id);
    sqlite3_bind_text(s, 3, channel, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, now);
    return store_step_done(st, s, "reach: add");
}

#define REACHED_BY_NOTHING                                                                         \
    " r.read_at IS NULL AND NOT EXISTS (SELECT 1 FROM notice_reach x WHERE x.notice = r.notice"    \
    " AND x.user_id = r.user_id)"

enum store_rc store_reach_counts(struct store *st, int64_t notice, int64_t *push, int64_t *email,
                                 int64_t *none)
{
    sqlite3_stmt *s = prepare(
        st, "SELECT (SELECT count(*) FROM notice_reach WHERE notice = ?1 AND channel = 'push'),"
            " (SELECT count(*) FROM notice_reach WHERE notice = ?1 AND channel = 'email'),"
            " (SELECT count(*) FROM notice_recipients r WHERE r.notice = ?1 AND" REACHED_BY_NOTHING
            ")");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, notice);
    enum store_rc r = STORE_OK;
    if (sqlite3_step(s) == SQLITE_ROW) {
        *push = sqlite3_column_int64(s, 0);
        *email = sqlite3_column_int64(s, 1);
        *none = sqlite3_column_int64(s, 2);
    } else {
        r = store_fail(st, "reach: counts");
    }
    sqlite3_finalize(s);
    return r;
}

enum store_rc store_reach_none(struct store *st, int64_t notice, int64_t limit,
                               void (*fn)(void *, const char *login, const char *name,
                                          const char *department),
                               void *arg)
{
    sqlite3_stmt *s =
        prepare(st, "SELECT u.login, u.name, coalesce(d.name, '') FROM notice_recipients r"
                    " JOIN users u ON u.id = r.user_id"
                    " LEFT JOIN departments d ON d.id = u.department"
                    " WHERE r.notice = ? AND" REACHED_BY_NOTHING " ORDER BY u.login LIMIT ?");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, notice);
    sqlite3_bind_int64(s, 2, limit);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        fn(arg, (const char *)sqlite3_column_text(s, 0), (const char *)sqlite3_column_text(s, 1),
           (const char *)sqlite3_column_text(s, 2));
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "reach: none");
    sqlite3_finalize(s);
    return r;
}

enum store_rc store_mail_failures(struct store *st, int64_t limit,
                                  void (*fn)(void *, const struct store_mail_failure *), void *arg)
{
    sqlite3_stmt *s = prepare(st, "SELECT o.id, o.tries, o.created_at, coalesce(u.login, ''),"
                                  " o.to_addr, o.subject, coalesce(o.last_error, '')"
                                  " FROM mail_outbox o LEFT JOIN users u ON u.id = o.user_id"
                                  " WHERE o.state = 'failed' ORDER BY o.id DESC LIMIT ?");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, limit);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_mail_failure f = {
            .id = sqlite3_column_int64(s, 0),
            .tries = sqlite3_column_int64(s, 1),
            .created_at = sqlite3_column_int64(s, 2),
            .login = (const char *)sqlite3_column_text(s, 3),
            .to = (const char *)sqlite3_column_text(s, 4),
            .subject = (const char *)sqlite3_column_text(s, 5),
            .error = (const char *)sqlite3_column_text(s, 6),
        };
        fn(arg, &f);
    }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "mail: failures");
    sqlite3_finalize(s);
    return r;
}

enum store_rc store_reach_people(struct store *st, int64_t notice, int64_t limit,
                                 void (*fn)(void *, const struct store_reach_person *), void *arg)
{
    /* The link a person answered with, if any (the last, should they have changed their
     * answer from another link); else the app, if they answered at all. */
    sqlite3_stmt *s = prepare(
        st, "SELECT u.login, u.name, coalesce(d.name, ''),"
            " (SELECT min(at) FROM notice_reach x WHERE x.notice = r.notice"
            "  AND x.user_id = r.user_id AND x.channel = 'push'),"
            " (SELECT min(at) FROM notice_reach x WHERE x.notice = r.notice"
            "  AND x.user_id = r.user_id AND x.channel = 'email'),"
            " r.read_at, r.responded_at,"
            " (SELECT a.channel FROM answer_links a WHERE a.notice = r.notice"
            "  AND a.user_id = r.user_id AND a.used_at IS NOT NULL ORDER BY a.used_at DESC LIMIT 1)"
            " FROM notice_recipients r JOIN users u ON u.id = r.user_id"
            " LEFT JOIN departments d ON d.id = u.department"
            " WHERE r.notice = ? ORDER BY coalesce(d.name, ''), u.login LIMIT ?");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, notice);
    sqlite3_bind_int64(s, 2, limit);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_reach_person p = {
            .login = (const char *)sqlite3_column_text(s, 0),
            .name = (const char *)sqlite3_column_text(s, 1),
            .department = (const char *)sqlite3_column_text(s, 2),
            .push_at = sqlite3_column_int64(s, 3),
            .email_at = sqlite3_column_int64(s, 4),
            .read_at = sqlite3_column_int64(s, 5),
            .answered_at = sqlite3_column_int64(s, 6),
            .answered_by = sqlite3_column_type(s, 7) == SQLITE_TEXT
                               ? (const char *)sqlite3_column_text(s, 7)
                           : sqlite3_column_type(s, 6) != SQLITE_NULL ? "app"
                                                                      : NULL,
        };
        fn(arg, &p);
    }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "reach: people");
    sqlite3_finalize(s);
    return r;
}

/* ---- the daily digest ---- */

/* One person's rows gathered: their notices' titles are copied (the next step overwrites). */
struct digest_acc {
    struct store_digest_person p;
    struct store_digest_item *items;
    char *email, *name;
    size_t cap;
    bool oom;
};

static void digest_flush(struct digest_acc *a,
                         void (*fn)(void *, const struct store_digest_person *), void *arg)
{
    if (a->p.user_id && !a->oom) {
        a->p.email = a->email;
        a->p.name = a->name;
        a->p.items = a->items;
        fn(arg, &a->p);
    }
    for (size_t i = 0; i < a->p.nitems; i++)
        free((char *)a->items[i].title);
    free(a->email);
    free(a->name);
    a->email = a->name = NULL;
    a->p = (struct store_digest_person){0};
}

enum store_rc store_mail_digest_due(struct store *st, const char *day, int64_t now, bool dflt,
                                    int64_t limit, int64_t max_notices,
                                    void (*fn)(void *, const struct store_digest_person *),
                                    void *arg)
{
    /* One query: the batch of people (users' primary key, notify_prefs' and mail_digest_days'
     * by user), then each one's notices through notice_recipients_user (user_id, notice). */
    sqlite3_stmt *s = prepare(
        st, "SELECT x.id, x.email, x.name, n.id, n.title, n.priority = 'urgent',"
            " n.choices IS NOT NULL FROM (SELECT u.id, u.email, u.name FROM users u"
            " LEFT JOIN mail_digest_days dd ON dd.user_id = u.id"
            " WHERE u.disabled = 0 AND u.email != '' AND coalesce(dd.day, '') < ?1"
            " AND coalesce((SELECT np.email FROM notify_prefs np WHERE np.user_id = u.id"
            " AND np.kind = 'digest'), ?3) ORDER BY u.id LIMIT ?4) x"
            " LEFT JOIN (notice_recipients r JOIN notices n ON n.id = r.notice"
            " AND n.withdrawn_at IS NULL AND (coalesce(n.expires_at, 0) = 0 OR n.expires_at > ?2)"
            " AND CASE WHEN n.choices IS NOT NULL THEN r.responded_at IS NULL"
            " WHEN n.ask_ack THEN r.acked_at IS NULL ELSE r.read_at IS NULL END)"
            " ON r.user_id = x.id ORDER BY x.id, n.id DESC");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_text(s, 1, day, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, now);
    sqlite3_bind_int(s, 3, dflt);
    sqlite3_bind_int64(s, 4, limit);
    struct digest_acc a = {0};
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t uid = sqlite3_column_int64(s, 0);
        if (uid != a.p.user_id) {
            digest_flush(&a, fn, arg);
            a.p.user_id = uid;
            a.oom = !(a.email = strdup((const char *)sqlite3_column_text(s, 1))) ||
                    !(a.name = strdup((const char *)sqlite3_column_text(s, 2)));
        }
        if (sqlite3_column_type(s, 3) == SQLITE_NULL)
            continue; /* nothing waits for this person */
        a.p.total++;
        if ((int64_t)a.p.nitems >= max_notices || a.oom)
            continue;
        if (a.p.nitems == a.cap) {
            size_t cap = a.cap ? a.cap * 2 : 8;
            struct store_digest_item *v = realloc(a.items, cap * sizeof *v);
            if (!v) {
                a.oom = true;
                continue;
            }
            a.items = v;
            a.cap = cap;
        }
        struct store_digest_item *it = &a.items[a.p.nitems];
        it->notice = sqlite3_column_int64(s, 3);
        it->urgent = sqlite3_column_int(s, 5) != 0;
        it->rollcall = sqlite3_column_int(s, 6) != 0;
        if (!(it->title = strdup((const char *)sqlite3_column_text(s, 4))))
            a.oom = true;
        else
            a.p.nitems++;
    }
    digest_flush(&a, fn, arg);
    free(a.items);
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "mail: digest");
    sqlite3_finalize(s);
    return r;
}

enum store_rc store_mail_digest_done(struct store *st, int64_t user_id, const char *day)
{
    sqlite3_stmt *s = prepare(st, "INSERT INTO mail_digest_days (user_id, day) VALUES (?1, ?2)"
                                  " ON CONFLICT (user_id) DO UPDATE SET day = ?2");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, user_id);
    sqlite3_bind_text(s, 2, day, -1, SQLITE_STATIC);
    return store_run_once(st, s, "mail: digest done");
}
