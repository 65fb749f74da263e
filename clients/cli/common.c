/* common.c - what every command of kizuna shares: the session file, the server's time zone,
 * calling the server (and telling why it ended a session), reading secrets, and the small
 * helpers for replies and times. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* ---- the session file ---- */

void cli_config_dir(char *out, size_t n)
{
    const char *d = getenv("KIZUNA_CONFIG_DIR");
    if (d && *d)
        snprintf(out, n, "%s", d);
    else
        snprintf(out, n, "%s/.config/kizuna", getenv("HOME") ? getenv("HOME") : ".");
}

static void session_path(char *out, size_t n)
{
    char dir[3800];
    cli_config_dir(dir, sizeof dir);
    snprintf(out, n, "%s/session.json", dir);
}

static char own_server_id[64]; /* the session's server, for cli_qualify */

const char *cli_qualify(const char *login, char out[CLI_QUALIFIED_MAX])
{
    if (strchr(login, '@') || !own_server_id[0])
        snprintf(out, CLI_QUALIFIED_MAX, "%s", login);
    else
        snprintf(out, CLI_QUALIFIED_MAX, "%.64s@%s", login, own_server_id);
    return out;
}

bool cli_session_load(struct session *s)
{
    char path[4096];
    session_path(path, sizeof path);
    memset(s, 0, sizeof *s);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    cJSON *o = cJSON_Parse(buf);
    const cJSON *server = cJSON_GetObjectItemCaseSensitive(o, "server");
    const cJSON *token = cJSON_GetObjectItemCaseSensitive(o, "token");
    const cJSON *login = cJSON_GetObjectItemCaseSensitive(o, "login");
    const cJSON *zone = cJSON_GetObjectItemCaseSensitive(o, "time_zone");
    const cJSON *server_id = cJSON_GetObjectItemCaseSensitive(o, "server_id");
    bool ok = cJSON_IsString(server) && cJSON_IsString(token);
    if (ok) {
        snprintf(s->server, sizeof s->server, "%s", server->valuestring);
        snprintf(s->token, sizeof s->token, "%s", token->valuestring);
        snprintf(s->login, sizeof s->login, "%s", cJSON_IsString(login) ? login->valuestring : "");
        snprintf(s->time_zone, sizeof s->time_zone, "%s",
                 cJSON_IsString(zone) ? zone->valuestring : "");
        snprintf(s->server_id, sizeof s->server_id, "%s",
                 cJSON_IsString(server_id) ? server_id->valuestring : "");
        snprintf(own_server_id, sizeof own_server_id, "%s", s->server_id);
        s->logout_pending = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "logout_pending"));
    }
    cJSON_Delete(o);
    return ok;
}

int cli_mkdirs(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

/* Written to a temporary file with mode 0600 and renamed, so a crash never leaves half a
 * token and no other user can ever read it. */
int cli_session_save(const struct session *s)
{
    char dir[3800], path[4096], tmp[4200];
    cli_config_dir(dir, sizeof dir);
    session_path(path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (cli_mkdirs(dir) != 0)
        return -1;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "server", s->server);
    cJSON_AddStringToObject(o, "token", s->token);
    cJSON_AddStringToObject(o, "login", s->login);
    cJSON_AddStringToObject(o, "time_zone", s->time_zone);
    cJSON_AddStringToObject(o, "server_id", s->server_id);
    if (s->logout_pending)
        cJSON_AddTrueToObject(o, "logout_pending");
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int rc = -1;
    if (fd >= 0 && text) {
        size_t len = strlen(text);
        if (fchmod(fd, 0600) == 0 && write(fd, text, len) == (ssize_t)len && fsync(fd) == 0)
            rc = 0;
    }
    if (fd >= 0)
        close(fd);
    cJSON_free(text);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -1;
    if (rc != 0)
        unlink(tmp);
    return rc;
}

void cli_session_forget(void)
{
    char path[4096];
    session_path(path, sizeof path);
    unlink(path);
}

/* ---- the server's time zone: every time shown or parsed is in it ---- */

/* Asia/Tokyo, the server's default, until a server has said otherwise. */
#define DEFAULT_TIME_ZONE "JST-9"

/* Makes a POSIX time zone rule ("JST-9", "EST5EDT,M3.2.0,M11.1.0") the local time of this
 * process; it needs no tzdata. Anything else (empty, a file path) means the default. */
void cli_time_zone_use(const char *rule)
{
    bool ok = rule && rule[0] && rule[0] != ':' && rule[0] != '/' && strlen(rule) < 64;
    for (const char *p = rule; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
             strchr("+-,./:<>", *p);
    setenv("TZ", ok ? rule : DEFAULT_TIME_ZONE, 1);
    tzset();
}

/* A login, join, auth or whoami reply names the server's zone and id: use them, and remember
 * them in the session (if they changed) for commands that read times before they connect
 * (--expires). */
static void session_learn(struct session *s, const cJSON *reply, bool save)
{
    const char *rule = cli_str(reply, "time_zone_posix", NULL);
    const char *id = cli_str(reply, "server_id", NULL);
    bool changed = false;
    if (*id && strlen(id) < sizeof s->server_id && strcmp(id, s->server_id) != 0) {
        snprintf(s->server_id, sizeof s->server_id, "%s", id);
        changed = true;
    }
    snprintf(own_server_id, sizeof own_server_id, "%s", s->server_id);
    if (*rule) {
        cli_time_zone_use(rule);
        if (strcmp(rule, s->time_zone) != 0) {
            snprintf(s->time_zone, sizeof s->time_zone, "%s", rule);
            changed = true;
        }
    }
    if (changed && save)
        cli_session_save(s);
}

const char *cli_server_override(void)
{
    const char *env = getenv("KIZUNA_SERVER");
    return cli_server_opt ? cli_server_opt : env && *env ? env : NULL;
}

const char *cli_server_url(const struct session *s)
{
    if (cli_server_opt)
        return cli_server_opt;
    const char *env = getenv("KIZUNA_SERVER");
    if (env && *env)
        return env;
    if (s && s->server[0])
        return s->server;
    return DEFAULT_SERVER;
}

/* ---- talking to the server ---- */

bool quiet_unreachable;

int cli_unreachable(const char *msg)
{
    if (quiet_unreachable)
        return EXIT_UNREACHABLE;
    if (json_out) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddFalseToObject(o, "ok");
        cJSON *e = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(e, "code", "unreachable");
        cJSON_AddStringToObject(e, "message", msg);
        char *t = cJSON_PrintUnformatted(o);
        puts(t);
        cJSON_free(t);
        cJSON_Delete(o);
    } else {
        fprintf(stderr, "kizuna: cannot reach the server: %s\n", msg);
    }
    return EXIT_UNREACHABLE;
}

/* Prints a refusal and returns EXIT_REFUSED, or returns EXIT_OK for a successful reply. */
int cli_check_reply(const cJSON *reply)
{
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok")))
        return EXIT_OK;
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(reply, "error");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
    if (json_out) {
        char *t = cJSON_PrintUnformatted(reply);
        puts(t);
        cJSON_free(t);
    } else {
        fprintf(stderr, "kizuna: %s: %s\n", cJSON_IsString(code) ? code->valuestring : "error",
                cJSON_IsString(msg) ? msg->valuestring : "the server refused");
    }
    return EXIT_REFUSED;
}

void cli_print_json(const cJSON *reply)
{
    cJSON *copy = cJSON_Duplicate(reply, true);
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "id");
    char *t = cJSON_PrintUnformatted(copy);
    puts(t);
    cJSON_free(t);
    cJSON_Delete(copy);
}

/* ---- sessions the server ended ---- */

/* The close frames that end a session (docs/protocol.md, "WebSocket close codes"): what each
 * means to the person holding the device, and what to do (NULL: log in again); `login` adds
 * the command that does it. */
static const struct {
    const char *reason, *what, *todo;
    bool login;
} session_ends[] = {
    {"session revoked by an admin", "an administrator signed this device out", NULL, true},
    {"session revoked", "this device was signed out from another of your devices", NULL, true},
    {"device revoked", "this device's keys were revoked, which signed it out", NULL, true},
    {"logged out", "this session was logged out from another window", NULL, true},
    {"password changed", "your password was changed on another device, which signs out the others",
     NULL, true},
    {"password reset", "an administrator reset your password",
     "log in with the one-time password they give you", true},
    {"account disabled", "an administrator disabled your account",
     "ask an administrator to enable it", false},
    {"account expired", "your account has expired (the end date of a dispatched account)",
     "ask an administrator to extend it", false},
    {"idle session on a shared device ended",
     "this shared device was signed out after being left idle", NULL, true},
};

int cli_session_ended(const struct kzc *c)
{
    char reason[128];
    if (!kzc_closed(c, NULL, reason, sizeof reason))
        return EXIT_OK;
    for (size_t i = 0; i < sizeof session_ends / sizeof *session_ends; i++) {
        if (strcmp(reason, session_ends[i].reason) != 0)
            continue;
        struct session s;
        const char *login = cli_session_load(&s) && s.login[0] ? s.login : "LOGIN";
        char msg[512];
        snprintf(msg, sizeof msg, "%s: %s%s%s", session_ends[i].what,
                 session_ends[i].todo ? session_ends[i].todo : "log in again",
                 session_ends[i].login ? ": kizuna login " : "",
                 session_ends[i].login ? login : "");
        if (json_out) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddFalseToObject(o, "ok");
            cJSON *e = cJSON_AddObjectToObject(o, "error");
            cJSON_AddStringToObject(e, "code", "unauthorized");
            cJSON_AddStringToObject(e, "message", msg);
            cJSON_AddStringToObject(e, "close_reason", reason);
            cli_print_json(o);
            cJSON_Delete(o);
        } else {
            fprintf(stderr, "kizuna: %s\n", msg);
        }
        return EXIT_REFUSED;
    }
    return EXIT_OK;
}

/* Calls one op; on success *reply is the caller's. Returns an exit code. */
int cli_call(struct kzc *c, const char *op, cJSON *args, cJSON **reply)
{
    *reply = kzc_call(c, op, args, TIMEOUT_MS);
    if (!*reply)
        return cli_session_ended(c) == EXIT_REFUSED ? EXIT_REFUSED : cli_unreachable(kzc_error(c));
    int rc = cli_check_reply(*reply);
    if (rc != EXIT_OK) {
        cJSON_Delete(*reply);
        *reply = NULL;
    }
    return rc;
}

/* Set while `logout` finishes a logout the server was not told of. */
bool cli_finishing_logout;

int cli_not_logged_in(void)
{
    static bool said;
    if (!said)
        fprintf(stderr, "kizuna: not logged in: run kizuna login LOGIN\n");
    said = true;
    return EXIT_REFUSED;
}

/* Connects and authenticates with the saved session. Returns an exit code. */
int cli_connect_authed(struct kzc **out, struct session *s)
{
    *out = NULL;
    if (!cli_session_load(s))
        return cli_not_logged_in();
    if (s->logout_pending && !cli_finishing_logout) {
        /* Its keys are gone: nothing may register new ones under the old session. */
        fprintf(stderr, "kizuna: this device was logged out (its keys are wiped), but the server "
                        "has not been told yet: run kizuna logout again\n");
        return EXIT_REFUSED;
    }
    char err[256];
    struct kzc *c = kzc_connect(cli_server_url(s), TIMEOUT_MS, err, sizeof err);
    if (!c)
        return cli_unreachable(err);
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "token", s->token);
    cJSON *reply;
    int rc = cli_call(c, "auth", args, &reply);
    if (rc == EXIT_OK)
        session_learn(s, reply, true);
    cJSON_Delete(reply);
    if (rc != EXIT_OK) {
        kzc_close(c);
        return rc;
    }
    *out = c;
    return EXIT_OK;
}

int cli_call_once(const char *op, cJSON *args, cJSON **reply_out)
{
    if (reply_out)
        *reply_out = NULL; /* callers delete it whatever the outcome */
    struct kzc *c;
    struct session s;
    int rc = cli_connect_authed(&c, &s);
    if (rc != EXIT_OK) {
        cJSON_Delete(args);
        return rc;
    }
    return cli_call_and_close(c, op, args, reply_out);
}

int cli_call_and_close(struct kzc *c, const char *op, cJSON *args, cJSON **reply_out)
{
    if (reply_out)
        *reply_out = NULL;
    cJSON *reply;
    int rc = cli_call(c, op, args, &reply);
    kzc_close(c);
    if (rc != EXIT_OK)
        return rc;
    if (json_out)
        cli_print_json(reply);
    if (reply_out)
        *reply_out = reply;
    else
        cJSON_Delete(reply);
    return EXIT_OK;
}

/* ---- reading secrets ---- */

int cli_read_line(FILE *f, char *buf, size_t n)
{
    if (!fgets(buf, (int)n, f))
        return -1;
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

/* Prompts on the terminal with echo off. */
static int prompt_secret(const char *prompt, char *buf, size_t n)
{
    FILE *tty = fopen("/dev/tty", "r+");
    if (!tty)
        return -1;
    struct termios old, quiet;
    int fd = fileno(tty);
    bool restore = tcgetattr(fd, &old) == 0;
    if (restore) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    fputs(prompt, tty);
    fflush(tty);
    int rc = cli_read_line(tty, buf, n);
    if (restore)
        tcsetattr(fd, TCSAFLUSH, &old);
    fputs("\n", tty);
    fclose(tty);
    return rc;
}

int cli_get_secret(const char *env, const char *prompt, char *buf, size_t n)
{
    const char *v = getenv(env);
    if (v && *v) {
        snprintf(buf, n, "%s", v);
        return 0;
    }
    if (prompt_secret(prompt, buf, n) != 0) {
        fprintf(stderr, "kizuna: no terminal to ask for the password: set %s\n", env);
        return -1;
    }
    return 0;
}

/* ---- commands ---- */

void cli_print_padded(const char *s, int cols)
{
    int used = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p & 0xc0) == 0x80)
            continue;
        /* Three- and four-byte UTF-8 sequences are CJK and emoji here: two columns wide. */
        used += *p >= 0xe0 ? 2 : 1;
    }
    fputs(s, stdout);
    for (; used < cols; used++)
        putchar(' ');
}

long long cli_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? (long long)v->valuedouble : 0;
}

const char *cli_str(const cJSON *o, const char *path1, const char *path2)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, path1);
    if (path2)
        v = cJSON_GetObjectItemCaseSensitive(v, path2);
    return cJSON_IsString(v) ? v->valuestring : "";
}

void cli_device_label(char *out, size_t n)
{
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    snprintf(out, n, "kizuna CLI on %.100s", host[0] ? host : "unknown host");
}

int cli_login_finish(const char *url, const char *login, cJSON *reply)
{
    struct session ns = {0};
    snprintf(ns.server, sizeof ns.server, "%s", url);
    snprintf(ns.token, sizeof ns.token, "%s", cli_str(reply, "token", NULL));
    snprintf(ns.login, sizeof ns.login, "%s", login);
    session_learn(&ns, reply, false);
    if (cli_session_save(&ns) != 0) {
        fprintf(stderr, "kizuna: cannot save the session: %s\n", strerror(errno));
        cJSON_Delete(reply);
        return EXIT_REFUSED;
    }
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(reply, "user");
    bool must_change = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(user, "must_change_password"));
    const cJSON *expires = cJSON_GetObjectItemCaseSensitive(user, "expires_at");
    if (json_out) {
        /* The token is already saved; scripts that want it can read the session file. */
        cJSON_DeleteItemFromObjectCaseSensitive(reply, "token");
        cli_print_json(reply);
    } else {
        printf("logged in to %s as %s (%s)\n", url, login, cli_str(reply, "user", "name"));
        if (cJSON_IsNumber(expires)) {
            char when[32];
            cli_format_time(expires->valuedouble, when, sizeof when);
            printf("this account expires at %s\n", when);
        }
        if (must_change)
            printf("your password is a one-time password: change it now with `kizuna passwd`\n");
    }
    cJSON_Delete(reply);
    if (!must_change) /* the server refuses keys until the one-time password is changed */
        cli_device_enroll();
    return EXIT_OK;
}

void cli_format_time(double ms, char *out, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    strftime(out, n, "%Y-%m-%d %H:%M", localtime(&t));
}
