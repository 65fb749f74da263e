/* notice.c - the kizuna notice commands: post, list, show, ack, respond, report, remind,
 * withdraw, edit; each an entry of the command table in main.c (argv[0] is the subcommand, the
 * table has counted the arguments). */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LINK_PREFIX "kizuna://notice/"
/* What a usage mistake in a notice's ID says. */
#define ID_ERROR "ID: a notice's number, or its kizuna://notice/ID link"

static void when(long long ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, 32, "%m-%d %H:%M", &tm);
}

/* A notice id, or the kizuna://notice/ID link an announcement carries. */
static bool parse_id(const char *s, long long *out)
{
    if (strncmp(s, LINK_PREFIX, strlen(LINK_PREFIX)) == 0)
        s += strlen(LINK_PREFIX);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v <= 0)
        return false;
    *out = v;
    return true;
}

static char *read_file(const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 8192, len = 0, n;
    char *buf = malloc(cap);
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *grown = realloc(buf, cap *= 2);
            if (!grown) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
        }
    }
    if (f != stdin)
        fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

static cJSON *id_args(long long id)
{
    cJSON *args = cJSON_CreateObject();
    cJSON_AddNumberToObject(args, "notice", (double)id);
    return args;
}

/* ---- post ---- */

static cJSON *split(const char *list, const char *seps)
{
    cJSON *arr = cJSON_CreateArray();
    char *buf = strdup(list);
    for (char *save, *tok = strtok_r(buf, seps, &save); tok; tok = strtok_r(NULL, seps, &save))
        cJSON_AddItemToArray(arr, cJSON_CreateString(tok));
    free(buf);
    return arr;
}

/* notice.post with --announce ROOM: the room is named as in every other command (id, id
 * prefix, exact name or @login) and resolved on the same connection. Consumes args. */
static int post_announced(cJSON *args, const char *room, cJSON **reply)
{
    struct kzc *c;
    struct session s;
    char room_id[ROOM_ID_MAX];
    int rc = cli_connect_authed(&c, &s);
    if (rc == EXIT_OK && (rc = resolve_room(c, room, room_id, NULL, 0)) != EXIT_OK)
        kzc_close(c);
    if (rc != EXIT_OK) {
        cJSON_Delete(args);
        return rc;
    }
    cJSON_AddStringToObject(args, "announce_room", room_id);
    return cli_call_and_close(c, "notice.post", args, reply);
}

int cmd_notice_post(int argc, char **argv)
{
    const char *title = NULL, *body_file = NULL, *body_text = NULL, *to = NULL, *choices = NULL;
    const char *category = NULL, *announce = NULL;
    bool urgent = false, ack = false, pin = false;
    long long expires_in = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--urgent") == 0)
            urgent = true;
        else if (strcmp(a, "--ack") == 0)
            ack = true;
        else if (strcmp(a, "--pin") == 0)
            pin = true;
        else if (!v)
            return cli_usage_error(NULL);
        else if (strcmp(a, "--title") == 0)
            title = v, i++;
        else if (strcmp(a, "--body-file") == 0)
            body_file = v, i++;
        else if (strcmp(a, "--body") == 0)
            body_text = v, i++;
        else if (strcmp(a, "--to") == 0)
            to = v, i++;
        else if (strcmp(a, "--choices") == 0)
            choices = v, i++;
        else if (strcmp(a, "--category") == 0)
            category = v, i++;
        else if (strcmp(a, "--announce") == 0)
            announce = v, i++;
        else if (strcmp(a, "--expires-in") == 0 && (expires_in = atoll(v)) > 0)
            i++;
        else
            return cli_usage_error(strcmp(a, "--expires-in") == 0 ? "--expires-in: minutes, from 1"
                                                                  : NULL);
    }
    if (!title || !to || (!body_file == !body_text))
        return cli_usage_error("notice post needs --title, --to, and --body-file or --body");
    if (cli_arguments_only())
        return EXIT_OK;
    char *body = body_file ? read_file(body_file) : strdup(body_text);
    if (!body) {
        fprintf(stderr, "kizuna: cannot read %s: %s\n", body_file, strerror(errno));
        return EXIT_USAGE;
    }
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "title", title);
    cJSON_AddStringToObject(args, "body", body);
    free(body);
    cJSON_AddItemToObject(args, "to", split(to, ","));
    if (urgent)
        cJSON_AddStringToObject(args, "priority", "urgent");
    if (ack)
        cJSON_AddTrueToObject(args, "ask_ack");
    if (pin)
        cJSON_AddTrueToObject(args, "pinned");
    if (choices)
        cJSON_AddItemToObject(args, "choices", split(choices, "|"));
    if (category)
        cJSON_AddStringToObject(args, "category", category);
    if (expires_in > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        cJSON_AddNumberToObject(args, "expires_at", (double)(now + expires_in * 60000));
    }
    cJSON *reply = NULL;
    int rc = announce ? post_announced(args, announce, &reply)
                      : cli_call_once("notice.post", args, &reply);
    if (rc == EXIT_OK && !json_out)
        printf("posted notice #%lld to %lld recipients (%s)\n",
               cli_num(cJSON_GetObjectItemCaseSensitive(reply, "notice"), "id"),
               cli_num(reply, "recipients"), cli_str(reply, "notice", "link"));
    cJSON_Delete(reply);
    return rc;
}

/* ---- list and show ---- */

static void print_summary(const cJSON *n)
{
    const cJSON *me = cJSON_GetObjectItemCaseSensitive(n, "me");
    char t[32];
    when(cli_num(n, "created_at"), t);
    bool unread = me && !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(me, "read_at"));
    bool urgent = strcmp(cli_str(n, "priority", NULL), "urgent") == 0;
    bool withdrawn = cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(n, "withdrawn_at"));
    printf("#%-5lld %s%s%s%s%s  (%s, %s)\n", cli_num(n, "id"), unread ? "[未読] " : "",
           urgent ? "[緊急] " : "",
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(n, "pinned")) ? "[固定] " : "",
           withdrawn ? "[取消] " : "", cli_str(n, "title", NULL), cli_str(n, "author_name", NULL),
           t);
}

int cmd_notice_list(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--posted") != 0)
        return cli_usage_error(NULL);
    cJSON *args = cJSON_CreateObject();
    if (argc == 2)
        cJSON_AddTrueToObject(args, "posted");
    cJSON *reply = NULL;
    int rc = cli_call_once("notice.list", args, &reply);
    if (rc == EXIT_OK && !json_out) {
        const cJSON *n;
        cJSON_ArrayForEach(n, cJSON_GetObjectItemCaseSensitive(reply, "notices")) print_summary(n);
    }
    cJSON_Delete(reply);
    return rc;
}

static void print_notice(const cJSON *n)
{
    print_summary(n);
    printf("\n%s\n\n", cli_str(n, "body", NULL));
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(n, "choices");
    const cJSON *me = cJSON_GetObjectItemCaseSensitive(n, "me");
    if (cJSON_GetArraySize(choices) > 0) {
        printf("choices (kizuna notice respond %lld NUMBER):\n", cli_num(n, "id"));
        int i = 1;
        const cJSON *ch;
        cJSON_ArrayForEach(ch, choices) printf("  %d. %s\n", i++, ch->valuestring);
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(n, "ask_ack")))
        printf("this notice asks you to acknowledge it: kizuna notice ack %lld\n",
               cli_num(n, "id"));
    const cJSON *resp = cJSON_GetObjectItemCaseSensitive(me, "response");
    if (cJSON_IsObject(resp))
        printf("your response: %s %s\n", cli_str(resp, "text", NULL),
               cli_str(resp, "comment", NULL));
    if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(me, "acked_at")))
        printf("you acknowledged it (確認しました)\n");
}

/* The notice id that is the only operand (ids are > 0; the command table has counted one), or
 * 0 after printing the usage. The id is the return value, not an out-parameter beside an exit
 * code, so no caller can read an id that was never set (with the exit code, gcc -O3 could not
 * prove it: -Wmaybe-uninitialized). */
static long long one_id(char **argv)
{
    long long id;
    if (parse_id(argv[1], &id))
        return id;
    cli_usage_error(ID_ERROR);
    return 0;
}

int cmd_notice_show(int argc, char **argv)
{
    (void)argc;
    long long id = one_id(argv);
    if (!id)
        return EXIT_USAGE;
    cJSON *reply = NULL;
    int rc = cli_call_once("notice.show", id_args(id), &reply);
    if (rc == EXIT_OK && !json_out)
        print_notice(cJSON_GetObjectItemCaseSensitive(reply, "notice"));
    cJSON_Delete(reply);
    return rc;
}

/* `notice ack|remind|withdraw ID`: one op on one notice. */
static int notice_simple(char **argv, const char *op, const char *done)
{
    long long id = one_id(argv);
    if (!id)
        return EXIT_USAGE;
    cJSON *reply = NULL;
    int rc = cli_call_once(op, id_args(id), &reply);
    if (rc == EXIT_OK && !json_out) {
        if (strcmp(op, "notice.remind") == 0)
            printf("reminded %lld people who have not yet %s\n", cli_num(reply, "reminded"),
                   strcmp(cli_str(reply, "for", NULL), "response") == 0 ? "responded"
                   : strcmp(cli_str(reply, "for", NULL), "ack") == 0    ? "acknowledged"
                                                                        : "read it");
        else
            printf("%s notice #%lld\n", done, id);
    }
    cJSON_Delete(reply);
    return rc;
}

int cmd_notice_ack(int argc, char **argv)
{
    (void)argc;
    return notice_simple(argv, "notice.ack", "acknowledged (確認しました)");
}

int cmd_notice_remind(int argc, char **argv)
{
    (void)argc;
    return notice_simple(argv, "notice.remind", "reminded");
}

int cmd_notice_withdraw(int argc, char **argv)
{
    (void)argc;
    return notice_simple(argv, "notice.withdraw", "withdrew");
}

int cmd_notice_respond(int argc, char **argv)
{
    long long id;
    const char *comment = NULL;
    if (argc == 5 && strcmp(argv[3], "--comment") == 0)
        comment = argv[4];
    else if (argc != 3)
        return cli_usage_error(NULL);
    if (!parse_id(argv[1], &id))
        return cli_usage_error(ID_ERROR);
    cJSON *args = id_args(id);
    cJSON_AddStringToObject(args, "choice", argv[2]);
    if (comment)
        cJSON_AddStringToObject(args, "comment", comment);
    cJSON *reply = NULL;
    int rc = cli_call_once("notice.respond", args, &reply);
    if (rc == EXIT_OK && !json_out)
        printf("responded to #%lld: %s\n", id, cli_str(reply, "text", NULL));
    cJSON_Delete(reply);
    return rc;
}

int cmd_notice_edit(int argc, char **argv)
{
    long long id;
    const char *title = NULL, *body_file = NULL;
    if (!parse_id(argv[1], &id))
        return cli_usage_error(ID_ERROR);
    for (int i = 2; i < argc; i += 2) {
        if (i + 1 >= argc)
            return cli_usage_error(NULL);
        if (strcmp(argv[i], "--title") == 0)
            title = argv[i + 1];
        else if (strcmp(argv[i], "--body-file") == 0)
            body_file = argv[i + 1];
        else
            return cli_usage_error(NULL);
    }
    if (cli_arguments_only())
        return EXIT_OK;
    cJSON *args = id_args(id);
    if (title)
        cJSON_AddStringToObject(args, "title", title);
    if (body_file) {
        char *body = read_file(body_file);
        if (!body) {
            cJSON_Delete(args);
            fprintf(stderr, "kizuna: cannot read %s\n", body_file);
            return EXIT_USAGE;
        }
        cJSON_AddStringToObject(args, "body", body);
        free(body);
    }
    cJSON *reply = NULL;
    int rc = cli_call_once("notice.edit", args, &reply);
    if (rc == EXIT_OK && !json_out)
        printf("notice #%lld is now revision %lld\n", id, cli_num(reply, "revision"));
    cJSON_Delete(reply);
    return rc;
}

/* ---- report ---- */

static void print_counts(const char *label, const cJSON *row)
{
    cli_print_padded(label, 16);
    printf(" %6lld %6lld %6lld %6lld", cli_num(row, "recipients"), cli_num(row, "read"),
           cli_num(row, "acked"), cli_num(row, "responded"));
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(row, "responses"))
        printf(" %6lld", cli_num(r, "count"));
    printf("\n");
}

static void print_people(const char *title, const cJSON *missing, const char *key)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(missing, key);
    if (!list)
        return;
    char more_key[48];
    snprintf(more_key, sizeof more_key, "%s_more", key);
    long long more = cli_num(missing, more_key);
    printf("\n%s (%lld):\n", title, (long long)cJSON_GetArraySize(list) + more);
    const cJSON *p;
    cJSON_ArrayForEach(p, list)
    {
        printf("  ");
        cli_print_padded(cli_str(p, "department", NULL), 16);
        printf(" %-20s %s\n", cli_str(p, "login", NULL), cli_str(p, "name", NULL));
    }
    if (more)
        printf("  ... and %lld more (kizuna notice report ID --all, or --csv)\n", more);
}

/* "HH:MM" of a time in ms (local), or "-" for none. */
static const char *hhmm_of(const cJSON *o, const char *key, char *buf, size_t n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v))
        return "-";
    time_t t = (time_t)(v->valuedouble / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, n, "%H:%M", &tm);
    return buf;
}

/* Each recipient and the way they were reached, and answered (notice report ID --reach). */
static void print_reach(const cJSON *people)
{
    printf("\nhow each was reached (first push, first e-mail, read in the app; answered by):\n");
    const cJSON *p;
    cJSON_ArrayForEach(p, people)
    {
        char a[8], b[8], c[8];
        const char *by = cli_str(p, "answered_by", NULL);
        printf("  ");
        cli_print_padded(cli_str(p, "department", NULL), 16);
        printf(" %-20s push %-5s e-mail %-5s read %-5s answered %s\n", cli_str(p, "login", NULL),
               hhmm_of(p, "push_at", a, sizeof a), hhmm_of(p, "email_at", b, sizeof b),
               hhmm_of(p, "read_at", c, sizeof c),
               !*by                       ? "-"
               : strcmp(by, "push") == 0  ? "by the push's button"
               : strcmp(by, "email") == 0 ? "by the e-mail's link"
                                          : "in the app");
    }
}

int cmd_notice_report(int argc, char **argv)
{
    long long id;
    bool csv = argc == 3 && strcmp(argv[2], "--csv") == 0;
    bool all = argc == 3 && strcmp(argv[2], "--all") == 0;
    bool reach_each = argc == 3 && strcmp(argv[2], "--reach") == 0;
    if (argc == 3 && !csv && !all && !reach_each)
        return cli_usage_error(NULL);
    if (!parse_id(argv[1], &id))
        return cli_usage_error(ID_ERROR);
    cJSON *args = id_args(id);
    if (csv)
        cJSON_AddStringToObject(args, "format", "csv");
    if (all || reach_each)
        cJSON_AddNumberToObject(args, "limit", 10000);
    bool was_json = json_out;
    if (csv)
        json_out = false; /* the CSV itself is the output */
    cJSON *reply = NULL;
    int rc = cli_call_once("notice.report", args, &reply);
    json_out = was_json;
    if (rc != EXIT_OK)
        return rc;
    if (csv) {
        fputs(cli_str(reply, "csv", NULL), stdout);
    } else if (!json_out) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(reply, "notice");
        printf("#%lld %s\n\n", cli_num(n, "id"), cli_str(n, "title", NULL));
        printf("%-16s %6s %6s %6s %6s", "department", "total", "read", "ack", "resp");
        int i = 1;
        const cJSON *ch;
        cJSON_ArrayForEach(ch, cJSON_GetObjectItemCaseSensitive(n, "choices")) printf(" %5d.", i++);
        printf("\n");
        const cJSON *d;
        cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(reply, "by_department"))
            print_counts(
                *cli_str(d, "department", NULL) ? cli_str(d, "department", NULL) : "(none)", d);
        print_counts("TOTAL", cJSON_GetObjectItemCaseSensitive(reply, "totals"));
        i = 1;
        cJSON_ArrayForEach(ch, cJSON_GetObjectItemCaseSensitive(n, "choices"))
            printf("  %d. %s\n", i++, ch->valuestring);
        const cJSON *reach = cJSON_GetObjectItemCaseSensitive(reply, "reach");
        if (reach)
            printf("\nreached: push %lld, e-mail %lld, read %lld; by nothing yet %lld\n",
                   cli_num(reach, "push"), cli_num(reach, "email"), cli_num(reach, "app"),
                   cli_num(reach, "none"));
        const cJSON *missing = cJSON_GetObjectItemCaseSensitive(reply, "missing");
        print_people("not reached (no push or e-mail accepted, not read)", missing, "unreached");
        print_people("not read", missing, "not_read");
        print_people("not acknowledged", missing, "not_acked");
        print_people("no response", missing, "not_responded");
        if (reach_each)
            print_reach(cJSON_GetObjectItemCaseSensitive(reach, "people"));
    }
    cJSON_Delete(reply);
    return EXIT_OK;
}
