/* store_admin.c - invitations for dispatched staff. */
#include "store_internal.h"

#include <stdio.h>
#include <string.h>

enum admin_stmt { A_INSERT, A_GET, A_GET_HASH, A_USE, A_REVOKE, A_EACH, A_COUNT };
_Static_assert(A_COUNT <= STORE_ADMIN_STMTS, "raise STORE_ADMIN_STMTS");

#define INVITE_COLS                                                                                \
    "i.id, i.code_hash, i.role, i.department, coalesce(d.name, ''), i.groups, i.note,"             \
    " i.uses_max, i.uses, i.expires_at, i.account_expires_at, i.created_by, u.login,"              \
    " i.created_at, i.revoked_at FROM invites i JOIN users u ON u.id = i.created_by"               \
    " LEFT JOIN departments d ON d.id = i.department"

static const char *const admin_sql[A_COUNT] = {
    [A_INSERT] = "INSERT INTO invites (code_hash, role, department, groups, note, uses_max,"
                 " expires_at, account_expires_at, created_by, created_at)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [A_GET] = "SELECT " INVITE_COLS " WHERE i.id = ?",
    [A_GET_HASH] = "SELECT " INVITE_COLS " WHERE i.code_hash = ?",
    [A_USE] = "UPDATE invites SET uses = uses + 1 WHERE id = ? AND uses < uses_max",
    [A_REVOKE] = "UPDATE invites SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
    [A_EACH] = "SELECT " INVITE_COLS " ORDER BY i.id DESC",
};

enum store_rc store_admin_prepare(struct store *st, char *err, size_t errlen)
{
    return store_prepare_all(st, admin_sql, st->admin, A_COUNT, "admin", err, errlen);
}

static void read_invite(sqlite3_stmt *s, struct store_invite *out)
{
    memset(out, 0, sizeof *out);
    out->id = sqlite3_column_int64(s, 0);
    if (sqlite3_column_bytes(s, 1) == STORE_TOKEN_HASH)
        memcpy(out->code_hash, sqlite3_column_blob(s, 1), STORE_TOKEN_HASH);
    store_copy_text(out->role, sizeof out->role, s, 2);
    out->department = sqlite3_column_int64(s, 3);
    store_copy_text(out->department_name, sizeof out->department_name, s, 4);
    store_copy_text(out->groups, sizeof out->groups, s, 5);
    store_copy_text(out->note, sizeof out->note, s, 6);
    out->uses_max = sqlite3_column_int64(s, 7);
    out->uses = sqlite3_column_int64(s, 8);
    out->expires_at = sqlite3_column_int64(s, 9);
    out->account_expires_at = sqlite3_column_int64(s, 10);
    out->created_by = sqlite3_column_int64(s, 11);
    store_copy_text(out->created_by_login, sizeof out->created_by_login, s, 12);
    out->created_at = sqlite3_column_int64(s, 13);
    out->revoked_at = sqlite3_column_int64(s, 14);
}

static enum store_rc step_invite(struct store *st, sqlite3_stmt *s, struct store_invite *out)
{
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_OK;
    if (rc == SQLITE_ROW)
        read_invite(s, out);
    else if (rc == SQLITE_DONE)
        r = STORE_NOT_FOUND;
    else
        r = store_fail(st, "invitation lookup");
    store_finish(s);
    return r;
}

enum store_rc store_invite_insert(struct store *st, struct store_invite *inv)
{
    sqlite3_stmt *s = st->admin[A_INSERT];
    sqlite3_bind_blob(s, 1, inv->code_hash, STORE_TOKEN_HASH, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, inv->role, -1, SQLITE_STATIC);
    if (inv->department)
        sqlite3_bind_int64(s, 3, inv->department);
    sqlite3_bind_text(s, 4, inv->groups, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, inv->note, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, inv->uses_max);
    sqlite3_bind_int64(s, 7, inv->expires_at);
    if (inv->account_expires_at)
        sqlite3_bind_int64(s, 8, inv->account_expires_at);
    sqlite3_bind_int64(s, 9, inv->created_by);
    sqlite3_bind_int64(s, 10, inv->created_at);
    enum store_rc rc = store_step_done(st, s, "invitation insert");
    if (rc == STORE_OK)
        inv->id = sqlite3_last_insert_rowid(st->db);
    return rc;
}

enum store_rc store_invite_get(struct store *st, int64_t id, struct store_invite *out)
{
    sqlite3_stmt *s = st->admin[A_GET];
    sqlite3_bind_int64(s, 1, id);
    return step_invite(st, s, out);
}

enum store_rc store_invite_get_by_hash(struct store *st, const uint8_t hash[STORE_TOKEN_HASH],
                                       struct store_invite *out)
{
    sqlite3_stmt *s = st->admin[A_GET_HASH];
    sqlite3_bind_blob(s, 1, hash, STORE_TOKEN_HASH, SQLITE_STATIC);
    return step_invite(st, s, out);
}

enum store_rc store_invite_use(struct store *st, int64_t id)
{
    sqlite3_stmt *s = st->admin[A_USE];
    sqlite3_bind_int64(s, 1, id);
    enum store_rc rc = store_step_done(st, s, "invitation use");
    if (rc == STORE_OK && sqlite3_changes(st->db) == 0)
        rc = STORE_CONFLICT;
    return rc;
}

enum store_rc store_invite_revoke(struct store *st, int64_t id, int64_t now)
{
    sqlite3_stmt *s = st->admin[A_REVOKE];
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int64(s, 2, id);
    enum store_rc rc = store_step_done(st, s, "invitation revoke");
    if (rc == STORE_OK && sqlite3_changes(st->db) == 0)
        rc = STORE_NOT_FOUND;
    return rc;
}

enum store_rc store_invite_each(struct store *st, store_invite_fn fn, void *ctx)
{
    sqlite3_stmt *s = st->admin[A_EACH];
    struct store_invite inv;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        read_invite(s, &inv);
        if (fn(ctx, &inv) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "invitation list");
    store_finish(s);
    return r;
}
