/* store_jma.c - JMA's feed entries already fetched, the alerts they started and the rules an
 * admin set (migration 22, docs/alerts.md). Statements are prepared per call: a feed is read
 * once a minute and alerts come a few a year, never on a message's path. */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sqlite3_stmt *prepare(struct store *st, const char *sql)
{
    return store_prepare_once(st, sql, "jma statement");
}

enum store_rc store_jma_seen_has(struct store *st, const char *entry_id)
{
    sqlite3_stmt *s = prepare(st, "SELECT 1 FROM jma_seen WHERE entry_id = ?");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_text(s, 1, entry_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    enum store_rc r = rc == SQLITE_ROW    ? STORE_OK
                      : rc == SQLITE_DONE ? STORE_NOT_FOUND
                                          : store_fail(st, "jma seen");
    sqlite3_finalize(s);
    return r;
}

enum store_rc store_jma_seen_add(struct store *st, const char *entry_id, const char *href,
                                 int64_t at, const char *result)
{
    sqlite3_stmt *s = prepare(st, "INSERT INTO jma_seen (entry_id, href, seen_at, result) VALUES "
                                  "(?, ?, ?, ?) ON CONFLICT DO NOTHING");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_text(s, 1, entry_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, href, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, at);
    sqlite3_bind_text(s, 4, result, -1, SQLITE_STATIC);
    return store_run_once(st, s, "jma seen add");
}

enum store_rc store_jma_seen_prune(struct store *st, int64_t before)
{
    sqlite3_stmt *s = prepare(st, "DELETE FROM jma_seen WHERE seen_at < ?");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, before);
    return store_run_once(st, s, "jma seen prune");
}

void store_jma_alert_clear(struct store_jma_alert *a)
{
    free(a->details);
    memset(a, 0, sizeof *a);
}

#define ALERT_COLS                                                                                 \
    "id, kind, event_id, state, drill, strength, details, created_at, due_at, "                    \
    "coalesce(decided_at, 0), coalesce(decided_by, ''), coalesce(notice, 0)"

static void alert_read(sqlite3_stmt *s, struct store_jma_alert *a)
{
    a->id = sqlite3_column_int64(s, 0);
    store_copy_text(a->kind, sizeof a->kind, s, 1);
    store_copy_text(a->event_id, sizeof a->event_id, s, 2);
    store_copy_text(a->state, sizeof a->state, s, 3);
    a->drill = sqlite3_column_int64(s, 4) != 0;
    a->strength = sqlite3_column_int64(s, 5);
    const char *d = (const char *)sqlite3_column_text(s, 6);
    a->details = strdup(d ? d : "{}");
    a->created_at = sqlite3_column_int64(s, 7);
    a->due_at = sqlite3_column_int64(s, 8);
    a->decided_at = sqlite3_column_int64(s, 9);
    store_copy_text(a->decided_by, sizeof a->decided_by, s, 10);
    a->notice = sqlite3_column_int64(s, 11);
}

enum store_rc store_jma_alert_insert(struct store *st, struct store_jma_alert *a)
{
    sqlite3_stmt *s = prepare(st, "INSERT INTO jma_alerts (kind, event_id, state, drill, strength, "
                                  "details, created_at, due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_text(s, 1, a->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, a->event_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, a->state, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 4, a->drill);
    sqlite3_bind_int64(s, 5, a->strength);
    sqlite3_bind_text(s, 6, a->details ? a->details : "{}", -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 7, a->created_at);
    sqlite3_bind_int64(s, 8, a->due_at);
    enum store_rc r = store_run_once(st, s, "jma alert insert");
    if (r == STORE_OK)
        a->id = sqlite3_last_insert_rowid(st->db);
    return r;
}

enum store_rc store_jma_alert_update(struct store *st, const struct store_jma_alert *a)
{
    sqlite3_stmt *s =
        prepare(st, "UPDATE jma_alerts SET state = ?, strength = ?, details = ?, "
                    "due_at = ?, decided_at = nullif(?, 0), decided_by = nullif(?, ''), "
                    "notice = nullif(?, 0) WHERE id = ?");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_text(s, 1, a->state, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, a->strength);
    sqlite3_bind_text(s, 3, a->details ? a->details : "{}", -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, a->due_at);
    sqlite3_bind_int64(s, 5, a->decided_at);
    sqlite3_bind_text(s, 6, a->decided_by, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 7, a->notice);
    sqlite3_bind_int64(s, 8, a->id);
    return store_run_once(st, s, "jma alert update");
}

/* The first row of s into *out (prepared and bound by the caller; finalised here). */
static enum store_rc alert_one(struct store *st, sqlite3_stmt *s, struct store_jma_alert *out)
{
    int rc = sqlite3_step(s);
    enum store_rc r = rc == SQLITE_ROW    ? STORE_OK
                      : rc == SQLITE_DONE ? STORE_NOT_FOUND
                                          : store_fail(st, "jma alert read");
    if (r == STORE_OK)
        alert_read(s, out);
    sqlite3_finalize(s);
    return r;
}

enum store_rc store_jma_alert_get(struct store *st, int64_t id, struct store_jma_alert *out)
{
    sqlite3_stmt *s = prepare(st, "SELECT " ALERT_COLS " FROM jma_alerts WHERE id = ?");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, id);
    return alert_one(st, s, out);
}

enum store_rc store_jma_alert_of_event(struct store *st, const char *kind, const char *event_id,
                                       struct store_jma_alert *out)
{
    sqlite3_stmt *s = prepare(st, "SELECT " ALERT_COLS " FROM jma_alerts WHERE (?1 IS NULL OR "
                                  "kind = ?1) AND event_id = ?2 ORDER BY id DESC LIMIT 1");
    if (!s)
        return STORE_ERROR;
    if (kind)
        sqlite3_bind_text(s, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, event_id, -1, SQLITE_STATIC);
    return alert_one(st, s, out);
}

enum store_rc store_jma_alert_strongest_since(struct store *st, const char *kind, int64_t since,
                                              struct store_jma_alert *out)
{
    sqlite3_stmt *s = prepare(st, "SELECT " ALERT_COLS " FROM jma_alerts WHERE kind = ? AND "
                                  "created_at >= ? AND state IN ('pending','sent') "
                                  "ORDER BY strength DESC, id DESC LIMIT 1");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_text(s, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, since);
    return alert_one(st, s, out);
}

enum store_rc store_jma_alert_each(struct store *st, int64_t limit, bool pending_only,
                                   int (*cb)(void *, const struct store_jma_alert *), void *arg)
{
    sqlite3_stmt *s = prepare(
        st, pending_only ? "SELECT " ALERT_COLS " FROM jma_alerts WHERE state = 'pending' "
                           "ORDER BY due_at, id LIMIT ?"
                         : "SELECT " ALERT_COLS " FROM jma_alerts ORDER BY id DESC LIMIT ?");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_int64(s, 1, limit);
    enum store_rc r = STORE_OK;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_jma_alert a = {0};
        alert_read(s, &a);
        int stop = cb(arg, &a);
        store_jma_alert_clear(&a);
        if (stop)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        r = store_fail(st, "jma alert list");
    sqlite3_finalize(s);
    return r;
}

enum store_rc store_jma_rules_get(struct store *st, char **rules)
{
    *rules = NULL;
    sqlite3_stmt *s = prepare(st, "SELECT rules FROM jma_rules WHERE id = 1");
    if (!s)
        return STORE_ERROR;
    int rc = sqlite3_step(s);
    enum store_rc r = rc == SQLITE_ROW    ? STORE_OK
                      : rc == SQLITE_DONE ? STORE_NOT_FOUND
                                          : store_fail(st, "jma rules");
    if (r == STORE_OK) {
        const char *t = (const char *)sqlite3_column_text(s, 0);
        *rules = strdup(t ? t : "{}");
        if (!*rules)
            r = STORE_ERROR;
    }
    sqlite3_finalize(s);
    return r;
}

enum store_rc store_jma_rules_set(struct store *st, const char *rules, const char *by, int64_t at)
{
    sqlite3_stmt *s =
        prepare(st, "INSERT INTO jma_rules (id, rules, updated_by, updated_at) VALUES "
                    "(1, ?1, ?2, ?3) ON CONFLICT (id) DO UPDATE SET rules = ?1, "
                    "updated_by = ?2, updated_at = ?3");
    if (!s)
        return STORE_ERROR;
    sqlite3_bind_text(s, 1, rules, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, by, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, at);
    return store_run_once(st, s, "jma rules set");
}
