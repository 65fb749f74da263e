/* test_photo_attacks.c - a server or a member that plays against the photo encryption (issue 14,
 * items 3 and 4), with the real kizuna against the real kizunad. The malicious server is the
 * stopped server's database edited by the test: a photo message copied to a new position (a
 * replay), two swapped (reordered), one deleted (dropped), a revoked device's events whose times
 * are moved before its revocation (backdated). The malicious member is a raw WebSocket client that
 * posts, with the member's own device keys, a wrong key or a `withheld` in answer to another
 * device's key request before the epoch's owner does. Each attack must be refused, or shown to the
 * user by `photo list`, `history` and `tail`; none may stop the owner's key. And what a photo
 * message's size tells the server (item 5): not whether it has GPS. */
#include <criterion/criterion.h>
#include <signal.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "media.h"

#define PW_SUFFIX TEST_PW_SUFFIX /* each user's password is LOGIN-password-1 */

static struct kzd d;
static char base[64]; /* client config dirs and files: apart from the server's data dir */
static char out[65536];

static void setup(void)
{
    kzd_setup(&d);
    snprintf(base, sizeof base, "/tmp/kizuna-attack-XXXXXX");
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

TestSuite(attack, .init = setup, .fini = teardown, .timeout = 120);

/* Runs kizuna as user with the config dir base/dir (a device of its own); the arguments are
 * NULL-terminated. Returns the exit status; stdout is in out. */
static int kzv(const char *dir, const char *user, const char *in, va_list ap)
{
    char config[300];
    snprintf(config, sizeof config, "%s/%s", base, dir);
    const struct kz_device dev = {d.url, config, user, NULL, 20, false};
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

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* A JSON file of a client's config dir (base/dir/name); the caller deletes it. */
static cJSON *config_json(const char *dir, const char *name)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s/%s", base, dir, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    cJSON *o = cJSON_Parse(buf);
    cr_assert_not_null(o, "%s", path);
    return o;
}

/* The device id of the client with config dir base/dir. */
static void device_of(const char *dir, char id[64])
{
    cJSON *o = config_json(dir, "device.json");
    snprintf(id, 64, "%s", jstr(o, "device"));
    cJSON_Delete(o);
}

/* Users who have each set up their device, and a room of theirs created by the first. */
static void users_and_room(const char *const *users, int n, char room_id[64])
{
    char in[64];
    cr_assert_eq(KZ("admin", "login", "admin"), 0, "%s", out);
    for (int i = 0; i < n; i++) {
        snprintf(in, sizeof in, "%s" PW_SUFFIX "\n", users[i]);
        cr_assert_eq(KZIN("admin", in, "admin", "user", "add", users[i], "--password-stdin"), 0,
                     "%s", out);
        cr_assert_eq(KZ(users[i], "login", users[i]), 0, "%s", out);
    }
    char members[256] = "";
    for (int i = 1; i < n; i++)
        snprintf(members + strlen(members), sizeof members - strlen(members), "%s%s",
                 i > 1 ? "," : "", users[i]);
    cr_assert_eq(KZ(users[0], "--json", "room", "create", "現場", "--members", members), 0, "%s",
                 out);
    cJSON *r = cJSON_Parse(out);
    snprintf(room_id, 64, "%s",
             cJSON_GetObjectItem(cJSON_GetObjectItem(r, "room"), "room")->valuestring);
    cJSON_Delete(r);
}

/* A small JPEG at base/name, different for every name. */
static void make_jpeg(const char *name, char path[200])
{
    snprintf(path, 200, "%s/%s", base, name);
    const char *argv[] = {KZ_MKJPEG_PATH, path, "--gps", "35.681236,139.767125", NULL};
    char o[1024];
    cr_assert_eq(run_capture(argv, NULL, NULL, o, sizeof o), 0, "kz-mkjpeg: %s", o);
}

/* `photo send` from the device with config dir base/dir; returns the position posted. */
static long long send_photo(const char *dir, const char *user, const char *room,
                            const char *caption)
{
    char jpg[200];
    make_jpeg(caption, jpg);
    cr_assert_eq(KZD(dir, user, "--json", "photo", "send", room, jpg, "--caption", caption), 0,
                 "%s", out);
    cJSON *r = cJSON_Parse(out);
    cr_assert_not_null(r, "%s", out);
    long long pos = (long long)cJSON_GetObjectItem(r, "pos")->valuedouble;
    cJSON_Delete(r);
    return pos;
}

/* The photo at pos in `photo list --json` as the device with config dir base/dir sees it (the
 * caller deletes it). */
static cJSON *listed(const char *dir, const char *user, const char *room, long long pos)
{
    cr_assert_eq(KZD(dir, user, "--json", "photo", "list", room), 0, "%s", out);
    cJSON *r = cJSON_Parse(out), *p, *found = NULL;
    cr_assert_not_null(r, "%s", out);
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(r, "photos"))
    {
        if ((long long)cJSON_GetObjectItem(p, "pos")->valuedouble == pos)
            found = cJSON_Duplicate(p, true);
    }
    cJSON_Delete(r);
    cr_assert_not_null(found, "no photo #%lld: %s", pos, out);
    return found;
}

/* The line of `history` (in out) that shows the event at pos; "" if none. */
static const char *history_line(long long pos, char *line, size_t n)
{
    char head[32];
    snprintf(head, sizeof head, "#%lld ", pos);
    line[0] = '\0';
    for (const char *p = out; (p = strstr(p, head)); p++) {
        if (p != out && p[-1] != '\n')
            continue;
        size_t len = strcspn(p, "\n");
        snprintf(line, n, "%.*s", (int)(len < n ? len : n - 1), p);
        break;
    }
    return line;
}

/* ---- the malicious server: the stopped server's database, edited ---- */

static void db_exec(const char *sql)
{
    char path[400];
    snprintf(path, sizeof path, "%s/kizuna.db", d.dir);
    sqlite3 *h = NULL;
    cr_assert_eq(sqlite3_open(path, &h), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(h));
    sqlite3_close(h);
}

static long long db_int(const char *sql)
{
    char path[400];
    snprintf(path, sizeof path, "%s/kizuna.db", d.dir);
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_open(path, &h), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(h));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

/* Stops the server cleanly, runs the edit, starts it again. */
static void server_edits(const char *sql)
{
    cr_assert_eq(kzd_stop(&d), 0);
    db_exec(sql);
    kzd_start(&d);
}

Test(attack, a_photo_message_replayed_as_new_is_refused_in_photo_list_history_and_tail)
{
    const char *users[] = {"alice", "bob"};
    char room[64], sql[1024], line[2048];
    users_and_room(users, 2, room);
    long long p1 = send_photo("alice", "alice", room, "first-photo");
    long long p2 = send_photo("alice", "alice", room, "second-photo");

    /* The server copies the first photo's signed event to a new position, with a new time: a
     * replay of a message that verifies as it did the first time. */
    snprintf(sql, sizeof sql,
             "INSERT INTO events (pos, room, origin, inc, seq, event_id, type, sender, ts,"
             " hlc, payload, sig) SELECT (SELECT max(pos) FROM events) + 1, room, origin, inc,"
             " seq + 1000000, event_id || '-replay', type, sender,"
             " (SELECT max(ts) FROM events) + 60000, (SELECT max(hlc) FROM events) + 60000,"
             " payload, sig FROM events WHERE pos = %lld;"
             "INSERT INTO blob_refs (blob, room, pos) SELECT blob, room,"
             " (SELECT max(pos) FROM events) FROM blob_refs WHERE pos = %lld;",
             p1, p1);
    server_edits(sql);
    long long replay = db_int("SELECT max(pos) FROM events");
    cr_assert_gt(replay, p2);

    cJSON *p = listed("bob", "bob", room, p1);
    cr_assert_str_eq(jstr(p, "state"), "ready", "the original still opens: %s", out);
    cr_assert_str_eq(jstr(p, "caption"), "first-photo");
    cJSON_Delete(p);
    p = listed("bob", "bob", room, replay);
    cr_assert_str_neq(jstr(p, "state"), "ready", "the replay is refused: %s", out);
    cr_assert(strstr(jstr(p, "detail"), "replay"), "and says why: %s", out);
    cJSON_Delete(p);

    cr_assert_eq(KZ("bob", "history", room), 0, "%s", out);
    cr_assert(strstr(history_line(p1, line, sizeof line), "first-photo"), "%s", out);
    history_line(replay, line, sizeof line);
    cr_assert(strstr(line, "replay") && !strstr(line, "[photo] first-photo"), "history: %s", out);

    /* tail shows the same line in its catch-up. */
    char env_dir[200], env_srv[100], head[40];
    snprintf(env_dir, sizeof env_dir, "KIZUNA_CONFIG_DIR=%s/bob", base);
    snprintf(env_srv, sizeof env_srv, "KIZUNA_SERVER=%s", d.url);
    const char *env[] = {env_dir, env_srv, NULL};
    const char *argv[] = {KIZUNA_PATH, "tail", room, NULL};
    int fd;
    pid_t tail = spawn_reader(argv, env, &fd);
    static char buf[65536];
    size_t len = 0;
    snprintf(head, sizeof head, "#%lld ", replay);
    cr_assert(read_until(fd, buf, sizeof buf, &len, head, 20000), "%s", buf);
    cr_assert(read_until(fd, buf, sizeof buf, &len, "\n", 5000), "%s", buf);
    const char *l = strstr(buf, head);
    cr_assert(l && strstr(l, "replay"), "tail: %s", buf);
    kill(tail, SIGTERM);
    waitpid(tail, NULL, 0);
    close(fd);
}

Test(attack, photo_messages_reordered_by_the_server_are_shown_out_of_order)
{
    const char *users[] = {"alice", "bob"};
    char room[64], sql[1024], line[2048];
    users_and_room(users, 2, room);
    long long p1 = send_photo("alice", "alice", room, "photo-one");
    long long p2 = send_photo("alice", "alice", room, "photo-two");
    long long p3 = send_photo("alice", "alice", room, "photo-three");
    (void)p1;

    /* The server swaps the second and third photo messages: each still verifies. */
    snprintf(sql, sizeof sql,
             "CREATE TEMP TABLE t AS SELECT pos, payload FROM events WHERE pos IN (%lld, %lld);"
             "UPDATE events SET payload = (SELECT payload FROM t WHERE t.pos != events.pos)"
             " WHERE pos IN (%lld, %lld);",
             p2, p3, p2, p3);
    server_edits(sql);

    cJSON *p = listed("bob", "bob", room, p3);
    cr_assert_str_eq(jstr(p, "caption"), "photo-two", "the swap took: %s", out);
    cr_assert(strstr(jstr(p, "warning"), "out of order"), "#%lld is flagged: %s", p3, out);
    cJSON_Delete(p);
    cr_assert_eq(KZ("bob", "history", room), 0, "%s", out);
    cr_assert(strstr(history_line(p3, line, sizeof line), "out of order"), "history: %s", out);
}

Test(attack, a_photo_message_the_server_drops_leaves_a_visible_gap)
{
    const char *users[] = {"alice", "bob"};
    char room[64], sql[512], line[2048];
    users_and_room(users, 2, room);
    send_photo("alice", "alice", room, "photo-one");
    long long p2 = send_photo("alice", "alice", room, "photo-two");
    long long p3 = send_photo("alice", "alice", room, "photo-three");

    snprintf(sql, sizeof sql, "DELETE FROM events WHERE pos = %lld;", p2);
    server_edits(sql);

    cJSON *p = listed("bob", "bob", room, p3);
    cr_assert_str_eq(jstr(p, "state"), "ready", "%s", out);
    cr_assert(strstr(jstr(p, "warning"), "missing"), "the gap before #%lld is shown: %s", p3, out);
    cJSON_Delete(p);
    cr_assert_eq(KZ("bob", "history", room), 0, "%s", out);
    cr_assert(strstr(history_line(p3, line, sizeof line), "missing"), "history: %s", out);
}

/* A lost phone's keys in a thief's hands and a server that helps: the revoked device's events
 * are posted after its revocation and their times moved to before it. */
Test(attack, a_revoked_devices_events_backdated_by_the_server_are_refused)
{
    const char *users[] = {"alice", "bob"};
    char room[64], dev2[64], sql[1024], line[2048];
    users_and_room(users, 2, room);
    cr_assert_eq(KZD("bob2", "bob", "login", "bob"), 0, "%s", out);
    device_of("bob2", dev2);
    cr_assert_eq(KZ("bob", "device", "approve", dev2), 0, "%s", out); /* keys go to it (item 1) */
    long long early = send_photo("bob2", "bob", room, "before-revocation");
    /* An administrator revokes it (bob runs nothing after, so his signed list still names it:
     * what a thief with the phone's keys needs to post as it at all). */
    cr_assert_eq(KZ("admin", "device", "revoke", dev2), 0, "%s", out);

    /* Undo the revocation for a moment, let the phone post, then put it back and backdate. */
    cr_assert_eq(kzd_stop(&d), 0);
    char q[300];
    snprintf(q, sizeof q, "SELECT revoked_at FROM devices WHERE device_id = '%s'", dev2);
    long long revoked_at = db_int(q);
    snprintf(q, sizeof q, "SELECT session_id FROM devices WHERE device_id = '%s'", dev2);
    long long session = db_int(q);
    long long before = db_int("SELECT max(pos) FROM events");
    cr_assert_gt(revoked_at, 0);
    snprintf(sql, sizeof sql,
             "UPDATE devices SET revoked_at = NULL WHERE device_id = '%s';"
             "UPDATE sessions SET ended_at = NULL WHERE id = %lld;",
             dev2, session);
    db_exec(sql);
    kzd_start(&d);
    long long forged = send_photo("bob2", "bob", room, "after-revocation");
    cr_assert_eq(kzd_stop(&d), 0);
    snprintf(sql, sizeof sql,
             "UPDATE devices SET revoked_at = %lld WHERE device_id = '%s';"
             "UPDATE sessions SET ended_at = %lld WHERE id = %lld;"
             "UPDATE events SET ts = %lld WHERE pos > %lld;",
             revoked_at, dev2, revoked_at, session, revoked_at - 60000, before);
    db_exec(sql);
    kzd_start(&d);

    cJSON *p = listed("alice", "alice", room, early);
    cr_assert_str_eq(jstr(p, "state"), "ready", "sent before the revocation: %s", out);
    cJSON_Delete(p);
    p = listed("alice", "alice", room, forged);
    cr_assert_str_neq(jstr(p, "state"), "ready", "signed after the revocation: %s", out);
    cr_assert(strstr(jstr(p, "detail"), "revoked"), "and says so: %s", out);
    cJSON_Delete(p);
    cr_assert_eq(KZ("alice", "history", room), 0, "%s", out);
    history_line(forged, line, sizeof line);
    cr_assert(strstr(line, "revoked") && !strstr(line, "after-revocation"), "history: %s", out);
}

/* ---- what the size of a photo message tells the server (item 5) ---- */

/* The length of the sealed message of the photo at pos, as the server stores it. */
static size_t ct_length(const char *room, long long pos)
{
    cr_assert_eq(KZ("bob", "--json", "history", room, "--after", "0", "--limit", "200"), 0, "%s",
                 out);
    cJSON *r = cJSON_Parse(out), *ev;
    size_t n = 0;
    cJSON_ArrayForEach(ev, cJSON_GetObjectItem(r, "events"))
    {
        if ((long long)cJSON_GetObjectItem(ev, "pos")->valuedouble != pos)
            continue;
        cJSON *data = cJSON_Parse(jstr(cJSON_GetObjectItem(ev, "content"), "data"));
        n = strlen(jstr(data, "ct"));
        cJSON_Delete(data);
    }
    cJSON_Delete(r);
    cr_assert_gt(n, 0, "no photo #%lld", pos);
    return n;
}

Test(attack, the_size_of_a_photo_message_does_not_tell_whether_it_has_gps)
{
    const char *users[] = {"alice", "bob"};
    char room[64], jpg[200];
    users_and_room(users, 2, room);
    make_jpeg("same-picture", jpg);
    long long pos[2];
    for (int i = 0; i < 2; i++) {
        /* The same picture and caption, once without GPS (a NULL ends the arguments). */
        cr_assert_eq(KZ("alice", "--json", "photo", "send", room, jpg, "--caption",
                        "県道12号線 冠水", i ? "--no-gps" : NULL),
                     0, "%s", out);
        cJSON *r = cJSON_Parse(out);
        cr_assert_not_null(r, "%s", out);
        pos[i] = (long long)cJSON_GetObjectItem(r, "pos")->valuedouble;
        cJSON_Delete(r);
    }
    cJSON *p = listed("bob", "bob", room, pos[0]);
    cr_assert(cJSON_IsObject(cJSON_GetObjectItem(p, "gps")), "the first has GPS: %s", out);
    cJSON_Delete(p);
    p = listed("bob", "bob", room, pos[1]);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(p, "gps")), "the second has none: %s", out);
    cJSON_Delete(p);
    cr_assert_eq(ct_length(room, pos[0]), ct_length(room, pos[1]),
                 "with GPS and without, the server sees one size");
}

/* ---- the malicious member: answers another device's key request first ---- */

static void b64(const uint8_t *bin, size_t n, char *o, size_t cap)
{
    sodium_bin2base64(o, cap, bin, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static void unb64(const char *text, uint8_t *bin, size_t n)
{
    size_t got = 0;
    cr_assert_eq(sodium_base642bin(bin, n, text, strlen(text), NULL, &got, NULL,
                                   sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                 0);
    cr_assert_eq(got, n);
}

/* Posts an encrypted event signed as docs/protocol.md says, with the device keys sk. */
static void post_signed(struct ws *w, const char *room, const char *type, const char *device,
                        const uint8_t sk[64], const char *data)
{
    size_t n = strlen(room) + 1 + strlen(type) + 1 + strlen(data);
    unsigned char *msg = malloc(n), *p = msg;
    p = (unsigned char *)stpcpy((char *)p, room) + 1;
    p = (unsigned char *)stpcpy((char *)p, type) + 1;
    memcpy(p, data, strlen(data));
    uint8_t sig[64];
    cr_assert_eq(media_sign("kizuna/e2ee/v1", msg, n, sk, sig), MEDIA_OK);
    free(msg);
    char s[100];
    b64(sig, 64, s, sizeof s);
    cJSON *j = cJSON_CreateString(data);
    char *quoted = cJSON_PrintUnformatted(j);
    cJSON *r = ws_callf(w,
                        "\"op\":\"e2ee.post\",\"room\":\"%s\",\"type\":\"%s\",\"device\":\"%s\","
                        "\"data\":%s,\"sig\":\"%s\"",
                        room, type, device, quoted, s);
    cr_assert_str_eq(reply_code(r), "ok", "%s", data);
    cJSON_Delete(r);
    cJSON_free(quoted);
    cJSON_Delete(j);
}

/* Bob (a member, with his own device's keys) answers carol's new phone's key request for alice's
 * photo before alice can: with a wrong key sealed to the phone, or with a `withheld`. Then alice's
 * device reads the room; the phone must open the photo with alice's key. */
static void member_answers_first(bool withheld)
{
    const char *users[] = {"alice", "bob", "carol"};
    char room[64];
    users_and_room(users, 3, room);
    long long pos = send_photo("alice", "alice", room, "owner-photo");
    cr_assert_eq(KZD("carol2", "carol", "login", "carol"), 0, "%s", out);
    char carol2[64]; /* approved from carol's first device: keys go to it only then (item 1) */
    device_of("carol2", carol2);
    cr_assert_eq(KZ("carol", "device", "approve", carol2), 0, "%s", out);
    cJSON *p = listed("carol2", "carol", room, pos);
    cr_assert_str_eq(jstr(p, "state"), "waiting", "the new phone asks for the key: %s", out);
    cJSON_Delete(p);

    /* Bob's client, as a raw WebSocket with his device's keys. */
    cJSON *me = config_json("bob", "device.json");
    uint8_t sign_sk[64], box_sk[32];
    unb64(jstr(me, "sign_sk"), sign_sk, 64);
    unb64(jstr(me, "box_sk"), box_sk, 32);
    char bob_dev[64], phone[64];
    snprintf(bob_dev, sizeof bob_dev, "%s", jstr(me, "device"));
    cJSON_Delete(me);
    device_of("carol2", phone);
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    cr_assert(ws_login(&w, "bob", "bob" PW_SUFFIX, NULL));
    cJSON *h = ws_callf(&w, "\"op\":\"history\",\"room\":\"%s\",\"after\":0,\"limit\":200", room);
    cr_assert_str_eq(reply_code(h), "ok");
    char epoch[128] = "", owner[64] = "";
    const cJSON *ev;
    cJSON_ArrayForEach(ev, cJSON_GetObjectItem(h, "events"))
    {
        const cJSON *content = cJSON_GetObjectItem(ev, "content");
        if (strcmp(jstr(ev, "event"), "e2ee.key_request") != 0 ||
            strcmp(jstr(content, "device"), phone) != 0)
            continue;
        cJSON *data = cJSON_Parse(jstr(content, "data"));
        snprintf(epoch, sizeof epoch, "%s", jstr(data, "epoch"));
        snprintf(owner, sizeof owner, "%s",
                 *jstr(data, "owner") ? jstr(data, "owner") : jstr(data, "sender_device"));
        cJSON_Delete(data);
    }
    cJSON_Delete(h);
    cr_assert(epoch[0] && owner[0], "the phone's key request is in the room");
    uint8_t phone_box[32];
    cJSON *devs = ws_callf(&w, "\"op\":\"room.devices\",\"room\":\"%s\"", room);
    cJSON_ArrayForEach(ev, cJSON_GetObjectItem(devs, "devices"))
    {
        if (strcmp(jstr(ev, "device"), phone) == 0)
            unb64(jstr(ev, "box_pk"), phone_box, 32);
    }
    cJSON_Delete(devs);

    char data[4096];
    if (withheld) {
        snprintf(data, sizeof data,
                 "{\"epoch\":\"%s\",\"owner\":\"%s\",\"to\":\"%s\",\"reason\":\"not for you\"}",
                 epoch, owner, phone);
        post_signed(&w, room, "e2ee.withheld", bob_dev, sign_sk, data);
    } else {
        /* An envelope that opens and says everything right, around a key that is not alice's. */
        uint8_t wrong[32];
        randombytes_buf(wrong, sizeof wrong);
        char k64[64], plain[1024], box64[2048];
        b64(wrong, 32, k64, sizeof k64);
        snprintf(
            plain, sizeof plain,
            "{\"room\":\"%s\",\"owner\":\"%s\",\"epoch\":\"%s\",\"key\":\"%s\",\"from\":\"%s\","
            "\"to\":\"%s\"}",
            room, owner, epoch, k64, bob_dev, phone);
        size_t n = strlen(plain);
        unsigned char env[1024 + MEDIA_ENVELOPE_OVERHEAD];
        cr_assert_eq(media_envelope_seal(plain, n, box_sk, phone_box, env), MEDIA_OK);
        b64(env, n + MEDIA_ENVELOPE_OVERHEAD, box64, sizeof box64);
        snprintf(data, sizeof data,
                 "{\"epoch\":\"%s\",\"owner\":\"%s\",\"history\":\"shared\","
                 "\"entries\":[{\"to\":\"%s\",\"box\":\"%s\"}]}",
                 epoch, owner, phone, box64);
        post_signed(&w, room, "e2ee.keys", bob_dev, sign_sk, data);
    }
    ws_close_fd(&w);
    sodium_memzero(sign_sk, sizeof sign_sk);
    sodium_memzero(box_sk, sizeof box_sk);

    /* Alice's device reads the room: it answers the request all the same. */
    cr_assert_eq(KZ("alice", "photo", "list", room), 0, "%s", out);
    p = listed("carol2", "carol", room, pos);
    cr_assert_str_eq(jstr(p, "state"), "ready", "the owner's key is used: %s", out);
    cr_assert_str_eq(jstr(p, "caption"), "owner-photo");
    cJSON_Delete(p);
    char pos_s[32], file[300];
    snprintf(pos_s, sizeof pos_s, "%lld", pos);
    snprintf(file, sizeof file, "%s/got.jpg", base);
    cr_assert_eq(KZD("carol2", "carol", "photo", "get", room, pos_s, "-o", file), 0, "%s", out);
}

Test(attack, a_wrong_key_from_a_member_answering_first_does_not_stop_the_owners_key)
{
    member_answers_first(false);
}

Test(attack, a_withheld_from_a_member_answering_first_does_not_stop_the_owners_key)
{
    member_answers_first(true);
}
