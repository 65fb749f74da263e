/* test_hotline_cli.c - `kizuna hotline create|list|show|admit|remove|role|status` (issue 18,
 * items 6 and 7) run as administrators would, against three real kizunad paired through the
 * fault proxies (fednet.h): the prefecture creates two counterpart groups with one city in both,
 * lists them (table, CSV, JSON), changes a role that every server then shows, admits a town
 * with its role, watches the links and backlogs, names and hands over a town's seats, removes
 * the town with a cutoff and hands a hotline's authority to the city; the other servers' admins
 * see the same and cannot change it. Human output and --json. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fednet.h"

#define DEADLINE_MS 30000

static struct fednet net;
static char cfg[FEDNET_MAX][300];

static void teardown(void)
{
    fednet_stop(&net);
}

TestSuite(hotline_cli, .fini = teardown, .timeout = 180);

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Runs kizuna as server i's admin (its own config dir); stderr goes to out too when merge (what
 * the administrator sees), else out is stdout alone (JSON). The exit status. */
static int kizuna(int i, bool merge, char *out, size_t n, ...)
{
    struct kz_device dev = {.server_url = net.s[i].d.url,
                            .config_dir = cfg[i],
                            .user = "admin",
                            .retry_max_s = 5,
                            .merge_stderr = merge};
    va_list ap;
    va_start(ap, n);
    int rc = kz_device_run(&dev, NULL, out, n, ap);
    va_end(ap);
    return rc;
}
#define KZ(i, ...)  kizuna(i, true, out, sizeof out, __VA_ARGS__, (const char *)NULL)
#define KZJ(i, ...) kizuna(i, false, out, sizeof out, "--json", __VA_ARGS__, (const char *)NULL)

static cJSON *parse(const char *out)
{
    cJSON *r = cJSON_Parse(out);
    cr_assert_not_null(r, "not JSON: %s", out);
    return r;
}

/* The entry for server id in a reply's `servers`. */
static const cJSON *entry(const cJSON *r, const char *id)
{
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(r, "servers"))
    {
        if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(s, "server")), id) == 0)
            return s;
    }
    return NULL;
}

/* The line of out that names server id first ("" if none), into line. */
static const char *line_of(const char *out, const char *id, char *line, size_t n)
{
    const char *p = strstr(out, id);
    snprintf(line, n, "%.*s", p ? (int)strcspn(p, "\n") : 0, p ? p : "");
    return line;
}

/* Waits until `kizuna --json hotline show ROOM` on server i shows server `of` with role (NULL:
 * removed). */
static void wait_show(int i, const char *room, const char *of, const char *role)
{
    static char out[16384];
    for (long long t = 0;; t += 25) {
        bool done = false;
        if (KZJ(i, "hotline", "show", room) == 0) {
            cJSON *r = parse(out);
            const cJSON *s = entry(r, of);
            const char *got = s ? cJSON_GetStringValue(cJSON_GetObjectItem(s, "role")) : NULL;
            bool admitted = s && cJSON_IsTrue(cJSON_GetObjectItem(s, "admitted"));
            done = role ? admitted && got && strcmp(got, role) == 0 : s && !admitted;
            cJSON_Delete(r);
        }
        if (done)
            return;
        cr_assert_lt(t, DEADLINE_MS, "%s never showed %s as %s in %s: %s", net.s[i].id, of,
                     role ? role : "removed", room, out);
        pause_ms(25);
    }
}

Test(hotline_cli, an_administrator_runs_the_counterpart_groups_from_the_cli)
{
    static char out[65536];
    fednet_start(&net, 3, NULL, NULL, 0x686c636cULL);
    const char *A = net.s[0].id, *B = net.s[1].id, *C = net.s[2].id;
    for (int i = 0; i < 3; i++) {
        snprintf(cfg[i], sizeof cfg[i], "%.200s/cli", net.s[i].d.dir);
        cr_assert_eq(KZ(i, "login", "admin"), 0, "%s", out);
    }
    char mB[96], mC[96], bad[96];
    snprintf(mB, sizeof mB, "%.63s=affected", B);
    snprintf(mC, sizeof mC, "%.63s=affected", C);
    snprintf(bad, sizeof bad, "%.63s=boss", B);

    /* Usage mistakes and refusals: exit 2 and 1, nothing created. */
    cr_assert_eq(KZ(0, "hotline", "create", "x"), 2, "no --member: %s", out);
    cr_assert(strstr(out, "--member SERVER=ROLE is required"), "%s", out);
    cr_assert_eq(KZ(0, "hotline", "create", "x", "--member", bad), 1, "%s", out);
    cr_assert(strstr(out, "bad_request"), "%s", out);
    cr_assert_eq(KZ(0, "hotline", "create", "x", "--member", "jp-99-nowhere=primary"), 1, "%s",
                 out);
    cr_assert(strstr(out, "not_found"), "%s", out);
    cr_assert_eq(KZ(0, "hotline", "list"), 0, "%s", out);
    cr_assert(strstr(out, "no hotline rooms on this server"), "%s", out);

    /* 南予: the town B affected (C is admitted later). --json: the room and the roles. */
    cr_assert_eq(
        KZJ(0, "hotline", "create", "南予ホットライン", "--member", mB, "--topic", "対口支援 南予"),
        0, "%s", out);
    cJSON *r = parse(out);
    char south[64];
    snprintf(south, sizeof south, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(r, "room")));
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "authority")), A);
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(entry(r, A), "role_label")),
                     "県本部");
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(entry(r, B), "role_label")),
                     "被災市町");
    cJSON_Delete(r);

    /* 東予: B is also in this group, as primary support; C affected. Human output. */
    char mB2[96];
    snprintf(mB2, sizeof mB2, "%.63s=primary", B);
    cr_assert_eq(KZ(0, "hotline", "create", "東予ホットライン", "--member", mC, "--member", mB2), 0,
                 "%s", out);
    cr_assert(strstr(out, "created hotline 東予ホットライン ("), "%s", out);
    cr_assert(strstr(out, "authority jp-38-ehime-pref; 3 servers"), "%s", out);
    cr_assert(strstr(out, "一次支援市 (primary)") && strstr(out, "被災市町 (affected)") &&
                  strstr(out, "県本部 (hq)") && strstr(out, "this server"),
              "%s", out);
    cr_assert(strstr(out, "kizuna room invite "), "says what the municipalities do: %s", out);
    const char *p = strstr(out, "東予ホットライン (");
    char east[64];
    snprintf(east, sizeof east, "%.*s", (int)strcspn(p + strlen("東予ホットライン ("), ")"),
             p + strlen("東予ホットライン ("));
    cr_assert_eq(strlen(east), 43, "a whole room id: '%s'", east);

    /* The counterpart groups in one table, as CSV and as JSON. */
    cr_assert_eq(KZ(0, "hotline", "list"), 0, "%s", out);
    cr_assert(strstr(out, "HOTLINE") && strstr(out, "MUNICIPALITY") && strstr(out, "ROLE"), "%s",
              out);
    cr_assert(strstr(out, "南予ホットライン") && strstr(out, "東予ホットライン"), "%s", out);
    cr_assert(strstr(out, "2 hotlines"), "%s", out);
    cr_assert(strstr(out, south) && strstr(out, east), "the room ids, for room invite: %s", out);
    int rows = 0;
    for (const char *q = out; (q = strstr(q, B)); q++)
        rows++;
    cr_assert_eq(rows, 2, "the city is in both groups: %s", out);
    cr_assert_eq(KZ(0, "hotline", "list", "--csv"), 0, "%s", out);
    const char *header = "\xEF\xBB\xBF\"hotline\",\"room\",\"server\",\"municipality\",\"role\","
                         "\"role_label\",\"admitted\"";
    cr_assert_eq(strncmp(out, header, strlen(header)), 0, "a BOM and the header: %s", out);
    cr_assert(strstr(out, "一次支援市") && strstr(out, south) && strstr(out, east), "%s", out);
    int lines = 0;
    for (const char *q = out; (q = strchr(q, '\n')); q++)
        lines++;
    cr_assert_eq(lines, 1 + 2 + 3, "the header and a row per member: %s", out);
    cr_assert_eq(KZJ(0, "hotline", "list"), 0, "%s", out);
    r = parse(out);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "hotlines")), 2, "%s", out);
    cJSON_Delete(r);
    cr_assert_eq(KZ(0, "hotline", "list", "--pdf"), 2, "%s", out);
    cr_assert(strstr(out, "has no option --pdf"), "%s", out);

    /* show: by name on the authority; by the whole id on B, whose admin is not in the room. */
    cr_assert_eq(KZ(0, "hotline", "show", "南予ホットライン"), 0, "%s", out);
    cr_assert(strstr(out, "authority jp-38-ehime-pref; 2 servers") &&
                  strstr(out, "被災市町 (affected)"),
              "%s", out);
    wait_show(1, south, B, "affected");
    cr_assert_eq(KZ(1, "hotline", "show", south), 0, "%s", out);
    cr_assert(strstr(out, "県本部 (hq)") && strstr(out, "this server"), "%s", out);
    cr_assert_eq(KZ(0, "room", "create", "当直連絡"), 0, "%s", out);
    cr_assert_eq(KZ(0, "hotline", "show", "当直連絡"), 1, "%s", out);
    cr_assert(strstr(out, "is not a hotline room"), "%s", out);

    /* A disaster: B turns out to be a support city in 南予 and the authority says so; every
     * server follows. B's admin may not reassign roles. */
    cr_assert_eq(KZ(0, "hotline", "role", "南予ホットライン", B, "primary"), 0, "%s", out);
    cr_assert(strstr(out, "is now 一次支援市 (primary) in 南予ホットライン"), "%s", out);
    wait_show(1, south, B, "primary");
    cr_assert_eq(KZ(1, "hotline", "role", south, B, "affected"), 1, "%s", out);
    cr_assert(strstr(out, "forbidden"), "%s", out);
    cr_assert_eq(KZ(0, "hotline", "role", "南予ホットライン", B, "chief"), 1, "%s", out);
    cr_assert(strstr(out, "bad_request"), "%s", out);
    cr_assert_eq(KZJ(0, "hotline", "role", south, B, "affected"), 0, "%s", out);
    r = parse(out);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")) &&
                  cJSON_GetNumberValue(cJSON_GetObjectItem(r, "pos")) > 0,
              "%s", out);
    cJSON_Delete(r);
    wait_show(1, south, B, "affected");

    /* C joins 南予 as secondary support: admitted and given its role in one command. */
    cr_assert_eq(KZ(0, "hotline", "admit", "南予ホットライン", C), 2, "no --role: %s", out);
    cr_assert(strstr(out, "needs --role ROLE"), "%s", out);
    cr_assert_eq(KZ(1, "hotline", "admit", south, C, "--role", "secondary"), 1, "%s", out);
    cr_assert(strstr(out, "forbidden"), "only the authority admits: %s", out);
    cr_assert_eq(KZ(0, "hotline", "admit", "南予ホットライン", C, "--role", "secondary"), 0, "%s",
                 out);
    cr_assert(strstr(out, "is now a server of 南予ホットライン, as 二次支援市町 (secondary)"), "%s",
              out);
    for (int i = 0; i < 3; i++)
        wait_show(i, south, C, "secondary");
    cr_assert_eq(KZ(2, "hotline", "show", south), 0, "%s", out);
    cr_assert(strstr(out, "3 servers") && strstr(out, "二次支援市町 (secondary)"), "%s", out);

    /* status: every member's role and link; the backlog drains to nothing. */
    cr_assert_eq(KZ(0, "send", "南予ホットライン", "第一報: 県道12号線 冠水"), 0, "%s", out);
    for (long long t = 0;; t += 25) {
        cr_assert_eq(KZ(0, "hotline", "status", "南予ホットライン"), 0, "%s", out);
        char lb[512], lc[512];
        line_of(out, B, lb, sizeof lb);
        line_of(out, C, lc, sizeof lc);
        if (strstr(lb, " connected since ") && strstr(lb, "; up to date") &&
            strstr(lc, " connected since ") && strstr(lc, "; up to date"))
            break;
        cr_assert_lt(t, DEADLINE_MS, "never up to date: %s", out);
        pause_ms(25);
    }
    cr_assert(strstr(out, "authority jp-38-ehime-pref") && strstr(out, "(holds the room)") &&
                  strstr(out, "二次支援市町 (secondary)"),
              "%s", out);
    cr_assert_eq(KZJ(0, "hotline", "status", south), 0, "%s", out);
    r = parse(out);
    cr_assert_str_eq(cJSON_GetStringValue(
                         cJSON_GetObjectItem(cJSON_GetObjectItem(entry(r, C), "link"), "state")),
                     "connected", "%s", out);
    cr_assert_not_null(
        cJSON_GetObjectItem(cJSON_GetObjectItem(entry(r, B), "replication"), "events_behind"), "%s",
        out);
    cr_assert_null(cJSON_GetObjectItem(entry(r, A), "link"), "this server has no link: %s", out);
    cJSON_Delete(r);
    /* A cut link shows on B's side, with what C lacks once B writes. */
    fednet_cut(&net, 1, 2, true);
    fednet_wait_down(&net, 1, 2, DEADLINE_MS);
    cr_assert_eq(KZ(1, "room", "invite", south, "admin"), 0, "%s", out);
    cr_assert_eq(KZ(1, "send", south, "宇和島方面 応援準備"), 0, "%s", out);
    cr_assert_eq(KZ(1, "hotline", "status", south), 0, "%s", out);
    char cl[512];
    line_of(out, C, cl, sizeof cl);
    cr_assert(strstr(cl, " disconnected") && strstr(cl, "; lacks "), "%s", out);
    fednet_cut(&net, 1, 2, false);
    fednet_wait_links(&net, DEADLINE_MS);

    /* Seats: C's admin (not in the room) names its duty seat and hands it over at shift change;
     * every server shows the holder. No one fills another municipality's seats; a holder must be a
     * member. */
    fednet_user_add(&net, 2, "suzuki");
    fednet_user_add(&net, 2, "tanaka");
    cr_assert_eq(KZ(2, "hotline", "seat", south, "当直", "suzuki", "--on-duty"), 1, "%s", out);
    cr_assert(strstr(out, "conflict"), "not a member yet: %s", out);
    cr_assert_eq(KZ(2, "room", "invite", south, "suzuki"), 0, "%s", out);
    cr_assert_eq(KZ(2, "room", "invite", south, "tanaka"), 0, "%s", out);
    cr_assert_eq(KZ(2, "hotline", "seat", south, "当直"), 2, "%s", out);
    cr_assert_eq(KZ(2, "hotline", "seat", south, "当直", "suzuki", "--on-duty"), 0, "%s", out);
    cr_assert(strstr(out, "当直 in ") && strstr(out, "suzuki, on duty"), "%s", out);
    cr_assert_eq(KZ(2, "hotline", "handover", south, "副市長", "tanaka"), 1, "%s", out);
    cr_assert(strstr(out, "has no seat '副市長'"), "%s", out);
    cr_assert_eq(KZ(2, "hotline", "handover", south, "当直", "tanaka"), 0, "%s", out);
    cr_assert(strstr(out, "tanaka takes over from suzuki, on duty"), "%s", out);
    char who[128];
    snprintf(who, sizeof who, "tanaka@%.63s", C);
    cr_assert_eq(KZ(0, "hotline", "seat", "南予ホットライン", "当直", who), 1, "%s", out);
    cr_assert(strstr(out, "not_found"), "A cannot seat C's user: %s", out);
    for (long long t = 0;; t += 25) {
        cr_assert_eq(KZ(0, "hotline", "show", "南予ホットライン"), 0, "%s", out);
        if (strstr(out, who) && strstr(out, ", on duty"))
            break;
        cr_assert_lt(t, DEADLINE_MS, "A never showed the handover: %s", out);
        pause_ms(25);
    }
    cr_assert(strstr(out, "seats:") && strstr(out, "当直"), "%s", out);
    cr_assert_eq(KZJ(2, "hotline", "seat", south, "当直", "--vacate"), 0, "%s", out);
    r = parse(out);
    cr_assert(cJSON_GetNumberValue(cJSON_GetObjectItem(r, "pos")) > 0, "%s", out);
    cJSON_Delete(r);
    cr_assert_eq(KZ(2, "hotline", "show", south), 0, "%s", out);
    cr_assert(strstr(out, "(vacant)"), "%s", out);

    /* C leaves 東予 with a cutoff after the last of its events the authority holds (its admin
     * joined and reported there); every server shows it removed. */
    cr_assert_eq(KZ(2, "room", "invite", east, "admin"), 0, "%s", out);
    cr_assert_eq(KZ(2, "send", east, "今治市 避難所開設"), 0, "%s", out);
    for (long long t = 0;; t += 25) {
        cr_assert_eq(KZ(0, "history", "東予ホットライン", "--no-read"), 0, "%s", out);
        if (strstr(out, "今治市 避難所開設"))
            break;
        cr_assert_lt(t, DEADLINE_MS, "C's report never reached A: %s", out);
        pause_ms(25);
    }
    cr_assert_eq(KZ(0, "hotline", "remove", "東予ホットライン", C), 0, "%s", out);
    cr_assert(strstr(out, "is no longer a server of 東予ホットライン") && strstr(out, "cutoff: ") &&
                  strstr(out, "up to seq ") && !strstr(out, "up to seq 0 "),
              "%s", out);
    for (int i = 0; i < 3; i++)
        wait_show(i, east, C, NULL);
    cr_assert_eq(KZ(0, "hotline", "show", east), 0, "%s", out);
    cr_assert(strstr(out, " removed"), "%s", out);
    cr_assert_eq(KZ(0, "hotline", "status", east), 0, "%s", out);
    line_of(out, C, cl, sizeof cl);
    cr_assert(strstr(cl, " removed"), "%s", out);
    cr_assert_eq(KZJ(0, "hotline", "remove", east, C), 1, "removed already: %s", out);
    r = parse(out);
    cr_assert_str_eq(
        cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "code")),
        "conflict");
    cJSON_Delete(r);
    /* --json remove: the cutoff as the server gives it. */
    cr_assert_eq(KZJ(0, "hotline", "remove", "南予ホットライン", C), 0, "%s", out);
    r = parse(out);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "cutoff")), 2, "%s", out);
    cJSON_Delete(r);
    for (int i = 0; i < 2; i++)
        wait_show(i, south, C, NULL);
    cr_assert_eq(KZ(0, "hotline", "list", "--csv"), 0, "%s", out);
    cr_assert(strstr(out, ",\"no\""), "removed rows say so: %s", out);

    /* The prefecture hands 南予 to B: B's admin assigns roles from then on, A no longer can. */
    cr_assert_eq(KZ(1, "hotline", "authority", south, B), 1, "%s", out);
    cr_assert(strstr(out, "forbidden"), "only the authority hands on: %s", out);
    cr_assert_eq(KZ(0, "hotline", "authority", "南予ホットライン", B), 0, "%s", out);
    cr_assert(strstr(out, "is now the authority of 南予ホットライン"), "%s", out);
    for (long long t = 0;; t += 25) {
        cr_assert_eq(KZ(1, "hotline", "show", south), 0, "%s", out);
        if (strstr(out, "authority jp-38201-matsuyama;"))
            break;
        cr_assert_lt(t, DEADLINE_MS, "B never became the authority: %s", out);
        pause_ms(25);
    }
    cr_assert_eq(KZ(0, "hotline", "role", "南予ホットライン", B, "primary"), 1, "%s", out);
    cr_assert(strstr(out, "forbidden"), "%s", out);
    cr_assert_eq(KZ(1, "hotline", "role", south, B, "primary"), 0, "%s", out);
    wait_show(0, south, B, "primary");
}
