/* test_fed_link.c - federation links (issue 17, item 2) between real kizunad processes on
 * loopback, each with its own data directory and federation port: two servers paired both ways
 * connect, and exactly one link joins them; a key that does not match is refused on both sides,
 * and a server that is not pinned at all; a killed server shows disconnected on the other and
 * reconnects once restarted; two servers that dial each other at the same moment keep the link
 * dialled by the lower id; and a raw client on the federation port (garbage, a bad HELLO, an
 * oversized frame, a stalled handshake, a pinned peer played by the test itself) is closed
 * with a reason while the server stays healthy, and once that peer is up its replication frames
 * are taken (a HELLO then, or a frame whose first member is not t, closes it); and off loopback,
 * links are TLS and a TLS pin that does not match the peer's certificate refuses the link before
 * anything is sent. Every wait polls peer.list with a deadline. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <regex.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "fed.h"
#include "harness.h"

#define DEADLINE_MS 10000

static struct kzd a, b;

static void setup(void)
{
    cr_assert_geq(sodium_init(), 0);
}

static void teardown(void)
{
    kzd_teardown(&a);
    kzd_teardown(&b);
}

TestSuite(fed_link, .init = setup, .fini = teardown, .timeout = 60);

struct ident {
    char id[64], key[64], fp[80];
    uint8_t pk[32];
};

/* The value after label, up to any of the stop characters. */
static void line_value(const char *out, const char *label, const char *stop, char *dst, size_t n)
{
    const char *p = strstr(out, label);
    cr_assert_not_null(p, "no '%s' in: %s", label, out);
    p += strlen(label);
    p += strspn(p, " ");
    snprintf(dst, n, "%.*s", (int)strcspn(p, stop), p);
}

/* What `kizunad fingerprint` prints for a data directory: what the other admin pins. */
static void ident_of(const struct kzd *d, struct ident *id)
{
    char out[4096];
    const char *argv[] = {KIZUNAD_PATH, "fingerprint", "--data", d->dir, NULL};
    cr_assert_eq(run_capture(argv, NULL, NULL, out, sizeof out), 0, "%s", out);
    line_value(out, "server id:", " \n(", id->id, sizeof id->id);
    line_value(out, "public key:", " \n(", id->key, sizeof id->key);
    line_value(out, "fingerprint:", "\n", id->fp, sizeof id->fp);
    char why[160];
    cr_assert(fed_key_parse(id->key, id->pk, why, sizeof why), "%s", why);
}

/* A server with federation on loopback under this id; extra config may be NULL. */
static void fed_server(struct kzd *d, const char *id, const char *extra)
{
    char cfg[512];
    snprintf(cfg, sizeof cfg,
             "\"server_id\":\"%s\",\"federation_listen\":\"127.0.0.1:0\","
             "\"federation_handshake_timeout_s\":2,\"federation_max_frame_bytes\":8192%s%s",
             id, extra ? "," : "", extra ? extra : "");
    kzd_setup_with(d, cfg);
    cr_assert_gt(d->fed_port, 0, "the 'federating on' line gives the federation port");
}

static cJSON *admin_call(const struct kzd *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static cJSON *admin_call(const struct kzd *d, const char *fmt, ...)
{
    char req[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(req, sizeof req, fmt, ap);
    va_end(ap);
    struct ws w;
    cr_assert(ws_open(&w, d->port));
    cr_assert(ws_login(&w, "admin", TEST_ADMIN_PASSWORD, NULL));
    cJSON *r = ws_callf(&w, "%s", req);
    ws_close_fd(&w);
    return r;
}

/* d pins `who` (with key and fingerprint as given) at 127.0.0.1:port. */
static void pin(const struct kzd *d, const char *who, const char *key, const char *fp, int port)
{
    cJSON *r = admin_call(d,
                          "\"op\":\"peer.add\",\"server\":\"%s\",\"key\":\"%s\","
                          "\"addresses\":[\"127.0.0.1:%d\"],\"fingerprint\":\"%s\"",
                          who, key, port, fp);
    cr_assert_str_eq(reply_code(r), "ok", "peer.add %s", who);
    cJSON_Delete(r);
}

static void pin_ident(const struct kzd *d, const struct ident *id, int port)
{
    pin(d, id->id, id->key, id->fp, port);
}

/* d's peer.list entry for `who` (caller deletes), or NULL. */
static cJSON *link_of(const struct kzd *d, const char *who)
{
    cJSON *r = admin_call(d, "\"op\":\"peer.list\"");
    cr_assert_str_eq(reply_code(r), "ok");
    const cJSON *p;
    cJSON *found = NULL;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(r, "peers"))
    {
        if (strcmp(cJSON_GetObjectItem(p, "server")->valuestring, who) == 0)
            found = cJSON_Duplicate(cJSON_GetObjectItem(p, "link"), true);
    }
    cJSON_Delete(r);
    return found;
}

static const char *field(const cJSON *link, const char *name)
{
    const cJSON *v = cJSON_GetObjectItem(link, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* Polls until d's link to `who` is connected (or, want false, is not); the last status. */
static cJSON *wait_link(const struct kzd *d, const char *who, bool want)
{
    long long end = mono_ms() + DEADLINE_MS;
    for (;;) {
        cJSON *l = link_of(d, who);
        cr_assert_not_null(l, "%s is no peer", who);
        if (cJSON_IsTrue(cJSON_GetObjectItem(l, "connected")) == want)
            return l;
        if (mono_ms() > end) {
            char *s = cJSON_PrintUnformatted(l);
            cr_assert_fail("link to %s never became %s: %s", who,
                           want ? "connected" : "disconnected", s);
        }
        cJSON_Delete(l);
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
}

/* Polls until d's link to `who` shows a last_error containing words. */
static void wait_error(const struct kzd *d, const char *who, const char *words)
{
    long long end = mono_ms() + DEADLINE_MS;
    for (;;) {
        cJSON *l = link_of(d, who);
        cr_assert_not_null(l);
        bool connected = cJSON_IsTrue(cJSON_GetObjectItem(l, "connected"));
        cr_assert_not(connected, "a refused server never connects");
        bool hit = strstr(field(l, "last_error"), words) != NULL;
        char *s = cJSON_PrintUnformatted(l);
        cJSON_Delete(l);
        if (hit) {
            free(s);
            return;
        }
        cr_assert(mono_ms() < end, "no error '%s' for %s: %s", words, who, s);
        free(s);
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
}

/* Pairs a (fed-a) and b (fed-b) both ways and waits for the link on both sides. */
static void pair(struct ident *ia, struct ident *ib)
{
    ident_of(&a, ia);
    ident_of(&b, ib);
    pin_ident(&a, ib, b.fed_port);
    pin_ident(&b, ia, a.fed_port);
    cJSON_Delete(wait_link(&a, ib->id, true));
    cJSON_Delete(wait_link(&b, ia->id, true));
}

/* Both sides agree on one link: each sees the other's direction. While crossed dials are being
 * resolved each side may for a moment show its own dial up, so this waits (with the deadline)
 * until the two views are of one link. */
static void one_link(const char *want_a_direction)
{
    cJSON *la = NULL, *lb = NULL;
    const char *da = "", *db = "";
    for (long long end = mono_ms() + DEADLINE_MS;;) {
        cJSON_Delete(la);
        cJSON_Delete(lb);
        la = wait_link(&a, "fed-b", true);
        lb = wait_link(&b, "fed-a", true);
        da = field(la, "direction");
        db = field(lb, "direction");
        if (strcmp(da, db) != 0 || mono_ms() > end)
            break;
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    cr_assert(strcmp(da, "out") == 0 || strcmp(da, "in") == 0, "direction %s", da);
    cr_assert_str_neq(da, db, "one link: dialled by one side, accepted by the other");
    if (want_a_direction)
        cr_assert_str_eq(da, want_a_direction);
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(la, "since")));
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(la, "last_contact")));
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(la, "skew_alarm")), "same clock");
    cJSON_Delete(la);
    cJSON_Delete(lb);
}

Test(fed_link, paired_servers_connect_and_a_killed_one_reconnects)
{
    fed_server(&a, "fed-a", NULL);
    fed_server(&b, "fed-b", NULL);
    struct ident ia, ib;
    /* Before pairing nothing is pinned: peer.list shows no peers, and nothing dials. */
    pair(&ia, &ib);
    one_link(NULL);
    kzd_kill(&b);
    cJSON *l = wait_link(&a, "fed-b", false);
    cr_assert_str_neq(field(l, "state"), "connected");
    cr_assert(cJSON_IsString(cJSON_GetObjectItem(l, "last_error")), "says why");
    cJSON_Delete(l);
    kzd_start(&b); /* the same federation port: either side may dial again */
    one_link(NULL);
    /* The CLI shows the same: `kizuna admin peers` is `peer list`. */
    char out[8192], env_srv[100], env_dir[400];
    snprintf(env_srv, sizeof env_srv, "KIZUNA_SERVER=%s", a.url);
    snprintf(env_dir, sizeof env_dir, "KIZUNA_CONFIG_DIR=%s/cli", a.dir);
    const char *env[] = {env_srv, env_dir, "KIZUNA_PASSWORD=" TEST_ADMIN_PASSWORD, NULL};
    const char *login[] = {KIZUNA_PATH, "login", "admin", NULL};
    cr_assert_eq(run_capture(login, env, NULL, out, sizeof out), 0, "%s", out);
    const char *argv[] = {KIZUNA_PATH, "admin", "peers", NULL};
    cr_assert_eq(run_capture(argv, env, NULL, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "fed-b") && strstr(out, "connected"), "%s", out);
}

/* A peer that goes silent without closing (stopped, as behind a partition that drops every
 * packet) is pinged, then hung up on after federation_hangup_s, and dialled again once it
 * answers. Without the idle policy the link would stay "connected" for lws's 310 s. */
Test(fed_link, a_silent_peer_is_hung_up_on_and_redialled)
{
    const char *quick = "\"federation_ping_s\":1,\"federation_hangup_s\":3";
    fed_server(&a, "fed-a", quick);
    fed_server(&b, "fed-b", quick);
    struct ident ia, ib;
    pair(&ia, &ib);
    one_link(NULL);
    cr_assert_eq(kill(b.pid, SIGSTOP), 0);
    cJSON *l = wait_link(&a, "fed-b", false);
    cJSON_Delete(l);
    cr_assert_eq(kill(b.pid, SIGCONT), 0);
    one_link(NULL);
}

Test(fed_link, a_wrong_key_is_refused_on_both_sides)
{
    fed_server(&a, "fed-a", NULL);
    fed_server(&b, "fed-b", NULL);
    struct ident ia, ib;
    ident_of(&a, &ia);
    ident_of(&b, &ib);
    /* a pins fed-b under another key (with the fingerprint of that id and key, so peer.add
     * takes it); b pins a correctly. Whoever dials, a refuses b's signature. */
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    char key[FED_KEY_B64LEN + 1], fp[FED_FINGERPRINT_LEN + 1];
    fed_key_encode(pk, key, sizeof key);
    cr_assert_eq(fed_fingerprint("fed-b", pk, fp), 0);
    pin(&a, "fed-b", key, fp, b.fed_port);
    pin_ident(&b, &ia, a.fed_port);
    wait_error(&a, "fed-b", "does not verify");
    wait_error(&b, "fed-a", "does not verify");
    cJSON *l = link_of(&a, "fed-b");
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(l, "connected")));
    cJSON_Delete(l);
}

Test(fed_link, an_unknown_server_is_refused)
{
    fed_server(&a, "fed-a", NULL);
    fed_server(&b, "fed-b", NULL);
    struct ident ia;
    ident_of(&a, &ia);
    pin_ident(&b, &ia, a.fed_port); /* a does not pin b */
    wait_error(&b, "fed-a", "unknown server");
    /* Once a pins b, it dials at once (b, backing off, need not be the one to retry). */
    struct ident ib;
    ident_of(&b, &ib);
    pin_ident(&a, &ib, b.fed_port);
    cJSON_Delete(wait_link(&a, "fed-b", true));
    /* And a removed peer's link closes on both sides, without a restart. */
    cJSON *r = admin_call(&a, "\"op\":\"peer.remove\",\"server\":\"fed-b\"");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    cJSON_Delete(wait_link(&b, "fed-a", false));
}

/* How many lines of d's log (every run so far) have needle. */
static int log_count(const struct kzd *d, const char *needle)
{
    char path[400], line[2048];
    snprintf(path, sizeof path, "%s/stderr.log", d->dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* a and b dial each other at the same moment: a is stopped (SIGSTOP) with its next attempt
 * due while b starts and dials it; when a resumes, its due dial goes out in the same turn in
 * which it accepts b's. Both handshakes finish; each side keeps the link dialled by fed-a (the
 * lower id) and closes the other. */
Test(fed_link, crossed_dials_keep_the_one_dialled_by_the_lower_id)
{
    /* Handshakes may wait for the stopped a longer than the other tests allow. */
    fed_server(&a, "fed-a", "\"federation_handshake_timeout_s\":8");
    fed_server(&b, "fed-b", "\"federation_handshake_timeout_s\":8");
    struct ident ia, ib;
    pair(&ia, &ib);
    one_link(NULL);
    cr_assert_eq(kzd_stop(&b), 0);
    /* a redials the stopped b; wait for a planned attempt, then stop a until it is due. */
    cJSON *l = wait_link(&a, "fed-b", false);
    cJSON_Delete(l);
    long long due = 0;
    for (long long end = mono_ms() + DEADLINE_MS; !due && mono_ms() < end;) {
        l = link_of(&a, "fed-b");
        const cJSON *n = cJSON_GetObjectItem(l, "next_attempt_at");
        const cJSON *bo = cJSON_GetObjectItem(l, "backoff_ms");
        if (cJSON_IsNumber(n) && cJSON_IsNumber(bo) && bo->valuedouble >= 0)
            due = mono_ms() + (long long)bo->valuedouble;
        cJSON_Delete(l);
    }
    cr_assert(due, "a plans its next attempt");
    cr_assert_eq(kill(a.pid, SIGSTOP), 0);
    kzd_start(&b); /* b dials a at start; a's kernel queues it */
    long long wait = due + 200 - mono_ms();
    if (wait > 0) {
        struct timespec ts = {wait / 1000, (wait % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(kill(a.pid, SIGCONT), 0);
    one_link("out"); /* fed-a < fed-b: the link a dialled */
    /* The crossing happened and was resolved, as the logs say. */
    char path[400], buf[1 << 16];
    bool seen = false;
    const struct kzd *ds[] = {&a, &b};
    for (int i = 0; i < 2 && !seen; i++) {
        snprintf(path, sizeof path, "%s/stderr.log", ds[i]->dir);
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f);
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
        seen = strstr(buf, "duplicate link") != NULL;
    }
    cr_assert(seen, "a duplicate link was closed");
    /* It stays one link. */
    struct timespec ts = {0, 300 * 1000000};
    nanosleep(&ts, NULL);
    one_link("out");
    /* Every link up is down once before the next is up (the core is told the same): the one
     * closed as a duplicate counts neither way, and each side has one up now. */
    int up = log_count(&a, "fed_link_up peer=fed-b"),
        down = log_count(&a, "fed_link_down peer=fed-b");
    cr_assert_eq(up, down + 1, "a: %d up, %d down", up, down);
    up = log_count(&b, "fed_link_up peer=fed-a"), down = log_count(&b, "fed_link_down peer=fed-a");
    cr_assert_eq(up, down + 1, "b (two runs): %d up, %d down", up, down);
}

/* ---- a raw client on the federation port ---- */

/* A WebSocket upgrade on the federation port as a peer server sends it (Host names the
 * federation vhost, docs/protocol.md); false if the server did not switch protocols. */
static bool fed_ws_open(struct ws *w, int port, const char *host)
{
    memset(w, 0, sizeof *w);
    w->fd = tcp_open(port);
    if (w->fd < 0)
        return false;
    struct timeval tv = {5, 0};
    setsockopt(w->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET /fed/v1 HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Protocol: kizuna.fed.v1\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     host);
    if (write(w->fd, req, (size_t)n) != n)
        return false;
    char resp[2048];
    size_t len = 0;
    while (len < sizeof resp - 1) {
        if (read(w->fd, resp + len, 1) != 1)
            return false;
        resp[++len] = '\0';
        if (len >= 4 && memcmp(resp + len - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    return strncmp(resp, "HTTP/1.1 101", 12) == 0;
}

/* Opens a WebSocket to the federation port and reads the server's HELLO into nonce. */
static void raw_open(struct ws *w, int port, uint8_t nonce[FED_NONCE_BYTES], char *server, size_t n)
{
    cr_assert(fed_ws_open(w, port, "kizuna-federation"), "upgrade on the federation port");
    char *t = ws_recv_text(w, 5000);
    cr_assert_not_null(t, "the server says hello first");
    cJSON *j = cJSON_Parse(t);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "t")->valuestring, "hello", "%s", t);
    cr_assert_eq(cJSON_GetObjectItem(j, "v")->valueint, 1);
    cr_assert(
        fed_b64url_decode(cJSON_GetObjectItem(j, "nonce")->valuestring, nonce, FED_NONCE_BYTES));
    if (server)
        snprintf(server, n, "%s", cJSON_GetObjectItem(j, "server")->valuestring);
    cJSON_Delete(j);
    free(t);
}

/* Sends text and expects the server to close with code and words in its reason. */
static void expect_close(struct ws *w, const char *text, int code, const char *words)
{
    if (text)
        cr_assert(ws_send_text(w, text));
    int got = ws_wait_close(w, 5000);
    cr_assert_eq(got, code, "closed with %d (%s), want %d for %s", got, w->close_reason, code,
                 text ? text : "(nothing)");
    cr_assert(strstr(w->close_reason, words), "reason '%s' names '%s'", w->close_reason, words);
    ws_close_fd(w);
}

static const char *hello_json(char *out, size_t n, int v, const char *server, const uint8_t *nonce)
{
    char b64[FED_NONCE_B64LEN + 1];
    sodium_bin2base64(b64, sizeof b64, nonce, FED_NONCE_BYTES,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(out, n, "{\"t\":\"hello\",\"v\":%d,\"server\":\"%s\",\"nonce\":\"%s\",\"time\":%lld}",
             v, server, b64, (long long)time(NULL) * 1000);
    return out;
}

/* The test's peer fed-t finishes the handshake on w (a's HELLO read into sn by raw_open) and
 * reads a's AUTH. */
static void raw_auth(struct ws *w, const uint8_t *sn, const uint8_t *mine, const uint8_t *tsk)
{
    char text[512], sb[FED_SIG_B64LEN + 1];
    uint8_t sig[FED_SIG_BYTES];
    cr_assert(ws_send_text(w, hello_json(text, sizeof text, 1, "fed-t", mine)));
    cr_assert_eq(fed_hello_sign(FED_SIGNER_DIALER, "fed-t", mine, "fed-a", sn, tsk, sig), 0);
    sodium_bin2base64(sb, sizeof sb, sig, sizeof sig, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(text, sizeof text, "{\"t\":\"auth\",\"sig\":\"%s\"}", sb);
    cr_assert(ws_send_text(w, text));
    char *t = ws_recv_text(w, 5000);
    cr_assert(t && strstr(t, "\"auth\""), "a answers with its AUTH: %s", t ? t : "(nothing)");
    free(t);
}

Test(fed_link, hostile_clients_are_closed_and_the_server_stays_healthy)
{
    fed_server(&a, "fed-a", NULL);
    struct ident ia;
    ident_of(&a, &ia);
    /* The test plays pinned peer fed-t: its keys, pinned on a at a port where nothing listens
     * (a's own dials to it fail; the test dials a instead). */
    uint8_t tpk[32], tsk[64];
    crypto_sign_keypair(tpk, tsk);
    char tkey[FED_KEY_B64LEN + 1], tfp[FED_FINGERPRINT_LEN + 1];
    fed_key_encode(tpk, tkey, sizeof tkey);
    cr_assert_eq(fed_fingerprint("fed-t", tpk, tfp), 0);
    pin(&a, "fed-t", tkey, tfp, 1);

    struct ws w;
    uint8_t sn[FED_NONCE_BYTES], mine[FED_NONCE_BYTES];
    char text[16384];
    randombytes_buf(mine, sizeof mine);

    /* Garbage below HTTP, and a request that stalls: closed. */
    int fd = tcp_open(a.fed_port);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "\x16\x03garbage\r\n\r\n", 13), 13);
    cr_assert(tcp_wait_closed(fd, 5000), "garbage is closed");
    close(fd);
    fd = tcp_open(a.fed_port);
    cr_assert_eq(write(fd, "GET /fed/v1 HTTP/1.1\r\n", 22), 22);
    cr_assert(tcp_wait_closed(fd, 6000), "stalled headers are closed");
    close(fd);
    /* Not HTTP on this port: links only; nor the API's WebSocket, whatever Host it names;
     * nor a link on the API's port. */
    char body[512];
    cr_assert_neq(http_request(a.fed_port, "GET", "/healthz", NULL, NULL, body, sizeof body), 200);
    cr_assert_not(ws_open(&w, a.fed_port), "no API WebSocket on the federation port");
    ws_close_fd(&w);
    cr_assert_not(fed_ws_open(&w, a.fed_port, "api"), "nor by naming the API's vhost");
    ws_close_fd(&w);
    cr_assert_not(fed_ws_open(&w, a.port, "kizuna-federation"), "no link on the API's port");
    ws_close_fd(&w);

    raw_open(&w, a.fed_port, sn, NULL, 0);
    expect_close(&w, "not json", 1002, "not a frame");
    raw_open(&w, a.fed_port, sn, NULL, 0);
    expect_close(&w, "{\"t\":\"nope\"}", 1002, "unknown frame type");
    raw_open(&w, a.fed_port, sn, NULL, 0);
    expect_close(&w, "{\"t\":\"auth\",\"sig\":\"x\"}", 1002, "unexpected auth");
    raw_open(&w, a.fed_port, sn, NULL, 0);
    expect_close(&w, hello_json(text, sizeof text, 2, "fed-t", mine), 1002, "version");
    raw_open(&w, a.fed_port, sn, NULL, 0);
    expect_close(&w,
                 "{\"t\":\"hello\",\"v\":1,\"server\":\"fed-t\",\"nonce\":\"short\",\"time\":1}",
                 1002, "malformed hello");
    raw_open(&w, a.fed_port, sn, NULL, 0);
    expect_close(&w, "{\"t\":\"hello\",\"v\":1,\"server\":7,\"nonce\":null,\"time\":\"x\"}", 1002,
                 "malformed hello");
    raw_open(&w, a.fed_port, sn, NULL, 0);
    expect_close(&w, hello_json(text, sizeof text, 1, "fed-t\\nwarn forged=1", mine), 1002,
                 "malformed hello"); /* nothing a log line could be forged with */
    raw_open(&w, a.fed_port, sn, NULL, 0);
    expect_close(&w, hello_json(text, sizeof text, 1, "fed-nobody", mine), 4401, "unknown server");
    raw_open(&w, a.fed_port, sn, NULL, 0);
    expect_close(&w, hello_json(text, sizeof text, 1, "fed-a", mine), 4401, "unknown server");
    /* Before the handshake a frame may have 4 KiB. */
    raw_open(&w, a.fed_port, sn, NULL, 0);
    memset(text, 'x', 5000);
    text[5000] = '\0';
    expect_close(&w, text, 1009, "too large");
    raw_open(&w, a.fed_port, sn, NULL, 0);
    cr_assert(ws_send_frame(&w, 0x2, "\x01\x02", 2));
    expect_close(&w, NULL, 1003, "binary");
    /* A signature made with the wrong key. */
    raw_open(&w, a.fed_port, sn, NULL, 0);
    cr_assert(ws_send_text(&w, hello_json(text, sizeof text, 1, "fed-t", mine)));
    uint8_t other_pk[32], other_sk[64], sig[FED_SIG_BYTES];
    crypto_sign_keypair(other_pk, other_sk);
    cr_assert_eq(fed_hello_sign(FED_SIGNER_DIALER, "fed-t", mine, "fed-a", sn, other_sk, sig), 0);
    char sb[FED_SIG_B64LEN + 1];
    sodium_bin2base64(sb, sizeof sb, sig, sizeof sig, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(text, sizeof text, "{\"t\":\"auth\",\"sig\":\"%s\"}", sb);
    expect_close(&w, text, 4403, "does not verify");
    /* A stalled handshake: closed at federation_handshake_timeout_s (2 s). */
    raw_open(&w, a.fed_port, sn, NULL, 0);
    long long t0 = mono_ms();
    ws_wait_close(&w, 6000);
    cr_assert_lt(mono_ms() - t0, 5500, "closed by the deadline, not by the wait");
    cr_assert_gt(mono_ms() - t0, 1000, "not before the deadline");
    ws_close_fd(&w);

    /* The real thing, played by the test: fed-t connects; a's AUTH verifies under a's key. */
    raw_open(&w, a.fed_port, sn, NULL, 0);
    cr_assert(ws_send_text(&w, hello_json(text, sizeof text, 1, "fed-t", mine)));
    cr_assert_eq(fed_hello_sign(FED_SIGNER_DIALER, "fed-t", mine, "fed-a", sn, tsk, sig), 0);
    sodium_bin2base64(sb, sizeof sb, sig, sizeof sig, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(text, sizeof text, "{\"t\":\"auth\",\"sig\":\"%s\"}", sb);
    cr_assert(ws_send_text(&w, text));
    char *t = ws_recv_text(&w, 5000);
    cr_assert_not_null(t);
    cJSON *j = cJSON_Parse(t);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "t")->valuestring, "auth", "%s", t);
    cr_assert(fed_b64url_decode(cJSON_GetObjectItem(j, "sig")->valuestring, sig, sizeof sig));
    cr_assert(fed_hello_verify(FED_SIGNER_ACCEPTOR, "fed-t", mine, "fed-a", sn, ia.pk, sig),
              "the server proves its key");
    cJSON_Delete(j);
    free(t);
    cJSON *l = wait_link(&a, "fed-t", true);
    cr_assert_str_eq(field(l, "direction"), "in");
    cJSON_Delete(l);
    /* After the handshake: federation_max_frame_bytes (8192) bounds a frame. */
    memset(text, 'y', 9000);
    text[9000] = '\0';
    expect_close(&w, text, 1009, "too large");
    cJSON_Delete(wait_link(&a, "fed-t", false));

    /* A clock 5 minutes off raises the alarm (and still connects: clocks never decide). */
    raw_open(&w, a.fed_port, sn, NULL, 0);
    char b64[FED_NONCE_B64LEN + 1];
    sodium_bin2base64(b64, sizeof b64, mine, sizeof mine, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(text, sizeof text,
             "{\"t\":\"hello\",\"v\":1,\"server\":\"fed-t\",\"nonce\":\"%s\",\"time\":%lld}", b64,
             ((long long)time(NULL) + 300) * 1000);
    cr_assert(ws_send_text(&w, text));
    cr_assert_eq(fed_hello_sign(FED_SIGNER_DIALER, "fed-t", mine, "fed-a", sn, tsk, sig), 0);
    sodium_bin2base64(sb, sizeof sb, sig, sizeof sig, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(text, sizeof text, "{\"t\":\"auth\",\"sig\":\"%s\"}", sb);
    cr_assert(ws_send_text(&w, text));
    l = wait_link(&a, "fed-t", true);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(l, "skew_alarm")));
    cr_assert_gt(cJSON_GetObjectItem(l, "skew_ms")->valuedouble, 290000);
    cJSON_Delete(l);
    ws_close_fd(&w);

    /* After the handshake, replication's frames (any type but hello and auth) go to the core
     * and the link stays up (the close that follows names the HELLO, not them); "t" must be a
     * frame's first member. */
    cJSON_Delete(wait_link(&a, "fed-t", false));
    raw_open(&w, a.fed_port, sn, NULL, 0);
    raw_auth(&w, sn, mine, tsk);
    cJSON_Delete(wait_link(&a, "fed-t", true));
    cr_assert(ws_send_text(&w, "{\"t\":\"summary\",\"rooms\":[]}"));
    cr_assert(ws_send_text(&w, " {\n \"t\" : \"summary\", \"rooms\": []}"));
    expect_close(&w, hello_json(text, sizeof text, 1, "fed-t", mine), 1002, "unexpected hello");
    cJSON_Delete(wait_link(&a, "fed-t", false));
    raw_open(&w, a.fed_port, sn, NULL, 0);
    raw_auth(&w, sn, mine, tsk);
    cJSON_Delete(wait_link(&a, "fed-t", true));
    expect_close(&w, "{\"rooms\":[],\"t\":\"summary\"}", 1002, "first member is t");
    sodium_memzero(tsk, sizeof tsk);

    /* Healthy: the API answers, and the stop at teardown must be clean. */
    cr_assert_eq(http_request(a.port, "GET", "/healthz", NULL, NULL, body, sizeof body), 200);
}

/* Plain WebSocket off loopback is refused at start, with the reason. */
Test(fed_link, plain_federation_off_loopback_refuses_to_start)
{
    fed_server(&a, "fed-a", NULL);
    cr_assert_eq(kzd_stop(&a), 0);
    char out[4096], cmd[2048];
    snprintf(cmd, sizeof cmd, "exec '%s' serve --data '%s' --config '%s' --set %s 2>&1",
             KIZUNAD_PATH, a.dir, a.config, "federation_listen=0.0.0.0:0");
    const char *sh[] = {"/bin/sh", "-c", cmd, NULL};
    cr_assert_neq(run_capture(sh, NULL, NULL, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "not a loopback address") && strstr(out, "federation_tls_cert_file"),
              "%s", out);
}

/* ---- TLS: off loopback, links are wss:// and the TLS pin is checked ---- */

/* A non-loopback IPv4 address of this machine into out; false if it has none. */
static bool local_address(char *out, size_t n)
{
    struct ifaddrs *ifs, *i;
    bool found = false;
    if (getifaddrs(&ifs) != 0)
        return false;
    for (i = ifs; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
            continue;
        const struct in_addr *in = &((const struct sockaddr_in *)i->ifa_addr)->sin_addr;
        if ((ntohl(in->s_addr) >> 24) == 127)
            continue;
        found = inet_ntop(AF_INET, in, out, (socklen_t)n) != NULL;
    }
    freeifaddrs(ifs);
    return found;
}

/* A self-signed certificate and key in dir, and the base64 SHA-256 of its key (peer add's
 * --tls-pin), made as docs/operations.md says. */
static void make_certificate(const char *dir, char *cert, char *key, size_t n, char *pin, size_t pn)
{
    snprintf(cert, n, "%s/fed-cert.pem", dir);
    snprintf(key, n, "%s/fed-key.pem", dir);
    char cmd[1200], out[512];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout %s -out %s -days 2 -subj /CN=kizuna 2>/dev/null",
             key, cert);
    cr_assert_eq(system(cmd), 0, "openssl makes a certificate");
    snprintf(cmd, sizeof cmd,
             "openssl x509 -in %s -pubkey -noout | openssl pkey -pubin -outform der | "
             "openssl dgst -sha256 -binary | base64",
             cert);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    cr_assert_eq(run_capture(argv, NULL, NULL, out, sizeof out), 0);
    out[strcspn(out, "\n")] = '\0';
    size_t len = strlen(out);
    cr_assert_lt(len, pn, "the pin does not fit: %s", out);
    memcpy(pin, out, len + 1);
}

/* d pins `who` at ip:port with a TLS pin. */
static void pin_tls(const struct kzd *d, const struct ident *id, const char *ip, int port,
                    const char *tls_pin)
{
    cJSON *r = admin_call(d,
                          "\"op\":\"peer.add\",\"server\":\"%s\",\"key\":\"%s\","
                          "\"addresses\":[\"%s:%d\"],\"fingerprint\":\"%s\",\"tls_pin\":\"%s\"",
                          id->id, id->key, ip, port, id->fp, tls_pin);
    cr_assert_str_eq(reply_code(r), "ok", "peer.add %s", id->id);
    cJSON_Delete(r);
}

Test(fed_link, tls_links_off_loopback_check_the_pin)
{
    char ip[64];
    if (!local_address(ip, sizeof ip))
        cr_skip_test("this machine has no IPv4 address but loopback");
    static char tmp[128], cert[300], key[300], pin[128], cfg[1024];
    snprintf(tmp, sizeof tmp, "/tmp/kizuna-fedtls-XXXXXX");
    cr_assert_not_null(mkdtemp(tmp));
    make_certificate(tmp, cert, key, sizeof cert, pin, sizeof pin);
    snprintf(cfg, sizeof cfg,
             "\"federation_listen\":\"0.0.0.0:0\",\"federation_tls_cert_file\":\"%s\","
             "\"federation_tls_key_file\":\"%s\"",
             cert, key);
    fed_server(&a, "fed-a", cfg);
    fed_server(&b, "fed-b", cfg);
    struct ident ia, ib;
    ident_of(&a, &ia);
    ident_of(&b, &ib);
    /* b pins a with a TLS pin that is not a's: b's wss:// dials fail before anything is sent
     * (and a does not pin b yet, so a does not dial). */
    pin_tls(&b, &ia, ip, a.fed_port, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    wait_error(&b, "fed-a", "does not match the peer's TLS pin");
    /* a pins b with the right pin: a dials b over TLS and the link comes up. */
    pin_tls(&a, &ib, ip, b.fed_port, pin);
    cJSON *l = wait_link(&a, "fed-b", true);
    cr_assert_str_eq(field(l, "direction"), "out");
    cJSON_Delete(l);
    cJSON_Delete(wait_link(&b, "fed-a", true));
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    cr_assert_eq(system(cmd), 0);
}
