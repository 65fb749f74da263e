/* e2ee.h - what the CLI's end-to-end encryption files share (keystore.c, httpx.c, room.c,
 * photo.c, devices.c). The formats are docs/protocol.md "End-to-end encrypted photos". */
#ifndef KIZUNA_CLI_E2EE_H
#define KIZUNA_CLI_E2EE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli.h"
#include "media.h"

#define DEVICE_ID_MAX 32 /* 22 characters of base64url, and room to spare */
#define E2EE_DOMAIN   "kizuna/e2ee/v1"

/* ---- keystore.c: private files in the config directory ---- */

/* This device: its id and both key pairs. The secret halves are wiped by ks_device_wipe. */
struct ks_device {
    char id[DEVICE_ID_MAX];
    char login[128];
    struct media_device_keys k;
};

/* Writes config_dir/rel (printf-style) into out. */
void ks_path(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Writes data to path atomically (temporary file, fsync, rename) with mode 0600, making the
 * directories (0700) on the way. 0 or -1. */
int ks_write_private(const char *path, const void *data, size_t len);
/* The same for a JSON document. */
int ks_write_json(const char *path, const cJSON *doc);
/* Reads a whole file; the caller frees the result (NUL-terminated). NULL if unreadable. */
char *ks_read_file(const char *path, size_t *len);
/* Reads a JSON file; the caller deletes the result. NULL if missing or not JSON. */
cJSON *ks_read_json(const char *path);
/* Overwrites a file with zeros, then unlinks it. */
void ks_shred(const char *path);

/* Loads this device's keys, making them on first need, and registers them (device.register,
 * idempotent) on connection c. Keys of another login or server, or keys the server says were
 * revoked, are wiped and replaced. Returns an exit code; on EXIT_OK *out holds secrets the
 * caller wipes with ks_device_wipe. */
int ks_device_ensure(struct kzc *c, const struct session *s, struct ks_device *out);
void ks_device_wipe(struct ks_device *d);
/* Loads this device's keys from the config directory only (no server, nothing made); false if
 * there are none for this session's login and server. On true the caller wipes *out. */
bool ks_device_local(const struct session *s, struct ks_device *out);
/* The key that seals what a staged upload must not keep in plaintext (upload.c): BLAKE2b-256
 * keyed with this device's box secret key over "kizuna/staging/v1", so it is gone with
 * device.json (logout, a replaced device) and the staged state is unreadable without it. */
void ks_staging_key(const struct ks_device *d, uint8_t key[32]);
/* device id = base64url(BLAKE2b-128(sign_pk)). */
void ks_device_id(const uint8_t sign_pk[32], char out[DEVICE_ID_MAX]);

/* A room's key state: {"own":{epoch,key,created_at,count,devices,holders,keys_posted},
 * "keys":{"OWNER/EPOCH":{"owner","epoch","key","from"}}}: epoch keys are kept by the device that
 * owns the epoch and the epoch, never by the epoch alone (issue 14). "devices" are the member
 * devices our epoch was first sealed to, "holders" those we answered a key request for it since
 * (upload.c, room.c). The caller deletes the result (never NULL). */
cJSON *ks_room_load(const char *room_id);
int ks_room_save(const char *room_id, const cJSON *state);

/* ---- base64 helpers (keystore.c) ---- */

/* Unpadded base64url of bin; the caller frees the result. */
char *b64url(const uint8_t *bin, size_t n);
/* Decodes exactly n bytes of unpadded base64url; false otherwise. */
bool unb64url_exact(const char *text, uint8_t *out, size_t n);
/* Decodes unpadded base64url of any length; the caller frees *out. */
bool unb64url(const char *text, uint8_t **out, size_t *n);
/* Adds name: base64url(bin) to o. */
void add_b64(cJSON *o, const char *name, const uint8_t *bin, size_t n);

/* ---- httpx.c: the upload and blob endpoints over libcurl ---- */

struct hx_req {
    const char *method; /* GET, HEAD, POST, PATCH, DELETE */
    const char *url;
    const char *token;
    const char *const *headers; /* extra "Name: value" lines, NULL-terminated; may be NULL */
    const void *body;           /* request body (PATCH), body_len bytes; borrowed */
    size_t body_len;
    FILE *sink; /* a GET's body is appended here; NULL: kept (truncated) in resp->body */
};

struct hx_resp {
    long status;             /* 0 when no response came (error says why) */
    long long upload_offset; /* Upload-Offset, or -1 */
    long long range_start;   /* Content-Range start, or -1 */
    long long total;         /* Content-Range total (or the Content-Length of a 200), or -1 */
    char location[512];      /* Location, or "" */
    char error[256];         /* transport error text */
    char body[1024];         /* a small body (error JSON), NUL-terminated */
    bool sink_failed;        /* writing to sink failed */
};

/* Performs one request. Returns 0 when an HTTP response came (any status), -1 for a transport
 * error (resp->error). Nothing is retried here: the callers own the retry policy. */
int hx_perform(const struct hx_req *req, struct hx_resp *resp);
/* The HTTP base of the server URL (ws:// -> http://, wss:// -> https://, no trailing /). */
void hx_base(const char *server, char *out, size_t n);

/* ---- upload.c: staging, the tus upload, posting the message ---- */

/* `photo send` and `photo resume` are entries of the command table: cmd_photo_send and
 * cmd_photo_resume (cli.h). */
/* The staging directory's path of a file name. */
void staging_path(char *out, size_t n, const char *name);
/* The sealed part of a staged upload's state (caption, GPS, capture time, file name,
 * thumbnail, sizes, the blob's key), opened with this device's keys; NULL if it does not open.
 * The caller frees it with staging_secret_free, which overwrites it first. */
cJSON *staging_open(const struct ks_device *me, const cJSON *st);
void staging_secret_free(cJSON *secret);
/* This login's photos still being sent to a room from this device (in no set order):
 * [{"caption","created_at","offset","blob_len"}]. The caller deletes the result (never NULL). */
cJSON *staging_pending(const struct ks_device *me, const char *login, const char *room_id);
/* Connects with the saved session and makes sure this device is registered. The caller
 * closes *c and wipes *me. Returns an exit code. */
int connect_device(struct kzc **c, struct session *s, struct ks_device *me);

/* ---- retries (upload.c) ---- */

/* A retry budget: KIZUNA_RETRY_MAX_S seconds (default 300) from its start. */
struct retry {
    long long deadline_ms;
    int attempt;
};
void retry_start(struct retry *r);
/* Sleeps a jittered, growing delay; false once the budget is spent. */
bool retry_wait(struct retry *r, const char *why);
long long now_ms(void);

/* ---- trust.c: whose devices get keys (signed device lists, pins, verification) ---- */

/* device.list of login, every entry checked (a malformed one refuses the whole reply: issue 14,
 * item 2), its signed lists taken if they follow the version this device accepted before (told
 * on stderr when they changed). On EXIT_OK *dir (if dir) is the reply, the caller's to delete,
 * and *list (if list) the accepted newest list, NULL if the user has none; it stays valid until
 * the next call for that login. */
int trust_load(struct kzc *c, const char *login, cJSON **dir, const struct media_devlist **list);
/* What is wrong with a device.list (in_room: room.devices) entry; NULL if nothing. */
const char *trust_entry_bad(const cJSON *d, bool in_room);
/* Checks a room.devices reply the same way and moves every device that may not receive keys
 * (not in its owner's accepted list, other keys than the list's, or, for a contact the user
 * verified, added since and not accepted yet) out of its "devices" into *excluded (each with a
 * "why"), telling the user once per device. *excluded is the caller's to delete. */
int trust_room_devices(struct kzc *c, const struct ks_device *me, const char *room_id, cJSON *reply,
                       cJSON **excluded);
/* Whether any list of login this device accepted (or, reading the chain, can accept) names
 * the device: its events are the owner's. */
bool trust_vouched_ever(struct kzc *c, const char *login, const char *device);
/* After this device registered: signs the user's first list (or a new start when no listed
 * device is active any more), drops devices the server revoked from it, or notes that this
 * device waits for approval. An exit code. */
int trust_own(struct kzc *c, const struct ks_device *me);
enum trust_own_state { TRUST_OWN_UNKNOWN, TRUST_OWN_APPROVED, TRUST_OWN_PENDING };
enum trust_own_state trust_own_state(void);
/* Signs a new version of this user's list with the device id added (approve) or removed. */
int trust_approve(struct kzc *c, const struct ks_device *me, const char *id);
int trust_unlist(struct kzc *c, const struct ks_device *me, const char *id);
/* Whether this user verified login (and when, into *at). */
bool trust_verified(const char *login, long long *at);
/* Whether a device of login's list was accepted at the last verification (true if login was
 * never verified). */
bool trust_is_accepted(const char *login, const struct media_devlist_entry *d);
/* Remembers that this user verified login's devices as they are in l. */
void trust_mark_verified(const char *login, const struct media_devlist *l, long long now);
/* Signs the history policy of a room this user creates into args (policy_device, policy_sig). */
int trust_sign_policy(const struct ks_device *me, const char *history, cJSON *args);

/* ---- room.c: a room's encrypted events as this device sees them ---- */

struct room_view {
    struct kzc *c;        /* borrowed */
    struct ks_device *me; /* borrowed */
    char room_id[ROOM_ID_MAX];
    cJSON *events;         /* the room's e2ee.* events, oldest first (owned) */
    cJSON *devices;        /* room.devices: current member devices their owners' signed
                            * lists vouch for (trust.c): whom keys go to (owned) */
    cJSON *excluded;       /* room.devices that are not, each with "why" (owned) */
    cJSON *creation;       /* the room.create event, with the payload its id hashes (owned) */
    cJSON *dir;            /* device id -> device object, every device seen (owned) */
    cJSON *logins_fetched; /* logins whose device.list is in dir (owned) */
    cJSON *state;          /* ks_room_load (owned); saved by rv_free when dirty */
    cJSON *seqs;           /* device -> [[pos, counter]] of its photos that verify, built on
                            * first need (room.c, the order of a device's photos) */
    cJSON *removed;        /* device -> position of this room's line saying it was removed
                            * (revoked): nothing it signs after that counts (owned) */
    bool dirty;
    char history[8]; /* the room's policy: "shared", or "joined" (no keys from before one joined),
                      * as its creator signed it into the room's creation; "" if that does not
                      * check out (policy_why): then no key is shared later (issue 14, item 6) */
    char policy_why[200];
    char conflict[512]; /* rv_post: why the server refused with `conflict` ("" otherwise) */
};

/* Reads the room's devices and all its encrypted events, opens the key envelopes addressed to
 * this device and keeps their keys. Returns an exit code; on failure rv holds nothing. */
int rv_load(struct kzc *c, struct ks_device *me, const char *room_id, struct room_view *rv);
/* Saves the key state if it changed, and frees everything. */
void rv_free(struct room_view *rv);
/* Adds one e2ee.* event of this room that arrived after rv_load (tail), taking our key if it
 * is an e2ee.keys with an entry for us. False (nothing added) for another room or type, or an
 * event already in the view. */
bool rv_add(struct room_view *rv, const cJSON *ev);
/* Takes a `device` line of this room (tail: one that arrived after rv_load): where a device's
 * removal stands in the log is where its revocation does; the earliest seen is kept in the
 * room's state, so a server that drops or moves the line later does not move it. */
void rv_device_line(struct room_view *rv, const cJSON *ev);
/* Reads room.devices again (a device registered or left since rv_load). An exit code. */
int rv_reload_devices(struct room_view *rv);
/* NULL if the event's device signature, device self-signature and sender all check out;
 * otherwise which check failed (a static string). */
const char *rv_verify(struct room_view *rv, const cJSON *ev);
/* The directory entry of a device (fetching its owner's device.list if needed); NULL if
 * unknown. login may be NULL when unknown. */
const cJSON *rv_device(struct room_view *rv, const char *device, const char *login);
/* Whether device is one of the room's current member devices. */
bool rv_is_member_device(const struct room_view *rv, const char *device);
/* The key of epoch `epoch` of device `owner` if held; false otherwise. */
bool rv_key(struct room_view *rv, const char *owner, const char *epoch, uint8_t key[32]);
/* Keeps key as the key of (owner, epoch), received from device `from` (replacing any). */
void rv_keep_key(struct room_view *rv, const char *owner, const char *epoch, const uint8_t key[32],
                 const char *from);
/* A device that may hold the epoch's key but is no longer one of the room's current member
 * devices (revoked, logged out, or its owner left), into who (n bytes); false if there is none.
 * Who may hold it: the ids in also (a JSON array of strings, may be NULL) and every recipient
 * of an e2ee.keys event for the epoch in the room. Once this is true the epoch must not
 * encrypt anything more. */
bool rv_epoch_holder_gone(const struct room_view *rv, const char *epoch, const cJSON *also,
                          char *who, size_t n);
/* Signs and posts an encrypted event; *pos gets its position. Returns an exit code. A
 * `conflict` refusal (a key for a device that left, a photo under an epoch one holds) is not
 * printed: its message is in rv->conflict, for the caller to act on. */
int rv_post(struct room_view *rv, const char *type, const cJSON *blobs, const char *data,
            const char *client_id, long long *pos);
/* Seals the key of (owner, epoch) for one recipient device: {"to":..,"box":..}; NULL if the
 * device's keys are unknown or its self-signature fails. The caller deletes the result. */
cJSON *rv_envelope(struct room_view *rv, const char *owner, const char *epoch,
                   const uint8_t key[32], const char *to);
/* The key-check value of our own epoch, base64url, for the data of the events we sign (the
 * caller frees it); NULL on failure. */
char *rv_key_check(struct room_view *rv, const char *epoch, const uint8_t key[32]);
/* Answers other devices' key requests (e2ee.keys for current member devices, e2ee.withheld
 * otherwise), each once; a request its epoch's owner answered needs no other answer. Returns an
 * exit code. */
int rv_answer_requests(struct room_view *rv);

/* The highest photo counter of device among the room's photos that verify; 0 if none. */
long long rv_seq_max(struct room_view *rv, const char *device);

/* A photo message as this device can read it. */
enum photo_state { PHOTO_READY, PHOTO_WAITING, PHOTO_WITHHELD, PHOTO_BROKEN };
struct photo_view {
    enum photo_state state;
    char detail[256];  /* why it waits or which check failed */
    char warning[256]; /* what the user should know besides (out of order, photos before it
                        * missing, sent long before it arrived, a member's say on a key it does
                        * not own); "" if nothing */
    char epoch[64];
    char device[DEVICE_ID_MAX];
    char server[64]; /* the sending device's server (from "login@server"; "" if unknown): where
                      * a key it waits for comes from */
    cJSON *msg;      /* the decrypted photo JSON when READY (owned) */
};
/* Decrypts and checks one e2ee.photo event; when its key is missing, asks for it in the room
 * (once per epoch). A photo whose sender counter the device already used for an earlier photo is
 * refused as a replay; one delivered after photos its device sent later, or after a gap in its
 * device's counter, or long after its sender made it, carries a warning. Returns an exit code
 * (only network failures are errors); pv->msg is the caller's to delete. */
int rv_photo(struct room_view *rv, const cJSON *ev, struct photo_view *pv);

#endif
