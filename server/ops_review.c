/* ops_review.c - the record's review and publication (issue 22, docs/records.md): an admin
 * names a room's reviewers; a reviewer opens a review of the room's record (the helper,
 * redact.c, proposes redactions in every message and edit), marks the messages to publish,
 * accepts or rejects each proposal and marks more by hand; someone else, another reviewer of the
 * room or an admin, approves it; then record.publish writes the published record from it, as
 * often as asked, the same each time. A hold keeps a room's record whatever happens to it.
 * Every step is audited. */
#include "core.h"
#include "event_format.h"
#include "redact.h"

#include <stdlib.h>
#include <string.h>

static bool is_admin(const struct srv_call *c)
{
    return kz_role_is(c->auth.user.role, KZ_ROLE_ADMIN);
}

static void audit_review(struct srv_call *c, const char *action, const struct store_review *r,
                         cJSON *details)
{
    char target[32];
    snprintf(target, sizeof target, "review:%lld", (long long)r->id);
    if (!details)
        details = cJSON_CreateObject();
    cJSON_AddNumberToObject(details, "room_id", (double)r->room);
    srv_audit(c, action, target, details);
}

/* `record.reviewer` (admins): gives or takes back the reviewer role of a room. */
enum kz_err op_record_reviewer(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    struct store_room room;
    struct store_user u;
    if (store_room_get(st, srv_arg_str(c, "room"), &room) != STORE_OK ||
        strcmp(room.kind, "notice") == 0)
        return srv_fail(c, KZ_NOT_FOUND, "no such room");
    if (store_user_get_by_login(st, srv_arg_str(c, "user"), &u) != STORE_OK)
        return srv_fail(c, KZ_NOT_FOUND, "no such user");
    if (u.home[0])
        return srv_fail(c, KZ_BAD_REQUEST, "a reviewer is a user of this server");
    bool on = srv_arg_bool(c, "reviewer", true);
    if (store_reviewer_set(st, room.id, u.id, on, c->auth.user.id, kz_now_ms()) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "reviewer change failed");
    char target[STORE_ROOM_ID_MAX + 8];
    snprintf(target, sizeof target, "room:%s", room.room_id);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "user", u.login);
    cJSON_AddStringToObject(d, "room_name", room.name);
    srv_audit(c, on ? "record.reviewer" : "record.reviewer.revoke", target, d);
    c->result = cJSON_CreateObject();
    cJSON_AddStringToObject(c->result, "room", room.room_id);
    cJSON_AddStringToObject(c->result, "user", u.login);
    cJSON_AddBoolToObject(c->result, "reviewer", on);
    return KZ_OK;
}

static bool reviewer_of(struct srv_call *c, int64_t room)
{
    return store_reviewer_get(srv_store(c->srv), room, c->auth.user.id) == STORE_OK;
}

enum review_need { NEED_SEE, NEED_REVIEWER_OPEN };

/* The review of the `review` argument for a caller who may see it (a reviewer of its room or an
 * admin; anyone else is told there is none), and with NEED_REVIEWER_OPEN one who may change it:
 * a reviewer, while it is open. */
static enum kz_err review_for(struct srv_call *c, enum review_need need, struct store_review *r,
                              struct store_room *room)
{
    struct store *st = srv_store(c->srv);
    enum store_rc rc = store_review_get(st, srv_arg_int(c, "review", 0), r);
    if (rc == STORE_OK && !reviewer_of(c, r->room) && !is_admin(c))
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK)
        rc = store_room_get_by_id(st, r->room, room);
    if (rc == STORE_NOT_FOUND)
        return srv_fail(c, KZ_NOT_FOUND, "no such review");
    if (rc != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "review lookup failed");
    if (need == NEED_REVIEWER_OPEN && !reviewer_of(c, r->room))
        return srv_fail(c, KZ_FORBIDDEN, "only the room's reviewers change a review");
    if (need == NEED_REVIEWER_OPEN && r->approved_at)
        return srv_fail(c, KZ_CONFLICT, "the review is approved: open a new one to change it");
    return KZ_OK;
}

/* ---- the helper's proposals, made when a review opens ---- */

struct names {
    char **v;
    size_t n, cap;
    bool failed;
};

static int name_one(void *arg, const struct store_user *u)
{
    struct names *ns = arg;
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 64;
        char **v = realloc(ns->v, cap * sizeof *v);
        if (!v) {
            ns->failed = true;
            return 1;
        }
        ns->v = v;
        ns->cap = cap;
    }
    if (!(ns->v[ns->n] = strdup(u->name))) {
        ns->failed = true;
        return 1;
    }
    ns->n++;
    return 0;
}

static void names_free(struct names *ns)
{
    for (size_t i = 0; i < ns->n; i++)
        free(ns->v[i]);
    free(ns->v);
}

#define PROPOSALS_PER_TEXT 64

struct propose_ctx {
    struct srv *s;
    int64_t review;
    const struct kz_redact_names *names;
    int64_t texts, proposals, last, n;
    bool failed, more;
};

/* The text a redaction cuts into: a message's or an edit's body as sent (its payload), owned
 * by the caller; NULL for any other event. */
static char *event_text(const struct store_event *e)
{
    if (e->invalid || (strcmp(e->type, "msg") != 0 && strcmp(e->type, "msg.edit") != 0))
        return NULL;
    struct kz_event_head h;
    cJSON *content = NULL;
    if (kz_event_parse(e->payload, e->payload_len, &h, &content) != NULL)
        return NULL;
    const char *body = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(content, "body"));
    char *text = body ? strdup(body) : NULL;
    cJSON_Delete(content);
    return text;
}

static int propose_one(void *arg, const struct store_event *e, const struct store_message *m)
{
    (void)m;
    struct propose_ctx *x = arg;
    x->n++;
    x->last = e->pos;
    char *text = event_text(e);
    if (!text)
        return 0;
    x->texts++;
    struct kz_redact_span spans[PROPOSALS_PER_TEXT];
    size_t n = kz_redact_find(text, strlen(text), x->names, spans, PROPOSALS_PER_TEXT);
    free(text);
    if (n == (size_t)-1) {
        x->failed = true;
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        struct store_redaction r = {.review = x->review,
                                    .start = (int64_t)spans[i].start,
                                    .end = (int64_t)spans[i].end,
                                    .state = "proposed"};
        snprintf(r.event_id, sizeof r.event_id, "%s", e->event_id);
        snprintf(r.kind, sizeof r.kind, "%s", kz_redact_kind_name(spans[i].kind));
        if (store_redaction_insert(x->s->store, &r) != STORE_OK) {
            x->failed = true;
            return 1;
        }
        x->proposals++;
    }
    return 0;
}

#define PROPOSE_PAGE 1000

/* `record.review.create` (the room's reviewers): opens a review of the room's record, or of
 * the events sent in [from, to), with the helper's proposals. */
enum kz_err op_record_review_create(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    struct store_room room;
    struct store_member me;
    /* Those who know the room (its members, admins) hear why; anyone else that it is none. */
    if (store_room_get(st, srv_arg_str(c, "room"), &room) != STORE_OK ||
        strcmp(room.kind, "notice") == 0 ||
        (!reviewer_of(c, room.id) && !is_admin(c) &&
         (store_member_get(st, room.id, c->auth.user.id, &me) != STORE_OK || me.left_pos)))
        return srv_fail(c, KZ_NOT_FOUND, "no such room");
    if (!reviewer_of(c, room.id))
        return srv_fail(c, KZ_FORBIDDEN,
                        "only the room's reviewers open a review (an admin names them with "
                        "record.reviewer)");
    struct store_review r = {.room = room.id,
                             .author = c->auth.user.id,
                             .from_ts = srv_arg_int(c, "from", 0),
                             .to_ts = srv_arg_int(c, "to", KZ_POS_MAX),
                             .created_at = kz_now_ms()};
    if (r.to_ts <= r.from_ts)
        return srv_fail(c, KZ_BAD_REQUEST, "to must be after from");
    const char *title = srv_arg_str(c, "title");
    snprintf(r.title, sizeof r.title, "%s", title ? title : room.name);
    if (store_review_insert(st, &r) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "review insert failed");
    /* The directory's names, for the helper: this server's users and those of other servers
     * it knows from shared rooms. */
    struct names ns = {0};
    struct kz_redact_names *words = NULL;
    if (store_user_each(st, name_one, &ns) != STORE_OK || ns.failed ||
        !(words = kz_redact_names_new((const char *const *)ns.v, ns.n))) {
        names_free(&ns);
        return srv_fail(c, KZ_INTERNAL, "the directory could not be read");
    }
    names_free(&ns);
    struct propose_ctx x = {.s = c->srv, .review = r.id, .names = words};
    /* Every event of the range, a page at a time (the walk's statement is reused), inside
     * this one request: the helper reads 10,000 messages in ~30 ms whatever the directory's
     * size (redact.c), so a day of a busy hotline opens without holding the server up long. */
    for (int64_t after = 0;; after = x.last) {
        x.n = 0;
        if (store_record_events(st, room.id, after, r.from_ts, r.to_ts, PROPOSE_PAGE, propose_one,
                                &x) != STORE_OK ||
            x.failed)
            break;
        if (x.n < PROPOSE_PAGE)
            break;
    }
    kz_redact_names_free(words);
    if (x.failed)
        return srv_fail(c, KZ_INTERNAL, "the helper's proposals could not be stored");
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "room", room.room_id);
    cJSON_AddNumberToObject(d, "proposals", (double)x.proposals);
    audit_review(c, "record.review.create", &r, d);
    c->result = cJSON_CreateObject();
    cJSON_AddNumberToObject(c->result, "review", (double)r.id);
    cJSON_AddNumberToObject(c->result, "texts", (double)x.texts);
    cJSON_AddNumberToObject(c->result, "proposals", (double)x.proposals);
    return KZ_OK;
}

/* ---- the events a review names ---- */

struct fetch {
    int64_t room;
    bool found;
    struct store_event e; /* its payload and signature are not kept */
    char *text;
};

static int fetch_one(void *arg, const struct store_event *e)
{
    struct fetch *f = arg;
    if (e->room != f->room)
        return 0; /* an event of another room is none of this one's */
    f->found = true;
    f->e = *e;
    f->e.payload = f->e.sig = NULL;
    f->e.invalid = NULL;
    f->text = event_text(e);
    return 0;
}

/* The event event_id of the room, with its text in f->text (the caller frees it; NULL for an
 * event without one); false if the room has no such event. */
static bool room_event(struct srv *s, int64_t room, const char *event_id, struct fetch *f)
{
    int64_t pos;
    *f = (struct fetch){.room = room};
    if (!event_id || store_event_pos(s->store, event_id, &pos) != STORE_OK ||
        store_event_get(s->store, pos, fetch_one, f) != STORE_OK || !f->found) {
        free(f->text);
        f->text = NULL;
        return false;
    }
    return true;
}

/* ---- show ---- */

struct show_ctx {
    struct srv *s;
    int64_t room;
    cJSON *arr;
    char last_event[STORE_ROOM_ID_MAX + 1];
    struct fetch f; /* last_event's */
};

static int show_one(void *arg, const struct store_redaction *r)
{
    struct show_ctx *x = arg;
    if (strcmp(x->last_event, r->event_id) != 0) {
        free(x->f.text);
        room_event(x->s, x->room, r->event_id, &x->f);
        snprintf(x->last_event, sizeof x->last_event, "%s", r->event_id);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)r->id);
    cJSON_AddStringToObject(o, "event_id", r->event_id);
    cJSON_AddNumberToObject(o, "start", (double)r->start);
    cJSON_AddNumberToObject(o, "end", (double)r->end);
    cJSON_AddStringToObject(o, "kind", r->kind);
    cJSON_AddBoolToObject(o, "by_hand", r->by_hand);
    cJSON_AddStringToObject(o, "state", r->state);
    if (x->f.text && (size_t)r->end <= strlen(x->f.text)) {
        /* What it covers, for the reviewer to judge (reviewers and admins only). */
        char *cut = strndup(x->f.text + r->start, (size_t)(r->end - r->start));
        if (cut)
            cJSON_AddStringToObject(o, "text", cut);
        free(cut);
    }
    cJSON_AddItemToArray(x->arr, o);
    return 0;
}

static int passage_one(void *arg, const char *event_id)
{
    cJSON_AddItemToArray(arg, cJSON_CreateString(event_id));
    return 0;
}

static void add_login(struct srv *s, cJSON *o, const char *key, int64_t user_id)
{
    struct store_user u;
    if (user_id && store_user_get(s->store, user_id, &u) == STORE_OK)
        cJSON_AddStringToObject(o, key, u.login);
}

/* `record.review.show`: the review, its passages and its redactions with what each covers. */
enum kz_err op_record_review_show(struct srv_call *c)
{
    struct store_review r;
    struct store_room room;
    enum kz_err e = review_for(c, NEED_SEE, &r, &room);
    if (e)
        return e;
    c->result = cJSON_CreateObject();
    cJSON *o = cJSON_AddObjectToObject(c->result, "review");
    cJSON_AddNumberToObject(o, "id", (double)r.id);
    cJSON_AddStringToObject(o, "room", room.room_id);
    cJSON_AddStringToObject(o, "room_name", room.name);
    cJSON_AddStringToObject(o, "title", r.title);
    add_login(c->srv, o, "reviewer", r.author);
    cJSON_AddNumberToObject(o, "from", (double)r.from_ts);
    cJSON_AddNumberToObject(o, "to", (double)r.to_ts);
    cJSON_AddNumberToObject(o, "created_at", (double)r.created_at);
    cJSON_AddStringToObject(o, "state", r.approved_at ? "approved" : "open");
    add_login(c->srv, o, "approved_by", r.approver);
    if (r.approved_at)
        cJSON_AddNumberToObject(o, "approved_at", (double)r.approved_at);
    cJSON *passages = cJSON_AddArrayToObject(c->result, "passages");
    struct show_ctx x = {
        .s = c->srv, .room = r.room, .arr = cJSON_AddArrayToObject(c->result, "redactions")};
    enum store_rc rc = store_passage_each(c->srv->store, r.id, passage_one, passages);
    if (rc == STORE_OK)
        rc = store_redaction_each(c->srv->store, r.id, NULL, show_one, &x);
    free(x.f.text);
    return rc == STORE_OK ? KZ_OK : srv_fail(c, KZ_INTERNAL, "review read failed");
}

/* ---- marking passages and redactions, deciding proposals ---- */

/* `record.review.mark`: marks (or with publish false unmarks) messages, edits, deletions and
 * photos of the room for publication. */
enum kz_err op_record_review_mark(struct srv_call *c)
{
    struct store_review r;
    struct store_room room;
    enum kz_err e = review_for(c, NEED_REVIEWER_OPEN, &r, &room);
    if (e)
        return e;
    bool on = srv_arg_bool(c, "publish", true);
    const cJSON *ev, *events = srv_arg_list(c, "events");
    int64_t n = 0;
    cJSON_ArrayForEach(ev, events)
    {
        struct fetch f;
        if (!cJSON_IsString(ev) || !room_event(c->srv, r.room, ev->valuestring, &f))
            return srv_fail(c, KZ_NOT_FOUND, "no such event in the room: %.64s",
                            cJSON_IsString(ev) ? ev->valuestring : "(not a string)");
        free(f.text);
        if (store_passage_set(c->srv->store, r.id, ev->valuestring, on) != STORE_OK)
            return srv_fail(c, KZ_INTERNAL, "marking failed");
        n++;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "events", (double)n);
    cJSON_AddBoolToObject(d, "publish", on);
    audit_review(c, "record.review.mark", &r, d);
    c->result = cJSON_CreateObject();
    cJSON_AddNumberToObject(c->result, "marked", (double)n);
    return KZ_OK;
}

/* Whether [a, b) lies inside text on character boundaries. */
static bool range_ok(const char *text, int64_t a, int64_t b)
{
    size_t len = strlen(text);
    return a >= 0 && b > a && (size_t)b <= len && ((unsigned char)text[a] & 0xc0) != 0x80 &&
           ((size_t)b == len || ((unsigned char)text[b] & 0xc0) != 0x80);
}

/* `record.review.redact`: a redaction marked by hand (accepted by the one who marks it). */
enum kz_err op_record_review_redact(struct srv_call *c)
{
    struct store_review r;
    struct store_room room;
    enum kz_err e = review_for(c, NEED_REVIEWER_OPEN, &r, &room);
    if (e)
        return e;
    struct fetch f;
    const char *event_id = srv_arg_str(c, "event");
    if (!room_event(c->srv, r.room, event_id, &f))
        return srv_fail(c, KZ_NOT_FOUND, "no such event in the room");
    int64_t a = srv_arg_int(c, "start", 0), b = srv_arg_int(c, "end", 0);
    bool has_text = f.text != NULL, ok = has_text && range_ok(f.text, a, b);
    size_t len = has_text ? strlen(f.text) : 0;
    free(f.text);
    if (!has_text)
        return srv_fail(c, KZ_BAD_REQUEST, "only a message's or an edit's text is redacted");
    if (!ok)
        return srv_fail(c, KZ_BAD_REQUEST,
                        "start and end must be byte offsets of the text (0 to %zu, end after "
                        "start) at the start of a character",
                        len);
    struct store_redaction red = {.review = r.id,
                                  .start = a,
                                  .end = b,
                                  .kind = "hand",
                                  .by_hand = true,
                                  .state = "accepted",
                                  .decided_by = c->auth.user.id,
                                  .decided_at = kz_now_ms()};
    snprintf(red.event_id, sizeof red.event_id, "%s", event_id);
    enum store_rc rc = store_redaction_insert(c->srv->store, &red);
    if (rc == STORE_CONFLICT)
        return srv_fail(c, KZ_CONFLICT, "the review has this redaction already");
    if (rc != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "redaction failed");
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "redaction", (double)red.id);
    cJSON_AddStringToObject(d, "event", event_id);
    cJSON_AddNumberToObject(d, "start", (double)a);
    cJSON_AddNumberToObject(d, "end", (double)b);
    audit_review(c, "record.review.redact", &r, d);
    c->result = cJSON_CreateObject();
    cJSON_AddNumberToObject(c->result, "redaction", (double)red.id);
    return KZ_OK;
}

/* `record.review.decide`: a person accepts or rejects a redaction (the helper's or another's). */
enum kz_err op_record_review_decide(struct srv_call *c)
{
    struct store_review r;
    struct store_room room;
    enum kz_err e = review_for(c, NEED_REVIEWER_OPEN, &r, &room);
    if (e)
        return e;
    bool accept = srv_arg_bool(c, "accept", true);
    int64_t id = srv_arg_int(c, "redaction", 0);
    enum store_rc rc = store_redaction_decide(
        c->srv->store, r.id, id, accept ? "accepted" : "rejected", c->auth.user.id, kz_now_ms());
    if (rc == STORE_NOT_FOUND)
        return srv_fail(c, KZ_NOT_FOUND, "the review has no redaction %lld", (long long)id);
    if (rc != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "decision failed");
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "redaction", (double)id);
    cJSON_AddBoolToObject(d, "accept", accept);
    audit_review(c, accept ? "record.review.accept" : "record.review.reject", &r, d);
    c->result = cJSON_CreateObject();
    cJSON_AddNumberToObject(c->result, "redaction", (double)id);
    cJSON_AddStringToObject(c->result, "state", accept ? "accepted" : "rejected");
    return KZ_OK;
}

/* `record.review.approve`: someone other than its reviewer, another reviewer of the room or an
 * admin, signs the review off once every proposal is decided and something is marked. */
enum kz_err op_record_review_approve(struct srv_call *c)
{
    struct store_review r;
    struct store_room room;
    enum kz_err e = review_for(c, NEED_SEE, &r, &room);
    if (e)
        return e;
    if (r.author == c->auth.user.id)
        return srv_fail(c, KZ_FORBIDDEN,
                        "a review is approved by someone other than its reviewer: another "
                        "reviewer of the room or an admin");
    if (r.approved_at)
        return srv_fail(c, KZ_CONFLICT, "the review is approved already");
    int64_t pending = 0, marked = 0;
    if (store_redaction_pending(c->srv->store, r.id, &pending) != STORE_OK ||
        store_passage_count(c->srv->store, r.id, &marked) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "review read failed");
    if (pending)
        return srv_fail(c, KZ_CONFLICT,
                        "%lld proposed redaction(s) not yet accepted or rejected by the reviewer",
                        (long long)pending);
    if (!marked)
        return srv_fail(c, KZ_CONFLICT, "nothing is marked for publication");
    if (store_review_approve(c->srv->store, r.id, c->auth.user.id, kz_now_ms()) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "approval failed");
    audit_review(c, "record.review.approve", &r, NULL);
    c->result = cJSON_CreateObject();
    cJSON_AddNumberToObject(c->result, "review", (double)r.id);
    cJSON_AddStringToObject(c->result, "state", "approved");
    return KZ_OK;
}

/* `record.publish`: the published record of an approved review, for its room's members, its
 * reviewers and admins. */
enum kz_err op_record_publish(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    struct store_review r;
    struct store_room room;
    struct store_member me;
    enum store_rc rc = store_review_get(st, srv_arg_int(c, "review", 0), &r);
    bool member = rc == STORE_OK &&
                  store_member_get(st, r.room, c->auth.user.id, &me) == STORE_OK && !me.left_pos;
    if (rc == STORE_OK && !member && !reviewer_of(c, r.room) && !is_admin(c))
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK)
        rc = store_room_get_by_id(st, r.room, &room);
    if (rc == STORE_NOT_FOUND)
        return srv_fail(c, KZ_NOT_FOUND, "no such review");
    if (rc != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "review lookup failed");
    if (!r.approved_at)
        return srv_fail(c, KZ_CONFLICT, "the review is not approved yet");
    return srv_record_reply(c, &room, &r);
}

/* `room.hold` (admins): keeps everything of a room's record, whatever else asks to remove it. */
enum kz_err op_room_hold(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    struct store_room room;
    if (store_room_get(st, srv_arg_str(c, "room"), &room) != STORE_OK ||
        strcmp(room.kind, "notice") == 0)
        return srv_fail(c, KZ_NOT_FOUND, "no such room");
    bool on = srv_arg_bool(c, "hold", true);
    int64_t now = kz_now_ms(), at = 0;
    if (store_hold_set(st, room.id, on, c->auth.user.id, now) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "hold failed");
    char target[STORE_ROOM_ID_MAX + 8];
    snprintf(target, sizeof target, "room:%s", room.room_id);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "room_name", room.name);
    srv_audit(c, on ? "room.hold" : "room.release", target, d);
    c->result = cJSON_CreateObject();
    cJSON_AddStringToObject(c->result, "room", room.room_id);
    cJSON_AddBoolToObject(c->result, "hold", on);
    if (on && store_hold_get(st, room.id, &at) == STORE_OK)
        cJSON_AddNumberToObject(c->result, "held_at", (double)at);
    return KZ_OK;
}
