/* status.c - the server's state for its administrator: `kizuna admin status` on one screen
 * (admin.status): version and uptime, connections, messages today, storage and free disk, the
 * last backup and its verification, peer servers and their lag, alarms and the latest errors;
 * `kizuna admin webhook`, the outgoing webhook's outbox (webhook.status); and `kizuna admin
 * mail`, the e-mail outbox (mail.status): waiting, failed, and who each failure was for, and
 * why. --json prints the op's reply as it is, for scripts and monitors. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes as people read them: 980 B, 12.3 KB, 45.6 MB, 7.8 GB (powers of 1000). */
static void human_bytes(double b, char *out, size_t n)
{
    static const char *const units[] = {"B", "KB", "MB", "GB", "TB"};
    int u = 0;
    while (b >= 1000 && u < 4) {
        b /= 1000;
        u++;
    }
    snprintf(out, n, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

static void human_age(long long ms, char *out, size_t n)
{
    long long s = ms / 1000;
    if (s < 120)
        snprintf(out, n, "%lld s", s);
    else if (s < 7200)
        snprintf(out, n, "%lld min", s / 60);
    else if (s < 172800)
        snprintf(out, n, "%lld h %lld min", s / 3600, s % 3600 / 60);
    else
        snprintf(out, n, "%lld d %lld h", s / 86400, s % 86400 / 3600);
}

static void print_backup(const cJSON *b)
{
    const cJSON *last = cJSON_GetObjectItem(b, "last"), *ver = cJSON_GetObjectItem(b, "verified");
    char when[32], size[32];
    if (!cJSON_IsObject(last)) {
        printf("backup        none recorded\n");
        return;
    }
    cli_format_time((double)cli_num(last, "at"), when, sizeof when);
    human_bytes((double)cli_num(last, "bytes"), size, sizeof size);
    if (cJSON_IsTrue(cJSON_GetObjectItem(last, "ok")))
        printf("backup        %s  %s (%lld photos, %s)\n", when, cli_str(last, "dir", NULL),
               cli_num(last, "blobs"), size);
    else
        printf("backup        %s  FAILED: %s\n", when, cli_str(last, "error", NULL));
    if (cJSON_IsObject(ver)) {
        cli_format_time((double)cli_num(ver, "at"), when, sizeof when);
        printf("              verified %s: %s (%s)\n", when,
               cJSON_IsTrue(cJSON_GetObjectItem(ver, "ok")) ? "whole" : "NOT WHOLE",
               cli_str(ver, "dir", NULL));
    } else {
        printf("              not verified\n");
    }
}

static void print_peers(const cJSON *peers)
{
    const cJSON *p;
    bool first = true;
    if (cJSON_GetArraySize(peers) == 0)
        printf("peers         none\n");
    cJSON_ArrayForEach(p, peers)
    {
        char lag[96] = "up to date", bytes[32], age[32];
        if (cli_num(p, "events_behind") > 0) {
            human_bytes((double)cli_num(p, "bytes_behind"), bytes, sizeof bytes);
            human_age(cli_num(p, "oldest_undelivered_age_ms"), age, sizeof age);
            snprintf(lag, sizeof lag, "%lld events (%s) behind, oldest %s",
                     cli_num(p, "events_behind"), bytes, age);
        }
        printf("%-14s%-24s %-13s %s%s\n", first ? "peers" : "", cli_str(p, "server", NULL),
               cli_str(p, "state", NULL), lag,
               cJSON_IsTrue(cJSON_GetObjectItem(p, "quarantined")) ? "  QUARANTINED" : "");
        first = false;
    }
}

/* `admin status` */
int cmd_admin_status(int argc, char **argv)
{
    (void)argc, (void)argv;
    cJSON *r = NULL;
    int rc = cli_call_once("admin.status", NULL, &r);
    if (rc != EXIT_OK || json_out) {
        cJSON_Delete(r);
        return rc;
    }
    char up[32], a[32], b[32], c[32], started[32];
    human_age(cli_num(r, "uptime_s") * 1000, up, sizeof up);
    cli_format_time((double)cli_num(r, "started_at"), started, sizeof started);
    printf("server        %s  kizunad %s, up %s (since %s)\n", cli_str(r, "server_id", NULL),
           cli_str(r, "version", NULL), up, started);
    printf("ready         %s\n", cJSON_IsTrue(cJSON_GetObjectItem(r, "ready")) ? "yes" : "NO");
    const cJSON *conn = cJSON_GetObjectItem(r, "connections"),
                *ses = cJSON_GetObjectItem(r, "sessions");
    printf("connections   %lld WebSocket (%lld users), %lld HTTP; %lld sessions open\n",
           cli_num(conn, "websocket"), cli_num(conn, "users"), cli_num(conn, "http"),
           cli_num(ses, "open"));
    const cJSON *msgs = cJSON_GetObjectItem(r, "messages");
    printf("messages      %lld today (%s)\n", cli_num(msgs, "today"),
           cli_str(r, "time_zone", NULL));
    const cJSON *st = cJSON_GetObjectItem(r, "storage");
    human_bytes((double)cli_num(st, "database_bytes"), a, sizeof a);
    human_bytes((double)cli_num(st, "blob_bytes"), b, sizeof b);
    human_bytes((double)cli_num(st, "disk_free_bytes"), c, sizeof c);
    printf("storage       database %s, %lld photos (%s); disk free %s", a, cli_num(st, "blobs"), b,
           c);
    human_bytes((double)cli_num(st, "ready_min_free_bytes"), a, sizeof a);
    printf(" (alarm below %s)\n", a);
    print_backup(cJSON_GetObjectItem(r, "backup"));
    print_peers(cJSON_GetObjectItem(r, "peers"));
    const cJSON *al, *alarms = cJSON_GetObjectItem(r, "alarms");
    if (cJSON_GetArraySize(alarms) == 0)
        printf("alarms        none\n");
    bool first = true;
    cJSON_ArrayForEach(al, alarms)
    {
        printf("%-14s%s: %s\n", first ? "ALARMS" : "", cli_str(al, "kind", NULL),
               cli_str(al, "message", NULL));
        first = false;
    }
    const cJSON *e, *errs = cJSON_GetObjectItem(r, "recent_errors");
    first = true;
    cJSON_ArrayForEach(e, errs)
    {
        printf("%-14s%.200s\n", first ? "recent errors" : "", cli_str(e, "line", NULL));
        first = false;
    }
    cJSON_Delete(r);
    return rc;
}

/* `kizuna admin webhook`: the outgoing webhook's state (webhook.status): where it posts (the
 * URL's origin only), which kinds, what waits, and the deliveries the receiver refused. */
int cmd_admin_webhook(int argc, char **argv)
{
    (void)argc, (void)argv;
    cJSON *r = NULL;
    int rc = cli_call_once("webhook.status", NULL, &r);
    if (rc != EXIT_OK || json_out) {
        cJSON_Delete(r);
        return rc;
    }
    if (!cJSON_IsTrue(cJSON_GetObjectItem(r, "enabled")))
        printf("webhook       off (webhook_url is not set)\n");
    else
        printf("webhook       %s  kinds: %s; recipients %s, text %s\n", cli_str(r, "origin", NULL),
               cli_str(r, "kinds", NULL),
               cJSON_IsTrue(cJSON_GetObjectItem(r, "recipients")) ? "listed" : "counted only",
               cJSON_IsTrue(cJSON_GetObjectItem(r, "text")) ? "sent" : "withheld");
    printf("deliveries    %lld waiting, %lld failed\n", cli_num(r, "pending"),
           cli_num(r, "failed_total"));
    const cJSON *f;
    cJSON_ArrayForEach(f, cJSON_GetObjectItem(r, "failed"))
    {
        char when[40];
        cli_format_time((double)cli_num(f, "created_at"), when, sizeof when);
        printf("  FAILED %s %s", when, cli_str(f, "kind", NULL));
        if (cli_num(f, "notice"))
            printf(" (notice #%lld)", cli_num(f, "notice"));
        printf(" after %lld tries: %s  [%s]\n", cli_num(f, "tries"), cli_str(f, "error", NULL),
               cli_str(f, "delivery", NULL));
    }
    cJSON_Delete(r);
    return rc;
}

/* `admin mail [--limit N]` */
int cmd_admin_mail(int argc, char **argv)
{
    cJSON *args = cJSON_CreateObject();
    if (argc > 1) { /* argv[0] is the command's last word */
        char *end = NULL;
        long long n = argc == 3 && strcmp(argv[1], "--limit") == 0 ? strtoll(argv[2], &end, 10) : 0;
        if (!end || *end || end == argv[2]) {
            cJSON_Delete(args);
            return cli_usage_error(end ? "--limit takes a number" : NULL);
        }
        cJSON_AddNumberToObject(args, "limit", (double)n); /* the server checks its range */
    }
    cJSON *r = NULL;
    int rc = cli_call_once("mail.status", args, &r);
    if (rc != EXIT_OK || json_out) {
        cJSON_Delete(r);
        return rc;
    }
    printf("e-mail        %s\n", cJSON_IsTrue(cJSON_GetObjectItem(r, "enabled"))
                                     ? "on (smtp_host set)"
                                     : "OFF: smtp_host is not set, nothing is sent");
    printf("waiting       %lld\n", cli_num(r, "pending"));
    printf("failed        %lld\n", cli_num(r, "failed_total"));
    const cJSON *f, *list = cJSON_GetObjectItem(r, "failed");
    if (cJSON_GetArraySize(list) > 0)
        printf("\n%-16s  %-12s  %-28s  %-5s  %s\n", "queued", "login", "address", "tries",
               "subject / error");
    cJSON_ArrayForEach(f, list)
    {
        char when[32];
        cli_format_time((double)cli_num(f, "created_at"), when, sizeof when);
        printf("%-16s  %-12s  %-28s  %-5lld  %.120s\n", when, cli_str(f, "login", NULL),
               cli_str(f, "to", NULL), cli_num(f, "tries"), cli_str(f, "subject", NULL));
        printf("%-16s  %-12s  %-28s  %-5s  %.200s\n", "", "", "", "", cli_str(f, "error", NULL));
    }
    if (cli_num(r, "failed_total") > cJSON_GetArraySize(list))
        printf("(%lld older failures not shown: --limit N)\n",
               cli_num(r, "failed_total") - cJSON_GetArraySize(list));
    cJSON_Delete(r);
    return rc;
}
