/* store_fed.h - federation's durable state (store_fed.c): this server's own id, fixed at
 * `kizunad init`, and the peers an admin pinned (server id, Ed25519 key, addresses, TLS pin,
 * municipality name). Both live in the database, so a backup carries them and a restore brings
 * them back with the logs they name.
 *
 * The same contract as store.h: one struct store, one thread; writes inside the caller's
 * transaction (store_tx_begin) or savepoint. Statements here are prepared per call, not kept:
 * they run at start-up and on an admin's rare peer.* op, never on a message's path.
 */
#ifndef KIZUNA_STORE_FED_H
#define KIZUNA_STORE_FED_H

#include "store.h"

#define STORE_SERVER_ID_MAX  63  /* bytes; a new id is 3-63 of [a-z0-9-] (fed_server_id_valid) */
#define STORE_PEER_ADDR_MAX  263 /* HOST:PORT, [V6]:PORT: a 253-byte name, ':' and 5 digits */
#define STORE_PEER_ADDRS_MAX 16  /* the bound of the peer_max_addresses setting */
#define STORE_PEER_PIN_MAX   44  /* base64 of a 32-byte SHA-256 */
#define STORE_PEER_KEY_BYTES 32  /* an Ed25519 public key */

/* The id this database's logs are written under, as stored by init or adopted at the first
 * start after the upgrade. out gets it (n bytes); STORE_NOT_FOUND if none is stored. */
enum store_rc store_server_id_get(struct store *st, char *out, size_t n);
/* Stores the id (once: STORE_CONFLICT if one is already stored). adopted records that it was
 * taken over from a database made before ids were stored, rather than given at init. */
enum store_rc store_server_id_set(struct store *st, const char *id, bool adopted, int64_t now);

struct store_peer {
    char server_id[STORE_SERVER_ID_MAX + 1];
    uint8_t key[STORE_PEER_KEY_BYTES];
    int naddr;
    char addr[STORE_PEER_ADDRS_MAX][STORE_PEER_ADDR_MAX + 1];
    char tls_pin[STORE_PEER_PIN_MAX + 1]; /* "" when none */
    char name[STORE_NAME_MAX + 1];        /* the municipality's display name, "" when none */
    char fingerprint[72];                 /* as fed_fingerprint wrote it at peer.add */
    char added_by[STORE_LOGIN_MAX + 1];
    int64_t added_at;
};

/* Inserts a peer; STORE_CONFLICT if its server id or its key is already a peer's. */
enum store_rc store_peer_insert(struct store *st, const struct store_peer *p);
/* The peer with this server id, or STORE_NOT_FOUND. */
enum store_rc store_peer_get(struct store *st, const char *server_id, struct store_peer *out);
/* The peer pinned to this key, or STORE_NOT_FOUND. */
enum store_rc store_peer_get_by_key(struct store *st, const uint8_t key[STORE_PEER_KEY_BYTES],
                                    struct store_peer *out);
/* Removes a peer; STORE_NOT_FOUND if there is none with this id. */
enum store_rc store_peer_delete(struct store *st, const char *server_id);
enum store_rc store_peer_count(struct store *st, int64_t *out);
/* Every peer in server id order; fn's p is valid during the call only. A non-zero return from
 * fn stops the walk (STORE_OK). */
typedef int (*store_peer_fn)(void *ctx, const struct store_peer *p);
enum store_rc store_peer_each(struct store *st, store_peer_fn fn, void *ctx);

/* ---- shared rooms and their replication (store_fed_sync.c) ---- */

/* The local handle of a user of another server: the users row (home = server, login
 * "login@server", disabled, no password) is made at first sight and its name kept current.
 * *user_id receives its id. */
enum store_rc store_actor_get(struct store *st, const char *server, const char *login,
                              const char *name, int64_t now, int64_t *user_id);

/* A shared room's member servers, as its authority's log says: admitted or removed at pos. */
enum store_rc store_room_server_set(struct store *st, int64_t room, const char *server,
                                    bool admitted, int64_t pos);
/* Whether server is an admitted member server of room (false for a local room). */
enum store_rc store_room_server_admitted(struct store *st, int64_t room, const char *server,
                                         bool *out);
/* Whether server was ever a member server of room (known), whether it is now (admitted), and
 * the position of the event that last changed that (changed_pos). */
enum store_rc store_room_server_state(struct store *st, int64_t room, const char *server,
                                      bool *known, bool *admitted, int64_t *changed_pos);
/* A removed server's cutoff in room: the last (inc, seq) of its log the room takes
 * (STORE_NOT_FOUND: none, it was never removed with one). */
enum store_rc store_room_server_cutoff(struct store *st, int64_t room, const char *server,
                                       int64_t *inc, int64_t *seq);
/* Removes server from room with a cutoff, at pos: records the cutoff, makes every event of its
 * logs past it invalid (its messages deleted from view and search), and its users leave the
 * room (local: the server is this one, whose users have no home). Inside the transaction. */
enum store_rc store_room_server_cut(struct store *st, int64_t room, const char *server, bool local,
                                    int64_t inc, int64_t seq, int64_t pos);
/* A shared room's authority handed on (room.authority): the new authority and the event that
 * named it (its basis, which its authority events cite); and reading the basis ("": the
 * creator's own, never handed on). */
enum store_rc store_room_set_authority(struct store *st, int64_t room, const char *server,
                                       const char *event_id);
enum store_rc store_room_authority_event(struct store *st, int64_t room, char *out, size_t n);
/* The server that created room (its creation event's origin). */
enum store_rc store_room_creator(struct store *st, int64_t room, char *out, size_t n);
/* How many room.authority events origin wrote in room before (inc, seq) citing basis ("": none). */
enum store_rc store_authority_handed(struct store *st, int64_t room, const char *origin,
                                     int64_t inc, int64_t seq, const char *basis, int64_t *out);
/* Hotline rooms (issue 18): the mark, and each member server's role in the counterpart group. */
enum store_rc store_room_set_hotline(struct store *st, int64_t room);
enum store_rc store_room_is_hotline(struct store *st, int64_t room, bool *out);
enum store_rc store_room_server_role_set(struct store *st, int64_t room, const char *server,
                                         const char *role);
/* The role (caller's buffer, "" when none) of server in room. */
enum store_rc store_room_server_role(struct store *st, int64_t room, const char *server, char *role,
                                     size_t n);
typedef int (*store_hotline_fn)(void *ctx, int64_t room, const char *room_id, const char *name,
                                const char *server, bool admitted, const char *role);
/* Every hotline room this server holds, each member server in turn (room, then server order). */
enum store_rc store_hotline_each(struct store *st, store_hotline_fn fn, void *ctx);
/* A hotline's seats: server's seat in room held by holder (0: vacant) from pos. */
#define STORE_SEAT_MAX 64 /* bytes of a seat's name */
enum store_rc store_seat_set(struct store *st, int64_t room, const char *server, const char *seat,
                             int64_t holder, bool on_duty, int64_t pos);
/* The holder (0: vacant) of server's seat in room; STORE_NOT_FOUND: no such seat. */
enum store_rc store_seat_holder(struct store *st, int64_t room, const char *server,
                                const char *seat, int64_t *holder);
/* A seat user holds in room for server (the first by name; caller's buffer), or
 * STORE_NOT_FOUND. */
enum store_rc store_seat_of(struct store *st, int64_t room, const char *server, int64_t user,
                            char *seat, size_t n);
typedef int (*store_seat_fn)(void *ctx, const char *server, const char *seat, int64_t holder,
                             const char *login, const char *name, bool on_duty);
/* Every seat of room (server, then seat order), with its holder's login and name ("": vacant). */
enum store_rc store_seats_each(struct store *st, int64_t room, store_seat_fn fn, void *ctx);
/* The newest (inc, head_seq) of server's logs in room ((0, 0): it wrote nothing there). */
enum store_rc store_log_latest(struct store *st, int64_t room, const char *server, int64_t *inc,
                               int64_t *seq);
/* The log (origin, inc) and seq of the event at pos (STORE_NOT_FOUND: none). origin: caller's
 * buffer. */
enum store_rc store_event_log_pos(struct store *st, int64_t pos,
                                  char origin[STORE_SERVER_ID_MAX + 1], int64_t *inc, int64_t *seq);
typedef int (*store_room_server_fn)(void *ctx, const char *server, bool admitted);
/* Every member server of room, admitted or removed, in id order. */
enum store_rc store_room_server_each(struct store *st, int64_t room, store_room_server_fn fn,
                                     void *ctx);
typedef int (*store_shared_room_fn)(void *ctx, int64_t room, const char *room_id);
/* The rooms shared with server (admitted), in room order from after_room; at most limit. */
enum store_rc store_shared_rooms_each(struct store *st, const char *server, int64_t after_room,
                                      int limit, store_shared_room_fn fn, void *ctx);

/* One (room, origin, inc) log: how far this server holds it. */
struct store_log {
    char origin[STORE_SERVER_ID_MAX + 1];
    int64_t inc, head_seq;
    char head_id[STORE_ROOM_ID_MAX + 1];
};
typedef int (*store_log_fn)(void *ctx, const struct store_log *l);
/* Every log of room (its version vector), in (origin, inc) order. */
enum store_rc store_log_each(struct store *st, int64_t room, store_log_fn fn, void *ctx);
/* The events of one log after seq after, in seq order, at most limit; fn's event is valid
 * during the call only (payload and sig included). */
enum store_rc store_log_range(struct store *st, int64_t room, const char *origin, int64_t inc,
                              int64_t after, int limit, store_event_fn fn, void *ctx);
/* The id of the event at (room, origin, inc, seq), or STORE_NOT_FOUND. */
enum store_rc store_event_id_at(struct store *st, int64_t room, const char *origin, int64_t inc,
                                int64_t seq, char id[STORE_ROOM_ID_MAX + 1]);

/* How far peer has acknowledged a log (0: nothing), and moving that forward (never back). */
enum store_rc store_fed_cursor_get(struct store *st, const char *peer, int64_t room,
                                   const char *origin, int64_t inc, int64_t *acked);
enum store_rc store_fed_cursor_set(struct store *st, const char *peer, int64_t room,
                                   const char *origin, int64_t inc, int64_t acked, int64_t now);
/* What peer still lacks of the rooms shared with it: events, their payload bytes, and the
 * origin time of the oldest of them (0: none). */
enum store_rc store_fed_lag(struct store *st, const char *peer, int64_t *events, int64_t *bytes,
                            int64_t *oldest_ts);
/* Which member servers acknowledged the event at (room, origin, inc, seq): fn per server with
 * whether its cursor is at or past seq (the origin itself always has it). */
enum store_rc store_fed_acked_each(struct store *st, int64_t room, const char *origin, int64_t inc,
                                   int64_t seq, store_room_server_fn fn, void *ctx);

/* A fork: another event than the one held at (room, origin, inc, seq), kept as evidence. The
 * log is quarantined above seq - 1 from then on (store_fed_quarantine). */
struct store_fork {
    int64_t room;
    const char *origin;
    int64_t inc, seq;
    const char *held_id, *other_id, *from_peer;
    const void *payload, *sig;
    size_t payload_len, sig_len;
    int64_t at;
};
enum store_rc store_fed_fork_add(struct store *st, const struct store_fork *f);
/* The lowest forked seq of a log (STORE_NOT_FOUND: not quarantined). */
enum store_rc store_fed_quarantine(struct store *st, int64_t room, const char *origin, int64_t inc,
                                   int64_t *seq);
/* Forks recorded with events made by origin (all rooms). */
enum store_rc store_fed_fork_count(struct store *st, const char *origin, int64_t *out);

/* ---- blobs wanted from other servers (store_blob_fetch.c, migration 17) ----
 * A received e2ee.photo names blobs this server may not hold: each is wanted until its bytes
 * are fetched from a member server and hash to its id (server/fed_blobs.c). */
struct store_blob_want {
    char blob[STORE_BLOB_ID_LEN + 1];
    int64_t total;                        /* 0: no source has said yet */
    int64_t have;                         /* bytes staged and fsynced */
    char source[STORE_SERVER_ID_MAX + 1]; /* where the staged bytes come from ("": none) */
    int64_t tries;
    int64_t next_at; /* ms: not tried before */
    char state[12];  /* "waiting", "fetching" or "failed" */
    char last_error[160];
    int64_t uploader; /* the photo's sender (an actor), the blobs row's uploader */
    int64_t moved_at; /* ms: when have last grew (0: never) */
};
/* The event at (room, pos), made by origin's user uploader, needs blob: recorded (the want is
 * made at first sight, its state kept after). */
enum store_rc store_blob_want_add(struct store *st, const char *blob, int64_t room, int64_t pos,
                                  const char *origin, int64_t uploader, int64_t now);
/* STORE_NOT_FOUND if blob is not wanted. */
enum store_rc store_blob_want_get(struct store *st, const char *blob, struct store_blob_want *out);
/* Wants due at now (next_at <= now), soonest first, at most limit; fn's w is valid during the
 * call only, a non-zero return stops. */
typedef int (*store_blob_want_fn)(void *ctx, const struct store_blob_want *w);
enum store_rc store_blob_want_due(struct store *st, int64_t now, int limit, store_blob_want_fn fn,
                                  void *ctx);
/* Staged bytes moved: have of total, from source, in state; a have larger than before sets
 * the want's moved_at to now (what store_blob_want_stale orders by). */
enum store_rc store_blob_want_progress(struct store *st, const char *blob, int64_t have,
                                       int64_t total, const char *source, const char *state,
                                       int64_t now);
/* The want waits (state waiting) until next_at, for why, its staged bytes kept; total (0: not
 * known) is kept even with none staged, as what the next try must make room for. */
enum store_rc store_blob_want_wait(struct store *st, const char *blob, int64_t total,
                                   int64_t next_at, const char *why);
/* The staged bytes of every want together (the sum of have). */
enum store_rc store_blob_staged_bytes(struct store *st, int64_t *out);
/* Wants with staged bytes that have not grown since before (moved_at <= before), the longest
 * stalled first, at most limit: fn as store_blob_want_due. */
enum store_rc store_blob_want_stale(struct store *st, int64_t before, int limit,
                                    store_blob_want_fn fn, void *ctx);
/* A try ended without the blob: state, staged bytes kept (have), tries, when to try next and
 * why. */
enum store_rc store_blob_want_retry(struct store *st, const char *blob, const char *state,
                                    int64_t have, int64_t tries, int64_t next_at, const char *why);
/* The servers that may hold blob: admitted member servers (not self) of the rooms whose events
 * want it, the events' origins first, then by id, without those whose bytes failed its hash;
 * room_id is a room of those events the server is admitted to (what a blob.get names). */
typedef int (*store_blob_source_fn)(void *ctx, const char *server, const char *room_id,
                                    bool is_origin);
enum store_rc store_blob_want_sources(struct store *st, const char *blob, const char *self,
                                      store_blob_source_fn fn, void *ctx);
/* server's bytes failed blob's hash; the last such server (out, n bytes; "" if none); and the
 * list forgotten (every source is tried again). */
enum store_rc store_blob_bad_add(struct store *st, const char *blob, const char *server,
                                 int64_t now);
enum store_rc store_blob_bad_last(struct store *st, const char *blob, char *out, size_t n);
enum store_rc store_blob_bad_clear(struct store *st, const char *blob);
/* blob's bytes are in place (size bytes): its blobs row (uploader: the want's), a blob_refs
 * row for every event that waited, and the want gone. */
enum store_rc store_blob_want_done(struct store *st, const char *blob, int64_t size, int64_t now);
/* Whether user may read blob once it is here: a current member of a room with an event that
 * waits for it (in a room whose history is 'joined', an event since the join). */
enum store_rc store_blob_want_readable(struct store *st, const char *blob, int64_t user_id,
                                       bool *out);
/* Whether blob is here, complete, referenced in the room room_id, and server is an admitted
 * member server of that room: *size its bytes; STORE_NOT_FOUND otherwise (one answer for all). */
enum store_rc store_blob_servable(struct store *st, const char *blob, const char *room_id,
                                  const char *server, int64_t *size);
/* Whether room has an event that references blob (here) or waits for it (wanted). */
enum store_rc store_blob_in_room(struct store *st, const char *blob, int64_t room, bool *here,
                                 bool *wanted);
/* Every want is due now (a link came up: what waited for a source looks again). */
enum store_rc store_blob_want_wake(struct store *st);
/* Every want that waits with exactly why as its last error is due now (staging space was
 * freed: what waited for it looks again). */
enum store_rc store_blob_want_wake_why(struct store *st, const char *why);
/* Every want (for the start-up sweep of staging files): fn as store_blob_want_due. */
enum store_rc store_blob_want_each(struct store *st, store_blob_want_fn fn, void *ctx);

#endif
