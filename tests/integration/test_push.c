/* test_push.c - Web Push against the real kizunad, with the push service played by the test
 * (support/pushsink.c): an urgent roll-call reaches a subscribed browser encrypted for its keys
 * and signed with the server's VAPID key; a push service's 410 removes the subscription; a 503
 * is retried; a send queued before a crash leaves after the restart; someone who read the notice
 * on another device meanwhile, or logged out, gets nothing; hostile subscriptions change
 * nothing; a sender thread's posts to one service share one kept-alive connection. */
#include <criterion/criterion.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "media.h"
#include "pushsink.h"

#define PW      "password-1234"
#define SUBJECT "mailto:bousai@example.lg.jp"

static struct kzd d;
static struct ws admin;
static struct pushsink *sink;

static void add_user(const char *login)
{
    cJSON *r = ws_callf(&admin,
                        "\"op\":\"user.add\",\"login\":\"%s\",\"password\":\"%s\","
                        "\"department\":\"総務課\",\"role\":\"staff\"",
                        login, PW);
    cr_assert_str_eq(reply_code(r), "ok", "user.add %s", login);
    cJSON_Delete(r);
}

static void setup(void)
{
    cr_assert(sodium_init() >= 0);
    sink = pushsink_start();
    kzd_setup_with(&d,
                   "\"push_subject\":\"" SUBJECT "\",\"push_allow_private_endpoints\":true,"
                   "\"push_coalesce_ms\":1000,\"push_retry_base_ms\":100,\"push_timeout_ms\":3000,"
                   "\"time_zone\":\"UTC\"");
    cr_assert(ws_open(&admin, d.port));
    cr_assert(ws_login(&admin, "admin", TEST_ADMIN_PASSWORD, NULL));
}

static void teardown(void)
{
    ws_close_fd(&admin);
    kzd_teardown(&d);
    pushsink_stop(sink);
}

TestSuite(push, .init = setup, .fini = teardown, .timeout = 120);

/* Logs login in on w and subscribes an endpoint on the stand-in at path with fresh keys. */
static void subscribe(struct ws *w, const char *login, const char *path, struct push_keys *k)
{
    add_user(login);
    cr_assert(ws_open(w, d.port));
    cr_assert(ws_login(w, login, PW, NULL), "login %s", login);
    push_keys_new(k);
    cJSON *r = ws_callf(w,
                        "\"op\":\"push.subscribe\",\"endpoint\":\"http://127.0.0.1:%d%s\","
                        "\"p256dh\":\"%s\",\"auth\":\"%s\"",
                        pushsink_port(sink), path, k->pub64, k->auth64);
    cr_assert_str_eq(reply_code(r), "ok", "push.subscribe %s", login);
    cJSON_Delete(r);
}

/* The direct room of w's user with login (made if new); its id in room. */
static void direct_room(struct ws *w, const char *login, char *room, size_t n)
{
    cJSON *r = ws_callf(w, "\"op\":\"room.direct\",\"user\":\"%s\"", login);
    cr_assert_str_eq(reply_code(r), "ok", "room.direct %s", login);
    reply_room(r, room, n);
    cJSON_Delete(r);
}

static long long post_urgent(const char *to_json, const char *title, bool rollcall)
{
    cJSON *r = ws_callf(&admin,
                        "\"op\":\"notice.post\",\"title\":\"%s\",\"body\":\"KZSECRETBODY "
                        "本文は送られない\",\"to\":%s,\"priority\":\"urgent\"%s",
                        title, to_json,
                        rollcall ? ",\"choices\":[\"無事・出勤可\",\"無事・出勤不可\"]" : "");
    cr_assert_str_eq(reply_code(r), "ok", "notice.post");
    long long id =
        (long long)cJSON_GetObjectItem(cJSON_GetObjectItem(r, "notice"), "id")->valuedouble;
    cJSON_Delete(r);
    return id;
}

static void vapid_key(char *out, size_t n)
{
    cJSON *r = ws_callf(&admin, "\"op\":\"push.vapid_key\"");
    cr_assert_str_eq(reply_code(r), "ok");
    snprintf(out, n, "%s", cJSON_GetObjectItem(r, "key")->valuestring);
    cJSON_Delete(r);
}

/* Subscriptions in the database whose endpoint ends with path. */
static int subs_with(const char *path)
{
    char db_path[512];
    snprintf(db_path, sizeof db_path, "%s/kizuna.db", d.dir);
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int n = -1;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT count(*) FROM push_subs WHERE endpoint LIKE '%' || ?", -1,
                           &s, NULL) == SQLITE_OK) {
        sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC);
        if (sqlite3_step(s) == SQLITE_ROW)
            n = sqlite3_column_int(s, 0);
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

/* Decrypts a post for k and checks its headers and VAPID signature; the payload in out. */
static void check_post(const struct push_post *p, const struct push_keys *k, const char *ttl,
                       const char *urgency, char *out, size_t n)
{
    char key[100], aud[64], err[300];
    vapid_key(key, sizeof key);
    snprintf(aud, sizeof aud, "http://127.0.0.1:%d", pushsink_port(sink));
    cr_assert(push_vapid_check(p->authorization, key, aud, SUBJECT, err, sizeof err), "%s", err);
    cr_assert_str_eq(p->encoding, "aes128gcm");
    cr_assert_str_eq(p->ttl, ttl);
    cr_assert_str_eq(p->urgency, urgency);
    cr_assert(push_decrypt(k, p->body, p->len, out, n), "the push does not decrypt (%zu bytes)",
              p->len);
}

Test(push, rollcall_reaches_a_closed_browser_and_410_removes_the_subscription)
{
    struct ws alice, bob;
    struct push_keys ka, kb;
    subscribe(&alice, "alice", "/p/alice", &ka);
    subscribe(&bob, "bob", "/p/gone", &kb);
    pushsink_status(sink, "/p/gone", 410, false);
    ws_close_fd(&alice); /* her browser is closed: only the push reaches her */
    long long id = post_urgent("[\"user:alice\",\"user:bob\"]", "安否確認（地震）", true);
    struct push_post p;
    cr_assert(pushsink_wait(sink, "/p/alice", 0, 15000, &p), "no push reached alice");
    char plain[1024];
    check_post(&p, &ka, "86400", "high", plain, sizeof plain);
    cJSON *j = cJSON_Parse(plain);
    cr_assert_not_null(j, "payload is not JSON: %s", plain);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "kind")->valuestring, "rollcall");
    cr_assert_eq((long long)cJSON_GetObjectItem(j, "notice")->valuedouble, id);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "title")->valuestring, "安否確認（地震）");
    cr_assert_null(strstr(plain, "KZSECRETBODY"), "the body left the server: %s", plain);
    cJSON_Delete(j);
    /* The report counts alice as reached by push (bob's 410 does not count). */
    long long until = mono_ms() + 10000;
    double pushed = 0;
    while (pushed < 1 && mono_ms() < until) {
        cJSON *rep = ws_callf(&admin, "\"op\":\"notice.report\",\"notice\":%lld", id);
        pushed = cJSON_GetObjectItem(cJSON_GetObjectItem(rep, "reach"), "push")->valuedouble;
        cJSON_Delete(rep);
        if (pushed < 1)
            usleep(20000);
    }
    cr_assert_eq(pushed, 1);
    /* Not in the clear on the wire either. */
    cr_assert_null(memmem(p.body, p.len, "安否", strlen("安否")));

    /* bob's push service says his subscription is gone: it is removed. */
    cr_assert(pushsink_wait(sink, "/p/gone", 0, 15000, NULL), "no push reached bob's endpoint");
    long long deadline = mono_ms() + 10000;
    while (subs_with("/p/gone") != 0 && mono_ms() < deadline)
        usleep(20000);
    cr_assert_eq(subs_with("/p/gone"), 0, "the 410 subscription is still there");
    cJSON *r =
        ws_callf(&bob, "\"op\":\"push.unsubscribe\",\"endpoint\":\"http://127.0.0.1:%d/p/gone\"",
                 pushsink_port(sink));
    cr_assert_str_eq(reply_code(r), "not_found");
    cJSON_Delete(r);
    /* The next roll-call goes to alice again and never to the removed endpoint. */
    post_urgent("[\"user:alice\",\"user:bob\"]", "二回目", true);
    cr_assert(pushsink_wait(sink, "/p/alice", 1, 15000, NULL));
    usleep(300000);
    cr_assert_eq(pushsink_count(sink, "/p/gone"), 1);
    /* alice's own subscription stays through all of it. */
    cr_assert_eq(subs_with("/p/alice"), 1);
    ws_close_fd(&bob);
    /* GET /metrics counts them: the sends accepted, the one gone, their delivery times. */
    static char m[1 << 18];
    cr_assert_eq(http_request(d.port, "GET", "/metrics", NULL, NULL, m, sizeof m), 200);
    double sent = metric_value(m, "kizuna_push_sends_total{result=\"sent\"}");
    cr_assert_geq(sent, 2, "%s", m);
    cr_assert_eq(metric_value(m, "kizuna_push_sends_total{result=\"gone\"}"), 1);
    cr_assert_geq(metric_value(m, "kizuna_push_delivery_seconds_count"), sent);
}

Test(push, a_failed_post_is_retried_and_a_crash_loses_no_send)
{
    struct ws carol;
    struct push_keys kc;
    subscribe(&carol, "carol", "/p/flaky", &kc);
    pushsink_status(sink, "/p/flaky", 503, true);
    post_urgent("[\"user:carol\"]", "避難所開設", false);
    struct push_post first, second;
    cr_assert(pushsink_wait(sink, "/p/flaky", 0, 15000, &first));
    cr_assert(pushsink_wait(sink, "/p/flaky", 1, 15000, &second), "the 503 was not retried");
    cr_assert_geq(second.at_ms - first.at_ms, 90, "retried before push_retry_base_ms");
    char plain[1024];
    check_post(&second, &kc, "86400", "high", plain, sizeof plain);
    cr_assert(strstr(plain, "\"kind\":\"notice\""), "%s", plain);
    cr_assert(strstr(plain, "避難所開設"), "%s", plain);
    usleep(300000);
    cr_assert_eq(pushsink_count(sink, "/p/flaky"), 2, "an accepted push was sent again");

    /* Queued (the post answered, so it is on disk), then the server dies before it leaves
     * (push_coalesce_ms holds it a second): it goes after the restart. */
    ws_close_fd(&carol);
    post_urgent("[\"user:carol\"]", "給水車の到着", false);
    kzd_kill(&d);
    cr_assert_eq(pushsink_count(sink, "/p/flaky"), 2);
    ws_close_fd(&admin);
    kzd_start(&d);
    cr_assert(ws_open(&admin, d.port));
    cr_assert(ws_login(&admin, "admin", TEST_ADMIN_PASSWORD, NULL));
    struct push_post third;
    cr_assert(pushsink_wait(sink, "/p/flaky", 2, 15000, &third), "the send was lost in the crash");
    check_post(&third, &kc, "86400", "high", plain, sizeof plain);
    cr_assert(strstr(plain, "給水車の到着"), "%s", plain);
}

Test(push, read_elsewhere_or_logged_out_gets_nothing_and_hostile_subscriptions_are_refused)
{
    struct ws dave, erin, frank;
    struct push_keys kd, ke, kf;
    subscribe(&dave, "dave", "/p/dave", &kd);
    subscribe(&erin, "erin", "/p/erin", &ke);
    subscribe(&frank, "frank", "/p/frank", &kf);
    cJSON *r = ws_callf(&frank, "\"op\":\"logout\"");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    /* gen's account is disabled by an admin; hana's phone is lost and its session revoked. */
    struct ws gen, hana;
    struct push_keys kg, kh;
    subscribe(&gen, "gen", "/p/gen", &kg);
    subscribe(&hana, "hana", "/p/hana", &kh);
    r = ws_callf(&hana, "\"op\":\"whoami\"");
    cr_assert_str_eq(reply_code(r), "ok");
    const cJSON *ses = cJSON_GetObjectItem(r, "session");
    long long hana_session =
        (long long)(cJSON_IsObject(ses) ? cJSON_GetObjectItem(ses, "id") : ses)->valuedouble;
    cJSON_Delete(r);
    long long id =
        post_urgent("[\"user:dave\",\"user:erin\",\"user:frank\",\"user:gen\",\"user:hana\"]",
                    "庁舎停電", false);
    /* Queued for gen and hana; within push_coalesce_ms gen's account is disabled and hana's
     * session revoked (a lost phone): what waits for them is cut at once. */
    r = ws_callf(&admin, "\"op\":\"user.disable\",\"login\":\"gen\"");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    r = ws_callf(&admin, "\"op\":\"session.revoke\",\"session\":%lld", hana_session);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    /* dave reads it on his other device within push_coalesce_ms. */
    r = ws_callf(&dave, "\"op\":\"notice.show\",\"notice\":%lld", id);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    cr_assert(pushsink_wait(sink, "/p/erin", 0, 15000, NULL), "erin got no push");
    usleep(500000);
    cr_assert_eq(pushsink_count(sink, "/p/dave"), 0, "pushed to someone who had read it");
    cr_assert_eq(pushsink_count(sink, "/p/frank"), 0, "pushed to a logged-out session");
    cr_assert_eq(pushsink_count(sink, "/p/hana"), 0, "pushed to a revoked session");
    cr_assert_eq(pushsink_count(sink, "/p/gen"), 0, "pushed to a disabled account");
    ws_close_fd(&gen);
    ws_close_fd(&hana);

    /* Hostile subscriptions: refused, nothing stored. */
    const char *bad[] = {
        "\"endpoint\":\"ftp://127.0.0.1/x\",\"p256dh\":\"%s\",\"auth\":\"%s\"",
        "\"endpoint\":\"http://user:pw@127.0.0.1/x\",\"p256dh\":\"%s\",\"auth\":\"%s\"",
        "\"endpoint\":\"http://127.0.0.1/a\\r\\nX: y\",\"p256dh\":\"%s\",\"auth\":\"%s\"",
        "\"endpoint\":\"http://127.0.0.1/k\",\"p256dh\":\"%.40s\",\"auth\":\"%s\"",
        "\"endpoint\":\"http://127.0.0.1/k\",\"p256dh\":\"%s\",\"auth\":\"%.10s\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char fields[600];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        snprintf(fields, sizeof fields, bad[i], ke.pub64, ke.auth64);
#pragma GCC diagnostic pop
        r = ws_callf(&erin, "\"op\":\"push.subscribe\",%s", fields);
        cr_assert_str_eq(reply_code(r), "bad_request", "%s", fields);
        cJSON_Delete(r);
    }
    /* A point off the curve. */
    uint8_t off[65];
    memcpy(off, ke.pub, 65);
    off[64] ^= 1;
    char off64[100];
    sodium_bin2base64(off64, sizeof off64, off, 65, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    r = ws_callf(&erin,
                 "\"op\":\"push.subscribe\",\"endpoint\":\"http://127.0.0.1/k\",\"p256dh\":\"%s\","
                 "\"auth\":\"%s\"",
                 off64, ke.auth64);
    cr_assert_str_eq(reply_code(r), "bad_request");
    cJSON_Delete(r);
    char *longurl = malloc(2200);
    memset(longurl, 'a', 2199);
    longurl[2199] = '\0';
    memcpy(longurl, "http://h/", 9);
    r = ws_callf(&erin,
                 "\"op\":\"push.subscribe\",\"endpoint\":\"%s\",\"p256dh\":\"%s\",\"auth\":\"%s\"",
                 longurl, ke.pub64, ke.auth64);
    cr_assert_str_eq(reply_code(r), "too_large");
    cJSON_Delete(r);
    free(longurl);
    cr_assert_eq(subs_with("/k"), 0);
    cr_assert_eq(subs_with("/x"), 0);
    ws_close_fd(&dave);
    ws_close_fd(&erin);
    ws_close_fd(&frank);
}

Test(push, a_direct_message_wakes_the_other_person_unless_they_read_it_first)
{
    struct ws gina, hiro;
    struct push_keys kg, kh;
    subscribe(&gina, "gina", "/p/gina", &kg);
    subscribe(&hiro, "hiro", "/p/hiro", &kh);
    char room[64];
    direct_room(&gina, "hiro", room, sizeof room);
    cJSON *r = NULL;
    r = ws_callf(&gina, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"KZSECRETMSG 至急連絡を\"",
                 room);
    cr_assert_str_eq(reply_code(r), "ok");
    long long pos = (long long)cJSON_GetObjectItem(r, "pos")->valuedouble;
    cJSON_Delete(r);
    struct push_post p;
    cr_assert(pushsink_wait(sink, "/p/hiro", 0, 15000, &p), "hiro got no push");
    char plain[1024];
    check_post(&p, &kh, "3600", "normal", plain, sizeof plain);
    cJSON *j = cJSON_Parse(plain);
    cr_assert_not_null(j, "%s", plain);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "kind")->valuestring, "direct");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "room")->valuestring, room);
    cr_assert_eq((long long)cJSON_GetObjectItem(j, "pos")->valuedouble, pos);
    cr_assert_null(strstr(plain, "KZSECRETMSG"), "the message left the server: %s", plain);
    cJSON_Delete(j);
    /* The sender is not pushed about her own message. */
    cr_assert_eq(pushsink_count(sink, "/p/gina"), 0);

    /* hiro reads the next one on his open device within push_coalesce_ms: no push. */
    r = ws_callf(&gina, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"二通目\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    r = ws_callf(&hiro, "\"op\":\"read\",\"room\":\"%s\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    /* A third, unread, is the control: once it arrives, the second's turn has passed. */
    usleep(200000);
    r = ws_callf(&gina, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"三通目\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    long long pos3 = (long long)cJSON_GetObjectItem(r, "pos")->valuedouble;
    cJSON_Delete(r);
    cr_assert(pushsink_wait(sink, "/p/hiro", 1, 15000, &p));
    check_post(&p, &kh, "3600", "normal", plain, sizeof plain);
    char want[64];
    snprintf(want, sizeof want, "\"pos\":%lld", pos3);
    cr_assert(strstr(plain, want), "the second push is not the unread third message: %s", plain);
    usleep(300000);
    cr_assert_eq(pushsink_count(sink, "/p/hiro"), 2);
    ws_close_fd(&gina);
    ws_close_fd(&hiro);
}

Test(push, a_flood_of_pushes_to_a_slow_service_never_stalls_talk)
{
    /* 40 subscriptions (20 each for two people), 5 urgent notices: 200 posts to a push service
     * that takes 300 ms to answer each, one at a time. Meanwhile a room's talk goes on; every
     * message's round trip is measured. */
    struct ws kumi, taro;
    struct push_keys k;
    subscribe(&kumi, "kumi", "/f/kumi/0", &k);
    subscribe(&taro, "taro", "/f/taro/0", &k);
    for (int i = 1; i < 20; i++) {
        cJSON *r =
            ws_callf(&kumi,
                     "\"op\":\"push.subscribe\",\"endpoint\":\"http://127.0.0.1:%d/f/kumi/%d\","
                     "\"p256dh\":\"%s\",\"auth\":\"%s\"",
                     pushsink_port(sink), i, k.pub64, k.auth64);
        cr_assert_str_eq(reply_code(r), "ok");
        cJSON_Delete(r);
        r = ws_callf(&taro,
                     "\"op\":\"push.subscribe\",\"endpoint\":\"http://127.0.0.1:%d/f/taro/%d\","
                     "\"p256dh\":\"%s\",\"auth\":\"%s\"",
                     pushsink_port(sink), i, k.pub64, k.auth64);
        cr_assert_str_eq(reply_code(r), "ok");
        cJSON_Delete(r);
    }
    /* One more than push_subs_per_user_max (20) is refused. */
    cJSON *r = ws_callf(&kumi,
                        "\"op\":\"push.subscribe\",\"endpoint\":\"http://127.0.0.1:%d/f/kumi/x\","
                        "\"p256dh\":\"%s\",\"auth\":\"%s\"",
                        pushsink_port(sink), k.pub64, k.auth64);
    cr_assert_str_eq(reply_code(r), "conflict");
    cJSON_Delete(r);
    pushsink_delay(sink, 300);
    char room[64];
    direct_room(&kumi, "taro", room, sizeof room);
    for (int i = 0; i < 5; i++)
        post_urgent("[\"user:kumi\",\"user:taro\"]", "洪水警報", false);
    cr_assert(pushsink_wait(sink, "/f/kumi/0", 0, 15000, NULL) ||
                  pushsink_wait(sink, "/f/taro/0", 0, 100, NULL) || pushsink_count(sink, NULL) > 0,
              "the flood never started");
    long long worst = 0, total = 0;
    for (int i = 0; i < 40; i++) {
        long long t0 = mono_ms();
        r = ws_callf(&kumi, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"状況報告 %d\"", room,
                     i);
        long long dt = mono_ms() - t0;
        cr_assert_str_eq(reply_code(r), "ok");
        cJSON_Delete(r);
        total += dt;
        if (dt > worst)
            worst = dt;
    }
    int done = pushsink_count(sink, NULL);
    fprintf(stderr,
            "talk during a push flood: 40 messages, mean %lld ms, worst %lld ms; %d of 200+ "
            "posts answered meanwhile\n",
            total / 40, worst, done);
    cr_assert_lt(done, 200, "the flood was over before talk was measured");
    /* A blocked loop would wait 300 ms per post; talk must not see that. */
    cr_assert_lt(worst, 250, "a message waited %lld ms during the flood", worst);
    pushsink_delay(sink, 0);
    ws_close_fd(&kumi);
    ws_close_fd(&taro);
}

/* One sender thread and a push service that keeps connections alive: what the next test needs
 * to count connections exactly. */
static void setup_one_sender(void)
{
    cr_assert(sodium_init() >= 0);
    sink = pushsink_start();
    pushsink_keepalive(sink, true);
    kzd_setup_with(&d, "\"push_subject\":\"" SUBJECT "\",\"push_allow_private_endpoints\":true,"
                       "\"push_coalesce_ms\":100,\"push_concurrency\":1,\"push_timeout_ms\":3000,"
                       "\"time_zone\":\"UTC\"");
    cr_assert(ws_open(&admin, d.port));
    cr_assert(ws_login(&admin, "admin", TEST_ADMIN_PASSWORD, NULL));
}

Test(push_reuse, a_sender_thread_posts_many_pushes_over_one_connection, .init = setup_one_sender,
     .fini = teardown, .timeout = 120)
{
    /* Eight pushes (two subscriptions, four notices) from the one sender thread to a service
     * that keeps its connections alive: one TCP connection carries them all, each post still
     * decrypts and carries a valid VAPID header (signed once for the service's origin, handed
     * out again). Before, every post opened a connection of its own. */
    struct ws kumi;
    struct push_keys k;
    subscribe(&kumi, "kumi", "/r/kumi/0", &k);
    cJSON *r = ws_callf(&kumi,
                        "\"op\":\"push.subscribe\",\"endpoint\":\"http://127.0.0.1:%d/r/kumi/1\","
                        "\"p256dh\":\"%s\",\"auth\":\"%s\"",
                        pushsink_port(sink), k.pub64, k.auth64);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    ws_close_fd(&kumi);
    for (int i = 0; i < 4; i++)
        post_urgent("[\"user:kumi\"]", "避難指示", false);
    struct push_post post;
    char plain[2048];
    for (int n = 0; n < 4; n++)
        for (int e = 0; e < 2; e++) {
            char path[32];
            snprintf(path, sizeof path, "/r/kumi/%d", e);
            cr_assert(pushsink_wait(sink, path, n, 15000, &post), "push %d to %s never came", n,
                      path);
            check_post(&post, &k, "86400", "high", plain, sizeof plain);
        }
    cr_assert_eq(pushsink_count(sink, NULL), 8);
    cr_assert_eq(pushsink_connections(sink), 1, "8 pushes took %d connections",
                 pushsink_connections(sink));
    char first[sizeof post.authorization];
    cr_assert(pushsink_wait(sink, "/r/kumi/0", 0, 100, &post));
    snprintf(first, sizeof first, "%s", post.authorization);
    cr_assert(pushsink_wait(sink, "/r/kumi/1", 3, 100, &post));
    cr_assert_str_eq(post.authorization, first, "the VAPID header was signed again");
}

/* Rows waiting in the push outbox of kind, and the earliest next_at among them (ms). */
static int waiting(const char *kind, long long *next_at)
{
    char db_path[512];
    snprintf(db_path, sizeof db_path, "%s/kizuna.db", d.dir);
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int n = -1;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db,
                           "SELECT count(*), coalesce(min(next_at), 0) FROM push_outbox"
                           " WHERE kind = ?",
                           -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_text(s, 1, kind, -1, SQLITE_STATIC);
        if (sqlite3_step(s) == SQLITE_ROW) {
            n = sqlite3_column_int(s, 0);
            *next_at = sqlite3_column_int64(s, 1);
        }
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

Test(push, quiet_hours_hold_a_direct_message_but_not_an_urgent_notice)
{
    struct ws ken, lisa;
    struct push_keys kk, kl;
    subscribe(&ken, "ken", "/p/ken", &kk);
    subscribe(&lisa, "lisa", "/p/lisa", &kl);
    const char *bad[] = {"\"from\":\"25:00\",\"to\":\"06:00\"", "\"from\":\"22:00\"",
                         "\"from\":\"7:00\",\"to\":\"08:00\"",
                         "\"from\":\"08:00\",\"to\":\"08:00\"",
                         "\"from\":\"22:00\",\"to\":\"06:00\",\"off\":true"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *r = ws_callf(&ken, "\"op\":\"push.quiet\",%s", bad[i]);
        cr_assert_str_eq(reply_code(r), "bad_request", "%s", bad[i]);
        cJSON_Delete(r);
    }
    /* Quiet from an hour ago to an hour from now (the server's time_zone is UTC here). */
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    int m = tm.tm_hour * 60 + tm.tm_min, a = (m + 1440 - 60) % 1440, b = (m + 60) % 1440;
    cJSON *r = ws_callf(&ken, "\"op\":\"push.quiet\",\"from\":\"%02d:%02d\",\"to\":\"%02d:%02d\"",
                        a / 60, a % 60, b / 60, b % 60);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    char room[64];
    direct_room(&lisa, "ken", room, sizeof room);
    r = ws_callf(&lisa, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"明日の予定\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    post_urgent("[\"user:ken\"]", "避難指示", false);
    struct push_post p;
    cr_assert(pushsink_wait(sink, "/p/ken", 0, 15000, &p), "the urgent notice was held too");
    char plain[1024];
    check_post(&p, &kk, "86400", "high", plain, sizeof plain);
    cr_assert(strstr(plain, "避難指示"), "%s", plain);
    usleep(500000);
    cr_assert_eq(pushsink_count(sink, "/p/ken"), 1, "the direct message was pushed in quiet hours");
    /* Held, not dropped: it waits for the end of the quiet hours. */
    long long next_at = 0;
    cr_assert_eq(waiting("direct", &next_at), 1);
    long long left_ms = next_at - (long long)now * 1000;
    cr_assert(left_ms > 50 * 60000 && left_ms <= 61 * 60000, "held until %lld ms from now",
              left_ms);
    r = ws_callf(&ken, "\"op\":\"push.quiet\",\"off\":true");
    cr_assert_str_eq(reply_code(r), "ok");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(r, "quiet")));
    cJSON_Delete(r);
    ws_close_fd(&ken);
    ws_close_fd(&lisa);
}

Test(push, each_person_chooses_what_is_pushed_and_urgent_kinds_cannot_be_silenced)
{
    struct ws mia, nao;
    struct push_keys km, kn;
    subscribe(&mia, "mia", "/p/mia", &km);
    subscribe(&nao, "nao", "/p/nao", &kn);
    /* Nothing changes on a refusal: a kind push does not offer, an unknown one, and both
     * channels off for urgent notices. */
    const char *bad[] = {"\"push\":[\"digest\"]", "\"push\":[\"notice\",\"weather\"]",
                         "\"email\":[\"direct\"]", "\"push\":[],\"email\":[\"rollcall\"]",
                         "\"push\":\"notice\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *r = ws_callf(&mia, "\"op\":\"notify.prefs\",%s", bad[i]);
        cr_assert_str_eq(reply_code(r), "bad_request", "%s", bad[i]);
        cJSON_Delete(r);
    }
    cJSON *r = ws_callf(&mia, "\"op\":\"notify.prefs\"");
    cr_assert_str_eq(reply_code(r), "ok");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "push")), 7, "defaults changed");
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "previews")));
    cJSON_Delete(r);
    /* mia wants only what is urgent by push, and the digest by e-mail. */
    r = ws_callf(&mia, "\"op\":\"notify.prefs\",\"push\":[\"notice\",\"rollcall\",\"hotline\"],"
                       "\"email\":[\"notice\",\"rollcall\",\"digest\"]");
    cr_assert_str_eq(reply_code(r), "ok");
    char *got = cJSON_PrintUnformatted(cJSON_GetObjectItem(r, "push"));
    cr_assert_str_eq(got, "[\"notice\",\"rollcall\",\"hotline\"]");
    free(got);
    got = cJSON_PrintUnformatted(cJSON_GetObjectItem(r, "email"));
    cr_assert_str_eq(got, "[\"notice\",\"rollcall\",\"digest\"]");
    free(got);
    cJSON_Delete(r);

    /* nao writes to mia directly: not queued for her at all. */
    char room[64];
    direct_room(&nao, "mia", room, sizeof room);
    r = ws_callf(&nao, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"資料を送ります\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    long long next_at = 0;
    cr_assert_eq(waiting("direct", &next_at), 0, "a direct push was queued for mia");
    /* The urgent notice still reaches her; it is the only push she gets. */
    post_urgent("[\"user:mia\"]", "給水所の開設", false);
    struct push_post p;
    cr_assert(pushsink_wait(sink, "/p/mia", 0, 15000, &p), "mia got no urgent push");
    char plain[1024];
    check_post(&p, &km, "86400", "high", plain, sizeof plain);
    cr_assert(strstr(plain, "給水所の開設"), "%s", plain);
    usleep(300000);
    cr_assert_eq(pushsink_count(sink, "/p/mia"), 1);
    /* nao kept the defaults: mia's reply wakes him. */
    r = ws_callf(&mia, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"受け取りました\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    cr_assert(pushsink_wait(sink, "/p/nao", 0, 15000, &p), "nao got no push");
    ws_close_fd(&mia);
    ws_close_fd(&nao);
}

/* A group room made by w's user with members (a JSON array of logins); its id in room. */
static void group_room(struct ws *w, const char *name, const char *members, char *room, size_t n)
{
    cJSON *r = ws_callf(w, "\"op\":\"room.create\",\"name\":\"%s\",\"members\":%s", name, members);
    cr_assert_str_eq(reply_code(r), "ok", "room.create");
    const cJSON *o = cJSON_GetObjectItem(r, "room");
    snprintf(room, n, "%s",
             cJSON_IsObject(o) ? cJSON_GetObjectItem(o, "room")->valuestring : o->valuestring);
    cJSON_Delete(r);
}

static void call_ok(struct ws *w, const char *what, const char *fmt, const char *room)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    cJSON *r = ws_callf(w, fmt, room);
#pragma GCC diagnostic pop
    cr_assert_str_eq(reply_code(r), "ok", "%s", what);
    cJSON_Delete(r);
}

/* The payload of path's post number i, decrypted for k and parsed (the caller deletes it). */
static cJSON *payload_of(const char *path, int i, const struct push_keys *k, char *plain, size_t n)
{
    struct push_post p;
    cr_assert(pushsink_wait(sink, path, i, 15000, &p), "no push %d reached %s", i, path);
    check_post(&p, k, "3600", "normal", plain, n);
    cJSON *j = cJSON_Parse(plain);
    cr_assert_not_null(j, "%s", plain);
    return j;
}

Test(push, a_mention_pushes_only_the_named_present_members_with_a_preview_if_they_chose_one)
{
    struct ws oki, pia, quin, rin, sam, tom;
    struct push_keys ko, kp, kq, kr, ks, kt;
    subscribe(&oki, "oki", "/m/oki", &ko);
    subscribe(&pia, "pia", "/m/pia", &kp);
    subscribe(&quin, "quin", "/m/quin", &kq);
    subscribe(&rin, "rin", "/m/rin", &kr);
    subscribe(&sam, "sam", "/m/sam", &ks);
    subscribe(&tom, "tom", "/m/tom", &kt); /* not in the room */
    char room[64];
    group_room(&oki, "現地班", "[\"pia\",\"quin\",\"rin\",\"sam\"]", room, sizeof room);
    call_ok(&rin, "rin leaves", "\"op\":\"room.leave\",\"room\":\"%s\"", room);
    /* sam allows previews; pia keeps the default (who and where only). */
    cJSON *r = ws_callf(&sam, "\"op\":\"notify.prefs\",\"previews\":true");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "previews")));
    cJSON_Delete(r);
    /* pia as @pia, sam in capitals after the full-width ＠ Japanese input gives; rin left the
     * room, tom was never in it, oki is the author; quin@example.jp is an address, not quin. */
    r = ws_callf(&oki,
                 "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"@pia ＠SAM 橋の状況を"
                 "確認してください KZPREVIEW。@rin @tom @oki quin@example.jp\"",
                 room);
    cr_assert_str_eq(reply_code(r), "ok");
    long long pos = (long long)cJSON_GetObjectItem(r, "pos")->valuedouble;
    cJSON_Delete(r);
    char plain[1024];
    cJSON *j = payload_of("/m/pia", 0, &kp, plain, sizeof plain);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "kind")->valuestring, "mention");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "room")->valuestring, room);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "title")->valuestring, "現地班");
    cr_assert_eq((long long)cJSON_GetObjectItem(j, "pos")->valuedouble, pos);
    cr_assert_null(cJSON_GetObjectItem(j, "text"), "a preview without previews: %s", plain);
    cr_assert_null(strstr(plain, "KZPREVIEW"), "the text left without previews: %s", plain);
    cJSON_Delete(j);
    j = payload_of("/m/sam", 0, &ks, plain, sizeof plain);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "kind")->valuestring, "mention");
    const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(j, "text"));
    cr_assert(text && strstr(text, "橋の状況を確認してください KZPREVIEW"), "%s", plain);
    cJSON_Delete(j);
    usleep(500000);
    cr_assert_eq(pushsink_count(sink, "/m/quin"), 0, "a member who was not named");
    cr_assert_eq(pushsink_count(sink, "/m/rin"), 0, "a member who left");
    cr_assert_eq(pushsink_count(sink, "/m/tom"), 0, "not a member");
    cr_assert_eq(pushsink_count(sink, "/m/oki"), 0, "the author");
    /* pia reads the next mention on her open device within push_coalesce_ms: none for it; the
     * one after, unread, is the control. */
    r = ws_callf(&oki, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"@pia 二回目\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    call_ok(&pia, "pia reads", "\"op\":\"read\",\"room\":\"%s\"", room);
    usleep(200000);
    r = ws_callf(&oki, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"@pia 三回目\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    long long pos3 = (long long)cJSON_GetObjectItem(r, "pos")->valuedouble;
    cJSON_Delete(r);
    j = payload_of("/m/pia", 1, &kp, plain, sizeof plain);
    cr_assert_eq((long long)cJSON_GetObjectItem(j, "pos")->valuedouble, pos3,
                 "pushed about a mention read meanwhile: %s", plain);
    cJSON_Delete(j);

    /* A hostile body: 2,000 mentions. Sent as written; past push_mentions_max (20) distinct
     * logins nobody is pushed, so pia, named 21st, gets nothing. A long preview is cut at a
     * character's start, within push_preview_bytes. */
    static char body[40000];
    size_t n = 0;
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(body + n, sizeof body - n, "@nobody%d ", i);
    n += (size_t)snprintf(body + n, sizeof body - n, "@pia ");
    for (int i = 0; i < 1979; i++)
        n += (size_t)snprintf(body + n, sizeof body - n, "@x%d", i % 7);
    r = ws_callf(&oki, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"%s\"", room, body);
    cr_assert_str_eq(reply_code(r), "ok", "the message itself is fine");
    cJSON_Delete(r);
    n = 0;
    for (int i = 0; i < 120; i++)
        n += (size_t)snprintf(body + n, sizeof body - n, "%s", "避");
    r = ws_callf(&oki, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"@sam %s\"", room, body);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    j = payload_of("/m/sam", 1, &ks, plain, sizeof plain);
    text = cJSON_GetStringValue(cJSON_GetObjectItem(j, "text"));
    cr_assert(text, "%s", plain);
    /* 200 bytes: "@sam " (5) and 65 whole characters of 3 bytes, none cut in half. */
    cr_assert_eq(strlen(text), 5 + 65 * 3, "%s", text);
    cJSON_Delete(j);
    usleep(500000);
    cr_assert_eq(pushsink_count(sink, "/m/pia"), 2, "the 21st mention pushed");
    ws_close_fd(&oki);
    ws_close_fd(&pia);
    ws_close_fd(&quin);
    ws_close_fd(&rin);
    ws_close_fd(&sam);
    ws_close_fd(&tom);
}

static void b64url(const uint8_t *bin, size_t n, char *out, size_t cap)
{
    sodium_bin2base64(out, cap, bin, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* Registers a new device for w's user login; its keys in k, its id in id. */
static void device_new(struct ws *w, const char *login, struct media_device_keys *k, char id[32])
{
    cr_assert_eq(media_device_keys_new(k), MEDIA_OK);
    uint8_t h[16], sig[64];
    crypto_generichash(h, sizeof h, k->sign_pk, 32, NULL, 0);
    b64url(h, sizeof h, id, 32);
    char qualified[200], spk[64], bpk[64], s[100];
    kzd_qualify(&d, login, qualified, sizeof qualified);
    cr_assert_eq(media_devkey_sign(qualified, id, k, sig), MEDIA_OK);
    b64url(k->sign_pk, 32, spk, sizeof spk);
    b64url(k->box_pk, 32, bpk, sizeof bpk);
    b64url(sig, 64, s, sizeof s);
    cJSON *r = ws_callf(
        w, "\"op\":\"device.register\",\"sign_pk\":\"%s\",\"box_pk\":\"%s\",\"sig\":\"%s\"", spk,
        bpk, s);
    cr_assert_str_eq(reply_code(r), "ok", "device.register");
    cJSON_Delete(r);
}

/* Posts an encrypted photo (its data only: no blob is needed for the push) into room. */
static void photo_post(struct ws *w, const char *room, const struct media_device_keys *k,
                       const char *id)
{
    static const char type[] = "e2ee.photo", data[] = "{\"epoch\":\"watch\"}";
    unsigned char msg[256], *p = msg;
    size_t n = strlen(room) + 1 + sizeof type + strlen(data);
    p = (unsigned char *)stpcpy((char *)p, room) + 1;
    p = (unsigned char *)stpcpy((char *)p, type) + 1;
    memcpy(p, data, strlen(data));
    uint8_t sig[64];
    cr_assert_eq(media_sign("kizuna/e2ee/v1", msg, n, k->sign_sk, sig), MEDIA_OK);
    char s[100];
    b64url(sig, 64, s, sizeof s);
    cJSON *r = ws_callf(w,
                        "\"op\":\"e2ee.post\",\"room\":\"%s\",\"type\":\"e2ee.photo\","
                        "\"device\":\"%s\",\"data\":\"{\\\"epoch\\\":\\\"watch\\\"}\","
                        "\"sig\":\"%s\"",
                        room, id, s);
    cr_assert_str_eq(reply_code(r), "ok", "e2ee.post");
    cJSON_Delete(r);
}

Test(push, a_watched_rooms_photos_push_its_watchers_only)
{
    struct ws field, hq, other;
    struct push_keys kf, kh, ko;
    subscribe(&field, "field", "/w/field", &kf);
    subscribe(&hq, "hq", "/w/hq", &kh);
    subscribe(&other, "other", "/w/other", &ko);
    char room[64];
    group_room(&field, "現地パトロール", "[\"hq\",\"other\"]", room, sizeof room);
    /* hq watches; the listing says so; other does not. A direct room cannot be watched. */
    cJSON *r = ws_callf(&hq, "\"op\":\"room.watch\",\"room\":\"%s\",\"watch\":true", room);
    cr_assert_str_eq(reply_code(r), "ok");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "watched")));
    cJSON_Delete(r);
    r = ws_callf(&hq, "\"op\":\"room.list\"");
    const cJSON *it;
    int seen = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(r, "rooms"))
    {
        if (strcmp(cJSON_GetObjectItem(it, "room")->valuestring, room) == 0) {
            cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(it, "watched")));
            seen++;
        }
    }
    cr_assert_eq(seen, 1);
    cJSON_Delete(r);
    r = ws_callf(&other, "\"op\":\"room.watch\",\"room\":\"%s\"", room);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "watched")));
    cJSON_Delete(r);
    char direct[64];
    direct_room(&field, "hq", direct, sizeof direct);
    r = ws_callf(&hq, "\"op\":\"room.watch\",\"room\":\"%s\",\"watch\":true", direct);
    cr_assert_str_eq(reply_code(r), "bad_request");
    cJSON_Delete(r);
    r = ws_callf(&hq, "\"op\":\"room.watch\",\"room\":\"nosuchroom\",\"watch\":true");
    cr_assert_str_eq(reply_code(r), "not_found");
    cJSON_Delete(r);

    struct media_device_keys dk;
    char dev[32];
    device_new(&field, "field", &dk, dev);
    photo_post(&field, room, &dk, dev);
    char plain[1024];
    cJSON *j = payload_of("/w/hq", 0, &kh, plain, sizeof plain);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "kind")->valuestring, "photo");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "room")->valuestring, room);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "title")->valuestring, "new photo");
    cr_assert_null(cJSON_GetObjectItem(j, "text"));
    cJSON_Delete(j);
    usleep(500000);
    cr_assert_eq(pushsink_count(sink, "/w/other"), 0, "pushed to a member who does not watch");
    cr_assert_eq(pushsink_count(sink, "/w/field"), 0, "pushed to the photo's sender");
    /* hq stops watching: the next photo pushes no one. */
    r = ws_callf(&hq, "\"op\":\"room.watch\",\"room\":\"%s\",\"watch\":false", room);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "watched")));
    cJSON_Delete(r);
    photo_post(&field, room, &dk, dev);
    usleep(1800000);
    cr_assert_eq(pushsink_count(sink, "/w/hq"), 1, "pushed after the watch ended");
    ws_close_fd(&field);
    ws_close_fd(&hq);
    ws_close_fd(&other);
}

Test(push, previews_carry_a_direct_messages_text_only_for_those_who_chose_them)
{
    struct ws uma, vic;
    struct push_keys ku, kv;
    subscribe(&uma, "uma", "/v/uma", &ku);
    subscribe(&vic, "vic", "/v/vic", &kv);
    cJSON *r = ws_callf(&vic, "\"op\":\"notify.prefs\",\"previews\":true");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    char room[64];
    direct_room(&uma, "vic", room, sizeof room);
    /* Quotes and a line break survive as JSON escapes. */
    r = ws_callf(&uma, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"給水車\\\"2台\\\"\\n到着\"",
                 room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    char plain[1024];
    cJSON *j = payload_of("/v/vic", 0, &kv, plain, sizeof plain);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "kind")->valuestring, "direct");
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(j, "text")), "給水車\"2台\"\n到着");
    cJSON_Delete(j);
    /* uma did not choose previews: vic's answer reaches her without its text. */
    r = ws_callf(&vic, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"KZNOPREVIEW 了解\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    j = payload_of("/v/uma", 0, &ku, plain, sizeof plain);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "kind")->valuestring, "direct");
    cr_assert_null(cJSON_GetObjectItem(j, "text"), "%s", plain);
    cr_assert_null(strstr(plain, "KZNOPREVIEW"), "%s", plain);
    cJSON_Delete(j);
    /* vic turns them off again: the next one is without text. */
    r = ws_callf(&vic, "\"op\":\"notify.prefs\",\"previews\":false");
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "previews")));
    cJSON_Delete(r);
    r = ws_callf(&uma, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"KZNOPREVIEW2\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    j = payload_of("/v/vic", 1, &kv, plain, sizeof plain);
    cr_assert_null(cJSON_GetObjectItem(j, "text"), "%s", plain);
    cJSON_Delete(j);
    ws_close_fd(&uma);
    ws_close_fd(&vic);
}

Test(push, a_reminder_reaches_only_those_who_have_not_answered)
{
    struct ws ume, kei, sho, rin;
    struct push_keys ku, kk, ks, kr;
    subscribe(&ume, "ume", "/p/ume", &ku);
    subscribe(&kei, "kei", "/p/kei", &kk);
    subscribe(&sho, "sho", "/p/sho", &ks);
    subscribe(&rin, "rin", "/p/rin", &kr);
    /* rin takes no reminders by push (she keeps them by e-mail). */
    cJSON *r = ws_callf(&rin, "\"op\":\"notify.prefs\",\"push\":[\"notice\",\"rollcall\"]");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    long long id =
        post_urgent("[\"user:ume\",\"user:kei\",\"user:sho\",\"user:rin\"]", "安否確認", true);
    const char *paths[] = {"/p/ume", "/p/kei", "/p/sho", "/p/rin"};
    for (int i = 0; i < 4; i++)
        cr_assert(pushsink_wait(sink, paths[i], 0, 15000, NULL), "no roll-call push to %s",
                  paths[i]);
    /* ume answers; kei only opens it: a reading is not the answer the roll-call asks for. */
    r = ws_callf(&ume, "\"op\":\"notice.respond\",\"notice\":%lld,\"choice\":\"無事・出勤可\"", id);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    r = ws_callf(&kei, "\"op\":\"notice.show\",\"notice\":%lld", id);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    r = ws_callf(&admin, "\"op\":\"notice.remind\",\"notice\":%lld", id);
    cr_assert_str_eq(reply_code(r), "ok");
    cr_assert_eq(cJSON_GetObjectItem(r, "reminded")->valuedouble, 3);
    cJSON_Delete(r);
    /* sho answers within push_coalesce_ms: the reminder waiting for him is dropped. */
    r = ws_callf(&sho, "\"op\":\"notice.respond\",\"notice\":%lld,\"choice\":\"無事・出勤不可\"",
                 id);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    /* A second reminder at once is refused: nobody's phone is flooded. */
    r = ws_callf(&admin, "\"op\":\"notice.remind\",\"notice\":%lld", id);
    cr_assert_str_eq(reply_code(r), "rate_limited");
    cr_assert(strstr(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "message")->valuestring,
                     "notice_remind_min_interval_s"));
    cJSON_Delete(r);

    struct push_post p;
    cr_assert(pushsink_wait(sink, "/p/kei", 1, 15000, &p),
              "kei, who only read it, got no reminder");
    char plain[1024];
    check_post(&p, &kk, "86400", "high", plain, sizeof plain);
    cJSON *j = cJSON_Parse(plain);
    cr_assert_not_null(j, "%s", plain);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "kind")->valuestring, "reminder");
    cr_assert_eq((long long)cJSON_GetObjectItem(j, "notice")->valuedouble, id);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "title")->valuestring, "安否確認");
    /* A roll-call's reminder answers from the notification, as the roll-call's push does: kei
     * taps the first button (sw.js posts the link). */
    const char *token = cJSON_GetStringValue(cJSON_GetObjectItem(j, "answer"));
    cr_assert(token && strlen(token) == 43, "no answer link in the reminder: %s", plain);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "choices")), 2, "%s", plain);
    char path[128], page[2048];
    snprintf(path, sizeof path, "/answer/%s?c=1", token);
    int st = http_request(d.port, "POST", path, NULL, "", page, sizeof page);
    cr_assert_eq(st, 200, "%d %s", st, page);
    cJSON_Delete(j);
    cr_assert_null(strstr(plain, "KZSECRETBODY"), "the body left the server: %s", plain);
    long long next_at = 0;
    long long deadline = mono_ms() + 10000;
    while (waiting("reminder", &next_at) != 0 && mono_ms() < deadline)
        usleep(20000);
    cr_assert_eq(waiting("reminder", &next_at), 0);
    usleep(300000);
    cr_assert_eq(pushsink_count(sink, "/p/ume"), 1, "ume had answered and was reminded");
    cr_assert_eq(pushsink_count(sink, "/p/sho"), 1, "sho answered meanwhile and was reminded");
    cr_assert_eq(pushsink_count(sink, "/p/rin"), 1, "rin turned reminders off and was pushed");
    cr_assert_eq(pushsink_count(sink, "/p/kei"), 2);
    ws_close_fd(&ume);
    ws_close_fd(&kei);
    ws_close_fd(&sho);
    ws_close_fd(&rin);
}
