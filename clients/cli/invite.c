/* invite.c - invitations for dispatched staff: `kizuna admin invite create|list|revoke` and
 * `kizuna join CODE`. HQ shows a new invitation on a screen as text and as a QR code that
 * carries the server's address too. */
#include "cli.h"

#include <qrencode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QR_URI_PREFIX "kizuna:join?"

long long cli_parse_when(const char *text)
{
    char *end;
    long long n = strtoll(text, &end, 10);
    if (end != text && n > 0 && end[0] && !end[1]) {
        long long unit = end[0] == 'm' ? 60 : end[0] == 'h' ? 3600 : end[0] == 'd' ? 86400 : 0;
        if (unit && n <= 3650LL * 86400 / unit)
            return ((long long)time(NULL) + n * unit) * 1000;
        return -1;
    }
    struct tm tm = {0};
    const char *rest = strptime(text, "%Y-%m-%d", &tm);
    if (!rest)
        return -1;
    if (*rest && !(rest = strptime(rest, *rest == 'T' ? "T%H:%M" : " %H:%M", &tm)))
        return -1;
    if (*rest)
        return -1;
    tm.tm_isdst = -1;
    time_t t = mktime(&tm);
    return t == (time_t)-1 ? -1 : (long long)t * 1000;
}

void cli_print_qr(const char *text)
{
    QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    if (!qr) {
        fprintf(stderr, "kizuna: cannot make a QR code of this text\n");
        return;
    }
    /* Two module rows per text line; a quiet zone of two modules all round. Light modules
     * are drawn, so on a dark terminal the code reads as dark on light. */
    const int quiet = 2, w = qr->width;
    for (int y = -quiet; y < w + quiet; y += 2) {
        for (int x = -quiet; x < w + quiet; x++) {
            bool top = y >= 0 && y < w && x >= 0 && x < w && (qr->data[y * w + x] & 1);
            bool bottom =
                y + 1 >= 0 && y + 1 < w && x >= 0 && x < w && (qr->data[(y + 1) * w + x] & 1);
            fputs(!top && !bottom ? "\u2588" : !top ? "\u2580" : !bottom ? "\u2584" : " ", stdout);
        }
        putchar('\n');
    }
    QRcode_free(qr);
}

static void print_invite_row(const cJSON *inv)
{
    char expires[32], account[32] = "never";
    cli_format_time(cJSON_GetObjectItemCaseSensitive(inv, "expires_at")->valuedouble, expires,
                    sizeof expires);
    const cJSON *ae = cJSON_GetObjectItemCaseSensitive(inv, "account_expires_at");
    if (cJSON_IsNumber(ae))
        cli_format_time(ae->valuedouble, account, sizeof account);
    printf("%-5d %-8s %-5s %3d/%-3d %-16s %-16s %s  %s\n",
           (int)cJSON_GetObjectItemCaseSensitive(inv, "id")->valuedouble,
           cli_str(inv, "state", NULL), cli_str(inv, "role", NULL),
           (int)cJSON_GetObjectItemCaseSensitive(inv, "uses")->valuedouble,
           (int)cJSON_GetObjectItemCaseSensitive(inv, "uses_max")->valuedouble, expires, account,
           cli_str(inv, "department", NULL), cli_str(inv, "note", NULL));
}

/* `admin invite create [...]`; argv[0] is "create". */
int cmd_invite_create(int argc, char **argv)
{
    cJSON *args = cJSON_CreateObject();
    bool no_qr = false;
    const char *bad = NULL;
    for (int i = 1; i < argc && !bad; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--no-qr") == 0) {
            no_qr = true;
            continue;
        }
        if (!v) {
            bad = "an option needs a value";
            break;
        }
        i++;
        if (strcmp(a, "--role") == 0) {
            cJSON_AddStringToObject(args, "role", v);
        } else if (strcmp(a, "--dept") == 0) {
            cJSON_AddStringToObject(args, "department", v);
        } else if (strcmp(a, "--note") == 0) {
            cJSON_AddStringToObject(args, "note", v);
        } else if (strcmp(a, "--groups") == 0) {
            cJSON *arr = cJSON_AddArrayToObject(args, "groups");
            char buf[4096];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *save, *tok = strtok_r(buf, ";,", &save); tok;
                 tok = strtok_r(NULL, ";,", &save))
                cJSON_AddItemToArray(arr, cJSON_CreateString(tok));
        } else if (strcmp(a, "--uses") == 0) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n < 1)
                bad = "--uses needs a number from 1";
            else
                cJSON_AddNumberToObject(args, "uses", (double)n);
        } else if (strcmp(a, "--expires") == 0 || strcmp(a, "--account-expires") == 0) {
            long long ms = cli_parse_when(v);
            if (ms < 0)
                bad = "a time is YYYY-MM-DD, \"YYYY-MM-DD HH:MM\", or from now: 90m, 72h, 7d";
            else
                cJSON_AddNumberToObject(args, a[2] == 'e' ? "expires_at" : "account_expires_at",
                                        (double)ms);
        } else {
            bad = ""; /* cli_usage_error names the option it does not have */
        }
    }
    if (bad) {
        cJSON_Delete(args);
        return cli_usage_error(*bad ? bad : NULL);
    }
    cJSON *reply = NULL;
    int rc = cli_call_once("invite.create", args, &reply);
    if (rc != EXIT_OK || json_out) {
        cJSON_Delete(reply);
        return rc;
    }
    struct session s;
    cli_session_load(&s);
    const cJSON *inv = cJSON_GetObjectItemCaseSensitive(reply, "invite");
    const char *code = cli_str(reply, "code", NULL);
    char expires[32], account[32] = "";
    cli_format_time(cJSON_GetObjectItemCaseSensitive(inv, "expires_at")->valuedouble, expires,
                    sizeof expires);
    const cJSON *ae = cJSON_GetObjectItemCaseSensitive(inv, "account_expires_at");
    if (cJSON_IsNumber(ae))
        cli_format_time(ae->valuedouble, account, sizeof account);
    printf("invitation %d: role %s%s%s, usable %d time%s until %s\n",
           (int)cJSON_GetObjectItemCaseSensitive(inv, "id")->valuedouble,
           cli_str(inv, "role", NULL), *cli_str(inv, "department", NULL) ? ", department " : "",
           cli_str(inv, "department", NULL),
           (int)cJSON_GetObjectItemCaseSensitive(inv, "uses_max")->valuedouble,
           cJSON_GetObjectItemCaseSensitive(inv, "uses_max")->valuedouble > 1 ? "s" : "", expires);
    if (account[0])
        printf("accounts made with it are disabled at %s\n", account);
    printf("\n  code:    %s\n  server:  %s\n  join:    kizuna --server %s join %s\n\n", code,
           cli_server_url(&s), cli_server_url(&s), code);
    if (!no_qr) {
        char uri[1024];
        snprintf(uri, sizeof uri, QR_URI_PREFIX "server=%s&code=%s", cli_server_url(&s), code);
        cli_print_qr(uri);
    }
    printf("\nThe code is shown only now. Revoke it with: kizuna admin invite revoke %d\n",
           (int)cJSON_GetObjectItemCaseSensitive(inv, "id")->valuedouble);
    cJSON_Delete(reply);
    return EXIT_OK;
}

/* `admin invite list` */
int cmd_invite_list(int argc, char **argv)
{
    (void)argc, (void)argv;
    cJSON *reply = NULL;
    int rc = cli_call_once("invite.list", NULL, &reply);
    if (rc == EXIT_OK && !json_out) {
        printf("%-5s %-8s %-5s %-7s %-16s %-16s %s\n", "ID", "STATE", "ROLE", "USED",
               "CODE EXPIRES", "ACCOUNTS EXPIRE", "DEPARTMENT  NOTE");
        const cJSON *inv;
        cJSON_ArrayForEach(inv, cJSON_GetObjectItemCaseSensitive(reply, "invites"))
            print_invite_row(inv);
    }
    cJSON_Delete(reply);
    return rc;
}

/* `admin invite revoke ID` */
int cmd_invite_revoke(int argc, char **argv)
{
    (void)argc;
    char *end;
    long long id = strtoll(argv[1], &end, 10);
    if (*end || id <= 0)
        return cli_usage_error("ID: a number (see kizuna admin invite list)");
    cJSON *args = cJSON_CreateObject();
    cJSON_AddNumberToObject(args, "invite", (double)id);
    int rc = cli_call_once("invite.revoke", args, NULL);
    if (rc == EXIT_OK && !json_out)
        printf("invitation %lld revoked: its code no longer works\n", id);
    return rc;
}

/* `join CODE --login L [--name N] [--device D] [--shared]`; CODE may be the QR code's
 * kizuna:join?server=…&code=… text, which also names the server. */
int cmd_join(int argc, char **argv)
{
    const char *code = NULL, *login = NULL, *name = NULL, *device = NULL;
    bool shared = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--login") == 0 && i + 1 < argc)
            login = argv[++i];
        else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
            name = argv[++i];
        else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
            device = argv[++i];
        else if (strcmp(argv[i], "--shared") == 0)
            shared = true;
        else if (!code && argv[i][0] != '-')
            code = argv[i];
        else
            return cli_usage_error(
                "join CODE --login LOGIN [--name NAME] [--device LABEL] [--shared]");
    }
    if (!code || !login)
        return cli_usage_error(
            "join needs the invitation CODE and --login LOGIN (your new login id)");
    char server[512] = "", code_buf[128];
    if (strncmp(code, QR_URI_PREFIX, strlen(QR_URI_PREFIX)) == 0) {
        const char *sv = strstr(code, "server="), *cd = strstr(code, "code=");
        if (!sv || !cd)
            return cli_usage_error("the invitation text has no server or code");
        snprintf(server, sizeof server, "%.*s", (int)strcspn(sv + 7, "&"), sv + 7);
        snprintf(code_buf, sizeof code_buf, "%.*s", (int)strcspn(cd + 5, "&"), cd + 5);
        code = code_buf;
    }
    char password[256];
    if (cli_get_secret("KIZUNA_NEW_PASSWORD", "Choose a password: ", password, sizeof password) !=
        0)
        return EXIT_USAGE;
    struct session s;
    cli_session_load(&s);
    const char *url = server[0] && !cli_server_override() ? server : cli_server_url(&s);
    char err[256], label[300];
    struct kzc *c = kzc_connect(url, TIMEOUT_MS, err, sizeof err);
    if (!c) {
        memset(password, 0, sizeof password);
        return cli_unreachable(err);
    }
    cli_device_label(label, sizeof label);
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "code", code);
    cJSON_AddStringToObject(args, "login", login);
    if (name)
        cJSON_AddStringToObject(args, "name", name);
    cJSON_AddStringToObject(args, "password", password);
    cJSON_AddStringToObject(args, "device", device ? device : label);
    if (shared)
        cJSON_AddBoolToObject(args, "shared", true);
    memset(password, 0, sizeof password);
    cJSON *reply;
    int rc = cli_call(c, "join", args, &reply);
    kzc_close(c);
    if (rc != EXIT_OK)
        return rc;
    return cli_login_finish(url, login, reply);
}
