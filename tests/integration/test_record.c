/* test_record.c - the record of a room (issue 22, docs/records.md) against the real kizunad:
 * the chronology export in its three formats (every message, edit, deletion and membership
 * change in order, times in the record's zone, CSV for Excel with formulas guarded, HTML with
 * everything escaped); review, redaction and publication (canary personal data absent from the
 * published record in every format, a reviewer never approving their own review); and
 * `kizunad verify-record` on a JSON Lines export, whole and tampered. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

#define PW "password-1234"

static struct kzd d;
static struct ws admin;

static void setup(void)
{
    kzd_setup(&d);
    cr_assert(ws_open(&admin, d.port));
    cr_assert(ws_login(&admin, "admin", TEST_ADMIN_PASSWORD, NULL));
    const char *users[] = {"tanaka", "sato", "suzuki", "outsider"};
    for (size_t i = 0; i < sizeof users / sizeof users[0]; i++) {
        cJSON *r = ws_callf(&admin,
                            "\"op\":\"user.add\",\"login\":\"%s\",\"password\":\"%s\","
                            "\"name\":\"%s-name\"",
                            users[i], PW, users[i]);
        cr_assert_str_eq(reply_code(r), "ok");
        cJSON_Delete(r);
    }
}

static void teardown(void)
{
    ws_close_fd(&admin);
    kzd_teardown(&d);
}

TestSuite(record, .init = setup, .fini = teardown, .timeout = 120);

/* A room of admin, tanaka and sato (static id). */
static const char *make_room(const char *name)
{
    static char id[64];
    cJSON *r = ws_callf(&admin,
                        "\"op\":\"room.create\",\"name\":\"%s\",\"members\":[\"tanaka\","
                        "\"sato\"]",
                        name);
    cr_assert_str_eq(reply_code(r), "ok", "room.create");
    snprintf(id, sizeof id, "%s",
             cJSON_GetObjectItem(cJSON_GetObjectItem(r, "room"), "room")->valuestring);
    cJSON_Delete(r);
    return id;
}

static long long send_as(struct ws *w, const char *room, const char *body_json)
{
    cJSON *r = ws_callf(w, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":%s", room, body_json);
    cr_assert_str_eq(reply_code(r), "ok", "msg.send %s", body_json);
    long long pos = (long long)cJSON_GetObjectItem(r, "pos")->valuedouble;
    cJSON_Delete(r);
    return pos;
}

static void ok_call(struct ws *w, const char *what, cJSON *r)
{
    cr_assert_str_eq(
        reply_code(r), "ok", "%s: %s", what,
        cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "message")));
    cJSON_Delete(r);
    (void)w;
}

/* The whole export (every page, `limit` events a page) of room as `w` sees it, owned by the
 * caller. */
static char *export_all(struct ws *w, const char *room, const char *format, int limit)
{
    size_t len = 0, cap = 1;
    char *all = calloc(1, cap);
    long long after = 0;
    for (int pages = 0; pages < 1000; pages++) {
        cJSON *r = ws_callf(w,
                            "\"op\":\"record.export\",\"room\":\"%s\",\"format\":\"%s\","
                            "\"limit\":%d,\"after\":%lld",
                            room, format, limit, after);
        cr_assert_str_eq(reply_code(r), "ok", "record.export");
        const char *text = cJSON_GetObjectItem(r, "text")->valuestring;
        size_t n = strlen(text);
        all = realloc(all, cap = len + n + 1);
        memcpy(all + len, text, n + 1);
        len += n;
        bool more = cJSON_IsTrue(cJSON_GetObjectItem(r, "more"));
        if (more)
            after = (long long)cJSON_GetObjectItem(r, "next_after")->valuedouble;
        cJSON_Delete(r);
        if (!more)
            return all;
    }
    cr_assert_fail("an export that never ends");
    return NULL;
}

/* The canaries: personal data that the internal record holds and a published one must not. */
#define CANARY_PHONE   "090-1234-5678"
#define CANARY_ADDRESS "松山市一番町四丁目7番地2"
#define CANARY_NAME    "山田花子"
#define CANARY_EDIT    "0899-41-2345"

/* A day of talk: messages with the canaries, an edit carrying another, a deletion, a formula
 * and markup, a member added. The positions of the two messages with canaries in *p1, *p2. */
static void talk(const char *room, long long *p1, long long *p2, long long *deleted)
{
    struct ws t;
    cr_assert(ws_open(&t, d.port));
    cr_assert(ws_login(&t, "tanaka", PW, NULL));
    *p1 = send_as(&t, room,
                  "\"要救助者 " CANARY_NAME " さん、連絡先 " CANARY_PHONE "、住所 " CANARY_ADDRESS
                  "。2024年1月1日から避難、見舞金 1,000円\"");
    *p2 = send_as(&admin, room, "\"了解。現地へ向かいます\"");
    ok_call(&admin, "edit",
            ws_callf(&admin,
                     "\"op\":\"msg.edit\",\"room\":\"%s\",\"pos\":%lld,\"body\":\"了解。"
                     "家族の連絡先は " CANARY_EDIT "\"",
                     room, *p2));
    *deleted = send_as(&t, room, "\"誤送信です\"");
    ok_call(&t, "delete",
            ws_callf(&t, "\"op\":\"msg.delete\",\"room\":\"%s\",\"pos\":%lld", room, *deleted));
    send_as(&t, room, "\"=HYPERLINK(\\\"http://x\\\") <script>alert(1)</script> & \\\"q\\\"\"");
    ok_call(&admin, "invite",
            ws_callf(&admin, "\"op\":\"room.invite\",\"room\":\"%s\",\"user\":\"suzuki\"", room));
    ws_close_fd(&t);
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

Test(record, the_chronology_in_jsonl_csv_and_html)
{
    const char *room = make_room("記録テスト");
    long long p1, p2, del;
    talk(room, &p1, &p2, &del);

    char *jsonl = export_all(&admin, room, "jsonl", 1000);
    /* The header, then one row a line: room.create, 3 joins, the messages, the edit, the
     * deletion, the formula, the invite. */
    cJSON *head = NULL;
    int rows = 0, msgs = 0, edits = 0, deletes = 0, members = 0;
    bool seen_edit_after_msg = false, seen_msg = false;
    for (char *line = jsonl, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        cr_assert_not_null(nl, "every line ends with a newline");
        *nl = '\0';
        cJSON *o = cJSON_Parse(line);
        cr_assert_not_null(o, "a JSON line: %s", line);
        if (!head) {
            head = o;
            continue;
        }
        rows++;
        const char *type = cJSON_GetObjectItem(o, "type")->valuestring;
        const char *time = cJSON_GetObjectItem(o, "time")->valuestring;
        cr_assert(strlen(time) == 25 && strcmp(time + 19, "+09:00") == 0,
                  "times in Asia/Tokyo by default: %s", time);
        cr_assert_not_null(cJSON_GetObjectItem(o, "payload"), "each row carries its payload");
        cr_assert_not_null(cJSON_GetObjectItem(o, "event_id"));
        if (strcmp(type, "msg") == 0) {
            msgs++;
            seen_msg = true;
            cr_assert_not_null(cJSON_GetObjectItem(o, "read_count"));
        } else if (strcmp(type, "msg.edit") == 0) {
            edits++;
            seen_edit_after_msg = seen_msg;
            cr_assert(strstr(cJSON_GetObjectItem(o, "text")->valuestring, CANARY_EDIT));
        } else if (strcmp(type, "msg.delete") == 0) {
            deletes++;
        } else if (strcmp(type, "member") == 0) {
            members++;
        }
        cr_assert(strncmp(type, "e2ee.keys", 9) != 0 && strcmp(type, "room.read") != 0);
        cJSON_Delete(o);
    }
    cr_assert_not_null(head);
    cr_assert_str_eq(cJSON_GetObjectItem(head, "record")->valuestring, "kizuna/record/v1");
    cr_assert_str_eq(cJSON_GetObjectItem(head, "room")->valuestring, room);
    cr_assert_str_eq(cJSON_GetObjectItem(head, "room_name")->valuestring, "記録テスト");
    cr_assert_str_eq(cJSON_GetObjectItem(head, "time_zone")->valuestring, "Asia/Tokyo");
    cJSON_Delete(head);
    cr_assert_eq(msgs, 4, "every message, the deleted one too");
    cr_assert_eq(edits, 1);
    cr_assert_eq(deletes, 1);
    cr_assert_eq(members, 4, "three joins at creation and the invitation");
    cr_assert(seen_edit_after_msg, "in the room's order");
    free(jsonl);

    /* The internal record holds the canaries, the deleted message's text too. */
    char *csv = export_all(&admin, room, "csv", 1000);
    cr_assert(strncmp(csv, "\xef\xbb\xbf\"日時\",", 3 + 9) == 0, "a BOM, then the header: %.40s",
              csv);
    cr_assert(strstr(csv, CANARY_PHONE) && strstr(csv, CANARY_ADDRESS) &&
              strstr(csv, CANARY_NAME) && strstr(csv, CANARY_EDIT) && strstr(csv, "誤送信です"));
    cr_assert(strstr(csv, "\"'=HYPERLINK(\"\"http://x\"\")"), "formulas guarded: %s", csv);
    cr_assert_eq(count_of(csv, "\r\n"), 1 + rows, "CRLF after each record");
    cr_assert(strstr(csv, "\"削除済み\""), "the deleted message is marked");
    cr_assert(strstr(csv, "\"編集済み\""), "the edited one too");
    free(csv);

    char *html = export_all(&admin, room, "html", 3); /* pages of 3 events make one page */
    cr_assert(strncmp(html, "<!DOCTYPE html>", 15) == 0);
    cr_assert_eq(count_of(html, "</html>"), 1, "one document");
    cr_assert(strstr(html, "@page{size:A4") && strstr(html, "counter(pages)"), "print CSS");
    cr_assert(strstr(html, "記録テスト") && strstr(html, CANARY_PHONE));
    cr_assert_null(strstr(html, "<script>"), "markup escaped");
    cr_assert(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;"));
    cr_assert_null(strstr(html, "<link") ? strstr(html, "<link") : strstr(html, "src="),
                   "nothing fetched");
    free(html);

    /* Recorded in the audit; outsiders get nothing. */
    char target[80];
    snprintf(target, sizeof target, "room:%s", room);
    cr_assert(ws_audit_has(&admin, "record.export", target));
    struct ws o;
    cr_assert(ws_open(&o, d.port));
    cr_assert(ws_login(&o, "outsider", PW, NULL));
    cJSON *r = ws_callf(&o, "\"op\":\"record.export\",\"room\":\"%s\",\"format\":\"csv\"", room);
    cr_assert_str_eq(reply_code(r), "not_found");
    cJSON_Delete(r);
    r = ws_callf(&admin, "\"op\":\"record.export\",\"room\":\"%s\",\"format\":\"pdf\"", room);
    cr_assert_str_eq(reply_code(r), "bad_request");
    cJSON_Delete(r);
    ws_close_fd(&o);
}

Test(record, a_time_range_and_another_zone)
{
    kzd_teardown(&d);
    kzd_setup_with(&d, "\"record_time_zone\":\"UTC\"");
    ws_close_fd(&admin);
    cr_assert(ws_open(&admin, d.port));
    cr_assert(ws_login(&admin, "admin", TEST_ADMIN_PASSWORD, NULL));
    cJSON *r = ws_callf(&admin, "\"op\":\"user.add\",\"login\":\"tanaka\",\"password\":\"%s\"", PW);
    cJSON_Delete(r);
    r = ws_callf(&admin, "\"op\":\"user.add\",\"login\":\"sato\",\"password\":\"%s\"", PW);
    cJSON_Delete(r);
    const char *room = make_room("範囲");
    send_as(&admin, room, "\"before\"");
    r = ws_callf(&admin, "\"op\":\"whoami\"");
    cJSON_Delete(r);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long mid = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + 1;
    struct timespec wait = {0, 5000000};
    nanosleep(&wait, NULL);
    send_as(&admin, room, "\"after\"");
    r = ws_callf(&admin,
                 "\"op\":\"record.export\",\"room\":\"%s\",\"format\":\"jsonl\",\"from\":%lld",
                 room, mid);
    cr_assert_str_eq(reply_code(r), "ok");
    const char *text = cJSON_GetObjectItem(r, "text")->valuestring;
    cr_assert(strstr(text, "\"after\"") && !strstr(text, "\"before\""), "%s", text);
    cr_assert(strstr(text, "+00:00\""), "UTC times: %s", text);
    cr_assert_eq(cJSON_GetObjectItem(r, "rows")->valuedouble, 1);
    cJSON_Delete(r);
    r = ws_callf(&admin,
                 "\"op\":\"record.export\",\"room\":\"%s\",\"format\":\"csv\",\"from\":5,\"to\":5",
                 room);
    cr_assert_str_eq(reply_code(r), "bad_request");
    cJSON_Delete(r);
}
