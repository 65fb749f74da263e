/* uploads.c - resumable uploads (a tus 1.0 subset) at /api/v1/uploads and encrypted blob
 * downloads (with Range) at /api/v1/blobs/<id>, over HTTP. blobs.c decides; this file speaks
 * the HTTP of it: headers in, tus headers out, upload bodies streamed to disk as they arrive
 * and blobs streamed from disk, so neither is ever held in memory whole.
 */
#include "transport_int.h"
#include "httpparse.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FILE_CHUNK 32768 /* bytes of a blob per write */

void upload_reply(struct http_conn *h, const struct srv_http_result *r)
{
    h->res = *r;
    h->has_res = true;
    h->no_body = r->status == 204 || h->no_body;
    if (!h->no_body) {
        cJSON *o = cJSON_CreateObject();
        if (r->err == KZ_OK) {
            cJSON_AddTrueToObject(o, "ok");
            cJSON_AddNumberToObject(o, "offset", (double)r->offset);
            cJSON_AddNumberToObject(o, "length", (double)r->length);
            if (r->location[0])
                cJSON_AddStringToObject(o, "location", r->location);
        } else {
            cJSON_AddFalseToObject(o, "ok");
            cJSON *err = cJSON_AddObjectToObject(o, "error");
            cJSON_AddStringToObject(err, "code", r->code ? r->code : kz_err_code(r->err));
            cJSON_AddStringToObject(err, "message", r->message);
            if (r->retry_after_s > 0)
                cJSON_AddNumberToObject(err, "retry_after_s", (double)r->retry_after_s);
            if (r->code) { /* a blob on its way from another server (fed_blobs.c) */
                cJSON_AddNumberToObject(err, "have", (double)r->have);
                cJSON_AddNumberToObject(err, "total", (double)r->total);
                cJSON_AddNumberToObject(err, "percent",
                                        r->total ? (double)(r->have * 100 / r->total) : 0);
                if (r->from[0])
                    cJSON_AddStringToObject(err, "from", r->from);
                if (r->state)
                    cJSON_AddStringToObject(err, "state", r->state);
            }
        }
        h->resp = kz_frame_from_json(o, r->status);
        cJSON_Delete(o);
    }
    /* Refused before its body was read: close after the reply. A PATCH that read its whole
     * body (r->body_read) leaves the connection clean for the next request. */
    if (r->status >= 300)
        h->close_after = h->patch == NULL && h->content_length > 0 && !r->body_read;
    lws_callback_on_writable(h->c.wsi);
}

static void upload_refuse(struct http_conn *h, enum kz_err e, const char *msg)
{
    struct srv_http_result r = {.err = e, .status = kz_err_http_status(e)};
    snprintf(r.message, sizeof r.message, "%s", msg);
    h->close_after = true;
    upload_reply(h, &r);
}

static long long header_int(struct lws *wsi, const char *name)
{
    char buf[32];
    int n = lws_hdr_custom_copy(wsi, buf, sizeof buf, name, (int)strlen(name));
    if (n <= 0)
        return -1;
    char *end;
    long long v = strtoll(buf, &end, 10);
    return *end || v < 0 ? -1 : v;
}

/* tus Upload-Metadata: "key base64,key base64"; finds `blob` (httpparse.c). */
static bool metadata_blob(struct lws *wsi, char out[STORE_BLOB_ID_LEN + 1])
{
    char md[512];
    const char *name = "upload-metadata:";
    if (lws_hdr_custom_copy(wsi, md, sizeof md, name, (int)strlen(name)) <= 0)
        return false;
    return kz_parse_upload_metadata_blob(md, out);
}

int upload_begin(struct transport *t, struct http_conn *h, struct lws *wsi, const char *uri)
{
    bool is_post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
    bool is_get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
    bool is_head = lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0;
    bool is_patch = lws_hdr_total_length(wsi, WSI_TOKEN_PATCH_URI) > 0;
    bool is_delete = lws_hdr_total_length(wsi, WSI_TOKEN_DELETE_URI) > 0;
    char clen[32] = "";
    h->content_length = lws_hdr_copy(wsi, clen, sizeof clen, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0
                            ? strtoll(clen, NULL, 10)
                            : 0;
    h->no_body = is_head;
    char auth[160] = "";
    struct srv_auth who;
    char why[192];
    lws_hdr_copy(wsi, auth, sizeof auth, WSI_TOKEN_HTTP_AUTHORIZATION);
    static const struct srv_gate_need need = {OP_USER, false, "uploads and blobs"};
    enum kz_err e = srv_gate_token(t->srv, strncmp(auth, "Bearer ", 7) == 0 ? auth + 7 : NULL,
                                   &need, &who, why, sizeof why);
    if (e) {
        upload_refuse(h, e, why);
        return 0;
    }
    struct srv_http_result r;
    if (strncmp(uri, BLOBS_PREFIX, strlen(BLOBS_PREFIX)) == 0) {
        if (!is_get && !is_head) {
            upload_refuse(h, KZ_BAD_REQUEST, "blobs are read with GET");
            return 0;
        }
        int fd;
        int64_t size;
        srv_blob_open(t->srv, &who, uri + strlen(BLOBS_PREFIX), &fd, &size, &r);
        if (r.status != 200) {
            upload_reply(h, &r);
            return 0;
        }
        h->file_fd = fd;
        h->file_size = size;
        h->file_pos = 0;
        h->file_end = size;
        char range[64];
        if (lws_hdr_copy(wsi, range, sizeof range, WSI_TOKEN_HTTP_RANGE) > 0) {
            if (!kz_parse_range(range, size, &h->file_pos, &h->file_end)) {
                close(h->file_fd);
                h->file_fd = -1;
                struct srv_http_result bad = {.err = KZ_BAD_REQUEST, .status = 416, .length = size};
                snprintf(bad.message, sizeof bad.message, "the range is not within the blob");
                h->no_body = true;
                upload_reply(h, &bad);
                return 0;
            }
            h->partial = true;
        }
        h->res = r;
        h->res.status = h->partial ? 206 : 200;
        h->has_res = true;
        lws_callback_on_writable(wsi);
        return 0;
    }
    const char *rest = uri + strlen(UPLOADS_PATH);
    if (!*rest && is_post) {
        char blob[STORE_BLOB_ID_LEN + 1];
        long long length = header_int(wsi, "upload-length:");
        if (length < 0 || !metadata_blob(wsi, blob)) {
            upload_refuse(h, KZ_BAD_REQUEST,
                          "POST needs Upload-Length and Upload-Metadata: blob <base64>");
            return 0;
        }
        srv_upload_create(t->srv, &who, length, blob, &r);
        upload_reply(h, &r);
        return 0;
    }
    if (*rest != '/' || !rest[1]) {
        upload_refuse(h, KZ_NOT_FOUND, "no such path");
        return 0;
    }
    const char *id = rest + 1;
    if (is_head) {
        srv_upload_head(t->srv, &who, id, &r);
        upload_reply(h, &r);
    } else if (is_delete) {
        srv_upload_delete(t->srv, &who, id, &r);
        upload_reply(h, &r);
    } else if (is_patch) {
        char checksum[128] = "";
        const char *name = "upload-checksum:";
        lws_hdr_custom_copy(wsi, checksum, sizeof checksum, name, (int)strlen(name));
        long long offset = header_int(wsi, "upload-offset:");
        h->patch =
            srv_upload_patch_begin(t->srv, &who, id, offset, h->content_length, checksum, &r);
        if (!h->patch) {
            h->close_after = true;
            upload_reply(h, &r);
        } else if (h->content_length == 0) {
            struct srv_patch *p = h->patch;
            h->patch = NULL;
            srv_upload_patch_end(p, &r);
            upload_reply(h, &r);
        }
    } else {
        upload_refuse(h, KZ_BAD_REQUEST, "uploads take POST, HEAD, PATCH or DELETE");
    }
    return 0;
}

int upload_write_headers(struct http_conn *h, struct lws *wsi)
{
    unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start,
                                       *end = buf + sizeof buf - 1;
    const struct srv_http_result *r = &h->res;
    char v[96];
#define HDR(name, ...)                                                                             \
    (snprintf(v, sizeof v, __VA_ARGS__),                                                           \
     lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)v,       \
                                 (int)strlen(v), &p, end))
    if (lws_add_http_header_status(wsi, (unsigned)r->status, &p, end) ||
        http_policy_headers(wsi, &p, end) || HDR("tus-resumable:", "1.0.0") ||
        HDR("cache-control:", "no-store"))
        return -1;
    if (h->file_fd >= 0) {
        if (HDR("content-type:", "application/octet-stream") || HDR("accept-ranges:", "bytes") ||
            (h->partial && HDR("content-range:", "bytes %lld-%lld/%lld", (long long)h->file_pos,
                               (long long)h->file_end - 1, (long long)h->file_size)) ||
            lws_add_http_header_content_length(wsi, (lws_filepos_t)(h->file_end - h->file_pos), &p,
                                               end))
            return -1;
    } else {
        if (r->status == 416 && HDR("content-range:", "bytes */%lld", (long long)r->length))
            return -1;
        if (r->status != 416 && r->status != 404 && r->status != 401 &&
            (HDR("upload-offset:", "%lld", (long long)r->offset) ||
             (r->length && HDR("upload-length:", "%lld", (long long)r->length))))
            return -1;
        if (r->location[0] && HDR("location:", "%s", r->location))
            return -1;
        if (r->retry_after_s > 0 && HDR("retry-after:", "%lld", (long long)r->retry_after_s))
            return -1;
        if (r->expires_at) {
            time_t e = (time_t)(r->expires_at / 1000);
            struct tm tm;
            char date[64];
            strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&e, &tm));
            if (HDR("upload-expires:", "%s", date))
                return -1;
        }
        size_t len = h->resp && !h->no_body ? h->resp->len : 0;
        if ((len && HDR("content-type:", "application/json")) ||
            lws_add_http_header_content_length(wsi, len, &p, end))
            return -1;
    }
#undef HDR
    if (lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    h->headers_sent = true;
    return 0;
}

int upload_write_chunk(struct http_conn *h, struct lws *wsi)
{
    int rc = http_write_body(h, wsi, NULL, &h->file_pos, h->file_end, FILE_CHUNK);
    if (rc <= 0)
        return rc;
    close(h->file_fd);
    h->file_fd = -1;
    h->has_res = false;
    return http_done(h, wsi);
}
