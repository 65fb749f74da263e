/* test_fed_state.c - visible delivery state (issue 17, item 9) between real kizunad processes
 * paired through fault proxies (support/fednet.h, support/fedscene.h): room.servers names a
 * room's authority and member servers, and for one message the servers that acknowledged it,
 * which grows to all of them once they agree; peer.list's replication counters move, and what
 * a cut peer lacks (events_behind, bytes_behind, the oldest undelivered event) rises while it is
 * cut and falls to nothing after healing.
 *
 * Environment: as test_fed_sync.c (KZ_FED_SEED, KZ_FED_USERS, KZ_FED_CONVERGE_MS). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedscene.h"

#define STATE_WAIT_MS 20000 /* for acknowledgements to reach a server after agreement */

static struct scene the_scene; /* stopped and freed by the teardown, however the test ends */

static void teardown(void)
{
    scene_stop(&the_scene);
}

TestSuite(fed_state, .fini = teardown, .timeout = 240);

static const cJSON *item(const cJSON *o, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(o, name);
}

static long long num(const cJSON *o, const char *name)
{
    const cJSON *v = item(o, name);
    cr_assert(cJSON_IsNumber(v), "no number %s", name);
    return (long long)v->valuedouble;
}

static const char *str(const cJSON *o, const char *name)
{
    const cJSON *v = item(o, name);
    cr_assert(cJSON_IsString(v), "no string %s", name);
    return v->valuestring;
}

/* Whether the JSON array of strings holds s. */
static bool has(const cJSON *arr, const char *s)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (cJSON_IsString(it) && strcmp(it->valuestring, s) == 0)
            return true;
    }
    return false;
}

/* room.servers of room on server i as its admin (pos 0: none); the reply (caller deletes). */
static cJSON *room_servers(struct fednet *net, int i, const char *room, long long pos)
{
    cJSON *r;
    if (pos)
        r = fednet_admin(net, i, "\"op\":\"room.servers\",\"room\":\"%s\",\"pos\":%lld", room, pos);
    else
        r = fednet_admin(net, i, "\"op\":\"room.servers\",\"room\":\"%s\"", room);
    cr_assert_str_eq(reply_code(r), "ok", "room.servers on %s", net->s[i].id);
    return r;
}

/* Waits until room.servers on server i says every server of the scene acknowledged pos. */
static long long wait_acked_by_all(struct scene *sc, int i, long long pos)
{
    long long t0 = scene_now_ms();
    for (;;) {
        cJSON *r = room_servers(&sc->net, i, sc->room, pos);
        const cJSON *acked = item(r, "acked_by");
        int n = cJSON_GetArraySize(acked);
        bool all = true;
        for (int k = 0; k < sc->nsrv; k++)
            all &= has(acked, sc->names[k]);
        if (all) {
            cr_assert_eq(n, sc->nsrv, "each server once");
            cJSON_Delete(r);
            return scene_now_ms() - t0;
        }
        if (scene_now_ms() - t0 > STATE_WAIT_MS) {
            char *text = cJSON_PrintUnformatted(r);
            cr_assert_fail("#%lld on %s: not acknowledged by all after %d ms: %s", pos,
                           sc->names[i], STATE_WAIT_MS, text);
        }
        cJSON_Delete(r);
        scene_sleep_ms(FC_POLL_MS);
    }
}

/* peer.list on server i: the reply (caller deletes) and, in *peer, the replication of peer j. */
static cJSON *peer_list(struct fednet *net, int i, int j, const cJSON **peer)
{
    cJSON *r = fednet_admin(net, i, "\"op\":\"peer.list\"");
    cr_assert_str_eq(reply_code(r), "ok");
    *peer = NULL;
    const cJSON *p;
    cJSON_ArrayForEach(p, item(r, "peers"))
    {
        if (strcmp(str(p, "server"), net->s[j].id) == 0)
            *peer = item(p, "replication");
    }
    cr_assert_not_null(*peer, "%s lists %s with its replication", net->s[i].id, net->s[j].id);
    return r;
}

/* Waits until server i sees peer j lacking nothing. */
static void wait_nothing_behind(struct fednet *net, int i, int j)
{
    long long t0 = scene_now_ms();
    for (;;) {
        const cJSON *rep;
        cJSON *r = peer_list(net, i, j, &rep);
        bool done = num(rep, "events_behind") == 0;
        if (done) {
            cr_assert_eq(num(rep, "bytes_behind"), 0);
            cr_assert_eq(num(rep, "oldest_undelivered_ts"), 0);
            cr_assert_eq(num(rep, "oldest_undelivered_age_ms"), 0);
        } else if (scene_now_ms() - t0 > STATE_WAIT_MS) {
            char *text = cJSON_PrintUnformatted(rep);
            cr_assert_fail("%s still sees %s behind after %d ms: %s", net->s[i].id, net->s[j].id,
                           STATE_WAIT_MS, text);
        }
        cJSON_Delete(r);
        if (done)
            return;
        scene_sleep_ms(FC_POLL_MS);
    }
}

/* A message of server i's admin in room: its position there. */
static long long admin_send(struct fednet *net, int i, const char *room, const char *body)
{
    cJSON *r =
        fednet_admin(net, i, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"%s\"", room, body);
    cr_assert_str_eq(reply_code(r), "ok", "msg.send on %s", net->s[i].id);
    long long pos = num(r, "pos");
    cJSON_Delete(r);
    return pos;
}

/* A room of one server: no authority, that server alone, and a message acknowledged by it
 * alone. A shared room: its authority and its servers, each once and in id order, on the
 * authority and on a member server, for a member user and an admin not in it, never for a user
 * outside it; a message of a member server is acknowledged by its origin at once and by every
 * server once they agree; a position outside the room is not_found. */
Test(fed_state, room_servers_names_the_servers_and_who_acknowledged_a_message)
{
    struct scene *sc = &the_scene;
    scene_setup(sc, "state", 3, 0);
    struct fednet *net = &sc->net;

    /* A room of server 0 only. */
    cJSON *r = fednet_admin(net, 0, "\"op\":\"room.create\",\"name\":\"local\"");
    cr_assert_str_eq(reply_code(r), "ok");
    char local[64];
    snprintf(local, sizeof local, "%s", str(item(r, "room"), "room"));
    cJSON_Delete(r);
    long long lpos = admin_send(net, 0, local, "local");
    r = room_servers(net, 0, local, lpos);
    cr_assert_str_eq(str(r, "room"), local);
    cr_assert_str_eq(str(r, "authority"), "", "a local room has no authority");
    const cJSON *servers = item(r, "servers");
    cr_assert_eq(cJSON_GetArraySize(servers), 1);
    const cJSON *s0 = cJSON_GetArrayItem(servers, 0);
    cr_assert_str_eq(str(s0, "server"), sc->names[0]);
    cr_assert_str_eq(str(s0, "name"), "");
    cr_assert(cJSON_IsTrue(item(s0, "self")) && cJSON_IsTrue(item(s0, "admitted")));
    cr_assert_eq(cJSON_GetArraySize(item(r, "acked_by")), 1);
    cr_assert(has(item(r, "acked_by"), sc->names[0]));
    cr_assert_str_eq(str(item(r, "log"), "origin"), sc->names[0]);
    cJSON_Delete(r);
    r = fednet_admin(net, 1, "\"op\":\"room.servers\",\"room\":\"%s\"", local);
    cr_assert_str_eq(reply_code(r), "not_found", "server 1 does not hold the local room");
    cJSON_Delete(r);

    /* The shared room, on its authority and on a member server. */
    for (int i = 0; i < 2; i++) {
        r = room_servers(net, i, sc->room, 0);
        cr_assert_str_eq(str(r, "authority"), sc->names[0], "on %s", sc->names[i]);
        cr_assert_null(item(r, "acked_by"), "acked_by only with pos");
        servers = item(r, "servers");
        cr_assert_eq(cJSON_GetArraySize(servers), 3);
        const char *prev = "";
        const cJSON *s;
        int self = 0;
        cJSON_ArrayForEach(s, servers)
        {
            const char *id = str(s, "server");
            cr_assert_gt(strcmp(id, prev), 0, "in id order, each once");
            prev = id;
            cr_assert(cJSON_IsTrue(item(s, "admitted")), "%s admitted", id);
            bool me = strcmp(id, sc->names[i]) == 0;
            cr_assert_eq(cJSON_IsTrue(item(s, "self")), me, "%s self on %s", id, sc->names[i]);
            self += me;
            cr_assert_str_eq(str(s, "name"), "", "the fixture pins its peers without names");
        }
        cr_assert_eq(self, 1);
        cJSON_Delete(r);
    }

    /* A member user of server 1 sends, and asks; a user of server 1 outside the room may not. */
    struct ws w;
    char pw[64];
    const char *login = sc->u[1][0].login;
    snprintf(pw, sizeof pw, "%.31s" TEST_PW_SUFFIX, login);
    cr_assert(ws_open(&w, net->s[1].d.port));
    cr_assert(ws_login(&w, login, pw, NULL), "login %s", login);
    /* Its history begins with the room's creation, made on the authority and shown as such. */
    r = ws_callf(&w, "\"op\":\"history\",\"room\":\"%s\",\"after\":0,\"limit\":3", sc->room);
    cr_assert_str_eq(reply_code(r), "ok");
    const cJSON *first = cJSON_GetArrayItem(item(r, "events"), 0);
    cr_assert_not_null(first);
    cr_assert_str_eq(str(first, "event"), "room.create", "the creation is shown, not invalid");
    cr_assert_str_eq(str(first, "server"), sc->names[0]);
    cr_assert_str_eq(str(first, "server_name"), sc->names[0], "no peer name: its id");
    cJSON_Delete(r);
    r = ws_callf(&w, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"state #1\"", sc->room);
    cr_assert_str_eq(reply_code(r), "ok");
    long long pos = num(r, "pos");
    char event_id[FC_ID_MAX];
    snprintf(event_id, sizeof event_id, "%s", str(r, "event_id"));
    cJSON_Delete(r);
    r = ws_callf(&w, "\"op\":\"room.servers\",\"room\":\"%s\",\"pos\":%lld", sc->room, pos);
    cr_assert_str_eq(reply_code(r), "ok", "a member may ask");
    cr_assert_str_eq(str(r, "event_id"), event_id);
    const cJSON *log = item(r, "log");
    cr_assert_str_eq(str(log, "origin"), sc->names[1]);
    cr_assert_geq(num(log, "inc"), 1);
    cr_assert_geq(num(log, "seq"), 1);
    cr_assert(has(item(r, "acked_by"), sc->names[1]), "its origin has it at once");
    cJSON_Delete(r);
    r = ws_callf(&w, "\"op\":\"room.servers\",\"room\":\"%s\",\"pos\":%lld", sc->room,
                 lpos + 100000);
    cr_assert_str_eq(reply_code(r), "not_found", "no such event in the room");
    cJSON_Delete(r);
    ws_close_fd(&w);
    fednet_user_add(net, 1, "outsider1");
    cr_assert(ws_open(&w, net->s[1].d.port));
    cr_assert(ws_login(&w, "outsider1", "outsider1" TEST_PW_SUFFIX, NULL));
    r = ws_callf(&w, "\"op\":\"room.servers\",\"room\":\"%s\"", sc->room);
    cr_assert_str_eq(reply_code(r), "not_found", "a user outside the room may not ask");
    cJSON_Delete(r);
    ws_close_fd(&w);

    /* Once all agree, every server has acknowledged it to its origin. */
    scene_converge(sc, "one message of a member server");
    long long took = wait_acked_by_all(sc, 1, pos);
    fprintf(stderr, "FIG state: #%lld acknowledged by all %d servers %lld ms after agreement\n",
            pos, sc->nsrv, took);
    /* On the authority: the same event at its own position there (found by sync, in position
     * order), which it holds and its origin made. */
    long long pos0 = -1;
    r = fednet_admin(net, 0, "\"op\":\"sync\",\"since\":0,\"limit\":1000");
    const cJSON *m;
    cJSON_ArrayForEach(m, item(r, "events"))
    {
        const cJSON *id = item(m, "event_id");
        if (cJSON_IsString(id) && strcmp(id->valuestring, event_id) == 0)
            pos0 = num(m, "pos");
    }
    cJSON_Delete(r);
    cr_assert_gt(pos0, 0, "the message reached the authority's stream");
    r = room_servers(net, 0, sc->room, pos0);
    cr_assert_str_eq(str(r, "event_id"), event_id, "one event, another position on each server");
    cr_assert(has(item(r, "acked_by"), sc->names[0]) && has(item(r, "acked_by"), sc->names[1]));
    cJSON_Delete(r);
}

/* peer.list's replication: counters move as events are sent and received; a cut peer lacks the
 * events written meanwhile (with their bytes and the oldest one's time), and they show on
 * room.servers as not acknowledged by it; after healing it lacks nothing and has all of them. */
Test(fed_state, peer_list_shows_what_a_cut_peer_lacks)
{
    struct scene *sc = &the_scene;
    scene_setup(sc, "state-lag", 2, 0);
    struct fednet *net = &sc->net;
    scene_phase_run(sc, scene_all(sc), 3);
    scene_converge(sc, "before the cut");
    wait_nothing_behind(net, 0, 1);
    wait_nothing_behind(net, 1, 0);
    const cJSON *rep;
    cJSON *r = peer_list(net, 0, 1, &rep);
    const cJSON *top = item(r, "replication");
    cr_assert_gt(num(top, "events_sent"), 0, "server 0 sent its events");
    cr_assert_gt(num(top, "events_received"), 0, "server 0 took server 1's");
    cr_assert_eq(num(top, "forks"), 0);
    cr_assert_eq(num(top, "rejected"), 0);
    cr_assert_eq(num(rep, "forks"), 0);
    cr_assert(cJSON_IsFalse(item(rep, "quarantined")));
    cr_assert(cJSON_IsFalse(item(rep, "skew_alarm")));
    cr_assert_geq(num(rep, "unacked_bytes"), 0);
    long long sent_before = num(top, "events_sent");
    cJSON_Delete(r);

    /* Cut: what server 0 writes meanwhile is what server 1 lacks. */
    fednet_cut(net, 0, 1, true);
    fednet_wait_down(net, 0, 1, 10000);
    fednet_wait_down(net, 1, 0, 10000);
    const int N = 5;
    long long first = 0, last = 0;
    for (int k = 0; k < N; k++) {
        char body[32];
        snprintf(body, sizeof body, "while cut #%d", k);
        last = admin_send(net, 0, sc->room, body);
        if (!first)
            first = last;
    }
    scene_sleep_ms(50);
    r = peer_list(net, 0, 1, &rep);
    cr_assert_geq(num(rep, "events_behind"), N, "the cut peer lacks at least what was written");
    cr_assert_gt(num(rep, "bytes_behind"), 0);
    cr_assert_gt(num(rep, "oldest_undelivered_ts"), 0);
    cr_assert_geq(num(rep, "oldest_undelivered_age_ms"), 50, "the oldest has waited since then");
    fprintf(stderr,
            "FIG state-lag: while cut, %s lacks %lld events (%lld bytes), the oldest %lld ms old\n",
            sc->names[1], num(rep, "events_behind"), num(rep, "bytes_behind"),
            num(rep, "oldest_undelivered_age_ms"));
    cJSON_Delete(r);
    r = room_servers(net, 0, sc->room, last);
    cr_assert(has(item(r, "acked_by"), sc->names[0]));
    cr_assert_not(has(item(r, "acked_by"), sc->names[1]), "the cut peer has not acknowledged it");
    cJSON_Delete(r);

    /* Healed: it lacks nothing, and has everything. */
    fednet_cut(net, 0, 1, false);
    fednet_wait_links(net, 90000);
    scene_converge(sc, "after healing");
    wait_nothing_behind(net, 0, 1);
    wait_acked_by_all(sc, 0, first);
    wait_acked_by_all(sc, 0, last);
    r = peer_list(net, 0, 1, &rep);
    cr_assert_geq(num(item(r, "replication"), "events_sent"), sent_before + N,
                  "the backlog was sent after healing");
    cJSON_Delete(r);
}
