/* fed_int.h - what the two files of federation's links share, and nothing else includes:
 * fed_link.c (one link: its handshake, frames and end) and fed_peers.c (the pinned peers, the
 * federation listener, dialling and backoff, status). transport_int.h declares what the rest of
 * the transport calls (fed_open ... fed_free). Event loop thread only.
 */
#ifndef KIZUNA_FED_INT_H
#define KIZUNA_FED_INT_H

#include "fed.h"
#include "store_fed.h"
#include "transport_int.h"

#define BACKOFF_MIN_MS      1000
#define BACKOFF_MAX_MS      60000
#define HANDSHAKE_FRAME_MAX 4096 /* bytes a frame may have before the other side is known */
#define RX_CHUNK            4096 /* lws's receive buffer per link; larger frames come in pieces */
#define OUT_FRAME_MAX       512  /* HELLO and AUTH are far smaller */
/* The federation vhost's name, and the Host header links must send: lws 4.1 moves a request
 * to the vhost its Host names, else to the API's (listener_foreign). */
#define FED_VHOST "kizuna-federation"

/* Close codes (docs/protocol.md, "Server to server"). */
#define CLOSE_PROTOCOL 1002 /* malformed, out of turn, unknown type, wrong version */
#define CLOSE_DATA     1003 /* binary frame */
#define CLOSE_TOO_BIG  1009
#define CLOSE_AWAY     1001 /* shutdown, peer removed */
#define CLOSE_UNKNOWN                                                                              \
    4401 /* the HELLO names a server that is not pinned (or not the one dialled) */
#define CLOSE_BAD_SIG   4403 /* the AUTH does not verify under the pinned key */
#define CLOSE_DUPLICATE 4409 /* another link to the same peer is kept */

enum link_state { LINK_HELLO, LINK_AUTH, LINK_UP };

struct fed_peer {
    char id[STORE_SERVER_ID_MAX + 1];
    uint8_t key[FED_KEY_BYTES];
    int naddr;
    char addr[STORE_PEER_ADDRS_MAX][STORE_PEER_ADDR_MAX + 1];
    char tls_pin[STORE_PEER_PIN_MAX + 1];
    struct fed_links *f;
    struct fed_link *link; /* the authenticated link, or NULL */
    struct fed_link *dial; /* this server's attempt in progress, until it is up or gone */
    int failures;          /* rounds over every address failed since the last contact */
    int addr_i;            /* the address the next attempt dials */
    int64_t backoff_ms;    /* the wait before the planned attempt */
    int64_t next_dial_at;  /* wall clock ms of the planned attempt, 0: none */
    int64_t since;         /* connected since, or disconnected since (0: never connected) */
    int64_t last_contact;  /* the last authenticated frame from the peer */
    bool outbound;         /* the current (or last) link was dialled by this server */
    bool ever_up;
    char last_error[192];
    int64_t skew_ms; /* the peer's clock minus this one's, from its last HELLO */
    bool skew_alarm;
    bool seen; /* still pinned (fed_reload) */
    lws_sorted_usec_list_t dial_sul;
    struct fed_peer *next;
};

struct fed_link {
    struct fed_links *f; /* NULL: no link (the zeroed data of an HTTP request on the port) */
    struct lws *wsi;
    struct fed_peer *peer; /* dialled, or named by the HELLO; NULL once detached */
    bool outbound, tls, gone;
    bool peer_closed;  /* the other end sent a close frame (its reason is the peer's error) */
    bool refused;      /* this side refused the connection and already said why */
    bool announced;    /* the core was told this link is up (srv_fed_link_up), not yet down */
    bool send_refused; /* fed_send refused a frame: srv_fed_writable once below half */
    enum link_state state;
    uint8_t my_nonce[FED_NONCE_BYTES], their_nonce[FED_NONCE_BYTES];
    char their_id[STORE_SERVER_ID_MAX + 1];
    char addr[STORE_PEER_ADDR_MAX + 1]; /* the other end, for logs */
    unsigned char *rx;                  /* a frame arriving in pieces */
    size_t rx_len;
    int64_t opened_ms;             /* when the WebSocket came up (conn_mono_ms) */
    struct qnode *q_head, *q_tail; /* frames to send, in order: HELLO, AUTH, the core's */
    size_t q_bytes;                /* their payload bytes */
    int close_code;
    char close_reason[120];
    struct fed_link *prev, *next; /* every established link */
};

struct fed_links {
    struct transport *t;
    struct kz_listener *listener;
    struct lws_vhost *vh;
    bool tls, started, stopping;
    struct fed_peer *peers;
    struct fed_link *links;
    lws_sorted_usec_list_t reload_sul;
    lws_retry_bo_t idle; /* ping and hang-up times (federation_ping_s, _hangup_s) */
};

/* fed_peers.c */
/* The pinned peer with this id, or NULL. */
struct fed_peer *fed_peer_find(struct fed_links *f, const char *id);
/* Records why the peer's last link or attempt ended (peer.list's last_error). */
void fed_peer_error(struct fed_peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Plans the peer's next dial in delay_ms, unless it has a link or an attempt under way. */
void fed_plan_dial(struct fed_peer *p, int64_t delay_ms);

/* fed_link.c */
/* Closes l from anywhere: at its next WRITEABLE, with this code and reason (logged, once). */
void fed_link_close(struct fed_link *l, int code, const char *reason);
/* Takes l off its peer without planning anything (a duplicate, a removed peer); if it was the
 * peer's current link, it is logged down with why and the core told (srv_fed_link_down). */
void fed_link_detach(struct fed_link *l, const char *why);
/* Queues f (a reference is taken) on l, an up link. false: l is closing, or its queue would
 * go over federation_queue_bytes (then srv_fed_writable follows once it is below half). */
bool fed_link_send(struct fed_link *l, struct kz_frame *f);
/* The end of l, whatever ended it; plans the peer's next attempt. Idempotent. */
void fed_link_gone(struct fed_link *l);
/* The callback of every protocol of the federation vhost. */
int fed_link_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                      size_t len);

#endif
