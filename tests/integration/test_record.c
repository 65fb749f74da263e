/* test_record.c - the record of a room (issue 22, docs/records.md) against the real kizunad:
 * the chronology export in its three formats (every message, edit, deletion and membership
 * change in order, times in the record's zone, CSV for Excel with formulas guarded, HTML with
 * everything escaped); review, redaction and publication (canary personal data absent from the
 * published record in every format, a reviewer never approving their own review); and
 * `kizunad verify-record` on a JSON Lines export, whole and tampered. */
#include <criterion/criterion.h>
#include <stdarg.h>
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
    /* The canary name is a name of the directory, as a resident's seldom is; the helper finds
     * those, the reviewer marks any other by hand. */
    cJSON *r = ws_callf(&admin,
                        "\"op\":\"user.add\",\"login\":\"yamada\",\"password\":\"%s\","
                        "\"name\":\"山田 花子\"",
                        PW);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
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
    reply_room(r, id, sizeof id);
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

static int verify(const char *path, bool pinned, char *out, size_t n);
static void spill(const char *path, const char *text);

/* The canaries: personal data that the internal record holds and a published one must not. */
#define CANARY_PHONE   "090-1234-5678"
#define CANARY_ADDRESS "松山市一番町四丁目7番地2"
#define CANARY_NAME    "山田花子"
#define CANARY_EDIT    "0899-41-2345"
#define KZ_MARK        "■■■"

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
        if (cJSON_IsTrue(cJSON_GetObjectItem(o, "proof"))) { /* for verify-record */
            cJSON_Delete(o);
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
    /* A range is of the room's clock (hlc), which a burst of events (the room's creation and
     * joins in one millisecond) puts a few milliseconds ahead of the wall clock: a pause on
     * each side of the boundary. */
    struct timespec wait = {0, 50000000}, ts;
    nanosleep(&wait, NULL);
    clock_gettime(CLOCK_REALTIME, &ts);
    long long mid = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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

/* A connection logged in as login (password PW). */
static void login_ws(struct ws *w, const char *login)
{
    cr_assert(ws_open(w, d.port));
    cr_assert(ws_login(w, login, PW, NULL));
}

/* The published record of a review, every page (caller frees). */
static char *publish_all(long long review, const char *format)
{
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    cr_assert(ws_login(&w, "tanaka", PW, NULL)); /* a member of the room */
    size_t len = 0;
    char *all = calloc(1, 1);
    long long after = 0;
    for (int pages = 0; pages < 1000; pages++) {
        cJSON *r = ws_callf(&w,
                            "\"op\":\"record.publish\",\"review\":%lld,\"format\":\"%s\","
                            "\"limit\":2,\"after\":%lld",
                            review, format, after);
        cr_assert_str_eq(reply_code(r), "ok", "record.publish");
        const char *text = cJSON_GetObjectItem(r, "text")->valuestring;
        size_t n = strlen(text);
        all = realloc(all, len + n + 1);
        memcpy(all + len, text, n + 1);
        len += n;
        bool more = cJSON_IsTrue(cJSON_GetObjectItem(r, "more"));
        if (more)
            after = (long long)cJSON_GetObjectItem(r, "next_after")->valuedouble;
        cJSON_Delete(r);
        if (!more)
            break;
    }
    ws_close_fd(&w);
    return all;
}

/* Every piece of the canaries that must not survive, whole or in part. */
static const char *const leaks[] = {CANARY_PHONE, "1234-5678", "5678", CANARY_ADDRESS, "四丁目",
                                    "7番地2",     CANARY_NAME, "山田", "花子",         CANARY_EDIT,
                                    "41-2345",    "現地へ",    "090",  "0899"};

Test(record, review_redaction_approval_and_publication)
{
    const char *room = make_room("公開テスト");
    long long p1, p2, del;
    talk(room, &p1, &p2, &del);

    /* Reviewers are named by an admin; no one else opens a review. */
    struct ws s, t;
    login_ws(&s, "sato");
    login_ws(&t, "tanaka");
    cJSON *r = ws_callf(&s, "\"op\":\"record.review.create\",\"room\":\"%s\"", room);
    cr_assert_str_eq(reply_code(r), "forbidden", "a member, not a reviewer yet");
    cJSON_Delete(r);
    r = ws_callf(&t, "\"op\":\"record.reviewer\",\"room\":\"%s\",\"user\":\"sato\"", room);
    cr_assert_str_eq(reply_code(r), "forbidden", "only admins name reviewers");
    cJSON_Delete(r);
    ok_call(&admin, "reviewer",
            ws_callf(&admin, "\"op\":\"record.reviewer\",\"room\":\"%s\",\"user\":\"sato\"", room));

    /* sato opens a review: the helper proposes the canaries. */
    r = ws_callf(&s, "\"op\":\"record.review.create\",\"room\":\"%s\",\"title\":\"公開版\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    long long review = (long long)cJSON_GetObjectItem(r, "review")->valuedouble;
    cr_assert_geq(cJSON_GetObjectItem(r, "proposals")->valuedouble, 4);
    cJSON_Delete(r);
    r = ws_callf(&t, "\"op\":\"record.review.show\",\"review\":%lld", review);
    cr_assert_str_eq(reply_code(r), "not_found", "a member who is no reviewer sees no review");
    cJSON_Delete(r);
    r = ws_callf(&s, "\"op\":\"record.review.show\",\"review\":%lld", review);
    cr_assert_str_eq(reply_code(r), "ok");
    char kinds[512] = "";
    const cJSON *red;
    long long ids[64];
    int nids = 0;
    cJSON_ArrayForEach(red, cJSON_GetObjectItem(r, "redactions"))
    {
        const char *text = cJSON_GetObjectItem(red, "text")->valuestring;
        strncat(kinds, text, sizeof kinds - strlen(kinds) - 2);
        strcat(kinds, "|");
        cr_assert_str_eq(cJSON_GetObjectItem(red, "state")->valuestring, "proposed");
        cr_assert_lt(nids, 64);
        ids[nids++] = (long long)cJSON_GetObjectItem(red, "id")->valuedouble;
    }
    cJSON_Delete(r);
    cr_assert(strstr(kinds, CANARY_PHONE "|") && strstr(kinds, CANARY_ADDRESS "|") &&
                  strstr(kinds, CANARY_NAME "|") && strstr(kinds, CANARY_EDIT "|"),
              "the helper proposes every canary: %s", kinds);
    cr_assert_null(strstr(kinds, "2024"), "dates are left alone: %s", kinds);
    cr_assert_null(strstr(kinds, "1,000"), "amounts too: %s", kinds);

    /* Mark every message, edit and deletion for publication. */
    char *jsonl = export_all(&admin, room, "jsonl", 1000);
    char events[4096] = "";
    char p2_id[64] = "";
    for (char *line = strchr(jsonl, '\n') + 1, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        *nl = '\0';
        cJSON *o = cJSON_Parse(line);
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(o, "type"));
        if (type && strncmp(type, "msg", 3) == 0) {
            snprintf(events + strlen(events), sizeof events - strlen(events), "%s\"%s\"",
                     events[0] ? "," : "", cJSON_GetObjectItem(o, "event_id")->valuestring);
            const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(o, "text"));
            if (strcmp(type, "msg") == 0 && text && strstr(text, "現地へ"))
                snprintf(p2_id, sizeof p2_id, "%s",
                         cJSON_GetObjectItem(o, "event_id")->valuestring);
        }
        cJSON_Delete(o);
    }
    free(jsonl);
    ok_call(&s, "mark",
            ws_callf(&s, "\"op\":\"record.review.mark\",\"review\":%lld,\"events\":[%s]", review,
                     events));
    /* A redaction by hand, in bytes: "現地へ" of 了解。現地へ向かいます (了解。 is 9 bytes). */
    cr_assert(p2_id[0]);
    r = ws_callf(&s,
                 "\"op\":\"record.review.redact\",\"review\":%lld,\"event\":\"%s\",\"start\":10,"
                 "\"end\":18",
                 review, p2_id);
    cr_assert_str_eq(reply_code(r), "bad_request", "not on a character's start");
    cJSON_Delete(r);
    ok_call(&s, "redact",
            ws_callf(&s,
                     "\"op\":\"record.review.redact\",\"review\":%lld,\"event\":\"%s\","
                     "\"start\":9,\"end\":18",
                     review, p2_id));

    /* Not approved while proposals wait; never by its own reviewer. */
    r = ws_callf(&admin, "\"op\":\"record.review.approve\",\"review\":%lld", review);
    cr_assert_str_eq(reply_code(r), "conflict", "proposals wait for a person");
    cJSON_Delete(r);
    for (int i = 0; i < nids; i++)
        ok_call(&s, "decide",
                ws_callf(&s,
                         "\"op\":\"record.review.decide\",\"review\":%lld,\"redaction\":%lld,"
                         "\"accept\":true",
                         review, ids[i]));
    r = ws_callf(&s, "\"op\":\"record.review.approve\",\"review\":%lld", review);
    cr_assert_str_eq(reply_code(r), "forbidden", "a reviewer cannot approve their own review");
    cJSON_Delete(r);
    r = ws_callf(&t, "\"op\":\"record.publish\",\"review\":%lld,\"format\":\"csv\"", review);
    cr_assert_str_eq(reply_code(r), "conflict", "nothing is published before approval");
    cJSON_Delete(r);
    ok_call(&admin, "approve",
            ws_callf(&admin, "\"op\":\"record.review.approve\",\"review\":%lld", review));
    r = ws_callf(&s, "\"op\":\"record.review.mark\",\"review\":%lld,\"events\":[%s]", review,
                 events);
    cr_assert_str_eq(reply_code(r), "conflict", "an approved review does not change");
    cJSON_Delete(r);
    ws_close_fd(&s);
    ws_close_fd(&t);

    /* The internal record still holds every canary; the published one none, in any format. */
    const char *formats[] = {"jsonl", "csv", "html"};
    for (int f = 0; f < 3; f++) {
        char *internal = export_all(&admin, room, formats[f], 1000);
        cr_assert(strstr(internal, CANARY_PHONE) && strstr(internal, CANARY_ADDRESS) &&
                  strstr(internal, CANARY_NAME) && strstr(internal, CANARY_EDIT));
        free(internal);
        char *pub = publish_all(review, formats[f]);
        for (size_t k = 0; k < sizeof leaks / sizeof leaks[0]; k++)
            cr_assert_null(strstr(pub, leaks[k]), "%s: '%s' published:\n%s", formats[f], leaks[k],
                           pub);
        cr_assert_null(strstr(pub, "payload"), "no payload: it holds the text as sent");
        if (f == 0) { /* nothing signed in it: verify-record says what to verify instead */
            char path[400], out[2048];
            snprintf(path, sizeof path, "%s/published.jsonl", d.dir);
            spill(path, pub);
            cr_assert_neq(verify(path, false, out, sizeof out), 0);
            cr_assert(strstr(out, "published record"), "%s", out);
        }
        cr_assert_geq(count_of(pub, KZ_MARK), 5, "%s: the marks are visible:\n%s", formats[f], pub);
        cr_assert(strstr(pub, "2024年1月1日") && strstr(pub, "1,000円"),
                  "dates and amounts stay: %s", pub);
        cr_assert(strstr(pub, "誤送信です"), "what was marked is published");
        cr_assert_null(strstr(pub, "suzuki"), "membership is not published");
        /* Reproducible: the same review gives the same record. */
        char *again = publish_all(review, formats[f]);
        const char *b1 = strcmp(formats[f], "html") == 0    ? strstr(pub, "<!-- kizuna-record-body")
                         : strcmp(formats[f], "jsonl") == 0 ? strchr(pub, '\n')
                                                            : pub;
        const char *b2 = strcmp(formats[f], "html") == 0 ? strstr(again, "<!-- kizuna-record-body")
                         : strcmp(formats[f], "jsonl") == 0 ? strchr(again, '\n')
                                                            : again;
        cr_assert_str_eq(b1, b2, "%s published twice", formats[f]);
        free(again);
        free(pub);
    }
    char target[40];
    snprintf(target, sizeof target, "review:%lld", review);
    const char *steps[] = {"record.review.create", "record.review.mark",    "record.review.redact",
                           "record.review.accept", "record.review.approve", "record.publish"};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        cr_assert(ws_audit_has(&admin, steps[i], target), "%s is audited", steps[i]);
}

/* kizuna as login (logged in first; admin's password or PW), arguments up to NULL; stdout in
 * out, the status returned. */
static int cli_as(const char *login, char *out, size_t n, const char *const *args)
{
    char env_dir[400], env_srv[100], env_pw[100];
    snprintf(env_dir, sizeof env_dir, "KIZUNA_CONFIG_DIR=%s/cli-%s", d.dir, login);
    snprintf(env_srv, sizeof env_srv, "KIZUNA_SERVER=%s", d.url);
    snprintf(env_pw, sizeof env_pw, "KIZUNA_PASSWORD=%s",
             strcmp(login, "admin") == 0 ? TEST_ADMIN_PASSWORD : PW);
    const char *env[] = {env_dir, env_srv, env_pw, NULL};
    const char *in[] = {KIZUNA_PATH, "login", login, NULL};
    cr_assert_eq(run_capture(in, env, NULL, out, n), 0, "login %s: %s", login, out);
    const char *argv[16] = {KIZUNA_PATH};
    for (int k = 0; k < 14 && args[k]; k++)
        argv[k + 1] = args[k];
    return run_capture(argv, env, NULL, out, n);
}

static int cli_admin(char *out, size_t n, const char *const *args)
{
    return cli_as("admin", out, n, args);
}

/* kizunad verify-record path [--data DIR]: its status, its report in out. */
static int verify(const char *path, bool pinned, char *out, size_t n)
{
    const char *argv[] = {KIZUNAD_PATH, "verify-record", path, pinned ? "--data" : NULL, d.dir,
                          NULL};
    return run_capture(argv, NULL, NULL, out, n);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

static void spill(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* text with the first `from` replaced by `to` (caller frees); asserts it is there. */
static char *replaced(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    cr_assert_not_null(at, "'%s' is in the record", from);
    size_t a = (size_t)(at - text), fl = strlen(from), tl = strlen(to), n = strlen(text);
    char *out = malloc(n - fl + tl + 1);
    memcpy(out, text, a);
    memcpy(out + a, to, tl);
    memcpy(out + a + tl, at + fl, n - a - fl + 1);
    return out;
}

Test(record, a_held_room_exported_by_the_cli_verifies_and_tampering_fails)
{
    const char *room = make_room("検証");
    long long p1, p2, del;
    talk(room, &p1, &p2, &del);
    ok_call(&admin, "hold", ws_callf(&admin, "\"op\":\"room.hold\",\"room\":\"%s\"", room));
    char path[400], bad[400], out[8192];
    snprintf(path, sizeof path, "%s/record.jsonl", d.dir);
    snprintf(bad, sizeof bad, "%s/tampered.jsonl", d.dir);
    /* A room id is base64url and may begin with '-': it is the room, not an option (this test
     * failed once in 64 runs, when the random id did). */
    const char *dash[] = {"record",   "export", "-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                          "--format", "jsonl",  NULL};
    cr_assert_eq(cli_admin(out, sizeof out, dash), 1, "not a usage error (2): no such room");
    const char *args[] = {"--json", "record", "export", room, "--format",
                          "jsonl",  "--out",  path,     NULL};
    cr_assert_eq(cli_admin(out, sizeof out, args), 0, "%s", out);
    cr_assert(strstr(out, "\"ok\":true") && strstr(out, "\"rows\":"), "--json: %s", out);
    char *rec = slurp(path);
    cr_assert(strstr(rec, "\"proof\":true"), "events not for people travel as proofs");
    cr_assert(strstr(rec, "\"held_at\":"), "the header says the room is held");

    cr_assert_eq(verify(path, false, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "verifies"), "%s", out);
    cr_assert_eq(verify(path, true, out, sizeof out), 0, "against the server's own key: %s", out);

    /* A changed text, in the row only. */
    char *t = replaced(rec, CANARY_PHONE, "090-0000-0000");
    spill(bad, t);
    free(t);
    cr_assert_neq(verify(bad, false, out, sizeof out), 0);
    cr_assert(strstr(out, "text is not the payload's"), "%s", out);
    /* A changed payload: its hash is no longer the event id. */
    const char *pl = strstr(strstr(rec, "\"type\":\"msg\""), "\"payload\":\"") + 11;
    char *t2 = strdup(rec);
    t2[pl - rec + 20] = t2[pl - rec + 20] == 'A' ? 'B' : 'A';
    spill(bad, t2);
    free(t2);
    cr_assert_neq(verify(bad, false, out, sizeof out), 0, "a payload changed");
    /* A row dropped from its log's chain, or moved out of order. */
    const char *msgrow = strstr(rec, "\n{\"event_id\"");
    const char *row2 = strstr(msgrow + 1, "\n{\"event_id\"");
    cr_assert(msgrow && row2);
    size_t cut = (size_t)(row2 - msgrow);
    char *t3 = malloc(strlen(rec) + 1);
    memcpy(t3, rec, (size_t)(msgrow - rec));
    strcpy(t3 + (msgrow - rec), msgrow + cut);
    spill(bad, t3);
    free(t3);
    cr_assert_neq(verify(bad, false, out, sizeof out), 0, "a row left out of a chain: %s", out);
    /* Re-signed by someone else: the header's keys are not this server's. */
    char *hk = strstr(rec, "\"keys\":{\"");
    cr_assert_not_null(hk);
    char *kv = strchr(strchr(hk + 9, ':'), '"') + 1;
    char *t4 = strdup(rec);
    t4[kv - rec] = t4[kv - rec] == 'A' ? 'B' : 'A';
    spill(bad, t4);
    free(t4);
    cr_assert_neq(verify(bad, false, out, sizeof out), 0, "another key in the header: %s", out);
    free(rec);

    /* A file that is not there is no record. */
    cr_assert_neq(verify("/nonexistent/record.jsonl", false, out, sizeof out), 0);
    char target[80];
    snprintf(target, sizeof target, "room:%s", room);
    cr_assert(ws_audit_has(&admin, "room.hold", target));
}

Test(record, the_whole_workflow_from_the_cli)
{
    const char *room = make_room("CLIの記録");
    long long p1, p2, del;
    talk(room, &p1, &p2, &del);
    char out[16384], path[400], id[24];
    const char *grant[] = {"record", "reviewer", room, "sato", NULL};
    cr_assert_eq(cli_admin(out, sizeof out, grant), 0, "%s", out);
    const char *create[] = {"--json", "record",  "review", "create",
                            room,     "--title", "公開版", NULL};
    cr_assert_eq(cli_as("sato", out, sizeof out, create), 0, "%s", out);
    cJSON *r = cJSON_Parse(out);
    cr_assert_not_null(r, "--json: %s", out);
    snprintf(id, sizeof id, "%lld", (long long)cJSON_GetObjectItem(r, "review")->valuedouble);
    cr_assert_geq(cJSON_GetObjectItem(r, "proposals")->valuedouble, 4);
    cJSON_Delete(r);
    const char *mark[] = {"record", "review", "mark", id, "--all", NULL};
    cr_assert_eq(cli_as("sato", out, sizeof out, mark), 0, "%s", out);
    cr_assert(strstr(out, "6 event(s) marked"), "four messages, an edit, a deletion: %s", out);
    const char *accept[] = {"--json", "record", "review", "accept", id, "--all", NULL};
    cr_assert_eq(cli_as("sato", out, sizeof out, accept), 0, "%s", out);
    cr_assert(strstr(out, "\"accepted\":"), "%s", out);
    const char *show[] = {"record", "review", "show", id, NULL};
    cr_assert_eq(cli_as("sato", out, sizeof out, show), 0, "%s", out);
    cr_assert(strstr(out, "accepted") && strstr(out, CANARY_PHONE) && !strstr(out, "proposed"),
              "%s", out);
    const char *approve[] = {"record", "review", "approve", id, NULL};
    cr_assert_eq(cli_as("sato", out, sizeof out, approve), 1, "not by its own reviewer: %s", out);
    cr_assert_eq(cli_admin(out, sizeof out, approve), 0, "%s", out);
    const char *formats[] = {"html", "csv", "jsonl"};
    for (int f = 0; f < 3; f++) {
        snprintf(path, sizeof path, "%s/published.%s", d.dir, formats[f]);
        const char *publish[] = {"record",   "publish", id,   "--format",
                                 formats[f], "--out",   path, NULL};
        cr_assert_eq(cli_as("tanaka", out, sizeof out, publish), 0, "%s", out);
        char *pub = slurp(path);
        cr_assert(strstr(pub, KZ_MARK), "%s", pub);
        for (size_t k = 0; k < sizeof leaks / sizeof leaks[0]; k++)
            if (strcmp(leaks[k], "現地へ") != 0) /* redacted by hand in the other test only */
                cr_assert_null(strstr(pub, leaks[k]), "%s: '%s' published", formats[f], leaks[k]);
        free(pub);
    }
    const char *hold[] = {"--json", "room", "hold", room, NULL};
    cr_assert_eq(cli_admin(out, sizeof out, hold), 0, "%s", out);
    cr_assert(strstr(out, "\"hold\":true"), "%s", out);
}

/* kizuna as user (password LOGIN TEST_PW_SUFFIX) on their own device (config dir in the data
 * dir), the arguments up to NULL; stdout in out, the status returned. */
static int kz_dev(const char *user, char *out, size_t n, ...)
{
    char config[400];
    snprintf(config, sizeof config, "%s/dev-%s", d.dir, user);
    const struct kz_device dev = {d.url, config, user, NULL, 20, false};
    va_list ap;
    va_start(ap, n);
    int rc = kz_device_run(&dev, NULL, out, n, ap);
    va_end(ap);
    return rc;
}

Test(record, photos_this_device_opens_get_their_caption_and_thumbnail)
{
    static char out[65536];
    const char *users[] = {"alice", "bob"};
    for (int i = 0; i < 2; i++) {
        cJSON *r = ws_callf(&admin, "\"op\":\"user.add\",\"login\":\"%s\",\"password\":\"%s%s\"",
                            users[i], users[i], TEST_PW_SUFFIX);
        cr_assert_str_eq(reply_code(r), "ok");
        cJSON_Delete(r);
        /* Logging in makes and registers the device's keys. */
        cr_assert_eq(kz_dev(users[i], out, sizeof out, "login", users[i], NULL), 0, "%s", out);
    }
    cr_assert_eq(kz_dev("alice", out, sizeof out, "--json", "room", "create", "写真の記録",
                        "--members", "bob", NULL),
                 0, "%s", out);
    cJSON *r = cJSON_Parse(out);
    char room[64];
    reply_room(r, room, sizeof room);
    cJSON_Delete(r);
    char jpg[400], html[400], jsonl[400], bare[400];
    snprintf(jpg, sizeof jpg, "%s/in.jpg", d.dir);
    const char *mk[] = {KZ_MKJPEG_PATH, jpg, NULL};
    cr_assert_eq(run_capture(mk, NULL, NULL, out, sizeof out), 0, "kz-mkjpeg: %s", out);
    cr_assert_eq(kz_dev("alice", out, sizeof out, "photo", "send", room, jpg, "--caption",
                        "県道12号線 冠水 <b>", NULL),
                 0, "%s", out);
    snprintf(html, sizeof html, "%s/photos.html", d.dir);
    snprintf(jsonl, sizeof jsonl, "%s/photos.jsonl", d.dir);
    snprintf(bare, sizeof bare, "%s/bare.html", d.dir);
    cr_assert_eq(kz_dev("bob", out, sizeof out, "record", "export", room, "--format", "html",
                        "--out", html, NULL),
                 0, "%s", out);
    cr_assert_eq(kz_dev("bob", out, sizeof out, "record", "export", room, "--format", "jsonl",
                        "--out", jsonl, NULL),
                 0, "%s", out);
    cr_assert_eq(kz_dev("bob", out, sizeof out, "record", "export", room, "--format", "html",
                        "--no-photos", "--out", bare, NULL),
                 0, "%s", out);
    char *h = slurp(html), *j = slurp(jsonl), *b = slurp(bare);
    cr_assert(strstr(h, "写真: 県道12号線 冠水 &lt;b&gt;<br><img class=\"thumb\" alt=\"\" "
                        "src=\"data:image/jpeg;base64,/9j/"),
              "bob's device fills in the caption and the thumbnail: %s", h);
    cr_assert(strstr(j, "\"caption\":\"県道12号線 冠水 <b>\"") && strstr(j, "\"thumbnail\":\"_9j_"),
              "%s", j);
    cr_assert_null(strstr(b, "県道12号線"), "--no-photos: the server's entry only");
    cr_assert(strstr(b, "写真 (暗号化"), "%s", b);
    /* What the device added is outside what verify-record checks. */
    cr_assert_eq(verify(jsonl, false, out, sizeof out), 0, "%s", out);
    free(h);
    free(j);
    free(b);
}
