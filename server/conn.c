/* conn.c - the transport's connection registry and per-address request rates.
 *
 * Every connection the core may answer gets a 64-bit id here (conn_register); the core names
 * connections only by id, so a reply for a connection that has closed finds nothing and is
 * dropped. HTTP requests from one client address share a token bucket (requests_per_second,
 * request_burst); WebSocket connections have one each (ws.c). How many connections an
 * address may hold is listener.c's business.
 */
#include "transport_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What one client address has left of its HTTP requests. */
struct peer {
    struct bucket http;
};

int64_t conn_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool conn_bucket_take(const struct kz_config *cfg, struct bucket *b)
{
    int64_t now = conn_mono_ms();
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

static void peers_clear(struct transport *t)
{
    for (size_t i = 0; i < t->peers.cap; i++)
        if (t->peers.keys[i] && t->peers.keys[i] != UINT64_MAX)
            free(t->peers.vals[i]);
    idmap_free(&t->peers);
    memset(&t->peers, 0, sizeof t->peers);
}

/* The record of a client address, made on first sight. Bounded: past http_peers_max addresses
 * the table starts afresh, which at worst forgives some clients their counts early. */
static struct peer *peer_of(struct transport *t, const char *addr)
{
    uint64_t k = listener_addr_key(addr);
    struct peer *p = idmap_get(&t->peers, k);
    if (p)
        return p;
    if ((long long)t->peers.used >= t->cfg->http_peers_max) {
        peers_clear(t);
        KZ_WARN("peers_reset", "addresses=%lld", t->cfg->http_peers_max);
    }
    p = calloc(1, sizeof *p);
    if (p && idmap_put(&t->peers, k, p) != 0) {
        free(p);
        p = NULL;
    }
    return p;
}

bool conn_http_admit(struct transport *t, const char *addr)
{
    struct peer *p = peer_of(t, addr);
    return p && conn_bucket_take(t->cfg, &p->http);
}

void conn_peers_free(struct transport *t)
{
    peers_clear(t);
}

int conn_register(struct transport *t, struct conn *c, struct lws *wsi, enum conn_kind kind)
{
    c->id = ++t->next_id;
    c->wsi = wsi;
    c->kind = kind;
    const char *addr = listener_peer(wsi);
    if (addr)
        snprintf(c->peer, sizeof c->peer, "%s", addr);
    else
        lws_get_peer_simple(wsi, c->peer, sizeof c->peer);
    return idmap_put(&t->conns, c->id, c);
}

void conn_unregister(struct transport *t, struct conn *c)
{
    if (!c->id)
        return;
    idmap_del(&t->conns, c->id);
    c->id = 0;
}

struct conn *conn_find(struct transport *t, uint64_t id, enum conn_kind kind)
{
    struct conn *c = idmap_get(&t->conns, id);
    return c && c->kind == kind ? c : NULL;
}
