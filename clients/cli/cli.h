/* cli.h - what the kizuna command's files share. */
#ifndef KIZUNA_CLI_H
#define KIZUNA_CLI_H

#include <stdbool.h>

#include "kzclient.h"

enum { EXIT_OK = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

#define DEFAULT_SERVER "http://127.0.0.1:8080"
#define TIMEOUT_MS     30000
#define ROOM_ID_MAX    64

struct session {
    char server[512];
    char token[128];
    char login[128];
    char time_zone[64]; /* the server's time zone as a POSIX rule ("JST-9"), as it last said */
};

extern bool json_out;
/* Set by commands that retry on their own (tail): no message per failed attempt. */
extern bool quiet_unreachable;

/* Prints msg (if any) and the usage text; returns EXIT_USAGE. */
int usage_error(const char *msg);
bool session_load(struct session *s);
/* --server, else KIZUNA_SERVER, else NULL. */
const char *server_override(void);
/* --server, else KIZUNA_SERVER, else the session's server, else the default. */
const char *server_url(const struct session *s);
/* Reports an unreachable server (text or JSON); returns EXIT_UNREACHABLE. */
int unreachable(const char *msg);
/* EXIT_OK for {"ok":true}; otherwise prints the refusal and returns EXIT_REFUSED. */
int check_reply(const cJSON *reply);
/* Prints a reply as one JSON line, without its id. */
void print_json(const cJSON *reply);
/* Calls an op (args consumed); on EXIT_OK *reply is the caller's to delete. */
int call(struct kzc *c, const char *op, cJSON *args, cJSON **reply);
/* If the server closed c because it ended the session (revoked, account disabled or expired,
 * a shared device left idle, ...), prints what happened and what to do, and returns
 * EXIT_REFUSED; otherwise EXIT_OK (not closed, or closed for another reason: reconnect). */
int cli_session_ended(const struct kzc *c);
/* Connects with the saved session, calls one op (args consumed), prints the reply with --json;
 * on EXIT_OK *reply_out (if not NULL) is the caller's to delete. */
int call_once(const char *op, cJSON *args, cJSON **reply_out);
/* The same on a connection already open, which it closes. */
int call_and_close(struct kzc *c, const char *op, cJSON *args, cJSON **reply_out);
/* Connects and authenticates with the saved session. */
int connect_authed(struct kzc **out, struct session *s);
/* A string member of o (or of o.path1 when path2 is given); "" if absent. */
const char *str(const cJSON *o, const char *path1, const char *path2);

/* The config directory: KIZUNA_CONFIG_DIR, else ~/.config/kizuna (written into out). */
void config_dir(char *out, size_t n);
/* mkdir -p with mode 0700 for every directory it makes. 0 or -1 (errno set). */
int mkdirs(const char *path);

/* Reads a secret from the environment variable, else from a prompt on the terminal. */
int get_secret(const char *env, const char *prompt, char *buf, size_t n);
/* "kizuna CLI on HOST", the default device label of a session. */
void device_label(char *out, size_t n);
/* Saves the session a login or join reply carries and reports it; consumes reply. */
int login_finish(const char *url, const char *login, cJSON *reply);
/* A time in ms since the epoch as local "YYYY-MM-DD HH:MM". */
void format_time(double ms, char *out, size_t n);
/* Parses a time given on the command line: "YYYY-MM-DD" (local midnight at its start),
 * "YYYY-MM-DD HH:MM" or "YYYY-MM-DDTHH:MM" (local), or a span from now: "90m", "72h", "7d".
 * Local time, in this file and every other, is the server's time zone (its time_zone setting,
 * learnt at login and at every connection), never the TZ of the machine the CLI runs on.
 * Returns ms since the epoch, or -1 if the text is none of these. */
long long parse_when(const char *text);

/* devices.c: makes and registers this device's keys right after a login, join or password
 * change, so that photos sent from then on are already encrypted to it (otherwise the first
 * ones wait for a key request to be answered). */
void device_enroll(void);

/* Prints s padded with spaces to `cols` terminal columns (CJK characters take two). */
void print_padded(const char *s, int cols);

/* invite.c: `admin invite create|list|revoke ...` (argv[0] is the subcommand) and `join`. */
int cmd_invite(int argc, char **argv);
int cmd_join(int argc, char **argv);
/* Prints text as a QR code with Unicode half blocks (light modules drawn, for dark terminals). */
void print_qr(const char *text);

/* notice.c: `notice ...`; argv[0] is "notice". */
int cmd_notice(int argc, char **argv);
/* talk.c: the talk commands; argv[0] is the command name. */
int cmd_talk(int argc, char **argv, bool *handled);
/* Finds one of the caller's rooms by id, id prefix (4+ characters), exact name or @login;
 * writes its id (and name, if name is not NULL). Returns an exit code (message printed). */
int resolve_room(struct kzc *c, const char *want, char room_id[ROOM_ID_MAX], char *name,
                 size_t namelen);

/* photo.c: `photo send|resume|list|get ...`; argv[0] is "photo". */
int cmd_photo(int argc, char **argv);
/* devices.c: `devices [LOGIN]`, `device revoke ID`, `verify USER`; argv[0] is the command. */
int cmd_devices(int argc, char **argv, bool *handled);
/* keystore.c: overwrites and removes this device's keys, room keys and staged uploads (logout
 * of a shared phone must leave nothing that could read the rooms' photos). */
void keystore_wipe(void);

#endif
