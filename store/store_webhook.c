/* store_webhook.c - the outgoing webhook's outbox and the people a delivery names (store_push.h,
 * migration 24); retries and failures are store_outbox.c's, shared with e-mail. A delivery is
 * one row per event (not per person): statements are prepared per call, as mail's are. */
#include "store_internal.h"
#include "store_push.h"

#include <string.h>

static sqlite3_stmt *prepare(struct store *st, const char *sql)
{
    return store_prepare_once(st, sql, "webhook statement");
}

enum store_rc store_webhook_queue(struct store *st, const char *delivery, const char *kind,
                                  int64_t notice, const char *body, int64_t next_at, int64_t now)
{
    sqlite3_stmt *s =
        prepare(st, "INSERT INTO webhook_outbox (delivery, kind, notice, body, next_at,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?)");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_text(s, 1, delivery, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
    if (notice)
        sqlite3_bind_int64(s, 3, notice);
    sqlite3_bind_text(s, 4, body, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, next_at);
    sqlite3_bind_int64(s, 6, now);
    return store_run_once(st, s, "webhook: queue");
}

enum store_rc store_webhook_due(struct store *st, int64_t now, int limit, const int64_t *skip,
                                size_t nskip, void (*fn)(void *, const struct store_webhook_send *),
                                void *arg)
{
    sqlite3_stmt *s = prepare(st, "SELECT id, tries, created_at, delivery, kind, body"
                                  " FROM webhook_outbox WHERE state = 'pending' AND next_at <= ?"
                                  " ORDER BY next_at, id LIMIT ?");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int64(s, 2, (int64_t)limit + (int64_t)nskip);
    int rc = SQLITE_DONE, given = 0;
    while (given < limit && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_webhook_send w = {.id = sqlite3_column_int64(s, 0)};
        bool busy = false;
        for (size_t i = 0; i < nskip && !busy; i++)
            busy = skip[i] == w.id;
        if (busy)
            continue;
        w.tries = sqlite3_column_int64(s, 1);
        w.created_at = sqlite3_column_int64(s, 2);
        w.delivery = (const char *)sqlite3_column_text(s, 3);
        w.kind = (const char *)sqlite3_column_text(s, 4);
        w.body = (const char *)sqlite3_column_text(s, 5);
        fn(arg, &w);
        given++;
    }
    enum store_rc r =
        rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK : store_fail(st, "webhook: due");
    sqlite3_finalize(s);
    return r;
}

enum store_rc store_webhook_failures(struct store *st, int64_t limit,
                                     void (*fn)(void *, const struct store_webhook_failure *),
                                     void *arg)
{
    sqlite3_stmt *s = prepare(st, "SELECT id, coalesce(notice, 0), tries, created_at, delivery,"
                                  " kind, coalesce(last_error, '') FROM webhook_outbox"
                                  " WHERE state = 'failed' ORDER BY id DESC LIMIT ?");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, limit);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_webhook_failure f = {
            .id = sqlite3_column_int64(s, 0),
            .notice = sqlite3_column_int64(s, 1),
            .tries = sqlite3_column_int64(s, 2),
            .created_at = sqlite3_column_int64(s, 3),
            .delivery = (const char *)sqlite3_column_text(s, 4),
            .kind = (const char *)sqlite3_column_text(s, 5),
            .error = (const char *)sqlite3_column_text(s, 6),
        };
        fn(arg, &f);
    }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "webhook: failures");
    sqlite3_finalize(s);
    return r;
}

static enum store_rc people(struct store *st, sqlite3_stmt *s,
                            void (*fn)(void *, const struct store_webhook_person *), void *arg)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_webhook_person p = {
            .login = (const char *)sqlite3_column_text(s, 0),
            .name = (const char *)sqlite3_column_text(s, 1),
            .department = (const char *)sqlite3_column_text(s, 2),
            .phone = (const char *)sqlite3_column_text(s, 3),
            .email = (const char *)sqlite3_column_text(s, 4),
        };
        fn(arg, &p);
    }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "webhook: people");
    sqlite3_finalize(s);
    return r;
}

#define PERSON_COLUMNS "SELECT u.login, u.name, coalesce(d.name, ''), u.phone, u.email"

enum store_rc store_webhook_notice_people(struct store *st, int64_t notice,
                                          void (*fn)(void *, const struct store_webhook_person *),
                                          void *arg)
{
    sqlite3_stmt *s = prepare(st, PERSON_COLUMNS " FROM notice_recipients r"
                                                 " JOIN users u ON u.id = r.user_id"
                                                 " LEFT JOIN departments d ON d.id = u.department"
                                                 " WHERE r.notice = ? AND u.disabled = 0"
                                                 " AND u.home IS NULL ORDER BY u.login");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, notice);
    return people(st, s, fn, arg);
}

enum store_rc store_webhook_room_people(struct store *st, int64_t room, int64_t except,
                                        void (*fn)(void *, const struct store_webhook_person *),
                                        void *arg)
{
    sqlite3_stmt *s = prepare(st, PERSON_COLUMNS " FROM room_members m"
                                                 " JOIN users u ON u.id = m.user_id"
                                                 " LEFT JOIN departments d ON d.id = u.department"
                                                 " WHERE m.room = ? AND m.left_pos IS NULL"
                                                 " AND m.user_id != ? AND u.disabled = 0"
                                                 " AND u.home IS NULL ORDER BY u.login");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_int64(s, 2, except);
    return people(st, s, fn, arg);
}
