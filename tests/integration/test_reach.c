/* test_reach.c - issue 24's "Done when", whole, against the real kizunad with both a push
 * service and a mail relay played by the test (support/pushsink.c, support/smtpsink.c): an
 * urgent roll-call after a night-time earthquake reaches hana, whose browser is closed, through
 * the push stand-in, and jiro, who has only an e-mail address, through the SMTP sink; each
 * answers with one tap (hana the button of her push, as sw.js does; jiro the link in his mail);
 * and the report shows who was reached how and how each answered, and who was reached by
 * nothing. */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "pushsink.h"
#include "smtpsink.h"

#define PW      "password-1234"
#define ORIGIN  "http://kizuna.example.test"
#define SUBJECT "mailto:bousai@example.lg.jp"

static struct kzd d;
static struct ws admin;
static struct pushsink *push;
static struct smtpsink *smtp;

static void setup(void)
{
    cr_assert(sodium_init() >= 0);
    push = pushsink_start();
    smtp = smtpsink_start();
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "\"push_subject\":\"" SUBJECT "\",\"push_allow_private_endpoints\":true,"
             "\"push_coalesce_ms\":200,\"smtp_host\":\"127.0.0.1\",\"smtp_port\":%d,"
             "\"smtp_security\":\"none\",\"smtp_from\":\"kizuna@city.example.lg.jp\","
             "\"public_origin\":\"" ORIGIN "\"",
             smtpsink_port(smtp));
    kzd_setup_with(&d, cfg);
    cr_assert(ws_open(&admin, d.port));
    cr_assert(ws_login(&admin, "admin", TEST_ADMIN_PASSWORD, NULL));
}

static void teardown(void)
{
    ws_close_fd(&admin);
    kzd_teardown(&d);
    pushsink_stop(push);
    smtpsink_stop(smtp);
}

TestSuite(reach, .init = setup, .fini = teardown, .timeout = 120);

static void add_user(const char *login, const char *name, const char *email)
{
    cJSON *r = ws_callf(&admin,
                        "\"op\":\"user.add\",\"login\":\"%s\",\"password\":\"%s\","
                        "\"name\":\"%s\",\"department\":\"建設課\",\"role\":\"staff\","
                        "\"email\":\"%s\"",
                        login, PW, name, email);
    cr_assert_str_eq(reply_code(r), "ok", "user.add %s", login);
    cJSON_Delete(r);
}

/* The person in a report's reach.people (NULL if absent). */
static const cJSON *person(const cJSON *rep, const char *login)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(cJSON_GetObjectItem(rep, "reach"), "people"))
    {
        if (strcmp(cJSON_GetObjectItem(p, "login")->valuestring, login) == 0)
            return p;
    }
    return NULL;
}

/* kizuna as admin on a device of its own, the arguments up to NULL; stdout in out. */
static int kz_admin(char *out, size_t n, ...)
{
    char config[400];
    snprintf(config, sizeof config, "%s/dev-admin", d.dir);
    const struct kz_device dev = {d.url, config, "admin", NULL, 20, false};
    va_list ap;
    va_start(ap, n);
    int rc = kz_device_run(&dev, NULL, out, n, ap);
    va_end(ap);
    return rc;
}

static const char *str_or_null(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

Test(reach, an_urgent_rollcall_reaches_a_closed_browser_and_a_mailbox_and_both_answer_with_one_tap)
{
    add_user("hana", "佐藤 花", "");                  /* the web app on her phone, closed */
    add_user("jiro", "鈴木 次郎", "jiro@example.jp"); /* no app: an address only */
    add_user("saburo", "高橋 三郎", "");              /* neither: reached by nothing */

    /* hana subscribed her phone's browser earlier, then closed it (her session stays). */
    struct ws hana;
    struct push_keys kh;
    cr_assert(ws_open(&hana, d.port));
    cr_assert(ws_login(&hana, "hana", PW, NULL));
    push_keys_new(&kh);
    cJSON *r = ws_callf(&hana,
                        "\"op\":\"push.subscribe\",\"endpoint\":\"http://127.0.0.1:%d/p/hana\","
                        "\"p256dh\":\"%s\",\"auth\":\"%s\"",
                        pushsink_port(push), kh.pub64, kh.auth64);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    ws_close_fd(&hana);

    r = ws_callf(&admin, "\"op\":\"notice.post\",\"title\":\"安否確認（震度6強）\","
                         "\"body\":\"KZSECRET 各自の安否を回答してください。\","
                         "\"to\":[\"user:hana\",\"user:jiro\",\"user:saburo\"],"
                         "\"priority\":\"urgent\",\"choices\":[\"無事・出勤可\",\"無事・出勤不可\","
                         "\"負傷あり\"]");
    cr_assert_str_eq(reply_code(r), "ok");
    long long id =
        (long long)cJSON_GetObjectItem(cJSON_GetObjectItem(r, "notice"), "id")->valuedouble;
    cJSON_Delete(r);

    /* hana: the push, encrypted for her browser, with her own answer token and the choices. */
    struct push_post p;
    cr_assert(pushsink_wait(push, "/p/hana", 0, 15000, &p), "hana's browser got no push");
    cr_assert_str_eq(p.urgency, "high");
    char plain[2048];
    cr_assert(push_decrypt(&kh, p.body, p.len, plain, sizeof plain), "the push does not decrypt");
    cr_assert_null(strstr(plain, "KZSECRET"), "the notice's body left the server: %s", plain);
    cJSON *pl = cJSON_Parse(plain);
    cr_assert_not_null(pl, "%s", plain);
    cr_assert_str_eq(str_or_null(pl, "kind"), "rollcall");
    cr_assert_eq((long long)cJSON_GetObjectItem(pl, "notice")->valuedouble, id);
    const char *token = str_or_null(pl, "answer");
    cr_assert(token && strlen(token) == 43, "no answer token in %s", plain);
    const cJSON *choices = cJSON_GetObjectItem(pl, "choices");
    cr_assert_eq(cJSON_GetArraySize(choices), 3);
    cr_assert_str_eq(str_or_null(cJSON_GetArrayItem(choices, 0), "text"), "無事・出勤可");

    /* jiro: the mail, with links of his own. */
    struct smtp_msg m;
    cr_assert(smtpsink_wait(smtp, "jiro@example.jp", 0, 15000, &m), "jiro got no mail");
    char body[16384];
    cr_assert(mail_body(&m, body, sizeof body));
    const char *link = strstr(body, ORIGIN "/answer/");
    cr_assert_not_null(link, "no answer link in %s", body);
    char jpath[256];
    snprintf(jpath, sizeof jpath, "%.*s", (int)strcspn(link + strlen(ORIGIN), "?\r\n"),
             link + strlen(ORIGIN));
    cr_assert(strstr(jpath, token) == NULL, "the push and the mail share a token");

    /* One tap each: hana the first button of her notification (sw.js fetches this), jiro the
     * link for 無事・出勤不可 in his mail. */
    char path[300], page[4096];
    snprintf(path, sizeof path, "/answer/%s?c=1", token);
    int st = http_request(d.port, "GET", path, NULL, NULL, page, sizeof page);
    cr_assert_eq(st, 200, "%d %s", st, page);
    snprintf(path, sizeof path, "%s?c=2", jpath);
    st = http_request(d.port, "GET", path, NULL, NULL, page, sizeof page);
    cr_assert_eq(st, 200, "%d %s", st, page);
    /* A second tap on the notification is refused and changes nothing. */
    snprintf(path, sizeof path, "/answer/%s?c=3", token);
    st = http_request(d.port, "GET", path, NULL, NULL, page, sizeof page);
    cr_assert_eq(st, 409, "%d %s", st, page);

    /* The report: who was reached how, how each answered, who was reached by nothing. */
    cJSON *rep = NULL;
    long long deadline = mono_ms() + 10000;
    for (;;) {
        rep = ws_callf(&admin, "\"op\":\"notice.report\",\"notice\":%lld", id);
        cr_assert_str_eq(reply_code(rep), "ok");
        const cJSON *reach = cJSON_GetObjectItem(rep, "reach");
        if ((cJSON_GetObjectItem(reach, "push")->valuedouble == 1 &&
             cJSON_GetObjectItem(reach, "email")->valuedouble == 1) ||
            mono_ms() > deadline)
            break;
        cJSON_Delete(rep);
        usleep(20000);
    }
    const cJSON *reach = cJSON_GetObjectItem(rep, "reach");
    cr_assert_eq(cJSON_GetObjectItem(reach, "push")->valuedouble, 1);
    cr_assert_eq(cJSON_GetObjectItem(reach, "email")->valuedouble, 1);
    cr_assert_eq(cJSON_GetObjectItem(reach, "none")->valuedouble, 1);
    const cJSON *totals = cJSON_GetObjectItem(rep, "totals");
    cr_assert_eq(cJSON_GetObjectItem(totals, "responded")->valuedouble, 2);
    const cJSON *resp = cJSON_GetObjectItem(totals, "responses");
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(resp, 0), "count")->valuedouble, 1);
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(resp, 1), "count")->valuedouble, 1);
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(resp, 2), "count")->valuedouble, 0);

    const cJSON *h = person(rep, "hana"), *j = person(rep, "jiro"), *s = person(rep, "saburo");
    cr_assert(h && j && s);
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(h, "push_at")));
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(h, "email_at")));
    cr_assert_str_eq(str_or_null(h, "answered_by"), "push");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "push_at")));
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(j, "email_at")));
    cr_assert_str_eq(str_or_null(j, "answered_by"), "email");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(s, "push_at")) &&
              cJSON_IsNull(cJSON_GetObjectItem(s, "email_at")) &&
              cJSON_IsNull(cJSON_GetObjectItem(s, "answered_by")));
    const cJSON *unreached = cJSON_GetObjectItem(cJSON_GetObjectItem(rep, "missing"), "unreached");
    cr_assert_eq(cJSON_GetArraySize(unreached), 1);
    cr_assert_str_eq(str_or_null(cJSON_GetArrayItem(unreached, 0), "login"), "saburo");
    cJSON_Delete(rep);
    cJSON_Delete(pl);

    /* The same, as an administrator reads it in a terminal. */
    char out[8192];
    char idarg[32];
    snprintf(idarg, sizeof idarg, "%lld", id);
    cr_assert_eq(kz_admin(out, sizeof out, "login", "admin", NULL), 0, "%s", out);
    cr_assert_eq(kz_admin(out, sizeof out, "notice", "report", idarg, "--reach", NULL), 0, "%s",
                 out);
    cr_assert(strstr(out, "reached: push 1, e-mail 1, read 2; by nothing yet 1"), "%s", out);
    const char *hl = strstr(out, "hana"), *jl = strstr(out, "jiro");
    cr_assert(hl && strstr(hl, "answered by the push's button"), "%s", out);
    cr_assert(jl && strstr(jl, "answered by the e-mail's link"), "%s", out);
    const char *sl = strstr(out, "saburo               push");
    cr_assert(sl && strstr(sl, "answered -"), "%s", out);
}

/* The same choices from a terminal: `kizuna notify` and `kizuna room watch`. */
Test(reach, the_cli_shows_and_changes_what_reaches_a_person_and_watches_a_room)
{
    char out[8192];
    cr_assert_eq(kz_admin(out, sizeof out, "login", "admin", NULL), 0, "%s", out);
    cr_assert_eq(kz_admin(out, sizeof out, "notify", NULL), 0, "%s", out);
    cr_assert(strstr(out, "by e-mail             notice rollcall reminder\n"), "%s", out);
    cr_assert_eq(kz_admin(out, sizeof out, "notify", "--email", "notice,rollcall,digest",
                          "--previews", "on", NULL),
                 0, "%s", out);
    cr_assert(strstr(out, "by e-mail             notice rollcall digest\n"), "%s", out);
    cr_assert(strstr(out, "previews              on"), "%s", out);
    /* Refused by the server (exit 1), and nothing changed: push has no digest; both channels
     * off for roll-calls. */
    cr_assert_eq(kz_admin(out, sizeof out, "notify", "--push", "digest", NULL), 1, "%s", out);
    cr_assert_eq(kz_admin(out, sizeof out, "notify", "--push", "", "--email", "notice", NULL), 1,
                 "%s", out);
    cr_assert_eq(kz_admin(out, sizeof out, "notify", "--previews", "maybe", NULL), 2, "%s", out);
    cr_assert_eq(kz_admin(out, sizeof out, "notify", NULL), 0, "%s", out);
    cr_assert(strstr(out, "by e-mail             notice rollcall digest\n"), "%s", out);

    cJSON *r = ws_callf(&admin, "\"op\":\"room.create\",\"name\":\"現地班\",\"members\":[]");
    cr_assert_str_eq(reply_code(r), "ok");
    char room[64];
    reply_room(r, room, sizeof room);
    cJSON_Delete(r);
    cr_assert_eq(kz_admin(out, sizeof out, "room", "watch", "現地班", NULL), 0, "%s", out);
    cr_assert(strstr(out, "watched"), "%s", out);
    r = ws_callf(&admin, "\"op\":\"room.watch\",\"room\":\"%s\"", room);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "watched")));
    cJSON_Delete(r);
    cr_assert_eq(kz_admin(out, sizeof out, "room", "watch", "現地班", "--off", NULL), 0, "%s", out);
    r = ws_callf(&admin, "\"op\":\"room.watch\",\"room\":\"%s\"", room);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "watched")));
    cJSON_Delete(r);
}
