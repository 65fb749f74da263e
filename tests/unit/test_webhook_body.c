/* test_webhook_body.c - the outgoing webhook's pure parts (server/webhook.c): the signature
 * against a value computed outside Kizuna (openssl dgst -sha256 -hmac and Python's hmac agree
 * on it), the body's schema for each kind with and without text, and the settings' checks. */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

Test(webhook_body, the_signature_is_hmac_sha256_of_timestamp_dot_body)
{
    cr_assert(sodium_init() >= 0);
    const char *key = "kizuna-unit-test-key-0123456789abcdef";
    const char *body = "{\"version\":1,\"kind\":\"rollcall\"}";
    char hex[65];
    /* printf '%s' '1764488766.{"version":1,"kind":"rollcall"}' |
     *   openssl dgst -sha256 -hmac 'kizuna-unit-test-key-0123456789abcdef' */
    srv_webhook_sign((const uint8_t *)key, strlen(key), 1764488766, body, strlen(body), hex);
    cr_assert_str_eq(hex, "b14d0621ee74620a2067e8377991bf8d590f601509e0777935443628d3c63b61");
    srv_webhook_sign((const uint8_t *)key, strlen(key), 1764488767, body, strlen(body), hex);
    cr_assert_str_neq(hex, "b14d0621ee74620a2067e8377991bf8d590f601509e0777935443628d3c63b61",
                      "the timestamp is signed");
}

static const char *str(const cJSON *o, const char *a, const char *b)
{
    const cJSON *x = cJSON_GetObjectItem(o, a);
    if (b)
        x = cJSON_GetObjectItem(x, b);
    return cJSON_GetStringValue(x);
}

Test(webhook_body, a_rollcall_carries_its_notice_and_a_report_its_room)
{
    struct store_notice n = {.id = 12,
                             .title = "安否確認",
                             .body = "無事ですか",
                             .choices = "[\"無事\",\"負傷\"]",
                             .urgent = true,
                             .expires_at = 1764500000000};
    struct srv_webhook_event e = {.kind = "rollcall",
                                  .delivery = "00112233445566778899aabbccddeeff",
                                  .server_id = "jp-38-ehime-pref",
                                  .time = 1764488766123,
                                  .urgent = true,
                                  .notice = &n,
                                  .author_login = "soumu",
                                  .author_name = "総務 太郎",
                                  .with_text = true};
    cJSON *b = srv_webhook_body_new(&e);
    cr_assert_eq(cJSON_GetObjectItem(b, "version")->valuedouble, SRV_WEBHOOK_VERSION);
    cr_assert_str_eq(str(b, "delivery", NULL), "00112233445566778899aabbccddeeff");
    cr_assert_str_eq(str(b, "kind", NULL), "rollcall");
    cr_assert_str_eq(str(b, "time", NULL), "2025-11-30T07:46:06Z");
    cr_assert_eq(cJSON_GetObjectItem(b, "time_ms")->valuedouble, 1764488766123.0);
    cr_assert_str_eq(str(b, "server", NULL), "jp-38-ehime-pref");
    cr_assert_str_eq(str(b, "notice", "title"), "安否確認");
    cr_assert_str_eq(str(b, "notice", "body"), "無事ですか");
    cr_assert_str_eq(str(b, "notice", "priority"), "urgent");
    const cJSON *no = cJSON_GetObjectItem(b, "notice");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(no, "choices")), 2);
    cr_assert_eq(cJSON_GetObjectItem(no, "expires_at")->valuedouble, 1764500000000.0);
    cr_assert_str_eq(str(b, "author", "name"), "総務 太郎");
    cr_assert_null(cJSON_GetObjectItem(b, "room"));
    cr_assert_null(cJSON_GetObjectItem(b, "reminder"));
    cJSON_Delete(b);

    /* Without text: the body is null, the title stays. A notice without choices has []. */
    n.choices = NULL;
    e.with_text = false;
    b = srv_webhook_body_new(&e);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "notice"), "body")));
    cr_assert_str_eq(str(b, "notice", "title"), "安否確認");
    cr_assert_eq(
        cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "notice"), "choices")), 0);
    cJSON_Delete(b);

    struct srv_webhook_event h = {.kind = "hotline",
                                  .delivery = "ffeeddccbbaa99887766554433221100",
                                  .server_id = "jp-38-uwajima",
                                  .time = 1764488766123,
                                  .urgent = true,
                                  .room_id = "r-abc",
                                  .room_name = "県ホットライン",
                                  .pos = 42,
                                  .text = "第一報：県道冠水",
                                  .author_login = "touchoku",
                                  .author_name = "当直",
                                  .with_text = true};
    b = srv_webhook_body_new(&h);
    cr_assert_str_eq(str(b, "room", "name"), "県ホットライン");
    cr_assert_str_eq(str(b, "room", "text"), "第一報：県道冠水");
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "room"), "pos")->valuedouble, 42);
    cr_assert_null(cJSON_GetObjectItem(b, "notice"));
    cJSON_Delete(b);
}

/* srv_webhook_check's problems for cfg, and its output in out. */
static int check(const struct kz_config *cfg, char *out, size_t n)
{
    FILE *f = fmemopen(out, n, "w");
    int problems = srv_webhook_check(cfg, f, "  ");
    fclose(f);
    return problems;
}

Test(webhook_body, the_settings_are_checked_without_showing_secrets)
{
    struct kz_config cfg;
    char out[4096];
    kz_config_defaults(&cfg);
    cr_assert_eq(check(&cfg, out, sizeof out), 0, "off by default: %s", out);
    snprintf(cfg.webhook_url, sizeof cfg.webhook_url, "https://gw.example.lg.jp/in?key=K3Y");
    snprintf(cfg.webhook_secret, sizeof cfg.webhook_secret, "%s",
             "0123456789abcdef0123456789abcdef");
    cr_assert_eq(check(&cfg, out, sizeof out), 0, "%s", out);
    snprintf(cfg.webhook_secret_file, sizeof cfg.webhook_secret_file, "/etc/kizuna/hook.key");
    cr_assert_eq(check(&cfg, out, sizeof out), 1, "both a secret and a file: %s", out);
    cfg.webhook_secret_file[0] = '\0';
    snprintf(cfg.webhook_kinds, sizeof cfg.webhook_kinds, "notice  sms");
    cr_assert_eq(check(&cfg, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "\"sms\" is not a kind"), "%s", out);
    snprintf(cfg.webhook_kinds, sizeof cfg.webhook_kinds, " ");
    cr_assert_eq(check(&cfg, out, sizeof out), 1, "no kind: %s", out);
    snprintf(cfg.webhook_kinds, sizeof cfg.webhook_kinds, "hotline");
    const char *bad[] = {"gopher://gw.example/x?key=K3Y", "https://",
                         "https://gw.example/a b?key=K3Y", "file:///etc/passwd",
                         "gw.example.lg.jp/in?key=K3Y"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(cfg.webhook_url, sizeof cfg.webhook_url, "%s", bad[i]);
        cr_assert_eq(check(&cfg, out, sizeof out), 1, "%s: %s", bad[i], out);
        cr_assert_null(strstr(out, "K3Y"), "the URL's token was shown: %s", out);
        cr_assert_null(strstr(out, "0123456789abcdef"), "the secret was shown: %s", out);
    }
    /* A private address is the administrator's to choose (the radio gateway on the LAN). */
    snprintf(cfg.webhook_url, sizeof cfg.webhook_url, "http://192.168.10.5:8080/radio");
    cr_assert_eq(check(&cfg, out, sizeof out), 0, "%s", out);
}
