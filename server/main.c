/* main.c - kizunad: `init` prepares a data directory, `serve` runs the server, `fingerprint`
 * shows what two admins compare when they pair servers; backups and restores. */
#include "fed.h"
#include "listener.h"
#include "server.h"
#include "record.h"
#include "record_verify.h"
#include "store_fed.h"
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define DB_FILE   "kizuna.db"
#define KEY_FILE  "server.key"
#define LOCK_FILE "kizunad.lock"

static const char usage[] =
    "usage: kizunad init  --data DIR [--admin LOGIN] [--server-id ID] [--config FILE]\n"
    "                     [--set NAME=VALUE]...\n"
    "       kizunad serve --data DIR [--config FILE] [--listen HOST:PORT] [--log-level LEVEL]\n"
    "                     [--set NAME=VALUE]...\n"
    "       kizunad fingerprint --data DIR [--config FILE]\n"
    "                                    (the server id, key and fingerprint admins compare)\n"
    "       kizunad backup --data DIR OUTDIR     (a consistent copy, while the server runs)\n"
    "       kizunad verify-backup OUTDIR [--data DIR]\n"
    "                          (proves a backup whole; --data records it for admin status)\n"
    "       kizunad verify-record FILE.jsonl [--data DIR]\n"
    "                                            (checks a room's record against its signed\n"
    "                                            event logs; --data: this server's keys)\n"
    "       kizunad restore OUTDIR --data NEWDIR [--position-gap N]\n"
    "       kizunad check-config FILE      (every problem of a config file, before a restart)\n"
    "       kizunad reset-admin --data DIR [--admin LOGIN] [--config FILE]\n"
    "                          (a lost admin password: a one-time password, audited)\n"
    "       kizunad config     (every setting, its default and its meaning)\n"
    "       kizunad version\n";

struct opts {
    const char *data;
    const char *admin;
    const char *server_id; /* init's --server-id */
    struct kz_config cfg;
};

/* Which command parse_opts reads the options of. */
enum opts_mode {
    OPTS_INIT,
    OPTS_SERVE,
    OPTS_FINGERPRINT,
    OPTS_RELOAD, /* serve's, at SIGHUP */
    OPTS_RESET,  /* reset-admin's */
};

static int die_usage(const char *msg)
{
    if (msg)
        fprintf(stderr, "kizunad: %s\n", msg);
    fputs(usage, stderr);
    return 2;
}

/* A problem with the options: on the terminal, or at a SIGHUP (OPTS_RELOAD), in the log, where
 * whoever ran `systemctl reload` looks (journalctl), with the running settings kept. */
static void opts_error(enum opts_mode mode, const char *err)
{
    if (mode == OPTS_RELOAD)
        KZ_ERROR("config_reload_failed", "error=\"%s\" kept=all", err);
    else
        fprintf(stderr, "kizunad: %s\n", err);
}

/* Parses the options shared by init and serve; returns 0, or an exit code. */
static int parse_opts(int argc, char **argv, struct opts *o, enum opts_mode mode)
{
    bool serve = mode == OPTS_SERVE || mode == OPTS_RELOAD;
    bool init = mode == OPTS_INIT || mode == OPTS_RESET; /* both take --admin LOGIN */
    char err[256];
    const char *config = NULL;
    kz_config_defaults(&o->cfg);
    /* The config file comes first so that command-line settings override it, whatever their
     * order on the line. */
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[++i];
    if (config && kz_config_load_file(&o->cfg, config, err, sizeof err) != 0) {
        opts_error(mode, err);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return die_usage("missing value after an option");
        i++;
        int rc = 0;
        if (strcmp(a, "--data") == 0) {
            o->data = v;
        } else if (strcmp(a, "--config") == 0) {
            continue;
        } else if (strcmp(a, "--admin") == 0 && init) {
            o->admin = v;
        } else if (strcmp(a, "--server-id") == 0 && mode == OPTS_INIT) {
            o->server_id = v;
        } else if (strcmp(a, "--listen") == 0 && serve) {
            snprintf(err, sizeof err, "listen=%s", v);
            rc = kz_config_set(&o->cfg, err, err, sizeof err);
        } else if (strcmp(a, "--log-level") == 0 && serve) {
            snprintf(err, sizeof err, "log_level=%s", v);
            rc = kz_config_set(&o->cfg, err, err, sizeof err);
        } else if (strcmp(a, "--set") == 0 && mode != OPTS_FINGERPRINT) {
            rc = kz_config_set(&o->cfg, v, err, sizeof err);
        } else {
            snprintf(err, sizeof err, "unknown option '%s'", a);
            return die_usage(err);
        }
        if (rc != 0) {
            opts_error(mode, err);
            return 2;
        }
    }
    if (!o->data)
        return die_usage("--data DIR is required");
    if (mode == OPTS_RELOAD)
        return 0; /* the zone is process-wide (TZ) and needs a restart: never changed here */
    /* Checked at start: an unknown zone would silently be UTC in every CSV and report. */
    char tz_err[600];
    if (kz_time_zone_load(o->cfg.time_zone, o->cfg.time_zone_posix, sizeof o->cfg.time_zone_posix,
                          tz_err, sizeof tz_err) != 0) {
        fprintf(stderr, "kizunad: %s\n", tz_err);
        return 2;
    }
    int offset;
    if (!kz_record_zone_offset(o->cfg.record_time_zone, &offset)) {
        fprintf(stderr, "kizunad: record_time_zone: '%s' is not one of %s\n",
                o->cfg.record_time_zone, kz_record_zone_names());
        return 2;
    }
    return 0;
}

static void path_in(char *out, size_t n, const char *dir, const char *file)
{
    snprintf(out, n, "%s/%s", dir, file);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Whether dir was made by `kizunad init` (its database and key are there); if not, says so and
 * what to run. */
static bool data_initialised(const char *dir)
{
    char db[4096], key[4096];
    path_in(db, sizeof db, dir, DB_FILE);
    path_in(key, sizeof key, dir, KEY_FILE);
    if (exists(db) && exists(key))
        return true;
    fprintf(stderr, "kizunad: %s is not initialised: run kizunad init --data %s\n", dir, dir);
    return false;
}

/* Creates the server's Ed25519 signing key if there is none. Returns 1 if created. */
static int key_ensure(const char *path)
{
    if (exists(path))
        return 0;
    unsigned char seed[crypto_sign_SEEDBYTES];
    char b64[sodium_base64_ENCODED_LEN(crypto_sign_SEEDBYTES, sodium_base64_VARIANT_ORIGINAL)];
    randombytes_buf(seed, sizeof seed);
    sodium_bin2base64(b64, sizeof b64, seed, sizeof seed, sodium_base64_VARIANT_ORIGINAL);
    sodium_memzero(seed, sizeof seed);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return -1;
    char line[128];
    int len = snprintf(line, sizeof line, "ed25519-seed %s\n", b64);
    sodium_memzero(b64, sizeof b64);
    int rc = (write(fd, line, (size_t)len) == len && fsync(fd) == 0) ? 1 : -1;
    sodium_memzero(line, sizeof line);
    close(fd);
    return rc;
}

/* Reads the server key; pk receives the public half (the server's identity). */
static int key_load(const char *path, unsigned char pk[crypto_sign_PUBLICKEYBYTES],
                    unsigned char sk[crypto_sign_SECRETKEYBYTES])
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[128] = "";
    char *got = fgets(line, sizeof line, f);
    fclose(f);
    unsigned char seed[crypto_sign_SEEDBYTES];
    size_t n = 0;
    int rc = -1;
    if (got && strncmp(line, "ed25519-seed ", 13) == 0 &&
        sodium_base642bin(seed, sizeof seed, line + 13, strcspn(line + 13, "\n"), NULL, &n, NULL,
                          sodium_base64_VARIANT_ORIGINAL) == 0 &&
        n == sizeof seed)
        rc = crypto_sign_seed_keypair(pk, sk, seed);
    sodium_memzero(seed, sizeof seed);
    sodium_memzero(line, sizeof line);
    return rc;
}

static struct store *open_store(const struct opts *o)
{
    char path[4096], err[512];
    path_in(path, sizeof path, o->data, DB_FILE);
    struct store_options so = {
        .path = path,
        .sync_full = o->cfg.sqlite_synchronous_full != 0,
        .busy_timeout_ms = (int)o->cfg.sqlite_busy_timeout_ms,
        .cache_kib = (int)o->cfg.sqlite_cache_kib,
    };
    struct store *st = NULL;
    if (store_open(&so, &st, err, sizeof err) != STORE_OK)
        fprintf(stderr, "kizunad: %s\n", err);
    return st;
}

static int cmd_init(int argc, char **argv)
{
    struct opts o = {0};
    int rc = parse_opts(argc, argv, &o, OPTS_INIT);
    if (rc)
        return rc;
    const char *admin = o.admin ? o.admin : "admin";
    /* The id the logs will carry for the life of this data directory: --server-id, else the
     * config's server_id, else derived from the key (below, once the key exists). */
    const char *chosen = o.server_id ? o.server_id : o.cfg.server_id[0] ? o.cfg.server_id : NULL;
    if (chosen && !fed_server_id_valid(chosen)) {
        fprintf(stderr,
                "kizunad: %s: '%s' is not a server id: 3-63 of a-z, 0-9 and '-', beginning and "
                "ending with a letter or digit (e.g. jp-38-ehime-pref)\n",
                o.server_id ? "--server-id" : "server_id", chosen);
        return 2;
    }
    if (!kz_login_valid(admin))
        return die_usage("--admin must be 1-64 of a-z, 0-9, '.', '_', '-'");
    const char *env_pw = getenv("KIZUNA_ADMIN_PASSWORD");
    if (env_pw && *env_pw) {
        const char *problem = kz_password_problem(env_pw, admin, o.cfg.password_min_length);
        if (problem) {
            fprintf(stderr, "kizunad: KIZUNA_ADMIN_PASSWORD: %s\n", problem);
            return 2;
        }
    }
    if (mkdir(o.data, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "kizunad: cannot create %s: %s\n", o.data, strerror(errno));
        return 1;
    }
    char keypath[4096], dbpath[4096], lockpath[4096];
    path_in(keypath, sizeof keypath, o.data, KEY_FILE);
    path_in(dbpath, sizeof dbpath, o.data, DB_FILE);
    path_in(lockpath, sizeof lockpath, o.data, LOCK_FILE);
    /* A running server holds the database exclusively; it was initialised, or it could not
     * be serving. */
    int lock_fd = open(lockpath, O_RDWR | O_CLOEXEC);
    bool in_use =
        lock_fd >= 0 && exists(dbpath) && exists(keypath) && flock(lock_fd, LOCK_EX | LOCK_NB) != 0;
    if (lock_fd >= 0)
        close(lock_fd);
    if (in_use) {
        printf("%s is already initialised and in use by a running kizunad: nothing changed\n",
               o.data);
        return 0;
    }
    int key_created = key_ensure(keypath);
    if (key_created < 0) {
        fprintf(stderr, "kizunad: cannot write %s: %s\n", keypath, strerror(errno));
        return 1;
    }
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    if (key_load(keypath, pk, sk) != 0) {
        fprintf(stderr, "kizunad: %s is damaged: restore it from a backup\n", keypath);
        return 1;
    }
    sodium_memzero(sk, sizeof sk);
    char server_id[STORE_SERVER_ID_MAX + 1], stored[STORE_SERVER_ID_MAX + 1] = "";
    if (chosen)
        snprintf(server_id, sizeof server_id, "%s", chosen);
    else
        fed_server_id_derive(pk, server_id, sizeof server_id);
    struct store *st = open_store(&o);
    if (!st)
        return 1;
    int64_t users = 0;
    rc = 1;
    enum store_rc idrc = store_server_id_get(st, stored, sizeof stored);
    if (store_user_count(st, &users) != STORE_OK || (idrc != STORE_OK && idrc != STORE_NOT_FOUND)) {
        fprintf(stderr, "kizunad: %s\n", store_errmsg(st));
        goto out;
    }
    if (stored[0] && chosen && strcmp(stored, chosen) != 0) {
        fprintf(stderr,
                "kizunad: %s is already initialised as server %s: nothing changed (a server's "
                "id never changes: its event logs and its peers know it by that id)\n",
                o.data, stored);
        goto out;
    }
    if (users > 0) {
        printf("%s is already initialised (%lld users%s%s): nothing changed\n", o.data,
               (long long)users, stored[0] ? ", server " : "", stored);
        rc = 0;
        goto out;
    }
    char generated[17];
    const char *password = env_pw && *env_pw ? env_pw : NULL;
    if (!password) {
        kz_password_generate(generated, sizeof generated);
        password = generated;
    }
    struct store_user u = {0};
    snprintf(u.login, sizeof u.login, "%s", admin);
    snprintf(u.name, sizeof u.name, "Administrator");
    snprintf(u.role, sizeof u.role, "%s", kz_role_name(KZ_ROLE_ADMIN));
    u.must_change_password = password == generated;
    if (srv_password_hash(&o.cfg, password, u.pw_hash) != 0) {
        fprintf(stderr, "kizunad: cannot hash the password (out of memory?)\n");
        goto out;
    }
    if (stored[0])
        snprintf(server_id, sizeof server_id, "%s", stored);
    if (store_tx_begin(st) != STORE_OK || store_user_insert(st, &u, kz_now_ms()) != STORE_OK ||
        (!stored[0] && store_server_id_set(st, server_id, false, kz_now_ms()) != STORE_OK) ||
        store_tx_commit(st) != STORE_OK) {
        fprintf(stderr, "kizunad: cannot create the admin: %s\n", store_errmsg(st));
        goto out;
    }
    bool vapid_made = false; /* Web Push's VAPID key (push.c) */
    if (srv_push_keys_ensure(st, &vapid_made) != 0) {
        fprintf(stderr, "kizunad: cannot make the push key: %s\n", store_errmsg(st));
        goto out;
    }
    printf("initialised %s\n", o.data);
    printf("server id: %s (for good: its event logs and peers know it by this id; see "
           "kizunad fingerprint --data %s)\n",
           server_id, o.data);
    printf("first admin: %s\n", u.login);
    if (u.must_change_password)
        printf("one-time password: %s\n(you will be asked to change it at first login: "
               "kizuna passwd)\n",
               generated);
    else
        printf("password: as given in KIZUNA_ADMIN_PASSWORD\n");
    sodium_memzero(generated, sizeof generated);
    rc = 0;
out:
    store_close(st);
    return rc;
}

/* The server's id for serve: the one stored at init. A config that names another is refused
 * (editing it used to start new event logs under the new name, silently). A database made
 * before ids were stored adopts, once, the id it has been using: the config's server_id, else
 * the old derivation from the key; that is logged and audited. 0, or -1 after saying why. */
static int identity_check(const struct opts *o, struct store *st, const unsigned char *pk,
                          char *out, size_t n)
{
    enum store_rc rc = store_server_id_get(st, out, n);
    if (rc == STORE_OK) {
        if (o->cfg.server_id[0] && strcmp(o->cfg.server_id, out) != 0) {
            fprintf(stderr,
                    "kizunad: the config names server_id '%s', but %s belongs to server '%s' "
                    "(its event logs and its peers know it by that id, which never changes): "
                    "set server_id to '%s' or remove it from the config\n",
                    o->cfg.server_id, o->data, out, out);
            return -1;
        }
        return 0;
    }
    if (rc != STORE_NOT_FOUND) {
        fprintf(stderr, "kizunad: cannot read the server id: %s\n", store_errmsg(st));
        return -1;
    }
    fed_server_id_legacy(pk, o->cfg.server_id, out, n);
    const char *from = o->cfg.server_id[0] ? "config" : "key";
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "server", out);
    cJSON_AddStringToObject(d, "from", from);
    char *details = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    struct store_audit a = {.at = kz_now_ms(),
                            .actor = "-server-",
                            .address = "",
                            .action = "server.id_adopt",
                            .target = out,
                            .details = details ? details : "{}"};
    bool ok = store_tx_begin(st) == STORE_OK &&
              store_server_id_set(st, out, true, a.at) == STORE_OK &&
              store_audit_add(st, &a) == STORE_OK && store_tx_commit(st) == STORE_OK;
    cJSON_free(details);
    if (!ok) {
        fprintf(stderr, "kizunad: cannot store the server id: %s\n", store_errmsg(st));
        if (store_tx_is_open(st))
            store_tx_rollback(st);
        return -1;
    }
    KZ_WARN("server_id_adopted",
            "server_id=%s from=%s: this database was made before server ids were stored; it "
            "keeps the id it has been using, from now on for good",
            out, from);
    return 0;
}

/* `kizunad fingerprint --data DIR`: what the other server's admin needs to pin this one. */
static int cmd_fingerprint(int argc, char **argv)
{
    struct opts o = {0};
    int rc = parse_opts(argc, argv, &o, OPTS_FINGERPRINT);
    if (rc)
        return rc;
    if (!data_initialised(o.data))
        return 1;
    char keypath[4096];
    path_in(keypath, sizeof keypath, o.data, KEY_FILE);
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    rc = key_load(keypath, pk, sk);
    sodium_memzero(sk, sizeof sk);
    if (rc != 0) {
        fprintf(stderr, "kizunad: %s is damaged: restore it from a backup\n", keypath);
        return 1;
    }
    struct store *st = open_store(&o);
    if (!st)
        return 1;
    char id[STORE_SERVER_ID_MAX + 1];
    enum store_rc idrc = store_server_id_get(st, id, sizeof id);
    store_close(st);
    if (idrc == STORE_NOT_FOUND) {
        /* Made before ids were stored: the id the next serve adopts. */
        fed_server_id_legacy(pk, o.cfg.server_id, id, sizeof id);
    } else if (idrc != STORE_OK) {
        fprintf(stderr, "kizunad: cannot read the server id\n");
        return 1;
    }
    char key[FED_KEY_B64LEN + 1], fp[FED_FINGERPRINT_LEN + 1];
    fed_key_encode(pk, key, sizeof key);
    if (fed_fingerprint(id, pk, fp) != 0) {
        fprintf(stderr, "kizunad: cannot compute the fingerprint\n");
        return 1;
    }
    printf("server id:   %s%s\n", id,
           idrc == STORE_NOT_FOUND ? " (stored at the next kizunad serve)" : "");
    printf("public key:  %s\n", key);
    printf("fingerprint: %s\n", fp);
    printf("\nRead the fingerprint to the other server's administrator by phone, five digits at "
           "a time;\nthey pin this server with:\n"
           "  kizuna admin peer add %s --key %s --address HOST:PORT \\\n"
           "      --fingerprint \"%s\"\n",
           id, key, fp);
    return 0;
}

/* What SIGHUP reads again: serve's own command line, so the config file and the --set
 * overrides keep their order. */
struct reload_ctx {
    int argc;
    char **argv;
    struct kz_config *cfg; /* the running settings */
    struct transport *t;
};

/* SIGHUP, on the loop thread: the settings that may change while serving (kz_config_reload)
 * take their new values, the log says which, and which others wait for a restart. A file
 * with an error changes nothing. */
static void serve_reload(void *arg)
{
    struct reload_ctx *r = arg;
    struct opts fresh = {0};
    if (parse_opts(r->argc, r->argv, &fresh, OPTS_RELOAD) != 0)
        return; /* logged (opts_error) */
    char changed[2048], restart[1024];
    int n = kz_config_reload(r->cfg, &fresh.cfg, changed, sizeof changed, restart, sizeof restart);
    kz_log_set_level((int)r->cfg->log_level);
    int certs = 0;
    char err[600];
    if (transport_tls_reload(r->t, &certs, err, sizeof err) != 0)
        KZ_ERROR("tls_reload_failed", "error=\"%s\" kept=the certificate in use", err);
    else if (certs)
        KZ_INFO("tls_reloaded", "pairs=%d", certs);
    KZ_INFO("config_reloaded", "changed=%d settings=\"%s\" need_restart=\"%s\"", n, changed,
            restart);
}

static int cmd_serve(int argc, char **argv)
{
    struct opts o = {0};
    int rc = parse_opts(argc, argv, &o, OPTS_SERVE);
    if (rc)
        return rc;
    kz_log_set_level((int)o.cfg.log_level);
    if (!data_initialised(o.data))
        return 1;
    char path[4096], err[512], keypath[4096];
    path_in(keypath, sizeof keypath, o.data, KEY_FILE);
    /* One server per data directory: two would each believe they own the database. */
    path_in(path, sizeof path, o.data, LOCK_FILE);
    int lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "kizunad: %s is in use by another kizunad\n", o.data);
        return 1;
    }
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    if (key_load(keypath, pk, sk) != 0) {
        fprintf(stderr, "kizunad: %s is damaged: restore it from a backup\n", keypath);
        return 1;
    }
    struct store *st = open_store(&o);
    if (!st)
        return 1;
    /* The origin names this server's logs in every room: the id stored at init. */
    char origin[STORE_SERVER_ID_MAX + 1];
    if (identity_check(&o, st, pk, origin, sizeof origin) != 0) {
        store_close(st);
        sodium_memzero(sk, sizeof sk);
        close(lock_fd);
        return 1;
    }
    struct srv_transport tx;
    struct transport *t = transport_new(&o.cfg, &tx, err, sizeof err);
    struct kz_workers *workers = NULL;
    struct srv *srv = NULL;
    struct kz_syncer *syncer = NULL;
    rc = 1;
    if (!t) {
        fprintf(stderr, "kizunad: %s\n", err);
        goto out;
    }
    workers = kz_workers_start((int)o.cfg.hash_workers, (int)o.cfg.hash_queue_max,
                               transport_wake_fn(), transport_wake_arg(t));
    srv = workers ? srv_new(&o.cfg, st, workers, &tx) : NULL;
    if (!srv) {
        fprintf(stderr, "kizunad: cannot start the worker pool\n");
        goto out;
    }
    transport_attach(t, srv, workers);
    struct reload_ctx reload = {.argc = argc, .argv = argv, .cfg = &o.cfg, .t = t};
    transport_on_reload(t, serve_reload, &reload);
    if (o.cfg.sync_thread && o.cfg.sqlite_synchronous_full) {
        syncer = kz_syncer_start(st, (int)o.cfg.wal_checkpoint_frames, transport_wake_fn(),
                                 transport_wake_arg(t), err, sizeof err);
        if (!syncer) {
            fprintf(stderr, "kizunad: %s\n", err);
            goto out;
        }
        srv_set_syncer(srv, syncer);
    }
    if (srv_set_data_dir(srv, o.data) != 0) {
        fprintf(stderr, "kizunad: cannot make the blob directories in %s\n", o.data);
        goto out;
    }
    /* Web Push: the VAPID key (a data directory made before push had none), then the sender,
     * which needs push_subject to tell push services whom to contact. */
    bool vapid_made = false;
    if (srv_push_keys_ensure(st, &vapid_made) != 0) {
        fprintf(stderr, "kizunad: cannot make the push key: %s\n", store_errmsg(st));
        goto out;
    }
    if (vapid_made)
        KZ_INFO("push_key_made", "a VAPID key pair for Web Push");
    if (o.cfg.push_subject[0] && strncmp(o.cfg.push_subject, "mailto:", 7) != 0 &&
        strncmp(o.cfg.push_subject, "https://", 8) != 0) {
        fprintf(stderr, "kizunad: push_subject must begin with mailto: or https://\n");
        goto out;
    }
    if (o.cfg.smtp_host[0] && strcmp(o.cfg.smtp_security, "starttls") != 0 &&
        strcmp(o.cfg.smtp_security, "tls") != 0 && strcmp(o.cfg.smtp_security, "none") != 0) {
        fprintf(stderr, "kizunad: smtp_security is starttls, tls or none\n");
        goto out;
    }
    if (o.cfg.smtp_host[0] && !kz_email_valid(o.cfg.smtp_from)) {
        fprintf(stderr, "kizunad: smtp_from must be an e-mail address when smtp_host is set\n");
        goto out;
    }
    if (srv_webhook_check(&o.cfg, stderr, "kizunad: ") != 0)
        goto out;
    if (o.cfg.mail_digest_at[0] && srv_hhmm(o.cfg.mail_digest_at) < 0) {
        fprintf(stderr, "kizunad: mail_digest_at is a time of day, HH:MM (e.g. 07:30), or \"\"\n");
        goto out;
    }
    if (srv_notify_start(srv, transport_wake_fn(), transport_wake_arg(t), err, sizeof err) != 0) {
        fprintf(stderr, "kizunad: %s\n", err);
        goto out;
    }

    char key_b64[64];
    fed_key_encode(pk, key_b64, sizeof key_b64);
    /* Incarnation 1, plus one per restore from a backup (FEDERATION.md F15): a restored
     * server's logs never reuse a sequence number the lost server handed out. */
    int64_t inc = 1;
    if (store_meta_get(st, "incarnation", &inc) != STORE_OK)
        inc = 1;
    srv_set_identity(srv, origin, inc, sk);
    char host[128];
    snprintf(host, sizeof host, "%s", o.cfg.listen);
    *strrchr(host, ':') = '\0';
    KZ_INFO("start", "version=%s data=%s schema=%d server_id=%s server_key=%s listen=%s:%d tls=%s",
            KZ_VERSION, o.data, store_schema_version(st), origin, key_b64, host, transport_port(t),
            o.cfg.tls_cert_file[0] ? "on" : "off");
    if (transport_fed_port(t)) {
        /* Before the "listening" line, which tells a supervisor (and the tests) it is all up. */
        char fhost[128];
        snprintf(fhost, sizeof fhost, "%s", o.cfg.federation_listen);
        *strrchr(fhost, ':') = '\0';
        KZ_INFO("federation", "listen=%s:%d tls=%s", fhost, transport_fed_port(t),
                o.cfg.federation_tls_cert_file[0] ? "on" : "off");
        printf("federating on %s:%d\n", fhost, transport_fed_port(t));
    }
    printf("listening on %s:%d\n", host, transport_port(t));
    fflush(stdout);

    transport_run(t);
    rc = 0;
out:
    if (srv)
        srv_jma_stop(srv);    /* a JMA transfer on a worker gives up now, not at its timeout */
    kz_workers_stop(workers); /* unfinished password checks are answered "shutting down" */
    if (srv)
        srv_push_free(srv); /* posts in progress finish (push_timeout_ms); queued ones wait */
    if (srv)
        srv_flush(srv);
    /* A commit made while the transport is torn down (a link's end) is still synced, but
     * must not wake the loop whose context is being freed. */
    kz_syncer_unhook(syncer);
    transport_free(t);
    srv_free(srv);
    kz_syncer_stop(syncer); /* after the last commit above, and before the store closes */
    store_close(st);
    sodium_memzero(sk, sizeof sk);
    close(lock_fd);
    if (rc == 0)
        KZ_INFO("stopped", "clean=true");
    return rc;
}

/* Finds a --data DIR option among argv[from..]; the other argument goes to *positional. */
static int backup_args(int argc, char **argv, const char **data, const char **positional,
                       long long *gap)
{
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--data") == 0 && i + 1 < argc)
            *data = argv[++i];
        else if (gap && strcmp(argv[i], "--position-gap") == 0 && i + 1 < argc)
            *gap = atoll(argv[++i]);
        else if (!*positional && argv[i][0] != '-')
            *positional = argv[i];
        else
            return die_usage("unexpected argument");
    }
    return 0;
}

static int cmd_backup(int argc, char **argv)
{
    const char *data = NULL, *out = NULL;
    int rc = backup_args(argc, argv, &data, &out, NULL);
    if (rc)
        return rc;
    if (!data || !out)
        return die_usage("backup needs --data DIR and OUTDIR");
    char err[512];
    struct kz_backup_stats st;
    if (kz_backup_make(data, out, &st, err, sizeof err) != 0) {
        fprintf(stderr, "kizunad: backup failed: %s\n", err);
        kz_backup_note(data, "backup", out, false, NULL, err);
        return 1;
    }
    if (kz_backup_note(data, "backup", out, true, &st, NULL) != 0)
        fprintf(stderr,
                "kizunad: could not record the backup in %s/%s (kizuna admin status "
                "will not show it)\n",
                data, KZ_BACKUP_STATUS_FILE);
    printf("backed up %s to %s: %lld files, %lld blobs, %lld bytes\n", data, out,
           (long long)st.files, (long long)st.blobs, (long long)st.bytes);
    printf("check it with: kizunad verify-backup %s\n", out);
    return 0;
}

static int cmd_verify_backup(int argc, char **argv)
{
    const char *data = NULL, *dir = NULL;
    int rc = backup_args(argc, argv, &data, &dir, NULL);
    if (rc)
        return rc;
    if (!dir)
        return die_usage("verify-backup needs the backup's directory");
    struct kz_backup_stats st;
    int problems = kz_backup_verify(dir, stdout, &st);
    /* With --data, the server's data directory remembers it (kizuna admin status). */
    if (data) {
        char why[64];
        snprintf(why, sizeof why, "%d problem(s)", problems);
        kz_backup_note(data, "verify", dir, problems == 0, &st, problems ? why : NULL);
    }
    if (problems) {
        printf("%s is NOT a whole backup: %d problem(s)\n", dir, problems);
        return 1;
    }
    printf("%s is whole: %lld files, %lld blobs, %lld bytes match the manifest\n", dir,
           (long long)st.files, (long long)st.blobs, (long long)st.bytes);
    return 0;
}

/* Positions jump this far past the backup's newest one, so that clients that saw positions
 * the lost server handed out after the backup still receive everything new. */
#define DEFAULT_POSITION_GAP 1000000000LL

static int cmd_restore(int argc, char **argv)
{
    const char *data = NULL, *dir = NULL;
    long long gap = DEFAULT_POSITION_GAP;
    int rc = backup_args(argc, argv, &data, &dir, &gap);
    if (rc)
        return rc;
    if (!dir || !data)
        return die_usage("restore needs the backup's directory and --data NEWDIR");
    if (gap < 1 || gap > 1000000000000LL)
        return die_usage("--position-gap must be 1 to 10^12");
    struct kz_backup_stats st;
    if (kz_backup_verify(dir, stderr, &st) != 0) {
        fprintf(stderr, "kizunad: %s is not a whole backup: nothing restored\n", dir);
        return 1;
    }
    char err[512];
    if (kz_backup_restore_files(dir, data, err, sizeof err) != 0) {
        fprintf(stderr, "kizunad: restore failed: %s\n", err);
        return 1;
    }
    struct opts o = {.data = data};
    kz_config_defaults(&o.cfg);
    struct store *s = open_store(&o);
    if (!s)
        return 1;
    int64_t inc = 1, last = 0, floor = 0;
    store_meta_get(s, "incarnation", &inc);
    store_meta_get(s, "pos_floor", &floor);
    /* The new incarnation is the restore's time in ms (or the backup's + 1 if that is higher):
     * a server restored twice from one backup must not write the same incarnation twice, or its
     * peers, which hold the first one's events, see a fork. The backup's own number cannot tell
     * the two restores apart; two restores never finish in the same millisecond. */
    int64_t now = kz_now_ms();
    int64_t next = inc + 1 > now ? inc + 1 : now;
    rc = 1;
    if (store_event_last_pos(s, &last) != STORE_OK || store_tx_begin(s) != STORE_OK ||
        store_meta_set(s, "incarnation", next) != STORE_OK ||
        store_meta_set(s, "pos_floor", (last > floor ? last : floor) + gap) != STORE_OK ||
        store_tx_commit(s) != STORE_OK) {
        fprintf(stderr, "kizunad: cannot prepare the restored database: %s\n", store_errmsg(s));
    } else {
        printf("restored %s into %s (%lld blobs); incarnation %lld\n", dir, data,
               (long long)st.blobs, (long long)next);
        printf("start it with: kizunad serve --data %s\n", data);
        rc = 0;
    }
    store_close(s);
    return rc;
}

/* The keys verify-record trusts with --data: the server's own, and its pinned peers'. */
struct trusted {
    char id[STORE_SERVER_ID_MAX + 1];
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    struct store *st;
};

static bool trusted_key(void *ctx, const char *origin, uint8_t pk[32])
{
    struct trusted *t = ctx;
    struct store_peer p;
    if (strcmp(origin, t->id) == 0) {
        memcpy(pk, t->pk, 32);
        return true;
    }
    if (store_peer_get(t->st, origin, &p) != STORE_OK)
        return false;
    memcpy(pk, p.key, 32);
    return true;
}

/* `kizunad verify-record FILE [--data DIR]`: with --data, against the keys that server knows
 * (its own and its peers'), else against the keys the record's header names. */
static int cmd_verify_record(int argc, char **argv)
{
    const char *data = NULL, *file = NULL;
    int rc = backup_args(argc, argv, &data, &file, NULL);
    if (rc)
        return rc;
    if (!file)
        return die_usage("verify-record needs the record's file (JSON Lines)");
    FILE *f = fopen(file, "r");
    if (!f) {
        fprintf(stderr, "kizunad: cannot read %s: %s\n", file, strerror(errno));
        return 1;
    }
    struct trusted t = {0};
    struct kz_record_trust trust = {trusted_key, &t};
    if (data) {
        char keypath[4096];
        unsigned char sk[crypto_sign_SECRETKEYBYTES];
        path_in(keypath, sizeof keypath, data, KEY_FILE);
        struct opts o = {.data = data};
        kz_config_defaults(&o.cfg);
        rc = key_load(keypath, t.pk, sk);
        sodium_memzero(sk, sizeof sk);
        if (rc != 0 || !(t.st = open_store(&o)) ||
            store_server_id_get(t.st, t.id, sizeof t.id) != STORE_OK) {
            fprintf(stderr, "kizunad: cannot read the server's key and id in %s\n", data);
            if (t.st)
                store_close(t.st);
            fclose(f);
            return 1;
        }
    }
    struct kz_record_verify_stats st;
    int problems = kz_record_verify(f, data ? &trust : NULL, stdout, &st);
    fclose(f);
    if (t.st)
        store_close(t.st);
    if (problems) {
        printf("%s does NOT verify: %d problem(s)\n", file, problems);
        return 1;
    }
    printf("%s verifies: %lld rows, %lld events, %lld signatures checked against %s\n", file,
           (long long)st.rows, (long long)st.events, (long long)st.signatures,
           data ? "this server's keys" : "the keys its header names");
    return 0;
}

/* The admins of the database, for reset-admin to pick from. */
struct admins {
    char logins[8][STORE_LOGIN_MAX + 1];
    int n;
};

static int admin_one(void *ctx, const struct store_user *u)
{
    struct admins *a = ctx;
    if (kz_role_is(u->role, KZ_ROLE_ADMIN) && a->n < 8)
        snprintf(a->logins[a->n++], sizeof a->logins[0], "%s", u->login);
    return 0;
}

/* `kizunad reset-admin --data DIR [--admin LOGIN]`: an administrator who lost the password (and
 * every other admin's) gets a one-time password, printed here only, to be changed at the first
 * login. Run on the server, as the user kizunad runs as: reading the data directory is the
 * proof of authority, as for backups. Every session of the account ends (whoever learnt the
 * old password is logged out), a disabled account is enabled again, and the audit log records
 * it (actor -console-). It works while kizunad serves: each request reads its caller's account
 * and session from the database. */
static int cmd_reset_admin(int argc, char **argv)
{
    struct opts o = {0};
    int rc = parse_opts(argc, argv, &o, OPTS_RESET);
    if (rc)
        return rc;
    if (!data_initialised(o.data))
        return 1;
    struct store *st = open_store(&o);
    if (!st)
        return 1;
    rc = 1;
    struct store_user u;
    struct admins all = {0};
    if (o.admin) {
        enum store_rc r =
            kz_login_valid(o.admin) ? store_user_get_by_login(st, o.admin, &u) : STORE_NOT_FOUND;
        if (r != STORE_OK) {
            fprintf(stderr, "kizunad: there is no account '%s' on this server\n", o.admin);
            goto out;
        }
        if (!kz_role_is(u.role, KZ_ROLE_ADMIN)) {
            fprintf(stderr,
                    "kizunad: %s is not an admin (role %s): reset-admin recovers admin accounts "
                    "only; an admin resets anyone else's password (kizuna admin user "
                    "reset-password)\n",
                    u.login, u.role);
            goto out;
        }
    } else {
        if (store_user_each(st, admin_one, &all) != STORE_OK) {
            fprintf(stderr, "kizunad: %s\n", store_errmsg(st));
            goto out;
        }
        if (all.n != 1) {
            fprintf(stderr, "kizunad: %s: name the account with --admin LOGIN%s",
                    all.n ? "this server has several admins" : "this server has no admin",
                    all.n ? " (" : "\n");
            for (int i = 0; i < all.n; i++)
                fprintf(stderr, "%s%s", all.logins[i], i + 1 < all.n ? ", " : ")\n");
            goto out;
        }
        if (store_user_get_by_login(st, all.logins[0], &u) != STORE_OK) {
            fprintf(stderr, "kizunad: %s\n", store_errmsg(st));
            goto out;
        }
    }
    char otp[KZ_OTP_CHARS + 1], hash[STORE_HASH_MAX + 1];
    kz_password_generate(otp, sizeof otp);
    if (srv_password_hash(&o.cfg, otp, hash) != 0) {
        fprintf(stderr, "kizunad: cannot hash the password (out of memory?)\n");
        goto out;
    }
    const char *who = getenv("SUDO_USER");
    if (!who || !*who)
        who = getenv("USER");
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "via", "kizunad reset-admin");
    cJSON_AddStringToObject(d, "unix_user", who && *who ? who : "?");
    cJSON_AddBoolToObject(d, "enabled_again", u.disabled);
    char *details = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    int64_t now = kz_now_ms();
    struct store_audit a = {.at = now,
                            .actor = "-console-",
                            .address = "",
                            .action = "user.reset_password",
                            .target = u.login,
                            .details = details ? details : "{}"};
    bool ok = store_tx_begin(st) == STORE_OK &&
              store_user_set_password(st, u.id, hash, true, now) == STORE_OK &&
              store_session_end_user(st, u.id, 0, now) == STORE_OK &&
              (!u.disabled || store_user_set_disabled(st, u.id, false, now) == STORE_OK) &&
              store_audit_add(st, &a) == STORE_OK && store_tx_commit(st) == STORE_OK;
    cJSON_free(details);
    sodium_memzero(hash, sizeof hash);
    if (!ok) {
        fprintf(stderr, "kizunad: cannot reset the password: %s\n", store_errmsg(st));
        if (store_tx_is_open(st))
            store_tx_rollback(st);
        sodium_memzero(otp, sizeof otp);
        goto out;
    }
    printf("admin: %s%s\n", u.login, u.disabled ? " (was disabled: enabled again)" : "");
    printf("one-time password: %s\n", otp);
    printf("(every session of %s ended; log in with it and choose a new password: kizuna "
           "login, then kizuna passwd)\n",
           u.login);
    sodium_memzero(otp, sizeof otp);
    rc = 0;
out:
    store_close(st);
    return rc;
}

/* A pair of PEM files one of which is set without the other, or one that cannot be read. */
static int check_pair(const char *cert_name, const char *cert, const char *key_name,
                      const char *key)
{
    int problems = 0;
    if (!cert[0] != !key[0]) {
        printf("  %s and %s go together: set both (a PEM certificate and its private key) or "
               "neither\n",
               cert[0] ? cert_name : key_name, cert[0] ? key_name : cert_name);
        problems++;
    }
    const char *names[] = {cert_name, key_name}, *paths[] = {cert, key};
    for (int i = 0; i < 2; i++)
        if (paths[i][0] && access(paths[i], R_OK) != 0) {
            printf("  %s: \"%s\" cannot be read by this user (%s): kizunad must be able to "
                   "read it\n",
                   names[i], paths[i], strerror(errno));
            problems++;
        }
    return problems;
}

/* `kizunad check-config FILE`: every problem kizunad serve would stop at, each with the
 * setting, the value and what is allowed, without touching a data directory; exit 0 if none.
 * An administrator runs it before a restart or a reload (SIGHUP keeps the old settings when
 * the file has an error, and says so only in the log). */
static int cmd_check_config(int argc, char **argv)
{
    if (argc != 3)
        return die_usage("check-config takes one FILE");
    const char *path = argv[2];
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("%s: cannot be read: %s\n", path, strerror(errno));
        return 1;
    }
    static char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    bool too_big = !feof(f);
    fclose(f);
    if (too_big) {
        printf("%s: larger than %zu bytes: is it the right file?\n", path, sizeof text - 1);
        return 1;
    }
    text[n] = '\0';
    struct kz_config cfg;
    kz_config_defaults(&cfg);
    printf("%s:\n", path);
    int problems = kz_config_check_json(&cfg, text, stdout);
    char err[600];
    if (!listener_listen_valid(cfg.listen, err, sizeof err)) {
        printf("  %s (e.g. 127.0.0.1:8080, [::1]:8080, *:8443)\n", err);
        problems++;
    }
    problems += check_pair("tls_cert_file", cfg.tls_cert_file, "tls_key_file", cfg.tls_key_file);
    if (cfg.federation_listen[0]) {
        if (!listener_listen_valid(cfg.federation_listen, err, sizeof err)) {
            printf("  federation_%s\n", err);
            problems++;
        } else if (!cfg.federation_tls_cert_file[0] && !listener_loopback(cfg.federation_listen)) {
            printf("  federation_listen: \"%s\" is not a loopback address: federation over a "
                   "network needs federation_tls_cert_file and federation_tls_key_file\n",
                   cfg.federation_listen);
            problems++;
        }
        problems += check_pair("federation_tls_cert_file", cfg.federation_tls_cert_file,
                               "federation_tls_key_file", cfg.federation_tls_key_file);
    }
    if (cfg.server_id[0] && !fed_server_id_valid(cfg.server_id)) {
        printf("  server_id: \"%s\" is not a server id: 3-63 of a-z, 0-9 and '-', beginning "
               "and ending with a letter or digit (e.g. jp-38-ehime-pref)\n",
               cfg.server_id);
        problems++;
    }
    struct stat st;
    if (cfg.web_root[0] && (stat(cfg.web_root, &st) != 0 || !S_ISDIR(st.st_mode))) {
        printf("  web_root: \"%s\" is not a directory: the web client's directory, or empty "
               "for the installed one\n",
               cfg.web_root);
        problems++;
    }
    if (kz_time_zone_load(cfg.time_zone, cfg.time_zone_posix, sizeof cfg.time_zone_posix, err,
                          sizeof err) != 0) {
        printf("  %s\n", err);
        problems++;
    }
    problems += srv_webhook_check(&cfg, stdout, "  ");
    if (problems) {
        printf("%d problem%s: kizunad serve would refuse this file\n", problems,
               problems == 1 ? "" : "s");
        return 1;
    }
    printf("  no problems\n");
    return 0;
}

int main(int argc, char **argv)
{
    /* The database holds password hashes and the key file the server's identity. */
    umask(077);
    if (sodium_init() < 0) {
        fprintf(stderr, "kizunad: libsodium failed to initialise\n");
        return 1;
    }
    if (argc < 2)
        return die_usage(NULL);
    const char *cmd = argv[1];
    if (strcmp(cmd, "init") == 0)
        return cmd_init(argc, argv);
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc, argv);
    if (strcmp(cmd, "fingerprint") == 0)
        return cmd_fingerprint(argc, argv);
    if (strcmp(cmd, "backup") == 0)
        return cmd_backup(argc, argv);
    if (strcmp(cmd, "verify-backup") == 0)
        return cmd_verify_backup(argc, argv);
    if (strcmp(cmd, "restore") == 0)
        return cmd_restore(argc, argv);
    if (strcmp(cmd, "verify-record") == 0)
        return cmd_verify_record(argc, argv);
    if (strcmp(cmd, "reset-admin") == 0)
        return cmd_reset_admin(argc, argv);
    if (strcmp(cmd, "check-config") == 0)
        return cmd_check_config(argc, argv);
    if (strcmp(cmd, "config") == 0) {
        kz_config_describe(stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("kizunad %s (schema %d)\n", KZ_VERSION, store_schema_latest());
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    return die_usage("unknown command");
}
