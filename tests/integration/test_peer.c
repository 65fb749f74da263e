/* test_peer.c - federation's server identity and peers (issue 17, item 1) against the real
 * kizunad and CLI: the id is stored at init (--server-id, the config's server_id, else derived
 * from the key), serve refuses a config that names another, a database made before ids were
 * stored adopts the one it used (once, logged and audited), `kizunad fingerprint` prints what
 * admins compare, and `kizuna admin peer add|list|remove` pin peers: a fingerprint that does not
 * match the key is refused, every bad input is refused with its code and changes nothing, both
 * changes are audited, and peers travel with a backup. */
#include <criterion/criterion.h>
#include <regex.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fed.h"
#include "harness.h"

static struct kzd d;
static char cfgdir[400];

static void setup(void)
{
    cr_assert_geq(sodium_init(), 0);
}

static void teardown(void)
{
    kzd_teardown(&d);
}

TestSuite(peer, .init = setup, .fini = teardown, .timeout = 90);

/* Runs kizunad with the arguments (NULL-terminated), stderr with stdout; the exit status. */
static int kizunad(char *out, size_t n, ...)
{
    char cmd[4096];
    size_t len = (size_t)snprintf(cmd, sizeof cmd, "exec '%s'", KIZUNAD_PATH);
    va_list ap;
    va_start(ap, n);
    for (const char *a; (a = va_arg(ap, const char *));)
        len += (size_t)snprintf(cmd + len, sizeof cmd - len, " '%s'", a);
    va_end(ap);
    snprintf(cmd + len, sizeof cmd - len, " 2>&1");
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    const char *env[] = {"KIZUNA_ADMIN_PASSWORD=" TEST_ADMIN_PASSWORD, NULL};
    return run_capture(argv, env, NULL, out, n);
}
#define KZD(...) kizunad(out, sizeof out, __VA_ARGS__, (const char *)NULL)

/* Runs the CLI as admin (its own config dir) against d; the exit status. */
static int kizuna(char *out, size_t n, ...)
{
    char env_dir[500], env_srv[100];
    snprintf(env_dir, sizeof env_dir, "KIZUNA_CONFIG_DIR=%s", cfgdir);
    snprintf(env_srv, sizeof env_srv, "KIZUNA_SERVER=%s", d.url);
    const char *env[] = {env_dir, env_srv, "KIZUNA_PASSWORD=" TEST_ADMIN_PASSWORD, NULL};
    const char *argv[24] = {KIZUNA_PATH};
    va_list ap;
    va_start(ap, n);
    for (int i = 1; i < 23 && (argv[i] = va_arg(ap, const char *)); i++)
        ;
    va_end(ap);
    argv[23] = NULL;
    return run_capture(argv, env, NULL, out, n);
}
#define KZ(...) kizuna(out, sizeof out, __VA_ARGS__, (const char *)NULL)

/* What `kizunad fingerprint` printed. */
struct ident {
    char id[64], key[64], fp[80];
    uint8_t pk[32];
};

static void line_value(const char *out, const char *label, char *dst, size_t n)
{
    const char *p = strstr(out, label);
    cr_assert_not_null(p, "no '%s' in: %s", label, out);
    p += strlen(label);
    p += strspn(p, " ");
    snprintf(dst, n, "%.*s", (int)strcspn(p, " \n("), p);
}

/* Runs `kizunad fingerprint --data dir`, checks its format and that the digits are those of the
 * id and key it printed. */
static void fingerprint_of(const char *dir, struct ident *id)
{
    char out[4096];
    cr_assert_eq(KZD("fingerprint", "--data", dir), 0, "%s", out);
    line_value(out, "server id:", id->id, sizeof id->id);
    line_value(out, "public key:", id->key, sizeof id->key);
    const char *p = strstr(out, "fingerprint: ");
    cr_assert_not_null(p, "%s", out);
    p += strlen("fingerprint: ");
    snprintf(id->fp, sizeof id->fp, "%.*s", (int)strcspn(p, "\n"), p);
    regex_t re;
    cr_assert_eq(regcomp(&re, "^[0-9]{5}( [0-9]{5}){11}$", REG_EXTENDED | REG_NOSUB), 0);
    cr_assert_eq(regexec(&re, id->fp, 0, NULL, 0), 0, "12 groups of 5 digits: '%s'", id->fp);
    regfree(&re);
    char why[160];
    cr_assert(fed_key_parse(id->key, id->pk, why, sizeof why), "%s: %s", id->key, why);
    char want[FED_FINGERPRINT_LEN + 1];
    cr_assert_eq(fed_fingerprint(id->id, id->pk, want), 0);
    cr_assert_str_eq(id->fp, want);
    cr_assert(strstr(out, "kizuna admin peer add"), "says what the other admin runs: %s", out);
}

/* The server's own id as peer.list shows it. */
static void self_id(char *out, size_t n)
{
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    cr_assert(ws_login(&w, "admin", TEST_ADMIN_PASSWORD, NULL));
    cJSON *r = ws_callf(&w, "\"op\":\"peer.list\"");
    cr_assert_str_eq(reply_code(r), "ok");
    const cJSON *s = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "self"), "server");
    cr_assert(cJSON_IsString(s));
    snprintf(out, n, "%s", s->valuestring);
    cJSON_Delete(r);
    ws_close_fd(&w);
}

/* Makes d's database look like one from before ids were stored: schema 13, no identity. */
static void make_legacy(void)
{
    char path[400];
    snprintf(path, sizeof path, "%s/kizuna.db", d.dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "DROP TABLE server_identity; DROP TABLE peers;"
                              " PRAGMA user_version = 13;",
                              NULL, NULL, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
}

static int count_in_log(const char *needle)
{
    char path[400];
    snprintf(path, sizeof path, "%s/stderr.log", d.dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    int count = 0;
    for (const char *p = text; (p = strstr(p, needle)); p++)
        count++;
    return count;
}

Test(peer, init_stores_the_id_and_serve_refuses_another)
{
    char out[4096], dir2[400], dir3[400];
    kzd_setup_with(&d, "\"server_id\":\"jp-38-ehime-pref\"");
    /* The config named the id at init; serve with the same config starts (kzd_setup did). */
    struct ident me;
    fingerprint_of(d.dir, &me);
    cr_assert_str_eq(me.id, "jp-38-ehime-pref");
    char id[64];
    self_id(id, sizeof id);
    cr_assert_str_eq(id, "jp-38-ehime-pref");

    /* --server-id wins over the config; again with another id changes nothing. */
    snprintf(dir2, sizeof dir2, "%s/second", d.dir);
    cr_assert_eq(
        KZD("init", "--data", dir2, "--config", d.config, "--server-id", "jp-38201-matsuyama"), 0,
        "%s", out);
    cr_assert(strstr(out, "server id: jp-38201-matsuyama"), "%s", out);
    cr_assert_eq(KZD("init", "--data", dir2, "--config", d.config, "--server-id", "jp-other"), 1,
                 "%s", out);
    cr_assert(strstr(out, "already initialised as server jp-38201-matsuyama"), "%s", out);
    cr_assert_eq(
        KZD("init", "--data", dir2, "--config", d.config, "--server-id", "jp-38201-matsuyama"), 0,
        "%s", out);
    cr_assert(strstr(out, "nothing changed"), "%s", out);
    struct ident two;
    fingerprint_of(dir2, &two);
    cr_assert_str_eq(two.id, "jp-38201-matsuyama");

    /* Bad ids are refused before anything is made. */
    snprintf(dir3, sizeof dir3, "%s/third", d.dir);
    const char *bad[] = {"Jp-38", "jp_38", "-jp", "jp-", "ab", "jp.38", "自治体"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(KZD("init", "--data", dir3, "--config", d.config, "--server-id", bad[i]), 2,
                     "%s: %s", bad[i], out);
        cr_assert(strstr(out, "is not a server id"), "%s", out);
    }
    /* No id anywhere: derived from the key, and valid. */
    cr_assert_eq(KZD("init", "--data", dir3, "--config", d.config, "--set", "server_id="), 0, "%s",
                 out);
    struct ident three;
    fingerprint_of(dir3, &three);
    char derived[32];
    fed_server_id_derive(three.pk, derived, sizeof derived);
    cr_assert_str_eq(three.id, derived);
    cr_assert(fed_server_id_valid(three.id), "%s", three.id);
    cr_assert(strstr(out, three.id), "init printed the derived id: %s", out);

    /* Editing the config to another id used to start new logs silently: now serve refuses. */
    cr_assert_eq(kzd_stop(&d), 0);
    cr_assert_eq(KZD("serve", "--data", d.dir, "--config", d.config, "--listen", "127.0.0.1:0",
                     "--set", "server_id=jp-38-ehime"),
                 1, "%s", out);
    cr_assert(strstr(out, "the config names server_id 'jp-38-ehime'"), "%s", out);
    cr_assert(strstr(out, "belongs to server 'jp-38-ehime-pref'"), "%s", out);
    /* An empty server_id means the stored one. */
    kzd_start(&d);
    self_id(id, sizeof id);
    cr_assert_str_eq(id, "jp-38-ehime-pref");
}

Test(peer, an_old_database_adopts_its_derived_id_once)
{
    char out[4096];
    kzd_setup(&d);
    cr_assert_eq(kzd_stop(&d), 0);
    make_legacy();
    /* Before the first start, fingerprint shows the id it will keep. */
    struct ident me;
    fingerprint_of(d.dir, &me);
    char legacy[64];
    fed_server_id_legacy(me.pk, "", legacy, sizeof legacy);
    cr_assert_str_eq(me.id, legacy);
    cr_assert_eq(strncmp(legacy, "kz-", 3), 0);
    cr_assert_eq(strncmp(legacy + 3, me.key, 12), 0, "kizunad 0.1's id: kz- and the key");
    kzd_start(&d);
    cr_assert_eq(count_in_log("server_id_adopted"), 1);
    char id[64];
    self_id(id, sizeof id);
    cr_assert_str_eq(id, legacy);
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    cr_assert(ws_login(&w, "admin", TEST_ADMIN_PASSWORD, NULL));
    cr_assert(ws_audit_has(&w, "server.id_adopt", legacy));
    ws_close_fd(&w);
    /* Once: a restart finds it stored. */
    cr_assert_eq(kzd_stop(&d), 0);
    kzd_start(&d);
    cr_assert_eq(count_in_log("server_id_adopted"), 1);
    cr_assert_eq(kzd_stop(&d), 0);
    cr_assert_eq(KZD("serve", "--data", d.dir, "--config", d.config, "--listen", "127.0.0.1:0",
                     "--set", "server_id=jp-new"),
                 1, "%s", out);
    cr_assert(strstr(out, legacy), "%s", out);
    kzd_start(&d);
}

Test(peer, an_old_database_adopts_its_configured_id)
{
    char out[4096];
    kzd_setup(&d);
    cr_assert_eq(kzd_stop(&d), 0);
    make_legacy();
    /* A name kizunad 0.1 accepted but a new server could not take: kept as it is. */
    cr_assert_eq(KZD("serve", "--data", d.dir, "--config", d.config, "--listen", "127.0.0.1:0",
                     "--set", "server_id=Town_A", "--set", "listen=999.0.0.1:1"),
                 1, "%s", out);
    cr_assert(strstr(out, "server_id_adopted"), "the id is adopted before listening: %s", out);
    cr_assert(strstr(out, "server_id=Town_A"), "%s", out);
    kzd_start(&d);
    char id[64];
    self_id(id, sizeof id);
    cr_assert_str_eq(id, "Town_A", "an empty config now means the adopted id");
}

/* The peer's identity: a second data directory, as its admin would read it out. */
static void other_server(const char *name, const char *server_id, struct ident *id)
{
    char out[4096], dir[400];
    snprintf(dir, sizeof dir, "%s/%s", d.dir, name);
    cr_assert_eq(KZD("init", "--data", dir, "--config", d.config, "--server-id", server_id), 0,
                 "%s", out);
    fingerprint_of(dir, id);
}

static cJSON *peer_list(void)
{
    char out[16384];
    cr_assert_eq(KZ("--json", "admin", "peer", "list"), 0, "%s", out);
    cJSON *r = cJSON_Parse(out);
    cr_assert_not_null(r, "%s", out);
    return r;
}

static int peer_count(void)
{
    cJSON *r = peer_list();
    int n = cJSON_GetArraySize(cJSON_GetObjectItem(r, "peers"));
    cJSON_Delete(r);
    return n;
}

/* The code and message of a --json refusal. */
static void refused(const char *out, const char *code, const char *words)
{
    cJSON *r = cJSON_Parse(out);
    cr_assert_not_null(r, "%s", out);
    cr_assert_str_eq(reply_code(r), code, "%s", out);
    const cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "message");
    cr_assert(cJSON_IsString(m) && strstr(m->valuestring, words), "want '%s': %s", words, out);
    cJSON_Delete(r);
}

Test(peer, peers_are_added_listed_and_removed_with_the_cli)
{
    char out[16384];
    kzd_setup_with(&d, "\"server_id\":\"jp-38-ehime-pref\"");
    snprintf(cfgdir, sizeof cfgdir, "%s/cli", d.dir);
    struct ident me, peer, other;
    fingerprint_of(d.dir, &me);
    other_server("matsuyama", "jp-38201-matsuyama", &peer);
    other_server("imabari", "jp-38202-imabari", &other);
    cr_assert_eq(KZ("login", "admin"), 0, "%s", out);
    cr_assert_eq(peer_count(), 0);

    /* The fingerprint is required, and must be the key's. */
    cr_assert_eq(
        KZ("admin", "peer", "add", peer.id, "--key", peer.key, "--address", "10.38.201.5:8443"), 2,
        "%s", out);
    cr_assert_eq(KZ("--json", "admin", "peer", "add", peer.id, "--key", peer.key, "--address",
                    "10.38.201.5:8443", "--fingerprint", other.fp),
                 1, "%s", out);
    refused(out, "bad_request", "does not match");
    cr_assert_eq(KZ("--json", "admin", "peer", "add", peer.id, "--key", other.key, "--address",
                    "10.38.201.5:8443", "--fingerprint", peer.fp),
                 1, "a mistyped key: %s", out);
    refused(out, "bad_request", "does not match");
    cr_assert_eq(peer_count(), 0, "nothing was added");

    unsigned char h[32];
    crypto_hash_sha256(h, (const unsigned char *)"matsuyama spki", 14);
    char pin[64];
    sodium_bin2base64(pin, sizeof pin, h, 32, sodium_base64_VARIANT_ORIGINAL);
    cr_assert_eq(KZ("--json", "admin", "peer", "add", peer.id, "--key", peer.key, "--address",
                    "10.38.201.5:8443", "--address", "kizuna.city.matsuyama.lg.jp:8443",
                    "--tls-pin", pin, "--name", "松山市", "--fingerprint", peer.fp),
                 0, "%s", out);
    cJSON *r = cJSON_Parse(out);
    cr_assert_str_eq(reply_code(r), "ok", "%s", out);
    cJSON *p = cJSON_GetObjectItem(r, "peer");
    cr_assert_str_eq(cJSON_GetObjectItem(p, "server")->valuestring, peer.id);
    cr_assert_str_eq(cJSON_GetObjectItem(p, "key")->valuestring, peer.key);
    cr_assert_str_eq(cJSON_GetObjectItem(p, "fingerprint")->valuestring, peer.fp);
    cr_assert_str_eq(cJSON_GetObjectItem(p, "name")->valuestring, "松山市");
    cr_assert_str_eq(cJSON_GetObjectItem(p, "tls_pin")->valuestring, pin);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(p, "addresses")), 2);
    cJSON_Delete(r);
    /* Digits as typed from the phone: dashes instead of spaces. */
    char dashed[80];
    snprintf(dashed, sizeof dashed, "%s", other.fp);
    for (char *c = dashed; *c; c++)
        *c = *c == ' ' ? '-' : *c;
    cr_assert_eq(KZ("admin", "peer", "add", other.id, "--key", other.key, "--address",
                    "[2001:db8::38:202]:8443", "--fingerprint", dashed),
                 0, "%s", out);
    cr_assert(strstr(out, "the fingerprint matches"), "%s", out);

    /* Every bad input: its code, its words, and nothing changed. */
    char own_key_fp[FED_FINGERPRINT_LEN + 1], fresh_fp[FED_FINGERPRINT_LEN + 1];
    cr_assert_eq(fed_fingerprint("jp-38203-uwajima", me.pk, own_key_fp), 0);
    cr_assert_eq(fed_fingerprint("jp-38203-uwajima", peer.pk, fresh_fp), 0);
    char short_key[64];
    snprintf(short_key, sizeof short_key, "%.40s", peer.key);
    struct bad {
        const char *args[16];
        const char *code, *words;
    } bad[] = {
        {{"Jp_38", "--key", peer.key, "--address", "a.b:1", "--fingerprint", peer.fp},
         "bad_request",
         "is not a server id"},
        {{"jp-38203-uwajima", "--key", short_key, "--address", "a.b:1", "--fingerprint", fresh_fp},
         "bad_request",
         "43 characters of base64url"},
        {{"jp-38203-uwajima", "--key", "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", "--address",
          "a.b:1", "--fingerprint", fresh_fp},
         "bad_request",
         "43 characters of base64url"},
        {{"jp-38203-uwajima", "--key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "--address",
          "a.b:1", "--fingerprint", fresh_fp},
         "bad_request",
         "not a valid Ed25519"},
        {{"jp-38203-uwajima", "--key", peer.key, "--address", "10.0.0.9", "--fingerprint",
          fresh_fp},
         "bad_request",
         "HOST:PORT"},
        {{"jp-38203-uwajima", "--key", peer.key, "--address", "10.0.0.9:70000", "--fingerprint",
          fresh_fp},
         "bad_request",
         "HOST:PORT"},
        {{"jp-38203-uwajima", "--key", peer.key, "--address", "a.b:1", "--address", "a.b:1",
          "--fingerprint", fresh_fp},
         "bad_request",
         "given twice"},
        {{"jp-38203-uwajima", "--key", peer.key, "--address", "a.b:1", "--address", "a.b:2",
          "--address", "a.b:3", "--address", "a.b:4", "--address", "a.b:5"},
         "too_large",
         "a peer may have at most 4 addresses"},
        {{"jp-38203-uwajima", "--key", peer.key, "--address", "a.b:1", "--tls-pin", "sha256//x",
          "--fingerprint", fresh_fp},
         "bad_request",
         "TLS pin"},
        {{"jp-38203-uwajima", "--key", peer.key, "--address", "a.b:1", "--fingerprint", "12345"},
         "bad_request",
         "60 digits"},
        {{"jp-38203-uwajima", "--key", peer.key, "--address", "a.b:1", "--name", "a\tb",
          "--fingerprint", fresh_fp},
         "bad_request",
         "control characters"},
        {{me.id, "--key", me.key, "--address", "a.b:1", "--fingerprint", me.fp},
         "conflict",
         "this server's own id"},
        {{"jp-38203-uwajima", "--key", me.key, "--address", "a.b:1", "--fingerprint", own_key_fp},
         "conflict",
         "this server's own key"},
        {{peer.id, "--key", peer.key, "--address", "a.b:1", "--fingerprint", peer.fp},
         "conflict",
         "is already a peer"},
        {{"jp-38203-uwajima", "--key", peer.key, "--address", "a.b:1", "--fingerprint", fresh_fp},
         "conflict",
         "already pinned for peer jp-38201-matsuyama"},
    };
    /* The too-many-addresses row needs its fingerprint after the addresses. */
    bad[7].args[13] = "--fingerprint";
    bad[7].args[14] = fresh_fp;
    cJSON *before = peer_list();
    char *before_text = cJSON_PrintUnformatted(cJSON_GetObjectItem(before, "peers"));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *const *a = bad[i].args;
        int rc = KZ("--json", "admin", "peer", "add", a[0], a[1], a[2], a[3], a[4], a[5], a[6],
                    a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]);
        cr_assert_eq(rc, 1, "case %zu: %s", i, out);
        refused(out, bad[i].code, bad[i].words);
    }
    cJSON *after = peer_list();
    char *after_text = cJSON_PrintUnformatted(cJSON_GetObjectItem(after, "peers"));
    cr_assert_str_eq(after_text, before_text, "no refusal changed the peers");
    cJSON_free(before_text);
    cJSON_free(after_text);
    cJSON_Delete(before);
    cJSON_Delete(after);

    /* The list, in id order, with this server's own fingerprint to read out. */
    r = peer_list();
    cr_assert_str_eq(
        cJSON_GetObjectItem(cJSON_GetObjectItem(r, "self"), "fingerprint")->valuestring, me.fp);
    cJSON *peers = cJSON_GetObjectItem(r, "peers");
    cr_assert_eq(cJSON_GetArraySize(peers), 2);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(peers, 0), "server")->valuestring,
                     "jp-38201-matsuyama");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(peers, 1), "server")->valuestring,
                     "jp-38202-imabari");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(peers, 1), "tls_pin")));
    cJSON_Delete(r);
    cr_assert_eq(KZ("admin", "peer", "list"), 0, "%s", out);
    cr_assert(strstr(out, "jp-38201-matsuyama (松山市)") && strstr(out, peer.fp) &&
                  strstr(out, me.fp),
              "%s", out);

    /* Removing: audited, gone, and a second time not_found. */
    cr_assert_eq(KZ("admin", "peer", "remove", "jp-38202-imabari"), 0, "%s", out);
    cr_assert(strstr(out, "removed"), "%s", out);
    cr_assert_eq(KZ("--json", "admin", "peer", "remove", "jp-38202-imabari"), 1, "%s", out);
    refused(out, "not_found", "is not a peer");
    cr_assert_eq(peer_count(), 1);

    struct ws w;
    cr_assert(ws_open(&w, d.port));
    cr_assert(ws_login(&w, "admin", TEST_ADMIN_PASSWORD, NULL));
    cr_assert(ws_audit_has(&w, "peer.add", "peer:jp-38201-matsuyama"));
    cr_assert(ws_audit_has(&w, "peer.add", "peer:jp-38202-imabari"));
    cr_assert(ws_audit_has(&w, "peer.remove", "peer:jp-38202-imabari"));
    cr_assert_not(ws_audit_has(&w, "peer.add", "peer:jp-38203-uwajima"), "refusals add nothing");
    cJSON *a = ws_callf(&w, "\"op\":\"audit.list\",\"action\":\"peer.add\",\"target\":"
                            "\"peer:jp-38201-matsuyama\"");
    cJSON *details =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(a, "entries"), 0), "details");
    cr_assert_str_eq(cJSON_GetObjectItem(details, "key")->valuestring, peer.key);
    cr_assert_str_eq(cJSON_GetObjectItem(details, "fingerprint")->valuestring, peer.fp);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(details, "addresses")), 2);
    cJSON_Delete(a);
    ws_close_fd(&w);
}

Test(peer, peers_travel_with_a_backup)
{
    char out[8192];
    kzd_setup_with(&d, "\"server_id\":\"jp-38-ehime-pref\"");
    snprintf(cfgdir, sizeof cfgdir, "%s/cli", d.dir);
    struct ident peer;
    other_server("matsuyama", "jp-38201-matsuyama", &peer);
    cr_assert_eq(KZ("login", "admin"), 0, "%s", out);
    cr_assert_eq(KZ("admin", "peer", "add", peer.id, "--key", peer.key, "--address",
                    "10.38.201.5:8443", "--fingerprint", peer.fp, "--name", "松山市"),
                 0, "%s", out);
    char bdir[400], ndir[256];
    snprintf(bdir, sizeof bdir, "%s/backup", d.dir);
    snprintf(ndir, sizeof ndir, "%.200s/restored", d.dir);
    cr_assert_eq(KZD("backup", "--data", d.dir, bdir), 0, "%s", out);
    cr_assert_eq(KZD("restore", bdir, "--data", ndir), 0, "%s", out);
    cr_assert_eq(kzd_stop(&d), 0);
    struct kzd n = {0};
    snprintf(n.dir, sizeof n.dir, "%s", ndir);
    snprintf(n.config, sizeof n.config, "%s", d.config);
    kzd_start(&n);
    struct ws w;
    cr_assert(ws_open(&w, n.port));
    cr_assert(ws_login(&w, "admin", TEST_ADMIN_PASSWORD, NULL));
    cJSON *r = ws_callf(&w, "\"op\":\"peer.list\"");
    cr_assert_str_eq(reply_code(r), "ok");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "self"), "server")->valuestring,
                     "jp-38-ehime-pref", "the restored server keeps its id");
    cJSON *p = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "peers"), 0);
    cr_assert_not_null(p);
    cr_assert_str_eq(cJSON_GetObjectItem(p, "server")->valuestring, peer.id);
    cr_assert_str_eq(cJSON_GetObjectItem(p, "key")->valuestring, peer.key);
    cr_assert_str_eq(cJSON_GetObjectItem(p, "name")->valuestring, "松山市");
    cJSON_Delete(r);
    cr_assert(ws_audit_has(&w, "peer.add", "peer:jp-38201-matsuyama"), "the audit came too");
    ws_close_fd(&w);
    cr_assert_eq(kzd_stop(&n), 0, "the restored server stops cleanly");
}

/* Issue 17, item 9: a peer's replication in peer.list (nothing yet; then what it lacks of a room
 * shared with it while no link is up: federation is off here) and the counters since the start;
 * `kizuna room servers` on a shared room (its authority, the peer by its name, who has
 * acknowledged a message: this server alone) and on a local one, and the same with --json. */
Test(peer, replication_state_and_where_a_room_lives)
{
    char out[16384];
    kzd_setup_with(&d, "\"server_id\":\"jp-38-ehime-pref\"");
    snprintf(cfgdir, sizeof cfgdir, "%s/cli", d.dir);
    struct ident peer;
    other_server("matsuyama", "jp-38201-matsuyama", &peer);
    cr_assert_eq(KZ("login", "admin"), 0, "%s", out);
    cr_assert_eq(KZ("admin", "peer", "add", peer.id, "--key", peer.key, "--address",
                    "10.38.201.5:8443", "--fingerprint", peer.fp, "--name", "松山市"),
                 0, "%s", out);
    const char *counters[] = {"events_sent", "events_received", "duplicates", "rejected",
                              "invalid",     "forks",           "late"};
    cJSON *r = peer_list();
    cJSON *top = cJSON_GetObjectItem(r, "replication");
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
        cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(top, counters[i])) &&
                      cJSON_GetObjectItem(top, counters[i])->valuedouble == 0,
                  "%s", counters[i]);
    cJSON *rep =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "peers"), 0), "replication");
    const char *zero[] = {"events_behind",         "bytes_behind",
                          "oldest_undelivered_ts", "oldest_undelivered_age_ms",
                          "unacked_bytes",         "forks"};
    for (size_t i = 0; i < sizeof zero / sizeof zero[0]; i++)
        cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(rep, zero[i])) &&
                      cJSON_GetObjectItem(rep, zero[i])->valuedouble == 0,
                  "%s", zero[i]);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(rep, "quarantined")));
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(rep, "skew_alarm")));
    cJSON_Delete(r);

    /* A room shared with the peer, and a message in it: the peer lacks all of it. */
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    cr_assert(ws_login(&w, "admin", TEST_ADMIN_PASSWORD, NULL));
    r = ws_callf(&w, "\"op\":\"room.create\",\"name\":\"県災害対策本部\",\"servers\":[\"%s\"]",
                 peer.id);
    cr_assert_str_eq(reply_code(r), "ok");
    char room[64], local[64], pos[24];
    reply_room(r, room, sizeof room);
    cJSON_Delete(r);
    r = ws_callf(&w, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"県道12号線が冠水\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    snprintf(pos, sizeof pos, "%d", cJSON_GetObjectItem(r, "pos")->valueint);
    cJSON_Delete(r);
    r = ws_callf(&w, "\"op\":\"room.create\",\"name\":\"庁内\"");
    reply_room(r, local, sizeof local);
    cJSON_Delete(r);
    ws_close_fd(&w);
    r = peer_list();
    rep =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "peers"), 0), "replication");
    cr_assert_geq(cJSON_GetObjectItem(rep, "events_behind")->valuedouble, 3,
                  "the creation, the creator's join and the message");
    cr_assert_gt(cJSON_GetObjectItem(rep, "bytes_behind")->valuedouble, 0);
    cr_assert_gt(cJSON_GetObjectItem(rep, "oldest_undelivered_ts")->valuedouble, 0);
    cr_assert_geq(cJSON_GetObjectItem(rep, "oldest_undelivered_age_ms")->valuedouble, 0);
    cJSON_Delete(r);
    cr_assert_eq(KZ("admin", "peers"), 0, "%s", out);
    cr_assert(strstr(out, "events (") && strstr(out, "not yet acknowledged") &&
                  strstr(out, "oldest undelivered:") &&
                  strstr(out, "replication since start: 0 events sent"),
              "%s", out);

    /* Where the rooms live. */
    cr_assert_eq(KZ("room", "servers", room, "--pos", pos), 0, "%s", out);
    cr_assert(strstr(out, "shared room, authority jp-38-ehime-pref; 2 servers") &&
                  strstr(out, "松山市") && strstr(out, "not acknowledged yet") &&
                  strstr(out, "acknowledged by 1 of 2 servers"),
              "%s", out);
    cr_assert_eq(KZ("--json", "room", "servers", room, "--pos", pos), 0, "%s", out);
    r = cJSON_Parse(out);
    cr_assert_not_null(r, "%s", out);
    cr_assert_str_eq(cJSON_GetObjectItem(r, "authority")->valuestring, "jp-38-ehime-pref");
    cJSON *servers = cJSON_GetObjectItem(r, "servers");
    cr_assert_eq(cJSON_GetArraySize(servers), 2);
    cJSON *s0 = cJSON_GetArrayItem(servers, 0), *s1 = cJSON_GetArrayItem(servers, 1);
    cr_assert_str_eq(cJSON_GetObjectItem(s0, "server")->valuestring, "jp-38-ehime-pref");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(s0, "self")));
    cr_assert_str_eq(cJSON_GetObjectItem(s1, "server")->valuestring, peer.id);
    cr_assert_str_eq(cJSON_GetObjectItem(s1, "name")->valuestring, "松山市");
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(s1, "self")));
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(s1, "admitted")));
    cJSON *acked = cJSON_GetObjectItem(r, "acked_by");
    cr_assert_eq(cJSON_GetArraySize(acked), 1);
    cr_assert_str_eq(cJSON_GetArrayItem(acked, 0)->valuestring, "jp-38-ehime-pref");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "log"), "origin")->valuestring,
                     "jp-38-ehime-pref");
    cJSON_Delete(r);
    cr_assert_eq(KZ("--json", "room", "servers", local), 0, "%s", out);
    r = cJSON_Parse(out);
    cr_assert_not_null(r, "%s", out);
    cr_assert_str_eq(cJSON_GetObjectItem(r, "authority")->valuestring, "");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "servers")), 1);
    cr_assert_null(cJSON_GetObjectItem(r, "acked_by"));
    cJSON_Delete(r);
    cr_assert_eq(KZ("room", "servers", local), 0, "%s", out);
    cr_assert(strstr(out, "a room of this server only"), "%s", out);
    cr_assert_eq(KZ("room", "servers", local, "--pos", "x"), 2, "a usage mistake: %s", out);
    cr_assert_eq(KZ("--json", "room", "servers", local, "--pos", pos), 1, "%s", out);
    refused(out, "not_found", "no event");

    /* `room create --servers`: a shared room from the CLI; a server that is not a peer is
     * refused and nothing is created. */
    cr_assert_eq(KZ("--json", "room", "create", "対口支援", "--servers", peer.id), 0, "%s", out);
    r = cJSON_Parse(out);
    cr_assert_not_null(r, "%s", out);
    char cli_room[64];
    reply_room(r, cli_room, sizeof cli_room);
    cJSON_Delete(r);
    cr_assert_eq(KZ("room", "servers", cli_room), 0, "%s", out);
    cr_assert(strstr(out, "shared room, authority jp-38-ehime-pref; 2 servers"), "%s", out);
    cr_assert_eq(KZ("--json", "room", "create", "どこか", "--servers", "jp-99-nowhere"), 1, "%s",
                 out);
    refused(out, "not_found", "is not a peer server of this one");
    cr_assert_eq(KZ("--json", "rooms"), 0, "%s", out);
    cr_assert_null(strstr(out, "どこか"), "nothing was created: %s", out);
}
