/* event_log.c - the local event log: appending this server's room events and signing the
 * newest event of each log at commit.
 *
 * An append builds the payload (event_format.c: serialised once, stored verbatim, its id the
 * hash of those bytes, chained to the log's previous event by `prev`), stores it, applies it
 * to the derived state (event_apply.c) and queues it for delivery after the commit
 * (event_deliver.c). Events are written in format v2: each names this server's key and
 * carries the room's hybrid logical clock, hlc = max(now, the room's highest + 1), kept per
 * room in memory and read back from the store's max(hlc) after a restart, so a clock stepped
 * back never moves it back. Signatures are checkpoints: before each commit the server signs the
 * newest event of every log the commit extended, and enough others that no run of unsigned
 * events reaches checkpoint_events (64) or checkpoint_bytes (128 KiB); a signature covers its
 * event and, through the chain, everything before it in the log. Events between checkpoints
 * store an empty signature. Signing every event cost 30 us each, half of the send path
 * (docs/performance.md); one signature per log per commit keeps the same guarantee for a
 * fraction of that. Nobody re-serialises a stored event. Events reach members only after
 * their commit. */
#include "core.h"
#include "event_format.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* The format's limits are the store's columns. */
_Static_assert(KZ_EVENT_ID_CHARS <= STORE_ROOM_ID_MAX + 1, "an event id fits a store id");
_Static_assert(KZ_EVENT_ORIGIN_MAX == STORE_ORIGIN_MAX, "origin sizes agree");
_Static_assert(KZ_EVENT_TYPE_MAX == STORE_TYPE_MAX, "type sizes agree");
_Static_assert(KZ_EVENT_SENDER_MAX == STORE_LOCAL_LOGIN_MAX, "a sender is a login of its origin");
_Static_assert(sizeof((struct srv *)0)->key_id == KZ_EVENT_KEY_ID_CHARS, "a key id fits");

struct srv_origin srv_origin_local(struct srv *s)
{
    return (struct srv_origin){
        .name = s->origin, .inc = s->inc, .sk = s->sk, .key = s->key_id[0] ? s->key_id : NULL};
}

/* ---- each room's hybrid logical clock ---- */

/* The highest hlc room has seen, kept in memory from the first event made in it since start
 * (read back from the store: its max(hlc), one index seek), so a restart never goes back;
 * NULL if out of memory or the store failed. A rolled-back event may leave it ahead of the
 * store, which only skips values. */
static int64_t *room_hlc(struct srv *s, int64_t room)
{
    int64_t *h = idmap_get(&s->room_hlc, (uint64_t)room);
    if (h)
        return h;
    if (!(h = malloc(sizeof *h)))
        return NULL;
    if (store_room_hlc(s->store, room, h) != STORE_OK ||
        idmap_put(&s->room_hlc, (uint64_t)room, h) != 0) {
        free(h);
        return NULL;
    }
    return h;
}

void srv_room_hlc_seen(struct srv *s, int64_t room, int64_t hlc, bool *late)
{
    int64_t *h = room_hlc(s, room);
    *late = h && hlc < *h;
    if (h && hlc > *h)
        *h = hlc;
}

void srv_room_hlc_free(struct srv *s)
{
    for (size_t i = 0; i < s->room_hlc.cap; i++)
        if (s->room_hlc.keys[i] && s->room_hlc.keys[i] != UINT64_MAX)
            free(s->room_hlc.vals[i]);
    idmap_free(&s->room_hlc);
}

static enum kz_err failed(struct srv_appended *out, enum kz_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum kz_err failed(struct srv_appended *out, enum kz_err e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->error, sizeof out->error, fmt, ap);
    va_end(ap);
    return e;
}

/* A room this append creates: the room's row is inserted once its id, the hash of the
 * creation payload, is known (FEDERATION.md, F11: self-certifying). */
struct room_new {
    struct store_room *room; /* kind, name, topic, history in; id, room_id, creator out */
    const char *direct_key;
};

/* Builds, stores, applies and queues one event; room is NULL when create is not. */
static enum kz_err append(struct srv *s, const struct srv_origin *origin,
                          const struct srv_actor *sender, const struct store_room *room,
                          const char *type, cJSON *content, const struct room_new *create,
                          struct srv_appended *out)
{
    struct store *st = s->store;
    enum kz_err e = KZ_OK;
    char *payload = NULL;
    int64_t seq = 0;
    char prev[STORE_ROOM_ID_MAX + 1] = "";
    memset(out, 0, sizeof *out);
    /* An authority event of a shared room cites what made this server its authority (its basis:
     * the room.authority event that named it; none for the creator), so that every server
     * judges it alike (fed_receive.c). */
    char basis[STORE_ROOM_ID_MAX + 1] = "";
    if (!create && room->authority[0] &&
        (!strcmp(type, "room.server") || !strcmp(type, "room.update") ||
         !strcmp(type, "room.archive") || !strcmp(type, "hotline.role") ||
         !strcmp(type, "room.authority")) &&
        store_room_authority_event(st, room->id, basis, sizeof basis) == STORE_OK && basis[0])
        cJSON_AddStringToObject(content, "authority", basis);
    if (!create &&
        store_log_head(st, room->id, origin->name, origin->inc, &seq, prev) != STORE_OK) {
        e = failed(out, KZ_INTERNAL, "%s", "cannot read the room's log");
        goto out;
    }
    /* The room's clock: a new room has none yet (its row comes with the creation event). */
    int64_t *room_max = NULL;
    if (!create && !(room_max = room_hlc(s, room->id))) {
        e = failed(out, KZ_INTERNAL, "%s", "cannot read the room's clock");
        goto out;
    }
    int64_t ts = s->clock ? s->clock() : kz_now_ms();
    int64_t hlc = kz_event_hlc_next(ts, room_max ? *room_max : 0);
    char key_id[KZ_EVENT_KEY_ID_CHARS];
    if (origin->key)
        snprintf(key_id, sizeof key_id, "%s", origin->key);
    else
        kz_event_key_id(origin->sk + 32, key_id); /* libsodium's sk ends with the public key */
    struct kz_event_fields f = {.v = KZ_EVENT_VERSION,
                                .room = create ? NULL : room->room_id,
                                .origin = origin->name,
                                .inc = origin->inc,
                                .key = key_id,
                                .seq = seq + 1,
                                .prev = prev[0] ? prev : NULL,
                                .hlc = hlc,
                                .ts = ts,
                                .type = type,
                                .sender = sender->login};
    size_t len = 0;
    if (!(payload = kz_event_payload_build(&f, content, &len))) {
        e = failed(out, KZ_INTERNAL, "%s", "out of memory");
        goto out;
    }
    static const unsigned char unsigned_yet[1];
    struct store_event ev = {.room = room ? room->id : 0,
                             .inc = origin->inc,
                             .seq = seq + 1,
                             .sender = sender->user_id,
                             .ts = ts,
                             .hlc = hlc,
                             .payload = payload,
                             .payload_len = len,
                             .sig = unsigned_yet, /* signed at the checkpoint */
                             .sig_len = 0};
    snprintf(ev.origin, sizeof ev.origin, "%s", origin->name);
    snprintf(ev.type, sizeof ev.type, "%s", type);
    kz_event_id(payload, len, ev.event_id);
    if (create) {
        struct store_room *r = create->room;
        kz_event_room_id(payload, len, r->room_id);
        r->created_by = sender->user_id;
        r->created_at = ts;
        enum store_rc rc = store_room_insert(st, r, create->direct_key);
        if (rc != STORE_OK) {
            e = failed(out, rc == STORE_CONFLICT ? KZ_CONFLICT : KZ_INTERNAL, "%s",
                       "cannot create the room");
            goto out;
        }
        ev.room = r->id;
        room = r;
    }
    if (store_event_insert(st, &ev) != STORE_OK) {
        e = failed(out, KZ_INTERNAL, "cannot store the event: %s", store_errmsg(st));
        goto out;
    }
    if (room_max)
        *room_max = hlc;
    else if ((room_max = room_hlc(s, ev.room))) /* a new room: its creation event, now stored */
        *room_max = hlc;
    int64_t also_user = 0;
    const char *why = NULL;
    if ((e = srv_event_apply(s, room, &ev, content, &also_user, &why))) {
        failed(out, e, "%s", why);
        goto out;
    }
    /* Serialised once, now, from the fields and content at hand; every recipient shares it. */
    snprintf(ev.room_id, sizeof ev.room_id, "%s", room->room_id);
    struct kz_frame *frame = srv_event_frame_new(s, &ev, sender->login, sender->name, content);
    if (!frame || srv_events_queue(s, ev.pos, ev.room, also_user, origin->sk, len, frame) != 0) {
        kz_frame_unref(frame);
        e = failed(out, KZ_INTERNAL, "%s", "out of memory");
        goto out;
    }
    out->pos = ev.pos;
    out->ts = ts;
    snprintf(out->event_id, sizeof out->event_id, "%s", ev.event_id);
out:
    kz_event_payload_free(payload);
    cJSON_Delete(content);
    return e;
}

enum kz_err srv_log_append(struct srv *s, const struct srv_origin *origin,
                           const struct srv_actor *sender, const struct store_room *room,
                           const char *type, cJSON *content, struct srv_appended *out)
{
    return append(s, origin, sender, room, type, content, NULL, out);
}

enum kz_err srv_log_create_room(struct srv *s, const struct srv_origin *origin,
                                const struct srv_actor *sender, struct store_room *r,
                                const char *direct_key, const char *type, cJSON *content,
                                struct srv_appended *out)
{
    /* Two rooms created alike in the same millisecond still get different ids. */
    unsigned char nonce[12];
    char nonce_b64[24];
    randombytes_buf(nonce, sizeof nonce);
    sodium_bin2base64(nonce_b64, sizeof nonce_b64, nonce, sizeof nonce,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    cJSON_AddStringToObject(content, "nonce", nonce_b64);
    struct room_new create = {r, direct_key};
    return append(s, origin, sender, NULL, type, content, &create, out);
}

/* ---- the same for an op: as its caller, in this server's log ---- */

static struct srv_actor caller(const struct srv_call *c)
{
    return (struct srv_actor){
        .user_id = c->auth.user.id, .login = c->auth.user.login, .name = c->auth.user.name};
}

enum kz_err srv_event_append(struct srv_call *c, const struct store_room *room, const char *type,
                             cJSON *content, struct srv_appended *out)
{
    struct srv_origin origin = srv_origin_local(c->srv);
    struct srv_actor sender = caller(c);
    enum kz_err e = srv_log_append(c->srv, &origin, &sender, room, type, content, out);
    return e ? srv_fail(c, e, "%s", out->error) : KZ_OK;
}

enum kz_err srv_room_create_with(struct srv_call *c, struct store_room *r, const char *direct_key,
                                 const char *type, cJSON *content, struct srv_appended *out)
{
    struct srv_origin origin = srv_origin_local(c->srv);
    struct srv_actor sender = caller(c);
    enum kz_err e =
        srv_log_create_room(c->srv, &origin, &sender, r, direct_key, type, content, out);
    return e ? srv_fail(c, e, "%s", out->error) : KZ_OK;
}

enum kz_err srv_room_create(struct srv_call *c, struct store_room *r, const char *direct_key,
                            cJSON *policy, const cJSON *servers, struct srv_appended *out)
{
    cJSON *content = cJSON_CreateObject();
    cJSON_AddStringToObject(content, "kind", r->kind);
    cJSON_AddStringToObject(content, "name", r->name);
    cJSON_AddStringToObject(content, "topic", r->topic);
    cJSON_AddStringToObject(content, "history", r->history[0] ? r->history : "shared");
    if (policy) /* the creator's signed history policy: the room's id is its hash too */
        cJSON_AddItemToObject(content, "policy", policy);
    if (servers) /* a shared room: its member servers, this one (the authority) first */
        cJSON_AddItemToObject(content, "servers", cJSON_Duplicate(servers, true));
    return srv_room_create_with(c, r, direct_key, "room.create", content, out);
}

/* ---- checkpoints ---- */

struct sign_ctx {
    struct srv *s;
    const uint8_t *sk;
    bool ok;
};

static int sign_head(void *arg, const struct store_event *e)
{
    struct sign_ctx *sc = arg;
    uint8_t sig[KZ_EVENT_SIG_BYTES];
    sc->ok = kz_event_sign(e->payload, e->payload_len, sc->sk, sig) == 0 &&
             store_event_set_sig(sc->s->store, e->pos, sig, sizeof sig) == STORE_OK;
    return 1;
}

/* One log the open transaction extends: the run of unsigned events since its last signature. */
struct log_run {
    int64_t room;
    const uint8_t *sk;
    size_t last;        /* its newest event's index in s->pending */
    bool last_signed;   /* ... signed already by the bound */
    long long n, bytes; /* unsigned events (and their payload bytes) since the last signature */
};

static enum kz_err sign_at(struct srv *s, const struct pending_event *p)
{
    struct sign_ctx sc = {s, p->sk, false};
    return store_event_get(s->store, p->pos, sign_head, &sc) == STORE_OK && sc.ok ? KZ_OK
                                                                                  : KZ_INTERNAL;
}

enum kz_err srv_events_checkpoint(struct srv *s)
{
    /* Oldest first, per (room, origin): a commit starts every log on a signed head (the last
     * commit's checkpoint), and an event that would make the run of unsigned events reach
     * checkpoint_events or checkpoint_bytes is signed (event format v2, bounded checkpoints:
     * at most 63 unsigned in a row and under 128 KiB, so a peer can verify any batch of 64
     * alone). A commit rarely extends a log by 64 events, so this adds no signature (~250,000
     * instructions each) in the common case; then each log's newest event is signed. */
    long long max_n = s->cfg->checkpoint_events, max_bytes = s->cfg->checkpoint_bytes;
    struct log_run *logs = malloc((s->npending + 1) * sizeof *logs);
    size_t nlogs = 0;
    enum kz_err e = logs ? KZ_OK : KZ_INTERNAL;
    for (size_t i = 0; e == KZ_OK && i < s->npending; i++) {
        struct pending_event *p = &s->pending[i];
        if (!p->sk)
            continue; /* received from a peer: signed by its origin already */
        struct log_run *l = NULL;
        for (size_t j = nlogs; j-- > 0 && !l;) /* the newest logs first: a sender's own room */
            if (logs[j].room == p->room && logs[j].sk == p->sk)
                l = &logs[j];
        if (!l) {
            l = &logs[nlogs++];
            *l = (struct log_run){.room = p->room, .sk = p->sk};
        }
        l->last = i;
        l->last_signed = false;
        if (l->n + 1 >= max_n || l->bytes + (long long)p->len >= max_bytes) {
            e = sign_at(s, p);
            l->last_signed = true;
            l->n = l->bytes = 0;
        } else {
            l->n++;
            l->bytes += (long long)p->len;
        }
    }
    for (size_t j = 0; e == KZ_OK && j < nlogs; j++)
        if (!logs[j].last_signed)
            e = sign_at(s, &s->pending[logs[j].last]);
    free(logs);
    return e;
}
