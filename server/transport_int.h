/* transport_int.h - what the files of the transport layer share, and nothing else includes.
 *
 * The transport is libwebsockets behind the core's struct srv_transport (transport.h). Its
 * files, one job each:
 *   listener.c   binding, accepting, and who may connect (per address, in total, descriptors)
 *   conn.c       the connection registry (ids the core knows) and per-address request rates
 *   ws.c         the WebSocket at /api/v1/ws: framing, per-connection queues, delivery
 *   http_api.c   HTTP requests: routing, POST /api/v1/<op>, /healthz, /readyz, deadlines,
 *                pipelining
 *   uploads.c    resumable uploads (tus) and blob downloads over HTTP
 *   http_static.c the web client's files: paths, types, ETags, gzip, streaming
 *   http_metrics.c GET /metrics: who may read it, the transport's gauges, the core's (metrics.c)
 *   http_policy.c security headers on every reply, and the API's same-origin rule
 *   fed_peers.c  federation: its listener's vhost, the pinned peers, dialling, backoff, status
 *   fed_link.c   one federation link: its signed handshake, frames, duplicates, end (fed_int.h)
 *   transport.c  life cycle: the lws context, its listeners, timers, signals, shutdown; and the
 *                functions the core calls (struct srv_transport)
 * Connections are known to the core by a 64-bit id, never by pointer: a reply that arrives
 * after its connection closed finds no id and is dropped (pitfall 5 of research section 2.11).
 * Everything here runs on the event loop's thread.
 */
#ifndef KIZUNA_TRANSPORT_INT_H
#define KIZUNA_TRANSPORT_INT_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stdint.h>

#include "idmap.h"
#include "listener.h"
#include "transport.h"

#define WS_PATH        "/api/v1/ws"
#define API_PREFIX     "/api/v1/"
#define UPLOADS_PATH   "/api/v1/uploads"
#define BLOBS_PREFIX   "/api/v1/blobs/"
#define COALESCE_BYTES 65536 /* most bytes ws.c gathers into one write */

/* A token bucket: `tokens` requests may go now; it refills at requests_per_second. */
struct bucket {
    double tokens;
    int64_t at_ms;
};

/* What a connection serves. */
enum conn_kind {
    CONN_WS,   /* the API WebSocket (struct ws_conn) */
    CONN_HTTP, /* HTTP requests: ops, uploads, blobs, /healthz (struct http_conn) */
};

/* Common head of every kind of per-connection data. */
struct conn {
    uint64_t id; /* 0 while not registered */
    struct lws *wsi;
    enum conn_kind kind;
    char peer[STORE_ADDR_MAX + 1];
};

struct qnode {
    struct kz_frame *frame;
    struct qnode *next;
};

struct ws_conn {
    struct conn c;
    int64_t session_id, user_id;
    unsigned char *rx; /* a request arriving in pieces, only until it is whole (ws.c) */
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
    const char *resp_type; /* resp's Content-Type (static; NULL: application/json) */
    bool headers_sent;
    bool close_after; /* the request was refused before its body was read */
    /* Uploads and blobs (uploads.c): */
    struct srv_patch *patch;    /* a PATCH whose body streams into an upload */
    struct srv_http_result res; /* the tus headers of the reply (has_res) */
    bool has_res;
    bool no_body; /* HEAD, 204 */
    bool html;    /* GET /answer/...: the op's JSON reply goes out as a page (srv_answer_page) */
    int file_fd;  /* a blob being sent (-1: none): bytes [file_pos, file_end) */
    int64_t file_pos, file_end, file_size;
    bool partial; /* a Range reply (206) */
    /* Deadlines (http_api.c): each window of http_timeout_s the request must move its body
     * in or its reply out at http_min_bytes_per_s, unless the core is still working. */
    lws_sorted_usec_list_t watch;
    int64_t moved;    /* bytes in or out since the window began */
    int64_t received; /* body bytes so far */
    bool in_flight;   /* between the request's headers and the end of its reply */
    bool holds_file;  /* counted in listener_files (http_files_sync) */
    bool body_done;   /* the whole request is in: the reply is the server's move */
    bool empty_post;  /* a POST of Content-Length 0: lws still calls BODY_COMPLETION once */
    /* A web client file being sent (http_static.c), or NULL. */
    struct static_reply *st;
};

struct transport {
    struct lws_context *ctx;
    struct kz_listener *listener; /* the API listener (listen, tls_cert_file) */
    struct fed_links *fed;        /* federation (fed_peers.c), NULL when federation_listen is "" */
    const struct kz_config *cfg;
    struct srv *srv;
    struct kz_workers *workers;
    struct web_root *web; /* the web client's files (http_static.c) */
    struct idmap conns;   /* connection id -> struct conn */
    struct idmap by_user; /* user id -> first ws_conn of that user (linked by user_next) */
    struct idmap peers;   /* hash of a client address -> struct peer (conn.c) */
    uint64_t next_id;
    struct ws_conn *ws_list;
    size_t ws_count;
    lws_sorted_usec_list_t commit_sul;
    lws_sorted_usec_list_t tick_sul;
    lws_sorted_usec_list_t house_sul;
    lws_sorted_usec_list_t blob_sul; /* blob fetches across servers (srv_fed_blobs_tick) */
    lws_sorted_usec_list_t push_sul; /* Web Push's sends (srv_push_tick) */
    lws_sorted_usec_list_t jma_sul;  /* JMA's feeds and alerts (srv_jma_tick) */
    lws_sorted_usec_list_t deadline_sul;
    lws_sorted_usec_list_t watchdog_sul; /* systemd's watchdog, pinged from the loop */
    int64_t watchdog_us;                 /* its interval (0: none asked for) */
    void (*reload)(void *arg);           /* SIGHUP (transport_on_reload) */
    void *reload_arg;
    bool deadline_passed;
    int port;
    unsigned char scratch[LWS_PRE + COALESCE_BYTES]; /* ws.c's gathering buffer */
    unsigned char *rx; /* ws.c: the request being handed to the core, when it came whole */
    size_t rx_cap;
};

/* transport.c */
struct transport *transport_of(struct lws *wsi);
/* True once SIGTERM or SIGINT arrived: new WebSockets are refused. */
bool transport_stopping(void);

/* conn.c */
int64_t conn_mono_ms(void);
/* Takes one request from the bucket; false if it is empty (the caller answers rate_limited). */
bool conn_bucket_take(const struct kz_config *cfg, struct bucket *b);
/* Takes one HTTP request from the client address's bucket; false: answer rate_limited. */
bool conn_http_admit(struct transport *t, const char *addr);
void conn_peers_free(struct transport *t);
/* Gives c an id the core can name it by; -1 if out of memory. */
int conn_register(struct transport *t, struct conn *c, struct lws *wsi, enum conn_kind kind);
void conn_unregister(struct transport *t, struct conn *c);
/* The connection with this id and kind, or NULL (closed, or another kind). */
struct conn *conn_find(struct transport *t, uint64_t id, enum conn_kind kind);

/* ws.c */
int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                size_t len);
/* Queues f (a reference is taken) behind the rest, or ahead of it (front). */
void ws_enqueue(struct transport *t, struct ws_conn *w, struct kz_frame *f, bool front);
/* Closes w with code and reason, at once or once its queue has gone out. */
void ws_close(struct ws_conn *w, int code, const char *reason, bool after_drain);
void ws_user_unlink(struct transport *t, struct ws_conn *w);
int ws_user_link(struct transport *t, struct ws_conn *w, int64_t user_id, int64_t session_id);
/* The core's srv_transport calls for WebSockets (transport.h says what each means). */
void ws_bind(struct transport *t, uint64_t conn_id, int64_t session_id, int64_t user_id);
void ws_subscribe(struct transport *t, uint64_t conn_id, int64_t pos);
void ws_push(struct transport *t, int64_t user_id, int64_t pos, struct kz_frame *f);
void ws_alert(struct transport *t, int64_t user_id, struct kz_frame *f);
void ws_pause(struct transport *t, uint64_t conn_id, bool paused);
void ws_close_matching(struct transport *t, const struct srv_close *which);
/* Shutdown: every WebSocket gets a going-away close frame once its queue is out. */
void ws_goodbye_all(struct transport *t);

/* http_api.c */
int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len);
/* The core's reply to h's request (a reference is taken); ignored if h already has one. */
void http_deliver(struct http_conn *h, struct kz_frame *f);
/* The reply is out: completes the HTTP transaction. lws may free h. -1: close. */
int http_done(struct http_conn *h, struct lws *wsi);
/* Writes the next piece of a reply's body, [*pos, end): at most chunk bytes (capped at
 * HTTP_BODY_CHUNK_MAX), copied from mem (the whole body, indexed by *pos) or, mem NULL, read from
 * h->file_fd at *pos. Advances *pos and counts h->moved. 1: that was the last piece (the caller
 * completes the transaction); 0: more to come, WRITEABLE is asked for; -1: close. */
#define HTTP_BODY_CHUNK_MAX 32768
int http_write_body(struct http_conn *h, struct lws *wsi, const unsigned char *mem, int64_t *pos,
                    int64_t end, size_t chunk);

/* http_metrics.c */
/* Serves GET /metrics (loopback, or the metrics_token bearer): the reply, or a refusal, is
 * queued on h. -1: out of memory, close. */
int metrics_begin(struct transport *t, struct http_conn *h, struct lws *wsi);
/* The connections now (srv_transport's conn_stats). */
void transport_conn_stats(struct transport *t, struct srv_conn_stats *out);

/* http_static.c */
/* Finds the web client's directory (web_root, else kz_web_root_default) at start; -1 with a
 * message only when an explicit web_root is not a directory. */
int static_open(struct transport *t, char *err, size_t errlen);
void static_close(struct transport *t);
/* The directory served when web_root is empty (a string constant: the caller owns nothing). */
const char *kz_web_root_default(void);
/* Serves a GET or HEAD of uri (outside /api/); the reply (or a 404) is queued on h. */
int static_begin(struct transport *t, struct http_conn *h, struct lws *wsi, const char *uri,
                 bool head);
/* Writes h's static reply on WRITEABLE: headers, then one chunk a call; completes the
 * transaction after the last (h may be freed). -1 closes. */
int static_write(struct http_conn *h, struct lws *wsi);
void static_reply_free(struct static_reply *r);

/* http_policy.c */
/* Adds the headers every reply carries (Content-Security-Policy, nosniff, ...). -1: no room. */
int http_policy_headers(struct lws *wsi, unsigned char **p, unsigned char *end);
/* False (and logs) when the request has an Origin header that is not its own origin (this
 * listener's scheme and the Host it was sent to) nor public_origin: refuse it. */
bool http_origin_allowed(struct transport *t, struct lws *wsi);

/* fed_peers.c */
/* Binds federation_listen if set (refusing plain WebSocket off loopback); before the context. */
int fed_open(struct transport *t, char *err, size_t errlen);
/* Creates the federation vhost and starts accepting on it; once the context exists. */
int fed_start(struct transport *t, char *err, size_t errlen);
/* The federation listener's port (0: federation is off). */
int fed_port(const struct transport *t);
/* Reads the pinned peers and dials them (the core and its identity are set by now). */
void fed_begin(struct transport *t);
/* The pinned peers changed (peer.add, peer.remove): read them again at the next turn. */
void fed_peers_changed(struct transport *t);
/* Queues f (a reference is taken) on the up link to peer_id; false: none is up, or its queue
 * is full (srv_transport's fed_send). */
bool fed_send(struct transport *t, const char *peer_id, struct kz_frame *f);
/* A peer's link as peer.list shows it (the caller owns the result). */
bool fed_peer_status(struct transport *t, const char *server_id, struct srv_link_status *out);
/* Shutdown: no more dials or accepts; every link gets a close frame. Idempotent. */
void fed_stop(struct transport *t);
/* After the lws context is destroyed. */
void fed_free(struct transport *t);

/* uploads.c */
/* Serves a request under UPLOADS_PATH or BLOBS_PREFIX; its reply is queued on h. */
int upload_begin(struct transport *t, struct http_conn *h, struct lws *wsi, const char *uri);
/* Queues the reply for r: tus headers, and a small JSON body unless there must be none. */
void upload_reply(struct http_conn *h, const struct srv_http_result *r);
/* Writes the headers of an upload or blob reply. -1 on error. */
int upload_write_headers(struct http_conn *h, struct lws *wsi);
/* Writes the next chunk of a blob being sent; completes the transaction after the last. */
int upload_write_chunk(struct http_conn *h, struct lws *wsi);

#endif
