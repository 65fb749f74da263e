/* core.h - the server core's private state (struct srv and what a call carries while it
 * runs). Included by the core's own files: proto.c, op_table.c, gate.c, commit.c, outbox.c
 * and the event files (event_log.c, event_apply.c, event_deliver.c, event_view.c), and by the
 * few files that need the core's state directly: ops_account.c (sessions), blobs.c (uploads
 * commit on their own), throttle.c. Op handlers otherwise see only server.h and its accessors
 * (srv_store, srv_config, srv_tx); the transport sees only transport.h's struct srv_transport. */
#ifndef KIZUNA_CORE_H
#define KIZUNA_CORE_H

#include "idmap.h"
#include "server.h"

/* A reply waiting for the transaction it depends on. */
struct held {
    uint64_t conn_id;
    bool is_http;
    cJSON *id;
    struct kz_frame *frame;
    struct held *next;
};

/* An event of the open transaction: its log's head is signed before the commit (event_log.c)
 * and it is delivered once the commit succeeds (event_deliver.c). */
struct pending_event {
    int64_t pos;
    int64_t room;
    int64_t also_user;      /* a user beyond the room's members who receives it (0: none) */
    const uint8_t *sk;      /* the key its log's checkpoint is signed with (its origin's) */
    size_t len;             /* its payload's bytes (bounded checkpoints count them) */
    struct kz_frame *frame; /* built when the event was made: no re-read after commit */
};

/* A frame for one user, to push once the open transaction commits. */
struct pending_push {
    int64_t user_id;
    struct kz_frame *frame;
    bool urgent;
};

/* Read markers that moved since the last `read` push of a room. */
struct read_dirty {
    int64_t room;
    int64_t lo, hi; /* messages in (lo, hi] changed their read counts */
    int64_t *users;
    size_t nusers, capusers;
};

/* A local user's read key in a shared room, published as a room.read event at most every
 * federation_read_publish_ms (event_deliver.c). Kept while one waits, or until that long after
 * the last one: a few entries per active reader, never one per room and user ever read. */
struct read_pub {
    int64_t room, user_id;
    int64_t published_at; /* ms: its last room.read (0: none yet) */
    bool due;             /* the key moved since */
};

struct srv {
    const struct kz_config *cfg;
    struct store *store;
    struct kz_workers *workers;
    struct srv_transport tx;
    struct held *held_head, *held_tail;
    char origin[STORE_ORIGIN_MAX + 1];
    int64_t inc;
    uint8_t sk[64];
    char key_id[12];        /* sk's key id (event format v2's `key`) */
    struct idmap room_hlc;  /* room -> int64_t *: the highest hlc it has seen (event_log.c) */
    int64_t (*clock)(void); /* NULL: kz_now_ms (srv_set_event_clock, for tests) */
    struct pending_event *pending;
    size_t npending, cappending;
    struct pending_push *pushes;
    size_t npushes, cappushes;
    struct read_dirty *dirty;
    size_t ndirty, capdirty;
    struct read_pub *pubs;
    size_t npubs, cappubs;
    bool tick_scheduled;
    char data_dir[4096]; /* blobs/ and uploads/ live here (blobs.c) */
    bool uploads_tidied; /* orphan staging files looked for since start */
    bool doomed;         /* a savepoint-less op failed after writing: roll back, do not commit */
    int64_t writes_blocked_until; /* ms: writes are refused before this (a disk error) */
    bool disk_alarm;              /* the disk alarm is raised: log when it clears */
    int64_t commit_ok_at;         /* ms: the last commit that succeeded (health.c) */
    int64_t commit_failed_at;     /* ms: the last commit that failed (0: none) */
    int64_t ready_probe_at;       /* ms: readyz's last write of its own */
    bool doomed_by_disk;          /* ... and the reason is the disk */
    uint64_t *subs;               /* connections that went live in the open transaction */
    size_t nsubs, capsubs;
    struct kz_syncer *syncer;   /* NULL: every commit waits for the disk itself */
    uint64_t commit_seq;        /* commits made (the syncer's numbering) */
    struct out_batch *out_head; /* what commits not yet on disk hold, oldest first */
    struct out_batch *out_tail;
    bool commit_waiting;   /* a transaction waits for the syncer to finish the last commit */
    bool reads_waiting;    /* ... and read markers wait for it (srv_tick) */
    struct fed_sync *fed;  /* replication's state (fed_sync.c), NULL until a link comes up */
    struct fed_blobs *fb;  /* blobs across servers (fed_blobs.c), NULL until first needed */
    struct srv_push *push; /* Web Push's key and sender (push.c), NULL until first needed */
    struct jma *jma;       /* JMA's feeds and alerts (jma_watch.c) */
};

/* proto.c: an error reply to a request that is no longer running (a held reply whose commit
 * failed): id is the request's (copied), retry_after_s > 0 adds the hint. */
void srv_send_error_to(struct srv *s, uint64_t conn_id, cJSON *id, bool is_http, enum kz_err e,
                       const char *msg, int64_t retry_after_s);

/* outbox.c: everything the core hands the transport goes through these. While a commit is
 * not yet on disk, they queue behind it (so no one sees what a power cut could take back, and
 * a connection's frames keep their order); otherwise they go straight out. */
void srv_out_send(struct srv *s, uint64_t conn_id, struct kz_frame *f);
void srv_out_push(struct srv *s, int64_t user_id, int64_t pos, struct kz_frame *f);
void srv_out_alert(struct srv *s, int64_t user_id, struct kz_frame *f);
void srv_out_close(struct srv *s, const struct srv_close *which);
/* A frame for a peer server's link (a reference is taken); peer must live as long as the core
 * (fed_sync.c's own copy of the id). */
void srv_out_fed(struct srv *s, const char *peer, struct kz_frame *f);
/* A commit numbered seq was made, its COMMIT issued at started (kz_metrics_clock): what follows
 * queues behind it, and the commit's latency is observed when it is on disk. -1 if out of
 * memory (the caller then waits for the disk instead). */
int srv_out_batch(struct srv *s, uint64_t seq, double started);
/* Sends what the commits now on disk hold, oldest first. */
void srv_out_release(struct srv *s);
/* Waits until every commit made is on disk and sends what they held. */
void srv_out_flush(struct srv *s);
void srv_out_free(struct srv *s);

/* After a disk error: refuse writes for disk_retry_ms and raise the alarm once. */
void srv_writes_block(struct srv *s);
/* event_log.c: signs the newest event of every log the open transaction extended, and enough
 * others that no run of unsigned events reaches checkpoint_events or checkpoint_bytes (before
 * COMMIT). */
enum kz_err srv_events_checkpoint(struct srv *s);
/* event_log.c: frees the rooms' clocks. */
void srv_room_hlc_free(struct srv *s);
/* event_apply.c: applies a stored event (e: its position, room, sender, type and time) with its
 * content to the derived state, inside the open transaction. *also_user receives a user who is
 * no longer a member but must receive the event (someone who left or was removed), else 0.
 * On failure *why is a static string. */
enum kz_err srv_event_apply(struct srv *s, const struct store_room *room,
                            const struct store_event *e, const cJSON *content, int64_t *also_user,
                            const char **why);
/* event_apply.c: a room.read event's content, {"read": [hlc, "origin", inc, seq]}, as a key:
 * false if it has another shape (out may be NULL, to check only). */
bool srv_read_key_from_json(const cJSON *content, struct store_order_key *out);
/* event_deliver.c: a local user's read key in a shared room moved: publish it (room.read) at
 * the next read push that federation_read_publish_ms allows. */
void srv_read_publish_later(struct srv *s, int64_t room, int64_t user_id);
/* event_view.c: whether a frame made by srv_event_frame_new is of an event clients are not
 * shown (room.read): it is queued for its checkpoint and replication, never pushed. */
bool srv_event_frame_hidden(const struct kz_frame *f);
/* event_view.c: a shared room's read count of message or photo e by server, one statement
 * (store_read_groups_event): named, [{"server","name","read","members"}, ...] as views show it;
 * else [[server, read, members], ...] as `read` pushes carry it. *total receives the sum of
 * the reads (its read_count). The caller owns the result; NULL (and *total 0) on a store
 * error. */
cJSON *srv_read_groups_json(struct srv *s, const struct store_event *e, bool named, int64_t *total);
/* event_deliver.c: queues an event of the open transaction (len: its payload's bytes; frame: a
 * reference the queue now owns) for its log's checkpoint with key sk and for delivery to the
 * room's members and also_user. -1 if out of memory (the frame stays the caller's). */
int srv_events_queue(struct srv *s, int64_t pos, int64_t room, int64_t also_user, const uint8_t *sk,
                     size_t len, struct kz_frame *frame);
/* event_deliver.c: after a successful commit, push the transaction's events; on failure,
 * forget. */
void srv_events_deliver(struct srv *s);
void srv_events_forget(struct srv *s);
/* Drops the events and pushes queued after the given marks (an op was rolled back). */
void srv_events_truncate(struct srv *s, size_t npending, size_t npushes);
/* event_deliver.c: push the coalesced read markers and free the dirty set. */
void srv_reads_push(struct srv *s);
void srv_reads_free(struct srv *s);

/* ---- replication (fed_sync.c, fed_receive.c) ---- */
/* Opens the transaction if none is (replication writes outside any op). */
enum kz_err srv_fed_tx_begin(struct srv *s);
/* A shared room's logs grew (or may have): every up peer is sent what it lacks after the
 * commit. */
void srv_fed_room_changed(struct srv *s, int64_t room);
/* peer holds (room, origin, inc) up to seq (it sent those events): nothing of them goes back. */
void srv_fed_peer_holds(struct srv *s, const char *peer, int64_t room, const char *origin,
                        int64_t inc, int64_t seq);
/* Tells peer how far this server holds a log once the open transaction commits: an ack, or a
 * want (it could not take what followed; retry: send again now). */
void srv_fed_ack(struct srv *s, const char *peer, const char *room_id, const char *origin,
                 int64_t inc, int64_t seq, bool want, bool retry);
/* After a commit (ok) or its failure: releases or drops the held frames, and sends peers what
 * they lack. */
void srv_fed_after_commit(struct srv *s, bool ok);
struct srv_fed_counters *srv_fed_counters_mut(struct srv *s);
/* A batch of (room, origin, inc) from first on, arrived before the batch before it: kept (a
 * copy of frame) until that one is taken; false if federation_pending_bytes is full. */
bool srv_fed_pending_put(struct srv *s, const char *peer, const cJSON *frame, const char *room,
                         const char *origin, int64_t inc, int64_t first);
/* A kept batch of that log that now follows head, removed from the pending area (the caller
 * owns it; *peer: who sent it), or NULL. */
cJSON *srv_fed_pending_take(struct srv *s, const char *room, const char *origin, int64_t inc,
                            int64_t head, const char **peer);
/* Whether peer's summaries on its current link named room_id, which this server does not hold:
 * the peer says this server shares it (a server admitted after the room's creation). */
bool srv_fed_offered(struct srv *s, const char *peer, const char *room_id);
/* A log of room that stopped at an authority event whose grant is not here yet; and, once a
 * room.authority event of room is taken, asking each such peer to send them again. */
void srv_fed_wait_add(struct srv *s, const char *peer, int64_t room, const char *room_id,
                      const char *origin, int64_t inc);
void srv_fed_wait_wake(struct srv *s, int64_t room);
/* fed_receive.c: one events frame from peer (docs/protocol.md). -1: the frame is malformed. */
int srv_fed_events_in(struct srv *s, const char *peer, const cJSON *j, char *why, size_t n);
void srv_fed_free(struct srv *s);
/* fed_sync.c: whether the event pump has nothing to send peer now (blob parts wait for it). */
bool srv_fed_pump_idle(struct srv *s, const char *peer);

/* ---- blobs across servers (fed_blobs.c; docs/federation.md, "Blobs across servers") ---- */
/* One blob.get, blob.part or blob.none frame (type t) from peer: 0 taken or ignored, -1
 * malformed (why says how; the link closes). */
int srv_fed_blob_frame(struct srv *s, const char *peer, const char *t, const cJSON *j, char *why,
                       size_t n);
/* peer's link came up or went down. */
void srv_fed_blobs_link(struct srv *s, const char *peer, bool up);
/* The event pump has nothing more for peer: a blob.get that waited is answered. */
void srv_fed_blobs_idle(struct srv *s, const char *peer);
/* A valid e2ee.photo event ev of room r taken from another server, in the open transaction:
 * each blob it names is referenced if here, else wanted (fetched after the commit). */
enum kz_err srv_fed_blobs_event(struct srv *s, const struct store_room *r,
                                const struct store_event *ev, const cJSON *content);
/* After a commit: wants recorded in it go looking for a source. */
void srv_fed_blobs_after_commit(struct srv *s, bool ok);
/* Housekeeping: timeouts, wants whose wait is over. */
void srv_fed_blobs_housekeep(struct srv *s);
void srv_fed_blobs_free(struct srv *s);
/* blobs.c: syncs a directory so a new name in it (a link, a new file) survives a power cut. -1
 * with errno on failure. */
int srv_dir_sync(const char *path);
/* event_log.c: a room's clock saw hlc (an event made elsewhere); *late: it sorts before an
 * event the room already holds. */
void srv_room_hlc_seen(struct srv *s, int64_t room, int64_t hlc, bool *late);

#endif
