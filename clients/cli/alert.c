/* alert.c - the kizuna alert commands: list, show, send-now, cancel (the roll-calls JMA's
 * telegrams start, docs/alerts.md); each an entry of the command table in main.c. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An alert's number from the command line, or 0 after printing the usage. */
static long long alert_id(const char *s)
{
    char *end;
    errno = 0;
    long long id = strtoll(s, &end, 10);
    if (errno || *end || id < 1) {
        cli_usage_error("ID: an alert's number (kizuna alert list)");
        return 0;
    }
    return id;
}

/* "pending: sends in 2m40s" or the state with when it was decided and by whom. */
static void print_state(const cJSON *a, double now)
{
    const char *state = cli_str(a, "state", NULL);
    if (strcmp(state, "pending") == 0) {
        long long left = (long long)((cli_num(a, "due_at") - now) / 1000);
        if (left < 0)
            left = 0;
        printf("pending: the roll-call goes out in %lldm%02llds", left / 60, left % 60);
    } else {
        char when[40];
        cli_format_time((double)cli_num(a, "decided_at"), when, sizeof when);
        printf("%s %s by %s", state, when, cli_str(a, "decided_by", NULL));
        if (cli_num(a, "notice"))
            printf(" (notice #%lld)", cli_num(a, "notice"));
    }
}

int cmd_alert_list(int argc, char **argv)
{
    (void)argv;
    if (argc != 1)
        return cli_usage_error(NULL);
    cJSON *reply = NULL;
    int rc = cli_call_once("alert.list", cJSON_CreateObject(), &reply);
    if (rc == EXIT_OK && !json_out) {
        double now = (double)cli_num(reply, "now");
        const cJSON *a;
        cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(reply, "alerts"))
        {
            printf("#%lld %s%s  ", cli_num(a, "id"),
                   cJSON_IsTrue(cJSON_GetObjectItem(a, "drill")) ? "[訓練] " : "",
                   cli_str(a, "summary", NULL));
            print_state(a, now);
            printf("\n");
        }
        const cJSON *f;
        cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(reply, "feeds"))
        {
            const char *err = cli_str(f, "error", NULL);
            printf("feed %s: %s", cli_str(f, "url", NULL),
                   !cJSON_IsTrue(cJSON_GetObjectItem(f, "watched")) ? "not watched (no rules)"
                   : err[0]                                         ? "failing"
                                                                    : "ok");
            if (err[0])
                printf(" (%lld failures: %s)", cli_num(f, "failures"), err);
            printf("\n");
        }
    }
    cJSON_Delete(reply);
    return rc;
}

static cJSON *id_args(long long id)
{
    cJSON *args = cJSON_CreateObject();
    cJSON_AddNumberToObject(args, "alert", (double)id);
    return args;
}

int cmd_alert_show(int argc, char **argv)
{
    (void)argc;
    long long id = alert_id(argv[1]);
    if (!id)
        return EXIT_USAGE;
    cJSON *reply = NULL;
    int rc = cli_call_once("alert.show", id_args(id), &reply);
    if (rc == EXIT_OK && !json_out) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(reply, "alert");
        printf("alert #%lld (%s, event %s)%s\n%s\n", cli_num(a, "id"), cli_str(a, "kind", NULL),
               cli_str(a, "event_id", NULL),
               cJSON_IsTrue(cJSON_GetObjectItem(a, "drill")) ? " 訓練" : "",
               cli_str(a, "summary", NULL));
        print_state(a, (double)cli_num(reply, "now"));
        printf("\ntelegrams:\n");
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(
                                  cJSON_GetObjectItemCaseSensitive(a, "details"), "telegrams"))
            printf("  %s %s serial %s %s %s (%s)\n", cli_str(t, "report_time", NULL),
                   cli_str(t, "title", NULL), cli_str(t, "serial", NULL), cli_str(t, "info", NULL),
                   cli_str(t, "status", NULL), cli_str(t, "entry", NULL));
    }
    cJSON_Delete(reply);
    return rc;
}

static int alert_act(char **argv, const char *op, const char *done)
{
    long long id = alert_id(argv[1]);
    if (!id)
        return EXIT_USAGE;
    cJSON *reply = NULL;
    int rc = cli_call_once(op, id_args(id), &reply);
    if (rc == EXIT_OK && !json_out) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(reply, "alert");
        printf("alert #%lld %s", id, done);
        if (cli_num(a, "notice"))
            printf(": notice #%lld (kizuna notice report %lld)", cli_num(a, "notice"),
                   cli_num(a, "notice"));
        printf("\n");
    }
    cJSON_Delete(reply);
    return rc;
}

int cmd_alert_send_now(int argc, char **argv)
{
    (void)argc;
    return alert_act(argv, "alert.send_now", "sent");
}

int cmd_alert_cancel(int argc, char **argv)
{
    (void)argc;
    return alert_act(argv, "alert.cancel", "cancelled: no roll-call goes out");
}
