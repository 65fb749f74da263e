/* blobs.c - encrypted blobs and resumable uploads (a tus 1.0 subset, E2EE.md E8) behind the
 * transport's /api/v1/uploads and /api/v1/blobs endpoints. The bytes are ciphertext the
 * server cannot read; it only checks their BLAKE2b-256, which names them. Staging files live
 * in DATA/uploads/, finished blobs in DATA/blobs/xx/<hash>. An upload's offset is committed
 * only after its bytes are fsynced, so a crash at any moment leaves an offset the client can
 * resume from, and a blob row exists only once its file is complete and in place. */
#include "core.h"
#include "metrics.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "httpparse.h"
#include "media.h"

#define DAY_MS 86400000LL

struct srv_patch {
    struct srv *s;
    char id[STORE_UPLOAD_ID_MAX + 1];
    int64_t session_id; /* checked again at the last byte: it may end meanwhile */
    int fd;             /* the staging file (-1: an empty PATCH opens none) */
    int64_t offset, body_len, got;
    uint8_t want[32];
    crypto_generichash_state h;
    int io_errno; /* a write failed: the rest of the body is read and dropped */
};

/* Results speak the protocol's one error language: an error is an enum kz_err, whose code and
 * HTTP status come from the one mapping in proto.c (kz_err_code, kz_err_http_status). Success
 * is one of tus's statuses (200, 201, 204), and two tus failures say more than the mapping
 * does (410 Gone for an expired upload, 460 Checksum Mismatch): set_tus_error. */
static void vset(struct srv_http_result *r, enum kz_err e, int status, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
static void vset(struct srv_http_result *r, enum kz_err e, int status, const char *fmt, va_list ap)
{
    r->err = e;
    r->status = status;
    vsnprintf(r->message, sizeof r->message, fmt, ap);
}

static void set_ok(struct srv_http_result *r, int status, const char *msg)
{
    r->err = KZ_OK;
    r->status = status;
    snprintf(r->message, sizeof r->message, "%s", msg);
}

static void set_error(struct srv_http_result *r, enum kz_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_error(struct srv_http_result *r, enum kz_err e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(r, e, kz_err_http_status(e), fmt, ap);
    va_end(ap);
}

static void set_tus_error(struct srv_http_result *r, enum kz_err e, int status, const char *fmt,
                          ...) __attribute__((format(printf, 4, 5)));
static void set_tus_error(struct srv_http_result *r, enum kz_err e, int status, const char *fmt,
                          ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(r, e, status, fmt, ap);
    va_end(ap);
}

bool srv_blob_id_valid(const char *id)
{
    if (strlen(id) != STORE_BLOB_ID_LEN)
        return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* A full or read-only disk, or a file-size limit: like any other write refused for want of
 * disk, the client is told to come back (unavailable), not that the server broke. */
static bool disk_errno(int e)
{
    return e == ENOSPC || e == EDQUOT || e == EFBIG || e == EROFS || e == EIO;
}

/* 503 with retry_after_s, as proto.c answers any write while the disk is full. */
static void set_unavailable(const struct srv *s, struct srv_http_result *r, const char *what)
{
    set_error(r, KZ_UNAVAILABLE, "the server's disk is full or read-only: %s; retry later", what);
    r->retry_after_s = (s->cfg->disk_retry_ms + 999) / 1000;
}

/* A blob or staging file operation failed with errno e. */
static void set_io_error(const struct srv *s, struct srv_http_result *r, int e, const char *what)
{
    if (disk_errno(e))
        set_unavailable(s, r, what);
    else
        set_error(r, KZ_INTERNAL, "%s: %s", what, strerror(e));
}

static bool upload_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > STORE_UPLOAD_ID_MAX)
        return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            return false;
    return true;
}

static void staging_path(const struct srv *s, const char *id, char *out, size_t n)
{
    /* Ids are checked (upload_id_valid) and paths sized for them: never cut, but say so. */
    if (snprintf(out, n, "%s/uploads/%.*s", s->data_dir, STORE_UPLOAD_ID_MAX, id) >= (int)n)
        out[0] = '\0';
}

void srv_blob_path(const struct srv *s, const char *blob, char *out, size_t n)
{
    snprintf(out, n, "%s/blobs/%.2s/%s", s->data_dir, blob, blob);
}

int srv_set_data_dir(struct srv *s, const char *dir)
{
    snprintf(s->data_dir, sizeof s->data_dir, "%s", dir);
    char path[sizeof s->data_dir + 16];
    snprintf(path, sizeof path, "%s/uploads", dir);
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return -1;
    snprintf(path, sizeof path, "%s/blobs", dir);
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

int srv_dir_sync(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Whether user may read the blob: its uploader, or a current member of a room with an event
 * that references it. *ok is false for a blob that does not exist, too. */
static enum store_rc blob_readable_by(struct srv *s, int64_t user, const char *blob, int64_t *size,
                                      bool *ok)
{
    int64_t uploader;
    *ok = false;
    enum store_rc rc = store_blob_get(s->store, blob, size, &uploader);
    if (rc == STORE_NOT_FOUND)
        return STORE_OK;
    if (rc != STORE_OK)
        return rc;
    if (uploader == user) {
        *ok = true;
        return STORE_OK;
    }
    return store_blob_readable(s->store, blob, user, ok);
}

/* Commits now: the HTTP reply that follows promises what was written. */
static bool commit_now(struct srv *s, struct srv_http_result *r)
{
    if (srv_commit(s))
        return true;
    if (srv_writes_blocked(s))
        set_unavailable(s, r, "nothing was written");
    else
        set_error(r, KZ_INTERNAL, "the write could not be committed");
    return false;
}

static bool load_upload(struct srv *s, const struct srv_auth *a, const char *id,
                        struct store_upload *u, struct srv_http_result *r)
{
    enum store_rc rc = upload_id_valid(id) ? store_upload_get(s->store, id, u) : STORE_NOT_FOUND;
    if (rc == STORE_OK && u->user_id != a->user.id)
        rc = STORE_NOT_FOUND; /* someone else's upload does not exist for you */
    if (rc == STORE_NOT_FOUND) {
        set_error(r, KZ_NOT_FOUND, "no such upload");
        return false;
    }
    if (rc != STORE_OK) {
        set_error(r, KZ_INTERNAL, "upload lookup failed");
        return false;
    }
    if (!u->done_at && kz_now_ms() >= u->expires_at) {
        set_tus_error(r, KZ_NOT_FOUND, 410, "the upload expired: start a new one");
        return false;
    }
    r->offset = u->offset;
    r->length = u->length;
    r->expires_at = u->expires_at;
    return true;
}

void srv_upload_create(struct srv *s, const struct srv_auth *a, int64_t length, const char *blob,
                       struct srv_http_result *r)
{
    const struct kz_config *cfg = s->cfg;
    memset(r, 0, sizeof *r);
    if (!srv_blob_id_valid(blob)) {
        set_error(r, KZ_BAD_REQUEST,
                  "Upload-Metadata needs blob: the 64 hex digits of the BLAKE2b-256");
        return;
    }
    if (length <= 0 || length > cfg->blob_max_bytes) {
        set_error(r, KZ_TOO_LARGE, "Upload-Length must be 1 to %lld bytes", cfg->blob_max_bytes);
        return;
    }
    if (srv_writes_blocked(s)) {
        set_unavailable(s, r, "no upload can start now");
        return;
    }
    /* Blob ids are hashes of ciphertext that others see (room members, former ones, logs):
     * for a caller who may not read the blob it does not exist, neither it nor its length.
     * Such a caller sends every byte, which proves they hold the blob (the bytes are then
     * stored once, and who may read it does not change); one who may read it already knows
     * it, and is spared the bytes. */
    int64_t size = 0, used = 0;
    bool known; /* the caller may read the blob */
    if (blob_readable_by(s, a->user.id, blob, &size, &known) != STORE_OK) {
        set_error(r, KZ_INTERNAL, "blob lookup failed");
        return;
    }
    if (known && size != length) {
        set_error(r, KZ_BAD_REQUEST, "a blob with this hash has a different length");
        return;
    }
    if (!known && (store_upload_usage(s->store, a->user.id, &used) != STORE_OK ||
                   used + length > cfg->upload_quota_bytes)) {
        set_error(r, KZ_TOO_LARGE, "over your storage quota (%lld of %lld bytes used)",
                  (long long)used, cfg->upload_quota_bytes);
        return;
    }
    struct store_upload u = {.user_id = a->user.id, .length = length};
    uint8_t rnd[16];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2base64(u.id, sizeof u.id, rnd, sizeof rnd, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(u.blob, sizeof u.blob, "%s", blob);
    u.created_at = kz_now_ms();
    u.expires_at = u.created_at + cfg->upload_expiry_hours * 3600 * 1000;
    /* The same bytes are stored once: a second upload of a blob one may read is born complete. */
    if (known) {
        u.offset = length;
        u.done_at = u.created_at;
    }
    if (store_tx_begin(s->store) != STORE_OK || store_upload_insert(s->store, &u) != STORE_OK) {
        set_error(r, KZ_INTERNAL, "cannot record the upload");
        return;
    }
    if (!commit_now(s, r))
        return;
    KZ_INFO("upload_created", "login=%s upload=%s length=%lld known=%d", a->user.login, u.id,
            (long long)length, known);
    set_ok(r, 201, "created");
    snprintf(r->location, sizeof r->location, "/api/v1/uploads/%s", u.id);
    r->offset = u.offset;
    r->length = length;
    r->expires_at = u.expires_at;
}

void srv_upload_head(struct srv *s, const struct srv_auth *a, const char *id,
                     struct srv_http_result *r)
{
    memset(r, 0, sizeof *r);
    struct store_upload u;
    if (load_upload(s, a, id, &u, r))
        set_ok(r, 200, "ok");
}

void srv_upload_delete(struct srv *s, const struct srv_auth *a, const char *id,
                       struct srv_http_result *r)
{
    memset(r, 0, sizeof *r);
    struct store_upload u;
    if (!load_upload(s, a, id, &u, r) && r->status != 410)
        return;
    if (srv_writes_blocked(s)) {
        set_unavailable(s, r, "the upload cannot be deleted now");
        return;
    }
    char path[4200];
    staging_path(s, id, path, sizeof path);
    if (store_tx_begin(s->store) != STORE_OK || store_upload_delete(s->store, id) != STORE_OK) {
        set_error(r, KZ_INTERNAL, "cannot delete the upload");
        return;
    }
    if (!commit_now(s, r))
        return;
    unlink(path);
    set_ok(r, 204, "deleted");
}

struct srv_patch *srv_upload_patch_begin(struct srv *s, const struct srv_auth *a, const char *id,
                                         int64_t offset, int64_t body_len, const char *checksum,
                                         struct srv_http_result *r)
{
    memset(r, 0, sizeof *r);
    struct store_upload u;
    if (!load_upload(s, a, id, &u, r))
        return NULL;
    uint8_t want[32];
    if (!kz_parse_upload_checksum(checksum, want)) {
        set_error(r, KZ_BAD_REQUEST,
                  "Upload-Checksum: blake2b <base64 of the body's BLAKE2b-256> is required");
        return NULL;
    }
    if (offset != u.offset) {
        set_error(r, KZ_CONFLICT, "the upload is at offset %lld", (long long)u.offset);
        return NULL;
    }
    if (body_len < 0 || body_len > u.length - u.offset) {
        set_error(r, KZ_TOO_LARGE, "the body goes past Upload-Length");
        return NULL;
    }
    if (body_len > 0 && srv_writes_blocked(s)) {
        set_unavailable(s, r, "no bytes can be stored now");
        return NULL;
    }
    struct srv_patch *p = calloc(1, sizeof *p);
    if (!p) {
        set_error(r, KZ_INTERNAL, "out of memory");
        return NULL;
    }
    p->fd = -1;
    /* An empty PATCH touches no file: a finished upload's staging file is gone, and one made
     * again here would be taken for the upload's bytes. */
    if (body_len > 0) {
        char path[4200];
        staging_path(s, id, path, sizeof path);
        p->fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        /* Bytes past the committed offset are from a PATCH that never completed: drop them. */
        if (p->fd < 0 || ftruncate(p->fd, offset) != 0 ||
            lseek(p->fd, offset, SEEK_SET) != offset) {
            int e = errno;
            KZ_ERROR("upload_io", "upload=%s error=\"%s\"", id, strerror(e));
            if (p->fd >= 0)
                close(p->fd);
            free(p);
            set_io_error(s, r, e, "cannot write the upload");
            return NULL;
        }
    }
    p->s = s;
    p->session_id = a->session_id;
    snprintf(p->id, sizeof p->id, "%s", id);
    p->offset = offset;
    p->body_len = body_len;
    memcpy(p->want, want, sizeof want);
    crypto_generichash_init(&p->h, NULL, 0, 32);
    set_ok(r, 100, "continue");
    kz_metrics.uploads_receiving++;
    return p;
}

int srv_upload_patch_data(struct srv_patch *p, const void *buf, size_t len)
{
    if (p->got + (int64_t)len > p->body_len)
        return -1;
    crypto_generichash_update(&p->h, buf, len);
    /* After a failed write (a full disk) the rest is read and dropped, so that the client gets
     * an answer it can act on (503, retry) rather than a connection cut mid-body. */
    const char *b = buf;
    size_t done = 0;
    while (done < len && !p->io_errno) {
        ssize_t n = write(p->fd, b + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            p->io_errno = errno;
        else if (n == 0)
            p->io_errno = EIO;
        else
            done += (size_t)n;
    }
    p->got += (int64_t)len;
    kz_metrics.upload_bytes += len;
    return 0;
}

void srv_upload_patch_abort(struct srv_patch *p)
{
    if (!p)
        return;
    kz_metrics.uploads_receiving--;
    if (p->fd >= 0)
        close(p->fd);
    free(p);
}

/* The last byte arrived: check the whole file against its name and move it into the store. */
static void finish_blob(struct srv *s, const struct store_upload *u, struct srv_http_result *r)
{
    char staging[4200], final[4200], dir[4200];
    staging_path(s, u->id, staging, sizeof staging);
    srv_blob_path(s, u->blob, final, sizeof final);
    snprintf(dir, sizeof dir, "%s/blobs/%.2s", s->data_dir, u->blob);
    FILE *f = fopen(staging, "rb");
    uint8_t hash[MEDIA_BLOB_HASHBYTES];
    char hex[STORE_BLOB_ID_LEN + 1];
    bool ok = f && media_blob_hash_file(f, hash) == MEDIA_OK;
    if (f)
        fclose(f);
    if (ok)
        sodium_bin2hex(hex, sizeof hex, hash, sizeof hash);
    if (!ok || strcmp(hex, u->blob) != 0) {
        /* Every PATCH was checksummed, so this is a client that named the wrong hash: start
         * over rather than keep bytes that can never become this blob. */
        KZ_WARN("upload_hash_mismatch", "upload=%s", u->id);
        unlink(staging);
        store_upload_set_offset(s->store, u->id, 0, 0);
        set_tus_error(r, KZ_BAD_REQUEST, 460,
                      "the finished upload's BLAKE2b-256 is not its blob id: upload again");
        r->offset = 0;
        return;
    }
    /* A link, not a rename: until the commit below, the committed offset still points into the
     * staging file, and a crash before it must leave those bytes where a resumed PATCH finds
     * them (the staging file goes after the commit). A blob file already there came the same
     * way from bytes that hashed to its name, so it is kept. */
    if ((mkdir(dir, 0700) != 0 && errno != EEXIST) ||
        (link(staging, final) != 0 && errno != EEXIST) || srv_dir_sync(dir) != 0) {
        int e = errno;
        KZ_ERROR("blob_io", "blob=%s error=\"%s\"", u->blob, strerror(e));
        set_io_error(s, r, e, "cannot store the blob");
        return;
    }
    int64_t now = kz_now_ms();
    if (store_blob_insert(s->store, u->blob, u->length, u->user_id, now) != STORE_OK ||
        store_blob_pending_settle(s->store, u->blob, u->user_id) != STORE_OK ||
        store_upload_set_offset(s->store, u->id, u->length, now) != STORE_OK) {
        set_error(r, KZ_INTERNAL, "cannot record the blob");
        return;
    }
    KZ_INFO("blob_stored", "blob=%s size=%lld", u->blob, (long long)u->length);
}

/* The PATCH is whole, checked and on disk: commit its offset, finishing the blob at the last
 * byte. r->offset is the committed offset whatever happens. */
static void patch_commit(struct srv *s, const struct srv_patch *p, const struct store_upload *u,
                         struct srv_http_result *r)
{
    if (store_tx_begin(s->store) != STORE_OK) {
        set_error(r, KZ_INTERNAL, "cannot record the offset");
        return;
    }
    int64_t end = p->offset + p->got;
    bool finished = end == u->length;
    set_ok(r, 204, "ok");
    if (finished)
        finish_blob(s, u, r);
    else if (store_upload_set_offset(s->store, u->id, end, 0) != STORE_OK)
        set_error(r, KZ_INTERNAL, "cannot record the offset");
    r->offset = u->offset;
    if (!commit_now(s, r))
        return;
    if (r->status == 460) {
        r->offset = 0; /* the wrong bytes are gone: from 0 again */
    } else if (r->status == 204) {
        r->offset = end;
        if (finished) {
            char staging[4200];
            staging_path(s, p->id, staging, sizeof staging);
            unlink(staging); /* the blob is in the store and the upload done */
        }
    }
}

/* The session that began the PATCH, looked up again at its last byte: a phone revoked (or an
 * account disabled) while its body streamed in must not have it committed. */
static enum kz_err patch_session(struct srv *s, const struct srv_patch *p, char *why, size_t n)
{
    struct store_session ses;
    struct srv_auth who;
    const struct srv_gate_need need = {OP_USER, false, "uploads"};
    enum kz_err e = srv_gate_find_id(s, p->session_id, &ses, why, n);
    if (e == KZ_UNAUTHORIZED)
        snprintf(why, n,
                 "the session ended during the upload: log in again; nothing of this PATCH was "
                 "kept");
    return e ? e : srv_gate_admit(s, &ses, &need, &who, why, n);
}

void srv_upload_patch_end(struct srv_patch *p, struct srv_http_result *r)
{
    struct srv *s = p->s;
    kz_metrics.uploads_receiving--;
    memset(r, 0, sizeof *r);
    r->body_read = p->got == p->body_len;
    uint8_t got[32];
    crypto_generichash_final(&p->h, got, sizeof got);
    int io = p->io_errno;
    if (p->fd >= 0) {
        if (!io && r->body_read && fsync(p->fd) != 0)
            io = errno;
        close(p->fd);
    }
    if (io)
        KZ_ERROR("upload_io", "upload=%s error=\"%s\"", p->id, strerror(io));
    struct store_upload u;
    enum store_rc rc = store_upload_get(s->store, p->id, &u);
    if (rc == STORE_OK) {
        r->offset = u.offset;
        r->length = u.length;
    }
    char why[192];
    enum kz_err e;
    if (!r->body_read)
        set_error(r, KZ_BAD_REQUEST, "the body ended early");
    else if ((e = patch_session(s, p, why, sizeof why)) != KZ_OK)
        set_error(r, e, "%s", why);
    else if (rc == STORE_NOT_FOUND)
        set_error(r, KZ_NOT_FOUND, "no such upload");
    else if (rc != STORE_OK)
        set_error(r, KZ_INTERNAL, "upload lookup failed");
    else if (u.offset != p->offset)
        set_error(r, KZ_CONFLICT, "the upload moved meanwhile: it is at offset %lld",
                  (long long)u.offset);
    else if (sodium_memcmp(got, p->want, sizeof got) != 0)
        set_tus_error(r, KZ_BAD_REQUEST, 460, "the body does not match Upload-Checksum");
    else if (p->body_len == 0)
        set_ok(r, 204, "ok"); /* nothing to write or commit: where the upload is */
    else if (io)
        set_io_error(s, r, io, "cannot write the upload");
    else if (srv_writes_blocked(s))
        set_unavailable(s, r, "nothing was written");
    else
        patch_commit(s, p, &u, r);
    free(p);
}

/* A blob the user could read once it is here, wanted from another server: 503 with how far
 * its fetch is (blob_not_here), or blob_failed when the last source's bytes failed its hash and
 * no other source is reachable yet. Clients retry after Retry-After. */
static bool blob_wanted(struct srv *s, const struct srv_auth *a, const char *blob,
                        struct srv_http_result *r)
{
    bool readable = false;
    struct store_blob_want w;
    if (store_blob_want_readable(s->store, blob, a->user.id, &readable) != STORE_OK || !readable ||
        store_blob_want_get(s->store, blob, &w) != STORE_OK)
        return false;
    r->have = w.have;
    r->total = w.total;
    r->retry_after_s = 2;
    if (!strcmp(w.state, "failed")) {
        r->code = "blob_failed";
        store_blob_bad_last(s->store, blob, r->from, sizeof r->from);
        set_error(r, KZ_UNAVAILABLE,
                  "the photo's blob failed its integrity check (from server "
                  "%s); it is fetched again from another server",
                  r->from[0] ? r->from : "?");
        r->retry_after_s = 10;
    } else {
        /* Why it waits, when it does ("waiting: staging full"): fed_blobs.c's words. */
        bool why = !strcmp(w.state, "waiting") && w.last_error[0];
        r->code = "blob_not_here";
        set_error(r, KZ_UNAVAILABLE, "the photo's blob is not here yet (%lld%%%s%s); retry later",
                  (long long)(w.total ? w.have * 100 / w.total : 0), why ? "; " : "",
                  why ? w.last_error : "");
    }
    return true;
}

/* A photo posted before its blob finished uploading (thumbnail first, ops_e2ee.c): 503 with how
 * far the sender's upload is, to a member who could read it once it is whole. The upload
 * stalled (the phone lost its signal) or expired: still 503, for the sender's client resumes it
 * when it can, but later. */
static bool blob_pending(struct srv *s, const struct srv_auth *a, const char *blob,
                         struct srv_http_result *r)
{
    bool readable = false;
    int64_t poster = 0, offset = 0, length = 0;
    if (store_blob_pending_readable(s->store, blob, a->user.id, 0, &readable, &poster) !=
            STORE_OK ||
        !readable)
        return false;
    r->code = "blob_not_here";
    if (store_upload_live(s->store, poster, blob, kz_now_ms(), &offset, &length) == STORE_OK) {
        r->have = offset;
        r->total = length;
        r->retry_after_s = 2;
        r->state = "uploading";
        set_error(r, KZ_UNAVAILABLE,
                  "the photo's blob is not here yet: its sender is uploading it (%lld%%); "
                  "retry later",
                  (long long)(length ? offset * 100 / length : 0));
    } else {
        r->retry_after_s = 30;
        r->state = "stalled";
        set_error(r, KZ_UNAVAILABLE,
                  "the photo's blob is not here yet: its sender's upload stopped before the "
                  "end and goes on when the sender's device is back online");
    }
    return true;
}

void srv_blob_open(struct srv *s, const struct srv_auth *a, const char *blob, int *fd,
                   int64_t *size, struct srv_http_result *r)
{
    memset(r, 0, sizeof *r);
    *fd = -1;
    bool readable = false;
    enum store_rc rc =
        srv_blob_id_valid(blob) ? blob_readable_by(s, a->user.id, blob, size, &readable) : STORE_OK;
    if (rc != STORE_OK) {
        set_error(r, KZ_INTERNAL, "blob lookup failed");
        return;
    }
    /* Another server's photo whose blob is on its way (fed_blobs.c): said, to its readers. */
    if (!readable && rc == STORE_OK && srv_blob_id_valid(blob) && blob_wanted(s, a, blob, r))
        return;
    /* A photo posted before its blob, whose sender is still uploading it: said, to its
     * readers. */
    if (!readable && srv_blob_id_valid(blob) && blob_pending(s, a, blob, r))
        return;
    /* Not a member of any room that references it: the same answer as no such blob. */
    if (!readable) {
        set_error(r, KZ_NOT_FOUND, "no such blob");
        return;
    }
    char path[4200];
    srv_blob_path(s, blob, path, sizeof path);
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) {
        KZ_ERROR("blob_missing", "blob=%s error=\"%s\"", blob, strerror(errno));
        set_error(r, KZ_INTERNAL, "the blob's file is missing");
        return;
    }
    set_ok(r, 200, "ok");
}

/* Staging files no open upload owns: a kill between a finished upload's commit and the
 * removal of its staging file leaves one behind. Looked for once per start. */
static void uploads_tidy(struct srv *s)
{
    char dir[sizeof s->data_dir + 16];
    snprintf(dir, sizeof dir, "%s/uploads", s->data_dir);
    DIR *d = opendir(dir);
    if (!d)
        return;
    int removed = 0;
    for (struct dirent *e; (e = readdir(d));) {
        struct store_upload u;
        if (e->d_name[0] == '.' || !upload_id_valid(e->d_name))
            continue;
        enum store_rc rc = store_upload_get(s->store, e->d_name, &u);
        if (rc == STORE_NOT_FOUND || (rc == STORE_OK && u.done_at)) {
            char path[4200];
            staging_path(s, e->d_name, path, sizeof path);
            removed += unlink(path) == 0;
        }
    }
    closedir(d);
    if (removed)
        KZ_INFO("uploads_tidied", "orphan_staging_files=%d", removed);
}

void srv_uploads_sweep(struct srv *s, int64_t now)
{
    if (!s->uploads_tidied) {
        s->uploads_tidied = true;
        uploads_tidy(s);
    }
    char ids[32][STORE_UPLOAD_ID_MAX + 1];
    int n = 0;
    if (store_upload_expired(s->store, now, ids, 32, &n) != STORE_OK || n == 0)
        return;
    if (store_tx_begin(s->store) != STORE_OK)
        return;
    for (int i = 0; i < n; i++) {
        char path[4200];
        staging_path(s, ids[i], path, sizeof path);
        if (store_upload_delete(s->store, ids[i]) == STORE_OK)
            unlink(path); /* before the commit: at worst a row without a file, which 410s */
    }
    KZ_INFO("uploads_expired", "count=%d", n);
}
