/* test_store.c - the store on a real SQLite file in a temporary directory. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "store_push.h"

static char dir[64], path[128];
static struct store *st;

static struct store *open_db(void)
{
    /* shared: some tests look at the file through a second connection */
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

/* store_user_get and store_session_get answer from a cache: every change to the rows, and
 * every rollback, must show at once (a revoked session or a disabled user is refused on the
 * very next request). */
Test(store, cached_users_and_sessions_see_every_change)
{
    struct store_user u = make_user("c", "staff"), got;
    uint8_t h[STORE_TOKEN_HASH] = {7};
    store_tx_begin(st);
    cr_assert_eq(store_user_insert(st, &u, 1), STORE_OK);
    struct store_session ses = {.user_id = u.id, .created_at = 10, .last_seen = 10}, sgot;
    cr_assert_eq(store_session_insert(st, h, &ses), STORE_OK);
    store_tx_commit(st);
    cr_assert_eq(store_user_get(st, u.id, &got), STORE_OK);
    cr_assert(!got.disabled);
    cr_assert_eq(store_session_get(st, ses.id, &sgot), STORE_OK);

    store_tx_begin(st);
    cr_assert_eq(store_user_set_disabled(st, u.id, true, 2), STORE_OK);
    cr_assert_eq(store_user_get(st, u.id, &got), STORE_OK);
    cr_assert(got.disabled, "a change shows at once");
    store_tx_rollback(st);
    cr_assert_eq(store_user_get(st, u.id, &got), STORE_OK);
    cr_assert(!got.disabled, "and a rollback undoes it");

    cr_assert_eq(store_op_begin(st), STORE_OK);
    cr_assert_eq(store_session_end(st, ses.id, 20), STORE_OK);
    cr_assert_eq(store_session_get(st, ses.id, &sgot), STORE_NOT_FOUND, "ended");
    cr_assert_eq(store_op_end(st, false), STORE_OK);
    cr_assert_eq(store_session_get(st, ses.id, &sgot), STORE_OK, "the op was undone");
    cr_assert_eq(store_session_end(st, ses.id, 21), STORE_OK);
    cr_assert_eq(store_tx_commit(st), STORE_OK);
    cr_assert_eq(store_session_get(st, ses.id, &sgot), STORE_NOT_FOUND);

    /* A user moved to a department: the cached copy carries the department's name. */
    store_tx_begin(st);
    cr_assert_eq(store_dept_find(st, "本部", true, 3, &got.department), STORE_OK);
    cr_assert_eq(store_user_update(st, &got, 3), STORE_OK);
    store_tx_commit(st);
    cr_assert_eq(store_user_get(st, u.id, &got), STORE_OK);
    cr_assert_str_eq(got.department_name, "本部");
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

/* ---- talk ---- */

static int64_t add_user(const char *login)
{
    struct store_user u = make_user(login, "staff");
    cr_assert_eq(store_user_insert(st, &u, 1), STORE_OK);
    return u.id;
}

static struct store_room add_room(int64_t creator, const char *room_id)
{
    struct store_room r = {.created_by = creator, .created_at = 1};
    snprintf(r.room_id, sizeof r.room_id, "%s", room_id);
    snprintf(r.kind, sizeof r.kind, "group");
    snprintf(r.name, sizeof r.name, "部屋");
    cr_assert_eq(store_room_insert(st, &r, NULL), STORE_OK);
    return r;
}

static int64_t add_event(int64_t room, int64_t seq, const char *type, int64_t sender)
{
    struct store_event e = {.room = room, .inc = 1, .seq = seq, .sender = sender, .ts = seq};
    snprintf(e.origin, sizeof e.origin, "test");
    snprintf(e.event_id, sizeof e.event_id, "ev-%lld-%lld", (long long)room, (long long)seq);
    snprintf(e.type, sizeof e.type, "%s", type);
    e.payload = "{}";
    e.payload_len = 2;
    e.sig = "sig";
    e.sig_len = 3;
    cr_assert_eq(store_event_insert(st, &e), STORE_OK, "%s", store_errmsg(st));
    return e.pos;
}

static int64_t add_msg(int64_t room, int64_t seq, int64_t sender, const char *body)
{
    int64_t pos = add_event(room, seq, "msg", sender);
    struct store_message m = {.pos = pos, .room = room, .sender = sender, .body = body, .ts = seq};
    cr_assert_eq(store_message_insert(st, &m), STORE_OK);
    return pos;
}

Test(store, event_logs_are_contiguous_per_origin)
{
    store_tx_begin(st);
    int64_t u = add_user("a");
    struct store_room r = add_room(u, "room-1");
    add_event(r.id, 1, "room.create", u);
    add_event(r.id, 2, "member", u);
    struct store_event gap = {.room = r.id,
                              .inc = 1,
                              .seq = 4,
                              .payload = "{}",
                              .payload_len = 2,
                              .sig = "s",
                              .sig_len = 1};
    snprintf(gap.origin, sizeof gap.origin, "test");
    snprintf(gap.event_id, sizeof gap.event_id, "gap");
    snprintf(gap.type, sizeof gap.type, "msg");
    cr_assert_eq(store_event_insert(st, &gap), STORE_CONFLICT, "a gap would fork the log");
    gap.seq = 2;
    cr_assert_eq(store_event_insert(st, &gap), STORE_CONFLICT, "so would a reused seq");
    int64_t seq;
    char head[64];
    cr_assert_eq(store_log_head(st, r.id, "test", 1, &seq, head), STORE_OK);
    cr_assert_eq(seq, 2);
    cr_assert_str_eq(head, "ev-1-2");
    cr_assert_eq(store_log_head(st, r.id, "other", 1, &seq, head), STORE_OK);
    cr_assert_eq(seq, 0, "another origin's log starts empty");
    store_tx_commit(st);
}

static int count_events(void *ctx, const struct store_event *e)
{
    (void)e;
    (*(int *)ctx)++;
    return 0;
}

Test(store, a_user_syncs_only_rooms_while_a_member)
{
    store_tx_begin(st);
    int64_t a = add_user("a"), b = add_user("b");
    struct store_room r = add_room(a, "room-1");
    int64_t p1 = add_event(r.id, 1, "room.create", a);
    cr_assert_eq(store_member_join(st, r.id, a, "admin", p1), STORE_OK);
    add_msg(r.id, 2, a, "before b");
    int64_t pj = add_event(r.id, 3, "member", a);
    cr_assert_eq(store_member_join(st, r.id, b, "member", pj), STORE_OK);
    add_msg(r.id, 4, a, "while b");
    int64_t pl = add_event(r.id, 5, "member", a);
    cr_assert_eq(store_member_leave(st, r.id, b, pl), STORE_OK);
    add_msg(r.id, 6, a, "after b");
    store_tx_commit(st);
    int na = 0, nb = 0;
    cr_assert_eq(store_event_each_for_user(st, a, 0, 100, count_events, &na), STORE_OK);
    cr_assert_eq(store_event_each_for_user(st, b, 0, 100, count_events, &nb), STORE_OK);
    cr_assert_eq(na, 6);
    cr_assert_eq(nb, 3, "its join, the message while a member, and its own leave");
    int page = 0;
    store_event_each_for_user(st, a, 0, 2, count_events, &page);
    cr_assert_eq(page, 2, "limit bounds a page");
}

Test(store, read_markers_counts_and_times)
{
    store_tx_begin(st);
    int64_t a = add_user("a"), b = add_user("b"), c = add_user("c");
    struct store_room r = add_room(a, "room-1");
    int64_t p0 = add_event(r.id, 1, "room.create", a);
    store_member_join(st, r.id, a, "admin", p0);
    store_member_join(st, r.id, b, "member", p0);
    store_member_join(st, r.id, c, "member", p0);
    int64_t m1 = add_msg(r.id, 2, a, "one");
    int64_t m2 = add_msg(r.id, 3, a, "two");
    bool moved;
    int64_t old;
    cr_assert_eq(store_member_read(st, r.id, b, m1, 100, &moved, &old), STORE_OK);
    cr_assert(moved);
    cr_assert_eq(store_member_read(st, r.id, b, m2, 200, &moved, &old), STORE_OK);
    cr_assert_eq(old, m1);
    cr_assert_eq(store_member_read(st, r.id, b, m1, 300, &moved, &old), STORE_OK);
    cr_assert(!moved, "markers never go back");
    cr_assert_eq(store_member_read(st, r.id, c, m1, 400, &moved, &old), STORE_OK);
    store_tx_commit(st);
    int64_t n, at, unread;
    cr_assert_eq(store_read_count(st, r.id, m1, a, &n), STORE_OK);
    cr_assert_eq(n, 2);
    cr_assert_eq(store_read_count(st, r.id, m2, a, &n), STORE_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(store_read_time(st, r.id, b, m1, &at), STORE_OK);
    cr_assert_eq(at, 100, "when b's marker first reached m1");
    cr_assert_eq(store_read_time(st, r.id, c, m2, &at), STORE_OK);
    cr_assert_eq(at, 0, "c has not read m2");
    cr_assert_eq(store_room_unread(st, r.id, c, m1, &unread), STORE_OK);
    cr_assert_eq(unread, 1);
}

/* An event of another origin at a given hlc, as replication stores it (a shared room). */
static int64_t add_keyed(int64_t room, const char *origin, int64_t seq, int64_t hlc,
                         const char *type, int64_t sender)
{
    struct store_event e = {
        .room = room, .inc = 1, .seq = seq, .sender = sender, .ts = hlc, .hlc = hlc};
    snprintf(e.origin, sizeof e.origin, "%s", origin);
    snprintf(e.event_id, sizeof e.event_id, "ev-%s-%lld", origin, (long long)seq);
    snprintf(e.type, sizeof e.type, "%s", type);
    e.payload = "{}";
    e.payload_len = 2;
    e.sig = "sig";
    e.sig_len = 3;
    cr_assert_eq(store_event_insert(st, &e), STORE_OK, "%s", store_errmsg(st));
    if (!strcmp(type, "msg")) {
        struct store_message m = {.pos = e.pos, .room = room, .sender = sender, .body = "x"};
        cr_assert_eq(store_message_insert(st, &m), STORE_OK);
    }
    return e.pos;
}

struct counted {
    int64_t n;
    bool shared;
    int events, reads;
};

static int count_of(void *ctx, const struct store_event *e)
{
    struct counted *c = ctx;
    c->shared = e->shared;
    cr_assert_eq(store_read_count_event(st, e, &c->n), STORE_OK);
    return 1;
}

static int hist_reads(void *ctx, const struct store_event *e, const struct store_message *m)
{
    (void)m;
    struct counted *c = ctx;
    c->events++;
    c->reads += !strcmp(e->type, "room.read");
    return 0;
}

static int sync_reads(void *ctx, const struct store_event *e)
{
    return hist_reads(ctx, e, NULL);
}

/* Read keys in a shared room (issue 17, item 7): the key of the event at a position (or the last
 * below it), forward only, and counts by key, not position: a message that arrived later (a
 * higher position) but sorts first counts whoever read past its place; the sender never counts,
 * nor a member who left; room.read events are in neither history nor sync. */
Test(store, shared_rooms_count_readers_by_read_keys)
{
    store_tx_begin(st);
    int64_t a = add_user("a"), b = add_user("b"), c = add_user("c");
    struct store_room r = {.created_by = a, .created_at = 1};
    snprintf(r.room_id, sizeof r.room_id, "shared-1");
    snprintf(r.kind, sizeof r.kind, "group");
    snprintf(r.name, sizeof r.name, "共有");
    snprintf(r.authority, sizeof r.authority, "hq");
    cr_assert_eq(store_room_insert(st, &r, NULL), STORE_OK);
    int64_t p0 = add_keyed(r.id, "hq", 1, 10, "room.create", a);
    store_member_join(st, r.id, a, "admin", p0);
    store_member_join(st, r.id, b, "member", p0);
    store_member_join(st, r.id, c, "member", p0);
    int64_t m2 = add_keyed(r.id, "hq", 2, 30, "msg", a);   /* arrives first ... */
    int64_t m1 = add_keyed(r.id, "town", 1, 20, "msg", a); /* ... sorts first (late) */
    int64_t m3 = add_keyed(r.id, "city", 1, 40, "msg", b);
    cr_assert_gt(m1, m2);
    struct store_order_key k, got;
    cr_assert_eq(store_event_key_at(st, r.id, m1, &k), STORE_OK);
    cr_assert(k.hlc == 20 && !strcmp(k.origin, "town") && k.inc == 1 && k.seq == 1);
    cr_assert_eq(store_event_key_at(st, r.id, m3 + 100, &got), STORE_OK);
    cr_assert_eq(got.hlc, 40, "past the end: the room's event with the greatest position");
    cr_assert_eq(store_member_read_key_get(st, r.id, b, &got), STORE_NOT_FOUND);
    bool moved;
    cr_assert_eq(store_event_key_at(st, r.id, m2, &k), STORE_OK);
    cr_assert_eq(store_member_read_key(st, r.id, b, &k, &moved), STORE_OK);
    cr_assert(moved);
    cr_assert_eq(store_event_key_at(st, r.id, m1, &k), STORE_OK);
    cr_assert_eq(store_member_read_key(st, r.id, b, &k, &moved), STORE_OK);
    cr_assert(!moved, "a key never goes back");
    cr_assert_eq(store_member_read_key_get(st, r.id, b, &got), STORE_OK);
    cr_assert(got.hlc == 30 && !strcmp(got.origin, "hq") && got.seq == 2);
    cr_assert_eq(store_event_key_at(st, r.id, m3, &k), STORE_OK);
    cr_assert_eq(store_member_read_key(st, r.id, a, &k, &moved), STORE_OK);
    add_keyed(r.id, "hq", 3, 50, "room.read", a);
    store_tx_commit(st);
    struct counted n = {0};
    cr_assert_eq(store_event_get(st, m1, count_of, &n), STORE_OK);
    cr_assert(n.shared);
    cr_assert_eq(n.n, 1, "b read past m1's place (the sender a does not count)");
    cr_assert_eq(store_event_get(st, m2, count_of, &n), STORE_OK);
    cr_assert_eq(n.n, 1);
    cr_assert_eq(store_event_get(st, m3, count_of, &n), STORE_OK);
    cr_assert_eq(n.n, 1, "a read m3, b sent it");
    store_tx_begin(st);
    cr_assert_eq(store_member_leave(st, r.id, b, m3 + 1), STORE_OK);
    store_tx_commit(st);
    cr_assert_eq(store_event_get(st, m1, count_of, &n), STORE_OK);
    cr_assert_eq(n.n, 0, "a member who left no longer counts");
    struct counted h = {0};
    cr_assert_eq(store_history(st, r.id, INT64_MAX, 0, 100, hist_reads, &h), STORE_OK);
    cr_assert_eq(h.events, 4);
    cr_assert_eq(h.reads, 0, "room.read is not in history");
    struct counted y = {0};
    cr_assert_eq(store_event_each_for_user(st, a, 0, 100, sync_reads, &y), STORE_OK);
    cr_assert_eq(y.events, 4);
    cr_assert_eq(y.reads, 0, "nor in sync");
}

static int first_body(void *ctx, const struct store_search_hit *h)
{
    snprintf(ctx, 128, "%s", h->body);
    return 1;
}

/* Every hit as "body" (messages) or "notice:TITLE", joined by '|', newest first. */
static int all_hits(void *ctx, const struct store_search_hit *h)
{
    char *out = ctx;
    size_t len = strlen(out);
    snprintf(out + len, 1024 - len, "%s%s%s", len ? "|" : "", h->notice ? "notice:" : "",
             h->notice ? h->title : h->body);
    return 0;
}

Test(store, search_trigram_and_short_queries)
{
    store_tx_begin(st);
    int64_t a = add_user("a"), b = add_user("b");
    struct store_room r = add_room(a, "room-1"), other = add_room(b, "room-2");
    int64_t p0 = add_event(r.id, 1, "room.create", a);
    store_member_join(st, r.id, a, "admin", p0);
    add_msg(r.id, 2, a, "県道12号線が冠水しています");
    int64_t po = add_event(other.id, 1, "room.create", b);
    store_member_join(st, other.id, b, "admin", po);
    add_msg(other.id, 2, b, "別の部屋の冠水");
    store_tx_commit(st);
    char got[128] = "";
    cr_assert_eq(store_search(st, a, 0, "号線が冠水", 0, 10, first_body, got), STORE_OK);
    cr_assert_str_eq(got, "県道12号線が冠水しています");
    got[0] = '\0';
    cr_assert_eq(store_search(st, a, 0, "冠水", 0, 10, first_body, got), STORE_OK);
    cr_assert_str_eq(got, "県道12号線が冠水しています", "not the other room's message");
    got[0] = '\0';
    cr_assert_eq(store_search(st, a, 0, "100%", 0, 10, first_body, got), STORE_OK);
    cr_assert_str_eq(got, "", "LIKE wildcards in a query are literal");
    cr_assert_eq(store_search(st, a, 0, "\"quoted\" OR x", 0, 10, first_body, got), STORE_OK);
}

/* Several words mean all of them, whatever their length (the trigram index needs three
 * characters; 冠水 has two), separated by ASCII or ideographic spaces; "quotes" keep a phrase. */
Test(store, search_words_all_must_match)
{
    store_tx_begin(st);
    int64_t a = add_user("a");
    struct store_room r = add_room(a, "room-1");
    store_member_join(st, r.id, a, "admin", add_event(r.id, 1, "room.create", a));
    add_msg(r.id, 2, a, "県道12号線が冠水しています");
    add_msg(r.id, 3, a, "国道4号は通行止め");
    add_msg(r.id, 4, a, "市道3号線が冠水のため通行止め");
    add_msg(r.id, 5, a, "通行止め 解除");
    store_tx_commit(st);
    struct {
        const char *q, *expect;
    } cases[] = {
        {"冠水 通行止め", "市道3号線が冠水のため通行止め"},       /* short AND long */
        {"冠水\u3000通行止め", "市道3号線が冠水のため通行止め"},  /* ideographic space */
        {"  通行止め   号線  ", "市道3号線が冠水のため通行止め"}, /* long AND long */
        {"冠水 号",
         "市道3号線が冠水のため通行止め|県道12号線が冠水しています"}, /* short AND short */
        {"冠水 通行止め 国道", ""},                                   /* no message has all */
        {"\"止め 解除\"", "通行止め 解除"},                           /* a phrase with a space */
        {"止め 解除", "通行止め 解除"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char got[1024] = "";
        cr_assert_eq(store_search(st, a, 0, cases[i].q, 0, 10, all_hits, got), STORE_OK, "%s",
                     cases[i].q);
        cr_assert_str_eq(got, cases[i].expect, "query '%s'", cases[i].q);
    }
    char got[1024] = "";
    cr_assert_eq(store_search(st, a, 0, " \u3000 ", 0, 10, all_hits, got), STORE_CONFLICT,
                 "no words");
    cr_assert_eq(store_search(st, a, 0, "a b c d e f g h i j k l m n o p q", 0, 10, all_hits, got),
                 STORE_CONFLICT, "more than STORE_SEARCH_TERMS_MAX words");
}

/* Notices are found by their recipients and their author, in the title or the body, among
 * messages by position; nobody else finds them, and a search in one room leaves them out. */
Test(store, search_finds_notices_for_their_recipients)
{
    store_tx_begin(st);
    int64_t hq = add_user("hq"), rcpt = add_user("rcpt"), other = add_user("other");
    struct store_room talk = add_room(rcpt, "room-1");
    store_member_join(st, talk.id, rcpt, "admin", add_event(talk.id, 1, "room.create", rcpt));
    add_msg(talk.id, 2, rcpt, "避難所の給水車は10時に到着");
    struct store_notice_new nn = {.author = hq,
                                  .title = "給水のお知らせ",
                                  .body = "第二避難所で給水を行います。容器を持参してください。",
                                  .audience = "[\"user:rcpt\"]",
                                  .now = 10};
    cr_assert_eq(store_notice_insert(st, &nn), STORE_OK);
    struct store_room nroom = add_room(hq, "notice-1");
    int64_t npos = add_event(nroom.id, 1, "notice.post", hq);
    char users[32];
    snprintf(users, sizeof users, "[%lld]", (long long)rcpt);
    int64_t count = 0;
    cr_assert_eq(store_notice_set_room(st, nn.id, nroom.id), STORE_OK);
    cr_assert_eq(store_notice_resolve(st, nn.id, hq, false, "[]", "[]", users, &count), STORE_OK);
    cr_assert_eq(count, 1);
    add_msg(talk.id, 3, rcpt, "給水 了解");
    store_tx_commit(st);
    char got[1024] = "";
    cr_assert_eq(store_search(st, rcpt, 0, "給水", 0, 10, all_hits, got), STORE_OK);
    cr_assert_str_eq(got, "給水 了解|notice:給水のお知らせ|避難所の給水車は10時に到着",
                     "newest first, the notice at its position");
    got[0] = '\0';
    cr_assert_eq(store_search(st, rcpt, 0, "容器 持参", 0, 10, all_hits, got), STORE_OK);
    cr_assert_str_eq(got, "notice:給水のお知らせ", "words from the body");
    got[0] = '\0';
    cr_assert_eq(store_search(st, rcpt, 0, "給水 お知らせ", npos + 1, 10, all_hits, got), STORE_OK);
    cr_assert_str_eq(got, "notice:給水のお知らせ", "title words, below `before`");
    got[0] = '\0';
    cr_assert_eq(store_search(st, rcpt, 0, "給水", npos, 10, all_hits, got), STORE_OK);
    cr_assert_str_eq(got, "避難所の給水車は10時に到着", "the next page");
    got[0] = '\0';
    cr_assert_eq(store_search(st, hq, 0, "容器", 0, 10, all_hits, got), STORE_OK);
    cr_assert_str_eq(got, "notice:給水のお知らせ", "its author");
    got[0] = '\0';
    cr_assert_eq(store_search(st, other, 0, "給水", 0, 10, all_hits, got), STORE_OK);
    cr_assert_str_eq(got, "", "not addressed to them");
    cr_assert_eq(store_search(st, rcpt, talk.id, "給水", 0, 10, all_hits, got), STORE_OK);
    cr_assert_str_eq(got, "給水 了解|避難所の給水車は10時に到着", "one room: no notices");
}

/* The current members as "login:role" in join order, read through store_member_each. */
static int member_line(void *ctx, const struct store_member *m)
{
    char *out = ctx;
    size_t n = strlen(out);
    snprintf(out + n, 256 - n, "%s%s:%s", n ? "," : "", m->login, m->role);
    return 0;
}

static const char *members_of(int64_t room)
{
    static char line[256];
    line[0] = '\0';
    cr_assert_eq(store_member_each(st, room, false, member_line, line), STORE_OK);
    return line;
}

struct leave_during_walk {
    int64_t room, pos;
    int seen;
};

/* Walks the members and makes each one leave as it is seen. */
static int leave_each(void *ctx, const struct store_member *m)
{
    struct leave_during_walk *w = ctx;
    w->seen++;
    cr_assert_eq(store_member_leave(st, w->room, m->user_id, w->pos), STORE_OK);
    cr_assert_str_eq(members_of(w->room), w->seen == 1 ? "b:admin" : "", "each leave shows");
    return 0;
}

/* Rooms and member lists answer from a cache (store_room_cache.c): every writer of rooms and
 * room_members, a user's new name, and every rollback must show at once, since membership
 * decides who may send and who is delivered to on the very next request. */
Test(store, cached_rooms_and_members_see_every_change)
{
    store_tx_begin(st);
    int64_t a = add_user("a"), b = add_user("b"), c = add_user("c");
    struct store_room r = add_room(a, "room-1"), got;
    int64_t p0 = add_event(r.id, 1, "room.create", a);
    cr_assert_eq(store_member_join(st, r.id, b, "member", p0), STORE_OK);
    cr_assert_eq(store_member_join(st, r.id, a, "admin", p0), STORE_OK);
    cr_assert_eq(store_tx_commit(st), STORE_OK);
    cr_assert_eq(store_room_get(st, "room-1", &got), STORE_OK);
    cr_assert_str_eq(members_of(r.id), "a:admin,b:member", "join order, ties by user id");
    struct store_member m;
    cr_assert_eq(store_member_get(st, r.id, c, &m), STORE_NOT_FOUND);

    /* A join, then the transaction rolled back. */
    store_tx_begin(st);
    int64_t pj = add_event(r.id, 2, "member", a);
    cr_assert_eq(store_member_join(st, r.id, c, "member", pj), STORE_OK);
    cr_assert_str_eq(members_of(r.id), "a:admin,b:member,c:member");
    cr_assert_eq(store_member_get(st, r.id, c, &m), STORE_OK);
    store_tx_rollback(st);
    cr_assert_str_eq(members_of(r.id), "a:admin,b:member", "the rollback undid the join");
    cr_assert_eq(store_member_get(st, r.id, c, &m), STORE_NOT_FOUND);

    /* A leave in one op's savepoint, undone alone. */
    cr_assert_eq(store_op_begin(st), STORE_OK);
    int64_t pl = add_event(r.id, 2, "member", a);
    cr_assert_eq(store_member_leave(st, r.id, b, pl), STORE_OK);
    cr_assert_str_eq(members_of(r.id), "a:admin");
    cr_assert_eq(store_member_get(st, r.id, b, &m), STORE_OK, "a past member's row stays");
    cr_assert_eq(m.left_pos, pl);
    cr_assert_eq(store_op_end(st, false), STORE_OK);
    cr_assert_str_eq(members_of(r.id), "a:admin,b:member", "the op was undone");
    cr_assert_eq(store_member_get(st, r.id, b, &m), STORE_OK);
    cr_assert_eq(m.left_pos, 0);

    /* A role, a read marker, the room's name and archive, a user's name. */
    cr_assert_eq(store_member_set_role(st, r.id, b, "admin"), STORE_OK);
    cr_assert_str_eq(members_of(r.id), "a:admin,b:admin");
    int64_t pm = add_msg(r.id, 2, a, "hello");
    bool moved;
    int64_t old;
    cr_assert_eq(store_member_read(st, r.id, b, pm, 77, &moved, &old), STORE_OK);
    cr_assert_eq(store_member_get(st, r.id, b, &m), STORE_OK);
    cr_assert_eq(m.read_pos, pm);
    cr_assert_eq(m.read_at, 77);
    cr_assert_eq(store_room_update(st, r.id, "新しい名前", "topic"), STORE_OK);
    cr_assert_eq(store_room_get(st, "room-1", &got), STORE_OK);
    cr_assert_str_eq(got.name, "新しい名前");
    cr_assert_eq(store_room_set_archived(st, r.id, 99), STORE_OK);
    cr_assert_eq(store_room_get_by_id(st, r.id, &got), STORE_OK);
    cr_assert_eq(got.archived_at, 99);
    cr_assert_eq(store_room_get(st, "room-1", &got), STORE_OK);
    cr_assert_eq(got.archived_at, 99);
    struct store_user ub;
    cr_assert_eq(store_user_get(st, b, &ub), STORE_OK);
    snprintf(ub.name, sizeof ub.name, "別名");
    cr_assert_eq(store_user_update(st, &ub, 5), STORE_OK);
    cr_assert_eq(store_member_get(st, r.id, b, &m), STORE_OK);
    cr_assert_str_eq(m.name, "別名");
    cr_assert_eq(store_tx_commit(st), STORE_OK);

    /* A notice's recipients join its room in one statement. */
    store_tx_begin(st);
    struct store_notice_new nn = {
        .author = a, .title = "t", .body = "b", .audience = "[\"user:c\"]", .now = 10};
    cr_assert_eq(store_notice_insert(st, &nn), STORE_OK);
    struct store_room nroom = add_room(a, "notice-1");
    int64_t npos = add_event(nroom.id, 1, "notice.post", a);
    cr_assert_str_eq(members_of(nroom.id), "");
    char users[32];
    snprintf(users, sizeof users, "[%lld]", (long long)c);
    int64_t count = 0;
    cr_assert_eq(store_notice_set_room(st, nn.id, nroom.id), STORE_OK);
    cr_assert_eq(store_notice_resolve(st, nn.id, a, false, "[]", "[]", users, &count), STORE_OK);
    cr_assert_eq(store_notice_join_room(st, nn.id, nroom.id, npos), STORE_OK);
    cr_assert_str_eq(members_of(nroom.id), "c:member");

    /* A walk whose callback changes the list it walks sees the list as it began. */
    struct leave_during_walk w = {r.id, add_event(r.id, 3, "member", a), 0};
    cr_assert_eq(store_member_each(st, r.id, false, leave_each, &w), STORE_OK);
    cr_assert_eq(w.seen, 2);
    store_tx_rollback(st);
    cr_assert_str_eq(members_of(r.id), "a:admin,b:admin");
    cr_assert_str_eq(members_of(nroom.id), "", "gone with its transaction");

    /* Rooms that share a slot (256 of them) each keep their own answer. */
    store_tx_begin(st);
    struct store_room twin = {0};
    for (int i = 0; twin.id % 256 != r.id % 256; i++) {
        char id[32];
        snprintf(id, sizeof id, "filler-%d", i);
        twin = add_room(a, id);
    }
    store_member_join(st, twin.id, c, "admin", add_event(twin.id, 1, "room.create", c));
    cr_assert_eq(store_tx_commit(st), STORE_OK);
    for (int i = 0; i < 2; i++) {
        cr_assert_str_eq(members_of(r.id), "a:admin,b:admin");
        cr_assert_str_eq(members_of(twin.id), "c:admin");
        cr_assert_eq(store_room_get(st, "room-1", &got), STORE_OK);
        cr_assert_eq(got.id, r.id);
        cr_assert_eq(store_room_get(st, twin.room_id, &got), STORE_OK);
        cr_assert_eq(got.id, twin.id);
    }
    cr_assert_eq(store_room_get(st, "no-such-room", &got), STORE_NOT_FOUND);
    cr_assert_eq(store_member_get(st, 999999, a, &m), STORE_NOT_FOUND);
}

Test(store, client_ids_are_unique_per_user)
{
    store_tx_begin(st);
    int64_t a = add_user("a");
    cr_assert_eq(store_client_id_put(st, a, "c1", 5), STORE_OK);
    cr_assert_eq(store_client_id_put(st, a, "c1", 6), STORE_CONFLICT);
    int64_t pos;
    cr_assert_eq(store_client_id_get(st, a, "c1", &pos), STORE_OK);
    cr_assert_eq(pos, 5);
    cr_assert_eq(store_client_id_get(st, a, "c2", &pos), STORE_NOT_FOUND);
    store_tx_commit(st);
}

/* A push about one event in a 300-member room: one send per live subscription of a present
 * member (not the sender, not a member who left, not a logged-out session), each carrying the
 * payload its owner chose (previews or not), queued by one statement. Measured: the time the
 * loop spends queuing it. */
Test(store, a_room_push_queues_each_members_own_payload_in_one_statement)
{
    enum { N = 300 };
    store_tx_begin(st);
    int64_t ids[N];
    for (int i = 0; i < N; i++) {
        char login[16];
        snprintf(login, sizeof login, "m%03d", i);
        ids[i] = add_user(login);
    }
    struct store_room r = add_room(ids[0], "big-room");
    int64_t pos = add_event(r.id, 1, "room.create", ids[0]);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(store_member_join(st, r.id, ids[i], i ? "member" : "admin", pos), STORE_OK);
        uint8_t h[STORE_TOKEN_HASH] = {(uint8_t)(i & 0xFF), (uint8_t)(i >> 8), 7};
        struct store_session s = {.user_id = ids[i], .created_at = 1, .last_seen = 1};
        cr_assert_eq(store_session_insert(st, h, &s), STORE_OK);
        uint8_t p256dh[65] = {4}, auth[16] = {0};
        char endpoint[64];
        snprintf(endpoint, sizeof endpoint, "https://push.example.net/%d", i);
        int64_t sub = 0;
        cr_assert_eq(store_push_sub_put(st, ids[i], s.id, endpoint, p256dh, auth, 20, 1, &sub),
                     STORE_OK);
        if (i % 3 == 0)
            cr_assert_eq(store_notify_previews_set(st, ids[i], true), STORE_OK);
        if (i == 5)
            cr_assert_eq(store_session_end(st, s.id, 2), STORE_OK);
    }
    cr_assert_eq(store_member_leave(st, r.id, ids[7], pos), STORE_OK);
    store_tx_commit(st);

    struct store_push_room_q q = {.room = r.id,
                                  .pos = pos,
                                  .except = ids[0],
                                  .kind = "hotline",
                                  .dflt = true,
                                  .payload = "{\"plain\":1}",
                                  .preview = "{\"text\":\"x\"}",
                                  .urgency = "high",
                                  .ttl_s = 60,
                                  .next_at = 10,
                                  .now = 1};
    int64_t n = 0;
    store_tx_begin(st);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(store_push_queue_room(st, &q, &n), STORE_OK, "%s", store_errmsg(st));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    store_tx_commit(st);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    fprintf(stderr, "push queue: %lld sends for a %d-member room in %.2f ms\n", (long long)n, N,
            ms);
    /* 300 less the sender, the logged-out one and the one who left. */
    cr_assert_eq(n, N - 3);
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "SELECT count(*) FILTER (WHERE o.payload LIKE '%text%'),"
                                    " count(*) FILTER (WHERE o.payload LIKE '%text%'"
                                    " AND (SELECT previews FROM notify_user nu"
                                    " WHERE nu.user_id = p.user_id) IS NOT 1)"
                                    " FROM push_outbox o JOIN push_subs p ON p.id = o.sub",
                                    -1, &s, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
    /* Previews: every third member (ids 0 (the sender), 3, 6, ... 297): 99 of them. */
    cr_assert_eq(sqlite3_column_int(s, 0), 99);
    cr_assert_eq(sqlite3_column_int(s, 1), 0, "a preview for someone who did not choose it");
    sqlite3_finalize(s);
    sqlite3_close(db);
    cr_assert_lt(ms, 250, "queuing one room push took %.1f ms", ms);
}
