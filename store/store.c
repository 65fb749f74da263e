/* store.c - SQLite behind plain C structs. See store.h for the contract. */
#include "store_internal.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Migrations, applied in order; PRAGMA user_version counts how many have run. Never edit a
 * released entry: append a new one. */
static const char *const migrations[] = {
    /* 1: accounts and sessions */
    "CREATE TABLE users ("
    "  id INTEGER PRIMARY KEY,"
    "  login TEXT NOT NULL UNIQUE,"
    "  name TEXT NOT NULL,"
    "  role TEXT NOT NULL CHECK (role IN ('admin','hq','staff')),"
    "  disabled INTEGER NOT NULL DEFAULT 0,"
    "  must_change_pw INTEGER NOT NULL DEFAULT 0,"
    "  pw_hash TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE sessions ("
    "  id INTEGER PRIMARY KEY,"
    "  user_id INTEGER NOT NULL REFERENCES users(id),"
    "  token_hash BLOB NOT NULL UNIQUE,"
    "  device TEXT NOT NULL,"
    "  address TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  last_seen INTEGER NOT NULL,"
    "  ended_at INTEGER"
    ");"
    "CREATE INDEX sessions_user ON sessions(user_id) WHERE ended_at IS NULL;",

    /* 2: talk rooms. Every room event is stored as the signed bytes its origin produced
     * (events.payload/sig) in a per-(room, origin, incarnation) log; `pos` is the server-wide
     * position that orders everything a client syncs. messages, room_members and read_marks
     * are state derived from those events for fast history, read counts and search. */
    "CREATE TABLE rooms ("
    "  id INTEGER PRIMARY KEY,"
    "  room_id TEXT NOT NULL UNIQUE,"
    "  kind TEXT NOT NULL CHECK (kind IN ('group','direct','notice')),"
    "  name TEXT NOT NULL,"
    "  topic TEXT NOT NULL DEFAULT '',"
    "  direct_key TEXT UNIQUE,"
    "  created_by INTEGER NOT NULL REFERENCES users(id),"
    "  created_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE room_members ("
    "  room INTEGER NOT NULL REFERENCES rooms(id),"
    "  user_id INTEGER NOT NULL REFERENCES users(id),"
    "  role TEXT NOT NULL CHECK (role IN ('admin','member')),"
    "  joined_pos INTEGER NOT NULL,"
    "  left_pos INTEGER,"
    "  read_pos INTEGER NOT NULL DEFAULT 0,"
    "  read_at INTEGER,"
    "  PRIMARY KEY (room, user_id)"
    ") WITHOUT ROWID;"
    "CREATE INDEX room_members_user ON room_members(user_id, room);"
    "CREATE TABLE logs ("
    "  room INTEGER NOT NULL REFERENCES rooms(id),"
    "  origin TEXT NOT NULL,"
    "  inc INTEGER NOT NULL,"
    "  head_seq INTEGER NOT NULL,"
    "  head_id TEXT NOT NULL,"
    "  PRIMARY KEY (room, origin, inc)"
    ") WITHOUT ROWID;"
    "CREATE TABLE events ("
    "  pos INTEGER PRIMARY KEY,"
    "  room INTEGER NOT NULL REFERENCES rooms(id),"
    "  origin TEXT NOT NULL,"
    "  inc INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  event_id TEXT NOT NULL UNIQUE,"
    "  type TEXT NOT NULL,"
    "  sender INTEGER REFERENCES users(id),"
    "  ts INTEGER NOT NULL,"
    "  payload BLOB NOT NULL,"
    "  sig BLOB NOT NULL,"
    "  UNIQUE (room, origin, inc, seq)"
    ");"
    "CREATE INDEX events_room ON events(room, pos);"
    "CREATE TABLE messages ("
    "  pos INTEGER PRIMARY KEY REFERENCES events(pos),"
    "  room INTEGER NOT NULL REFERENCES rooms(id),"
    "  sender INTEGER NOT NULL REFERENCES users(id),"
    "  body TEXT NOT NULL,"
    "  ts INTEGER NOT NULL,"
    "  edited_at INTEGER,"
    "  deleted INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX messages_room ON messages(room, pos);"
    "CREATE TABLE client_ids ("
    "  user_id INTEGER NOT NULL,"
    "  client_id TEXT NOT NULL,"
    "  pos INTEGER NOT NULL,"
    "  PRIMARY KEY (user_id, client_id)"
    ") WITHOUT ROWID;"
    "CREATE TABLE read_marks ("
    "  room INTEGER NOT NULL,"
    "  user_id INTEGER NOT NULL,"
    "  pos INTEGER NOT NULL,"
    "  at INTEGER NOT NULL,"
    "  PRIMARY KEY (room, user_id, pos)"
    ") WITHOUT ROWID;"
    /* trigram: substring search that works for Japanese, which has no spaces between words */
    "CREATE VIRTUAL TABLE messages_fts USING fts5(body, content='messages', content_rowid='pos',"
    "  tokenize='trigram');"
    /* New messages are indexed in bulk just before each commit (store_fts_flush): FTS5
     * flushes a segment at the end of every statement that writes it, so a per-row trigger
     * cost a segment per message. Edits and deletes are rare and use triggers. */
    "CREATE TRIGGER messages_fts_del AFTER UPDATE OF body, deleted ON messages"
    "  WHEN old.deleted = 0 BEGIN"
    "  INSERT INTO messages_fts(messages_fts, rowid, body) VALUES ('delete', old.pos, old.body);"
    "END;"
    "CREATE TRIGGER messages_fts_upd AFTER UPDATE OF body, deleted ON messages"
    "  WHEN new.deleted = 0 BEGIN"
    "  INSERT INTO messages_fts(rowid, body) VALUES (new.pos, new.body);"
    "END;",

    /* 3: departments, groups and notices. A notice's recipients are resolved when it is
     * posted and keep the department they had then, so read rates keep their denominator
     * when people move later. A notice is also a room of kind 'notice' whose members are its
     * recipients: its events travel the same stream as talk, with the same resume rules. */
    "CREATE TABLE departments ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  created_at INTEGER NOT NULL"
    ");"
    "ALTER TABLE users ADD COLUMN department INTEGER REFERENCES departments(id);"
    "CREATE INDEX users_department ON users(department);"
    "CREATE TABLE groups ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  created_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE group_members ("
    "  group_id INTEGER NOT NULL REFERENCES groups(id),"
    "  user_id INTEGER NOT NULL REFERENCES users(id),"
    "  PRIMARY KEY (group_id, user_id)"
    ") WITHOUT ROWID;"
    "CREATE INDEX group_members_user ON group_members(user_id, group_id);"
    "CREATE TABLE notices ("
    "  id INTEGER PRIMARY KEY,"
    "  room INTEGER REFERENCES rooms(id),"
    "  author INTEGER NOT NULL REFERENCES users(id),"
    "  title TEXT NOT NULL,"
    "  body TEXT NOT NULL,"
    "  category TEXT NOT NULL DEFAULT '',"
    "  priority TEXT NOT NULL CHECK (priority IN ('normal','urgent')),"
    "  ask_ack INTEGER NOT NULL DEFAULT 0,"
    "  choices TEXT,"
    "  audience TEXT NOT NULL,"
    "  pinned INTEGER NOT NULL DEFAULT 0,"
    "  expires_at INTEGER,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  revision INTEGER NOT NULL DEFAULT 1,"
    "  withdrawn_at INTEGER"
    ");"
    "CREATE INDEX notices_author ON notices(author, id);"
    "CREATE TABLE notice_revisions ("
    "  notice INTEGER NOT NULL REFERENCES notices(id),"
    "  revision INTEGER NOT NULL,"
    "  title TEXT NOT NULL,"
    "  body TEXT NOT NULL,"
    "  edited_by INTEGER NOT NULL REFERENCES users(id),"
    "  edited_at INTEGER NOT NULL,"
    "  PRIMARY KEY (notice, revision)"
    ") WITHOUT ROWID;"
    "CREATE TABLE notice_recipients ("
    "  notice INTEGER NOT NULL REFERENCES notices(id),"
    "  user_id INTEGER NOT NULL REFERENCES users(id),"
    "  department INTEGER,"
    "  read_at INTEGER,"
    "  acked_at INTEGER,"
    "  choice INTEGER,"
    "  comment TEXT,"
    "  responded_at INTEGER,"
    "  reminded_at INTEGER,"
    "  PRIMARY KEY (notice, user_id)"
    ") WITHOUT ROWID;"
    "CREATE INDEX notice_recipients_user ON notice_recipients(user_id, notice);"
    "CREATE INDEX notice_recipients_dept ON notice_recipients(notice, department);"
    /* Who has not read / acknowledged / responded: partial indexes make each list cost what
     * it returns, not the whole audience (the 10,000-recipient report in performance.md). */
    "CREATE INDEX notice_not_read ON notice_recipients(notice, department, user_id)"
    "  WHERE read_at IS NULL;"
    "CREATE INDEX notice_not_acked ON notice_recipients(notice, department, user_id)"
    "  WHERE acked_at IS NULL;"
    "CREATE INDEX notice_not_responded ON notice_recipients(notice, department, user_id)"
    "  WHERE responded_at IS NULL;",

    /* 4: the audit log: every admin action and security event, append-only (no op updates or
     * deletes a row). */
    "CREATE TABLE audit ("
    "  id INTEGER PRIMARY KEY,"
    "  at INTEGER NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  address TEXT NOT NULL,"
    "  action TEXT NOT NULL,"
    "  target TEXT NOT NULL,"
    "  details TEXT NOT NULL"
    ");"
    "CREATE INDEX audit_action ON audit(action, id);"
    "CREATE INDEX audit_actor ON audit(actor, id);"
    "CREATE INDEX audit_target ON audit(target, id);",

    /* 5: contact details, dispatched staff and shared devices. An invitation creates accounts
     * with a role, department and groups; accounts made from it can carry an expiry date, on
     * which the server disables them. Only a hash of an invitation code is kept, as for session
     * tokens. A shared session (a loaner phone) ends after an idle time. */
    "CREATE TABLE invites ("
    "  id INTEGER PRIMARY KEY,"
    "  code_hash BLOB NOT NULL UNIQUE,"
    "  role TEXT NOT NULL CHECK (role IN ('hq','staff')),"
    "  department INTEGER REFERENCES departments(id),"
    "  groups TEXT NOT NULL DEFAULT '',"
    "  note TEXT NOT NULL DEFAULT '',"
    "  uses_max INTEGER NOT NULL,"
    "  uses INTEGER NOT NULL DEFAULT 0,"
    "  expires_at INTEGER NOT NULL,"
    "  account_expires_at INTEGER,"
    "  created_by INTEGER NOT NULL REFERENCES users(id),"
    "  created_at INTEGER NOT NULL,"
    "  revoked_at INTEGER"
    ");"
    "ALTER TABLE users ADD COLUMN email TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE users ADD COLUMN phone TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE users ADD COLUMN expires_at INTEGER;"
    "ALTER TABLE users ADD COLUMN invite INTEGER REFERENCES invites(id);"
    "CREATE INDEX users_expiry ON users(expires_at) WHERE expires_at IS NOT NULL;"
    "ALTER TABLE sessions ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX sessions_shared ON sessions(last_seen) WHERE shared = 1 AND ended_at IS NULL;",

    /* 6: end-to-end encrypted photos. The server keeps device public keys (never a private
     * key), opaque encrypted blobs named by their BLAKE2b-256, resumable uploads into them, and
     * which room events reference which blob (only members of such a room may download it). */
    "CREATE TABLE devices ("
    "  id INTEGER PRIMARY KEY,"
    "  device_id TEXT NOT NULL UNIQUE,"
    "  user_id INTEGER NOT NULL REFERENCES users(id),"
    "  session_id INTEGER REFERENCES sessions(id),"
    "  label TEXT NOT NULL,"
    "  sign_pk BLOB NOT NULL,"
    "  box_pk BLOB NOT NULL,"
    "  self_sig BLOB NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  revoked_at INTEGER"
    ");"
    "CREATE INDEX devices_user ON devices(user_id);"
    "CREATE INDEX devices_session ON devices(session_id) WHERE revoked_at IS NULL;"
    "CREATE TABLE blobs ("
    "  id TEXT PRIMARY KEY,"
    "  size INTEGER NOT NULL,"
    "  uploader INTEGER NOT NULL REFERENCES users(id),"
    "  created_at INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX blobs_uploader ON blobs(uploader);"
    "CREATE TABLE blob_refs ("
    "  blob TEXT NOT NULL REFERENCES blobs(id),"
    "  room INTEGER NOT NULL REFERENCES rooms(id),"
    "  pos INTEGER NOT NULL,"
    "  PRIMARY KEY (blob, room, pos)"
    ") WITHOUT ROWID;"
    "CREATE TABLE uploads ("
    "  id TEXT PRIMARY KEY,"
    "  user_id INTEGER NOT NULL REFERENCES users(id),"
    "  blob TEXT NOT NULL,"
    "  length INTEGER NOT NULL,"
    "  offset INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL,"
    "  done_at INTEGER"
    ") WITHOUT ROWID;"
    "CREATE INDEX uploads_user ON uploads(user_id) WHERE done_at IS NULL;"
    "CREATE INDEX uploads_expiry ON uploads(expires_at) WHERE done_at IS NULL;",

    /* 7: server facts that outlive a restore: the incarnation (bumped by each restore, so a
     * restored server's event logs never reuse a sequence number it already handed out before
     * the backup) and the position floor (positions continue above anything a client may have
     * seen from the lost server). */
    "CREATE TABLE meta ("
    "  key TEXT PRIMARY KEY,"
    "  value INTEGER NOT NULL"
    ") WITHOUT ROWID;",

    /* 8: a room's history policy for encrypted photos (E2EE.md E10): 'shared' lets members
     * read photos from before they joined, 'joined' does not (key requests are refused and
     * blobs referenced before one's join stay unreadable). Fixed at creation. */
    ("ALTER TABLE rooms ADD COLUMN history TEXT NOT NULL DEFAULT 'shared'"
     "  CHECK (history IN ('shared','joined'));"),

    /* 9: which devices were sent which epoch key in a room (every e2ee.keys entry), so that a
     * photo under an epoch one of them still holds after it left (revoked, logged out, or its
     * owner removed) is refused: the epoch must rotate first (issue 12). Filled from the
     * e2ee.keys events already stored; data the server never checked is skipped, not fatal. */
    ("CREATE TABLE epoch_devices ("
     "  room INTEGER NOT NULL REFERENCES rooms(id),"
     "  epoch TEXT NOT NULL,"
     "  device TEXT NOT NULL,"
     "  PRIMARY KEY (room, epoch, device)"
     ") WITHOUT ROWID;"
     "INSERT OR IGNORE INTO epoch_devices (room, epoch, device)"
     "  SELECT k.room, json_extract(k.data, '$.epoch'),"
     "    CASE WHEN x.type = 'object' THEN json_extract(x.value, '$.to') END"
     "  FROM (SELECT room, CASE WHEN json_valid(d) THEN d END AS data"
     "        FROM (SELECT room, CASE WHEN json_valid(CAST(payload AS TEXT))"
     "              THEN json_extract(CAST(payload AS TEXT), '$.content.data') END AS d"
     "              FROM events WHERE type = 'e2ee.keys')) k,"
     "    json_each(CASE WHEN json_type(k.data, '$.entries') = 'array'"
     "              THEN json_extract(k.data, '$.entries') END) x"
     "  WHERE json_type(k.data, '$.epoch') = 'text'"
     "    AND CASE WHEN x.type = 'object' THEN json_type(x.value, '$.to') END = 'text';"),

    /* 10: moderation and housekeeping (issue 13): who deleted a message (a room admin may
     * delete anyone's, and everyone is shown that an admin removed it), and when a room was
     * archived (read-only and out of the room list; NULL while it is in use). */
    ("ALTER TABLE messages ADD COLUMN deleted_by INTEGER REFERENCES users(id);"
     "ALTER TABLE rooms ADD COLUMN archived_at INTEGER;"),

    /* 11: each user's signed device lists (issue 14, item 1), every version kept: a client
     * that saw version N checks the chain from N to the newest, so none may be dropped. `list`
     * is the encoding the device signed (media.h), `by` the signing device, `sig` its
     * signature; the server checks all three before storing, clients again. */
    ("CREATE TABLE device_lists ("
     "  user_id INTEGER NOT NULL REFERENCES users(id),"
     "  seq INTEGER NOT NULL,"
     "  list BLOB NOT NULL,"
     "  by_device TEXT NOT NULL,"
     "  sig BLOB NOT NULL,"
     "  created_at INTEGER NOT NULL,"
     "  PRIMARY KEY (user_id, seq)"
     ") WITHOUT ROWID;"),

    /* 12: where each revocation stands in the log (issue 14, item 4): the newest position when
     * the device was revoked, which clients compare with the positions of its events instead of
     * comparing the server's clocks. Devices revoked before learn it from the clock once, here,
     * from the server's own record (nothing forged can come before this migration). */
    ("ALTER TABLE devices ADD COLUMN revoked_pos INTEGER;"
     "UPDATE devices SET revoked_pos = (SELECT coalesce(max(pos), 0) FROM events"
     "  WHERE ts <= devices.revoked_at) WHERE revoked_at IS NOT NULL;"),

    /* 13: a room's members in the order they joined without a sort: every delivery lists them
     * (store_member_each), and the temporary B-tree for ORDER BY joined_pos was most of that
     * statement's ~20,000 instructions per message (issue 16, docs/performance.md). */
    "CREATE INDEX IF NOT EXISTS room_members_joined ON room_members(room, joined_pos);",

    /* 14: federation's identity (issue 17, item 1; store_fed.c): this server's id, stored at
     * init (or adopted, once, by a database made before) so that a config naming another id is
     * refused instead of silently starting new logs; and the peers an admin pinned by key.
     * One identity row (`only` is always 1); a peer's addresses are one space-separated text. */
    ("CREATE TABLE IF NOT EXISTS server_identity ("
     "  only INTEGER PRIMARY KEY CHECK (only = 1),"
     "  server_id TEXT NOT NULL,"
     "  adopted INTEGER NOT NULL DEFAULT 0,"
     "  created_at INTEGER NOT NULL"
     ");"
     "CREATE TABLE IF NOT EXISTS peers ("
     "  server_id TEXT PRIMARY KEY,"
     "  public_key BLOB NOT NULL UNIQUE CHECK (length(public_key) = 32),"
     "  addresses TEXT NOT NULL,"
     "  tls_pin TEXT NOT NULL DEFAULT '',"
     "  name TEXT NOT NULL DEFAULT '',"
     "  fingerprint TEXT NOT NULL,"
     "  added_by TEXT NOT NULL,"
     "  added_at INTEGER NOT NULL"
     ") WITHOUT ROWID;"),

    /* 15: each event's hybrid logical clock (event format v2, issue 17 item 4), so that a room
     * can be ordered by (hlc, origin, inc, seq) on every server, in one index. The column is
     * added by column_adds below (SQLite has no ADD COLUMN IF NOT EXISTS). Events made before
     * v2 get hlc = ts: the one server that made them wrote them in order, and v2's clock goes on
     * above the room's max(hlc), so no room's order changes. History and sync still page by
     * position; on one server the two orders agree (tests/unit/test_proto.c). */
    ("UPDATE events SET hlc = ts WHERE hlc IS NULL;"
     "CREATE INDEX IF NOT EXISTS events_hlc ON events(room, hlc, origin, inc, seq);"),

    /* 16: shared rooms and their replication (issue 17, items 3, 5, 7, 9; store_fed_sync.c).
     * users.home: NULL for this server's own accounts; for a user of another server (an actor
     * (server, login) that sends or joins in a shared room) the server's id, with login
     * "login@server", disabled, and no password: the row is the local handle of that actor,
     * so senders, members and read state keep one kind of key. rooms.authority: the server
     * that created a shared room and alone admits member servers (NULL: a room of this server
     * only). events.received_at: when an event made elsewhere arrived (NULL: made here);
     * events.invalid: why a received event is kept (its log stays whole) but changes nothing.
     * room_servers: a shared room's member servers as its authority's log says; a removed one
     * has its cutoff, the last (inc, seq) of its log the room takes, and in a hotline room each
     * has its role in the counterpart group (issue 18); rooms.hotline marks those. fed_cursors:
     * how far each peer has acknowledged each log (the outbound queue is the log itself).
     * fed_forks: two events for one (room, origin, inc, seq), kept as evidence; the log is
     * quarantined above the fork. room_members.read_hlc, read_origin, read_inc, read_seq: in a
     * shared room, the room-order key (hlc, origin, inc, seq) of the last event the member has
     * read, the same on every server (NULL: none), so read counts agree everywhere. Columns
     * come from column_adds. */
    ("CREATE TABLE IF NOT EXISTS room_servers ("
     "  room INTEGER NOT NULL REFERENCES rooms(id),"
     "  server_id TEXT NOT NULL,"
     "  admitted INTEGER NOT NULL,"
     "  changed_pos INTEGER NOT NULL,"
     "  cutoff_inc INTEGER,"
     "  cutoff_seq INTEGER,"
     "  role TEXT,"
     "  PRIMARY KEY (room, server_id)"
     ") WITHOUT ROWID;"
     "CREATE TABLE IF NOT EXISTS fed_cursors ("
     "  peer TEXT NOT NULL,"
     "  room INTEGER NOT NULL REFERENCES rooms(id),"
     "  origin TEXT NOT NULL,"
     "  inc INTEGER NOT NULL,"
     "  acked_seq INTEGER NOT NULL,"
     "  acked_at INTEGER NOT NULL,"
     "  PRIMARY KEY (peer, room, origin, inc)"
     ") WITHOUT ROWID;"
     "CREATE TABLE IF NOT EXISTS fed_forks ("
     "  id INTEGER PRIMARY KEY,"
     "  room INTEGER NOT NULL REFERENCES rooms(id),"
     "  origin TEXT NOT NULL,"
     "  inc INTEGER NOT NULL,"
     "  seq INTEGER NOT NULL,"
     "  held_id TEXT NOT NULL,"
     "  other_id TEXT NOT NULL,"
     "  other_payload BLOB NOT NULL,"
     "  other_sig BLOB NOT NULL,"
     "  from_peer TEXT NOT NULL,"
     "  at INTEGER NOT NULL,"
     "  UNIQUE (room, origin, inc, seq, other_id)"
     ");"
     "CREATE UNIQUE INDEX IF NOT EXISTS users_home ON users(home, login) WHERE home IS NOT NULL;"
     /* A hotline's seats (issue 18): each member server's named seats (副市長, 当直, ...) and who
      * holds each now, as that server's own log says; on_duty seats get first reports as
      * alerts. */
     "CREATE TABLE IF NOT EXISTS room_seats ("
     "  room INTEGER NOT NULL REFERENCES rooms(id),"
     "  server_id TEXT NOT NULL,"
     "  seat TEXT NOT NULL,"
     "  holder INTEGER REFERENCES users(id),"
     "  on_duty INTEGER NOT NULL DEFAULT 0,"
     "  changed_pos INTEGER NOT NULL,"
     "  PRIMARY KEY (room, server_id, seat)"
     ") WITHOUT ROWID;"),

    /* 17: blobs across servers (issue 19, item 3; store_blob_fetch.c). blob_wants: a blob a
     * received e2ee.photo names that this server does not hold yet, and how its fetch stands:
     * have (bytes staged in DATA/fedblobs/ID.part, fsynced before this moves), total (NULL
     * until a source said), the source those bytes come from, tries, when to try next, state
     * (waiting, fetching, failed: every source failed its integrity check or refused), the
     * last error, and uploader (the photo's sender, the blobs row's uploader once it is here).
     * blob_want_refs: the events (room, pos, origin) that wait for it, which become blob_refs
     * rows when it is here. blob_bad_sources: servers whose bytes failed the hash, skipped
     * until every source has (then all are tried again after a backoff). */
    ("CREATE TABLE IF NOT EXISTS blob_wants ("
     "  blob TEXT PRIMARY KEY,"
     "  total INTEGER,"
     "  have INTEGER NOT NULL DEFAULT 0,"
     "  source TEXT,"
     "  tries INTEGER NOT NULL DEFAULT 0,"
     "  next_at INTEGER NOT NULL DEFAULT 0,"
     "  state TEXT NOT NULL DEFAULT 'waiting' CHECK (state IN ('waiting','fetching','failed')),"
     "  last_error TEXT,"
     "  uploader INTEGER NOT NULL REFERENCES users(id),"
     "  created_at INTEGER NOT NULL"
     ") WITHOUT ROWID;"
     "CREATE TABLE IF NOT EXISTS blob_want_refs ("
     "  blob TEXT NOT NULL REFERENCES blob_wants(blob),"
     "  room INTEGER NOT NULL REFERENCES rooms(id),"
     "  pos INTEGER NOT NULL,"
     "  origin TEXT NOT NULL,"
     "  PRIMARY KEY (blob, room, pos)"
     ") WITHOUT ROWID;"
     "CREATE TABLE IF NOT EXISTS blob_bad_sources ("
     "  blob TEXT NOT NULL,"
     "  server_id TEXT NOT NULL,"
     "  at INTEGER NOT NULL,"
     "  PRIMARY KEY (blob, server_id)"
     ") WITHOUT ROWID;"),

    /* 18: the bound on blobs' staging files (federation_blob_staging_bytes, fed_blobs.c):
     * blob_wants.moved_at (column_adds below) is when a want's staged bytes last grew (ms; 0:
     * never, or before this migration), so the partial files that stalled longest are the
     * first dropped when space is needed; the index holds only wants with staged bytes, which
     * the staging total and that choice read. */
    ("CREATE INDEX IF NOT EXISTS blob_wants_staged ON blob_wants(moved_at) WHERE have > 0;"),

    /* 19: a photo posted before its blob finished uploading (issue 21, thumbnail first; see
     * store_blob_pending_add): the event (room, pos) waits for user_id's upload of blob, and
     * becomes a blob_refs row when that upload finishes. And the photos of a room by position,
     * for its last message in a room list. */
    ("CREATE TABLE IF NOT EXISTS blob_pending ("
     "  blob TEXT NOT NULL,"
     "  room INTEGER NOT NULL REFERENCES rooms(id),"
     "  pos INTEGER NOT NULL,"
     "  user_id INTEGER NOT NULL REFERENCES users(id),"
     "  PRIMARY KEY (blob, room, pos)"
     ") WITHOUT ROWID;"
     "CREATE INDEX IF NOT EXISTS blob_pending_user ON blob_pending(blob, user_id);"
     /* A room list's last message may be a photo (store_room_last_photo). */
     "CREATE INDEX IF NOT EXISTS events_room_photo ON events(room, pos) WHERE type = "
     "'e2ee.photo';"),

    /* 20: the record (issue 22, store_record.c, docs/records.md). record_reviewers: who may
     * review a room's record, given by an admin. record_reviews: one review of a room's record
     * (optionally a time range), by its reviewer (author), open until another person approves
     * it. record_passages: the events a review publishes. record_redactions: byte ranges of an
     * event's text (a msg's or a msg.edit's body) to black out, proposed by the helper or marked
     * by hand, each accepted or rejected by a person. record_holds: rooms whose record is kept
     * whatever retention says. */
    "CREATE TABLE IF NOT EXISTS record_reviewers ("
    "  room INTEGER NOT NULL REFERENCES rooms(id),"
    "  user_id INTEGER NOT NULL REFERENCES users(id),"
    "  granted_by INTEGER NOT NULL REFERENCES users(id),"
    "  granted_at INTEGER NOT NULL,"
    "  PRIMARY KEY (room, user_id)"
    ") WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS record_reviews ("
    "  id INTEGER PRIMARY KEY,"
    "  room INTEGER NOT NULL REFERENCES rooms(id),"
    "  author INTEGER NOT NULL REFERENCES users(id),"
    "  title TEXT NOT NULL,"
    "  from_ts INTEGER NOT NULL,"
    "  to_ts INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  approver INTEGER REFERENCES users(id),"
    "  approved_at INTEGER"
    ");"
    "CREATE INDEX IF NOT EXISTS record_reviews_room ON record_reviews(room);"
    "CREATE TABLE IF NOT EXISTS record_passages ("
    "  review INTEGER NOT NULL REFERENCES record_reviews(id),"
    "  event_id TEXT NOT NULL,"
    "  PRIMARY KEY (review, event_id)"
    ") WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS record_redactions ("
    "  id INTEGER PRIMARY KEY,"
    "  review INTEGER NOT NULL REFERENCES record_reviews(id),"
    "  event_id TEXT NOT NULL,"
    "  start INTEGER NOT NULL,"
    "  end INTEGER NOT NULL CHECK (end > start),"
    "  kind TEXT NOT NULL,"
    "  by_hand INTEGER NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('proposed','accepted','rejected')),"
    "  decided_by INTEGER REFERENCES users(id),"
    "  decided_at INTEGER,"
    "  UNIQUE (review, event_id, start, end)"
    ");"
    "CREATE TABLE IF NOT EXISTS record_holds ("
    "  room INTEGER PRIMARY KEY REFERENCES rooms(id),"
    "  held_by INTEGER NOT NULL REFERENCES users(id),"
    "  held_at INTEGER NOT NULL"
    ");",

    /* 21: Web Push (issue 24, store_push.c, docs/notifications.md). push_vapid: the server's
     * one VAPID key pair (P-256, raw bytes), made at init or first start. push_subs: a
     * browser's subscription, bound to the session that made it (a logout, revocation or
     * disabled account cuts it at once: sends join live sessions only); an endpoint is one
     * browser's, so subscribing it again moves it. push_outbox: sends not yet accepted by the
     * push service, durable so a restart loses none; notice, or room and pos, is what a read
     * elsewhere cancels. */
    ("CREATE TABLE IF NOT EXISTS push_vapid ("
     "  id INTEGER PRIMARY KEY CHECK (id = 1),"
     "  priv BLOB NOT NULL,"
     "  pub BLOB NOT NULL,"
     "  created_at INTEGER NOT NULL"
     ");"
     "CREATE TABLE IF NOT EXISTS push_subs ("
     "  id INTEGER PRIMARY KEY,"
     "  user_id INTEGER NOT NULL REFERENCES users(id),"
     "  session_id INTEGER NOT NULL REFERENCES sessions(id),"
     "  endpoint TEXT NOT NULL UNIQUE,"
     "  p256dh BLOB NOT NULL,"
     "  auth BLOB NOT NULL,"
     "  created_at INTEGER NOT NULL"
     ");"
     "CREATE INDEX IF NOT EXISTS push_subs_user ON push_subs(user_id);"
     "CREATE INDEX IF NOT EXISTS push_subs_session ON push_subs(session_id);"
     "CREATE TABLE IF NOT EXISTS push_outbox ("
     "  id INTEGER PRIMARY KEY,"
     "  sub INTEGER NOT NULL,"
     "  kind TEXT NOT NULL,"
     "  notice INTEGER,"
     "  room INTEGER,"
     "  pos INTEGER,"
     "  payload TEXT NOT NULL,"
     "  urgency TEXT NOT NULL,"
     "  ttl INTEGER NOT NULL,"
     "  tries INTEGER NOT NULL DEFAULT 0,"
     "  next_at INTEGER NOT NULL,"
     "  last_error TEXT,"
     "  created_at INTEGER NOT NULL"
     ");"
     "CREATE INDEX IF NOT EXISTS push_outbox_due ON push_outbox(next_at);"
     "CREATE INDEX IF NOT EXISTS push_outbox_sub ON push_outbox(sub);"
     /* E-mail through the town's relay (mail.c): mail_outbox holds each message until the
      * relay takes it (state pending) or refuses it for good (failed, kept for admins).
      * answer_links: a roll-call's one-tap answer for one person, by the hash of its token
      * (the token itself is only in the mail), usable once until expires_at. */
     "CREATE TABLE IF NOT EXISTS mail_outbox ("
     "  id INTEGER PRIMARY KEY,"
     "  user_id INTEGER NOT NULL REFERENCES users(id),"
     "  to_addr TEXT NOT NULL,"
     "  subject TEXT NOT NULL,"
     "  body TEXT NOT NULL,"
     "  notice INTEGER,"
     "  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','failed')),"
     "  tries INTEGER NOT NULL DEFAULT 0,"
     "  next_at INTEGER NOT NULL,"
     "  last_error TEXT,"
     "  created_at INTEGER NOT NULL"
     ");"
     "CREATE INDEX IF NOT EXISTS mail_outbox_due ON mail_outbox(next_at) WHERE state = 'pending';"
     /* push_quiet: a user's quiet hours (minutes of the day in the server's time_zone, from
      * start to end, across midnight if end < start): pushes that are not urgent wait. */
     "CREATE TABLE IF NOT EXISTS push_quiet ("
     "  user_id INTEGER PRIMARY KEY REFERENCES users(id),"
     "  start_min INTEGER NOT NULL CHECK (start_min BETWEEN 0 AND 1439),"
     "  end_min INTEGER NOT NULL CHECK (end_min BETWEEN 0 AND 1439)"
     ");"
     /* notice_reach: a recipient of a notice was reached outside the app: a push service
      * accepted a push for them, or the relay accepted a mail (notice.report's reach). */
     "CREATE TABLE IF NOT EXISTS notice_reach ("
     "  notice INTEGER NOT NULL REFERENCES notices(id),"
     "  user_id INTEGER NOT NULL REFERENCES users(id),"
     "  channel TEXT NOT NULL CHECK (channel IN ('push','email')),"
     "  at INTEGER NOT NULL,"
     "  PRIMARY KEY (notice, user_id, channel)"
     ") WITHOUT ROWID;"
     "CREATE TABLE IF NOT EXISTS answer_links ("
     "  token_hash BLOB PRIMARY KEY,"
     "  notice INTEGER NOT NULL REFERENCES notices(id),"
     "  user_id INTEGER NOT NULL REFERENCES users(id),"
     "  expires_at INTEGER NOT NULL,"
     "  used_at INTEGER,"
     "  choice INTEGER"
     ") WITHOUT ROWID;"),

    /* 22: JMA's feeds and the roll-calls they start (issue 25, store_jma.c, docs/alerts.md).
     * jma_seen: every feed entry whose telegram was fetched (or given up on), so that a restart
     * fetches nothing twice (JMA blocks clients that download too much). jma_alerts: one alert
     * per event that matched the rules, pending until its delay ends, then sent or cancelled;
     * details is its JSON (telegrams, places, epicentre, ...). jma_rules: the rules an admin set
     * with alert.rules.set, over the settings' defaults (one row). */
    "CREATE TABLE IF NOT EXISTS jma_seen ("
    "  entry_id TEXT PRIMARY KEY,"
    "  href TEXT NOT NULL,"
    "  seen_at INTEGER NOT NULL,"
    "  result TEXT NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS jma_seen_at ON jma_seen(seen_at);"
    "CREATE TABLE IF NOT EXISTS jma_alerts ("
    "  id INTEGER PRIMARY KEY,"
    "  kind TEXT NOT NULL,"
    "  event_id TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('pending','sent','cancelled')),"
    "  drill INTEGER NOT NULL,"
    "  strength INTEGER NOT NULL,"
    "  details TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  due_at INTEGER NOT NULL,"
    "  decided_at INTEGER,"
    "  decided_by TEXT,"
    "  notice INTEGER"
    ");"
    "CREATE INDEX IF NOT EXISTS jma_alerts_event ON jma_alerts(kind, event_id);"
    "CREATE TABLE IF NOT EXISTS jma_rules ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  rules TEXT NOT NULL,"
    "  updated_by TEXT NOT NULL,"
    "  updated_at INTEGER NOT NULL"
    ");",

    /* 23: what reaches whom (issue 24, store_push.c, server/notify_prefs.c). notify_prefs: a
     * person's choice of channels for one kind of notification, over the kind's default (no
     * row: the default). notify_user: their other choices (message previews in pushes). */
    "CREATE TABLE IF NOT EXISTS notify_prefs ("
    "  user_id INTEGER NOT NULL REFERENCES users(id),"
    "  kind TEXT NOT NULL,"
    "  push INTEGER NOT NULL,"
    "  email INTEGER NOT NULL,"
    "  PRIMARY KEY (user_id, kind)"
    ") WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS notify_user ("
    "  user_id INTEGER PRIMARY KEY REFERENCES users(id),"
    "  previews INTEGER NOT NULL DEFAULT 0"
    ");",

    /* 24: the outgoing webhook (issue 24, item 4; store_webhook.c, docs/notifications.md).
     * webhook_outbox: one delivery per event, its JSON body fixed when the event happened (every
     * try sends the same bytes, so a receiver may dedupe by the delivery id), pending until the
     * receiver answers 2xx (then deleted), or failed for good, kept for admins (webhook.status).
     * Same life cycle as mail_outbox (store_outbox.c). */
    "CREATE TABLE IF NOT EXISTS webhook_outbox ("
    "  id INTEGER PRIMARY KEY,"
    "  delivery TEXT NOT NULL UNIQUE,"
    "  kind TEXT NOT NULL,"
    "  notice INTEGER,"
    "  body TEXT NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','failed')),"
    "  tries INTEGER NOT NULL DEFAULT 0,"
    "  next_at INTEGER NOT NULL,"
    "  last_error TEXT,"
    "  created_at INTEGER NOT NULL"
    ");"
    "CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox(next_at)"
    " WHERE state = 'pending';",

    /* 25: who watches a group room, whose photos then push them (store_push.c,
     * server/push_events.c). A watch pushes only while its person is a present member (the
     * queue joins room_members), so leaving needs no cleanup; a table rather than a room_members
     * column keeps column_adds out of it. */
    "CREATE TABLE IF NOT EXISTS room_watch ("
    "  room INTEGER NOT NULL REFERENCES rooms(id),"
    "  user_id INTEGER NOT NULL REFERENCES users(id),"
    "  PRIMARY KEY (room, user_id)"
    ") WITHOUT ROWID;",

    /* 26: the daily digest (issue 24, server/mail_digest.c). The last day (YYYY-MM-DD in the
     * server's time_zone) each person's digest was done for, written in the transaction that
     * queues it: a restart or a clock set back never sends a day twice. */
    "CREATE TABLE IF NOT EXISTS mail_digest_days ("
    "  user_id INTEGER PRIMARY KEY REFERENCES users(id),"
    "  day TEXT NOT NULL"
    ");",
};

/* Columns a migration adds, each before that migration's SQL and only if the table lacks it:
 * tests step user_version back past a migration to replay it on an old-looking database, and
 * ALTER TABLE ADD COLUMN cannot say IF NOT EXISTS. */
static const struct {
    int migration; /* 1-based, as user_version counts */
    const char *table, *column, *decl;
} column_adds[] = {
    {15, "events", "hlc", "INTEGER"},
    {16, "users", "home", "TEXT"},
    {16, "rooms", "authority", "TEXT"},
    {16, "events", "received_at", "INTEGER"},
    {16, "events", "invalid", "TEXT"},
    {16, "events", "late", "INTEGER"},
    {16, "room_members", "read_hlc", "INTEGER"},
    {16, "room_members", "read_origin", "TEXT"},
    {16, "room_members", "read_inc", "INTEGER"},
    {16, "room_members", "read_seq", "INTEGER"},
    {16, "rooms", "hotline", "INTEGER"},
    {16, "rooms", "authority_event", "TEXT"},
    {18, "blob_wants", "moved_at", "INTEGER NOT NULL DEFAULT 0"},
    /* which way a one-tap answer link went out: in an e-mail, or in a push (notice.report) */
    {23, "answer_links", "channel", "TEXT NOT NULL DEFAULT 'email'"},
};
#define MIGRATION_COUNT ((int)(sizeof migrations / sizeof migrations[0]))

enum stmt_id {
    S_USER_INSERT,
    S_USER_GET,
    S_USER_GET_LOGIN,
    S_USER_SET_DISABLED,
    S_USER_SET_PASSWORD,
    S_USER_COUNT,
    S_USER_UPDATE,
    S_USER_EACH,
    S_SESSION_INSERT,
    S_SESSION_LOOKUP,
    S_SESSION_GET,
    S_SESSION_TOUCH,
    S_SESSION_END,
    S_SESSION_END_USER,
    S_SESSION_EACH,
    S_AUDIT_ADD,
    S_AUDIT_EACH,
    S_SESSION_IDLE,
    S_USER_EXPIRED,
    S_META_GET,
    S_META_SET,
    S_COUNT
};
_Static_assert(S_COUNT <= STORE_CORE_STMTS, "raise STORE_CORE_STMTS");

#define USER_COLS                                                                                  \
    "u.id, u.login, u.name, u.role, u.disabled, u.must_change_pw, u.pw_hash, u.created_at,"        \
    " u.updated_at, u.department, d.name, u.email, u.phone, u.expires_at, u.invite, u.home"        \
    " FROM users u LEFT JOIN departments d"                                                        \
    " ON d.id = u.department"

#define SESSION_COLS "id, user_id, device, address, created_at, last_seen, shared"

static const char *const stmt_sql[S_COUNT] = {
    [S_USER_INSERT] = "INSERT INTO users (login, name, role, disabled, must_change_pw, pw_hash,"
                      " created_at, updated_at, department, email, phone, expires_at, invite)"
                      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [S_USER_GET] = "SELECT " USER_COLS " WHERE u.id = ?",
    [S_USER_GET_LOGIN] = "SELECT " USER_COLS " WHERE u.login = ?",
    [S_USER_SET_DISABLED] = "UPDATE users SET disabled = ?, updated_at = ? WHERE id = ?",
    [S_USER_SET_PASSWORD] =
        "UPDATE users SET pw_hash = ?, must_change_pw = ?, updated_at = ? WHERE id = ?",
    [S_USER_COUNT] = "SELECT count(*) FROM users WHERE home IS NULL",
    [S_USER_UPDATE] = "UPDATE users SET name = ?, role = ?, department = ?, updated_at = ?,"
                      " email = ?, phone = ?, expires_at = ? WHERE id = ?",
    [S_USER_EACH] = "SELECT " USER_COLS " WHERE u.home IS NULL ORDER BY u.login",
    [S_SESSION_INSERT] = "INSERT INTO sessions (user_id, token_hash, device, address, created_at,"
                         " last_seen, shared) VALUES (?, ?, ?, ?, ?, ?, ?)",
    [S_SESSION_LOOKUP] = "SELECT " SESSION_COLS " FROM sessions WHERE token_hash = ?"
                         " AND ended_at IS NULL",
    [S_SESSION_GET] = "SELECT " SESSION_COLS " FROM sessions WHERE id = ? AND ended_at IS NULL",
    [S_SESSION_TOUCH] = "UPDATE sessions SET last_seen = ? WHERE id = ? AND ended_at IS NULL",
    [S_SESSION_END] = "UPDATE sessions SET ended_at = ? WHERE id = ? AND ended_at IS NULL",
    [S_SESSION_EACH] = "SELECT " SESSION_COLS " FROM sessions"
                       " WHERE user_id = ? AND ended_at IS NULL ORDER BY last_seen DESC",
    [S_META_GET] = "SELECT value FROM meta WHERE key = ?",
    [S_META_SET] = "INSERT INTO meta (key, value) VALUES (?1, ?2)"
                   " ON CONFLICT (key) DO UPDATE SET value = ?2",
    [S_SESSION_IDLE] =
        "SELECT " SESSION_COLS " FROM sessions"
        " WHERE shared = 1 AND ended_at IS NULL AND last_seen < ? ORDER BY id LIMIT ?",
    [S_USER_EXPIRED] = "SELECT id FROM users WHERE expires_at IS NOT NULL AND expires_at <= ?"
                       " AND disabled = 0 ORDER BY id LIMIT ?",
    [S_AUDIT_ADD] = "INSERT INTO audit (at, actor, address, action, target, details)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
    [S_AUDIT_EACH] = "SELECT id, at, actor, address, action, target, details FROM audit"
                     " WHERE (?1 IS NULL OR action = ?1) AND (?2 IS NULL OR actor = ?2)"
                     " AND (?3 IS NULL OR target = ?3) AND at >= ?4 AND id < ?5"
                     " ORDER BY id DESC LIMIT ?6",
    [S_SESSION_END_USER] =
        "UPDATE sessions SET ended_at = ? WHERE user_id = ? AND id != ? AND ended_at IS NULL",
};

static bool is_disk_error(int rc)
{
    rc &= 0xff;
    return rc == SQLITE_FULL || rc == SQLITE_IOERR || rc == SQLITE_READONLY ||
           rc == SQLITE_CANTOPEN;
}

enum store_rc store_fail(struct store *st, const char *what)
{
    snprintf(st->errmsg, sizeof st->errmsg, "%s: %s", what, sqlite3_errmsg(st->db));
    st->disk_error = is_disk_error(sqlite3_errcode(st->db));
    return STORE_ERROR;
}

bool store_disk_error(const struct store *st)
{
    return st->disk_error;
}

sqlite3_stmt *store_prepare_once(struct store *st, const char *sql, const char *what)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
        store_fail(st, what);
        sqlite3_finalize(s);
        return NULL;
    }
    return s;
}

enum store_rc store_run_once(struct store *st, sqlite3_stmt *s, const char *what)
{
    if (!s)
        return STORE_ERROR;
    int rc = sqlite3_step(s);
    enum store_rc out = rc == SQLITE_DONE         ? STORE_OK
                        : rc == SQLITE_CONSTRAINT ? STORE_CONFLICT
                                                  : store_fail(st, what);
    sqlite3_finalize(s);
    return out;
}

sqlite3_stmt *store_kept(struct store *st, enum store_notify_stmt id, const char *sql,
                         const char *what)
{
    if (!st->notify[id] && sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                              &st->notify[id], NULL) != SQLITE_OK) {
        store_fail(st, what);
        st->notify[id] = NULL;
    }
    return st->notify[id];
}

enum store_rc store_int_once(struct store *st, sqlite3_stmt *s, int64_t *out, const char *what)
{
    if (!s)
        return STORE_ERROR;
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_OK;
    if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
        *out = sqlite3_column_int64(s, 0);
    else if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        r = STORE_NOT_FOUND;
    else
        r = store_fail(st, what);
    sqlite3_finalize(s);
    return r;
}

enum store_rc store_step_done(struct store *st, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    enum store_rc out = STORE_OK;
    if (rc == SQLITE_CONSTRAINT)
        out = STORE_CONFLICT;
    else if (rc != SQLITE_DONE)
        out = store_fail(st, what);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return out;
}

enum store_rc store_prepare_all(struct store *st, const char *const *sql, sqlite3_stmt **out, int n,
                                const char *what, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) {
        if (sqlite3_prepare_v3(st->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &out[i], NULL) !=
            SQLITE_OK) {
            snprintf(err, errlen, "cannot prepare %s statement %d: %s", what, i,
                     sqlite3_errmsg(st->db));
            return STORE_ERROR;
        }
    }
    return STORE_OK;
}

enum store_rc store_step_int(struct store *st, sqlite3_stmt *s, int64_t *out, const char *what)
{
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_OK;
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(s, 0);
    else if (rc == SQLITE_DONE)
        r = STORE_NOT_FOUND;
    else
        r = store_fail(st, what);
    store_finish(s);
    return r;
}

void store_finish(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

static enum store_rc exec(struct store *st, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        snprintf(st->errmsg, sizeof st->errmsg, "%s", msg ? msg : "unknown error");
        sqlite3_free(msg);
        st->disk_error = is_disk_error(rc);
        return STORE_ERROR;
    }
    return STORE_OK;
}

/* A bounded copy without snprintf: a message's send path copies ~17 columns, and snprintf's
 * format machinery made them 11,000 instructions per message (callgrind, docs/performance.md). */
void store_copy_text(char *dst, size_t cap, sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    size_t n = t ? (size_t)sqlite3_column_bytes(s, col) : 0;
    if (cap == 0)
        return;
    if (n >= cap)
        n = strnlen((const char *)t, cap - 1);
    if (n)
        memcpy(dst, t, n);
    dst[n] = '\0';
}

static int user_version(struct store *st)
{
    sqlite3_stmt *s = NULL;
    int v = -1;
    if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return v;
}

/* Whether table has column (table and column are this file's constants). */
static bool has_column(struct store *st, const char *table, const char *column)
{
    sqlite3_stmt *s = NULL;
    bool found = false;
    if (sqlite3_prepare_v2(st->db, "SELECT 1 FROM pragma_table_info(?) WHERE name = ?", -1, &s,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(s, 1, table, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, column, -1, SQLITE_STATIC);
        found = sqlite3_step(s) == SQLITE_ROW;
    }
    sqlite3_finalize(s);
    return found;
}

/* Adds the columns migration number n adds, where missing; 0 or -1 (st->errmsg says why). */
static int add_columns(struct store *st, int n)
{
    for (size_t i = 0; i < sizeof column_adds / sizeof column_adds[0]; i++) {
        if (column_adds[i].migration != n ||
            has_column(st, column_adds[i].table, column_adds[i].column))
            continue;
        char sql[256];
        snprintf(sql, sizeof sql, "ALTER TABLE %s ADD COLUMN %s %s", column_adds[i].table,
                 column_adds[i].column, column_adds[i].decl);
        if (exec(st, sql))
            return -1;
    }
    return 0;
}

static enum store_rc migrate(struct store *st, char *err, size_t errlen)
{
    int v = user_version(st);
    if (v < 0) {
        snprintf(err, errlen, "cannot read schema version: %s", sqlite3_errmsg(st->db));
        return STORE_ERROR;
    }
    if (v > MIGRATION_COUNT) {
        snprintf(err, errlen,
                 "database schema version %d is newer than this kizunad (%d): upgrade kizunad", v,
                 MIGRATION_COUNT);
        return STORE_TOO_NEW;
    }
    for (; v < MIGRATION_COUNT; v++) {
        char pragma[48];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v + 1);
        if (exec(st, "BEGIN IMMEDIATE") || add_columns(st, v + 1) || exec(st, migrations[v]) ||
            exec(st, pragma) || exec(st, "COMMIT")) {
            snprintf(err, errlen, "migration %d failed: %s", v + 1, st->errmsg);
            exec(st, "ROLLBACK");
            return STORE_ERROR;
        }
    }
    return STORE_OK;
}

/* SQLite's update hook: called for every row this connection inserts, updates or deletes
 * (triggers and foreign-key actions included) in a table with rowids, as users, sessions,
 * departments and rooms are. Any change to the first three makes every cached user and
 * session stale; a change to users also every cached member list (it carries logins and
 * names), and a change to a room that room's entry (store_room_cache.c). */
static void rows_changed(void *arg, int op, const char *db, const char *table, sqlite3_int64 rowid)
{
    (void)op;
    (void)db;
    struct store *st = arg;
    if (strcmp(table, "users") == 0) {
        st->auth_gen++;
        store_rooms_forget_all(st);
    } else if (strcmp(table, "sessions") == 0 || strcmp(table, "departments") == 0) {
        st->auth_gen++;
    } else if (strcmp(table, "rooms") == 0) {
        store_room_forget(st, rowid);
    }
}

/* SQLite's rollback hook: every rollback of the transaction, ours or one SQLite makes by
 * itself after an error (a full disk, I/O), undoes changes the caches already saw. A
 * savepoint's ROLLBACK TO does not call it: store_op_end does the same there. */
static void rolled_back(void *arg)
{
    struct store *st = arg;
    st->auth_gen++;
    store_rooms_forget_all(st);
}

enum store_rc store_open(const struct store_options *opt, struct store **out, char *err,
                         size_t errlen)
{
    enum store_rc rc = STORE_ERROR;
    struct store *st = calloc(1, sizeof *st);
    *out = NULL;
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return STORE_ERROR;
    }
    /* The event loop owns the connection alone, so SQLite's own mutexes are dead weight. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(opt->path, &st->db, flags, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", opt->path,
                 st->db ? sqlite3_errmsg(st->db) : "out of memory");
        goto out;
    }
    sqlite3_extended_result_codes(st->db, 0);
    sqlite3_busy_timeout(st->db, opt->busy_timeout_ms);
    /* NORMAL locking even though kizunad is the only writer (it holds kizunad.lock): `kizunad
     * backup` reads a consistent snapshot from another process while the server runs, which
     * EXCLUSIVE would forbid. It costs a few percent of a write-heavy load (performance.md). */
    char pragmas[256];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA locking_mode=NORMAL; PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;"
             " PRAGMA foreign_keys=ON; PRAGMA cache_size=%d; PRAGMA temp_store=MEMORY;",
             opt->sync_full ? "FULL" : "NORMAL", opt->cache_kib > 0 ? -opt->cache_kib : -2000);
    if (exec(st, pragmas)) {
        snprintf(err, errlen, "cannot configure %s: %s", opt->path, st->errmsg);
        goto out;
    }
    rc = migrate(st, err, errlen);
    if (rc != STORE_OK)
        goto out;
    st->auth_gen = 1;
    st->room_gen = 1;
    sqlite3_update_hook(st->db, rows_changed, st);
    sqlite3_rollback_hook(st->db, rolled_back, st);
    rc = store_prepare_all(st, stmt_sql, st->stmt, S_COUNT, "core", err, errlen);
    if (rc != STORE_OK)
        goto out;
    rc = store_talk_prepare(st, err, errlen);
    if (rc == STORE_OK)
        rc = store_fts_init(st, err, errlen);
    if (rc == STORE_OK)
        rc = store_notice_prepare(st, err, errlen);
    if (rc == STORE_OK)
        rc = store_admin_prepare(st, err, errlen);
    if (rc == STORE_OK)
        rc = store_e2ee_prepare(st, err, errlen);
    if (rc != STORE_OK)
        goto out;
    *out = st;
    return STORE_OK;
out:
    store_close(st);
    return rc;
}

void store_close(struct store *st)
{
    if (!st)
        return;
    if (st->tx_open)
        store_tx_rollback(st);
    for (int i = 0; i < STORE_CORE_STMTS; i++)
        sqlite3_finalize(st->stmt[i]);
    for (int i = 0; i < STORE_TALK_STMTS; i++)
        sqlite3_finalize(st->talk[i]);
    for (int i = 0; i < STORE_NOTICE_STMTS; i++)
        sqlite3_finalize(st->notice[i]);
    for (int i = 0; i < STORE_ADMIN_STMTS; i++)
        sqlite3_finalize(st->admin[i]);
    for (int i = 0; i < STORE_E2EE_STMTS; i++)
        sqlite3_finalize(st->e2ee[i]);
    for (int i = 0; i < STORE_FED_STMTS; i++)
        sqlite3_finalize(st->fed[i]);
    for (int i = 0; i < NS_COUNT; i++)
        sqlite3_finalize(st->notify[i]);
    for (int i = 0; i < STORE_BLOB_STMTS; i++)
        sqlite3_finalize(st->blob[i]);
    if (st->db) {
        /* Leaves a short WAL behind, so the next start and any backup copy are quick. */
        sqlite3_exec(st->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
        sqlite3_close(st->db);
    }
    store_room_cache_free(st);
    free(st);
}

const char *store_errmsg(struct store *st)
{
    return st->errmsg;
}

int store_schema_latest(void)
{
    return MIGRATION_COUNT;
}

int store_schema_version(struct store *st)
{
    return user_version(st);
}

enum store_rc store_tx_begin(struct store *st)
{
    if (st->tx_open)
        return STORE_OK;
    /* IMMEDIATE takes the write lock now, so the busy timeout applies instead of a deadlock
     * error when a read would later upgrade to a write. */
    if (exec(st, "BEGIN IMMEDIATE"))
        return STORE_ERROR;
    st->tx_open = true;
    return STORE_OK;
}

enum store_rc store_tx_commit(struct store *st)
{
    if (!st->tx_open)
        return STORE_OK;
    if (store_fts_flush(st) != STORE_OK || exec(st, "COMMIT")) {
        store_tx_rollback(st);
        return STORE_ERROR;
    }
    st->tx_open = false;
    st->fts_pos_committed = st->fts_pos;
    return STORE_OK;
}

void store_tx_rollback(struct store *st)
{
    if (!st->tx_open)
        return;
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    st->tx_open = false;
    st->op_depth = 0;
    st->fts_pos = st->fts_pos_committed;
    st->pos_floor_known = false;
    st->auth_gen++; /* the hook saw changes that are now undone */
    store_rooms_forget_all(st);
}

bool store_tx_is_open(const struct store *st)
{
    return st->tx_open;
}

enum store_rc store_op_begin(struct store *st)
{
    enum store_rc rc = store_tx_begin(st);
    if (rc != STORE_OK)
        return rc;
    if (exec(st, "SAVEPOINT op"))
        return STORE_ERROR;
    st->op_depth++;
    st->fts_pos_op = st->fts_pos;
    return STORE_OK;
}

enum store_rc store_op_end(struct store *st, bool keep)
{
    if (st->op_depth == 0)
        return STORE_OK;
    st->op_depth--;
    if (!keep) {
        /* Whatever the op indexed is undone with it. */
        st->fts_pos = st->fts_pos_op;
        st->pos_floor_known = false;
        st->auth_gen++;
        store_rooms_forget_all(st);
        if (exec(st, "ROLLBACK TO op"))
            return STORE_ERROR;
    }
    return exec(st, "RELEASE op");
}

static void read_user(sqlite3_stmt *s, struct store_user *u)
{
    memset(u, 0, sizeof *u);
    u->id = sqlite3_column_int64(s, 0);
    store_copy_text(u->login, sizeof u->login, s, 1);
    store_copy_text(u->name, sizeof u->name, s, 2);
    store_copy_text(u->role, sizeof u->role, s, 3);
    u->disabled = sqlite3_column_int(s, 4) != 0;
    u->must_change_password = sqlite3_column_int(s, 5) != 0;
    store_copy_text(u->pw_hash, sizeof u->pw_hash, s, 6);
    u->created_at = sqlite3_column_int64(s, 7);
    u->updated_at = sqlite3_column_int64(s, 8);
    u->department = sqlite3_column_int64(s, 9);
    store_copy_text(u->department_name, sizeof u->department_name, s, 10);
    store_copy_text(u->email, sizeof u->email, s, 11);
    store_copy_text(u->phone, sizeof u->phone, s, 12);
    u->expires_at = sqlite3_column_int64(s, 13);
    u->invite = sqlite3_column_int64(s, 14);
    store_copy_text(u->home, sizeof u->home, s, 15);
}

/* Steps a statement expected to return at most one user row. */
static enum store_rc step_user(struct store *st, sqlite3_stmt *s, struct store_user *out)
{
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_OK;
    if (rc == SQLITE_ROW)
        read_user(s, out);
    else if (rc == SQLITE_DONE)
        r = STORE_NOT_FOUND;
    else
        r = store_fail(st, "user lookup");
    store_finish(s);
    return r;
}

enum store_rc store_user_insert(struct store *st, struct store_user *u, int64_t now)
{
    sqlite3_stmt *s = st->stmt[S_USER_INSERT];
    sqlite3_bind_text(s, 1, u->login, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, u->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, u->role, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 4, u->disabled);
    sqlite3_bind_int(s, 5, u->must_change_password);
    sqlite3_bind_text(s, 6, u->pw_hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 7, now);
    sqlite3_bind_int64(s, 8, now);
    if (u->department)
        sqlite3_bind_int64(s, 9, u->department);
    sqlite3_bind_text(s, 10, u->email, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 11, u->phone, -1, SQLITE_STATIC);
    if (u->expires_at)
        sqlite3_bind_int64(s, 12, u->expires_at);
    if (u->invite)
        sqlite3_bind_int64(s, 13, u->invite);
    enum store_rc rc = store_step_done(st, s, "user insert");
    if (rc == STORE_OK) {
        u->id = sqlite3_last_insert_rowid(st->db);
        u->created_at = u->updated_at = now;
    }
    return rc;
}

enum store_rc store_user_get(struct store *st, int64_t id, struct store_user *out)
{
    struct store_user_slot *slot = &st->user_cache[(uint64_t)id % STORE_AUTH_CACHE];
    if (slot->gen == st->auth_gen && slot->u.id == id) {
        *out = slot->u;
        return STORE_OK;
    }
    sqlite3_stmt *s = st->stmt[S_USER_GET];
    sqlite3_bind_int64(s, 1, id);
    enum store_rc rc = step_user(st, s, out);
    if (rc == STORE_OK) {
        slot->gen = st->auth_gen;
        slot->u = *out;
    }
    return rc;
}

enum store_rc store_user_get_by_login(struct store *st, const char *login, struct store_user *out)
{
    sqlite3_stmt *s = st->stmt[S_USER_GET_LOGIN];
    sqlite3_bind_text(s, 1, login, -1, SQLITE_STATIC);
    return step_user(st, s, out);
}

/* For UPDATEs addressed by id: no changed row means no such row. */
static enum store_rc step_update(struct store *st, sqlite3_stmt *s, const char *what)
{
    enum store_rc rc = store_step_done(st, s, what);
    if (rc == STORE_OK && sqlite3_changes(st->db) == 0)
        rc = STORE_NOT_FOUND;
    return rc;
}

enum store_rc store_user_set_disabled(struct store *st, int64_t id, bool disabled, int64_t now)
{
    sqlite3_stmt *s = st->stmt[S_USER_SET_DISABLED];
    sqlite3_bind_int(s, 1, disabled);
    sqlite3_bind_int64(s, 2, now);
    sqlite3_bind_int64(s, 3, id);
    return step_update(st, s, "user disable");
}

enum store_rc store_user_set_password(struct store *st, int64_t id, const char *pw_hash,
                                      bool must_change, int64_t now)
{
    sqlite3_stmt *s = st->stmt[S_USER_SET_PASSWORD];
    sqlite3_bind_text(s, 1, pw_hash, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, must_change);
    sqlite3_bind_int64(s, 3, now);
    sqlite3_bind_int64(s, 4, id);
    return step_update(st, s, "user password");
}

enum store_rc store_user_update(struct store *st, const struct store_user *u, int64_t now)
{
    sqlite3_stmt *s = st->stmt[S_USER_UPDATE];
    sqlite3_bind_text(s, 1, u->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, u->role, -1, SQLITE_STATIC);
    if (u->department)
        sqlite3_bind_int64(s, 3, u->department);
    sqlite3_bind_int64(s, 4, now);
    sqlite3_bind_text(s, 5, u->email, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, u->phone, -1, SQLITE_STATIC);
    if (u->expires_at)
        sqlite3_bind_int64(s, 7, u->expires_at);
    sqlite3_bind_int64(s, 8, u->id);
    return step_update(st, s, "user update");
}

enum store_rc store_user_count(struct store *st, int64_t *out)
{
    sqlite3_stmt *s = st->stmt[S_USER_COUNT];
    enum store_rc rc = STORE_OK;
    if (sqlite3_step(s) == SQLITE_ROW)
        *out = sqlite3_column_int64(s, 0);
    else
        rc = store_fail(st, "user count");
    store_finish(s);
    return rc;
}

enum store_rc store_user_each(struct store *st, store_user_fn fn, void *ctx)
{
    sqlite3_stmt *s = st->stmt[S_USER_EACH];
    struct store_user u;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        read_user(s, &u);
        if (fn(ctx, &u) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "user list");
    store_finish(s);
    return r;
}

enum store_rc store_session_insert(struct store *st, const uint8_t token_hash[STORE_TOKEN_HASH],
                                   struct store_session *ses)
{
    sqlite3_stmt *s = st->stmt[S_SESSION_INSERT];
    sqlite3_bind_int64(s, 1, ses->user_id);
    sqlite3_bind_blob(s, 2, token_hash, STORE_TOKEN_HASH, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, ses->device, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, ses->address, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, ses->created_at);
    sqlite3_bind_int64(s, 6, ses->last_seen);
    sqlite3_bind_int(s, 7, ses->shared);
    enum store_rc rc = store_step_done(st, s, "session insert");
    if (rc == STORE_OK)
        ses->id = sqlite3_last_insert_rowid(st->db);
    return rc;
}

/* Columns: SESSION_COLS. */
static void read_session(sqlite3_stmt *s, struct store_session *out)
{
    memset(out, 0, sizeof *out);
    out->id = sqlite3_column_int64(s, 0);
    out->user_id = sqlite3_column_int64(s, 1);
    store_copy_text(out->device, sizeof out->device, s, 2);
    store_copy_text(out->address, sizeof out->address, s, 3);
    out->created_at = sqlite3_column_int64(s, 4);
    out->last_seen = sqlite3_column_int64(s, 5);
    out->shared = sqlite3_column_int(s, 6) != 0;
}

static enum store_rc step_session(struct store *st, sqlite3_stmt *s, struct store_session *out)
{
    int rc = sqlite3_step(s);
    enum store_rc r = STORE_OK;
    if (rc == SQLITE_ROW) {
        read_session(s, out);
    } else if (rc == SQLITE_DONE) {
        r = STORE_NOT_FOUND;
    } else {
        r = store_fail(st, "session lookup");
    }
    store_finish(s);
    return r;
}

enum store_rc store_session_lookup(struct store *st, const uint8_t token_hash[STORE_TOKEN_HASH],
                                   struct store_session *out)
{
    sqlite3_stmt *s = st->stmt[S_SESSION_LOOKUP];
    sqlite3_bind_blob(s, 1, token_hash, STORE_TOKEN_HASH, SQLITE_STATIC);
    return step_session(st, s, out);
}

enum store_rc store_session_get(struct store *st, int64_t id, struct store_session *out)
{
    struct store_session_slot *slot = &st->session_cache[(uint64_t)id % STORE_AUTH_CACHE];
    if (slot->gen == st->auth_gen && slot->s.id == id) {
        *out = slot->s;
        return STORE_OK;
    }
    sqlite3_stmt *s = st->stmt[S_SESSION_GET];
    sqlite3_bind_int64(s, 1, id);
    enum store_rc rc = step_session(st, s, out);
    if (rc == STORE_OK) {
        slot->gen = st->auth_gen;
        slot->s = *out;
    }
    return rc;
}

enum store_rc store_session_each(struct store *st, int64_t user_id, store_session_fn fn, void *ctx)
{
    sqlite3_stmt *s = st->stmt[S_SESSION_EACH];
    sqlite3_bind_int64(s, 1, user_id);
    int rc;
    struct store_session ses;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        read_session(s, &ses);
        if (fn(ctx, &ses) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "session list");
    store_finish(s);
    return r;
}

enum store_rc store_session_touch(struct store *st, int64_t id, int64_t now)
{
    sqlite3_stmt *s = st->stmt[S_SESSION_TOUCH];
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int64(s, 2, id);
    return step_update(st, s, "session touch");
}

enum store_rc store_session_end(struct store *st, int64_t id, int64_t now)
{
    sqlite3_stmt *s = st->stmt[S_SESSION_END];
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int64(s, 2, id);
    return step_update(st, s, "session end");
}

enum store_rc store_session_end_user(struct store *st, int64_t user_id, int64_t keep_id,
                                     int64_t now)
{
    sqlite3_stmt *s = st->stmt[S_SESSION_END_USER];
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int64(s, 2, user_id);
    sqlite3_bind_int64(s, 3, keep_id);
    return store_step_done(st, s, "session end all");
}

enum store_rc store_audit_add(struct store *st, const struct store_audit *a)
{
    sqlite3_stmt *s = st->stmt[S_AUDIT_ADD];
    sqlite3_bind_int64(s, 1, a->at);
    sqlite3_bind_text(s, 2, a->actor, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, a->address, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, a->action, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, a->target, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, a->details, -1, SQLITE_STATIC);
    return store_step_done(st, s, "audit");
}

enum store_rc store_audit_each(struct store *st, const char *action, const char *actor,
                               const char *target, int64_t since, int64_t before, int limit,
                               store_audit_fn fn, void *ctx)
{
    sqlite3_stmt *s = st->stmt[S_AUDIT_EACH];
    if (action)
        sqlite3_bind_text(s, 1, action, -1, SQLITE_STATIC);
    if (actor)
        sqlite3_bind_text(s, 2, actor, -1, SQLITE_STATIC);
    if (target)
        sqlite3_bind_text(s, 3, target, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, since);
    sqlite3_bind_int64(s, 5, before > 0 ? before : INT64_MAX);
    sqlite3_bind_int(s, 6, limit);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_audit a = {
            .id = sqlite3_column_int64(s, 0),
            .at = sqlite3_column_int64(s, 1),
            .actor = (const char *)sqlite3_column_text(s, 2),
            .address = (const char *)sqlite3_column_text(s, 3),
            .action = (const char *)sqlite3_column_text(s, 4),
            .target = (const char *)sqlite3_column_text(s, 5),
            .details = (const char *)sqlite3_column_text(s, 6),
        };
        if (fn(ctx, &a) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    enum store_rc r = rc == SQLITE_DONE ? STORE_OK : store_fail(st, "audit list");
    store_finish(s);
    return r;
}

enum store_rc store_session_idle_shared(struct store *st, int64_t before, struct store_session *out,
                                        int max, int *n)
{
    sqlite3_stmt *s = st->stmt[S_SESSION_IDLE];
    sqlite3_bind_int64(s, 1, before);
    sqlite3_bind_int(s, 2, max);
    int rc;
    *n = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < max)
        read_session(s, &out[(*n)++]);
    enum store_rc r =
        rc == SQLITE_DONE || rc == SQLITE_ROW ? STORE_OK : store_fail(st, "idle sessions");
    store_finish(s);
    return r;
}

enum store_rc store_user_expired(struct store *st, int64_t now, int64_t *ids, int max, int *n)
{
    sqlite3_stmt *s = st->stmt[S_USER_EXPIRED];
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int(s, 2, max);
    int rc;
    *n = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < max)
        ids[(*n)++] = sqlite3_column_int64(s, 0);
    enum store_rc r =
        rc == SQLITE_DONE || rc == SQLITE_ROW ? STORE_OK : store_fail(st, "expired users");
    store_finish(s);
    return r;
}

enum store_rc store_meta_get(struct store *st, const char *key, int64_t *out)
{
    sqlite3_stmt *s = st->stmt[S_META_GET];
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    return store_step_int(st, s, out, "meta");
}

enum store_rc store_meta_set(struct store *st, const char *key, int64_t value)
{
    st->pos_floor_known = false;
    sqlite3_stmt *s = st->stmt[S_META_SET];
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, value);
    return store_step_done(st, s, "meta");
}

enum store_rc store_backup_file(const char *src, const char *dst, char *err, size_t errlen)
{
    sqlite3 *from = NULL, *to = NULL;
    enum store_rc rc = STORE_ERROR;
    if (sqlite3_open_v2(src, &from, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", src,
                 from ? sqlite3_errmsg(from) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(from, 5000);
    if (sqlite3_open_v2(dst, &to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot create %s: %s", dst, to ? sqlite3_errmsg(to) : "?");
        goto out;
    }
    /* One step: the copy is read inside one read transaction, a snapshot of a single commit,
     * and the server's writes go on meanwhile (WAL readers do not block the writer). */
    sqlite3_backup *b = sqlite3_backup_init(to, "main", from, "main");
    if (!b) {
        snprintf(err, errlen, "backup: %s", sqlite3_errmsg(to));
        goto out;
    }
    int step = sqlite3_backup_step(b, -1);
    sqlite3_backup_finish(b);
    if (step != SQLITE_DONE) {
        snprintf(err, errlen, "backup: %s", sqlite3_errstr(step));
        goto out;
    }
    /* The copy is a plain rollback-journal file, readable on its own without a -wal. */
    if (sqlite3_exec(to, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "backup: %s", sqlite3_errmsg(to));
        goto out;
    }
    rc = STORE_OK;
out:
    sqlite3_close(from);
    sqlite3_close(to);
    return rc;
}

enum store_rc store_check_file(const char *path, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    enum store_rc rc = STORE_ERROR;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "?");
        goto out;
    }
    if (sqlite3_step(s) == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(s, 0);
        if (r && strcmp(r, "ok") == 0)
            rc = STORE_OK;
        else
            snprintf(err, errlen, "%s is damaged: %s", path, r ? r : "?");
    } else {
        snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
    }
out:
    sqlite3_finalize(s);
    sqlite3_close(db);
    return rc;
}

enum store_rc store_blobs_in_file(const char *path, store_blob_fn fn, void *ctx, char *err,
                                  size_t errlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    enum store_rc rc = STORE_ERROR;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT id, size FROM blobs ORDER BY id", -1, &s, NULL) !=
            SQLITE_OK) {
        snprintf(err, errlen, "cannot read the blob list of %s: %s", path,
                 db ? sqlite3_errmsg(db) : "?");
        goto out;
    }
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW)
        if (fn(ctx, (const char *)sqlite3_column_text(s, 0), sqlite3_column_int64(s, 1)) != 0)
            break;
    if (step == SQLITE_ROW || step == SQLITE_DONE)
        rc = STORE_OK;
    else
        snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
out:
    sqlite3_finalize(s);
    sqlite3_close(db);
    return rc;
}
