/* test_server.c - the real kizunad over real sockets. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

static struct kzd d;

static void setup(void)
{
    kzd_setup(&d);
}

static void teardown(void)
{
    kzd_teardown(&d);
}

TestSuite(server, .init = setup, .fini = teardown, .timeout = 60);

static void ws_admin(struct ws *w)
{
    cr_assert(ws_open(w, d.port));
    cr_assert(ws_login(w, "admin", TEST_ADMIN_PASSWORD, NULL), "admin login failed");
}

/* Adds a staff user with a chosen password (no forced change) as admin. */
static void add_user(const char *login, const char *password, const char *role)
{
    struct ws a;
    ws_admin(&a);
    char req[512];
    snprintf(req, sizeof req,
             "{\"id\":7,\"op\":\"user.add\",\"login\":\"%s\",\"name\":\"%s\",\"role\":\"%s\","
             "\"password\":\"%s\"}",
             login, login, role, password);
    cJSON *r = ws_call(&a, req);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    ws_close_fd(&a);
}

/* A fresh connection still gets served: one client's bad input disturbs no one else. */
static void assert_still_serving(void)
{
    struct ws w;
    cr_assert(ws_open(&w, d.port), "server stopped accepting connections");
    cr_assert(ws_login(&w, "admin", TEST_ADMIN_PASSWORD, NULL), "server stopped serving logins");
    cJSON *r = ws_call(&w, "{\"id\":2,\"op\":\"whoami\"}");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    ws_close_fd(&w);
}

Test(server, healthz_answers_without_auth)
{
    char body[512];
    int status = http_request(d.port, "GET", "/healthz", NULL, NULL, body, sizeof body);
    cr_assert_eq(status, 200);
    cr_assert(strstr(body, "\"ok\":true"), "body: %s", body);
}

Test(server, login_good_and_bad)
{
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    cJSON *r =
        ws_call(&w, "{\"id\":1,\"op\":\"login\",\"login\":\"admin\",\"password\":\"nope-nope\"}");
    cr_assert_str_eq(reply_code(r), "unauthorized");
    cJSON_Delete(r);
    r = ws_call(&w, "{\"id\":2,\"op\":\"login\",\"login\":\"ghost\",\"password\":\"whatever-1\"}");
    cr_assert_str_eq(reply_code(r), "unauthorized", "unknown users get the same answer");
    cJSON_Delete(r);
    r = ws_call(&w, "{\"id\":3,\"op\":\"whoami\"}");
    cr_assert_str_eq(reply_code(r), "unauthorized", "a failed login must not authenticate");
    cJSON_Delete(r);

    char req[256];
    snprintf(req, sizeof req, "{\"id\":4,\"op\":\"login\",\"login\":\"admin\",\"password\":\"%s\"}",
             TEST_ADMIN_PASSWORD);
    r = ws_call(&w, req);
    cr_assert_str_eq(reply_code(r), "ok");
    const cJSON *token = cJSON_GetObjectItem(r, "token");
    cr_assert(cJSON_IsString(token) && strlen(token->valuestring) == 43);
    cJSON_Delete(r);
    r = ws_call(&w, "{\"id\":5,\"op\":\"whoami\"}");
    cr_assert_str_eq(reply_code(r), "ok");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "user"), "login")->valuestring,
                     "admin");
    cJSON_Delete(r);
    ws_close_fd(&w);
}

/* login waits for a worker; a request pipelined right behind it must still see its session. */
Test(server, pipelined_requests_are_answered_in_order)
{
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    char both[512];
    snprintf(both, sizeof both,
             "{\"id\":1,\"op\":\"login\",\"login\":\"admin\",\"password\":\"%s\"}",
             TEST_ADMIN_PASSWORD);
    cr_assert(ws_send_text(&w, both));
    cr_assert(ws_send_text(&w, "{\"id\":2,\"op\":\"whoami\"}"));
    for (int want = 1; want <= 2; want++) {
        char *text = ws_recv_text(&w, 5000);
        cr_assert_not_null(text);
        cJSON *r = cJSON_Parse(text);
        cr_assert_eq(cJSON_GetObjectItem(r, "id")->valuedouble, want, "%s", text);
        cr_assert_str_eq(reply_code(r), "ok", "%s", text);
        cJSON_Delete(r);
        free(text);
    }
    ws_close_fd(&w);
}

Test(server, bearer_token_over_http)
{
    struct ws w;
    char token[64], hdr[160], body[4096];
    cr_assert(ws_open(&w, d.port));
    cr_assert(ws_login(&w, "admin", TEST_ADMIN_PASSWORD, token));
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", token);
    int status = http_request(d.port, "POST", "/api/v1/whoami", hdr, "{}", body, sizeof body);
    cr_assert_eq(status, 200, "body: %s", body);
    cr_assert(strstr(body, "\"login\":\"admin\""));
    status = http_request(d.port, "POST", "/api/v1/user.list", NULL, "{}", body, sizeof body);
    cr_assert_eq(status, 401, "no token: %s", body);
    cr_assert(strstr(body, "\"code\":\"unauthorized\""));
    status = http_request(d.port, "POST", "/api/v1/nosuchop", hdr, "{}", body, sizeof body);
    cr_assert_eq(status, 400);
    cr_assert(strstr(body, "\"code\":\"bad_request\""));
    status = http_request(d.port, "POST", "/api/v1/whoami", hdr, "{oops", body, sizeof body);
    cr_assert_eq(status, 400);
    status = http_request(d.port, "GET", "/nothing-here", NULL, NULL, body, sizeof body);
    cr_assert_eq(status, 404);
    /* A body over max_frame_bytes (64 KiB in the test config) is refused before it is read. */
    char *big = malloc(70000);
    memset(big, 'x', 69999);
    big[69999] = '\0';
    status = http_request(d.port, "POST", "/api/v1/whoami", hdr, big, body, sizeof body);
    free(big);
    cr_assert_eq(status, 413, "%s", body);
    cr_assert(strstr(body, "\"code\":\"too_large\""), "%s", body);
    /* An empty body (Content-Length: 0) is the op with no arguments, even one that writes and
     * so answers only after its commit (lws ends an empty body with a BODY_COMPLETION of its
     * own, which is not a pipelined request). */
    status = http_request(d.port, "POST", "/api/v1/notify.prefs", hdr, "", body, sizeof body);
    cr_assert_eq(status, 200, "%d %s", status, body);
    cr_assert(strstr(body, "\"previews\":false"), "%s", body);
    /* Without Content-Length lws would wait for 100 MB: refused at once instead. */
    status = http_request(d.port, "POST", "/api/v1/whoami", hdr, NULL, body, sizeof body);
    cr_assert_eq(status, 400, "%s", body);
    cr_assert(strstr(body, "Content-Length"), "%s", body);
    ws_close_fd(&w);
}

Test(server, logout_revokes_the_token_and_closes_its_other_connections)
{
    struct ws a, b;
    char token[64], req[160], hdr[160], body[1024];
    cr_assert(ws_open(&a, d.port));
    cr_assert(ws_login(&a, "admin", TEST_ADMIN_PASSWORD, token));
    cr_assert(ws_open(&b, d.port));
    snprintf(req, sizeof req, "{\"id\":1,\"op\":\"auth\",\"token\":\"%s\"}", token);
    cJSON *r = ws_call(&b, req);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);

    r = ws_call(&a, "{\"id\":2,\"op\":\"logout\"}");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    cr_assert_eq(ws_wait_close(&b, 5000), 1008, "the other connection of the session is closed");
    cr_assert_str_eq(b.close_reason, "logged out");

    r = ws_call(&a, "{\"id\":3,\"op\":\"whoami\"}");
    cr_assert_str_eq(reply_code(r), "unauthorized", "logout unbinds this connection too");
    cJSON_Delete(r);
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", token);
    cr_assert_eq(http_request(d.port, "POST", "/api/v1/whoami", hdr, "{}", body, sizeof body), 401);
    struct ws c;
    cr_assert(ws_open(&c, d.port));
    r = ws_call(&c, req);
    cr_assert_str_eq(reply_code(r), "unauthorized", "a replayed token is refused");
    cJSON_Delete(r);
    ws_close_fd(&a);
    ws_close_fd(&b);
    ws_close_fd(&c);
}

Test(server, disabling_a_user_closes_its_live_connection)
{
    add_user("sato", "sato-password-1", "staff");
    struct ws s, a;
    cr_assert(ws_open(&s, d.port));
    cr_assert(ws_login(&s, "sato", "sato-password-1", NULL));
    ws_admin(&a);
    cJSON *r = ws_call(&a, "{\"id\":9,\"op\":\"user.disable\",\"login\":\"sato\"}");
    cr_assert_str_eq(reply_code(r), "ok");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "user"), "disabled")));
    cJSON_Delete(r);
    cr_assert_eq(ws_wait_close(&s, 5000), 1008);
    cr_assert_str_eq(s.close_reason, "account disabled");

    struct ws s2;
    cr_assert(ws_open(&s2, d.port));
    r = ws_call(&s2,
                "{\"id\":1,\"op\":\"login\",\"login\":\"sato\",\"password\":\"sato-password-1\"}");
    cr_assert_str_eq(reply_code(r), "unauthorized");
    cJSON_Delete(r);

    r = ws_call(&a, "{\"id\":10,\"op\":\"user.enable\",\"login\":\"sato\"}");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    cr_assert(ws_login(&s2, "sato", "sato-password-1", NULL), "enabled again");
    ws_close_fd(&s);
    ws_close_fd(&s2);
    ws_close_fd(&a);
}

Test(server, admin_only_ops_are_refused_to_staff)
{
    add_user("suzuki", "suzuki-password-1", "staff");
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    cr_assert(ws_login(&w, "suzuki", "suzuki-password-1", NULL));
    const char *reqs[] = {
        "{\"id\":1,\"op\":\"user.add\",\"login\":\"mallory\"}",
        "{\"id\":1,\"op\":\"user.list\"}",
        "{\"id\":1,\"op\":\"user.disable\",\"login\":\"admin\"}",
        "{\"id\":1,\"op\":\"user.enable\",\"login\":\"admin\"}",
        "{\"id\":1,\"op\":\"user.reset_password\",\"login\":\"admin\"}",
        "{\"id\":1,\"op\":\"user.import\",\"csv_base64\":\"bG9naW4K\",\"dry_run\":true}",
        "{\"id\":1,\"op\":\"audit.list\"}",
        "{\"id\":1,\"op\":\"invite.create\"}",
        "{\"id\":1,\"op\":\"invite.list\"}",
        "{\"id\":1,\"op\":\"invite.revoke\",\"invite\":1}",
        "{\"id\":1,\"op\":\"user.update\",\"login\":\"suzuki\",\"expires_at\":0}",
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        cJSON *r = ws_call(&w, reqs[i]);
        cr_assert_str_eq(reply_code(r), "forbidden", "%s", reqs[i]);
        cJSON_Delete(r);
    }
    ws_close_fd(&w);
    /* Nothing changed: mallory does not exist, admin can still log in. */
    assert_still_serving();
}

Test(server, one_time_password_must_be_changed_first)
{
    struct ws a, u;
    ws_admin(&a);
    cJSON *r = ws_call(&a, "{\"id\":1,\"op\":\"user.add\",\"login\":\"kato\",\"name\":\"加藤\"}");
    cr_assert_str_eq(reply_code(r), "ok");
    char otp[64];
    snprintf(otp, sizeof otp, "%s", cJSON_GetObjectItem(r, "password")->valuestring);
    cJSON_Delete(r);
    cr_assert(ws_open(&u, d.port));
    cr_assert(ws_login(&u, "kato", otp, NULL));
    r = ws_call(&u, "{\"id\":2,\"op\":\"user.list\"}");
    cr_assert_str_eq(reply_code(r), "forbidden");
    cJSON_Delete(r);
    char req[256];
    snprintf(req, sizeof req,
             "{\"id\":3,\"op\":\"passwd\",\"old_password\":\"%s\",\"new_password\":\"kato\"}", otp);
    r = ws_call(&u, req);
    cr_assert_str_eq(reply_code(r), "bad_request", "the login id is not a password");
    cJSON_Delete(r);
    snprintf(
        req, sizeof req,
        "{\"id\":4,\"op\":\"passwd\",\"old_password\":\"%s\",\"new_password\":\"kato-new-pass\"}",
        otp);
    r = ws_call(&u, req);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    r = ws_call(&u, "{\"id\":5,\"op\":\"whoami\"}");
    cr_assert_str_eq(reply_code(r), "ok");
    cr_assert(
        !cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "user"), "must_change_password")));
    cJSON_Delete(r);
    ws_close_fd(&u);
    ws_close_fd(&a);
}

/* Each bad frame gets its documented error, and everyone else is still served. */
Test(server, bad_input_gets_documented_errors)
{
    struct ws w;
    ws_admin(&w);
    struct {
        const char *frame;
        const char *code;
    } cases[] = {
        {"{not json", "bad_request"},
        {"[1,2,3]", "bad_request"},
        {"{\"op\":\"whoami\"}", "bad_request"},                             /* no id */
        {"{\"id\":1}", "bad_request"},                                      /* no op */
        {"{\"id\":1,\"op\":\"no.such.op\"}", "bad_request"},                /* unknown op */
        {"{\"id\":1,\"op\":\"user.disable\"}", "bad_request"},              /* missing field */
        {"{\"id\":1,\"op\":\"user.disable\",\"login\":42}", "bad_request"}, /* wrong type */
        {"{\"id\":1,\"op\":\"whoami\",\"extra\":true}", "bad_request"},     /* unknown field */
        {"{\"id\":1,\"op\":\"user.disable\",\"login\":\"nobody\"}", "not_found"},
        {"{\"id\":1,\"op\":\"user.add\",\"login\":\"admin\"}", "conflict"},
        {"{\"id\":1,\"op\":\"user.add\",\"login\":\"Bad Login!\"}", "bad_request"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert(ws_send_text(&w, cases[i].frame));
        char *text = ws_recv_text(&w, 5000);
        cr_assert_not_null(text, "no reply to %s", cases[i].frame);
        cJSON *r = cJSON_Parse(text);
        cr_assert_str_eq(reply_code(r), cases[i].code, "%s -> %s", cases[i].frame, text);
        const cJSON *msg = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "message");
        cr_assert(cJSON_IsString(msg) && *msg->valuestring, "a human message: %s", text);
        cJSON_Delete(r);
        free(text);
    }
    /* Invalid UTF-8 in a text frame. */
    const char bad_utf8[] = "{\"id\":1,\"op\":\"whoami\",\"x\":\"\xff\xfe\"}";
    cr_assert(ws_send_frame(&w, 0x1, bad_utf8, sizeof bad_utf8 - 1));
    char *text = ws_recv_text(&w, 5000);
    cr_assert_not_null(text);
    cJSON *r = cJSON_Parse(text);
    cr_assert_str_eq(reply_code(r), "bad_request", "%s", text);
    cJSON_Delete(r);
    free(text);
    /* The same connection still works after all of that. */
    r = ws_call(&w, "{\"id\":99,\"op\":\"whoami\"}");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    ws_close_fd(&w);
    assert_still_serving();
}

Test(server, oversized_frame_gets_too_large_and_a_close)
{
    struct ws w;
    ws_admin(&w);
    size_t len = 200000; /* the test config allows 65536 */
    char *big = malloc(len + 1);
    memset(big, ' ', len);
    memcpy(big, "{\"id\":1,\"op\":\"whoami\",\"pad\":\"", 29);
    big[len - 2] = '"';
    big[len - 1] = '}';
    big[len] = '\0';
    cr_assert(ws_send_text(&w, big));
    free(big);
    char *text = ws_recv_text(&w, 5000);
    cr_assert_not_null(text, "an error reply comes before the close");
    cJSON *r = cJSON_Parse(text);
    cr_assert_str_eq(reply_code(r), "too_large", "%s", text);
    cJSON_Delete(r);
    free(text);
    cr_assert_eq(ws_wait_close(&w, 5000), 1009);
    ws_close_fd(&w);
    assert_still_serving();
}

Test(server, data_survives_restart_and_kill_9)
{
    add_user("ito", "ito-password-1", "staff");
    cr_assert_eq(kzd_stop(&d), 0, "clean exit (and no leaks under ASan)");
    kzd_start(&d);
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    cr_assert(ws_login(&w, "ito", "ito-password-1", NULL), "user survives a clean restart");
    ws_close_fd(&w);

    /* An acknowledged write survives SIGKILL right after the acknowledgement. */
    add_user("yamada", "yamada-password-1", "hq");
    kzd_kill(&d);
    kzd_start(&d);
    cr_assert(ws_open(&w, d.port));
    cr_assert(ws_login(&w, "yamada", "yamada-password-1", NULL), "acknowledged user after kill -9");
    ws_close_fd(&w);
}

Test(server, sigterm_sends_close_frames_and_exits_cleanly)
{
    struct ws w;
    ws_admin(&w);
    kill(d.pid, SIGTERM);
    cr_assert_eq(ws_wait_close(&w, 5000), 1001, "going away");
    cr_assert_eq(kzd_stop(&d), 0);
    ws_close_fd(&w);
}

Test(server, init_is_idempotent_and_serve_guards_its_directory)
{
    char out[2048];
    const char *init[] = {KIZUNAD_PATH, "init", "--data", d.dir, "--config", d.config, NULL};
    const char *env[] = {"KIZUNA_ADMIN_PASSWORD=another-password-9", NULL};
    cr_assert_eq(run_capture(init, env, NULL, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "nothing changed"), "%s", out);
    assert_still_serving(); /* the admin password is still the first one */

    const char *second[] = {KIZUNAD_PATH, "serve",       "--data", d.dir,
                            "--listen",   "127.0.0.1:0", NULL};
    cr_assert_eq(run_capture(second, NULL, NULL, out, sizeof out), 1,
                 "a second server on the same directory is refused");

    char empty[300];
    snprintf(empty, sizeof empty, "%s/never-initialised", d.dir);
    const char *uninit[] = {KIZUNAD_PATH, "serve",       "--data", empty,
                            "--listen",   "127.0.0.1:0", NULL};
    cr_assert_eq(run_capture(uninit, NULL, NULL, out, sizeof out), 1);

    const char *badcfg[] = {KIZUNAD_PATH,         "serve", "--data", d.dir, "--set",
                            "max_connections=-4", NULL};
    cr_assert_eq(run_capture(badcfg, NULL, NULL, out, sizeof out), 2,
                 "bad settings are usage errors");
}

Test(server, revoking_a_session_cuts_off_that_device_at_once)
{
    add_user("kimura", "kimura-password-1", "staff");
    struct ws phone, pc, other;
    char phone_token[64];
    cr_assert(ws_open(&phone, d.port));
    cr_assert(ws_login(&phone, "kimura", "kimura-password-1", phone_token));
    cr_assert(ws_open(&pc, d.port));
    cr_assert(ws_login(&pc, "kimura", "kimura-password-1", NULL));
    cJSON *r = ws_call(&pc, "{\"id\":1,\"op\":\"session.list\"}");
    cJSON *sessions = cJSON_GetObjectItem(r, "sessions");
    cr_assert_eq(cJSON_GetArraySize(sessions), 2);
    long long phone_id = 0;
    cJSON *ses;
    cJSON_ArrayForEach(ses, sessions) if (!cJSON_IsTrue(cJSON_GetObjectItem(ses, "current")))
        phone_id = (long long)cJSON_GetObjectItem(ses, "id")->valuedouble;
    cJSON_Delete(r);
    cr_assert_gt(phone_id, 0);

    /* Someone else can neither see nor revoke it. */
    add_user("other", "other-password-1", "staff");
    cr_assert(ws_open(&other, d.port));
    cr_assert(ws_login(&other, "other", "other-password-1", NULL));
    r = ws_call(&other, "{\"id\":2,\"op\":\"session.list\",\"login\":\"kimura\"}");
    cr_assert_str_eq(reply_code(r), "forbidden");
    cJSON_Delete(r);
    char req[128];
    snprintf(req, sizeof req, "{\"id\":3,\"op\":\"session.revoke\",\"session\":%lld}", phone_id);
    r = ws_call(&other, req);
    cr_assert_str_eq(reply_code(r), "not_found");
    cJSON_Delete(r);

    /* The admin revokes the lost phone while it is connected. */
    struct ws a;
    ws_admin(&a);
    r = ws_call(&a, "{\"id\":4,\"op\":\"session.list\",\"login\":\"kimura\"}");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "sessions")), 2);
    cJSON_Delete(r);
    r = ws_call(&a, req);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    cr_assert_eq(ws_wait_close(&phone, 5000), 1008, "the phone is cut off at once");
    cr_assert_str_eq(phone.close_reason, "session revoked by an admin", "the phone can say who");
    struct ws again;
    cr_assert(ws_open(&again, d.port));
    snprintf(req, sizeof req, "{\"id\":5,\"op\":\"auth\",\"token\":\"%s\"}", phone_token);
    r = ws_call(&again, req);
    cr_assert_str_eq(reply_code(r), "unauthorized", "its token is dead");
    cJSON_Delete(r);
    r = ws_call(&pc, "{\"id\":6,\"op\":\"whoami\"}");
    cr_assert_str_eq(reply_code(r), "ok", "the other device keeps working");
    cJSON_Delete(r);
    cr_assert(ws_audit_has(&a, "session.revoke", "kimura"), "the revocation is audited");
    /* Signed out from another of one's own devices: a reason of its own. */
    struct ws tablet;
    cr_assert(ws_open(&tablet, d.port));
    cr_assert(ws_login(&tablet, "kimura", "kimura-password-1", NULL));
    r = ws_call(&tablet, "{\"id\":7,\"op\":\"whoami\"}");
    snprintf(req, sizeof req, "{\"id\":8,\"op\":\"session.revoke\",\"session\":%lld}",
             (long long)cJSON_GetObjectItem(cJSON_GetObjectItem(r, "session"), "id")->valuedouble);
    cJSON_Delete(r);
    r = ws_call(&pc, req);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    cr_assert_eq(ws_wait_close(&tablet, 5000), 1008);
    cr_assert_str_eq(tablet.close_reason, "session revoked");
    ws_close_fd(&tablet);
    ws_close_fd(&phone);
    ws_close_fd(&pc);
    ws_close_fd(&other);
    ws_close_fd(&a);
    ws_close_fd(&again);
}

Test(server, login_throttling_engages_and_releases)
{
    add_user("nakamura", "nakamura-pass-1", "staff");
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    for (int i = 0; i < 5; i++) {
        cJSON *r = ws_call(
            &w, "{\"id\":1,\"op\":\"login\",\"login\":\"nakamura\",\"password\":\"guess-guess\"}");
        cr_assert_str_eq(reply_code(r), "unauthorized", "attempt %d", i);
        cJSON_Delete(r);
    }
    /* Locked: even the right password is refused, with the time to wait. */
    cJSON *r = ws_call(
        &w, "{\"id\":2,\"op\":\"login\",\"login\":\"nakamura\",\"password\":\"nakamura-pass-1\"}");
    cr_assert_str_eq(reply_code(r), "rate_limited");
    cJSON *retry = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "retry_after_s");
    cr_assert(cJSON_IsNumber(retry) && retry->valuedouble >= 1);
    cJSON_Delete(r);
    /* Another account is unaffected. */
    cr_assert(ws_login(&w, "admin", TEST_ADMIN_PASSWORD, NULL));
    /* The lockout (login_lockout_s = 1 in the test config) ends by itself. */
    bool in = false;
    for (int i = 0; i < 40 && !in; i++) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL); /* waiting out a lockout is the behaviour under test */
        in = ws_login(&w, "nakamura", "nakamura-pass-1", NULL);
    }
    cr_assert(in, "released after the lockout");
    ws_close_fd(&w);
}

Test(server, the_audit_log_records_admin_actions_and_security_events)
{
    add_user("audited", "audited-password-1", "staff");
    struct ws a, u, x;
    ws_admin(&a);
    cr_assert(ws_open(&x, d.port));
    for (int i = 0; i < 5; i++) {
        cJSON *r = ws_call(
            &x, "{\"id\":1,\"op\":\"login\",\"login\":\"audited\",\"password\":\"wrong-wrong\"}");
        cJSON_Delete(r);
    }
    cJSON *r =
        ws_call(&a, "{\"id\":2,\"op\":\"user.update\",\"login\":\"audited\",\"role\":\"hq\"}");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    r = ws_call(&a, "{\"id\":3,\"op\":\"user.disable\",\"login\":\"audited\"}");
    cJSON_Delete(r);
    cr_assert(ws_audit_has(&a, "user.add", "audited"));
    cr_assert(ws_audit_has(&a, "login.failed", "audited"));
    cr_assert(ws_audit_has(&a, "login.locked", "audited"));
    cr_assert(ws_audit_has(&a, "user.update", "audited"), "role change");
    cr_assert(ws_audit_has(&a, "user.disable", "audited"));
    cr_assert(ws_audit_has(&a, "login", "admin"));
    r = ws_call(&a, "{\"id\":4,\"op\":\"audit.list\",\"action\":\"user.update\"}");
    cJSON *details =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "entries"), 0), "details");
    cr_assert_str_eq(cJSON_GetObjectItem(details, "role")->valuestring, "hq", "what changed");
    cr_assert_str_eq(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "entries"), 0), "actor")
            ->valuestring,
        "admin");
    cJSON_Delete(r);
    add_user("plain", "plain-password-1", "staff");
    cr_assert(ws_open(&u, d.port));
    cr_assert(ws_login(&u, "plain", "plain-password-1", NULL));
    r = ws_call(&u, "{\"id\":5,\"op\":\"audit.list\"}");
    cr_assert_str_eq(reply_code(r), "forbidden");
    cJSON_Delete(r);
    ws_close_fd(&a);
    ws_close_fd(&u);
    ws_close_fd(&x);
}
