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

#define KZ_EVENT_ID_LEN     43 /* base64url of 32 bytes, no padding */
#define KZ_EVENT_ID_CHARS   (KZ_EVENT_ID_LEN + 1)
#define KZ_EVENT_ORIGIN_MAX 63 /* bytes of a server's name */
#define KZ_EVENT_TYPE_MAX   23 /* bytes of an event type */
#define KZ_EVENT_SENDER_MAX 64 /* bytes of a sender's login */
#define KZ_EVENT_SIG_BYTES  64
#define KZ_EVENT_PK_BYTES   32
#define KZ_EVENT_SK_BYTES   64
/* inc, seq and ts are JSON integers that every JSON reader holds exactly. */
#define KZ_EVENT_INT_MAX 9007199254740991LL

/* What an origin writes into a new event, in the order the payload lists them. */
struct kz_event_fields {
    const char *room;   /* the room's id; NULL for the event that creates the room */
    const char *origin; /* the origin server's name */
    int64_t inc;        /* its incarnation (1, bumped by each restore) */
    int64_t seq;        /* 1, 2, 3... within (room, origin, inc) */
    const char *prev;   /* the id of event seq - 1 of the same log; NULL for seq 1 */
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
/* Signs a payload with an Ed25519 secret key (libsodium's 64-byte form) into sig (caller's).
 * -1 if out of memory. */
int kz_event_sign(const void *payload, size_t len, const uint8_t sk[KZ_EVENT_SK_BYTES],
                  uint8_t sig[KZ_EVENT_SIG_BYTES]);
/* Whether sig (sig_len bytes) is pk's signature of the payload. */
bool kz_event_verify(const void *payload, size_t len, const uint8_t *sig, size_t sig_len,
                     const uint8_t pk[KZ_EVENT_PK_BYTES]);

/* An event's fields read back from its payload. Strings are copies in the struct. */
struct kz_event_head {
    char room[KZ_EVENT_ID_CHARS]; /* "" for a creation event (the payload has no room) */
    char origin[KZ_EVENT_ORIGIN_MAX + 1];
    int64_t inc, seq;
    char prev[KZ_EVENT_ID_CHARS]; /* "" for seq 1 (prev is null) */
    int64_t ts;
    char type[KZ_EVENT_TYPE_MAX + 1];
    char sender[KZ_EVENT_SENDER_MAX + 1];
};
/* Reads a payload: a JSON object with exactly the fields of struct kz_event_fields plus
 * content (an object), each once and of its type and size, prev null exactly at seq 1, and
 * room absent only from a creation event at seq 1. NULL on success, else why not (a static
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
};
/* "ok", "malformed", "other_log", "stale", "gap", "broken_chain", "bad_id", "bad_signature":
 * the names test vectors use. A static string. */
const char *kz_event_verdict_name(enum kz_event_verdict v);

/* One log as far as it has been checked. The caller owns it; it holds no pointers. */
struct kz_event_log {
    char room[KZ_EVENT_ID_CHARS];         /* "" until the first event names it */
    char origin[KZ_EVENT_ORIGIN_MAX + 1]; /* "" until the first event names it */
    int64_t inc;                          /* 0 until the first event names it */
    int64_t seq;                          /* the last event taken (0: none) */
    char head[KZ_EVENT_ID_CHARS];         /* its id ("" when seq is 0) */
    int64_t signed_seq;                   /* the last event taken with a good signature (0: none) */
};
/* Starts checking a log after what the checker already holds: seq events whose last has id
 * head (seq 0 and head NULL for an empty log). room, origin and inc pin the log; NULL, NULL
 * and 0 take them from the first event checked (a creation event names its room by its
 * hash). */
void kz_event_log_start(struct kz_event_log *log, const char *room, const char *origin, int64_t inc,
                        int64_t seq, const char *head);
/* Checks that a payload is the next event of the log and, if so (KZ_EVENT_OK), takes it: seq,
 * head and, when sig_len > 0, signed_seq advance. sig may be empty (sig_len 0: an event
 * between checkpoints); a non-empty one must be pk's. claimed_id (may be NULL) is the id the
 * event came with. id (may be NULL; caller's buffer) receives the event's id on success. A log
 * is verified up to signed_seq: everything after it waits for a later checkpoint. */
enum kz_event_verdict kz_event_log_check(struct kz_event_log *log, const void *payload, size_t len,
                                         const uint8_t *sig, size_t sig_len,
                                         const uint8_t pk[KZ_EVENT_PK_BYTES],
                                         const char *claimed_id, char id[KZ_EVENT_ID_CHARS]);

#endif
