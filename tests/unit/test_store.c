/* test_store.c - the store on a real SQLite file in a temporary directory. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

static char dir[64], path[128];
static struct store *st;

static struct store *open_db(void)
{
    struct store_options o = {.path = path, .sync_full = true, .busy_timeout_ms = 100};
    struct store *s = NULL;
    char err[256];
    cr_assert_eq(store_open(&o, &s, err, sizeof err), STORE_OK, "%s", err);
    return s;
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/kizuna-store-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/k.db", dir);
    st = open_db();
}

static void teardown(void)
{
    store_close(st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(store, .init = setup, .fini = teardown, .timeout = 30);

static struct store_user make_user(const char *login, const char *role)
{
    struct store_user u = {0};
    snprintf(u.login, sizeof u.login, "%s", login);
    snprintf(u.name, sizeof u.name, "名前 %s", login);
    snprintf(u.role, sizeof u.role, "%s", role);
    snprintf(u.pw_hash, sizeof u.pw_hash, "$argon2id$fake");
    return u;
}

Test(store, migrates_to_latest_and_uses_wal)
{
    cr_assert_eq(store_schema_version(st), store_schema_latest());
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *s;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL);
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(db);
}

Test(store, refuses_a_database_newer_than_the_binary)
{
    store_close(st);
    st = NULL;
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", store_schema_latest() + 1);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    struct store_options o = {.path = path, .sync_full = true, .busy_timeout_ms = 100};
    char err[256] = "";
    cr_assert_eq(store_open(&o, &st, err, sizeof err), STORE_TOO_NEW);
    cr_assert_null(st);
    cr_assert(strstr(err, "newer"), "%s", err);
}

Test(store, users_insert_get_conflict_and_list)
{
    struct store_user a = make_user("alice", "admin"), b = make_user("bob", "staff"), got;
    cr_assert_eq(store_tx_begin(st), STORE_OK);
    cr_assert_eq(store_user_insert(st, &b, 1000), STORE_OK);
    cr_assert_eq(store_user_insert(st, &a, 2000), STORE_OK);
    struct store_user dup = make_user("alice", "staff");
    cr_assert_eq(store_user_insert(st, &dup, 3000), STORE_CONFLICT);
    cr_assert_eq(store_tx_commit(st), STORE_OK);
    cr_assert_eq(store_user_get_by_login(st, "alice", &got), STORE_OK);
    cr_assert_eq(got.id, a.id);
    cr_assert_str_eq(got.name, "名前 alice");
    cr_assert_eq(got.created_at, 2000);
    cr_assert_eq(store_user_get_by_login(st, "carol", &got), STORE_NOT_FOUND);
    int64_t n;
    cr_assert_eq(store_user_count(st, &n), STORE_OK);
    cr_assert_eq(n, 2);
}

Test(store, check_constraint_rejects_unknown_role)
{
    struct store_user u = make_user("eve", "superuser");
    cr_assert_eq(store_tx_begin(st), STORE_OK);
    cr_assert_neq(store_user_insert(st, &u, 1), STORE_OK);
    store_tx_rollback(st);
}

Test(store, savepoint_rolls_back_one_op_only)
{
    struct store_user a = make_user("kept", "staff"), b = make_user("undone", "staff"), got;
    cr_assert_eq(store_op_begin(st), STORE_OK);
    cr_assert_eq(store_user_insert(st, &a, 1), STORE_OK);
    cr_assert_eq(store_op_end(st, true), STORE_OK);
    cr_assert_eq(store_op_begin(st), STORE_OK);
    cr_assert_eq(store_user_insert(st, &b, 1), STORE_OK);
    cr_assert_eq(store_op_end(st, false), STORE_OK);
    cr_assert(store_tx_is_open(st));
    cr_assert_eq(store_tx_commit(st), STORE_OK);
    cr_assert_eq(store_user_get_by_login(st, "kept", &got), STORE_OK);
    cr_assert_eq(store_user_get_by_login(st, "undone", &got), STORE_NOT_FOUND);
}

Test(store, rollback_forgets_uncommitted_writes)
{
    struct store_user a = make_user("ghost", "staff"), got;
    cr_assert_eq(store_tx_begin(st), STORE_OK);
    cr_assert_eq(store_user_insert(st, &a, 1), STORE_OK);
    store_tx_rollback(st);
    cr_assert_eq(store_user_get_by_login(st, "ghost", &got), STORE_NOT_FOUND);
}

Test(store, sessions_lookup_touch_end)
{
    struct store_user u = make_user("s", "staff");
    uint8_t h1[STORE_TOKEN_HASH] = {1}, h2[STORE_TOKEN_HASH] = {2}, h3[STORE_TOKEN_HASH] = {3};
    store_tx_begin(st);
    cr_assert_eq(store_user_insert(st, &u, 1), STORE_OK);
    struct store_session s1 = {.user_id = u.id, .created_at = 10, .last_seen = 10};
    struct store_session s2 = s1, s3 = s1, got;
    snprintf(s1.device, sizeof s1.device, "phone");
    cr_assert_eq(store_session_insert(st, h1, &s1), STORE_OK);
    cr_assert_eq(store_session_insert(st, h2, &s2), STORE_OK);
    cr_assert_eq(store_session_insert(st, h3, &s3), STORE_OK);
    cr_assert_eq(store_session_insert(st, h1, &s3), STORE_CONFLICT, "token hashes are unique");
    store_tx_commit(st);

    cr_assert_eq(store_session_lookup(st, h1, &got), STORE_OK);
    cr_assert_eq(got.id, s1.id);
    cr_assert_str_eq(got.device, "phone");
    store_tx_begin(st);
    cr_assert_eq(store_session_touch(st, s1.id, 99), STORE_OK);
    cr_assert_eq(store_session_end(st, s2.id, 100), STORE_OK);
    cr_assert_eq(store_session_end(st, s2.id, 100), STORE_NOT_FOUND, "ending twice");
    cr_assert_eq(store_session_end_user(st, u.id, s1.id, 101), STORE_OK);
    store_tx_commit(st);
    cr_assert_eq(store_session_get(st, s1.id, &got), STORE_OK, "kept");
    cr_assert_eq(got.last_seen, 99);
    cr_assert_eq(store_session_lookup(st, h2, &got), STORE_NOT_FOUND);
    cr_assert_eq(store_session_get(st, s3.id, &got), STORE_NOT_FOUND);
}

Test(store, committed_data_survives_reopen)
{
    struct store_user u = make_user("persist", "hq"), got;
    store_tx_begin(st);
    store_user_insert(st, &u, 5);
    cr_assert_eq(store_tx_commit(st), STORE_OK);
    store_tx_begin(st);
    cr_assert_eq(store_user_set_disabled(st, u.id, true, 6), STORE_OK);
    cr_assert_eq(store_user_set_password(st, u.id, "$new", true, 7), STORE_OK);
    cr_assert_eq(store_user_set_disabled(st, 9999, true, 6), STORE_NOT_FOUND);
    store_tx_commit(st);
    store_close(st);
    st = open_db();
    cr_assert_eq(store_user_get_by_login(st, "persist", &got), STORE_OK);
    cr_assert(got.disabled);
    cr_assert(got.must_change_password);
    cr_assert_str_eq(got.pw_hash, "$new");
    cr_assert_eq(got.updated_at, 7);
}
