/* test_fed_blobs.c - blobs across servers (issue 19, item 3) with real kizunad paired through
 * the fault proxies (fednet.h) and the real kizuna: a photo sent on one server is pulled by
 * the others' servers (fed_blobs.c) and downloads there byte-identical (its BLAKE2b-256 is its
 * id); a cut link mid-blob resumes from the bytes already fetched, none fetched twice (the
 * puller's log lines count them); a kill -9 of the puller mid-blob resumes from its committed
 * offset; a blob tampered with on a relay fails its integrity check at the server that pulls
 * it (clients see blob_failed, naming the relay) and comes whole from the origin once that link
 * heals; a blob cut short on a relay's disk is never served short (the relay says blob.none
 * past its end) and comes whole from the origin; under a small bandwidth cap, messages sent
 * after a large photo arrive before its blob; under a small staging bound, a second blob waits
 * ("waiting: staging full") while the first is fetched, then follows, the partial files never
 * passing the bound; a link cut mid-blob hands the blob to another source at once; and a server
 * removed from the room is answered blob.none and never gets the blob. Malformed blob frames
 * are tests/unit/test_fed_blob_frames.c's.
 *
 * The photo's bytes never matter here (no key is needed to move or check a blob): kizuna photo
 * send makes a real one. Every wait has a deadline (DEADLINE_MS); figures go to stderr as
 * "FIG fed_blobs ..." lines. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fednet.h"

#define DEADLINE_MS 90000
#define POLL_MS     50
/* Small parts and a slow link, so that a 700 KB photo takes about ten seconds to pull. */
#define SLOW_CONFIG "\"federation_blob_chunk_bytes\":16384,\"federation_blob_bytes_per_s\":65536"

static struct fednet net;
static char base[64]; /* the users' client config dirs */
static const char *const users[] = {"alice", "bob", "carol"};
static char out[65536];

static void teardown(void)
{
    fednet_stop(&net);
    if (base[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
        int rc = system(cmd);
        (void)rc;
    }
}

TestSuite(fed_blobs, .fini = teardown, .timeout = 300);

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Runs kizuna as user (server i's user i) with its own config dir; stdout and stderr to out. */
static int kizuna(int i, const char *user, ...)
{
    char config[128];
    snprintf(config, sizeof config, "%s/%s", base, user);
    struct kz_device dev = {.server_url = net.s[i].d.url,
                            .config_dir = config,
                            .user = user,
                            .retry_max_s = 10,
                            .merge_stderr = true};
    va_list ap;
    va_start(ap, user);
    int rc = kz_device_run(&dev, NULL, out, sizeof out, ap);
    va_end(ap);
    return rc;
}
#define KZ(i, ...) kizuna(i, users[i], __VA_ARGS__, (const char *)NULL)

/* As kizuna, for server i's user, with one more environment entry (a test hook). */
static int kizuna_env(int i, const char *env, ...)
{
    char config[128];
    snprintf(config, sizeof config, "%s/%s", base, users[i]);
    struct kz_device dev = {.server_url = net.s[i].d.url,
                            .config_dir = config,
                            .user = users[i],
                            .extra_env = env,
                            .retry_max_s = 10,
                            .merge_stderr = true};
    va_list ap;
    va_start(ap, env);
    int rc = kz_device_run(&dev, NULL, out, sizeof out, ap);
    va_end(ap);
    return rc;
}

/* n servers (user i on server i), with extra config members. */
static void start(int n, const char *extra)
{
    snprintf(base, sizeof base, "/tmp/kizuna-fedblobs-XXXXXX");
    cr_assert_not_null(mkdtemp(base));
    fednet_start(&net, n, NULL, extra, 0x626c6f6273ULL);
    for (int i = 0; i < n; i++)
        fednet_user_add(&net, i, users[i]);
}

/* Server 0's admin creates a room shared with servers 1..n-1 and each server's admin invites
 * its user once the room is there; room gets its id. */
static void share(int n, char room[64])
{
    char servers[256] = "";
    for (int i = 1; i < n; i++)
        snprintf(servers + strlen(servers), sizeof servers - strlen(servers), "%s\"%s\"",
                 i > 1 ? "," : "", net.s[i].id);
    cJSON *r = fednet_admin(
        &net, 0, "\"op\":\"room.create\",\"name\":\"写真共有\",\"servers\":[%s]", servers);
    cr_assert_str_eq(reply_code(r), "ok", "room.create");
    snprintf(room, 64, "%s",
             cJSON_GetObjectItem(cJSON_GetObjectItem(r, "room"), "room")->valuestring);
    cJSON_Delete(r);
    for (int i = 0; i < n; i++) {
        for (long long t0 = mono_ms();; pause_ms(POLL_MS)) {
            r = fednet_admin(&net, i, "\"op\":\"room.invite\",\"room\":\"%s\",\"user\":\"%s\"",
                             room, users[i]);
            bool ok = strcmp(reply_code(r), "ok") == 0;
            cJSON_Delete(r);
            if (ok)
                break;
            cr_assert_lt(mono_ms() - t0, DEADLINE_MS, "the room never reached %s", net.s[i].id);
        }
    }
    cr_assert_eq(KZ(0, "login", users[0]), 0, "%s", out);
}

/* Server i's user (logged in) sends a large photo: its position and blob id. */
static long long send_photo_on(int i, const char *room, char blob[65], long long *size)
{
    char jpg[128];
    snprintf(jpg, sizeof jpg, "%s/big.jpg", base);
    const char *argv[] = {KZ_MKJPEG_PATH, jpg,    "--width",  "2400",
                          "--height",     "1800", "--detail", NULL};
    char o[1024];
    cr_assert_eq(run_capture(argv, NULL, NULL, o, sizeof o), 0, "kz-mkjpeg: %s", o);
    cr_assert_eq(KZ(i, "--json", "photo", "send", room, jpg, "--caption", "県道12号線 冠水"), 0,
                 "%s", out);
    cJSON *r = cJSON_Parse(strchr(out, '{'));
    cr_assert_not_null(r, "%s", out);
    long long pos = (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(r, "pos"));
    snprintf(blob, 65, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(r, "blob")));
    cJSON_Delete(r);
    cr_assert_eq(strlen(blob), 64, "%s", out);
    char path[512];
    snprintf(path, sizeof path, "%s/blobs/%.2s/%s", net.s[i].d.dir, blob, blob);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "the blob is on the sender's server");
    fseek(f, 0, SEEK_END);
    *size = ftell(f);
    fclose(f);
    fprintf(stderr, "FIG fed_blobs: photo #%lld, blob of %lld bytes\n", pos, *size);
    return pos;
}

/* alice sends a large photo on server 0. */
static long long send_photo(const char *room, char blob[65], long long *size)
{
    return send_photo_on(0, room, blob, size);
}

/* A logged-in connection of server i's user (its token in tok). */
static void user_ws(int i, struct ws *w, char tok[80])
{
    cr_assert(ws_open(w, net.s[i].d.port));
    char pw[64];
    snprintf(pw, sizeof pw, "%s%s", users[i], TEST_PW_SUFFIX);
    cr_assert(ws_login(w, users[i], pw, tok), "%s logs in on %s", users[i], net.s[i].id);
}

struct bstat {
    char state[16];
    long long have, total;
    char why[200];
};

/* blob.status of blob in room as server i's user. */
static void status(int i, const char *room, const char *blob, struct bstat *b)
{
    struct ws w;
    char tok[80];
    user_ws(i, &w, tok);
    cJSON *r =
        ws_callf(&w, "\"op\":\"blob.status\",\"room\":\"%s\",\"blobs\":[\"%s\"]", room, blob);
    cr_assert_str_eq(reply_code(r), "ok", "blob.status on %s", net.s[i].id);
    const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "blobs"), 0);
    memset(b, 0, sizeof *b);
    snprintf(b->state, sizeof b->state, "%s",
             cJSON_GetStringValue(cJSON_GetObjectItem(e, "state")));
    b->have = (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "have"));
    b->total = (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "total"));
    const char *why = cJSON_GetStringValue(cJSON_GetObjectItem(e, "why"));
    snprintf(b->why, sizeof b->why, "%s", why ? why : "");
    cJSON_Delete(r);
    ws_close_fd(&w);
}

/* GET /api/v1/blobs/ID as server i's user: the status; the body's hash is the id (*same) and
 * the body (error JSON) in body. */
static int download(int i, const char *blob, bool *same, char *body, size_t bodylen)
{
    struct ws w;
    char tok[80];
    user_ws(i, &w, tok);
    ws_close_fd(&w);
    char path[128], hdr[128];
    snprintf(path, sizeof path, "/api/v1/blobs/%s", blob);
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", tok);
    size_t cap = 8 << 20, len = 0;
    char *resp = malloc(cap);
    cr_assert_not_null(resp);
    int st = http_raw(net.s[i].d.port, "GET", path, hdr, NULL, 0, 0, resp, cap, &len);
    const char *end = memmem(resp, len, "\r\n\r\n", 4);
    cr_assert_not_null(end, "an HTTP reply");
    const unsigned char *b = (const unsigned char *)end + 4;
    size_t n = len - (size_t)(b - (const unsigned char *)resp);
    uint8_t h[32];
    char hex[65];
    crypto_generichash(h, sizeof h, b, n, NULL, 0);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    *same = strcmp(hex, blob) == 0;
    snprintf(body, bodylen, "%.*s", (int)(n < bodylen ? n : bodylen - 1), (const char *)b);
    free(resp);
    return st;
}

/* Waits until server i's user sees the blob here, then checks that it downloads whole. */
static long long wait_here(int i, const char *room, const char *blob)
{
    long long t0 = mono_ms();
    struct bstat b;
    for (;; pause_ms(POLL_MS)) {
        status(i, room, blob, &b);
        if (!strcmp(b.state, "here"))
            break;
        cr_assert_lt(mono_ms() - t0, DEADLINE_MS, "the blob never reached %s: %s %lld/%lld %s",
                     net.s[i].id, b.state, b.have, b.total, b.why);
    }
    bool same = false;
    char body[256];
    cr_assert_eq(download(i, blob, &same, body, sizeof body), 200, "%s", body);
    cr_assert(same, "the blob downloaded on %s hashes to its id", net.s[i].id);
    return mono_ms() - t0;
}

/* Waits until the blob's fetch on server i has between lo and the whole (exclusive) staged. */
static void wait_partial(int i, const char *room, const char *blob, long long lo, struct bstat *b)
{
    long long t0 = mono_ms();
    for (;; pause_ms(20)) {
        status(i, room, blob, b);
        if (b->have >= lo && b->total && b->have < b->total)
            return;
        cr_assert(strcmp(b->state, "here"), "the blob arrived before the test could cut it");
        cr_assert_lt(mono_ms() - t0, DEADLINE_MS, "no partial fetch on %s: %s %lld/%lld",
                     net.s[i].id, b->state, b->have, b->total);
    }
}

/* Server i's log, whole (caller frees). */
static char *log_of(int i)
{
    char path[320];
    snprintf(path, sizeof path, "%s/stderr.log", net.s[i].d.dir);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    buf[fread(buf, 1, (size_t)n, f)] = '\0';
    fclose(f);
    return buf;
}

/* Over server i's log lines that contain both a and b: how many, and the sum of the number
 * after key (if key). */
static long long log_lines(int i, const char *a, const char *b, const char *key, long long *sum)
{
    char *log = log_of(i);
    long long n = 0, s = 0;
    for (char *line = log, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (!strstr(line, a) || (b && !strstr(line, b)))
            continue;
        n++;
        const char *k = key ? strstr(line, key) : NULL;
        if (k)
            s += strtoll(k + strlen(key), NULL, 10);
    }
    free(log);
    if (sum)
        *sum = s;
    return n;
}

/* The offset of the last blob_fetch_start of blob in server i's log (-1: none). */
static long long last_start_offset(int i, const char *blob)
{
    char *log = log_of(i), needle[100];
    snprintf(needle, sizeof needle, "blob_fetch_start blob=%s", blob);
    long long off = -1;
    for (const char *p = log; (p = strstr(p, needle)); p++) {
        const char *o = strstr(p, " offset=");
        if (o)
            off = strtoll(o + 8, NULL, 10);
    }
    free(log);
    return off;
}

static void wait_log(int i, const char *a, const char *b)
{
    long long t0 = mono_ms();
    while (log_lines(i, a, b, NULL, NULL) == 0) {
        cr_assert_lt(mono_ms() - t0, DEADLINE_MS, "%s never logged %s %s", net.s[i].id, a,
                     b ? b : "");
        pause_ms(POLL_MS);
    }
}

/* Three servers sharing a room; C (server 2) is cut off from both others, then A's user sends
 * a photo. */
static void three_with_c_cut_off(char room[64], char blob[65], long long *size)
{
    start(3, NULL);
    share(3, room);
    fednet_isolate(&net, 2, true);
    fednet_wait_down(&net, 0, 2, DEADLINE_MS);
    fednet_wait_down(&net, 1, 2, DEADLINE_MS);
    send_photo(room, blob, size);
}

/* Thumbnail first across servers (issue 21): alice posts a photo as soon as its upload exists
 * and her connection is cut after 64 KiB of the picture. Server B has the message (thumbnail,
 * caption) at once and waits for the picture, saying why; server A says how far alice's upload
 * is; once she resumes, B fetches it (a source that said blob.none is asked again within 10 s)
 * and it downloads whole. */
Test(fed_blobs, a_photo_posted_before_its_picture_reaches_other_servers_when_the_upload_ends)
{
    start(2, NULL);
    char room[64];
    share(2, room);
    char jpg[128], o[1024];
    snprintf(jpg, sizeof jpg, "%s/first.jpg", base);
    const char *mk[] = {KZ_MKJPEG_PATH, jpg,    "--width",  "2400",
                        "--height",     "1800", "--detail", NULL};
    cr_assert_eq(run_capture(mk, NULL, NULL, o, sizeof o), 0, "kz-mkjpeg: %s", o);
    cr_assert_eq(kizuna_env(0, "KIZUNA_TEST_CUT_AFTER_BYTES=65536", "photo", "send", room, jpg,
                            "--caption", "先に見える写真", "--thumbnail-first", (const char *)NULL),
                 75, "cut after the message and 64 KiB: %s", out);

    /* B has the message at once; the picture waits, and says why. */
    struct ws w;
    char tok[80], blob[65] = "";
    user_ws(1, &w, tok);
    long long t0 = mono_ms();
    for (;; pause_ms(POLL_MS)) {
        cJSON *r = ws_callf(&w, "\"op\":\"history\",\"room\":\"%s\",\"limit\":50", room);
        cJSON *ev;
        cJSON_ArrayForEach(ev, cJSON_GetObjectItem(r, "events"))
        {
            if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(ev, "event")), "e2ee.photo"))
                snprintf(blob, sizeof blob, "%s",
                         cJSON_GetStringValue(cJSON_GetArrayItem(
                             cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "content"), "blobs"), 0)));
        }
        cJSON_Delete(r);
        if (blob[0])
            break;
        cr_assert_lt(mono_ms() - t0, DEADLINE_MS, "the photo's message never reached B");
    }
    ws_close_fd(&w);
    struct bstat b;
    for (t0 = mono_ms();; pause_ms(POLL_MS)) {
        status(1, room, blob, &b);
        if (strstr(b.why, "still be uploading"))
            break;
        cr_assert(strcmp(b.state, "here"), "the picture is here before alice uploaded it");
        cr_assert_lt(mono_ms() - t0, DEADLINE_MS, "B never said why it waits: %s %s", b.state,
                     b.why);
    }
    status(0, room, blob, &b);
    cr_assert_str_eq(b.state, "uploading", "A: %s %s", b.state, b.why);
    cr_assert_geq(b.have, 65536);
    cr_assert_gt(b.total, b.have);

    cr_assert_eq(KZ(0, "photo", "resume"), 0, "%s", out);
    long long ms = wait_here(1, room, blob);
    fprintf(stderr, "FIG fed_blobs: a picture posted first reached B %lld ms after the resume\n",
            ms);
}

Test(fed_blobs, a_photo_sent_on_one_server_is_pulled_by_every_other_and_downloads_whole)
{
    start(3, NULL);
    char room[64], blob[65];
    long long size;
    share(3, room);
    send_photo(room, blob, &size);
    for (int i = 1; i < 3; i++) {
        long long ms = wait_here(i, room, blob);
        fprintf(stderr, "FIG fed_blobs: %s has the %lld-byte blob %lld ms after the send\n",
                net.s[i].id, size, ms);
        struct bstat b;
        status(i, room, blob, &b);
        cr_assert_eq(b.have, size);
        cr_assert_eq(b.total, size);
    }
    /* A blob that no event of the room names is unknown, as for a stranger. */
    struct bstat b;
    status(1, room, "0000000000000000000000000000000000000000000000000000000000000000", &b);
    cr_assert_str_eq(b.state, "unknown");
}

Test(fed_blobs, a_cut_mid_blob_resumes_and_fetches_no_byte_twice)
{
    start(2, SLOW_CONFIG);
    char room[64], blob[65];
    long long size;
    share(2, room);
    send_photo(room, blob, &size);
    struct bstat b;
    wait_partial(1, room, blob, 3 * 16384, &b);
    fednet_cut(&net, 0, 1, true);
    fednet_wait_down(&net, 1, 0, DEADLINE_MS);
    /* The fetch stops where the link died; the client is told how far it is. */
    struct bstat cut;
    status(1, room, blob, &cut);
    cr_assert_neq(strcmp(cut.state, "here"), 0);
    cr_assert_geq(cut.have, b.have);
    bool same = true;
    char body[512];
    cr_assert_eq(download(1, blob, &same, body, sizeof body), 503, "%s", body);
    cr_assert(strstr(body, "\"blob_not_here\"") && strstr(body, "\"percent\""), "%s", body);
    fprintf(stderr, "FIG fed_blobs: cut at %lld of %lld bytes\n", cut.have, size);
    /* The CLI lists the photo with how far its blob is. */
    cr_assert_eq(KZ(1, "login", users[1]), 0, "%s", out);
    cr_assert_eq(KZ(1, "photo", "list", room), 0, "%s", out);
    cr_assert(strstr(out, "blob: not here yet ("), "%s", out);
    fednet_cut(&net, 0, 1, false);
    wait_here(1, room, blob);
    long long received = 0;
    long long jobs = log_lines(1, "blob_fetch_stop", blob, "received=", &received);
    long long last = 0;
    cr_assert_eq(log_lines(1, "blob_fetched", blob, "received=", &last), 1);
    cr_assert_geq(jobs, 1, "the cut stopped a fetch");
    cr_assert_gt(last_start_offset(1, blob), 0, "the fetch resumed past 0");
    cr_assert_eq(received + last, size,
                 "every byte was fetched once: %lld before the cut(s), %lld after, of %lld",
                 received, last, size);
}

Test(fed_blobs, a_killed_puller_resumes_from_its_committed_offset)
{
    start(2, SLOW_CONFIG);
    char room[64], blob[65];
    long long size;
    share(2, room);
    send_photo(room, blob, &size);
    struct bstat b;
    wait_partial(1, room, blob, 4 * 16384, &b);
    fednet_kill(&net, 1);
    fednet_restart(&net, 1);
    wait_here(1, room, blob);
    long long off = last_start_offset(1, blob);
    fprintf(stderr, "FIG fed_blobs: killed at %lld (committed) of %lld; resumed from %lld\n",
            b.have, size, off);
    cr_assert_geq(off, b.have, "the restarted puller resumed from a committed offset");
    cr_assert_lt(off, size);
}

/* C (server 2) reaches no one; the photo goes to B alone, which pulls its blob: path is B's
 * copy, for the test to damage. */
static void relay_holds_it(char room[64], char blob[65], long long *size, char path[512])
{
    three_with_c_cut_off(room, blob, size);
    wait_here(1, room, blob);
    snprintf(path, 512, "%s/blobs/%.2s/%s", net.s[1].d.dir, blob, blob);
}

/* The origin comes back to C: C fetches the blob whole from it (wait_here checks its hash). */
static void origin_heals_and_c_has_it(const char *room, const char *blob)
{
    fednet_cut(&net, 0, 2, false);
    wait_here(2, room, blob);
    char from[96];
    snprintf(from, sizeof from, "source=%s", net.s[0].id);
    cr_assert_eq(log_lines(2, "blob_fetched", from, NULL, NULL), 1,
                 "the good copy came from the origin");
}

Test(fed_blobs, a_blob_tampered_on_a_relay_is_refused_and_fetched_again_from_the_origin)
{
    char room[64], blob[65], path[512];
    long long size;
    relay_holds_it(room, blob, &size, path);
    /* B's copy is damaged on its disk: one byte in the middle. */
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0, "%s", path);
    unsigned char byte;
    cr_assert_eq(pread(fd, &byte, 1, size / 2), 1);
    byte ^= 0x5a;
    cr_assert_eq(pwrite(fd, &byte, 1, size / 2), 1);
    close(fd);
    /* C reaches B only: the photo's event comes relayed, its bytes from B fail the check. */
    fednet_cut(&net, 1, 2, false);
    long long t0 = mono_ms();
    struct bstat b;
    for (;; pause_ms(POLL_MS)) {
        status(2, room, blob, &b);
        if (!strcmp(b.state, "failed"))
            break;
        cr_assert_lt(mono_ms() - t0, DEADLINE_MS, "C never refused B's bytes: %s %s", b.state,
                     b.why);
    }
    cr_assert(strstr(b.why, "integrity") && strstr(b.why, net.s[1].id), "%s", b.why);
    bool same = true;
    char body[512];
    cr_assert_eq(download(2, blob, &same, body, sizeof body), 503, "%s", body);
    cr_assert(strstr(body, "\"blob_failed\"") && strstr(body, net.s[1].id), "%s", body);
    cr_assert_eq(log_lines(2, "blob_integrity_failed", net.s[1].id, NULL, NULL), 1);
    cr_assert_eq(KZ(2, "login", users[2]), 0, "%s", out);
    cr_assert_eq(KZ(2, "photo", "list", room), 0, "%s", out);
    char said[160];
    snprintf(said, sizeof said, "blob: failed its integrity check (from server %s)", net.s[1].id);
    cr_assert(strstr(out, said), "%s", out);
    origin_heals_and_c_has_it(room, blob);
}

Test(fed_blobs, a_blob_cut_short_on_a_relay_is_never_served_short_and_comes_from_the_origin)
{
    char room[64], blob[65], path[512];
    long long size;
    relay_holds_it(room, blob, &size, path);
    /* B's copy is cut short on its disk after B had it whole: its blobs row still says size. */
    long long cut = size / 2 + 1000;
    cr_assert_eq(truncate(path, cut), 0, "%s", path);
    /* C reaches B only. B serves the bytes it has and says blob.none for the part its file
     * lacks, never short or made-up bytes; C keeps what it took and waits for another source. */
    fednet_cut(&net, 1, 2, false);
    wait_log(1, "blob_serve_io", "short file");
    wait_log(2, "the source does not serve it", blob);
    struct bstat b;
    status(2, room, blob, &b);
    long long from_b = b.have;
    fprintf(stderr, "FIG fed_blobs: B's copy cut to %lld of %lld bytes; C took %lld from B\n", cut,
            size, from_b);
    cr_assert_str_eq(b.state, "waiting", "%s %s", b.state, b.why);
    cr_assert_leq(b.have, cut, "C took nothing past the end of B's file");
    cr_assert_eq(b.total, size, "B said the blob's whole size");
    cr_assert_eq(log_lines(2, "blob_integrity_failed", NULL, NULL, NULL), 0,
                 "C never assembled a short blob");
    bool same = true;
    char body[512];
    cr_assert_eq(download(2, blob, &same, body, sizeof body), 503, "%s", body);
    cr_assert(strstr(body, "\"blob_not_here\""), "%s", body);
    status(1, room, blob, &b);
    cr_assert_str_eq(b.state, "here", "B goes on serving (its clients' downloads are its own)");
    /* The origin comes back: C resumes from what B gave (those bytes were right) and the whole
     * hashes to the id. */
    origin_heals_and_c_has_it(room, blob);
    cr_assert_eq(last_start_offset(2, blob), from_b, "the origin continued from B's bytes");
}

Test(fed_blobs, messages_sent_after_a_large_photo_arrive_before_its_blob)
{
    start(2, "\"federation_blob_chunk_bytes\":8192,\"federation_blob_bytes_per_s\":32768");
    char room[64], blob[65];
    long long size;
    share(2, room);
    long long t_send = mono_ms();
    send_photo(room, blob, &size);
    for (int k = 1; k <= 3; k++) {
        char text[64];
        snprintf(text, sizeof text, "after-the-photo-%d", k);
        cr_assert_eq(KZ(0, "send", room, text), 0, "%s", out);
    }
    struct ws w;
    char tok[80];
    user_ws(1, &w, tok);
    long long t0 = mono_ms();
    for (;; pause_ms(POLL_MS)) {
        cJSON *r = ws_callf(&w, "\"op\":\"history\",\"room\":\"%s\"", room);
        char *text = cJSON_PrintUnformatted(r);
        bool all = strstr(text, "after-the-photo-3") != NULL;
        free(text);
        cJSON_Delete(r);
        if (all)
            break;
        cr_assert_lt(mono_ms() - t0, DEADLINE_MS, "the messages never reached B");
    }
    ws_close_fd(&w);
    struct bstat b;
    status(1, room, blob, &b);
    fprintf(stderr,
            "FIG fed_blobs: 32 KiB/s cap: the three messages reached B after %lld ms, with %lld of "
            "%lld bytes of the photo's blob there\n",
            mono_ms() - t0, b.have, size);
    cr_assert_neq(strcmp(b.state, "here"), 0, "the blob did not hold the messages back");
    cr_assert_lt(b.have, size);
    /* And the cap holds: the blob takes about size / 32 KiB/s (the first part goes at once). */
    wait_here(1, room, blob);
    long long took = mono_ms() - t_send;
    long long floor_ms = (size - 8192) * 1000 / 32768 * 8 / 10;
    fprintf(stderr,
            "FIG fed_blobs: 32 KiB/s cap: the %lld-byte blob took %lld ms (at least %lld)\n", size,
            took, floor_ms);
    cr_assert_geq(took, floor_ms, "the bandwidth cap held");
}

/* The bytes of server i's partial blob files together. */
static long long staged_bytes(int i)
{
    char dir[320];
    snprintf(dir, sizeof dir, "%s/fedblobs", net.s[i].d.dir);
    DIR *d = opendir(dir);
    long long sum = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        struct stat st;
        if (e->d_name[0] != '.' && fstatat(dirfd(d), e->d_name, &st, 0) == 0)
            sum += st.st_size;
    }
    if (d)
        closedir(d);
    return sum;
}

/* Where a line with both a and b first is in server i's log (-1: none). */
static long long log_at(int i, const char *a, const char *b)
{
    char *log = log_of(i);
    long long at = -1;
    for (char *p = log; at < 0 && (p = strstr(p, a)); p++) {
        char *eol = strchr(p, '\n');
        if (eol)
            *eol = '\0';
        if (strstr(p, b))
            at = p - log;
        if (eol)
            *eol = '\n';
    }
    free(log);
    return at;
}

/* Room for one 323,137-byte photo blob (the one send_photo makes) and its next part, not two. */
#define STAGING_CAP 524288

Test(fed_blobs, a_second_blob_waits_for_staging_space_while_the_first_is_fetched_then_follows)
{
    /* B (server 1) pulls A's photo from A and C's from C, over two slow links at once, with
     * staging space for one blob at a time. */
    start(3, "\"federation_blob_chunk_bytes\":16384,\"federation_blob_bytes_per_s\":32768,"
             "\"federation_blob_staging_bytes\":524288");
    char room[64], first[65], second[65];
    long long size1, size2;
    share(3, room);
    cr_assert_eq(KZ(2, "login", users[2]), 0, "%s", out);
    send_photo(room, first, &size1);
    send_photo_on(2, room, second, &size2);
    cr_assert(size1 + 16384 <= STAGING_CAP && size2 + 16384 <= STAGING_CAP &&
                  size1 + size2 > STAGING_CAP,
              "the photos (%lld and %lld bytes) fit the test's bound", size1, size2);
    /* The second waits, and says why, while the first is on its way. */
    long long t0 = mono_ms(), peak = 0;
    struct bstat a, b;
    for (;; pause_ms(POLL_MS)) {
        long long staged = staged_bytes(1);
        peak = staged > peak ? staged : peak;
        cr_assert_leq(staged, STAGING_CAP, "the partial files hold %lld bytes", staged);
        status(1, room, second, &b);
        if (!strcmp(b.state, "waiting") && strstr(b.why, "waiting: staging full"))
            break;
        cr_assert_lt(mono_ms() - t0, DEADLINE_MS, "the second blob never waited for space: %s %s",
                     b.state, b.why);
    }
    status(1, room, first, &a);
    cr_assert_str_eq(a.state, "fetching", "the first is fetched meanwhile: %s %s", a.state, a.why);
    bool same = true;
    char body[512];
    cr_assert_eq(download(1, second, &same, body, sizeof body), 503, "%s", body);
    cr_assert(strstr(body, "\"blob_not_here\"") && strstr(body, "staging full"), "%s", body);
    /* Both arrive, the second once the first is in place; the bound holds all along. */
    for (;; pause_ms(POLL_MS)) {
        long long staged = staged_bytes(1);
        peak = staged > peak ? staged : peak;
        cr_assert_leq(staged, STAGING_CAP, "the partial files hold %lld bytes", staged);
        status(1, room, second, &b);
        if (!strcmp(b.state, "here"))
            break;
        cr_assert_lt(mono_ms() - t0, DEADLINE_MS, "the second blob never came: %s %lld/%lld %s",
                     b.state, b.have, b.total, b.why);
    }
    wait_here(1, room, first);
    wait_here(1, room, second);
    char blob_is[96];
    snprintf(blob_is, sizeof blob_is, "blob=%s", first);
    long long done1 = log_at(1, "blob_fetched", blob_is);
    snprintf(blob_is, sizeof blob_is, "blob=%s", second);
    long long waited = log_at(1, "blob_fetch_stop", "waiting: staging full");
    long long fetched2 = log_at(1, "blob_fetched", blob_is);
    cr_assert(done1 >= 0 && waited >= 0 && fetched2 > done1, "the second came after the first");
    fprintf(stderr,
            "FIG fed_blobs: staging bound %d: blobs of %lld and %lld bytes one after the other; "
            "the partial files peaked at %lld bytes\n",
            STAGING_CAP, size1, size2, peak);
}

Test(fed_blobs, a_link_cut_mid_blob_hands_it_to_another_source_at_once)
{
    /* Housekeeping once a minute, nothing on B commits after the cut, no pacing, and 400 ms
     * each way between A and B, so that a blob.get is in flight when the link dies and the
     * blob timer waits for its 30 s timeout: only the link's end can start the switch soon. */
    start(3, "\"federation_blob_chunk_bytes\":16384,\"federation_blob_bytes_per_s\":0,"
             "\"housekeeping_interval_s\":60");
    struct fp_faults slow = {.dir = {{.delay_ms = 400}, {.delay_ms = 400}}};
    fp_set(net.proxy[0][1], &slow);
    fp_set(net.proxy[1][0], &slow);
    char room[64], blob[65];
    long long size;
    share(3, room);
    fednet_isolate(&net, 1, true);
    fednet_wait_down(&net, 0, 1, DEADLINE_MS);
    fednet_wait_down(&net, 2, 1, DEADLINE_MS);
    send_photo(room, blob, &size);
    wait_here(2, room, blob);
    /* B reaches the origin first, then C too; it fetches from the origin. */
    fednet_cut(&net, 0, 1, false);
    struct bstat b;
    wait_partial(1, room, blob, 2 * 16384, &b);
    fednet_cut(&net, 1, 2, false);
    fednet_wait_links(&net, DEADLINE_MS);
    char from_c[96];
    snprintf(from_c, sizeof from_c, "source=%s", net.s[2].id);
    cr_assert_eq(log_lines(1, "blob_fetch_start", from_c, NULL, NULL), 0, "B fetches from A");
    long long t0 = mono_ms();
    fednet_cut(&net, 0, 1, true);
    while (log_lines(1, "blob_fetch_start", from_c, NULL, NULL) == 0) {
        cr_assert_lt(mono_ms() - t0, 5000, "B did not turn to C within 5 s of the cut");
        pause_ms(20);
    }
    long long took = mono_ms() - t0;
    fprintf(stderr, "FIG fed_blobs: a cut mid-blob: B asked C %lld ms after the cut\n", took);
    wait_here(1, room, blob);
    long long received = 0, last = 0;
    log_lines(1, "blob_fetch_stop", blob, "received=", &received);
    log_lines(1, "blob_fetched", blob, "received=", &last);
    cr_assert_eq(received + last, size, "no byte twice: %lld + %lld of %lld", received, last, size);
}

Test(fed_blobs, a_server_removed_from_the_room_is_answered_blob_none)
{
    char room[64], blob[65];
    long long size;
    three_with_c_cut_off(room, blob, &size);
    cJSON *r = fednet_admin(&net, 0,
                            "\"op\":\"room.server\",\"room\":\"%s\",\"server\":\"%s\","
                            "\"admitted\":false",
                            room, net.s[2].id);
    cr_assert_str_eq(reply_code(r), "ok", "room.server remove");
    cJSON_Delete(r);
    wait_here(1, room, blob);
    /* C takes the room's logs up to its removal, the photo among them, and asks for its blob:
     * neither A nor B serves a server that is no longer a member. */
    fednet_isolate(&net, 2, false);
    char who[96];
    snprintf(who, sizeof who, "peer=%s", net.s[2].id);
    wait_log(0, "blob_serve_none", who);
    cr_assert_eq(log_lines(2, "blob_fetched", blob, NULL, NULL), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/blobs/%.2s/%s", net.s[2].d.dir, blob, blob);
    cr_assert_neq(access(path, F_OK), 0, "the removed server holds no copy");
}
