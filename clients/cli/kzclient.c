/* kzclient.c - see kzclient.h. Every wait runs lws_service() under a deadline timer, because
 * lws_service() sleeps until something happens and ignores its own timeout argument. */
#include "kzclient.h"
#include "tls_pin.h"

#include <libwebsockets.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RX_MAX (64u << 20)

struct msg {
    char *text; /* LWS_PRE bytes of headroom, then the JSON */
    size_t len;
    struct msg *next;
};

struct kzc {
    struct lws_context *ctx;
    const char *pin; /* KIZUNA_TLS_PIN: sha256//BASE64 of the server's public key (SPKI) */
    struct lws *wsi;
    bool established, closed, timed_out;
    int close_code;
    char close_reason[128];
    char err[256];
    unsigned char *rx;
    size_t rx_len, rx_cap;
    struct msg *out_head, *out_tail;
    cJSON *replies; /* array */
    cJSON *events;  /* array */
    long long next_id;
    lws_sorted_usec_list_t timer;
};

static void rx_message(struct kzc *c)
{
    cJSON *m = cJSON_ParseWithLength((const char *)c->rx, c->rx_len);
    if (!cJSON_IsObject(m)) {
        cJSON_Delete(m);
        return;
    }
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(m, "event") ? c->events : c->replies, m);
}

static int rx_append(struct kzc *c, const void *in, size_t len)
{
    if (c->rx_len + len > RX_MAX)
        return -1;
    if (c->rx_len + len > c->rx_cap) {
        size_t cap = c->rx_cap ? c->rx_cap * 2 : 8192;
        while (cap < c->rx_len + len)
            cap *= 2;
        unsigned char *rx = realloc(c->rx, cap);
        if (!rx)
            return -1;
        c->rx = rx;
        c->rx_cap = cap;
    }
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    return 0;
}

/* A pinned server is trusted by its public key alone (a private deployment with its own
 * certificate): the SHA-256 of the certificate's SubjectPublicKeyInfo, in curl's
 * "sha256//BASE64" form, which `openssl x509 -pubkey | openssl pkey -pubin -outform der |
 * openssl dgst -sha256 -binary | base64` prints. */
static bool pin_matches(struct lws *wsi, const char *pin)
{
    char got[64];
    return strncmp(pin, "sha256//", 8) == 0 && kz_tls_peer_pin(wsi, got, sizeof got) &&
           strcmp(pin + 8, got) == 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    (void)user;
    struct kzc *c = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (c->err[0]) /* the pin check said why already */
            ;
        else if (in && strstr((const char *)in, "SSL"))
            snprintf(c->err, sizeof c->err,
                     "cannot verify the server's TLS certificate (%s): if it is the "
                     "municipality's own, set KIZUNA_CA_FILE to its CA or KIZUNA_TLS_PIN to its "
                     "key's pin (operations.md)",
                     (const char *)in);
        else
            snprintf(c->err, sizeof c->err, "cannot connect: %s",
                     in ? (const char *)in : "connection failed");
        c->closed = true;
        c->wsi = NULL;
        break;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (c->pin && !pin_matches(wsi, c->pin)) {
            snprintf(c->err, sizeof c->err,
                     "the server's key does not match KIZUNA_TLS_PIN: not sending anything");
            c->closed = true;
            return -1;
        }
        c->established = true;
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (rx_append(c, in, len) != 0)
            return -1;
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
            rx_message(c);
            c->rx_len = 0;
        }
        break;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (len >= 2) {
            const unsigned char *p = in;
            c->close_code = (p[0] << 8) | p[1];
            snprintf(c->close_reason, sizeof c->close_reason, "%.*s", (int)(len - 2),
                     (const char *)p + 2);
        }
        break;
    case LWS_CALLBACK_CLIENT_WRITEABLE: {
        struct msg *m = c->out_head;
        if (!m)
            break;
        if (lws_write(wsi, (unsigned char *)m->text + LWS_PRE, m->len, LWS_WRITE_TEXT) <
            (int)m->len)
            return -1;
        c->out_head = m->next;
        if (!c->out_head)
            c->out_tail = NULL;
        free(m->text);
        free(m);
        if (c->out_head)
            lws_callback_on_writable(wsi);
        break;
    }
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (!c->err[0])
            snprintf(c->err, sizeof c->err, "the server closed the connection%s%s",
                     c->close_reason[0] ? ": " : "", c->close_reason);
        c->closed = true;
        c->wsi = NULL;
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"kizuna.v1", callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* lws runs a ripe timer's callback at the start of lws_service(), before its poll(), which then
 * sleeps until lws's next timer (up to 30 s) or a socket event. So the callback also wakes that
 * poll(): lws_cancel_service() writes to lws's event pipe. */
static void timer_cb(lws_sorted_usec_list_t *sul)
{
    struct kzc *c = lws_container_of(sul, struct kzc, timer);
    c->timed_out = true;
    lws_cancel_service(c->ctx);
}

/* Services the connection until done(c, arg) holds, it closes, or timeout_ms passes. The timer
 * wakes poll() at the deadline, and the clock ends the wait there. poll() may wake up to 1 ms
 * early (lws rounds its timeout down to whole ms); the next lws_service() then runs the ripe
 * timer before its own poll(). When timer_cb only set the flag, a process preempted between
 * the clock check and that lws_service() slept on for up to 30 s: under CI's load a `kizuna
 * tail` held the 既読 line it had to print, and its read marks (kzc_next_event(c, 20) on an idle
 * connection hung within 50 waits with both CPUs busy; test_kzclient.c makes it happen at once). */
static bool wait_for(struct kzc *c, bool (*done)(struct kzc *, void *), void *arg, int timeout_ms)
{
    c->timed_out = false;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    lws_usec_t deadline = (lws_usec_t)now.tv_sec * LWS_US_PER_SEC + now.tv_nsec / 1000 +
                          (lws_usec_t)timeout_ms * LWS_US_PER_MS;
    lws_sul_schedule(c->ctx, 0, &c->timer, timer_cb, (lws_usec_t)timeout_ms * LWS_US_PER_MS);
    while (!done(c, arg) && !c->closed && !c->timed_out) {
        if (lws_service(c->ctx, 0) < 0)
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((lws_usec_t)now.tv_sec * LWS_US_PER_SEC + now.tv_nsec / 1000 >= deadline)
            break;
    }
    lws_sul_cancel(&c->timer);
    return done(c, arg);
}

static bool is_established(struct kzc *c, void *arg)
{
    (void)arg;
    return c->established;
}

struct kzc *kzc_connect(const char *url, int timeout_ms, char *err, size_t errlen)
{
    const char *rest = url;
    bool tls = false;
    if (strncmp(url, "http://", 7) == 0 || strncmp(url, "ws://", 5) == 0) {
        rest = strstr(url, "//") + 2;
    } else if (strncmp(url, "https://", 8) == 0 || strncmp(url, "wss://", 6) == 0) {
        rest = strstr(url, "//") + 2;
        tls = true;
    } else {
        snprintf(err, errlen, "server URL must start with http:// or https://");
        return NULL;
    }
    char host[256];
    snprintf(host, sizeof host, "%.*s", (int)strcspn(rest, "/"), rest);
    int port = tls ? 443 : 80;
    char *colon = strrchr(host, ':');
    if (colon && !strchr(colon, ']')) {
        port = atoi(colon + 1);
        *colon = '\0';
    }
    char *addr = host;
    if (addr[0] == '[') {
        addr++;
        addr[strcspn(addr, "]")] = '\0';
    }
    if (!*addr || port <= 0 || port > 65535) {
        snprintf(err, errlen, "cannot parse server URL '%s'", url);
        return NULL;
    }

    struct kzc *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->replies = cJSON_CreateArray();
    c->events = cJSON_CreateArray();
    lws_set_log_level(getenv("KIZUNA_DEBUG") ? (LLL_ERR | LLL_WARN | LLL_NOTICE) : 0, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.user = c;
    info.options = tls ? LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT : 0;
    /* Certificates are verified against the system's CAs, or a municipality's own CA file. */
    const char *ca = getenv("KIZUNA_CA_FILE");
    if (tls && ca && *ca)
        info.client_ssl_ca_filepath = ca;
    const char *pin = getenv("KIZUNA_TLS_PIN");
    c->pin = tls && pin && *pin ? pin : NULL;
    c->ctx = lws_create_context(&info);
    if (!c->ctx) {
        snprintf(err, errlen, "cannot create a client context");
        kzc_close(c);
        return NULL;
    }
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = c->ctx;
    ci.address = addr;
    ci.port = port;
    ci.path = "/api/v1/ws";
    ci.host = addr;
    /* No Origin: it is a browser's word for the page that opened the connection, and kizunad
     * refuses a WebSocket whose Origin is not its own (docs/web.md, "Origins"); lws would
     * send "http://ADDR" even over TLS. */
    ci.protocol = "kizuna.v1";
    ci.ssl_connection = tls ? LCCSCF_USE_SSL : 0;
    if (c->pin)
        ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK;
    ci.pwsi = &c->wsi;
    if (!lws_client_connect_via_info(&ci) && !c->err[0])
        snprintf(c->err, sizeof c->err, "cannot connect to %s", url);
    if (c->err[0] || !wait_for(c, is_established, NULL, timeout_ms)) {
        snprintf(err, errlen, "%s", c->err[0] ? c->err : "timed out connecting");
        kzc_close(c);
        return NULL;
    }
    return c;
}

struct want {
    double id;
    cJSON *found;
};

static bool has_reply(struct kzc *c, void *arg)
{
    struct want *w = arg;
    if (w->found)
        return true;
    cJSON *r;
    cJSON_ArrayForEach(r, c->replies)
    {
        cJSON *id = cJSON_GetObjectItemCaseSensitive(r, "id");
        /* A reply with id null answers a frame the server could not read at all. */
        if ((cJSON_IsNumber(id) && id->valuedouble == w->id) || cJSON_IsNull(id)) {
            w->found = cJSON_DetachItemViaPointer(c->replies, r);
            return true;
        }
    }
    return false;
}

cJSON *kzc_call(struct kzc *c, const char *op, cJSON *args, int timeout_ms)
{
    cJSON *req = args ? args : cJSON_CreateObject();
    if (c->closed) {
        cJSON_Delete(req);
        return NULL;
    }
    long long id = ++c->next_id;
    cJSON_AddNumberToObject(req, "id", (double)id);
    cJSON_AddStringToObject(req, "op", op);
    char *text = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    struct msg *m = calloc(1, sizeof *m);
    size_t len = text ? strlen(text) : 0;
    char *buf = text ? malloc(LWS_PRE + len + 1) : NULL;
    if (!m || !buf) {
        free(m);
        free(buf);
        cJSON_free(text);
        snprintf(c->err, sizeof c->err, "out of memory");
        return NULL;
    }
    memcpy(buf + LWS_PRE, text, len + 1);
    cJSON_free(text);
    m->text = buf;
    m->len = len;
    if (c->out_tail)
        c->out_tail->next = m;
    else
        c->out_head = m;
    c->out_tail = m;
    lws_callback_on_writable(c->wsi);
    struct want w = {.id = (double)id};
    if (!wait_for(c, has_reply, &w, timeout_ms) && !c->err[0])
        snprintf(c->err, sizeof c->err, "no reply from the server within %d ms", timeout_ms);
    return w.found;
}

static bool has_event(struct kzc *c, void *arg)
{
    (void)arg;
    return cJSON_GetArraySize(c->events) > 0;
}

cJSON *kzc_next_event(struct kzc *c, int timeout_ms)
{
    if (!wait_for(c, has_event, NULL, timeout_ms))
        return NULL;
    return cJSON_DetachItemFromArray(c->events, 0);
}

bool kzc_closed(const struct kzc *c, int *code, char *reason, size_t reasonlen)
{
    if (code)
        *code = c->close_code;
    if (reason && reasonlen)
        snprintf(reason, reasonlen, "%s", c->close_reason);
    return c->closed;
}

const char *kzc_error(const struct kzc *c)
{
    return c->err;
}

void kzc_close(struct kzc *c)
{
    if (!c)
        return;
    if (c->ctx) {
        lws_sul_cancel(&c->timer);
        lws_context_destroy(c->ctx);
    }
    for (struct msg *m = c->out_head, *next; m; m = next) {
        next = m->next;
        free(m->text);
        free(m);
    }
    cJSON_Delete(c->replies);
    cJSON_Delete(c->events);
    free(c->rx);
    free(c);
}
