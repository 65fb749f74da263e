/* metrics.c - the counters of struct kz_metrics, the Prometheus text writer, and the core's
 * part of GET /metrics: what the core counts and what it reads at scrape time (storage from
 * the database and the data directory, free disk, replication's counters). Names follow
 * Prometheus's conventions: base units (seconds, bytes), _total on counters. */
#include "core.h"
#include "metrics.h"
#include "store_fed.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Commits take ~0.1 ms without a disk wait and 2-20 ms with an fsync on an SSD or a laptop
 * disk (docs/performance.md); the buckets span both and a disk in trouble (seconds). */
static const double commit_le[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                   0.05,   0.1,   0.25,   0.5,   1,    2.5};
/* Group commit gathers what one fsync's time brings: 1 when idle, hundreds under load. */
static const double batch_le[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

/* A push or an e-mail waits push_coalesce_ms (seconds) before it goes, longer in quiet hours
 * or after a failed try (minutes to hours). */
static const double send_le[] = {1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600, 21600};

struct kz_metrics kz_metrics = {
    .commit_seconds = {.le = commit_le, .n = sizeof commit_le / sizeof commit_le[0]},
    .commit_requests = {.le = batch_le, .n = sizeof batch_le / sizeof batch_le[0]},
    .push_seconds = {.le = send_le, .n = sizeof send_le / sizeof send_le[0]},
    .mail_seconds = {.le = send_le, .n = sizeof send_le / sizeof send_le[0]},
    .webhook_seconds = {.le = send_le, .n = sizeof send_le / sizeof send_le[0]},
};
_Static_assert(sizeof send_le / sizeof send_le[0] <= KZ_HIST_MAX, "raise KZ_HIST_MAX");
_Static_assert(sizeof commit_le / sizeof commit_le[0] <= KZ_HIST_MAX, "raise KZ_HIST_MAX");
_Static_assert(sizeof batch_le / sizeof batch_le[0] <= KZ_HIST_MAX, "raise KZ_HIST_MAX");

void kz_hist_observe(struct kz_hist *h, double v)
{
    size_t i = 0;
    while (i < h->n && v > h->le[i])
        i++;
    h->bucket[i]++;
    h->sum += v;
    h->count++;
}

double kz_metrics_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void put(struct kz_prom *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct kz_prom *p, const char *fmt, ...)
{
    if (p->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n =
            vsnprintf(p->text ? p->text + p->len : NULL, p->text ? p->cap - p->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            p->failed = true;
            return;
        }
        if (p->text && p->len + (size_t)n < p->cap) {
            p->len += (size_t)n;
            return;
        }
        size_t cap = p->cap ? p->cap * 2 : 16384;
        while (cap < p->len + (size_t)n + 1)
            cap *= 2;
        char *t = realloc(p->text, cap);
        if (!t) {
            p->failed = true;
            return;
        }
        p->text = t;
        p->cap = cap;
    }
}

void kz_prom_family(struct kz_prom *p, const char *name, const char *type, const char *help)
{
    put(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void kz_prom_sample(struct kz_prom *p, const char *name, const char *labels, double v)
{
    if (labels && *labels)
        put(p, "%s{%s} %.15g\n", name, labels, v);
    else
        put(p, "%s %.15g\n", name, v);
}

void kz_prom_label(char *out, size_t n, const char *key, const char *value)
{
    size_t len = (size_t)snprintf(out, n, "%s=\"", key);
    for (const char *c = value; *c && len + 4 < n; c++) {
        if (*c == '\\' || *c == '"')
            out[len++] = '\\';
        if (*c == '\n') {
            out[len++] = '\\';
            out[len++] = 'n';
            continue;
        }
        out[len++] = *c;
    }
    if (len + 2 <= n) {
        out[len++] = '"';
        out[len] = '\0';
    } else if (n) {
        out[n - 1] = '\0';
    }
}

void kz_prom_hist(struct kz_prom *p, const char *name, const char *help, const struct kz_hist *h)
{
    kz_prom_family(p, name, "histogram", help);
    uint64_t cum = 0;
    for (size_t i = 0; i < h->n; i++) {
        cum += h->bucket[i];
        put(p, "%s_bucket{le=\"%g\"} %llu\n", name, h->le[i], (unsigned long long)cum);
    }
    cum += h->bucket[h->n];
    put(p, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    put(p, "%s_sum %.15g\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
}

void kz_prom_free(struct kz_prom *p)
{
    free(p->text);
    memset(p, 0, sizeof *p);
}

static void counter(struct kz_prom *p, const char *name, const char *help, uint64_t v)
{
    kz_prom_family(p, name, "counter", help);
    kz_prom_sample(p, name, NULL, (double)v);
}

static void gauge(struct kz_prom *p, const char *name, const char *help, double v)
{
    kz_prom_family(p, name, "gauge", help);
    kz_prom_sample(p, name, NULL, v);
}

static void requests_write(struct kz_prom *p)
{
    kz_prom_family(p, "kizuna_requests_total", "counter",
                   "Requests (WebSocket and HTTP) by op and result (ok or the error code).");
    size_t nops;
    const struct srv_op *ops = srv_op_table(&nops);
    for (size_t i = 0; i <= nops && i <= SRV_OPS_MAX; i++) {
        for (int e = 0; e < KZ_ERR_COUNT; e++) {
            uint64_t v = kz_metrics.requests[i][e];
            if (!v)
                continue; /* a series appears at its first request, as client libraries do */
            char op[96], res[64], labels[170];
            kz_prom_label(op, sizeof op, "op", i < nops ? ops[i].name : "unknown");
            kz_prom_label(res, sizeof res, "result", kz_err_code((enum kz_err)e));
            snprintf(labels, sizeof labels, "%s,%s", op, res);
            kz_prom_sample(p, "kizuna_requests_total", labels, (double)v);
        }
    }
}

/* A family of sends by result (KZ_SEND_*). */
static void sends_write(struct kz_prom *p, const char *name, const char *help, const uint64_t *v)
{
    static const char *const results[KZ_SEND_COUNT] = {"sent", "gone", "failed", "retry"};
    kz_prom_family(p, name, "counter", help);
    for (int i = 0; i < KZ_SEND_COUNT; i++) {
        char labels[40];
        kz_prom_label(labels, sizeof labels, "result", results[i]);
        kz_prom_sample(p, name, labels, (double)v[i]);
    }
}

static int64_t file_bytes(const char *dir, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
}

/* One pinned peer's series, gathered by store_peer_each into five families' texts (a family's
 * samples must be contiguous, so each family collects its own lines). */
struct peer_ctx {
    struct srv *srv;
    struct kz_prom fam[6];
};
enum { P_CONNECTED, P_EVENTS, P_BYTES, P_OLDEST, P_FORKS, P_QUARANTINED };

static int peer_one(void *ctx, const struct store_peer *peer)
{
    struct peer_ctx *pc = ctx;
    struct srv *s = pc->srv;
    char label[96];
    kz_prom_label(label, sizeof label, "peer", peer->server_id);
    struct srv_link_status st = {0};
    bool connected =
        s->tx.peer_status && s->tx.peer_status(s->tx.ctx, peer->server_id, &st) && st.connected;
    int64_t events = 0, bytes = 0, oldest = 0, forks = 0;
    /* The same pass peer.list makes, once a scrape (store_fed_lag). */
    if (store_fed_lag(s->store, peer->server_id, &events, &bytes, &oldest) != STORE_OK)
        events = bytes = oldest = 0;
    if (store_fed_fork_count(s->store, peer->server_id, &forks) != STORE_OK)
        forks = 0;
    int64_t age = oldest ? kz_now_ms() - oldest : 0;
    kz_prom_sample(&pc->fam[P_CONNECTED], "kizuna_federation_peer_connected", label, connected);
    kz_prom_sample(&pc->fam[P_EVENTS], "kizuna_federation_peer_lag_events", label, (double)events);
    kz_prom_sample(&pc->fam[P_BYTES], "kizuna_federation_peer_lag_bytes", label, (double)bytes);
    kz_prom_sample(&pc->fam[P_OLDEST], "kizuna_federation_peer_oldest_undelivered_seconds", label,
                   age > 0 ? (double)age / 1000.0 : 0);
    kz_prom_sample(&pc->fam[P_FORKS], "kizuna_federation_peer_forks", label, (double)forks);
    kz_prom_sample(&pc->fam[P_QUARANTINED], "kizuna_federation_peer_quarantined", label, forks > 0);
    return 0;
}

static void peers_write(struct srv *s, struct kz_prom *p)
{
    static const struct {
        const char *name, *help;
    } fams[] = {
        [P_CONNECTED] = {"kizuna_federation_peer_connected",
                         "1 while the link to the pinned peer server is up."},
        [P_EVENTS] = {"kizuna_federation_peer_lag_events",
                      "Events of the rooms shared with the peer that it does not have yet."},
        [P_BYTES] = {"kizuna_federation_peer_lag_bytes", "Payload bytes of those events."},
        [P_OLDEST] = {"kizuna_federation_peer_oldest_undelivered_seconds",
                      "Age of the oldest of those events (0: none)."},
        [P_FORKS] = {"kizuna_federation_peer_forks",
                     "Forks recorded in events made by the peer (kept as evidence)."},
        [P_QUARANTINED] = {"kizuna_federation_peer_quarantined",
                           "1 when a fork quarantined some of the peer's logs."},
    };
    struct peer_ctx pc = {.srv = s};
    if (store_peer_each(s->store, peer_one, &pc) == STORE_OK) {
        for (int i = 0; i < 6; i++) {
            kz_prom_family(p, fams[i].name, "gauge", fams[i].help);
            if (pc.fam[i].text)
                put(p, "%s", pc.fam[i].text);
            p->failed |= pc.fam[i].failed;
        }
    }
    for (int i = 0; i < 6; i++)
        kz_prom_free(&pc.fam[i]);
}

void srv_metrics_write(struct srv *s, struct kz_prom *p)
{
    gauge(p, "kizuna_start_time_seconds", "When this kizunad started (Unix time).",
          (double)kz_metrics.start_ms / 1000.0);
    requests_write(p);
    counter(p, "kizuna_messages_received_total", "Messages accepted from clients (msg.send).",
            kz_metrics.messages_received);
    counter(p, "kizuna_events_committed_total",
            "Room events made durable, this server's and those taken from peers.",
            kz_metrics.events_committed);
    counter(p, "kizuna_events_delivered_total",
            "Room event frames queued to live WebSocket connections (one per connection).",
            kz_metrics.events_delivered);
    kz_prom_hist(p, "kizuna_commit_duration_seconds",
                 "From COMMIT to the transaction being on disk (the fsync included).",
                 &kz_metrics.commit_seconds);
    kz_prom_hist(p, "kizuna_commit_batch_requests",
                 "Requests answered by one commit (group commit's batch size).",
                 &kz_metrics.commit_requests);
    counter(p, "kizuna_commit_failures_total", "Commits that failed and were rolled back.",
            kz_metrics.commit_failures);
    counter(p, "kizuna_login_failures_total", "Logins refused for a wrong login id or password.",
            kz_metrics.login_failures);
    counter(p, "kizuna_login_lockouts_total",
            "Lockouts begun after login_fail_max failures of an account or an address.",
            kz_metrics.login_lockouts);
    counter(p, "kizuna_upload_received_bytes_total", "Upload (PATCH) body bytes received.",
            kz_metrics.upload_bytes);
    gauge(p, "kizuna_uploads_receiving", "Upload (PATCH) bodies being received now.",
          (double)kz_metrics.uploads_receiving);
    sends_write(p, "kizuna_push_sends_total",
                "Web Push sends by outcome: accepted by the push service, its subscription gone "
                "(404/410, removed), failed for good, or to be tried again.",
                kz_metrics.push_sends);
    kz_prom_hist(p, "kizuna_push_delivery_seconds",
                 "From a push being queued to its push service accepting it.",
                 &kz_metrics.push_seconds);
    sends_write(p, "kizuna_mail_sends_total",
                "E-mails by outcome: accepted by the relay, failed for good, or to be tried "
                "again (gone is unused).",
                kz_metrics.mail_sends);
    kz_prom_hist(p, "kizuna_mail_delivery_seconds",
                 "From an e-mail being queued to the mail relay accepting it.",
                 &kz_metrics.mail_seconds);
    sends_write(p, "kizuna_webhook_sends_total",
                "Webhook deliveries by outcome: answered 2xx by the receiver, failed for good "
                "(kept for webhook.status), or to be tried again (gone is unused).",
                kz_metrics.webhook_sends);
    kz_prom_hist(p, "kizuna_webhook_delivery_seconds",
                 "From a webhook delivery being queued to its receiver answering 2xx.",
                 &kz_metrics.webhook_seconds);
    counter(p, "kizuna_jma_fetches_total", "Fetches of JMA's feeds and telegrams that worked.",
            kz_metrics.jma_fetches_ok);
    counter(p, "kizuna_jma_fetch_failures_total",
            "Fetches of JMA's feeds and telegrams that failed (network, HTTP status, not XML).",
            kz_metrics.jma_fetches_failed);
    struct store_totals tot;
    if (store_totals(s->store, &tot) == STORE_OK) {
        gauge(p, "kizuna_uploads_open", "Uploads begun and not finished nor expired.",
              (double)tot.uploads_open);
        gauge(p, "kizuna_uploads_open_bytes", "Bytes the unfinished uploads hold so far.",
              (double)tot.upload_open_bytes);
        gauge(p, "kizuna_blobs", "Encrypted blobs (photos) stored.", (double)tot.blobs);
        gauge(p, "kizuna_blob_store_bytes", "Bytes of the encrypted blobs stored.",
              (double)tot.blob_bytes);
        gauge(p, "kizuna_sessions_open", "Sessions not ended (logged-in devices).",
              (double)tot.sessions_open);
    }
    gauge(
        p, "kizuna_database_bytes", "Bytes of the database and its write-ahead log.",
        (double)(file_bytes(s->data_dir, "kizuna.db") + file_bytes(s->data_dir, "kizuna.db-wal")));
    int64_t free_bytes = srv_disk_free_bytes(s);
    if (free_bytes >= 0)
        gauge(p, "kizuna_disk_free_bytes", "Free bytes on the data directory's file system.",
              (double)free_bytes);
    gauge(p, "kizuna_ready_min_free_bytes",
          "ready_min_free_bytes: GET /readyz fails below this many free bytes.",
          (double)s->cfg->ready_min_free_bytes);
    gauge(p, "kizuna_writes_blocked", "1 while writes are refused after a disk error.",
          srv_writes_blocked(s) ? 1 : 0);
    struct srv_fed_counters n;
    srv_fed_counters(s, &n);
    counter(p, "kizuna_federation_events_sent_total", "Events sent to peer servers.",
            (uint64_t)n.events_sent);
    counter(p, "kizuna_federation_events_received_total", "New events taken from peer servers.",
            (uint64_t)n.events_received);
    counter(p, "kizuna_federation_events_rejected_total",
            "Events from peers refused (bad signature, unknown origin, ...).",
            (uint64_t)n.rejected);
    counter(p, "kizuna_federation_forks_total",
            "Two different events seen for one (room, origin, incarnation, seq).",
            (uint64_t)n.forks);
    peers_write(s, p);
}
