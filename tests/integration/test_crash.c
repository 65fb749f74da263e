/* test_crash.c - the crash and durability test: client threads write to the real kizunad
 * (messages with client ids, read markers, notices, resumable uploads) while the main thread
 * kills it with SIGKILL at seeded random moments and starts it again. Afterwards, against the
 * server after a clean restart: every write a client saw acknowledged is there exactly once,
 * nothing appears that was never sent or was refused, read markers never went back, acknowledged
 * upload offsets survived and finished blobs hash right, and the event logs' hash chains and
 * signatures are intact.
 *
 *   KIZUNA_CRASH_SEED     the seed (default fixed; printed): the same seed gives the same kill
 *                         schedule and the same op mix per client (OS timing still varies)
 *   KIZUNA_CRASH_KILLS    how many SIGKILLs (default 20: the CI run)
 *   KIZUNA_CRASH_THREADS  client threads (default 6)
 *
 * The long run: KIZUNA_CRASH_KILLS=200 ./build/tests/test_crash (docs/reliability.md). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

#define PW            "crash-password-1234"
#define ROOMS         2
#define MAX_THREADS   32
#define DEFAULT_SEED  0x6b697a756e61ULL /* "kizuna" */
#define PAGE          10000             /* history_page_max in this test's config */
#define MAX_NOTICES   2000              /* per client, so one notice.list page holds them */
#define RECONNECT_MS  60000             /* a client gives up if the server is gone this long */
#define HTTP_RESP_CAP 16384

/* ---- seeded randomness (splitmix64 seeds xorshift64*) ---- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

struct rng {
    uint64_t s;
};

static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ULL);
    r->s = splitmix64(&x);
    if (!r->s)
        r->s = 1;
}

static uint64_t rng_next(struct rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545f4914f6cdd1dULL;
}

/* lo..hi inclusive */
static long long rng_range(struct rng *r, long long lo, long long hi)
{
    return lo + (long long)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long long ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* ---- what each client saw acknowledged ---- */

enum { MSG_PENDING, MSG_ACKED };
enum { NOTICE_UNKNOWN, NOTICE_ACKED, NOTICE_REFUSED }; /* unknown: the reply was lost */

struct msg_rec {
    int room;
    long long pos; /* as acknowledged */
    int state;
};

struct upload_rec {
    char location[128];
    char hex[65];
    long long len;
    long long acked; /* the highest offset a 204 acknowledged */
    bool done;       /* the last PATCH was acknowledged (or HEAD showed the upload complete) */
};

struct client {
    int idx;
    char login[32];
    char token[64];
    struct rng rng;     /* the op stream: a fixed number of draws per op, whatever happens */
    uint64_t blob_seed; /* the k-th blob of this client: its length and bytes */
    int blobs_made;
    struct ws w;
    bool connected;
    long long next_id;

    struct msg_rec *msgs;
    int nmsgs, capmsgs;
    char *notices;
    int nnotices, capnotices;
    struct upload_rec *ups;
    int nups, capups;

    /* the upload in progress */
    unsigned char *data; /* its bytes; NULL when none is being prepared */
    long long data_len;
    char data_hex[65];
    int active; /* index into ups, or -1 before the create was acknowledged */
    long long off;
    bool need_head;

    long long read_acked[ROOMS]; /* highest read_pos acknowledged */
    long long last_pos[ROOMS];   /* this client's newest acknowledged message per room */

    /* counters */
    int retries;     /* requests sent again after a lost reply or a refusal */
    int dup_replies; /* msg.send answered "duplicate": the first try had committed */
    int reconnects;  /* connections made after the first */
    int error_replies;
    int reads_acked, reads_back;
    int notices_acked;
    int patches_acked, uploads_done, offset_lost, upload_rejects;

    char failure[512]; /* the first problem that stops this client */
    char problem[512]; /* the first durability problem seen while running */
    char resp[HTTP_RESP_CAP];
};

static struct kzd d;
static int port;
static char room_ids[ROOMS][64];
static bool stop_load;

#define GROW(arr, n, cap)                                                                          \
    do {                                                                                           \
        if ((n) == (cap)) {                                                                        \
            (cap) = (cap) ? (cap)*2 : 256;                                                         \
            void *np = realloc((arr), (size_t)(cap) * sizeof *(arr));                              \
            if (!np)                                                                               \
                abort();                                                                           \
            (arr) = np;                                                                            \
        }                                                                                          \
    } while (0)

static void note(char *where, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(char *where, size_t n, const char *fmt, ...)
{
    if (where[0])
        return; /* keep the first */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(where, n, fmt, ap);
    va_end(ap);
}

static void disconnect(struct client *c)
{
    ws_close_fd(&c->w);
    c->connected = false;
}

/* Sends {"id":N,<body>} and returns the reply, or NULL (and drops the connection) if none came. */
static cJSON *call(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static cJSON *call(struct client *c, const char *fmt, ...)
{
    char body[1024], req[1100];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    snprintf(req, sizeof req, "{\"id\":%lld,%s}", c->next_id++, body);
    cJSON *r = ws_try_call(&c->w, req);
    if (!r)
        disconnect(c);
    return r;
}

/* Connects and re-authenticates with the saved token, with backoff while the server is down. */
static bool ensure_connected(struct client *c)
{
    if (c->connected)
        return true;
    long long deadline = now_ms() + RECONNECT_MS, backoff = 5;
    while (now_ms() < deadline) {
        if (ws_open(&c->w, port)) {
            c->connected = true;
            cJSON *r = call(c, "\"op\":\"auth\",\"token\":\"%s\"", c->token);
            const char *code = reply_code(r);
            if (strcmp(code, "ok") == 0) {
                cJSON_Delete(r);
                c->reconnects++;
                return true;
            }
            if (strcmp(code, "unauthorized") == 0) {
                note(c->failure, sizeof c->failure, "%s: the session's token was refused",
                     c->login);
                cJSON_Delete(r);
                disconnect(c);
                return false;
            }
            cJSON_Delete(r);
        }
        disconnect(c);
        sleep_ms(backoff);
        backoff = backoff * 2 > 200 ? 200 : backoff * 2;
    }
    note(c->failure, sizeof c->failure, "%s: could not reconnect for %d s", c->login,
         RECONNECT_MS / 1000);
    return false;
}

static bool fatal_code(const char *code)
{
    /* Refusals a correct request never gets: the test or the server is wrong. */
    return strcmp(code, "bad_request") == 0 || strcmp(code, "forbidden") == 0 ||
           strcmp(code, "not_found") == 0 || strcmp(code, "conflict") == 0 ||
           strcmp(code, "too_large") == 0;
}

/* msg.send with a client id, resent after every lost reply until it is acknowledged. */
static void op_send(struct client *c, uint64_t a)
{
    GROW(c->msgs, c->nmsgs, c->capmsgs);
    int i = c->nmsgs++;
    int room = (int)(a % ROOMS);
    c->msgs[i] = (struct msg_rec){.room = room, .state = MSG_PENDING};
    for (int attempt = 0;; attempt++) {
        if (attempt)
            c->retries++;
        if (!ensure_connected(c))
            return;
        cJSON *r = call(c,
                        "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"t%dm%d\","
                        "\"client_id\":\"t%d-m%d\"",
                        room_ids[room], c->idx, i, c->idx, i);
        if (!r)
            continue; /* the server died under us: resend the same client id */
        const char *code = reply_code(r);
        if (strcmp(code, "ok") == 0) {
            c->msgs[i].pos = (long long)cJSON_GetObjectItem(r, "pos")->valuedouble;
            c->msgs[i].state = MSG_ACKED;
            c->dup_replies += cJSON_IsTrue(cJSON_GetObjectItem(r, "duplicate"));
            if (c->msgs[i].pos > c->last_pos[room])
                c->last_pos[room] = c->msgs[i].pos;
            cJSON_Delete(r);
            return;
        }
        c->error_replies++;
        if (fatal_code(code)) {
            note(c->failure, sizeof c->failure, "%s: msg.send t%dm%d refused: %s", c->login, c->idx,
                 i, code);
            cJSON_Delete(r);
            return;
        }
        cJSON_Delete(r);
        sleep_ms(20); /* internal, rate_limited: refused, nothing changed; try again */
    }
}

/* read: the marker must never go below what an earlier reply acknowledged. */
static void op_read(struct client *c, uint64_t a, uint64_t b)
{
    int room = (int)(a % ROOMS);
    bool with_pos = (b & 1) && c->last_pos[room] > 0;
    if (!ensure_connected(c))
        return;
    cJSON *r = with_pos ? call(c, "\"op\":\"read\",\"room\":\"%s\",\"pos\":%lld", room_ids[room],
                               c->last_pos[room])
                        : call(c, "\"op\":\"read\",\"room\":\"%s\"", room_ids[room]);
    if (!r)
        return; /* not acknowledged: nothing to hold the server to */
    const char *code = reply_code(r);
    if (strcmp(code, "ok") == 0) {
        long long rp = (long long)cJSON_GetObjectItem(r, "read_pos")->valuedouble;
        if (rp < c->read_acked[room]) {
            c->reads_back++;
            note(c->problem, sizeof c->problem,
                 "%s: read in room %d answered read_pos %lld below the acknowledged %lld", c->login,
                 room, rp, c->read_acked[room]);
        } else {
            c->read_acked[room] = rp;
        }
        c->reads_acked++;
    } else {
        c->error_replies++;
        if (fatal_code(code))
            note(c->failure, sizeof c->failure, "%s: read refused: %s", c->login, code);
    }
    cJSON_Delete(r);
}

/* notice.post has no client id: sent once; a lost reply leaves it unknown (0 or 1 copies). */
static void op_notice(struct client *c)
{
    GROW(c->notices, c->nnotices, c->capnotices);
    int i = c->nnotices++;
    c->notices[i] = NOTICE_UNKNOWN;
    if (!ensure_connected(c))
        return;
    cJSON *r = call(c,
                    "\"op\":\"notice.post\",\"title\":\"t%dn%d\",\"body\":\"crash test\","
                    "\"to\":[\"user:admin\"]",
                    c->idx, i);
    if (!r)
        return;
    const char *code = reply_code(r);
    if (strcmp(code, "ok") == 0) {
        c->notices[i] = NOTICE_ACKED;
        c->notices_acked++;
    } else {
        c->notices[i] = NOTICE_REFUSED;
        c->error_replies++;
        if (fatal_code(code))
            note(c->failure, sizeof c->failure, "%s: notice.post refused: %s", c->login, code);
    }
    cJSON_Delete(r);
}

/* ---- uploads ---- */

static void hash_hex(const unsigned char *data, size_t len, char hex[65])
{
    uint8_t h[32];
    crypto_generichash(h, sizeof h, data, len, NULL, 0);
    sodium_bin2hex(hex, 65, h, sizeof h);
}

static int upload_http(struct client *c, const char *method, const char *path, const char *extra,
                       const void *body, size_t len)
{
    char headers[1024];
    size_t rl;
    snprintf(headers, sizeof headers, "Authorization: Bearer %s\r\nTus-Resumable: 1.0.0\r\n%s",
             c->token, extra ? extra : "");
    return http_raw(port, method, path, headers, body ? body : "", len, len, c->resp,
                    sizeof c->resp, &rl);
}

static long long resp_offset(struct client *c)
{
    char v[32];
    return http_header(c->resp, "Upload-Offset", v, sizeof v) ? atoll(v) : -1;
}

/* The server's offset must not be below what a 204 acknowledged. */
static void check_offset(struct client *c, struct upload_rec *u, long long off, const char *how)
{
    if (off < u->acked) {
        c->offset_lost++;
        note(c->problem, sizeof c->problem,
             "%s: upload %s: %s says offset %lld, but %lld was acknowledged", c->login, u->location,
             how, off, u->acked);
        u->acked = off; /* report each loss once */
    }
}

static void upload_finished(struct client *c, struct upload_rec *u)
{
    u->done = true;
    c->uploads_done++;
    free(c->data);
    c->data = NULL;
    c->active = -1;
}

static void op_upload(struct client *c, uint64_t a)
{
    long long chunk = 4096 + (long long)(a % (65536 - 4096 + 1));
    if (!c->data) { /* the next blob: its length and bytes come from the seed too */
        uint64_t x = c->blob_seed ^ ((uint64_t)c->blobs_made++ * 0x9e3779b97f4a7c15ULL);
        c->data_len = 8192 + (long long)(splitmix64(&x) % (200000 - 8192 + 1));
        c->data = malloc((size_t)c->data_len);
        if (!c->data)
            abort();
        for (long long i = 0; i < c->data_len; i += 8) {
            uint64_t v = splitmix64(&x);
            memcpy(c->data + i, &v, (size_t)(c->data_len - i < 8 ? c->data_len - i : 8));
        }
        hash_hex(c->data, (size_t)c->data_len, c->data_hex);
        c->active = -1;
    }
    if (c->active < 0) { /* create; a create whose reply was lost leaves an orphan: harmless */
        char md[128], extra[256];
        sodium_bin2base64(md, sizeof md, (const unsigned char *)c->data_hex, 64,
                          sodium_base64_VARIANT_ORIGINAL);
        snprintf(extra, sizeof extra, "Upload-Length: %lld\r\nUpload-Metadata: blob %s\r\n",
                 c->data_len, md);
        int st = upload_http(c, "POST", "/api/v1/uploads", extra, NULL, 0);
        if (st == 201) {
            GROW(c->ups, c->nups, c->capups);
            struct upload_rec *u = &c->ups[c->nups];
            memset(u, 0, sizeof *u);
            if (!http_header(c->resp, "Location", u->location, sizeof u->location) ||
                resp_offset(c) != 0) {
                note(c->failure, sizeof c->failure, "%s: a create without Location or at %lld",
                     c->login, resp_offset(c));
                return;
            }
            snprintf(u->hex, sizeof u->hex, "%s", c->data_hex);
            u->len = c->data_len;
            c->active = c->nups++;
            c->off = 0;
            c->need_head = false;
        } else if (st > 0 && st < 500) {
            note(c->failure, sizeof c->failure, "%s: upload create refused: %d", c->login, st);
        } else {
            c->retries++;
        }
        return;
    }
    struct upload_rec *u = &c->ups[c->active];
    if (c->need_head) {
        int st = upload_http(c, "HEAD", u->location, NULL, NULL, 0);
        if (st == 404) {
            c->offset_lost++;
            note(c->problem, sizeof c->problem, "%s: acknowledged upload %s is gone", c->login,
                 u->location);
            free(c->data); /* go on with a new one */
            c->data = NULL;
            c->active = -1;
            return;
        }
        if (st != 200)
            return; /* the server is down: try again later */
        long long off = resp_offset(c);
        check_offset(c, u, off, "HEAD");
        c->off = off;
        c->need_head = false;
        if (off == u->len) { /* the last PATCH committed but its reply was lost */
            upload_finished(c, u);
            return;
        }
    }
    long long n = u->len - c->off < chunk ? u->len - c->off : chunk;
    uint8_t h[32];
    crypto_generichash(h, sizeof h, c->data + c->off, (size_t)n, NULL, 0);
    char sum[64], extra[256];
    sodium_bin2base64(sum, sizeof sum, h, sizeof h, sodium_base64_VARIANT_ORIGINAL);
    snprintf(extra, sizeof extra,
             "Upload-Offset: %lld\r\nUpload-Checksum: blake2b %s\r\n"
             "Content-Type: application/offset+octet-stream\r\n",
             c->off, sum);
    int st = upload_http(c, "PATCH", u->location, extra, c->data + c->off, (size_t)n);
    if (st == 204) {
        long long off = resp_offset(c);
        if (off != c->off + n) {
            note(c->problem, sizeof c->problem, "%s: PATCH %lld+%lld acknowledged offset %lld",
                 c->login, c->off, n, off);
            c->need_head = true;
            return;
        }
        c->patches_acked++;
        u->acked = c->off = off;
        if (off == u->len)
            upload_finished(c, u);
    } else if (st == 409) { /* an earlier PATCH committed but its reply was lost */
        long long off = resp_offset(c);
        check_offset(c, u, off, "a 409");
        c->off = off;
        if (off == u->len)
            upload_finished(c, u);
    } else if (st == 460) {
        /* Every body carries its right checksum and the blob its right id: a 460 means the
         * server's staged bytes were not what it had acknowledged. */
        c->upload_rejects++;
        note(c->problem, sizeof c->problem, "%s: PATCH %lld+%lld of %s rejected with 460: %s",
             c->login, c->off, n, u->location, c->resp);
        c->need_head = true;
    } else if (st > 0 && st < 500) {
        note(c->failure, sizeof c->failure, "%s: PATCH refused: %d: %s", c->login, st, c->resp);
    } else {
        c->retries++;
        c->need_head = true; /* lost: ask where the upload is */
    }
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    while (!__atomic_load_n(&stop_load, __ATOMIC_ACQUIRE) && !c->failure[0]) {
        long long r = rng_range(&c->rng, 0, 99);
        uint64_t a = rng_next(&c->rng), b = rng_next(&c->rng);
        if (r < 50)
            op_send(c, a);
        else if (r < 65)
            op_read(c, a, b);
        else if (r < 75 && c->nnotices < MAX_NOTICES)
            op_notice(c);
        else if (r >= 75)
            op_upload(c, a);
    }
    disconnect(c);
    return NULL;
}

/* ---- the test ---- */

static unsigned long long env_ull(const char *name, unsigned long long dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 0) : dflt;
}

static void setup(void)
{
    /* One notice.list reply holds every notice of a client (MAX_NOTICES), and the checker's big
     * replies are not taken for a slow consumer. */
    kzd_setup_with(&d, "\"history_page_max\":10000,\"max_queue_bytes\":67108864");
}

static void teardown(void)
{
    kzd_teardown(&d);
}

/* Long runs are on demand; CTest limits the CI run itself (tests/CMakeLists.txt). */
TestSuite(crash, .init = setup, .fini = teardown, .timeout = 3600);

static cJSON *admin_call(struct ws *w, const char *what, const char *room)
{
    cJSON *r = ws_callf(w, "\"op\":\"%s\",\"room\":\"%s\"", what, room);
    cr_assert_str_eq(reply_code(r), "ok", "%s", what);
    return r;
}

Test(crash, acknowledged_writes_survive_sigkill_exactly_once)
{
    unsigned long long seed = env_ull("KIZUNA_CRASH_SEED", DEFAULT_SEED);
    int kills = (int)env_ull("KIZUNA_CRASH_KILLS", 20);
    int nthreads = (int)env_ull("KIZUNA_CRASH_THREADS", 6);
    cr_assert(nthreads >= 1 && nthreads <= MAX_THREADS && kills >= 0);
    fprintf(stderr, "crash: seed=0x%llx kills=%d threads=%d\n", seed, kills, nthreads);
    cr_assert_eq(sodium_init() >= 0, true);

    port = d.port;
    struct ws admin;
    cr_assert(ws_open(&admin, port));
    cr_assert(ws_login(&admin, "admin", TEST_ADMIN_PASSWORD, NULL));
    static struct client clients[MAX_THREADS];
    char members[MAX_THREADS * 24] = "[";
    for (int t = 0; t < nthreads; t++) {
        struct client *c = &clients[t];
        memset(c, 0, sizeof *c);
        c->idx = t;
        c->active = -1;
        c->next_id = 1;
        c->w.fd = -1;
        snprintf(c->login, sizeof c->login, "crash%d", t);
        rng_seed(&c->rng, seed, (uint64_t)t + 1);
        struct rng br;
        rng_seed(&br, seed, (uint64_t)t + 1 + MAX_THREADS);
        c->blob_seed = rng_next(&br);
        /* hq: may address a notice to anyone */
        cJSON *r = ws_callf(&admin,
                            "\"op\":\"user.add\",\"login\":\"%s\",\"password\":\"%s\","
                            "\"role\":\"hq\"",
                            c->login, PW);
        cr_assert_str_eq(reply_code(r), "ok");
        cJSON_Delete(r);
        struct ws w;
        cr_assert(ws_open(&w, port));
        cr_assert(ws_login(&w, c->login, PW, c->token));
        ws_close_fd(&w);
        snprintf(members + strlen(members), sizeof members - strlen(members), "%s\"%s\"",
                 t ? "," : "", c->login);
    }
    strcat(members, "]");
    for (int i = 0; i < ROOMS; i++) {
        cJSON *r = ws_callf(&admin, "\"op\":\"room.create\",\"name\":\"crash %d\",\"members\":%s",
                            i, members);
        cr_assert_str_eq(reply_code(r), "ok");
        snprintf(room_ids[i], sizeof room_ids[i], "%s",
                 cJSON_GetObjectItem(cJSON_GetObjectItem(r, "room"), "room")->valuestring);
        cJSON_Delete(r);
    }
    ws_close_fd(&admin);

    /* The load, and the kills. */
    long long t0 = now_ms();
    pthread_t th[MAX_THREADS];
    for (int t = 0; t < nthreads; t++)
        cr_assert_eq(pthread_create(&th[t], NULL, client_main, &clients[t]), 0);
    struct rng killer;
    rng_seed(&killer, seed, 0);
    int done_kills = 0;
    long long restart_ms = 0;
    for (; done_kills < kills; done_kills++) {
        sleep_ms(rng_range(&killer, 30, 400));
        bool failed = false;
        for (int t = 0; t < nthreads; t++)
            failed |= __atomic_load_n(&clients[t].failure[0], __ATOMIC_RELAXED) != 0;
        if (failed)
            break;
        kzd_kill(&d);
        long long r0 = now_ms();
        kzd_start(&d); /* asserts that the server came back */
        restart_ms += now_ms() - r0;
        cr_assert_eq(d.port, port);
    }
    sleep_ms(200); /* the last run, undisturbed: clients finish what was in flight */
    __atomic_store_n(&stop_load, true, __ATOMIC_RELEASE);
    for (int t = 0; t < nthreads; t++)
        pthread_join(th[t], NULL);
    long long load_ms = now_ms() - t0;
    for (int t = 0; t < nthreads; t++)
        cr_assert_eq(clients[t].failure[0], 0, "%s", clients[t].failure);

    /* A clean stop, then the event logs on disk. */
    cr_assert_eq(kzd_stop(&d), 0, "a clean stop after the crashes");
    struct kzd_log_check lc;
    char err[256];
    cr_assert(kzd_check_event_logs(&d, &lc, err, sizeof err), "event logs: %s", err);
    kzd_start(&d);
    cr_assert(ws_open(&admin, port));
    cr_assert(ws_login(&admin, "admin", TEST_ADMIN_PASSWORD, NULL));

    int lost = 0, doubled = 0, phantom = 0, misplaced = 0, marks_back = 0;
    char first[512] = "";

    /* Messages: every one acknowledged, found once, where and as acknowledged; nothing else. */
    int acked_msgs = 0;
    int *seen[MAX_THREADS];
    for (int t = 0; t < nthreads; t++) {
        seen[t] = calloc((size_t)clients[t].nmsgs + 1, sizeof(int));
        cr_assert_not_null(seen[t]);
    }
    for (int room = 0; room < ROOMS; room++) {
        long long after = 0;
        for (bool more = true; more;) {
            cJSON *r =
                ws_callf(&admin, "\"op\":\"history\",\"room\":\"%s\",\"after\":%lld,\"limit\":%d",
                         room_ids[room], after, 1000);
            cr_assert_str_eq(reply_code(r), "ok");
            more = cJSON_IsTrue(cJSON_GetObjectItem(r, "more"));
            cJSON *ev;
            cJSON_ArrayForEach(ev, cJSON_GetObjectItem(r, "events"))
            {
                long long pos = (long long)cJSON_GetObjectItem(ev, "pos")->valuedouble;
                after = pos > after ? pos : after;
                if (strcmp(cJSON_GetObjectItem(ev, "event")->valuestring, "msg") != 0)
                    continue;
                const char *body =
                    cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "content"), "body")->valuestring;
                const char *sender = cJSON_GetObjectItem(ev, "sender")->valuestring;
                int t, i;
                char expect_sender[32];
                if (sscanf(body, "t%dm%d", &t, &i) != 2 || t < 0 || t >= nthreads || i < 0 ||
                    i >= clients[t].nmsgs ||
                    strcmp(sender, (snprintf(expect_sender, sizeof expect_sender, "crash%d", t),
                                    expect_sender)) != 0) {
                    phantom++;
                    note(first, sizeof first, "a message nobody sent: %s from %s", body, sender);
                    continue;
                }
                const struct msg_rec *m = &clients[t].msgs[i];
                if (++seen[t][i] == 2) {
                    doubled++;
                    note(first, sizeof first, "message %s twice (second at %lld)", body, pos);
                }
                if (m->room != room || (m->state == MSG_ACKED && m->pos != pos)) {
                    misplaced++;
                    note(first, sizeof first,
                         "message %s at %lld in room %d, acknowledged at %lld in room %d", body,
                         pos, room, m->pos, m->room);
                }
            }
            cJSON_Delete(r);
        }
    }
    for (int t = 0; t < nthreads; t++) {
        for (int i = 0; i < clients[t].nmsgs; i++) {
            if (clients[t].msgs[i].state != MSG_ACKED)
                continue;
            acked_msgs++;
            if (!seen[t][i]) {
                lost++;
                note(first, sizeof first, "acknowledged message t%dm%d (pos %lld) is missing", t, i,
                     clients[t].msgs[i].pos);
            }
        }
        free(seen[t]);
    }

    /* Notices: acknowledged ones exactly once, refused ones never, lost replies at most once. */
    int acked_notices = 0;
    for (int t = 0; t < nthreads; t++) {
        struct client *c = &clients[t];
        struct ws w;
        cr_assert(ws_open(&w, port));
        cJSON *r = ws_callf(&w, "\"op\":\"auth\",\"token\":\"%s\"", c->token);
        cr_assert_str_eq(reply_code(r), "ok");
        cJSON_Delete(r);
        r = ws_callf(&w, "\"op\":\"notice.list\",\"posted\":true,\"limit\":%d", PAGE);
        cr_assert_str_eq(reply_code(r), "ok");
        cr_assert_lt(cJSON_GetArraySize(cJSON_GetObjectItem(r, "notices")), PAGE);
        int *count = calloc((size_t)c->nnotices + 1, sizeof(int));
        cJSON *n;
        cJSON_ArrayForEach(n, cJSON_GetObjectItem(r, "notices"))
        {
            const char *title = cJSON_GetObjectItem(n, "title")->valuestring;
            int tt, i;
            if (sscanf(title, "t%dn%d", &tt, &i) != 2 || tt != t || i < 0 || i >= c->nnotices) {
                phantom++;
                note(first, sizeof first, "a notice nobody posted: %s by %s", title, c->login);
                continue;
            }
            count[i]++;
        }
        cJSON_Delete(r);
        for (int i = 0; i < c->nnotices; i++) {
            acked_notices += c->notices[i] == NOTICE_ACKED;
            if (c->notices[i] == NOTICE_ACKED && count[i] == 0) {
                lost++;
                note(first, sizeof first, "acknowledged notice t%dn%d is missing", t, i);
            } else if (count[i] > 1) {
                doubled++;
                note(first, sizeof first, "notice t%dn%d %d times", t, i, count[i]);
            } else if (c->notices[i] == NOTICE_REFUSED && count[i]) {
                phantom++;
                note(first, sizeof first, "refused notice t%dn%d exists", t, i);
            }
        }
        free(count);

        /* Uploads: acknowledged offsets kept, finished blobs whole and right. */
        for (int i = 0; i < c->nups; i++) {
            struct upload_rec *u = &c->ups[i];
            int st = upload_http(c, "HEAD", u->location, NULL, NULL, 0);
            long long off = st == 200 ? resp_offset(c) : -1;
            if (off < (u->done ? u->len : u->acked)) {
                lost++;
                note(first, sizeof first, "upload %s of %s: HEAD %d offset %lld, acknowledged %lld",
                     u->location, c->login, st, off, u->done ? u->len : u->acked);
            }
            if (!u->done)
                continue;
            static char blob[256 * 1024 + HTTP_RESP_CAP];
            char path[128], headers[128];
            size_t rl;
            snprintf(path, sizeof path, "/api/v1/blobs/%s", u->hex);
            snprintf(headers, sizeof headers, "Authorization: Bearer %s\r\n", c->token);
            st = http_raw(port, "GET", path, headers, "", 0, 0, blob, sizeof blob, &rl);
            char *body = st == 200 ? memmem(blob, rl, "\r\n\r\n", 4) : NULL;
            char hex[65] = "";
            if (body && (long long)(rl - (size_t)(body + 4 - blob)) == u->len)
                hash_hex((unsigned char *)body + 4, (size_t)u->len, hex);
            if (strcmp(hex, u->hex) != 0) {
                lost++;
                note(first, sizeof first, "finished blob %s of %s: GET %d, wrong bytes", u->hex,
                     c->login, st);
            }
        }
        ws_close_fd(&w);
    }

    /* Read markers: at or past the highest read_pos a reply acknowledged. */
    for (int room = 0; room < ROOMS; room++) {
        cJSON *r = admin_call(&admin, "room.members", room_ids[room]);
        cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItem(r, "members"))
        {
            int t;
            if (sscanf(cJSON_GetObjectItem(m, "login")->valuestring, "crash%d", &t) != 1 ||
                t >= nthreads)
                continue;
            long long rp = (long long)cJSON_GetObjectItem(m, "read_pos")->valuedouble;
            if (rp < clients[t].read_acked[room]) {
                marks_back++;
                note(first, sizeof first, "crash%d's read marker in room %d is %lld, below %lld", t,
                     room, rp, clients[t].read_acked[room]);
            }
        }
        cJSON_Delete(r);
    }
    ws_close_fd(&admin);

    /* The summary, and the verdict. */
    int retries = 0, dups = 0, reconnects = 0, errors = 0, reads = 0, reads_back = 0, patches = 0,
        uploads = 0, offset_lost = 0, rejects = 0;
    for (int t = 0; t < nthreads; t++) {
        struct client *c = &clients[t];
        retries += c->retries;
        dups += c->dup_replies;
        reconnects += c->reconnects > 0 ? c->reconnects - 1 : 0;
        errors += c->error_replies;
        reads += c->reads_acked;
        reads_back += c->reads_back;
        patches += c->patches_acked;
        uploads += c->uploads_done;
        offset_lost += c->offset_lost;
        rejects += c->upload_rejects;
        if (c->problem[0])
            note(first, sizeof first, "%s", c->problem);
    }
    lost += offset_lost;
    fprintf(stderr,
            "crash: seed=0x%llx kills=%d threads=%d load=%.1fs restarts=%.1fs acked: msgs=%d "
            "notices=%d reads=%d patches=%d blobs=%d; retries=%d duplicate_replies=%d "
            "reconnects=%d error_replies=%d; events_checked=%d logs=%d; lost=%d doubled=%d "
            "phantom=%d misplaced=%d read_back=%d upload_460=%d\n",
            seed, done_kills, nthreads, load_ms / 1000.0, restart_ms / 1000.0, acked_msgs,
            acked_notices, reads, patches, uploads, retries, dups, reconnects, errors, lc.events,
            lc.logs, lost, doubled, phantom, misplaced, marks_back + reads_back, rejects);
    cr_assert_eq(done_kills, kills);
    cr_assert(lost == 0 && doubled == 0 && phantom == 0 && misplaced == 0 && marks_back == 0 &&
                  reads_back == 0 && rejects == 0,
              "seed 0x%llx: %s", seed, first);
    for (int t = 0; t < nthreads; t++) {
        free(clients[t].msgs);
        free(clients[t].notices);
        free(clients[t].ups);
        free(clients[t].data);
    }
}
