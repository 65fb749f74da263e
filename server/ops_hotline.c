/* ops_hotline.c - counterpart hotline rooms (issue 18; docs/hotline.md): a shared room whose
 * creation marks it a hotline and gives each member municipality its role in the counterpart
 * group (affected, primary support, secondary support, prefecture HQ). The authority alone
 * changes roles, with hotline.role events applied alike everywhere (event_apply.c); admitting
 * and removing servers is room.server (ops_rooms.c). */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *role, *label;
} roles[] = {
    {"affected", "被災市町"},
    {"primary", "一次支援市"},
    {"secondary", "二次支援市町"},
    {"hq", "県本部"},
};
#define NROLES (sizeof roles / sizeof roles[0])

bool kz_hotline_role_valid(const char *role)
{
    for (size_t i = 0; role && i < NROLES; i++)
        if (strcmp(role, roles[i].role) == 0)
            return true;
    return false;
}

const char *kz_hotline_role_label(const char *role)
{
    for (size_t i = 0; role && i < NROLES; i++)
        if (strcmp(role, roles[i].role) == 0)
            return roles[i].label;
    return "";
}

enum kz_err srv_hotline_init(struct srv *s, int64_t room, const cJSON *content)
{
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(content, "hotline");
    if (!cJSON_IsObject(h))
        return KZ_OK;
    struct store *st = srv_store(s);
    if (store_room_set_hotline(st, room) != STORE_OK)
        return KZ_INTERNAL;
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(h, "roles"))
    {
        if (!r->string || !cJSON_IsString(r) || !kz_hotline_role_valid(r->valuestring))
            continue; /* a role this version does not know: none */
        if (store_room_server_role_set(st, room, r->string, r->valuestring) != STORE_OK)
            return KZ_INTERNAL;
    }
    return KZ_OK;
}

/* "SERVER=ROLE" into its parts (server: caller's buffer); false if malformed. */
static bool split_role(const char *item, char *server, size_t n, const char **role)
{
    const char *eq = strchr(item, '=');
    if (!eq || eq == item || (size_t)(eq - item) >= n)
        return false;
    snprintf(server, n, "%.*s", (int)(eq - item), item);
    *role = eq + 1;
    return true;
}

enum kz_err op_hotline_create(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    const char *self = srv_server_id(c->srv);
    const char *name = srv_arg_str(c, "name"), *topic = srv_arg_str(c, "topic");
    if (!name[strspn(name, " \t")])
        return srv_fail(c, KZ_BAD_REQUEST, "field 'name' must not be blank");
    cJSON *servers = cJSON_CreateArray(), *role_map = cJSON_CreateObject();
    cJSON_AddItemToArray(servers, cJSON_CreateString(self));
    const cJSON *it;
    enum kz_err e = KZ_OK;
    cJSON_ArrayForEach(it, srv_arg_list(c, "roles"))
    {
        char server[STORE_SERVER_ID_MAX + 1];
        const char *role;
        struct store_peer p;
        if (!split_role(it->valuestring, server, sizeof server, &role) ||
            !kz_hotline_role_valid(role)) {
            e = srv_fail(c, KZ_BAD_REQUEST,
                         "'%.80s' is not SERVER=ROLE with a role of affected, primary, secondary "
                         "or hq",
                         it->valuestring);
            break;
        }
        if (cJSON_GetObjectItemCaseSensitive(role_map, server)) {
            e = srv_fail(c, KZ_BAD_REQUEST, "%s is named twice", server);
            break;
        }
        if (strcmp(server, self) != 0) {
            enum store_rc rc = store_peer_get(st, server, &p);
            if (rc != STORE_OK) {
                e = rc == STORE_NOT_FOUND
                        ? srv_fail(c, KZ_NOT_FOUND,
                                   "'%s' is not a peer server of this one (kizuna admin peer list)",
                                   server)
                        : srv_fail(c, KZ_INTERNAL, "peer lookup failed");
                break;
            }
            cJSON_AddItemToArray(servers, cJSON_CreateString(server));
        }
        cJSON_AddStringToObject(role_map, server, role);
    }
    if (!e && cJSON_GetArraySize(servers) < 2)
        e = srv_fail(c, KZ_BAD_REQUEST, "a hotline needs at least one other municipality's server");
    if (e) {
        cJSON_Delete(servers);
        cJSON_Delete(role_map);
        return e;
    }
    if (!cJSON_GetObjectItemCaseSensitive(role_map, self))
        cJSON_AddStringToObject(role_map, self,
                                "hq"); /* the authority: the prefecture by default */
    struct store_room room = {0};
    snprintf(room.kind, sizeof room.kind, "group");
    snprintf(room.name, sizeof room.name, "%s", name);
    snprintf(room.topic, sizeof room.topic, "%s", topic ? topic : "");
    snprintf(room.history, sizeof room.history, "shared");
    snprintf(room.authority, sizeof room.authority, "%s", self);
    cJSON *content = cJSON_CreateObject();
    cJSON_AddStringToObject(content, "kind", room.kind);
    cJSON_AddStringToObject(content, "name", room.name);
    cJSON_AddStringToObject(content, "topic", room.topic);
    cJSON_AddStringToObject(content, "history", room.history);
    cJSON_AddItemToObject(content, "servers", cJSON_Duplicate(servers, true));
    cJSON *hotline = cJSON_AddObjectToObject(content, "hotline");
    cJSON_AddItemToObject(hotline, "roles", role_map);
    /* The creator's device signs that photos' keys are shared with staff who join later (a
     * shift taking over): without it, nothing is shared later (ops_devlist.c). */
    cJSON *policy = srv_room_policy(c, room.history, &e);
    if (e) {
        cJSON_Delete(servers);
        cJSON_Delete(content);
        return e;
    }
    if (policy)
        cJSON_AddItemToObject(content, "policy", policy);
    cJSON *derived = cJSON_Duplicate(content, true); /* the content is consumed by the append */
    struct srv_appended created;
    e = srv_room_create_with(c, &room, NULL, "room.create", content, &created);
    if (!e && (srv_room_servers_init(c->srv, room.id, servers, created.pos) ||
               srv_hotline_init(c->srv, room.id, derived)))
        e = srv_fail(c, KZ_INTERNAL, "cannot record the hotline's servers");
    cJSON_Delete(derived);
    cJSON_Delete(servers);
    if (e || (e = srv_room_join_creator(c, &room, "admin")))
        return e;
    cJSON *details = cJSON_CreateObject();
    cJSON_AddStringToObject(details, "room", room.room_id);
    cJSON_AddStringToObject(details, "room_name", room.name);
    srv_audit(c, "hotline.create", room.room_id, details);
    c->result = cJSON_CreateObject();
    cJSON_AddStringToObject(c->result, "room", room.room_id);
    cJSON_AddStringToObject(c->result, "name", room.name);
    return KZ_OK;
}

enum kz_err op_hotline_role(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    const char *self = srv_server_id(c->srv), *server = srv_arg_str(c, "server");
    const char *role = srv_arg_str(c, "role");
    struct store_room room;
    struct store_member me;
    bool hotline = false, admitted = false;
    enum kz_err e;
    if (store_room_get(st, srv_arg_str(c, "room"), &room) == STORE_OK && room.authority[0] &&
        strcmp(room.authority, self) != 0)
        return srv_fail(c, KZ_FORBIDDEN, "only the hotline's authority, %s, assigns roles",
                        room.authority);
    if ((e = srv_room_for_authority(c, &room, &me)))
        return e;
    if (store_room_is_hotline(st, room.id, &hotline) != STORE_OK || !hotline)
        return srv_fail(c, KZ_BAD_REQUEST, "'%s' is not a hotline room", room.name);
    if (!kz_hotline_role_valid(role))
        return srv_fail(c, KZ_BAD_REQUEST,
                        "unknown role '%.32s' (affected, primary, secondary or hq)", role);
    if (store_room_server_admitted(st, room.id, server, &admitted) != STORE_OK || !admitted)
        return srv_fail(c, KZ_NOT_FOUND, "%.63s is not a server of this hotline", server);
    cJSON *content = cJSON_CreateObject();
    cJSON_AddStringToObject(content, "server", server);
    cJSON_AddStringToObject(content, "role", role);
    struct srv_appended ev;
    if ((e = srv_event_append(c, &room, "hotline.role", content, &ev)))
        return e; /* applied in event_apply.c, as on every other server */
    cJSON *details = cJSON_CreateObject();
    cJSON_AddStringToObject(details, "room", room.room_id);
    cJSON_AddStringToObject(details, "role", role);
    srv_audit(c, "hotline.role", server, details);
    c->result = cJSON_CreateObject();
    cJSON_AddNumberToObject(c->result, "pos", (double)ev.pos);
    return KZ_OK;
}

/* hotline.list: every hotline room this server holds with its servers and roles (an admin's
 * view of the counterpart groups), or the same as CSV. */
struct list_ctx {
    struct srv *s;
    cJSON *rooms, *cur;
    int64_t cur_room;
    struct kz_csv *csv;
};

static int list_row(void *arg, int64_t room, const char *room_id, const char *name,
                    const char *server, bool admitted, const char *role)
{
    struct list_ctx *l = arg;
    struct store_peer p;
    const char *muni = strcmp(server, srv_server_id(l->s)) == 0                  ? ""
                       : store_peer_get(srv_store(l->s), server, &p) == STORE_OK ? p.name
                                                                                 : "";
    if (l->csv) {
        const char *row[] = {name,
                             room_id,
                             server,
                             muni,
                             role,
                             kz_hotline_role_label(role),
                             admitted ? "yes" : "no"};
        kz_csv_row(l->csv, row, sizeof row / sizeof row[0]);
        return 0;
    }
    if (!l->cur || l->cur_room != room) {
        l->cur = cJSON_CreateObject();
        l->cur_room = room;
        cJSON_AddStringToObject(l->cur, "room", room_id);
        cJSON_AddStringToObject(l->cur, "name", name);
        cJSON_AddArrayToObject(l->cur, "servers");
        cJSON_AddItemToArray(l->rooms, l->cur);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "server", server);
    cJSON_AddStringToObject(o, "name", muni);
    cJSON_AddStringToObject(o, "role", role);
    cJSON_AddStringToObject(o, "role_label", kz_hotline_role_label(role));
    cJSON_AddBoolToObject(o, "admitted", admitted);
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(l->cur, "servers"), o);
    return 0;
}

enum kz_err op_hotline_list(struct srv_call *c)
{
    struct kz_csv csv = {0};
    bool as_csv = srv_arg_bool(c, "csv", false);
    struct list_ctx l = {.s = c->srv, .rooms = cJSON_CreateArray(), .csv = as_csv ? &csv : NULL};
    if (as_csv) {
        static const char *const header[] = {"hotline", "room",       "server",  "municipality",
                                             "role",    "role_label", "admitted"};
        kz_csv_row(&csv, header, sizeof header / sizeof header[0]);
    }
    if (store_hotline_each(srv_store(c->srv), list_row, &l) != STORE_OK || csv.failed) {
        cJSON_Delete(l.rooms);
        kz_csv_free(&csv);
        return srv_fail(c, KZ_INTERNAL, "hotline list failed");
    }
    c->result = cJSON_CreateObject();
    if (as_csv) {
        cJSON_Delete(l.rooms);
        cJSON_AddStringToObject(c->result, "csv", csv.text ? csv.text : "");
        kz_csv_free(&csv);
    } else {
        cJSON_AddItemToObject(c->result, "hotlines", l.rooms);
    }
    return KZ_OK;
}

/* hotline.seat: this server's admins and HQ staff name a seat of theirs in a hotline and who
 * holds it now (a handover at shift change), or vacate it; on_duty seats receive first reports
 * as alerts. An event in this server's own log: each municipality manages its own seats. */
enum kz_err op_hotline_seat(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    const char *self = srv_server_id(c->srv), *seat = srv_arg_str(c, "seat");
    const char *login = srv_arg_str(c, "user");
    bool on_duty = srv_arg_bool(c, "on_duty", false), hotline = false, admitted = false;
    struct store_room room;
    enum kz_err e;
    if (!kz_role_is(c->auth.user.role, KZ_ROLE_ADMIN) && !kz_role_is(c->auth.user.role, KZ_ROLE_HQ))
        return srv_fail(c, KZ_FORBIDDEN, "this server's admins and HQ staff manage its seats");
    enum store_rc rc = store_room_get(st, srv_arg_str(c, "room"), &room);
    if (rc == STORE_NOT_FOUND ||
        (rc == STORE_OK && (store_room_is_hotline(st, room.id, &hotline) || !hotline)))
        return srv_fail(c, KZ_NOT_FOUND, "no hotline room '%.64s' on this server",
                        srv_arg_str(c, "room"));
    if (rc != STORE_OK || store_room_server_admitted(st, room.id, self, &admitted) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "room lookup failed");
    if ((e = srv_room_writable(c, &room)))
        return e;
    if (!seat[strspn(seat, " \t")])
        return srv_fail(c, KZ_BAD_REQUEST, "field 'seat' must not be blank");
    struct store_user u;
    struct store_member m;
    if (login) {
        if (!kz_login_valid(login) || store_user_get_by_login(st, login, &u) != STORE_OK ||
            u.home[0])
            return srv_fail(c, KZ_NOT_FOUND, "no user with login id '%.64s' on this server", login);
        if (u.disabled)
            return srv_fail(c, KZ_BAD_REQUEST, "user '%s' is disabled", u.login);
        if (store_member_get(st, room.id, u.id, &m) != STORE_OK || m.left_pos)
            return srv_fail(c, KZ_CONFLICT,
                            "%s is not a member of the hotline: add them first (room.invite)",
                            u.login);
    }
    int64_t before = 0;
    store_seat_holder(st, room.id, self, seat, &before);
    cJSON *content = cJSON_CreateObject();
    cJSON_AddStringToObject(content, "seat", seat);
    if (login) {
        cJSON_AddStringToObject(content, "user", u.login);
        cJSON_AddStringToObject(content, "name", u.name);
    }
    cJSON_AddBoolToObject(content, "on_duty", on_duty);
    struct srv_appended ev;
    if ((e = srv_event_append(c, &room, "hotline.seat", content, &ev)))
        return e; /* applied in event_apply.c, as on every other server */
    cJSON *details = cJSON_CreateObject();
    cJSON_AddStringToObject(details, "room", room.room_id);
    cJSON_AddStringToObject(details, "seat", seat);
    cJSON_AddStringToObject(details, "holder", login ? u.login : "");
    struct store_user prev;
    cJSON_AddStringToObject(details, "previous",
                            before && store_user_get(st, before, &prev) == STORE_OK ? prev.login
                                                                                    : "");
    cJSON_AddBoolToObject(details, "on_duty", on_duty);
    srv_audit(c, "hotline.seat", seat, details);
    c->result = cJSON_CreateObject();
    cJSON_AddNumberToObject(c->result, "pos", (double)ev.pos);
    return KZ_OK;
}

struct alert_ctx {
    struct srv *s;
    const char *self;
    struct kz_frame *frame;
    int sent;
};

static int alert_seat(void *arg, const char *server, const char *seat, int64_t holder,
                      const char *login, const char *name, bool on_duty)
{
    (void)seat, (void)login, (void)name;
    struct alert_ctx *a = arg;
    if (on_duty && holder && strcmp(server, a->self) == 0) {
        srv_push_after_commit(a->s, holder, a->frame, true); /* takes its own reference */
        a->sent++;
    }
    return 0;
}

void srv_hotline_alert(struct srv *s, const struct store_event *e, const cJSON *content)
{
    struct store *st = srv_store(s);
    struct store_room room;
    bool hotline = false;
    if (store_room_get_by_id(st, e->room, &room) != STORE_OK ||
        store_room_is_hotline(st, e->room, &hotline) != STORE_OK || !hotline)
        return;
    struct store_user u;
    struct store_peer p;
    bool local = strcmp(e->origin, srv_server_id(s)) == 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", "hotline.alert");
    cJSON_AddStringToObject(o, "room", room.room_id);
    cJSON_AddStringToObject(o, "room_name", room.name);
    cJSON_AddStringToObject(o, "event_id", e->event_id);
    cJSON_AddStringToObject(o, "server", e->origin);
    cJSON_AddStringToObject(o, "server_name",
                            local                                           ? ""
                            : store_peer_get(st, e->origin, &p) == STORE_OK ? p.name
                                                                            : "");
    bool known = e->sender && store_user_get(st, e->sender, &u) == STORE_OK;
    cJSON_AddStringToObject(o, "sender", known ? u.login : "");
    cJSON_AddStringToObject(o, "sender_name", known ? u.name : "");
    const cJSON *seat = cJSON_GetObjectItemCaseSensitive(content, "seat");
    cJSON_AddStringToObject(o, "seat", cJSON_IsString(seat) ? seat->valuestring : "");
    const char *body = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(content, "body"));
    cJSON_AddStringToObject(o, "body", body ? body : "");
    cJSON_AddNumberToObject(o, "ts", (double)e->ts);
    struct alert_ctx a = {s, srv_server_id(s), kz_frame_from_json(o, 200), 0};
    cJSON_Delete(o);
    if (!a.frame)
        return;
    store_seats_each(st, e->room, alert_seat, &a);
    kz_frame_unref(a.frame);
    KZ_INFO("hotline_alert", "room=%s origin=%s seats=%d", room.room_id, e->origin, a.sent);
}
