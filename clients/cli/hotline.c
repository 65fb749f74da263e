/* hotline.c - counterpart hotline rooms (issue 18; docs/hotline.md): `kizuna hotline create|
 * list|show|admit|remove|role|authority|seat|handover|status`, entries of the command table in
 * main.c (argv[0] is the subcommand; the table has counted the arguments). Which roles exist and
 * their labels (被災市町, 一次支援市, ...) are the server's to decide: roles and labels are printed
 * as its replies give them and checked by it alone (they are named here only in usage messages).
 * Admitting and removing servers is room.server, as for any shared room (room_manage.c); status
 * joins room.servers with peer.list's links and backlogs (peer.c). */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The entry of a room.servers (or hotline.list) reply's `servers` for server id, or NULL. */
static const cJSON *server_entry(const cJSON *reply, const char *id)
{
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(reply, "servers"))
    {
        if (strcmp(cli_str(s, "server", NULL), id) == 0)
            return s;
    }
    return NULL;
}

/* "被災市町 (affected)", or "(no role)" for a server the hotline gives none. */
static void role_text(const cJSON *s, char *out, size_t n)
{
    const char *role = cli_str(s, "role", NULL), *label = cli_str(s, "role_label", NULL);
    if (!*role)
        snprintf(out, n, "(no role)");
    else
        snprintf(out, n, "%s (%s)", *label ? label : role, role);
}

/* One member server of a hotline: id, role and municipality (name as pinned here), then the
 * caller's rest of the line. */
static void print_member(const cJSON *s)
{
    char role[96];
    role_text(s, role, sizeof role);
    const char *name = cli_str(s, "name", NULL);
    printf("  %-28s ", cli_str(s, "server", NULL));
    cli_print_padded(role, 24);
    printf(" ");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "self")))
        cli_print_padded("this server", 14);
    else
        cli_print_padded(*name ? name : "-", 14);
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "admitted")))
        printf(" removed");
}

/* Connects and resolves ROOM as the other room commands do; its name into name (the id for a
 * room the caller is not in). On EXIT_OK the caller closes *c. */
static int hotline_connect(const char *want, struct kzc **c, char room_id[ROOM_ID_MAX], char *name,
                           size_t n)
{
    struct session s;
    int rc = cli_connect_authed(c, &s);
    if (rc != EXIT_OK)
        return rc;
    name[0] = '\0';
    if ((rc = resolve_room(*c, want, room_id, name, n)) != EXIT_OK) {
        kzc_close(*c);
        *c = NULL;
    }
    if (rc == EXIT_OK && !*name)
        snprintf(name, n, "%s", room_id);
    return rc;
}

/* room.servers of room_id on c; refused (exit 1) for a room that is not a hotline. On EXIT_OK
 * *reply is the caller's. */
static int hotline_servers(struct kzc *c, const char *room_id, const char *name, cJSON **reply)
{
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "room", room_id);
    int rc = cli_call(c, "room.servers", args, reply);
    if (rc != EXIT_OK)
        return rc;
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(*reply, "hotline"))) {
        cJSON_Delete(*reply);
        *reply = NULL;
        if (json_out)
            printf("{\"ok\":false,\"error\":{\"code\":\"bad_request\",\"message\":\"not a hotline "
                   "room\"}}\n");
        else
            fprintf(stderr,
                    "kizuna: bad_request: '%s' is not a hotline room (kizuna room servers shows "
                    "a shared room's servers; kizuna hotline list lists the hotlines)\n",
                    name);
        return EXIT_REFUSED;
    }
    return EXIT_OK;
}

/* hotline_connect, then hotline_servers: ROOM resolved and known to be a hotline, its
 * room.servers reply in *servers (the caller's). On EXIT_OK the caller closes *c; otherwise it
 * is closed. */
static int hotline_open(const char *want, struct kzc **c, char room_id[ROOM_ID_MAX], char *name,
                        size_t n, cJSON **servers)
{
    int rc = hotline_connect(want, c, room_id, name, n);
    if (rc == EXIT_OK && (rc = hotline_servers(*c, room_id, name, servers)) != EXIT_OK) {
        kzc_close(*c);
        *c = NULL;
    }
    return rc;
}

/* The seats of a room.servers reply (hotline.seat), one a line, by server. */
static void print_seats(const cJSON *servers)
{
    const cJSON *seat, *seats = cJSON_GetObjectItemCaseSensitive(servers, "seats");
    if (cJSON_GetArraySize(seats) == 0) {
        printf("  no seats yet (each municipality names its own: kizuna hotline seat)\n");
        return;
    }
    printf("  seats:\n");
    cJSON_ArrayForEach(seat, seats)
    {
        const char *holder = cli_str(seat, "holder", NULL),
                   *hname = cli_str(seat, "holder_name", NULL);
        printf("  %-28s ", cli_str(seat, "server", NULL));
        cli_print_padded(cli_str(seat, "seat", NULL), 16);
        if (!*holder)
            printf(" (vacant)");
        else if (*hname)
            printf(" %s (%s)", hname, holder);
        else
            printf(" %s", holder);
        printf("%s\n",
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(seat, "on_duty")) ? ", on duty" : "");
    }
}

/* The servers and roles of a room.servers reply, one a line, under a heading. */
static void print_hotline(const char *name, const char *room_id, const cJSON *servers)
{
    if (strcmp(name, room_id) != 0)
        printf("%s (%s)\n", name, room_id);
    else
        printf("%s\n", room_id);
    printf("  authority %s; %d servers:\n", cli_str(servers, "authority", NULL),
           cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(servers, "servers")));
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(servers, "servers"))
    {
        print_member(s);
        printf("\n");
    }
}

/* `hotline create NAME --member SERVER=ROLE [--member ...] [--topic T]`: hotline.create, then
 * room.servers to show the roles as the server recorded them. */
int cmd_hotline_create(int argc, char **argv)
{
    const char *name = NULL, *topic = NULL;
    cJSON *roles = cJSON_CreateArray();
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--member") == 0 && i + 1 < argc) {
            cJSON_AddItemToArray(roles, cJSON_CreateString(argv[++i]));
        } else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc) {
            topic = argv[++i];
        } else if (!name && argv[i][0] != '-') {
            name = argv[i];
        } else {
            cJSON_Delete(roles);
            return cli_usage_error(strcmp(argv[i], "--member") == 0 ||
                                           strcmp(argv[i], "--topic") == 0
                                       ? "an option needs a value"
                                       : NULL);
        }
    }
    if (!name || cJSON_GetArraySize(roles) == 0) {
        cJSON_Delete(roles);
        return cli_usage_error(!name ? "hotline create needs a NAME"
                                     : "--member SERVER=ROLE is required, once per municipality "
                                       "(ROLE: affected, primary, secondary or hq)");
    }
    struct kzc *c;
    cJSON *args = cJSON_CreateObject(), *reply = NULL, *servers = NULL;
    /* Its history policy, signed by this device: staff who join later (the next shift, a new
     * phone) get the keys of photos sent before (issue 19). */
    int rc = cli_connect_signing(&c, "shared", args);
    if (rc != EXIT_OK) {
        cJSON_Delete(args);
        cJSON_Delete(roles);
        return rc;
    }
    cJSON_AddStringToObject(args, "name", name);
    if (topic)
        cJSON_AddStringToObject(args, "topic", topic);
    cJSON_AddItemToObject(args, "roles", roles);
    if ((rc = cli_call(c, "hotline.create", args, &reply)) != EXIT_OK) {
        kzc_close(c);
        return rc;
    }
    const char *room_id = cli_str(reply, "room", NULL);
    rc = hotline_servers(c, room_id, name, &servers);
    kzc_close(c);
    if (rc == EXIT_OK && json_out) {
        cJSON_AddStringToObject(reply, "authority", cli_str(servers, "authority", NULL));
        cJSON_AddItemToObject(reply, "servers",
                              cJSON_DetachItemFromObjectCaseSensitive(servers, "servers"));
        cli_print_json(reply);
    } else if (rc == EXIT_OK) {
        printf("created hotline ");
        print_hotline(name, room_id, servers);
        printf("Give the room id to each municipality's administrator; they add their own staff:\n"
               "  kizuna room invite %s LOGIN\n",
               room_id);
    }
    cJSON_Delete(servers);
    cJSON_Delete(reply);
    return rc;
}

/* `hotline list [--csv]`: hotline.list, a table of the counterpart groups (--csv: the server's
 * CSV, with its BOM, to standard output). */
int cmd_hotline_list(int argc, char **argv)
{
    bool csv = argc == 2 && strcmp(argv[1], "--csv") == 0;
    if (argc == 2 && !csv)
        return cli_usage_error(NULL);
    cJSON *args = NULL, *reply = NULL;
    if (csv) {
        args = cJSON_CreateObject();
        cJSON_AddTrueToObject(args, "csv");
    }
    int rc = cli_call_once("hotline.list", args, &reply);
    if (rc != EXIT_OK || json_out) {
        cJSON_Delete(reply);
        return rc;
    }
    if (csv) {
        fputs(cli_str(reply, "csv", NULL), stdout);
        cJSON_Delete(reply);
        return EXIT_OK;
    }
    const cJSON *h, *hotlines = cJSON_GetObjectItemCaseSensitive(reply, "hotlines");
    if (cJSON_GetArraySize(hotlines) == 0)
        printf("no hotline rooms on this server (kizuna hotline create)\n");
    else {
        cli_print_padded("HOTLINE", 24);
        printf(" ");
        cli_print_padded("MUNICIPALITY", 14);
        printf(" %-28s ROLE\n", "SERVER");
    }
    cJSON_ArrayForEach(h, hotlines)
    {
        const cJSON *s;
        cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(h, "servers"))
        {
            const char *muni = cli_str(s, "name", NULL);
            char role[96];
            role_text(s, role, sizeof role);
            cli_print_padded(cli_str(h, "name", NULL), 24);
            printf(" ");
            cli_print_padded(*muni ? muni : "-", 14);
            printf(" %-28s %s%s\n", cli_str(s, "server", NULL), role,
                   cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "admitted")) ? ""
                                                                                 : ", removed");
        }
    }
    /* The ids last, one a line: what each municipality's administrator needs for `room
     * invite`, too wide for the table. */
    if (cJSON_GetArraySize(hotlines) > 0)
        printf("%d hotlines (kizuna hotline show ROOM for one):\n", cJSON_GetArraySize(hotlines));
    cJSON_ArrayForEach(h, hotlines)
    {
        printf("  ");
        cli_print_padded(cli_str(h, "name", NULL), 24);
        printf(" %s\n", cli_str(h, "room", NULL));
    }
    cJSON_Delete(reply);
    return EXIT_OK;
}

/* `hotline show ROOM`: room.servers of a hotline: authority, servers, municipalities, roles. */
int cmd_hotline_show(int argc, char **argv)
{
    (void)argc;
    struct kzc *c;
    char room_id[ROOM_ID_MAX], name[256];
    cJSON *reply = NULL;
    int rc = hotline_open(argv[1], &c, room_id, name, sizeof name, &reply);
    if (rc == EXIT_OK)
        kzc_close(c);
    if (rc == EXIT_OK && json_out)
        cli_print_json(reply);
    else if (rc == EXIT_OK) {
        print_hotline(name, room_id, reply);
        print_seats(reply);
    }
    cJSON_Delete(reply);
    return rc;
}

/* hotline.role on c, then the server's label of the role now recorded for server (into label). */
static int set_role(struct kzc *c, const char *room_id, const char *name, const char *server,
                    const char *role, cJSON **reply, char *label, size_t n)
{
    cJSON *args = cJSON_CreateObject(), *servers = NULL;
    cJSON_AddStringToObject(args, "room", room_id);
    cJSON_AddStringToObject(args, "server", server);
    cJSON_AddStringToObject(args, "role", role);
    int rc = cli_call(c, "hotline.role", args, reply);
    if (rc != EXIT_OK)
        return rc;
    snprintf(label, n, "%s", role);
    if (hotline_servers(c, room_id, name, &servers) == EXIT_OK)
        role_text(server_entry(servers, server), label, n);
    cJSON_Delete(servers);
    return EXIT_OK;
}

/* `hotline role ROOM SERVER ROLE` (the authority's room admins) */
int cmd_hotline_role(int argc, char **argv)
{
    (void)argc;
    struct kzc *c;
    char room_id[ROOM_ID_MAX], name[256], label[96];
    int rc = hotline_connect(argv[1], &c, room_id, name, sizeof name);
    if (rc != EXIT_OK)
        return rc;
    cJSON *reply = NULL;
    rc = set_role(c, room_id, name, argv[2], argv[3], &reply, label, sizeof label);
    kzc_close(c);
    if (rc == EXIT_OK && json_out)
        cli_print_json(reply);
    else if (rc == EXIT_OK)
        printf("%s is now %s in %s (#%lld); every member server applies the change\n", argv[2],
               label, name, cli_num(reply, "pos"));
    cJSON_Delete(reply);
    return rc;
}

/* `hotline admit ROOM SERVER --role ROLE`: room.server, then hotline.role, on one connection.
 * The role is checked by the server, after the admission: a role it refuses leaves the server
 * admitted without one, and the line says how to give it. */
int cmd_hotline_admit(int argc, char **argv)
{
    const char *role = NULL;
    if (argc == 5 && strcmp(argv[3], "--role") == 0)
        role = argv[4];
    else
        return cli_usage_error(argc == 4 && strcmp(argv[3], "--role") == 0
                                   ? "--role needs a ROLE (affected, primary, secondary or hq)"
                                   : "hotline admit needs --role ROLE: the municipality's role "
                                     "in the counterpart group");
    struct kzc *c;
    char room_id[ROOM_ID_MAX], name[256], label[96];
    cJSON *servers = NULL, *admit = NULL, *reply = NULL;
    int rc = hotline_open(argv[1], &c, room_id, name, sizeof name, &servers);
    if (rc != EXIT_OK)
        return rc;
    cJSON_Delete(servers);
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "room", room_id);
    cJSON_AddStringToObject(args, "server", argv[2]);
    if ((rc = cli_call(c, "room.server", args, &admit)) != EXIT_OK) {
        kzc_close(c);
        return rc;
    }
    rc = set_role(c, room_id, name, argv[2], role, &reply, label, sizeof label);
    kzc_close(c);
    if (rc != EXIT_OK) {
        if (!json_out)
            fprintf(stderr,
                    "kizuna: %s was admitted to %s without a role: give it one with\n"
                    "  kizuna hotline role %s %s ROLE\n",
                    argv[2], name, room_id, argv[2]);
    } else if (json_out) {
        cJSON_AddStringToObject(reply, "server", argv[2]);
        cJSON_AddStringToObject(reply, "role", role);
        cJSON_AddNumberToObject(reply, "admitted_pos", (double)cli_num(admit, "pos"));
        cli_print_json(reply);
    } else {
        printf("%s is now a server of %s, as %s: it receives the whole room; its administrator "
               "adds its staff (kizuna room invite %s LOGIN)\n",
               argv[2], name, label, room_id);
    }
    cJSON_Delete(admit);
    cJSON_Delete(reply);
    return rc;
}

/* An op of the hotline's authority about one of its servers (room.server removing it,
 * room.authority handing on to it), on hotline ROOM; the reply in *reply (the caller's). */
static int server_op(const char *want, const char *server, const char *op, bool remove, char *name,
                     size_t n, cJSON **reply)
{
    struct kzc *c;
    char room_id[ROOM_ID_MAX];
    cJSON *servers = NULL;
    int rc = hotline_open(want, &c, room_id, name, n, &servers);
    if (rc != EXIT_OK)
        return rc;
    cJSON_Delete(servers);
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "room", room_id);
    cJSON_AddStringToObject(args, "server", server);
    if (remove)
        cJSON_AddFalseToObject(args, "admitted");
    return cli_call_and_close(c, op, args, reply);
}

/* `hotline remove ROOM SERVER`: room.server admitted false; says the cutoff. */
int cmd_hotline_remove(int argc, char **argv)
{
    (void)argc;
    char name[256];
    cJSON *reply = NULL;
    int rc = server_op(argv[1], argv[2], "room.server", true, name, sizeof name, &reply);
    if (rc == EXIT_OK && !json_out) {
        const cJSON *cut = cJSON_GetObjectItemCaseSensitive(reply, "cutoff");
        const cJSON *inc = cJSON_GetArrayItem(cut, 0), *seq = cJSON_GetArrayItem(cut, 1);
        printf("%s is no longer a server of %s (#%lld).\n", argv[2], name, cli_num(reply, "pos"));
        if (cJSON_IsNumber(seq) && seq->valuedouble == 0)
            printf("cutoff: %s had written nothing in the room: every server drops any event of "
                   "it there, also one written while cut off; its users have left the room and "
                   "can no longer write there\n",
                   argv[2]);
        else if (cJSON_IsNumber(inc) && cJSON_IsNumber(seq))
            printf("cutoff: %s's log up to seq %.0f (incarnation %.0f): every server keeps its "
                   "events up to there and drops any later one, also those it wrote while cut "
                   "off; its users have left the room and can no longer write there\n",
                   argv[2], seq->valuedouble, inc->valuedouble);
    }
    cJSON_Delete(reply);
    return rc;
}

/* `hotline authority ROOM SERVER`: the authority hands the hotline to another of its servers
 * (room.authority); from then on only that one admits, removes and assigns roles. */
int cmd_hotline_authority(int argc, char **argv)
{
    (void)argc;
    char name[256];
    cJSON *reply = NULL;
    int rc = server_op(argv[1], argv[2], "room.authority", false, name, sizeof name, &reply);
    if (rc == EXIT_OK && !json_out)
        printf("%s is now the authority of %s (#%lld): from now on it alone admits and removes "
               "municipalities, assigns roles and hands the authority on; this server no longer "
               "can\n",
               argv[2], name, cli_num(reply, "pos"));
    cJSON_Delete(reply);
    return rc;
}

/* hotline.seat on c: this server's seat in the room held by login (NULL: vacated). */
static int seat_call(struct kzc *c, const char *room_id, const char *seat, const char *login,
                     bool on_duty, cJSON **reply)
{
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "room", room_id);
    cJSON_AddStringToObject(args, "seat", seat);
    if (login)
        cJSON_AddStringToObject(args, "user", login);
    cJSON_AddBoolToObject(args, "on_duty", on_duty);
    return cli_call(c, "hotline.seat", args, reply);
}

/* `hotline seat ROOM SEAT LOGIN [--on-duty]`, `hotline seat ROOM SEAT --vacate`: this server's
 * admins and HQ staff name one of its seats and who holds it (hotline.seat). */
int cmd_hotline_seat(int argc, char **argv)
{
    const char *login = NULL;
    bool on_duty = false, vacate = false;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--on-duty") == 0)
            on_duty = true;
        else if (strcmp(argv[i], "--vacate") == 0)
            vacate = true;
        else if (!login && argv[i][0] != '-')
            login = argv[i];
        else
            return cli_usage_error(NULL);
    }
    if (!login == !vacate || (vacate && on_duty))
        return cli_usage_error(vacate ? "--vacate takes neither a LOGIN nor --on-duty"
                                      : "hotline seat needs the LOGIN who holds the seat, or "
                                        "--vacate");
    struct kzc *c;
    char room_id[ROOM_ID_MAX], name[256];
    int rc = hotline_connect(argv[1], &c, room_id, name, sizeof name);
    if (rc != EXIT_OK)
        return rc;
    cJSON *reply = NULL;
    rc = seat_call(c, room_id, argv[2], login, on_duty, &reply);
    kzc_close(c);
    if (rc == EXIT_OK && json_out)
        cli_print_json(reply);
    else if (rc == EXIT_OK && login)
        printf("%s in %s: %s%s (#%lld)\n", argv[2], name, login, on_duty ? ", on duty" : "",
               cli_num(reply, "pos"));
    else if (rc == EXIT_OK)
        printf("%s in %s is vacant (#%lld)\n", argv[2], name, cli_num(reply, "pos"));
    cJSON_Delete(reply);
    return rc;
}

/* `hotline handover ROOM SEAT LOGIN`: the next person takes one of this server's seats (shift
 * change, rotation), which stays on duty or not as it was. */
int cmd_hotline_handover(int argc, char **argv)
{
    (void)argc;
    struct kzc *c;
    char room_id[ROOM_ID_MAX], name[256];
    cJSON *servers = NULL, *reply = NULL;
    int rc = hotline_open(argv[1], &c, room_id, name, sizeof name, &servers);
    if (rc != EXIT_OK)
        return rc;
    const char *self = "";
    const cJSON *s, *found = NULL;
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(servers, "servers"))
    {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "self")))
            self = cli_str(s, "server", NULL);
    }
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(servers, "seats"))
    {
        if (strcmp(cli_str(s, "server", NULL), self) == 0 &&
            strcmp(cli_str(s, "seat", NULL), argv[2]) == 0)
            found = s;
    }
    if (!found) {
        kzc_close(c);
        if (json_out)
            printf("{\"ok\":false,\"error\":{\"code\":\"not_found\",\"message\":\"no such "
                   "seat of this server\"}}\n");
        else
            fprintf(stderr,
                    "kizuna: not_found: %s has no seat '%s' in %s (kizuna hotline show lists the "
                    "seats; kizuna hotline seat names one)\n",
                    self, argv[2], name);
        cJSON_Delete(servers);
        return EXIT_REFUSED;
    }
    bool on_duty = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(found, "on_duty"));
    char before[200];
    snprintf(before, sizeof before, "%s", cli_str(found, "holder", NULL));
    cJSON_Delete(servers);
    rc = seat_call(c, room_id, argv[2], argv[3], on_duty, &reply);
    kzc_close(c);
    if (rc == EXIT_OK && json_out) {
        cJSON_AddStringToObject(reply, "previous", before);
        cJSON_AddBoolToObject(reply, "on_duty", on_duty);
        cli_print_json(reply);
    } else if (rc == EXIT_OK) {
        printf("%s in %s: %s takes over from %s%s (#%lld)\n", argv[2], name, argv[3],
               *before ? before : "(vacant)", on_duty ? ", on duty" : "", cli_num(reply, "pos"));
    }
    cJSON_Delete(reply);
    return rc;
}

/* A peer's link and backlog (peer.list) on the current line: "connected since ...; up to date"
 * or what it still lacks. */
static void print_link(const cJSON *peer)
{
    if (!peer) {
        printf("not a peer of this server");
        return;
    }
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(peer, "link");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(peer, "replication");
    const cJSON *since = cJSON_GetObjectItemCaseSensitive(l, "since");
    printf("%s", *cli_str(l, "state", NULL) ? cli_str(l, "state", NULL) : "unknown");
    if (cJSON_IsNumber(since)) {
        char when[64];
        cli_format_time(since->valuedouble, when, sizeof when);
        printf(" since %s", when);
    }
    long long behind = cli_num(r, "events_behind");
    if (r && behind == 0)
        printf("; up to date");
    else if (r)
        printf("; lacks %lld events, the oldest %.0f s old", behind,
               (double)cli_num(r, "oldest_undelivered_age_ms") / 1000);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(l, "skew_alarm")))
        printf("; ALARM clock skew");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "quarantined")))
        printf("; ALARM fork");
}

/* `hotline status ROOM`: each member server's role, link and backlog (room.servers and
 * peer.list, both on one connection). The backlog is peer.list's: what the peer has not
 * acknowledged of every room shared with it, not of this room alone. */
int cmd_hotline_status(int argc, char **argv)
{
    (void)argc;
    struct kzc *c;
    char room_id[ROOM_ID_MAX], name[256];
    cJSON *servers = NULL, *peers = NULL;
    int rc = hotline_open(argv[1], &c, room_id, name, sizeof name, &servers);
    if (rc != EXIT_OK)
        return rc;
    rc = cli_call(c, "peer.list", NULL, &peers);
    kzc_close(c);
    if (rc != EXIT_OK) {
        cJSON_Delete(servers);
        return rc;
    }
    cJSON *s, *list = cJSON_GetObjectItemCaseSensitive(servers, "servers");
    const cJSON *peer_list = cJSON_GetObjectItemCaseSensitive(peers, "peers");
    if (!json_out && strcmp(name, room_id) != 0)
        printf("%s (%s)\n", name, room_id);
    else if (!json_out)
        printf("%s\n", room_id);
    if (!json_out)
        printf("  authority %s:\n", cli_str(servers, "authority", NULL));
    cJSON_ArrayForEach(s, list)
    {
        const cJSON *p = NULL, *q;
        cJSON_ArrayForEach(q, peer_list)
        {
            if (strcmp(cli_str(q, "server", NULL), cli_str(s, "server", NULL)) == 0)
                p = q;
        }
        bool self = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "self"));
        bool admitted = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "admitted"));
        if (json_out) {
            /* Each member gets its peer's link and replication, as peer.list gives them. */
            if (p && !self) {
                cJSON_AddItemToObject(
                    s, "link", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(p, "link"), true));
                cJSON_AddItemToObject(
                    s, "replication",
                    cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(p, "replication"), true));
            }
            continue;
        }
        print_member(s);
        printf(" ");
        if (self)
            printf("(holds the room)");
        else if (admitted)
            print_link(p);
        printf("\n");
    }
    if (json_out)
        cli_print_json(servers);
    else
        printf("(what a server lacks counts every room shared with it; kizuna admin peers "
               "shows more)\n");
    cJSON_Delete(servers);
    cJSON_Delete(peers);
    return EXIT_OK;
}
