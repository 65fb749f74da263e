/* upload.c - `photo send` and `photo resume`: process the JPEG, encrypt it once into a staging
 * file, upload it resumably (tus subset, docs/protocol.md "Uploads and blobs"), then post the
 * epoch key envelopes and the encrypted photo message.
 *
 * Staging (config dir, 0600): staging/NAME.kzb is the encrypted blob, staging/NAME.json its
 * state. In the clear the state holds only what the server sees anyway (room, login, blob id,
 * the blob's length, the upload's URL and offset, the message's client_id); everything else
 * (the caption, GPS, capture time, file name, thumbnail, the image's size and the blob's key)
 * is "sealed": XChaCha20-Poly1305 under ks_staging_key, with the blob id as additional data,
 * so a phone with a pending upload holds none of it in plaintext (README). NAME hashes (login,
 * room, the file's bytes), so running the same command again finds the state and resumes
 * without encrypting again. Both files go once the message is posted.
 *
 * Test hook: KIZUNA_TEST_CUT_AFTER_BYTES=N makes the command exit with status 75 as soon as
 * at least N bytes are committed on the server (and before the upload completes), as if the
 * process had been killed there. Tests use it to exercise resumption. KIZUNA_TEST_FORGET_HOLDERS=1
 * skips the check that ends an epoch a departed device holds, as a client that forgot it would,
 * so that tests see the server refuse the photo and the new epoch start after that. */
#include "e2ee.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_MIN        (16 * 1024)
#define CHUNK_START      (64 * 1024)
#define CHUNK_MAX        (1024 * 1024)
#define EPOCH_MAX_PHOTOS 100
#define EPOCH_MAX_AGE_MS (7LL * 24 * 3600 * 1000)
#define EXIT_TEST_CUT    75

/* ---- retries ---- */

long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void retry_start(struct retry *r)
{
    const char *env = getenv("KIZUNA_RETRY_MAX_S");
    long long max_s = env && *env ? atoll(env) : 300;
    r->deadline_ms = now_ms() + (max_s > 0 ? max_s : 0) * 1000;
    r->attempt = 0;
}

bool retry_wait(struct retry *r, const char *why)
{
    long long left = r->deadline_ms - now_ms();
    if (left <= 0)
        return false;
    /* Exponential with full jitter: many phones cut off by the same outage do not all come
     * back in the same second. */
    long long cap = 250LL << (r->attempt < 6 ? r->attempt : 6);
    if (cap > 10000)
        cap = 10000;
    long long delay = cap / 2 + (long long)randombytes_uniform((uint32_t)(cap / 2 + 1));
    if (delay > left)
        delay = left;
    r->attempt++;
    if (!json_out)
        fprintf(stderr, "kizuna: %s; retrying in %lld ms\n", why, delay);
    struct timespec d = {(time_t)(delay / 1000), (long)(delay % 1000) * 1000000L};
    nanosleep(&d, NULL);
    return true;
}

/* ---- staging ---- */

void staging_path(char *out, size_t n, const char *name)
{
    ks_path(out, n, "staging/%s", name);
}

static int state_save(const char *name, const cJSON *st)
{
    char path[4200], file[200];
    snprintf(file, sizeof file, "%s.json", name);
    staging_path(path, sizeof path, file);
    return ks_write_json(path, st);
}

static void staging_remove(const char *name)
{
    char path[4200], file[200];
    snprintf(file, sizeof file, "%s.json", name);
    staging_path(path, sizeof path, file);
    ks_shred(path); /* it holds the blob's key */
    snprintf(file, sizeof file, "%s.kzb", name);
    staging_path(path, sizeof path, file);
    unlink(path); /* ciphertext: nothing to shred */
}

/* hex(BLAKE2b-128(login 0 room 0 bytes)): the same photo for the same room finds its state. */
static void staging_name(const char *login, const char *room, const unsigned char *bytes,
                         size_t len, char out[40])
{
    uint8_t h[16];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    crypto_generichash_update(&st, (const unsigned char *)login, strlen(login) + 1);
    crypto_generichash_update(&st, (const unsigned char *)room, strlen(room) + 1);
    crypto_generichash_update(&st, bytes, len);
    crypto_generichash_final(&st, h, sizeof h);
    sodium_bin2hex(out, 40, h, sizeof h);
}

/* Encrypts the image into staging/NAME.kzb (through a temporary file, so a half-written blob
 * is never taken for a staged one). */
static int encrypt_to_staging(const char *name, const struct media_photo *p,
                              struct media_blob_info *info)
{
    char path[4200], tmp[4300], file[200];
    snprintf(file, sizeof file, "%s.kzb", name);
    staging_path(path, sizeof path, file);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    char dir[4200];
    staging_path(dir, sizeof dir, "");
    if (cli_mkdirs(dir) != 0)
        return -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    enum media_rc rc = media_blob_encrypt(p->image, p->image_len, media_write_file, f, info);
    bool ok = rc == MEDIA_OK && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

struct send_opts {
    const char *room, *file, *caption;
    bool no_gps;
    bool thumbnail_first; /* post the message as soon as the upload exists (finish_staged) */
    int max_edge;
};

/* ---- the sealed part of a staged state ---- */

/* The fields of a state that exist only sealed (a state written before sealing had them in
 * the clear: staging_upgrade moves them). */
static const char *const sealed_fields[] = {"key",     "len",         "w",      "h",
                                            "caption", "captured_at", "gps",    "file_name",
                                            "thumb",   "thumb_w",     "thumb_h"};

/* Overwrites every string value of a list of JSON items and of their children. */
static void json_wipe(cJSON *it)
{
    for (; it; it = it->next) {
        if (it->valuestring)
            sodium_memzero(it->valuestring, strlen(it->valuestring));
        json_wipe(it->child);
    }
}

/* Overwrites every string in a JSON tree (keys, captions, thumbnails), then deletes it. */
static void json_wipe_delete(cJSON *o)
{
    if (o) {
        if (o->valuestring)
            sodium_memzero(o->valuestring, strlen(o->valuestring));
        json_wipe(o->child);
    }
    cJSON_Delete(o);
}

/* Seals secret (not consumed) into st's "sealed". 0 or -1. */
static int staging_seal(const struct ks_device *me, cJSON *st, const cJSON *secret)
{
    uint8_t key[32];
    char *plain = cJSON_PrintUnformatted(secret);
    const char *blob = cli_str(st, "blob", NULL);
    if (!plain)
        return -1;
    size_t len = strlen(plain);
    unsigned char *ct = malloc(len + MEDIA_AEAD_OVERHEAD);
    ks_staging_key(me, key);
    char ad[128];
    int ad_len = snprintf(ad, sizeof ad, "kizuna/staging/v1%c%s", 0, blob);
    int rc = -1;
    if (ct && ad_len > 0 && (size_t)ad_len < sizeof ad &&
        media_aead_seal(plain, len, ad, (size_t)ad_len, key, ct) == MEDIA_OK) {
        cJSON_DeleteItemFromObjectCaseSensitive(st, "sealed");
        add_b64(st, "sealed", ct, len + MEDIA_AEAD_OVERHEAD);
        rc = 0;
    }
    sodium_memzero(key, sizeof key);
    sodium_memzero(plain, len);
    cJSON_free(plain);
    free(ct);
    return rc;
}

cJSON *staging_open(const struct ks_device *me, const cJSON *st)
{
    uint8_t key[32], *ct;
    size_t ct_len;
    if (!unb64url(cli_str(st, "sealed", NULL), &ct, &ct_len) || ct_len <= MEDIA_AEAD_OVERHEAD) {
        free(ct);
        return NULL;
    }
    size_t len = ct_len - MEDIA_AEAD_OVERHEAD;
    char *plain = calloc(1, len + 1);
    ks_staging_key(me, key);
    char ad[128];
    int ad_len = snprintf(ad, sizeof ad, "kizuna/staging/v1%c%s", 0, cli_str(st, "blob", NULL));
    cJSON *secret = NULL;
    if (plain && ad_len > 0 && (size_t)ad_len < sizeof ad &&
        media_aead_open(ct, ct_len, ad, (size_t)ad_len, key, (unsigned char *)plain) == MEDIA_OK)
        secret = cJSON_Parse(plain);
    if (secret && !cJSON_IsObject(secret)) {
        json_wipe_delete(secret);
        secret = NULL;
    }
    sodium_memzero(key, sizeof key);
    if (plain)
        sodium_memzero(plain, len);
    free(plain);
    free(ct);
    return secret;
}

void staging_secret_free(cJSON *secret)
{
    json_wipe_delete(secret);
}

/* A state from before sealing keeps its private fields in the clear: seal them and save it
 * (the old file is replaced by an atomic rename and its text never written again). 0 if the
 * state is sealed now, -1 if it cannot be. */
static int staging_upgrade(const struct ks_device *me, const char *name, cJSON *st)
{
    if (cJSON_GetObjectItemCaseSensitive(st, "sealed"))
        return 0;
    cJSON *secret = cJSON_CreateObject();
    for (size_t i = 0; i < sizeof sealed_fields / sizeof *sealed_fields; i++) {
        cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(st, sealed_fields[i]);
        if (v)
            cJSON_AddItemToObject(secret, sealed_fields[i], v);
    }
    int rc = staging_seal(me, st, secret);
    json_wipe_delete(secret);
    return rc == 0 ? state_save(name, st) : -1;
}

/* The state of a new staged photo: in the clear what the upload needs, sealed everything the
 * message needs and the blob's key. NULL if it cannot be sealed. */
static cJSON *state_new(const struct send_opts *o, const char *room_id, const char *login,
                        const struct ks_device *me, const struct media_photo *p,
                        const struct media_blob_info *info)
{
    cJSON *st = cJSON_CreateObject(), *sec = cJSON_CreateObject();
    char hex[2 * MEDIA_BLOB_HASHBYTES + 1];
    sodium_bin2hex(hex, sizeof hex, info->hash, sizeof info->hash);
    cJSON_AddStringToObject(st, "room", room_id);
    cJSON_AddStringToObject(st, "login", login);
    cJSON_AddStringToObject(st, "blob", hex);
    cJSON_AddNumberToObject(st, "blob_len", (double)info->blob_len);
    if (o->thumbnail_first)
        cJSON_AddTrueToObject(st, "thumbnail_first");
    add_b64(sec, "key", info->key, sizeof info->key);
    cJSON_AddNumberToObject(sec, "len", (double)info->plain_len);
    cJSON_AddNumberToObject(sec, "w", p->width);
    cJSON_AddNumberToObject(sec, "h", p->height);
    cJSON_AddStringToObject(sec, "caption", o->caption ? o->caption : "");
    if (p->has_captured_at)
        cJSON_AddStringToObject(sec, "captured_at", p->captured_at);
    else
        cJSON_AddNullToObject(sec, "captured_at");
    if (p->has_gps && !o->no_gps) {
        cJSON *g = cJSON_AddObjectToObject(sec, "gps");
        cJSON_AddNumberToObject(g, "lat", p->lat);
        cJSON_AddNumberToObject(g, "lon", p->lon);
    } else {
        cJSON_AddNullToObject(sec, "gps");
    }
    char fn[1024];
    snprintf(fn, sizeof fn, "%s", o->file);
    cJSON_AddStringToObject(sec, "file_name", basename(fn));
    add_b64(sec, "thumb", p->thumb, p->thumb_len);
    cJSON_AddNumberToObject(sec, "thumb_w", p->thumb_width);
    cJSON_AddNumberToObject(sec, "thumb_h", p->thumb_height);
    int sealed = staging_seal(me, st, sec);
    json_wipe_delete(sec);
    if (sealed != 0) {
        cJSON_Delete(st);
        return NULL;
    }
    uint8_t rnd[12];
    randombytes_buf(rnd, sizeof rnd);
    char cid[32];
    sodium_bin2hex(cid, sizeof cid, rnd, sizeof rnd);
    cJSON_AddStringToObject(st, "client_id", cid);
    cJSON_AddNumberToObject(st, "offset", 0);
    cJSON_AddNumberToObject(st, "created_at", (double)wall_ms());
    return st;
}

static const char *photo_error(enum media_rc rc)
{
    switch (rc) {
    case MEDIA_NOT_JPEG:
        return "not a JPEG image";
    case MEDIA_CORRUPT:
        return "a damaged or truncated JPEG";
    case MEDIA_TOO_LARGE:
        return "the image is too large";
    case MEDIA_UNSUPPORTED:
        return "a JPEG kind we do not handle (CMYK)";
    case MEDIA_INVALID:
        return "--max-edge is out of range";
    default:
        return media_rc_name(rc);
    }
}

/* Processes and encrypts a new photo into staging, or finds the one already staged. *st is
 * the caller's to delete. */
static int stage(const struct send_opts *o, const char *room_id, const char *login,
                 const struct ks_device *me, char name[40], cJSON **st)
{
    size_t len;
    unsigned char *bytes = (unsigned char *)ks_read_file(o->file, &len);
    if (!bytes) {
        fprintf(stderr, "kizuna: cannot read %s: %s\n", o->file, strerror(errno));
        return EXIT_USAGE;
    }
    staging_name(login, room_id, bytes, len, name);
    char path[4200], file[200];
    snprintf(file, sizeof file, "%s.json", name);
    staging_path(path, sizeof path, file);
    if ((*st = ks_read_json(path))) {
        cJSON *secret = staging_upgrade(me, name, *st) == 0 ? staging_open(me, *st) : NULL;
        if (secret) {
            json_wipe_delete(secret);
            free(bytes);
            if (!json_out)
                fprintf(stderr, "kizuna: resuming the staged upload of %s\n", o->file);
            return EXIT_OK;
        }
        /* Sealed by keys this device no longer has, or damaged: start again. */
        cJSON_Delete(*st);
        *st = NULL;
        staging_remove(name);
    }
    struct media_photo_opts opts = media_photo_opts_default();
    if (o->max_edge)
        opts.max_edge = o->max_edge;
    struct media_photo p = {0};
    enum media_rc rc = media_photo_process(bytes, len, &opts, &p);
    free(bytes);
    if (rc != MEDIA_OK) {
        fprintf(stderr, "kizuna: %s: %s\n", o->file, photo_error(rc));
        return EXIT_USAGE;
    }
    struct media_blob_info info;
    int erc = EXIT_OK;
    if (encrypt_to_staging(name, &p, &info) != 0) {
        fprintf(stderr, "kizuna: cannot write the staging file: %s\n", strerror(errno));
        erc = EXIT_REFUSED;
    } else {
        *st = state_new(o, room_id, login, me, &p, &info);
        sodium_memzero(info.key, sizeof info.key);
        if (!*st || state_save(name, *st) != 0) {
            fprintf(stderr, "kizuna: cannot write the staging state: %s\n", strerror(errno));
            staging_remove(name);
            erc = EXIT_REFUSED;
        }
    }
    media_photo_free(&p);
    return erc;
}

/* ---- the tus upload ---- */

static long long num_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? (long long)v->valuedouble : 0;
}

struct upload {
    const struct session *s;
    const char *name;
    cJSON *st;
    char base[600];
    FILE *blob;
    long long len, offset;
    size_t chunk;
    long long cut_after; /* the test hook, or -1 */
    bool open_only;      /* stop once the upload exists (thumbnail first) */
};

enum step { STEP_OK, STEP_AGAIN, STEP_RETRY, STEP_REFUSED };

static enum step refused(const struct hx_resp *r, const char *what)
{
    cJSON *o = cJSON_Parse(r->body);
    const char *msg = cli_str(o, "error", "message");
    fprintf(stderr, "kizuna: %s: HTTP %ld: %s\n", what, r->status, *msg ? msg : "refused");
    cJSON_Delete(o);
    return STEP_REFUSED;
}

/* Records where the upload is (location NULL: there is none) and saves the state. location
 * may point into the state itself. */
static void set_upload(struct upload *u, const char *location, long long offset)
{
    char loc[600];
    snprintf(loc, sizeof loc, "%s", location ? location : "");
    cJSON_DeleteItemFromObjectCaseSensitive(u->st, "upload");
    if (location)
        cJSON_AddStringToObject(u->st, "upload", loc);
    u->offset = offset;
    cJSON_DeleteItemFromObjectCaseSensitive(u->st, "offset");
    cJSON_AddNumberToObject(u->st, "offset", (double)offset);
    state_save(u->name, u->st);
}

/* POST: a new upload (the same staged bytes: a lost upload never means encrypting again). */
static enum step create(struct upload *u)
{
    char url[1200], length[64], meta[200];
    snprintf(url, sizeof url, "%s/api/v1/uploads", u->base);
    snprintf(length, sizeof length, "Upload-Length: %lld", u->len);
    const char *blob = cli_str(u->st, "blob", NULL);
    char b64[120];
    sodium_bin2base64(b64, sizeof b64, (const unsigned char *)blob, strlen(blob),
                      sodium_base64_VARIANT_ORIGINAL);
    snprintf(meta, sizeof meta, "Upload-Metadata: blob %s", b64);
    const char *headers[] = {length, meta, NULL};
    struct hx_req req = {.method = "POST", .url = url, .token = u->s->token, .headers = headers};
    struct hx_resp r;
    if (hx_perform(&req, &r) != 0 || r.status >= 500)
        return STEP_RETRY;
    if (r.status != 201 || !r.location[0] || r.upload_offset < 0)
        return refused(&r, "the server refuses the upload");
    set_upload(u, r.location, r.upload_offset);
    return STEP_OK;
}

/* HEAD: where to resume. A vanished or expired upload is created again. */
static enum step head(struct upload *u)
{
    char url[1200];
    snprintf(url, sizeof url, "%s%s", u->base, cli_str(u->st, "upload", NULL));
    struct hx_req req = {.method = "HEAD", .url = url, .token = u->s->token};
    struct hx_resp r;
    if (hx_perform(&req, &r) != 0 || r.status >= 500)
        return STEP_RETRY;
    if (r.status == 404 || r.status == 410) {
        set_upload(u, NULL, 0);
        return STEP_AGAIN;
    }
    if (r.status != 200 || r.upload_offset < 0)
        return refused(&r, "the server refuses the upload");
    if (r.upload_offset != u->offset)
        set_upload(u, cli_str(u->st, "upload", NULL), r.upload_offset);
    return STEP_OK;
}

/* One PATCH of the next chunk, with its BLAKE2b-256 so a damaged body is refused. */
static enum step patch(struct upload *u)
{
    size_t n = (size_t)(u->len - u->offset) < u->chunk ? (size_t)(u->len - u->offset) : u->chunk;
    unsigned char *buf = malloc(n);
    if (!buf || fseeko(u->blob, u->offset, SEEK_SET) != 0 || fread(buf, 1, n, u->blob) != n) {
        free(buf);
        fprintf(stderr, "kizuna: cannot read the staging file\n");
        return STEP_REFUSED;
    }
    uint8_t h[32];
    crypto_generichash(h, sizeof h, buf, n, NULL, 0);
    char sum[80], off[64], url[1200];
    strcpy(sum, "Upload-Checksum: blake2b ");
    sodium_bin2base64(sum + strlen(sum), sizeof sum - strlen(sum), h, sizeof h,
                      sodium_base64_VARIANT_ORIGINAL);
    snprintf(off, sizeof off, "Upload-Offset: %lld", u->offset);
    snprintf(url, sizeof url, "%s%s", u->base, cli_str(u->st, "upload", NULL));
    const char *headers[] = {off, sum, "Content-Type: application/offset+octet-stream", NULL};
    struct hx_req req = {.method = "PATCH",
                         .url = url,
                         .token = u->s->token,
                         .headers = headers,
                         .body = buf,
                         .body_len = n};
    struct hx_resp r;
    int tx = hx_perform(&req, &r);
    free(buf);
    if (tx == 0 && r.status == 204) {
        set_upload(u, cli_str(u->st, "upload", NULL),
                   r.upload_offset >= 0 ? r.upload_offset : u->offset + (long long)n);
        u->chunk = u->chunk * 2 > CHUNK_MAX ? CHUNK_MAX : u->chunk * 2;
        return STEP_OK;
    }
    u->chunk = u->chunk / 2 < CHUNK_MIN ? CHUNK_MIN : u->chunk / 2;
    if (tx != 0 || r.status >= 500 || r.status == 460 || r.status == 400)
        return STEP_RETRY; /* the next round starts with HEAD */
    if (r.status == 409 && r.upload_offset >= 0) {
        set_upload(u, cli_str(u->st, "upload", NULL), r.upload_offset);
        return STEP_AGAIN;
    }
    if (r.status == 404 || r.status == 410) {
        set_upload(u, NULL, 0);
        return STEP_AGAIN;
    }
    return refused(&r, "the server refuses the upload");
}

/* Sends every remaining chunk; STEP_OK once the server has the whole blob. */
static enum step send_chunks(struct upload *u)
{
    enum step s = cJSON_GetObjectItemCaseSensitive(u->st, "upload") ? head(u) : create(u);
    while (s == STEP_OK && !u->open_only && u->offset < u->len) {
        s = patch(u);
        if (s == STEP_OK && u->cut_after >= 0 && u->offset >= u->cut_after && u->offset < u->len)
            exit(EXIT_TEST_CUT);
    }
    return s;
}

/* Uploads the staged blob, resuming where the server is; open_only: only until the upload
 * exists on the server. */
static int upload_blob(const struct session *s, const char *name, cJSON *st, bool open_only)
{
    struct upload u = {.s = s,
                       .name = name,
                       .st = st,
                       .chunk = CHUNK_START,
                       .cut_after = -1,
                       .open_only = open_only};
    hx_base(cli_server_url(s), u.base, sizeof u.base);
    u.len = num_of(st, "blob_len");
    u.offset = num_of(st, "offset");
    const char *cut = getenv("KIZUNA_TEST_CUT_AFTER_BYTES");
    if (cut && *cut)
        u.cut_after = atoll(cut);
    char path[4200], file[200];
    snprintf(file, sizeof file, "%s.kzb", name);
    staging_path(path, sizeof path, file);
    if (!(u.blob = fopen(path, "rb"))) {
        fprintf(stderr, "kizuna: the staged blob is missing (%s): run the send again\n", path);
        staging_remove(name);
        return EXIT_REFUSED;
    }
    struct retry r;
    retry_start(&r);
    int rc = EXIT_UNREACHABLE;
    for (;;) {
        long long before = u.offset;
        enum step step = send_chunks(&u);
        if (step == STEP_OK) {
            rc = EXIT_OK;
            break;
        }
        if (step == STEP_REFUSED) {
            rc = EXIT_REFUSED;
            break;
        }
        if (u.offset > before)
            retry_start(&r); /* progress: the budget counts time without any */
        if (step == STEP_RETRY && !retry_wait(&r, "the upload was interrupted")) {
            rc = cli_unreachable("the upload made no progress within KIZUNA_RETRY_MAX_S");
            break;
        }
    }
    fclose(u.blob);
    return rc;
}

/* ---- the epoch and the message ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The room's current member devices, sorted, as a JSON array (the caller deletes it). */
static cJSON *member_set(const struct room_view *rv)
{
    int n = cJSON_GetArraySize(rv->devices);
    const char **ids = calloc((size_t)n + 1, sizeof *ids);
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; ids && i < n; i++)
        ids[i] = cli_str(cJSON_GetArrayItem(rv->devices, i), "device", NULL);
    if (ids)
        qsort(ids, (size_t)n, sizeof *ids, cmp_str);
    for (int i = 0; ids && i < n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(ids[i]));
    free(ids);
    return arr;
}

/* Our epoch for the room, checked just before it encrypts anything: a new one when the member
 * devices changed since it began, when any device that may hold its key is no longer a current
 * member device (it was sealed to it, or we or another member answered its key request, and it
 * was revoked, logged out, or its owner left the room: issue 12), after EPOCH_MAX_PHOTOS photos,
 * after EPOCH_MAX_AGE_MS, or when `rotate` says the server refused it. The new epoch goes only
 * to the room's current devices (epoch_share). */
static cJSON *epoch_current(struct room_view *rv, bool rotate)
{
    cJSON *set = member_set(rv);
    cJSON *own = cJSON_GetObjectItemCaseSensitive(rv->state, "own");
    char gone[DEVICE_ID_MAX + 32] = "";
    bool fresh = own && !rotate &&
                 cJSON_Compare(cJSON_GetObjectItemCaseSensitive(own, "devices"), set, true) &&
                 num_of(own, "count") < EPOCH_MAX_PHOTOS &&
                 wall_ms() - num_of(own, "created_at") < EPOCH_MAX_AGE_MS;
    const char *forget = getenv("KIZUNA_TEST_FORGET_HOLDERS");
    if (fresh && !(forget && strcmp(forget, "1") == 0) &&
        rv_epoch_holder_gone(rv, cli_str(own, "epoch", NULL),
                             cJSON_GetObjectItemCaseSensitive(own, "holders"), gone, sizeof gone)) {
        fresh = false;
        if (!json_out)
            fprintf(stderr,
                    "kizuna: device %s holds the room's current key and has left: new key\n", gone);
    }
    if (fresh) {
        cJSON_Delete(set);
        return own;
    }
    uint8_t id[16], key[32];
    randombytes_buf(id, sizeof id);
    randombytes_buf(key, sizeof key);
    char *epoch = b64url(id, sizeof id);
    own = cJSON_CreateObject();
    cJSON_AddStringToObject(own, "epoch", epoch ? epoch : "");
    add_b64(own, "key", key, sizeof key);
    cJSON_AddNumberToObject(own, "created_at", (double)wall_ms());
    cJSON_AddNumberToObject(own, "count", 0);
    cJSON_AddItemToObject(own, "devices", set);
    cJSON_AddFalseToObject(own, "keys_posted");
    cJSON_ReplaceItemInObjectCaseSensitive(rv->state, "own", own);
    if (!cJSON_GetObjectItemCaseSensitive(rv->state, "own"))
        cJSON_AddItemToObject(rv->state, "own", own);
    rv_keep_key(rv, rv->me->id, epoch ? epoch : "", key, rv->me->id);
    sodium_memzero(key, sizeof key);
    free(epoch);
    /* Saved before anything is posted: a key that may be in the room is never forgotten. */
    ks_room_save(rv->room_id, rv->state);
    return own;
}

/* e2ee.keys for every current member device (ours included), before the epoch's first photo.
 * Its client_id comes from the epoch, so a retry after a lost reply never posts it twice. */
static int epoch_share(struct room_view *rv, cJSON *own)
{
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(own, "keys_posted")))
        return EXIT_OK;
    const char *epoch = cli_str(own, "epoch", NULL);
    uint8_t key[32];
    if (!unb64url_exact(cli_str(own, "key", NULL), key, 32))
        return EXIT_REFUSED;
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "epoch", epoch);
    cJSON_AddStringToObject(data, "owner", rv->me->id);
    cJSON_AddStringToObject(data, "history", rv->history);
    char *check = rv_key_check(rv, epoch, key);
    cJSON_AddStringToObject(data, "check", check ? check : "");
    free(check);
    cJSON *entries = cJSON_AddArrayToObject(data, "entries");
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(own, "devices"))
    {
        cJSON *e = rv_envelope(rv, rv->me->id, epoch, key, d->valuestring);
        if (e)
            cJSON_AddItemToArray(entries, e);
        else
            fprintf(stderr, "kizuna: device %s has keys that do not verify: not sharing with it\n",
                    d->valuestring);
    }
    sodium_memzero(key, sizeof key);
    char *text = cJSON_PrintUnformatted(data);
    cJSON_Delete(data);
    char client_id[64];
    snprintf(client_id, sizeof client_id, "k-%s", epoch);
    long long pos;
    int rc = text ? rv_post(rv, "e2ee.keys", NULL, text, client_id, &pos) : EXIT_REFUSED;
    cJSON_free(text);
    if (rc == EXIT_OK) {
        cJSON_ReplaceItemInObjectCaseSensitive(own, "keys_posted", cJSON_CreateTrue());
        ks_room_save(rv->room_id, rv->state);
    }
    return rc;
}

/* The photo JSON that only the room's devices can read (docs/protocol.md), from the staged
 * state st and its opened sealed part sec. */
static char *photo_json(const cJSON *sec, const cJSON *st)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "caption", cli_str(sec, "caption", NULL));
    cJSON_AddItemToObject(m, "captured_at",
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(sec, "captured_at"), 1));
    cJSON_AddItemToObject(m, "gps",
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(sec, "gps"), 1));
    cJSON_AddStringToObject(m, "file_name", cli_str(sec, "file_name", NULL));
    cJSON *img = cJSON_AddObjectToObject(m, "image");
    cJSON_AddStringToObject(img, "blob", cli_str(st, "blob", NULL));
    cJSON_AddStringToObject(img, "key", cli_str(sec, "key", NULL));
    cJSON_AddNumberToObject(img, "len", (double)num_of(sec, "len"));
    cJSON_AddNumberToObject(img, "w", (double)num_of(sec, "w"));
    cJSON_AddNumberToObject(img, "h", (double)num_of(sec, "h"));
    cJSON_AddStringToObject(img, "mime", "image/jpeg");
    cJSON *th = cJSON_AddObjectToObject(m, "thumb");
    cJSON_AddStringToObject(th, "jpeg", cli_str(sec, "thumb", NULL));
    cJSON_AddNumberToObject(th, "w", (double)num_of(sec, "thumb_w"));
    cJSON_AddNumberToObject(th, "h", (double)num_of(sec, "thumb_h"));
    char *text = cJSON_PrintUnformatted(m);
    json_wipe_delete(m);
    return text;
}

/* The next photo counter of this device in the room: one more than the highest it gave there
 * (rooms/ROOM.seq, read and written under a lock, so two sends at once get two) and than
 * `floor`, the highest the room shows. -1 if the counter file cannot be used. */
static long long seq_reserve(const char *room_id, long long floor)
{
    char path[4200], dir[4200];
    ks_path(dir, sizeof dir, "rooms");
    ks_path(path, sizeof path, "rooms/%s.seq", room_id);
    int fd = cli_mkdirs(dir) == 0 ? open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600) : -1;
    if (fd < 0 || flock(fd, LOCK_EX) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char buf[32] = "";
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    long long last = n > 0 ? atoll(buf) : 0, seq = (last > floor ? last : floor) + 1;
    int len = snprintf(buf, sizeof buf, "%lld\n", seq);
    bool ok = ftruncate(fd, 0) == 0 && pwrite(fd, buf, (size_t)len, 0) == len && fsync(fd) == 0;
    close(fd); /* and the lock with it */
    return ok ? seq : -1;
}

/* {"epoch","seq","ts","check","ct"}: the photo JSON sealed under the epoch key, bound by the
 * additional data to room, epoch, sending device, this device's counter of photos in the room
 * and the time it was staged (media_photo_seal), which the signed data repeats. The caller
 * frees the result. */
static char *photo_data(struct room_view *rv, const cJSON *own, const cJSON *sec, const cJSON *st)
{
    const char *epoch = cli_str(own, "epoch", NULL);
    uint8_t key[32];
    char *plain = photo_json(sec, st);
    if (!plain || !unb64url_exact(cli_str(own, "key", NULL), key, 32)) {
        cJSON_free(plain);
        return NULL;
    }
    struct media_photo_ad ad = {rv->room_id, epoch, rv->me->id, (uint64_t)num_of(st, "seq"),
                                num_of(st, "created_at")};
    size_t len = strlen(plain), ct_len = 0;
    unsigned char *ct = NULL;
    char *out = NULL;
    char *check = rv_key_check(rv, epoch, key);
    if (check && media_photo_seal(&ad, plain, len, key, &ct, &ct_len) == MEDIA_OK) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "epoch", epoch);
        cJSON_AddNumberToObject(d, "seq", (double)ad.seq);
        cJSON_AddNumberToObject(d, "ts", (double)ad.ts);
        cJSON_AddStringToObject(d, "check", check);
        add_b64(d, "ct", ct, ct_len);
        out = cJSON_PrintUnformatted(d);
        cJSON_Delete(d);
    }
    sodium_memzero(key, sizeof key);
    sodium_memzero(plain, len);
    cJSON_free(plain);
    free(check);
    free(ct);
    return out;
}

int connect_device(struct kzc **c, struct session *s, struct ks_device *me)
{
    int rc = cli_connect_authed(c, s);
    if (rc != EXIT_OK)
        return rc;
    rc = ks_device_ensure(*c, s, me);
    if (rc != EXIT_OK) {
        kzc_close(*c);
        *c = NULL;
    }
    return rc;
}

/* The photo's counter, given once and kept in its staged state: a retry, a resume or a lost
 * reply posts the same message with the same counter (and the same client_id, so the server
 * keeps one), and receivers never take it for a replay. 0 if none can be given. */
static long long photo_seq(struct room_view *rv, const char *name, cJSON *st)
{
    if (num_of(st, "seq") > 0)
        return num_of(st, "seq");
    long long seq = seq_reserve(rv->room_id, rv_seq_max(rv, rv->me->id));
    if (seq <= 0) {
        fprintf(stderr, "kizuna: cannot keep this device's photo counter: %s\n", strerror(errno));
        return 0;
    }
    cJSON_AddNumberToObject(st, "seq", (double)seq);
    return state_save(name, st) == 0 ? seq : 0;
}

/* Reads the room, then posts the keys and the photo. `rotate`: start a new epoch whatever
 * ours looks like. On a `conflict` refusal its message is copied to conflict. */
static int post_attempt(struct kzc *c, struct ks_device *me, const char *name, cJSON *st,
                        const cJSON *sec, bool rotate, long long *pos, char *conflict,
                        size_t conflict_len)
{
    struct room_view rv;
    int rc = rv_load(c, me, cli_str(st, "room", NULL), &rv);
    if (rc != EXIT_OK)
        return rc;
    rc = rv_answer_requests(&rv);
    if (rc == EXIT_OK && !photo_seq(&rv, name, st))
        rc = EXIT_REFUSED;
    cJSON *own = rc == EXIT_OK ? epoch_current(&rv, rotate) : NULL;
    if (own && !rv_is_member_device(&rv, me->id))
        rc = EXIT_REFUSED, fprintf(stderr, "kizuna: this device is not in the room\n");
    if (own && rc == EXIT_OK)
        rc = epoch_share(&rv, own);
    if (own && rc == EXIT_OK) {
        cJSON_ReplaceItemInObjectCaseSensitive(own, "count",
                                               cJSON_CreateNumber(num_of(own, "count") + 1));
        ks_room_save(rv.room_id, rv.state);
        char *data = photo_data(&rv, own, sec, st);
        cJSON *blobs = cJSON_CreateArray();
        cJSON_AddItemToArray(blobs, cJSON_CreateString(cli_str(st, "blob", NULL)));
        rc = data ? rv_post(&rv, "e2ee.photo", blobs, data, cli_str(st, "client_id", NULL), pos)
                  : EXIT_REFUSED;
        cJSON_Delete(blobs);
        cJSON_free(data);
    }
    snprintf(conflict, conflict_len, "%s", rc == EXIT_REFUSED ? rv.conflict : "");
    rv_free(&rv);
    return rc;
}

/* Keys first, then the photo, on one connection. The server refuses (`conflict`) keys for a
 * device that left after we read the room, and a photo under an epoch such a device holds
 * (a key request answered in between): then we read the room again and start a new epoch. */
static int post_once(const char *name, cJSON *st, const cJSON *sec, long long *pos)
{
    struct kzc *c;
    struct session s;
    struct ks_device me;
    int rc = connect_device(&c, &s, &me);
    if (rc != EXIT_OK)
        return rc;
    char conflict[512] = "";
    for (int attempt = 0; attempt < 3; attempt++) {
        rc = post_attempt(c, &me, name, st, sec, attempt > 0, pos, conflict, sizeof conflict);
        if (rc != EXIT_REFUSED || !conflict[0])
            break;
        if (!json_out)
            fprintf(stderr, "kizuna: the server says: %s; starting a new epoch\n", conflict);
    }
    if (rc == EXIT_REFUSED && conflict[0] && json_out) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddFalseToObject(o, "ok");
        cJSON *err = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(err, "code", "conflict");
        cJSON_AddStringToObject(err, "message", conflict);
        cli_print_json(o);
        cJSON_Delete(o);
    } else if (rc == EXIT_REFUSED && conflict[0]) {
        fprintf(stderr, "kizuna: conflict: %s\n", conflict);
    }
    ks_device_wipe(&me);
    kzc_close(c);
    return rc;
}

static int post_photo(const char *name, cJSON *st, const cJSON *sec, long long *pos)
{
    struct retry r;
    retry_start(&r);
    int rc;
    bool was_quiet = quiet_unreachable;
    quiet_unreachable = true;
    while ((rc = post_once(name, st, sec, pos)) == EXIT_UNREACHABLE &&
           retry_wait(&r, "cannot reach the server to post the photo"))
        ;
    quiet_unreachable = was_quiet;
    if (rc == EXIT_UNREACHABLE)
        cli_unreachable("the photo is uploaded but its message could not be posted: run "
                        "`kizuna photo resume`");
    return rc;
}

/* Uploads and posts one staged photo, then removes its staging files. me opens its sealed
 * part. */
static int finish_staged(const struct session *s, const struct ks_device *me, const char *name,
                         cJSON *st)
{
    cJSON *sec = staging_open(me, st);
    if (!sec) {
        fprintf(stderr, "kizuna: a staged photo cannot be opened with this device's keys (they "
                        "changed since it was staged): send it again\n");
        staging_remove(name);
        return EXIT_REFUSED;
    }
    /* Thumbnail first (--thumbnail-first): the message, whose thumbnail shows at once, goes as
     * soon as the upload exists and the bytes after it; the server lets members download the
     * blob only once it is whole (docs/protocol.md, e2ee.post). "posted" in the state makes a
     * resumed send go on with the bytes alone. */
    long long pos = num_of(st, "posted");
    int rc = EXIT_OK;
    if (!pos && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "thumbnail_first"))) {
        rc = upload_blob(s, name, st, true);
        if (rc == EXIT_OK)
            rc = post_photo(name, st, sec, &pos);
        if (rc == EXIT_OK) {
            cJSON_AddNumberToObject(st, "posted", (double)pos);
            state_save(name, st);
        }
    }
    if (rc == EXIT_OK)
        rc = upload_blob(s, name, st, false);
    if (rc == EXIT_OK && !num_of(st, "posted"))
        rc = post_photo(name, st, sec, &pos);
    long long w = num_of(sec, "w"), h = num_of(sec, "h");
    uint64_t len = (uint64_t)num_of(sec, "len");
    json_wipe_delete(sec);
    if (rc != EXIT_OK)
        return rc;
    staging_remove(name);
    if (json_out) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddTrueToObject(o, "ok");
        cJSON_AddStringToObject(o, "room", cli_str(st, "room", NULL));
        cJSON_AddNumberToObject(o, "pos", (double)pos);
        cJSON_AddStringToObject(o, "blob", cli_str(st, "blob", NULL));
        cJSON_AddNumberToObject(o, "blob_bytes", (double)num_of(st, "blob_len"));
        cJSON_AddNumberToObject(o, "size_bucket", (double)media_blob_padded_len(len));
        cli_print_json(o);
        cJSON_Delete(o);
    } else {
        printf("sent photo #%lld to room %s: %lld x %lld, encrypted blob %lld bytes "
               "(size bucket %llu)\n",
               pos, cli_str(st, "room", NULL), w, h, num_of(st, "blob_len"),
               (unsigned long long)media_blob_padded_len(len));
    }
    return EXIT_OK;
}

static int parse_send(int argc, char **argv, struct send_opts *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--caption") == 0 && i + 1 < argc) {
            o->caption = argv[++i];
        } else if (strcmp(argv[i], "--no-gps") == 0) {
            o->no_gps = true;
        } else if (strcmp(argv[i], "--thumbnail-first") == 0) {
            o->thumbnail_first = true;
        } else if (strcmp(argv[i], "--max-edge") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 16 || v > MEDIA_MAX_EDGE) {
                char msg[64];
                snprintf(msg, sizeof msg, "--max-edge: from 16 to %d pixels", MEDIA_MAX_EDGE);
                return cli_usage_error(msg);
            }
            o->max_edge = (int)v;
        } else if (!o->room) {
            /* Not by its first character: a room id is base64url and may begin with '-'. */
            o->room = argv[i];
        } else if (!o->file) {
            o->file = argv[i];
        } else {
            return cli_usage_error(NULL);
        }
    }
    return o->room && o->file ? EXIT_OK : cli_usage_error("photo send needs a ROOM and a FILE");
}

int cmd_photo_send(int argc, char **argv)
{
    struct send_opts o;
    int rc = parse_send(argc, argv, &o);
    if (rc != EXIT_OK)
        return rc;
    /* Registering the device first: a photo is only worth encrypting if we can send it. */
    struct kzc *c;
    struct session s;
    struct ks_device me;
    if ((rc = connect_device(&c, &s, &me)) != EXIT_OK)
        return rc;
    char room_id[ROOM_ID_MAX];
    rc = resolve_room(c, o.room, room_id, NULL, 0);
    kzc_close(c);
    char name[40];
    cJSON *st = NULL;
    if (rc == EXIT_OK && (rc = stage(&o, room_id, s.login, &me, name, &st)) == EXIT_OK)
        rc = finish_staged(&s, &me, name, st);
    cJSON_Delete(st);
    ks_device_wipe(&me);
    return rc;
}

cJSON *staging_pending(const struct ks_device *me, const char *login, const char *room_id)
{
    cJSON *out = cJSON_CreateArray();
    char dir[4200];
    staging_path(dir, sizeof dir, "");
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n != 37 || strcmp(e->d_name + 32, ".json") != 0)
            continue;
        char path[4600];
        snprintf(path, sizeof path, "%s%s", dir, e->d_name);
        cJSON *st = ks_read_json(path);
        cJSON *sec = st && strcmp(cli_str(st, "login", NULL), login) == 0 &&
                             strcmp(cli_str(st, "room", NULL), room_id) == 0
                         ? staging_open(me, st)
                         : NULL;
        if (sec) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "caption", cli_str(sec, "caption", NULL));
            cJSON_AddNumberToObject(o, "created_at", (double)num_of(st, "created_at"));
            cJSON_AddNumberToObject(o, "offset", (double)num_of(st, "offset"));
            cJSON_AddNumberToObject(o, "blob_len", (double)num_of(st, "blob_len"));
            cJSON_AddItemToArray(out, o);
            json_wipe_delete(sec);
        }
        cJSON_Delete(st);
    }
    if (d)
        closedir(d);
    return out;
}

int cmd_photo_resume(int argc, char **argv)
{
    (void)argc, (void)argv; /* no arguments (the command table counts them) */
    struct session s;
    if (!cli_session_load(&s))
        return cli_not_logged_in();
    /* This device's keys open the staged states: without them there is nothing they could
     * be (a new device wipes staging). */
    struct ks_device me;
    bool have_keys = ks_device_local(&s, &me);
    char dir[4200];
    staging_path(dir, sizeof dir, "");
    DIR *d = have_keys ? opendir(dir) : NULL;
    struct dirent *e;
    int rc = EXIT_OK, done = 0;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n != 37 || strcmp(e->d_name + 32, ".json") != 0)
            continue;
        char name[40], path[4600];
        snprintf(name, sizeof name, "%.32s", e->d_name);
        snprintf(path, sizeof path, "%s%s", dir, e->d_name);
        cJSON *st = ks_read_json(path);
        if (st && strcmp(cli_str(st, "login", NULL), s.login) == 0) {
            int one = staging_upgrade(&me, name, st) == 0 ? finish_staged(&s, &me, name, st)
                                                          : EXIT_REFUSED;
            rc = rc == EXIT_OK ? one : rc;
            done++;
        }
        cJSON_Delete(st);
    }
    if (d)
        closedir(d);
    if (have_keys)
        ks_device_wipe(&me);
    if (!done && !json_out)
        printf("nothing to resume\n");
    return rc;
}
