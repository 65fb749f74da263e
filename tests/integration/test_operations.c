/* test_operations.c - what an operator's tools see of the real kizunad (issue 23): systemd's
 * notify protocol read from a fake NOTIFY_SOCKET (READY=1, watchdog pings from the loop,
 * STOPPING=1), GET /readyz turning unready when the disk threshold is crossed and ready again
 * after a SIGHUP lowers it, without dropping a live connection. */
#include <criterion/criterion.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fednet.h"
#include "harness.h"

static struct kzd d;

static void teardown(void)
{
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    kzd_teardown(&d);
}

TestSuite(operations, .fini = teardown, .timeout = 90);

/* A datagram socket bound where NOTIFY_SOCKET will point: a path, or (abstract) a name in the
 * abstract namespace written "@name" as systemd writes it. */
static int notify_bind(bool abstract, char *env, size_t n)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    socklen_t len;
    if (abstract) {
        snprintf(env, n, "@kizuna-test-notify-%d", (int)getpid());
        memcpy(sa.sun_path, env, strlen(env));
        sa.sun_path[0] = '\0';
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(env));
    } else {
        snprintf(env, n, "/tmp/kizuna-test-notify-%d.sock", (int)getpid());
        unlink(env);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", env);
        len = (socklen_t)sizeof sa;
    }
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, len), 0, "bind %s", env);
    return fd;
}

/* The next datagram within timeout_ms (NUL-terminated into buf), or false. */
static bool notify_recv(int fd, char *buf, size_t n, int timeout_ms)
{
    long long deadline = mono_ms() + timeout_ms;
    for (;;) {
        long long left = deadline - mono_ms();
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        ssize_t got = recv(fd, buf, n - 1, 0);
        if (got < 0)
            return false;
        buf[got] = '\0';
        return true;
    }
}

/* Reads datagrams until one contains want (true) or timeout_ms passes; counts the watchdog
 * pings among them into *pings (if not NULL). */
static bool notify_wait(int fd, const char *want, int timeout_ms, int *pings)
{
    long long deadline = mono_ms() + timeout_ms;
    char buf[512];
    while (mono_ms() < deadline) {
        if (!notify_recv(fd, buf, sizeof buf, (int)(deadline - mono_ms())))
            return false;
        if (pings && strstr(buf, "WATCHDOG=1"))
            (*pings)++;
        if (strstr(buf, want))
            return true;
    }
    return false;
}

static void notify_lifecycle(bool abstract)
{
    char env[108];
    int fd = notify_bind(abstract, env, sizeof env);
    setenv("NOTIFY_SOCKET", env, 1);
    setenv("WATCHDOG_USEC", "300000", 1); /* a ping every 150 ms */
    kzd_setup(&d);
    cr_assert(notify_wait(fd, "READY=1", 5000, NULL), "no READY=1 on %s", env);
    /* The pings keep coming while the server serves: at least 4 in 2 s (about 13 are due). */
    int pings = 0;
    long long until = mono_ms() + 2000;
    while (mono_ms() < until && pings < 4)
        notify_wait(fd, "WATCHDOG=1", (int)(until - mono_ms()), &pings);
    cr_assert_geq(pings, 4, "only %d watchdog pings in 2 s", pings);
    int status, code = http_request(d.port, "GET", "/healthz", NULL, NULL, env, 0);
    cr_assert_eq(code, 200);
    status = kzd_stop(&d);
    cr_assert_eq(status, 0);
    cr_assert(notify_wait(fd, "STOPPING=1", 5000, NULL), "no STOPPING=1");
    close(fd);
    if (!abstract) {
        snprintf(env, sizeof env, "/tmp/kizuna-test-notify-%d.sock", (int)getpid());
        unlink(env);
    }
}

Test(operations, notify_socket_path_gets_ready_watchdog_and_stopping)
{
    notify_lifecycle(false);
}

Test(operations, notify_socket_abstract_name_gets_ready_watchdog_and_stopping)
{
    notify_lifecycle(true);
}

Test(operations, watchdog_meant_for_another_process_is_not_pinged)
{
    char env[108];
    int fd = notify_bind(false, env, sizeof env);
    setenv("NOTIFY_SOCKET", env, 1);
    setenv("WATCHDOG_USEC", "200000", 1);
    setenv("WATCHDOG_PID", "1", 1); /* systemd's watchdog of another process */
    kzd_setup(&d);
    cr_assert(notify_wait(fd, "READY=1", 5000, NULL));
    int pings = 0;
    notify_wait(fd, "never-sent", 1000, &pings);
    cr_assert_eq(pings, 0, "%d pings for a watchdog that names pid 1", pings);
    close(fd);
    unlink(env);
}

/* The readyz reply, parsed (the caller deletes it); *status receives the HTTP status. */
static cJSON *readyz(int *status)
{
    static char body[4096];
    *status = http_request(d.port, "GET", "/readyz", NULL, NULL, body, sizeof body);
    cJSON *j = cJSON_Parse(body);
    cr_assert_not_null(j, "readyz body is not JSON: %s", body);
    return j;
}

static bool failed_has(const cJSON *j, const char *check)
{
    const cJSON *f;
    cJSON_ArrayForEach(f, cJSON_GetObjectItem(j, "failed"))
    {
        if (cJSON_IsString(f) && strcmp(f->valuestring, check) == 0)
            return true;
    }
    return false;
}

/* Replaces the first occurrence of from in the server's config file with to. */
static void config_edit(const char *from, const char *to)
{
    FILE *f = fopen(d.config, "r");
    cr_assert_not_null(f);
    char text[8192], out[8192];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *at = strstr(text, from);
    cr_assert_not_null(at, "%s not in the config", from);
    snprintf(out, sizeof out, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    char tmp[400];
    snprintf(tmp, sizeof tmp, "%s.new", d.config);
    f = fopen(tmp, "w");
    cr_assert_not_null(f);
    fputs(out, f);
    fclose(f);
    cr_assert_eq(rename(tmp, d.config), 0);
}

Test(operations, readyz_turns_unready_below_the_disk_threshold_and_ready_after_sighup)
{
    /* 1 PiB: more than any test machine has free. */
    kzd_setup_with(&d, "\"ready_min_free_bytes\":1125899906842624,\"max_message_bytes\":2000");
    int status;
    cJSON *j = readyz(&status);
    cr_assert_eq(status, 503);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "ready")));
    cr_assert(failed_has(j, "disk"));
    cr_assert_not(failed_has(j, "database"));
    cr_assert_not(failed_has(j, "shutdown"));
    const cJSON *disk = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "checks"), "disk");
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(disk, "ok")));
    cr_assert_gt(cJSON_GetObjectItem(disk, "free_bytes")->valuedouble, 0);
    cr_assert(strstr(cJSON_GetObjectItem(disk, "why")->valuestring, "ready_min_free_bytes"));
    cJSON_Delete(j);
    /* Alive all the same: healthz is not readiness. */
    char body[512];
    cr_assert_eq(http_request(d.port, "GET", "/healthz", NULL, NULL, body, sizeof body), 200);

    /* A live WebSocket, which the reload must not drop. */
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    cr_assert(ws_login(&w, "admin", TEST_ADMIN_PASSWORD, NULL));
    cJSON *r = ws_call(&w, "{\"id\":1,\"op\":\"room.create\",\"name\":\"本部\"}");
    char room[64];
    reply_room(r, room, sizeof room);
    cJSON_Delete(r);
    static char text[3100];
    memset(text, 'x', 3000);
    text[3000] = '\0';
    static char req[3400];
    snprintf(req, sizeof req, "{\"id\":2,\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"%s\"}",
             room, text);
    r = ws_call(&w, req);
    cr_assert_str_eq(reply_code(r), "too_large"); /* max_message_bytes 2000 */
    cJSON_Delete(r);

    config_edit("\"ready_min_free_bytes\":1125899906842624", "\"ready_min_free_bytes\":0");
    config_edit("\"max_message_bytes\":2000", "\"max_message_bytes\":4000");
    cr_assert_eq(kill(d.pid, SIGHUP), 0);
    long long deadline = mono_ms() + 10000;
    do {
        j = readyz(&status);
        bool ready = cJSON_IsTrue(cJSON_GetObjectItem(j, "ready"));
        cJSON_Delete(j);
        if (ready)
            break;
    } while (mono_ms() < deadline);
    cr_assert_eq(status, 200, "readyz stayed unready after the reload");
    cr_assert(kzd_log_has(&d, "ready_min_free_bytes=1125899906842624->0"));
    cr_assert(kzd_log_has(&d, "max_message_bytes=2000->4000"));

    /* The same connection, with the new limit. */
    snprintf(req, sizeof req, "{\"id\":3,\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"%s\"}",
             room, text);
    r = ws_call(&w, req);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    cr_assert_eq(w.close_code, 0);

    /* A setting that needs a restart is named, and keeps its value. */
    config_edit("\"max_frame_bytes\":65536", "\"max_frame_bytes\":131072");
    cr_assert_eq(kill(d.pid, SIGHUP), 0);
    deadline = mono_ms() + 10000;
    while (!kzd_log_has(&d, "need_restart=\"max_frame_bytes\"") && mono_ms() < deadline)
        usleep(20000);
    cr_assert(kzd_log_has(&d, "need_restart=\"max_frame_bytes\""));
    ws_close_fd(&w);
}

Test(operations, a_config_error_at_sighup_changes_nothing)
{
    kzd_setup_with(&d, "\"ready_min_free_bytes\":0");
    config_edit("\"ready_min_free_bytes\":0", "\"ready_min_free_bytes\":-5");
    cr_assert_eq(kill(d.pid, SIGHUP), 0);
    long long deadline = mono_ms() + 10000;
    while (!kzd_log_has(&d, "config_reload_failed") && mono_ms() < deadline)
        usleep(20000);
    cr_assert(kzd_log_has(&d, "config_reload_failed"));
    cr_assert(kzd_log_has(&d, "ready_min_free_bytes: -5 is out of range [0, "), "the log says why");
    int status;
    cJSON *j = readyz(&status);
    cJSON_Delete(j);
    cr_assert_eq(status, 200);
}

/* ---- GET /metrics ---- */

static char *scrape(const char *headers, int *status)
{
    static char body[262144];
    *status = http_request(d.port, "GET", "/metrics", headers, NULL, body, sizeof body);
    return body;
}

/* promtool check metrics (Debian's prometheus package) on text: its exit status, and what it
 * said into out. */
static int promtool(const char *text, char *out, size_t n)
{
    const char *argv[] = {"/bin/sh", "-c", "promtool check metrics 2>&1", NULL};
    return run_capture(argv, NULL, text, out, n);
}

Test(operations, metrics_pass_promtool_and_move_with_work)
{
    kzd_setup(&d);
    int status;
    char said[4096];
    char *m = scrape(NULL, &status);
    cr_assert_eq(status, 200, "%s", m);
    cr_assert(strstr(m, "# TYPE kizuna_commit_duration_seconds histogram"));
    cr_assert_eq(promtool(m, said, sizeof said), 0, "promtool: %s", said);
    double commits0 = metric_value(m, "kizuna_commit_duration_seconds_count");
    double batches0 = metric_value(m, "kizuna_commit_batch_requests_count");
    cr_assert_eq(metric_value(m, "kizuna_messages_received_total"), 0);
    cr_assert_eq(metric_value(m, "kizuna_login_failures_total"), 0);
    cr_assert_gt(metric_value(m, "kizuna_disk_free_bytes"), 0);
    cr_assert_gt(metric_value(m, "kizuna_database_bytes"), 0);

    /* Work: a reader live in a room, three messages sent into it, a failed login. */
    struct ws a, b;
    cr_assert(ws_open(&a, d.port));
    cr_assert(ws_login(&a, "admin", TEST_ADMIN_PASSWORD, NULL));
    cJSON *r = ws_call(&a, "{\"id\":1,\"op\":\"room.create\",\"name\":\"本部\"}");
    char room[64];
    reply_room(r, room, sizeof room);
    cJSON_Delete(r);
    cr_assert_geq(ws_live(&b, d.port, "admin", TEST_ADMIN_PASSWORD, -1, NULL), 0);
    for (int i = 0; i < 3; i++) {
        r = ws_callf(&a, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"状況報告 %d\"", room, i);
        cr_assert_str_eq(reply_code(r), "ok");
        cJSON_Delete(r);
    }
    for (int i = 0; i < 3; i++) {
        cJSON *ev = ws_next_event(&b, 5000);
        cr_assert_not_null(ev, "the reader got %d of 3 messages", i);
        cJSON_Delete(ev);
    }
    char body[512];
    cr_assert_eq(http_request(d.port, "POST", "/api/v1/login", "Content-Type: application/json\r\n",
                              "{\"login\":\"admin\",\"password\":\"not-the-password\"}", body,
                              sizeof body),
                 401);

    m = scrape(NULL, &status);
    cr_assert_eq(status, 200);
    cr_assert_eq(promtool(m, said, sizeof said), 0, "promtool: %s", said);
    cr_assert_eq(metric_value(m, "kizuna_messages_received_total"), 3);
    cr_assert_eq(metric_value(m, "kizuna_requests_total{op=\"msg.send\",result=\"ok\"}"), 3);
    cr_assert_eq(metric_value(m, "kizuna_requests_total{op=\"login\",result=\"unauthorized\"}"), 1);
    cr_assert_geq(metric_value(m, "kizuna_requests_total{op=\"login\",result=\"ok\"}"), 2);
    cr_assert_eq(metric_value(m, "kizuna_login_failures_total"), 1);
    cr_assert_geq(metric_value(m, "kizuna_events_committed_total"),
                  4); /* the room's and 3 messages */
    cr_assert_geq(metric_value(m, "kizuna_events_delivered_total"), 3);
    cr_assert_geq(metric_value(m, "kizuna_commit_duration_seconds_count"), commits0 + 3);
    cr_assert_gt(metric_value(m, "kizuna_commit_duration_seconds_sum"), 0);
    cr_assert_geq(metric_value(m, "kizuna_commit_batch_requests_count"), batches0 + 3);
    cr_assert_eq(metric_value(m, "kizuna_connections{kind=\"websocket\"}"), 2);
    cr_assert_eq(metric_value(m, "kizuna_sessions_connected"), 2);
    cr_assert_eq(metric_value(m, "kizuna_users_connected"), 1);
    cr_assert_geq(metric_value(m, "kizuna_sessions_open"), 2);
    /* A histogram's +Inf bucket is its count. */
    cr_assert_eq(metric_value(m, "kizuna_commit_duration_seconds_bucket{le=\"+Inf\"}"),
                 metric_value(m, "kizuna_commit_duration_seconds_count"));
    ws_close_fd(&a);
    ws_close_fd(&b);
}

Test(operations, metrics_through_a_local_proxy_are_not_local)
{
    kzd_setup(&d);
    int status;
    static const char *const via[] = {"X-Forwarded-For: 203.0.113.7\r\n",
                                      "X-Real-IP: 203.0.113.7\r\n",
                                      "Forwarded: for=203.0.113.7;proto=https\r\n"};
    for (size_t i = 0; i < sizeof via / sizeof via[0]; i++) {
        char *m = scrape(via[i], &status);
        cr_assert_eq(status, 403, "%s: %s", via[i], m);
        cr_assert(strstr(m, "\"forbidden\""));
    }
    scrape(NULL, &status);
    cr_assert_eq(status, 200);
}

Test(operations, metrics_token_is_required_when_set)
{
    kzd_setup_with(&d, "\"metrics_token\":\"0123456789abcdef0123456789abcdef-metrics\"");
    int status;
    char *m = scrape(NULL, &status);
    cr_assert_eq(status, 401, "%s", m);
    cr_assert(strstr(m, "\"unauthorized\""));
    m = scrape("Authorization: Bearer 0123456789abcdef0123456789abcdef-metricX\r\n", &status);
    cr_assert_eq(status, 401);
    m = scrape("Authorization: Bearer 0123456789abcdef\r\n", &status);
    cr_assert_eq(status, 401);
    m = scrape("Authorization: Bearer 0123456789abcdef0123456789abcdef-metrics\r\n", &status);
    cr_assert_eq(status, 200);
    cr_assert(strstr(m, "kizuna_build_info{version="));
}

Test(operations, a_short_metrics_token_is_refused_at_start)
{
    char out[1024];
    const char *sh[] = {"/bin/sh", "-c",
                        "\"$0\" serve --data /nonexistent --set metrics_token=xyzzy 2>&1",
                        KIZUNAD_PATH, NULL};
    int rc = run_capture(sh, NULL, NULL, out, sizeof out);
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "metrics_token: 5 characters is too short"), "%s", out);
    cr_assert_null(strstr(out, "xyzzy"), "the value itself is never shown: %s", out);
}

/* ---- logs ---- */

/* The server's whole log (static buffer). */
static const char *log_text(void)
{
    static char text[1 << 20];
    char path[400];
    snprintf(path, sizeof path, "%s/stderr.log", d.dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    return text;
}

/* A string field of a reply (copied into out). */
static void reply_str(const cJSON *r, const char *name, char *out, size_t n)
{
    const cJSON *v = cJSON_GetObjectItem(r, name);
    cr_assert(cJSON_IsString(v), "no %s in the reply", name);
    snprintf(out, n, "%s", v->valuestring);
}

Test(operations, no_secret_of_a_run_reaches_the_log)
{
    static const char metrics_token[] = "mt-6a1f0c3e9b2d4a5f8e7c6b5a4d3c2b1a0f9e8d7c";
    char extra[200];
    snprintf(extra, sizeof extra, "\"metrics_token\":\"%s\"", metrics_token);
    kzd_setup_with(&d, extra); /* log_level debug: the most the server ever writes */
    enum { NSECRETS = 10 };
    char secrets[NSECRETS][128];
    int ns = 0;
    snprintf(secrets[ns++], 128, "%s", TEST_ADMIN_PASSWORD);
    snprintf(secrets[ns++], 128, "%s", metrics_token);

    struct ws w;
    char token[128];
    cr_assert(ws_open(&w, d.port));
    cr_assert(ws_login(&w, "admin", TEST_ADMIN_PASSWORD, token));
    snprintf(secrets[ns++], 128, "%s", token);
    /* A user with a password of the admin's choosing, who logs in and changes it. */
    cJSON *r = ws_call(&w, "{\"id\":1,\"op\":\"user.add\",\"login\":\"tanaka\",\"name\":\"田中\","
                           "\"password\":\"Tanaka-Initial-Secret-71\"}");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    snprintf(secrets[ns++], 128, "Tanaka-Initial-Secret-71");
    char body[2048], req[512];
    cr_assert_eq(http_request(d.port, "POST", "/api/v1/login", "Content-Type: application/json\r\n",
                              "{\"login\":\"tanaka\",\"password\":\"Tanaka-Initial-Secret-71\"}",
                              body, sizeof body),
                 200, "%s", body);
    r = cJSON_Parse(body);
    char utoken[128];
    reply_str(r, "token", utoken, sizeof utoken);
    cJSON_Delete(r);
    snprintf(secrets[ns++], 128, "%s", utoken);
    char auth[200];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\nContent-Type: application/json\r\n",
             utoken);
    cr_assert_eq(http_request(d.port, "POST", "/api/v1/passwd", auth,
                              "{\"old_password\":\"Tanaka-Initial-Secret-71\","
                              "\"new_password\":\"Tanaka-Changed-Secret-93\"}",
                              body, sizeof body),
                 200, "%s", body);
    snprintf(secrets[ns++], 128, "Tanaka-Changed-Secret-93");
    /* A wrong guess is a secret too: it may be someone's real password mistyped. */
    snprintf(req, sizeof req, "{\"login\":\"tanaka\",\"password\":\"Tanaka-Guess-Secret-55\"}");
    cr_assert_eq(http_request(d.port, "POST", "/api/v1/login", "Content-Type: application/json\r\n",
                              req, body, sizeof body),
                 401);
    snprintf(secrets[ns++], 128, "Tanaka-Guess-Secret-55");
    /* A reset's one-time password and an invitation code. */
    r = ws_call(&w, "{\"id\":2,\"op\":\"user.reset_password\",\"login\":\"tanaka\"}");
    cr_assert_str_eq(reply_code(r), "ok");
    reply_str(r, "password", secrets[ns++], 128);
    cJSON_Delete(r);
    r = ws_call(&w, "{\"id\":3,\"op\":\"invite.create\",\"role\":\"staff\"}");
    cr_assert_str_eq(reply_code(r), "ok");
    reply_str(r, "code", secrets[ns++], 128);
    cJSON_Delete(r);
    int status;
    snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", metrics_token);
    scrape(auth, &status);
    cr_assert_eq(status, 200);
    ws_close_fd(&w);
    cr_assert_eq(kzd_stop(&d), 0);

    const char *log = log_text();
    cr_assert(strstr(log, "event=login_failed"), "the run did log its events");
    for (int i = 0; i < ns; i++)
        cr_assert_null(strstr(log, secrets[i]), "secret %d (%.6s...) is in the log", i, secrets[i]);
    /* The invitation code as typed without its dashes is the same secret. */
    char bare[64];
    size_t k = 0;
    for (const char *c = secrets[ns - 1]; *c && k < sizeof bare - 1; c++)
        if (*c != '-')
            bare[k++] = *c;
    bare[k] = '\0';
    cr_assert_null(strstr(log, bare));
}

Test(operations, log_lines_are_logfmt_with_component_and_request_id)
{
    kzd_setup(&d);
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    cr_assert(ws_login(&w, "admin", TEST_ADMIN_PASSWORD, NULL));
    cJSON *r = ws_call(&w, "{\"id\":1,\"op\":\"room.create\",\"name\":\"本部\"}");
    cJSON_Delete(r);
    ws_close_fd(&w);
    cr_assert_eq(kzd_stop(&d), 0);
    const char *log = log_text();
    /* Every line: ts=, level=, component=, event=, then key=value pairs only. */
    int lines = 0;
    for (const char *line = log; *line;) {
        const char *nl = strchr(line, '\n');
        cr_assert_not_null(nl);
        cr_assert_eq(strncmp(line, "ts=", 3), 0, "%.*s", (int)(nl - line), line);
        const char *lv = strstr(line, " level="), *co = strstr(line, " component="),
                   *ev = strstr(line, " event=");
        cr_assert(lv && co && ev && lv < co && co < ev && ev < nl, "%.*s", (int)(nl - line), line);
        /* After the head, each token is key=value (a quoted value may hold spaces). */
        for (const char *p = ev + 1; p < nl;) {
            const char *k = p;
            while (p < nl && *p != '=' && *p != ' ' && *p != '"')
                p++;
            cr_assert(p < nl && *p == '=' && p > k, "not key=value at '%.*s'", (int)(nl - k), k);
            p++;
            if (*p == '"') {
                for (p++; p < nl && *p != '"'; p++)
                    if (*p == '\\')
                        p++;
                cr_assert(p < nl, "an unclosed quote: %.*s", (int)(nl - line), line);
                p++;
            } else {
                while (p < nl && *p != ' ')
                    p++;
            }
            cr_assert(p == nl || *p == ' ');
            if (p < nl)
                p++;
        }
        lines++;
        line = nl + 1;
    }
    cr_assert_gt(lines, 5);
    /* The login and the room it made are two requests, each named on its lines. */
    const char *login = strstr(log, "event=login req=");
    const char *room = strstr(log, "event=room_created req=");
    cr_assert(login && room, "%s", log);
    cr_assert_neq(strtoull(login + 16, NULL, 16), strtoull(room + 23, NULL, 16));
    cr_assert(strstr(log, "level=info component=api event=login "));
}

Test(operations, an_http_reply_names_its_request_as_the_log_does)
{
    kzd_setup(&d);
    static const char body[] = "{\"login\":\"admin\",\"password\":\"wrong-password-42\"}";
    char headers[128], resp[4096], id[32];
    snprintf(headers, sizeof headers, "Content-Type: application/json\r\n");
    size_t len = 0;
    int status = http_raw(d.port, "POST", "/api/v1/login", headers, body, strlen(body),
                          strlen(body), resp, sizeof resp, &len);
    cr_assert_eq(status, 401, "%s", resp);
    cr_assert(http_header(resp, "X-Request-Id", id, sizeof id), "%s", resp);
    cr_assert_eq(kzd_stop(&d), 0);
    char want[96];
    snprintf(want, sizeof want, "event=login_failed req=%s ", id);
    cr_assert(strstr(log_text(), want), "no line '%s' in:\n%s", want, log_text());
}

Test(operations, under_journald_each_line_starts_with_its_priority)
{
    kzd_setup(&d);
    cr_assert_eq(kzd_stop(&d), 0);
    /* systemd's JOURNAL_STREAM names the stream stderr is: here the harness's log file. */
    char path[400], js[64];
    snprintf(path, sizeof path, "%s/stderr.log", d.dir);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    size_t before = strlen(log_text());
    snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", js, 1);
    kzd_start(&d);
    unsetenv("JOURNAL_STREAM");
    char body[256];
    cr_assert_eq(http_request(d.port, "POST", "/api/v1/login", "Content-Type: application/json\r\n",
                              "{\"login\":\"admin\",\"password\":\"nope-nope-nope\"}", body,
                              sizeof body),
                 401);
    cr_assert_eq(kzd_stop(&d), 0);
    const char *log = log_text() + before;
    cr_assert(strstr(log, "<6>ts="), "info lines carry <6>: %s", log);
    cr_assert(strstr(log, "<4>ts=") && strstr(strstr(log, "<4>ts="), "event=login_failed"),
              "warnings carry <4>");
    for (const char *line = log; *line; line = strchr(line, '\n') + 1)
        cr_assert(line[0] == '<' && line[2] == '>', "no priority: %.60s", line);
    /* Without JOURNAL_STREAM (the first run) no line had one. */
    cr_assert_neq(log_text()[0], '<');
}

/* ---- kizunad check-config ---- */

/* Runs kizunad check-config on a file holding text; its output into out, its exit status. */
static int check_config(const char *text, char *out, size_t n)
{
    char path[] = "/tmp/kizuna-test-config-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    const char *argv[] = {KIZUNAD_PATH, "check-config", path, NULL};
    int rc = run_capture(argv, NULL, NULL, out, n);
    unlink(path);
    return rc;
}

Test(operations, check_config_names_each_problem_with_key_value_and_what_is_allowed)
{
    static char out[8192];
    int rc = check_config("{\n"
                          "  \"listen\": \"localhost:8080\",\n"
                          "  \"max_conections\": 100,\n"
                          "  \"max_connections\": \"100\",\n"
                          "  \"log_level\": \"verbose\",\n"
                          "  \"sqlite_synchronous_full\": \"yes\",\n"
                          "  \"login_lockout_s\": 0,\n"
                          "  \"history_page_max\": 12.5,\n"
                          "  \"tls_cert_file\": \"/nonexistent/cert.pem\",\n"
                          "  \"time_zone\": \"Asia/Tokio\",\n"
                          "  \"metrics_token\": \"tiny-secret\",\n"
                          "  \"federation_listen\": \"0.0.0.0:8444\",\n"
                          "  \"server_id\": \"Not An Id\",\n"
                          "  \"requests_per_second\": 10,\n"
                          "  \"requests_per_second\": 20\n"
                          "}\n",
                          out, sizeof out);
    cr_assert_eq(rc, 1, "%s", out);
    static const char *const want[] = {
        "unknown setting 'max_conections': did you mean max_connections?",
        "max_connections: \"100\" is not an integer: a whole number in [4, 1000000]",
        "log_level: 'verbose' is not one of error, warn, info, debug",
        "sqlite_synchronous_full: \"yes\" is not a boolean: true or false",
        "login_lockout_s: 0 is out of range [1, 86400]",
        "history_page_max: 12.5 is not an integer",
        "metrics_token: 11 characters is too short",
        "listen 'localhost:8080': HOST must be an IPv4 address",
        "tls_cert_file and tls_key_file go together",
        "tls_cert_file: \"/nonexistent/cert.pem\" cannot be read",
        "time_zone: 'Asia/Tokio' is not a time zone",
        "federation_listen: \"0.0.0.0:8444\" is not a loopback address",
        "server_id: \"Not An Id\" is not a server id",
        "note: requests_per_second is set twice; the last value counts",
        "13 problems",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(out, want[i]), "missing: %s\nin:\n%s", want[i], out);
    cr_assert_null(strstr(out, "tiny-secret"), "a secret's value is never shown");

    rc = check_config("{\"listen\": \"127.0.0.1:8080\",\n \"log_level\": }\n", out, sizeof out);
    cr_assert_eq(rc, 1);
    cr_assert(strstr(out, "not valid JSON at line 2, column 15"), "%s", out);
    rc = check_config("[1, 2]", out, sizeof out);
    cr_assert_eq(rc, 1);
    cr_assert(strstr(out, "not an object"), "%s", out);

    /* The shipped example, and a file with every kind of value right. */
    char path[600];
    snprintf(path, sizeof path, "%s/deploy/kizunad.json", KZ_SOURCE_DIR);
    const char *argv[] = {KIZUNAD_PATH, "check-config", path, NULL};
    cr_assert_eq(run_capture(argv, NULL, NULL, out, sizeof out), 0, "%s", out);
    rc = check_config("{\"listen\": \"[::1]:0\", \"log_level\": \"warn\", \"max_connections\": 50,"
                      " \"sqlite_synchronous_full\": true, \"time_zone\": \"UTC\"}",
                      out, sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "no problems"));
}

/* ---- kizunad reset-admin ---- */

static int reset_admin(const char *login, char *out, size_t n)
{
    const char *argv[] = {KIZUNAD_PATH,
                          "reset-admin",
                          "--data",
                          d.dir,
                          "--config",
                          d.config,
                          login ? "--admin" : NULL,
                          login,
                          NULL};
    return run_capture(argv, NULL, NULL, out, n);
}

Test(operations, reset_admin_recovers_a_lost_admin_password_with_a_one_time_password)
{
    kzd_setup(&d);
    struct ws old;
    cr_assert(ws_open(&old, d.port));
    cr_assert(ws_login(&old, "admin", TEST_ADMIN_PASSWORD, NULL));

    /* While the server runs, as the administrator on the server would. */
    char out[1024];
    cr_assert_eq(reset_admin(NULL, out, sizeof out), 0, "%s", out);
    const char *at = strstr(out, "one-time password: ");
    cr_assert_not_null(at, "%s", out);
    char otp[64];
    cr_assert_eq(sscanf(at + strlen("one-time password: "), "%63s", otp), 1);
    cr_assert_eq(strlen(otp), 20);

    /* The session that knew the old password is over, and so is the old password. */
    cJSON *r = ws_call(&old, "{\"id\":1,\"op\":\"whoami\"}");
    cr_assert_str_eq(reply_code(r), "unauthorized");
    cJSON_Delete(r);
    ws_close_fd(&old);
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    cr_assert_not(ws_login(&w, "admin", TEST_ADMIN_PASSWORD, NULL));
    ws_close_fd(&w);
    cr_assert(ws_open(&w, d.port));
    r = ws_callf(&w, "\"op\":\"login\",\"login\":\"admin\",\"password\":\"%s\"", otp);
    cr_assert_str_eq(reply_code(r), "ok");
    cr_assert(
        cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "user"), "must_change_password")));
    cJSON_Delete(r);
    r = ws_callf(&w, "\"op\":\"passwd\",\"old_password\":\"%s\",\"new_password\":\"%s\"", otp,
                 "Recovered-Admin-Pass-2026");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    r = ws_call(&w, "{\"id\":3,\"op\":\"audit.list\",\"action\":\"user.reset_password\"}");
    const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "entries"), 0);
    cr_assert_not_null(e, "no audit entry");
    cr_assert_str_eq(cJSON_GetObjectItem(e, "actor")->valuestring, "-console-");
    cr_assert_str_eq(cJSON_GetObjectItem(e, "target")->valuestring, "admin");
    cJSON_Delete(r);

    /* Another admin: now the account must be named; a non-admin is refused. */
    r = ws_call(&w, "{\"id\":4,\"op\":\"user.add\",\"login\":\"suzuki\",\"role\":\"admin\","
                    "\"password\":\"Suzuki-Admin-Pass-1\"}");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    r = ws_call(&w, "{\"id\":5,\"op\":\"user.add\",\"login\":\"sato\",\"role\":\"staff\","
                    "\"password\":\"Sato-Staff-Pass-1\"}");
    cJSON_Delete(r);
    ws_close_fd(&w);
    const char *argv[] = {"/bin/sh",    "-c",  "\"$0\" reset-admin --data \"$1\" 2>&1",
                          KIZUNAD_PATH, d.dir, NULL};
    cr_assert_eq(run_capture(argv, NULL, NULL, out, sizeof out), 1);
    cr_assert(strstr(out, "several admins") && strstr(out, "admin, suzuki"), "%s", out);
    const char *argv2[] = {
        "/bin/sh",    "-c",  "\"$0\" reset-admin --data \"$1\" --admin sato 2>&1",
        KIZUNAD_PATH, d.dir, NULL};
    cr_assert_eq(run_capture(argv2, NULL, NULL, out, sizeof out), 1);
    cr_assert(strstr(out, "sato is not an admin"), "%s", out);
    cr_assert_eq(reset_admin("suzuki", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "admin: suzuki"));
    cr_assert_eq(kzd_stop(&d), 0);
    cr_assert_null(strstr(log_text(), otp), "the one-time password is in the log");
}

/* ---- kizuna admin status ---- */

static int kizuna_cli(const char *config_dir, char *out, size_t n, ...)
{
    struct kz_device dev = {
        .server_url = d.url, .config_dir = config_dir, .user = "admin", .retry_max_s = 5};
    va_list ap;
    va_start(ap, n);
    int rc = kz_device_run(&dev, NULL, out, n, ap);
    va_end(ap);
    return rc;
}

Test(operations, admin_status_shows_the_server_on_one_screen_and_as_json)
{
    kzd_setup(&d);
    char cfgdir[300];
    snprintf(cfgdir, sizeof cfgdir, "%s/cli", d.dir);
    static char out[16384];
    cr_assert_eq(kizuna_cli(cfgdir, out, sizeof out, "login", "admin", NULL), 0, "%s", out);

    /* Before any backup: an alarm says so. */
    cr_assert_eq(kizuna_cli(cfgdir, out, sizeof out, "--json", "admin", "status", NULL), 0, "%s",
                 out);
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j, "%s", out);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "version")->valuestring, "0.1.0");
    cr_assert_geq(cJSON_GetObjectItem(j, "uptime_s")->valuedouble, 0);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "ready")));
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "backup"), "last")));
    cr_assert(strstr(out, "no backup recorded"), "%s", out);
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "messages"), "today")->valuedouble, 0);
    cr_assert_gt(
        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "storage"), "disk_free_bytes")->valuedouble, 0);
    cJSON_Delete(j);

    /* Messages today, a backup and its verification recorded, a live connection. */
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    cr_assert(ws_login(&w, "admin", TEST_ADMIN_PASSWORD, NULL));
    cJSON *r = ws_call(&w, "{\"id\":1,\"op\":\"room.create\",\"name\":\"本部\"}");
    char room[64];
    reply_room(r, room, sizeof room);
    cJSON_Delete(r);
    for (int i = 0; i < 2; i++) {
        r = ws_callf(&w, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"報告 %d\"", room, i);
        cr_assert_str_eq(reply_code(r), "ok");
        cJSON_Delete(r);
    }
    char bdir[320];
    snprintf(bdir, sizeof bdir, "%s-backup", d.dir);
    const char *backup[] = {KIZUNAD_PATH, "backup", "--data", d.dir, bdir, NULL};
    cr_assert_eq(run_capture(backup, NULL, NULL, out, sizeof out), 0, "%s", out);
    r = ws_call(&w, "{\"id\":2,\"op\":\"admin.status\"}");
    cr_assert_str_eq(reply_code(r), "ok");
    const cJSON *alarms = cJSON_GetObjectItem(r, "alarms");
    char *text = cJSON_PrintUnformatted(alarms);
    cr_assert(strstr(text, "not verified"), "%s", text);
    cJSON_free(text);
    cJSON_Delete(r);
    const char *verify[] = {KIZUNAD_PATH, "verify-backup", bdir, "--data", d.dir, NULL};
    cr_assert_eq(run_capture(verify, NULL, NULL, out, sizeof out), 0, "%s", out);

    cr_assert_eq(kizuna_cli(cfgdir, out, sizeof out, "--json", "admin", "status", NULL), 0);
    j = cJSON_Parse(out);
    cr_assert_not_null(j, "%s", out);
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "messages"), "today")->valuedouble, 2);
    /* The test's WebSocket and the CLI's own. */
    cr_assert_eq(
        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "connections"), "websocket")->valuedouble, 2);
    const cJSON *b = cJSON_GetObjectItem(j, "backup");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "last"), "ok")));
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "verified"), "ok")));
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "alarms")), 0, "%s", out);
    cJSON_Delete(j);

    /* The screen, in words. */
    cr_assert_eq(kizuna_cli(cfgdir, out, sizeof out, "admin", "status", NULL), 0, "%s", out);
    cr_assert(strstr(out, "kizunad 0.1.0, up "), "%s", out);
    cr_assert(strstr(out, "ready         yes"), "%s", out);
    cr_assert(strstr(out, "messages      2 today (Asia/Tokyo)"), "%s", out);
    cr_assert(strstr(out, "verified ") && strstr(out, ": whole"), "%s", out);
    cr_assert(strstr(out, "alarms        none"), "%s", out);

    /* A backup whose verification fails is an alarm on the screen. */
    char victim[400];
    snprintf(victim, sizeof victim, "%s/server.key", bdir);
    FILE *f = fopen(victim, "a");
    cr_assert_not_null(f);
    fputs("tampered\n", f);
    fclose(f);
    cr_assert_eq(run_capture(verify, NULL, NULL, out, sizeof out), 1, "%s", out);
    cr_assert_eq(kizuna_cli(cfgdir, out, sizeof out, "admin", "status", NULL), 0, "%s", out);
    cr_assert(strstr(out, "NOT WHOLE") && strstr(out, "ALARMS"), "%s", out);
    ws_close_fd(&w);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", bdir);
    cr_assert_eq(system(cmd), 0);
}

/* ---- SIGHUP reloads TLS certificates ---- */

/* The subject of the certificate the server presents now ("" if none). */
static void served_subject(char *out, size_t n)
{
    char port[16];
    snprintf(port, sizeof port, "%d", d.port);
    const char *argv[] = {"/bin/sh", "-c",
                          "echo | timeout 10 openssl s_client -connect 127.0.0.1:$0 2>/dev/null "
                          "| openssl x509 -noout -subject",
                          port, NULL};
    run_capture(argv, NULL, NULL, out, n);
}

Test(operations, sighup_loads_a_renewed_tls_certificate_and_keeps_it_when_broken)
{
    char dir[] = "/tmp/kizuna-test-tls-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    const char *gen[] = {"/bin/sh", "-c",
                         "cd \"$0\" && for n in 1 2; do openssl req -x509 -newkey ec -pkeyopt "
                         "ec_paramgen_curve:prime256v1 -nodes -keyout key$n.pem -out cert$n.pem "
                         "-days 2 -subj /CN=kizuna-cert-$n 2>/dev/null || exit 1; done; "
                         "cp cert1.pem cert.pem && cp key1.pem key.pem",
                         dir, NULL};
    char out[2048];
    cr_assert_eq(run_capture(gen, NULL, NULL, out, sizeof out), 0, "%s", out);
    char extra[400];
    snprintf(extra, sizeof extra,
             "\"tls_cert_file\":\"%s/cert.pem\",\"tls_key_file\":\"%s/key.pem\"", dir, dir);
    kzd_setup_with(&d, extra);
    served_subject(out, sizeof out);
    cr_assert(strstr(out, "kizuna-cert-1"), "%s", out);

    /* Renewed in place (as certbot or an admin would), then SIGHUP. */
    const char *renew[] = {"/bin/sh", "-c",
                           "cd \"$0\" && cp cert2.pem cert.pem && cp key2.pem key.pem", dir, NULL};
    cr_assert_eq(run_capture(renew, NULL, NULL, out, sizeof out), 0);
    cr_assert_eq(kill(d.pid, SIGHUP), 0);
    long long deadline = mono_ms() + 10000;
    while (!kzd_log_has(&d, "event=tls_reloaded pairs=1") && mono_ms() < deadline)
        usleep(20000);
    served_subject(out, sizeof out);
    cr_assert(strstr(out, "kizuna-cert-2"), "%s", out);

    /* A broken file: the error is logged and the certificate in use stays. */
    const char *breakit[] = {"/bin/sh", "-c", "cd \"$0\" && echo broken > cert.pem", dir, NULL};
    cr_assert_eq(run_capture(breakit, NULL, NULL, out, sizeof out), 0);
    cr_assert_eq(kill(d.pid, SIGHUP), 0);
    deadline = mono_ms() + 10000;
    while (!kzd_log_has(&d, "event=tls_reload_failed") && mono_ms() < deadline)
        usleep(20000);
    cr_assert(kzd_log_has(&d, "event=tls_reload_failed"));
    served_subject(out, sizeof out);
    cr_assert(strstr(out, "kizuna-cert-2"), "%s", out);
    cr_assert_eq(kzd_stop(&d), 0);
    snprintf(out, sizeof out, "rm -rf '%s'", dir);
    cr_assert_eq(system(out), 0);
}

/* ---- per peer: metrics and status of a federation link ---- */

static struct fednet net;

static void fed_teardown(void)
{
    fednet_stop(&net);
}

TestSuite(fedops, .fini = fed_teardown, .timeout = 120);

/* Server i's metrics (static buffer); asserts 200 and that promtool accepts them. */
static const char *fed_scrape(int i)
{
    static char body[262144];
    int status = http_request(net.s[i].d.port, "GET", "/metrics", NULL, NULL, body, sizeof body);
    cr_assert_eq(status, 200, "%s", body);
    char said[4096];
    cr_assert_eq(promtool(body, said, sizeof said), 0, "promtool: %s", said);
    return body;
}

Test(fedops, a_peer_link_shows_in_metrics_and_status_and_its_cut_raises_an_alarm)
{
    fednet_start(&net, 2, NULL, NULL, 23);
    char series[160];
    snprintf(series, sizeof series, "kizuna_federation_peer_connected{peer=\"%s\"}", net.s[1].id);
    const char *m = fed_scrape(0);
    cr_assert_eq(metric_value(m, series), 1, "%s", m);
    snprintf(series, sizeof series, "kizuna_federation_peer_lag_events{peer=\"%s\"}", net.s[1].id);
    cr_assert_eq(metric_value(m, series), 0);
    snprintf(series, sizeof series, "kizuna_federation_peer_quarantined{peer=\"%s\"}", net.s[1].id);
    cr_assert_eq(metric_value(m, series), 0);
    cJSON *r = fednet_admin(&net, 0, "\"op\":\"admin.status\"");
    const cJSON *p = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "peers"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(p, "server")->valuestring, net.s[1].id);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(p, "connected")));
    cJSON_Delete(r);

    fednet_cut(&net, 0, 1, true);
    fednet_wait_down(&net, 0, 1, 20000);
    snprintf(series, sizeof series, "kizuna_federation_peer_connected{peer=\"%s\"}", net.s[1].id);
    m = fed_scrape(0);
    cr_assert_eq(metric_value(m, series), 0, "%s", m);
    r = fednet_admin(&net, 0, "\"op\":\"admin.status\"");
    char *text = cJSON_PrintUnformatted(cJSON_GetObjectItem(r, "alarms"));
    char want[160];
    snprintf(want, sizeof want, "peer %s is not connected", net.s[1].id);
    cr_assert(strstr(text, want), "%s", text);
    cJSON_free(text);
    cJSON_Delete(r);
    fednet_cut(&net, 0, 1, false);
}
