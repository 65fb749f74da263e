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
