/* test_hostile.c - hostile and bad input against the real kizunad with tight limits: floods
 * of connections and requests from one address, slow-loris clients, connections that never
 * log in, deeply nested JSON and absurd numbers. Each gets a clear error or a clean close,
 * costs bounded memory, and never disturbs another client. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "harness.h"

static struct kzd d;

static void setup(void)
{
    kzd_setup_with(&d, "\"max_connections_per_address\":6,\"requests_per_second\":5,"
                       "\"request_burst\":10,\"ws_login_timeout_s\":1,\"http_timeout_s\":2");
}

static void teardown(void)
{
    kzd_teardown(&d);
}

TestSuite(hostile, .init = setup, .fini = teardown, .timeout = 60);

static long rss_kib(void)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)d.pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

/* One logged-in connection that must keep working through everything. */
static void bystander(struct ws *w)
{
    cr_assert(ws_open(w, d.port));
    cr_assert(ws_login(w, "admin", TEST_ADMIN_PASSWORD, NULL));
}

static void still_served(struct ws *w)
{
    cJSON *r = ws_call(w, "{\"id\":77,\"op\":\"whoami\"}");
    cr_assert_str_eq(reply_code(r), "ok", "a bystander is disturbed");
    cJSON_Delete(r);
}

Test(hostile, a_connection_flood_from_one_address_is_capped)
{
    struct ws c[6];
    bystander(&c[0]); /* one of the six this address may hold */
    for (int i = 1; i < 6; i++)
        cr_assert(ws_open(&c[i], d.port), "connection %d within the limit", i);
    /* Every kind of connection counts, and the seventh is refused before it costs anything:
     * a WebSocket upgrade and a plain HTTP request alike get 429 and a close. */
    struct ws extra;
    cr_assert_not(ws_open(&extra, d.port), "the seventh WebSocket is refused");
    char resp[2048];
    size_t rlen = 0;
    cr_assert_eq(http_raw(d.port, "GET", "/healthz", NULL, NULL, 0, 0, resp, sizeof resp, &rlen),
                 429);
    cr_assert(strstr(resp, "\"rate_limited\"") &&
                  strstr(resp, "too many connections from your address"),
              "%s", resp);
    still_served(&c[0]);
    /* A slot frees when one closes (the others that never logged in time out meanwhile): as
     * soon as the server has seen the close, which may take a moment under load. */
    for (int i = 1; i < 6; i++)
        ws_close_fd(&c[i]);
    struct ws again;
    bool in = false;
    for (int tries = 0; tries < 100 && !(in = ws_open(&again, d.port)); tries++)
        usleep(50 * 1000);
    cr_assert(in, "no slot freed within 5 s of five closes");
    cr_assert(ws_login(&again, "admin", TEST_ADMIN_PASSWORD, NULL), "a freed slot is usable");
    ws_close_fd(&again);
    ws_close_fd(&c[0]);
}

Test(hostile, a_request_flood_is_rate_limited_per_connection)
{
    struct ws by, flood;
    bystander(&by);
    bystander(&flood);
    long before = rss_kib();
    int limited = 0, ok = 0;
    for (int i = 0; i < 60; i++)
        cr_assert(ws_send_text(&flood, "{\"id\":1,\"op\":\"whoami\"}"));
    for (int i = 0; i < 60; i++) {
        char *t = ws_recv_text(&flood, 5000);
        cr_assert_not_null(t, "every request is answered");
        cJSON *r = cJSON_Parse(t);
        if (strcmp(reply_code(r), "rate_limited") == 0)
            limited++;
        else if (strcmp(reply_code(r), "ok") == 0)
            ok++;
        cJSON_Delete(r);
        free(t);
    }
    cr_assert_geq(ok, 8, "the burst goes through (less the login)");
    cr_assert_geq(limited, 40, "the rest is refused with rate_limited (%d ok)", ok);
    still_served(&by);
    cr_assert_lt(rss_kib() - before, 20 * 1024, "a flood costs bounded memory");
    ws_close_fd(&by);
    ws_close_fd(&flood);
}

Test(hostile, an_http_flood_from_one_address_is_rate_limited)
{
    struct ws by;
    bystander(&by);
    char body[512];
    int limited = 0;
    for (int i = 0; i < 30; i++) {
        int st = http_request(d.port, "GET", "/healthz", NULL, NULL, body, sizeof body);
        if (st == 429) {
            limited++;
            cr_assert(strstr(body, "rate_limited"), "%s", body);
        }
    }
    cr_assert_geq(limited, 15);
    still_served(&by);
    ws_close_fd(&by);
}

Test(hostile, slow_loris_and_silent_clients_are_cut_off)
{
    struct ws by, silent;
    bystander(&by);
    int fd = tcp_open(d.port);
    cr_assert_geq(fd, 0);
    const char partial[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    cr_assert_eq(write(fd, partial, sizeof partial - 1), (ssize_t)(sizeof partial - 1));
    int body_fd = tcp_open(d.port); /* a body that never comes */
    const char post[] = "POST /api/v1/whoami HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{";
    cr_assert_eq(write(body_fd, post, sizeof post - 1), (ssize_t)(sizeof post - 1));
    cr_assert(ws_open(&silent, d.port));
    still_served(&by);
    cr_assert(tcp_wait_closed(fd, 10000), "a stalled request is dropped (http_timeout_s)");
    cr_assert(tcp_wait_closed(body_fd, 10000), "a stalled body is dropped");
    cr_assert(tcp_wait_closed(silent.fd, 10000), "a WebSocket that never logs in is closed");
    still_served(&by);
    close(fd);
    close(body_fd);
    ws_close_fd(&silent);
    ws_close_fd(&by);
}

Test(hostile, nested_json_and_absurd_numbers_get_bad_request)
{
    struct ws w;
    bystander(&w);
    /* 20,000 levels of nesting: refused by the parser's depth limit, not the stack. */
    size_t depth = 20000;
    char *deep = malloc(depth * 2 + 64);
    size_t n = (size_t)sprintf(deep, "{\"id\":1,\"op\":\"whoami\",\"x\":");
    memset(deep + n, '[', depth);
    memset(deep + n + depth, ']', depth);
    strcpy(deep + n + 2 * depth, "}");
    cr_assert(ws_send_text(&w, deep));
    free(deep);
    char *t = ws_recv_text(&w, 5000);
    cr_assert_not_null(t);
    cJSON *r = cJSON_Parse(t);
    cr_assert_str_eq(reply_code(r), "bad_request", "%s", t);
    cJSON_Delete(r);
    free(t);
    const char *numbers[] = {
        "{\"id\":2,\"op\":\"sync\",\"since\":1e999}",
        "{\"id\":3,\"op\":\"sync\",\"since\":-1}",
        "{\"id\":4,\"op\":\"sync\",\"since\":1.5}",
        "{\"id\":5,\"op\":\"sync\",\"since\":99999999999999999999999}",
        "{\"id\":6,\"op\":\"audit.list\",\"limit\":1e308}",
        "{\"id\":7,\"op\":\"session.revoke\",\"session\":-9223372036854775808}",
    };
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        r = ws_call(&w, numbers[i]);
        cr_assert_str_eq(reply_code(r), "bad_request", "%s", numbers[i]);
        cJSON_Delete(r);
    }
    still_served(&w);
    ws_close_fd(&w);
}

/* Issue 12, defect 6: cJSON decodes \u0000 to a NUL byte, and every C string stopped there:
 * "abc\u0000def" was acknowledged and stored as "abc", "u1\u0000evil" logged in as u1, and a
 * password with anything after a NUL was accepted. Now each is refused with bad_request and
 * nothing is stored, nobody logged in; "\\u0000" (a backslash, then u0000) is text, kept. */
static int msg_count(struct ws *w, const char *room, const char *body)
{
    cJSON *r = ws_callf(w, "\"op\":\"history\",\"room\":\"%s\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(r, "events"))
    {
        const cJSON *b = cJSON_GetObjectItem(cJSON_GetObjectItem(e, "content"), "body");
        n += cJSON_IsString(b) && (!body || strcmp(b->valuestring, body) == 0);
    }
    cJSON_Delete(r);
    return n;
}

Test(hostile, nul_characters_are_refused_not_cut_short)
{
    struct ws a, u;
    bystander(&a);
    cJSON *r = ws_call(&a, "{\"id\":2,\"op\":\"user.add\",\"login\":\"u1\","
                           "\"password\":\"u1-password-123\"}");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    r = ws_call(&a, "{\"id\":3,\"op\":\"room.create\",\"name\":\"nul\",\"members\":[\"u1\"]}");
    cr_assert_str_eq(reply_code(r), "ok");
    char room[64];
    reply_room(r, room, sizeof room);
    cJSON_Delete(r);

    /* msg.send "abc\u0000def": refused, nothing stored. */
    r = ws_callf(&a, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"abc\\u0000def\"", room);
    cr_assert_str_eq(reply_code(r), "bad_request", "msg.send with a NUL was acknowledged");
    cJSON_Delete(r);
    cr_assert_eq(msg_count(&a, room, NULL), 0, "a message was stored");

    /* login "u1\u0000evil" with u1's password, and u1 with "password\u0000suffix". */
    cr_assert(ws_open(&u, d.port));
    const char *logins[] = {
        "{\"id\":4,\"op\":\"login\",\"login\":\"u1\\u0000evil\",\"password\":\"u1-password-123\"}",
        "{\"id\":5,\"op\":\"login\",\"login\":\"u1\",\"password\":\"u1-password-123\\u0000x\"}",
    };
    for (size_t i = 0; i < sizeof logins / sizeof logins[0]; i++) {
        r = ws_call(&u, logins[i]);
        cr_assert_str_eq(reply_code(r), "bad_request", "%s", logins[i]);
        cr_assert_null(cJSON_GetObjectItem(r, "token"), "%s", logins[i]);
        cJSON_Delete(r);
        r = ws_call(&u, "{\"id\":6,\"op\":\"whoami\"}");
        cr_assert_str_eq(reply_code(r), "unauthorized", "logged in by %s", logins[i]);
        cJSON_Delete(r);
    }
    /* The same over HTTP. */
    char body[256];
    int status = http_request(d.port, "POST", "/api/v1/login", NULL,
                              "{\"login\":\"u1\",\"password\":\"u1-password-123\\u0000x\"}", body,
                              sizeof body);
    cr_assert_eq(status, 400, "%s", body);
    cr_assert(strstr(body, "bad_request") && !strstr(body, "token"), "%s", body);
    r = ws_call(&a, "{\"id\":7,\"op\":\"session.list\",\"login\":\"u1\"}");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "sessions")), 0, "u1 has a session");
    cJSON_Delete(r);

    /* passwd to "new-password-1\u0000x" is refused: the old password still works. */
    cr_assert(ws_login(&u, "u1", "u1-password-123", NULL));
    r = ws_call(&u, "{\"id\":8,\"op\":\"passwd\",\"old_password\":\"u1-password-123\","
                    "\"new_password\":\"new-password-1\\u0000x\"}");
    cr_assert_str_eq(reply_code(r), "bad_request");
    cJSON_Delete(r);
    ws_close_fd(&u);
    cr_assert(ws_open(&u, d.port));
    cr_assert(ws_login(&u, "u1", "u1-password-123", NULL), "the password was changed");
    ws_close_fd(&u);

    /* A backslash before u0000 is text: stored byte for byte. */
    r = ws_callf(&a, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"abc\\\\u0000def\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    cr_assert_eq(msg_count(&a, room, "abc\\u0000def"), 1);
    still_served(&a);
    ws_close_fd(&a);
}

/* GET /healthz from the loopback address src (127.0.0.2 is as local as 127.0.0.1); the status. */
static int healthz_from(const char *src)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in from = {.sin_family = AF_INET}, to = {.sin_family = AF_INET};
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    to.sin_port = htons((uint16_t)d.port);
    inet_pton(AF_INET, src, &from.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    cr_assert_eq(bind(fd, (struct sockaddr *)&from, sizeof from), 0, "bind %s", src);
    cr_assert_eq(connect(fd, (struct sockaddr *)&to, sizeof to), 0);
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    cr_assert_eq(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
    char resp[1024];
    ssize_t n = read(fd, resp, sizeof resp - 1);
    close(fd);
    int status = -1;
    if (n > 0) {
        resp[n] = '\0';
        sscanf(resp, "HTTP/1.1 %d", &status);
    }
    return status;
}

static void setup_peers(void)
{
    kzd_setup_with(&d, "\"requests_per_second\":1,\"request_burst\":5,\"http_peers_max\":1");
}

/* The table of per-address HTTP request counts starts afresh past http_peers_max addresses
 * (it was a #define of 100,000): with room for one, a second address wipes the first one's
 * count, so an address that had spent its burst gets a whole burst again. */
Test(hostile_peers, the_address_table_is_bounded_by_http_peers_max, .init = setup_peers,
     .fini = teardown, .timeout = 60)
{
    int limited = 0;
    for (int i = 0; i < 20 && !limited; i++)
        limited = healthz_from("127.0.0.1") == 429;
    cr_assert(limited, "127.0.0.1 never spent its burst");
    cr_assert_eq(healthz_from("127.0.0.2"), 200);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(healthz_from("127.0.0.1"), 200, "request %d after the table started afresh",
                     i + 1);
}
