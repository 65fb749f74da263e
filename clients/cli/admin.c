/* admin.c - the account commands: `admin user add|update|list|disable|enable|reset-password`,
 * `sessions` and `revoke` (one's own or, with `admin`, anyone's), `admin audit`, `admin import`
 * and `admin export` (CSV), and the department and group lists. Entries of the command table in
 * main.c, which has counted their arguments. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void print_user_row(const cJSON *u)
{
    const char *status = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(u, "disabled")) ? "disabled"
                         : cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(u, "must_change_password"))
                             ? "active (one-time password)"
                             : "active";
    /* Names go last: Japanese text is wider than its byte count suggests. */
    printf("%-20s %-6s %-27s %s  %s\n", cli_str(u, "login", NULL), cli_str(u, "role", NULL), status,
           cli_str(u, "name", NULL), cli_str(u, "department", NULL));
}

/* `admin user add|update LOGIN [...]`: the options, parsed by user_parse. */
struct user_opts {
    const char *login, *name, *role, *dept, *groups, *email, *phone, *expires;
    long long expires_ms; /* 0 when --expires is absent or "never" (update only) */
    bool pw_stdin;
};

/* Parses `admin user add|update LOGIN [...]` (argv[0] is the subcommand); an exit code. */
static int user_parse(int argc, char **argv, bool is_add, struct user_opts *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
            o->name = argv[++i];
        else if (strcmp(argv[i], "--email") == 0 && i + 1 < argc)
            o->email = argv[++i];
        else if (strcmp(argv[i], "--phone") == 0 && i + 1 < argc)
            o->phone = argv[++i];
        else if (strcmp(argv[i], "--expires") == 0 && i + 1 < argc)
            o->expires = argv[++i];
        else if (strcmp(argv[i], "--role") == 0 && i + 1 < argc)
            o->role = argv[++i];
        else if (strcmp(argv[i], "--dept") == 0 && i + 1 < argc)
            o->dept = argv[++i];
        else if (strcmp(argv[i], "--groups") == 0 && i + 1 < argc)
            o->groups = argv[++i];
        else if (strcmp(argv[i], "--password-stdin") == 0 && is_add)
            o->pw_stdin = true;
        else if (!o->login && argv[i][0] != '-')
            o->login = argv[i];
        else
            return cli_usage_error(argv[i][0] == '-' ? NULL : "unexpected argument");
    }
    if (!o->login)
        return cli_usage_error("this command needs a LOGIN");
    if (o->expires && !(!is_add && strcmp(o->expires, "never") == 0) &&
        (o->expires_ms = cli_parse_when(o->expires)) < 0)
        return cli_usage_error(is_add ? "--expires: YYYY-MM-DD, \"YYYY-MM-DD HH:MM\", 72h, 7d"
                                      : "--expires: YYYY-MM-DD, \"YYYY-MM-DD HH:MM\", 72h, 7d "
                                        "(or never)");
    return EXIT_OK;
}

/* Calls op (args consumed) and says what became of the user; verb: "added", "disabled", .... */
static int user_call(const char *op, cJSON *args, const char *verb, bool show_expiry)
{
    cJSON *reply = NULL;
    int rc = cli_call_once(op, args, &reply);
    if (rc != EXIT_OK || json_out) { /* call_once printed it */
        cJSON_Delete(reply);
        return rc;
    }
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(reply, "user");
    printf("%s %s (%s, role %s)\n", verb, cli_str(u, "login", NULL), cli_str(u, "name", NULL),
           cli_str(u, "role", NULL));
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(u, "expires_at");
    if (cJSON_IsNumber(exp) && show_expiry) {
        char when[32];
        cli_format_time(exp->valuedouble, when, sizeof when);
        printf("the account expires at %s\n", when);
    }
    const char *pw = cli_str(reply, "password", NULL);
    if (*pw)
        printf("one-time password: %s\n(they must change it at first login)\n", pw);
    cJSON_Delete(reply);
    return EXIT_OK;
}

/* `admin user add|update LOGIN [...]`. */
static int user_add_update(int argc, char **argv, bool is_add)
{
    struct user_opts o;
    int rc = user_parse(argc, argv, is_add, &o);
    if (rc != EXIT_OK)
        return rc;
    if (cli_arguments_only()) /* before the password is read from stdin */
        return EXIT_OK;
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "login", o.login);
    if (o.name)
        cJSON_AddStringToObject(args, "name", o.name);
    if (o.role)
        cJSON_AddStringToObject(args, "role", o.role);
    if (o.dept)
        cJSON_AddStringToObject(args, "department", o.dept);
    if (o.email)
        cJSON_AddStringToObject(args, "email", o.email);
    if (o.phone)
        cJSON_AddStringToObject(args, "phone", o.phone);
    if (o.expires)
        cJSON_AddNumberToObject(args, "expires_at", (double)o.expires_ms);
    if (o.groups) {
        /* "a;b;c", as the CSV import writes them */
        cJSON *arr = cJSON_AddArrayToObject(args, "groups");
        char buf[4096];
        snprintf(buf, sizeof buf, "%s", o.groups);
        for (char *save, *tok = strtok_r(buf, ";,", &save); tok; tok = strtok_r(NULL, ";,", &save))
            cJSON_AddItemToArray(arr, cJSON_CreateString(tok));
    }
    if (o.pw_stdin) {
        char pw[256];
        if (cli_read_line(stdin, pw, sizeof pw) != 0 || !pw[0]) {
            cJSON_Delete(args);
            return cli_usage_error("--password-stdin: no password on standard input");
        }
        cJSON_AddStringToObject(args, "password", pw);
        memset(pw, 0, sizeof pw);
    }
    return user_call(is_add ? "user.add" : "user.update", args, is_add ? "added" : "updated", true);
}

int cmd_user_add(int argc, char **argv)
{
    return user_add_update(argc, argv, true);
}

int cmd_user_update(int argc, char **argv)
{
    return user_add_update(argc, argv, false);
}

/* `admin user list` */
int cmd_user_list(int argc, char **argv)
{
    (void)argc, (void)argv;
    cJSON *reply = NULL;
    int rc = cli_call_once("user.list", NULL, &reply);
    if (rc == EXIT_OK && !json_out) {
        printf("%-20s %-6s %-27s %s  %s\n", "LOGIN", "ROLE", "STATUS", "NAME", "DEPARTMENT");
        const cJSON *u;
        cJSON_ArrayForEach(u, cJSON_GetObjectItemCaseSensitive(reply, "users")) print_user_row(u);
    }
    cJSON_Delete(reply);
    return rc;
}

/* `admin user disable|enable|reset-password LOGIN`: one op on one user. */
static int user_simple(const char *login, const char *op, const char *verb)
{
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "login", login);
    return user_call(op, args, verb, false);
}

int cmd_user_disable(int argc, char **argv)
{
    (void)argc;
    return user_simple(argv[1], "user.disable", "disabled");
}

int cmd_user_enable(int argc, char **argv)
{
    (void)argc;
    return user_simple(argv[1], "user.enable", "enabled");
}

int cmd_user_reset_password(int argc, char **argv)
{
    (void)argc;
    return user_simple(argv[1], "user.reset_password", "password reset for");
}

/* `sessions [LOGIN]` and `revoke ID`: one's own devices, or (admin) anyone's. */
int cmd_sessions(const char *login)
{
    cJSON *args = cJSON_CreateObject();
    if (login)
        cJSON_AddStringToObject(args, "login", login);
    cJSON *reply = NULL;
    int rc = cli_call_once("session.list", args, &reply);
    if (rc == EXIT_OK && !json_out) {
        printf("sessions of %s:\n", cli_str(reply, "login", NULL));
        const cJSON *ses;
        cJSON_ArrayForEach(ses, cJSON_GetObjectItemCaseSensitive(reply, "sessions"))
        {
            time_t t =
                (time_t)(cJSON_GetObjectItemCaseSensitive(ses, "last_seen")->valuedouble / 1000);
            char when[32];
            strftime(when, sizeof when, "%Y-%m-%d %H:%M", localtime(&t));
            printf("  %-6d last seen %s from %-22s %s%s\n",
                   (int)cJSON_GetObjectItemCaseSensitive(ses, "id")->valuedouble, when,
                   cli_str(ses, "address", NULL), cli_str(ses, "device", NULL),
                   cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ses, "current")) ? "  (this one)"
                                                                                  : "");
        }
    }
    cJSON_Delete(reply);
    return rc;
}

int cmd_revoke(const char *id)
{
    char *end;
    long long n = strtoll(id, &end, 10);
    if (*end || n <= 0)
        return cli_usage_error("SESSION_ID: a number (see kizuna sessions)");
    cJSON *args = cJSON_CreateObject();
    cJSON_AddNumberToObject(args, "session", (double)n);
    int rc = cli_call_once("session.revoke", args, NULL);
    if (rc == EXIT_OK && !json_out)
        printf("session %lld revoked: its device is logged out\n", n);
    return rc;
}

/* `admin audit [--action A] [--actor L] [--target T] [--limit N] [--csv]`; --json prints the
 * entries as JSON Lines (one per line), ready for export; --csv prints the CSV the server made
 * (every CSV is made by the server, with its guard against spreadsheet formulas). */
int cmd_audit(int argc, char **argv)
{
    cJSON *args = cJSON_CreateObject();
    bool csv = false;
    for (int i = 0; i < argc; i += 2) {
        if (strcmp(argv[i], "--csv") == 0) {
            csv = true;
            i--;
            continue;
        }
        if (i + 1 >= argc || strncmp(argv[i], "--", 2) != 0 ||
            (strcmp(argv[i], "--action") && strcmp(argv[i], "--actor") &&
             strcmp(argv[i], "--target") && strcmp(argv[i], "--limit"))) {
            cJSON_Delete(args);
            return cli_usage_error(NULL);
        }
        if (strcmp(argv[i], "--limit") == 0)
            cJSON_AddNumberToObject(args, "limit", atof(argv[i + 1]));
        else
            cJSON_AddStringToObject(args, argv[i] + 2, argv[i + 1]);
    }
    if (csv)
        cJSON_AddStringToObject(args, "format", "csv");
    bool jsonl = json_out;
    json_out = false; /* printed below, one entry per line */
    cJSON *reply = NULL;
    int rc = cli_call_once("audit.list", args, &reply);
    json_out = jsonl;
    if (rc != EXIT_OK)
        return rc;
    if (csv) {
        fputs(cli_str(reply, "csv", NULL), stdout);
        cJSON_Delete(reply);
        return EXIT_OK;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(reply, "entries"))
    {
        if (jsonl) {
            char *t = cJSON_PrintUnformatted(e);
            puts(t);
            cJSON_free(t);
            continue;
        }
        time_t t = (time_t)(cJSON_GetObjectItemCaseSensitive(e, "at")->valuedouble / 1000);
        char when[32];
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&t));
        char *details = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(e, "details"));
        printf("%s  %-12s %-20s %-14s %s %s\n", when, cli_str(e, "actor", NULL),
               cli_str(e, "action", NULL), cli_str(e, "target", NULL), cli_str(e, "address", NULL),
               details ? details : "");
        cJSON_free(details);
    }
    cJSON_Delete(reply);
    return EXIT_OK;
}

/* ---- a progress line for anything that takes longer than a second ---- */

/* While a long call blocks this thread, another says on stderr that the command is working:
 * after one second, then every second on a terminal (one line, rewritten) or every ten seconds
 * into a file or a pipe. progress_stop says how long it took, if anything was shown. */
struct progress {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done, shown, running, tty;
    char what[512];
    struct timespec start; /* CLOCK_MONOTONIC */
};

static double progress_elapsed(const struct progress *p)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - p->start.tv_sec) + (double)(now.tv_nsec - p->start.tv_nsec) / 1e9;
}

static void *progress_run(void *arg)
{
    struct progress *p = arg;
    pthread_mutex_lock(&p->mu);
    for (long next = 1; !p->done;) {
        struct timespec at = p->start;
        at.tv_sec += next;
        if (pthread_cond_timedwait(&p->cv, &p->mu, &at) != ETIMEDOUT || p->done)
            continue;
        long secs = (long)progress_elapsed(p);
        fprintf(stderr, p->tty ? "\rkizuna: %s… %ld s " : "kizuna: %s… %ld s\n", p->what, secs);
        fflush(stderr);
        p->shown = true;
        next = secs + (p->tty ? 1 : 10);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void progress_start(struct progress *p, const char *what)
{
    memset(p, 0, sizeof *p);
    snprintf(p->what, sizeof p->what, "%s", what);
    p->tty = isatty(STDERR_FILENO);
    clock_gettime(CLOCK_MONOTONIC, &p->start);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, &attr);
    pthread_condattr_destroy(&attr);
    p->running = pthread_create(&p->thread, NULL, progress_run, p) == 0;
}

static void progress_stop(struct progress *p)
{
    if (p->running) {
        pthread_mutex_lock(&p->mu);
        p->done = true;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
    }
    if (p->shown)
        fprintf(stderr, "%skizuna: %s: done in %.1f s\n", p->tty ? "\r" : "", p->what,
                progress_elapsed(p));
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
}

/* `admin import FILE.csv [--dry-run] [--passwords-out FILE]` and `admin export`. */
static char *file_base64(const char *path, size_t *raw_len, size_t *lines)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 65536, len = 0, n;
    unsigned char *buf = malloc(cap);
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            unsigned char *grown = realloc(buf, cap *= 2);
            if (!grown) {
                free(buf);
                buf = NULL;
            }
            buf = grown;
        }
    }
    fclose(f);
    if (!buf)
        return NULL;
    /* base64 keeps broken UTF-8 intact, so the server can say which line has it */
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(len / 3 * 4 + 8), *o = out;
    for (size_t i = 0; out && i < len; i += 3) {
        unsigned v = (unsigned)buf[i] << 16 | (i + 1 < len ? (unsigned)buf[i + 1] << 8 : 0) |
                     (i + 2 < len ? buf[i + 2] : 0);
        *o++ = tbl[v >> 18 & 63];
        *o++ = tbl[v >> 12 & 63];
        *o++ = i + 1 < len ? tbl[v >> 6 & 63] : '=';
        *o++ = i + 2 < len ? tbl[v & 63] : '=';
    }
    if (out)
        *o = '\0';
    *lines = 0;
    for (size_t i = 0; i < len; i++)
        *lines += buf[i] == '\n' || (i + 1 == len && buf[i] != '\n');
    free(buf);
    *raw_len = len;
    return out;
}

int cmd_import(int argc, char **argv)
{
    const char *file = NULL, *pw_out = NULL;
    bool dry = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--dry-run") == 0)
            dry = true;
        else if (strcmp(argv[i], "--passwords-out") == 0 && i + 1 < argc)
            pw_out = argv[++i];
        else if (!file)
            file = argv[i];
        else
            return cli_usage_error(NULL);
    }
    if (!file)
        return cli_usage_error("admin import needs a FILE.csv");
    if (cli_arguments_only())
        return EXIT_OK;
    size_t raw, lines;
    char *b64 = file_base64(file, &raw, &lines);
    if (!b64) {
        fprintf(stderr, "kizuna: cannot read %s: %s\n", file, strerror(errno));
        return EXIT_USAGE;
    }
    char default_out[4200];
    if (!pw_out && !dry) {
        snprintf(default_out, sizeof default_out, "%s.passwords.csv", file);
        pw_out = default_out;
    }
    /* A thousand users take well under a second (docs/performance.md); a busy server, a slow
     * link or a far larger file may take longer, and then the admin sees that it is working. */
    char what[512];
    snprintf(what, sizeof what, "%s %.400s (%zu lines)", dry ? "checking" : "importing", file,
             lines);
    struct progress pg;
    progress_start(&pg, what);
    struct kzc *c;
    struct session s;
    int rc = cli_connect_authed(&c, &s);
    if (rc != EXIT_OK) {
        progress_stop(&pg);
        free(b64);
        return rc;
    }
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "csv_base64", b64);
    free(b64);
    cJSON_AddBoolToObject(args, "dry_run", dry);
    /* A large file on a busy server: wait up to 15 minutes. */
    cJSON *reply = kzc_call(c, "user.import", args, 15 * 60 * 1000);
    progress_stop(&pg);
    if (!reply) {
        rc = cli_unreachable(kzc_error(c));
        kzc_close(c);
        return rc;
    }
    kzc_close(c);
    if ((rc = cli_check_reply(reply)) != EXIT_OK) {
        cJSON_Delete(reply);
        return rc;
    }
    const cJSON *pws = cJSON_GetObjectItemCaseSensitive(reply, "passwords");
    if (!dry && cJSON_GetArraySize(pws) > 0) {
        /* One-time passwords, as the CSV the server made: readable by the admin alone. */
        const char *text = cli_str(reply, "passwords_csv", NULL);
        int fd = *text ? open(pw_out, O_WRONLY | O_CREAT | O_TRUNC, 0600) : -1;
        FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
        bool ok = f && fchmod(fd, 0600) == 0 && fputs(text, f) != EOF;
        int err = errno;
        if (f && fclose(f) != 0 && ok) {
            ok = false;
            err = errno;
        } else if (!f && fd >= 0) {
            close(fd);
        }
        if (!ok) {
            fprintf(stderr, "kizuna: cannot write %s: %s (the import was applied)\n", pw_out,
                    *text ? strerror(err) : "the server sent no passwords file");
            cJSON_Delete(reply);
            return EXIT_REFUSED;
        }
    }
    if (json_out) {
        cJSON_DeleteItemFromObjectCaseSensitive(reply, "passwords");
        cJSON_DeleteItemFromObjectCaseSensitive(reply, "passwords_csv");
        cli_print_json(reply);
    } else {
        if (strcmp(cli_str(reply, "encoding", NULL), "cp932") == 0)
            printf("read as Shift_JIS (CP932, as Japanese Excel saves 「CSV (コンマ区切り)」) and "
                   "converted to UTF-8\n");
        const cJSON *p;
        cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(reply, "problems"))
            printf("line %d: %s\n", (int)cJSON_GetObjectItemCaseSensitive(p, "line")->valuedouble,
                   cli_str(p, "problem", NULL));
        int problems = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(reply, "problems"));
        if (dry)
            printf("dry run: %lld to add, %lld to update, %lld unchanged, %d problem(s)\n",
                   cli_num(reply, "added"), cli_num(reply, "updated"), cli_num(reply, "unchanged"),
                   problems);
        else
            printf("imported: %lld added, %lld updated, %lld unchanged, %d problem(s)\n",
                   cli_num(reply, "added"), cli_num(reply, "updated"), cli_num(reply, "unchanged"),
                   problems);
        if (!dry && cJSON_GetArraySize(pws) > 0)
            printf("one-time passwords written to %s (mode 0600)\n", pw_out);
    }
    /* A dry run that found problems fails, so a script can stop before applying. */
    int problems = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(reply, "problems"));
    cJSON_Delete(reply);
    return dry && problems ? EXIT_REFUSED : EXIT_OK;
}

/* `admin export`: every user as the CSV the server made (`user.list` with format csv), which
 * `admin import` takes back unchanged; with --json, every user as JSON (`user.list`). */
int cmd_export(void)
{
    if (json_out)
        return cli_call_once("user.list", NULL, NULL);
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "format", "csv");
    cJSON *reply = NULL;
    bool was_json = json_out;
    json_out = false; /* the CSV itself is the output */
    int rc = cli_call_once("user.list", args, &reply);
    json_out = was_json;
    if (rc != EXIT_OK)
        return rc;
    fputs(cli_str(reply, "csv", NULL), stdout);
    cJSON_Delete(reply);
    return EXIT_OK;
}

int cmd_org_list(bool depts)
{
    cJSON *reply = NULL;
    int rc = cli_call_once(depts ? "dept.list" : "group.list", NULL, &reply);
    if (rc == EXIT_OK && !json_out) {
        const cJSON *d;
        cJSON_ArrayForEach(
            d, cJSON_GetObjectItemCaseSensitive(reply, depts ? "departments" : "groups"))
            printf("%6d  %s\n", (int)cJSON_GetObjectItemCaseSensitive(d, "members")->valuedouble,
                   cli_str(d, "name", NULL));
    }
    cJSON_Delete(reply);
    return rc;
}
