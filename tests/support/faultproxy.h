/* faultproxy.h - a seeded, replayable fault-injecting TCP proxy for federation tests: one link
 * (127.0.0.1:ephemeral -> 127.0.0.1:target) served by one thread inside the test process.
 *
 * Why a thread and not a binary (kz-faultproxy): a test changes faults with a function call
 * (no control protocol to write, parse and wait on), reads counts and the decision log
 * directly for its assertions, and has nothing to kill: a thread cannot outlive its process,
 * so however the test ends (an assertion, a crash, Criterion's timeout) the proxy ends with it,
 * without PR_SET_DEATHSIG and without the harness's test-thread rule (the proxy never forks).
 * fp_stop() joins the thread (with a deadline) and frees everything, so a test that ends
 * normally leaves nothing running and nothing leaked.
 *
 * What flows through. Each accepted connection gets its own connection to the target. If the
 * first bytes from the dialing side are "GET ", the HTTP head of each direction is passed as
 * one unit; when the request asked for `Upgrade: websocket` and the reply is `101`, both
 * directions are then parsed as RFC 6455 frames (masked client->server, unmasked
 * server->client) and every later unit is exactly one frame, bytes unchanged. Anything else
 * (no "GET ", or no upgrade) is passed as raw chunks as they are read.
 *
 * Faults, per direction (FP_UP: dialer -> target, FP_DOWN: target -> dialer), changed at any
 * time with fp_set()/fp_cut():
 *   cut        new connections are accepted and reset at once (the target never sees them),
 *              existing ones are reset; fp_cut(p, false) heals.
 *   delay      every unit leaves no earlier than delay_ms + a seeded 0..jitter_ms after it was
 *              read; units never overtake each other because of jitter (TCP does not).
 *   slow       at most rate_bps bytes per second (sent in 50 ms slices).
 *   duplicate  dup_pct % of data frames (FIN set, text or binary: whole messages) are sent
 *              twice. Control frames and fragments are never duplicated or reordered.
 *   reorder    reorder_pct % of data frames are held back and sent after the next data frame
 *              that is not held itself (or reorder_hold_ms after the first was held, if none
 *              comes: nothing is lost); a control frame, fragment or raw chunk releases held
 *              frames before itself.
 *   truncate   trunc_pct % of frames: the connection is closed after a seeded number of the
 *              frame's bytes, strictly inside the frame (at least 1, at most all but 1).
 *   loss       loss_pct % of units (any: head, frame, raw chunk): the connection is reset
 *              after a seeded 0..len of the unit's bytes.
 *
 * Seeds and replay. Every decision comes from xorshift64* seeded by splitmix64 from (seed,
 * connection number, direction); each unit draws the same six numbers whether or not a fault
 * is on, so turning one fault on does not shift another's decisions. Connections are numbered
 * in accept order from 1. The same seed with the same connections and the same frames (in
 * each direction) gives the same decisions, logged by fp_decisions(); OS timing still varies
 * (when a held frame's partner arrives, how raw chunks are split by reads, how delays and
 * rate limits interleave with the other direction), so timings and a raw link's decisions are
 * not replayed exactly. The seed is printed to stderr at start; fp_seed_env() lets a run take
 * it from KIZUNA_FAULT_SEED.
 *
 * Bounds. A frame larger than max_frame resets the connection with a clear message
 * (fp_last_error, stderr); an HTTP head over FP_HEAD_MAX likewise. Each direction stops
 * reading while queue_cap bytes wait to be sent; at most FP_MAX_CONNS connections at once
 * (more are reset); the decision log keeps FP_LOG_MAX entries (fp_stats says how many more
 * were dropped). Every wait (connect to the target, stop) has a deadline.
 *
 * Thread safety: every function here may be called from any thread of the test while the
 * proxy runs, except fp_stop, which must be called once and last. None asserts (Criterion's
 * asserts belong to the test's own thread); a proxy that cannot do what it must aborts. */
#ifndef KIZUNA_TEST_FAULTPROXY_H
#define KIZUNA_TEST_FAULTPROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FP_MAX_FRAME_DEFAULT (1u << 20) /* bytes of one frame, header included */
#define FP_QUEUE_CAP_DEFAULT (4u << 20) /* bytes waiting per direction */
#define FP_HEAD_MAX          16384      /* bytes of an HTTP head */
#define FP_MAX_CONNS         64
#define FP_LOG_MAX           16384
#define FP_CONNECT_MS        2000 /* to connect to the target */
#define FP_STOP_MS           5000 /* for the thread to end in fp_stop */

enum fp_dir { FP_UP = 0, FP_DOWN = 1 };

/* One direction's faults; all zero = pass through. Percentages are 0..100. */
struct fp_dir_faults {
    int delay_ms, jitter_ms;
    long rate_bps; /* 0: no cap */
    int dup_pct, reorder_pct, trunc_pct, loss_pct;
};

struct fp_faults {
    struct fp_dir_faults dir[2]; /* [FP_UP], [FP_DOWN] */
    int reorder_hold_ms;         /* 0: 20 ms */
};

struct fp_config {
    int target_port;  /* on 127.0.0.1 */
    uint64_t seed;    /* printed at start */
    const char *name; /* for messages, e.g. "A->B"; may be NULL */
    size_t max_frame; /* 0: FP_MAX_FRAME_DEFAULT */
    size_t queue_cap; /* 0: FP_QUEUE_CAP_DEFAULT */
    struct fp_faults faults;
};

/* Counts since start, per direction where it applies. */
struct fp_stats {
    unsigned conns, refused, resets, errors;
    unsigned long long bytes_in[2], bytes_out[2];
    unsigned units[2], frames[2];
    unsigned dups[2], holds[2], truncs[2], losses[2];
    unsigned log_dropped;
};

struct faultproxy;

/* KIZUNA_FAULT_SEED (decimal or 0x hex) if set, else def. */
uint64_t fp_seed_env(uint64_t def);
/* Listens on 127.0.0.1:0 and starts the thread; NULL (and a message on stderr) on failure.
 * The caller owns the result and must pass it to fp_stop. */
struct faultproxy *fp_start(const struct fp_config *cfg);
/* The port to dial instead of the target's. */
int fp_port(const struct faultproxy *p);
/* Replaces all faults (cut is separate). */
void fp_set(struct faultproxy *p, const struct fp_faults *f);
/* Cuts or heals the link. A cut returns once every connection that was open has been reset
 * (aborting the test if the thread does not do it within FP_STOP_MS); from then on new ones
 * are refused until healed. */
void fp_cut(struct faultproxy *p, bool cut);
void fp_stats(struct faultproxy *p, struct fp_stats *out);
/* The decision log, one line per decision ("c1 up #3 dup": connection, direction, unit number
 * in that direction (an HTTP head is #1), decision, and for trunc/loss the byte offset, for
 * jitter the milliseconds drawn), sorted by connection, direction and unit (how the directions
 * interleave in time is not replayed), NUL-terminated and cut to cap. Returns the length it
 * would have had. */
size_t fp_decisions(struct faultproxy *p, char *buf, size_t cap);
/* The last error (a frame over the cap, a failed connect...), "" if none. */
void fp_last_error(struct faultproxy *p, char *buf, size_t cap);
/* Stops the thread (waking it, joining with an FP_STOP_MS deadline: past it the test aborts),
 * closes every socket, prints a summary with the seed and frees p. */
void fp_stop(struct faultproxy *p);

#endif
