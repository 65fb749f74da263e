/* test_trust.c - what a phone keeps of its keys (issue 14, item 7), with the real kizuna
 * against the real kizunad: logging out while the server cannot be reached leaves no key on
 * disk, and a key file that is rewritten leaves no old copy of its bytes. (The attacks of a
 * server on whose devices get keys join this file with items 1, 2 and 6.) */
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

#define PW_SUFFIX "-password-1" /* each user's password is LOGIN-password-1 */

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
    char env_dir[200], env_srv[100], env_pw[200];
    snprintf(env_dir, sizeof env_dir, "KIZUNA_CONFIG_DIR=%s/%s", base, dir);
    snprintf(env_srv, sizeof env_srv, "KIZUNA_SERVER=http://127.0.0.1:%d", server_port);
    snprintf(env_pw, sizeof env_pw, "KIZUNA_PASSWORD=%s%s",
             strcmp(user, "admin") == 0 ? TEST_ADMIN_PASSWORD : user,
             strcmp(user, "admin") == 0 ? "" : PW_SUFFIX);
    const char *env[] = {env_dir, env_srv, env_pw, "KIZUNA_RETRY_MAX_S=5", NULL};
    const char *argv[24] = {"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>&1", KIZUNA_PATH};
    for (int i = 4; i < 23 && (argv[i] = va_arg(ap, const char *)); i++)
        ;
    argv[23] = NULL;
    return run_capture(argv, env, in, out, sizeof out);
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

/* The JSON document of a command's --json output in out (the last line that parses: warnings
 * on stderr come before it). The caller deletes it. */
static cJSON *json_of_out(void)
{
    cJSON *found = NULL;
    for (char *line = out; *line;) {
        char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        if (*line == '{') {
            cJSON *o = cJSON_ParseWithLength(line, n);
            if (o) {
                cJSON_Delete(found);
                found = o;
            }
        }
        line += n + (end != NULL);
    }
    cr_assert_not_null(found, "no JSON in: %s", out);
    return found;
}

static char *slurp(const char *path, size_t *len)
{
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    static char buf[1 << 16];
    *len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[*len] = '\0';
    char *copy = malloc(*len + 1);
    memcpy(copy, buf, *len + 1);
    return copy;
}

/* A JSON file of a client's config dir (base/dir/name); the caller deletes it. */
static cJSON *config_json(const char *dir, const char *name)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s/%s", base, dir, name);
    size_t n;
    char *text = slurp(path, &n);
    cr_assert_not_null(text, "%s", path);
    cJSON *o = cJSON_Parse(text);
    free(text);
    cr_assert_not_null(o, "%s", path);
    return o;
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
    cJSON *r = json_of_out();
    snprintf(room_id, 64, "%s", jstr(cJSON_GetObjectItem(r, "room"), "room"));
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
    cJSON *r = json_of_out();
    long long pos = (long long)cJSON_GetObjectItem(r, "pos")->valuedouble;
    cJSON_Delete(r);
    return pos;
}

/* The state ("ready", "waiting", "withheld", ...) of the photo at pos as the device with config
 * dir base/dir lists it. */
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
    cJSON *sess = config_json("alice", "session.json");
    char token[128];
    snprintf(token, sizeof token, "%s", jstr(sess, "token"));
    cJSON_Delete(sess);

    cr_assert_eq(kzd_stop(&d), 0);
    cr_assert_eq(KZ("alice", "logout"), 3, "the server cannot be reached: %s", out);
    files_of("alice", files, sizeof files);
    cr_assert_str_eq(files, "./session.json|", "only the session is left to retry: %s", files);
    sess = config_json("alice", "session.json");
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
    char *before = slurp(path, &n);
    cr_assert(before && strstr(before, "\"key\""), "the room's key file holds keys: %s", before);
    free(before);
    /* A second name for the file's bytes as they are: what a replaced file leaves on disk. */
    cr_assert_eq(link(path, link_path), 0, "%s", strerror(errno));
    send_photo("alice", "alice", room, "second"); /* rewrites the key file */
    char *now = slurp(path, &n);
    cr_assert(now && strstr(now, "\"key\""));
    free(now);
    char *old = slurp(link_path, &n);
    cr_assert_not_null(old);
    cr_assert_null(strstr(old, "\"key\""), "the replaced key file's bytes are still readable: %s",
                   old);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(old[i], 0, "overwritten with zeros");
    free(old);
}
