/* ops_notice_report.c - reports on a notice by department (read, acknowledged, responses per
 * choice, who has not), as JSON and as CSV, and reminders to exactly those who have not done
 * what was asked (in the app, by push and by e-mail, at most every
 * notice_remind_min_interval_s). */
#include "notice.h"
#include "store_push.h"

#include <stdlib.h>
#include <string.h>

struct report_ctx {
    cJSON *choices; /* the notice's choice texts */
    cJSON *totals, *by_dept;
    cJSON *list; /* for the missing-people lists and the CSV rows */
    struct kz_csv csv;
};

static cJSON *choice_counts(const cJSON *choices)
{
    cJSON *arr = cJSON_CreateArray();
    const cJSON *ch;
    cJSON_ArrayForEach(ch, choices)
    {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "choice", ch->valuestring);
        cJSON_AddNumberToObject(o, "count", 0);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static void add_count(cJSON *o, const char *key, int64_t n)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cJSON_SetNumberValue(v, v->valuedouble + (double)n);
}

static int report_row(void *arg, const struct store_report_row *r)
{
    struct report_ctx *rc = arg;
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "department", r->department);
    cJSON_AddNumberToObject(d, "recipients", (double)r->recipients);
    cJSON_AddNumberToObject(d, "read", (double)r->read);
    cJSON_AddNumberToObject(d, "acked", (double)r->acked);
    cJSON_AddNumberToObject(d, "responded", (double)r->responded);
    cJSON_AddItemToObject(d, "responses", choice_counts(rc->choices));
    cJSON_AddItemToArray(rc->by_dept, d);
    add_count(rc->totals, "recipients", r->recipients);
    add_count(rc->totals, "read", r->read);
    add_count(rc->totals, "acked", r->acked);
    add_count(rc->totals, "responded", r->responded);
    return 0;
}

static int choice_row(void *arg, const char *department, int64_t choice, int64_t count)
{
    struct report_ctx *rc = arg;
    const cJSON *d;
    cJSON_ArrayForEach(d, rc->by_dept)
    {
        if (strcmp(cJSON_GetObjectItem(d, "department")->valuestring, department) != 0)
            continue;
        cJSON *slot = cJSON_GetArrayItem(cJSON_GetObjectItem(d, "responses"), (int)choice);
        if (slot)
            add_count(slot, "count", count);
    }
    cJSON *slot = cJSON_GetArrayItem(cJSON_GetObjectItem(rc->totals, "responses"), (int)choice);
    if (slot)
        add_count(slot, "count", count);
    return 0;
}

static int missing_row(void *arg, const struct store_recipient *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "login", r->login);
    cJSON_AddStringToObject(o, "name", r->name);
    cJSON_AddStringToObject(o, "department", r->department);
    cJSON_AddItemToArray(arg, o);
    return 0;
}

/* One "who has not" list of at most `limit` people (the CSV has everyone); `total` (known from
 * the totals) says how many there are in all. */
static enum store_rc missing_list(struct store *st, int64_t notice, enum store_missing which,
                                  cJSON *missing, const char *key, int64_t limit, int64_t total)
{
    cJSON *list = cJSON_AddArrayToObject(missing, key);
    enum store_rc rc = store_notice_recipients(st, notice, which, limit, missing_row, list);
    if (total > cJSON_GetArraySize(list)) {
        char more[48];
        snprintf(more, sizeof more, "%s_more", key);
        cJSON_AddNumberToObject(missing, more, (double)(total - cJSON_GetArraySize(list)));
    }
    return rc;
}

static int csv_row(void *arg, const struct store_recipient *r)
{
    struct report_ctx *rc = arg;
    const cJSON *text = r->choice >= 0 ? cJSON_GetArrayItem(rc->choices, (int)r->choice) : NULL;
    kz_csv_cell(&rc->csv, r->department, false);
    kz_csv_cell(&rc->csv, r->login, false);
    kz_csv_cell(&rc->csv, r->name, false);
    kz_csv_time(&rc->csv, r->read_at, false);
    kz_csv_time(&rc->csv, r->acked_at, false);
    kz_csv_cell(&rc->csv, cJSON_IsString(text) ? text->valuestring : "", false);
    kz_csv_cell(&rc->csv, r->comment, false);
    kz_csv_time(&rc->csv, r->responded_at, false);
    kz_csv_time(&rc->csv, r->reminded_at, true);
    return 0;
}

static void reach_row(void *arg, const char *login, const char *name, const char *department)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "login", login);
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "department", department);
    cJSON_AddItemToArray(arg, o);
}

static void add_ms(cJSON *o, const char *key, int64_t ms)
{
    if (ms)
        cJSON_AddNumberToObject(o, key, (double)ms);
    else
        cJSON_AddNullToObject(o, key);
}

static void reach_person(void *arg, const struct store_reach_person *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "login", p->login);
    cJSON_AddStringToObject(o, "name", p->name);
    cJSON_AddStringToObject(o, "department", p->department);
    add_ms(o, "push_at", p->push_at);
    add_ms(o, "email_at", p->email_at);
    add_ms(o, "read_at", p->read_at);
    add_ms(o, "answered_at", p->answered_at);
    if (p->answered_by)
        cJSON_AddStringToObject(o, "answered_by", p->answered_by);
    else
        cJSON_AddNullToObject(o, "answered_by");
    cJSON_AddItemToArray(arg, o);
}

/* How recipients were reached (docs/notifications.md): push accepted by a push service, mail
 * accepted by the relay, read in the app; who was reached by none of them (listed); and each
 * person's way, with how they answered (a one-tap link from a push or a mail, or the app). */
static enum kz_err reach_report(struct srv_call *c, int64_t notice, int64_t read, cJSON *missing,
                                int64_t limit)
{
    struct store *st = srv_store(c->srv);
    int64_t push = 0, email = 0, none = 0;
    cJSON *list = cJSON_AddArrayToObject(missing, "unreached");
    if (store_reach_counts(st, notice, &push, &email, &none) != STORE_OK ||
        store_reach_none(st, notice, limit, reach_row, list) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "report failed");
    if (none > cJSON_GetArraySize(list))
        cJSON_AddNumberToObject(missing, "unreached_more",
                                (double)(none - cJSON_GetArraySize(list)));
    cJSON *reach = cJSON_AddObjectToObject(c->result, "reach");
    cJSON_AddNumberToObject(reach, "push", (double)push);
    cJSON_AddNumberToObject(reach, "email", (double)email);
    cJSON_AddNumberToObject(reach, "app", (double)read);
    cJSON_AddNumberToObject(reach, "none", (double)none);
    if (store_reach_people(st, notice, limit, reach_person,
                           cJSON_AddArrayToObject(reach, "people")) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "report failed");
    return KZ_OK;
}

enum kz_err op_notice_report(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    struct notice_view v;
    enum kz_err e = notice_view_load(c, &v);
    if (e)
        return e;
    bool csv = false;
    struct report_ctx rc = {0};
    if ((e = notice_require_manager(c, &v)) || (e = srv_arg_format(c, &csv)))
        goto out;
    rc.choices = v.choices ? cJSON_Parse(v.choices) : cJSON_CreateArray();
    c->result = cJSON_CreateObject();
    cJSON_AddItemToObject(c->result, "notice", notice_to_json(&v.n));
    if (csv) {
        static const char *const header[] = {"department", "login",        "name",
                                             "read_at",    "acked_at",     "response",
                                             "comment",    "responded_at", "reminded_at"};
        kz_csv_row(&rc.csv, header, sizeof header / sizeof header[0]);
        if (store_notice_recipients(st, v.n.id, STORE_ALL_RECIPIENTS, -1, csv_row, &rc) !=
                STORE_OK ||
            rc.csv.failed) {
            e = srv_fail(c, KZ_INTERNAL, "report failed");
            goto out;
        }
        cJSON_AddStringToObject(c->result, "csv", rc.csv.text);
        notice_audit(c, "notice.export", v.n.id, v.title, NULL); /* names leave the server */
        goto out;
    }
    rc.totals = cJSON_AddObjectToObject(c->result, "totals");
    cJSON_AddNumberToObject(rc.totals, "recipients", 0);
    cJSON_AddNumberToObject(rc.totals, "read", 0);
    cJSON_AddNumberToObject(rc.totals, "acked", 0);
    cJSON_AddNumberToObject(rc.totals, "responded", 0);
    cJSON_AddItemToObject(rc.totals, "responses", choice_counts(rc.choices));
    rc.by_dept = cJSON_AddArrayToObject(c->result, "by_department");
    cJSON *missing = cJSON_AddObjectToObject(c->result, "missing");
    int64_t limit = srv_arg_int(c, "limit", 200);
    if (store_notice_report(st, v.n.id, report_row, &rc) != STORE_OK ||
        store_notice_choice_counts(st, v.n.id, choice_row, &rc) != STORE_OK) {
        e = srv_fail(c, KZ_INTERNAL, "report failed");
        goto out;
    }
    int64_t all = (int64_t)cJSON_GetObjectItem(rc.totals, "recipients")->valuedouble;
    int64_t read = (int64_t)cJSON_GetObjectItem(rc.totals, "read")->valuedouble;
    int64_t acked = (int64_t)cJSON_GetObjectItem(rc.totals, "acked")->valuedouble;
    int64_t resp = (int64_t)cJSON_GetObjectItem(rc.totals, "responded")->valuedouble;
    if (missing_list(st, v.n.id, STORE_NOT_READ, missing, "not_read", limit, all - read) !=
            STORE_OK ||
        (v.n.ask_ack && missing_list(st, v.n.id, STORE_NOT_ACKED, missing, "not_acked", limit,
                                     all - acked) != STORE_OK) ||
        (cJSON_GetArraySize(rc.choices) > 0 &&
         missing_list(st, v.n.id, STORE_NOT_RESPONDED, missing, "not_responded", limit,
                      all - resp) != STORE_OK))
        e = srv_fail(c, KZ_INTERNAL, "report failed");
    if (!e && (e = reach_report(c, v.n.id, read, missing, limit)))
        goto out;
out:
    cJSON_Delete(rc.choices);
    kz_csv_free(&rc.csv);
    notice_view_free(&v);
    return e;
}

struct remind_ctx {
    struct srv *s;
    struct kz_frame *frame;
    cJSON *ids;
};

static int remind_one(void *arg, int64_t user_id)
{
    struct remind_ctx *r = arg;
    srv_push_after_commit(r->s, user_id, r->frame, true);
    cJSON_AddItemToArray(r->ids, cJSON_CreateNumber((double)user_id));
    return 0;
}

/* Re-notifies exactly those who have not yet done what the notice asks: respond if it has
 * choices, else acknowledge if it asks that, else read it; in the app, by push and by mail. */
enum kz_err op_notice_remind(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    struct notice_view v;
    enum kz_err e = notice_view_load(c, &v);
    if (e)
        return e;
    struct remind_ctx r = {c->srv, NULL, cJSON_CreateArray()};
    cJSON *choices = NULL;
    if ((e = notice_require_manager(c, &v)) || (e = notice_require_open(c, &v)))
        goto out;
    /* Each reminder rings phones and sends mail: a second one soon after is refused, so a
     * double tap or an impatient script cannot flood the people it is about. */
    int64_t now = kz_now_ms(), last = 0;
    int64_t gap = srv_config(c->srv)->notice_remind_min_interval_s * 1000;
    if (store_notice_last_remind(st, v.n.id, &last) != STORE_OK) {
        e = srv_fail(c, KZ_INTERNAL, "cannot read the last reminder");
        goto out;
    }
    if (last && now < last + gap) {
        e = srv_fail(c, KZ_RATE_LIMITED,
                     "this notice was reminded %lld s ago: remind again after %lld s "
                     "(notice_remind_min_interval_s)",
                     (long long)((now - last) / 1000),
                     (long long)((last + gap - now + 999) / 1000));
        goto out;
    }
    choices = v.choices ? cJSON_Parse(v.choices) : NULL;
    enum store_missing which = cJSON_GetArraySize(choices) > 0 ? STORE_NOT_RESPONDED
                               : v.n.ask_ack                   ? STORE_NOT_ACKED
                                                               : STORE_NOT_READ;
    r.frame = notice_alert_frame("notice.remind", &v.n);
    if (!r.frame || store_notice_remind(st, v.n.id, which, now, remind_one, &r) != STORE_OK) {
        e = srv_fail(c, KZ_INTERNAL, "cannot record the reminder");
        goto out;
    }
    /* Those not connected: a push and a mail to exactly the people just marked (reminded_at =
     * now), each as their notify.prefs for reminders say; delivered ones count in the report's
     * reach as the notice's own do. */
    if (cJSON_GetArraySize(r.ids) > 0 &&
        ((e = srv_push_remind(c, v.n.id, v.title, v.n.urgent, now,
                              cJSON_GetArraySize(choices) > 0 ? choices : NULL, v.n.expires_at)) ||
         (e = srv_mail_remind(c, v.n.id, v.title, v.body,
                              cJSON_GetArraySize(choices) > 0 ? choices : NULL, v.n.urgent,
                              v.n.expires_at, now))))
        goto out;
    c->result = cJSON_CreateObject();
    cJSON_AddStringToObject(c->result, "for",
                            which == STORE_NOT_RESPONDED ? "response"
                            : which == STORE_NOT_ACKED   ? "ack"
                                                         : "read");
    cJSON_AddNumberToObject(c->result, "reminded", cJSON_GetArraySize(r.ids));
    cJSON *people = cJSON_AddArrayToObject(c->result, "users");
    const cJSON *id;
    cJSON_ArrayForEach(id, r.ids)
    {
        struct store_user u;
        if (store_user_get(st, (int64_t)id->valuedouble, &u) == STORE_OK)
            cJSON_AddItemToArray(people, cJSON_CreateString(u.login));
    }
    /* The town's own channels (the webhook) remind the same people, in one delivery. */
    if ((e = srv_webhook_reminder(
             c, &v.n, cJSON_GetStringValue(cJSON_GetObjectItem(c->result, "for")), r.ids)))
        goto out;
    cJSON *details = cJSON_CreateObject();
    cJSON_AddStringToObject(details, "for",
                            cJSON_GetStringValue(cJSON_GetObjectItem(c->result, "for")));
    cJSON_AddNumberToObject(details, "reminded", cJSON_GetArraySize(r.ids));
    notice_audit(c, "notice.remind", v.n.id, v.title, details);
    KZ_INFO("notice_reminded", "by=%s notice=%lld users=%d", c->auth.user.login, (long long)v.n.id,
            cJSON_GetArraySize(r.ids));
out:
    cJSON_Delete(choices);
    kz_frame_unref(r.frame);
    cJSON_Delete(r.ids);
    notice_view_free(&v);
    return e;
}
