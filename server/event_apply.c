/* event_apply.c - applying room events to the state derived from the logs: message rows (text,
 * edits, deletions), memberships and roles, a room's name, topic and archiving, and read
 * markers (a position here; in a shared room also the room-order key that room.read events
 * carry between servers).
 *
 * Everything a change needs is in the event (its type, content, sender, position and time),
 * nothing in the call that caused it: a local op reaches this through srv_log_append
 * (event_log.c), and an event received from another server will reach it the same way, so
 * both change the state alike. Event types not named here change no derived state of their
 * own (room.create inserts its room in event_log.c, because the room's id is the creation's
 * hash; notices and encrypted photos keep theirs in ops_notice.c and ops_e2ee.c). Device lines,
 * device lists and key envelopes from other servers enter this server's device directory and
 * epoch holders here; this server's own are stored by the ops that made them. */
#include "core.h"
#include "event_format.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *content_str(const cJSON *content, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(content, key));
}

static enum kz_err refused(const char **why, const char *what)
{
    *why = what;
    return KZ_INTERNAL;
}

static enum kz_err apply_msg(struct srv *s, const struct store_event *e, const cJSON *content,
                             const char **why)
{
    /* Sending does not move the sender's read marker: clients mark what they show as read
     * (op read), and a marker write per message cost more than the message row itself. */
    const char *body = content_str(content, "body");
    struct store_message m = {
        .pos = e->pos, .room = e->room, .sender = e->sender, .body = body, .ts = e->ts};
    if (!body || store_message_insert(s->store, &m) != STORE_OK)
        return refused(why, "cannot store the message");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(content, "urgent")))
        srv_hotline_alert(s, e, content); /* a first report: this server's on-duty seats */
    return KZ_OK;
}

/* hotline.seat: the origin server's seat is held by one of its users, or vacated. */
static enum kz_err apply_seat(struct srv *s, const struct store_event *e, const cJSON *content,
                              const char **why)
{
    const char *seat = content_str(content, "seat"), *user = content_str(content, "user");
    bool on_duty = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(content, "on_duty"));
    int64_t holder = 0;
    if (user && (holder = srv_actor_of(s, e->origin, user, content_str(content, "name"))) == 0)
        return refused(why, "cannot find the seat's holder");
    if (!seat ||
        store_seat_set(s->store, e->room, e->origin, seat, holder, on_duty, e->pos) != STORE_OK)
        return refused(why, "cannot record the seat");
    return KZ_OK;
}

/* msg.edit and msg.delete: the message they target, in the same room. */
static enum kz_err apply_msg_change(struct srv *s, const struct store_event *e,
                                    const cJSON *content, bool is_delete, const char **why)
{
    const char *target = content_str(content, "target");
    const char *body = content_str(content, "body");
    int64_t pos;
    struct store_message m;
    if (!target || store_event_pos(s->store, target, &pos) != STORE_OK ||
        store_message_get(s->store, pos, &m) != STORE_OK || m.room != e->room ||
        (!is_delete && !body))
        return refused(why, "cannot change the message");
    enum store_rc rc = is_delete ? store_message_delete(s->store, pos, e->ts, e->sender)
                                 : store_message_edit(s->store, pos, body, e->ts);
    return rc == STORE_OK ? KZ_OK : refused(why, "cannot change the message");
}

static int first_pos(void *arg, const struct store_event *e, const struct store_message *m)
{
    (void)m;
    *(int64_t *)arg = e->pos;
    return 1;
}

/* member: join (with a role), leave or remove. Whoever leaves or is removed still receives
 * the event that says so: *also_user. */
static enum kz_err apply_member(struct srv *s, const struct store_room *room,
                                const struct store_event *e, const cJSON *content,
                                int64_t *also_user, const char **why)
{
    /* The user is one of the event's origin's: this server's own, or the actor of another's. */
    const char *login = content_str(content, "user");
    const char *membership = content_str(content, "membership");
    int64_t who = login ? srv_actor_of(s, e->origin, login, content_str(content, "name")) : 0;
    if (!who || !membership)
        return refused(why, "cannot update the membership");
    enum store_rc rc;
    if (strcmp(membership, "join") == 0) {
        const char *role = content_str(content, "role");
        int64_t joined = e->pos;
        struct store_member m;
        /* The creator's own first join dates from the creation, so that its history starts
         * with the room itself. */
        if (who == room->created_by && e->sender == who &&
            store_member_get(s->store, e->room, who, &m) == STORE_NOT_FOUND)
            store_history(s->store, e->room, 0, 0, 1, first_pos, &joined);
        rc = store_member_join(s->store, e->room, who, role ? role : "member", joined);
    } else {
        rc = store_member_leave(s->store, e->room, who, e->pos);
        *also_user = who;
    }
    return rc == STORE_OK ? KZ_OK : refused(why, "cannot update the membership");
}

static enum kz_err apply_role(struct srv *s, const struct store_event *e, const cJSON *content,
                              const char **why)
{
    const char *login = content_str(content, "user");
    const char *role = content_str(content, "role");
    int64_t who = login ? srv_actor_of(s, e->origin, login, NULL) : 0;
    if (!who || !role || store_member_set_role(s->store, e->room, who, role) != STORE_OK)
        return refused(why, "cannot change the role");
    return KZ_OK;
}

bool srv_read_key_from_json(const cJSON *content, struct store_order_key *out)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(content, "read");
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 4)
        return false;
    int64_t v[4] = {0};
    for (int i = 0; i < 4; i++) {
        const cJSON *x = cJSON_GetArrayItem(a, i);
        if (i == 1) {
            if (!cJSON_IsString(x) || strlen(x->valuestring) > STORE_ORIGIN_MAX)
                return false;
            continue;
        }
        /* Whole numbers JSON carries exactly (the event format's integers). */
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > (double)KZ_EVENT_INT_MAX ||
            x->valuedouble != (double)(int64_t)x->valuedouble)
            return false;
        v[i] = (int64_t)x->valuedouble;
    }
    if (out) {
        out->hlc = v[0];
        snprintf(out->origin, sizeof out->origin, "%s", cJSON_GetArrayItem(a, 1)->valuestring);
        out->inc = v[2];
        out->seq = v[3];
    }
    return true;
}

/* room.read: a member's read marker in a shared room as the room-order key of the last event
 * read, the same on every server (issue 17, item 7). It moves forward only; the room's read
 * counts are pushed again. The sender is the member (this server's user for its own events, a
 * (server, login) actor for received ones, whose content fed_valid checked). A room.read in a
 * room of this server alone changes nothing: none is ever made there. */
static enum kz_err apply_read(struct srv *s, const struct store_room *room,
                              const struct store_event *e, const cJSON *content, const char **why)
{
    struct store_order_key k;
    bool moved = false;
    if (!room->authority[0])
        return KZ_OK;
    if (!srv_read_key_from_json(content, &k))
        return refused(why, "a read marker is [hlc, origin, inc, seq]");
    if (store_member_read_key(s->store, e->room, e->sender, &k, &moved) != STORE_OK)
        return refused(why, "cannot store the read marker");
    if (moved) /* keys are no range of positions: the most recent messages' counts */
        srv_read_changed(s, e->room, e->sender, 0, KZ_POS_MAX - 1);
    return KZ_OK;
}

/* room.server, from a shared room's authority: a server admitted, or removed with a cutoff (the
 * last (inc, seq) of its log the room takes): its events past the cutoff, those held already
 * too, change nothing from then on and its users leave the room, on every server alike. */
static enum kz_err apply_room_server(struct srv *s, const struct store_event *e,
                                     const cJSON *content, const char **why)
{
    const char *server = content_str(content, "server");
    bool admitted = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(content, "admitted"));
    const cJSON *cutoff = cJSON_GetObjectItemCaseSensitive(content, "cutoff");
    if (!server || store_room_server_set(s->store, e->room, server, admitted, e->pos) != STORE_OK)
        return refused(why, "cannot record the room's servers");
    if (admitted || !cJSON_IsArray(cutoff))
        return KZ_OK;
    const cJSON *inc = cJSON_GetArrayItem(cutoff, 0), *seq = cJSON_GetArrayItem(cutoff, 1);
    bool local = strcmp(server, srv_server_id(s)) == 0;
    if (!cJSON_IsNumber(inc) || !cJSON_IsNumber(seq) ||
        store_room_server_cut(s->store, e->room, server, local, (int64_t)inc->valuedouble,
                              (int64_t)seq->valuedouble, e->pos) != STORE_OK)
        return refused(why, "cannot apply the server's removal");
    return KZ_OK;
}

/* A device line or list version from another server (issue 19; fed_receive.c checked it): the
 * device joins this server's directory as its owner's, so room.devices lists it and photos may
 * be encrypted to it; "removed" revokes it here too, so senders here start a new epoch without
 * it. A device of this server's own users is in the directory already. */
static enum kz_err apply_device(struct srv *s, const struct store_event *e, const cJSON *content,
                                const char **why)
{
    if (strcmp(e->origin, s->origin) == 0)
        return KZ_OK;
    int64_t owner = srv_actor_of(s, e->origin, content_str(content, "user"), NULL);
    if (!owner)
        return refused(why, "cannot find the device's owner");
    if (strcmp(e->type, "device.list") == 0) {
        struct store_devlist *dl = calloc(1, sizeof *dl);
        const char *list = content_str(content, "list"), *by = content_str(content, "by");
        size_t len = 0;
        enum store_rc rc = STORE_ERROR;
        if (dl && list && by &&
            sodium_base642bin(dl->list, sizeof dl->list, list, strlen(list), NULL, &len, NULL,
                              sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 &&
            kz_b64url_exact(content_str(content, "sig"), dl->sig, sizeof dl->sig)) {
            dl->len = len;
            dl->user_id = owner;
            dl->seq =
                (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(content, "seq"));
            snprintf(dl->by, sizeof dl->by, "%s", by);
            dl->created_at = e->ts;
            rc = store_devlist_insert(s->store, dl);
        }
        free(dl);
        /* The same version arrives in each shared room its owner is in. */
        return rc == STORE_OK || rc == STORE_CONFLICT ? KZ_OK
                                                      : refused(why, "cannot store the list");
    }
    struct store_device d = {.user_id = owner};
    const char *id = content_str(content, "device");
    enum store_rc rc = store_device_get(s->store, id, &d);
    if (rc == STORE_NOT_FOUND) {
        snprintf(d.device_id, sizeof d.device_id, "%s", id);
        snprintf(d.label, sizeof d.label, "%s", content_str(content, "label"));
        d.created_at =
            (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(content, "created_at"));
        if (!kz_b64url_exact(content_str(content, "sign_pk"), d.sign_pk, sizeof d.sign_pk) ||
            !kz_b64url_exact(content_str(content, "box_pk"), d.box_pk, sizeof d.box_pk) ||
            !kz_b64url_exact(content_str(content, "self_sig"), d.self_sig, sizeof d.self_sig))
            return refused(why, "the device's record does not decode");
        rc = store_device_insert(s->store, &d);
    }
    if (rc == STORE_OK && strcmp(content_str(content, "change"), "removed") == 0 && !d.revoked_at)
        rc = store_device_revoke(s->store, d.id, e->ts);
    return rc == STORE_OK ? KZ_OK : refused(why, "cannot store the device");
}

/* An epoch key sent from another server: the devices it reached hold the epoch, so a photo
 * posted here under it is refused once one of them leaves (ops_e2ee.c, "epoch_check"). */
static enum kz_err apply_keys(struct srv *s, const struct store_event *e, const cJSON *content,
                              const char **why)
{
    if (strcmp(e->origin, s->origin) == 0)
        return KZ_OK; /* recorded by e2ee.post */
    cJSON *d = cJSON_Parse(content_str(content, "data"));
    const char *epoch = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "epoch"));
    const cJSON *en;
    enum kz_err r = KZ_OK;
    const cJSON *entries = epoch ? cJSON_GetObjectItemCaseSensitive(d, "entries") : NULL;
    cJSON_ArrayForEach(en, entries)
    {
        const char *to = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(en, "to"));
        if (to && strlen(epoch) <= 64 && strlen(to) <= STORE_DEVICE_ID_MAX &&
            store_epoch_holder_add(s->store, e->room, epoch, to) != STORE_OK) {
            r = refused(why, "cannot record the key's recipients");
            break;
        }
    }
    cJSON_Delete(d);
    return r;
}

enum kz_err srv_event_apply(struct srv *s, const struct store_room *room,
                            const struct store_event *e, const cJSON *content, int64_t *also_user,
                            const char **why)
{
    *also_user = 0;
    *why = NULL;
    if (strcmp(e->type, "msg") == 0)
        return apply_msg(s, e, content, why);
    if (strcmp(e->type, "msg.edit") == 0 || strcmp(e->type, "msg.delete") == 0)
        return apply_msg_change(s, e, content, strcmp(e->type, "msg.delete") == 0, why);
    if (strcmp(e->type, "room.read") == 0)
        return apply_read(s, room, e, content, why);
    if (strcmp(e->type, "member") == 0)
        return apply_member(s, room, e, content, also_user, why);
    if (strcmp(e->type, "member.role") == 0)
        return apply_role(s, e, content, why);
    if (strcmp(e->type, "room.update") == 0) {
        const char *name = content_str(content, "name");
        const char *topic = content_str(content, "topic");
        if (!name || !topic || store_room_update(s->store, e->room, name, topic) != STORE_OK)
            return refused(why, "cannot update the room");
        return KZ_OK;
    }
    if (strcmp(e->type, "room.server") == 0)
        return apply_room_server(s, e, content, why);
    if (strcmp(e->type, "device") == 0 || strcmp(e->type, "device.list") == 0)
        return apply_device(s, e, content, why);
    if (strcmp(e->type, "e2ee.keys") == 0)
        return apply_keys(s, e, content, why);
    if (strcmp(e->type, "hotline.seat") == 0)
        return apply_seat(s, e, content, why);
    if (strcmp(e->type, "room.authority") == 0) { /* the authority handed on */
        const char *to = content_str(content, "server");
        if (!to || store_room_set_authority(s->store, e->room, to, e->event_id) != STORE_OK)
            return refused(why, "cannot hand the authority on");
        srv_fed_wait_wake(s, e->room); /* its new authority's events may have been waiting */
        return KZ_OK;
    }
    if (strcmp(e->type, "hotline.role") == 0) { /* a hotline's authority reassigned a role */
        const char *server = content_str(content, "server"), *role = content_str(content, "role");
        if (!server || !kz_hotline_role_valid(role) ||
            store_room_server_role_set(s->store, e->room, server, role) != STORE_OK)
            return refused(why, "cannot change the role");
        return KZ_OK;
    }
    if (strcmp(e->type, "room.archive") == 0) {
        bool archived = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(content, "archived"));
        if (store_room_set_archived(s->store, e->room, archived ? e->ts : 0) != STORE_OK)
            return refused(why, "cannot archive the room");
        return KZ_OK;
    }
    return KZ_OK;
}

enum kz_err srv_read_marker_apply(struct srv *s, const struct store_room *room, int64_t user_id,
                                  int64_t pos, int64_t key_pos, int64_t at, bool *moved)
{
    int64_t old = 0;
    *moved = false;
    if (store_member_read(s->store, room->id, user_id, pos, at, moved, &old) != STORE_OK)
        return KZ_INTERNAL;
    if (!room->authority[0]) {
        if (*moved)
            srv_read_changed(s, room->id, user_id, old, pos);
        return KZ_OK;
    }
    /* A shared room: the key of the event at key_pos (or the room's last one below it). It moves
     * on its own, forward only: positions follow arrival here, not the room's order, so a
     * message read after another may sit at a lower position and still move the key; and a
     * late event placed before the key is counted as read, on every server alike. */
    struct store_order_key k;
    bool key_moved = false;
    enum store_rc rc = store_event_key_at(s->store, room->id, key_pos, &k);
    if (rc == STORE_OK)
        rc = store_member_read_key(s->store, room->id, user_id, &k, &key_moved);
    if (rc != STORE_OK && rc != STORE_NOT_FOUND)
        return KZ_INTERNAL;
    if (*moved || key_moved) /* keys are no range of positions: the most recent counts */
        srv_read_changed(s, room->id, user_id, 0, KZ_POS_MAX - 1);
    if (key_moved)
        srv_read_publish_later(s, room->id, user_id);
    return KZ_OK;
}
