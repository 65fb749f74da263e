/* talk.c - the kizuna commands for conversations: rooms, dm, send, history, tail, read, readers,
 * search, edit, delete, and finding a room by what the user calls it (resolve_room). Managing a
 * room (room create, invite, archive, ...) is room_manage.c. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* ---- small helpers ---- */

static bool flag(const cJSON *o, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static void hhmm(long long ms, char out[16])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, 16, "%H:%M", &tm);
}

/* What a usage mistake in a POS says. */
#define POS_ERROR "POS: a message's position in the room (#12: 12)"

static bool parse_pos(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 0)
        return false;
    *out = v;
    return true;
}

/* Finds a room by id, id prefix (4+ characters), exact name, or @login for a one-to-one room,
 * among the caller's rooms. */
#define RESOLVE_NONE (-1) /* resolve_in: no room of that list matches */
static int resolve_in(struct kzc *c, const char *want, bool archived, char room_id[ROOM_ID_MAX],
                      char *name, size_t namelen);

/* Whether want is a whole room id: 43 characters of base64url. */
static bool full_room_id(const char *want)
{
    size_t n = strlen(want);
    return n == 43 && strspn(want, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                   "0123456789-_") == n;
}

int resolve_room(struct kzc *c, const char *want, char room_id[ROOM_ID_MAX], char *name,
                 size_t namelen)
{
    /* Rooms in use first; an archived room is still read, searched and exported by name. */
    int rc = resolve_in(c, want, false, room_id, name, namelen);
    if (rc == RESOLVE_NONE)
        rc = resolve_in(c, want, true, room_id, name, namelen);
    if (rc == RESOLVE_NONE && full_room_id(want)) {
        /* A room the caller is not in yet, named by its whole id: a shared room that came from
         * another server, which an admin adds this server's users to (the server decides). */
        snprintf(room_id, ROOM_ID_MAX, "%s", want);
        if (name && namelen)
            snprintf(name, namelen, "%s", want);
        return EXIT_OK;
    }
    if (rc == RESOLVE_NONE) {
        fprintf(stderr, "kizuna: not_found: you have no room called '%s' (see kizuna rooms)\n",
                want);
        return EXIT_REFUSED;
    }
    return rc;
}

/* Looks in one room list (in use, or archived): an exit code, or RESOLVE_NONE. */
static int resolve_in(struct kzc *c, const char *want, bool archived, char room_id[ROOM_ID_MAX],
                      char *name, size_t namelen)
{
    cJSON *reply, *args = NULL;
    if (archived) {
        args = cJSON_CreateObject();
        cJSON_AddTrueToObject(args, "archived");
    }
    int rc = cli_call(c, "room.list", args, &reply);
    if (rc != EXIT_OK)
        return rc;
    const cJSON *r, *found = NULL;
    int matches = 0;
    size_t wlen = strlen(want);
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(reply, "rooms"))
    {
        const char *id = cli_str(r, "room", NULL);
        bool hit = strcmp(id, want) == 0;
        if (!hit && want[0] == '@')
            hit = strcmp(cli_str(r, "kind", NULL), "direct") == 0 &&
                  strcmp(cli_str(r, "with", NULL), want + 1) == 0;
        if (!hit)
            hit = strcmp(cli_str(r, "name", NULL), want) == 0 ||
                  (wlen >= 4 && strncmp(id, want, wlen) == 0);
        if (hit && strcmp(id, want) == 0) {
            found = r;
            matches = 1;
            break;
        }
        if (hit) {
            found = r;
            matches++;
        }
    }
    if (matches == 1) {
        snprintf(room_id, ROOM_ID_MAX, "%s", cli_str(found, "room", NULL));
        if (name)
            snprintf(name, namelen, "%s", cli_str(found, "name", NULL));
    }
    cJSON_Delete(reply);
    if (matches == 0)
        return RESOLVE_NONE;
    if (matches > 1) {
        fprintf(stderr, "kizuna: '%s' names %d rooms: use the room id (see kizuna rooms)\n", want,
                matches);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* cli.h: connects, authenticates and resolves ROOM. */
int cli_room_connect(const char *want, struct kzc **out, char room_id[ROOM_ID_MAX])
{
    struct session s;
    int rc = cli_connect_authed(out, &s);
    if (rc != EXIT_OK)
        return rc;
    rc = resolve_room(*out, want, room_id, NULL, 0);
    if (rc != EXIT_OK) {
        kzc_close(*out);
        *out = NULL;
    }
    return rc;
}

/* cli.h: an op about one room, {"room": id, ...args}. */
int cli_room_call(const char *want, const char *op, cJSON *args, cJSON **reply_out)
{
    struct kzc *c;
    char room_id[ROOM_ID_MAX];
    int rc = cli_room_connect(want, &c, room_id);
    if (rc != EXIT_OK) {
        cJSON_Delete(args);
        return rc;
    }
    if (!args)
        args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "room", room_id);
    return cli_call_and_close(c, op, args, reply_out);
}

/* ---- printing events ---- */

/* The sender as people know them: a user of another server with its municipality's name. The
 * result is valid until the next call. */
static const char *who(const cJSON *ev)
{
    static char buf[512];
    const char *name = cli_str(ev, "sender_name", NULL);
    if (!*name)
        name = cli_str(ev, "sender", NULL);
    const char *server = cli_str(ev, "server_name", NULL);
    /* In a hotline a message names its sender's seat: "宇和島 三郎 [危機管理課長] (宇和島市)". */
    const char *seat = cli_str(ev, "content", "seat");
    if (!*server && !*seat)
        return name;
    snprintf(buf, sizeof buf, "%s%s%s%s%s%s%s", name, *seat ? " [" : "", seat, *seat ? "]" : "",
             *server ? " (" : "", server, *server ? ")" : "");
    return buf;
}

/* The user a member event is about: in a room shared with other servers, the name its server
 * gave and the server's municipality when it is another server's user. */
static const char *member_of(const cJSON *ev, const cJSON *content)
{
    static char buf[512];
    const char *user = cli_str(content, "user", NULL), *name = cli_str(content, "name", NULL);
    const char *server = cli_str(ev, "server_name", NULL);
    if (!*server && !*name)
        return user;
    snprintf(buf, sizeof buf, "%s%s%s%s", *name ? name : user, *server ? " (" : "", server,
             *server ? ")" : "");
    return buf;
}

/* A room.update says what it set (`changed`): a new topic does not read as a rename. Events
 * from before `changed` existed carry both fields and are shown as such. */
static void print_room_update(const char *prefix, long long pos, const char *t, const char *by,
                              const cJSON *content)
{
    const cJSON *changed = cJSON_GetObjectItemCaseSensitive(content, "changed"), *f;
    const char *name = cli_str(content, "name", NULL), *topic = cli_str(content, "topic", NULL);
    if (!cJSON_IsArray(changed)) {
        printf("%s#%lld %s * %s updated the room \"%s\" (topic: %s)\n", prefix, pos, t, by, name,
               topic);
        return;
    }
    bool set_name = false, set_topic = false;
    cJSON_ArrayForEach(f, changed)
    {
        set_name |= cJSON_IsString(f) && strcmp(f->valuestring, "name") == 0;
        set_topic |= cJSON_IsString(f) && strcmp(f->valuestring, "topic") == 0;
    }
    printf("%s#%lld %s * %s", prefix, pos, t, by);
    if (set_name)
        printf(" renamed the room to \"%s\"%s", name, set_topic ? " and" : "");
    if (set_topic && *topic)
        printf(" set the topic: %s", topic);
    else if (set_topic)
        printf(" cleared the topic");
    printf("\n");
}

/* A member's device was added, approved, taken off its owner's signed list, or removed (issue
 * 14): who can read the photos sent from now on changes with it. The server writes these lines;
 * what encryption trusts is decided on this device (trust.c), which also says when a device
 * appears that no line announced. */
static void print_device_event(const char *prefix, long long pos, const char *t, const cJSON *ev,
                               const cJSON *content)
{
    const char *user = cli_str(content, "user", NULL), *change = cli_str(content, "change", NULL);
    const char *dev = cli_str(content, "device", NULL), *by = cli_str(content, "by", NULL);
    const char *server = cli_str(ev, "server", NULL);
    char remote[CLI_QUALIFIED_MAX];
    if (*server && !strchr(user, '@')) { /* another server's user, as this server names them */
        snprintf(remote, sizeof remote, "%.64s@%.100s", user, server);
        user = remote;
    }
    if (strcmp(change, "present") == 0)
        return; /* a record for the room's other servers as its owner joined: no change */
    char label[256];
    size_t i = 0;
    for (const char *p = cli_str(content, "label", NULL); *p && i + 1 < sizeof label; p++)
        label[i++] = (unsigned char)*p < 0x20 || *p == 0x7f ? ' ' : *p;
    label[i] = '\0';
    printf("%s#%lld %s * ", prefix, pos, t);
    if (strcmp(change, "added") == 0)
        printf("%s added a device \"%s\" (%s): it gets photo keys once %s approves it\n", user,
               label, dev, user);
    else if (strcmp(change, "approved") == 0 && strcmp(by, dev) == 0)
        printf("%s's device \"%s\" (%s) starts %s's signed device list\n", user, label, dev, user);
    else if (strcmp(change, "approved") == 0)
        printf("%s approved the device \"%s\" (%s) from the device %s\n", user, label, dev, by);
    else if (strcmp(change, "unlisted") == 0)
        printf("%s took the device \"%s\" (%s) off the signed device list: no more photo keys\n",
               user, label, dev);
    else if (strcmp(change, "removed") == 0 && strcmp(cli_str(ev, "sender", NULL), user) != 0)
        printf("%s's device \"%s\" (%s) was revoked by %s: no more photo keys\n", user, label, dev,
               who(ev));
    else if (strcmp(change, "removed") == 0)
        printf("%s's device \"%s\" (%s) was removed (logged out or revoked): no more photo keys\n",
               user, label, dev);
    else
        printf("%s's device \"%s\" (%s): %s\n", user, label, dev, change);
}

/* One line per event, as history and tail show them. */
static void print_event(const cJSON *ev, const char *label)
{
    const char *type = cli_str(ev, "event", NULL);
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(ev, "content");
    char t[16];
    hhmm(cli_num(ev, "ts"), t);
    /* A notice's events come from its own room, which room.list does not name: its raw id
     * would be the label. Each line says which notice instead. */
    if (label && *label && strncmp(type, "notice.", 7) == 0)
        label = "お知らせ";
    char prefix[320] = "";
    if (label && *label)
        snprintf(prefix, sizeof prefix, "[%s] ", label);
    long long pos = cli_num(ev, "pos");
    if (strcmp(type, "msg") == 0) {
        if (flag(ev, "deleted") && flag(ev, "deleted_by_admin")) {
            printf("%s#%lld %s %s: (removed by a room admin, %s)\n", prefix, pos, t, who(ev),
                   cli_str(ev, "deleted_by", NULL));
            return;
        }
        if (flag(ev, "deleted")) {
            printf("%s#%lld %s %s: (deleted)\n", prefix, pos, t, who(ev));
            return;
        }
        long long n = cli_num(ev, "read_count");
        printf("%s#%lld %s %s: %s%s", prefix, pos, t, who(ev), cli_str(content, "body", NULL),
               flag(ev, "edited") ? " (edited)" : "");
        const cJSON *groups = cJSON_GetObjectItemCaseSensitive(ev, "read_by_server");
        if (groups) /* a shared room: by municipality, beside every message */
            tl_print_groups(groups);
        else if (n > 0 && tl_is_mine(ev)) /* as LINE: 既読 beside one's own messages */
            printf("  既読 %lld", n);
        printf("\n");
    } else if (strcmp(type, "msg.edit") == 0) {
        printf("%s#%lld %s %s edited #%lld: %s\n", prefix, pos, t, who(ev),
               cli_num(ev, "target_pos"), cli_str(content, "body", NULL));
    } else if (strcmp(type, "msg.delete") == 0 && flag(content, "by_admin")) {
        printf("%s#%lld %s * %s (room admin) removed message #%lld\n", prefix, pos, t, who(ev),
               cli_num(ev, "target_pos"));
    } else if (strcmp(type, "msg.delete") == 0) {
        printf("%s#%lld %s %s deleted #%lld\n", prefix, pos, t, who(ev), cli_num(ev, "target_pos"));
    } else if (strcmp(type, "room.archive") == 0) {
        printf("%s#%lld %s * %s %s\n", prefix, pos, t, who(ev),
               flag(content, "archived") ? "archived the room: it is read-only now"
                                         : "unarchived the room");
    } else if (strcmp(type, "member") == 0) {
        const char *m = cli_str(content, "membership", NULL);
        const char *user = member_of(ev, content);
        if (strcmp(m, "join") == 0)
            printf("%s#%lld %s * %s joined\n", prefix, pos, t, user);
        else if (strcmp(m, "leave") == 0)
            printf("%s#%lld %s * %s left\n", prefix, pos, t, user);
        else
            printf("%s#%lld %s * %s was removed by %s\n", prefix, pos, t, user, who(ev));
    } else if (strcmp(type, "member.role") == 0) {
        printf("%s#%lld %s * %s is now %s\n", prefix, pos, t, cli_str(content, "user", NULL),
               cli_str(content, "role", NULL));
    } else if (strcmp(type, "room.create") == 0 &&
               strcmp(cli_str(content, "kind", NULL), "direct") == 0) {
        printf("%s#%lld %s * %s started this one-to-one room\n", prefix, pos, t, who(ev));
    } else if (strcmp(type, "room.create") == 0) {
        printf("%s#%lld %s * %s created the room \"%s\"\n", prefix, pos, t, who(ev),
               cli_str(content, "name", NULL));
    } else if (strcmp(type, "room.update") == 0) {
        print_room_update(prefix, pos, t, who(ev), content);
    } else if (strcmp(type, "hotline.seat") == 0) {
        /* A municipality's seat and who holds it now (a shift change). */
        const char *holder = cli_str(content, "name", NULL),
                   *muni = cli_str(ev, "server_name", NULL);
        if (!*holder)
            holder = cli_str(content, "user", NULL);
        printf("%s#%lld %s * %s%s%s%s: %s%s\n", prefix, pos, t, cli_str(content, "seat", NULL),
               *muni ? " (" : "", muni, *muni ? ")" : "", *holder ? holder : "vacant",
               flag(content, "on_duty") ? ", on duty" : "");
    } else if (strcmp(type, "hotline.role") == 0) {
        printf("%s#%lld %s * %s is now %s in this hotline\n", prefix, pos, t,
               cli_str(content, "server", NULL), cli_str(content, "role", NULL));
    } else if (strcmp(type, "room.server") == 0) {
        printf("%s#%lld %s * server %s %s\n", prefix, pos, t, cli_str(content, "server", NULL),
               flag(content, "admitted") ? "joined the room" : "was removed from the room");
    } else if (strcmp(type, "room.authority") == 0) {
        printf("%s#%lld %s * %s handed the room's authority to %s\n", prefix, pos, t, who(ev),
               cli_str(content, "server", NULL));
    } else if (strcmp(type, "notice.post") == 0) {
        printf("%s#%lld %s %s%s (%s): kizuna notice show %lld\n", prefix, pos, t,
               strcmp(cli_str(content, "priority", NULL), "urgent") == 0 ? "【緊急のお知らせ】"
                                                                         : "【お知らせ】",
               cli_str(content, "title", NULL), who(ev), cli_num(content, "notice"));
    } else if (strcmp(type, "notice.edit") == 0) {
        printf("%s#%lld %s notice #%lld revised: %s\n", prefix, pos, t, cli_num(content, "notice"),
               cli_str(content, "title", NULL));
    } else if (strcmp(type, "notice.withdraw") == 0) {
        printf("%s#%lld %s notice #%lld was withdrawn\n", prefix, pos, t,
               cli_num(content, "notice"));
    } else if (strcmp(type, "device") == 0) {
        print_device_event(prefix, pos, t, ev, content);
    } else if (strcmp(type, "device.list") == 0) {
        return; /* a list version for other servers: its changes have their device lines */
    } else if (strcmp(type, "e2ee.photo") == 0) {
        tl_print_photo(ev, prefix); /* opened on this device, or why it cannot be */
    } else if (strncmp(type, "e2ee.", 5) == 0) {
        return; /* keys and key requests: the photo commands deal with them */
    } else {
        printf("%s#%lld %s %s\n", prefix, pos, t, type);
    }
}

/* ---- commands ---- */

/* `rooms [--archived]`: the rooms in use, or the archived ones. */
int cmd_rooms(int argc, char **argv)
{
    bool archived = argc == 2 && strcmp(argv[1], "--archived") == 0;
    if (argc == 2 && !archived)
        return cli_usage_error(NULL);
    cJSON *reply, *args = cJSON_CreateObject();
    if (archived)
        cJSON_AddTrueToObject(args, "archived");
    int rc = cli_call_once("room.list", args, &reply);
    if (rc != EXIT_OK || json_out) {
        cJSON_Delete(reply);
        return rc;
    }
    if (archived && cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(reply, "rooms")) == 0)
        printf("no archived rooms\n");
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(reply, "rooms"))
    {
        const char *kind = cli_str(r, "kind", NULL);
        printf("%.8s  %s%s  (%lld members, %lld unread)\n", cli_str(r, "room", NULL),
               strcmp(kind, "direct") == 0 ? "@" : "",
               strcmp(kind, "direct") == 0 ? cli_str(r, "with", NULL) : cli_str(r, "name", NULL),
               cli_num(r, "members"), cli_num(r, "unread"));
        const cJSON *last = cJSON_GetObjectItemCaseSensitive(r, "last");
        if (last)
            printf("          #%lld %s: %s\n", cli_num(last, "pos"), cli_str(last, "sender", NULL),
                   flag(last, "deleted") ? "(deleted)" : cli_str(last, "body", NULL));
    }
    cJSON_Delete(reply);
    return EXIT_OK;
}

int cmd_dm(int argc, char **argv)
{
    (void)argc; /* USER: the command table counts one */
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "user", argv[1]);
    cJSON *reply = NULL;
    struct kzc *c;
    /* Used only if the room is new: its history policy, signed by this device (issue 14). */
    int rc = cli_connect_signing(&c, "shared", args);
    if (rc == EXIT_OK)
        rc = cli_call_and_close(c, "room.direct", args, &reply);
    else
        cJSON_Delete(args);
    if (rc == EXIT_OK && !json_out)
        printf("one-to-one room with %s: @%s (%s)\n", cli_str(reply, "room", "name"),
               cli_str(reply, "room", "with"), cli_str(reply, "room", "room"));
    cJSON_Delete(reply);
    return rc;
}

/* Reads all of standard input (a message piped in). */
static char *read_stdin(void)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, stdin)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *grown = realloc(buf, cap *= 2);
            if (!grown) {
                free(buf);
                return NULL;
            }
            buf = grown;
        }
    }
    if (buf) {
        while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            len--;
        buf[len] = '\0';
    }
    return buf;
}

int cmd_send(int argc, char **argv)
{
    if (cli_arguments_only()) /* before the message is read from stdin */
        return EXIT_OK;
    /* --urgent right after ROOM: a first report (第一報) in a hotline room. */
    bool urgent = argc > 2 && strcmp(argv[2], "--urgent") == 0;
    if (urgent) {
        argv[2] = argv[1];
        argv++;
        argc--;
    }
    char *body;
    if (argc > 2) {
        size_t len = 0;
        for (int i = 2; i < argc; i++)
            len += strlen(argv[i]) + 1;
        body = calloc(1, len + 1);
        for (int i = 2; body && i < argc; i++) {
            if (i > 2)
                strcat(body, " ");
            strcat(body, argv[i]);
        }
    } else {
        body = read_stdin();
    }
    if (!body || !*body) {
        free(body);
        return cli_usage_error("nothing to send");
    }
    /* One client_id for every attempt: a retry after a lost connection can never post twice. */
    unsigned char raw[12];
    char client_id[32];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        free(body);
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(client_id + 2 * i, 3, "%02x", raw[i]);
    int rc = EXIT_UNREACHABLE;
    for (int attempt = 0; attempt < 5; attempt++) {
        if (attempt)
            sleep(1);
        struct kzc *c;
        char room_id[ROOM_ID_MAX];
        rc = cli_room_connect(argv[1], &c, room_id);
        if (rc == EXIT_UNREACHABLE)
            continue;
        if (rc != EXIT_OK)
            break;
        cJSON *args = cJSON_CreateObject();
        cJSON_AddStringToObject(args, "room", room_id);
        cJSON_AddStringToObject(args, "body", body);
        cJSON_AddStringToObject(args, "client_id", client_id);
        if (urgent)
            cJSON_AddTrueToObject(args, "urgent");
        cJSON *reply = kzc_call(c, "msg.send", args, TIMEOUT_MS);
        kzc_close(c);
        if (!reply) {
            rc = EXIT_UNREACHABLE;
            continue;
        }
        rc = cli_check_reply(reply);
        if (rc == EXIT_OK) {
            if (json_out)
                cli_print_json(reply);
            else
                printf("sent #%lld\n", cli_num(reply, "pos"));
        }
        cJSON_Delete(reply);
        break;
    }
    if (rc == EXIT_UNREACHABLE)
        cli_unreachable("gave up after 5 attempts");
    free(body);
    return rc;
}

/* history keeps its connection open while the page is shown (photos are opened on it), then
 * history_done marks what was shown read and closes it. */
static struct {
    struct kzc *c;
    char room_id[ROOM_ID_MAX];
    long long before, after;
} hist = {.after = -1};

/* Like cli_room_call for op history, printing the reply with --json, but the connection stays. */
static int history_call(const char *want, cJSON *args, bool mark, cJSON **reply)
{
    struct session s;
    cJSON *rooms = NULL;
    hist.before = cli_num(args, "before");
    hist.after = cJSON_GetObjectItemCaseSensitive(args, "after") ? cli_num(args, "after") : -1;
    int rc = cli_connect_authed(&hist.c, &s);
    if (rc == EXIT_OK && (rc = resolve_room(hist.c, want, hist.room_id, NULL, 0)) == EXIT_OK &&
        (rc = cli_call(hist.c, "room.list", NULL, &rooms)) == EXIT_OK) {
        tl_begin(hist.c, &s, mark);
        tl_set_rooms(rooms);
        cJSON_AddStringToObject(args, "room", hist.room_id);
        rc = cli_call(hist.c, "history", args, reply);
        args = NULL; /* consumed */
        if (rc == EXIT_OK && json_out)
            cli_print_json(*reply);
    }
    cJSON_Delete(rooms);
    cJSON_Delete(args);
    if (rc != EXIT_OK && hist.c) {
        tl_end();
        kzc_close(hist.c);
        hist.c = NULL;
    }
    return rc;
}

/* The page was shown: it is read if nothing unread lies unshown before it (else say where
 * the unread begin); this user's photos still uploading follow the newest page. */
static void history_done(const cJSON *reply, bool mark)
{
    if (!hist.c)
        return;
    const cJSON *events = cJSON_GetObjectItemCaseSensitive(reply, "events"), *ev;
    cJSON_ArrayForEach(ev, events) tl_shown(ev);
    long long missing = -1;
    bool contiguous = cJSON_GetArraySize(events) > 0 &&
                      tl_page_contiguous(hist.room_id, events, flag(reply, "more"), hist.before,
                                         hist.after, &missing);
    tl_room_start(hist.room_id, -1, contiguous);
    if (mark && !contiguous && cJSON_GetArraySize(events) > 0 && !json_out)
        tl_unread_hint(hist.room_id, missing);
    if (!json_out && !hist.before && (hist.after < 0 || !flag(reply, "more")))
        tl_pending_uploads(hist.room_id, NULL);
    tl_end(); /* marks */
    kzc_close(hist.c);
    hist.c = NULL;
}

int cmd_history(int argc, char **argv)
{
    cJSON *args = cJSON_CreateObject();
    bool forward = false; /* --after: the next page is newer, not older */
    bool mark = true;     /* --no-read: scripts and shared screens leave the marker alone */
    for (int i = 2; i < argc; i += 2) { /* option, value */
        long long v;
        if (strcmp(argv[i], "--no-read") == 0) {
            mark = false;
            i--;
            continue;
        }
        if (i + 1 >= argc || !parse_pos(argv[i + 1], &v) ||
            (strcmp(argv[i], "--before") && strcmp(argv[i], "--after") &&
             strcmp(argv[i], "--limit"))) {
            cJSON_Delete(args);
            return cli_usage_error(NULL);
        }
        forward |= strcmp(argv[i], "--after") == 0;
        cJSON_AddNumberToObject(args, argv[i] + 2, (double)v);
    }
    cJSON *reply = NULL;
    int rc = history_call(argv[1], args, mark, &reply);
    if (rc == EXIT_OK && !json_out) {
        const cJSON *ev;
        cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(reply, "events"))
            print_event(ev, NULL);
        const cJSON *evs = cJSON_GetObjectItemCaseSensitive(reply, "events");
        if (flag(reply, "more"))
            printf(
                "(more: --%s %lld)\n", forward ? "after" : "before",
                cli_num(cJSON_GetArrayItem(evs, forward ? cJSON_GetArraySize(evs) - 1 : 0), "pos"));
    }
    history_done(reply, mark);
    cJSON_Delete(reply);
    return rc;
}

int cmd_read(int argc, char **argv)
{
    cJSON *args = cJSON_CreateObject();
    long long pos;
    if (argc == 3) {
        if (!parse_pos(argv[2], &pos)) {
            cJSON_Delete(args);
            return cli_usage_error(POS_ERROR);
        }
        cJSON_AddNumberToObject(args, "pos", (double)pos);
    }
    cJSON *reply = NULL;
    int rc = cli_room_call(argv[1], "read", args, &reply);
    if (rc == EXIT_OK && !json_out)
        printf("read up to #%lld\n", cli_num(reply, "read_pos"));
    cJSON_Delete(reply);
    return rc;
}

/* A shared room's readers by municipality: each server's line (its name as pinned here, else
 * its id; read of its members), then who of it read (when) and who has not. */
static void readers_by_server(const cJSON *reply)
{
    const cJSON *g, *r;
    long long read = 0, members = 0;
    cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(reply, "by_server"))
    {
        read += cli_num(g, "read");
        members += cli_num(g, "members");
    }
    printf("read (既読 %lld/%lld), by municipality:\n", read, members);
    cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(reply, "by_server"))
    {
        const char *server = cli_str(g, "server", NULL), *name = cli_str(g, "name", NULL);
        if (*name)
            printf("%s (%s) %lld/%lld\n", name, server, cli_num(g, "read"), cli_num(g, "members"));
        else
            printf("%s %lld/%lld\n", server, cli_num(g, "read"), cli_num(g, "members"));
        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(reply, "read"))
        {
            if (strcmp(cli_str(r, "server", NULL), server) != 0)
                continue;
            char t[16] = "     "; /* when, if known here (a remote reader's is not) */
            if (cli_num(r, "at") > 0)
                hhmm(cli_num(r, "at"), t);
            printf("  read      %-32s %s  %s\n", cli_str(r, "login", NULL), t,
                   cli_str(r, "name", NULL));
        }
        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(reply, "unread"))
        {
            if (strcmp(cli_str(r, "server", NULL), server) == 0)
                printf("  not read  %-32s        %s\n", cli_str(r, "login", NULL),
                       cli_str(r, "name", NULL));
        }
    }
}

int cmd_readers(int argc, char **argv)
{
    long long pos;
    (void)argc; /* ROOM POS: the command table counts two */
    if (!parse_pos(argv[2], &pos))
        return cli_usage_error(POS_ERROR);
    cJSON *args = cJSON_CreateObject();
    cJSON_AddNumberToObject(args, "pos", (double)pos);
    cJSON *reply = NULL;
    int rc = cli_room_call(argv[1], "readers", args, &reply);
    if (rc == EXIT_OK && !json_out && cJSON_GetObjectItemCaseSensitive(reply, "by_server")) {
        readers_by_server(reply);
    } else if (rc == EXIT_OK && !json_out) {
        const cJSON *r;
        printf("read (既読 %d):\n",
               cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(reply, "read")));
        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(reply, "read"))
        {
            char t[16];
            hhmm(cli_num(r, "at"), t);
            printf("  %-20s %s  %s\n", cli_str(r, "login", NULL), t, cli_str(r, "name", NULL));
        }
        printf("not read (%d):\n",
               cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(reply, "unread")));
        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(reply, "unread"))
            printf("  %-20s        %s\n", cli_str(r, "login", NULL), cli_str(r, "name", NULL));
    }
    cJSON_Delete(reply);
    return rc;
}

/* `search WORD... [--room ROOM] [--before POS] [--limit N]`: every word must be in a result
 * (冠水 通行止め); messages of one's rooms and the notices one received. */
int cmd_search(int argc, char **argv)
{
    const char *room = NULL;
    char query[1024] = "";
    bool paged = false; /* --before: a later page */
    cJSON *args = cJSON_CreateObject();
    for (int i = 1; i < argc; i++) {
        long long v;
        if (strcmp(argv[i], "--room") == 0 && i + 1 < argc) {
            room = argv[++i];
        } else if ((strcmp(argv[i], "--before") == 0 || strcmp(argv[i], "--limit") == 0) &&
                   i + 1 < argc && parse_pos(argv[i + 1], &v)) {
            cJSON_AddNumberToObject(args, argv[i] + 2, (double)v);
            paged |= argv[i][2] == 'b';
            i++;
        } else if (strncmp(argv[i], "--", 2) == 0 ||
                   strlen(query) + strlen(argv[i]) + 2 > sizeof query) {
            cJSON_Delete(args);
            return cli_usage_error(strncmp(argv[i], "--", 2) == 0 ? NULL
                                                                  : "the words are too long");
        } else {
            /* Words given separately search as words; one quoted argument may hold several. */
            if (*query)
                strcat(query, " ");
            strcat(query, argv[i]);
        }
    }
    if (!*query) {
        cJSON_Delete(args);
        return cli_usage_error("search needs a WORD");
    }
    cJSON_AddStringToObject(args, "query", query);
    cJSON *reply = NULL;
    int rc =
        room ? cli_room_call(room, "search", args, &reply) : cli_call_once("search", args, &reply);
    if (rc == EXIT_OK && !json_out) {
        const cJSON *r, *results = cJSON_GetObjectItemCaseSensitive(reply, "results");
        cJSON_ArrayForEach(r, results)
        {
            char t[16];
            hhmm(cli_num(r, "ts"), t);
            if (strcmp(cli_str(r, "kind", NULL), "notice") == 0)
                printf("お知らせ %lld %s %s: %s%s (kizuna notice show %lld)\n",
                       cli_num(r, "notice"), t, cli_str(r, "sender_name", NULL),
                       cli_str(r, "title", NULL), flag(r, "withdrawn") ? " (withdrawn)" : "",
                       cli_num(r, "notice"));
            else
                printf("%.8s #%lld %s %s: %s\n", cli_str(r, "room", NULL), cli_num(r, "pos"), t,
                       cli_str(r, "sender_name", NULL), cli_str(r, "body", NULL));
        }
        if (cJSON_GetArraySize(results) == 0)
            printf("no messages or notices contain %s%s%s\n",
                   strpbrk(query, " \t") || strstr(query, "\u3000") ? "all of: " : "", query,
                   paged ? " (before that position)" : "");
        if (cJSON_GetObjectItemCaseSensitive(reply, "next_before"))
            printf("(more: --before %lld)\n", cli_num(reply, "next_before"));
    }
    cJSON_Delete(reply);
    return rc;
}

/* `edit ROOM POS TEXT` and `delete ROOM POS` (the command table counts the arguments). */
static int cmd_edit_delete(char **argv, bool is_delete)
{
    long long pos;
    if (!parse_pos(argv[2], &pos))
        return cli_usage_error(POS_ERROR);
    cJSON *args = cJSON_CreateObject();
    cJSON_AddNumberToObject(args, "pos", (double)pos);
    if (!is_delete)
        cJSON_AddStringToObject(args, "body", argv[3]);
    int rc = cli_room_call(argv[1], is_delete ? "msg.delete" : "msg.edit", args, NULL);
    if (rc == EXIT_OK && !json_out)
        printf("%s #%lld\n", is_delete ? "deleted" : "edited", pos);
    return rc;
}

/* ---- tail: live, reconnecting, resuming ---- */

/* What tail shows is read (timeline.c marks it, unless --no-read), and the 既読 of one's own
 * messages it showed changes in one compact line per room. */
#define TAIL_UNREAD_MAX 200 /* more unread than the context, up to this: shown from the first */

struct tail_state {
    char room_id[ROOM_ID_MAX]; /* "" = every room */
    int context;               /* recent events of the room to show first, like tail -n */
    long long last;            /* the last position shown; -1 before the first sync */
    bool mark;                 /* mark what is shown read (not with --no-read) */
    cJSON *rooms;              /* room.list, for labels */
};

static const char *label_of(struct tail_state *ts, const char *room_id)
{
    if (ts->room_id[0])
        return NULL; /* one room: no label needed */
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(
                              ts->rooms, "rooms")) if (strcmp(cli_str(r, "room", NULL), room_id) ==
                                                       0) return cli_str(r, "name", NULL);
    return room_id;
}

static void tail_show(struct tail_state *ts, const cJSON *ev)
{
    const char *room = cli_str(ev, "room", NULL);
    const char *type = cli_str(ev, "event", NULL);
    if (strcmp(type, "hotline.alert") == 0) {
        /* A first report reaches an on-duty seat whichever room is being followed. */
        const char *seat = cli_str(ev, "seat", NULL), *from = cli_str(ev, "server_name", NULL);
        if (json_out)
            cli_print_json(ev);
        else
            printf("!! 第一報 %s: %s%s%s%s%s%s%s: %s\n", cli_str(ev, "room_name", NULL),
                   cli_str(ev, "sender_name", NULL), *seat ? " [" : "", seat, *seat ? "]" : "",
                   *from ? " (" : "", from, *from ? ")" : "", cli_str(ev, "body", NULL));
        fflush(stdout);
        return;
    }
    if (ts->room_id[0] && strcmp(room, ts->room_id) != 0)
        return;
    if (strcmp(type, "notice.alert") == 0 || strcmp(type, "notice.remind") == 0) {
        if (json_out)
            cli_print_json(ev);
        else
            printf("!! %s: %s (kizuna notice show %lld)\n",
                   type[7] == 'a' ? "緊急のお知らせ" : "リマインド", cli_str(ev, "title", NULL),
                   cli_num(ev, "notice"));
        fflush(stdout);
        return;
    }
    if (strcmp(type, "read") == 0) {
        tl_counts(ev); /* printed once things settle (tl_tick) */
        if (json_out)
            cli_print_json(ev);
        fflush(stdout);
        return;
    }
    long long pos = cli_num(ev, "pos");
    if (pos && pos <= ts->last)
        return; /* already shown: never print an event twice */
    if (pos)
        ts->last = pos;
    tl_counts_flush(); /* 既読 lines pending from before this event come first */
    tl_follow(ev);     /* keys taken, other devices' key requests answered */
    if (json_out)
        cli_print_json(ev);
    else
        print_event(ev, label_of(ts, room));
    tl_shown(ev);
    fflush(stdout);
}

/* The first page of a one-room tail (consumed): shown from the first unread event when more
 * are unread than the context and they fit TAIL_UNREAD_MAX, as LINE opens a room; otherwise
 * where the unread ones begin is said, and the room is not marked read. */
static int tail_first_page(struct kzc *c, struct tail_state *ts, cJSON *reply)
{
    const cJSON *events = cJSON_GetObjectItemCaseSensitive(reply, "events"), *ev;
    long long missing = -1;
    bool contiguous = ts->context > 0 &&
                      tl_page_contiguous(ts->room_id, events, flag(reply, "more"), 0, -1, &missing);
    if (!contiguous && ts->context > 0 && missing > 0 && missing <= TAIL_UNREAD_MAX) {
        cJSON *args = cJSON_CreateObject(), *unread;
        cJSON_AddStringToObject(args, "room", ts->room_id);
        cJSON_AddNumberToObject(args, "after", (double)tl_marker(ts->room_id));
        cJSON_AddNumberToObject(args, "limit", TAIL_UNREAD_MAX);
        int rc = cli_call(c, "history", args, &unread);
        if (rc != EXIT_OK) {
            cJSON_Delete(reply);
            return rc;
        }
        if (!flag(unread, "more") && cJSON_GetArraySize(cJSON_GetObjectItem(unread, "events"))) {
            cJSON_Delete(reply);
            reply = unread;
            events = cJSON_GetObjectItemCaseSensitive(reply, "events");
            contiguous = true;
        } else {
            cJSON_Delete(unread);
        }
    }
    ts->last = 0;
    cJSON_ArrayForEach(ev, events)
    {
        if (ts->context > 0)
            tail_show(ts, ev);
        else if (cli_num(ev, "pos") > ts->last)
            ts->last = cli_num(ev, "pos");
    }
    long long first = cli_num(cJSON_GetArrayItem(events, 0), "pos");
    tl_room_start(ts->room_id, ts->context > 0 && first ? first - 1 : ts->last, contiguous);
    if (!contiguous && ts->mark && ts->context > 0 && first && !json_out)
        tl_unread_hint(ts->room_id, missing);
    if (!json_out)
        tl_pending_uploads(ts->room_id, NULL);
    cJSON_Delete(reply);
    return EXIT_OK;
}

/* One connection's life: catch up from ts->last, then follow live until it drops. Returns
 * EXIT_OK when the connection was lost (the caller reconnects), or an exit code to stop. */
static int tail_once(struct tail_state *ts, const char *want)
{
    struct kzc *c;
    struct session s;
    int rc = cli_connect_authed(&c, &s);
    if (rc != EXIT_OK)
        return rc == EXIT_UNREACHABLE ? EXIT_OK : rc;
    bool first = ts->last < 0;
    tl_begin(c, &s, ts->mark);
    cJSON_Delete(ts->rooms);
    ts->rooms = NULL;
    if ((rc = cli_call(c, "room.list", NULL, &ts->rooms)) != EXIT_OK)
        goto out;
    tl_set_rooms(ts->rooms);
    if (want && !ts->room_id[0] && (rc = resolve_room(c, want, ts->room_id, NULL, 0)) != EXIT_OK)
        goto out;
    if (ts->room_id[0] && ts->last < 0) {
        /* First connection: show the room's latest events, then follow from the newest one
         * shown, so nothing sent meanwhile falls between the two. */
        cJSON *args = cJSON_CreateObject(), *reply;
        cJSON_AddStringToObject(args, "room", ts->room_id);
        cJSON_AddNumberToObject(args, "limit", ts->context > 0 ? ts->context : 1);
        if ((rc = cli_call(c, "history", args, &reply)) != EXIT_OK ||
            (rc = tail_first_page(c, ts, reply)) != EXIT_OK)
            goto out;
    }
    for (bool live = false; !live;) {
        cJSON *args = cJSON_CreateObject();
        if (ts->last >= 0)
            cJSON_AddNumberToObject(args, "since", (double)ts->last);
        cJSON *reply;
        if ((rc = cli_call(c, "sync", args, &reply)) != EXIT_OK)
            goto out;
        const cJSON *ev;
        cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(reply, "events")) tail_show(ts, ev);
        if (ts->last < cli_num(reply, "next"))
            ts->last = cli_num(reply, "next");
        live = flag(reply, "live");
        cJSON_Delete(reply);
    }
    if (first && !ts->room_id[0])
        tl_tail_all(ts->last);
    tl_tick(true); /* what the catch-up showed is read now */
    while (!kzc_closed(c, NULL, NULL, 0)) {
        cJSON *ev = kzc_next_event(c, tl_wait_ms());
        if (!ev) {
            tl_tick(true);
            continue;
        }
        const char *type = cli_str(ev, "event", NULL);
        if (strcmp(type, "member") == 0 || strcmp(type, "room.create") == 0 ||
            strcmp(type, "room.update") == 0 || strcmp(type, "room.archive") == 0) {
            cJSON *fresh; /* a new or renamed room: refresh the labels */
            cJSON *r = kzc_call(c, "room.list", NULL, TIMEOUT_MS);
            if (r && cli_check_reply(r) == EXIT_OK) {
                fresh = r;
                cJSON_Delete(ts->rooms);
                ts->rooms = fresh;
                tl_set_rooms(ts->rooms);
            } else {
                cJSON_Delete(r);
            }
        }
        tail_show(ts, ev);
        cJSON_Delete(ev);
        tl_tick(false);
    }
    rc = cli_session_ended(c); /* revoked, disabled, expired...: say so and stop */
out:
    tl_detach(); /* marks still pending go on the next connection */
    kzc_close(c);
    return rc == EXIT_UNREACHABLE ? EXIT_OK : rc;
}

int cmd_tail(int argc, char **argv)
{
    struct tail_state ts = {.last = -1, .context = 10, .mark = true};
    const char *room = NULL;
    for (int i = 1; i < argc; i++) {
        long long n;
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc && parse_pos(argv[i + 1], &n) && n <= 1000)
            ts.context = (int)n, i++;
        else if (strcmp(argv[i], "--no-read") == 0)
            ts.mark = false;
        else if (!room)
            room = argv[i];
        else
            return cli_usage_error(strcmp(argv[i], "-n") == 0 ? "-n: a number from 0 to 1000"
                                                              : NULL);
    }
    int backoff_ms = 250;
    quiet_unreachable = true;
    for (;;) {
        long long before = ts.last;
        int rc = tail_once(&ts, room);
        if (rc != EXIT_OK) {
            tl_end();
            cJSON_Delete(ts.rooms);
            return rc;
        }
        if (ts.last != before)
            backoff_ms = 250;
        fprintf(stderr, "kizuna: connection lost; reconnecting in %d ms\n", backoff_ms);
        struct timespec d = {backoff_ms / 1000, (backoff_ms % 1000) * 1000000L};
        nanosleep(&d, NULL);
        if (backoff_ms < 5000)
            backoff_ms *= 2;
    }
}

/* `edit ROOM POS TEXT` and `delete ROOM POS`: the command table's entries (main.c). */
int cmd_msg_edit(int argc, char **argv)
{
    (void)argc;
    return cmd_edit_delete(argv, false);
}

int cmd_msg_delete(int argc, char **argv)
{
    (void)argc;
    return cmd_edit_delete(argv, true);
}
