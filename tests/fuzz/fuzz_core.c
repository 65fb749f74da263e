/* fuzz_core.c - see fuzz_core.h. */
#include "fuzz_core.h"

#include <errno.h>
#include <ftw.h>
#include <semaphore.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core.h"

#define CONN_WS       1
#define CONN_HTTP     2
#define REPLY_WAIT_MS 8000 /* a request without a reply after this is a finding */

static struct {
    bool ready;
    bool verbose; /* KZ_FUZZ_VERBOSE set: print every reply (to check seeds) */
    char dir[64];
    struct kz_config cfg;
    struct store *st;
    struct kz_workers *workers;
    struct srv *srv;
    sem_t wake;
    bool want_commit, tick_wanted;
    bool persist;  /* setup: commit for real */
    uint64_t conn; /* the connection of the request under way */
    int replies;
    char *reply;
    size_t reply_len;
    int reply_status;
    int64_t session[4];
    char token[4][KZ_TOKEN_CHARS];
    char room[STORE_ROOM_ID_MAX + 1];
} fz;

void fz_fail(const char *msg, const char *detail)
{
    fprintf(stderr, "fuzz_core: %s\n%s%s", msg, detail ? detail : "", detail ? "\n" : "");
    abort();
}

const char *fz_code(const cJSON *reply)
{
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok")))
        return "ok";
    const cJSON *code =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(reply, "error"), "code");
    return cJSON_IsString(code) ? code->valuestring : "?";
}

/* Every frame the core emits, reply or event: valid UTF-8 (a WebSocket text frame must be,
 * or the client drops the connection) and one JSON object. */
static void check_frame(const struct kz_frame *f)
{
    char *text = strndup((const char *)f->data, f->len);
    if (!kz_utf8_valid((const char *)f->data, f->len))
        fz_fail("a frame is not valid UTF-8", text);
    cJSON *j = cJSON_ParseWithLength((const char *)f->data, f->len);
    if (!cJSON_IsObject(j))
        fz_fail("a frame is not a JSON object", text);
    cJSON_Delete(j);
    free(text);
}

static void fake_send(void *ctx, uint64_t conn_id, struct kz_frame *f)
{
    (void)ctx;
    check_frame(f);
    if (conn_id != fz.conn)
        return; /* a reply held from setup (never) or an old connection */
    fz.replies++;
    free(fz.reply);
    fz.reply = strndup((const char *)f->data, f->len);
    fz.reply_len = f->len;
    fz.reply_status = f->http_status;
}
static void fake_bind(void *ctx, uint64_t conn_id, int64_t session_id, int64_t user_id)
{
    (void)ctx;
    (void)conn_id;
    (void)session_id;
    (void)user_id;
}
static void fake_close(void *ctx, const struct srv_close *which)
{
    (void)ctx;
    (void)which;
}
static void fake_pause(void *ctx, uint64_t conn_id, bool paused)
{
    (void)ctx;
    (void)conn_id;
    (void)paused;
}
static void fake_want_commit(void *ctx)
{
    (void)ctx;
    fz.want_commit = true;
}
static void fake_subscribe(void *ctx, uint64_t conn_id, int64_t pos)
{
    (void)ctx;
    (void)conn_id;
    (void)pos;
}
static void fake_push(void *ctx, int64_t user_id, int64_t pos, struct kz_frame *f)
{
    (void)ctx;
    (void)user_id;
    (void)pos;
    check_frame(f);
}
static void fake_alert(void *ctx, int64_t user_id, struct kz_frame *f)
{
    (void)ctx;
    (void)user_id;
    check_frame(f);
}
static void fake_timer(void *ctx, int ms)
{
    (void)ctx;
    (void)ms;
    fz.tick_wanted = true;
}
static void wake(void *arg)
{
    (void)arg;
    sem_post(&fz.wake);
}

/* The end of a loop turn: the transaction is signed as at a commit, then rolled back (or,
 * during setup, committed), and the held replies go out. */
static void end_turn(void)
{
    if (!fz.want_commit)
        return;
    fz.want_commit = false;
    if (!fz.persist && store_tx_is_open(fz.st) && !fz.srv->doomed) {
        srv_events_checkpoint(fz.srv);
        store_tx_rollback(fz.st);
    }
    srv_commit(fz.srv);
}

static void turn(void)
{
    kz_workers_drain(fz.workers);
    end_turn();
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs turns until the request's reply arrived, then checks it. */
static cJSON *await_reply(int before, bool is_http)
{
    int64_t deadline = now_ms() + REPLY_WAIT_MS;
    for (turn(); fz.replies == before; turn()) {
        if (now_ms() > deadline)
            fz_fail("a request got no reply", NULL);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        while (sem_timedwait(&fz.wake, &ts) != 0 && errno == EINTR)
            ;
    }
    if (fz.tick_wanted) {
        fz.tick_wanted = false;
        srv_tick(fz.srv);
        turn();
    }
    if (fz.replies != before + 1)
        fz_fail("a request got more than one reply", fz.reply);
    if (fz.verbose)
        fprintf(stderr, "reply: %s\n", fz.reply);
    cJSON *r = cJSON_ParseWithLength(fz.reply, fz.reply_len);
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(r, "ok");
    if (!cJSON_IsBool(ok))
        fz_fail("a reply has no boolean 'ok'", fz.reply);
    enum kz_err e = KZ_OK;
    if (!cJSON_IsTrue(ok)) {
        const char *code = fz_code(r);
        for (e = KZ_BAD_REQUEST; e <= KZ_INTERNAL; e++)
            if (strcmp(code, kz_err_code(e)) == 0)
                break;
        if (e > KZ_INTERNAL)
            fz_fail("a reply has an unknown error code", fz.reply);
        if (e == KZ_INTERNAL)
            fz_fail("a request ended in an internal error", fz.reply);
    }
    if (is_http && fz.reply_status != kz_err_http_status(e))
        fz_fail("an HTTP reply's status does not match its error code", fz.reply);
    return r;
}

/* body with $ROOM and $TOKEN replaced, NUL-terminated, in a buffer of exactly the size. */
static char *expand(const char *body, size_t len, size_t *out_len)
{
    static const char *const keys[] = {"$ROOM", "$TOKEN"};
    const char *vals[] = {fz.room, fz.token[FZ_ADMIN]};
    size_t cap = len + 1;
    for (size_t i = 0; i + 1 < len; i++)
        if (body[i] == '$')
            cap += 64;
    char *out = malloc(cap), *o = out;
    for (size_t i = 0; i < len;) {
        size_t k = 0;
        for (; k < 2; k++)
            if (len - i >= strlen(keys[k]) && memcmp(body + i, keys[k], strlen(keys[k])) == 0)
                break;
        if (k < 2) {
            memcpy(o, vals[k], strlen(vals[k]));
            o += strlen(vals[k]);
            i += strlen(keys[k]);
        } else {
            *o++ = body[i++];
        }
    }
    *out_len = (size_t)(o - out);
    *o = '\0';
    /* Exactly the bytes of the request, so that an over-read is caught by ASan. */
    char *exact = malloc(*out_len ? *out_len : 1);
    memcpy(exact, out, *out_len);
    free(out);
    return exact;
}

cJSON *fz_ws(enum fz_caller who, const char *text, size_t len)
{
    size_t n;
    char *frame = expand(text, len, &n);
    int before = fz.replies;
    fz.conn = CONN_WS;
    srv_handle_ws_text(fz.srv, CONN_WS, fz.session[who], "203.0.113.7", frame, n);
    free(frame);
    return await_reply(before, false);
}

cJSON *fz_http(enum fz_caller who, const char *op, const char *body, size_t len)
{
    size_t n;
    char *b = expand(body, len, &n);
    int before = fz.replies;
    fz.conn = CONN_HTTP;
    srv_handle_http(fz.srv, CONN_HTTP, op, fz.token[who][0] ? fz.token[who] : NULL, "203.0.113.7",
                    b, n);
    free(b);
    return await_reply(before, true);
}

static int64_t add_user(const char *login, const char *role, const char *password,
                        char token[KZ_TOKEN_CHARS])
{
    struct store_user u = {0};
    snprintf(u.login, sizeof u.login, "%s", login);
    snprintf(u.name, sizeof u.name, "%s", login);
    snprintf(u.role, sizeof u.role, "%s", role);
    if (srv_password_hash(&fz.cfg, password, u.pw_hash) != 0)
        fz_fail("setup: cannot hash a password", NULL);
    uint8_t hash[STORE_TOKEN_HASH];
    kz_token_new(token, hash);
    int64_t now = kz_now_ms();
    struct store_session ses = {.created_at = now, .last_seen = now};
    snprintf(ses.device, sizeof ses.device, "fuzz");
    store_tx_begin(fz.st);
    if (store_user_insert(fz.st, &u, now) != STORE_OK)
        fz_fail("setup: cannot add a user", store_errmsg(fz.st));
    ses.user_id = u.id;
    if (store_session_insert(fz.st, hash, &ses) != STORE_OK)
        fz_fail("setup: cannot add a session", store_errmsg(fz.st));
    store_tx_commit(fz.st);
    return ses.id;
}

static cJSON *setup_op(const char *req)
{
    cJSON *r = fz_ws(FZ_ADMIN, req, strlen(req));
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok")))
        fz_fail("setup: a request failed", req);
    return r;
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* The data directory holds only empty blobs/ and uploads/ (no input reaches the upload
 * endpoints): removed when the fuzzer exits. */
static void remove_dir(void)
{
    nftw(fz.dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
}

void fz_init(void)
{
    if (fz.ready)
        return;
    fz.verbose = getenv("KZ_FUZZ_VERBOSE") != NULL;
    /* Quiet: errors are what the fuzzer provokes (verbose: the core's own log too). */
    kz_log_set_level(fz.verbose ? KZ_LOG_DEBUG : KZ_LOG_ERROR - 1);
    if (sodium_init() < 0 || sem_init(&fz.wake, 0, 0) != 0)
        fz_fail("setup: libsodium or semaphore", NULL);
    snprintf(fz.dir, sizeof fz.dir, "/tmp/kizuna-fuzz-XXXXXX");
    if (!mkdtemp(fz.dir))
        fz_fail("setup: mkdtemp", NULL);
    atexit(remove_dir);
    kz_config_defaults(&fz.cfg);
    fz.cfg.argon2_opslimit = 1; /* the cheapest argon2id there is */
    fz.cfg.argon2_memlimit_kib = 8;
    fz.cfg.hash_workers = 2;
    char err[256];
    struct store_options o = {.path = ":memory:", .busy_timeout_ms = 100};
    if (store_open(&o, &fz.st, err, sizeof err) != STORE_OK)
        fz_fail("setup: store_open", err);
    fz.workers = kz_workers_start((int)fz.cfg.hash_workers, (int)fz.cfg.hash_queue_max, wake, NULL);
    struct srv_transport tx = {.send = fake_send,
                               .bind = fake_bind,
                               .close_conns = fake_close,
                               .pause = fake_pause,
                               .want_commit = fake_want_commit,
                               .subscribe = fake_subscribe,
                               .push = fake_push,
                               .alert = fake_alert,
                               .timer = fake_timer};
    fz.srv = srv_new(&fz.cfg, fz.st, fz.workers, &tx);
    if (!fz.workers || !fz.srv || srv_set_data_dir(fz.srv, fz.dir) != 0)
        fz_fail("setup: core", NULL);
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    srv_set_identity(fz.srv, "kz-fuzz", 1, sk);

    fz.session[FZ_ADMIN] = add_user("admin", "admin", "admin-password", fz.token[FZ_ADMIN]);
    fz.session[FZ_STAFF] = add_user("staff1", "staff", "staff-password", fz.token[FZ_STAFF]);
    fz.session[FZ_STALE] = 999999;
    snprintf(fz.token[FZ_STALE], sizeof fz.token[FZ_STALE], "not-a-token");

    fz.persist = true;
    cJSON *r =
        setup_op("{\"id\":1,\"op\":\"room.create\",\"name\":\"fuzz\",\"members\":[\"staff1\"]}");
    const cJSON *room = cJSON_GetObjectItemCaseSensitive(r, "room");
    if (cJSON_IsObject(room))
        room = cJSON_GetObjectItemCaseSensitive(room, "room");
    if (!cJSON_IsString(room))
        fz_fail("setup: room.create gave no room id", NULL);
    snprintf(fz.room, sizeof fz.room, "%s", room->valuestring);
    cJSON_Delete(r);
    cJSON_Delete(setup_op("{\"id\":2,\"op\":\"msg.send\",\"room\":\"$ROOM\",\"body\":\"hello\"}"));
    cJSON_Delete(setup_op("{\"id\":3,\"op\":\"notice.post\",\"title\":\"t\",\"body\":\"b\","
                          "\"to\":[\"all\"],\"choices\":[\"yes\",\"no\"],\"ask_ack\":true}"));
    cJSON_Delete(setup_op("{\"id\":4,\"op\":\"invite.create\",\"uses\":2}"));
    fz.persist = false;
    fz.ready = true;
}
