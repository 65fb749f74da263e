/* test_admin.c - dispatched staff and devices against the real kizunad: invitations, accounts
 * that expire, shared devices that log out when idle, contact details. */
#include <criterion/criterion.h>
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

TestSuite(admin, .init = setup, .fini = teardown, .timeout = 60);

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ws_admin(struct ws *w)
{
    cr_assert(ws_open(w, d.port));
    cr_assert(ws_login(w, "admin", TEST_ADMIN_PASSWORD, NULL), "admin login failed");
}

/* Makes an invitation; returns its code in code (>= 32 bytes) and its id. */
static long long invite(struct ws *a, const char *extra, char *code)
{
    cJSON *r = ws_callf(a, "\"op\":\"invite.create\"%s", extra);
    cr_assert_str_eq(reply_code(r), "ok", "invite.create%s", extra);
    snprintf(code, 32, "%s", cJSON_GetObjectItem(r, "code")->valuestring);
    long long id =
        (long long)cJSON_GetObjectItem(cJSON_GetObjectItem(r, "invite"), "id")->valuedouble;
    cJSON_Delete(r);
    return id;
}

static cJSON *join(const char *code, const char *login)
{
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    cJSON *r = ws_callf(&w,
                        "\"op\":\"join\",\"code\":\"%s\",\"login\":\"%s\","
                        "\"name\":\"応援 %s\",\"password\":\"%s-password\"",
                        code, login, login, login);
    ws_close_fd(&w);
    return r;
}

static const char *invite_state(struct ws *a, long long id)
{
    static char state[16];
    cJSON *r = ws_call(a, "{\"id\":3,\"op\":\"invite.list\"}");
    cJSON *inv;
    state[0] = '\0';
    cJSON_ArrayForEach(inv, cJSON_GetObjectItem(r, "invites"))
    {
        if ((long long)cJSON_GetObjectItem(inv, "id")->valuedouble == id)
            snprintf(state, sizeof state, "%s", cJSON_GetObjectItem(inv, "state")->valuestring);
        cr_assert_null(cJSON_GetObjectItem(inv, "code"), "codes are never shown again");
    }
    cJSON_Delete(r);
    return state;
}

Test(admin, an_invitation_makes_accounts_until_used_up)
{
    struct ws a;
    ws_admin(&a);
    char code[32];
    long long expires = now_ms() + 30LL * 86400 * 1000;
    char extra[256];
    snprintf(extra, sizeof extra,
             ",\"department\":\"応援職員\",\"groups\":[\"避難所\",\"給水\"],\"uses\":2,"
             "\"account_expires_at\":%lld,\"note\":\"仙台市\"",
             expires);
    long long id = invite(&a, extra, code);
    cr_assert_eq(strlen(code), 24, "XXXX-XXXX-XXXX-XXXX-XXXX");
    cr_assert_str_eq(invite_state(&a, id), "active");

    cJSON *r = join(code, "sendai.sato");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON *u = cJSON_GetObjectItem(r, "user");
    cr_assert_str_eq(cJSON_GetObjectItem(u, "role")->valuestring, "staff");
    cr_assert_str_eq(cJSON_GetObjectItem(u, "department")->valuestring, "応援職員");
    cr_assert_eq((long long)cJSON_GetObjectItem(u, "expires_at")->valuedouble, expires);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(u, "must_change_password")), "own password");
    cr_assert_eq(strlen(cJSON_GetObjectItem(r, "token")->valuestring), 43, "logged in");
    cJSON_Delete(r);

    /* As typed off a screen: lower case, spaces for dashes, O for 0 and l for 1 are fine. */
    char typed[32];
    size_t n = 0;
    for (const char *p = code; *p; p++)
        typed[n++] = *p == '-' ? ' ' : *p == '0' ? 'o' : *p == '1' ? 'l' : (char)(*p | 0x20);
    typed[n] = '\0';
    r = join(typed, "sendai.ito");
    cr_assert_str_eq(reply_code(r), "ok", "a code as typed");
    cJSON_Delete(r);
    r = ws_call(&a, "{\"id\":4,\"op\":\"user.list\"}");
    cJSON *user;
    int found = 0;
    cJSON_ArrayForEach(user,
                       cJSON_GetObjectItem(
                           r, "users")) if (strncmp(cJSON_GetObjectItem(user, "login")->valuestring,
                                                    "sendai.", 7) == 0)
    {
        found++;
        cJSON *groups = cJSON_GetObjectItem(user, "groups");
        cr_assert_eq(cJSON_GetArraySize(groups), 2);
        cr_assert_str_eq(cJSON_GetArrayItem(groups, 0)->valuestring, "給水");
    }
    cJSON_Delete(r);
    cr_assert_eq(found, 2);

    r = join(code, "sendai.kato");
    cr_assert_str_eq(reply_code(r), "unauthorized", "used up");
    cr_assert(strstr(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "message")->valuestring,
                     "used up"));
    cJSON_Delete(r);
    cr_assert_str_eq(invite_state(&a, id), "used");

    r = join("ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ", "sendai.kato");
    cr_assert_str_eq(reply_code(r), "unauthorized", "a wrong code");
    cJSON_Delete(r);

    cr_assert(ws_audit_has(&a, "invite.create", "invite:1"));
    cr_assert(ws_audit_has(&a, "invite.use", "sendai.sato"));
    cr_assert(ws_audit_has(&a, "join.failed", "sendai.kato"));
    ws_close_fd(&a);
}

Test(admin, invitations_refuse_bad_settings_and_expire_and_revoke)
{
    struct ws a;
    ws_admin(&a);
    const char *bad[] = {",\"role\":\"admin\"",  ",\"uses\":0",
                         ",\"expires_at\":1000", ",\"account_expires_at\":1000",
                         ",\"uses\":1000000",    ",\"groups\":[\"a;b\"]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *r = ws_callf(&a, "\"op\":\"invite.create\"%s", bad[i]);
        cr_assert_str_eq(reply_code(r), "bad_request", "%s", bad[i]);
        cJSON_Delete(r);
    }
    char code[32], code2[32], extra[64];
    long long until = now_ms() + 1200;
    snprintf(extra, sizeof extra, ",\"expires_at\":%lld", until);
    long long id = invite(&a, extra, code);
    long long id2 = invite(&a, ",\"role\":\"hq\"", code2);
    /* The code's lifetime passing, not a readiness wait. */
    while (now_ms() < until - 100)
        cr_assert_str_eq(invite_state(&a, id), "active");
    while (now_ms() <= until + 20)
        cJSON_Delete(ws_next_event(&a, 20));
    cr_assert_str_eq(invite_state(&a, id), "expired");
    cJSON *r = join(code, "late.comer");
    cr_assert_str_eq(reply_code(r), "unauthorized");
    cr_assert(strstr(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "message")->valuestring,
                     "expired"));
    cJSON_Delete(r);

    r = ws_callf(&a, "\"op\":\"invite.revoke\",\"invite\":%lld", id2);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    cr_assert_str_eq(invite_state(&a, id2), "revoked");
    r = join(code2, "late.comer");
    cr_assert_str_eq(reply_code(r), "unauthorized", "revoked");
    cJSON_Delete(r);
    r = ws_call(&a, "{\"id\":6,\"op\":\"invite.revoke\",\"invite\":999}");
    cr_assert_str_eq(reply_code(r), "not_found");
    cJSON_Delete(r);
    cr_assert(ws_audit_has(&a, "invite.revoke", "invite:2"));
    ws_close_fd(&a);
}

Test(admin, a_dispatched_account_is_disabled_on_its_date_while_connected)
{
    struct ws a, w;
    ws_admin(&a);
    char code[32], extra[64];
    long long until = now_ms() + 1500;
    snprintf(extra, sizeof extra, ",\"account_expires_at\":%lld", until);
    invite(&a, extra, code);
    cJSON *r = join(code, "osaka.mori");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    cr_assert(ws_open(&w, d.port));
    cr_assert(ws_login(&w, "osaka.mori", "osaka.mori-password", NULL));
    /* The housekeeping sweep (every second in tests) cuts the live connection. */
    cr_assert_eq(ws_wait_close(&w, 10000), 1008);
    cr_assert_str_eq(w.close_reason, "account expired");
    cr_assert_geq(now_ms(), until);
    struct ws again;
    cr_assert(ws_open(&again, d.port));
    r = ws_call(&again, "{\"id\":1,\"op\":\"login\",\"login\":\"osaka.mori\","
                        "\"password\":\"osaka.mori-password\"}");
    cr_assert_str_eq(reply_code(r), "unauthorized");
    /* Told that it expired (ask for an extension), though the sweep also disabled it. */
    const char *why = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "message")->valuestring;
    cr_assert_str_eq(why, "the account has expired");
    cJSON_Delete(r);
    r = ws_call(&a, "{\"id\":2,\"op\":\"user.list\"}");
    cJSON *u;
    cJSON_ArrayForEach(
        u, cJSON_GetObjectItem(r, "users")) if (strcmp(cJSON_GetObjectItem(u, "login")->valuestring,
                                                       "osaka.mori") == 0)
        cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(u, "disabled")), "disabled, not deleted");
    cJSON_Delete(r);
    cr_assert(ws_audit_has(&a, "user.expire", "osaka.mori"));

    /* Extending a dispatch: an admin enables the account with a later date. */
    r = ws_callf(&a, "\"op\":\"user.update\",\"login\":\"osaka.mori\",\"expires_at\":%lld",
                 now_ms() + 86400000LL);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    r = ws_call(&a, "{\"id\":4,\"op\":\"user.enable\",\"login\":\"osaka.mori\"}");
    cJSON_Delete(r);
    cr_assert(ws_login(&again, "osaka.mori", "osaka.mori-password", NULL));
    r = ws_call(&a, "{\"id\":5,\"op\":\"user.update\",\"login\":\"osaka.mori\",\"expires_at\":5}");
    cr_assert_str_eq(reply_code(r), "bad_request", "an expiry in the past");
    cJSON_Delete(r);
    ws_close_fd(&w);
    ws_close_fd(&again);
    ws_close_fd(&a);
}

Test(admin, a_shared_device_is_logged_out_when_idle_but_not_while_used)
{
    struct ws a, shared, own;
    ws_admin(&a);
    cJSON *r = ws_call(&a, "{\"id\":1,\"op\":\"user.add\",\"login\":\"loaner\","
                           "\"password\":\"loaner-password-1\"}");
    cJSON_Delete(r);
    cr_assert(ws_open(&shared, d.port));
    r = ws_call(&shared, "{\"id\":2,\"op\":\"login\",\"login\":\"loaner\","
                         "\"password\":\"loaner-password-1\",\"device\":\"office phone 3\","
                         "\"shared\":true}");
    cr_assert_str_eq(reply_code(r), "ok");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "session"), "shared")));
    cJSON_Delete(r);
    cr_assert(ws_open(&own, d.port));
    cr_assert(ws_login(&own, "loaner", "loaner-password-1", NULL));
    /* In use for twice the idle time (2 s in tests): it stays. */
    long long start = now_ms();
    while (now_ms() - start < 4000) {
        r = ws_call(&shared, "{\"id\":3,\"op\":\"whoami\"}");
        cr_assert_str_eq(reply_code(r), "ok", "a shared device in use stays logged in");
        cJSON_Delete(r);
        cJSON *ev = ws_next_event(&shared, 300); /* paces the loop; no events expected */
        cJSON_Delete(ev);
    }
    /* Left on the desk: cut off. */
    cr_assert_eq(ws_wait_close(&shared, 10000), 1008);
    cr_assert_str_eq(shared.close_reason, "idle session on a shared device ended");
    r = ws_call(&own, "{\"id\":4,\"op\":\"whoami\"}");
    cr_assert_str_eq(reply_code(r), "ok", "the user's own phone is not shared");
    cJSON_Delete(r);
    cr_assert(ws_audit_has(&a, "session.idle_end", "loaner"));
    ws_close_fd(&shared);
    ws_close_fd(&own);
    ws_close_fd(&a);
}

Test(admin, contact_details_are_checked_and_kept)
{
    struct ws a;
    ws_admin(&a);
    const char *bad[] = {"\"email\":\"no-at-sign\"", "\"email\":\"a b@c\"", "\"phone\":\"call me\"",
                         "\"phone\":\"12\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *r = ws_callf(&a, "\"op\":\"user.add\",\"login\":\"c%zu\",%s", i, bad[i]);
        cr_assert_str_eq(reply_code(r), "bad_request", "%s", bad[i]);
        cJSON_Delete(r);
    }
    cJSON *r = ws_call(&a, "{\"id\":2,\"op\":\"user.add\",\"login\":\"yamada\","
                           "\"email\":\"yamada@town.example.jp\",\"phone\":\"+81 22-123-4567\"}");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    r = ws_call(&a, "{\"id\":3,\"op\":\"user.update\",\"login\":\"yamada\",\"phone\":\"\"}");
    cJSON *u = cJSON_GetObjectItem(r, "user");
    cr_assert_str_eq(cJSON_GetObjectItem(u, "email")->valuestring, "yamada@town.example.jp");
    cr_assert_str_eq(cJSON_GetObjectItem(u, "phone")->valuestring, "", "cleared");
    cJSON_Delete(r);
    ws_close_fd(&a);
}

/* The newest audit entry of an action (caller deletes), or NULL. */
static cJSON *audit_newest(struct ws *a, const char *action)
{
    cJSON *r = ws_callf(a, "\"op\":\"audit.list\",\"action\":\"%s\",\"limit\":1", action);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON *e = cJSON_DetachItemFromArray(cJSON_GetObjectItem(r, "entries"), 0);
    cJSON_Delete(r);
    return e;
}

static void expect_audit(struct ws *a, const char *action, const char *actor, const char *target)
{
    cJSON *e = audit_newest(a, action);
    cr_assert_not_null(e, "no %s in the audit log", action);
    cr_assert_str_eq(cJSON_GetObjectItem(e, "actor")->valuestring, actor, "%s", action);
    cr_assert_str_eq(cJSON_GetObjectItem(e, "target")->valuestring, target, "%s", action);
    cJSON_Delete(e);
}

/* issue 13, item 7: what HQ must account for is in the audit log: notices posted, edited,
 * reminded and withdrawn; rooms created, their members and admins; every export. */
Test(admin, the_audit_log_covers_notices_rooms_and_exports)
{
    struct ws a, t, s;
    ws_admin(&a);
    const char *users[] = {"tanaka", "sato", "suzuki"};
    for (size_t i = 0; i < 3; i++) {
        cJSON *r = ws_callf(&a,
                            "\"op\":\"user.add\",\"login\":\"%s\",\"password\":\"%s-password-1\","
                            "\"department\":\"総務課\"",
                            users[i], users[i]);
        cr_assert_str_eq(reply_code(r), "ok");
        cJSON_Delete(r);
    }
    cr_assert(ws_open(&t, d.port));
    cr_assert(ws_login(&t, "tanaka", "tanaka-password-1", NULL));
    cr_assert(ws_open(&s, d.port));
    cr_assert(ws_login(&s, "sato", "sato-password-1", NULL));

    /* Rooms: created (by staff), members invited and removed, admins made, someone leaving. */
    cJSON *r = ws_callf(&t, "\"op\":\"room.create\",\"name\":\"現地班\",\"members\":[\"sato\"]");
    cr_assert_str_eq(reply_code(r), "ok");
    char room[64], target[80];
    snprintf(room, sizeof room, "%s",
             cJSON_GetObjectItem(cJSON_GetObjectItem(r, "room"), "room")->valuestring);
    snprintf(target, sizeof target, "room:%s", room);
    cJSON_Delete(r);
    expect_audit(&a, "room.create", "tanaka", target);
    cJSON *e = audit_newest(&a, "room.create");
    cJSON *details = cJSON_GetObjectItem(e, "details");
    cr_assert_str_eq(cJSON_GetObjectItem(details, "room_name")->valuestring, "現地班");
    cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(details, "members"), 0)->valuestring,
                     "sato");
    cJSON_Delete(e);
    const char *steps[][3] = {
        {"\"op\":\"room.invite\",\"user\":\"suzuki\"", "room.invite", "suzuki"},
        {"\"op\":\"room.admin\",\"user\":\"sato\",\"admin\":true", "room.admin", "sato"},
        {"\"op\":\"room.remove\",\"user\":\"suzuki\"", "room.remove", "suzuki"},
        {"\"op\":\"room.update\",\"name\":\"現地班A\"", "room.update", target},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        r = ws_callf(&t, "%s,\"room\":\"%s\"", steps[i][0], room);
        cr_assert_str_eq(reply_code(r), "ok", "%s", steps[i][0]);
        cJSON_Delete(r);
        expect_audit(&a, steps[i][1], "tanaka", steps[i][2]);
    }
    r = ws_callf(&s, "\"op\":\"room.leave\",\"room\":\"%s\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    expect_audit(&a, "room.leave", "sato", "sato");

    /* Notices: posted, edited, reminded, exported, withdrawn. */
    r = ws_callf(&a, "\"op\":\"notice.post\",\"title\":\"安否確認\",\"body\":\"回答してください\","
                     "\"to\":[\"dept:総務課\"],\"choices\":[\"無事\",\"負傷\"]");
    cr_assert_str_eq(reply_code(r), "ok");
    long long id =
        (long long)cJSON_GetObjectItem(cJSON_GetObjectItem(r, "notice"), "id")->valuedouble;
    cJSON_Delete(r);
    char ntarget[32];
    snprintf(ntarget, sizeof ntarget, "notice:%lld", id);
    expect_audit(&a, "notice.post", "admin", ntarget);
    e = audit_newest(&a, "notice.post");
    details = cJSON_GetObjectItem(e, "details");
    cr_assert_str_eq(cJSON_GetObjectItem(details, "title")->valuestring, "安否確認");
    cr_assert_eq(cJSON_GetObjectItem(details, "recipients")->valuedouble, 3);
    cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(details, "to"), 0)->valuestring,
                     "dept:総務課");
    cJSON_Delete(e);
    const char *nsteps[][2] = {
        {"\"op\":\"notice.edit\",\"title\":\"安否確認（再）\"", "notice.edit"},
        {"\"op\":\"notice.remind\"", "notice.remind"},
        {"\"op\":\"notice.report\",\"format\":\"csv\"", "notice.export"},
        {"\"op\":\"notice.withdraw\"", "notice.withdraw"},
    };
    for (size_t i = 0; i < sizeof nsteps / sizeof nsteps[0]; i++) {
        r = ws_callf(&a, "%s,\"notice\":%lld", nsteps[i][0], id);
        cr_assert_str_eq(reply_code(r), "ok", "%s", nsteps[i][0]);
        cJSON_Delete(r);
        expect_audit(&a, nsteps[i][1], "admin", ntarget);
    }
    e = audit_newest(&a, "notice.remind");
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(e, "details"), "reminded")->valuedouble,
                 3);
    cJSON_Delete(e);

    /* Exports: users, the audit log itself, a room. Browsing is not an export. */
    r = ws_callf(&a, "\"op\":\"user.list\"");
    cJSON_Delete(r);
    cr_assert_null(audit_newest(&a, "user.export"), "a JSON listing is no export");
    r = ws_callf(&a, "\"op\":\"user.list\",\"format\":\"csv\"");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    expect_audit(&a, "user.export", "admin", "");
    r = ws_callf(&a, "\"op\":\"audit.list\",\"format\":\"csv\"");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    expect_audit(&a, "audit.export", "admin", "");
    r = ws_callf(&t, "\"op\":\"room.export\",\"room\":\"%s\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    expect_audit(&a, "room.export", "tanaka", target);
    ws_close_fd(&a);
    ws_close_fd(&t);
    ws_close_fd(&s);
}
