/* config.c - every setting in one table: name, type, bounds, default and meaning. The config
 * file is a JSON object of these names; command-line overrides use the same names. */
#include "server.h"
#include "event_format.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum cfg_type { CFG_INT, CFG_BOOL, CFG_STR, CFG_LEVEL };

struct cfg_entry {
    const char *name;
    enum cfg_type type;
    size_t offset;
    size_t size;              /* CFG_STR: capacity */
    long long min, max, dflt; /* CFG_STR: min is the shortest value other than "" (a secret) */
    const char *dflt_str;
    const char *doc;
    /* A setting that caps requests (kz_config_cap): how one over it is refused, with "%lld"
     * where the value goes. The same words wherever the cap is checked. */
    const char *cap;
};

#define INT(n, lo, hi, d, doc)                                                                     \
    {                                                                                              \
#n, CFG_INT, offsetof(struct kz_config, n), 0, lo, hi, d, NULL, doc, NULL                  \
    }
/* An integer that caps what a request may carry, refused in the words of msg. */
#define CAP(n, lo, hi, d, doc, msg)                                                                \
    {                                                                                              \
#n, CFG_INT, offsetof(struct kz_config, n), 0, lo, hi, d, NULL, doc, msg                   \
    }
#define BOOL(n, d, doc)                                                                            \
    {                                                                                              \
#n, CFG_BOOL, offsetof(struct kz_config, n), 0, 0, 1, d, NULL, doc, NULL                   \
    }

#define STR(n, d, doc)                                                                             \
    {                                                                                              \
#n, CFG_STR, offsetof(struct kz_config, n), sizeof(((struct kz_config *)0)->n), 0, 0, 0,   \
            d, doc, NULL                                                                           \
    }

static const struct cfg_entry table[] = {
    {"listen", CFG_STR, offsetof(struct kz_config, listen), sizeof(((struct kz_config *)0)->listen),
     0, 0, 0, "127.0.0.1:8080",
     "address and port to listen on (HOST:PORT, [V6]:PORT); port 0 picks one", NULL},
    {"tls_cert_file", CFG_STR, offsetof(struct kz_config, tls_cert_file),
     sizeof(((struct kz_config *)0)->tls_cert_file), 0, 0, 0, "",
     "PEM certificate (with its chain) to serve HTTPS and WSS with; empty serves plain HTTP "
     "(keep listen on loopback or behind a TLS proxy then)",
     NULL},
    {"tls_key_file", CFG_STR, offsetof(struct kz_config, tls_key_file),
     sizeof(((struct kz_config *)0)->tls_key_file), 0, 0, 0, "",
     "PEM private key of tls_cert_file (readable by kizunad only)", NULL},
    {"log_level", CFG_LEVEL, offsetof(struct kz_config, log_level), 0, KZ_LOG_ERROR, KZ_LOG_DEBUG,
     KZ_LOG_INFO, NULL, "error, warn, info or debug", NULL},
    BOOL(sqlite_synchronous_full, 1,
         "fsync the WAL on every commit (true); false risks the last commits on power loss"),
    BOOL(sync_thread, 1,
         "with sqlite_synchronous_full: fsync on a thread of its own while the event loop goes "
         "on (true), or inside the loop (false); either way nothing is acknowledged or "
         "delivered before it is on disk"),
    INT(wal_checkpoint_frames, 100, 1000000, 1000,
        "with sync_thread: copy the write-ahead log into the database (on the sync thread) "
        "once it holds this many pages"),
    INT(sqlite_busy_timeout_ms, 0, 60000, 1000,
        "how long to wait for a database lock held by another process"),
    INT(sqlite_cache_kib, 0, 1 << 22, 32768,
        "SQLite page cache in KiB; it fills only as the database is used"),
    /* The format's bound (event_format.h) is the highest either may be. */
    INT(checkpoint_events, 1, KZ_EVENT_CHECKPOINT_EVENTS, KZ_EVENT_CHECKPOINT_EVENTS,
        "sign at least every this many events of a room's log, besides its newest at each "
        "commit (event format v2: at most 64)"),
    INT(checkpoint_bytes, 1024, KZ_EVENT_CHECKPOINT_BYTES, KZ_EVENT_CHECKPOINT_BYTES,
        "... and at least every this many bytes of its payloads (at most 131072)"),
    INT(max_connections, 4, 1000000, 10000,
        "simultaneous client connections (HTTP and WebSocket); more are refused with 503 "
        "unavailable"),
    INT(max_connections_per_address, 1, 1000000, 500,
        "simultaneous connections (HTTP and WebSocket) from one client address; more are "
        "refused with 429 rate_limited (raise it when a whole town hall reaches the server "
        "through one NAT address)"),
    INT(fd_reserve, 0, 1 << 20, 64,
        "file descriptors kept free of client connections and the files they hold open (for "
        "the database, logs and the server's own work); a newcomer that would take one of "
        "them is refused with 503"),
    INT(requests_per_second, 1, 100000, 50,
        "requests per second on one WebSocket connection, and over HTTP from one address; more "
        "get rate_limited"),
    INT(request_burst, 1, 1000000, 200,
        "requests allowed at once before requests_per_second "
        "applies"),
    INT(ws_login_timeout_s, 1, 3600, 60,
        "a WebSocket connection that has not logged in within this many seconds is closed"),
    INT(ready_min_free_bytes, 0, 1LL << 50, 256LL << 20,
        "GET /readyz answers 503 (failed: disk) while the data directory's disk has fewer free "
        "bytes than this, so a load balancer or monitor acts before writes fail"),
    INT(ready_write_probe_s, 1, 86400, 30,
        "when nothing was committed for this many seconds, GET /readyz writes a row of its own "
        "so that an idle server's database is still proved writable"),
    {"metrics_token", CFG_STR, offsetof(struct kz_config, metrics_token),
     sizeof(((struct kz_config *)0)->metrics_token), 32, 0, 0, "",
     "bearer token GET /metrics requires (Authorization: Bearer TOKEN, at least 32 characters); "
     "empty: /metrics answers loopback clients (127.0.0.0/8, ::1) only",
     NULL},
    INT(backup_alarm_hours, 1, 8760, 36,
        "kizuna admin status raises an alarm when the last backup recorded in the data "
        "directory (kizunad backup), or its verification (kizunad verify-backup --data), is older "
        "than this many hours, failed, or was never made"),
    INT(disk_retry_ms, 100, 600000, 2000,
        "after a write fails because the disk is full or read-only, writes are refused "
        "(unavailable) for this long, then tried again; reads and live delivery go on"),
    INT(http_timeout_s, 1, 600, 10,
        "a client that stalls in the middle of a request for this long is disconnected"),
    INT(http_min_bytes_per_s, 1, 1 << 30, 256,
        "an HTTP body or reply must move at least this many bytes per second, measured over "
        "each http_timeout_s, or the connection is closed (slow-loris); weak mobile links "
        "move far more"),
    INT(max_frame_bytes, 1024, 64 << 20, 1 << 20,
        "largest WebSocket request or HTTP request body, in bytes"),
    CAP(max_message_bytes, 16, 1 << 20, 16384,
        "largest text of one talk message (msg.send, msg.edit), in bytes",
        "a message may be at most %lld bytes"),
    INT(max_queue_bytes, 65536, 1LL << 30, 8 << 20,
        "unsent bytes queued for one connection before it is dropped as too slow"),
    INT(socket_sndbuf_bytes, 0, 64 << 20, 262144,
        "kernel send buffer per WebSocket; bounds what a stalled client pins beyond "
        "max_queue_bytes (0 leaves the kernel's autotuning, up to several MiB)"),
    INT(ws_rx_chunk_bytes, 512, 65536, 2048,
        "receive buffer per WebSocket connection: memory per idle connection against reads "
        "per message under load (performance.md)"),
    INT(hash_workers, 1, 64, 2, "threads that hash passwords off the event loop"),
    INT(hash_queue_max, 1, 1000000, 2000,
        "password checks waiting for a worker before logins get rate_limited"),
    INT(argon2_opslimit, 1, 16, 2, "argon2id passes (libsodium opslimit) for new password hashes"),
    INT(argon2_memlimit_kib, 8, 1 << 20, 65536, "argon2id memory for new password hashes, KiB"),
    INT(password_min_length, 8, 128, 10, "shortest password accepted, in characters"),
    INT(session_touch_interval_s, 1, 86400, 60, "how often a session's last-seen time is written"),
    INT(login_fail_max, 1, 1000, 5,
        "failed logins for one account within the window before a lockout"),
    INT(login_fail_max_per_address, 1, 100000, 20,
        "failed logins from one address within the window before a lockout"),
    INT(login_fail_window_s, 1, 86400, 300, "window in which failed logins are counted, seconds"),
    INT(login_lockout_s, 1, 86400, 60, "how long a locked account or address waits, seconds"),
    INT(shared_session_idle_s, 1, 30 * 86400, 1800,
        "a session on a shared (loaner) device ends after this long without requests; it is "
        "measured from last-seen times, so keep it above session_touch_interval_s"),
    INT(housekeeping_interval_s, 1, 3600, 30,
        "how often the server disables expired accounts and ends idle shared sessions"),
    CAP(invite_max_uses, 1, 100000, 1000,
        "most accounts one invitation code may create (invite.create's uses)",
        "an invitation may be used at most %lld times"),
    INT(invite_max_valid_days, 1, 365, 30, "longest time an invitation code may stay usable"),
    INT(blob_max_bytes, 4096, 1LL << 32, 64LL << 20,
        "largest encrypted blob (one photo) that may be uploaded, in bytes"),
    INT(upload_quota_bytes, 1 << 20, 1LL << 40, 4LL << 30,
        "bytes of blobs and unfinished uploads one user may hold"),
    INT(upload_expiry_hours, 1, 24 * 90, 24 * 7,
        "an unfinished upload is dropped this long after it was created"),
    CAP(e2ee_max_bytes, 1024, 16 << 20, 512 << 10,
        "largest data of one end-to-end encrypted room event (e2ee.post: keys, a photo message "
        "with its thumbnail); keep max_frame_bytes above it",
        "data is longer than %lld bytes"),
    INT(shutdown_grace_ms, 0, 60000, 3000,
        "on SIGTERM, how long to wait for clients to take their close frames"),
    {"server_id", CFG_STR, offsetof(struct kz_config, server_id),
     sizeof(((struct kz_config *)0)->server_id), 0, 0, 0, "",
     "this server's id, the name of its room event logs: read at `kizunad init` (else "
     "derived from the server key) and stored in the database; later, empty or the stored id "
     "(serve refuses to start with another)",
     NULL},
    CAP(peer_max_addresses, 1, STORE_PEER_ADDRS_MAX, 4,
        "most addresses one peer server may have (peer.add's addresses)",
        "a peer may have at most %lld addresses"),
    INT(peers_max, 1, 10000, 100, "most peer servers this server may pin (peer.add)"),
    {"federation_listen", CFG_STR, offsetof(struct kz_config, federation_listen),
     sizeof(((struct kz_config *)0)->federation_listen), 0, 0, 0, "",
     "address and port of the federation listener, where peer servers' links arrive (HOST:PORT, "
     "[V6]:PORT; port 0 picks one); empty: federation is off (no listener, no links). Plain "
     "WebSocket only on a loopback address, else federation_tls_cert_file is required",
     NULL},
    {"federation_tls_cert_file", CFG_STR, offsetof(struct kz_config, federation_tls_cert_file),
     sizeof(((struct kz_config *)0)->federation_tls_cert_file), 0, 0, 0, "",
     "PEM certificate the federation listener serves TLS with (self-signed is fine: peers pin "
     "its key, never a CA)",
     NULL},
    {"federation_tls_key_file", CFG_STR, offsetof(struct kz_config, federation_tls_key_file),
     sizeof(((struct kz_config *)0)->federation_tls_key_file), 0, 0, 0, "",
     "PEM private key of federation_tls_cert_file", NULL},
    INT(federation_max_frame_bytes, 4096, 16 << 20, 262144,
        "largest frame a peer server may send on a federation link; a larger one closes the link"),
    INT(federation_handshake_timeout_s, 1, 300, 10,
        "a federation link that has not finished its signed handshake by then is closed"),
    INT(federation_ping_s, 1, 3600, 30,
        "a federation link with nothing to say is pinged after this many seconds"),
    INT(federation_hangup_s, 2, 7200, 75,
        "a federation link with no valid frame or pong for this long is closed and redialled "
        "(a cut that sends nothing, e.g. a partition); at least federation_ping_s + 1"),
    INT(federation_queue_bytes, 65536, 1LL << 30, 8 << 20,
        "unsent bytes one federation link may hold; replication waits for it to drain below "
        "half before it sends more"),
    INT(federation_batch_events, 1, 64, 64,
        "events of one log sent to a peer in one frame (a batch always ends on a signed event, "
        "so it may hold more when the log's signatures are further apart)"),
    INT(federation_unacked_bytes, 65536, 1LL << 30, 4 << 20,
        "bytes of events sent to one peer and not yet acknowledged; replication to it waits "
        "above this"),
    INT(federation_pending_bytes, 0, 1LL << 30, 8 << 20,
        "bytes of batches that arrived ahead of their log (reordered) kept until the batch before "
        "them comes; beyond it they are dropped and asked for again (0: none kept)"),
    INT(federation_summary_s, 5, 86400, 120,
        "a link's summary of shared rooms is sent again after this many seconds (at the "
        "peer's next frame or the next housekeeping), besides at every connect"),
    INT(federation_read_publish_ms, 100, 600000, 2000,
        "a local user's read marker in a shared room is published to the other servers (a "
        "room.read event) at most this often, for the last position read"),
    INT(federation_blob_chunk_bytes, 1024, 4 << 20, 65536,
        "bytes of a blob asked for in one blob.get when fetching another server's photo (a "
        "part must also fit in federation_max_frame_bytes as base64, so less may be asked)"),
    INT(federation_blob_bytes_per_s, 0, 1LL << 30, 262144,
        "blob bytes per second this server fetches over one federation link, and serves over "
        "it, so photos never crowd out messages on a thin link (0: no cap)"),
    INT(federation_blob_staging_bytes, 65536, 1LL << 40, 1LL << 30,
        "bytes the partial files of blobs being fetched from other servers may hold together "
        "(DATA/fedblobs); a fetch that would pass it waits for space, and the partial files "
        "that stalled longest are dropped to make room (keep it at least blob_max_bytes)"),
    INT(sync_page_max, 10, 10000, 500, "most events one sync reply carries"),
    INT(history_page_max, 10, 10000, 200, "most events one history reply carries"),
    INT(read_push_interval_ms, 10, 60000, 300,
        "read-marker changes are pushed to room members at most this often"),
    CAP(room_max_members, 2, 100000, 5000,
        "most members one room may have, its creator included (room.create's members, "
        "room.invite)",
        "a room may have at most %lld members"),
    CAP(notice_max_body_bytes, 256, 1 << 20, 65536,
        "largest notice body (notice.post, notice.edit), in bytes",
        "a notice body may be at most %lld bytes"),
    {"notice_announce_room", CFG_STR, offsetof(struct kz_config, notice_announce_room),
     sizeof(((struct kz_config *)0)->notice_announce_room), 0, 0, 0, "",
     "room id where every notice is announced unless the poster names another (\"\": none)", NULL},
    {"time_zone", CFG_STR, offsetof(struct kz_config, time_zone),
     sizeof(((struct kz_config *)0)->time_zone), 0, 0, 0, "Asia/Tokyo",
     "time zone (a tzdata name, e.g. Asia/Tokyo, UTC) of the times people read: CSV files, "
     "reports and the CLI's times; kizunad refuses to start with one tzdata does not have",
     NULL},
    {"record_time_zone", CFG_STR, offsetof(struct kz_config, record_time_zone),
     sizeof(((struct kz_config *)0)->record_time_zone), 0, 0, 0, "Asia/Tokyo",
     "time zone of the times in a room's record (record.export): Asia/Tokyo, Asia/Seoul, "
     "Asia/Taipei, Asia/Shanghai, Asia/Manila, UTC or Etc/UTC (a table of fixed offsets: no "
     "tzdata needed); kizunad refuses to start with another",
     NULL},
    {"web_root", CFG_STR, offsetof(struct kz_config, web_root),
     sizeof(((struct kz_config *)0)->web_root), 0, 0, 0, "",
     "directory of the web client served at / (index.html and its files); empty: the installed "
     "share directory when kizunad runs installed, else the source tree's clients/web",
     NULL},
    {"public_origin", CFG_STR, offsetof(struct kz_config, public_origin),
     sizeof(((struct kz_config *)0)->public_origin), 0, 0, 0, "",
     "the origin browsers use when it is not what kizunad sees, behind a TLS proxy (e.g. "
     "https://kizuna.example.jp); API requests and WebSockets from it count as same-origin",
     NULL},
    INT(slow_op_ms, 0, 600000, 20,
        "an op that holds the event loop this many milliseconds or more is logged (info "
        "slow_op); everyone else waited that long. 0 logs every op"),
    INT(http_peers_max, 1, 10000000, 100000,
        "client addresses whose HTTP request rates are tracked; past it the table starts "
        "afresh, which forgives their counts early"),
    INT(login_fail_tracked_max, 2, 10000000, 100000,
        "accounts and addresses whose failed logins are tracked (a failure counts one of each); "
        "past it the table starts afresh, which lifts lockouts early"),
    {"push_subject", CFG_STR, offsetof(struct kz_config, push_subject),
     sizeof(((struct kz_config *)0)->push_subject), 0, 0, 0, "",
     "how push services can reach this server's administrator (VAPID's sub, RFC 8292): "
     "mailto:address or an https: URL; pushes are sent only when it is set",
     NULL},
    INT(push_concurrency, 1, 64, 16,
        "posts to push services at once, each on its own thread (the event loop never waits "
        "on one)"),
    INT(push_connect_timeout_ms, 100, 60000, 5000,
        "a push service that does not accept the connection within this long is retried later"),
    INT(push_timeout_ms, 500, 120000, 15000,
        "a push post that has not been answered within this long is retried later"),
    INT(push_retry_base_ms, 100, 3600000, 5000,
        "first retry of a push that failed (no answer, 429 or 5xx); the delay doubles each "
        "time"),
    INT(push_retry_max_ms, 1000, 86400000, 600000, "longest delay between retries of a push"),
    INT(push_retry_max_tries, 1, 1000, 12,
        "a push still failing after this many tries is dropped (and logged push_failed)"),
    INT(push_ttl_urgent_s, 0, 2419200, 86400,
        "how long a push service keeps an urgent notice or roll-call for a phone that is off "
        "(TTL)"),
    INT(push_ttl_s, 0, 2419200, 3600, "... and any other push"),
    INT(push_coalesce_ms, 0, 600000, 3000,
        "a push waits this long before it leaves; someone who read the notice on another device "
        "meanwhile gets none"),
    INT(push_subs_per_user_max, 1, 1000, 20,
        "push subscriptions (browsers, phones) one user may have"),
    INT(push_mentions_max, 0, 100, 20,
        "people one message's @login mentions may push; mentions past it push no one (0: "
        "mentions push no one)"),
    INT(push_preview_bytes, 0, 400, 200,
        "the start of a message a push carries for people who turned previews on, in bytes (cut "
        "at a character's start)"),
    CAP(push_endpoint_max_bytes, 64, 2048, 2048,
        "longest push subscription endpoint URL, in bytes (push.subscribe)",
        "a push endpoint may be at most %lld bytes"),
    BOOL(push_allow_private_endpoints, 0,
         "allow push endpoints on loopback, private or link-local addresses (a push service "
         "inside the town's network, or tests); off, a subscription cannot make the server "
         "post into its own network"),
    {"smtp_host", CFG_STR, offsetof(struct kz_config, smtp_host),
     sizeof(((struct kz_config *)0)->smtp_host), 0, 0, 0, "",
     "the mail relay urgent notices and roll-calls are e-mailed through (the town's own mail "
     "server); \"\": no e-mail",
     NULL},
    INT(smtp_port, 1, 65535, 587, "the mail relay's port (587 submission, 465 tls, 25)"),
    {"smtp_security", CFG_STR, offsetof(struct kz_config, smtp_security),
     sizeof(((struct kz_config *)0)->smtp_security), 0, 0, 0, "starttls",
     "starttls (required, the connection fails without it), tls (from the first byte, port "
     "465) or none (a relay on the same machine or network only)",
     NULL},
    {"smtp_user", CFG_STR, offsetof(struct kz_config, smtp_user),
     sizeof(((struct kz_config *)0)->smtp_user), 0, 0, 0, "",
     "the relay's login (\"\": no authentication)", NULL},
    {"smtp_password", CFG_STR, offsetof(struct kz_config, smtp_password),
     sizeof(((struct kz_config *)0)->smtp_password), 0, 0, 0, "",
     "the relay's password (keep the config file readable by kizunad only)", NULL},
    {"smtp_from", CFG_STR, offsetof(struct kz_config, smtp_from),
     sizeof(((struct kz_config *)0)->smtp_from), 0, 0, 0, "",
     "the sender address of Kizuna's e-mail (required with smtp_host)", NULL},
    INT(smtp_connect_timeout_ms, 100, 120000, 10000,
        "a mail relay that does not accept the connection within this long: retried later"),
    INT(smtp_timeout_ms, 1000, 600000, 60000,
        "a message the relay has not taken within this long: retried later"),
    INT(mail_concurrency, 1, 16, 8, "messages handed to the relay at once, each on its own thread"),
    INT(mail_retry_base_ms, 100, 3600000, 30000,
        "first retry of a message the relay did not take (no connection, 4xx); doubles each time"),
    INT(mail_retry_max_ms, 1000, 86400000, 1800000, "longest delay between retries of a message"),
    INT(mail_retry_max_tries, 1, 1000, 10,
        "a message still failing after this many tries is kept as failed (and logged)"),
    INT(mail_answer_link_ttl_s, 1, 2592000, 259200,
        "a roll-call's one-tap answer link in an e-mail works for this long (and once)"),
    INT(mail_answer_confirm, 0, 1, 0,
        "1: a mail's answer link first shows a page whose button answers (where the town's mail "
        "goes through a link scanner that opens every link)"),
    STR(webhook_url, "",
        "where the outgoing webhook posts one signed JSON body per urgent event (an SMS gateway, "
        "the disaster radio system, a chat adapter), http:// or https://; \"\": no webhook"),
    {"webhook_secret", CFG_STR, offsetof(struct kz_config, webhook_secret),
     sizeof(((struct kz_config *)0)->webhook_secret), 32, 0, 0, "",
     "the key each delivery is signed with (HMAC-SHA256), shared with the receiver: at least "
     "32 characters; or use webhook_secret_file",
     NULL},
    STR(webhook_secret_file, "",
        "a file (readable by kizunad only) holding the webhook's key instead of webhook_secret"),
    STR(webhook_kinds, "notice rollcall reminder hotline",
        "which events go to the webhook: notice (urgent notices), rollcall, reminder "
        "(notice.remind), hotline (first reports), separated by spaces"),
    BOOL(webhook_recipients, 0,
         "each delivery lists its recipients with login, name, department, phone and e-mail (an "
         "SMS gateway needs the phone numbers); off, only their count leaves the server"),
    BOOL(webhook_text, 1,
         "deliveries carry the notice's body and the hotline report's text (a radio "
         "announcement needs them); off, titles and names only"),
    INT(webhook_concurrency, 1, 16, 2,
        "deliveries posted at once, each on its own thread (the event loop never waits)"),
    INT(webhook_connect_timeout_ms, 100, 60000, 5000,
        "a receiver that does not accept the connection within this long: retried later"),
    INT(webhook_timeout_ms, 500, 120000, 15000,
        "a delivery the receiver has not answered within this long: retried later"),
    INT(webhook_retry_base_ms, 100, 3600000, 5000,
        "first retry of a delivery that failed (no answer, 408, 429 or 5xx); doubles each time"),
    INT(webhook_retry_max_ms, 1000, 86400000, 600000,
        "longest delay between retries of a delivery"),
    INT(webhook_retry_max_tries, 1, 1000, 12,
        "a delivery still failing after this many tries is kept as failed (webhook.status)"),
    STR(mail_digest_at, "",
        "time of day (HH:MM in time_zone) of the daily e-mail digest of unread must-read notices "
        "to those who chose it (notify.prefs); \"\": no digest"),
    INT(mail_digest_max_notices, 1, 1000, 50,
        "notices one digest lists (newest first; it says how many more there are)"),
    INT(mail_digest_batch, 1, 100000, 200,
        "people whose digest one turn of the event loop writes; the next turn takes the next "
        "batch, so a large town never holds the loop up"),
    INT(notice_remind_min_interval_s, 0, 86400, 300,
        "a notice's reminders (notice.remind) at most this often: a second one sooner is "
        "refused (rate_limited), so nobody's phone is flooded"),
    CAP(import_max_rows, 1, 1000000, 20000,
        "most users in one user.import file (the whole file must also fit in max_frame_bytes)",
        "more than %lld users in one file"),
    /* JMA's feeds and the roll-calls they start (docs/alerts.md). */
    STR(jma_feeds,
        "https://www.data.jma.go.jp/developer/xml/feed/eqvol.xml "
        "https://www.data.jma.go.jp/developer/xml/feed/extra.xml",
        "JMA Atom feed URLs (http or https) separated by spaces; polled only while jma_towns or "
        "jma_tsunami_areas names something"),
    INT(jma_poll_s, 1, 3600, 60,
        "seconds between polls of each JMA feed (conditional requests: If-Modified-Since, ETag)"),
    INT(jma_fetch_timeout_s, 1, 120, 20, "a JMA feed or telegram request gives up after this"),
    INT(jma_backoff_max_s, 1, 86400, 900,
        "longest wait after failed requests to a feed (the wait doubles from jma_poll_s)"),
    INT(jma_max_doc_bytes, 4096, 16 << 20, 2 << 20,
        "largest JMA feed or telegram read, in bytes (decompressed); larger is refused whole"),
    INT(jma_max_depth, 8, 256, 32, "deepest element nesting of a JMA document read"),
    INT(jma_max_items, 16, 100000, 5000,
        "most entries in a feed, or places (prefectures, areas, towns) in a telegram"),
    STR(jma_towns, "",
        "7-digit JMA municipality codes (national code + 00, e.g. 0420200 石巻市), separated "
        "by spaces; empty: no earthquake or warning rule"),
    STR(jma_town_min_int, "5-",
        "seismic intensity code (1-4, 5-, 5+, 6-, 6+, 7) at or over which a configured town "
        "starts a roll-call"),
    STR(jma_pref_min_int, "6-",
        "the same anywhere in a configured town's prefecture; empty: no prefecture rule"),
    STR(jma_tsunami_areas, "",
        "tsunami forecast region codes (津波予報区, e.g. 220 宮城県) whose 大津波警報 or 津波警報 "
        "starts a roll-call, separated by spaces"),
    BOOL(jma_special_warnings, 1,
         "a special weather warning (特別警報) in a configured town "
         "starts a roll-call"),
    INT(jma_delay_s, 0, 86400, 180,
        "seconds an alert waits before its roll-call goes out, during which HQ may send it at "
        "once or cancel it (a false alarm)"),
    INT(jma_aftershock_window_s, 0, 30 * 86400, 86400,
        "after a roll-call, another quake within this many seconds sends again only if "
        "stronger where it matched"),
    INT(jma_max_age_s, 0, 30 * 86400, 21600,
        "a telegram reported this many seconds or more before it was read starts no roll-call "
        "(a server back after a long outage, a long feed); 0: no limit"),
    BOOL(jma_drill, 0,
         "drill mode: telegrams marked 訓練 start roll-calls too, labelled 訓練 (試験 never do)"),
    STR(jma_author, "",
        "login of the account that posts alerts and roll-calls (an hq or admin "
        "account, a member of jma_hq_room)"),
    STR(jma_hq_room, "", "room id where an alert appears at once with its countdown (\"\": none)"),
    STR(jma_audience, "all",
        "who gets the roll-call: notice.post's `to` entries (all, "
        "dept:NAME, group:NAME, user:LOGIN) separated by spaces"),
    STR(jma_title, "【安否確認】{event}",
        "the roll-call's title; placeholders {event} {time} {epicentre} {magnitude} {place} "
        "{intensity} {drill}"),
    STR(jma_body,
        "{drill}{time}ごろ、{event}がありました。震源: {epicentre}、規模: M{magnitude}、"
        "{place}: {intensity}。無事かどうか、出勤できるかを答えてください。",
        "the roll-call's body, with the placeholders of jma_title"),
    STR(jma_choices, "無事・出勤可|無事・出勤不可|負傷|その他",
        "the roll-call's answers, separated by |"),
    BOOL(jma_urgent, 1, "the roll-call is urgent (pushed ahead of everything, notifications)"),
    BOOL(jma_ask_ack, 1, "the roll-call asks for a read acknowledgement"),
};
#define TABLE_LEN (sizeof table / sizeof table[0])

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static long long *int_at(struct kz_config *cfg, const struct cfg_entry *e)
{
    return (long long *)((char *)cfg + e->offset);
}

void kz_config_defaults(struct kz_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < TABLE_LEN; i++) {
        const struct cfg_entry *e = &table[i];
        if (e->type == CFG_STR)
            snprintf((char *)cfg + e->offset, e->size, "%s", e->dflt_str);
        else
            *int_at(cfg, e) = e->dflt;
    }
}

/* The settings by name, for a binary search: a capped field of a request (a message's body)
 * looks its setting up by name (kz_config_cap), and walking the table with strcmp cost ~700
 * instructions a message (callgrind). Names are unique (test_proto's settings tests). */
static const struct cfg_entry *by_name[TABLE_LEN];
static pthread_once_t by_name_once = PTHREAD_ONCE_INIT;

static int entry_name_cmp(const void *a, const void *b)
{
    return strcmp((*(const struct cfg_entry *const *)a)->name,
                  (*(const struct cfg_entry *const *)b)->name);
}

static void by_name_sort(void)
{
    for (size_t i = 0; i < TABLE_LEN; i++)
        by_name[i] = &table[i];
    qsort(by_name, TABLE_LEN, sizeof by_name[0], entry_name_cmp);
}

/* bsearch's comparison: a name against an entry of by_name. */
static int name_key_cmp(const void *key, const void *entry)
{
    return strcmp(key, (*(const struct cfg_entry *const *)entry)->name);
}

static const struct cfg_entry *find(const char *name)
{
    pthread_once(&by_name_once, by_name_sort);
    const struct cfg_entry *const *hit =
        bsearch(name, by_name, TABLE_LEN, sizeof by_name[0], name_key_cmp);
    return hit ? *hit : NULL;
}

static int set_int(struct kz_config *cfg, const struct cfg_entry *e, long long v, char *err,
                   size_t errlen)
{
    if (v < e->min || v > e->max) {
        snprintf(err, errlen, "%s: %lld is out of range [%lld, %lld]", e->name, v, e->min, e->max);
        return -1;
    }
    *int_at(cfg, e) = v;
    return 0;
}

static int set_str(struct kz_config *cfg, const struct cfg_entry *e, const char *v, char *err,
                   size_t errlen)
{
    if (strlen(v) >= e->size) {
        snprintf(err, errlen, "%s: value is longer than %zu bytes", e->name, e->size - 1);
        return -1;
    }
    if (*v && strlen(v) < (size_t)e->min) {
        /* The value is a secret: its length is said, never the value. */
        snprintf(err, errlen,
                 "%s: %zu characters is too short to be unguessable: at least %lld (e.g. "
                 "`openssl rand -hex 24`), or empty",
                 e->name, strlen(v), e->min);
        return -1;
    }
    snprintf((char *)cfg + e->offset, e->size, "%s", v);
    return 0;
}

static int set_level(struct kz_config *cfg, const struct cfg_entry *e, const char *v, char *err,
                     size_t errlen)
{
    int lv = kz_log_level_parse(v);
    if (lv < 0) {
        snprintf(err, errlen, "%s: '%s' is not one of error, warn, info, debug", e->name, v);
        return -1;
    }
    *int_at(cfg, e) = lv;
    return 0;
}

/* The edit distance of a and b (both short names), for "did you mean". */
static size_t distance(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b), row[64];
    if (na >= 64 || nb >= 64)
        return 64;
    for (size_t j = 0; j <= nb; j++)
        row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

/* The setting whose name is nearest to name (a typo), or NULL if none is near. */
static const char *nearest(const char *name)
{
    const char *best = NULL;
    size_t best_d = 4; /* more than three edits away is another word, not a typo */
    for (size_t i = 0; i < TABLE_LEN; i++) {
        size_t d = distance(name, table[i].name);
        if (d < best_d) {
            best_d = d;
            best = table[i].name;
        }
    }
    return best;
}

/* The value as the file has it, for a message: JSON text cut to 40 bytes, or "(hidden)" for a
 * secret setting's. */
static void value_text(const struct cfg_entry *e, const cJSON *item, char *out, size_t n)
{
    if (e && e->type == CFG_STR && e->min > 0) {
        snprintf(out, n, "(hidden)");
        return;
    }
    char *text = cJSON_PrintUnformatted(item);
    snprintf(out, n, "%.40s%s", text ? text : "?", text && strlen(text) > 40 ? "..." : "");
    cJSON_free(text);
}

/* Each refusal names the setting, the value given and what is allowed. */
static int apply_item(struct kz_config *cfg, const cJSON *item, char *err, size_t errlen)
{
    const struct cfg_entry *e = find(item->string);
    char v[64];
    value_text(e, item, v, sizeof v);
    if (!e) {
        const char *near = nearest(item->string);
        snprintf(err, errlen, "unknown setting '%.64s'%s%s%s (`kizunad config` lists them all)",
                 item->string, near ? ": did you mean " : "", near ? near : "", near ? "?" : "");
        return -1;
    }
    switch (e->type) {
    case CFG_STR:
    case CFG_LEVEL:
        if (!cJSON_IsString(item)) {
            snprintf(err, errlen, "%s: %s is not a string: %s", e->name, v,
                     e->type == CFG_LEVEL ? "one of \"error\", \"warn\", \"info\", \"debug\""
                                          : "a JSON string, in quotes");
            return -1;
        }
        return e->type == CFG_STR ? set_str(cfg, e, item->valuestring, err, errlen)
                                  : set_level(cfg, e, item->valuestring, err, errlen);
    case CFG_BOOL:
        if (!cJSON_IsBool(item)) {
            snprintf(err, errlen, "%s: %s is not a boolean: true or false, without quotes", e->name,
                     v);
            return -1;
        }
        *int_at(cfg, e) = cJSON_IsTrue(item);
        return 0;
    case CFG_INT: {
        double d = item->valuedouble;
        if (!cJSON_IsNumber(item) || d != (double)(long long)d) {
            snprintf(err, errlen, "%s: %s is not an integer: a whole number in [%lld, %lld]",
                     e->name, v, e->min, e->max);
            return -1;
        }
        return set_int(cfg, e, (long long)d, err, errlen);
    }
    }
    return -1;
}

/* Line and column (from 1) of offset in text. */
static void line_col(const char *text, size_t offset, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < offset && text[i]; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

int kz_config_check_json(struct kz_config *cfg, const char *json, FILE *out)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(json, &end, false);
    if (!root) {
        int line, col;
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= json ? (size_t)(at - json) : 0;
        line_col(json, off, &line, &col);
        fprintf(out,
                "  not valid JSON at line %d, column %d (near '%.20s'): the file must be one "
                "JSON object, {\"name\": value, ...}\n",
                line, col, json + off);
        return 1;
    }
    int problems = 0;
    if (!cJSON_IsObject(root)) {
        fprintf(out, "  the file is JSON but not an object: {\"name\": value, ...}\n");
        problems++;
    }
    const cJSON *item;
    if (cJSON_IsObject(root)) {
        cJSON_ArrayForEach(item, root)
        {
            char err[400];
            if (apply_item(cfg, item, err, sizeof err) != 0) {
                fprintf(out, "  %s\n", err);
                problems++;
            }
            for (const cJSON *again = item->next; again; again = again->next)
                if (strcmp(again->string, item->string) == 0) {
                    /* Not a problem to serve: a note, so the operator knows which one counts. */
                    fprintf(out, "  note: %s is set twice; the last value counts\n", item->string);
                    break;
                }
        }
    }
    cJSON_Delete(root);
    return problems;
}

int kz_config_apply_json(struct kz_config *cfg, const char *json, char *err, size_t errlen)
{
    cJSON *root = cJSON_Parse(json);
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        snprintf(err, errlen, "not a JSON object");
        goto out;
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, root)
    {
        if (apply_item(cfg, item, err, errlen) != 0)
            goto out;
    }
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

int kz_config_load_file(struct kz_config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    bool too_big = !feof(f);
    fclose(f);
    if (too_big) {
        snprintf(err, errlen, "%s: larger than %zu bytes", path, sizeof buf - 1);
        return -1;
    }
    buf[n] = '\0';
    char inner[200];
    if (kz_config_apply_json(cfg, buf, inner, sizeof inner) != 0) {
        snprintf(err, errlen, "%s: %s", path, inner);
        return -1;
    }
    return 0;
}

int kz_config_set(struct kz_config *cfg, const char *assignment, char *err, size_t errlen)
{
    const char *eq = strchr(assignment, '=');
    char name[64];
    if (!eq || (size_t)(eq - assignment) >= sizeof name) {
        snprintf(err, errlen, "expected NAME=VALUE, got '%s'", assignment);
        return -1;
    }
    memcpy(name, assignment, (size_t)(eq - assignment));
    name[eq - assignment] = '\0';
    const char *v = eq + 1;
    const struct cfg_entry *e = find(name);
    if (!e) {
        snprintf(err, errlen, "unknown setting '%s' (see `kizunad config`)", name);
        return -1;
    }
    switch (e->type) {
    case CFG_STR:
        return set_str(cfg, e, v, err, errlen);
    case CFG_LEVEL:
        return set_level(cfg, e, v, err, errlen);
    case CFG_BOOL:
        if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) {
            snprintf(err, errlen, "%s: expected true or false", name);
            return -1;
        }
        *int_at(cfg, e) = v[0] == 't';
        return 0;
    case CFG_INT: {
        char *end;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (errno || end == v || *end) {
            snprintf(err, errlen, "%s: '%s' is not an integer", name, v);
            return -1;
        }
        return set_int(cfg, e, n, err, errlen);
    }
    }
    return -1;
}

bool kz_config_cap(const struct kz_config *cfg, const char *name, long long *value, char *why,
                   size_t n)
{
    const struct cfg_entry *e = find(name);
    if (!e || !e->cap)
        return false;
    *value = *(const long long *)((const char *)cfg + e->offset);
    if (why) {
        /* The value goes where "%lld" is: the words are data, never a format. */
        const char *at = strstr(e->cap, "%lld");
        int head = at ? (int)(at - e->cap) : (int)strlen(e->cap);
        snprintf(why, n, "%.*s%lld%s", head, e->cap, *value, at ? at + 4 : "");
    }
    return true;
}

/* Settings kz_config_reload changes: each is read where it is used, on the loop thread, and
 * nothing was sized from it at start (max_connections set the descriptor limit, max_frame_bytes
 * the WebSocket buffers; the listeners, TLS files and the database are opened once). */
static const char *const reloadable[] = {
    "log_level",
    "requests_per_second",
    "request_burst",
    "max_message_bytes",
    "max_queue_bytes",
    "login_fail_max",
    "login_fail_max_per_address",
    "login_fail_window_s",
    "login_lockout_s",
    "password_min_length",
    "slow_op_ms",
    "room_max_members",
    "notice_max_body_bytes",
    "disk_retry_ms",
    "invite_max_uses",
    "invite_max_valid_days",
    "import_max_rows",
    "upload_quota_bytes",
    "e2ee_max_bytes",
    "metrics_token",
    "backup_alarm_hours",
    "ready_min_free_bytes",
    "ready_write_probe_s",
};

bool kz_config_reloadable(const char *name)
{
    for (size_t i = 0; i < sizeof reloadable / sizeof reloadable[0]; i++)
        if (strcmp(reloadable[i], name) == 0)
            return true;
    return false;
}

/* Appends text to out (NUL-terminated, cut at n). */
static void append(char *out, size_t n, const char *text)
{
    size_t len = strlen(out);
    if (len + 1 < n)
        snprintf(out + len, n - len, "%s%s", len ? " " : "", text);
}

int kz_config_reload(struct kz_config *live, const struct kz_config *fresh, char *changed, size_t n,
                     char *restart, size_t rn)
{
    int count = 0;
    changed[0] = restart[0] = '\0';
    for (size_t i = 0; i < TABLE_LEN; i++) {
        const struct cfg_entry *e = &table[i];
        char *to = (char *)live + e->offset;
        const char *from = (const char *)fresh + e->offset;
        bool same = e->type == CFG_STR ? strcmp(to, from) == 0
                                       : *(long long *)to == *(const long long *)from;
        if (same)
            continue;
        if (!kz_config_reloadable(e->name)) {
            append(restart, rn, e->name);
            continue;
        }
        char item[160];
        if (e->type == CFG_STR) {
            /* A string may be a secret: its name says it changed, never its value. */
            snprintf(item, sizeof item, "%s", e->name);
            snprintf(to, e->size, "%s", from);
        } else {
            long long was = *(long long *)to, now = *(const long long *)from;
            if (e->type == CFG_LEVEL)
                snprintf(item, sizeof item, "%s=%s->%s", e->name, level_names[was],
                         level_names[now]);
            else
                snprintf(item, sizeof item, "%s=%lld->%lld", e->name, was, now);
            *(long long *)to = now;
        }
        append(changed, n, item);
        count++;
    }
    return count;
}

void kz_config_describe(FILE *out)
{
    for (size_t i = 0; i < TABLE_LEN; i++) {
        const struct cfg_entry *e = &table[i];
        switch (e->type) {
        case CFG_STR:
            fprintf(out, "%-26s string  default \"%s\"\n", e->name, e->dflt_str);
            break;
        case CFG_LEVEL:
            fprintf(out, "%-26s level   default \"%s\"\n", e->name, level_names[e->dflt]);
            break;
        case CFG_BOOL:
            fprintf(out, "%-26s bool    default %s\n", e->name, e->dflt ? "true" : "false");
            break;
        case CFG_INT:
            fprintf(out, "%-26s integer default %lld, range [%lld, %lld]\n", e->name, e->dflt,
                    e->min, e->max);
            break;
        }
        fprintf(out, "%-26s   %s\n", "", e->doc);
    }
}
