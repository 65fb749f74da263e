/* fednet.h - several real kizunad on loopback, paired with each other, with a fault proxy on
 * every link: the fixture of the replication tests (issue 17, item 10).
 *
 * fednet_start starts n servers (harness.h's kzd: each its own temporary data directory, API
 * port and federation port, every one on 127.0.0.1) with the ids given, reads each one's key
 * and fingerprint with `kizunad fingerprint`, and pins every server on every other with
 * peer.add over the admin API, as two administrators would. Server i reaches server j only
 * through proxy[i][j] (faultproxy.h, one thread each, seeded from the fixture's seed): i's pin
 * of j names the proxy's port, the proxy forwards to j's federation port. Either side may dial,
 * so the link between i and j runs through proxy[i][j] or proxy[j][i]; fednet_cut cuts both.
 *
 * Restarts: fednet_kill (SIGKILL) and fednet_restart start the server again on the same data
 * directory, API port and federation port (kzd_start keeps them), so the proxies that forward
 * to it need no change and its peers' pins stay right.
 *
 * Nothing outlives the test: the servers are kzd processes, which get SIGKILL when the test's
 * thread ends however it ends (harness.h), so fednet_start and fednet_restart must run on the
 * test's own thread; the proxies are threads of the test process. fednet_stop (the test's
 * .fini) stops every server cleanly, asserting a clean exit with no leak (kzd_teardown), then
 * stops the proxies. */
#ifndef KIZUNA_TEST_FEDNET_H
#define KIZUNA_TEST_FEDNET_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "faultproxy.h"
#include "harness.h"

#define FEDNET_MAX 6

struct fednet_server {
    struct kzd d;
    char id[64];  /* server id, as `kizunad fingerprint` prints it */
    char key[64]; /* public key, base64url */
    char fp[80];  /* fingerprint */
    char db[320]; /* its kizuna.db */
    bool running;
};

struct fednet {
    int n;
    uint64_t seed;
    struct fednet_server s[FEDNET_MAX];
    struct faultproxy *proxy[FEDNET_MAX][FEDNET_MAX]; /* [i][j]: i dials j through it */
    bool cut[FEDNET_MAX][FEDNET_MAX];                 /* symmetric: the pair is cut */
};

/* The municipalities of the tests: the prefecture's HQ, a support city, a support town, the
 * affected town, and two more for the six-server Ehime example (docs/hotline.md). */
extern const char *const fednet_ids[FEDNET_MAX];

/* Starts n (2..FEDNET_MAX) servers with ids[0..n-1] (NULL: fednet_ids) and extra config members
 * (JSON without braces, may be NULL) on top of the fixture's (quick pings and hang-ups, and the
 * replication settings this kizunad knows, see fednet.c), pairs them all both ways through
 * their proxies and waits until every link is connected. Asserts on failure. */
void fednet_start(struct fednet *net, int n, const char *const *ids, const char *extra_config,
                  uint64_t seed);
/* Stops everything (idempotent; the .fini). */
void fednet_stop(struct fednet *net);

/* Waits until every pair that is not cut shows connected on both sides (peer.list), with a
 * deadline (asserts); returns the ms it took. */
long long fednet_wait_links(struct fednet *net, int deadline_ms);
/* Waits until server i shows its link to j disconnected (asserts after deadline_ms). */
void fednet_wait_down(struct fednet *net, int i, int j, int deadline_ms);
/* Cuts (or heals) the pair i, j: both proxies. */
void fednet_cut(struct fednet *net, int i, int j, bool cut);
/* Cuts (or heals) every pair with server i. */
void fednet_isolate(struct fednet *net, int i, bool cut);
/* Sets the same faults on every proxy (both directions as given). */
void fednet_faults(struct fednet *net, const struct fp_faults *f);
/* Sums every proxy's stats. */
void fednet_stats(struct fednet *net, struct fp_stats *sum);

/* SIGKILL server i (and reap it). */
void fednet_kill(struct fednet *net, int i);
/* Starts server i again on its data directory and ports (test thread only). */
void fednet_restart(struct fednet *net, int i);

/* Backups, as an operator takes and restores them (docs/operations.md "Backups"). fednet_backup
 * runs `kizunad backup` on server i's data directory while it serves (or not), into
 * DIR/fednet-backups/NAME: inside the data directory, so it is removed with it and survives
 * restores. fednet_restore SIGKILLs server i if it runs (a lost machine), replaces its data
 * directory with `kizunad restore` of the backup NAME (a new incarnation), carries the backups
 * and the server's stderr.log (with a line saying so) over to it, and starts the server again
 * on its ports; it returns the incarnation restore printed. Both run on the test's thread and
 * assert. fednet_backup_db gives the path of a backup's kizuna.db (for fedcheck.h's fc_read). */
void fednet_backup(struct fednet *net, int i, const char *name);
void fednet_backup_db(const struct fednet *net, int i, const char *name, char *path, size_t n);
long long fednet_restore(struct fednet *net, int i, const char *name);

/* An admin request (printf-formatted, without braces and id) on server i over a new
 * connection; the reply (caller deletes), never NULL (asserts). */
cJSON *fednet_admin(struct fednet *net, int i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Adds user login on server i with the password login TEST_PW_SUFFIX (asserts). */
void fednet_user_add(struct fednet *net, int i, const char *login);

#endif
