/* ws.c - the API WebSocket at /api/v1/ws: framing, per-connection queues, and delivery of
 * replies and events to the connections of a user.
 *
 * Every outgoing frame goes through a per-connection FIFO of shared, refcounted frames,
 * bounded in bytes (max_queue_bytes): a client that cannot keep up is closed and catches up on
 * resume, and never grows the server's memory. Exactly one lws_write per WRITEABLE callback,
 * gathering many small frames into it (ws_writeable).
 */
#include "metrics.h"
#include "transport_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

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

void ws_user_unlink(struct transport *t, struct ws_conn *w)
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

int ws_user_link(struct transport *t, struct ws_conn *w, int64_t user_id, int64_t session_id)
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

void ws_close(struct ws_conn *w, int code, const char *reason, bool after_drain)
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

/* front: ahead of everything queued. Safe, because each queued frame goes out whole in one
 * WRITEABLE: there is never a half-sent frame of ours at the head. */
void ws_enqueue(struct transport *t, struct ws_conn *w, struct kz_frame *f, bool front)
{
    if (w->close_code)
        return;
    /* A lone frame goes whatever its size (one reply larger than the queue is not a slow
     * consumer; pages are cut by bytes, ops_talk.c); behind others it must fit. */
    if (w->q_bytes > 0 && w->q_bytes + f->len > (size_t)t->cfg->max_queue_bytes) {
        KZ_WARN("slow_consumer", "conn=%llu queued=%zu", (unsigned long long)w->c.id, w->q_bytes);
        kz_metrics.slow_consumer_disconnects++;
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

/* A request that arrives in pieces is gathered in a buffer of its own, let go of once the
 * request is complete (or refused as too large). */
static void ws_rx_release(struct ws_conn *w)
{
    free(w->rx);
    w->rx = NULL;
    w->rx_cap = 0;
}

/* Appends a piece to *buf (capacity *cap), keeping room for the NUL the core's text gets.
 * Doubles from 1 KiB. -1: out of memory. */
static int ws_rx_append(unsigned char **buf, size_t *cap, size_t used, const void *in, size_t len)
{
    if (used + len + 1 > *cap) {
        size_t n = *cap ? *cap : 1024;
        while (n < used + len + 1)
            n *= 2;
        unsigned char *b = realloc(*buf, n);
        if (!b)
            return -1;
        *buf = b;
        *cap = n;
    }
    memcpy(*buf + used, in, len);
    return 0;
}

/* Hands each request to the core whole and NUL-terminated. Almost every request arrives in one
 * RECEIVE (lws delivers up to ws_rx_chunk_bytes at a time) and is copied into the transport's
 * one shared buffer, which only the request being handed over uses. Only a request split
 * across RECEIVEs (larger than the chunk, or cut by a read) gets a buffer of its own, freed
 * when it is complete. A buffer kept for each connection's whole life was 4 KiB of the 7.6 KiB
 * an idle connection cost (massif, 1,000 connections; docs/performance.md). */
static void ws_receive(struct transport *t, struct ws_conn *w, const void *in, size_t len)
{
    struct lws *wsi = w->c.wsi;
    bool last = lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi);
    if (!w->rx_in_message) {
        w->rx_in_message = true;
        w->rx_len = 0;
        w->rx_binary = lws_frame_is_binary(wsi);
        w->rx_overflow = false;
    }
    size_t max = (size_t)t->cfg->max_frame_bytes;
    bool whole = !w->rx_len && last; /* the request is this one piece */
    if (!w->rx_overflow && w->rx_len + len > max) {
        w->rx_overflow = true; /* keep reading to the end of the message, storing nothing */
        ws_rx_release(w);
    } else if (!w->rx_overflow) {
        int rc = whole ? ws_rx_append(&t->rx, &t->rx_cap, 0, in, len)
                       : ws_rx_append(&w->rx, &w->rx_cap, w->rx_len, in, len);
        if (rc != 0) {
            ws_rx_release(w);
            ws_close(w, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory", false);
            return;
        }
        w->rx_len += len;
    }
    if (!last)
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
    } else if (!conn_bucket_take(t->cfg, &w->rate)) {
        srv_send_error(t->srv, w->c.id, false, KZ_RATE_LIMITED,
                       "too many requests on this connection: slow down and retry in 1 s");
    } else {
        unsigned char *text = whole ? t->rx : w->rx;
        text[w->rx_len] = '\0';
        srv_handle_ws_text(t->srv, w->c.id, w->session_id, w->c.peer, (const char *)text,
                           w->rx_len);
    }
    ws_rx_release(w);
}

int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct transport *t = transport_of(wsi);
    struct ws_conn *w = user;
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
        char uri[64];
        /* Also refused: a page of another origin (http_policy.c). */
        if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0 ||
            strcmp(uri, WS_PATH) != 0 || listener_foreign(t->listener, wsi) ||
            !http_origin_allowed(t, wsi))
            return 1; /* nonzero refuses the upgrade */
        if (transport_stopping()) {
            KZ_WARN("connection_refused", "reason=shutting_down");
            return 1;
        }
        return 0;
    }
    case LWS_CALLBACK_ESTABLISHED: {
        memset(w, 0, sizeof *w);
        if (conn_register(t, &w->c, wsi, CONN_WS) != 0)
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
        ws_user_unlink(t, w);
        if (w->prev)
            w->prev->next = w->next;
        else
            t->ws_list = w->next;
        if (w->next)
            w->next->prev = w->prev;
        t->ws_count--;
        ws_queue_clear(w);
        ws_rx_release(w);
        return 0;
    default:
        return 0;
    }
}

/* ---- what the core asks of WebSocket connections (through transport.c) ---- */

void ws_bind(struct transport *t, uint64_t conn_id, int64_t session_id, int64_t user_id)
{
    struct ws_conn *w = (struct ws_conn *)conn_find(t, conn_id, CONN_WS);
    if (!w)
        return;
    ws_user_unlink(t, w);
    lws_set_timeout(w->c.wsi, user_id ? NO_PENDING_TIMEOUT : PENDING_TIMEOUT_USER_OK,
                    user_id ? 0 : (int)t->cfg->ws_login_timeout_s);
    if (user_id && ws_user_link(t, w, user_id, session_id) != 0)
        ws_close(w, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory", false);
}

void ws_subscribe(struct transport *t, uint64_t conn_id, int64_t pos)
{
    struct ws_conn *w = (struct ws_conn *)conn_find(t, conn_id, CONN_WS);
    if (!w || !w->user_id)
        return;
    w->subscribed = true;
    w->sub_pos = pos;
}

void ws_push(struct transport *t, int64_t user_id, int64_t pos, struct kz_frame *f)
{
    for (struct ws_conn *w = idmap_get(&t->by_user, (uint64_t)user_id), *next; w; w = next) {
        next = w->user_next; /* ws_enqueue may close w, which does not unlink it yet */
        if (!w->subscribed || (pos && pos <= w->sub_pos))
            continue;
        if (pos) {
            w->sub_pos = pos;
            kz_metrics.events_delivered++;
        }
        ws_enqueue(t, w, f, false);
    }
}

void ws_alert(struct transport *t, int64_t user_id, struct kz_frame *f)
{
    for (struct ws_conn *w = idmap_get(&t->by_user, (uint64_t)user_id), *next; w; w = next) {
        next = w->user_next;
        if (w->subscribed)
            ws_enqueue(t, w, f, true);
    }
}

void ws_pause(struct transport *t, uint64_t conn_id, bool paused)
{
    struct conn *c = conn_find(t, conn_id, CONN_WS);
    if (c)
        lws_rx_flow_control(c->wsi, paused ? 0 : 1);
}

void ws_close_matching(struct transport *t, const struct srv_close *which)
{
    for (struct ws_conn *w = t->ws_list; w; w = w->next) {
        if ((which->conn_id && w->c.id != which->conn_id) ||
            (which->user_id && w->user_id != which->user_id) || w->c.id == which->except_conn)
            continue;
        if (which->session_id && w->session_id != which->session_id)
            continue;
        if (which->keep_session_id && w->session_id == which->keep_session_id)
            continue;
        ws_user_unlink(t, w);
        ws_close(w,
                 which->user_id ? LWS_CLOSE_STATUS_POLICY_VIOLATION
                                : LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
                 which->reason, false);
    }
}

void ws_goodbye_all(struct transport *t)
{
    for (struct ws_conn *w = t->ws_list; w; w = w->next)
        ws_close(w, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down", true);
}
