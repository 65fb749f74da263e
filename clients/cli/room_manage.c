/* room_manage.c - the kizuna commands that manage a room: room create, invite, remove, leave,
 * members, rename, topic, admin, archive, unarchive, export and servers, each an entry of the
 * command table in main.c (argv[0] is the subcommand; the table has counted the arguments). What is
 * said in a room, and finding a room by name, is talk.c; the E2EE view of a room is room.c. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* "a,b,c" -> ["a","b","c"] */
static cJSON *split_logins(const char *list)
{
    cJSON *arr = cJSON_CreateArray();
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save, *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
        cJSON_AddItemToArray(arr, cJSON_CreateString(tok));
    return arr;
}

/* room.create. The server refuses a second room of the caller's with the same name (conflict)
 * unless it is confirmed: on a terminal the question is asked; elsewhere --yes confirms. */
static int create_room(cJSON *args, bool yes, cJSON **reply_out)
{
    struct kzc *c;
    if (yes)
        cJSON_AddTrueToObject(args, "confirm");
    /* The history policy goes into the room's creation signed by this device, so that no one,
     * the server included, can change it later (issue 14, item 6). */
    const char *history = cli_str(args, "history", NULL);
    int rc = cli_connect_signing(&c, *history ? history : "shared", args);
    if (rc != EXIT_OK) {
        cJSON_Delete(args);
        return rc;
    }
    cJSON *confirmed = cJSON_Duplicate(args, true);
    cJSON *reply = kzc_call(c, "room.create", args, TIMEOUT_MS);
    if (reply && !yes && strcmp(cli_str(reply, "error", "code"), "conflict") == 0) {
        if (json_out || !isatty(STDIN_FILENO) || !isatty(STDERR_FILENO)) {
            cli_check_reply(reply);
            if (!json_out)
                fprintf(stderr, "kizuna: give another name, or add --yes to create a second room "
                                "with the same name\n");
            cJSON_Delete(reply);
            cJSON_Delete(confirmed);
            kzc_close(c);
            return EXIT_REFUSED;
        }
        fprintf(stderr, "%s\nCreate a second room with the same name? [y/N] ",
                cli_str(reply, "error", "message"));
        char line[16] = "";
        bool go = fgets(line, sizeof line, stdin) && (line[0] == 'y' || line[0] == 'Y');
        cJSON_Delete(reply);
        reply = NULL;
        if (!go) {
            fprintf(stderr, "kizuna: no room created\n");
            cJSON_Delete(confirmed);
            kzc_close(c);
            return EXIT_REFUSED;
        }
        cJSON_AddTrueToObject(confirmed, "confirm");
        rc = cli_call(c, "room.create", confirmed, &reply);
        confirmed = NULL;
    } else if (!reply) {
        rc = cli_unreachable(kzc_error(c));
    } else if ((rc = cli_check_reply(reply)) != EXIT_OK) {
        cJSON_Delete(reply);
        reply = NULL;
    }
    cJSON_Delete(confirmed);
    kzc_close(c);
    if (rc == EXIT_OK && json_out)
        cli_print_json(reply);
    *reply_out = reply;
    return rc;
}

/* `room export ROOM [-o FILE]`: every page of room.export, one CSV (to FILE, mode 0600, or
 * standard output). */
static int export_room(const char *want, const char *path)
{
    struct kzc *c;
    char room_id[ROOM_ID_MAX];
    int rc = cli_room_connect(want, &c, room_id);
    if (rc != EXIT_OK)
        return rc;
    FILE *f = stdout;
    if (path) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        f = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (!f) {
            fprintf(stderr, "kizuna: cannot write %s: %s\n", path, strerror(errno));
            if (fd >= 0)
                close(fd);
            kzc_close(c);
            return EXIT_USAGE;
        }
    }
    long long after = 0, events = 0;
    for (bool more = true; more && rc == EXIT_OK;) {
        cJSON *args = cJSON_CreateObject(), *reply;
        cJSON_AddStringToObject(args, "room", room_id);
        if (after)
            cJSON_AddNumberToObject(args, "after", (double)after);
        if ((rc = cli_call(c, "room.export", args, &reply)) != EXIT_OK)
            break;
        fputs(cli_str(reply, "csv", NULL), f);
        events += cli_num(reply, "events");
        more = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "more"));
        after = cli_num(reply, "next_after");
        cJSON_Delete(reply);
    }
    kzc_close(c);
    if (path && fclose(f) != 0 && rc == EXIT_OK) {
        fprintf(stderr, "kizuna: cannot write %s: %s\n", path, strerror(errno));
        rc = EXIT_USAGE;
    }
    if (rc == EXIT_OK && path)
        fprintf(stderr, "exported %lld events to %s\n", events, path);
    return rc;
}

/* `room create NAME [--members a,b] [--topic TEXT] [--history shared|joined]
 * [--servers ID,ID] [--yes]`: with --servers, a room shared with those peer servers. */
int cmd_room_create(int argc, char **argv)
{
    const char *name = NULL, *members = NULL, *topic = NULL, *history = NULL, *servers = NULL;
    bool yes = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--yes") == 0 || strcmp(argv[i], "-y") == 0)
            yes = true;
        else if (strcmp(argv[i], "--members") == 0 && i + 1 < argc)
            members = argv[++i];
        else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc)
            topic = argv[++i];
        else if (strcmp(argv[i], "--history") == 0 && i + 1 < argc)
            history = argv[++i];
        else if (strcmp(argv[i], "--servers") == 0 && i + 1 < argc)
            servers = argv[++i];
        else if (!name)
            name = argv[i];
        else
            return cli_usage_error(NULL);
    }
    if (!name)
        return cli_usage_error("room create needs a NAME");
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "name", name);
    if (history)
        cJSON_AddStringToObject(args, "history", history);
    if (topic)
        cJSON_AddStringToObject(args, "topic", topic);
    if (members)
        cJSON_AddItemToObject(args, "members", split_logins(members));
    if (servers) /* server ids are split like logins: comma-separated */
        cJSON_AddItemToObject(args, "servers", split_logins(servers));
    cJSON *reply = NULL;
    int rc = create_room(args, yes, &reply);
    if (rc == EXIT_OK && !json_out)
        printf("created room %s (%s)\n", cli_str(reply, "room", "name"),
               cli_str(reply, "room", "room"));
    cJSON_Delete(reply);
    return rc;
}

/* Calls op about ROOM with args (consumed); without --json, says "SUBJECT DONE" (SUBJECT NULL:
 * "DONE"). */
static int room_op(const char *room, const char *op, cJSON *args, const char *subject,
                   const char *done)
{
    int rc = cli_room_call(room, op, args, NULL);
    if (rc == EXIT_OK && !json_out)
        printf("%s%s%s\n", subject ? subject : "", subject ? " " : "", done);
    return rc;
}

/* `room invite ROOM USER`, `room remove ROOM USER` (room admins) */
static int room_user_op(char **argv, const char *op, const char *done)
{
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "user", argv[2]);
    return room_op(argv[1], op, args, argv[2], done);
}

int cmd_room_invite(int argc, char **argv)
{
    (void)argc;
    return room_user_op(argv, "room.invite", "invited");
}

int cmd_room_remove(int argc, char **argv)
{
    (void)argc;
    return room_user_op(argv, "room.remove", "removed");
}

/* `room leave ROOM` */
int cmd_room_leave(int argc, char **argv)
{
    (void)argc;
    return room_op(argv[1], "room.leave", NULL, NULL, "left the room");
}

/* `room watch ROOM [--off]`: photos posted in a group room push the caller (room.watch) */
int cmd_room_watch(int argc, char **argv)
{
    bool off = argc == 3 && strcmp(argv[2], "--off") == 0;
    if (argc == 3 && !off)
        return cli_usage_error(NULL);
    cJSON *args = cJSON_CreateObject();
    cJSON_AddBoolToObject(args, "watch", !off);
    return room_op(argv[1], "room.watch", args, NULL,
                   off ? "no longer watched: its photos push you no more"
                       : "watched: its photos push your subscribed browsers");
}

/* `room members ROOM` */
int cmd_room_members(int argc, char **argv)
{
    (void)argc;
    cJSON *reply = NULL;
    int rc = cli_room_call(argv[1], "room.members", NULL, &reply);
    if (rc == EXIT_OK && !json_out) {
        const cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(reply, "members"))
            printf("%-20s %-6s read to #%-8lld %s\n", cli_str(m, "login", NULL),
                   cli_str(m, "role", NULL), cli_num(m, "read_pos"), cli_str(m, "name", NULL));
    }
    cJSON_Delete(reply);
    return rc;
}

/* `room rename ROOM NAME`, `room topic ROOM TEXT` (room.update says what it set) */
static int room_update(char **argv, const char *field)
{
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, field, argv[2]);
    return room_op(argv[1], "room.update", args, NULL, "updated");
}

int cmd_room_rename(int argc, char **argv)
{
    (void)argc;
    return room_update(argv, "name");
}

int cmd_room_topic(int argc, char **argv)
{
    (void)argc;
    return room_update(argv, "topic");
}

/* `room admin ROOM USER [--revoke]` */
int cmd_room_admin(int argc, char **argv)
{
    bool revoke = argc == 4 && strcmp(argv[3], "--revoke") == 0;
    if (argc == 4 && !revoke)
        return cli_usage_error(NULL);
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "user", argv[2]);
    cJSON_AddBoolToObject(args, "admin", !revoke);
    return room_op(argv[1], "room.admin", args, argv[2],
                   revoke ? "is no longer an admin" : "is now an admin");
}

/* `room add-server ROOM SERVER`, `room remove-server ROOM SERVER`: the authority's room admins
 * admit a peer server to a shared room, or remove one (room.server). */
static int room_server(const char *room, const char *server, bool admitted)
{
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "server", server);
    cJSON_AddBoolToObject(args, "admitted", admitted);
    return room_op(room, "room.server", args, server,
                   admitted ? "is now a server of the room: it receives the whole room"
                            : "is no longer a server of the room: it gets nothing written from "
                              "now on, and its users can no longer write there");
}

int cmd_room_add_server(int argc, char **argv)
{
    (void)argc;
    return room_server(argv[1], argv[2], true);
}

int cmd_room_remove_server(int argc, char **argv)
{
    (void)argc;
    return room_server(argv[1], argv[2], false);
}

/* `room archive ROOM`, `room unarchive ROOM` (room admins) */
static int room_archive(const char *room, bool archived)
{
    cJSON *args = cJSON_CreateObject();
    cJSON_AddBoolToObject(args, "archived", archived);
    return room_op(room, "room.archive", args, NULL,
                   archived ? "archived: read-only, and listed by kizuna rooms --archived"
                            : "unarchived");
}

int cmd_room_archive(int argc, char **argv)
{
    (void)argc;
    return room_archive(argv[1], true);
}

int cmd_room_unarchive(int argc, char **argv)
{
    (void)argc;
    return room_archive(argv[1], false);
}

/* `room export ROOM [-o FILE.csv]` */
int cmd_room_export(int argc, char **argv)
{
    if (argc == 3 || (argc == 4 && strcmp(argv[2], "-o") != 0))
        return cli_usage_error(argc == 3 && strcmp(argv[2], "-o") == 0 ? "-o needs a FILE.csv"
                                                                       : NULL);
    return export_room(argv[1], argc == 4 ? argv[3] : NULL);
}

/* `room servers ROOM [--pos N]`: the servers a room lives on (room.servers); with --pos, which
 * of them have acknowledged that message to this server. */
int cmd_room_servers(int argc, char **argv)
{
    long long pos = 0;
    char *end = NULL;
    if (argc == 4 && strcmp(argv[2], "--pos") == 0) {
        const char *v = argv[3][0] == '#' ? argv[3] + 1 : argv[3];
        errno = 0;
        pos = strtoll(v, &end, 10);
        if (errno || end == v || *end || pos < 1)
            return cli_usage_error("--pos N: a message's position in the room (#12: 12)");
    } else if (argc != 2) {
        return cli_usage_error(argc == 3 && strcmp(argv[2], "--pos") == 0 ? "--pos needs N" : NULL);
    }
    cJSON *args = NULL;
    if (pos) {
        args = cJSON_CreateObject();
        cJSON_AddNumberToObject(args, "pos", (double)pos);
    }
    cJSON *reply = NULL;
    int rc = cli_room_call(argv[1], "room.servers", args, &reply);
    if (rc == EXIT_OK && !json_out) {
        const char *authority = cli_str(reply, "authority", NULL);
        const cJSON *s, *servers = cJSON_GetObjectItemCaseSensitive(reply, "servers");
        if (*authority)
            printf("shared room, authority %s; %d servers:\n", authority,
                   cJSON_GetArraySize(servers));
        else
            printf("a room of this server only (not shared)\n");
        const cJSON *acked = cJSON_GetObjectItemCaseSensitive(reply, "acked_by");
        cJSON_ArrayForEach(s, servers)
        {
            const char *id = cli_str(s, "server", NULL), *name = cli_str(s, "name", NULL);
            bool has = false;
            const cJSON *a;
            cJSON_ArrayForEach(a, acked) has |=
                cJSON_IsString(a) && strcmp(a->valuestring, id) == 0;
            /* The name last: its display width is not its length in bytes. */
            printf("  %-32s %s%s%s%s%s%s\n", id,
                   cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "self")) ? "this server"
                                                                             : "peer",
                   cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "admitted")) ? "" : ", removed",
                   !acked ? ""
                   : has  ? ", has it"
                          : ", not acknowledged yet",
                   *name ? "  (" : "", name, *name ? ")" : "");
        }
        if (acked) {
            const cJSON *ev = cJSON_GetObjectItemCaseSensitive(reply, "log");
            printf("#%lld (%s/%lld seq %lld): acknowledged by %d of %d servers\n", pos,
                   cli_str(ev, "origin", NULL), cli_num(ev, "inc"), cli_num(ev, "seq"),
                   cJSON_GetArraySize(acked), cJSON_GetArraySize(servers));
        }
    }
    cJSON_Delete(reply);
    return rc;
}
