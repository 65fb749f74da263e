/* fedscene.c - see fedscene.h: users who send until acknowledged, phases of them, the shared
 * room's setup and the checks at the end of a scenario. */
#include "fedscene.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECONNECT_MS 60000 /* a sender gives up if its server is gone this long */
#define ROOM_WAIT_MS 20000 /* for a shared room to arrive on a member server */

/* ---- settings, time, randomness ---- */

long long scene_env_ll(const char *name, long long dflt, long long lo, long long hi)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end;
    long long x = strtoll(v, &end, 0);
    cr_assert(!*end && x >= lo && x <= hi, "%s=%s: want %lld..%lld", name, v, lo, hi);
    return x;
}

uint64_t scene_seed_env(void)
{
    const char *v = getenv("KZ_FED_SEED");
    uint64_t s = v && *v ? strtoull(v, NULL, 0) : SCENE_DEFAULT_SEED;
    fprintf(stderr, "KZ_FED_SEED=0x%llx\n", (unsigned long long)s);
    return s;
}

long long scene_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void scene_sleep_ms(long long ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

void scene_rng_seed(struct scene_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t z = seed + (stream + 1) * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    r->s = (z ^ (z >> 31)) | 1;
}

long long scene_rng_range(struct scene_rng *r, long long lo, long long hi)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return lo + (long long)((r->s * 0x2545f4914f6cdd1dULL) % (uint64_t)(hi - lo + 1));
}

/* ---- users who send ---- */

void scene_user_disconnect(struct scene_user *u)
{
    if (u->connected)
        ws_close_fd(&u->w);
    u->connected = false;
}

/* Connects and logs in, retrying while the server is down (killed, restarting). */
static bool user_connect(struct scene_user *u)
{
    long long end = scene_now_ms() + RECONNECT_MS;
    while (!u->connected) {
        if (ws_open(&u->w, u->net->s[u->srv].d.port)) {
            char req[256];
            snprintf(req, sizeof req,
                     "{\"id\":%lld,\"op\":\"login\",\"login\":\"%s\",\"password\":\"%s%s\","
                     "\"device\":\"fedsync\"}",
                     u->next_id++, u->login, u->login, TEST_PW_SUFFIX);
            cJSON *r = ws_try_call(&u->w, req);
            bool ok = r && strcmp(reply_code(r), "ok") == 0;
            cJSON_Delete(r);
            if (ok) {
                u->connected = true;
                break;
            }
        }
        ws_close_fd(&u->w);
        if (scene_now_ms() > end) {
            snprintf(u->err, sizeof u->err, "%s could not reconnect for %d ms", u->login,
                     RECONNECT_MS);
            return false;
        }
        scene_sleep_ms(20);
    }
    return true;
}

/* Sends message k until acknowledged (the same client_id after a lost reply, so a resend that
 * the server already committed comes back as a duplicate with the first event id). */
bool scene_user_send(struct scene_user *u, int k)
{
    char req[512];
    bool first = true;
    for (;;) {
        if (!user_connect(u))
            return false;
        snprintf(req, sizeof req,
                 "{\"id\":%lld,\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"%s #%d\","
                 "\"client_id\":\"%s-%d\"}",
                 u->next_id++, u->room, u->login, k, u->login, k);
        if (first)
            u->sent++;
        else
            u->resent++;
        first = false;
        cJSON *r = ws_try_call(&u->w, req);
        if (!r) {
            scene_user_disconnect(u); /* the server went away: the reply was lost */
            continue;
        }
        const cJSON *id = cJSON_GetObjectItem(r, "event_id");
        if (strcmp(reply_code(r), "ok") == 0 && cJSON_IsString(id)) {
            if (u->nids == u->capids) {
                u->capids = u->capids ? 2 * u->capids : 64;
                u->ids = realloc(u->ids, (size_t)u->capids * sizeof *u->ids);
                if (!u->ids)
                    abort();
            }
            snprintf(u->ids[u->nids++], FC_ID_MAX, "%s", id->valuestring);
            cJSON_Delete(r);
            return true;
        }
        /* unavailable while the server stops: try again; anything else is a refusal */
        bool again = strcmp(reply_code(r), "unavailable") == 0;
        if (!again) {
            char *s = cJSON_PrintUnformatted(r);
            snprintf(u->err, sizeof u->err, "%s: msg.send refused: %s", u->login, s);
            free(s);
            u->refused++;
        }
        cJSON_Delete(r);
        if (!again)
            return false;
        scene_sleep_ms(20);
    }
}

static void *user_main(void *arg)
{
    struct scene_user *u = arg;
    for (int sent = 0;
         sent < u->quota || (u->until && !atomic_load_explicit(u->until, memory_order_acquire));
         sent++) {
        if (!scene_user_send(u, u->next_k++))
            break;
        if (u->gap_ms)
            scene_sleep_ms(scene_rng_range(&u->rng, 0, u->gap_ms));
    }
    scene_user_disconnect(u);
    return NULL;
}

/* Runs every user of the servers in mask (bit i: server i) for one phase: quota messages each,
 * then on until *until is set if until is not NULL (the caller sets it, then calls
 * scene_phase_join). */
void scene_phase_start(struct scene *sc, struct scene_phase *ph, unsigned mask, int quota,
                       const atomic_bool *until)
{
    memset(ph, 0, sizeof *ph);
    for (int i = 0; i < sc->nsrv; i++) {
        if (!(mask & (1u << i)))
            continue;
        for (int k = 0; k < sc->users; k++) {
            struct scene_user *u = &sc->u[i][k];
            u->room = sc->room;
            u->quota = quota;
            u->until = until;
            u->gap_ms = 20;
            ph->who[ph->n] = u;
            cr_assert_eq(pthread_create(&ph->th[ph->n], NULL, user_main, u), 0);
            ph->n++;
        }
    }
}

void scene_phase_join(struct scene_phase *ph)
{
    for (int k = 0; k < ph->n; k++)
        pthread_join(ph->th[k], NULL);
    for (int k = 0; k < ph->n; k++)
        cr_assert_str_eq(ph->who[k]->err, "", "%s", ph->who[k]->err);
}

void scene_phase_run(struct scene *sc, unsigned mask, int quota)
{
    struct scene_phase ph;
    scene_phase_start(sc, &ph, mask, quota, NULL);
    scene_phase_join(&ph);
}

unsigned scene_all(const struct scene *sc)
{
    return (1u << sc->nsrv) - 1;
}

/* ---- the shared room ---- */

/* Asserts that r is an ok reply; if not, says what came back (and frees it first, so a failed
 * test leaks nothing). */
void scene_want_ok(cJSON *r, const char *what, const char *where)
{
    if (strcmp(reply_code(r), "ok") == 0)
        return;
    char *s = r ? cJSON_PrintUnformatted(r) : NULL;
    char text[512];
    snprintf(text, sizeof text, "%s", s ? s : "(no reply)");
    free(s);
    cJSON_Delete(r);
    cr_assert_fail("%s on %s: %s", what, where, text);
}

void scene_stop(struct scene *sc)
{
    fednet_stop(&sc->net);
    for (int i = 0; i < FEDNET_MAX; i++)
        for (int k = 0; k < SCENE_MAX_USERS; k++)
            free(sc->u[i][k].ids);
}

/* Waits until server i's database holds the room. */
static void wait_room(struct scene *sc, int i, const char *room)
{
    long long end = scene_now_ms() + ROOM_WAIT_MS;
    struct fc_state st;
    for (;;) {
        fc_read(sc->net.s[i].db, room, &st);
        if (st.readable && st.room_present)
            return;
        cr_assert(scene_now_ms() < end, "room %s never arrived on %s (%s)", room, sc->net.s[i].id,
                  st.readable ? "no row in rooms" : st.err);
        scene_sleep_ms(FC_POLL_MS);
    }
}

/* Starts n servers, has server `authority` create a room shared with all the others, and
 * once it is on each server, its users invited there. shared false: a room of server 0 alone
 * (not shared), with users on server 0 only, for proving the scene's own machinery. */
void scene_start(struct scene *sc, const char *name, int n, bool shared)
{
    memset(sc, 0, sizeof *sc);
    sc->name = name;
    sc->seed = scene_seed_env();
    sc->users = (int)scene_env_ll("KZ_FED_USERS", 2, 1, SCENE_MAX_USERS);
    sc->nsrv = shared ? n : 1;
    long long t0 = scene_now_ms();
    fednet_start(&sc->net, n, NULL, NULL, sc->seed);
    fprintf(stderr, "FIG %s: %d servers up, paired and linked through proxies in %lld ms\n", name,
            n, scene_now_ms() - t0);
    for (int i = 0; i < n; i++) {
        sc->db_paths[i] = sc->net.s[i].db;
        sc->names[i] = sc->net.s[i].id;
        for (int k = 0; i < sc->nsrv && k < sc->users; k++) {
            struct scene_user *u = &sc->u[i][k];
            u->srv = i;
            u->net = &sc->net;
            u->w.fd = -1;
            u->next_id = 1;
            /* "jp-38201-matsuyama" -> "matsuyama1" */
            const char *tail = strrchr(sc->net.s[i].id, '-');
            snprintf(u->login, sizeof u->login, "%s%d", tail ? tail + 1 : "u", k + 1);
            scene_rng_seed(&u->rng, sc->seed, (uint64_t)(i * SCENE_MAX_USERS + k));
            fednet_user_add(&sc->net, i, u->login);
        }
    }
}

void scene_share(struct scene *sc, int authority, const char *more_servers)
{
    bool shared = sc->nsrv > 1 || (more_servers && *more_servers);
    sc->authority = authority;
    char servers[1024] = "";
    int at = 0;
    for (int i = 0; i < sc->nsrv; i++)
        if (i != authority)
            at += snprintf(servers + at, sizeof servers - (size_t)at, "%s\"%s\"", at ? "," : "",
                           sc->net.s[i].id);
    if (more_servers && *more_servers)
        snprintf(servers + at, sizeof servers - (size_t)at, "%s%s", at ? "," : "", more_servers);
    cJSON *r =
        fednet_admin(&sc->net, authority, "\"op\":\"room.create\",\"name\":\"%s\"%s%s%s", sc->name,
                     shared ? ",\"servers\":[" : "", shared ? servers : "", shared ? "]" : "");
    scene_want_ok(r, shared ? "room.create with servers" : "room.create", sc->net.s[authority].id);
    snprintf(sc->room, sizeof sc->room, "%s",
             cJSON_GetObjectItem(cJSON_GetObjectItem(r, "room"), "room")->valuestring);
    cJSON_Delete(r);
    for (int i = 0; i < sc->nsrv; i++) {
        long long t1 = scene_now_ms();
        wait_room(sc, i, sc->room);
        if (i != authority)
            fprintf(stderr, "FIG %s: the room arrived on %s %lld ms after its creation\n", sc->name,
                    sc->names[i], scene_now_ms() - t1);
        for (int k = 0; k < sc->users; k++) {
            char what[80];
            snprintf(what, sizeof what, "room.invite %s", sc->u[i][k].login);
            r = fednet_admin(&sc->net, i, "\"op\":\"room.invite\",\"room\":\"%s\",\"user\":\"%s\"",
                             sc->room, sc->u[i][k].login);
            scene_want_ok(r, what, sc->net.s[i].id);
            cJSON_Delete(r);
        }
    }
}

void scene_setup_as(struct scene *sc, const char *name, int n, int authority, bool shared)
{
    scene_start(sc, name, n, shared);
    scene_share(sc, authority, NULL);
}

void scene_setup(struct scene *sc, const char *name, int n, int authority)
{
    scene_setup_as(sc, name, n, authority, true);
}

/* Asserts that all servers agree within the deadline; the ms it took. */
long long scene_converge(struct scene *sc, const char *what)
{
    int deadline = (int)scene_env_ll("KZ_FED_CONVERGE_MS", 60000, 100, 3600000);
    struct fc_state st[FEDNET_MAX];
    long long took = fc_wait_agree(sc->db_paths, sc->nsrv, sc->room, deadline, st);
    char line[600];
    for (int i = 0; i < sc->nsrv; i++) {
        fc_describe(&st[i], line, sizeof line);
        fprintf(stderr, "%s %s: %s: %s\n", took < 0 ? "DIVERGED" : "state", what, sc->names[i],
                line);
    }
    if (took < 0) {
        char diff[4096];
        fc_diff(st, sc->names, sc->nsrv, diff, sizeof diff);
        cr_assert_fail("%s: %s: the servers do not agree after %d ms:\n%s", sc->name, what,
                       deadline, diff);
    }
    for (int i = 0; i < sc->nsrv; i++) {
        cr_assert_eq(st[i].two_ids, 0, "%s holds an (origin, inc, seq) with two ids", sc->names[i]);
        cr_assert_eq(st[i].fork_rows, 0, "%s recorded a fork", sc->names[i]);
        cr_assert_eq(st[i].dup_bodies, 0, "%s stores a message twice", sc->names[i]);
    }
    fprintf(stderr, "FIG %s seed 0x%llx: %s: converged in %lld ms\n", sc->name,
            (unsigned long long)sc->seed, what, took);
    return took;
}

/* Every acknowledged id, on every server, exactly once; and the figures. */
void scene_check_acked(struct scene *sc)
{
    size_t n = 0;
    for (int i = 0; i < sc->nsrv; i++)
        for (int k = 0; k < sc->users; k++)
            n += (size_t)sc->u[i][k].nids;
    const char **ids = calloc(n ? n : 1, sizeof *ids);
    cr_assert_not_null(ids);
    n = 0;
    for (int i = 0; i < sc->nsrv; i++)
        for (int k = 0; k < sc->users; k++)
            for (int m = 0; m < sc->u[i][k].nids; m++)
                ids[n++] = sc->u[i][k].ids[m];
    struct fc_acked a[FEDNET_MAX];
    struct fc_state st[FEDNET_MAX];
    bool read[FEDNET_MAX];
    for (int i = 0; i < sc->nsrv; i++)
        read[i] = fc_check_acked(sc->db_paths[i], sc->room, ids, n, &a[i]) &&
                  fc_read(sc->db_paths[i], sc->room, &st[i]);
    free(ids);
    for (int i = 0; i < sc->nsrv; i++) {
        cr_assert(read[i], "%s: %s %s", sc->names[i], a[i].err, st[i].err);
        int sent = 0, acked = 0, resent = 0;
        for (int k = 0; k < sc->users; k++) {
            sent += sc->u[i][k].sent;
            resent += sc->u[i][k].resent;
            acked += sc->u[i][k].nids;
        }
        fprintf(stderr,
                "FIG %s seed 0x%llx: %s: its users sent %d (resent %d after lost replies), "
                "acknowledged %d; it stores %lld messages (%lld events); of all %zu "
                "acknowledged: %lld once, %lld missing, %lld more than once\n",
                sc->name, (unsigned long long)sc->seed, sc->names[i], sent, resent, acked,
                st[i].msgs, st[i].events, n, a[i].once, a[i].missing, a[i].extra);
    }
    for (int i = 0; i < sc->nsrv; i++) {
        cr_assert_eq(a[i].missing, 0, "%s lacks %lld acknowledged messages: %s", sc->names[i],
                     a[i].missing, a[i].err);
        cr_assert_eq(a[i].extra, 0);
        cr_assert_eq(st[i].msgs, (long long)n + sc->extra_msgs,
                     "%s stores %lld messages, %zu were acknowledged (a message stored twice, or "
                     "one that was never acknowledged)",
                     sc->names[i], st[i].msgs, n);
    }
}

void scene_proxy_figures(struct scene *sc)
{
    struct fp_stats s;
    fednet_stats(&sc->net, &s);
    fprintf(stderr,
            "FIG %s seed 0x%llx: proxies: %u connections, %u frames, %u duplicated, %u held "
            "back (reordered), %u resets\n",
            sc->name, (unsigned long long)sc->seed, s.conns, s.frames[0] + s.frames[1],
            s.dups[0] + s.dups[1], s.holds[0] + s.holds[1], s.resets);
}

int scene_msgs(void)
{
    return (int)scene_env_ll("KZ_FED_MSGS", 15, 1, 100000);
}

/* Every user of the room sends while the main thread kills a seeded random server of the room
 * at seeded random moments (50-500 ms apart) and starts it again (after 0-200 ms), `kills`
 * times; the users go on until 300 ms after the last restart. */
void scene_kills(struct scene *sc, int kills)
{
    struct scene_rng r;
    scene_rng_seed(&r, sc->seed, 999);
    atomic_bool stop = false;
    struct scene_phase ph;
    scene_phase_start(sc, &ph, scene_all(sc), 1, &stop);
    int per[FEDNET_MAX] = {0};
    long long t0 = scene_now_ms();
    for (int k = 0; k < kills; k++) {
        scene_sleep_ms(scene_rng_range(&r, 50, 500));
        int victim = (int)scene_rng_range(&r, 0, sc->nsrv - 1);
        fednet_kill(&sc->net, victim);
        per[victim]++;
        scene_sleep_ms(scene_rng_range(&r, 0, 200));
        fednet_restart(&sc->net, victim);
    }
    scene_sleep_ms(300);
    atomic_store_explicit(&stop, true, memory_order_release);
    scene_phase_join(&ph);
    fprintf(stderr, "FIG %s seed 0x%llx: %d kills in %lld ms (", sc->name,
            (unsigned long long)sc->seed, kills, scene_now_ms() - t0);
    for (int i = 0; i < sc->nsrv; i++)
        fprintf(stderr, "%s%s %d", i ? ", " : "", sc->names[i], per[i]);
    fprintf(stderr, ")\n");
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* Times `reports` messages from user u until every server holds each (database polled every
 * 2 ms), prints p50, p99 and max as the figure `label`, and returns the first one's time and the
 * p50 in first and p50. A report that has not arrived everywhere after deadline_ms fails. */
void scene_time_reports(struct scene *sc, struct scene_user *u, int reports, int deadline_ms,
                        const char *label, long long *first, long long *p50)
{
    static long long lat[SCENE_MAX_REPORTS];
    u->room = sc->room;
    for (int k = 0; k < reports; k++) {
        cr_assert(scene_user_send(u, u->next_k++), "%s", u->err);
        lat[k] = fc_wait_event(sc->db_paths, sc->nsrv, u->ids[u->nids - 1], 2, deadline_ms);
        cr_assert_geq(lat[k], 0, "%s: report %d did not reach every server in %d ms", label, k,
                      deadline_ms);
    }
    scene_user_disconnect(u);
    *first = lat[0];
    qsort(lat, (size_t)reports, sizeof lat[0], cmp_ll);
    *p50 = lat[reports / 2];
    fprintf(stderr,
            "FIG %s seed 0x%llx: report from %s to all %d servers, %s: first %lld ms, p50 %lld "
            "ms, p99 %lld ms, max %lld ms over %d reports\n",
            sc->name, (unsigned long long)sc->seed, sc->names[u->srv], sc->nsrv, label, *first,
            *p50, lat[(reports * 99) / 100], lat[reports - 1], reports);
}

cJSON *scene_user_call(struct scene *sc, struct scene_user *u, const char *fmt, ...)
{
    struct ws w;
    cr_assert(ws_open(&w, sc->net.s[u->srv].d.port));
    char pw[96], tok[128], req[512];
    snprintf(pw, sizeof pw, "%.31s%s", u->login, TEST_PW_SUFFIX);
    cr_assert(ws_login(&w, u->login, pw, tok), "%s logs in", u->login);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(req, sizeof req, fmt, ap);
    va_end(ap);
    cJSON *r = ws_call(&w, req);
    ws_close_fd(&w);
    cr_assert_not_null(r);
    return r;
}
