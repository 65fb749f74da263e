/* http_policy.c - what the API listener promises browsers about origins: the security headers
 * on every HTTP reply, and the same-origin rule for the API (POST /api/v1/<op>, uploads, blobs
 * and the WebSocket upgrade).
 *
 * The web client is served by kizunad itself (http_static.c), so the API never needs to answer
 * another origin: there are no CORS headers at all, and a request that carries an Origin header
 * naming another origin is refused. A request without Origin is not a browser's cross-origin
 * request (browsers send Origin on every POST and every WebSocket handshake), so the CLI, which
 * sends none, is unaffected. Auth is a bearer token, never a cookie, so a cross-site page could
 * not act as a user anyway; refusing it also closes cross-site WebSocket hijacking and
 * password guessing from a page the user happens to visit.
 *
 * lws's own LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE is not used: its
 * fixed policy (default-src 'none', no 'wasm-unsafe-eval') would forbid the WebAssembly of the
 * web client's crypto, and a second CSP header can only narrow the first.
 */
#include "transport_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The web client's policy (docs/web.md, "Serving"): only this origin's scripts, styles and
 * connections; WebAssembly compiled from those scripts (libsodium); images also from data:
 * and blob: URLs (decrypted photos, QR codes); no framing, no <base>, forms only to here. */
#define KZ_CSP                                                                                     \
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "                 \
    "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "                          \
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

static const char *const policy_headers[][2] = {
    {"content-security-policy:", KZ_CSP},
    {"x-content-type-options:", "nosniff"},
    {"referrer-policy:", "no-referrer"},
    {"x-frame-options:", "DENY"}, /* frame-ancestors for browsers that predate it */
    {"cross-origin-opener-policy:", "same-origin"},
    {"cross-origin-resource-policy:", "same-origin"},
};

int http_policy_headers(struct lws *wsi, unsigned char **p, unsigned char *end)
{
    for (size_t i = 0; i < sizeof policy_headers / sizeof policy_headers[0]; i++) {
        const char *v = policy_headers[i][1];
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)policy_headers[i][0],
                                        (const unsigned char *)v, (int)strlen(v), p, end))
            return -1;
    }
    return 0;
}

/* An origin's parts: "scheme://host[:port]", host lower-cased, the port made explicit. */
struct origin {
    char scheme[8];
    char host[256];
    unsigned port;
};

/* Splits "host[:port]" or "[v6][:port]" (exactly, nothing after); false if malformed. */
static bool split_hostport(const char *s, size_t len, unsigned dflt, struct origin *o)
{
    const char *host = s, *colon = NULL;
    size_t hlen = len;
    if (len && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close)
            return false;
        hlen = (size_t)(close - s) + 1;
        if (hlen < len) {
            if (s[hlen] != ':')
                return false;
            colon = s + hlen;
        }
    } else {
        colon = memchr(s, ':', len);
        if (colon)
            hlen = (size_t)(colon - s);
    }
    if (!hlen || hlen >= sizeof o->host)
        return false;
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)host[i];
        if (c <= ' ' || c >= 0x7f || c == '/' || c == '@' || c == '?' || c == '#')
            return false;
        o->host[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    o->host[hlen] = '\0';
    o->port = dflt;
    if (colon) {
        const char *d = colon + 1, *e = s + len;
        if (d == e || e - d > 5)
            return false;
        unsigned v = 0;
        for (; d < e; d++) {
            if (*d < '0' || *d > '9')
                return false;
            v = v * 10 + (unsigned)(*d - '0');
        }
        if (v == 0 || v > 65535)
            return false;
        o->port = v;
    }
    return true;
}

/* Parses an Origin value (RFC 6454 serialisation: no path, no user info); false if it is not
 * one, e.g. "null" from a sandboxed frame or a file:// page. */
static bool origin_parse(const char *s, struct origin *o)
{
    unsigned dflt;
    size_t skip;
    if (strncasecmp(s, "http://", 7) == 0) {
        snprintf(o->scheme, sizeof o->scheme, "http");
        dflt = 80;
        skip = 7;
    } else if (strncasecmp(s, "https://", 8) == 0) {
        snprintf(o->scheme, sizeof o->scheme, "https");
        dflt = 443;
        skip = 8;
    } else {
        return false;
    }
    return split_hostport(s + skip, strlen(s + skip), dflt, o);
}

static bool origin_same(const struct origin *a, const struct origin *b)
{
    return strcmp(a->scheme, b->scheme) == 0 && strcmp(a->host, b->host) == 0 && a->port == b->port;
}

bool http_origin_allowed(struct transport *t, struct lws *wsi)
{
    if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) <= 0)
        return true; /* not a browser's cross-origin request: the CLI, curl, a server */
    char value[300], host[300];
    struct origin got, own;
    if (lws_hdr_copy(wsi, value, sizeof value, WSI_TOKEN_ORIGIN) <= 0 || !origin_parse(value, &got))
        goto refuse;
    if (t->cfg->public_origin[0]) {
        struct origin pub;
        if (origin_parse(t->cfg->public_origin, &pub) && origin_same(&got, &pub))
            return true;
    }
    /* The request's own origin: this listener's scheme and the Host the browser sent. */
    bool tls = t->cfg->tls_cert_file[0] != '\0';
    snprintf(own.scheme, sizeof own.scheme, "%s", tls ? "https" : "http");
    int n = lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST);
    if (n > 0 && split_hostport(host, (size_t)n, tls ? 443 : 80, &own) && origin_same(&got, &own))
        return true;
refuse:
    if (lws_hdr_copy(wsi, value, sizeof value, WSI_TOKEN_ORIGIN) <= 0)
        snprintf(value, sizeof value, "(too long)");
    kz_utf8_sanitize(value);
    for (char *c = value; *c; c++)
        if (*c == '"' || *c == '\\' || (unsigned char)*c < ' ')
            *c = '?'; /* one log line, whatever the client sent */
    KZ_WARN("cross_origin_refused", "origin=\"%.120s\"", value);
    return false;
}
