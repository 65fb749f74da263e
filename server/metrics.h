/* metrics.h - what GET /metrics shows, in the Prometheus text format (0.0.4): counters
 * incremented where the work happens (proto.c for requests, commit.c and outbox.c for commits,
 * ws.c for deliveries and slow consumers, ops_account.c for failed logins, blobs.c for uploads),
 * and the writer that renders them with the gauges read at scrape time (metrics.c for the
 * core's, http_metrics.c for the transport's and the peers'). Every counter lives in the one
 * struct kz_metrics and is touched on the event loop's thread only (the core and the transport
 * both run there, and so does the scrape), so none needs an atomic. */
#ifndef KIZUNA_METRICS_H
#define KIZUNA_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server.h"

/* A histogram: bucket[i] counts observations in (le[i-1], le[i]], bucket[n] those above
 * le[n-1]; rendered cumulatively with +Inf, _sum and _count. */
#define KZ_HIST_MAX 16
struct kz_hist {
    const double *le; /* upper bounds, ascending */
    size_t n;
    uint64_t bucket[KZ_HIST_MAX + 1];
    double sum;
    uint64_t count;
};
void kz_hist_observe(struct kz_hist *h, double v);

#define KZ_ERR_COUNT (KZ_UNAVAILABLE + 1)
/* A push's or an e-mail's outcome: accepted, refused for good (a push: gone, 404/410), failed
 * after its last try, or to be tried again. */
enum { KZ_SEND_SENT, KZ_SEND_GONE, KZ_SEND_FAILED, KZ_SEND_RETRY, KZ_SEND_COUNT };
struct kz_metrics {
    int64_t start_ms;
    /* Requests by op (its index in the command table; the last row: an op that does not exist
     * or a request that never named one) and result (enum kz_err, KZ_OK first). */
    uint64_t requests[SRV_OPS_MAX + 1][KZ_ERR_COUNT];
    uint64_t messages_received; /* msg.send accepted */
    uint64_t events_committed;  /* room events made durable (local and from peers) */
    uint64_t events_delivered;  /* event frames queued to live WebSocket connections */
    uint64_t commit_failures;
    struct kz_hist commit_seconds;  /* COMMIT issued to on disk */
    struct kz_hist commit_requests; /* requests answered by one commit (group commit) */
    uint64_t slow_consumer_disconnects;
    uint64_t login_failures, login_lockouts;
    uint64_t upload_bytes;     /* upload (PATCH) body bytes received */
    int64_t uploads_receiving; /* PATCH bodies being received now */
    /* Reaching people (push.c, mail.c, webhook.c): each send's outcome, by KZ_SEND_*, and how long
     * a delivered one waited from being queued to being accepted (coalescing delay, quiet hours and
     * retries included). */
    uint64_t push_sends[KZ_SEND_COUNT], mail_sends[KZ_SEND_COUNT], webhook_sends[KZ_SEND_COUNT];
    struct kz_hist push_seconds, mail_seconds, webhook_seconds;
    /* JMA's feeds (jma_watch.c): fetches of feeds and telegrams, by success. */
    uint64_t jma_fetches_ok, jma_fetches_failed;
};
extern struct kz_metrics kz_metrics;

/* Seconds of the monotonic clock, for durations. */
double kz_metrics_clock(void);

/* The exposition being written. text is owned (kz_prom_free); failed: out of memory, the text
 * must not be served. */
struct kz_prom {
    char *text;
    size_t len, cap;
    bool failed;
};
/* The # HELP and # TYPE lines of a family (type: counter, gauge, histogram). */
void kz_prom_family(struct kz_prom *p, const char *name, const char *type, const char *help);
/* One sample: name{labels} value. labels is NULL or `key="value",...` already escaped (label
 * values from kz_prom_label). */
void kz_prom_sample(struct kz_prom *p, const char *name, const char *labels, double v);
/* key="value" with value escaped as the format requires (\\, \", \n), into out. */
void kz_prom_label(char *out, size_t n, const char *key, const char *value);
/* A whole histogram family: HELP, TYPE, _bucket{le=...} cumulatively, +Inf, _sum, _count. */
void kz_prom_hist(struct kz_prom *p, const char *name, const char *help, const struct kz_hist *h);
void kz_prom_free(struct kz_prom *p);

/* metrics.c: the core's families (requests, commits, events, logins, uploads, storage, disk,
 * federation counters). Loop thread. */
void srv_metrics_write(struct srv *s, struct kz_prom *p);

#endif
