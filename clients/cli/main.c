/* main.c - the kizuna command. Exit codes: 0 ok, 1 the server said no, 2 usage, 3 the server
 * cannot be reached. Only the session token is kept on disk (mode 0600). */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "usage: kizuna [--server URL] [--json] COMMAND\n"
    "\n"
    "  login LOGIN [--device LABEL] [--shared]\n"
    "                                 log in (password from KIZUNA_PASSWORD or a prompt);\n"
    "                                 --shared: a loaner phone, logged out when left idle\n"
    "  join CODE --login LOGIN [--name NAME] [--device LABEL] [--shared]\n"
    "                                 make your account from an invitation (password from\n"
    "                                 KIZUNA_NEW_PASSWORD or a prompt)\n"
    "  logout                         end this session\n"
    "  whoami                         who this session is\n"
    "  passwd                         change your password\n"
    "  admin user add LOGIN [--name NAME] [--role admin|hq|staff] [--dept NAME]\n"
    "                 [--groups \"a;b\"] [--email E] [--phone P] [--expires WHEN]\n"
    "                 [--password-stdin]\n"
    "  admin user update LOGIN [--name NAME] [--role ROLE] [--dept NAME] [--groups \"a;b\"]\n"
    "                 [--email E] [--phone P] [--expires WHEN|never]\n"
    "  admin invite create [--role staff|hq] [--dept NAME] [--groups a,b] [--uses N]\n"
    "                 [--expires WHEN] [--account-expires WHEN] [--note TEXT] [--no-qr]\n"
    "  admin invite list | admin invite revoke ID\n"
    "                                 WHEN: YYYY-MM-DD, \"YYYY-MM-DD HH:MM\", or 90m, 72h, 7d\n"
    "  admin dept list | admin group list\n"
    "  admin sessions LOGIN | admin revoke SESSION_ID   (a lost phone: cut off at once)\n"
    "  sessions | revoke SESSION_ID   your own devices\n"
    "  admin import FILE.csv [--dry-run] [--passwords-out FILE]   "
    "(login,name,department,role,groups[,email,phone])\n"
    "  admin export                   all users as the same CSV (--json: as JSON)\n"
    "  admin audit [--action A] [--actor L] [--target T] [--limit N] [--csv]\n"
    "                                 (--json: JSON Lines)\n"
    "  admin user list\n"
    "  admin user disable LOGIN\n"
    "  admin user enable LOGIN\n"
    "  admin user reset-password LOGIN\n"
    "\n"
    "  rooms [--archived]             your rooms, unread counts and last messages\n"
    "  room create NAME [--members a,b] [--topic TEXT] [--history shared|joined] [--yes]\n"
    "                                 --yes: a second room with the name of one of yours\n"
    "  room invite|remove ROOM USER   room admins only\n"
    "  room leave|members ROOM\n"
    "  room rename ROOM NAME | room topic ROOM TEXT | room admin ROOM USER [--revoke]\n"
    "  room archive|unarchive ROOM    room admins: read-only and out of the list, or back\n"
    "  room export ROOM [-o FILE.csv] every event of the room as CSV (recorded in the audit)\n"
    "  dm USER                        the one-to-one room with USER (as a ROOM: @USER)\n"
    "  send ROOM [TEXT...]            without TEXT, the message is read from stdin\n"
    "  history ROOM [--before POS] [--after POS] [--limit N] [--no-read]\n"
    "  tail [ROOM] [-n N] [--no-read] the room's last N events (10, or from the first unread),\n"
    "                                 then follow live; reconnects and resumes by itself\n"
    "                                 history and tail mark what they show read (既読), and\n"
    "                                 open photos; --no-read for scripts and shared screens\n"
    "  read ROOM [POS]                mark read (up to the newest message by default)\n"
    "  readers ROOM POS               who has read a message or photo, and who has not\n"
    "  search WORD... [--room ROOM] [--before POS] [--limit N]\n"
    "                                 messages and notices with every word (冠水 通行止め)\n"
    "  edit ROOM POS TEXT | delete ROOM POS   (a room admin may delete anyone's message)\n"
    "\n"
    "  photo send ROOM FILE.jpg [--caption C] [--no-gps] [--max-edge N]\n"
    "                                 end-to-end encrypted; GPS and capture time travel only\n"
    "                                 inside the encryption; resumes if run again\n"
    "  photo resume                   finish every interrupted photo send\n"
    "  photo list ROOM [--limit N]    photos, their captions, GPS, and whether they open\n"
    "  photo get ROOM POS [-o FILE] [--thumb]\n"
    "                                 decrypt and verify; only -o writes the picture\n"
    "  devices [LOGIN]                encryption devices (yours by default), approved or not\n"
    "  device approve ID              your new device gets photo keys (run on an approved one)\n"
    "  device revoke ID               a lost phone: no new photo keys, session ended\n"
    "  verify USER [--yes]            the safety number of your devices and theirs; remembered\n"
    "\n"
    "  notice post --title T (--body-file F | --body TEXT) --to "
    "all|dept:NAME,group:NAME,user:LOGIN\n"
    "              [--urgent] [--ack] [--choices \"a|b|c\"] [--category C] [--pin]\n"
    "              [--expires-in MINUTES] [--announce ROOM]\n"
    "  notice list [--posted]         your notices, unread and urgent first\n"
    "  notice show ID                 (marks it read; ID may be a kizuna://notice/ID link)\n"
    "  notice ack ID | notice respond ID CHOICE [--comment C]\n"
    "  notice report ID [--csv] | notice remind ID | notice withdraw ID\n"
    "  notice edit ID [--title T] [--body-file F]\n"
    "\n"
    "ROOM is a room id, its first 4+ characters, its exact name, or @LOGIN.\n"
    "The server is --server, else KIZUNA_SERVER, else the one you logged in to, "
    "else " DEFAULT_SERVER ".\n"
    "The session and this device's keys are kept in KIZUNA_CONFIG_DIR (default\n"
    "~/.config/kizuna); logout wipes the keys, even when the server cannot be reached\n"
    "(then run logout again later to end the session there). KIZUNA_RETRY_MAX_S (300)\n"
    "bounds how long photo uploads and downloads retry without progress.\n";

bool json_out;
static const char *server_opt;

/* One entry of the command table (at the end of this file). */
struct cli_command {
    const char *name;                  /* its words: "whoami", "admin user", "admin dept list" */
    int (*run)(int argc, char **argv); /* argv[0] is the name's last word, then the arguments */
    int min_args, max_args;            /* arguments after the name (max -1: any number) */
    bool needs_session;                /* runs with the saved session (connect_authed refuses
                                        * with "not logged in" when there is none) */
    const char *usage;                 /* its line(s) of the help, shown on a usage mistake */
};

/* The command being run (set by main's dispatch), for usage_error: its usage line, and its
 * arguments, to name a flag it does not have. */
static const struct cli_command *running;
static int running_argc;
static char **running_argv;

/* Whether word appears in text as a whole word (delimited by anything but [A-Za-z0-9_-]). */
static bool has_word(const char *text, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = text; n && (p = strstr(p, word)); p++) {
        bool start = p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '-' || p[-1] == '_');
        bool end = !(isalnum((unsigned char)p[n]) || p[n] == '-' || p[n] == '_');
        if (start && end)
            return true;
    }
    return false;
}

int usage_error(const char *msg)
{
    for (int i = 1; running && i < running_argc; i++) {
        const char *a = running_argv[i];
        if (a[0] == '-' && a[1] && !isdigit((unsigned char)a[1]) && !has_word(running->usage, a)) {
            fprintf(stderr, "kizuna: %s has no option %s\n", running->name, a);
            break;
        }
    }
    if (msg)
        fprintf(stderr, "kizuna: %s\n", msg);
    if (!running) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    fprintf(stderr, "usage: kizuna %s\n(kizuna --help lists every command)\n", running->usage);
    return EXIT_USAGE;
}

/* ---- the session file ---- */

void config_dir(char *out, size_t n)
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
    config_dir(dir, sizeof dir);
    snprintf(out, n, "%s/session.json", dir);
}

bool session_load(struct session *s)
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
    bool ok = cJSON_IsString(server) && cJSON_IsString(token);
    if (ok) {
        snprintf(s->server, sizeof s->server, "%s", server->valuestring);
        snprintf(s->token, sizeof s->token, "%s", token->valuestring);
        snprintf(s->login, sizeof s->login, "%s", cJSON_IsString(login) ? login->valuestring : "");
        snprintf(s->time_zone, sizeof s->time_zone, "%s",
                 cJSON_IsString(zone) ? zone->valuestring : "");
        s->logout_pending = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "logout_pending"));
    }
    cJSON_Delete(o);
    return ok;
}

int mkdirs(const char *path)
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
static int session_save(const struct session *s)
{
    char dir[3800], path[4096], tmp[4200];
    config_dir(dir, sizeof dir);
    session_path(path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (mkdirs(dir) != 0)
        return -1;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "server", s->server);
    cJSON_AddStringToObject(o, "token", s->token);
    cJSON_AddStringToObject(o, "login", s->login);
    cJSON_AddStringToObject(o, "time_zone", s->time_zone);
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

static void session_forget(void)
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
static void time_zone_use(const char *rule)
{
    bool ok = rule && rule[0] && rule[0] != ':' && rule[0] != '/' && strlen(rule) < 64;
    for (const char *p = rule; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
             strchr("+-,./:<>", *p);
    setenv("TZ", ok ? rule : DEFAULT_TIME_ZONE, 1);
    tzset();
}

/* A login, join, auth or whoami reply names the server's zone: use it, and remember it in the
 * session (if it changed) for commands that read times before they connect (--expires). */
static void time_zone_learn(struct session *s, const cJSON *reply, bool save)
{
    const char *rule = str(reply, "time_zone_posix", NULL);
    if (!*rule)
        return;
    time_zone_use(rule);
    if (strcmp(rule, s->time_zone) != 0) {
        snprintf(s->time_zone, sizeof s->time_zone, "%s", rule);
        if (save)
            session_save(s);
    }
}

const char *server_override(void)
{
    const char *env = getenv("KIZUNA_SERVER");
    return server_opt ? server_opt : env && *env ? env : NULL;
}

const char *server_url(const struct session *s)
{
    if (server_opt)
        return server_opt;
    const char *env = getenv("KIZUNA_SERVER");
    if (env && *env)
        return env;
    if (s && s->server[0])
        return s->server;
    return DEFAULT_SERVER;
}

/* ---- talking to the server ---- */

bool quiet_unreachable;

int unreachable(const char *msg)
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
int check_reply(const cJSON *reply)
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

void print_json(const cJSON *reply)
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
        const char *login = session_load(&s) && s.login[0] ? s.login : "LOGIN";
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
            print_json(o);
            cJSON_Delete(o);
        } else {
            fprintf(stderr, "kizuna: %s\n", msg);
        }
        return EXIT_REFUSED;
    }
    return EXIT_OK;
}

/* Calls one op; on success *reply is the caller's. Returns an exit code. */
int call(struct kzc *c, const char *op, cJSON *args, cJSON **reply)
{
    *reply = kzc_call(c, op, args, TIMEOUT_MS);
    if (!*reply)
        return cli_session_ended(c) == EXIT_REFUSED ? EXIT_REFUSED : unreachable(kzc_error(c));
    int rc = check_reply(*reply);
    if (rc != EXIT_OK) {
        cJSON_Delete(*reply);
        *reply = NULL;
    }
    return rc;
}

/* Set while `logout` finishes a logout the server was not told of. */
static bool finishing_logout;

/* Connects and authenticates with the saved session. Returns an exit code. */
int connect_authed(struct kzc **out, struct session *s)
{
    *out = NULL;
    if (!session_load(s)) {
        fprintf(stderr, "kizuna: not logged in: run kizuna login LOGIN\n");
        return EXIT_REFUSED;
    }
    if (s->logout_pending && !finishing_logout) {
        /* Its keys are gone: nothing may register new ones under the old session. */
        fprintf(stderr, "kizuna: this device was logged out (its keys are wiped), but the server "
                        "has not been told yet: run kizuna logout again\n");
        return EXIT_REFUSED;
    }
    char err[256];
    struct kzc *c = kzc_connect(server_url(s), TIMEOUT_MS, err, sizeof err);
    if (!c)
        return unreachable(err);
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "token", s->token);
    cJSON *reply;
    int rc = call(c, "auth", args, &reply);
    if (rc == EXIT_OK)
        time_zone_learn(s, reply, true);
    cJSON_Delete(reply);
    if (rc != EXIT_OK) {
        kzc_close(c);
        return rc;
    }
    *out = c;
    return EXIT_OK;
}

int call_once(const char *op, cJSON *args, cJSON **reply_out)
{
    if (reply_out)
        *reply_out = NULL; /* callers delete it whatever the outcome */
    struct kzc *c;
    struct session s;
    int rc = connect_authed(&c, &s);
    if (rc != EXIT_OK) {
        cJSON_Delete(args);
        return rc;
    }
    return call_and_close(c, op, args, reply_out);
}

int call_and_close(struct kzc *c, const char *op, cJSON *args, cJSON **reply_out)
{
    if (reply_out)
        *reply_out = NULL;
    cJSON *reply;
    int rc = call(c, op, args, &reply);
    kzc_close(c);
    if (rc != EXIT_OK)
        return rc;
    if (json_out)
        print_json(reply);
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

int get_secret(const char *env, const char *prompt, char *buf, size_t n)
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

void print_padded(const char *s, int cols)
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

long long num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? (long long)v->valuedouble : 0;
}

const char *str(const cJSON *o, const char *path1, const char *path2)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, path1);
    if (path2)
        v = cJSON_GetObjectItemCaseSensitive(v, path2);
    return cJSON_IsString(v) ? v->valuestring : "";
}

void device_label(char *out, size_t n)
{
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    snprintf(out, n, "kizuna CLI on %.100s", host[0] ? host : "unknown host");
}

int login_finish(const char *url, const char *login, cJSON *reply)
{
    struct session ns = {0};
    snprintf(ns.server, sizeof ns.server, "%s", url);
    snprintf(ns.token, sizeof ns.token, "%s", str(reply, "token", NULL));
    snprintf(ns.login, sizeof ns.login, "%s", login);
    time_zone_learn(&ns, reply, false);
    if (session_save(&ns) != 0) {
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
        print_json(reply);
    } else {
        printf("logged in to %s as %s (%s)\n", url, login, str(reply, "user", "name"));
        if (cJSON_IsNumber(expires)) {
            char when[32];
            format_time(expires->valuedouble, when, sizeof when);
            printf("this account expires at %s\n", when);
        }
        if (must_change)
            printf("your password is a one-time password: change it now with `kizuna passwd`\n");
    }
    cJSON_Delete(reply);
    if (!must_change) /* the server refuses keys until the one-time password is changed */
        device_enroll();
    return EXIT_OK;
}

void format_time(double ms, char *out, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    strftime(out, n, "%Y-%m-%d %H:%M", localtime(&t));
}

static int logout_remote(void);

static int cmd_login(int argc, char **argv)
{
    const char *login = NULL, *device = NULL;
    bool shared = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
            device = argv[++i];
        else if (strcmp(argv[i], "--shared") == 0)
            shared = true;
        else if (!login && argv[i][0] != '-')
            login = argv[i];
        else
            return usage_error("login LOGIN [--device LABEL] [--shared]");
    }
    if (!login)
        return usage_error("login needs a LOGIN");
    char password[256];
    if (get_secret("KIZUNA_PASSWORD", "Password: ", password, sizeof password) != 0)
        return EXIT_USAGE;
    struct session s;
    session_load(&s);
    /* A logout the server was not told of: tell it now, or the old session stays valid there. */
    if (s.logout_pending && logout_remote() == EXIT_UNREACHABLE) {
        memset(password, 0, sizeof password);
        return EXIT_UNREACHABLE;
    }
    const char *url = server_url(&s);
    char err[256];
    struct kzc *c = kzc_connect(url, TIMEOUT_MS, err, sizeof err);
    if (!c)
        return unreachable(err);
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "login", login);
    cJSON_AddStringToObject(args, "password", password);
    char label[300];
    device_label(label, sizeof label);
    cJSON_AddStringToObject(args, "device", device ? device : label);
    if (shared)
        cJSON_AddBoolToObject(args, "shared", true);
    memset(password, 0, sizeof password);
    cJSON *reply;
    int rc = call(c, "login", args, &reply);
    kzc_close(c);
    if (rc != EXIT_OK)
        return rc;
    return login_finish(url, login, reply);
}

/* Tells the server about the saved session's logout; an exit code. */
static int logout_remote(void)
{
    struct kzc *c;
    struct session s;
    finishing_logout = true;
    int rc = connect_authed(&c, &s);
    finishing_logout = false;
    if (rc == EXIT_OK) {
        cJSON *reply;
        rc = call(c, "logout", NULL, &reply);
        cJSON_Delete(reply);
        kzc_close(c);
    }
    return rc;
}

static int cmd_logout(void)
{
    struct session s;
    if (!session_load(&s)) {
        keystore_wipe(); /* keys of an earlier session, if any */
        fprintf(stderr, "kizuna: not logged in: run kizuna login LOGIN\n");
        return EXIT_REFUSED;
    }
    /* The keys go first, whatever becomes of the server: a shared phone handed on must keep
     * nothing that reads the rooms' photos, also when the network is down (issue 14, item 7).
     * Only the token stays, marked, so that `logout` can tell the server later (it revokes the
     * session and its device); until then no other command uses it. */
    s.logout_pending = true;
    if (session_save(&s) != 0)
        fprintf(stderr, "kizuna: cannot mark the session as logged out\n");
    keystore_wipe();
    int rc = logout_remote();
    if (rc == EXIT_UNREACHABLE) {
        if (!json_out)
            fprintf(stderr, "kizuna: this device's keys are wiped; the server could not be told, "
                            "so the session stays valid there until kizuna logout reaches it "
                            "(or an administrator revokes it)\n");
        return rc;
    }
    session_forget(); /* told, or the server no longer knows the token */
    if (rc == EXIT_OK) {
        if (json_out)
            puts("{\"ok\":true}");
        else
            printf("logged out\n");
    }
    return rc;
}

static int cmd_whoami(void)
{
    struct kzc *c;
    struct session s;
    int rc = connect_authed(&c, &s);
    if (rc != EXIT_OK)
        return rc;
    cJSON *reply;
    rc = call(c, "whoami", NULL, &reply);
    kzc_close(c);
    if (rc != EXIT_OK)
        return rc;
    if (json_out)
        print_json(reply);
    else
        printf("%s (%s), role %s, on %s\n", str(reply, "user", "login"), str(reply, "user", "name"),
               str(reply, "user", "role"), server_url(&s));
    cJSON_Delete(reply);
    return EXIT_OK;
}

static int cmd_passwd(void)
{
    char old[256], new1[256], new2[256];
    if (get_secret("KIZUNA_PASSWORD", "Current password: ", old, sizeof old) != 0)
        return EXIT_USAGE;
    if (getenv("KIZUNA_NEW_PASSWORD") && *getenv("KIZUNA_NEW_PASSWORD")) {
        snprintf(new1, sizeof new1, "%s", getenv("KIZUNA_NEW_PASSWORD"));
    } else {
        if (get_secret("KIZUNA_NEW_PASSWORD", "New password: ", new1, sizeof new1) != 0 ||
            get_secret("KIZUNA_NEW_PASSWORD", "New password again: ", new2, sizeof new2) != 0)
            return EXIT_USAGE;
        if (strcmp(new1, new2) != 0) {
            fprintf(stderr, "kizuna: the new passwords differ\n");
            return EXIT_USAGE;
        }
    }
    struct kzc *c;
    struct session s;
    int rc = connect_authed(&c, &s);
    if (rc != EXIT_OK)
        return rc;
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "old_password", old);
    cJSON_AddStringToObject(args, "new_password", new1);
    memset(old, 0, sizeof old);
    memset(new1, 0, sizeof new1);
    cJSON *reply;
    rc = call(c, "passwd", args, &reply);
    kzc_close(c);
    if (rc != EXIT_OK)
        return rc;
    if (json_out)
        print_json(reply);
    else
        printf("password changed; your other devices have been logged out\n");
    device_enroll();
    cJSON_Delete(reply);
    return EXIT_OK;
}

/* ---- the command table ---- */

/* Adapters from the table's (argc, argv) to the handlers above. */
static int run_login(int argc, char **argv)
{
    return cmd_login(argc - 1, argv + 1);
}
static int run_join(int argc, char **argv)
{
    return cmd_join(argc - 1, argv + 1);
}
static int run_logout(int argc, char **argv)
{
    (void)argc, (void)argv;
    return cmd_logout();
}
static int run_whoami(int argc, char **argv)
{
    (void)argc, (void)argv;
    return cmd_whoami();
}
static int run_passwd(int argc, char **argv)
{
    (void)argc, (void)argv;
    return cmd_passwd();
}
static int run_sessions(int argc, char **argv)
{
    return cmd_sessions(argc == 2 ? argv[1] : NULL);
}
static int run_revoke(int argc, char **argv)
{
    (void)argc;
    return cmd_revoke(argv[1]);
}
static int run_admin_user(int argc, char **argv)
{
    return cmd_admin_user(argc - 1, argv + 1);
}
static int run_import(int argc, char **argv)
{
    return cmd_import(argc - 1, argv + 1);
}
static int run_export(int argc, char **argv)
{
    (void)argc, (void)argv;
    return cmd_export();
}
static int run_audit(int argc, char **argv)
{
    return cmd_audit(argc - 1, argv + 1);
}
static int run_invite(int argc, char **argv)
{
    return cmd_invite(argc - 1, argv + 1);
}
static int run_dept_list(int argc, char **argv)
{
    (void)argc, (void)argv;
    return cmd_org_list(true);
}
static int run_group_list(int argc, char **argv)
{
    (void)argc, (void)argv;
    return cmd_org_list(false);
}

/* Every command: tests/integration/test_cli.c checks that each name is in --help and in README.md
 * or docs/, so a command cannot be added without being documented. */
static const struct cli_command commands[] = {
    {"login", run_login, 0, -1, false, "login LOGIN [--device LABEL] [--shared]"},
    {"join", run_join, 0, -1, false,
     "join CODE --login LOGIN [--name NAME] [--device LABEL] [--shared]"},
    {"logout", run_logout, 0, 0, false, "logout"},
    {"whoami", run_whoami, 0, 0, true, "whoami"},
    {"passwd", run_passwd, 0, 0, true, "passwd"},
    {"sessions", run_sessions, 0, 0, true, "sessions"},
    {"revoke", run_revoke, 1, 1, true, "revoke SESSION_ID"},
    {"admin user", run_admin_user, 0, -1, true,
     "admin user add|list|update|disable|enable|reset-password ...\n"
     "  admin user add LOGIN [--name NAME] [--role admin|hq|staff] [--dept NAME]\n"
     "                 [--groups \"a;b\"] [--email E] [--phone P] [--expires WHEN]\n"
     "                 [--password-stdin]\n"
     "  admin user update LOGIN [--name NAME] [--role ROLE] [--dept NAME] [--groups \"a;b\"]\n"
     "                 [--email E] [--phone P] [--expires WHEN|never]\n"
     "  admin user list | admin user disable|enable|reset-password LOGIN\n"
     "  WHEN: YYYY-MM-DD, \"YYYY-MM-DD HH:MM\", or 90m, 72h, 7d"},
    {"admin invite", run_invite, 0, -1, true,
     "admin invite create [--role staff|hq] [--dept NAME] [--groups a,b] [--uses N]\n"
     "                 [--expires WHEN] [--account-expires WHEN] [--note TEXT] [--no-qr]\n"
     "  admin invite list | admin invite revoke ID\n"
     "  WHEN: YYYY-MM-DD, \"YYYY-MM-DD HH:MM\", or 90m, 72h, 7d"},
    {"admin dept list", run_dept_list, 0, 0, true, "admin dept list"},
    {"admin group list", run_group_list, 0, 0, true, "admin group list"},
    {"admin sessions", run_sessions, 1, 1, true, "admin sessions LOGIN"},
    {"admin revoke", run_revoke, 1, 1, true, "admin revoke SESSION_ID"},
    {"admin import", run_import, 0, -1, true,
     "admin import FILE.csv [--dry-run] [--passwords-out FILE]"},
    {"admin export", run_export, 0, 0, true, "admin export"},
    {"admin audit", run_audit, 0, -1, true,
     "admin audit [--action A] [--actor L] [--target T] [--limit N] [--csv]"},
    {"rooms", cmd_rooms, 0, -1, true, "rooms [--archived]"},
    {"room", cmd_room, 0, -1, true,
     "room create NAME [--members a,b] [--topic TEXT] [--history shared|joined] [--yes]\n"
     "  room invite|remove ROOM USER | room leave|members ROOM\n"
     "  room rename ROOM NAME | room topic ROOM TEXT | room admin ROOM USER [--revoke]\n"
     "  room archive|unarchive ROOM | room export ROOM [-o FILE.csv]"},
    {"dm", cmd_dm, 0, -1, true, "dm USER"},
    {"send", cmd_send, 0, -1, true, "send ROOM [TEXT...]   (without TEXT, read from stdin)"},
    {"history", cmd_history, 0, -1, true,
     "history ROOM [--before POS] [--after POS] [--limit N] [--no-read]"},
    {"tail", cmd_tail, 0, -1, true, "tail [ROOM] [-n N] [--no-read]"},
    {"read", cmd_read, 0, -1, true, "read ROOM [POS]"},
    {"readers", cmd_readers, 0, -1, true, "readers ROOM POS"},
    {"search", cmd_search, 0, -1, true, "search WORD... [--room ROOM] [--before POS] [--limit N]"},
    {"edit", cmd_msg_edit, 0, -1, true, "edit ROOM POS TEXT"},
    {"delete", cmd_msg_delete, 0, -1, true, "delete ROOM POS"},
    {"photo", cmd_photo, 0, -1, true,
     "photo send ROOM FILE.jpg [--caption C] [--no-gps] [--max-edge N]\n"
     "  photo resume | photo list ROOM [--limit N] | photo get ROOM POS [-o FILE] [--thumb]"},
    {"devices", cmd_devices, 0, 1, true, "devices [LOGIN]"},
    {"device approve", cmd_device_approve, 1, 1, true, "device approve ID"},
    {"device revoke", cmd_device_revoke, 1, 1, true, "device revoke ID"},
    {"verify", cmd_verify_user, 0, -1, true, "verify USER [--yes]"},
    {"notice", cmd_notice, 0, -1, true,
     "notice post --title T (--body-file F | --body TEXT) --to "
     "all|dept:NAME,group:NAME,user:LOGIN\n"
     "              [--urgent] [--ack] [--choices \"a|b|c\"] [--category C] [--pin]\n"
     "              [--expires-in MINUTES] [--announce ROOM]\n"
     "  notice list [--posted] | notice show ID | notice ack ID\n"
     "  notice respond ID CHOICE [--comment C] | notice report ID [--csv]\n"
     "  notice remind ID | notice withdraw ID | notice edit ID [--title T] [--body-file F]"},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

/* How many of the words of name argv begins with (all of them: a match), and the name's word
 * count in *words. */
static int name_match(const char *name, int argc, char **argv, int *words)
{
    int w = 0, matched = 0;
    bool all = true;
    for (const char *p = name; *p;) {
        size_t len = strcspn(p, " ");
        if (all && w < argc && strlen(argv[w]) == len && strncmp(argv[w], p, len) == 0)
            matched++;
        else
            all = false;
        w++;
        p += len;
        p += *p == ' ';
    }
    *words = w;
    return matched;
}

/* The edit distance between a and b (both short; longer ones count as far apart). */
static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40)
        return 99;
    int row[41];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* An unknown command (argv[depth] the first word no entry has after argv[0..depth-1]): says
 * which, suggests the nearest word within an edit distance of 2, and shows the usage of the
 * entries that begin with the known words (none at depth 0: --help lists them). */
static int unknown_command(int argc, char **argv, int depth)
{
    const char *bad = depth < argc ? argv[depth] : NULL;
    const char *best = NULL;
    size_t best_len = 0;
    int best_d = 3;
    for (int i = 0; bad && i < N_COMMANDS; i++) {
        int words, m = name_match(commands[i].name, argc, argv, &words);
        if (m < depth || words <= depth)
            continue;
        const char *p = commands[i].name;
        for (int w = 0; w < depth; w++)
            p += strcspn(p, " ") + 1;
        size_t len = strcspn(p, " ");
        char word[64];
        snprintf(word, sizeof word, "%.*s", (int)len, p);
        int dist = edit_distance(bad, word);
        if (dist < best_d) {
            best_d = dist;
            best = p;
            best_len = len;
        }
    }
    if (depth == 0) {
        fprintf(stderr, "kizuna: unknown command %s", bad);
    } else {
        fprintf(stderr, "kizuna: ");
        for (int w = 0; w < depth; w++)
            fprintf(stderr, "%s ", argv[w]);
        if (bad)
            fprintf(stderr, "has no subcommand %s", bad);
        else
            fprintf(stderr, "needs a subcommand");
    }
    if (best)
        fprintf(stderr, "; did you mean %.*s?", (int)best_len, best);
    fputc('\n', stderr);
    bool any = false;
    for (int i = 0; depth > 0 && i < N_COMMANDS; i++) {
        int words;
        if (name_match(commands[i].name, argc, argv, &words) >= depth && words > depth) {
            const char *u = commands[i].usage; /* its first line: the group's overview */
            fprintf(stderr, "%s kizuna %.*s\n", any ? "      " : "usage:", (int)strcspn(u, "\n"),
                    u);
            any = true;
        }
    }
    fputs("(kizuna --help lists every command)\n", stderr);
    return EXIT_USAGE;
}

/* Finds the command argv names (the entry whose words it begins with, the longest) and runs
 * it, or says what is wrong with the line. */
static int dispatch(int argc, char **argv)
{
    const struct cli_command *cmd = NULL;
    int cmd_words = 0, deepest = 0;
    for (int i = 0; i < N_COMMANDS; i++) {
        int words, m = name_match(commands[i].name, argc, argv, &words);
        if (m == words && words > cmd_words) {
            cmd = &commands[i];
            cmd_words = words;
        }
        if (m > deepest)
            deepest = m;
    }
    if (!cmd)
        return unknown_command(argc, argv, deepest);
    running = cmd;
    running_argc = argc - (cmd_words - 1);
    running_argv = argv + (cmd_words - 1);
    int nargs = running_argc - 1;
    if (nargs < cmd->min_args)
        return usage_error(NULL);
    if (cmd->max_args >= 0 && nargs > cmd->max_args) {
        fprintf(stderr, "kizuna: unexpected argument %s\n", running_argv[cmd->max_args + 1]);
        return usage_error(NULL);
    }
    return cmd->run(running_argc, running_argv);
}

int main(int argc, char **argv)
{
    /* A server that vanishes mid-write must be an error to handle, not a silent death. */
    signal(SIGPIPE, SIG_IGN);
    /* Times are the server's, as it last said (else its default), never this machine's. */
    struct session saved;
    session_load(&saved);
    time_zone_use(saved.time_zone);
    /* Global options may appear anywhere on the line; take them out first. */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int n = 0;
    if (!rest)
        return EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json_out = true;
        } else if (strcmp(argv[i], "--server") == 0) {
            if (i + 1 >= argc) {
                free(rest);
                return usage_error("--server needs a URL");
            }
            server_opt = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            free(rest);
            fputs(usage, stdout);
            return EXIT_OK;
        } else if (strcmp(argv[i], "--commands") == 0) {
            /* Every command's name, one a line (for completion, and for test_cli's check
             * that each is documented). */
            free(rest);
            for (int c = 0; c < N_COMMANDS; c++)
                printf("%s\n", commands[c].name);
            return EXIT_OK;
        } else {
            rest[n++] = argv[i];
        }
    }
    int rc = n == 0 ? usage_error(NULL) : dispatch(n, rest);
    free(rest);
    return rc;
}
