/* test_fed_blob_frames.c - the blob frames of federation links (fed_blobs.c) fed straight to the
 * core's srv_fed_frame, as a hostile peer would send them, with a fake transport that keeps
 * what the core sends back: every malformed field (a bad id or room, a negative, fractional or
 * huge offset, a zero or huge length, a total of 0, data that is not exact base64, an overlong
 * why, an unknown blob.* type) makes the frame malformed (-1, the link closes); a well-formed
 * request for a blob this server does not serve is answered blob.none and nothing else; answers
 * nobody asked for are ignored. Run under the sanitizers, nothing crashes or leaks. The served
 * and pulled bytes themselves are tests/integration/test_fed_blobs.c's. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"

#define PEER     "jp-38-hostile"
#define BLOB     "f7df10c82008702243cbeac54c925e593f82699e3e8bbd97fe1f19cb56b2d63d"
#define ROOM     "9p-lhHfmeiVTQVbb0wqtTHMej-_kgB_hxxh_wLIu_WA"
#define MAX_SENT 32

static struct kz_config cfg;
static struct store *st;
static struct kz_workers *workers;
static struct srv *srv;
static char dir[64];
static struct {
    char *text[MAX_SENT];
    int n;
} sent;

static void no_wake(void *arg)
{
    (void)arg;
}
static void fake_send(void *ctx, uint64_t conn_id, struct kz_frame *f)
{
    (void)ctx, (void)conn_id, (void)f;
}
static void fake_bind(void *ctx, uint64_t conn_id, int64_t session_id, int64_t user_id)
{
    (void)ctx, (void)conn_id, (void)session_id, (void)user_id;
}
static void fake_close(void *ctx, const struct srv_close *which)
{
    (void)ctx, (void)which;
}
static void fake_pause(void *ctx, uint64_t conn_id, bool paused)
{
    (void)ctx, (void)conn_id, (void)paused;
}
static void fake_want_commit(void *ctx)
{
    (void)ctx;
}
static void fake_subscribe(void *ctx, uint64_t conn_id, int64_t pos)
{
    (void)ctx, (void)conn_id, (void)pos;
}
static void fake_push(void *ctx, int64_t user_id, int64_t pos, struct kz_frame *f)
{
    (void)ctx, (void)user_id, (void)pos, (void)f;
}
static void fake_timer(void *ctx, int ms)
{
    (void)ctx, (void)ms;
}
static bool fake_fed_send(void *ctx, const char *peer, struct kz_frame *f)
{
    (void)ctx;
    cr_assert_str_eq(peer, PEER);
    if (sent.n < MAX_SENT)
        sent.text[sent.n++] = strndup((const char *)f->data, f->len);
    return true;
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/kizuna-blobframes-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/k.db", dir);
    kz_config_defaults(&cfg);
    kz_log_set_level(KZ_LOG_ERROR);
    struct store_options o = {.path = path, .sync_full = false, .busy_timeout_ms = 100};
    cr_assert_eq(store_open(&o, &st, err, sizeof err), STORE_OK, "%s", err);
    workers = kz_workers_start(1, 4, no_wake, NULL);
    struct srv_transport tx = {.send = fake_send,
                               .bind = fake_bind,
                               .close_conns = fake_close,
                               .pause = fake_pause,
                               .want_commit = fake_want_commit,
                               .subscribe = fake_subscribe,
                               .push = fake_push,
                               .timer = fake_timer,
                               .fed_send = fake_fed_send};
    srv = srv_new(&cfg, st, workers, &tx);
    cr_assert_not_null(srv);
    cr_assert_eq(srv_set_data_dir(srv, dir), 0);
    /* The peer's link is up and its summary in: the event pump is idle, requests are answered. */
    srv_fed_link_up(srv, PEER);
    char why[160];
    const char *summary = "{\"t\":\"summary\",\"rooms\":[],\"done\":true}";
    cr_assert_eq(srv_fed_frame(srv, PEER, summary, strlen(summary), why, sizeof why), 0, "%s", why);
    srv_commit(srv);
}

static void teardown(void)
{
    kz_workers_stop(workers);
    srv_free(srv);
    store_close(st);
    for (int i = 0; i < sent.n; i++)
        free(sent.text[i]);
    memset(&sent, 0, sizeof sent);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(blob_frames, .init = setup, .fini = teardown, .timeout = 30);

/* srv_fed_frame's verdict on text, and how many frames the core sent back. */
static int frame(const char *text, int *replies)
{
    char why[160] = "";
    int before = sent.n;
    int rc = srv_fed_frame(srv, PEER, text, strlen(text), why, sizeof why);
    srv_commit(srv);
    if (rc)
        cr_assert_neq(why[0], '\0', "a malformed frame says why");
    *replies = sent.n - before;
    return rc;
}

static void malformed(const char *text)
{
    int replies;
    cr_expect_eq(frame(text, &replies), -1, "malformed: %s", text);
    cr_expect_eq(replies, 0, "nothing answers a malformed frame: %s", text);
}

Test(blob_frames, hostile_blob_gets_close_the_link_and_answer_nothing)
{
    const char *bad[] = {
        "{\"t\":\"blob.get\"}",
        "{\"t\":\"blob.get\",\"id\":\"xyz\",\"room\":\"" ROOM "\",\"offset\":0,\"length\":10}",
        "{\"t\":\"blob.get\",\"id\":\"" BLOB "0\",\"room\":\"" ROOM
        "\",\"offset\":0,\"length\":10}",
        "{\"t\":\"blob.get\",\"id\":"
        "\"F7DF10C82008702243CBEAC54C925E593F82699E3E8BBD97FE1F19CB56B2D63D\","
        "\"room\":\"" ROOM "\",\"offset\":0,\"length\":10}",
        "{\"t\":\"blob.get\",\"id\":7,\"room\":\"" ROOM "\",\"offset\":0,\"length\":10}",
        "{\"t\":\"blob.get\",\"id\":\"" BLOB "\",\"offset\":0,\"length\":10}",
        "{\"t\":\"blob.get\",\"id\":\"" BLOB "\",\"room\":\"a\\\"b\",\"offset\":0,\"length\":10}",
        "{\"t\":\"blob.get\",\"id\":\"" BLOB "\",\"room\":\"../../etc/passwd\",\"offset\":0,"
        "\"length\":10}",
        "{\"t\":\"blob.get\",\"id\":\"" BLOB "\",\"room\":\"" ROOM ROOM "\",\"offset\":0,"
        "\"length\":10}",
        "{\"t\":\"blob.get\",\"id\":\"" BLOB "\",\"room\":\"" ROOM
        "\",\"offset\":-1,\"length\":10}",
        "{\"t\":\"blob.get\",\"id\":\"" BLOB "\",\"room\":\"" ROOM
        "\",\"offset\":1.5,\"length\":10}",
        "{\"t\":\"blob.get\",\"id\":\"" BLOB "\",\"room\":\"" ROOM "\",\"offset\":1e300,"
        "\"length\":10}",
        "{\"t\":\"blob.get\",\"id\":\"" BLOB "\",\"room\":\"" ROOM "\",\"offset\":\"0\","
        "\"length\":10}",
        "{\"t\":\"blob.get\",\"id\":\"" BLOB "\",\"room\":\"" ROOM "\",\"offset\":0,\"length\":0}",
        "{\"t\":\"blob.get\",\"id\":\"" BLOB "\",\"room\":\"" ROOM "\",\"offset\":0,\"length\":-5}",
        "{\"t\":\"blob.get\",\"id\":\"" BLOB "\",\"room\":\"" ROOM
        "\",\"offset\":0,\"length\":1e18}",
        "{\"t\":\"blob.get\",\"id\":\"" BLOB "\",\"room\":\"" ROOM "\",\"offset\":0,"
        "\"length\":null}",
        "{\"t\":\"blob.steal\",\"id\":\"" BLOB "\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        malformed(bad[i]);
}

Test(blob_frames, a_well_formed_request_for_a_blob_not_served_gets_blob_none)
{
    /* A huge length and an offset far into a blob that is not here: the one answer for all. */
    const char *asks[] = {
        "{\"t\":\"blob.get\",\"id\":\"" BLOB "\",\"room\":\"" ROOM "\",\"offset\":0,\"length\":10}",
        "{\"t\":\"blob.get\",\"id\":\"" BLOB "\",\"room\":\"" ROOM "\",\"offset\":4096,"
        "\"length\":1000000000000}",
        "{\"t\":\"blob.get\",\"id\":\"" BLOB "\",\"room\":\"other\",\"offset\":0,\"length\":1}",
    };
    for (size_t i = 0; i < sizeof asks / sizeof *asks; i++) {
        int replies;
        cr_assert_eq(frame(asks[i], &replies), 0, "%s", asks[i]);
        cr_assert_eq(replies, 1, "%s", asks[i]);
        cJSON *r = cJSON_Parse(sent.text[sent.n - 1]);
        cr_assert_not_null(r);
        cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "t")), "blob.none");
        cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "id")), BLOB);
        cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "why")), "not here");
        cr_assert(strncmp(sent.text[sent.n - 1], "{\"t\":", 5) == 0, "t comes first");
        cJSON_Delete(r);
    }
}

Test(blob_frames, answers_nobody_asked_for_are_ignored_and_malformed_ones_refused)
{
    /* Well-formed, but this server asked for nothing: ignored, the link stays. */
    const char *unasked[] = {
        "{\"t\":\"blob.part\",\"id\":\"" BLOB "\",\"offset\":0,\"total\":4,\"data\":\"AAECAw==\"}",
        "{\"t\":\"blob.part\",\"id\":\"" BLOB "\",\"offset\":0,\"total\":4,\"data\":\"!!!!\"}",
        "{\"t\":\"blob.none\",\"id\":\"" BLOB "\",\"why\":\"not here\"}",
        "{\"t\":\"blob.none\",\"id\":\"" BLOB "\"}",
    };
    for (size_t i = 0; i < sizeof unasked / sizeof *unasked; i++) {
        int replies;
        cr_expect_eq(frame(unasked[i], &replies), 0, "%s", unasked[i]);
        cr_expect_eq(replies, 0);
    }
    char longwhy[400];
    snprintf(longwhy, sizeof longwhy, "{\"t\":\"blob.none\",\"id\":\"%s\",\"why\":\"%0250d\"}",
             BLOB, 0);
    const char *bad[] = {
        "{\"t\":\"blob.part\",\"id\":\"" BLOB "\",\"offset\":0,\"total\":0,\"data\":\"AA==\"}",
        "{\"t\":\"blob.part\",\"id\":\"" BLOB "\",\"offset\":-4,\"total\":4,\"data\":\"AA==\"}",
        "{\"t\":\"blob.part\",\"id\":\"" BLOB "\",\"offset\":0,\"total\":1e300,\"data\":\"AA==\"}",
        "{\"t\":\"blob.part\",\"id\":\"" BLOB "\",\"offset\":0,\"total\":4,\"data\":7}",
        "{\"t\":\"blob.part\",\"id\":\"nope\",\"offset\":0,\"total\":4,\"data\":\"AA==\"}",
        "{\"t\":\"blob.part\",\"offset\":0,\"total\":4,\"data\":\"AA==\"}",
        "{\"t\":\"blob.none\",\"id\":\"" BLOB "x\"}",
        longwhy,
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        malformed(bad[i]);
}
