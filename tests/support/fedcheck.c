/* fedcheck.c - see fedcheck.h: one read transaction per server and room, digests with
 * libsodium's BLAKE2b, and the comparisons between servers. */
#include "fedcheck.h"

#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUSY_MS 2000

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static sqlite3 *open_ro(const char *path, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "no memory");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, BUSY_MS);
    return db;
}

/* Prepares sql and binds the room's row id (?1) if it has a parameter. */
static sqlite3_stmt *prep(sqlite3 *db, const char *sql, long long room, char *err, size_t errlen)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", sql, sqlite3_errmsg(db));
        return NULL;
    }
    if (sqlite3_bind_parameter_count(s) >= 1)
        sqlite3_bind_int64(s, 1, room);
    return s;
}

/* The first column of the first row as an integer (0 if none); false on an error. */
static bool scalar(sqlite3 *db, const char *sql, long long room, long long *v, char *err,
                   size_t errlen)
{
    sqlite3_stmt *s = prep(db, sql, room, err, errlen);
    if (!s)
        return false;
    int rc = sqlite3_step(s);
    *v = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        snprintf(err, errlen, "%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_finalize(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE;
}

/* BLAKE2b-256 over every row's first column, each followed by '\n'. */
static bool digest(sqlite3 *db, const char *sql, long long room, unsigned char out[32], char *err,
                   size_t errlen)
{
    sqlite3_stmt *s = prep(db, sql, room, err, errlen);
    if (!s)
        return false;
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const unsigned char *id = sqlite3_column_text(s, 0);
        int len = sqlite3_column_bytes(s, 0);
        crypto_generichash_update(&h, id ? id : (const unsigned char *)"", (size_t)len);
        crypto_generichash_update(&h, (const unsigned char *)"\n", 1);
    }
    crypto_generichash_final(&h, out, 32);
    if (rc != SQLITE_DONE)
        snprintf(err, errlen, "%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_finalize(s);
    return rc == SQLITE_DONE;
}

/* Rows of every table whose name has "fork" in it: the fork evidence (issue 17, item 5) is
 * kept in a table of its own, whatever its final name; any row there is a fork. */
static bool fork_rows(sqlite3 *db, long long *rows, char *err, size_t errlen)
{
    *rows = 0;
    sqlite3_stmt *s = prep(db,
                           "SELECT name FROM sqlite_master WHERE type = 'table'"
                           " AND name LIKE '%fork%'",
                           0, err, errlen);
    if (!s)
        return false;
    bool ok = true;
    while (ok && sqlite3_step(s) == SQLITE_ROW) {
        char sql[200];
        long long n;
        snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\"",
                 (const char *)sqlite3_column_text(s, 0));
        ok = scalar(db, sql, 0, &n, err, errlen);
        *rows += n;
    }
    sqlite3_finalize(s);
    return ok;
}

static bool read_room(sqlite3 *db, const char *room_id, struct fc_state *out)
{
    char *err = out->err;
    size_t el = sizeof out->err;
    sqlite3_stmt *s = prep(db, "SELECT id FROM rooms WHERE room_id = ?1", 0, err, el);
    if (!s)
        return false;
    sqlite3_bind_text(s, 1, room_id, -1, SQLITE_STATIC);
    long long room = -1;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        room = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        snprintf(err, el, "reading rooms: %s", sqlite3_errmsg(db));
        return false;
    }
    if (!fork_rows(db, &out->fork_rows, err, el))
        return false;
    out->room_present = room >= 0;
    if (!out->room_present)
        return true;
    s = prep(db,
             "SELECT l.origin, l.inc, l.head_seq,"
             " (SELECT count(*) FROM events e WHERE e.room = l.room AND e.origin = l.origin"
             "  AND e.inc = l.inc)"
             " FROM logs l WHERE l.room = ?1 ORDER BY l.origin, l.inc",
             room, err, el);
    if (!s)
        return false;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (out->nlogs == FC_LOGS_MAX) {
            snprintf(err, el, "more than %d logs in the room", FC_LOGS_MAX);
            sqlite3_finalize(s);
            return false;
        }
        struct fc_log *l = &out->logs[out->nlogs++];
        snprintf(l->origin, sizeof l->origin, "%s", (const char *)sqlite3_column_text(s, 0));
        l->inc = sqlite3_column_int64(s, 1);
        l->head_seq = sqlite3_column_int64(s, 2);
        l->rows = sqlite3_column_int64(s, 3);
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        snprintf(err, el, "reading logs: %s", sqlite3_errmsg(db));
        return false;
    }
    return scalar(db, "SELECT count(*) FROM events WHERE room = ?1", room, &out->events, err, el) &&
           scalar(db, "SELECT count(*) FROM events WHERE room = ?1 AND type = 'msg'", room,
                  &out->msgs, err, el) &&
           scalar(db,
                  "SELECT count(*) FROM (SELECT 1 FROM events WHERE room = ?1 AND type = 'msg'"
                  " GROUP BY json_extract(CAST(payload AS TEXT), '$.content.body')"
                  " HAVING count(*) > 1)",
                  room, &out->dup_bodies, err, el) &&
           scalar(db,
                  "SELECT count(*) FROM (SELECT 1 FROM events WHERE room = ?1"
                  " GROUP BY origin, inc, seq HAVING count(DISTINCT event_id) > 1)",
                  room, &out->two_ids, err, el) &&
           digest(db, "SELECT event_id FROM events WHERE room = ?1 ORDER BY event_id", room,
                  out->set_digest, err, el) &&
           digest(db,
                  "SELECT event_id FROM events WHERE room = ?1"
                  " ORDER BY hlc, origin, inc, seq",
                  room, out->order_digest, err, el);
}

bool fc_read(const char *db_path, const char *room_id, struct fc_state *out)
{
    memset(out, 0, sizeof *out);
    sqlite3 *db = open_ro(db_path, out->err, sizeof out->err);
    if (!db)
        return false;
    /* One snapshot: BEGIN then the first read starts the WAL read transaction. */
    bool ok = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
    if (!ok)
        snprintf(out->err, sizeof out->err, "BEGIN: %s", sqlite3_errmsg(db));
    ok = ok && read_room(db, room_id, out);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(db);
    out->readable = ok;
    return ok;
}

bool fc_agree(const struct fc_state *a, const struct fc_state *b)
{
    if (!a->readable || !b->readable || !a->room_present || !b->room_present ||
        a->nlogs != b->nlogs || memcmp(a->set_digest, b->set_digest, 32) != 0 ||
        memcmp(a->order_digest, b->order_digest, 32) != 0)
        return false;
    for (int i = 0; i < a->nlogs; i++)
        if (strcmp(a->logs[i].origin, b->logs[i].origin) != 0 || a->logs[i].inc != b->logs[i].inc ||
            a->logs[i].head_seq != b->logs[i].head_seq)
            return false;
    return true;
}

static size_t appendf(char *buf, size_t n, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t appendf(char *buf, size_t n, size_t at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(at < n ? buf + at : NULL, at < n ? n - at : 0, fmt, ap);
    va_end(ap);
    return at + (w > 0 ? (size_t)w : 0);
}

void fc_describe(const struct fc_state *s, char *buf, size_t n)
{
    size_t at = 0;
    if (n)
        buf[0] = '\0';
    if (!s->readable) {
        appendf(buf, n, 0, "unreadable: %s", s->err);
        return;
    }
    if (!s->room_present) {
        appendf(buf, n, 0, "no room");
        return;
    }
    at = appendf(buf, n, at, "events %lld msgs %lld vector [", s->events, s->msgs);
    for (int i = 0; i < s->nlogs; i++)
        at = appendf(buf, n, at, "%s%s/%lld:%lld", i ? " " : "", s->logs[i].origin, s->logs[i].inc,
                     s->logs[i].head_seq);
    at = appendf(buf, n, at, "] set %02x%02x%02x%02x order %02x%02x%02x%02x", s->set_digest[0],
                 s->set_digest[1], s->set_digest[2], s->set_digest[3], s->order_digest[0],
                 s->order_digest[1], s->order_digest[2], s->order_digest[3]);
    if (s->two_ids)
        at = appendf(buf, n, at, " TWO-IDS %lld", s->two_ids);
    if (s->fork_rows)
        at = appendf(buf, n, at, " FORK-ROWS %lld", s->fork_rows);
    if (s->dup_bodies)
        at = appendf(buf, n, at, " DUP-BODIES %lld", s->dup_bodies);
    for (int i = 0; i < s->nlogs; i++)
        if (s->logs[i].rows != s->logs[i].head_seq)
            at = appendf(buf, n, at, " (log %s/%lld: %lld rows, head %lld)", s->logs[i].origin,
                         s->logs[i].inc, s->logs[i].rows, s->logs[i].head_seq);
}

/* The head of (origin, inc) in s, 0 if it lacks the log. */
static long long head_of(const struct fc_state *s, const char *origin, long long inc)
{
    for (int i = 0; i < s->nlogs; i++)
        if (s->logs[i].inc == inc && strcmp(s->logs[i].origin, origin) == 0)
            return s->logs[i].head_seq;
    return 0;
}

size_t fc_diff(const struct fc_state *states, const char *const *names, int n, char *buf,
               size_t len)
{
    size_t at = 0;
    if (len)
        buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        const struct fc_state *s = &states[i];
        if (!s->readable || !s->room_present) {
            at = appendf(buf, len, at, "%s: %s\n", names[i],
                         !s->readable ? s->err : "does not hold the room");
            continue;
        }
        char line[1024];
        size_t ll = 0;
        line[0] = '\0';
        /* Every log any server has, once (at the first server that has it), against the
         * highest head any server has. */
        for (int j = 0; j < n; j++) {
            for (int k = 0; k < states[j].nlogs; k++) {
                const struct fc_log *l = &states[j].logs[k];
                long long best = 0;
                int first = -1;
                for (int m = 0; m < n; m++) {
                    long long h = head_of(&states[m], l->origin, l->inc);
                    best = h > best ? h : best;
                    if (first < 0 && h > 0)
                        first = m;
                }
                long long mine = head_of(s, l->origin, l->inc);
                if (first == j && mine < best)
                    ll = appendf(line, sizeof line, ll, "%s%s/%lld seq %lld..%lld", ll ? ", " : "",
                                 l->origin, l->inc, mine + 1, best);
            }
        }
        if (ll)
            at = appendf(buf, len, at, "%s lacks %s\n", names[i], line);
        else if (i > 0 && !fc_agree(&states[0], s))
            at = appendf(buf, len, at, "%s: no log behind, but %s than %s\n", names[i],
                         memcmp(s->set_digest, states[0].set_digest, 32)
                             ? "other events (set digest)"
                             : "another order (order digest)",
                         names[0]);
    }
    return at;
}

long long fc_wait_agree(const char *const *db_paths, int n, const char *room_id, int deadline_ms,
                        struct fc_state *last)
{
    long long t0 = mono_ms();
    struct fc_state *st = calloc((size_t)n, sizeof *st);
    if (!st)
        return -1;
    long long took = -1;
    for (;;) {
        bool all = true;
        for (int i = 0; i < n; i++) {
            fc_read(db_paths[i], room_id, &st[i]);
            all =
                all && st[i].readable && st[i].room_present && (i == 0 || fc_agree(&st[0], &st[i]));
        }
        if (all) {
            took = mono_ms() - t0;
            break;
        }
        if (mono_ms() - t0 > deadline_ms)
            break;
        sleep_ms(FC_POLL_MS);
    }
    if (last)
        memcpy(last, st, (size_t)n * sizeof *st);
    free(st);
    return took;
}

long long fc_wait_event(const char *const *db_paths, int n, const char *event_id, int poll_ms,
                        int deadline_ms)
{
    long long t0 = mono_ms();
    sqlite3 **db = calloc((size_t)n, sizeof *db);
    sqlite3_stmt **s = calloc((size_t)n, sizeof *s);
    bool *has = calloc((size_t)n, sizeof *has);
    long long took = -1;
    char err[256];
    int got = 0;
    for (int i = 0; db && s && has && i < n; i++) {
        db[i] = open_ro(db_paths[i], err, sizeof err);
        if (!db[i] || sqlite3_prepare_v2(db[i], "SELECT 1 FROM events WHERE event_id = ?1", -1,
                                         &s[i], NULL) != SQLITE_OK)
            goto out;
        sqlite3_bind_text(s[i], 1, event_id, -1, SQLITE_STATIC);
    }
    while (db && s && has) {
        for (int i = 0; i < n; i++) {
            if (has[i])
                continue;
            has[i] = sqlite3_step(s[i]) == SQLITE_ROW;
            sqlite3_reset(s[i]);
            got += has[i];
        }
        if (got == n) {
            took = mono_ms() - t0;
            break;
        }
        if (mono_ms() - t0 > deadline_ms)
            break;
        sleep_ms(poll_ms < 1 ? 1 : poll_ms);
    }
out:
    for (int i = 0; db && s && i < n; i++) {
        sqlite3_finalize(s[i]);
        sqlite3_close(db[i]);
    }
    free(db);
    free(s);
    free(has);
    return took;
}

bool fc_check_acked(const char *db_path, const char *room_id, const char *const *ids, size_t n,
                    struct fc_acked *out)
{
    memset(out, 0, sizeof *out);
    sqlite3 *db = open_ro(db_path, out->err, sizeof out->err);
    if (!db)
        return false;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT count(*) FROM events e JOIN rooms r ON r.id = e.room"
                           " WHERE r.room_id = ?1 AND e.event_id = ?2",
                           -1, &s, NULL) != SQLITE_OK) {
        snprintf(out->err, sizeof out->err, "%s", sqlite3_errmsg(db));
        sqlite3_close(db);
        return false;
    }
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    size_t at = 0;
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        sqlite3_bind_text(s, 1, room_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, ids[i], -1, SQLITE_STATIC);
        int rc = sqlite3_step(s);
        long long c = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
        sqlite3_reset(s);
        if (c < 0) {
            snprintf(out->err, sizeof out->err, "%s", sqlite3_errmsg(db));
            ok = false;
        } else if (c == 0) {
            if (out->missing++ < 4)
                at = appendf(out->err, sizeof out->err, at, "%s%s", at ? " " : "missing: ", ids[i]);
        } else if (c == 1) {
            out->once++;
        } else {
            out->extra++;
        }
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return ok;
}
