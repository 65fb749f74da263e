/* server.h - the kizunad core: configuration, logging, the protocol's command table and the
 * ops behind it. Nothing here touches struct lws: transport.c adapts WebSocket and HTTP to
 * struct srv_call and back, so every op can be unit-tested without an event loop.
 */
#ifndef KIZUNA_SERVER_H
#define KIZUNA_SERVER_H

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "store.h"
#include "store_fed.h"

#define KZ_VERSION "0.1.0"
/* Positions and other integers in JSON stay exact up to 2^53 - 1. */
#define KZ_POS_MAX 9007199254740991LL

/* ---- errors (proto.c): one enum, mapped one-to-one to the protocol's stable string codes ---- */
enum kz_err {
    KZ_OK = 0,
    KZ_BAD_REQUEST,
    KZ_UNAUTHORIZED,
    KZ_FORBIDDEN,
    KZ_NOT_FOUND,
    KZ_CONFLICT,
    KZ_TOO_LARGE,
    KZ_RATE_LIMITED,
    KZ_INTERNAL,
    KZ_UNAVAILABLE, /* the server cannot write now (disk full, read-only): retry later */
};
const char *kz_err_code(enum kz_err e);
int kz_err_http_status(enum kz_err e);

/* ---- configuration (config.c): a table over cJSON, as Redis does ---- */
enum kz_log_level { KZ_LOG_ERROR, KZ_LOG_WARN, KZ_LOG_INFO, KZ_LOG_DEBUG };

#define WP_SUBJECT_CAP 257 /* webpush.h's WP_SUB_MAX + 1 */
struct kz_config {
    char listen[128];        /* HOST:PORT; port 0 picks a free port */
    char tls_cert_file[512]; /* PEM certificate (chain) to serve TLS with; "" serves plain */
    char tls_key_file[512];  /* its PEM private key */
    long long log_level;
    long long sqlite_synchronous_full;
    long long sqlite_busy_timeout_ms;
    long long sqlite_cache_kib;
    long long sync_thread;
    long long wal_checkpoint_frames;
    long long checkpoint_events; /* sign a log's event at least every this many (event_log.c) */
    long long checkpoint_bytes;  /* ... and every this many bytes of its payloads */
    long long max_connections;
    long long max_connections_per_address; /* open connections (any kind) from one address */
    long long fd_reserve; /* descriptors kept free of connections (database, files, logs) */
    long long requests_per_second;  /* per WebSocket connection, and per address over HTTP */
    long long request_burst;        /* requests allowed at once before the rate applies */
    long long ws_login_timeout_s;   /* a WebSocket that has not logged in by then is closed */
    long long http_timeout_s;       /* a client that stalls mid-request (slow-loris) is closed */
    long long http_min_bytes_per_s; /* slowest body or reply that is not a stall */
    long long disk_retry_ms;        /* after a disk error, writes are refused this long */
    long long max_frame_bytes;      /* one WebSocket request or one HTTP request body */
    long long max_message_bytes;    /* the text of one talk message */
    long long max_queue_bytes;      /* unsent bytes per connection before it is dropped */
    long long socket_sndbuf_bytes;  /* kernel send buffer per WebSocket (0: the kernel's own) */
    long long ws_rx_chunk_bytes;    /* receive buffer per WebSocket connection */
    long long hash_workers;
    long long hash_queue_max; /* password hashes waiting for a worker */
    long long argon2_opslimit;
    long long argon2_memlimit_kib;
    long long password_min_length;
    long long session_touch_interval_s;
    long long login_fail_max;             /* failed logins per account within the window ... */
    long long login_fail_max_per_address; /* ... and per client address ... */
    long long login_fail_window_s;
    long long login_lockout_s;         /* ... before logins are refused for this long */
    long long shared_session_idle_s;   /* a shared (loaner) device's session ends when idle */
    long long housekeeping_interval_s; /* how often expiries and idle sessions are swept */
    long long invite_max_uses;
    long long invite_max_valid_days;
    long long blob_max_bytes;      /* one encrypted blob (a photo) */
    long long upload_quota_bytes;  /* blobs and open uploads per user */
    long long upload_expiry_hours; /* an unfinished upload is dropped after this */
    long long e2ee_max_bytes;      /* the data of one end-to-end encrypted event */
    long long shutdown_grace_ms;
    /* GET /readyz (health.c): free bytes the data directory's disk must keep, and how long the
     * database may go without a commit before readyz proves it writable with one of its own. */
    long long ready_min_free_bytes;
    long long ready_write_probe_s;
    /* GET /metrics (http_metrics.c): "" serves it to loopback clients only, else to requests
     * that carry it as a bearer token. A secret: never logged. */
    char metrics_token[128];
    long long backup_alarm_hours; /* admin.status: a last backup older than this is an alarm */
    char server_id[64];           /* this server's id, stored at init; serve refuses another */
    long long peer_max_addresses; /* addresses of one peer server (peer.add) */
    long long peers_max;          /* peer servers pinned */
    /* Federation (fed_peers.c, fed_link.c): its own listener ("" = off), TLS and bounds. */
    char federation_listen[128];
    char federation_tls_cert_file[512];
    char federation_tls_key_file[512];
    long long federation_max_frame_bytes;
    long long federation_handshake_timeout_s;
    long long federation_ping_s;
    long long federation_hangup_s;
    long long federation_queue_bytes; /* unsent bytes per link before fed_send refuses */
    /* Replication (fed_sync.c): events per batch, bytes sent to a peer and not yet acknowledged,
     * and how often a link's summary is sent again when the peer is in touch. */
    long long federation_batch_events;
    long long federation_unacked_bytes;
    long long federation_summary_s;
    long long federation_pending_bytes; /* batches that arrived early, waiting (fed_sync.c) */
    /* A local user's read key in a shared room is published (room.read) at most this often. */
    long long federation_read_publish_ms;
    /* Blobs across servers (fed_blobs.c): bytes per blob.get, and blob bytes per second one
     * link may carry either way (0: no cap). */
    long long federation_blob_chunk_bytes;
    long long federation_blob_bytes_per_s;
    long long federation_blob_staging_bytes; /* all partial fetched blobs together */
    long long sync_page_max;
    long long history_page_max;
    long long read_push_interval_ms;
    long long room_max_members;
    long long notice_max_body_bytes;
    /* An op that holds the event loop this long is logged; client addresses whose HTTP rates,
     * and accounts and addresses whose failed logins, are kept; users in one import file. */
    long long slow_op_ms;
    long long http_peers_max;
    long long login_fail_tracked_max;
    long long import_max_rows;
    char notice_announce_room[64]; /* room id where notices are announced by default */
    char time_zone[64]; /* tzdata zone of every time people read (CSV, CLI), e.g. Asia/Tokyo */
    /* The web client (http_static.c): the directory served at / ("" = the built-in default,
     * kz_web_root_default) and the origin browsers reach the server at behind a proxy. */
    char web_root[512];
    char public_origin[256];
    char record_time_zone[64]; /* zone of the record's times (record.h's table, no tzdata) */
    /* Not a setting: the zone's POSIX rule ("JST-9"), filled by kz_time_zone_load at start and
     * sent to clients, which then need no tzdata of their own. */
    char time_zone_posix[64];
    /* Web Push (push.c, docs/notifications.md). */
    char push_subject[WP_SUBJECT_CAP]; /* VAPID sub: mailto: or https: of the administrator */
    long long push_concurrency;        /* posts to push services at once (its threads) */
    long long push_connect_timeout_ms;
    long long push_timeout_ms;
    long long push_retry_base_ms; /* first retry's delay, doubling each time */
    long long push_retry_max_ms;
    long long push_retry_max_tries;
    long long push_ttl_urgent_s; /* TTL of urgent notices and roll-calls at the push service */
    long long push_ttl_s;        /* TTL of other pushes */
    long long push_coalesce_ms;  /* a push waits this long: read elsewhere meanwhile, none */
    long long push_subs_per_user_max;
    long long push_mentions_max;  /* people one message's @login mentions may push */
    long long push_preview_bytes; /* text a preview push carries, cut at a character's start */
    long long push_endpoint_max_bytes;
    long long push_allow_private_endpoints; /* endpoints on loopback/private addresses (tests) */
    /* E-mail through the town's relay (mail.c, docs/notifications.md). */
    char smtp_host[256]; /* "" = no e-mail */
    long long smtp_port;
    char smtp_security[16]; /* starttls, tls or none */
    char smtp_user[256];
    char smtp_password[256];
    char smtp_from[256];
    long long smtp_connect_timeout_ms;
    long long smtp_timeout_ms;
    long long mail_concurrency;
    long long mail_retry_base_ms;
    long long mail_retry_max_ms;
    long long mail_retry_max_tries;
    long long mail_answer_link_ttl_s;
    long long mail_answer_confirm; /* 1: GET /answer/ shows a button, POST answers */
    /* The outgoing webhook (webhook.c, docs/notifications.md). */
    char webhook_url[1024]; /* "" = no webhook */
    char webhook_secret[256];
    char webhook_secret_file[512];
    char webhook_kinds[128];      /* notice rollcall reminder hotline, separated by spaces */
    long long webhook_recipients; /* deliveries list the recipients (personal data) */
    long long webhook_text;       /* deliveries carry the notice's body, the report's text */
    long long webhook_concurrency;
    long long webhook_connect_timeout_ms;
    long long webhook_timeout_ms;
    long long webhook_retry_base_ms;
    long long webhook_retry_max_ms;
    long long webhook_retry_max_tries;
    char mail_digest_at[8];                 /* HH:MM in time_zone of the daily digest ("" = none) */
    long long mail_digest_max_notices;      /* notices listed in one digest */
    long long mail_digest_batch;            /* people whose digest one turn of the loop writes */
    long long notice_remind_min_interval_s; /* a notice's reminders at most this often */
    /* JMA's feeds and the roll-calls they start (jma_watch.c, jma_alert.c, docs/alerts.md). */
    char jma_feeds[1024]; /* Atom feed URLs, separated by spaces */
    long long jma_poll_s;
    long long jma_fetch_timeout_s;
    long long jma_backoff_max_s;
    long long jma_max_doc_bytes;
    long long jma_max_depth;
    long long jma_max_items;
    char jma_towns[512];            /* 7-digit JMA municipality codes, separated by spaces */
    char jma_town_min_int[8];       /* "5-": intensity code at or over which a town triggers */
    char jma_pref_min_int[8];       /* "6-": the same anywhere in a town's prefecture ("": off) */
    char jma_tsunami_areas[256];    /* tsunami forecast region codes (津波予報区) */
    long long jma_special_warnings; /* 特別警報 in a town triggers */
    long long jma_delay_s;
    long long jma_aftershock_window_s;
    long long jma_max_age_s;
    long long jma_drill;
    char jma_author[64];    /* login of the account that posts the roll-call */
    char jma_hq_room[64];   /* room id where alerts appear at once */
    char jma_audience[256]; /* notice.post's `to`, separated by spaces */
    char jma_title[256];
    char jma_body[2048];
    char jma_choices[512]; /* separated by | */
    long long jma_urgent;
    long long jma_ask_ack;
};

/* Fills cfg with every default. */
void kz_config_defaults(struct kz_config *cfg);
/* Applies a JSON object of settings; unknown keys, wrong types and out-of-range values are
 * errors (message in err) and leave cfg partially applied: callers exit on failure. */
int kz_config_apply_json(struct kz_config *cfg, const char *json, char *err, size_t errlen);
int kz_config_load_file(struct kz_config *cfg, const char *path, char *err, size_t errlen);
/* `kizunad check-config`: applies every setting of json it can to cfg and writes one line per
 * problem to out (each names the setting, the value given and what is allowed; a JSON syntax
 * error its line and column), going on after each. Returns the number of problems. */
int kz_config_check_json(struct kz_config *cfg, const char *json, FILE *out);
/* Applies one "name=value" override from the command line. */
int kz_config_set(struct kz_config *cfg, const char *assignment, char *err, size_t errlen);
/* SIGHUP: copies into live the settings of fresh that may change while serving (limits read
 * at each use on the loop thread, the log level), and writes what changed into changed
 * ("name=old->new ...", string values withheld) and the names of other settings that differ
 * and need a restart into restart. Loop thread only. Returns how many settings changed. */
int kz_config_reload(struct kz_config *live, const struct kz_config *fresh, char *changed, size_t n,
                     char *restart, size_t rn);
/* Whether setting name is one kz_config_reload changes. */
bool kz_config_reloadable(const char *name);
/* Prints every setting with its default, bounds and meaning (for docs and `kizunad config`). */
void kz_config_describe(FILE *out);
/* Settings that cap what a request may carry (room_max_members, max_message_bytes, ...) are the
 * one source of those limits: the command table's caps name them (struct srv_op's caps), and
 * a handler that checks one itself uses the same words (srv_fail_cap). Gives the value of
 * setting `name` in cfg and, if why is not NULL, how a request over it is refused ("a room may
 * have at most 5000 members"). false if name is no setting that caps requests. */
bool kz_config_cap(const struct kz_config *cfg, const char *name, long long *value, char *why,
                   size_t n);

/* ---- logging (log.c): one logfmt line per event on stderr, "ts=… level=… component=…
 * event=… req=… key=value…", with journald's <N> priority prefix under systemd ---- */
void kz_log_set_level(int level);
int kz_log_level_parse(const char *name); /* -1 if unknown */
/* file names the component (the caller's __FILE__; NULL: "kizunad"); fmt writes key=value
 * fields. */
void kz_log_at(int level, const char *file, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define kz_log(level, ev, ...) kz_log_at(level, __FILE__, ev, __VA_ARGS__)
#define KZ_ERROR(ev, ...)      kz_log_at(KZ_LOG_ERROR, __FILE__, ev, __VA_ARGS__)
#define KZ_WARN(ev, ...)       kz_log_at(KZ_LOG_WARN, __FILE__, ev, __VA_ARGS__)
#define KZ_INFO(ev, ...)       kz_log_at(KZ_LOG_INFO, __FILE__, ev, __VA_ARGS__)
#define KZ_DEBUG(ev, ...)      kz_log_at(KZ_LOG_DEBUG, __FILE__, ev, __VA_ARGS__)
/* The request the loop thread is serving (0: none): every line logged meanwhile carries it as
 * req=… (proto.c sets it around each request's dispatch and its deferred completion). */
void kz_log_request(uint64_t id);
uint64_t kz_log_request_current(void);
/* The newest error lines (admin.status's recent alarms), newest first, into out; how many. */
#define KZ_LOG_RECENT 10
struct kz_log_entry {
    int64_t at;     /* ms */
    char line[320]; /* the logfmt line, cut */
};
size_t kz_log_recent(struct kz_log_entry *out, size_t max);

/* ---- small helpers (util.c) ---- */
int64_t kz_now_ms(void);
/* Checks that zone names a zone of the tzdata database (/usr/share/zoneinfo, or TZDIR), such
 * as "Asia/Tokyo" or "UTC", and makes it this process's local time zone (TZ), which
 * kz_csv_time writes in. posix receives the zone's POSIX rule ("JST-9"; "" if its file has
 * none). -1 with a message naming the time_zone setting in err, changing nothing. */
int kz_time_zone_load(const char *zone, char *posix, size_t n, char *err, size_t errlen);
bool kz_utf8_valid(const char *s, size_t len);
/* Replaces each byte of s that is not part of a valid UTF-8 character with '?', in place: for
 * messages that quote what a client sent, or were cut in the middle of a character. */
void kz_utf8_sanitize(char *s);
/* Copies the start of s into out[n]: at most max bytes (and n - 1), cut at a character's start,
 * so that a cut text stays valid UTF-8. */
void kz_utf8_copy_cut(char *out, size_t n, const char *s, size_t max);
/* Writes a random password of n-1 characters plus NUL from an unambiguous alphabet of 53. */
void kz_password_generate(char *out, size_t n);
/* The length of a one-time password: 20 of 53 characters are 114.5 bits, above the 112 bits
 * NIST SP 800-63B asks of a random secret stored with a fast one-way hash (docs/security.md). */
#define KZ_OTP_CHARS 20
/* A login id: 1-64 of [a-z0-9._-], starting with a letter or digit. */
bool kz_login_valid(const char *login);
/* A user of another server as this server knows it: "login@server" (store_actor_get). */
bool kz_actor_login_valid(const char *login);
/* Whether text is exactly n bytes in unpadded base64url (into out); NULL text is not. */
bool kz_b64url_exact(const char *text, uint8_t *out, size_t n);
/* Adds bin as unpadded base64url under name (nothing if out of memory). */
void kz_json_add_b64url(cJSON *o, const char *name, const uint8_t *bin, size_t n);
/* Account roles, the one list of them. The database stores and the protocol sends the names
 * (store.c's CHECK constraint lists the same three; tests/unit/test_proto.c checks they agree). */
enum kz_role { KZ_ROLE_ADMIN, KZ_ROLE_HQ, KZ_ROLE_STAFF, KZ_ROLE_COUNT };
/* "admin", "hq", "staff" (a static string). */
const char *kz_role_name(enum kz_role r);
/* The role named name, for user.add, user.update, user.import and invite.create alike; false if
 * there is none, with why (if not NULL) saying so in the words all of them answer with:
 * "unknown role 'boss' (admin, hq or staff)". */
bool kz_role_parse(const char *name, enum kz_role *out, char *why, size_t n);
/* Whether a stored role (struct store_user's) is r. */
bool kz_role_is(const char *name, enum kz_role r);
/* Contact details: an address with one '@', no spaces or controls, at most 254 bytes; a phone
 * number of digits with optional '+', '-', ' ', '(', ')' (at most 32 bytes). Empty is valid:
 * it clears the field. */
bool kz_email_valid(const char *email);
bool kz_phone_valid(const char *phone);
/* NULL if the password is acceptable, else a human reason (a static string). */
const char *kz_password_problem(const char *password, const char *login, long long min_len);
#define KZ_TOKEN_BYTES 32
#define KZ_TOKEN_CHARS 44 /* base64url of 32 bytes without padding, plus NUL */
/* Makes a fresh session token (text) and the hash the database keeps of it. */
void kz_token_new(char token[KZ_TOKEN_CHARS], uint8_t hash[STORE_TOKEN_HASH]);
/* Hashes a token given by a client; false if it cannot be a token at all. */
bool kz_token_hash(const char *token, uint8_t hash[STORE_TOKEN_HASH]);
/* Invitation codes: 20 base32 digits (100 bits) shown as XXXX-XXXX-XXXX-XXXX-XXXX. */
#define KZ_INVITE_DIGITS 20
#define KZ_INVITE_CHARS  25 /* with four dashes and the NUL */
void kz_invite_code_new(char out[KZ_INVITE_CHARS], uint8_t hash[STORE_TOKEN_HASH]);
/* Hashes a code as typed (any case, dashes and spaces ignored, O/I/L read as 0/1); false if it
 * cannot be a code. */
bool kz_invite_code_hash(const char *code, uint8_t hash[STORE_TOKEN_HASH]);

/* ---- CSV (util.c): every CSV Kizuna writes (the user export, the audit export, notice
 * reports, the one-time passwords of an import) is built with kz_csv_cell, and user.import
 * reads cells back through kz_csv_unguard. ---- */
struct kz_csv {
    char *text; /* the CSV so far, NUL-terminated; owned, kz_csv_free releases it */
    size_t len, cap;
    bool failed; /* out of memory: text is incomplete and must not be used */
};
/* Appends one cell, then ',' or, when it ends the row, '\n'; the first cell of a CSV is preceded
 * by a UTF-8 BOM, without which Excel reads the file as the system's code page (Shift_JIS in
 * Japan) and shows every name garbled. Every cell is quoted, quotes
 * doubled (RFC 4180). A cell a spreadsheet would run as a formula, one that begins with '=',
 * '+', '-', '@', a tab or a carriage return, is written with a ' before it (OWASP's advice on
 * CSV injection: the spreadsheet shows text); so is one that begins with ' and then one of
 * those or another ', so that kz_csv_unguard gives back exactly the cell that was written. */
void kz_csv_cell(struct kz_csv *csv, const char *cell, bool last);
/* Whether kz_csv_cell writes cell with the guard ' before it: for CSV written elsewhere (the
 * record's, record_format.c, which ends its rows with CRLF). */
bool kz_csv_guard_needed(const char *cell);
/* A whole row of n cells (a header, say), each as kz_csv_cell writes it. */
void kz_csv_row(struct kz_csv *csv, const char *const cells[], size_t n);
/* A time (ms since the epoch) in the server's time zone (kz_time_zone_load), as Excel reads a
 * date and time: 2026-01-02 12:04:05; 0 is an empty cell. */
void kz_csv_time(struct kz_csv *csv, int64_t ms, bool last);
/* The reverse of the guard, in place, for a cell read from a CSV: a cell that begins with '
 * and then '=', '+', '-', '@', a tab, a carriage return or ' loses that first '. A file
 * exported and imported again is unchanged; in a file made by hand, '+81 22-123-4567 reads as
 * +81 22-123-4567, as a spreadsheet shows it. */
void kz_csv_unguard(char *cell);
void kz_csv_free(struct kz_csv *csv);

/* ---- outgoing frames (proto.c): serialised once, shared by reference among recipients ---- */
struct kz_frame {
    int refs;
    int http_status; /* for replies that go out over HTTP */
    uint64_t req_id; /* an HTTP reply's request (X-Request-Id, the log's req=); 0: none */
    size_t len;
    unsigned char *data; /* points kz_frame_pre bytes into buf: libwebsockets' LWS_PRE */
    unsigned char buf[];
};
/* Serialises json into a new frame with one reference, owned by the caller. */
struct kz_frame *kz_frame_from_json(const cJSON *json, int http_status);
/* The same from text already written (len bytes, copied; a NUL follows them in the frame). */
struct kz_frame *kz_frame_from_text(const char *text, size_t len, int http_status);
struct kz_frame *kz_frame_ref(struct kz_frame *f);
void kz_frame_unref(struct kz_frame *f);

/* ---- the worker pool (workers.c) for password hashing off the event loop ---- */
struct kz_job {
    void (*work)(struct kz_job *job);           /* runs on a worker thread */
    void (*done)(struct kz_job *job, bool ran); /* runs on the loop; ran=false at shutdown */
    struct kz_job *next;
};
struct kz_workers;
/* wake is called from a worker thread after each finished job; it must be thread-safe
 * (kizunad passes lws_cancel_service). Returns NULL on failure. */
struct kz_workers *kz_workers_start(int threads, int queue_max, void (*wake)(void *), void *arg);
/* false if the queue is full (the caller answers rate_limited). The job stays the caller's
 * until its done() runs. */
bool kz_workers_submit(struct kz_workers *w, struct kz_job *job);
/* Runs done() for every finished job. Loop thread only. */
void kz_workers_drain(struct kz_workers *w);
/* Joins the threads and calls done(job, false) for jobs that never ran. Accepts NULL. */
void kz_workers_stop(struct kz_workers *w);

/* ---- the commit pipeline's writer thread (syncer.c) ---- */
struct kz_syncer;
/* Takes over the durability of st's commits: from now on st commits without waiting for the
 * disk and the thread fdatasyncs the write-ahead log behind it, checkpointing the log once it
 * holds checkpoint_frames frames. wake(wake_arg) is called from the thread after each sync
 * (kizunad passes lws_cancel_service). NULL with a message in err, and st unchanged. The
 * syncer is the caller's; stop it with kz_syncer_stop() before closing st. */
struct kz_syncer *kz_syncer_start(struct store *st, int checkpoint_frames, void (*wake)(void *),
                                  void *wake_arg, char *err, size_t errlen);
/* Asks for every commit up to number seq (the loop's own count) to be made durable. */
void kz_syncer_request(struct kz_syncer *y, uint64_t seq);
/* The newest commit number known to be on disk. Any thread. */
uint64_t kz_syncer_done(struct kz_syncer *y);
/* Whether the checkpoint thread has copied the bulk of the log since the last call: the loop
 * then copies the rest with store_wal_checkpoint right after a commit, so that its next
 * transaction starts the log over. */
bool kz_syncer_take_checkpoint(struct kz_syncer *y);
/* Blocks until commit number seq is on disk. */
void kz_syncer_wait(struct kz_syncer *y, uint64_t seq);
/* Syncs what was asked for, joins the thread and frees. Accepts NULL. */
void kz_syncer_stop(struct kz_syncer *y);
/* From now on the syncer wakes no loop (before the transport that its wake function names is
 * freed); it goes on syncing what is committed until kz_syncer_stop. */
void kz_syncer_unhook(struct kz_syncer *y);

/* ---- the server core (proto.c): requests in, replies out, commits ---- */
struct srv;

/* What an authenticated caller is. Loaded fresh from the store for every call, so a
 * disabled user or ended session is refused at once, whatever the transport cached. */
struct srv_auth {
    int64_t session_id;
    struct store_user user;
};

/* One request, from either transport. Owned by the dispatcher until srv_call_finish(). */
struct srv_call {
    struct srv *srv;
    uint64_t conn_id;   /* the transport's connection, for the reply */
    bool is_http;       /* replies carry an HTTP status; login binds no connection */
    int64_t session_id; /* the session the caller presents (0: anonymous) */
    char peer[STORE_ADDR_MAX + 1];
    cJSON *id; /* the request's id, echoed in the reply (owned) */
    const struct srv_op *op;
    cJSON *args; /* the request object (owned) */
    struct srv_auth auth;
    bool authed;
    cJSON *result; /* fields of a successful reply (owned) */
    char errmsg[192];
    int64_t retry_after_s;            /* with rate_limited: how long to wait, in the error object */
    bool deferred;                    /* the op finishes later, from a worker's done() */
    bool in_op;                       /* a store savepoint is open for this call */
    bool in_tx;                       /* writing in the open transaction without a savepoint */
    size_t pending_mark, pushes_mark; /* where this call's events and pushes begin */
    uint64_t req_id;                  /* its lines' req=… (kz_log_request) */
};

enum srv_op_access {
    OP_ANON,  /* anyone, even without a session */
    OP_USER,  /* any active user with a live session */
    OP_ADMIN, /* role admin */
};

enum srv_field_type { F_STRING, F_INT, F_BOOL, F_LOGINS, F_STRINGS };
struct srv_field {
    const char *name;
    enum srv_field_type type;
    bool required;
    long long max; /* F_STRING: bytes; F_INT: value; F_LOGINS, F_STRINGS: items */
    long long min; /* F_STRING: bytes; F_INT: value */
};
#define SRV_FIELDS_MAX 12
/* A field whose max an operator sets: the setting (kz_config_cap) is its max, and a request
 * over it gets the setting's words, too_large (bad_request for an F_INT). */
struct srv_cap {
    const char *field;
    const char *setting;
};
#define SRV_CAPS_MAX 2

struct srv_op {
    const char *name;
    enum srv_op_access access;
    bool writes; /* the dispatcher opens a store savepoint around the handler */
    /* The handler validates everything before its first write, so it runs without a
     * savepoint: SAVEPOINT/RELEASE make SQLite's FTS5 flush a segment per message, which was
     * a fifth of the send path (docs/performance.md). An internal error after a write dooms
     * the whole transaction, so nothing half-done is ever committed or acknowledged. */
    bool no_savepoint;
    bool allowed_before_pwchange; /* usable while the user must still change the password */
    struct srv_field fields[SRV_FIELDS_MAX];
    struct srv_cap caps[SRV_CAPS_MAX]; /* fields named here have max 0 in fields[] */
    enum kz_err (*fn)(struct srv_call *c);
};

/* Which live connections to close: those of user_id (0: everyone's), limited to session_id if
 * nonzero, sparing keep_session_id (if nonzero) and the connection except_conn. */
struct srv_close {
    uint64_t conn_id; /* nonzero: only this connection */
    int64_t user_id;
    int64_t session_id;
    int64_t keep_session_id;
    uint64_t except_conn;
    const char *reason;
};

/* The state of the link to one pinned peer (docs/protocol.md, peer.list's `link`). */
struct srv_link_status {
    const char *state; /* connected, handshake, connecting, disconnected (static) */
    bool known;        /* the links know this peer (else only state is set) */
    bool connected;
    bool ever_up;  /* a link to it has been up since start */
    bool outbound; /* the link (or the last one) was dialled by this server */
    int64_t since; /* ms: in this state since (0: never) */
    int64_t last_contact;
    int64_t next_attempt_at; /* ms (0: none planned) */
    int64_t backoff_ms;
    int64_t skew_ms;
    int failures;
    bool skew_alarm;
    char address[STORE_PEER_ADDR_MAX + 1];
    char last_error[192]; /* empty: none */
};

/* Open client connections, for admin.status and GET /metrics. */
struct srv_conn_stats {
    int64_t websockets, http; /* connections by kind */
    int64_t sessions;         /* WebSockets logged in */
    int64_t users;            /* distinct users of those */
    int64_t queued_bytes;     /* unsent bytes queued to WebSockets */
};

/* What the core needs from a transport. transport.c implements it; tests use a fake. */
struct srv_transport {
    /* Hand one reply or event frame to a connection (takes a reference of its own). */
    void (*send)(void *ctx, uint64_t conn_id, struct kz_frame *f);
    /* Bind a WebSocket connection to a session (0 unbinds). */
    void (*bind)(void *ctx, uint64_t conn_id, int64_t session_id, int64_t user_id);
    /* Close live connections with a close frame carrying the reason (see struct srv_close). */
    void (*close_conns)(void *ctx, const struct srv_close *which);
    /* Stop (true) or restart (false) reading requests from a connection. A WebSocket request
     * that waits for a worker pauses its connection, so that replies on one connection always
     * come in the order of the requests. */
    void (*pause)(void *ctx, uint64_t conn_id, bool paused);
    /* A transaction is open: call srv_commit() at the end of this loop turn. */
    void (*want_commit)(void *ctx);
    /* Start live delivery on a connection; pos is the last position the client has. */
    void (*subscribe)(void *ctx, uint64_t conn_id, int64_t pos);
    /* Hand a frame to every subscribed connection of a user that has not had position pos
     * yet (pos 0: a state update that goes to every subscribed connection). */
    void (*push)(void *ctx, int64_t user_id, int64_t pos, struct kz_frame *f);
    /* Hand a frame to every subscribed connection of a user ahead of everything queued
     * (urgent notices, reminders). Such frames carry no position. */
    void (*alert)(void *ctx, int64_t user_id, struct kz_frame *f);
    /* Call srv_tick() in about ms milliseconds. */
    void (*timer)(void *ctx, int ms);
    /* Federation (may be NULL: no links, e.g. the tests' fake transport). The state of the link
     * to a pinned peer, for peer.list to show (false: federation is off); and: the pinned
     * peers changed, read them again once this turn's writes are in. */
    bool (*peer_status)(void *ctx, const char *server_id, struct srv_link_status *out);
    void (*peers_changed)(void *ctx);
    /* Queue a text frame on the up link to peer_id (takes a reference of its own). false: no
     * link to it is up, or its queue holds more than federation_queue_bytes (the core then
     * waits for srv_fed_writable). */
    bool (*fed_send)(void *ctx, const char *peer_id, struct kz_frame *f);
    /* Call srv_fed_blobs_tick() in about ms milliseconds, replacing the last such call (may
     * be NULL: blob fetches then move at housekeeping only). */
    void (*blob_timer)(void *ctx, int ms);
    /* The transport's connections as admin.status shows them (may be NULL: all zero). */
    void (*conn_stats)(void *ctx, struct srv_conn_stats *out);
    /* Call srv_push_tick() in about ms milliseconds, replacing the last such call (may be
     * NULL: no push sender, as in the tests' fake transport). */
    void (*push_timer)(void *ctx, int ms);
    void *ctx;
};

/* ---- replication over federation links (fed_sync.c; docs/protocol.md, "Server to server").
 * The transport calls these on the loop thread for a link whose handshake is done. ---- */
/* A link to peer_id came up (both sides proved their keys): the core sends its summary. */
void srv_fed_link_up(struct srv *s, const char *peer_id);
/* That link ended: what was sent on it and not acknowledged will be sent again. */
void srv_fed_link_down(struct srv *s, const char *peer_id);
/* One text frame from peer_id whose type is not hello or auth. 0: taken (a bad event inside is
 * counted and logged, never fatal); -1: the frame itself is malformed, and why says so (the
 * transport closes the link with 1002). */
int srv_fed_frame(struct srv *s, const char *peer_id, const char *data, size_t len, char *why,
                  size_t whylen);
/* The link's queue to peer_id has room again after fed_send refused a frame. */
void srv_fed_writable(struct srv *s, const char *peer_id);
/* fed_blobs.c: blob fetches' paced requests and timeouts are due (srv_transport.blob_timer). */
void srv_fed_blobs_tick(struct srv *s);

/* ---- Web Push (push.c, docs/notifications.md) ---- */
/* Makes the server's VAPID key pair unless the database has one (*made says whether it did);
 * kizunad init and every start call it. 0, or -1 (store_errmsg says why). */
int srv_push_keys_ensure(struct store *st, bool *made);
/* Starts the senders that are configured: Web Push (push_subject set) with push_concurrency
 * threads of its own, e-mail (smtp_host set, mail.c) with mail_concurrency, the webhook
 * (webhook_url set, webhook.c) with webhook_concurrency; wake (thread safe) is called when a
 * job finishes, and the loop then calls srv_push_drain. What a restart left in the outboxes
 * goes at once. -1 with why in err. */
int srv_notify_start(struct srv *s, void (*wake)(void *), void *wake_arg, char *err, size_t errlen);
/* Loop thread: records finished posts', mails' and deliveries' answers (srv_transport's wake). */
void srv_push_drain(struct srv *s);
/* The senders' timer is due (srv_transport.push_timer). */
void srv_push_tick(struct srv *s);
/* Stops the senders (waits for jobs in progress, at most their timeouts); srv_free calls it. */
void srv_push_free(struct srv *s);
/* Queues a push to every subscription of each recipient of a new notice (ops_notice.c): urgent
 * notices and roll-calls (choices: each recipient's push then carries a one-tap answer link of
 * their own). The caller's failure if it cannot. */
enum kz_err srv_push_notice(struct srv_call *c, int64_t notice, const char *title, bool urgent,
                            const cJSON *choices);
/* push_events.c: queues what a new event of type ("msg" with its body, urgent for a first
 * report; "e2ee.photo"; others: nothing) at pos in room, made at ts by sender (this server's
 * handle of them, named from), means to the room's members who are not looking: "direct",
 * "hotline", "mention" or "photo" (a direct room's, or a watched group room's). For events made
 * here and received from peers alike. KZ_INTERNAL if it cannot queue (the caller says so: it
 * has the call or the log). */
enum kz_err srv_push_posted(struct srv *s, const struct store_room *room, int64_t pos, int64_t ts,
                            int64_t sender, const char *from, const char *type, const char *body,
                            bool urgent);
enum kz_err op_room_watch(struct srv_call *c);
/* Queues a push of kind "reminder" (the title only) to every subscription of each recipient
 * of notice that store_notice_remind marked at reminded_at (ops_notice_report.c); a roll-call's
 * (choices) with a fresh answer link for each, not outliving notice_expires (0: none). */
enum kz_err srv_push_remind(struct srv_call *c, int64_t notice, const char *title, bool urgent,
                            int64_t reminded_at, const cJSON *choices, int64_t notice_expires);
/* push.c: "HH:MM" as minutes of the day (quiet hours, mail_digest_at); -1 if malformed. */
int srv_hhmm(const char *s);
/* mail.c: queues an e-mail to each recipient of a new urgent notice or roll-call who has an
 * address, a roll-call's with one-tap answer links (one per choice, for that person only). */
enum kz_err srv_mail_notice(struct srv_call *c, int64_t notice, const char *title, const char *body,
                            const cJSON *choices, bool urgent);
/* The same, as a reminder (kind "reminder"), to those store_notice_remind marked at
 * reminded_at: a roll-call's with fresh answer links of their own. expires_at: the notice's
 * (0: none), which the links do not outlive. */
enum kz_err srv_mail_remind(struct srv_call *c, int64_t notice, const char *title, const char *body,
                            const cJSON *choices, bool urgent, int64_t expires_at,
                            int64_t reminded_at);
enum kz_err op_notice_answer_link(struct srv_call *c);
enum kz_err op_mail_status(struct srv_call *c);
/* ---- the outgoing webhook (webhook.c, docs/notifications.md "Webhook") ---- */
#define SRV_WEBHOOK_VERSION                                                                        \
    1 /* the body's "version": raised only by a change receivers must know */
/* What one delivery's body says (srv_webhook_body_new). Strings are the caller's. */
struct srv_webhook_event {
    const char *kind;     /* notice, rollcall, reminder or hotline */
    const char *delivery; /* its id, 32 hex digits, the same on every try */
    const char *server_id;
    int64_t time; /* ms: when the event happened */
    bool urgent;
    const struct store_notice *notice; /* notice, rollcall, reminder; else NULL */
    const char *reminder_for;          /* reminder: response, ack or read */
    const char *room_id, *room_name;   /* hotline; else NULL */
    int64_t pos;
    const char *text;                       /* hotline: the report */
    const char *author_login, *author_name; /* who posted, reminded or reported */
    bool with_text;                         /* webhook_text: the notice's body, the report's text */
};
/* The JSON body of e, without its recipients (the caller adds them); the caller deletes it. */
cJSON *srv_webhook_body_new(const struct srv_webhook_event *e);
/* HMAC-SHA256 under key of "T.BODY" (T in decimal), as 64 lowercase hex digits in hex: the v1
 * of the Kizuna-Signature header. */
void srv_webhook_sign(const uint8_t *key, size_t keylen, int64_t t, const char *body, size_t len,
                      char hex[65]);
/* Every problem of the webhook_* settings, one line each to out after prefix (never the URL's
 * path or the secret); the count. check-config and serve call it. */
int srv_webhook_check(const struct kz_config *cfg, FILE *out, const char *prefix);
/* Queue one delivery, when the webhook is on and wants the kind, inside the caller's
 * transaction; the caller's failure if it cannot. A new urgent notice or a roll-call (n as
 * stored), a reminder to user_ids (a JSON array of ids) of what for_what says, a hotline's
 * first report (text) at pos in room. */
enum kz_err srv_webhook_notice(struct srv_call *c, const struct store_notice *n, bool rollcall);
enum kz_err srv_webhook_reminder(struct srv_call *c, const struct store_notice *n,
                                 const char *for_what, const cJSON *user_ids);
enum kz_err srv_webhook_hotline(struct srv_call *c, const struct store_room *room, int64_t pos,
                                const char *text);
enum kz_err op_webhook_status(struct srv_call *c);

/* The page GET /answer/... shows for notice.answer_link's reply (JSON, ok or error): a new
 * frame with the same status, the caller's to unref; NULL if out of memory. */
struct kz_frame *srv_answer_page(const struct kz_frame *reply);

/* This server's id (the origin of its event logs). */
const char *srv_server_id(struct srv *s);
/* ops_rooms.c: records a shared room's member servers, admitted at pos, from its creation's
 * content (its servers) or from that list itself. */
enum kz_err srv_room_servers_init(struct srv *s, int64_t room, const cJSON *content, int64_t pos);

/* What replication has done since start (peer.list, kizuna admin peers). */
struct srv_fed_counters {
    int64_t events_sent;     /* events sent to peers in batches */
    int64_t events_received; /* new events taken from peers */
    int64_t duplicates;      /* events received again (same id): dropped */
    int64_t rejected;        /* events refused (bad signature, unknown origin, ...) */
    int64_t invalid;         /* events kept but not applied (docs/federation.md) */
    int64_t forks;           /* two events for one (room, origin, inc, seq) */
    int64_t late;            /* events placed before ones already held */
};
void srv_fed_counters(struct srv *s, struct srv_fed_counters *out);
/* Whether replication sees a link to peer up, and the bytes sent to it not yet acknowledged. */
void srv_fed_peer_state(struct srv *s, const char *peer_id, bool *up, int64_t *unacked);

/* Creates the core over an open store. Owns neither cfg nor store nor workers. */
struct srv *srv_new(const struct kz_config *cfg, struct store *store, struct kz_workers *workers,
                    const struct srv_transport *tx);
void srv_free(struct srv *s);

/* Parses and dispatches one WebSocket text frame; the reply reaches tx->send. */
void srv_handle_ws_text(struct srv *s, uint64_t conn_id, int64_t session_id, const char *peer,
                        const char *text, size_t len);
/* Dispatches `POST /api/v1/<op>` with a JSON body and an optional bearer token. */
void srv_handle_http(struct srv *s, uint64_t conn_id, const char *op, const char *bearer,
                     const char *peer, const char *body, size_t len);
/* Sends a protocol error that belongs to no request (id null), e.g. for an oversized frame. */
void srv_send_error(struct srv *s, uint64_t conn_id, bool is_http, enum kz_err e, const char *msg);

/* Commits the open transaction, then releases the replies held for it and pushes the events
 * it created to their rooms' members (or, if the commit failed, answers each held reply with
 * `internal` and closes every live connection so that clients resume). With a syncer, what it
 * releases goes out only once the commit is on disk: srv_commit() waits for that, and
 * srv_commit_async() leaves it to srv_release() (the loop's per-turn commit, which also waits
 * to commit at all while the syncer is busy with the previous one: group commit). */
bool srv_commit(struct srv *s); /* false if the commit failed */
bool srv_commit_async(struct srv *s);
/* Commits, waits until every commit made is on disk and sends all they held (shutdown). */
void srv_flush(struct srv *s);
/* Hands the syncer to the core (owned by the caller, who stops it after srv_free). */
void srv_set_syncer(struct srv *s, struct kz_syncer *y);
/* Sends what commits now on disk were holding, in order (outbox.c), then makes the commit
 * that waited for them (srv_commit_async gathers requests while a sync runs). Loop thread
 * only; the transport calls it whenever the syncer wakes the loop. */
void srv_release(struct srv *s);
/* Periodic work the transport's timer triggers: coalesced read-marker pushes. */
void srv_tick(struct srv *s);
/* jma_watch.c: JMA's feeds polled, telegrams fetched, alerts whose delay ended sent. Returns
 * the milliseconds until it wants to run again. srv_jma_stop (before the workers stop) makes
 * transfers give up at once; srv_jma_free is srv_free's. */
int srv_jma_tick(struct srv *s);
void srv_jma_stop(struct srv *s);
int srv_jma_init(struct srv *s);
void srv_jma_free(struct srv *s);
/* Runs op `opname` as the account `login`, for the server's own actions (an automatic
 * roll-call): the op's own checks, its write and its audit as if that account had sent args
 * (borrowed). Ops that finish on a worker are refused. On success *result is the op's result
 * (the caller owns it); else why says what went wrong. */
enum kz_err srv_call_as(struct srv *s, const char *opname, const char *login, cJSON *args,
                        cJSON **result, char *why, size_t whylen);
/* Notes that a connection went live while a transaction is open (op_sync): if the commit
 * fails, that connection alone must resync. */
void srv_note_subscribe(struct srv *s, uint64_t conn_id);
/* Whether writes are refused for now after a disk error (reads go on). */
bool srv_writes_blocked(struct srv *s);
/* health.c: GET /readyz's answer, {"ready", "failed": [check names], "checks": {"database",
 * "disk", "shutdown": {"ok", "why"?}}} (the caller owns it); *ready says whether every check
 * passed. stopping: the transport is shutting down. May open the loop's transaction for a
 * probe write (ready_write_probe_s). */
cJSON *srv_readiness_json(struct srv *s, bool stopping, bool *ready);
/* health.c: free bytes for kizunad on the data directory's file system, -1 if unknown. */
int64_t srv_disk_free_bytes(struct srv *s);
/* Sets the identity events are signed with: origin name, incarnation and Ed25519 secret key
 * (copied). */
void srv_set_identity(struct srv *s, const char *origin, int64_t inc, const uint8_t sk[64]);
/* Tests only: the clock new events take their ts and hlc from (NULL: kz_now_ms), so a test can
 * step it back as NTP might. */
void srv_set_event_clock(struct srv *s, int64_t (*now_ms)(void));

/* ---- the local event log (event_log.c): appending this server's room events ---- */
/* Whose log an event goes to: this server (srv_origin_local) as it is now. The pointers are
 * borrowed and must outlive the open transaction: its checkpoint signs with sk. */
struct srv_origin {
    const char *name;  /* the server's name in event logs (server_id) */
    int64_t inc;       /* its incarnation, bumped by each restore */
    const uint8_t *sk; /* its Ed25519 secret key (64 bytes) */
    const char *key;   /* its id (event format v2's `key`); NULL: computed from sk */
};
/* Who sends an event. The strings are borrowed for the call. */
struct srv_actor {
    int64_t user_id;   /* the local user (0: none) */
    const char *login; /* the event's `sender` */
    const char *name;  /* shown with the event (sender_name) */
};
/* What an append created, or why it failed. */
struct srv_appended {
    int64_t pos;
    int64_t ts;
    char event_id[STORE_ROOM_ID_MAX + 1];
    char error[192]; /* on failure: the reason, for the caller's error reply */
};
/* This server's own origin; valid while s is. */
struct srv_origin srv_origin_local(struct srv *s);
/* Appends an event of `type` (content: consumed, also on failure) to origin's log of room
 * inside the open transaction: builds it (event_format.c), stores it, applies it to the
 * derived state (event_apply.c) and queues it for delivery to the room's members, and to
 * whoever it removes, once the transaction commits. */
enum kz_err srv_log_append(struct srv *s, const struct srv_origin *origin,
                           const struct srv_actor *sender, const struct store_room *room,
                           const char *type, cJSON *content, struct srv_appended *out);
/* Creates a room whose first event is `type` with `content` (consumed; a random nonce is
 * added): the room's id is the hash of that event (FEDERATION.md, F11). Inserts the room (kind,
 * name, topic, history from r; direct_key for one-to-one rooms, else NULL) and fills r->id,
 * r->room_id, r->created_by and r->created_at. */
enum kz_err srv_log_create_room(struct srv *s, const struct srv_origin *origin,
                                const struct srv_actor *sender, struct store_room *r,
                                const char *direct_key, const char *type, cJSON *content,
                                struct srv_appended *out);
/* srv_log_append as the caller, in this server's log; a failure is the call's (srv_fail). */
enum kz_err srv_event_append(struct srv_call *c, const struct store_room *room, const char *type,
                             cJSON *content, struct srv_appended *out);
/* Creates a room as the caller: its room.create event (kind, name, topic, history from r).
 * policy (consumed, may be NULL) is the creator's signed history policy (srv_room_policy);
 * servers (the caller's, may be NULL) the member servers of a shared room, this one first. */
enum kz_err srv_room_create(struct srv_call *c, struct store_room *r, const char *direct_key,
                            cJSON *policy, const cJSON *servers, struct srv_appended *out);
/* Creates a room as the caller whose first event is `type` with `content` (consumed), e.g.
 * notice.post. */
enum kz_err srv_room_create_with(struct srv_call *c, struct store_room *r, const char *direct_key,
                                 const char *type, cJSON *content, struct srv_appended *out);
/* Posts a text message into a room as the caller (a `msg` event, which adds its message row);
 * extra (consumed, may be NULL) adds fields to the event's content. In ops_talk.c. */
enum kz_err srv_msg_post(struct srv_call *c, const struct store_room *room, const char *body,
                         cJSON *extra, struct srv_appended *out);

/* ---- events as clients see them (event_view.c) ---- */
/* An event as clients see it (caller owns the result): payload fields, position, sender's
 * name, and for messages the current text (from m if given) and read count. */
cJSON *srv_event_json(struct srv *s, const struct store_event *e, const struct store_message *m);
/* The same for an event just created, as a frame for its members (one reference, the
 * caller's): no one has read it yet and the sender is known, so no lookups; content is the
 * event's content as it went into the payload. NULL if out of memory. */
struct kz_frame *srv_event_frame_new(struct srv *s, const struct store_event *e,
                                     const char *sender_login, const char *sender_name,
                                     const cJSON *content);

/* ---- derived state (event_apply.c) ---- */
/* Moves a user's read marker in a room forward to pos (never back) at time at, and queues the
 * change for the coalesced `read` push; *moved says whether it moved. In a shared room it also
 * moves the user's read key to the room-order key of the event at key_pos (pos, unless the
 * whole room was read: then its last event in the room's order), forward only, and publishes
 * it to the other servers as a room.read event, coalesced (issue 17, item 7). */
enum kz_err srv_read_marker_apply(struct srv *s, const struct store_room *room, int64_t user_id,
                                  int64_t pos, int64_t key_pos, int64_t at, bool *moved);

/* ---- delivery after commit (event_deliver.c) ---- */
/* Queues a frame for a user once the open transaction commits (dropped if it fails); urgent
 * frames go ahead of everything queued. Takes its own reference. */
void srv_push_after_commit(struct srv *s, int64_t user_id, struct kz_frame *f, bool urgent);
/* Queues a read-marker change for the coalesced `read` push. */
void srv_read_changed(struct srv *s, int64_t room, int64_t user_id, int64_t old_pos,
                      int64_t new_pos);

/* ---- calls, replies and arguments (proto.c): what every op handler uses ---- */

/* Finishes a call: closes its savepoint, builds the reply and frees the call. */
void srv_call_finish(struct srv_call *c, enum kz_err e);
/* Sets the human message of an error reply; returns e for `return srv_fail(...)`. */
enum kz_err srv_fail(struct srv_call *c, enum kz_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* srv_fail with the words of the setting that caps requests (kz_config_cap). */
enum kz_err srv_fail_cap(struct srv_call *c, enum kz_err e, const char *setting);
/* Opens the call's savepoint (for deferred ops that write after their worker finishes). */
enum kz_err srv_call_write_begin(struct srv_call *c);
/* A string argument (NULL if absent). Arguments were checked against the op's fields. */
const char *srv_arg_str(const struct srv_call *c, const char *name);
bool srv_arg_bool(const struct srv_call *c, const char *name, bool dflt);
int64_t srv_arg_int(const struct srv_call *c, const char *name, int64_t dflt);
/* The array of an F_LOGINS or F_STRINGS argument (NULL if absent). */
const cJSON *srv_arg_list(const struct srv_call *c, const char *name);
/* The optional `format` of a listing (user.list, audit.list, notice.report): sets *csv for
 * "csv", clears it for "json" or none; anything else is bad_request. */
enum kz_err srv_arg_format(struct srv_call *c, bool *csv);

/* Accessors used by the ops. */
struct store *srv_store(struct srv *s);
const struct kz_config *srv_config(struct srv *s);
const struct srv_transport *srv_tx(struct srv *s);
struct kz_workers *srv_workers(struct srv *s);

/* ---- the command table (op_table.c) and the op handlers (ops_*.c) that fill it ---- */
const struct srv_op *srv_op_find(const char *name);
const struct srv_op *srv_op_table(size_t *count);
/* The most ops the table may hold (metrics.h counts requests per op in an array this size). */
#define SRV_OPS_MAX 192
/* An op's index in srv_op_table; op NULL (no such op) gives the table's length. */
size_t srv_op_index(const struct srv_op *op);

/* The op handlers: ops_account.c (sessions, own account), ops_admin.c (accounts). */
enum kz_err op_push_vapid_key(struct srv_call *c);
enum kz_err op_push_subscribe(struct srv_call *c);
enum kz_err op_push_unsubscribe(struct srv_call *c);
enum kz_err op_push_quiet(struct srv_call *c);
enum kz_err op_notify_prefs(struct srv_call *c);
/* notify_prefs.c: whether a kind of notification ("notice", "rollcall", "direct", ...) goes by
 * push (email false) or e-mail to someone who made no choice of their own. */
bool srv_notify_default(const char *kind, bool email);
enum kz_err op_login(struct srv_call *c);
enum kz_err op_auth(struct srv_call *c);
enum kz_err op_logout(struct srv_call *c);
enum kz_err op_whoami(struct srv_call *c);
enum kz_err op_passwd(struct srv_call *c);
enum kz_err op_user_add(struct srv_call *c);
enum kz_err op_user_list(struct srv_call *c);
enum kz_err op_user_disable(struct srv_call *c);
enum kz_err op_user_enable(struct srv_call *c);
enum kz_err op_user_reset_password(struct srv_call *c);
enum kz_err op_session_list(struct srv_call *c);
enum kz_err op_user_import(struct srv_call *c);
enum kz_err op_audit_list(struct srv_call *c);
/* Appends an entry to the audit log within the open transaction (opening one if need be):
 * actor is the caller (or, before login, the login id tried), details a JSON object
 * (consumed, may be NULL). */
void srv_audit(struct srv_call *c, const char *action, const char *target, cJSON *details);
enum kz_err op_session_revoke(struct srv_call *c); /* ops_account.c */

/* Login throttling (throttle.c): failed logins per account and per address. */
/* Seconds to wait before this login id or address may try again (0: go ahead). */
int64_t srv_throttle_wait(struct srv *s, const char *login, const char *address);
/* Counts a failure; true if it just locked the account or the address. */
bool srv_throttle_failed(struct srv *s, const char *login, const char *address);
void srv_throttle_succeeded(struct srv *s, const char *login);
void srv_throttle_free(void);
/* ops_rooms.c */
enum kz_err op_room_create(struct srv_call *c);
enum kz_err op_room_direct(struct srv_call *c);
enum kz_err op_room_update(struct srv_call *c);
enum kz_err op_room_invite(struct srv_call *c);
enum kz_err op_room_remove(struct srv_call *c);
enum kz_err op_room_leave(struct srv_call *c);
enum kz_err op_room_admin(struct srv_call *c);
enum kz_err op_room_members(struct srv_call *c);
enum kz_err op_room_servers(struct srv_call *c); /* ops_fed_rooms.c */
enum kz_err op_blob_status(struct srv_call *c);  /* ops_blobs.c */
/* fed_blobs.c: whether a link is fetching blob now (a want's stored state may be older). */
bool srv_fed_blob_fetching(struct srv *s, const char *blob);
enum kz_err op_room_server(struct srv_call *c);
enum kz_err op_room_authority(struct srv_call *c);
/* ops_rooms.c: the room named by the request's `room`, for an op of its authority (servers,
 * roles, handover): this server's admins may, in the room or not; else a room admin. */
enum kz_err srv_room_for_authority(struct srv_call *c, struct store_room *room,
                                   struct store_member *me);
/* ops_rooms.c: the creator's own member event in a room it just created (its history starts
 * with the creation). */
enum kz_err srv_room_join_creator(struct srv_call *c, const struct store_room *room,
                                  const char *role);
/* ops_hotline.c: counterpart hotline rooms (issue 18; docs/hotline.md). */
enum kz_err op_hotline_create(struct srv_call *c);
enum kz_err op_hotline_role(struct srv_call *c);
enum kz_err op_hotline_list(struct srv_call *c);
/* A role of a municipality in a counterpart group: affected, primary, secondary, hq. */
bool kz_hotline_role_valid(const char *role);
/* Its name as people read it (被災市町, 一次支援市, 二次支援市町, 県本部; "" for none). */
const char *kz_hotline_role_label(const char *role);
/* A hotline room's derived state from its creation's content (hotline.roles), on the server
 * that created it and on every other that takes it. */
enum kz_err srv_hotline_init(struct srv *s, int64_t room, const cJSON *content);
enum kz_err op_hotline_seat(struct srv_call *c);
/* A first report (a message with urgent) in a hotline room: an alert to the holders of this
 * server's on-duty seats there, ahead of everything queued, once the transaction commits. */
void srv_hotline_alert(struct srv *s, const struct store_event *e, const cJSON *content);
/* The local users row of login of server origin: this server's own user, or the actor of
 * another server's (made at first sight, named name if given). 0 if there is none. */
int64_t srv_actor_of(struct srv *s, const char *origin, const char *login, const char *name);
/* fed_sync.c: server was admitted to room (room.server, at its authority): after the commit it is
 * sent this server's summary, which names the room, and the room itself. */
void srv_fed_server_admitted(struct srv *s, const char *server, int64_t room);
enum kz_err op_room_list(struct srv_call *c);
enum kz_err op_room_archive(struct srv_call *c);
enum kz_err op_room_export(struct srv_call *c);
enum kz_err op_record_export(struct srv_call *c); /* ops_record.c */
enum kz_err op_alert_list(struct srv_call *c);    /* ops_alert.c */
enum kz_err op_alert_show(struct srv_call *c);
enum kz_err op_alert_send_now(struct srv_call *c);
enum kz_err op_alert_cancel(struct srv_call *c);
enum kz_err op_alert_rules(struct srv_call *c);
enum kz_err op_alert_drill(struct srv_call *c);
enum kz_err op_alert_rules_set(struct srv_call *c);
/* The reply of record.export (review NULL) and record.publish (an approved review: its marked
 * messages only, redactions applied), from the call's format, from, to, after, limit and
 * received; audited on the first page. */
enum kz_err srv_record_reply(struct srv_call *c, const struct store_room *room,
                             const struct store_review *review);
/* ops_review.c: the record's reviewers, reviews and publication (docs/records.md) */
enum kz_err op_record_reviewer(struct srv_call *c);
enum kz_err op_record_review_create(struct srv_call *c);
enum kz_err op_record_review_show(struct srv_call *c);
enum kz_err op_record_review_mark(struct srv_call *c);
enum kz_err op_record_review_redact(struct srv_call *c);
enum kz_err op_record_review_decide(struct srv_call *c);
enum kz_err op_record_review_approve(struct srv_call *c);
enum kz_err op_record_publish(struct srv_call *c);
enum kz_err op_room_hold(struct srv_call *c);
/* conflict if the room is archived: an archived room takes no messages, edits, deletions,
 * photos, announcements, renames or membership changes until a room admin unarchives it. */
enum kz_err srv_room_writable(struct srv_call *c, const struct store_room *room);
/* ops_talk.c */
/* The reply to an op that appended an event. */
void srv_reply_event(struct srv_call *c, int64_t pos, const char *event_id, int64_t ts);
/* The `client_id` argument: if this user already used it in this room, fills the first
 * reply (with "duplicate": true) and sets *replayed; another room is a conflict. */
enum kz_err srv_client_id_replay(struct srv_call *c, const struct store_room *room, bool *replayed);
enum kz_err op_msg_send(struct srv_call *c);
enum kz_err op_msg_edit(struct srv_call *c);
enum kz_err op_msg_delete(struct srv_call *c);
enum kz_err op_history(struct srv_call *c);
enum kz_err op_sync(struct srv_call *c);
enum kz_err op_read(struct srv_call *c);
enum kz_err op_readers(struct srv_call *c);
enum kz_err op_search(struct srv_call *c);
/* ops_org.c */
enum kz_err op_dept_list(struct srv_call *c);
enum kz_err op_group_list(struct srv_call *c);
enum kz_err op_user_update(struct srv_call *c);
/* The `department` argument of user.add / user.update: sets u->department (and its name),
 * creating the department if it is new; "" clears it. Absent: u is left alone. */
enum kz_err srv_org_department(struct srv_call *c, struct store_user *u);
/* The `groups` argument: replaces the user's groups, creating new ones. Absent: unchanged. */
enum kz_err srv_org_groups(struct srv_call *c, int64_t user_id);
/* The `email`, `phone` and `expires_at` arguments (ms, 0 clears): checked, then applied to u;
 * absent ones leave u alone. */
enum kz_err srv_org_contact(struct srv_call *c, struct store_user *u);
/* The user's groups as a JSON array of names (caller owns it). */
cJSON *srv_user_groups_json(struct srv *s, int64_t user_id);
/* ops_notice.c */
enum kz_err op_notice_post(struct srv_call *c);
enum kz_err op_notice_edit(struct srv_call *c);
enum kz_err op_notice_withdraw(struct srv_call *c);
enum kz_err op_notice_list(struct srv_call *c);
enum kz_err op_notice_show(struct srv_call *c);
enum kz_err op_notice_ack(struct srv_call *c);
enum kz_err op_notice_respond(struct srv_call *c);
enum kz_err op_notice_report(struct srv_call *c);
enum kz_err op_notice_remind(struct srv_call *c);
/* Finds a room by the `room` argument for a current member; not_found (the same answer for a
 * room that does not exist) otherwise. */
enum kz_err srv_room_for_member(struct srv_call *c, struct store_room *room,
                                struct store_member *me);

/* ---- who may call (gate.c): the one admission of a caller, for every entry point ---- */
/* What an entry point requires of its caller. */
struct srv_gate_need {
    enum srv_op_access access; /* OP_USER or OP_ADMIN */
    bool before_pwchange;      /* usable while a one-time password waits to be changed */
    const char *what;          /* the entry point, for the refusal ("only an admin may use X") */
};
/* Why a user may not use the server now (expired, disabled), or NULL. A static string. */
const char *srv_user_refusal(const struct store_user *u, int64_t now);
/* The same for a session: its user's refusal, or a shared device idle for too long. */
const char *srv_session_refusal(struct srv *s, const struct store_session *ses,
                                const struct store_user *u, int64_t now);
/* Finds the session of a bearer token, or of the id a connection is bound to. On refusal the
 * error, with the reason written to why (n bytes). */
enum kz_err srv_gate_find_token(struct srv *s, const char *token, struct store_session *ses,
                                char *why, size_t n);
enum kz_err srv_gate_find_id(struct srv *s, int64_t session_id, struct store_session *ses,
                             char *why, size_t n);
/* Admits a found session for an entry point: fills out (the user, the session id), or refuses
 * with the error and the reason in why. */
enum kz_err srv_gate_admit(struct srv *s, const struct store_session *ses,
                           const struct srv_gate_need *need, struct srv_auth *out, char *why,
                           size_t n);
/* srv_gate_find_token, then srv_gate_admit. */
enum kz_err srv_gate_token(struct srv *s, const char *token, const struct srv_gate_need *need,
                           struct srv_auth *out, char *why, size_t n);
/* Creates a session for u inside the open transaction and fills c->result with the token, the
 * user and the session (login, join); binds a WebSocket connection to it and audits `action`. */
enum kz_err srv_session_open(struct srv_call *c, const struct store_user *u, const char *device,
                             bool shared, const char *action);
/* Disables expired accounts and ends idle shared sessions, closing their live connections
 * (ops_admin.c); the transport calls it every housekeeping_interval_s. */
void srv_housekeep(struct srv *s);
/* fed_sync.c, from srv_housekeep: each peer whose link is up is sent this server's summary again
 * once federation_summary_s passed since the last (a quiet link too); batches that waited too
 * long for the one before them are dropped (the summary asks for them again). */
void srv_fed_housekeep(struct srv *s);
/* An audit entry by the server itself or any named actor (srv_audit for calls). details is
 * consumed. */
void srv_audit_as(struct srv *s, const char *actor, const char *address, const char *action,
                  const char *target, cJSON *details);
/* ---- encrypted blobs and resumable uploads (blobs.c), for the transport's endpoints ---- */
struct srv_http_result {
    enum kz_err err; /* KZ_OK, or the protocol error: its code and HTTP status (kz_err_*) */
    int status;      /* the HTTP status: tus's 200, 201, 204 on success, else the error's
                        (kz_err_http_status), except tus's 410 Gone and 460 Checksum Mismatch */
    char message[192];
    int64_t offset, length, expires_at; /* Upload-Offset, Upload-Length, Upload-Expires */
    char location[96];                  /* for 201 */
    int64_t retry_after_s; /* with 503 (the disk is full): retry_after_s and Retry-After */
    bool body_read;        /* a PATCH's whole body was read: the connection may go on */
    /* A blob of another server's photo that is not here yet (fed_blobs.c): code is
     * "blob_not_here" (have of total bytes fetched; total 0: not known yet) or "blob_failed"
     * (from: the server whose bytes failed the check), NULL otherwise. */
    const char *code;
    int64_t have, total;
    char from[64];
    /* A photo posted before its blob (thumbnail first): "uploading" while its sender's upload
     * is live, "stalled" when it stopped; NULL otherwise. */
    const char *state;
};
struct srv_patch;
/* Where blobs and staging files go (DATA/blobs, DATA/uploads; created). -1 on failure. */
int srv_set_data_dir(struct srv *s, const char *dir);
/* 64 lowercase hex digits. */
bool srv_blob_id_valid(const char *id);
void srv_blob_path(const struct srv *s, const char *blob, char *out, size_t n);
/* A new upload. Born complete only for a caller who may already read the blob (its uploader,
 * or a member of a room that references it); for anyone else an upload from 0, exactly as if
 * the blob did not exist: an id alone never tells a stranger that a blob exists. */
void srv_upload_create(struct srv *s, const struct srv_auth *a, int64_t length, const char *blob,
                       struct srv_http_result *r);
void srv_upload_head(struct srv *s, const struct srv_auth *a, const char *id,
                     struct srv_http_result *r);
void srv_upload_delete(struct srv *s, const struct srv_auth *a, const char *id,
                       struct srv_http_result *r);
/* A PATCH: begin checks and opens the staging file (NULL and r->status on refusal); data
 * appends the body as it arrives (-1 only for bytes past Content-Length: a failed write is
 * remembered and the rest of the body read and dropped); end checks the session again,
 * verifies the checksum, syncs, commits the new offset (finishing the blob at the last byte)
 * and frees p; abort frees p and commits nothing. An empty PATCH writes and commits nothing. */
struct srv_patch *srv_upload_patch_begin(struct srv *s, const struct srv_auth *a, const char *id,
                                         int64_t offset, int64_t body_len, const char *checksum,
                                         struct srv_http_result *r);
int srv_upload_patch_data(struct srv_patch *p, const void *buf, size_t len);
void srv_upload_patch_end(struct srv_patch *p, struct srv_http_result *r);
void srv_upload_patch_abort(struct srv_patch *p);
/* Opens a blob the user may read (uploader, or a member of a room that references it); *fd
 * is the caller's to close. 404 for anything the user may not see. */
void srv_blob_open(struct srv *s, const struct srv_auth *a, const char *blob, int *fd,
                   int64_t *size, struct srv_http_result *r);
/* Drops expired unfinished uploads (housekeeping). */
void srv_uploads_sweep(struct srv *s, int64_t now);
/* ops_e2ee.c */
enum kz_err op_device_register(struct srv_call *c);
enum kz_err op_device_list(struct srv_call *c);
enum kz_err op_device_revoke(struct srv_call *c);
enum kz_err op_room_devices(struct srv_call *c);
enum kz_err op_e2ee_post(struct srv_call *c);
/* Revokes the active devices a session registered (logout, session.revoke); in the open
 * transaction. */
enum kz_err srv_devices_of_session_revoke(struct srv_call *c, int64_t session_id);
/* Whether the content of an e2ee.* event ({device, blobs?, data, sig}) carries a signature of
 * the device with sign_pk over this room and type (protocol.md, "End-to-end encrypted
 * photos"): what the room's other servers check before taking the event. */
bool srv_e2ee_content_verify(const char *room_id, const char *type, const cJSON *content,
                             const uint8_t sign_pk[32]);
/* ops_devlist.c: signed device lists and room history policies (issue 14) */
enum kz_err op_device_sign(struct srv_call *c);
/* Appends every version of a user's signed device list, oldest first, to arr (JSON objects as
 * protocol.md's device.list shows them). */
enum kz_err srv_devlists_of_user(struct srv_call *c, int64_t user_id, cJSON *arr);
/* The same for the newest version of each current member of a room. */
enum kz_err srv_devlists_in_room(struct srv_call *c, int64_t room, cJSON *arr);
/* A `device` event in each room d's owner is a member of: change is "added", "approved",
 * "unlisted" or "removed"; by (may be NULL) the device that signed the list. In shared rooms
 * the event carries the device's whole record (its keys and self-signature). */
enum kz_err srv_device_line(struct srv_call *c, const struct store_device *d, const char *change,
                            const char *by);
/* The record of d (its owner's) as a `present` device line in each shared room of the owner's:
 * after its self-signature was replaced. */
enum kz_err srv_device_record_publish(struct srv_call *c, const struct store_device *d);
/* After this server's user u joined the shared room r: a `device` event (change "present") for
 * each of u's active devices and a `device.list` event for each version of u's signed list, so
 * the room's other servers know them. Nothing for a room of this server only. */
enum kz_err srv_devices_publish(struct srv_call *c, const struct store_room *r,
                                const struct store_user *u);
/* The name every signature binds a user by: "login@server" with the user's home server (a user
 * of another server is known here by that name already), the same on every server. */
#define SRV_QUALIFIED_MAX (STORE_LOGIN_MAX + 1)
_Static_assert(STORE_LOCAL_LOGIN_MAX + 1 + STORE_SERVER_ID_MAX <= STORE_LOGIN_MAX,
               "a qualified login must fit");
void srv_user_qualified(struct srv *s, const struct store_user *u, char out[SRV_QUALIFIED_MAX]);
/* room.create and room.direct: the history policy the caller's device signed for the new room
 * (args policy_device, policy_sig), checked, as the object the room.create event carries; NULL
 * when none was given (or on error, with *e set). */
cJSON *srv_room_policy(struct srv_call *c, const char *history, enum kz_err *e);
/* ---- backups (backup.c): kizunad backup, verify-backup, restore ---- */
struct kz_backup_stats {
    int64_t files, blobs, bytes;
};
/* Copies a data directory that a server may be serving into out_dir (created; must not
 * exist): a database snapshot, the server key, every blob the snapshot lists, and MANIFEST.
 * -1 with a message in err. */
int kz_backup_make(const char *data_dir, const char *out_dir, struct kz_backup_stats *stats,
                   char *err, size_t errlen);
/* Checks a backup against its manifest (sizes, hashes, nothing missing or extra, the
 * manifest's own hash, the database's integrity); each problem is a line on report. Returns
 * the number of problems (0: whole). */
int kz_backup_verify(const char *dir, FILE *report, struct kz_backup_stats *stats);
/* What `kizunad backup` and `kizunad verify-backup --data DIR` last did, kept in
 * DATA/backup-status.json for admin.status: what ("backup" or "verify") with its time, the
 * backup's directory, whether it succeeded, its figures (st may be NULL) and error (NULL:
 * none). -1 if the file cannot be written. */
#define KZ_BACKUP_STATUS_FILE "backup-status.json"
int kz_backup_note(const char *data_dir, const char *what, const char *dir, bool ok,
                   const struct kz_backup_stats *st, const char *error);
/* That file as an object ({} when there is none yet); the caller owns it. */
cJSON *kz_backup_status(const char *data_dir);
/* Copies a verified backup's files into a new data directory (created; must not exist). */
int kz_backup_restore_files(const char *backup_dir, const char *data_dir, char *err, size_t errlen);
/* ops_peer.c: the peer servers an admin pins (docs/federation.md) */
enum kz_err op_peer_add(struct srv_call *c);
enum kz_err op_peer_list(struct srv_call *c);
enum kz_err op_peer_remove(struct srv_call *c);
/* ops_status.c: admin.status (kizuna admin status) */
enum kz_err op_admin_status(struct srv_call *c);
/* ops_invite.c */
enum kz_err op_invite_create(struct srv_call *c);
enum kz_err op_invite_list(struct srv_call *c);
enum kz_err op_invite_revoke(struct srv_call *c);
enum kz_err op_join(struct srv_call *c);
/* A user as the protocol shows it (caller owns the result). */
cJSON *srv_user_json(const struct store_user *u);

/* Password hashing on the worker pool (ops_account.c). The hash string is written to the
 * job; done runs on the loop. */
struct srv_pw_job {
    struct kz_job job;
    struct srv_call *call;
    unsigned long long opslimit;
    size_t memlimit;
    uint8_t otp_key[32]; /* srv_otp_key: the workers need no access to struct srv */
    bool one_time;       /* new_password is a generated one-time password: srv_otp_hash it */
    char verify_hash[STORE_HASH_MAX + 1]; /* if set: check `password` against it first */
    char password[256];
    char new_password[256]; /* if set (and verification passed): hash it into new_hash */
    char new_hash[STORE_HASH_MAX + 1];
    bool verified;
    bool hashed;
    void (*then)(struct srv_pw_job *pj); /* continues the op on the loop thread */
    char extra[128];                     /* op-specific state, e.g. the generated password */
};
/* Queues pj for a worker and marks the call deferred; on a full queue frees pj and returns
 * rate_limited for the op to return. */
enum kz_err srv_pw_job_submit(struct srv_pw_job *pj);
struct srv_pw_job *srv_pw_job_new(struct srv_call *c, void (*then)(struct srv_pw_job *));
/* Hashes synchronously (for `kizunad init`, which has no loop). */
int srv_password_hash(const struct kz_config *cfg, const char *password,
                      char out[STORE_HASH_MAX + 1]);
/* Two kinds of stored hash, each saying which it is. A password people choose is argon2id
 * ("$argon2id$...", srv_password_hash): slow on purpose, because it may be guessable. A one-time
 * password the server generated (KZ_OTP_CHARS random characters) cannot be guessed, so it is
 * "$kzotp1$SALT$MAC": BLAKE2b-256 keyed with srv_otp_key over a 16-byte random salt and the
 * password, ~1 us instead of ~100 ms, and useless without the key, which is not in the
 * database. The key, derived from DATA/server.key, must be 32 bytes. */
int srv_otp_hash(const uint8_t key[32], const char *password, char out[STORE_HASH_MAX + 1]);
/* Whether password matches a stored hash of either kind (in constant time for the fast kind);
 * *fast says the hash was a one-time password's. */
bool srv_password_verify(const uint8_t key[32], const char *hash, const char *password, bool *fast);
/* The key one-time password hashes are made with: derived from the server's Ed25519 key
 * (srv_set_identity), so a backup that restores the database restores the key with it. */
void srv_otp_key(struct srv *s, uint8_t key[32]);

#endif
