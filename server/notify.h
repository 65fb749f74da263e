/* notify.h - what push.c, mail.c, mail_digest.c and webhook.c share: the state of the senders
 * that reach people who are not looking (Web Push, e-mail and the outgoing webhook), and the one
 * timer they all run on. Included by those files only; everyone else uses server.h's
 * srv_push_*, srv_mail_* and srv_webhook_*. */
#ifndef KIZUNA_NOTIFY_H
#define KIZUNA_NOTIFY_H

#include "core.h"
#include "webpush.h"

struct srv_push {
    struct kz_workers *pool; /* NULL: no push sender (push_subject unset, or tests) */
    uint8_t priv[WP_PRIV_LEN], pub[WP_PUB_LEN];
    bool have_key;
    struct wp_vapid *vapid; /* signs for the push pool's workers (NULL: no push sender) */
    int64_t *inflight;      /* push outbox ids handed to the pool, at most push_concurrency */
    size_t ninflight;
    struct kz_workers *mail_pool; /* NULL: no mail sender (smtp_host unset, or tests) */
    int64_t *mail_inflight;       /* mail outbox ids handed to mail_pool */
    size_t nmail_inflight;
    struct kz_workers *hook_pool; /* NULL: no webhook (webhook_url unset, or tests) */
    int64_t *hook_inflight;       /* webhook outbox ids handed to hook_pool */
    size_t nhook_inflight;
    uint8_t hook_secret[256]; /* webhook_secret, or webhook_secret_file's text */
    size_t hook_secret_len;
    int64_t timer_at;     /* ms: when the timer is set to fire (0: not set) */
    char digest_done[16]; /* the day (YYYY-MM-DD) whose digests are all written, as last seen */
    bool stopping;        /* srv_push_free: finished jobs schedule nothing more */
    bool curl_up;         /* curl_global_init was called */
    int64_t push_sent, push_failed, push_gone; /* since start, for the logs and metrics */
};

/* The senders' state, made at first use (NULL if out of memory). */
struct srv_push *srv_notify_state(struct srv *s);
/* Makes the senders' timer fire within delay_ms (an earlier setting stays). */
void srv_notify_schedule(struct srv *s, int64_t delay_ms);
/* mail.c: hands due mail to its pool; the next due time in *next (0: none waits). */
void srv_mail_tick(struct srv *s, int64_t *next);
/* mail.c: a one-tap answer link for user_id to notice, valid until expires, going out by
 * channel ("email" or "push"): its token (base64url) in token; only its hash is stored. 0 on
 * success. */
#define SRV_ANSWER_TOKEN_CHARS 43
int srv_answer_link_new(struct store *st, int64_t notice, int64_t user_id, int64_t expires,
                        const char *channel, char token[SRV_ANSWER_TOKEN_CHARS + 1]);
/* When answer links made now expire: mail_answer_link_ttl_s from now, or the notice's own
 * expiry (notice_expires, 0: none) if sooner. */
int64_t srv_answer_link_expiry(const struct kz_config *cfg, int64_t now, int64_t notice_expires);
/* The calling sender thread's own curl handle (a CURL *), reset to default options, its open
 * connections kept for the next post; NULL if out of memory. The thread owns it: it is cleaned
 * up when the thread ends, and must not be cleaned up by the caller. */
void *srv_notify_curl(void);
/* webhook.c: hands due deliveries to its pool; the next due time in *next (0: none waits). */
void srv_webhook_tick(struct srv *s, int64_t *next);
/* webhook.c: with webhook_url set, reads the secret and starts the webhook's threads; -1 with
 * why in err. srv_webhook_stop ends them (deliveries in progress finish) and forgets the
 * secret. */
int srv_webhook_start(struct srv *s, void (*wake)(void *), void *wake_arg, char *err,
                      size_t errlen);
void srv_webhook_stop(struct srv_push *p);
/* mail_digest.c: writes the daily digests when they are due (a batch per call); when to call
 * again in *next (0: never, no digest is set). */
void srv_mail_digest_tick(struct srv *s, int64_t *next);

/* A growing text buffer (mail.c, mail_digest.c); on failure `bad` is set and appends do
 * nothing. The caller frees s. */
struct notify_text {
    char *s;
    size_t n, cap;
    bool bad;
};
void notify_put(struct notify_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A sender's job for outbox row id finished: the row leaves its in-flight list ids[*n]. */
void srv_notify_inflight_drop(int64_t *ids, size_t *n, int64_t id);
/* Doubling delay for try number tries (1-based), capped. */
int64_t srv_notify_backoff(int64_t base_ms, int64_t max_ms, int64_t tries);

#endif
