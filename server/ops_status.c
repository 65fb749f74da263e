/* ops_status.c - admin.status: one screen of everything an administrator checks first (issue
 * 23): the version and uptime, connections and sessions, messages today, storage and free disk,
 * the last backup and its verification, the peer servers and their lag, and the alarms that
 * hold now with the latest errors logged. Read-only; it reads the database (a pass over today's
 * messages, the blobs table, each peer's lag as peer.list does), the data directory and the
 * transport's counts: an admin's call, never a client's hot path. */
#include "core.h"
#include "metrics.h"
#include "store_fed.h"

#include <string.h>
#include <sys/stat.h>
#include <time.h>

static void alarm_add(cJSON *alarms, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void alarm_add(cJSON *alarms, const char *kind, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *a = cJSON_CreateObject();
    cJSON_AddStringToObject(a, "kind", kind);
    cJSON_AddStringToObject(a, "message", msg);
    cJSON_AddItemToArray(alarms, a);
}

/* Today's first millisecond in the server's time zone (time_zone, made the process's TZ). */
static int64_t day_start(int64_t now)
{
    time_t t = (time_t)(now / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    tm.tm_isdst = -1;
    return (int64_t)mktime(&tm) * 1000;
}

static int64_t file_size(const char *dir, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
}

/* The last backup and verification, and the alarms they raise. */
static cJSON *backup_json(struct srv *s, cJSON *alarms, int64_t now)
{
    cJSON *b = kz_backup_status(s->data_dir);
    const cJSON *made = cJSON_GetObjectItem(b, "backup"), *ver = cJSON_GetObjectItem(b, "verify");
    int64_t max_ms = s->cfg->backup_alarm_hours * 3600 * 1000;
    double made_at = cJSON_GetNumberValue(cJSON_GetObjectItem(made, "at"));
    double ver_at = cJSON_GetNumberValue(cJSON_GetObjectItem(ver, "at"));
    if (!made) {
        alarm_add(alarms, "backup",
                  "no backup recorded: kizunad backup --data DIR OUTDIR, then kizunad "
                  "verify-backup OUTDIR --data DIR");
    } else if (!cJSON_IsTrue(cJSON_GetObjectItem(made, "ok"))) {
        alarm_add(alarms, "backup", "the last backup failed: %s",
                  cJSON_GetStringValue(cJSON_GetObjectItem(made, "error"))
                      ? cJSON_GetStringValue(cJSON_GetObjectItem(made, "error"))
                      : "?");
    } else if (now - (int64_t)made_at > max_ms) {
        alarm_add(alarms, "backup", "the last backup is %lld hours old (backup_alarm_hours %lld)",
                  (long long)((now - (int64_t)made_at) / 3600000), s->cfg->backup_alarm_hours);
    }
    if (made && cJSON_IsTrue(cJSON_GetObjectItem(made, "ok"))) {
        if (!ver || ver_at < made_at)
            alarm_add(alarms, "backup",
                      "the last backup was not verified: kizunad verify-backup %s --data DIR",
                      cJSON_GetStringValue(cJSON_GetObjectItem(made, "dir")));
        else if (!cJSON_IsTrue(cJSON_GetObjectItem(ver, "ok")))
            alarm_add(alarms, "backup", "the last verified backup (%s) is NOT whole: %s",
                      cJSON_GetStringValue(cJSON_GetObjectItem(ver, "dir")),
                      cJSON_GetStringValue(cJSON_GetObjectItem(ver, "error"))
                          ? cJSON_GetStringValue(cJSON_GetObjectItem(ver, "error"))
                          : "?");
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "last", made ? cJSON_Duplicate(made, true) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "verified", ver ? cJSON_Duplicate(ver, true) : cJSON_CreateNull());
    cJSON_Delete(b);
    return o;
}

struct peers_ctx {
    struct srv *srv;
    cJSON *peers, *alarms;
    int64_t now;
};

static int peer_one(void *ctx, const struct store_peer *p)
{
    struct peers_ctx *pc = ctx;
    struct srv *s = pc->srv;
    struct srv_link_status st = {.state = "off"};
    if (!s->tx.peer_status || !s->tx.peer_status(s->tx.ctx, p->server_id, &st))
        st = (struct srv_link_status){.state = "off"};
    int64_t events = 0, bytes = 0, oldest = 0, forks = 0;
    if (store_fed_lag(s->store, p->server_id, &events, &bytes, &oldest) != STORE_OK)
        events = bytes = oldest = 0;
    if (store_fed_fork_count(s->store, p->server_id, &forks) != STORE_OK)
        forks = 0;
    int64_t age = oldest ? pc->now - oldest : 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "server", p->server_id);
    cJSON_AddStringToObject(o, "name", p->name);
    cJSON_AddStringToObject(o, "state", st.state);
    cJSON_AddBoolToObject(o, "connected", st.connected);
    cJSON_AddNumberToObject(o, "since", (double)st.since);
    cJSON_AddNumberToObject(o, "events_behind", (double)events);
    cJSON_AddNumberToObject(o, "bytes_behind", (double)bytes);
    cJSON_AddNumberToObject(o, "oldest_undelivered_age_ms", (double)(age > 0 ? age : 0));
    cJSON_AddBoolToObject(o, "quarantined", forks > 0);
    cJSON_AddBoolToObject(o, "skew_alarm", st.known && st.skew_alarm);
    cJSON_AddItemToArray(pc->peers, o);
    if (strcmp(st.state, "off") != 0 && !st.connected)
        alarm_add(pc->alarms, "federation", "peer %s is not connected (%s%s%s)", p->server_id,
                  st.state, st.last_error[0] ? ": " : "", st.last_error);
    if (forks > 0)
        alarm_add(pc->alarms, "federation",
                  "peer %s: %lld fork(s) in its events; its logs are quarantined "
                  "(docs/federation.md, Forks)",
                  p->server_id, (long long)forks);
    if (st.known && st.skew_alarm)
        alarm_add(pc->alarms, "federation", "peer %s's clock is %lld ms off this server's",
                  p->server_id, (long long)st.skew_ms);
    return 0;
}

enum kz_err op_admin_status(struct srv_call *c)
{
    struct srv *s = c->srv;
    int64_t now = kz_now_ms();
    cJSON *r = c->result = cJSON_CreateObject();
    cJSON *alarms = cJSON_CreateArray();
    cJSON_AddStringToObject(r, "version", KZ_VERSION);
    cJSON_AddStringToObject(r, "server_id", s->origin);
    cJSON_AddNumberToObject(r, "started_at", (double)kz_metrics.start_ms);
    cJSON_AddNumberToObject(r, "uptime_s", (double)((now - kz_metrics.start_ms) / 1000));
    cJSON_AddStringToObject(r, "time_zone", s->cfg->time_zone);

    struct srv_conn_stats cs = {0};
    if (s->tx.conn_stats)
        s->tx.conn_stats(s->tx.ctx, &cs);
    struct store_totals tot;
    int64_t today = 0, since = day_start(now);
    if (store_totals(s->store, &tot) != STORE_OK ||
        store_messages_since(s->store, since, &today) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot read the database's totals");
    cJSON *conn = cJSON_AddObjectToObject(r, "connections");
    cJSON_AddNumberToObject(conn, "websocket", (double)cs.websockets);
    cJSON_AddNumberToObject(conn, "http", (double)cs.http);
    cJSON_AddNumberToObject(conn, "users", (double)cs.users);
    cJSON_AddNumberToObject(conn, "queued_bytes", (double)cs.queued_bytes);
    cJSON *ses = cJSON_AddObjectToObject(r, "sessions");
    cJSON_AddNumberToObject(ses, "connected", (double)cs.sessions);
    cJSON_AddNumberToObject(ses, "open", (double)tot.sessions_open);
    cJSON *msgs = cJSON_AddObjectToObject(r, "messages");
    cJSON_AddNumberToObject(msgs, "today", (double)today);
    cJSON_AddNumberToObject(msgs, "day_start", (double)since);
    cJSON_AddNumberToObject(msgs, "received_since_start", (double)kz_metrics.messages_received);

    bool ready;
    cJSON *readiness = srv_readiness_json(s, false, &ready);
    const cJSON *disk = cJSON_GetObjectItem(cJSON_GetObjectItem(readiness, "checks"), "disk");
    cJSON *sto = cJSON_AddObjectToObject(r, "storage");
    cJSON_AddNumberToObject(
        sto, "database_bytes",
        (double)(file_size(s->data_dir, "kizuna.db") + file_size(s->data_dir, "kizuna.db-wal")));
    cJSON_AddNumberToObject(sto, "blobs", (double)tot.blobs);
    cJSON_AddNumberToObject(sto, "blob_bytes", (double)tot.blob_bytes);
    cJSON_AddNumberToObject(sto, "uploads_open", (double)tot.uploads_open);
    cJSON_AddNumberToObject(sto, "disk_free_bytes",
                            cJSON_GetNumberValue(cJSON_GetObjectItem(disk, "free_bytes")));
    cJSON_AddNumberToObject(sto, "ready_min_free_bytes", (double)s->cfg->ready_min_free_bytes);
    const cJSON *check;
    cJSON_ArrayForEach(check, cJSON_GetObjectItem(readiness, "checks"))
    {
        const char *why = cJSON_GetStringValue(cJSON_GetObjectItem(check, "why"));
        if (why)
            alarm_add(alarms, check->string, "%s", why);
    }
    cJSON_AddBoolToObject(r, "ready", ready);
    cJSON_Delete(readiness);

    cJSON_AddItemToObject(r, "backup", backup_json(s, alarms, now));
    struct peers_ctx pc = {s, cJSON_AddArrayToObject(r, "peers"), alarms, now};
    if (store_peer_each(s->store, peer_one, &pc) != STORE_OK) {
        cJSON_Delete(alarms);
        return srv_fail(c, KZ_INTERNAL, "cannot read the peers");
    }
    cJSON_AddItemToObject(r, "alarms", alarms);
    struct kz_log_entry recent[KZ_LOG_RECENT];
    size_t n = kz_log_recent(recent, KZ_LOG_RECENT);
    cJSON *errs = cJSON_AddArrayToObject(r, "recent_errors");
    for (size_t i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "at", (double)recent[i].at);
        char line[sizeof recent[i].line];
        snprintf(line, sizeof line, "%s", recent[i].line);
        kz_utf8_sanitize(line); /* a line cut in the middle of a character */
        cJSON_AddStringToObject(e, "line", line);
        cJSON_AddItemToArray(errs, e);
    }
    return KZ_OK;
}
