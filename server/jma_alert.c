/* jma_alert.c - decides what a JMA telegram does (docs/alerts.md): matches it against the
 * rules, opens an alert that waits jma_delay_s (shown at once in the HQ room, which may send it
 * at once or cancel it), and then posts the roll-call through notice.post as jma_author, so
 * that it reaches people, and is reported on, like any notice.
 *
 * One event is one alert: a telegram of the same kind and EventID (a later serial, a
 * correction, VXSE53 after VXSE51) updates the alert and never sends again. A different event
 * within jma_aftershock_window_s sends again only if stronger than the strongest alert of its
 * kind in the window. 取消 cancels a pending alert. Only 通常 telegrams count; 訓練 ones only in
 * drill mode, labelled 訓練; 試験 never. Every decision is audited with the telegram's ids. What
 * matches is jma_rules.c's. */
#include "core.h"
#include "jma.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Writes outside any call go into the loop's transaction (as replication's do). */
static bool tx(struct srv *s)
{
    if (srv_writes_blocked(s))
        return false;
    if (!store_tx_is_open(s->store) && store_tx_begin(s->store) != STORE_OK)
        return false;
    s->tx.want_commit(s->tx.ctx);
    return true;
}

/* ms as "03:12:00" in the server's time zone (kz_time_zone_load set TZ); returns out. */
static const char *clock_of(int64_t ms, char *out, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, n, "%H:%M:%S", &tm);
    return out;
}

static const char *kind_name(enum jma_kind k)
{
    return k == JMA_KIND_TSUNAMI ? "tsunami" : k == JMA_KIND_WARNING ? "warning" : "quake";
}

static const char *status_name(enum jma_status st)
{
    return st == JMA_STATUS_NORMAL  ? "通常"
           : st == JMA_STATUS_DRILL ? "訓練"
           : st == JMA_STATUS_TEST  ? "試験"
                                    : "不明";
}

static const char *info_name(enum jma_info i)
{
    return i == JMA_INFO_ISSUE     ? "発表"
           : i == JMA_INFO_CORRECT ? "訂正"
           : i == JMA_INFO_CANCEL  ? "取消"
                                   : "不明";
}

/* The telegram's ids, for the audit and the alert's history. */
static cJSON *telegram_ids(const char *entry_id, const struct jma_telegram *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "entry", entry_id);
    cJSON_AddStringToObject(o, "title", t->control_title);
    cJSON_AddStringToObject(o, "event_id", t->event_id);
    cJSON_AddStringToObject(o, "serial", t->serial);
    cJSON_AddStringToObject(o, "info", info_name(t->info));
    cJSON_AddStringToObject(o, "status", status_name(t->status));
    cJSON_AddStringToObject(o, "report_time", t->report_time);
    return o;
}

static void audit(struct srv *s, const char *action, int64_t alert, cJSON *details)
{
    char target[32] = "";
    if (alert)
        snprintf(target, sizeof target, "alert:%lld", (long long)alert);
    srv_audit_as(s, "server", "", action, target, details);
}

/* A line in the HQ room as jma_author; failures are logged, never fatal (the alert stands). */
static void hq_say(struct srv *s, const char *text)
{
    const struct kz_config *cfg = s->cfg;
    if (!cfg->jma_hq_room[0] || !cfg->jma_author[0])
        return;
    cJSON *args = cJSON_CreateObject(), *res = NULL;
    cJSON_AddStringToObject(args, "room", cfg->jma_hq_room);
    cJSON_AddStringToObject(args, "body", text);
    char why[192];
    if (srv_call_as(s, "msg.send", cfg->jma_author, args, &res, why, sizeof why) != KZ_OK)
        KZ_ERROR("jma_hq_post_failed", "room=%s error=\"%s\"", cfg->jma_hq_room, why);
    cJSON_Delete(res);
    cJSON_Delete(args);
}

static const char *dstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* "2026-11-30T03:03:00+09:00" as "2026-11-30 03:03" (JMA's times are already local). */
static void time_short(const char *iso, char *out, size_t cap)
{
    if (strlen(iso) >= 16 && iso[10] == 'T')
        snprintf(out, cap, "%.10s %.5s", iso, iso + 11);
    else
        snprintf(out, cap, "%s", iso[0] ? iso : "不明");
}

/* The alert's one-line summary: "地震 石巻市 震度6弱 (宮城県沖 M6.8, 2026-11-30 03:03)". */
static void summary(const cJSON *d, char *out, size_t cap)
{
    char when[40], places[256] = "";
    time_short(dstr(d, "origin_time"), when, sizeof when);
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(d, "places"))
    {
        size_t n = strlen(places);
        if (n < sizeof places - 1)
            snprintf(places + n, sizeof places - n, "%s%s %s", n ? "、" : "", dstr(p, "name"),
                     dstr(p, "what"));
    }
    snprintf(out, cap, "%s%s %s（%s M%s、%s）",
             cJSON_IsTrue(cJSON_GetObjectItem(d, "drill")) ? "【訓練】" : "", dstr(d, "event"),
             places, dstr(d, "epicentre")[0] ? dstr(d, "epicentre") : "震源不明",
             dstr(d, "magnitude")[0] ? dstr(d, "magnitude") : "不明", when);
}

/* JMA's "2026-11-30T03:09:00+09:00" (or "...Z") as ms since the epoch; 0 if it is not that. */
static int64_t iso_ms(const char *iso)
{
    int y, mo, d, h, mi, sec, n = 0;
    if (sscanf(iso, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || y < 1970 ||
        mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return 0;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    int64_t t = (int64_t)timegm(&tm);
    const char *z = iso + n;
    int oh, om;
    if (*z == 'Z' && !z[1])
        return t * 1000;
    if ((*z != '+' && *z != '-') || sscanf(z + 1, "%2d:%2d", &oh, &om) != 2 || strlen(z) != 6)
        return 0;
    t -= (*z == '+' ? 1 : -1) * (oh * 3600 + om * 60);
    return t * 1000;
}

static cJSON *details_new(const char *entry_id, const struct jma_telegram *t, cJSON *places,
                          bool drill)
{
    cJSON *d = cJSON_CreateObject();
    const char *event = t->kind == JMA_KIND_TSUNAMI   ? "津波警報"
                        : t->kind == JMA_KIND_WARNING ? "特別警報"
                                                      : "地震";
    cJSON_AddStringToObject(d, "event", event);
    cJSON_AddBoolToObject(d, "drill", drill);
    cJSON_AddStringToObject(d, "origin_time", t->origin_time[0] ? t->origin_time : t->report_time);
    cJSON_AddStringToObject(d, "epicentre", t->epicentre);
    cJSON_AddStringToObject(d, "magnitude", strcmp(t->magnitude, "NaN") == 0 ? "" : t->magnitude);
    cJSON_AddItemToObject(d, "places", places);
    cJSON *tg = cJSON_CreateArray();
    cJSON_AddItemToArray(tg, telegram_ids(entry_id, t));
    cJSON_AddItemToObject(d, "telegrams", tg);
    return d;
}

static char *print(const cJSON *o)
{
    char *t = cJSON_PrintUnformatted(o);
    return t ? t : strdup("{}");
}

void jma_alert_telegram(struct srv *s, const char *entry_id, const struct jma_telegram *t)
{
    const struct jma_rules *r = srv_jma_rules(s);
    if (t->kind == JMA_KIND_OTHER)
        return;
    const char *kind = kind_name(t->kind);
    /* An event without EventID (weather warnings) is its telegram. */
    const char *event_id = t->event_id[0] ? t->event_id : entry_id;
    struct store_jma_alert prev = {0};
    enum store_rc have = store_jma_alert_of_event(s->store, kind, event_id, &prev);
    bool drill = t->status == JMA_STATUS_DRILL;
    if (t->status != JMA_STATUS_NORMAL && !(drill && r->drill)) {
        cJSON *d = telegram_ids(entry_id, t);
        cJSON_AddStringToObject(
            d, "why", drill ? "drill telegram, drill mode off" : "test or unknown control status");
        /* Drills and tests go out often; only those that would have matched are audited. */
        cJSON *places = cJSON_CreateArray();
        if (jma_rules_match(r, t, places) || t->info == JMA_INFO_CANCEL)
            audit(s, "jma.suppressed", 0, d);
        else
            cJSON_Delete(d);
        cJSON_Delete(places);
        KZ_INFO("jma_suppressed", "entry=\"%s\" status=%s", entry_id, status_name(t->status));
        store_jma_alert_clear(&prev);
        return;
    }
    int64_t now = kz_now_ms();
    if (t->info == JMA_INFO_CANCEL) {
        cJSON *d = telegram_ids(entry_id, t);
        if (have == STORE_OK && strcmp(prev.state, "pending") == 0) {
            jma_alert_cancel(s, &prev, "JMA");
            audit(s, "jma.cancelled", prev.id, d);
        } else {
            cJSON_AddStringToObject(d, "why",
                                    have == STORE_OK ? "the alert was already decided"
                                                     : "no alert for this event");
            audit(s, "jma.cancel_ignored", have == STORE_OK ? prev.id : 0, d);
            if (have == STORE_OK && strcmp(prev.state, "sent") == 0) {
                char text[256];
                snprintf(text, sizeof text,
                         "【気象庁 取消】アラート %lld の電文は気象庁により取り消されました"
                         "（安否確認は送信済み）",
                         (long long)prev.id);
                hq_say(s, text);
            }
        }
        store_jma_alert_clear(&prev);
        return;
    }
    cJSON *places = cJSON_CreateArray();
    int strength = jma_rules_match(r, t, places);
    /* One disaster, one roll-call: a tsunami warning for the quake that already has an alert
     * (JMA gives them the same EventID) joins that alert. Cancellations above stay within their
     * kind: a cancelled tsunami telegram says nothing about the quake. */
    if (have == STORE_NOT_FOUND && strength && t->event_id[0])
        have = store_jma_alert_of_event(s->store, NULL, event_id, &prev);
    if (have == STORE_OK) {
        /* The same event again (a later serial, a correction, the full report after the
         * first): one event, one alert. Its details grow; nothing more is sent. */
        cJSON *d = cJSON_Parse(prev.details);
        if (!d)
            d = cJSON_CreateObject();
        cJSON *tg = cJSON_GetObjectItemCaseSensitive(d, "telegrams");
        if (cJSON_IsArray(tg) && cJSON_GetArraySize(tg) < 50)
            cJSON_AddItemToArray(tg, telegram_ids(entry_id, t));
        if (strength > prev.strength && strcmp(prev.kind, kind) == 0) {
            cJSON_ReplaceItemInObjectCaseSensitive(d, "places", places);
            places = NULL;
            if (t->epicentre[0])
                cJSON_ReplaceItemInObjectCaseSensitive(d, "epicentre",
                                                       cJSON_CreateString(t->epicentre));
            if (t->magnitude[0] && strcmp(t->magnitude, "NaN") != 0)
                cJSON_ReplaceItemInObjectCaseSensitive(d, "magnitude",
                                                       cJSON_CreateString(t->magnitude));
            prev.strength = strength;
        }
        free(prev.details);
        prev.details = print(d);
        cJSON_Delete(d);
        if (!tx(s) || store_jma_alert_update(s->store, &prev) != STORE_OK)
            KZ_ERROR("jma_alert_failed", "alert=%lld error=\"%s\"", (long long)prev.id,
                     store_errmsg(s->store));
        cJSON *a = telegram_ids(entry_id, t);
        cJSON_AddStringToObject(a, "state", prev.state);
        audit(s, "jma.duplicate", prev.id, a);
        cJSON_Delete(places);
        store_jma_alert_clear(&prev);
        return;
    }
    store_jma_alert_clear(&prev);
    if (!strength) {
        KZ_DEBUG("jma_no_match", "entry=\"%s\" event=\"%s\"", entry_id, t->event_id);
        cJSON_Delete(places);
        return;
    }
    int64_t reported = iso_ms(t->report_time);
    if (s->cfg->jma_max_age_s && reported && now - reported >= s->cfg->jma_max_age_s * 1000) {
        /* Yesterday's quake read today (after an outage, or from a long feed): HQ decides. */
        cJSON *a = telegram_ids(entry_id, t);
        cJSON_AddStringToObject(a, "why", "older than jma_max_age_s");
        cJSON_AddNumberToObject(a, "strength", strength);
        audit(s, "jma.suppressed", 0, a);
        cJSON_Delete(places);
        return;
    }
    cJSON *d = details_new(entry_id, t, places, drill);
    /* The aftershock rule: another event of this kind within the window sends again only if
     * stronger than the strongest one there. */
    struct store_jma_alert strongest = {0};
    if (r->aftershock_window_s &&
        store_jma_alert_strongest_since(s->store, kind, now - r->aftershock_window_s * 1000,
                                        &strongest) == STORE_OK &&
        strongest.strength >= strength) {
        cJSON *a = telegram_ids(entry_id, t);
        cJSON_AddStringToObject(a, "why",
                                "not stronger than an alert within the aftershock window");
        cJSON_AddNumberToObject(a, "strength", strength);
        cJSON_AddNumberToObject(a, "window_alert", (double)strongest.id);
        cJSON_AddNumberToObject(a, "window_strength", (double)strongest.strength);
        audit(s, "jma.suppressed", strongest.id, a);
        store_jma_alert_clear(&strongest);
        cJSON_Delete(d);
        return;
    }
    store_jma_alert_clear(&strongest);
    struct store_jma_alert a = {
        .strength = strength, .drill = drill, .created_at = now, .due_at = now + r->delay_s * 1000};
    snprintf(a.kind, sizeof a.kind, "%s", kind);
    snprintf(a.event_id, sizeof a.event_id, "%s", event_id);
    snprintf(a.state, sizeof a.state, "pending");
    a.details = print(d);
    if (!tx(s) || store_jma_alert_insert(s->store, &a) != STORE_OK) {
        KZ_ERROR("jma_alert_failed", "entry=\"%s\" error=\"%s\"", entry_id, store_errmsg(s->store));
        free(a.details);
        cJSON_Delete(d);
        return;
    }
    cJSON *ad = telegram_ids(entry_id, t);
    cJSON_AddNumberToObject(ad, "strength", strength);
    cJSON_AddItemToObject(ad, "places", cJSON_Duplicate(cJSON_GetObjectItem(d, "places"), true));
    cJSON_AddNumberToObject(ad, "due_at", (double)a.due_at);
    audit(s, "jma.matched", a.id, ad);
    char sum[512], text[1024], due[16];
    summary(d, sum, sizeof sum);
    snprintf(text, sizeof text,
             "【自動安否確認】アラート %lld: %s。安否確認は %lld 秒後（%s）に送信されます。"
             "すぐ送る: kizuna alert send-now %lld / 取り消す: kizuna alert cancel %lld",
             (long long)a.id, sum, (long long)r->delay_s, clock_of(a.due_at, due, sizeof due),
             (long long)a.id, (long long)a.id);
    hq_say(s, text);
    KZ_WARN("jma_alert", "alert=%lld kind=%s event=\"%s\" strength=%d delay_s=%lld drill=%d",
            (long long)a.id, kind, event_id, strength, (long long)r->delay_s, drill);
    free(a.details);
    cJSON_Delete(d);
}

/* ---- a drill by hand ---- */

int64_t jma_alert_drill(struct srv *s, const char *by)
{
    const struct jma_rules *r = srv_jma_rules(s);
    int64_t now = kz_now_ms();
    cJSON *d = cJSON_CreateObject(), *places = cJSON_CreateArray(), *p = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "event", "地震");
    cJSON_AddTrueToObject(d, "drill");
    char when[40];
    time_t secs = (time_t)(now / 1000);
    struct tm tm;
    localtime_r(&secs, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    cJSON_AddStringToObject(d, "origin_time", when);
    cJSON_AddStringToObject(d, "epicentre", "訓練");
    cJSON_AddStringToObject(d, "magnitude", "");
    cJSON_AddStringToObject(p, "code", r->ntowns ? r->towns[0] : "");
    cJSON_AddStringToObject(p, "name", "訓練（手動）");
    cJSON_AddStringToObject(p, "what", jma_intensity_name(r->town_min));
    cJSON_AddItemToArray(places, p);
    cJSON_AddItemToObject(d, "places", places);
    cJSON_AddItemToObject(d, "telegrams", cJSON_CreateArray());
    /* A drill's strength is 0: the aftershock rule never counts it against a real quake. */
    struct store_jma_alert a = {
        .drill = true, .created_at = now, .due_at = now + r->delay_s * 1000};
    snprintf(a.kind, sizeof a.kind, "quake");
    snprintf(a.event_id, sizeof a.event_id, "drill-%lld", (long long)now);
    snprintf(a.state, sizeof a.state, "pending");
    a.details = print(d);
    int64_t id = 0;
    if (tx(s) && store_jma_alert_insert(s->store, &a) == STORE_OK) {
        id = a.id;
        cJSON *ad = cJSON_CreateObject();
        cJSON_AddStringToObject(ad, "by", by);
        cJSON_AddNumberToObject(ad, "due_at", (double)a.due_at);
        audit(s, "jma.drill", id, ad);
        char sum[512], text[1024], due[16];
        summary(d, sum, sizeof sum);
        snprintf(text, sizeof text,
                 "【自動安否確認・訓練】アラート %lld: %s（%s が開始）。安否確認は %lld "
                 "秒後（%s）に送信されます。"
                 "すぐ送る: kizuna alert send-now %lld / 取り消す: kizuna alert cancel %lld",
                 (long long)id, sum, by, (long long)r->delay_s, clock_of(a.due_at, due, sizeof due),
                 (long long)id, (long long)id);
        hq_say(s, text);
    }
    free(a.details);
    cJSON_Delete(d);
    return id;
}

/* ---- sending ---- */

/* Copies tmpl into out with each {name} replaced. */
static void render(const char *tmpl, const cJSON *d, const char *place, const char *intensity,
                   char *out, size_t cap)
{
    char when[40];
    time_short(dstr(d, "origin_time"), when, sizeof when);
    const char *names[] = {"{event}", "{time}",      "{epicentre}", "{magnitude}",
                           "{place}", "{intensity}", "{drill}"};
    const char *values[] = {dstr(d, "event"),
                            when,
                            dstr(d, "epicentre")[0] ? dstr(d, "epicentre") : "不明",
                            dstr(d, "magnitude")[0] ? dstr(d, "magnitude") : "不明",
                            place,
                            intensity,
                            cJSON_IsTrue(cJSON_GetObjectItem(d, "drill")) ? "【訓練】" : ""};
    size_t n = 0;
    while (*tmpl && n < cap - 1) {
        size_t k = 0;
        for (; k < sizeof names / sizeof names[0]; k++)
            if (strncmp(tmpl, names[k], strlen(names[k])) == 0)
                break;
        if (k < sizeof names / sizeof names[0]) {
            int w = snprintf(out + n, cap - n, "%s", values[k]);
            n = w < 0 || (size_t)w >= cap - n ? cap - 1 : n + (size_t)w;
            tmpl += strlen(names[k]);
        } else {
            out[n++] = *tmpl++;
        }
    }
    out[n] = '\0';
    kz_utf8_sanitize(out); /* a cut at the buffer's end may split a character */
}

enum kz_err jma_alert_send(struct srv *s, struct store_jma_alert *a, const char *by, char *why,
                           size_t whylen)
{
    const struct jma_rules *r = srv_jma_rules(s);
    const struct kz_config *cfg = s->cfg;
    cJSON *d = cJSON_Parse(a->details);
    if (!d)
        d = cJSON_CreateObject();
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(d, "places"), 0);
    char title[512], body[4096];
    render(r->title, d, first ? dstr(first, "name") : "", first ? dstr(first, "what") : "", title,
           sizeof title);
    render(r->body, d, first ? dstr(first, "name") : "", first ? dstr(first, "what") : "", body,
           sizeof body);
    if (a->drill && strncmp(title, "【訓練】", strlen("【訓練】")) != 0) {
        /* A drill's roll-call is labelled whatever the template says. */
        size_t tag = strlen("【訓練】"), n = strlen(title);
        if (n + tag >= sizeof title)
            n = sizeof title - tag - 1;
        memmove(title + tag, title, n);
        memcpy(title, "【訓練】", tag);
        title[tag + n] = '\0';
        kz_utf8_sanitize(title);
    }
    if (strlen(title) > STORE_NAME_MAX) {
        title[STORE_NAME_MAX] = '\0';
        kz_utf8_sanitize(title);
    }
    cJSON *args = cJSON_CreateObject(), *to = cJSON_CreateArray(), *choices = cJSON_CreateArray();
    char buf[sizeof r->choices], *save = NULL;
    snprintf(buf, sizeof buf, "%s", r->audience);
    for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save))
        cJSON_AddItemToArray(to, cJSON_CreateString(t));
    snprintf(buf, sizeof buf, "%s", r->choices);
    save = NULL;
    for (char *t = strtok_r(buf, "|", &save); t; t = strtok_r(NULL, "|", &save))
        cJSON_AddItemToArray(choices, cJSON_CreateString(t));
    cJSON_AddStringToObject(args, "title", title);
    cJSON_AddStringToObject(args, "body", body);
    cJSON_AddItemToObject(args, "to", to);
    cJSON_AddItemToObject(args, "choices", choices);
    cJSON_AddStringToObject(args, "priority", cfg->jma_urgent ? "urgent" : "normal");
    cJSON_AddBoolToObject(args, "ask_ack", cfg->jma_ask_ack);
    cJSON_AddStringToObject(args, "category", "安否確認");
    cJSON *res = NULL;
    enum kz_err e = cfg->jma_author[0]
                        ? srv_call_as(s, "notice.post", cfg->jma_author, args, &res, why, whylen)
                        : (snprintf(why, whylen, "jma_author is not set"), KZ_BAD_REQUEST);
    cJSON_Delete(args);
    cJSON *ad = cJSON_CreateObject();
    cJSON_AddStringToObject(ad, "by", by);
    cJSON_AddItemToObject(ad, "telegrams",
                          cJSON_Duplicate(cJSON_GetObjectItem(d, "telegrams"), true));
    if (e != KZ_OK) {
        cJSON_AddStringToObject(ad, "error", why);
        audit(s, "jma.send_failed", a->id, ad);
        KZ_ERROR("jma_send_failed", "alert=%lld error=\"%s\"", (long long)a->id, why);
        cJSON_Delete(d);
        cJSON_Delete(res);
        return e;
    }
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(res, "notice");
    a->notice = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(n, "id"));
    int64_t recipients =
        (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(res, "recipients"));
    snprintf(a->state, sizeof a->state, "sent");
    a->decided_at = kz_now_ms();
    snprintf(a->decided_by, sizeof a->decided_by, "%s", by);
    if (!tx(s) || store_jma_alert_update(s->store, a) != STORE_OK)
        KZ_ERROR("jma_alert_failed", "alert=%lld error=\"%s\"", (long long)a->id,
                 store_errmsg(s->store));
    cJSON_AddNumberToObject(ad, "notice", (double)a->notice);
    cJSON_AddNumberToObject(ad, "recipients", (double)recipients);
    audit(s, "jma.sent", a->id, ad);
    char text[512];
    snprintf(text, sizeof text,
             "【自動安否確認】アラート %lld の安否確認を %lld 人に送信しました"
             "（お知らせ %lld、集計: kizuna notice report %lld）",
             (long long)a->id, (long long)recipients, (long long)a->notice, (long long)a->notice);
    hq_say(s, text);
    KZ_WARN("jma_sent", "alert=%lld notice=%lld recipients=%lld by=%s", (long long)a->id,
            (long long)a->notice, (long long)recipients, by);
    cJSON_Delete(d);
    cJSON_Delete(res);
    return KZ_OK;
}

enum kz_err jma_alert_cancel(struct srv *s, struct store_jma_alert *a, const char *by)
{
    snprintf(a->state, sizeof a->state, "cancelled");
    a->decided_at = kz_now_ms();
    snprintf(a->decided_by, sizeof a->decided_by, "%s", by);
    if (!tx(s) || store_jma_alert_update(s->store, a) != STORE_OK)
        return KZ_INTERNAL;
    char text[256];
    snprintf(text, sizeof text,
             "【自動安否確認】アラート %lld は取り消されました（%s）。安否確認は送信しません",
             (long long)a->id, by);
    hq_say(s, text);
    KZ_WARN("jma_cancelled", "alert=%lld by=%s", (long long)a->id, by);
    return KZ_OK;
}

struct due_ctx {
    int64_t now;
    int64_t ids[16];
    int n;
};

static int collect_due(void *arg, const struct store_jma_alert *a)
{
    struct due_ctx *c = arg;
    if (a->due_at > c->now || c->n == 16)
        return 1;
    c->ids[c->n++] = a->id;
    return 0;
}

void jma_alert_due(struct srv *s, int64_t now)
{
    if (srv_writes_blocked(s))
        return;
    struct due_ctx c = {.now = now};
    if (store_jma_alert_each(s->store, 16, true, collect_due, &c) != STORE_OK)
        return;
    for (int i = 0; i < c.n; i++) {
        struct store_jma_alert a = {0};
        if (store_jma_alert_get(s->store, c.ids[i], &a) != STORE_OK)
            continue;
        char why[192];
        if (jma_alert_send(s, &a, "server", why, sizeof why) != KZ_OK) {
            /* Tried again a minute later; HQ sees the failure in the audit and the log. */
            a.due_at = now + 60000;
            if (!tx(s) || store_jma_alert_update(s->store, &a) != STORE_OK)
                KZ_ERROR("jma_alert_failed", "alert=%lld error=\"%s\"", (long long)a.id,
                         store_errmsg(s->store));
        }
        store_jma_alert_clear(&a);
    }
}

cJSON *jma_alert_json(const struct store_jma_alert *a)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)a->id);
    cJSON_AddStringToObject(o, "kind", a->kind);
    cJSON_AddStringToObject(o, "event_id", a->event_id);
    cJSON_AddStringToObject(o, "state", a->state);
    cJSON_AddBoolToObject(o, "drill", a->drill);
    cJSON_AddNumberToObject(o, "strength", (double)a->strength);
    cJSON_AddNumberToObject(o, "created_at", (double)a->created_at);
    cJSON_AddNumberToObject(o, "due_at", (double)a->due_at);
    cJSON_AddNumberToObject(o, "decided_at", (double)a->decided_at);
    cJSON_AddStringToObject(o, "decided_by", a->decided_by);
    cJSON_AddNumberToObject(o, "notice", (double)a->notice);
    cJSON *d = cJSON_Parse(a->details ? a->details : "{}");
    char sum[512] = "";
    if (d)
        summary(d, sum, sizeof sum);
    cJSON_AddStringToObject(o, "summary", sum);
    cJSON_AddItemToObject(o, "details", d ? d : cJSON_CreateObject());
    return o;
}
