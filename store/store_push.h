/* store_push.h - the tables of what reaches people who are not looking (migrations 21, 24): Web
 * Push's VAPID key pair, browsers' subscriptions and the push outbox (store_push.c); e-mail's
 * outbox and roll-calls' one-tap answer links (store_mail.c); the outgoing webhook's outbox
 * (store_webhook.c); what the mail and webhook outboxes share (store_outbox.c). Same rules as
 * store.h: loop thread only, writes inside the open transaction (store_tx_begin), results copied
 * into the caller's structs (the caller owns them). */
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
/* Queues one send per live subscription of user_id (about notice, if not 0: read elsewhere
 * before it leaves, it does not). */
enum store_rc store_push_queue_user(struct store *st, int64_t user_id, const char *kind, bool dflt,
                                    int64_t notice, const char *payload, const char *urgency,
                                    int64_t ttl_s, int64_t next_at, int64_t now, int64_t *n);
/* Calls fn with each recipient of notice (reminded_at, if not 0: each that store_notice_remind
 * marked then) who has a live subscription and takes pushes of kind (the queue functions'
 * rule). */
enum store_rc store_push_notice_users(struct store *st, int64_t notice, int64_t reminded_at,
                                      const char *kind, bool dflt,
                                      void (*fn)(void *, int64_t user_id), void *arg);

/* A push about the event at pos in room: to each live subscription of its present members but
 * except (its sender), or only of those named in logins, or only of those who watch the room;
 * a member whose read position reaches pos before it leaves gets none (store_push_due). */
struct store_push_room_q {
    int64_t room, pos, except;
    const char *kind; /* the recipients' notify_prefs decide, else dflt */
    bool dflt;
    const char *payload; /* for everyone ... */
    const char *preview; /* ... but those who turned previews on (NULL: payload for all) */
    const char *logins;  /* a JSON array of this server's logins (mentions); NULL: all members */
    bool watchers;       /* only members who watch the room (room_watch) */
    const char *urgency;
    int64_t ttl_s, next_at, now;
};
enum store_rc store_push_queue_room(struct store *st, const struct store_push_room_q *q,
                                    int64_t *n);
/* Whether user_id watches room (pushes of its photos, migration 26). */
enum store_rc store_room_watch_set(struct store *st, int64_t room, int64_t user_id, bool watch);
enum store_rc store_room_watched(struct store *st, int64_t room, int64_t user_id, bool *watched);

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
/* ---- the outboxes of e-mail and the webhook (store_outbox.c) ---- */
/* A row waits ('pending') until next_at, is delivered (deleted), tried again later, or kept as
 * 'failed' for admins. */
enum store_outbox { STORE_OUTBOX_MAIL, STORE_OUTBOX_WEBHOOK };
/* The earliest next_at of a pending row (STORE_NOT_FOUND: none waits). */
enum store_rc store_outbox_next_due(struct store *st, enum store_outbox box, int64_t *at);
/* Delivered (or no longer wanted): the row goes. */
enum store_rc store_outbox_done(struct store *st, enum store_outbox box, int64_t id);
enum store_rc store_outbox_retry(struct store *st, enum store_outbox box, int64_t id, int64_t tries,
                                 int64_t next_at, const char *error);
/* Kept as failed (refused for good, or out of tries), for admins to see. */
enum store_rc store_outbox_fail(struct store *st, enum store_outbox box, int64_t id, int64_t tries,
                                const char *error);
/* Rows by state: pending and failed. */
enum store_rc store_outbox_counts(struct store *st, enum store_outbox box, int64_t *pending,
                                  int64_t *failed);

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
/* Failed messages, newest first, at most limit (strings valid during fn only). */
struct store_mail_failure {
    int64_t id, tries, created_at;
    const char *login, *to, *subject, *error;
};
enum store_rc store_mail_failures(struct store *st, int64_t limit,
                                  void (*fn)(void *, const struct store_mail_failure *), void *arg);
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

/* Each recipient of notice (at most limit, by department and login) and how they were reached:
 * when a push service and the relay first took something for them (0: never), when they read
 * it in the app, and how they answered ("email" or "push": a one-tap link; "app"; NULL: not).
 * Strings valid during fn only. */
struct store_reach_person {
    const char *login, *name, *department, *answered_by;
    int64_t push_at, email_at, read_at, answered_at;
};
enum store_rc store_reach_people(struct store *st, int64_t notice, int64_t limit,
                                 void (*fn)(void *, const struct store_reach_person *), void *arg);

/* ---- the outgoing webhook (store_webhook.c) ---- */
#define STORE_WEBHOOK_ID_MAX   32 /* a delivery id: 32 hex digits */
#define STORE_WEBHOOK_KIND_MAX 15
/* Queues one delivery of body, the JSON every try sends alike (only its signature, made at each
 * try, differs), due at next_at. notice may be 0. */
enum store_rc store_webhook_queue(struct store *st, const char *delivery, const char *kind,
                                  int64_t notice, const char *body, int64_t next_at, int64_t now);
/* One due delivery; strings valid during fn only. */
struct store_webhook_send {
    int64_t id, tries, created_at;
    const char *delivery, *kind, *body;
};
/* Calls fn for each pending delivery due at now (oldest first, at most limit), skipping the
 * ids in skip[nskip] (in flight). */
enum store_rc store_webhook_due(struct store *st, int64_t now, int limit, const int64_t *skip,
                                size_t nskip, void (*fn)(void *, const struct store_webhook_send *),
                                void *arg);
/* Failed deliveries, newest first, at most limit (strings valid during fn only). */
struct store_webhook_failure {
    int64_t id, notice, tries, created_at;
    const char *delivery, *kind, *error;
};
enum store_rc store_webhook_failures(struct store *st, int64_t limit,
                                     void (*fn)(void *, const struct store_webhook_failure *),
                                     void *arg);
/* The people a delivery names (webhook_recipients): one call of fn per enabled local account,
 * by login. Of a notice: its recipients; of a room: its present members but except. */
struct store_webhook_person {
    const char *login, *name, *department, *phone, *email;
};
enum store_rc store_webhook_notice_people(struct store *st, int64_t notice,
                                          void (*fn)(void *, const struct store_webhook_person *),
                                          void *arg);
enum store_rc store_webhook_room_people(struct store *st, int64_t room, int64_t except,
                                        void (*fn)(void *, const struct store_webhook_person *),
                                        void *arg);

/* A roll-call's answer link for one person (hash: of the token in the mail or push; channel:
 * "email" or "push", which way it went out). */
enum store_rc store_answer_link_add(struct store *st, const uint8_t hash[32], int64_t notice,
                                    int64_t user_id, int64_t expires_at, const char *channel);
struct store_answer_link {
    int64_t notice, user_id, expires_at, used_at;
};
enum store_rc store_answer_link_get(struct store *st, const uint8_t hash[32],
                                    struct store_answer_link *out);
/* Marks it used (only if it was not): STORE_CONFLICT if it already was. */
enum store_rc store_answer_link_use(struct store *st, const uint8_t hash[32], int64_t choice,
                                    int64_t now);

#endif
