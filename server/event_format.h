/* event_format.h - the room event format: the bytes of an event, its id, its signature and the
 * rules that chain a log, as pure functions over bytes (docs/event-format.md is the format;
 * tests/vectors/events/ holds its test vectors).
 *
 * Nothing here knows a database, a connection or a call: event_format.c links against
 * libsodium and cJSON only (the kzevent library), so the server (event_log.c), the test
 * harness's log checker and, later, federation's check of what peers send all use the same
 * code. Every function is reentrant and thread-safe once sodium_init() has run.
 *
 * An event is its payload: a JSON object serialised once by its origin server and never
 * re-serialised. Verifiers hash and check the bytes they were given; they never rebuild them.
 *   event id  = base64url(BLAKE2b-256("kizuna/id/v1" NUL payload)), no padding
 *   room id   = base64url(BLAKE2b-256("kizuna/room/v1" NUL payload)) of the room's first event
 *   signature = Ed25519 over "kizuna/event/v1" NUL payload, by the origin's key
 * Each (room, origin, inc) log numbers its events 1, 2, 3... (`seq`) and each event names the
 * id of the one before (`prev`), so a signature on an event covers every earlier one of its
 * log. */
#ifndef KIZUNA_EVENT_FORMAT_H
#define KIZUNA_EVENT_FORMAT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Domain-separation strings; each is followed by one NUL byte before the payload. */
#define KZ_EVENT_DOMAIN_ID   "kizuna/id/v1"
#define KZ_EVENT_DOMAIN_ROOM "kizuna/room/v1"
#define KZ_EVENT_DOMAIN_SIGN "kizuna/event/v1"
/* The signing key's id (v2's `key`): the first 8 bytes of BLAKE2b-256 of this string, NUL and
 * the 32-byte Ed25519 public key, in base64url without padding (11 characters). */
#define KZ_EVENT_DOMAIN_KEYID "kizuna/keyid/v1"

/* The format version new events are written in (the payload's `v`). A payload without `v` is
 * v1 (docs/event-format.md): readers take both. */
#define KZ_EVENT_VERSION 2

#define KZ_EVENT_ID_LEN     43 /* base64url of 32 bytes, no padding */
#define KZ_EVENT_ID_CHARS   (KZ_EVENT_ID_LEN + 1)
#define KZ_EVENT_ORIGIN_MAX 63 /* bytes of a server's name */
#define KZ_EVENT_TYPE_MAX   23 /* bytes of an event type */
#define KZ_EVENT_SENDER_MAX 64 /* bytes of a sender's login */
#define KZ_EVENT_SIG_BYTES  64
#define KZ_EVENT_PK_BYTES   32
#define KZ_EVENT_SK_BYTES   64
/* inc, seq and ts are JSON integers that every JSON reader holds exactly. */
#define KZ_EVENT_INT_MAX      9007199254740991LL
#define KZ_EVENT_KEY_ID_LEN   11 /* base64url of 8 bytes, no padding */
#define KZ_EVENT_KEY_ID_CHARS (KZ_EVENT_KEY_ID_LEN + 1)
/* Bounded checkpoints (v2): within a log, a run of unsigned events is shorter than 64 events
 * and than 128 KiB of payload, so any contiguous batch of at most 64 events can end on a
 * signed one. An origin may sign more often (the checkpoint_events and checkpoint_bytes
 * settings), never less. */
#define KZ_EVENT_CHECKPOINT_EVENTS 64
#define KZ_EVENT_CHECKPOINT_BYTES  131072

/* What an origin writes into a new event, in the order the payload lists them. */
struct kz_event_fields {
    int v;            /* the format version: KZ_EVENT_VERSION; 0 or 1 writes v1 (no v, key, hlc) */
    const char *room; /* the room's id; NULL for the event that creates the room */
    const char *origin; /* the origin server's name */
    int64_t inc;        /* its incarnation (1, bumped by each restore) */
    const char *key;    /* v2: the signing key's id (kz_event_key_id) */
    int64_t seq;        /* 1, 2, 3... within (room, origin, inc) */
    const char *prev;   /* the id of event seq - 1 of the same log; NULL for seq 1 */
    int64_t hlc;        /* v2: the hybrid logical clock (kz_event_hlc_next), at least ts */
    int64_t ts;         /* ms since the epoch, by the origin's clock */
    const char *type;   /* "msg", "member", ... (docs/protocol.md, "Events") */
    const char *sender; /* the sender's login */
};

/* Serialises an event: the fields above, then "content" (a JSON object; it stays the
 * caller's). Returns the payload, NUL-terminated, with its length (without the NUL) in *len;
 * the caller owns it and frees it with kz_event_payload_free. NULL if out of memory or content
 * is not an object. */
char *kz_event_payload_build(const struct kz_event_fields *f, const cJSON *content, size_t *len);
void kz_event_payload_free(char *payload);

/* The event id of a payload, written to out (caller's buffer). */
void kz_event_id(const void *payload, size_t len, char out[KZ_EVENT_ID_CHARS]);
/* The id of the room a creation payload creates, written to out (caller's buffer). */
void kz_event_room_id(const void *payload, size_t len, char out[KZ_EVENT_ID_CHARS]);
/* The id of an Ed25519 public key (KZ_EVENT_DOMAIN_KEYID), written to out (caller's buffer). */
void kz_event_key_id(const uint8_t pk[KZ_EVENT_PK_BYTES], char out[KZ_EVENT_KEY_ID_CHARS]);
/* A room's next hybrid logical clock value: max(now_ms, room_max + 1), where room_max is the
 * highest hlc the room has seen (0: none). It never goes back, whatever the clock does. */
int64_t kz_event_hlc_next(int64_t now_ms, int64_t room_max);
/* Signs a payload with an Ed25519 secret key (libsodium's 64-byte form) into sig (caller's).
 * -1 if out of memory. */
int kz_event_sign(const void *payload, size_t len, const uint8_t sk[KZ_EVENT_SK_BYTES],
                  uint8_t sig[KZ_EVENT_SIG_BYTES]);
/* Whether sig (sig_len bytes) is pk's signature of the payload. */
bool kz_event_verify(const void *payload, size_t len, const uint8_t *sig, size_t sig_len,
                     const uint8_t pk[KZ_EVENT_PK_BYTES]);

/* An event's fields read back from its payload. Strings are copies in the struct. */
struct kz_event_head {
    int v;                        /* 1 or 2 */
    char room[KZ_EVENT_ID_CHARS]; /* "" for a creation event (the payload has no room) */
    char origin[KZ_EVENT_ORIGIN_MAX + 1];
    int64_t inc, seq;
    char key[KZ_EVENT_KEY_ID_CHARS]; /* "" in v1 */
    char prev[KZ_EVENT_ID_CHARS];    /* "" for seq 1 (prev is null) */
    int64_t hlc;                     /* v1: ts (what the store holds for events made before v2) */
    int64_t ts;
    char type[KZ_EVENT_TYPE_MAX + 1];
    char sender[KZ_EVENT_SENDER_MAX + 1];
};
/* Reads a payload of either version: a JSON object with exactly the fields of its version
 * (v1: no v, key or hlc; v2: v = 2, key and hlc too) plus content (an object), each once and of
 * its type and size, prev null exactly at seq 1, room absent only from a creation event at
 * seq 1, and in v2 hlc at least ts. NULL on success, else why not (a static
 * string). If content is not NULL it receives the content, owned by the caller (cJSON_Delete),
 * on success only. */
const char *kz_event_parse(const void *payload, size_t len, struct kz_event_head *out,
                           cJSON **content);

/* ---- checking a log, event after event ---- */

enum kz_event_verdict {
    KZ_EVENT_OK = 0,
    KZ_EVENT_MALFORMED,     /* not a payload of this format (kz_event_parse says why) */
    KZ_EVENT_OTHER_LOG,     /* of another room, origin or incarnation */
    KZ_EVENT_STALE,         /* seq is at or below the last event taken */
    KZ_EVENT_GAP,           /* seq is past the next one: events are missing */
    KZ_EVENT_BROKEN_CHAIN,  /* prev is not the id of the event before */
    KZ_EVENT_BAD_ID,        /* the id it came with is not the hash of its bytes */
    KZ_EVENT_BAD_SIGNATURE, /* it carries a signature that does not verify */
    KZ_EVENT_WRONG_KEY,     /* v2: it names a key other than the one it is checked with */
    KZ_EVENT_BAD_HLC,       /* v2: its hlc is not above the previous event's, or v1 after v2 */
    KZ_EVENT_UNSIGNED_RUN,  /* v2: unsigned, and the run since the last signature is too long */
};
#define KZ_EVENT_VERDICT_LAST KZ_EVENT_UNSIGNED_RUN
/* "ok", "malformed", "other_log", "stale", "gap", "broken_chain", "bad_id", "bad_signature",
 * "wrong_key", "bad_hlc", "unsigned_run": the names test vectors use. A static string. */
const char *kz_event_verdict_name(enum kz_event_verdict v);

/* One log as far as it has been checked. The caller owns it; it holds no pointers. */
struct kz_event_log {
    char room[KZ_EVENT_ID_CHARS];         /* "" until the first event names it */
    char origin[KZ_EVENT_ORIGIN_MAX + 1]; /* "" until the first event names it */
    int64_t inc;                          /* 0 until the first event names it */
    int64_t seq;                          /* the last event taken (0: none) */
    char head[KZ_EVENT_ID_CHARS];         /* its id ("" when seq is 0) */
    int64_t signed_seq;                   /* the last event taken with a good signature (0: none) */
    int v;                                /* the last event's version (0: none taken) */
    int64_t hlc;                          /* its hlc (v1: its ts; 0: none taken) */
    int64_t run_events, run_bytes;        /* unsigned events (and their bytes) since signed_seq */
};
/* Starts checking a log after what the checker already holds: seq events whose last has id
 * head (seq 0 and head NULL for an empty log). room, origin and inc pin the log; NULL, NULL
 * and 0 take them from the first event checked (a creation event names its room by its
 * hash). */
void kz_event_log_start(struct kz_event_log *log, const char *room, const char *origin, int64_t inc,
                        int64_t seq, const char *head);
/* Checks that a payload is the next event of the log and, if so (KZ_EVENT_OK), takes it: seq,
 * head and, when sig_len > 0, signed_seq advance. A v2 event must name pk's key id, have an hlc
 * above the previous event's, and, if unsigned, leave the run of unsigned events since the
 * last signature (or since kz_event_log_start) under KZ_EVENT_CHECKPOINT_EVENTS events and
 * KZ_EVENT_CHECKPOINT_BYTES bytes; v1 events (made before bounded checkpoints) are exempt. sig may
 * be empty (sig_len 0: an event between checkpoints); a non-empty one must be pk's. claimed_id (may
 * be NULL) is the id the event came with. id (may be NULL; caller's buffer) receives the event's id
 * on success. A log is verified up to signed_seq: everything after it waits for a later checkpoint.
 */
enum kz_event_verdict kz_event_log_check(struct kz_event_log *log, const void *payload, size_t len,
                                         const uint8_t *sig, size_t sig_len,
                                         const uint8_t pk[KZ_EVENT_PK_BYTES],
                                         const char *claimed_id, char id[KZ_EVENT_ID_CHARS]);

#endif
