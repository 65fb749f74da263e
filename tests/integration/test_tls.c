/* test_tls.c - kizunad serving HTTPS/WSS from a certificate made at test time, and the CLI
 * verifying it: against a CA file, by a pinned key, and refusing everything else. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static struct kzd d;
static char dir[128], cert[200], key[200], pin[128];

static void make_certificate(void)
{
    snprintf(dir, sizeof dir, "/tmp/kizuna-tls-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    char cmd[1200], out[512];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout %s -out %s -days 2 -subj /CN=localhost "
             "-addext subjectAltName=IP:127.0.0.1,DNS:localhost 2>/dev/null",
             key, cert);
    cr_assert_eq(system(cmd), 0, "openssl makes a certificate");
    snprintf(cmd, sizeof cmd,
             "openssl x509 -in %s -pubkey -noout | openssl pkey -pubin -outform der | "
             "openssl dgst -sha256 -binary | base64",
             cert);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    cr_assert_eq(run_capture(argv, NULL, NULL, out, sizeof out), 0);
    out[strcspn(out, "\n")] = '\0';
    snprintf(pin, sizeof pin, "sha256//%.100s", out);
}

static void setup(void)
{
    make_certificate();
    char extra[600];
    snprintf(extra, sizeof extra, "\"tls_cert_file\":\"%s\",\"tls_key_file\":\"%s\"", cert, key);
    kzd_setup_with(&d, extra);
}

static void teardown(void)
{
    kzd_teardown(&d);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 60);

/* kizuna login admin over https with the given extra environment; returns the exit code. */
static int cli_login(const char *env1, const char *env2, char *out, size_t n)
{
    char cfg[300], srv[100];
    snprintf(cfg, sizeof cfg, "KIZUNA_CONFIG_DIR=%s/cli", dir);
    snprintf(srv, sizeof srv, "KIZUNA_SERVER=https://127.0.0.1:%d", d.port);
    const char *env[] = {cfg, srv, "KIZUNA_PASSWORD=" TEST_ADMIN_PASSWORD, env1, env2, NULL};
    const char *argv[] = {KIZUNA_PATH, "login", "admin", NULL};
    return run_capture(argv, env, NULL, out, n);
}

Test(tls, the_server_speaks_tls_and_the_cli_verifies_it)
{
    char out[2048], cmd[600];
    /* curl with the CA: healthz over HTTPS. */
    snprintf(cmd, sizeof cmd, "curl -sf --cacert %s https://127.0.0.1:%d/healthz", cert, d.port);
    const char *sh[] = {"/bin/sh", "-c", cmd, NULL};
    cr_assert_eq(run_capture(sh, NULL, NULL, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "\"serving\""), "%s", out);
    /* Plain HTTP to the TLS port gets nothing useful. */
    char body[256];
    cr_assert_neq(http_request(d.port, "GET", "/healthz", NULL, NULL, body, sizeof body), 200);

    char ca[300], pin_env[200];
    snprintf(ca, sizeof ca, "KIZUNA_CA_FILE=%s", cert);
    cr_assert_eq(cli_login(NULL, NULL, out, sizeof out), 3,
                 "an unknown certificate is refused by default: %s", out);
    cr_assert_eq(cli_login(ca, NULL, out, sizeof out), 0, "with the CA file: %s", out);
    cr_assert(strstr(out, "logged in to https://"), "%s", out);
    snprintf(pin_env, sizeof pin_env, "KIZUNA_TLS_PIN=%s", pin);
    cr_assert_eq(cli_login(pin_env, NULL, out, sizeof out), 0, "with the pinned key: %s", out);
    cr_assert_eq(cli_login("KIZUNA_TLS_PIN=sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                           ca, out, sizeof out),
                 3, "a wrong pin is refused even with a valid CA: %s", out);
}

Test(tls, a_missing_certificate_stops_the_server_with_a_message)
{
    char out[1024], cfg[300];
    snprintf(cfg, sizeof cfg, "tls_cert_file=%s/nope.pem", dir);
    char keyset[300];
    snprintf(keyset, sizeof keyset, "tls_key_file=%s", key);
    const char *argv[] = {KIZUNAD_PATH, "serve", "--data", d.dir,  "--listen", "127.0.0.1:0",
                          "--set",      cfg,     "--set",  keyset, NULL};
    /* The real server holds the directory: stop it so the second one gets as far as TLS. */
    cr_assert_eq(kzd_stop(&d), 0);
    cr_assert_eq(run_capture(argv, NULL, NULL, out, sizeof out), 1);
    kzd_start(&d);
}

/* A kizuna command over https with the pin (or a wrong one); returns the exit code. */
static int cli_pinned(bool right_pin, const char *const args[], char *out, size_t n)
{
    char cfg[300], srv[100], pin_env[200];
    snprintf(cfg, sizeof cfg, "KIZUNA_CONFIG_DIR=%s/cli", dir);
    snprintf(srv, sizeof srv, "KIZUNA_SERVER=https://127.0.0.1:%d", d.port);
    snprintf(pin_env, sizeof pin_env, "KIZUNA_TLS_PIN=%s",
             right_pin ? pin : "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    const char *env[] = {cfg, srv, pin_env, "KIZUNA_RETRY_MAX_S=2", NULL};
    const char *argv[16] = {KIZUNA_PATH};
    for (int i = 0; args[i] && i < 14; i++)
        argv[i + 1] = args[i];
    return run_capture(argv, env, NULL, out, n);
}

Test(tls, photos_upload_and_download_over_tls_with_the_same_trust)
{
    char out[4096], jpg[300];
    snprintf(jpg, sizeof jpg, "%s/photo.jpg", dir);
    const char *mk[] = {KZ_MKJPEG_PATH, jpg, "--width", "640", "--height", "480", NULL};
    cr_assert_eq(run_capture(mk, NULL, NULL, out, sizeof out), 0, "%s", out);
    cr_assert_eq(cli_login(NULL, NULL, out, sizeof out), 3);
    char pin_env[200];
    snprintf(pin_env, sizeof pin_env, "KIZUNA_TLS_PIN=%s", pin);
    cr_assert_eq(cli_login(pin_env, NULL, out, sizeof out), 0, "%s", out);
    const char *create[] = {"--json", "room", "create", "現場", NULL};
    cr_assert_eq(cli_pinned(true, create, out, sizeof out), 0, "%s", out);
    cJSON *r = cJSON_Parse(out);
    char room[64];
    reply_room(r, room, sizeof room);
    cJSON_Delete(r);
    const char *send[] = {"photo", "send", room, jpg, "--caption", "over tls", NULL};
    cr_assert_eq(cli_pinned(false, send, out, sizeof out), 3,
                 "a wrong pin stops the upload before anything is sent: %s", out);
    cr_assert_eq(cli_pinned(true, send, out, sizeof out), 0, "%s", out);
    char got[300];
    snprintf(got, sizeof got, "%s/got.jpg", dir);
    const char *get[] = {"photo", "get", room, "0", "-o", got, NULL};
    const char *list[] = {"--json", "photo", "list", room, NULL};
    cr_assert_eq(cli_pinned(true, list, out, sizeof out), 0, "%s", out);
    char *pos = strstr(out, "\"pos\":");
    cr_assert_not_null(pos, "%s", out);
    char posbuf[32];
    snprintf(posbuf, sizeof posbuf, "%d", atoi(pos + 6));
    get[3] = posbuf;
    cr_assert_eq(cli_pinned(true, get, out, sizeof out), 0, "the download too: %s", out);
}
