/* fedscene.h - a replication scenario (issue 17, item 10) on a fednet (fednet.h): a room shared
 * by n servers, users of each server who send to it, and the checks at the end, which read
 * every server's database (fedcheck.h).
 *
 * How a scene is set up, as the working spec has it: the authority's admin creates the room
 * with "servers":[the others]; once the room has arrived in a server's database, that server's
 * admin invites its own users (logins from the server id's last part: "matsuyama1"). Users send
 * msg.send with a client_id on their own server only, and send again under the same client_id
 * after a lost reply (a killed server) until acknowledged, so every message a user sent is
 * acknowledged exactly once, with one event id.
 *
 * Figures go to stderr as lines starting with "FIG" (for docs/federation.md): per scene and
 * seed, what each server's users sent, acknowledged and what it stores, duplicates the proxies
 * injected, time to agree, report latencies.
 *
 * Threads: the users run on threads of their own (scene_phase_*) and never assert; every other
 * function runs on the test's thread and asserts. The scene owns its fednet; scene_stop (the
 * test's .fini) stops it and frees everything, however the test ended.
 *
 * Environment: KZ_FED_SEED (the seed of the scene, the users and the proxies; printed),
 * KZ_FED_USERS (users per server, default 2), KZ_FED_MSGS (scene_msgs, default 15),
 * KZ_FED_CONVERGE_MS (how long servers may take to agree, default 60000). */
#ifndef KIZUNA_TEST_FEDSCENE_H
#define KIZUNA_TEST_FEDSCENE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>

#include "fedcheck.h"
#include "fednet.h"
#include "harness.h"

#define SCENE_DEFAULT_SEED 0x66656473796e63ULL /* "fedsync" */
#define SCENE_MAX_USERS    4                   /* per server */
#define SCENE_MAX_REPORTS  1000

/* A setting from the environment within lo..hi (asserts), else dflt. */
long long scene_env_ll(const char *name, long long dflt, long long lo, long long hi);
/* KZ_FED_SEED or SCENE_DEFAULT_SEED, printed. */
uint64_t scene_seed_env(void);
long long scene_now_ms(void); /* monotonic */
void scene_sleep_ms(long long ms);

/* xorshift64*, seeded by splitmix64 from (seed, stream). */
struct scene_rng {
    uint64_t s;
};
void scene_rng_seed(struct scene_rng *r, uint64_t seed, uint64_t stream);
long long scene_rng_range(struct scene_rng *r, long long lo, long long hi); /* inclusive */

struct scene_user {
    int srv;
    const struct fednet *net;
    char login[32];
    struct scene_rng rng;
    struct ws w;
    bool connected;
    long long next_id;
    int next_k; /* the next message's number: client ids stay unique across phases */
    /* what happened */
    char (*ids)[FC_ID_MAX]; /* acknowledged event ids (the scene owns them) */
    int nids, capids;
    int sent, resent, refused;
    char err[256];
    /* this phase */
    const char *room;
    int quota;                /* send at least this many */
    const atomic_bool *until; /* then go on until it is set (NULL: stop at the quota) */
    int gap_ms;               /* at most this long between two sends (seeded) */
};

struct scene {
    struct fednet net;
    const char *name;
    uint64_t seed;
    int users; /* per server */
    int nsrv;  /* servers in the room: 0..nsrv-1 (1: a room of server 0 only, not shared) */
    int authority;
    char room[64];
    long long extra_msgs; /* messages in the room not sent by the scene's users (a played peer) */
    struct scene_user u[FEDNET_MAX][SCENE_MAX_USERS];
    const char *db_paths[FEDNET_MAX]; /* each server's kizuna.db */
    const char *names[FEDNET_MAX];    /* each server's id */
};

/* Starts n servers (fednet_start), has server `authority` create a room shared with all the
 * others and, once it is on each server, its users invited there. */
void scene_setup(struct scene *sc, const char *name, int n, int authority);
/* The same; shared false makes a room of server 0 alone (not shared), with users on server 0
 * only, for proving the scene's own machinery without replication. */
void scene_setup_as(struct scene *sc, const char *name, int n, int authority, bool shared);
/* The two halves of scene_setup_as: start n servers and add the users of the room's servers;
 * then have server `authority` create the room (shared with the others and with more_servers,
 * JSON strings separated by commas, e.g. "\"jp-x\"", may be NULL) and, once it is on each
 * server, invite its users there. */
void scene_start(struct scene *sc, const char *name, int n, bool shared);
void scene_share(struct scene *sc, int authority, const char *more_servers);
/* Stops the servers and proxies and frees the users' records (idempotent). */
void scene_stop(struct scene *sc);
/* Asserts that r is an ok reply; if not, says what came back (freeing it first). */
void scene_want_ok(cJSON *r, const char *what, const char *where);

/* Sends message number k of user u until acknowledged (on the caller's thread; never asserts):
 * false, with u->err, if the server refused it or stayed away RECONNECT_MS. */
bool scene_user_send(struct scene_user *u, int k);
void scene_user_disconnect(struct scene_user *u);
/* A whole JSON request (printf-formatted) as scene user u on its own server, over a
 * connection of its own; the reply (caller deletes), never NULL (asserts). */
cJSON *scene_user_call(struct scene *sc, struct scene_user *u, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Every user of the servers in mask (bit i: server i) on a thread of its own: quota messages
 * each, 0-20 ms apart (seeded), then on until *until is set if until is not NULL. */
struct scene_phase {
    pthread_t th[FEDNET_MAX * SCENE_MAX_USERS];
    struct scene_user *who[FEDNET_MAX * SCENE_MAX_USERS];
    int n;
};
void scene_phase_start(struct scene *sc, struct scene_phase *ph, unsigned mask, int quota,
                       const atomic_bool *until);
/* Joins the users; asserts that none failed. */
void scene_phase_join(struct scene_phase *ph);
void scene_phase_run(struct scene *sc, unsigned mask, int quota);
unsigned scene_all(const struct scene *sc); /* the mask of the room's servers */
int scene_msgs(void);                       /* KZ_FED_MSGS */

/* Every user sends while a seeded random server of the room is killed at seeded random
 * moments (50-500 ms apart) and started again (after 0-200 ms), `kills` times. */
void scene_kills(struct scene *sc, int kills);

/* Asserts that the room's servers agree (vector, set and order digests) within
 * KZ_FED_CONVERGE_MS, and that none holds two ids at one (origin, inc, seq), a fork or a message
 * twice; prints each server's state (and what each lacks if they do not agree). The ms it took. */
long long scene_converge(struct scene *sc, const char *what);
/* Asserts that every acknowledged id is on every server of the room exactly once and that each
 * stores exactly the acknowledged messages; prints the figures. */
void scene_check_acked(struct scene *sc);
/* Prints the proxies' counts (connections, frames, duplicated, held back, resets). */
void scene_proxy_figures(struct scene *sc);
/* Times `reports` messages of u until every server of the room holds each (polled every 2 ms):
 * prints first, p50, p99 and max as the figure `label`; *first and *p50 for assertions. */
void scene_time_reports(struct scene *sc, struct scene_user *u, int reports, int deadline_ms,
                        const char *label, long long *first, long long *p50);

#endif
