/* store_internal.h - what the store's own files share. Not for use outside store/. */
#ifndef KIZUNA_STORE_INTERNAL_H
#define KIZUNA_STORE_INTERNAL_H

#include <sqlite3.h>

#include "store.h"

#define STORE_CORE_STMTS   32
#define STORE_TALK_STMTS   64
#define STORE_NOTICE_STMTS 48
#define STORE_ADMIN_STMTS  8
#define STORE_E2EE_STMTS   32
#define STORE_FED_STMTS    48
#define STORE_BLOB_STMTS   24
/* Statements of notifications run once per recipient (a roll-call to 3,000 staff runs each
 * 3,000 times in one op): prepared at first use and kept (store_kept). */
enum store_notify_stmt {
    NS_PUSH_QUEUE_USER,
    NS_PUSH_SENT,
    NS_ANSWER_LINK_ADD,
    NS_MAIL_QUEUE,
    NS_REACH_ADD,
    NS_COUNT
};

/* store_user_get and store_session_get remember their last answers (store.c): every request
 * asks for its session and user, ~17,000 instructions per message in statements (issue 16). An
 * entry is good while auth_gen has not moved since it was filled; auth_gen moves on every
 * change to users, sessions or departments (SQLite's update hook, so no writer can forget it)
 * and on every rollback. kizunad is the database's only writer (kizunad.lock), so nothing else
 * changes those rows behind the hook. */
#define STORE_AUTH_CACHE 64
struct store_user_slot {
    uint64_t gen;
    struct store_user u;
};
struct store_session_slot {
    uint64_t gen;
    struct store_session s;
};

/* Rooms with their member lists (store_room_cache.c, which says when an entry goes stale). A
 * slot is good while its gen is room_gen and it holds an entry; room_by_name maps a hash of a
 * room's public id to the slot's room. */
#define STORE_ROOM_CACHE 256
struct store_room_entry;
struct store_room_slot {
    uint64_t gen;
    struct store_room_entry *e;
};

struct store {
    sqlite3 *db;
    sqlite3_stmt *stmt[STORE_CORE_STMTS];     /* store.c */
    sqlite3_stmt *talk[STORE_TALK_STMTS];     /* store_talk.c */
    sqlite3_stmt *notice[STORE_NOTICE_STMTS]; /* store_notice.c */
    sqlite3_stmt *admin[STORE_ADMIN_STMTS];   /* store_admin.c */
    sqlite3_stmt *e2ee[STORE_E2EE_STMTS];     /* store_e2ee.c */
    sqlite3_stmt *fed[STORE_FED_STMTS];       /* store_fed_sync.c, prepared at first use */
    sqlite3_stmt *blob[STORE_BLOB_STMTS];     /* store_blob_fetch.c, at first use */
    sqlite3_stmt *notify[NS_COUNT];           /* store_push.c, store_mail.c, at first use */
    bool tx_open;
    int op_depth;
    /* Messages up to fts_pos are in the full-text index: as of the last commit, now, and
     * when the current op began (savepoints are one level deep). */
    int64_t fts_pos_committed, fts_pos, fts_pos_op;
    /* meta's pos_floor as store_event_insert last read it; store_meta_set and rollbacks
     * clear pos_floor_known (store_talk.c). */
    int64_t pos_floor;
    bool pos_floor_known;
    uint64_t auth_gen; /* starts at 1: a zeroed slot is never good */
    struct store_user_slot user_cache[STORE_AUTH_CACHE];
    struct store_session_slot session_cache[STORE_AUTH_CACHE];
    uint64_t room_gen; /* starts at 1, as auth_gen */
    struct store_room_slot room_cache[STORE_ROOM_CACHE];
    int64_t room_by_name[STORE_ROOM_CACHE];
    char errmsg[256];
    bool disk_error;        /* the last error was a full, read-only or failing disk */
    _Atomic int wal_frames; /* frames in the log after the last commit (store_wal.c) */
};

/* Records sqlite's message for `what` and returns STORE_ERROR. */
enum store_rc store_fail(struct store *st, const char *what);
/* Runs a statement that returns no rows, then resets it; a constraint is STORE_CONFLICT. */
enum store_rc store_step_done(struct store *st, sqlite3_stmt *s, const char *what);
/* Statements run rarely (Web Push, mail, JMA, the record) are prepared per call rather than
 * kept. store_prepare_once: a new statement the caller finalizes, or NULL (STORE_ERROR said
 * why, naming `what`). store_run_once: steps s, which returns no row, and finalizes it; NULL
 * (a failed prepare) is STORE_ERROR, a constraint STORE_CONFLICT. */
sqlite3_stmt *store_prepare_once(struct store *st, const char *sql, const char *what);
enum store_rc store_run_once(struct store *st, sqlite3_stmt *s, const char *what);
/* The statement kept in st->notify[id], prepared from sql at first use (NULL: STORE_ERROR said
 * why, naming what); the caller runs it with store_step_done, which resets it for the next. */
sqlite3_stmt *store_kept(struct store *st, enum store_notify_stmt id, const char *sql,
                         const char *what);
/* Steps s for one integer (its first column) into *out and finalizes it: STORE_NOT_FOUND for
 * no row or NULL, NULL s is STORE_ERROR. */
enum store_rc store_int_once(struct store *st, sqlite3_stmt *s, int64_t *out, const char *what);
/* Resets a statement and clears its bindings. */
void store_finish(sqlite3_stmt *s);
/* Copies a text column (NULL reads as "") into a bounded buffer. */
void store_copy_text(char *dst, size_t cap, sqlite3_stmt *s, int col);
/* Prepares n persistent statements from sql[] into out[]; `what` names them in errors. */
enum store_rc store_prepare_all(struct store *st, const char *const *sql, sqlite3_stmt **out, int n,
                                const char *what, char *err, size_t errlen);
/* Steps a statement that yields one integer (none: STORE_NOT_FOUND), then resets it. */
enum store_rc store_step_int(struct store *st, sqlite3_stmt *s, int64_t *out, const char *what);
/* Prepare store_talk.c's and store_notice.c's statements; called by store_open. */
enum store_rc store_talk_prepare(struct store *st, char *err, size_t errlen);
enum store_rc store_notice_prepare(struct store *st, char *err, size_t errlen);
enum store_rc store_admin_prepare(struct store *st, char *err, size_t errlen);
enum store_rc store_e2ee_prepare(struct store *st, char *err, size_t errlen);
/* Indexes messages written since the last flush (store_talk.c); store_tx_commit calls it. */
enum store_rc store_fts_flush(struct store *st);
enum store_rc store_fts_init(struct store *st, char *err, size_t errlen);

/* The room cache (store_room_cache.c). An entry is built with _new and _add, one call per
 * member row in join order, and handed to store_room_cache_put, which keeps a reference of
 * its own; the builder then releases its reference. _get and _find return the cache's
 * entry, valid until the next store call (hold it across callbacks). */
struct store_room_entry *store_room_entry_new(const struct store_room *room);
int store_room_entry_add(struct store_room_entry *e, const struct store_member *m);
int store_room_cache_put(struct store *st, struct store_room_entry *e);
struct store_room_entry *store_room_entry_hold(struct store_room_entry *e);
void store_room_entry_release(struct store_room_entry *e); /* accepts NULL */
struct store_room_entry *store_room_cache_get(struct store *st, int64_t id);
struct store_room_entry *store_room_cache_find(struct store *st, const char *room_id);
const struct store_room *store_room_entry_room(const struct store_room_entry *e);
size_t store_room_entry_count(const struct store_room_entry *e);
/* Member i in join order into *out; false (nothing written) for a past member unless
 * include_past. */
bool store_room_entry_member_at(const struct store_room_entry *e, size_t i, bool include_past,
                                struct store_member *out);
/* The member row of user_id, past or present; false if there is none. */
bool store_room_entry_member(const struct store_room_entry *e, int64_t user_id,
                             struct store_member *out);
/* One room's entry is stale (a write to its rooms or room_members rows). */
void store_room_forget(struct store *st, int64_t room);
/* Every entry is stale (a users row changed, a rollback). */
void store_rooms_forget_all(struct store *st);
void store_room_cache_free(struct store *st);

#endif
