/* ops_devlist.c - what a user's own devices sign, as the server keeps and shows it (issue 14):
 * the signed device list (device.sign; its versions in device.list and room.devices), the lines
 * a room shows when a member's device is added, approved, unlisted or removed, and the history
 * policy a room's creator signs into the room's creation.
 *
 * The server is not trusted with any of it: clients check every version against the one they
 * saw before (media_devlist_follows) and encrypt only to devices a list they accepted names. The
 * server checks the same rules before it stores a version, so an honest server refuses what
 * clients would refuse, and it never stores a version that does not follow, which would block a
 * user's devices. */
#include "server.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "media.h"

_Static_assert(STORE_DEVLIST_MAX >= MEDIA_DEVLIST_ENCODED_MAX, "raise STORE_DEVLIST_MAX");

/* {"login","seq","list","by","sig","created_at"}: one version as clients receive it. */
static int devlist_row(void *arr, const struct store_devlist *d)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "login", d->login);
    cJSON_AddNumberToObject(o, "seq", (double)d->seq);
    kz_json_add_b64url(o, "list", d->list, d->len);
    cJSON_AddStringToObject(o, "by", d->by);
    kz_json_add_b64url(o, "sig", d->sig, sizeof d->sig);
    cJSON_AddNumberToObject(o, "created_at", (double)d->created_at);
    cJSON_AddItemToArray(arr, o);
    return 0;
}

enum kz_err srv_devlists_of_user(struct srv_call *c, int64_t user_id, cJSON *arr)
{
    if (store_devlist_each_of_user(srv_store(c->srv), user_id, devlist_row, arr) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "device lists failed");
    return KZ_OK;
}

enum kz_err srv_devlists_in_room(struct srv_call *c, int64_t room, cJSON *arr)
{
    if (store_devlist_each_in_room(srv_store(c->srv), room, devlist_row, arr) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "device lists failed");
    return KZ_OK;
}

/* ---- who a signature names ---- */

void srv_user_qualified(struct srv *s, const struct store_user *u, char out[SRV_QUALIFIED_MAX])
{
    if (u->home[0]) /* a user of another server is known here as login@server already */
        snprintf(out, SRV_QUALIFIED_MAX, "%s", u->login);
    else
        snprintf(out, SRV_QUALIFIED_MAX, "%.64s@%.63s", u->login, srv_server_id(s));
}

/* ---- lines in the rooms ---- */

/* In a shared room a device line carries the whole record, signed by the device itself, so
 * that the other servers know the device (and can check what it signs) even while its home
 * server is unreachable, and per-origin order puts it before any key envelope that uses it
 * (FEDERATION.md, "Device records"). */
static void add_record(cJSON *content, const struct store_device *d)
{
    kz_json_add_b64url(content, "sign_pk", d->sign_pk, sizeof d->sign_pk);
    kz_json_add_b64url(content, "box_pk", d->box_pk, sizeof d->box_pk);
    kz_json_add_b64url(content, "self_sig", d->self_sig, sizeof d->self_sig);
    cJSON_AddNumberToObject(content, "created_at", (double)d->created_at);
}

static enum kz_err device_event(struct srv_call *c, const struct store_room *r,
                                const struct store_device *d, const char *change, const char *by)
{
    cJSON *content = cJSON_CreateObject();
    cJSON_AddStringToObject(content, "user", d->login);
    cJSON_AddStringToObject(content, "device", d->device_id);
    cJSON_AddStringToObject(content, "label", d->label);
    cJSON_AddStringToObject(content, "change", change);
    if (by)
        cJSON_AddStringToObject(content, "by", by);
    if (r->authority[0])
        add_record(content, d);
    struct srv_appended ev;
    return srv_event_append(c, r, "device", content, &ev);
}

/* A `device.list` event: one version of a user's signed device list, for the other servers of
 * a shared room (this server keeps its own users' versions in device_lists). */
static enum kz_err devlist_event(struct srv_call *c, const struct store_room *r,
                                 const struct store_devlist *dl)
{
    cJSON *content = cJSON_CreateObject();
    cJSON_AddStringToObject(content, "user", dl->login);
    cJSON_AddNumberToObject(content, "seq", (double)dl->seq);
    kz_json_add_b64url(content, "list", dl->list, dl->len);
    cJSON_AddStringToObject(content, "by", dl->by);
    kz_json_add_b64url(content, "sig", dl->sig, sizeof dl->sig);
    struct srv_appended ev;
    return srv_event_append(c, r, "device.list", content, &ev);
}

struct device_line {
    struct srv_call *c;
    const struct store_device *d;
    const char *change, *by;
    const struct store_devlist *dl; /* or a device.list event in the shared ones */
    enum kz_err e;
};

static int device_line_in(void *arg, const struct store_room *r, const struct store_member *me)
{
    (void)me;
    struct device_line *l = arg;
    if (l->dl)
        l->e = r->authority[0] ? devlist_event(l->c, r, l->dl) : KZ_OK;
    else
        l->e = device_event(l->c, r, l->d, l->change, l->by);
    return l->e != KZ_OK;
}

static enum kz_err each_room_of(struct srv_call *c, int64_t user_id, struct device_line *l)
{
    if (store_room_each_of_user(srv_store(c->srv), user_id, device_line_in, l) != STORE_OK && !l->e)
        return srv_fail(c, KZ_INTERNAL, "cannot list the user's rooms");
    return l->e;
}

enum kz_err srv_device_line(struct srv_call *c, const struct store_device *d, const char *change,
                            const char *by)
{
    struct device_line l = {c, d, change, by, NULL, KZ_OK};
    return each_room_of(c, d->user_id, &l);
}

static int record_in(void *arg, const struct store_room *r, const struct store_member *me)
{
    (void)me;
    struct device_line *l = arg;
    l->e = r->authority[0] ? device_event(l->c, r, l->d, "present", NULL) : KZ_OK;
    return l->e != KZ_OK;
}

enum kz_err srv_device_record_publish(struct srv_call *c, const struct store_device *d)
{
    struct device_line l = {c, d, "present", NULL, NULL, KZ_OK};
    if (store_room_each_of_user(srv_store(c->srv), d->user_id, record_in, &l) != STORE_OK && !l.e)
        return srv_fail(c, KZ_INTERNAL, "cannot list the user's rooms");
    return l.e;
}

struct publish_ctx {
    struct srv_call *c;
    const struct store_room *r;
    enum kz_err e;
};

static int publish_device(void *arg, const struct store_device *d)
{
    struct publish_ctx *p = arg;
    if (!d->revoked_at)
        p->e = device_event(p->c, p->r, d, "present", NULL);
    return p->e != KZ_OK;
}

static int publish_list(void *arg, const struct store_devlist *dl)
{
    struct publish_ctx *p = arg;
    p->e = devlist_event(p->c, p->r, dl);
    return p->e != KZ_OK;
}

enum kz_err srv_devices_publish(struct srv_call *c, const struct store_room *r,
                                const struct store_user *u)
{
    struct store *st = srv_store(c->srv);
    if (!r->authority[0] || u->home[0])
        return KZ_OK; /* a room of this server only, or another server's user: its own job */
    struct publish_ctx p = {c, r, KZ_OK};
    if (store_device_each_of_user(st, u->id, publish_device, &p) != STORE_OK && !p.e)
        return srv_fail(c, KZ_INTERNAL, "cannot list the user's devices");
    if (p.e)
        return p.e;
    /* Every version, oldest first: clients accept a version only by following the chain from
     * a root (media_devlist_follows), and its signers' keys are in the versions themselves. */
    if (store_devlist_each_of_user(st, u->id, publish_list, &p) != STORE_OK && !p.e)
        return srv_fail(c, KZ_INTERNAL, "cannot list the user's device lists");
    return p.e;
}

/* ---- device.sign ---- */

/* The list version newer than `cur` (NULL: the user's first) that the caller sent, decoded
 * into next and checked against every rule clients check, and against the directory. */
static enum kz_err check_version(struct srv_call *c, const struct store_devlist *dl,
                                 const struct media_devlist *cur, struct media_devlist *next)
{
    struct store *st = srv_store(c->srv);
    if (media_devlist_decode(dl->list, dl->len, next) != MEDIA_OK)
        return srv_fail(c, KZ_BAD_REQUEST, "list is not an encoded device list (protocol.md)");
    char me[SRV_QUALIFIED_MAX];
    srv_user_qualified(c->srv, &c->auth.user, me);
    if (strcmp(next->login, me) != 0)
        return srv_fail(c, KZ_BAD_REQUEST, "a device list names its owner: yours is '%s'", me);
    /* A version signed before names were login@server (issue 19) names a bare login: the
     * user's next version starts anew (a root) rather than following it. */
    bool legacy = cur && strcmp(cur->login, me) != 0;
    if (legacy && !media_devlist_is_root(next))
        return srv_fail(c, KZ_BAD_REQUEST,
                        "your device list names you as '%s', from before names were "
                        "login@server: start it anew (a root signed by one of its own devices)",
                        cur->login);
    if (next->seq != (cur ? cur->seq + 1 : 1))
        return srv_fail(c, KZ_CONFLICT,
                        "your device list is at version %llu: read it again and sign version "
                        "%llu",
                        (unsigned long long)(cur ? cur->seq : 0),
                        (unsigned long long)(cur ? cur->seq + 1 : 1));
    switch (media_devlist_follows(legacy ? NULL : cur, next, dl->list, dl->len, dl->by, dl->sig)) {
    case MEDIA_OK:
        break;
    case MEDIA_AUTH:
        return srv_fail(c, KZ_BAD_REQUEST,
                        "the signature does not verify, or device %s may not sign this version "
                        "(a change is signed by a device of the version before; a new start by "
                        "one of its own)",
                        dl->by);
    default:
        return srv_fail(c, KZ_BAD_REQUEST, "this version does not follow version %llu",
                        (unsigned long long)(cur ? cur->seq : 0));
    }
    for (size_t i = 0; i < next->n; i++) {
        struct store_device d;
        enum store_rc rc = store_device_get(st, next->dev[i].id, &d);
        if (rc != STORE_OK && rc != STORE_NOT_FOUND)
            return srv_fail(c, KZ_INTERNAL, "device lookup failed");
        if (rc == STORE_NOT_FOUND || d.user_id != c->auth.user.id || d.revoked_at ||
            memcmp(d.box_pk, next->dev[i].box_pk, 32) != 0)
            return srv_fail(c, KZ_CONFLICT,
                            "device %s is not an active device of yours with these keys",
                            next->dev[i].id);
    }
    return KZ_OK;
}

/* Lines in the user's rooms for what changed between cur and next. */
static enum kz_err list_lines(struct srv_call *c, const struct media_devlist *cur,
                              const struct media_devlist *next, const char *by)
{
    struct store *st = srv_store(c->srv);
    enum kz_err e = KZ_OK;
    for (size_t i = 0; !e && i < next->n; i++) {
        struct store_device d;
        if ((cur && media_devlist_find(cur, next->dev[i].id) >= 0) ||
            store_device_get(st, next->dev[i].id, &d) != STORE_OK)
            continue;
        e = srv_device_line(c, &d, "approved", by);
    }
    for (size_t i = 0; !e && cur && i < cur->n; i++) {
        struct store_device d;
        /* A revoked device had its line ("removed") when it was revoked. */
        if (media_devlist_find(next, cur->dev[i].id) >= 0 ||
            store_device_get(st, cur->dev[i].id, &d) != STORE_OK || d.revoked_at)
            continue;
        e = srv_device_line(c, &d, "unlisted", by);
    }
    return e;
}

enum kz_err op_device_sign(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    struct store_devlist *dl = calloc(1, sizeof *dl), *old = calloc(1, sizeof *old);
    struct media_devlist *next = malloc(sizeof *next), *cur = malloc(sizeof *cur);
    enum kz_err e = KZ_OK;
    size_t len = 0;
    const char *list = srv_arg_str(c, "list"), *by = srv_arg_str(c, "device");
    if (!dl || !old || !next || !cur) {
        e = srv_fail(c, KZ_INTERNAL, "out of memory");
        goto out;
    }
    if (sodium_base642bin(dl->list, sizeof dl->list, list, strlen(list), NULL, &len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        !kz_b64url_exact(srv_arg_str(c, "sig"), dl->sig, sizeof dl->sig)) {
        e = srv_fail(c, KZ_BAD_REQUEST, "list and sig are unpadded base64url, sig 64 bytes");
        goto out;
    }
    dl->len = len;
    struct store_device signer;
    enum store_rc rc = store_device_get(st, by, &signer);
    if (rc != STORE_OK && rc != STORE_NOT_FOUND) {
        e = srv_fail(c, KZ_INTERNAL, "device lookup failed");
        goto out;
    }
    if (rc == STORE_NOT_FOUND || signer.user_id != c->auth.user.id || signer.revoked_at) {
        e = srv_fail(c, KZ_FORBIDDEN, "device %s is not an active device of yours", by);
        goto out;
    }
    rc = store_devlist_latest(st, c->auth.user.id, old);
    if (rc != STORE_OK && rc != STORE_NOT_FOUND) {
        e = srv_fail(c, KZ_INTERNAL, "device list lookup failed");
        goto out;
    }
    bool have = rc == STORE_OK;
    if (have && media_devlist_decode(old->list, old->len, cur) != MEDIA_OK) {
        e = srv_fail(c, KZ_INTERNAL, "the stored device list does not decode");
        goto out;
    }
    snprintf(dl->by, sizeof dl->by, "%s", by);
    if ((e = check_version(c, dl, have ? cur : NULL, next)))
        goto out;
    dl->user_id = c->auth.user.id;
    dl->seq = (int64_t)next->seq;
    dl->created_at = kz_now_ms();
    rc = store_devlist_insert(st, dl);
    if (rc != STORE_OK) {
        e = srv_fail(c, rc == STORE_CONFLICT ? KZ_CONFLICT : KZ_INTERNAL,
                     "cannot store the device list");
        goto out;
    }
    if ((e = list_lines(c, have ? cur : NULL, next, by)))
        goto out;
    snprintf(dl->login, sizeof dl->login, "%s", c->auth.user.login);
    struct device_line shared = {c, NULL, NULL, NULL, dl, KZ_OK};
    if ((e = each_room_of(c, c->auth.user.id, &shared)))
        goto out;
    KZ_INFO("device_list_signed", "login=%s seq=%lld by=%s devices=%zu", c->auth.user.login,
            (long long)dl->seq, by, next->n);
    cJSON *details = cJSON_CreateObject();
    cJSON_AddNumberToObject(details, "seq", (double)dl->seq);
    cJSON_AddStringToObject(details, "by", by);
    cJSON_AddNumberToObject(details, "devices", (double)next->n);
    cJSON_AddBoolToObject(details, "new_start", media_devlist_is_root(next));
    srv_audit(c, "device.sign", c->auth.user.login, details);
    cJSON *one = cJSON_CreateArray();
    devlist_row(one, dl);
    c->result = cJSON_CreateObject();
    cJSON_AddItemToObject(c->result, "list", cJSON_DetachItemFromArray(one, 0));
    cJSON_Delete(one);
out:
    free(dl);
    free(old);
    free(next);
    free(cur);
    return e;
}

/* ---- the history policy in a room's creation ---- */

cJSON *srv_room_policy(struct srv_call *c, const char *history, enum kz_err *e)
{
    const char *device = srv_arg_str(c, "policy_device"), *sig64 = srv_arg_str(c, "policy_sig");
    *e = KZ_OK;
    if (!device && !sig64)
        return NULL; /* a room without one: clients share none of its photos' keys later */
    uint8_t sig[64];
    if (!device || !sig64 || !kz_b64url_exact(sig64, sig, sizeof sig)) {
        *e = srv_fail(c, KZ_BAD_REQUEST,
                      "policy_device and policy_sig go together; policy_sig is 64 bytes");
        return NULL;
    }
    struct store_device d;
    enum store_rc rc = store_device_get(srv_store(c->srv), device, &d);
    if (rc != STORE_OK && rc != STORE_NOT_FOUND) {
        *e = srv_fail(c, KZ_INTERNAL, "device lookup failed");
        return NULL;
    }
    if (rc == STORE_NOT_FOUND || d.user_id != c->auth.user.id || d.revoked_at) {
        *e = srv_fail(c, KZ_FORBIDDEN, "device %s is not an active device of yours", device);
        return NULL;
    }
    char me[SRV_QUALIFIED_MAX];
    srv_user_qualified(c->srv, &c->auth.user, me);
    if (!media_policy_verify(me, history, d.sign_pk, sig)) {
        *e = srv_fail(c, KZ_BAD_REQUEST,
                      "policy_sig does not verify for history '%s' (protocol.md, room.create)",
                      history);
        return NULL;
    }
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "history", history);
    cJSON_AddStringToObject(p, "device", device);
    cJSON_AddStringToObject(p, "sig", sig64);
    return p;
}
