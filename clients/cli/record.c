/* record.c - `kizuna record ...`: a room's record (docs/records.md). `record export` pages
 * through record.export into one file; the server writes every byte of it, so the file is what
 * any member gets from any server holding the same events. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Opens path for writing (mode 0600: a record holds what people reported), or standard output
 * for NULL; NULL with a message if it cannot. */
static FILE *record_out_open(const char *path)
{
    if (!path)
        return stdout;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        fprintf(stderr, "kizuna: cannot write %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    return f;
}

/* Every page of op (record.export or record.publish) with args into f; the rows in *rows. */
static int record_pages(struct kzc *c, const char *op, const cJSON *args, FILE *f, long long *rows)
{
    long long after = 0;
    int rc = EXIT_OK;
    *rows = 0;
    for (bool more = true; more && rc == EXIT_OK;) {
        cJSON *page = cJSON_Duplicate(args, true), *reply;
        if (after)
            cJSON_AddNumberToObject(page, "after", (double)after);
        if ((rc = cli_call(c, op, page, &reply)) != EXIT_OK)
            break;
        const char *text = cli_str(reply, "text", NULL);
        if (fwrite(text, 1, strlen(text), f) != strlen(text)) {
            fprintf(stderr, "kizuna: cannot write the record: %s\n", strerror(errno));
            rc = EXIT_USAGE;
        }
        *rows += cli_num(reply, "rows");
        more = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "more"));
        after = cli_num(reply, "next_after");
        cJSON_Delete(reply);
    }
    return rc;
}

/* Finishes a record written to path (NULL: standard output): closes it and says what was
 * written, as a line or (--json) as JSON. */
static int record_out_close(FILE *f, const char *path, int rc, const char *what, long long rows)
{
    if (path && fclose(f) != 0 && rc == EXIT_OK) {
        fprintf(stderr, "kizuna: cannot write %s: %s\n", path, strerror(errno));
        rc = EXIT_USAGE;
    }
    if (rc != EXIT_OK || !path)
        return rc;
    if (json_out) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddTrueToObject(o, "ok");
        cJSON_AddStringToObject(o, "file", path);
        cJSON_AddNumberToObject(o, "rows", (double)rows);
        cli_print_json(o);
        cJSON_Delete(o);
    } else {
        fprintf(stderr, "%s: %lld rows to %s\n", what, rows, path);
    }
    return rc;
}

/* The arguments record export and record publish share: --format, --from, --to, --out. */
struct record_args {
    const char *room, *format, *out;
    long long from, to;
    bool received;
};

static int record_args_parse(int argc, char **argv, struct record_args *a, bool publish)
{
    *a = (struct record_args){.format = "html"};
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--format") == 0 && v)
            a->format = argv[++i];
        else if ((strcmp(argv[i], "--out") == 0 || strcmp(argv[i], "-o") == 0) && v)
            a->out = argv[++i];
        else if (!publish && strcmp(argv[i], "--from") == 0 && v) {
            if ((a->from = cli_parse_when(argv[++i])) < 0)
                return cli_usage_error("--from: a time such as 2026-11-30 or \"2026-11-30 09:00\"");
        } else if (!publish && strcmp(argv[i], "--to") == 0 && v) {
            if ((a->to = cli_parse_when(argv[++i])) < 0)
                return cli_usage_error("--to: a time such as 2026-12-01 or \"2026-11-30 18:00\"");
        } else if (!publish && strcmp(argv[i], "--received") == 0)
            a->received = true;
        else if (argv[i][0] != '-' && !a->room)
            a->room = argv[i];
        else
            return cli_usage_error("unexpected argument");
    }
    if (!a->room)
        return cli_usage_error(publish ? "which review? (its id)" : "which room?");
    if (strcmp(a->format, "jsonl") != 0 && strcmp(a->format, "csv") != 0 &&
        strcmp(a->format, "html") != 0)
        return cli_usage_error("--format: jsonl, csv or html");
    return EXIT_OK;
}

/* `record export ROOM [--from WHEN] [--to WHEN] [--format jsonl|csv|html] [--received]
 * [--out FILE]` */
int cmd_record_export(int argc, char **argv)
{
    struct record_args a;
    int rc = record_args_parse(argc, argv, &a, false);
    if (rc != EXIT_OK)
        return rc;
    struct kzc *c;
    char room_id[ROOM_ID_MAX];
    if ((rc = cli_room_connect(a.room, &c, room_id)) != EXIT_OK)
        return rc;
    FILE *f = record_out_open(a.out);
    if (!f) {
        kzc_close(c);
        return EXIT_USAGE;
    }
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "room", room_id);
    cJSON_AddStringToObject(args, "format", a.format);
    if (a.from > 0)
        cJSON_AddNumberToObject(args, "from", (double)a.from);
    if (a.to > 0)
        cJSON_AddNumberToObject(args, "to", (double)a.to);
    if (a.received)
        cJSON_AddTrueToObject(args, "received");
    long long rows = 0;
    rc = record_pages(c, "record.export", args, f, &rows);
    cJSON_Delete(args);
    kzc_close(c);
    return record_out_close(f, a.out, rc, "exported", rows);
}
