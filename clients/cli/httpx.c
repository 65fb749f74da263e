/* httpx.c - one HTTP request to the upload and blob endpoints, on libcurl. libcurl earns its
 * place here: PATCH with tus headers, request bodies and streamed response bodies, ranges,
 * and (later) TLS verification and key pinning, none of which the WebSocket client does. */
#include "e2ee.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CONNECT_TIMEOUT_S 10
/* A transfer slower than 1 byte/s for this long is a dead connection: retry, resume. */
#define STALL_TIMEOUT_S 30

static void global_cleanup(void)
{
    curl_global_cleanup();
}

static bool global_init(void)
{
    static bool done;
    if (done)
        return true;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return false;
    atexit(global_cleanup);
    done = true;
    return true;
}

void hx_base(const char *server, char *out, size_t n)
{
    if (strncmp(server, "ws://", 5) == 0)
        snprintf(out, n, "http://%s", server + 5);
    else if (strncmp(server, "wss://", 6) == 0)
        snprintf(out, n, "https://%s", server + 6);
    else
        snprintf(out, n, "%s", server);
    size_t len = strlen(out);
    while (len && out[len - 1] == '/')
        out[--len] = '\0';
}

/* "name: value\r\n" -> value into out, when the line is that header. */
static bool header_value(const char *line, size_t len, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return false;
    const char *v = line + nl + 1;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    snprintf(out, n, "%.*s", (int)(end - v), v);
    return true;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *arg)
{
    struct hx_resp *r = arg;
    size_t len = size * nitems;
    char v[512];
    if (header_value(line, len, "upload-offset", v, sizeof v)) {
        r->upload_offset = strtoll(v, NULL, 10);
    } else if (header_value(line, len, "location", v, sizeof v)) {
        snprintf(r->location, sizeof r->location, "%s", v);
    } else if (header_value(line, len, "content-range", v, sizeof v)) {
        /* "bytes A-B/N" or "bytes * /N" */
        const char *slash = strchr(v, '/');
        if (slash)
            r->total = strtoll(slash + 1, NULL, 10);
        if (strncmp(v, "bytes ", 6) == 0 && v[6] != '*')
            r->range_start = strtoll(v + 6, NULL, 10);
    }
    return len;
}

struct sink_ctx {
    FILE *sink;
    struct hx_resp *resp;
    size_t body_len;
    long status;
    CURL *curl;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct sink_ctx *s = arg;
    size_t len = size * nmemb;
    long status = 0;
    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
    /* Only a blob's bytes go to the sink; an error reply's JSON stays in resp->body. */
    if (s->sink && (status == 200 || status == 206)) {
        if (fwrite(data, 1, len, s->sink) != len) {
            s->resp->sink_failed = true;
            return 0;
        }
        return len;
    }
    size_t room = sizeof s->resp->body - 1 - s->body_len;
    size_t take = len < room ? len : room;
    memcpy(s->resp->body + s->body_len, data, take);
    s->body_len += take;
    s->resp->body[s->body_len] = '\0';
    return len;
}

static struct curl_slist *request_headers(const struct hx_req *req)
{
    struct curl_slist *h = NULL, *next;
    char auth[300];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", req->token ? req->token : "");
    /* "Expect:" off: the server answers a PATCH only after its body, never with 100. */
    const char *fixed[] = {auth, "Tus-Resumable: 1.0.0", "Expect:", NULL};
    for (int i = 0; fixed[i]; i++) {
        if (!(next = curl_slist_append(h, fixed[i])))
            goto fail;
        h = next;
    }
    for (int i = 0; req->headers && req->headers[i]; i++) {
        if (!(next = curl_slist_append(h, req->headers[i])))
            goto fail;
        h = next;
    }
    return h;
fail:
    curl_slist_free_all(h);
    return NULL;
}

static void set_method(CURL *curl, const struct hx_req *req)
{
    if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req->method);
        if (strcmp(req->method, "DELETE") != 0) {
            curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req->body ? req->body : "");
            curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        }
    }
}

int hx_perform(const struct hx_req *req, struct hx_resp *resp)
{
    memset(resp, 0, sizeof *resp);
    resp->upload_offset = resp->range_start = resp->total = -1;
    CURL *curl = global_init() ? curl_easy_init() : NULL;
    struct curl_slist *headers = curl ? request_headers(req) : NULL;
    if (!curl || !headers) {
        snprintf(resp->error, sizeof resp->error, "cannot set up the HTTP client");
        curl_slist_free_all(headers);
        if (curl)
            curl_easy_cleanup(curl);
        return -1;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    struct sink_ctx sc = {.sink = req->sink, .resp = resp, .curl = curl};
    curl_easy_setopt(curl, CURLOPT_URL, req->url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    /* The same trust as the WebSocket connection (kzclient.c): the system's CAs or
     * KIZUNA_CA_FILE, or a pinned key alone (curl checks the SPKI hash before any request). */
    const char *ca = getenv("KIZUNA_CA_FILE"), *pin = getenv("KIZUNA_TLS_PIN");
    if (ca && *ca)
        curl_easy_setopt(curl, CURLOPT_CAINFO, ca);
    if (pin && *pin) {
        curl_easy_setopt(curl, CURLOPT_PINNEDPUBLICKEY, pin);
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, (long)STALL_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sc);
    set_method(curl, req);
    CURLcode cc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
    if (resp->status == 200 && resp->total < 0) {
        curl_off_t cl = -1;
        curl_easy_getinfo(curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        resp->total = cl;
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (cc != CURLE_OK) {
        /* A cut body is a transport error even after the status line came. */
        snprintf(resp->error, sizeof resp->error, "%s",
                 errbuf[0] ? errbuf : curl_easy_strerror(cc));
        return -1;
    }
    return 0;
}
