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
    const struct store_review *review; /* publishing this approved review; NULL: the record */
    struct kz_json *out;
    enum kz_record_format f;
    int offset;
    bool received;
    int64_t limit, n, rows, last;
    bool more, failed;
    /* JSON Lines: per log of the page, the highest seq a signature already covers. */
    struct proven {
        char origin[STORE_ORIGIN_MAX + 1];
        int64_t inc, seq;
    } * proven;
    size_t nproven, capproven;
};

struct proof_ctx {
    struct record_ctx *x;
    int64_t signed_seq; /* the first signed event met (0: none yet) */
};

static int proof_one(void *arg, const struct store_event *e)
{
    struct proof_ctx *p = arg;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddTrueToObject(o, "proof");
    cJSON_AddStringToObject(o, "event_id", e->event_id);
    cJSON_AddStringToObject(o, "server", e->origin);
    cJSON_AddNumberToObject(o, "inc", (double)e->inc);
    cJSON_AddNumberToObject(o, "seq", (double)e->seq);
    add_b64url(o, "payload", e->payload, e->payload_len);
    add_b64url(o, "sig", e->sig, e->sig_len);
    kz_json_item(p->x->out, o);
    kz_json_raw(p->x->out, "\n", 1);
    cJSON_Delete(o);
    if (e->sig_len) {
        p->signed_seq = e->seq;
        return 1;
    }
    return 0;
}

/* After a JSON Lines row whose event carries no signature (signatures are checkpoints), the
 * events of its log up to the first signed one, as proof lines: `kizunad verify-record` follows
 * the hash chain from the row to that signature. Once per log and page. */
static bool prove(struct record_ctx *x, const struct store_event *e)
{
    struct proven *p = NULL;
    for (size_t i = 0; i < x->nproven; i++)
        if (x->proven[i].inc == e->inc && strcmp(x->proven[i].origin, e->origin) == 0)
            p = &x->proven[i];
    if (!p) {
        if (x->nproven == x->capproven) {
            size_t cap = x->capproven ? x->capproven * 2 : 8;
            struct proven *v = realloc(x->proven, cap * sizeof *v);
            if (!v)
                return false;
            x->proven = v;
            x->capproven = cap;
        }
        p = &x->proven[x->nproven++];
        *p = (struct proven){.inc = e->inc};
        snprintf(p->origin, sizeof p->origin, "%s", e->origin);
    }
    if (e->seq <= p->seq)
        return true;
    if (e->sig_len) {
        p->seq = e->seq;
        return true;
    }
    struct proof_ctx pc = {x, 0};
    if (store_log_walk(x->s->store, e->room, e->origin, e->inc, e->seq, proof_one, &pc) != STORE_OK)
        return false;
    p->seq = pc.signed_seq ? pc.signed_seq : e->seq;
    return true;
}

/* What a published record shows of messages: their text as sent and as edited, deletions
 * and photos; nothing else of the room (joins name people) is published. */
static bool in_publication(const char *type)
{
    return strcmp(type, "msg") == 0 || strcmp(type, "msg.edit") == 0 ||
           strcmp(type, "msg.delete") == 0 || strcmp(type, "e2ee.photo") == 0;
}

struct cuts {
    struct kz_record_cut *v;
    size_t n, cap;
    bool failed;
};

static int cut_one(void *arg, const struct store_redaction *r)
{
    struct cuts *c = arg;
    if (strcmp(r->state, "accepted") != 0)
        return 0;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        struct kz_record_cut *v = realloc(c->v, cap * sizeof *v);
        if (!v) {
            c->failed = true;
            return 1;
        }
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n++] = (struct kz_record_cut){(size_t)r->start, (size_t)r->end};
    return 0;
}

/* A row as the public may see it: no payload or signature (they hold the text as sent), no
 * people (municipality and seat say who spoke), and the text with each accepted redaction of
 * the event replaced by the mark. false if out of memory or the store failed. */
static bool publish_row(struct record_ctx *x, cJSON *row, const char *event_id)
{
    static const char *const drop[] = {"payload", "sig", "sender", "sender_name",
                                       "detail",  "inc", "seq"};
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
        cJSON_DeleteItemFromObjectCaseSensitive(row, drop[i]);
    const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(row, "text"));
    if (!text)
        return true;
    struct cuts c = {0};
    if (store_redaction_each(x->s->store, x->review->id, event_id, cut_one, &c) != STORE_OK ||
        c.failed) {
        free(c.v);
        return false;
    }
    char *clean = kz_record_redact(text, c.v, c.n);
    free(c.v);
    if (!clean)
        return false;
    cJSON_ReplaceItemInObjectCaseSensitive(row, "text", cJSON_CreateString(clean));
    free(clean);
    return true;
}

static int record_one(void *arg, const struct store_event *e, const struct store_message *m)
{
    struct record_ctx *x = arg;
    if (x->n == x->limit) {
        x->more = true;
        return 1;
    }
    x->n++;
    x->last = e->pos;
    if (!in_record(e->type) || e->invalid) {
        /* Not for people, but part of its log: JSON Lines carry it as a proof line, so that
         * verify-record finds every log of the range whole. */
        struct proof_ctx pc = {x, 0};
        if (x->f == KZ_RECORD_JSONL && !x->review)
            proof_one(&pc, e);
        return 0;
    }
    if (x->review && (!in_publication(e->type) ||
                      store_passage_get(x->s->store, x->review->id, e->event_id) != STORE_OK))
        return 0;
    cJSON *row = record_row(x->s, e, m, x->offset, x->received);
    if (!row || (x->review && !publish_row(x, row, e->event_id))) {
        cJSON_Delete(row);
        x->failed = true;
        return 1;
    }
    kz_record_row(x->out, x->f, row, x->offset);
    x->rows++;
    cJSON_Delete(row);
    if (x->f == KZ_RECORD_JSONL && !x->review && !prove(x, e)) {
        x->failed = true;
        return 1;
    }
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
    int64_t held_at;
    if (store_hold_get(s->store, room->id, &held_at) == STORE_OK)
        cJSON_AddNumberToObject(h, "held_at", (double)held_at);
    /* Municipalities by the names pinned here: a header may differ between servers. */
    cJSON *servers = cJSON_AddArrayToObject(h, "servers");
    store_peer_each(s->store, add_peer_name, servers);
    cJSON *keys = cJSON_AddObjectToObject(h, "keys");
    kz_json_add_b64url(keys, s->origin, s->sk + 32, 32); /* libsodium's sk ends with the pk */
    store_peer_each(s->store, add_peer_key, keys);
    return h;
}

enum kz_err srv_record_reply(struct srv_call *c, const struct store_room *room,
                             const struct store_review *review)
{
    enum kz_record_format f;
    if (!kz_record_format_parse(srv_arg_str(c, "format"), &f))
        return srv_fail(c, KZ_BAD_REQUEST, "format must be jsonl, csv or html");
    int64_t from = review ? review->from_ts : srv_arg_int(c, "from", 0);
    int64_t to = review ? review->to_ts : srv_arg_int(c, "to", KZ_POS_MAX);
    if (to <= from)
        return srv_fail(c, KZ_BAD_REQUEST, "to must be after from");
    int offset = 0;
    if (!kz_record_zone_offset(c->srv->cfg->record_time_zone, &offset))
        return srv_fail(c, KZ_INTERNAL, "record_time_zone is not a zone of the record's table");
    int64_t after = srv_arg_int(c, "after", 0);
    struct kz_json out;
    kz_json_init(&out, 1 << 16);
    if (!after) {
        cJSON *head = record_head(c, room, from, to);
        if (review) {
            /* What the public needs is the review, not the servers' keys; who exported and
             * who approved it are staff, kept in the audit log rather than published. */
            cJSON_DeleteItemFromObjectCaseSensitive(head, "keys");
            cJSON_DeleteItemFromObjectCaseSensitive(head, "exported_by");
            cJSON_AddBoolToObject(head, "published", true);
            cJSON_AddNumberToObject(head, "review", (double)review->id);
            cJSON_AddStringToObject(head, "title", review->title);
            cJSON_AddNumberToObject(head, "approved_at", (double)review->approved_at);
        }
        kz_record_begin(&out, f, head, offset);
        cJSON_Delete(head);
    }
    struct record_ctx x = {.s = c->srv,
                           .review = review,
                           .out = &out,
                           .f = f,
                           .offset = offset,
                           .received = !review && srv_arg_bool(c, "received", false),
                           .limit = srv_arg_int(c, "limit", 1000),
                           .last = after};
    /* One more than asked, to tell whether more pages exist. */
    enum store_rc rc = store_record_events(srv_store(c->srv), room->id, after, from, to,
                                           (int)x.limit + 1, record_one, &x);
    if (rc == STORE_NOT_FOUND) {
        kz_json_free(&out);
        return srv_fail(c, KZ_BAD_REQUEST, "after is not a position of this room");
    }
    free(x.proven);
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
        char target[STORE_ROOM_ID_MAX + 24];
        if (review)
            snprintf(target, sizeof target, "review:%lld", (long long)review->id);
        else
            snprintf(target, sizeof target, "room:%s", room->room_id);
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "room", room->room_id);
        cJSON_AddStringToObject(d, "room_name", room->name);
        cJSON_AddStringToObject(d, "format", srv_arg_str(c, "format"));
        srv_audit(c, review ? "record.publish" : "record.export", target, d);
    }
    return KZ_OK;
}

enum kz_err op_record_export(struct srv_call *c)
{
    struct store_room room;
    struct store_member me;
    enum kz_err e = srv_room_for_member(c, &room, &me);
    return e ? e : srv_record_reply(c, &room, NULL);
}
