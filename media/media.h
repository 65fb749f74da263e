/* media.h - JPEG handling and the end-to-end encryption formats (docs: ../shared/E2EE.md,
 * decisions E1-E12). No network, no database: clients (and tests) use all of this; the server
 * only probes JPEGs and hashes blobs, it never decrypts anything.
 *
 * Ownership, in one rule: a function that returns memory says how to free it; everything else
 * writes into buffers the caller owns. No function keeps a pointer to its arguments. All
 * functions are thread-safe (no global state beyond libsodium's own, initialised on demand). */
#ifndef KIZUNA_MEDIA_H
#define KIZUNA_MEDIA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Values are stable (they may be logged or compared across versions): append only. */
enum media_rc {
    MEDIA_OK = 0,
    MEDIA_NOT_JPEG,  /* the bytes are not a JPEG image */
    MEDIA_CORRUPT,   /* a JPEG that cannot be decoded (broken, truncated, hostile) */
    MEDIA_NOMEM,     /* out of memory */
    MEDIA_TOO_LARGE, /* image over MEDIA_MAX_EDGE / MEDIA_MAX_PIXELS, or blob over MEDIA_BLOB_MAX */
    MEDIA_UNSUPPORTED,    /* a valid JPEG we do not handle (CMYK / YCCK) */
    MEDIA_INVALID,        /* a bad argument from the caller (options out of range, misuse) */
    MEDIA_IO,             /* a read or write callback failed */
    MEDIA_AUTH,           /* envelope / AEAD: forged, damaged, or the wrong key */
    MEDIA_BLOB_FORMAT,    /* blob: bad magic, version or header field */
    MEDIA_BLOB_TAMPERED,  /* blob: a chunk does not authenticate (flipped bit, forged chunk) */
    MEDIA_BLOB_TRUNCATED, /* blob: the data stops inside the header or a chunk */
    MEDIA_BLOB_NO_FINAL,  /* blob: the data stops at a chunk boundary before the FINAL chunk */
    MEDIA_BLOB_TRAILING,  /* blob: bytes after the FINAL chunk */
    MEDIA_BLOB_REORDERED, /* blob: chunks authenticate, but not in this order */
    MEDIA_BLOB_HASH,      /* blob: BLAKE2b-256 differs from the expected blob id */
    MEDIA_BLOB_LENGTH,    /* blob: the declared true length does not fit the blob */
    MEDIA_FORMAT,         /* a signed device list that is not well-formed, or does not follow */
};

/* A stable, human-readable name for a result code (a static string). */
const char *media_rc_name(enum media_rc rc);
/* Whether the last TurboJPEG error on handle tj (a tjhandle) is only the warning about stray
 * bytes between segments, which leaves the image whole (internal to media/). */
bool media_tj_harmless_warning(void *tj);

/* ---- JPEG probe and EXIF ---------------------------------------------------------------- */

struct media_jpeg_info {
    int width, height;
};

/* Reads a JPEG's dimensions from its header without decoding the image. */
enum media_rc media_jpeg_probe(const unsigned char *buf, size_t len, struct media_jpeg_info *out);

/* What we read from EXIF. Everything else in EXIF (maker notes, comments, serial numbers) is
 * ignored here and dropped by media_photo_process. */
struct media_exif {
    int orientation;      /* 1..8 (TIFF Orientation); 1 when absent or out of range */
    bool has_captured_at; /* DateTimeOriginal (Exif IFD), else DateTime (IFD0) */
    char captured_at[20]; /* "YYYY-MM-DDTHH:MM:SS", camera local time (EXIF has no zone) */
    bool has_gps;         /* latitude and longitude both present and in range */
    double lat, lon;      /* signed degrees: south and west are negative */
};

/* Parses a TIFF structure (the body of an APP1 "Exif\0\0" segment, starting at "II"/"MM").
 * Any malformed part is skipped, never read out of bounds: fields it could not read stay
 * absent. MEDIA_CORRUPT only when there is no TIFF header at all. Reads IFD0, the Exif IFD and
 * the GPS IFD and follows no other pointers, so hostile offsets cannot make it loop. */
enum media_rc media_exif_from_tiff(const unsigned char *tiff, size_t len, struct media_exif *out);
/* Finds the first APP1 Exif segment before the image data and parses it. MEDIA_OK with nothing
 * set when there is no EXIF; MEDIA_NOT_JPEG when the bytes do not start with SOI. */
enum media_rc media_exif_from_jpeg(const unsigned char *jpeg, size_t len, struct media_exif *out);

/* ---- Photo pipeline (E6 step 1-2) ------------------------------------------------------- */

#define MEDIA_MAX_EDGE   16384       /* longest edge we decode, in pixels */
#define MEDIA_MAX_PIXELS 100000000LL /* width * height we decode */

struct media_photo_opts {
    int max_edge;           /* longest edge of the output; 0 keeps the size. Default 2048 */
    int quality;            /* JPEG quality 1..100 of the output. Default 85 */
    int thumb_edge;         /* longest edge of the thumbnail, >= 16. Default 320 */
    size_t thumb_max_bytes; /* thumbnail size limit, >= 4096. Default 12288 (E6: 12 KiB) */
};

/* The defaults above (a value, nothing to free). */
struct media_photo_opts media_photo_opts_default(void);

struct media_photo {
    unsigned char *image; /* upright JPEG with no metadata segments at all (only JFIF APP0) */
    size_t image_len;
    int width, height;    /* of image, after orientation */
    unsigned char *thumb; /* upright JPEG, longest edge <= thumb_edge, <= thumb_max_bytes */
    size_t thumb_len;
    int thumb_width, thumb_height;
    /* Metadata from EXIF, for the caller to put inside the encrypted message if the user
     * chooses to (E7): it is never in image or thumb. */
    bool has_captured_at;
    char captured_at[20];
    bool has_gps;
    double lat, lon;
};

/* Decodes a JPEG (DCT-scaled when max_edge allows), scales it so its longest edge is at most
 * max_edge, turns it upright by its EXIF orientation, re-encodes it without any metadata and
 * makes the thumbnail. opt may be NULL for the defaults.
 * Returns MEDIA_NOT_JPEG, MEDIA_CORRUPT (also for a truncated stream or any decoder warning:
 * we do not send half-grey photos), MEDIA_TOO_LARGE, MEDIA_UNSUPPORTED, MEDIA_INVALID (opts),
 * MEDIA_NOMEM. On success *out owns two buffers: release them with media_photo_free. On failure
 * *out holds nothing to free (media_photo_free on it is still harmless). */
enum media_rc media_photo_process(const unsigned char *jpeg, size_t len,
                                  const struct media_photo_opts *opt, struct media_photo *out);
/* Frees what media_photo_process put in p and zeroes it. Safe on a zeroed struct. */
void media_photo_free(struct media_photo *p);

/* ---- Encrypted blobs (E6 step 3-5) -------------------------------------------------------
 *
 * Layout (all integers big-endian):
 *   0  "KZB1"
 *   4  version, 1
 *   5  u32 chunk size C (plaintext bytes per chunk; we write 65536)
 *   9  u64 padded plaintext length P = media_blob_padded_len(true length)
 *   17 secretstream xchacha20poly1305 header (24 bytes)
 *   41 ceil(P / C) chunks of C + 17 bytes, the last one shorter (P - (n-1) C + 17) and tagged
 *      FINAL, all others tagged MESSAGE. Bytes 0-16 are the additional data of chunk 0, so the
 *      header is authenticated by the first chunk.
 * The plaintext is the true content followed by zero bytes up to P. P in the header lets the
 * reader tell truncation inside a chunk from a forged chunk; it reveals nothing the blob's
 * size does not. The blob id is BLAKE2b-256 of all of the blob's bytes.
 */

#define MEDIA_BLOB_KEYBYTES    32
#define MEDIA_BLOB_HASHBYTES   32
#define MEDIA_BLOB_CHUNK       65536
#define MEDIA_BLOB_HEADER      41
#define MEDIA_BLOB_MAX         (1ULL << 40) /* largest true length we encrypt */
#define MEDIA_BLOB_LEN_UNKNOWN UINT64_MAX

/* I/O callbacks. write: 0 on success, -1 on error (all len bytes or nothing). read: bytes read
 * (fewer than len only at end of input), 0 at end, -1 on error. */
typedef int (*media_write_fn)(void *ctx, const void *buf, size_t len);
typedef long (*media_read_fn)(void *ctx, void *buf, size_t len);
/* Adapters for stdio: pass the FILE * as ctx. */
int media_write_file(void *fp, const void *buf, size_t len);
long media_read_file(void *fp, void *buf, size_t len);

/* Signal's size bucket: max(541, floor(1.05^ceil(log_1.05 n))). Always >= n. */
uint64_t media_blob_padded_len(uint64_t n);

struct media_blob_info {
    uint8_t key[MEDIA_BLOB_KEYBYTES];   /* fresh random key: goes in the encrypted message */
    uint8_t hash[MEDIA_BLOB_HASHBYTES]; /* BLAKE2b-256 of the blob: the blob id (ct_hash) */
    uint64_t blob_len;                  /* bytes written */
    uint64_t plain_len;                 /* true length: goes in the encrypted message */
    uint64_t padded_len;                /* P */
};

/* Streaming encryptor: holds one chunk (64 KiB) of plaintext and one of ciphertext, never the
 * blob. The true length must be known up front (it fixes P and which chunk is FINAL).
 * begin: *out is owned by the caller until finish or abort, which free it. Errors:
 * MEDIA_TOO_LARGE (plain_len > MEDIA_BLOB_MAX), MEDIA_NOMEM, MEDIA_IO (writing the header). */
struct media_blob_enc;
enum media_rc media_blob_enc_begin(uint64_t plain_len, media_write_fn wr, void *wctx,
                                   struct media_blob_enc **out);
/* Feeds plaintext. MEDIA_INVALID if more than plain_len bytes in total; MEDIA_IO. After an
 * error only media_blob_enc_abort is allowed. */
enum media_rc media_blob_enc_update(struct media_blob_enc *e, const void *data, size_t len);
/* Pads, writes the FINAL chunk, fills *info and frees e (also on error). MEDIA_INVALID if fewer
 * than plain_len bytes were fed. info->key is secret: wipe it (sodium_memzero) when done. */
enum media_rc media_blob_enc_finish(struct media_blob_enc *e, struct media_blob_info *info);
/* Frees e and wipes its key; the partial output is useless. e may be NULL. */
void media_blob_enc_abort(struct media_blob_enc *e);
/* One call for a buffer in memory. */
enum media_rc media_blob_encrypt(const void *plain, size_t len, media_write_fn wr, void *wctx,
                                 struct media_blob_info *info);

/* Streaming decryptor. Writes plaintext as chunks authenticate: on any error the output so far
 * must be discarded (it fails closed, but it cannot unwrite). expect_hash (NULL: not checked)
 * is the blob id; it is compared at the end, after the FINAL chunk and the trailing check.
 * plain_len is the true length from the message, or MEDIA_BLOB_LEN_UNKNOWN:
 *  - known: it must give the header's P (else MEDIA_BLOB_LENGTH, before any output), exactly
 *    plain_len bytes are written and the padding must be zero (else MEDIA_BLOB_LENGTH: the
 *    sender declared less than it encrypted);
 *  - unknown: all P bytes, padding included, are written.
 * *written (may be NULL) gets the number of bytes written. Each failure has its own code, see
 * enum media_rc; a blob read over a different key gives MEDIA_BLOB_TAMPERED. Reordering is
 * recognised for chunks of full size. */
enum media_rc media_blob_decrypt(media_read_fn rd, void *rctx, media_write_fn wr, void *wctx,
                                 const uint8_t key[MEDIA_BLOB_KEYBYTES], const uint8_t *expect_hash,
                                 uint64_t plain_len, uint64_t *written);
/* BLAKE2b-256 of everything left in f (the server checks uploads with it; no key needed).
 * MEDIA_IO on a read error. */
enum media_rc media_blob_hash_file(FILE *f, uint8_t hash[MEDIA_BLOB_HASHBYTES]);

/* ---- Device keys, signatures, envelopes (E1, E4, E5, E12) ------------------------------ */

/* Two independent key pairs (E1): Ed25519 for signing, X25519 for crypto_box. The secret
 * halves are the caller's: wipe with media_device_keys_wipe. */
struct media_device_keys {
    uint8_t sign_pk[32], sign_sk[64];
    uint8_t box_pk[32], box_sk[32];
};
enum media_rc media_device_keys_new(struct media_device_keys *out);
void media_device_keys_wipe(struct media_device_keys *k);

#define MEDIA_DOMAIN_DEVKEY "kizuna/devkey/v1"
#define MEDIA_DOMAIN_KEYS   "kizuna/keys/v1"
#define MEDIA_DOMAIN_PHOTO  "kizuna/photo/v2" /* v1 had no counter and no time (issue 14) */

/* Ed25519 over domain || 0x00 || msg, so a signature made for one purpose never verifies for
 * another. domain is a NUL-terminated string. MEDIA_NOMEM only. */
enum media_rc media_sign(const char *domain, const void *msg, size_t len, const uint8_t sk[64],
                         uint8_t sig[64]);
/* true only for a valid signature by pk over the same domain and message. */
bool media_verify(const char *domain, const void *msg, size_t len, const uint8_t pk[32],
                  const uint8_t sig[64]);

/* The device self-signature (MEDIA_DOMAIN_DEVKEY) over u16 len || user || u16 len ||
 * device_id || sign_pk || box_pk. MEDIA_INVALID if user or device_id is longer than 65535. */
enum media_rc media_devkey_sign(const char *user, const char *device_id,
                                const struct media_device_keys *k, uint8_t sig[64]);
bool media_devkey_verify(const char *user, const char *device_id, const uint8_t sign_pk[32],
                         const uint8_t box_pk[32], const uint8_t sig[64]);

/* Key envelope (E4): 24-byte random nonce || crypto_box_easy(plain). Authenticated: only the
 * holder of sender_sk could have made it for this recipient. The shared key is symmetric, so
 * the box alone does not say which of the two sent it: put "from" and "to" in the plaintext,
 * as E4 does. out must hold len + MEDIA_ENVELOPE_OVERHEAD bytes. */
#define MEDIA_ENVELOPE_OVERHEAD (24 + 16)
enum media_rc media_envelope_seal(const void *plain, size_t len, const uint8_t sender_box_sk[32],
                                  const uint8_t recipient_box_pk[32], unsigned char *out);
/* plain must hold env_len - MEDIA_ENVELOPE_OVERHEAD bytes. MEDIA_AUTH for anything that does
 * not open (short, flipped bit, wrong sender or recipient key); plain is then zeroed. */
enum media_rc media_envelope_open(const unsigned char *env, size_t env_len,
                                  const uint8_t sender_box_pk[32],
                                  const uint8_t recipient_box_sk[32], unsigned char *plain);

/* Message AEAD (E5): 24-byte random nonce || xchacha20poly1305-ietf(plain, ad). ad may be NULL
 * when ad_len is 0. out must hold len + MEDIA_AEAD_OVERHEAD bytes. */
#define MEDIA_AEAD_OVERHEAD (24 + 16)
enum media_rc media_aead_seal(const void *plain, size_t len, const void *ad, size_t ad_len,
                              const uint8_t key[32], unsigned char *out);
/* plain must hold ct_len - MEDIA_AEAD_OVERHEAD bytes. MEDIA_AUTH on any mismatch. */
enum media_rc media_aead_open(const unsigned char *ct, size_t ct_len, const void *ad, size_t ad_len,
                              const uint8_t key[32], unsigned char *plain);

/* ---- Epoch keys bound to their owner (epoch.c) -------------------------------------------
 *
 * An epoch key belongs to the device that encrypts photos under it (its owner); receivers keep
 * it by (owner, epoch). The owner publishes, inside events it signs, the key-check value
 *   BLAKE2b-256(key = epoch key, "kizuna/keycheck/v1" 0 room 0 owner 0 epoch 0)
 * and a key forwarded by any other device is taken only if its check is that value. */

#define MEDIA_DOMAIN_KEYCHECK  "kizuna/keycheck/v1"
#define MEDIA_EPOCH_KEYBYTES   32
#define MEDIA_EPOCH_CHECKBYTES 32
/* Writes the key-check value of key as the epoch `epoch` of device `owner` in room `room` (all
 * NUL-terminated). MEDIA_NOMEM only (libsodium failed to start). */
enum media_rc media_epoch_check(const char *room, const char *owner, const char *epoch,
                                const uint8_t key[MEDIA_EPOCH_KEYBYTES],
                                uint8_t check[MEDIA_EPOCH_CHECKBYTES]);

/* A photo message (the photo JSON of docs/protocol.md) is padded and sealed under its epoch key:
 *   24-byte random nonce || XChaCha20-Poly1305(u32 big-endian length || message || zero bytes,
 *                                              additional data)
 * padded to media_photo_padded_len(length) bytes, the size buckets of blobs (item 5: what the
 * caption, file name, GPS and thumbnail weigh shows only as their bucket), with additional data
 * MEDIA_DOMAIN_PHOTO 0 room 0 epoch 0 device 0 seq 0 ts, seq and ts in decimal: the message is
 * bound to its room, its epoch, the device that sent it (the epoch's owner), that device's counter
 * of photos in the room (1, 2, ...) and the sender's clock when it made the message. The same seq
 * and ts travel in the event's signed data, so a receiver sees a replay (a counter it has seen), a
 * reordering (a counter lower than one before) and a drop (a counter skipped), whatever positions
 * and times the server gives. */
struct media_photo_ad {
    const char *room, *epoch, *device; /* NUL-terminated */
    uint64_t seq;                      /* 1, 2, ... (0 is refused) */
    int64_t ts;                        /* milliseconds since 1970, the sender's clock */
};
/* The padded plaintext's size for a message of len bytes: media_blob_padded_len(4 + len). */
size_t media_photo_padded_len(size_t len);
/* Seals len bytes of msg, padded. On MEDIA_OK *out (the caller frees it) holds *out_len bytes:
 * media_photo_padded_len(len) + MEDIA_AEAD_OVERHEAD. MEDIA_INVALID for seq 0 or a message over
 * 16 MiB, MEDIA_NOMEM. */
enum media_rc media_photo_seal(const struct media_photo_ad *ad, const void *msg, size_t len,
                               const uint8_t key[MEDIA_EPOCH_KEYBYTES], unsigned char **out,
                               size_t *out_len);
/* Opens a sealed photo message. On MEDIA_OK *msg (NUL-terminated; the caller wipes and frees
 * it) holds the *len bytes of the message, without its padding. MEDIA_AUTH for anything that
 * does not open under this key and these additional data (forged, damaged, moved to another
 * room, epoch or device, or given another counter or time) or whose padding is not as above (a
 * length past the end, bytes after the message that are not zero; the padded size itself may be
 * any), MEDIA_INVALID for seq 0, MEDIA_NOMEM. */
enum media_rc media_photo_open(const struct media_photo_ad *ad, const unsigned char *ct,
                               size_t ct_len, const uint8_t key[MEDIA_EPOCH_KEYBYTES], char **msg,
                               size_t *len);

/* ---- Safety numbers (E12) ---------------------------------------------------------------- */

struct media_device_pub {
    const char *device_id; /* borrowed, NUL-terminated */
    uint8_t sign_pk[32], box_pk[32];
};

/* One user's 30 digits: BLAKE2b-512 iterated 5200 times (as Signal) over the user id and the
 * devices sorted by (device_id, sign_pk, box_pk); the caller's array is not reordered.
 * out gets 30 digits and a NUL. MEDIA_INVALID for an id over 65535 bytes, MEDIA_NOMEM. */
#define MEDIA_FINGERPRINT_DIGITS 30
enum media_rc media_fingerprint(const char *user, const struct media_device_pub *devs, size_t n,
                                char out[MEDIA_FINGERPRINT_DIGITS + 1]);
/* The digit extraction of safety numbers, for other uses with their own domain string (the
 * federation fingerprint, server/fed.h): 5200 rounds of BLAKE2b-512, h = H(domain || 0x00 ||
 * m), then h = H(h || m); then `groups` (1-12) 5-byte big-endian numbers of h, each mod 100000,
 * as 5 digits each. out gets groups * 5 digits and a NUL. */
enum media_rc media_numeric_digits(const char *domain, const unsigned char *m, size_t len,
                                   int groups, char *out);
/* The 60-digit safety number of two users: both fingerprints in ascending order, so both
 * sides get the same string, written as 12 groups of 5 digits separated by single spaces. */
#define MEDIA_SAFETY_NUMBER_LEN (60 + 11)
enum media_rc media_safety_number(const char *user_a, const struct media_device_pub *devs_a,
                                  size_t n_a, const char *user_b,
                                  const struct media_device_pub *devs_b, size_t n_b,
                                  char out[MEDIA_SAFETY_NUMBER_LEN + 1]);

/* ---- Signed device lists (devlist.c) ----------------------------------------------------
 *
 * The devices a user vouches for (issue 14, item 1). Clients encrypt only to devices of a list
 * they accepted, so a device the server adds receives nothing. Encoding (integers big-endian):
 *   0  "KZDL", then version 1
 *   5  u8 login length L (1..128), then the login's L bytes: "login@server" (issue 19)
 *      u64 seq: 1, 2, ...; each version of a user's list is one more than the one before
 *      32 bytes prev: BLAKE2b-256 of the encoding of the version before, or 32 zero bytes for
 *      a root (the user's first list, or a new start once every device was lost)
 *      u8 n (0..MEDIA_DEVLIST_MAX), then n times sign_pk (32) || box_pk (32), sorted by sign_pk,
 *      no two the same
 * and nothing after: one encoding per list. A version is published with the id of the device
 * that signed it and its Ed25519 signature over MEDIA_DOMAIN_DEVLIST 0x00 || encoding.
 * A version follows the one before if its login is the same, its seq one more, and either its
 * prev is that version's hash and its signer one of that version's devices (a change made on an
 * existing device), or it is a root signed by one of its own devices (a new start: clients show
 * it and, for a contact they verified, trust none of its new devices until verified again). */

#define MEDIA_DOMAIN_DEVLIST    "kizuna/devlist/v1"
#define MEDIA_DEVLIST_MAX       64
#define MEDIA_DEVLIST_LOGIN_MAX 128
#define MEDIA_DEVLIST_ENCODED_MAX                                                                  \
    (6 + MEDIA_DEVLIST_LOGIN_MAX + 8 + 32 + 1 + 64 * MEDIA_DEVLIST_MAX)
#define MEDIA_DEVICE_ID_LEN 22 /* base64url of 16 bytes */

struct media_devlist_entry {
    char id[MEDIA_DEVICE_ID_LEN + 1]; /* base64url(BLAKE2b-128(sign_pk)), as the directory */
    uint8_t sign_pk[32], box_pk[32];
};

struct media_devlist {
    char login[MEDIA_DEVLIST_LOGIN_MAX + 1];
    uint64_t seq;
    uint8_t prev[32]; /* all zero: a root */
    uint8_t hash[32]; /* BLAKE2b-256 of the encoding (set by encode and decode) */
    size_t n;
    struct media_devlist_entry dev[MEDIA_DEVLIST_MAX];
};

/* A device's id: base64url(BLAKE2b-128(sign_pk)), 22 characters and a NUL. */
void media_device_id(const uint8_t sign_pk[32], char out[MEDIA_DEVICE_ID_LEN + 1]);
/* Encodes l into out (cap >= MEDIA_DEVLIST_ENCODED_MAX), sorting l->dev and filling the ids and
 * l->hash. MEDIA_INVALID for a bad login, seq 0, too many or repeated devices, a short cap. */
enum media_rc media_devlist_encode(struct media_devlist *l, unsigned char *out, size_t cap,
                                   size_t *len);
/* Decodes exactly one encoded list: MEDIA_FORMAT for anything else (bad magic or version, a
 * login that is empty, too long or has control characters, seq 0, devices unsorted, repeated
 * or over MEDIA_DEVLIST_MAX, missing or trailing bytes). */
enum media_rc media_devlist_decode(const unsigned char *buf, size_t len, struct media_devlist *out);
bool media_devlist_is_root(const struct media_devlist *l);
/* The index of the device with this id, or -1. */
int media_devlist_find(const struct media_devlist *l, const char *id);
/* The signature a device makes over an encoding. MEDIA_NOMEM only. */
enum media_rc media_devlist_sign(const unsigned char *enc, size_t len, const uint8_t sign_sk[64],
                                 uint8_t sig[64]);
/* Whether next (decoded from enc, len bytes; signed by the device `by` with sig) may follow
 * prev (NULL: next is the first version the reader takes, so it must be a root). MEDIA_OK;
 * MEDIA_INVALID if enc is not next's encoding; MEDIA_FORMAT if it does not follow (login, seq,
 * prev); MEDIA_AUTH if the signer may not sign it or the signature does not verify. */
enum media_rc media_devlist_follows(const struct media_devlist *prev,
                                    const struct media_devlist *next, const unsigned char *enc,
                                    size_t len, const char *by, const uint8_t sig[64]);

/* A room's history policy, signed by its creator's device when the room is created (issue 14,
 * item 6): Ed25519 over MEDIA_DOMAIN_POLICY 0x00 || u8 len || login || u8 len || history.
 * The signed statement goes into the room.create event, whose hash is the room's id, so it
 * cannot be changed or removed afterwards without changing the room. MEDIA_INVALID for a login
 * or history over 255 bytes. */
#define MEDIA_DOMAIN_POLICY "kizuna/policy/v1"
enum media_rc media_policy_sign(const char *login, const char *history, const uint8_t sign_sk[64],
                                uint8_t sig[64]);
bool media_policy_verify(const char *login, const char *history, const uint8_t sign_pk[32],
                         const uint8_t sig[64]);

#endif
