/* http_metrics.c - GET /metrics on the API listener: who may read it (loopback clients, or a
 * bearer token when metrics_token is set), the transport's own gauges (connections, sessions,
 * queued bytes), and the core's families (metrics.c), as one Prometheus text reply. */
#include "metrics.h"
#include "transport_int.h"

#include <sodium.h>
#include <string.h>

/* A client address as listener.c writes it: 127.0.0.0/8, ::1, or 127.x mapped into IPv6. */
static bool addr_loopback(const char *addr)
{
    return strncmp(addr, "127.", 4) == 0 || strncmp(addr, "::ffff:127.", 11) == 0 ||
           strcmp(addr, "::1") == 0;
}

/* Whether the request may read the metrics; if not, why (a static string) and the error. */
static bool metrics_allowed(struct transport *t, struct http_conn *h, struct lws *wsi,
                            enum kz_err *e, const char **why)
{
    const char *token = t->cfg->metrics_token;
    if (!token[0]) {
        /* A reverse proxy on the same machine (public_origin) makes every client look local:
         * a request it forwarded says so in its headers, and is not trusted as local. */
        bool forwarded = lws_hdr_total_length(wsi, WSI_TOKEN_X_FORWARDED_FOR) > 0 ||
                         lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_X_REAL_IP) > 0 ||
                         lws_hdr_custom_length(wsi, "forwarded:", 10) > 0;
        if (addr_loopback(h->c.peer) && !forwarded)
            return true;
        *e = KZ_FORBIDDEN;
        *why = "metrics are served to loopback clients only (not through a proxy): set "
               "metrics_token to read them from elsewhere";
        return false;
    }
    char auth[160] = "";
    size_t n = strlen(token);
    /* Compared in constant time, and only when the lengths agree (the length is no secret:
     * the setting requires at least 32 characters). */
    if (lws_hdr_copy(wsi, auth, sizeof auth, WSI_TOKEN_HTTP_AUTHORIZATION) > 0 &&
        strncmp(auth, "Bearer ", 7) == 0 && strlen(auth + 7) == n &&
        sodium_memcmp(auth + 7, token, n) == 0) {
        sodium_memzero(auth, sizeof auth);
        return true;
    }
    sodium_memzero(auth, sizeof auth);
    *e = KZ_UNAUTHORIZED;
    *why = "GET /metrics needs Authorization: Bearer <metrics_token>";
    return false;
}

void transport_conn_stats(struct transport *t, struct srv_conn_stats *out)
{
    memset(out, 0, sizeof *out);
    for (const struct ws_conn *w = t->ws_list; w; w = w->next) {
        out->sessions += w->session_id != 0;
        out->queued_bytes += (int64_t)w->q_bytes;
    }
    out->websockets = (int64_t)t->ws_count;
    out->http = t->conns.used > t->ws_count ? (int64_t)(t->conns.used - t->ws_count) : 0;
    out->users = (int64_t)t->by_user.used;
}

static void transport_write(struct transport *t, struct kz_prom *p)
{
    struct srv_conn_stats cs;
    transport_conn_stats(t, &cs);
    kz_prom_family(p, "kizuna_connections", "gauge",
                   "Open client connections by kind (HTTP requests in flight, WebSockets).");
    kz_prom_sample(p, "kizuna_connections", "kind=\"websocket\"", (double)cs.websockets);
    kz_prom_sample(p, "kizuna_connections", "kind=\"http\"", (double)cs.http);
    kz_prom_family(p, "kizuna_sessions_connected", "gauge",
                   "WebSocket connections logged in to a session.");
    kz_prom_sample(p, "kizuna_sessions_connected", NULL, (double)cs.sessions);
    kz_prom_family(p, "kizuna_users_connected", "gauge",
                   "Users with at least one logged-in WebSocket connection.");
    kz_prom_sample(p, "kizuna_users_connected", NULL, (double)cs.users);
    kz_prom_family(p, "kizuna_queue_bytes", "gauge",
                   "Bytes queued to WebSocket clients and not yet sent (max_queue_bytes each).");
    kz_prom_sample(p, "kizuna_queue_bytes", NULL, (double)cs.queued_bytes);
    kz_prom_family(p, "kizuna_slow_consumer_disconnects_total", "counter",
                   "WebSocket connections closed because their queue passed max_queue_bytes.");
    kz_prom_sample(p, "kizuna_slow_consumer_disconnects_total", NULL,
                   (double)kz_metrics.slow_consumer_disconnects);
}

int metrics_begin(struct transport *t, struct http_conn *h, struct lws *wsi)
{
    enum kz_err e;
    const char *why;
    if (!metrics_allowed(t, h, wsi, &e, &why)) {
        KZ_WARN("metrics_refused", "addr=%s reason=%s", h->c.peer,
                e == KZ_FORBIDDEN ? "not_loopback" : "bad_token");
        h->close_after = true;
        srv_send_error(t->srv, h->c.id, true, e, why);
        return 0;
    }
    struct kz_prom p = {0};
    kz_prom_family(&p, "kizuna_build_info", "gauge", "The running kizunad's version (always 1).");
    kz_prom_sample(&p, "kizuna_build_info", "version=\"" KZ_VERSION "\"", 1);
    transport_write(t, &p);
    srv_metrics_write(t->srv, &p);
    struct kz_frame *f = p.failed ? NULL : kz_frame_from_text(p.text, p.len, 200);
    kz_prom_free(&p);
    if (!f)
        return -1;
    h->resp = f;
    h->resp_type = "text/plain; version=0.0.4; charset=utf-8";
    lws_callback_on_writable(wsi);
    return 0;
}
