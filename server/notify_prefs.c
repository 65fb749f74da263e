/* notify_prefs.c - what reaches whom (docs/notifications.md, "Your choices"): the kinds of
 * notification, which channels each is offered on and its default, and notify.prefs, with
 * which each person chooses. The push and mail queues (store_push.c, store_mail.c) apply the
 * choice per recipient, so a person who turned a kind off is never queued at all. */
#include "core.h"
#include "store_push.h"

#include <string.h>

/* Each kind, in the order the web client lists them. `needed`: urgent notices and roll-calls
 * must reach a person one way at least, so both channels cannot be turned off at once (HQ
 * counts on them at 3 a.m.; the report shows who was reached by none). */
static const struct notify_kind {
    const char *name;
    bool push, email;                 /* offered on */
    bool push_default, email_default; /* when the person chose nothing */
    bool needed;
} kinds[] = {
    {"notice", true, true, true, true, true},     /* urgent notice */
    {"rollcall", true, true, true, true, true},   /* roll-call (安否確認) */
    {"reminder", true, true, true, true, false},  /* reminder to those who have not answered */
    {"hotline", true, false, true, false, false}, /* hotline first report */
    {"direct", true, false, true, false, false},  /* message in a direct (1:1) room */
    {"mention", true, false, true, false, false}, /* @login in a group room */
    {"photo", true, false, true, false, false},   /* photo in a direct or watched room */
    {"digest", false, true, false, false, false}, /* daily e-mail of unread must-read notices */
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

static const struct notify_kind *kind_find(const char *name)
{
    for (size_t i = 0; i < NKINDS; i++)
        if (strcmp(kinds[i].name, name) == 0)
            return &kinds[i];
    return NULL;
}

bool srv_notify_default(const char *kind, bool email)
{
    const struct notify_kind *k = kind_find(kind);
    return k && (email ? k->email_default : k->push_default);
}

/* Whether list (an F_STRINGS argument) names kind. */
static bool listed(const cJSON *list, const char *kind)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, list)
    {
        if (strcmp(it->valuestring, kind) == 0)
            return true;
    }
    return false;
}

/* The first name in list that is not a kind offered on the channel, or NULL. */
static const char *unoffered(const cJSON *list, bool email)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, list)
    {
        const struct notify_kind *k = kind_find(it->valuestring);
        if (!k || !(email ? k->email : k->push))
            return it->valuestring;
    }
    return NULL;
}

static void add_offered(cJSON *arr, bool email)
{
    for (size_t i = 0; i < NKINDS; i++)
        if (email ? kinds[i].email : kinds[i].push)
            cJSON_AddItemToArray(arr, cJSON_CreateString(kinds[i].name));
}

enum kz_err op_notify_prefs(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    int64_t me = c->auth.user.id;
    const cJSON *push = srv_arg_list(c, "push"), *email = srv_arg_list(c, "email");
    const char *bad = push ? unoffered(push, false) : NULL;
    bool bad_email = !bad && email && (bad = unoffered(email, true)) != NULL;
    if (bad) {
        cJSON *offered = cJSON_CreateArray();
        add_offered(offered, bad_email);
        char *names = cJSON_PrintUnformatted(offered);
        enum kz_err e = srv_fail(c, KZ_BAD_REQUEST, "%s is not a kind offered by %s (kinds: %s)",
                                 bad, bad_email ? "e-mail" : "push", names ? names : "?");
        cJSON_free(names);
        cJSON_Delete(offered);
        return e;
    }
    /* Each kind's channels after this call: what was given replaces that channel's list. */
    bool now_push[NKINDS], now_email[NKINDS];
    for (size_t i = 0; i < NKINDS; i++) {
        bool p = kinds[i].push_default, m = kinds[i].email_default;
        enum store_rc r = store_notify_pref_get(st, me, kinds[i].name, &p, &m);
        if (r != STORE_OK && r != STORE_NOT_FOUND)
            return srv_fail(c, KZ_INTERNAL, "cannot read your notification choices");
        now_push[i] = push ? kinds[i].push && listed(push, kinds[i].name) : p;
        now_email[i] = email ? kinds[i].email && listed(email, kinds[i].name) : m;
        if (kinds[i].needed && !now_push[i] && !now_email[i])
            return srv_fail(c, KZ_BAD_REQUEST,
                            "%s must reach you by push or e-mail: keep one of them on",
                            kinds[i].name);
    }
    for (size_t i = 0; (push || email) && i < NKINDS; i++)
        if (store_notify_pref_set(st, me, kinds[i].name, now_push[i], now_email[i]) != STORE_OK)
            return srv_fail(c, KZ_INTERNAL, "cannot store your notification choices");
    const cJSON *pv = cJSON_GetObjectItemCaseSensitive(c->args, "previews");
    if (pv && store_notify_previews_set(st, me, cJSON_IsTrue(pv)) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot store your notification choices");
    bool previews = false;
    if (store_notify_previews_get(st, me, &previews) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot read your notification choices");

    c->result = cJSON_CreateObject();
    cJSON *pa = cJSON_AddArrayToObject(c->result, "push");
    cJSON *ma = cJSON_AddArrayToObject(c->result, "email");
    for (size_t i = 0; i < NKINDS; i++) {
        if (now_push[i] && kinds[i].push)
            cJSON_AddItemToArray(pa, cJSON_CreateString(kinds[i].name));
        if (now_email[i] && kinds[i].email)
            cJSON_AddItemToArray(ma, cJSON_CreateString(kinds[i].name));
    }
    cJSON_AddBoolToObject(c->result, "previews", previews);
    cJSON *offered = cJSON_AddObjectToObject(c->result, "offered");
    add_offered(cJSON_AddArrayToObject(offered, "push"), false);
    add_offered(cJSON_AddArrayToObject(offered, "email"), true);
    cJSON *needed = cJSON_AddArrayToObject(c->result, "needed");
    for (size_t i = 0; i < NKINDS; i++)
        if (kinds[i].needed)
            cJSON_AddItemToArray(needed, cJSON_CreateString(kinds[i].name));
    return KZ_OK;
}
