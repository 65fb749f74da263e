/* ops_peer.c - the peer servers an admin pins: peer.add, peer.list, peer.remove. A peer is a
 * server id, its Ed25519 key, the addresses it is reached at, an optional TLS key pin and its
 * municipality's name (store_fed.h). peer.add takes the 60-digit fingerprint the other admin
 * read out by phone and refuses a key that does not give it, so a key mistyped or swapped in
 * transit is never pinned (docs/federation.md says why this design). Every refusal changes
 * nothing: everything is checked before the one insert. Peers take effect at once: the
 * federation links (fed_link.c) read them again after every add and remove, and peer.list shows
 * each peer's link as the transport sees it and its replication: what it still lacks, what is in
 * flight to it, its forks (issue 17, item 9). */
#include "fed.h"
#include "server.h"
#include "store_fed.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* A peer as the protocol shows it (caller owns the result). */
static cJSON *peer_json(const struct store_peer *p)
{
    cJSON *o = cJSON_CreateObject();
    char key[FED_KEY_B64LEN + 1];
    fed_key_encode(p->key, key, sizeof key);
    cJSON_AddStringToObject(o, "server", p->server_id);
    cJSON_AddStringToObject(o, "name", p->name);
    cJSON_AddStringToObject(o, "key", key);
    cJSON_AddStringToObject(o, "fingerprint", p->fingerprint);
    cJSON *a = cJSON_AddArrayToObject(o, "addresses");
    for (int i = 0; i < p->naddr; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(p->addr[i]));
    if (p->tls_pin[0])
        cJSON_AddStringToObject(o, "tls_pin", p->tls_pin);
    else
        cJSON_AddNullToObject(o, "tls_pin");
    cJSON_AddStringToObject(o, "added_by", p->added_by);
    cJSON_AddNumberToObject(o, "added_at", (double)p->added_at);
    return o;
}

/* This server's own id and public key. */
static void own_identity(struct srv *s, const char **id, uint8_t pk[FED_KEY_BYTES])
{
    struct srv_origin me = srv_origin_local(s);
    *id = me.name;
    crypto_sign_ed25519_sk_to_pk(pk, me.sk);
}

/* A display name: no control characters (it is printed in lists and, later, beside every
 * message of that municipality). */
static bool name_ok(const char *name)
{
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

/* Checks every argument of peer.add into p, in the order docs/protocol.md lists the refusals. */
static enum kz_err peer_check(struct srv_call *c, struct store_peer *p)
{
    const struct kz_config *cfg = srv_config(c->srv);
    struct store *st = srv_store(c->srv);
    char why[160];
    memset(p, 0, sizeof *p);
    const char *id = srv_arg_str(c, "server");
    if (!fed_server_id_valid(id))
        return srv_fail(c, KZ_BAD_REQUEST,
                        "'%.63s' is not a server id: 3-63 of a-z, 0-9 and '-', beginning and "
                        "ending with a letter or digit (e.g. jp-38-ehime-pref)",
                        id);
    snprintf(p->server_id, sizeof p->server_id, "%s", id);
    if (!fed_key_parse(srv_arg_str(c, "key"), p->key, why, sizeof why))
        return srv_fail(c, KZ_BAD_REQUEST, "%s", why);
    const cJSON *item, *addrs = srv_arg_list(c, "addresses");
    if (cJSON_GetArraySize(addrs) == 0)
        return srv_fail(c, KZ_BAD_REQUEST, "a peer needs at least one address (HOST:PORT)");
    cJSON_ArrayForEach(item, addrs)
    {
        if (!fed_address_valid(item->valuestring, why, sizeof why))
            return srv_fail(c, KZ_BAD_REQUEST, "%s", why);
        for (int i = 0; i < p->naddr; i++)
            if (strcmp(p->addr[i], item->valuestring) == 0)
                return srv_fail(c, KZ_BAD_REQUEST, "address %s is given twice", item->valuestring);
        if (p->naddr >= STORE_PEER_ADDRS_MAX) /* the table's cap (peer_max_addresses) is lower */
            return srv_fail_cap(c, KZ_TOO_LARGE, "peer_max_addresses");
        snprintf(p->addr[p->naddr++], sizeof p->addr[0], "%s", item->valuestring);
    }
    const char *pin = srv_arg_str(c, "tls_pin");
    if (pin && *pin && !fed_tls_pin_valid(pin))
        return srv_fail(c, KZ_BAD_REQUEST,
                        "a TLS pin is the base64 of the SHA-256 of the peer's public key "
                        "(44 characters ending in '=')");
    snprintf(p->tls_pin, sizeof p->tls_pin, "%s", pin ? pin : "");
    const char *name = srv_arg_str(c, "name");
    if (name && !name_ok(name))
        return srv_fail(c, KZ_BAD_REQUEST, "a peer's name must not hold control characters");
    snprintf(p->name, sizeof p->name, "%s", name ? name : "");
    char given[FED_FINGERPRINT_DIGITS + 1], want[FED_FINGERPRINT_DIGITS + 1];
    if (!fed_fingerprint_parse(srv_arg_str(c, "fingerprint"), given))
        return srv_fail(c, KZ_BAD_REQUEST,
                        "a fingerprint is 60 digits (12 groups of 5, as kizunad fingerprint "
                        "prints it)");
    if (fed_fingerprint(p->server_id, p->key, p->fingerprint) != 0 ||
        !fed_fingerprint_parse(p->fingerprint, want))
        return srv_fail(c, KZ_INTERNAL, "cannot compute the fingerprint");
    if (sodium_memcmp(given, want, FED_FINGERPRINT_DIGITS) != 0)
        return srv_fail(c, KZ_BAD_REQUEST,
                        "the fingerprint does not match server %s with this key: nothing was "
                        "added; check the id, the key and the digits with %s's administrator",
                        p->server_id, p->server_id);
    const char *own_id;
    uint8_t own_pk[FED_KEY_BYTES];
    own_identity(c->srv, &own_id, own_pk);
    if (strcmp(p->server_id, own_id) == 0)
        return srv_fail(c, KZ_CONFLICT, "%s is this server's own id", own_id);
    if (memcmp(p->key, own_pk, FED_KEY_BYTES) == 0)
        return srv_fail(c, KZ_CONFLICT, "this is this server's own key");
    struct store_peer old;
    enum store_rc rc = store_peer_get(st, p->server_id, &old);
    if (rc == STORE_OK)
        return srv_fail(c, KZ_CONFLICT,
                        "%s is already a peer (to change it: kizuna admin peer remove %s, then "
                        "add it again)",
                        p->server_id, p->server_id);
    if (rc == STORE_NOT_FOUND)
        rc = store_peer_get_by_key(st, p->key, &old);
    if (rc == STORE_OK)
        return srv_fail(c, KZ_CONFLICT, "this key is already pinned for peer %s", old.server_id);
    int64_t count = 0;
    if (rc != STORE_NOT_FOUND || store_peer_count(st, &count) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot read the peers");
    if (count >= cfg->peers_max)
        return srv_fail(c, KZ_CONFLICT, "this server already has %lld peers (peers_max)",
                        (long long)count);
    return KZ_OK;
}

/* The transport's links hear of a change (a link to a removed peer closes, a new peer is
 * dialled). */
static void peers_changed(struct srv *s)
{
    const struct srv_transport *tx = srv_tx(s);
    if (tx->peers_changed)
        tx->peers_changed(tx->ctx);
}

enum kz_err op_peer_add(struct srv_call *c)
{
    struct store_peer p;
    enum kz_err e = peer_check(c, &p);
    if (e)
        return e;
    snprintf(p.added_by, sizeof p.added_by, "%s", c->auth.user.login);
    p.added_at = kz_now_ms();
    enum store_rc rc = store_peer_insert(srv_store(c->srv), &p);
    if (rc == STORE_CONFLICT)
        return srv_fail(c, KZ_CONFLICT, "%s is already a peer", p.server_id);
    if (rc != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot store the peer");
    KZ_INFO("peer_added", "by=%s server=%s addresses=%d", p.added_by, p.server_id, p.naddr);
    cJSON *pj = peer_json(&p);
    cJSON *details = cJSON_Duplicate(pj, true);
    cJSON_DeleteItemFromObjectCaseSensitive(details, "added_by");
    cJSON_DeleteItemFromObjectCaseSensitive(details, "added_at");
    c->result = cJSON_CreateObject();
    cJSON_AddItemToObject(c->result, "peer", pj);
    char target[80];
    snprintf(target, sizeof target, "peer:%s", p.server_id);
    srv_audit(c, "peer.add", target, details);
    peers_changed(c->srv);
    return KZ_OK;
}

static void add_time(cJSON *o, const char *name, int64_t ms)
{
    if (ms)
        cJSON_AddNumberToObject(o, name, (double)ms);
    else
        cJSON_AddNullToObject(o, name);
}

/* peer.list's `link` object (docs/protocol.md): state and connected always; the rest once
 * the links know the peer. */
static cJSON *link_json(const struct srv_link_status *st)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "state", st->state);
    cJSON_AddBoolToObject(o, "connected", st->connected);
    if (!st->known)
        return o;
    add_time(o, "since", st->since);
    add_time(o, "last_contact", st->last_contact);
    if (st->connected || st->ever_up)
        cJSON_AddStringToObject(o, "direction", st->outbound ? "out" : "in");
    else
        cJSON_AddNullToObject(o, "direction");
    cJSON_AddStringToObject(o, "address", st->address);
    cJSON_AddNumberToObject(o, "failures", st->failures);
    cJSON_AddNumberToObject(o, "backoff_ms", (double)st->backoff_ms);
    add_time(o, "next_attempt_at", st->next_attempt_at);
    if (st->last_error[0])
        cJSON_AddStringToObject(o, "last_error", st->last_error);
    else
        cJSON_AddNullToObject(o, "last_error");
    cJSON_AddNumberToObject(o, "skew_ms", (double)st->skew_ms);
    cJSON_AddBoolToObject(o, "skew_alarm", st->skew_alarm);
    return o;
}

/* peer.list's `replication` object of one peer (docs/protocol.md): what it still lacks of the
 * rooms shared with it (store_fed_lag: one pass over those rooms' logs past its cursors, on an
 * admin's rare call, never on a message's path), what is in flight to it, and its forks. */
static cJSON *replication_json(struct srv *s, const char *peer, bool skew_alarm)
{
    struct store *st = srv_store(s);
    int64_t events = 0, bytes = 0, oldest = 0, unacked = 0, forks = 0;
    bool up;
    if (store_fed_lag(st, peer, &events, &bytes, &oldest) != STORE_OK)
        events = bytes = oldest = 0;
    if (store_fed_fork_count(st, peer, &forks) != STORE_OK)
        forks = 0;
    srv_fed_peer_state(s, peer, &up, &unacked);
    int64_t age = oldest ? kz_now_ms() - oldest : 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "events_behind", (double)events);
    cJSON_AddNumberToObject(o, "bytes_behind", (double)bytes);
    cJSON_AddNumberToObject(o, "oldest_undelivered_ts", (double)oldest);
    cJSON_AddNumberToObject(o, "oldest_undelivered_age_ms", (double)(age > 0 ? age : 0));
    cJSON_AddNumberToObject(o, "unacked_bytes", (double)unacked);
    cJSON_AddNumberToObject(o, "forks", (double)forks);
    cJSON_AddBoolToObject(o, "quarantined", forks > 0);
    cJSON_AddBoolToObject(o, "skew_alarm", skew_alarm);
    return o;
}

/* peer.list's top-level `replication`: what replication has done since the server started. */
static cJSON *counters_json(struct srv *s)
{
    struct srv_fed_counters n;
    srv_fed_counters(s, &n);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "events_sent", (double)n.events_sent);
    cJSON_AddNumberToObject(o, "events_received", (double)n.events_received);
    cJSON_AddNumberToObject(o, "duplicates", (double)n.duplicates);
    cJSON_AddNumberToObject(o, "rejected", (double)n.rejected);
    cJSON_AddNumberToObject(o, "invalid", (double)n.invalid);
    cJSON_AddNumberToObject(o, "forks", (double)n.forks);
    cJSON_AddNumberToObject(o, "late", (double)n.late);
    return o;
}

struct list_ctx {
    struct srv *srv;
    cJSON *peers;
};

static int list_one(void *ctx, const struct store_peer *p)
{
    struct list_ctx *lc = ctx;
    const struct srv_transport *tx = srv_tx(lc->srv);
    cJSON *pj = peer_json(p);
    struct srv_link_status st;
    if (!tx->peer_status || !tx->peer_status(tx->ctx, p->server_id, &st))
        st = (struct srv_link_status){.state = "off"};
    cJSON_AddItemToObject(pj, "link", link_json(&st));
    cJSON_AddItemToObject(pj, "replication",
                          replication_json(lc->srv, p->server_id, st.known && st.skew_alarm));
    cJSON_AddItemToArray(lc->peers, pj);
    return 0;
}

enum kz_err op_peer_list(struct srv_call *c)
{
    const char *own_id;
    uint8_t own_pk[FED_KEY_BYTES];
    own_identity(c->srv, &own_id, own_pk);
    char key[FED_KEY_B64LEN + 1], fp[FED_FINGERPRINT_LEN + 1];
    fed_key_encode(own_pk, key, sizeof key);
    if (fed_fingerprint(own_id, own_pk, fp) != 0)
        fp[0] = '\0';
    cJSON *peers = cJSON_CreateArray();
    struct list_ctx lc = {c->srv, peers};
    if (store_peer_each(srv_store(c->srv), list_one, &lc) != STORE_OK) {
        cJSON_Delete(peers);
        return srv_fail(c, KZ_INTERNAL, "cannot read the peers");
    }
    c->result = cJSON_CreateObject();
    cJSON *me = cJSON_AddObjectToObject(c->result, "self");
    cJSON_AddStringToObject(me, "server", own_id);
    cJSON_AddStringToObject(me, "key", key);
    cJSON_AddStringToObject(me, "fingerprint", fp);
    cJSON_AddItemToObject(c->result, "peers", peers);
    cJSON_AddItemToObject(c->result, "replication", counters_json(c->srv));
    return KZ_OK;
}

enum kz_err op_peer_remove(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    const char *id = srv_arg_str(c, "server");
    struct store_peer p;
    enum store_rc rc = store_peer_get(st, id, &p);
    if (rc == STORE_NOT_FOUND)
        return srv_fail(c, KZ_NOT_FOUND, "%.63s is not a peer (kizuna admin peer list)", id);
    if (rc != STORE_OK || store_peer_delete(st, id) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot remove the peer");
    KZ_INFO("peer_removed", "by=%s server=%s", c->auth.user.login, p.server_id);
    cJSON *pj = peer_json(&p);
    c->result = cJSON_CreateObject();
    cJSON_AddItemToObject(c->result, "peer", pj);
    char target[80];
    snprintf(target, sizeof target, "peer:%s", p.server_id);
    srv_audit(c, "peer.remove", target, cJSON_Duplicate(pj, true));
    peers_changed(c->srv);
    return KZ_OK;
}
