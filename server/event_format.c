/* event_format.c - the room event format: building a payload, its id and room id, signing and
 * verifying it, reading it back and checking that it follows its log. Pure functions over
 * bytes (libsodium and cJSON only); see event_format.h and docs/event-format.md. */
#include "event_format.h"
#include "json_write.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* base64url (no padding) of BLAKE2b-256(domain || NUL || payload). */
static void hash_b64(const char *domain, const void *payload, size_t len,
                     char out[KZ_EVENT_ID_CHARS])
{
    unsigned char h[32];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    crypto_generichash_update(&st, (const unsigned char *)domain, strlen(domain) + 1);
    crypto_generichash_update(&st, payload, len);
    crypto_generichash_final(&st, h, sizeof h);
    sodium_bin2base64(out, KZ_EVENT_ID_CHARS, h, sizeof h,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

void kz_event_id(const void *payload, size_t len, char out[KZ_EVENT_ID_CHARS])
{
    hash_b64(KZ_EVENT_DOMAIN_ID, payload, len, out);
}

void kz_event_room_id(const void *payload, size_t len, char out[KZ_EVENT_ID_CHARS])
{
    hash_b64(KZ_EVENT_DOMAIN_ROOM, payload, len, out);
}

void kz_event_key_id(const uint8_t pk[KZ_EVENT_PK_BYTES], char out[KZ_EVENT_KEY_ID_CHARS])
{
    unsigned char h[32];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    crypto_generichash_update(&st, (const unsigned char *)KZ_EVENT_DOMAIN_KEYID,
                              sizeof KZ_EVENT_DOMAIN_KEYID); /* with its NUL */
    crypto_generichash_update(&st, pk, KZ_EVENT_PK_BYTES);
    crypto_generichash_final(&st, h, sizeof h);
    sodium_bin2base64(out, KZ_EVENT_KEY_ID_CHARS, h, 8, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int64_t kz_event_hlc_next(int64_t now_ms, int64_t room_max)
{
    return now_ms > room_max ? now_ms : room_max + 1;
}

/* "kizuna/event/v1" NUL payload, in a buffer the caller frees; NULL if out of memory. */
static unsigned char *signed_message(const void *payload, size_t len, size_t *mlen)
{
    static const char domain[] = KZ_EVENT_DOMAIN_SIGN; /* sizeof counts the NUL separator */
    unsigned char *msg = malloc(sizeof domain + len);
    if (!msg)
        return NULL;
    memcpy(msg, domain, sizeof domain);
    memcpy(msg + sizeof domain, payload, len);
    *mlen = sizeof domain + len;
    return msg;
}

int kz_event_sign(const void *payload, size_t len, const uint8_t sk[KZ_EVENT_SK_BYTES],
                  uint8_t sig[KZ_EVENT_SIG_BYTES])
{
    size_t mlen;
    unsigned char *msg = signed_message(payload, len, &mlen);
    if (!msg)
        return -1;
    int rc = crypto_sign_detached(sig, NULL, msg, mlen, sk);
    free(msg);
    return rc;
}

bool kz_event_verify(const void *payload, size_t len, const uint8_t *sig, size_t sig_len,
                     const uint8_t pk[KZ_EVENT_PK_BYTES])
{
    if (sig_len != KZ_EVENT_SIG_BYTES)
        return false;
    size_t mlen;
    unsigned char *msg = signed_message(payload, len, &mlen);
    bool good = msg && crypto_sign_verify_detached(sig, msg, mlen, pk) == 0;
    free(msg);
    return good;
}

char *kz_event_payload_build(const struct kz_event_fields *f, const cJSON *content, size_t *len)
{
    if (!cJSON_IsObject(content))
        return NULL;
    /* The order of the fields is the format's (docs/event-format.md): the bytes are the
     * event, so a builder that reordered them would make different events. Written directly
     * (json_write.c) with cJSON's escaping; the integers in plain decimal, as cJSON's %1.15g
     * writes every integer below 10^15, so events stored before read the same. */
    bool v2 = f->v >= 2;
    if (v2 && (f->v != KZ_EVENT_VERSION || !f->key))
        return NULL;
    struct kz_json j;
    kz_json_init(&j, 256);
    kz_json_raw(&j, "{", 1);
    if (v2) {
        kz_json_key(&j, "v");
        kz_json_int(&j, f->v);
    }
    if (f->room) {
        kz_json_key(&j, "room");
        kz_json_str(&j, f->room);
    }
    kz_json_key(&j, "origin");
    kz_json_str(&j, f->origin);
    kz_json_key(&j, "inc");
    kz_json_int(&j, f->inc);
    if (v2) {
        kz_json_key(&j, "key");
        kz_json_str(&j, f->key);
    }
    kz_json_key(&j, "seq");
    kz_json_int(&j, f->seq);
    kz_json_key(&j, "prev");
    if (f->prev)
        kz_json_str(&j, f->prev);
    else
        kz_json_raw(&j, "null", 4);
    if (v2) {
        kz_json_key(&j, "hlc");
        kz_json_int(&j, f->hlc);
    }
    kz_json_key(&j, "ts");
    kz_json_int(&j, f->ts);
    kz_json_key(&j, "type");
    kz_json_str(&j, f->type);
    kz_json_key(&j, "sender");
    kz_json_str(&j, f->sender);
    kz_json_key(&j, "content");
    kz_json_item(&j, content);
    kz_json_raw(&j, "}", 1);
    return kz_json_take(&j, len);
}

void kz_event_payload_free(char *payload)
{
    free(payload);
}

/* ---- reading a payload back ---- */

static bool b64url_valid(const char *s, size_t len)
{
    if (strlen(s) != len)
        return false;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_'))
            return false;
    return true;
}

static bool id_valid(const char *s)
{
    return b64url_valid(s, KZ_EVENT_ID_LEN);
}

static bool int_field(const cJSON *v, int64_t min, int64_t *out)
{
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    if (!(d >= (double)min && d <= (double)KZ_EVENT_INT_MAX) || d != (double)(int64_t)d)
        return false;
    *out = (int64_t)d;
    return true;
}

static bool str_field(const cJSON *v, size_t min, size_t max, char *out)
{
    if (!cJSON_IsString(v))
        return false;
    size_t n = strlen(v->valuestring);
    if (n < min || n > max)
        return false;
    memcpy(out, v->valuestring, n + 1);
    return true;
}

/* Every field of every version; F_V, F_KEY and F_HLC are v2's alone. */
enum {
    F_ROOM,
    F_ORIGIN,
    F_INC,
    F_SEQ,
    F_PREV,
    F_TS,
    F_TYPE,
    F_SENDER,
    F_CONTENT,
    F_V,
    F_KEY,
    F_HLC,
    F_COUNT
};
static const char *const field_names[F_COUNT] = {"room", "origin", "inc",     "seq", "prev", "ts",
                                                 "type", "sender", "content", "v",   "key",  "hlc"};

static const char *parse_fields(const cJSON *v[F_COUNT], struct kz_event_head *h)
{
    if (v[F_ROOM] && !(cJSON_IsString(v[F_ROOM]) && id_valid(v[F_ROOM]->valuestring)))
        return "room is not a room id";
    if (v[F_ROOM])
        memcpy(h->room, v[F_ROOM]->valuestring, KZ_EVENT_ID_CHARS);
    if (!str_field(v[F_ORIGIN], 1, KZ_EVENT_ORIGIN_MAX, h->origin))
        return "origin is not a server name";
    if (!int_field(v[F_INC], 1, &h->inc))
        return "inc is not an integer from 1";
    if (!int_field(v[F_SEQ], 1, &h->seq))
        return "seq is not an integer from 1";
    if (!int_field(v[F_TS], 0, &h->ts))
        return "ts is not an integer from 0";
    if (!str_field(v[F_TYPE], 1, KZ_EVENT_TYPE_MAX, h->type))
        return "type is not an event type";
    if (!str_field(v[F_SENDER], 1, KZ_EVENT_SENDER_MAX, h->sender))
        return "sender is not a login";
    if (!cJSON_IsObject(v[F_CONTENT]))
        return "content is not an object";
    if (h->seq == 1 ? !cJSON_IsNull(v[F_PREV])
                    : !(cJSON_IsString(v[F_PREV]) && id_valid(v[F_PREV]->valuestring)))
        return "prev is not null at seq 1 and an event id after it";
    if (h->seq > 1)
        memcpy(h->prev, v[F_PREV]->valuestring, KZ_EVENT_ID_CHARS);
    h->hlc = h->ts;
    if (h->v == 1)
        return NULL;
    if (!(cJSON_IsString(v[F_KEY]) && b64url_valid(v[F_KEY]->valuestring, KZ_EVENT_KEY_ID_LEN)))
        return "key is not a key id";
    memcpy(h->key, v[F_KEY]->valuestring, KZ_EVENT_KEY_ID_CHARS);
    if (!int_field(v[F_HLC], 0, &h->hlc))
        return "hlc is not an integer from 0";
    if (h->hlc < h->ts)
        return "hlc is below ts";
    return NULL;
}

const char *kz_event_parse(const void *payload, size_t len, struct kz_event_head *out,
                           cJSON **content)
{
    memset(out, 0, sizeof *out);
    cJSON *p = cJSON_ParseWithLength(payload, len);
    if (!cJSON_IsObject(p)) {
        cJSON_Delete(p);
        return "not a JSON object";
    }
    /* Each field once: a payload with two seq fields would read differently in different
     * JSON libraries, and one with fields this version does not know says something this
     * verifier cannot check. */
    const cJSON *v[F_COUNT] = {0};
    const char *why = NULL;
    for (const cJSON *it = p->child; it && !why; it = it->next) {
        int i = 0;
        while (i < F_COUNT && strcmp(it->string, field_names[i]) != 0)
            i++;
        if (i == F_COUNT)
            why = "a field this format does not have";
        else if (v[i])
            why = "a field given twice";
        else
            v[i] = it;
    }
    /* No v: v1, which has neither key nor hlc. */
    out->v = 1;
    if (!why && v[F_V]) {
        int64_t ver = 0;
        if (!int_field(v[F_V], 2, &ver) || ver != KZ_EVENT_VERSION)
            why = "a format version this reader does not know";
        else
            out->v = (int)ver;
    }
    for (int i = F_ORIGIN; i < F_COUNT && !why; i++)
        if (!v[i] && i < F_V)
            why = "a field is missing";
        else if (v[i] && i > F_V && out->v == 1)
            why = "a field this format does not have";
        else if (!v[i] && i > F_V && out->v >= 2)
            why = "a field is missing";
    if (!why)
        why = parse_fields(v, out);
    if (!why && !v[F_ROOM] && out->seq != 1)
        why = "only a room's first event (seq 1) may leave out the room";
    if (!why && content)
        *content = cJSON_DetachItemViaPointer(p, (cJSON *)v[F_CONTENT]);
    cJSON_Delete(p);
    return why;
}

/* ---- checking a log ---- */

const char *kz_event_verdict_name(enum kz_event_verdict v)
{
    switch (v) {
    case KZ_EVENT_OK:
        return "ok";
    case KZ_EVENT_MALFORMED:
        return "malformed";
    case KZ_EVENT_OTHER_LOG:
        return "other_log";
    case KZ_EVENT_STALE:
        return "stale";
    case KZ_EVENT_GAP:
        return "gap";
    case KZ_EVENT_BROKEN_CHAIN:
        return "broken_chain";
    case KZ_EVENT_BAD_ID:
        return "bad_id";
    case KZ_EVENT_BAD_SIGNATURE:
        return "bad_signature";
    case KZ_EVENT_WRONG_KEY:
        return "wrong_key";
    case KZ_EVENT_BAD_HLC:
        return "bad_hlc";
    case KZ_EVENT_UNSIGNED_RUN:
        return "unsigned_run";
    }
    return "?";
}

void kz_event_log_start(struct kz_event_log *log, const char *room, const char *origin, int64_t inc,
                        int64_t seq, const char *head)
{
    memset(log, 0, sizeof *log);
    snprintf(log->room, sizeof log->room, "%s", room ? room : "");
    snprintf(log->origin, sizeof log->origin, "%s", origin ? origin : "");
    log->inc = inc;
    log->seq = seq;
    snprintf(log->head, sizeof log->head, "%s", head ? head : "");
}

enum kz_event_verdict kz_event_log_check(struct kz_event_log *log, const void *payload, size_t len,
                                         const uint8_t *sig, size_t sig_len,
                                         const uint8_t pk[KZ_EVENT_PK_BYTES],
                                         const char *claimed_id, char id[KZ_EVENT_ID_CHARS])
{
    struct kz_event_head h;
    if (kz_event_parse(payload, len, &h, NULL))
        return KZ_EVENT_MALFORMED;
    /* A creation event names its room by its own hash. */
    char room[KZ_EVENT_ID_CHARS];
    if (h.room[0])
        memcpy(room, h.room, sizeof room);
    else
        kz_event_room_id(payload, len, room);
    if ((log->room[0] && strcmp(room, log->room) != 0) ||
        (log->origin[0] && strcmp(h.origin, log->origin) != 0) || (log->inc && h.inc != log->inc))
        return KZ_EVENT_OTHER_LOG;
    if (h.seq <= log->seq)
        return KZ_EVENT_STALE;
    if (h.seq > log->seq + 1)
        return KZ_EVENT_GAP;
    if (strcmp(h.prev, log->head) != 0)
        return KZ_EVENT_BROKEN_CHAIN;
    /* v2's clock orders the room: within a log it only rises (a v1 event counts its ts), and a
     * log that reached v2 does not go back to v1, which has no clock. */
    if (h.v >= 2 ? h.hlc <= log->hlc : log->v >= 2)
        return KZ_EVENT_BAD_HLC;
    char computed[KZ_EVENT_ID_CHARS];
    kz_event_id(payload, len, computed);
    if (claimed_id && strcmp(claimed_id, computed) != 0)
        return KZ_EVENT_BAD_ID;
    if (h.v >= 2) {
        char key[KZ_EVENT_KEY_ID_CHARS];
        kz_event_key_id(pk, key);
        if (strcmp(key, h.key) != 0)
            return KZ_EVENT_WRONG_KEY;
    }
    if (sig_len && !kz_event_verify(payload, len, sig, sig_len, pk))
        return KZ_EVENT_BAD_SIGNATURE;
    /* Bounded checkpoints: an unsigned v2 event may not make the run since the last signature
     * reach 64 events or 128 KiB (v1 had no bound: its logs are read as they are). */
    if (!sig_len && h.v >= 2 &&
        (log->run_events + 1 >= KZ_EVENT_CHECKPOINT_EVENTS ||
         log->run_bytes + (int64_t)len >= KZ_EVENT_CHECKPOINT_BYTES))
        return KZ_EVENT_UNSIGNED_RUN;
    memcpy(log->room, room, sizeof log->room);
    memcpy(log->origin, h.origin, sizeof log->origin);
    log->inc = h.inc;
    log->seq = h.seq;
    memcpy(log->head, computed, sizeof log->head);
    log->v = h.v;
    log->hlc = h.hlc;
    if (sig_len) {
        log->signed_seq = h.seq;
        log->run_events = log->run_bytes = 0;
    } else {
        log->run_events++;
        log->run_bytes += (int64_t)len;
    }
    if (id)
        memcpy(id, computed, KZ_EVENT_ID_CHARS);
    return KZ_EVENT_OK;
}
