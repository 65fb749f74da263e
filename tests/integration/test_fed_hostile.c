/* test_fed_hostile.c - T5 of issue 17: forged, replayed, wrong-room, unknown-server and
 * origin-mismatch events are refused without harming anything else. One real kizunad (server
 * jp-a) pins a key the test holds as peer jp-test-peer, and the test plays that server over a
 * raw WebSocket on the federation port (the signed handshake of fed_hello.c): it reads jp-a's
 * summary and its room's events, and sends events frames of its own log, made with the
 * server's own event format code (event_format.h: real ids, chains and checkpoint signatures).
 *
 * First the good path: a member join for the peer's user and messages (unsigned between, the
 * last of a batch signed) are stored, shown by history as "tanaka@jp-test-peer", and
 * acknowledged. Then each hostile frame in turn, and after each the database must say that
 * nothing changed, the link must still be up, and a valid event must still be taken and
 * acknowledged: a bad signature, a tampered payload, another key, a broken prev chain, a
 * replayed batch (duplicates: no new rows), a room jp-a does not hold, a payload of another
 * room than its frame's, a room that is not shared, an origin that is not pinned, a frame whose
 * origin differs from its payloads', events claiming jp-a's own current incarnation, a batch
 * ahead of its log (kept until the one before it comes), and a fork (kept in fed_forks, and the log
 * refused above it, while other logs and rooms go on). Malformed frames (not JSON, events not an
 * array) close the link with 1002, the server stays healthy, and the peer reconnects and goes on.
 * And a peer speaks for its own users only: events naming jp-a's admin concern admin@jp-test-peer.
 *
 * The tests at the end are what this file first found the server not to do (a false fork, an
 * event that failed the commit, invalid events shown, a NUL in summaries), fixed since.
 * KIZUNA_TEST_KEEP=1 keeps jp-a's directory (its log says which
 * rule refused what).
 *
 * Every check reads the database (sqlite3, read-only: the server keeps it in WAL mode) or the
 * client API; every wait has a deadline. Frames on one link are handled in order, so once the
 * acknowledgement of the valid event that follows a hostile frame has arrived, the hostile
 * frame has been handled too. */
#include <criterion/criterion.h>
#include <poll.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "event_format.h"
#include "fed.h"
#include "harness.h"

#define DEADLINE_MS 30000
#define SELF        "jp-a"
#define PEER        "jp-test-peer"
#define PEER_USER   "tanaka"

static struct kzd a;

static void setup(void)
{
    cr_assert_geq(sodium_init(), 0);
}

static void teardown(void)
{
    kzd_teardown(&a);
}

TestSuite(fed_hostile, .init = setup, .fini = teardown, .timeout = 90);

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ---- the server and its client API ---- */

static cJSON *admin_call(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static cJSON *admin_call(const char *fmt, ...)
{
    char req[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(req, sizeof req, fmt, ap);
    va_end(ap);
    struct ws w;
    cr_assert(ws_open(&w, a.port));
    cr_assert(ws_login(&w, "admin", TEST_ADMIN_PASSWORD, NULL));
    cJSON *r = ws_callf(&w, "%s", req);
    ws_close_fd(&w);
    return r;
}

/* jp-a pins `who` under pk at an address where nothing listens (its dials fail; the test dials
 * it instead). */
static void pin(const char *who, const uint8_t pk[32])
{
    char key[FED_KEY_B64LEN + 1], fp[FED_FINGERPRINT_LEN + 1];
    fed_key_encode(pk, key, sizeof key);
    cr_assert_eq(fed_fingerprint(who, pk, fp), 0);
    cJSON *r = admin_call("\"op\":\"peer.add\",\"server\":\"%s\",\"key\":\"%s\","
                          "\"addresses\":[\"127.0.0.1:1\"],\"fingerprint\":\"%s\"",
                          who, key, fp);
    cr_assert_str_eq(reply_code(r), "ok", "peer.add %s", who);
    cJSON_Delete(r);
}

/* A room of jp-a's admin (shared with PEER if shared); its id into room. */
static void room_create(const char *name, bool shared, char room[KZ_EVENT_ID_CHARS])
{
    cJSON *r = admin_call("\"op\":\"room.create\",\"name\":\"%s\"%s", name,
                          shared ? ",\"servers\":[\"" PEER "\"]" : "");
    cr_assert_str_eq(reply_code(r), "ok", "room.create %s", name);
    snprintf(room, KZ_EVENT_ID_CHARS, "%s",
             cJSON_GetObjectItem(cJSON_GetObjectItem(r, "room"), "room")->valuestring);
    cJSON_Delete(r);
}

/* Whether jp-a's peer.list shows the link to PEER connected. */
static bool link_up(void)
{
    cJSON *r = admin_call("\"op\":\"peer.list\"");
    cr_assert_str_eq(reply_code(r), "ok");
    bool up = false;
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(r, "peers"))
    {
        if (strcmp(cJSON_GetObjectItem(p, "server")->valuestring, PEER) == 0)
            up = cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(p, "link"), "connected"));
    }
    cJSON_Delete(r);
    return up;
}

/* A replication counter of jp-a's peer.list ("replication": duplicates, rejected, forks...),
 * or -1 where peer.list does not show it: the test reads the database, and checks the counters
 * only where they are shown. */
static long long counter(const char *name)
{
    cJSON *r = admin_call("\"op\":\"peer.list\"");
    cr_assert_str_eq(reply_code(r), "ok");
    const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "replication"), name);
    long long n = cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;
    cJSON_Delete(r);
    return n;
}

static void wait_link(bool want)
{
    long long end = mono_ms() + DEADLINE_MS;
    while (link_up() != want) {
        cr_assert(mono_ms() < end, "the link to %s never became %s", PEER,
                  want ? "connected" : "disconnected");
        pause_ms(20);
    }
}

static void healthy(void)
{
    char body[512];
    cr_assert_eq(http_request(a.port, "GET", "/healthz", NULL, NULL, body, sizeof body), 200,
                 "the server stays healthy: %s", body);
}

/* One number from jp-a's database (read-only; the server keeps running). */
static long long db_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static long long db_int(const char *fmt, ...)
{
    char sql[4096], path[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    snprintf(path, sizeof path, "%s/kizuna.db", a.dir);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *s = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW, "%s: %s", sql, sqlite3_errmsg(db));
    long long v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

/* One text from jp-a's database into out ("" if none). */
static void db_text(char *out, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void db_text(char *out, size_t n, const char *fmt, ...)
{
    char sql[4096], path[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    snprintf(path, sizeof path, "%s/kizuna.db", a.dir);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *s = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    out[0] = '\0';
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
        snprintf(out, n, "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    sqlite3_close(db);
}

/* Every event row of the room (its internal id looked up by room_id). */
static long long rows_of(const char *room, const char *origin)
{
    return db_int("SELECT count(*) FROM events e JOIN rooms r ON r.id = e.room"
                  " WHERE r.room_id = '%s' AND e.origin = '%s'",
                  room, origin);
}

static long long all_rows(void)
{
    return db_int("SELECT count(*) FROM events");
}

/* How many lines of jp-a's log have needle. */
static int log_count(const char *needle)
{
    char path[400], line[4096];
    snprintf(path, sizeof path, "%s/stderr.log", a.dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* Waits for a line with needle in jp-a's log beyond the `before` it had. */
static void wait_log(const char *needle, int before)
{
    long long end = mono_ms() + DEADLINE_MS;
    while (log_count(needle) <= before) {
        cr_assert(mono_ms() < end, "jp-a never logged '%s'", needle);
        pause_ms(10);
    }
}

/* Whether history of room, read by jp-a's admin, has a message with body from sender. */
static bool history_has(const char *room, const char *sender, const char *body)
{
    cJSON *r = admin_call("\"op\":\"history\",\"room\":\"%s\",\"limit\":200", room);
    cr_assert_str_eq(reply_code(r), "ok");
    bool found = false;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(r, "events"))
    {
        const cJSON *c = cJSON_GetObjectItem(e, "content");
        const char *b = cJSON_GetStringValue(cJSON_GetObjectItem(c, "body"));
        const char *who = cJSON_GetStringValue(cJSON_GetObjectItem(e, "sender"));
        if (b && who && !strcmp(b, body) && !strcmp(who, sender))
            found = true;
    }
    cJSON_Delete(r);
    return found;
}

/* ---- the test's own server: its key, its log, its link ---- */

/* One log the test writes (room, origin, inc): what its next event chains to. */
struct tlog {
    char room[KZ_EVENT_ID_CHARS];
    char origin[64];
    int64_t inc, seq, hlc;
    char head[KZ_EVENT_ID_CHARS];
};

/* One event as sent: its payload, its signature (base64url, "" between checkpoints). */
struct tev {
    char *payload;
    size_t len;
    char sig[FED_SIG_B64LEN + 1];
    char id[KZ_EVENT_ID_CHARS];
    int64_t seq;
};

struct peer {
    uint8_t pk[32], sk[64];
    char keyid[KZ_EVENT_KEY_ID_CHARS];
    struct ws w;
    uint8_t a_pk[32]; /* jp-a's key, from kizunad fingerprint */
};

static struct peer P;

static void tev_free(struct tev *e)
{
    kz_event_payload_free(e->payload);
    e->payload = NULL;
}

static void tev_sign(struct tev *e, const uint8_t sk[64])
{
    uint8_t sig[KZ_EVENT_SIG_BYTES];
    cr_assert_eq(kz_event_sign(e->payload, e->len, sk, sig), 0);
    sodium_bin2base64(e->sig, sizeof e->sig, sig, sizeof sig,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* An event with these fields (f->key, hlc and ts filled in when 0/NULL) and content (JSON
 * text), signed with sk if not NULL. */
static struct tev tev_make(struct kz_event_fields f, const char *content, const uint8_t *sk)
{
    struct tev e = {0};
    cJSON *c = cJSON_Parse(content);
    cr_assert_not_null(c, "%s", content);
    f.v = KZ_EVENT_VERSION;
    if (!f.key)
        f.key = P.keyid;
    if (!f.ts)
        f.ts = wall_ms();
    if (!f.hlc)
        f.hlc = f.ts;
    e.payload = kz_event_payload_build(&f, c, &e.len);
    cJSON_Delete(c);
    cr_assert_not_null(e.payload);
    kz_event_id(e.payload, e.len, e.id);
    e.seq = f.seq;
    if (sk)
        tev_sign(&e, sk);
    return e;
}

/* The next event of log l, by sender, signed or not; l moves on. */
static struct tev tev_next(struct tlog *l, const char *type, const char *content, bool sign)
{
    int64_t now = wall_ms();
    struct kz_event_fields f = {.room = l->room,
                                .origin = l->origin,
                                .inc = l->inc,
                                .seq = l->seq + 1,
                                .prev = l->seq ? l->head : NULL,
                                .hlc = kz_event_hlc_next(now, l->hlc),
                                .ts = now,
                                .type = type,
                                .sender = PEER_USER};
    struct tev e = tev_make(f, content, sign ? P.sk : NULL);
    l->seq = e.seq;
    l->hlc = f.hlc;
    snprintf(l->head, sizeof l->head, "%s", e.id);
    return e;
}

static void tlog_init(struct tlog *l, const char *room)
{
    memset(l, 0, sizeof *l);
    snprintf(l->room, sizeof l->room, "%s", room);
    snprintf(l->origin, sizeof l->origin, "%s", PEER);
    l->inc = 1;
}

/* An events frame (caller frees): t first, as every frame. */
static char *events_frame(const char *room, const char *origin, int64_t inc, const struct tev *ev,
                          int n)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "t", "events");
    cJSON_AddStringToObject(j, "room", room);
    cJSON_AddStringToObject(j, "origin", origin);
    cJSON_AddNumberToObject(j, "inc", (double)inc);
    cJSON *arr = cJSON_AddArrayToObject(j, "events");
    for (int i = 0; i < n; i++) {
        cJSON *pair = cJSON_CreateArray();
        cJSON_AddItemToArray(pair, cJSON_CreateString(ev[i].payload));
        cJSON_AddItemToArray(pair, cJSON_CreateString(ev[i].sig));
        cJSON_AddItemToArray(arr, pair);
    }
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return text;
}

static void send_text(const char *text)
{
    cr_assert(ws_send_text(&P.w, text), "the link is still open");
}

static void send_events(const char *room, const char *origin, int64_t inc, const struct tev *ev,
                        int n)
{
    char *text = events_frame(room, origin, inc, ev, n);
    send_text(text);
    free(text);
}

static void send_log(const struct tlog *l, const struct tev *ev, int n)
{
    send_events(l->room, l->origin, l->inc, ev, n);
}

/* Reads n bytes from fd before the deadline (monotonic ms). */
static bool read_full(int fd, void *buf, size_t n, long long deadline)
{
    char *p = buf;
    while (n) {
        long long left = deadline - mono_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, (int)left) != 1)
            return false;
        ssize_t got = read(fd, p, n);
        if (got <= 0)
            return false;
        p += got;
        n -= (size_t)got;
    }
    return true;
}

/* The next text message from jp-a with its length (caller frees), or NULL on close (code and
 * reason into P.w) or timeout. ws_recv_text would hand back a NUL-terminated string only: a
 * frame with a NUL byte inside would look cut short. */
static char *peer_recv(int timeout_ms, size_t *len)
{
    long long deadline = mono_ms() + timeout_ms;
    for (;;) {
        unsigned char h[2];
        if (!read_full(P.w.fd, h, 2, deadline))
            return NULL;
        int opcode = h[0] & 0x0f;
        cr_assert(h[0] & 0x80, "jp-a sends whole frames (opcode %d)", opcode);
        uint64_t n = h[1] & 0x7f;
        if (n >= 126) {
            unsigned char e[8];
            size_t k = n == 126 ? 2 : 8;
            if (!read_full(P.w.fd, e, k, deadline))
                return NULL;
            n = 0;
            for (size_t i = 0; i < k; i++)
                n = (n << 8) | e[i];
        }
        cr_assert_lt(n, 64u << 20);
        char *payload = malloc(n + 1);
        cr_assert_not_null(payload);
        if (!read_full(P.w.fd, payload, n, deadline)) {
            free(payload);
            return NULL;
        }
        payload[n] = '\0';
        if (opcode == 0x8) {
            P.w.close_code =
                n >= 2 ? ((unsigned char)payload[0] << 8) | (unsigned char)payload[1] : 1005;
            snprintf(P.w.close_reason, sizeof P.w.close_reason, "%.*s", n > 2 ? (int)(n - 2) : 0,
                     n > 2 ? payload + 2 : "");
            free(payload);
            return NULL;
        }
        if (opcode == 0x1) {
            *len = n;
            return payload;
        }
        free(payload); /* pings: jp-a pings only after 30 s without a frame */
    }
}

/* Frames from jp-a with a NUL byte in them (not JSON: RFC 8259 allows no control character
 * outside strings). kizunad's own reader (cJSON by length) skips it as whitespace. */
static int nul_frames;

/* The next frame from jp-a of type t about (room, origin) if given, skipping others (jp-a's own
 * events frames are acknowledged on the way); NULL if the link closed. Caller deletes. */
static cJSON *recv_frame(const char *t, const char *room, const char *origin, int timeout_ms)
{
    long long end = mono_ms() + timeout_ms;
    for (;;) {
        long long left = end - mono_ms();
        if (left <= 0)
            return NULL;
        size_t len;
        char *text = peer_recv((int)left, &len);
        if (!text)
            return NULL;
        if (memchr(text, '\0', len)) {
            nul_frames++;
            fprintf(stderr,
                    "jp-a sent a frame with a NUL byte at %zu (frames_have_no_nul_byte): %s\n",
                    (size_t)((char *)memchr(text, '\0', len) - text), text);
        }
        cJSON *j = cJSON_ParseWithLength(text, len);
        cr_assert_not_null(j, "jp-a sends JSON: %s", text);
        free(text);
        const char *jt = cJSON_GetStringValue(cJSON_GetObjectItem(j, "t"));
        cr_assert_not_null(jt);
        if (!strcmp(jt, "events")) {
            const cJSON *evs = cJSON_GetObjectItem(j, "events");
            const cJSON *last = cJSON_GetArrayItem(evs, cJSON_GetArraySize(evs) - 1);
            struct kz_event_head h;
            const char *pl = cJSON_GetStringValue(cJSON_GetArrayItem(last, 0));
            cr_assert_not_null(pl);
            cr_assert_null(kz_event_parse(pl, strlen(pl), &h, NULL), "%s", pl);
            char ack[512];
            snprintf(ack, sizeof ack,
                     "{\"t\":\"ack\",\"room\":\"%s\",\"origin\":\"%s\",\"inc\":%lld,\"seq\":%lld}",
                     cJSON_GetStringValue(cJSON_GetObjectItem(j, "room")), h.origin,
                     (long long)h.inc, (long long)h.seq);
            send_text(ack);
        }
        bool match = !strcmp(jt, t);
        const char *jr = cJSON_GetStringValue(cJSON_GetObjectItem(j, "room"));
        const char *jo = cJSON_GetStringValue(cJSON_GetObjectItem(j, "origin"));
        if (match && room)
            match = jr && !strcmp(jr, room);
        if (match && origin)
            match = jo && !strcmp(jo, origin);
        if (match)
            return j;
        cJSON_Delete(j);
    }
}

/* Waits for jp-a to close the link; its close code (-1: it did not). */
static int peer_wait_close(int timeout_ms)
{
    long long end = mono_ms() + timeout_ms;
    while (!P.w.close_code && mono_ms() < end) {
        size_t len;
        char *t = peer_recv((int)(end - mono_ms()), &len);
        if (!t)
            break;
        free(t);
    }
    return P.w.close_code ? P.w.close_code : -1;
}

static long long jnum(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(j, k);
    cr_assert(cJSON_IsNumber(v), "a number %s", k);
    return (long long)v->valuedouble;
}

/* Waits for jp-a's ack of log l up to seq (acks below it may come first: cumulative). */
static void expect_ack(const struct tlog *l, int64_t seq)
{
    long long end = mono_ms() + DEADLINE_MS;
    for (;;) {
        long long left = end - mono_ms();
        cJSON *j = left > 0 ? recv_frame("ack", l->room, l->origin, (int)left) : NULL;
        cr_assert_not_null(j, "jp-a acknowledges %s/%lld up to %lld (close %d %s)", l->origin,
                           (long long)l->inc, (long long)seq, P.w.close_code, P.w.close_reason);
        long long got = jnum(j, "seq");
        cJSON_Delete(j);
        cr_assert_leq(got, seq, "acknowledged past what was sent");
        if (got == seq)
            return;
    }
}

/* Waits for jp-a's want of log l; its seq (where to resume) must be `held`, with retry. */
static void expect_want(const struct tlog *l, int64_t held)
{
    cJSON *j = recv_frame("want", l->room, l->origin, DEADLINE_MS);
    cr_assert_not_null(j, "jp-a asks for what it lacks");
    cr_assert_eq(jnum(j, "seq"), held, "want from what it holds");
    cr_assert_eq(jnum(j, "inc"), l->inc);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "retry")), "with retry");
    cJSON_Delete(j);
}

/* Opens the link as PEER and finishes the handshake; then tells jp-a it holds nothing (so
 * jp-a streams what the peer lacks), and returns jp-a's summary (caller deletes). */
static cJSON *peer_connect(void)
{
    struct ws *w = &P.w;
    memset(w, 0, sizeof *w);
    w->fd = tcp_open(a.fed_port);
    cr_assert_geq(w->fd, 0);
    struct timeval tv = {5, 0};
    setsockopt(w->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET /fed/v1 HTTP/1.1\r\nHost: kizuna-federation\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Protocol: kizuna.fed.v1\r\nSec-WebSocket-Version: 13\r\n\r\n");
    cr_assert_eq(write(w->fd, req, (size_t)n), n);
    char resp[2048];
    size_t len = 0;
    while (len < sizeof resp - 1) {
        cr_assert_eq(read(w->fd, resp + len, 1), 1, "the upgrade is answered");
        resp[++len] = '\0';
        if (len >= 4 && memcmp(resp + len - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    cr_assert(strncmp(resp, "HTTP/1.1 101", 12) == 0, "%s", resp);
    /* jp-a's HELLO, then ours and our AUTH; jp-a's AUTH must verify under its key. */
    size_t tl;
    char *t = peer_recv(5000, &tl);
    cr_assert_not_null(t, "jp-a says hello first");
    cJSON *j = cJSON_ParseWithLength(t, tl);
    free(t);
    uint8_t sn[FED_NONCE_BYTES], mine[FED_NONCE_BYTES], sig[FED_SIG_BYTES];
    cr_assert_str_eq(cJSON_GetObjectItem(j, "server")->valuestring, SELF);
    cr_assert(fed_b64url_decode(cJSON_GetObjectItem(j, "nonce")->valuestring, sn, FED_NONCE_BYTES));
    cJSON_Delete(j);
    randombytes_buf(mine, sizeof mine);
    char text[512], b64[FED_NONCE_B64LEN + 1], sb[FED_SIG_B64LEN + 1];
    sodium_bin2base64(b64, sizeof b64, mine, sizeof mine, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(text, sizeof text,
             "{\"t\":\"hello\",\"v\":1,\"server\":\"" PEER "\",\"nonce\":\"%s\",\"time\":%lld}",
             b64, wall_ms());
    send_text(text);
    cr_assert_eq(fed_hello_sign(FED_SIGNER_DIALER, PEER, mine, SELF, sn, P.sk, sig), 0);
    sodium_bin2base64(sb, sizeof sb, sig, sizeof sig, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(text, sizeof text, "{\"t\":\"auth\",\"sig\":\"%s\"}", sb);
    send_text(text);
    t = peer_recv(5000, &tl);
    cr_assert_not_null(t, "jp-a answers with its AUTH");
    j = cJSON_ParseWithLength(t, tl);
    free(t);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "t")->valuestring, "auth");
    cr_assert(fed_b64url_decode(cJSON_GetObjectItem(j, "sig")->valuestring, sig, sizeof sig));
    cr_assert(fed_hello_verify(FED_SIGNER_ACCEPTOR, PEER, mine, SELF, sn, P.a_pk, sig),
              "jp-a proves its key");
    cJSON_Delete(j);
    cJSON *summary = recv_frame("summary", NULL, NULL, DEADLINE_MS);
    cr_assert_not_null(summary, "jp-a sends its summary once the link is up");
    send_text("{\"t\":\"summary\",\"rooms\":[],\"done\":true}");
    return summary;
}

/* Reads jp-a's events frames until it has sent its own log of room up to seq at least; checks
 * each payload's id chain and signature against jp-a's key, and the room's creation hashing to
 * the room's id. */
static void read_a_log(const char *room, int64_t from, int64_t upto)
{
    int64_t have = from;
    struct kz_event_log log;
    char head[KZ_EVENT_ID_CHARS] = "";
    if (from)
        db_text(head, sizeof head,
                "SELECT e.event_id FROM events e JOIN rooms r ON r.id = e.room"
                " WHERE r.room_id = '%s' AND e.origin = '" SELF "' AND e.inc = 1 AND e.seq = %lld",
                room, (long long)from);
    kz_event_log_start(&log, from ? room : NULL, SELF, 1, from, from ? head : NULL);
    while (have < upto) {
        cJSON *j = recv_frame("events", room, SELF, DEADLINE_MS);
        cr_assert_not_null(j, "jp-a streams its log of the room (%lld of %lld so far)",
                           (long long)have, (long long)upto);
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, "events"))
        {
            const char *pl = cJSON_GetStringValue(cJSON_GetArrayItem(it, 0));
            const char *sg = cJSON_GetStringValue(cJSON_GetArrayItem(it, 1));
            cr_assert(pl && sg);
            struct kz_event_head h;
            cr_assert_null(kz_event_parse(pl, strlen(pl), &h, NULL));
            if (h.seq <= have)
                continue; /* sent again: a peer deduplicates */
            uint8_t sig[KZ_EVENT_SIG_BYTES];
            size_t sl = 0;
            if (sg[0]) {
                cr_assert(fed_b64url_decode(sg, sig, sizeof sig));
                sl = sizeof sig;
            }
            enum kz_event_verdict v =
                kz_event_log_check(&log, pl, strlen(pl), sig, sl, P.a_pk, NULL, NULL);
            cr_assert_eq(v, KZ_EVENT_OK, "jp-a's seq %lld: %s", (long long)h.seq,
                         kz_event_verdict_name(v));
            if (h.seq == 1) {
                char rid[KZ_EVENT_ID_CHARS];
                kz_event_room_id(pl, strlen(pl), rid);
                cr_assert_str_eq(rid, room, "the creation hashes to the room's id");
                cr_assert_str_eq(h.type, "room.create");
            }
            have = h.seq;
        }
        cr_assert_eq(log.signed_seq, have, "a batch ends on a signed event");
        cJSON_Delete(j);
    }
}

/* jp-a with PEER pinned under the test's key, a room shared with PEER, the link up and the
 * room's first events (creation, the admin's join) read. */
/* Starts jp-a (extra: more config members, "" or beginning with a comma), pins the played
 * peer, creates the shared room and connects as the peer. */
static void start_with(char room[KZ_EVENT_ID_CHARS], const char *extra)
{
    char cfg[512];
    snprintf(cfg, sizeof cfg, "\"server_id\":\"" SELF "\",\"federation_listen\":\"127.0.0.1:0\"%s",
             extra);
    kzd_setup_with(&a, cfg);
    cr_assert_gt(a.fed_port, 0);
    char out[4096];
    const char *argv[] = {KIZUNAD_PATH, "fingerprint", "--data", a.dir, NULL};
    cr_assert_eq(run_capture(argv, NULL, NULL, out, sizeof out), 0, "%s", out);
    const char *k = strstr(out, "public key:");
    cr_assert_not_null(k, "%s", out);
    k += strlen("public key:");
    k += strspn(k, " ");
    char key[128], why[160];
    snprintf(key, sizeof key, "%.*s", (int)strcspn(k, " \n("), k);
    cr_assert(fed_key_parse(key, P.a_pk, why, sizeof why), "%s", why);
    crypto_sign_keypair(P.pk, P.sk);
    kz_event_key_id(P.pk, P.keyid);
    pin(PEER, P.pk);
    room_create("T5", true, room);
    cJSON *summary = peer_connect();
    char *s = cJSON_PrintUnformatted(summary);
    cr_assert(strstr(s, room), "jp-a's summary names the shared room: %s", s);
    free(s);
    cJSON_Delete(summary);
    wait_link(true);
    read_a_log(room, 0, 2);
}

static void start(char room[KZ_EVENT_ID_CHARS])
{
    start_with(room, "");
}

/* The peer's user joins and says two things: join and the first message unsigned, the last
 * signed. Stored, acknowledged, and shown as tanaka@jp-test-peer. */
static void peer_joins(struct tlog *l)
{
    struct tev ev[3];
    ev[0] = tev_next(l, "member",
                     "{\"user\":\"" PEER_USER "\",\"membership\":\"join\",\"role\":\"member\","
                     "\"name\":\"田中\"}",
                     false);
    ev[1] = tev_next(l, "msg", "{\"body\":\"first from the peer\"}", false);
    ev[2] = tev_next(l, "msg", "{\"body\":\"second from the peer\"}", true);
    send_log(l, ev, 3);
    expect_ack(l, 3);
    for (int i = 0; i < 3; i++)
        tev_free(&ev[i]);
    cr_assert_eq(rows_of(l->room, PEER), 3);
    cr_assert(history_has(l->room, PEER_USER "@" PEER, "first from the peer"));
    cr_assert(history_has(l->room, PEER_USER "@" PEER, "second from the peer"));
}

/* After anything hostile: a valid signed message of l still goes through, exactly one row
 * more in the whole database (what came before changed nothing), the link still up. */
static int valid_n;
static void still_works(struct tlog *l, const char *after)
{
    long long before = all_rows(), mine = rows_of(l->room, l->origin);
    char body[128], content[200];
    snprintf(body, sizeof body, "valid after %s (%d)", after, ++valid_n);
    snprintf(content, sizeof content, "{\"body\":\"%s\"}", body);
    struct tev e = tev_next(l, "msg", content, true);
    send_log(l, &e, 1);
    expect_ack(l, e.seq);
    tev_free(&e);
    cr_assert_eq(rows_of(l->room, l->origin), mine + 1, "after %s", after);
    cr_assert_eq(all_rows(), before + 1, "after %s: nothing else was stored", after);
    cr_assert_eq(db_int("SELECT head_seq FROM logs g JOIN rooms r ON r.id = g.room"
                        " WHERE r.room_id = '%s' AND g.origin = '%s' AND g.inc = %lld",
                        l->room, l->origin, (long long)l->inc),
                 l->seq, "the log's head");
    cr_assert(history_has(l->room, PEER_USER "@" PEER, body), "after %s", after);
    cr_assert(link_up(), "after %s: the link is up", after);
}

/* ---- the tests ---- */

Test(fed_hostile, valid_events_are_stored_and_acknowledged)
{
    char room[KZ_EVENT_ID_CHARS];
    start(room);
    struct tlog l;
    tlog_init(&l, room);
    peer_joins(&l);
    /* A longer batch: unsigned runs between checkpoints, two checkpoints in one frame. */
    struct tev ev[6];
    for (int i = 0; i < 6; i++) {
        char c[64];
        snprintf(c, sizeof c, "{\"body\":\"batch %d\"}", i);
        ev[i] = tev_next(&l, "msg", c, i == 2 || i == 5);
    }
    send_log(&l, ev, 6);
    expect_ack(&l, l.seq);
    /* Stored as their origin made them, byte for byte, with its checkpoints. */
    for (int i = 0; i < 6; i++) {
        char hex[1024];
        cr_assert_lt(ev[i].len * 2, sizeof hex);
        sodium_bin2hex(hex, sizeof hex, (const unsigned char *)ev[i].payload, ev[i].len);
        cr_assert_eq(db_int("SELECT count(*) FROM events WHERE event_id = '%s'"
                            " AND lower(hex(payload)) = '%s' AND length(sig) = %d",
                            ev[i].id, hex, ev[i].sig[0] ? KZ_EVENT_SIG_BYTES : 0),
                     1, "event %d as sent", i);
        tev_free(&ev[i]);
    }
    cr_assert_eq(rows_of(room, PEER), 9);
    cr_assert_eq(db_int("SELECT count(*) FROM users WHERE login = '" PEER_USER "@" PEER
                        "' AND home = '" PEER "'"),
                 1, "the peer's user is an actor of its own server");
    /* Nothing jp-a received is marked invalid. */
    cr_assert_eq(
        db_int("SELECT count(*) FROM events WHERE origin = '" PEER "' AND invalid IS NOT NULL"), 0);
    still_works(&l, "a longer batch");
    healthy();
}

Test(fed_hostile, forged_events_change_nothing)
{
    char room[KZ_EVENT_ID_CHARS];
    start(room);
    struct tlog l;
    tlog_init(&l, room);
    peer_joins(&l);
    uint8_t opk[32], osk[64];
    crypto_sign_keypair(opk, osk);
    long long rejected = counter("rejected");

    /* A bad signature: the next event signed by another key. */
    int refused = log_count("fed_event_refused");
    struct tlog copy = l;
    struct tev e = tev_next(&copy, "msg", "{\"body\":\"forged: another key signed it\"}", false);
    tev_sign(&e, osk);
    send_log(&l, &e, 1);
    tev_free(&e);
    wait_log("bad_signature", 0);
    still_works(&l, "a bad signature");

    /* A tampered payload: a real signature of other bytes. */
    copy = l;
    e = tev_next(&copy, "msg", "{\"body\":\"what the peer said\"}", true);
    char *p = strstr(e.payload, "what the peer said");
    cr_assert_not_null(p);
    memcpy(p, "what the peer SAID", 18);
    send_log(&l, &e, 1);
    tev_free(&e);
    still_works(&l, "a tampered payload");

    /* Signed by another key that it names: the key is not the one pinned for the origin. */
    copy = l;
    struct kz_event_fields f = {.room = l.room,
                                .origin = PEER,
                                .inc = 1,
                                .seq = l.seq + 1,
                                .prev = l.head,
                                .hlc = kz_event_hlc_next(wall_ms(), l.hlc),
                                .type = "msg",
                                .sender = PEER_USER};
    char okid[KZ_EVENT_KEY_ID_CHARS];
    kz_event_key_id(opk, okid);
    f.key = okid;
    f.ts = f.hlc;
    e = tev_make(f, "{\"body\":\"forged: names another key\"}", osk);
    send_log(&l, &e, 1);
    tev_free(&e);
    wait_log("wrong_key", 0);
    still_works(&l, "another key");

    /* A broken chain: prev names an event that is not the log's head. */
    f = (struct kz_event_fields){.room = l.room,
                                 .origin = PEER,
                                 .inc = 1,
                                 .seq = l.seq + 1,
                                 .prev = room, /* an id, but not the head's */
                                 .hlc = kz_event_hlc_next(wall_ms(), l.hlc),
                                 .type = "msg",
                                 .sender = PEER_USER};
    e = tev_make(f, "{\"body\":\"forged: broken chain\"}", P.sk);
    send_log(&l, &e, 1);
    tev_free(&e);
    wait_log("broken_chain", 0);
    still_works(&l, "a broken chain");

    /* A batch whose second event does not chain to its first (so the first, unsigned, is
     * covered by no signature): nothing of it is taken, and jp-a asks from its head. */
    copy = l;
    struct tev two[2];
    two[0] = tev_next(&copy, "msg", "{\"body\":\"unsigned, before a broken link\"}", false);
    f = (struct kz_event_fields){.room = l.room,
                                 .origin = PEER,
                                 .inc = 1,
                                 .seq = copy.seq + 1,
                                 .prev = l.head, /* skips two[0] */
                                 .hlc = kz_event_hlc_next(wall_ms(), copy.hlc),
                                 .type = "msg",
                                 .sender = PEER_USER};
    two[1] = tev_make(f, "{\"body\":\"forged: chains past its predecessor\"}", P.sk);
    long long before = all_rows();
    send_log(&l, two, 2);
    expect_want(&l, l.seq);
    cr_assert_eq(all_rows(), before, "an unverifiable tail is not stored");
    tev_free(&two[0]);
    tev_free(&two[1]);
    still_works(&l, "an unverifiable batch");

    /* A payload that is not this format (fields out of place) though signed. */
    const char *bad = "{\"v\":2,\"origin\":\"" PEER "\",\"room\":\"x\"}";
    struct tev m = {.payload = (char *)bad, .len = strlen(bad)};
    tev_sign(&m, P.sk);
    send_log(&l, &m, 1);
    still_works(&l, "a malformed payload");
    cr_assert_gt(log_count("fed_event_refused"), refused + 4, "each refusal is logged");
    cr_assert_eq(db_int("SELECT count(*) FROM fed_forks"), 0, "none of this is a fork");
    if (rejected >= 0)
        cr_assert_geq(counter("rejected"), rejected + 6, "peer.list counts the refusals");
    healthy();
}

Test(fed_hostile, replayed_batches_add_no_rows)
{
    char room[KZ_EVENT_ID_CHARS];
    start(room);
    struct tlog l;
    tlog_init(&l, room);
    peer_joins(&l);
    /* A batch taken, then the same bytes again: duplicates, acknowledged at the head (the peer
     * learns where jp-a is), and no new rows. */
    struct tev ev[2];
    long long dups = counter("duplicates");
    long long before = all_rows();
    struct tlog l2 = l;
    ev[0] = tev_next(&l2, "msg", "{\"body\":\"once\"}", false);
    ev[1] = tev_next(&l2, "msg", "{\"body\":\"twice\"}", true);
    send_log(&l, ev, 2);
    l = l2;
    expect_ack(&l, l.seq);
    cr_assert_eq(all_rows(), before + 2);
    for (int round = 0; round < 3; round++) {
        send_log(&l, ev, 2);
        expect_ack(&l, l.seq); /* duplicates are acknowledged at the head */
        cr_assert_eq(all_rows(), before + 2, "a replay adds nothing (round %d)", round);
    }
    if (dups >= 0)
        cr_assert_geq(counter("duplicates"), dups + 6, "peer.list counts the duplicates");
    /* A replay that overlaps new events: the held ones are skipped, the new one taken. */
    struct tev ev3[3] = {ev[0], ev[1], tev_next(&l, "msg", "{\"body\":\"thrice\"}", true)};
    send_log(&l, ev3, 3);
    expect_ack(&l, l.seq);
    cr_assert_eq(all_rows(), before + 3);
    cr_assert_eq(db_int("SELECT count(*) FROM messages WHERE body = 'twice'"), 1);
    tev_free(&ev[0]);
    tev_free(&ev[1]);
    tev_free(&ev3[2]);
    cr_assert_eq(db_int("SELECT count(*) FROM fed_forks"), 0, "a replay is no fork");
    still_works(&l, "replays");
}

Test(fed_hostile, wrong_room_and_unknown_rooms_change_nothing)
{
    char room[KZ_EVENT_ID_CHARS], room2[KZ_EVENT_ID_CHARS], local[KZ_EVENT_ID_CHARS];
    start(room);
    struct tlog l;
    tlog_init(&l, room);
    peer_joins(&l);
    room_create("T5 second", true, room2);
    room_create("T5 local", false, local);
    long long rooms = db_int("SELECT count(*) FROM rooms");

    /* A payload of room2 in a frame of room, at the seq room's log expects next: refused as
     * of another log. (At a seq room's log already holds, see the disabled test below.) */
    struct tlog in2;
    tlog_init(&in2, room2);
    struct tev e = tev_next(&in2, "member",
                            "{\"user\":\"" PEER_USER "\",\"membership\":\"join\","
                            "\"role\":\"member\",\"name\":\"田中\"}",
                            true);
    struct tlog other = in2;
    other.seq = l.seq;
    snprintf(other.head, sizeof other.head, "%s", l.head);
    struct tev e2 = tev_next(&other, "msg", "{\"body\":\"of room2, in room's frame\"}", true);
    int refused = log_count("other_log");
    send_log(&l, &e2, 1);
    tev_free(&e2);
    wait_log("other_log", refused);
    still_works(&l, "a payload of another room");
    cr_assert_eq(rows_of(room2, PEER), 0);
    /* And the frame of room2 with a payload of room (the payload room decides nothing). */
    struct tlog copy = l;
    struct tev e1 = tev_next(&copy, "msg", "{\"body\":\"frame of another room\"}", true);
    send_events(room2, PEER, 1, &e1, 1);
    tev_free(&e1);
    still_works(&l, "a frame of another room");
    cr_assert_eq(rows_of(room2, PEER), 0);

    /* A room jp-a does not hold: a message of it (no creation) and a creation by the peer
     * that does not name jp-a. No room, no rows. */
    uint8_t nonce[12];
    randombytes_buf(nonce, sizeof nonce);
    char nb[32], content[512];
    sodium_bin2base64(nb, sizeof nb, nonce, sizeof nonce, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(content, sizeof content,
             "{\"kind\":\"group\",\"name\":\"not for jp-a\",\"topic\":\"\",\"history\":\"shared\","
             "\"nonce\":\"%s\",\"servers\":[\"" PEER "\",\"jp-other\"]}",
             nb);
    struct kz_event_fields f = {
        .origin = PEER, .inc = 1, .seq = 1, .type = "room.create", .sender = PEER_USER};
    struct tev c = tev_make(f, content, P.sk);
    char unknown[KZ_EVENT_ID_CHARS];
    kz_event_room_id(c.payload, c.len, unknown);
    int not_named = log_count("fed_room_refused");
    send_events(unknown, PEER, 1, &c, 1);
    wait_log("fed_room_refused", not_named);
    struct tlog ul;
    tlog_init(&ul, unknown);
    ul.seq = 1;
    snprintf(ul.head, sizeof ul.head, "%s", c.id);
    ul.hlc = wall_ms();
    struct tev um = tev_next(&ul, "msg", "{\"body\":\"in a room jp-a lacks\"}", true);
    send_events(unknown, PEER, 1, &um, 1);
    /* A message at seq 1 of a room jp-a lacks, whose frame names that room. */
    struct tlog ul1;
    tlog_init(&ul1, unknown);
    struct tev u1 = tev_next(&ul1, "msg", "{\"body\":\"first of a room jp-a lacks\"}", true);
    send_events(unknown, PEER, 1, &u1, 1);
    /* The creation sent under the id of a room jp-a does hold. */
    send_events(room2, PEER, 1, &c, 1);
    still_works(&l, "rooms jp-a does not hold");
    tev_free(&c);
    tev_free(&um);
    tev_free(&u1);
    cr_assert_eq(db_int("SELECT count(*) FROM rooms WHERE room_id = '%s'", unknown), 0);
    cr_assert_eq(db_int("SELECT count(*) FROM rooms"), rooms, "no room was added");

    /* A room that is not shared: refused whole. */
    struct tlog ll;
    tlog_init(&ll, local);
    struct tev le = tev_next(&ll, "member",
                             "{\"user\":\"" PEER_USER "\",\"membership\":\"join\","
                             "\"role\":\"member\",\"name\":\"田中\"}",
                             true);
    int not_shared = log_count("fed_not_shared");
    send_log(&ll, &le, 1);
    wait_log("fed_not_shared", not_shared);
    tev_free(&le);
    still_works(&l, "a room that is not shared");
    cr_assert_eq(rows_of(local, PEER), 0);

    /* room2's own log of the peer still starts fine: the refusals above were of one frame. */
    send_log(&in2, &e, 1);
    expect_ack(&in2, 1);
    tev_free(&e);
    cr_assert_eq(rows_of(room2, PEER), 1);
    healthy();
}

Test(fed_hostile, unknown_and_mismatched_origins_change_nothing)
{
    char room[KZ_EVENT_ID_CHARS];
    start(room);
    struct tlog l;
    tlog_init(&l, room);
    peer_joins(&l);
    long long a_rows = rows_of(room, SELF);

    /* An origin jp-a does not pin, with a key of its own: refused. */
    uint8_t npk[32], nsk[64];
    crypto_sign_keypair(npk, nsk);
    char nkid[KZ_EVENT_KEY_ID_CHARS];
    kz_event_key_id(npk, nkid);
    struct kz_event_fields f = {.room = room,
                                .origin = "jp-nobody",
                                .inc = 1,
                                .key = nkid,
                                .seq = 1,
                                .type = "member",
                                .sender = "sato"};
    struct tev e = tev_make(
        f, "{\"user\":\"sato\",\"membership\":\"join\",\"role\":\"member\",\"name\":\"佐藤\"}",
        nsk);
    int unknown = log_count("fed_unknown_origin");
    send_events(room, "jp-nobody", 1, &e, 1);
    wait_log("fed_unknown_origin", unknown);
    still_works(&l, "an unknown origin");
    cr_assert_eq(rows_of(room, "jp-nobody"), 0);
    cr_assert_eq(db_int("SELECT count(*) FROM users WHERE home = 'jp-nobody'"), 0,
                 "no actor for a server nobody pinned");

    /* A pinned server the room has not admitted (jp-other, with its real key). */
    uint8_t opk[32], osk[64];
    crypto_sign_keypair(opk, osk);
    pin("jp-other", opk);
    char okid[KZ_EVENT_KEY_ID_CHARS];
    kz_event_key_id(opk, okid);
    f.origin = "jp-other";
    f.key = okid;
    struct tev o = tev_make(
        f, "{\"user\":\"sato\",\"membership\":\"join\",\"role\":\"member\",\"name\":\"佐藤\"}",
        osk);
    int not_admitted = log_count("fed_not_admitted");
    send_events(room, "jp-other", 1, &o, 1);
    wait_log("fed_not_admitted", not_admitted);
    still_works(&l, "an origin the room has not admitted");
    cr_assert_eq(rows_of(room, "jp-other"), 0);

    /* The frame says jp-test-peer, the payload another origin (pinned or not). */
    send_events(room, PEER, 1, &e, 1);
    still_works(&l, "a payload of an unknown origin under the peer's frame");
    send_events(room, PEER, 1, &o, 1);
    still_works(&l, "a payload of another pinned origin under the peer's frame");
    /* And the other way: the frame names jp-other, the payload the peer's next event. */
    struct tlog copy = l;
    struct tev pe = tev_next(&copy, "msg", "{\"body\":\"origin mismatch\"}", true);
    send_events(room, "jp-other", 1, &pe, 1);
    still_works(&l, "a peer's payload under jp-other's frame");
    /* The peer's payload under its own frame, but another incarnation. */
    copy = l;
    tev_free(&pe);
    pe = tev_next(&copy, "msg", "{\"body\":\"incarnation mismatch\"}", true);
    send_events(room, PEER, 2, &pe, 1);
    still_works(&l, "a payload of another incarnation");
    tev_free(&pe);
    cr_assert_eq(rows_of(room, "jp-other"), 0);
    cr_assert_eq(rows_of(room, "jp-nobody"), 0);

    /* jp-a's own server id and current incarnation: only jp-a writes that log; also a later
     * incarnation. Its next seq, signed by the test (it has no key of jp-a's; the claim alone
     * is refused before any signature is checked). */
    long long head = db_int("SELECT head_seq FROM logs g JOIN rooms r ON r.id = g.room"
                            " WHERE r.room_id = '%s' AND g.origin = '" SELF "'",
                            room);
    cr_assert_eq(head, a_rows);
    int own = log_count("fed_own_incarnation");
    f = (struct kz_event_fields){.room = room,
                                 .origin = SELF,
                                 .inc = 1,
                                 .seq = head + 1,
                                 .prev = room,
                                 .type = "msg",
                                 .sender = "admin"};
    struct tev s1 = tev_make(f, "{\"body\":\"jp-a never said this\"}", P.sk);
    send_events(room, SELF, 1, &s1, 1);
    f.inc = 2;
    f.seq = 1;
    f.prev = NULL;
    struct tev s2 = tev_make(f, "{\"body\":\"nor this\"}", P.sk);
    send_events(room, SELF, 2, &s2, 1);
    wait_log("fed_own_incarnation", own + 1);
    /* And one under the peer's frame: of another log. */
    send_events(room, PEER, 1, &s1, 1);
    still_works(&l, "jp-a's own incarnation");
    cr_assert_eq(rows_of(room, SELF), a_rows, "jp-a's log is jp-a's alone");
    cr_assert_eq(db_int("SELECT count(*) FROM messages WHERE body LIKE '%%jp-a never%%'"
                        " OR body = 'nor this'"),
                 0);
    tev_free(&s1);
    tev_free(&s2);
    tev_free(&e);
    tev_free(&o);

    /* jp-a's own events still reach the peer: its admin says something. */
    cJSON *r = admin_call("\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"jp-a is fine\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    read_a_log(room, a_rows, a_rows + 1);
    healthy();
}

/* A batch ahead of its log (a frame reordered on the way) waits in the pending area for the
 * batch before it; then both are taken. */
Test(fed_hostile, a_batch_ahead_of_its_log_waits_for_the_one_before)
{
    char room[KZ_EVENT_ID_CHARS];
    start(room);
    struct tlog l;
    tlog_init(&l, room);
    peer_joins(&l);
    long long before = all_rows();
    int64_t held = l.seq;
    struct tev ev[3];
    ev[0] = tev_next(&l, "msg", "{\"body\":\"the missing one\"}", true);
    ev[1] = tev_next(&l, "msg", "{\"body\":\"after the gap\"}", false);
    ev[2] = tev_next(&l, "msg", "{\"body\":\"after the gap, signed\"}", true);
    send_log(&l, &ev[1], 2);
    cr_assert_eq(all_rows(), before, "nothing past a gap is stored");
    /* The batch before it comes: it and the one that waited are taken. */
    send_log(&l, ev, 1);
    expect_ack(&l, l.seq);
    cr_assert_eq(all_rows(), before + 3);
    /* Sent again whole (the sender did not know): duplicates, acknowledged. */
    send_log(&l, ev, 3);
    expect_ack(&l, l.seq);
    cr_assert_eq(all_rows(), before + 3);
    for (int i = 0; i < 3; i++)
        tev_free(&ev[i]);
    /* An unsigned tail (no checkpoint covers it) waits too: jp-a takes what is signed and
     * asks for the rest. */
    held = l.seq + 1;
    ev[0] = tev_next(&l, "msg", "{\"body\":\"signed\"}", true);
    ev[1] = tev_next(&l, "msg", "{\"body\":\"unsigned tail\"}", false);
    send_log(&l, ev, 2);
    expect_want(&l, held);
    cr_assert_eq(rows_of(room, PEER), 3 + 3 + 1);
    ev[2] = tev_next(&l, "msg", "{\"body\":\"its checkpoint\"}", true);
    send_log(&l, &ev[1], 2);
    expect_ack(&l, l.seq);
    for (int i = 0; i < 3; i++)
        tev_free(&ev[i]);
    still_works(&l, "a gap");
}

Test(fed_hostile, a_fork_is_kept_as_evidence_and_quarantines_its_log)
{
    char room[KZ_EVENT_ID_CHARS], room2[KZ_EVENT_ID_CHARS];
    start(room);
    struct tlog l;
    tlog_init(&l, room);
    struct tlog at1 = l;
    peer_joins(&l);
    /* Another room with the peer's log in it, to show the quarantine is of one log. */
    room_create("T5 other", true, room2);
    read_a_log(room2, 0, 2);
    struct tlog l2;
    tlog_init(&l2, room2);
    peer_joins(&l2);

    /* A different signed event at seq 2, chained to the held seq 1. */
    char held1[KZ_EVENT_ID_CHARS], held2[KZ_EVENT_ID_CHARS], hlc1[32];
#define AT_SEQ(col, n)                                                                             \
    "SELECT e." col " FROM events e JOIN rooms r ON r.id = e.room"                                 \
    " WHERE r.room_id = '%s' AND e.origin = '" PEER "' AND e.seq = " #n
    db_text(held1, sizeof held1, AT_SEQ("event_id", 1), room);
    db_text(hlc1, sizeof hlc1, AT_SEQ("hlc", 1), room);
    db_text(held2, sizeof held2, AT_SEQ("event_id", 2), room);
#undef AT_SEQ
    struct tlog f1 = at1;
    f1.seq = 1;
    snprintf(f1.head, sizeof f1.head, "%s", held1);
    f1.hlc = atoll(hlc1);
    struct tev fork = tev_next(&f1, "msg", "{\"body\":\"a second story at seq 2\"}", true);
    cr_assert_eq(fork.seq, 2);
    cr_assert_str_neq(fork.id, held2);
    long long before = all_rows();
    int forks = log_count("fed_fork");
    send_log(&l, &fork, 1);
    wait_log("fed_fork", forks);
    cr_assert_eq(db_int("SELECT count(*) FROM fed_forks f JOIN rooms r ON r.id = f.room"
                        " WHERE r.room_id = '%s' AND f.origin = '" PEER
                        "' AND f.inc = 1 AND f.seq = 2 AND f.held_id = '%s'"
                        " AND f.other_id = '%s' AND f.from_peer = '" PEER "'",
                        room, held2, fork.id),
                 1, "the fork is kept as evidence");
    cr_assert_eq(db_int("SELECT count(*) FROM events WHERE event_id = '%s'", fork.id), 0,
                 "the other story is not in the log");
    cr_assert_eq(all_rows(), before);
    /* The same fork again: still one piece of evidence. */
    send_log(&l, &fork, 1);
    tev_free(&fork);

    /* Above the fork, the log is refused: a valid next event is not taken, nor acknowledged. */
    struct tev next = tev_next(&l, "msg", "{\"body\":\"above the fork\"}", true);
    send_log(&l, &next, 1);
    tev_free(&next);
    /* The peer's log in the other room, and jp-a's own log, go on. */
    still_works(&l2, "a fork in another room");
    cr_assert_eq(rows_of(room, PEER), 3, "nothing above the fork was taken");
    cr_assert_eq(db_int("SELECT count(*) FROM messages WHERE body = 'above the fork'"), 0);
    cr_assert_eq(db_int("SELECT count(*) FROM fed_forks"), 1);
    long long a_rows = rows_of(room, SELF);
    cJSON *r = admin_call("\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"after the fork\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    read_a_log(room, a_rows, a_rows + 1);
    healthy();
}

/* A frame that is not JSON, or whose events are not an array, closes the link with 1002; the
 * server stays healthy, and the peer connects again and goes on where it was. */
Test(fed_hostile, malformed_frames_close_the_link_and_nothing_else)
{
    char room[KZ_EVENT_ID_CHARS];
    start(room);
    struct tlog l;
    tlog_init(&l, room);
    peer_joins(&l);
    const char *bad[] = {
        "{\"t\":\"events\" this is not JSON", NULL, /* events not an array: made below */
        NULL,                                       /* no inc */
    };
    char b1[256], b2[256];
    snprintf(b1, sizeof b1,
             "{\"t\":\"events\",\"room\":\"%s\",\"origin\":\"" PEER "\",\"inc\":1,\"events\":{}}",
             room);
    snprintf(b2, sizeof b2,
             "{\"t\":\"events\",\"room\":\"%s\",\"origin\":\"" PEER "\",\"events\":[]}", room);
    bad[1] = b1;
    bad[2] = b2;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        long long before = all_rows();
        send_text(bad[i]);
        int code = peer_wait_close(DEADLINE_MS);
        cr_assert_eq(code, 1002, "%s: closed with %d (%s)", bad[i], code, P.w.close_reason);
        ws_close_fd(&P.w);
        wait_link(false);
        healthy();
        cr_assert_eq(all_rows(), before);
        cJSON_Delete(peer_connect());
        wait_link(true);
        char what[64];
        snprintf(what, sizeof what, "malformed frame %zu", i + 1);
        still_works(&l, what);
    }
}

/* A peer speaks for its own users only: its signed, well-chained events that name jp-a's admin
 * (removing it from the room, or sending as it) concern the actor admin@jp-test-peer, never
 * jp-a's admin; and a sender who is not a member is kept in the log (no holes) but changes
 * nothing and is shown to no one. */
Test(fed_hostile, a_peer_speaks_only_for_its_own_users)
{
    char room[KZ_EVENT_ID_CHARS];
    start(room);
    struct tlog l;
    tlog_init(&l, room);
    peer_joins(&l);
    /* sato, who never joined, says something; the peer's own "admin" joins and leaves; then
     * a message as "admin", no longer a member. */
    struct tev ev[4];
    struct kz_event_fields f = {.room = room,
                                .origin = PEER,
                                .inc = 1,
                                .seq = l.seq + 1,
                                .prev = l.head,
                                .hlc = kz_event_hlc_next(wall_ms(), l.hlc),
                                .type = "msg",
                                .sender = "sato"};
    ev[0] = tev_make(f, "{\"body\":\"sato never joined\"}", NULL);
    l.seq = ev[0].seq;
    l.hlc = f.hlc;
    snprintf(l.head, sizeof l.head, "%s", ev[0].id);
    ev[1] = tev_next(&l, "member",
                     "{\"user\":\"admin\",\"membership\":\"join\",\"role\":\"admin\","
                     "\"name\":\"Administrator\"}",
                     false);
    ev[2] = tev_next(&l, "member", "{\"user\":\"admin\",\"membership\":\"leave\"}", false);
    f = (struct kz_event_fields){.room = room,
                                 .origin = PEER,
                                 .inc = 1,
                                 .seq = l.seq + 1,
                                 .prev = l.head,
                                 .hlc = kz_event_hlc_next(wall_ms(), l.hlc),
                                 .type = "msg",
                                 .sender = "admin"};
    ev[3] = tev_make(f, "{\"body\":\"the peer speaking as jp-a's admin\"}", P.sk);
    l.seq = ev[3].seq;
    l.hlc = f.hlc;
    snprintf(l.head, sizeof l.head, "%s", ev[3].id);
    send_log(&l, ev, 4);
    expect_ack(&l, l.seq);
    for (int i = 0; i < 4; i++)
        tev_free(&ev[i]);
    cr_assert_eq(db_int("SELECT count(*) FROM room_members m JOIN users u ON u.id = m.user_id"
                        " JOIN rooms r ON r.id = m.room WHERE r.room_id = '%s'"
                        " AND u.login = 'admin' AND u.home IS NULL AND m.left_pos IS NULL",
                        room),
                 1, "jp-a's admin is still a member");
    cr_assert_eq(db_int("SELECT count(*) FROM events WHERE origin = '" PEER
                        "' AND seq IN (%lld, %lld)"
                        " AND invalid IS NOT NULL",
                        (long long)l.seq - 3, (long long)l.seq),
                 2, "senders who are not members: kept (a log has no holes), marked invalid");
    cr_assert_eq(db_int("SELECT count(*) FROM messages WHERE body LIKE 'the peer speaking%%'"
                        " OR body = 'sato never joined'"),
                 0);
    cr_assert_eq(db_int("SELECT count(*) FROM room_members m JOIN users u ON u.id = m.user_id"
                        " WHERE u.login = 'admin@" PEER "' AND u.home = '" PEER "'"
                        " AND m.left_pos IS NOT NULL"),
                 1, "the peer's own admin joined and left");
    cr_assert_not(history_has(room, "admin", "the peer speaking as jp-a's admin"));
    cJSON *r = admin_call("\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"still here\"", room);
    cr_assert_str_eq(reply_code(r), "ok", "jp-a's admin still writes to the room");
    cJSON_Delete(r);
    still_works(&l, "events naming jp-a's admin");
}

/* ---- found by this file, fixed since ----
 * Each failed before its fix (fed_receive.c, fed_sync.c, store_talk.c). */

/* Every frame jp-a sends is JSON: no NUL byte (the summary's opening was written with its
 * terminator, 25 bytes for 24, in fed_sync.c's summary_start). */
Test(fed_hostile, frames_have_no_nul_byte)
{
    char room[KZ_EVENT_ID_CHARS];
    start(room);
    cr_assert_eq(nul_frames, 0, "frames with a NUL byte: %d", nul_frames);
}

/* jp-a's fed_forks rows, in words, for a failure message. */
static const char *forks_said(void)
{
    static char out[1024];
    db_text(out, sizeof out,
            "SELECT group_concat('seq ' || seq || ' held ' || hex(held_id) || ' (hex) other ' ||"
            " other_id, '; ') FROM fed_forks");
    return out;
}

/* A signed event of the peer's log in room2 sent in a frame of room, at a seq room's log
 * already holds: it is of another log (other_log), not a second event at that seq. */
Test(fed_hostile, a_payload_of_another_room_at_a_held_seq_is_no_fork)
{
    char room[KZ_EVENT_ID_CHARS], room2[KZ_EVENT_ID_CHARS];
    start(room);
    struct tlog l;
    tlog_init(&l, room);
    peer_joins(&l);
    room_create("T5 second", true, room2);
    struct tlog in2;
    tlog_init(&in2, room2);
    struct tev e = tev_next(&in2, "member",
                            "{\"user\":\"" PEER_USER "\",\"membership\":\"join\","
                            "\"role\":\"member\",\"name\":\"田中\"}",
                            true);
    int refused = log_count("other_log"), forks = log_count("fed_fork");
    send_log(&l, &e, 1); /* seq 1: room holds its own seq 1 */
    tev_free(&e);
    for (long long end = mono_ms() + DEADLINE_MS;
         log_count("other_log") == refused && log_count("fed_fork") == forks;) {
        cr_assert(mono_ms() < end, "jp-a logged neither other_log nor a fork");
        pause_ms(10);
    }
    cr_assert_eq(db_int("SELECT count(*) FROM fed_forks"), 0, "no fork: another room's event: %s",
                 forks_said());
    still_works(&l, "a payload of another room at a held seq");
}

/* An event kept as invalid (its sender is not a member) changes nothing and reaches no one:
 * not in history, not in sync. */
Test(fed_hostile, invalid_events_reach_no_one)
{
    char room[KZ_EVENT_ID_CHARS];
    start(room);
    struct tlog l;
    tlog_init(&l, room);
    peer_joins(&l);
    struct kz_event_fields f = {.room = room,
                                .origin = PEER,
                                .inc = 1,
                                .seq = l.seq + 1,
                                .prev = l.head,
                                .hlc = kz_event_hlc_next(wall_ms(), l.hlc),
                                .type = "msg",
                                .sender = "sato"};
    struct tev e = tev_make(f, "{\"body\":\"sato never joined\"}", P.sk);
    l.seq = e.seq;
    l.hlc = f.hlc;
    snprintf(l.head, sizeof l.head, "%s", e.id);
    send_log(&l, &e, 1);
    expect_ack(&l, l.seq);
    tev_free(&e);
    cr_assert_eq(
        db_int("SELECT count(*) FROM events WHERE event_id = '%s' AND invalid IS NOT NULL", l.head),
        1);
    bool in_history = history_has(room, "sato@" PEER, "sato never joined");
    struct ws w;
    cJSON *events = cJSON_CreateArray();
    ws_live(&w, a.port, "admin", TEST_ADMIN_PASSWORD, 0, events);
    ws_close_fd(&w);
    char *all = cJSON_PrintUnformatted(events);
    cJSON_Delete(events);
    bool seen = strstr(all, "sato never joined") != NULL;
    free(all);
    cr_assert_not(in_history || seen, "shown: in history %d, in sync %d", in_history, seen);
}

/* The same signed event twice in one batch: a duplicate, not a fork of itself. */
Test(fed_hostile, one_event_twice_in_a_batch_is_no_fork)
{
    char room[KZ_EVENT_ID_CHARS];
    start(room);
    struct tlog l;
    tlog_init(&l, room);
    peer_joins(&l);
    struct tev ev[2];
    ev[0] = tev_next(&l, "msg", "{\"body\":\"said twice in one frame\"}", true);
    ev[1] = ev[0];
    long long before = all_rows();
    send_log(&l, ev, 2);
    expect_ack(&l, l.seq);
    tev_free(&ev[0]);
    cr_assert_eq(all_rows(), before + 1);
    cr_assert_eq(db_int("SELECT count(*) FROM fed_forks"), 0, "a repeat is no fork: %s",
                 forks_said());
    still_works(&l, "one event twice in a batch");
}

/* A fork and, in the same frame, the log's next event: the log is refused above the fork
 * whether what follows comes in the same frame or a later one. */
Test(fed_hostile, a_fork_quarantines_the_rest_of_its_own_batch)
{
    char room[KZ_EVENT_ID_CHARS];
    start(room);
    struct tlog l;
    tlog_init(&l, room);
    peer_joins(&l);
    char held1[KZ_EVENT_ID_CHARS];
    db_text(held1, sizeof held1,
            "SELECT e.event_id FROM events e JOIN rooms r ON r.id = e.room"
            " WHERE r.room_id = '%s' AND e.origin = '" PEER "' AND e.seq = 1",
            room);
    struct tlog f1 = l;
    f1.seq = 1;
    snprintf(f1.head, sizeof f1.head, "%s", held1);
    struct tev ev[2];
    ev[0] = tev_next(&f1, "msg", "{\"body\":\"another story at seq 2\"}", true);
    ev[1] = tev_next(&l, "msg", "{\"body\":\"after the fork, same frame\"}", true);
    long long before = all_rows();
    int forks = log_count("fed_fork");
    send_log(&l, ev, 2);
    wait_log("fed_fork", forks);
    tev_free(&ev[0]);
    tev_free(&ev[1]);
    /* What follows shows the frame was handled: another room's log of the peer goes on. */
    char room2[KZ_EVENT_ID_CHARS];
    room_create("T5 other", true, room2);
    struct tlog l2;
    tlog_init(&l2, room2);
    peer_joins(&l2);
    cr_assert_eq(db_int("SELECT count(*) FROM messages WHERE body = 'after the fork, same frame'"),
                 0, "nothing above the fork is taken");
    cr_assert_eq(all_rows(), before + 2 + 3,
                 "rows %lld before %lld: the second room's creation and join, the peer's three",
                 all_rows(), before);
}

/* Signed, well-chained events whose content the server cannot apply (a message without a body;
 * the peer's user leaving a room it never joined): kept as invalid (or applied as nothing),
 * never a failed commit that takes a client's write with it, closes every client's connection
 * and leaves the peer's log stuck on an event it will send again and again. */
Test(fed_hostile, an_event_that_cannot_be_applied_harms_nothing_else)
{
    char room[KZ_EVENT_ID_CHARS];
    start(room);
    struct tlog l;
    tlog_init(&l, room);
    peer_joins(&l);
    const struct {
        const char *type, *content;
    } cases[] = {
        {"msg", "{\"text\":\"no body\"}"},
        {"member", "{\"user\":\"sato\",\"membership\":\"leave\"}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct ws w;
        ws_live(&w, a.port, "admin", TEST_ADMIN_PASSWORD, -1, NULL);
        struct tev e = tev_next(&l, cases[i].type, cases[i].content, true);
        send_log(&l, &e, 1);
        tev_free(&e);
        cJSON *r =
            ws_callf(&w, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"a client writes\"", room);
        char *said = cJSON_PrintUnformatted(r);
        cr_assert_str_eq(reply_code(r), "ok", "%s %s: a client's write beside it: %s",
                         cases[i].type, cases[i].content, said ? said : "(no reply)");
        free(said);
        cJSON_Delete(r);
        ws_close_fd(&w);
        /* The log goes on: the event is held and the next is taken. */
        expect_ack(&l, l.seq);
        char what[48];
        snprintf(what, sizeof what, "an event that cannot be applied (%zu)", i + 1);
        still_works(&l, what);
    }
}

/* A link that carries nothing still gets jp-a's summary again once federation_summary_s has
 * passed (from housekeeping), so whatever was lost on the way is found without new traffic. */
Test(fed_hostile, a_quiet_link_gets_the_summary_again)
{
    char room[KZ_EVENT_ID_CHARS];
    start_with(room, ",\"federation_summary_s\":5,\"housekeeping_interval_s\":1");
    long long t0 = mono_ms();
    cJSON *j = recv_frame("summary", NULL, NULL, 15000);
    cr_assert_not_null(j, "no summary again on a quiet link"); /* the first: peer_connect's */
    char *s = cJSON_PrintUnformatted(j);
    cr_assert(strstr(s, room), "it names the shared room: %s", s);
    free(s);
    cJSON_Delete(j);
    fprintf(stderr, "a quiet link got the summary again %lld ms after the test's start\n",
            mono_ms() - t0);
}

/* A peer that is not the room's authority: its authority events (handing the authority to
 * itself, admitting a server, renaming, archiving, assigning a role) and a seat in a room that is
 * no hotline are kept invalid and change nothing; one citing a grant no server holds waits: it
 * is neither stored nor acknowledged, and changes nothing. */
Test(fed_hostile, a_peer_that_is_not_the_authority_changes_nothing)
{
    char room[KZ_EVENT_ID_CHARS];
    start(room);
    struct tlog l;
    tlog_init(&l, room);
    peer_joins(&l);
    const struct {
        const char *type, *content;
    } cases[] = {
        {"room.authority", "{\"server\":\"" PEER "\"}"},
        {"room.server", "{\"server\":\"jp-evil\",\"admitted\":true}"},
        {"room.update", "{\"name\":\"乗っ取り\",\"topic\":\"\",\"changed\":[\"name\"]}"},
        {"room.archive", "{\"archived\":true}"},
        {"hotline.role", "{\"server\":\"" PEER "\",\"role\":\"hq\"}"},
        {"hotline.seat", "{\"seat\":\"当直\",\"user\":\"" PEER_USER "\",\"on_duty\":true}"},
    };
    const int ncases = (int)(sizeof cases / sizeof *cases);
    for (int i = 0; i < ncases; i++) {
        struct tev e = tev_next(&l, cases[i].type, cases[i].content, true);
        send_log(&l, &e, 1);
        tev_free(&e);
        expect_ack(&l, l.seq); /* taken: its log stays whole */
    }
    cr_assert_eq(db_int("SELECT count(*) FROM events e JOIN rooms r ON r.id = e.room"
                        " WHERE r.room_id = '%s' AND e.origin = '" PEER "'"
                        " AND e.invalid IS NOT NULL",
                        room),
                 ncases, "each kept invalid");
    cr_assert_eq(db_int("SELECT count(*) FROM rooms WHERE room_id = '%s' AND authority = '" SELF
                        "' AND name = 'T5' AND archived_at IS NULL",
                        room),
                 1, "the room's authority, name and state are unchanged");
    cr_assert_eq(db_int("SELECT count(*) FROM room_servers WHERE server_id = 'jp-evil'"), 0);
    cr_assert_eq(db_int("SELECT count(*) FROM room_seats"), 0);
    still_works(&l, "authority events from a peer that is not the authority");

    /* Citing a grant that no server holds: it waits. */
    long long before = rows_of(room, PEER);
    int waits = log_count("fed_event_waits");
    struct tev e = tev_next(&l, "room.update",
                            "{\"name\":\"x\",\"topic\":\"\",\"changed\":[\"name\"],"
                            "\"authority\":\"NoSuchGrantNoSuchGrantNoSuchGrantNoSuchGra\"}",
                            true);
    send_log(&l, &e, 1);
    tev_free(&e);
    wait_log("fed_event_waits", waits);
    cr_assert_eq(rows_of(room, PEER), before, "a waiting event is not stored");
    cr_assert_eq(db_int("SELECT count(*) FROM rooms WHERE room_id = '%s' AND name = 'T5'", room),
                 1);
    healthy();
}
