/* fed_receive.c - taking a batch of events from a peer server (issue 17, items 5-8): who may
 * have made it, whether each event is the next of its log with a good chain and a signature
 * that covers it, and what it changes. The rules, in the order applied:
 *   - the origin is a pinned peer, or this server's own older incarnation (a restore takes its
 *     old tail back, read-only); an event claiming this server's current incarnation is
 *     refused: only this process writes it;
 *   - the room is held and shared, and the origin is its authority or a server it admitted;
 *     a room not held yet is taken only from its creation, which must name this server;
 *   - events already held are duplicates when their id matches, and forks when it does not
 *     and the origin's signature is on the other one: the evidence is kept, the log is
 *     quarantined above the fork, and an alarm is logged;
 *   - the rest must continue the log (kz_event_log_check: seq, prev, id, key, hlc, signature
 *     or bounded run), and only what a signature in the batch covers is taken; the sender is
 *     told where to resume (want) when a gap or an unsigned tail is left;
 *   - each event taken is stored whatever it says (a log has no holes) and applied only if
 *     valid the same way on every server (fed_valid).
 * One bad event stops its own batch, never the frame's link, another log or another room. */
#include "core.h"
#include "event_format.h"
#include "fed.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "media.h"

static const char *jstr(const cJSON *o, const char *k)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

/* An event of the batch that passed the log check. */
struct taken {
    const char *payload;
    size_t len;
    uint8_t sig[KZ_EVENT_SIG_BYTES];
    size_t sig_len;
    char id[KZ_EVENT_ID_CHARS];
    int64_t seq;
};

int64_t srv_actor_of(struct srv *s, const char *origin, const char *login, const char *name)
{
    int64_t id = 0;
    if (strcmp(origin, s->origin) == 0) { /* this server's own user (an older incarnation too) */
        struct store_user u;
        return store_user_get_by_login(s->store, login, &u) == STORE_OK ? u.id : 0;
    }
    return store_actor_get(s->store, origin, login, name, kz_now_ms(), &id) == STORE_OK ? id : 0;
}

static const char *cstr(const cJSON *content, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(content, key));
}

static bool is_member(struct srv *s, int64_t room, int64_t user)
{
    struct store_member m;
    return user && store_member_get(s->store, room, user, &m) == STORE_OK && !m.left_pos;
}

/* fed_valid's answer for an authority event whose grant has not arrived yet: it waits (the
 * batch stops before it) instead of being judged. */
static const char WAIT_FOR_GRANT[] = "waits for the event that made its origin the authority";

/* Whether an authority event (room.server, room.update, room.archive, hotline.role,
 * room.authority) is its origin's to make, decided from the logs alone: the room's creator
 * holds the authority from the creation; a room.authority event hands it on, and the new
 * authority's events cite it (content.authority, their basis). An event is the authority's
 * when its basis names its origin (the creator: no basis) and its origin had not handed that
 * same basis on earlier in its own log. A basis not held yet: WAIT_FOR_GRANT. */
/* Whether the event read is a valid room.authority of room handing it to `to`. */
struct grant {
    int64_t room;
    const char *to;
    bool ok;
};

static int grant_names(void *arg, const struct store_event *e)
{
    struct grant *g = arg;
    cJSON *p = NULL;
    if (e->room == g->room && !e->invalid && strcmp(e->type, "room.authority") == 0 &&
        (p = cJSON_ParseWithLength(e->payload, e->payload_len))) {
        const char *to = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(p, "content"), "server"));
        g->ok = to && strcmp(to, g->to) == 0;
    }
    cJSON_Delete(p);
    return 1;
}

static const char *authority_check(struct srv *s, const struct store_room *r,
                                   const struct kz_event_head *h, const cJSON *content)
{
    const char *basis = cstr(content, "authority");
    char creator[STORE_SERVER_ID_MAX + 1];
    if (!basis) {
        if (store_room_creator(s->store, r->id, creator, sizeof creator) != STORE_OK ||
            strcmp(creator, h->origin) != 0)
            return "only the room's authority changes the room";
    } else {
        int64_t pos;
        struct grant g = {r->id, h->origin, false};
        if (store_event_pos(s->store, basis, &pos) != STORE_OK)
            return WAIT_FOR_GRANT;
        if (store_event_get(s->store, pos, grant_names, &g) != STORE_OK || !g.ok)
            return "its basis does not hand the authority to its origin";
    }
    int64_t handed = 0;
    if (store_authority_handed(s->store, r->id, h->origin, h->inc, h->seq, basis ? basis : "",
                               &handed) != STORE_OK ||
        handed)
        return "its origin had handed the authority on before";
    return NULL;
}

/* A `device` or `device.list` event (issue 19): a member's home server publishing one of the
 * member's devices, self-signed for "user@origin", or one version of the member's signed device
 * list. The home server alone speaks for its users' devices, as for their memberships; what a
 * list says is the clients' to judge (ops_devlist.c), so the server checks only its form. */
static const char *device_valid(struct srv *s, const struct store_room *r,
                                const struct kz_event_head *h, const cJSON *content)
{
    const char *user = cstr(content, "user");
    if (!user || !kz_login_valid(user))
        return "a device line names a user of its own server";
    int64_t owner = srv_actor_of(s, h->origin, user, NULL);
    if (!owner || !is_member(s, r->id, owner))
        return "the device's owner is not a member of the room";
    char who[SRV_QUALIFIED_MAX];
    snprintf(who, sizeof who, "%.64s@%.63s", user, h->origin);
    if (!strcmp(h->type, "device.list")) {
        const char *list = cstr(content, "list"), *by = cstr(content, "by");
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(content, "seq");
        unsigned char *enc = malloc(STORE_DEVLIST_MAX);
        struct media_devlist *l = malloc(sizeof *l);
        size_t len = 0;
        uint8_t sig[64];
        bool ok = enc && l && list && by && strlen(by) <= STORE_DEVICE_ID_MAX &&
                  cJSON_IsNumber(seq) && kz_b64url_exact(cstr(content, "sig"), sig, sizeof sig) &&
                  sodium_base642bin(enc, STORE_DEVLIST_MAX, list, strlen(list), NULL, &len, NULL,
                                    sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 &&
                  media_devlist_decode(enc, len, l) == MEDIA_OK && strcmp(l->login, who) == 0 &&
                  (double)l->seq == seq->valuedouble;
        free(enc);
        free(l);
        return ok ? NULL
                  : "a device list names its user as user@server, with its seq and signature";
    }
    const char *change = cstr(content, "change"), *dev = cstr(content, "device");
    const char *label = cstr(content, "label");
    static const char *const changes[] = {"added", "present", "approved", "unlisted", "removed"};
    bool known = false;
    for (size_t i = 0; change && i < sizeof changes / sizeof *changes; i++)
        known = known || !strcmp(change, changes[i]);
    if (!known || !dev || !label || strlen(label) > STORE_DEVICE_MAX)
        return "a device line names a device, its label and a known change";
    uint8_t spk[32], bpk[32], sig[64];
    char id[MEDIA_DEVICE_ID_LEN + 1];
    if (!kz_b64url_exact(cstr(content, "sign_pk"), spk, sizeof spk) ||
        !kz_b64url_exact(cstr(content, "box_pk"), bpk, sizeof bpk) ||
        !kz_b64url_exact(cstr(content, "self_sig"), sig, sizeof sig) ||
        !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(content, "created_at")))
        return "a device line in a shared room carries the device's record";
    media_device_id(spk, id);
    if (strcmp(id, dev) != 0)
        return "the device's id is not its signing key's";
    if (!media_devkey_verify(who, dev, spk, bpk, sig))
        return "the device's self-signature does not name its user and server";
    struct store_device d;
    enum store_rc rc = store_device_get(s->store, dev, &d);
    if (rc == STORE_OK && (d.user_id != owner || memcmp(d.box_pk, bpk, sizeof bpk) != 0))
        return "the device is known here with another user or other keys";
    return rc == STORE_OK || rc == STORE_NOT_FOUND ? NULL : "the device cannot be looked up";
}

/* An e2ee.* event: signed by a device of its sender that the sender's server published in the
 * room's logs before (per-origin order puts the record first), so no server on the way, and no
 * other member, can post for a device it does not hold (T17). */
static const char *e2ee_valid(struct srv *s, const struct store_room *r,
                              const struct kz_event_head *h, const cJSON *content, int64_t actor)
{
    static const char *const types[] = {"e2ee.keys", "e2ee.photo", "e2ee.key_request",
                                        "e2ee.withheld"};
    bool known = false;
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        known = known || !strcmp(h->type, types[i]);
    const char *dev = cstr(content, "device");
    struct store_device d;
    if (!known)
        return "an unknown e2ee event";
    if (!dev || store_device_get(s->store, dev, &d) != STORE_OK || d.user_id != actor)
        return "the sending device is not a device of the sender known in the room";
    if (!srv_e2ee_content_verify(r->room_id, h->type, content, d.sign_pk))
        return "the sending device's signature does not verify";
    return NULL;
}

/* Why an event that continues its log changes nothing, or NULL: decided from the event and
 * the state its room's logs built, so every server that holds the same events agrees. What it
 * would change must be changeable (a body to store, a member to remove), so applying a valid
 * event never fails for what it says. */
static const char *fed_valid(struct srv *s, const struct store_room *r,
                             const struct kz_event_head *h, const cJSON *content, int64_t actor)
{
    const char *type = h->type;
    bool authority_type = !strcmp(type, "room.server") || !strcmp(type, "room.update") ||
                          !strcmp(type, "room.archive") || !strcmp(type, "hotline.role") ||
                          !strcmp(type, "room.authority");
    const char *not_authority = authority_type ? authority_check(s, r, h, content) : NULL;
    if (not_authority == WAIT_FOR_GRANT)
        return WAIT_FOR_GRANT;
    bool by_authority = authority_type && !not_authority;
    int64_t cut_inc, cut_seq;
    if (store_room_server_cutoff(s->store, r->id, h->origin, &cut_inc, &cut_seq) == STORE_OK &&
        (h->inc > cut_inc || (h->inc == cut_inc && h->seq > cut_seq)))
        return "past its server's removal from the room";
    if (strcmp(type, "room.create") == 0)
        return "a room is created once, by its first event";
    if (!strcmp(type, "hotline.seat")) {
        bool hotline = false;
        const char *seat = cstr(content, "seat"), *user = cstr(content, "user");
        if (store_room_is_hotline(s->store, r->id, &hotline) != STORE_OK || !hotline)
            return "not a hotline room";
        if (!seat || !seat[0] || strlen(seat) > STORE_SEAT_MAX)
            return "a seat has a name of 1-64 bytes";
        if (user &&
            (!kz_login_valid(user) || !is_member(s, r->id, srv_actor_of(s, h->origin, user, NULL))))
            return "a seat is held by a member of the seat's own server";
        return NULL;
    }
    if (!strcmp(type, "room.authority")) {
        bool admitted = false;
        const char *to = cstr(content, "server");
        if (!by_authority)
            return not_authority;
        if (!to || strcmp(to, h->origin) == 0 ||
            store_room_server_admitted(s->store, r->id, to, &admitted) != STORE_OK || !admitted)
            return "the authority is handed to another server of the room";
        return NULL;
    }
    if (!strcmp(type, "hotline.role")) {
        bool hotline = false;
        if (!by_authority)
            return not_authority;
        if (store_room_is_hotline(s->store, r->id, &hotline) != STORE_OK || !hotline)
            return "not a hotline room";
        if (!cstr(content, "server") || !kz_hotline_role_valid(cstr(content, "role")))
            return "a role event names a server and a known role";
        return NULL;
    }
    if (!strcmp(type, "room.server") || !strcmp(type, "room.update") ||
        !strcmp(type, "room.archive")) {
        if (!by_authority)
            return not_authority;
        const char *name = cstr(content, "name"), *topic = cstr(content, "topic");
        const char *server = cstr(content, "server");
        if (!strcmp(type, "room.update") &&
            (!name || !topic || !name[0] || strlen(name) > STORE_NAME_MAX ||
             strlen(topic) > STORE_TOPIC_MAX))
            return "a room update names the room and its topic";
        if (!strcmp(type, "room.server") && (!server || strlen(server) > STORE_SERVER_ID_MAX))
            return "a room.server event names a server";
        const cJSON *cutoff = cJSON_GetObjectItemCaseSensitive(content, "cutoff");
        if (!strcmp(type, "room.server") && cutoff &&
            (!cJSON_IsArray(cutoff) || cJSON_GetArraySize(cutoff) != 2 ||
             !cJSON_IsNumber(cJSON_GetArrayItem(cutoff, 0)) ||
             !cJSON_IsNumber(cJSON_GetArrayItem(cutoff, 1))))
            return "a removal's cutoff is [inc, seq]";
        return NULL;
    }
    if (!strcmp(type, "member") || !strcmp(type, "member.role")) {
        const char *user = cstr(content, "user"), *role = cstr(content, "role");
        const char *ms = cstr(content, "membership");
        /* A server adds and removes its own users only: the user is a login of the origin. */
        if (!user || !kz_login_valid(user))
            return "a member event names a user of its own server";
        if (role && strcmp(role, "admin") && strcmp(role, "member"))
            return "a role is admin or member";
        const char *name = cstr(content, "name");
        if (name && strlen(name) > STORE_NAME_MAX)
            return "a member's name is too long";
        int64_t who = srv_actor_of(s, h->origin, user, NULL);
        if (!who) /* this server's own older log naming a user deleted since */
            return "the user is not known here";
        if (!strcmp(type, "member.role"))
            return role && is_member(s, r->id, who) ? NULL : "the user is not a member";
        if (!ms || (strcmp(ms, "join") && strcmp(ms, "leave") && strcmp(ms, "remove")))
            return "a membership is join, leave or remove";
        if (strcmp(ms, "join") && !is_member(s, r->id, who))
            return "the user is not a member";
        return NULL;
    }
    if (!strcmp(type, "device") || !strcmp(type, "device.list"))
        return device_valid(s, r, h, content);
    if (!is_member(s, r->id, actor))
        return "the sender is not a member of the room";
    if (!strncmp(type, "e2ee.", 5))
        return e2ee_valid(s, r, h, content, actor);
    if (!strcmp(type, "msg") && !cstr(content, "body"))
        return "a message has a body";
    const cJSON *seat = cJSON_GetObjectItemCaseSensitive(content, "seat");
    int64_t holder = 0;
    if (seat &&
        (!cJSON_IsString(seat) ||
         store_seat_holder(s->store, r->id, h->origin, seat->valuestring, &holder) != STORE_OK ||
         holder != actor))
        return "the sender does not hold that seat";
    /* A read marker (event_apply.c): the key of the last event read, in the room's order. */
    if (!strcmp(type, "room.read") && !srv_read_key_from_json(content, NULL))
        return "a read marker is [hlc, origin, inc, seq]";
    if (!strcmp(type, "msg.edit") || !strcmp(type, "msg.delete")) {
        const char *target = cstr(content, "target");
        int64_t pos;
        struct store_message msg;
        if (!target || store_event_pos(s->store, target, &pos) != STORE_OK ||
            store_message_get(s->store, pos, &msg) != STORE_OK || msg.room != r->id)
            return "the message to change is not in the room";
        if (msg.sender != actor)
            return "only its author changes a message in a shared room";
        if (msg.deleted)
            return "the message was deleted";
        if (!strcmp(type, "msg.edit") && !cstr(content, "body"))
            return "an edit has a body";
    }
    return NULL;
}

/* Stores one event taken from the batch, applies it if valid and queues it for the room's
 * members here. */
static enum kz_err take_one(struct srv *s, struct store_room *r, const struct taken *t, int64_t now)
{
    struct kz_event_head h;
    cJSON *content = NULL;
    if (kz_event_parse(t->payload, t->len, &h, &content))
        return KZ_INTERNAL; /* checked already: cannot happen */
    const char *name = NULL;
    if (!strcmp(h.type, "member")) {
        const char *user = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(content, "user"));
        if (user && !strcmp(user, h.sender))
            name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(content, "name"));
    }
    int64_t actor = srv_actor_of(s, h.origin, h.sender, name);
    /* The room's creation, taken with the room (take_room): the one room.create that is valid. */
    char rid[KZ_EVENT_ID_CHARS];
    bool creation = !strcmp(h.type, "room.create") && h.seq == 1 &&
                    !strcmp(h.origin, r->authority) &&
                    (kz_event_room_id(t->payload, t->len, rid), !strcmp(rid, r->room_id));
    const char *invalid = creation ? NULL : fed_valid(s, r, &h, content, actor);
    if (invalid == WAIT_FOR_GRANT) {
        KZ_INFO("fed_event_waits", "room=%s origin=%s inc=%lld seq=%lld type=%s: %s", r->room_id,
                h.origin, (long long)h.inc, (long long)h.seq, h.type, invalid);
        cJSON_Delete(content);
        return KZ_CONFLICT; /* not taken: it and what follows wait for the grant */
    }
    bool late = false;
    srv_room_hlc_seen(s, r->id, h.hlc, &late);
    struct store_event ev = {.room = r->id,
                             .inc = h.inc,
                             .seq = h.seq,
                             .sender = actor,
                             .ts = h.ts,
                             .hlc = h.hlc,
                             .received_at = now,
                             .late = late,
                             .invalid = invalid,
                             .payload = t->payload,
                             .payload_len = t->len,
                             .sig = t->sig,
                             .sig_len = t->sig_len};
    snprintf(ev.origin, sizeof ev.origin, "%s", h.origin);
    snprintf(ev.type, sizeof ev.type, "%s", h.type);
    snprintf(ev.event_id, sizeof ev.event_id, "%s", t->id);
    snprintf(ev.room_id, sizeof ev.room_id, "%s", r->room_id);
    struct srv_fed_counters *n = srv_fed_counters_mut(s);
    enum kz_err e = KZ_OK;
    if (store_event_insert(s->store, &ev) != STORE_OK) {
        KZ_ERROR("fed_store_failed", "room=%s origin=%s seq=%lld error=\"%s\"", r->room_id,
                 h.origin, (long long)h.seq, store_errmsg(s->store));
        e = KZ_INTERNAL;
        goto out;
    }
    if (n) {
        n->events_received++;
        n->late += late;
        n->invalid += invalid != NULL;
    }
    if (invalid) {
        KZ_INFO("fed_event_invalid", "room=%s origin=%s seq=%lld type=%s why=\"%s\"", r->room_id,
                h.origin, (long long)h.seq, h.type, invalid);
        goto out;
    }
    int64_t also = 0;
    const char *why = NULL;
    if ((e = srv_event_apply(s, r, &ev, content, &also, &why)) != KZ_OK) {
        KZ_ERROR("fed_apply_failed", "room=%s origin=%s seq=%lld type=%s", r->room_id, h.origin,
                 (long long)h.seq, h.type);
        goto out;
    }
    /* A photo's blobs are fetched after the commit, never before the event (fed_blobs.c). */
    if ((e = srv_fed_blobs_event(s, r, &ev, content)) != KZ_OK)
        goto out;
    if (!strcmp(h.type, "room.update") || !strcmp(h.type, "room.archive"))
        store_room_get_by_id(s->store, r->id, r);
    struct store_user u;
    const char *login = h.sender, *uname = h.sender;
    if (actor && store_user_get(s->store, actor, &u) == STORE_OK) {
        login = u.login;
        uname = u.name;
    }
    /* This server's people who are not looking are pushed as for an event made here. */
    if (srv_push_posted(s, r, ev.pos, ev.ts, actor, uname, h.type,
                        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(content, "body")),
                        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(content, "urgent"))) !=
        KZ_OK) {
        KZ_ERROR("fed_push_failed", "room=%s origin=%s seq=%lld error=\"%s\"", r->room_id, h.origin,
                 (long long)h.seq, store_errmsg(s->store));
        e = KZ_INTERNAL;
        goto out;
    }
    struct kz_frame *frame = srv_event_frame_new(s, &ev, login, uname, content);
    if (!frame || srv_events_queue(s, ev.pos, r->id, also, NULL, t->len, frame) != 0) {
        kz_frame_unref(frame);
        e = KZ_INTERNAL;
    }
out:
    cJSON_Delete(content);
    return e;
}

/* A room this server does not hold yet: its creation, from its authority, naming this server
 * among its servers. Inserts the room and its member servers. */
static enum kz_err take_room(struct srv *s, const char *peer, const struct taken *t,
                             const char *room_id, struct store_room *r, char *why, size_t n)
{
    struct kz_event_head h;
    cJSON *content = NULL;
    char rid[KZ_EVENT_ID_CHARS];
    kz_event_room_id(t->payload, t->len, rid);
    if (kz_event_parse(t->payload, t->len, &h, &content) || strcmp(h.type, "room.create") ||
        h.seq != 1 || strcmp(rid, room_id)) {
        cJSON_Delete(content);
        snprintf(why, n, "not the room's creation");
        return KZ_BAD_REQUEST;
    }
    const cJSON *servers = cJSON_GetObjectItemCaseSensitive(content, "servers");
    bool named = false;
    const cJSON *it;
    cJSON_ArrayForEach(it, servers) named |=
        cJSON_IsString(it) && strcmp(it->valuestring, s->origin) == 0;
    const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(content, "kind"));
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(content, "name"));
    const char *topic = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(content, "topic"));
    const char *history =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(content, "history"));
    enum kz_err e = KZ_OK;
    /* A server admitted after the creation takes the room from its authority, which named the
     * room in its summary to this server (srv_fed_offered). */
    if (!named && !strcmp(peer, h.origin) && srv_fed_offered(s, peer, room_id))
        named = true;
    if (!named || !kind || strcmp(kind, "group") || !name || strlen(name) > STORE_NAME_MAX ||
        (topic && strlen(topic) > STORE_TOPIC_MAX)) {
        snprintf(why, n, "a shared room's creation that does not name this server");
        e = KZ_FORBIDDEN;
        goto out;
    }
    memset(r, 0, sizeof *r);
    snprintf(r->room_id, sizeof r->room_id, "%s", room_id);
    snprintf(r->kind, sizeof r->kind, "group");
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->topic, sizeof r->topic, "%s", topic ? topic : "");
    snprintf(r->history, sizeof r->history, "%s",
             history && !strcmp(history, "joined") ? "joined" : "shared");
    snprintf(r->authority, sizeof r->authority, "%s", h.origin);
    r->created_by = srv_actor_of(s, h.origin, h.sender, NULL);
    r->created_at = h.ts;
    if (!r->created_by || store_room_insert(s->store, r, NULL) != STORE_OK) {
        snprintf(why, n, "cannot store the room");
        e = KZ_INTERNAL;
        goto out;
    }
    e = srv_room_servers_init(s, r->id, content, 0);
    if (!e)
        e = srv_hotline_init(s, r->id, content);
    if (!e)
        KZ_INFO("fed_room_joined", "room=%s authority=%s name=\"%s\"", room_id, h.origin, name);
out:
    cJSON_Delete(content);
    return e;
}

static int events_in(struct srv *s, const char *peer, const cJSON *j, char *why, size_t n,
                     bool from_pending);

int srv_fed_events_in(struct srv *s, const char *peer, const cJSON *j, char *why, size_t n)
{
    int rc = events_in(s, peer, j, why, n, false);
    const char *room_id = jstr(j, "room"), *origin = jstr(j, "origin");
    const cJSON *inc = cJSON_GetObjectItemCaseSensitive(j, "inc");
    struct store_room r;
    if (rc || !room_id || !origin || !cJSON_IsNumber(inc) ||
        store_room_get(s->store, room_id, &r) != STORE_OK)
        return rc;
    /* Batches of this log that came early and now follow what it holds. */
    for (;;) {
        int64_t head = 0;
        char head_id[STORE_ROOM_ID_MAX + 1];
        const char *from = NULL;
        store_log_head(s->store, r.id, origin, (int64_t)inc->valuedouble, &head, head_id);
        cJSON *next =
            srv_fed_pending_take(s, room_id, origin, (int64_t)inc->valuedouble, head, &from);
        if (!next)
            break;
        char ignored[160];
        events_in(s, from, next, ignored, sizeof ignored, true);
        cJSON_Delete(next);
    }
    return 0;
}

static int events_in(struct srv *s, const char *peer, const cJSON *j, char *why, size_t n,
                     bool from_pending)
{
    const char *room_id = jstr(j, "room"), *origin = jstr(j, "origin");
    const cJSON *inc_j = cJSON_GetObjectItemCaseSensitive(j, "inc");
    const cJSON *events = cJSON_GetObjectItemCaseSensitive(j, "events");
    if (!room_id || strlen(room_id) != KZ_EVENT_ID_LEN || !origin ||
        strlen(origin) > STORE_SERVER_ID_MAX || !cJSON_IsNumber(inc_j) || inc_j->valuedouble < 1 ||
        inc_j->valuedouble > (double)KZ_EVENT_INT_MAX || !cJSON_IsArray(events)) {
        snprintf(why, n, "an events frame names its room, origin, inc and events");
        return -1;
    }
    int64_t inc = (int64_t)inc_j->valuedouble;
    int nev = cJSON_GetArraySize(events);
    struct srv_fed_counters *cnt = srv_fed_counters_mut(s);
    if (!cnt)
        return 0;
    /* Whose key signs this log. */
    uint8_t pk[KZ_EVENT_PK_BYTES];
    /* This server's current log, relayed back to it: only what it holds already is taken (as a
     * duplicate, acknowledged so the relay stops); anything else is refused below. */
    bool own_current = strcmp(origin, s->origin) == 0 && inc == s->inc;
    if (strcmp(origin, s->origin) == 0) {
        if (inc > s->inc) {
            cnt->rejected += nev;
            KZ_WARN("fed_own_incarnation",
                    "peer=%s room=%s inc=%lld: refused, only this server "
                    "writes its current incarnation",
                    peer, room_id, (long long)inc);
            return 0;
        }
        memcpy(pk, s->sk + 32, sizeof pk);
    } else {
        struct store_peer sp;
        if (store_peer_get(s->store, origin, &sp) != STORE_OK) {
            cnt->rejected += nev;
            KZ_WARN("fed_unknown_origin", "peer=%s room=%s origin=%s: not a pinned server", peer,
                    room_id, origin);
            return 0;
        }
        memcpy(pk, sp.key, sizeof pk);
    }
    struct store_room r;
    enum store_rc rrc = store_room_get(s->store, room_id, &r);
    bool creating = rrc == STORE_NOT_FOUND;
    if (rrc != STORE_OK && !creating)
        return 0;
    if (!creating) {
        bool admitted = false, peer_admitted = false;
        if (!r.authority[0]) {
            cnt->rejected += nev;
            KZ_WARN("fed_not_shared", "peer=%s room=%s: not a shared room here", peer, room_id);
            return 0;
        }
        int64_t ci, cs;
        store_room_server_admitted(s->store, r.id, origin, &admitted);
        store_room_server_admitted(s->store, r.id, peer, &peer_admitted);
        /* A removed server's log is taken (its logs stay whole on every server), each event
         * past its cutoff kept invalid (fed_valid). */
        bool cut = store_room_server_cutoff(s->store, r.id, origin, &ci, &cs) == STORE_OK;
        if (cut && strcmp(peer, origin) == 0)
            peer_admitted = true; /* its own log, so that it stops offering it */
        if (!peer_admitted || (!admitted && !cut && strcmp(origin, r.authority))) {
            /* Perhaps its admission has not arrived yet: it waits at the sender, never
             * dropped; the next summary asks for it again. */
            KZ_INFO("fed_not_admitted", "peer=%s room=%s origin=%s", peer, room_id, origin);
            return 0;
        }
    } else if (strcmp(origin, peer) != 0 && strcmp(origin, s->origin) != 0) {
        /* A room not held yet arrives first from its authority (relays send it first too). */
    }
    int64_t head = 0;
    char head_id[STORE_ROOM_ID_MAX + 1] = "";
    if (!creating)
        store_log_head(s->store, r.id, origin, inc, &head, head_id);
    int64_t quarantine = 0;
    bool quarantined =
        !creating && store_fed_quarantine(s->store, r.id, origin, inc, &quarantine) == STORE_OK;
    struct kz_event_log log;
    kz_event_log_start(&log, creating ? NULL : room_id, origin, inc, head,
                       head_id[0] ? head_id : NULL);
    struct taken *took = calloc((size_t)nev + 1, sizeof *took);
    if (!took)
        return 0;
    int ntook = 0, dups = 0;
    bool gap = false, waiting = false;
    int64_t gap_seq = 0;
    const cJSON *item;
    int64_t now = kz_now_ms();
    cJSON_ArrayForEach(item, events)
    {
        const char *payload = cJSON_GetStringValue(cJSON_GetArrayItem(item, 0));
        const char *sig64 = cJSON_GetStringValue(cJSON_GetArrayItem(item, 1));
        struct taken t = {.payload = payload};
        struct kz_event_head h;
        if (!payload || !sig64 || (sig64[0] && !fed_b64url_decode(sig64, t.sig, sizeof t.sig)) ||
            kz_event_parse(payload, t.len = strlen(payload), &h, NULL) ||
            strcmp(h.origin, origin) || h.inc != inc) {
            cnt->rejected++;
            KZ_WARN("fed_event_refused", "peer=%s room=%s origin=%s: malformed or of another log",
                    peer, room_id, origin);
            break;
        }
        t.sig_len = sig64[0] ? sizeof t.sig : 0;
        kz_event_id(payload, t.len, t.id);
        /* Of this frame's room: a creation names it by its hash, every other event in it. */
        char of_room[KZ_EVENT_ID_CHARS];
        if (h.room[0])
            snprintf(of_room, sizeof of_room, "%s", h.room);
        else
            kz_event_room_id(payload, t.len, of_room);
        if (strcmp(of_room, room_id) != 0) {
            cnt->rejected++;
            KZ_WARN("fed_event_refused", "peer=%s room=%s origin=%s seq=%lld: %s (of room %s)",
                    peer, room_id, origin, (long long)h.seq,
                    kz_event_verdict_name(KZ_EVENT_OTHER_LOG), of_room);
            break;
        }
        if (h.seq <= log.seq && h.seq > head) {
            /* Twice in this batch: the same event is a duplicate, another one ends the batch. */
            bool same = false;
            for (int i = 0; i < ntook; i++)
                same |= took[i].seq == h.seq && strcmp(took[i].id, t.id) == 0;
            if (!same) {
                cnt->rejected++;
                break;
            }
            dups++;
            continue;
        }
        if (h.seq <= log.seq) {
            char held[STORE_ROOM_ID_MAX + 1] = "";
            bool is_held = !creating &&
                           store_event_id_at(s->store, r.id, origin, inc, h.seq, held) == STORE_OK;
            if (is_held && strcmp(held, t.id) == 0) {
                dups++;
                continue;
            }
            if (is_held && t.sig_len && kz_event_verify(payload, t.len, t.sig, t.sig_len, pk) &&
                srv_fed_tx_begin(s) == KZ_OK) {
                struct store_fork f = {.room = r.id,
                                       .origin = origin,
                                       .inc = inc,
                                       .seq = h.seq,
                                       .held_id = held,
                                       .other_id = t.id,
                                       .from_peer = peer,
                                       .payload = payload,
                                       .payload_len = t.len,
                                       .sig = t.sig,
                                       .sig_len = t.sig_len,
                                       .at = now};
                store_fed_fork_add(s->store, &f);
                cnt->forks++;
                KZ_ERROR("fed_fork",
                         "room=%s origin=%s inc=%lld seq=%lld held=%s other=%s peer=%s:"
                         " the log is quarantined above the fork",
                         room_id, origin, (long long)inc, (long long)h.seq, held, t.id, peer);
                quarantined = true; /* nothing more of this log, this batch included */
                quarantine = h.seq;
            } else {
                cnt->rejected++;
            }
            continue;
        }
        if (own_current) {
            cnt->rejected++;
            KZ_WARN("fed_own_incarnation",
                    "peer=%s room=%s inc=%lld seq=%lld: refused, only this server writes its "
                    "current incarnation",
                    peer, room_id, (long long)inc, (long long)h.seq);
            break;
        }
        if (quarantined && h.seq >= quarantine) {
            cnt->rejected++;
            break;
        }
        char id[KZ_EVENT_ID_CHARS];
        enum kz_event_verdict v =
            kz_event_log_check(&log, payload, t.len, t.sig, t.sig_len, pk, NULL, id);
        if (v == KZ_EVENT_GAP) {
            gap = true;
            gap_seq = h.seq;
            break;
        }
        if (v != KZ_EVENT_OK) {
            cnt->rejected++;
            KZ_WARN("fed_event_refused", "peer=%s room=%s origin=%s inc=%lld seq=%lld: %s", peer,
                    room_id, origin, (long long)inc, (long long)h.seq, kz_event_verdict_name(v));
            break;
        }
        t.seq = h.seq;
        took[ntook++] = t;
    }
    cnt->duplicates += dups;
    /* Only what a signature in the batch covers is taken. */
    int keep = 0;
    while (keep < ntook && took[keep].seq <= log.signed_seq)
        keep++;
    bool tail = keep < ntook;
    int64_t new_head = head;
    if (keep && srv_fed_tx_begin(s) == KZ_OK) {
        enum kz_err e = KZ_OK;
        char rwhy[160] = "";
        if (creating) {
            if (strcmp(log.room, room_id) != 0 ||
                (e = take_room(s, peer, &took[0], room_id, &r, rwhy, sizeof rwhy))) {
                cnt->rejected += keep;
                KZ_WARN("fed_room_refused", "peer=%s room=%s: %s", peer, room_id,
                        rwhy[0] ? rwhy : "its creation does not hash to its id");
                free(took);
                return 0;
            }
        }
        for (int i = 0; i < keep && !e; i++) {
            if ((e = take_one(s, &r, &took[i], now)) == KZ_OK)
                new_head = took[i].seq;
        }
        if (e == KZ_CONFLICT) {
            /* An authority event whose grant (another server's room.authority) is not here yet:
             * what precedes it is taken; it and the rest come again once the grant is. */
            e = KZ_OK;
            waiting = true;
            srv_fed_wait_add(s, peer, r.id, room_id, origin, inc);
        }
        if (e) {
            s->doomed = true; /* nothing half-taken is committed or acknowledged */
            free(took);
            return 0;
        }
        srv_fed_peer_holds(s, peer, r.id, origin, inc, new_head);
        srv_fed_room_changed(s, r.id);
    }
    free(took);
    if (creating && new_head == 0)
        return 0;
    /* A batch that came ahead of the one before it waits for it (frames reordered on the way);
     * without room, or if it came from the pending area already, it is asked for again. */
    if (gap && !ntook && !dups && !from_pending &&
        srv_fed_pending_put(s, peer, j, room_id, origin, inc, gap_seq))
        return 0;
    if (waiting) {
        if (new_head > head)
            srv_fed_ack(s, peer, room_id, origin, inc, new_head, false, false);
    } else if (gap || tail)
        srv_fed_ack(s, peer, room_id, origin, inc, new_head, true, true);
    else if (new_head > head || dups)
        srv_fed_ack(s, peer, room_id, origin, inc, new_head, false, false);
    return 0;
}
