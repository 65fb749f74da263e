/* ops_fed_rooms.c - room.servers: where a room lives (issue 17, item 9). A shared room's authority
 * and member servers as this server holds them (admitted or removed, from the authority's log:
 * store_room_server_each), and for one event of the room which of them have acknowledged it to
 * this server (store_fed_acked_each over the event's (origin, inc, seq)). A room of this server
 * only has no authority and this server as its one server. Reads only; a member of the room or
 * an admin may ask (docs/protocol.md). What a peer still lacks of all rooms is peer.list's
 * `replication` (ops_peer.c). */
#include "server.h"
#include "store_fed.h"

#include <stdio.h>
#include <string.h>

/* The room by the `room` argument: any room but a notice's for an admin, else the caller's
 * (srv_room_for_member: the same not_found for a room that does not exist). */
static enum kz_err room_for_caller(struct srv_call *c, struct store_room *room)
{
    if (!kz_role_is(c->auth.user.role, KZ_ROLE_ADMIN)) {
        struct store_member me;
        return srv_room_for_member(c, room, &me);
    }
    enum store_rc rc = store_room_get(srv_store(c->srv), srv_arg_str(c, "room"), room);
    if (rc == STORE_OK && strcmp(room->kind, "notice") == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_NOT_FOUND)
        return srv_fail(c, KZ_NOT_FOUND, "no such room");
    return rc == STORE_OK ? KZ_OK : srv_fail(c, KZ_INTERNAL, "room lookup failed");
}

struct servers_ctx {
    struct srv_call *c;
    const char *self;
    cJSON *list;
    int64_t room;
    bool hotline; /* each server's role in the counterpart group, too */
};

static cJSON *server_json(struct srv_call *c, const char *id, bool self, bool admitted)
{
    struct store_peer p;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "server", id);
    /* A peer's municipality name as pinned here; this server has no name setting, and a server
     * no longer pinned has none. */
    bool named = !self && store_peer_get(srv_store(c->srv), id, &p) == STORE_OK;
    cJSON_AddStringToObject(o, "name", named ? p.name : "");
    cJSON_AddBoolToObject(o, "self", self);
    cJSON_AddBoolToObject(o, "admitted", admitted);
    return o;
}

static int server_one(void *ctx, const char *server, bool admitted)
{
    struct servers_ctx *sc = ctx;
    cJSON *o = server_json(sc->c, server, strcmp(server, sc->self) == 0, admitted);
    char role[24] = "";
    if (sc->hotline && store_room_server_role(srv_store(sc->c->srv), sc->room, server, role,
                                              sizeof role) == STORE_OK) {
        cJSON_AddStringToObject(o, "role", role);
        cJSON_AddStringToObject(o, "role_label", kz_hotline_role_label(role));
    }
    cJSON_AddItemToArray(sc->list, o);
    return 0;
}

/* One seat of a hotline: its server, name, holder (login as this server knows it: login@server
 * for another server's user; "" when vacant) and whether it is on duty. */
static int seat_one(void *ctx, const char *server, const char *seat, int64_t holder,
                    const char *login, const char *name, bool on_duty)
{
    (void)holder;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "server", server);
    cJSON_AddStringToObject(o, "seat", seat);
    cJSON_AddStringToObject(o, "holder", login);
    cJSON_AddStringToObject(o, "holder_name", name);
    cJSON_AddBoolToObject(o, "on_duty", on_duty);
    cJSON_AddItemToArray(ctx, o);
    return 0;
}

/* The event at pos, if it is the room's. */
struct event_at {
    int64_t room;
    bool found;
    char id[STORE_ROOM_ID_MAX + 1];
    char origin[STORE_ORIGIN_MAX + 1];
    int64_t inc, seq;
};

static int event_copy(void *ctx, const struct store_event *e)
{
    struct event_at *at = ctx;
    if (e->room != at->room)
        return 0;
    at->found = true;
    snprintf(at->id, sizeof at->id, "%s", e->event_id);
    snprintf(at->origin, sizeof at->origin, "%s", e->origin);
    at->inc = e->inc;
    at->seq = e->seq;
    return 0;
}

struct acked_ctx {
    const char *self;
    cJSON *list;
};

/* This server holds the event (it was found here), so it counts as having it whether or not it
 * is the origin; the others by their cursors. */
static int acked_one(void *ctx, const char *server, bool acked)
{
    struct acked_ctx *ac = ctx;
    if (acked || strcmp(server, ac->self) == 0)
        cJSON_AddItemToArray(ac->list, cJSON_CreateString(server));
    return 0;
}

enum kz_err op_room_servers(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    struct store_room room;
    enum kz_err e = room_for_caller(c, &room);
    if (e)
        return e;
    const char *self = srv_server_id(c->srv);
    bool shared = room.authority[0] != '\0';
    struct event_at at = {.room = room.id};
    int64_t pos = srv_arg_int(c, "pos", 0);
    if (pos) {
        enum store_rc rc = store_event_get(st, pos, event_copy, &at);
        if (rc != STORE_OK && rc != STORE_NOT_FOUND)
            return srv_fail(c, KZ_INTERNAL, "event lookup failed");
        if (!at.found)
            return srv_fail(c, KZ_NOT_FOUND, "no event #%lld in this room", (long long)pos);
    }
    cJSON *res = cJSON_CreateObject();
    cJSON_AddStringToObject(res, "room", room.room_id);
    cJSON_AddStringToObject(res, "authority", room.authority);
    struct servers_ctx sc = {c, self, cJSON_AddArrayToObject(res, "servers"), room.id, false};
    if (shared && store_room_is_hotline(st, room.id, &sc.hotline) != STORE_OK) {
        cJSON_Delete(res);
        return srv_fail(c, KZ_INTERNAL, "cannot read the room");
    }
    cJSON_AddBoolToObject(res, "hotline", sc.hotline);
    if (sc.hotline &&
        (!cJSON_AddArrayToObject(res, "seats") ||
         store_seats_each(st, room.id, seat_one, cJSON_GetObjectItem(res, "seats")) != STORE_OK)) {
        cJSON_Delete(res);
        return srv_fail(c, KZ_INTERNAL, "cannot read the room's seats");
    }
    if (!shared)
        cJSON_AddItemToArray(sc.list, server_json(c, self, true, true));
    else if (store_room_server_each(st, room.id, server_one, &sc) != STORE_OK) {
        cJSON_Delete(res);
        return srv_fail(c, KZ_INTERNAL, "cannot read the room's servers");
    }
    if (pos) {
        /* Not "event": a frame with that key is a pushed event (docs/protocol.md). */
        cJSON_AddStringToObject(res, "event_id", at.id);
        cJSON *ev = cJSON_AddObjectToObject(res, "log");
        cJSON_AddStringToObject(ev, "origin", at.origin);
        cJSON_AddNumberToObject(ev, "inc", (double)at.inc);
        cJSON_AddNumberToObject(ev, "seq", (double)at.seq);
        struct acked_ctx ac = {self, cJSON_AddArrayToObject(res, "acked_by")};
        if (!shared)
            cJSON_AddItemToArray(ac.list, cJSON_CreateString(self));
        else if (store_fed_acked_each(st, room.id, at.origin, at.inc, at.seq, acked_one, &ac) !=
                 STORE_OK) {
            cJSON_Delete(res);
            return srv_fail(c, KZ_INTERNAL, "cannot read the acknowledgements");
        }
    }
    c->result = res;
    return KZ_OK;
}
