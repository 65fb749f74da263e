/* room.c - a room's encrypted events as this device sees them: the device directory, the
 * signature on every event, the key envelopes addressed to us, photo decryption, and the key
 * request protocol (ask once for a missing key; answer others' requests when we hold it).
 *
 * Epoch keys are bound to the device that owns the epoch (issue 14, item 3): they are kept by
 * (owner, epoch); the owner's own envelope is the key, and a key another member forwards is
 * taken only if its check value is one the owner signed (media_epoch_check). A `withheld` from
 * anyone but the owner is advice shown to the user, and only answers whose signature verifies,
 * from this device or from the owner, count as answers: no member can stop the owner's key by
 * answering first.
 *
 * Each photo carries its device's counter in the room and its sender's clock, signed and under
 * the AEAD (item 4): a counter seen before is a replay and is refused; a counter lower than one
 * delivered before it, a gap in the counters and a clock far from the server's are shown with
 * the photo, so the server can neither repeat, reorder nor drop photos unseen. */
#include "e2ee.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define HISTORY_PAGE 200

static long long num_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? (long long)v->valuedouble : 0;
}

static void dir_add(struct room_view *rv, const cJSON *dev)
{
    const char *id = cli_str(dev, "device", NULL);
    if (*id && !cJSON_GetObjectItemCaseSensitive(rv->dir, id))
        cJSON_AddItemToObject(rv->dir, id, cJSON_Duplicate(dev, true));
}

const cJSON *rv_device(struct room_view *rv, const char *device, const char *login)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(rv->dir, device);
    if (d || !login || !*login || cJSON_GetObjectItemCaseSensitive(rv->logins_fetched, login))
        return d;
    /* A device not in the room now (revoked, or its owner left): ask its owner's directory,
     * every entry checked and the owner's signed lists taken (trust.c). */
    cJSON_AddTrueToObject(rv->logins_fetched, login);
    cJSON *reply = NULL;
    const cJSON *dev;
    if (trust_load(rv->c, login, &reply, NULL) == EXIT_OK)
        cJSON_ArrayForEach(dev, cJSON_GetObjectItemCaseSensitive(reply, "devices"))
            dir_add(rv, dev);
    cJSON_Delete(reply);
    return cJSON_GetObjectItemCaseSensitive(rv->dir, device);
}

bool rv_is_member_device(const struct room_view *rv, const char *device)
{
    const cJSON *d;
    cJSON_ArrayForEach(d, rv->devices) if (strcmp(cli_str(d, "device", NULL), device) ==
                                           0) return true;
    return false;
}

/* Checks a directory entry: its id is the hash of its signing key and its self-signature
 * binds both keys to its login. Fills the keys when good. */
static bool device_keys(const cJSON *dev, uint8_t sign_pk[32], uint8_t box_pk[32])
{
    uint8_t sig[64];
    char id[DEVICE_ID_MAX], who[CLI_QUALIFIED_MAX];
    if (!unb64url_exact(cli_str(dev, "sign_pk", NULL), sign_pk, 32) ||
        !unb64url_exact(cli_str(dev, "box_pk", NULL), box_pk, 32) ||
        !unb64url_exact(cli_str(dev, "sig", NULL), sig, 64))
        return false;
    ks_device_id(sign_pk, id);
    return strcmp(id, cli_str(dev, "device", NULL)) == 0 &&
           media_devkey_verify(cli_qualify(cli_str(dev, "login", NULL), who), id, sign_pk, box_pk,
                               sig);
}

/* room 0 type 0 (blob 0)* data: what a device signs (docs/protocol.md). */
static unsigned char *signed_bytes(const char *room, const char *type, const cJSON *blobs,
                                   const char *data, size_t *len)
{
    size_t n = strlen(room) + 1 + strlen(type) + 1 + strlen(data);
    const cJSON *b;
    cJSON_ArrayForEach(b, blobs) n += strlen(cJSON_IsString(b) ? b->valuestring : "") + 1;
    unsigned char *buf = malloc(n), *p = buf;
    if (!buf)
        return NULL;
    p = (unsigned char *)stpcpy((char *)p, room) + 1;
    p = (unsigned char *)stpcpy((char *)p, type) + 1;
    cJSON_ArrayForEach(b, blobs) p =
        (unsigned char *)stpcpy((char *)p, cJSON_IsString(b) ? b->valuestring : "") + 1;
    memcpy(p, data, strlen(data));
    *len = n;
    return buf;
}

void rv_device_line(struct room_view *rv, const cJSON *ev)
{
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(ev, "content");
    const char *device = cli_str(content, "device", NULL);
    long long pos = num_of(ev, "pos");
    if (strcmp(cli_str(ev, "event", NULL), "device") != 0 ||
        strcmp(cli_str(content, "change", NULL), "removed") != 0 || !*device || pos <= 0)
        return;
    for (int pinned = 0; pinned < 2; pinned++) {
        cJSON *map = pinned ? cJSON_GetObjectItemCaseSensitive(rv->state, "removed") : rv->removed;
        if (pinned && !cJSON_IsObject(map)) {
            cJSON_DeleteItemFromObjectCaseSensitive(rv->state, "removed");
            map = cJSON_AddObjectToObject(rv->state, "removed");
        }
        const cJSON *have = cJSON_GetObjectItemCaseSensitive(map, device);
        if (cJSON_IsNumber(have) && have->valuedouble > 0 && have->valuedouble <= (double)pos)
            continue;
        cJSON_DeleteItemFromObjectCaseSensitive(map, device);
        cJSON_AddNumberToObject(map, device, (double)pos);
        rv->dirty = rv->dirty || pinned;
    }
}

/* Where a device's revocation stands in the server's log of positions: the earliest of this
 * room's line saying it was removed, the one this device pinned before, and the directory's
 * revoked_pos (the newest position when it was revoked); 0 if none is known. */
static long long removed_pos(struct room_view *rv, const char *device, const cJSON *dev)
{
    const cJSON *at[] = {cJSON_GetObjectItemCaseSensitive(rv->removed, device),
                         cJSON_GetObjectItemCaseSensitive(
                             cJSON_GetObjectItemCaseSensitive(rv->state, "removed"), device),
                         cJSON_GetObjectItemCaseSensitive(dev, "revoked_pos")};
    long long best = 0;
    for (size_t i = 0; i < sizeof at / sizeof *at; i++)
        if (cJSON_IsNumber(at[i]) && at[i]->valuedouble >= 1 &&
            (!best || at[i]->valuedouble < (double)best))
            best = (long long)at[i]->valuedouble;
    return best;
}

const char *rv_verify(struct room_view *rv, const cJSON *ev)
{
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(ev, "content");
    const char *device = cli_str(content, "device", NULL), *sender = cli_str(ev, "sender", NULL);
    const cJSON *dev = rv_device(rv, device, sender);
    uint8_t sign_pk[32], box_pk[32], sig[64];
    if (!dev)
        return "the sending device is not in the directory";
    if (strcmp(cli_str(dev, "login", NULL), sender) != 0)
        return "the sending device is not the sender's";
    if (!device_keys(dev, sign_pk, box_pk))
        return "the sending device's self-signature does not verify";
    if (!trust_vouched_ever(rv->c, sender, device))
        return "the sending device was never in its owner's signed device list";
    /* Revocation is ordered by position in the log, never by the server's clock: the time an
     * event carries is the server's to write (issue 14, item 4). */
    long long removed = removed_pos(rv, device, dev);
    if (removed && num_of(ev, "pos") > removed)
        return "signed by a device after it was revoked (the log has its revocation before this "
               "event)";
    if (!removed && cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(dev, "revoked_at")))
        return "signed by a device that was revoked, and neither the room nor the directory says "
               "where in the log";
    if (!unb64url_exact(cli_str(content, "sig", NULL), sig, 64))
        return "the event has no device signature";
    size_t len;
    unsigned char *msg = signed_bytes(rv->room_id, cli_str(ev, "event", NULL),
                                      cJSON_GetObjectItemCaseSensitive(content, "blobs"),
                                      cli_str(content, "data", NULL), &len);
    bool good = msg && media_verify(E2EE_DOMAIN, msg, len, sign_pk, sig);
    free(msg);
    return good ? NULL : "the device signature does not verify";
}

/* The event's data, parsed; the caller deletes it. NULL if it is not a JSON object. */
static cJSON *event_data(const cJSON *ev)
{
    cJSON *d = cJSON_Parse(cli_str(ev, "content", "data"));
    if (!cJSON_IsObject(d)) {
        cJSON_Delete(d);
        return NULL;
    }
    return d;
}

/* ---- the order of a device's photos (issue 14, item 4) ---- */

#define JSON_INT_MAX  9007199254740991.0 /* 2^53 - 1: every whole number a JSON number holds */
#define CLOCK_SKEW_MS (10LL * 60 * 1000) /* a photo made this long before it arrived says so */

/* The sender's counter and clock in a photo's data; false unless both are whole numbers, the
 * counter from 1. */
static bool photo_seq_ts(const cJSON *data, long long *seq, long long *ts)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(data, "seq");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(data, "ts");
    if (!cJSON_IsNumber(s) || !cJSON_IsNumber(t) || !(s->valuedouble >= 1) ||
        !(s->valuedouble <= JSON_INT_MAX) || !(t->valuedouble >= 0) ||
        !(t->valuedouble <= JSON_INT_MAX) || s->valuedouble != (double)(long long)s->valuedouble ||
        t->valuedouble != (double)(long long)t->valuedouble)
        return false;
    *seq = (long long)s->valuedouble;
    *ts = (long long)t->valuedouble;
    return true;
}

/* Adds a photo event to rv->seqs if its signature verifies and it carries a counter. */
static void seq_note(struct room_view *rv, const cJSON *ev)
{
    if (strcmp(cli_str(ev, "event", NULL), "e2ee.photo") != 0 || rv_verify(rv, ev))
        return;
    cJSON *data = event_data(ev);
    long long seq, ts;
    if (data && photo_seq_ts(data, &seq, &ts)) {
        const char *device = cli_str(ev, "content", "device");
        cJSON *list = cJSON_GetObjectItemCaseSensitive(rv->seqs, device);
        if (!list)
            list = cJSON_AddArrayToObject(rv->seqs, device);
        cJSON *pair = cJSON_CreateArray();
        cJSON_AddItemToArray(pair, cJSON_CreateNumber((double)num_of(ev, "pos")));
        cJSON_AddItemToArray(pair, cJSON_CreateNumber((double)seq));
        cJSON_AddItemToArray(list, pair);
    }
    cJSON_Delete(data);
}

/* The [pos, counter] pairs of device's photos in the view; NULL if it has none. */
static const cJSON *seq_list(struct room_view *rv, const char *device)
{
    if (!rv->seqs) {
        rv->seqs = cJSON_CreateObject();
        const cJSON *ev;
        cJSON_ArrayForEach(ev, rv->events) seq_note(rv, ev);
    }
    return cJSON_GetObjectItemCaseSensitive(rv->seqs, device);
}

long long rv_seq_max(struct room_view *rv, const char *device)
{
    long long max = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, seq_list(rv, device))
    {
        long long seq = (long long)cJSON_GetArrayItem(p, 1)->valuedouble;
        max = seq > max ? seq : max;
    }
    return max;
}

/* Adds to pv->warning ("; " between two). */
static void warn(struct photo_view *pv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(struct photo_view *pv, const char *fmt, ...)
{
    size_t used = strlen(pv->warning);
    if (used && used + 2 < sizeof pv->warning)
        used += (size_t)snprintf(pv->warning + used, sizeof pv->warning - used, "; ");
    va_list ap;
    va_start(ap, fmt);
    if (used < sizeof pv->warning)
        vsnprintf(pv->warning + used, sizeof pv->warning - used, fmt, ap);
    va_end(ap);
}

/* Where the photo ev with counter seq stands among its device's photos: the position of an
 * earlier photo with the same counter (a replay: the caller refuses it), else 0, with warnings
 * for a photo delivered after one its device sent later, and for counters missing below it
 * (photos the server dropped, or that never came). */
static long long seq_check(struct room_view *rv, const cJSON *ev, long long seq,
                           struct photo_view *pv)
{
    long long pos = num_of(ev, "pos"), replay = 0, overtaken = 0, below = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, seq_list(rv, cli_str(ev, "content", "device")))
    {
        long long at = (long long)cJSON_GetArrayItem(p, 0)->valuedouble;
        long long s = (long long)cJSON_GetArrayItem(p, 1)->valuedouble;
        if (at == pos)
            continue;
        if (s == seq && at < pos && (!replay || at < replay))
            replay = at;
        if (s > seq && at < pos && (!overtaken || at < overtaken))
            overtaken = at;
        if (s < seq && s > below)
            below = s;
    }
    if (replay)
        return replay;
    if (overtaken)
        warn(pv, "out of order: its sender sent it before #%lld, which came first", overtaken);
    if (seq - below == 2)
        warn(pv,
             "1 photo its device sent before it is missing (counter %lld): the server dropped "
             "it, or it was never posted",
             below + 1);
    else if (seq - below > 2)
        warn(pv,
             "%lld photos its device sent before it are missing (counters %lld to %lld): the "
             "server dropped them, or they were never posted",
             seq - below - 1, below + 1, seq - 1);
    return 0;
}

bool rv_epoch_holder_gone(const struct room_view *rv, const char *epoch, const cJSON *also,
                          char *who, size_t n)
{
    const cJSON *id, *ev, *e;
    cJSON_ArrayForEach(id, also)
    {
        if (cJSON_IsString(id) && !rv_is_member_device(rv, id->valuestring)) {
            snprintf(who, n, "%s", id->valuestring);
            return true;
        }
    }
    /* Every envelope in the room counts, its signature checked or not: a false alarm costs a
     * new epoch (one e2ee.keys event), a holder missed is a photo a lost phone can read. */
    bool gone = false;
    cJSON_ArrayForEach(ev, rv->events)
    {
        if (gone || strcmp(cli_str(ev, "event", NULL), "e2ee.keys") != 0)
            continue;
        cJSON *data = event_data(ev);
        if (data && strcmp(cli_str(data, "epoch", NULL), epoch) == 0 &&
            strcmp(cli_str(data, "owner", NULL), rv->me->id) == 0) {
            cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(data, "entries"))
            {
                const char *to = cli_str(e, "to", NULL);
                if (!gone && *to && !rv_is_member_device(rv, to)) {
                    snprintf(who, n, "%s", to);
                    gone = true;
                }
            }
        }
        cJSON_Delete(data);
    }
    return gone;
}

/* Where the key of (owner, epoch) is kept in the state's "keys". */
static void key_slot(const char *owner, const char *epoch, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", owner, epoch);
}

bool rv_key(struct room_view *rv, const char *owner, const char *epoch, uint8_t key[32])
{
    char slot[200];
    key_slot(owner, epoch, slot, sizeof slot);
    const cJSON *k =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(rv->state, "keys"), slot);
    return *owner && *epoch && strcmp(cli_str(k, "owner", NULL), owner) == 0 &&
           strcmp(cli_str(k, "epoch", NULL), epoch) == 0 &&
           unb64url_exact(cli_str(k, "key", NULL), key, 32);
}

void rv_keep_key(struct room_view *rv, const char *owner, const char *epoch, const uint8_t key[32],
                 const char *from)
{
    char slot[200];
    key_slot(owner, epoch, slot, sizeof slot);
    cJSON *keys = cJSON_GetObjectItemCaseSensitive(rv->state, "keys");
    cJSON *old = cJSON_DetachItemFromObjectCaseSensitive(keys, slot);
    if (old && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(old, "key")))
        sodium_memzero(cJSON_GetObjectItemCaseSensitive(old, "key")->valuestring,
                       strlen(cJSON_GetObjectItemCaseSensitive(old, "key")->valuestring));
    cJSON_Delete(old);
    cJSON *k = cJSON_AddObjectToObject(keys, slot);
    cJSON_AddStringToObject(k, "owner", owner);
    cJSON_AddStringToObject(k, "epoch", epoch);
    add_b64(k, "key", key, 32);
    cJSON_AddStringToObject(k, "from", from);
    rv->dirty = true;
}

char *rv_key_check(struct room_view *rv, const char *epoch, const uint8_t key[32])
{
    uint8_t check[MEDIA_EPOCH_CHECKBYTES];
    if (media_epoch_check(rv->room_id, rv->me->id, epoch, key, check) != MEDIA_OK)
        return NULL;
    return b64url(check, sizeof check);
}

/* Whether the epoch's owner vouches for key: a key-check value in one of its own e2ee.keys or
 * e2ee.photo events of the epoch, whose signature verifies, is the key's. */
static bool owner_vouches(struct room_view *rv, const char *owner, const char *epoch,
                          const uint8_t key[32])
{
    uint8_t want[MEDIA_EPOCH_CHECKBYTES], got[MEDIA_EPOCH_CHECKBYTES];
    if (media_epoch_check(rv->room_id, owner, epoch, key, want) != MEDIA_OK)
        return false;
    bool found = false;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, rv->events)
    {
        const char *type = cli_str(ev, "event", NULL);
        if (found || (strcmp(type, "e2ee.keys") != 0 && strcmp(type, "e2ee.photo") != 0) ||
            strcmp(cli_str(ev, "content", "device"), owner) != 0)
            continue;
        cJSON *data = event_data(ev);
        found = data && strcmp(cli_str(data, "epoch", NULL), epoch) == 0 &&
                unb64url_exact(cli_str(data, "check", NULL), got, sizeof got) &&
                sodium_memcmp(got, want, sizeof got) == 0 && !rv_verify(rv, ev);
        cJSON_Delete(data);
    }
    return found;
}

/* Opens one envelope addressed to us, checks what it says about itself, and keeps the key if
 * it is the owner's: sealed by the owner (and matching the check the same event carries, if
 * any), or forwarded by another member and matching a check the owner signed. */
static void open_envelope(struct room_view *rv, const cJSON *ev, const cJSON *data, const char *box)
{
    const char *from = cli_str(ev, "content", "device");
    const char *epoch = cli_str(data, "epoch", NULL), *owner = cli_str(data, "owner", NULL);
    uint8_t sign_pk[32], box_pk[32];
    const cJSON *dev = rv_device(rv, from, cli_str(ev, "sender", NULL));
    uint8_t *env;
    size_t env_len;
    if (!dev || !device_keys(dev, sign_pk, box_pk) || !unb64url(box, &env, &env_len))
        return;
    if (env_len <= MEDIA_ENVELOPE_OVERHEAD) {
        free(env);
        return;
    }
    size_t plain_len = env_len - MEDIA_ENVELOPE_OVERHEAD;
    char *plain = calloc(1, plain_len + 1);
    cJSON *p = NULL;
    if (plain && media_envelope_open(env, env_len, box_pk, rv->me->k.box_sk,
                                     (unsigned char *)plain) == MEDIA_OK)
        p = cJSON_Parse(plain);
    uint8_t key[32], check[MEDIA_EPOCH_CHECKBYTES], own[MEDIA_EPOCH_CHECKBYTES];
    /* The box is authenticated, but the crypto_box key is shared by both ends: "from" and
     * "to" say which way it went, "room", "owner" and "epoch" that it was not moved from
     * elsewhere. */
    if (p && *owner && strcmp(cli_str(p, "room", NULL), rv->room_id) == 0 &&
        strcmp(cli_str(p, "epoch", NULL), epoch) == 0 &&
        strcmp(cli_str(p, "owner", NULL), owner) == 0 &&
        strcmp(cli_str(p, "from", NULL), from) == 0 &&
        strcmp(cli_str(p, "to", NULL), rv->me->id) == 0 &&
        unb64url_exact(cli_str(p, "key", NULL), key, 32)) {
        bool by_owner = strcmp(from, owner) == 0, take;
        if (by_owner)
            take = !*cli_str(data, "check", NULL) ||
                   (unb64url_exact(cli_str(data, "check", NULL), own, sizeof own) &&
                    media_epoch_check(rv->room_id, owner, epoch, key, check) == MEDIA_OK &&
                    sodium_memcmp(check, own, sizeof own) == 0);
        else
            take = owner_vouches(rv, owner, epoch, key);
        char slot[200];
        key_slot(owner, epoch, slot, sizeof slot);
        const cJSON *old = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(rv->state, "keys"), slot);
        /* Nothing replaces the owner's own envelope. A forwarded key that was taken matched the
         * owner's check, so the owner's envelope replaces it only to record where it came from. */
        if (take && (!old || (by_owner && strcmp(cli_str(old, "from", NULL), owner) != 0)))
            rv_keep_key(rv, owner, epoch, key, from);
        sodium_memzero(key, sizeof key);
    }
    if (plain)
        sodium_memzero(plain, plain_len);
    free(plain);
    free(env);
    cJSON_Delete(p);
}

/* Takes our key from an e2ee.keys event, if it has an entry for us. */
static void take_keys(struct room_view *rv, const cJSON *ev)
{
    if (strcmp(cli_str(ev, "event", NULL), "e2ee.keys") != 0 || rv_verify(rv, ev))
        return;
    cJSON *data = event_data(ev);
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(data, "entries"))
    {
        if (strcmp(cli_str(e, "to", NULL), rv->me->id) == 0)
            open_envelope(rv, ev, data, cli_str(e, "box", NULL));
    }
    cJSON_Delete(data);
}

/* Takes the keys of every e2ee.keys event that has an entry for us. */
static void collect_keys(struct room_view *rv)
{
    const cJSON *ev;
    cJSON_ArrayForEach(ev, rv->events) take_keys(rv, ev);
}

bool rv_add(struct room_view *rv, const cJSON *ev)
{
    long long pos = num_of(ev, "pos");
    const cJSON *have;
    if (strncmp(cli_str(ev, "event", NULL), "e2ee.", 5) != 0 ||
        strcmp(cli_str(ev, "room", NULL), rv->room_id) != 0)
        return false;
    cJSON_ArrayForEach(have, rv->events)
    {
        if (num_of(have, "pos") == pos)
            return false;
    }
    cJSON *copy = cJSON_Duplicate(ev, true);
    cJSON_AddItemToArray(rv->events, copy);
    take_keys(rv, copy);
    if (rv->seqs)
        seq_note(rv, copy);
    /* A check the owner signed may vouch for a key a member forwarded before it came. */
    cJSON *data = event_data(copy);
    uint8_t key[32];
    if (*cli_str(data, "check", NULL) &&
        !rv_key(rv, cli_str(copy, "content", "device"), cli_str(data, "epoch", NULL), key))
        collect_keys(rv);
    sodium_memzero(key, sizeof key);
    cJSON_Delete(data);
    return true;
}

/* A room.devices reply: the devices their owners' signed lists vouch for become rv->devices,
 * whom keys go to; the others rv->excluded (trust.c told the user why). */
static int take_devices(struct room_view *rv, cJSON *reply)
{
    cJSON *excluded = NULL;
    int rc = trust_room_devices(rv->c, rv->me, rv->room_id, reply, &excluded);
    if (rc != EXIT_OK) {
        cJSON_Delete(excluded);
        return rc;
    }
    cJSON_Delete(rv->devices);
    cJSON_Delete(rv->excluded);
    rv->devices = cJSON_DetachItemFromObjectCaseSensitive(reply, "devices");
    rv->excluded = excluded;
    const cJSON *d;
    cJSON_ArrayForEach(d, rv->devices) dir_add(rv, d);
    cJSON_ArrayForEach(d, rv->excluded) dir_add(rv, d);
    return EXIT_OK;
}

int rv_reload_devices(struct room_view *rv)
{
    cJSON *args = cJSON_CreateObject(), *reply;
    cJSON_AddStringToObject(args, "room", rv->room_id);
    int rc = cli_call(rv->c, "room.devices", args, &reply);
    if (rc != EXIT_OK)
        return rc;
    rc = take_devices(rv, reply);
    cJSON_Delete(reply);
    return rc;
}

/* Every e2ee.* event of the room, oldest first, by history pages. */
static int load_events(struct room_view *rv)
{
    long long after = 0;
    for (bool more = true; more;) {
        cJSON *args = cJSON_CreateObject(), *reply;
        cJSON_AddStringToObject(args, "room", rv->room_id);
        cJSON_AddNumberToObject(args, "after", (double)after);
        cJSON_AddNumberToObject(args, "limit", HISTORY_PAGE);
        int rc = cli_call(rv->c, "history", args, &reply);
        if (rc != EXIT_OK)
            return rc;
        cJSON *events = cJSON_GetObjectItemCaseSensitive(reply, "events");
        more = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "more"));
        for (cJSON *ev; (ev = cJSON_DetachItemFromArray(events, 0));) {
            if (num_of(ev, "pos") > after)
                after = num_of(ev, "pos");
            if (strcmp(cli_str(ev, "event", NULL), "device") == 0)
                rv_device_line(rv, ev); /* then deleted below */
            if (strncmp(cli_str(ev, "event", NULL), "e2ee.", 5) == 0)
                cJSON_AddItemToArray(rv->events, ev);
            else if (!rv->creation && strcmp(cli_str(ev, "event", NULL), "room.create") == 0)
                rv->creation = ev; /* its history policy: policy_check */
            else
                cJSON_Delete(ev);
        }
        cJSON_Delete(reply);
        if (more && cJSON_GetArraySize(events) == 0 && after == 0)
            break; /* no progress: never loop forever on a confused server */
    }
    return EXIT_OK;
}

static bool room_id_safe(const char *id)
{
    if (!*id)
        return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            return false;
    return true;
}

/* The room's history policy as its creator's device signed it into the room's creation (issue
 * 14, item 6), never the server's say: the room.create event's bytes must hash to the room's id
 * (so the server can neither change nor drop the policy without another id), and the policy
 * must verify with a device its creator's signed list vouches for. Otherwise rv->history is ""
 * and policy_why says why: no key of this room is then shared with anyone later. */
static void policy_check(struct room_view *rv)
{
    static const char domain[] = "kizuna/room/v1";
    const char *payload = cli_str(rv->creation, "payload", NULL), *why = NULL;
    cJSON *p = NULL;
    uint8_t h[32], spk[32], bpk[32], sig[64];
    char *id = NULL;
    rv->history[0] = '\0';
    if (*payload) {
        crypto_generichash_state st;
        crypto_generichash_init(&st, NULL, 0, sizeof h);
        crypto_generichash_update(&st, (const unsigned char *)domain, sizeof domain);
        crypto_generichash_update(&st, (const unsigned char *)payload, strlen(payload));
        crypto_generichash_final(&st, h, sizeof h);
        id = b64url(h, sizeof h);
    }
    const cJSON *content = NULL, *pol = NULL, *d = NULL;
    const char *creator = "", *history = "", *device = "";
    char qcreator[CLI_QUALIFIED_MAX];
    if (!*payload)
        why = "the server did not show the room's creation";
    else if (!id || strcmp(id, rv->room_id) != 0)
        why = "the room's creation as the server shows it is not the one its id names";
    else if (!(p = cJSON_Parse(payload)) || strcmp(cli_str(p, "type", NULL), "room.create") != 0)
        why = "the room's creation is malformed";
    if (!why) {
        content = cJSON_GetObjectItemCaseSensitive(p, "content");
        pol = cJSON_GetObjectItemCaseSensitive(content, "policy");
        creator = cli_str(p, "sender", NULL);
        history = cli_str(pol, "history", NULL);
        device = cli_str(pol, "device", NULL);
        if (!cJSON_IsObject(pol))
            why = "its creator signed no history policy";
        else if ((strcmp(history, "shared") != 0 && strcmp(history, "joined") != 0) ||
                 strcmp(history, cli_str(content, "history", NULL)) != 0)
            why = "its history policy is malformed";
        else if (!(d = rv_device(rv, device, creator)) ||
                 strcmp(cli_str(d, "login", NULL), creator) != 0 || !device_keys(d, spk, bpk))
            why = "the device that signed its history policy is not its creator's";
        else if (!trust_vouched_ever(rv->c, creator, device))
            why = "the device that signed its history policy was never in its creator's signed "
                  "device list";
        else if (!unb64url_exact(cli_str(pol, "sig", NULL), sig, 64) ||
                 !media_policy_verify(cli_qualify(creator, qcreator), history, spk, sig))
            why = "its history policy's signature does not verify";
    }
    if (why)
        snprintf(rv->policy_why, sizeof rv->policy_why,
                 "this room has no signed history policy (%s): keys are not shared later", why);
    else
        snprintf(rv->history, sizeof rv->history, "%s", history);
    free(id);
    cJSON_Delete(p);
}

/* Why a device of room.devices gets no keys (trust.c), or NULL if it is not excluded. */
static const char *excluded_why(const struct room_view *rv, const char *device)
{
    const cJSON *d;
    cJSON_ArrayForEach(d, rv->excluded)
    {
        if (strcmp(cli_str(d, "device", NULL), device) == 0)
            return cli_str(d, "why", NULL);
    }
    return NULL;
}

int rv_load(struct kzc *c, struct ks_device *me, const char *room_id, struct room_view *rv)
{
    memset(rv, 0, sizeof *rv);
    if (!room_id_safe(room_id)) {
        fprintf(stderr, "kizuna: the server gave a room id with unexpected characters\n");
        return EXIT_REFUSED;
    }
    rv->c = c;
    rv->me = me;
    snprintf(rv->room_id, sizeof rv->room_id, "%s", room_id);
    rv->events = cJSON_CreateArray();
    rv->dir = cJSON_CreateObject();
    rv->removed = cJSON_CreateObject();
    rv->logins_fetched = cJSON_CreateObject();
    rv->state = ks_room_load(room_id);
    cJSON *args = cJSON_CreateObject(), *reply;
    cJSON_AddStringToObject(args, "room", room_id);
    int rc = cli_call(c, "room.devices", args, &reply);
    if (rc == EXIT_OK) {
        /* Not the reply's "history": the policy is the one signed into the room's creation. */
        rc = take_devices(rv, reply);
        cJSON_Delete(reply);
    }
    if (rc == EXIT_OK)
        rc = load_events(rv);
    if (rc != EXIT_OK) {
        rv_free(rv);
        return rc;
    }
    policy_check(rv);
    collect_keys(rv);
    return EXIT_OK;
}

void rv_free(struct room_view *rv)
{
    if (rv->dirty && rv->state && ks_room_save(rv->room_id, rv->state) != 0)
        fprintf(stderr, "kizuna: cannot save the room's keys\n");
    /* The state holds epoch keys: wipe the key strings before freeing. */
    const cJSON *k;
    cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(rv->state, "keys"))
    {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(k, "key");
        if (cJSON_IsString(v))
            sodium_memzero(v->valuestring, strlen(v->valuestring));
    }
    cJSON_Delete(rv->state);
    cJSON_Delete(rv->seqs);
    cJSON_Delete(rv->removed);
    cJSON_Delete(rv->events);
    cJSON_Delete(rv->devices);
    cJSON_Delete(rv->excluded);
    cJSON_Delete(rv->creation);
    cJSON_Delete(rv->dir);
    cJSON_Delete(rv->logins_fetched);
    memset(rv, 0, sizeof *rv);
}

int rv_post(struct room_view *rv, const char *type, const cJSON *blobs, const char *data,
            const char *client_id, long long *pos)
{
    size_t len;
    uint8_t sig[64];
    unsigned char *msg = signed_bytes(rv->room_id, type, blobs, data, &len);
    if (!msg || media_sign(E2EE_DOMAIN, msg, len, rv->me->k.sign_sk, sig) != MEDIA_OK) {
        free(msg);
        return EXIT_REFUSED;
    }
    free(msg);
    cJSON *args = cJSON_CreateObject(), *reply;
    cJSON_AddStringToObject(args, "room", rv->room_id);
    cJSON_AddStringToObject(args, "type", type);
    cJSON_AddStringToObject(args, "device", rv->me->id);
    if (blobs)
        cJSON_AddItemToObject(args, "blobs", cJSON_Duplicate(blobs, true));
    cJSON_AddStringToObject(args, "data", data);
    add_b64(args, "sig", sig, 64);
    if (client_id)
        cJSON_AddStringToObject(args, "client_id", client_id);
    cJSON *content = cJSON_Duplicate(args, true);
    rv->conflict[0] = '\0';
    reply = kzc_call(rv->c, "e2ee.post", args, TIMEOUT_MS);
    if (!reply) {
        cJSON_Delete(content);
        return cli_unreachable(kzc_error(rv->c));
    }
    int rc = EXIT_REFUSED;
    if (strcmp(cli_str(reply, "error", "code"), "conflict") == 0)
        snprintf(rv->conflict, sizeof rv->conflict, "%s", cli_str(reply, "error", "message"));
    else
        rc = cli_check_reply(reply);
    if (rc != EXIT_OK) {
        cJSON_Delete(reply);
        cJSON_Delete(content);
        return rc;
    }
    *pos = num_of(reply, "pos");
    /* Keep our own event in the view, so the rest of this run sees it (no second answer). */
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "event", type);
    cJSON_AddNumberToObject(ev, "pos", (double)*pos);
    cJSON_AddNumberToObject(ev, "ts", (double)num_of(reply, "ts"));
    cJSON_AddStringToObject(ev, "sender", rv->me->login);
    cJSON_AddItemToObject(ev, "content", content);
    cJSON_AddItemToArray(rv->events, ev);
    if (rv->seqs)
        seq_note(rv, ev);
    cJSON_Delete(reply);
    return EXIT_OK;
}

cJSON *rv_envelope(struct room_view *rv, const char *owner, const char *epoch,
                   const uint8_t key[32], const char *to)
{
    const cJSON *dev = rv_device(rv, to, NULL);
    uint8_t sign_pk[32], box_pk[32];
    if (!dev || !device_keys(dev, sign_pk, box_pk))
        return NULL;
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "room", rv->room_id);
    cJSON_AddStringToObject(p, "owner", owner);
    cJSON_AddStringToObject(p, "epoch", epoch);
    add_b64(p, "key", key, 32);
    cJSON_AddStringToObject(p, "from", rv->me->id);
    cJSON_AddStringToObject(p, "to", to);
    char *plain = cJSON_PrintUnformatted(p);
    cJSON_Delete(p);
    size_t len = plain ? strlen(plain) : 0;
    unsigned char *env = plain ? malloc(len + MEDIA_ENVELOPE_OVERHEAD) : NULL;
    cJSON *entry = NULL;
    if (env && media_envelope_seal(plain, len, rv->me->k.box_sk, box_pk, env) == MEDIA_OK) {
        entry = cJSON_CreateObject();
        cJSON_AddStringToObject(entry, "to", to);
        add_b64(entry, "box", env, len + MEDIA_ENVELOPE_OVERHEAD);
    }
    if (plain)
        sodium_memzero(plain, len);
    cJSON_free(plain);
    free(env);
    return entry;
}

/* Whether the request of device `to` for the key of (owner, epoch), made at position `after`,
 * has been answered as far as this device is concerned: by an e2ee.keys or e2ee.withheld from
 * this device itself or from the epoch's owner, whose signature verifies. Another member's
 * answer does not count: it may be a wrong key or a refusal it has no say in, so each holder
 * answers once and the owner's answer settles it (a request costs one answer per device that
 * reads the room before the owner does; requests are rare: new phones and late joiners). */
static bool answered_after(struct room_view *rv, long long after, const char *to, const char *owner,
                           const char *epoch)
{
    const cJSON *ev;
    cJSON_ArrayForEach(ev, rv->events)
    {
        const char *type = cli_str(ev, "event", NULL), *by = cli_str(ev, "content", "device");
        bool keys = strcmp(type, "e2ee.keys") == 0;
        if (num_of(ev, "pos") <= after || (!keys && strcmp(type, "e2ee.withheld") != 0) ||
            (strcmp(by, rv->me->id) != 0 && strcmp(by, owner) != 0))
            continue;
        cJSON *data = event_data(ev);
        bool hit = strcmp(cli_str(data, "epoch", NULL), epoch) == 0 &&
                   strcmp(cli_str(data, "owner", NULL), owner) == 0;
        if (hit && keys) {
            hit = false;
            const cJSON *e;
            cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(data, "entries")) hit =
                hit || strcmp(cli_str(e, "to", NULL), to) == 0;
        } else if (hit) {
            hit = strcmp(cli_str(data, "to", NULL), to) == 0;
        }
        cJSON_Delete(data);
        if (hit && !rv_verify(rv, ev))
            return true;
    }
    return false;
}

/* An idempotency key per (request, answering device): a retried run never answers twice. */
static void answer_client_id(const cJSON *req, const char *me, char out[48])
{
    uint8_t h[18];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    const char *id = cli_str(req, "event_id", NULL);
    char pos[32];
    snprintf(pos, sizeof pos, "%lld", num_of(req, "pos"));
    crypto_generichash_update(&st, (const unsigned char *)pos, strlen(pos) + 1);
    crypto_generichash_update(&st, (const unsigned char *)id, strlen(id) + 1);
    crypto_generichash_update(&st, (const unsigned char *)me, strlen(me));
    crypto_generichash_final(&st, h, sizeof h);
    char *b = b64url(h, sizeof h);
    snprintf(out, 48, "ans-%s", b ? b : "");
    free(b);
}

/* Under history "joined": whether the requester's owner joined after the epoch began (its
 * first key envelope). Such a device must not get the key (E2EE.md E10). */
static bool joined_after_epoch(struct room_view *rv, const char *requester, const char *owner,
                               const char *epoch)
{
    if (strcmp(rv->history, "joined") != 0)
        return false;
    long long joined = -1, began = -1;
    const cJSON *d, *ev;
    cJSON_ArrayForEach(d, rv->devices) if (strcmp(cli_str(d, "device", NULL), requester) == 0)
        joined = num_of(d, "joined_pos");
    cJSON_ArrayForEach(ev, rv->events)
    {
        if (strcmp(cli_str(ev, "event", NULL), "e2ee.keys") != 0)
            continue;
        cJSON *data = event_data(ev);
        bool this_epoch = strcmp(cli_str(data, "epoch", NULL), epoch) == 0 &&
                          strcmp(cli_str(data, "owner", NULL), owner) == 0;
        cJSON_Delete(data);
        if (this_epoch) {
            began = num_of(ev, "pos");
            break;
        }
    }
    /* Unknown either way: refuse, as the policy is about keeping the past closed. */
    return joined < 0 || began < 0 || joined > began;
}

static int answer_one(struct room_view *rv, const cJSON *req, const char *requester,
                      const char *owner, const char *epoch, const uint8_t key[32])
{
    char client_id[48];
    answer_client_id(req, rv->me->id, client_id);
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "epoch", epoch);
    cJSON_AddStringToObject(data, "owner", owner);
    const char *type = "e2ee.keys", *why = NULL;
    cJSON *entry = NULL;
    if (!rv_is_member_device(rv, requester))
        why = excluded_why(rv, requester)
                  ? excluded_why(rv, requester)
                  : "the requesting device is not a current member device of this room (revoked, "
                    "or its owner left)";
    else if (!rv->history[0])
        why = rv->policy_why; /* no signed history policy: nothing is shared later */
    else if (joined_after_epoch(rv, requester, owner, epoch))
        why = "this room shares photos only from when one joined, and this epoch began before";
    else if (!(entry = rv_envelope(rv, owner, epoch, key, requester)))
        why = "the requesting device's keys do not verify";
    bool mine = strcmp(owner, rv->me->id) == 0;
    cJSON *own = cJSON_GetObjectItemCaseSensitive(rv->state, "own");
    if (entry && mine && strcmp(cli_str(own, "epoch", NULL), epoch) == 0) {
        /* Our current epoch now reaches one more device: remembered before it is posted, so
         * the epoch ends if that device leaves (upload.c), even if the server never shows us
         * this answer again. */
        cJSON *holders = cJSON_GetObjectItemCaseSensitive(own, "holders");
        if (!cJSON_IsArray(holders))
            holders = cJSON_AddArrayToObject(own, "holders");
        if (holders) {
            cJSON_AddItemToArray(holders, cJSON_CreateString(requester));
            ks_room_save(rv->room_id, rv->state);
        }
    }
    if (entry) {
        cJSON_AddStringToObject(data, "history", rv->history);
        char *check = mine ? rv_key_check(rv, epoch, key) : NULL;
        if (check)
            cJSON_AddStringToObject(data, "check", check);
        free(check);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(data, "entries"), entry);
    } else {
        type = "e2ee.withheld";
        cJSON_AddStringToObject(data, "to", requester);
        cJSON_AddStringToObject(data, "reason", why);
    }
    char *text = cJSON_PrintUnformatted(data);
    cJSON_Delete(data);
    long long pos;
    int rc = text ? rv_post(rv, type, NULL, text, client_id, &pos) : EXIT_REFUSED;
    cJSON_free(text);
    if (rc == EXIT_OK && !json_out)
        fprintf(stderr, "kizuna: %s the key of epoch %.8s… to device %s (#%lld)\n",
                entry ? "shared" : "withheld", epoch, requester, pos);
    if (rc == EXIT_REFUSED && rv->conflict[0]) {
        /* The device left after this view was read: nothing was posted, nothing to answer. */
        if (!json_out)
            fprintf(stderr, "kizuna: not sharing the key of epoch %.8s… with device %s: %s\n",
                    epoch, requester, rv->conflict);
        rc = EXIT_OK;
    }
    return rc;
}

int rv_answer_requests(struct room_view *rv)
{
    /* Requests are answered in order; answers this run posts join rv->events, so two
     * requests for the same key get one answer. The array grows while we walk it. */
    int n = cJSON_GetArraySize(rv->events);
    for (int i = 0; i < n; i++) {
        const cJSON *req = cJSON_GetArrayItem(rv->events, i);
        if (strcmp(cli_str(req, "event", NULL), "e2ee.key_request") != 0)
            continue;
        const char *requester = cli_str(req, "content", "device");
        if (strcmp(requester, rv->me->id) == 0 || rv_verify(rv, req))
            continue;
        cJSON *data = event_data(req);
        char epoch[80], owner[DEVICE_ID_MAX];
        snprintf(epoch, sizeof epoch, "%s", cli_str(data, "epoch", NULL));
        snprintf(owner, sizeof owner, "%s", cli_str(data, "owner", NULL));
        cJSON_Delete(data);
        uint8_t key[32];
        if (!rv_key(rv, owner, epoch, key))
            continue;
        int rc = EXIT_OK;
        if (!answered_after(rv, num_of(req, "pos"), requester, owner, epoch))
            rc = answer_one(rv, req, requester, owner, epoch, key);
        sodium_memzero(key, sizeof key);
        if (rc != EXIT_OK)
            return rc;
    }
    return EXIT_OK;
}

/* ---- photos ---- */

/* Ours is pending when we asked for the key of (owner, epoch) and the owner has not answered
 * us since (other members' answers do not settle it: see answered_after). */
static bool request_pending(struct room_view *rv, const char *owner, const char *epoch)
{
    const cJSON *ev;
    cJSON_ArrayForEach(ev, rv->events)
    {
        if (strcmp(cli_str(ev, "event", NULL), "e2ee.key_request") != 0 ||
            strcmp(cli_str(ev, "content", "device"), rv->me->id) != 0)
            continue;
        cJSON *data = event_data(ev);
        bool mine = strcmp(cli_str(data, "epoch", NULL), epoch) == 0 &&
                    strcmp(cli_str(data, "owner", NULL), owner) == 0;
        cJSON_Delete(data);
        if (mine && !answered_after(rv, num_of(ev, "pos"), rv->me->id, owner, epoch))
            return true;
    }
    return false;
}

/* The newest e2ee.withheld for us about the key of (owner, epoch) whose signature verifies, as
 * "device: reason": from the owner itself (by_owner: it decides) or from any other member
 * (advice only: the key is not theirs to refuse). False if none. */
static bool withheld_reason(struct room_view *rv, const char *owner, const char *epoch,
                            bool by_owner, char *out, size_t n)
{
    bool found = false;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, rv->events)
    {
        if (strcmp(cli_str(ev, "event", NULL), "e2ee.withheld") != 0 ||
            (strcmp(cli_str(ev, "content", "device"), owner) == 0) != by_owner)
            continue;
        cJSON *data = event_data(ev);
        if (strcmp(cli_str(data, "epoch", NULL), epoch) == 0 &&
            strcmp(cli_str(data, "owner", NULL), owner) == 0 &&
            strcmp(cli_str(data, "to", NULL), rv->me->id) == 0 && !rv_verify(rv, ev)) {
            snprintf(out, n, "device %s: %s", cli_str(ev, "content", "device"),
                     cli_str(data, "reason", NULL));
            found = true;
        }
        cJSON_Delete(data);
    }
    return found;
}

static int ask_for_key(struct room_view *rv, struct photo_view *pv)
{
    if (request_pending(rv, pv->device, pv->epoch))
        return EXIT_OK;
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "epoch", pv->epoch);
    cJSON_AddStringToObject(data, "owner", pv->device);
    char *text = cJSON_PrintUnformatted(data);
    cJSON_Delete(data);
    long long pos;
    int rc = text ? rv_post(rv, "e2ee.key_request", NULL, text, NULL, &pos) : EXIT_REFUSED;
    cJSON_free(text);
    return rc;
}

/* Decrypts the photo JSON and checks it names the blob the signed event names. */
static void open_photo(struct room_view *rv, const cJSON *ev, const cJSON *data,
                       const uint8_t key[32], long long seq, long long ts, struct photo_view *pv)
{
    uint8_t *ct;
    size_t ct_len;
    pv->state = PHOTO_BROKEN;
    if (!unb64url(cli_str(data, "ct", NULL), &ct, &ct_len) || ct_len < MEDIA_AEAD_OVERHEAD) {
        free(ct);
        snprintf(pv->detail, sizeof pv->detail, "integrity failure: no ciphertext");
        return;
    }
    /* The counter and time are under the AEAD too: the signed data and the sealed message
     * must say the same. */
    struct media_photo_ad ad = {rv->room_id, pv->epoch, pv->device, (uint64_t)seq, ts};
    char *plain = NULL;
    size_t plain_len = 0;
    bool opened = media_photo_open(&ad, ct, ct_len, key, &plain, &plain_len) == MEDIA_OK;
    free(ct);
    cJSON *msg = opened ? cJSON_Parse(plain) : NULL;
    if (plain)
        sodium_memzero(plain, plain_len);
    free(plain);
    const cJSON *blobs = cJSON_GetObjectItemCaseSensitive(ev, "content");
    blobs = cJSON_GetObjectItemCaseSensitive(blobs, "blobs");
    const cJSON *blob0 = cJSON_GetArrayItem(blobs, 0);
    if (!opened) {
        snprintf(pv->detail, sizeof pv->detail,
                 "integrity failure: the message does not decrypt under its epoch key");
    } else if (!cJSON_IsObject(msg)) {
        snprintf(pv->detail, sizeof pv->detail, "integrity failure: the message is not JSON");
    } else if (cJSON_GetArraySize(blobs) != 1 || !cJSON_IsString(blob0) ||
               strcmp(cli_str(msg, "image", "blob"), blob0->valuestring) != 0) {
        snprintf(pv->detail, sizeof pv->detail,
                 "integrity failure: the image is not the blob the signed event names");
    } else {
        pv->state = PHOTO_READY;
        snprintf(pv->detail, sizeof pv->detail, "ready");
        pv->msg = msg;
        return;
    }
    cJSON_Delete(msg);
}

int rv_photo(struct room_view *rv, const cJSON *ev, struct photo_view *pv)
{
    memset(pv, 0, sizeof *pv);
    snprintf(pv->device, sizeof pv->device, "%s", cli_str(ev, "content", "device"));
    char who[CLI_QUALIFIED_MAX];
    const char *at = strchr(cli_qualify(cli_str(ev, "sender", NULL), who), '@');
    snprintf(pv->server, sizeof pv->server, "%s", at ? at + 1 : "");
    const char *why = rv_verify(rv, ev);
    if (why) {
        pv->state = PHOTO_BROKEN;
        snprintf(pv->detail, sizeof pv->detail, "integrity failure: %s", why);
        return EXIT_OK;
    }
    cJSON *data = event_data(ev);
    snprintf(pv->epoch, sizeof pv->epoch, "%s", cli_str(data, "epoch", NULL));
    uint8_t key[32];
    int rc = EXIT_OK;
    char reason[200], sent[32];
    long long seq = 0, ts = 0, replay = 0;
    if (!data || !pv->epoch[0]) {
        pv->state = PHOTO_BROKEN;
        snprintf(pv->detail, sizeof pv->detail, "integrity failure: no epoch in the event");
    } else if (!photo_seq_ts(data, &seq, &ts)) {
        pv->state = PHOTO_BROKEN;
        snprintf(pv->detail, sizeof pv->detail,
                 "integrity failure: the event has no sender counter and time (an older "
                 "Kizuna's format, or forged)");
    } else if ((replay = seq_check(rv, ev, seq, pv))) {
        pv->state = PHOTO_BROKEN;
        snprintf(pv->detail, sizeof pv->detail,
                 "refused: a replay of #%lld (the same sender counter, %lld, from the same "
                 "device)",
                 replay, seq);
        pv->warning[0] = '\0';
    } else if (rv_key(rv, pv->device, pv->epoch, key)) {
        open_photo(rv, ev, data, key, seq, ts, pv);
        sodium_memzero(key, sizeof key);
    } else if (withheld_reason(rv, pv->device, pv->epoch, true, reason, sizeof reason)) {
        pv->state = PHOTO_WITHHELD;
        snprintf(pv->detail, sizeof pv->detail, "key of epoch %.8s… withheld by its owner, %s",
                 pv->epoch, reason);
    } else {
        pv->state = PHOTO_WAITING;
        snprintf(pv->detail, sizeof pv->detail,
                 "waiting for key of epoch %.8s… from device %s%s%s (requested)", pv->epoch,
                 pv->device, pv->server[0] ? " on server " : "", pv->server);
        if (withheld_reason(rv, pv->device, pv->epoch, false, reason, sizeof reason))
            warn(pv, "withheld by %.150s (not the key's owner: it may still come from its owner)",
                 reason);
        rc = ask_for_key(rv, pv);
    }
    if (seq && !replay && llabs(num_of(ev, "ts") - ts) > CLOCK_SKEW_MS) {
        cli_format_time((double)ts, sent, sizeof sent);
        warn(pv, "made %s by its sender's clock", sent);
    }
    cJSON_Delete(data);
    return rc;
}
