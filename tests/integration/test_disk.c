/* test_disk.c - a disk that fills up under the real kizunad (a file-size limit on the server
 * process, raised again with prlimit: no root or mount needed). Writes are refused with
 * `unavailable` and an alarm in the log, reads and live delivery go on, the server accepts
 * writes again by itself once there is room, and nothing acknowledged is lost or doubled. */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "harness.h"

static struct kzd d;

static void setup(void)
{
    kzd_setup_with(&d, "\"disk_retry_ms\":300");
}

static void teardown(void)
{
    unsetenv("KIZUNA_TEST_FSIZE");
    kzd_teardown(&d);
}

TestSuite(disk, .init = setup, .fini = teardown, .timeout = 90);

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

Test(disk, a_full_disk_refuses_writes_keeps_reads_and_recovers_by_itself)
{
    /* Restart with every file the server writes limited to a little above today's size. */
    cr_assert_eq(kzd_stop(&d), 0);
    char db[400], limit[32];
    snprintf(db, sizeof db, "%s/kizuna.db", d.dir);
    struct stat sb;
    cr_assert_eq(stat(db, &sb), 0);
    snprintf(limit, sizeof limit, "%lld", (long long)sb.st_size + (1LL << 20));
    setenv("KIZUNA_TEST_FSIZE", limit, 1);
    kzd_start(&d);
    unsetenv("KIZUNA_TEST_FSIZE");

    struct ws a, b;
    cr_assert(ws_open(&a, d.port));
    cr_assert(ws_login(&a, "admin", TEST_ADMIN_PASSWORD, NULL));
    cJSON *r = ws_call(&a, "{\"id\":1,\"op\":\"room.create\",\"name\":\"本部\"}");
    char room[64];
    reply_room(r, room, sizeof room);
    cJSON_Delete(r);
    long long live_from = ws_live(&b, d.port, "admin", TEST_ADMIN_PASSWORD, -1, NULL);
    cr_assert_geq(live_from, 0);

    /* Fill the disk: 8 KiB messages until one is refused. */
    static char body[8200];
    memset(body, 'x', 8192);
    body[8192] = '\0';
    int acked = 0, refused_at = -1;
    for (int i = 0; i < 1000 && refused_at < 0; i++) {
        body[0] = (char)('A' + i % 26);
        r = ws_callf(&a,
                     "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"%d %s\",\"client_id\":"
                     "\"fill-%d\"",
                     room, i, body, i);
        cr_assert_not_null(r, "the server answers every write");
        if (cJSON_IsTrue(cJSON_GetObjectItem(r, "ok"))) {
            acked++;
        } else {
            cr_assert_str_eq(reply_code(r), "unavailable", "a full disk is `unavailable`");
            cJSON *err = cJSON_GetObjectItem(r, "error");
            cr_assert_gt(cJSON_GetObjectItem(err, "retry_after_s")->valuedouble, 0);
            refused_at = i;
        }
        cJSON_Delete(r);
    }
    cr_assert_geq(refused_at, 0, "the limit was reached (acked %d)", acked);
    cr_assert(kzd_log_has(&d, "disk_alarm"), "an alarm in the log");

    /* Reads go on, and the live connection was not dropped. */
    r = ws_callf(&a, "\"op\":\"history\",\"room\":\"%s\",\"limit\":5", room);
    cr_assert_str_eq(reply_code(r), "ok", "reads are served while writes are refused");
    cJSON_Delete(r);
    r = ws_call(&b, "{\"id\":5,\"op\":\"whoami\"}");
    cr_assert_str_eq(reply_code(r), "ok", "the live connection is still open");
    cJSON_Delete(r);
    r = ws_callf(&a, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"still full\"", room);
    cr_assert_str_eq(reply_code(r), "unavailable", "writes are refused at once meanwhile");
    cJSON_Delete(r);
    /* A load balancer sees it: readiness fails on the database, naming why (issue 23). */
    static char ready[2048];
    cr_assert_eq(http_request(d.port, "GET", "/readyz", NULL, NULL, ready, sizeof ready), 503, "%s",
                 ready);
    cr_assert(strstr(ready, "\"failed\":[\"database\"]"), "%s", ready);
    cr_assert(strstr(ready, "writes are refused after a disk error"), "%s", ready);

    /* Space returns: the server takes writes again by itself. */
    struct rlimit unlimited = {RLIM_INFINITY, RLIM_INFINITY};
    cr_assert_eq(prlimit(d.pid, RLIMIT_FSIZE, &unlimited, NULL), 0);
    long long deadline = now_ms() + 10000;
    bool ok = false;
    while (!ok && now_ms() < deadline) {
        r = ws_callf(&a,
                     "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"space is back\","
                     "\"client_id\":\"after\"",
                     room);
        ok = cJSON_IsTrue(cJSON_GetObjectItem(r, "ok"));
        cr_assert(ok || strcmp(reply_code(r), "unavailable") == 0, "%s", reply_code(r));
        cJSON_Delete(r);
        if (!ok)
            cJSON_Delete(ws_next_event(&a, 100)); /* the retry window passing, not readiness */
    }
    cr_assert(ok, "writes are accepted again once there is room");
    cr_assert(kzd_log_has(&d, "disk_recovered"));
    cr_assert_eq(http_request(d.port, "GET", "/readyz", NULL, NULL, ready, sizeof ready), 200,
                 "ready again once a write committed: %s", ready);
    /* The bystander gets it live; resending a refused client_id now works exactly once. */
    bool seen = false;
    for (cJSON *ev; !seen && (ev = ws_next_event(&b, 5000));) {
        const cJSON *bd = cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "content"), "body");
        seen = cJSON_IsString(bd) && strcmp(bd->valuestring, "space is back") == 0;
        cJSON_Delete(ev);
    }
    cr_assert(seen, "live delivery carries on");

    /* Nothing acknowledged was lost, nothing doubled, and the database is whole after a
     * restart. */
    ws_close_fd(&a);
    ws_close_fd(&b);
    cr_assert_eq(kzd_stop(&d), 0);
    kzd_start(&d);
    cr_assert(ws_open(&a, d.port));
    cr_assert(ws_login(&a, "admin", TEST_ADMIN_PASSWORD, NULL));
    int count = 0;
    long long after = 0;
    for (;;) {
        /* Small pages: the test client reads frames of up to 64 KiB. */
        r = ws_callf(&a, "\"op\":\"history\",\"room\":\"%s\",\"after\":%lld,\"limit\":5", room,
                     after);
        cJSON *ev, *evs = cJSON_GetObjectItem(r, "events");
        int n = cJSON_GetArraySize(evs);
        cJSON_ArrayForEach(ev, evs)
        {
            after = (long long)cJSON_GetObjectItem(ev, "pos")->valuedouble;
            const cJSON *bd = cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "content"), "body");
            int k;
            if (cJSON_IsString(bd) && sscanf(bd->valuestring, "%d ", &k) == 1)
                count++;
        }
        cJSON_Delete(r);
        if (n < 5)
            break;
    }
    cr_assert_eq(count, acked,
                 "every acknowledged message once, the refused one not at all (%d of %d)", count,
                 acked);
    ws_close_fd(&a);
}

/* ---- uploads on a full disk ---- */

static char resp[1 << 22];
static size_t resp_len;

static int upload_call(const char *method, const char *path, const char *token,
                       const char *extra_headers, const void *body, size_t len)
{
    char headers[1024];
    snprintf(headers, sizeof headers, "Authorization: Bearer %s\r\nTus-Resumable: 1.0.0\r\n%s",
             token, extra_headers ? extra_headers : "");
    return http_raw(d.port, method, path, headers, body, len, len, resp, sizeof resp, &resp_len);
}

static int create_upload(const char *token, const unsigned char *blob, size_t len, char *location)
{
    uint8_t h[32];
    char hex[65], md[128], headers[256];
    crypto_generichash(h, sizeof h, blob, len, NULL, 0);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    sodium_bin2base64(md, sizeof md, (const unsigned char *)hex, 64,
                      sodium_base64_VARIANT_ORIGINAL);
    snprintf(headers, sizeof headers, "Upload-Length: %zu\r\nUpload-Metadata: blob %s\r\n", len,
             md);
    int st = upload_call("POST", "/api/v1/uploads", token, headers, "", 0);
    if (location && !http_header(resp, "Location", location, 128))
        location[0] = '\0';
    return st;
}

static int patch(const char *token, const char *location, size_t offset, const void *body,
                 size_t len)
{
    uint8_t h[32];
    crypto_generichash(h, sizeof h, body, len, NULL, 0);
    char sum[64], headers[256];
    sodium_bin2base64(sum, sizeof sum, h, sizeof h, sodium_base64_VARIANT_ORIGINAL);
    snprintf(headers, sizeof headers,
             "Upload-Offset: %zu\r\nUpload-Checksum: blake2b %s\r\n"
             "Content-Type: application/offset+octet-stream\r\n",
             offset, sum);
    return upload_call("PATCH", location, token, headers, body, len);
}

/* The JSON error of the last reply: its code, and retry_after_s (0 if none). */
static const char *resp_error(double *retry_after_s)
{
    static char code[32];
    code[0] = '\0';
    *retry_after_s = 0;
    const char *body = strstr(resp, "\r\n\r\n");
    cJSON *o = body ? cJSON_Parse(body + 4) : NULL;
    const cJSON *err = cJSON_GetObjectItem(o, "error");
    const cJSON *c = cJSON_GetObjectItem(err, "code"),
                *r = cJSON_GetObjectItem(err, "retry_after_s");
    if (cJSON_IsString(c))
        snprintf(code, sizeof code, "%s", c->valuestring);
    if (cJSON_IsNumber(r))
        *retry_after_s = r->valuedouble;
    cJSON_Delete(o);
    return code;
}

static long long resp_offset(void)
{
    char v[32];
    return http_header(resp, "Upload-Offset", v, sizeof v) ? atoll(v) : -1;
}

static void setup_slow_retry(void)
{
    /* Long enough that a request right after the disk alarm falls inside the window. */
    kzd_setup_with(&d, "\"disk_retry_ms\":3000");
}

/* Uploads on a full disk used to answer 503 with `internal` (POST) or drop the connection in the
 * middle of the body (PATCH). Both are `unavailable` with retry_after_s, like every other write;
 * the PATCH reads its whole body before it answers and keeps nothing of it, and the upload
 * resumes from its last committed offset once there is room (issue 12). */
Test(disk, uploads_on_a_full_disk_are_unavailable_and_resume_when_there_is_room,
     .init = setup_slow_retry)
{
    cr_assert_eq(kzd_stop(&d), 0);
    char db[400], limit[32];
    snprintf(db, sizeof db, "%s/kizuna.db", d.dir);
    struct stat sb;
    cr_assert_eq(stat(db, &sb), 0);
    snprintf(limit, sizeof limit, "%lld", (long long)sb.st_size + (1LL << 20));
    setenv("KIZUNA_TEST_FSIZE", limit, 1);
    kzd_start(&d);
    unsetenv("KIZUNA_TEST_FSIZE");

    struct ws a;
    char token[128], location[128];
    cr_assert(ws_open(&a, d.port));
    cr_assert(ws_login(&a, "admin", TEST_ADMIN_PASSWORD, token));
    /* Larger than the file-size limit: the staging file fills the "disk" part way. */
    const size_t len = (size_t)sb.st_size + (3u << 19), first = 256 * 1024;
    unsigned char *blob = malloc(len);
    randombytes_buf(blob, len);
    cr_assert_eq(create_upload(token, blob, len, location), 201, "%s", resp);
    cr_assert_eq(patch(token, location, 0, blob, first), 204, "%s", resp);
    double retry;
    int st = patch(token, location, first, blob + first, len - first);
    cr_assert_eq(st, 503, "a PATCH that cannot be written is answered, not cut off (%d)", st);
    cr_assert_str_eq(resp_error(&retry), "unavailable", "%s", resp);
    cr_assert_gt(retry, 0, "with retry_after_s");
    cr_assert_eq(resp_offset(), (long long)first, "the reply says where to resume: %s", resp);
    cr_assert_eq(upload_call("HEAD", location, token, NULL, "", 0), 200);
    cr_assert_eq(resp_offset(), (long long)first, "nothing of the failed PATCH was committed");

    /* Fill the database too: POST /uploads is refused like any other write. */
    cJSON *r = ws_call(&a, "{\"id\":1,\"op\":\"room.create\",\"name\":\"本部\"}");
    char room[64];
    reply_room(r, room, sizeof room);
    cJSON_Delete(r);
    static char body[8200];
    memset(body, 'x', 8192);
    body[8192] = '\0';
    bool refused = false;
    for (int i = 0; i < 1000 && !refused; i++) {
        r = ws_callf(&a, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"%d %s\"", room, i, body);
        refused = strcmp(reply_code(r), "unavailable") == 0;
        cr_assert(refused || cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")), "%s", reply_code(r));
        cJSON_Delete(r);
    }
    cr_assert(refused, "the limit was reached");
    unsigned char small[5000];
    randombytes_buf(small, sizeof small);
    st = create_upload(token, small, sizeof small, NULL);
    cr_assert_eq(st, 503, "%d %s", st, resp);
    cr_assert_str_eq(resp_error(&retry), "unavailable", "%s", resp);
    cr_assert_gt(retry, 0, "with retry_after_s");

    /* Space returns: the upload resumes from its committed offset and finishes. */
    struct rlimit unlimited = {RLIM_INFINITY, RLIM_INFINITY};
    cr_assert_eq(prlimit(d.pid, RLIMIT_FSIZE, &unlimited, NULL), 0);
    long long deadline = now_ms() + 15000;
    while ((st = patch(token, location, first, blob + first, len - first)) != 204 &&
           now_ms() < deadline) {
        cr_assert_eq(st, 503, "%s", resp);
        cr_assert_str_eq(resp_error(&retry), "unavailable", "%s", resp);
        cJSON_Delete(ws_next_event(&a, 200)); /* the retry window passing, not readiness */
    }
    cr_assert_eq(st, 204, "%s", resp);
    cr_assert_eq(resp_offset(), (long long)len);
    char hex[65], path[128];
    uint8_t h[32];
    crypto_generichash(h, sizeof h, blob, len, NULL, 0);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    snprintf(path, sizeof path, "/api/v1/blobs/%s", hex);
    cr_assert_eq(upload_call("GET", path, token, NULL, "", 0), 200);
    const char *got = strstr(resp, "\r\n\r\n") + 4;
    cr_assert(resp_len - (size_t)(got - resp) == len && memcmp(got, blob, len) == 0,
              "the blob is whole");
    ws_close_fd(&a);
    free(blob);
}
