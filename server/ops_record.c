/* ops_record.c - record.export (issue 22, docs/records.md): a room's chronology, every message,
 * edit, deletion, photo, membership, role and seat change in the room's order, as JSON Lines,
 * CSV or one HTML page (record_format.c writes them). A row holds only what the signed events
 * and their read counts say, never this server's positions or receipt times (unless asked):
 * two servers holding the same events of a shared room write the same bytes after the header.
 * JSON Lines rows carry each event's payload and signature, which `kizunad verify-record`
 * checks. */
#include "core.h"
#include "event_format.h"
#include "record.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* Key exchange and device bookkeeping are for devices, not for the record. */
static bool in_record(const char *type)
{
    if (strncmp(type, "e2ee.", 5) == 0)
        return strcmp(type, "e2ee.photo") == 0;
    return strcmp(type, "device") != 0 && strcmp(type, "device.list") != 0 &&
           strcmp(type, "room.read") != 0;
}

static void add_b64url(cJSON *o, const char *name, const void *bin, size_t n)
{
    if (n)
        kz_json_add_b64url(o, name, bin, n);
    else
        cJSON_AddStringToObject(o, name, "");
}

static void add_str_of(cJSON *row, const char *name, const cJSON *content, const char *key)
{
    const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(content, key));
    if (v)
        cJSON_AddStringToObject(row, name, v);
}

/* The name people know the sender by. In a shared room only a member's (past or present):
 * other servers learn a user's name from their joining the room, so a server's admin who adds
 * members without joining is a name on its own server only, and the rows must be the same on
 * every server. */
static void add_sender_name(struct srv *s, cJSON *row, const struct store_event *e)
{
    struct store_user u;
    struct store_member m;
    if (!e->sender || (e->shared && store_member_get(s->store, e->room, e->sender, &m) != STORE_OK))
        return;
    if (store_user_get(s->store, e->sender, &u) == STORE_OK)
        cJSON_AddStringToObject(row, "sender_name", u.name);
}

/* One row of the record (docs/records.md, "The JSON Lines export"); NULL if out of memory or
 * the stored payload cannot be read (never for an event this server accepted). */
static cJSON *record_row(struct srv *s, const struct store_event *e, const struct store_message *m,
                         int offset, bool received)
{
    struct kz_event_head h;
    cJSON *content = NULL;
    if (kz_event_parse(e->payload, e->payload_len, &h, &content) != NULL)
        return NULL;
    char when[KZ_RECORD_TIME_CHARS];
    kz_record_time(h.ts, offset, true, when);
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "event_id", e->event_id);
    cJSON_AddStringToObject(row, "type", e->type);
    cJSON_AddStringToObject(row, "time", when);
    cJSON_AddNumberToObject(row, "ts", (double)h.ts);
    if (received) {
        kz_record_time(e->received_at ? e->received_at : h.ts, offset, true, when);
        cJSON_AddStringToObject(row, "received", when);
    }
    cJSON_AddStringToObject(row, "server", h.origin);
    cJSON_AddNumberToObject(row, "inc", (double)h.inc);
    cJSON_AddNumberToObject(row, "seq", (double)h.seq);
    cJSON_AddStringToObject(row, "sender", h.sender);
    add_sender_name(s, row, e);
    add_str_of(row, "seat", content, "seat");
    bool is_msg = strcmp(e->type, "msg") == 0, is_photo = strcmp(e->type, "e2ee.photo") == 0;
    if (is_msg || strcmp(e->type, "msg.edit") == 0)
        add_str_of(row, "text", content, "body"); /* as sent: the edits follow as rows */
    if (strncmp(e->type, "msg.", 4) == 0)
        add_str_of(row, "target", content, "target");
    if (strcmp(e->type, "msg.delete") == 0)
        cJSON_AddBoolToObject(row, "by_admin",
                              cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(content, "by_admin")));
    if (is_msg && m)
        cJSON_AddStringToObject(row, "state",
                                m->deleted     ? "deleted"
                                : m->edited_at ? "edited"
                                               : "");
    if (is_photo) {
        const cJSON *blobs = cJSON_GetObjectItemCaseSensitive(content, "blobs");
        const char *first = cJSON_GetStringValue(cJSON_GetArrayItem(blobs, 0));
        cJSON_AddStringToObject(row, "photo", first ? first : "");
    }
    if (is_msg || is_photo) {
        int64_t n = 0;
        cJSON *groups = NULL;
        if (e->shared)
            groups = srv_read_groups_json(s, e, false, &n);
        else
            store_read_count_event(s->store, e, &n);
        cJSON_AddNumberToObject(row, "read_count", (double)n);
        if (groups)
            cJSON_AddItemToObject(row, "read_by_server", groups);
    } else if (strncmp(e->type, "msg.", 4) != 0) {
        cJSON_AddItemToObject(row, "detail", content);
        content = NULL;
    }
    add_b64url(row, "payload", e->payload, e->payload_len);
    add_b64url(row, "sig", e->sig, e->sig_len);
    cJSON_Delete(content);
    return row;
}

struct record_ctx {
    struct srv *s;
    struct kz_json *out;
    enum kz_record_format f;
    int offset;
    bool received;
    int64_t limit, n, rows, last;
    bool more, failed;
};

static int record_one(void *arg, const struct store_event *e, const struct store_message *m)
{
    struct record_ctx *x = arg;
    if (x->n == x->limit) {
        x->more = true;
        return 1;
    }
    x->n++;
    x->last = e->pos;
    if (!in_record(e->type))
        return 0;
    cJSON *row = record_row(x->s, e, m, x->offset, x->received);
    if (!row) {
        x->failed = true;
        return 1;
    }
    kz_record_row(x->out, x->f, row, x->offset);
    x->rows++;
    cJSON_Delete(row);
    return 0;
}

/* The signing keys a verifier needs: this server's and each pinned peer's, by server id. */
static int add_peer_key(void *arg, const struct store_peer *p)
{
    kz_json_add_b64url(arg, p->server_id, p->key, sizeof p->key);
    return 0;
}

static int add_peer_name(void *arg, const struct store_peer *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "server", p->server_id);
    cJSON_AddStringToObject(o, "name", p->name);
    cJSON_AddItemToArray(arg, o);
    return 0;
}

static cJSON *record_head(struct srv_call *c, const struct store_room *room, int64_t from,
                          int64_t to)
{
    struct srv *s = c->srv;
    cJSON *h = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "record", "kizuna/record/v1");
    cJSON_AddStringToObject(h, "room", room->room_id);
    cJSON_AddStringToObject(h, "room_name", room->name);
    if (from > 0)
        cJSON_AddNumberToObject(h, "from", (double)from);
    if (to < KZ_POS_MAX)
        cJSON_AddNumberToObject(h, "to", (double)to);
    cJSON_AddNumberToObject(h, "exported_at", (double)kz_now_ms());
    cJSON_AddStringToObject(h, "exported_by", c->auth.user.login);
    cJSON_AddStringToObject(h, "server", srv_server_id(s));
    cJSON_AddStringToObject(h, "time_zone", s->cfg->record_time_zone);
    /* Municipalities by the names pinned here: a header may differ between servers. */
    cJSON *servers = cJSON_AddArrayToObject(h, "servers");
    store_peer_each(s->store, add_peer_name, servers);
    cJSON *keys = cJSON_AddObjectToObject(h, "keys");
    kz_json_add_b64url(keys, s->origin, s->sk + 32, 32); /* libsodium's sk ends with the pk */
    store_peer_each(s->store, add_peer_key, keys);
    return h;
}

enum kz_err op_record_export(struct srv_call *c)
{
    struct store_room room;
    struct store_member me;
    enum kz_err e = srv_room_for_member(c, &room, &me);
    if (e)
        return e;
    enum kz_record_format f;
    if (!kz_record_format_parse(srv_arg_str(c, "format"), &f))
        return srv_fail(c, KZ_BAD_REQUEST, "format must be jsonl, csv or html");
    int64_t from = srv_arg_int(c, "from", 0), to = srv_arg_int(c, "to", KZ_POS_MAX);
    if (to <= from)
        return srv_fail(c, KZ_BAD_REQUEST, "to must be after from");
    int offset = 0;
    if (!kz_record_zone_offset(c->srv->cfg->record_time_zone, &offset))
        return srv_fail(c, KZ_INTERNAL, "record_time_zone is not a zone of the record's table");
    int64_t after = srv_arg_int(c, "after", 0);
    struct kz_json out;
    kz_json_init(&out, 1 << 16);
    if (!after) {
        cJSON *head = record_head(c, &room, from, to);
        kz_record_begin(&out, f, head, offset);
        cJSON_Delete(head);
    }
    struct record_ctx x = {.s = c->srv,
                           .out = &out,
                           .f = f,
                           .offset = offset,
                           .received = srv_arg_bool(c, "received", false),
                           .limit = srv_arg_int(c, "limit", 1000),
                           .last = after};
    /* One more than asked, to tell whether more pages exist. */
    enum store_rc rc = store_record_events(srv_store(c->srv), room.id, after, from, to,
                                           (int)x.limit + 1, record_one, &x);
    if (rc == STORE_NOT_FOUND) {
        kz_json_free(&out);
        return srv_fail(c, KZ_BAD_REQUEST, "after is not a position of this room");
    }
    if (!x.more)
        kz_record_end(&out, f);
    char *text = rc == STORE_OK && !x.failed ? kz_json_take(&out, NULL) : NULL;
    kz_json_free(&out);
    if (!text)
        return srv_fail(c, KZ_INTERNAL, "export failed");
    c->result = cJSON_CreateObject();
    cJSON_AddStringToObject(c->result, "text", text);
    free(text);
    cJSON_AddNumberToObject(c->result, "rows", (double)x.rows);
    cJSON_AddBoolToObject(c->result, "more", x.more);
    if (x.more)
        cJSON_AddNumberToObject(c->result, "next_after", (double)x.last);
    if (!after) { /* recorded once, when an export starts */
        char target[STORE_ROOM_ID_MAX + 8];
        snprintf(target, sizeof target, "room:%s", room.room_id);
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "room", room.room_id);
        cJSON_AddStringToObject(d, "room_name", room.name);
        cJSON_AddStringToObject(d, "format", srv_arg_str(c, "format"));
        srv_audit(c, "record.export", target, d);
    }
    return KZ_OK;
}
