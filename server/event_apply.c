/* event_apply.c - applying room events to the state derived from the logs: message rows (text,
 * edits, deletions), memberships and roles, a room's name, topic and archiving, and read
 * markers.
 *
 * Everything a change needs is in the event (its type, content, sender, position and time),
 * nothing in the call that caused it: a local op reaches this through srv_log_append
 * (event_log.c), and an event received from another server will reach it the same way, so
 * both change the state alike. Event types not named here change no derived state of their
 * own (room.create inserts its room in event_log.c, because the room's id is the creation's
 * hash; notices and encrypted photos keep theirs in ops_notice.c and ops_e2ee.c). */
#include "core.h"

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
    const char *login = content_str(content, "user");
    const char *membership = content_str(content, "membership");
    struct store_user u;
    if (!login || !membership || store_user_get_by_login(s->store, login, &u) != STORE_OK)
        return refused(why, "cannot update the membership");
    enum store_rc rc;
    if (strcmp(membership, "join") == 0) {
        const char *role = content_str(content, "role");
        int64_t joined = e->pos;
        struct store_member m;
        /* The creator's own first join dates from the creation, so that its history starts
         * with the room itself. */
        if (u.id == room->created_by && e->sender == u.id &&
            store_member_get(s->store, e->room, u.id, &m) == STORE_NOT_FOUND)
            store_history(s->store, e->room, 0, 0, 1, first_pos, &joined);
        rc = store_member_join(s->store, e->room, u.id, role ? role : "member", joined);
    } else {
        rc = store_member_leave(s->store, e->room, u.id, e->pos);
        *also_user = u.id;
    }
    return rc == STORE_OK ? KZ_OK : refused(why, "cannot update the membership");
}

static enum kz_err apply_role(struct srv *s, const struct store_event *e, const cJSON *content,
                              const char **why)
{
    const char *login = content_str(content, "user");
    const char *role = content_str(content, "role");
    struct store_user u;
    if (!login || !role || store_user_get_by_login(s->store, login, &u) != STORE_OK ||
        store_member_set_role(s->store, e->room, u.id, role) != STORE_OK)
        return refused(why, "cannot change the role");
    return KZ_OK;
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
    if (strcmp(e->type, "room.archive") == 0) {
        bool archived = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(content, "archived"));
        if (store_room_set_archived(s->store, e->room, archived ? e->ts : 0) != STORE_OK)
            return refused(why, "cannot archive the room");
        return KZ_OK;
    }
    return KZ_OK;
}

enum kz_err srv_read_marker_apply(struct srv *s, int64_t room, int64_t user_id, int64_t pos,
                                  int64_t at, bool *moved)
{
    int64_t old = 0;
    *moved = false;
    if (store_member_read(s->store, room, user_id, pos, at, moved, &old) != STORE_OK)
        return KZ_INTERNAL;
    if (*moved)
        srv_read_changed(s, room, user_id, old, pos);
    return KZ_OK;
}
