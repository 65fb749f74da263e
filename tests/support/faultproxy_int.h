/* faultproxy_int.h - what the fault proxy's two files share (not for tests: they use
 * faultproxy.h). faultproxy_units.c turns the bytes read from one side into scheduled units
 * (the HTTP head, RFC 6455 frames, raw chunks) and draws the seeded decisions for each; no
 * sockets. faultproxy.c owns the sockets: the thread's poll loop, which reads, sends what is
 * due and ends connections, and the public functions. Everything in a struct faultproxy
 * belongs to its thread, except what its mutex guards (faults, cut, stop, counts, decision log,
 * last error), which the test's threads read and change through faultproxy.h. */
#ifndef KIZUNA_TEST_FAULTPROXY_INT_H
#define KIZUNA_TEST_FAULTPROXY_INT_H

#include "faultproxy.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IN_CAP_INITIAL 65536
#define HOLD_MS        20 /* reorder_hold_ms when 0 */

extern const char *const fpi_dir_name[2];

enum unit_end { END_NONE, END_TRUNC, END_LOSS };

/* One unit on its way out: an HTTP head, a frame or a raw chunk, as bytes. */
struct unit {
    struct unit *next;
    long long release_us;
    size_t len, off, stop_at; /* sent: off; to send: up to stop_at (len unless it ends early) */
    enum unit_end end;        /* what happens at stop_at */
    int copies;               /* a held unit: how many times it goes out when released */
    unsigned char data[];
};

enum parse { P_UNDECIDED, P_HEAD, P_FRAMES, P_RAW };

struct direction {
    unsigned char *in;
    size_t in_len, in_cap;
    enum parse parse;
    struct unit *head, *tail;
    struct unit *held, *held_tail; /* frames held back for a reorder, in arrival order */
    size_t queued;                 /* bytes in both lists, copies included */
    long long held_until_us;
    long long last_release_us, next_send_us;
    bool eof, shut, doomed; /* doomed: a unit ends the connection; read nothing more */
    uint64_t rng;
    unsigned units, frames;
};

struct conn {
    bool used, connecting;
    int fd[2]; /* [0] the dialer (reads for FP_UP), [1] the target */
    long long connect_deadline_us;
    unsigned no;
    bool upgrade_asked;
    struct direction d[2];
};

struct logent {
    unsigned conn, unit, at; /* at: its place in time, for a stable sort */
    uint8_t dir;
    char what[7];
    long long arg; /* -1: none */
};

struct faultproxy {
    int listen_fd, wake_fd, port;
    pthread_t thread;
    struct fp_config cfg;
    char name[48];
    pthread_mutex_t mu;      /* guards faults, cut, stop, the cut generations, stats, log, err */
    pthread_cond_t cut_done; /* the thread has reset what was open at a cut */
    struct fp_faults faults;
    bool cut, stop;
    unsigned cut_gen, cut_gen_applied; /* every fp_cut(true) is a generation */
    struct fp_stats st;
    struct logent *log;
    unsigned log_len;
    char err[256];
    unsigned next_conn;
    struct conn conns[FP_MAX_CONNS];
};

long long fpi_now_us(void);
/* The decision stream of one (connection, direction). */
uint64_t fpi_rng_stream(uint64_t seed, uint64_t stream);
/* Records and prints an error (takes the mutex). */
void fpi_error(struct faultproxy *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fpi_free_units(struct unit *u);
/* Queues every held frame of d (a hold timed out). */
void fpi_release_held(struct direction *d);
/* One unit read in direction dir: its decisions drawn, then queued (or held). eligible: a whole
 * data message (may be duplicated or reordered); frame: a WebSocket frame (may be truncated).
 * False: the connection must be reset. */
bool fpi_emit(struct faultproxy *p, struct conn *c, int dir, const unsigned char *bytes, size_t len,
              bool frame, bool eligible);
/* Cuts what arrived in c->d[dir].in into units. False: the connection must be reset. */
bool fpi_parse_input(struct faultproxy *p, struct conn *c, int dir);

#endif
