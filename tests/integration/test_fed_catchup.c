/* test_fed_catchup.c - catching up after an outage (issue 17, "Tests and figures": catching up
 * 100,000 events after an outage: time and the receiver's peak memory).
 *
 * Two servers share a room (support/fedscene.h); the receiver B is stopped (SIGKILL, or a clean
 * stop); A's users send N messages while B is away, pipelined on one WebSocket each (requests
 * go into the open transaction one after the other and their replies come after its commit, so
 * a window of requests in flight fills A's group commits); B is started again and the test
 * times how long B takes to hold everything A holds, from B's start and from its links being
 * up, and reads B's peak memory (VmHWM of its kizunad) and resident memory before the outage
 * and after catching up. The databases are the judge (support/fedcheck.h): both servers agree
 * (vector, set and order digests), nothing is held twice, and every write acknowledged to a
 * client is on both servers exactly once.
 *
 * Figures go to stderr as lines starting with "FIG" (for docs/federation.md); while B catches
 * up, a progress line every KZ_FED_CATCHUP_PROGRESS_MS gives what it holds and its memory.
 *
 * Environment (defaults are the CI run: a few seconds under ASan on two cores):
 *   KZ_FED_CATCHUP          messages A's users send while B is away (default 2000; the
 *                           figure: 100000)
 *   KZ_FED_CATCHUP_WINDOW   requests in flight per sending user (default 64)
 *   KZ_FED_CATCHUP_CLEAN    1: stop B cleanly (SIGTERM) instead of SIGKILL (default 0)
 *   KZ_FED_CATCHUP_MS       deadline for B to catch up (default 120000 + 5 ms per message)
 *   KZ_FED_CATCHUP_PROGRESS_MS  between progress lines (default 1000)
 *   KZ_FED_SEED, KZ_FED_USERS (sending users per server, default 2): as test_fed_sync.c */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedscene.h"

static struct scene the_scene; /* stopped and freed by the teardown, however the test ends */

static void teardown(void)
{
    scene_stop(&the_scene);
}

TestSuite(fed_catchup, .fini = teardown);

/* ---- memory of a process ---- */

struct mem {
    long hwm_kib, rss_kib; /* -1: not read */
};

/* VmHWM and VmRSS of pid from /proc/PID/status. Under KIZUNA_TEST_WRAPPER the pid is the
 * wrapper's. */
static struct mem mem_of(pid_t pid)
{
    struct mem m = {-1, -1};
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return m;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmHWM:", 6) == 0)
            m.hwm_kib = strtol(line + 6, NULL, 10);
        else if (strncmp(line, "VmRSS:", 6) == 0)
            m.rss_kib = strtol(line + 6, NULL, 10);
    }
    fclose(f);
    return m;
}

/* ---- a room's version vector, read cheaply (fc_read digests every event) ---- */

struct vec {
    int n;
    struct {
        char origin[FC_ORIGIN_MAX];
        long long inc, head;
    } l[FC_LOGS_MAX];
};

/* The room's logs table in db_path; false if it could not be read (n = 0). */
static bool vec_read(const char *db_path, const char *room_id, struct vec *v)
{
    v->n = 0;
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    bool ok = sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_busy_timeout(db, 2000);
        ok = sqlite3_prepare_v2(db,
                                "SELECT l.origin, l.inc, l.head_seq FROM logs l"
                                " JOIN rooms r ON r.id = l.room WHERE r.room_id = ?1"
                                " ORDER BY l.origin, l.inc",
                                -1, &s, NULL) == SQLITE_OK;
    }
    if (ok) {
        sqlite3_bind_text(s, 1, room_id, -1, SQLITE_STATIC);
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW && v->n < FC_LOGS_MAX) {
            snprintf(v->l[v->n].origin, sizeof v->l[v->n].origin, "%s",
                     (const char *)sqlite3_column_text(s, 0));
            v->l[v->n].inc = sqlite3_column_int64(s, 1);
            v->l[v->n].head = sqlite3_column_int64(s, 2);
            v->n++;
        }
        ok = rc == SQLITE_DONE || rc == SQLITE_ROW;
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    if (!ok)
        v->n = 0;
    return ok;
}

/* Events of `want` that `have` lacks (by head_seq, log by log). */
static long long vec_behind(const struct vec *have, const struct vec *want)
{
    long long behind = 0;
    for (int i = 0; i < want->n; i++) {
        long long h = 0;
        for (int j = 0; j < have->n; j++)
            if (strcmp(have->l[j].origin, want->l[i].origin) == 0 &&
                have->l[j].inc == want->l[i].inc)
                h = have->l[j].head;
        if (want->l[i].head > h)
            behind += want->l[i].head - h;
    }
    return behind;
}

static bool vec_equal(const struct vec *a, const struct vec *b)
{
    return a->n > 0 && vec_behind(a, b) == 0 && vec_behind(b, a) == 0;
}

/* ---- users who send pipelined ---- */

struct piper {
    struct scene_user *u;
    int port;
    int count, window;
    long long ms;
    char err[256];
};

static void piper_fail(struct piper *p, const char *what)
{
    snprintf(p->err, sizeof p->err, "%s: %s", p->u->login, what);
}

/* Sends p->count messages of user p->u with up to p->window requests in flight on one
 * WebSocket, keeping every acknowledged event id in the user's record (as scene_user_send
 * does, with the same bodies and client ids). Runs on a thread of its own: never asserts. */
static void *piper_main(void *arg)
{
    struct piper *p = arg;
    struct scene_user *u = p->u;
    long long t0 = scene_now_ms();
    if (!ws_open(&u->w, p->port)) {
        piper_fail(p, "cannot connect");
        return NULL;
    }
    u->connected = true;
    char req[512];
    snprintf(req, sizeof req,
             "{\"id\":%lld,\"op\":\"login\",\"login\":\"%s\",\"password\":\"%s%s\","
             "\"device\":\"fedcatchup\"}",
             u->next_id++, u->login, u->login, TEST_PW_SUFFIX);
    cJSON *r = ws_try_call(&u->w, req);
    bool ok = r && strcmp(reply_code(r), "ok") == 0;
    cJSON_Delete(r);
    if (!ok) {
        piper_fail(p, "login refused");
        scene_user_disconnect(u);
        return NULL;
    }
    if (u->capids - u->nids < p->count) {
        u->capids = u->nids + p->count;
        u->ids = realloc(u->ids, (size_t)u->capids * sizeof *u->ids);
        if (!u->ids)
            abort();
    }
    long long base = u->next_id; /* request i has id base + i, message number k0 + i */
    int k0 = u->next_k;
    int sent = 0, acked = 0;
    while (acked < p->count) {
        while (sent < p->count && sent - acked < p->window) {
            snprintf(req, sizeof req,
                     "{\"id\":%lld,\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"%s #%d\","
                     "\"client_id\":\"%s-%d\"}",
                     base + sent, u->room, u->login, k0 + sent, u->login, k0 + sent);
            if (!ws_send_text(&u->w, req)) {
                piper_fail(p, "the connection broke while sending");
                goto out;
            }
            sent++;
            u->sent++;
        }
        char *text = ws_recv_text(&u->w, 60000);
        if (!text) {
            piper_fail(p, u->w.close_code ? "closed by the server" : "no reply in 60 s");
            goto out;
        }
        cJSON *o = cJSON_Parse(text);
        free(text);
        const cJSON *id = cJSON_GetObjectItem(o, "id");
        if (!cJSON_IsNumber(id)) { /* a pushed event: not a reply */
            cJSON_Delete(o);
            continue;
        }
        const cJSON *ev = cJSON_GetObjectItem(o, "event_id");
        if ((long long)id->valuedouble != base + acked || strcmp(reply_code(o), "ok") != 0 ||
            !cJSON_IsString(ev)) {
            char *s = cJSON_PrintUnformatted(o);
            snprintf(p->err, sizeof p->err, "%s: message %d: %.200s", u->login, k0 + acked,
                     s ? s : "?");
            free(s);
            cJSON_Delete(o);
            goto out;
        }
        snprintf(u->ids[u->nids++], FC_ID_MAX, "%s", ev->valuestring);
        acked++;
        cJSON_Delete(o);
    }
out:
    u->next_id = base + sent;
    u->next_k = k0 + sent;
    scene_user_disconnect(u);
    p->ms = scene_now_ms() - t0;
    return NULL;
}

/* Server srv's users send n messages between them, pipelined; asserts that all were
 * acknowledged. The ms it took. */
static long long send_pipelined(struct scene *sc, int srv, int n, int window)
{
    struct piper p[SCENE_MAX_USERS];
    pthread_t th[SCENE_MAX_USERS];
    long long t0 = scene_now_ms();
    for (int k = 0; k < sc->users; k++) {
        struct scene_user *u = &sc->u[srv][k];
        u->room = sc->room;
        p[k] = (struct piper){.u = u,
                              .port = sc->net.s[srv].d.port,
                              .count = n / sc->users + (k < n % sc->users),
                              .window = window};
        cr_assert_eq(pthread_create(&th[k], NULL, piper_main, &p[k]), 0);
    }
    for (int k = 0; k < sc->users; k++)
        pthread_join(th[k], NULL);
    for (int k = 0; k < sc->users; k++)
        cr_assert_str_eq(p[k].err, "", "%s", p[k].err);
    return scene_now_ms() - t0;
}

/* ---- the scenario ---- */

/* B is away while A's users send N messages; B comes back and catches up with no new traffic:
 * the time it takes, its memory, and every acknowledged write on both servers exactly once. */
Test(fed_catchup, catch_up_after_an_outage, .timeout = 3600)
{
    struct scene *sc = &the_scene;
    const int A = 0, B = 1;
    int n = (int)scene_env_ll("KZ_FED_CATCHUP", 2000, 1, 10000000);
    int window = (int)scene_env_ll("KZ_FED_CATCHUP_WINDOW", 64, 1, 4096);
    bool clean = scene_env_ll("KZ_FED_CATCHUP_CLEAN", 0, 0, 1) != 0;
    int deadline = (int)scene_env_ll("KZ_FED_CATCHUP_MS", 120000 + 5LL * n, 1000, 86400000);
    int progress_ms = (int)scene_env_ll("KZ_FED_CATCHUP_PROGRESS_MS", 1000, 20, 3600000);
    scene_setup(sc, "catch-up", 2, A);
    const char *nameA = sc->names[A], *nameB = sc->names[B];

    /* Both sides talk a little first, so the outage comes in a room with a history. */
    scene_phase_run(sc, scene_all(sc), 2);
    scene_converge(sc, "before the outage");
    struct mem before = mem_of(sc->net.s[B].d.pid), a_before = mem_of(sc->net.s[A].d.pid);
    struct vec vb0;
    cr_assert(vec_read(sc->db_paths[B], sc->room, &vb0));

    /* The outage: B goes away, A's users send N. */
    if (clean) {
        int rc = kzd_stop(&sc->net.s[B].d);
        sc->net.s[B].running = false;
        cr_assert_eq(rc, 0, "%s stopped cleanly (status %d)", nameB, rc);
    } else {
        fednet_kill(&sc->net, B);
    }
    long long send_ms = send_pipelined(sc, A, n, window);
    fprintf(stderr,
            "FIG catch-up seed 0x%llx: %s's %d users sent %d messages while %s was %s in %lld "
            "ms (%.0f messages/s, %d requests in flight each)\n",
            (unsigned long long)sc->seed, nameA, sc->users, n, nameB,
            clean ? "stopped" : "killed (SIGKILL)", send_ms,
            send_ms > 0 ? n * 1000.0 / (double)send_ms : 0.0, window);
    struct vec va, vb;
    cr_assert(vec_read(sc->db_paths[A], sc->room, &va));
    cr_assert(vec_read(sc->db_paths[B], sc->room, &vb));
    long long behind = vec_behind(&vb, &va);
    cr_assert_geq(behind, n, "%s lacks at least the %d messages (%lld events)", nameB, n, behind);
    struct mem a_sent = mem_of(sc->net.s[A].d.pid);

    /* B comes back: no new traffic; poll its vector (cheap) until it is A's. */
    long long t0 = scene_now_ms();
    fednet_restart(&sc->net, B);
    long long started = scene_now_ms() - t0;
    pid_t pid = sc->net.s[B].d.pid;
    long long links = fednet_wait_links(&sc->net, 90000) + started;
    long long caught = -1, next_progress = progress_ms, peak_rss = 0;
    for (;;) {
        long long at = scene_now_ms() - t0;
        bool okA = vec_read(sc->db_paths[A], sc->room, &va);
        bool okB = vec_read(sc->db_paths[B], sc->room, &vb);
        struct mem m = mem_of(pid);
        if (m.rss_kib > peak_rss)
            peak_rss = m.rss_kib;
        if (okA && okB && vec_equal(&va, &vb)) {
            caught = at;
            break;
        }
        if (at >= next_progress) {
            long long left = okA && okB ? vec_behind(&vb, &va) : -1;
            fprintf(stderr,
                    "catch-up: %6lld ms: %s lacks %lld of %lld events (%.0f events/s so far); "
                    "its VmRSS %ld KiB, VmHWM %ld KiB\n",
                    at, nameB, left, behind,
                    left >= 0 ? (double)(behind - left) * 1000.0 / (double)at : 0.0, m.rss_kib,
                    m.hwm_kib);
            next_progress += progress_ms;
        }
        cr_assert_lt(at, deadline, "%s did not catch up in %d ms: lacks %lld of %lld events", nameB,
                     deadline, okA && okB ? vec_behind(&vb, &va) : -1, behind);
        scene_sleep_ms(FC_POLL_MS);
    }
    struct mem after = mem_of(pid), a_after = mem_of(sc->net.s[A].d.pid);
    long long agreed = scene_converge(sc, "after the catch-up") + caught;
    fprintf(stderr, "FIG catch-up seed 0x%llx: N %d: %s caught up %lld events\n",
            (unsigned long long)sc->seed, n, nameB, behind);
    fprintf(stderr,
            "FIG catch-up seed 0x%llx: N %d: %s's start took %lld ms; links up %lld ms after it "
            "began; holds everything %lld ms after it began (%lld ms after its links were up); "
            "fedcheck agreement (vector, set and order digests) confirmed at %lld ms\n",
            (unsigned long long)sc->seed, n, nameB, started, links, caught, caught - links, agreed);
    fprintf(stderr,
            "FIG catch-up seed 0x%llx: N %d: %.0f events/s from %s's start (%.0f from its links "
            "up)\n",
            (unsigned long long)sc->seed, n, caught > 0 ? behind * 1000.0 / (double)caught : 0.0,
            nameB, caught > links ? behind * 1000.0 / (double)(caught - links) : 0.0);
    fprintf(stderr,
            "FIG catch-up seed 0x%llx: N %d: %s (receiver) memory: before the outage VmRSS %ld KiB "
            "(VmHWM %ld KiB); after catching up VmRSS %ld KiB, VmHWM %ld KiB (the restarted "
            "process's peak; highest VmRSS polled %lld KiB)\n",
            (unsigned long long)sc->seed, n, nameB, before.rss_kib, before.hwm_kib, after.rss_kib,
            after.hwm_kib, peak_rss);
    fprintf(stderr,
            "FIG catch-up seed 0x%llx: N %d: %s (sender) memory: before the outage VmRSS %ld KiB; "
            "after sending VmRSS %ld KiB; after the catch-up VmRSS %ld KiB, VmHWM %ld KiB\n",
            (unsigned long long)sc->seed, n, nameA, a_before.rss_kib, a_sent.rss_kib,
            a_after.rss_kib, a_after.hwm_kib);
    scene_check_acked(sc);
    /* B held what it had before, and nothing of its own was lost or added by the restart. */
    cr_assert_eq(vec_behind(&vb, &vb0), 0);
}
