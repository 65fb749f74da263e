/* test_web_serve.c - kizunad serving the web client's files (server/http_static.c) and
 * keeping the API to its own origin (server/http_policy.c), over raw sockets: types and
 * security headers, gzip, ETag and 304, ?v= caching, HEAD, a file bigger than any buffer, path
 * traversal in every spelling (.., %2e%2e, NUL, hidden files, symlinks out of the root), and
 * Origin on POST ops and on the WebSocket upgrade. tests/web/serve.test.mjs checks the same
 * from Chromium. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static struct kzd d;
static char root[64], outside[64];

static void put(const char *dir, const char *name, const void *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void put_text(const char *dir, const char *name, const char *text)
{
    put(dir, name, text, strlen(text));
}

#define BIG_BYTES (5 << 20) /* above the largest file the server compresses (2 MiB) */

/* A web root with one file of each type, a big one, a hidden one, symlinks in and out. */
static void setup(void)
{
    snprintf(root, sizeof root, "/tmp/kizuna-webroot-XXXXXX");
    snprintf(outside, sizeof outside, "/tmp/kizuna-outside-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    cr_assert_not_null(mkdtemp(outside));
    char sub[128];
    snprintf(sub, sizeof sub, "%s/js", root);
    cr_assert_eq(mkdir(sub, 0755), 0);
    put_text(root, "index.html", "<!doctype html><title>テスト</title><p>索引</p>\n");
    /* Repetitive text compresses well: gzip must be smaller. */
    char js[4096] = "";
    for (int i = 0; i < 60; i++)
        strcat(js, "export const kizuna = 'kizuna';\n");
    put_text(root, "app.js", js);
    put_text(sub, "mod.mjs", "export default 1;\n");
    put_text(root, "app.css", "body { color: #123; }\n");
    put_text(root, "i.svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n");
    put(root, "p.png", "\x89PNG\r\n\x1a\n", 8);
    put(root, "favicon.ico", "\0\0\1\0", 4);
    put_text(root, "d.json", "{\"a\":1}\n");
    put_text(root, "app.webmanifest", "{\"name\":\"k\"}\n");
    put(root, "f.woff2", "wOF2", 4);
    put_text(root, "t.txt", "テキスト\n");
    put_text(root, "README.md", "# not served\n");
    put_text(root, ".secret.js", "hidden\n");
    char *big = malloc(BIG_BYTES);
    cr_assert_not_null(big);
    for (size_t i = 0; i < BIG_BYTES; i++)
        big[i] = (char)('a' + (i * 7 + i / 1000) % 26);
    put(root, "big.txt", big, BIG_BYTES);
    free(big);
    put_text(outside, "secret.js", "export const secret = 'outside the root';\n");
    char target[256], link[256];
    snprintf(target, sizeof target, "%s/secret.js", outside);
    snprintf(link, sizeof link, "%s/leak.js", root);
    cr_assert_eq(symlink(target, link), 0);
    snprintf(link, sizeof link, "%s/out", root);
    cr_assert_eq(symlink(outside, link), 0);
    snprintf(link, sizeof link, "%s/alias.js", root);
    cr_assert_eq(symlink("app.js", link), 0); /* inside the root: fine */
    char extra[160];
    snprintf(extra, sizeof extra, "\"web_root\":\"%s\"", root);
    kzd_setup_with(&d, extra);
}

static void teardown(void)
{
    kzd_teardown(&d);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", root, outside);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(web, .init = setup, .fini = teardown, .timeout = 60);

/* A response buffer big enough for big.txt with its headers. */
static char *resp_buf(size_t *cap)
{
    *cap = BIG_BYTES + 65536;
    char *r = malloc(*cap);
    cr_assert_not_null(r);
    return r;
}

static const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    return b ? b + 4 : "";
}

static void expect_header(const char *resp, const char *name, const char *want, const char *path)
{
    char v[512] = "";
    cr_expect(http_header(resp, name, v, sizeof v), "%s: no %s header", path, name);
    cr_expect_str_eq(v, want, "%s: %s", path, name);
}

Test(web, types_and_security_headers)
{
    static const char *const files[][2] = {
        {"/", "text/html; charset=utf-8"},
        {"/app.js", "text/javascript; charset=utf-8"},
        {"/js/mod.mjs", "text/javascript; charset=utf-8"},
        {"/app.css", "text/css; charset=utf-8"},
        {"/i.svg", "image/svg+xml"},
        {"/p.png", "image/png"},
        {"/favicon.ico", "image/x-icon"},
        {"/d.json", "application/json"},
        {"/app.webmanifest", "application/manifest+json"},
        {"/f.woff2", "font/woff2"},
        {"/t.txt", "text/plain; charset=utf-8"},
        {"/alias.js", "text/javascript; charset=utf-8"},
    };
    char resp[16384];
    size_t len;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        const char *path = files[i][0];
        int st = http_raw(d.port, "GET", path, NULL, NULL, 0, 0, resp, sizeof resp, &len);
        cr_assert_eq(st, 200, "%s: %d", path, st);
        expect_header(resp, "content-type", files[i][1], path);
        expect_header(resp, "content-security-policy",
                      "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
                      "style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
                      "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
                      "form-action 'self'",
                      path);
        expect_header(resp, "x-content-type-options", "nosniff", path);
        expect_header(resp, "referrer-policy", "no-referrer", path);
        expect_header(resp, "cache-control", "no-cache", path);
        cr_expect_null(strcasestr(resp, "access-control-"), "%s: a CORS header", path);
    }
    /* The index is the file itself; JSON API replies carry the same policy. */
    http_raw(d.port, "GET", "/", NULL, NULL, 0, 0, resp, sizeof resp, &len);
    cr_expect(strstr(body_of(resp), "<p>索引</p>"));
    cr_assert_eq(http_raw(d.port, "GET", "/healthz", NULL, NULL, 0, 0, resp, sizeof resp, &len),
                 200);
    expect_header(resp, "x-content-type-options", "nosniff", "/healthz");
    cr_expect(strstr(resp, "wasm-unsafe-eval"));
}

Test(web, traversal_and_unservable_paths_are_not_found)
{
    static const char *const paths[] = {
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/js/../../etc/passwd",
        "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/..%2f..%2fetc%2fpasswd",
        "/leak.js",
        "/out/secret.js",
        "/.secret.js",
        "/js/.%2e/.secret.js",
        "/README.md",
        "/js/",
        "/js",
        "/app.js%00.png",
        "/app.js/",
        "/app%5c..%5capp.js",
        "/nope.html",
        "/big.txt.gz",
    };
    char resp[16384];
    size_t len;
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        int st = http_raw(d.port, "GET", paths[i], NULL, NULL, 0, 0, resp, sizeof resp, &len);
        /* lws itself refuses some spellings (400, or a closed connection: -1); never 200. */
        cr_expect(st == 404 || st == 400 || st == 403 || st == -1, "%s: %d", paths[i], st);
        cr_expect_null(strstr(resp, "root:"), "%s leaked /etc/passwd", paths[i]);
        cr_expect_null(strstr(resp, "outside the root"), "%s leaked a file outside", paths[i]);
        cr_expect_null(strstr(resp, "hidden"), "%s served a hidden file", paths[i]);
    }
    /* Only GET and HEAD serve files. */
    int st = http_raw(d.port, "POST", "/app.js", NULL, "x", 1, 1, resp, sizeof resp, &len);
    cr_expect_eq(st, 404);
    /* The server still serves. */
    cr_expect_eq(http_raw(d.port, "GET", "/app.js", NULL, NULL, 0, 0, resp, sizeof resp, &len),
                 200);
}

Test(web, gzip_etag_304_and_immutable_urls)
{
    char plain[16384], gz[16384], resp[16384], h[512], etag[80], gzetag[80];
    size_t len, plain_len, gz_len;
    cr_assert_eq(
        http_raw(d.port, "GET", "/app.js", NULL, NULL, 0, 0, plain, sizeof plain, &plain_len), 200);
    cr_assert(http_header(plain, "etag", etag, sizeof etag));
    cr_assert_eq(strlen(etag), 34, "%s", etag);
    cr_expect(!http_header(plain, "content-encoding", h, sizeof h));
    cr_assert_eq(http_raw(d.port, "GET", "/app.js", "Accept-Encoding: br, gzip;q=0.5\r\n", NULL, 0,
                          0, gz, sizeof gz, &gz_len),
                 200);
    expect_header(gz, "content-encoding", "gzip", "/app.js");
    expect_header(gz, "vary", "Accept-Encoding", "/app.js");
    cr_assert(http_header(gz, "etag", gzetag, sizeof gzetag));
    cr_expect_str_neq(gzetag, etag, "a representation of its own");
    const unsigned char *gb = (const unsigned char *)body_of(gz);
    cr_expect(gb[0] == 0x1f && gb[1] == 0x8b, "a gzip member");
    cr_assert(http_header(gz, "content-length", h, sizeof h));
    long zlen = strtol(h, NULL, 10);
    cr_assert(http_header(plain, "content-length", h, sizeof h));
    cr_expect_lt(zlen, strtol(h, NULL, 10) / 4, "gzip: %ld of %s bytes", zlen, h);
    /* gzip;q=0 and identity-only clients get the file as it is. */
    http_raw(d.port, "GET", "/app.js", "Accept-Encoding: gzip;q=0, identity\r\n", NULL, 0, 0, resp,
             sizeof resp, &len);
    cr_expect(!http_header(resp, "content-encoding", h, sizeof h));
    /* Images are not compressed again. */
    http_raw(d.port, "GET", "/p.png", "Accept-Encoding: gzip\r\n", NULL, 0, 0, resp, sizeof resp,
             &len);
    cr_expect(!http_header(resp, "content-encoding", h, sizeof h));

    /* Revalidation with either tag: 304, no body. */
    const char *tags[] = {etag, gzetag};
    for (int i = 0; i < 2; i++) {
        char hdrs[200];
        snprintf(hdrs, sizeof hdrs, "If-None-Match: W/\"other\", %s\r\n", tags[i]);
        cr_expect_eq(http_raw(d.port, "GET", "/app.js", hdrs, NULL, 0, 0, resp, sizeof resp, &len),
                     304);
        cr_expect_str_eq(body_of(resp), "");
        expect_header(resp, "cache-control", "no-cache", "304");
    }
    cr_expect_eq(http_raw(d.port, "GET", "/app.js", "If-None-Match: \"0123456789abcdef\"\r\n", NULL,
                          0, 0, resp, sizeof resp, &len),
                 200);

    /* ?v=HASH (the ETag's hex) may be kept a year; any other ?v= may not. */
    char path[120];
    snprintf(path, sizeof path, "/app.js?v=%.32s", etag + 1);
    http_raw(d.port, "GET", path, NULL, NULL, 0, 0, resp, sizeof resp, &len);
    expect_header(resp, "cache-control", "public, max-age=31536000, immutable", path);
    http_raw(d.port, "GET", "/app.js?v=0123456789abcdef0123456789abcdef", NULL, NULL, 0, 0, resp,
             sizeof resp, &len);
    expect_header(resp, "cache-control", "no-cache", "stale ?v=");

    /* A changed file has a new tag, and the old one no longer matches. */
    put_text(root, "app.js", "export const changed = true;\n");
    char hdrs[200], etag2[80];
    snprintf(hdrs, sizeof hdrs, "If-None-Match: %s\r\n", etag);
    cr_expect_eq(http_raw(d.port, "GET", "/app.js", hdrs, NULL, 0, 0, resp, sizeof resp, &len),
                 200);
    cr_expect(strstr(body_of(resp), "changed"));
    cr_assert(http_header(resp, "etag", etag2, sizeof etag2));
    cr_expect_str_neq(etag2, etag);
}

Test(web, head_and_a_big_file_streamed)
{
    size_t cap, len;
    char *resp = resp_buf(&cap), h[64];
    cr_assert_eq(http_raw(d.port, "HEAD", "/big.txt", NULL, NULL, 0, 0, resp, cap, &len), 200);
    expect_header(resp, "content-length", "5242880", "HEAD /big.txt");
    cr_expect_str_eq(body_of(resp), "", "HEAD has no body");
    cr_assert_eq(http_raw(d.port, "HEAD", "/", NULL, NULL, 0, 0, resp, cap, &len), 200);
    expect_header(resp, "content-type", "text/html; charset=utf-8", "HEAD /");
    /* Past the size the server compresses: sent as it is, all of it, even to gzip clients. */
    cr_assert_eq(http_raw(d.port, "GET", "/big.txt", "Accept-Encoding: gzip\r\n", NULL, 0, 0, resp,
                          cap, &len),
                 200);
    cr_expect(!http_header(resp, "content-encoding", h, sizeof h));
    const char *body = body_of(resp);
    cr_assert_eq(len - (size_t)(body - resp), (size_t)BIG_BYTES);
    for (size_t i = 0; i < BIG_BYTES; i += 4099)
        cr_assert_eq(body[i], (char)('a' + (i * 7 + i / 1000) % 26), "byte %zu", i);
    free(resp);
}

/* Origin on the API: absent (the CLI) or this server's own is served; any other is refused
 * with 403 before the op runs. http_raw sends "Host: 127.0.0.1", so the server's own origin
 * is http://127.0.0.1 (port 80 by default). */
Test(web, api_requests_from_another_origin_are_refused)
{
    char resp[16384];
    size_t len;
    const char *login =
        "{\"login\":\"admin\",\"password\":\"" TEST_ADMIN_PASSWORD "\",\"device\":\"t\"}";
    int st = http_raw(d.port, "POST", "/api/v1/login", NULL, login, strlen(login), strlen(login),
                      resp, sizeof resp, &len);
    cr_expect_eq(st, 200, "no Origin (the CLI): %s", resp);
    st = http_raw(d.port, "POST", "/api/v1/login", "Origin: http://127.0.0.1\r\n", login,
                  strlen(login), strlen(login), resp, sizeof resp, &len);
    cr_expect_eq(st, 200, "its own origin: %s", resp);
    st = http_raw(d.port, "POST", "/api/v1/login", "Origin: HTTP://127.0.0.1:80\r\n", login,
                  strlen(login), strlen(login), resp, sizeof resp, &len);
    cr_expect_eq(st, 200, "its own origin, spelt otherwise: %s", resp);
    static const char *const others[] = {
        "http://evil.example",
        "null",
        "https://127.0.0.1",
        "http://127.0.0.1:8080",
        "http://127.0.0.1.evil.example",
        "http://127.0.0.1/path",
        "file://",
        "http://",
        "http://user@127.0.0.1",
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        char hdr[200];
        snprintf(hdr, sizeof hdr, "Origin: %s\r\n", others[i]);
        st = http_raw(d.port, "POST", "/api/v1/login", hdr, login, strlen(login), strlen(login),
                      resp, sizeof resp, &len);
        cr_expect_eq(st, 403, "Origin %s: %d", others[i], st);
        cr_expect(strstr(resp, "\"forbidden\""), "%s", resp);
        cr_expect_null(strcasestr(resp, "access-control-"));
        /* Uploads and blobs too. */
        st = http_raw(d.port, "GET", "/api/v1/blobs/x", hdr, NULL, 0, 0, resp, sizeof resp, &len);
        cr_expect_eq(st, 403, "Origin %s on a blob: %d", others[i], st);
    }
    /* Static files are not the API: a page may embed them from anywhere (no CORS lets it read). */
    cr_expect_eq(http_raw(d.port, "GET", "/app.js", "Origin: http://evil.example\r\n", NULL, 0, 0,
                          resp, sizeof resp, &len),
                 200);
}

/* The WebSocket handshake with an Origin: "101" or not. */
static bool ws_upgrade_with_origin(const char *origin)
{
    int fd = tcp_open(d.port);
    cr_assert_geq(fd, 0);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s%s%s\r\n",
                     d.port, origin ? "Origin: " : "", origin ? origin : "", origin ? "\r\n" : "");
    cr_assert_eq(write(fd, req, (size_t)n), n);
    char resp[1024] = "";
    size_t len = 0;
    long long deadline = mono_ms() + 5000;
    while (len < sizeof resp - 1 && !strstr(resp, "\r\n\r\n") && mono_ms() < deadline) {
        ssize_t r = read(fd, resp + len, sizeof resp - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        resp[len] = '\0';
    }
    close(fd);
    return strncmp(resp, "HTTP/1.1 101", 12) == 0;
}

Test(web, websocket_from_another_origin_is_refused)
{
    char own[64];
    snprintf(own, sizeof own, "http://127.0.0.1:%d", d.port);
    cr_expect(ws_upgrade_with_origin(NULL), "no Origin (the CLI)");
    cr_expect(ws_upgrade_with_origin(own), "its own origin");
    cr_expect(!ws_upgrade_with_origin("http://evil.example"));
    cr_expect(!ws_upgrade_with_origin("null"));
    cr_expect(!ws_upgrade_with_origin("http://127.0.0.1:1"));
}

/* public_origin: the origin browsers use behind a TLS proxy is the server's own too. */
Test(web, public_origin_is_same_origin)
{
    kzd_teardown(&d);
    char extra[200];
    snprintf(extra, sizeof extra,
             "\"web_root\":\"%s\",\"public_origin\":\"https://kizuna.example.jp\"", root);
    kzd_setup_with(&d, extra);
    char resp[16384];
    size_t len;
    const char *body = "{}";
    int st = http_raw(d.port, "POST", "/api/v1/whoami", "Origin: https://kizuna.example.jp\r\n",
                      body, 2, 2, resp, sizeof resp, &len);
    cr_expect_eq(st, 401, "allowed through to the op (which wants a token): %d", st);
    st = http_raw(d.port, "POST", "/api/v1/whoami", "Origin: http://kizuna.example.jp\r\n", body, 2,
                  2, resp, sizeof resp, &len);
    cr_expect_eq(st, 403, "another scheme: %d", st);
}

/* An explicit web_root that is no directory stops serve with a message; the default that is
 * missing does not (the API serves without a web client). */
Test(web, web_root_must_exist_when_set)
{
    kzd_stop(&d);
    const char *argv[] = {
        KIZUNAD_PATH, "serve",    "--data",      d.dir,   "--config",
        d.config,     "--listen", "127.0.0.1:0", "--set", "web_root=/nonexistent/kizuna-web",
        NULL};
    char out[1024];
    int rc = run_capture(argv, NULL, NULL, out, sizeof out);
    cr_expect_neq(rc, 0, "serve started without its web_root: %s", out);
}
