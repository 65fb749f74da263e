/* test_fed_push.c - pushes for events from other servers (issue 24, item 3): in a hotline
 * room shared by two real kizunad (fednet.h), a first report and a mention typed on server A
 * push the members of server B who are not looking, through the push service stand-in
 * (support/pushsink.c), which decrypts each post with the subscription's keys and checks B's
 * VAPID signature. */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fednet.h"
#include "pushsink.h"

#define DEADLINE_MS 30000
#define SUBJECT     "mailto:bousai@example.lg.jp"

static struct fednet net;
static struct pushsink *sink;

static void teardown(void)
{
    fednet_stop(&net);
    if (sink)
        pushsink_stop(sink);
}

TestSuite(fed_push, .fini = teardown, .timeout = 180);

static const char *code(const cJSON *r)
{
    if (cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")))
        return "ok";
    return cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "code"));
}

/* Logs login in on server i over w and subscribes an endpoint at path with fresh keys. */
static void subscribe(struct ws *w, int i, const char *login, const char *path, struct push_keys *k)
{
    char pw[64];
    snprintf(pw, sizeof pw, "%.31s" TEST_PW_SUFFIX, login);
    cr_assert(ws_open(w, net.s[i].d.port));
    cr_assert(ws_login(w, login, pw, NULL), "login %s", login);
    push_keys_new(k);
    cJSON *r = ws_callf(w,
                        "\"op\":\"push.subscribe\",\"endpoint\":\"http://127.0.0.1:%d%s\","
                        "\"p256dh\":\"%s\",\"auth\":\"%s\"",
                        pushsink_port(sink), path, k->pub64, k->auth64);
    cr_assert_str_eq(code(r), "ok", "push.subscribe %s", login);
    cJSON_Delete(r);
}

/* The payload of path's post n, checked (B's VAPID signature, TTL, urgency) and decrypted. */
static cJSON *post_of(const char *path, int n, const struct push_keys *k, const char *ttl,
                      const char *urgency, char *plain, size_t cap)
{
    struct push_post p;
    cr_assert(pushsink_wait(sink, path, n, DEADLINE_MS, &p), "no push %d reached %s", n, path);
    cJSON *r = fednet_admin(&net, 1, "\"op\":\"push.vapid_key\"");
    cr_assert_str_eq(code(r), "ok");
    char aud[64], err[300];
    snprintf(aud, sizeof aud, "http://127.0.0.1:%d", pushsink_port(sink));
    cr_assert(push_vapid_check(p.authorization, cJSON_GetObjectItem(r, "key")->valuestring, aud,
                               SUBJECT, err, sizeof err),
              "%s", err);
    cJSON_Delete(r);
    cr_assert_str_eq(p.ttl, ttl);
    cr_assert_str_eq(p.urgency, urgency);
    cr_assert(push_decrypt(k, p.body, p.len, plain, cap), "the push does not decrypt");
    cJSON *j = cJSON_Parse(plain);
    cr_assert_not_null(j, "%s", plain);
    return j;
}

Test(fed_push, a_first_report_and_a_mention_from_another_server_push_this_ones_members)
{
    cr_assert_geq(sodium_init(), 0);
    sink = pushsink_start();
    fednet_start(&net, 2, NULL,
                 "\"push_subject\":\"" SUBJECT "\",\"push_allow_private_endpoints\":true,"
                 "\"push_coalesce_ms\":300,\"push_retry_base_ms\":100",
                 0x70757368ULL);
    const char *B = net.s[1].id;
    fednet_user_add(&net, 0, "ken1");
    fednet_user_add(&net, 1, "uwa1");
    fednet_user_add(&net, 1, "uwa2");
    cJSON *r = fednet_admin(&net, 0,
                            "\"op\":\"hotline.create\",\"name\":\"南予ホットライン\","
                            "\"roles\":[\"%s=affected\"]",
                            B);
    cr_assert_str_eq(code(r), "ok", "hotline.create");
    char room[64];
    snprintf(room, sizeof room, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(r, "room")));
    cJSON_Delete(r);
    /* B holds the room once its creation arrived: then B's admin joins and adds its staff. */
    for (long long t0 = mono_ms();; usleep(20000)) {
        r = fednet_admin(&net, 1, "\"op\":\"room.invite\",\"room\":\"%s\",\"user\":\"admin\"",
                         room);
        bool ok = strcmp(code(r), "ok") == 0;
        cJSON_Delete(r);
        if (ok)
            break;
        cr_assert_lt(mono_ms() - t0, DEADLINE_MS, "the hotline never reached %s", B);
    }
    const char *staff[][2] = {{"0", "ken1"}, {"1", "uwa1"}, {"1", "uwa2"}};
    for (size_t k = 0; k < 3; k++) {
        r = fednet_admin(&net, staff[k][0][0] - '0',
                         "\"op\":\"room.invite\",\"room\":\"%s\",\"user\":\"%s\"", room,
                         staff[k][1]);
        cr_assert_str_eq(code(r), "ok", "invite %s", staff[k][1]);
        cJSON_Delete(r);
    }
    /* uwa1 turned previews on; uwa2 did not. Both close Kizuna: only pushes reach them. */
    struct ws u1, u2, ken;
    struct push_keys k1, k2;
    subscribe(&u1, 1, "uwa1", "/b/uwa1", &k1);
    subscribe(&u2, 1, "uwa2", "/b/uwa2", &k2);
    r = ws_callf(&u1, "\"op\":\"notify.prefs\",\"previews\":true");
    cr_assert_str_eq(code(r), "ok");
    cJSON_Delete(r);
    ws_close_fd(&u1);
    ws_close_fd(&u2);

    /* The first report is typed on A. */
    cr_assert(ws_open(&ken, net.s[0].d.port));
    cr_assert(ws_login(&ken, "ken1", "ken1" TEST_PW_SUFFIX, NULL));
    r = ws_callf(&ken,
                 "\"op\":\"msg.send\",\"room\":\"%s\",\"urgent\":true,"
                 "\"body\":\"第一報: 国道56号 土砂崩れ\"",
                 room);
    cr_assert_str_eq(code(r), "ok", "the first report");
    cJSON_Delete(r);
    char plain[1024];
    cJSON *j = post_of("/b/uwa1", 0, &k1, "86400", "high", plain, sizeof plain);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "kind")->valuestring, "hotline");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "room")->valuestring, room);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "title")->valuestring, "南予ホットライン");
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(j, "text")),
                     "第一報: 国道56号 土砂崩れ");
    cJSON_Delete(j);
    j = post_of("/b/uwa2", 0, &k2, "86400", "high", plain, sizeof plain);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "kind")->valuestring, "hotline");
    cr_assert_null(cJSON_GetObjectItem(j, "text"), "a preview without previews: %s", plain);
    cJSON_Delete(j);

    /* A message on A naming uwa2 pushes uwa2 on B, and no one else. */
    r = ws_callf(&ken, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"@uwa2 現地の写真を\"", room);
    cr_assert_str_eq(code(r), "ok");
    cJSON_Delete(r);
    j = post_of("/b/uwa2", 1, &k2, "3600", "normal", plain, sizeof plain);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "kind")->valuestring, "mention");
    cJSON_Delete(j);
    usleep(800000);
    cr_assert_eq(pushsink_count(sink, "/b/uwa1"), 1, "uwa1 was not named");
    cr_assert_eq(pushsink_count(sink, "/b/uwa2"), 2);
    ws_close_fd(&ken);
}
