/* ops_notice.c - bulletin notices: posting to an audience resolved at that moment, read
 * tracking, acknowledgements (確認しました), responses to a fixed list of choices (the safety
 * roll-call, 安否確認), reports by department, reminders to exactly those who have not done
 * what was asked.
 *
 * A notice is a room of kind 'notice' whose members are its recipients: its notice.post,
 * notice.edit and notice.withdraw events travel the one stream and resume like talk. */
#include "notice.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- loading and access ---- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int copy_notice(void *arg, const struct store_notice *n)
{
    struct notice_view *v = arg;
    v->n = *n;
    v->n.title = v->title = dup_or_null(n->title);
    v->n.body = v->body = dup_or_null(n->body);
    v->n.category = v->category = dup_or_null(n->category);
    v->n.choices = v->choices = dup_or_null(n->choices);
    v->n.audience = v->audience = dup_or_null(n->audience);
    v->n.author_login = v->author_login = dup_or_null(n->author_login);
    v->n.author_name = v->author_name = dup_or_null(n->author_name);
    v->n.comment = v->comment = dup_or_null(n->comment);
    return 1;
}

void notice_view_free(struct notice_view *v)
{
    free(v->title);
    free(v->body);
    free(v->category);
    free(v->choices);
    free(v->audience);
    free(v->author_login);
    free(v->author_name);
    free(v->comment);
}

/* Loads the notice named by `id` for someone who may see it: a recipient, its author or an
 * admin. Anyone else is told it does not exist. */
enum kz_err notice_view_load(struct srv_call *c, struct notice_view *v)
{
    memset(v, 0, sizeof *v);
    int64_t id = srv_arg_int(c, "notice", 0);
    enum store_rc rc = store_notice_get(srv_store(c->srv), id, c->auth.user.id, copy_notice, v);
    if (rc != STORE_OK && rc != STORE_NOT_FOUND)
        return srv_fail(c, KZ_INTERNAL, "notice lookup failed");
    v->can_manage = rc == STORE_OK && (v->n.author == c->auth.user.id ||
                                       kz_role_is(c->auth.user.role, KZ_ROLE_ADMIN));
    if (rc == STORE_NOT_FOUND || (!v->n.is_recipient && !v->can_manage)) {
        notice_view_free(v);
        memset(v, 0, sizeof *v);
        return srv_fail(c, KZ_NOT_FOUND, "no such notice");
    }
    return KZ_OK;
}

/* An audit entry about a notice: HQ accounts for what it posted, changed, withdrew and whom
 * it reminded. details (consumed, may be NULL) gain the notice's title. */
void notice_audit(struct srv_call *c, const char *action, int64_t id, const char *title,
                  cJSON *details)
{
    char target[32];
    snprintf(target, sizeof target, "notice:%lld", (long long)id);
    if (!details)
        details = cJSON_CreateObject();
    cJSON_AddStringToObject(details, "title", title);
    srv_audit(c, action, target, details);
}

enum kz_err notice_require_manager(struct srv_call *c, const struct notice_view *v)
{
    if (!v->can_manage)
        return srv_fail(c, KZ_FORBIDDEN, "only the author or an admin may do that");
    return KZ_OK;
}

/* Withdrawn or past its expiry: no more acknowledgements or responses. */
enum kz_err notice_require_open(struct srv_call *c, const struct notice_view *v)
{
    if (v->n.withdrawn_at)
        return srv_fail(c, KZ_CONFLICT, "the notice was withdrawn");
    if (v->n.expires_at && kz_now_ms() >= v->n.expires_at)
        return srv_fail(c, KZ_CONFLICT, "the notice has expired");
    return KZ_OK;
}

/* ---- the protocol's view of a notice ---- */

static void add_time(cJSON *o, const char *key, int64_t ms)
{
    if (ms)
        cJSON_AddNumberToObject(o, key, (double)ms);
    else
        cJSON_AddNullToObject(o, key);
}

cJSON *notice_to_json(const struct store_notice *n)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)n->id);
    char link[48];
    snprintf(link, sizeof link, NOTICE_LINK "%lld", (long long)n->id);
    cJSON_AddStringToObject(o, "link", link);
    cJSON_AddStringToObject(o, "title", n->title);
    cJSON_AddStringToObject(o, "body", n->body);
    cJSON_AddStringToObject(o, "author", n->author_login);
    cJSON_AddStringToObject(o, "author_name", n->author_name);
    cJSON_AddStringToObject(o, "category", n->category);
    cJSON_AddStringToObject(o, "priority", n->urgent ? "urgent" : "normal");
    cJSON_AddBoolToObject(o, "ask_ack", n->ask_ack);
    cJSON *choices = n->choices ? cJSON_Parse(n->choices) : NULL;
    cJSON_AddItemToObject(o, "choices", choices ? choices : cJSON_CreateArray());
    cJSON *to = cJSON_Parse(n->audience);
    cJSON_AddItemToObject(o, "to", to ? to : cJSON_CreateArray());
    cJSON_AddBoolToObject(o, "pinned", n->pinned);
    add_time(o, "expires_at", n->expires_at);
    cJSON_AddNumberToObject(o, "created_at", (double)n->created_at);
    cJSON_AddNumberToObject(o, "updated_at", (double)n->updated_at);
    cJSON_AddNumberToObject(o, "revision", (double)n->revision);
    add_time(o, "withdrawn_at", n->withdrawn_at);
    if (n->is_recipient) {
        cJSON *me = cJSON_AddObjectToObject(o, "me");
        add_time(me, "read_at", n->read_at);
        add_time(me, "acked_at", n->acked_at);
        add_time(me, "reminded_at", n->reminded_at);
        if (n->choice >= 0) {
            cJSON *resp = cJSON_AddObjectToObject(me, "response");
            cJSON_AddNumberToObject(resp, "choice", (double)n->choice);
            const cJSON *text =
                cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), (int)n->choice);
            cJSON_AddStringToObject(resp, "text", cJSON_IsString(text) ? text->valuestring : "");
            cJSON_AddStringToObject(resp, "comment", n->comment ? n->comment : "");
            add_time(resp, "at", n->responded_at);
        } else {
            cJSON_AddNullToObject(me, "response");
        }
    }
    return o;
}

/* ---- posting ---- */

struct audience {
    bool all;
    cJSON *depts, *groups, *users; /* JSON arrays of ids */
};

/* Resolves the `to` entries (all, dept:NAME, group:NAME, user:LOGIN) and checks that the
 * caller may post to each: admins and hq to anyone; staff to their own department and to
 * groups they belong to. */
static enum kz_err audience_parse(struct srv_call *c, struct audience *a)
{
    struct store *st = srv_store(c->srv);
    const char *role = c->auth.user.role;
    bool broad = kz_role_is(role, KZ_ROLE_ADMIN) || kz_role_is(role, KZ_ROLE_HQ);
    const cJSON *item;
    cJSON_ArrayForEach(item, srv_arg_list(c, "to"))
    {
        const char *t = item->valuestring;
        int64_t id = 0;
        if (strcmp(t, "all") == 0) {
            if (!broad)
                return srv_fail(c, KZ_FORBIDDEN, "only admin and hq may post to everyone");
            a->all = true;
        } else if (strncmp(t, "dept:", 5) == 0) {
            if (store_dept_find(st, t + 5, false, 0, &id) != STORE_OK)
                return srv_fail(c, KZ_NOT_FOUND, "no department '%s'", t + 5);
            if (!broad && id != c->auth.user.department)
                return srv_fail(c, KZ_FORBIDDEN, "staff may post only to their own department");
            cJSON_AddItemToArray(a->depts, cJSON_CreateNumber((double)id));
        } else if (strncmp(t, "group:", 6) == 0) {
            if (store_group_find(st, t + 6, false, 0, &id) != STORE_OK)
                return srv_fail(c, KZ_NOT_FOUND, "no group '%s'", t + 6);
            if (!broad) {
                bool member = false;
                cJSON *mine = srv_user_groups_json(c->srv, c->auth.user.id);
                const cJSON *g;
                cJSON_ArrayForEach(g, mine) member |= strcmp(g->valuestring, t + 6) == 0;
                cJSON_Delete(mine);
                if (!member)
                    return srv_fail(c, KZ_FORBIDDEN,
                                    "staff may post only to groups they belong to");
            }
            cJSON_AddItemToArray(a->groups, cJSON_CreateNumber((double)id));
        } else if (strncmp(t, "user:", 5) == 0) {
            struct store_user u;
            if (!broad)
                return srv_fail(c, KZ_FORBIDDEN, "staff may not post to named people");
            if (!kz_login_valid(t + 5) || store_user_get_by_login(st, t + 5, &u) != STORE_OK)
                return srv_fail(c, KZ_NOT_FOUND, "no user '%s'",
                                kz_login_valid(t + 5) ? t + 5 : "?");
            cJSON_AddItemToArray(a->users, cJSON_CreateNumber((double)u.id));
        } else {
            return srv_fail(c, KZ_BAD_REQUEST,
                            "'to' entries are all, dept:NAME, group:NAME or user:LOGIN");
        }
    }
    return KZ_OK;
}

/* The body's length is the command table's (notice_max_body_bytes). */
static enum kz_err check_text(struct srv_call *c, const char *title, const char *body)
{
    if (title && !title[strspn(title, " \t")])
        return srv_fail(c, KZ_BAD_REQUEST, "field 'title' must not be blank");
    if (body && !body[strspn(body, " \t\r\n")])
        return srv_fail(c, KZ_BAD_REQUEST, "field 'body' must not be blank");
    return KZ_OK;
}

/* The short announcement in a talk room, with the link the CLI opens. */
static enum kz_err announce(struct srv_call *c, const char *room_id, int64_t notice,
                            const char *title, bool urgent)
{
    struct store *st = srv_store(c->srv);
    struct store_room room;
    struct store_member me;
    if (store_room_get(st, room_id, &room) != STORE_OK || strcmp(room.kind, "notice") == 0 ||
        store_member_get(st, room.id, c->auth.user.id, &me) != STORE_OK || me.left_pos)
        return srv_fail(c, KZ_NOT_FOUND, "no room %s to announce the notice in", room_id);
    enum kz_err e = srv_room_writable(c, &room);
    if (e)
        return e;
    char body[STORE_NAME_MAX + 96];
    snprintf(body, sizeof body, "%s %s " NOTICE_LINK "%lld",
             urgent ? "【緊急のお知らせ】" : "【お知らせ】", title, (long long)notice);
    cJSON *extra = cJSON_CreateObject();
    cJSON_AddNumberToObject(extra, "notice", (double)notice);
    struct srv_appended ev;
    return srv_msg_post(c, &room, body, extra, &ev);
}

struct alert_ctx {
    struct srv *s;
    struct kz_frame *frame;
};

static int alert_one(void *arg, const struct store_recipient *r)
{
    struct alert_ctx *a = arg;
    srv_push_after_commit(a->s, r->user_id, a->frame, true);
    return 0;
}

/* A positionless summary pushed ahead of everything queued, for urgent notices and reminders;
 * the notice itself still arrives in order in the stream. */
struct kz_frame *notice_alert_frame(const char *event, const struct store_notice *n)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", event);
    cJSON_AddNumberToObject(o, "notice", (double)n->id);
    cJSON_AddStringToObject(o, "title", n->title);
    cJSON_AddStringToObject(o, "priority", n->urgent ? "urgent" : "normal");
    cJSON_AddStringToObject(o, "author", n->author_login);
    struct kz_frame *f = kz_frame_from_json(o, 200);
    cJSON_Delete(o);
    return f;
}

enum kz_err op_notice_post(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    const char *title = srv_arg_str(c, "title");
    const char *body = srv_arg_str(c, "body");
    const char *priority = srv_arg_str(c, "priority");
    const char *announce_room = srv_arg_str(c, "announce_room");
    const cJSON *choices = srv_arg_list(c, "choices");
    int64_t expires_at = srv_arg_int(c, "expires_at", 0);
    int64_t now = kz_now_ms();
    enum kz_err e;
    if ((e = check_text(c, title, body)))
        return e;
    if (priority && strcmp(priority, "normal") != 0 && strcmp(priority, "urgent") != 0)
        return srv_fail(c, KZ_BAD_REQUEST, "priority is normal or urgent");
    if (choices && cJSON_GetArraySize(choices) < 2)
        return srv_fail(c, KZ_BAD_REQUEST, "a response needs at least two choices");
    if (expires_at && expires_at <= now)
        return srv_fail(c, KZ_BAD_REQUEST, "expires_at is in the past");
    if (cJSON_GetArraySize(srv_arg_list(c, "to")) == 0)
        return srv_fail(c, KZ_BAD_REQUEST, "field 'to' names no one");
    struct audience a = {false, cJSON_CreateArray(), cJSON_CreateArray(), cJSON_CreateArray()};
    char *depts = NULL, *groups = NULL, *users = NULL, *to = NULL, *choices_text = NULL;
    if ((e = audience_parse(c, &a)))
        goto out;
    bool urgent = priority && strcmp(priority, "urgent") == 0;
    to = cJSON_PrintUnformatted(srv_arg_list(c, "to"));
    choices_text = choices ? cJSON_PrintUnformatted(choices) : NULL;
    struct store_notice_new nn = {.author = c->auth.user.id,
                                  .title = title,
                                  .body = body,
                                  .category = srv_arg_str(c, "category"),
                                  .choices = choices_text,
                                  .audience = to,
                                  .urgent = urgent,
                                  .ask_ack = srv_arg_bool(c, "ask_ack", false),
                                  .pinned = srv_arg_bool(c, "pinned", false),
                                  .expires_at = expires_at,
                                  .now = now};
    if (store_notice_insert(st, &nn) != STORE_OK) {
        e = srv_fail(c, KZ_INTERNAL, "cannot store the notice");
        goto out;
    }
    /* The notice.post event opens the notice's room and is each recipient's feed entry. */
    cJSON *content = cJSON_CreateObject();
    cJSON_AddNumberToObject(content, "notice", (double)nn.id);
    cJSON_AddStringToObject(content, "title", title);
    cJSON_AddStringToObject(content, "body", body);
    cJSON_AddStringToObject(content, "priority", urgent ? "urgent" : "normal");
    cJSON_AddBoolToObject(content, "ask_ack", nn.ask_ack);
    cJSON_AddItemToObject(content, "choices",
                          choices ? cJSON_Duplicate(choices, true) : cJSON_CreateArray());
    struct store_room room = {0};
    snprintf(room.kind, sizeof room.kind, "notice");
    snprintf(room.name, sizeof room.name, "%s", title);
    struct srv_appended posted;
    if ((e = srv_room_create_with(c, &room, NULL, "notice.post", content, &posted)))
        goto out;
    depts = cJSON_PrintUnformatted(a.depts);
    groups = cJSON_PrintUnformatted(a.groups);
    users = cJSON_PrintUnformatted(a.users);
    int64_t count = 0;
    if (store_notice_set_room(st, nn.id, room.id) != STORE_OK ||
        store_notice_resolve(st, nn.id, c->auth.user.id, a.all, depts, groups, users, &count) !=
            STORE_OK ||
        store_notice_join_room(st, nn.id, room.id, posted.pos) != STORE_OK) {
        e = srv_fail(c, KZ_INTERNAL, "cannot resolve the audience");
        goto out;
    }
    if (count == 0) {
        e = srv_fail(c, KZ_BAD_REQUEST, "the audience has no one in it (besides you)");
        goto out;
    }
    if (!announce_room && srv_config(c->srv)->notice_announce_room[0])
        announce_room = srv_config(c->srv)->notice_announce_room;
    if (announce_room && (e = announce(c, announce_room, nn.id, title, urgent)))
        goto out;
    struct notice_view v = {0};
    store_notice_get(st, nn.id, 0, copy_notice, &v);
    /* Those not looking: urgent notices and roll-calls reach their phones and browsers, their
     * mailboxes, and the town's own channels through the webhook. */
    if ((urgent || choices) && ((e = srv_push_notice(c, nn.id, title, urgent, choices)) ||
                                (e = srv_mail_notice(c, nn.id, title, body, choices, urgent)) ||
                                (e = srv_webhook_notice(c, &v.n, choices != NULL)))) {
        notice_view_free(&v);
        goto out;
    }
    if (urgent) {
        struct alert_ctx ac = {c->srv, notice_alert_frame("notice.alert", &v.n)};
        if (ac.frame) {
            store_notice_recipients(st, nn.id, STORE_ALL_RECIPIENTS, -1, alert_one, &ac);
            kz_frame_unref(ac.frame);
        }
    }
    c->result = cJSON_CreateObject();
    cJSON_AddItemToObject(c->result, "notice", notice_to_json(&v.n));
    cJSON_AddNumberToObject(c->result, "recipients", (double)count);
    cJSON_AddNumberToObject(c->result, "pos", (double)posted.pos);
    notice_view_free(&v);
    cJSON *details = cJSON_CreateObject();
    cJSON_AddItemToObject(details, "to", cJSON_Duplicate(srv_arg_list(c, "to"), true));
    cJSON_AddNumberToObject(details, "recipients", (double)count);
    cJSON_AddStringToObject(details, "priority", urgent ? "urgent" : "normal");
    if (announce_room)
        cJSON_AddStringToObject(details, "announce_room", announce_room);
    notice_audit(c, "notice.post", nn.id, title, details);
    KZ_INFO("notice_posted", "by=%s notice=%lld recipients=%lld priority=%s", c->auth.user.login,
            (long long)nn.id, (long long)count, urgent ? "urgent" : "normal");
out:
    cJSON_Delete(a.depts);
    cJSON_Delete(a.groups);
    cJSON_Delete(a.users);
    cJSON_free(depts);
    cJSON_free(groups);
    cJSON_free(users);
    cJSON_free(to);
    cJSON_free(choices_text);
    return e;
}

/* ---- changing a notice ---- */

static enum kz_err notice_event(struct srv_call *c, const struct notice_view *v, const char *type,
                                cJSON *content)
{
    struct store_room room;
    if (store_room_get_by_id(srv_store(c->srv), v->n.room, &room) != STORE_OK) {
        cJSON_Delete(content);
        return srv_fail(c, KZ_INTERNAL, "the notice has no room");
    }
    cJSON_AddNumberToObject(content, "notice", (double)v->n.id);
    struct srv_appended ev;
    return srv_event_append(c, &room, type, content, &ev);
}

enum kz_err op_notice_edit(struct srv_call *c)
{
    struct notice_view v;
    enum kz_err e = notice_view_load(c, &v);
    if (e)
        return e;
    const char *title = srv_arg_str(c, "title");
    const char *body = srv_arg_str(c, "body");
    int64_t revision = 0;
    if ((e = notice_require_manager(c, &v)) || (e = check_text(c, title, body)))
        goto out;
    if (v.n.withdrawn_at) {
        e = srv_fail(c, KZ_CONFLICT, "the notice was withdrawn");
        goto out;
    }
    if (!title && !body) {
        e = srv_fail(c, KZ_BAD_REQUEST, "give a new title, body or both");
        goto out;
    }
    title = title ? title : v.title;
    body = body ? body : v.body;
    if (store_notice_edit(srv_store(c->srv), v.n.id, title, body, c->auth.user.id, kz_now_ms(),
                          &revision) != STORE_OK) {
        e = srv_fail(c, KZ_INTERNAL, "cannot store the revision");
        goto out;
    }
    cJSON *content = cJSON_CreateObject();
    cJSON_AddNumberToObject(content, "revision", (double)revision);
    cJSON_AddStringToObject(content, "title", title);
    cJSON_AddStringToObject(content, "body", body);
    if ((e = notice_event(c, &v, "notice.edit", content)))
        goto out;
    cJSON *details = cJSON_CreateObject();
    cJSON_AddNumberToObject(details, "revision", (double)revision);
    if (strcmp(title, v.title) != 0)
        cJSON_AddStringToObject(details, "old_title", v.title);
    cJSON_AddBoolToObject(details, "body_changed", strcmp(body, v.body) != 0);
    notice_audit(c, "notice.edit", v.n.id, title, details);
    c->result = cJSON_CreateObject();
    cJSON_AddNumberToObject(c->result, "revision", (double)revision);
out:
    notice_view_free(&v);
    return e;
}

enum kz_err op_notice_withdraw(struct srv_call *c)
{
    struct notice_view v;
    enum kz_err e = notice_view_load(c, &v);
    if (e)
        return e;
    if ((e = notice_require_manager(c, &v)))
        goto out;
    enum store_rc rc = store_notice_withdraw(srv_store(c->srv), v.n.id, kz_now_ms());
    if (rc == STORE_CONFLICT) {
        e = srv_fail(c, KZ_CONFLICT, "the notice was already withdrawn");
        goto out;
    }
    if (rc != STORE_OK) {
        e = srv_fail(c, KZ_INTERNAL, "cannot withdraw the notice");
        goto out;
    }
    e = notice_event(c, &v, "notice.withdraw", cJSON_CreateObject());
    if (!e)
        notice_audit(c, "notice.withdraw", v.n.id, v.title, NULL);
    KZ_INFO("notice_withdrawn", "by=%s notice=%lld", c->auth.user.login, (long long)v.n.id);
out:
    notice_view_free(&v);
    return e;
}

/* ---- reading ---- */

static int add_notice(void *arg, const struct store_notice *n)
{
    cJSON_AddItemToArray(arg, notice_to_json(n));
    return 0;
}

enum kz_err op_notice_list(struct srv_call *c)
{
    int64_t limit = srv_arg_int(c, "limit", 100);
    if (limit > srv_config(c->srv)->history_page_max)
        limit = srv_config(c->srv)->history_page_max;
    bool all = srv_arg_bool(c, "all", false);
    /* An admin reaches any notice's report (notice.report), so also any notice's listing. */
    if (all && !kz_role_is(c->auth.user.role, KZ_ROLE_ADMIN))
        return srv_fail(c, KZ_FORBIDDEN, "only admins list every notice");
    c->result = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(c->result, "notices");
    struct store *st = srv_store(c->srv);
    int64_t me = c->auth.user.id;
    enum store_rc rc = all ? store_notice_all(st, me, (int)limit, add_notice, arr)
                       : srv_arg_bool(c, "posted", false)
                           ? store_notice_posted(st, me, (int)limit, add_notice, arr)
                           : store_notice_feed(st, me, (int)limit, add_notice, arr);
    if (rc != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "notice list failed");
    return KZ_OK;
}

/* Shows a notice; a recipient opening it records its first reading. */
enum kz_err op_notice_show(struct srv_call *c)
{
    struct notice_view v;
    enum kz_err e = notice_view_load(c, &v);
    if (e)
        return e;
    if (v.n.is_recipient && !v.n.read_at) {
        bool changed;
        int64_t now = kz_now_ms();
        if (store_notice_read(srv_store(c->srv), v.n.id, c->auth.user.id, now, &changed) !=
            STORE_OK) {
            notice_view_free(&v);
            return srv_fail(c, KZ_INTERNAL, "cannot record the reading");
        }
        v.n.read_at = now;
    }
    c->result = cJSON_CreateObject();
    cJSON_AddItemToObject(c->result, "notice", notice_to_json(&v.n));
    notice_view_free(&v);
    return KZ_OK;
}

static enum kz_err recipient_only(struct srv_call *c, const struct notice_view *v)
{
    if (!v->n.is_recipient)
        return srv_fail(c, KZ_FORBIDDEN, "the notice is not addressed to you");
    return notice_require_open(c, v);
}

enum kz_err op_notice_ack(struct srv_call *c)
{
    struct notice_view v;
    enum kz_err e = notice_view_load(c, &v);
    if (e)
        return e;
    bool changed = false;
    if ((e = recipient_only(c, &v)))
        goto out;
    if (!v.n.ask_ack) {
        e = srv_fail(c, KZ_BAD_REQUEST, "this notice does not ask for an acknowledgement");
        goto out;
    }
    if (store_notice_ack(srv_store(c->srv), v.n.id, c->auth.user.id, kz_now_ms(), &changed) !=
        STORE_OK) {
        e = srv_fail(c, KZ_INTERNAL, "cannot record the acknowledgement");
        goto out;
    }
    c->result = cJSON_CreateObject();
    cJSON_AddBoolToObject(c->result, "already", !changed);
out:
    notice_view_free(&v);
    return e;
}

/* A choice given as its text or as its number (1-based, as the CLI lists them). */
static int64_t find_choice(const cJSON *choices, const char *given)
{
    int64_t i = 0;
    const cJSON *ch;
    cJSON_ArrayForEach(ch, choices)
    {
        if (cJSON_IsString(ch) && strcmp(ch->valuestring, given) == 0)
            return i;
        i++;
    }
    char *end;
    long n = strtol(given, &end, 10);
    if (*given && !*end && n >= 1 && n <= i)
        return n - 1;
    return -1;
}

enum kz_err op_notice_respond(struct srv_call *c)
{
    struct notice_view v;
    enum kz_err e = notice_view_load(c, &v);
    if (e)
        return e;
    cJSON *choices = NULL;
    if ((e = recipient_only(c, &v)))
        goto out;
    choices = v.choices ? cJSON_Parse(v.choices) : NULL;
    if (cJSON_GetArraySize(choices) == 0) {
        e = srv_fail(c, KZ_BAD_REQUEST, "this notice does not ask for a response");
        goto out;
    }
    int64_t choice = find_choice(choices, srv_arg_str(c, "choice"));
    if (choice < 0) {
        e = srv_fail(c, KZ_BAD_REQUEST, "not one of the choices (give its text or its number)");
        goto out;
    }
    if (store_notice_respond(srv_store(c->srv), v.n.id, c->auth.user.id, choice,
                             srv_arg_str(c, "comment"), kz_now_ms()) != STORE_OK) {
        e = srv_fail(c, KZ_INTERNAL, "cannot record the response");
        goto out;
    }
    c->result = cJSON_CreateObject();
    cJSON_AddNumberToObject(c->result, "choice", (double)choice);
    cJSON_AddStringToObject(c->result, "text",
                            cJSON_GetArrayItem(choices, (int)choice)->valuestring);
out:
    cJSON_Delete(choices);
    notice_view_free(&v);
    return e;
}
