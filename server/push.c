/* push.c - Web Push to browsers and installed phone web apps (docs/notifications.md): the
 * push.* ops, what queues a send (urgent notices and roll-calls, from ops_notice.c, and
 * reminders, from ops_notice_report.c), and the sender, which takes due rows of the durable
 * push outbox (store_push.c), encrypts and signs each (webpush.c) and posts it to its push
 * service from its own worker threads, so the event loop never waits on a push service: a post
 * may take push_timeout_ms, the loop none of it.
 * A send leaves only once the commit that queued it is on disk; a service's answer decides
 * what happens to its row (accepted: gone; 404/410: the subscription is removed; 429, 5xx or
 * no answer: retried with doubling delays; other refusals: dropped and logged). */
#include "notify.h"
#include "metrics.h"
#include "store_push.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* A roll-call's push offers this many of its choices as buttons (browsers show two or three). */
#define PUSH_ANSWER_CHOICES 3

/* One post, prepared on the loop and run on a worker. */
struct push_job {
    struct kz_job job;
    struct srv *srv;
    struct store_push_send send;
    struct wp_vapid *vapid; /* the sender's, outlives every job */
    char subject[WP_SUB_MAX + 1];
    int64_t connect_ms, timeout_ms;
    bool allow_private;
    long status;     /* the service's HTTP status (0: none) */
    char error[160]; /* why there was no answer */
};

/* ---- the VAPID key ---- */

int srv_push_keys_ensure(struct store *st, bool *made)
{
    uint8_t priv[WP_PRIV_LEN], pub[WP_PUB_LEN];
    *made = false;
    enum store_rc r = store_push_vapid_get(st, priv, pub);
    if (r == STORE_NOT_FOUND) {
        if (wp_keypair_new(priv, pub) != 0)
            return -1;
        r = store_push_vapid_init(st, priv, pub, kz_now_ms(), made);
    }
    sodium_memzero(priv, sizeof priv);
    return r == STORE_OK ? 0 : -1;
}

struct srv_push *srv_notify_state(struct srv *s)
{
    if (!s->push) {
        s->push = calloc(1, sizeof *s->push);
        if (!s->push)
            return NULL;
    }
    if (!s->push->have_key &&
        store_push_vapid_get(s->store, s->push->priv, s->push->pub) == STORE_OK)
        s->push->have_key = true;
    return s->push;
}

/* ---- ops ---- */

enum kz_err op_push_vapid_key(struct srv_call *c)
{
    struct srv_push *p = srv_notify_state(c->srv);
    if (!p || !p->have_key)
        return srv_fail(c, KZ_UNAVAILABLE, "this server has no push key yet");
    char key[100];
    wp_b64u_encode(p->pub, WP_PUB_LEN, key, sizeof key);
    c->result = cJSON_CreateObject();
    cJSON_AddStringToObject(c->result, "key", key);
    return KZ_OK;
}

enum kz_err op_push_subscribe(struct srv_call *c)
{
    const struct kz_config *cfg = srv_config(c->srv);
    const char *endpoint = srv_arg_str(c, "endpoint");
    char origin[WP_AUD_MAX + 1];
    const char *why = wp_endpoint_check(endpoint, (size_t)cfg->push_endpoint_max_bytes, origin);
    if (why)
        return srv_fail(c, KZ_BAD_REQUEST, "%s", why);
    uint8_t p256dh[WP_PUB_LEN], auth[WP_AUTH_LEN];
    if (wp_b64u_decode(srv_arg_str(c, "p256dh"), p256dh, sizeof p256dh) != 0 ||
        !wp_pub_valid(p256dh))
        return srv_fail(c, KZ_BAD_REQUEST,
                        "p256dh is not a P-256 public key (65 bytes, base64url)");
    if (wp_b64u_decode(srv_arg_str(c, "auth"), auth, sizeof auth) != 0)
        return srv_fail(c, KZ_BAD_REQUEST, "auth is not a 16-byte secret (base64url)");
    int64_t id = 0;
    enum store_rc r =
        store_push_sub_put(srv_store(c->srv), c->auth.user.id, c->auth.session_id, endpoint, p256dh,
                           auth, cfg->push_subs_per_user_max, kz_now_ms(), &id);
    if (r == STORE_CONFLICT)
        return srv_fail(c, KZ_CONFLICT,
                        "you have %lld push subscriptions already: unsubscribe one first",
                        cfg->push_subs_per_user_max);
    if (r != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot store the subscription");
    KZ_INFO("push_subscribed", "login=%s origin=%s", c->auth.user.login, origin);
    c->result = cJSON_CreateObject();
    cJSON_AddNumberToObject(c->result, "subscription", (double)id);
    return KZ_OK;
}

int srv_hhmm(const char *s)
{
    if (strlen(s) != 5 || s[2] != ':' || !strchr("012", s[0]))
        return -1;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return -1;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    return h < 24 && m < 60 ? h * 60 + m : -1;
}

enum kz_err op_push_quiet(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    const char *from = srv_arg_str(c, "from"), *to = srv_arg_str(c, "to");
    bool off = srv_arg_bool(c, "off", false);
    if ((from || to) && off)
        return srv_fail(c, KZ_BAD_REQUEST, "give from and to, or off, not both");
    if (!from != !to)
        return srv_fail(c, KZ_BAD_REQUEST, "quiet hours need both from and to");
    int start = -1, end = -1;
    if (from && ((start = srv_hhmm(from)) < 0 || (end = srv_hhmm(to)) < 0))
        return srv_fail(c, KZ_BAD_REQUEST, "from and to are times of the day, HH:MM (e.g. 22:00)");
    if (from && start == end)
        return srv_fail(c, KZ_BAD_REQUEST, "from and to are the same time");
    if ((from || off) && store_push_quiet_set(st, c->auth.user.id, start, end) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot store the quiet hours");
    enum store_rc r = store_push_quiet_get(st, c->auth.user.id, &start, &end);
    if (r != STORE_OK && r != STORE_NOT_FOUND)
        return srv_fail(c, KZ_INTERNAL, "cannot read the quiet hours");
    c->result = cJSON_CreateObject();
    if (r == STORE_NOT_FOUND) {
        cJSON_AddNullToObject(c->result, "quiet");
    } else {
        char a[24], b[24];
        snprintf(a, sizeof a, "%02d:%02d", start / 60, start % 60);
        snprintf(b, sizeof b, "%02d:%02d", end / 60, end % 60);
        cJSON *q = cJSON_AddObjectToObject(c->result, "quiet");
        cJSON_AddStringToObject(q, "from", a);
        cJSON_AddStringToObject(q, "to", b);
    }
    return KZ_OK;
}

enum kz_err op_push_unsubscribe(struct srv_call *c)
{
    enum store_rc r =
        store_push_sub_remove(srv_store(c->srv), c->auth.user.id, srv_arg_str(c, "endpoint"));
    if (r == STORE_NOT_FOUND)
        return srv_fail(c, KZ_NOT_FOUND, "you have no subscription with that endpoint");
    if (r != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot remove the subscription");
    c->result = cJSON_CreateObject();
    return KZ_OK;
}

/* ---- queuing ---- */

/* s cut to at most max bytes, at a character's start (a payload must stay far below the 4 KB a
 * push service accepts, and push_outbox's payload column). */
static void add_cut(cJSON *o, const char *key, const char *s, size_t max)
{
    char cut[200];
    kz_utf8_copy_cut(cut, sizeof cut, s, max);
    cJSON_AddStringToObject(o, key, cut);
}

/* The push's JSON: the kind, the notice and its title, nothing of its body (push services
 * and the phone's lock screen see only this, docs/notifications.md). A roll-call's also
 * carries the person's one-tap answer token and the first choices, so the notification itself
 * can answer (sw.js): encrypted for that person's browsers, the push service cannot read it. */
static char *notice_payload(const char *kind, int64_t notice, const char *title, const char *token,
                            const cJSON *choices)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "kind", kind);
    cJSON_AddNumberToObject(j, "notice", (double)notice);
    add_cut(j, "title", title, 159);
    if (token) {
        cJSON_AddStringToObject(j, "answer", token);
        cJSON *a = cJSON_AddArrayToObject(j, "choices");
        const cJSON *ch;
        int k = 0;
        cJSON_ArrayForEach(ch, choices)
        {
            if (k++ == PUSH_ANSWER_CHOICES)
                break;
            cJSON *o = cJSON_CreateObject();
            add_cut(o, "text", ch->valuestring, 60);
            cJSON_AddItemToArray(a, o);
        }
    }
    char *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return out;
}

/* One notice's pushes that carry an answer link each: a roll-call's, or its reminder's. */
struct answer_ctx {
    struct srv_call *c;
    const char *kind;
    int64_t notice, expires, now, next_at, queued;
    const char *title, *urgency;
    int64_t ttl;
    const cJSON *choices;
    enum kz_err e;
};

/* One recipient: a token of their own, in a payload of their own. */
static void answer_one(void *arg, int64_t user_id)
{
    struct answer_ctx *r = arg;
    struct store *st = srv_store(r->c->srv);
    char token[SRV_ANSWER_TOKEN_CHARS + 1];
    if (r->e)
        return;
    if (srv_answer_link_new(st, r->notice, user_id, r->expires, "push", token) != 0) {
        r->e = srv_fail(r->c, KZ_INTERNAL, "cannot store the answer link");
        return;
    }
    char *payload = notice_payload(r->kind, r->notice, r->title, token, r->choices);
    sodium_memzero(token, sizeof token);
    int64_t n = 0;
    if (!payload || strlen(payload) >= sizeof((struct store_push_send *)0)->payload ||
        store_push_queue_user(st, user_id, r->kind, srv_notify_default(r->kind, false), r->notice,
                              payload, r->urgency, r->ttl, r->next_at, r->now, &n) != STORE_OK)
        r->e = srv_fail(r->c, KZ_INTERNAL, "cannot queue the push");
    if (payload)
        sodium_memzero(payload, strlen(payload));
    cJSON_free(payload);
    r->queued += n;
}

/* Queues a notice's push of kind: to all its recipients, or (reminded_at) to those reminded
 * then. A roll-call's (choices) carry each person's own answer link, valid until
 * notice_expires (0: none) or mail_answer_link_ttl_s, whichever is sooner. */
static enum kz_err queue_notice(struct srv_call *c, int64_t notice, const char *title,
                                const char *kind, bool urgent, int64_t reminded_at,
                                const cJSON *choices, int64_t notice_expires)
{
    if (!c->srv->push || !c->srv->push->pool)
        return KZ_OK; /* no sender (push_subject unset): nothing would ever leave */
    const struct kz_config *cfg = srv_config(c->srv);
    struct store *st = srv_store(c->srv);
    int64_t now = kz_now_ms(), n = 0;
    bool dflt = srv_notify_default(kind, false);
    /* Held back push_coalesce_ms: someone who reads it (for a reminder: does what it asks) on
     * another device meanwhile is spared. */
    struct answer_ctx r = {.c = c,
                           .kind = kind,
                           .notice = notice,
                           .expires = srv_answer_link_expiry(cfg, now, notice_expires),
                           .now = now,
                           .next_at = now + cfg->push_coalesce_ms,
                           .title = title,
                           .urgency = urgent ? "high" : "normal",
                           .ttl = urgent ? cfg->push_ttl_urgent_s : cfg->push_ttl_s,
                           .choices = choices};
    if (choices && cJSON_GetArraySize(choices) > 0) {
        if (store_push_notice_users(st, notice, reminded_at, kind, dflt, answer_one, &r) !=
            STORE_OK)
            return srv_fail(c, KZ_INTERNAL, "cannot queue the push");
        if (r.e)
            return r.e;
        n = r.queued;
    } else {
        char *payload = notice_payload(kind, notice, title, NULL, NULL);
        enum store_rc sr =
            !payload || strlen(payload) >= sizeof((struct store_push_send *)0)->payload
                ? STORE_ERROR
            : reminded_at ? store_push_queue_reminder(st, notice, reminded_at, kind, dflt, payload,
                                                      r.urgency, r.ttl, r.next_at, now, &n)
                          : store_push_queue_notice(st, notice, kind, dflt, payload, r.urgency,
                                                    r.ttl, r.next_at, now, &n);
        cJSON_free(payload);
        if (sr != STORE_OK)
            return srv_fail(c, KZ_INTERNAL, "cannot queue the push");
    }
    if (n > 0)
        srv_notify_schedule(c->srv, cfg->push_coalesce_ms);
    return KZ_OK;
}

enum kz_err srv_push_notice(struct srv_call *c, int64_t notice, const char *title, bool urgent,
                            const cJSON *choices)
{
    return queue_notice(c, notice, title, choices ? "rollcall" : "notice", urgent, 0, choices,
                        srv_arg_int(c, "expires_at", 0));
}

enum kz_err srv_push_remind(struct srv_call *c, int64_t notice, const char *title, bool urgent,
                            int64_t reminded_at, const cJSON *choices, int64_t notice_expires)
{
    return queue_notice(c, notice, title, "reminder", urgent, reminded_at, choices, notice_expires);
}

/* ---- sending (worker threads) ---- */

static size_t discard(char *ptr, size_t size, size_t nmemb, void *arg)
{
    (void)ptr;
    (void)arg;
    return size * nmemb; /* the service's body says nothing we act on */
}

static bool addr_private(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        return (a >> 24) == 127 || (a >> 24) == 10 || (a >> 24) == 0 ||
               (a & 0xFFF00000u) == 0xAC100000u || (a & 0xFFFF0000u) == 0xC0A80000u ||
               (a & 0xFFFF0000u) == 0xA9FE0000u || (a & 0xFFC00000u) == 0x64400000u ||
               (a >> 28) >= 14;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            struct sockaddr_in v4 = {.sin_family = AF_INET};
            memcpy(&v4.sin_addr, a->s6_addr + 12, 4);
            return addr_private((const struct sockaddr *)&v4);
        }
        return IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LINKLOCAL(a) ||
               IN6_IS_ADDR_SITELOCAL(a) || (a->s6_addr[0] & 0xFE) == 0xFC ||
               IN6_IS_ADDR_MULTICAST(a);
    }
    return true;
}

/* A subscription's endpoint is a URL a user chose: unless push_allow_private_endpoints, it may
 * not make this server post into its own network (loopback, private, link-local addresses),
 * checked on the address actually connected to, after DNS. */
static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct push_job *j = arg;
    if (purpose != CURLSOCKTYPE_IPCXN || (!j->allow_private && addr_private(&a->addr))) {
        snprintf(j->error, sizeof j->error, "the endpoint's address is not a public one");
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* ---- one HTTP client per sender thread ---- */

/* Each worker of the push, mail and webhook pools keeps one curl handle for its life: libcurl
 * keeps the handle's connections open, so a flood of posts to one push service (or the
 * webhook's receiver, or sessions with the mail relay) sets up TCP and TLS once per worker
 * instead of once per post. The key's destructor
 * cleans the handle up when the worker's thread returns (kz_workers_stop joins them before
 * srv_push_free's curl_global_cleanup). */
static pthread_key_t curl_key;
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static bool curl_key_ok;

static void curl_thread_end(void *h)
{
    curl_easy_cleanup(h);
}

static void curl_key_make(void)
{
    curl_key_ok = pthread_key_create(&curl_key, curl_thread_end) == 0;
}

void *srv_notify_curl(void)
{
    pthread_once(&curl_once, curl_key_make);
    if (!curl_key_ok)
        return NULL;
    CURL *h = pthread_getspecific(curl_key);
    if (h) {
        curl_easy_reset(h); /* options back to defaults; connections and caches stay */
        return h;
    }
    if (!(h = curl_easy_init()))
        return NULL;
    if (pthread_setspecific(curl_key, h) != 0) {
        curl_easy_cleanup(h);
        return NULL;
    }
    return h;
}

static void push_work(struct kz_job *job)
{
    struct push_job *j = (struct push_job *)job;
    const struct store_push_send *sd = &j->send;
    char origin[WP_AUD_MAX + 1], auth[WP_AUTH_HEADER_MAX], hdr[WP_AUTH_HEADER_MAX + 32];
    size_t plen = strlen(sd->payload), blen = 0;
    uint8_t *body = malloc(plen + WP_OVERHEAD);
    CURL *h = NULL;
    struct curl_slist *hs = NULL;
    bool signed_now = false;
    if (!body || wp_endpoint_check(sd->endpoint, STORE_PUSH_ENDPOINT_MAX, origin) ||
        wp_encrypt(sd->p256dh, sd->auth, (const uint8_t *)sd->payload, plen, NULL, NULL, body,
                   &blen) != 0 ||
        wp_vapid_get(j->vapid, origin, j->subject, kz_now_ms() / 1000, auth, sizeof auth,
                     &signed_now) != 0) {
        snprintf(j->error, sizeof j->error, "cannot encrypt or sign the push");
        goto out;
    }
    /* Reused connections: libcurl reuses one only for the same scheme, host name and port
     * (and TLS settings), so a post goes over a connection opened, and checked by open_socket,
     * for its own endpoint's host; any new connection is checked again. */
    if (!(h = srv_notify_curl())) {
        snprintf(j->error, sizeof j->error, "cannot start an HTTP client");
        goto out;
    }
    snprintf(hdr, sizeof hdr, "Authorization: %s", auth);
    hs = curl_slist_append(hs, hdr);
    snprintf(hdr, sizeof hdr, "TTL: %lld", (long long)sd->ttl);
    hs = curl_slist_append(hs, hdr);
    snprintf(hdr, sizeof hdr, "Urgency: %s", sd->urgency);
    hs = curl_slist_append(hs, hdr);
    hs = curl_slist_append(hs, "Content-Encoding: aes128gcm");
    hs = curl_slist_append(hs, "Content-Type: application/octet-stream");
    curl_easy_setopt(h, CURLOPT_URL, sd->endpoint);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)blen);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)j->connect_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)j->timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, j);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "kizunad");
    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &j->status);
    else if (!j->error[0])
        snprintf(j->error, sizeof j->error, "%s", curl_easy_strerror(rc));
out:
    if (h)
        curl_easy_reset(h); /* the handle no longer points into this job, its body or headers */
    curl_slist_free_all(hs);
    free(body);
}

/* ---- the loop's side ---- */

void srv_notify_inflight_drop(int64_t *ids, size_t *n, int64_t id)
{
    for (size_t i = 0; i < *n; i++)
        if (ids[i] == id) {
            ids[i] = ids[--*n];
            return;
        }
}

static void push_done(struct kz_job *job, bool ran)
{
    struct push_job *j = (struct push_job *)job;
    struct srv *s = j->srv;
    struct srv_push *p = s->push;
    const struct kz_config *cfg = s->cfg;
    const struct store_push_send *sd = &j->send;
    srv_notify_inflight_drop(p->inflight, &p->ninflight, sd->id);
    if (!ran) { /* shutting down: the row stays and goes after the restart */
        free(j);
        return;
    }
    struct store *st = s->store;
    int64_t now = kz_now_ms();
    enum store_rc r = srv_writes_blocked(s) ? STORE_ERROR : store_tx_begin(st);
    if (r == STORE_OK) {
        if (j->status >= 200 && j->status < 300) {
            r = store_push_sent(st, sd->id);
            if (r == STORE_OK && sd->notice)
                r = store_reach_add(st, sd->notice, sd->user_id, "push", now);
            p->push_sent++;
            kz_metrics.push_sends[KZ_SEND_SENT]++;
            kz_hist_observe(&kz_metrics.push_seconds, (double)(now - sd->created_at) / 1000.0);
            KZ_INFO("push_sent", "user_id=%lld kind=%s status=%ld tries=%lld",
                    (long long)sd->user_id, sd->kind, j->status, (long long)sd->tries + 1);
        } else if (j->status == 404 || j->status == 410) {
            r = store_push_sub_delete(st, sd->sub);
            p->push_gone++;
            kz_metrics.push_sends[KZ_SEND_GONE]++;
            KZ_INFO("push_gone", "user_id=%lld status=%ld: subscription removed",
                    (long long)sd->user_id, j->status);
        } else {
            bool transient =
                j->status == 0 || j->status == 408 || j->status == 429 || j->status >= 500;
            int64_t tries = sd->tries + 1;
            int64_t delay =
                srv_notify_backoff(cfg->push_retry_base_ms, cfg->push_retry_max_ms, tries);
            bool expired = now + delay > sd->created_at + sd->ttl * 1000;
            char why[200];
            if (j->status)
                snprintf(why, sizeof why, "HTTP %ld", j->status);
            else
                snprintf(why, sizeof why, "%s", j->error);
            if (transient && tries < cfg->push_retry_max_tries && !expired) {
                r = store_push_retry(st, sd->id, tries, now + delay, why);
                kz_metrics.push_sends[KZ_SEND_RETRY]++;
                KZ_WARN("push_retry", "user_id=%lld error=\"%s\" tries=%lld next_in_ms=%lld",
                        (long long)sd->user_id, why, (long long)tries, (long long)delay);
            } else {
                r = store_push_sent(st, sd->id);
                p->push_failed++;
                kz_metrics.push_sends[KZ_SEND_FAILED]++;
                KZ_WARN("push_failed", "user_id=%lld kind=%s error=\"%s\" tries=%lld",
                        (long long)sd->user_id, sd->kind, why, (long long)tries);
            }
        }
    }
    if (r != STORE_OK)
        KZ_ERROR("push_record_failed", "error=\"%s\"", store_errmsg(st));
    free(j);
    srv_commit_async(s);
    srv_notify_schedule(s, 0);
}

struct due_ctx {
    struct srv *s;
    int64_t *drop; /* rows to delete: their subscription is gone, or the notice was read */
    size_t ndrop, capdrop;
    int64_t defer_id[64], defer_at[64]; /* rows held for quiet hours, and until when */
    size_t ndefer;
};

/* If now is inside quiet hours [start, end) (minutes of the day in the server's time zone,
 * across midnight when end < start), when they end; else 0. */
static int64_t quiet_until(int start, int end, int64_t now_ms)
{
    if (start < 0 || end < 0 || start == end)
        return 0;
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm); /* TZ is time_zone's (kz_time_zone_load) */
    int m = tm.tm_hour * 60 + tm.tm_min;
    bool inside = start < end ? m >= start && m < end : m >= start || m < end;
    if (!inside)
        return 0;
    int64_t left_min = (end - m + 1440) % 1440;
    return now_ms - (int64_t)tm.tm_sec * 1000 - now_ms % 1000 + left_min * 60000;
}

static void due_one(void *arg, const struct store_push_send *sd)
{
    struct due_ctx *d = arg;
    struct srv *s = d->s;
    struct srv_push *p = s->push;
    if (!sd->live || sd->seen) {
        if (d->ndrop < d->capdrop)
            d->drop[d->ndrop++] = sd->id;
        if (sd->seen)
            KZ_DEBUG("push_coalesced", "user_id=%lld notice=%lld: read on another device",
                     (long long)sd->user_id, (long long)sd->notice);
        return;
    }
    /* Quiet hours hold what is not urgent until they end; urgent kinds go through. */
    int64_t until = strcmp(sd->urgency, "high") == 0
                        ? 0
                        : quiet_until(sd->quiet_start, sd->quiet_end, kz_now_ms());
    if (until) {
        if (d->ndefer < sizeof d->defer_id / sizeof d->defer_id[0]) {
            d->defer_id[d->ndefer] = sd->id;
            d->defer_at[d->ndefer++] = until;
        }
        return;
    }
    struct push_job *j = calloc(1, sizeof *j);
    if (!j)
        return;
    j->job.work = push_work;
    j->job.done = push_done;
    j->srv = s;
    j->send = *sd;
    j->vapid = p->vapid;
    snprintf(j->subject, sizeof j->subject, "%s", s->cfg->push_subject);
    j->connect_ms = s->cfg->push_connect_timeout_ms;
    j->timeout_ms = s->cfg->push_timeout_ms;
    j->allow_private = s->cfg->push_allow_private_endpoints;
    p->inflight[p->ninflight++] = sd->id;
    if (!kz_workers_submit(p->pool, &j->job)) {
        p->ninflight--;
        free(j);
    }
}

int64_t srv_notify_backoff(int64_t base_ms, int64_t max_ms, int64_t tries)
{
    int64_t delay = base_ms;
    for (int64_t i = 1; i < tries && delay < max_ms; i++)
        delay *= 2;
    return delay > max_ms ? max_ms : delay;
}

/* Hands due sends to the pool, up to push_concurrency in flight; the next due time in *next
 * (0: none, or the rows in flight are the earliest and their done() schedules again). */
static void push_tick(struct srv *s, int64_t *next)
{
    struct srv_push *p = s->push;
    *next = 0;
    if (!p->pool || !p->vapid)
        return;
    size_t room = (size_t)s->cfg->push_concurrency - p->ninflight;
    if (room > 0) {
        int64_t drop[64];
        struct due_ctx d = {.s = s, .drop = drop, .capdrop = 64};
        if (store_push_due(s->store, kz_now_ms(), (int)room, p->inflight, p->ninflight, due_one,
                           &d) != STORE_OK)
            KZ_ERROR("push_due_failed", "error=\"%s\"", store_errmsg(s->store));
        if ((d.ndrop || d.ndefer) && !srv_writes_blocked(s) &&
            store_tx_begin(s->store) == STORE_OK) {
            for (size_t i = 0; i < d.ndrop; i++)
                store_push_sent(s->store, d.drop[i]);
            for (size_t i = 0; i < d.ndefer; i++)
                store_push_defer(s->store, d.defer_id[i], d.defer_at[i]);
            srv_commit_async(s);
            *next = kz_now_ms(); /* more may wait behind them */
        }
    }
    int64_t at = 0;
    if (p->ninflight < (size_t)s->cfg->push_concurrency &&
        store_push_next_due(s->store, &at) == STORE_OK && (!*next || at < *next))
        *next = at;
}

void srv_push_tick(struct srv *s)
{
    struct srv_push *p = s->push;
    if (!p || p->stopping)
        return;
    p->timer_at = 0;
    /* Rows queued by a commit not yet on disk wait for it: nothing may announce what a power
     * cut could still take back (outbox.c). */
    srv_commit_async(s);
    if (store_tx_is_open(s->store) || s->out_head) {
        srv_notify_schedule(s, 10);
        return;
    }
    int64_t push_next = 0, mail_next = 0, hook_next = 0, digest_next = 0;
    push_tick(s, &push_next);
    srv_mail_tick(s, &mail_next);
    srv_webhook_tick(s, &hook_next);
    /* After the mail tick: what it queues leaves next turn, once its commit is on disk. */
    srv_mail_digest_tick(s, &digest_next);
    int64_t next = 0;
    const int64_t due[] = {push_next, mail_next, hook_next, digest_next};
    for (size_t k = 0; k < sizeof due / sizeof due[0]; k++)
        if (due[k] && (!next || due[k] < next))
            next = due[k];
    if (next) {
        int64_t wait = next - kz_now_ms();
        srv_notify_schedule(s, wait < 0 ? 0 : wait);
    }
}

void srv_notify_schedule(struct srv *s, int64_t delay_ms)
{
    struct srv_push *p = s->push;
    if (!s->tx.push_timer || !p || (!p->pool && !p->mail_pool && !p->hook_pool) || p->stopping)
        return;
    if (delay_ms > 3600000)
        delay_ms = 3600000;
    if (delay_ms < 1)
        delay_ms = 1;
    int64_t at = kz_now_ms() + delay_ms;
    if (p->timer_at && p->timer_at <= at)
        return; /* it fires sooner already */
    p->timer_at = at;
    s->tx.push_timer(s->tx.ctx, (int)delay_ms);
}

int srv_notify_start(struct srv *s, void (*wake)(void *), void *wake_arg, char *err, size_t errlen)
{
    const struct kz_config *cfg = s->cfg;
    struct srv_push *p = srv_notify_state(s);
    if (!p || !p->have_key) {
        snprintf(err, errlen, "the push key is missing");
        return -1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "cannot start libcurl");
        return -1;
    }
    p->curl_up = true;
    if (!cfg->push_subject[0]) {
        KZ_INFO("push_off", "push_subject is not set: no pushes are sent");
    } else {
        p->inflight = calloc((size_t)cfg->push_concurrency, sizeof *p->inflight);
        p->vapid = wp_vapid_new(p->priv, p->pub);
        p->pool = p->inflight && p->vapid
                      ? kz_workers_start((int)cfg->push_concurrency, (int)cfg->push_concurrency,
                                         wake, wake_arg)
                      : NULL;
        if (!p->pool) {
            snprintf(err, errlen, "cannot start the push sender");
            return -1;
        }
        int64_t n = 0;
        if (store_push_pending(s->store, &n) == STORE_OK && n > 0)
            KZ_INFO("push_resume", "pending=%lld", (long long)n);
    }
    if (!cfg->smtp_host[0]) {
        KZ_INFO("mail_off", "smtp_host is not set: no e-mail is sent");
    } else {
        p->mail_inflight = calloc((size_t)cfg->mail_concurrency, sizeof *p->mail_inflight);
        p->mail_pool = p->mail_inflight
                           ? kz_workers_start((int)cfg->mail_concurrency,
                                              (int)cfg->mail_concurrency, wake, wake_arg)
                           : NULL;
        if (!p->mail_pool) {
            snprintf(err, errlen, "cannot start the mail sender");
            return -1;
        }
    }
    if (srv_webhook_start(s, wake, wake_arg, err, errlen) != 0)
        return -1;
    srv_notify_schedule(s, 0); /* what a restart left in the outboxes goes now */
    return 0;
}

void srv_push_drain(struct srv *s)
{
    if (s && s->push && s->push->pool)
        kz_workers_drain(s->push->pool);
    if (s && s->push && s->push->mail_pool)
        kz_workers_drain(s->push->mail_pool);
    if (s && s->push && s->push->hook_pool)
        kz_workers_drain(s->push->hook_pool);
}

void srv_push_free(struct srv *s)
{
    struct srv_push *p = s->push;
    if (!p)
        return;
    p->stopping = true;
    /* Jobs in progress end within their timeouts; their answers are written (srv_free then
     * commits them), jobs not begun stay queued for the next start. */
    kz_workers_stop(p->pool);
    kz_workers_stop(p->mail_pool);
    srv_webhook_stop(p);
    wp_vapid_free(p->vapid); /* after the pool: no worker signs any more */
    if (p->curl_up)
        curl_global_cleanup();
    free(p->inflight);
    free(p->mail_inflight);
    sodium_memzero(p->priv, sizeof p->priv);
    free(p);
    s->push = NULL;
}
