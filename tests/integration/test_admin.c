/* test_admin.c - dispatched staff and devices against the real kizunad: invitations, accounts
 * that expire, shared devices that log out when idle, contact details; the time zone setting,
 * and a thousand-user import at the default password cost. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* Issue 13, item 4: the server's time zone is a setting (default Asia/Tokyo), checked when
 * kizunad starts: a name tzdata does not have is refused, saying so, instead of UTC. */
Test(admin, the_time_zone_is_a_setting_checked_at_start)
{
    char out[2048], data[300];
    snprintf(data, sizeof data, "%s/not-initialised", d.dir);
    const char *bad[] = {"/bin/sh",    "-c", "exec \"$0\" serve --data \"$1\" --set \"$2\" 2>&1",
                         KIZUNAD_PATH, data, "time_zone=Mars/Olympus",
                         NULL};
    cr_assert_eq(run_capture(bad, NULL, NULL, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "time_zone") && strstr(out, "Mars/Olympus") && strstr(out, "tzdata"),
              "%s", out);
    const char *good[] = {"/bin/sh",    "-c", "exec \"$0\" serve --data \"$1\" --set \"$2\" 2>&1",
                          KIZUNAD_PATH, data, "time_zone=Europe/London",
                          NULL};
    cr_assert_eq(run_capture(good, NULL, NULL, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "is not initialised"), "the zone passed, the data did not: %s", out);

    /* The default server says Asia/Tokyo to clients, and writes CSV times in it; a server set
     * to UTC writes UTC. */
    struct ws a;
    cr_assert(ws_open(&a, d.port));
    cJSON *r = ws_call(
        &a,
        "{\"id\":1,\"op\":\"login\",\"login\":\"admin\",\"password\":\"" TEST_ADMIN_PASSWORD "\"}");
    cr_assert_str_eq(reply_code(r), "ok");
    cr_assert_str_eq(cJSON_GetObjectItem(r, "time_zone")->valuestring, "Asia/Tokyo");
    cr_assert_str_eq(cJSON_GetObjectItem(r, "time_zone_posix")->valuestring, "JST-9");
    cJSON_Delete(r);
    r = ws_call(&a, "{\"id\":2,\"op\":\"audit.list\",\"action\":\"login\",\"limit\":1}");
    time_t at =
        (time_t)(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "entries"), 0), "at")
                     ->valuedouble /
                 1000);
    cJSON_Delete(r);
    r = ws_call(&a, "{\"id\":3,\"op\":\"audit.list\",\"action\":\"login\",\"limit\":1,"
                    "\"format\":\"csv\"}");
    char want[40];
    struct tm tm;
    time_t jst = at + 9 * 3600;
    gmtime_r(&jst, &tm);
    strftime(want, sizeof want, "\n\"%Y-%m-%d %H:%M:%S\",\"admin\"", &tm);
    cr_assert(strstr(cJSON_GetObjectItem(r, "csv")->valuestring, want), "%s",
              cJSON_GetObjectItem(r, "csv")->valuestring);
    cJSON_Delete(r);
    ws_close_fd(&a);

    struct kzd u;
    kzd_setup_with(&u, "\"time_zone\":\"UTC\"");
    cr_assert(ws_open(&a, u.port));
    r = ws_call(&a,
                "{\"id\":1,\"op\":\"login\",\"login\":\"admin\",\"password\":\"" TEST_ADMIN_PASSWORD
                "\"}");
    cr_assert_str_eq(cJSON_GetObjectItem(r, "time_zone")->valuestring, "UTC");
    cr_assert_str_eq(cJSON_GetObjectItem(r, "time_zone_posix")->valuestring, "UTC0");
    cJSON_Delete(r);
    r = ws_call(&a, "{\"id\":2,\"op\":\"audit.list\",\"action\":\"login\",\"limit\":1}");
    at =
        (time_t)(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "entries"), 0), "at")
                     ->valuedouble /
                 1000);
    cJSON_Delete(r);
    r = ws_call(&a, "{\"id\":3,\"op\":\"audit.list\",\"action\":\"login\",\"limit\":1,"
                    "\"format\":\"csv\"}");
    gmtime_r(&at, &tm);
    strftime(want, sizeof want, "\n\"%Y-%m-%d %H:%M:%S\",\"admin\"", &tm);
    cr_assert(strstr(cJSON_GetObjectItem(r, "csv")->valuestring, want), "%s",
              cJSON_GetObjectItem(r, "csv")->valuestring);
    cJSON_Delete(r);
    ws_close_fd(&a);
    kzd_teardown(&u);
}

/* The stored password hash of a user (read from the database while the server runs). */
static void stored_hash(const struct kzd *k, const char *login, char *out, size_t n)
{
    char path[400];
    snprintf(path, sizeof path, "%s/kizuna.db", k->dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT pw_hash FROM users WHERE login = ?", -1, &st, NULL),
                 SQLITE_OK);
    sqlite3_bind_text(st, 1, login, -1, SQLITE_STATIC);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "no user %s", login);
    snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* Issue 13, item 5: 1,000 users took 100 s (240 s on a busy machine): each one-time password
 * went through argon2id at the default cost. One-time passwords are random, so they are stored
 * with a keyed BLAKE2b hash; chosen passwords stay argon2id, and both log in. Measured with the
 * real server (default password cost) and the real CLI. */
Test(admin, a_thousand_users_import_in_seconds_at_the_default_password_cost)
{
    struct kzd k;
    /* The defaults, where the test configuration is small: the reply holds 1,000 passwords. */
    kzd_setup_with(&k, "\"argon2_opslimit\":2,\"argon2_memlimit_kib\":65536,"
                       "\"max_frame_bytes\":1048576,\"max_queue_bytes\":8388608,"
                       "\"socket_sndbuf_bytes\":262144");
    char cfgdir[400], env_dir[450], env_srv[100], csv_path[400], out[8192];
    snprintf(cfgdir, sizeof cfgdir, "%s/cli", k.dir);
    snprintf(env_dir, sizeof env_dir, "KIZUNA_CONFIG_DIR=%s", cfgdir);
    snprintf(env_srv, sizeof env_srv, "KIZUNA_SERVER=%s", k.url);
    const char *env[] = {env_dir, env_srv, "KIZUNA_PASSWORD=" TEST_ADMIN_PASSWORD, NULL};
    const char *login[] = {KIZUNA_PATH, "login", "admin", NULL};
    cr_assert_eq(run_capture(login, env, NULL, out, sizeof out), 0, "%s", out);

    snprintf(csv_path, sizeof csv_path, "%s/staff.csv", k.dir);
    FILE *f = fopen(csv_path, "w");
    cr_assert_not_null(f);
    fputs("login,name,department,role,groups\n", f);
    const char *depts[] = {"総務課", "建設課", "福祉課", "危機管理課", "税務課"};
    for (int i = 0; i < 1000; i++)
        fprintf(f, "u%04d,職員 %d,%s,%s,%s\n", i, i, depts[i % 5], i % 50 ? "staff" : "hq",
                i % 3 ? "消防団;避難所" : "");
    fclose(f);
    const char *import[] = {KIZUNA_PATH, "admin", "import", csv_path, NULL};
    long long t0 = mono_ms();
    int rc = run_capture(import, env, NULL, out, sizeof out);
    long long took = mono_ms() - t0;
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "imported: 1000 added"), "%s", out);
    /* No timed assertion (docs/performance.md has the figures, from tests/bench/import.sh): the
     * suite's 60 s deadline is what argon2id at the default cost could not meet (100 to 240 s),
     * and the stored hashes below say why. */
    fprintf(stderr, "a_thousand_users_import: %lld ms\n", took);

    /* The one-time password of u0007, from the passwords file (BOM, header, rows). */
    char pwfile[450], line[256], otp[64] = "";
    snprintf(pwfile, sizeof pwfile, "%s.passwords.csv", csv_path);
    f = fopen(pwfile, "r");
    cr_assert_not_null(f);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "\"u0007\",\"", 9) == 0)
            snprintf(otp, sizeof otp, "%.*s", (int)strcspn(line + 9, "\""), line + 9);
    fclose(f);
    cr_assert_eq(strlen(otp), 20, "20 characters: over 112 bits (docs/security.md)");

    char hash[256];
    stored_hash(&k, "u0007", hash, sizeof hash);
    cr_assert(strncmp(hash, "$kzotp1$", 8) == 0, "a keyed fast hash: %s", hash);
    stored_hash(&k, "admin", hash, sizeof hash);
    cr_assert(strncmp(hash, "$argon2id$", 10) == 0, "%s", hash);

    struct ws w;
    cr_assert(ws_open(&w, k.port));
    cr_assert(!ws_login(&w, "u0007", "wrong-one-time-pw-12", NULL), "a wrong password is wrong");
    cr_assert(ws_login(&w, "u0007", otp, NULL), "the one-time password logs in");
    cJSON *r = ws_callf(&w,
                        "\"op\":\"passwd\",\"old_password\":\"%s\","
                        "\"new_password\":\"my-own-password-7\"",
                        otp);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    ws_close_fd(&w);
    stored_hash(&k, "u0007", hash, sizeof hash);
    cr_assert(strncmp(hash, "$argon2id$", 10) == 0, "a chosen password is argon2id: %s", hash);
    cr_assert(ws_open(&w, k.port));
    cr_assert(!ws_login(&w, "u0007", otp, NULL), "the one-time password is gone");
    cr_assert(ws_login(&w, "u0007", "my-own-password-7", NULL));
    ws_close_fd(&w);
    cr_assert(ws_open(&w, k.port));
    cr_assert(ws_login(&w, "admin", TEST_ADMIN_PASSWORD, NULL), "argon2id hashes still work");
    ws_close_fd(&w);
    kzd_teardown(&k);
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
    reply_room(r, room, sizeof room);
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
