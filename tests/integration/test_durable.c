/* test_durable.c - the commit pipeline against a slow and a failing disk. kizunad runs with
 * support/syncgate.c preloaded, which holds every fsync while a gate file exists and fails
 * them while a fail file exists. While the disk holds back: the loop keeps accepting
 * connections and reading requests, but no acknowledgement, delivery or read that could see
 * them leaves before they are on disk. A failed sync stops
 * the server without acknowledging anything, and the restart finds its logs intact. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define PW "password-1234"

static struct kzd d;
static struct ws admin;
static char gate[300], fail[300];

static void setup(void)
{
    kzd_setup(&d); /* the first start runs without the shim: users and rooms below */
    snprintf(gate, sizeof gate, "%s.gate", d.dir);
    snprintf(fail, sizeof fail, "%s.fail", d.dir);
    cr_assert(ws_open(&admin, d.port));
    cr_assert(ws_login(&admin, "admin", TEST_ADMIN_PASSWORD, NULL));
    const char *users[] = {"tanaka", "sato", "suzuki"};
    for (size_t i = 0; i < 3; i++) {
        cJSON *r = ws_callf(&admin, "\"op\":\"user.add\",\"login\":\"%s\",\"password\":\"%s\"",
                            users[i], PW);
        cr_assert_str_eq(reply_code(r), "ok");
        cJSON_Delete(r);
    }
    ws_close_fd(&admin);
    cr_assert_eq(kzd_stop(&d), 0);
    /* Restarted with the shim: under ASan it cannot come first in the library list. */
    const char *asan = getenv("ASAN_OPTIONS");
    char opts[512];
    snprintf(opts, sizeof opts, "%s%sverify_asan_link_order=0", asan ? asan : "",
             asan && *asan ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    setenv("LD_PRELOAD", KZ_SYNCGATE_PATH, 1);
    setenv("KIZUNA_SYNC_GATE", gate, 1);
    setenv("KIZUNA_SYNC_FAIL", fail, 1);
    kzd_start(&d);
    unsetenv("LD_PRELOAD");
}

static void teardown(void)
{
    unlink(gate);
    unlink(fail);
    kzd_teardown(&d);
}

TestSuite(durable, .init = setup, .fini = teardown, .timeout = 120);

static void touch(const char *path)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fclose(f);
}

static const char *create_room(struct ws *w)
{
    static char id[64];
    cJSON *r = ws_callf(w, "\"op\":\"room.create\",\"name\":\"本部\",\"members\":"
                           "[\"sato\",\"suzuki\"]");
    cr_assert_str_eq(reply_code(r), "ok", "room.create");
    reply_room(r, id, sizeof id);
    cJSON_Delete(r);
    return id;
}

/* Messages with this body in the database, as another process sees it (committed, whether or
 * not on disk yet). */
static int messages_in_db(const char *body)
{
    char path[400];
    snprintf(path, sizeof path, "%s/kizuna.db", d.dir);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(
        sqlite3_prepare_v2(db, "SELECT count(*) FROM messages WHERE body = ?", -1, &st, NULL),
        SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, body, -1, SQLITE_STATIC);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

Test(durable, nothing_leaves_before_the_disk_has_it_and_the_loop_goes_on_meanwhile)
{
    struct ws t, sato, suzuki, late;
    cr_assert(ws_open(&t, d.port));
    cr_assert(ws_login(&t, "tanaka", PW, NULL));
    const char *room = create_room(&t);
    ws_live(&sato, d.port, "sato", PW, -1, NULL);
    cr_assert(ws_open(&suzuki, d.port));
    cr_assert(ws_login(&suzuki, "suzuki", PW, NULL));

    touch(gate); /* the disk stops taking syncs */
    char req[512];
    for (int i = 1; i <= 3; i++) {
        snprintf(req, sizeof req,
                 "{\"id\":%d,\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"遅い%d\"}", i, room, i);
        cr_assert(ws_send_text(&t, req));
    }
    /* The loop goes on (with group commit, the messages are committed together as soon as
     * the sync before them finishes, so they may not be in the database yet)... */
    cr_assert(ws_open(&late, d.port), "the loop must accept connections while a sync waits");
    /* ... but nothing that depends on them has left. */
    snprintf(req, sizeof req, "{\"id\":9,\"op\":\"history\",\"room\":\"%s\"}", room);
    cr_assert(ws_send_text(&suzuki, req));
    char *early = ws_recv_text(&t, 400);
    cr_assert_null(early, "acknowledged before it was on disk: %s", early);
    cJSON *ev = ws_next_event(&sato, 200);
    cr_assert_null(ev, "delivered before it was on disk");
    early = ws_recv_text(&suzuki, 200);
    cr_assert_null(early, "a read showed what was not on disk yet: %s", early);

    unlink(gate); /* the disk catches up: everything follows, in order */
    for (int i = 1; i <= 3; i++) {
        char *text = ws_recv_text(&t, 10000);
        cr_assert_not_null(text, "no acknowledgement %d after the sync", i);
        cJSON *r = cJSON_Parse(text);
        free(text);
        cr_assert_eq(cJSON_GetObjectItem(r, "id")->valueint, i, "acknowledgements out of order");
        cr_assert_str_eq(reply_code(r), "ok");
        cJSON_Delete(r);
    }
    for (int i = 1; i <= 3; i++) {
        ev = ws_next_event(&sato, 10000);
        cr_assert_not_null(ev, "event %d not delivered after the sync", i);
        cJSON_Delete(ev);
    }
    for (int i = 1; i <= 3; i++) {
        char body[32];
        snprintf(body, sizeof body, "遅い%d", i);
        cr_assert_eq(messages_in_db(body), 1, "message %d is not in the database once", i);
    }
    char *text = ws_recv_text(&suzuki, 10000);
    cr_assert_not_null(text, "the read never answered");
    cr_assert(strstr(text, "遅い3"), "the read answered without what it saw: %s", text);
    free(text);
    ws_close_fd(&t);
    ws_close_fd(&sato);
    ws_close_fd(&suzuki);
    ws_close_fd(&late);
}

Test(durable, a_failed_sync_stops_the_server_and_acknowledges_nothing)
{
    struct ws t;
    cr_assert(ws_open(&t, d.port));
    cr_assert(ws_login(&t, "tanaka", PW, NULL));
    const char *room = create_room(&t);
    touch(fail);
    char req[512];
    snprintf(req, sizeof req,
             "{\"id\":1,\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"失敗\","
             "\"client_id\":\"fail-1\"}",
             room);
    cr_assert(ws_send_text(&t, req));
    char *text = ws_recv_text(&t, 5000);
    cr_assert(text == NULL || !strstr(text, "\"ok\":true"),
              "acknowledged a write the disk "
              "refused: %s",
              text);
    free(text);
    cr_assert_eq(kzd_wait_exit(&d, 20000), 1, "the server must stop when a sync fails");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "grep -q sync_failed '%s/stderr.log'", d.dir);
    cr_assert_eq(system(cmd), 0, "the log must say why it stopped");
    ws_close_fd(&t);

    unlink(fail);
    struct kzd_log_check check;
    char err[256];
    cr_assert(kzd_check_event_logs(&d, &check, err, sizeof err), "%s", err);
    kzd_start(&d);
    /* The client retries with its client id and gets exactly one message. */
    cr_assert(ws_open(&t, d.port));
    cr_assert(ws_login(&t, "tanaka", PW, NULL));
    cJSON *r = ws_callf(&t,
                        "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"失敗\","
                        "\"client_id\":\"fail-1\"",
                        room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    ws_close_fd(&t);
    cr_assert_eq(messages_in_db("失敗"), 1);
}

/* The log is copied into the database by the checkpoint thread while the server runs: without
 * it the database file would not grow until the server stops, and the log would grow for
 * ever. */
static struct kzd ck;

static void ck_setup(void)
{
    kzd_setup_with(&ck, "\"wal_checkpoint_frames\":100");
}

static void ck_teardown(void)
{
    kzd_teardown(&ck);
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

Test(checkpoint, the_log_is_copied_into_the_database_while_the_server_runs, .init = ck_setup,
     .fini = ck_teardown, .timeout = 120)
{
    char db[400];
    snprintf(db, sizeof db, "%s/kizuna.db", ck.dir);
    long long before = file_size(db);
    struct ws a;
    cr_assert(ws_open(&a, ck.port));
    cr_assert(ws_login(&a, "admin", TEST_ADMIN_PASSWORD, NULL));
    cJSON *r = ws_callf(&a, "\"op\":\"room.create\",\"name\":\"記録\",\"members\":[]");
    cr_assert_str_eq(reply_code(r), "ok");
    char room[64];
    reply_room(r, room, sizeof room);
    cJSON_Delete(r);
    /* ~8 MB of text in 400 rounds of 20 messages, each round sent without waiting for replies,
     * so the loop keeps committing while checkpoints run: far more than 100 pages of log. */
    static char body[1001], req[1200];
    memset(body, 'x', sizeof body - 1);
    for (int round = 0; round < 400; round++) {
        for (int i = 0; i < 20; i++) {
            snprintf(req, sizeof req,
                     "{\"id\":%d,\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"%d %s\"}", i, room,
                     round, body);
            cr_assert(ws_send_text(&a, req));
        }
        for (int i = 0; i < 20; i++) {
            char *text = ws_recv_text(&a, 20000);
            cr_assert_not_null(text, "reply %d of round %d missing", i, round);
            cr_assert(strstr(text, "\"ok\":true"), "%s", text);
            free(text);
        }
    }
    /* The log started over again and again: its length now (asked by a checkpoint from this
     * process) is far from the ~2,500 pages written. Left to the checkpoint thread alone, the
     * log never starts over while writes go on. */
    sqlite3 *rdb = NULL;
    cr_assert_eq(sqlite3_open_v2(db, &rdb, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    int log_frames = -1, copied = -1;
    cr_assert_eq(
        sqlite3_wal_checkpoint_v2(rdb, NULL, SQLITE_CHECKPOINT_PASSIVE, &log_frames, &copied),
        SQLITE_OK);
    sqlite3_close(rdb);
    cr_assert_lt(log_frames, 1500, "the log holds %d pages: it has not started over", log_frames);
    long long after = file_size(db);
    for (int tries = 0; after < before + 1000000 && tries < 1000; tries++) {
        usleep(10000); /* the checkpoint thread's work shows only in the file: nothing to poll */
        after = file_size(db);
    }
    cr_assert_geq(after, before + 1000000,
                  "the database file did not grow while the server ran (%lld -> %lld bytes): "
                  "no checkpoint",
                  before, after);
    ws_close_fd(&a);
}
