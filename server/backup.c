/* backup.c - `kizunad backup`, `verify-backup` and `restore`: a consistent copy of a data
 * directory taken while the server runs, a manifest that proves it whole, and putting it in
 * place on another machine (the town hall evacuated with its server).
 *
 * The database is copied with SQLite's online backup API in one read transaction: a snapshot
 * of one commit. Blobs are immutable and named by their hash, and a blob's row is only ever
 * committed after its file is in place, so copying the blobs the snapshot lists gives a
 * consistent whole. The manifest lists every file with its size and BLAKE2b-256 and ends with
 * a hash of itself, so a truncated or edited manifest is caught too. */
#include "server.h"

#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MANIFEST       "MANIFEST"
#define MANIFEST_MAGIC "kizuna-backup 1"
#define HASH_HEX       65

struct copy_ctx {
    const char *from_dir, *to_dir;
    FILE *manifest;
    crypto_generichash_state mh; /* over the manifest's lines */
    char *err;
    size_t errlen;
    struct kz_backup_stats *stats;
    bool failed;
};

static void fail(struct copy_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct copy_ctx *c, const char *fmt, ...)
{
    if (c->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    c->failed = true;
}

static int fsync_path(const char *path, bool dir)
{
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Hashes a file (BLAKE2b-256, hex) and gives its size; with `to`, copies it there as it reads
 * (mode 0600, synced). -1 with errno on failure. */
static int hash_copy(const char *from, const char *to, char hex[HASH_HEX], int64_t *size)
{
    int in = open(from, O_RDONLY | O_CLOEXEC), out = -1;
    if (in < 0)
        return -1;
    if (to && (out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
        close(in);
        return -1;
    }
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    unsigned char buf[65536];
    ssize_t n;
    int rc = 0;
    *size = 0;
    while ((n = read(in, buf, sizeof buf)) > 0) {
        crypto_generichash_update(&h, buf, (size_t)n);
        *size += n;
        for (ssize_t done = 0, w; out >= 0 && done < n; done += w)
            if ((w = write(out, buf + done, (size_t)(n - done))) <= 0) {
                rc = -1;
                break;
            }
        if (rc)
            break;
    }
    if (n < 0 || (out >= 0 && fsync(out) != 0))
        rc = -1;
    int saved = errno;
    close(in);
    if (out >= 0)
        close(out);
    uint8_t bin[32];
    crypto_generichash_final(&h, bin, sizeof bin);
    sodium_bin2hex(hex, HASH_HEX, bin, sizeof bin);
    errno = saved;
    return rc;
}

static void manifest_line(struct copy_ctx *c, const char *hex, int64_t size, const char *rel)
{
    char line[512];
    int n = snprintf(line, sizeof line, "%s  %lld  %s\n", hex, (long long)size, rel);
    crypto_generichash_update(&c->mh, (const unsigned char *)line, (size_t)n);
    if (fputs(line, c->manifest) == EOF)
        fail(c, "cannot write the manifest: %s", strerror(errno));
}

/* Copies DIR/rel to OUT/rel and lists it; `expect` (a blob's name) must equal its hash. */
static void copy_file(struct copy_ctx *c, const char *rel, const char *expect)
{
    char from[4400], to[4400], hex[HASH_HEX];
    int64_t size;
    snprintf(from, sizeof from, "%s/%s", c->from_dir, rel);
    snprintf(to, sizeof to, "%s/%s", c->to_dir, rel);
    if (hash_copy(from, to, hex, &size) != 0) {
        fail(c, "cannot copy %s: %s", from, strerror(errno));
        return;
    }
    if (expect && strcmp(expect, hex) != 0) {
        fail(c,
             "%s is damaged: its contents do not match its name (restore it from an older "
             "backup)",
             from);
        return;
    }
    manifest_line(c, hex, size, rel);
    c->stats->files++;
    c->stats->bytes += size;
}

static int copy_blob(void *arg, const char *id, int64_t size)
{
    struct copy_ctx *c = arg;
    (void)size;
    char rel[128], dir[4400];
    if (!srv_blob_id_valid(id)) {
        fail(c, "the database lists a malformed blob id");
        return 1;
    }
    snprintf(dir, sizeof dir, "%s/blobs/%.2s", c->to_dir, id);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fail(c, "cannot create %s: %s", dir, strerror(errno));
        return 1;
    }
    snprintf(rel, sizeof rel, "blobs/%.2s/%s", id, id);
    copy_file(c, rel, id);
    c->stats->blobs++;
    return c->failed;
}

int kz_backup_make(const char *data_dir, const char *out_dir, struct kz_backup_stats *stats,
                   char *err, size_t errlen)
{
    memset(stats, 0, sizeof *stats);
    struct copy_ctx c = {
        .from_dir = data_dir, .to_dir = out_dir, .err = err, .errlen = errlen, .stats = stats};
    char path[4400], db_from[4400];
    if (mkdir(out_dir, 0700) != 0) {
        snprintf(err, errlen, "cannot create %s: %s (it must not exist yet)", out_dir,
                 strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/blobs", out_dir);
    snprintf(db_from, sizeof db_from, "%s/kizuna.db", data_dir);
    char db_to[4400];
    snprintf(db_to, sizeof db_to, "%s/kizuna.db", out_dir);
    if (mkdir(path, 0700) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    /* The snapshot first, to a temporary name: copy_file then hashes it into its place. */
    char snap[4400];
    snprintf(snap, sizeof snap, "%s/.snapshot.db", out_dir);
    if (store_backup_file(db_from, snap, err, errlen) != STORE_OK)
        return -1;
    snprintf(path, sizeof path, "%s/MANIFEST.tmp", out_dir);
    c.manifest = fopen(path, "w");
    if (!c.manifest) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(snap);
        return -1;
    }
    crypto_generichash_init(&c.mh, NULL, 0, 32);
    char head[128];
    time_t now = time(NULL);
    struct tm tm;
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    snprintf(head, sizeof head, "%s\ncreated %s\n", MANIFEST_MAGIC, when);
    crypto_generichash_update(&c.mh, (const unsigned char *)head, strlen(head));
    fputs(head, c.manifest);
    /* The snapshot goes in under its real name, hashed as it is copied. */
    char hex[HASH_HEX];
    int64_t size;
    if (hash_copy(snap, db_to, hex, &size) != 0)
        fail(&c, "cannot copy the snapshot: %s", strerror(errno));
    else
        manifest_line(&c, hex, size, "kizuna.db");
    unlink(snap);
    stats->files++;
    stats->bytes += size;
    if (!c.failed)
        copy_file(&c, "server.key", NULL);
    if (!c.failed && store_blobs_in_file(db_to, copy_blob, &c, err, errlen) != STORE_OK)
        c.failed = true;
    if (!c.failed) {
        uint8_t mh[32];
        crypto_generichash_final(&c.mh, mh, sizeof mh);
        sodium_bin2hex(hex, sizeof hex, mh, sizeof mh);
        fprintf(c.manifest, "end %s\n", hex);
    }
    if (fflush(c.manifest) != 0 || fsync(fileno(c.manifest)) != 0)
        fail(&c, "cannot write the manifest: %s", strerror(errno));
    fclose(c.manifest);
    char final[4400];
    snprintf(final, sizeof final, "%s/%s", out_dir, MANIFEST);
    if (!c.failed && rename(path, final) != 0)
        fail(&c, "cannot write %s: %s", final, strerror(errno));
    if (!c.failed && fsync_path(out_dir, true) != 0)
        fail(&c, "cannot sync %s: %s", out_dir, strerror(errno));
    return c.failed ? -1 : 0;
}

/* ---- verify-backup ---- */

struct listed {
    char rel[128];
    bool seen;
};

static void problem(FILE *report, int *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problem(FILE *report, int *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("problem: ", report);
    vfprintf(report, fmt, ap);
    fputc('\n', report);
    va_end(ap);
    (*n)++;
}

/* Every regular file under dir/sub that the manifest does not list is a problem. */
static void find_extras(const char *dir, const char *sub, struct listed *l, size_t nl, FILE *report,
                        int *n)
{
    char path[4400];
    snprintf(path, sizeof path, "%s%s%s", dir, *sub ? "/" : "", sub);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char rel[300];
        snprintf(rel, sizeof rel, "%s%s%s", sub, *sub ? "/" : "", e->d_name);
        char full[4800];
        snprintf(full, sizeof full, "%s/%s", dir, rel);
        struct stat sb;
        if (stat(full, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode)) {
            find_extras(dir, rel, l, nl, report, n);
            continue;
        }
        if (!*sub && strcmp(e->d_name, MANIFEST) == 0)
            continue;
        bool listed = false;
        for (size_t i = 0; i < nl && !listed; i++)
            listed = strcmp(l[i].rel, rel) == 0;
        if (!listed)
            problem(report, n, "%s is not in the manifest", rel);
    }
    closedir(d);
}

int kz_backup_verify(const char *dir, FILE *report, struct kz_backup_stats *stats)
{
    memset(stats, 0, sizeof *stats);
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, MANIFEST);
    FILE *m = fopen(path, "r");
    int n = 0;
    if (!m) {
        problem(report, &n, "cannot read %s: %s", path, strerror(errno));
        return n;
    }
    crypto_generichash_state mh;
    crypto_generichash_init(&mh, NULL, 0, 32);
    char line[600];
    size_t nl = 0, cap = 0;
    struct listed *l = NULL;
    bool ended = false, magic = false;
    int lineno = 0;
    while (fgets(line, sizeof line, m)) {
        lineno++;
        if (strncmp(line, "end ", 4) == 0) {
            uint8_t bin[32];
            char hex[HASH_HEX];
            crypto_generichash_final(&mh, bin, sizeof bin);
            sodium_bin2hex(hex, sizeof hex, bin, sizeof bin);
            line[strcspn(line, "\n")] = '\0';
            if (strcmp(line + 4, hex) != 0)
                problem(report, &n, "the manifest was altered (its closing hash does not match)");
            ended = true;
            break;
        }
        crypto_generichash_update(&mh, (const unsigned char *)line, strlen(line));
        if (lineno == 1) {
            magic = strcmp(line, MANIFEST_MAGIC "\n") == 0;
            continue;
        }
        if (strncmp(line, "created ", 8) == 0)
            continue;
        char want[HASH_HEX], rel[128], hex[HASH_HEX];
        long long size;
        if (sscanf(line, "%64s %lld %127s", want, &size, rel) != 3 || strstr(rel, "..") ||
            rel[0] == '/') {
            problem(report, &n, "manifest line %d is malformed", lineno);
            continue;
        }
        if (nl == cap) {
            cap = cap ? cap * 2 : 64;
            struct listed *grown = realloc(l, cap * sizeof *l);
            if (!grown)
                break;
            l = grown;
        }
        snprintf(l[nl].rel, sizeof l[nl].rel, "%s", rel);
        l[nl++].seen = true;
        char full[4600];
        int64_t got;
        snprintf(full, sizeof full, "%s/%s", dir, rel);
        if (hash_copy(full, NULL, hex, &got) != 0) {
            problem(report, &n, "%s is missing or unreadable: %s", rel, strerror(errno));
            continue;
        }
        if (got != size)
            problem(report, &n, "%s has %lld bytes, the manifest says %lld", rel, (long long)got,
                    size);
        else if (strcmp(hex, want) != 0)
            problem(report, &n, "%s is damaged: its hash does not match the manifest", rel);
        stats->files++;
        stats->bytes += got;
        if (strncmp(rel, "blobs/", 6) == 0)
            stats->blobs++;
    }
    fclose(m);
    if (!magic)
        problem(report, &n, "%s is not a Kizuna backup manifest", path);
    if (!ended)
        problem(report, &n, "the manifest is truncated (no closing hash)");
    bool has_db = false, has_key = false;
    for (size_t i = 0; i < nl; i++) {
        has_db |= strcmp(l[i].rel, "kizuna.db") == 0;
        has_key |= strcmp(l[i].rel, "server.key") == 0;
    }
    if (!has_db || !has_key)
        problem(report, &n, "the manifest does not list kizuna.db and server.key");
    find_extras(dir, "", l, nl, report, &n);
    char err[512];
    snprintf(path, sizeof path, "%s/kizuna.db", dir);
    if (has_db && store_check_file(path, err, sizeof err) != STORE_OK)
        problem(report, &n, "%s", err);
    free(l);
    return n;
}

/* ---- restore ---- */

static int copy_tree(const char *from, const char *to, const char *sub, char *err, size_t errlen)
{
    char src[4400], dst[4400];
    snprintf(src, sizeof src, "%s%s%s", from, *sub ? "/" : "", sub);
    snprintf(dst, sizeof dst, "%s%s%s", to, *sub ? "/" : "", sub);
    DIR *d = opendir(src);
    if (!d) {
        snprintf(err, errlen, "cannot read %s: %s", src, strerror(errno));
        return -1;
    }
    if (*sub && mkdir(dst, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dst, strerror(errno));
        closedir(d);
        return -1;
    }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.' || (!*sub && strcmp(e->d_name, MANIFEST) == 0))
            continue;
        char rel[300], full[4800], out[4800];
        snprintf(rel, sizeof rel, "%s%s%s", sub, *sub ? "/" : "", e->d_name);
        snprintf(full, sizeof full, "%s/%s", from, rel);
        snprintf(out, sizeof out, "%s/%s", to, rel);
        struct stat sb;
        if (stat(full, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode)) {
            rc = copy_tree(from, to, rel, err, errlen);
            continue;
        }
        char hex[HASH_HEX];
        int64_t size;
        if (hash_copy(full, out, hex, &size) != 0) {
            snprintf(err, errlen, "cannot copy %s: %s", full, strerror(errno));
            rc = -1;
        }
    }
    closedir(d);
    if (rc == 0 && fsync_path(dst, true) != 0) {
        snprintf(err, errlen, "cannot sync %s: %s", dst, strerror(errno));
        rc = -1;
    }
    return rc;
}

int kz_backup_restore_files(const char *backup_dir, const char *data_dir, char *err, size_t errlen)
{
    if (mkdir(data_dir, 0700) != 0) {
        snprintf(err, errlen, "cannot create %s: %s (restore into a new directory)", data_dir,
                 strerror(errno));
        return -1;
    }
    return copy_tree(backup_dir, data_dir, "", err, errlen);
}

/* ---- what the last backup and verification were (DATA/backup-status.json) ---- */

/* The status file as an object (a new one if it is missing or unreadable); the caller owns it. */
static cJSON *status_load(const char *path)
{
    FILE *f = fopen(path, "rb");
    char text[8192];
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f)
        fclose(f);
    text[n] = '\0';
    cJSON *o = n ? cJSON_Parse(text) : NULL;
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        o = cJSON_CreateObject();
    }
    return o;
}

int kz_backup_note(const char *data_dir, const char *what, const char *dir, bool ok,
                   const struct kz_backup_stats *st, const char *error)
{
    char path[4200], tmp[4300], full[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", data_dir, KZ_BACKUP_STATUS_FILE);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cJSON *o = status_load(path);
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "at", (double)kz_now_ms());
    cJSON_AddStringToObject(e, "dir", realpath(dir, full) ? full : dir);
    cJSON_AddBoolToObject(e, "ok", ok);
    if (st) {
        cJSON_AddNumberToObject(e, "files", (double)st->files);
        cJSON_AddNumberToObject(e, "blobs", (double)st->blobs);
        cJSON_AddNumberToObject(e, "bytes", (double)st->bytes);
    }
    if (error)
        cJSON_AddStringToObject(e, "error", error);
    cJSON_DeleteItemFromObjectCaseSensitive(o, what);
    cJSON_AddItemToObject(o, what, e);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    FILE *f = text ? fopen(tmp, "wb") : NULL;
    bool written = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    written = f && fclose(f) == 0 && written;
    cJSON_free(text);
    /* Renamed whole: kizunad reads it at any moment (admin.status). */
    if (!written || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

cJSON *kz_backup_status(const char *data_dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", data_dir, KZ_BACKUP_STATUS_FILE);
    return status_load(path);
}
