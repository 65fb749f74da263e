/* test_fed_admit.c - a shared room's member servers after its creation (issue 17, item 7): the
 * authority alone admits a server (room.server), which then receives the whole room, adds its
 * own users and writes in it like the others; the authority removes it again, and from then on
 * it learns of its removal, is refused writes there, and gets nothing written after it. Only
 * the authority may do either. Three real kizunad paired through the fault proxies (fednet.h);
 * every check reads the databases (fedcheck.h) or asks the servers, with deadlines. */
#include <criterion/criterion.h>
#include <sqlite3.h>
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

/* Events of origin in room on server i: valid ones past the cutoff (inc, seq), and invalid ones
 * at or before it. Both must be 0 once the removal is applied. */
static void cut_counts(int i, const char *room, const char *origin, long long inc, long long seq,
                       long long *valid_past, long long *invalid_within, long long *held_past)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open_v2(net.s[i].db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(
                     db,
                     "SELECT coalesce(sum(e.invalid IS NULL AND (e.inc, e.seq) > (?3, ?4)), 0),"
                     " coalesce(sum(e.invalid IS NOT NULL AND (e.inc, e.seq) <= (?3, ?4)), 0),"
                     " coalesce(sum((e.inc, e.seq) > (?3, ?4)), 0)"
                     " FROM events e JOIN rooms r ON r.id = e.room"
                     " WHERE r.room_id = ?1 AND e.origin = ?2",
                     -1, &st, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, room, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, origin, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, inc);
    sqlite3_bind_int64(st, 4, seq);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    *valid_past = sqlite3_column_int64(st, 0);
    *invalid_within = sqlite3_column_int64(st, 1);
    *held_past = sqlite3_column_int64(st, 2);
    sqlite3_finalize(st);
    sqlite3_close(db);
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
    const char *refused = "ok";
    for (long long t = 0; t < DEADLINE_MS && !strcmp(refused, "ok"); t += 20) {
        refused = send_as(2, "ima", room, "still here?", NULL);
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    /* Its user left with it (not_found), or the room is read-only there (forbidden). */
    cr_assert(!strcmp(refused, "not_found") || !strcmp(refused, "forbidden"),
              "C's users may no longer write in the room: %s", refused);
    char after[FC_ID_MAX];
    cr_assert_str_eq(send_as(0, "ken", room, "after C left", after), "ok");
    cr_assert_geq(fc_wait_event(dbs, 2, after, 5, DEADLINE_MS), 0, "B gets it");
    cr_assert(!holds(2, room, after), "nothing written after its removal reaches C");
    (void)A;
}

/* T8: a server removed while it is cut off and still writing. Its users go on sending (it does
 * not know); the authority removes it with the cutoff it holds; after healing, every server,
 * the removed one included, takes its events up to the cutoff and hides exactly those past it. */
Test(fed_admit, t8_a_server_removed_while_cut_off_is_cut_alike_everywhere)
{
    fednet_start(&net, 3, NULL, NULL, 0x7438ULL);
    const char *C = net.s[2].id;
    const char *users[] = {"ken", "matsu", "ima"};
    for (int i = 0; i < 3; i++)
        fednet_user_add(&net, i, users[i]);
    cJSON *r = ok(0, "room.create",
                  fednet_admin(&net, 0,
                               "\"op\":\"room.create\",\"name\":\"hotline\",\"servers\":[\"%s\","
                               "\"%s\"]",
                               net.s[1].id, C));
    char room[64];
    snprintf(room, sizeof room, "%s",
             cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "room"), "room")));
    cJSON_Delete(r);
    for (int i = 0; i < 3; i++) {
        wait_room(i, room);
        cJSON_Delete(
            ok(i, "invite",
               fednet_admin(&net, i, "\"op\":\"room.invite\",\"room\":\"%s\",\"user\":\"%s\"", room,
                            users[i])));
    }
    for (int i = 0; i < 3; i++)
        cr_assert_str_eq(send_as(i, users[i], room, "before the cut", NULL), "ok");
    const char *dbs[] = {net.s[0].db, net.s[1].db, net.s[2].db};
    cr_assert_geq(fc_wait_agree(dbs, 3, room, DEADLINE_MS, NULL), 0);

    /* C is cut off and writes on; the authority removes it meanwhile. */
    fednet_isolate(&net, 2, true);
    for (int k = 0; k < 5; k++)
        cr_assert_str_eq(send_as(2, "ima", room, "while cut off", NULL), "ok");
    r = ok(0, "room.server",
           fednet_admin(&net, 0,
                        "\"op\":\"room.server\",\"room\":\"%s\",\"server\":\"%s\","
                        "\"admitted\":false",
                        room, C));
    const cJSON *cutoff = cJSON_GetObjectItem(r, "cutoff");
    long long ci = (long long)cJSON_GetArrayItem(cutoff, 0)->valuedouble;
    long long cs = (long long)cJSON_GetArrayItem(cutoff, 1)->valuedouble;
    cJSON_Delete(r);
    cr_assert_str_eq(send_as(1, "matsu", room, "after the removal", NULL), "ok");

    /* Healed: A and B agree; C learns of its removal; every server hides exactly C's events past
     * the cutoff, and none of those at or before it. */
    fednet_isolate(&net, 2, false);
    cr_assert_geq(fc_wait_agree(dbs, 2, room, DEADLINE_MS, NULL), 0, "A and B agree");
    long long vp = 0, iw = 0, hp = 0;
    for (int i = 0; i < 3; i++) {
        for (long long t = 0;; t += 20) {
            cut_counts(i, room, C, ci, cs, &vp, &iw, &hp);
            /* C's 5 messages from its cut-off time, past the cutoff, held everywhere: its log
             * stays whole (A and B take them from C itself, as invalid). */
            if (vp == 0 && iw == 0 && hp == 5)
                break;
            cr_assert_lt(t, DEADLINE_MS,
                         "on %s: %lld of C's events past the cutoff [%lld, %lld] (%lld held) still"
                         " valid, %lld within it invalid",
                         net.s[i].id, vp, ci, cs, hp, iw);
            struct timespec ts = {0, 20 * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    /* C knows it was removed: its user can no longer write there. */
    const char *got = send_as(2, "ima", room, "again", NULL);
    cr_assert(strcmp(got, "ok") != 0, "C's user still writes in the room");
    /* The events C wrote while cut off are on A and B too (its log stays whole), hidden. */
    struct fc_state a, b;
    cr_assert(fc_read(net.s[0].db, room, &a) && fc_read(net.s[1].db, room, &b));
    cr_assert(fc_agree(&a, &b));
    fprintf(stderr,
            "FIG T8: %s removed while cut off with cutoff [%lld, %lld]; every server hides "
            "exactly its events past it\n",
            C, ci, cs);
}
