/* fed_link.c - one federation link: a WebSocket (subprotocol kizuna.fed.v1) to or from a peer
 * server, its signed handshake, the frames it carries, its queue, and its end. fed_peers.c owns
 * the peers, dials them and sets up the listener; fed_int.h has the structures both share.
 *
 * Each side sends HELLO {v, server, nonce, time}, then AUTH, its server key's signature over both
 * ids and both nonces (fed_hello.c); the link is up once the other side's AUTH verifies under the
 * key pinned for the id its HELLO named. Nothing but those two frames is accepted before that.
 * Every byte from a peer is hostile: a frame that is not text, too large (4 KiB before the
 * handshake, federation_max_frame_bytes after), not JSON, of a type the table below does not
 * know, or out of turn closes the link with a logged reason. A handshake not done within
 * federation_handshake_timeout_s is closed by lws's own per-connection timeout.
 *
 * After the handshake every frame whose "t" (which must be its first member) is not hello or
 * auth belongs to replication: its whole text, NUL-terminated, goes to the core (srv_fed_frame,
 * fed_sync.c), which parses and judges it, and the link closes with 1002 and the core's reason
 * only when the core says the frame is malformed. The transport reads just the type, so a frame
 * of up to federation_max_frame_bytes is parsed once, by the core, not twice.
 *
 * The core tells the link's story per peer: srv_fed_link_up once a link is up and kept (after
 * the duplicate check below), srv_fed_link_down once when that link ends or is replaced; a link
 * closed as a duplicate of the kept one says nothing. Outgoing frames (HELLO, AUTH, then the
 * core's, fed_send) wait in one FIFO of shared, refcounted kz_frames, one frame per lws_write.
 * The core's are bounded by federation_queue_bytes: fed_send refuses past it, and once the
 * queue is below half, srv_fed_writable says so (once per refusal). A slow peer thus holds at
 * most that much of this server's memory, and the core resends from its cursors instead.
 *
 * Two servers may dial each other at once: of two live links to one peer, the one dialled by the
 * lower server id (strcmp) is kept and the other closed, the same choice on both sides.
 *
 * A struct fed_link is the lws per-session data of an accepted link, and a malloc'd block handed
 * to lws as the user data of a dialled one (freed at its LWS_CALLBACK_WSI_DESTROY, the last
 * callback any wsi gets). Everything runs on the event loop's thread.
 */
#include "fed_int.h"
#include "tls_pin.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ---- */

/* An id from a HELLO, before it is looked up: printable ASCII without quotes, backslashes or
 * spaces, so that it can go into a log line as it is (a peer's id is far stricter still). */
static bool id_printable(const char *id)
{
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '\\')
            return false;
    return true;
}

/* The id of the server that dialled l. */
static const char *dialer_id(const struct fed_link *l, const char *me)
{
    return l->outbound ? me : l->their_id;
}

static const char *acceptor_id(const struct fed_link *l, const char *me)
{
    return l->outbound ? l->their_id : me;
}

/* ---- the queue ---- */

static void link_enqueue(struct fed_link *l, struct kz_frame *f)
{
    struct qnode *n = malloc(sizeof *n);
    if (!n) {
        fed_link_close(l, 1011, "out of memory");
        return;
    }
    n->frame = kz_frame_ref(f);
    n->next = NULL;
    if (l->q_tail)
        l->q_tail->next = n;
    else
        l->q_head = n;
    l->q_tail = n;
    l->q_bytes += f->len;
    lws_callback_on_writable(l->wsi);
}

static void link_dequeue(struct fed_link *l)
{
    struct qnode *n = l->q_head;
    l->q_head = n->next;
    if (!l->q_head)
        l->q_tail = NULL;
    l->q_bytes -= n->frame->len;
    kz_frame_unref(n->frame);
    free(n);
}

static void link_queue_clear(struct fed_link *l)
{
    while (l->q_head)
        link_dequeue(l);
}

/* Queues HELLO or AUTH: outside the bound, they are a few hundred bytes. */
static void link_send_text(struct fed_link *l, const char *text)
{
    struct kz_frame *f = kz_frame_from_text(text, strlen(text), 0);
    if (!f) {
        fed_link_close(l, 1011, "out of memory");
        return;
    }
    link_enqueue(l, f);
    kz_frame_unref(f);
}

bool fed_link_send(struct fed_link *l, struct kz_frame *f)
{
    if (l->close_code || l->gone || l->state != LINK_UP)
        return false;
    /* An empty queue takes any frame, so a frame larger than the bound still goes. */
    size_t max = (size_t)l->f->t->cfg->federation_queue_bytes;
    if (l->q_head && l->q_bytes + f->len > max) {
        if (!l->send_refused)
            KZ_DEBUG("fed_queue_full", "peer=%s queued=%zu", l->their_id, l->q_bytes);
        l->send_refused = true;
        return false;
    }
    link_enqueue(l, f);
    return !l->close_code;
}

/* Closes l from anywhere: at its next WRITEABLE, with this code and reason in the close frame.
 * The reason is logged here, once. */
void fed_link_close(struct fed_link *l, int code, const char *reason)
{
    if (l->close_code)
        return;
    l->close_code = code;
    snprintf(l->close_reason, sizeof l->close_reason, "%s", reason);
    KZ_INFO("fed_link_close", "peer=%s addr=%s direction=%s code=%d reason=\"%s\"",
            l->their_id[0] ? l->their_id : "?", l->addr, l->outbound ? "out" : "in", code, reason);
    if (l->peer)
        fed_peer_error(l->peer, "%s", reason);
    lws_callback_on_writable(l->wsi);
}

/* The same from inside l's own callback: returns what that callback must return. */
static int link_fail(struct fed_link *l, int code, const char *reason)
{
    fed_link_close(l, code, reason);
    lws_close_reason(l->wsi, (enum lws_close_status)code, (unsigned char *)l->close_reason,
                     strlen(l->close_reason));
    return -1;
}

/* Takes l off its peer without scheduling anything (a duplicate, a removed peer). If l was the
 * peer's current link, it is down: logged with why, and the core told (srv_fed_link_down) after
 * l is off the peer, so a fed_send from inside finds no link. */
void fed_link_detach(struct fed_link *l, const char *why)
{
    struct fed_peer *p = l->peer;
    if (!p)
        return;
    bool was_current = p->link == l;
    if (p->link == l)
        p->link = NULL;
    if (p->dial == l)
        p->dial = NULL;
    l->peer = NULL;
    if (was_current && l->announced) {
        l->announced = false;
        KZ_INFO("fed_link_down", "peer=%s direction=%s reason=\"%s\"", p->id,
                l->outbound ? "out" : "in", why);
        srv_fed_link_down(l->f->t->srv, p->id);
    }
}

/* ---- the handshake ---- */

static void send_hello(struct fed_link *l)
{
    struct srv_origin me = srv_origin_local(l->f->t->srv);
    randombytes_buf(l->my_nonce, sizeof l->my_nonce);
    char nonce[FED_NONCE_B64LEN + 1], text[OUT_FRAME_MAX];
    sodium_bin2base64(nonce, sizeof nonce, l->my_nonce, sizeof l->my_nonce,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(text, sizeof text,
             "{\"t\":\"hello\",\"v\":%d,\"server\":\"%s\",\"nonce\":\"%s\",\"time\":%lld}",
             FED_HELLO_VERSION, me.name, nonce, (long long)kz_now_ms());
    link_send_text(l, text);
    lws_set_timeout(l->wsi, PENDING_TIMEOUT_USER_OK,
                    (int)l->f->t->cfg->federation_handshake_timeout_s);
}

static int on_hello(struct fed_link *l, const cJSON *j)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "v");
    const cJSON *server = cJSON_GetObjectItemCaseSensitive(j, "server");
    const cJSON *nonce = cJSON_GetObjectItemCaseSensitive(j, "nonce");
    const cJSON *time = cJSON_GetObjectItemCaseSensitive(j, "time");
    if (!cJSON_IsNumber(v) ||
        !(v->valuedouble >= FED_HELLO_VERSION && v->valuedouble <= FED_HELLO_VERSION))
        return link_fail(l, CLOSE_PROTOCOL, "unsupported version: this server speaks v1");
    if (!cJSON_IsString(server) || !server->valuestring[0] ||
        strlen(server->valuestring) > STORE_SERVER_ID_MAX || !id_printable(server->valuestring) ||
        !cJSON_IsString(nonce) ||
        !fed_b64url_decode(nonce->valuestring, l->their_nonce, sizeof l->their_nonce) ||
        !cJSON_IsNumber(time) || !(time->valuedouble >= 0 && time->valuedouble < 1e15))
        return link_fail(l, CLOSE_PROTOCOL, "malformed hello");
    struct fed_links *f = l->f;
    struct srv_origin me = srv_origin_local(f->t->srv);
    snprintf(l->their_id, sizeof l->their_id, "%s", server->valuestring);
    if (l->outbound) {
        if (!l->peer || strcmp(l->peer->id, l->their_id) != 0)
            return link_fail(l, CLOSE_UNKNOWN, "the server at this address is not the one dialled");
    } else {
        struct fed_peer *p = fed_peer_find(f, l->their_id);
        if (!p || strcmp(l->their_id, me.name) == 0) {
            KZ_WARN("fed_unknown_server", "server=\"%s\" addr=%s", l->their_id, l->addr);
            return link_fail(l, CLOSE_UNKNOWN, "unknown server: not pinned here");
        }
        l->peer = p;
    }
    int64_t skew = (int64_t)time->valuedouble - kz_now_ms();
    l->peer->skew_ms = skew;
    bool alarm = skew > FED_SKEW_ALARM_MS || skew < -FED_SKEW_ALARM_MS;
    if (alarm)
        KZ_WARN("fed_clock_skew", "peer=%s skew_ms=%lld limit_ms=%d", l->their_id, (long long)skew,
                FED_SKEW_ALARM_MS);
    l->peer->skew_alarm = alarm;
    uint8_t sig[FED_SIG_BYTES];
    if (fed_hello_sign(l->outbound ? FED_SIGNER_DIALER : FED_SIGNER_ACCEPTOR, dialer_id(l, me.name),
                       l->outbound ? l->my_nonce : l->their_nonce, acceptor_id(l, me.name),
                       l->outbound ? l->their_nonce : l->my_nonce, me.sk, sig) != 0)
        return link_fail(l, CLOSE_PROTOCOL, "cannot sign");
    char b64[FED_SIG_B64LEN + 1], text[OUT_FRAME_MAX];
    sodium_bin2base64(b64, sizeof b64, sig, sizeof sig, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(text, sizeof text, "{\"t\":\"auth\",\"sig\":\"%s\"}", b64);
    link_send_text(l, text);
    l->state = LINK_AUTH;
    return 0;
}

/* l is authenticated: it becomes its peer's link, unless the peer has one that wins. The core
 * hears of the kept link only: a replaced one is down first (fed_link_detach), then the new one
 * is up; a losing new one says nothing. */
static void link_up(struct fed_link *l)
{
    struct fed_links *f = l->f;
    struct fed_peer *p = l->peer;
    const char *me = srv_origin_local(f->t->srv).name;
    lws_set_timeout(l->wsi, NO_PENDING_TIMEOUT, 0);
    l->state = LINK_UP;
    if (p->dial == l)
        p->dial = NULL;
    struct fed_link *old = p->link;
    if (old) {
        /* Dialled the same way: the newer one (the peer would not dial again over a link it
         * still had). Crossed: the one dialled by the lower id, on both sides alike. */
        bool keep_new =
            old->outbound == l->outbound || strcmp(dialer_id(l, me), dialer_id(old, me)) < 0;
        struct fed_link *loser = keep_new ? old : l;
        const char *why = keep_new && old->outbound == l->outbound
                              ? "replaced by a newer link"
                              : "duplicate link: the one dialled by the lower server id is kept";
        fed_link_detach(loser, why);
        fed_link_close(loser, CLOSE_DUPLICATE, why);
        if (!keep_new)
            return;
    }
    p->link = l;
    p->outbound = l->outbound;
    p->since = p->last_contact = kz_now_ms();
    p->ever_up = true;
    p->failures = 0;
    p->addr_i = 0;
    p->next_dial_at = 0;
    p->backoff_ms = 0;
    p->last_error[0] = '\0';
    lws_sul_cancel(&p->dial_sul);
    KZ_INFO("fed_link_up", "peer=%s addr=%s direction=%s", p->id, l->addr,
            l->outbound ? "out" : "in");
    /* Last: the core may fed_send at once (its summary). */
    l->announced = true;
    srv_fed_link_up(f->t->srv, p->id);
}

static int on_auth(struct fed_link *l, const cJSON *j)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "sig");
    uint8_t sig[FED_SIG_BYTES];
    if (!cJSON_IsString(s) || !fed_b64url_decode(s->valuestring, sig, sizeof sig))
        return link_fail(l, CLOSE_PROTOCOL, "malformed auth");
    const char *me = srv_origin_local(l->f->t->srv).name;
    /* The peer signed in its own role: the acceptor if this server dialled. */
    if (!l->peer ||
        !fed_hello_verify(l->outbound ? FED_SIGNER_ACCEPTOR : FED_SIGNER_DIALER, dialer_id(l, me),
                          l->outbound ? l->my_nonce : l->their_nonce, acceptor_id(l, me),
                          l->outbound ? l->their_nonce : l->my_nonce, l->peer->key, sig)) {
        KZ_WARN("fed_bad_signature", "server=%s addr=%s", l->their_id, l->addr);
        return link_fail(l, CLOSE_BAD_SIG,
                         "the handshake signature does not verify under the key pinned for this "
                         "server");
    }
    link_up(l);
    return 0;
}

static const char *skip_ws(const char *s, const char *e)
{
    while (s < e && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
        s++;
    return s;
}

/* The type of a frame after the handshake, read without parsing the frame (the core parses it,
 * once): "t" must be its first member, a short string without escapes. false: it is not. */
static bool frame_type(const char *s, size_t len, char *type, size_t n)
{
    const char *e = s + len;
    s = skip_ws(s, e);
    if (s == e || *s++ != '{')
        return false;
    s = skip_ws(s, e);
    if (e - s < 3 || memcmp(s, "\"t\"", 3) != 0)
        return false;
    s = skip_ws(s + 3, e);
    if (s == e || *s++ != ':')
        return false;
    s = skip_ws(s, e);
    if (s == e || *s++ != '"')
        return false;
    size_t i = 0;
    for (; s < e && *s != '"'; s++) {
        if (*s == '\\' || (unsigned char)*s < 0x20 || i + 1 >= n)
            return false;
        type[i++] = *s;
    }
    type[i] = '\0';
    return s < e && i > 0;
}

/* After the handshake: a frame of replication's, for the core (the table's last row). */
static int on_sync_frame(struct fed_link *l, const char *text, size_t len)
{
    struct fed_peer *p = l->peer;
    if (!p || p->link != l || !l->announced)
        return 0; /* closing: a spare or detached link carries nothing to the core */
    char why[160] = "";
    if (srv_fed_frame(l->f->t->srv, p->id, text, len, why, sizeof why) != 0)
        return link_fail(l, CLOSE_PROTOCOL, why[0] ? why : "malformed frame");
    return 0;
}

/* Frames a peer may send, and when (docs/protocol.md, "Server to server"): HELLO and AUTH in
 * the handshake; after it (LINK_UP), any other type goes to the core, which knows replication's
 * (summary, events, ack, want: fed_sync.c). */
static const struct {
    const char *type; /* NULL: any type not named above it */
    enum link_state state;
    int (*fn)(struct fed_link *l, const cJSON *j);
} frame_types[] = {
    {"hello", LINK_HELLO, on_hello},
    {"auth", LINK_AUTH, on_auth},
    {NULL, LINK_UP, NULL}, /* on_sync_frame: the text, unparsed, to srv_fed_frame */
};

/* text is NUL-terminated at len. */
static int on_frame(struct fed_link *l, const char *text, size_t len)
{
    cJSON *j = NULL;
    char type[32];
    const char *t = NULL;
    if (l->state == LINK_UP) {
        if (frame_type(text, len, type, sizeof type))
            t = type;
    } else {
        j = cJSON_ParseWithLength(text, len);
        const cJSON *tj = cJSON_GetObjectItemCaseSensitive(j, "t");
        if (cJSON_IsObject(j) && cJSON_IsString(tj))
            t = tj->valuestring;
    }
    if (!t) {
        cJSON_Delete(j);
        return link_fail(l, CLOSE_PROTOCOL,
                         l->state == LINK_UP ? "not a frame: a JSON object whose first member is t"
                                             : "not a frame: a JSON object with a type t");
    }
    int rc = -2;
    for (size_t i = 0; i < sizeof frame_types / sizeof frame_types[0] && rc == -2; i++) {
        if (frame_types[i].type && strcmp(frame_types[i].type, t) != 0)
            continue;
        if (frame_types[i].state != l->state) {
            if (!frame_types[i].type)
                continue;
            char why[96];
            snprintf(why, sizeof why, "unexpected %s frame", frame_types[i].type);
            rc = link_fail(l, CLOSE_PROTOCOL, why);
        } else {
            rc = frame_types[i].fn ? frame_types[i].fn(l, j) : on_sync_frame(l, text, len);
        }
    }
    if (rc == -2)
        rc = link_fail(l, CLOSE_PROTOCOL, "unknown frame type");
    else if (rc == 0 && l->state == LINK_UP && l->peer)
        l->peer->last_contact = kz_now_ms();
    cJSON_Delete(j);
    return rc;
}

/* A piece of a frame: gathered until whole, within the bound of the link's state. */
static int on_receive(struct fed_link *l, const void *in, size_t len)
{
    if (l->close_code)
        return 0;
    if (lws_frame_is_binary(l->wsi))
        return link_fail(l, CLOSE_DATA, "binary frames are not used");
    size_t max = l->state == LINK_UP ? (size_t)l->f->t->cfg->federation_max_frame_bytes
                                     : HANDSHAKE_FRAME_MAX;
    bool last = lws_is_final_fragment(l->wsi) && !lws_remaining_packet_payload(l->wsi);
    if (l->rx_len + len > max || lws_remaining_packet_payload(l->wsi) > max - l->rx_len - len) {
        char why[96];
        snprintf(why, sizeof why, "frame too large (at most %zu bytes)", max);
        return link_fail(l, CLOSE_TOO_BIG, why);
    }
    /* Gathered even when whole, so the core's text ends in a NUL: one copy, small beside
     * parsing it. */
    unsigned char *rx = realloc(l->rx, l->rx_len + len + 1);
    if (!rx)
        return link_fail(l, 1011, "out of memory");
    l->rx = rx;
    memcpy(l->rx + l->rx_len, in, len);
    l->rx_len += len;
    if (!last)
        return 0;
    l->rx[l->rx_len] = '\0';
    int rc = on_frame(l, (const char *)l->rx, l->rx_len);
    free(l->rx);
    l->rx = NULL;
    l->rx_len = 0;
    return rc;
}

/* One queued frame per WRITEABLE, as a text frame. */
static int on_writeable(struct fed_link *l)
{
    if (l->close_code) {
        lws_close_reason(l->wsi, (enum lws_close_status)l->close_code,
                         (unsigned char *)l->close_reason, strlen(l->close_reason));
        return -1;
    }
    if (!l->q_head)
        return 0; /* lws may call WRITEABLE with nothing to send */
    struct transport *t = l->f->t;
    struct kz_frame *f = l->q_head->frame;
    unsigned char *out = f->data, *own = NULL;
    if (l->outbound) {
        /* A client's frames are masked, and lws masks the payload in place: never in a frame
         * shared with other links (or kept by the core), so a copy goes out instead. */
        own = f->len <= COALESCE_BYTES ? NULL : malloc(LWS_PRE + f->len);
        if (!own && f->len > COALESCE_BYTES)
            return link_fail(l, 1011, "out of memory");
        out = (own ? own : t->scratch) + LWS_PRE;
        memcpy(out, f->data, f->len);
    }
    /* lws keeps what the socket does not take and sends it before the next WRITEABLE. */
    int n = lws_write(l->wsi, out, f->len, LWS_WRITE_TEXT);
    free(own);
    if (n < (int)f->len)
        return -1;
    link_dequeue(l);
    if (l->send_refused && l->q_bytes < (size_t)t->cfg->federation_queue_bytes / 2 && l->peer &&
        l->announced) {
        l->send_refused = false;
        char id[sizeof l->peer->id];
        snprintf(id, sizeof id, "%s", l->peer->id);
        srv_fed_writable(t->srv, id); /* may fed_send on l at once */
    }
    if (l->q_head && !l->close_code)
        lws_callback_on_writable(l->wsi);
    return 0;
}

/* ---- connections coming and going ---- */

static void link_established(struct fed_links *f, struct fed_link *l, struct lws *wsi,
                             bool outbound)
{
    l->f = f;
    l->wsi = wsi;
    l->outbound = outbound;
    l->opened_ms = conn_mono_ms();
    if (!outbound) {
        const char *a = listener_peer(wsi);
        snprintf(l->addr, sizeof l->addr, "%s", a ? a : "?");
    }
    l->next = f->links;
    if (f->links)
        f->links->prev = l;
    f->links = l;
    send_hello(l);
}

/* The end of l, whatever ended it: called at its WSI_DESTROY (and at CLOSED, which comes
 * first when the WebSocket was up). Plans the peer's next attempt. Idempotent. */
void fed_link_gone(struct fed_link *l)
{
    if (l->gone)
        return;
    l->gone = true;
    struct fed_links *f = l->f;
    free(l->rx);
    l->rx = NULL;
    link_queue_clear(l);
    if (l->prev)
        l->prev->next = l->next;
    else if (f->links == l)
        f->links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->prev = l->next = NULL;
    if (l->wsi && l->state != LINK_UP && !l->close_code && !l->peer_closed) {
        /* Closed before the handshake finished, and not by this file: lws's deadline, or the
         * other end went away. */
        bool late =
            conn_mono_ms() - l->opened_ms >= f->t->cfg->federation_handshake_timeout_s * 1000 - 100;
        const char *why = late ? "the handshake did not finish within "
                                 "federation_handshake_timeout_s"
                               : "the connection closed during the handshake";
        KZ_INFO("fed_link_close", "peer=%s addr=%s direction=%s reason=\"%s\"",
                l->their_id[0] ? l->their_id : "?", l->addr, l->outbound ? "out" : "in", why);
        if (l->peer)
            fed_peer_error(l->peer, "%s", why);
    }
    struct fed_peer *p = l->peer;
    if (!p)
        return;
    bool was_up = p->link == l, was_dial = p->dial == l;
    if (was_up && !p->last_error[0])
        fed_peer_error(p, "the link closed");
    fed_link_detach(l, p->last_error); /* logs fed_link_down if it was up */
    if (p->link)
        return; /* another link to the peer is up: this one was spare */
    if (was_up) {
        p->since = kz_now_ms();
        p->failures = 0;
        p->addr_i = 0;
        fed_plan_dial(p, (int64_t)randombytes_uniform(BACKOFF_MIN_MS + 1));
    } else if (was_dial) {
        if (!p->last_error[0])
            fed_peer_error(p, "cannot connect to %s", p->addr[p->addr_i]);
        if (++p->addr_i < p->naddr) {
            fed_plan_dial(p, 0);
        } else {
            p->addr_i = 0;
            int64_t window = BACKOFF_MAX_MS;
            if (p->failures < 6)
                window = (int64_t)BACKOFF_MIN_MS << p->failures;
            if (window > BACKOFF_MAX_MS)
                window = BACKOFF_MAX_MS;
            p->failures++;
            fed_plan_dial(p, (int64_t)randombytes_uniform((uint32_t)window + 1));
        }
    }
}

/* The SHA-256 of the certificate's SubjectPublicKeyInfo, as peer add --tls-pin takes it. */
static bool pin_matches(struct lws *wsi, const char *pin)
{
    char got[64];
    return kz_tls_peer_pin(wsi, got, sizeof got) && strcmp(pin, got) == 0;
}

int fed_link_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                      size_t len)
{
    struct transport *t = transport_of(wsi);
    struct fed_links *f = t ? t->fed : NULL;
    struct fed_link *l = user;
    if (!f)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return -1; /* the federation port serves links only */
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        /* Only what came in on the federation listener (listener_foreign says why). */
        return listener_foreign(f->listener, wsi) || f->stopping ? -1 : 0;
    case LWS_CALLBACK_ESTABLISHED:
        if (f->stopping || listener_foreign(f->listener, wsi))
            return -1;
        link_established(f, l, wsi, false);
        return 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (!l || !l->peer || f->stopping)
            return -1; /* the peer was removed while this dial was under way */
        if (l->tls && l->peer && l->peer->tls_pin[0] && !pin_matches(wsi, l->peer->tls_pin)) {
            fed_peer_error(l->peer, "the TLS key of %s does not match the peer's TLS pin", l->addr);
            KZ_WARN("fed_tls_pin_mismatch", "peer=%s addr=%s", l->peer->id, l->addr);
            l->refused = true;
            return -1;
        }
        link_established(f, l, wsi, true);
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (l && l->peer && !l->refused) {
            fed_peer_error(l->peer, "cannot connect to %s: %s", l->addr,
                           in ? (const char *)in : "connection failed");
            KZ_DEBUG("fed_dial_failed", "peer=%s addr=%s error=\"%s\"", l->peer->id, l->addr,
                     in ? (const char *)in : "");
        }
        return 0;
    case LWS_CALLBACK_RECEIVE:
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return l && l->f ? on_receive(l, in, len) : -1;
    case LWS_CALLBACK_SERVER_WRITEABLE:
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return l && l->f ? on_writeable(l) : 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (l && l->f)
            l->peer_closed = true;
        if (l && l->f && l->peer && (!l->peer->link || l->peer->link == l) && len >= 2) {
            const unsigned char *p = in;
            fed_peer_error(l->peer, "closed by the peer (%d): %.*s", (p[0] << 8) | p[1],
                           (int)(len - 2), (const char *)p + 2);
            KZ_INFO("fed_link_closed_by_peer", "peer=%s code=%d reason=\"%.*s\"", l->their_id,
                    (p[0] << 8) | p[1], (int)(len - 2), (const char *)p + 2);
        }
        return 0;
    case LWS_CALLBACK_CLOSED:
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (l && l->f)
            fed_link_gone(l);
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        /* Every wsi of the vhost ends here: an accepted one is the listener's to forget; a
         * dialled one carries the fed_link this file allocated. */
        listener_forget(f->listener, wsi);
        if (l && l->f) {
            fed_link_gone(l);
            if (l->outbound)
                free(l);
        }
        return 0;
    default:
        return 0;
    }
}
