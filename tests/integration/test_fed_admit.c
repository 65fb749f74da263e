/* test_fed_admit.c - a shared room's member servers after its creation (issue 17, item 7): the
 * authority alone admits a server (room.server), which then receives the whole room, adds its
 * own users and writes in it like the others; the authority removes it again, and from then on
 * it learns of its removal, is refused writes there, and gets nothing written after it. Only
 * the authority may do either. Three real kizunad paired through the fault proxies (fednet.h);
 * every check reads the databases (fedcheck.h) or asks the servers, with deadlines. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fedcheck.h"
#include "fednet.h"

#define DEADLINE_MS 30000

static struct fednet net;

static void teardown(void)
{
    fednet_stop(&net);
}

TestSuite(fed_admit, .fini = teardown, .timeout = 120);

static const char *code(const cJSON *r)
{
    const cJSON *ok = cJSON_GetObjectItem(r, "ok");
    if (cJSON_IsTrue(ok))
        return "ok";
    return cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "code"));
}

/* An admin request on server i that must succeed; the reply (caller deletes). */
static cJSON *ok(int i, const char *what, cJSON *r)
{
    char *text = cJSON_PrintUnformatted(r);
    cr_assert_str_eq(code(r), "ok", "%s on %s: %s", what, net.s[i].id, text);
    free(text);
    return r;
}

/* Server i holds room (polls its database). */
static void wait_room(int i, const char *room)
{
    struct fc_state st;
    for (long long t = 0; t < DEADLINE_MS; t += 20) {
        if (fc_read(net.s[i].db, room, &st) && st.room_present && st.events > 0)
            return;
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    cr_assert_fail("%s never received the room", net.s[i].id);
}

/* A user of server i sends body in room: the reply's code, and its event id in id if ok. */
static const char *send_as(int i, const char *login, const char *room, const char *body,
                           char id[FC_ID_MAX])
{
    static char got[32];
    struct ws w;
    char pw[64];
    snprintf(pw, sizeof pw, "%s" TEST_PW_SUFFIX, login);
    cr_assert(ws_open(&w, net.s[i].d.port));
    cr_assert(ws_login(&w, login, pw, NULL), "login %s on %s", login, net.s[i].id);
    cJSON *r = ws_callf(&w, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"%s\"", room, body);
    cr_assert_not_null(r);
    snprintf(got, sizeof got, "%s", code(r));
    if (id)
        snprintf(id, FC_ID_MAX, "%s",
                 strcmp(got, "ok") ? "" : cJSON_GetStringValue(cJSON_GetObjectItem(r, "event_id")));
    cJSON_Delete(r);
    ws_close_fd(&w);
    return got;
}

static bool holds(int i, const char *room, const char *event_id)
{
    const char *ids[] = {event_id};
    struct fc_acked a;
    return fc_check_acked(net.s[i].db, room, ids, 1, &a) && a.once == 1;
}

Test(fed_admit, the_authority_admits_a_server_later_and_removes_it)
{
    fednet_start(&net, 3, NULL, NULL, 0x61646d6974ULL);
    const char *A = net.s[0].id, *C = net.s[2].id;
    for (int i = 0; i < 3; i++)
        fednet_user_add(&net, i, i == 0 ? "ken" : i == 1 ? "matsu" : "ima");

    /* The room of A and B only. */
    cJSON *r =
        ok(0, "room.create",
           fednet_admin(&net, 0, "\"op\":\"room.create\",\"name\":\"hotline\",\"servers\":[\"%s\"]",
                        net.s[1].id));
    char room[64];
    snprintf(room, sizeof room, "%s",
             cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "room"), "room")));
    cJSON_Delete(r);
    cJSON_Delete(ok(0, "invite",
                    fednet_admin(&net, 0,
                                 "\"op\":\"room.invite\",\"room\":\"%s\","
                                 "\"user\":\"ken\"",
                                 room)));
    wait_room(1, room);
    cJSON_Delete(ok(1, "invite",
                    fednet_admin(&net, 1,
                                 "\"op\":\"room.invite\",\"room\":\"%s\","
                                 "\"user\":\"matsu\"",
                                 room)));
    char before[FC_ID_MAX];
    cr_assert_str_eq(send_as(0, "ken", room, "before C", before), "ok");

    /* Only the authority admits: B may not, and C cannot add its users before it is in. */
    r = fednet_admin(&net, 1, "\"op\":\"room.server\",\"room\":\"%s\",\"server\":\"%s\"", room, C);
    cr_assert_str_eq(code(r), "forbidden", "B is not the room's authority");
    cJSON_Delete(r);
    r = fednet_admin(&net, 0, "\"op\":\"room.server\",\"room\":\"%s\",\"server\":\"jp-99-nowhere\"",
                     room);
    cr_assert_str_eq(code(r), "not_found", "not a peer");
    cJSON_Delete(r);

    /* A admits C: C receives the whole room, adds its user, who writes; all three agree. */
    cJSON_Delete(
        ok(0, "room.server",
           fednet_admin(&net, 0, "\"op\":\"room.server\",\"room\":\"%s\",\"server\":\"%s\"", room,
                        C)));
    r = fednet_admin(&net, 0, "\"op\":\"room.server\",\"room\":\"%s\",\"server\":\"%s\"", room, C);
    cr_assert_str_eq(code(r), "conflict", "admitted already");
    cJSON_Delete(r);
    wait_room(2, room);
    for (long long t = 0;; t += 20) {
        r = fednet_admin(&net, 2, "\"op\":\"room.invite\",\"room\":\"%s\",\"user\":\"ima\"", room);
        bool done = strcmp(code(r), "ok") == 0;
        cJSON_Delete(r);
        if (done)
            break;
        /* Its admission may still be on the way: the room is read-only here until then. */
        cr_assert_lt(t, DEADLINE_MS, "C's admin never could add its user");
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    char from_c[FC_ID_MAX];
    cr_assert_str_eq(send_as(2, "ima", room, "C is in", from_c), "ok");
    const char *dbs[] = {net.s[0].db, net.s[1].db, net.s[2].db};
    struct fc_state last[3];
    long long ms = fc_wait_agree(dbs, 3, room, DEADLINE_MS, last);
    cr_assert_geq(ms, 0, "the three servers agree after the admission");
    cr_assert(holds(2, room, before), "C has what was said before it was admitted");
    cr_assert(holds(0, room, from_c) && holds(1, room, from_c), "C's user reaches A and B");
    fprintf(stderr, "FIG admit: a server admitted later holds the room and agrees in %lld ms\n",
            ms);

    /* A removes C: C learns it and is refused writes there; what A and B say next stays
     * with them. */
    cJSON_Delete(ok(0, "room.server",
                    fednet_admin(&net, 0,
                                 "\"op\":\"room.server\",\"room\":\"%s\",\"server\":\"%s\","
                                 "\"admitted\":false",
                                 room, C)));
    const char *refused = "";
    for (long long t = 0; t < DEADLINE_MS; t += 20) {
        refused = send_as(2, "ima", room, "still here?", NULL);
        if (strcmp(refused, "forbidden") == 0)
            break;
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    cr_assert_str_eq(refused, "forbidden", "C's users may no longer write in the room");
    char after[FC_ID_MAX];
    cr_assert_str_eq(send_as(0, "ken", room, "after C left", after), "ok");
    cr_assert_geq(fc_wait_event(dbs, 2, after, 5, DEADLINE_MS), 0, "B gets it");
    cr_assert(!holds(2, room, after), "nothing written after its removal reaches C");
    (void)A;
}
