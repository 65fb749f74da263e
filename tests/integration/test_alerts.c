/* test_alerts.c - roll-calls started by JMA's telegrams (issue 25, docs/alerts.md) against the
 * real kizunad, with a local HTTP server in this test standing in for JMA: it serves an Atom
 * feed (ETag, 304 for If-None-Match) and telegram documents written to JMA's schema, counts
 * every request per path, and can misbehave (errors, garbage, huge, empty, silent). */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define TOWN      "0420200" /* 石巻市 */
#define OTHERTOWN "0320900" /* 一関市 (岩手県): not configured */

/* ---- the stand-in for JMA ---- */

enum feed_mode { FEED_OK, FEED_500, FEED_GARBAGE, FEED_HUGE, FEED_EMPTY, FEED_SILENT };

#define DOCS_MAX 32
static struct {
    pthread_mutex_t mu;
    int fd, port;
    volatile int stop;
    pthread_t thread;
    enum feed_mode mode;
    int version; /* the feed's ETag */
    int ndocs;
    struct {
        char name[32];
        char title[64];
        char *body;
        int fetched;
    } docs[DOCS_MAX];
    int feed_requests, feed_304, conditional;
} js = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void reply(int fd, int status, const char *etag, const char *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d X\r\nContent-Type: application/xml\r\nContent-Length: %zu\r\n"
                     "%s%s%sConnection: close\r\n\r\n",
                     status, len, etag ? "ETag: \"" : "", etag ? etag : "", etag ? "\"\r\n" : "");
    send_all(fd, head, (size_t)n);
    send_all(fd, body, len);
}

/* The feed, newest entry first, as JMA lists them. The caller frees it. */
static char *feed_text(void)
{
    size_t cap = 4096 + (size_t)js.ndocs * 512, n = 0;
    char *f = malloc(cap);
    n += (size_t)snprintf(f + n, cap - n,
                          "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed "
                          "xmlns=\"http://www.w3.org/2005/Atom\" lang=\"ja\"><title>高頻度（地震"
                          "火山）</title><updated>2026-11-30T03:09:55+09:00</updated>\n");
    for (int i = js.ndocs - 1; i >= 0; i--)
        n += (size_t)snprintf(f + n, cap - n,
                              "<entry><title>%s</title><id>urn:uuid:test-%s</id><updated>2026-11-"
                              "29T18:09:52Z</updated><author><name>気象庁</name></author><link "
                              "type=\"application/xml\" href=\"http://127.0.0.1:%d/data/%s.xml\"/>"
                              "<content type=\"text\">x</content></entry>\n",
                              js.docs[i].title, js.docs[i].name, js.port, js.docs[i].name);
    snprintf(f + n, cap - n, "</feed>\n");
    return f;
}

static void serve_one(int fd)
{
    char req[4096];
    size_t len = 0;
    struct pollfd p = {fd, POLLIN, 0};
    while (len < sizeof req - 1 && poll(&p, 1, 2000) > 0) {
        ssize_t r = recv(fd, req + len, sizeof req - 1 - len, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    req[len] = '\0';
    char path[256] = "";
    sscanf(req, "GET %255s", path);
    pthread_mutex_lock(&js.mu);
    if (strcmp(path, "/feed.xml") == 0) {
        js.feed_requests++;
        char etag[32];
        snprintf(etag, sizeof etag, "v%d", js.version);
        char inm[64];
        snprintf(inm, sizeof inm, "If-None-Match: \"%s\"", etag);
        bool cond = strstr(req, "If-None-Match:") != NULL;
        js.conditional += cond;
        switch (js.mode) {
        case FEED_OK:
            if (strstr(req, inm)) {
                js.feed_304++;
                reply(fd, 304, etag, "", 0);
            } else {
                char *f = feed_text();
                reply(fd, 200, etag, f, strlen(f));
                free(f);
            }
            break;
        case FEED_500:
            reply(fd, 500, NULL, "oops", 4);
            break;
        case FEED_GARBAGE: {
            const char *g = "<feed><entry><id>x</id><link href=\"\x01\"<<<&&&;\xff\xfe</feed";
            reply(fd, 200, NULL, g, strlen(g));
            break;
        }
        case FEED_HUGE: {
            size_t n = 3 << 20;
            char *h = malloc(n);
            memset(h, 'A', n);
            memcpy(h, "<feed>", 6);
            reply(fd, 200, NULL, h, n);
            free(h);
            break;
        }
        case FEED_EMPTY:
            reply(fd, 200, NULL, "", 0);
            break;
        case FEED_SILENT:
            break; /* the connection closes with no answer */
        }
    } else {
        bool found = false;
        for (int i = 0; i < js.ndocs; i++) {
            char want[64];
            snprintf(want, sizeof want, "/data/%s.xml", js.docs[i].name);
            if (strcmp(path, want) == 0) {
                js.docs[i].fetched++;
                reply(fd, 200, NULL, js.docs[i].body, strlen(js.docs[i].body));
                found = true;
            }
        }
        if (!found)
            reply(fd, 404, NULL, "no", 2);
    }
    pthread_mutex_unlock(&js.mu);
}

static void *jma_main(void *arg)
{
    (void)arg;
    while (!js.stop) {
        struct pollfd p = {js.fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int c = accept(js.fd, NULL, NULL);
        if (c < 0)
            continue;
        serve_one(c);
        close(c);
    }
    return NULL;
}

static void jma_start(void)
{
    js.fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    cr_assert(bind(js.fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(js.fd, 16) == 0);
    getsockname(js.fd, (struct sockaddr *)&a, &al);
    js.port = ntohs(a.sin_port);
    js.stop = 0;
    cr_assert_eq(pthread_create(&js.thread, NULL, jma_main, NULL), 0);
}

static void jma_stop(void)
{
    js.stop = 1;
    pthread_join(js.thread, NULL);
    close(js.fd);
    for (int i = 0; i < js.ndocs; i++)
        free(js.docs[i].body);
    js.ndocs = 0;
}

/* The ReportDateTime of the telegrams made next: NULL is now (kizunad refuses old ones,
 * jma_max_age_s). */
static const char *report_time;
/* The next telegrams' city has no MaxInt but 「震度５弱以上未入電」 (its meter did not report). */
static bool not_received;

/* Now in JST, as JMA writes times. Static buffer. */
static const char *report_now(void)
{
    static char buf[40];
    if (report_time)
        return report_time;
    time_t t = time(NULL) + 9 * 3600;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S+09:00", &tm);
    return buf;
}

/* A document listed in the feed under title (body: malloc'd, now the stand-in's). */
static void add_doc(const char *name, const char *title, char *body)
{
    pthread_mutex_lock(&js.mu);
    cr_assert_lt(js.ndocs, DOCS_MAX);
    snprintf(js.docs[js.ndocs].name, sizeof js.docs[0].name, "%s", name);
    snprintf(js.docs[js.ndocs].title, sizeof js.docs[0].title, "%s", title);
    js.docs[js.ndocs].body = body;
    js.docs[js.ndocs].fetched = 0;
    js.ndocs++;
    js.version++;
    pthread_mutex_unlock(&js.mu);
}

/* A 津波警報・注意報・予報a (VTSE41) for one forecast region. */
static void add_tsunami(const char *name, const char *event, const char *area,
                        const char *kind_code, const char *kind_name)
{
    char *b = malloc(4096);
    snprintf(b, 4096,
             "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
             "<Report xmlns=\"http://xml.kishou.go.jp/jmaxml1/\">"
             "<Control><Title>津波警報・注意報・予報a</Title><DateTime>2026-11-29T18:06:00Z"
             "</DateTime><Status>通常</Status><EditorialOffice>気象庁本庁</EditorialOffice>"
             "<PublishingOffice>気象庁</PublishingOffice></Control>"
             "<Head xmlns=\"http://xml.kishou.go.jp/jmaxml1/informationBasis1/\">"
             "<Title>津波警報・津波注意報・津波予報</Title>"
             "<ReportDateTime>%s</ReportDateTime>"
             "<TargetDateTime>2026-11-30T03:06:00+09:00</TargetDateTime><EventID>%s</EventID>"
             "<InfoType>発表</InfoType><Serial></Serial><InfoKind>津波警報・注意報・予報</InfoKind>"
             "<InfoKindVersion>1.0_1</InfoKindVersion><Headline><Text>t</Text></Headline></Head>"
             "<Body xmlns=\"http://xml.kishou.go.jp/jmaxml1/body/seismology1/\"><Tsunami><Forecast>"
             "<Item><Area><Name>宮城県</Name><Code>%s</Code></Area><Category><Kind><Name>%s</Name>"
             "<Code>%s</Code></Kind><LastKind><Name>津波なし</Name><Code>00</Code></LastKind>"
             "</Category></Item></Forecast></Tsunami></Body></Report>\n",
             report_now(), event, area, kind_name, kind_code);
    add_doc(name, "津波警報・注意報・予報a", b);
}

/* A 気象特別警報・警報・注意報 (VPWW53) with one kind for one town (no EventID, as JMA's). */
static void add_warning(const char *name, const char *town, const char *kind, const char *status)
{
    char *b = malloc(4096);
    snprintf(b, 4096,
             "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
             "<Report xmlns=\"http://xml.kishou.go.jp/jmaxml1/\">"
             "<Control><Title>気象特別警報・警報・注意報</Title><DateTime>2026-07-10T20:00:00Z"
             "</DateTime><Status>通常</Status><EditorialOffice>仙台管区気象台</EditorialOffice>"
             "<PublishingOffice>仙台管区気象台</PublishingOffice></Control>"
             "<Head xmlns=\"http://xml.kishou.go.jp/jmaxml1/informationBasis1/\">"
             "<Title>宮城県気象警報・注意報</Title>"
             "<ReportDateTime>%s</ReportDateTime>"
             "<TargetDateTime>2026-07-11T05:00:00+09:00</TargetDateTime><EventID></EventID>"
             "<InfoType>発表</InfoType><Serial></Serial><InfoKind>気象警報・注意報</InfoKind>"
             "<InfoKindVersion>1.2_1</InfoKindVersion><Headline><Text>w</Text></Headline></Head>"
             "<Body xmlns=\"http://xml.kishou.go.jp/jmaxml1/body/meteorology1/\">"
             "<Warning type=\"気象警報・注意報（市町村等）\"><Item><Kind><Name>%s</Name>"
             "<Code>33</Code><Status>%s</Status></Kind><Area><Name>町</Name><Code>%s</Code>"
             "</Area></Item></Warning></Body></Report>\n",
             report_now(), kind, status, town);
    add_doc(name, "気象特別警報・警報・注意報", b);
}

/* A 震源・震度に関する情報 (VXSE53) with one city's intensity, or a 取消 of the event. */
static void add_quake(const char *name, const char *status, const char *info, const char *event,
                      const char *serial, const char *city, const char *maxint)
{
    char *b = malloc(8192);
    snprintf(
        b, 8192,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<Report xmlns=\"http://xml.kishou.go.jp/jmaxml1/\">"
        "<Control><Title>震源・震度に関する情報</Title><DateTime>2026-11-29T18:09:52Z</DateTime>"
        "<Status>%s</Status><EditorialOffice>気象庁本庁</EditorialOffice>"
        "<PublishingOffice>気象庁</PublishingOffice></Control>"
        "<Head xmlns=\"http://xml.kishou.go.jp/jmaxml1/informationBasis1/\">"
        "<Title>震源・震度情報</Title><ReportDateTime>%s</ReportDateTime>"
        "<TargetDateTime>2026-11-30T03:09:00+09:00</TargetDateTime><EventID>%s</EventID>"
        "<InfoType>%s</InfoType><Serial>%s</Serial><InfoKind>地震情報</InfoKind>"
        "<InfoKindVersion>1.0_1</InfoKindVersion><Headline><Text>地震がありました。</Text>"
        "</Headline></Head>"
        "<Body xmlns=\"http://xml.kishou.go.jp/jmaxml1/body/seismology1/\" "
        "xmlns:jmx_eb=\"http://xml.kishou.go.jp/jmaxml1/elementBasis1/\">"
        "<Earthquake><OriginTime>2026-11-30T03:03:00+09:00</OriginTime>"
        "<Hypocenter><Area><Name>宮城県沖</Name><Code type=\"震央地名\">287</Code></Area>"
        "</Hypocenter><jmx_eb:Magnitude type=\"Mj\" description=\"Ｍ６．８\">6.8"
        "</jmx_eb:Magnitude></Earthquake>"
        "<Intensity><Observation><MaxInt>%s</MaxInt><Pref><Name>県</Name><Code>%.2s</Code>"
        "<MaxInt>%s</MaxInt><Area><Name>地域</Name><Code>220</Code><MaxInt>%s</MaxInt>"
        "<City><Name>町</Name><Code>%s</Code><MaxInt>%s</MaxInt></City></Area></Pref>"
        "</Observation></Intensity></Body></Report>\n",
        status, report_now(), event, info, serial, maxint, city, maxint, maxint, city, maxint);
    if (not_received) {
        char *m = strstr(strstr(b, "<City>"), "</Code><MaxInt>"), *e = strstr(b, "</City>");
        cr_assert(m && e && m < e);
        const char *cond = "</Code><Condition>震度５弱以上未入電</Condition>";
        memmove(m + strlen(cond), e, strlen(e) + 1);
        memcpy(m, cond, strlen(cond));
    }
    add_doc(name, "震源・震度に関する情報", b);
}

static int fetched(const char *name)
{
    int n = -1;
    pthread_mutex_lock(&js.mu);
    for (int i = 0; i < js.ndocs; i++)
        if (strcmp(js.docs[i].name, name) == 0)
            n = js.docs[i].fetched;
    pthread_mutex_unlock(&js.mu);
    return n;
}

static int feed_requests(void)
{
    pthread_mutex_lock(&js.mu);
    int n = js.feed_requests;
    pthread_mutex_unlock(&js.mu);
    return n;
}

static void set_mode(enum feed_mode m)
{
    pthread_mutex_lock(&js.mu);
    js.mode = m;
    pthread_mutex_unlock(&js.mu);
}

/* ---- kizunad with users, an HQ room and the stand-in as its feed ---- */

static struct kzd d;
static struct ws admin;
static char hq_room[64];

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void add_user(const char *login, const char *dept, const char *role)
{
    cJSON *r = ws_callf(&admin,
                        "\"op\":\"user.add\",\"login\":\"%s\",\"password\":\"%s" TEST_PW_SUFFIX
                        "\",\"department\":\"%s\",\"role\":\"%s\"",
                        login, login, dept, role);
    cr_assert_str_eq(reply_code(r), "ok", "user.add %s", login);
    cJSON_Delete(r);
}

static void setup(void)
{
    jma_start();
    char extra[1024];
    snprintf(extra, sizeof extra,
             "\"jma_feeds\":\"http://127.0.0.1:%d/feed.xml\",\"jma_poll_s\":1,"
             "\"jma_fetch_timeout_s\":2,\"jma_backoff_max_s\":2,\"jma_towns\":\"" TOWN "\","
             "\"jma_pref_min_int\":\"\",\"jma_delay_s\":3,\"jma_author\":\"honbu\","
             "\"jma_max_doc_bytes\":65536",
             js.port);
    kzd_setup_with(&d, extra);
    cr_assert(ws_open(&admin, d.port));
    cr_assert(ws_login(&admin, "admin", TEST_ADMIN_PASSWORD, NULL));
    add_user("honbu", "本部", "hq");
    add_user("soumu1", "総務課", "staff");
    add_user("kensetsu1", "建設課", "staff");
    /* The HQ room, then a restart with it in jma_hq_room (a room's id exists only once made). */
    struct ws hq;
    cr_assert(ws_open(&hq, d.port));
    cr_assert(ws_login(&hq, "honbu", "honbu" TEST_PW_SUFFIX, NULL));
    cJSON *r = ws_callf(&hq, "\"op\":\"room.create\",\"name\":\"災害対策本部\",\"members\":[]");
    cr_assert_str_eq(reply_code(r), "ok");
    reply_room(r, hq_room, sizeof hq_room);
    cJSON_Delete(r);
    ws_close_fd(&hq);
    ws_close_fd(&admin);
    cr_assert_eq(kzd_stop(&d), 0);
    FILE *f = fopen(d.config, "r+");
    cr_assert_not_null(f);
    char cfg[8192];
    size_t n = fread(cfg, 1, sizeof cfg - 1, f);
    cfg[n] = '\0';
    char *end = strrchr(cfg, '}');
    cr_assert_not_null(end);
    snprintf(end, sizeof cfg - (size_t)(end - cfg), ",\"jma_hq_room\":\"%s\"}\n", hq_room);
    rewind(f);
    fputs(cfg, f);
    fclose(f);
    kzd_start(&d);
    cr_assert(ws_open(&admin, d.port));
    cr_assert(ws_login(&admin, "admin", TEST_ADMIN_PASSWORD, NULL));
}

static void teardown(void)
{
    ws_close_fd(&admin);
    kzd_teardown(&d);
    jma_stop();
}

TestSuite(alerts, .init = setup, .fini = teardown, .timeout = 180);

static cJSON *alerts(void)
{
    cJSON *r = ws_callf(&admin, "\"op\":\"alert.list\"");
    cr_assert_str_eq(reply_code(r), "ok");
    return r;
}

static int alert_count(void)
{
    cJSON *r = alerts();
    int n = cJSON_GetArraySize(cJSON_GetObjectItem(r, "alerts"));
    cJSON_Delete(r);
    return n;
}

/* Alert id's state ("pending", "sent", "cancelled"). */
static void alert_state(long long id, char *out, size_t n)
{
    cJSON *r = ws_callf(&admin, "\"op\":\"alert.show\",\"alert\":%lld", id);
    cr_assert_str_eq(reply_code(r), "ok", "alert.show %lld", id);
    snprintf(out, n, "%s",
             cJSON_GetObjectItem(cJSON_GetObjectItem(r, "alert"), "state")->valuestring);
    cJSON_Delete(r);
}

static void wait_fetched(const char *name)
{
    long long until = mono_ms() + 20000;
    while (fetched(name) < 1 && mono_ms() < until)
        sleep_ms(50);
    cr_assert_eq(fetched(name), 1, "telegram %s fetched once", name);
    /* Its telegram is handled in the loop turn that took the reply: one call later it shows. */
    cJSON_Delete(alerts());
}

static void wait_state(long long id, const char *want)
{
    char state[32] = "";
    long long until = mono_ms() + 20000;
    for (; mono_ms() < until; sleep_ms(100)) {
        alert_state(id, state, sizeof state);
        if (strcmp(state, want) == 0)
            return;
    }
    cr_assert_fail("alert %lld is %s, not %s", id, state, want);
}

/* The notices staff member login can see, as notice.list gives them. */
static cJSON *notices_of(const char *login)
{
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    char pw[64];
    snprintf(pw, sizeof pw, "%s" TEST_PW_SUFFIX, login);
    cr_assert(ws_login(&w, login, pw, NULL));
    cJSON *r = ws_callf(&w, "\"op\":\"notice.list\"");
    cr_assert_str_eq(reply_code(r), "ok");
    ws_close_fd(&w);
    return r;
}

static bool hq_room_has(const char *needle)
{
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    cr_assert(ws_login(&w, "honbu", "honbu" TEST_PW_SUFFIX, NULL));
    cJSON *r = ws_callf(&w, "\"op\":\"history\",\"room\":\"%s\",\"limit\":100", hq_room);
    char *t = cJSON_PrintUnformatted(r);
    bool has = t && strstr(t, needle);
    free(t);
    cJSON_Delete(r);
    ws_close_fd(&w);
    return has;
}

/* Runs kizuna as login (the CLI, as HQ uses it); stdout and stderr into out. */
static int kizuna(const char *login, char *out, size_t n, ...)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/cli-%s", d.dir, login);
    struct kz_device dev = {.server_url = d.url,
                            .config_dir = dir,
                            .user = login,
                            .retry_max_s = 5,
                            .merge_stderr = true};
    va_list ap;
    va_start(ap, n);
    int rc = kz_device_run(&dev, NULL, out, n, ap);
    va_end(ap);
    return rc;
}
#define KZ(login, ...) kizuna(login, out, sizeof out, __VA_ARGS__, (const char *)NULL)

Test(alerts, quake_in_town_sends_roll_call_once_after_delay)
{
    add_quake("q1s1", "通常", "発表", "20261130030312", "1", TOWN, "6-");
    wait_fetched("q1s1");
    cJSON *r = alerts();
    cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "alerts"), 0);
    cr_assert_not_null(a, "a 震度6弱 in the town opens an alert");
    long long id = (long long)cJSON_GetObjectItem(a, "id")->valuedouble;
    cr_assert_str_eq(cJSON_GetObjectItem(a, "state")->valuestring, "pending", "the delay first");
    cr_assert_gt(cJSON_GetObjectItem(a, "due_at")->valuedouble,
                 cJSON_GetObjectItem(r, "now")->valuedouble - 1, "a countdown");
    cJSON_Delete(r);
    cr_assert(hq_room_has("アラート"), "HQ's room shows the alert at once");
    cr_assert(hq_room_has("震度6弱"), "with the town's intensity");
    cr_assert(ws_audit_has(&admin, "jma.matched", "alert:1"));

    /* The same event's next serial: one event, nothing more. */
    add_quake("q1s2", "通常", "発表", "20261130030312", "2", TOWN, "6-");
    wait_fetched("q1s2");
    cr_assert_eq(alert_count(), 1);
    wait_state(id, "sent");
    cr_assert(ws_audit_has(&admin, "jma.sent", "alert:1"));
    cr_assert(ws_audit_has(&admin, "jma.duplicate", "alert:1"));
    cJSON *n = notices_of("soumu1");
    cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(n, "notices"), 0);
    cr_assert_not_null(first, "the roll-call reached staff");
    cr_assert(strstr(cJSON_GetObjectItem(first, "title")->valuestring, "安否確認"));
    long long notice = (long long)cJSON_GetObjectItem(first, "id")->valuedouble;
    cJSON_Delete(n);
    /* A staff member answers from the CLI; the report is the notice's own. */
    char out[8192], nid[32];
    snprintf(nid, sizeof nid, "%lld", notice);
    cr_assert_eq(KZ("kensetsu1", "login", "kensetsu1"), 0, "%s", out);
    cr_assert_eq(KZ("kensetsu1", "notice", "respond", nid, "1"), 0, "%s", out);
    cJSON *rr;
    rr = ws_callf(&admin, "\"op\":\"notice.report\",\"notice\":%lld", notice);
    cr_assert_str_eq(reply_code(rr), "ok");
    char *rt = cJSON_PrintUnformatted(rr);
    cr_assert(strstr(rt, "無事・出勤可") && strstr(rt, "建設課"), "%s", rt);
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(rr, "totals"), "responded")->valuedouble,
                 1, "%s", rt);
    free(rt);
    cJSON_Delete(rr);
    cr_assert(hq_room_has("送信しました"));

    /* Another town, even stronger: nothing. */
    add_quake("q2", "通常", "発表", "20261130040000", "1", OTHERTOWN, "6+");
    wait_fetched("q2");
    cr_assert_eq(alert_count(), 1);
    /* A weaker aftershock in the town within the window: nothing. */
    add_quake("q3", "通常", "発表", "20261130050000", "1", TOWN, "5+");
    wait_fetched("q3");
    cr_assert_eq(alert_count(), 1);
    cr_assert(ws_audit_has(&admin, "jma.suppressed", "alert:1"));
    /* A stronger one: sends again. */
    add_quake("q4", "通常", "発表", "20261130060000", "1", TOWN, "6+");
    wait_fetched("q4");
    cr_assert_eq(alert_count(), 2);
    wait_state(2, "sent");
    n = notices_of("soumu1");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(n, "notices")), 2);
    cJSON_Delete(n);

    /* A restart fetches nothing again, however many polls follow. */
    ws_close_fd(&admin);
    cr_assert_eq(kzd_stop(&d), 0);
    int polls = feed_requests();
    kzd_start(&d);
    cr_assert(ws_open(&admin, d.port));
    cr_assert(ws_login(&admin, "admin", TEST_ADMIN_PASSWORD, NULL));
    long long until = mono_ms() + 20000;
    while (feed_requests() < polls + 3 && mono_ms() < until)
        sleep_ms(50);
    cr_assert_geq(feed_requests(), polls + 3);
    const char *names[] = {"q1s1", "q1s2", "q2", "q3", "q4"};
    for (size_t i = 0; i < 5; i++)
        cr_expect_eq(fetched(names[i]), 1, "%s fetched once", names[i]);
    pthread_mutex_lock(&js.mu);
    cr_expect_gt(js.conditional, 0, "polls are conditional");
    cr_expect_gt(js.feed_304, 0, "an unchanged feed is a 304");
    pthread_mutex_unlock(&js.mu);
    cr_assert_eq(alert_count(), 2);
}

Test(alerts, cancellation_drill_and_hq_hands)
{
    char out[16384], state[32];
    /* 訓練 does nothing while drill mode is off; 試験 never. */
    add_quake("d1", "訓練", "発表", "20261201000000", "1", TOWN, "6-");
    add_quake("t1", "試験", "発表", "20261201000001", "1", TOWN, "7");
    wait_fetched("d1");
    wait_fetched("t1");
    cr_assert_eq(alert_count(), 0);
    cJSON *au = ws_callf(&admin, "\"op\":\"audit.list\",\"action\":\"jma.suppressed\"");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(au, "entries")), 2, "drill and test");
    cJSON_Delete(au);

    /* Drill mode on (an admin, alert.rules.set): a 訓練 telegram opens an alert labelled so;
     * JMA's 取消 within the delay stops it. */
    cJSON *r = ws_callf(&admin, "\"op\":\"alert.rules.set\",\"drill\":true,\"delay_s\":3600");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    r = ws_callf(&admin, "\"op\":\"alert.rules.set\",\"town_min_int\":\"5\"");
    cr_assert_str_eq(reply_code(r), "bad_request", "an invalid rule changes nothing");
    cJSON_Delete(r);
    add_quake("d2", "訓練", "発表", "20261201010000", "1", TOWN, "6-");
    wait_fetched("d2");
    cr_assert_eq(alert_count(), 1);
    add_quake("d2c", "訓練", "取消", "20261201010000", "2", TOWN, "6-");
    wait_fetched("d2c");
    alert_state(1, state, sizeof state);
    cr_assert_str_eq(state, "cancelled");
    cr_assert(hq_room_has("取り消されました"));

    /* HQ's hands, from the CLI: send one at once, cancel another. */
    cr_assert_eq(KZ("honbu", "login", "honbu"), 0, "%s", out);
    add_quake("d3", "訓練", "発表", "20261201020000", "1", TOWN, "6+");
    wait_fetched("d3");
    cr_assert_eq(KZ("honbu", "alert", "list"), 0, "%s", out);
    cr_assert(strstr(out, "#2") && strstr(out, "pending") && strstr(out, "[訓練]"), "%s", out);
    cr_assert_eq(KZ("honbu", "alert", "send-now", "2"), 0, "%s", out);
    alert_state(2, state, sizeof state);
    cr_assert_str_eq(state, "sent");
    cJSON *n = notices_of("soumu1");
    const char *title =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(n, "notices"), 0), "title")
            ->valuestring;
    cr_assert(strncmp(title, "【訓練】", strlen("【訓練】")) == 0, "a drill says so: %s", title);
    cJSON_Delete(n);
    cr_assert_neq(KZ("honbu", "alert", "send-now", "2"), 0, "not twice");
    add_quake("d4", "訓練", "発表", "20261201030000", "1", TOWN, "7");
    wait_fetched("d4");
    cr_assert_eq(KZ("honbu", "alert", "cancel", "3"), 0, "%s", out);
    cr_assert_eq(KZ("honbu", "alert", "show", "3"), 0, "%s", out);
    cr_assert(strstr(out, "cancelled") && strstr(out, "honbu"), "%s", out);
    cr_assert(ws_audit_has(&admin, "jma.cancelled", "alert:3"));
    /* Staff may not. */
    cr_assert_eq(KZ("soumu1", "login", "soumu1"), 0, "%s", out);
    cr_assert_neq(KZ("soumu1", "alert", "list"), 0, "%s", out);
    n = notices_of("soumu1");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(n, "notices")), 1, "only the one sent");
    cJSON_Delete(n);
}

/* Talk goes on while the feed misbehaves: a message sent in a room arrives, again and again. */
static void talk_round(struct ws *a, struct ws *b, const char *room, int i)
{
    cJSON *r = ws_callf(a, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"ping %d\"", room, i);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    char want[32];
    snprintf(want, sizeof want, "ping %d", i);
    for (;;) {
        cJSON *ev = ws_next_event(b, 10000);
        cr_assert_not_null(ev, "message %d never arrived", i);
        char *t = cJSON_PrintUnformatted(ev);
        bool got = strstr(t, want) != NULL;
        free(t);
        cJSON_Delete(ev);
        if (got)
            break;
    }
}

Test(alerts, a_hostile_feed_never_stalls_talk)
{
    struct ws a, b;
    cr_assert(ws_open(&a, d.port));
    cr_assert(ws_login(&a, "honbu", "honbu" TEST_PW_SUFFIX, NULL));
    ws_live(&b, d.port, "honbu", "honbu" TEST_PW_SUFFIX, -1, NULL);
    const enum feed_mode modes[] = {FEED_500, FEED_GARBAGE, FEED_HUGE, FEED_EMPTY, FEED_SILENT};
    int round = 0;
    long long worst = 0;
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        set_mode(modes[m]);
        int polls = feed_requests();
        long long until = mono_ms() + 20000;
        while (feed_requests() < polls + 2 && mono_ms() < until) {
            long long t0 = mono_ms();
            talk_round(&a, &b, hq_room, round++);
            sleep_ms(20); /* a person's pace, not a load test: a few hundred rounds */
            if (mono_ms() - t0 > worst)
                worst = mono_ms() - t0;
        }
        cr_assert_geq(feed_requests(), polls + 2, "mode %zu: the feed is polled on", m);
    }
    cJSON *r = alerts();
    cJSON *f = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "feeds"), 0);
    cr_assert_gt(cJSON_GetObjectItem(f, "failures")->valuedouble, 0, "failures show");
    cr_assert_gt(strlen(cJSON_GetObjectItem(f, "error")->valuestring), 0);
    cJSON_Delete(r);
    /* Garbage and huge telegrams, too: refused, remembered, never fetched again. */
    set_mode(FEED_OK);
    add_quake("good", "通常", "発表", "20261202000000", "1", OTHERTOWN, "3");
    pthread_mutex_lock(&js.mu);
    free(js.docs[js.ndocs - 1].body);
    js.docs[js.ndocs - 1].body = strdup("<Report><Control><Title>震度速報</Title>\x01<<");
    pthread_mutex_unlock(&js.mu);
    add_quake("huge", "通常", "発表", "20261202000001", "1", TOWN, "7");
    pthread_mutex_lock(&js.mu);
    free(js.docs[js.ndocs - 1].body);
    js.docs[js.ndocs - 1].body = calloc(1, 200000);
    memset(js.docs[js.ndocs - 1].body, ' ', 199999);
    pthread_mutex_unlock(&js.mu);
    wait_fetched("good");
    wait_fetched("huge");
    talk_round(&a, &b, hq_room, round++);
    r = alerts();
    f = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "feeds"), 0);
    cr_assert_eq(cJSON_GetObjectItem(f, "failures")->valuedouble, 0, "recovered");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "alerts")), 0);
    cJSON_Delete(r);
    /* The town's meter did not report (「震度５弱以上未入電」): possibly strong, an alert. */
    not_received = true;
    add_quake("nr", "通常", "発表", "20261202000002", "1", TOWN, "6-");
    not_received = false;
    wait_fetched("nr");
    r = alerts();
    cJSON *a0 = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "alerts"), 0);
    cr_assert_not_null(a0);
    cr_assert(strstr(cJSON_GetObjectItem(a0, "summary")->valuestring, "未入電"));
    cJSON_Delete(r);
    cr_log_info("talk rounds during the hostile feed: %d, slowest %lld ms", round, worst);
    ws_close_fd(&a);
    ws_close_fd(&b);
    /* GET /metrics counts the fetches, the failed ones apart. */
    static char m[1 << 18];
    cr_assert_eq(http_request(d.port, "GET", "/metrics", NULL, NULL, m, sizeof m), 200);
    const char *ok = strstr(m, "\nkizuna_jma_fetches_total "),
               *bad = strstr(m, "\nkizuna_jma_fetch_failures_total ");
    cr_assert(ok && bad, "%s", m);
    cr_assert_gt(atof(ok + strlen("\nkizuna_jma_fetches_total ")), 0);
    cr_assert_gt(atof(bad + strlen("\nkizuna_jma_fetch_failures_total ")), 0);
}

Test(alerts, tsunami_prefecture_and_special_warning_rules)
{
    cJSON *r = ws_callf(&admin, "\"op\":\"alert.rules.set\",\"tsunami_areas\":\"220\","
                                "\"pref_min_int\":\"6-\",\"delay_s\":3600");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    /* 津波注意報 for the coast: no roll-call; 津波警報: one. */
    add_tsunami("ts1", "20261203000000", "220", "62", "津波注意報");
    wait_fetched("ts1");
    cr_assert_eq(alert_count(), 0);
    add_tsunami("ts2", "20261203010000", "220", "51", "津波警報");
    wait_fetched("ts2");
    r = alerts();
    cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "alerts"), 0);
    cr_assert_not_null(a);
    cr_assert_str_eq(cJSON_GetObjectItem(a, "kind")->valuestring, "tsunami");
    cJSON_Delete(r);
    /* Elsewhere in the town's prefecture (04): 5強 is below the prefecture's 6弱, 6弱 is not. */
    add_quake("p1", "通常", "発表", "20261203020000", "1", "0410100", "5+");
    wait_fetched("p1");
    cr_assert_eq(alert_count(), 1);
    add_quake("p2", "通常", "発表", "20261203030000", "1", "0410100", "6-");
    wait_fetched("p2");
    r = alerts();
    a = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "alerts"), 0);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "alerts")), 2);
    cr_assert_str_eq(cJSON_GetObjectItem(a, "kind")->valuestring, "quake");
    cr_assert(strstr(cJSON_GetObjectItem(a, "summary")->valuestring, "震度6弱"));
    cJSON_Delete(r);
    /* A telegram reported long ago (a server back after an outage): nothing. */
    report_time = "2000-01-01T09:00:00+09:00";
    add_quake("old", "通常", "発表", "20000101000000", "1", TOWN, "7");
    report_time = NULL;
    wait_fetched("old");
    cr_assert_eq(alert_count(), 2);
    /* The same quake's tsunami warning (its EventID): one disaster, one alert. */
    add_tsunami("ts3", "20261203030000", "220", "51", "津波警報");
    wait_fetched("ts3");
    cr_assert_eq(alert_count(), 2);
    cr_assert(ws_audit_has(&admin, "jma.duplicate", "alert:2"));
    /* A special warning for the town: newly issued (発表) opens an alert, continued (継続) or
     * an ordinary warning does not. */
    add_warning("w1", TOWN, "大雨特別警報", "継続");
    add_warning("w2", TOWN, "大雨警報", "発表");
    wait_fetched("w1");
    wait_fetched("w2");
    cr_assert_eq(alert_count(), 2);
    add_warning("w3", TOWN, "大雨特別警報", "発表");
    wait_fetched("w3");
    r = alerts();
    a = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "alerts"), 0);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "alerts")), 3);
    cr_assert_str_eq(cJSON_GetObjectItem(a, "kind")->valuestring, "warning");
    cJSON_Delete(r);
}
