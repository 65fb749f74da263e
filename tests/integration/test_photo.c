/* test_photo.c - end-to-end encrypted photos with the kizuna command against the real kizunad:
 * a round trip between three users that leaves nothing readable on the server, revocation, a
 * late joiner who asks for a key and is answered, and uploads that resume after the CLI is cut
 * off (KIZUNA_TEST_CUT_AFTER_BYTES, a test hook) and after a kill -9 of the server. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <ftw.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "photocli.h"

#define GPS_ARG     "35.681236,139.767125"
#define TIME_ARG    "2024:05:06 07:08:09"
#define EXIF_CANARY "exif-canary-Qz7"
#define CAPTION     "caption-canary-Vb9 冠水"
#define PW_SUFFIX   TEST_PW_SUFFIX /* each user's password is LOGIN-password-1 */

static struct kzd d;
static char base[64]; /* client config dirs and files: apart from the server's data dir */

static void setup(void)
{
    kzd_setup(&d);
    snprintf(base, sizeof base, "/tmp/kizuna-photo-XXXXXX");
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

TestSuite(photo, .init = setup, .fini = teardown, .timeout = 90);

/* Runs kizuna as login with the config dir base/dir (a device of its own), one optional extra
 * environment entry and optional stdin; the arguments are in ap, NULL-terminated. Returns the
 * exit status. */
static int kzv(const char *dir, const char *user, const char *extra_env, const char *in, char *out,
               size_t outlen, va_list ap)
{
    char config[300];
    snprintf(config, sizeof config, "%s/%s", base, dir);
    const struct kz_device dev = {d.url, config, user, extra_env, 20, false};
    return kz_device_run(&dev, in, out, outlen, ap);
}

/* Runs kizuna as user on the user's first device (config dir base/user). */
static int kz(const char *user, const char *extra_env, const char *in, char *out, size_t outlen,
              ...)
{
    va_list ap;
    va_start(ap, outlen);
    int rc = kzv(user, user, extra_env, in, out, outlen, ap);
    va_end(ap);
    return rc;
}

/* Runs kizuna as user on another device of theirs (config dir base/dir). */
static int kz_dev(const char *dir, const char *user, char *out, size_t outlen, ...)
{
    va_list ap;
    va_start(ap, outlen);
    int rc = kzv(dir, user, NULL, NULL, out, outlen, ap);
    va_end(ap);
    return rc;
}

#define KZ(user, ...)       kz(user, NULL, NULL, out, sizeof out, __VA_ARGS__, (const char *)NULL)
#define KZE(user, env, ...) kz(user, env, NULL, out, sizeof out, __VA_ARGS__, (const char *)NULL)
#define KZIN(user, in, ...) kz(user, NULL, in, out, sizeof out, __VA_ARGS__, (const char *)NULL)
#define KZD(dir, user, ...) kz_dev(dir, user, out, sizeof out, __VA_ARGS__, (const char *)NULL)

static char out[65536];

/* Users who have each set up their device, and a room of theirs created
 * by the first; room_id gets its id. */
static void users_and_room(const char *const *users, int n, char room_id[64])
{
    char in[64];
    cr_assert_eq(KZ("admin", "login", "admin"), 0, "%s", out);
    for (int i = 0; i < n; i++) {
        snprintf(in, sizeof in, "%s" PW_SUFFIX "\n", users[i]);
        cr_assert_eq(KZIN("admin", in, "admin", "user", "add", users[i], "--password-stdin"), 0,
                     "%s", out);
        cr_assert_eq(KZ(users[i], "login", users[i]), 0, "%s", out);
        /* Logging in made and registered the device's keys, so senders encrypt to it from
         * the first photo on (no key request needed). */
        cr_assert_eq(KZ("admin", "--json", "devices", users[i]), 0, "%s", out);
        cr_assert(strstr(out, "\"revoked_at\":null"), "%s has a device after login: %s", users[i],
                  out);
    }
    char members[256] = "";
    for (int i = 1; i < n; i++)
        snprintf(members + strlen(members), sizeof members - strlen(members), "%s%s",
                 i > 1 ? "," : "", users[i]);
    cr_assert_eq(KZ(users[0], "--json", "room", "create", "写真班", "--members", members), 0, "%s",
                 out);
    cJSON *r = cJSON_Parse(out);
    snprintf(room_id, 64, "%s",
             cJSON_GetObjectItem(cJSON_GetObjectItem(r, "room"), "room")->valuestring);
    cJSON_Delete(r);
}

static void make_jpeg(const char *path, bool big)
{
    pcli_make_jpeg(path, GPS_ARG, TIME_ARG, EXIF_CANARY, big);
}

/* `photo send` with one optional extra environment entry, returning the position posted. */
static long long send_photo_env(const char *user, const char *env, const char *room,
                                const char *file)
{
    cr_assert_eq(KZE(user, env, "--json", "photo", "send", room, file, "--caption", CAPTION), 0,
                 "%s", out);
    cJSON *r = cJSON_Parse(out);
    cr_assert_not_null(r, "%s", out);
    long long pos = (long long)cJSON_GetObjectItem(r, "pos")->valuedouble;
    cJSON_Delete(r);
    return pos;
}

static long long send_photo(const char *user, const char *room, const char *file)
{
    return send_photo_env(user, NULL, room, file);
}

/* The photo at pos in user's `photo list --json` (the caller deletes it), or NULL. */
static cJSON *listed(const char *user, const char *room, long long pos)
{
    cr_assert_eq(KZ(user, "--json", "photo", "list", room), 0, "%s", out);
    cJSON *r = cJSON_Parse(out), *p, *found = NULL;
    cr_assert_not_null(r, "%s", out);
    cJSON_ArrayForEach(
        p, cJSON_GetObjectItem(
               r, "photos")) if ((long long)cJSON_GetObjectItem(p, "pos")->valuedouble == pos)
        found = cJSON_Duplicate(p, true);
    cJSON_Delete(r);
    return found;
}

/* ---- the server's files must hold none of the secrets ---- */

Test(photo, round_trip_between_three_users_leaves_nothing_readable_on_the_server)
{
    const char *users[] = {"alice", "bob", "carol"};
    char room[64], jpg[200], b_out[200], c_out[200], thumb[200];
    users_and_room(users, 3, room);
    snprintf(jpg, sizeof jpg, "%s/in.jpg", base);
    make_jpeg(jpg, false);
    long long pos = send_photo("alice", room, jpg);

    for (int i = 1; i < 3; i++) {
        cJSON *p = listed(users[i], room, pos);
        cr_assert_not_null(p, "%s", out);
        cr_assert_str_eq(pcli_jstr(p, "state"), "ready", "%s", out);
        cr_assert_str_eq(pcli_jstr(p, "caption"), CAPTION);
        cr_assert_str_eq(pcli_jstr(p, "captured_at"), "2024-05-06T07:08:09");
        const cJSON *gps = cJSON_GetObjectItem(p, "gps");
        cr_assert_float_eq(cJSON_GetObjectItem(gps, "lat")->valuedouble, 35.681236, 1e-5);
        cr_assert_float_eq(cJSON_GetObjectItem(gps, "lon")->valuedouble, 139.767125, 1e-5);
        const cJSON *th = cJSON_GetObjectItem(p, "thumb");
        cr_assert_eq(cJSON_GetObjectItem(th, "w")->valuedouble, 320);
        cr_assert_gt(cJSON_GetObjectItem(th, "bytes")->valuedouble, 100);
        cJSON_Delete(p);
    }
    char pos_s[32];
    snprintf(pos_s, sizeof pos_s, "%lld", pos);
    snprintf(b_out, sizeof b_out, "%s/bob.jpg", base);
    snprintf(c_out, sizeof c_out, "%s/carol.jpg", base);
    snprintf(thumb, sizeof thumb, "%s/thumb.jpg", base);
    /* In the room's history a photo is a line with its caption, opened on bob's phone, and
     * the command that gets it names the room; key traffic stays out of sight. */
    char hint[100];
    snprintf(hint, sizeof hint, "kizuna photo get 写真班 %lld)", pos);
    cr_assert_eq(KZ("bob", "history", room), 0, "%s", out);
    cr_assert(strstr(out, "[photo] " CAPTION " (GPS 35.681236,139.767125; ") && strstr(out, hint) &&
                  !strstr(out, "e2ee."),
              "%s", out);
    /* Without -o nothing is written, but the photo is still verified. */
    cr_assert_eq(KZ("bob", "photo", "get", room, pos_s), 0, "%s", out);
    cr_assert(strstr(out, "verified") && strstr(out, "35.681236,139.767125") &&
                  strstr(out, "2024-05-06T07:08:09"),
              "%s", out);
    cr_assert_eq(KZ("bob", "photo", "get", room, pos_s, "-o", b_out), 0, "%s", out);
    cr_assert_eq(KZ("carol", "photo", "get", room, pos_s, "-o", c_out), 0, "%s", out);
    cr_assert_eq(KZ("carol", "photo", "get", room, pos_s, "--thumb", "-o", thumb), 0, "%s", out);

    size_t bl, cl, tl, il;
    unsigned char *b = pcli_slurp(b_out, &bl), *c = pcli_slurp(c_out, &cl),
                  *t = pcli_slurp(thumb, &tl);
    unsigned char *orig = pcli_slurp(jpg, &il);
    cr_assert(b && c && t && orig);
    cr_assert(bl == cl && memcmp(b, c, bl) == 0, "bob and carol decrypt the same bytes");
    cr_assert_not(pcli_has_app1(b, bl), "no EXIF or XMP in the photo");
    cr_assert_not(pcli_has_app1(t, tl), "no EXIF or XMP in the thumbnail");
    cr_assert_null(memmem(b, bl, EXIF_CANARY, strlen(EXIF_CANARY)), "no metadata canary");
    cr_assert(pcli_has_app1(orig, il), "the original had EXIF");
    char staging[300];
    snprintf(staging, sizeof staging, "%s/bob/staging", base);
    DIR *sd = opendir(staging);
    for (struct dirent *e; sd && (e = readdir(sd));)
        cr_assert(e->d_name[0] == '.', "staging is empty after a get: %s", e->d_name);
    if (sd)
        closedir(sd);

    /* Nothing the server keeps (database, WAL, blobs, uploads, its log) holds the caption,
     * the GPS, the metadata canary, or bytes of the photo. */
    cr_assert_eq(kzd_stop(&d), 0);
    pcli_scan_reset();
    pcli_scan_add("the caption", CAPTION, strlen(CAPTION));
    pcli_scan_add("the caption's canary", "caption-canary", 14);
    pcli_scan_add("the latitude", "35.6812", 7);
    pcli_scan_add("the longitude", "139.767", 7);
    pcli_scan_add("the EXIF canary", EXIF_CANARY, strlen(EXIF_CANARY));
    pcli_scan_add("the photo's pixels", b + bl / 2, 32);
    pcli_scan_add("the thumbnail's pixels", t + tl / 2, 32);
    cr_assert_eq(nftw(d.dir, pcli_scan_file, 16, FTW_PHYS), 0);
    cr_assert_str_eq(pcli_scan()->hits, "", "the server's files leak: %s", pcli_scan()->hits);
    kzd_start(&d);
    free(b);
    free(c);
    free(t);
    free(orig);
}

/* The id of the device whose config dir is base/dir. */
static void device_of(const char *dir, char id[64])
{
    cJSON *dj = pcli_config_json(base, dir, "device.json");
    snprintf(id, 64, "%s", pcli_jstr(dj, "device"));
    cJSON_Delete(dj);
}

/* A user's new device (config dir base/dir) is approved from the user's first device: only then
 * does the user's signed device list vouch for it, and keys go to it (issue 14). */
static void approve(const char *user, const char *dir)
{
    char id[64];
    device_of(dir, id);
    cr_assert_eq(KZ(user, "device", "approve", id), 0, "%s", out);
}

/* The blob id a user's list shows for the photo at pos. */
static void blob_of(const char *user, const char *room, long long pos, char blob[80])
{
    cJSON *p = listed(user, room, pos);
    cr_assert_not_null(p, "%s", out);
    snprintf(blob, 80, "%s", pcli_jstr(cJSON_GetObjectItem(p, "image"), "blob"));
    cJSON_Delete(p);
}

static void token_of(const char *user, char token[128])
{
    cJSON *o = pcli_config_json(base, user, "session.json");
    snprintf(token, 128, "%s", pcli_jstr(o, "token"));
    cJSON_Delete(o);
}

static int blob_get(const char *token, const char *blob)
{
    char path[200], hdr[256], body[256];
    snprintf(path, sizeof path, "/api/v1/blobs/%s", blob);
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\nRange: bytes=0-15\r\n", token);
    return http_request(d.port, "GET", path, hdr, NULL, body, sizeof body);
}

Test(photo, a_revoked_device_opens_nothing_sent_after)
{
    const char *users[] = {"alice", "bob", "carol"};
    char room[64], jpg[200], pos_s[32], blob1[80], blob2[80], bob_token[128];
    users_and_room(users, 3, room);
    snprintf(jpg, sizeof jpg, "%s/in.jpg", base);
    make_jpeg(jpg, false);
    long long p1 = send_photo("alice", room, jpg);
    blob_of("bob", room, p1, blob1);
    token_of("bob", bob_token);
    cr_assert_eq(blob_get(bob_token, blob1), 206);

    /* An admin revokes bob's device (a lost phone). */
    cr_assert_eq(KZ("admin", "--json", "devices", "bob"), 0, "%s", out);
    cJSON *r = cJSON_Parse(out);
    char dev[64];
    snprintf(dev, sizeof dev, "%s",
             pcli_jstr(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "devices"), 0), "device"));
    cJSON_Delete(r);
    cr_assert_eq(KZ("admin", "device", "revoke", dev), 0, "%s", out);
    cr_assert_eq(KZ("admin", "devices", "bob"), 0, "%s", out);
    cr_assert(strstr(out, "REVOKED"), "%s", out);

    /* A new photo (same file, new upload) goes to a new epoch without bob's device. */
    snprintf(jpg, sizeof jpg, "%s/in2.jpg", base);
    make_jpeg(jpg, false);
    long long p2 = send_photo("alice", room, jpg);
    snprintf(pos_s, sizeof pos_s, "%lld", p2);
    cr_assert_eq(KZ("bob", "photo", "get", room, pos_s), 1, "bob's session ended: %s", out);
    cr_assert_eq(KZ("bob", "photo", "list", room), 1, "%s", out);
    blob_of("carol", room, p2, blob2);
    int st = blob_get(bob_token, blob2);
    cr_assert(st == 401 || st == 404, "bob's old token reads no blob (%d)", st);
    st = blob_get(bob_token, blob1);
    cr_assert(st == 401 || st == 404, "not even old ones (%d)", st);
    char c_out[200];
    snprintf(c_out, sizeof c_out, "%s/carol2.jpg", base);
    cr_assert_eq(KZ("carol", "photo", "get", room, pos_s, "-o", c_out), 0, "%s", out);

    /* The epoch key of the second photo was never sealed to bob's device. */
    cr_assert_eq(KZ("carol", "--json", "history", room, "--after", "0", "--limit", "200"), 0);
    r = cJSON_Parse(out);
    const cJSON *ev;
    cJSON_ArrayForEach(ev, cJSON_GetObjectItem(r, "events"))
    {
        if (strcmp(pcli_jstr(ev, "event"), "e2ee.keys") != 0 ||
            cJSON_GetObjectItem(ev, "pos")->valuedouble < p1)
            continue;
        cr_assert_null(strstr(pcli_jstr(cJSON_GetObjectItem(ev, "content"), "data"), dev),
                       "a key for the revoked device was posted after its revocation");
    }
    cJSON_Delete(r);
}

/* ---- what a device that left can still open ---- */

/* The e2ee.photo event at pos as a current member (user) reads it in the room's history. The
 * caller deletes it. */
static cJSON *photo_event(const char *user, const char *room, long long pos)
{
    cr_assert_eq(KZ(user, "--json", "history", room, "--after", "0", "--limit", "200"), 0, "%s",
                 out);
    cJSON *r = cJSON_Parse(out), *found = NULL;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, cJSON_GetObjectItem(r, "events"))
    {
        if ((long long)cJSON_GetObjectItem(ev, "pos")->valuedouble == pos &&
            strcmp(pcli_jstr(ev, "event"), "e2ee.photo") == 0)
            found = cJSON_Duplicate(ev, true);
    }
    cJSON_Delete(r);
    cr_assert_not_null(found, "no photo at #%lld", pos);
    return found;
}

/* The epoch a user's list shows for the photo at pos. */
static void epoch_of(const char *user, const char *room, long long pos, char epoch[64])
{
    cJSON *p = listed(user, room, pos);
    cr_assert_not_null(p, "%s", out);
    cr_assert_str_eq(pcli_jstr(p, "state"), "ready", "%s sees #%lld: %s", user, pos, out);
    snprintf(epoch, 64, "%s", pcli_jstr(p, "epoch"));
    cJSON_Delete(p);
}

/* The photo at pos opens for user, written to base/FILE. */
static void gets_photo(const char *user, const char *room, long long pos, const char *file)
{
    char pos_s[32], path[200];
    snprintf(pos_s, sizeof pos_s, "%lld", pos);
    snprintf(path, sizeof path, "%s/%s", base, file);
    cr_assert_eq(KZ(user, "photo", "get", room, pos_s, "-o", path), 0, "%s: %s", user, out);
}

/* Issue 12, defect 3: the key came by a key request, not in the epoch's first envelopes, so the
 * sender's set of member devices looked the same again after the revocation and the next photo
 * went out under the key the lost phone still had. */
Test(photo, a_phone_revoked_after_a_key_request_opens_nothing_sent_after)
{
    const char *users[] = {"alice", "bob", "carol"};
    char room[64], jpg[200], p1_s[32], p2_s[32], e1[64], e2[64];
    users_and_room(users, 3, room);
    snprintf(jpg, sizeof jpg, "%s/in.jpg", base);
    make_jpeg(jpg, false);
    long long p1 = send_photo("alice", room, jpg);
    snprintf(p1_s, sizeof p1_s, "%lld", p1);

    /* Bob's second phone logs in after the photo: it asks for the key, carol's device answers. */
    cr_assert_eq(KZD("bob2", "bob", "login", "bob"), 0, "%s", out);
    approve("bob", "bob2");
    cr_assert_eq(KZD("bob2", "bob", "--json", "photo", "list", room), 0, "%s", out);
    cr_assert(strstr(out, "waiting for key"), "%s", out);
    cr_assert_eq(KZ("carol", "photo", "list", room), 0, "%s", out);
    cr_assert_eq(KZD("bob2", "bob", "photo", "get", room, p1_s), 0, "%s", out);
    cJSON *ev = photo_event("carol", room, p1);
    int tried = 0;
    cr_assert(pcli_keystore_opens(base, "bob2", room, ev, &tried),
              "the second phone holds the key of #%s", p1_s);
    cJSON_Delete(ev);

    /* The phone is lost: bob revokes it from his first one. */
    char path[300];
    snprintf(path, sizeof path, "%s/bob2/device.json", base);
    size_t n;
    unsigned char *text = pcli_slurp(path, &n);
    cr_assert_not_null(text);
    cJSON *dj = cJSON_Parse((char *)text);
    free(text);
    char dev2[64];
    snprintf(dev2, sizeof dev2, "%s", pcli_jstr(dj, "device"));
    cJSON_Delete(dj);
    cr_assert_eq(KZ("bob", "device", "revoke", dev2), 0, "%s", out);

    /* The next photo goes out under a new epoch that none of the phone's keys opens. */
    snprintf(jpg, sizeof jpg, "%s/in2.jpg", base);
    make_jpeg(jpg, false);
    long long p2 = send_photo("alice", room, jpg);
    snprintf(p2_s, sizeof p2_s, "%lld", p2);
    ev = photo_event("carol", room, p2);
    tried = 0;
    cr_assert_not(pcli_keystore_opens(base, "bob2", room, ev, &tried),
                  "the revoked phone opens #%s with a key it kept", p2_s);
    cr_assert_gt(tried, 0, "the phone's keys were tried");
    cJSON_Delete(ev);
    epoch_of("carol", room, p1, e1);
    epoch_of("carol", room, p2, e2);
    cr_assert_str_neq(e1, e2, "a new epoch after the revocation");

    /* Every current device opens it; the revoked one gets nothing from the server either. */
    gets_photo("bob", room, p2, "bob2.jpg");
    gets_photo("carol", room, p2, "carol2.jpg");
    gets_photo("alice", room, p2, "alice2.jpg");
    cr_assert_eq(KZD("bob2", "bob", "photo", "get", room, p2_s), 1, "%s", out);
}

/* The same for a member removed from the room after a key request, for two senders: alice, who
 * answered the request herself, and bob, whose key another member's device passed on. Bob's
 * CLI is made to forget its own check (a test hook): the server refuses his photo under the
 * old epoch, and the CLI starts a new one then. */
Test(photo, a_member_removed_after_a_key_request_opens_nothing_sent_after)
{
    const char *users[] = {"alice", "bob", "carol"};
    char room[64], jpg[200], p1_s[32], ea[64], eb[64], e[64];
    users_and_room(users, 3, room);
    snprintf(jpg, sizeof jpg, "%s/in.jpg", base);
    make_jpeg(jpg, false);
    long long p1 = send_photo("alice", room, jpg);
    long long b1 = send_photo("bob", room, jpg);
    snprintf(p1_s, sizeof p1_s, "%lld", p1);
    cr_assert_eq(
        KZIN("admin", "dave" PW_SUFFIX "\n", "admin", "user", "add", "dave", "--password-stdin"),
        0);
    cr_assert_eq(KZ("dave", "login", "dave"), 0, "%s", out);
    cr_assert_eq(KZ("alice", "room", "invite", room, "dave"), 0, "%s", out);
    /* Dave asks for both keys; alice's device holds both and answers. */
    cr_assert_eq(KZ("dave", "--json", "photo", "list", room), 0, "%s", out);
    cr_assert(strstr(out, "waiting for key"), "%s", out);
    cr_assert_eq(KZ("alice", "photo", "list", room), 0, "%s", out);
    gets_photo("dave", room, p1, "dave1.jpg");
    gets_photo("dave", room, b1, "dave1b.jpg");

    cr_assert_eq(KZ("alice", "room", "remove", room, "dave"), 0, "%s", out);
    snprintf(jpg, sizeof jpg, "%s/in2.jpg", base);
    make_jpeg(jpg, false);
    long long p2 = send_photo("alice", room, jpg);
    long long b2 = send_photo_env("bob", "KIZUNA_TEST_FORGET_HOLDERS=1", room, jpg);
    long long sent[] = {p1, b1, p2, b2};
    for (int i = 0; i < 4; i++) {
        cJSON *ev = photo_event("carol", room, sent[i]);
        int tried = 0;
        cr_assert_eq(pcli_keystore_opens(base, "dave", room, ev, &tried), i < 2,
                     "dave's keys %s #%lld (%d tried)", i < 2 ? "open" : "must not open", sent[i],
                     tried);
        cJSON_Delete(ev);
    }
    epoch_of("carol", room, p1, ea);
    epoch_of("carol", room, p2, e);
    cr_assert_str_neq(ea, e, "alice starts a new epoch");
    epoch_of("carol", room, b1, eb);
    epoch_of("carol", room, b2, e);
    cr_assert_str_neq(eb, e, "bob starts a new epoch");
    gets_photo("bob", room, p2, "bob2.jpg");
    gets_photo("carol", room, b2, "carol2.jpg");
    cr_assert_eq(KZ("dave", "photo", "list", room), 1, "no such room for dave: %s", out);
}

/* ---- issue 13, items 1 and 2: photos in the timeline, counted and read like messages ---- */

/* The unread count user's `rooms --json` gives for the room. */
static long long unread_of(const char *user, const char *room)
{
    cr_assert_eq(KZ(user, "--json", "rooms"), 0, "%s", out);
    cJSON *r = cJSON_Parse(out), *x;
    long long n = -1;
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(r, "rooms"))
    {
        if (strcmp(pcli_jstr(x, "room"), room) == 0)
            n = (long long)cJSON_GetObjectItem(x, "unread")->valuedouble;
    }
    cJSON_Delete(r);
    cr_assert_geq(n, 0, "%s", out);
    return n;
}

Test(photo, a_photo_counts_as_unread_and_read_like_a_message)
{
    const char *users[] = {"alice", "bob", "carol"};
    char room[64], jpg[200], pos_s[32], line[200];
    users_and_room(users, 3, room);
    snprintf(jpg, sizeof jpg, "%s/in.jpg", base);
    make_jpeg(jpg, false);
    long long pos = send_photo("alice", room, jpg);
    snprintf(pos_s, sizeof pos_s, "%lld", pos);
    cr_assert_eq(unread_of("bob", room), 1, "a photo is unread until seen");
    cr_assert_eq(unread_of("alice", room), 0, "not for its sender");
    cr_assert_eq(KZ("alice", "readers", room, pos_s), 0, "readers works for a photo: %s", out);
    cr_assert(strstr(out, "read (既読 0)") && strstr(out, "bob") && strstr(out, "carol"), "%s",
              out);

    /* Carol's shared screen shows it without reading it; bob's history shows and reads it. */
    cr_assert_eq(KZ("carol", "history", room, "--no-read"), 0, "%s", out);
    cr_assert(strstr(out, "[photo] " CAPTION), "%s", out);
    cr_assert_eq(unread_of("carol", room), 1);
    cr_assert_eq(KZ("bob", "history", room), 0, "%s", out);
    snprintf(line, sizeof line, "#%lld ", pos);
    cr_assert(strstr(out, line) && strstr(out, ": [photo] " CAPTION " (GPS "), "%s", out);
    cr_assert_eq(unread_of("bob", room), 0);
    cr_assert_eq(KZ("alice", "--json", "readers", room, pos_s), 0, "%s", out);
    cJSON *r = cJSON_Parse(out);
    cJSON *read = cJSON_GetObjectItem(r, "read");
    cr_assert_eq(cJSON_GetArraySize(read), 1, "%s", out);
    cr_assert_str_eq(pcli_jstr(cJSON_GetArrayItem(read, 0), "login"), "bob");
    cJSON_Delete(r);
    /* Its sender sees 既読 beside it, as beside a message. */
    cr_assert_eq(KZ("alice", "history", room), 0, "%s", out);
    cr_assert(strstr(out, ")  既読 1"), "%s", out);
}

/* A member's new phone asks for the keys of photos sent before it existed; the sender is not
 * running a photo command, only following the room: that answers it. */
Test(photo, a_new_phone_gets_older_photo_keys_from_a_running_tail)
{
    const char *users[] = {"alice", "bob"};
    char room[64], jpg[200], env_dir[200], env_srv[100];
    users_and_room(users, 2, room);
    snprintf(jpg, sizeof jpg, "%s/in.jpg", base);
    make_jpeg(jpg, false);
    long long pos = send_photo("alice", room, jpg);

    snprintf(env_dir, sizeof env_dir, "KIZUNA_CONFIG_DIR=%s/alice", base);
    snprintf(env_srv, sizeof env_srv, "KIZUNA_SERVER=%s", d.url);
    const char *env[] = {env_dir, env_srv, NULL};
    const char *argv[] = {KIZUNA_PATH, "tail", "写真班", NULL};
    int fd;
    pid_t tail = spawn_reader(argv, env, &fd);
    static char buf[65536];
    size_t len = 0;
    cr_assert_eq(KZ("bob", "send", room, "tail は動いている"), 0, "%s", out);
    cr_assert(read_until(fd, buf, sizeof buf, &len, "tail は動いている", 10000), "%s", buf);

    cr_assert_eq(KZD("bob-new-phone", "bob", "login", "bob"), 0, "%s", out);
    approve("bob", "bob-new-phone");
    cr_assert_eq(KZD("bob-new-phone", "bob", "history", room), 0, "%s", out);
    char hint[100];
    snprintf(hint, sizeof hint, "kizuna photo get 写真班 %lld)", pos);
    cr_assert(strstr(out, "[photo, waiting for its key from alice's device") && strstr(out, hint),
              "the reason it cannot open it, and whose device the key comes from: %s", out);
    bool opened = false;
    for (int i = 0; i < 50 && !opened; i++) {
        usleep(200 * 1000);
        cr_assert_eq(KZD("bob-new-phone", "bob", "--json", "photo", "list", room), 0, "%s", out);
        opened = strstr(out, "\"state\":\"ready\"") != NULL;
    }
    cr_assert(opened, "alice's tail answered the key request: %s", out);
    cr_assert_eq(KZD("bob-new-phone", "bob", "history", room), 0, "%s", out);
    cr_assert(strstr(out, "[photo] " CAPTION), "%s", out);
    kill(tail, SIGTERM);
    waitpid(tail, NULL, 0);
    close(fd);
}

/* ---- issue 13, item 10: a pending upload keeps nothing readable on the phone ---- */

Test(photo, a_pending_upload_keeps_its_caption_gps_and_thumbnail_sealed)
{
    const char *users[] = {"alice", "bob"};
    char room[64], jpg[200], thumb[200], cmd[600];
    users_and_room(users, 2, room);
    snprintf(jpg, sizeof jpg, "%s/big.jpg", base);
    make_jpeg(jpg, true);
    cr_assert_eq(KZE("alice", "KIZUNA_TEST_CUT_AFTER_BYTES=100000", "photo", "send", room, jpg,
                     "--caption", CAPTION),
                 75, "the test hook cuts the upload: %s", out);
    /* Alice's own timeline shows it as still uploading, caption and all (opened here). */
    cr_assert_eq(KZ("alice", "history", room), 0, "%s", out);
    cr_assert(strstr(out, "[photo, still uploading: ") && strstr(out, CAPTION) &&
                  strstr(out, "kizuna photo resume"),
              "%s", out);
    /* What the phone keeps meanwhile, as it is on disk. */
    snprintf(cmd, sizeof cmd, "cp -a '%s/alice' '%s/alice-pending'", base, base);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(KZ("alice", "photo", "resume"), 0, "%s", out);
    cJSON *r = NULL;
    cr_assert_eq(KZ("bob", "--json", "photo", "list", room), 0, "%s", out);
    r = cJSON_Parse(out);
    const cJSON *p = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "photos"), 0);
    cr_assert_str_eq(pcli_jstr(p, "state"), "ready", "%s", out);
    char pos_s[32];
    snprintf(pos_s, sizeof pos_s, "%lld", (long long)cJSON_GetObjectItem(p, "pos")->valuedouble);
    cJSON_Delete(r);
    snprintf(thumb, sizeof thumb, "%s/thumb.jpg", base);
    cr_assert_eq(KZ("bob", "photo", "get", room, pos_s, "--thumb", "-o", thumb), 0, "%s", out);
    size_t tl;
    unsigned char *t = pcli_slurp(thumb, &tl);
    cr_assert(t && tl > 100);
    /* The thumbnail as the staged state would have held it: base64url, from a byte offset
     * that is a multiple of three, lines up with the encoding of the whole. */
    size_t off = tl / 6 * 3;
    char t64[64];
    sodium_bin2base64(t64, sizeof t64, t + off, 30, sodium_base64_VARIANT_URLSAFE_NO_PADDING);

    pcli_scan_reset();
    pcli_scan_add("the caption", CAPTION, strlen(CAPTION));
    pcli_scan_add("the caption's canary", "caption-canary", 14);
    pcli_scan_add("the latitude", "35.6812", 7);
    pcli_scan_add("the longitude", "139.767", 7);
    pcli_scan_add("the capture time", "2024-05-06T07:08:09", 19);
    pcli_scan_add("the file name", "big.jpg", 7);
    pcli_scan_add("the photo's bytes", t + off, 30);
    pcli_scan_add("the photo in base64", t64, strlen(t64));
    char pending[300];
    snprintf(pending, sizeof pending, "%s/alice-pending", base);
    cr_assert_eq(nftw(pending, pcli_scan_file, 16, FTW_PHYS), 0);
    cr_assert_str_eq(pcli_scan()->hits, "", "the phone kept in plaintext: %s", pcli_scan()->hits);
    free(t);
}

Test(photo, a_late_joiner_asks_for_the_key_and_is_answered)
{
    const char *users[] = {"alice", "bob", "carol", "dave", "eve"};
    char room[64], jpg[200], pos_s[32], blob[80], c_out[200], d_out[200], eve_token[128];
    users_and_room(users, 3, room); /* dave and eve exist later */
    snprintf(jpg, sizeof jpg, "%s/in.jpg", base);
    make_jpeg(jpg, false);
    long long pos = send_photo("alice", room, jpg);
    snprintf(pos_s, sizeof pos_s, "%lld", pos);
    cr_assert_eq(
        KZIN("admin", "dave" PW_SUFFIX "\n", "admin", "user", "add", "dave", "--password-stdin"),
        0);
    cr_assert_eq(
        KZIN("admin", "eve" PW_SUFFIX "\n", "admin", "user", "add", "eve", "--password-stdin"), 0);
    cr_assert_eq(KZ("dave", "login", "dave"), 0, "%s", out);
    cr_assert_eq(KZ("eve", "login", "eve"), 0, "%s", out);
    cr_assert_eq(KZ("alice", "room", "invite", room, users[3]), 0, "%s", out);

    cr_assert_eq(KZ("dave", "--json", "photo", "get", room, pos_s), 1, "%s", out);
    cr_assert(strstr(out, "waiting for key"), "%s", out);
    /* Asking again does not post a second request. */
    cr_assert_eq(KZ("dave", "--json", "photo", "list", room), 0, "%s", out);
    cr_assert(strstr(out, "waiting for key"), "%s", out);
    cr_assert_eq(KZ("carol", "--json", "history", room, "--after", "0", "--limit", "200"), 0);
    int requests = 0;
    for (const char *p = out; (p = strstr(p, "\"e2ee.key_request\"")); p++)
        requests++;
    cr_assert_eq(requests, 1, "one request: %s", out);

    /* Carol holds the key; reading the room answers the request. */
    cr_assert_eq(KZ("carol", "photo", "list", room), 0, "%s", out);
    snprintf(d_out, sizeof d_out, "%s/dave.jpg", base);
    snprintf(c_out, sizeof c_out, "%s/carol.jpg", base);
    cr_assert_eq(KZ("dave", "photo", "get", room, pos_s, "-o", d_out), 0, "%s", out);
    cr_assert_eq(KZ("carol", "photo", "get", room, pos_s, "-o", c_out), 0, "%s", out);
    size_t dl, cl;
    unsigned char *dd = pcli_slurp(d_out, &dl), *cc = pcli_slurp(c_out, &cl);
    cr_assert(dd && cc && dl == cl && memcmp(dd, cc, dl) == 0);
    free(dd);
    free(cc);

    /* Eve is no member: no room, and the blob does not exist for her. */
    cr_assert_eq(KZ("eve", "photo", "list", room), 1, "%s", out);
    cr_assert_eq(KZ("eve", "photo", "get", room, pos_s), 1, "%s", out);
    blob_of("carol", room, pos, blob);
    token_of("eve", eve_token);
    cr_assert_eq(blob_get(eve_token, blob), 404);
}

/* The staged blob and its state, as the first (cut) run left them. */
struct staged {
    char kzb[600];
    unsigned char *bytes;
    size_t len;
    struct stat sb;
    char blob[80], upload[200];
    long long offset;
};

static void find_staged(const char *user, struct staged *s)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/%s/staging", base, user);
    DIR *dd = opendir(dir);
    cr_assert_not_null(dd);
    char json[600] = "";
    for (struct dirent *e; (e = readdir(dd));) {
        size_t n = strlen(e->d_name);
        if (n > 4 && strcmp(e->d_name + n - 4, ".kzb") == 0)
            snprintf(s->kzb, sizeof s->kzb, "%s/%s", dir, e->d_name);
        if (n > 5 && strcmp(e->d_name + n - 5, ".json") == 0)
            snprintf(json, sizeof json, "%s/%s", dir, e->d_name);
    }
    closedir(dd);
    cr_assert(s->kzb[0] && json[0], "a staged blob and state");
    s->bytes = pcli_slurp(s->kzb, &s->len);
    cr_assert_eq(stat(s->kzb, &s->sb), 0);
    size_t n;
    unsigned char *text = pcli_slurp(json, &n);
    cJSON *o = cJSON_Parse((char *)text);
    snprintf(s->blob, sizeof s->blob, "%s", pcli_jstr(o, "blob"));
    snprintf(s->upload, sizeof s->upload, "%s", pcli_jstr(o, "upload"));
    s->offset = (long long)cJSON_GetObjectItem(o, "offset")->valuedouble;
    cJSON_Delete(o);
    free(text);
}

static long long head_offset(const char *user, const char *upload)
{
    char token[128], hdr[256], resp[4096], v[64];
    token_of(user, token);
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\nTus-Resumable: 1.0.0\r\n", token);
    size_t len;
    int st = http_raw(d.port, "HEAD", upload, hdr, NULL, 0, 0, resp, sizeof resp, &len);
    cr_assert_eq(st, 200, "%s", resp);
    cr_assert(http_header(resp, "Upload-Offset", v, sizeof v));
    return atoll(v);
}

/* Cuts the first send after 100 kB, optionally kills and restarts the server, and checks the
 * second run resumes the same staged bytes to a photo bob can open. */
static void resume_case(bool kill_server)
{
    const char *users[] = {"alice", "bob"};
    char room[64], jpg[200], pos_s[32], b_out[200];
    users_and_room(users, 2, room);
    snprintf(jpg, sizeof jpg, "%s/big.jpg", base);
    make_jpeg(jpg, true);
    cr_assert_eq(KZE("alice", "KIZUNA_TEST_CUT_AFTER_BYTES=100000", "photo", "send", room, jpg,
                     "--caption", CAPTION),
                 75, "the test hook cuts the upload: %s", out);
    struct staged s1 = {0}, s2 = {0};
    find_staged("alice", &s1);
    cr_assert_gt(s1.len, 280000, "a blob of several chunks (%zu bytes)", s1.len);
    cr_assert_geq(s1.offset, 100000);
    cr_assert_lt(s1.offset, (long long)s1.len);
    cr_assert_eq(head_offset("alice", s1.upload), s1.offset, "the server committed the offset");
    if (kill_server) {
        kzd_kill(&d);
        kzd_start(&d);
        cr_assert_eq(head_offset("alice", s1.upload), s1.offset, "the offset survives kill -9");
    }
    /* Cut once more, further on: same staged bytes, not encrypted again. */
    cr_assert_eq(KZE("alice", "KIZUNA_TEST_CUT_AFTER_BYTES=200000", "photo", "send", room, jpg,
                     "--caption", CAPTION),
                 75, "%s", out);
    find_staged("alice", &s2);
    cr_assert_str_eq(s1.kzb, s2.kzb);
    cr_assert_str_eq(s1.blob, s2.blob);
    cr_assert_str_eq(s1.upload, s2.upload, "resumed the same upload");
    cr_assert(s1.len == s2.len && memcmp(s1.bytes, s2.bytes, s1.len) == 0, "same bytes");
    cr_assert(s1.sb.st_mtim.tv_sec == s2.sb.st_mtim.tv_sec &&
                  s1.sb.st_mtim.tv_nsec == s2.sb.st_mtim.tv_nsec,
              "the staged blob was not rewritten");
    cr_assert_gt(s2.offset, s1.offset);

    long long pos = send_photo("alice", room, jpg);
    snprintf(pos_s, sizeof pos_s, "%lld", pos);
    char blob[80];
    blob_of("bob", room, pos, blob);
    cr_assert_str_eq(blob, s1.blob, "the message names the blob staged by the first run");
    snprintf(b_out, sizeof b_out, "%s/bob.jpg", base);
    cr_assert_eq(KZ("bob", "photo", "get", room, pos_s, "-o", b_out), 0, "%s", out);
    char staging[300];
    snprintf(staging, sizeof staging, "%s/alice/staging", base);
    DIR *sd = opendir(staging);
    for (struct dirent *e; sd && (e = readdir(sd));)
        cr_assert(e->d_name[0] == '.', "staging is empty once sent: %s", e->d_name);
    if (sd)
        closedir(sd);
    free(s1.bytes);
    free(s2.bytes);
}

Test(photo, an_upload_cut_off_resumes_without_encrypting_again)
{
    resume_case(false);
}

Test(photo, an_upload_resumes_across_a_server_kill_9)
{
    resume_case(true);
}

Test(photo, logout_wipes_the_keys)
{
    const char *users[] = {"alice"};
    char room[64], path[300];
    users_and_room(users, 1, room);
    cr_assert_eq(KZ("admin", "devices"), 0, "%s", out);
    snprintf(path, sizeof path, "%s/alice/device.json", base);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600);
    snprintf(path, sizeof path, "%s/alice", base);
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0700);
    cr_assert_eq(KZ("alice", "verify", "admin"), 0, "%s", out);
    cr_assert(strstr(out, "safety number"), "%s", out);
    cr_assert_eq(KZ("alice", "logout"), 0, "%s", out);
    snprintf(path, sizeof path, "%s/alice/device.json", base);
    cr_assert_neq(stat(path, &sb), 0, "the device keys are gone");
}

Test(photo, a_room_that_shares_history_only_from_join_keeps_the_past_closed)
{
    const char *users[] = {"alice", "carol"};
    char room[64], jpg[200], pos_s[32], pos2_s[32], blob[80], dave_token[128], d_out[200];
    users_and_room(users, 2, room); /* a shared room, to have the users */
    cr_assert_eq(KZ("alice", "--json", "room", "create", "人事", "--members", "carol", "--history",
                    "joined"),
                 0, "%s", out);
    cJSON *r = cJSON_Parse(out);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "room"), "history")->valuestring,
                     "joined");
    reply_room(r, room, sizeof room);
    cJSON_Delete(r);
    snprintf(jpg, sizeof jpg, "%s/in.jpg", base);
    make_jpeg(jpg, false);
    long long pos = send_photo("alice", room, jpg);
    snprintf(pos_s, sizeof pos_s, "%lld", pos);
    cr_assert_eq(
        KZIN("admin", "dave" PW_SUFFIX "\n", "admin", "user", "add", "dave", "--password-stdin"),
        0);
    cr_assert_eq(KZ("dave", "login", "dave"), 0, "%s", out);
    cr_assert_eq(KZ("alice", "room", "invite", room, "dave"), 0, "%s", out);

    /* Dave asks; carol's device refuses, saying why; the blob is closed to him as well. */
    cr_assert_eq(KZ("dave", "photo", "get", room, pos_s), 1, "%s", out);
    cr_assert_eq(KZ("carol", "photo", "list", room), 0, "%s", out);
    cr_assert_eq(KZ("dave", "--json", "photo", "list", room), 0, "%s", out);
    cr_assert(strstr(out, "withheld") && strstr(out, "only from when one joined"), "%s", out);
    blob_of("carol", room, pos, blob);
    token_of("dave", dave_token);
    cr_assert_eq(blob_get(dave_token, blob), 404, "a blob from before he joined");

    /* What is sent after he joined is his to read. */
    long long pos2 = send_photo("alice", room, jpg);
    snprintf(pos2_s, sizeof pos2_s, "%lld", pos2);
    snprintf(d_out, sizeof d_out, "%s/dave2.jpg", base);
    cr_assert_eq(KZ("dave", "photo", "get", room, pos2_s, "-o", d_out), 0, "%s", out);
}

Test(photo, a_download_resumes_from_what_it_has_and_a_damaged_part_is_caught)
{
    /* Room ids are base64url and may begin with '-': that is a room, not an option (exit 1,
     * no such room; it was a usage error, 2). */
    cr_assert_eq(KZ("admin", "login", "admin"), 0, "%s", out);
    cr_assert_eq(KZ("admin", "photo", "send", "-Xno-such-room", "/dev/null"), 1, "%s", out);

    const char *users[] = {"alice", "bob", "carol"};
    char room[64], jpg[200], pos_s[32], blob[80], part[400], b_out[200], c_out[200];
    users_and_room(users, 3, room);
    snprintf(jpg, sizeof jpg, "%s/in.jpg", base);
    make_jpeg(jpg, true);
    long long pos = send_photo("alice", room, jpg);
    snprintf(pos_s, sizeof pos_s, "%lld", pos);
    blob_of("bob", room, pos, blob);
    snprintf(c_out, sizeof c_out, "%s/carol.jpg", base);
    cr_assert_eq(KZ("carol", "photo", "get", room, pos_s, "-o", c_out), 0, "%s", out);

    /* A download cut part-way left 4 KiB in bob's staging, but damaged ones: bob's CLI asks
     * the server only for the rest (Range), so the whole fails its hash check, is thrown
     * away, and nothing is decrypted; the next try downloads it whole. */
    snprintf(part, sizeof part, "%s/bob/staging", base);
    mkdir(part, 0700);
    snprintf(part, sizeof part, "%s/bob/staging/dl-%s.kzb", base, blob);
    FILE *f = fopen(part, "wb");
    cr_assert_not_null(f);
    for (int i = 0; i < 4096; i++)
        fputc(i & 0xff, f);
    fclose(f);
    snprintf(b_out, sizeof b_out, "%s/bob.jpg", base);
    cr_assert_eq(KZ("bob", "photo", "get", room, pos_s, "-o", b_out), 1, "%s", out);
    struct stat sb;
    cr_assert_neq(stat(b_out, &sb), 0, "nothing decrypted from a damaged blob");
    cr_assert_neq(stat(part, &sb), 0, "the damaged part is thrown away");
    cr_assert_eq(KZ("bob", "photo", "get", room, pos_s, "-o", b_out), 0, "%s", out);

    /* A correct part: the rest comes by Range and the result is the same photo. */
    char srcblob[400];
    snprintf(srcblob, sizeof srcblob, "%s/blobs/%.2s/%s", d.dir, blob, blob);
    size_t bl;
    unsigned char *bytes = pcli_slurp(srcblob, &bl);
    cr_assert_not_null(bytes);
    f = fopen(part, "wb");
    cr_assert_eq(fwrite(bytes, 1, bl / 2, f), bl / 2);
    fclose(f);
    free(bytes);
    unlink(b_out);
    cr_assert_eq(KZ("bob", "photo", "get", room, pos_s, "-o", b_out), 0, "%s", out);
    size_t x, y;
    unsigned char *bb = pcli_slurp(b_out, &x), *cc = pcli_slurp(c_out, &y);
    cr_assert(bb && cc && x == y && memcmp(bb, cc, x) == 0, "resumed download, same photo");
    free(bb);
    free(cc);
    cr_assert_neq(stat(part, &sb), 0, "the ciphertext goes once decrypted");
}
