/* test_mail.c - e-mail against the real kizunad, with the mail relay played by the test
 * (support/smtpsink.c): an urgent roll-call reaches a recipient who has only an e-mail address,
 * correctly encoded (RFC 2047 subject, UTF-8 body), with one-tap answer links that record the
 * answer once and are refused a second time and after expiry; a busy relay is retried and a
 * refusing one fails the message for good; one sender thread sends message after message in one
 * SMTP session. */
#include <criterion/criterion.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "smtpsink.h"

#define PW     "password-1234"
#define ORIGIN "http://kizuna.example.test"
#define FROM   "kizuna@city.example.lg.jp"

static struct kzd d;
static struct ws admin;
static struct smtpsink *sink;
static bool started;

static void start(const char *extra)
{
    cr_assert(sodium_init() >= 0);
    sink = smtpsink_start();
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "\"smtp_host\":\"127.0.0.1\",\"smtp_port\":%d,\"smtp_security\":\"none\","
             "\"smtp_from\":\"" FROM "\",\"public_origin\":\"" ORIGIN "\","
             "\"mail_retry_base_ms\":100%s%s",
             smtpsink_port(sink), extra[0] ? "," : "", extra);
    kzd_setup_with(&d, cfg);
    started = true;
    cr_assert(ws_open(&admin, d.port));
    cr_assert(ws_login(&admin, "admin", TEST_ADMIN_PASSWORD, NULL));
}

static void teardown(void)
{
    if (!started)
        return;
    ws_close_fd(&admin);
    kzd_teardown(&d);
    smtpsink_stop(sink);
}

TestSuite(mail, .fini = teardown, .timeout = 120);

static void add_user(const char *login, const char *email)
{
    cJSON *r = ws_callf(&admin,
                        "\"op\":\"user.add\",\"login\":\"%s\",\"password\":\"%s\","
                        "\"name\":\"山田 %s\",\"department\":\"総務課\",\"role\":\"staff\","
                        "\"email\":\"%s\"",
                        login, PW, login, email);
    cr_assert_str_eq(reply_code(r), "ok", "user.add %s", login);
    cJSON_Delete(r);
}

static long long rollcall(const char *to_json, const char *title)
{
    cJSON *r = ws_callf(&admin,
                        "\"op\":\"notice.post\",\"title\":\"%s\",\"body\":\"震度6弱の地震が"
                        "発生しました。安否を回答してください。\",\"to\":%s,\"priority\":"
                        "\"urgent\",\"choices\":[\"無事・出勤可\",\"無事・出勤不可\",\"負傷\"]",
                        title, to_json);
    cr_assert_str_eq(reply_code(r), "ok", "notice.post");
    long long id =
        (long long)cJSON_GetObjectItem(cJSON_GetObjectItem(r, "notice"), "id")->valuedouble;
    cJSON_Delete(r);
    return id;
}

/* The path of the answer link for choice c (1-based) in a mail body: "/answer/TOKEN?c=N". */
static bool link_path(const char *body, int c, char *out, size_t n)
{
    char want[32];
    snprintf(want, sizeof want, "?c=%d", c);
    for (const char *p = strstr(body, ORIGIN "/answer/"); p; p = strstr(p + 1, ORIGIN "/answer/")) {
        size_t len = strcspn(p, "\r\n ");
        if (len > strlen(want) && strncmp(p + len - strlen(want), want, strlen(want)) == 0) {
            snprintf(out, n, "%.*s", (int)(len - strlen(ORIGIN)), p + strlen(ORIGIN));
            return true;
        }
    }
    return false;
}

/* The caller's recorded choice of notice id (-1: none). */
static int my_choice(const char *login, long long id)
{
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    cr_assert(ws_login(&w, login, PW, NULL));
    cJSON *r = ws_callf(&w, "\"op\":\"notice.show\",\"notice\":%lld", id);
    cr_assert_str_eq(reply_code(r), "ok");
    const cJSON *resp = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(r, "notice"), "me"), "response");
    int c = cJSON_IsObject(resp) ? (int)cJSON_GetObjectItem(resp, "choice")->valuedouble : -1;
    cJSON_Delete(r);
    ws_close_fd(&w);
    return c;
}

Test(mail, a_rollcall_reaches_an_address_and_its_link_answers_once)
{
    start("");
    add_user("ichiro", "ichiro@example.jp");
    add_user("jiro", "jiro@example.jp");
    add_user("kotaro", ""); /* no address, no app: reached by nothing */
    const char *title = "【訓練】安否確認：震度6弱の地震が発生しました（全職員は回答してください）";
    long long id = rollcall("[\"user:ichiro\",\"user:jiro\",\"user:kotaro\"]", title);
    struct smtp_msg m, mj;
    cr_assert(smtpsink_wait(sink, "ichiro@example.jp", 0, 15000, &m), "no mail for ichiro");
    cr_assert(smtpsink_wait(sink, "jiro@example.jp", 0, 15000, &mj), "no mail for jiro");
    cr_assert(strstr(m.from, FROM), "MAIL FROM %s", m.from);
    /* The report shows who was reached how, and that kotaro was reached by nothing. */
    long long deadline = mono_ms() + 10000;
    cJSON *rep = NULL;
    for (;;) {
        rep = ws_callf(&admin, "\"op\":\"notice.report\",\"notice\":%lld", id);
        cr_assert_str_eq(reply_code(rep), "ok");
        if (cJSON_GetObjectItem(cJSON_GetObjectItem(rep, "reach"), "email")->valuedouble == 2 ||
            mono_ms() > deadline)
            break;
        cJSON_Delete(rep);
        usleep(20000);
    }
    const cJSON *reach = cJSON_GetObjectItem(rep, "reach");
    cr_assert_eq(cJSON_GetObjectItem(reach, "email")->valuedouble, 2);
    cr_assert_eq(cJSON_GetObjectItem(reach, "push")->valuedouble, 0);
    cr_assert_eq(cJSON_GetObjectItem(reach, "none")->valuedouble, 1);
    const cJSON *unreached = cJSON_GetObjectItem(cJSON_GetObjectItem(rep, "missing"), "unreached");
    cr_assert_eq(cJSON_GetArraySize(unreached), 1);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(unreached, 0), "login")->valuestring,
                     "kotaro");
    cJSON_Delete(rep);

    /* Headers: 7-bit lines of at most 78 characters, the subject as encoded words. */
    const char *hend = strstr(m.data, "\r\n\r\n");
    cr_assert_not_null(hend);
    for (const char *l = m.data; l < hend;) {
        const char *e = strstr(l, "\r\n");
        cr_assert_leq(e - l, 78, "header line too long: %.*s", (int)(e - l), l);
        for (const char *c = l; c < e; c++)
            cr_assert((unsigned char)*c < 0x80, "8-bit header: %.*s", (int)(e - l), l);
        l = e + 2;
    }
    char subject[1024], ct[128], to[256];
    cr_assert(mail_header(&m, "Subject", subject, sizeof subject));
    char want[1024];
    snprintf(want, sizeof want, "[Kizuna] 【至急】【回答依頼】%s", title);
    cr_assert_str_eq(subject, want);
    cr_assert(mail_header(&m, "Content-Type", ct, sizeof ct));
    cr_assert(strstr(ct, "text/plain") && strstr(ct, "charset=UTF-8"), "%s", ct);
    cr_assert(mail_header(&m, "To", to, sizeof to));
    cr_assert_str_eq(to, "ichiro@example.jp");
    cr_assert(mail_header(&m, "Date", ct, sizeof ct));
    char body[16384];
    cr_assert(mail_body(&m, body, sizeof body));
    cr_assert(strstr(body, "震度6弱の地震が発生しました。"), "%s", body);
    cr_assert(strstr(body, "山田 ichiro さん"), "%s", body);

    /* One tap on 無事・出勤不可 records it, and the page says so. */
    char path[256], page[4096];
    cr_assert(link_path(body, 2, path, sizeof path), "no link for choice 2 in %s", body);
    cr_assert_eq(my_choice("ichiro", id), -1);
    int st = http_request(d.port, "GET", path, NULL, NULL, page, sizeof page);
    cr_assert_eq(st, 200, "%d %s", st, page);
    cr_assert(strstr(page, "回答を受け付けました") && strstr(page, "無事・出勤不可"), "%s", page);
    cr_assert_eq(my_choice("ichiro", id), 1);
    /* The same person's link again, even for another choice: refused, the answer stays. */
    cr_assert(link_path(body, 1, path, sizeof path));
    st = http_request(d.port, "GET", path, NULL, NULL, page, sizeof page);
    cr_assert_eq(st, 409, "%d %s", st, page);
    cr_assert(strstr(page, "回答できませんでした"), "%s", page);
    cr_assert_eq(my_choice("ichiro", id), 1);
    /* A made-up token, a bad choice, a path with a stray character: refused, nothing kept. */
    st = http_request(d.port, "GET", "/answer/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA?c=1",
                      NULL, NULL, page, sizeof page);
    cr_assert_eq(st, 404);
    char jbody[16384], jpath[256];
    cr_assert(mail_body(&mj, jbody, sizeof jbody));
    cr_assert(link_path(jbody, 3, jpath, sizeof jpath));
    cr_assert_str_neq(jpath, path, "two people share one token");
    char bad[300];
    snprintf(bad, sizeof bad, "%.*s?c=9", (int)(strchr(jpath, '?') - jpath), jpath);
    st = http_request(d.port, "GET", bad, NULL, NULL, page, sizeof page);
    cr_assert_eq(st, 400, "%d %s", st, page);
    st = http_request(d.port, "GET", "/answer/%3Cscript%3E?c=1", NULL, NULL, page, sizeof page);
    cr_assert_eq(st, 404);
    cr_assert_eq(my_choice("jiro", id), -1);
    /* jiro's own link still works after all that. */
    st = http_request(d.port, "GET", jpath, NULL, NULL, page, sizeof page);
    cr_assert_eq(st, 200, "%d %s", st, page);
    cr_assert_eq(my_choice("jiro", id), 2);
}

Test(mail, an_expired_link_is_refused)
{
    start("\"mail_answer_link_ttl_s\":1");
    add_user("saburo", "saburo@example.jp");
    long long id = rollcall("[\"user:saburo\"]", "安否確認");
    struct smtp_msg m;
    cr_assert(smtpsink_wait(sink, "saburo@example.jp", 0, 15000, &m));
    char body[16384], path[256], page[4096];
    cr_assert(mail_body(&m, body, sizeof body));
    cr_assert(link_path(body, 1, path, sizeof path));
    usleep(1300000);
    int st = http_request(d.port, "GET", path, NULL, NULL, page, sizeof page);
    cr_assert_eq(st, 403, "%d %s", st, page);
    cr_assert(strstr(page, "expired"), "%s", page);
    cr_assert_eq(my_choice("saburo", id), -1);
}

/* Where the town's mail passes a link scanner (mail_answer_confirm): opening the link only shows
 * the button, however often; the button's POST answers, once. */
Test(mail, with_confirm_a_link_shows_a_button_and_only_its_post_answers)
{
    start("\"mail_answer_confirm\":1");
    add_user("shiro", "shiro@example.jp");
    long long id = rollcall("[\"user:shiro\"]", "安否確認");
    struct smtp_msg m;
    cr_assert(smtpsink_wait(sink, "shiro@example.jp", 0, 15000, &m));
    char body[16384], path[256], page[4096];
    cr_assert(mail_body(&m, body, sizeof body));
    cr_assert(link_path(body, 3, path, sizeof path));
    for (int i = 0; i < 2; i++) { /* the scanner, then the person */
        int st = http_request(d.port, "GET", path, NULL, NULL, page, sizeof page);
        cr_assert_eq(st, 200, "%d %s", st, page);
        cr_assert(strstr(page, "<form method=\"post\"") && strstr(page, "負傷"), "%s", page);
        cr_assert_eq(my_choice("shiro", id), -1, "opening the link answered");
    }
    char action[300];
    snprintf(action, sizeof action, "action=\"%s\"", path);
    cr_assert(strstr(page, action), "the button does not post to the link: %s", page);
    /* A POST with a body is not the button's: refused, nothing recorded. */
    int st = http_request(d.port, "POST", path, NULL, "c=1", page, sizeof page);
    cr_assert_eq(st, 400, "%d %s", st, page);
    cr_assert_eq(my_choice("shiro", id), -1);
    st = http_request(d.port, "POST", path, NULL, "", page, sizeof page);
    cr_assert_eq(st, 200, "%d %s", st, page);
    cr_assert(strstr(page, "回答を受け付けました") && strstr(page, "負傷"), "%s", page);
    cr_assert_eq(my_choice("shiro", id), 2);
    /* Used: the link now says so, and a second POST changes nothing. */
    st = http_request(d.port, "GET", path, NULL, NULL, page, sizeof page);
    cr_assert_eq(st, 409, "%d %s", st, page);
    st = http_request(d.port, "POST", path, NULL, "", page, sizeof page);
    cr_assert_eq(st, 409, "%d %s", st, page);
}

/* Mail in the outbox by state, read from the database. */
static int outbox(const char *state)
{
    char path[512];
    snprintf(path, sizeof path, "%s/kizuna.db", d.dir);
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int n = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT count(*) FROM mail_outbox WHERE state = ?", -1, &s, NULL) ==
            SQLITE_OK) {
        sqlite3_bind_text(s, 1, state, -1, SQLITE_STATIC);
        if (sqlite3_step(s) == SQLITE_ROW)
            n = sqlite3_column_int(s, 0);
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

Test(mail, a_busy_relay_is_retried_and_a_refusal_is_kept_as_failed)
{
    start("");
    add_user("shiro", "shiro@example.jp");
    add_user("goro", "nobody@example.jp");
    smtpsink_busy(sink, 2);
    smtpsink_refuse(sink, "nobody@example.jp");
    rollcall("[\"user:shiro\",\"user:goro\"]", "安否確認");
    struct smtp_msg m;
    cr_assert(smtpsink_wait(sink, "shiro@example.jp", 0, 20000, &m), "not retried after 421");
    cr_assert_geq(smtpsink_sessions(sink), 3);
    long long deadline = mono_ms() + 10000;
    /* The relay has shiro's message before kizunad has recorded its answer: wait for both. */
    while ((outbox("failed") != 1 || outbox("pending") != 0) && mono_ms() < deadline)
        usleep(20000);
    cr_assert_eq(outbox("failed"), 1, "the refused message is not kept as failed");
    cr_assert_eq(outbox("pending"), 0);
    cr_assert_eq(smtpsink_count(sink, "shiro@example.jp"), 1, "a delivered message went twice");
    /* The admin sees the failure, with the relay's reply. */
    cJSON *r = ws_callf(&admin, "\"op\":\"mail.status\"");
    cr_assert_str_eq(reply_code(r), "ok");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "enabled")));
    cr_assert_eq(cJSON_GetObjectItem(r, "failed_total")->valuedouble, 1);
    cr_assert_eq(cJSON_GetObjectItem(r, "pending")->valuedouble, 0);
    const cJSON *f = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "failed"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(f, "login")->valuestring, "goro");
    cr_assert_str_eq(cJSON_GetObjectItem(f, "to")->valuestring, "nobody@example.jp");
    cr_assert(strstr(cJSON_GetObjectItem(f, "error")->valuestring, "550"), "%s",
              cJSON_GetObjectItem(f, "error")->valuestring);
    cJSON_Delete(r);

    /* The same in the CLI: kizuna admin mail. */
    char env_dir[400], env_srv[100], out[8192];
    snprintf(env_dir, sizeof env_dir, "KIZUNA_CONFIG_DIR=%s/cli", d.dir);
    snprintf(env_srv, sizeof env_srv, "KIZUNA_SERVER=%s", d.url);
    const char *env[] = {env_dir, env_srv, "KIZUNA_PASSWORD=" TEST_ADMIN_PASSWORD, NULL};
    const char *login[] = {KIZUNA_PATH, "login", "admin", NULL};
    cr_assert_eq(run_capture(login, env, NULL, out, sizeof out), 0, "%s", out);
    const char *mail[] = {KIZUNA_PATH, "admin", "mail", NULL};
    int rc = run_capture(mail, env, NULL, out, sizeof out);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, out);
    cr_assert(strstr(out, "waiting       0\n") && strstr(out, "failed        1\n"), "%s", out);
    cr_assert(strstr(out, "goro") && strstr(out, "nobody@example.jp") && strstr(out, "550") &&
                  strstr(out, "【回答依頼】安否確認"),
              "%s", out);
    const char *bad[] = {KIZUNA_PATH, "admin", "mail", "--limit", "many", NULL};
    cr_assert_eq(run_capture(bad, env, NULL, out, sizeof out), 2, "%s", out);

    /* /metrics counts it all: one sent, one failed for good, the busy relay's retries, and the
     * delivered message's time from queue to relay. */
    static char text[65536];
    cr_assert_eq(http_request(d.port, "GET", "/metrics", NULL, NULL, text, sizeof text), 200);
    cr_assert_eq(metric_value(text, "kizuna_mail_sends_total{result=\"sent\"}"), 1, "%s", text);
    cr_assert_eq(metric_value(text, "kizuna_mail_sends_total{result=\"failed\"}"), 1, "%s", text);
    cr_assert_geq(metric_value(text, "kizuna_mail_sends_total{result=\"retry\"}"), 1, "%s", text);
    cr_assert_eq(metric_value(text, "kizuna_mail_delivery_seconds_count"), 1, "%s", text);
}

static void prefs(const char *login, const char *email_kinds)
{
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    cr_assert(ws_login(&w, login, PW, NULL));
    cJSON *r = ws_callf(&w, "\"op\":\"notify.prefs\",\"email\":%s", email_kinds);
    cr_assert_str_eq(reply_code(r), "ok", "notify.prefs %s", login);
    cJSON_Delete(r);
    ws_close_fd(&w);
}

static void answer(const char *path, int want_status)
{
    char page[4096];
    int st = http_request(d.port, "GET", path, NULL, NULL, page, sizeof page);
    cr_assert_eq(st, want_status, "%s: %d %s", path, st, page);
}

Test(mail, a_reminder_mails_the_missing_fresh_links_as_they_chose)
{
    start("");
    add_user("ichi", "ichi@example.jp");
    add_user("ni", "ni@example.jp");
    add_user("san", "san@example.jp");
    prefs("san", "[\"notice\",\"rollcall\"]"); /* no reminders by e-mail */
    long long id = rollcall("[\"user:ichi\",\"user:ni\",\"user:san\"]", "安否確認（第2報）");
    struct smtp_msg first_ichi, first_ni, m;
    cr_assert(smtpsink_wait(sink, "ichi@example.jp", 0, 15000, &first_ichi));
    cr_assert(smtpsink_wait(sink, "ni@example.jp", 0, 15000, &first_ni));
    cr_assert(smtpsink_wait(sink, "san@example.jp", 0, 15000, &m));
    char body[16384], path[256], old_path[256];
    cr_assert(mail_body(&first_ichi, body, sizeof body));
    cr_assert(link_path(body, 1, path, sizeof path));
    answer(path, 200); /* ichi answers from his first mail */

    cJSON *r = ws_callf(&admin, "\"op\":\"notice.remind\",\"notice\":%lld", id);
    cr_assert_str_eq(reply_code(r), "ok");
    cr_assert_eq(cJSON_GetObjectItem(r, "reminded")->valuedouble, 2);
    cJSON_Delete(r);
    r = ws_callf(&admin, "\"op\":\"notice.remind\",\"notice\":%lld", id);
    cr_assert_str_eq(reply_code(r), "rate_limited", "a second reminder at once went out");
    cJSON_Delete(r);

    cr_assert(smtpsink_wait(sink, "ni@example.jp", 1, 15000, &m), "ni got no reminder");
    char subject[1024];
    cr_assert(mail_header(&m, "Subject", subject, sizeof subject));
    cr_assert_str_eq(subject, "[Kizuna] 【再通知】【至急】【回答依頼】安否確認（第2報）");
    cr_assert(mail_body(&m, body, sizeof body));
    cr_assert(strstr(body, "まだ回答がありません"), "%s", body);
    /* A fresh link of ni's own: it answers once; then neither it nor the first mail's link
     * changes the answer. */
    cr_assert(link_path(body, 3, path, sizeof path), "no answer link in %s", body);
    char first_body[16384];
    cr_assert(mail_body(&first_ni, first_body, sizeof first_body));
    cr_assert(link_path(first_body, 3, old_path, sizeof old_path));
    cr_assert_str_neq(path, old_path, "the reminder reused the first link");
    cr_assert_eq(my_choice("ni", id), -1);
    answer(path, 200);
    cr_assert_eq(my_choice("ni", id), 2);
    answer(path, 409);
    cr_assert(link_path(first_body, 1, old_path, sizeof old_path));
    answer(old_path, 409);
    cr_assert_eq(my_choice("ni", id), 2);

    /* Nothing for ichi (answered) nor san (reminders off by e-mail); the report counts the
     * reminder's mail as reach the same way. */
    usleep(500000);
    cr_assert_eq(smtpsink_count(sink, "ichi@example.jp"), 1, "ichi had answered");
    cr_assert_eq(smtpsink_count(sink, "san@example.jp"), 1, "san turned reminder mail off");
    r = ws_callf(&admin, "\"op\":\"notice.report\",\"notice\":%lld", id);
    cr_assert_str_eq(reply_code(r), "ok");
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "reach"), "email")->valuedouble, 3);
    cJSON_Delete(r);
}

/* Lines of the server's log holding needle. */
static int log_count(const char *needle)
{
    char path[300], line[4096];
    snprintf(path, sizeof path, "%s/stderr.log", d.dir);
    FILE *f = fopen(path, "r");
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return n;
}

static void wait_log_count(const char *needle, int n)
{
    long long deadline = mono_ms() + 15000;
    while (log_count(needle) < n && mono_ms() < deadline)
        usleep(20000);
    cr_assert_geq(log_count(needle), n, "no %d× %s in the log", n, needle);
}

static long long post(struct ws *w, const char *fields)
{
    cJSON *r = ws_callf(w, "\"op\":\"notice.post\",%s", fields);
    cr_assert_str_eq(reply_code(r), "ok", "notice.post %s", fields);
    long long id =
        (long long)cJSON_GetObjectItem(cJSON_GetObjectItem(r, "notice"), "id")->valuedouble;
    cJSON_Delete(r);
    return id;
}

static void as_user(const char *login, const char *op, long long id)
{
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    cr_assert(ws_login(&w, login, PW, NULL));
    cJSON *r = ws_callf(&w, "\"op\":\"%s\",\"notice\":%lld", op, id);
    cr_assert_str_eq(reply_code(r), "ok", "%s %s", login, op);
    cJSON_Delete(r);
    ws_close_fd(&w);
}

/* Stops the server, adds members to its config file and starts it again. */
static void restart_with(const char *members)
{
    ws_close_fd(&admin);
    cr_assert_eq(kzd_stop(&d), 0);
    if (members) {
        FILE *f = fopen(d.config, "r");
        cr_assert_not_null(f);
        char text[4096];
        size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = '\0';
        char *end = strrchr(text, '}');
        cr_assert_not_null(end);
        *end = '\0';
        f = fopen(d.config, "w");
        cr_assert_not_null(f);
        fprintf(f, "%s,%s}\n", text, members);
        fclose(f);
    }
    kzd_start(&d);
    cr_assert(ws_open(&admin, d.port));
    cr_assert(ws_login(&admin, "admin", TEST_ADMIN_PASSWORD, NULL));
}

Test(mail, the_daily_digest_lists_what_is_not_done_once_a_day)
{
    start("\"time_zone\":\"UTC\"");
    add_user("dai", "dai@example.jp");   /* digest on, two notices not done */
    add_user("eri", "eri@example.jp");   /* digest on, everything done */
    add_user("fumi", "fumi@example.jp"); /* digest off (the default), one not done */
    prefs("dai", "[\"notice\",\"rollcall\",\"reminder\",\"digest\"]");
    prefs("eri", "[\"notice\",\"rollcall\",\"digest\"]");
    long long a = post(&admin, "\"title\":\"停電のお知らせ\",\"body\":\"b\","
                               "\"to\":[\"user:dai\",\"user:fumi\"]");
    long long b = post(&admin, "\"title\":\"訓練参加の確認\",\"body\":\"b\",\"ask_ack\":true,"
                               "\"to\":[\"user:dai\"]");
    long long c = post(&admin, "\"title\":\"既読のお知らせ\",\"body\":\"b\","
                               "\"to\":[\"user:dai\",\"user:eri\"]");
    long long w = post(&admin, "\"title\":\"取り下げたお知らせ\",\"body\":\"b\","
                               "\"to\":[\"user:dai\",\"user:eri\"]");
    as_user("dai", "notice.show", b); /* read, not acknowledged as it asks: still listed */
    as_user("dai", "notice.show", c);
    as_user("eri", "notice.show", c);
    cJSON *r = ws_callf(&admin, "\"op\":\"notice.withdraw\",\"notice\":%lld", w);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    cr_assert_eq(smtpsink_count(sink, "dai@example.jp"), 0, "mail before any digest was set");

    /* The digest's time (00:00 UTC) has come today: it goes at start. */
    restart_with("\"mail_digest_at\":\"00:00\"");
    struct smtp_msg m;
    cr_assert(smtpsink_wait(sink, "dai@example.jp", 0, 15000, &m), "dai got no digest");
    char subject[512], body[16384], want[256];
    cr_assert(mail_header(&m, "Subject", subject, sizeof subject));
    cr_assert(strstr(subject, "未読のお知らせ 2 件"), "%s", subject);
    cr_assert(mail_body(&m, body, sizeof body));
    cr_assert(strstr(body, "停電のお知らせ") && strstr(body, "訓練参加の確認"), "%s", body);
    cr_assert_null(strstr(body, "既読のお知らせ"), "%s", body);
    cr_assert_null(strstr(body, "取り下げたお知らせ"), "%s", body);
    snprintf(want, sizeof want, ORIGIN "/#/notices/%lld", a);
    cr_assert(strstr(body, want), "no link to open notice %lld in %s", a, body);
    snprintf(want, sizeof want, ORIGIN "/#/notices/%lld", b);
    cr_assert(strstr(body, want), "no link to open notice %lld in %s", b, body);
    wait_log_count("mail_digest_done", 1);
    usleep(300000);
    cr_assert_eq(smtpsink_count(sink, "eri@example.jp"), 0, "a digest with nothing in it");
    cr_assert_eq(smtpsink_count(sink, "fumi@example.jp"), 0, "a digest nobody asked for");

    /* Something new waits for dai, and the mail sender runs again (an urgent notice to eri):
     * no second digest today, nor after a restart the same day. */
    post(&admin, "\"title\":\"追加のお知らせ\",\"body\":\"b\",\"to\":[\"user:dai\"]");
    post(&admin, "\"title\":\"至急\",\"body\":\"b\",\"priority\":\"urgent\",\"to\":[\"user:eri\"]");
    cr_assert(smtpsink_wait(sink, "eri@example.jp", 0, 15000, &m));
    restart_with(NULL);
    wait_log_count("mail_digest_done", 2);
    usleep(300000);
    cr_assert_eq(smtpsink_count(sink, "dai@example.jp"), 1, "a second digest the same day");
    cr_assert_eq(smtpsink_count(sink, "eri@example.jp"), 1);
    cr_assert_eq(smtpsink_count(sink, "fumi@example.jp"), 0);
}

Test(mail, one_sender_thread_sends_several_messages_in_one_smtp_session)
{
    /* One sender thread and four recipients: the thread keeps its session with the relay, so
     * every message after the first goes over it (MAIL FROM again, no new connection, no new
     * EHLO). Each message is still whole and addressed to its own recipient. */
    start("\"mail_concurrency\":1");
    const char *who[] = {"ume", "kiku", "fuji", "hagi"};
    for (int i = 0; i < 4; i++) {
        char addr[64];
        snprintf(addr, sizeof addr, "%s@example.jp", who[i]);
        add_user(who[i], addr);
    }
    rollcall("[\"user:ume\",\"user:kiku\",\"user:fuji\",\"user:hagi\"]", "安否確認");
    for (int i = 0; i < 4; i++) {
        char addr[64], body[8192];
        snprintf(addr, sizeof addr, "%s@example.jp", who[i]);
        struct smtp_msg m;
        cr_assert(smtpsink_wait(sink, addr, 0, 15000, &m), "no mail for %s", addr);
        cr_assert(mail_body(&m, body, sizeof body));
        cr_assert(strstr(body, "/answer/"), "the mail to %s has no answer link", addr);
    }
    cr_assert_eq(smtpsink_sessions(sink), 1, "4 messages took %d sessions",
                 smtpsink_sessions(sink));
}
