/* main.c - the kizuna command: its help, its command table (every subcommand an entry) and the
 * dispatch through it, and the session commands (login, logout, whoami, passwd); what the
 * commands share is in common.c.
 * Exit codes: 0 ok, 1 the server said no, 2 usage, 3 the server cannot be reached. Only the
 * session token is kept on disk (mode 0600). */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "usage: kizuna [--server URL] [--json] COMMAND\n"
    "\n"
    "  login LOGIN [--device LABEL] [--shared]\n"
    "                                 log in (password from KIZUNA_PASSWORD or a prompt);\n"
    "                                 --shared: a loaner phone, logged out when left idle\n"
    "  join CODE --login LOGIN [--name NAME] [--device LABEL] [--shared]\n"
    "                                 make your account from an invitation (password from\n"
    "                                 KIZUNA_NEW_PASSWORD or a prompt)\n"
    "  logout                         end this session\n"
    "  whoami                         who this session is\n"
    "  passwd                         change your password\n"
    "  admin user add LOGIN [--name NAME] [--role admin|hq|staff] [--dept NAME]\n"
    "                 [--groups \"a;b\"] [--email E] [--phone P] [--expires WHEN]\n"
    "                 [--password-stdin]\n"
    "  admin user update LOGIN [--name NAME] [--role ROLE] [--dept NAME] [--groups \"a;b\"]\n"
    "                 [--email E] [--phone P] [--expires WHEN|never]\n"
    "  admin invite create [--role staff|hq] [--dept NAME] [--groups a,b] [--uses N]\n"
    "                 [--expires WHEN] [--account-expires WHEN] [--note TEXT] [--no-qr]\n"
    "  admin invite list | admin invite revoke ID\n"
    "                                 WHEN: YYYY-MM-DD, \"YYYY-MM-DD HH:MM\", or 90m, 72h, 7d\n"
    "  admin peer add ID --key KEY --address HOST:PORT [--address ...] --fingerprint DIGITS\n"
    "                 [--tls-pin PIN] [--name NAME]\n"
    "                                 pin another municipality's server (federation)\n"
    "  admin peer list | admin peers | admin peer remove ID\n"
    "                                 peers and their links (federation)\n"
    "  admin status                   the server on one screen: uptime, connections, messages\n"
    "                                 today, storage, backup, peers, alarms (--json)\n"
    "  admin webhook                  the outgoing webhook: where it posts, what waits, the\n"
    "                                 deliveries its receiver refused (--json)\n"
    "  admin mail [--limit N]         the e-mail outbox: waiting, failed, and each failure's\n"
    "                                 person, address, subject and the relay's error\n"
    "  admin dept list | admin group list\n"
    "  admin sessions LOGIN | admin revoke SESSION_ID   (a lost phone: cut off at once)\n"
    "  sessions | revoke SESSION_ID   your own devices\n"
    "  admin import FILE.csv [--dry-run] [--passwords-out FILE]   "
    "(login,name,department,role,groups[,email,phone])\n"
    "  admin export                   all users as the same CSV (--json: as JSON)\n"
    "  admin audit [--action A] [--actor L] [--target T] [--limit N] [--csv]\n"
    "                                 (--json: JSON Lines)\n"
    "  admin user list\n"
    "  admin user disable LOGIN\n"
    "  admin user enable LOGIN\n"
    "  admin user reset-password LOGIN\n"
    "\n"
    "  rooms [--archived]             your rooms, unread counts and last messages\n"
    "  room create NAME [--members a,b] [--topic TEXT] [--history shared|joined]\n"
    "              [--servers ID,ID] [--yes]\n"
    "                                 --yes: a second room with the name of one of yours\n"
    "  room invite ROOM USER | room remove ROOM USER   (room admins)\n"
    "  room leave ROOM | room members ROOM\n"
    "  room watch ROOM [--off]        a group room's photos push you (room.watch)\n"
    "  notify [--push KIND,KIND] [--email KIND,KIND] [--previews on|off]\n"
    "                                 what reaches you outside Kizuna, per kind (notify.prefs;\n"
    "                                 none: show it). Kinds: notice rollcall reminder hotline\n"
    "                                 direct mention photo digest (digest: e-mail only)\n"
    "  room rename ROOM NAME | room topic ROOM TEXT | room admin ROOM USER [--revoke]\n"
    "  room archive ROOM | room unarchive ROOM\n"
    "                                 room admins: read-only and out of the list, or back\n"
    "  room export ROOM [-o FILE.csv] every event of the room as CSV (recorded in the audit)\n"
    "  record export ROOM [--from WHEN] [--to WHEN] [--format jsonl|csv|html] [--received]\n"
    "                [--no-photos] [--out FILE]\n"
    "                                 the room's chronology, for the record (docs/records.md);\n"
    "                                 photos this device opens get their caption and thumbnail\n"
    "  record reviewer ROOM_ID USER [--revoke]   (admins) who reviews a room's record\n"
    "  record review create ROOM [--title T] [--from WHEN] [--to WHEN]\n"
    "                                 a review, with the helper's proposed redactions\n"
    "  record review show REVIEW | record review mark REVIEW (EVENT... | --all) [--unmark]\n"
    "  record review redact REVIEW EVENT START END   by hand (bytes of the text)\n"
    "  record review accept REVIEW (REDACTION... | --all) | record review reject ...\n"
    "  record review approve REVIEW   someone other than its reviewer signs it off\n"
    "  record publish REVIEW [--format jsonl|csv|html] [--out FILE]\n"
    "                                 the published record: redactions as ■■■\n"
    "  room hold ROOM_ID [--release]  (admins) keep the room's record whatever happens\n"
    "  room servers ROOM [--pos N]    the servers a shared room lives on; --pos: which of\n"
    "                                 them have acknowledged message #N (federation)\n"
    "  room add-server ROOM SERVER | room remove-server ROOM SERVER\n"
    "                                 a shared room's authority admits a peer server, or\n"
    "                                 removes one (its room admins)\n"
    "  hotline create NAME --member SERVER=ROLE [--member ...] [--topic TEXT]\n"
    "                                 a counterpart hotline (ROLE: affected 被災市町, primary\n"
    "                                 一次支援市, secondary 二次支援市町, hq 県本部)\n"
    "  hotline list [--csv]           every hotline here, its municipalities and roles\n"
    "  hotline show ROOM | hotline status ROOM\n"
    "                                 its servers and roles; status: their links and backlog\n"
    "  hotline admit ROOM SERVER --role ROLE | hotline remove ROOM SERVER\n"
    "  hotline role ROOM SERVER ROLE  (the hotline's authority: docs/hotline.md)\n"
    "  hotline authority ROOM SERVER  the authority hands the hotline to another of its servers\n"
    "  hotline seat ROOM SEAT (LOGIN [--on-duty] | --vacate)\n"
    "  hotline handover ROOM SEAT LOGIN\n"
    "                                 this server's seats (当直, 危機管理課長, ...) and who holds\n"
    "                                 them; handover: the next shift, on duty as it was\n"
    "  dm USER                        the one-to-one room with USER (as a ROOM: @USER)\n"
    "  send ROOM [--urgent] [TEXT...] without TEXT, the message is read from stdin; --urgent: a\n"
    "                                 first report (第一報) in a hotline: on-duty seats alerted\n"
    "  history ROOM [--before POS] [--after POS] [--limit N] [--no-read]\n"
    "  tail [ROOM] [-n N] [--no-read] the room's last N events (10, or from the first unread),\n"
    "                                 then follow live; reconnects and resumes by itself\n"
    "                                 history and tail mark what they show read (既読), and\n"
    "                                 open photos; --no-read for scripts and shared screens\n"
    "  read ROOM [POS]                mark read (up to the newest message by default)\n"
    "  readers ROOM POS               who has read a message or photo, and who has not\n"
    "  search WORD... [--room ROOM] [--before POS] [--limit N]\n"
    "                                 messages and notices with every word (冠水 通行止め)\n"
    "  edit ROOM POS TEXT | delete ROOM POS   (a room admin may delete anyone's message)\n"
    "\n"
    "  photo send ROOM FILE.jpg [--caption C] [--no-gps] [--max-edge N] [--thumbnail-first]\n"
    "                                 end-to-end encrypted; GPS and capture time travel only\n"
    "                                 inside the encryption; resumes if run again\n"
    "  photo resume                   finish every interrupted photo send\n"
    "  photo list ROOM [--limit N]    photos, their captions, GPS, and whether they open\n"
    "  photo get ROOM POS [-o FILE] [--thumb]\n"
    "                                 decrypt and verify; only -o writes the picture\n"
    "  devices [LOGIN]                encryption devices (yours by default), approved or not\n"
    "  device approve ID              your new device gets photo keys (run on an approved one)\n"
    "  device revoke ID               a lost phone: no new photo keys, session ended\n"
    "  verify USER [--yes]            the safety number of your devices and theirs; remembered\n"
    "\n"
    "  notice post --title T (--body-file F | --body TEXT) --to "
    "all|dept:NAME,group:NAME,user:LOGIN\n"
    "              [--urgent] [--ack] [--choices \"a|b|c\"] [--category C] [--pin]\n"
    "              [--expires-in MINUTES] [--announce ROOM]\n"
    "  notice list [--posted]         your notices, unread and urgent first\n"
    "  notice show ID                 (marks it read; ID may be a kizuna://notice/ID link)\n"
    "  notice ack ID | notice respond ID CHOICE [--comment C]\n"
    "  notice report ID [--csv | --all | --reach] | notice remind ID | notice withdraw ID\n"
    "  notice edit ID [--title T] [--body-file F]\n"
    "\n"
    "  alert list                     (hq, admins) roll-calls JMA's telegrams started, their\n"
    "                                 countdowns, and the feeds' state (docs/alerts.md)\n"
    "  alert show ID | alert send-now ID | alert cancel ID\n"
    "                                 send a pending roll-call at once, or stop a false alarm\n"
    "\n"
    "ROOM is a room id, its first 4+ characters, its exact name, or @LOGIN.\n"
    "The server is --server, else KIZUNA_SERVER, else the one you logged in to, "
    "else " DEFAULT_SERVER ".\n"
    "The session and this device's keys are kept in KIZUNA_CONFIG_DIR (default\n"
    "~/.config/kizuna); logout wipes the keys, even when the server cannot be reached\n"
    "(then run logout again later to end the session there). KIZUNA_RETRY_MAX_S (300)\n"
    "bounds how long photo uploads and downloads retry without progress.\n";

bool json_out;
const char *cli_server_opt;

/* One entry of the command table (at the end of this file). */
struct cli_command {
    const char *name;                  /* its words: "whoami", "room create", "admin user add" */
    int (*run)(int argc, char **argv); /* argv[0] is the name's last word, then the arguments */
    int min_args, max_args;            /* arguments after the name (max -1: any number) */
    bool needs_session;                /* runs with the saved session: without one, dispatch
                                        * checks the arguments, then refuses, unconnected */
    const char *usage;                 /* its line(s) of the help, shown on a usage mistake */
};

/* The command being run (set by main's dispatch), for usage_error: its usage line, and its
 * arguments, to name a flag it does not have. */
static const struct cli_command *running;
static int running_argc;
static char **running_argv;
/* Set by dispatch when the command needs a session and there is none: it only checks its
 * arguments (cli_arguments_only). */
static bool arguments_only;

bool cli_arguments_only(void)
{
    return arguments_only;
}

/* Whether word appears in text as a whole word (delimited by anything but [A-Za-z0-9_-]). */
static bool has_word(const char *text, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = text; n && (p = strstr(p, word)); p++) {
        bool start = p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '-' || p[-1] == '_');
        bool end = !(isalnum((unsigned char)p[n]) || p[n] == '-' || p[n] == '_');
        if (start && end)
            return true;
    }
    return false;
}

int cli_usage_error(const char *msg)
{
    for (int i = 1; running && i < running_argc; i++) {
        const char *a = running_argv[i];
        if (a[0] == '-' && a[1] && !isdigit((unsigned char)a[1]) && !has_word(running->usage, a)) {
            fprintf(stderr, "kizuna: %s has no option %s\n", running->name, a);
            break;
        }
    }
    if (msg)
        fprintf(stderr, "kizuna: %s\n", msg);
    if (!running) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    fprintf(stderr, "usage: kizuna %s\n(kizuna --help lists every command)\n", running->usage);
    return EXIT_USAGE;
}

static int logout_remote(void);

static int cmd_login(int argc, char **argv)
{
    const char *login = NULL, *device = NULL;
    bool shared = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
            device = argv[++i];
        else if (strcmp(argv[i], "--shared") == 0)
            shared = true;
        else if (!login && argv[i][0] != '-')
            login = argv[i];
        else
            return cli_usage_error("login LOGIN [--device LABEL] [--shared]");
    }
    if (!login)
        return cli_usage_error("login needs a LOGIN");
    char password[256];
    if (cli_get_secret("KIZUNA_PASSWORD", "Password: ", password, sizeof password) != 0)
        return EXIT_USAGE;
    struct session s;
    cli_session_load(&s);
    /* A logout the server was not told of: tell it now, or the old session stays valid there. */
    if (s.logout_pending && logout_remote() == EXIT_UNREACHABLE) {
        memset(password, 0, sizeof password);
        return EXIT_UNREACHABLE;
    }
    const char *url = cli_server_url(&s);
    char err[256];
    struct kzc *c = kzc_connect(url, TIMEOUT_MS, err, sizeof err);
    if (!c)
        return cli_unreachable(err);
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "login", login);
    cJSON_AddStringToObject(args, "password", password);
    char label[300];
    cli_device_label(label, sizeof label);
    cJSON_AddStringToObject(args, "device", device ? device : label);
    if (shared)
        cJSON_AddBoolToObject(args, "shared", true);
    memset(password, 0, sizeof password);
    cJSON *reply;
    int rc = cli_call(c, "login", args, &reply);
    kzc_close(c);
    if (rc != EXIT_OK)
        return rc;
    return cli_login_finish(url, login, reply);
}

/* Tells the server about the saved session's logout; an exit code. */
static int logout_remote(void)
{
    struct kzc *c;
    struct session s;
    cli_finishing_logout = true;
    int rc = cli_connect_authed(&c, &s);
    cli_finishing_logout = false;
    if (rc == EXIT_OK) {
        cJSON *reply;
        rc = cli_call(c, "logout", NULL, &reply);
        cJSON_Delete(reply);
        kzc_close(c);
    }
    return rc;
}

static int cmd_logout(void)
{
    struct session s;
    if (!cli_session_load(&s)) {
        keystore_wipe(); /* keys of an earlier session, if any */
        return cli_not_logged_in();
    }
    /* The keys go first, whatever becomes of the server: a shared phone handed on must keep
     * nothing that reads the rooms' photos, also when the network is down (issue 14, item 7).
     * Only the token stays, marked, so that `logout` can tell the server later (it revokes the
     * session and its device); until then no other command uses it. */
    s.logout_pending = true;
    if (cli_session_save(&s) != 0)
        fprintf(stderr, "kizuna: cannot mark the session as logged out\n");
    keystore_wipe();
    int rc = logout_remote();
    if (rc == EXIT_UNREACHABLE) {
        if (!json_out)
            fprintf(stderr, "kizuna: this device's keys are wiped; the server could not be told, "
                            "so the session stays valid there until kizuna logout reaches it "
                            "(or an administrator revokes it)\n");
        return rc;
    }
    cli_session_forget(); /* told, or the server no longer knows the token */
    if (rc == EXIT_OK) {
        if (json_out)
            puts("{\"ok\":true}");
        else
            printf("logged out\n");
    }
    return rc;
}

static int cmd_whoami(void)
{
    struct kzc *c;
    struct session s;
    int rc = cli_connect_authed(&c, &s);
    if (rc != EXIT_OK)
        return rc;
    cJSON *reply;
    rc = cli_call(c, "whoami", NULL, &reply);
    kzc_close(c);
    if (rc != EXIT_OK)
        return rc;
    if (json_out)
        cli_print_json(reply);
    else
        printf("%s (%s), role %s, on %s\n", cli_str(reply, "user", "login"),
               cli_str(reply, "user", "name"), cli_str(reply, "user", "role"), cli_server_url(&s));
    cJSON_Delete(reply);
    return EXIT_OK;
}

static int cmd_passwd(void)
{
    if (cli_arguments_only()) /* before the passwords are asked for */
        return EXIT_OK;
    char old[256], new1[256], new2[256];
    if (cli_get_secret("KIZUNA_PASSWORD", "Current password: ", old, sizeof old) != 0)
        return EXIT_USAGE;
    if (getenv("KIZUNA_NEW_PASSWORD") && *getenv("KIZUNA_NEW_PASSWORD")) {
        snprintf(new1, sizeof new1, "%s", getenv("KIZUNA_NEW_PASSWORD"));
    } else {
        if (cli_get_secret("KIZUNA_NEW_PASSWORD", "New password: ", new1, sizeof new1) != 0 ||
            cli_get_secret("KIZUNA_NEW_PASSWORD", "New password again: ", new2, sizeof new2) != 0)
            return EXIT_USAGE;
        if (strcmp(new1, new2) != 0) {
            fprintf(stderr, "kizuna: the new passwords differ\n");
            return EXIT_USAGE;
        }
    }
    struct kzc *c;
    struct session s;
    int rc = cli_connect_authed(&c, &s);
    if (rc != EXIT_OK)
        return rc;
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "old_password", old);
    cJSON_AddStringToObject(args, "new_password", new1);
    memset(old, 0, sizeof old);
    memset(new1, 0, sizeof new1);
    cJSON *reply;
    rc = cli_call(c, "passwd", args, &reply);
    kzc_close(c);
    if (rc != EXIT_OK)
        return rc;
    if (json_out)
        cli_print_json(reply);
    else
        printf("password changed; your other devices have been logged out\n");
    cli_device_enroll();
    cJSON_Delete(reply);
    return EXIT_OK;
}

/* ---- the command table ---- */

/* Adapters from the table's (argc, argv) to the handlers above. */
static int run_login(int argc, char **argv)
{
    return cmd_login(argc - 1, argv + 1);
}
static int run_join(int argc, char **argv)
{
    return cmd_join(argc - 1, argv + 1);
}
static int run_logout(int argc, char **argv)
{
    (void)argc, (void)argv;
    return cmd_logout();
}
static int run_whoami(int argc, char **argv)
{
    (void)argc, (void)argv;
    return cmd_whoami();
}
static int run_passwd(int argc, char **argv)
{
    (void)argc, (void)argv;
    return cmd_passwd();
}
static int run_sessions(int argc, char **argv)
{
    return cmd_sessions(argc == 2 ? argv[1] : NULL);
}
static int run_revoke(int argc, char **argv)
{
    (void)argc;
    return cmd_revoke(argv[1]);
}
static int run_import(int argc, char **argv)
{
    return cmd_import(argc - 1, argv + 1);
}
static int run_export(int argc, char **argv)
{
    (void)argc, (void)argv;
    return cmd_export();
}
static int run_audit(int argc, char **argv)
{
    return cmd_audit(argc - 1, argv + 1);
}
static int run_dept_list(int argc, char **argv)
{
    (void)argc, (void)argv;
    return cmd_org_list(true);
}
static int run_group_list(int argc, char **argv)
{
    (void)argc, (void)argv;
    return cmd_org_list(false);
}

/* How a time is given (cli_parse_when), for the usages of commands that take one. */
#define USAGE_WHEN "  WHEN: YYYY-MM-DD, \"YYYY-MM-DD HH:MM\", or 90m, 72h, 7d"

/* Every command, each subcommand its own entry (so that a near miss of one gets a "did you mean"
 * and a mistake in one shows its usage alone): tests/integration/test_cli.c checks that each
 * name is in --help and in README.md or docs/, so a command cannot be added without being
 * documented. A usage's first line is the command; more lines are indented. */
static const struct cli_command commands[] = {
    {"login", run_login, 0, -1, false, "login LOGIN [--device LABEL] [--shared]"},
    {"join", run_join, 0, -1, false,
     "join CODE --login LOGIN [--name NAME] [--device LABEL] [--shared]"},
    {"logout", run_logout, 0, 0, false, "logout"},
    {"whoami", run_whoami, 0, 0, true, "whoami"},
    {"passwd", run_passwd, 0, 0, true, "passwd"},
    {"sessions", run_sessions, 0, 0, true, "sessions"},
    {"revoke", run_revoke, 1, 1, true, "revoke SESSION_ID"},
    {"admin user add", cmd_user_add, 1, -1, true,
     "admin user add LOGIN [--name NAME] [--role admin|hq|staff] [--dept NAME]\n"
     "                 [--groups \"a;b\"] [--email E] [--phone P] [--expires WHEN]\n"
     "                 [--password-stdin]\n" USAGE_WHEN},
    {"admin user update", cmd_user_update, 1, -1, true,
     "admin user update LOGIN [--name NAME] [--role ROLE] [--dept NAME] [--groups \"a;b\"]\n"
     "                 [--email E] [--phone P] [--expires WHEN|never]\n" USAGE_WHEN},
    {"admin user list", cmd_user_list, 0, 0, true, "admin user list"},
    {"admin user disable", cmd_user_disable, 1, 1, true, "admin user disable LOGIN"},
    {"admin user enable", cmd_user_enable, 1, 1, true, "admin user enable LOGIN"},
    {"admin user reset-password", cmd_user_reset_password, 1, 1, true,
     "admin user reset-password LOGIN"},
    {"admin invite create", cmd_invite_create, 0, -1, true,
     "admin invite create [--role staff|hq] [--dept NAME] [--groups a,b] [--uses N]\n"
     "                 [--expires WHEN] [--account-expires WHEN] [--note TEXT] "
     "[--no-qr]\n" USAGE_WHEN},
    {"admin invite list", cmd_invite_list, 0, 0, true, "admin invite list"},
    {"admin invite revoke", cmd_invite_revoke, 1, 1, true, "admin invite revoke ID"},
    {"admin peer add", cmd_peer_add, 1, -1, true,
     "admin peer add ID --key KEY --address HOST:PORT [--address ...] --fingerprint DIGITS\n"
     "                 [--tls-pin PIN] [--name NAME]\n"
     "  DIGITS: the 60 digits of kizunad fingerprint on the peer, read to you by its admin"},
    {"admin peer list", cmd_peer_list, 0, 0, true, "admin peer list"},
    {"admin peer remove", cmd_peer_remove, 1, 1, true, "admin peer remove ID"},
    {"admin peers", cmd_peer_list, 0, 0, true, "admin peers   (admin peer list: links first)"},
    {"admin status", cmd_admin_status, 0, 0, true, "admin status"},
    {"admin webhook", cmd_admin_webhook, 0, 0, true, "admin webhook"},
    {"admin mail", cmd_admin_mail, 0, 2, true, "admin mail [--limit N]"},
    {"admin dept list", run_dept_list, 0, 0, true, "admin dept list"},
    {"admin group list", run_group_list, 0, 0, true, "admin group list"},
    {"admin sessions", run_sessions, 1, 1, true, "admin sessions LOGIN"},
    {"admin revoke", run_revoke, 1, 1, true, "admin revoke SESSION_ID"},
    {"admin import", run_import, 0, -1, true,
     "admin import FILE.csv [--dry-run] [--passwords-out FILE]"},
    {"admin export", run_export, 0, 0, true, "admin export"},
    {"admin audit", run_audit, 0, -1, true,
     "admin audit [--action A] [--actor L] [--target T] [--limit N] [--csv]"},
    {"rooms", cmd_rooms, 0, 1, true, "rooms [--archived]"},
    {"room create", cmd_room_create, 1, -1, true,
     "room create NAME [--members a,b] [--topic TEXT] [--history shared|joined] [--servers ID,ID]"
     " [--yes]"},
    {"room invite", cmd_room_invite, 2, 2, true, "room invite ROOM USER"},
    {"room remove", cmd_room_remove, 2, 2, true, "room remove ROOM USER"},
    {"room leave", cmd_room_leave, 1, 1, true, "room leave ROOM"},
    {"room watch", cmd_room_watch, 1, 2, true, "room watch ROOM [--off]"},
    {"notify", cmd_notify, 0, 6, true,
     "notify [--push KIND,KIND] [--email KIND,KIND] [--previews on|off]"},
    {"room members", cmd_room_members, 1, 1, true, "room members ROOM"},
    {"room rename", cmd_room_rename, 2, 2, true, "room rename ROOM NAME"},
    {"room topic", cmd_room_topic, 2, 2, true, "room topic ROOM TEXT"},
    {"room admin", cmd_room_admin, 2, 3, true, "room admin ROOM USER [--revoke]"},
    {"room archive", cmd_room_archive, 1, 1, true, "room archive ROOM"},
    {"room unarchive", cmd_room_unarchive, 1, 1, true, "room unarchive ROOM"},
    {"room export", cmd_room_export, 1, 3, true, "room export ROOM [-o FILE.csv]"},
    {"record export", cmd_record_export, 1, -1, true,
     "record export ROOM [--from WHEN] [--to WHEN] [--format jsonl|csv|html] [--received]"
     " [--no-photos] [--out FILE]"},
    {"record reviewer", cmd_record_reviewer, 2, 3, true, "record reviewer ROOM_ID USER [--revoke]"},
    {"record review create", cmd_record_review_create, 1, -1, true,
     "record review create ROOM [--title T] [--from WHEN] [--to WHEN]"},
    {"record review show", cmd_record_review_show, 1, 1, true, "record review show REVIEW"},
    {"record review mark", cmd_record_review_mark, 2, -1, true,
     "record review mark REVIEW (EVENT... | --all) [--unmark]"},
    {"record review redact", cmd_record_review_redact, 4, 4, true,
     "record review redact REVIEW EVENT START END"},
    {"record review accept", cmd_record_review_accept, 2, -1, true,
     "record review accept REVIEW (REDACTION... | --all)"},
    {"record review reject", cmd_record_review_reject, 2, -1, true,
     "record review reject REVIEW (REDACTION... | --all)"},
    {"record review approve", cmd_record_review_approve, 1, 1, true,
     "record review approve REVIEW"},
    {"record publish", cmd_record_publish, 1, -1, true,
     "record publish REVIEW [--format jsonl|csv|html] [--out FILE]"},
    {"room hold", cmd_room_hold, 1, 2, true, "room hold ROOM_ID [--release]"},
    {"room servers", cmd_room_servers, 1, 3, true, "room servers ROOM [--pos N]"},
    {"room add-server", cmd_room_add_server, 2, 2, true, "room add-server ROOM SERVER"},
    {"room remove-server", cmd_room_remove_server, 2, 2, true, "room remove-server ROOM SERVER"},
    {"hotline create", cmd_hotline_create, 1, -1, true,
     "hotline create NAME --member SERVER=ROLE [--member ...] [--topic TEXT]\n"
     "  ROLE: affected (被災市町), primary (一次支援市), secondary (二次支援市町), hq (県本部)"},
    {"hotline list", cmd_hotline_list, 0, 1, true, "hotline list [--csv]"},
    {"hotline show", cmd_hotline_show, 1, 1, true, "hotline show ROOM"},
    {"hotline admit", cmd_hotline_admit, 2, 4, true, "hotline admit ROOM SERVER --role ROLE"},
    {"hotline remove", cmd_hotline_remove, 2, 2, true, "hotline remove ROOM SERVER"},
    {"hotline role", cmd_hotline_role, 3, 3, true, "hotline role ROOM SERVER ROLE"},
    {"hotline authority", cmd_hotline_authority, 2, 2, true, "hotline authority ROOM SERVER"},
    {"hotline seat", cmd_hotline_seat, 3, 4, true,
     "hotline seat ROOM SEAT (LOGIN [--on-duty] | --vacate)"},
    {"hotline handover", cmd_hotline_handover, 3, 3, true, "hotline handover ROOM SEAT LOGIN"},
    {"hotline status", cmd_hotline_status, 1, 1, true, "hotline status ROOM"},
    {"dm", cmd_dm, 1, 1, true, "dm USER"},
    {"send", cmd_send, 1, -1, true,
     "send ROOM [--urgent] [TEXT...]   (without TEXT, read from stdin; --urgent: a hotline's "
     "first report)"},
    {"history", cmd_history, 1, -1, true,
     "history ROOM [--before POS] [--after POS] [--limit N] [--no-read]"},
    {"tail", cmd_tail, 0, -1, true, "tail [ROOM] [-n N] [--no-read]"},
    {"read", cmd_read, 1, 2, true, "read ROOM [POS]"},
    {"readers", cmd_readers, 2, 2, true, "readers ROOM POS"},
    {"search", cmd_search, 1, -1, true, "search WORD... [--room ROOM] [--before POS] [--limit N]"},
    {"edit", cmd_msg_edit, 3, 3, true, "edit ROOM POS TEXT"},
    {"delete", cmd_msg_delete, 2, 2, true, "delete ROOM POS"},
    {"photo send", cmd_photo_send, 2, -1, true,
     "photo send ROOM FILE.jpg [--caption C] [--no-gps] [--max-edge N] [--thumbnail-first]"},
    {"photo resume", cmd_photo_resume, 0, 0, true, "photo resume"},
    {"photo list", cmd_photo_list, 1, 3, true, "photo list ROOM [--limit N]"},
    {"photo get", cmd_photo_get, 2, 5, true, "photo get ROOM POS [-o FILE] [--thumb]"},
    {"devices", cmd_devices, 0, 1, true, "devices [LOGIN]"},
    {"device approve", cmd_device_approve, 1, 1, true, "device approve ID"},
    {"device revoke", cmd_device_revoke, 1, 1, true, "device revoke ID"},
    {"verify", cmd_verify_user, 1, 2, true, "verify USER [--yes]"},
    {"notice post", cmd_notice_post, 0, -1, true,
     "notice post --title T (--body-file F | --body TEXT) --to "
     "all|dept:NAME,group:NAME,user:LOGIN\n"
     "              [--urgent] [--ack] [--choices \"a|b|c\"] [--category C] [--pin]\n"
     "              [--expires-in MINUTES] [--announce ROOM]"},
    {"notice list", cmd_notice_list, 0, 1, true, "notice list [--posted]"},
    {"notice show", cmd_notice_show, 1, 1, true, "notice show ID"},
    {"notice ack", cmd_notice_ack, 1, 1, true, "notice ack ID"},
    {"notice respond", cmd_notice_respond, 2, 4, true, "notice respond ID CHOICE [--comment C]"},
    {"notice report", cmd_notice_report, 1, 2, true, "notice report ID [--csv | --all | --reach]"},
    {"notice remind", cmd_notice_remind, 1, 1, true, "notice remind ID"},
    {"notice withdraw", cmd_notice_withdraw, 1, 1, true, "notice withdraw ID"},
    {"notice edit", cmd_notice_edit, 1, 5, true, "notice edit ID [--title T] [--body-file F]"},
    {"alert list", cmd_alert_list, 0, 0, true, "alert list"},
    {"alert show", cmd_alert_show, 1, 1, true, "alert show ID"},
    {"alert send-now", cmd_alert_send_now, 1, 1, true, "alert send-now ID"},
    {"alert cancel", cmd_alert_cancel, 1, 1, true, "alert cancel ID"},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

/* How many of the words of name argv begins with (all of them: a match), and the name's word
 * count in *words. */
static int name_match(const char *name, int argc, char **argv, int *words)
{
    int w = 0, matched = 0;
    bool all = true;
    for (const char *p = name; *p;) {
        size_t len = strcspn(p, " ");
        if (all && w < argc && strlen(argv[w]) == len && strncmp(argv[w], p, len) == 0)
            matched++;
        else
            all = false;
        w++;
        p += len;
        p += *p == ' ';
    }
    *words = w;
    return matched;
}

/* The edit distance between a and b (both short; longer ones count as far apart). */
static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40)
        return 99;
    int row[41];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* An unknown command (argv[depth] the first word no entry has after argv[0..depth-1]): says
 * which, suggests the nearest word within an edit distance of 2, and shows the usage of the
 * entries that begin with the known words (none at depth 0: --help lists them). */
static int unknown_command(int argc, char **argv, int depth)
{
    const char *bad = depth < argc ? argv[depth] : NULL;
    const char *best = NULL;
    size_t best_len = 0;
    int best_d = 3;
    for (int i = 0; bad && i < N_COMMANDS; i++) {
        int words, m = name_match(commands[i].name, argc, argv, &words);
        if (m < depth || words <= depth)
            continue;
        const char *p = commands[i].name;
        for (int w = 0; w < depth; w++)
            p += strcspn(p, " ") + 1;
        size_t len = strcspn(p, " ");
        char word[64];
        snprintf(word, sizeof word, "%.*s", (int)len, p);
        int dist = edit_distance(bad, word);
        if (dist < best_d) {
            best_d = dist;
            best = p;
            best_len = len;
        }
    }
    if (depth == 0) {
        fprintf(stderr, "kizuna: unknown command %s", bad);
    } else {
        fprintf(stderr, "kizuna: ");
        for (int w = 0; w < depth; w++)
            fprintf(stderr, "%s ", argv[w]);
        if (bad)
            fprintf(stderr, "has no subcommand %s", bad);
        else
            fprintf(stderr, "needs a subcommand");
    }
    if (best)
        fprintf(stderr, "; did you mean %.*s?", (int)best_len, best);
    fputc('\n', stderr);
    bool any = false;
    for (int i = 0; depth > 0 && i < N_COMMANDS; i++) {
        int words;
        if (name_match(commands[i].name, argc, argv, &words) >= depth && words > depth) {
            const char *u = commands[i].usage; /* its first line: the group's overview */
            fprintf(stderr, "%s kizuna %.*s\n", any ? "      " : "usage:", (int)strcspn(u, "\n"),
                    u);
            any = true;
        }
    }
    fputs("(kizuna --help lists every command)\n", stderr);
    return EXIT_USAGE;
}

/* Finds the command argv names (the entry whose words it begins with, the longest), checks its
 * argument count and, if it needs one, that there is a session (have_session), and runs it; or
 * says what is wrong with the line. Usage mistakes come first (exit 2), then "not logged in"
 * (exit 1, as cli_connect_authed says it), then whatever the command finds. */
static int dispatch(int argc, char **argv, bool have_session)
{
    const struct cli_command *cmd = NULL;
    int cmd_words = 0, deepest = 0;
    for (int i = 0; i < N_COMMANDS; i++) {
        int words, m = name_match(commands[i].name, argc, argv, &words);
        if (m == words && words > cmd_words) {
            cmd = &commands[i];
            cmd_words = words;
        }
        if (m > deepest)
            deepest = m;
    }
    if (!cmd)
        return unknown_command(argc, argv, deepest);
    running = cmd;
    running_argc = argc - (cmd_words - 1);
    running_argv = argv + (cmd_words - 1);
    int nargs = running_argc - 1;
    if (nargs < cmd->min_args) {
        /* What it needs: the operands of its usage's first line ("ROOM USER"). */
        const char *ops = cmd->usage + strlen(cmd->name);
        ops += strspn(ops, " ");
        size_t len = strcspn(ops, "[(\n");
        while (len && ops[len - 1] == ' ')
            len--;
        fprintf(stderr, "kizuna: %s needs %.*s\n", cmd->name, (int)len, ops);
        return cli_usage_error(NULL);
    }
    if (cmd->max_args >= 0 && nargs > cmd->max_args) {
        fprintf(stderr, "kizuna: unexpected argument %s\n", running_argv[cmd->max_args + 1]);
        return cli_usage_error(NULL);
    }
    if (cmd->needs_session && !have_session) {
        /* Not logged in: the command checks its arguments and stops before it reads input or
         * connects (or cli_connect_authed stops it, before connecting), so that a mistake in
         * them is still reported as one; then the line is refused. */
        arguments_only = true;
        int rc = cmd->run(running_argc, running_argv);
        return rc == EXIT_USAGE ? rc : cli_not_logged_in();
    }
    return cmd->run(running_argc, running_argv);
}

int main(int argc, char **argv)
{
    /* A server that vanishes mid-write must be an error to handle, not a silent death. */
    signal(SIGPIPE, SIG_IGN);
    /* Times are the server's, as it last said (else its default), never this machine's. */
    struct session saved;
    bool have_session = cli_session_load(&saved);
    cli_time_zone_use(saved.time_zone);
    /* Global options may appear anywhere on the line; take them out first. */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int n = 0;
    if (!rest)
        return EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json_out = true;
        } else if (strcmp(argv[i], "--server") == 0) {
            if (i + 1 >= argc) {
                free(rest);
                return cli_usage_error("--server needs a URL");
            }
            cli_server_opt = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            free(rest);
            fputs(usage, stdout);
            return EXIT_OK;
        } else if (strcmp(argv[i], "--commands") == 0) {
            /* Every command's name, one a line (for completion, and for test_cli's check
             * that each is documented). */
            free(rest);
            for (int c = 0; c < N_COMMANDS; c++)
                printf("%s\n", commands[c].name);
            return EXIT_OK;
        } else {
            rest[n++] = argv[i];
        }
    }
    int rc = n == 0 ? cli_usage_error(NULL) : dispatch(n, rest, have_session);
    free(rest);
    return rc;
}
