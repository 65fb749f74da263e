/* fed_peers.c - the pinned peers as federation sees them, and the federation listener: its
 * vhost, dialling each peer, backing off, reading the peers again when an admin changes them, and
 * the state peer.list shows. fed_link.c runs each link; fed_int.h has what both share.
 *
 * A peer without a link is dialled at its addresses in order; once all failed, the next round
 * waits a random time up to min(60 s, 1 s * 2^failures) (full jitter). Any authenticated contact
 * from the peer (its link coming up, in either direction) resets that to zero; a link that drops
 * is redialled within 1 s. Only IP addresses are dialled: lws 4.1 resolves names with a blocking
 * getaddrinfo on the event loop. Loopback addresses are dialled with ws://, all others with
 * wss:// (no CA, no hostname; the peer's TLS pin, when one is stored, must match the
 * certificate's key, fed_link.c). Peers added or removed by peer.add / peer.remove are read again
 * at once (fed_peers_changed): a removed peer's link is closed, a new one dialled. Everything runs
 * on the event loop's thread.
 */
#include "fed_int.h"
#include "store_fed.h"

#include <arpa/inet.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the peers ---- */

struct fed_peer *fed_peer_find(struct fed_links *f, const char *id)
{
    for (struct fed_peer *p = f->peers; p; p = p->next)
        if (strcmp(p->id, id) == 0)
            return p;
    return NULL;
}

void fed_peer_error(struct fed_peer *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->last_error, sizeof p->last_error, fmt, ap);
    va_end(ap);
}

/* ---- dialling ---- */

/* HOST:PORT or [V6]:PORT with an IP address into host and port; loopback says whether it is
 * one. false (with why) for a name. */
static bool split_addr(const char *addr, char *host, size_t n, int *port, bool *loopback)
{
    const char *colon = strrchr(addr, ':');
    if (!colon)
        return false;
    char *end = NULL;
    long v = strtol(colon + 1, &end, 10);
    if (!end || *end || v < 1 || v > 65535)
        return false;
    *port = (int)v;
    const char *h = addr;
    size_t hl = (size_t)(colon - addr);
    if (addr[0] == '[' && hl >= 2) {
        h++;
        hl -= 2;
    }
    if (hl >= n)
        return false;
    memcpy(host, h, hl);
    host[hl] = '\0';
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1) {
        *loopback = (ntohl(a4.s_addr) >> 24) == 127;
        return true;
    }
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        *loopback = IN6_IS_ADDR_LOOPBACK(&a6);
        return true;
    }
    return false;
}

static void dial(struct fed_peer *p)
{
    struct fed_links *f = p->f;
    p->next_dial_at = 0;
    if (f->stopping || p->link || p->dial || !p->naddr)
        return;
    if (p->addr_i >= p->naddr)
        p->addr_i = 0;
    const char *addr = p->addr[p->addr_i];
    char host[STORE_PEER_ADDR_MAX + 1];
    int port = 0;
    bool loopback = false;
    struct fed_link *l = calloc(1, sizeof *l);
    if (!l) {
        fed_plan_dial(p, BACKOFF_MIN_MS);
        return;
    }
    l->f = f;
    l->outbound = true;
    l->peer = p;
    snprintf(l->addr, sizeof l->addr, "%s", addr);
    snprintf(l->their_id, sizeof l->their_id, "%s", p->id);
    p->dial = l;
    if (!split_addr(addr, host, sizeof host, &port, &loopback)) {
        fed_peer_error(
            p,
            "%s is a name: kizunad dials IP addresses only (docs/federation.md, \"Operating "
            "links\")",
            addr);
        fed_link_gone(l);
        free(l);
        return;
    }
    l->tls = !loopback;
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = f->t->ctx;
    ci.vhost = f->vh;
    ci.address = host;
    ci.port = port;
    ci.path = "/fed/v1";
    /* lws picks a vhost by the Host header (listener_foreign): name the federation one. */
    ci.host = FED_VHOST;
    ci.origin = FED_VHOST;
    ci.protocol = FED_PROTOCOL;
    ci.local_protocol_name = FED_PROTOCOL;
    ci.userdata = l;
    ci.retry_and_idle_policy = &l->f->idle;
    if (l->tls) {
        /* No CA and no name: the peer is known by its pinned server key (the handshake) and, if
         * given, its TLS pin (checked at CLIENT_ESTABLISHED). */
        ci.ssl_connection = LCCSCF_USE_SSL | LCCSCF_ALLOW_SELFSIGNED | LCCSCF_ALLOW_INSECURE |
                            LCCSCF_ALLOW_EXPIRED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK;
        ci.alpn = "http/1.1";
    }
    KZ_DEBUG("fed_dial", "peer=%s addr=%s tls=%s", p->id, addr, l->tls ? "on" : "off");
    if (!lws_client_connect_via_info(&ci) && p->dial == l) {
        /* Refused before lws took the user data: it is still this file's. */
        if (!p->last_error[0] || strncmp(p->last_error, "cannot connect", 14) != 0)
            fed_peer_error(p, "cannot connect to %s", addr);
        fed_link_gone(l);
        free(l);
    }
    /* A due timer runs before poll(), which would then sleep through the new socket's events
     * until the next timer: wake it (kzclient.c's lesson). */
    lws_cancel_service(f->t->ctx);
}

static void dial_cb(lws_sorted_usec_list_t *sul)
{
    dial(lws_container_of(sul, struct fed_peer, dial_sul));
}

void fed_plan_dial(struct fed_peer *p, int64_t delay_ms)
{
    struct fed_links *f = p->f;
    if (!f->started || f->stopping || p->link || p->dial)
        return;
    p->backoff_ms = delay_ms;
    p->next_dial_at = kz_now_ms() + delay_ms;
    lws_sul_schedule(f->t->ctx, 0, &p->dial_sul, dial_cb,
                     (lws_usec_t)(delay_ms ? delay_ms : 1) * LWS_US_PER_MS);
}

/* ---- the pinned peers ---- */

static void peer_drop(struct fed_links *f, struct fed_peer *p, const char *why)
{
    lws_sul_cancel(&p->dial_sul);
    struct fed_link *links[2] = {p->link, p->dial};
    for (int i = 0; i < 2; i++) {
        struct fed_link *l = links[i];
        if (!l)
            continue;
        fed_link_detach(l, why);
        if (l->wsi && !l->gone)
            fed_link_close(l, CLOSE_AWAY, why);
    }
    /* A dial not yet established has no wsi this file knows: detached, it ends on its own. */
    for (struct fed_link *l = f->links; l; l = l->next)
        if (l->peer == p)
            fed_link_detach(l, why);
    struct fed_peer **pp = &f->peers;
    while (*pp != p)
        pp = &(*pp)->next;
    *pp = p->next;
    free(p);
}

static int reload_one(void *ctx, const struct store_peer *sp)
{
    struct fed_links *f = ctx;
    struct fed_peer *p = fed_peer_find(f, sp->server_id);
    if (p && memcmp(p->key, sp->key, FED_KEY_BYTES) != 0) {
        peer_drop(f, p, "the peer's key changed");
        p = NULL;
    }
    bool fresh = !p;
    if (!p) {
        p = calloc(1, sizeof *p);
        if (!p)
            return 0;
        p->f = f;
        snprintf(p->id, sizeof p->id, "%s", sp->server_id);
        memcpy(p->key, sp->key, FED_KEY_BYTES);
        p->next = f->peers;
        f->peers = p;
    }
    p->naddr = sp->naddr;
    memcpy(p->addr, sp->addr, sizeof p->addr);
    snprintf(p->tls_pin, sizeof p->tls_pin, "%s", sp->tls_pin);
    p->seen = true;
    if (fresh)
        fed_plan_dial(p, 0);
    return 0;
}

/* Reads the pinned peers again: new ones are dialled, removed ones closed. */
static void fed_reload(struct fed_links *f)
{
    for (struct fed_peer *p = f->peers; p; p = p->next)
        p->seen = false;
    if (store_peer_each(srv_store(f->t->srv), reload_one, f) != STORE_OK) {
        KZ_ERROR("fed_peers_unreadable", "peers=kept");
        return;
    }
    for (struct fed_peer *p = f->peers, *next; p; p = next) {
        next = p->next;
        if (!p->seen) {
            KZ_INFO("fed_peer_removed", "peer=%s", p->id);
            peer_drop(f, p, "this server no longer pins the peer");
        }
    }
}

static void reload_cb(lws_sorted_usec_list_t *sul)
{
    struct fed_links *f = lws_container_of(sul, struct fed_links, reload_sul);
    if (!f->stopping)
        fed_reload(f);
    lws_cancel_service(f->t->ctx);
}

/* ---- what transport.c and the core call ---- */

/* The federation vhost's protocols: links, and the listening socket. The first gets every
 * connection's WSI_DESTROY (lws 4.1), so it is the link callback too. */
static struct lws_protocols fed_protocols[] = {
    {"kizuna-fed-http", fed_link_callback, sizeof(struct fed_link), 0, 0, NULL, 0},
    {FED_PROTOCOL, fed_link_callback, sizeof(struct fed_link), RX_CHUNK, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}, /* listener_protocol, set in fed_start */
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static const struct lws_protocol_vhost_options fed_pvo_default = {NULL, NULL, "default", "1"};
static const struct lws_protocol_vhost_options fed_pvo = {NULL, &fed_pvo_default, FED_PROTOCOL, ""};

int fed_open(struct transport *t, char *err, size_t errlen)
{
    const struct kz_config *cfg = t->cfg;
    if (!cfg->federation_listen[0])
        return 0;
    bool tls = cfg->federation_tls_cert_file[0] != '\0';
    if ((cfg->federation_tls_cert_file[0] || cfg->federation_tls_key_file[0]) &&
        (!cfg->federation_tls_cert_file[0] || !cfg->federation_tls_key_file[0] ||
         access(cfg->federation_tls_cert_file, R_OK) != 0 ||
         access(cfg->federation_tls_key_file, R_OK) != 0)) {
        snprintf(err, errlen,
                 "federation TLS needs readable federation_tls_cert_file and "
                 "federation_tls_key_file (%s, %s)",
                 cfg->federation_tls_cert_file[0] ? cfg->federation_tls_cert_file : "unset",
                 cfg->federation_tls_key_file[0] ? cfg->federation_tls_key_file : "unset");
        return -1;
    }
    if (!tls && !listener_loopback(cfg->federation_listen)) {
        snprintf(err, errlen,
                 "federation_listen %s is not a loopback address: federation over a network "
                 "needs TLS (set federation_tls_cert_file and federation_tls_key_file); plain "
                 "WebSocket is allowed on 127.0.0.1 or [::1] only, for tests",
                 cfg->federation_listen);
        return -1;
    }
    struct fed_links *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    f->t = t;
    f->tls = tls;
    f->listener = listener_open(cfg, cfg->federation_listen, err, errlen);
    if (!f->listener) {
        free(f);
        return -1;
    }
    t->fed = f;
    return 0;
}

int fed_start(struct transport *t, char *err, size_t errlen)
{
    struct fed_links *f = t->fed;
    if (!f)
        return 0;
    const struct kz_config *cfg = t->cfg;
    fed_protocols[2] = listener_protocol;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* listener.c binds and accepts */
    info.vhost_name = FED_VHOST;
    info.protocols = fed_protocols;
    info.pvo = &fed_pvo;
    /* The client side of TLS links (wss://) needs the vhost's client context. */
    info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    /* A connection that has not upgraded, or whose headers stall, is closed after this. */
    info.timeout_secs = (unsigned)cfg->federation_handshake_timeout_s;
    info.timeout_secs_ah_idle = (unsigned)cfg->federation_handshake_timeout_s;
    /* A link with nothing to say is pinged after federation_ping_s (30) and closed after
     * federation_hangup_s (75) without a valid frame or pong: a cut that sends no FIN or RST
     * (a partition, a dead router) shows as disconnected within about a minute and the peer is
     * redialled, instead of after lws's default 310 s. */
    long long hangup = cfg->federation_hangup_s > cfg->federation_ping_s
                           ? cfg->federation_hangup_s
                           : cfg->federation_ping_s + 1;
    f->idle = (lws_retry_bo_t){.secs_since_valid_ping = (uint16_t)cfg->federation_ping_s,
                               .secs_since_valid_hangup = (uint16_t)hangup};
    info.retry_and_idle_policy = &f->idle;
    if (f->tls) {
        info.ssl_cert_filepath = cfg->federation_tls_cert_file;
        info.ssl_private_key_filepath = cfg->federation_tls_key_file;
        info.alpn = "http/1.1";
    }
    f->vh = lws_create_vhost(t->ctx, &info);
    if (!f->vh || listener_start(f->listener, f->vh, f->tls) != 0) {
        snprintf(err, errlen, "cannot serve federation on %s%s", cfg->federation_listen,
                 f->tls ? " (the federation TLS certificate and key do not load)" : "");
        return -1;
    }
    return 0;
}

int fed_port(const struct transport *t)
{
    return t->fed ? listener_port(t->fed->listener) : 0;
}

void fed_begin(struct transport *t)
{
    struct fed_links *f = t->fed;
    if (!f)
        return;
    f->started = true;
    fed_reload(f);
}

void fed_peers_changed(struct transport *t)
{
    struct fed_links *f = t->fed;
    if (f && f->started && !f->stopping)
        lws_sul_schedule(t->ctx, 0, &f->reload_sul, reload_cb, 1);
}

void fed_stop(struct transport *t)
{
    struct fed_links *f = t->fed;
    if (!f)
        return;
    f->stopping = true;
    listener_stop(f->listener);
    lws_sul_cancel(&f->reload_sul);
    for (struct fed_peer *p = f->peers; p; p = p->next)
        lws_sul_cancel(&p->dial_sul);
    for (struct fed_link *l = f->links; l; l = l->next)
        fed_link_close(l, CLOSE_AWAY, "the server is shutting down");
}

void fed_free(struct transport *t)
{
    struct fed_links *f = t->fed;
    if (!f)
        return;
    for (struct fed_peer *p = f->peers, *next; p; p = next) {
        next = p->next;
        free(p);
    }
    listener_free(f->listener);
    free(f);
    t->fed = NULL;
}

bool fed_send(struct transport *t, const char *peer_id, struct kz_frame *f)
{
    struct fed_peer *p = t->fed ? fed_peer_find(t->fed, peer_id) : NULL;
    return p && p->link && fed_link_send(p->link, f);
}

bool fed_peer_status(struct transport *t, const char *server_id, struct srv_link_status *out)
{
    struct fed_links *f = t->fed;
    if (!f)
        return false;
    struct fed_peer *p = fed_peer_find(f, server_id);
    *out = (struct srv_link_status){0};
    out->state = !p                        ? "disconnected"
                 : p->link                 ? "connected"
                 : p->dial && p->dial->wsi ? "handshake"
                 : p->dial                 ? "connecting"
                                           : "disconnected";
    if (!p)
        return true;
    out->known = true;
    out->connected = p->link != NULL;
    out->ever_up = p->ever_up;
    out->outbound = p->outbound;
    out->since = p->since;
    out->last_contact = p->last_contact;
    out->next_attempt_at = p->link ? 0 : p->next_dial_at;
    out->backoff_ms = p->link ? 0 : p->backoff_ms;
    out->skew_ms = p->skew_ms;
    out->failures = p->failures;
    out->skew_alarm = p->skew_alarm;
    snprintf(out->address, sizeof out->address, "%s", p->link ? p->link->addr : p->addr[p->addr_i]);
    snprintf(out->last_error, sizeof out->last_error, "%s", p->last_error);
    return true;
}
