/* fedcheck.h - checks of replication (issue 17, item 10) that read each server's database
 * directly, as a second opinion beside what the servers say about themselves: for one shared
 * room (rooms.room_id), its version vector (the logs table: origin, inc, head_seq), a set digest
 * (BLAKE2b-256 over the room's event ids, sorted), an order digest (over the event ids in the
 * room's display order: ORDER BY hlc, origin, inc, seq), any (origin, inc, seq) held with two
 * ids (and the rows of a fork evidence table, once there is one), and whether a list of event
 * ids acknowledged to clients (msg.send's event_id) each appear exactly once.
 *
 * Databases are opened read-only with sqlite3 (the server keeps them in WAL mode, so readers
 * never block its commits) with a busy timeout, and everything one fc_read reports comes from
 * one read transaction: one consistent snapshot per server. A server may be running, stopped
 * or killed; a database that cannot be read is reported, never asserted, so these functions are
 * usable from any thread. Nothing here knows how the servers replicate: two servers agree when
 * their databases say the same, however they got there. */
#ifndef KIZUNA_TEST_FEDCHECK_H
#define KIZUNA_TEST_FEDCHECK_H

#include <stdbool.h>
#include <stddef.h>

#define FC_LOGS_MAX   64 /* (origin, inc) logs of one room */
#define FC_ORIGIN_MAX 64
#define FC_ID_MAX     64 /* an event id: 43 base64url characters */

struct fc_log {
    char origin[FC_ORIGIN_MAX];
    long long inc, head_seq;
    long long rows; /* events of this log in the events table (head_seq when there is no gap) */
};

/* One server's view of one room, from one read transaction. */
struct fc_state {
    bool readable;     /* the database could be read (else err says why) */
    bool room_present; /* rooms has the room_id */
    int nlogs;         /* sorted by origin, inc */
    struct fc_log logs[FC_LOGS_MAX];
    long long events;     /* rows of the room in events */
    long long msgs;       /* of them type 'msg' */
    long long dup_bodies; /* msg bodies held more than once (a message stored twice) */
    long long two_ids;    /* (origin, inc, seq) held with more than one event id */
    long long fork_rows;  /* rows of tables named like '%fork%' (fork evidence), if any */
    unsigned char set_digest[32], order_digest[32];
    char err[256];
};

/* Reads db_path (a kizuna.db) for room_id into out; false (with out->err) if it could not be
 * read. A room the server does not hold is readable with room_present false. */
bool fc_read(const char *db_path, const char *room_id, struct fc_state *out);
/* Whether two states agree: both present, the same vector, set digest and order digest. */
bool fc_agree(const struct fc_state *a, const struct fc_state *b);
/* One line: "events N msgs M vector [origin/inc:head ...] set 1a2b3c4d order 5e6f7a8b" (and the
 * problems: two ids, forks, duplicate bodies, gaps). */
void fc_describe(const struct fc_state *s, char *buf, size_t n);
/* What each of n servers lacks against the union of their vectors, one line per server that
 * lacks anything ("jp-b: no room" / "jp-b lacks jp-a/1 seq 41..57, jp-c/1 seq 1..9"), and a
 * line per server whose digests differ from server 0's although its vector is the same. names
 * label the servers. Returns the length written (cut to n). */
size_t fc_diff(const struct fc_state *states, const char *const *names, int n, char *buf,
               size_t len);

/* The time in ms until the n databases agree on the room (fc_agree pairwise with the first, each
 * present and readable), polling every FC_POLL_MS, or -1 after deadline_ms. The last states read
 * go to last (n entries) if not NULL, for fc_diff. */
#define FC_POLL_MS 20
long long fc_wait_agree(const char *const *db_paths, int n, const char *room_id, int deadline_ms,
                        struct fc_state *last);

/* The time in ms until every one of the n databases holds event_id (the first report's latency
 * to all servers), polling every poll_ms (>= 1), or -1 after deadline_ms. */
long long fc_wait_event(const char *const *db_paths, int n, const char *event_id, int poll_ms,
                        int deadline_ms);

/* Acknowledged ids against one database: how many of the n ids are in the room's events
 * exactly once (*once), missing (*missing) or more than once (*extra, impossible while
 * event_id is UNIQUE, counted anyway). The first few missing ids go to err. false if the
 * database could not be read. */
struct fc_acked {
    long long once, missing, extra;
    char err[256];
};
bool fc_check_acked(const char *db_path, const char *room_id, const char *const *ids, size_t n,
                    struct fc_acked *out);

#endif
