/* test_fed_hotline.c - counterpart hotline rooms (issue 18, item 1): the prefecture's server
 * creates a hotline naming each municipality's role; every server shows the same servers and
 * roles; the authority reassigns a role (a hotline.role event) and every server follows; no one
 * else may, on any server; the authority's admin lists its hotline groups, also as CSV. Three
 * real kizunad paired through the fault proxies (fednet.h). */
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

TestSuite(fed_hotline, .fini = teardown, .timeout = 120);

static const char *code(const cJSON *r)
{
    if (cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")))
        return "ok";
    return cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "code"));
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* The role server i shows for server `of` in the hotline ("" if it does not hold the room). */
static void role_on(int i, const char *room, const char *of, char *out, size_t n)
{
    out[0] = '\0';
    cJSON *r = fednet_admin(&net, i, "\"op\":\"room.servers\",\"room\":\"%s\"", room);
    if (strcmp(code(r), "ok") == 0) {
        cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "hotline")), "a hotline on %s", net.s[i].id);
        const cJSON *s;
        cJSON_ArrayForEach(s, cJSON_GetObjectItem(r, "servers"))
        {
            if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(s, "server")), of) == 0)
                snprintf(out, n, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(s, "role")));
        }
    }
    cJSON_Delete(r);
}

/* The kizuna command as login (password login TEST_PW_SUFFIX) on server i, logged in first;
 * its output in out, its exit status returned. */
static int cli_run(int i, const char *login, char *out, size_t n, const char *const *args)
{
    char env_dir[400], env_srv[100], env_pw[100];
    snprintf(env_dir, sizeof env_dir, "KIZUNA_CONFIG_DIR=%s/cli-%.31s", net.s[i].d.dir, login);
    snprintf(env_srv, sizeof env_srv, "KIZUNA_SERVER=%s", net.s[i].d.url);
    snprintf(env_pw, sizeof env_pw, "KIZUNA_PASSWORD=%.31s%s", login, TEST_PW_SUFFIX);
    const char *env[] = {env_dir, env_srv, env_pw, NULL};
    const char *in[] = {KIZUNA_PATH, "login", login, NULL};
    cr_assert_eq(run_capture(in, env, NULL, out, n), 0, "login %s: %s", login, out);
    const char *argv[12] = {KIZUNA_PATH};
    for (int k = 0; k < 10 && args[k]; k++)
        argv[k + 1] = args[k];
    return run_capture(argv, env, NULL, out, n);
}

/* The same with up to four words. */
static int cli_as(int i, const char *login, char *out, size_t n, const char *a1, const char *a2,
                  const char *a3, const char *a4)
{
    const char *args[] = {a1, a2, a3, a4, NULL};
    return cli_run(i, login, out, n, args);
}

/* Waits until every server shows role for server `of`. */
static void wait_role(const char *room, const char *of, const char *role)
{
    char got[32] = "";
    for (int i = 0; i < net.n; i++) {
        for (long long t = 0;; t += 20) {
            role_on(i, room, of, got, sizeof got);
            if (strcmp(got, role) == 0)
                break;
            cr_assert_lt(t, DEADLINE_MS, "%s shows %s as '%s', not '%s'", net.s[i].id, of, got,
                         role);
            pause_ms(20);
        }
    }
}

Test(fed_hotline, roles_are_the_same_everywhere_and_only_the_authority_changes_them)
{
    fednet_start(&net, 3, NULL, NULL, 0x686f746cULL);
    const char *A = net.s[0].id, *B = net.s[1].id, *C = net.s[2].id;

    /* Bad requests change nothing. */
    cJSON *r = fednet_admin(&net, 0,
                            "\"op\":\"hotline.create\",\"name\":\"x\",\"roles\":[\"%s=boss\"]", B);
    cr_assert_str_eq(code(r), "bad_request", "an unknown role");
    cJSON_Delete(r);
    r = fednet_admin(
        &net, 0, "\"op\":\"hotline.create\",\"name\":\"x\",\"roles\":[\"jp-99-nowhere=primary\"]");
    cr_assert_str_eq(code(r), "not_found", "not a peer");
    cJSON_Delete(r);

    r = fednet_admin(&net, 0,
                     "\"op\":\"hotline.create\",\"name\":\"南予ホットライン\","
                     "\"roles\":[\"%s=affected\",\"%s=primary\"]",
                     B, C);
    cr_assert_str_eq(code(r), "ok", "hotline.create");
    char room[64];
    snprintf(room, sizeof room, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(r, "room")));
    cJSON_Delete(r);
    wait_role(room, A, "hq");
    wait_role(room, B, "affected");
    wait_role(room, C, "primary");

    /* Only the authority reassigns; on another server the answer is forbidden. */
    r = fednet_admin(&net, 1,
                     "\"op\":\"hotline.role\",\"room\":\"%s\",\"server\":\"%s\",\"role\":\"hq\"",
                     room, C);
    cr_assert_str_eq(code(r), "forbidden", "B is not the hotline's authority");
    cJSON_Delete(r);
    r = fednet_admin(&net, 0,
                     "\"op\":\"hotline.role\",\"room\":\"%s\",\"server\":\"%s\",\"role\":\"chief\"",
                     room, C);
    cr_assert_str_eq(code(r), "bad_request", "an unknown role");
    cJSON_Delete(r);
    r = fednet_admin(
        &net, 0, "\"op\":\"hotline.role\",\"room\":\"%s\",\"server\":\"%s\",\"role\":\"secondary\"",
        room, C);
    cr_assert_str_eq(code(r), "ok", "the authority reassigns C");
    cJSON_Delete(r);
    wait_role(room, C, "secondary");
    wait_role(room, B, "affected");

    /* The admin's view of its counterpart groups, and as CSV. */
    r = fednet_admin(&net, 0, "\"op\":\"hotline.list\"");
    cr_assert_str_eq(code(r), "ok");
    const cJSON *h = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "hotlines"), 0);
    cr_assert_not_null(h);
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(h, "name")), "南予ホットライン");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(h, "servers")), 3);
    cJSON_Delete(r);
    r = fednet_admin(&net, 0, "\"op\":\"hotline.list\",\"csv\":true");
    const char *csv = cJSON_GetStringValue(cJSON_GetObjectItem(r, "csv"));
    cr_assert(csv && strstr(csv, "南予ホットライン") && strstr(csv, "二次支援市町") &&
                  strstr(csv, "被災市町"),
              "%s", csv ? csv : "(none)");
    cJSON_Delete(r);

    /* The prefecture hands the authority to B (say its own server is to be moved): from then
     * on B assigns roles, everywhere alike, and A may not. C is cut off meanwhile and then
     * reaches B only: it gets both through B, which sends its own log (with the role change)
     * before A's (with the handover), so C holds the role change back until the grant is
     * there (fed_event_waits in its log). */
    fednet_isolate(&net, 2, true);
    r = fednet_admin(&net, 0, "\"op\":\"room.authority\",\"room\":\"%s\",\"server\":\"%s\"", room,
                     B);
    cr_assert_str_eq(code(r), "ok", "room.authority");
    cJSON_Delete(r);
    for (int i = 0; i < 2; i++) {
        for (long long t = 0;; t += 20) {
            r = fednet_admin(&net, i, "\"op\":\"room.servers\",\"room\":\"%s\"", room);
            bool moved = strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "authority")), B) == 0;
            cJSON_Delete(r);
            if (moved)
                break;
            cr_assert_lt(t, DEADLINE_MS, "%s never showed %s as the authority", net.s[i].id, B);
            pause_ms(20);
        }
    }
    r = fednet_admin(&net, 0,
                     "\"op\":\"hotline.role\",\"room\":\"%s\",\"server\":\"%s\",\"role\":\"hq\"",
                     room, C);
    cr_assert_str_eq(code(r), "forbidden", "A handed the authority on");
    cJSON_Delete(r);
    r = fednet_admin(&net, 1,
                     "\"op\":\"hotline.role\",\"room\":\"%s\",\"server\":\"%s\","
                     "\"role\":\"primary\"",
                     room, C);
    cr_assert_str_eq(code(r), "ok", "the new authority assigns roles");
    cJSON_Delete(r);
    fednet_cut(&net, 1, 2, false); /* C reaches B again, not A */
    wait_role(room, C, "primary");
    fednet_cut(&net, 0, 2, false);

    /* The role and authority events are on every server, all valid: all three agree. */
    const char *dbs[] = {net.s[0].db, net.s[1].db, net.s[2].db};
    cr_assert_geq(fc_wait_agree(dbs, 3, room, DEADLINE_MS, NULL), 0);
}

/* Seats (item 2) and the first report (item 4): each municipality names its own seats and who
 * holds them; a handover at shift change is an event every server follows; messages carry
 * their sender's seat; a first report (urgent) from the affected town reaches the holder of
 * every member server's on-duty seat as an alert. Another server's seats are not one's own. */
Test(fed_hotline, seats_handovers_and_the_first_report_alert)
{
    fednet_start(&net, 3, NULL, NULL, 0x73656174ULL);
    const char *A = net.s[0].id, *B = net.s[1].id, *C = net.s[2].id;
    const char *users[3][2] = {{"ken1", "ken2"}, {"uwa1", "uwa2"}, {"mat1", "mat2"}};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 2; k++)
            fednet_user_add(&net, i, users[i][k]);
    cJSON *r = fednet_admin(&net, 0,
                            "\"op\":\"hotline.create\",\"name\":\"南予ホットライン\","
                            "\"roles\":[\"%s=affected\",\"%s=primary\"]",
                            B, C);
    cr_assert_str_eq(code(r), "ok", "hotline.create");
    char room[64];
    snprintf(room, sizeof room, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(r, "room")));
    cJSON_Delete(r);
    wait_role(room, C, "primary");
    /* Each server's admin joins first, as a plain member on B and C: it still adds its staff. */
    for (int i = 1; i < 3; i++) {
        r = fednet_admin(&net, i, "\"op\":\"room.invite\",\"room\":\"%s\",\"user\":\"admin\"",
                         room);
        cr_assert_str_eq(code(r), "ok", "admin joins on %s", net.s[i].id);
        cJSON_Delete(r);
    }
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 2; k++) {
            r = fednet_admin(&net, i, "\"op\":\"room.invite\",\"room\":\"%s\",\"user\":\"%s\"",
                             room, users[i][k]);
            cr_assert_str_eq(code(r), "ok", "invite %s on %s", users[i][k], net.s[i].id);
            cJSON_Delete(r);
        }
    /* Each server's on-duty seat (当直) and B's head of disaster management. */
    for (int i = 0; i < 3; i++) {
        r = fednet_admin(&net, i,
                         "\"op\":\"hotline.seat\",\"room\":\"%s\",\"seat\":\"当直\","
                         "\"user\":\"%s\",\"on_duty\":true",
                         room, users[i][0]);
        cr_assert_str_eq(code(r), "ok", "seat on %s", net.s[i].id);
        cJSON_Delete(r);
    }
    r = fednet_admin(&net, 1,
                     "\"op\":\"hotline.seat\",\"room\":\"%s\",\"seat\":\"危機管理課長\","
                     "\"user\":\"%s\"",
                     room, users[1][1]);
    cr_assert_str_eq(code(r), "ok");
    cJSON_Delete(r);
    /* One's own users only: B's seat cannot be given to A's user, on any server. */
    r = fednet_admin(&net, 1,
                     "\"op\":\"hotline.seat\",\"room\":\"%s\",\"seat\":\"当直\","
                     "\"user\":\"ken1@%s\"",
                     room, A);
    cr_assert_str_eq(code(r), "not_found", "another server's user holds no seat here");
    cJSON_Delete(r);
    const char *dbs[] = {net.s[0].db, net.s[1].db, net.s[2].db};
    cr_assert_geq(fc_wait_agree(dbs, 3, room, DEADLINE_MS, NULL), 0);

    /* A's and C's on-duty holders are live; B's head of disaster management reports first. */
    struct ws live[3];
    char pw[64];
    for (int i = 0; i < 3; i += 2) {
        snprintf(pw, sizeof pw, "%.31s" TEST_PW_SUFFIX, users[i][0]);
        ws_live(&live[i], net.s[i].d.port, users[i][0], pw, -1, NULL);
    }
    static char out[65536];
    cr_assert_eq(cli_as(1, users[1][1], out, sizeof out, "send", room, "--urgent",
                        "第一報: 国道56号 土砂崩れ"),
                 0, "kizuna send --urgent: %s", out);
    for (int i = 0; i < 3; i += 2) {
        cJSON *alert = NULL;
        for (int k = 0; k < 20 && !alert; k++) {
            cJSON *ev = ws_next_event(&live[i], DEADLINE_MS);
            cr_assert_not_null(ev, "%s's on-duty seat got no alert", net.s[i].id);
            const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(ev, "event"));
            if (t && strcmp(t, "hotline.alert") == 0)
                alert = ev;
            else
                cJSON_Delete(ev);
        }
        cr_assert_not_null(alert, "an alert on %s", net.s[i].id);
        cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(alert, "seat")), "危機管理課長");
        cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(alert, "server")), B);
        cr_assert(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(alert, "body")), "第一報"));
        cJSON_Delete(alert);
        ws_close_fd(&live[i]);
    }

    /* Every server's history shows the report with its sender's seat and municipality. */
    char shown[160];
    snprintf(shown, sizeof shown, "[危機管理課長] (%s)", B);
    cr_assert_eq(cli_as(0, users[0][0], out, sizeof out, "history", room, "--no-read", NULL), 0,
                 "%s", out);
    cr_assert(strstr(out, shown) && strstr(out, "第一報"), "history on A: %s", out);
    /* ... and B's seats as lines of the room: "* 当直 (B): <holder>, on duty". */
    snprintf(shown, sizeof shown, "* 当直 (%s): ", B);
    cr_assert(strstr(out, shown) && strstr(out, ", on duty"), "seats in history on A: %s", out);

    /* Shift change on B: 当直 passes from uwa1 to uwa2; every server shows the new holder. */
    r = fednet_admin(&net, 1,
                     "\"op\":\"hotline.seat\",\"room\":\"%s\",\"seat\":\"当直\","
                     "\"user\":\"%s\",\"on_duty\":true",
                     room, users[1][1]);
    cr_assert_str_eq(code(r), "ok", "handover");
    cJSON_Delete(r);
    char want[96];
    snprintf(want, sizeof want, "%s@%s", users[1][1], B);
    for (int i = 0; i < 3; i++) {
        for (long long t = 0;; t += 20) {
            bool found = false;
            r = fednet_admin(&net, i, "\"op\":\"room.servers\",\"room\":\"%s\"", room);
            const cJSON *seat;
            cJSON_ArrayForEach(seat, cJSON_GetObjectItem(r, "seats"))
            {
                const char *holder = cJSON_GetStringValue(cJSON_GetObjectItem(seat, "holder"));
                if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(seat, "server")), B) == 0 &&
                    strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(seat, "seat")), "当直") == 0 &&
                    holder && strcmp(holder, i == 1 ? users[1][1] : want) == 0)
                    found = true;
            }
            cJSON_Delete(r);
            if (found)
                break;
            cr_assert_lt(t, DEADLINE_MS, "%s never showed the handover", net.s[i].id);
            pause_ms(20);
        }
    }
    cr_assert_geq(fc_wait_agree(dbs, 3, room, DEADLINE_MS, NULL), 0);
}

/* ---- the six-server Ehime example of docs/hotline.md (issue 18, "Done when") ---- */

enum { PREF, MATSU, IMA, UWA, YAWATA, AINAN };

/* The room id of the hotline called name, from `kizuna --json hotline list` on the prefecture. */
static void hotline_id(const char *json, const char *name, char out[64])
{
    cJSON *r = cJSON_Parse(json);
    cr_assert_not_null(r, "%s", json);
    const cJSON *h;
    out[0] = '\0';
    cJSON_ArrayForEach(h, cJSON_GetObjectItem(r, "hotlines"))
    {
        if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(h, "name")), name) == 0)
            snprintf(out, 64, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(h, "room")));
    }
    cJSON_Delete(r);
    cr_assert(out[0], "no hotline %s in %s", name, json);
}

/* Adds user login (password login TEST_PW_SUFFIX) on server i with role, and into room once it
 * is there (its own server's admin adds it: step 4). */
static void staff(int i, const char *login, const char *role, const char *room)
{
    cJSON *r = fednet_admin(&net, i,
                            "\"op\":\"user.add\",\"login\":\"%s\",\"password\":\"%s%s\","
                            "\"role\":\"%s\"",
                            login, login, TEST_PW_SUFFIX, role);
    if (strcmp(code(r), "conflict") != 0)
        cr_assert_str_eq(code(r), "ok", "user.add %s on %s", login, net.s[i].id);
    cJSON_Delete(r);
    for (long long t = 0;; t += 20) {
        r = fednet_admin(&net, i, "\"op\":\"room.invite\",\"room\":\"%s\",\"user\":\"%s\"", room,
                         login);
        bool done = strcmp(code(r), "ok") == 0;
        cJSON_Delete(r);
        if (done)
            return;
        cr_assert_lt(t, DEADLINE_MS, "%s never could add %s", net.s[i].id, login);
        pause_ms(20);
    }
}

/* Waits until the servers (their indexes, -1 ended) agree on room. */
static void agree(const char *room, const int *which)
{
    const char *dbs[FEDNET_MAX];
    int n = 0;
    for (; which[n] >= 0; n++)
        dbs[n] = net.s[which[n]].db;
    cr_assert_geq(fc_wait_agree(dbs, n, room, DEADLINE_MS, NULL), 0, "%s: servers disagree", room);
}

Test(fed_hotline, ehime_six_servers_three_counterpart_groups, .timeout = 300)
{
    fednet_start(&net, 6, NULL, NULL, 0x65686d65ULL);
    const char *const *id = fednet_ids;
    static char out[65536];
    /* Step 2, from the CLI on the prefecture's server, by one of its administrators. */
    cJSON *r = fednet_admin(&net, PREF,
                            "\"op\":\"user.add\",\"login\":\"bosai\",\"password\":\"bosai%s\","
                            "\"role\":\"admin\"",
                            TEST_PW_SUFFIX);
    cr_assert_str_eq(code(r), "ok");
    cJSON_Delete(r);
    char member[3][2][96];
    const int groups[3][2] = {{IMA, MATSU}, {YAWATA, UWA}, {UWA, AINAN}};
    const char *roles[3][2] = {
        {"affected", "primary"}, {"affected", "primary"}, {"affected", "secondary"}};
    const char *names[3] = {"東予ホットライン", "八幡浜ホットライン", "南予ホットライン"};
    for (int g = 0; g < 3; g++) {
        for (int k = 0; k < 2; k++)
            snprintf(member[g][k], sizeof member[g][k], "%s=%s", id[groups[g][k]], roles[g][k]);
        const char *args[] = {"hotline",    "create",   names[g],     "--member",
                              member[g][0], "--member", member[g][1], NULL};
        cr_assert_eq(cli_run(PREF, "bosai", out, sizeof out, args), 0, "%s", out);
    }
    cr_assert_eq(cli_as(PREF, "bosai", out, sizeof out, "--json", "hotline", "list", NULL), 0, "%s",
                 out);
    char room[3][64];
    for (int g = 0; g < 3; g++)
        hotline_id(out, names[g], room[g]);

    /* Step 4 and 5: each municipality's staff and on-duty seat in 南予 (UWA affected, AINAN
     * secondary, the prefecture hq); 宇和島市's head of disaster management. */
    const int nanyo[] = {PREF, UWA, AINAN, -1};
    staff(PREF, "pref-tochoku", "staff", room[2]);
    staff(UWA, "uwa-kikikanri", "hq", room[2]);
    staff(UWA, "uwa-tochoku1", "staff", room[2]);
    staff(UWA, "uwa-tochoku2", "staff", room[2]);
    staff(AINAN, "ainan-tochoku", "staff", room[2]);
    const struct {
        int srv;
        const char *seat, *login;
        bool on_duty;
    } seats[] = {{PREF, "当直", "pref-tochoku", true},
                 {UWA, "当直", "uwa-tochoku1", true},
                 {UWA, "危機管理課長", "uwa-kikikanri", false},
                 {AINAN, "当直", "ainan-tochoku", true}};
    for (size_t k = 0; k < sizeof seats / sizeof seats[0]; k++) {
        r = fednet_admin(&net, seats[k].srv,
                         "\"op\":\"hotline.seat\",\"room\":\"%s\",\"seat\":\"%s\",\"user\":\"%s\","
                         "\"on_duty\":%s",
                         room[2], seats[k].seat, seats[k].login,
                         seats[k].on_duty ? "true" : "false");
        cr_assert_str_eq(code(r), "ok", "seat %s on %s", seats[k].seat, id[seats[k].srv]);
        cJSON_Delete(r);
    }
    agree(room[2], nanyo);

    /* The first report from the affected town reaches the on-duty seats of the prefecture and
     * of 愛南町 as alerts. */
    struct ws live[2];
    const int watchers[2] = {PREF, AINAN};
    const char *watcher_login[2] = {"pref-tochoku", "ainan-tochoku"};
    char pw[64];
    for (int k = 0; k < 2; k++) {
        snprintf(pw, sizeof pw, "%.31s" TEST_PW_SUFFIX, watcher_login[k]);
        ws_live(&live[k], net.s[watchers[k]].d.port, watcher_login[k], pw, -1, NULL);
    }
    cr_assert_eq(cli_as(UWA, "uwa-kikikanri", out, sizeof out, "send", room[2], "--urgent",
                        "第一報: 国道56号 土砂崩れ 通行止め"),
                 0, "%s", out);
    for (int k = 0; k < 2; k++) {
        cJSON *alert = NULL;
        for (int n = 0; n < 30 && !alert; n++) {
            cJSON *ev = ws_next_event(&live[k], DEADLINE_MS);
            cr_assert_not_null(ev, "no alert on %s", id[watchers[k]]);
            if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(ev, "event")), "hotline.alert") ==
                0)
                alert = ev;
            else
                cJSON_Delete(ev);
        }
        cr_assert_not_null(alert, "the first report reached %s's on-duty seat", id[watchers[k]]);
        cJSON_Delete(alert);
        /* The on-duty reader reads it. */
        r = ws_callf(&live[k], "\"op\":\"read\",\"room\":\"%s\"", room[2]);
        cJSON_Delete(r);
        ws_close_fd(&live[k]);
    }
    agree(room[2], nanyo);

    /* 既読 by municipality: the same groups on the three servers once reads have spread. */
    char first[3][512];
    for (long long t = 0;; t += 50) {
        bool same = true;
        for (int k = 0; k < 3; k++) {
            cr_assert_eq(cli_as(nanyo[k],
                                k == 0   ? "pref-tochoku"
                                : k == 1 ? "uwa-kikikanri"
                                         : "ainan-tochoku",
                                out, sizeof out, "--json", "history", room[2], "--no-read"),
                         0, "%s", out);
            cJSON *h = cJSON_Parse(out), *last = NULL;
            const cJSON *e;
            cJSON_ArrayForEach(e, cJSON_GetObjectItem(h, "events"))
            {
                if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(e, "event")), "msg") == 0)
                    last = (cJSON *)e;
            }
            cr_assert_not_null(last, "%s", out);
            char *groups_json = cJSON_PrintUnformatted(cJSON_GetObjectItem(last, "read_by_server"));
            /* Names are each server's own pins (none here): compare the numbers only. */
            snprintf(first[k], sizeof first[k], "%s", groups_json ? groups_json : "");
            free(groups_json);
            cJSON_Delete(h);
            same &= k == 0 || strcmp(first[k], first[0]) == 0;
        }
        if (same && strstr(first[0], "\"read\":1"))
            break;
        cr_assert_lt(t, DEADLINE_MS, "read counts by municipality differ: %s | %s | %s", first[0],
                     first[1], first[2]);
        pause_ms(50);
    }

    /* The town's links are cut while the others write, and healed. */
    fednet_isolate(&net, UWA, true);
    cr_assert_eq(cli_as(PREF, "pref-tochoku", out, sizeof out, "send", room[2],
                        "県本部: 自衛隊に災害派遣を要請", NULL),
                 0, "%s", out);
    cr_assert_eq(cli_as(AINAN, "ainan-tochoku", out, sizeof out, "send", room[2],
                        "愛南町: 給水車出発", NULL),
                 0, "%s", out);
    fednet_isolate(&net, UWA, false);
    agree(room[2], nanyo);

    /* Shift change at the town: 当直 passes to uwa-tochoku2 (the CLI's handover). */
    const char *handover[] = {"hotline", "handover", room[2], "当直", "uwa-tochoku2", NULL};
    cr_assert_eq(cli_run(UWA, "uwa-kikikanri", out, sizeof out, handover), 0, "%s", out);
    agree(room[2], nanyo);

    /* 愛南町 is removed from 南予 (from the CLI): the prefecture and the town agree on the rest;
     * 愛南町's users can no longer write there. */
    cr_assert_eq(cli_as(PREF, "bosai", out, sizeof out, "hotline", "remove", room[2], id[AINAN]), 0,
                 "%s", out);
    const int after[] = {PREF, UWA, -1};
    cr_assert_eq(cli_as(PREF, "pref-tochoku", out, sizeof out, "send", room[2],
                        "県本部: 愛南町は別グループで対応", NULL),
                 0, "%s", out);
    agree(room[2], after);
    for (long long t = 0;; t += 50) {
        int rc = cli_as(AINAN, "ainan-tochoku", out, sizeof out, "send", room[2], "まだ?", NULL);
        if (rc != 0)
            break;
        cr_assert_lt(t, DEADLINE_MS, "愛南町 still writes in 南予");
        pause_ms(50);
    }
    /* The other two groups were untouched and agree too. */
    const int toyo[] = {PREF, IMA, MATSU, -1}, yawata[] = {PREF, YAWATA, UWA, -1};
    agree(room[0], toyo);
    agree(room[1], yawata);
    fprintf(stderr, "FIG ehime: 6 servers, 3 counterpart groups (宇和島市 in two); first report "
                    "alerted on-duty seats; link cut and healed; shift change; 愛南町 removed: "
                    "all agree\n");
}
