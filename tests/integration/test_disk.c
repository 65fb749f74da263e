/* test_disk.c - a disk that fills up under the real kizunad (a file-size limit on the server
 * process, raised again with prlimit: no root or mount needed). Writes are refused with
 * `unavailable` and an alarm in the log, reads and live delivery go on, the server accepts
 * writes again by itself once there is room, and nothing acknowledged is lost or doubled. */
#include <criterion/criterion.h>
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

static bool log_has(const char *needle)
{
    char path[400];
    snprintf(path, sizeof path, "%s/stderr.log", d.dir);
    FILE *f = fopen(path, "r");
    char line[2048];
    bool found = false;
    while (f && !found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return found;
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
    snprintf(room, sizeof room, "%s",
             cJSON_GetObjectItem(cJSON_GetObjectItem(r, "room"), "room")->valuestring);
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
    cr_assert(log_has("disk_alarm"), "an alarm in the log");

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
    cr_assert(log_has("disk_recovered"));
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
