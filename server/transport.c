/* transport.c - the transport's life cycle: the lws context and its listeners, timers,
 * signals and shutdown; and the functions the core calls (struct srv_transport), each handed
 * to the file whose connections it concerns. transport_int.h lists the layer's files.
 *
 * Listeners are explicit: the context has no vhost of its own, and each listener is a vhost
 * with its own protocols and TLS, fed by a kz_listener (listener.c) that binds and accepts.
 * The API listener (`listen`): "http" serves /healthz, POST /api/v1/<op>, uploads and blobs
 * (http_api.c, uploads.c); "kizuna.v1" serves the WebSocket at /api/v1/ws and is the default,
 * so clients need not name it (ws.c). The federation listener (`federation_listen`, when set)
 * has its own vhost, TLS and protocol, kizuna.fed.v1 (fed_link.c).
 */
#include "sd_notify.h"
#include "transport_int.h"

#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested, reload_requested;
static struct lws_context *signal_ctx;

struct transport *transport_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

bool transport_stopping(void)
{
    return stop_requested != 0;
}

/* ---- what the core asks of the transport ---- */

static void tx_send(void *ctx, uint64_t conn_id, struct kz_frame *f)
{
    struct transport *t = ctx;
    struct conn *c = idmap_get(&t->conns, conn_id);
    if (!c)
        return; /* gone: the client will resume */
    if (c->kind == CONN_WS)
        ws_enqueue(t, (struct ws_conn *)c, f, false);
    else
        http_deliver((struct http_conn *)c, f);
}

static void tx_bind(void *ctx, uint64_t conn_id, int64_t session_id, int64_t user_id)
{
    ws_bind(ctx, conn_id, session_id, user_id);
}

static void tx_subscribe(void *ctx, uint64_t conn_id, int64_t pos)
{
    ws_subscribe(ctx, conn_id, pos);
}

static void tx_push(void *ctx, int64_t user_id, int64_t pos, struct kz_frame *f)
{
    ws_push(ctx, user_id, pos, f);
}

static void tx_alert(void *ctx, int64_t user_id, struct kz_frame *f)
{
    ws_alert(ctx, user_id, f);
}

static void tx_pause(void *ctx, uint64_t conn_id, bool paused)
{
    ws_pause(ctx, conn_id, paused);
}

static void tx_close_conns(void *ctx, const struct srv_close *which)
{
    ws_close_matching(ctx, which);
}

static bool tx_peer_status(void *ctx, const char *server_id, struct srv_link_status *out)
{
    return fed_peer_status(ctx, server_id, out);
}

static void tx_peers_changed(void *ctx)
{
    fed_peers_changed(ctx);
}

static bool tx_fed_send(void *ctx, const char *peer_id, struct kz_frame *f)
{
    return fed_send(ctx, peer_id, f);
}

static void tx_conn_stats(void *ctx, struct srv_conn_stats *out)
{
    transport_conn_stats(ctx, out);
}

static void tick_cb(lws_sorted_usec_list_t *sul)
{
    struct transport *t = lws_container_of(sul, struct transport, tick_sul);
    srv_tick(t->srv);
}

static void tx_timer(void *ctx, int ms)
{
    struct transport *t = ctx;
    lws_sul_schedule(t->ctx, 0, &t->tick_sul, tick_cb, (lws_usec_t)ms * LWS_US_PER_MS);
}

static void blob_cb(lws_sorted_usec_list_t *sul)
{
    struct transport *t = lws_container_of(sul, struct transport, blob_sul);
    srv_fed_blobs_tick(t->srv);
}

static void tx_blob_timer(void *ctx, int ms)
{
    struct transport *t = ctx;
    lws_sul_schedule(t->ctx, 0, &t->blob_sul, blob_cb, (lws_usec_t)ms * LWS_US_PER_MS);
}

static void push_cb(lws_sorted_usec_list_t *sul)
{
    struct transport *t = lws_container_of(sul, struct transport, push_sul);
    srv_push_tick(t->srv);
}

static void tx_push_timer(void *ctx, int ms)
{
    struct transport *t = ctx;
    lws_sul_schedule(t->ctx, 0, &t->push_sul, push_cb, (lws_usec_t)ms * LWS_US_PER_MS);
}

/* Expired accounts and idle shared sessions are swept on a fixed beat; the first sweep runs
 * right after start, so an account that expired while the server was down never gets in. */
static void house_cb(lws_sorted_usec_list_t *sul)
{
    struct transport *t = lws_container_of(sul, struct transport, house_sul);
    srv_housekeep(t->srv);
    lws_sul_schedule(t->ctx, 0, &t->house_sul, house_cb,
                     (lws_usec_t)t->cfg->housekeeping_interval_s * LWS_USEC_PER_SEC);
}

/* JMA's feeds and alerts (jma_watch.c): the core says when it wants to run again. */
static void jma_cb(lws_sorted_usec_list_t *sul)
{
    struct transport *t = lws_container_of(sul, struct transport, jma_sul);
    int ms = srv_jma_tick(t->srv);
    lws_sul_schedule(t->ctx, 0, &t->jma_sul, jma_cb, (lws_usec_t)ms * LWS_US_PER_MS);
}

static void commit_cb(lws_sorted_usec_list_t *sul)
{
    struct transport *t = lws_container_of(sul, struct transport, commit_sul);
    /* The loop does not wait for the disk: what this commit releases goes out when the syncer
     * says it is there (EVENT_WAIT_CANCELLED, http_api.c). */
    srv_commit_async(t->srv);
}

static void tx_want_commit(void *ctx)
{
    struct transport *t = ctx;
    /* Suls run at the top of the next lws_service() turn, after everything this poll round
     * delivered: one commit (one fsync) serves all of them. */
    lws_sul_schedule(t->ctx, 0, &t->commit_sul, commit_cb, 1);
}

/* ---- life cycle ---- */

static void log_emit(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    kz_log_at(level == LLL_ERR    ? KZ_LOG_ERROR
              : level == LLL_WARN ? KZ_LOG_WARN
                                  : KZ_LOG_DEBUG,
              "lws", "message", "%.*s", (int)n, line);
}

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        reload_requested = 1;
    else
        stop_requested = 1;
    /* Only an eventfd write in lws 4.1: safe enough here, and it wakes poll() at once. */
    if (signal_ctx)
        lws_cancel_service(signal_ctx);
}

static void wake_loop(void *arg)
{
    lws_cancel_service(arg);
}

/* The API listener's protocols. The first one also gets every connection's WSI_CREATE and
 * WSI_DESTROY (http_api.c hands the latter to listener.c). */
static struct lws_protocols api_protocols[] = {
    {"http", http_callback, sizeof(struct http_conn), 0, 0, NULL, 0},
    /* rx_buffer_size (ws_rx_chunk_bytes) is allocated for every connection (2 KiB of the 3.6
     * an idle one costs); larger requests arrive in pieces, which ws.c reassembles. lws 4.1 also
     * reads at most this much from a connection per turn, so a smaller one costs throughput
     * (1024: about 25% of ingest, docs/performance.md). */
    {"kizuna.v1", ws_callback, sizeof(struct ws_conn), 2048, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}, /* listener_protocol, set in listen_api */
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static const struct lws_protocol_vhost_options pvo_default = {NULL, NULL, "default", "1"};
static const struct lws_protocol_vhost_options pvo_ws = {NULL, &pvo_default, "kizuna.v1", ""};

/* Creates the API listener: its vhost (TLS if configured) and the socket feeding it. */
static int listen_api(struct transport *t, char *err, size_t errlen)
{
    const struct kz_config *cfg = t->cfg;
    api_protocols[1].rx_buffer_size = (size_t)cfg->ws_rx_chunk_bytes;
    api_protocols[2] = listener_protocol;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* listener.c binds and accepts */
    info.vhost_name = "api";
    info.protocols = api_protocols;
    info.pvo = &pvo_ws;
    /* No LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE: its fixed CSP would
     * forbid the web client's WebAssembly; http_policy.c adds our own to every reply. */
    /* lws closes a connection that stalls in a handshake or mid-request after this long ... */
    info.timeout_secs = (unsigned)cfg->http_timeout_s;
    /* ... and one whose headers stop coming: lws would otherwise wait its own 10 s. */
    info.timeout_secs_ah_idle = (unsigned)cfg->http_timeout_s;
    bool tls = cfg->tls_cert_file[0] != '\0';
    if (tls) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cfg->tls_cert_file;
        info.ssl_private_key_filepath = cfg->tls_key_file;
        /* HTTP/1.1 only: the upload and blob endpoints stream bodies the HTTP/1 way. */
        info.alpn = "http/1.1";
    }
    struct lws_vhost *vh = lws_create_vhost(t->ctx, &info);
    if (!vh || listener_start(t->listener, vh, tls) != 0) {
        snprintf(err, errlen, "cannot serve on %s%s", cfg->listen,
                 tls ? " (the TLS certificate and key do not load)" : "");
        return -1;
    }
    t->port = listener_port(t->listener);
    return 0;
}

struct transport *transport_new(const struct kz_config *cfg, struct srv_transport *tx, char *err,
                                size_t errlen)
{
    if ((cfg->tls_cert_file[0] || cfg->tls_key_file[0]) &&
        (!cfg->tls_cert_file[0] || !cfg->tls_key_file[0] || access(cfg->tls_cert_file, R_OK) != 0 ||
         access(cfg->tls_key_file, R_OK) != 0)) {
        snprintf(err, errlen, "TLS needs readable tls_cert_file and tls_key_file (%s, %s)",
                 cfg->tls_cert_file[0] ? cfg->tls_cert_file : "unset",
                 cfg->tls_key_file[0] ? cfg->tls_key_file : "unset");
        return NULL;
    }
    struct transport *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->cfg = cfg;
    t->listener = listener_open(cfg, cfg->listen, err, errlen);
    if (!t->listener) {
        free(t);
        return NULL;
    }
    if (fed_open(t, err, errlen) != 0) {
        listener_free(t->listener);
        free(t);
        return NULL;
    }

    int lws_levels = LLL_ERR | LLL_WARN;
    if (cfg->log_level >= KZ_LOG_DEBUG)
        lws_levels |= LLL_NOTICE;
    lws_set_log_level(lws_levels, log_emit);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    if (cfg->tls_cert_file[0] || t->fed)
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.user = t;
    /* lws's table the size of the process's descriptor limit: index lookups (listener.c). */
    info.fd_limit_per_thread = (unsigned)listener_nofile(t->listener);
    t->ctx = lws_create_context(&info);
    if (!t->ctx || listen_api(t, err, errlen) != 0 || fed_start(t, err, errlen) != 0) {
        if (!t->ctx)
            snprintf(err, errlen, "cannot create the event loop");
        if (t->ctx)
            lws_context_destroy(t->ctx);
        listener_free(t->listener);
        fed_free(t);
        free(t);
        return NULL;
    }
    if (static_open(t, err, errlen) != 0) {
        transport_free(t);
        return NULL;
    }
    /* Before the "listening" line: a SIGTERM right after it must be a clean stop (it sets
     * stop_requested, and transport_run then returns at once), never the default death. */
    signal_ctx = t->ctx;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* A file-size limit (ulimit -f, systemd LimitFSIZE) must be a write error the server
     * reports as unavailable, not a signal that kills it. */
    signal(SIGXFSZ, SIG_IGN);
    tx->send = tx_send;
    tx->bind = tx_bind;
    tx->close_conns = tx_close_conns;
    tx->pause = tx_pause;
    tx->subscribe = tx_subscribe;
    tx->push = tx_push;
    tx->timer = tx_timer;
    tx->alert = tx_alert;
    tx->want_commit = tx_want_commit;
    tx->peer_status = tx_peer_status;
    tx->peers_changed = tx_peers_changed;
    tx->fed_send = tx_fed_send;
    tx->blob_timer = tx_blob_timer;
    tx->conn_stats = tx_conn_stats;
    tx->push_timer = tx_push_timer;
    tx->ctx = t;
    return t;
}

int transport_port(const struct transport *t)
{
    return t->port;
}

int transport_fed_port(const struct transport *t)
{
    return fed_port(t);
}

void transport_attach(struct transport *t, struct srv *srv, struct kz_workers *workers)
{
    t->srv = srv;
    t->workers = workers;
}

void (*transport_wake_fn(void))(void *)
{
    return wake_loop;
}

void *transport_wake_arg(struct transport *t)
{
    return t->ctx;
}

/* A PEM file into a new buffer (*len bytes, NUL after them); NULL if unreadable or over 1 MiB
 * (a certificate chain is a few KB). */
static char *pem_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc((1 << 20) + 1);
    size_t n = buf ? fread(buf, 1, 1 << 20, f) : 0;
    bool whole = buf && feof(f) && !ferror(f) && n > 0;
    fclose(f);
    if (!whole) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Loads cert and key again into every vhost serving them (lws_tls_cert_updated): new
 * connections get the new certificate, open ones keep theirs. */
static int tls_reload_pair(struct transport *t, const char *cert, const char *key, char *err,
                           size_t errlen)
{
    size_t nc = 0, nk = 0;
    char *mc = pem_read(cert, &nc), *mk = pem_read(key, &nk);
    int rc = -1;
    /* lws_tls_cert_updated logs a file that does not parse but reports success, and the vhost
     * may be left without a certificate: both files are checked here first. */
    struct lws_x509_cert *x = NULL;
    bool cert_ok = mc && lws_x509_create(&x) == 0 && lws_x509_parse_from_pem(x, mc, nc + 1) == 0;
    if (x)
        lws_x509_destroy(&x);
    bool key_ok = mk && strstr(mk, "-----BEGIN ") && strstr(mk, "PRIVATE KEY-----");
    if (!mc || !mk)
        snprintf(err, errlen, "cannot read %s", !mc ? cert : key);
    else if (!cert_ok || !key_ok)
        snprintf(err, errlen, "%s is not a PEM %s", !cert_ok ? cert : key,
                 !cert_ok ? "certificate" : "private key");
    else if (lws_tls_cert_updated(t->ctx, cert, key, mc, nc, mk, nk) != 0)
        snprintf(err, errlen, "%s and %s do not load (a certificate and its key, PEM)", cert, key);
    else
        rc = 0;
    if (mk)
        sodium_memzero(mk, nk);
    free(mc);
    free(mk);
    return rc;
}

int transport_tls_reload(struct transport *t, int *reloaded, char *err, size_t errlen)
{
    const struct kz_config *cfg = t->cfg;
    *reloaded = 0;
    if (cfg->tls_cert_file[0]) {
        if (tls_reload_pair(t, cfg->tls_cert_file, cfg->tls_key_file, err, errlen) != 0)
            return -1;
        (*reloaded)++;
    }
    if (t->fed && cfg->federation_tls_cert_file[0]) {
        if (tls_reload_pair(t, cfg->federation_tls_cert_file, cfg->federation_tls_key_file, err,
                            errlen) != 0)
            return -1;
        (*reloaded)++;
    }
    return 0;
}

void transport_on_reload(struct transport *t, void (*fn)(void *), void *arg)
{
    t->reload = fn;
    t->reload_arg = arg;
}

/* Pinged from a timer of the loop itself: if a callback hangs the loop, the pings stop and
 * systemd restarts the service after WatchdogSec. Half the interval leaves a whole one of
 * slack for a slow turn (sd_watchdog_enabled(3) advises the same). */
static void watchdog_cb(lws_sorted_usec_list_t *sul)
{
    struct transport *t = lws_container_of(sul, struct transport, watchdog_sul);
    if (kz_sd_notify("WATCHDOG=1") != 0)
        KZ_WARN("watchdog_ping_failed", "socket=NOTIFY_SOCKET");
    lws_sul_schedule(t->ctx, 0, &t->watchdog_sul, watchdog_cb, (lws_usec_t)t->watchdog_us / 2);
}

static void deadline_cb(lws_sorted_usec_list_t *sul)
{
    struct transport *t = lws_container_of(sul, struct transport, deadline_sul);
    t->deadline_passed = true;
    /* lws 4.1 may run a due timer before its poll() and then sleep until its next one: wake
     * the loop so transport_run sees the flag now (the same trap as kzclient.c's waits). */
    lws_cancel_service(t->ctx);
}

void transport_run(struct transport *t)
{
    lws_sul_schedule(t->ctx, 0, &t->house_sul, house_cb, 1);
    lws_sul_schedule(t->ctx, 0, &t->jma_sul, jma_cb, LWS_US_PER_MS * 1000);
    fed_begin(t);
    t->watchdog_us = kz_sd_watchdog_usec();
    if (t->watchdog_us)
        lws_sul_schedule(t->ctx, 0, &t->watchdog_sul, watchdog_cb, 1);
    /* The "listening on" line is out and every listener accepts: systemd may start what
     * depends on kizunad (Type=notify). */
    if (kz_sd_notify("READY=1\nSTATUS=serving") != 0)
        KZ_WARN("notify_failed", "state=READY socket=NOTIFY_SOCKET");
    while (!stop_requested && lws_service(t->ctx, 0) >= 0) {
        if (reload_requested && t->reload) {
            reload_requested = 0;
            t->reload(t->reload_arg);
        }
    }
    kz_sd_notify("STOPPING=1\nSTATUS=stopping");

    /* Stop: commit what was acknowledged-to-be, then say goodbye to every WebSocket with a
     * close frame (lws_context_destroy would send none) and give clients a moment to take it. */
    KZ_INFO("shutdown", "connections=%zu", t->ws_count);
    listener_stop(t->listener);
    fed_stop(t);
    srv_flush(t->srv);
    ws_goodbye_all(t);
    lws_sul_schedule(t->ctx, 0, &t->deadline_sul, deadline_cb,
                     (lws_usec_t)t->cfg->shutdown_grace_ms * LWS_US_PER_MS);
    while (t->ws_count && !t->deadline_passed && lws_service(t->ctx, 0) >= 0)
        ;
    lws_sul_cancel(&t->deadline_sul);
}

void transport_free(struct transport *t)
{
    if (!t)
        return;
    lws_sul_cancel(&t->commit_sul);
    lws_sul_cancel(&t->tick_sul);
    lws_sul_cancel(&t->house_sul);
    lws_sul_cancel(&t->blob_sul);
    lws_sul_cancel(&t->watchdog_sul);
    lws_sul_cancel(&t->push_sul);
    lws_sul_cancel(&t->jma_sul);
    static_close(t);
    signal_ctx = NULL;
    fed_stop(t);
    lws_context_destroy(t->ctx);
    listener_free(t->listener);
    fed_free(t);
    idmap_free(&t->conns);
    idmap_free(&t->by_user);
    conn_peers_free(t);
    free(t->rx);
    free(t);
}
