/* mail.c - e-mail for what must not wait (docs/notifications.md): urgent notices, roll-calls
 * and reminders to those who have not answered go to recipients with an address on file,
 * through the mail relay the administrator set (smtp_*), from a durable outbox that survives
 * restarts; a roll-call's mail carries one-tap answer links, one per choice, for that person only,
 * usable once until they expire and only while they have not answered (a reminder's mail brings
 * fresh ones), which notice.answer_link (GET /answer/TOKEN?c=N, http_api.c) records. libcurl speaks
 * SMTP on the mail sender's own threads (STARTTLS or TLS with certificate checks, AUTH), so a slow
 * relay never holds up the event loop. Subjects are RFC 2047 encoded words, bodies UTF-8 in base64,
 * so Japanese arrives intact through any relay. */
#include "notify.h"
#include "metrics.h"
#include "store_push.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOKEN_BYTES 32
#define TOKEN_CHARS SRV_ANSWER_TOKEN_CHARS
_Static_assert(TOKEN_CHARS == (TOKEN_BYTES * 8 + 5) / 6, "base64url of TOKEN_BYTES, no padding");

/* ---- queuing (loop thread, inside the notice.post transaction) ---- */

struct mail_rcpt {
    int64_t user_id;
    char *email, *name;
};

struct rcpt_list {
    struct mail_rcpt *v;
    size_t n, cap;
    bool oom;
};

static void rcpt_add(void *arg, int64_t user_id, const char *email, const char *name)
{
    struct rcpt_list *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct mail_rcpt *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->oom = true;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n].user_id = user_id;
    l->v[l->n].email = strdup(email);
    l->v[l->n].name = strdup(name);
    if (!l->v[l->n].email || !l->v[l->n].name) {
        free(l->v[l->n].email);
        free(l->v[l->n].name);
        l->oom = true;
        return;
    }
    l->n++;
}

void notify_put(struct notify_text *t, const char *fmt, ...)
{
    if (t->bad)
        return;
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0 || (t->n + (size_t)need + 1 > t->cap &&
                     !(t->s = realloc(t->s, t->cap = (t->n + (size_t)need + 1) * 2)))) {
        t->bad = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(t->s + t->n, t->cap - t->n, fmt, ap);
    va_end(ap);
    t->n += (size_t)need;
}

static void fmt_time(const struct kz_config *cfg, int64_t ms, char *out, size_t n)
{
    (void)cfg;
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%d %H:%M UTC", &tm);
}

int srv_answer_link_new(struct store *st, int64_t notice, int64_t user_id, int64_t expires,
                        const char *channel, char token[SRV_ANSWER_TOKEN_CHARS + 1])
{
    uint8_t tok[TOKEN_BYTES], hash[32];
    randombytes_buf(tok, sizeof tok);
    wp_b64u_encode(tok, sizeof tok, token, SRV_ANSWER_TOKEN_CHARS + 1);
    sodium_memzero(tok, sizeof tok);
    /* Only the hash is kept: the database alone answers for no one. */
    crypto_generichash(hash, sizeof hash, (const unsigned char *)token, TOKEN_CHARS, NULL, 0);
    return store_answer_link_add(st, hash, notice, user_id, expires, channel) == STORE_OK ? 0 : -1;
}

int64_t srv_answer_link_expiry(const struct kz_config *cfg, int64_t now, int64_t notice_expires)
{
    int64_t expires = now + cfg->mail_answer_link_ttl_s * 1000;
    return notice_expires && notice_expires < expires ? notice_expires : expires;
}

/* Writes one person's answer links for a roll-call into text (the token leaves only in this
 * mail; srv_answer_link_new keeps its hash). */
static enum kz_err put_answer_links(struct srv_call *c, struct notify_text *text, int64_t notice,
                                    int64_t user_id, const cJSON *choices, int64_t expires,
                                    const char *until)
{
    const struct kz_config *cfg = srv_config(c->srv);
    char token[SRV_ANSWER_TOKEN_CHARS + 1];
    enum kz_err e = KZ_OK;
    if (srv_answer_link_new(srv_store(c->srv), notice, user_id, expires, "email", token) != 0) {
        e = srv_fail(c, KZ_INTERNAL, "cannot store the answer link");
    } else {
        notify_put(text,
                   "\r\n回答はリンクを一度押すだけです（あなた専用、一度だけ、%s まで有効）:\r\n"
                   "Answer with one tap (for you only, once, until %s):\r\n\r\n",
                   until, until);
        int k = 1;
        const cJSON *ch;
        cJSON_ArrayForEach(ch, choices)
        {
            notify_put(text, "%d. %s\r\n   %s/answer/%s?c=%d\r\n", k, ch->valuestring,
                       cfg->public_origin, token, k);
            k++;
        }
    }
    sodium_memzero(token, sizeof token);
    return e;
}

/* Queues a notice's mail of kind to its recipients with an address (reminded_at: only those
 * reminded then); a roll-call's (choices) with answer links, expiring at notice_expires (0:
 * none) or mail_answer_link_ttl_s from now, whichever is sooner. */
static enum kz_err queue_notice_mail(struct srv_call *c, const char *kind, int64_t notice,
                                     const char *title, const char *body, const cJSON *choices,
                                     bool urgent, int64_t notice_expires, int64_t reminded_at)
{
    struct srv_push *p = c->srv->push;
    if (!p || !p->mail_pool)
        return KZ_OK; /* no relay set: nothing would ever leave */
    const struct kz_config *cfg = srv_config(c->srv);
    struct store *st = srv_store(c->srv);
    struct rcpt_list l = {0};
    enum kz_err e = KZ_OK;
    if (store_mail_recipients(st, notice, reminded_at, kind, srv_notify_default(kind, true),
                              rcpt_add, &l) != STORE_OK ||
        l.oom) {
        e = srv_fail(c, KZ_INTERNAL, "cannot find the recipients' addresses");
        goto out;
    }
    int64_t now = kz_now_ms();
    int64_t expires = srv_answer_link_expiry(cfg, now, notice_expires);
    /* Links need the address people reach this server at; without it the mail says to open
     * Kizuna instead. */
    bool links = choices && cfg->public_origin[0];
    char until[40];
    fmt_time(cfg, expires, until, sizeof until);
    for (size_t i = 0; i < l.n && !e; i++) {
        struct notify_text subj = {0}, text = {0};
        notify_put(&subj, "[Kizuna] %s%s%s%s", reminded_at ? "【再通知】" : "",
                   urgent ? "【至急】" : "", choices ? "【回答依頼】" : "", title);
        notify_put(&text, "%s さん\r\n\r\n", l.v[i].name);
        if (reminded_at)
            notify_put(&text, "%s\r\n\r\n",
                       choices
                           ? "まだ回答がありません。回答してください。 / You have not answered yet."
                           : "まだ確認がありません。確認してください。 / You have not done "
                             "what this notice asks yet.");
        notify_put(&text, "%s\r\n\r\n%s\r\n", title, body);
        if (links)
            e = put_answer_links(c, &text, notice, l.v[i].user_id, choices, expires, until);
        else if (choices)
            notify_put(&text,
                       "\r\nKizuna を開いて回答してください。 / Please answer in Kizuna.\r\n");
        notify_put(&text, "\r\n-- \r\nKizuna (%s)\r\n", srv_server_id(c->srv));
        if (!e && (subj.bad || text.bad))
            e = srv_fail(c, KZ_INTERNAL, "cannot write the e-mail");
        if (!e && store_mail_queue(st, l.v[i].user_id, l.v[i].email, subj.s, text.s, notice, now,
                                   now) != STORE_OK)
            e = srv_fail(c, KZ_INTERNAL, "cannot queue the e-mail");
        if (text.s)
            sodium_memzero(text.s, text.n); /* it held live answer links */
        free(subj.s);
        free(text.s);
    }
    if (!e && l.n)
        srv_notify_schedule(c->srv, 0);
out:
    for (size_t i = 0; i < l.n; i++) {
        free(l.v[i].email);
        free(l.v[i].name);
    }
    free(l.v);
    return e;
}

enum kz_err srv_mail_notice(struct srv_call *c, int64_t notice, const char *title, const char *body,
                            const cJSON *choices, bool urgent)
{
    return queue_notice_mail(c, choices ? "rollcall" : "notice", notice, title, body, choices,
                             urgent, srv_arg_int(c, "expires_at", 0), 0);
}

enum kz_err srv_mail_remind(struct srv_call *c, int64_t notice, const char *title, const char *body,
                            const cJSON *choices, bool urgent, int64_t expires_at,
                            int64_t reminded_at)
{
    return queue_notice_mail(c, "reminder", notice, title, body, choices, urgent, expires_at,
                             reminded_at);
}

/* ---- the message (worker threads) ---- */

/* base64 of in, in lines of 76 characters (RFC 2045). */
static void put_base64_lines(struct notify_text *t, const uint8_t *in, size_t n)
{
    for (size_t off = 0; off < n; off += 57) {
        size_t k = n - off < 57 ? n - off : 57;
        char line[80];
        sodium_bin2base64(line, sizeof line, in + off, k, sodium_base64_VARIANT_ORIGINAL);
        notify_put(t, "%s\r\n", line);
    }
}

/* A header's text as RFC 2047 encoded words (UTF-8, base64), each at most 39 bytes of text cut
 * at a character's start (64 characters), so that even the first line, "Subject: " and a word,
 * stays within 78; words are folded onto their own lines. */
static void put_encoded_words(struct notify_text *t, const char *s)
{
    size_t n = strlen(s), off = 0;
    bool first = true;
    while (off < n || first) {
        size_t k = n - off < 39 ? n - off : 39;
        while (k > 0 && off + k < n && ((unsigned char)s[off + k] & 0xC0) == 0x80)
            k--;
        char word[80];
        sodium_bin2base64(word, sizeof word, (const unsigned char *)s + off, k,
                          sodium_base64_VARIANT_ORIGINAL);
        notify_put(t, "%s=?UTF-8?B?%s?=", first ? "" : "\r\n ", word);
        off += k;
        first = false;
    }
}

static bool header_safe(const char *s)
{
    return !strpbrk(s, "\r\n<>");
}

struct mail_job {
    struct kz_job job;
    struct srv *srv;
    int64_t id, user_id, tries, created_at, notice;
    char *to, *subject, *body;
    const struct kz_config *cfg; /* the core's, as long-lived */
    long smtp_code;              /* the relay's last reply code (0: none) */
    bool ok;
    char error[200];
};

struct reader {
    const char *data;
    size_t len, pos;
};

static size_t read_cb(char *buf, size_t size, size_t nitems, void *arg)
{
    struct reader *r = arg;
    size_t n = size * nitems, left = r->len - r->pos;
    if (n > left)
        n = left;
    memcpy(buf, r->data + r->pos, n);
    r->pos += n;
    return n;
}

static void mail_work(struct kz_job *job)
{
    struct mail_job *j = (struct mail_job *)job;
    const struct kz_config *cfg = j->cfg;
    struct notify_text m = {0};
    if (!header_safe(j->to) || !header_safe(cfg->smtp_from)) {
        snprintf(j->error, sizeof j->error, "an address holds a line break or angle bracket");
        return;
    }
    char date[64], rnd[33];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    uint8_t r[16];
    randombytes_buf(r, sizeof r);
    sodium_bin2hex(rnd, sizeof rnd, r, sizeof r);
    const char *domain = strchr(cfg->smtp_from, '@');
    notify_put(&m, "From: %s\r\nTo: %s\r\nSubject: ", cfg->smtp_from, j->to);
    put_encoded_words(&m, j->subject);
    notify_put(&m,
               "\r\nDate: %s\r\nMessage-ID: <%s%s>\r\nMIME-Version: 1.0\r\n"
               "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n"
               "Auto-Submitted: auto-generated\r\n\r\n",
               date, rnd, domain ? domain : "@kizuna.invalid");
    put_base64_lines(&m, (const uint8_t *)j->body, strlen(j->body));
    if (m.bad) {
        snprintf(j->error, sizeof j->error, "out of memory");
        return;
    }
    /* The thread's own handle: libcurl keeps its SMTP session open after a message (no QUIT),
     * and the next message on it starts at MAIL FROM, without a new connection, TLS handshake,
     * EHLO or AUTH; after a failed transaction libcurl closes the session instead of reusing it
     * (checked with libcurl 7.88.1 against a relay stand-in). */
    CURL *h = srv_notify_curl();
    if (!h) {
        snprintf(j->error, sizeof j->error, "cannot start an SMTP client");
        free(m.s);
        return;
    }
    char url[300], from[300], to[300];
    bool tls = strcmp(cfg->smtp_security, "tls") == 0;
    snprintf(url, sizeof url, "%s://%s:%lld", tls ? "smtps" : "smtp", cfg->smtp_host,
             cfg->smtp_port);
    snprintf(from, sizeof from, "<%s>", cfg->smtp_from);
    snprintf(to, sizeof to, "<%s>", j->to);
    struct curl_slist *rcpt = curl_slist_append(NULL, to);
    struct reader rd = {m.s, m.n, 0};
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (strcmp(cfg->smtp_security, "starttls") == 0)
        curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    if (cfg->smtp_user[0]) {
        curl_easy_setopt(h, CURLOPT_USERNAME, cfg->smtp_user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, cfg->smtp_password);
    }
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(h, CURLOPT_READDATA, &rd);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->smtp_connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)cfg->smtp_timeout_ms);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &j->smtp_code);
    j->ok = rc == CURLE_OK;
    if (!j->ok)
        snprintf(j->error, sizeof j->error, "%s (SMTP %ld)", curl_easy_strerror(rc), j->smtp_code);
    curl_easy_reset(h); /* the handle no longer points into this job */
    curl_slist_free_all(rcpt);
    sodium_memzero(m.s, m.n);
    free(m.s);
}

/* ---- the loop's side ---- */

static void mail_job_free(struct mail_job *j)
{
    if (j->body)
        sodium_memzero(j->body, strlen(j->body));
    free(j->to);
    free(j->subject);
    free(j->body);
    free(j);
}

static void mail_done(struct kz_job *job, bool ran)
{
    struct mail_job *j = (struct mail_job *)job;
    struct srv *s = j->srv;
    struct srv_push *p = s->push;
    srv_notify_inflight_drop(p->mail_inflight, &p->nmail_inflight, j->id);
    if (!ran) {
        mail_job_free(j);
        return;
    }
    const struct kz_config *cfg = s->cfg;
    struct store *st = s->store;
    enum store_rc r = srv_writes_blocked(s) ? STORE_ERROR : store_tx_begin(st);
    int64_t tries = j->tries + 1;
    if (r == STORE_OK) {
        if (j->ok) {
            r = store_outbox_done(st, STORE_OUTBOX_MAIL, j->id);
            if (r == STORE_OK && j->notice)
                r = store_reach_add(st, j->notice, j->user_id, "email", kz_now_ms());
            kz_metrics.mail_sends[KZ_SEND_SENT]++;
            kz_hist_observe(&kz_metrics.mail_seconds,
                            (double)(kz_now_ms() - j->created_at) / 1000.0);
            KZ_INFO("mail_sent", "user_id=%lld tries=%lld", (long long)j->user_id,
                    (long long)tries);
        } else if ((j->smtp_code >= 500 && j->smtp_code < 600) ||
                   tries >= cfg->mail_retry_max_tries) {
            /* A 5xx is the relay's final word (unknown address, refused): no retry helps. */
            r = store_outbox_fail(st, STORE_OUTBOX_MAIL, j->id, tries, j->error);
            kz_metrics.mail_sends[KZ_SEND_FAILED]++;
            KZ_WARN("mail_failed", "user_id=%lld error=\"%s\" tries=%lld", (long long)j->user_id,
                    j->error, (long long)tries);
        } else {
            int64_t delay =
                srv_notify_backoff(cfg->mail_retry_base_ms, cfg->mail_retry_max_ms, tries);
            r = store_outbox_retry(st, STORE_OUTBOX_MAIL, j->id, tries, kz_now_ms() + delay,
                                   j->error);
            kz_metrics.mail_sends[KZ_SEND_RETRY]++;
            KZ_WARN("mail_retry", "user_id=%lld error=\"%s\" tries=%lld next_in_ms=%lld",
                    (long long)j->user_id, j->error, (long long)tries, (long long)delay);
        }
    }
    if (r != STORE_OK)
        KZ_ERROR("mail_record_failed", "error=\"%s\"", store_errmsg(st));
    mail_job_free(j);
    srv_commit_async(s);
    srv_notify_schedule(s, 0);
}

struct mail_due_ctx {
    struct srv *s;
    int64_t drop[64];
    size_t ndrop;
};

static void mail_due_one(void *arg, const struct store_mail_send *m)
{
    struct mail_due_ctx *d = arg;
    struct srv *s = d->s;
    struct srv_push *p = s->push;
    if (!m->live) { /* disabled, or the address changed: cut at once */
        if (d->ndrop < sizeof d->drop / sizeof d->drop[0])
            d->drop[d->ndrop++] = m->id;
        return;
    }
    struct mail_job *j = calloc(1, sizeof *j);
    if (!j)
        return;
    j->job.work = mail_work;
    j->job.done = mail_done;
    j->srv = s;
    j->cfg = s->cfg;
    j->id = m->id;
    j->user_id = m->user_id;
    j->tries = m->tries;
    j->created_at = m->created_at;
    j->notice = m->notice;
    j->to = strdup(m->to);
    j->subject = strdup(m->subject);
    j->body = strdup(m->body);
    if (!j->to || !j->subject || !j->body) {
        mail_job_free(j);
        return;
    }
    p->mail_inflight[p->nmail_inflight++] = m->id;
    if (!kz_workers_submit(p->mail_pool, &j->job)) {
        p->nmail_inflight--;
        mail_job_free(j);
    }
}

void srv_mail_tick(struct srv *s, int64_t *next)
{
    struct srv_push *p = s->push;
    *next = 0;
    if (!p || !p->mail_pool)
        return;
    size_t room = (size_t)s->cfg->mail_concurrency - p->nmail_inflight;
    if (room > 0) {
        struct mail_due_ctx d = {.s = s};
        if (store_mail_due(s->store, kz_now_ms(), (int)room, p->mail_inflight, p->nmail_inflight,
                           mail_due_one, &d) != STORE_OK)
            KZ_ERROR("mail_due_failed", "error=\"%s\"", store_errmsg(s->store));
        if (d.ndrop && !srv_writes_blocked(s) && store_tx_begin(s->store) == STORE_OK) {
            for (size_t i = 0; i < d.ndrop; i++)
                store_outbox_done(s->store, STORE_OUTBOX_MAIL, d.drop[i]);
            srv_commit_async(s);
            *next = kz_now_ms();
        }
    }
    int64_t at = 0;
    if (p->nmail_inflight < (size_t)s->cfg->mail_concurrency &&
        store_outbox_next_due(s->store, STORE_OUTBOX_MAIL, &at) == STORE_OK &&
        (!*next || at < *next))
        *next = at;
}

/* ---- the answer link ---- */

struct link_notice {
    int64_t withdrawn_at, expires_at, responded_at;
    bool is_recipient;
    cJSON *choices;
};

static int copy_link_notice(void *arg, const struct store_notice *n)
{
    struct link_notice *ln = arg;
    ln->withdrawn_at = n->withdrawn_at;
    ln->expires_at = n->expires_at;
    ln->responded_at = n->responded_at;
    ln->is_recipient = n->is_recipient;
    ln->choices = n->choices ? cJSON_Parse(n->choices) : NULL;
    return 1;
}

enum kz_err op_notice_answer_link(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    const char *token = srv_arg_str(c, "token");
    int64_t choice = srv_arg_int(c, "choice", 0);
    uint8_t raw[TOKEN_BYTES], hash[32];
    if (strlen(token) != TOKEN_CHARS || wp_b64u_decode(token, raw, sizeof raw) != 0)
        return srv_fail(c, KZ_NOT_FOUND, "this answer link is not valid");
    crypto_generichash(hash, sizeof hash, (const unsigned char *)token, TOKEN_CHARS, NULL, 0);
    struct store_answer_link link;
    enum store_rc r = store_answer_link_get(st, hash, &link);
    if (r == STORE_NOT_FOUND)
        return srv_fail(c, KZ_NOT_FOUND, "this answer link is not valid");
    if (r != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "link lookup failed");
    if (link.used_at)
        return srv_fail(c, KZ_CONFLICT, "this link was used already: your answer is recorded");
    int64_t now = kz_now_ms();
    if (now >= link.expires_at)
        return srv_fail(c, KZ_FORBIDDEN, "this link has expired: answer in Kizuna instead");
    struct store_user u;
    if (store_user_get(st, link.user_id, &u) != STORE_OK || u.disabled)
        return srv_fail(c, KZ_FORBIDDEN, "this account is disabled");
    struct link_notice ln = {0};
    r = store_notice_get(st, link.notice, link.user_id, copy_link_notice, &ln);
    enum kz_err e = KZ_OK;
    int n = cJSON_GetArraySize(ln.choices);
    if (r != STORE_OK || !ln.is_recipient)
        e = srv_fail(c, KZ_NOT_FOUND, "this answer link is not valid");
    else if (ln.withdrawn_at)
        e = srv_fail(c, KZ_CONFLICT, "the notice was withdrawn");
    else if (ln.expires_at && now >= ln.expires_at)
        e = srv_fail(c, KZ_CONFLICT, "the notice has expired");
    /* A reminder's mail brings a second link: whichever is used first answers, for good
     * (as does an answer in the app); changing it is done in Kizuna. */
    else if (ln.responded_at)
        e = srv_fail(c, KZ_CONFLICT, "you have answered already: your answer is recorded");
    else if (choice < 1 || choice > n)
        e = srv_fail(c, KZ_BAD_REQUEST, "not one of the choices");
    else if (srv_arg_bool(c, "preview", false)) {
        /* The link is good: say what its button would answer, record nothing. */
        c->result = cJSON_CreateObject();
        cJSON_AddBoolToObject(c->result, "preview", true);
        cJSON_AddStringToObject(c->result, "token", token);
        cJSON_AddNumberToObject(c->result, "choice", (double)(choice - 1));
        cJSON_AddStringToObject(c->result, "text",
                                cJSON_GetArrayItem(ln.choices, (int)choice - 1)->valuestring);
        cJSON_Delete(ln.choices);
        return KZ_OK;
    } else if ((r = store_answer_link_use(st, hash, choice - 1, now)) == STORE_CONFLICT)
        e = srv_fail(c, KZ_CONFLICT, "this link was used already: your answer is recorded");
    else if (r != STORE_OK ||
             store_notice_respond(st, link.notice, link.user_id, choice - 1, "", now) != STORE_OK)
        e = srv_fail(c, KZ_INTERNAL, "cannot record the answer");
    if (!e) {
        const char *text = cJSON_GetArrayItem(ln.choices, (int)choice - 1)->valuestring;
        c->result = cJSON_CreateObject();
        /* Not the title: a forwarded link answers, but shows nothing of the notice. */
        cJSON_AddNumberToObject(c->result, "notice", (double)link.notice);
        cJSON_AddNumberToObject(c->result, "choice", (double)(choice - 1));
        cJSON_AddStringToObject(c->result, "text", text);
        KZ_INFO("notice_answered_by_link", "login=%s notice=%lld choice=%lld", u.login,
                (long long)link.notice, (long long)choice - 1);
    }
    cJSON_Delete(ln.choices);
    return e;
}

/* Appends s with <, >, &, " escaped. */
static void put_html(struct notify_text *t, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<':
            notify_put(t, "&lt;");
            break;
        case '>':
            notify_put(t, "&gt;");
            break;
        case '&':
            notify_put(t, "&amp;");
            break;
        case '"':
            notify_put(t, "&quot;");
            break;
        default:
            notify_put(t, "%c", *s);
        }
    }
}

struct kz_frame *srv_answer_page(const struct kz_frame *reply)
{
    cJSON *j = cJSON_ParseWithLength((const char *)reply->data, reply->len);
    bool ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "ok"));
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
    const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(err, "message"));
    const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "text"));
    struct notify_text t = {0};
    notify_put(&t, "<!doctype html>\n<html lang=\"ja\"><head><meta charset=\"utf-8\">"
                   "<meta name=\"viewport\" content=\"width=device-width\">"
                   "<title>Kizuna</title></head><body>\n");
    const cJSON *token = cJSON_GetObjectItemCaseSensitive(j, "token");
    if (ok && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "preview")) &&
        cJSON_IsString(token)) {
        /* The token is base64url (checked by the op): safe in an attribute as it is. */
        notify_put(&t,
                   "<h1>回答の確認 / Confirm your answer</h1>\n<form method=\"post\" "
                   "action=\"/answer/%s?c=%d\"><p><button type=\"submit\"><strong>",
                   token->valuestring,
                   (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "choice")) + 1);
        put_html(&t, text ? text : "");
        notify_put(&t, "</strong> と回答する / Answer this</button></p></form>\n");
    } else if (ok) {
        notify_put(&t, "<h1>回答を受け付けました / Answer recorded</h1>\n<p><strong>");
        put_html(&t, text ? text : "");
        notify_put(&t, "</strong></p>\n");
    } else {
        notify_put(&t, "<h1>回答できませんでした / Not recorded</h1>\n<p>");
        put_html(&t, msg ? msg : "this answer link did not work");
        notify_put(&t, "</p>\n");
    }
    notify_put(&t, "</body></html>\n");
    cJSON_Delete(j);
    struct kz_frame *f = t.bad ? NULL : kz_frame_from_text(t.s, t.n, reply->http_status);
    free(t.s);
    return f;
}

/* ---- what admins see of the outbox ---- */

static void failure_row(void *arg, const struct store_mail_failure *f)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)f->id);
    cJSON_AddStringToObject(o, "login", f->login);
    cJSON_AddStringToObject(o, "to", f->to);
    cJSON_AddStringToObject(o, "subject", f->subject);
    cJSON_AddNumberToObject(o, "tries", (double)f->tries);
    cJSON_AddStringToObject(o, "error", f->error);
    cJSON_AddNumberToObject(o, "created_at", (double)f->created_at);
    cJSON_AddItemToArray(arg, o);
}

enum kz_err op_mail_status(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    int64_t pending = 0, failed = 0;
    c->result = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(c->result, "failed");
    if (store_outbox_counts(st, STORE_OUTBOX_MAIL, &pending, &failed) != STORE_OK ||
        store_mail_failures(st, srv_arg_int(c, "limit", 100), failure_row, list) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot read the mail outbox");
    cJSON_AddBoolToObject(c->result, "enabled", c->srv->push && c->srv->push->mail_pool);
    cJSON_AddNumberToObject(c->result, "pending", (double)pending);
    cJSON_AddNumberToObject(c->result, "failed_total", (double)failed);
    return KZ_OK;
}
