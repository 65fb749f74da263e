/* event_deliver.c - delivery to connections: the events and pushes of the open transaction,
 * handed to the transport once it commits (forgotten if it fails or its op rolls back), and
 * read markers, coalesced into one `read` push per room every read_push_interval_ms (in a
 * shared room with the counts by server too). Nothing
 * reaches a connection before the commit that made it durable. In shared rooms the same beat
 * publishes local users' read keys to the other servers as room.read events, at most one per
 * (room, user) every federation_read_publish_ms. */
#include "core.h"

#include <stdlib.h>
#include <string.h>

int srv_events_queue(struct srv *s, int64_t pos, int64_t room, int64_t also_user, const uint8_t *sk,
                     size_t len, struct kz_frame *frame)
{
    if (s->npending == s->cappending) {
        size_t cap = s->cappending ? s->cappending * 2 : 64;
        struct pending_event *p = realloc(s->pending, cap * sizeof *p);
        if (!p)
            return -1;
        s->pending = p;
        s->cappending = cap;
    }
    s->pending[s->npending++] = (struct pending_event){pos, room, also_user, sk, len, frame};
    return 0;
}

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
    srv_out_push(d->s, m->user_id, d->pos, d->frame);
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
        if (srv_event_frame_hidden(p->frame))
            d.also_user = 0; /* a room.read: replicated, never pushed */
        else
            store_member_each(s->store, p->room, false, deliver_to_member, &d);
        struct store_room r;
        if (p->sk && store_room_get_by_id(s->store, p->room, &r) == STORE_OK && r.authority[0])
            srv_fed_room_changed(s, p->room); /* a shared room: its peers get it too */
        if (d.also_user)
            srv_out_push(s, d.also_user, d.pos, d.frame);
        kz_frame_unref(p->frame);
    }
    s->npending = 0;
    pushes_deliver(s);
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
            srv_out_alert(s, p->user_id, p->frame);
        else
            srv_out_push(s, p->user_id, 0, p->frame);
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
    cJSON *by_server; /* a shared room's: [[pos, [[server, read, members], ...]], ...] */
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
    cJSON *groups = NULL;
    if (cc->by_server && e->shared) /* one statement gives both: the count is the groups' sum */
        groups = srv_read_groups_json(cc->s, e, false, &n);
    else
        store_read_count_event(cc->s->store, e, &n);
    cJSON *pair = cJSON_CreateArray();
    cJSON_AddItemToArray(pair, cJSON_CreateNumber((double)e->pos));
    cJSON_AddItemToArray(pair, cJSON_CreateNumber((double)n));
    /* Walked newest first; listed oldest first. */
    cJSON_InsertItemInArray(cc->counts, 0, pair);
    if (groups) {
        cJSON *g = cJSON_CreateArray();
        cJSON_AddItemToArray(g, cJSON_CreateNumber((double)e->pos));
        cJSON_AddItemToArray(g, groups);
        cJSON_InsertItemInArray(cc->by_server, 0, g);
    }
    return 0;
}

struct push_ctx {
    struct srv *s;
    struct kz_frame *frame;
};

static int push_state(void *arg, const struct store_member *m)
{
    struct push_ctx *pc = arg;
    srv_out_push(pc->s, m->user_id, 0, pc->frame);
    return 0;
}

/* ---- read keys of shared rooms: published as room.read events, coalesced ---- */

void srv_read_publish_later(struct srv *s, int64_t room, int64_t user_id)
{
    for (size_t i = 0; i < s->npubs; i++)
        if (s->pubs[i].room == room && s->pubs[i].user_id == user_id) {
            s->pubs[i].due = true;
            return;
        }
    if (s->npubs == s->cappubs) {
        size_t cap = s->cappubs ? s->cappubs * 2 : 8;
        struct read_pub *grown = realloc(s->pubs, cap * sizeof *grown);
        if (!grown)
            return; /* this move stays local; the user's next one is published */
        s->pubs = grown;
        s->cappubs = cap;
    }
    s->pubs[s->npubs++] = (struct read_pub){.room = room, .user_id = user_id, .due = true};
}

/* One room.read in this server's log, sent by the user, with the user's key as it is now (the
 * last position read, however many reads led there), if the user is still a member. In its own
 * savepoint. False if it could not be written now (writes refused, a store error): it is tried
 * again after federation_read_publish_ms. */
static bool read_publish(struct srv *s, const struct read_pub *p)
{
    struct store_room room;
    struct store_user u;
    struct store_member m;
    struct store_order_key k;
    if (store_room_get_by_id(s->store, p->room, &room) != STORE_OK || !room.authority[0] ||
        store_user_get(s->store, p->user_id, &u) != STORE_OK || u.home[0] ||
        store_member_get(s->store, p->room, p->user_id, &m) != STORE_OK || m.left_pos ||
        store_member_read_key_get(s->store, p->room, p->user_id, &k) != STORE_OK)
        return true; /* nothing to publish */
    if (srv_fed_tx_begin(s) != KZ_OK || store_op_begin(s->store) != STORE_OK)
        return false;
    size_t npending = s->npending, npushes = s->npushes;
    cJSON *content = cJSON_CreateObject();
    cJSON *key = cJSON_AddArrayToObject(content, "read");
    cJSON_AddItemToArray(key, cJSON_CreateNumber((double)k.hlc));
    cJSON_AddItemToArray(key, cJSON_CreateString(k.origin));
    cJSON_AddItemToArray(key, cJSON_CreateNumber((double)k.inc));
    cJSON_AddItemToArray(key, cJSON_CreateNumber((double)k.seq));
    struct srv_origin origin = srv_origin_local(s);
    struct srv_actor actor = {.user_id = u.id, .login = u.login, .name = u.name};
    struct srv_appended out;
    enum kz_err e = srv_log_append(s, &origin, &actor, &room, "room.read", content, &out);
    if (store_op_end(s->store, e == KZ_OK) != STORE_OK || e != KZ_OK) {
        srv_events_truncate(s, npending, npushes);
        KZ_WARN("read_publish_failed", "room=%s user=%s error=\"%s\"", room.room_id, u.login,
                e ? out.error : store_errmsg(s->store));
        return false;
    }
    return true;
}

/* Publishes the keys that are due and whose last room.read is federation_read_publish_ms old;
 * forgets entries with nothing due once that long has passed; wakes again for the rest. */
static void reads_publish(struct srv *s)
{
    int64_t now = kz_now_ms(), every = s->cfg->federation_read_publish_ms, wait = -1;
    size_t kept = 0;
    for (size_t i = 0; i < s->npubs; i++) {
        struct read_pub p = s->pubs[i];
        int64_t left = p.published_at + every - now;
        if (p.due && left <= 0) {
            p.due = !read_publish(s, &p);
            p.published_at = now;
            left = every;
        }
        if (!p.due && left <= 0)
            continue;
        if (p.due && (wait < 0 || left < wait))
            wait = left;
        s->pubs[kept++] = p;
    }
    s->npubs = kept;
    if (wait >= 0 && !s->tick_scheduled) {
        s->tick_scheduled = true;
        s->tx.timer(
            s->tx.ctx,
            (int)(wait < s->cfg->read_push_interval_ms ? s->cfg->read_push_interval_ms : wait));
    }
}

/* One `read` event per changed room: the markers that moved and the new counts of the most
 * recent messages they affect, to every member's live connections; then the shared rooms'
 * read keys that are due go out as room.read events. */
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
            struct store_order_key k;
            if (room.authority[0] &&
                store_member_read_key_get(s->store, d->room, d->users[j], &k) == STORE_OK) {
                cJSON *key = cJSON_AddArrayToObject(mk, "read");
                cJSON_AddItemToArray(key, cJSON_CreateNumber((double)k.hlc));
                cJSON_AddItemToArray(key, cJSON_CreateString(k.origin));
                cJSON_AddItemToArray(key, cJSON_CreateNumber((double)k.inc));
                cJSON_AddItemToArray(key, cJSON_CreateNumber((double)k.seq));
            }
            cJSON_AddItemToArray(markers, mk);
        }
        struct counts_ctx cc = {s, d->lo, cJSON_AddArrayToObject(o, "counts"), NULL};
        if (room.authority[0]) /* a shared room: the same counts by server besides */
            cc.by_server = cJSON_AddArrayToObject(o, "counts_by_server");
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
    if (s->npubs)
        reads_publish(s);
}

void srv_reads_free(struct srv *s)
{
    for (size_t i = 0; i < s->ndirty; i++)
        free(s->dirty[i].users);
    free(s->dirty);
    s->dirty = NULL;
    s->ndirty = s->capdirty = 0;
    free(s->pubs);
    s->pubs = NULL;
    s->npubs = s->cappubs = 0;
}
