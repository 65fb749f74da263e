/* webhook.c - the outgoing webhook (docs/notifications.md, "Webhook"): one signed JSON POST per
 * event to the one URL the administrator set (webhook_url), so a municipality connects what it
 * already has (an SMS gateway, the disaster radio system, a chat room) without changing Kizuna.
 * An urgent notice, a roll-call, a reminder or a hotline's first report queues one delivery in
 * the durable webhook outbox (store_webhook.c) inside the transaction of the op that caused it;
 * it leaves only once that commit is on disk, from the webhook's own worker threads, so the
 * event loop never waits on a receiver. Each try signs "timestamp.body" with HMAC-SHA256 under
 * webhook_secret; 2xx is delivered, 408, 429, 5xx or no answer is retried with doubling delays,
 * anything else (a redirect too: none is followed) is kept as failed for admins
 * (webhook.status). Every try of a delivery sends the same body and delivery id. */
#include "notify.h"
#include "metrics.h"
#include "store_push.h"

#include <curl/curl.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SECRET_MIN 32 /* bytes: as webhook_secret's own bound in config.c */

static const char *const kinds[] = {"notice", "rollcall", "reminder", "hotline"};

/* ---- settings ---- */

/* Whether word (len bytes) is one of kinds. */
static bool kind_known(const char *word, size_t len)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strlen(kinds[i]) == len && strncmp(kinds[i], word, len) == 0)
            return true;
    return false;
}

/* Whether kind is in webhook_kinds (names separated by spaces). */
static bool kind_wanted(const struct kz_config *cfg, const char *kind)
{
    size_t n = strlen(kind);
    for (const char *p = cfg->webhook_kinds; *p;) {
        p += strspn(p, " ");
        size_t len = strcspn(p, " ");
        if (len == n && strncmp(p, kind, n) == 0)
            return true;
        p += len;
    }
    return false;
}

/* The secret file's text without its trailing newline and spaces; -1 with why in err. */
static int secret_read(const char *path, uint8_t *out, size_t cap, size_t *len, char *err,
                       size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "webhook_secret_file: \"%s\" cannot be read by this user (%s)", path,
                 strerror(errno));
        return -1;
    }
    size_t n = fread(out, 1, cap, f);
    bool too_big = !feof(f) || n >= cap;
    fclose(f);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
        n--;
    if (too_big)
        snprintf(err, errlen,
                 "webhook_secret_file: \"%s\" holds more than %zu bytes: the secret alone is "
                 "expected",
                 path, cap - 1);
    else if (n < SECRET_MIN)
        snprintf(err, errlen,
                 "webhook_secret_file: \"%s\" holds %zu bytes: a secret of at least %d is "
                 "expected (e.g. `openssl rand -hex 32`)",
                 path, n, SECRET_MIN);
    if (too_big || n < SECRET_MIN) {
        sodium_memzero(out, cap);
        return -1;
    }
    *len = n;
    return 0;
}

/* The URL's scheme, host and port only: its path or query may hold a token (chat services put
 * theirs there), so logs and webhook.status show no more than this. "" if it does not parse. */
static void url_origin(const char *url, char *out, size_t n)
{
    out[0] = '\0';
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        curl_url_get(u, CURLUPART_PORT, &port, 0);
        snprintf(out, n, "%s://%s%s%s", scheme, host, port ? ":" : "", port ? port : "");
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
}

int srv_webhook_check(const struct kz_config *cfg, FILE *out, const char *prefix)
{
    int problems = 0;
    const char *url = cfg->webhook_url;
    for (const char *p = cfg->webhook_kinds; *p;) {
        p += strspn(p, " ");
        size_t len = strcspn(p, " ");
        if (len && !kind_known(p, len)) {
            fprintf(out,
                    "%swebhook_kinds: \"%.*s\" is not a kind: notice, rollcall, reminder or "
                    "hotline, separated by spaces\n",
                    prefix, (int)len, p);
            problems++;
        }
        p += len;
    }
    if (!url[0])
        return problems;
    char origin[300];
    url_origin(url, origin, sizeof origin);
    bool controls = false;
    for (const char *p = url; *p; p++)
        controls |= (unsigned char)*p <= ' ' || *p == 0x7f;
    /* The URL itself is not repeated: its path may hold a chat service's token. */
    if (controls || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
        !origin[0]) {
        fprintf(out,
                "%swebhook_url: not an http:// or https:// URL with a host (and no spaces), "
                "e.g. https://gateway.city.example.lg.jp/kizuna\n",
                prefix);
        problems++;
    }
    if (!cfg->webhook_secret[0] == !cfg->webhook_secret_file[0]) {
        fprintf(out,
                "%swebhook_url needs one of webhook_secret and webhook_secret_file (not "
                "both): the receiver checks each delivery's signature with it\n",
                prefix);
        problems++;
    } else if (cfg->webhook_secret_file[0]) {
        uint8_t key[256];
        size_t len = 0;
        char err[700];
        if (secret_read(cfg->webhook_secret_file, key, sizeof key, &len, err, sizeof err) != 0) {
            fprintf(out, "%s%s\n", prefix, err);
            problems++;
        }
        sodium_memzero(key, sizeof key);
    }
    if (!cfg->webhook_kinds[strspn(cfg->webhook_kinds, " ")]) {
        fprintf(out,
                "%swebhook_kinds names no kind: with webhook_url set, nothing would be "
                "sent\n",
                prefix);
        problems++;
    }
    return problems;
}

/* ---- the body and its signature ---- */

void srv_webhook_sign(const uint8_t *key, size_t keylen, int64_t t, const char *body, size_t len,
                      char hex[65])
{
    crypto_auth_hmacsha256_state st;
    uint8_t mac[crypto_auth_hmacsha256_BYTES];
    char ts[24];
    int n = snprintf(ts, sizeof ts, "%lld.", (long long)t);
    crypto_auth_hmacsha256_init(&st, key, keylen);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)ts, (size_t)n);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)body, len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(hex, 65, mac, sizeof mac);
    sodium_memzero(&st, sizeof st);
}

cJSON *srv_webhook_body_new(const struct srv_webhook_event *e)
{
    cJSON *b = cJSON_CreateObject();
    char iso[32];
    time_t secs = (time_t)(e->time / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON_AddNumberToObject(b, "version", SRV_WEBHOOK_VERSION);
    cJSON_AddStringToObject(b, "delivery", e->delivery);
    cJSON_AddStringToObject(b, "kind", e->kind);
    cJSON_AddStringToObject(b, "time", iso);
    cJSON_AddNumberToObject(b, "time_ms", (double)e->time);
    cJSON_AddStringToObject(b, "server", e->server_id);
    cJSON_AddBoolToObject(b, "urgent", e->urgent);
    const struct store_notice *n = e->notice;
    if (n) {
        cJSON *o = cJSON_AddObjectToObject(b, "notice");
        cJSON_AddNumberToObject(o, "id", (double)n->id);
        cJSON_AddStringToObject(o, "title", n->title);
        if (e->with_text)
            cJSON_AddStringToObject(o, "body", n->body);
        else
            cJSON_AddNullToObject(o, "body");
        cJSON_AddStringToObject(o, "priority", n->urgent ? "urgent" : "normal");
        cJSON *choices = n->choices ? cJSON_Parse(n->choices) : NULL;
        cJSON_AddItemToObject(o, "choices", cJSON_IsArray(choices) ? choices : cJSON_CreateArray());
        if (choices && !cJSON_IsArray(choices))
            cJSON_Delete(choices);
        cJSON_AddBoolToObject(o, "ask_ack", n->ask_ack);
        if (n->expires_at)
            cJSON_AddNumberToObject(o, "expires_at", (double)n->expires_at);
        else
            cJSON_AddNullToObject(o, "expires_at");
    }
    if (e->reminder_for) {
        cJSON *o = cJSON_AddObjectToObject(b, "reminder");
        cJSON_AddStringToObject(o, "for", e->reminder_for);
    }
    if (e->room_id) {
        cJSON *o = cJSON_AddObjectToObject(b, "room");
        cJSON_AddStringToObject(o, "id", e->room_id);
        cJSON_AddStringToObject(o, "name", e->room_name);
        cJSON_AddNumberToObject(o, "pos", (double)e->pos);
        if (e->with_text)
            cJSON_AddStringToObject(o, "text", e->text);
        else
            cJSON_AddNullToObject(o, "text");
    }
    cJSON *a = cJSON_AddObjectToObject(b, "author");
    cJSON_AddStringToObject(a, "login", e->author_login);
    cJSON_AddStringToObject(a, "name", e->author_name);
    return b;
}

/* ---- queuing (loop thread, inside the transaction of the op that caused it) ---- */

struct people {
    cJSON *list; /* NULL: only counted (webhook_recipients off) */
    int64_t count;
};

static void person_add(void *arg, const struct store_webhook_person *p)
{
    struct people *pl = arg;
    pl->count++;
    if (!pl->list)
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "login", p->login);
    cJSON_AddStringToObject(o, "name", p->name);
    cJSON_AddStringToObject(o, "department", p->department);
    cJSON_AddStringToObject(o, "phone", p->phone);
    cJSON_AddStringToObject(o, "email", p->email);
    cJSON_AddItemToArray(pl->list, o);
}

/* Whether the webhook is on and wants kind. */
static bool wanted(struct srv_call *c, const char *kind)
{
    struct srv_push *p = c->srv->push;
    return p && p->hook_pool && kind_wanted(srv_config(c->srv), kind);
}

static void event_init(struct srv_call *c, struct srv_webhook_event *e, const char *kind,
                       char delivery[STORE_WEBHOOK_ID_MAX + 1])
{
    uint8_t id[STORE_WEBHOOK_ID_MAX / 2];
    randombytes_buf(id, sizeof id);
    sodium_bin2hex(delivery, STORE_WEBHOOK_ID_MAX + 1, id, sizeof id);
    *e = (struct srv_webhook_event){
        .kind = kind,
        .delivery = delivery,
        .server_id = srv_server_id(c->srv),
        .time = kz_now_ms(),
        .author_login = c->auth.user.login,
        .author_name = c->auth.user.name,
        .with_text = srv_config(c->srv)->webhook_text,
    };
}

/* Adds the people to body (consumed), stores it and wakes the sender. */
static enum kz_err queue(struct srv_call *c, cJSON *body, const struct srv_webhook_event *e,
                         int64_t notice, struct people *pl)
{
    char *text = NULL;
    enum kz_err err = KZ_OK;
    if (body) {
        cJSON_AddNumberToObject(body, "recipient_count", (double)pl->count);
        if (pl->list)
            cJSON_AddItemToObject(body, "recipients", pl->list);
        else
            cJSON_AddNullToObject(body, "recipients");
        pl->list = NULL;
        text = cJSON_PrintUnformatted(body);
    }
    int64_t now = kz_now_ms();
    if (!text)
        err = srv_fail(c, KZ_INTERNAL, "cannot build the webhook delivery");
    else if (store_webhook_queue(srv_store(c->srv), e->delivery, e->kind, notice, text, now, now) !=
             STORE_OK)
        err = srv_fail(c, KZ_INTERNAL, "cannot queue the webhook delivery");
    else
        srv_notify_schedule(c->srv, 0);
    cJSON_Delete(body);
    cJSON_Delete(pl->list);
    if (text)
        sodium_memzero(text, strlen(text)); /* it may hold people's phone numbers */
    cJSON_free(text);
    return err;
}

enum kz_err srv_webhook_notice(struct srv_call *c, const struct store_notice *n, bool rollcall)
{
    const char *kind = rollcall ? "rollcall" : "notice";
    if (!wanted(c, kind))
        return KZ_OK;
    char delivery[STORE_WEBHOOK_ID_MAX + 1];
    struct srv_webhook_event e;
    event_init(c, &e, kind, delivery);
    e.notice = n;
    e.urgent = n->urgent;
    struct people pl = {srv_config(c->srv)->webhook_recipients ? cJSON_CreateArray() : NULL, 0};
    if (store_webhook_notice_people(srv_store(c->srv), n->id, person_add, &pl) != STORE_OK) {
        cJSON_Delete(pl.list);
        return srv_fail(c, KZ_INTERNAL, "cannot list the webhook's recipients");
    }
    return queue(c, srv_webhook_body_new(&e), &e, n->id, &pl);
}

enum kz_err srv_webhook_reminder(struct srv_call *c, const struct store_notice *n,
                                 const char *for_what, const cJSON *user_ids)
{
    if (!wanted(c, "reminder") || cJSON_GetArraySize(user_ids) == 0)
        return KZ_OK;
    char delivery[STORE_WEBHOOK_ID_MAX + 1];
    struct srv_webhook_event e;
    event_init(c, &e, "reminder", delivery);
    e.notice = n;
    e.urgent = n->urgent;
    e.reminder_for = for_what;
    struct people pl = {srv_config(c->srv)->webhook_recipients ? cJSON_CreateArray() : NULL, 0};
    const cJSON *id;
    cJSON_ArrayForEach(id, user_ids)
    {
        struct store_user u;
        if (store_user_get(srv_store(c->srv), (int64_t)id->valuedouble, &u) != STORE_OK ||
            u.disabled || u.home[0])
            continue;
        struct store_webhook_person p = {u.login, u.name, u.department_name, u.phone, u.email};
        person_add(&pl, &p);
    }
    return queue(c, srv_webhook_body_new(&e), &e, n->id, &pl);
}

enum kz_err srv_webhook_hotline(struct srv_call *c, const struct store_room *room, int64_t pos,
                                const char *text)
{
    if (!wanted(c, "hotline"))
        return KZ_OK;
    char delivery[STORE_WEBHOOK_ID_MAX + 1];
    struct srv_webhook_event e;
    event_init(c, &e, "hotline", delivery);
    e.urgent = true;
    e.room_id = room->room_id;
    e.room_name = room->name;
    e.pos = pos;
    e.text = text;
    struct people pl = {srv_config(c->srv)->webhook_recipients ? cJSON_CreateArray() : NULL, 0};
    if (store_webhook_room_people(srv_store(c->srv), room->id, c->auth.user.id, person_add, &pl) !=
        STORE_OK) {
        cJSON_Delete(pl.list);
        return srv_fail(c, KZ_INTERNAL, "cannot list the webhook's recipients");
    }
    return queue(c, srv_webhook_body_new(&e), &e, 0, &pl);
}

/* ---- sending (worker threads) ---- */

struct hook_job {
    struct kz_job job;
    struct srv *srv;
    const struct kz_config *cfg; /* the core's, as long-lived */
    int64_t id, tries, created_at;
    char delivery[STORE_WEBHOOK_ID_MAX + 1];
    char kind[STORE_WEBHOOK_KIND_MAX + 1];
    char *body;
    uint8_t key[256];
    size_t keylen;
    long status;     /* the receiver's HTTP status (0: none) */
    char error[200]; /* why there was no answer */
};

static size_t discard(char *ptr, size_t size, size_t nmemb, void *arg)
{
    (void)ptr;
    (void)arg;
    return size * nmemb; /* the receiver's body says nothing we act on */
}

static void hook_work(struct kz_job *job)
{
    struct hook_job *j = (struct hook_job *)job;
    const struct kz_config *cfg = j->cfg;
    size_t len = strlen(j->body);
    char sig[65], hdr[160];
    /* Signed at each try: a receiver refuses old timestamps, and a retry may come hours later. */
    int64_t t = (int64_t)time(NULL);
    srv_webhook_sign(j->key, j->keylen, t, j->body, len, sig);
    /* The thread's own handle: its connection to the receiver stays open for the next delivery
     * (the URL is one, so a kept connection only ever serves webhook_url's host and port). */
    CURL *h = srv_notify_curl();
    if (!h) {
        snprintf(j->error, sizeof j->error, "cannot start an HTTP client");
        return;
    }
    struct curl_slist *hs =
        curl_slist_append(NULL, "Content-Type: application/json; charset=utf-8");
    snprintf(hdr, sizeof hdr, "Kizuna-Delivery: %s", j->delivery);
    hs = curl_slist_append(hs, hdr);
    snprintf(hdr, sizeof hdr, "Kizuna-Event: %s", j->kind);
    hs = curl_slist_append(hs, hdr);
    snprintf(hdr, sizeof hdr, "Kizuna-Signature: t=%lld,v1=%s", (long long)t, sig);
    hs = curl_slist_append(hs, hdr);
    hs = curl_slist_append(hs, "Expect:"); /* no 100-continue round trip before the body */
    curl_easy_setopt(h, CURLOPT_URL, cfg->webhook_url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    /* The URL is the administrator's, so addresses in the town's own network are allowed (the
     * radio gateway is on its LAN); a redirect is not followed, so a receiver cannot send the
     * signed body on to another address. */
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, j->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->webhook_connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)cfg->webhook_timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "kizunad/" KZ_VERSION);
    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &j->status);
    else
        snprintf(j->error, sizeof j->error, "%s", curl_easy_strerror(rc));
    curl_easy_reset(h); /* the handle no longer points into this job */
    curl_slist_free_all(hs);
}

/* ---- the loop's side ---- */

static void hook_job_free(struct hook_job *j)
{
    if (j->body) {
        sodium_memzero(j->body, strlen(j->body));
        free(j->body);
    }
    sodium_memzero(j->key, sizeof j->key);
    free(j);
}

static void hook_done(struct kz_job *job, bool ran)
{
    struct hook_job *j = (struct hook_job *)job;
    struct srv *s = j->srv;
    struct srv_push *p = s->push;
    srv_notify_inflight_drop(p->hook_inflight, &p->nhook_inflight, j->id);
    if (!ran) { /* shutting down: the row stays and goes after the restart */
        hook_job_free(j);
        return;
    }
    const struct kz_config *cfg = s->cfg;
    struct store *st = s->store;
    int64_t now = kz_now_ms(), tries = j->tries + 1;
    char why[240];
    if (j->status >= 300 && j->status < 400)
        snprintf(why, sizeof why,
                 "HTTP %ld: redirects are not followed (set webhook_url to the "
                 "final address)",
                 j->status);
    else if (j->status)
        snprintf(why, sizeof why, "HTTP %ld", j->status);
    else
        snprintf(why, sizeof why, "%s", j->error);
    enum store_rc r = srv_writes_blocked(s) ? STORE_ERROR : store_tx_begin(st);
    if (r == STORE_OK) {
        bool transient = j->status == 0 || j->status == 408 || j->status == 429 || j->status >= 500;
        if (j->status >= 200 && j->status < 300) {
            r = store_outbox_done(st, STORE_OUTBOX_WEBHOOK, j->id);
            kz_metrics.webhook_sends[KZ_SEND_SENT]++;
            kz_hist_observe(&kz_metrics.webhook_seconds, (double)(now - j->created_at) / 1000.0);
            KZ_INFO("webhook_sent", "delivery=%s kind=%s status=%ld tries=%lld", j->delivery,
                    j->kind, j->status, (long long)tries);
        } else if (transient && tries < cfg->webhook_retry_max_tries) {
            int64_t delay =
                srv_notify_backoff(cfg->webhook_retry_base_ms, cfg->webhook_retry_max_ms, tries);
            r = store_outbox_retry(st, STORE_OUTBOX_WEBHOOK, j->id, tries, now + delay, why);
            kz_metrics.webhook_sends[KZ_SEND_RETRY]++;
            KZ_WARN("webhook_retry", "delivery=%s kind=%s error=\"%s\" tries=%lld next_in_ms=%lld",
                    j->delivery, j->kind, why, (long long)tries, (long long)delay);
        } else {
            r = store_outbox_fail(st, STORE_OUTBOX_WEBHOOK, j->id, tries, why);
            kz_metrics.webhook_sends[KZ_SEND_FAILED]++;
            KZ_WARN("webhook_failed", "delivery=%s kind=%s error=\"%s\" tries=%lld", j->delivery,
                    j->kind, why, (long long)tries);
        }
    }
    if (r != STORE_OK)
        KZ_ERROR("webhook_record_failed", "error=\"%s\"", store_errmsg(st));
    hook_job_free(j);
    srv_commit_async(s);
    srv_notify_schedule(s, 0);
}

static void due_one(void *arg, const struct store_webhook_send *w)
{
    struct srv *s = arg;
    struct srv_push *p = s->push;
    struct hook_job *j = calloc(1, sizeof *j);
    if (!j)
        return;
    j->job.work = hook_work;
    j->job.done = hook_done;
    j->srv = s;
    j->cfg = s->cfg;
    j->id = w->id;
    j->tries = w->tries;
    j->created_at = w->created_at;
    snprintf(j->delivery, sizeof j->delivery, "%s", w->delivery);
    snprintf(j->kind, sizeof j->kind, "%s", w->kind);
    memcpy(j->key, p->hook_secret, p->hook_secret_len);
    j->keylen = p->hook_secret_len;
    if (!(j->body = strdup(w->body))) {
        hook_job_free(j);
        return;
    }
    p->hook_inflight[p->nhook_inflight++] = w->id;
    if (!kz_workers_submit(p->hook_pool, &j->job)) {
        p->nhook_inflight--;
        hook_job_free(j);
    }
}

void srv_webhook_tick(struct srv *s, int64_t *next)
{
    struct srv_push *p = s->push;
    *next = 0;
    if (!p || !p->hook_pool)
        return;
    size_t room = (size_t)s->cfg->webhook_concurrency - p->nhook_inflight;
    if (room > 0 && store_webhook_due(s->store, kz_now_ms(), (int)room, p->hook_inflight,
                                      p->nhook_inflight, due_one, s) != STORE_OK)
        KZ_ERROR("webhook_due_failed", "error=\"%s\"", store_errmsg(s->store));
    int64_t at = 0;
    if (p->nhook_inflight < (size_t)s->cfg->webhook_concurrency &&
        store_outbox_next_due(s->store, STORE_OUTBOX_WEBHOOK, &at) == STORE_OK)
        *next = at;
}

int srv_webhook_start(struct srv *s, void (*wake)(void *), void *wake_arg, char *err, size_t errlen)
{
    const struct kz_config *cfg = s->cfg;
    struct srv_push *p = s->push;
    if (!cfg->webhook_url[0]) {
        KZ_INFO("webhook_off", "webhook_url is not set: no webhook deliveries are sent");
        return 0;
    }
    if (cfg->webhook_secret_file[0]) {
        if (secret_read(cfg->webhook_secret_file, p->hook_secret, sizeof p->hook_secret,
                        &p->hook_secret_len, err, errlen) != 0)
            return -1;
    } else {
        p->hook_secret_len = strlen(cfg->webhook_secret);
        memcpy(p->hook_secret, cfg->webhook_secret, p->hook_secret_len);
    }
    p->hook_inflight = calloc((size_t)cfg->webhook_concurrency, sizeof *p->hook_inflight);
    p->hook_pool = p->hook_inflight
                       ? kz_workers_start((int)cfg->webhook_concurrency,
                                          (int)cfg->webhook_concurrency, wake, wake_arg)
                       : NULL;
    if (!p->hook_pool) {
        snprintf(err, errlen, "cannot start the webhook sender");
        return -1;
    }
    char origin[300];
    url_origin(cfg->webhook_url, origin, sizeof origin);
    int64_t pending = 0, failed = 0;
    store_outbox_counts(s->store, STORE_OUTBOX_WEBHOOK, &pending, &failed);
    KZ_INFO("webhook_on", "origin=%s kinds=\"%s\" recipients=%s pending=%lld failed=%lld", origin,
            cfg->webhook_kinds, cfg->webhook_recipients ? "true" : "false", (long long)pending,
            (long long)failed);
    return 0;
}

void srv_webhook_stop(struct srv_push *p)
{
    kz_workers_stop(p->hook_pool);
    p->hook_pool = NULL;
    free(p->hook_inflight);
    p->hook_inflight = NULL;
    sodium_memzero(p->hook_secret, sizeof p->hook_secret);
}

/* ---- what admins see ---- */

static void failure_row(void *arg, const struct store_webhook_failure *f)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)f->id);
    cJSON_AddStringToObject(o, "delivery", f->delivery);
    cJSON_AddStringToObject(o, "kind", f->kind);
    if (f->notice)
        cJSON_AddNumberToObject(o, "notice", (double)f->notice);
    cJSON_AddNumberToObject(o, "tries", (double)f->tries);
    cJSON_AddStringToObject(o, "error", f->error);
    cJSON_AddNumberToObject(o, "created_at", (double)f->created_at);
    cJSON_AddItemToArray(arg, o);
}

enum kz_err op_webhook_status(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    const struct kz_config *cfg = srv_config(c->srv);
    int64_t pending = 0, failed = 0;
    c->result = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(c->result, "failed");
    if (store_outbox_counts(st, STORE_OUTBOX_WEBHOOK, &pending, &failed) != STORE_OK ||
        store_webhook_failures(st, srv_arg_int(c, "limit", 100), failure_row, list) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot read the webhook outbox");
    char origin[300] = "";
    if (cfg->webhook_url[0])
        url_origin(cfg->webhook_url, origin, sizeof origin);
    cJSON_AddBoolToObject(c->result, "enabled", c->srv->push && c->srv->push->hook_pool);
    cJSON_AddStringToObject(c->result, "origin", origin);
    cJSON_AddStringToObject(c->result, "kinds", cfg->webhook_kinds);
    cJSON_AddBoolToObject(c->result, "recipients", cfg->webhook_recipients);
    cJSON_AddBoolToObject(c->result, "text", cfg->webhook_text);
    cJSON_AddNumberToObject(c->result, "pending", (double)pending);
    cJSON_AddNumberToObject(c->result, "failed_total", (double)failed);
    return KZ_OK;
}
