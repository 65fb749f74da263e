/* test_cli.c - the kizuna command against the real kizunad, as a script would use it. */
#include <criterion/criterion.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static struct kzd d;
static char cfgdir_admin[300], cfgdir_user[300];
/* One more "K=V" in the environment of the next kizuna runs (e.g. "TZ=..."), or NULL. */
static const char *extra_env;

static void setup(void)
{
    kzd_setup(&d);
    snprintf(cfgdir_admin, sizeof cfgdir_admin, "%s/cli-admin", d.dir);
    snprintf(cfgdir_user, sizeof cfgdir_user, "%s/cli-user", d.dir);
}

static void teardown(void)
{
    kzd_teardown(&d);
}

/* One timeout for every test of the binary. Criterion 2.4.1's BoxFort keeps the running tests'
 * deadlines in a sorted list, and inserting an earlier one drops every later one from it
 * (bxfi_push_timeout does not link the rest of the list behind the new entry): with one test at
 * 90 s among tests at 60 s, a 60 s test started under --jobs 2 while the 90 s one ran, the 90 s
 * one lost its timeout, and LeakSanitizer failed the passing run for the 48 bytes lost with it. */
TestSuite(cli, .init = setup, .fini = teardown, .timeout = 90);

/* Runs kizuna with the given config dir, optional password and stdin, and the arguments that
 * follow (NULL-terminated; NULLs among them end the list early); returns the exit code. */
static int kizuna(const char *cfgdir, const char *password, const char *stdin_text, char *out,
                  size_t outlen, ...)
{
    char env_dir[400], env_srv[100], env_pw[300];
    snprintf(env_dir, sizeof env_dir, "KIZUNA_CONFIG_DIR=%s", cfgdir);
    snprintf(env_srv, sizeof env_srv, "KIZUNA_SERVER=%s", d.url);
    snprintf(env_pw, sizeof env_pw, "KIZUNA_PASSWORD=%s", password ? password : "");
    const char *env[] = {env_dir, env_srv, env_pw, extra_env, NULL};
    const char *argv[16] = {KIZUNA_PATH};
    va_list ap;
    va_start(ap, outlen);
    for (int i = 1; i < 15 && (argv[i] = va_arg(ap, const char *)); i++)
        ;
    va_end(ap);
    argv[15] = NULL;
    return run_capture(argv, env, stdin_text, out, outlen);
}

#define K(dir, pw, in, ...) kizuna(dir, pw, in, out, sizeof out, __VA_ARGS__, (const char *)NULL)

Test(cli, admin_adds_a_user_who_logs_in)
{
    char out[8192];
    cr_assert_eq(K(cfgdir_admin, TEST_ADMIN_PASSWORD, NULL, "login", "admin", NULL, NULL, NULL), 0,
                 "%s", out);
    cr_assert(strstr(out, "logged in"), "%s", out);

    char path[400];
    snprintf(path, sizeof path, "%s/session.json", cfgdir_admin);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600, "the token file is private");

    cr_assert_eq(K(cfgdir_admin, NULL, "tanaka-password-1\n", "admin", "user", "add", "tanaka",
                   "--password-stdin"),
                 0, "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "--json", "admin", "user", "add", "hanako"), 0, "%s",
                 out);
    cJSON *r = cJSON_Parse(out);
    cr_assert_not_null(r, "--json prints one JSON document: %s", out);
    const cJSON *otp = cJSON_GetObjectItem(r, "password");
    cr_assert(cJSON_IsString(otp) && strlen(otp->valuestring) == 20, "20 characters: 114 bits");
    cJSON_Delete(r);

    cr_assert_eq(K(cfgdir_user, "tanaka-password-1", NULL, "login", "tanaka", NULL, NULL, NULL), 0,
                 "%s", out);
    cr_assert_eq(K(cfgdir_user, NULL, NULL, "whoami", "--json", NULL, NULL, NULL), 0, "%s", out);
    r = cJSON_Parse(out);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "user"), "login")->valuestring,
                     "tanaka");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "user"), "role")->valuestring,
                     "staff");
    cJSON_Delete(r);

    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "user", "list", NULL, NULL), 0, "%s", out);
    cr_assert(strstr(out, "tanaka") && strstr(out, "hanako"), "%s", out);
}

Test(cli, exit_codes)
{
    char out[8192];
    cr_assert_eq(K(cfgdir_admin, "wrong-password", NULL, "login", "admin", NULL, NULL, NULL), 1);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "frobnicate", NULL, NULL, NULL, NULL), 2);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "user", "disable", NULL, NULL), 2);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "whoami", NULL, NULL, NULL, NULL), 1, "not logged in");
    /* Port 1 on loopback: nothing listens there. */
    cr_assert_eq(
        K(cfgdir_admin, "x", NULL, "--server", "http://127.0.0.1:1", "login", "admin", NULL), 3);
    cr_assert_eq(
        K(cfgdir_admin, "x", NULL, "--json", "--server", "http://127.0.0.1:1", "login", "admin"),
        3);
    cr_assert(strstr(out, "\"unreachable\""), "%s", out);

    cr_assert_eq(K(cfgdir_admin, TEST_ADMIN_PASSWORD, NULL, "login", "admin", NULL, NULL, NULL), 0);
    cr_assert_eq(K(cfgdir_admin, NULL, "staff-password-1\n", "admin", "user", "add", "staff1",
                   "--password-stdin"),
                 0, "%s", out);
    cr_assert_eq(K(cfgdir_user, "staff-password-1", NULL, "login", "staff1", NULL, NULL, NULL), 0);
    cr_assert_eq(K(cfgdir_user, NULL, NULL, "--json", "admin", "user", "list", NULL), 1);
    cr_assert(strstr(out, "\"forbidden\""), "%s", out);
}

Test(cli, logout_forgets_and_revokes)
{
    char out[8192], path[400];
    cr_assert_eq(K(cfgdir_admin, TEST_ADMIN_PASSWORD, NULL, "login", "admin", NULL, NULL, NULL), 0);
    snprintf(path, sizeof path, "%s/session.json", cfgdir_admin);
    FILE *f = fopen(path, "r");
    char saved[2048] = "";
    size_t n = fread(saved, 1, sizeof saved - 1, f);
    saved[n] = '\0';
    fclose(f);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "logout", NULL, NULL, NULL, NULL), 0, "%s", out);
    struct stat sb;
    cr_assert_neq(stat(path, &sb), 0, "the session file is gone");
    /* Put the old token back: the server must refuse it. */
    f = fopen(path, "w");
    fputs(saved, f);
    fclose(f);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "whoami", NULL, NULL, NULL, NULL), 1);
}

/* Three users hold a conversation; a tail follows it live, sees read counts rise, and keeps
 * going through a server restart and a kill -9 with no gap and no repeat. */
Test(cli, conversation_with_a_tail_that_survives_restarts)
{
    char out[8192], dir3[300];
    snprintf(dir3, sizeof dir3, "%s/cli-third", d.dir);
    cr_assert_eq(K(cfgdir_admin, TEST_ADMIN_PASSWORD, NULL, "login", "admin", NULL, NULL, NULL), 0);
    cr_assert_eq(K(cfgdir_admin, NULL, "tanaka-password-1\n", "admin", "user", "add", "tanaka",
                   "--password-stdin"),
                 0);
    cr_assert_eq(K(cfgdir_admin, NULL, "sato-password-12\n", "admin", "user", "add", "sato",
                   "--password-stdin"),
                 0);
    cr_assert_eq(K(cfgdir_user, "tanaka-password-1", NULL, "login", "tanaka", NULL, NULL, NULL), 0);
    cr_assert_eq(K(dir3, "sato-password-12", NULL, "login", "sato", NULL, NULL, NULL), 0);
    cr_assert_eq(
        K(cfgdir_admin, NULL, NULL, "room", "create", "現地班", "--members", "tanaka,sato"), 0,
        "%s", out);

    char env_dir[400], env_srv[100];
    snprintf(env_dir, sizeof env_dir, "KIZUNA_CONFIG_DIR=%s", cfgdir_user);
    snprintf(env_srv, sizeof env_srv, "KIZUNA_SERVER=%s", d.url);
    const char *env[] = {env_dir, env_srv, NULL};
    const char *argv[] = {KIZUNA_PATH, "tail", "現地班", NULL};
    int fd;
    pid_t tail = spawn_reader(argv, env, &fd);
    static char buf[65536];
    size_t len = 0;
    /* The tail is live once a message sent now shows up in it. */
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "send", "現地班", "一報: 県道12号線 冠水", NULL), 0);
    cr_assert(read_until(fd, buf, sizeof buf, &len, "一報", 10000), "tail shows: %s", buf);
    cr_assert_eq(K(dir3, NULL, "避難所に200名\n", "send", "現地班", NULL, NULL, NULL), 0);
    cr_assert(read_until(fd, buf, sizeof buf, &len, "避難所に200名", 10000), "%s", buf);
    /* 既読 rises beside one's own messages as the others read (as in LINE). */
    cr_assert_eq(K(cfgdir_user, NULL, NULL, "send", "現地班", "了解、向かいます", NULL), 0);
    cr_assert(read_until(fd, buf, sizeof buf, &len, "了解、向かいます", 10000), "%s", buf);
    cr_assert_eq(K(dir3, NULL, NULL, "read", "現地班", NULL, NULL, NULL), 0);
    cr_assert(read_until(fd, buf, sizeof buf, &len, "既読 1", 10000), "%s", buf);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "read", "現地班", NULL, NULL, NULL), 0);

    /* Restart; send while the tail is cut off; kill -9 after an acknowledgement. */
    cr_assert_eq(kzd_stop(&d), 0);
    kzd_start(&d);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "send", "現地班", "再起動後 1", NULL), 0, "%s", out);
    kzd_kill(&d);
    kzd_start(&d);
    cr_assert_eq(K(dir3, NULL, NULL, "send", "現地班", "再起動後 2", NULL), 0, "%s", out);
    cr_assert(read_until(fd, buf, sizeof buf, &len, "再起動後 2", 20000), "%s", buf);
    kill(tail, SIGTERM);
    waitpid(tail, NULL, 0);
    close(fd);

    /* Every message exactly once, in order. */
    const char *expect[] = {"一報: 県道12号線 冠水", "避難所に200名", "了解、向かいます",
                            "再起動後 1", "再起動後 2"};
    const char *at = buf;
    for (size_t i = 0; i < 5; i++) {
        const char *hit = strstr(at, expect[i]);
        cr_assert_not_null(hit, "'%s' in order in: %s", expect[i], buf);
        cr_assert_null(strstr(hit + 1, expect[i]), "'%s' shown twice: %s", expect[i], buf);
        at = hit;
    }
}

/* ---- issue 13, item 1: 既読 as staff know it from LINE ---- */

/* The position a `send --json` reply names. */
static long long sent_pos(const char *json)
{
    cJSON *r = cJSON_Parse(json);
    cr_assert_not_null(r, "%s", json);
    long long pos = (long long)cJSON_GetObjectItem(r, "pos")->valuedouble;
    cJSON_Delete(r);
    return pos;
}

/* The unread count `rooms --json` gives cfgdir for the room called name. */
static long long unread_in(const char *cfgdir, const char *name)
{
    char out[16384];
    cr_assert_eq(K(cfgdir, NULL, NULL, "--json", "rooms"), 0, "%s", out);
    cJSON *r = cJSON_Parse(out), *x;
    long long n = -1;
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(r, "rooms"))
    {
        if (strcmp(cJSON_GetObjectItem(x, "name")->valuestring, name) == 0)
            n = (long long)cJSON_GetObjectItem(x, "unread")->valuedouble;
    }
    cJSON_Delete(r);
    cr_assert_geq(n, 0, "%s in: %s", name, out);
    return n;
}

/* Whether `readers ROOM POS` lists login among those who have read it. */
static bool has_read(const char *room, long long pos, const char *login)
{
    char out[16384], p[32];
    snprintf(p, sizeof p, "%lld", pos);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "--json", "readers", room, p), 0, "%s", out);
    char needle[100];
    snprintf(needle, sizeof needle, "\"login\":\"%s\"", login);
    const char *un = strstr(out, "\"unread\"");
    const char *hit = strstr(out, needle);
    return hit && (!un || hit < un);
}

/* Polls has_read for up to 10 s: a tail marks what it showed within a second. */
static bool comes_to_have_read(const char *room, long long pos, const char *login)
{
    for (int i = 0; i < 50; i++) {
        if (has_read(room, pos, login))
            return true;
        usleep(200 * 1000);
    }
    return false;
}

/* What tail and history show is read (unless --no-read), a tail opens a room at its first
 * unread message, and the 既読 of one's own messages changes in one line, not one per message. */
Test(cli, what_tail_and_history_show_is_read_and_kidoku_comes_in_one_line)
{
    char out[8192], dir3[300];
    snprintf(dir3, sizeof dir3, "%s/cli-third", d.dir);
    cr_assert_eq(K(cfgdir_admin, TEST_ADMIN_PASSWORD, NULL, "login", "admin"), 0);
    cr_assert_eq(K(cfgdir_admin, NULL, "tanaka-password-1\n", "admin", "user", "add", "tanaka",
                   "--password-stdin"),
                 0);
    cr_assert_eq(K(cfgdir_admin, NULL, "sato-password-12\n", "admin", "user", "add", "sato",
                   "--password-stdin"),
                 0);
    cr_assert_eq(K(cfgdir_user, "tanaka-password-1", NULL, "login", "tanaka"), 0);
    cr_assert_eq(K(dir3, "sato-password-12", NULL, "login", "sato"), 0);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "room", "create", "本部", "--members", "tanaka,sato"),
                 0, "%s", out);

    /* history shows and marks read; with --no-read it only shows. */
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "--json", "send", "本部", "第1報"), 0, "%s", out);
    long long p1 = sent_pos(out);
    cr_assert_eq(unread_in(dir3, "本部"), 1);
    cr_assert_eq(K(dir3, NULL, NULL, "history", "本部", "--no-read"), 0, "%s", out);
    cr_assert(strstr(out, "第1報"), "%s", out);
    cr_assert_eq(unread_in(dir3, "本部"), 1, "--no-read leaves it unread");
    cr_assert_not(has_read("本部", p1, "sato"));
    cr_assert_eq(K(dir3, NULL, NULL, "history", "本部"), 0, "%s", out);
    cr_assert_eq(unread_in(dir3, "本部"), 0, "shown, so read");
    cr_assert(has_read("本部", p1, "sato"));
    cr_assert_null(strstr(out, "既読"), "no 既読 beside others' messages: %s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "history", "本部", "--no-read"), 0, "%s", out);
    cr_assert(strstr(out, "第1報  既読 1"), "既読 beside one's own: %s", out);

    /* More unread than tail's ten lines of context: it opens at the first unread one, as LINE
     * opens a room, and marks them read. */
    long long p15 = 0;
    for (int i = 1; i <= 15; i++) {
        char text[32];
        snprintf(text, sizeof text, "続報 %02d", i);
        cr_assert_eq(K(cfgdir_admin, NULL, NULL, "--json", "send", "本部", text), 0, "%s", out);
        p15 = sent_pos(out);
    }
    char env_dir[400], env_srv[100];
    snprintf(env_dir, sizeof env_dir, "KIZUNA_CONFIG_DIR=%s", cfgdir_user);
    snprintf(env_srv, sizeof env_srv, "KIZUNA_SERVER=%s", d.url);
    const char *env[] = {env_dir, env_srv, NULL};
    const char *argv[] = {KIZUNA_PATH, "tail", "本部", NULL};
    int fd;
    pid_t tail = spawn_reader(argv, env, &fd);
    static char buf[65536];
    size_t len = 0;
    cr_assert(read_until(fd, buf, sizeof buf, &len, "続報 15", 10000), "%s", buf);
    cr_assert(strstr(buf, "第1報") && strstr(buf, "続報 01"), "from the first unread: %s", buf);
    cr_assert(comes_to_have_read("本部", p15, "tanaka"), "the tail marked what it showed");
    cr_assert_eq(unread_in(cfgdir_user, "本部"), 0);

    /* A message that arrives while the tail follows is read once it is shown. */
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "--json", "send", "本部", "live の報告"), 0, "%s",
                 out);
    long long live = sent_pos(out);
    cr_assert(read_until(fd, buf, sizeof buf, &len, "live の報告", 10000), "%s", buf);
    cr_assert(comes_to_have_read("本部", live, "tanaka"));

    /* tanaka's own three messages, then sato reads them all at once: one 既読 line. */
    long long own[3];
    for (int i = 0; i < 3; i++) {
        char text[32];
        snprintf(text, sizeof text, "田中より %d", i + 1);
        cr_assert_eq(K(cfgdir_user, NULL, NULL, "--json", "send", "本部", text), 0, "%s", out);
        own[i] = sent_pos(out);
        cr_assert(read_until(fd, buf, sizeof buf, &len, text, 10000), "%s", buf);
    }
    size_t before = len;
    cr_assert_eq(K(dir3, NULL, NULL, "read", "本部"), 0, "%s", out);
    char line[200];
    snprintf(line, sizeof line, "既読 1: #%lld #%lld #%lld (sato)", own[0], own[1], own[2]);
    cr_assert(read_until(fd, buf, sizeof buf, &len, line, 10000), "one line, '%s': %s", line,
              buf + before);
    snprintf(line, sizeof line, "#%lld 既読", own[0]);
    cr_assert_null(strstr(buf + before, line), "not a line per message: %s", buf + before);
    kill(tail, SIGTERM);
    waitpid(tail, NULL, 0);
    close(fd);
}

Test(cli, an_admin_revokes_a_lost_phone)
{
    char out[8192];
    cr_assert_eq(K(cfgdir_admin, TEST_ADMIN_PASSWORD, NULL, "login", "admin"), 0);
    cr_assert_eq(K(cfgdir_admin, NULL, "lost-phone-pass-1\n", "admin", "user", "add", "lost",
                   "--dept", "建設課", "--groups", "消防団,巡回班", "--password-stdin"),
                 0, "%s", out);
    cr_assert(strstr(out, "lost"), "%s", out);
    cr_assert_eq(K(cfgdir_user, "lost-phone-pass-1", NULL, "login", "lost", "--device", "phone"),
                 0);
    cr_assert_eq(K(cfgdir_user, NULL, NULL, "sessions"), 0, "%s", out);
    cr_assert(strstr(out, "phone") && strstr(out, "(this one)"), "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "--json", "admin", "sessions", "lost"), 0, "%s", out);
    cJSON *r = cJSON_Parse(out);
    cJSON *ses = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "sessions"), 0);
    char id[32];
    snprintf(id, sizeof id, "%d", (int)cJSON_GetObjectItem(ses, "id")->valuedouble);
    cJSON_Delete(r);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "revoke", id), 0, "%s", out);
    cr_assert_eq(K(cfgdir_user, NULL, NULL, "whoami"), 1, "the phone's token is dead");
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "--json", "admin", "user", "list"), 0);
    cr_assert(strstr(out, "\"groups\":[\"巡回班\",\"消防団\"]") ||
                  strstr(out, "\"groups\":[\"消防団\",\"巡回班\"]"),
              "both separators split groups: %s", out);
}

Test(cli, the_audit_log_exports_as_json_lines)
{
    char out[16384];
    cr_assert_eq(K(cfgdir_admin, TEST_ADMIN_PASSWORD, NULL, "login", "admin"), 0);
    cr_assert_eq(
        K(cfgdir_admin, NULL, "audit-pass-12\n", "admin", "user", "add", "aud", "--password-stdin"),
        0);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "user", "disable", "aud"), 0);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "--json", "admin", "audit", "--target", "aud"), 0,
                 "%s", out);
    int lines = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *e = cJSON_Parse(line);
        cr_assert_not_null(e, "each line is one JSON object: %s", line);
        cJSON_Delete(e);
        lines++;
    }
    cr_assert_eq(lines, 2, "user.add and user.disable");
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "audit", "--action", "user.disable"), 0);
    cr_assert(strstr(out, "user.disable") && strstr(out, "aud"), "%s", out);
}

/* ---- issue 13, item 8: telling people why they were cut off ---- */

/* `kizuna tail [ROOM]` as cfgdir, its standard output and error on one pipe (*fd): what the
 * person at the terminal sees. */
static pid_t spawn_tail(const char *cfgdir, const char *room, int *fd)
{
    char env_dir[400], env_srv[100];
    snprintf(env_dir, sizeof env_dir, "KIZUNA_CONFIG_DIR=%s", cfgdir);
    snprintf(env_srv, sizeof env_srv, "KIZUNA_SERVER=%s", d.url);
    const char *env[] = {env_dir, env_srv, NULL};
    const char *argv[] = {
        "/bin/sh",   "-c", room ? "exec \"$0\" tail \"$1\" 2>&1" : "exec \"$0\" tail 2>&1",
        KIZUNA_PATH, room, NULL};
    return spawn_reader(argv, env, fd);
}

/* Shared devices idle for 6 s: long enough for every tail to be following first. */
static void setup_idle(void)
{
    kzd_setup_with(&d, "\"shared_session_idle_s\":6");
    snprintf(cfgdir_admin, sizeof cfgdir_admin, "%s/cli-admin", d.dir);
    snprintf(cfgdir_user, sizeof cfgdir_user, "%s/cli-user", d.dir);
}

/* Four people follow a room when the server ends their sessions, each for its own reason: an
 * admin signs a lost phone out, disables an account, a dispatched account reaches its date, a
 * shared phone is left idle. Each tail says what happened and what to do, and stops (exit 1)
 * instead of reconnecting; the expired account, logging in again, is told it expired. */
Test(cli, a_tail_cut_off_says_why_and_what_to_do, .init = setup_idle)
{
    char out[8192];
    struct {
        const char *login, *says;
        char dir[300], buf[8192];
        size_t len;
        int fd;
        pid_t pid;
    } p[4] = {
        {.login = "rev",
         .says = "kizuna: an administrator signed this device out: log in again: kizuna login rev"},
        {.login = "dis",
         .says = "kizuna: an administrator disabled your account: ask an administrator to enable "
                 "it"},
        {.login = "exp",
         .says = "kizuna: your account has expired (the end date of a dispatched account): ask an "
                 "administrator to extend it"},
        {.login = "shr",
         .says = "kizuna: this shared device was signed out after being left idle: log in again: "
                 "kizuna login shr"},
    };
    cr_assert_eq(K(cfgdir_admin, TEST_ADMIN_PASSWORD, NULL, "login", "admin"), 0, "%s", out);
    for (int i = 0; i < 4; i++) {
        char pw[64];
        snprintf(pw, sizeof pw, "%s-password-1\n", p[i].login);
        cr_assert_eq(
            K(cfgdir_admin, NULL, pw, "admin", "user", "add", p[i].login, "--password-stdin"), 0,
            "%s", out);
        pw[strlen(pw) - 1] = '\0';
        snprintf(p[i].dir, sizeof p[i].dir, "%s/cli-%s", d.dir, p[i].login);
        cr_assert_eq(K(p[i].dir, pw, NULL, "login", p[i].login, i == 3 ? "--shared" : NULL), 0,
                     "%s", out);
    }
    cr_assert_eq(
        K(cfgdir_admin, NULL, NULL, "room", "create", "連絡", "--members", "rev,dis,exp,shr"), 0,
        "%s", out);
    for (int i = 0; i < 4; i++)
        p[i].pid = spawn_tail(p[i].dir, "連絡", &p[i].fd);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "send", "連絡", "始業"), 0, "%s", out);
    for (int i = 0; i < 4; i++)
        cr_assert(read_until(p[i].fd, p[i].buf, sizeof p[i].buf, &p[i].len, "始業", 15000),
                  "%s's tail follows: %s", p[i].login, p[i].buf);

    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "--json", "admin", "sessions", "rev"), 0, "%s", out);
    cJSON *r = cJSON_Parse(out);
    char id[32];
    snprintf(id, sizeof id, "%lld",
             (long long)cJSON_GetObjectItem(
                 cJSON_GetArrayItem(cJSON_GetObjectItem(r, "sessions"), 0), "id")
                 ->valuedouble);
    cJSON_Delete(r);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "revoke", id), 0, "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "user", "disable", "dis"), 0, "%s", out);
    /* The dispatch ends 1.5 s from now by the server's clock (a login reply's created_at). */
    struct ws a;
    cr_assert(ws_open(&a, d.port));
    r = ws_call(&a,
                "{\"id\":1,\"op\":\"login\",\"login\":\"admin\",\"password\":\"" TEST_ADMIN_PASSWORD
                "\"}");
    long long now = (long long)cJSON_GetObjectItem(cJSON_GetObjectItem(r, "session"), "created_at")
                        ->valuedouble;
    cJSON_Delete(r);
    r = ws_callf(&a, "\"op\":\"user.update\",\"login\":\"exp\",\"expires_at\":%lld", now + 1500);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    ws_close_fd(&a);

    for (int i = 0; i < 4; i++) {
        cr_assert(read_until(p[i].fd, p[i].buf, sizeof p[i].buf, &p[i].len, p[i].says, 20000),
                  "%s's tail says why: %s", p[i].login, p[i].buf);
        int status;
        cr_assert_eq(waitpid(p[i].pid, &status, 0), p[i].pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "%s's tail stops: %d", p[i].login,
                  status);
        cr_assert_null(strstr(p[i].buf, "reconnecting"), "%s", p[i].buf);
        close(p[i].fd);
    }
    cr_assert_eq(K(p[2].dir, "exp-password-1", NULL, "--json", "login", "exp"), 1, "%s", out);
    cr_assert(strstr(out, "the account has expired"), "not 'disabled': %s", out);
}

/* ---- issue 13, item 9: small things that read wrong ---- */

/* The line of text that contains needle, copied into line ("" if none). */
static void line_with(const char *text, const char *needle, char *line, size_t n)
{
    const char *at = strstr(text, needle);
    line[0] = '\0';
    if (!at)
        return;
    while (at > text && at[-1] != '\n')
        at--;
    snprintf(line, n, "%.*s", (int)strcspn(at, "\n"), at);
}

Test(cli, the_device_named_at_login_is_what_devices_and_the_audit_log_show)
{
    char out[16384];
    cr_assert_eq(K(cfgdir_admin, TEST_ADMIN_PASSWORD, NULL, "login", "admin"), 0, "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, "tanaka-password-1\n", "admin", "user", "add", "tanaka",
                   "--password-stdin"),
                 0, "%s", out);
    cr_assert_eq(
        K(cfgdir_user, "tanaka-password-1", NULL, "login", "tanaka", "--device", "田中のiPhone"), 0,
        "%s", out);
    cr_assert_eq(K(cfgdir_user, NULL, NULL, "devices"), 0, "%s", out);
    cr_assert(strstr(out, "田中のiPhone") && !strstr(out, "kizuna CLI on"), "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "--json", "admin", "audit", "--action",
                   "device.register", "--target", "tanaka"),
                 0, "%s", out);
    cr_assert(strstr(out, "\"label\":\"田中のiPhone\""), "%s", out);
}

Test(cli, admin_export_with_json_prints_json)
{
    char out[16384];
    cr_assert_eq(K(cfgdir_admin, TEST_ADMIN_PASSWORD, NULL, "login", "admin"), 0, "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "--json", "admin", "export"), 0, "%s", out);
    cJSON *r = cJSON_Parse(out);
    cr_assert(cJSON_IsObject(r), "one JSON document, not CSV: %s", out);
    cJSON *u = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "users"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(u, "login")->valuestring, "admin", "%s", out);
    cJSON_Delete(r);
}

/* A topic is not a rename, a one-to-one room is not `created the room ""`, and a page read
 * with --after says how to read the next newer one. */
Test(cli, room_events_and_paging_read_as_what_happened)
{
    char out[16384], line[512], hint[64];
    cr_assert_eq(K(cfgdir_admin, TEST_ADMIN_PASSWORD, NULL, "login", "admin"), 0, "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, "tanaka-password-1\n", "admin", "user", "add", "tanaka",
                   "--password-stdin"),
                 0, "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "room", "create", "本部", "--members", "tanaka"), 0,
                 "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "room", "topic", "本部", "台風10号"), 0, "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "room", "rename", "本部", "災害対策本部"), 0, "%s",
                 out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "history", "災害対策本部"), 0, "%s", out);
    line_with(out, "台風10号", line, sizeof line);
    cr_assert(strstr(line, "set the topic: 台風10号") && !strstr(line, "renamed"), "%s", out);
    line_with(out, "災害対策本部", line, sizeof line);
    cr_assert(strstr(line, "renamed the room to \"災害対策本部\"") && !strstr(line, "topic"), "%s",
              out);

    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "dm", "tanaka"), 0, "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "history", "@tanaka"), 0, "%s", out);
    cr_assert(strstr(out, "started this one-to-one room") && !strstr(out, "created the room"), "%s",
              out);

    long long pos[3];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(K(cfgdir_admin, NULL, NULL, "send", "災害対策本部", i ? "続報" : "一報"), 0,
                     "%s", out);
        cr_assert_eq(sscanf(out, "sent #%lld", &pos[i]), 1, "%s", out);
    }
    char after[32];
    snprintf(after, sizeof after, "%lld", pos[0] - 1);
    cr_assert_eq(
        K(cfgdir_admin, NULL, NULL, "history", "災害対策本部", "--after", after, "--limit", "2"), 0,
        "%s", out);
    snprintf(hint, sizeof hint, "(more: --after %lld)", pos[1]);
    cr_assert(strstr(out, "一報") && strstr(out, hint), "%s wanted: %s", out, hint);
}

/* --announce takes a room's name like every other command, and a tail of every room shows the
 * notice by what the CLI accepts (`kizuna notice show N`), not by its room's raw id. */
Test(cli, a_notice_announced_by_room_name_reads_in_tail)
{
    char out[8192], line[512], want[64];
    static char buf[32768];
    size_t len = 0;
    int fd;
    cr_assert_eq(K(cfgdir_admin, TEST_ADMIN_PASSWORD, NULL, "login", "admin"), 0, "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, "tanaka-password-1\n", "admin", "user", "add", "tanaka",
                   "--password-stdin"),
                 0, "%s", out);
    cr_assert_eq(K(cfgdir_user, "tanaka-password-1", NULL, "login", "tanaka"), 0, "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "room", "create", "全体連絡", "--members", "tanaka"),
                 0, "%s", out);
    pid_t tail = spawn_tail(cfgdir_user, NULL, &fd);
    /* A tail of every room follows from now: it is live once a message sent now shows. */
    bool live = false;
    for (int i = 0; i < 40 && !live; i++) {
        cr_assert_eq(K(cfgdir_admin, NULL, NULL, "send", "全体連絡", "点呼"), 0, "%s", out);
        live = read_until(fd, buf, sizeof buf, &len, "点呼", 500);
    }
    cr_assert(live, "%s", buf);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "notice", "post", "--title", "安否確認", "--body",
                   "回答してください", "--to", "all", "--announce", "全体連絡"),
                 0, "%s", out);
    long long id = 0;
    cr_assert_eq(sscanf(out, "posted notice #%lld", &id), 1, "%s", out);
    snprintf(want, sizeof want, "kizuna notice show %lld", id);
    cr_assert(read_until(fd, buf, sizeof buf, &len, want, 10000), "%s", buf);
    line_with(buf, want, line, sizeof line);
    cr_assert(strncmp(line, "[お知らせ] ", strlen("[お知らせ] ")) == 0 && strstr(line, "安否確認"),
              "%s", line);
    snprintf(want, sizeof want, "kizuna://notice/%lld", id);
    cr_assert(read_until(fd, buf, sizeof buf, &len, want, 10000), "announced: %s", buf);
    line_with(buf, want, line, sizeof line);
    cr_assert(strncmp(line, "[全体連絡] ", strlen("[全体連絡] ")) == 0, "%s", line);
    kill(tail, SIGTERM);
    waitpid(tail, NULL, 0);
    close(fd);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(cli, csv_import_dry_run_atomic_apply_and_idempotent_reimport)
{
    char out[65536], bad[400], good[400], pwfile[450];
    cr_assert_eq(K(cfgdir_admin, TEST_ADMIN_PASSWORD, NULL, "login", "admin"), 0);
    snprintf(bad, sizeof bad, "%s/bad.csv", d.dir);
    write_file(bad, "login,name,department,role,groups\n"
                    "sato,佐藤,建設課,staff,消防団\n"
                    "sato,佐藤 二郎,建設課,staff,\n" /* duplicate login */
                    "ito,伊藤,総務課,boss,\n"        /* unknown role */
                    "kato,\xff\xfe,総務課,staff,\n"  /* broken UTF-8 */
                    "endo,遠藤\n");                  /* missing columns */
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "import", bad, "--dry-run"), 1, "%s", out);
    cr_assert(strstr(out, "line 3:") && strstr(out, "already appears on line 2"), "%s", out);
    cr_assert(strstr(out, "line 4:") && strstr(out, "unknown role"), "%s", out);
    cr_assert(strstr(out, "line 5:") && strstr(out, "UTF-8"), "%s", out);
    cr_assert(strstr(out, "line 6:") && strstr(out, "too few columns"), "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "import", bad), 1, "apply refuses");
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "--json", "admin", "user", "list"), 0);
    cr_assert_null(strstr(out, "\"sato\""), "nothing of a bad file is imported: %s", out);

    /* A good file, with a BOM, quoted fields and groups. */
    snprintf(good, sizeof good, "%s/staff.csv", d.dir);
    char csv[8192] = "\xef\xbb\xbflogin,name,department,role,groups,email\n";
    for (int i = 0; i < 30; i++) {
        char line[200];
        snprintf(line, sizeof line, "u%02d,\"職員 %d, 第%d班\",%s,%s,%s,u%02d@example.jp\n", i, i,
                 i % 3,
                 i % 3 == 0   ? "総務課"
                 : i % 3 == 1 ? "建設課"
                              : "福祉課",
                 i == 0 ? "hq" : "staff", i % 2 ? "消防団;巡回班" : "", i);
        strcat(csv, line);
    }
    write_file(good, csv);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "--json", "admin", "import", good, "--dry-run"), 0,
                 "%s", out);
    cr_assert(strstr(out, "\"added\":30") && strstr(out, "\"problems\":[]"), "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "import", good), 0, "%s", out);
    cr_assert(strstr(out, "imported: 30 added"), "%s", out);
    snprintf(pwfile, sizeof pwfile, "%s.passwords.csv", good);
    struct stat sb;
    cr_assert_eq(stat(pwfile, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600, "one-time passwords are private");
    FILE *f = fopen(pwfile, "r");
    char line[200], u07pw[64] = "";
    int lines = 0;
    while (fgets(line, sizeof line, f)) {
        lines++;
        if (strncmp(line, "\"u07\",\"", 7) == 0)
            snprintf(u07pw, sizeof u07pw, "%.*s", (int)strcspn(line + 7, "\""), line + 7);
    }
    fclose(f);
    cr_assert_eq(lines, 31);
    /* The imported user logs in with it and must change it first. */
    cr_assert_eq(K(cfgdir_user, u07pw, NULL, "login", "u07"), 0, "%s", out);
    cr_assert(strstr(out, "one-time password"), "%s", out);
    cr_assert_eq(K(cfgdir_user, NULL, NULL, "--json", "whoami"), 0, "%s", out);
    cr_assert(strstr(out, "\"department\":\"建設課\""), "%s", out);

    /* Re-importing the same file changes nothing; one changed line updates one user. */
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "--json", "admin", "import", good), 0, "%s", out);
    cr_assert(strstr(out, "\"added\":0") && strstr(out, "\"updated\":0") &&
                  strstr(out, "\"unchanged\":30"),
              "%s", out);
    char *at = strstr(csv, "u05,");
    cr_assert_not_null(at);
    char *dept = strstr(at, "福祉課");
    memcpy(dept, "総務課", strlen("総務課"));
    write_file(good, csv);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "--json", "admin", "import", good), 0, "%s", out);
    cr_assert(strstr(out, "\"updated\":1") && strstr(out, "\"unchanged\":29"), "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "export"), 0);
    cr_assert(strstr(out, "\"u05\",\"職員 5, 第2班\",\"総務課\",\"staff\",\"巡回班;消防団\"") ||
                  strstr(out, "\"u05\",\"職員 5, 第2班\",\"総務課\",\"staff\",\"消防団;巡回班\""),
              "%s", out);
}

/* Issue 12, defect 5: a display name "+SUM(1,1)" went into `admin export` unchanged and a
 * spreadsheet ran it. Every CSV the CLI writes (export, audit, one-time passwords) is the
 * server's, with formulas guarded by a ', and an exported file imports back unchanged. */
Test(cli, csv_exports_run_no_formula_and_import_back_unchanged)
{
    char out[65536], hand[400], exported[400], pwfile[450];
    cr_assert_eq(K(cfgdir_admin, TEST_ADMIN_PASSWORD, NULL, "login", "admin"), 0);
    /* A file made by hand: formulas as typed, and two cells a spreadsheet user guarded. */
    snprintf(hand, sizeof hand, "%s/hand.csv", d.dir);
    write_file(hand, "login,name,department,role,groups,email,phone\n"
                     "f1,\"+SUM(1,1)\",-総務課,staff,@team;-班,+f1@example.jp,+81 22-123-4567\n"
                     "f2,\"=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\",,staff,,,\n"
                     "f3,-田中,,hq,,,\n"
                     "f4,\"\t@tab\",,staff,,,\n"
                     "f5,'@by hand,,staff,,,'+81 90-1234-5678\n");
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "import", hand), 0, "%s", out);
    /* A name that begins with ' and =, typed as such. */
    cr_assert_eq(K(cfgdir_admin, NULL, "f6-password-1\n", "admin", "user", "add", "f6", "--name",
                   "'=x", "--password-stdin"),
                 0, "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "--json", "admin", "user", "list"), 0, "%s", out);
    cr_assert(strstr(out, "\"name\":\"@by hand\"") && strstr(out, "\"phone\":\"+81 90-1234-5678\""),
              "a ' typed before a formula is not part of the value: %s", out);
    cr_assert(strstr(out, "\"name\":\"'=x\""), "%s", out);

    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "export"), 0, "%s", out);
    const char *bad = csv_formula_cell(out);
    cr_assert_null(bad, "a cell a spreadsheet runs: %.60s", bad);
    cr_assert(strstr(out, "\"f1\",\"'+SUM(1,1)\",\"'-総務課\",\"staff\",\"'-班;@team\","
                          "\"'+f1@example.jp\",\"'+81 22-123-4567\"\n"),
              "%s", out);
    cr_assert(strstr(out, "\"f2\",\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\","), "%s",
              out);
    cr_assert(strstr(out, "\"f3\",\"'-田中\","), "%s", out);
    cr_assert(strstr(out, "\"f4\",\"'\t@tab\","), "%s", out);
    cr_assert(strstr(out, "\"f6\",\"''=x\","), "%s", out);
    /* Exported, then imported again: nothing changes (the phone is still a phone number). */
    snprintf(exported, sizeof exported, "%s/export.csv", d.dir);
    write_file(exported, out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "--json", "admin", "import", exported), 0, "%s", out);
    cr_assert(strstr(out, "\"added\":0") && strstr(out, "\"updated\":0") &&
                  strstr(out, "\"unchanged\":7") && strstr(out, "\"problems\":[]"),
              "%s", out);

    /* The one-time passwords of the first import. */
    snprintf(pwfile, sizeof pwfile, "%s.passwords.csv", hand);
    FILE *f = fopen(pwfile, "r");
    cr_assert_not_null(f);
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    fclose(f);
    cr_assert(strncmp(out, "\xef\xbb\xbf\"login\",\"one_time_password\"\n\"f1\",\"", 37) == 0, "%s",
              out);
    cr_assert_null(csv_formula_cell(out), "%s", out);

    /* The audit log: "-" stands for a login id that is not one. */
    char body[512];
    http_request(d.port, "POST", "/api/v1/login", NULL,
                 "{\"login\":\"=1+1\",\"password\":\"wrong-password\"}", body, sizeof body);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "audit", "--csv", "--action", "login.failed"),
                 0, "%s", out);
    bad = csv_formula_cell(out);
    cr_assert_null(bad, "a cell a spreadsheet runs: %.60s", bad);
    cr_assert(strstr(out, ",\"login.failed\",\"'-\","), "%s", out);
}

/* Runs `kizuna join` as a newcomer would: no session yet, the chosen password in
 * KIZUNA_NEW_PASSWORD. */
static int kizuna_join(const char *cfgdir, const char *code, const char *login, char *out,
                       size_t outlen)
{
    char env_dir[400], env_srv[100];
    snprintf(env_dir, sizeof env_dir, "KIZUNA_CONFIG_DIR=%s", cfgdir);
    snprintf(env_srv, sizeof env_srv, "KIZUNA_SERVER=%s", d.url);
    const char *env[] = {env_dir, env_srv, "KIZUNA_NEW_PASSWORD=dispatched-pass-1", NULL};
    const char *argv[] = {KIZUNA_PATH, "join", code, "--login", login, "--name", "応援 職員", NULL};
    return run_capture(argv, env, NULL, out, outlen);
}

Test(cli, dispatched_staff_join_from_an_invitation_shown_as_text_and_qr)
{
    char out[16384], code[64] = "";
    cr_assert_eq(K(cfgdir_admin, TEST_ADMIN_PASSWORD, NULL, "login", "admin"), 0, "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "invite", "create", "--dept", "応援職員",
                   "--groups", "避難所,給水", "--uses", "2", "--account-expires", "2099-12-20",
                   "--note", "仙台市"),
                 0, "%s", out);
    const char *at = strstr(out, "code:");
    cr_assert_not_null(at, "%s", out);
    sscanf(at, "code: %63s", code);
    cr_assert_eq(strlen(code), 24, "%s", out);
    cr_assert(strstr(out, "\u2580") || strstr(out, "\u2584"), "a QR code in half blocks: %s", out);
    cr_assert(strstr(out, "2099-12-20 00:00"), "when the accounts expire: %s", out);

    char dir1[300], dir2[300]; /* like cfgdir_admin: kizuna_join prefixes KIZUNA_CONFIG_DIR= */
    snprintf(dir1, sizeof dir1, "%s/cli-sato", d.dir);
    snprintf(dir2, sizeof dir2, "%s/cli-ito", d.dir);
    cr_assert_eq(kizuna_join(dir1, code, "sendai.sato", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "logged in") && strstr(out, "expires at 2099-12-20"), "%s", out);
    /* The QR code's text works as well, and names the server itself. */
    char uri[256];
    snprintf(uri, sizeof uri, "kizuna:join?server=%s&code=%s", d.url, code);
    cr_assert_eq(kizuna_join(dir2, uri, "sendai.ito", out, sizeof out), 0, "%s", out);
    cr_assert_eq(kizuna_join(dir2, code, "sendai.kato", out, sizeof out), 1, "used up: %s", out);
    cr_assert_eq(K(dir1, NULL, NULL, "whoami"), 0, "the joiner's session works: %s", out);

    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "invite", "list"), 0, "%s", out);
    cr_assert(strstr(out, "used") && strstr(out, "2/2"), "%s", out);
    cr_assert_null(strstr(out, code), "the code is never shown again");
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "audit", "--csv", "--action", "invite.use"),
                 0, "%s", out);
    const char *audit_header =
        "\xef\xbb\xbf\"at\",\"actor\",\"address\",\"action\",\"target\",\"details\"\n";
    cr_assert(strncmp(out, audit_header, strlen(audit_header)) == 0, "%s", out);
    cr_assert(strstr(out, "\"invite.use\",\"sendai.sato\""), "%s", out);
    cr_assert(strstr(out, "\"invite.use\",\"sendai.ito\""), "%s", out);

    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "user", "update", "sendai.sato", "--email",
                   "sato@city.example.jp", "--expires", "never"),
                 0, "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "export"), 0, "%s", out);
    const char *export_header =
        "\xef\xbb\xbf\"login\",\"name\",\"department\",\"role\",\"groups\",\"email\",\"phone\"\n";
    cr_assert(strncmp(out, export_header, strlen(export_header)) == 0, "%s", out);
    cr_assert(strstr(out, "\"sendai.sato\",\"応援 職員\",\"応援職員\",\"staff\",\"給水;避難所\","
                          "\"sato@city.example.jp\",\"\""),
              "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "invite", "create", "--expires", "tomorrow"),
                 2, "a bad time is a usage error: %s", out);
}

/* Issue 13, item 4: Japanese Excel saves "CSV (コンマ区切り)" in Shift_JIS, as Windows' CP932,
 * whose own characters (①, ㈱, ～, ∥, －, ﾊﾝｶｸ, 髙) plain Shift_JIS lacks or maps elsewhere. Such
 * a file imports, each character stored as the Unicode one Windows means, and the export (UTF-8
 * with a BOM, as Excel needs) gives the same bytes back when Excel saves it as CP932 again. */
#define SJ_TAKAHASHI "\xfb\xfc\x8b\xb4\x20\x87\x40" /* 髙橋 ① */
#define SJ_HANKAKU   "\xca\xdd\xb6\xb8\x89\xdb"     /* ﾊﾝｶｸ課 */
#define SJ_NAMI      "\x94\x67\x81\x60\x94\xc7"     /* 波～班 (FULLWIDTH TILDE) */
#define SJ_SAITO     "\x8d\xd6\x93\xa1\x20\x87\x8a\x81\x61\x81\x7c" /* 斎藤 ㈱∥－ */

/* text converted from one encoding to another with glibc's iconv, into out */
static void convert(const char *from, const char *to, const char *text, char *out, size_t cap)
{
    iconv_t cd = iconv_open(to, from);
    cr_assert_neq(cd, (iconv_t)-1);
    char *in = (char *)text, *o = out;
    size_t inleft = strlen(text), outleft = cap - 1;
    cr_assert_neq(iconv(cd, &in, &inleft, &o, &outleft), (size_t)-1, "%s -> %s", from, to);
    *o = '\0';
    iconv_close(cd);
}

Test(cli, a_csv_saved_by_japanese_excel_imports_and_round_trips)
{
    char out[65536], sjis[400], exported[400], back[65536];
    cr_assert_eq(K(cfgdir_admin, TEST_ADMIN_PASSWORD, NULL, "login", "admin"), 0);
    snprintf(sjis, sizeof sjis, "%s/excel-sjis.csv", d.dir);
    /* As Excel writes it: CRLF, no quotes, no BOM. */
    const char *file = "login,name,department,role,groups\r\n"
                       "sj1," SJ_TAKAHASHI "," SJ_HANKAKU ",staff," SJ_NAMI "\r\n"
                       "sj2," SJ_SAITO ",,hq,\r\n";
    write_file(sjis, file);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "import", sjis, "--dry-run"), 0, "%s", out);
    cr_assert(strstr(out, "Shift_JIS"), "the CLI says how it read the file: %s", out);
    cr_assert(strstr(out, "2 to add") && strstr(out, "0 problem(s)"), "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "--json", "admin", "import", sjis), 0, "%s", out);
    cr_assert(strstr(out, "\"encoding\":\"cp932\"") && strstr(out, "\"added\":2"), "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "--json", "admin", "user", "list"), 0, "%s", out);
    cr_assert(strstr(out, "\"name\":\"髙橋 ①\""), "%s", out);
    cr_assert(strstr(out, "\"department\":\"ﾊﾝｶｸ課\""), "%s", out);
    cr_assert(strstr(out, "\"groups\":[\"波\xef\xbd\x9e班\"]"), "U+FF5E, as Windows means: %s",
              out);
    cr_assert(strstr(out, "\"name\":\"斎藤 ㈱\xe2\x88\xa5\xef\xbc\x8d\""), "%s", out);
    /* The same file again changes nothing. */
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "--json", "admin", "import", sjis), 0, "%s", out);
    cr_assert(strstr(out, "\"added\":0") && strstr(out, "\"unchanged\":2"), "%s", out);

    /* Out: UTF-8 with a BOM; saved again by Excel as CP932, the same bytes as the file. */
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "export"), 0, "%s", out);
    cr_assert(strncmp(out, "\xef\xbb\xbf\"login\",", 11) == 0, "%s", out);
    cr_assert(strstr(out, "\"sj1\",\"髙橋 ①\",\"ﾊﾝｶｸ課\",\"staff\",\"波\xef\xbd\x9e班\""), "%s",
              out);
    convert("UTF-8", "CP932", out + 3, back, sizeof back);
    cr_assert(
        strstr(back, "\"sj1\",\"" SJ_TAKAHASHI "\",\"" SJ_HANKAKU "\",\"staff\",\"" SJ_NAMI "\""),
        "%s", back);
    cr_assert(strstr(back, "\"sj2\",\"" SJ_SAITO "\",\"\",\"hq\",\"\""), "%s", back);
    snprintf(exported, sizeof exported, "%s/excel-utf8.csv", d.dir);
    write_file(exported, out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "--json", "admin", "import", exported), 0, "%s", out);
    cr_assert(strstr(out, "\"encoding\":\"utf-8\"") && strstr(out, "\"added\":0") &&
                  strstr(out, "\"updated\":0") && strstr(out, "\"problems\":[]"),
              "%s", out);
}

/* A file in neither encoding (here Windows-1252, "André") is refused, and the message says
 * exactly how to save it from Excel so that it imports. */
Test(cli, a_csv_in_another_encoding_says_how_to_save_it_as_utf8)
{
    char out[65536], path[400];
    cr_assert_eq(K(cfgdir_admin, TEST_ADMIN_PASSWORD, NULL, "login", "admin"), 0);
    snprintf(path, sizeof path, "%s/latin1.csv", d.dir);
    write_file(path, "login,name,department,role,groups\r\n"
                     "andre,Andr\xe9,,staff,\r\n");
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "import", path, "--dry-run"), 1, "%s", out);
    cr_assert(strstr(out, "line 2:") && strstr(out, "CSV UTF-8 (コンマ区切り)"), "%s", out);
    /* UTF-16, which Excel writes as "Unicode テキスト". */
    write_file(path, "\xff\xfel\0o\0g\0i\0n\0");
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "import", path, "--dry-run"), 1, "%s", out);
    cr_assert(strstr(out, "line 1:") && strstr(out, "UTF-16") &&
                  strstr(out, "CSV UTF-8 (コンマ区切り)"),
              "%s", out);
}

/* Every CSV Kizuna writes begins with a BOM, and every time, in a CSV or printed by the CLI, is
 * in the server's time zone (Asia/Tokyo by default), whatever the TZ of the machine the CLI
 * runs on. */
Test(cli, every_csv_has_a_bom_and_times_are_in_the_server_zone)
{
    char out[65536], path[400], pwfile[450];
    cr_assert_eq(K(cfgdir_admin, TEST_ADMIN_PASSWORD, NULL, "login", "admin"), 0);
    snprintf(path, sizeof path, "%s/tz.csv", d.dir);
    write_file(path, "login,name,department,role,groups\ntz1,時刻 一郎,,staff,\n");
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "import", path), 0, "%s", out);
    snprintf(pwfile, sizeof pwfile, "%s.passwords.csv", path);
    FILE *f = fopen(pwfile, "r");
    cr_assert_not_null(f);
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    fclose(f);
    cr_assert(strncmp(out, "\xef\xbb\xbf\"login\",", 11) == 0, "%s", out);

    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "--json", "admin", "audit", "--action", "user.import"),
                 0, "%s", out);
    cJSON *e = cJSON_Parse(out);
    cr_assert_not_null(e, "%s", out);
    time_t at = (time_t)(cJSON_GetObjectItem(e, "at")->valuedouble / 1000);
    cJSON_Delete(e);
    struct tm tm;
    time_t jst = at + 9 * 3600, ny = at - 5 * 3600; /* TZ=EST5: New York without DST */
    char want[32], wrong[32];
    gmtime_r(&jst, &tm);
    strftime(want, sizeof want, "%Y-%m-%d %H:%M:%S", &tm);
    gmtime_r(&ny, &tm);
    strftime(wrong, sizeof wrong, "%Y-%m-%d %H:%M", &tm);

    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "audit", "--csv", "--action", "user.import"),
                 0, "%s", out);
    cr_assert(strncmp(out, "\xef\xbb\xbf\"at\",", 8) == 0, "%s", out);
    char cell[64];
    snprintf(cell, sizeof cell, "\n\"%s\",\"admin\"", want);
    cr_assert(strstr(out, cell), "wanted %s (Asia/Tokyo): %s", want, out);

    /* The CLI on a machine set to New York still shows the server's time. */
    extra_env = "TZ=EST5";
    int rc = K(cfgdir_admin, NULL, NULL, "admin", "audit", "--action", "user.import");
    extra_env = NULL;
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, want), "wanted %s: %s", want, out);
    cr_assert_null(strstr(out, wrong), "%s", out);

    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "admin", "export"), 0, "%s", out);
    cr_assert(strncmp(out, "\xef\xbb\xbf\"login\",", 11) == 0, "%s", out);
}

/* Issue 13, item 5: an import that takes longer than a second shows that it is working. The
 * server is stopped (SIGSTOP) for two seconds to make it take that long. */
Test(cli, an_import_that_takes_over_a_second_shows_progress)
{
    char out[65536], path[400];
    cr_assert_eq(K(cfgdir_admin, TEST_ADMIN_PASSWORD, NULL, "login", "admin"), 0);
    snprintf(path, sizeof path, "%s/slow.csv", d.dir);
    write_file(path, "login,name,department,role,groups\np1,進捗 一,,staff,\np2,進捗 二,,staff,\n");
    char env_dir[400], env_srv[100];
    snprintf(env_dir, sizeof env_dir, "KIZUNA_CONFIG_DIR=%s", cfgdir_admin);
    snprintf(env_srv, sizeof env_srv, "KIZUNA_SERVER=%s", d.url);
    const char *env[] = {env_dir, env_srv, NULL};
    const char *argv[] = {"/bin/sh",   "-c", "exec \"$0\" admin import \"$1\" 2>&1",
                          KIZUNA_PATH, path, NULL};
    cr_assert_eq(kill(d.pid, SIGSTOP), 0);
    int fd;
    pid_t pid = spawn_reader(argv, env, &fd);
    size_t len = 0;
    bool progress = read_until(fd, out, sizeof out, &len, "importing", 5000);
    kill(d.pid, SIGCONT);
    bool done = read_until(fd, out, sizeof out, &len, "imported: 2 added", 20000);
    close(fd);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(progress, "a progress line while the server is stopped: [%s]", out);
    cr_assert(done, "%s", out);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s", out);
    cr_assert(strstr(out, "slow.csv"), "the line names the file: %s", out);
}

/* The whole of a small file (NUL-terminated into buf). */
static void slurp(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    size_t got = fread(buf, 1, n - 1, f);
    buf[got] = '\0';
    fclose(f);
}

/* Issue 13, items 3 and 6 from the command line: several words, notices and "no results" in
 * search; a room admin's removal shown in history; archiving and exporting a room; a second
 * room with the name of one of yours. */
Test(cli, search_moderation_archive_export_and_same_name_rooms)
{
    char out[16384], path[400], csv[16384];
    cr_assert_eq(K(cfgdir_admin, TEST_ADMIN_PASSWORD, NULL, "login", "admin"), 0);
    cr_assert_eq(K(cfgdir_admin, NULL, "tanaka-password-1\n", "admin", "user", "add", "tanaka",
                   "--password-stdin"),
                 0);
    cr_assert_eq(K(cfgdir_user, "tanaka-password-1", NULL, "login", "tanaka"), 0);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "room", "create", "現地班", "--members", "tanaka"), 0,
                 "%s", out);
    cr_assert_eq(K(cfgdir_user, NULL, NULL, "send", "現地班", "市道3号線は冠水のため通行止め"), 0);
    cr_assert_eq(K(cfgdir_user, NULL, NULL, "send", "現地班", "県道12号線が冠水"), 0);
    cr_assert_eq(K(cfgdir_user, NULL, NULL, "send", "現地班", "個人の携帯番号は090-0000-0000"), 0,
                 "%s", out);
    long long pos = 0;
    cr_assert_eq(sscanf(out, "sent #%lld", &pos), 1, "%s", out);

    /* Search: every word; separate words or one argument; no results said so. */
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "search", "冠水", "通行止め"), 0, "%s", out);
    cr_assert(strstr(out, "市道3号線は冠水のため通行止め"), "%s", out);
    cr_assert_null(strstr(out, "県道12号線"), "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "search", "冠水　通行止め"), 0, "%s", out);
    cr_assert(strstr(out, "市道3号線は冠水のため通行止め"), "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "search", "冠水", "解除"), 0, "%s", out);
    cr_assert(strstr(out, "no messages or notices contain all of: 冠水 解除"), "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "notice", "post", "--title", "給水車の配置", "--body",
                   "第二避難所に給水車", "--to", "user:tanaka"),
                 0, "%s", out);
    cr_assert_eq(K(cfgdir_user, NULL, NULL, "search", "給水車"), 0, "%s", out);
    cr_assert(strstr(out, "給水車の配置") && strstr(out, "kizuna notice show"),
              "a recipient finds the notice: %s", out);

    /* A room admin removes tanaka's message; tanaka's history says an admin did. */
    char p[24];
    snprintf(p, sizeof p, "%lld", pos);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "delete", "現地班", p), 0, "%s", out);
    cr_assert_eq(K(cfgdir_user, NULL, NULL, "history", "現地班"), 0, "%s", out);
    cr_assert(strstr(out, "(removed by a room admin, admin)"), "%s", out);
    cr_assert_null(strstr(out, "090-0000-0000"), "%s", out);

    /* Archived: read-only, out of `rooms`, still read, searched and exported by name. */
    cr_assert_eq(K(cfgdir_user, NULL, NULL, "room", "archive", "現地班"), 1, "room admins only");
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "room", "archive", "現地班"), 0, "%s", out);
    cr_assert_eq(K(cfgdir_user, NULL, NULL, "rooms"), 0, "%s", out);
    cr_assert_null(strstr(out, "現地班"), "%s", out);
    cr_assert_eq(K(cfgdir_user, NULL, NULL, "rooms", "--archived"), 0, "%s", out);
    cr_assert(strstr(out, "現地班"), "%s", out);
    cr_assert_eq(K(cfgdir_user, NULL, NULL, "send", "現地班", "まだ送れる?"), 1, "read-only");
    cr_assert_eq(K(cfgdir_user, NULL, NULL, "history", "現地班"), 0, "%s", out);
    cr_assert(strstr(out, "archived the room"), "%s", out);
    cr_assert_eq(K(cfgdir_user, NULL, NULL, "search", "県道", "冠水"), 0, "%s", out);
    cr_assert(strstr(out, "県道12号線が冠水"), "%s", out);
    snprintf(path, sizeof path, "%s/現地班.csv", d.dir);
    cr_assert_eq(K(cfgdir_user, NULL, NULL, "room", "export", "現地班", "-o", path), 0, "%s", out);
    slurp(path, csv, sizeof csv);
    cr_assert(strstr(csv, "\"pos\",\"at\",\"event\""), "%s", csv);
    cr_assert(strstr(csv, "\"県道12号線が冠水\""), "%s", csv);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600, "the room's words are not for everyone on the machine");
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "room", "unarchive", "現地班"), 0, "%s", out);
    cr_assert_eq(K(cfgdir_user, NULL, NULL, "send", "現地班", "再開"), 0, "%s", out);

    /* The same name again: refused without a terminal to ask on, unless --yes. */
    cr_assert_eq(K(cfgdir_admin, NULL, "y\n", "room", "create", "現地班"), 1, "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "rooms"), 0, "%s", out);
    const char *first = strstr(out, "現地班");
    cr_assert(first && !strstr(first + 1, "現地班"), "still one: %s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "room", "create", "現地班", "--yes"), 0, "%s", out);
    cr_assert_eq(K(cfgdir_admin, NULL, NULL, "rooms"), 0, "%s", out);
    first = strstr(out, "現地班");
    cr_assert(first && strstr(first + 1, "現地班"), "two now: %s", out);
}

/* Issue 15, item 7: kizuna with its stderr, for the usage tests (K captures stdout only). */
static int kizuna_2to1(char *out, size_t outlen, const char *a1, const char *a2, const char *a3)
{
    char env_dir[400];
    snprintf(env_dir, sizeof env_dir, "KIZUNA_CONFIG_DIR=%s", cfgdir_user);
    const char *env[] = {env_dir, NULL};
    const char *argv[] = {"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>&1", KIZUNA_PATH, a1, a2,
                          a3,        NULL};
    return run_capture(argv, env, NULL, out, outlen);
}

/* Issue 15, item 7: like the server's op table, every command of the CLI's command table is in
 * --help and in README.md or docs/: adding a command without documenting it fails here. */
Test(cli, every_command_is_in_the_help_and_the_docs)
{
    static char names[4096], help[16384], docs[4 << 20];
    const char *list[] = {KIZUNA_PATH, "--commands", NULL};
    cr_assert_eq(run_capture(list, NULL, NULL, names, sizeof names), 0, "%s", names);
    const char *help_argv[] = {KIZUNA_PATH, "--help", NULL};
    cr_assert_eq(run_capture(help_argv, NULL, NULL, help, sizeof help), 0, "%s", help);
    const char *files[] = {"README.md",
                           "docs/protocol.md",
                           "docs/operations.md",
                           "docs/security.md",
                           "docs/reliability.md",
                           "docs/performance.md",
                           "docs/event-format.md",
                           "docs/federation.md",
                           "docs/hotline.md",
                           "docs/web.md",
                           "docs/records.md",
                           "docs/notifications.md",
                           "docs/alerts.md"};
    size_t len = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", KZ_SOURCE_DIR, files[i]);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue; /* a doc that moved: README.md is checked below */
        len += fread(docs + len, 1, sizeof docs - 1 - len, f);
        /* The whole file, or the check would silently skip its end (it once did). */
        cr_assert(feof(f), "%s does not fit the buffer", files[i]);
        fclose(f);
    }
    docs[len] = '\0';
    cr_assert(strstr(docs, "kizuna login"), "README.md was read");
    int n = 0;
    for (char *name = strtok(names, "\n"); name; name = strtok(NULL, "\n"), n++) {
        cr_assert(strstr(help, name), "`%s` is not in kizuna --help", name);
        cr_assert(strstr(docs, name), "`%s` is not in README.md or docs/", name);
    }
    cr_assert_gt(n, 30, "the table: %d commands", n);
}

/* Issue 15, item 7: a near miss gets a "did you mean"; a bad flag is named and only its
 * command's usage follows, not the whole help; both exit 2. */
Test(cli, usage_mistakes_name_the_mistake_and_the_commands_usage)
{
    char out[8192];
    cr_assert_eq(kizuna_2to1(out, sizeof out, "romos", NULL, NULL), 2, "%s", out);
    cr_assert(strstr(out, "unknown command romos; did you mean rooms?"), "%s", out);
    cr_assert_null(strstr(out, "notice post"), "not the whole help: %s", out);
    cr_assert_eq(kizuna_2to1(out, sizeof out, "admin", "usr", "list"), 2, "%s", out);
    cr_assert(strstr(out, "did you mean user?"), "%s", out);
    cr_assert_eq(kizuna_2to1(out, sizeof out, "xyzzy", NULL, NULL), 2, "%s", out);
    cr_assert(strstr(out, "unknown command xyzzy") && !strstr(out, "did you mean"), "%s", out);

    cr_assert_eq(kizuna_2to1(out, sizeof out, "history", "本部", "--bogus"), 2, "%s", out);
    cr_assert(strstr(out, "history has no option --bogus"), "%s", out);
    cr_assert(strstr(out, "usage: kizuna history ROOM [--before POS]"), "%s", out);
    cr_assert_null(strstr(out, "notice post"), "not the whole help: %s", out);
    cr_assert_eq(kizuna_2to1(out, sizeof out, "logout", "now", NULL), 2, "%s", out);
    cr_assert(strstr(out, "unexpected argument now") && strstr(out, "usage: kizuna logout"), "%s",
              out);
}

/* Issue 15, item 7: kizuna with no session (a config directory nobody logged in from) and a
 * server that cannot be reached (port 1: a command that tried would exit 3), stderr with
 * stdout; the arguments follow (NULL-terminated). */
static int kizuna_nobody(char *out, size_t outlen, const char *stdin_text, ...)
{
    char env_dir[400];
    snprintf(env_dir, sizeof env_dir, "KIZUNA_CONFIG_DIR=%s/cli-nobody", d.dir);
    const char *env[] = {env_dir, "KIZUNA_SERVER=http://127.0.0.1:1", "KIZUNA_PASSWORD=", NULL};
    const char *argv[16] = {"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>&1", KIZUNA_PATH};
    va_list ap;
    va_start(ap, stdin_text);
    for (int i = 4; i < 15 && (argv[i] = va_arg(ap, const char *)); i++)
        ;
    va_end(ap);
    argv[15] = NULL;
    return run_capture(argv, env, stdin_text, out, outlen);
}

#define NOBODY(in, ...) kizuna_nobody(out, sizeof out, in, __VA_ARGS__, (const char *)NULL)

/* Issue 15, item 7: every subcommand is an entry of the command table, so a near miss of one
 * gets a "did you mean" and its group's usage, and a mistake in one shows its usage alone. */
Test(cli, a_near_miss_subcommand_gets_did_you_mean_and_the_groups_usage)
{
    char out[8192];
    cr_assert_eq(NOBODY(NULL, "room", "creat", "x"), 2, "%s", out);
    cr_assert(strstr(out, "kizuna: room has no subcommand creat; did you mean create?\n"), "%s",
              out);
    cr_assert(strstr(out, "usage: kizuna room create NAME"), "the room group's usage: %s", out);
    cr_assert(strstr(out, "kizuna room invite ROOM USER") && strstr(out, "kizuna room export ROOM"),
              "%s", out);
    cr_assert_null(strstr(out, "notice post"), "not the whole help: %s", out);
    cr_assert_null(strstr(out, "not logged in"), "a usage mistake, not a refusal: %s", out);
    cr_assert_eq(NOBODY(NULL, "notice", "repot", "3"), 2, "%s", out);
    cr_assert(strstr(out, "notice has no subcommand repot; did you mean report?"), "%s", out);
    cr_assert(strstr(out, "kizuna notice withdraw ID") && !strstr(out, "room create"), "%s", out);
    cr_assert_eq(NOBODY(NULL, "admin", "user", "enabel", "sato"), 2, "%s", out);
    cr_assert(strstr(out, "admin user has no subcommand enabel; did you mean enable?"), "%s", out);
    cr_assert(strstr(out, "kizuna admin user reset-password LOGIN"), "%s", out);
    cr_assert_null(strstr(out, "admin invite"), "the admin user group only: %s", out);
    cr_assert_eq(NOBODY(NULL, "photo"), 2, "%s", out);
    cr_assert(strstr(out, "kizuna: photo needs a subcommand") && strstr(out, "kizuna photo resume"),
              "%s", out);

    /* A mistake in one subcommand: its usage, not its group's. */
    cr_assert_eq(NOBODY(NULL, "room", "invite", "本部"), 2, "%s", out);
    cr_assert(strstr(out, "kizuna: room invite needs ROOM USER"), "%s", out);
    cr_assert(strstr(out, "usage: kizuna room invite ROOM USER\n"), "%s", out);
    cr_assert_null(strstr(out, "room create"), "that subcommand's usage only: %s", out);
    cr_assert_eq(NOBODY(NULL, "notice", "report", "3", "--bogus"), 2, "%s", out);
    cr_assert(strstr(out, "notice report has no option --bogus"), "%s", out);
    cr_assert(strstr(out, "usage: kizuna notice report ID"), "%s", out);
    cr_assert_null(strstr(out, "notice post"), "that subcommand's usage only: %s", out);
    cr_assert_eq(NOBODY(NULL, "admin", "user", "disable", "sato", "--name", "x"), 2, "%s", out);
    cr_assert(strstr(out, "unexpected argument --name") &&
                  strstr(out, "usage: kizuna admin user disable LOGIN\n"),
              "%s", out);
}

/* Issue 15, item 7: dispatch refuses a command that needs a session when there is none, as
 * connecting would ("not logged in", exit 1), without connecting, reading its input or asking
 * for a password; a mistake in its arguments is still reported first, as one (exit 2). */
Test(cli, a_command_that_needs_a_session_says_not_logged_in_without_a_server)
{
    char out[8192];
    const char *refused[][8] = {
        {"whoami"},
        {"room", "members", "本部"},
        {"passwd"},                                    /* no password prompt */
        {"send", "本部"},                              /* stdin not read */
        {"admin", "import", "/nonexistent/staff.csv"}, /* the file not read */
        {"notice", "post", "--title", "t", "--to", "all", "--body-file", "/nonexistent/body"},
        {"admin", "user", "add", "sato", "--password-stdin"}, /* stdin not read */
        {"photo", "resume"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        const char *const *a = refused[i];
        int rc = NOBODY("stdin-text\n", a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
        cr_assert_eq(rc, 1, "%s %s: %s", a[0], a[1] ? a[1] : "", out);
        const char *msg = "kizuna: not logged in: run kizuna login LOGIN\n";
        cr_assert(strstr(out, msg), "%s %s: %s", a[0], a[1] ? a[1] : "", out);
        cr_assert_null(strstr(strstr(out, msg) + strlen(msg), "not logged in"), "said once: %s",
                       out);
        cr_assert_null(strstr(out, "cannot reach"), "no connection was tried: %s", out);
        cr_assert_null(strstr(out, "cannot read"), "nothing was read: %s", out);
        cr_assert_null(strstr(out, "terminal"), "no password was asked for: %s", out);
    }
    /* notice post without --to: a usage mistake first. */
    cr_assert_eq(NOBODY(NULL, "notice", "post", "--title", "t", "--body", "b"), 2, "%s", out);
    cr_assert(strstr(out, "notice post needs --title, --to") && !strstr(out, "not logged in"), "%s",
              out);
    cr_assert_eq(NOBODY(NULL, "history", "本部", "--limit", "x"), 2, "%s", out);
    cr_assert_null(strstr(out, "not logged in"), "%s", out);
    cr_assert_eq(NOBODY(NULL, "readers", "本部", "abc"), 2, "%s", out);
    cr_assert(strstr(out, "POS") && !strstr(out, "not logged in"), "%s", out);
}
