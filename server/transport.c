/* transport.c - the only file that touches libwebsockets on the server side.
 *
 * Two protocols on one vhost: "http" serves GET /healthz, POST /api/v1/<op>, the resumable
 * uploads at /api/v1/uploads (a tus 1.0 subset) and encrypted blobs at GET /api/v1/blobs/<id>
 * (with Range); "kizuna.v1" serves the WebSocket at /api/v1/ws (and is the default, so
 * clients need not name it). Upload bodies stream to disk as they arrive and blobs stream from
 * disk, so neither is ever held in memory whole.
 * Connections are known to the core by a 64-bit id, never by pointer: a reply that arrives
 * after its connection closed finds no id and is dropped (pitfall 5 of research section 2.11).
 *
 * Every outgoing WebSocket frame goes through a per-connection FIFO of shared, refcounted
 * frames, bounded in bytes: a client that cannot keep up is closed and catches up on resume,
 * and never grows the server's memory. Exactly one lws_write per WRITEABLE callback.
 */
#include "transport.h"
#include "httpparse.h"
#include "idmap.h"
#include "listener.h"

#include <libwebsockets.h>
#include <signal.h>
#include <sodium.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WS_PATH        "/api/v1/ws"
#define COALESCE_BYTES 65536 /* most bytes gathered into one write */
#define API_PREFIX     "/api/v1/"
#define UPLOADS_PATH   "/api/v1/uploads"
#define BLOBS_PREFIX   "/api/v1/blobs/"
#define FILE_CHUNK     32768  /* bytes of a blob per write */
#define PEERS_MAX      100000 /* addresses tracked before the table starts afresh */

struct qnode {
    struct kz_frame *frame;
    struct qnode *next;
};

/* A token bucket: `tokens` requests may go now; it refills at requests_per_second. */
struct bucket {
    double tokens;
    int64_t at_ms;
};

/* What one client address has left of its HTTP requests (its connections are counted by
 * listener.c). */
struct peer {
    struct bucket http;
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
    struct bucket rate;                    /* requests this connection may still make */
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
    /* Uploads and blobs: */
    struct srv_patch *patch;    /* a PATCH whose body streams into an upload */
    struct srv_http_result res; /* the tus headers of the reply (has_res) */
    bool has_res;
    bool no_body; /* HEAD, 204 */
    int file_fd;  /* a blob being sent (-1: none): bytes [file_pos, file_end) */
    int64_t file_pos, file_end, file_size;
    bool partial; /* a Range reply (206) */
    /* Deadlines (http_watch_cb): each window of http_timeout_s the request must move its
     * body in or its reply out at http_min_bytes_per_s, unless the core is still working. */
    lws_sorted_usec_list_t watch;
    int64_t moved;    /* bytes in or out since the window began */
    int64_t received; /* body bytes so far */
    bool in_flight;   /* between the request's headers and the end of its reply */
    bool holds_file;  /* counted in listener_files (http_files_sync) */
    bool body_done;   /* the whole request is in: the reply is the server's move */
};

struct transport {
    struct lws_context *ctx;
    struct kz_listener *listener;
    const struct kz_config *cfg;
    struct srv *srv;
    struct kz_workers *workers;
    struct idmap conns;   /* connection id -> struct conn */
    struct idmap by_user; /* user id -> first ws_conn of that user (linked by user_next) */
    struct idmap peers;   /* hash of a client address -> struct peer */
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

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Takes one request from the bucket; false if it is empty (the caller answers rate_limited). */
static bool bucket_take(const struct kz_config *cfg, struct bucket *b)
{
    int64_t now = mono_ms();
    if (!b->at_ms) {
        b->tokens = (double)cfg->request_burst;
    } else {
        b->tokens += (double)(now - b->at_ms) * (double)cfg->requests_per_second / 1000.0;
        if (b->tokens > (double)cfg->request_burst)
            b->tokens = (double)cfg->request_burst;
    }
    b->at_ms = now;
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    return true;
}

static uint64_t peer_key(const char *addr)
{
    uint8_t h[8];
    crypto_generichash(h, sizeof h, (const unsigned char *)addr, strlen(addr), NULL, 0);
    uint64_t k;
    memcpy(&k, h, sizeof k);
    return k && k != UINT64_MAX ? k : 1;
}

static void peers_clear(struct transport *t)
{
    for (size_t i = 0; i < t->peers.cap; i++)
        if (t->peers.keys[i] && t->peers.keys[i] != UINT64_MAX)
            free(t->peers.vals[i]);
    idmap_free(&t->peers);
    memset(&t->peers, 0, sizeof t->peers);
}

/* The record of a client address, made on first sight. Bounded: past PEERS_MAX addresses the
 * table starts afresh, which at worst forgives some clients their counts early. */
static struct peer *peer_of(struct transport *t, const char *addr)
{
    uint64_t k = peer_key(addr);
    struct peer *p = idmap_get(&t->peers, k);
    if (p)
        return p;
    if (t->peers.used >= PEERS_MAX) {
        peers_clear(t);
        KZ_WARN("peers_reset", "addresses=%d", PEERS_MAX);
    }
    p = calloc(1, sizeof *p);
    if (p && idmap_put(&t->peers, k, p) != 0) {
        free(p);
        p = NULL;
    }
    return p;
}

static int conn_register(struct transport *t, struct conn *c, struct lws *wsi, bool is_ws)
{
    c->id = ++t->next_id;
    c->wsi = wsi;
    c->is_ws = is_ws;
    const char *addr = listener_peer(wsi);
    if (addr)
        snprintf(c->peer, sizeof c->peer, "%s", addr);
    else
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
    } else if (!bucket_take(t->cfg, &w->rate)) {
        srv_send_error(t->srv, w->c.id, false, KZ_RATE_LIMITED,
                       "too many requests on this connection: slow down and retry in 1 s");
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
        if (stop_requested) {
            KZ_WARN("connection_refused", "reason=shutting_down");
            return 1;
        }
        return 0;
    }
    case LWS_CALLBACK_ESTABLISHED: {
        memset(w, 0, sizeof *w);
        if (conn_register(t, &w->c, wsi, true) != 0)
            return -1;
        /* A connection that never logs in does not hold a slot for long. */
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, (int)t->cfg->ws_login_timeout_s);
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
    }
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

/* Counts the file a request holds (a blob being sent, an upload being written) against the
 * descriptor limit: checked after every callback, so no path that opens or closes one can
 * forget it. */
static void http_files_sync(struct transport *t, struct http_conn *h)
{
    bool holds = h->file_fd > 0 || h->patch; /* 0: a fresh, zeroed h */
    if (holds != h->holds_file) {
        listener_files(t->listener, holds ? 1 : -1);
        h->holds_file = holds;
    }
}

static void http_reset(struct transport *t, struct http_conn *h)
{
    lws_sul_cancel(&h->watch);
    kz_frame_unref(h->resp);
    free(h->body);
    srv_upload_patch_abort(h->patch);
    if (h->file_fd > 0)
        close(h->file_fd);
    h->file_fd = -1;
    h->patch = NULL;
    http_files_sync(t, h);
    memset(h, 0, sizeof *h);
    h->file_fd = -1;
}

static void http_reply_error(struct transport *t, struct http_conn *h, enum kz_err e,
                             const char *msg)
{
    h->close_after = true;
    srv_send_error(t->srv, h->c.id, true, e, msg);
}

/* ---- uploads and blobs over HTTP ---- */

static const char *http_err_code(int status)
{
    switch (status) {
    case 401:
        return "unauthorized";
    case 403:
        return "forbidden";
    case 404:
    case 410:
        return "not_found";
    case 409:
        return "conflict";
    case 413:
        return "too_large";
    case 400:
    case 416:
    case 460:
        return "bad_request";
    case 503:
        return "unavailable"; /* the disk is full: retry_after_s says when to come back */
    default:
        return "internal";
    }
}

/* Queues the reply for r: tus headers, and a small JSON body unless there must be none. */
static void http_reply_result(struct http_conn *h, const struct srv_http_result *r)
{
    h->res = *r;
    h->has_res = true;
    h->no_body = r->status == 204 || h->no_body;
    if (!h->no_body) {
        cJSON *o = cJSON_CreateObject();
        if (r->status < 300) {
            cJSON_AddTrueToObject(o, "ok");
            cJSON_AddNumberToObject(o, "offset", (double)r->offset);
            cJSON_AddNumberToObject(o, "length", (double)r->length);
            if (r->location[0])
                cJSON_AddStringToObject(o, "location", r->location);
        } else {
            cJSON_AddFalseToObject(o, "ok");
            cJSON *err = cJSON_AddObjectToObject(o, "error");
            cJSON_AddStringToObject(err, "code", http_err_code(r->status));
            cJSON_AddStringToObject(err, "message", r->message);
            if (r->retry_after_s > 0)
                cJSON_AddNumberToObject(err, "retry_after_s", (double)r->retry_after_s);
        }
        h->resp = kz_frame_from_json(o, r->status);
        cJSON_Delete(o);
    }
    /* Refused before its body was read: close after the reply. A PATCH that read its whole
     * body (r->body_read) leaves the connection clean for the next request. */
    if (r->status >= 300)
        h->close_after = h->patch == NULL && h->content_length > 0 && !r->body_read;
    lws_callback_on_writable(h->c.wsi);
}

static void http_refuse(struct http_conn *h, int status, const char *msg)
{
    struct srv_http_result r = {.status = status};
    snprintf(r.message, sizeof r.message, "%s", msg);
    h->close_after = true;
    http_reply_result(h, &r);
}

static long long header_int(struct lws *wsi, const char *name)
{
    char buf[32];
    int n = lws_hdr_custom_copy(wsi, buf, sizeof buf, name, (int)strlen(name));
    if (n <= 0)
        return -1;
    char *end;
    long long v = strtoll(buf, &end, 10);
    return *end || v < 0 ? -1 : v;
}

/* tus Upload-Metadata: "key base64,key base64"; finds `blob` (httpparse.c). */
static bool metadata_blob(struct lws *wsi, char out[STORE_BLOB_ID_LEN + 1])
{
    char md[512];
    const char *name = "upload-metadata:";
    if (lws_hdr_custom_copy(wsi, md, sizeof md, name, (int)strlen(name)) <= 0)
        return false;
    return kz_parse_upload_metadata_blob(md, out);
}

static int http_blobs_begin(struct transport *t, struct http_conn *h, struct lws *wsi,
                            const char *uri)
{
    bool is_post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
    bool is_get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
    bool is_head = lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0;
    bool is_patch = lws_hdr_total_length(wsi, WSI_TOKEN_PATCH_URI) > 0;
    bool is_delete = lws_hdr_total_length(wsi, WSI_TOKEN_DELETE_URI) > 0;
    char clen[32] = "";
    h->content_length = lws_hdr_copy(wsi, clen, sizeof clen, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0
                            ? strtoll(clen, NULL, 10)
                            : 0;
    h->no_body = is_head;
    char auth[160] = "";
    struct srv_auth who;
    const char *why;
    lws_hdr_copy(wsi, auth, sizeof auth, WSI_TOKEN_HTTP_AUTHORIZATION);
    enum kz_err e =
        srv_auth_bearer(t->srv, strncmp(auth, "Bearer ", 7) == 0 ? auth + 7 : NULL, &who, &why);
    if (e) {
        http_refuse(h, kz_err_http_status(e), why);
        return 0;
    }
    struct srv_http_result r;
    if (strncmp(uri, BLOBS_PREFIX, strlen(BLOBS_PREFIX)) == 0) {
        if (!is_get && !is_head) {
            http_refuse(h, 400, "blobs are read with GET");
            return 0;
        }
        int fd;
        int64_t size;
        srv_blob_open(t->srv, &who, uri + strlen(BLOBS_PREFIX), &fd, &size, &r);
        if (r.status != 200) {
            http_reply_result(h, &r);
            return 0;
        }
        h->file_fd = fd;
        h->file_size = size;
        h->file_pos = 0;
        h->file_end = size;
        char range[64];
        if (lws_hdr_copy(wsi, range, sizeof range, WSI_TOKEN_HTTP_RANGE) > 0) {
            if (!kz_parse_range(range, size, &h->file_pos, &h->file_end)) {
                close(h->file_fd);
                h->file_fd = -1;
                struct srv_http_result bad = {.status = 416, .length = size};
                snprintf(bad.message, sizeof bad.message, "the range is not within the blob");
                h->no_body = true;
                http_reply_result(h, &bad);
                return 0;
            }
            h->partial = true;
        }
        h->res = r;
        h->res.status = h->partial ? 206 : 200;
        h->has_res = true;
        lws_callback_on_writable(wsi);
        return 0;
    }
    const char *rest = uri + strlen(UPLOADS_PATH);
    if (!*rest && is_post) {
        char blob[STORE_BLOB_ID_LEN + 1];
        long long length = header_int(wsi, "upload-length:");
        if (length < 0 || !metadata_blob(wsi, blob)) {
            http_refuse(h, 400, "POST needs Upload-Length and Upload-Metadata: blob <base64>");
            return 0;
        }
        srv_upload_create(t->srv, &who, length, blob, &r);
        http_reply_result(h, &r);
        return 0;
    }
    if (*rest != '/' || !rest[1]) {
        http_refuse(h, 404, "no such path");
        return 0;
    }
    const char *id = rest + 1;
    if (is_head) {
        srv_upload_head(t->srv, &who, id, &r);
        http_reply_result(h, &r);
    } else if (is_delete) {
        srv_upload_delete(t->srv, &who, id, &r);
        http_reply_result(h, &r);
    } else if (is_patch) {
        char checksum[128] = "";
        const char *name = "upload-checksum:";
        lws_hdr_custom_copy(wsi, checksum, sizeof checksum, name, (int)strlen(name));
        long long offset = header_int(wsi, "upload-offset:");
        h->patch =
            srv_upload_patch_begin(t->srv, &who, id, offset, h->content_length, checksum, &r);
        if (!h->patch) {
            h->close_after = true;
            http_reply_result(h, &r);
        } else if (h->content_length == 0) {
            struct srv_patch *p = h->patch;
            h->patch = NULL;
            srv_upload_patch_end(p, &r);
            http_reply_result(h, &r);
        }
    } else {
        http_refuse(h, 400, "uploads take POST, HEAD, PATCH or DELETE");
    }
    return 0;
}

/* One request at a time on a connection. lws 4.1 goes on parsing what a client pipelined
 * behind a request while our reply is still being made (by a worker, or on a later
 * WRITEABLE): the next request's headers arrive as a second LWS_CALLBACK_HTTP, and bytes
 * behind a POST body make it call BODY_COMPLETION again and again without consuming them, at
 * full CPU, for ever (the two-request freeze). Completing the transaction inside those
 * callbacks does not help: lws then re-enters its parser in LRS_DEFERRING_ACTION and spins
 * there instead. So when lws hands us a request while one is in flight, the one in flight is
 * answered if its reply is ready and the connection is closed (http_send_last): a pipelining
 * client gets its first reply and a close, and sends the rest again, as RFC 9112 9.3.2
 * allows. Clients that wait for each reply (every client Kizuna knows) keep their
 * connection. */
static void http_hold(struct http_conn *h)
{
    h->body_done = true;
}

/* The reply is out. lws may free h (the protocol is rebound for the next request). */
static int http_done(struct http_conn *h, struct lws *wsi)
{
    lws_sul_cancel(&h->watch);
    h->in_flight = false;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static void http_watch_cb(lws_sorted_usec_list_t *sul)
{
    struct http_conn *h = lws_container_of(sul, struct http_conn, watch);
    struct transport *t = transport_of(h->c.wsi);
    int64_t window = t->cfg->http_timeout_s, need = window * t->cfg->http_min_bytes_per_s;
    bool replying = h->resp || h->has_res;
    if (h->body_done && !replying) {
        need = 0; /* the core is working on it: not the client's stall */
    } else if (!h->body_done) {
        int64_t left = h->content_length - h->received + h->moved; /* at the window's start */
        if (left < need)
            need = left;
    }
    if (h->moved < need) {
        KZ_WARN("http_stalled", "addr=%s phase=%s moved=%lld needed=%lld window_s=%lld", h->c.peer,
                h->body_done ? "reply" : "body", (long long)h->moved, (long long)need,
                (long long)window);
        lws_set_timeout(h->c.wsi, PENDING_TIMEOUT_HTTP_CONTENT, LWS_TO_KILL_SYNC); /* frees h */
        return;
    }
    h->moved = 0;
    lws_sul_schedule(lws_get_context(h->c.wsi), 0, &h->watch, http_watch_cb,
                     (lws_usec_t)window * LWS_USEC_PER_SEC);
}

static int http_begin(struct transport *t, struct http_conn *h, struct lws *wsi, const char *uri)
{
    http_reset(t, h);
    if (conn_register(t, &h->c, wsi, false) != 0)
        return -1;
    lws_sul_schedule(t->ctx, 0, &h->watch, http_watch_cb,
                     (lws_usec_t)t->cfg->http_timeout_s * LWS_USEC_PER_SEC);
    struct peer *p = peer_of(t, h->c.peer);
    if (!p || !bucket_take(t->cfg, &p->http)) {
        http_reply_error(t, h, KZ_RATE_LIMITED,
                         "too many requests from your address: slow down and retry in 1 s");
        return 0;
    }
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
    if (strncmp(uri, UPLOADS_PATH, strlen(UPLOADS_PATH)) == 0 ||
        strncmp(uri, BLOBS_PREFIX, strlen(BLOBS_PREFIX)) == 0)
        return http_blobs_begin(t, h, wsi, uri);
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
    h->moved += (int64_t)len;
    h->received += (int64_t)len;
    if (h->patch)
        return srv_upload_patch_data(h->patch, in, len) == 0 ? 0 : -1;
    if (h->close_after || h->resp || h->has_res)
        return 0; /* already answered: discard */
    if (h->body_len + len > (size_t)h->content_length)
        return -1;
    if (!h->body && !(h->body = malloc((size_t)h->content_length + 1)))
        return -1;
    memcpy(h->body + h->body_len, in, len);
    h->body_len += len;
    return 0;
}

/* Headers of an upload or blob reply: status, tus fields, and what the body will be. */
static int http_result_headers(struct http_conn *h, struct lws *wsi)
{
    unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start,
                                       *end = buf + sizeof buf - 1;
    const struct srv_http_result *r = &h->res;
    char v[96];
#define HDR(name, ...)                                                                             \
    (snprintf(v, sizeof v, __VA_ARGS__),                                                           \
     lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)v,       \
                                 (int)strlen(v), &p, end))
    if (lws_add_http_header_status(wsi, (unsigned)r->status, &p, end) ||
        HDR("tus-resumable:", "1.0.0") || HDR("cache-control:", "no-store"))
        return -1;
    if (h->file_fd >= 0) {
        if (HDR("content-type:", "application/octet-stream") || HDR("accept-ranges:", "bytes") ||
            (h->partial && HDR("content-range:", "bytes %lld-%lld/%lld", (long long)h->file_pos,
                               (long long)h->file_end - 1, (long long)h->file_size)) ||
            lws_add_http_header_content_length(wsi, (lws_filepos_t)(h->file_end - h->file_pos), &p,
                                               end))
            return -1;
    } else {
        if (r->status == 416 && HDR("content-range:", "bytes */%lld", (long long)r->length))
            return -1;
        if (r->status != 416 && r->status != 404 && r->status != 401 &&
            (HDR("upload-offset:", "%lld", (long long)r->offset) ||
             (r->length && HDR("upload-length:", "%lld", (long long)r->length))))
            return -1;
        if (r->location[0] && HDR("location:", "%s", r->location))
            return -1;
        if (r->retry_after_s > 0 && HDR("retry-after:", "%lld", (long long)r->retry_after_s))
            return -1;
        if (r->expires_at) {
            time_t e = (time_t)(r->expires_at / 1000);
            struct tm tm;
            char date[64];
            strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&e, &tm));
            if (HDR("upload-expires:", "%s", date))
                return -1;
        }
        size_t len = h->resp && !h->no_body ? h->resp->len : 0;
        if ((len && HDR("content-type:", "application/json")) ||
            lws_add_http_header_content_length(wsi, len, &p, end))
            return -1;
    }
#undef HDR
    if (lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    h->headers_sent = true;
    return 0;
}

/* One chunk of a blob per WRITEABLE. */
static int http_file_chunk(struct http_conn *h, struct lws *wsi)
{
    unsigned char buf[LWS_PRE + FILE_CHUNK];
    int64_t want = h->file_end - h->file_pos;
    if (want > FILE_CHUNK)
        want = FILE_CHUNK;
    ssize_t n = want ? pread(h->file_fd, buf + LWS_PRE, (size_t)want, h->file_pos) : 0;
    if (n < 0 || (want && n == 0))
        return -1;
    h->file_pos += n;
    h->moved += n;
    bool last = h->file_pos >= h->file_end;
    if (lws_write(wsi, buf + LWS_PRE, (size_t)n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) <
        (int)n)
        return -1;
    if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    close(h->file_fd);
    h->file_fd = -1;
    h->has_res = false;
    return http_done(h, wsi);
}

/* Writes h's reply on WRITEABLE: headers and a JSON body at once, or headers and a blob's
 * first chunk (the rest follows on later WRITEABLEs). -1 closes; h may be freed (http_done). */
static int http_send(struct http_conn *h, struct lws *wsi)
{
    struct kz_frame *f = h->resp;
    if (!h->has_res && !f)
        return 0; /* lws may call WRITEABLE with nothing to send */
    if (!h->headers_sent) {
        if (h->has_res) {
            if (http_result_headers(h, wsi))
                return -1;
        } else {
            unsigned char buf[LWS_PRE + 512], *start = buf + LWS_PRE, *p = start,
                                              *end = buf + sizeof buf - 1;
            if (lws_add_http_common_headers(wsi, (unsigned)f->http_status, "application/json",
                                            f->len, &p, end) ||
                lws_finalize_write_http_header(wsi, start, &p, end))
                return -1;
            h->headers_sent = true;
        }
    }
    if (h->has_res && h->file_fd >= 0 && !h->no_body)
        return http_file_chunk(h, wsi);
    if (f && !(h->has_res && h->no_body)) {
        if (lws_write(wsi, f->data, f->len, LWS_WRITE_HTTP_FINAL) < (int)f->len)
            return -1;
        h->moved += (int64_t)f->len;
    }
    if (h->file_fd >= 0)
        close(h->file_fd);
    h->file_fd = -1;
    kz_frame_unref(h->resp);
    h->resp = NULL;
    h->has_res = false;
    if (h->close_after)
        return -1;
    return http_done(h, wsi);
}

/* The request in flight is the connection's last: its reply goes out if it is ready (not a
 * blob stream), and the connection closes. lws closes gracefully (shutdown, then it drains
 * what the client still sends), so the reply is not lost to a reset. */
static int http_send_last(struct http_conn *h, struct lws *wsi)
{
    KZ_DEBUG("http_pipelined", "addr=%s", h->c.peer);
    if ((h->resp || h->has_res) && !h->headers_sent && h->file_fd < 0) {
        h->close_after = true;
        http_send(h, wsi);
    }
    return -1;
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
    case LWS_CALLBACK_HTTP: {
        if (h->in_flight)
            return http_send_last(h, wsi); /* a request behind one still in flight */
        if (h->c.id)
            conn_unregister(t, &h->c);
        if (http_begin(t, h, wsi, in) != 0)
            return -1;
        http_files_sync(t, h); /* a blob or an upload opened; http_reset lets it go */
        h->in_flight = true;
        char clen[32] = "";
        if (lws_hdr_copy(wsi, clen, sizeof clen, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0 ||
            strtoll(clen, NULL, 10) <= 0)
            http_hold(h); /* no body follows: the request is whole */
        return 0;
    }
    case LWS_CALLBACK_HTTP_BODY:
        return http_body(h, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (!h->in_flight)
            return -1; /* lws re-serving pipelined bytes after a finished transaction */
        if (h->body_done)
            return http_send_last(h, wsi); /* ... or while one is in flight */
        http_hold(h);
        if (h->patch) {
            struct srv_patch *p = h->patch;
            struct srv_http_result r;
            h->patch = NULL;
            srv_upload_patch_end(p, &r);
            http_reply_result(h, &r);
        } else if (!h->close_after && !h->resp && !h->has_res) {
            srv_handle_http(t->srv, h->c.id, h->op, h->bearer, h->c.peer, h->body ? h->body : "",
                            h->body_len);
        }
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return http_send(h, wsi);
    case LWS_CALLBACK_WSI_DESTROY:
        /* Every connection's last word, whatever it became (HTTP, WebSocket, a TLS
         * handshake that failed): only now is its place under the limits free. */
        if (t)
            listener_forget(t->listener, wsi);
        return 0;
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (h) {
            conn_unregister(t, &h->c);
            http_reset(t, h);
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
    lws_set_timeout(w->c.wsi, user_id ? NO_PENDING_TIMEOUT : PENDING_TIMEOUT_USER_OK,
                    user_id ? 0 : (int)t->cfg->ws_login_timeout_s);
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
        if ((which->conn_id && w->c.id != which->conn_id) ||
            (which->user_id && w->user_id != which->user_id) || w->c.id == which->except_conn)
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
    {NULL, NULL, 0, 0, 0, NULL, 0}, /* listener_protocol, set in transport_new */
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
    t->listener = listener_open(cfg, err, errlen);
    if (!t->listener) {
        free(t);
        return NULL;
    }

    int lws_levels = LLL_ERR | LLL_WARN;
    if (cfg->log_level >= KZ_LOG_DEBUG)
        lws_levels |= LLL_NOTICE;
    lws_set_log_level(lws_levels, log_emit);

    protocols[1].rx_buffer_size = (size_t)cfg->ws_rx_chunk_bytes;
    protocols[2] = listener_protocol;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* listener.c binds and accepts */
    info.protocols = protocols;
    info.pvo = &pvo_ws;
    info.user = t;
    info.options = LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE;
    /* lws's table the size of the process's descriptor limit: index lookups (listener.c). */
    info.fd_limit_per_thread = (unsigned)listener_nofile(t->listener);
    /* lws closes a connection that stalls in a handshake or mid-request after this long. */
    info.timeout_secs = (unsigned)cfg->http_timeout_s;
    /* ... and one whose headers stop coming: lws would otherwise wait its own 10 s. */
    info.timeout_secs_ah_idle = (unsigned)cfg->http_timeout_s;
    info.vhost_name = "default";
    if (cfg->tls_cert_file[0] || cfg->tls_key_file[0]) {
        if (!cfg->tls_cert_file[0] || !cfg->tls_key_file[0] ||
            access(cfg->tls_cert_file, R_OK) != 0 || access(cfg->tls_key_file, R_OK) != 0) {
            snprintf(err, errlen, "TLS needs readable tls_cert_file and tls_key_file (%s, %s)",
                     cfg->tls_cert_file[0] ? cfg->tls_cert_file : "unset",
                     cfg->tls_key_file[0] ? cfg->tls_key_file : "unset");
            listener_free(t->listener);
            free(t);
            return NULL;
        }
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cfg->tls_cert_file;
        info.ssl_private_key_filepath = cfg->tls_key_file;
        /* HTTP/1.1 only: the upload and blob endpoints stream bodies the HTTP/1 way. */
        info.alpn = "http/1.1";
    }
    t->ctx = lws_create_context(&info);
    struct lws_vhost *vh = t->ctx ? lws_get_vhost_by_name(t->ctx, "default") : NULL;
    if (!vh || listener_start(t->listener, vh, info.ssl_cert_filepath != NULL) != 0) {
        snprintf(err, errlen, "cannot serve on %s%s", cfg->listen,
                 info.ssl_cert_filepath ? " (the TLS certificate and key do not load)" : "");
        if (t->ctx)
            lws_context_destroy(t->ctx);
        listener_free(t->listener);
        free(t);
        return NULL;
    }
    t->port = listener_port(t->listener);
    /* Before the "listening" line: a SIGTERM right after it must be a clean stop (it sets
     * stop_requested, and transport_run then returns at once), never the default death. */
    signal_ctx = t->ctx;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
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

    lws_sul_schedule(t->ctx, 0, &t->house_sul, house_cb, 1);
    while (!stop_requested && lws_service(t->ctx, 0) >= 0)
        ;

    /* Stop: commit what was acknowledged-to-be, then say goodbye to every WebSocket with a
     * close frame (lws_context_destroy would send none) and give clients a moment to take it. */
    KZ_INFO("shutdown", "connections=%zu", t->ws_count);
    listener_stop(t->listener);
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
    listener_free(t->listener);
    idmap_free(&t->conns);
    idmap_free(&t->by_user);
    peers_clear(t);
    free(t);
}
