/* test_fed_skew.c - T7, clock skew (issue 18, item 5): one server's clock three hours ahead,
 * another's three hours behind (libfaketime, LD_PRELOADed into just those kizunad; their
 * monotonic clocks, which time links and deadlines, are left alone). A report from the server
 * ahead, a reply from the one behind and a reply to that from the third: every server shows
 * them in that order (the hybrid logical clock puts a reply after what it answers whatever the
 * clocks say), holds the same order, invalidates nothing, and raises the clock-skew alarm for
 * each skewed peer (peer.list's skew_alarm). */
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

TestSuite(fed_skew, .fini = teardown, .timeout = 180);

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Starts server i again with its wall clock moved by offset ("+3h", "-3h"). */
static void restart_skewed(int i, const char *offset)
{
    fednet_kill(&net, i);
    const char *asan = getenv("ASAN_OPTIONS");
    char opts[512], *saved = asan ? strdup(asan) : NULL;
    /* Under ASan a preloaded library cannot come first in the library list. */
    snprintf(opts, sizeof opts, "%s%sverify_asan_link_order=0", asan ? asan : "",
             asan && *asan ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    setenv("LD_PRELOAD", KZ_FAKETIME_PATH, 1);
    setenv("FAKETIME", offset, 1);
    setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1", 1);
    fednet_restart(&net, i);
    unsetenv("LD_PRELOAD");
    unsetenv("FAKETIME");
    unsetenv("FAKETIME_DONT_FAKE_MONOTONIC");
    if (saved)
        setenv("ASAN_OPTIONS", saved, 1);
    else
        unsetenv("ASAN_OPTIONS");
    free(saved);
}

/* Sends body in room as the admin of server i after it holds the event `after` (if given);
 * the new event's id in id. */
static void say(int i, const char *room, const char *body, const char *after, char id[FC_ID_MAX])
{
    if (after) {
        const char *db[] = {net.s[i].db};
        cr_assert_geq(fc_wait_event(db, 1, after, 5, DEADLINE_MS), 0, "%s never got %s",
                      net.s[i].id, after);
    }
    cJSON *r =
        fednet_admin(&net, i, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"%s\"", room, body);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")), "send on %s", net.s[i].id);
    snprintf(id, FC_ID_MAX, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(r, "event_id")));
    cJSON_Delete(r);
}

/* The three messages' order on server i (their bodies, in history order) into out; and how
 * many events of the room are invalid there. */
static void order_on(int i, const char *room, char *out, size_t n, long long *invalid)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open_v2(net.s[i].db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "SELECT m.body FROM events e JOIN rooms r ON r.id = e.room"
                                    " JOIN messages m ON m.pos = e.pos WHERE r.room_id = ?1"
                                    " ORDER BY e.hlc, e.origin, e.inc, e.seq",
                                    -1, &st, NULL),
                 SQLITE_OK);
    sqlite3_bind_text(st, 1, room, -1, SQLITE_STATIC);
    out[0] = '\0';
    while (sqlite3_step(st) == SQLITE_ROW) {
        size_t len = strlen(out);
        snprintf(out + len, n - len, "%s%s", len ? "," : "", sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "SELECT count(*) FROM events e JOIN rooms r ON r.id = e.room"
                                    " WHERE r.room_id = ?1 AND e.invalid IS NOT NULL",
                                    -1, &st, NULL),
                 SQLITE_OK);
    sqlite3_bind_text(st, 1, room, -1, SQLITE_STATIC);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    *invalid = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

Test(fed_skew, replies_follow_what_they_answer_whatever_the_clocks_say)
{
    fednet_start(&net, 3, NULL, NULL, 0x736b6577ULL);
    restart_skewed(1, "+3h");
    restart_skewed(2, "-3h");
    fednet_wait_links(&net, DEADLINE_MS);
    cJSON *r = fednet_admin(&net, 0,
                            "\"op\":\"room.create\",\"name\":\"skew\",\"servers\":[\"%s\",\"%s\"]",
                            net.s[1].id, net.s[2].id);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")));
    char room[64];
    snprintf(room, sizeof room, "%s",
             cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "room"), "room")));
    cJSON_Delete(r);
    for (int i = 1; i < 3; i++) {
        for (long long t = 0;; t += 20) {
            r = fednet_admin(&net, i, "\"op\":\"room.invite\",\"room\":\"%s\",\"user\":\"admin\"",
                             room);
            bool done = cJSON_IsTrue(cJSON_GetObjectItem(r, "ok"));
            cJSON_Delete(r);
            if (done)
                break;
            cr_assert_lt(t, DEADLINE_MS, "the room never reached %s", net.s[i].id);
            pause_ms(20);
        }
    }
    char report[FC_ID_MAX], reply[FC_ID_MAX], answer[FC_ID_MAX];
    say(1, room, "1-report", NULL, report);  /* three hours ahead */
    say(2, room, "2-reply", report, reply);  /* three hours behind, after the report */
    say(0, room, "3-answer", reply, answer); /* on time, after the reply */
    const char *dbs[] = {net.s[0].db, net.s[1].db, net.s[2].db};
    cr_assert_geq(fc_wait_agree(dbs, 3, room, DEADLINE_MS, NULL), 0, "one order everywhere");
    for (int i = 0; i < 3; i++) {
        char order[256];
        long long invalid = -1;
        order_on(i, room, order, sizeof order, &invalid);
        cr_assert_str_eq(order, "1-report,2-reply,3-answer", "the order on %s", net.s[i].id);
        cr_assert_eq(invalid, 0, "nothing invalidated on %s", net.s[i].id);
    }
    /* The on-time server raises the alarm for both skewed peers. */
    for (long long t = 0;; t += 50) {
        r = fednet_admin(&net, 0, "\"op\":\"peer.list\"");
        int alarms = 0;
        const cJSON *p;
        cJSON_ArrayForEach(p, cJSON_GetObjectItem(r, "peers"))
        {
            const cJSON *link = cJSON_GetObjectItem(p, "link");
            alarms += cJSON_IsTrue(cJSON_GetObjectItem(link, "skew_alarm"));
        }
        cJSON_Delete(r);
        if (alarms == 2)
            break;
        cr_assert_lt(t, DEADLINE_MS, "peer.list shows %d skew alarms, not 2", alarms);
        pause_ms(50);
    }
}
