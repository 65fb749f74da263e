/* store_outbox.c - what the durable outboxes of e-mail (mail_outbox, migration 21) and the
 * outgoing webhook (webhook_outbox, migration 24) share (store_push.h): a row waits in state
 * 'pending' until next_at, is tried again later with its count of tries and its last error,
 * is deleted once delivered, or is kept as 'failed' for admins to see. One set of statements
 * serves both tables, so their life cycles cannot drift apart. */
#include "store_internal.h"
#include "store_push.h"

#include <stdio.h>

static const char *const tables[] = {
    [STORE_OUTBOX_MAIL] = "mail_outbox",
    [STORE_OUTBOX_WEBHOOK] = "webhook_outbox",
};

/* head, the box's table name, tail: the table is one of ours, never a caller's text. */
static sqlite3_stmt *prepare(struct store *st, const char *head, enum store_outbox box,
                             const char *tail)
{
    char sql[400];
    snprintf(sql, sizeof sql, "%s%s%s", head, tables[box], tail);
    return store_prepare_once(st, sql, "outbox statement");
}

enum store_rc store_outbox_next_due(struct store *st, enum store_outbox box, int64_t *at)
{
    return store_int_once(st,
                          prepare(st, "SELECT min(next_at) FROM ", box, " WHERE state = 'pending'"),
                          at, "outbox: next");
}

enum store_rc store_outbox_done(struct store *st, enum store_outbox box, int64_t id)
{
    sqlite3_stmt *s = prepare(st, "DELETE FROM ", box, " WHERE id = ?");
    if (s)
        sqlite3_bind_int64(s, 1, id);
    return store_run_once(st, s, "outbox: done");
}

enum store_rc store_outbox_retry(struct store *st, enum store_outbox box, int64_t id, int64_t tries,
                                 int64_t next_at, const char *error)
{
    sqlite3_stmt *s =
        prepare(st, "UPDATE ", box, " SET tries = ?2, next_at = ?3, last_error = ?4 WHERE id = ?1");
    if (s) {
        sqlite3_bind_int64(s, 1, id);
        sqlite3_bind_int64(s, 2, tries);
        sqlite3_bind_int64(s, 3, next_at);
        sqlite3_bind_text(s, 4, error, -1, SQLITE_STATIC);
    }
    return store_run_once(st, s, "outbox: retry");
}

enum store_rc store_outbox_fail(struct store *st, enum store_outbox box, int64_t id, int64_t tries,
                                const char *error)
{
    sqlite3_stmt *s = prepare(st, "UPDATE ", box,
                              " SET state = 'failed', tries = ?2, last_error = ?3 WHERE id = ?1");
    if (s) {
        sqlite3_bind_int64(s, 1, id);
        sqlite3_bind_int64(s, 2, tries);
        sqlite3_bind_text(s, 3, error, -1, SQLITE_STATIC);
    }
    return store_run_once(st, s, "outbox: fail");
}

enum store_rc store_outbox_counts(struct store *st, enum store_outbox box, int64_t *pending,
                                  int64_t *failed)
{
    sqlite3_stmt *s = prepare(st,
                              "SELECT coalesce(sum(state = 'pending'), 0),"
                              " coalesce(sum(state = 'failed'), 0) FROM ",
                              box, "");
    if (!s)
        return STORE_ERROR;
    enum store_rc r = STORE_OK;
    if (sqlite3_step(s) == SQLITE_ROW) {
        *pending = sqlite3_column_int64(s, 0);
        *failed = sqlite3_column_int64(s, 1);
    } else {
        r = store_fail(st, "outbox: counts");
    }
    sqlite3_finalize(s);
    return r;
}
