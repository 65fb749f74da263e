/* test_trust.c - a server that plays against whose devices get photo keys (issue 14, items 1,
 * 2, 6 and 7), with the real kizuna against the real kizunad. The malicious server is played
 * three ways, whichever is simplest for the attack: the stopped server's database edited by the
 * test (a device added to a user with keys the test holds, a room's history policy changed), a
 * WebSocket proxy between the CLI and the server that rewrites the server's replies (a device
 * list that hides a device, or drops its `revoked_at`), and raw requests no honest client makes
 * (a room created without a signed policy). The device the server adds is then driven by a
 * kizuna of its own (its keys in a config dir, the user's token): it asks for keys as any new
 * device would. Each attack must be refused or shown to the user; logging out without a server
 * must leave no key behind, and a rewritten key file no old copy. The server's own check of
 * device.sign (the second line behind the clients') is tested at the end. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "media.h"
#include "photocli.h"

#define PW_SUFFIX TEST_PW_SUFFIX /* each user's password is LOGIN-password-1 */

static struct kzd d;
static char base[64]; /* client config dirs and files: apart from the server's data dir */
static char out[1 << 17];
static int server_port; /* where the CLI connects: the server, or the proxy in front of it */

static void setup(void)
{
    kzd_setup(&d);
    server_port = d.port;
    snprintf(base, sizeof base, "/tmp/kizuna-trust-XXXXXX");
    cr_assert_not_null(mkdtemp(base));
}

static void teardown(void)
{
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    int rc = system(cmd);
    (void)rc;
    kzd_teardown(&d);
}

TestSuite(trust, .init = setup, .fini = teardown, .timeout = 150);

/* Runs kizuna as user with the config dir base/dir, stdin `in` (may be NULL); stdout and stderr
 * both go to out (the warnings are what the user sees). Returns the exit status. */
static int kzv(const char *dir, const char *user, const char *in, va_list ap)
{
    char config[300], url[64];
    snprintf(config, sizeof config, "%s/%s", base, dir);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", server_port);
    const struct kz_device dev = {url, config, user, NULL, 5, true};
    return kz_device_run(&dev, in, out, sizeof out, ap);
}

static int kz_dev(const char *dir, const char *user, const char *in, ...)
{
    va_list ap;
    va_start(ap, in);
    int rc = kzv(dir, user, in, ap);
    va_end(ap);
    return rc;
}

#define KZ(user, ...)       kz_dev(user, user, NULL, __VA_ARGS__, (const char *)NULL)
#define KZIN(user, in, ...) kz_dev(user, user, in, __VA_ARGS__, (const char *)NULL)
#define KZD(dir, user, ...) kz_dev(dir, user, NULL, __VA_ARGS__, (const char *)NULL)

static void device_of(const char *dir, char id[64])
{
    cJSON *o = pcli_config_json(base, dir, "device.json");
    snprintf(id, 64, "%s", pcli_jstr(o, "device"));
    cJSON_Delete(o);
}

static void add_user(const char *login)
{
    char in[64];
    snprintf(in, sizeof in, "%s" PW_SUFFIX "\n", login);
    cr_assert_eq(KZIN("admin", in, "admin", "user", "add", login, "--password-stdin"), 0, "%s",
                 out);
    cr_assert_eq(KZ(login, "login", login), 0, "%s", out);
}

/* Users who have each set up their device, and a room created by the first (extra: more
 * arguments for room create, e.g. "--history", "joined"; may be NULL). */
static void users_and_room(const char *const *users, int n, const char *name, const char *extra,
                           const char *extra_val, char room_id[64])
{
    cr_assert_eq(KZ("admin", "login", "admin"), 0, "%s", out);
    for (int i = 0; i < n; i++)
        add_user(users[i]);
    char members[256] = "";
    for (int i = 1; i < n; i++)
        snprintf(members + strlen(members), sizeof members - strlen(members), "%s%s",
                 i > 1 ? "," : "", users[i]);
    if (extra)
        cr_assert_eq(
            KZ(users[0], "--json", "room", "create", name, "--members", members, extra, extra_val),
            0, "%s", out);
    else
        cr_assert_eq(KZ(users[0], "--json", "room", "create", name, "--members", members), 0, "%s",
                     out);
    cJSON *r = pcli_json_of(out);
    snprintf(room_id, 64, "%s", pcli_jstr(cJSON_GetObjectItem(r, "room"), "room"));
    cJSON_Delete(r);
}

static long long send_photo(const char *dir, const char *user, const char *room,
                            const char *caption)
{
    char jpg[200];
    snprintf(jpg, sizeof jpg, "%s/%s.jpg", base, caption);
    const char *argv[] = {KZ_MKJPEG_PATH, jpg, NULL};
    char o[1024];
    cr_assert_eq(run_capture(argv, NULL, NULL, o, sizeof o), 0, "kz-mkjpeg: %s", o);
    cr_assert_eq(KZD(dir, user, "--json", "photo", "send", room, jpg, "--caption", caption), 0,
                 "%s", out);
    cJSON *r = pcli_json_of(out);
    long long pos = (long long)cJSON_GetObjectItem(r, "pos")->valuedouble;
    cJSON_Delete(r);
    return pos;
}

/* The state ("ready", "waiting", "withheld", ...) of the photo at pos as the device with config
 * dir base/dir lists it. */
static void photo_state(const char *dir, const char *user, const char *room, long long pos,
                        char state[32])
{
    cr_assert_eq(KZD(dir, user, "--json", "photo", "list", room), 0, "%s", out);
    cJSON *r = pcli_json_of(out), *p;
    state[0] = '\0';
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(r, "photos"))
    {
        if ((long long)cJSON_GetObjectItem(p, "pos")->valuedouble == pos)
            snprintf(state, 32, "%s", pcli_jstr(p, "state"));
    }
    cJSON_Delete(r);
    cr_assert(state[0], "photo #%lld is listed: %s", pos, out);
}

/* Every device an e2ee.keys event of the room sealed a key to, as a member reads the room:
 * "|id|id|..." into to. */
static void key_recipients(const char *user, const char *room, char *to, size_t n)
{
    cr_assert_eq(KZ(user, "--json", "history", room, "--after", "0", "--limit", "200", "--no-read"),
                 0, "%s", out);
    cJSON *r = pcli_json_of(out), *ev;
    snprintf(to, n, "|");
    cJSON_ArrayForEach(ev, cJSON_GetObjectItem(r, "events"))
    {
        if (strcmp(pcli_jstr(ev, "event"), "e2ee.keys") != 0)
            continue;
        cJSON *data = cJSON_Parse(pcli_jstr(cJSON_GetObjectItem(ev, "content"), "data")), *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(data, "entries"))
            snprintf(to + strlen(to), n - strlen(to), "%s|", pcli_jstr(e, "to"));
        cJSON_Delete(data);
    }
    cJSON_Delete(r);
}

/* ---- the server's database, edited while it is stopped ---- */

static void db_exec(const char *sql)
{
    char path[400];
    snprintf(path, sizeof path, "%s/kizuna.db", d.dir);
    sqlite3 *h;
    cr_assert_eq(sqlite3_open(path, &h), SQLITE_OK);
    char *err = NULL;
    cr_assert_eq(sqlite3_exec(h, sql, NULL, NULL, &err), SQLITE_OK, "%s: %s", sql, err ? err : "");
    sqlite3_close(h);
}

static void b64(const uint8_t *bin, size_t n, char *o, size_t cap)
{
    sodium_bin2base64(o, cap, bin, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static void hex(const uint8_t *bin, size_t n, char *o)
{
    sodium_bin2hex(o, 2 * n + 1, bin, n);
}

/* o's base64url member key, decoded into bin (at most cap bytes); its length. Aborts the test if
 * it does not decode. */
static size_t unb64(const cJSON *o, const char *key, uint8_t *bin, size_t cap)
{
    const char *s = pcli_jstr(o, key);
    size_t len = 0;
    cr_assert_eq(sodium_base642bin(bin, cap, s, strlen(s), NULL, &len, NULL,
                                   sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                 0, "%s: %s", key, s);
    return len;
}

/* The keys of the device whose config dir is base/dir (its signing pair and its public box key:
 * enough to sign as it) and its id. */
static void device_keys_of(const char *dir, struct media_device_keys *k, char id[64])
{
    cJSON *dj = pcli_config_json(base, dir, "device.json");
    unb64(dj, "sign_sk", k->sign_sk, 64);
    unb64(dj, "sign_pk", k->sign_pk, 32);
    unb64(dj, "box_pk", k->box_pk, 32);
    snprintf(id, 64, "%s", pcli_jstr(dj, "device"));
    cJSON_Delete(dj);
}

/* The server adds a device of its own to `user`: a row with keys the test holds, bound to the
 * user's live session, so that it is one of the room's devices; no device.register, no line
 * in any room, no audit entry. A kizuna config dir base/ghost holds its keys and a copy of the
 * user's token, to drive it like any new device. Its id goes to id. */
static void ghost_device(const char *user, char id[64])
{
    struct media_device_keys k;
    cr_assert_eq(media_device_keys_new(&k), MEDIA_OK);
    uint8_t h[16], sig[64];
    crypto_generichash(h, sizeof h, k.sign_pk, 32, NULL, 0);
    b64(h, sizeof h, id, 64);
    char who[200];
    kzd_qualify(&d, user, who, sizeof who); /* devices sign login@server (issue 19) */
    cr_assert_eq(media_devkey_sign(who, id, &k, sig), MEDIA_OK);
    char spk[65], bpk[65], sg[129], sql[1200];
    hex(k.sign_pk, 32, spk);
    hex(k.box_pk, 32, bpk);
    hex(sig, 64, sg);
    cr_assert_eq(kzd_stop(&d), 0);
    snprintf(sql, sizeof sql,
             "INSERT INTO devices (device_id, user_id, session_id, label, sign_pk, box_pk,"
             " self_sig, created_at) SELECT '%s', u.id,"
             " (SELECT max(s.id) FROM sessions s WHERE s.user_id = u.id AND s.ended_at IS NULL),"
             " 'iPhone', x'%s', x'%s', x'%s', 1 FROM users u WHERE u.login = '%s'",
             id, spk, bpk, sg, user);
    db_exec(sql);
    kzd_start(&d);
    if (server_port != d.port)
        server_port = d.port;

    char dir[300], path[400];
    snprintf(dir, sizeof dir, "%s/ghost", base);
    mkdir(dir, 0700);
    cJSON *sess = pcli_config_json(base, user, "session.json");
    snprintf(path, sizeof path, "%s/session.json", dir);
    FILE *f = fopen(path, "w");
    char *text = cJSON_Print(sess);
    fputs(text, f);
    fclose(f);
    free(text);
    cJSON *dj = cJSON_CreateObject();
    cJSON_AddStringToObject(dj, "server", pcli_jstr(sess, "server"));
    cJSON_AddStringToObject(dj, "login", user);
    cJSON_AddStringToObject(dj, "device", id);
    char v[200];
    b64(k.sign_pk, 32, v, sizeof v);
    cJSON_AddStringToObject(dj, "sign_pk", v);
    b64(k.sign_sk, 64, v, sizeof v);
    cJSON_AddStringToObject(dj, "sign_sk", v);
    b64(k.box_pk, 32, v, sizeof v);
    cJSON_AddStringToObject(dj, "box_pk", v);
    b64(k.box_sk, 32, v, sizeof v);
    cJSON_AddStringToObject(dj, "box_sk", v);
    snprintf(path, sizeof path, "%s/device.json", dir);
    f = fopen(path, "w");
    text = cJSON_Print(dj);
    fputs(text, f);
    fclose(f);
    chmod(path, 0600);
    free(text);
    cJSON_Delete(dj);
    cJSON_Delete(sess);
}

/* ---- item 1: a device the server adds ---- */

Test(trust, a_device_the_server_adds_gets_no_key_and_is_shown)
{
    const char *users[] = {"alice", "bob", "carol"};
    char room[64], ghost[64], to[8192], state[32], mark[100];
    users_and_room(users, 3, "現場", NULL, NULL, room);
    long long p1 = send_photo("alice", "alice", room, "before");
    ghost_device("bob", ghost);

    /* Alice sends: the device is one of the room's (the server says so), not bob's. */
    long long p2 = send_photo("alice", "alice", room, "after");
    static char said[sizeof out];
    snprintf(said, sizeof said, "%s", out);
    key_recipients("carol", room, to, sizeof to);
    snprintf(mark, sizeof mark, "|%s|", ghost);
    cr_assert_null(strstr(to, mark), "a key was sealed to the server's device: %s", to);
    cr_assert(strstr(said, ghost) && strstr(said, "receives no photo keys"),
              "alice is told about the device bob never approved: %s", said);

    /* The server's device asks for the keys of both photos as a new phone would; carol's
     * device reads the room, which answers the requests it can. */
    KZD("ghost", "bob", "--json", "photo", "list", room);
    cr_assert_eq(KZ("carol", "photo", "list", room), 0, "%s", out);
    cr_assert_eq(KZ("alice", "photo", "list", room), 0, "%s", out);
    photo_state("ghost", "bob", room, p1, state);
    cr_assert_str_neq(state, "ready", "the server's device opened a photo from before it");
    photo_state("ghost", "bob", room, p2, state);
    cr_assert_str_neq(state, "ready", "the server's device opened a photo sent after it");
    key_recipients("carol", room, to, sizeof to);
    cr_assert_null(strstr(to, mark), "a member answered the server's device with a key: %s", to);

    /* Bob sees it among his devices, not approved; his own photos keep going to bob and carol. */
    cr_assert_eq(KZ("bob", "devices"), 0, "%s", out);
    cr_assert(strstr(out, ghost) && strstr(out, "NOT APPROVED"), "%s", out);
    long long p3 = send_photo("bob", "bob", room, "bob");
    photo_state("carol", "carol", room, p3, state);
    cr_assert_str_eq(state, "ready");
}

/* ---- item 1: the CLI's side of a user's new device ---- */

Test(trust, a_verified_contacts_new_device_waits_until_it_is_accepted)
{
    const char *users[] = {"alice", "bob"};
    char room[64], bob2[64], to[8192], mark[100], state[32];
    users_and_room(users, 2, "本部", NULL, NULL, room);
    cr_assert_eq(KZIN("alice", "y\n", "verify", "bob"), 0, "%s", out);
    cr_assert(strstr(out, "bob is verified"), "%s", out);

    /* Bob's new phone: not approved, it gets nothing. */
    cr_assert_eq(KZD("bob2", "bob", "login", "bob"), 0, "%s", out);
    cr_assert(strstr(out, "not approved yet"), "the new phone says it waits: %s", out);
    device_of("bob2", bob2);
    snprintf(mark, sizeof mark, "|%s|", bob2);
    long long p1 = send_photo("alice", "alice", room, "one");
    key_recipients("alice", room, to, sizeof to);
    cr_assert_null(strstr(to, mark), "%s", to);

    /* Bob approves it from his first device: the room says so. */
    cr_assert_eq(KZ("bob", "devices"), 0, "%s", out);
    cr_assert(strstr(out, bob2) && strstr(out, "NOT APPROVED"), "%s", out);
    cr_assert_eq(KZ("bob", "device", "approve", bob2), 0, "%s", out);
    cr_assert_eq(KZ("alice", "history", room), 0, "%s", out);
    cr_assert(strstr(out, "bob added a device") && strstr(out, "bob approved the device") &&
                  strstr(out, bob2),
              "the room shows the new device and its approval: %s", out);

    /* Alice verified bob: the new device gets no key until she accepts it. */
    long long p2 = send_photo("alice", "alice", room, "two");
    cr_assert(strstr(out, bob2) && strstr(out, "after you verified bob"), "%s", out);
    key_recipients("alice", room, to, sizeof to);
    cr_assert_null(strstr(to, mark), "a key went to a device alice has not accepted: %s", to);
    KZD("bob2", "bob", "photo", "list", room);
    cr_assert_eq(KZ("alice", "photo", "list", room), 0, "%s", out);
    photo_state("bob2", "bob", room, p2, state);
    cr_assert_str_neq(state, "ready", "alice's device answered a device she has not accepted");

    /* verify shows what changed and asks; without a yes nothing changes. */
    cr_assert_eq(KZ("alice", "verify", "bob"), 0, "%s", out);
    cr_assert(strstr(out, bob2) && strstr(out, "NEW since you verified") &&
                  strstr(out, "not marked"),
              "%s", out);
    cr_assert_eq(KZIN("alice", "y\n", "verify", "bob"), 0, "%s", out);
    cr_assert(strstr(out, "bob is verified"), "%s", out);
    long long p3 = send_photo("alice", "alice", room, "three");
    photo_state("bob2", "bob", room, p3, state);
    cr_assert_str_eq(state, "ready", "accepted, the new phone opens what is sent after: %s", out);
    photo_state("bob", "bob", room, p1, state);
    cr_assert_str_eq(state, "ready");
}

/* Losing every device: bob logs out of his only one (the server revokes it) and logs in on a new
 * phone, which starts his list anew. Alice, who had not verified him, is told and goes on;
 * carol, who had, sends him nothing until she verifies again. */
Test(trust, a_new_start_of_a_device_list_is_told_and_blocked_for_verified_contacts)
{
    const char *users[] = {"alice", "bob", "carol"};
    char room[64], to[8192], mark[100], bob2[64];
    static char told_alice[sizeof out], told_carol[sizeof out];
    users_and_room(users, 3, "本部", NULL, NULL, room);
    cr_assert_eq(KZIN("carol", "y\n", "verify", "bob"), 0, "%s", out);
    send_photo("alice", "alice", room, "one");
    cr_assert_eq(KZ("bob", "logout"), 0, "%s", out);
    cr_assert_eq(KZD("bob2", "bob", "login", "bob"), 0, "%s", out);
    device_of("bob2", bob2);
    snprintf(mark, sizeof mark, "|%s|", bob2);
    send_photo("alice", "alice", room, "two");
    snprintf(told_alice, sizeof told_alice, "%s", out);
    send_photo("carol", "carol", room, "three");
    snprintf(told_carol, sizeof told_carol, "%s", out);
    cr_assert_eq(KZ("carol", "--json", "history", room, "--after", "0", "--no-read"), 0, "%s", out);
    cJSON *r = pcli_json_of(out), *ev;
    int carol_keys_to_bob2 = 0;
    cJSON_ArrayForEach(ev, cJSON_GetObjectItem(r, "events"))
    {
        if (strcmp(pcli_jstr(ev, "event"), "e2ee.keys") == 0 &&
            strcmp(pcli_jstr(ev, "sender"), "carol") == 0 &&
            strstr(pcli_jstr(cJSON_GetObjectItem(ev, "content"), "data"), bob2))
            carol_keys_to_bob2++;
    }
    cJSON_Delete(r);
    cr_assert_eq(carol_keys_to_bob2, 0, "carol verified bob: his new start waits for her");
    cr_assert(strstr(told_carol, bob2) && strstr(told_carol, "after you verified bob"), "%s",
              told_carol);
    key_recipients("alice", room, to, sizeof to);
    cr_assert_not_null(strstr(to, mark), "alice goes on with bob's new phone: %s", to);
    cr_assert(strstr(told_alice, "started anew"), "alice is told: %s", told_alice);
}

/* ---- item 2: the safety number covers the devices that get keys ---- */

/* A WebSocket proxy in front of the server that rewrites device.list replies as a malicious
 * server would: the ghost device loses its revoked_at (drop) or disappears (hide). Everything
 * else passes unchanged, frames from the client included. */
static struct {
    int listen_fd, port;
    char ghost[64];
    bool hide;
} px;

static bool send_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static char *rewrite(const char *text, size_t len)
{
    cJSON *o = cJSON_ParseWithLength(text, len);
    cJSON *devs = cJSON_GetObjectItem(o, "devices");
    bool changed = false;
    if (cJSON_IsArray(devs) && cJSON_GetObjectItem(o, "login") &&
        !cJSON_GetObjectItem(o, "history"))
        for (int i = 0; i < cJSON_GetArraySize(devs); i++) {
            cJSON *x = cJSON_GetArrayItem(devs, i);
            if (strcmp(pcli_jstr(x, "device"), px.ghost) != 0)
                continue;
            if (px.hide)
                cJSON_DeleteItemFromArray(devs, i--);
            else
                cJSON_DeleteItemFromObject(x, "revoked_at");
            changed = true;
        }
    char *t = changed ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return t;
}

static bool send_text_frame(int fd, const char *t, size_t n)
{
    unsigned char h[10] = {0x81};
    size_t hl = 2;
    if (n < 126) {
        h[1] = (unsigned char)n;
    } else if (n < 65536) {
        h[1] = 126, h[2] = (unsigned char)(n >> 8), h[3] = (unsigned char)n, hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    return send_all(fd, h, hl) && send_all(fd, t, n);
}

static void *relay(void *arg)
{
    int c = (int)(intptr_t)arg, s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        close(c);
        close(s);
        return NULL;
    }
    unsigned char *buf = NULL, *msg = NULL;
    size_t len = 0, cap = 0, mlen = 0;
    bool head = false, ws = false;
    struct pollfd p[2] = {{.fd = c, .events = POLLIN}, {.fd = s, .events = POLLIN}};
    for (;;) {
        if (poll(p, 2, 1000) < 0)
            break;
        unsigned char tmp[65536];
        if (p[0].revents) {
            ssize_t n = recv(c, tmp, sizeof tmp, 0);
            if (n <= 0 || !send_all(s, tmp, (size_t)n))
                break;
        }
        if (!p[1].revents)
            continue;
        ssize_t n = recv(s, tmp, sizeof tmp, 0);
        if (n <= 0)
            break;
        if (len + (size_t)n > cap) {
            cap = (len + (size_t)n) * 2;
            buf = realloc(buf, cap);
        }
        memcpy(buf + len, tmp, (size_t)n);
        len += (size_t)n;
        if (!head) {
            unsigned char *e = memmem(buf, len, "\r\n\r\n", 4);
            if (!e)
                continue;
            size_t hl = (size_t)(e + 4 - buf);
            ws = len > 12 && memcmp(buf + 9, "101", 3) == 0;
            head = true;
            if (!send_all(c, buf, hl))
                break;
            memmove(buf, buf + hl, len - hl);
            len -= hl;
        }
        if (!ws) { /* plain HTTP (uploads, blobs): as it comes */
            if (len && !send_all(c, buf, len))
                break;
            len = 0;
            continue;
        }
        bool ok = true;
        while (ok && len >= 2) {
            size_t l7 = buf[1] & 0x7f, hl = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0);
            if (len < hl)
                break;
            uint64_t pl = l7;
            if (l7 == 126)
                pl = (uint64_t)buf[2] << 8 | buf[3];
            else if (l7 == 127)
                for (int i = 0; i < 8; i++)
                    pl = i ? pl << 8 | buf[2 + i] : buf[2];
            if (len < hl + pl)
                break;
            int op = buf[0] & 0x0f;
            bool fin = buf[0] & 0x80;
            if (op == 0x1 || op == 0x0) {
                msg = realloc(msg, mlen + pl + 1);
                memcpy(msg + mlen, buf + hl, pl);
                mlen += pl;
                if (fin) {
                    char *t = rewrite((char *)msg, mlen);
                    ok = t ? send_text_frame(c, t, strlen(t))
                           : send_text_frame(c, (char *)msg, mlen);
                    free(t);
                    mlen = 0;
                }
            } else {
                ok = send_all(c, buf, hl + pl);
            }
            memmove(buf, buf + hl + pl, len - hl - pl);
            len -= hl + pl;
        }
        if (!ok)
            break;
    }
    free(buf);
    free(msg);
    close(c);
    close(s);
    return NULL;
}

static void *accept_loop(void *arg)
{
    (void)arg;
    for (int c; (c = accept(px.listen_fd, NULL, NULL)) >= 0;) {
        pthread_t t;
        if (pthread_create(&t, NULL, relay, (void *)(intptr_t)c) == 0)
            pthread_detach(t);
        else
            close(c);
    }
    return NULL;
}

/* From now on the CLI talks to the proxy. */
static void proxy_start(const char *ghost, bool hide)
{
    snprintf(px.ghost, sizeof px.ghost, "%s", ghost);
    px.hide = hide;
    px.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    cr_assert_eq(bind(px.listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(px.listen_fd, 64), 0);
    cr_assert_eq(getsockname(px.listen_fd, (struct sockaddr *)&a, &al), 0);
    px.port = ntohs(a.sin_port);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, accept_loop, NULL), 0);
    pthread_detach(t);
    server_port = px.port;
}

/* The safety number alice's verify gives for bob, or "" when verify refuses (exit 1). */
static void number_of(char number[100])
{
    int rc = KZ("alice", "--json", "verify", "bob");
    number[0] = '\0';
    if (rc == 1)
        return;
    cr_assert_eq(rc, 0, "%s", out);
    cJSON *r = pcli_json_of(out);
    snprintf(number, 100, "%s", pcli_jstr(r, "safety_number"));
    cJSON_Delete(r);
}

static void verify_and_encryption_case(bool hide)
{
    const char *users[] = {"alice", "bob", "carol"};
    char room[64], ghost[64], n0[100], n1[100], to[8192], mark[100];
    users_and_room(users, 3, "現場", NULL, NULL, room);
    number_of(n0);
    cr_assert(n0[0], "%s", out);
    ghost_device("bob", ghost);
    proxy_start(ghost, hide);
    number_of(n1);
    send_photo("alice", "alice", room, "through-the-proxy");
    key_recipients("carol", room, to, sizeof to);
    snprintf(mark, sizeof mark, "|%s|", ghost);
    bool got_key = strstr(to, mark) != NULL;
    /* What verify vouches for is what encryption uses: if the number did not change, the device
     * the server added got nothing. */
    cr_assert(!(n1[0] && strcmp(n0, n1) == 0 && got_key),
              "verify gave the number of before (%s) while a key went to the server's device "
              "%s",
              n1, ghost);
    cr_assert_not(got_key, "a key went to the server's device: %s", to);
    if (!hide)
        cr_assert_str_eq(n1, "", "verify refuses a device entry without revoked_at");
    else
        cr_assert_str_eq(n1, n0, "bob's signed list did not change: neither does the number");
}

Test(trust, verify_and_encryption_see_the_same_devices_when_the_server_drops_a_field)
{
    verify_and_encryption_case(false);
}

Test(trust, verify_and_encryption_see_the_same_devices_when_the_server_hides_one)
{
    verify_and_encryption_case(true);
}

/* ---- item 6: the history policy is the one signed into the room's creation ---- */

Test(trust, the_history_policy_is_the_one_signed_at_creation)
{
    const char *users[] = {"alice", "carol"};
    char room[64], state[32];
    users_and_room(users, 2, "人事", "--history", "joined", room);
    long long p1 = send_photo("alice", "alice", room, "private");
    /* The server says the room shares its history. */
    cr_assert_eq(kzd_stop(&d), 0);
    char sql[300];
    snprintf(sql, sizeof sql, "UPDATE rooms SET history = 'shared' WHERE room_id = '%s'", room);
    db_exec(sql);
    kzd_start(&d);
    server_port = d.port;
    add_user("dave");
    cr_assert_eq(KZ("alice", "room", "invite", room, "dave"), 0, "%s", out);
    KZ("dave", "photo", "list", room); /* asks for the key */
    cr_assert_eq(KZ("carol", "photo", "list", room), 0, "%s", out);
    photo_state("dave", "dave", room, p1, state);
    cr_assert_str_neq(state, "ready", "a photo from before dave joined opened for him");
    cr_assert_eq(KZ("dave", "--json", "photo", "list", room), 0, "%s", out);
    cr_assert(strstr(out, "only from when one joined"), "withheld, and why: %s", out);
}

Test(trust, a_room_without_a_signed_history_policy_shares_nothing_later)
{
    const char *users[] = {"alice", "carol"};
    char room[64], state[32], tmp[64];
    users_and_room(users, 2, "一時", NULL, NULL, tmp);
    /* A room whose creation has no policy: as if the server had dropped it. */
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    cr_assert(ws_login(&w, "alice", "alice" PW_SUFFIX, NULL));
    cJSON *r = ws_callf(&w, "\"op\":\"room.create\",\"name\":\"方針なし\",\"members\":[\"carol\"]");
    cr_assert_str_eq(reply_code(r), "ok");
    snprintf(room, sizeof room, "%s", pcli_jstr(cJSON_GetObjectItem(r, "room"), "room"));
    cJSON_Delete(r);
    ws_close_fd(&w);
    long long p1 = send_photo("alice", "alice", room, "no-policy");
    photo_state("carol", "carol", room, p1, state);
    cr_assert_str_eq(state, "ready", "members of the room read what is sent to them");
    add_user("dave");
    cr_assert_eq(KZ("alice", "room", "invite", room, "dave"), 0, "%s", out);
    KZ("dave", "photo", "list", room);
    cr_assert_eq(KZ("carol", "photo", "list", room), 0, "%s", out);
    cr_assert_eq(KZ("alice", "photo", "list", room), 0, "%s", out);
    photo_state("dave", "dave", room, p1, state);
    cr_assert_str_neq(state, "ready", "no signed policy, yet a key was shared with a late joiner");
    cr_assert_eq(KZ("dave", "--json", "photo", "list", room), 0, "%s", out);
    cr_assert(strstr(out, "no signed history policy"), "%s", out);
}

/* ---- item 7: logout wipes, rewrites leave no old copy ---- */

/* Every file under base/dir, as "name|name|...". */
static void files_of(const char *dir, char *list, size_t n)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "cd '%s/%s' && find . -type f | sort | tr '\\n' '|'", base, dir);
    FILE *p = popen(cmd, "r");
    size_t got = fread(list, 1, n - 1, p);
    list[got] = '\0';
    pclose(p);
}

Test(trust, logout_without_the_server_leaves_no_key_on_disk)
{
    const char *users[] = {"alice", "bob"};
    char room[64], files[4096];
    users_and_room(users, 2, "本部", NULL, NULL, room);
    send_photo("alice", "alice", room, "kept");
    files_of("alice", files, sizeof files);
    cr_assert(strstr(files, "./device.json") && strstr(files, "./rooms/"), "%s", files);
    cJSON *sess = pcli_config_json(base, "alice", "session.json");
    char token[128];
    snprintf(token, sizeof token, "%s", pcli_jstr(sess, "token"));
    cJSON_Delete(sess);

    cr_assert_eq(kzd_stop(&d), 0);
    cr_assert_eq(KZ("alice", "logout"), 3, "the server cannot be reached: %s", out);
    files_of("alice", files, sizeof files);
    cr_assert_str_eq(files, "./session.json|", "only the session is left to retry: %s", files);
    sess = pcli_config_json(base, "alice", "session.json");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(sess, "logout_pending")));
    cr_assert_null(cJSON_GetObjectItem(sess, "sign_sk"));
    cJSON_Delete(sess);

    kzd_start(&d);
    server_port = d.port;
    /* Nothing uses the session meanwhile (it would register new keys under it). */
    cr_assert_eq(KZ("alice", "rooms"), 1, "%s", out);
    cr_assert(strstr(out, "run kizuna logout again"), "%s", out);
    files_of("alice", files, sizeof files);
    cr_assert_str_eq(files, "./session.json|", "%s", files);
    cr_assert_eq(KZ("alice", "logout"), 0, "%s", out);
    files_of("alice", files, sizeof files);
    cr_assert_str_eq(files, "", "%s", files);
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    char req[300];
    snprintf(req, sizeof req, "{\"id\":1,\"op\":\"auth\",\"token\":\"%s\"}", token);
    cJSON *r = ws_call(&w, req);
    cr_assert_str_neq(reply_code(r), "ok", "the server ended the session too");
    cJSON_Delete(r);
    ws_close_fd(&w);
}

Test(trust, a_rewritten_key_file_leaves_no_old_copy)
{
    const char *users[] = {"alice", "bob"};
    char room[64], path[300], link_path[300];
    users_and_room(users, 2, "本部", NULL, NULL, room);
    send_photo("alice", "alice", room, "first");
    snprintf(path, sizeof path, "%s/alice/rooms/%s.json", base, room);
    snprintf(link_path, sizeof link_path, "%s/old-copy", base);
    size_t n;
    char *before = (char *)pcli_slurp(path, &n);
    cr_assert(before && strstr(before, "\"key\""), "the room's key file holds keys: %s", before);
    free(before);
    /* A second name for the file's bytes as they are: what a replaced file leaves on disk. */
    cr_assert_eq(link(path, link_path), 0, "%s", strerror(errno));
    send_photo("alice", "alice", room, "second"); /* rewrites the key file */
    char *now = (char *)pcli_slurp(path, &n);
    cr_assert(now && strstr(now, "\"key\""));
    free(now);
    char *old = (char *)pcli_slurp(link_path, &n);
    cr_assert_not_null(old);
    cr_assert_null(strstr(old, "\"key\""), "the replaced key file's bytes are still readable: %s",
                   old);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(old[i], 0, "overwritten with zeros");
    free(old);
}

/* ---- the server's own check of device.sign (a second line: clients check it all again) ---- */

static cJSON *sign_call(struct ws *w, struct media_devlist *l, const char *by,
                        const uint8_t sign_sk[64])
{
    unsigned char enc[MEDIA_DEVLIST_ENCODED_MAX];
    size_t len;
    uint8_t sig[64];
    cr_assert_eq(media_devlist_encode(l, enc, sizeof enc, &len), MEDIA_OK);
    cr_assert_eq(media_devlist_sign(enc, len, sign_sk, sig), MEDIA_OK);
    char e64[8192], s64[100];
    b64(enc, len, e64, sizeof e64);
    b64(sig, 64, s64, sizeof s64);
    return ws_callf(w, "\"op\":\"device.sign\",\"list\":\"%s\",\"device\":\"%s\",\"sig\":\"%s\"",
                    e64, by, s64);
}

Test(trust, the_server_stores_only_versions_that_follow)
{
    const char *users[] = {"alice", "bob"};
    char room[64];
    users_and_room(users, 2, "本部", NULL, NULL, room);
    struct media_device_keys a;
    char alice_dev[64];
    device_keys_of("alice", &a, alice_dev);

    /* Alice's first list (version 1, made at her login), as the server has it. */
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    cr_assert(ws_login(&w, "alice", "alice" PW_SUFFIX, NULL));
    cJSON *r = ws_callf(&w, "\"op\":\"device.list\"");
    cJSON *l1 = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "lists"), 0);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "lists")), 1, "one version");
    unsigned char enc1[MEDIA_DEVLIST_ENCODED_MAX];
    size_t len1 = unb64(l1, "list", enc1, sizeof enc1);
    cJSON_Delete(r);
    struct media_devlist v1, v2;
    cr_assert_eq(media_devlist_decode(enc1, len1, &v1), MEDIA_OK);

    /* A new device of alice's, registered in this session. */
    struct media_device_keys f;
    char fid[64], spk[64], bpk[64], sg[100];
    uint8_t sig[64];
    cr_assert_eq(media_device_keys_new(&f), MEDIA_OK);
    media_device_id(f.sign_pk, fid);
    char alice_q[200];
    kzd_qualify(&d, "alice", alice_q, sizeof alice_q);
    cr_assert_eq(media_devkey_sign(alice_q, fid, &f, sig), MEDIA_OK);
    b64(f.sign_pk, 32, spk, sizeof spk);
    b64(f.box_pk, 32, bpk, sizeof bpk);
    b64(sig, 64, sg, sizeof sg);
    r = ws_callf(&w,
                 "\"op\":\"device.register\",\"sign_pk\":\"%s\",\"box_pk\":\"%s\",\"sig\":\"%s\"",
                 spk, bpk, sg);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);

    v2 = v1;
    v2.seq = 2;
    memcpy(v2.prev, v1.hash, 32);
    memcpy(v2.dev[v2.n].sign_pk, f.sign_pk, 32);
    memcpy(v2.dev[v2.n].box_pk, f.box_pk, 32);
    v2.n++;
    /* The new device cannot approve itself. */
    r = sign_call(&w, &v2, fid, f.sign_sk);
    cr_assert_str_eq(reply_code(r), "bad_request", "signed by a device not in version 1");
    cJSON_Delete(r);
    /* Versions come one after another. */
    struct media_devlist skip = v2;
    skip.seq = 3;
    r = sign_call(&w, &skip, alice_dev, a.sign_sk);
    cr_assert_str_eq(reply_code(r), "conflict");
    cJSON_Delete(r);
    /* Only one's own devices. */
    struct media_devlist other = v1;
    other.seq = 2;
    memcpy(other.prev, v1.hash, 32);
    cJSON *bl = pcli_config_json(base, "bob", "device.json");
    unb64(bl, "sign_pk", other.dev[other.n].sign_pk, 32);
    unb64(bl, "box_pk", other.dev[other.n].box_pk, 32);
    cJSON_Delete(bl);
    other.n++;
    r = sign_call(&w, &other, alice_dev, a.sign_sk);
    cr_assert_str_eq(reply_code(r), "conflict", "bob's device in alice's list");
    cJSON_Delete(r);
    /* Signed by her approved device, it is stored, and the room says so. */
    r = sign_call(&w, &v2, alice_dev, a.sign_sk);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    ws_close_fd(&w);
    cr_assert_eq(KZ("bob", "history", room, "--no-read"), 0, "%s", out);
    cr_assert(strstr(out, "alice approved the device") && strstr(out, fid), "%s", out);
    cr_assert_eq(KZ("bob", "devices", "alice"), 0, "%s", out);
    cr_assert(strstr(out, fid) && strstr(out, "approved") && strstr(out, "version 2"), "%s", out);
}

/* ---- devices and lists from before names were login@server (issue 19) ---- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

/* A server and client upgraded from a version whose devices signed the bare login: alice's
 * device self-signature, her list (version 1) and her own pin name "alice". Her next command
 * signs the device again and starts her list anew as alice@SERVER, which the room shows; bob's
 * next photo then reaches her. */
Test(trust, a_device_and_list_signed_before_names_had_a_server_are_renewed)
{
    const char *users[] = {"alice", "bob"};
    char room[64];
    users_and_room(users, 2, "本部", NULL, NULL, room);
    struct media_device_keys k;
    char dev[64];
    device_keys_of("alice", &k, dev);

    /* What the older version made: everything names "alice". */
    uint8_t self_sig[64], list_sig[64];
    cr_assert_eq(media_devkey_sign("alice", dev, &k, self_sig), MEDIA_OK);
    struct media_devlist l = {.seq = 1, .n = 1};
    snprintf(l.login, sizeof l.login, "alice");
    memcpy(l.dev[0].sign_pk, k.sign_pk, 32);
    memcpy(l.dev[0].box_pk, k.box_pk, 32);
    unsigned char enc[MEDIA_DEVLIST_ENCODED_MAX];
    size_t len;
    cr_assert_eq(media_devlist_encode(&l, enc, sizeof enc, &len), MEDIA_OK);
    cr_assert_eq(media_devlist_sign(enc, len, k.sign_sk, list_sig), MEDIA_OK);
    sodium_memzero(&k, sizeof k);
    char *enc_hex = malloc(2 * len + 1), sig_hex[129], ssig_hex[129], sql[12000];
    hex(enc, len, enc_hex);
    hex(list_sig, 64, sig_hex);
    hex(self_sig, 64, ssig_hex);
    cr_assert_eq(kzd_stop(&d), 0);
    snprintf(sql, sizeof sql,
             "UPDATE devices SET self_sig = x'%s' WHERE device_id = '%s';"
             "UPDATE device_lists SET list = x'%s', sig = x'%s' WHERE seq = 1 AND user_id ="
             " (SELECT id FROM users WHERE login = 'alice');",
             ssig_hex, dev, enc_hex, sig_hex);
    db_exec(sql);
    char pin_b64[6000], pins[7000], path[300];
    b64(enc, len, pin_b64, sizeof pin_b64);
    snprintf(pins, sizeof pins, "{\"users\":{\"alice\":{\"list\":\"%s\",\"ever\":[\"%s\"]}}}",
             pin_b64, dev);
    snprintf(path, sizeof path, "%s/alice/contacts.json", base);
    write_file(path, pins);
    snprintf(path, sizeof path, "%s/bob/contacts.json", base);
    unlink(path); /* bob met alice under the older version too: he meets her again */
    free(enc_hex);
    kzd_start(&d);
    server_port = d.port;

    /* Alice's next command: her device signs again, her list starts anew, named alice@SERVER. */
    cr_assert_eq(KZ("alice", "--json", "photo", "list", room), 0, "%s", out);
    char me[200];
    kzd_qualify(&d, "alice", me, sizeof me);
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    cr_assert(ws_login(&w, "bob", "bob" PW_SUFFIX, NULL));
    cJSON *r = ws_callf(&w, "\"op\":\"device.list\",\"login\":\"alice\"");
    ws_close_fd(&w);
    const cJSON *dv = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "devices"), 0);
    uint8_t spk[32], bpk[32], sig[64];
    unb64(dv, "sign_pk", spk, 32);
    unb64(dv, "box_pk", bpk, 32);
    unb64(dv, "sig", sig, 64);
    cr_assert(media_devkey_verify(me, dev, spk, bpk, sig), "the device signs %s now", me);
    const cJSON *lists = cJSON_GetObjectItem(r, "lists");
    cr_assert_eq(cJSON_GetArraySize(lists), 2, "the old version and a new start");
    const cJSON *l2 = cJSON_GetArrayItem(lists, 1);
    unsigned char enc2[MEDIA_DEVLIST_ENCODED_MAX];
    struct media_devlist v2;
    size_t len2 = unb64(l2, "list", enc2, sizeof enc2);
    cr_assert_eq(media_devlist_decode(enc2, len2, &v2), MEDIA_OK);
    cr_assert_str_eq(v2.login, me);
    cr_assert_eq(v2.seq, 2);
    cr_assert(media_devlist_is_root(&v2), "a new start");
    cJSON_Delete(r);

    /* Bob's next photo reaches her device. */
    long long pos = send_photo("bob", "bob", room, "after-upgrade");
    char state[32];
    photo_state("alice", "alice", room, pos, state);
    cr_assert_str_eq(state, "ready", "%s", out);
}
