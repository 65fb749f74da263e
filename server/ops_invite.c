/* ops_invite.c - invitations for staff dispatched from other municipalities: an admin makes a
 * code that creates accounts with a given role, department and groups, usable N times until
 * it expires; accounts made from it can expire on a set date, when the server disables them
 * (srv_housekeep). The code is a bearer secret shown on a screen, so only its hash is kept and
 * it can never create an admin. */
#include "server.h"

#include <stdlib.h>
#include <string.h>

#define HOUR_MS                 3600000LL
#define INVITE_DEFAULT_VALID_MS (72 * HOUR_MS)

static const char *invite_state(const struct store_invite *inv, int64_t now)
{
    if (inv->revoked_at)
        return "revoked";
    if (inv->uses >= inv->uses_max)
        return "used";
    if (now >= inv->expires_at)
        return "expired";
    return "active";
}

/* "a;b" as a JSON array (caller owns it). */
static cJSON *groups_json(const char *joined)
{
    cJSON *arr = cJSON_CreateArray();
    char *copy = strdup(joined);
    for (char *save, *tok = copy ? strtok_r(copy, ";", &save) : NULL; tok;
         tok = strtok_r(NULL, ";", &save))
        cJSON_AddItemToArray(arr, cJSON_CreateString(tok));
    free(copy);
    return arr;
}

static cJSON *invite_json(const struct store_invite *inv, int64_t now)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)inv->id);
    cJSON_AddStringToObject(o, "state", invite_state(inv, now));
    cJSON_AddStringToObject(o, "role", inv->role);
    cJSON_AddStringToObject(o, "department", inv->department_name);
    cJSON_AddItemToObject(o, "groups", groups_json(inv->groups));
    cJSON_AddStringToObject(o, "note", inv->note);
    cJSON_AddNumberToObject(o, "uses", (double)inv->uses);
    cJSON_AddNumberToObject(o, "uses_max", (double)inv->uses_max);
    cJSON_AddNumberToObject(o, "expires_at", (double)inv->expires_at);
    if (inv->account_expires_at)
        cJSON_AddNumberToObject(o, "account_expires_at", (double)inv->account_expires_at);
    else
        cJSON_AddNullToObject(o, "account_expires_at");
    cJSON_AddStringToObject(o, "created_by", inv->created_by_login);
    cJSON_AddNumberToObject(o, "created_at", (double)inv->created_at);
    return o;
}

/* ---- invite.create ---- */

/* The groups argument joined by ';' into out; refuses names that cannot be stored so. */
static enum kz_err groups_join(struct srv_call *c, char *out, size_t cap)
{
    out[0] = '\0';
    const cJSON *g, *groups = srv_arg_list(c, "groups");
    cJSON_ArrayForEach(g, groups)
    {
        const char *name = g->valuestring;
        if (!name[strspn(name, " \t")] || strchr(name, ';'))
            return srv_fail(c, KZ_BAD_REQUEST, "a group name must not be blank or contain ';'");
        /* Exact lengths and a copy: with snprintf, only this check would rule truncation out,
         * and gcc -O3 cannot see that it does (-Wformat-truncation). */
        size_t have = strlen(out), sep = have ? 1 : 0, len = strlen(name);
        if (have + sep + len + 1 > cap)
            return srv_fail(c, KZ_TOO_LARGE, "the group names are too long together");
        if (sep)
            out[have++] = ';';
        memcpy(out + have, name, len + 1);
    }
    return KZ_OK;
}

enum kz_err op_invite_create(struct srv_call *c)
{
    const struct kz_config *cfg = srv_config(c->srv);
    int64_t now = kz_now_ms();
    struct store_invite inv = {0};
    const char *role = srv_arg_str(c, "role");
    enum kz_role r = KZ_ROLE_STAFF;
    if (role && !kz_role_parse(role, &r, NULL, 0))
        r = KZ_ROLE_ADMIN; /* refused below, in the same words */
    snprintf(inv.role, sizeof inv.role, "%s", kz_role_name(r));
    if (r == KZ_ROLE_ADMIN)
        return srv_fail(c, KZ_BAD_REQUEST,
                        "an invitation gives role staff or hq (admins are made with user.add)");
    inv.uses_max = srv_arg_int(c, "uses", 1); /* at most invite_max_uses: the table's cap */
    inv.expires_at = srv_arg_int(c, "expires_at", now + INVITE_DEFAULT_VALID_MS);
    if (inv.expires_at <= now)
        return srv_fail(c, KZ_BAD_REQUEST, "field 'expires_at' must be in the future");
    if (inv.expires_at > now + cfg->invite_max_valid_days * 24 * HOUR_MS)
        return srv_fail(c, KZ_BAD_REQUEST, "an invitation may stay valid for at most %lld days",
                        cfg->invite_max_valid_days);
    inv.account_expires_at = srv_arg_int(c, "account_expires_at", 0);
    if (inv.account_expires_at && inv.account_expires_at <= now)
        return srv_fail(c, KZ_BAD_REQUEST, "field 'account_expires_at' must be in the future");
    const char *note = srv_arg_str(c, "note");
    snprintf(inv.note, sizeof inv.note, "%s", note ? note : "");
    enum kz_err e = groups_join(c, inv.groups, sizeof inv.groups);
    struct store_user dept = {0};
    if (e || (e = srv_org_department(c, &dept)))
        return e;
    inv.department = dept.department;
    snprintf(inv.department_name, sizeof inv.department_name, "%s", dept.department_name);
    inv.created_by = c->auth.user.id;
    snprintf(inv.created_by_login, sizeof inv.created_by_login, "%s", c->auth.user.login);
    inv.created_at = now;
    char code[KZ_INVITE_CHARS];
    kz_invite_code_new(code, inv.code_hash);
    if (store_invite_insert(srv_store(c->srv), &inv) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot store the invitation");
    KZ_INFO("invite_created", "by=%s id=%lld role=%s uses=%lld", c->auth.user.login,
            (long long)inv.id, inv.role, (long long)inv.uses_max);
    c->result = cJSON_CreateObject();
    cJSON *ij = invite_json(&inv, now);
    cJSON_AddStringToObject(c->result, "code", code);
    cJSON_AddItemToObject(c->result, "invite", ij);
    cJSON *details = cJSON_Duplicate(ij, true);
    cJSON_DeleteItemFromObjectCaseSensitive(details, "created_by");
    cJSON_DeleteItemFromObjectCaseSensitive(details, "created_at");
    char target[32];
    snprintf(target, sizeof target, "invite:%lld", (long long)inv.id);
    srv_audit(c, "invite.create", target, details);
    return KZ_OK;
}

/* ---- invite.list, invite.revoke ---- */

struct list_ctx {
    cJSON *arr;
    int64_t now;
};

static int list_row(void *arg, const struct store_invite *inv)
{
    struct list_ctx *l = arg;
    cJSON_AddItemToArray(l->arr, invite_json(inv, l->now));
    return 0;
}

enum kz_err op_invite_list(struct srv_call *c)
{
    c->result = cJSON_CreateObject();
    struct list_ctx l = {cJSON_AddArrayToObject(c->result, "invites"), kz_now_ms()};
    if (store_invite_each(srv_store(c->srv), list_row, &l) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot list the invitations");
    return KZ_OK;
}

enum kz_err op_invite_revoke(struct srv_call *c)
{
    int64_t id = srv_arg_int(c, "invite", 0);
    struct store *st = srv_store(c->srv);
    struct store_invite inv;
    enum store_rc rc = store_invite_get(st, id, &inv);
    if (rc == STORE_NOT_FOUND)
        return srv_fail(c, KZ_NOT_FOUND, "no invitation %lld", (long long)id);
    if (rc != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "invitation lookup failed");
    int64_t now = kz_now_ms();
    if (!inv.revoked_at && store_invite_revoke(st, id, now) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot revoke the invitation");
    if (!inv.revoked_at) {
        inv.revoked_at = now;
        char target[32];
        snprintf(target, sizeof target, "invite:%lld", (long long)id);
        srv_audit(c, "invite.revoke", target, NULL);
    }
    c->result = cJSON_CreateObject();
    cJSON_AddItemToObject(c->result, "invite", invite_json(&inv, now));
    return KZ_OK;
}

/* ---- join: an invitation becomes an account and a session ---- */

/* Finds the invitation the `code` argument names if it can still be used. */
static enum kz_err usable_invite(struct srv_call *c, struct store_invite *inv)
{
    uint8_t hash[STORE_TOKEN_HASH];
    const char *code = srv_arg_str(c, "code");
    enum store_rc rc = kz_invite_code_hash(code, hash)
                           ? store_invite_get_by_hash(srv_store(c->srv), hash, inv)
                           : STORE_NOT_FOUND;
    if (rc != STORE_OK && rc != STORE_NOT_FOUND)
        return srv_fail(c, KZ_INTERNAL, "invitation lookup failed");
    const char *state = rc == STORE_OK ? invite_state(inv, kz_now_ms()) : "unknown";
    if (strcmp(state, "active") == 0)
        return KZ_OK;
    const char *login = srv_arg_str(c, "login");
    KZ_WARN("join_refused", "login=%s addr=%s invite=%s", kz_login_valid(login) ? login : "-",
            c->peer, state);
    bool locked = srv_throttle_failed(c->srv, login, c->peer);
    cJSON *details = cJSON_CreateObject();
    cJSON_AddStringToObject(details, "invite", state);
    srv_audit(c, "join.failed", kz_login_valid(login) ? login : "-", details);
    if (locked)
        srv_audit(c, "login.locked", kz_login_valid(login) ? login : "-", NULL);
    if (rc == STORE_NOT_FOUND)
        return srv_fail(c, KZ_UNAUTHORIZED, "no such invitation code");
    return srv_fail(c, KZ_UNAUTHORIZED, "the invitation code is %s",
                    strcmp(state, "used") == 0 ? "used up" : state);
}

static void join_then(struct srv_pw_job *pj)
{
    struct srv_call *c = pj->call;
    struct store *st = srv_store(c->srv);
    const char *login = srv_arg_str(c, "login");
    const char *name = srv_arg_str(c, "name");
    struct store_invite inv;
    struct store_user u = {0};
    enum kz_err e;
    if (!pj->hashed) {
        e = srv_fail(c, KZ_INTERNAL, "cannot hash the password");
        goto out;
    }
    /* The code may have been used up or revoked while the hash ran. */
    if ((e = usable_invite(c, &inv)) || (e = srv_call_write_begin(c)))
        goto out;
    enum store_rc rc = store_invite_use(st, inv.id);
    if (rc != STORE_OK) {
        e = rc == STORE_CONFLICT ? srv_fail(c, KZ_UNAUTHORIZED, "the invitation code is used up")
                                 : srv_fail(c, KZ_INTERNAL, "cannot use the invitation");
        goto out;
    }
    snprintf(u.login, sizeof u.login, "%s", login);
    snprintf(u.name, sizeof u.name, "%s", name ? name : login);
    snprintf(u.role, sizeof u.role, "%s", inv.role);
    snprintf(u.pw_hash, sizeof u.pw_hash, "%s", pj->new_hash);
    u.department = inv.department;
    snprintf(u.department_name, sizeof u.department_name, "%s", inv.department_name);
    u.expires_at = inv.account_expires_at;
    u.invite = inv.id;
    if ((e = srv_org_contact(c, &u)))
        goto out;
    rc = store_user_insert(st, &u, kz_now_ms());
    if (rc != STORE_OK) {
        e = rc == STORE_CONFLICT ? srv_fail(c, KZ_CONFLICT, "login id '%s' is taken", login)
                                 : srv_fail(c, KZ_INTERNAL, "cannot store the user");
        goto out;
    }
    /* The invitation's groups go through the same code as user.add's. */
    cJSON_AddItemToObject(c->args, "groups", groups_json(inv.groups));
    if ((e = srv_org_groups(c, u.id)))
        goto out;
    KZ_INFO("joined", "login=%s invite=%lld role=%s", u.login, (long long)inv.id, u.role);
    cJSON *details = cJSON_CreateObject();
    cJSON_AddNumberToObject(details, "invite", (double)inv.id);
    cJSON_AddStringToObject(details, "role", u.role);
    cJSON_AddStringToObject(details, "department", u.department_name);
    if (u.expires_at)
        cJSON_AddNumberToObject(details, "expires_at", (double)u.expires_at);
    srv_audit(c, "invite.use", u.login, details);
    e = srv_session_open(c, &u, srv_arg_str(c, "device"), srv_arg_bool(c, "shared", false),
                         "login");
out:
    srv_call_finish(c, e);
}

enum kz_err op_join(struct srv_call *c)
{
    struct srv *s = c->srv;
    const char *login = srv_arg_str(c, "login");
    const char *name = srv_arg_str(c, "name");
    const char *password = srv_arg_str(c, "password");
    /* Code guessing is throttled like password guessing, before anything else. */
    int64_t wait = srv_throttle_wait(s, login, c->peer);
    if (wait > 0) {
        c->retry_after_s = wait;
        return srv_fail(c, KZ_RATE_LIMITED, "too many failed attempts: retry in %lld s",
                        (long long)wait);
    }
    struct store_invite inv;
    struct store_user probe = {0};
    enum kz_err e = usable_invite(c, &inv);
    if (e)
        return e;
    if (!kz_login_valid(login))
        return srv_fail(c, KZ_BAD_REQUEST,
                        "a login id is 1-64 of a-z, 0-9, '.', '_', '-', starting with a-z or 0-9");
    if (name && !name[strspn(name, " \t")])
        return srv_fail(c, KZ_BAD_REQUEST, "field 'name' must not be blank");
    const char *problem = kz_password_problem(password, login, srv_config(s)->password_min_length);
    if (problem)
        return srv_fail(c, KZ_BAD_REQUEST, "%s", problem);
    if ((e = srv_org_contact(c, &probe)))
        return e;
    enum store_rc rc = store_user_get_by_login(srv_store(s), login, &probe);
    if (rc == STORE_OK)
        return srv_fail(c, KZ_CONFLICT, "login id '%s' is taken", login);
    if (rc != STORE_NOT_FOUND)
        return srv_fail(c, KZ_INTERNAL, "user lookup failed");
    struct srv_pw_job *pj = srv_pw_job_new(c, join_then);
    if (!pj)
        return srv_fail(c, KZ_INTERNAL, "out of memory");
    snprintf(pj->new_password, sizeof pj->new_password, "%s", password);
    return srv_pw_job_submit(pj);
}
