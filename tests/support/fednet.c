/* fednet.c - see fednet.h: starting, pairing and proxying several kizunad, cutting and healing
 * their links, killing and restarting them. */
#include "fednet.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define LINK_POLL_MS 20

const char *const fednet_ids[FEDNET_MAX] = {"jp-38-ehime-pref",    "jp-38201-matsuyama",
                                            "jp-38202-imabari",    "jp-38203-uwajima",
                                            "jp-38204-yawatahama", "jp-38506-ainan"};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Settings that make a test's links quick to notice a cut and resend summaries often, each
 * added only if this kizunad has it and brought into its range (`kizunad config` lists both):
 * the fixture starts servers with and without the replication core's settings. */
static const char *const quick_settings[][2] = {
    {"federation_ping_s", "1"},
    {"federation_hangup_s", "4"},
    {"federation_summary_s", "1"},
    {"shutdown_grace_ms", "500"},
};

static void known_settings(char *out, size_t n)
{
    static char described[65536];
    const char *argv[] = {KIZUNAD_PATH, "config", NULL};
    cr_assert_eq(run_capture(argv, NULL, NULL, described, sizeof described), 0, "kizunad config");
    size_t at = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof quick_settings / sizeof quick_settings[0]; i++) {
        char name[80];
        snprintf(name, sizeof name, "\n%s ", quick_settings[i][0]);
        const char *line = strstr(described, name);
        if (!line)
            continue;
        /* Within the setting's range ("range [5, 86400]" on its line), which may change. */
        long long v = strtoll(quick_settings[i][1], NULL, 10), lo, hi;
        const char *range = strstr(line, "range [");
        const char *eol = strchr(line + 1, '\n');
        if (range && (!eol || range < eol) && sscanf(range, "range [%lld, %lld]", &lo, &hi) == 2)
            v = v < lo ? lo : v > hi ? hi : v;
        int w = snprintf(out + at, n - at, ",\"%s\":%lld", quick_settings[i][0], v);
        cr_assert(w > 0 && (size_t)w < n - at);
        at += (size_t)w;
    }
}

/* The value after label in `kizunad fingerprint`'s output, up to any stop character. */
static void line_value(const char *out, const char *label, const char *stop, char *dst, size_t n)
{
    const char *p = strstr(out, label);
    cr_assert_not_null(p, "no '%s' in: %s", label, out);
    p += strlen(label);
    p += strspn(p, " ");
    snprintf(dst, n, "%.*s", (int)strcspn(p, stop), p);
}

static void ident(struct fednet_server *s)
{
    char out[4096];
    const char *argv[] = {KIZUNAD_PATH, "fingerprint", "--data", s->d.dir, NULL};
    cr_assert_eq(run_capture(argv, NULL, NULL, out, sizeof out), 0, "%s", out);
    line_value(out, "server id:", " \n(", s->id, sizeof s->id);
    line_value(out, "public key:", " \n(", s->key, sizeof s->key);
    line_value(out, "fingerprint:", "\n", s->fp, sizeof s->fp);
}

cJSON *fednet_admin(struct fednet *net, int i, const char *fmt, ...)
{
    char req[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(req, sizeof req, fmt, ap);
    va_end(ap);
    struct ws w;
    cr_assert(ws_open(&w, net->s[i].d.port), "connect to %s", net->s[i].id);
    cr_assert(ws_login(&w, "admin", TEST_ADMIN_PASSWORD, NULL), "admin login on %s", net->s[i].id);
    cJSON *r = ws_callf(&w, "%s", req);
    ws_close_fd(&w);
    cr_assert_not_null(r, "no reply from %s to %s", net->s[i].id, req);
    return r;
}

void fednet_user_add(struct fednet *net, int i, const char *login)
{
    cJSON *r = fednet_admin(net, i, "\"op\":\"user.add\",\"login\":\"%s\",\"password\":\"%s%s\"",
                            login, login, TEST_PW_SUFFIX);
    cr_assert_str_eq(reply_code(r), "ok", "user.add %s on %s", login, net->s[i].id);
    cJSON_Delete(r);
}

void fednet_start(struct fednet *net, int n, const char *const *ids, const char *extra_config,
                  uint64_t seed)
{
    cr_assert(n >= 2 && n <= FEDNET_MAX);
    memset(net, 0, sizeof *net);
    net->n = n;
    net->seed = seed;
    char quick[512], cfg[2048];
    known_settings(quick, sizeof quick);
    for (int i = 0; i < n; i++) {
        struct fednet_server *s = &net->s[i];
        snprintf(cfg, sizeof cfg,
                 "\"server_id\":\"%s\",\"federation_listen\":\"127.0.0.1:0\"%s%s%s",
                 ids ? ids[i] : fednet_ids[i], quick, extra_config ? "," : "",
                 extra_config ? extra_config : "");
        kzd_setup_with(&s->d, cfg);
        s->running = true;
        cr_assert_gt(s->d.fed_port, 0, "the 'federating on' line gives the federation port");
        char dir[sizeof s->d.dir];
        memcpy(dir, s->d.dir, sizeof dir); /* gcc: the same object as s->db (-Wrestrict) */
        snprintf(s->db, sizeof s->db, "%s/kizuna.db", dir);
        ident(s);
        cr_assert_str_eq(s->id, ids ? ids[i] : fednet_ids[i]);
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            if (i == j)
                continue;
            char name[48];
            snprintf(name, sizeof name, "%.21s->%.21s", net->s[i].id, net->s[j].id);
            struct fp_config pc = {.target_port = net->s[j].d.fed_port,
                                   .seed = seed ^ ((uint64_t)(i * FEDNET_MAX + j + 1) << 32),
                                   .name = name};
            net->proxy[i][j] = fp_start(&pc);
            cr_assert_not_null(net->proxy[i][j], "proxy %s", name);
        }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            if (i == j)
                continue;
            const struct fednet_server *p = &net->s[j];
            cJSON *r = fednet_admin(net, i,
                                    "\"op\":\"peer.add\",\"server\":\"%s\",\"key\":\"%s\","
                                    "\"addresses\":[\"127.0.0.1:%d\"],\"fingerprint\":\"%s\"",
                                    p->id, p->key, fp_port(net->proxy[i][j]), p->fp);
            cr_assert_str_eq(reply_code(r), "ok", "peer.add %s on %s", p->id, net->s[i].id);
            cJSON_Delete(r);
        }
    fednet_wait_links(net, 20000);
}

void fednet_stop(struct fednet *net)
{
    /* SIGTERM to all first, so their shutdown graces overlap; kzd_teardown then waits for each
     * and asserts a clean exit (a second SIGTERM only asks again). */
    for (int i = 0; i < net->n; i++)
        if (net->s[i].d.pid > 0)
            kill(net->s[i].d.pid, SIGTERM);
    for (int i = 0; i < net->n; i++)
        if (net->s[i].d.dir[0])
            kzd_teardown(&net->s[i].d);
    for (int i = 0; i < net->n; i++)
        for (int j = 0; j < net->n; j++)
            if (net->proxy[i][j]) {
                fp_stop(net->proxy[i][j]);
                net->proxy[i][j] = NULL;
            }
    net->n = 0;
}

/* Server i's peer.list: whether each peer's link is connected (by index); false if i did not
 * answer (restarting). */
static bool links_of(struct fednet *net, int i, bool up[FEDNET_MAX])
{
    memset(up, 0, sizeof(bool) * FEDNET_MAX);
    struct ws w;
    if (!ws_open(&w, net->s[i].d.port))
        return false;
    cJSON *r = NULL;
    if (ws_login(&w, "admin", TEST_ADMIN_PASSWORD, NULL))
        r = ws_try_call(&w, "{\"id\":7,\"op\":\"peer.list\"}");
    ws_close_fd(&w);
    if (!r)
        return false;
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(r, "peers"))
    {
        const cJSON *sv = cJSON_GetObjectItem(p, "server");
        bool c = cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(p, "link"), "connected"));
        for (int j = 0; j < net->n; j++)
            if (cJSON_IsString(sv) && strcmp(sv->valuestring, net->s[j].id) == 0)
                up[j] = c;
    }
    cJSON_Delete(r);
    return true;
}

long long fednet_wait_links(struct fednet *net, int deadline_ms)
{
    long long t0 = mono_ms();
    char missing[512];
    for (;;) {
        bool up[FEDNET_MAX][FEDNET_MAX];
        size_t at = 0;
        missing[0] = '\0';
        for (int i = 0; i < net->n; i++)
            if (!net->s[i].running || !links_of(net, i, up[i]))
                memset(up[i], 0, sizeof up[i]);
        for (int i = 0; i < net->n; i++)
            for (int j = 0; j < net->n; j++)
                if (i != j && !net->cut[i][j] && !up[i][j] && at < sizeof missing)
                    at += (size_t)snprintf(missing + at, sizeof missing - at, " %s->%s",
                                           net->s[i].id, net->s[j].id);
        if (!missing[0])
            return mono_ms() - t0;
        cr_assert(mono_ms() - t0 < deadline_ms, "links not connected after %d ms:%s", deadline_ms,
                  missing);
        sleep_ms(LINK_POLL_MS);
    }
}

void fednet_wait_down(struct fednet *net, int i, int j, int deadline_ms)
{
    long long t0 = mono_ms();
    for (;;) {
        bool up[FEDNET_MAX];
        if (links_of(net, i, up) && !up[j])
            return;
        cr_assert(mono_ms() - t0 < deadline_ms, "%s still shows %s connected after %d ms",
                  net->s[i].id, net->s[j].id, deadline_ms);
        sleep_ms(LINK_POLL_MS);
    }
}

void fednet_cut(struct fednet *net, int i, int j, bool cut)
{
    net->cut[i][j] = net->cut[j][i] = cut;
    fp_cut(net->proxy[i][j], cut);
    fp_cut(net->proxy[j][i], cut);
}

void fednet_isolate(struct fednet *net, int i, bool cut)
{
    for (int j = 0; j < net->n; j++)
        if (j != i)
            fednet_cut(net, i, j, cut);
}

void fednet_faults(struct fednet *net, const struct fp_faults *f)
{
    for (int i = 0; i < net->n; i++)
        for (int j = 0; j < net->n; j++)
            if (net->proxy[i][j])
                fp_set(net->proxy[i][j], f);
}

void fednet_stats(struct fednet *net, struct fp_stats *sum)
{
    memset(sum, 0, sizeof *sum);
    for (int i = 0; i < net->n; i++)
        for (int j = 0; j < net->n; j++) {
            if (!net->proxy[i][j])
                continue;
            struct fp_stats s;
            fp_stats(net->proxy[i][j], &s);
            sum->conns += s.conns;
            sum->refused += s.refused;
            sum->resets += s.resets;
            sum->errors += s.errors;
            sum->log_dropped += s.log_dropped;
            for (int d = 0; d < 2; d++) {
                sum->bytes_in[d] += s.bytes_in[d];
                sum->bytes_out[d] += s.bytes_out[d];
                sum->units[d] += s.units[d];
                sum->frames[d] += s.frames[d];
                sum->dups[d] += s.dups[d];
                sum->holds[d] += s.holds[d];
                sum->truncs[d] += s.truncs[d];
                sum->losses[d] += s.losses[d];
            }
        }
}

void fednet_kill(struct fednet *net, int i)
{
    kzd_kill(&net->s[i].d);
    net->s[i].running = false;
}

void fednet_restart(struct fednet *net, int i)
{
    kzd_start(&net->s[i].d);
    net->s[i].running = true;
}

/* ---- backups and restores ---- */

#define BACKUPS "fednet-backups"

void fednet_backup_db(const struct fednet *net, int i, const char *name, char *path, size_t n)
{
    int w = snprintf(path, n, "%s/" BACKUPS "/%s/kizuna.db", net->s[i].d.dir, name);
    cr_assert(w > 0 && (size_t)w < n);
}

void fednet_backup(struct fednet *net, int i, const char *name)
{
    struct fednet_server *s = &net->s[i];
    char parent[400], out_dir[480], out[4096];
    snprintf(parent, sizeof parent, "%s/" BACKUPS, s->d.dir);
    cr_assert(mkdir(parent, 0700) == 0 || errno == EEXIST, "mkdir %s", parent);
    snprintf(out_dir, sizeof out_dir, "%s/%s", parent, name);
    const char *argv[] = {KIZUNAD_PATH, "backup", "--data", s->d.dir, out_dir, NULL};
    int rc = run_capture(argv, NULL, NULL, out, sizeof out);
    cr_assert_eq(rc, 0, "kizunad backup of %s: %s", s->id, out);
    const char *verify[] = {KIZUNAD_PATH, "verify-backup", out_dir, NULL};
    rc = run_capture(verify, NULL, NULL, out, sizeof out);
    cr_assert_eq(rc, 0, "kizunad verify-backup of %s's backup %s: %s", s->id, name, out);
}

long long fednet_restore(struct fednet *net, int i, const char *name)
{
    struct fednet_server *s = &net->s[i];
    if (s->running)
        fednet_kill(net, i);
    char old[300], from[480], out[4096], cmd[1400];
    snprintf(old, sizeof old, "%s.pre-restore", s->d.dir);
    snprintf(from, sizeof from, "%s/" BACKUPS "/%s", old, name);
    cr_assert_eq(rename(s->d.dir, old), 0, "rename %s", s->d.dir);
    const char *argv[] = {KIZUNAD_PATH, "restore", from, "--data", s->d.dir, NULL};
    int rc = run_capture(argv, NULL, NULL, out, sizeof out);
    if (rc != 0) {
        /* Put the old directory back, so the teardown finds (and removes) it. */
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->d.dir);
        int rm = system(cmd);
        (void)rm;
        int back = rename(old, s->d.dir);
        (void)back;
        cr_assert_fail("kizunad restore of %s from %s (status %d): %s", s->id, name, rc, out);
    }
    long long inc = -1;
    const char *p = strstr(out, "incarnation ");
    if (p)
        inc = strtoll(p + strlen("incarnation "), NULL, 10);
    /* The backups and the server's log go on in the restored directory; the rest goes. */
    char a[480], b[480];
    snprintf(a, sizeof a, "%s/" BACKUPS, old);
    snprintf(b, sizeof b, "%s/" BACKUPS, s->d.dir);
    bool moved = rename(a, b) == 0;
    snprintf(a, sizeof a, "%s/stderr.log", old);
    snprintf(b, sizeof b, "%s/stderr.log", s->d.dir);
    moved = rename(a, b) == 0 && moved;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", old);
    rc = system(cmd);
    cr_assert(moved, "carrying %s's backups and log over to the restored directory", s->id);
    cr_assert_eq(rc, 0, "%s", cmd);
    FILE *f = fopen(b, "a");
    if (f) {
        fprintf(f, "---- fednet: data directory restored from backup %s: incarnation %lld ----\n",
                name, inc);
        fclose(f);
    }
    cr_assert_gt(inc, 1, "kizunad restore printed the new incarnation: %s", out);
    fednet_restart(net, i);
    return inc;
}
