/* events.c - room events: signed bytes in per-origin logs, their client view, and delivery.
 *
 * An event's payload is serialised once and stored verbatim; its id is BLAKE2b-256 over
 * "kizuna/id/v1\0" || payload, and each payload names the id of the previous event of its log
 * (`prev`), so the ids chain every log. Signatures are checkpoints: before each commit the
 * server signs, with its Ed25519 key over "kizuna/event/v1\0" || payload, the newest event of
 * every log the commit extended; that signature covers the event and, through the chain,
 * everything before it in the log. Events between checkpoints store an empty signature.
 * Signing every event cost 30 us each, half of the send path (docs/performance.md); one
 * signature per log per commit keeps the same guarantee for a fraction of that.
 * Nobody re-serialises a stored event. Events reach members only after their commit. */
#include "core.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static const char sign_domain[] = "kizuna/event/v1";
static const char id_domain[] = "kizuna/id/v1";
static const char room_domain[] = "kizuna/room/v1";

/* base64url (no padding) of BLAKE2b-256(domain || NUL || payload). */
static void hash_id(const char *domain, const char *payload, size_t len,
                    char out[STORE_ROOM_ID_MAX + 1])
{
    unsigned char h[32];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    crypto_generichash_update(&st, (const unsigned char *)domain, strlen(domain) + 1);
    crypto_generichash_update(&st, (const unsigned char *)payload, len);
    crypto_generichash_final(&st, h, sizeof h);
    sodium_bin2base64(out, STORE_ROOM_ID_MAX + 1, h, sizeof h,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static int sign(const struct srv *s, const char *payload, size_t len, unsigned char sig[64])
{
    size_t dlen = sizeof sign_domain; /* includes the NUL separator */
    unsigned char *msg = malloc(dlen + len);
    if (!msg)
        return -1;
    memcpy(msg, sign_domain, dlen);
    memcpy(msg + dlen, payload, len);
    int rc = crypto_sign_detached(sig, NULL, msg, dlen + len, s->sk);
    free(msg);
    return rc;
}

static int queue_pending(struct srv *s, int64_t pos, int64_t room, int64_t also_user,
                         struct kz_frame *frame)
{
    if (s->npending == s->cappending) {
        size_t cap = s->cappending ? s->cappending * 2 : 64;
        struct pending_event *p = realloc(s->pending, cap * sizeof *p);
        if (!p)
            return -1;
        s->pending = p;
        s->cappending = cap;
    }
    s->pending[s->npending++] = (struct pending_event){pos, room, also_user, frame};
    return 0;
}

/* Builds, signs and stores one event. room->id is 0 for room.create (handled by the caller
 * through srv_room_create, which passes the room after inserting it). */
static enum kz_err append(struct srv_call *c, const struct store_room *room, const char *type,
                          cJSON *content, int64_t also_user, struct srv_appended *out,
                          bool is_create, char *created_room_id, struct store_room *to_insert,
                          const char *direct_key)
{
    struct srv *s = c->srv;
    struct store *st = s->store;
    enum kz_err e = KZ_OK;
    char *payload = NULL;
    int64_t seq = 0;
    char prev[STORE_ROOM_ID_MAX + 1] = "";
    if (!is_create && store_log_head(st, room->id, s->origin, s->inc, &seq, prev) != STORE_OK) {
        cJSON_Delete(content);
        return srv_fail(c, KZ_INTERNAL, "cannot read the room's log");
    }
    int64_t ts = kz_now_ms();
    cJSON *p = cJSON_CreateObject();
    if (!is_create)
        cJSON_AddStringToObject(p, "room", room->room_id);
    cJSON_AddStringToObject(p, "origin", s->origin);
    cJSON_AddNumberToObject(p, "inc", (double)s->inc);
    cJSON_AddNumberToObject(p, "seq", (double)(seq + 1));
    cJSON_AddItemToObject(p, "prev", prev[0] ? cJSON_CreateString(prev) : cJSON_CreateNull());
    cJSON_AddNumberToObject(p, "ts", (double)ts);
    cJSON_AddStringToObject(p, "type", type);
    cJSON_AddStringToObject(p, "sender", c->auth.user.login);
    cJSON_AddItemToObject(p, "content", content);
    payload = cJSON_PrintUnformatted(p);
    cJSON_Delete(p);
    if (!payload)
        return srv_fail(c, KZ_INTERNAL, "out of memory");
    size_t len = strlen(payload);
    static const unsigned char unsigned_yet[1];
    struct store_event ev = {.room = room ? room->id : 0,
                             .inc = s->inc,
                             .seq = seq + 1,
                             .sender = c->auth.user.id,
                             .ts = ts,
                             .payload = payload,
                             .payload_len = len,
                             .sig = unsigned_yet, /* signed at the checkpoint */
                             .sig_len = 0};
    snprintf(ev.origin, sizeof ev.origin, "%s", s->origin);
    snprintf(ev.type, sizeof ev.type, "%s", type);
    hash_id(id_domain, payload, len, ev.event_id);
    if (is_create) {
        /* The room is named by its own creation: self-certifying, as FEDERATION.md F11. */
        hash_id(room_domain, payload, len, created_room_id);
        snprintf(to_insert->room_id, sizeof to_insert->room_id, "%s", created_room_id);
        to_insert->created_by = c->auth.user.id;
        to_insert->created_at = ts;
        enum store_rc rc = store_room_insert(st, to_insert, direct_key);
        if (rc != STORE_OK) {
            e = srv_fail(c, rc == STORE_CONFLICT ? KZ_CONFLICT : KZ_INTERNAL,
                         "cannot create the room");
            goto out;
        }
        ev.room = to_insert->id;
    }
    if (store_event_insert(st, &ev) != STORE_OK) {
        e = srv_fail(c, KZ_INTERNAL, "cannot store the event: %s", store_errmsg(st));
        goto out;
    }
    /* Serialised once, now, while the payload is at hand; every recipient shares it. */
    snprintf(ev.room_id, sizeof ev.room_id, "%s", is_create ? created_room_id : room->room_id);
    cJSON *view = srv_event_json_new(s, &ev, c->auth.user.name);
    struct kz_frame *frame = view ? kz_frame_from_json(view, 200) : NULL;
    cJSON_Delete(view);
    if (!frame || queue_pending(s, ev.pos, ev.room, also_user, frame) != 0) {
        kz_frame_unref(frame);
        e = srv_fail(c, KZ_INTERNAL, "out of memory");
        goto out;
    }
    out->pos = ev.pos;
    out->ts = ts;
    snprintf(out->event_id, sizeof out->event_id, "%s", ev.event_id);
out:
    cJSON_free(payload);
    return e;
}

enum kz_err srv_event_append(struct srv_call *c, const struct store_room *room, const char *type,
                             cJSON *content, int64_t also_user, struct srv_appended *out)
{
    return append(c, room, type, content, also_user, out, false, NULL, NULL, NULL);
}

enum kz_err srv_room_create(struct srv_call *c, struct store_room *r, const char *direct_key,
                            cJSON *policy, struct srv_appended *out)
{
    cJSON *content = cJSON_CreateObject();
    cJSON_AddStringToObject(content, "kind", r->kind);
    cJSON_AddStringToObject(content, "name", r->name);
    cJSON_AddStringToObject(content, "topic", r->topic);
    cJSON_AddStringToObject(content, "history", r->history[0] ? r->history : "shared");
    if (policy) /* the creator's signed history policy: the room's id is its hash too */
        cJSON_AddItemToObject(content, "policy", policy);
    return srv_room_create_with(c, r, direct_key, "room.create", content, out);
}

enum kz_err srv_room_create_with(struct srv_call *c, struct store_room *r, const char *direct_key,
                                 const char *type, cJSON *content, struct srv_appended *out)
{
    /* Two rooms created alike in the same millisecond still get different ids. */
    unsigned char nonce[12];
    char nonce_b64[24];
    randombytes_buf(nonce, sizeof nonce);
    sodium_bin2base64(nonce_b64, sizeof nonce_b64, nonce, sizeof nonce,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    cJSON_AddStringToObject(content, "nonce", nonce_b64);
    char room_id[STORE_ROOM_ID_MAX + 1];
    return append(c, NULL, type, content, 0, out, true, room_id, r, direct_key);
}

/* ---- the client's view ---- */

/* A one-entry cache: pages of history and resume are mostly one sender after another. */
static void add_user_name(struct srv *s, cJSON *o, const char *key, int64_t user_id)
{
    static struct srv *cached_srv;
    static int64_t cached_id;
    static int64_t cached_at;
    static char cached_name[STORE_NAME_MAX + 1];
    int64_t now = kz_now_ms();
    /* Names change rarely; a second of staleness is harmless and bounded. */
    if (user_id && (cached_srv != s || cached_id != user_id || now - cached_at > 1000)) {
        struct store_user u;
        if (store_user_get(s->store, user_id, &u) != STORE_OK)
            return;
        cached_srv = s;
        cached_id = user_id;
        cached_at = now;
        snprintf(cached_name, sizeof cached_name, "%s", u.name);
    }
    if (user_id)
        cJSON_AddStringToObject(o, key, cached_name);
}

static cJSON *event_view(struct srv *s, const struct store_event *e, const struct store_message *m,
                         const char *sender_name)
{
    cJSON *p = cJSON_ParseWithLength(e->payload, e->payload_len);
    if (!p)
        return NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", e->type);
    cJSON_AddStringToObject(o, "room", e->room_id);
    cJSON_AddNumberToObject(o, "pos", (double)e->pos);
    cJSON_AddStringToObject(o, "event_id", e->event_id);
    cJSON_AddStringToObject(o, "origin", e->origin);
    cJSON_AddNumberToObject(o, "seq", (double)e->seq);
    cJSON_AddNumberToObject(o, "ts", (double)e->ts);
    const cJSON *sender = cJSON_GetObjectItemCaseSensitive(p, "sender");
    if (cJSON_IsString(sender))
        cJSON_AddStringToObject(o, "sender", sender->valuestring);
    if (sender_name)
        cJSON_AddStringToObject(o, "sender_name", sender_name);
    else
        add_user_name(s, o, "sender_name", e->sender);
    cJSON *content = cJSON_DetachItemFromObjectCaseSensitive(p, "content");
    if (!content)
        content = cJSON_CreateObject();
    bool is_photo = strcmp(e->type, "e2ee.photo") == 0;
    if (strcmp(e->type, "msg") == 0 || is_photo) {
        if (m && !is_photo) {
            cJSON_ReplaceItemInObjectCaseSensitive(content, "body", cJSON_CreateString(m->body));
            cJSON_AddBoolToObject(o, "edited", m->edited_at > 0 && !m->deleted);
            cJSON_AddBoolToObject(o, "deleted", m->deleted);
            struct store_user by;
            if (m->deleted && m->deleted_by &&
                store_user_get(s->store, m->deleted_by, &by) == STORE_OK) {
                /* Removed by a room admin, not by its author: everyone is shown so. */
                cJSON_AddStringToObject(o, "deleted_by", by.login);
                cJSON_AddBoolToObject(o, "deleted_by_admin", m->deleted_by != m->sender);
            }
        }
        int64_t n = 0;
        if (!sender_name) /* a new message has no readers yet */
            store_read_count(s->store, e->room, e->pos, e->sender, &n);
        cJSON_AddNumberToObject(o, "read_count", (double)n);
    } else if (strncmp(e->type, "msg.", 4) == 0) {
        const cJSON *target = cJSON_GetObjectItemCaseSensitive(content, "target");
        int64_t pos;
        if (cJSON_IsString(target) &&
            store_event_pos(s->store, target->valuestring, &pos) == STORE_OK)
            cJSON_AddNumberToObject(o, "target_pos", (double)pos);
    }
    cJSON_AddItemToObject(o, "content", content);
    if (strcmp(e->type, "room.create") == 0) {
        /* The bytes the room's id hashes: clients check a room's creation (its history
         * policy, who created it) against the id instead of taking the server's word. */
        char *raw = malloc(e->payload_len + 1);
        if (raw) {
            memcpy(raw, e->payload, e->payload_len);
            raw[e->payload_len] = '\0';
            cJSON_AddStringToObject(o, "payload", raw);
        }
        free(raw);
    }
    cJSON_Delete(p);
    return o;
}

cJSON *srv_event_json(struct srv *s, const struct store_event *e, const struct store_message *m)
{
    return event_view(s, e, m, NULL);
}

cJSON *srv_event_json_new(struct srv *s, const struct store_event *e, const char *sender_name)
{
    return event_view(s, e, NULL, sender_name);
}

/* ---- delivery after commit ---- */

static void pushes_deliver(struct srv *s);

struct deliver_ctx {
    struct srv *s;
    int64_t pos;
    int64_t also_user;
    struct kz_frame *frame;
};

static int deliver_to_member(void *arg, const struct store_member *m)
{
    struct deliver_ctx *d = arg;
    d->s->tx.push(d->s->tx.ctx, m->user_id, d->pos, d->frame);
    if (m->user_id == d->also_user)
        d->also_user = 0;
    return 0;
}

void srv_events_deliver(struct srv *s)
{
    for (size_t i = 0; i < s->npending; i++) {
        struct pending_event *p = &s->pending[i];
        struct deliver_ctx d = {
            .s = s, .pos = p->pos, .also_user = p->also_user, .frame = p->frame};
        store_member_each(s->store, p->room, false, deliver_to_member, &d);
        if (d.also_user)
            s->tx.push(s->tx.ctx, d.also_user, d.pos, d.frame);
        kz_frame_unref(p->frame);
    }
    s->npending = 0;
    pushes_deliver(s);
}

struct sign_ctx {
    struct srv *s;
    bool ok;
};

static int sign_head(void *arg, const struct store_event *e)
{
    struct sign_ctx *sc = arg;
    unsigned char sig[crypto_sign_BYTES];
    sc->ok = sign(sc->s, e->payload, e->payload_len, sig) == 0 &&
             store_event_set_sig(sc->s->store, e->pos, sig, sizeof sig) == STORE_OK;
    return 1;
}

enum kz_err srv_events_checkpoint(struct srv *s)
{
    /* Newest first: the first event seen of each room is the head of its log. */
    int64_t *seen = malloc((s->npending + 1) * sizeof *seen);
    size_t nseen = 0;
    enum kz_err e = seen ? KZ_OK : KZ_INTERNAL;
    for (size_t i = s->npending; e == KZ_OK && i-- > 0;) {
        struct pending_event *p = &s->pending[i];
        bool done = false;
        for (size_t j = 0; j < nseen && !done; j++)
            done = seen[j] == p->room;
        if (done)
            continue;
        seen[nseen++] = p->room;
        struct sign_ctx sc = {s, false};
        if (store_event_get(s->store, p->pos, sign_head, &sc) != STORE_OK || !sc.ok)
            e = KZ_INTERNAL;
    }
    free(seen);
    return e;
}

void srv_events_truncate(struct srv *s, size_t npending, size_t npushes)
{
    for (size_t i = npending; i < s->npending; i++)
        kz_frame_unref(s->pending[i].frame);
    if (npending < s->npending)
        s->npending = npending;
    for (size_t i = npushes; i < s->npushes; i++)
        kz_frame_unref(s->pushes[i].frame);
    if (npushes < s->npushes)
        s->npushes = npushes;
}

void srv_events_forget(struct srv *s)
{
    for (size_t i = 0; i < s->npending; i++)
        kz_frame_unref(s->pending[i].frame);
    s->npending = 0;
    for (size_t i = 0; i < s->npushes; i++)
        kz_frame_unref(s->pushes[i].frame);
    s->npushes = 0;
}

void srv_push_after_commit(struct srv *s, int64_t user_id, struct kz_frame *f, bool urgent)
{
    if (s->npushes == s->cappushes) {
        size_t cap = s->cappushes ? s->cappushes * 2 : 64;
        struct pending_push *p = realloc(s->pushes, cap * sizeof *p);
        if (!p)
            return; /* a notification lost; the state it announces is still in the store */
        s->pushes = p;
        s->cappushes = cap;
    }
    s->pushes[s->npushes++] = (struct pending_push){user_id, kz_frame_ref(f), urgent};
}

static void pushes_deliver(struct srv *s)
{
    for (size_t i = 0; i < s->npushes; i++) {
        struct pending_push *p = &s->pushes[i];
        if (p->urgent)
            s->tx.alert(s->tx.ctx, p->user_id, p->frame);
        else
            s->tx.push(s->tx.ctx, p->user_id, 0, p->frame);
        kz_frame_unref(p->frame);
    }
    s->npushes = 0;
}

/* ---- read markers: coalesced pushes ---- */

void srv_read_changed(struct srv *s, int64_t room, int64_t user_id, int64_t old_pos,
                      int64_t new_pos)
{
    struct read_dirty *d = NULL;
    for (size_t i = 0; i < s->ndirty; i++)
        if (s->dirty[i].room == room)
            d = &s->dirty[i];
    if (!d) {
        if (s->ndirty == s->capdirty) {
            size_t cap = s->capdirty ? s->capdirty * 2 : 8;
            struct read_dirty *grown = realloc(s->dirty, cap * sizeof *grown);
            if (!grown)
                return; /* the counts are still right in history; only the live push is lost */
            s->dirty = grown;
            s->capdirty = cap;
        }
        d = &s->dirty[s->ndirty++];
        *d = (struct read_dirty){.room = room, .lo = old_pos, .hi = new_pos};
    }
    if (old_pos < d->lo)
        d->lo = old_pos;
    if (new_pos > d->hi)
        d->hi = new_pos;
    for (size_t i = 0; i < d->nusers; i++)
        if (d->users[i] == user_id)
            goto schedule;
    if (d->nusers == d->capusers) {
        size_t cap = d->capusers ? d->capusers * 2 : 8;
        int64_t *grown = realloc(d->users, cap * sizeof *grown);
        if (!grown)
            goto schedule;
        d->users = grown;
        d->capusers = cap;
    }
    d->users[d->nusers++] = user_id;
schedule:
    if (!s->tick_scheduled) {
        s->tick_scheduled = true;
        s->tx.timer(s->tx.ctx, (int)s->cfg->read_push_interval_ms);
    }
}

#define READ_PUSH_COUNTS_MAX 100

struct counts_ctx {
    struct srv *s;
    int64_t lo;
    cJSON *counts;
};

static int add_count(void *arg, const struct store_event *e, const struct store_message *m)
{
    struct counts_ctx *cc = arg;
    if (e->pos <= cc->lo)
        return 1;
    /* Messages and encrypted photos: both are what people read (既読). */
    if (strcmp(e->type, "e2ee.photo") != 0 && (!m || m->deleted))
        return 0;
    int64_t n = 0;
    store_read_count(cc->s->store, e->room, e->pos, e->sender, &n);
    cJSON *pair = cJSON_CreateArray();
    cJSON_AddItemToArray(pair, cJSON_CreateNumber((double)e->pos));
    cJSON_AddItemToArray(pair, cJSON_CreateNumber((double)n));
    /* Walked newest first; listed oldest first. */
    cJSON_InsertItemInArray(cc->counts, 0, pair);
    return 0;
}

struct push_ctx {
    struct srv *s;
    struct kz_frame *frame;
};

static int push_state(void *arg, const struct store_member *m)
{
    struct push_ctx *pc = arg;
    pc->s->tx.push(pc->s->tx.ctx, m->user_id, 0, pc->frame);
    return 0;
}

/* One `read` event per changed room: the markers that moved and the new counts of the most
 * recent messages they affect, to every member's live connections. */
void srv_reads_push(struct srv *s)
{
    for (size_t i = 0; i < s->ndirty; i++) {
        struct read_dirty *d = &s->dirty[i];
        struct store_room room;
        if (store_room_get_by_id(s->store, d->room, &room) != STORE_OK)
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "event", "read");
        cJSON_AddStringToObject(o, "room", room.room_id);
        cJSON *markers = cJSON_AddArrayToObject(o, "markers");
        for (size_t j = 0; j < d->nusers; j++) {
            struct store_member m;
            if (store_member_get(s->store, d->room, d->users[j], &m) != STORE_OK)
                continue;
            cJSON *mk = cJSON_CreateObject();
            cJSON_AddStringToObject(mk, "user", m.login);
            cJSON_AddNumberToObject(mk, "pos", (double)m.read_pos);
            cJSON_AddNumberToObject(mk, "at", (double)m.read_at);
            cJSON_AddItemToArray(markers, mk);
        }
        struct counts_ctx cc = {s, d->lo, cJSON_AddArrayToObject(o, "counts")};
        store_history(s->store, d->room, d->hi + 1, 0, READ_PUSH_COUNTS_MAX, add_count, &cc);
        struct push_ctx pc = {s, kz_frame_from_json(o, 200)};
        cJSON_Delete(o);
        if (pc.frame) {
            store_member_each(s->store, d->room, false, push_state, &pc);
            kz_frame_unref(pc.frame);
        }
        free(d->users);
    }
    s->ndirty = 0;
}

void srv_reads_free(struct srv *s)
{
    for (size_t i = 0; i < s->ndirty; i++)
        free(s->dirty[i].users);
    free(s->dirty);
    s->dirty = NULL;
    s->ndirty = s->capdirty = 0;
}
