/* test_transport.c - the connection layer under hostile and unlucky clients: pipelined and
 * random HTTP byte streams (a seeded stream fuzzer), the listening address bound exactly,
 * bodies that trickle, and a server that runs out of file descriptors. After each, the server
 * answers a bystander at once and is not burning CPU. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static struct kzd d;

static void teardown(void)
{
    unsetenv("KIZUNA_TEST_WRAPPER");
    kzd_teardown(&d);
}

TestSuite(transport, .fini = teardown, .timeout = 120);

/* CPU seconds (user + system) the server has used so far. */
static double server_cpu_s(void)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)d.pid);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "the server is gone");
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    unsigned long ut = 0, st = 0;
    const char *p = strrchr(buf, ')'); /* the name may hold spaces */
    cr_assert(p &&
              sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A spinning event loop uses a whole core; an idle one almost nothing. Over a second of quiet
 * the difference is two orders of magnitude, so this is a bound, not a benchmark. */
static void assert_idle(const char *after)
{
    double before = server_cpu_s();
    struct timespec pause = {1, 0};
    nanosleep(&pause, NULL);
    double used = server_cpu_s() - before;
    cr_assert_lt(used, 0.35, "after %s the server used %.2f s of CPU in 1 s of quiet", after, used);
}

static void assert_serving(const char *after)
{
    char body[256];
    cr_assert_eq(http_request(d.port, "GET", "/healthz", NULL, NULL, body, sizeof body), 200,
                 "after %s /healthz does not answer", after);
}

static int connect_to(int family, const char *addr, int port)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, addr, &a->sin_addr);
        len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, addr, &a->sin6_addr);
        len = sizeof *a;
    }
    if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads what the server sends until it closes or is quiet for quiet_ms; returns the bytes. */
static size_t drain(int fd, char *buf, size_t cap, int quiet_ms, bool *closed)
{
    size_t len = 0;
    *closed = false;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, quiet_ms) <= 0)
            return len;
        char sink[4096];
        ssize_t n = recv(fd, len + 1 < cap ? buf + len : sink,
                         len + 1 < cap ? cap - 1 - len : sizeof sink, 0);
        if (n <= 0) {
            *closed = true;
            return len;
        }
        if (len + 1 < cap) {
            len += (size_t)n;
            buf[len] = '\0';
        }
    }
}

static int count_replies(const char *buf)
{
    int n = 0;
    for (const char *p = buf; (p = strstr(p, "HTTP/1.1 ")); p++)
        n++;
    return n;
}

Test(transport, pipelined_requests_never_stall_the_loop)
{
    kzd_setup(&d);
    struct ws by;
    cr_assert(ws_open(&by, d.port));
    cr_assert(ws_login(&by, "admin", TEST_ADMIN_PASSWORD, NULL));
    /* The first is the reproducer: two POSTs with bodies in one write froze kizunad at
     * 100% CPU, deaf to everyone and to SIGTERM. */
    const char *const streams[] = {
        "POST /api/v1/whoami HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
        "POST /api/v1/whoami HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
        "POST /api/v1/whoami HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        "POST /api/v1/whoami HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        /* behind a request answered by a worker (a password check) */
        "POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Length: 41\r\n\r\n"
        "{\"login\":\"admin\",\"password\":\"wrongpass1\"}"
        "POST /api/v1/whoami HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
        /* a body longer than its Content-Length: the rest is a malformed next request */
        "POST /api/v1/whoami HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}}}}}}}}}\r\n\r\n",
        "POST /api/v1/uploads HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        "PATCH /api/v1/uploads/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz",
    };
    for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++) {
        int fd = tcp_open(d.port);
        cr_assert_geq(fd, 0);
        cr_assert_eq(send(fd, streams[i], strlen(streams[i]), MSG_NOSIGNAL),
                     (ssize_t)strlen(streams[i]));
        char buf[8192];
        bool closed;
        size_t got = drain(fd, buf, sizeof buf, 3000, &closed);
        close(fd);
        int asked = 0;
        for (const char *p = streams[i]; (p = strstr(p, " HTTP/1.1\r\n")); p++)
            asked++;
        cr_assert(closed || count_replies(buf) == asked,
                  "stream %zu: the server neither answered all %d nor closed (%zu bytes)", i, asked,
                  got);
        cJSON *r = ws_call(&by, "{\"id\":5,\"op\":\"whoami\"}");
        cr_assert_str_eq(reply_code(r), "ok", "stream %zu: a bystander is not served", i);
        cJSON_Delete(r);
        assert_serving("a pipelined stream");
    }
    /* Pipelined GETs are answered in order on the kept-alive connection; behind a POST the
     * first is answered before the close. */
    int fd = tcp_open(d.port);
    cr_assert(send(fd, streams[3], strlen(streams[3]), MSG_NOSIGNAL) > 0);
    char buf[8192];
    bool closed;
    drain(fd, buf, sizeof buf, 3000, &closed);
    close(fd);
    cr_assert_eq(count_replies(buf), 3, "%s", buf);
    fd = tcp_open(d.port);
    cr_assert(send(fd, streams[0], strlen(streams[0]), MSG_NOSIGNAL) > 0);
    drain(fd, buf, sizeof buf, 3000, &closed);
    close(fd);
    cr_assert(closed && strstr(buf, "HTTP/1.1 401"), "%s", buf);
    assert_idle("pipelined streams");
    /* Sequential keep-alive requests on one connection still work. */
    fd = tcp_open(d.port);
    for (int i = 0; i < 3; i++) {
        const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        cr_assert(send(fd, req, sizeof req - 1, MSG_NOSIGNAL) > 0);
        size_t got = 0;
        buf[0] = '\0';
        long long deadline = mono_ms() + 5000;
        while (!strstr(buf, "\"serving\"") && mono_ms() < deadline) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            cr_assert_gt(poll(&p, 1, 5000), 0);
            ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
            cr_assert_gt(n, 0, "keep-alive request %d: closed", i);
            got += (size_t)n;
            buf[got] = '\0';
        }
        cr_assert(strstr(buf, "\"serving\""), "keep-alive request %d", i);
    }
    close(fd);
    ws_close_fd(&by);
}

/* ---- a seeded stream fuzzer: HTTP/1.1 as a hostile or broken client speaks it ---- */

static unsigned long long rng_state;

static unsigned rnd(unsigned n)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)((rng_state >> 33) % n);
}

static size_t fuzz_request(char *out, size_t cap)
{
    static const char *const methods[] = {"GET", "POST",    "PATCH", "HEAD", "DELETE",
                                          "PUT", "OPTIONS", "GE T",  "",     "POST"};
    static const char *const paths[] = {"/healthz",
                                        "/api/v1/whoami",
                                        "/api/v1/login",
                                        "/api/v1/uploads",
                                        "/api/v1/uploads/abc",
                                        "/api/v1/blobs/00",
                                        "/api/v1/ws",
                                        "/",
                                        "/api/v1/",
                                        "/api/v1/sync",
                                        "*",
                                        "/api/v1/uploads/../../etc/passwd"};
    char body[600];
    size_t blen = rnd(4) ? rnd(80) : rnd(sizeof body);
    for (size_t i = 0; i < blen; i++)
        body[i] = rnd(3) ? (char)(' ' + rnd(95)) : (char)rnd(256);
    if (blen >= 2 && rnd(2)) {
        body[0] = '{';
        body[blen - 1] = '}';
    }
    size_t n = (size_t)snprintf(out, cap, "%s %s HTTP/1.%d\r\nHost: x\r\n",
                                methods[rnd(sizeof methods / sizeof methods[0])],
                                paths[rnd(sizeof paths / sizeof paths[0])], rnd(5) ? 1 : 0);
    switch (rnd(8)) { /* the length: right, short, long, absent, nonsense, twice */
    case 0:
    case 1:
    case 2:
        n += (size_t)snprintf(out + n, cap - n, "Content-Length: %zu\r\n", blen);
        break;
    case 3:
        n += (size_t)snprintf(out + n, cap - n, "Content-Length: %zu\r\n", blen / 2);
        break;
    case 4:
        n += (size_t)snprintf(out + n, cap - n, "Content-Length: %zu\r\n", blen + rnd(50));
        break;
    case 5:
        n += (size_t)snprintf(out + n, cap - n, "Content-Length: %s\r\n",
                              rnd(2) ? "-1" : "99999999999999999999");
        break;
    case 6:
        n += (size_t)snprintf(out + n, cap - n, "Content-Length: %zu\r\nContent-Length: 1\r\n",
                              blen);
        break;
    default:
        break;
    }
    static const char *const extra[] = {"Transfer-Encoding: chunked\r\n",
                                        "Connection: close\r\n",
                                        "Connection: keep-alive\r\n",
                                        "Expect: 100-continue\r\n",
                                        "Upgrade: websocket\r\nConnection: Upgrade\r\n",
                                        "Authorization: Bearer x\r\n",
                                        "Upload-Offset: 0\r\nTus-Resumable: 1.0.0\r\n",
                                        "Range: bytes=0-\r\n",
                                        "X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"};
    for (unsigned k = rnd(3); k; k--)
        n += (size_t)snprintf(out + n, cap - n, "%s", extra[rnd(sizeof extra / sizeof extra[0])]);
    n += (size_t)snprintf(out + n, cap - n, "\r\n");
    if (n + blen < cap) {
        memcpy(out + n, body, blen);
        n += blen;
    }
    return n;
}

Test(transport, random_http_streams_never_stall_the_loop)
{
    kzd_setup_with(&d, "\"requests_per_second\":100000,\"request_burst\":1000000,"
                       "\"http_timeout_s\":2");
    const char *seed = getenv("KIZUNA_HTTPFUZZ_SEED");
    const char *rounds_env = getenv("KIZUNA_HTTPFUZZ_ROUNDS");
    rng_state = seed ? strtoull(seed, NULL, 10) : 20261129;
    int rounds = rounds_env ? atoi(rounds_env) : 1000;
    cr_log_info("http stream fuzz: seed %llu, %d rounds", rng_state, rounds);
    for (int round = 0; round < rounds; round++) {
        char stream[8192];
        size_t len = 0;
        for (unsigned k = 1 + rnd(4); k; k--)
            len += fuzz_request(stream + len, sizeof stream - len);
        int fd = tcp_open(d.port);
        cr_assert_geq(fd, 0, "round %d: cannot connect", round);
        /* Split into writes at random points, some with a pause between. */
        for (size_t off = 0; off < len;) {
            size_t piece = rnd(3) ? len - off : 1 + rnd((unsigned)(len - off));
            if (send(fd, stream + off, piece, MSG_NOSIGNAL) <= 0)
                break;
            off += piece;
            if (off < len && !rnd(4)) {
                struct timespec ts = {0, 2000000};
                nanosleep(&ts, NULL);
            }
        }
        if (rnd(3) == 0)
            shutdown(fd, SHUT_WR);
        char buf[16384];
        bool closed;
        drain(fd, buf, sizeof buf, rnd(2) ? 30 : 150, &closed);
        close(fd);
        if (round % 40 == 39)
            assert_serving("a batch of random streams");
    }
    assert_serving("random streams");
    /* Connections the fuzzer left half-open time out (http_timeout_s); none may spin. */
    assert_idle("random streams");
}

/* ---- the listening address ---- */

Test(transport, listen_binds_exactly_the_address_asked_for)
{
    kzd_setup(&d); /* --listen 127.0.0.1:PORT */
    int fd = connect_to(AF_INET, "127.0.0.1", d.port);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_lt(connect_to(AF_INET, "127.0.0.2", d.port), 0, "127.0.0.2 must be refused");
    cr_assert_lt(connect_to(AF_INET6, "::1", d.port), 0, "::1 must be refused");

    /* And [::1] means IPv6 loopback only. */
    cr_assert_eq(kzd_stop(&d), 0);
    char config[400];
    snprintf(config, sizeof config, "%s", d.config);
    const char *argv[] = {KIZUNAD_PATH, "serve",    "--data",  d.dir, "--config",
                          config,       "--listen", "[::1]:0", NULL};
    int out;
    pid_t pid = spawn_reader(argv, NULL, &out);
    char line[4096];
    size_t len = 0;
    bool up = read_until(out, line, sizeof line, &len, "listening on", 10000);
    char *at = strstr(line, "listening on");
    up = up && read_until(out, line, sizeof line, &len, "\n", 10000);
    at = strstr(line, "listening on [::1]:");
    int port = 0;
    if (at)
        port = atoi(at + strlen("listening on [::1]:"));
    bool v6 = false, v4 = true;
    if (up && port > 0) {
        fd = connect_to(AF_INET6, "::1", port);
        v6 = fd >= 0;
        if (fd >= 0)
            close(fd);
        fd = connect_to(AF_INET, "127.0.0.1", port);
        v4 = fd >= 0;
        if (fd >= 0)
            close(fd);
    }
    kill(pid, SIGTERM);
    close(out);
    cr_assert(up && port > 0, "no listening line for [::1]: %s", line);
    cr_assert(v6, "[::1] does not answer");
    cr_assert_not(v4, "127.0.0.1 must be refused when [::1] was asked for");
}

Test(transport, a_listen_address_that_is_not_an_address_is_refused)
{
    kzd_setup(&d);
    cr_assert_eq(kzd_stop(&d), 0);
    char out[2048];
    const char *argv[] = {KIZUNAD_PATH, "serve",    "--data",         d.dir, "--config",
                          d.config,     "--listen", "localhost:8080", NULL};
    int st = run_capture(argv, NULL, NULL, out, sizeof out);
    cr_assert_neq(st, 0, "kizunad served on an ambiguous host name");
}

/* ---- deadlines ---- */

Test(transport, trickling_bodies_are_cut_off_and_steady_ones_finish)
{
    kzd_setup_with(&d, "\"http_timeout_s\":1,\"http_min_bytes_per_s\":50");
    struct ws by;
    cr_assert(ws_open(&by, d.port));
    cr_assert(ws_login(&by, "admin", TEST_ADMIN_PASSWORD, NULL));
    enum { SLOW = 100 };
    int fds[SLOW];
    const char head[] = "POST /api/v1/whoami HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n";
    for (int i = 0; i < SLOW; i++) {
        fds[i] = tcp_open(d.port);
        cr_assert_geq(fds[i], 0);
        cr_assert(send(fds[i], head, sizeof head - 1, MSG_NOSIGNAL) > 0);
    }
    /* One body byte per connection every 300 ms: 3 bytes a second, where 50 are needed. */
    int open_left = SLOW;
    long long deadline = mono_ms() + 8000;
    while (open_left && mono_ms() < deadline) {
        open_left = 0;
        for (int i = 0; i < SLOW; i++) {
            if (fds[i] < 0)
                continue;
            char c;
            if (recv(fds[i], &c, 1, MSG_DONTWAIT) == 0 || send(fds[i], "{", 1, MSG_NOSIGNAL) < 0) {
                close(fds[i]);
                fds[i] = -1;
                continue;
            }
            open_left++;
        }
        struct timespec ts = {0, 300000000};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < SLOW; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    cr_assert_eq(open_left, 0, "%d trickling bodies are still open after 8 s", open_left);
    cJSON *r = ws_call(&by, "{\"id\":5,\"op\":\"whoami\"}");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);

    /* A slow but steady body (200 bytes a second, over 2.5 windows) is not a stall. */
    char body[500];
    memset(body, ' ', sizeof body);
    body[0] = '{';
    body[sizeof body - 1] = '}';
    int fd = tcp_open(d.port);
    char h2[128];
    int hn = snprintf(h2, sizeof h2,
                      "POST /api/v1/whoami HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
                      sizeof body);
    cr_assert(send(fd, h2, (size_t)hn, MSG_NOSIGNAL) > 0);
    for (size_t off = 0; off < sizeof body; off += 20) {
        cr_assert_eq(send(fd, body + off, 20, MSG_NOSIGNAL), 20, "cut off at %zu", off);
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    char buf[2048];
    bool closed;
    drain(fd, buf, sizeof buf, 3000, &closed);
    close(fd);
    cr_assert(strstr(buf, "HTTP/1.1 401"), "the steady body got no answer: %s", buf);
    ws_close_fd(&by);
}

/* ---- descriptors ---- */

Test(transport, running_out_of_descriptors_refuses_calmly_and_recovers)
{
    /* The server gets 64 descriptors; fd_reserve 16 leaves room for 48 connections and files. */
    setenv("KIZUNA_TEST_WRAPPER", "prlimit --nofile=64:64", 1);
    kzd_setup_with(&d, "\"fd_reserve\":16,\"http_timeout_s\":30");
    unsetenv("KIZUNA_TEST_WRAPPER");
    struct ws by;
    cr_assert(ws_open(&by, d.port));
    cr_assert(ws_login(&by, "admin", TEST_ADMIN_PASSWORD, NULL));
    enum { MANY = 90 };
    int fds[MANY], refused = 0;
    for (int i = 0; i < MANY; i++) {
        fds[i] = tcp_open(d.port);
        cr_assert_geq(fds[i], 0);
    }
    /* The ones past the limit are told why and closed at once; the rest stay open. */
    for (int i = 0; i < MANY; i++) {
        char buf[1024];
        bool closed;
        drain(fds[i], buf, sizeof buf, 100, &closed);
        if (closed) {
            cr_assert(strstr(buf, "HTTP/1.1 503") && strstr(buf, "\"unavailable\""), "%s", buf);
            refused++;
            close(fds[i]);
            fds[i] = -1;
        }
    }
    cr_assert_geq(refused, MANY - 48, "only %d of %d were refused", refused, MANY);
    cr_assert_lt(refused, MANY, "nobody was admitted");
    cJSON *r = ws_call(&by, "{\"id\":5,\"op\":\"whoami\"}");
    cr_assert_str_eq(reply_code(r), "ok", "the bystander is not served");
    cJSON_Delete(r);
    assert_idle("running out of descriptors");
    /* Recovers by itself once clients leave. */
    for (int i = 0; i < MANY; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    long long deadline = mono_ms() + 5000;
    int st = 0;
    char body[256];
    while (mono_ms() < deadline &&
           (st = http_request(d.port, "GET", "/healthz", NULL, NULL, body, sizeof body)) != 200)
        ;
    cr_assert_eq(st, 200, "no recovery: %s", body);
    ws_close_fd(&by);
}

/* Appends one masked client frame (fin, opcode) carrying data to out[*n]. */
static void frame_append(unsigned char *out, size_t *n, bool fin, int opcode, const char *data,
                         size_t len)
{
    out[(*n)++] = (unsigned char)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        out[(*n)++] = (unsigned char)(0x80 | len);
    } else {
        out[(*n)++] = 0x80 | 126;
        out[(*n)++] = (unsigned char)(len >> 8);
        out[(*n)++] = (unsigned char)len;
    }
    const unsigned char mask[4] = {0x9a, 0x3c, 0x55, 0xe1};
    memcpy(out + *n, mask, 4);
    *n += 4;
    for (size_t i = 0; i < len; i++)
        out[(*n)++] = (unsigned char)data[i] ^ mask[i & 3];
}

/* Requests larger than a read (ws_rx_chunk_bytes), each in three WebSocket fragments, written
 * in small pieces taking turns across connections: each must reach the core whole and alone
 * (ws.c reassembles split requests per connection, whole ones from one shared buffer), so
 * every reply carries its own request's id, in order, on its own connection. */
Test(transport, split_requests_interleaved_across_connections_stay_apart)
{
    kzd_setup_with(&d, "\"requests_per_second\":100000,\"request_burst\":1000000");
    enum { CONNS = 6, REQS = 12, IDLEN = 3000 };
    struct ws w[CONNS];
    static unsigned char wire[CONNS][REQS * (IDLEN + 200)];
    size_t wire_len[CONNS] = {0}, sent[CONNS] = {0};
    static char ids[CONNS][REQS][IDLEN + 1];
    for (int c = 0; c < CONNS; c++) {
        cr_assert(ws_open(&w[c], d.port));
        cr_assert(ws_login(&w[c], "admin", TEST_ADMIN_PASSWORD, NULL));
        for (int r = 0; r < REQS; r++) {
            /* An id no other request shares at any offset: connection, request, then a fill
             * that depends on both. */
            int k = snprintf(ids[c][r], IDLEN + 1, "c%d-r%d-", c, r);
            for (int i = k; i < IDLEN; i++)
                ids[c][r][i] = (char)('a' + (i * 7 + c * 3 + r) % 26);
            ids[c][r][IDLEN] = '\0';
            char req[IDLEN + 64];
            int len = snprintf(req, sizeof req, "{\"op\":\"whoami\",\"id\":\"%s\"}", ids[c][r]);
            int a = len / 3, b = 2 * len / 3;
            frame_append(wire[c], &wire_len[c], false, 0x1, req, (size_t)a);
            frame_append(wire[c], &wire_len[c], false, 0x0, req + a, (size_t)(b - a));
            frame_append(wire[c], &wire_len[c], true, 0x0, req + b, (size_t)(len - b));
        }
    }
    /* Round robin, 700 bytes at a time, with TCP_NODELAY so the pieces leave as written. */
    for (int c = 0; c < CONNS; c++) {
        int one = 1;
        setsockopt(w[c].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    for (bool more = true; more;) {
        more = false;
        for (int c = 0; c < CONNS; c++) {
            size_t n = wire_len[c] - sent[c] < 700 ? wire_len[c] - sent[c] : 700;
            if (!n)
                continue;
            ssize_t k = write(w[c].fd, wire[c] + sent[c], n);
            cr_assert_gt(k, 0, "write to connection %d", c);
            sent[c] += (size_t)k;
            more = true;
        }
    }
    for (int c = 0; c < CONNS; c++) {
        for (int r = 0; r < REQS; r++) {
            char *text = ws_recv_text(&w[c], 10000);
            cr_assert_not_null(text, "connection %d: no reply %d", c, r);
            cJSON *reply = cJSON_Parse(text);
            free(text);
            cr_assert_not_null(reply);
            const cJSON *id = cJSON_GetObjectItem(reply, "id");
            cr_assert(cJSON_IsString(id), "connection %d reply %d has no string id", c, r);
            cr_assert_str_eq(id->valuestring, ids[c][r],
                             "connection %d reply %d answers another request", c, r);
            cr_assert_str_eq(reply_code(reply), "ok");
            cJSON_Delete(reply);
        }
        ws_close_fd(&w[c]);
    }
}
