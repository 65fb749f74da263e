/* ops_talk.c - messages, history, sync (resume then live), read markers, search. */
#include "json_write.h"
#include "metrics.h"
#include "server.h"

#include <string.h>

/* ---- sending ---- */

/* Its length is the command table's (max_message_bytes). */
static enum kz_err check_body(struct srv_call *c, const char *body)
{
    if (!body[strspn(body, " \t\r\n")])
        return srv_fail(c, KZ_BAD_REQUEST, "a message must not be blank");
    return KZ_OK;
}

/* In plain decimal, as cJSON would print them, but without its sprintf and sscanf round trip
 * (~5,000 instructions per reply; callgrind, docs/performance.md). */
static void add_int(cJSON *o, const char *key, int64_t v)
{
    char digits[KZ_JSON_INT_CHARS + 1];
    digits[kz_json_digits(v, digits)] = '\0';
    cJSON_AddRawToObject(o, key, digits);
}

void srv_reply_event(struct srv_call *c, int64_t pos, const char *event_id, int64_t ts)
{
    c->result = cJSON_CreateObject();
    add_int(c->result, "pos", pos);
    cJSON_AddStringToObject(c->result, "event_id", event_id);
    add_int(c->result, "ts", ts);
}

static int first_send(void *arg, const struct store_event *e)
{
    struct srv_call *c = arg;
    srv_reply_event(c, e->pos, e->event_id, e->ts);
    cJSON_AddStringToObject(c->result, "room", e->room_id);
    cJSON_AddBoolToObject(c->result, "duplicate", true);
    return 1;
}

enum kz_err srv_client_id_replay(struct srv_call *c, const struct store_room *room, bool *replayed)
{
    const char *client_id = srv_arg_str(c, "client_id");
    *replayed = false;
    if (!client_id)
        return KZ_OK;
    int64_t pos;
    enum store_rc rc = store_client_id_get(srv_store(c->srv), c->auth.user.id, client_id, &pos);
    if (rc == STORE_NOT_FOUND)
        return KZ_OK;
    if (rc != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "client id lookup failed");
    store_event_get(srv_store(c->srv), pos, first_send, c);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(c->result, "room");
    if (!cJSON_IsString(r) || strcmp(r->valuestring, room->room_id) != 0)
        return srv_fail(c, KZ_CONFLICT, "client_id was already used in another room");
    cJSON_DeleteItemFromObjectCaseSensitive(c->result, "room");
    *replayed = true;
    return KZ_OK;
}

enum kz_err op_msg_send(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    struct store_room room;
    struct store_member me;
    const char *body = srv_arg_str(c, "body");
    const char *client_id = srv_arg_str(c, "client_id");
    enum kz_err e;
    bool replayed;
    if ((e = srv_room_for_member(c, &room, &me)) || (e = check_body(c, body)) ||
        (e = srv_client_id_replay(c, &room, &replayed)) || replayed ||
        (e = srv_room_writable(c, &room)))
        return e;
    /* In a hotline room a message names the seat its sender holds there, and may be a first
     * report (urgent): every member server's on-duty seats get it as an alert. */
    cJSON *extra = NULL;
    bool hotline = false, urgent = srv_arg_bool(c, "urgent", false);
    if (room.authority[0] && store_room_is_hotline(st, room.id, &hotline) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "room lookup failed");
    if (urgent && !hotline)
        return srv_fail(c, KZ_BAD_REQUEST, "urgent is for first reports in hotline rooms");
    char seat[STORE_SEAT_MAX + 1];
    if (hotline) {
        extra = cJSON_CreateObject();
        if (store_seat_of(st, room.id, srv_server_id(c->srv), c->auth.user.id, seat, sizeof seat) ==
            STORE_OK)
            cJSON_AddStringToObject(extra, "seat", seat);
        if (urgent)
            cJSON_AddTrueToObject(extra, "urgent");
    }
    struct srv_appended ev;
    if ((e = srv_msg_post(c, &room, body, extra, &ev)))
        return e;
    /* Those not looking: a message addressed to them (a direct room, a mention) or a first
     * report. An edit pushes nothing: the message was pushed when it came, and a mention added
     * by an edit would wake someone about a message they may have read already. */
    if (srv_push_posted(c->srv, &room, ev.pos, ev.ts, c->auth.user.id, c->auth.user.name, "msg",
                        body, urgent) != KZ_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot queue the push");
    if (urgent && (e = srv_webhook_hotline(c, &room, ev.pos, body)))
        return e;
    if (client_id && store_client_id_put(st, c->auth.user.id, client_id, ev.pos) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot store the message");
    srv_reply_event(c, ev.pos, ev.event_id, ev.ts);
    kz_metrics.messages_received++;
    return KZ_OK;
}

enum kz_err srv_msg_post(struct srv_call *c, const struct store_room *room, const char *body,
                         cJSON *extra, struct srv_appended *out)
{
    cJSON *content = extra ? extra : cJSON_CreateObject();
    cJSON_AddStringToObject(content, "body", body);
    return srv_event_append(c, room, "msg", content, out); /* the row: event_apply.c */
}

/* The undeleted message at `pos` in this room that the caller may change: its own, or, to
 * delete it, anyone's in a group room the caller is an admin of (moderation: *moderated). */
static enum kz_err changeable_message(struct srv_call *c, const struct store_room *room,
                                      const struct store_member *me, bool is_delete,
                                      struct store_message *m, bool *moderated)
{
    int64_t pos = srv_arg_int(c, "pos", 0);
    *moderated = false;
    if (store_message_get(srv_store(c->srv), pos, m) != STORE_OK || m->room != room->id)
        return srv_fail(c, KZ_NOT_FOUND, "no message at position %lld in this room",
                        (long long)pos);
    if (m->sender != c->auth.user.id) {
        bool room_admin = strcmp(room->kind, "group") == 0 && strcmp(me->role, "admin") == 0;
        if (!is_delete)
            return srv_fail(c, KZ_FORBIDDEN, "only its author may edit a message");
        if (!room_admin)
            return srv_fail(c, KZ_FORBIDDEN,
                            "only its author or an admin of the room may delete a message");
        *moderated = true;
    }
    if (m->deleted)
        return srv_fail(c, KZ_CONFLICT, "the message was deleted");
    return KZ_OK;
}

static int copy_event_id(void *arg, const struct store_event *e)
{
    snprintf(arg, STORE_ROOM_ID_MAX + 1, "%s", e->event_id);
    return 1;
}

static enum kz_err change_message(struct srv_call *c, bool is_delete)
{
    struct store *st = srv_store(c->srv);
    struct store_room room;
    struct store_member me;
    struct store_message m;
    char target[STORE_ROOM_ID_MAX + 1] = "";
    const char *body = is_delete ? NULL : srv_arg_str(c, "body");
    bool moderated;
    enum kz_err e;
    if ((e = srv_room_for_member(c, &room, &me)) || (!is_delete && (e = check_body(c, body))) ||
        (e = changeable_message(c, &room, &me, is_delete, &m, &moderated)) ||
        (e = srv_room_writable(c, &room)))
        return e;
    store_event_get(st, m.pos, copy_event_id, target);
    cJSON *content = cJSON_CreateObject();
    cJSON_AddStringToObject(content, "target", target);
    if (body)
        cJSON_AddStringToObject(content, "body", body);
    if (moderated)
        cJSON_AddTrueToObject(content, "by_admin"); /* everyone is shown an admin removed it */
    struct srv_appended ev; /* which changes the message row (event_apply.c) */
    if ((e = srv_event_append(c, &room, is_delete ? "msg.delete" : "msg.edit", content, &ev)))
        return e;
    if (moderated) {
        /* Accountable: who removed whose message where. The text stays in the signed event
         * log; the audit entry does not copy it to admins outside the room. */
        struct store_user author;
        cJSON *details = cJSON_CreateObject();
        cJSON_AddStringToObject(details, "room", room.room_id);
        cJSON_AddStringToObject(details, "room_name", room.name);
        cJSON_AddNumberToObject(details, "pos", (double)m.pos);
        bool known = store_user_get(st, m.sender, &author) == STORE_OK;
        srv_audit(c, "msg.remove", known ? author.login : "", details);
    }
    srv_reply_event(c, ev.pos, ev.event_id, ev.ts);
    return KZ_OK;
}

enum kz_err op_msg_edit(struct srv_call *c)
{
    return change_message(c, false);
}

enum kz_err op_msg_delete(struct srv_call *c)
{
    return change_message(c, true);
}

/* ---- history ---- */

/* A page ends early once its events come to a quarter of max_queue_bytes, or 1 MiB if that
 * is more (their signed payloads, a close measure of what the reply carries), after at least
 * one event: a page of detailed photos (tens of KiB each) would otherwise be a frame of many
 * MiB. A reply larger than a small queue still goes when it meets an empty one (ws.c). */
#define PAGE_BYTES_MIN (1 << 20)
static size_t page_bytes_max(struct srv *s)
{
    size_t q = (size_t)srv_config(s)->max_queue_bytes / 4;
    return q < PAGE_BYTES_MIN ? PAGE_BYTES_MIN : q;
}

#define EVENT_JSON_OVERHEAD 256 /* what an event's JSON adds to its payload, at most about */

struct hist_ctx {
    struct srv *s;
    cJSON *arr;
    int n;
    size_t bytes, max;
    bool cut; /* stopped by bytes: more events are there */
};

static int hist_one(void *arg, const struct store_event *e, const struct store_message *m)
{
    struct hist_ctx *h = arg;
    if (h->n > 0 && h->bytes + e->payload_len > h->max) {
        h->cut = true;
        return 1;
    }
    cJSON *o = srv_event_json(h->s, e, m);
    if (o)
        cJSON_AddItemToArray(h->arr, o);
    h->n++;
    h->bytes += e->payload_len + EVENT_JSON_OVERHEAD;
    return 0;
}

static int64_t page_limit(struct srv_call *c, long long max)
{
    int64_t limit = srv_arg_int(c, "limit", 50);
    return limit > max ? max : limit;
}

enum kz_err op_history(struct srv_call *c)
{
    struct store_room room;
    struct store_member me;
    enum kz_err e = srv_room_for_member(c, &room, &me);
    if (e)
        return e;
    int64_t before = srv_arg_int(c, "before", 0);
    int64_t after = srv_arg_int(c, "after", -1);
    if (before && after >= 0)
        return srv_fail(c, KZ_BAD_REQUEST, "give before or after, not both");
    if (!before && after < 0)
        before = KZ_POS_MAX; /* neither: the newest page */
    int64_t limit = page_limit(c, srv_config(c->srv)->history_page_max);
    c->result = cJSON_CreateObject();
    struct hist_ctx h = {c->srv, cJSON_CreateArray(), 0, 0, page_bytes_max(c->srv), false};
    /* One more than asked, to tell whether more pages exist. */
    if (store_history(srv_store(c->srv), room.id, before, after, (int)limit + 1, hist_one, &h) !=
        STORE_OK) {
        cJSON_Delete(h.arr);
        return srv_fail(c, KZ_INTERNAL, "history failed");
    }
    bool more = h.cut || h.n > limit;
    if (h.n > limit)
        cJSON_DeleteItemFromArray(h.arr, (int)limit);
    if (before) {
        /* Fetched newest first; shown oldest first. */
        cJSON *asc = cJSON_CreateArray();
        for (cJSON *it; (it = cJSON_DetachItemFromArray(h.arr, cJSON_GetArraySize(h.arr) - 1));)
            cJSON_AddItemToArray(asc, it);
        cJSON_Delete(h.arr);
        h.arr = asc;
    }
    cJSON_AddItemToObject(c->result, "events", h.arr);
    cJSON_AddBoolToObject(c->result, "more", more);
    return KZ_OK;
}

/* ---- sync: resume, then live ---- */

struct sync_ctx {
    struct srv *s;
    cJSON *arr;
    int64_t last;
    int n;
    size_t bytes, max;
    bool cut; /* stopped by bytes (page_bytes_max): not live yet */
};

static int sync_one(void *arg, const struct store_event *e)
{
    struct sync_ctx *sc = arg;
    if (sc->n > 0 && sc->bytes + e->payload_len > sc->max) {
        sc->cut = true;
        return 1;
    }
    sc->bytes += e->payload_len + EVENT_JSON_OVERHEAD;
    cJSON *o = srv_event_json(sc->s, e, NULL);
    if (o)
        cJSON_AddItemToArray(sc->arr, o);
    sc->last = e->pos;
    sc->n++;
    return 0;
}

enum kz_err op_sync(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    int64_t since = srv_arg_int(c, "since", -1);
    int64_t limit = page_limit(c, srv_config(c->srv)->sync_page_max);
    if (since < 0 && store_event_last_pos(st, &since) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot read the position");
    struct sync_ctx sc = {c->srv, cJSON_CreateArray(), since, 0, 0, page_bytes_max(c->srv), false};
    if (store_event_each_for_user(st, c->auth.user.id, since, (int)limit, sync_one, &sc) !=
        STORE_OK) {
        cJSON_Delete(sc.arr);
        return srv_fail(c, KZ_INTERNAL, "sync failed");
    }
    /* A short page means nothing more is visible after it: from here on, events are pushed.
     * The loop is single-threaded, so nothing can commit between this query and the
     * subscription; anything pushed later is after sc.last. */
    bool live = !sc.cut && sc.n < limit;
    if (live && !c->is_http) {
        srv_tx(c->srv)->subscribe(srv_tx(c->srv)->ctx, c->conn_id, sc.last);
        srv_note_subscribe(c->srv, c->conn_id);
    }
    c->result = cJSON_CreateObject();
    cJSON_AddItemToObject(c->result, "events", sc.arr);
    cJSON_AddNumberToObject(c->result, "next", (double)sc.last);
    cJSON_AddBoolToObject(c->result, "live", live && !c->is_http);
    cJSON_AddBoolToObject(c->result, "more", !live);
    return KZ_OK;
}

/* ---- read markers ---- */

static int last_pos_of(void *arg, const struct store_event *e, const struct store_message *m)
{
    (void)m;
    *(int64_t *)arg = e->pos;
    return 1;
}

enum kz_err op_read(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    struct store_room room;
    struct store_member me;
    enum kz_err e = srv_room_for_member(c, &room, &me);
    if (e)
        return e;
    int64_t last = 0;
    store_history(st, room.id, KZ_POS_MAX, 0, 1, last_pos_of, &last);
    /* The room's end: in a shared room events arrive out of its order, so the last event in
     * that order need not have the greatest position; reading everything reaches both, the
     * greatest position and the last event's place in the order. */
    int64_t end = last;
    if (room.authority[0] && store_room_last_pos(st, room.id, &end) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot read the position");
    bool given = srv_arg_int(c, "pos", 0) > 0;
    int64_t pos = given ? srv_arg_int(c, "pos", 0) : end;
    if (pos > end)
        pos = end; /* a marker never points past the room's end */
    bool moved = false;
    if (pos > 0 && srv_read_marker_apply(c->srv, &room, c->auth.user.id, pos, given ? pos : last,
                                         kz_now_ms(), &moved) != KZ_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot store the read marker");
    c->result = cJSON_CreateObject();
    cJSON_AddNumberToObject(c->result, "read_pos", (double)(moved ? pos : me.read_pos));
    return KZ_OK;
}

struct readers_ctx {
    struct srv *s;
    int64_t room, pos, sender;
    cJSON *read, *unread;
    bool shared;                /* a shared room: read keys decide, as read_count does */
    struct store_order_key key; /* ... and the message's */
};

/* a >= b in the room's order (SQLite compares the origins as bytes, as strcmp does). */
static bool key_at_or_past(const struct store_order_key *a, const struct store_order_key *b)
{
    if (a->hlc != b->hlc)
        return a->hlc > b->hlc;
    int c = strcmp(a->origin, b->origin);
    if (c)
        return c > 0;
    if (a->inc != b->inc)
        return a->inc > b->inc;
    return a->seq >= b->seq;
}

static bool has_read(struct readers_ctx *r, const struct store_member *m)
{
    if (!r->shared)
        return m->read_pos >= r->pos;
    struct store_order_key k;
    return store_member_read_key_get(srv_store(r->s), r->room, m->user_id, &k) == STORE_OK &&
           key_at_or_past(&k, &r->key);
}

static int reader_one(void *arg, const struct store_member *m)
{
    struct readers_ctx *r = arg;
    if (m->user_id == r->sender)
        return 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "login", m->login);
    cJSON_AddStringToObject(o, "name", m->name);
    struct store_user u;
    if (r->shared && store_user_get(srv_store(r->s), m->user_id, &u) == STORE_OK)
        cJSON_AddStringToObject(o, "server", u.home[0] ? u.home : srv_server_id(r->s));
    if (has_read(r, m)) {
        int64_t at = 0;
        store_read_time(srv_store(r->s), r->room, m->user_id, r->pos, &at);
        cJSON_AddNumberToObject(o, "at", (double)at);
        cJSON_AddItemToArray(r->read, o);
    } else {
        cJSON_AddItemToArray(r->unread, o);
    }
    return 0;
}

/* A shared room's readers by server, as history's read_by_server shows them. */
static int reader_group(void *arg, const struct store_read_group *g)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "server", g->server);
    cJSON_AddStringToObject(o, "name", g->name);
    cJSON_AddNumberToObject(o, "read", (double)g->read);
    cJSON_AddNumberToObject(o, "members", (double)g->members);
    cJSON_AddItemToArray(arg, o);
    return 0;
}

/* An encrypted photo is read like a message: its event gives the room and the sender. */
struct photo_at {
    int64_t room, sender;
    bool found;
};

static int photo_of(void *arg, const struct store_event *e)
{
    struct photo_at *p = arg;
    if (strcmp(e->type, "e2ee.photo") == 0) {
        p->room = e->room;
        p->sender = e->sender;
        p->found = true;
    }
    return 1;
}

enum kz_err op_readers(struct srv_call *c)
{
    struct store_room room;
    struct store_member me;
    struct store_message m;
    enum kz_err e = srv_room_for_member(c, &room, &me);
    if (e)
        return e;
    int64_t pos = srv_arg_int(c, "pos", 0);
    struct photo_at photo = {0};
    if (store_message_get(srv_store(c->srv), pos, &m) == STORE_OK && m.room == room.id) {
        photo.sender = m.sender;
    } else if (store_event_get(srv_store(c->srv), pos, photo_of, &photo) != STORE_OK ||
               !photo.found || photo.room != room.id) {
        return srv_fail(c, KZ_NOT_FOUND, "no message or photo at position %lld in this room",
                        (long long)pos);
    }
    c->result = cJSON_CreateObject();
    struct readers_ctx r = {c->srv,
                            room.id,
                            pos,
                            photo.sender,
                            cJSON_AddArrayToObject(c->result, "read"),
                            cJSON_AddArrayToObject(c->result, "unread"),
                            .shared = room.authority[0] != '\0'};
    if (r.shared && store_event_key_at(srv_store(c->srv), room.id, pos, &r.key) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot read the message's place in the room");
    if (store_member_each(srv_store(c->srv), room.id, false, reader_one, &r) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "member list failed");
    if (r.shared) {
        struct store_event ev = {.room = room.id,
                                 .sender = photo.sender,
                                 .hlc = r.key.hlc,
                                 .inc = r.key.inc,
                                 .seq = r.key.seq,
                                 .shared = true};
        snprintf(ev.origin, sizeof ev.origin, "%s", r.key.origin);
        if (store_read_groups_event(srv_store(c->srv), &ev, srv_server_id(c->srv), reader_group,
                                    cJSON_AddArrayToObject(c->result, "by_server")) != STORE_OK)
            return srv_fail(c, KZ_INTERNAL, "cannot count the readers by server");
    }
    return KZ_OK;
}

/* ---- search ---- */

struct search_ctx {
    struct srv *s;
    cJSON *arr;
    int64_t last;
};

static int search_one(void *arg, const struct store_search_hit *h)
{
    struct search_ctx *sc = arg;
    struct store *st = srv_store(sc->s);
    struct store_room r;
    struct store_user u;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", h->notice ? "notice" : "msg");
    if (h->notice) {
        char link[48];
        snprintf(link, sizeof link, "kizuna://notice/%lld", (long long)h->notice);
        cJSON_AddNumberToObject(o, "notice", (double)h->notice);
        cJSON_AddStringToObject(o, "link", link);
        cJSON_AddStringToObject(o, "title", h->title);
        cJSON_AddBoolToObject(o, "withdrawn", h->withdrawn_at != 0);
    } else if (store_room_get_by_id(st, h->room, &r) == STORE_OK) {
        cJSON_AddStringToObject(o, "room", r.room_id);
    }
    cJSON_AddNumberToObject(o, "pos", (double)h->pos);
    if (store_user_get(st, h->sender, &u) == STORE_OK) {
        cJSON_AddStringToObject(o, "sender", u.login);
        cJSON_AddStringToObject(o, "sender_name", u.name);
    }
    cJSON_AddStringToObject(o, "body", h->body);
    cJSON_AddNumberToObject(o, "ts", (double)h->ts);
    cJSON_AddItemToArray(sc->arr, o);
    sc->last = h->pos;
    return 0;
}

enum kz_err op_search(struct srv_call *c)
{
    const char *query = srv_arg_str(c, "query");
    if (!query[strspn(query, " \t")])
        return srv_fail(c, KZ_BAD_REQUEST, "field 'query' must not be blank");
    int64_t room_id = 0;
    if (srv_arg_str(c, "room")) {
        struct store_room room;
        struct store_member me;
        enum kz_err e = srv_room_for_member(c, &room, &me);
        if (e)
            return e;
        room_id = room.id;
    }
    int64_t limit = page_limit(c, srv_config(c->srv)->history_page_max);
    c->result = cJSON_CreateObject();
    struct search_ctx sc = {c->srv, cJSON_AddArrayToObject(c->result, "results"), 0};
    enum store_rc rc = store_search(srv_store(c->srv), c->auth.user.id, room_id, query,
                                    srv_arg_int(c, "before", 0), (int)limit, search_one, &sc);
    if (rc == STORE_CONFLICT)
        return srv_fail(c, KZ_BAD_REQUEST, "field 'query' must hold 1 to %d words",
                        STORE_SEARCH_TERMS_MAX);
    if (rc != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "search failed");
    if (cJSON_GetArraySize(sc.arr) == limit)
        cJSON_AddNumberToObject(c->result, "next_before", (double)sc.last);
    return KZ_OK;
}
