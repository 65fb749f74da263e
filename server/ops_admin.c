/* ops_admin.c - account administration: user.add, user.list, user.disable, user.enable,
 * user.reset_password. Every op here is admin-only (the command table says so). */
#include "server.h"

#include <stdlib.h>
#include <string.h>

/* Looks up the user an admin op names; fills an error reply if there is none. */
static enum kz_err target_user(struct srv_call *c, struct store_user *u)
{
    const char *login = srv_arg_str(c, "login");
    enum store_rc rc = kz_login_valid(login) ? store_user_get_by_login(srv_store(c->srv), login, u)
                                             : STORE_NOT_FOUND;
    if (rc == STORE_NOT_FOUND)
        return srv_fail(c, KZ_NOT_FOUND, "no user with login id '%s'",
                        kz_login_valid(login) ? login : "?");
    if (rc != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "user lookup failed");
    return KZ_OK;
}

static void close_all(struct srv_call *c, int64_t user_id, const char *reason)
{
    const struct srv_transport *tx = srv_tx(c->srv);
    struct srv_close which = {.user_id = user_id, .reason = reason};
    tx->close_conns(tx->ctx, &which);
}

/* ---- user.add ---- */

static void user_add_then(struct srv_pw_job *pj)
{
    struct srv_call *c = pj->call;
    struct store *st = srv_store(c->srv);
    const char *login = srv_arg_str(c, "login");
    const char *name = srv_arg_str(c, "name");
    const char *role = srv_arg_str(c, "role");
    struct store_user u = {0};
    enum kz_err e;
    if (!pj->hashed) {
        e = srv_fail(c, KZ_INTERNAL, "cannot hash the password");
        goto out;
    }
    snprintf(u.login, sizeof u.login, "%s", login);
    snprintf(u.name, sizeof u.name, "%s", name ? name : login);
    snprintf(u.role, sizeof u.role, "%s", role ? role : kz_role_name(KZ_ROLE_STAFF));
    snprintf(u.pw_hash, sizeof u.pw_hash, "%s", pj->new_hash);
    u.must_change_password = pj->extra[0] != '\0';
    if ((e = srv_org_contact(c, &u)) || (e = srv_call_write_begin(c)) ||
        (e = srv_org_department(c, &u)))
        goto out;
    enum store_rc rc = store_user_insert(st, &u, kz_now_ms());
    if (rc == STORE_CONFLICT) {
        e = srv_fail(c, KZ_CONFLICT, "login id '%s' is taken", login);
        goto out;
    }
    if (rc != STORE_OK) {
        e = srv_fail(c, KZ_INTERNAL, "cannot store the user");
        goto out;
    }
    if ((e = srv_org_groups(c, u.id)))
        goto out;
    c->result = cJSON_CreateObject();
    cJSON *uj = srv_user_json(&u);
    cJSON_AddItemToObject(uj, "groups", srv_user_groups_json(c->srv, u.id));
    cJSON_AddItemToObject(c->result, "user", uj);
    if (u.must_change_password)
        cJSON_AddStringToObject(c->result, "password", pj->extra);
    KZ_INFO("user_added", "by=%s login=%s role=%s", c->auth.user.login, u.login, u.role);
    cJSON *details = cJSON_CreateObject();
    cJSON_AddStringToObject(details, "role", u.role);
    cJSON_AddStringToObject(details, "department", u.department_name);
    if (u.expires_at)
        cJSON_AddNumberToObject(details, "expires_at", (double)u.expires_at);
    srv_audit(c, "user.add", u.login, details);
out:
    srv_call_finish(c, e);
}

enum kz_err op_user_add(struct srv_call *c)
{
    const char *login = srv_arg_str(c, "login");
    const char *name = srv_arg_str(c, "name");
    const char *role = srv_arg_str(c, "role");
    const char *password = srv_arg_str(c, "password");
    if (!kz_login_valid(login))
        return srv_fail(c, KZ_BAD_REQUEST,
                        "a login id is 1-64 of a-z, 0-9, '.', '_', '-', starting with a-z or 0-9");
    if (name && !name[strspn(name, " \t")])
        return srv_fail(c, KZ_BAD_REQUEST, "field 'name' must not be blank");
    char why[96];
    if (role && !kz_role_parse(role, NULL, why, sizeof why))
        return srv_fail(c, KZ_BAD_REQUEST, "%s", why);
    const char *problem =
        password ? kz_password_problem(password, login, srv_config(c->srv)->password_min_length)
                 : NULL;
    if (problem)
        return srv_fail(c, KZ_BAD_REQUEST, "%s", problem);
    struct store_user existing = {0};
    enum kz_err e = srv_org_contact(c, &existing); /* checked now, applied after the hash */
    if (e)
        return e;
    enum store_rc rc = store_user_get_by_login(srv_store(c->srv), login, &existing);
    if (rc == STORE_OK)
        return srv_fail(c, KZ_CONFLICT, "login id '%s' is taken", login);
    if (rc != STORE_NOT_FOUND)
        return srv_fail(c, KZ_INTERNAL, "user lookup failed");

    struct srv_pw_job *pj = srv_pw_job_new(c, user_add_then);
    if (!pj)
        return srv_fail(c, KZ_INTERNAL, "out of memory");
    if (password) {
        snprintf(pj->new_password, sizeof pj->new_password, "%s", password);
    } else {
        /* A generated password is one-time: extra keeps it for the reply, and the user must
         * replace it at first login. Random, so a keyed fast hash (srv_otp_hash). */
        kz_password_generate(pj->extra, KZ_OTP_CHARS + 1);
        snprintf(pj->new_password, sizeof pj->new_password, "%s", pj->extra);
        pj->one_time = true;
    }
    return srv_pw_job_submit(pj);
}

/* ---- user.list ---- */

struct list_ctx {
    struct srv *s;
    cJSON *arr;
    struct kz_csv *csv; /* format csv: the export, instead of arr */
};

/* One line of the export: the columns user.import reads, groups joined by ';', so that an
 * exported file imports again unchanged. */
static void export_one(struct list_ctx *l, const struct store_user *u, const cJSON *groups)
{
    size_t len = 1;
    const cJSON *g;
    cJSON_ArrayForEach(g, groups) len += strlen(g->valuestring) + 1;
    char *joined = malloc(len);
    if (!joined) {
        l->csv->failed = true;
        return;
    }
    joined[0] = '\0';
    cJSON_ArrayForEach(g, groups)
    {
        if (joined[0])
            strcat(joined, ";");
        strcat(joined, g->valuestring);
    }
    const char *row[] = {u->login, u->name, u->department_name, u->role, joined,
                         u->email, u->phone};
    kz_csv_row(l->csv, row, sizeof row / sizeof row[0]);
    free(joined);
}

static int list_one(void *arg, const struct store_user *u)
{
    struct list_ctx *l = arg;
    cJSON *groups = srv_user_groups_json(l->s, u->id);
    if (l->csv) {
        export_one(l, u, groups);
        cJSON_Delete(groups);
        return 0;
    }
    cJSON *uj = srv_user_json(u);
    cJSON_AddItemToObject(uj, "groups", groups);
    cJSON_AddItemToArray(l->arr, uj);
    return 0;
}

enum kz_err op_user_list(struct srv_call *c)
{
    bool csv = false;
    enum kz_err e = srv_arg_format(c, &csv);
    if (e)
        return e;
    struct kz_csv text = {0};
    static const char *const header[] = {"login",  "name",  "department", "role",
                                         "groups", "email", "phone"};
    if (csv)
        kz_csv_row(&text, header, sizeof header / sizeof header[0]);
    c->result = cJSON_CreateObject();
    struct list_ctx l = {c->srv, csv ? NULL : cJSON_AddArrayToObject(c->result, "users"),
                         csv ? &text : NULL};
    if (store_user_each(srv_store(c->srv), list_one, &l) != STORE_OK || text.failed)
        e = srv_fail(c, KZ_INTERNAL, "cannot list users");
    else if (csv)
        cJSON_AddStringToObject(c->result, "csv", text.text);
    if (!e && csv) /* every account's contact details leave the server: accounted for */
        srv_audit(c, "user.export", "", NULL);
    kz_csv_free(&text);
    return e;
}

/* ---- user.disable, user.enable ---- */

static enum kz_err set_disabled(struct srv_call *c, bool disabled)
{
    struct store *st = srv_store(c->srv);
    struct store_user u;
    enum kz_err e = target_user(c, &u);
    if (e)
        return e;
    if (disabled && u.id == c->auth.user.id)
        return srv_fail(c, KZ_CONFLICT, "you cannot disable your own account");
    int64_t now = kz_now_ms();
    if (store_user_set_disabled(st, u.id, disabled, now) != STORE_OK ||
        (disabled && store_session_end_user(st, u.id, 0, now) != STORE_OK))
        return srv_fail(c, KZ_INTERNAL, "cannot update the user");
    u.disabled = disabled;
    if (disabled)
        close_all(c, u.id, "account disabled");
    KZ_INFO(disabled ? "user_disabled" : "user_enabled", "by=%s login=%s", c->auth.user.login,
            u.login);
    srv_audit(c, disabled ? "user.disable" : "user.enable", u.login, NULL);
    c->result = cJSON_CreateObject();
    cJSON_AddItemToObject(c->result, "user", srv_user_json(&u));
    return KZ_OK;
}

enum kz_err op_user_disable(struct srv_call *c)
{
    return set_disabled(c, true);
}

enum kz_err op_user_enable(struct srv_call *c)
{
    return set_disabled(c, false);
}

/* ---- user.reset_password ---- */

static void reset_then(struct srv_pw_job *pj)
{
    struct srv_call *c = pj->call;
    struct store *st = srv_store(c->srv);
    struct store_user u;
    enum kz_err e = target_user(c, &u);
    if (e)
        goto out;
    if (!pj->hashed) {
        e = srv_fail(c, KZ_INTERNAL, "cannot hash the password");
        goto out;
    }
    int64_t now = kz_now_ms();
    if ((e = srv_call_write_begin(c)))
        goto out;
    if (store_user_set_password(st, u.id, pj->new_hash, true, now) != STORE_OK ||
        store_session_end_user(st, u.id, 0, now) != STORE_OK) {
        e = srv_fail(c, KZ_INTERNAL, "cannot store the password");
        goto out;
    }
    u.must_change_password = true;
    close_all(c, u.id, "password reset");
    KZ_INFO("password_reset", "by=%s login=%s", c->auth.user.login, u.login);
    srv_audit(c, "user.reset_password", u.login, NULL);
    c->result = cJSON_CreateObject();
    cJSON_AddItemToObject(c->result, "user", srv_user_json(&u));
    cJSON_AddStringToObject(c->result, "password", pj->extra);
out:
    srv_call_finish(c, e);
}

enum kz_err op_user_reset_password(struct srv_call *c)
{
    struct store_user u;
    enum kz_err e = target_user(c, &u);
    if (e)
        return e;
    struct srv_pw_job *pj = srv_pw_job_new(c, reset_then);
    if (!pj)
        return srv_fail(c, KZ_INTERNAL, "out of memory");
    kz_password_generate(pj->extra, KZ_OTP_CHARS + 1);
    snprintf(pj->new_password, sizeof pj->new_password, "%s", pj->extra);
    pj->one_time = true;
    return srv_pw_job_submit(pj);
}

/* ---- housekeeping: expired accounts, idle shared sessions ---- */

#define SWEEP_BATCH 64 /* per beat; a longer backlog drains over the next beats */

void srv_housekeep(struct srv *s)
{
    struct store *st = srv_store(s);
    const struct srv_transport *tx = srv_tx(s);
    int64_t now = kz_now_ms();
    srv_fed_housekeep(s);
    if (srv_writes_blocked(s))
        return; /* the disk refuses writes: sweep when it recovers */
    srv_uploads_sweep(s, now);
    int64_t ids[SWEEP_BATCH];
    struct store_session idle[SWEEP_BATCH];
    int nids = 0, nidle = 0;
    if (store_user_expired(st, now, ids, SWEEP_BATCH, &nids) != STORE_OK ||
        store_session_idle_shared(st, now - srv_config(s)->shared_session_idle_s * 1000, idle,
                                  SWEEP_BATCH, &nidle) != STORE_OK) {
        KZ_ERROR("housekeeping_failed", "error=\"%s\"", store_errmsg(st));
        return;
    }
    if (!nids && !nidle) {
        /* The uploads sweep's, if any: nothing waits on it, so the loop need not either. */
        srv_commit_async(s);
        return;
    }
    if (store_tx_begin(st) != STORE_OK) {
        KZ_ERROR("housekeeping_failed", "error=\"%s\"", store_errmsg(st));
        return;
    }
    for (int i = 0; i < nids; i++) {
        struct store_user u;
        if (store_user_get(st, ids[i], &u) != STORE_OK ||
            store_user_set_disabled(st, u.id, true, now) != STORE_OK ||
            store_session_end_user(st, u.id, 0, now) != STORE_OK) {
            KZ_ERROR("expire_failed", "user_id=%lld error=\"%s\"", (long long)ids[i],
                     store_errmsg(st));
            ids[i] = 0;
            continue;
        }
        KZ_INFO("user_expired", "login=%s", u.login);
        cJSON *details = cJSON_CreateObject();
        cJSON_AddNumberToObject(details, "expires_at", (double)u.expires_at);
        srv_audit_as(s, "-server-", "", "user.expire", u.login, details);
    }
    for (int i = 0; i < nidle; i++) {
        struct store_user u;
        if (store_session_end(st, idle[i].id, now) != STORE_OK ||
            store_user_get(st, idle[i].user_id, &u) != STORE_OK) {
            idle[i].id = 0;
            continue;
        }
        KZ_INFO("session_idle_end", "login=%s session=%lld", u.login, (long long)idle[i].id);
        cJSON *details = cJSON_CreateObject();
        cJSON_AddNumberToObject(details, "session", (double)idle[i].id);
        cJSON_AddStringToObject(details, "device", idle[i].device);
        srv_audit_as(s, "-server-", "", "session.idle_end", u.login, details);
    }
    /* Commit first: a connection is only cut for what is on disk. */
    if (!srv_commit(s))
        return;
    for (int i = 0; i < nids; i++)
        if (ids[i]) {
            struct srv_close which = {.user_id = ids[i], .reason = "account expired"};
            tx->close_conns(tx->ctx, &which);
        }
    for (int i = 0; i < nidle; i++)
        if (idle[i].id) {
            struct srv_close which = {.user_id = idle[i].user_id,
                                      .session_id = idle[i].id,
                                      .reason = "idle session on a shared device ended"};
            tx->close_conns(tx->ctx, &which);
        }
}
