/* push_events.c - who is pushed about a new message or photo in a room (docs/notifications.md,
 * "What is sent"): the other person of a direct room, a hotline room's members for a first
 * report, the members a group room's message mentions by @login, and the members who watch a
 * group room for its photos (op room.watch). Events made here (ops_talk.c, ops_e2ee.c) and
 * events received from peer servers (fed_receive.c) come through srv_push_posted alike, so a
 * first report typed on another town's server wakes this one's people as a local one would. */
#include "notify.h"
#include "store_push.h"

#include <string.h>

#define PAYLOAD_CAP sizeof(((struct store_push_send *)0)->payload)

/* A push's JSON (a kind, the room, the position, who, where; text only if given), the caller's
 * to cJSON_free. Fields come from people and peers: escaping may multiply their bytes, so they
 * are cut shorter until the whole fits the push outbox's payload (and a push service's 4 KB
 * with room to spare). NULL only when out of memory. */
static char *payload(const char *kind, const char *room_id, int64_t pos, const char *from,
                     const char *title, const char *text, size_t text_cap)
{
    size_t cap = 160;
    for (int tries = 0; tries < 12; tries++) {
        char f[161], t[161], x[401];
        kz_utf8_copy_cut(f, sizeof f, from ? from : "", cap);
        kz_utf8_copy_cut(t, sizeof t, title ? title : "", cap);
        kz_utf8_copy_cut(x, sizeof x, text ? text : "", text_cap);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "kind", kind);
        cJSON_AddStringToObject(j, "room", room_id);
        cJSON_AddNumberToObject(j, "pos", (double)pos);
        cJSON_AddStringToObject(j, "from", f);
        if (title)
            cJSON_AddStringToObject(j, "title", t);
        if (text)
            cJSON_AddStringToObject(j, "text", x);
        char *out = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        if (!out || strlen(out) < PAYLOAD_CAP)
            return out;
        cJSON_free(out);
        cap /= 2;
        text_cap /= 2;
    }
    return NULL;
}

static bool login_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-';
}

/* The distinct logins body mentions, "@login" or with the full-width "＠" Japanese input
 * gives, as a JSON array (the caller's to cJSON_free), at most max of them; NULL if none. An
 * "@" inside a word (an e-mail address) is none; upper case is folded, as logins are lower
 * case; a sentence's full stop after the login is not part of it. One pass over the body,
 * whose length op_table.c bounds already. */
static char *mentions(const char *body, long long max)
{
    cJSON *arr = NULL;
    int found = 0;
    for (size_t i = 0; body[i] && found < max; i++) {
        size_t at = 0;
        if (body[i] == '@')
            at = 1;
        else if (!strncmp(body + i, "\xEF\xBC\xA0", 3)) /* U+FF20 FULLWIDTH COMMERCIAL AT */
            at = 3;
        if (!at || (i > 0 && login_char((unsigned char)body[i - 1])))
            continue;
        char login[STORE_LOCAL_LOGIN_MAX + 1];
        size_t n = 0, j = i + at;
        while (login_char((unsigned char)body[j]) && n < STORE_LOCAL_LOGIN_MAX) {
            char ch = body[j++];
            login[n++] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
        }
        if (login_char((unsigned char)body[j]))
            continue; /* longer than any login */
        while (n > 0 && login[n - 1] == '.')
            n--;
        login[n] = '\0';
        i = j - 1;
        if (!kz_login_valid(login))
            continue;
        if (!arr && !(arr = cJSON_CreateArray()))
            return NULL;
        bool dup = false;
        const cJSON *it;
        cJSON_ArrayForEach(it, arr)
        {
            dup = dup || strcmp(it->valuestring, login) == 0;
        }
        if (!dup) {
            cJSON_AddItemToArray(arr, cJSON_CreateString(login));
            found++;
        }
    }
    char *out = arr ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    return out;
}

/* Queues one kind of push about the event at pos; previews only for kinds that may carry text. */
static enum kz_err queue(struct srv *s, const struct store_room *room, int64_t pos, int64_t sender,
                         const char *from, const char *kind, bool urgent, const char *title,
                         const char *text, const char *logins, bool watchers)
{
    const struct kz_config *cfg = srv_config(s);
    char *plain = payload(kind, room->room_id, pos, from, title, NULL, 0);
    char *preview =
        text && cfg->push_preview_bytes > 0
            ? payload(kind, room->room_id, pos, from, title, text, (size_t)cfg->push_preview_bytes)
            : NULL;
    if (!plain || (text && cfg->push_preview_bytes > 0 && !preview)) {
        cJSON_free(plain);
        cJSON_free(preview);
        return KZ_INTERNAL;
    }
    int64_t now = kz_now_ms(), n = 0;
    struct store_push_room_q q = {
        .room = room->id,
        .pos = pos,
        .except = sender,
        .kind = kind,
        .dflt = srv_notify_default(kind, false),
        .payload = plain,
        .preview = preview,
        .logins = logins,
        .watchers = watchers,
        .urgency = urgent ? "high" : "normal",
        .ttl_s = urgent ? cfg->push_ttl_urgent_s : cfg->push_ttl_s,
        .next_at = now + cfg->push_coalesce_ms, /* read elsewhere meanwhile: none */
        .now = now,
    };
    enum store_rc r = store_push_queue_room(srv_store(s), &q, &n);
    cJSON_free(plain);
    cJSON_free(preview);
    if (r != STORE_OK)
        return KZ_INTERNAL;
    if (n > 0)
        srv_notify_schedule(s, cfg->push_coalesce_ms);
    return KZ_OK;
}

enum kz_err srv_push_posted(struct srv *s, const struct store_room *room, int64_t pos, int64_t ts,
                            int64_t sender, const char *from, const char *type, const char *body,
                            bool urgent)
{
    if (!s->push || !s->push->pool)
        return KZ_OK; /* no sender (push_subject unset): nothing would ever leave */
    const struct kz_config *cfg = srv_config(s);
    bool msg = strcmp(type, "msg") == 0, photo = strcmp(type, "e2ee.photo") == 0;
    bool direct = strcmp(room->kind, "direct") == 0;
    if (!msg && !photo)
        return KZ_OK;
    if (photo) /* "new photo", never anything of it; in a group room to its watchers only */
        return queue(s, room, pos, sender, from, "photo", false, "new photo", NULL, NULL, !direct);
    if (!body)
        return KZ_OK;
    /* A first report is one only in a hotline room, whatever a peer's content claims. */
    bool hotline = false;
    if (urgent && room->authority[0] &&
        store_room_is_hotline(srv_store(s), room->id, &hotline) != STORE_OK)
        return KZ_INTERNAL;
    urgent = urgent && hotline;
    /* A peer's catch-up after days apart brings old messages: past the TTL a push service
     * would keep them, a push wakes no one for anything still useful. */
    int64_t ttl_ms = (urgent ? cfg->push_ttl_urgent_s : cfg->push_ttl_s) * 1000;
    if ((s->clock ? s->clock() : kz_now_ms()) - ts > ttl_ms)
        return KZ_OK;
    if (urgent)
        return queue(s, room, pos, sender, from, "hotline", true, room->name, body, NULL, false);
    if (direct)
        return queue(s, room, pos, sender, from, "direct", false, NULL, body, NULL, false);
    if (cfg->push_mentions_max <= 0)
        return KZ_OK;
    char *logins = mentions(body, cfg->push_mentions_max);
    enum kz_err e = logins ? queue(s, room, pos, sender, from, "mention", false, room->name, body,
                                   logins, false)
                           : KZ_OK;
    cJSON_free(logins);
    return e;
}

/* ---- room.watch ---- */

enum kz_err op_room_watch(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    struct store_room room;
    struct store_member me;
    enum kz_err e;
    if ((e = srv_room_for_member(c, &room, &me)))
        return e;
    if (strcmp(room.kind, "group") != 0)
        return srv_fail(c, KZ_BAD_REQUEST,
                        "only a group room can be watched: a direct room's photos push already");
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(c->args, "watch");
    if (w && store_room_watch_set(st, room.id, c->auth.user.id, cJSON_IsTrue(w)) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot store the watch");
    bool watched = false;
    if (store_room_watched(st, room.id, c->auth.user.id, &watched) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot read the watch");
    c->result = cJSON_CreateObject();
    cJSON_AddStringToObject(c->result, "room", room.room_id);
    cJSON_AddBoolToObject(c->result, "watched", watched);
    return KZ_OK;
}
