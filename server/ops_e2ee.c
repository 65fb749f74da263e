/* ops_e2ee.c - what the server does for end-to-end encrypted photos (E2EE.md): a directory of
 * device public keys, and room events whose data it stores and relays but cannot read. Each
 * such event is signed by its sending device; the server checks the signature so that no
 * session can speak for a device it does not hold, and records which blobs the event refers
 * to, which is what lets room members download them. */
#include "server.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "media.h"

#define E2EE_DOMAIN    "kizuna/e2ee/v1"
#define E2EE_BLOBS_MAX 16 /* as op_table.c bounds e2ee.post's blobs */

static cJSON *device_json(const struct store_device *d)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "device", d->device_id);
    cJSON_AddStringToObject(o, "login", d->login);
    cJSON_AddStringToObject(o, "label", d->label);
    kz_json_add_b64url(o, "sign_pk", d->sign_pk, sizeof d->sign_pk);
    kz_json_add_b64url(o, "box_pk", d->box_pk, sizeof d->box_pk);
    kz_json_add_b64url(o, "sig", d->self_sig, sizeof d->self_sig);
    cJSON_AddNumberToObject(o, "created_at", (double)d->created_at);
    if (d->revoked_at)
        cJSON_AddNumberToObject(o, "revoked_at", (double)d->revoked_at);
    else
        cJSON_AddNullToObject(o, "revoked_at");
    /* Where the revocation stands in the log: clients order it by position, not by clock. */
    if (d->revoked_pos)
        cJSON_AddNumberToObject(o, "revoked_pos", (double)d->revoked_pos);
    else
        cJSON_AddNullToObject(o, "revoked_pos");
    return o;
}

static int device_row(void *arr, const struct store_device *d)
{
    cJSON_AddItemToArray(arr, device_json(d));
    return 0;
}

/* In room.devices, each device also says when its owner joined (history "joined"). */
static int room_device_row(void *arr, const struct store_device *d)
{
    cJSON *o = device_json(d);
    cJSON_AddNumberToObject(o, "joined_pos", (double)d->joined_pos);
    cJSON_AddItemToArray(arr, o);
    return 0;
}

/* ---- device.register ---- */

enum kz_err op_device_register(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    struct store_device d = {.user_id = c->auth.user.id, .session_id = c->auth.session_id};
    if (!kz_b64url_exact(srv_arg_str(c, "sign_pk"), d.sign_pk, sizeof d.sign_pk) ||
        !kz_b64url_exact(srv_arg_str(c, "box_pk"), d.box_pk, sizeof d.box_pk) ||
        !kz_b64url_exact(srv_arg_str(c, "sig"), d.self_sig, sizeof d.self_sig))
        return srv_fail(c, KZ_BAD_REQUEST,
                        "sign_pk and box_pk are 32 bytes, sig 64 bytes, in unpadded base64url");
    media_device_id(d.sign_pk, d.device_id); /* bound to its signing key (TOFU, E2) */
    char me[SRV_QUALIFIED_MAX];
    srv_user_qualified(c->srv, &c->auth.user, me);
    if (!media_devkey_verify(me, d.device_id, d.sign_pk, d.box_pk, d.self_sig))
        return srv_fail(c, KZ_BAD_REQUEST,
                        "the device's self-signature does not verify (it signs the user as '%s')",
                        me);
    /* Without a label, the device is called what its session was called at login ("device"),
     * so the device list and the audit log name it as the person did. */
    const char *label = srv_arg_str(c, "label");
    struct store_session ses;
    if (!label && store_session_get(st, c->auth.session_id, &ses) == STORE_OK)
        label = ses.device;
    snprintf(d.label, sizeof d.label, "%s", label ? label : "unnamed device");
    snprintf(d.login, sizeof d.login, "%s", c->auth.user.login);
    struct store_device old;
    enum store_rc rc = store_device_get(st, d.device_id, &old);
    if (rc == STORE_OK) {
        /* Registering the same keys again (a retry) is fine; anything else is not. */
        if (old.user_id != d.user_id || memcmp(old.box_pk, d.box_pk, sizeof d.box_pk) != 0)
            return srv_fail(c, KZ_CONFLICT, "these keys belong to another device");
        if (old.revoked_at)
            return srv_fail(c, KZ_CONFLICT, "this device was revoked: make new keys");
        /* The same phone after a new login: it receives keys again through this session. */
        if (old.session_id != c->auth.session_id) {
            if (store_device_rebind(st, old.id, c->auth.session_id) != STORE_OK)
                return srv_fail(c, KZ_INTERNAL, "cannot update the device");
            old.session_id = c->auth.session_id;
        }
        /* A device registered before names were login@server (issue 19) signed a bare login:
         * its new self-signature replaces that one, and the shared rooms get its record again,
         * now one the other servers accept. */
        if (!media_devkey_verify(me, old.device_id, old.sign_pk, old.box_pk, old.self_sig)) {
            memcpy(old.self_sig, d.self_sig, sizeof old.self_sig);
            enum kz_err e;
            if (store_device_resign(st, old.id, old.self_sig) != STORE_OK)
                return srv_fail(c, KZ_INTERNAL, "cannot update the device");
            if ((e = srv_device_record_publish(c, &old)))
                return e;
            KZ_INFO("device_resigned", "login=%s device=%s", old.login, old.device_id);
        }
        c->result = cJSON_CreateObject();
        cJSON_AddItemToObject(c->result, "device", device_json(&old));
        return KZ_OK;
    }
    if (rc != STORE_NOT_FOUND)
        return srv_fail(c, KZ_INTERNAL, "device lookup failed");
    d.created_at = kz_now_ms();
    if (store_device_insert(st, &d) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot store the device");
    KZ_INFO("device_registered", "login=%s device=%s", d.login, d.device_id);
    cJSON *details = cJSON_CreateObject();
    cJSON_AddStringToObject(details, "device", d.device_id);
    cJSON_AddStringToObject(details, "label", d.label);
    cJSON_AddNumberToObject(details, "session", (double)d.session_id);
    srv_audit(c, "device.register", d.login, details);
    /* A line in each of the user's rooms: a device nobody expected is seen (issue 14). */
    enum kz_err e = srv_device_line(c, &d, "added", NULL);
    if (e)
        return e;
    c->result = cJSON_CreateObject();
    cJSON_AddItemToObject(c->result, "device", device_json(&d));
    return KZ_OK;
}

/* ---- device.list, room.devices ---- */

enum kz_err op_device_list(struct srv_call *c)
{
    const char *login = srv_arg_str(c, "login");
    struct store_user u = c->auth.user;
    bool valid = login && (kz_login_valid(login) || kz_actor_login_valid(login));
    if (login && (!valid || store_user_get_by_login(srv_store(c->srv), login, &u) != STORE_OK))
        return srv_fail(c, KZ_NOT_FOUND, "no user with login id '%s'", valid ? login : "?");
    c->result = cJSON_CreateObject();
    cJSON_AddStringToObject(c->result, "login", u.login);
    cJSON *arr = cJSON_AddArrayToObject(c->result, "devices");
    if (store_device_each_of_user(srv_store(c->srv), u.id, device_row, arr) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "device list failed");
    return srv_devlists_of_user(c, u.id, cJSON_AddArrayToObject(c->result, "lists"));
}

enum kz_err op_room_devices(struct srv_call *c)
{
    struct store_room room;
    struct store_member me;
    enum kz_err e = srv_room_for_member(c, &room, &me);
    if (e)
        return e;
    c->result = cJSON_CreateObject();
    cJSON_AddStringToObject(c->result, "history", room.history[0] ? room.history : "shared");
    cJSON *arr = cJSON_AddArrayToObject(c->result, "devices");
    if (store_device_each_in_room(srv_store(c->srv), room.id, room_device_row, arr) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "device list failed");
    return srv_devlists_in_room(c, room.id, cJSON_AddArrayToObject(c->result, "lists"));
}

/* ---- device.revoke ---- */

/* Revokes one device: it drops out of every room's recipient set at once, and the session
 * that holds its keys ends, which also ends its blob downloads. */
static enum kz_err revoke_device(struct srv_call *c, const struct store_device *d)
{
    struct store *st = srv_store(c->srv);
    int64_t now = kz_now_ms();
    if (store_device_revoke(st, d->id, now) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot revoke the device");
    /* The session may have ended already (password reset, expiry): then there is nothing
     * left to end, and the device must still leave the recipient sets. */
    enum store_rc rc = d->session_id ? store_session_end(st, d->session_id, now) : STORE_OK;
    if (rc != STORE_OK && rc != STORE_NOT_FOUND)
        return srv_fail(c, KZ_INTERNAL, "cannot end the device's session");
    if (d->session_id) {
        const struct srv_transport *tx = srv_tx(c->srv);
        struct srv_close which = {.user_id = d->user_id,
                                  .session_id = d->session_id,
                                  .except_conn = c->conn_id,
                                  .reason = "device revoked"};
        tx->close_conns(tx->ctx, &which);
        /* Revoking the device this very connection holds logs it out, as session.revoke
         * does: its reply still arrives, then its token stops working. */
        if (d->session_id == c->auth.session_id && !c->is_http)
            tx->bind(tx->ctx, c->conn_id, 0, 0);
    }
    KZ_INFO("device_revoked", "by=%s login=%s device=%s", c->auth.user.login, d->login,
            d->device_id);
    cJSON *details = cJSON_CreateObject();
    cJSON_AddStringToObject(details, "device", d->device_id);
    cJSON_AddStringToObject(details, "label", d->label);
    srv_audit(c, "device.revoke", d->login, details);
    return srv_device_line(c, d, "removed", NULL);
}

enum kz_err op_device_revoke(struct srv_call *c)
{
    struct store_device d;
    const char *id = srv_arg_str(c, "device");
    bool admin = kz_role_is(c->auth.user.role, KZ_ROLE_ADMIN);
    enum store_rc rc = store_device_get(srv_store(c->srv), id, &d);
    if (rc == STORE_OK && d.user_id != c->auth.user.id && !admin)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_NOT_FOUND)
        return srv_fail(c, KZ_NOT_FOUND, "no device %s of yours", id);
    if (rc != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "device lookup failed");
    enum kz_err e = d.revoked_at ? KZ_OK : revoke_device(c, &d);
    if (e)
        return e;
    if (store_device_get(srv_store(c->srv), id, &d) != STORE_OK) /* its revoked_at and _pos */
        return srv_fail(c, KZ_INTERNAL, "device lookup failed");
    c->result = cJSON_CreateObject();
    cJSON_AddItemToObject(c->result, "device", device_json(&d));
    return KZ_OK;
}

enum kz_err srv_devices_of_session_revoke(struct srv_call *c, int64_t session_id)
{
    struct store_device devs[8];
    int n = 0;
    if (store_device_by_session(srv_store(c->srv), session_id, devs, 8, &n) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "device lookup failed");
    for (int i = 0; i < n; i++) {
        devs[i].session_id = 0; /* the caller ends the session itself */
        enum kz_err e = revoke_device(c, &devs[i]);
        if (e)
            return e;
    }
    return KZ_OK;
}

/* ---- e2ee.post ---- */

static bool e2ee_type_valid(const char *type)
{
    return !strcmp(type, "e2ee.keys") || !strcmp(type, "e2ee.photo") ||
           !strcmp(type, "e2ee.key_request") || !strcmp(type, "e2ee.withheld");
}

/* The bytes a device signs: room id, type and the blob ids (each NUL-terminated), then the
 * data as sent. The room in it stops an event being replayed into another room. */
static unsigned char *signed_bytes(const char *room, const char *type, const cJSON *blobs,
                                   const char *data, size_t *len)
{
    size_t n = strlen(room) + 1 + strlen(type) + 1 + strlen(data);
    const cJSON *b;
    cJSON_ArrayForEach(b, blobs) n += strlen(b->valuestring) + 1;
    unsigned char *buf = malloc(n), *p = buf;
    if (!buf)
        return NULL;
    p = (unsigned char *)stpcpy((char *)p, room) + 1;
    p = (unsigned char *)stpcpy((char *)p, type) + 1;
    cJSON_ArrayForEach(b, blobs) p = (unsigned char *)stpcpy((char *)p, b->valuestring) + 1;
    memcpy(p, data, strlen(data));
    *len = n;
    return buf;
}

bool srv_e2ee_content_verify(const char *room_id, const char *type, const cJSON *content,
                             const uint8_t sign_pk[32])
{
    const char *data = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(content, "data"));
    const cJSON *blobs = cJSON_GetObjectItemCaseSensitive(content, "blobs"), *b;
    uint8_t sig[64];
    if (!data || (blobs && !cJSON_IsArray(blobs)) ||
        !kz_b64url_exact(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(content, "sig")),
                         sig, sizeof sig))
        return false;
    cJSON_ArrayForEach(b, blobs) if (!cJSON_IsString(b)) return false;
    size_t len;
    unsigned char *msg = signed_bytes(room_id, type, blobs, data, &len);
    bool good = msg && media_verify(E2EE_DOMAIN, msg, len, sign_pk, sig);
    free(msg);
    return good;
}

/* Epoch ids are the client's choice; the CLI's are 22 characters (16 random bytes). */
#define EPOCH_ID_MAX 64

/* The one thing the server reads in an event's data (docs/protocol.md "Epochs"): the epoch of
 * an e2ee.keys or e2ee.photo, and the devices an e2ee.keys seals it to. Returns the parsed data
 * (the caller deletes it), or NULL for another type; *e is set when the data is not in that
 * shape. */
static cJSON *epoch_data(struct srv_call *c, const char *type, const char *data, enum kz_err *e)
{
    *e = KZ_OK;
    bool keys = strcmp(type, "e2ee.keys") == 0;
    if (!keys && strcmp(type, "e2ee.photo") != 0)
        return NULL;
    cJSON *d = cJSON_Parse(data);
    const cJSON *epoch = cJSON_GetObjectItemCaseSensitive(d, "epoch");
    const cJSON *entries = cJSON_GetObjectItemCaseSensitive(d, "entries"), *en;
    bool ok = cJSON_IsObject(d) && cJSON_IsString(epoch) && epoch->valuestring[0] &&
              strlen(epoch->valuestring) <= EPOCH_ID_MAX && (!keys || cJSON_IsArray(entries));
    if (ok && keys)
        cJSON_ArrayForEach(en, entries) ok =
            ok && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(en, "to"));
    if (!ok) {
        cJSON_Delete(d);
        d = NULL;
        *e = srv_fail(c, KZ_BAD_REQUEST,
                      keys ? "data of e2ee.keys is {\"epoch\":E,\"entries\":[{\"to\":DEVICE,...}]}"
                           : "data of e2ee.photo is {\"epoch\":E,...}");
    }
    return d;
}

/* A key goes only to the room's current devices, and a photo only under an epoch whose key
 * reached none that has left since (revoked, logged out, or its owner removed): whatever a
 * client forgot, a device that left cannot read what is posted after (issue 12). Receivers
 * do not rely on this; senders rotate by themselves (clients/cli/upload.c). Cost, measured on
 * the two queries alone (SQLite 3.40, a room of 500 devices): 0.36 ms per photo (0.7 us per
 * holder of its epoch), 2.4 us per recipient of an e2ee.keys; photos are rare beside text. */
static enum kz_err epoch_check(struct srv_call *c, const struct store_room *room, const char *type,
                               const cJSON *d)
{
    struct store *st = srv_store(c->srv);
    const char *epoch = cJSON_GetObjectItemCaseSensitive(d, "epoch")->valuestring;
    if (strcmp(type, "e2ee.photo") == 0) {
        char gone[STORE_DEVICE_ID_MAX + 1];
        if (store_epoch_holder_gone(st, room->id, epoch, gone) != STORE_OK)
            return srv_fail(c, KZ_INTERNAL, "epoch lookup failed");
        if (gone[0])
            return srv_fail(c, KZ_CONFLICT,
                            "the key of epoch %s went to device %s, which is no longer a device "
                            "of this room (revoked, logged out, or its owner left): start a new "
                            "epoch",
                            epoch, gone);
        return KZ_OK;
    }
    const cJSON *en;
    cJSON_ArrayForEach(en, cJSON_GetObjectItemCaseSensitive(d, "entries"))
    {
        const char *to = cJSON_GetObjectItemCaseSensitive(en, "to")->valuestring;
        bool current = false;
        if (store_device_current_in_room(st, room->id, to, &current) != STORE_OK)
            return srv_fail(c, KZ_INTERNAL, "device lookup failed");
        if (!current)
            return srv_fail(c, KZ_CONFLICT,
                            "device %.40s is not a device of this room (revoked, logged out, or "
                            "its owner left): no key goes to it",
                            to);
    }
    return KZ_OK;
}

/* A blob an event may name: a finished one the caller uploaded or may read, or (for a photo,
 * whose thumbnail travels inside the message so HQ sees something at once on a congested
 * link) one the caller is still uploading: the event then waits for that upload (*pending)
 * and lets members download the blob only once it is whole and hashed to its name. */
static enum kz_err blob_usable(struct srv_call *c, const char *type, const char *blob,
                               bool *pending)
{
    struct store *st = srv_store(c->srv);
    int64_t size, uploader, offset, length;
    bool readable = false;
    *pending = false;
    enum store_rc rc =
        srv_blob_id_valid(blob) ? store_blob_get(st, blob, &size, &uploader) : STORE_NOT_FOUND;
    if (rc == STORE_OK)
        readable =
            uploader == c->auth.user.id ||
            (store_blob_readable(st, blob, c->auth.user.id, &readable) == STORE_OK && readable);
    else if (rc != STORE_NOT_FOUND)
        return srv_fail(c, KZ_INTERNAL, "blob lookup failed");
    if (readable)
        return KZ_OK;
    if (srv_blob_id_valid(blob) && !strcmp(type, "e2ee.photo")) {
        rc = store_upload_live(st, c->auth.user.id, blob, kz_now_ms(), &offset, &length);
        if (rc == STORE_OK)
            return *pending = true, KZ_OK;
        if (rc != STORE_NOT_FOUND)
            return srv_fail(c, KZ_INTERNAL, "upload lookup failed");
    }
    return srv_fail(c, KZ_NOT_FOUND,
                    "no blob %.64s: upload it first (a photo may name one whose upload you "
                    "have started)",
                    blob);
}

enum kz_err op_e2ee_post(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    struct store_room room;
    struct store_member me;
    const char *type = srv_arg_str(c, "type");
    const char *device = srv_arg_str(c, "device");
    const char *data = srv_arg_str(c, "data");
    const cJSON *blobs = srv_arg_list(c, "blobs");
    bool replayed;
    enum kz_err e;
    if ((e = srv_room_for_member(c, &room, &me)) ||
        (e = srv_client_id_replay(c, &room, &replayed)) || replayed)
        return e;
    if (!e2ee_type_valid(type))
        return srv_fail(c, KZ_BAD_REQUEST,
                        "type is e2ee.keys, e2ee.photo, e2ee.key_request or e2ee.withheld");
    /* An archived room takes no photos; keys still travel, so new devices can open old ones. */
    if (strcmp(type, "e2ee.photo") == 0 && (e = srv_room_writable(c, &room)))
        return e;
    struct store_device d;
    enum store_rc rc = store_device_get(st, device, &d);
    if (rc != STORE_OK && rc != STORE_NOT_FOUND)
        return srv_fail(c, KZ_INTERNAL, "device lookup failed");
    if (rc == STORE_NOT_FOUND || d.user_id != c->auth.user.id)
        return srv_fail(c, KZ_FORBIDDEN, "device %s is not one of yours", device);
    if (d.revoked_at)
        return srv_fail(c, KZ_FORBIDDEN, "device %s was revoked", device);
    uint8_t sig[64];
    if (!kz_b64url_exact(srv_arg_str(c, "sig"), sig, sizeof sig))
        return srv_fail(c, KZ_BAD_REQUEST, "sig is 64 bytes in unpadded base64url");
    size_t len;
    unsigned char *msg = signed_bytes(room.room_id, type, blobs, data, &len);
    if (!msg)
        return srv_fail(c, KZ_INTERNAL, "out of memory");
    bool good = media_verify(E2EE_DOMAIN, msg, len, d.sign_pk, sig);
    free(msg);
    if (!good)
        return srv_fail(c, KZ_BAD_REQUEST, "the device's signature does not verify");
    const cJSON *b;
    bool pending[E2EE_BLOBS_MAX] = {false};
    int bi = 0;
    cJSON_ArrayForEach(b, blobs)
    {
        if (bi == E2EE_BLOBS_MAX)
            return srv_fail(c, KZ_BAD_REQUEST, "at most %d blobs", E2EE_BLOBS_MAX);
        if ((e = blob_usable(c, type, b->valuestring, &pending[bi++])))
            return e;
    }
    cJSON *ed = epoch_data(c, type, data, &e);
    if (!e && ed)
        e = epoch_check(c, &room, type, ed);
    if (e) {
        cJSON_Delete(ed);
        return e;
    }
    cJSON *content = cJSON_CreateObject();
    cJSON_AddStringToObject(content, "device", device);
    if (blobs)
        cJSON_AddItemToObject(content, "blobs", cJSON_Duplicate(blobs, true));
    cJSON_AddStringToObject(content, "data", data);
    cJSON_AddStringToObject(content, "sig", srv_arg_str(c, "sig"));
    struct srv_appended ev;
    if ((e = srv_event_append(c, &room, type, content, &ev))) {
        cJSON_Delete(ed);
        return e;
    }
    /* A photo in a direct or watched room is pushed as "new photo", never anything of it. */
    if (srv_push_posted(c->srv, &room, ev.pos, ev.ts, c->auth.user.id, c->auth.user.name, type,
                        NULL, false) != KZ_OK) {
        cJSON_Delete(ed);
        return srv_fail(c, KZ_INTERNAL, "cannot queue the push");
    }
    const cJSON *en;
    const char *epoch = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ed, "epoch"));
    cJSON_ArrayForEach(en, cJSON_GetObjectItemCaseSensitive(ed, "entries"))
    {
        if (store_epoch_holder_add(st, room.id, epoch,
                                   cJSON_GetObjectItemCaseSensitive(en, "to")->valuestring) !=
            STORE_OK) {
            cJSON_Delete(ed);
            return srv_fail(c, KZ_INTERNAL, "cannot record the key's recipients");
        }
    }
    cJSON_Delete(ed);
    bi = 0;
    cJSON_ArrayForEach(b, blobs)
    {
        rc = pending[bi++]
                 ? store_blob_pending_add(st, b->valuestring, room.id, ev.pos, c->auth.user.id)
                 : store_blob_ref_add(st, b->valuestring, room.id, ev.pos);
        if (rc != STORE_OK)
            return srv_fail(c, KZ_INTERNAL, "cannot record the blob reference");
    }
    const char *client_id = srv_arg_str(c, "client_id");
    if (client_id && store_client_id_put(st, c->auth.user.id, client_id, ev.pos) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot store the event");
    srv_reply_event(c, ev.pos, ev.event_id, ev.ts);
    return KZ_OK;
}
