/* keystore.c - this device's private keys and the rooms' epoch keys, in the config directory
 * (files 0600, directories 0700). Layout:
 *   device.json        this device: id, login, server, both key pairs (secret)
 *   rooms/ROOM.json    epoch keys of one room: our own current epoch and every one received
 *   staging/           photos being uploaded (upload.c: the encrypted blob, and its state
 *                      with the caption, GPS, thumbnail and keys sealed under a key derived
 *                      from this device's) or downloaded (photo.c: ciphertext)
 *   contacts.json      each user's signed device list as this device accepted it, and whom
 *                      the user verified (trust.c)
 * Logging out wipes all of it, reachable server or not: a shared phone must keep nothing that
 * reads the rooms' photos. A file rewritten here leaves no old copy (ks_write_private). */
#include "e2ee.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- base64 ---- */

char *b64url(const uint8_t *bin, size_t n)
{
    size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *out = malloc(cap);
    if (out)
        sodium_bin2base64(out, cap, bin, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return out;
}

bool unb64url_exact(const char *text, uint8_t *out, size_t n)
{
    size_t got = 0;
    return text &&
           sodium_base642bin(out, n, text, strlen(text), NULL, &got, NULL,
                             sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 &&
           got == n;
}

bool unb64url(const char *text, uint8_t **out, size_t *n)
{
    *out = NULL;
    if (!text)
        return false;
    size_t cap = strlen(text) / 4 * 3 + 3;
    uint8_t *buf = malloc(cap);
    if (!buf || sodium_base642bin(buf, cap, text, strlen(text), NULL, n, NULL,
                                  sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
        free(buf);
        return false;
    }
    *out = buf;
    return true;
}

void add_b64(cJSON *o, const char *name, const uint8_t *bin, size_t n)
{
    char *t = b64url(bin, n);
    cJSON_AddStringToObject(o, name, t ? t : "");
    free(t);
}

/* ---- files ---- */

void ks_path(char *out, size_t n, const char *fmt, ...)
{
    char dir[2048], rel[1024];
    cli_config_dir(dir, sizeof dir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    snprintf(out, n, "%s/%s", dir, rel);
}

static int mkparent(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return 0;
    *slash = '\0';
    return cli_mkdirs(dir);
}

int ks_write_private(const char *path, const void *data, size_t len)
{
    char tmp[4200], old[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(old, sizeof old, "%s.old", path);
    if (mkparent(path) != 0)
        return -1;
    ks_shred(tmp); /* a run cut off before its rename */
    ks_shred(old); /* a run cut off before it overwrote the copy it replaced */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    /* fchmod as well: an old file left with wider bits by someone else is narrowed. */
    bool ok = fchmod(fd, 0600) == 0 && write(fd, data, len) == (ssize_t)len && fsync(fd) == 0;
    close(fd);
    /* The rename alone would leave the replaced file's bytes (keys) in a free inode: a second
     * name keeps that inode until its bytes are overwritten, after the new file is in place,
     * so a cut at any point loses neither the old keys nor the new ones (issue 14, item 7). */
    bool linked = ok && link(path, old) == 0;
    if (!ok || rename(tmp, path) != 0) {
        if (linked)
            unlink(old);
        ks_shred(tmp);
        return -1;
    }
    if (linked)
        ks_shred(old);
    return 0;
}

int ks_write_json(const char *path, const cJSON *doc)
{
    char *text = cJSON_PrintUnformatted(doc);
    if (!text)
        return -1;
    int rc = ks_write_private(path, text, strlen(text));
    sodium_memzero(text, strlen(text)); /* it may hold keys */
    cJSON_free(text);
    return rc;
}

char *ks_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0, got;
    char *buf = malloc(cap + 1);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *grown = realloc(buf, (cap *= 2) + 1);
            if (!grown)
                free(buf);
            buf = grown;
        }
    }
    bool err = ferror(f);
    fclose(f);
    if (!buf || err) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

cJSON *ks_read_json(const char *path)
{
    size_t n;
    char *text = ks_read_file(path, &n);
    if (!text)
        return NULL;
    cJSON *doc = cJSON_Parse(text);
    sodium_memzero(text, n);
    free(text);
    return doc;
}

void ks_shred(const char *path)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    struct stat sb;
    if (fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode)) {
        static const char zeros[65536];
        for (off_t done = 0; done < sb.st_size;) {
            size_t n = (size_t)(sb.st_size - done < (off_t)sizeof zeros ? sb.st_size - done
                                                                        : (off_t)sizeof zeros);
            ssize_t w = write(fd, zeros, n);
            if (w <= 0)
                break;
            done += w;
        }
        fsync(fd);
    }
    if (fd >= 0)
        close(fd);
    unlink(path);
}

/* Shreds every file in a directory (one level) and removes it. */
static void shred_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
            continue;
        char path[4600];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ks_shred(path);
    }
    closedir(d);
    rmdir(dir);
}

void keystore_wipe(void)
{
    /* The device's keys, and what this device decided about others' (contacts.json: whom it
     * verified), with any copy a cut-off write left (.tmp, .old). */
    static const char *const files[] = {"device.json", "contacts.json"};
    static const char *const tails[] = {"", ".tmp", ".old"};
    char path[4200];
    for (size_t f = 0; f < sizeof files / sizeof *files; f++)
        for (size_t t = 0; t < sizeof tails / sizeof *tails; t++) {
            ks_path(path, sizeof path, "%s%s", files[f], tails[t]);
            ks_shred(path);
        }
    ks_path(path, sizeof path, "rooms");
    shred_dir(path);
    ks_path(path, sizeof path, "staging");
    shred_dir(path);
}

/* ---- this device ---- */

void ks_device_id(const uint8_t sign_pk[32], char out[DEVICE_ID_MAX])
{
    uint8_t h[16];
    crypto_generichash(h, sizeof h, sign_pk, 32, NULL, 0);
    sodium_bin2base64(out, DEVICE_ID_MAX, h, sizeof h, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

void ks_device_wipe(struct ks_device *d)
{
    media_device_keys_wipe(&d->k);
    sodium_memzero(d, sizeof *d);
}

static bool device_load(const struct session *s, struct ks_device *d)
{
    char path[4200];
    ks_path(path, sizeof path, "device.json");
    cJSON *o = ks_read_json(path);
    bool ok = o && strcmp(cli_str(o, "login", NULL), s->login) == 0 &&
              strcmp(cli_str(o, "server", NULL), s->server) == 0 &&
              unb64url_exact(cli_str(o, "sign_pk", NULL), d->k.sign_pk, 32) &&
              unb64url_exact(cli_str(o, "sign_sk", NULL), d->k.sign_sk, 64) &&
              unb64url_exact(cli_str(o, "box_pk", NULL), d->k.box_pk, 32) &&
              unb64url_exact(cli_str(o, "box_sk", NULL), d->k.box_sk, 32);
    cJSON_Delete(o);
    if (ok) {
        ks_device_id(d->k.sign_pk, d->id);
        snprintf(d->login, sizeof d->login, "%s", s->login);
    }
    return ok;
}

bool ks_device_local(const struct session *s, struct ks_device *out)
{
    memset(out, 0, sizeof *out);
    if (device_load(s, out))
        return true;
    ks_device_wipe(out);
    return false;
}

void ks_staging_key(const struct ks_device *d, uint8_t key[32])
{
    static const char domain[] = "kizuna/staging/v1";
    crypto_generichash(key, 32, (const unsigned char *)domain, sizeof domain - 1, d->k.box_sk,
                       sizeof d->k.box_sk);
}

/* New keys for this login on this server. Anything kept for older keys goes first: room keys
 * received by a revoked device must not outlive it. */
static int device_create(const struct session *s, struct ks_device *d)
{
    keystore_wipe();
    if (media_device_keys_new(&d->k) != MEDIA_OK)
        return -1;
    ks_device_id(d->k.sign_pk, d->id);
    snprintf(d->login, sizeof d->login, "%s", s->login);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "server", s->server);
    cJSON_AddStringToObject(o, "login", s->login);
    cJSON_AddStringToObject(o, "device", d->id);
    add_b64(o, "sign_pk", d->k.sign_pk, 32);
    add_b64(o, "sign_sk", d->k.sign_sk, 64);
    add_b64(o, "box_pk", d->k.box_pk, 32);
    add_b64(o, "box_sk", d->k.box_sk, 32);
    char path[4200];
    ks_path(path, sizeof path, "device.json");
    int rc = ks_write_json(path, o);
    cJSON_Delete(o);
    return rc;
}

/* device.register; *conflict is set when the server says these keys cannot be used. */
static int device_register(struct kzc *c, const struct ks_device *d, bool *conflict)
{
    uint8_t sig[64];
    *conflict = false;
    char who[CLI_QUALIFIED_MAX];
    if (media_devkey_sign(cli_qualify(d->login, who), d->id, &d->k, sig) != MEDIA_OK)
        return EXIT_REFUSED;
    cJSON *args = cJSON_CreateObject();
    add_b64(args, "sign_pk", d->k.sign_pk, 32);
    add_b64(args, "box_pk", d->k.box_pk, 32);
    add_b64(args, "sig", sig, 64);
    /* No label: the server names the device as its session was named at login (--device). */
    cJSON *reply = kzc_call(c, "device.register", args, TIMEOUT_MS);
    if (!reply)
        return cli_unreachable(kzc_error(c));
    if (strcmp(cli_str(reply, "error", "code"), "conflict") == 0) {
        *conflict = true;
        cJSON_Delete(reply);
        return EXIT_REFUSED;
    }
    int rc = cli_check_reply(reply);
    cJSON_Delete(reply);
    return rc;
}

int ks_device_ensure(struct kzc *c, const struct session *s, struct ks_device *out)
{
    memset(out, 0, sizeof *out);
    if (!device_load(s, out) && device_create(s, out) != 0) {
        fprintf(stderr, "kizuna: cannot save this device's keys: %s\n", strerror(errno));
        return EXIT_REFUSED;
    }
    bool conflict;
    int rc = device_register(c, out, &conflict);
    if (conflict) {
        /* These keys were revoked (or belong to another account): a fresh device. */
        ks_device_wipe(out);
        if (device_create(s, out) != 0)
            return EXIT_REFUSED;
        rc = device_register(c, out, &conflict);
        if (conflict)
            fprintf(stderr, "kizuna: the server refuses this device's new keys\n");
    }
    /* Registered: now the user's own signature must vouch for it (trust.c). A list that does
     * not check out leaves this device unapproved, which trust.c has said; only a lost server
     * stops the command. */
    if (rc == EXIT_OK && trust_own(c, out) == EXIT_UNREACHABLE)
        rc = EXIT_UNREACHABLE;
    if (rc != EXIT_OK)
        ks_device_wipe(out);
    return rc;
}

/* ---- room key state ---- */

cJSON *ks_room_load(const char *room_id)
{
    char path[4200];
    ks_path(path, sizeof path, "rooms/%s.json", room_id);
    cJSON *o = ks_read_json(path);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        o = cJSON_CreateObject();
    }
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(o, "keys")))
        cJSON_AddObjectToObject(o, "keys");
    return o;
}

int ks_room_save(const char *room_id, const cJSON *state)
{
    char path[4200];
    ks_path(path, sizeof path, "rooms/%s.json", room_id);
    return ks_write_json(path, state);
}
