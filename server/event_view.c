/* event_view.c - room events as clients see them: the stored payload's fields with the
 * event's position, the sender's name and, for messages and photos, the current text and read
 * count, in a shared room also by server (docs/protocol.md, "Events as clients see them"). Used by
 * pushes, sync, history and room export; it reads the store and changes nothing. room.read events
 * (read markers between servers) are never shown: history and sync leave them out, pushes skip
 * their frames. */
#include "core.h"
#include "json_write.h"

#include <stdlib.h>
#include <string.h>

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

/* The name people know another server by (its peer name, else its id), for events made there:
 * a one-entry cache, as for user names, since a page is mostly one server after another. The
 * result is valid until the next call. */
static const char *server_name(struct srv *s, const char *origin)
{
    static struct srv *cached_srv;
    static char cached_id[STORE_SERVER_ID_MAX + 1], cached_name[STORE_NAME_MAX + 1];
    static int64_t cached_at;
    int64_t now = kz_now_ms();
    if (cached_srv != s || strcmp(cached_id, origin) != 0 || now - cached_at > 1000) {
        struct store_peer p;
        cached_srv = s;
        cached_at = now;
        snprintf(cached_id, sizeof cached_id, "%s", origin);
        snprintf(cached_name, sizeof cached_name, "%s",
                 store_peer_get(s->store, origin, &p) == STORE_OK && p.name[0] ? p.name : origin);
    }
    return cached_name;
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
    if (cJSON_IsString(sender) && strcmp(e->origin, s->origin) != 0) {
        /* A user of another server is login@server everywhere (store_actor_get), shown with
         * the name of that server's municipality. */
        char who[STORE_LOGIN_MAX + 1];
        snprintf(who, sizeof who, "%s@%s", sender->valuestring, e->origin);
        cJSON_AddStringToObject(o, "sender", who);
        cJSON_AddStringToObject(o, "server", e->origin);
        cJSON_AddStringToObject(o, "server_name", server_name(s, e->origin));
    } else if (cJSON_IsString(sender)) {
        cJSON_AddStringToObject(o, "sender", sender->valuestring);
    }
    if (e->received_at) {
        cJSON_AddNumberToObject(o, "received_at", (double)e->received_at);
        if (e->late)
            cJSON_AddBoolToObject(o, "late", true);
    }
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
        cJSON *groups = NULL;
        if (!sender_name && e->shared) /* by read keys, by server: the count is their sum */
            groups = srv_read_groups_json(s, e, true, &n);
        else if (!sender_name) /* (sender_name: a new message, which no one has read) */
            store_read_count_event(s->store, e, &n);
        cJSON_AddNumberToObject(o, "read_count", (double)n);
        if (groups)
            cJSON_AddItemToObject(o, "read_by_server", groups);
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

struct groups_ctx {
    const char *self;
    bool named;
    cJSON *arr;
    int64_t total;
};

static int group_one(void *arg, const struct store_read_group *g)
{
    struct groups_ctx *gc = arg;
    gc->total += g->read;
    if (gc->named) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "server", g->server);
        cJSON_AddStringToObject(o, "name", g->name);
        cJSON_AddNumberToObject(o, "read", (double)g->read);
        cJSON_AddNumberToObject(o, "members", (double)g->members);
        cJSON_AddItemToArray(gc->arr, o);
    } else {
        cJSON *t = cJSON_CreateArray();
        cJSON_AddItemToArray(t, cJSON_CreateString(g->server));
        cJSON_AddItemToArray(t, cJSON_CreateNumber((double)g->read));
        cJSON_AddItemToArray(t, cJSON_CreateNumber((double)g->members));
        cJSON_AddItemToArray(gc->arr, t);
    }
    return 0;
}

cJSON *srv_read_groups_json(struct srv *s, const struct store_event *e, bool named, int64_t *total)
{
    struct groups_ctx gc = {srv_server_id(s), named, cJSON_CreateArray(), 0};
    *total = 0;
    if (store_read_groups_event(s->store, e, gc.self, group_one, &gc) != STORE_OK) {
        cJSON_Delete(gc.arr);
        return NULL;
    }
    *total = gc.total;
    return gc.arr;
}

/* room.read events carry read markers between servers; clients see their effect (read counts,
 * `read` pushes), never the events. Every frame of srv_event_frame_new starts so. */
bool srv_event_frame_hidden(const struct kz_frame *f)
{
    static const char hidden[] = "{\"event\":\"room.read\"";
    return f && f->len >= sizeof hidden - 1 && memcmp(f->data, hidden, sizeof hidden - 1) == 0;
}

cJSON *srv_event_json(struct srv *s, const struct store_event *e, const struct store_message *m)
{
    return event_view(s, e, m, NULL);
}

/* The same fields in the same order as event_view() for an event just made, written straight
 * into a frame (json_write.c): the payload is not parsed back and no cJSON tree is built or
 * printed. That was two of the three serialisations per message, ~47,000 instructions of a
 * message's ~290,000 (callgrind, docs/performance.md). */
struct kz_frame *srv_event_frame_new(struct srv *s, const struct store_event *e,
                                     const char *sender_login, const char *sender_name,
                                     const cJSON *content)
{
    struct kz_json j;
    kz_json_init(&j, 256 + e->payload_len);
    kz_json_raw(&j, "{", 1);
    kz_json_key(&j, "event");
    kz_json_str(&j, e->type);
    kz_json_key(&j, "room");
    kz_json_str(&j, e->room_id);
    kz_json_key(&j, "pos");
    kz_json_int(&j, e->pos);
    kz_json_key(&j, "event_id");
    kz_json_str(&j, e->event_id);
    kz_json_key(&j, "origin");
    kz_json_str(&j, e->origin);
    kz_json_key(&j, "seq");
    kz_json_int(&j, e->seq);
    kz_json_key(&j, "ts");
    kz_json_int(&j, e->ts);
    kz_json_key(&j, "sender");
    kz_json_str(&j, sender_login);
    kz_json_key(&j, "sender_name");
    kz_json_str(&j, sender_name);
    if (e->received_at && strcmp(e->origin, s->origin) != 0) {
        kz_json_key(&j, "server");
        kz_json_str(&j, e->origin);
        kz_json_key(&j, "server_name");
        kz_json_str(&j, server_name(s, e->origin));
    }
    if (e->received_at) { /* made on another server (fed_receive.c) */
        kz_json_key(&j, "received_at");
        kz_json_int(&j, e->received_at);
        if (e->late) {
            kz_json_key(&j, "late");
            kz_json_bool(&j, true);
        }
    }
    if (strcmp(e->type, "msg") == 0 || strcmp(e->type, "e2ee.photo") == 0) {
        kz_json_key(&j, "read_count");
        kz_json_raw(&j, "0", 1); /* a new message has no readers yet */
    } else if (strncmp(e->type, "msg.", 4) == 0) {
        const cJSON *target = cJSON_GetObjectItemCaseSensitive(content, "target");
        int64_t pos;
        if (cJSON_IsString(target) &&
            store_event_pos(s->store, target->valuestring, &pos) == STORE_OK) {
            kz_json_key(&j, "target_pos");
            kz_json_int(&j, pos);
        }
    }
    kz_json_key(&j, "content");
    kz_json_item(&j, content);
    if (strcmp(e->type, "room.create") == 0) {
        kz_json_key(&j, "payload"); /* as in event_view() */
        kz_json_strn(&j, e->payload, e->payload_len);
    }
    kz_json_raw(&j, "}", 1);
    size_t len;
    char *text = kz_json_take(&j, &len);
    if (!text)
        return NULL;
    struct kz_frame *f = kz_frame_from_text(text, len, 200);
    free(text);
    return f;
}
