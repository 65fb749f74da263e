/* ops_rooms.c - rooms and their members. A user sees only rooms it is a member of; to anyone
 * else a room does not exist. Every membership change is an event in the room. */
#include "server.h"
#include "store_push.h"

#include <string.h>

enum kz_err srv_room_for_member(struct srv_call *c, struct store_room *room,
                                struct store_member *me)
{
    struct store *st = srv_store(c->srv);
    const char *room_id = srv_arg_str(c, "room");
    enum store_rc rc = store_room_get(st, room_id, room);
    if (rc == STORE_OK)
        rc = store_member_get(st, room->id, c->auth.user.id, me);
    /* Notices are rooms underneath, reached only through the notice ops. */
    if (rc == STORE_OK && (me->left_pos || strcmp(room->kind, "notice") == 0))
        rc = STORE_NOT_FOUND;
    if (rc == STORE_NOT_FOUND)
        return srv_fail(c, KZ_NOT_FOUND, "no such room");
    if (rc != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "room lookup failed");
    return KZ_OK;
}

enum kz_err srv_room_writable(struct srv_call *c, const struct store_room *room)
{
    if (room->archived_at)
        return srv_fail(c, KZ_CONFLICT,
                        "the room '%s' is archived and read-only: a room admin can unarchive it "
                        "(room.archive with \"archived\": false)",
                        room->name);
    bool admitted = true;
    if (room->authority[0] && (store_room_server_admitted(srv_store(c->srv), room->id,
                                                          srv_server_id(c->srv), &admitted) ||
                               !admitted))
        /* Its other servers would not take what this one wrote (fed_receive.c). */
        return srv_fail(c, KZ_FORBIDDEN,
                        "this server is not a member server of the shared room '%s' (its "
                        "authority %s admits servers): it is read-only here",
                        room->name, room->authority);
    return KZ_OK;
}

/* An audit entry about a room (room.create, room.invite, ...): details (consumed, may be NULL)
 * gain the room's id and name. target: a login for membership changes, else "room:ID". */
static void audit_room(struct srv_call *c, const char *action, const char *target,
                       const struct store_room *room, cJSON *details)
{
    char room_target[STORE_ROOM_ID_MAX + 8];
    snprintf(room_target, sizeof room_target, "room:%s", room->room_id);
    if (!details)
        details = cJSON_CreateObject();
    cJSON_AddStringToObject(details, "room", room->room_id);
    cJSON_AddStringToObject(details, "room_name", room->name);
    srv_audit(c, action, target ? target : room_target, details);
}

/* In a shared room only its authority changes the room (its name, topic, archiving, servers,
 * roles): any other server's change would hold here and be invalid everywhere else. */
static enum kz_err authority_here(struct srv_call *c, const struct store_room *room)
{
    if (room->authority[0] && strcmp(room->authority, srv_server_id(c->srv)) != 0)
        return srv_fail(c, KZ_FORBIDDEN, "only the room's authority, %s, changes this shared room",
                        room->authority);
    return KZ_OK;
}

static enum kz_err require_room_admin(struct srv_call *c, const struct store_room *room,
                                      const struct store_member *me)
{
    if (strcmp(room->kind, "group") != 0)
        return srv_fail(c, KZ_BAD_REQUEST, "one-to-one rooms have no members to manage");
    if (strcmp(me->role, "admin") != 0)
        return srv_fail(c, KZ_FORBIDDEN, "only an admin of the room may do that");
    return KZ_OK;
}

enum kz_err srv_room_for_authority(struct srv_call *c, struct store_room *room,
                                   struct store_member *me)
{
    /* A shared room's servers and roles are the authority server's to manage: its admins may,
     * member of the room or not (after a handover no one of the new authority is a room admin
     * yet); otherwise a room admin. */
    if (kz_role_is(c->auth.user.role, KZ_ROLE_ADMIN) &&
        store_room_get(srv_store(c->srv), srv_arg_str(c, "room"), room) == STORE_OK &&
        room->authority[0]) {
        memset(me, 0, sizeof *me);
        snprintf(me->role, sizeof me->role, "admin");
        return KZ_OK;
    }
    enum kz_err e = srv_room_for_member(c, room, me);
    return e ? e : require_room_admin(c, room, me);
}

/* An active user named by an argument. */
static enum kz_err arg_user(struct srv_call *c, const char *login, struct store_user *u)
{
    enum store_rc rc = kz_login_valid(login) ? store_user_get_by_login(srv_store(c->srv), login, u)
                                             : STORE_NOT_FOUND;
    if (rc == STORE_NOT_FOUND)
        return srv_fail(c, KZ_NOT_FOUND, "no user with login id '%s'",
                        kz_login_valid(login) ? login : "?");
    if (rc != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "user lookup failed");
    if (u->disabled)
        return srv_fail(c, KZ_BAD_REQUEST, "user '%s' is disabled", u->login);
    return KZ_OK;
}

/* Appends a `member` event, which changes the membership (event_apply.c); whoever leaves or
 * is removed still gets the event that says so. */
static enum kz_err member_event(struct srv_call *c, const struct store_room *room,
                                const struct store_user *who, const char *membership,
                                const char *role, int64_t *pos_out)
{
    cJSON *content = cJSON_CreateObject();
    cJSON_AddStringToObject(content, "user", who->login);
    cJSON_AddStringToObject(content, "membership", membership);
    if (room->authority[0] && strcmp(membership, "join") == 0)
        cJSON_AddStringToObject(content, "name", who->name); /* other servers show it */
    if (role)
        cJSON_AddStringToObject(content, "role", role);
    struct srv_appended ev;
    enum kz_err e = srv_event_append(c, room, "member", content, &ev);
    if (!e && strcmp(membership, "join") == 0)
        e = srv_devices_publish(c, room, who);
    if (e)
        return e;
    if (pos_out)
        *pos_out = ev.pos;
    return KZ_OK;
}

static enum kz_err check_room_size(struct srv_call *c, int64_t room, int64_t adding)
{
    int64_t n = 0;
    if (store_member_count(srv_store(c->srv), room, &n) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "member count failed");
    if (n + adding > srv_config(c->srv)->room_max_members)
        return srv_fail_cap(c, KZ_TOO_LARGE, "room_max_members");
    return KZ_OK;
}

/* A photo newer than the last message is the room's last message (its content is encrypted:
 * "photo": true says what a room list shows instead of a body). */
static void last_photo(struct srv *s, int64_t room, cJSON *o)
{
    int64_t pos, sender, ts;
    cJSON *last = cJSON_GetObjectItemCaseSensitive(o, "last");
    cJSON *at = cJSON_GetObjectItemCaseSensitive(last, "pos");
    if (store_room_last_photo(srv_store(s), room, &pos, &sender, &ts) != STORE_OK ||
        (at && at->valuedouble > (double)pos))
        return;
    cJSON_DeleteItemFromObjectCaseSensitive(o, "last");
    last = cJSON_AddObjectToObject(o, "last");
    cJSON_AddNumberToObject(last, "pos", (double)pos);
    struct store_user u;
    if (sender && store_user_get(srv_store(s), sender, &u) == STORE_OK) {
        cJSON_AddStringToObject(last, "sender", u.login);
        cJSON_AddStringToObject(last, "sender_name", u.name);
    }
    cJSON_AddStringToObject(last, "body", "");
    cJSON_AddBoolToObject(last, "photo", true);
    cJSON_AddBoolToObject(last, "deleted", false);
    cJSON_AddNumberToObject(last, "ts", (double)ts);
}

static cJSON *room_json(struct srv *s, const struct store_room *r, const struct store_member *me);

/* The creator's own `member` event; it joins at the create event, so its history starts with
 * the room itself (event_apply.c). */
enum kz_err srv_room_join_creator(struct srv_call *c, const struct store_room *room,
                                  const char *role)
{
    cJSON *content = cJSON_CreateObject();
    cJSON_AddStringToObject(content, "user", c->auth.user.login);
    cJSON_AddStringToObject(content, "membership", "join");
    cJSON_AddStringToObject(content, "role", role);
    if (room->authority[0])
        cJSON_AddStringToObject(content, "name", c->auth.user.name);
    struct srv_appended joined;
    enum kz_err e = srv_event_append(c, room, "member", content, &joined);
    return e ? e : srv_devices_publish(c, room, &c->auth.user);
}

enum kz_err srv_room_servers_init(struct srv *s, int64_t room, const cJSON *content, int64_t pos)
{
    const cJSON *servers =
        cJSON_IsArray(content) ? content : cJSON_GetObjectItemCaseSensitive(content, "servers");
    const cJSON *it;
    cJSON_ArrayForEach(it, servers)
    {
        if (!cJSON_IsString(it) || strlen(it->valuestring) > STORE_SERVER_ID_MAX ||
            store_room_server_set(srv_store(s), room, it->valuestring, true, pos) != STORE_OK)
            return KZ_INTERNAL;
    }
    return KZ_OK;
}

/* room.create's servers: pinned peers, each once, not this server; the room's servers are then
 * this one (its authority) and those. *out is NULL for a room of this server only. */
static enum kz_err shared_servers(struct srv_call *c, struct store_room *room, cJSON **out)
{
    const cJSON *servers = srv_arg_list(c, "servers");
    *out = NULL;
    if (!servers || !cJSON_GetArraySize(servers))
        return KZ_OK;
    const char *self = srv_server_id(c->srv);
    cJSON *list = cJSON_CreateArray();
    cJSON_AddItemToArray(list, cJSON_CreateString(self));
    const cJSON *it;
    cJSON_ArrayForEach(it, servers)
    {
        struct store_peer p;
        const char *id = it->valuestring;
        bool seen = false;
        const cJSON *x;
        cJSON_ArrayForEach(x, list) seen |= strcmp(x->valuestring, id) == 0;
        enum store_rc rc = seen ? STORE_OK : store_peer_get(srv_store(c->srv), id, &p);
        if (rc == STORE_NOT_FOUND || strcmp(id, self) == 0) {
            cJSON_Delete(list);
            return srv_fail(c, KZ_NOT_FOUND,
                            "'%.63s' is not a peer server of this one (kizuna admin peer list)",
                            id);
        }
        if (rc != STORE_OK) {
            cJSON_Delete(list);
            return srv_fail(c, KZ_INTERNAL, "peer lookup failed");
        }
        if (!seen)
            cJSON_AddItemToArray(list, cJSON_CreateString(id));
    }
    snprintf(room->authority, sizeof room->authority, "%s", self);
    *out = list;
    return KZ_OK;
}

enum kz_err op_room_create(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    const char *name = srv_arg_str(c, "name");
    const char *topic = srv_arg_str(c, "topic");
    const cJSON *members = srv_arg_list(c, "members");
    if (!name[strspn(name, " \t")])
        return srv_fail(c, KZ_BAD_REQUEST, "field 'name' must not be blank");
    enum kz_err e = KZ_OK;
    /* The table allows room_max_members names; with the creator that is one too many. */
    if (members && cJSON_GetArraySize(members) + 1 > srv_config(c->srv)->room_max_members)
        return srv_fail_cap(c, KZ_TOO_LARGE, "room_max_members");
    /* Two rooms of one's own with the same name are told apart by nobody: ask first. */
    struct store_room same;
    enum store_rc found = store_room_find_named(st, c->auth.user.id, name, &same);
    if (found != STORE_OK && found != STORE_NOT_FOUND)
        return srv_fail(c, KZ_INTERNAL, "room lookup failed");
    if (found == STORE_OK && !srv_arg_bool(c, "confirm", false))
        return srv_fail(c, KZ_CONFLICT,
                        "you already have a room called '%s' (%.8s%s): choose another name, or "
                        "confirm that you want a second one (\"confirm\": true)",
                        same.name, same.room_id, same.archived_at ? ", archived" : "");
    struct store_room room = {0};
    snprintf(room.kind, sizeof room.kind, "group");
    snprintf(room.name, sizeof room.name, "%s", name);
    snprintf(room.topic, sizeof room.topic, "%s", topic ? topic : "");
    const char *history = srv_arg_str(c, "history");
    if (history && strcmp(history, "shared") && strcmp(history, "joined"))
        return srv_fail(c, KZ_BAD_REQUEST, "history is shared or joined");
    snprintf(room.history, sizeof room.history, "%s", history ? history : "shared");
    cJSON *policy = srv_room_policy(c, room.history, &e);
    if (e)
        return e;
    cJSON *servers = NULL;
    if ((e = shared_servers(c, &room, &servers))) {
        cJSON_Delete(policy);
        return e;
    }
    struct srv_appended created;
    e = srv_room_create(c, &room, NULL, policy, servers, &created);
    if (!e && servers)
        e = srv_room_servers_init(c->srv, room.id, servers, created.pos);
    cJSON_Delete(servers);
    if (e || (e = srv_room_join_creator(c, &room, "admin")))
        return e;
    const cJSON *item;
    cJSON_ArrayForEach(item, members)
    {
        struct store_user u;
        struct store_member m;
        if ((e = arg_user(c, item->valuestring, &u)))
            return e;
        if (store_member_get(st, room.id, u.id, &m) == STORE_OK && !m.left_pos)
            continue; /* named twice, or the creator named itself */
        if ((e = member_event(c, &room, &u, "join", "member", NULL)))
            return e;
    }
    struct store_member me;
    store_member_get(st, room.id, c->auth.user.id, &me);
    c->result = cJSON_CreateObject();
    cJSON_AddItemToObject(c->result, "room", room_json(c->srv, &room, &me));
    cJSON *details = cJSON_CreateObject();
    cJSON_AddItemToObject(details, "members",
                          members ? cJSON_Duplicate(members, true) : cJSON_CreateArray());
    cJSON_AddStringToObject(details, "history", room.history);
    if (found == STORE_OK)
        cJSON_AddStringToObject(details, "same_name_as", same.room_id);
    audit_room(c, "room.create", NULL, &room, details);
    KZ_INFO("room_created", "by=%s room=%s", c->auth.user.login, room.room_id);
    return KZ_OK;
}

enum kz_err op_room_direct(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    struct store_user other;
    enum kz_err e = arg_user(c, srv_arg_str(c, "user"), &other);
    if (e)
        return e;
    if (other.id == c->auth.user.id)
        return srv_fail(c, KZ_BAD_REQUEST, "a one-to-one room needs someone else");
    /* The pair, smaller id first: asking from either side finds the same room. */
    char key[48];
    int64_t a = c->auth.user.id < other.id ? c->auth.user.id : other.id;
    int64_t b = c->auth.user.id < other.id ? other.id : c->auth.user.id;
    snprintf(key, sizeof key, "%lld:%lld", (long long)a, (long long)b);
    struct store_room room = {0};
    enum store_rc rc = store_room_get_direct(st, key, &room);
    if (rc == STORE_NOT_FOUND) {
        snprintf(room.kind, sizeof room.kind, "direct");
        cJSON *policy = srv_room_policy(c, "shared", &e); /* one-to-one rooms share history */
        if (e)
            return e;
        struct srv_appended created;
        if ((e = srv_room_create(c, &room, key, policy, NULL, &created)) ||
            (e = srv_room_join_creator(c, &room, "member")))
            return e;
    } else if (rc != STORE_OK) {
        return srv_fail(c, KZ_INTERNAL, "room lookup failed");
    }
    /* Whoever is not (or no longer) in it is (re)joined: a one-to-one room never goes away. */
    const struct store_user *pair[2] = {&c->auth.user, &other};
    for (int i = 0; i < 2; i++) {
        struct store_member m;
        rc = store_member_get(st, room.id, pair[i]->id, &m);
        if (rc == STORE_OK && !m.left_pos)
            continue;
        if ((e = member_event(c, &room, pair[i], "join", "member", NULL)))
            return e;
    }
    struct store_member me;
    store_member_get(st, room.id, c->auth.user.id, &me);
    c->result = cJSON_CreateObject();
    cJSON_AddItemToObject(c->result, "room", room_json(c->srv, &room, &me));
    return KZ_OK;
}

enum kz_err op_room_update(struct srv_call *c)
{
    struct store_room room;
    struct store_member me;
    enum kz_err e;
    if ((e = srv_room_for_member(c, &room, &me)) || (e = require_room_admin(c, &room, &me)) ||
        (e = srv_room_writable(c, &room)) || (e = authority_here(c, &room)))
        return e;
    char old_name[STORE_NAME_MAX + 1];
    snprintf(old_name, sizeof old_name, "%s", room.name);
    const char *name = srv_arg_str(c, "name");
    const char *topic = srv_arg_str(c, "topic");
    if (!name && !topic)
        return srv_fail(c, KZ_BAD_REQUEST, "give a name, a topic or both");
    if (name && !name[strspn(name, " \t")])
        return srv_fail(c, KZ_BAD_REQUEST, "field 'name' must not be blank");
    if (name)
        snprintf(room.name, sizeof room.name, "%s", name);
    if (topic)
        snprintf(room.topic, sizeof room.topic, "%s", topic);
    cJSON *content = cJSON_CreateObject();
    cJSON_AddStringToObject(content, "name", room.name);
    cJSON_AddStringToObject(content, "topic", room.topic);
    /* Which of the two this update set: a new topic must not read as a rename. */
    cJSON *changed = cJSON_AddArrayToObject(content, "changed");
    if (name)
        cJSON_AddItemToArray(changed, cJSON_CreateString("name"));
    if (topic)
        cJSON_AddItemToArray(changed, cJSON_CreateString("topic"));
    struct srv_appended ev;
    if ((e = srv_event_append(c, &room, "room.update", content, &ev)))
        return e;
    cJSON *details = cJSON_CreateObject();
    if (name)
        cJSON_AddStringToObject(details, "old_name", old_name);
    if (topic)
        cJSON_AddStringToObject(details, "topic", room.topic);
    audit_room(c, "room.update", NULL, &room, details);
    c->result = cJSON_CreateObject();
    cJSON_AddItemToObject(c->result, "room", room_json(c->srv, &room, &me));
    return KZ_OK;
}

/* Whether the caller may add this server's users to a shared room (room filled): this server's
 * admins and HQ staff, in the room or not (a shared room came from another server with no one
 * of this one in it), and its room admins. */
static bool shared_room_host(struct srv_call *c, struct store_room *room)
{
    const char *id = srv_arg_str(c, "room");
    struct store_member me;
    if (!id || store_room_get(srv_store(c->srv), id, room) != STORE_OK || !room->authority[0])
        return false;
    if (kz_role_is(c->auth.user.role, KZ_ROLE_ADMIN) || kz_role_is(c->auth.user.role, KZ_ROLE_HQ))
        return true; /* in the room as a plain member, or not in it at all */
    /* Anyone else: as in any room, a room admin. */
    return store_member_get(srv_store(c->srv), room->id, c->auth.user.id, &me) == STORE_OK &&
           !me.left_pos && strcmp(me.role, "admin") == 0;
}

/* room.server: the authority of a shared room admits a server to it, or removes one, as an
 * event of its own log (room.server), which every server applies alike (fed_receive.c). */
enum kz_err op_room_server(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    struct store_room room;
    struct store_member me;
    enum kz_err e;
    const char *server = srv_arg_str(c, "server"), *self = srv_server_id(c->srv);
    bool admit = srv_arg_bool(c, "admitted", true), now = false;
    /* Where it is decided comes first: on any other server the answer is the same for all. */
    if (store_room_get(st, srv_arg_str(c, "room"), &room) == STORE_OK && room.authority[0] &&
        strcmp(room.authority, self) != 0)
        return srv_fail(c, KZ_FORBIDDEN, "only the room's authority, %s, admits or removes servers",
                        room.authority);
    if ((e = srv_room_for_authority(c, &room, &me)) || (e = srv_room_writable(c, &room)))
        return e;
    if (!room.authority[0])
        return srv_fail(c, KZ_BAD_REQUEST,
                        "'%s' is a room of this server only: a shared room is created with its "
                        "servers (room.create servers)",
                        room.name);
    if (strcmp(server, self) == 0)
        return srv_fail(c, KZ_BAD_REQUEST, "the authority is always a server of its room");
    struct store_peer p;
    enum store_rc rc = store_peer_get(st, server, &p);
    if (rc == STORE_NOT_FOUND && admit)
        return srv_fail(c, KZ_NOT_FOUND,
                        "'%.63s' is not a peer server of this one (kizuna admin peer list)",
                        server);
    if ((rc != STORE_OK && rc != STORE_NOT_FOUND) ||
        store_room_server_admitted(st, room.id, server, &now) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "server lookup failed");
    if (now == admit)
        return srv_fail(c, KZ_CONFLICT, "%s %s a server of the room already", server,
                        admit ? "is" : "is not");
    int64_t cut_inc = 0, cut_seq = 0;
    if (admit && store_room_server_cutoff(st, room.id, server, &cut_inc, &cut_seq) == STORE_OK)
        /* Its events past the cutoff are invalid everywhere; taking it back would make the
         * ones some servers never saw valid there and not elsewhere. */
        return srv_fail(c, KZ_CONFLICT,
                        "%s was removed from this room and cannot come back: make a new room",
                        server);
    cJSON *content = cJSON_CreateObject();
    cJSON_AddStringToObject(content, "server", server);
    cJSON_AddBoolToObject(content, "admitted", admit);
    if (!admit) {
        /* The cutoff: what this server holds of the removed server's log now. Every server
         * takes its events up to there and none after, whenever the removal reaches it. */
        if (store_log_latest(st, room.id, server, &cut_inc, &cut_seq) != STORE_OK) {
            cJSON_Delete(content);
            return srv_fail(c, KZ_INTERNAL, "log lookup failed");
        }
        cJSON *cutoff = cJSON_AddArrayToObject(content, "cutoff");
        cJSON_AddItemToArray(cutoff, cJSON_CreateNumber((double)cut_inc));
        cJSON_AddItemToArray(cutoff, cJSON_CreateNumber((double)cut_seq));
    }
    struct srv_appended ev;
    if ((e = srv_event_append(c, &room, "room.server", content, &ev)))
        return e; /* applied there (event_apply.c), as on every other server */
    if (admit)
        srv_fed_server_admitted(c->srv, server, room.id);
    cJSON *details = cJSON_CreateObject();
    cJSON_AddBoolToObject(details, "admitted", admit);
    audit_room(c, "room.server", server, &room, details);
    c->result = cJSON_CreateObject();
    cJSON_AddNumberToObject(c->result, "pos", (double)ev.pos);
    if (!admit) {
        cJSON *cutoff = cJSON_AddArrayToObject(c->result, "cutoff");
        cJSON_AddItemToArray(cutoff, cJSON_CreateNumber((double)cut_inc));
        cJSON_AddItemToArray(cutoff, cJSON_CreateNumber((double)cut_seq));
    }
    return KZ_OK;
}

/* room.authority: the authority of a shared room hands it to another of its servers, with an
 * event that server's own authority events then cite (fed_receive.c's authority_check). */
enum kz_err op_room_authority(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    const char *self = srv_server_id(c->srv), *server = srv_arg_str(c, "server");
    struct store_room room;
    struct store_member me;
    bool admitted = false;
    enum kz_err e;
    if (store_room_get(st, srv_arg_str(c, "room"), &room) == STORE_OK && room.authority[0] &&
        strcmp(room.authority, self) != 0)
        return srv_fail(c, KZ_FORBIDDEN, "only the room's authority, %s, hands it on",
                        room.authority);
    if ((e = srv_room_for_authority(c, &room, &me)) || (e = srv_room_writable(c, &room)))
        return e;
    if (!room.authority[0])
        return srv_fail(c, KZ_BAD_REQUEST, "'%s' is a room of this server only", room.name);
    if (strcmp(server, self) == 0)
        return srv_fail(c, KZ_CONFLICT, "this server is the room's authority already");
    if (store_room_server_admitted(st, room.id, server, &admitted) != STORE_OK || !admitted)
        return srv_fail(c, KZ_NOT_FOUND, "%.63s is not a server of this room", server);
    cJSON *content = cJSON_CreateObject();
    cJSON_AddStringToObject(content, "server", server);
    struct srv_appended ev;
    if ((e = srv_event_append(c, &room, "room.authority", content, &ev)))
        return e; /* applied in event_apply.c: from now on the room's authority is server */
    cJSON *details = cJSON_CreateObject();
    cJSON_AddStringToObject(details, "room", room.room_id);
    cJSON_AddStringToObject(details, "to", server);
    srv_audit(c, "room.authority", server, details);
    c->result = cJSON_CreateObject();
    cJSON_AddNumberToObject(c->result, "pos", (double)ev.pos);
    return KZ_OK;
}

enum kz_err op_room_invite(struct srv_call *c)
{
    struct store_room room;
    struct store_member me, m;
    struct store_user u;
    enum kz_err e;
    if (shared_room_host(c, &room)) {
        /* A shared room reached this server from its authority with no one of ours in it yet:
         * this server's admins and HQ staff add its own users (each server alone manages its
         * own; FEDERATION.md). */
        if ((e = arg_user(c, srv_arg_str(c, "user"), &u)) || (e = srv_room_writable(c, &room)))
            return e;
    } else if ((e = srv_room_for_member(c, &room, &me)) ||
               (e = require_room_admin(c, &room, &me)) ||
               (e = arg_user(c, srv_arg_str(c, "user"), &u)) || (e = srv_room_writable(c, &room)))
        return e;
    if (store_member_get(srv_store(c->srv), room.id, u.id, &m) == STORE_OK && !m.left_pos)
        return srv_fail(c, KZ_CONFLICT, "%s is already a member", u.login);
    if ((e = check_room_size(c, room.id, 1)))
        return e;
    int64_t pos;
    if ((e = member_event(c, &room, &u, "join", "member", &pos)))
        return e;
    audit_room(c, "room.invite", u.login, &room, NULL);
    c->result = cJSON_CreateObject();
    cJSON_AddNumberToObject(c->result, "pos", (double)pos);
    return KZ_OK;
}

/* Someone leaving may leave a room without an admin: the longest-standing member becomes one,
 * so the room can still be managed. */
struct first_ctx {
    struct store_member m;
    bool any_admin, found;
};

static int find_first(void *arg, const struct store_member *m)
{
    struct first_ctx *f = arg;
    if (strcmp(m->role, "admin") == 0)
        f->any_admin = true;
    if (!f->found) {
        f->m = *m;
        f->found = true;
    }
    return 0;
}

static enum kz_err keep_an_admin(struct srv_call *c, const struct store_room *room)
{
    struct first_ctx f = {0};
    if (strcmp(room->kind, "group") != 0)
        return KZ_OK;
    if (store_member_each(srv_store(c->srv), room->id, false, find_first, &f) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "member list failed");
    if (f.any_admin || !f.found)
        return KZ_OK;
    cJSON *content = cJSON_CreateObject();
    cJSON_AddStringToObject(content, "user", f.m.login);
    cJSON_AddStringToObject(content, "role", "admin");
    struct srv_appended ev;
    enum kz_err e = srv_event_append(c, room, "member.role", content, &ev);
    if (e)
        return e;
    cJSON *details = cJSON_CreateObject();
    cJSON_AddBoolToObject(details, "admin", true);
    cJSON_AddStringToObject(details, "why", "the last admin left: the longest-standing member");
    audit_room(c, "room.admin", f.m.login, room, details);
    return KZ_OK;
}

enum kz_err op_room_remove(struct srv_call *c)
{
    struct store_room room;
    struct store_member me, m;
    struct store_user u;
    enum kz_err e;
    if ((e = srv_room_for_member(c, &room, &me)) || (e = require_room_admin(c, &room, &me)) ||
        (e = srv_room_writable(c, &room)))
        return e;
    const char *login = srv_arg_str(c, "user");
    enum store_rc rc = kz_login_valid(login) ? store_user_get_by_login(srv_store(c->srv), login, &u)
                                             : STORE_NOT_FOUND;
    if (rc == STORE_OK)
        rc = store_member_get(srv_store(c->srv), room.id, u.id, &m);
    if (rc != STORE_OK || m.left_pos)
        return srv_fail(c, KZ_NOT_FOUND, "%s is not a member", kz_login_valid(login) ? login : "?");
    if (u.id == c->auth.user.id)
        return srv_fail(c, KZ_BAD_REQUEST, "use room.leave to leave a room");
    int64_t pos;
    if ((e = member_event(c, &room, &u, "remove", NULL, &pos)))
        return e;
    audit_room(c, "room.remove", u.login, &room, NULL);
    if ((e = keep_an_admin(c, &room)))
        return e;
    c->result = cJSON_CreateObject();
    cJSON_AddNumberToObject(c->result, "pos", (double)pos);
    return KZ_OK;
}

enum kz_err op_room_leave(struct srv_call *c)
{
    struct store_room room;
    struct store_member me;
    enum kz_err e;
    if ((e = srv_room_for_member(c, &room, &me)))
        return e;
    int64_t pos;
    if ((e = member_event(c, &room, &c->auth.user, "leave", NULL, &pos)))
        return e;
    if (strcmp(room.kind, "group") == 0) /* one-to-one rooms are nobody's to account for */
        audit_room(c, "room.leave", c->auth.user.login, &room, NULL);
    if ((e = keep_an_admin(c, &room)))
        return e;
    c->result = cJSON_CreateObject();
    cJSON_AddNumberToObject(c->result, "pos", (double)pos);
    return KZ_OK;
}

enum kz_err op_room_admin(struct srv_call *c)
{
    struct store_room room;
    struct store_member me, m;
    struct store_user u;
    enum kz_err e;
    if ((e = srv_room_for_member(c, &room, &me)) || (e = require_room_admin(c, &room, &me)) ||
        (e = arg_user(c, srv_arg_str(c, "user"), &u)) || (e = srv_room_writable(c, &room)))
        return e;
    if (store_member_get(srv_store(c->srv), room.id, u.id, &m) != STORE_OK || m.left_pos)
        return srv_fail(c, KZ_NOT_FOUND, "%s is not a member", u.login);
    const char *role = srv_arg_bool(c, "admin", false) ? "admin" : "member";
    if (strcmp(m.role, role) != 0) {
        cJSON *content = cJSON_CreateObject();
        cJSON_AddStringToObject(content, "user", u.login);
        cJSON_AddStringToObject(content, "role", role);
        struct srv_appended ev;
        if ((e = srv_event_append(c, &room, "member.role", content, &ev)))
            return e;
        cJSON *details = cJSON_CreateObject();
        cJSON_AddBoolToObject(details, "admin", strcmp(role, "admin") == 0);
        audit_room(c, "room.admin", u.login, &room, details);
        if ((e = keep_an_admin(c, &room)))
            return e;
    }
    return KZ_OK;
}

static int member_json(void *arg, const struct store_member *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "login", m->login);
    cJSON_AddStringToObject(o, "name", m->name);
    cJSON_AddStringToObject(o, "role", m->role);
    cJSON_AddNumberToObject(o, "read_pos", (double)m->read_pos);
    cJSON_AddNumberToObject(o, "joined_pos", (double)m->joined_pos);
    if (m->read_at)
        cJSON_AddNumberToObject(o, "read_at", (double)m->read_at);
    cJSON_AddItemToArray(arg, o);
    return 0;
}

enum kz_err op_room_members(struct srv_call *c)
{
    struct store_room room;
    struct store_member me;
    enum kz_err e = srv_room_for_member(c, &room, &me);
    if (e)
        return e;
    c->result = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(c->result, "members");
    if (store_member_each(srv_store(c->srv), room.id, false, member_json, arr) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "member list failed");
    return KZ_OK;
}

/* ---- room.list ---- */

struct direct_ctx {
    int64_t me;
    char name[STORE_NAME_MAX + 1];
    char login[STORE_LOGIN_MAX + 1];
};

static int other_member(void *arg, const struct store_member *m)
{
    struct direct_ctx *d = arg;
    if (m->user_id == d->me)
        return 0;
    snprintf(d->name, sizeof d->name, "%s", m->name);
    snprintf(d->login, sizeof d->login, "%s", m->login);
    return 1;
}

struct last_ctx {
    struct srv *s;
    cJSON *room;
};

static int last_message(void *arg, const struct store_message *m)
{
    struct last_ctx *l = arg;
    cJSON *last = cJSON_AddObjectToObject(l->room, "last");
    cJSON_AddNumberToObject(last, "pos", (double)m->pos);
    struct store_user u;
    if (store_user_get(srv_store(l->s), m->sender, &u) == STORE_OK) {
        cJSON_AddStringToObject(last, "sender", u.login);
        cJSON_AddStringToObject(last, "sender_name", u.name); /* what a room list shows */
    }
    cJSON_AddStringToObject(last, "body", m->deleted ? "" : m->body);
    cJSON_AddBoolToObject(last, "deleted", m->deleted);
    cJSON_AddNumberToObject(last, "ts", (double)m->ts);
    return 1;
}

static cJSON *room_json(struct srv *s, const struct store_room *r, const struct store_member *me)
{
    struct store *st = srv_store(s);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "room", r->room_id);
    cJSON_AddStringToObject(o, "kind", r->kind);
    cJSON_AddStringToObject(o, "history", r->history[0] ? r->history : "shared");
    cJSON_AddBoolToObject(o, "archived", r->archived_at != 0);
    if (r->archived_at)
        cJSON_AddNumberToObject(o, "archived_at", (double)r->archived_at);
    if (strcmp(r->kind, "direct") == 0) {
        /* A one-to-one room is called after the other person. */
        struct direct_ctx d = {.me = me->user_id};
        store_member_each(st, r->id, true, other_member, &d);
        cJSON_AddStringToObject(o, "name", d.name);
        cJSON_AddStringToObject(o, "with", d.login);
    } else {
        cJSON_AddStringToObject(o, "name", r->name);
    }
    cJSON_AddStringToObject(o, "topic", r->topic);
    cJSON_AddStringToObject(o, "role", me->role);
    if (strcmp(r->kind, "group") == 0) { /* its photos push the caller (room.watch) */
        bool watched = false;
        store_room_watched(st, r->id, me->user_id, &watched);
        cJSON_AddBoolToObject(o, "watched", watched);
    }
    cJSON_AddNumberToObject(o, "read_pos", (double)me->read_pos);
    int64_t n = 0;
    store_member_count(st, r->id, &n);
    cJSON_AddNumberToObject(o, "members", (double)n);
    n = 0;
    store_room_unread(st, r->id, me->user_id, me->read_pos, &n);
    cJSON_AddNumberToObject(o, "unread", (double)n);
    struct last_ctx l = {s, o};
    store_room_last_message(st, r->id, last_message, &l);
    last_photo(s, r->id, o);
    return o;
}

struct list_ctx {
    struct srv *s;
    cJSON *arr;
    bool archived; /* list the archived rooms instead of those in use */
};

static int list_room(void *arg, const struct store_room *r, const struct store_member *me)
{
    struct list_ctx *l = arg;
    if ((r->archived_at != 0) == l->archived)
        cJSON_AddItemToArray(l->arr, room_json(l->s, r, me));
    return 0;
}

enum kz_err op_room_list(struct srv_call *c)
{
    c->result = cJSON_CreateObject();
    struct list_ctx l = {c->srv, cJSON_AddArrayToObject(c->result, "rooms"),
                         srv_arg_bool(c, "archived", false)};
    if (store_room_each_of_user(srv_store(c->srv), c->auth.user.id, list_room, &l) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "room list failed");
    return KZ_OK;
}

/* ---- housekeeping: archiving and exporting ---- */

enum kz_err op_room_archive(struct srv_call *c)
{
    struct store_room room;
    struct store_member me;
    enum kz_err e;
    if ((e = srv_room_for_member(c, &room, &me)) || (e = require_room_admin(c, &room, &me)) ||
        (e = authority_here(c, &room)))
        return e;
    bool archive = srv_arg_bool(c, "archived", true);
    if (archive != (room.archived_at != 0)) {
        /* An event, so that every member's client learns it at once and in order. */
        cJSON *content = cJSON_CreateObject();
        cJSON_AddBoolToObject(content, "archived", archive);
        struct srv_appended ev;
        if ((e = srv_event_append(c, &room, "room.archive", content, &ev)))
            return e;
        room.archived_at = archive ? ev.ts : 0; /* as event_apply.c stored it */
        audit_room(c, archive ? "room.archive" : "room.unarchive", NULL, &room, NULL);
    }
    c->result = cJSON_CreateObject();
    cJSON_AddItemToObject(c->result, "room", room_json(c->srv, &room, &me));
    return KZ_OK;
}

struct export_ctx {
    struct srv *s;
    struct kz_csv *csv;
    int64_t limit, n, last;
    bool more;
};

/* One row of a room's export: what history shows, one event a line. Key exchange events
 * (e2ee.keys, key requests, refusals) are for devices, not for the record. */
static int export_row(void *arg, const struct store_event *e, const struct store_message *m)
{
    struct export_ctx *x = arg;
    if (x->n == x->limit) {
        x->more = true;
        return 1;
    }
    x->n++;
    x->last = e->pos;
    if (strncmp(e->type, "e2ee.", 5) == 0 && strcmp(e->type, "e2ee.photo") != 0)
        return 0;
    cJSON *ev = srv_event_json(x->s, e, m);
    if (!ev) {
        x->csv->failed = true;
        return 1;
    }
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(ev, "content");
    char pos[24], *text = NULL;
    snprintf(pos, sizeof pos, "%lld", (long long)e->pos);
    kz_csv_cell(x->csv, pos, false);
    kz_csv_time(x->csv, e->ts, false);
    const char *cells[] = {e->type, cJSON_GetStringValue(cJSON_GetObjectItem(ev, "sender")),
                           cJSON_GetStringValue(cJSON_GetObjectItem(ev, "sender_name"))};
    for (size_t i = 0; i < sizeof cells / sizeof cells[0]; i++)
        kz_csv_cell(x->csv, cells[i], false);
    if (m)
        kz_csv_cell(x->csv, m->body, false);
    else if (strcmp(e->type, "e2ee.photo") == 0)
        kz_csv_cell(x->csv, "(encrypted photo: only members' devices can open it)", false);
    else
        kz_csv_cell(x->csv, (text = cJSON_PrintUnformatted(content)), false);
    kz_csv_time(x->csv, m && !m->deleted ? m->edited_at : 0, false);
    kz_csv_time(x->csv, m && m->deleted ? m->edited_at : 0, false);
    kz_csv_cell(x->csv, cJSON_GetStringValue(cJSON_GetObjectItem(ev, "deleted_by")), true);
    cJSON_free(text);
    cJSON_Delete(ev);
    return 0;
}

enum kz_err op_room_export(struct srv_call *c)
{
    struct store_room room;
    struct store_member me;
    enum kz_err e = srv_room_for_member(c, &room, &me);
    if (e)
        return e;
    int64_t after = srv_arg_int(c, "after", 0);
    struct kz_csv csv = {0};
    static const char *const header[] = {"pos",       "at",          "event",
                                         "sender",    "sender_name", "text",
                                         "edited_at", "deleted_at",  "deleted_by"};
    if (!after)
        kz_csv_row(&csv, header, sizeof header / sizeof header[0]);
    struct export_ctx x = {c->srv, &csv, srv_arg_int(c, "limit", 1000), 0, after, false};
    /* One more than asked, to tell whether more pages exist. */
    if (store_history(srv_store(c->srv), room.id, 0, after, (int)x.limit + 1, export_row, &x) !=
            STORE_OK ||
        csv.failed) {
        kz_csv_free(&csv);
        return srv_fail(c, KZ_INTERNAL, "export failed");
    }
    /* Later pages continue the first one: no header, and no byte-order mark if the CSV
     * writer starts every text with one. */
    const char *text = csv.text ? csv.text : "";
    if (after && strncmp(text, "\xef\xbb\xbf", 3) == 0)
        text += 3;
    c->result = cJSON_CreateObject();
    cJSON_AddStringToObject(c->result, "csv", text);
    cJSON_AddNumberToObject(c->result, "events", (double)x.n);
    cJSON_AddBoolToObject(c->result, "more", x.more);
    if (x.more)
        cJSON_AddNumberToObject(c->result, "next_after", (double)x.last);
    kz_csv_free(&csv);
    if (!after) /* recorded once, when an export starts */
        audit_room(c, "room.export", NULL, &room, NULL);
    return KZ_OK;
}
