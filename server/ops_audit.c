/* ops_audit.c - the audit log: every admin action and security event, with actor, time,
 * address, target and what changed. Only appended to; audit.list reads it. */
#include "server.h"

#include <string.h>

void srv_audit(struct srv_call *c, const char *action, const char *target, cJSON *details)
{
    const char *actor = c->authed ? c->auth.user.login : srv_arg_str(c, "login");
    if (!actor || !kz_login_valid(actor))
        actor = "-";
    srv_audit_as(c->srv, actor, c->peer, action, target, details);
}

void srv_audit_as(struct srv *s, const char *actor, const char *address, const char *action,
                  const char *target, cJSON *details)
{
    struct store *st = srv_store(s);
    if (srv_writes_blocked(s)) {
        /* The disk refuses writes: the log line is the record until it recovers. */
        KZ_WARN("audit_not_written", "action=%s actor=%s target=%s", action, actor,
                target ? target : "");
        cJSON_Delete(details);
        return;
    }
    char *text = details ? cJSON_PrintUnformatted(details) : NULL;
    cJSON_Delete(details);
    struct store_audit a = {.at = kz_now_ms(),
                            .actor = actor,
                            .address = address,
                            .action = action,
                            .target = target ? target : "",
                            .details = text ? text : "{}"};
    /* Inside the caller's transaction: the entry commits (or rolls back) with what it records;
     * ops that write nothing else get a transaction of their own. */
    if (store_tx_begin(st) != STORE_OK || store_audit_add(st, &a) != STORE_OK)
        KZ_ERROR("audit_failed", "action=%s error=\"%s\"", action, store_errmsg(st));
    else
        srv_tx(s)->want_commit(srv_tx(s)->ctx);
    cJSON_free(text);
}

struct audit_ctx {
    cJSON *arr;
    int64_t last;
};

static int audit_row(void *arg, const struct store_audit *a)
{
    struct audit_ctx *ac = arg;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)a->id);
    cJSON_AddNumberToObject(o, "at", (double)a->at);
    cJSON_AddStringToObject(o, "actor", a->actor);
    cJSON_AddStringToObject(o, "address", a->address);
    cJSON_AddStringToObject(o, "action", a->action);
    cJSON_AddStringToObject(o, "target", a->target);
    cJSON *details = cJSON_Parse(a->details);
    cJSON_AddItemToObject(o, "details", details ? details : cJSON_CreateObject());
    cJSON_AddItemToArray(ac->arr, o);
    ac->last = a->id;
    return 0;
}

enum kz_err op_audit_list(struct srv_call *c)
{
    int64_t limit = srv_arg_int(c, "limit", 100);
    if (limit > 10000)
        limit = 10000;
    c->result = cJSON_CreateObject();
    struct audit_ctx ac = {cJSON_AddArrayToObject(c->result, "entries"), 0};
    if (store_audit_each(srv_store(c->srv), srv_arg_str(c, "action"), srv_arg_str(c, "actor"),
                         srv_arg_str(c, "target"), srv_arg_int(c, "since", 0),
                         srv_arg_int(c, "before", 0), (int)limit, audit_row, &ac) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "audit list failed");
    if (cJSON_GetArraySize(ac.arr) == limit)
        cJSON_AddNumberToObject(c->result, "next_before", (double)ac.last);
    return KZ_OK;
}
