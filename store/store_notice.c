/* store_notice.c - departments, groups, notices, their recipients and reports. */
#include "store_internal.h"

#include <stdio.h>
#include <string.h>

enum notice_stmt {
    N_DEPT_GET,
    N_DEPT_ADD,
    N_DEPT_EACH,
    N_GROUP_GET,
    N_GROUP_ADD,
    N_GROUP_EACH,
    N_USER_GROUPS,
    N_USER_GROUPS_CLEAR,
    N_GROUP_MEMBER_ADD,
    N_INSERT,
    N_SET_ROOM,
    N_RESOLVE,
    N_JOIN_ROOM,
    N_GET,
    N_FEED,
    N_POSTED,
    N_ALL,
    N_READ,
    N_ACK,
    N_RESPOND,
    N_REVISION_SAVE,
    N_EDIT,
    N_WITHDRAW,
    N_REPORT,
    N_CHOICES,
    N_RECIPIENTS,
    N_NOT_READ,
    N_NOT_ACKED,
    N_NOT_RESPONDED,
    N_REMIND,
    N_LAST_REMIND,
    N_COUNT
};
_Static_assert(N_COUNT <= STORE_NOTICE_STMTS, "raise STORE_NOTICE_STMTS");

/* Columns of a notice plus ?1's recipient state (NULLs when ?1 is no recipient). */
#define NOTICE_COLS                                                                                \
    "n.id, n.room, n.author, a.login, a.name, n.title, n.body, n.category, n.choices,"             \
    " n.audience, n.priority = 'urgent', n.ask_ack, n.pinned, n.expires_at, n.created_at,"         \
    " n.updated_at, n.withdrawn_at, n.revision, r.user_id IS NOT NULL, r.read_at, r.acked_at,"     \
    " r.responded_at, r.reminded_at, r.choice, r.comment"
#define NOTICE_FROM                                                                                \
    " FROM notices n JOIN users a ON a.id = n.author"                                              \
    " LEFT JOIN notice_recipients r ON r.notice = n.id AND r.user_id = ?1"
/* Per recipient, for the "not done" lists: 0 all, 1 unread, 2 unacked, 3 no response. */
#define MISSING_WHERE                                                                              \
    " (?2 = 0 OR (?2 = 1 AND r.read_at IS NULL) OR (?2 = 2 AND r.acked_at IS NULL)"                \
    " OR (?2 = 3 AND r.responded_at IS NULL))"

/* The "not done" lists walk a partial index in (department, user) order and stop at LIMIT. */
#define NOT_DONE(cond)                                                                             \
    "SELECT r.user_id, u.login, u.name, coalesce(d.name, ''), r.read_at, r.acked_at,"              \
    " r.responded_at, r.reminded_at, r.choice, r.comment FROM notice_recipients r"                 \
    " JOIN users u ON u.id = r.user_id LEFT JOIN departments d ON d.id = r.department"             \
    " WHERE r.notice = ?1 AND r." cond " ORDER BY r.department, r.user_id LIMIT ?3"

static const char *const notice_sql[N_COUNT] = {
    [N_DEPT_GET] = "SELECT id FROM departments WHERE name = ?",
    [N_DEPT_ADD] = "INSERT INTO departments (name, created_at) VALUES (?, ?)",
    [N_DEPT_EACH] = "SELECT d.id, d.name, (SELECT count(*) FROM users u WHERE u.department = d.id"
                    " AND u.disabled = 0) FROM departments d ORDER BY d.name",
    [N_GROUP_GET] = "SELECT id FROM groups WHERE name = ?",
    [N_GROUP_ADD] = "INSERT INTO groups (name, created_at) VALUES (?, ?)",
    [N_GROUP_EACH] = "SELECT g.id, g.name, (SELECT count(*) FROM group_members m JOIN users u"
                     " ON u.id = m.user_id WHERE m.group_id = g.id AND u.disabled = 0)"
                     " FROM groups g ORDER BY g.name",
    [N_USER_GROUPS] = "SELECT g.id, g.name, 0 FROM group_members m JOIN groups g"
                      " ON g.id = m.group_id WHERE m.user_id = ? ORDER BY g.name",
    [N_USER_GROUPS_CLEAR] = "DELETE FROM group_members WHERE user_id = ?",
    [N_GROUP_MEMBER_ADD] = "INSERT OR IGNORE INTO group_members (group_id, user_id) VALUES (?, ?)",
    [N_INSERT] = "INSERT INTO notices (author, title, body, category, priority, ask_ack, choices,"
                 " audience, pinned, expires_at, created_at, updated_at)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [N_SET_ROOM] = "UPDATE notices SET room = ? WHERE id = ?",
    [N_RESOLVE] = "INSERT INTO notice_recipients (notice, user_id, department)"
                  " SELECT ?1, u.id, u.department FROM users u WHERE u.disabled = 0 AND u.id != ?2"
                  " AND (?3 OR u.department IN (SELECT value FROM json_each(?4))"
                  " OR u.id IN (SELECT user_id FROM group_members WHERE group_id IN"
                  " (SELECT value FROM json_each(?5)))"
                  " OR u.id IN (SELECT value FROM json_each(?6)))",
    [N_JOIN_ROOM] = "INSERT INTO room_members (room, user_id, role, joined_pos)"
                    " SELECT ?2, user_id, 'member', ?3 FROM notice_recipients WHERE notice = ?1",
    [N_GET] = "SELECT " NOTICE_COLS NOTICE_FROM " WHERE n.id = ?2",
    [N_FEED] = "SELECT " NOTICE_COLS " FROM notice_recipients r JOIN notices n ON n.id = r.notice"
               " JOIN users a ON a.id = n.author WHERE r.user_id = ?1"
               " ORDER BY n.withdrawn_at IS NULL DESC, r.read_at IS NULL DESC,"
               " n.priority = 'urgent' DESC, n.pinned DESC, n.id DESC LIMIT ?2",
    [N_POSTED] = "SELECT " NOTICE_COLS NOTICE_FROM " WHERE n.author = ?1 ORDER BY n.id DESC"
                 " LIMIT ?2",
    /* Every notice, for an admin's way to any report; ?1 the admin (its own recipient row). */
    [N_ALL] = "SELECT " NOTICE_COLS NOTICE_FROM " ORDER BY n.id DESC LIMIT ?2",
    [N_READ] = "UPDATE notice_recipients SET read_at = ? WHERE notice = ? AND user_id = ?"
               " AND read_at IS NULL",
    [N_ACK] = "UPDATE notice_recipients SET acked_at = ?1, read_at = coalesce(read_at, ?1)"
              " WHERE notice = ?2 AND user_id = ?3 AND acked_at IS NULL",
    [N_RESPOND] = "UPDATE notice_recipients SET choice = ?1, comment = ?2, responded_at = ?3,"
                  " read_at = coalesce(read_at, ?3) WHERE notice = ?4 AND user_id = ?5",
    [N_REVISION_SAVE] = "INSERT INTO notice_revisions (notice, revision, title, body, edited_by,"
                        " edited_at) SELECT id, revision, title, body, ?2, ?3 FROM notices"
                        " WHERE id = ?1",
    [N_EDIT] = "UPDATE notices SET title = ?, body = ?, updated_at = ?, revision = revision + 1"
               " WHERE id = ? RETURNING revision",
    [N_WITHDRAW] = "UPDATE notices SET withdrawn_at = ?, updated_at = ? WHERE id = ?"
                   " AND withdrawn_at IS NULL",
    [N_REPORT] = "SELECT coalesce(d.name, ''), count(*), count(r.read_at), count(r.acked_at),"
                 " count(r.responded_at) FROM notice_recipients r LEFT JOIN departments d"
                 " ON d.id = r.department WHERE r.notice = ? GROUP BY r.department"
                 " ORDER BY coalesce(d.name, '')",
    [N_CHOICES] = "SELECT coalesce(d.name, ''), r.choice, count(*) FROM notice_recipients r"
                  " LEFT JOIN departments d ON d.id = r.department WHERE r.notice = ?"
                  " AND r.choice IS NOT NULL GROUP BY r.department, r.choice"
                  " ORDER BY coalesce(d.name, ''), r.choice",
    [N_RECIPIENTS] =
        "SELECT r.user_id, u.login, u.name, coalesce(d.name, ''), r.read_at,"
        " r.acked_at, r.responded_at, r.reminded_at, r.choice, r.comment"
        " FROM notice_recipients r JOIN users u ON u.id = r.user_id"
        " LEFT JOIN departments d ON d.id = r.department"
        " WHERE r.notice = ?1 AND" MISSING_WHERE " ORDER BY coalesce(d.name, ''), u.login",
    [N_NOT_READ] = NOT_DONE("read_at IS NULL"),
    [N_NOT_ACKED] = NOT_DONE("acked_at IS NULL"),
    [N_NOT_RESPONDED] = NOT_DONE("responded_at IS NULL"),
    [N_REMIND] =
        "UPDATE notice_recipients AS r SET reminded_at = ?3 WHERE r.notice = ?1 AND" MISSING_WHERE
        " RETURNING user_id",
    [N_LAST_REMIND] =
        "SELECT coalesce(max(reminded_at), 0) FROM notice_recipients WHERE notice = ?",
};

enum store_rc store_notice_prepare(struct store *st, char *err, size_t errlen)
{
    return store_prepare_all(st, notice_sql, st->notice, N_COUNT, "notice", err, errlen);
}

static sqlite3_stmt *stmt(struct store *st, enum notice_stmt id)
{
    return st->notice[id];
}

static enum store_rc step_changed(struct store *st, sqlite3_stmt *s, const char *what,
                                  bool *changed)
{
    enum store_rc rc = store_step_done(st, s, what);
    if (changed)
        *changed = rc == STORE_OK && sqlite3_changes(st->db) > 0;
    return rc;
}

/* ---- departments and groups ---- */

static enum store_rc find_named(struct store *st, enum notice_stmt get, enum notice_stmt add,
                                const char *name, bool create, int64_t now, int64_t *id)
{
    sqlite3_stmt *s = stmt(st, get);
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_OK;
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(s, 0);
    else if (rc == SQLITE_DONE)
        r = STORE_NOT_FOUND;
    else
        r = store_fail(st, "name lookup");
    store_finish(s);
    if (r != STORE_NOT_FOUND || !create)
        return r;
    s = stmt(st, add);
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, now);
    if ((r = store_step_done(st, s, "name insert")) == STORE_OK)
        *id = sqlite3_last_insert_rowid(st->db);
    return r;
}

enum store_rc store_dept_find(struct store *st, const char *name, bool create, int64_t now,
                              int64_t *id)
{
    return find_named(st, N_DEPT_GET, N_DEPT_ADD, name, create, now, id);
}

enum store_rc store_group_find(struct store *st, const char *name, bool create, int64_t now,
                               int64_t *id)
{
    return find_named(st, N_GROUP_GET, N_GROUP_ADD, name, create, now, id);
}

static enum store_rc walk_named(struct store *st, sqlite3_stmt *s, store_named_fn fn, void *ctx)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (fn(ctx, sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1),
               sqlite3_column_int64(s, 2)) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "list");
    store_finish(s);
    return r;
}

enum store_rc store_dept_each(struct store *st, store_named_fn fn, void *ctx)
{
    return walk_named(st, stmt(st, N_DEPT_EACH), fn, ctx);
}

enum store_rc store_group_each(struct store *st, store_named_fn fn, void *ctx)
{
    return walk_named(st, stmt(st, N_GROUP_EACH), fn, ctx);
}

enum store_rc store_user_groups_each(struct store *st, int64_t user_id, store_named_fn fn,
                                     void *ctx)
{
    sqlite3_stmt *s = stmt(st, N_USER_GROUPS);
    sqlite3_bind_int64(s, 1, user_id);
    return walk_named(st, s, fn, ctx);
}

enum store_rc store_user_groups_clear(struct store *st, int64_t user_id)
{
    sqlite3_stmt *s = stmt(st, N_USER_GROUPS_CLEAR);
    sqlite3_bind_int64(s, 1, user_id);
    return store_step_done(st, s, "groups clear");
}

enum store_rc store_group_add_member(struct store *st, int64_t group_id, int64_t user_id)
{
    sqlite3_stmt *s = stmt(st, N_GROUP_MEMBER_ADD);
    sqlite3_bind_int64(s, 1, group_id);
    sqlite3_bind_int64(s, 2, user_id);
    return store_step_done(st, s, "group member");
}

/* ---- notices ---- */

enum store_rc store_notice_insert(struct store *st, struct store_notice_new *n)
{
    sqlite3_stmt *s = stmt(st, N_INSERT);
    sqlite3_bind_int64(s, 1, n->author);
    sqlite3_bind_text(s, 2, n->title, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, n->body, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, n->category ? n->category : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, n->urgent ? "urgent" : "normal", -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 6, n->ask_ack);
    if (n->choices)
        sqlite3_bind_text(s, 7, n->choices, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 8, n->audience, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 9, n->pinned);
    if (n->expires_at)
        sqlite3_bind_int64(s, 10, n->expires_at);
    sqlite3_bind_int64(s, 11, n->now);
    sqlite3_bind_int64(s, 12, n->now);
    enum store_rc rc = store_step_done(st, s, "notice insert");
    if (rc == STORE_OK)
        n->id = sqlite3_last_insert_rowid(st->db);
    return rc;
}

enum store_rc store_notice_set_room(struct store *st, int64_t id, int64_t room)
{
    sqlite3_stmt *s = stmt(st, N_SET_ROOM);
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_int64(s, 2, id);
    return store_step_done(st, s, "notice room");
}

enum store_rc store_notice_resolve(struct store *st, int64_t notice, int64_t author, bool all,
                                   const char *dept_ids, const char *group_ids,
                                   const char *user_ids, int64_t *count)
{
    sqlite3_stmt *s = stmt(st, N_RESOLVE);
    sqlite3_bind_int64(s, 1, notice);
    sqlite3_bind_int64(s, 2, author);
    sqlite3_bind_int(s, 3, all);
    sqlite3_bind_text(s, 4, dept_ids, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, group_ids, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, user_ids, -1, SQLITE_STATIC);
    enum store_rc rc = store_step_done(st, s, "notice audience");
    *count = rc == STORE_OK ? sqlite3_changes(st->db) : 0;
    return rc;
}

enum store_rc store_notice_join_room(struct store *st, int64_t notice, int64_t room, int64_t pos)
{
    sqlite3_stmt *s = stmt(st, N_JOIN_ROOM);
    sqlite3_bind_int64(s, 1, notice);
    sqlite3_bind_int64(s, 2, room);
    sqlite3_bind_int64(s, 3, pos);
    store_room_forget(st, room); /* room_members: see store_room_cache.c */
    return store_step_done(st, s, "notice recipients");
}

static const char *text_or_null(sqlite3_stmt *s, int col)
{
    return sqlite3_column_type(s, col) == SQLITE_NULL ? NULL
                                                      : (const char *)sqlite3_column_text(s, col);
}

static void read_notice(sqlite3_stmt *s, struct store_notice *n)
{
    memset(n, 0, sizeof *n);
    n->id = sqlite3_column_int64(s, 0);
    n->room = sqlite3_column_int64(s, 1);
    n->author = sqlite3_column_int64(s, 2);
    n->author_login = (const char *)sqlite3_column_text(s, 3);
    n->author_name = (const char *)sqlite3_column_text(s, 4);
    n->title = (const char *)sqlite3_column_text(s, 5);
    n->body = (const char *)sqlite3_column_text(s, 6);
    n->category = (const char *)sqlite3_column_text(s, 7);
    n->choices = text_or_null(s, 8);
    n->audience = (const char *)sqlite3_column_text(s, 9);
    n->urgent = sqlite3_column_int(s, 10) != 0;
    n->ask_ack = sqlite3_column_int(s, 11) != 0;
    n->pinned = sqlite3_column_int(s, 12) != 0;
    n->expires_at = sqlite3_column_int64(s, 13);
    n->created_at = sqlite3_column_int64(s, 14);
    n->updated_at = sqlite3_column_int64(s, 15);
    n->withdrawn_at = sqlite3_column_int64(s, 16);
    n->revision = sqlite3_column_int64(s, 17);
    n->is_recipient = sqlite3_column_int(s, 18) != 0;
    n->read_at = sqlite3_column_int64(s, 19);
    n->acked_at = sqlite3_column_int64(s, 20);
    n->responded_at = sqlite3_column_int64(s, 21);
    n->reminded_at = sqlite3_column_int64(s, 22);
    n->choice = sqlite3_column_type(s, 23) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 23);
    n->comment = text_or_null(s, 24);
}

static enum store_rc walk_notices(struct store *st, sqlite3_stmt *s, store_notice_fn fn, void *ctx,
                                  bool *any)
{
    struct store_notice n;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        read_notice(s, &n);
        if (any)
            *any = true;
        if (fn(ctx, &n) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "notices");
    store_finish(s);
    return r;
}

enum store_rc store_notice_get(struct store *st, int64_t id, int64_t user_id, store_notice_fn fn,
                               void *ctx)
{
    sqlite3_stmt *s = stmt(st, N_GET);
    sqlite3_bind_int64(s, 1, user_id);
    sqlite3_bind_int64(s, 2, id);
    bool any = false;
    enum store_rc rc = walk_notices(st, s, fn, ctx, &any);
    return rc == STORE_OK && !any ? STORE_NOT_FOUND : rc;
}

/* The lists: statement `which` with ?1 a user (the reader, the author or the viewer) and ?2 the
 * limit, in the statement's order. */
static enum store_rc list_notices(struct store *st, enum notice_stmt which, int64_t user_id,
                                  int limit, store_notice_fn fn, void *ctx)
{
    sqlite3_stmt *s = stmt(st, which);
    sqlite3_bind_int64(s, 1, user_id);
    sqlite3_bind_int(s, 2, limit);
    return walk_notices(st, s, fn, ctx, NULL);
}

enum store_rc store_notice_feed(struct store *st, int64_t user_id, int limit, store_notice_fn fn,
                                void *ctx)
{
    return list_notices(st, N_FEED, user_id, limit, fn, ctx);
}

enum store_rc store_notice_posted(struct store *st, int64_t author, int limit, store_notice_fn fn,
                                  void *ctx)
{
    return list_notices(st, N_POSTED, author, limit, fn, ctx);
}

enum store_rc store_notice_all(struct store *st, int64_t viewer, int limit, store_notice_fn fn,
                               void *ctx)
{
    return list_notices(st, N_ALL, viewer, limit, fn, ctx);
}

enum store_rc store_notice_read(struct store *st, int64_t notice, int64_t user_id, int64_t now,
                                bool *changed)
{
    sqlite3_stmt *s = stmt(st, N_READ);
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int64(s, 2, notice);
    sqlite3_bind_int64(s, 3, user_id);
    return step_changed(st, s, "notice read", changed);
}

enum store_rc store_notice_ack(struct store *st, int64_t notice, int64_t user_id, int64_t now,
                               bool *changed)
{
    sqlite3_stmt *s = stmt(st, N_ACK);
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int64(s, 2, notice);
    sqlite3_bind_int64(s, 3, user_id);
    return step_changed(st, s, "notice ack", changed);
}

enum store_rc store_notice_respond(struct store *st, int64_t notice, int64_t user_id,
                                   int64_t choice, const char *comment, int64_t now)
{
    sqlite3_stmt *s = stmt(st, N_RESPOND);
    sqlite3_bind_int64(s, 1, choice);
    if (comment)
        sqlite3_bind_text(s, 2, comment, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now);
    sqlite3_bind_int64(s, 4, notice);
    sqlite3_bind_int64(s, 5, user_id);
    bool changed;
    enum store_rc rc = step_changed(st, s, "notice response", &changed);
    return rc == STORE_OK && !changed ? STORE_NOT_FOUND : rc;
}

enum store_rc store_notice_edit(struct store *st, int64_t notice, const char *title,
                                const char *body, int64_t editor, int64_t now, int64_t *revision)
{
    sqlite3_stmt *s = stmt(st, N_REVISION_SAVE);
    sqlite3_bind_int64(s, 1, notice);
    sqlite3_bind_int64(s, 2, editor);
    sqlite3_bind_int64(s, 3, now);
    enum store_rc rc = store_step_done(st, s, "notice revision");
    if (rc != STORE_OK)
        return rc;
    s = stmt(st, N_EDIT);
    sqlite3_bind_text(s, 1, title, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, body, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now);
    sqlite3_bind_int64(s, 4, notice);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        *revision = sqlite3_column_int64(s, 0);
    else
        rc = step == SQLITE_DONE ? STORE_NOT_FOUND : store_fail(st, "notice edit");
    /* RETURNING: step to the end so the UPDATE completes before the reset. */
    while (step == SQLITE_ROW)
        step = sqlite3_step(s);
    store_finish(s);
    return rc;
}

enum store_rc store_notice_withdraw(struct store *st, int64_t notice, int64_t now)
{
    sqlite3_stmt *s = stmt(st, N_WITHDRAW);
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int64(s, 2, now);
    sqlite3_bind_int64(s, 3, notice);
    bool changed;
    enum store_rc rc = step_changed(st, s, "notice withdraw", &changed);
    return rc == STORE_OK && !changed ? STORE_CONFLICT : rc;
}

enum store_rc store_notice_report(struct store *st, int64_t notice, store_report_fn fn, void *ctx)
{
    sqlite3_stmt *s = stmt(st, N_REPORT);
    sqlite3_bind_int64(s, 1, notice);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_report_row r = {(const char *)sqlite3_column_text(s, 0),
                                     sqlite3_column_int64(s, 1), sqlite3_column_int64(s, 2),
                                     sqlite3_column_int64(s, 3), sqlite3_column_int64(s, 4)};
        if (fn(ctx, &r) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "notice report");
    store_finish(s);
    return r;
}

enum store_rc store_notice_choice_counts(struct store *st, int64_t notice, store_choice_fn fn,
                                         void *ctx)
{
    sqlite3_stmt *s = stmt(st, N_CHOICES);
    sqlite3_bind_int64(s, 1, notice);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (fn(ctx, (const char *)sqlite3_column_text(s, 0), sqlite3_column_int64(s, 1),
               sqlite3_column_int64(s, 2)) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "notice choices");
    store_finish(s);
    return r;
}

enum store_rc store_notice_recipients(struct store *st, int64_t notice, enum store_missing which,
                                      int64_t limit, store_recipient_fn fn, void *ctx)
{
    static const enum notice_stmt by_which[] = {
        [STORE_ALL_RECIPIENTS] = N_RECIPIENTS,
        [STORE_NOT_READ] = N_NOT_READ,
        [STORE_NOT_ACKED] = N_NOT_ACKED,
        [STORE_NOT_RESPONDED] = N_NOT_RESPONDED,
    };
    sqlite3_stmt *s = stmt(st, by_which[which]);
    sqlite3_bind_int64(s, 1, notice);
    if (which == STORE_ALL_RECIPIENTS)
        sqlite3_bind_int(s, 2, 0);
    sqlite3_bind_int64(s, 3, limit);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_recipient r = {
            .user_id = sqlite3_column_int64(s, 0),
            .login = (const char *)sqlite3_column_text(s, 1),
            .name = (const char *)sqlite3_column_text(s, 2),
            .department = (const char *)sqlite3_column_text(s, 3),
            .read_at = sqlite3_column_int64(s, 4),
            .acked_at = sqlite3_column_int64(s, 5),
            .responded_at = sqlite3_column_int64(s, 6),
            .reminded_at = sqlite3_column_int64(s, 7),
            .choice = sqlite3_column_type(s, 8) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 8),
            .comment = text_or_null(s, 9),
        };
        if (fn(ctx, &r) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "notice recipients");
    store_finish(s);
    return r;
}

enum store_rc store_notice_remind(struct store *st, int64_t notice, enum store_missing which,
                                  int64_t now, store_id_fn fn, void *ctx)
{
    sqlite3_stmt *s = stmt(st, N_REMIND);
    sqlite3_bind_int64(s, 1, notice);
    sqlite3_bind_int(s, 2, (int)which);
    sqlite3_bind_int64(s, 3, now);
    int rc;
    /* RETURNING rows are all stepped: the UPDATE is complete only at SQLITE_DONE. */
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        fn(ctx, sqlite3_column_int64(s, 0));
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "notice remind");
    store_finish(s);
    return r;
}

enum store_rc store_notice_last_remind(struct store *st, int64_t notice, int64_t *at)
{
    sqlite3_stmt *s = stmt(st, N_LAST_REMIND);
    sqlite3_bind_int64(s, 1, notice);
    int rc = sqlite3_step(s);
    *at = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    enum store_rc r = rc == SQLITE_ROW ? STORE_OK : store_fail(st, "notice last remind");
    store_finish(s);
    return r;
}
