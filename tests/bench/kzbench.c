/* kzbench - Kizuna's load generator.
 *
 * It starts the server under test itself (kizunad on a temporary data directory, or
 * mosquitto as the reference), drives it over loopback with many connections on one
 * libwebsockets event loop, and prints one JSON line per result: the scenario, its
 * parameters, messages sent and delivered, delivered msgs/s, latency from send to receipt
 * (p50/p95/p99/max; in `rooms`, from the *scheduled* send: see rooms_tick), errors, and the
 * server's CPU seconds and peak RSS from /proc. tests/bench/indep/ is a second, independent
 * client for `rooms`, to check these figures against.
 *
 *   kzbench --kizunad PATH --scenario fanout --members 100 --messages 2000
 *   kzbench --mosquitto /usr/sbin/mosquitto --scenario fanout --members 100 --messages 2000
 *
 * Scenarios: fanout, rooms, ingest, idle, resume, notice-report, login-storm, notify (see
 * usage()).
 * Kizuna is spoken over its WebSocket protocol; mosquitto over MQTT 3.1.1 on TCP with QoS 1,
 * one topic per room (Debian's mosquitto is built without WebSocket support). Every loop is
 * bounded by a count and a deadline and stops by itself. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pushsink.h"
#include "pushsvc.h"

#define PASSWORD "bench-password-1"

/* ---- options ---- */

static struct {
    const char *kizunad, *mosquitto, *scenario;
    int members, messages, window, rooms, per_room, senders, conns, recipients, logins;
    double rate, duration, drain;
    const char *rates;
    const char *set; /* one extra kizunad setting, NAME=VALUE, for experiments */
    int service_delay_ms, push_concurrency, coalesce_ms; /* notify */
    const char *kind;                                    /* notify: rollcall or notice */
    const char *channel;                                 /* notify: push or mail */
    int mail_concurrency;
    double deadline; /* notify: longest wait for the pushes */
} opt = {.coalesce_ms = 100,
         .kind = "rollcall",
         .channel = "push",
         .deadline = 300,
         .members = 100,
         .messages = 1000,
         .window = 64,
         .rooms = 100,
         .per_room = 10,
         .senders = 50,
         .conns = 1000,
         .recipients = 10000,
         .logins = 1000,
         .rate = 1,
         .duration = 10,
         .drain = 10,
         .rates = NULL};

static void usage(void)
{
    fputs("usage: kzbench (--kizunad PATH | --mosquitto PATH) --scenario NAME [options]\n"
          "  fanout         --members N --messages M --window W\n"
          "  rooms          --rooms R --per-room K --rate MSGS_PER_S_PER_MEMBER --duration S\n"
          "                 [--rates 1,5,20: several runs, one line each]\n"
          "                 [--drain S: wait up to S s (default 10) for late deliveries]\n"
          "  ingest         --senders S --messages M (total) --window W   (kizunad only)\n"
          "  idle           --conns C\n"
          "  resume         --messages M                                   (kizunad only)\n"
          "  notice-report  --recipients N                                 (kizunad only)\n"
          "  login-storm    --logins L --per-room K --rate R               (kizunad only)\n"
          "  notify         --recipients N --per-room K --rate R           (kizunad only)\n"
          "                 [--service-delay-ms D: the push stand-in answers D ms late]\n"
          "                 [--push-concurrency C] [--coalesce-ms MS (default 100)]\n"
          "                 [--kind rollcall|notice: an urgent roll-call (default) or notice]\n"
          "                 [--channel push|mail: Web Push (default) or e-mail through an SMTP\n"
          "                  stand-in; --mail-concurrency C]\n"
          "                 [--deadline S: longest wait for the N pushes (default 300)]\n",
          stderr);
    exit(2);
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- the server under test ---- */

static struct {
    pid_t pid;
    int port;
    char dir[64];
} srv;

static void server_stats(double *cpu_s, long *hwm_kb, long *rss_kb)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)srv.pid);
    FILE *f = fopen(path, "r");
    *cpu_s = 0;
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
        /* Fields 14 and 15 (utime, stime) follow the ")" that ends the command name. */
        char *p = strrchr(buf, ')');
        unsigned long ut = 0, st = 0;
        if (p &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
            *cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    }
    snprintf(path, sizeof path, "/proc/%d/status", (int)srv.pid);
    f = fopen(path, "r");
    *hwm_kb = *rss_kb = 0;
    while (f && fgets(buf, sizeof buf, f)) {
        sscanf(buf, "VmHWM: %ld", hwm_kb);
        sscanf(buf, "VmRSS: %ld", rss_kb);
    }
    if (f)
        fclose(f);
}

static bool wait_port_line(int fd, int timeout_ms)
{
    char line[256];
    size_t len = 0;
    long long deadline = now_ns() + (long long)timeout_ms * 1000000;
    while (len < sizeof line - 1 && now_ns() < deadline) {
        struct timespec d = {0, 5000000};
        ssize_t n = read(fd, line + len, sizeof line - 1 - len);
        if (n > 0) {
            len += (size_t)n;
            line[len] = '\0';
            if (strstr(line, "listening on") && strchr(line, '\n'))
                return sscanf(strstr(line, "listening on"), "listening on 127.0.0.1:%d",
                              &srv.port) == 1;
        } else if (n == 0) {
            return false;
        } else {
            nanosleep(&d, NULL); /* the pipe is non-blocking; the port line is bounded */
        }
    }
    return false;
}

/* In the server's child before exec: even if kzbench crashes or is killed with SIGKILL, the
 * server goes with it (tests/integration/test_harness.c checks). SIGKILL, as a stuck server
 * ignores SIGTERM; and if kzbench died before prctl, the child leaves at once. */
static void die_with_parent(pid_t parent)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(127);
}

/* Starts kizunad on a fresh data directory. cheap_hashes: argon2id at its minimum, so that
 * setting up thousands of users is not what the run measures. extra: further settings,
 * NAME=VALUE, NULL-terminated (at most 8). */
static void start_kizunad(bool cheap_hashes, const char *const *extra)
{
    snprintf(srv.dir, sizeof srv.dir, "/tmp/kzbench-XXXXXX");
    if (!mkdtemp(srv.dir)) {
        perror("mkdtemp");
        exit(1);
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "KIZUNA_ADMIN_PASSWORD=%s %s init --data %s/data --set argon2_opslimit=1 "
             "--set argon2_memlimit_kib=8 > /dev/null",
             PASSWORD, opt.kizunad, srv.dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "kzbench: kizunad init failed\n");
        exit(1);
    }
    int out[2];
    if (pipe(out) != 0)
        exit(1);
    pid_t parent = getpid();
    srv.pid = fork();
    if (srv.pid == 0) {
        die_with_parent(parent);
        char data[128], log[128];
        snprintf(data, sizeof data, "%s/data", srv.dir);
        snprintf(log, sizeof log, "%s/kizunad.log", srv.dir);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(out[1], 1);
        dup2(fd, 2);
        /* All load comes from one address, at rates no person makes: lift the per-address
         * and per-connection limits, which protect against exactly that. */
        const char *argv[48] = {opt.kizunad,   "serve",
                                "--data",      data,
                                "--listen",    "127.0.0.1:0",
                                "--log-level", "warn",
                                "--set",       "max_connections=20000",
                                "--set",       "room_max_members=20000",
                                "--set",       "max_connections_per_address=20000",
                                "--set",       "requests_per_second=100000",
                                "--set",       "request_burst=1000000"};
        int n = 18;
        if (cheap_hashes) {
            argv[n++] = "--set";
            argv[n++] = "argon2_opslimit=1";
            argv[n++] = "--set";
            argv[n++] = "argon2_memlimit_kib=8";
        }
        for (int i = 0; extra && extra[i] && i < 8; i++) {
            argv[n++] = "--set";
            argv[n++] = extra[i];
        }
        argv[n] = NULL;
        execv(opt.kizunad, (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    if (!wait_port_line(out[0], 20000)) {
        fprintf(stderr, "kzbench: kizunad did not start (see %s/kizunad.log)\n", srv.dir);
        exit(1);
    }
    close(out[0]);
}

/* A free loopback port, as the kernel hands one out for port 0. mosquitto prints no port line,
 * so we must choose: a fixed formula collided with ports in use (another test's server). The
 * port is free when we close it; if mosquitto still loses it, start_mosquitto tries again. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Starts mosquitto on port and waits until it accepts; false if it exited first or the
 * deadline passed (it is then stopped). */
static bool mosquitto_try(const char *conf, int port)
{
    FILE *f = fopen(conf, "w");
    if (!f)
        return false;
    fprintf(f,
            "listener %d 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n"
            "persistence false\n",
            port);
    /* Started as root, mosquitto drops to its own user, which clears the parent-death signal:
     * a SIGKILLed kzbench would leave it running. As root it keeps the signal. */
    if (geteuid() == 0)
        fputs("user root\n", f);
    fclose(f);
    pid_t parent = getpid();
    srv.pid = fork();
    if (srv.pid == 0) {
        die_with_parent(parent);
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(opt.mosquitto, opt.mosquitto, "-c", conf, (char *)NULL);
        _exit(127);
    }
    /* Ready when it accepts a connection, and only while it is alive (a server of someone
     * else's on that port would accept too); bounded by a deadline. */
    for (int i = 0; i < 400; i++) {
        int status;
        if (waitpid(srv.pid, &status, WNOHANG) == srv.pid) {
            srv.pid = 0;
            return false;
        }
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        close(fd);
        if (ok)
            return true;
        struct timespec d = {0, 10000000};
        nanosleep(&d, NULL);
    }
    kill(srv.pid, SIGKILL);
    waitpid(srv.pid, NULL, 0);
    srv.pid = 0;
    return false;
}

static void start_mosquitto(void)
{
    snprintf(srv.dir, sizeof srv.dir, "/tmp/kzbench-XXXXXX");
    if (!mkdtemp(srv.dir))
        exit(1);
    char conf[128];
    snprintf(conf, sizeof conf, "%s/mosquitto.conf", srv.dir);
    for (int attempt = 0; attempt < 5; attempt++) {
        srv.port = free_port();
        if (srv.port > 0 && mosquitto_try(conf, srv.port))
            return;
    }
    fprintf(stderr, "kzbench: mosquitto did not start (last port %d)\n", srv.port);
    exit(1);
}

static void stop_server(void)
{
    if (srv.pid < 0)
        return; /* already stopped and cleaned up */
    if (srv.pid > 0) {
        kill(srv.pid, SIGTERM);
        int status;
        for (int i = 0; i < 500 && waitpid(srv.pid, &status, WNOHANG) == 0; i++) {
            struct timespec d = {0, 10000000};
            nanosleep(&d, NULL);
        }
        kill(srv.pid, SIGKILL);
        waitpid(srv.pid, &status, 0);
        srv.pid = 0;
    }
    char cmd[128];
    if (getenv("KZBENCH_KEEP")) {
        fprintf(stderr, "kzbench: kept %s\n", srv.dir);
        return;
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", srv.dir);
    if (srv.dir[0] && system(cmd) != 0)
        fprintf(stderr, "kzbench: could not remove %s\n", srv.dir);
    srv.pid = -1;
}

static void on_signal(int sig)
{
    (void)sig;
    exit(130); /* runs stop_server through atexit */
}

/* ---- latencies ---- */

/* Durations in microseconds; sorted by samples_sort before percentiles are read. */
struct samples {
    unsigned *us;
    size_t n, cap;
};

static struct samples lat;      /* send (or scheduled send) to receipt */
static struct samples send_lag; /* rooms: how late kzbench's own sends left, after schedule */

static void samples_add(struct samples *s, long long d_ns)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 65536;
        s->us = realloc(s->us, s->cap * sizeof *s->us);
    }
    long long d = d_ns / 1000;
    s->us[s->n++] = d < 0 ? 0 : (unsigned)d;
}

static void lat_add(long long sent_ns)
{
    samples_add(&lat, now_ns() - sent_ns);
}

static int cmp_u(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return x < y ? -1 : x > y;
}

static void samples_sort(struct samples *s)
{
    if (s->n)
        qsort(s->us, s->n, sizeof *s->us, cmp_u);
}

/* The p-th percentile in ms of sorted samples (the sample at index p x (n-1), rounded down). */
static double samples_pct(const struct samples *s, double p)
{
    if (!s->n)
        return 0;
    size_t i = (size_t)(p * (double)(s->n - 1));
    return s->us[i] / 1000.0;
}

static double pct(double p)
{
    return samples_pct(&lat, p);
}

/* ---- connections on one event loop ---- */

enum kind { KZ, MQTT };

struct out {
    unsigned char *buf; /* LWS_PRE + data */
    size_t len;
    struct out *next;
};

struct conn;
typedef void (*msg_fn)(struct conn *c, const unsigned char *data, size_t len);

struct conn {
    enum kind kind;
    int idx;
    struct lws *wsi;
    bool open, closed, failed;
    struct out *q_head, *q_tail;
    unsigned char *rx;
    size_t rx_len, rx_cap;
    msg_fn on_msg;
    void *user;
    long long next_id;
    /* scenario state */
    int outstanding, sent, acked, received, step;
    long long next_send_ns;
    char token[64];
    char room[64];
    int user_no;
    void (*more)(struct conn *c); /* sends the next messages the window allows */
};

static struct lws_context *ctx;
static lws_sorted_usec_list_t tick_sul;
static bool timed_out;
static int errors;

static void queue(struct conn *c, const void *data, size_t len)
{
    struct out *o = malloc(sizeof *o);
    o->buf = malloc(LWS_PRE + len);
    memcpy(o->buf + LWS_PRE, data, len);
    o->len = len;
    o->next = NULL;
    if (c->q_tail)
        c->q_tail->next = o;
    else
        c->q_head = o;
    c->q_tail = o;
    if (c->wsi && c->open)
        lws_callback_on_writable(c->wsi);
}

/* Writes queued frames while the socket takes them (whole frames on http/1: see the same
 * loop in server/transport.c). */
static int write_one(struct conn *c, struct lws *wsi)
{
    int mode = c->kind == KZ ? LWS_WRITE_TEXT : LWS_WRITE_RAW;
    for (int burst = 0; c->q_head && burst < 64; burst++) {
        if (burst && lws_send_pipe_choked(wsi))
            break;
        struct out *o = c->q_head;
        if (lws_write(wsi, o->buf + LWS_PRE, o->len, mode) < (int)o->len)
            return -1;
        c->q_head = o->next;
        if (!c->q_head)
            c->q_tail = NULL;
        free(o->buf);
        free(o);
    }
    if (c->q_head)
        lws_callback_on_writable(wsi);
    return 0;
}

static void rx_add(struct conn *c, const void *in, size_t len)
{
    if (c->rx_len + len > c->rx_cap) {
        c->rx_cap = (c->rx_len + len) * 2 + 4096;
        c->rx = realloc(c->rx, c->rx_cap);
    }
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
}

static void mqtt_rx(struct conn *c);

static int cb_ws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                 size_t len)
{
    (void)user;
    struct conn *c = lws_get_opaque_user_data(wsi);
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        c->open = true;
        if (c->q_head)
            lws_callback_on_writable(wsi);
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        c->failed = c->closed = true;
        c->wsi = NULL;
        errors++;
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        rx_add(c, in, len);
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
            c->on_msg(c, c->rx, c->rx_len);
            c->rx_len = 0;
        }
        break;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return write_one(c, wsi);
    case LWS_CALLBACK_CLIENT_CLOSED:
        c->closed = true;
        c->open = false;
        c->wsi = NULL;
        break;
    case LWS_CALLBACK_RAW_CONNECTED:
        c->open = true;
        if (c->q_head)
            lws_callback_on_writable(wsi);
        break;
    case LWS_CALLBACK_RAW_RX:
        rx_add(c, in, len);
        mqtt_rx(c);
        break;
    case LWS_CALLBACK_RAW_WRITEABLE:
        return write_one(c, wsi);
    case LWS_CALLBACK_RAW_CLOSE:
        c->closed = true;
        c->open = false;
        c->wsi = NULL;
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"kizuna.v1", cb_ws, 0, 65536, 0, NULL, 0},
    {"mqtt-raw", cb_ws, 0, 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void conn_open(struct conn *c, enum kind kind, msg_fn on_msg)
{
    c->kind = kind;
    c->on_msg = on_msg;
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = ctx;
    ci.address = "127.0.0.1";
    ci.port = srv.port;
    ci.host = "127.0.0.1";
    ci.origin = "127.0.0.1";
    ci.opaque_user_data = c;
    ci.pwsi = &c->wsi;
    if (kind == KZ) {
        ci.path = "/api/v1/ws";
        ci.protocol = "kizuna.v1";
    } else {
        ci.method = "RAW";
        ci.local_protocol_name = "mqtt-raw";
    }
    if (!lws_client_connect_via_info(&ci)) {
        c->failed = c->closed = true;
        errors++;
    }
}

static void conn_free(struct conn *c)
{
    for (struct out *o = c->q_head, *n; o; o = n) {
        n = o->next;
        free(o->buf);
        free(o);
    }
    free(c->rx);
    memset(c, 0, sizeof *c);
}

static void tick_cb(lws_sorted_usec_list_t *sul);
static void (*tick_fn)(void);
static int tick_ms = 0;

static void tick_cb(lws_sorted_usec_list_t *sul)
{
    (void)sul;
    if (tick_fn)
        tick_fn();
    if (tick_ms)
        lws_sul_schedule(ctx, 0, &tick_sul, tick_cb, (lws_usec_t)tick_ms * 1000);
}

/* A heartbeat keeps lws_service() returning at least every 20 ms, so every wait can check its
 * deadline against the clock (a single far-off timer did not always wake the loop). */
static lws_sorted_usec_list_t heartbeat_sul;
static void heartbeat_cb(lws_sorted_usec_list_t *sul)
{
    lws_sul_schedule(ctx, 0, sul, heartbeat_cb, 20 * LWS_US_PER_MS);
}

/* Services the loop until done() or the deadline. */
static bool run_until(bool (*done)(void), double seconds)
{
    if (getenv("KZBENCH_DEBUG"))
        fprintf(stderr, "kzbench: %.3f run_until %.1fs\n", now_ns() / 1e9, seconds);
    long long deadline = now_ns() + (long long)(seconds * 1e9);
    timed_out = false;
    while (!done() && !(timed_out = now_ns() >= deadline))
        if (lws_service(ctx, 0) < 0)
            break;
    return done();
}

/* ---- Kizuna protocol helpers ---- */

static void kz_send(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void kz_send(struct conn *c, const char *fmt, ...)
{
    char body[8192], req[8300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    int n = snprintf(req, sizeof req, "{\"id\":%lld,%s}", ++c->next_id, body);
    queue(c, req, (size_t)n);
}

/* ---- MQTT 3.1.1 (just what the reference needs) ---- */

static size_t mqtt_len(unsigned char *p, size_t n)
{
    size_t i = 0;
    do {
        unsigned char b = n % 128;
        n /= 128;
        p[i++] = (unsigned char)(b | (n ? 0x80 : 0));
    } while (n);
    return i;
}

static void mqtt_packet(struct conn *c, unsigned char type, const unsigned char *var, size_t len)
{
    unsigned char buf[16 + 65536];
    buf[0] = type;
    size_t h = 1 + mqtt_len(buf + 1, len);
    memcpy(buf + h, var, len);
    queue(c, buf, h + len);
}

static void mqtt_connect(struct conn *c)
{
    char id[32];
    int idlen = snprintf(id, sizeof id, "b%d", c->idx);
    unsigned char v[64] = {
        0, 4, 'M', 'Q', 'T', 'T', 4, 0x02 /* clean session */, 0, 60, 0, (unsigned char)idlen};
    memcpy(v + 12, id, (size_t)idlen);
    mqtt_packet(c, 0x10, v, 12 + (size_t)idlen);
}

static void mqtt_subscribe(struct conn *c, const char *topic)
{
    unsigned char v[256];
    size_t tl = strlen(topic), n = 0;
    v[n++] = 0;
    v[n++] = 1; /* packet id */
    v[n++] = (unsigned char)(tl >> 8);
    v[n++] = (unsigned char)tl;
    memcpy(v + n, topic, tl);
    n += tl;
    v[n++] = 1; /* QoS 1 */
    mqtt_packet(c, 0x82, v, n);
}

static void mqtt_publish(struct conn *c, const char *topic, const char *payload)
{
    unsigned char v[8192];
    size_t tl = strlen(topic), pl = strlen(payload), n = 0;
    uint16_t id = (uint16_t)(++c->next_id % 65535 + 1);
    v[n++] = (unsigned char)(tl >> 8);
    v[n++] = (unsigned char)tl;
    memcpy(v + n, topic, tl);
    n += tl;
    v[n++] = (unsigned char)(id >> 8);
    v[n++] = (unsigned char)id;
    memcpy(v + n, payload, pl);
    n += pl;
    mqtt_packet(c, 0x32, v, n); /* PUBLISH, QoS 1 */
}

/* Scenario hooks for MQTT: a PUBLISH arrived (payload), or an ack of ours (PUBACK/SUBACK). */
static void (*mqtt_on_publish)(struct conn *c, const char *payload, size_t len);
static void (*mqtt_on_ack)(struct conn *c, unsigned char type);

static void mqtt_rx(struct conn *c)
{
    size_t off = 0;
    while (c->rx_len - off >= 2) {
        size_t len = 0, mul = 1, i = 1;
        for (; i < 5 && off + i < c->rx_len; i++) {
            len += (c->rx[off + i] & 127) * mul;
            mul *= 128;
            if (!(c->rx[off + i] & 128))
                break;
        }
        if (off + i >= c->rx_len || off + i + 1 + len > c->rx_len)
            break; /* incomplete */
        unsigned char type = c->rx[off] & 0xf0;
        const unsigned char *v = c->rx + off + i + 1;
        if (type == 0x30) {
            size_t tl = ((size_t)v[0] << 8) | v[1];
            bool qos1 = (c->rx[off] & 0x06) == 0x02;
            size_t hdr = 2 + tl + (qos1 ? 2 : 0);
            if (qos1) { /* the subscriber's half of QoS 1 */
                unsigned char ack[2] = {v[2 + tl], v[3 + tl]};
                mqtt_packet(c, 0x40, ack, 2);
            }
            if (mqtt_on_publish)
                mqtt_on_publish(c, (const char *)v + hdr, len - hdr);
        } else if (mqtt_on_ack) {
            mqtt_on_ack(c, type);
        }
        off += i + 1 + len;
    }
    memmove(c->rx, c->rx + off, c->rx_len - off);
    c->rx_len -= off;
}

/* ---- shared setup for Kizuna: users, logins, rooms ---- */

static struct conn *conns;
static int nconns;
static int pending_ops;

static bool no_pending(void)
{
    return pending_ops <= 0;
}

/* Generic reply handler for setup connections: counts replies, keeps tokens and room ids. */
static void on_setup_reply(struct conn *c, const unsigned char *data, size_t len)
{
    cJSON *o = cJSON_ParseWithLength((const char *)data, len);
    if (!o)
        return;
    if (cJSON_GetObjectItem(o, "event")) {
        cJSON_Delete(o);
        return;
    }
    if (!cJSON_IsTrue(cJSON_GetObjectItem(o, "ok"))) {
        errors++;
        char *t = cJSON_PrintUnformatted(o);
        fprintf(stderr, "kzbench: setup refused: %s\n", t);
        free(t);
    }
    const cJSON *tok = cJSON_GetObjectItem(o, "token");
    if (cJSON_IsString(tok))
        snprintf(c->token, sizeof c->token, "%s", tok->valuestring);
    const cJSON *room = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "room"), "room");
    if (cJSON_IsString(room))
        snprintf(c->room, sizeof c->room, "%s", room->valuestring);
    cJSON_Delete(o);
    pending_ops--;
}

static struct conn admin;
/* Connections live until lws_context_destroy() has run their close callbacks. */
static struct conn idle_tok, back, *storm;

static void admin_connect(void)
{
    conn_open(&admin, KZ, on_setup_reply);
    pending_ops = 1;
    kz_send(&admin, "\"op\":\"login\",\"login\":\"admin\",\"password\":\"" PASSWORD "\"");
    if (!run_until(no_pending, 30) || errors) {
        fprintf(stderr, "kzbench: admin login failed\n");
        exit(1);
    }
}

/* Creates users u<first>..u<first+n-1> (department dN % depts when depts > 0). */
static void create_users(int first, int n, int depts)
{
    for (int i = first; i < first + n; i++) {
        pending_ops++;
        if (depts)
            kz_send(&admin,
                    "\"op\":\"user.add\",\"login\":\"u%d\",\"password\":\"" PASSWORD
                    "\",\"department\":\"dept%d\"",
                    i, i % depts);
        else
            kz_send(&admin, "\"op\":\"user.add\",\"login\":\"u%d\",\"password\":\"" PASSWORD "\"",
                    i);
    }
    if (!run_until(no_pending, 600)) {
        fprintf(stderr, "kzbench: creating users timed out\n");
        exit(1);
    }
}

/* Creates a room as admin with members u<first>..u<first+n-1>; returns its id (static). */
static const char *create_room(int first, int n)
{
    size_t cap = (size_t)n * 12 + 64;
    char *members = malloc(cap);
    size_t len = 0;
    for (int i = first; i < first + n; i++)
        len += (size_t)snprintf(members + len, cap - len, "%s\"u%d\"", i > first ? "," : "", i);
    char *req = malloc(len + 160);
    snprintf(req, len + 160,
             "{\"id\":%lld,\"op\":\"room.create\",\"name\":\"bench\",\"confirm\":true,"
             "\"members\":[%s]}",
             ++admin.next_id, members);
    queue(&admin, req, strlen(req));
    free(req);
    free(members);
    pending_ops = 1;
    admin.room[0] = '\0';
    run_until(no_pending, 60);
    static char id[64];
    snprintf(id, sizeof id, "%s", admin.room);
    return id;
}

static int live_count;
static bool all_live(void)
{
    return live_count >= nconns;
}

/* Member connections: login, sync (live), then hand frames to the scenario. */
static msg_fn member_on_msg;

static void on_member(struct conn *c, const unsigned char *data, size_t len)
{
    if (c->step >= 2) {
        member_on_msg(c, data, len);
        return;
    }
    cJSON *o = cJSON_ParseWithLength((const char *)data, len);
    if (!o)
        return;
    if (!cJSON_IsTrue(cJSON_GetObjectItem(o, "ok"))) {
        errors++;
    } else if (c->step == 0) {
        c->step = 1;
        kz_send(c, "\"op\":\"sync\"");
    } else if (c->step == 1 && cJSON_IsTrue(cJSON_GetObjectItem(o, "live"))) {
        c->step = 2;
        live_count++;
    }
    cJSON_Delete(o);
}

static void members_connect(int first, int n, msg_fn on_msg)
{
    conns = calloc((size_t)n, sizeof *conns);
    nconns = n;
    live_count = 0;
    member_on_msg = on_msg;
    for (int i = 0; i < n; i++) {
        conns[i].idx = i;
        conns[i].user_no = first + i;
        conn_open(&conns[i], KZ, on_member);
        kz_send(&conns[i], "\"op\":\"login\",\"login\":\"u%d\",\"password\":\"" PASSWORD "\"",
                first + i);
    }
    if (!run_until(all_live, 300)) {
        fprintf(stderr, "kzbench: only %d of %d members went live\n", live_count, n);
        exit(1);
    }
}

/* A msg event's send time from its body "<seq> <send_ns>". */
static long long msg_sent_ns(const unsigned char *data, size_t len)
{
    const char *p = memmem(data, len, "\"body\":\"", 8);
    if (!p)
        return 0;
    long long seq, ns;
    return sscanf(p + 8, "%lld %lld", &seq, &ns) == 2 ? ns : 0;
}

/* ---- results ---- */

static double cpu0;
static long long t0;

static void measure_start(void)
{
    long hwm, rss;
    server_stats(&cpu0, &hwm, &rss);
    t0 = now_ns();
    lat.n = send_lag.n = 0;
}

static void report(const char *params_json, long long sent, long long delivered, long long acked)
{
    double secs = (double)(now_ns() - t0) / 1e9;
    double cpu;
    long hwm, rss;
    server_stats(&cpu, &hwm, &rss);
    samples_sort(&lat);
    double used = cpu - cpu0;
    long long per = delivered ? delivered : acked;
    printf("{\"scenario\":\"%s\",\"server\":\"%s\",\"params\":%s,\"sent\":%lld,\"acked\":%lld,"
           "\"delivered\":%lld,\"seconds\":%.3f,\"delivered_per_s\":%.0f,\"acked_per_s\":%.0f,"
           "\"latency_ms\":{\"p50\":%.3f,\"p95\":%.3f,\"p99\":%.3f,\"max\":%.3f},"
           "\"errors\":%d,\"server_cpu_s\":%.3f,\"server_cpu_us_per_msg\":%.2f,"
           "\"server_peak_rss_kib\":%ld}\n",
           opt.scenario, opt.mosquitto ? "mosquitto" : "kizunad", params_json, sent, acked,
           delivered, secs, secs > 0 ? (double)delivered / secs : 0,
           secs > 0 ? (double)acked / secs : 0, pct(0.50), pct(0.95), pct(0.99),
           lat.n ? lat.us[lat.n - 1] / 1000.0 : 0, errors, used, per ? used * 1e6 / (double)per : 0,
           hwm);
    fflush(stdout);
}

/* ---- fanout ---- */

static struct conn sender;
static long long delivered, acked_total;
static long long want_deliveries;

static void fanout_member_msg(struct conn *c, const unsigned char *data, size_t len)
{
    (void)c;
    long long ns = msg_sent_ns(data, len);
    if (ns && memmem(data, len, "\"event\":\"msg\"", 13)) {
        lat_add(ns);
        delivered++;
    }
}

static char fan_room[64];

static void fanout_send_more(struct conn *c)
{
    while (c->outstanding < opt.window && c->sent < opt.messages) {
        char payload[64];
        snprintf(payload, sizeof payload, "%d %lld", c->sent, now_ns());
        if (opt.mosquitto)
            mqtt_publish(c, fan_room, payload);
        else
            kz_send(c, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"%s\"", fan_room, payload);
        c->sent++;
        c->outstanding++;
    }
}

/* A windowed sender's reply: one more acknowledged, so the window can move on. */
static void on_send_ack(struct conn *c, const unsigned char *data, size_t len)
{
    if (memmem(data, len, "\"event\"", 7))
        return;
    if (!memmem(data, len, "\"ok\":true", 9))
        errors++;
    c->outstanding--;
    c->acked++;
    acked_total++;
    c->more(c);
}

static void mqtt_sender_ack(struct conn *c, unsigned char type)
{
    if (type == 0x40 && c == &sender) { /* PUBACK */
        c->outstanding--;
        c->acked++;
        acked_total++;
        fanout_send_more(c);
    } else if (type == 0x90 || type == 0x20) { /* SUBACK, CONNACK */
        c->step++;
        if (type == 0x90)
            live_count++;
    }
}

static void mqtt_member_publish(struct conn *c, const char *payload, size_t len)
{
    (void)c;
    /* The payload is not terminated: the next packet follows it in the buffer. */
    char text[64];
    snprintf(text, sizeof text, "%.*s", (int)(len < 63 ? len : 63), payload);
    long long seq, ns;
    if (sscanf(text, "%lld %lld", &seq, &ns) == 2) {
        lat_add(ns);
        delivered++;
    }
}

static bool fanout_done(void)
{
    return delivered >= want_deliveries && sender.acked >= opt.messages;
}

static void mqtt_members(int n, const char *topic)
{
    conns = calloc((size_t)n, sizeof *conns);
    nconns = n;
    live_count = 0;
    mqtt_on_ack = mqtt_sender_ack;
    for (int i = 0; i < n; i++) {
        conns[i].idx = i + 1;
        conn_open(&conns[i], MQTT, NULL);
        mqtt_connect(&conns[i]);
        mqtt_subscribe(&conns[i], topic);
    }
    if (!run_until(all_live, 120)) {
        fprintf(stderr, "kzbench: only %d of %d subscribers ready\n", live_count, n);
        exit(1);
    }
}

static void scenario_fanout(void)
{
    char params[160];
    snprintf(params, sizeof params, "{\"members\":%d,\"messages\":%d,\"window\":%d}", opt.members,
             opt.messages, opt.window);
    want_deliveries = (long long)opt.members * opt.messages;
    if (opt.mosquitto) {
        snprintf(fan_room, sizeof fan_room, "room/1");
        mqtt_on_publish = mqtt_member_publish;
        mqtt_members(opt.members, fan_room);
        sender.idx = 0;
        conn_open(&sender, MQTT, NULL);
        mqtt_connect(&sender);
    } else {
        admin_connect();
        create_users(0, opt.members + 1, 0);
        snprintf(fan_room, sizeof fan_room, "%s", create_room(1, opt.members));
        members_connect(1, opt.members, fanout_member_msg);
        /* The sender is the room's creator (admin): a member, not subscribed to its echo. */
        sender = admin;
        memset(&admin, 0, sizeof admin);
        lws_set_opaque_user_data(sender.wsi, &sender);
        sender.on_msg = on_send_ack;
        sender.more = fanout_send_more;
    }
    measure_start();
    fanout_send_more(&sender);
    run_until(fanout_done, 600);
    report(params, sender.sent, delivered, sender.acked);
}

/* ---- rooms: open loop, many rooms ---- */

/* What a user feels: every member sends on a fixed schedule (one message per 1/rate seconds,
 * from a random phase), whether or not its earlier messages were answered, and every message
 * carries its *scheduled* send time ("<seq> <scheduled_ns> <sender> <run>"). Latency runs from
 * that time to the receipt at each other member, so if kzbench's own loop runs late, the
 * lateness counts (no coordinated omission): a user who pressed send during the stall waited
 * through it too. Until 2026-12 the body carried the time the tick actually ran, a late loop
 * sent one overdue message per member per tick, the sender's own echo counted as a delivery
 * and whatever had not arrived 0.5 s after the last send was left out: at 1 msg/s per member
 * that reported a p99 of 8.7 ms where an independent client (tests/bench/indep/) measured
 * 79 ms. send_lag_ms says how late kzbench's sends left against their schedule, so that a run
 * in which the generator itself was the bottleneck can be told apart. */

static char (*room_ids)[64];
static int rooms_run; /* which rate of --rates: stale messages are told apart */
static long long rooms_end_ns = LLONG_MAX;  /* nothing is scheduled at or after it */
static long long rooms_echoes, rooms_stale; /* own messages coming back; a previous rate's */
/* notify: a message scheduled before this time is a baseline sample (lat_before), not one taken
 * during the flood (lat); 0: no split. */
static long long rooms_split_ns;
static struct samples lat_before;
static long long last_delivery_ns, last_ack_ns;

static void rooms_tick(void)
{
    long long now = now_ns();
    long long period = (long long)(1e9 / opt.rate);
    for (int i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        /* Every send that is due, each with its own scheduled time: after a stall, a burst. */
        while (c->next_send_ns <= now && c->next_send_ns < rooms_end_ns) {
            long long at = c->next_send_ns;
            c->next_send_ns += period;
            samples_add(&send_lag, now - at);
            sender.sent++;
            if (!c->open) { /* scheduled and lost: it counts as sent, never delivered */
                errors++;
                continue;
            }
            char payload[96];
            snprintf(payload, sizeof payload, "%d %lld %d %d", c->sent++, at, i, rooms_run);
            int room = i / opt.per_room;
            if (opt.mosquitto) {
                char topic[32];
                snprintf(topic, sizeof topic, "room/%d", room);
                mqtt_publish(c, topic, payload);
            } else {
                kz_send(c, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"%s\"", room_ids[room],
                        payload);
            }
        }
    }
}

static bool rooms_over(void)
{
    return false; /* runs until the deadline */
}

static bool rooms_drained(void)
{
    return delivered >= (long long)sender.sent * (opt.per_room - 1) && acked_total >= sender.sent;
}

/* One message arrived at member c: text is its body (not necessarily terminated after it). */
static void rooms_receipt(struct conn *c, const char *text)
{
    long long seq, at;
    int from, run;
    if (sscanf(text, "%lld %lld %d %d", &seq, &at, &from, &run) != 4) {
        errors++;
        return;
    }
    if (run != rooms_run)
        rooms_stale++;
    else if (from == (int)(c - conns))
        rooms_echoes++; /* Kizuna and MQTT both send a member its own message back */
    else {
        if (at < rooms_split_ns)
            samples_add(&lat_before, now_ns() - at);
        else
            lat_add(at);
        delivered++;
        last_delivery_ns = now_ns();
    }
}

static void rooms_msg(struct conn *c, const unsigned char *data, size_t len)
{
    if (memmem(data, len, "\"event\":\"msg\"", 13)) {
        const char *p = memmem(data, len, "\"body\":\"", 8);
        if (p)
            rooms_receipt(c, p + 8);
        else
            errors++;
    } else if (!memmem(data, len, "\"event\"", 7)) {
        acked_total++;
        last_ack_ns = now_ns();
        if (!memmem(data, len, "\"ok\":true", 9))
            errors++;
    }
}

static void mqtt_rooms_publish(struct conn *c, const char *payload, size_t len)
{
    char text[96]; /* the payload is not terminated: the next packet follows it */
    snprintf(text, sizeof text, "%.*s", (int)(len < sizeof text - 1 ? len : sizeof text - 1),
             payload);
    rooms_receipt(c, text);
}

static void mqtt_rooms_ack(struct conn *c, unsigned char type)
{
    if (type == 0x40) {
        acked_total++;
        last_ack_ns = now_ns();
    } else if (type == 0x90) {
        c->step++;
        live_count++;
    }
}

/* The machine's load average (1, 5, 15 min) as a JSON array: figures from a shared machine
 * are relative, and this says how shared it was. */
static void loadavg_json(char *out, size_t size)
{
    double a[3] = {0, 0, 0};
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &a[0], &a[1], &a[2]) != 3)
            a[0] = a[1] = a[2] = 0;
        fclose(f);
    }
    snprintf(out, size, "[%.2f,%.2f,%.2f]", a[0], a[1], a[2]);
}

static void scenario_rooms_at(double rate, double drain_s)
{
    if (!(rate > 0 && rate <= 1000) || !(drain_s >= 0) || opt.per_room < 2) {
        fprintf(stderr, "kzbench: rooms needs 0 < rate <= 1000, drain >= 0, per-room >= 2\n");
        exit(2);
    }
    opt.rate = rate;
    char params[160];
    snprintf(params, sizeof params,
             "{\"rooms\":%d,\"per_room\":%d,\"rate_per_member\":%g,\"duration_s\":%g}", opt.rooms,
             opt.per_room, rate, opt.duration);
    rooms_run++;
    delivered = acked_total = rooms_echoes = rooms_stale = 0;
    sender.sent = 0;
    measure_start();
    last_delivery_ns = last_ack_ns = t0;
    rooms_end_ns = t0 + (long long)(opt.duration * 1e9);
    for (int i = 0; i < nconns; i++) /* spread the first sends over one period */
        conns[i].next_send_ns = t0 + (long long)(1e9 / rate * (double)rand() / RAND_MAX);
    tick_fn = rooms_tick;
    tick_ms = 1;
    lws_sul_schedule(ctx, 0, &tick_sul, tick_cb, 1000);
    run_until(rooms_over, opt.duration);
    tick_ms = 0;
    tick_fn = NULL;
    lws_sul_cancel(&tick_sul);
    rooms_tick(); /* whatever was scheduled before the end and is still due */
    /* Everything sent is waited for, up to drain_s: a server that fell behind delivers late,
     * and those late deliveries are the ones a user notices. What never arrives is missing. */
    run_until(rooms_drained, drain_s);
    long long end = now_ns();

    double cpu;
    long hwm, rss;
    server_stats(&cpu, &hwm, &rss);
    samples_sort(&lat);
    samples_sort(&send_lag);
    char load[64];
    loadavg_json(load, sizeof load);
    long long sent = sender.sent, expected = sent * (opt.per_room - 1);
    double window = opt.duration;
    double dsecs = (double)(last_delivery_ns - t0) / 1e9, asecs = (double)(last_ack_ns - t0) / 1e9;
    double used = cpu - cpu0;
    printf("{\"scenario\":\"rooms\",\"server\":\"%s\",\"client\":\"kzbench\",\"params\":%s,"
           "\"sent\":%lld,\"acked\":%lld,\"delivered\":%lld,\"expected\":%lld,"
           "\"delivered_fraction\":%.5f,\"echoes\":%lld,\"stale\":%lld,\"seconds\":%.3f,"
           "\"offered_per_s\":%.0f,\"delivered_per_s\":%.0f,\"sent_per_s\":%.0f,"
           "\"acked_per_s\":%.0f,"
           "\"latency_ms\":{\"p50\":%.3f,\"p95\":%.3f,\"p99\":%.3f,\"max\":%.3f},"
           "\"send_lag_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},"
           "\"errors\":%d,\"server_cpu_s\":%.3f,\"server_cpu_us_per_msg\":%.2f,"
           "\"server_peak_rss_kib\":%ld,\"loadavg\":%s}\n",
           opt.mosquitto ? "mosquitto" : "kizunad", params, sent, acked_total, delivered, expected,
           expected ? (double)delivered / (double)expected : 0, rooms_echoes, rooms_stale,
           (double)(end - t0) / 1e9, (double)expected / window,
           dsecs > 0 ? (double)delivered / dsecs : 0, (double)sent / window,
           asecs > 0 ? (double)acked_total / asecs : 0, pct(0.50), pct(0.95), pct(0.99),
           lat.n ? lat.us[lat.n - 1] / 1000.0 : 0, samples_pct(&send_lag, 0.50),
           samples_pct(&send_lag, 0.99), send_lag.n ? send_lag.us[send_lag.n - 1] / 1000.0 : 0,
           errors, used, delivered ? used * 1e6 / (double)delivered : 0, hwm, load);
    fflush(stdout);
}

static void scenario_rooms(void)
{
    int total = opt.rooms * opt.per_room;
    room_ids = calloc((size_t)opt.rooms, sizeof *room_ids);
    if (opt.mosquitto) {
        conns = calloc((size_t)total, sizeof *conns);
        nconns = total;
        live_count = 0;
        mqtt_on_publish = mqtt_rooms_publish;
        mqtt_on_ack = mqtt_rooms_ack;
        for (int i = 0; i < total; i++) {
            char topic[32];
            snprintf(topic, sizeof topic, "room/%d", i / opt.per_room);
            conns[i].idx = i + 1;
            conn_open(&conns[i], MQTT, NULL);
            mqtt_connect(&conns[i]);
            mqtt_subscribe(&conns[i], topic);
        }
        if (!run_until(all_live, 120)) {
            fprintf(stderr, "kzbench: only %d of %d subscribers ready (%d errors)\n", live_count,
                    total, errors);
            exit(1);
        }
    } else {
        admin_connect();
        create_users(0, total, 0);
        for (int r = 0; r < opt.rooms; r++)
            snprintf(room_ids[r], 64, "%s", create_room(r * opt.per_room, opt.per_room));
        members_connect(0, total, rooms_msg);
    }
    if (opt.rates) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", opt.rates);
        for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
            scenario_rooms_at(atof(tok), opt.drain);
    } else {
        scenario_rooms_at(opt.rate, opt.drain);
    }
}

/* ---- ingest: many senders, each in its own room, acknowledged = durable ---- */

static void ingest_more(struct conn *c)
{
    int quota = opt.messages / opt.senders;
    while (c->outstanding < opt.window && c->sent < quota) {
        kz_send(c, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"%d %lld\"", c->room, c->sent,
                now_ns());
        c->sent++;
        c->outstanding++;
    }
}

static bool ingest_done(void)
{
    return acked_total >= (long long)(opt.messages / opt.senders) * opt.senders;
}

static void scenario_ingest(void)
{
    char params[160];
    snprintf(params, sizeof params, "{\"senders\":%d,\"messages\":%d,\"window\":%d}", opt.senders,
             opt.messages, opt.window);
    admin_connect();
    create_users(0, opt.senders, 0);
    members_connect(0, opt.senders, on_send_ack);
    for (int i = 0; i < opt.senders; i++) {
        snprintf(conns[i].room, sizeof conns[i].room, "%s", create_room(i, 1));
        conns[i].more = ingest_more;
    }
    measure_start();
    for (int i = 0; i < opt.senders; i++)
        ingest_more(&conns[i]);
    run_until(ingest_done, 600);
    report(params, (long long)(opt.messages / opt.senders) * opt.senders, 0, acked_total);
}

/* ---- idle: memory per authenticated idle connection ---- */

static int authed;
static bool all_authed(void)
{
    return authed >= nconns;
}

static void on_idle(struct conn *c, const unsigned char *data, size_t len)
{
    (void)c;
    if (memmem(data, len, "\"ok\":true", 9))
        authed++;
    else
        errors++;
}

static void mqtt_idle_ack(struct conn *c, unsigned char type)
{
    (void)c;
    if (type == 0x20)
        authed++;
}

static void scenario_idle(void)
{
    char params[64];
    snprintf(params, sizeof params, "{\"conns\":%d}", opt.conns);
    if (!opt.mosquitto) {
        admin_connect();
        create_users(0, 1, 0);
        conn_open(&idle_tok, KZ, on_setup_reply);
        pending_ops = 1;
        kz_send(&idle_tok, "\"op\":\"login\",\"login\":\"u0\",\"password\":\"" PASSWORD "\"");
        run_until(no_pending, 30);
    }
    double cpu;
    long hwm, rss_before, rss_after;
    struct timespec settle = {0, 300000000};
    nanosleep(&settle, NULL);
    server_stats(&cpu, &hwm, &rss_before);
    conns = calloc((size_t)opt.conns, sizeof *conns);
    nconns = opt.conns;
    authed = 0;
    mqtt_on_ack = mqtt_idle_ack;
    /* Opened in batches, so the listen backlog is never the limit being measured. */
    for (int i = 0; i < opt.conns; i++) {
        conns[i].idx = i + 1;
        if (opt.mosquitto) {
            conn_open(&conns[i], MQTT, NULL);
            mqtt_connect(&conns[i]);
        } else {
            conn_open(&conns[i], KZ, on_idle);
            kz_send(&conns[i], "\"op\":\"auth\",\"token\":\"%s\"", idle_tok.token);
        }
        if (i % 200 == 199) {
            int target = i + 1;
            for (int k = 0; k < 2000 && authed + errors < target; k++)
                lws_service(ctx, 0);
        }
    }
    run_until(all_authed, 120);
    nanosleep(&settle, NULL);
    server_stats(&cpu, &hwm, &rss_after);
    printf("{\"scenario\":\"idle\",\"server\":\"%s\",\"params\":%s,\"connected\":%d,"
           "\"errors\":%d,\"server_rss_before_kib\":%ld,\"server_rss_after_kib\":%ld,"
           "\"server_kib_per_conn\":%.2f}\n",
           opt.mosquitto ? "mosquitto" : "kizunad", params, authed, errors, rss_before, rss_after,
           authed ? (double)(rss_after - rss_before) / authed : 0);
    fflush(stdout);
}

/* ---- resume: catch up on messages missed while offline ---- */

static long long caught;
static bool catch_live;

static void on_catchup(struct conn *c, const unsigned char *data, size_t len)
{
    cJSON *o = cJSON_ParseWithLength((const char *)data, len);
    if (!o)
        return;
    if (cJSON_GetObjectItem(o, "event")) {
        cJSON_Delete(o);
        return;
    }
    {
        cJSON *ev;
        cJSON_ArrayForEach(ev, cJSON_GetObjectItem(o, "events"))
        {
            const cJSON *type = cJSON_GetObjectItem(ev, "event");
            caught += cJSON_IsString(type) && strcmp(type->valuestring, "msg") == 0;
        }
        catch_live = cJSON_IsTrue(cJSON_GetObjectItem(o, "live"));
        if (!catch_live)
            kz_send(c, "\"op\":\"sync\",\"since\":%lld,\"limit\":10000",
                    (long long)cJSON_GetObjectItem(o, "next")->valuedouble);
    }
    cJSON_Delete(o);
}

static bool catch_done(void)
{
    return catch_live;
}

static void scenario_resume(void)
{
    char params[64];
    snprintf(params, sizeof params, "{\"messages\":%d}", opt.messages);
    admin_connect();
    create_users(0, 2, 0);
    /* u0 sends; u1 is a member who is away for all of it. */
    snprintf(fan_room, sizeof fan_room, "%s", create_room(0, 2));
    members_connect(0, 1, on_send_ack);
    snprintf(conns[0].room, sizeof conns[0].room, "%s", fan_room);
    conns[0].more = ingest_more;
    opt.senders = 1;
    ingest_more(&conns[0]);
    run_until(ingest_done, 600);
    /* u1 comes back: logging in is not what is measured; catching up from position 0 is. */
    conn_open(&back, KZ, on_setup_reply);
    pending_ops = 1;
    kz_send(&back, "\"op\":\"login\",\"login\":\"u1\",\"password\":\"" PASSWORD "\"");
    run_until(no_pending, 30);
    back.on_msg = on_catchup;
    back.step = 1;
    measure_start();
    kz_send(&back, "\"op\":\"sync\",\"since\":0,\"limit\":10000");
    run_until(catch_done, 600);
    report(params, opt.messages, caught, 0);
}

/* ---- notice-report: a roll-call to N recipients, then the report ---- */

static int reports_done;
static long long report_ns[16];
static long long report_sent_ns;

static void on_report(struct conn *c, const unsigned char *data, size_t len)
{
    if (memmem(data, len, "\"event\"", 7))
        return;
    if (!memmem(data, len, "\"ok\":true", 9))
        errors++;
    report_ns[reports_done++] = now_ns() - report_sent_ns;
    if (reports_done < 5) {
        report_sent_ns = now_ns();
        kz_send(c, "\"op\":\"notice.report\",\"notice\":1");
    }
}

static bool reports_finished(void)
{
    return reports_done >= 5;
}

/* Each worker connection acts as one recipient after another: log in, then read, ack or
 * respond according to the recipient's number. */
static int recipients_done;

static void recipient_next(struct conn *c)
{
    if (c->user_no >= opt.recipients) {
        c->step = 99;
        return;
    }
    c->step = 0;
    kz_send(c, "\"op\":\"login\",\"login\":\"u%d\",\"password\":\"" PASSWORD "\"", c->user_no);
}

static void on_recipient(struct conn *c, const unsigned char *data, size_t len)
{
    if (memmem(data, len, "\"event\"", 7))
        return;
    if (!memmem(data, len, "\"ok\":true", 9))
        errors++;
    int u = c->user_no;
    if (c->step == 0) {
        c->step = 1;
        switch (u % 4) {
        case 0:
            kz_send(c, "\"op\":\"notice.show\",\"notice\":1");
            break;
        case 1:
            kz_send(c, "\"op\":\"notice.ack\",\"notice\":1");
            break;
        case 2:
            kz_send(c, "\"op\":\"notice.respond\",\"notice\":1,\"choice\":\"%d\"", u % 3 + 1);
            break;
        default: /* does nothing: stays missing */
            c->step = 2;
            break;
        }
        if (c->step == 1)
            return;
    }
    recipients_done++;
    c->user_no += nconns;
    recipient_next(c);
}

static bool all_recipients(void)
{
    return recipients_done >= opt.recipients;
}

static void scenario_notice_report(void)
{
    char params[64];
    snprintf(params, sizeof params, "{\"recipients\":%d}", opt.recipients);
    admin_connect();
    create_users(0, opt.recipients, 20);
    pending_ops = 1;
    kz_send(&admin, "\"op\":\"notice.post\",\"title\":\"安否確認\",\"body\":\"回答してください\","
                    "\"to\":[\"all\"],\"ask_ack\":true,\"choices\":[\"無事\",\"負傷\",\"その他\"]");
    run_until(no_pending, 120);
    int workers = opt.recipients < 20 ? opt.recipients : 20;
    conns = calloc((size_t)workers, sizeof *conns);
    nconns = workers;
    for (int i = 0; i < workers; i++) {
        conns[i].user_no = i;
        conn_open(&conns[i], KZ, on_recipient);
        recipient_next(&conns[i]);
    }
    run_until(all_recipients, 600);
    admin.on_msg = on_report;
    measure_start();
    report_sent_ns = now_ns();
    kz_send(&admin, "\"op\":\"notice.report\",\"notice\":1");
    run_until(reports_finished, 120);
    long long sorted[16];
    memcpy(sorted, report_ns, sizeof sorted);
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++)
            if (sorted[j] < sorted[i]) {
                long long t = sorted[i];
                sorted[i] = sorted[j];
                sorted[j] = t;
            }
    double cpu;
    long hwm, rss;
    server_stats(&cpu, &hwm, &rss);
    printf("{\"scenario\":\"notice-report\",\"server\":\"kizunad\",\"params\":%s,"
           "\"reports\":5,\"report_ms\":{\"median\":%.3f,\"min\":%.3f,\"max\":%.3f},"
           "\"errors\":%d,\"server_peak_rss_kib\":%ld}\n",
           params, sorted[2] / 1e6, sorted[0] / 1e6, sorted[4] / 1e6, errors, hwm);
    fflush(stdout);
}

/* ---- login-storm: room latency while many logins are verified ---- */

static int storm_logins_done;

static void on_storm_login(struct conn *c, const unsigned char *data, size_t len)
{
    (void)c;
    if (memmem(data, len, "\"event\"", 7))
        return;
    if (memmem(data, len, "\"ok\":true", 9) || memmem(data, len, "rate_limited", 12))
        storm_logins_done++;
    else
        errors++;
}

static bool storm_over(void)
{
    return storm_logins_done >= opt.logins;
}

static void scenario_login_storm(void)
{
    char params[128];
    snprintf(params, sizeof params, "{\"logins\":%d,\"room_members\":%d,\"rate_per_member\":%g}",
             opt.logins, opt.per_room, opt.rate);
    admin_connect();
    /* Room members first (cheap to create: the server hashes with its configured cost). */
    create_users(0, opt.per_room + opt.logins, 0);
    room_ids = calloc(1, sizeof *room_ids);
    snprintf(room_ids[0], 64, "%s", create_room(0, opt.per_room));
    opt.rooms = 1;
    members_connect(0, opt.per_room, rooms_msg);
    storm = calloc((size_t)opt.logins, sizeof *storm);
    long long start = now_ns();
    for (int i = 0; i < nconns; i++)
        conns[i].next_send_ns = start + (long long)(1e9 / opt.rate * (double)rand() / RAND_MAX);
    measure_start();
    tick_fn = rooms_tick;
    tick_ms = 1;
    lws_sul_schedule(ctx, 0, &tick_sul, tick_cb, 1000);
    for (int i = 0; i < opt.logins; i++) {
        storm[i].idx = i;
        conn_open(&storm[i], KZ, on_storm_login);
        kz_send(&storm[i], "\"op\":\"login\",\"login\":\"u%d\",\"password\":\"" PASSWORD "\"",
                opt.per_room + i);
    }
    run_until(storm_over, 600);
    tick_ms = 0;
    tick_fn = NULL;
    lws_sul_cancel(&tick_sul);
    report(params, sender.sent, delivered, storm_logins_done);
}

/* ---- notify: an urgent roll-call pushed to N people who are not connected ---- */

/* N users, each with one Web Push subscription of a session of its own (endpoint /push/<i> on
 * kzbench's stand-in, pushsvc.c; one key pair shared by all: the stand-in does not decrypt, and
 * tests/integration/test_push.c proves the crypto), their connections closed. Then an urgent
 * roll-call to everyone, while a small room talks at a fixed rate (as in `rooms`): the time
 * from notice.post's reply until the stand-in has heard from every endpoint, pushes/s, the
 * server's CPU over the flood, and the room's latency before and during it. A few worker
 * connections log in as one user after another (login binds the connection to the new
 * session; the earlier one stays live, as a phone's does when the app is closed)..
 * With --channel mail the same through e-mail: users with addresses at the stand-in playing an
 * SMTP relay, no subscriptions; "pushes" in the result are then messages. */

static struct conn *subs;
static int nsubs, subscribed, subs_closed;
static int svc_port;
static struct push_keys sub_keys;

static void subscriber_next(struct conn *c)
{
    if (c->user_no >= opt.recipients) {
        c->step = 99;
        return;
    }
    c->step = 0;
    kz_send(c, "\"op\":\"login\",\"login\":\"u%d\",\"password\":\"" PASSWORD "\"", c->user_no);
}

static void on_subscriber(struct conn *c, const unsigned char *data, size_t len)
{
    if (memmem(data, len, "\"event\"", 7))
        return;
    if (!memmem(data, len, "\"ok\":true", 9)) {
        errors++;
        fprintf(stderr, "kzbench: u%d: %.*s\n", c->user_no, (int)(len < 300 ? len : 300),
                (const char *)data);
    }
    if (c->step == 0) {
        c->step = 1;
        kz_send(c,
                "\"op\":\"push.subscribe\",\"endpoint\":\"http://127.0.0.1:%d/push/%d\","
                "\"p256dh\":\"%s\",\"auth\":\"%s\"",
                svc_port, c->user_no, sub_keys.pub64, sub_keys.auth64);
        return;
    }
    subscribed++;
    c->user_no += nsubs;
    subscriber_next(c);
}

static bool all_subscribed(void)
{
    return subscribed >= opt.recipients || errors;
}

/* Users u0 .. u<n-1> with an address at the mail stand-in (no one logs in: e-mail reaches
 * everyone who has an address and has not turned the kind off). */
static void mail_users(int n)
{
    for (int i = 0; i < n; i++) {
        pending_ops++;
        kz_send(&admin,
                "\"op\":\"user.add\",\"login\":\"u%d\",\"password\":\"" PASSWORD
                "\",\"email\":\"u%d@example.org\"",
                i, i);
    }
    if (!run_until(no_pending, 600)) {
        fprintf(stderr, "kzbench: creating users timed out\n");
        exit(1);
    }
}

static bool subs_all_closed(void)
{
    subs_closed = 0;
    for (int i = 0; i < nsubs; i++)
        subs_closed += subs[i].closed;
    return subs_closed >= nsubs;
}

/* One subscription each for u0 .. u<n-1>, then their connections closed. */
static void subscribe_all(int n)
{
    nsubs = n < 20 ? n : 20;
    subs = calloc((size_t)nsubs, sizeof *subs);
    for (int i = 0; i < nsubs; i++) {
        subs[i].idx = i;
        subs[i].user_no = i;
        conn_open(&subs[i], KZ, on_subscriber);
        subscriber_next(&subs[i]);
    }
    if (!run_until(all_subscribed, 600) || errors) {
        fprintf(stderr, "kzbench: %d of %d subscribed\n", subscribed, n);
        exit(1);
    }
    for (int i = 0; i < nsubs; i++)
        if (subs[i].wsi)
            lws_set_timeout(subs[i].wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    if (!run_until(subs_all_closed, 30)) {
        fprintf(stderr, "kzbench: %d of %d subscriber connections closed\n", subs_closed, nsubs);
        exit(1);
    }
}

static long long post_sent_ns, post_reply_ns;
static int post_recipients;

static void on_post_reply(struct conn *c, const unsigned char *data, size_t len)
{
    (void)c;
    cJSON *o = cJSON_ParseWithLength((const char *)data, len);
    if (!o || cJSON_GetObjectItem(o, "event")) {
        cJSON_Delete(o);
        return;
    }
    post_reply_ns = now_ns();
    if (!cJSON_IsTrue(cJSON_GetObjectItem(o, "ok"))) {
        errors++;
        fprintf(stderr, "kzbench: notice.post refused: %.*s\n", (int)(len < 300 ? len : 300),
                (const char *)data);
    }
    const cJSON *n = cJSON_GetObjectItem(o, "recipients");
    post_recipients = cJSON_IsNumber(n) ? n->valueint : 0;
    cJSON_Delete(o);
}

static bool pushes_all_in(void)
{
    struct pushsvc_counts k;
    pushsvc_counts(&k);
    /* A refused post pushes nothing: waiting for the deadline would only hide the error. */
    return (post_reply_ns && k.received >= opt.recipients) || errors;
}

static void talk_json(char *out, size_t size, struct samples *s)
{
    samples_sort(s);
    snprintf(out, size, "{\"n\":%zu,\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f}", s->n,
             samples_pct(s, 0.50), samples_pct(s, 0.99), s->n ? s->us[s->n - 1] / 1000.0 : 0);
}

static void scenario_notify(void)
{
    int n = opt.recipients, k = opt.per_room;
    bool rollcall = !strcmp(opt.kind, "rollcall");
    bool mail = !strcmp(opt.channel, "mail");
    if (n < 1 || k < 2 || !(opt.rate > 0 && opt.rate <= 1000) || !(opt.deadline > 0) ||
        (!rollcall && strcmp(opt.kind, "notice"))) {
        fprintf(stderr, "kzbench: notify needs recipients >= 1, per-room >= 2, 0 < rate <= 1000, "
                        "deadline > 0, kind rollcall or notice\n");
        exit(2);
    }
    char params[320];
    snprintf(params, sizeof params,
             "{\"recipients\":%d,\"service_delay_ms\":%d,\"push_concurrency\":%d,"
             "\"push_coalesce_ms\":%d,\"talkers\":%d,\"rate_per_member\":%g,\"kind\":\"%s\","
             "\"channel\":\"%s\",\"mail_concurrency\":%d}",
             n, opt.service_delay_ms, opt.push_concurrency, opt.coalesce_ms, k, opt.rate, opt.kind,
             opt.channel, opt.mail_concurrency);
    if (sodium_init() < 0)
        exit(1);
    push_keys_new(&sub_keys);
    admin_connect();
    if (mail)
        mail_users(n);
    else
        create_users(0, n, 0);
    create_users(n, k, 0);
    if (!mail)
        subscribe_all(n);

    /* The room that talks through it: u<n> .. u<n+k-1>. */
    room_ids = calloc(1, sizeof *room_ids);
    snprintf(room_ids[0], 64, "%s", create_room(n, k));
    opt.rooms = 1;
    members_connect(n, k, rooms_msg);

    /* A baseline of the room's talk, then the roll-call; the room talks until every push is in. */
    measure_start();
    lat_before.n = 0;
    rooms_split_ns = LLONG_MAX; /* until the roll-call leaves, every sample is a baseline one */
    rooms_end_ns = LLONG_MAX;
    for (int i = 0; i < nconns; i++)
        conns[i].next_send_ns = t0 + (long long)(1e9 / opt.rate * (double)rand() / RAND_MAX);
    tick_fn = rooms_tick;
    tick_ms = 1;
    lws_sul_schedule(ctx, 0, &tick_sul, tick_cb, 1000);
    run_until(rooms_over, 2.0);
    double cpu_a, cpu_b;
    long hwm, rss_a, rss_b;
    server_stats(&cpu_a, &hwm, &rss_a);
    admin.on_msg = on_post_reply;
    post_sent_ns = rooms_split_ns = now_ns();
    /* A roll-call gives each recipient an answer link of their own and a payload of their own
     * (push.c, per recipient); an urgent notice queues one payload for all. */
    kz_send(&admin,
            "\"op\":\"notice.post\",\"title\":\"%s\",\"body\":\"地震発生。%s\",\"to\":[\"all\"],"
            "\"priority\":\"urgent\"%s",
            rollcall ? "安否確認" : "避難指示",
            rollcall ? "安否を回答してください。" : "避難してください。",
            rollcall ? ",\"choices\":[\"無事・出勤可\",\"無事・出勤不可\",\"負傷\",\"その他\"]"
                     : "");
    if (!run_until(pushes_all_in, opt.deadline))
        errors++;
    long long flood_end = now_ns();
    server_stats(&cpu_b, &hwm, &rss_b);
    tick_ms = 0;
    tick_fn = NULL;
    lws_sul_cancel(&tick_sul);
    rooms_end_ns = flood_end;
    rooms_tick();
    run_until(rooms_drained, 5);
    long long expected = (long long)sender.sent * (k - 1);
    if (delivered < expected)
        errors++; /* a talk message lost (or later than 5 s) is a failure, not a figure */

    struct pushsvc_counts pc;
    pushsvc_counts(&pc);
    if (pc.duplicates || pc.stray)
        errors++;
    char before[160], during[160], load[64];
    talk_json(before, sizeof before, &lat_before);
    talk_json(during, sizeof during, &lat);
    loadavg_json(load, sizeof load);
    double all_s = pc.all_ns && post_reply_ns ? (double)(pc.all_ns - post_reply_ns) / 1e9 : 0;
    double first_s = pc.first_ns && post_reply_ns ? (double)(pc.first_ns - post_reply_ns) / 1e9 : 0;
    double spread = pc.all_ns && pc.first_ns ? (double)(pc.all_ns - pc.first_ns) / 1e9 : 0;
    /* The room's talk costs CPU too: its rate in the baseline, taken out of the flood's. */
    double base_s = (double)(post_sent_ns - t0) / 1e9;
    double flood_s = (double)(flood_end - post_sent_ns) / 1e9;
    double talk_cpu_per_s = base_s > 0 ? (cpu_a - cpu0) / base_s : 0;
    double flood_cpu = cpu_b - cpu_a, push_cpu = flood_cpu - talk_cpu_per_s * flood_s;
    printf("{\"scenario\":\"notify\",\"server\":\"kizunad\",\"params\":%s,\"notified\":%d,"
           "\"post_ms\":%.3f,\"pushes\":%d,\"duplicates\":%d,\"stray\":%d,"
           "\"first_push_ms\":%.3f,\"all_pushes_ms\":%.3f,\"pushes_per_s\":%.0f,"
           "\"service_max_conns\":%d,\"talk_ms_before\":%s,\"talk_ms_during\":%s,"
           "\"talk_sent\":%lld,\"talk_delivered\":%lld,\"talk_expected\":%lld,"
           "\"flood_s\":%.3f,\"errors\":%d,\"server_cpu_s\":%.3f,\"server_talk_cpu_per_s\":%.3f,"
           "\"server_cpu_us_per_push\":%.1f,"
           "\"server_rss_before_kib\":%ld,\"server_rss_after_kib\":%ld,"
           "\"server_peak_rss_kib\":%ld,\"loadavg\":%s}\n",
           params, post_recipients,
           post_reply_ns ? (double)(post_reply_ns - post_sent_ns) / 1e6 : 0, pc.received,
           pc.duplicates, pc.stray, first_s * 1e3, all_s * 1e3,
           spread > 0 ? (double)pc.received / spread : 0, pc.max_conns, before, during,
           (long long)sender.sent, delivered, expected, flood_s, errors, flood_cpu, talk_cpu_per_s,
           pc.received ? (push_cpu > 0 ? push_cpu : 0) * 1e6 / pc.received : 0, rss_a, rss_b, hwm,
           load);
    fflush(stdout);
}

/* ---- main ---- */

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        i++;
        if (!strcmp(a, "--kizunad"))
            opt.kizunad = v;
        else if (!strcmp(a, "--mosquitto"))
            opt.mosquitto = v;
        else if (!strcmp(a, "--scenario"))
            opt.scenario = v;
        else if (!strcmp(a, "--members"))
            opt.members = atoi(v);
        else if (!strcmp(a, "--messages"))
            opt.messages = atoi(v);
        else if (!strcmp(a, "--window"))
            opt.window = atoi(v);
        else if (!strcmp(a, "--rooms"))
            opt.rooms = atoi(v);
        else if (!strcmp(a, "--per-room"))
            opt.per_room = atoi(v);
        else if (!strcmp(a, "--senders"))
            opt.senders = atoi(v);
        else if (!strcmp(a, "--conns"))
            opt.conns = atoi(v);
        else if (!strcmp(a, "--recipients"))
            opt.recipients = atoi(v);
        else if (!strcmp(a, "--logins"))
            opt.logins = atoi(v);
        else if (!strcmp(a, "--rate"))
            opt.rate = atof(v);
        else if (!strcmp(a, "--rates"))
            opt.rates = v;
        else if (!strcmp(a, "--duration"))
            opt.duration = atof(v);
        else if (!strcmp(a, "--drain"))
            opt.drain = atof(v);
        else if (!strcmp(a, "--set"))
            opt.set = v;
        else if (!strcmp(a, "--service-delay-ms"))
            opt.service_delay_ms = atoi(v);
        else if (!strcmp(a, "--push-concurrency"))
            opt.push_concurrency = atoi(v);
        else if (!strcmp(a, "--coalesce-ms"))
            opt.coalesce_ms = atoi(v);
        else if (!strcmp(a, "--deadline"))
            opt.deadline = atof(v);
        else if (!strcmp(a, "--kind"))
            opt.kind = v;
        else if (!strcmp(a, "--channel"))
            opt.channel = v;
        else if (!strcmp(a, "--mail-concurrency"))
            opt.mail_concurrency = atoi(v);
        else
            usage();
    }
    if (!opt.scenario || (!opt.kizunad == !opt.mosquitto))
        usage();
    bool mq_ok = !strcmp(opt.scenario, "fanout") || !strcmp(opt.scenario, "rooms") ||
                 !strcmp(opt.scenario, "idle");
    if (opt.mosquitto && !mq_ok) {
        fprintf(stderr, "kzbench: %s has no mosquitto counterpart\n", opt.scenario);
        return 2;
    }
    /* Enough descriptors for 10,000 connections on each side. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    srand(42);
    lws_set_log_level(getenv("KZBENCH_DEBUG") ? LLL_ERR | LLL_WARN : 0, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.fd_limit_per_thread = (unsigned)(rl.rlim_cur > 100 ? rl.rlim_cur - 100 : 1024);
    info.timeout_secs = 60;
    ctx = lws_create_context(&info);
    if (!ctx)
        return 1;
    heartbeat_cb(&heartbeat_sul);

    bool login_storm = !strcmp(opt.scenario, "login-storm");
    bool notify = !strcmp(opt.scenario, "notify");
    /* Whatever way kzbench ends, the server it started ends with it. */
    atexit(stop_server);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    const char *extra[8] = {0};
    int nextra = 0;
    char concurrency[48], coalesce[48], smtp_port[48];
    bool mail = !strcmp(opt.channel, "mail");
    if (notify) {
        if (opt.service_delay_ms < 0 || opt.service_delay_ms > 60000 || opt.recipients < 1 ||
            (!mail && strcmp(opt.channel, "push")) ||
            (svc_port = pushsvc_start(opt.recipients, opt.service_delay_ms, mail)) < 0) {
            fprintf(stderr, "kzbench: notify needs 0 <= service-delay-ms <= 60000 and channel "
                            "push or mail, and its stand-in to start\n");
            return 2;
        }
        /* kizunad refuses out-of-range settings itself, with their bounds. */
        if (mail) {
            snprintf(smtp_port, sizeof smtp_port, "smtp_port=%d", svc_port);
            extra[nextra++] = "smtp_host=127.0.0.1";
            extra[nextra++] = smtp_port;
            extra[nextra++] = "smtp_security=none";
            extra[nextra++] = "smtp_from=kizuna@example.org";
            /* A roll-call's mail then carries its one-tap answer links, as in a town's setup. */
            extra[nextra++] = "public_origin=https://kizuna.example.org";
            if (opt.mail_concurrency) {
                snprintf(concurrency, sizeof concurrency, "mail_concurrency=%d",
                         opt.mail_concurrency);
                extra[nextra++] = concurrency;
            }
        } else {
            snprintf(coalesce, sizeof coalesce, "push_coalesce_ms=%d", opt.coalesce_ms);
            extra[nextra++] = "push_subject=mailto:kzbench@example.org";
            extra[nextra++] = "push_allow_private_endpoints=true";
            extra[nextra++] = coalesce;
            if (opt.push_concurrency) {
                snprintf(concurrency, sizeof concurrency, "push_concurrency=%d",
                         opt.push_concurrency);
                extra[nextra++] = concurrency;
            }
        }
    }
    if (opt.set)
        extra[nextra++] = opt.set;
    if (opt.mosquitto)
        start_mosquitto();
    else
        start_kizunad(!login_storm, extra);

    if (!strcmp(opt.scenario, "fanout"))
        scenario_fanout();
    else if (!strcmp(opt.scenario, "rooms"))
        scenario_rooms();
    else if (!strcmp(opt.scenario, "ingest"))
        scenario_ingest();
    else if (!strcmp(opt.scenario, "idle"))
        scenario_idle();
    else if (!strcmp(opt.scenario, "resume"))
        scenario_resume();
    else if (!strcmp(opt.scenario, "notice-report"))
        scenario_notice_report();
    else if (login_storm)
        scenario_login_storm();
    else if (notify)
        scenario_notify();
    else
        usage();

    if (getenv("KZBENCH_DEBUG"))
        fprintf(stderr, "kzbench: %.3f destroying\n", now_ns() / 1e9);
    lws_sul_cancel(&heartbeat_sul);
    lws_context_destroy(ctx);
    if (getenv("KZBENCH_DEBUG"))
        fprintf(stderr, "kzbench: %.3f stopping the server\n", now_ns() / 1e9);
    stop_server();
    pushsvc_stop();
    if (getenv("KZBENCH_DEBUG"))
        fprintf(stderr, "kzbench: %.3f stopped\n", now_ns() / 1e9);
    for (int i = 0; i < nconns; i++)
        conn_free(&conns[i]);
    free(conns);
    for (int i = 0; storm && i < opt.logins; i++)
        conn_free(&storm[i]);
    free(storm);
    for (int i = 0; i < nsubs; i++)
        conn_free(&subs[i]);
    free(subs);
    free(lat_before.us);
    conn_free(&admin);
    conn_free(&sender);
    conn_free(&idle_tok);
    conn_free(&back);
    free(lat.us);
    free(send_lag.us);
    free(room_ids);
    return errors ? 1 : 0;
}
