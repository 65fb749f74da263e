/* store.h - Kizuna's durable state: one SQLite database per data directory.
 *
 * All SQL in Kizuna lives behind this header. Callers pass and receive plain C structs; they
 * never see SQL text or sqlite3 handles. One struct store is owned by one thread (the server's
 * event loop); it is not safe to share between threads.
 *
 * Writes happen inside a transaction opened with store_tx_begin() and closed with
 * store_tx_commit(); the server groups all writes of one loop turn into one transaction and
 * acknowledges them only after the commit returns (DESIGN.md, "group commit"). Each request
 * runs inside a savepoint (store_op_begin/store_op_end) so that one failed request rolls back
 * alone without disturbing the others in the same transaction.
 */
#ifndef KIZUNA_STORE_H
#define KIZUNA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum store_rc {
    STORE_OK = 0,
    STORE_NOT_FOUND, /* no such row */
    STORE_CONFLICT,  /* a uniqueness rule was broken (duplicate login, ...) */
    STORE_TOO_NEW,   /* the database was written by a newer Kizuna */
    STORE_ERROR,     /* I/O, corruption, full disk, misuse: see store_errmsg() */
};

/* A login of this server's own accounts is at most STORE_LOCAL_LOGIN_MAX bytes; a user of
 * another server is known here as login@server (store_fed_sync.c), at most STORE_LOGIN_MAX. */
#define STORE_LOCAL_LOGIN_MAX 64
#define STORE_LOGIN_MAX       128 /* bytes, not counting the NUL */
#define STORE_NAME_MAX        255 /* bytes of UTF-8 */
#define STORE_ROLE_MAX        15
#define STORE_HASH_MAX        128 /* >= crypto_pwhash_STRBYTES */
#define STORE_DEVICE_MAX      127
#define STORE_ADDR_MAX        63
#define STORE_TOKEN_HASH      32 /* bytes of BLAKE2b over a session token */
#define STORE_EMAIL_MAX       254
#define STORE_PHONE_MAX       32

struct store;

struct store_options {
    const char *path;    /* database file; created if missing */
    bool sync_full;      /* PRAGMA synchronous=FULL (true) or NORMAL */
    int busy_timeout_ms; /* how long to wait on a lock held by another process */
    int cache_kib;       /* SQLite page cache; 0: SQLite's default */
};

struct store_user {
    int64_t id;
    char login[STORE_LOGIN_MAX + 1];
    char name[STORE_NAME_MAX + 1];
    char role[STORE_ROLE_MAX + 1];
    bool disabled;
    bool must_change_password;
    char pw_hash[STORE_HASH_MAX + 1];
    int64_t created_at; /* milliseconds since the Unix epoch */
    int64_t updated_at;
    int64_t department; /* 0: none */
    char department_name[STORE_NAME_MAX + 1];
    char email[STORE_EMAIL_MAX + 1];
    char phone[STORE_PHONE_MAX + 1];
    int64_t expires_at; /* ms; the server disables the account then (0: never) */
    int64_t invite;     /* the invitation that created the account (0: none) */
    char home[64];      /* "": this server's account; else the server of a remote actor */
};

struct store_session {
    int64_t id;
    int64_t user_id;
    char device[STORE_DEVICE_MAX + 1];
    char address[STORE_ADDR_MAX + 1];
    int64_t created_at;
    int64_t last_seen;
    bool shared; /* a loaner device: the session ends after an idle time */
};

/* Opens (creating if needed) and migrates the database. On success *out is owned by the
 * caller and released with store_close(). On failure a message is written to err. */
enum store_rc store_open(const struct store_options *opt, struct store **out, char *err,
                         size_t errlen);
/* Checkpoints the WAL, finalizes every statement and closes. Accepts NULL. */
void store_close(struct store *st);
/* The message of the last STORE_ERROR; valid until the next store call. */
const char *store_errmsg(struct store *st);
/* Whether the last STORE_ERROR came from the disk (full, read-only, failing): the server then
 * refuses writes for a while instead of calling them internal errors. */
bool store_disk_error(const struct store *st);
/* The schema version this binary writes (the number of migrations it knows). */
int store_schema_latest(void);
int store_schema_version(struct store *st);

/* Transactions. store_tx_begin() is a no-op if one is already open. */
enum store_rc store_tx_begin(struct store *st);
enum store_rc store_tx_commit(struct store *st);
void store_tx_rollback(struct store *st);
bool store_tx_is_open(const struct store *st);
/* Deferred durability (store_wal.c), for a server that fdatasyncs the -wal file on a thread of
 * its own before it tells anyone about a commit: from now on COMMIT writes the log without
 * waiting for the disk, and the log is checkpointed only through a store_ckpt. */
enum store_rc store_wal_defer_sync(struct store *st);
/* Lets the loop's connection checkpoint by itself again every `frames` frames (a fallback). */
void store_wal_autocheckpoint(struct store *st, int frames);
/* Copies what is left of the log into the database on this connection (no transaction may be
 * open), so that its next write transaction starts the log over. */
enum store_rc store_wal_checkpoint(struct store *st);
/* The database file's path (owned by st). */
const char *store_file_path(struct store *st);
/* Frames in the write-ahead log after the last commit; safe to read from any thread. */
int store_wal_frames(struct store *st);
/* A second connection to the database at path that only checkpoints, for one other thread;
 * owned by the caller, released with store_ckpt_close(). NULL with a message in err. */
struct store_ckpt;
struct store_ckpt *store_ckpt_open(const char *path, char *err, size_t errlen);
/* Copies what it can of the log into the database without blocking the writer; the frames in
 * the log and those copied go to *log_frames and *copied. */
enum store_rc store_ckpt_run(struct store_ckpt *ck, int *log_frames, int *copied);
const char *store_ckpt_errmsg(struct store_ckpt *ck);
void store_ckpt_close(struct store_ckpt *ck);
/* Savepoint around one request; store_op_end(st, false) undoes only that request. */
enum store_rc store_op_begin(struct store *st);
enum store_rc store_op_end(struct store *st, bool keep);

/* Users. store_user_insert fills u->id, created_at and updated_at from `now`. */
enum store_rc store_user_insert(struct store *st, struct store_user *u, int64_t now);
enum store_rc store_user_get(struct store *st, int64_t id, struct store_user *out);
enum store_rc store_user_get_by_login(struct store *st, const char *login, struct store_user *out);
enum store_rc store_user_set_disabled(struct store *st, int64_t id, bool disabled, int64_t now);
enum store_rc store_user_set_password(struct store *st, int64_t id, const char *pw_hash,
                                      bool must_change, int64_t now);
/* Writes name, role, department (0: none), email, phone and expires_at of u->id. */
enum store_rc store_user_update(struct store *st, const struct store_user *u, int64_t now);
enum store_rc store_user_count(struct store *st, int64_t *out);
/* Calls fn for every user in login order; a nonzero return from fn stops the walk. The
 * struct passed to fn is only valid during the call. */
typedef int (*store_user_fn)(void *ctx, const struct store_user *u);
enum store_rc store_user_each(struct store *st, store_user_fn fn, void *ctx);

/* Sessions. Only a hash of the token is stored. Fills s->id. */
enum store_rc store_session_insert(struct store *st, const uint8_t token_hash[STORE_TOKEN_HASH],
                                   struct store_session *s);
/* Finds a session that has not ended. */
enum store_rc store_session_lookup(struct store *st, const uint8_t token_hash[STORE_TOKEN_HASH],
                                   struct store_session *out);
/* A session by id, if it has not ended. */
enum store_rc store_session_get(struct store *st, int64_t id, struct store_session *out);
enum store_rc store_session_touch(struct store *st, int64_t id, int64_t now);
typedef int (*store_session_fn)(void *ctx, const struct store_session *s);
/* A user's live sessions, most recently seen first. */
enum store_rc store_session_each(struct store *st, int64_t user_id, store_session_fn fn, void *ctx);
enum store_rc store_session_end(struct store *st, int64_t id, int64_t now);
/* Ends every live session of a user except `keep_id` (0 keeps none). */
enum store_rc store_session_end_user(struct store *st, int64_t user_id, int64_t keep_id,
                                     int64_t now);

/* Up to max live shared sessions last seen before `before` (ms), into out[0..*n). */
enum store_rc store_session_idle_shared(struct store *st, int64_t before, struct store_session *out,
                                        int max, int *n);
/* Up to max ids of enabled users whose expiry time is at or before now, into ids[0..*n). */
enum store_rc store_user_expired(struct store *st, int64_t now, int64_t *ids, int max, int *n);

/* Server facts (the meta table): STORE_NOT_FOUND if never set. */
enum store_rc store_meta_get(struct store *st, const char *key, int64_t *out);
enum store_rc store_meta_set(struct store *st, const char *key, int64_t value);
/* Copies the database at src (which a running server may be writing) into a new file dst, as
 * one consistent snapshot, with SQLite's online backup API. Works on paths, not on a struct
 * store: the backup is another process than the server. */
enum store_rc store_backup_file(const char *src, const char *dst, char *err, size_t errlen);
/* Calls fn for every blob a database file lists (read-only; a nonzero return stops). */
typedef int (*store_blob_fn)(void *ctx, const char *id, int64_t size);
enum store_rc store_blobs_in_file(const char *path, store_blob_fn fn, void *ctx, char *err,
                                  size_t errlen);
/* PRAGMA integrity_check on a database file; the first problem goes to err. */
enum store_rc store_check_file(const char *path, char *err, size_t errlen);

/* ---- invitations (store_admin.c) ---- */

#define STORE_INVITE_GROUPS_MAX 1023
#define STORE_NOTE_MAX          255

struct store_invite {
    int64_t id;
    uint8_t code_hash[STORE_TOKEN_HASH];
    char role[STORE_ROLE_MAX + 1];
    int64_t department; /* 0: none */
    char department_name[STORE_NAME_MAX + 1];
    char groups[STORE_INVITE_GROUPS_MAX + 1]; /* names joined by ';' */
    char note[STORE_NOTE_MAX + 1];
    int64_t uses_max, uses;
    int64_t expires_at;         /* ms: the code stops working */
    int64_t account_expires_at; /* ms: accounts made from it are disabled then (0: never) */
    int64_t created_by;
    char created_by_login[STORE_LOGIN_MAX + 1];
    int64_t created_at;
    int64_t revoked_at; /* 0: not revoked */
};
/* Fills inv->id. */
enum store_rc store_invite_insert(struct store *st, struct store_invite *inv);
enum store_rc store_invite_get(struct store *st, int64_t id, struct store_invite *out);
enum store_rc store_invite_get_by_hash(struct store *st, const uint8_t hash[STORE_TOKEN_HASH],
                                       struct store_invite *out);
/* Counts one use; STORE_CONFLICT if none is left. */
enum store_rc store_invite_use(struct store *st, int64_t id);
enum store_rc store_invite_revoke(struct store *st, int64_t id, int64_t now);
typedef int (*store_invite_fn)(void *ctx, const struct store_invite *inv);
/* Every invitation, newest first. */
enum store_rc store_invite_each(struct store *st, store_invite_fn fn, void *ctx);

/* ---- devices, blobs and uploads for end-to-end encrypted photos (store_e2ee.c) ---- */

#define STORE_DEVICE_ID_MAX 31 /* base64url of 16 bytes is 22 */
#define STORE_BLOB_ID_LEN   64 /* lowercase hex of BLAKE2b-256 */
#define STORE_UPLOAD_ID_MAX 31

struct store_device {
    int64_t id;
    char device_id[STORE_DEVICE_ID_MAX + 1];
    int64_t user_id;
    char login[STORE_LOGIN_MAX + 1]; /* filled by reads */
    int64_t session_id;              /* the session that registered it (0: none left) */
    char label[STORE_DEVICE_MAX + 1];
    uint8_t sign_pk[32], box_pk[32], self_sig[64];
    int64_t created_at;
    int64_t revoked_at;  /* 0: active */
    int64_t revoked_pos; /* the newest position when it was revoked (0: active) */
    int64_t joined_pos;  /* store_device_each_in_room: when its owner joined the room */
};
/* Fills d->id; STORE_CONFLICT if the device id exists. */
enum store_rc store_device_insert(struct store *st, struct store_device *d);
enum store_rc store_device_get(struct store *st, const char *device_id, struct store_device *out);
/* Sets revoked_at to now and revoked_pos to the newest position (the next event comes after). */
enum store_rc store_device_revoke(struct store *st, int64_t id, int64_t now);
/* Binds an active device to the session that registered it again (a new login). */
enum store_rc store_device_rebind(struct store *st, int64_t id, int64_t session_id);
/* Replaces an active device's self-signature (one made before names were login@server). */
enum store_rc store_device_resign(struct store *st, int64_t id, const uint8_t self_sig[64]);
/* The active devices registered by a session (at most max, into out[0..*n)). */
enum store_rc store_device_by_session(struct store *st, int64_t session_id,
                                      struct store_device *out, int max, int *n);
typedef int (*store_device_fn)(void *ctx, const struct store_device *d);
/* A user's devices, revoked ones too, oldest first. */
enum store_rc store_device_each_of_user(struct store *st, int64_t user_id, store_device_fn fn,
                                        void *ctx);
/* The devices that receive a room's keys: active, with a live session, of current members;
 * by login then age. */
enum store_rc store_device_each_in_room(struct store *st, int64_t room, store_device_fn fn,
                                        void *ctx);
/* Whether device_id is one of store_device_each_in_room's devices of the room. */
enum store_rc store_device_current_in_room(struct store *st, int64_t room, const char *device_id,
                                           bool *out);
/* Records that an e2ee.keys event of the room carried the epoch's key to device_id (the
 * server cannot read the key: it sees who it was sealed to). Recording twice is a no-op. */
enum store_rc store_epoch_holder_add(struct store *st, int64_t room, const char *epoch,
                                     const char *device_id);
/* A device the epoch's key went to that is no longer one of the room's current devices
 * (revoked, session ended, owner left), into device_id; "" if every one still is. */
enum store_rc store_epoch_holder_gone(struct store *st, int64_t room, const char *epoch,
                                      char device_id[STORE_DEVICE_ID_MAX + 1]);

/* One version of a user's signed device list (media.h: the encoding, and who signed it). */
#define STORE_DEVLIST_MAX 4400 /* media.h's MEDIA_DEVLIST_ENCODED_MAX, with room to spare */
struct store_devlist {
    int64_t user_id;
    char login[STORE_LOGIN_MAX + 1]; /* filled by reads */
    int64_t seq;
    unsigned char list[STORE_DEVLIST_MAX];
    size_t len;
    char by[STORE_DEVICE_ID_MAX + 1];
    uint8_t sig[64];
    int64_t created_at;
};
/* STORE_CONFLICT if the user already has a version with this seq. */
enum store_rc store_devlist_insert(struct store *st, const struct store_devlist *d);
/* The user's newest version; STORE_NOT_FOUND if there is none. */
enum store_rc store_devlist_latest(struct store *st, int64_t user_id, struct store_devlist *out);
/* d is valid during the call only. */
typedef int (*store_devlist_fn)(void *ctx, const struct store_devlist *d);
/* Every version of a user's list, oldest first. */
enum store_rc store_devlist_each_of_user(struct store *st, int64_t user_id, store_devlist_fn fn,
                                         void *ctx);
/* The newest version of each current member of a room that has one, by login. */
enum store_rc store_devlist_each_in_room(struct store *st, int64_t room, store_devlist_fn fn,
                                         void *ctx);

struct store_upload {
    char id[STORE_UPLOAD_ID_MAX + 1];
    int64_t user_id;
    char blob[STORE_BLOB_ID_LEN + 1]; /* the hash the finished bytes must have */
    int64_t length, offset;
    int64_t created_at, expires_at;
    int64_t done_at; /* 0 while open */
};
enum store_rc store_upload_insert(struct store *st, const struct store_upload *u);
enum store_rc store_upload_get(struct store *st, const char *id, struct store_upload *out);
enum store_rc store_upload_set_offset(struct store *st, const char *id, int64_t offset,
                                      int64_t done_at);
enum store_rc store_upload_delete(struct store *st, const char *id);
/* Bytes a user holds: finished blobs they uploaded plus the lengths of their open uploads. */
enum store_rc store_upload_usage(struct store *st, int64_t user_id, int64_t *bytes);
/* What the server holds, for GET /metrics and admin.status: blobs and their bytes, unfinished
 * uploads and the bytes they have so far, sessions not ended. One pass over the blobs table
 * (its rows, not its files): for a scrape or an admin's call, never a request's path. */
struct store_totals {
    int64_t blobs, blob_bytes;
    int64_t uploads_open, upload_open_bytes;
    int64_t sessions_open;
};
enum store_rc store_totals(struct store *st, struct store_totals *out);
/* Messages (talk, not deleted) sent at or after since (ms): one pass over the messages table,
 * for an admin's call. */
enum store_rc store_messages_since(struct store *st, int64_t since, int64_t *out);
/* Up to max expired open uploads' ids, into ids (each STORE_UPLOAD_ID_MAX + 1 bytes). */
enum store_rc store_upload_expired(struct store *st, int64_t now,
                                   char (*ids)[STORE_UPLOAD_ID_MAX + 1], int max, int *n);

/* A blob is inserted once its bytes are in place; a second insert of the same id is a no-op. */
enum store_rc store_blob_insert(struct store *st, const char *id, int64_t size, int64_t uploader,
                                int64_t now);
/* STORE_NOT_FOUND if no such blob. */
enum store_rc store_blob_get(struct store *st, const char *id, int64_t *size, int64_t *uploader);
enum store_rc store_blob_ref_add(struct store *st, const char *blob, int64_t room, int64_t pos);
/* Whether user may read the blob: a current member of a room with an event that references
 * it (in a room whose history is 'joined', an event since the member joined). Uploaders read
 * their own blobs before they reference them. */
enum store_rc store_blob_readable(struct store *st, const char *blob, int64_t user_id, bool *out);

/* Photos posted before their blob is here (issue 21: the thumbnail travels in the message, so a
 * field phone posts it first and uploads the full image after). An e2ee.photo may name a blob
 * its poster is still uploading; the event then waits in blob_pending until that user's upload
 * finishes, and only then references the blob (blob_refs), so nobody gains access to a blob by
 * naming an upload. store_upload_live: user_id's unfinished, unexpired upload of blob furthest
 * along (STORE_NOT_FOUND: none). store_blob_pending_settle: user_id's upload of blob finished;
 * its waiting events now reference it. store_blob_pending_readable: whether user_id will be
 * able to read blob through a waiting event (in room, or any room if room is 0), and whose
 * upload it waits for (*poster). */
enum store_rc store_upload_live(struct store *st, int64_t user_id, const char *blob, int64_t now,
                                int64_t *offset, int64_t *length);
enum store_rc store_blob_pending_add(struct store *st, const char *blob, int64_t room, int64_t pos,
                                     int64_t user_id);
enum store_rc store_blob_pending_settle(struct store *st, const char *blob, int64_t user_id);
enum store_rc store_blob_pending_readable(struct store *st, const char *blob, int64_t user_id,
                                          int64_t room, bool *out, int64_t *poster);

/* ---- the audit log (append-only) ---- */

struct store_audit {
    int64_t id, at;
    const char *actor, *address, *action, *target;
    const char *details; /* a JSON object */
};
enum store_rc store_audit_add(struct store *st, const struct store_audit *a);
typedef int (*store_audit_fn)(void *ctx, const struct store_audit *a);
/* Newest first; NULL filters match anything; before 0 means no upper bound on the id. */
enum store_rc store_audit_each(struct store *st, const char *action, const char *actor,
                               const char *target, int64_t since, int64_t before, int limit,
                               store_audit_fn fn, void *ctx);

/* ---- talk rooms (store_talk.c) ---- */

#define STORE_ROOM_ID_MAX 47 /* base64url of a 32-byte hash is 43 */
#define STORE_TOPIC_MAX   1023
#define STORE_TYPE_MAX    23
#define STORE_ORIGIN_MAX  63

struct store_room {
    int64_t id;
    char room_id[STORE_ROOM_ID_MAX + 1];
    char kind[8]; /* group, direct */
    char name[STORE_NAME_MAX + 1];
    char topic[STORE_TOPIC_MAX + 1];
    int64_t created_by;
    int64_t created_at;
    char history[8];     /* "shared", or "joined": photos before one joined stay unreadable */
    int64_t archived_at; /* 0 while in use; else when it was archived (read-only, unlisted) */
    char authority[64];  /* a shared room's creating server, which admits servers; "": local */
};

struct store_member {
    int64_t room;
    int64_t user_id;
    char login[STORE_LOGIN_MAX + 1];
    char name[STORE_NAME_MAX + 1];
    char role[8]; /* admin, member */
    int64_t joined_pos;
    int64_t left_pos; /* 0 while a member */
    int64_t read_pos;
    int64_t read_at;
};

/* One stored event. On insert, payload and sig are the caller's; in a callback they point
 * into SQLite's memory and are valid only during the call. */
struct store_event {
    int64_t pos;
    int64_t room;
    char room_id[STORE_ROOM_ID_MAX + 1]; /* filled by reads */
    char origin[STORE_ORIGIN_MAX + 1];
    int64_t inc, seq;
    char event_id[STORE_ROOM_ID_MAX + 1];
    char type[STORE_TYPE_MAX + 1];
    int64_t sender; /* user id, 0 for none */
    int64_t ts;
    int64_t hlc;         /* the payload's hybrid logical clock (v1 events: ts) */
    int64_t received_at; /* when an event made on another server arrived here (0: made here) */
    bool late;           /* ... after an event that sorts after it (placed where it belongs) */
    const char *invalid; /* why a received event changes nothing (NULL: it is valid); reads
                          * give it for the callback's duration only */
    bool shared;         /* reads: its room is a shared one (rooms.authority is set) */
    const void *payload;
    size_t payload_len;
    const void *sig;
    size_t sig_len;
};

/* A message as history shows it: the latest text, or a deletion mark. */
struct store_message {
    int64_t pos;
    int64_t room;
    int64_t sender;
    const char *body; /* valid during a callback only */
    int64_t ts;
    int64_t edited_at; /* 0 if never edited */
    bool deleted;
    int64_t deleted_by; /* who deleted it (the author, or a room admin); 0 if not known */
};

enum store_rc store_room_insert(struct store *st, struct store_room *r, const char *direct_key);
/* store_room_get, _get_by_id, store_member_get and store_member_each answer from a cache of
 * rooms and their member lists, current as of the last write (store_room_cache.c). */
enum store_rc store_room_get(struct store *st, const char *room_id, struct store_room *out);
enum store_rc store_room_get_by_id(struct store *st, int64_t id, struct store_room *out);
enum store_rc store_room_get_direct(struct store *st, const char *direct_key,
                                    struct store_room *out);
enum store_rc store_room_update(struct store *st, int64_t id, const char *name, const char *topic);
/* Archives a room at `at` (ms), or unarchives it with at 0. */
enum store_rc store_room_set_archived(struct store *st, int64_t id, int64_t at);
/* The most recently created group room named exactly `name` of which the user is a current
 * member (archived ones too); STORE_NOT_FOUND if none. */
enum store_rc store_room_find_named(struct store *st, int64_t user_id, const char *name,
                                    struct store_room *out);

/* A user's membership row, current or past (left_pos != 0). */
enum store_rc store_member_get(struct store *st, int64_t room, int64_t user_id,
                               struct store_member *out);
/* Joins (or re-joins) a user at joined_pos; clears left_pos; keeps the read marker. */
enum store_rc store_member_join(struct store *st, int64_t room, int64_t user_id, const char *role,
                                int64_t joined_pos);
enum store_rc store_member_leave(struct store *st, int64_t room, int64_t user_id, int64_t left_pos);
enum store_rc store_member_set_role(struct store *st, int64_t room, int64_t user_id,
                                    const char *role);
typedef int (*store_member_fn)(void *ctx, const struct store_member *m);
/* Current members in join order, ties by user id (or, with include_past, everyone who ever
 * was one). The walk sees the list as it was when the call began: a change a callback makes
 * shows from the next call. No such room: STORE_OK and no calls. */
enum store_rc store_member_each(struct store *st, int64_t room, bool include_past,
                                store_member_fn fn, void *ctx);
enum store_rc store_member_count(struct store *st, int64_t room, int64_t *out);
/* Moves a read marker forward (never back) and records when it reached pos. *moved tells
 * whether it moved; *old_pos receives where it was. */
enum store_rc store_member_read(struct store *st, int64_t room, int64_t user_id, int64_t pos,
                                int64_t at, bool *moved, int64_t *old_pos);
/* Members other than `sender` whose marker has reached pos (past members included: having
 * read it stays true). */
enum store_rc store_read_count(struct store *st, int64_t room, int64_t pos, int64_t sender,
                               int64_t *out);
/* A place in a room's order, (hlc, origin, inc, seq): the same on every server that holds the
 * event. In a shared room a read marker is the key of the last event read (issue 17, item 7),
 * because a position means nothing on another server. */
struct store_order_key {
    int64_t hlc;
    char origin[STORE_ORIGIN_MAX + 1];
    int64_t inc, seq;
};
/* The key of the room's event at pos or, if pos is none of the room's, of its event with the
 * greatest position below it; STORE_NOT_FOUND if there is none. */
enum store_rc store_event_key_at(struct store *st, int64_t room, int64_t pos,
                                 struct store_order_key *out);
/* Moves a member's read key forward to k (never back): *moved tells whether it moved. A user
 * who is no member row: STORE_OK, not moved. */
enum store_rc store_member_read_key(struct store *st, int64_t room, int64_t user_id,
                                    const struct store_order_key *k, bool *moved);
/* The greatest position of the room's events (0: none). In a shared room events arrive out of
 * the room's order, so this need not be the position of its last event in that order. */
enum store_rc store_room_last_pos(struct store *st, int64_t room, int64_t *pos);
/* A member's read key; STORE_NOT_FOUND if it has none. */
enum store_rc store_member_read_key_get(struct store *st, int64_t room, int64_t user_id,
                                        struct store_order_key *out);
/* The read count of event e as a reader sees it (e from a read: its room, position, key,
 * sender and whether the room is shared): in a room of this server, store_read_count; in a
 * shared room, current members other than the sender whose read key is at or past e's. */
enum store_rc store_read_count_event(struct store *st, const struct store_event *e, int64_t *out);
/* A shared room's read count of event e grouped by server (issue 18, item 4): for each server
 * with current members other than e's sender, how many of them have read e (read key at or past
 * e's) out of how many, in server id order; this server's users under `self` (its id), with
 * name "" for it and the peer's pinned name ("" if none) for others. One statement; the sum of
 * `read` is store_read_count_event's count. fn returns non-zero to stop. */
struct store_read_group {
    char server[STORE_ORIGIN_MAX + 1];
    char name[STORE_NAME_MAX + 1];
    int64_t read, members;
};
typedef int (*store_read_group_fn)(void *ctx, const struct store_read_group *g);
enum store_rc store_read_groups_event(struct store *st, const struct store_event *e,
                                      const char *self, store_read_group_fn fn, void *ctx);
/* When a user's marker first reached pos (0 if it has not). */
enum store_rc store_read_time(struct store *st, int64_t room, int64_t user_id, int64_t pos,
                              int64_t *at);

/* The head of a per-origin log: *seq is 0 and head_id "" for an empty log. */
enum store_rc store_log_head(struct store *st, int64_t room, const char *origin, int64_t inc,
                             int64_t *seq, char head_id[STORE_ROOM_ID_MAX + 1]);
/* The highest hlc among a room's events (0: none), read at one index seek: where the room's
 * clock continues after a restart (docs/event-format.md, "The hybrid logical clock"). */
enum store_rc store_room_hlc(struct store *st, int64_t room, int64_t *hlc);
/* Appends an event (seq must be head+1) and advances its log's head; fills e->pos. A gap or a
 * reused seq is STORE_CONFLICT with nothing written; after any other failure the log's head
 * may have moved, so the caller rolls back (as after any failed write). */
enum store_rc store_event_insert(struct store *st, struct store_event *e);
typedef int (*store_event_fn)(void *ctx, const struct store_event *e);
/* Events a user may see after position `since` in position order, at most limit: those of
 * rooms while the user was a member (up to and including its own leave event). */
enum store_rc store_event_each_for_user(struct store *st, int64_t user_id, int64_t since, int limit,
                                        store_event_fn fn, void *ctx);
enum store_rc store_event_get(struct store *st, int64_t pos, store_event_fn fn, void *ctx);
enum store_rc store_event_pos(struct store *st, const char *event_id, int64_t *pos);
/* Stores the signature that makes an event a checkpoint of its log. */
enum store_rc store_event_set_sig(struct store *st, int64_t pos, const void *sig, size_t len);
/* The highest position in use (0 if none). */
enum store_rc store_event_last_pos(struct store *st, int64_t *out);

enum store_rc store_message_insert(struct store *st, const struct store_message *m);
/* Fills everything but body (which would dangle); NOT_FOUND if pos is no message. */
enum store_rc store_message_get(struct store *st, int64_t pos, struct store_message *out);
enum store_rc store_message_edit(struct store *st, int64_t pos, const char *body, int64_t at);
/* Marks a message deleted at `at` by user `by` (its author, or a room admin). */
enum store_rc store_message_delete(struct store *st, int64_t pos, int64_t at, int64_t by);
typedef int (*store_message_fn)(void *ctx, const struct store_message *m);
/* History: the visible events of a room (everything but edits and deletes) with, for
 * messages, their current text. before > 0: up to limit events before it, newest first;
 * else after >= 0: up to limit events after it, oldest first. m is NULL for non-messages. */
typedef int (*store_history_fn)(void *ctx, const struct store_event *e,
                                const struct store_message *m);
enum store_rc store_history(struct store *st, int64_t room, int64_t before, int64_t after,
                            int limit, store_history_fn fn, void *ctx);
/* The record of a room (issue 22): every event, edits, deletes, read markers (room.read) and
 * invalid ones (e->invalid) included, whose hlc (its room-order clock, at least its sent time)
 * is in [from, to), in the room's order, after the event at position `after` (0: from the
 * start; STORE_NOT_FOUND if it is not the room's), at most limit; m as in store_history. */
enum store_rc store_record_events(struct store *st, int64_t room, int64_t after, int64_t from,
                                  int64_t to, int limit, store_history_fn fn, void *ctx);
/* Unread messages and photos (e2ee.photo events) from others after read_pos, and the latest
 * message (m.pos 0 if none). */
enum store_rc store_room_unread(struct store *st, int64_t room, int64_t user_id, int64_t read_pos,
                                int64_t *out);
enum store_rc store_room_last_message(struct store *st, int64_t room, store_message_fn fn,
                                      void *ctx);
/* The room's newest valid encrypted photo (its position, sender, time): a room list shows it as
 * the last message when it is newer than that. STORE_NOT_FOUND: none. */
enum store_rc store_room_last_photo(struct store *st, int64_t room, int64_t *pos, int64_t *sender,
                                    int64_t *ts);
typedef int (*store_room_fn)(void *ctx, const struct store_room *r, const struct store_member *me);
/* The rooms a user is a member of now, most recently active first. */
enum store_rc store_room_each_of_user(struct store *st, int64_t user_id, store_room_fn fn,
                                      void *ctx);
/* One search result: a message, or (notice != 0) a notice, placed at the position of its
 * notice.post event so that both page together. Strings are valid during a callback only. */
struct store_search_hit {
    int64_t pos, room, sender, ts;
    const char *body;
    int64_t notice;       /* 0 for a message */
    const char *title;    /* notices only */
    int64_t withdrawn_at; /* notices only; 0 if not withdrawn */
};
typedef int (*store_search_fn)(void *ctx, const struct store_search_hit *h);
#define STORE_SEARCH_TERMS_MAX 16
/* Full-text search, newest first, positions below `before` (0: no bound). The query is split
 * into words at spaces (ASCII and the ideographic space U+3000; "double quotes" keep a phrase
 * together) and a result must contain every word: messages of the user's current rooms (room 0:
 * all of them) and, when room is 0, the notices the user received or wrote (title or body).
 * Words of three or more characters use the trigram index, shorter ones (冠水) a scan.
 * STORE_CONFLICT if the query has no words or more than STORE_SEARCH_TERMS_MAX. */
enum store_rc store_search(struct store *st, int64_t user_id, int64_t room, const char *query,
                           int64_t before, int limit, store_search_fn fn, void *ctx);

/* Idempotency keys of sends. */
enum store_rc store_client_id_get(struct store *st, int64_t user_id, const char *client_id,
                                  int64_t *pos);
enum store_rc store_client_id_put(struct store *st, int64_t user_id, const char *client_id,
                                  int64_t pos);

/* ---- departments, groups and notices (store_notice.c) ---- */

/* Finds a department or group by name, creating it if asked; *id receives it. */
enum store_rc store_dept_find(struct store *st, const char *name, bool create, int64_t now,
                              int64_t *id);
enum store_rc store_group_find(struct store *st, const char *name, bool create, int64_t now,
                               int64_t *id);
typedef int (*store_named_fn)(void *ctx, int64_t id, const char *name, int64_t members);
/* Every department / group by name, with how many active users it has. */
enum store_rc store_dept_each(struct store *st, store_named_fn fn, void *ctx);
enum store_rc store_group_each(struct store *st, store_named_fn fn, void *ctx);
/* A user's groups by name; and replacing them. */
enum store_rc store_user_groups_each(struct store *st, int64_t user_id, store_named_fn fn,
                                     void *ctx);
enum store_rc store_user_groups_clear(struct store *st, int64_t user_id);
enum store_rc store_group_add_member(struct store *st, int64_t group_id, int64_t user_id);

/* A notice as stored, with the asking user's own state when they are a recipient. Strings
 * point into SQLite's memory: valid during a callback only. */
struct store_notice {
    int64_t id, room, author;
    const char *author_login, *author_name;
    const char *title, *body, *category;
    const char *choices;  /* JSON array of strings, or NULL */
    const char *audience; /* JSON object as posted */
    bool urgent, ask_ack, pinned;
    int64_t expires_at, created_at, updated_at, withdrawn_at, revision;
    bool is_recipient;
    int64_t read_at, acked_at, responded_at, reminded_at;
    int64_t choice; /* -1: none */
    const char *comment;
};
typedef int (*store_notice_fn)(void *ctx, const struct store_notice *n);

/* What a new notice is; on insert, id is filled. */
struct store_notice_new {
    int64_t id, author;
    const char *title, *body, *category, *choices, *audience;
    bool urgent, ask_ack, pinned;
    int64_t expires_at; /* 0: none */
    int64_t now;
};
enum store_rc store_notice_insert(struct store *st, struct store_notice_new *n);
enum store_rc store_notice_set_room(struct store *st, int64_t id, int64_t room);
/* Resolves the audience to recipients now (active users other than the author), keeping each
 * one's department of the moment. Lists are JSON arrays of ids. *count receives how many. */
enum store_rc store_notice_resolve(struct store *st, int64_t notice, int64_t author, bool all,
                                   const char *dept_ids, const char *group_ids,
                                   const char *user_ids, int64_t *count);
/* Makes the recipients members of the notice's room from position pos. */
enum store_rc store_notice_join_room(struct store *st, int64_t notice, int64_t room, int64_t pos);
/* One notice, with user_id's recipient state (0: none). NOT_FOUND if there is none. */
enum store_rc store_notice_get(struct store *st, int64_t id, int64_t user_id, store_notice_fn fn,
                               void *ctx);
/* A user's notices: unread first, urgent first, pinned first, newest first. */
enum store_rc store_notice_feed(struct store *st, int64_t user_id, int limit, store_notice_fn fn,
                                void *ctx);
/* Notices a user posted, newest first. */
enum store_rc store_notice_posted(struct store *st, int64_t author, int limit, store_notice_fn fn,
                                  void *ctx);
/* Every notice, newest first (an admin's list); viewer's own state as `me`. */
enum store_rc store_notice_all(struct store *st, int64_t viewer, int limit, store_notice_fn fn,
                               void *ctx);
/* Records reading / acknowledging (first time only: *changed says whether it was the first)
 * and responding (the latest response counts). */
enum store_rc store_notice_read(struct store *st, int64_t notice, int64_t user_id, int64_t now,
                                bool *changed);
enum store_rc store_notice_ack(struct store *st, int64_t notice, int64_t user_id, int64_t now,
                               bool *changed);
enum store_rc store_notice_respond(struct store *st, int64_t notice, int64_t user_id,
                                   int64_t choice, const char *comment, int64_t now);
/* Keeps the current text as a revision and replaces it; *revision receives the new number. */
enum store_rc store_notice_edit(struct store *st, int64_t notice, const char *title,
                                const char *body, int64_t editor, int64_t now, int64_t *revision);
enum store_rc store_notice_withdraw(struct store *st, int64_t notice, int64_t now);

/* Reports. Departments are those recipients had when the notice was posted. */
struct store_report_row {
    const char *department; /* "" for none */
    int64_t recipients, read, acked, responded;
};
typedef int (*store_report_fn)(void *ctx, const struct store_report_row *r);
enum store_rc store_notice_report(struct store *st, int64_t notice, store_report_fn fn, void *ctx);
typedef int (*store_choice_fn)(void *ctx, const char *department, int64_t choice, int64_t count);
enum store_rc store_notice_choice_counts(struct store *st, int64_t notice, store_choice_fn fn,
                                         void *ctx);
struct store_recipient {
    int64_t user_id;
    const char *login, *name, *department;
    int64_t read_at, acked_at, responded_at, reminded_at;
    int64_t choice; /* -1: none */
    const char *comment;
};
typedef int (*store_recipient_fn)(void *ctx, const struct store_recipient *r);
enum store_missing { STORE_ALL_RECIPIENTS, STORE_NOT_READ, STORE_NOT_ACKED, STORE_NOT_RESPONDED };
/* Recipients (all, or those who have not done something) by department, then login; at most
 * limit of them (-1: all). */
enum store_rc store_notice_recipients(struct store *st, int64_t notice, enum store_missing which,
                                      int64_t limit, store_recipient_fn fn, void *ctx);
/* Marks those who have not done `which` as reminded now; fn gets each of their user ids. */
typedef int (*store_id_fn)(void *ctx, int64_t id);
enum store_rc store_notice_remind(struct store *st, int64_t notice, enum store_missing which,
                                  int64_t now, store_id_fn fn, void *ctx);
/* When notice's last reminder reached anyone (0: never). */
enum store_rc store_notice_last_remind(struct store *st, int64_t notice, int64_t *at);

/* ---- the record: reviews, redactions, reviewers and holds (store_record.c, migration 20,
 * docs/records.md) ---- */

/* Gives (on) or takes back the reviewer role of a room; giving it twice changes nothing. */
enum store_rc store_reviewer_set(struct store *st, int64_t room, int64_t user_id, bool on,
                                 int64_t by, int64_t at);
/* STORE_OK if user_id reviews the room's record, else STORE_NOT_FOUND. */
enum store_rc store_reviewer_get(struct store *st, int64_t room, int64_t user_id);

struct store_review {
    int64_t id, room, author; /* author: the reviewer who made it */
    char title[STORE_NAME_MAX + 1];
    int64_t from_ts, to_ts; /* the events it covers: sent in [from_ts, to_ts) */
    int64_t created_at;
    int64_t approver, approved_at; /* 0 while open */
};
/* Inserts r (its id is set). */
enum store_rc store_review_insert(struct store *st, struct store_review *r);
enum store_rc store_review_get(struct store *st, int64_t id, struct store_review *out);
/* Signs an open review off; STORE_NOT_FOUND if it is not open (or not there). */
enum store_rc store_review_approve(struct store *st, int64_t id, int64_t approver, int64_t at);

/* Marks (on) or unmarks an event for publication in a review. */
enum store_rc store_passage_set(struct store *st, int64_t review, const char *event_id, bool on);
/* STORE_OK if the event is marked, else STORE_NOT_FOUND. */
enum store_rc store_passage_get(struct store *st, int64_t review, const char *event_id);
enum store_rc store_passage_count(struct store *st, int64_t review, int64_t *n);
/* Every marked event id, in id order; id is valid during the call only. */
typedef int (*store_passage_fn)(void *ctx, const char *event_id);
enum store_rc store_passage_each(struct store *st, int64_t review, store_passage_fn fn, void *ctx);

struct store_redaction {
    int64_t id, review;
    char event_id[STORE_ROOM_ID_MAX + 1];
    int64_t start, end; /* bytes of the event's text */
    char kind[16];      /* phone, postal, address, email, name (redact.h), or hand */
    bool by_hand;
    char state[12]; /* proposed, accepted, rejected */
    int64_t decided_by, decided_at;
};
/* Inserts r (its id is set); STORE_CONFLICT if the review has this range of the event. */
enum store_rc store_redaction_insert(struct store *st, struct store_redaction *r);
/* Sets a redaction's state ("accepted", "rejected"); STORE_NOT_FOUND if the review has none of
 * this id. */
enum store_rc store_redaction_decide(struct store *st, int64_t review, int64_t id,
                                     const char *state, int64_t by, int64_t at);
/* A review's redactions (of one event, or all if event_id is NULL), by event id then start. */
typedef int (*store_redaction_fn)(void *ctx, const struct store_redaction *r);
enum store_rc store_redaction_each(struct store *st, int64_t review, const char *event_id,
                                   store_redaction_fn fn, void *ctx);
/* How many of a review's redactions no one has decided yet. */
enum store_rc store_redaction_pending(struct store *st, int64_t review, int64_t *n);

/* The events of one log of a room, (origin, inc), after seq after_seq in seq order: event_id,
 * type, seq, payload and sig filled (valid during the call only). A non-zero return from fn
 * stops the walk. For the proofs of a record (ops_record.c). */
enum store_rc store_log_walk(struct store *st, int64_t room, const char *origin, int64_t inc,
                             int64_t after_seq, store_event_fn fn, void *ctx);
/* Places a room on hold (on) or releases it; twice changes nothing. */
enum store_rc store_hold_set(struct store *st, int64_t room, bool on, int64_t by, int64_t at);
/* STORE_OK with when it was placed if the room is on hold, else STORE_NOT_FOUND. */
enum store_rc store_hold_get(struct store *st, int64_t room, int64_t *held_at);

/* ---- JMA's feeds and alerts (store_jma.c, migration 22, docs/alerts.md) ---- */
/* STORE_OK if the feed entry was fetched (or given up on) before, else STORE_NOT_FOUND. */
enum store_rc store_jma_seen_has(struct store *st, const char *entry_id);
/* Remembers a feed entry with what became of it ("telegram", "not_jma", "fetch_failed", ...). */
enum store_rc store_jma_seen_add(struct store *st, const char *entry_id, const char *href,
                                 int64_t at, const char *result);
/* Forgets entries seen before `before` (JMA's long feeds hold days; a month is plenty). */
enum store_rc store_jma_seen_prune(struct store *st, int64_t before);

#define STORE_JMA_KIND_MAX  16
#define STORE_JMA_EVENT_MAX 64
struct store_jma_alert {
    int64_t id;
    char kind[STORE_JMA_KIND_MAX + 1];      /* quake, tsunami, warning */
    char event_id[STORE_JMA_EVENT_MAX + 1]; /* JMA's EventID (or the entry's id) */
    char state[16];                         /* pending, sent, cancelled */
    bool drill;
    int64_t strength; /* what the aftershock rule compares (intensity, warning level) */
    char *details;    /* JSON text, owned by the struct: store_jma_alert_clear */
    int64_t created_at, due_at, decided_at;
    char decided_by[64]; /* a login, or "server" */
    int64_t notice;      /* the roll-call, once sent (0: none) */
};
void store_jma_alert_clear(struct store_jma_alert *a);
/* Inserts a (its id is set); state, details and the times must be filled. */
enum store_rc store_jma_alert_insert(struct store *st, struct store_jma_alert *a);
/* Writes back state, strength, details, due_at, decided_at, decided_by and notice. */
enum store_rc store_jma_alert_update(struct store *st, const struct store_jma_alert *a);
/* Fills *out (the caller clears it); STORE_NOT_FOUND if there is none. */
enum store_rc store_jma_alert_get(struct store *st, int64_t id, struct store_jma_alert *out);
/* The newest alert of (kind, event_id), of any kind when kind is NULL; STORE_NOT_FOUND if
 * none. */
enum store_rc store_jma_alert_of_event(struct store *st, const char *kind, const char *event_id,
                                       struct store_jma_alert *out);
/* The strongest alert of kind created at or after since that was sent or is pending (the
 * aftershock rule); STORE_NOT_FOUND if none. */
enum store_rc store_jma_alert_strongest_since(struct store *st, const char *kind, int64_t since,
                                              struct store_jma_alert *out);
/* Newest first, up to limit; pending_only: only pending ones (oldest due first). cb's alert is
 * valid during the call only; non-zero from cb stops the walk. */
enum store_rc store_jma_alert_each(struct store *st, int64_t limit, bool pending_only,
                                   int (*cb)(void *, const struct store_jma_alert *), void *arg);
/* The rules an admin set (JSON text the caller frees), STORE_NOT_FOUND if none. */
enum store_rc store_jma_rules_get(struct store *st, char **rules);
enum store_rc store_jma_rules_set(struct store *st, const char *rules, const char *by, int64_t at);

#endif
