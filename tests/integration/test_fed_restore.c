/* test_fed_restore.c - restores in shared rooms (issue 17, item 8; T6 of "Tests and figures")
 * and the "Done when" scenario, between real kizunad processes paired through a fault
 * proxy per link (support/fednet.h), with the databases as the judge (support/fedcheck.h).
 *
 * A restore brings a server's data directory back to an older backup: it forgets what it wrote
 * since (and what it received), and starts a new incarnation of its logs. No server may then
 * hold two events at one (origin, incarnation, seq) (a fork, fed_forks), the restored server
 * takes the tail of its older incarnation back from its peers, read-only, and every write
 * acknowledged to a client, before or after the backup, is on every server exactly once.
 * Backups are taken with `kizunad backup` while the server runs and restored with `kizunad
 * restore`, as docs/operations.md tells an administrator (fednet_backup, fednet_restore).
 *
 * Writes a restored server acknowledged but had not passed on before it was lost are lost for
 * good (docs/operations.md, "What is lost"): the scenes wait until its peers hold what it
 * wrote before they lose it, so that every acknowledged write can be required everywhere.
 *
 * Figures go to stderr as lines starting with "FIG"; the servers' warnings and errors about
 * federation (fed_*) are counted per server as "LOG" lines. Environment: as test_fed_sync.c
 * (KZ_FED_SEED, KZ_FED_MSGS, KZ_FED_USERS, KZ_FED_CONVERGE_MS). */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedscene.h"

static struct scene the_scene; /* stopped and freed by the teardown, however the test ends */

static void teardown(void)
{
    scene_stop(&the_scene);
}

TestSuite(fed_restore, .fini = teardown, .timeout = 240);

/* ---- reading a server's database and log ---- */

/* One integer from db_path (read-only), or -1 with err. */
static long long db_int(const char *db_path, const char *sql, const char *arg1, const char *arg2,
                        char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(db, 5000) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", db_path, db ? sqlite3_errmsg(db) : "no memory");
    } else {
        if (arg1)
            sqlite3_bind_text(st, 1, arg1, -1, SQLITE_STATIC);
        if (arg2)
            sqlite3_bind_text(st, 2, arg2, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
        else
            snprintf(err, errlen, "%s: %s", db_path,
                     rc == SQLITE_DONE ? "no row" : sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* Rows of fed_forks on server i (the fork evidence): asserts the table is there and readable,
 * so that "no fork" is never an empty answer to a missing table. */
static long long fork_rows(struct scene *sc, int i)
{
    char err[512] = "";
    long long n =
        db_int(sc->db_paths[i], "SELECT count(*) FROM fed_forks", NULL, NULL, err, sizeof err);
    cr_assert_geq(n, 0, "fed_forks on %s: %s", sc->names[i], err);
    return n;
}

/* The incarnation of the log that holds event_id in the room on server i, or -1. */
static long long event_inc(struct scene *sc, int i, const char *event_id)
{
    char err[512];
    return db_int(sc->db_paths[i],
                  "SELECT e.inc FROM events e JOIN rooms r ON r.id = e.room"
                  " WHERE r.room_id = ?1 AND e.event_id = ?2",
                  sc->room, event_id, err, sizeof err);
}

/* The log (origin, inc) in a state, or NULL. */
static const struct fc_log *find_log(const struct fc_state *st, const char *origin, long long inc)
{
    for (int k = 0; k < st->nlogs; k++)
        if (strcmp(st->logs[k].origin, origin) == 0 && st->logs[k].inc == inc)
            return &st->logs[k];
    return NULL;
}

static struct fc_state read_state(const char *db, const char *room, const char *who)
{
    struct fc_state st;
    cr_assert(fc_read(db, room, &st), "%s: %s", who, st.err);
    cr_assert(st.room_present, "%s does not hold the room", who);
    return st;
}

/* Counts the warnings and errors about federation ("fed_*") in each server's stderr.log and
 * prints them per server as a LOG line; returns how many fed_fork errors were logged. */
static int log_figures(struct scene *sc)
{
    int forks = 0;
    for (int i = 0; i < sc->nsrv; i++) {
        char path[400], line[2048];
        snprintf(path, sizeof path, "%s/stderr.log", sc->net.s[i].d.dir);
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f, "%s", path);
        struct {
            char ev[64];
            char level[16];
            int n;
        } seen[32];
        int nseen = 0;
        while (fgets(line, sizeof line, f)) {
            /* logfmt: "ts=... level=warn component=federation event=fed_fork ..." */
            char level[16], ev[64];
            const char *lv = strstr(line, " level="), *e = strstr(line, " event=");
            if (!lv || !e || sscanf(lv + 7, "%15[^ ]", level) != 1 ||
                sscanf(e + 7, "%63[^ \n]", ev) != 1 || strncmp(ev, "fed_", 4) != 0)
                continue;
            if (strcmp(level, "warn") != 0 && strcmp(level, "error") != 0)
                continue;
            if (strcmp(ev, "fed_fork") == 0)
                forks++;
            int k = 0;
            while (k < nseen && (strcmp(seen[k].ev, ev) != 0 || strcmp(seen[k].level, level) != 0))
                k++;
            if (k == nseen && nseen < 32) {
                snprintf(seen[k].ev, sizeof seen[k].ev, "%s", ev);
                snprintf(seen[k].level, sizeof seen[k].level, "%s", level);
                seen[k].n = 0;
                nseen++;
            }
            if (k < nseen)
                seen[k].n++;
        }
        fclose(f);
        fprintf(stderr, "LOG %s: %s: federation warnings and errors:", sc->name, sc->names[i]);
        for (int k = 0; k < nseen; k++)
            fprintf(stderr, " %s %s x%d", seen[k].level, seen[k].ev, seen[k].n);
        fprintf(stderr, "%s\n", nseen ? "" : " none");
    }
    return forks;
}

/* No fork anywhere: fed_forks empty on every server, and no fed_fork in any server's log. */
static void assert_no_forks(struct scene *sc)
{
    int logged = log_figures(sc);
    for (int i = 0; i < sc->nsrv; i++)
        cr_assert_eq(fork_rows(sc, i), 0, "%s recorded a fork (fed_forks)", sc->names[i]);
    cr_assert_eq(logged, 0, "fed_fork logged %d times (LOG lines above)", logged);
}

/* Every server holds server r's older log (origin, 1) up to exactly `head` (the tail the
 * restore lost, taken back), and its new incarnation `inc` with at least `min_new` events. */
static void assert_incarnations(struct scene *sc, int r, long long head, long long inc,
                                long long min_new)
{
    for (int i = 0; i < sc->nsrv; i++) {
        struct fc_state st = read_state(sc->db_paths[i], sc->room, sc->names[i]);
        const struct fc_log *old = find_log(&st, sc->names[r], 1);
        const struct fc_log *now = find_log(&st, sc->names[r], inc);
        cr_assert_not_null(old, "%s has no log %s/1", sc->names[i], sc->names[r]);
        cr_assert_eq(old->head_seq, head,
                     "%s holds %s/1 up to %lld; %s had written it up to %lld before the restore",
                     sc->names[i], sc->names[r], old->head_seq, sc->names[r], head);
        cr_assert_eq(old->rows, head, "%s: %s/1 has gaps", sc->names[i], sc->names[r]);
        cr_assert_not_null(now, "%s has no log %s/%lld: the restored server's new incarnation",
                           sc->names[i], sc->names[r], inc);
        cr_assert_geq(now->head_seq, min_new, "%s: %s/%lld", sc->names[i], sc->names[r], inc);
        cr_assert_eq(now->rows, now->head_seq, "%s: %s/%lld has gaps", sc->names[i], sc->names[r],
                     inc);
        for (int k = 0; k < st.nlogs; k++)
            cr_assert(strcmp(st.logs[k].origin, sc->names[r]) != 0 || st.logs[k].inc <= inc,
                      "%s holds %s/%lld, after the restore's %lld", sc->names[i], sc->names[r],
                      st.logs[k].inc, inc);
    }
}

/* Every id user u acknowledged from index `from` on is in log (its server, inc) on every
 * server. */
static void assert_ids_in_inc(struct scene *sc, struct scene_user *u, int from, long long inc)
{
    cr_assert_gt(u->nids, from, "%s acknowledged nothing after the restore", u->login);
    for (int i = 0; i < sc->nsrv; i++)
        for (int k = from; k < u->nids; k++)
            cr_assert_eq(event_inc(sc, i, u->ids[k]), inc,
                         "%s's message %s (acknowledged after the restore) is in incarnation "
                         "%lld on %s",
                         u->login, u->ids[k], event_inc(sc, i, u->ids[k]), sc->names[i]);
}

/* Writes of server r's users acknowledged so far: the waiting for peers below needs them. */
static void mark_users(struct scene *sc, int r, int *nids)
{
    for (int k = 0; k < sc->users; k++)
        nids[k] = sc->u[r][k].nids;
}

/* ---- T6 ---- */

/* T6: three servers share a room and everyone sends; B's backup is taken while everyone sends;
 * B's users (and everyone's) write on past it; once B's peers hold what B wrote, B is lost
 * (SIGKILL) while the others go on, its data directory is restored from the backup and it
 * starts again, in a new incarnation; everyone sends more. All agree; nothing is forked anywhere;
 * every acknowledged write is on every server exactly once, including what B wrote after the
 * backup (its older incarnation's tail, taken back from its peers); what B's users write after
 * the restore is in B's new incarnation. */
Test(fed_restore, t6_restore_from_an_old_backup_never_forks)
{
    struct scene *sc = &the_scene;
    scene_setup(sc, "T6", 3, 0);
    const int B = 1;
    int m = scene_msgs();
    scene_phase_run(sc, scene_all(sc), m);

    /* The backup, taken while everyone writes, as an operator's nightly backup would be. */
    atomic_bool stop = false;
    struct scene_phase ph;
    scene_phase_start(sc, &ph, scene_all(sc), m, &stop);
    scene_sleep_ms(100);
    fednet_backup(&sc->net, B, "old");
    atomic_store_explicit(&stop, true, memory_order_release);
    scene_phase_join(&ph);
    scene_phase_run(sc, scene_all(sc), m); /* B's log goes on well past the backup */
    char bdb[512];
    fednet_backup_db(&sc->net, B, "old", bdb, sizeof bdb);
    struct fc_state backup = read_state(bdb, sc->room, "B's backup");

    /* B's peers hold everything B wrote before B is lost. */
    scene_converge(sc, "before B is lost");
    struct fc_state before = read_state(sc->db_paths[B], sc->room, sc->names[B]);
    const struct fc_log *bl = find_log(&backup, sc->names[B], 1);
    const struct fc_log *hl = find_log(&before, sc->names[B], 1);
    cr_assert(bl && hl);
    long long head = hl->head_seq;
    cr_assert_gt(head, bl->head_seq + m, "B's log went on past the backup (%lld, backup %lld)",
                 head, bl->head_seq);
    fprintf(stderr,
            "FIG T6 seed 0x%llx: the backup holds %s/1 up to %lld and %lld messages; %s wrote "
            "%s/1 up to %lld and the room had %lld messages when it was lost\n",
            (unsigned long long)sc->seed, sc->names[B], bl->head_seq, backup.msgs, sc->names[B],
            sc->names[B], head, before.msgs);

    /* B is lost while the others write; its data comes back from the backup. */
    fednet_kill(&sc->net, B);
    unsigned others = scene_all(sc) & ~(1u << B);
    stop = false;
    scene_phase_start(sc, &ph, others, m, &stop);
    long long t0 = scene_now_ms();
    long long inc = fednet_restore(&sc->net, B, "old");
    cr_assert_gt(inc, 1, "the first restore starts a new incarnation: %lld", inc);
    long long restored = scene_now_ms() - t0;
    atomic_store_explicit(&stop, true, memory_order_release);
    scene_phase_join(&ph);
    long long links = fednet_wait_links(&sc->net, 90000);
    fprintf(stderr,
            "FIG T6 seed 0x%llx: %s restored and serving in %lld ms, linked again %lld ms "
            "later\n",
            (unsigned long long)sc->seed, sc->names[B], restored, links);

    /* Everyone writes again, B's users in B's new incarnation. */
    int from[SCENE_MAX_USERS];
    mark_users(sc, B, from);
    long long t1 = scene_now_ms();
    scene_phase_run(sc, scene_all(sc), m);
    fednet_wait_links(&sc->net, 90000);
    scene_converge(sc, "after B's restore");
    fprintf(stderr, "FIG T6 seed 0x%llx: all agree %lld ms after the last phase began\n",
            (unsigned long long)sc->seed, scene_now_ms() - t1);
    scene_check_acked(sc);
    assert_incarnations(sc, B, head, inc, m);
    for (int k = 0; k < sc->users; k++)
        assert_ids_in_inc(sc, &sc->u[B][k], from[k], inc);
    assert_no_forks(sc);
    scene_proxy_figures(sc);
}

/* T6, the oldest backup: B's backup is older than the shared room itself (taken before the
 * room was created). Restored, B holds no trace of the room; it takes the room back from its
 * peers, with its own older log (its users' invitations among them) read-only, and its users
 * write on in its new incarnation. */
Test(fed_restore, t6_a_backup_older_than_the_room_brings_the_room_back)
{
    struct scene *sc = &the_scene;
    const int B = 1;
    scene_start(sc, "T6-no-room", 3, true);
    fednet_backup(&sc->net, B, "before-the-room");
    scene_share(sc, 0, NULL);
    int m = scene_msgs();
    scene_phase_run(sc, scene_all(sc), m);
    scene_converge(sc, "before B is lost");
    struct fc_state before = read_state(sc->db_paths[B], sc->room, sc->names[B]);
    const struct fc_log *hl = find_log(&before, sc->names[B], 1);
    cr_assert_not_null(hl);
    long long head = hl->head_seq;
    char bdb[512];
    fednet_backup_db(&sc->net, B, "before-the-room", bdb, sizeof bdb);
    struct fc_state backup;
    cr_assert(fc_read(bdb, sc->room, &backup), "%s", backup.err);
    cr_assert_not(backup.room_present, "the backup predates the room");

    long long inc = fednet_restore(&sc->net, B, "before-the-room");
    cr_assert_gt(inc, 1, "the first restore starts a new incarnation: %lld", inc);
    fednet_wait_links(&sc->net, 90000);
    long long t0 = scene_now_ms();
    scene_converge(sc, "the room back on B, with no new writes");
    fprintf(stderr, "FIG T6-no-room seed 0x%llx: %s held the room again %lld ms after its links\n",
            (unsigned long long)sc->seed, sc->names[B], scene_now_ms() - t0);
    int from[SCENE_MAX_USERS];
    mark_users(sc, B, from);
    scene_phase_run(sc, scene_all(sc), m);
    scene_converge(sc, "after B's restore");
    scene_check_acked(sc);
    assert_incarnations(sc, B, head, inc, m);
    for (int k = 0; k < sc->users; k++)
        assert_ids_in_inc(sc, &sc->u[B][k], from[k], inc);
    assert_no_forks(sc);
}

/* T6, restored twice from one backup: B is restored from its backup, writes in its new incarnation,
 * is lost again and restored from the same backup (an administrator who has only that one). The
 * second restore must not start that incarnation again: its peers hold it already, and B writing
 * its seq 1 anew would be a fork. (Before restores took their time as the incarnation, both gave
 * incarnation 2: B refused its peers' B/2 events, its peers logged a fork for every B/2 seq it
 * wrote again, and the servers never agreed again.) */
Test(fed_restore, t6_restored_twice_from_one_backup_never_reuses_an_incarnation)
{
    struct scene *sc = &the_scene;
    scene_setup(sc, "T6-twice", 3, 0);
    const int B = 1;
    int m = scene_msgs();
    scene_phase_run(sc, scene_all(sc), m);
    fednet_backup(&sc->net, B, "old");
    scene_phase_run(sc, scene_all(sc), m);
    scene_converge(sc, "before B is lost");
    long long inc1 = fednet_restore(&sc->net, B, "old");
    fednet_wait_links(&sc->net, 90000);
    scene_phase_run(sc, scene_all(sc), m);
    scene_converge(sc, "after the first restore");
    long long inc2 = fednet_restore(&sc->net, B, "old");
    fprintf(stderr, "FIG T6-twice seed 0x%llx: incarnations %lld, then %lld\n",
            (unsigned long long)sc->seed, inc1, inc2);
    fednet_wait_links(&sc->net, 90000);
    int from[SCENE_MAX_USERS];
    mark_users(sc, B, from);
    scene_phase_run(sc, scene_all(sc), m);
    scene_converge(sc, "after the second restore");
    scene_check_acked(sc);
    assert_no_forks(sc);
    /* Whatever incarnation the fix gives B now, it is none that B wrote before. */
    for (int k = 0; k < sc->users; k++)
        for (int i = 0; i < sc->nsrv; i++)
            for (int e = from[k]; e < sc->u[B][k].nids; e++)
                cr_assert_gt(event_inc(sc, i, sc->u[B][k].ids[e]), inc1,
                             "%s: B's message after the second restore in a used incarnation",
                             sc->names[i]);
}

/* ---- Done when ---- */

/* The "Done when": four servers (the prefecture's HQ as the room's authority, a support
 * city, a support town and the affected town) share a room; the affected town's first report
 * reaches all of them (timed: a figure, not an assertion); the town is cut off while everyone
 * keeps writing; meanwhile the support city is killed (SIGKILL) and started again, and the
 * support town is restored from a backup taken long before (many writes older: "an hour-old
 * backup"); then the links return and every server shows the same complete conversation in
 * the same order: the same vectors and digests, every acknowledged write exactly once, no
 * fork. */
Test(fed_restore, done_when_the_cut_town_a_kill_and_an_old_restore_end_in_one_conversation)
{
    struct scene *sc = &the_scene;
    scene_setup(sc, "done-when", 4, 0);
    const int HQ = 0, CITY = 1, SUPPORT = 2, TOWN = 3;
    cr_assert_str_eq(sc->names[HQ], "jp-38-ehime-pref");
    int m = scene_msgs();

    long long first, p50;
    scene_time_reports(sc, &sc->u[TOWN][0], 1, 30000,
                       "the affected town's first report, loopback through proxies", &first, &p50);

    /* Everyone coordinates; the support town's backup, then many more writes. */
    scene_phase_run(sc, scene_all(sc), m);
    fednet_backup(&sc->net, SUPPORT, "an-hour-ago");
    scene_phase_run(sc, scene_all(sc), m);
    scene_phase_run(sc, scene_all(sc), m);

    /* The town is cut off; everyone keeps writing; the city is killed and started again. */
    fednet_isolate(&sc->net, TOWN, true);
    for (int i = 0; i < sc->nsrv; i++)
        if (i != TOWN)
            fednet_wait_down(&sc->net, i, TOWN, 10000);
    struct scene_rng rng;
    scene_rng_seed(&rng, sc->seed, 4242);
    atomic_bool stop = false;
    struct scene_phase ph;
    scene_phase_start(sc, &ph, scene_all(sc), 1, &stop);
    scene_sleep_ms(scene_rng_range(&rng, 200, 600));
    fednet_kill(&sc->net, CITY);
    scene_sleep_ms(scene_rng_range(&rng, 0, 300));
    fednet_restart(&sc->net, CITY);
    scene_sleep_ms(scene_rng_range(&rng, 200, 600));
    atomic_store_explicit(&stop, true, memory_order_release);
    scene_phase_join(&ph);

    /* The support town's machine is lost once HQ and the city hold what it wrote (what they
     * never got would be lost for good, whatever the replication). */
    const char *linked[] = {sc->db_paths[HQ], sc->db_paths[CITY], sc->db_paths[SUPPORT]};
    struct fc_state three[3];
    int deadline = (int)scene_env_ll("KZ_FED_CONVERGE_MS", 60000, 100, 3600000);
    long long agreed = fc_wait_agree(linked, 3, sc->room, deadline, three);
    if (agreed < 0) {
        const char *who[] = {sc->names[HQ], sc->names[CITY], sc->names[SUPPORT]};
        char diff[4096];
        fc_diff(three, who, 3, diff, sizeof diff);
        cr_assert_fail("HQ, the city and the support town do not agree while the town is cut "
                       "off:\n%s",
                       diff);
    }
    const struct fc_log *sl = find_log(&three[2], sc->names[SUPPORT], 1);
    cr_assert_not_null(sl);
    long long support_head = sl->head_seq;
    char bdb[512];
    fednet_backup_db(&sc->net, SUPPORT, "an-hour-ago", bdb, sizeof bdb);
    struct fc_state backup = read_state(bdb, sc->room, "the support town's backup");
    const struct fc_log *bl = find_log(&backup, sc->names[SUPPORT], 1);
    cr_assert_not_null(bl);
    cr_assert_gt(three[2].msgs, backup.msgs + 4 * m, "the backup is older than many writes");

    /* The others write on while the support town is restored from the old backup. */
    stop = false;
    scene_phase_start(sc, &ph, scene_all(sc) & ~(1u << SUPPORT), 1, &stop);
    scene_sleep_ms(scene_rng_range(&rng, 0, 200));
    long long inc = fednet_restore(&sc->net, SUPPORT, "an-hour-ago");
    cr_assert_gt(inc, 1, "the first restore starts a new incarnation: %lld", inc);
    scene_sleep_ms(scene_rng_range(&rng, 200, 600));
    atomic_store_explicit(&stop, true, memory_order_release);
    scene_phase_join(&ph);
    fprintf(stderr,
            "FIG done-when seed 0x%llx: %s restored from a backup of %lld messages (%s/1 up to "
            "%lld) while the room had %lld (%s/1 up to %lld)\n",
            (unsigned long long)sc->seed, sc->names[SUPPORT], backup.msgs, sc->names[SUPPORT],
            bl->head_seq, three[2].msgs, sc->names[SUPPORT], support_head);

    /* Everyone writes again, the support town in its new incarnation; the town still cut off. */
    int from[SCENE_MAX_USERS];
    mark_users(sc, SUPPORT, from);
    scene_phase_run(sc, scene_all(sc), m);

    /* The links return. */
    struct fc_state town = read_state(sc->db_paths[TOWN], sc->room, sc->names[TOWN]);
    cr_assert_null(find_log(&town, sc->names[SUPPORT], inc), "the cut town got news somehow");
    fednet_isolate(&sc->net, TOWN, false);
    long long heal = scene_now_ms();
    long long links = fednet_wait_links(&sc->net, 90000);
    scene_converge(sc, "after the links returned");
    long long converged = scene_now_ms() - heal;
    fprintf(stderr,
            "FIG done-when seed 0x%llx: links back %lld ms after the cut ended; all four agree "
            "%lld ms after it\n",
            (unsigned long long)sc->seed, links, converged);
    fprintf(stderr,
            "FIG done-when seed 0x%llx: the affected town's first report reached all four "
            "servers in %lld ms\n",
            (unsigned long long)sc->seed, first);
    scene_check_acked(sc);
    assert_incarnations(sc, SUPPORT, support_head, inc, m);
    for (int k = 0; k < sc->users; k++)
        assert_ids_in_inc(sc, &sc->u[SUPPORT][k], from[k], inc);
    assert_no_forks(sc);
    for (int i = 0; i < sc->nsrv; i++) {
        struct fc_state st = read_state(sc->db_paths[i], sc->room, sc->names[i]);
        fprintf(stderr, "FIG done-when seed 0x%llx: %s holds %lld events (%lld messages)\n",
                (unsigned long long)sc->seed, sc->names[i], st.events, st.msgs);
    }
    scene_proxy_figures(sc);
}
