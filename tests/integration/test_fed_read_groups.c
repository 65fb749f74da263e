/* test_fed_read_groups.c - 既読 by municipality (issue 18, item 4): in a shared room each
 * message's read count grouped by server, read_by_server (docs/federation.md, "Read counts
 * (既読) across servers"), is the same on every server once they hold the same events, and is
 * what the room's order says.
 *
 * Three real kizunad share a room through fault proxies (support/fedscene.h, as
 * test_fed_read.c); users of all three send; users of every server read up to various messages
 * (one reads nothing). For each message the expected groups are worked out here: per server,
 * its current members other than the sender (the authority's admin, who created the room, is
 * one of server 0's) and, of those, the readers whose last message read is at or after it. Every
 * server's `history` must show exactly those groups, in server id order, with read_count their
 * sum; `readers` groups the same way on every server; a live client's `read` pushes carry
 * counts_by_server beside counts, agreeing with them.
 *
 * Environment: as test_fed_sync.c (KZ_FED_SEED, KZ_FED_USERS >= 2, KZ_FED_CONVERGE_MS). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fedscene.h"

#define GROUP_MSGS    3     /* per user */
#define GROUP_WAIT_MS 30000 /* for room.read events to be published and replicated */
#define HIST_MAX      128

static struct scene the_scene; /* stopped and freed by the teardown, however the test ends */

static void teardown(void)
{
    scene_stop(&the_scene);
}

TestSuite(fed_read_groups, .fini = teardown, .timeout = 240);

/* One server's group of a message's count. */
struct group {
    char server[FC_ORIGIN_MAX];
    char name[64];
    long long read, members;
};

/* A message as one server's history shows it. */
struct gmsg {
    char id[FC_ID_MAX];
    char origin[FC_ORIGIN_MAX];
    char login[64]; /* the sender's login on its own server */
    long long pos, count;
    int ngroups;
    struct group g[FEDNET_MAX];
};

struct ghist {
    int n;
    struct gmsg m[HIST_MAX];
};

struct reader {
    struct scene_user *u;
    char last[FC_ID_MAX]; /* the last message read, in room order ("": none) */
};

/* Groups as history (objects) or readers show them; asserts their shape. */
static int groups_parse(const cJSON *arr, struct group *g, const char *where)
{
    int n = 0;
    const cJSON *o;
    cr_assert(cJSON_IsArray(arr), "%s: groups by server", where);
    cJSON_ArrayForEach(o, arr)
    {
        cr_assert_lt(n, FEDNET_MAX, "%s: at most one group per server", where);
        const char *server = cJSON_GetStringValue(cJSON_GetObjectItem(o, "server"));
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(o, "name"));
        cr_assert(server && name, "%s: a group has a server and a name", where);
        snprintf(g[n].server, sizeof g[n].server, "%s", server);
        snprintf(g[n].name, sizeof g[n].name, "%.63s", name);
        g[n].read = (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(o, "read"));
        g[n].members = (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(o, "members"));
        n++;
    }
    return n;
}

/* The room's history on server i, as its user 0 sees it (oldest first). */
static void hist_get(struct scene *sc, int i, struct ghist *h)
{
    cJSON *r = scene_user_call(sc, &sc->u[i][0],
                               "{\"id\":7,\"op\":\"history\",\"room\":\"%s\",\"limit\":%lld}",
                               sc->room, 200LL);
    cr_assert_str_eq(reply_code(r), "ok", "history on %s", sc->names[i]);
    cr_assert(!cJSON_IsTrue(cJSON_GetObjectItem(r, "more")), "the whole room in one page");
    memset(h, 0, sizeof *h);
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(r, "events"))
    {
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(e, "event"));
        cr_assert_not_null(type);
        if (strcmp(type, "msg") != 0) {
            cr_assert_null(cJSON_GetObjectItem(e, "read_by_server"), "only messages have it");
            continue;
        }
        cr_assert_lt(h->n, HIST_MAX);
        struct gmsg *m = &h->m[h->n++];
        snprintf(m->id, sizeof m->id, "%s",
                 cJSON_GetStringValue(cJSON_GetObjectItem(e, "event_id")));
        snprintf(m->origin, sizeof m->origin, "%s",
                 cJSON_GetStringValue(cJSON_GetObjectItem(e, "origin")));
        const char *sender = cJSON_GetStringValue(cJSON_GetObjectItem(e, "sender"));
        cr_assert_not_null(sender);
        snprintf(m->login, sizeof m->login, "%.*s", (int)strcspn(sender, "@"), sender);
        m->pos = (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "pos"));
        m->count = (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "read_count"));
        m->ngroups = groups_parse(cJSON_GetObjectItem(e, "read_by_server"), m->g, sc->names[i]);
        for (int k = 0; k < m->ngroups; k++) /* "" for this server; fednet pins no names */
            cr_assert_str_eq(m->g[k].name, "", "%s: the name of %s", sc->names[i], m->g[k].server);
    }
    cJSON_Delete(r);
}

static int index_of(const struct ghist *h, const char *id)
{
    for (int j = 0; j < h->n; j++)
        if (strcmp(h->m[j].id, id) == 0)
            return j;
    return -1;
}

/* Reader r reads up to message id on its own server (the `read` op at its position there). */
static void read_to(struct scene *sc, struct reader *r, const char *id, const struct ghist *order)
{
    static struct ghist own;
    hist_get(sc, r->u->srv, &own);
    int j = index_of(&own, id);
    cr_assert_geq(j, 0, "%s holds the message read", sc->names[r->u->srv]);
    cJSON *rep =
        scene_user_call(sc, r->u, "{\"id\":8,\"op\":\"read\",\"room\":\"%s\",\"pos\":%lld}",
                        sc->room, own.m[j].pos);
    cr_assert_str_eq(reply_code(rep), "ok", "read by %s", r->u->login);
    cJSON_Delete(rep);
    if (!r->last[0] || index_of(order, id) > index_of(order, r->last))
        snprintf(r->last, sizeof r->last, "%s", id);
}

static int by_server(const void *a, const void *b)
{
    return strcmp(((const struct group *)a)->server, ((const struct group *)b)->server);
}

/* The groups every server must show for message j of order (server id order): each server's
 * current members other than the sender (its scene users; on the authority its admin too, who
 * created the room and reads nothing) and those of rd among them who read j or past it. */
static int expected(struct scene *sc, const struct ghist *order, int j, const struct reader *rd,
                    int nrd, struct group *g)
{
    const struct gmsg *m = &order->m[j];
    for (int i = 0; i < sc->nsrv; i++) {
        snprintf(g[i].server, sizeof g[i].server, "%s", sc->names[i]);
        g[i].read = 0;
        g[i].members = sc->users + (i == sc->authority);
        if (strcmp(m->origin, sc->names[i]) == 0)
            g[i].members--; /* the sender is one of them */
        for (int k = 0; k < nrd; k++) {
            const struct scene_user *u = rd[k].u;
            bool sender =
                strcmp(m->origin, sc->names[u->srv]) == 0 && strcmp(m->login, u->login) == 0;
            if (u->srv == i && !sender && rd[k].last[0] && index_of(order, rd[k].last) >= j)
                g[i].read++;
        }
    }
    qsort(g, (size_t)sc->nsrv, sizeof *g, by_server);
    return sc->nsrv;
}

/* Whether groups a (n) and b (m) agree; why not in why. */
static bool groups_equal(const struct group *a, int n, const struct group *b, int m, char *why,
                         size_t wn)
{
    if (n != m) {
        snprintf(why, wn, "%d groups, expected %d", n, m);
        return false;
    }
    for (int k = 0; k < n; k++)
        if (strcmp(a[k].server, b[k].server) != 0 || a[k].read != b[k].read ||
            a[k].members != b[k].members) {
            snprintf(why, wn, "group %d is %s %lld/%lld, expected %s %lld/%lld", k, a[k].server,
                     a[k].read, a[k].members, b[k].server, b[k].read, b[k].members);
            return false;
        }
    return true;
}

/* Waits until every server's history shows the same messages in the same order as server 0's,
 * each with its expected groups and read_count their sum; asserts after GROUP_WAIT_MS with the
 * first difference. order receives server 0's history. The ms it took. */
static long long wait_groups(struct scene *sc, struct ghist *order, const struct reader *rd,
                             int nrd)
{
    long long t0 = scene_now_ms();
    static struct ghist h;
    for (;;) {
        char why[512] = "", detail[256];
        hist_get(sc, 0, order);
        for (int i = 0; i < sc->nsrv && !why[0]; i++) {
            if (i == 0)
                h = *order;
            else
                hist_get(sc, i, &h);
            if (h.n != order->n) {
                snprintf(why, sizeof why, "%s holds %d messages, %s %d", sc->names[i], h.n,
                         sc->names[0], order->n);
                break;
            }
            for (int j = 0; j < h.n && !why[0]; j++) {
                struct group want[FEDNET_MAX];
                int nw = expected(sc, order, j, rd, nrd, want);
                long long sum = 0;
                for (int k = 0; k < h.m[j].ngroups; k++)
                    sum += h.m[j].g[k].read;
                if (strcmp(h.m[j].id, order->m[j].id) != 0)
                    snprintf(why, sizeof why, "%s: message %d is %s, on %s %s", sc->names[i], j,
                             h.m[j].id, sc->names[0], order->m[j].id);
                else if (!groups_equal(h.m[j].g, h.m[j].ngroups, want, nw, detail, sizeof detail))
                    snprintf(why, sizeof why, "%s: message %d (%s of %s): %s", sc->names[i], j,
                             h.m[j].login, h.m[j].origin, detail);
                else if (sum != h.m[j].count)
                    snprintf(why, sizeof why, "%s: message %d: read_count %lld, groups sum %lld",
                             sc->names[i], j, h.m[j].count, sum);
            }
        }
        if (!why[0])
            return scene_now_ms() - t0;
        if (scene_now_ms() - t0 > GROUP_WAIT_MS)
            cr_assert_fail("read_by_server does not agree after %d ms: %s", GROUP_WAIT_MS, why);
        scene_sleep_ms(50);
    }
}

/* A `read` push: counts_by_server beside counts, one entry per position, in the same order,
 * its groups' reads summing to the count. Returns the entries checked. */
static int check_push(const cJSON *ev)
{
    const cJSON *counts = cJSON_GetObjectItem(ev, "counts");
    const cJSON *groups = cJSON_GetObjectItem(ev, "counts_by_server");
    cr_assert(cJSON_IsArray(counts) && cJSON_IsArray(groups), "a shared room's read push");
    cr_assert_eq(cJSON_GetArraySize(groups), cJSON_GetArraySize(counts));
    for (int k = 0; k < cJSON_GetArraySize(counts); k++) {
        const cJSON *c = cJSON_GetArrayItem(counts, k), *g = cJSON_GetArrayItem(groups, k);
        cr_assert_eq(cJSON_GetNumberValue(cJSON_GetArrayItem(c, 0)),
                     cJSON_GetNumberValue(cJSON_GetArrayItem(g, 0)), "the same position");
        double sum = 0;
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetArrayItem(g, 1))
        {
            cr_assert(cJSON_IsString(cJSON_GetArrayItem(t, 0)), "[server, read, members]");
            double read = cJSON_GetNumberValue(cJSON_GetArrayItem(t, 1));
            cr_assert_leq(read, cJSON_GetNumberValue(cJSON_GetArrayItem(t, 2)));
            sum += read;
        }
        cr_assert_eq(sum, cJSON_GetNumberValue(cJSON_GetArrayItem(c, 1)),
                     "counts_by_server sums to counts");
    }
    return cJSON_GetArraySize(counts);
}

/* The kizuna command as scene user u on its own server (config dir under the server's data
 * directory); its output in out. */
static void cli_as(struct scene *sc, struct scene_user *u, char *out, size_t outlen, const char *a1,
                   const char *a2, const char *a3, const char *a4)
{
    char env_dir[400], env_srv[100], env_pw[300];
    snprintf(env_dir, sizeof env_dir, "KIZUNA_CONFIG_DIR=%s/cli-%.31s", sc->net.s[u->srv].d.dir,
             u->login);
    snprintf(env_srv, sizeof env_srv, "KIZUNA_SERVER=%s", sc->net.s[u->srv].d.url);
    snprintf(env_pw, sizeof env_pw, "KIZUNA_PASSWORD=%.31s%s", u->login, TEST_PW_SUFFIX);
    const char *env[] = {env_dir, env_srv, env_pw, NULL};
    const char *argv[] = {KIZUNA_PATH, a1, a2, a3, a4, NULL};
    int rc = run_capture(argv, env, NULL, out, outlen);
    cr_assert_eq(rc, 0, "kizuna %s %s: %s", a1, a2 ? a2 : "", out);
}

/* `kizuna tail ROOM --no-read` as u: a message u sends shows live, and once a user of another
 * server reads it, one line gives its new 既読 by server. */
static void cli_tail_check(struct scene *sc, struct scene_user *u, struct scene_user *reader)
{
    char env_dir[400], env_srv[100];
    snprintf(env_dir, sizeof env_dir, "KIZUNA_CONFIG_DIR=%s/cli-%.31s", sc->net.s[u->srv].d.dir,
             u->login);
    snprintf(env_srv, sizeof env_srv, "KIZUNA_SERVER=%s", sc->net.s[u->srv].d.url);
    const char *env[] = {env_dir, env_srv, NULL};
    const char *argv[] = {"/bin/sh",   "-c",     "exec \"$0\" tail \"$1\" --no-read 2>&1",
                          KIZUNA_PATH, sc->room, NULL};
    int fd;
    pid_t tail = spawn_reader(argv, env, &fd);
    static char buf[65536];
    size_t len = 0;
    /* Following once its first page (messages with their 既読 by server) is out. */
    cr_assert(read_until(fd, buf, sizeof buf, &len, "既読", 10000), "tail: %s", buf);
    scene_sleep_ms(300);
    cJSON *r = scene_user_call(sc, u,
                               "{\"id\":14,\"op\":\"msg.send\",\"room\":\"%s\",\"body\":"
                               "\"第一報 tail\"}",
                               sc->room);
    cr_assert_str_eq(reply_code(r), "ok");
    long long pos = (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(r, "pos"));
    char id[FC_ID_MAX];
    snprintf(id, sizeof id, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(r, "event_id")));
    cJSON_Delete(r);
    cr_assert(read_until(fd, buf, sizeof buf, &len, "第一報 tail", 10000), "tail: %s", buf);
    static struct ghist h;
    long long t0 = scene_now_ms();
    do { /* the reader's server holds it */
        cr_assert_lt(scene_now_ms() - t0, 10000, "the message reaches %s", sc->names[reader->srv]);
        scene_sleep_ms(20);
        hist_get(sc, reader->srv, &h);
    } while (index_of(&h, id) < 0);
    r = scene_user_call(sc, reader, "{\"id\":15,\"op\":\"read\",\"room\":\"%s\"}", sc->room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    /* Its groups (fednet's ids sort in their order): the reader's server's 1 read; u's server
     * without u. */
    char want[512];
    size_t at = (size_t)snprintf(want, sizeof want, "#%lld  既読", pos);
    for (int i = 0; i < sc->nsrv; i++) {
        long long members = sc->users + (i == sc->authority) - (i == u->srv);
        at += (size_t)snprintf(want + at, sizeof want - at, "%s %.63s %d/%lld", i ? " ·" : "",
                               sc->names[i], i == reader->srv, members);
    }
    cr_assert(read_until(fd, buf, sizeof buf, &len, want, 15000), "tail shows \"%s\":\n%s", want,
              buf);
    kill(tail, SIGTERM);
    waitpid(tail, NULL, 0);
    close(fd);
}

/* `kizuna history` shows message j's groups after it ("  既読 SERVER 1/3 · ..."; no names are
 * pinned here, so ids), and `kizuna readers` groups by municipality. */
static void cli_check(struct scene *sc, const struct ghist *order, int j, const struct group *want,
                      int nw)
{
    static char out[65536];
    struct scene_user *u = &sc->u[2][1];
    cli_as(sc, u, out, sizeof out, "login", u->login, NULL, NULL);
    cli_as(sc, u, out, sizeof out, "history", sc->room, "--no-read", NULL);
    char line[512] = "  既読";
    size_t at = strlen(line);
    for (int g = 0; g < nw; g++)
        at += (size_t)snprintf(line + at, sizeof line - at, "%s %.63s %lld/%lld", g ? " ·" : "",
                               want[g].server, want[g].read, want[g].members);
    cr_assert(strstr(out, line), "history shows \"%s\":\n%s", line, out);
    static struct ghist h;
    hist_get(sc, 2, &h);
    int k = index_of(&h, order->m[j].id);
    cr_assert_geq(k, 0);
    char pos[32];
    snprintf(pos, sizeof pos, "%lld", h.m[k].pos);
    cli_as(sc, u, out, sizeof out, "readers", sc->room, pos, NULL);
    cr_assert(strstr(out, "by municipality"), "%s", out);
    for (int g = 0; g < nw; g++) {
        snprintf(line, sizeof line, "%.63s %lld/%lld\n", want[g].server, want[g].read,
                 want[g].members);
        cr_assert(strstr(out, line), "readers shows \"%s\":\n%s", line, out);
    }
}

Test(fed_read_groups, read_by_server_agrees_on_every_server)
{
    struct scene *sc = &the_scene;
    scene_setup(sc, "readgrp", 3, 0);
    cr_assert_geq(sc->users, 2, "KZ_FED_USERS must be 2 or more here");
    scene_phase_run(sc, scene_all(sc), GROUP_MSGS);
    scene_converge(sc, "everyone sent");
    static struct ghist order;
    hist_get(sc, 0, &order);
    int n = order.n;
    cr_assert_eq(n, 3 * sc->users * GROUP_MSGS);

    /* Every server's users read to different places; server 0's second user reads nothing. */
    struct reader rd[5] = {{.u = &sc->u[0][0]},
                           {.u = &sc->u[1][0]},
                           {.u = &sc->u[1][1]},
                           {.u = &sc->u[2][0]},
                           {.u = &sc->u[2][1]}};
    struct ws live;
    char pw[96];
    snprintf(pw, sizeof pw, "%.31s%s", sc->u[0][1].login, TEST_PW_SUFFIX);
    ws_live(&live, sc->net.s[0].d.port, sc->u[0][1].login, pw, -1, NULL);
    /* Before anyone reads: 0 of every group everywhere. */
    wait_groups(sc, &order, rd, 5);
    read_to(sc, &rd[0], order.m[n / 4].id, &order);
    read_to(sc, &rd[1], order.m[n / 2].id, &order);
    read_to(sc, &rd[2], order.m[3 * n / 4].id, &order);
    read_to(sc, &rd[3], order.m[n - 1].id, &order);
    read_to(sc, &rd[4], order.m[n / 3].id, &order);
    read_to(sc, &rd[0], order.m[n / 6].id, &order); /* back: the marker stays */
    long long took = wait_groups(sc, &order, rd, 5);
    fprintf(stderr, "FIG read groups: read_by_server agrees on 3 servers %lld ms after the reads\n",
            took);
    scene_converge(sc, "after the reads");

    /* The live client on server 0 saw the reads as pushes with counts by server. */
    int pushes = 0, entries = 0;
    for (cJSON *ev; (ev = ws_next_event(&live, 300));) {
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(ev, "event"));
        cr_assert_not_null(type);
        if (strcmp(type, "read") == 0) {
            pushes++;
            entries += check_push(ev);
        }
        cJSON_Delete(ev);
    }
    ws_close_fd(&live);
    cr_assert_gt(pushes, 0, "the reads are pushed");
    cr_assert_gt(entries, 0, "with counts by server");

    /* readers: the same groups everywhere, and each reader's server. */
    int j = n / 4; /* read by rd[0..3] (unless one sent it) */
    struct group want[FEDNET_MAX];
    int nw = expected(sc, &order, j, rd, 5, want);
    for (int i = 0; i < sc->nsrv; i++) {
        static struct ghist h;
        hist_get(sc, i, &h);
        int k = index_of(&h, order.m[j].id);
        cr_assert_geq(k, 0);
        cJSON *rr = scene_user_call(sc, &sc->u[i][0],
                                    "{\"id\":10,\"op\":\"readers\",\"room\":\"%s\",\"pos\":%lld}",
                                    sc->room, h.m[k].pos);
        cr_assert_str_eq(reply_code(rr), "ok");
        struct group got[FEDNET_MAX];
        int ng = groups_parse(cJSON_GetObjectItem(rr, "by_server"), got, sc->names[i]);
        char why[256];
        cr_assert(groups_equal(got, ng, want, nw, why, sizeof why), "readers on %s: %s",
                  sc->names[i], why);
        long long per[FEDNET_MAX] = {0}, nread = 0;
        const cJSON *o;
        cJSON_ArrayForEach(o, cJSON_GetObjectItem(rr, "read"))
        {
            const char *server = cJSON_GetStringValue(cJSON_GetObjectItem(o, "server"));
            cr_assert_not_null(server, "a reader's server");
            for (int g = 0; g < nw; g++)
                per[g] += strcmp(want[g].server, server) == 0;
            nread++;
        }
        for (int g = 0; g < nw; g++)
            cr_assert_eq(per[g], want[g].read, "readers of %s on %s", want[g].server, sc->names[i]);
        cJSON_ArrayForEach(o, cJSON_GetObjectItem(rr, "unread"))
            cr_assert_not_null(cJSON_GetStringValue(cJSON_GetObjectItem(o, "server")));
        cr_assert_eq(nread, order.m[j].count);
        cJSON_Delete(rr);
    }
    scene_check_acked(sc);
    cli_check(sc, &order, j, want, nw);
    cli_tail_check(sc, &sc->u[2][1], &sc->u[1][0]);

    /* A room of one server shows no counts by server. */
    cJSON *local =
        scene_user_call(sc, &sc->u[1][0], "{\"id\":11,\"op\":\"room.create\",\"name\":\"local\"}");
    cr_assert_str_eq(reply_code(local), "ok");
    const char *lroom =
        cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(local, "room"), "room"));
    cr_assert_not_null(lroom);
    char lid[64];
    snprintf(lid, sizeof lid, "%s", lroom);
    cJSON_Delete(local);
    cJSON *sent =
        scene_user_call(sc, &sc->u[1][0],
                        "{\"id\":12,\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"local\"}", lid);
    cr_assert_str_eq(reply_code(sent), "ok");
    cJSON_Delete(sent);
    cJSON *lh =
        scene_user_call(sc, &sc->u[1][0], "{\"id\":13,\"op\":\"history\",\"room\":\"%s\"}", lid);
    cr_assert_str_eq(reply_code(lh), "ok");
    const cJSON *e;
    int msgs = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(lh, "events"))
    {
        cr_assert_null(cJSON_GetObjectItem(e, "read_by_server"), "a room of one server");
        msgs += strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(e, "event")), "msg") == 0;
    }
    cr_assert_eq(msgs, 1);
    cJSON_Delete(lh);
}
