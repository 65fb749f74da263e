/* ops_org.c - the organisation: departments, groups, and user.update. Departments and groups
 * are created on first use by an admin (user.add / user.update name them). */
#include "server.h"

#include <string.h>

static int named_json(void *arg, int64_t id, const char *name, int64_t members)
{
    (void)id;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddNumberToObject(o, "members", (double)members);
    cJSON_AddItemToArray(arg, o);
    return 0;
}

enum kz_err op_dept_list(struct srv_call *c)
{
    c->result = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(c->result, "departments");
    if (store_dept_each(srv_store(c->srv), named_json, arr) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "department list failed");
    return KZ_OK;
}

enum kz_err op_group_list(struct srv_call *c)
{
    c->result = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(c->result, "groups");
    if (store_group_each(srv_store(c->srv), named_json, arr) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "group list failed");
    return KZ_OK;
}

static bool blank(const char *s)
{
    return !s[strspn(s, " \t")];
}

enum kz_err srv_org_department(struct srv_call *c, struct store_user *u)
{
    const char *dept = srv_arg_str(c, "department");
    if (!dept)
        return KZ_OK;
    if (!*dept) {
        u->department = 0;
        u->department_name[0] = '\0';
        return KZ_OK;
    }
    if (blank(dept))
        return srv_fail(c, KZ_BAD_REQUEST, "a department name must not be blank");
    if (store_dept_find(srv_store(c->srv), dept, true, kz_now_ms(), &u->department) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot store the department");
    snprintf(u->department_name, sizeof u->department_name, "%s", dept);
    return KZ_OK;
}

enum kz_err srv_org_groups(struct srv_call *c, int64_t user_id)
{
    const cJSON *groups = srv_arg_list(c, "groups");
    if (!groups)
        return KZ_OK;
    struct store *st = srv_store(c->srv);
    if (store_user_groups_clear(st, user_id) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot change the groups");
    const cJSON *g;
    cJSON_ArrayForEach(g, groups)
    {
        int64_t id;
        if (blank(g->valuestring))
            return srv_fail(c, KZ_BAD_REQUEST, "a group name must not be blank");
        if (store_group_find(st, g->valuestring, true, kz_now_ms(), &id) != STORE_OK ||
            store_group_add_member(st, id, user_id) != STORE_OK)
            return srv_fail(c, KZ_INTERNAL, "cannot change the groups");
    }
    return KZ_OK;
}

enum kz_err srv_org_contact(struct srv_call *c, struct store_user *u)
{
    const char *email = srv_arg_str(c, "email");
    const char *phone = srv_arg_str(c, "phone");
    const cJSON *expires = cJSON_GetObjectItemCaseSensitive(c->args, "expires_at");
    if (email && !kz_email_valid(email))
        return srv_fail(c, KZ_BAD_REQUEST, "field 'email' is not an email address");
    if (phone && !kz_phone_valid(phone))
        return srv_fail(c, KZ_BAD_REQUEST,
                        "field 'phone' must be digits with optional '+', '-', spaces and "
                        "parentheses");
    int64_t at = srv_arg_int(c, "expires_at", 0);
    if (expires && at && at <= kz_now_ms())
        return srv_fail(c, KZ_BAD_REQUEST,
                        "field 'expires_at' must be in the future (0 clears it)");
    if (email)
        snprintf(u->email, sizeof u->email, "%s", email);
    if (phone)
        snprintf(u->phone, sizeof u->phone, "%s", phone);
    if (expires)
        u->expires_at = at;
    return KZ_OK;
}

static int add_name(void *arg, int64_t id, const char *name, int64_t members)
{
    (void)id;
    (void)members;
    cJSON_AddItemToArray(arg, cJSON_CreateString(name));
    return 0;
}

cJSON *srv_user_groups_json(struct srv *s, int64_t user_id)
{
    cJSON *arr = cJSON_CreateArray();
    store_user_groups_each(srv_store(s), user_id, add_name, arr);
    return arr;
}

enum kz_err op_user_update(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    struct store_user u;
    const char *login = srv_arg_str(c, "login");
    enum store_rc rc =
        kz_login_valid(login) ? store_user_get_by_login(st, login, &u) : STORE_NOT_FOUND;
    if (rc == STORE_NOT_FOUND)
        return srv_fail(c, KZ_NOT_FOUND, "no user with login id '%s'",
                        kz_login_valid(login) ? login : "?");
    if (rc != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "user lookup failed");
    const char *name = srv_arg_str(c, "name");
    const char *role = srv_arg_str(c, "role");
    if (name && blank(name))
        return srv_fail(c, KZ_BAD_REQUEST, "field 'name' must not be blank");
    char why[96];
    if (role && !kz_role_parse(role, NULL, why, sizeof why))
        return srv_fail(c, KZ_BAD_REQUEST, "%s", why);
    if (role && u.id == c->auth.user.id && !kz_role_is(role, KZ_ROLE_ADMIN))
        return srv_fail(c, KZ_CONFLICT, "you cannot take away your own admin role");
    int64_t was_expiring = u.expires_at;
    enum kz_err e;
    if ((e = srv_org_contact(c, &u)))
        return e;
    if (name)
        snprintf(u.name, sizeof u.name, "%s", name);
    if (role)
        snprintf(u.role, sizeof u.role, "%s", role);
    if ((e = srv_org_department(c, &u)) || (e = srv_org_groups(c, u.id)))
        return e;
    if (store_user_update(st, &u, kz_now_ms()) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot update the user");
    KZ_INFO("user_updated", "by=%s login=%s role=%s", c->auth.user.login, u.login, u.role);
    cJSON *details = cJSON_CreateObject();
    cJSON_AddStringToObject(details, "role", u.role);
    cJSON_AddStringToObject(details, "name", u.name);
    cJSON_AddStringToObject(details, "department", u.department_name);
    if (srv_arg_list(c, "groups"))
        cJSON_AddItemToObject(details, "groups", cJSON_Duplicate(srv_arg_list(c, "groups"), true));
    if (srv_arg_str(c, "email"))
        cJSON_AddStringToObject(details, "email", u.email);
    if (srv_arg_str(c, "phone"))
        cJSON_AddStringToObject(details, "phone", u.phone);
    if (u.expires_at != was_expiring)
        cJSON_AddNumberToObject(details, "expires_at", (double)u.expires_at);
    srv_audit(c, "user.update", u.login, details);
    c->result = cJSON_CreateObject();
    cJSON *uj = srv_user_json(&u);
    cJSON_AddItemToObject(uj, "groups", srv_user_groups_json(c->srv, u.id));
    cJSON_AddItemToObject(c->result, "user", uj);
    return KZ_OK;
}
