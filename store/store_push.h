/* store_push.h - the tables of what reaches people who are not looking (migration 21): Web
 * Push's VAPID key pair, browsers' subscriptions and the push outbox (store_push.c); e-mail's
 * outbox and roll-calls' one-tap answer links (store_mail.c). Same rules as store.h: loop thread
 * only, writes inside the open transaction (store_tx_begin), results copied into the caller's
 * structs (the caller owns them). */
#ifndef KIZUNA_STORE_PUSH_H
#define KIZUNA_STORE_PUSH_H

#include "store.h"

#define STORE_PUSH_ENDPOINT_MAX 2048 /* bytes; push_endpoint_max_bytes may lower it */
#define STORE_PUSH_KIND_MAX     15

/* The VAPID key pair: STORE_NOT_FOUND if never made. */
enum store_rc store_push_vapid_get(struct store *st, uint8_t priv[32], uint8_t pub[65]);
/* Keeps the pair unless one is already there (then *made is false and the old one stays). */
enum store_rc store_push_vapid_init(struct store *st, const uint8_t priv[32], const uint8_t pub[65],
                                    int64_t now, bool *made);

/* Subscribes a browser (endpoint) for user_id's session: a known endpoint moves to it with its
 * new keys. STORE_CONFLICT if the user already has max other subscriptions. */
enum store_rc store_push_sub_put(struct store *st, int64_t user_id, int64_t session_id,
                                 const char *endpoint, const uint8_t p256dh[65],
                                 const uint8_t auth[16], int64_t max, int64_t now, int64_t *id);
/* Removes user_id's subscription of endpoint and what waits for it (STORE_NOT_FOUND: none). */
enum store_rc store_push_sub_remove(struct store *st, int64_t user_id, const char *endpoint);
/* Removes one subscription (the push service said it is gone) and what waits for it. */
enum store_rc store_push_sub_delete(struct store *st, int64_t sub);
/* A user's live subscriptions (those of live sessions). */
enum store_rc store_push_sub_count(struct store *st, int64_t user_id, int64_t *n);

/* Queues one send per live subscription of each recipient of notice (its author excluded),
 * due at next_at, for those who take pushes of kind (their notify_prefs, else dflt). *n is how
 * many. The other queue functions choose recipients by kind and dflt the same way. */
enum store_rc store_push_queue_notice(struct store *st, int64_t notice, const char *kind, bool dflt,
                                      const char *payload, const char *urgency, int64_t ttl_s,
                                      int64_t next_at, int64_t now, int64_t *n);
/* Queues one send per live subscription of each recipient of notice whose reminded_at is
 * reminded_at (those store_notice_remind marked then). */
enum store_rc store_push_queue_reminder(struct store *st, int64_t notice, int64_t reminded_at,
                                        const char *kind, bool dflt, const char *payload,
                                        const char *urgency, int64_t ttl_s, int64_t next_at,
                                        int64_t now, int64_t *n);
/* Queues one send per live subscription of user_id. */
enum store_rc store_push_queue_user(struct store *st, int64_t user_id, const char *kind, bool dflt,
                                    const char *payload, const char *urgency, int64_t ttl_s,
                                    int64_t next_at, int64_t now, int64_t *n);

/* Queues one send per live subscription of each present member of room but except, about the
 * event at pos (a member whose read position reaches it before it leaves gets none). */
enum store_rc store_push_queue_room(struct store *st, int64_t room, int64_t pos, int64_t except,
                                    const char *kind, bool dflt, const char *payload,
                                    const char *urgency, int64_t ttl_s, int64_t next_at,
                                    int64_t now, int64_t *n);

/* One due send with what it needs; `live` is false when its subscription, session or user is
 * gone (the caller deletes it), `seen` when the notice it is about was read meanwhile (for a
 * reminder: done as the notice asks, answered or acknowledged or read, or withdrawn). */
struct store_push_send {
    int64_t id, sub, user_id, notice, ttl, tries, created_at;
    char kind[STORE_PUSH_KIND_MAX + 1];
    char urgency[16];
    char endpoint[STORE_PUSH_ENDPOINT_MAX + 1];
    uint8_t p256dh[65], auth[16];
    char payload[1024];
    bool live, seen;
    int quiet_start, quiet_end; /* the user's quiet hours, minutes of the day (-1: none) */
};
/* Calls fn for each send due at now (oldest first, at most limit), skipping the ids in
 * skip[nskip] (in flight). fn's struct is valid during the call only. */
enum store_rc store_push_due(struct store *st, int64_t now, int limit, const int64_t *skip,
                             size_t nskip, void (*fn)(void *, const struct store_push_send *),
                             void *arg);
/* The earliest next_at of any send (STORE_NOT_FOUND: none waits). */
enum store_rc store_push_next_due(struct store *st, int64_t *at);
enum store_rc store_push_sent(struct store *st, int64_t id);
enum store_rc store_push_retry(struct store *st, int64_t id, int64_t tries, int64_t next_at,
                               const char *error);
/* Moves a send to next_at (quiet hours). */
enum store_rc store_push_defer(struct store *st, int64_t id, int64_t next_at);
/* A user's quiet hours (start < 0 clears them); STORE_NOT_FOUND from get if none. */
enum store_rc store_push_quiet_set(struct store *st, int64_t user_id, int start, int end);
enum store_rc store_push_quiet_get(struct store *st, int64_t user_id, int *start, int *end);
/* Sends waiting (the push outbox's length). */
enum store_rc store_push_pending(struct store *st, int64_t *n);

/* A person's choice of channels for a kind of notification (STORE_NOT_FOUND from get: none
 * made, the kind's default applies), and whether their pushes may carry message previews. */
enum store_rc store_notify_pref_set(struct store *st, int64_t user_id, const char *kind, bool push,
                                    bool email);
enum store_rc store_notify_pref_get(struct store *st, int64_t user_id, const char *kind, bool *push,
                                    bool *email);
enum store_rc store_notify_previews_set(struct store *st, int64_t user_id, bool previews);
enum store_rc store_notify_previews_get(struct store *st, int64_t user_id, bool *previews);

/* ---- e-mail (store_mail.c) ---- */
/* Calls fn for each recipient of notice with an e-mail address whose account is enabled and
 * who takes e-mail of kind (their notify_prefs, else dflt); with reminded_at (not 0), only
 * those store_notice_remind marked then. */
enum store_rc store_mail_recipients(
    struct store *st, int64_t notice, int64_t reminded_at, const char *kind, bool dflt,
    void (*fn)(void *, int64_t user_id, const char *email, const char *name), void *arg);
enum store_rc store_mail_queue(struct store *st, int64_t user_id, const char *to,
                               const char *subject, const char *body, int64_t notice,
                               int64_t next_at, int64_t now);
/* One due message; `live` is false when its user was disabled or their address changed (the
 * caller drops it). Strings valid during fn only. */
struct store_mail_send {
    int64_t id, user_id, tries, created_at, notice;
    const char *to, *subject, *body;
    bool live;
};
enum store_rc store_mail_due(struct store *st, int64_t now, int limit, const int64_t *skip,
                             size_t nskip, void (*fn)(void *, const struct store_mail_send *),
                             void *arg);
enum store_rc store_mail_next_due(struct store *st, int64_t *at);
enum store_rc store_mail_sent(struct store *st, int64_t id);
enum store_rc store_mail_retry(struct store *st, int64_t id, int64_t tries, int64_t next_at,
                               const char *error);
/* Keeps the message as failed (the relay refused it for good), for admins to see. */
enum store_rc store_mail_fail(struct store *st, int64_t id, int64_t tries, const char *error);
/* Failed messages, newest first, at most limit (strings valid during fn only). */
struct store_mail_failure {
    int64_t id, tries, created_at;
    const char *login, *to, *subject, *error;
};
enum store_rc store_mail_failures(struct store *st, int64_t limit,
                                  void (*fn)(void *, const struct store_mail_failure *), void *arg);
/* Messages by state: pending and failed. */
enum store_rc store_mail_counts(struct store *st, int64_t *pending, int64_t *failed);

/* The daily digest (mail_digest.c): up to limit people with an address, an enabled account,
 * digest e-mail on (notify_prefs, else dflt) and no digest done for day yet, by user id; fn
 * gets each with their must-read notices not done as asked (not withdrawn, not expired at now),
 * newest first, at most max_notices of them (total: how many there are), none when nothing
 * waits. Strings valid during fn only. */
struct store_digest_item {
    int64_t notice;
    const char *title;
    bool urgent, rollcall;
};
struct store_digest_person {
    int64_t user_id;
    const char *email, *name;
    const struct store_digest_item *items;
    size_t nitems;
    int64_t total;
};
enum store_rc store_mail_digest_due(struct store *st, const char *day, int64_t now, bool dflt,
                                    int64_t limit, int64_t max_notices,
                                    void (*fn)(void *, const struct store_digest_person *),
                                    void *arg);
/* Records that user_id's digest for day is done (sent, or nothing to send). */
enum store_rc store_mail_digest_done(struct store *st, int64_t user_id, const char *day);

/* Notes that a recipient of notice was reached through channel ("push" or "email"). */
enum store_rc store_reach_add(struct store *st, int64_t notice, int64_t user_id,
                              const char *channel, int64_t now);
/* Recipients of notice reached by push, by e-mail, and by nothing at all (neither, and not
 * read in the app). */
enum store_rc store_reach_counts(struct store *st, int64_t notice, int64_t *push, int64_t *email,
                                 int64_t *none);
/* Up to limit of those reached by nothing, by login. */
enum store_rc store_reach_none(struct store *st, int64_t notice, int64_t limit,
                               void (*fn)(void *, const char *login, const char *name,
                                          const char *department),
                               void *arg);

/* A roll-call's answer link for one person (hash: of the token in the mail). */
enum store_rc store_answer_link_add(struct store *st, const uint8_t hash[32], int64_t notice,
                                    int64_t user_id, int64_t expires_at);
struct store_answer_link {
    int64_t notice, user_id, expires_at, used_at;
};
enum store_rc store_answer_link_get(struct store *st, const uint8_t hash[32],
                                    struct store_answer_link *out);
/* Marks it used (only if it was not): STORE_CONFLICT if it already was. */
enum store_rc store_answer_link_use(struct store *st, const uint8_t hash[32], int64_t choice,
                                    int64_t now);

#endif
