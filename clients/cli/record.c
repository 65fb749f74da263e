/* record.c - `kizuna record ...`: a room's record (docs/records.md). `record export` pages
 * through record.export into one file; the server writes every byte of it, so the file is what
 * any member gets from any server holding the same events, except for encrypted photos: the
 * server cannot open them, so this device fills in the caption and thumbnail of each photo it
 * decrypts (JSON Lines and HTML). */
#include "e2ee.h"

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
    bool received, no_photos;
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
        else if (!publish && strcmp(argv[i], "--no-photos") == 0)
            a->no_photos = true;
        else if (!a->room) /* not by its first character: a room id may begin with '-' */
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

/* ---- photos this device opens ---- */

/* event id -> {"caption", "thumb"} (base64url JPEG) for each photo of the room this device
 * decrypts (the caller deletes it); NULL if the device or the room cannot be read, which
 * leaves the record as the server wrote it. Reading asks for missing keys, as photo list
 * does. */
static cJSON *record_photos(const char *room_id)
{
    struct kzc *c;
    struct session s;
    struct ks_device me;
    struct room_view rv;
    if (connect_device(&c, &s, &me) != EXIT_OK)
        return NULL;
    cJSON *out = NULL;
    if (rv_load(c, &me, room_id, &rv) == EXIT_OK) {
        out = cJSON_CreateObject();
        const cJSON *ev;
        cJSON_ArrayForEach(ev, rv.events)
        {
            if (strcmp(cli_str(ev, "event", NULL), "e2ee.photo") != 0)
                continue;
            struct photo_view pv = {0};
            if (rv_photo(&rv, ev, &pv) == EXIT_OK && pv.state == PHOTO_READY) {
                cJSON *p = cJSON_CreateObject();
                cJSON_AddStringToObject(p, "caption", cli_str(pv.msg, "caption", NULL));
                cJSON_AddStringToObject(p, "thumb", cli_str(pv.msg, "thumb", "jpeg"));
                cJSON_AddItemToObject(out, cli_str(ev, "event_id", NULL), p);
            }
            cJSON_Delete(pv.msg);
        }
        rv_free(&rv);
    }
    ks_device_wipe(&me);
    kzc_close(c);
    return out;
}

/* Appends s (n bytes) to the growing text *out. false if out of memory. */
static bool put_n(char **out, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t nc = (*cap ? *cap : 4096) * 2 + n;
        char *p = realloc(*out, nc);
        if (!p)
            return false;
        *out = p;
        *cap = nc;
    }
    memcpy(*out + *len, s, n);
    *len += n;
    (*out)[*len] = '\0';
    return true;
}

static bool put_html(char **out, size_t *len, size_t *cap, const char *s)
{
    bool ok = true;
    for (; *s && ok; s++) {
        const char *e = *s == '&'    ? "&amp;"
                        : *s == '<'  ? "&lt;"
                        : *s == '>'  ? "&gt;"
                        : *s == '"'  ? "&quot;"
                        : *s == '\'' ? "&#39;"
                                     : NULL;
        ok = e ? put_n(out, len, cap, e, strlen(e)) : put_n(out, len, cap, s, 1);
    }
    return ok;
}

/* A data: URI of a base64url JPEG (standard base64 with padding), for an <img> of one file. */
static bool put_data_uri(char **out, size_t *len, size_t *cap, const char *b64url)
{
    bool ok = put_n(out, len, cap, "data:image/jpeg;base64,", 23);
    size_t n = 0;
    for (const char *p = b64url; *p && ok; p++, n++) {
        char ch = *p == '-' ? '+' : *p == '_' ? '/' : *p;
        ok = (ch == '+' || ch == '/' || (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= 'a' && ch <= 'z')) &&
             put_n(out, len, cap, &ch, 1);
    }
    while (ok && n++ % 4)
        ok = put_n(out, len, cap, "=", 1);
    return ok;
}

#define THUMB_TAG "<br><img class=\"thumb\" alt=\"\" src=\""

/* The record text with each photo's row filled in from photos: in JSON Lines the row gains
 * "caption" and "thumbnail" (base64url JPEG), outside what verify-record checks; in HTML its
 * cell shows the caption and the thumbnail. The caller frees the result; NULL if out of
 * memory. */
static char *record_fill_photos(const char *text, const char *format, const cJSON *photos)
{
    char *out = NULL;
    size_t len = 0, cap = 0;
    bool ok = put_n(&out, &len, &cap, "", 0);
    bool html = strcmp(format, "html") == 0;
    for (const char *line = text; *line && ok;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) + 1 : strlen(line);
        const cJSON *p = NULL;
        const char *id = strstr(line, html ? "id=\"e-" : "{\"event_id\":\"");
        if (id && id < line + n &&
            (html ? strstr(line, "<td class=\"text\">")
                  : strstr(line, "\"type\":\"e2ee.photo\""))) {
            const char *at = id + (html ? 6 : 13);
            size_t il = strcspn(at, "\"");
            char key[128];
            snprintf(key, sizeof key, "%.*s", (int)(il < 127 ? il : 127), at);
            p = cJSON_GetObjectItemCaseSensitive(photos, key);
        }
        if (p && !html) {
            cJSON *row = cJSON_ParseWithLength(line, n);
            char *printed = NULL;
            if (row) {
                cJSON_AddStringToObject(row, "caption", cli_str(p, "caption", NULL));
                cJSON_AddStringToObject(row, "thumbnail", cli_str(p, "thumb", NULL));
                printed = cJSON_PrintUnformatted(row);
            }
            ok = printed ? put_n(&out, &len, &cap, printed, strlen(printed)) &&
                               put_n(&out, &len, &cap, "\n", 1)
                         : put_n(&out, &len, &cap, line, n);
            cJSON_free(printed);
            cJSON_Delete(row);
        } else if (p) {
            const char *cell = strstr(line, "<td class=\"text\">") + 17;
            const char *end = strstr(cell, "</td>");
            ok = end && put_n(&out, &len, &cap, line, (size_t)(cell - line)) &&
                 put_html(&out, &len, &cap, "写真: ") &&
                 put_html(&out, &len, &cap, cli_str(p, "caption", NULL)) &&
                 put_n(&out, &len, &cap, THUMB_TAG, sizeof THUMB_TAG - 1) &&
                 put_data_uri(&out, &len, &cap, cli_str(p, "thumb", NULL)) &&
                 put_n(&out, &len, &cap, "\">", 2) &&
                 put_n(&out, &len, &cap, end, (size_t)(line + n - end));
        } else {
            ok = put_n(&out, &len, &cap, line, n);
        }
        line += n;
    }
    if (!ok) {
        free(out);
        return NULL;
    }
    return out;
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
    /* The pages into memory first: this device may fill in the photos. */
    char *text = NULL;
    size_t tlen = 0;
    FILE *mem = open_memstream(&text, &tlen);
    rc = mem ? record_pages(c, "record.export", args, mem, &rows) : EXIT_USAGE;
    if (mem)
        fclose(mem);
    cJSON_Delete(args);
    kzc_close(c);
    if (rc == EXIT_OK && text && strcmp(a.format, "csv") != 0 && !a.no_photos &&
        (strstr(text, "\"type\":\"e2ee.photo\"") || strstr(text, "写真 (暗号化"))) {
        cJSON *photos = record_photos(room_id);
        char *filled = photos ? record_fill_photos(text, a.format, photos) : NULL;
        if (filled) {
            free(text);
            text = filled;
            tlen = strlen(text);
        }
        cJSON_Delete(photos);
    }
    if (rc == EXIT_OK && text && fwrite(text, 1, tlen, f) != tlen) {
        fprintf(stderr, "kizuna: cannot write the record: %s\n", strerror(errno));
        rc = EXIT_USAGE;
    }
    free(text);
    return record_out_close(f, a.out, rc, "exported", rows);
}

/* `record publish REVIEW [--format jsonl|csv|html] [--out FILE]`: the published record of an
 * approved review. */
int cmd_record_publish(int argc, char **argv)
{
    struct record_args a;
    int rc = record_args_parse(argc, argv, &a, true);
    if (rc != EXIT_OK)
        return rc;
    char *end;
    long long review = strtoll(a.room, &end, 10);
    if (*end || review <= 0)
        return cli_usage_error("REVIEW is the review's number (record review create printed it)");
    struct kzc *c;
    struct session s;
    if ((rc = cli_connect_authed(&c, &s)) != EXIT_OK)
        return rc;
    FILE *f = record_out_open(a.out);
    if (!f) {
        kzc_close(c);
        return EXIT_USAGE;
    }
    cJSON *args = cJSON_CreateObject();
    cJSON_AddNumberToObject(args, "review", (double)review);
    cJSON_AddStringToObject(args, "format", a.format);
    long long rows = 0;
    rc = record_pages(c, "record.publish", args, f, &rows);
    cJSON_Delete(args);
    kzc_close(c);
    return record_out_close(f, a.out, rc, "published", rows);
}

/* A positive number argument, or 0 with a usage error printed. */
static long long record_number(const char *text, const char *what)
{
    char *end;
    long long n = text ? strtoll(text, &end, 10) : 0;
    if (!text || *end || n <= 0) {
        cli_usage_error(what);
        return 0;
    }
    return n;
}

/* `record reviewer ROOM USER [--revoke]` (admins; ROOM is the room's id: an admin names the
 * reviewers of rooms they are no member of) */
int cmd_record_reviewer(int argc, char **argv)
{
    bool revoke = argc == 4 && strcmp(argv[3], "--revoke") == 0;
    if (argc == 4 && !revoke)
        return cli_usage_error("unexpected argument");
    cJSON *args = cJSON_CreateObject(), *reply;
    cJSON_AddStringToObject(args, "room", argv[1]);
    cJSON_AddStringToObject(args, "user", argv[2]);
    cJSON_AddBoolToObject(args, "reviewer", !revoke);
    int rc = cli_call_once("record.reviewer", args, &reply);
    if (rc == EXIT_OK && !json_out)
        printf("%s %s a reviewer of the room's record\n", cli_str(reply, "user", NULL),
               revoke ? "is no longer" : "is now");
    cJSON_Delete(reply);
    return rc;
}

/* `record review create ROOM [--title T] [--from WHEN] [--to WHEN]` */
int cmd_record_review_create(int argc, char **argv)
{
    const char *room = NULL, *title = NULL;
    long long from = 0, to = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--title") == 0 && v)
            title = argv[++i];
        else if (strcmp(argv[i], "--from") == 0 && v) {
            if ((from = cli_parse_when(argv[++i])) < 0)
                return cli_usage_error("--from: a time such as 2026-11-30 or \"2026-11-30 09:00\"");
        } else if (strcmp(argv[i], "--to") == 0 && v) {
            if ((to = cli_parse_when(argv[++i])) < 0)
                return cli_usage_error("--to: a time such as 2026-12-01 or \"2026-11-30 18:00\"");
        } else if (!room) /* a room id may begin with '-' (base64url) */
            room = argv[i];
        else
            return cli_usage_error("unexpected argument");
    }
    if (!room)
        return cli_usage_error("which room?");
    struct kzc *c;
    char room_id[ROOM_ID_MAX];
    int rc = cli_room_connect(room, &c, room_id);
    if (rc != EXIT_OK)
        return rc;
    cJSON *args = cJSON_CreateObject(), *reply;
    cJSON_AddStringToObject(args, "room", room_id);
    if (title)
        cJSON_AddStringToObject(args, "title", title);
    if (from > 0)
        cJSON_AddNumberToObject(args, "from", (double)from);
    if (to > 0)
        cJSON_AddNumberToObject(args, "to", (double)to);
    rc = cli_call_and_close(c, "record.review.create", args, &reply);
    if (rc == EXIT_OK && !json_out)
        printf("review %lld: %lld proposed redaction(s) in %lld message(s) and edit(s)\n"
               "see them with: kizuna record review show %lld\n",
               cli_num(reply, "review"), cli_num(reply, "proposals"), cli_num(reply, "texts"),
               cli_num(reply, "review"));
    cJSON_Delete(reply);
    return rc;
}

/* `record review show REVIEW` */
int cmd_record_review_show(int argc, char **argv)
{
    (void)argc;
    long long review = record_number(argv[1], "REVIEW is the review's number");
    if (!review)
        return EXIT_USAGE;
    cJSON *args = cJSON_CreateObject(), *reply;
    cJSON_AddNumberToObject(args, "review", (double)review);
    int rc = cli_call_once("record.review.show", args, &reply);
    if (rc == EXIT_OK && !json_out) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(reply, "review");
        printf("review %lld of %s: %s (%s, by %s", review, cli_str(r, "room_name", NULL),
               cli_str(r, "title", NULL), cli_str(r, "state", NULL), cli_str(r, "reviewer", NULL));
        if (*cli_str(r, "approved_by", NULL))
            printf(", approved by %s", cli_str(r, "approved_by", NULL));
        printf(")\n%d event(s) marked for publication\n",
               cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(reply, "passages")));
        const cJSON *red;
        cJSON_ArrayForEach(red, cJSON_GetObjectItemCaseSensitive(reply, "redactions"))
        {
            printf("#%lld %-8s %-7s %.12s… [%lld,%lld) %s\n", cli_num(red, "id"),
                   cli_str(red, "state", NULL), cli_str(red, "kind", NULL),
                   cli_str(red, "event_id", NULL), cli_num(red, "start"), cli_num(red, "end"),
                   cli_str(red, "text", NULL));
        }
    }
    cJSON_Delete(reply);
    return rc;
}

/* The ids of the messages, edits, deletions and photos of a JSON Lines record. */
static void record_message_ids(const char *text, cJSON *out)
{
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        cJSON *o = cJSON_ParseWithLength(line, len);
        const char *type = cli_str(o, "type", NULL);
        if (strncmp(type, "msg", 3) == 0 || strcmp(type, "e2ee.photo") == 0)
            cJSON_AddItemToArray(out, cJSON_CreateString(cli_str(o, "event_id", NULL)));
        cJSON_Delete(o);
        line = nl ? nl + 1 : NULL;
    }
}

#define MARK_BATCH 1000 /* record.review.mark's most events per call */

/* `record review mark REVIEW (EVENT... | --all) [--unmark]`: --all marks every message, edit,
 * deletion and photo of the review's range. */
int cmd_record_review_mark(int argc, char **argv)
{
    long long review = record_number(argv[1], "REVIEW is the review's number");
    if (!review)
        return EXIT_USAGE;
    bool all = false, unmark = false;
    cJSON *events = cJSON_CreateArray();
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--all") == 0)
            all = true;
        else if (strcmp(argv[i], "--unmark") == 0)
            unmark = true;
        else /* event ids are base64url: one may begin with '-' */
            cJSON_AddItemToArray(events, cJSON_CreateString(argv[i]));
    }
    struct kzc *c;
    struct session s;
    int rc = cli_connect_authed(&c, &s);
    if (rc != EXIT_OK) {
        cJSON_Delete(events);
        return rc;
    }
    cJSON *reply = NULL;
    if (all) {
        cJSON *args = cJSON_CreateObject();
        cJSON_AddNumberToObject(args, "review", (double)review);
        if ((rc = cli_call(c, "record.review.show", args, &reply)) == EXIT_OK) {
            const cJSON *r = cJSON_GetObjectItemCaseSensitive(reply, "review");
            cJSON *ex = cJSON_CreateObject();
            cJSON_AddStringToObject(ex, "room", cli_str(r, "room", NULL));
            cJSON_AddStringToObject(ex, "format", "jsonl");
            cJSON_AddNumberToObject(ex, "from", (double)cli_num(r, "from"));
            cJSON_AddNumberToObject(ex, "to", (double)cli_num(r, "to"));
            char *path = NULL;
            size_t len = 0;
            FILE *mem = open_memstream(&path, &len);
            long long rows;
            rc = mem ? record_pages(c, "record.export", ex, mem, &rows) : EXIT_USAGE;
            if (mem)
                fclose(mem);
            cJSON_Delete(ex);
            if (rc == EXIT_OK && path)
                record_message_ids(path, events);
            free(path);
        }
        cJSON_Delete(reply);
    }
    long long marked = 0;
    int n = cJSON_GetArraySize(events);
    for (int at = 0; rc == EXIT_OK && at < n; at += MARK_BATCH) {
        cJSON *batch = cJSON_CreateArray();
        for (int k = at; k < n && k < at + MARK_BATCH; k++)
            cJSON_AddItemToArray(batch, cJSON_Duplicate(cJSON_GetArrayItem(events, k), true));
        cJSON *args = cJSON_CreateObject();
        cJSON_AddNumberToObject(args, "review", (double)review);
        cJSON_AddItemToObject(args, "events", batch);
        cJSON_AddBoolToObject(args, "publish", !unmark);
        if ((rc = cli_call(c, "record.review.mark", args, &reply)) == EXIT_OK) {
            marked += cli_num(reply, "marked");
            cJSON_Delete(reply);
        }
    }
    cJSON_Delete(events);
    kzc_close(c);
    if (rc != EXIT_OK)
        return rc;
    if (json_out) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddTrueToObject(o, "ok");
        cJSON_AddNumberToObject(o, "marked", (double)marked);
        cli_print_json(o);
        cJSON_Delete(o);
    } else {
        printf("%lld event(s) %s\n", marked, unmark ? "unmarked" : "marked for publication");
    }
    return EXIT_OK;
}

/* `record review redact REVIEW EVENT START END` (bytes of the text, as record review show
 * gives them) */
int cmd_record_review_redact(int argc, char **argv)
{
    (void)argc;
    long long review = record_number(argv[1], "REVIEW is the review's number");
    char *end;
    long long a = strtoll(argv[3], &end, 10), b = *end ? -1 : strtoll(argv[4], &end, 10);
    if (!review || *end || a < 0 || b <= a)
        return review ? cli_usage_error("START and END are byte offsets, END after START")
                      : EXIT_USAGE;
    cJSON *args = cJSON_CreateObject(), *reply;
    cJSON_AddNumberToObject(args, "review", (double)review);
    cJSON_AddStringToObject(args, "event", argv[2]);
    cJSON_AddNumberToObject(args, "start", (double)a);
    cJSON_AddNumberToObject(args, "end", (double)b);
    int rc = cli_call_once("record.review.redact", args, &reply);
    if (rc == EXIT_OK && !json_out)
        printf("redaction #%lld accepted\n", cli_num(reply, "redaction"));
    cJSON_Delete(reply);
    return rc;
}

/* `record review accept|reject REVIEW (REDACTION... | --all)`: --all decides every proposal
 * still waiting. */
static int review_decide(int argc, char **argv, bool accept)
{
    long long review = record_number(argv[1], "REVIEW is the review's number");
    if (!review)
        return EXIT_USAGE;
    struct kzc *c;
    struct session s;
    int rc = cli_connect_authed(&c, &s);
    if (rc != EXIT_OK)
        return rc;
    cJSON *ids = cJSON_CreateArray(), *reply;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--all") == 0) {
            cJSON *args = cJSON_CreateObject();
            cJSON_AddNumberToObject(args, "review", (double)review);
            if ((rc = cli_call(c, "record.review.show", args, &reply)) != EXIT_OK)
                break;
            const cJSON *red;
            cJSON_ArrayForEach(red, cJSON_GetObjectItemCaseSensitive(reply, "redactions"))
            {
                if (strcmp(cli_str(red, "state", NULL), "proposed") == 0)
                    cJSON_AddItemToArray(ids, cJSON_CreateNumber((double)cli_num(red, "id")));
            }
            cJSON_Delete(reply);
        } else {
            long long id = record_number(argv[i], "REDACTION is a number (record review show)");
            if (!id) {
                rc = EXIT_USAGE;
                break;
            }
            cJSON_AddItemToArray(ids, cJSON_CreateNumber((double)id));
        }
    }
    long long done = 0;
    const cJSON *id;
    cJSON_ArrayForEach(id, ids)
    {
        if (rc != EXIT_OK)
            break;
        cJSON *args = cJSON_CreateObject();
        cJSON_AddNumberToObject(args, "review", (double)review);
        cJSON_AddNumberToObject(args, "redaction", id->valuedouble);
        cJSON_AddBoolToObject(args, "accept", accept);
        if ((rc = cli_call(c, "record.review.decide", args, &reply)) == EXIT_OK) {
            done++;
            cJSON_Delete(reply);
        }
    }
    cJSON_Delete(ids);
    kzc_close(c);
    if (rc != EXIT_OK)
        return rc;
    if (json_out) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddTrueToObject(o, "ok");
        cJSON_AddNumberToObject(o, accept ? "accepted" : "rejected", (double)done);
        cli_print_json(o);
        cJSON_Delete(o);
    } else {
        printf("%lld redaction(s) %s\n", done, accept ? "accepted" : "rejected");
    }
    return EXIT_OK;
}

int cmd_record_review_accept(int argc, char **argv)
{
    return review_decide(argc, argv, true);
}

int cmd_record_review_reject(int argc, char **argv)
{
    return review_decide(argc, argv, false);
}

/* `record review approve REVIEW` (someone other than its reviewer) */
int cmd_record_review_approve(int argc, char **argv)
{
    (void)argc;
    long long review = record_number(argv[1], "REVIEW is the review's number");
    if (!review)
        return EXIT_USAGE;
    cJSON *args = cJSON_CreateObject(), *reply;
    cJSON_AddNumberToObject(args, "review", (double)review);
    int rc = cli_call_once("record.review.approve", args, &reply);
    if (rc == EXIT_OK && !json_out)
        printf("review %lld approved: publish it with kizuna record publish %lld --format html "
               "--out FILE.html\n",
               review, review);
    cJSON_Delete(reply);
    return rc;
}

/* `room hold ROOM [--release]` (admins; ROOM is the room's id) */
int cmd_room_hold(int argc, char **argv)
{
    bool release = argc == 3 && strcmp(argv[2], "--release") == 0;
    if (argc == 3 && !release)
        return cli_usage_error("unexpected argument");
    /* An admin holds rooms they are no member of: ROOM is the room's id, as the audit log and
     * a member's `rooms` show it. */
    cJSON *args = cJSON_CreateObject(), *reply;
    cJSON_AddStringToObject(args, "room", argv[1]);
    cJSON_AddBoolToObject(args, "hold", !release);
    int rc = cli_call_once("room.hold", args, &reply);
    if (rc == EXIT_OK && !json_out)
        printf("%s\n", release ? "the room's record is released from its hold"
                               : "the room's record is on hold: nothing of it is removed");
    cJSON_Delete(reply);
    return rc;
}
