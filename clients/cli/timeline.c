/* timeline.c - what `history` and `tail` make of a room's events, as LINE's timeline does:
 * encrypted photos opened on this device (or why they cannot be: whose device the key is
 * awaited from, withheld, damaged), this user's photos still uploading from this device, 既読
 * beside one's own messages and photos (and, in tail, one compact line when they change; in a
 * shared room by server, beside every message),
 * marking read what was shown, and, while tail follows a room, taking photo keys as they
 * arrive and answering other devices' key requests (any running member device answers, so a
 * new phone does not wait for the sender to run a photo command).
 *
 * What was shown is read. A read marker is one position per room: moving it past a message
 * marks everything before it too. So a room is marked only while nothing unread lies between
 * the marker and the first event this command showed ("contiguous"); otherwise the command
 * says where the unread ones begin and leaves the marker alone.
 *
 * One timeline per process (the CLI runs one command); tail keeps it across reconnections. */
#include "e2ee.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MARK_EVERY_MS 1000 /* tail: marks and 既読 lines wait at most this long */

struct tl_room {
    char id[ROOM_ID_MAX];
    long long marker;    /* this user's read marker, as last known */
    long long unread;    /* room.list's unread count when last read */
    long long start;     /* tail: every event after this position was shown (-1: unknown) */
    long long shown;     /* the newest position shown */
    long long marked;    /* the newest position this command asked the server to mark */
    bool contiguous;     /* nothing unread and unshown lies between marker and start */
    bool known;          /* in room.list: a talk room (notices are read with notice show) */
    bool loaded;         /* rv holds the room's encrypted events */
    struct room_view rv; /* this device's view of the room's photos and keys */
    cJSON *waiting;      /* [{ev, prefix}]: photos shown without their key, shown again once
                          * it arrives or is withheld */
    cJSON *changes;      /* pending 既読 changes: {"POS": count} */
    cJSON *readers;      /* who moved their marker meanwhile: {login: pos} */
    cJSON *groups;       /* a shared room's pending 既読 by server: {"POS": [[server, read,
                          * members], ...]} */
};

struct own_msg {
    long long pos, count; /* a message or photo of ours that was shown, and its 既読 then */
};

static struct {
    struct kzc *c; /* borrowed */
    struct session s;
    struct ks_device me;
    bool have_me, me_failed;
    bool mark;
    bool labels;  /* tail of every room: lines say which room */
    cJSON *rooms; /* room.list's "rooms" (owned) */
    struct tl_room *r;
    size_t n, cap;
    struct own_msg *own;
    size_t nown, capown;
    long long flushed_at;
    cJSON *server_names; /* {server id: name}, learned from read_by_server (pushes carry ids) */
} tl;

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void hhmm(long long ms, char out[16])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, 16, "%H:%M", &tm);
}

static const char *who(const cJSON *ev)
{
    const char *name = cli_str(ev, "sender_name", NULL);
    return *name ? name : cli_str(ev, "sender", NULL);
}

/* Text from others on one line: control characters (a caption's newlines) become spaces. */
static void one_line(const char *in, char *out, size_t n)
{
    size_t i = 0;
    for (; *in && i + 1 < n; in++)
        out[i++] = (unsigned char)*in < 0x20 || *in == 0x7f ? ' ' : *in;
    out[i] = '\0';
}

/* A server as 既読 by server shows it: its name as pinned on this user's server (learned from
 * a view's read_by_server), else its id (this server itself, or a peer pinned without one). */
static const char *server_label(const char *server, const char *name)
{
    if (name && *name) {
        if (!tl.server_names)
            tl.server_names = cJSON_CreateObject();
        if (strcmp(cli_str(tl.server_names, server, NULL), name) != 0) {
            cJSON_DeleteItemFromObjectCaseSensitive(tl.server_names, server);
            cJSON_AddStringToObject(tl.server_names, server, name);
        }
        return name;
    }
    const char *known = cli_str(tl.server_names, server, NULL);
    return *known ? known : server;
}

void tl_print_groups(const cJSON *groups)
{
    const cJSON *g;
    int k = 0;
    cJSON_ArrayForEach(g, groups)
    {
        const char *server, *name = NULL;
        long long read, members;
        if (cJSON_IsArray(g)) { /* a push's [server, read, members] */
            server = cJSON_GetStringValue(cJSON_GetArrayItem(g, 0));
            read = (long long)cJSON_GetNumberValue(cJSON_GetArrayItem(g, 1));
            members = (long long)cJSON_GetNumberValue(cJSON_GetArrayItem(g, 2));
        } else {
            server = cli_str(g, "server", NULL);
            name = cli_str(g, "name", NULL);
            read = cli_num(g, "read");
            members = cli_num(g, "members");
        }
        if (!server)
            continue;
        char label[256];
        one_line(server_label(server, name), label, sizeof label);
        printf("%s %s %lld/%lld", k++ ? " ·" : "  既読", label, read, members);
    }
}

static struct tl_room *room_of(const char *id, bool create)
{
    for (size_t i = 0; i < tl.n; i++)
        if (strcmp(tl.r[i].id, id) == 0)
            return &tl.r[i];
    if (!create || strlen(id) >= ROOM_ID_MAX)
        return NULL;
    if (tl.n == tl.cap) {
        size_t cap = tl.cap ? tl.cap * 2 : 8;
        struct tl_room *grown = realloc(tl.r, cap * sizeof *grown);
        if (!grown)
            return NULL;
        tl.r = grown;
        tl.cap = cap;
    }
    struct tl_room *r = &tl.r[tl.n++];
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", id);
    r->start = -1;
    return r;
}

static void views_free(void)
{
    for (size_t i = 0; i < tl.n; i++)
        if (tl.r[i].loaded) {
            rv_free(&tl.r[i].rv);
            tl.r[i].loaded = false;
        }
    if (tl.have_me)
        ks_device_wipe(&tl.me);
    tl.have_me = tl.me_failed = false;
}

void tl_begin(struct kzc *c, const struct session *s, bool mark_read)
{
    views_free(); /* they hold the previous connection */
    tl.c = c;
    tl.s = *s;
    tl.mark = mark_read;
}

void tl_detach(void)
{
    views_free();
    tl.c = NULL;
}

void tl_set_rooms(const cJSON *room_list)
{
    cJSON_Delete(tl.rooms);
    tl.rooms = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(room_list, "rooms"), true);
    const cJSON *x;
    cJSON_ArrayForEach(x, tl.rooms)
    {
        struct tl_room *r = room_of(cli_str(x, "room", NULL), true);
        if (!r)
            continue;
        r->known = true;
        if (cli_num(x, "read_pos") > r->marker)
            r->marker = cli_num(x, "read_pos");
        r->unread = cli_num(x, "unread");
        /* Only ever to true: what this command showed and has not marked yet counts as
         * unread on the server until it is marked. */
        if (r->unread == 0)
            r->contiguous = true;
    }
}

/* How a command line names the room: its name if that is unique among the user's rooms, @login
 * for a one-to-one room, else its id; quoted for the shell when it needs to be. */
static void room_ref(const char *id, char *out, size_t n)
{
    const cJSON *x, *me = NULL;
    int same = 0;
    cJSON_ArrayForEach(x, tl.rooms)
    {
        if (strcmp(cli_str(x, "room", NULL), id) == 0)
            me = x;
    }
    char ref[300];
    if (me && strcmp(cli_str(me, "kind", NULL), "direct") == 0 && *cli_str(me, "with", NULL)) {
        snprintf(ref, sizeof ref, "@%s", cli_str(me, "with", NULL));
    } else if (me && *cli_str(me, "name", NULL)) {
        cJSON_ArrayForEach(x, tl.rooms)
        {
            same += strcmp(cli_str(x, "name", NULL), cli_str(me, "name", NULL)) == 0;
        }
        snprintf(ref, sizeof ref, "%s", same == 1 ? cli_str(me, "name", NULL) : id);
    } else {
        snprintf(ref, sizeof ref, "%s", id);
    }
    if (!ref[strcspn(ref, " \t\n'\"\\$`!*?[]{}()<>|&;#~=%^")]) {
        snprintf(out, n, "%s", ref);
        return;
    }
    size_t o = 0;
    if (o + 1 < n)
        out[o++] = '\'';
    for (const char *p = ref; *p && o + 5 < n; p++) {
        if (*p == '\'') {
            memcpy(out + o, "'\\''", 4);
            o += 4;
        } else {
            out[o++] = *p;
        }
    }
    if (o + 1 < n)
        out[o++] = '\'';
    out[o < n ? o : n - 1] = '\0';
}

/* The room's name as room.list gives it (the other person's, for a one-to-one room). */
static const char *name_of(const char *id)
{
    const cJSON *x;
    cJSON_ArrayForEach(x, tl.rooms)
    {
        if (strcmp(cli_str(x, "room", NULL), id) == 0)
            return cli_str(x, "name", NULL);
    }
    return id;
}

bool tl_is_mine(const cJSON *ev)
{
    return strcmp(cli_str(ev, "sender", NULL), tl.s.login) == 0;
}

static bool ensure_me(void)
{
    if (tl.have_me || tl.me_failed || !tl.c)
        return tl.have_me;
    tl.have_me = ks_device_ensure(tl.c, &tl.s, &tl.me) == EXIT_OK;
    tl.me_failed = !tl.have_me;
    return tl.have_me;
}

/* The room's view, read on first need; NULL if it cannot be read now. */
static struct room_view *view(struct tl_room *r)
{
    if (r->loaded)
        return &r->rv;
    if (!ensure_me() || rv_load(tl.c, &tl.me, r->id, &r->rv) != EXIT_OK)
        return NULL;
    r->loaded = true;
    return &r->rv;
}

/* "sato's device "kizuna CLI on hq-pc" (q3W…)" */
static void device_name(struct room_view *rv, const char *device, const char *sender, char *out,
                        size_t n)
{
    const cJSON *d = rv_device(rv, device, sender);
    const char *label = d ? cli_str(d, "label", NULL) : "";
    snprintf(out, n, "%s's device%s%s%s (%.8s…)", d ? cli_str(d, "login", NULL) : sender,
             *label ? " \"" : "", label, *label ? "\"" : "", device);
}

/* The bracketed part of a photo's line and what follows it in parentheses. */
static void describe(struct tl_room *r, const cJSON *ev, const struct photo_view *pv,
                     const char *why_not, const char *note, char *what, size_t wn, char *extra,
                     size_t en)
{
    char ref[320];
    room_ref(r->id, ref, sizeof ref);
    snprintf(extra, en, "kizuna photo get %s %lld", ref, cli_num(ev, "pos"));
    if (why_not) {
        snprintf(what, wn, "[photo, cannot be opened now: %s]", why_not);
        return;
    }
    char dev[300], caption[1024];
    switch (pv->state) {
    case PHOTO_READY: {
        /* What the user should know about it (out of order, photos missing before it, made
         * long before it came) stays on its line, as history and tail show it. */
        char warning[300];
        one_line(cli_str(pv->msg, "caption", NULL), caption, sizeof caption);
        one_line(pv->warning, warning, sizeof warning);
        snprintf(what, wn, "[photo%s%s%s%s]%s%s", note ? ", " : "", note ? note : "",
                 *warning ? ", " : "", warning, *caption ? " " : "", caption);
        const cJSON *gps = cJSON_GetObjectItemCaseSensitive(pv->msg, "gps");
        const cJSON *lat = cJSON_GetObjectItemCaseSensitive(gps, "lat");
        const cJSON *lon = cJSON_GetObjectItemCaseSensitive(gps, "lon");
        if (cJSON_IsNumber(lat) && cJSON_IsNumber(lon))
            snprintf(extra, en, "GPS %.6f,%.6f; kizuna photo get %s %lld", lat->valuedouble,
                     lon->valuedouble, ref, cli_num(ev, "pos"));
        break;
    }
    case PHOTO_WAITING:
        device_name(&r->rv, pv->device, cli_str(ev, "sender", NULL), dev, sizeof dev);
        one_line(pv->warning, caption, sizeof caption);
        snprintf(what, wn, "[photo, waiting for its key from %s; asked%s%s]", dev,
                 *caption ? "; " : "", caption);
        break;
    default: /* withheld, or an integrity failure: the detail says which and why */
        one_line(pv->detail, caption, sizeof caption);
        snprintf(what, wn, "[photo, not readable: %s]", caption);
        break;
    }
}

static void print_photo_line(struct tl_room *r, const cJSON *ev, const char *prefix,
                             const char *note, bool remember)
{
    struct photo_view pv = {0};
    const char *why_not = NULL;
    struct room_view *rv = view(r);
    if (!rv)
        why_not = tl.me_failed ? "this device has no registered keys" : "the room cannot be read";
    else if (rv_photo(rv, ev, &pv) != EXIT_OK)
        why_not = "the server cannot be reached";
    char what[1400], extra[700], t[16];
    describe(r, ev, &pv, why_not, note, what, sizeof what, extra, sizeof extra);
    hhmm(cli_num(ev, "ts"), t);
    printf("%s#%lld %s %s: %s (%s)", prefix, cli_num(ev, "pos"), t, who(ev), what, extra);
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(ev, "read_by_server");
    if (groups) /* a shared room: by server, on every message */
        tl_print_groups(groups);
    else if (tl_is_mine(ev) && cli_num(ev, "read_count") > 0)
        printf("  既読 %lld", cli_num(ev, "read_count"));
    printf("\n");
    if (remember && rv && pv.state == PHOTO_WAITING) {
        if (!r->waiting)
            r->waiting = cJSON_CreateArray();
        cJSON *w = cJSON_CreateObject();
        cJSON_AddItemToObject(w, "ev", cJSON_Duplicate(ev, true));
        cJSON_AddStringToObject(w, "prefix", prefix);
        cJSON_AddItemToArray(r->waiting, w);
    }
    cJSON_Delete(pv.msg);
}

void tl_print_photo(const cJSON *ev, const char *prefix)
{
    struct tl_room *r = room_of(cli_str(ev, "room", NULL), true);
    if (!r) {
        printf("%s#%lld %s: [photo]\n", prefix, cli_num(ev, "pos"), who(ev));
        return;
    }
    if (r->loaded)
        rv_add(&r->rv, ev); /* it came live, after the view was read */
    print_photo_line(r, ev, prefix, NULL, true);
}

/* A key arrived or was withheld: photos shown waiting for it are shown again, opened or not. */
static void reshow_waiting(struct tl_room *r)
{
    for (int i = 0; i < cJSON_GetArraySize(r->waiting); i++) {
        cJSON *w = cJSON_GetArrayItem(r->waiting, i);
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(w, "ev");
        cJSON *data = cJSON_Parse(cli_str(ev, "content", "data"));
        uint8_t key[32];
        bool decided =
            rv_key(&r->rv, cli_str(ev, "content", "device"), cli_str(data, "epoch", NULL), key);
        sodium_memzero(key, sizeof key);
        cJSON_Delete(data);
        struct photo_view pv = {0};
        if (!decided && rv_photo(&r->rv, ev, &pv) == EXIT_OK)
            decided = pv.state != PHOTO_WAITING; /* withheld, say so */
        cJSON_Delete(pv.msg);
        if (!decided)
            continue;
        print_photo_line(r, ev, cli_str(w, "prefix", NULL), "key arrived", false);
        cJSON_DeleteItemFromArray(r->waiting, i--);
    }
}

void tl_follow(const cJSON *ev)
{
    const char *type = cli_str(ev, "event", NULL);
    if (strcmp(type, "device") == 0) {
        struct tl_room *dr = room_of(cli_str(ev, "room", NULL), false);
        if (dr && dr->loaded)
            rv_device_line(&dr->rv, ev); /* where a revocation stands in the log (room.c) */
        return;
    }
    if (strncmp(type, "e2ee.", 5) != 0 || strcmp(type, "e2ee.photo") == 0)
        return; /* photos are shown (tl_print_photo) */
    struct tl_room *r = room_of(cli_str(ev, "room", NULL), false);
    if (!r || !r->known || !ensure_me())
        return;
    bool request = strcmp(type, "e2ee.key_request") == 0 &&
                   strcmp(cli_str(ev, "content", "device"), tl.me.id) != 0;
    if (!r->loaded && !request)
        return; /* keys for photos not shown yet: read with the view when one is */
    bool added = r->loaded && rv_add(&r->rv, ev);
    struct room_view *rv = view(r); /* read now, it holds ev */
    if (!rv)
        return;
    if (added && r->waiting &&
        (strcmp(type, "e2ee.keys") == 0 || strcmp(type, "e2ee.withheld") == 0))
        reshow_waiting(r);
    if (request) {
        /* The asking device may have registered after the view was read. */
        fflush(stdout);
        if (rv_reload_devices(rv) == EXIT_OK)
            rv_answer_requests(rv);
    }
}

void tl_shown(const cJSON *ev)
{
    struct tl_room *r = room_of(cli_str(ev, "room", NULL), false);
    long long pos = cli_num(ev, "pos");
    if (!r || !pos)
        return;
    if (pos > r->shown)
        r->shown = pos;
    const char *type = cli_str(ev, "event", NULL);
    bool counted = (strcmp(type, "msg") == 0 &&
                    !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ev, "deleted"))) ||
                   strcmp(type, "e2ee.photo") == 0;
    if (!counted || !tl_is_mine(ev))
        return;
    if (tl.nown == tl.capown) {
        size_t cap = tl.capown ? tl.capown * 2 : 64;
        struct own_msg *grown = realloc(tl.own, cap * sizeof *grown);
        if (!grown)
            return;
        tl.own = grown;
        tl.capown = cap;
    }
    tl.own[tl.nown++] = (struct own_msg){pos, cli_num(ev, "read_count")};
}

void tl_room_start(const char *room_id, long long start, bool contiguous)
{
    struct tl_room *r = room_of(room_id, false);
    if (!r)
        return;
    r->start = start;
    r->contiguous = r->contiguous || contiguous || r->unread == 0;
}

void tl_tail_all(long long start)
{
    tl.labels = true;
    for (size_t i = 0; i < tl.n; i++) {
        struct tl_room *r = &tl.r[i];
        if (!r->known)
            continue;
        tl_room_start(r->id, start, false);
        char ref[320];
        room_ref(r->id, ref, sizeof ref);
        if (!r->contiguous && !json_out)
            printf("[%s] %lld unread from before: kizuna tail %s\n", name_of(r->id), r->unread,
                   ref);
    }
    fflush(stdout);
}

/* Unread messages and photos (from others, not deleted) among events, after the marker. */
static long long unread_in(const struct tl_room *r, const cJSON *events)
{
    long long n = 0;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, events)
    {
        const char *type = cli_str(ev, "event", NULL);
        n += cli_num(ev, "pos") > r->marker && !tl_is_mine(ev) &&
             ((strcmp(type, "msg") == 0 &&
               !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ev, "deleted"))) ||
              strcmp(type, "e2ee.photo") == 0);
    }
    return n;
}

bool tl_page_contiguous(const char *room_id, const cJSON *events, bool more, long long before,
                        long long after, long long *missing)
{
    struct tl_room *r = room_of(room_id, false);
    *missing = -1;
    if (!r || !r->known)
        return false;
    const cJSON *first = cJSON_GetArrayItem(events, 0);
    if (r->unread == 0 || (first && cli_num(first, "pos") <= r->marker))
        return true;
    if (after >= 0)
        return after <= r->marker;
    if (before > 0)
        return !more; /* an older page: contiguous only from the room's start */
    if (!more)
        return true;
    *missing = r->unread - unread_in(r, events);
    return *missing <= 0;
}

long long tl_marker(const char *room_id)
{
    struct tl_room *r = room_of(room_id, false);
    return r ? r->marker : 0;
}

void tl_unread_hint(const char *room_id, long long missing)
{
    char ref[320];
    room_ref(room_id, ref, sizeof ref);
    if (missing > 0)
        printf("(%lld unread before these, not marked read: kizuna history %s --after %lld)\n",
               missing, ref, tl_marker(room_id));
    else
        printf("(unread messages before these, not marked read: kizuna history %s --after %lld)\n",
               ref, tl_marker(room_id));
}

int tl_mark_flush(void)
{
    int rc = EXIT_OK;
    for (size_t i = 0; tl.mark && tl.c && i < tl.n; i++) {
        struct tl_room *r = &tl.r[i];
        if (!r->known || !r->contiguous || r->shown <= r->marked || r->shown <= r->marker)
            continue;
        cJSON *args = cJSON_CreateObject(), *reply = NULL;
        cJSON_AddStringToObject(args, "room", r->id);
        cJSON_AddNumberToObject(args, "pos", (double)r->shown);
        reply = kzc_call(tl.c, "read", args, TIMEOUT_MS);
        if (!reply) {
            rc = EXIT_UNREACHABLE; /* marked on the next connection */
            break;
        }
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok"))) {
            r->marked = r->shown;
            if (cli_num(reply, "read_pos") > r->marker)
                r->marker = cli_num(reply, "read_pos");
        } else {
            r->marked = r->shown; /* refused (left the room): do not ask again */
        }
        cJSON_Delete(reply);
    }
    tl.flushed_at = mono_ms();
    return rc;
}

void tl_counts(const cJSON *read_ev)
{
    struct tl_room *r = room_of(cli_str(read_ev, "room", NULL), false);
    if (!r)
        return;
    const cJSON *m, *pair;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(read_ev, "markers"))
    {
        const char *user = cli_str(m, "user", NULL);
        if (strcmp(user, tl.s.login) == 0) {
            /* Ours moved (here or on another device): once it reaches what tail started
             * from, nothing unread lies unshown before what tail shows. */
            if (cli_num(m, "pos") > r->marker)
                r->marker = cli_num(m, "pos");
            if (r->start >= 0 && r->marker >= r->start)
                r->contiguous = true;
            continue;
        }
        if (!r->readers)
            r->readers = cJSON_CreateObject();
        cJSON_DeleteItemFromObjectCaseSensitive(r->readers, user);
        cJSON_AddNumberToObject(r->readers, user, (double)cli_num(m, "pos"));
    }
    cJSON_ArrayForEach(pair, cJSON_GetObjectItemCaseSensitive(read_ev, "counts"))
    {
        const cJSON *p = cJSON_GetArrayItem(pair, 0), *c = cJSON_GetArrayItem(pair, 1);
        if (!cJSON_IsNumber(p) || !cJSON_IsNumber(c))
            continue;
        for (size_t i = 0; i < tl.nown; i++) {
            if (tl.own[i].pos != (long long)p->valuedouble ||
                tl.own[i].count == (long long)c->valuedouble)
                continue;
            tl.own[i].count = (long long)c->valuedouble;
            if (!r->changes)
                r->changes = cJSON_CreateObject();
            char key[32];
            snprintf(key, sizeof key, "%lld", tl.own[i].pos);
            cJSON_DeleteItemFromObjectCaseSensitive(r->changes, key);
            cJSON_AddNumberToObject(r->changes, key, c->valuedouble);
        }
    }
    /* A shared room's: the same messages by server, shown instead of the plain counts. */
    cJSON_ArrayForEach(pair, cJSON_GetObjectItemCaseSensitive(read_ev, "counts_by_server"))
    {
        const cJSON *p = cJSON_GetArrayItem(pair, 0), *g = cJSON_GetArrayItem(pair, 1);
        char key[32];
        if (!cJSON_IsNumber(p) || !cJSON_IsArray(g))
            continue;
        snprintf(key, sizeof key, "%lld", (long long)p->valuedouble);
        if (!cJSON_GetObjectItemCaseSensitive(r->changes, key))
            continue; /* not ours, or unchanged */
        if (!r->groups)
            r->groups = cJSON_CreateObject();
        cJSON_DeleteItemFromObjectCaseSensitive(r->groups, key);
        cJSON_AddItemToObject(r->groups, key, cJSON_Duplicate(g, true));
    }
}

static int by_count_then_pos(const void *a, const void *b)
{
    const struct own_msg *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* A shared room: one line per message of ours whose 既読 changed, by server, oldest first:
 * "#12  既読 松山市 3/4 · jp-38-ehime-pref 2/2". */
static void groups_lines(struct tl_room *r)
{
    int n = cJSON_GetArraySize(r->groups);
    long long *pos = calloc((size_t)n + 1, sizeof *pos);
    const cJSON *g;
    int k = 0;
    cJSON_ArrayForEach(g, r->groups)
    {
        if (pos)
            pos[k++] = atoll(g->string);
    }
    for (int i = 1; i < k; i++) /* a handful: insertion sort */
        for (int j = i; j > 0 && pos[j - 1] > pos[j]; j--) {
            long long t = pos[j];
            pos[j] = pos[j - 1];
            pos[j - 1] = t;
        }
    for (int i = 0; i < k; i++) {
        char key[32];
        snprintf(key, sizeof key, "%lld", pos[i]);
        if (tl.labels)
            printf("[%s] ", name_of(r->id));
        printf("#%lld", pos[i]);
        tl_print_groups(cJSON_GetObjectItemCaseSensitive(r->groups, key));
        printf("\n");
    }
    free(pos);
}

/* One line per room: "既読 2: #12 #14 · 既読 1: #15 (sato, suzuki)". */
static void counts_line(struct tl_room *r)
{
    if (r->groups) {
        groups_lines(r);
        return;
    }
    int n = cJSON_GetArraySize(r->changes);
    struct own_msg *v = calloc((size_t)n + 1, sizeof *v);
    const cJSON *c;
    int k = 0;
    long long lowest = -1;
    cJSON_ArrayForEach(c, r->changes)
    {
        if (!v)
            break;
        v[k].pos = atoll(c->string);
        v[k].count = (long long)c->valuedouble;
        if (lowest < 0 || v[k].pos < lowest)
            lowest = v[k].pos;
        k++;
    }
    if (v && k) {
        qsort(v, (size_t)k, sizeof *v, by_count_then_pos);
        if (tl.labels)
            printf("[%s] ", name_of(r->id));
        for (int i = 0; i < k; i++) {
            if (i == 0 || v[i].count != v[i - 1].count)
                printf("%s既読 %lld:", i ? " · " : "", v[i].count);
            printf(" #%lld", v[i].pos);
        }
        int named = 0;
        cJSON_ArrayForEach(c, r->readers)
        {
            if (c->valuedouble >= (double)lowest)
                printf("%s%s", named++ ? ", " : " (", c->string);
        }
        printf("%s\n", named ? ")" : "");
    }
    free(v);
}

void tl_counts_flush(void)
{
    for (size_t i = 0; i < tl.n; i++) {
        struct tl_room *r = &tl.r[i];
        if (r->changes && !json_out) /* --json: the read events themselves were printed */
            counts_line(r);
        cJSON_Delete(r->changes);
        cJSON_Delete(r->readers);
        cJSON_Delete(r->groups);
        r->changes = r->readers = r->groups = NULL;
    }
    fflush(stdout);
}

int tl_wait_ms(void)
{
    for (size_t i = 0; i < tl.n; i++) {
        const struct tl_room *r = &tl.r[i];
        if (r->changes ||
            (tl.mark && r->contiguous && r->shown > r->marked && r->shown > r->marker))
            return 300;
    }
    return 1000;
}

int tl_tick(bool idle)
{
    if (!idle && mono_ms() - tl.flushed_at < MARK_EVERY_MS)
        return EXIT_OK;
    tl_counts_flush();
    return tl_mark_flush();
}

void tl_pending_uploads(const char *room_id, const char *label)
{
    struct ks_device me;
    bool mine = tl.have_me;
    if (!mine && !ks_device_local(&tl.s, &me))
        return; /* no keys here: nothing staged either */
    cJSON *list = staging_pending(mine ? &tl.me : &me, tl.s.login, room_id);
    if (!mine)
        ks_device_wipe(&me);
    const cJSON *p;
    cJSON_ArrayForEach(p, list)
    {
        char t[16], caption[1024];
        hhmm(cli_num(p, "created_at"), t);
        one_line(cli_str(p, "caption", NULL), caption, sizeof caption);
        long long len = cli_num(p, "blob_len"), off = cli_num(p, "offset");
        printf("%s%s%s#… %s %s: [photo, still uploading: %lld%% sent]%s%s (kizuna photo resume)\n",
               label && *label ? "[" : "", label ? label : "", label && *label ? "] " : "", t,
               tl.s.login, len > 0 ? off * 100 / len : 0, *caption ? " " : "", caption);
    }
    cJSON_Delete(list);
}

void tl_end(void)
{
    tl_counts_flush();
    tl_mark_flush();
    views_free();
    for (size_t i = 0; i < tl.n; i++) {
        cJSON_Delete(tl.r[i].waiting);
        cJSON_Delete(tl.r[i].changes);
        cJSON_Delete(tl.r[i].readers);
        cJSON_Delete(tl.r[i].groups);
    }
    cJSON_Delete(tl.server_names);
    free(tl.r);
    free(tl.own);
    cJSON_Delete(tl.rooms);
    memset(&tl, 0, sizeof tl);
}
