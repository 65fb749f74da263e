/* http_api.c - HTTP requests on the API listener: routing, POST /api/v1/<op> (the same ops
 * as the WebSocket, one request per call), GET /healthz and /readyz (health.c), and for every
 * request a deadline on each phase and one request in flight per connection. Uploads and blobs are
 * uploads.c's, the web client's files (GET and HEAD outside /api/) http_static.c's, and who may
 * call the API from a browser http_policy.c's.
 */
#include "transport_int.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    static_reply_free(h->st);
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

int http_done(struct http_conn *h, struct lws *wsi)
{
    lws_sul_cancel(&h->watch);
    h->in_flight = false;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

int http_write_body(struct http_conn *h, struct lws *wsi, const unsigned char *mem, int64_t *pos,
                    int64_t end, size_t chunk)
{
    /* lws_write may use the LWS_PRE bytes before what it is given: copy into a buffer of our
     * own, never write from the caller's memory in place. */
    unsigned char buf[LWS_PRE + HTTP_BODY_CHUNK_MAX];
    int64_t want = end - *pos;
    if (chunk > HTTP_BODY_CHUNK_MAX)
        chunk = HTTP_BODY_CHUNK_MAX;
    if (want > (int64_t)chunk)
        want = (int64_t)chunk;
    ssize_t n = (ssize_t)want;
    if (mem)
        memcpy(buf + LWS_PRE, mem + *pos, (size_t)want);
    else if (want)
        n = pread(h->file_fd, buf + LWS_PRE, (size_t)want, *pos);
    if (n < 0 || (want && n == 0))
        return -1; /* the file shrank under us: cut, the length is promised */
    *pos += n;
    h->moved += n;
    bool last = *pos >= end;
    if (lws_write(wsi, buf + LWS_PRE, (size_t)n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) <
        (int)n)
        return -1;
    if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    return 1;
}

static void http_watch_cb(lws_sorted_usec_list_t *sul)
{
    struct http_conn *h = lws_container_of(sul, struct http_conn, watch);
    struct transport *t = transport_of(h->c.wsi);
    int64_t window = t->cfg->http_timeout_s, need = window * t->cfg->http_min_bytes_per_s;
    bool replying = h->resp || h->has_res || h->st;
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
    if (conn_register(t, &h->c, wsi, CONN_HTTP) != 0)
        return -1;
    lws_sul_schedule(t->ctx, 0, &h->watch, http_watch_cb,
                     (lws_usec_t)t->cfg->http_timeout_s * LWS_USEC_PER_SEC);
    if (!conn_http_admit(t, h->c.peer)) {
        http_reply_error(t, h, KZ_RATE_LIMITED,
                         "too many requests from your address: slow down and retry in 1 s");
        return 0;
    }
    bool is_post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
    bool is_get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
    bool is_head = lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0;
    bool ready = true;
    if (is_get && (strcmp(uri, "/healthz") == 0 || strcmp(uri, "/readyz") == 0)) {
        cJSON *o;
        if (uri[1] == 'r') {
            o = srv_readiness_json(t->srv, transport_stopping(), &ready);
        } else {
            o = cJSON_CreateObject();
            cJSON_AddTrueToObject(o, "ok");
            cJSON_AddStringToObject(o, "status", "serving");
            cJSON_AddStringToObject(o, "version", KZ_VERSION);
        }
        struct kz_frame *f = kz_frame_from_json(o, ready ? 200 : 503);
        cJSON_Delete(o);
        if (!f)
            return -1;
        h->resp = f;
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (is_get && strcmp(uri, "/metrics") == 0)
        return metrics_begin(t, h, wsi);
    if ((is_get || is_post) && strncmp(uri, "/answer/", 8) == 0) {
        /* A roll-call's one-tap answer from an e-mail or a push (mail.c): the op
         * notice.answer_link, through the same gate as every op, its reply shown as a small
         * page. A POST answers; so does a GET unless mail_answer_confirm, when it only shows
         * the button that POSTs (a link scanner GETs every link in a mail). */
        char c[8] = "";
        const char *token = uri + 8;
        if (strlen(token) > 64 ||
            strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                          "0123456789-_") != strlen(token)) {
            h->html = true;
            http_reply_error(t, h, KZ_NOT_FOUND, "this answer link is not valid");
            return 0;
        }
        const char *v = lws_get_urlarg_by_name(wsi, "c=", c, sizeof c); /* points into c */
        char *cend = NULL;
        long choice = v ? strtol(v, &cend, 10) : 0;
        if (!v || !v[0] || *cend || choice < 1 || choice > 20)
            choice = 0; /* the op refuses it in its own words */
        char clen[32] = "";
        if (is_post && lws_hdr_copy(wsi, clen, sizeof clen, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
            strtoll(clen, NULL, 10) != 0) {
            /* The button's form has no fields: a body is no answer's (and is discarded). */
            h->html = true;
            http_reply_error(t, h, KZ_BAD_REQUEST, "an answer is sent without a body");
            return 0;
        }
        char body[180];
        int n = snprintf(body, sizeof body, "{\"token\":\"%s\",\"choice\":%ld%s}", token, choice,
                         is_get && t->cfg->mail_answer_confirm ? ",\"preview\":true" : "");
        h->html = true;
        srv_handle_http(t->srv, h->c.id, "notice.answer_link", "", h->c.peer, body, (size_t)n);
        return 0;
    }
    if (strncmp(uri, API_PREFIX, strlen(API_PREFIX)) != 0) {
        if (is_get || is_head)
            return static_begin(t, h, wsi, uri, is_head);
        http_reply_error(t, h, KZ_NOT_FOUND, "no such path");
        return 0;
    }
    if (!http_origin_allowed(t, wsi)) {
        http_reply_error(t, h, KZ_FORBIDDEN, "requests from another origin are refused");
        return 0;
    }
    if (strncmp(uri, UPLOADS_PATH, strlen(UPLOADS_PATH)) == 0 ||
        strncmp(uri, BLOBS_PREFIX, strlen(BLOBS_PREFIX)) == 0)
        return upload_begin(t, h, wsi, uri);
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
    if (len == 0)
        return 0; /* lws may call with nothing (a POST of Content-Length 0) */
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

/* Writes h's reply on WRITEABLE: headers and a JSON body at once, or headers and a blob's
 * first chunk (the rest follows on later WRITEABLEs). -1 closes; h may be freed (http_done). */
static int http_send(struct http_conn *h, struct lws *wsi)
{
    struct kz_frame *f = h->resp;
    if (h->st)
        return static_write(h, wsi);
    if (!h->has_res && !f)
        return 0; /* lws may call WRITEABLE with nothing to send */
    if (!h->headers_sent) {
        if (h->has_res) {
            if (upload_write_headers(h, wsi))
                return -1;
        } else {
            if (h->html) {
                struct kz_frame *page = srv_answer_page(f);
                if (!page)
                    return -1;
                kz_frame_unref(f);
                h->resp = f = page;
            }
            unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start,
                                               *end = buf + sizeof buf - 1;
            const char *type = h->resp_type ? h->resp_type
                               : h->html    ? "text/html; charset=utf-8"
                                            : "application/json";
            /* X-Request-Id: what the log's req= says of this request, to quote when asking the
             * operator about a refusal. */
            char req[24];
            int rn = snprintf(req, sizeof req, "%llx", (unsigned long long)f->req_id);
            if (lws_add_http_common_headers(wsi, (unsigned)f->http_status, type, f->len, &p, end) ||
                (f->req_id &&
                 lws_add_http_header_by_name(wsi, (const unsigned char *)"x-request-id:",
                                             (const unsigned char *)req, rn, &p, end)) ||
                (h->html &&
                 lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                             (const unsigned char *)"no-store", 8, &p, end)) ||
                http_policy_headers(wsi, &p, end) ||
                lws_finalize_write_http_header(wsi, start, &p, end))
                return -1;
            h->headers_sent = true;
        }
    }
    if (h->has_res && h->file_fd >= 0 && !h->no_body)
        return upload_write_chunk(h, wsi);
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

int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len)
{
    struct transport *t = transport_of(wsi);
    struct http_conn *h = user;
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        /* A worker finished, the syncer made commits durable, or a signal asked us to stop
         * (lws_cancel_service). */
        if (t && t->workers)
            kz_workers_drain(t->workers);
        if (t && t->srv)
            srv_push_drain(t->srv); /* a post to a push service finished */
        if (t && t->srv)
            srv_release(t->srv);
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        /* Came in on another listener (the federation port), moved here by its Host header. */
        return t && listener_foreign(t->listener, wsi) ? -1 : 0;
    case LWS_CALLBACK_HTTP: {
        if (t && listener_foreign(t->listener, wsi))
            return -1;
        if (h->in_flight)
            return http_send_last(h, wsi); /* a request behind one still in flight */
        if (h->c.id)
            conn_unregister(t, &h->c);
        if (http_begin(t, h, wsi, in) != 0)
            return -1;
        http_files_sync(t, h); /* a blob or an upload opened; http_reset lets it go */
        h->in_flight = true;
        char clen[32] = "";
        bool has_len = lws_hdr_copy(wsi, clen, sizeof clen, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0;
        if (!has_len || strtoll(clen, NULL, 10) <= 0) {
            http_hold(h); /* no body follows: the request is whole */
            h->empty_post = has_len && lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
        }
        return 0;
    }
    case LWS_CALLBACK_HTTP_BODY:
        return http_body(h, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (!h->in_flight)
            return -1;       /* lws re-serving pipelined bytes after a finished transaction */
        if (h->empty_post) { /* the end of its empty body, not a pipelined request */
            h->empty_post = false;
            return 0;
        }
        if (h->body_done)
            return http_send_last(h, wsi); /* ... or while one is in flight */
        http_hold(h);
        if (h->patch) {
            struct srv_patch *p = h->patch;
            struct srv_http_result r;
            h->patch = NULL;
            srv_upload_patch_end(p, &r);
            upload_reply(h, &r);
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

void http_deliver(struct http_conn *h, struct kz_frame *f)
{
    if (h->resp)
        return;
    h->resp = kz_frame_ref(f);
    lws_callback_on_writable(h->c.wsi);
}
