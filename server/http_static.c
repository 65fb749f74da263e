/* http_static.c - serves the web client's files (GET and HEAD outside /api/) from web_root.
 *
 * The web client is plain files (clients/web/: ES modules, CSS, images) with no build step, so
 * the server gives them what a build step would: types, validators, compression.
 *   - Paths: only [A-Za-z0-9._~-] segments, none starting with '.', under the root; "/" is
 *     index.html; the resolved path (symlinks followed) must still be under the root's real
 *     path; only regular files of a type in the table below are served. Anything else is 404.
 *   - Caching by content: the ETag is the file's BLAKE2b-128 in hex. Every reply says
 *     `no-cache` (the browser revalidates and gets 304 while the file is unchanged), except a
 *     request whose `?v=` names the file's current hash: that URL's bytes can never change, so
 *     it may be kept a year (`immutable`). A stale `?v=` gets today's file with no-cache, never
 *     a year of the old one.
 *   - gzip: compressible types up to WEB_GZ_MAX bytes are compressed once per version of the
 *     file and kept (at most WEB_GZ_CACHE bytes in all), and sent to clients whose
 *     Accept-Encoding allows gzip. libsodium's two ES modules (434 KB) go out as ~150 KB.
 *   - Bodies stream from the file in FILE_CHUNK pieces (or from the compressed copy), one per
 *     WRITEABLE, so a big file never sits in memory and the usual deadlines (http_api.c's
 *     watch: bytes must move) apply.
 * What a version of a file is: its (device, inode, size, mtime). Every file that could be
 * served is hashed and compressed at start, before the server listens (static_open), so no
 * request waits for that; a file changed later is learnt again at its next request, on the
 * event loop. zlib level 6, not 9: on 3 MB of JavaScript-like text level 9 took 8x as long as
 * 6 (4.6 s against 0.55 s, loaded machine) for 0.5% fewer bytes.
 */
#include "transport_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define FILE_CHUNK     16384
#define WEB_HASH_BYTES 16         /* BLAKE2b-128: an ETag, not a signature */
#define WEB_GZ_MAX     (2 << 20)  /* larger files are sent as they are */
#define WEB_GZ_CACHE   (32 << 20) /* compressed copies kept, in all */
#define WEB_FILES_MAX  4096       /* versions remembered before the cache starts afresh */
#define WEB_PATH_MAX   256

/* The types served, by extension: anything else under the root is not served (a stray
 * README.md, an editor's backup). Tables over chains (STYLE.md). */
static const struct web_type {
    const char *ext;
    const char *type;
    bool gzip; /* worth compressing (text); images and fonts already are */
} web_types[] = {
    {".html", "text/html; charset=utf-8", true},
    {".js", "text/javascript; charset=utf-8", true},
    {".mjs", "text/javascript; charset=utf-8", true},
    {".css", "text/css; charset=utf-8", true},
    {".svg", "image/svg+xml", true},
    {".png", "image/png", false},
    {".ico", "image/x-icon", false},
    {".json", "application/json", true},
    {".webmanifest", "application/manifest+json", true},
    {".woff2", "font/woff2", false},
    {".txt", "text/plain; charset=utf-8", true},
    {".wasm", "application/wasm", true},
};

/* One version of one file: what was learnt of it when it was first asked for. */
struct web_file {
    struct web_file *next;
    char path[WEB_PATH_MAX]; /* relative to the root */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    char hash[WEB_HASH_BYTES * 2 + 1];
    struct kz_frame *gz; /* the gzip body (a reference), or NULL */
};

struct web_root {
    char dir[PATH_MAX]; /* real path, no trailing slash; "" when there is no web client */
    struct web_file *files;
    size_t count;
    size_t gz_bytes;
};

/* A static reply in flight on an http_conn (h->st). The file, if any, is h->file_fd, counted
 * against the descriptor limit like a blob's. */
struct static_reply {
    int status; /* 200 or 304 */
    const struct web_type *type;
    char hash[WEB_HASH_BYTES * 2 + 1];
    bool immutable;
    bool gzip;           /* the body is gz, with Content-Encoding: gzip */
    struct kz_frame *gz; /* a reference, while the body goes out */
    int64_t pos, end;    /* body bytes [pos, end) of the file or of gz */
};

const char *kz_web_root_default(void)
{
    /* Installed (the binary is the one in the install prefix's bin): the share directory the
     * install rule filled; anything else (a build tree) serves the source tree's files, so
     * the README's run command shows the client being worked on. */
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            if (strcmp(exe, KZ_INSTALL_BINDIR) == 0)
                return KZ_WEB_INSTALL_DIR;
        }
    }
    return KZ_WEB_SOURCE_DIR;
}

static void web_files_clear(struct web_root *w)
{
    while (w->files) {
        struct web_file *f = w->files;
        w->files = f->next;
        kz_frame_unref(f->gz);
        free(f);
    }
    w->count = 0;
    w->gz_bytes = 0;
}

void static_close(struct transport *t)
{
    if (!t->web)
        return;
    web_files_clear(t->web);
    free(t->web);
    t->web = NULL;
}

void static_reply_free(struct static_reply *r)
{
    if (!r)
        return;
    kz_frame_unref(r->gz);
    free(r);
}

/* The type of a path by its extension, or NULL. */
static const struct web_type *type_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot || strchr(dot, '/'))
        return NULL;
    for (size_t i = 0; i < sizeof web_types / sizeof web_types[0]; i++)
        if (strcmp(dot, web_types[i].ext) == 0)
            return &web_types[i];
    return NULL;
}

/* Whether uri (as lws decoded it, uri_len bytes) is a path this file may look up: "/" or
 * segments of [A-Za-z0-9._~-], none empty or starting with '.'. Rejects "..", "%2e%2e" (lws
 * has decoded it by now), NUL, backslashes, hidden files; rel gets the path without its '/'. */
static bool path_ok(const char *uri, size_t uri_len, char *rel, size_t n)
{
    if (uri_len != strlen(uri) || uri[0] != '/')
        return false; /* a NUL inside */
    if (strcmp(uri, "/") == 0) {
        snprintf(rel, n, "index.html");
        return true;
    }
    if (uri_len >= n)
        return false;
    bool seg_start = true;
    for (const char *c = uri + 1; *c; c++) {
        if (*c == '/') {
            if (seg_start)
                return false; /* "//" */
            seg_start = true;
            continue;
        }
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-' || *c == '~';
        if (!ok || (seg_start && *c == '.'))
            return false;
        seg_start = false;
    }
    if (seg_start)
        return false; /* ends in '/': a directory */
    snprintf(rel, n, "%s", uri + 1);
    return true;
}

/* Opens rel under the root, refusing anything whose real path leaves it (a symlink out) and
 * anything but a regular file. -1 if there is no such file to serve. */
static int open_under(const struct web_root *w, const char *rel, struct stat *st)
{
    char joined[PATH_MAX], real[PATH_MAX];
    if (snprintf(joined, sizeof joined, "%s/%s", w->dir, rel) >= (int)sizeof joined ||
        !realpath(joined, real))
        return -1;
    size_t dl = strlen(w->dir);
    if (strncmp(real, w->dir, dl) != 0 || real[dl] != '/')
        return -1;
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return -1;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* gzip of data (RFC 1952) into a new frame the caller owns, or NULL when it would not be
 * smaller or zlib fails. */
static struct kz_frame *gzip_of(const unsigned char *data, size_t len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    uLong cap = deflateBound(&z, (uLong)len);
    unsigned char *out = malloc(cap);
    struct kz_frame *f = NULL;
    if (out) {
        z.next_in = (Bytef *)data;
        z.avail_in = (uInt)len;
        z.next_out = out;
        z.avail_out = (uInt)cap;
        if (deflate(&z, Z_FINISH) == Z_STREAM_END && z.total_out < len)
            f = kz_frame_from_text((const char *)out, z.total_out, 200);
    }
    deflateEnd(&z);
    free(out);
    return f;
}

/* Reads fd whole (size bytes) into a new buffer the caller frees; NULL on error. */
static unsigned char *read_all(int fd, off_t size)
{
    unsigned char *buf = malloc((size_t)size + 1);
    if (!buf)
        return NULL;
    for (off_t at = 0; at < size;) {
        ssize_t n = pread(fd, buf + at, (size_t)(size - at), at);
        if (n <= 0) {
            free(buf);
            return NULL;
        }
        at += n;
    }
    return buf;
}

/* What is known of this version of the file, learnt now if it is new (hash, gzip). NULL on a
 * read error. The result belongs to the root's cache. */
static struct web_file *web_file_get(struct web_root *w, const char *rel, int fd,
                                     const struct stat *st, const struct web_type *type)
{
    struct web_file **at = &w->files;
    for (; *at; at = &(*at)->next) {
        struct web_file *f = *at;
        if (strcmp(f->path, rel) != 0)
            continue;
        if (f->dev == st->st_dev && f->ino == st->st_ino && f->size == st->st_size &&
            f->mtime.tv_sec == st->st_mtim.tv_sec && f->mtime.tv_nsec == st->st_mtim.tv_nsec)
            return f;
        /* Replaced: forget the old version. */
        *at = f->next;
        if (f->gz)
            w->gz_bytes -= f->gz->len;
        kz_frame_unref(f->gz);
        free(f);
        w->count--;
        break;
    }
    if (w->count >= WEB_FILES_MAX)
        web_files_clear(w); /* a tree that keeps changing: start afresh */
    struct web_file *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    snprintf(f->path, sizeof f->path, "%s", rel);
    f->dev = st->st_dev;
    f->ino = st->st_ino;
    f->size = st->st_size;
    f->mtime = st->st_mtim;
    unsigned char h[WEB_HASH_BYTES];
    crypto_generichash_state s;
    crypto_generichash_init(&s, NULL, 0, sizeof h);
    if (type->gzip && st->st_size <= WEB_GZ_MAX) {
        unsigned char *all = read_all(fd, st->st_size);
        if (!all) {
            free(f);
            return NULL;
        }
        crypto_generichash_update(&s, all, (unsigned long long)st->st_size);
        if (w->gz_bytes < WEB_GZ_CACHE && (f->gz = gzip_of(all, (size_t)st->st_size)))
            w->gz_bytes += f->gz->len;
        free(all);
    } else {
        unsigned char buf[FILE_CHUNK];
        for (off_t pos = 0; pos < st->st_size;) {
            ssize_t n = pread(fd, buf, sizeof buf, pos);
            if (n <= 0) {
                free(f);
                return NULL;
            }
            crypto_generichash_update(&s, buf, (unsigned long long)n);
            pos += n;
        }
    }
    crypto_generichash_final(&s, h, sizeof h);
    sodium_bin2hex(f->hash, sizeof f->hash, h, sizeof h);
    f->next = w->files;
    w->files = f;
    w->count++;
    return f;
}

/* Learns every file under rel (relative to the root) that a request could be served, the
 * same paths and types as static_begin, depth at most 8, symlinked directories not followed. */
static void web_warm_dir(struct web_root *w, const char *rel, int depth)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s%s%s", w->dir, rel[0] ? "/" : "", rel) >= (int)sizeof path)
        return;
    DIR *dir = opendir(path);
    if (!dir)
        return;
    struct dirent *e;
    while ((e = readdir(dir)) && w->count < WEB_FILES_MAX) {
        char sub[WEB_PATH_MAX], uri[WEB_PATH_MAX + 1], relp[WEB_PATH_MAX];
        if (e->d_name[0] == '.' || snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "",
                                            e->d_name) >= (int)sizeof sub)
            continue;
        if (e->d_type == DT_DIR) {
            if (depth < 8)
                web_warm_dir(w, sub, depth + 1);
            continue;
        }
        snprintf(uri, sizeof uri, "/%s", sub);
        const struct web_type *type;
        struct stat st;
        int fd;
        if (!path_ok(uri, strlen(uri), relp, sizeof relp) || !(type = type_of(relp)) ||
            (fd = open_under(w, relp, &st)) < 0)
            continue;
        web_file_get(w, relp, fd, &st, type);
        close(fd);
    }
    closedir(dir);
}

int static_open(struct transport *t, char *err, size_t errlen)
{
    struct web_root *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *dir = t->cfg->web_root[0] ? t->cfg->web_root : kz_web_root_default();
    struct stat st;
    if (realpath(dir, w->dir) && stat(w->dir, &st) == 0 && S_ISDIR(st.st_mode)) {
        int64_t t0 = kz_now_ms();
        web_warm_dir(w, "", 0);
        KZ_INFO("web_root", "dir=\"%s\" files=%zu gzip_bytes=%zu ms=%lld", w->dir, w->count,
                w->gz_bytes, (long long)(kz_now_ms() - t0));
    } else if (t->cfg->web_root[0]) {
        snprintf(err, errlen, "web_root %s is not a directory", t->cfg->web_root);
        free(w);
        return -1;
    } else {
        /* The API serves on without a web client (a CLI-only install). */
        KZ_WARN("web_root_missing", "dir=\"%s\" (set web_root to serve the web client)", dir);
        w->dir[0] = '\0';
    }
    t->web = w;
    return 0;
}

/* Whether an Accept-Encoding value accepts gzip: a "gzip" (or "x-gzip", or "*") coding whose
 * q is not zero. */
static bool accepts_gzip(const char *v)
{
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *name = v;
        while (*v && *v != ',' && *v != ';' && *v != ' ' && *v != '\t')
            v++;
        size_t nl = (size_t)(v - name);
        bool match = (nl == 4 && strncasecmp(name, "gzip", 4) == 0) ||
                     (nl == 6 && strncasecmp(name, "x-gzip", 6) == 0) || (nl == 1 && *name == '*');
        bool zero = false;
        const char *end = strchr(v, ',');
        if (!end)
            end = v + strlen(v);
        const char *q = strstr(v, "q=");
        if (q && q < end) {
            q += 2;
            zero = *q == '0';
            for (const char *d = q + 1; zero && d < end && *d != ' ' && *d != ';'; d++)
                if (*d != '.' && *d != '0')
                    zero = false;
        }
        if (match && !zero)
            return true;
        v = end;
    }
    return false;
}

/* Whether If-None-Match names this hash (as "HASH" or "HASH-gz", weak or strong, or *). */
static bool not_modified(struct lws *wsi, const char *hash)
{
    char v[512];
    if (lws_hdr_copy(wsi, v, sizeof v, WSI_TOKEN_HTTP_IF_NONE_MATCH) <= 0)
        return false;
    if (strcmp(v, "*") == 0)
        return true;
    char tag[WEB_HASH_BYTES * 2 + 2];
    snprintf(tag, sizeof tag, "\"%s", hash);
    for (const char *p = strstr(v, tag); p; p = strstr(p + 1, tag)) {
        char after = p[strlen(tag)];
        if (after == '"' || after == '-')
            return true;
    }
    return false;
}

int static_begin(struct transport *t, struct http_conn *h, struct lws *wsi, const char *uri,
                 bool head)
{
    struct web_root *w = t->web;
    char rel[WEB_PATH_MAX];
    int uri_len = lws_hdr_total_length(wsi, head ? WSI_TOKEN_HEAD_URI : WSI_TOKEN_GET_URI);
    const struct web_type *type;
    struct stat st;
    int fd = -1;
    if (!w || !w->dir[0] || uri_len <= 0 || !path_ok(uri, (size_t)uri_len, rel, sizeof rel) ||
        !(type = type_of(rel)) || (fd = open_under(w, rel, &st)) < 0) {
        KZ_DEBUG("web_not_found", "addr=%s", h->c.peer);
        srv_send_error(t->srv, h->c.id, true, KZ_NOT_FOUND, "no such path");
        return 0;
    }
    struct web_file *f = web_file_get(w, rel, fd, &st, type);
    struct static_reply *r = f ? calloc(1, sizeof *r) : NULL;
    if (!r) {
        close(fd);
        srv_send_error(t->srv, h->c.id, true, KZ_INTERNAL, "cannot read the file");
        return 0;
    }
    r->type = type;
    memcpy(r->hash, f->hash, sizeof r->hash);
    char v[WEB_HASH_BYTES * 2 + 8];
    r->immutable = strcmp(rel, "index.html") != 0 &&
                   lws_get_urlarg_by_name(wsi, "v=", v, sizeof v) && strcmp(v + 2, f->hash) == 0;
    char ae[256];
    r->gzip = f->gz && lws_hdr_copy(wsi, ae, sizeof ae, WSI_TOKEN_HTTP_ACCEPT_ENCODING) > 0 &&
              accepts_gzip(ae);
    h->st = r;
    h->no_body = head;
    if (not_modified(wsi, f->hash)) {
        r->status = 304;
        close(fd);
    } else if (r->gzip) {
        r->status = 200;
        r->gz = kz_frame_ref(f->gz);
        r->end = (int64_t)f->gz->len;
        close(fd);
    } else {
        r->status = 200;
        r->end = st.st_size;
        h->file_fd = fd; /* counted against the descriptor limit (http_files_sync) */
    }
    if (h->no_body || r->status == 304) {
        if (h->file_fd >= 0)
            close(h->file_fd);
        h->file_fd = -1;
    }
    lws_callback_on_writable(wsi);
    return 0;
}

/* The reply is out: h forgets it (so a later WRITEABLE sends nothing) and the transaction
 * completes. h may be freed. */
static int static_finish(struct http_conn *h, struct lws *wsi)
{
    if (h->file_fd >= 0)
        close(h->file_fd);
    h->file_fd = -1;
    static_reply_free(h->st);
    h->st = NULL;
    return http_done(h, wsi);
}

static int static_headers(struct http_conn *h, struct lws *wsi)
{
    struct static_reply *r = h->st;
    unsigned char buf[LWS_PRE + 1536], *start = buf + LWS_PRE, *p = start,
                                       *end = buf + sizeof buf - 1;
    char etag[WEB_HASH_BYTES * 2 + 8];
    snprintf(etag, sizeof etag, "\"%s%s\"", r->hash, r->gzip ? "-gz" : "");
    const char *cache = r->immutable ? "public, max-age=31536000, immutable" : "no-cache";
#define HDR(name, val)                                                                             \
    lws_add_http_header_by_name(wsi, (const unsigned char *)(name), (const unsigned char *)(val),  \
                                (int)strlen(val), &p, end)
    if (lws_add_http_header_status(wsi, (unsigned)r->status, &p, end) || HDR("etag:", etag) ||
        HDR("cache-control:", cache) || (r->type->gzip && HDR("vary:", "Accept-Encoding")) ||
        http_policy_headers(wsi, &p, end))
        return -1;
    if (r->status == 200) {
        if (HDR("content-type:", r->type->type) || (r->gzip && HDR("content-encoding:", "gzip")) ||
            lws_add_http_header_content_length(wsi, (lws_filepos_t)(r->end - r->pos), &p, end))
            return -1;
    }
#undef HDR
    if (lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    h->headers_sent = true;
    return 0;
}

int static_write(struct http_conn *h, struct lws *wsi)
{
    struct static_reply *r = h->st;
    if (!h->headers_sent) {
        if (static_headers(h, wsi))
            return -1;
        if (h->no_body || r->status != 200 || r->pos >= r->end)
            return static_finish(h, wsi);
        lws_callback_on_writable(wsi);
        return 0;
    }
    /* From the shared compressed copy (copied out: never written from in place) or the file. */
    int rc = http_write_body(h, wsi, r->gz ? r->gz->data : NULL, &r->pos, r->end, FILE_CHUNK);
    if (rc <= 0)
        return rc;
    return static_finish(h, wsi);
}
