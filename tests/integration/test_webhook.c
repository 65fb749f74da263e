/* test_webhook.c - the outgoing webhook against the real kizunad, with the receiver played by
 * the test (support/pushsink.c serves the URL): an urgent roll-call arrives as one signed JSON
 * body per event, with its recipients' phone numbers only when webhook_recipients is on; the
 * test checks the signature the way docs/notifications.md tells a receiver to (HMAC-SHA256 over
 * "t.body", OpenSSL's, not the server's code), and that a tampered body or another key fails it;
 * a 503 is retried with the same delivery id and body; a delivery in flight when the server is
 * killed goes again after the restart; a refusal is kept as failed for webhook.status; what is
 * not urgent sends nothing; reminders and hotline first reports go too; /metrics counts it all;
 * check-config names bad webhook settings without echoing the secret; one sender thread keeps
 * its connection to the receiver. */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fed.h"
#include "harness.h"
#include "pushsink.h"

#define PW     "password-1234"
#define SECRET "kizuna-webhook-test-secret-0123456789abcdef"
#define HOOK   "/hooks/kizuna?token=chat-service-token"

static struct kzd d;
static struct ws admin;
static struct pushsink *sink;
static bool started;

static void start(const char *extra)
{
    cr_assert(sodium_init() >= 0);
    sink = pushsink_start();
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "\"webhook_url\":\"http://127.0.0.1:%d" HOOK "\",\"webhook_secret\":\"" SECRET "\","
             "\"webhook_retry_base_ms\":100,\"webhook_timeout_ms\":10000,\"time_zone\":\"UTC\"%s%s",
             pushsink_port(sink), extra[0] ? "," : "", extra);
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
    pushsink_stop(sink);
}

TestSuite(webhook, .fini = teardown, .timeout = 120);

static void add_user(const char *login, const char *phone)
{
    cJSON *r = ws_callf(&admin,
                        "\"op\":\"user.add\",\"login\":\"%s\",\"password\":\"%s\","
                        "\"name\":\"山田 %s\",\"department\":\"総務課\",\"role\":\"staff\","
                        "\"phone\":\"%s\",\"email\":\"%s@example.jp\"",
                        login, PW, login, phone, login);
    cr_assert_str_eq(reply_code(r), "ok", "user.add %s", login);
    cJSON_Delete(r);
}

static long long post_notice(const char *to_json, const char *title, bool urgent, bool rollcall)
{
    cJSON *r = ws_callf(&admin,
                        "\"op\":\"notice.post\",\"title\":\"%s\",\"body\":\"震度6弱の地震が"
                        "発生しました。\",\"to\":%s,\"priority\":\"%s\"%s",
                        title, to_json, urgent ? "urgent" : "normal",
                        rollcall ? ",\"choices\":[\"無事・出勤可\",\"無事・出勤不可\"]" : "");
    cr_assert_str_eq(reply_code(r), "ok", "notice.post");
    long long id =
        (long long)cJSON_GetObjectItem(cJSON_GetObjectItem(r, "notice"), "id")->valuedouble;
    cJSON_Delete(r);
    return id;
}

/* What docs/notifications.md tells a receiver to do: take t and v1 from Kizuna-Signature,
 * refuse a t more than max_age_s from now, and compare v1 with HMAC-SHA256(key, "t.body") in
 * constant time. */
static bool verify(const char *sig_header, const char *key, const uint8_t *body, size_t len,
                   long long max_age_s)
{
    long long t = 0;
    char v1[80] = "";
    if (sscanf(sig_header, "t=%lld,v1=%79s", &t, v1) != 2 || strlen(v1) != 64)
        return false;
    if (llabs((long long)time(NULL) - t) > max_age_s)
        return false;
    char ts[32];
    int n = snprintf(ts, sizeof ts, "%lld.", t);
    uint8_t *msg = malloc((size_t)n + len);
    memcpy(msg, ts, (size_t)n);
    memcpy(msg + n, body, len);
    uint8_t mac[32];
    unsigned int maclen = 0;
    HMAC(EVP_sha256(), key, (int)strlen(key), msg, (size_t)n + len, mac, &maclen);
    free(msg);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    return maclen == 32 && sodium_memcmp(hex, v1, 64) == 0;
}

/* Checks a post's headers and signature; its body parsed (the caller deletes it). */
static cJSON *check_post(const struct push_post *p, const char *want_kind)
{
    char sig[200], delivery[80], event[40], ctype[80];
    cr_assert(push_post_header(p, "Kizuna-Signature", sig, sizeof sig), "%s", p->head);
    cr_assert(push_post_header(p, "Kizuna-Delivery", delivery, sizeof delivery));
    cr_assert(push_post_header(p, "Kizuna-Event", event, sizeof event));
    cr_assert(push_post_header(p, "Content-Type", ctype, sizeof ctype));
    cr_assert(strstr(ctype, "application/json"), "%s", ctype);
    cr_assert_str_eq(event, want_kind);
    cr_assert(verify(sig, SECRET, p->body, p->len, 300), "the signature does not verify: %s", sig);
    cJSON *b = cJSON_ParseWithLength((const char *)p->body, p->len);
    cr_assert_not_null(b, "not JSON: %.*s", (int)p->len, p->body);
    cr_assert_eq(cJSON_GetObjectItem(b, "version")->valuedouble, 1);
    cr_assert_str_eq(cJSON_GetObjectItem(b, "kind")->valuestring, want_kind);
    cr_assert_str_eq(cJSON_GetObjectItem(b, "delivery")->valuestring, delivery);
    cr_assert_eq(strlen(delivery), 32);
    cr_assert(cJSON_GetObjectItem(b, "server")->valuestring[0]);
    cr_assert_eq(strlen(cJSON_GetObjectItem(b, "time")->valuestring), 20, "ISO 8601 UTC");
    return b;
}

/* Runs kizuna as admin (the CLI); stdout and stderr into out. */
static int kizuna(char *out, size_t n, ...)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/cli-admin", d.dir);
    struct kz_device dev = {.server_url = d.url,
                            .config_dir = dir,
                            .user = "admin",
                            .retry_max_s = 5,
                            .merge_stderr = true};
    va_list ap;
    va_start(ap, n);
    int rc = kz_device_run(&dev, NULL, out, n, ap);
    va_end(ap);
    return rc;
}

Test(webhook, an_urgent_rollcall_is_one_signed_delivery_with_its_recipients)
{
    start("\"webhook_recipients\":true");
    add_user("ichiro", "090-1111-2222");
    add_user("jiro", "080-3333-4444");
    long long id = post_notice("[\"user:ichiro\",\"user:jiro\"]", "安否確認", true, true);
    struct push_post p;
    cr_assert(pushsink_wait(sink, HOOK, 0, 15000, &p), "no delivery");
    cJSON *b = check_post(&p, "rollcall");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(b, "urgent")));
    const cJSON *n = cJSON_GetObjectItem(b, "notice");
    cr_assert_eq(cJSON_GetObjectItem(n, "id")->valuedouble, id);
    cr_assert_str_eq(cJSON_GetObjectItem(n, "title")->valuestring, "安否確認");
    cr_assert_str_eq(cJSON_GetObjectItem(n, "body")->valuestring, "震度6弱の地震が発生しました。");
    cr_assert_str_eq(cJSON_GetObjectItem(n, "priority")->valuestring, "urgent");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(n, "choices")), 2);
    cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(n, "choices"), 0)->valuestring,
                     "無事・出勤可");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(n, "expires_at")));
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "author"), "login")->valuestring,
                     "admin");
    cr_assert_eq(cJSON_GetObjectItem(b, "recipient_count")->valuedouble, 2);
    const cJSON *rs = cJSON_GetObjectItem(b, "recipients");
    cr_assert_eq(cJSON_GetArraySize(rs), 2);
    const cJSON *first = cJSON_GetArrayItem(rs, 0);
    cr_assert_str_eq(cJSON_GetObjectItem(first, "login")->valuestring, "ichiro");
    cr_assert_str_eq(cJSON_GetObjectItem(first, "name")->valuestring, "山田 ichiro");
    cr_assert_str_eq(cJSON_GetObjectItem(first, "department")->valuestring, "総務課");
    cr_assert_str_eq(cJSON_GetObjectItem(first, "phone")->valuestring, "090-1111-2222");
    cr_assert_str_eq(cJSON_GetObjectItem(first, "email")->valuestring, "ichiro@example.jp");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(rs, 1), "phone")->valuestring,
                     "080-3333-4444");
    cJSON_Delete(b);

    /* The receiver's check would fail for a body changed on the way, or another key. */
    char sig[200];
    cr_assert(push_post_header(&p, "Kizuna-Signature", sig, sizeof sig));
    struct push_post t = p;
    t.body[t.len - 2] ^= 0x01;
    cr_assert_not(verify(sig, SECRET, t.body, t.len, 300), "a tampered body verified");
    cr_assert_not(verify(sig, SECRET "x", p.body, p.len, 300), "another key verified");
    /* ... and for an old timestamp (a replay), however well signed. */
    cr_assert_not(verify(sig, SECRET, p.body, p.len, -1), "an old timestamp was accepted");

    /* Not urgent, no choices: nothing (the urgent notice after it proves the queue moved). */
    post_notice("[\"user:ichiro\"]", "お知らせ", false, false);
    cJSON *r = ws_callf(&admin, "\"op\":\"room.create\",\"name\":\"総務\",\"members\":[\"jiro\"]");
    cr_assert_str_eq(reply_code(r), "ok");
    char room[64];
    reply_room(r, room, sizeof room);
    cJSON_Delete(r);
    r = ws_callf(&admin, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"了解\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    post_notice("[\"user:jiro\"]", "避難所開設", true, false);
    cr_assert(pushsink_wait(sink, HOOK, 1, 15000, &p), "no delivery of the urgent notice");
    b = check_post(&p, "notice");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "notice"), "title")->valuestring,
                     "避難所開設");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(b, "recipients")), 1);
    cJSON_Delete(b);

    /* A reminder goes to those who have not answered, in one delivery. */
    r = ws_callf(&admin, "\"op\":\"notice.remind\",\"notice\":%lld", id);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    cr_assert(pushsink_wait(sink, HOOK, 2, 15000, &p), "no delivery of the reminder");
    b = check_post(&p, "reminder");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "reminder"), "for")->valuestring,
                     "response");
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "notice"), "id")->valuedouble, id);
    cr_assert_eq(cJSON_GetObjectItem(b, "recipient_count")->valuedouble, 2);
    cJSON_Delete(b);
    usleep(300000);
    cr_assert_eq(pushsink_count(sink, HOOK), 3, "one delivery per event, nothing else");

    /* /metrics counts them (once the last answer is recorded), with their delivery times. */
    static char m[1 << 18];
    long long deadline = mono_ms() + 10000;
    do {
        cr_assert_eq(http_request(d.port, "GET", "/metrics", NULL, NULL, m, sizeof m), 200);
    } while (metric_value(m, "kizuna_webhook_sends_total{result=\"sent\"}") < 3 &&
             mono_ms() < deadline && usleep(20000) == 0);
    cr_assert_eq(metric_value(m, "kizuna_webhook_sends_total{result=\"sent\"}"), 3, "%s", m);
    cr_assert_eq(metric_value(m, "kizuna_webhook_sends_total{result=\"failed\"}"), 0);
    cr_assert_eq(metric_value(m, "kizuna_webhook_delivery_seconds_count"), 3);
    /* The log names the receiver by origin only: the URL's token stays out of it. */
    cr_assert(kzd_log_has(&d, "webhook_on"));
    cr_assert_not(kzd_log_has(&d, "chat-service-token"), "the URL's token was logged");
    cr_assert_not(kzd_log_has(&d, SECRET), "the secret was logged");
}

Test(webhook, recipients_stay_home_by_default_and_a_hotline_first_report_goes)
{
    start("\"webhook_text\":false");
    add_user("saburo", "090-5555-6666");
    post_notice("[\"user:saburo\"]", "断水のお知らせ", true, false);
    struct push_post p;
    cr_assert(pushsink_wait(sink, HOOK, 0, 15000, &p));
    cJSON *b = check_post(&p, "notice");
    cr_assert_eq(cJSON_GetObjectItem(b, "recipient_count")->valuedouble, 1);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(b, "recipients")));
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "notice"), "body")),
              "webhook_text off still sent the body");
    cr_assert_null(memmem(p.body, p.len, "090-5555", 8), "a phone number left the server");
    cr_assert_null(memmem(p.body, p.len, "saburo", 6), "a recipient left the server");
    cJSON_Delete(b);

    /* A hotline (with a pinned peer) and its first report. */
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    char key[FED_KEY_B64LEN + 1], fp[FED_FINGERPRINT_LEN + 1];
    fed_key_encode(pk, key, sizeof key);
    cr_assert_eq(fed_fingerprint("jp-38-peer", pk, fp), 0);
    cJSON *r = ws_callf(&admin,
                        "\"op\":\"peer.add\",\"server\":\"jp-38-peer\",\"key\":\"%s\","
                        "\"addresses\":[\"10.0.0.9:8443\"],\"fingerprint\":\"%s\"",
                        key, fp);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    r = ws_callf(&admin, "\"op\":\"hotline.create\",\"name\":\"県ホットライン\","
                         "\"roles\":[\"jp-38-peer=affected\"]");
    cr_assert_str_eq(reply_code(r), "ok");
    char room[64];
    snprintf(room, sizeof room, "%s", cJSON_GetObjectItem(r, "room")->valuestring);
    cJSON_Delete(r);
    r = ws_callf(&admin,
                 "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"第一報：県道が冠水\","
                 "\"urgent\":true",
                 room);
    cr_assert_str_eq(reply_code(r), "ok", "%s", reply_code(r));
    long long pos = (long long)cJSON_GetObjectItem(r, "pos")->valuedouble;
    cJSON_Delete(r);
    cr_assert(pushsink_wait(sink, HOOK, 1, 15000, &p), "no delivery of the first report");
    b = check_post(&p, "hotline");
    const cJSON *rm = cJSON_GetObjectItem(b, "room");
    cr_assert_str_eq(cJSON_GetObjectItem(rm, "id")->valuestring, room);
    cr_assert_str_eq(cJSON_GetObjectItem(rm, "name")->valuestring, "県ホットライン");
    cr_assert_eq(cJSON_GetObjectItem(rm, "pos")->valuedouble, pos);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(rm, "text")), "webhook_text off sent the text");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(b, "urgent")));
    cJSON_Delete(b);
    /* An ordinary message in the hotline sends nothing. */
    r = ws_callf(&admin, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"続報なし\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    usleep(500000);
    cr_assert_eq(pushsink_count(sink, HOOK), 2);
}

Test(webhook, a_503_is_retried_as_the_same_delivery_and_a_crash_loses_nothing)
{
    start("");
    add_user("shiro", "");
    pushsink_status(sink, HOOK, 503, true);
    post_notice("[\"user:shiro\"]", "給水車の到着", true, false);
    struct push_post first, second;
    cr_assert(pushsink_wait(sink, HOOK, 0, 15000, &first));
    cr_assert(pushsink_wait(sink, HOOK, 1, 15000, &second), "the 503 was not retried");
    cr_assert_geq(second.at_ms - first.at_ms, 90, "retried before webhook_retry_base_ms");
    char d1[80], d2[80];
    cr_assert(push_post_header(&first, "Kizuna-Delivery", d1, sizeof d1));
    cr_assert(push_post_header(&second, "Kizuna-Delivery", d2, sizeof d2));
    cr_assert_str_eq(d1, d2, "a retry is a new delivery id");
    cr_assert_eq(first.len, second.len);
    cr_assert_eq(memcmp(first.body, second.body, first.len), 0, "a retry changed the body");
    cJSON_Delete(check_post(&second, "notice"));
    usleep(300000);
    cr_assert_eq(pushsink_count(sink, HOOK), 2, "an accepted delivery went again");

    /* The receiver holds the next delivery unanswered while the server is killed: it was never
     * acknowledged, so it goes again after the restart, as the same delivery. */
    pushsink_delay(sink, 2000);
    post_notice("[\"user:shiro\"]", "避難指示", true, false);
    struct push_post third, fourth;
    cr_assert(pushsink_wait(sink, HOOK, 2, 15000, &third));
    kzd_kill(&d);
    pushsink_delay(sink, 0);
    ws_close_fd(&admin);
    kzd_start(&d);
    cr_assert(ws_open(&admin, d.port));
    cr_assert(ws_login(&admin, "admin", TEST_ADMIN_PASSWORD, NULL));
    cr_assert(pushsink_wait(sink, HOOK, 3, 15000, &fourth), "the delivery was lost in the crash");
    cr_assert(push_post_header(&third, "Kizuna-Delivery", d1, sizeof d1));
    cr_assert(push_post_header(&fourth, "Kizuna-Delivery", d2, sizeof d2));
    cr_assert_str_eq(d1, d2);
    cJSON *b = check_post(&fourth, "notice");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "notice"), "title")->valuestring,
                     "避難指示");
    cJSON_Delete(b);

    /* A refusal (400) is final: kept as failed, shown to admins, counted. */
    pushsink_status(sink, HOOK, 400, false);
    long long id = post_notice("[\"user:shiro\"]", "停電情報", true, true);
    cr_assert(pushsink_wait(sink, HOOK, 4, 15000, NULL));
    long long deadline = mono_ms() + 10000;
    cJSON *r = NULL;
    for (;;) {
        r = ws_callf(&admin, "\"op\":\"webhook.status\"");
        cr_assert_str_eq(reply_code(r), "ok");
        if (cJSON_GetObjectItem(r, "failed_total")->valuedouble == 1 || mono_ms() > deadline)
            break;
        cJSON_Delete(r);
        usleep(20000);
    }
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "enabled")));
    cr_assert_eq(cJSON_GetObjectItem(r, "failed_total")->valuedouble, 1);
    cr_assert_eq(cJSON_GetObjectItem(r, "pending")->valuedouble, 0);
    char origin[64];
    snprintf(origin, sizeof origin, "http://127.0.0.1:%d", pushsink_port(sink));
    cr_assert_str_eq(cJSON_GetObjectItem(r, "origin")->valuestring, origin);
    const cJSON *f = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "failed"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(f, "kind")->valuestring, "rollcall");
    cr_assert_eq(cJSON_GetObjectItem(f, "notice")->valuedouble, id);
    cr_assert_eq(cJSON_GetObjectItem(f, "tries")->valuedouble, 1);
    cr_assert_str_eq(cJSON_GetObjectItem(f, "error")->valuestring, "HTTP 400");
    cJSON_Delete(r);
    usleep(300000);
    cr_assert_eq(pushsink_count(sink, HOOK), 5, "a refused delivery was retried");
    /* kizuna admin webhook shows it the same way, the URL's token left out. */
    char out[8192];
    cr_assert_eq(kizuna(out, sizeof out, "login", "admin", (const char *)NULL), 0, "%s", out);
    cr_assert_eq(kizuna(out, sizeof out, "admin", "webhook", (const char *)NULL), 0, "%s", out);
    cr_assert(strstr(out, origin) && strstr(out, "0 waiting, 1 failed"), "%s", out);
    cr_assert(strstr(out, "FAILED") && strstr(out, "rollcall") && strstr(out, "HTTP 400"), "%s",
              out);
    cr_assert_null(strstr(out, "chat-service-token"), "%s", out);
    static char m[1 << 18];
    cr_assert_eq(http_request(d.port, "GET", "/metrics", NULL, NULL, m, sizeof m), 200);
    cr_assert_eq(metric_value(m, "kizuna_webhook_sends_total{result=\"failed\"}"), 1, "%s", m);
    cr_assert_eq(metric_value(m, "kizuna_webhook_sends_total{result=\"sent\"}"), 1);
}

/* Runs kizunad check-config on a file holding text; its output into out, its exit status. */
static int check_config(const char *text, char *out, size_t n)
{
    char dir[] = "/tmp/kz-webhook-XXXXXX", path[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/kizuna.json", dir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    const char *argv[] = {KIZUNAD_PATH, "check-config", path, NULL};
    int rc = run_capture(argv, NULL, NULL, out, n);
    unlink(path);
    rmdir(dir);
    return rc;
}

Test(webhook, check_config_names_bad_settings_and_never_shows_the_secret)
{
    char out[8192];
    int rc = check_config("{\"webhook_url\":\"ftp://radio.example/x?token=T0KEN\","
                          "\"webhook_kinds\":\"rollcall earthquake\"}",
                          out, sizeof out);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "webhook_url: not an http:// or https:// URL"), "%s", out);
    cr_assert(strstr(out, "\"earthquake\" is not a kind"), "%s", out);
    cr_assert(strstr(out, "needs one of webhook_secret and webhook_secret_file"), "%s", out);
    cr_assert_null(strstr(out, "T0KEN"), "the URL's token was shown: %s", out);
    rc = check_config("{\"webhook_url\":\"https://radio.example/x\",\"webhook_secret\":\"short-"
                      "secret\"}",
                      out, sizeof out);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "webhook_secret"), "%s", out);
    cr_assert_null(strstr(out, "short-secret"), "the secret was shown: %s", out);
    rc = check_config("{\"webhook_url\":\"https://radio.example/x\",\"webhook_secret_file\":"
                      "\"/nonexistent/kizuna-webhook.key\"}",
                      out, sizeof out);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "webhook_secret_file"), "%s", out);
    rc = check_config("{\"webhook_url\":\"https://radio.example/x\",\"webhook_secret\":\"" SECRET
                      "\",\"webhook_recipients\":true}",
                      out, sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
}

Test(webhook, one_sender_thread_keeps_its_connection_to_the_receiver)
{
    /* A receiver that keeps connections alive and one webhook thread: three urgent notices are
     * three signed deliveries over one connection (before, each opened its own). */
    start("\"webhook_concurrency\":1");
    pushsink_keepalive(sink, true);
    add_user("shiro", "090-7777-8888");
    for (int i = 0; i < 3; i++)
        post_notice("[\"user:shiro\"]", "避難所開設", true, false);
    struct push_post p;
    for (int i = 0; i < 3; i++) {
        cr_assert(pushsink_wait(sink, HOOK, i, 15000, &p), "delivery %d never came", i);
        cJSON_Delete(check_post(&p, "notice"));
    }
    cr_assert_eq(pushsink_connections(sink), 1, "3 deliveries took %d connections",
                 pushsink_connections(sink));
}
