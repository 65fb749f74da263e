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
    struct kz_csv *csv; /* format csv: the export, instead of arr */
    int64_t last, count;
};

static int audit_row(void *arg, const struct store_audit *a)
{
    struct audit_ctx *ac = arg;
    ac->last = a->id;
    ac->count++;
    if (ac->csv) {
        /* Times in UTC: the export goes to other systems and other time zones. */
        kz_csv_time(ac->csv, a->at, false);
        const char *row[] = {a->actor, a->address, a->action, a->target, a->details};
        kz_csv_row(ac->csv, row, sizeof row / sizeof row[0]);
        return 0;
    }
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
    return 0;
}

enum kz_err op_audit_list(struct srv_call *c)
{
    int64_t limit = srv_arg_int(c, "limit", 100);
    if (limit > 10000)
        limit = 10000;
    bool csv = false;
    enum kz_err e = srv_arg_format(c, &csv);
    if (e)
        return e;
    struct kz_csv text = {0};
    static const char *const header[] = {"at", "actor", "address", "action", "target", "details"};
    if (csv)
        kz_csv_row(&text, header, sizeof header / sizeof header[0]);
    c->result = cJSON_CreateObject();
    struct audit_ctx ac = {csv ? NULL : cJSON_AddArrayToObject(c->result, "entries"),
                           csv ? &text : NULL, 0, 0};
    if (store_audit_each(srv_store(c->srv), srv_arg_str(c, "action"), srv_arg_str(c, "actor"),
                         srv_arg_str(c, "target"), srv_arg_int(c, "since", 0),
                         srv_arg_int(c, "before", 0), (int)limit, audit_row, &ac) != STORE_OK ||
        text.failed) {
        kz_csv_free(&text);
        return srv_fail(c, KZ_INTERNAL, "audit list failed");
    }
    if (csv) {
        cJSON_AddStringToObject(c->result, "csv", text.text);
        cJSON *details = cJSON_CreateObject();
        cJSON_AddNumberToObject(details, "entries", (double)ac.count);
        srv_audit(c, "audit.export", "", details);
    }
    if (ac.count == limit)
        cJSON_AddNumberToObject(c->result, "next_before", (double)ac.last);
    kz_csv_free(&text);
    return KZ_OK;
}
