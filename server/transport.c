/* transport.c - the only file that touches libwebsockets on the server side.
 *
 * Two protocols on one vhost: "http" serves GET /healthz and POST /api/v1/<op>; "kizuna.v1"
 * serves the WebSocket at /api/v1/ws (and is the default, so clients need not name it).
 * Connections are known to the core by a 64-bit id, never by pointer: a reply that arrives
 * after its connection closed finds no id and is dropped (pitfall 5 of research section 2.11).
 *
 * Every outgoing WebSocket frame goes through a per-connection FIFO of shared, refcounted
 * frames, bounded in bytes: a client that cannot keep up is closed and catches up on resume,
 * and never grows the server's memory. Exactly one lws_write per WRITEABLE callback.
 */
#include "transport.h"
#include "idmap.h"

#include <libwebsockets.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>

#define WS_PATH        "/api/v1/ws"
#define COALESCE_BYTES 65536 /* most bytes gathered into one write */
#define API_PREFIX     "/api/v1/"

struct qnode {
    struct kz_frame *frame;
    struct qnode *next;
};

/* Common head of both kinds of per-connection data. */
struct conn {
    uint64_t id; /* 0 while not registered */
    struct lws *wsi;
    bool is_ws;
    char peer[STORE_ADDR_MAX + 1];
};

struct ws_conn {
    struct conn c;
    int64_t session_id, user_id;
    unsigned char *rx;
    size_t rx_len, rx_cap;
    bool rx_in_message, rx_binary, rx_overflow;
    struct qnode *q_head, *q_tail;
    size_t q_bytes;
    int close_code;          /* nonzero: close with this code ... */
    bool close_when_drained; /* ... after the queue has gone out (else at once) */
    char close_reason[64];
    struct ws_conn *prev, *next; /* all WebSocket connections, for close_conns and shutdown */
    struct ws_conn *user_prev, *user_next; /* the bound user's connections (by_user) */
    bool subscribed;                       /* live events flow (sync caught up) ... */
    int64_t sub_pos;                       /* ... and this is the last position sent */
};

struct http_conn {
    struct conn c;
    char op[64];
    char bearer[128];
    char *body;
    size_t body_len;
    long long content_length;
    struct kz_frame *resp;
    bool headers_sent;
    bool close_after; /* the request was refused before its body was read */
};

struct transport {
    struct lws_context *ctx;
    const struct kz_config *cfg;
    struct srv *srv;
    struct kz_workers *workers;
    struct idmap conns;   /* connection id -> struct conn */
    struct idmap by_user; /* user id -> first ws_conn of that user (linked by user_next) */
    uint64_t next_id;
    struct ws_conn *ws_list;
    size_t ws_count;
    lws_sorted_usec_list_t commit_sul;
    lws_sorted_usec_list_t tick_sul;
    lws_sorted_usec_list_t house_sul;
    lws_sorted_usec_list_t deadline_sul;
    bool deadline_passed;
    int port;
    unsigned char scratch[LWS_PRE + COALESCE_BYTES]; /* ws_writeable's gathering buffer */
};

static volatile sig_atomic_t stop_requested;
static struct lws_context *signal_ctx;

static struct transport *transport_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

static int conn_register(struct transport *t, struct conn *c, struct lws *wsi, bool is_ws)
{
    c->id = ++t->next_id;
    c->wsi = wsi;
    c->is_ws = is_ws;
    lws_get_peer_simple(wsi, c->peer, sizeof c->peer);
    return idmap_put(&t->conns, c->id, c);
}

static void conn_unregister(struct transport *t, struct conn *c)
{
    if (!c->id)
        return;
    idmap_del(&t->conns, c->id);
    c->id = 0;
}

/* ---- WebSocket connections ---- */

static void ws_queue_clear(struct ws_conn *w)
{
    for (struct qnode *n = w->q_head, *next; n; n = next) {
        next = n->next;
        kz_frame_unref(n->frame);
        free(n);
    }
    w->q_head = w->q_tail = NULL;
    w->q_bytes = 0;
}

static void user_unlink(struct transport *t, struct ws_conn *w)
{
    if (!w->user_id)
        return;
    if (w->user_prev)
        w->user_prev->user_next = w->user_next;
    else if (w->user_next)
        idmap_put(&t->by_user, (uint64_t)w->user_id, w->user_next);
    else
        idmap_del(&t->by_user, (uint64_t)w->user_id);
    if (w->user_next)
        w->user_next->user_prev = w->user_prev;
    w->user_prev = w->user_next = NULL;
    w->user_id = w->session_id = 0;
    w->subscribed = false;
}

static int user_link(struct transport *t, struct ws_conn *w, int64_t user_id, int64_t session_id)
{
    struct ws_conn *head = idmap_get(&t->by_user, (uint64_t)user_id);
    if (idmap_put(&t->by_user, (uint64_t)user_id, w) != 0)
        return -1;
    w->user_next = head;
    if (head)
        head->user_prev = w;
    w->user_id = user_id;
    w->session_id = session_id;
    return 0;
}

static void ws_close(struct ws_conn *w, int code, const char *reason, bool after_drain)
{
    if (w->close_code)
        return;
    w->close_code = code;
    w->close_when_drained = after_drain;
    snprintf(w->close_reason, sizeof w->close_reason, "%s", reason);
    if (!after_drain)
        ws_queue_clear(w);
    lws_callback_on_writable(w->c.wsi);
}

static void ws_enqueue_at(struct transport *t, struct ws_conn *w, struct kz_frame *f, bool front);

static void ws_enqueue(struct transport *t, struct ws_conn *w, struct kz_frame *f)
{
    ws_enqueue_at(t, w, f, false);
}

/* front: ahead of everything queued. Safe, because each queued frame goes out whole in one
 * WRITEABLE: there is never a half-sent frame of ours at the head. */
static void ws_enqueue_at(struct transport *t, struct ws_conn *w, struct kz_frame *f, bool front)
{
    if (w->close_code)
        return;
    if (w->q_bytes + f->len > (size_t)t->cfg->max_queue_bytes) {
        KZ_WARN("slow_consumer", "conn=%llu queued=%zu", (unsigned long long)w->c.id, w->q_bytes);
        ws_close(w, LWS_CLOSE_STATUS_POLICY_VIOLATION, "slow consumer: resume to catch up", false);
        return;
    }
    struct qnode *n = malloc(sizeof *n);
    if (!n) {
        ws_close(w, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory", false);
        return;
    }
    n->frame = kz_frame_ref(f);
    n->next = NULL;
    if (front) {
        n->next = w->q_head;
        w->q_head = n;
        if (!w->q_tail)
            w->q_tail = n;
    } else {
        if (w->q_tail)
            w->q_tail->next = n;
        else
            w->q_head = n;
        w->q_tail = n;
    }
    w->q_bytes += f->len;
    lws_callback_on_writable(w->c.wsi);
}

/* Gathers queued frames into one buffer of ready-made WebSocket frames (server frames are
 * unmasked: a 2-10 byte header, then the payload) so that many events leave in one send()
 * instead of one syscall each; per-message send() was the largest single cost in fan-out
 * profiles (docs/performance.md). No extension is negotiated, so the frames need no other
 * transformation, and lws writes LWS_WRITE_RAW bytes as they are. */
static size_t frame_header(unsigned char *h, size_t len)
{
    h[0] = 0x81; /* FIN, text */
    if (len < 126) {
        h[1] = (unsigned char)len;
        return 2;
    }
    if (len < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; i++)
        h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

static void ws_dequeue(struct ws_conn *w)
{
    struct qnode *n = w->q_head;
    w->q_head = n->next;
    if (!w->q_head)
        w->q_tail = NULL;
    w->q_bytes -= n->frame->len;
    kz_frame_unref(n->frame);
    free(n);
}

static int ws_writeable(struct transport *t, struct ws_conn *w)
{
    bool draining = w->q_head && !(w->close_code && !w->close_when_drained);
    if (draining && (!w->q_head->next || w->q_head->frame->len >= COALESCE_BYTES)) {
        /* One frame: no copy, lws frames it. */
        struct kz_frame *f = w->q_head->frame;
        if (lws_write(w->c.wsi, f->data, f->len, LWS_WRITE_TEXT) < (int)f->len)
            return -1;
        ws_dequeue(w);
    } else if (draining) {
        unsigned char *out = t->scratch + LWS_PRE;
        size_t used = 0;
        while (w->q_head && used + w->q_head->frame->len + 10 <= COALESCE_BYTES) {
            struct kz_frame *f = w->q_head->frame;
            used += frame_header(out + used, f->len);
            memcpy(out + used, f->data, f->len);
            used += f->len;
            ws_dequeue(w);
        }
        if (lws_write(w->c.wsi, out, used, LWS_WRITE_RAW) < (int)used)
            return -1;
    }
    if (w->q_head && !(w->close_code && !w->close_when_drained)) {
        lws_callback_on_writable(w->c.wsi);
        return 0;
    }
    if (w->close_code) {
        lws_close_reason(w->c.wsi, (enum lws_close_status)w->close_code,
                         (unsigned char *)w->close_reason, strlen(w->close_reason));
        return -1;
    }
    return 0; /* lws may call WRITEABLE with nothing to send */
}

static void ws_receive(struct transport *t, struct ws_conn *w, const void *in, size_t len)
{
    struct lws *wsi = w->c.wsi;
    if (!w->rx_in_message) {
        w->rx_in_message = true;
        w->rx_len = 0;
        w->rx_binary = lws_frame_is_binary(wsi);
        w->rx_overflow = false;
    }
    size_t max = (size_t)t->cfg->max_frame_bytes;
    if (!w->rx_overflow && w->rx_len + len > max) {
        w->rx_overflow = true; /* keep reading to the end of the message, storing nothing */
    } else if (!w->rx_overflow) {
        if (w->rx_len + len + 1 > w->rx_cap) {
            size_t cap = w->rx_cap ? w->rx_cap : 4096;
            while (cap < w->rx_len + len + 1)
                cap *= 2;
            unsigned char *rx = realloc(w->rx, cap);
            if (!rx) {
                ws_close(w, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory", false);
                return;
            }
            w->rx = rx;
            w->rx_cap = cap;
        }
        memcpy(w->rx + w->rx_len, in, len);
        w->rx_len += len;
    }
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
        return;
    w->rx_in_message = false;
    if (w->rx_overflow) {
        char msg[96];
        snprintf(msg, sizeof msg, "a request may be at most %lld bytes", t->cfg->max_frame_bytes);
        srv_send_error(t->srv, w->c.id, false, KZ_TOO_LARGE, msg);
        ws_close(w, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "request too large", true);
    } else if (w->rx_binary) {
        srv_send_error(t->srv, w->c.id, false, KZ_BAD_REQUEST,
                       "requests are JSON text frames, not binary");
    } else {
        w->rx[w->rx_len] = '\0';
        srv_handle_ws_text(t->srv, w->c.id, w->session_id, w->c.peer, (const char *)w->rx,
                           w->rx_len);
    }
    /* Do not keep a large buffer around for the connection's whole life. */
    if (w->rx_cap > 65536) {
        free(w->rx);
        w->rx = NULL;
        w->rx_cap = 0;
    }
}

static int cb_ws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                 size_t len)
{
    struct transport *t = transport_of(wsi);
    struct ws_conn *w = user;
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
        char uri[64];
        if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0 || strcmp(uri, WS_PATH) != 0)
            return 1; /* nonzero refuses the upgrade */
        if (t->ws_count >= (size_t)t->cfg->max_connections || stop_requested) {
            KZ_WARN("connection_refused", "reason=%s",
                    stop_requested ? "shutting_down" : "max_connections");
            return 1;
        }
        return 0;
    }
    case LWS_CALLBACK_ESTABLISHED:
        memset(w, 0, sizeof *w);
        if (conn_register(t, &w->c, wsi, true) != 0)
            return -1;
        w->next = t->ws_list;
        if (t->ws_list)
            t->ws_list->prev = w;
        t->ws_list = w;
        t->ws_count++;
        if (t->cfg->socket_sndbuf_bytes > 0) {
            /* A fixed kernel buffer instead of autotuning: what a stalled client can pin stays
             * bounded and visible in our own queue, where the slow-consumer rule applies. */
            int sz = (int)t->cfg->socket_sndbuf_bytes;
            setsockopt(lws_get_socket_fd(wsi), SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
        }
        KZ_DEBUG("ws_open", "conn=%llu addr=%s", (unsigned long long)w->c.id, w->c.peer);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        if (w->c.id && !w->close_code)
            ws_receive(t, w, in, len);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return w->c.id ? ws_writeable(t, w) : 0;
    case LWS_CALLBACK_CLOSED:
        if (!w->c.id)
            return 0;
        KZ_DEBUG("ws_close", "conn=%llu", (unsigned long long)w->c.id);
        conn_unregister(t, &w->c);
        user_unlink(t, w);
        if (w->prev)
            w->prev->next = w->next;
        else
            t->ws_list = w->next;
        if (w->next)
            w->next->prev = w->prev;
        t->ws_count--;
        ws_queue_clear(w);
        free(w->rx);
        w->rx = NULL;
        return 0;
    default:
        return 0;
    }
}

/* ---- HTTP ---- */

static void http_reset(struct http_conn *h)
{
    kz_frame_unref(h->resp);
    free(h->body);
    memset(h, 0, sizeof *h);
}

static void http_reply_error(struct transport *t, struct http_conn *h, enum kz_err e,
                             const char *msg)
{
    h->close_after = true;
    srv_send_error(t->srv, h->c.id, true, e, msg);
}

static int http_begin(struct transport *t, struct http_conn *h, struct lws *wsi, const char *uri)
{
    http_reset(h);
    if (conn_register(t, &h->c, wsi, false) != 0)
        return -1;
    bool is_post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
    bool is_get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
    if (is_get && strcmp(uri, "/healthz") == 0) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddTrueToObject(o, "ok");
        cJSON_AddStringToObject(o, "status", "serving");
        cJSON_AddStringToObject(o, "version", KZ_VERSION);
        struct kz_frame *f = kz_frame_from_json(o, 200);
        cJSON_Delete(o);
        if (!f)
            return -1;
        h->resp = f;
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (strncmp(uri, API_PREFIX, strlen(API_PREFIX)) != 0) {
        http_reply_error(t, h, KZ_NOT_FOUND, "no such path");
        return 0;
    }
    if (!is_post) {
        http_reply_error(t, h, KZ_BAD_REQUEST,
                         strcmp(uri, WS_PATH) == 0 ? "this path takes a WebSocket upgrade"
                                                   : "ops are called with POST");
        return 0;
    }
    const char *op = uri + strlen(API_PREFIX);
    if (!*op || strlen(op) >= sizeof h->op) {
        http_reply_error(t, h, KZ_BAD_REQUEST, "POST /api/v1/<op>");
        return 0;
    }
    snprintf(h->op, sizeof h->op, "%s", op);
    char auth[160] = "";
    if (lws_hdr_copy(wsi, auth, sizeof auth, WSI_TOKEN_HTTP_AUTHORIZATION) > 0) {
        if (strncmp(auth, "Bearer ", 7) != 0) {
            http_reply_error(t, h, KZ_UNAUTHORIZED, "use Authorization: Bearer <token>");
            return 0;
        }
        if (strlen(auth + 7) >= sizeof h->bearer) {
            http_reply_error(t, h, KZ_UNAUTHORIZED, "the token is not valid: log in again");
            return 0;
        }
        memcpy(h->bearer, auth + 7, strlen(auth + 7) + 1);
    }
    char clen[32] = "";
    if (lws_hdr_copy(wsi, clen, sizeof clen, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0) {
        /* Without a length lws would wait for 100 MB (research 2.4): refuse instead. */
        http_reply_error(t, h, KZ_BAD_REQUEST, "Content-Length is required");
        return 0;
    }
    char *end;
    h->content_length = strtoll(clen, &end, 10);
    if (*end || h->content_length < 0) {
        http_reply_error(t, h, KZ_BAD_REQUEST, "Content-Length is not a number");
        return 0;
    }
    if (h->content_length > t->cfg->max_frame_bytes) {
        http_reply_error(t, h, KZ_TOO_LARGE, "the request body is too large");
        return 0;
    }
    if (h->content_length == 0)
        srv_handle_http(t->srv, h->c.id, h->op, h->bearer, h->c.peer, "", 0);
    return 0;
}

static int http_body(struct http_conn *h, const void *in, size_t len)
{
    if (h->close_after || h->resp)
        return 0; /* already answered: discard */
    if (h->body_len + len > (size_t)h->content_length)
        return -1;
    if (!h->body && !(h->body = malloc((size_t)h->content_length + 1)))
        return -1;
    memcpy(h->body + h->body_len, in, len);
    h->body_len += len;
    return 0;
}

static int http_writeable(struct http_conn *h, struct lws *wsi)
{
    struct kz_frame *f = h->resp;
    if (!f)
        return 0;
    if (!h->headers_sent) {
        unsigned char buf[LWS_PRE + 512], *start = buf + LWS_PRE, *p = start,
                                          *end = buf + sizeof buf - 1;
        if (lws_add_http_common_headers(wsi, (unsigned)f->http_status, "application/json", f->len,
                                        &p, end) ||
            lws_finalize_write_http_header(wsi, start, &p, end))
            return -1;
        h->headers_sent = true;
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (lws_write(wsi, f->data, f->len, LWS_WRITE_HTTP_FINAL) < (int)f->len)
        return -1;
    bool close_after = h->close_after;
    kz_frame_unref(f);
    h->resp = NULL;
    if (close_after)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int cb_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    struct transport *t = transport_of(wsi);
    struct http_conn *h = user;
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        /* A worker finished, or a signal asked us to stop (lws_cancel_service). */
        if (t && t->workers)
            kz_workers_drain(t->workers);
        return 0;
    case LWS_CALLBACK_HTTP:
        if (h->c.id)
            conn_unregister(t, &h->c);
        return http_begin(t, h, wsi, in);
    case LWS_CALLBACK_HTTP_BODY:
        return http_body(h, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (h->close_after || h->resp)
            return 0;
        srv_handle_http(t->srv, h->c.id, h->op, h->bearer, h->c.peer, h->body ? h->body : "",
                        h->body_len);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return http_writeable(h, wsi);
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (h) {
            conn_unregister(t, &h->c);
            http_reset(h);
        }
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* ---- what the core asks of the transport ---- */

static void tx_send(void *ctx, uint64_t conn_id, struct kz_frame *f)
{
    struct transport *t = ctx;
    struct conn *c = idmap_get(&t->conns, conn_id);
    if (!c)
        return; /* gone: the client will resume */
    if (c->is_ws) {
        ws_enqueue(t, (struct ws_conn *)c, f);
        return;
    }
    struct http_conn *h = (struct http_conn *)c;
    if (h->resp)
        return;
    h->resp = kz_frame_ref(f);
    lws_callback_on_writable(c->wsi);
}

static void tx_bind(void *ctx, uint64_t conn_id, int64_t session_id, int64_t user_id)
{
    struct transport *t = ctx;
    struct conn *c = idmap_get(&t->conns, conn_id);
    if (!c || !c->is_ws)
        return;
    struct ws_conn *w = (struct ws_conn *)c;
    user_unlink(t, w);
    if (user_id && user_link(t, w, user_id, session_id) != 0)
        ws_close(w, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory", false);
}

static void tx_subscribe(void *ctx, uint64_t conn_id, int64_t pos)
{
    struct transport *t = ctx;
    struct conn *c = idmap_get(&t->conns, conn_id);
    if (!c || !c->is_ws || !((struct ws_conn *)c)->user_id)
        return;
    struct ws_conn *w = (struct ws_conn *)c;
    w->subscribed = true;
    w->sub_pos = pos;
}

static void tx_push(void *ctx, int64_t user_id, int64_t pos, struct kz_frame *f)
{
    struct transport *t = ctx;
    for (struct ws_conn *w = idmap_get(&t->by_user, (uint64_t)user_id), *next; w; w = next) {
        next = w->user_next; /* ws_enqueue may close w, which does not unlink it yet */
        if (!w->subscribed || (pos && pos <= w->sub_pos))
            continue;
        if (pos)
            w->sub_pos = pos;
        ws_enqueue(t, w, f);
    }
}

static void tx_alert(void *ctx, int64_t user_id, struct kz_frame *f)
{
    struct transport *t = ctx;
    for (struct ws_conn *w = idmap_get(&t->by_user, (uint64_t)user_id), *next; w; w = next) {
        next = w->user_next;
        if (w->subscribed)
            ws_enqueue_at(t, w, f, true);
    }
}

static void tick_cb(lws_sorted_usec_list_t *sul)
{
    struct transport *t = lws_container_of(sul, struct transport, tick_sul);
    srv_tick(t->srv);
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

static void tx_timer(void *ctx, int ms)
{
    struct transport *t = ctx;
    lws_sul_schedule(t->ctx, 0, &t->tick_sul, tick_cb, (lws_usec_t)ms * LWS_US_PER_MS);
}

static void tx_pause(void *ctx, uint64_t conn_id, bool paused)
{
    struct transport *t = ctx;
    struct conn *c = idmap_get(&t->conns, conn_id);
    if (c && c->is_ws)
        lws_rx_flow_control(c->wsi, paused ? 0 : 1);
}

static void tx_close_conns(void *ctx, const struct srv_close *which)
{
    struct transport *t = ctx;
    for (struct ws_conn *w = t->ws_list; w; w = w->next) {
        if ((which->user_id && w->user_id != which->user_id) || w->c.id == which->except_conn)
            continue;
        if (which->session_id && w->session_id != which->session_id)
            continue;
        if (which->keep_session_id && w->session_id == which->keep_session_id)
            continue;
        user_unlink(t, w);
        ws_close(w,
                 which->user_id ? LWS_CLOSE_STATUS_POLICY_VIOLATION
                                : LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
                 which->reason, false);
    }
}

static void commit_cb(lws_sorted_usec_list_t *sul)
{
    struct transport *t = lws_container_of(sul, struct transport, commit_sul);
    srv_commit(t->srv);
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
    kz_log(level == LLL_ERR    ? KZ_LOG_ERROR
           : level == LLL_WARN ? KZ_LOG_WARN
                               : KZ_LOG_DEBUG,
           "lws", "msg=\"%.*s\"", (int)n, line);
}

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
    /* Only an eventfd write in lws 4.1: safe enough here, and it wakes poll() at once. */
    if (signal_ctx)
        lws_cancel_service(signal_ctx);
}

static void wake_loop(void *arg)
{
    lws_cancel_service(arg);
}

static struct lws_protocols protocols[] = {
    {"http", cb_http, sizeof(struct http_conn), 0, 0, NULL, 0},
    /* rx_buffer_size (ws_rx_chunk_bytes) is allocated for every connection; larger requests
     * arrive in pieces, which ws_receive reassembles. */
    {"kizuna.v1", cb_ws, sizeof(struct ws_conn), 2048, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static const struct lws_protocol_vhost_options pvo_default = {NULL, NULL, "default", "1"};
static const struct lws_protocol_vhost_options pvo_ws = {NULL, &pvo_default, "kizuna.v1", ""};

struct transport *transport_new(const struct kz_config *cfg, struct srv_transport *tx, char *err,
                                size_t errlen)
{
    struct transport *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->cfg = cfg;
    char host[128];
    snprintf(host, sizeof host, "%s", cfg->listen);
    char *colon = strrchr(host, ':');
    char *endp = NULL;
    long port = colon ? strtol(colon + 1, &endp, 10) : -1;
    if (!colon || endp == colon + 1 || *endp || port < 0 || port > 65535) {
        snprintf(err, errlen, "listen '%s' is not HOST:PORT", cfg->listen);
        free(t);
        return NULL;
    }
    *colon = '\0';
    char *iface = host;
    if (iface[0] == '[') { /* [::1]:8080 */
        iface++;
        iface[strcspn(iface, "]")] = '\0';
    }

    int lws_levels = LLL_ERR | LLL_WARN;
    if (cfg->log_level >= KZ_LOG_DEBUG)
        lws_levels |= LLL_NOTICE;
    lws_set_log_level(lws_levels, log_emit);

    protocols[1].rx_buffer_size = (size_t)cfg->ws_rx_chunk_bytes;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = (int)port;
    info.iface = iface;
    info.protocols = protocols;
    info.pvo = &pvo_ws;
    info.user = t;
    info.options = LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE |
                   LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
    info.fd_limit_per_thread = (unsigned)cfg->max_connections + 64;
    info.vhost_name = "default";
    t->ctx = lws_create_context(&info);
    if (!t->ctx) {
        snprintf(err, errlen, "cannot listen on %s", cfg->listen);
        free(t);
        return NULL;
    }
    t->port = lws_get_vhost_listen_port(lws_get_vhost_by_name(t->ctx, "default"));
    tx->send = tx_send;
    tx->bind = tx_bind;
    tx->close_conns = tx_close_conns;
    tx->pause = tx_pause;
    tx->subscribe = tx_subscribe;
    tx->push = tx_push;
    tx->timer = tx_timer;
    tx->alert = tx_alert;
    tx->want_commit = tx_want_commit;
    tx->ctx = t;
    return t;
}

int transport_port(const struct transport *t)
{
    return t->port;
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

static void deadline_cb(lws_sorted_usec_list_t *sul)
{
    struct transport *t = lws_container_of(sul, struct transport, deadline_sul);
    t->deadline_passed = true;
}

void transport_run(struct transport *t)
{
    signal_ctx = t->ctx;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    lws_sul_schedule(t->ctx, 0, &t->house_sul, house_cb, 1);
    while (!stop_requested && lws_service(t->ctx, 0) >= 0)
        ;

    /* Stop: commit what was acknowledged-to-be, then say goodbye to every WebSocket with a
     * close frame (lws_context_destroy would send none) and give clients a moment to take it. */
    KZ_INFO("shutdown", "connections=%zu", t->ws_count);
    srv_commit(t->srv);
    for (struct ws_conn *w = t->ws_list; w; w = w->next)
        ws_close(w, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down", true);
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
    signal_ctx = NULL;
    lws_context_destroy(t->ctx);
    idmap_free(&t->conns);
    idmap_free(&t->by_user);
    free(t);
}
