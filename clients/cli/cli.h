/* cli.h - what the kizuna command's files share. */
#ifndef KIZUNA_CLI_H
#define KIZUNA_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "kzclient.h"

enum { EXIT_OK = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

#define DEFAULT_SERVER "http://127.0.0.1:8080"
#define TIMEOUT_MS     30000
#define ROOM_ID_MAX    64

struct session {
    char server[512];
    char token[128];
    char login[128];
    char time_zone[64];  /* the server's time zone as a POSIX rule ("JST-9"), as it last said */
    char server_id[64];  /* the server's id, as it last said: users are "login@server_id" */
    bool logout_pending; /* logged out here (keys wiped) but the server was not told yet */
};

extern bool json_out;
/* Set by commands that retry on their own (tail): no message per failed attempt. */
extern bool quiet_unreachable;

/* Prints msg (if any), the flag it was given that the running command does not have, and that
 * command's usage (the whole help when no command is running); returns EXIT_USAGE. */
int cli_usage_error(const char *msg);
/* Says "not logged in" (once per process, whoever asks: dispatch, cli_connect_authed, `photo
 * resume`); returns EXIT_REFUSED. */
int cli_not_logged_in(void);
/* main.c: true when this run only checks the command's arguments: the command needs a session
 * and there is none, so dispatch refuses it as not logged in once the arguments are found right
 * (a usage mistake is still reported as one, exit 2). A command that would read input, a file
 * or a prompt before it connects asks this first and returns EXIT_OK if so; one that connects
 * first needs not: cli_connect_authed refuses, without connecting. */
bool cli_arguments_only(void);
bool cli_session_load(struct session *s);
/* --server, else KIZUNA_SERVER, else NULL. */
const char *cli_server_override(void);
/* --server, else KIZUNA_SERVER, else the session's server, else the default. */
const char *cli_server_url(const struct session *s);
/* Reports an unreachable server (text or JSON); returns EXIT_UNREACHABLE. */
int cli_unreachable(const char *msg);
/* EXIT_OK for {"ok":true}; otherwise prints the refusal and returns EXIT_REFUSED. */
int cli_check_reply(const cJSON *reply);
/* Prints a reply as one JSON line, without its id. */
void cli_print_json(const cJSON *reply);
/* Calls an op (args consumed); on EXIT_OK *reply is the caller's to delete. */
int cli_call(struct kzc *c, const char *op, cJSON *args, cJSON **reply);
/* If the server closed c because it ended the session (revoked, account disabled or expired,
 * a shared device left idle, ...), prints what happened and what to do, and returns
 * EXIT_REFUSED; otherwise EXIT_OK (not closed, or closed for another reason: reconnect). */
int cli_session_ended(const struct kzc *c);
/* Connects with the saved session, calls one op (args consumed), prints the reply with --json;
 * on EXIT_OK *reply_out (if not NULL) is the caller's to delete. */
int cli_call_once(const char *op, cJSON *args, cJSON **reply_out);
/* The same on a connection already open, which it closes. */
int cli_call_and_close(struct kzc *c, const char *op, cJSON *args, cJSON **reply_out);
/* Connects and authenticates with the saved session. */
int cli_connect_authed(struct kzc **out, struct session *s);
/* A string member of o (or of o.path1 when path2 is given); "" if absent. */
const char *cli_str(const cJSON *o, const char *path1, const char *path2);
/* o[key] as an integer; 0 when it is missing or not a number. */
long long cli_num(const cJSON *o, const char *key);

/* The config directory: KIZUNA_CONFIG_DIR, else ~/.config/kizuna (written into out). */
void cli_config_dir(char *out, size_t n);
/* mkdir -p with mode 0700 for every directory it makes. 0 or -1 (errno set). */
int cli_mkdirs(const char *path);

/* common.c: the session file. Saves s with mode 0600 (a temporary file renamed, so a crash never
 * leaves half a token); 0 or -1. Forgetting removes it. */
int cli_session_save(const struct session *s);
void cli_session_forget(void);
/* Makes a POSIX time zone rule ("JST-9") the local time of this process; anything else (empty,
 * a file path) means the server's default, Asia/Tokyo. */
void cli_time_zone_use(const char *rule);
/* The name every signature binds a user by (issue 19): a login of another server is
 * "login@server" already; one of this CLI's server gets "@" and the server's id (learnt at login
 * and at every connection). Returns out. */
#define CLI_QUALIFIED_MAX 192
const char *cli_qualify(const char *login, char out[CLI_QUALIFIED_MAX]);
/* --server as given on the command line (main.c), or NULL. */
extern const char *cli_server_opt;
/* Set while `logout` finishes a logout the server was not told of (connect_authed allows it). */
extern bool cli_finishing_logout;

/* Reads a line of f into buf without its line end. 0, or -1 at the end of the file. */
int cli_read_line(FILE *f, char *buf, size_t n);
/* Reads a secret from the environment variable, else from a prompt on the terminal. */
int cli_get_secret(const char *env, const char *prompt, char *buf, size_t n);
/* "kizuna CLI on HOST", the default device label of a session. */
void cli_device_label(char *out, size_t n);
/* Saves the session a login or join reply carries and reports it; consumes reply. */
int cli_login_finish(const char *url, const char *login, cJSON *reply);
/* A time in ms since the epoch as local "YYYY-MM-DD HH:MM". */
void cli_format_time(double ms, char *out, size_t n);
/* Parses a time given on the command line: "YYYY-MM-DD" (local midnight at its start),
 * "YYYY-MM-DD HH:MM" or "YYYY-MM-DDTHH:MM" (local), or a span from now: "90m", "72h", "7d".
 * Local time, in this file and every other, is the server's time zone (its time_zone setting,
 * learnt at login and at every connection), never the TZ of the machine the CLI runs on.
 * Returns ms since the epoch, or -1 if the text is none of these. */
long long cli_parse_when(const char *text);

/* trust.c: connects with this device's keys (making them if need be) and signs into args the
 * history policy of a room about to be created (room.create, room.direct). */
int cli_connect_signing(struct kzc **c, const char *history, cJSON *args);

/* devices.c: makes and registers this device's keys right after a login, join or password
 * change, so that photos sent from then on are already encrypted to it (otherwise the first
 * ones wait for a key request to be answered). */
void cli_device_enroll(void);

/* Prints s padded with spaces to `cols` terminal columns (CJK characters take two). */
void cli_print_padded(const char *s, int cols);

/* admin.c: entries of the command table (argv[0] is the name's last word, then the arguments,
 * counted by the table). `admin user add|update LOGIN [...]`, `admin user list`, `admin user
 * disable|enable|reset-password LOGIN`; `sessions` (login NULL: one's own) and `admin sessions
 * LOGIN`; `revoke` and `admin revoke`; `admin audit [...]`, `admin import FILE.csv [...]` (argv:
 * the arguments after the name); `admin export`; `admin dept list` (depts) and `admin group
 * list`. Exit codes. */
int cmd_user_add(int argc, char **argv);
int cmd_user_update(int argc, char **argv);
int cmd_user_list(int argc, char **argv);
int cmd_user_disable(int argc, char **argv);
int cmd_user_enable(int argc, char **argv);
int cmd_user_reset_password(int argc, char **argv);
int cmd_sessions(const char *login);
int cmd_revoke(const char *id);
int cmd_audit(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_export(void);
int cmd_org_list(bool depts);

/* invite.c: `admin invite create [...]`, `admin invite list`, `admin invite revoke ID` (argv[0]
 * is the name's last word) and `join` (argv: the arguments after the name). */
int cmd_invite_create(int argc, char **argv);
int cmd_invite_list(int argc, char **argv);
int cmd_invite_revoke(int argc, char **argv);
int cmd_join(int argc, char **argv);
/* peer.c */
int cmd_peer_add(int argc, char **argv);
int cmd_peer_list(int argc, char **argv);
/* status.c */
int cmd_admin_status(int argc, char **argv);
int cmd_admin_webhook(int argc, char **argv);
int cmd_admin_mail(int argc, char **argv);
int cmd_peer_remove(int argc, char **argv);
/* Prints text as a QR code with Unicode half blocks (light modules drawn, for dark terminals). */
void cli_print_qr(const char *text);

/* notice.c: `notice post|list|show|ack|respond|report|remind|withdraw|edit ...`, entries of the
 * command table; argv[0] is the subcommand. */
int cmd_notice_post(int argc, char **argv);
int cmd_notice_list(int argc, char **argv);
int cmd_notice_show(int argc, char **argv);
int cmd_notice_ack(int argc, char **argv);
int cmd_notice_respond(int argc, char **argv);
int cmd_notice_report(int argc, char **argv);
int cmd_notice_remind(int argc, char **argv);
int cmd_notice_withdraw(int argc, char **argv);
int cmd_notice_edit(int argc, char **argv);
int cmd_alert_list(int argc, char **argv); /* alert.c */
int cmd_alert_show(int argc, char **argv);
int cmd_alert_send_now(int argc, char **argv);
int cmd_alert_cancel(int argc, char **argv);
/* talk.c: the talk commands, entries of the command table (main.c); argv[0] is the command
 * name. */
int cmd_rooms(int argc, char **argv);
int cmd_dm(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_history(int argc, char **argv);
int cmd_tail(int argc, char **argv);
int cmd_read(int argc, char **argv);
int cmd_readers(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_msg_edit(int argc, char **argv);
int cmd_msg_delete(int argc, char **argv);
/* room_manage.c: `room create|invite|remove|leave|members|rename|topic|admin|archive|unarchive|
 * export|servers ...`, entries of the command table; argv[0] is the subcommand. */
int cmd_room_create(int argc, char **argv);
int cmd_room_invite(int argc, char **argv);
int cmd_room_remove(int argc, char **argv);
int cmd_room_leave(int argc, char **argv);
int cmd_room_watch(int argc, char **argv);
int cmd_notify(int argc, char **argv);
int cmd_room_members(int argc, char **argv);
int cmd_room_rename(int argc, char **argv);
int cmd_room_topic(int argc, char **argv);
int cmd_room_admin(int argc, char **argv);
int cmd_room_archive(int argc, char **argv);
int cmd_room_unarchive(int argc, char **argv);
int cmd_room_export(int argc, char **argv);
/* record.c */
int cmd_record_export(int argc, char **argv);
int cmd_record_publish(int argc, char **argv);
int cmd_record_reviewer(int argc, char **argv);
int cmd_record_review_create(int argc, char **argv);
int cmd_record_review_show(int argc, char **argv);
int cmd_record_review_mark(int argc, char **argv);
int cmd_record_review_redact(int argc, char **argv);
int cmd_record_review_accept(int argc, char **argv);
int cmd_record_review_reject(int argc, char **argv);
int cmd_record_review_approve(int argc, char **argv);
int cmd_room_hold(int argc, char **argv);
int cmd_room_servers(int argc, char **argv);
int cmd_room_add_server(int argc, char **argv);
int cmd_room_remove_server(int argc, char **argv);
/* hotline.c: `hotline create|list|show|admit|remove|role|authority|seat|handover|status ...`
 * (counterpart hotline rooms, docs/hotline.md), entries of the command table; argv[0] is the
 * subcommand. */
int cmd_hotline_create(int argc, char **argv);
int cmd_hotline_list(int argc, char **argv);
int cmd_hotline_show(int argc, char **argv);
int cmd_hotline_admit(int argc, char **argv);
int cmd_hotline_remove(int argc, char **argv);
int cmd_hotline_role(int argc, char **argv);
int cmd_hotline_authority(int argc, char **argv);
int cmd_hotline_seat(int argc, char **argv);
int cmd_hotline_handover(int argc, char **argv);
int cmd_hotline_status(int argc, char **argv);
/* Finds one of the caller's rooms by id, id prefix (4+ characters), exact name or @login;
 * writes its id (and name, if name is not NULL). Returns an exit code (message printed). */
int resolve_room(struct kzc *c, const char *want, char room_id[ROOM_ID_MAX], char *name,
                 size_t namelen);
/* talk.c: connects, authenticates and resolves ROOM (as resolve_room); on EXIT_OK the caller
 * closes *out. */
int cli_room_connect(const char *want, struct kzc **out, char room_id[ROOM_ID_MAX]);
/* talk.c: calls an op about one room, {"room": id, ...args} (args consumed, may be NULL), as
 * cli_call_once does (printed with --json; *reply_out, if not NULL, the caller's to delete). */
int cli_room_call(const char *want, const char *op, cJSON *args, cJSON **reply_out);

/* upload.c: `photo send ROOM FILE [...]` and `photo resume`; photo.c: `photo list ROOM [...]` and
 * `photo get ROOM POS [...]`. Entries of the command table; argv[0] is the subcommand. */
int cmd_photo_send(int argc, char **argv);
int cmd_photo_resume(int argc, char **argv);
int cmd_photo_list(int argc, char **argv);
int cmd_photo_get(int argc, char **argv);
/* devices.c: `devices [LOGIN]`, `device revoke ID`, `device approve ID`, `verify USER
 * [--yes]`, entries of the command table; argv[0] is the command's last word. */
int cmd_devices(int argc, char **argv);
int cmd_device_revoke(int argc, char **argv);
int cmd_device_approve(int argc, char **argv);
int cmd_verify_user(int argc, char **argv);
/* keystore.c: overwrites and removes this device's keys, room keys and staged uploads (logout
 * of a shared phone must leave nothing that could read the rooms' photos). */
void keystore_wipe(void);

/* timeline.c: what history and tail make of a room's events (photos opened or why not, 既読
 * on one's own messages, marking read what was shown, answering key requests). One timeline
 * per process. tl_begin binds it to a connection (c borrowed; views read on it are dropped by
 * the next tl_begin or tl_detach); mark_read false is --no-read. */
void tl_begin(struct kzc *c, const struct session *s, bool mark_read);
void tl_detach(void);
/* Marks what is pending, then frees everything (call before closing the connection). */
void tl_end(void);
/* room.list's reply: the rooms, their names for hints, markers and unread counts. */
void tl_set_rooms(const cJSON *room_list);
/* Whether this user sent the event. */
bool tl_is_mine(const cJSON *ev);
/* One line for an e2ee.photo event: caption, time, sender, GPS and the `photo get` command,
 * decrypted on this device, or why it cannot be (asking for its key once). */
void tl_print_photo(const cJSON *ev, const char *prefix);
/* An event was shown: it may be marked read, and our own messages' 既読 is followed. */
void tl_shown(const cJSON *ev);
/* tail: an encrypted event arrived live: keys are taken (photos waiting for them are shown
 * again) and other devices' key requests answered. */
void tl_follow(const cJSON *ev);
/* Whether a page of a room's events (oldest first; the history request's before/after, -1/0
 * when absent) leaves nothing unread and unshown before it; *missing gets how many unread lie
 * before it when known (else -1). */
bool tl_page_contiguous(const char *room_id, const cJSON *events, bool more, long long before,
                        long long after, long long *missing);
/* This user's read marker in the room, as last known. */
long long tl_marker(const char *room_id);
/* Prints where the unread messages begin that a page did not show. */
void tl_unread_hint(const char *room_id, long long missing);
/* What a command shows of a room from now: everything after `start` (-1: a page); contiguous:
 * nothing unread lies unshown before it. */
void tl_room_start(const char *room_id, long long start, bool contiguous);
/* tail of every room, from position start: lines say which room, and rooms with unread
 * messages from before are named (they are not marked read until those are read). */
void tl_tail_all(long long start);
/* Asks the server to mark each contiguous room read up to what was shown. An exit code. */
int tl_mark_flush(void);
/* A shared room's 既読 by server on the current line: "  既読 松山市 3/4 · 県本部 2/2"; groups
 * as a view's read_by_server or a push's counts_by_server entry has them. */
void tl_print_groups(const cJSON *groups);
/* tail: a `read` event: our own shown messages' new 既読, kept for one compact line. */
void tl_counts(const cJSON *read_ev);
/* Prints the pending 既読 lines (one per room). */
void tl_counts_flush(void);
/* tail: how long to wait for the next event before tl_tick(true) has work to do. */
int tl_wait_ms(void);
/* tail: flushes 既読 lines and read marks when idle, or at least once a second. */
int tl_tick(bool idle);
/* This user's photos still uploading to the room from this device, one line each. */
void tl_pending_uploads(const char *room_id, const char *label);

#endif
