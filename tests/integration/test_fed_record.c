/* test_fed_record.c - the record of a shared room is the same on every server (issue 22, item
 * 1): two real kizunad share a room through fault proxies (support/fedscene.h); users of both
 * send, one edits, one deletes, one reads; once the servers agree, record.export on each gives
 * the same bytes after the header, in JSON Lines, CSV and HTML alike, and the header names the
 * server that wrote it. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedscene.h"

#define AGREE_MS 30000 /* read markers are published every 2 s, then replicated */

static struct scene the_scene;

static void teardown(void)
{
    scene_stop(&the_scene);
}

TestSuite(fed_record, .fini = teardown, .timeout = 240);

/* The whole export of the room on server i as its user 0, pages of 4 events (caller frees). */
static char *export_on(struct scene *sc, int i, const char *format)
{
    size_t len = 0;
    char *all = calloc(1, 1);
    long long after = 0;
    for (int pages = 0; pages < 1000; pages++) {
        cJSON *r = scene_user_call(sc, &sc->u[i][0],
                                   "{\"id\":3,\"op\":\"record.export\",\"room\":\"%s\","
                                   "\"format\":\"%s\",\"limit\":4,\"after\":%lld}",
                                   sc->room, format, after);
        cr_assert_str_eq(reply_code(r), "ok", "record.export on %s", sc->names[i]);
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
            return all;
    }
    cr_assert_fail("an export that never ends");
    return NULL;
}

/* Where the part written from the events alone begins: after the header line (JSON Lines),
 * after the head's marker (HTML); a CSV has no header beyond its column names. */
static const char *body_of(const char *text, const char *format)
{
    if (strcmp(format, "jsonl") == 0) {
        const char *nl = strchr(text, '\n');
        cr_assert_not_null(nl);
        return nl + 1;
    }
    if (strcmp(format, "html") == 0) {
        const char *m = strstr(text, "<!-- kizuna-record-body -->");
        cr_assert_not_null(m);
        return m;
    }
    return text;
}

/* scene_want_ok, and the reply freed. */
static void want_ok(cJSON *r, const char *what, const char *where)
{
    scene_want_ok(r, what, where);
    cJSON_Delete(r);
}

static long long send_on(struct scene *sc, int i, int u, const char *body)
{
    cJSON *r = scene_user_call(sc, &sc->u[i][u],
                               "{\"id\":1,\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"%s\"}",
                               sc->room, body);
    cr_assert_str_eq(reply_code(r), "ok", "msg.send on %s", sc->names[i]);
    long long pos = (long long)cJSON_GetObjectItem(r, "pos")->valuedouble;
    cJSON_Delete(r);
    return pos;
}

Test(fed_record, two_servers_write_the_same_record)
{
    struct scene *sc = &the_scene;
    scene_setup(sc, "record", 2, 0);
    scene_phase_run(sc, scene_all(sc), 3);
    long long e = send_on(sc, 1, 0, "県道12号線 冠水 090-1234-5678");
    want_ok(scene_user_call(sc, &sc->u[1][0],
                            "{\"id\":2,\"op\":\"msg.edit\",\"room\":\"%s\",\"pos\":%lld,"
                            "\"body\":\"県道12号線 冠水 (訂正) 0120-000-000\"}",
                            sc->room, e),
            "msg.edit", sc->names[1]);
    long long d = send_on(sc, 0, 0, "誤送信");
    want_ok(scene_user_call(sc, &sc->u[0][0],
                            "{\"id\":2,\"op\":\"msg.delete\",\"room\":\"%s\",\"pos\":%lld}",
                            sc->room, d),
            "msg.delete", sc->names[0]);
    want_ok(
        scene_user_call(sc, &sc->u[1][1], "{\"id\":2,\"op\":\"read\",\"room\":\"%s\"}", sc->room),
        "read", sc->names[1]);
    scene_converge(sc, "sent, edited, deleted, read");

    const char *formats[] = {"jsonl", "csv", "html"};
    for (size_t f = 0; f < 3; f++) {
        long long start = scene_now_ms();
        char *a = NULL, *b = NULL;
        /* Equal once the read marker has travelled too; every try is a whole export. */
        for (;;) {
            free(a);
            free(b);
            a = export_on(sc, 0, formats[f]);
            b = export_on(sc, 1, formats[f]);
            if (strcmp(body_of(a, formats[f]), body_of(b, formats[f])) == 0)
                break;
            cr_assert_lt(scene_now_ms() - start, AGREE_MS,
                         "%s differs between the servers:\n--- %s\n%s\n--- %s\n%s", formats[f],
                         sc->names[0], body_of(a, formats[f]), sc->names[1],
                         body_of(b, formats[f]));
            scene_sleep_ms(200);
        }
        fprintf(stderr, "FIG record %s: %zu bytes, equal after %lld ms\n", formats[f], strlen(a),
                scene_now_ms() - start);
        cr_assert(strstr(a, "0120-000-000") && strstr(a, "090-1234-5678") && strstr(a, "誤送信"),
                  "the record holds the edit, the original and the deleted message");
        if (strcmp(formats[f], "jsonl") == 0) {
            cr_assert(strstr(a, sc->names[0]) && strstr(b, sc->names[1]), "headers name servers");
            cr_assert_neq(strcmp(a, b), 0, "... so the whole files differ");
            cr_assert(strstr(a, "\"read_by_server\""), "read counts by server in a shared room");
            /* Each server's record verifies against the keys the other pins for it. */
            for (int i = 0; i < 2; i++) {
                char path[400], out[4096];
                snprintf(path, sizeof path, "%s/record.jsonl", sc->net.s[i].d.dir);
                FILE *fp = fopen(path, "wb");
                cr_assert_not_null(fp);
                fputs(i == 0 ? a : b, fp);
                fclose(fp);
                const char *argv[] = {KIZUNAD_PATH, "verify-record",        path,
                                      "--data",     sc->net.s[1 - i].d.dir, NULL};
                cr_assert_eq(run_capture(argv, NULL, NULL, out, sizeof out), 0,
                             "%s's record on %s: %s", sc->names[i], sc->names[1 - i], out);
            }
        }
        free(a);
        free(b);
    }
}

/* The hotline test's network (the scene's is its own): stopped by its own teardown. */
static struct fednet hot;

static void hot_teardown(void)
{
    fednet_stop(&hot);
}

/* The whole record of room on server i as its admin, in one page (caller frees). */
static char *admin_export(int i, const char *room, const char *format)
{
    cJSON *r = fednet_admin(&hot, i,
                            "\"op\":\"record.export\",\"room\":\"%s\",\"format\":\"%s\","
                            "\"limit\":10000",
                            room, format);
    cr_assert_str_eq(reply_code(r), "ok", "record.export on %s", hot.s[i].id);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "more")));
    char *text = strdup(cJSON_GetObjectItem(r, "text")->valuestring);
    cJSON_Delete(r);
    return text;
}

static void hot_ok(cJSON *r, const char *what)
{
    cr_assert_str_eq(reply_code(r), "ok", "%s", what);
    cJSON_Delete(r);
}

Test(fed_record, a_hotline_with_seats_is_recorded_alike_on_both_servers, .fini = hot_teardown)
{
    fednet_start(&hot, 2, NULL, NULL, 0x7265636fULL);
    const char *B = hot.s[1].id;
    fednet_user_add(&hot, 0, "ken1");
    fednet_user_add(&hot, 1, "uwa1");
    cJSON *r = fednet_admin(&hot, 0,
                            "\"op\":\"hotline.create\",\"name\":\"南予ホットライン\","
                            "\"roles\":[\"%s=affected\"]",
                            B);
    cr_assert_str_eq(reply_code(r), "ok", "hotline.create");
    char room[64];
    snprintf(room, sizeof room, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(r, "room")));
    cJSON_Delete(r);
    /* The room reaches B; its admin joins and adds its duty officer, who holds a seat. */
    long long start = scene_now_ms();
    for (;;) {
        r = fednet_admin(&hot, 1, "\"op\":\"room.invite\",\"room\":\"%s\",\"user\":\"admin\"",
                         room);
        bool ok = strcmp(reply_code(r), "ok") == 0;
        cJSON_Delete(r);
        if (ok)
            break;
        cr_assert_lt(scene_now_ms() - start, AGREE_MS, "the hotline never reached %s", B);
        scene_sleep_ms(50);
    }
    hot_ok(fednet_admin(&hot, 1, "\"op\":\"room.invite\",\"room\":\"%s\",\"user\":\"uwa1\"", room),
           "invite uwa1");
    hot_ok(fednet_admin(&hot, 0, "\"op\":\"room.invite\",\"room\":\"%s\",\"user\":\"ken1\"", room),
           "invite ken1");
    hot_ok(fednet_admin(&hot, 1,
                        "\"op\":\"hotline.seat\",\"room\":\"%s\",\"seat\":\"危機管理課長\","
                        "\"user\":\"uwa1\",\"on_duty\":true",
                        room),
           "seat");
    /* A first report from the seat, an edit, a reply from the prefecture, a deletion. */
    struct ws u, k;
    cr_assert(ws_open(&u, hot.s[1].d.port) && ws_login(&u, "uwa1", "uwa1" TEST_PW_SUFFIX, NULL));
    cr_assert(ws_open(&k, hot.s[0].d.port) && ws_login(&k, "ken1", "ken1" TEST_PW_SUFFIX, NULL));
    r = ws_callf(&u,
                 "\"op\":\"msg.send\",\"room\":\"%s\",\"urgent\":true,"
                 "\"body\":\"第一報: 国道56号 土砂崩れ 連絡先 090-1234-5678\"",
                 room);
    cr_assert_str_eq(reply_code(r), "ok", "first report");
    long long first = (long long)cJSON_GetObjectItem(r, "pos")->valuedouble;
    cJSON_Delete(r);
    hot_ok(ws_callf(&u,
                    "\"op\":\"msg.edit\",\"room\":\"%s\",\"pos\":%lld,"
                    "\"body\":\"第一報(訂正): 国道56号 土砂崩れ 片側通行\"",
                    room, first),
           "edit");
    r = ws_callf(&k, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"了解。県から応援を送ります\"",
                 room);
    cr_assert_str_eq(reply_code(r), "ok");
    long long reply = (long long)cJSON_GetObjectItem(r, "pos")->valuedouble;
    cJSON_Delete(r);
    hot_ok(ws_callf(&k, "\"op\":\"msg.delete\",\"room\":\"%s\",\"pos\":%lld", room, reply),
           "delete");
    hot_ok(ws_callf(&k, "\"op\":\"read\",\"room\":\"%s\"", room), "read");
    ws_close_fd(&u);
    ws_close_fd(&k);
    const char *dbs[] = {hot.s[0].db, hot.s[1].db};
    cr_assert_geq(fc_wait_agree(dbs, 2, room, AGREE_MS, NULL), 0);

    const char *formats[] = {"jsonl", "csv", "html"};
    for (int f = 0; f < 3; f++) {
        start = scene_now_ms();
        char *a = NULL, *b = NULL;
        for (;;) {
            free(a);
            free(b);
            a = admin_export(0, room, formats[f]);
            b = admin_export(1, room, formats[f]);
            if (strcmp(body_of(a, formats[f]), body_of(b, formats[f])) == 0)
                break;
            cr_assert_lt(scene_now_ms() - start, AGREE_MS, "%s differs:\n%s\n---\n%s", formats[f],
                         body_of(a, formats[f]), body_of(b, formats[f]));
            scene_sleep_ms(200);
        }
        cr_assert(strstr(a, "危機管理課長") && strstr(a, "第一報: 国道56号") &&
                      strstr(a, "片側通行") && strstr(a, "了解。県から応援を送ります"),
                  "%s: the seat, the report as sent, the edit and the deleted reply", formats[f]);
        if (f == 0) {
            cr_assert(strstr(a, "\"seat\":\"危機管理課長\""), "%s", a);
            for (int i = 0; i < 2; i++) {
                char path[400], out[4096];
                snprintf(path, sizeof path, "%s/hotline.jsonl", hot.s[i].d.dir);
                FILE *fp = fopen(path, "wb");
                cr_assert_not_null(fp);
                fputs(i ? b : a, fp);
                fclose(fp);
                const char *argv[] = {KIZUNAD_PATH, "verify-record",    path,
                                      "--data",     hot.s[1 - i].d.dir, NULL};
                cr_assert_eq(run_capture(argv, NULL, NULL, out, sizeof out), 0, "%s", out);
            }
        }
        free(a);
        free(b);
    }

    /* Issue 22's "Done when" on the hotline: the prefecture's reviewer marks the record with
     * the helper's proposals, its admin approves, and the published HTML holds no canary. */
    hot_ok(
        fednet_admin(&hot, 0, "\"op\":\"record.reviewer\",\"room\":\"%s\",\"user\":\"ken1\"", room),
        "reviewer");
    cr_assert(ws_open(&k, hot.s[0].d.port) && ws_login(&k, "ken1", "ken1" TEST_PW_SUFFIX, NULL));
    r = ws_callf(&k, "\"op\":\"record.review.create\",\"room\":\"%s\"", room);
    cr_assert_str_eq(reply_code(r), "ok", "review: %s", cJSON_PrintUnformatted(r));
    long long review = (long long)cJSON_GetObjectItem(r, "review")->valuedouble;
    cJSON_Delete(r);
    /* Every message, edit and deletion of the record (as `record review mark --all`). */
    char *rec = admin_export(0, room, "jsonl");
    cJSON *ids = cJSON_CreateArray(), *ev;
    for (char *line = strtok(rec, "\n"); line; line = strtok(NULL, "\n")) {
        ev = cJSON_Parse(line);
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(ev, "type"));
        if (type && !strncmp(type, "msg", 3))
            cJSON_AddItemToArray(
                ids, cJSON_CreateString(cJSON_GetStringValue(cJSON_GetObjectItem(ev, "event_id"))));
        cJSON_Delete(ev);
    }
    free(rec);
    cr_assert_eq(cJSON_GetArraySize(ids), 4, "the report, its edit, the reply and its deletion");
    char *list = cJSON_PrintUnformatted(ids);
    cJSON_Delete(ids);
    hot_ok(
        ws_callf(&k, "\"op\":\"record.review.mark\",\"review\":%lld,\"events\":%s", review, list),
        "mark");
    free(list);
    r = ws_callf(&k, "\"op\":\"record.review.show\",\"review\":%lld", review);
    int proposals = 0, phone = 0;
    cJSON *red;
    cJSON_ArrayForEach(red, cJSON_GetObjectItem(r, "redactions"))
    {
        proposals++;
        phone += strstr(cJSON_GetStringValue(cJSON_GetObjectItem(red, "text")), "090") != NULL;
        hot_ok(ws_callf(&k,
                        "\"op\":\"record.review.decide\",\"review\":%lld,\"redaction\":%lld,"
                        "\"accept\":true",
                        review, (long long)cJSON_GetObjectItem(red, "id")->valuedouble),
               "decide");
    }
    cJSON_Delete(r);
    cr_assert_geq(phone, 1, "the helper proposes the phone number (%d proposals)", proposals);
    r = ws_callf(&k, "\"op\":\"record.review.approve\",\"review\":%lld", review);
    cr_assert_str_eq(reply_code(r), "forbidden", "not by its own reviewer");
    cJSON_Delete(r);
    hot_ok(fednet_admin(&hot, 0, "\"op\":\"record.review.approve\",\"review\":%lld", review),
           "approve");
    ws_close_fd(&k);
    r = fednet_admin(&hot, 0,
                     "\"op\":\"record.publish\",\"review\":%lld,\"format\":\"html\","
                     "\"limit\":10000",
                     review);
    cr_assert_str_eq(reply_code(r), "ok", "publish");
    const char *pub = cJSON_GetObjectItem(r, "text")->valuestring;
    cr_assert(strstr(pub, "\u25a0\u25a0\u25a0") || strstr(pub, "■■■"), "%s", pub);
    cr_assert(strstr(pub, "片側通行") && strstr(pub, "危機管理課長"), "%s", pub);
    cr_assert_null(strstr(pub, "090-1234-5678"), "the canary is published: %s", pub);
    cr_assert_null(strstr(pub, "1234-5678"), "%s", pub);
    cr_assert_null(strstr(pub, "ken1"), "no login in the published record");
    cJSON_Delete(r);
}
