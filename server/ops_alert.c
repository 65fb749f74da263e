/* ops_alert.c - HQ's view of and hand on the alerts JMA's telegrams start (docs/alerts.md):
 * alert.list (with the feeds' state), alert.show, alert.send_now, alert.cancel, alert.rules for
 * hq and admins; alert.drill and alert.rules.set for admins. The deciding itself is jma_alert.c's.
 */
#include "jma.h"

#include <stdlib.h>
#include <string.h>

static enum kz_err require_hq(struct srv_call *c)
{
    const char *role = c->auth.user.role;
    if (!kz_role_is(role, KZ_ROLE_ADMIN) && !kz_role_is(role, KZ_ROLE_HQ))
        return srv_fail(c, KZ_FORBIDDEN, "only admin and hq see and handle alerts");
    return KZ_OK;
}

static int add_alert(void *arg, const struct store_jma_alert *a)
{
    cJSON_AddItemToArray(arg, jma_alert_json(a));
    return 0;
}

enum kz_err op_alert_list(struct srv_call *c)
{
    enum kz_err e = require_hq(c);
    if (e)
        return e;
    cJSON *list = cJSON_CreateArray();
    if (store_jma_alert_each(srv_store(c->srv), srv_arg_int(c, "limit", 50), false, add_alert,
                             list) != STORE_OK) {
        cJSON_Delete(list);
        return srv_fail(c, KZ_INTERNAL, "cannot read the alerts");
    }
    c->result = cJSON_CreateObject();
    cJSON_AddItemToObject(c->result, "alerts", list);
    cJSON_AddItemToObject(c->result, "feeds", srv_jma_feeds_json(c->srv));
    cJSON_AddNumberToObject(c->result, "now", (double)kz_now_ms());
    return KZ_OK;
}

static enum kz_err alert_load(struct srv_call *c, struct store_jma_alert *a)
{
    enum kz_err e = require_hq(c);
    if (e)
        return e;
    enum store_rc rc = store_jma_alert_get(srv_store(c->srv), srv_arg_int(c, "alert", 0), a);
    if (rc == STORE_NOT_FOUND)
        return srv_fail(c, KZ_NOT_FOUND, "no such alert");
    if (rc != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot read the alert");
    return KZ_OK;
}

enum kz_err op_alert_show(struct srv_call *c)
{
    struct store_jma_alert a = {0};
    enum kz_err e = alert_load(c, &a);
    if (!e) {
        c->result = cJSON_CreateObject();
        cJSON_AddItemToObject(c->result, "alert", jma_alert_json(&a));
        cJSON_AddNumberToObject(c->result, "now", (double)kz_now_ms());
    }
    store_jma_alert_clear(&a);
    return e;
}

/* send_now and cancel act only on a pending alert: a sent roll-call is withdrawn as a notice. */
static enum kz_err pending_only(struct srv_call *c, const struct store_jma_alert *a)
{
    if (strcmp(a->state, "pending") != 0)
        return srv_fail(c, KZ_CONFLICT, "alert %lld is %s, not pending", (long long)a->id,
                        a->state);
    return KZ_OK;
}

enum kz_err op_alert_send_now(struct srv_call *c)
{
    struct store_jma_alert a = {0};
    enum kz_err e = alert_load(c, &a);
    if (!e)
        e = pending_only(c, &a);
    char why[192];
    if (!e && (e = jma_alert_send(c->srv, &a, c->auth.user.login, why, sizeof why)))
        e = srv_fail(c, e == KZ_INTERNAL ? KZ_INTERNAL : KZ_CONFLICT,
                     "the roll-call could not be posted: %s", why);
    if (!e) {
        c->result = cJSON_CreateObject();
        cJSON_AddItemToObject(c->result, "alert", jma_alert_json(&a));
    }
    store_jma_alert_clear(&a);
    return e;
}

enum kz_err op_alert_cancel(struct srv_call *c)
{
    struct store_jma_alert a = {0};
    enum kz_err e = alert_load(c, &a);
    if (!e)
        e = pending_only(c, &a);
    if (!e && jma_alert_cancel(c->srv, &a, c->auth.user.login) != KZ_OK)
        e = srv_fail(c, KZ_INTERNAL, "cannot cancel the alert");
    if (!e) {
        char target[32];
        snprintf(target, sizeof target, "alert:%lld", (long long)a.id);
        srv_audit(c, "jma.cancelled", target, NULL);
        c->result = cJSON_CreateObject();
        cJSON_AddItemToObject(c->result, "alert", jma_alert_json(&a));
    }
    store_jma_alert_clear(&a);
    return e;
}

enum kz_err op_alert_drill(struct srv_call *c)
{
    int64_t id = jma_alert_drill(c->srv, c->auth.user.login);
    if (!id)
        return srv_fail(c, KZ_INTERNAL, "cannot store the alert");
    struct store_jma_alert a = {0};
    if (store_jma_alert_get(srv_store(c->srv), id, &a) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot read the alert");
    c->result = cJSON_CreateObject();
    cJSON_AddItemToObject(c->result, "alert", jma_alert_json(&a));
    store_jma_alert_clear(&a);
    return KZ_OK;
}

enum kz_err op_alert_rules(struct srv_call *c)
{
    enum kz_err e = require_hq(c);
    if (e)
        return e;
    c->result = cJSON_CreateObject();
    cJSON_AddItemToObject(c->result, "rules", jma_rules_json(srv_jma_rules(c->srv)));
    return KZ_OK;
}

/* The fields of alert.rules.set, as stored over the settings (jma_rules_load reads them). */
static const char *const rule_fields[] = {
    "towns", "town_min_int", "pref_min_int",        "tsunami_areas", "special_warnings",
    "drill", "delay_s",      "aftershock_window_s", "audience",      "title",
    "body",  "choices"};

enum kz_err op_alert_rules_set(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    char *old = NULL;
    enum store_rc rc = store_jma_rules_get(st, &old);
    if (rc != STORE_OK && rc != STORE_NOT_FOUND)
        return srv_fail(c, KZ_INTERNAL, "cannot read the rules");
    cJSON *o = old ? cJSON_Parse(old) : NULL;
    free(old);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        o = cJSON_CreateObject();
    }
    for (size_t i = 0; i < sizeof rule_fields / sizeof rule_fields[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->args, rule_fields[i]);
        if (v) {
            cJSON_DeleteItemFromObjectCaseSensitive(o, rule_fields[i]);
            cJSON_AddItemToObject(o, rule_fields[i], cJSON_Duplicate(v, true));
        }
    }
    char *text = cJSON_PrintUnformatted(o);
    struct jma_rules r;
    char why[192];
    enum kz_err e = KZ_OK;
    if (!text)
        e = srv_fail(c, KZ_INTERNAL, "out of memory");
    else if (!jma_rules_load(srv_config(c->srv), text, &r, why, sizeof why))
        e = srv_fail(c, KZ_BAD_REQUEST, "%s", why);
    else if (store_jma_rules_set(st, text, c->auth.user.login, kz_now_ms()) != STORE_OK)
        e = srv_fail(c, KZ_INTERNAL, "cannot store the rules");
    if (!e) {
        srv_jma_rules_replace(c->srv, &r);
        srv_audit(c, "jma.rules", "", cJSON_Duplicate(o, true));
        c->result = cJSON_CreateObject();
        cJSON_AddItemToObject(c->result, "rules", jma_rules_json(&r));
    }
    cJSON_free(text);
    cJSON_Delete(o);
    return e;
}
