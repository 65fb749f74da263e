/* test_authz.c - the authorization matrix: every op of the server's command table, called by
 * every kind of caller against the real kizunad, each with the exact outcome it must get.
 *
 * Callers: anonymous (a connection that never logged in); a user disabled after logging in; a
 * staff member of the room and recipient of the notice; the room's admin, who is also the
 * notice's author (staff); a staff non-member (another department, not in the room); hq and
 * admin, neither in the room nor in the notice's audience; the session of a device an admin
 * revoked; the session of a device revoked from that same session; an account made with an
 * invitation whose account_expires_at has passed; a user whose password an admin reset (a
 * one-time password not yet changed).
 *
 * Live callers run each request on a fresh WebSocket bound to their one session (auth with its
 * token), so what an op does to the connection (login, join, logout) cannot leak into the next
 * cell. Dead callers can present their session only as a token, so they run over HTTP with it
 * as the bearer (the status is checked too). Anonymous requests are then sent once more over
 * HTTP, expecting 401.
 *
 * Every request is valid for its op (real room, notice, session, device and invitation ids;
 * ops that change state get fresh fixtures per cell), and every row has a caller who succeeds,
 * so a refusal is about who asks. Expectations come from docs/protocol.md ("Access:" of each
 * op) and, where it is vague, from the server's behaviour. Replies to callers outside the room
 * and the notice's audience must not show the room, its messages or the notice. A wrong cell
 * fails the test; the whole observed matrix is printed on stderr. An op in the command table
 * without a row here fails the_matrix_covers_every_op.
 *
 * The upload and blob endpoints (POST, HEAD, PATCH and DELETE of /api/v1/uploads[/ID], GET and
 * HEAD of /api/v1/blobs/ID) go through the same gate and join the matrix as http_rows: every
 * caller sends each over HTTP with its token as the bearer (anonymous with none), and both the
 * status and the JSON error code must be exact (a HEAD reply has no body: its status only).
 * Uploads are the caller's own (a fresh one per cell for live callers; made while it still
 * worked for the dead, and before the reset for the one-time password) or the victim's; blobs
 * are the caller's own (not in any room), the victim's, and the room's: uploaded by the member
 * and sent in the room as a photo. A blob readable by a caller must come back whole; a caller
 * who may not read the room's blob must not learn its length from POST. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fed.h"
#include "harness.h"
#include "media.h"
#include "server.h"

enum who {
    ANON,
    DISABLED,
    MEMBER,
    OWNER,
    OUTSIDER,
    HQ,
    ADMIN,
    REVOKED,
    SELF_REVOKED,
    EXPIRED,
    ONE_TIME,
    NWHO
};
static const char *const who_name[NWHO] = {"anonymous",
                                           "disabled",
                                           "member",
                                           "room admin/author",
                                           "non-member",
                                           "hq",
                                           "admin",
                                           "revoked device",
                                           "self-revoked device",
                                           "expired",
                                           "one-time password"};
static const char who_short[NWHO][6] = {"anon", "dis", "mem", "own", "non", "hq",
                                        "adm",  "rev", "srv", "exp", "otp"};

static bool is_live(enum who w)
{
    return w == MEMBER || w == OWNER || w == OUTSIDER || w == HQ || w == ADMIN || w == ONE_TIME;
}

static bool is_dead(enum who w)
{
    return w == DISABLED || w == REVOKED || w == SELF_REVOKED || w == EXPIRED;
}

/* A row: an op, its fields (JSON members without braces; $NAME placeholders are filled per
 * cell, see resolve()) and one expected outcome per caller, in enum order:
 * o ok, U unauthorized, F forbidden, N not_found, B bad_request, C conflict. */
#define FRESH_SESSION 1u /* live callers log in anew for this cell instead of reusing theirs */
struct row {
    const char *op;
    const char *args;
    const char *expect;
    unsigned flags;
};

#define DEPT_X        "総務課" /* the member's, owner's and dead callers' department */
#define DEPT_Y        "建設課" /* the non-member's */
#define GROUP         "消防団" /* the member's and the victim's group */
#define SECRET_MSG    "KZLEAKMSG"
#define SECRET_NOTICE "KZLEAKNOTICE"

/* As protocol.md says: "srv", because device.revoke ends the device's session whoever asks,
 * and "otp", because before a one-time password is changed only login, auth, logout, whoami,
 * passwd and the three ops that cut off a lost phone (session.list, session.revoke,
 * device.revoke) are allowed. */
/* clang-format off */
/* A blob id no event names: blob.status answers "unknown" for it to every member. */
#define ZERO_BLOB "0000000000000000000000000000000000000000000000000000000000000000"
static const struct row rows[] = {
    /*                                                                      anon dis mem own non hq adm rev srv exp otp */
    {"login", "\"login\":\"$SELF\",\"password\":\"$PW\"",                   "o U o o o o o U U U o", 0},
    {"auth", "\"token\":\"$TOKEN\"",                                        "o U o o o o o U U U o", 0},
    {"whoami", "",                                                          "U U o o o o o U U U o", 0},
    {"passwd", "\"old_password\":\"$PW\",\"new_password\":\"$PW\"",         "U U o o o o o U U U o", 0},
    {"user.add", "\"login\":\"$FRESH_LOGIN\",\"password\":\"fresh-password-1\"",
                                                                            "U U F F F F o U U U F", 0},
    {"user.list", "",                                                       "U U F F F F o U U U F", 0},
    {"user.disable", "\"login\":\"$FRESH_USER\"",                           "U U F F F F o U U U F", 0},
    {"user.enable", "\"login\":\"$FRESH_USER\"",                            "U U F F F F o U U U F", 0},
    {"user.reset_password", "\"login\":\"$FRESH_USER\"",                    "U U F F F F o U U U F", 0},
    {"user.import", "\"csv_base64\":\"$CSV\",\"dry_run\":true",             "U U F F F F o U U U F", 0},
    {"user.update", "\"login\":\"$FRESH_USER\",\"name\":\"更新\"",          "U U F F F F o U U U F", 0},
    {"session.list", "",                                                    "U U o o o o o U U U o", 0},
    {"session.list", "\"login\":\"victim\"",                                "U U F F F F o U U U F", 0},
    {"session.revoke", "\"session\":$OWN_SESSION",                          "U U o o o o o U U U o", 0},
    {"session.revoke", "\"session\":$VICTIM_SESSION",                       "U U N N N N o U U U N", 0},
    {"audit.list", "\"limit\":5",                                           "U U F F F F o U U U F", 0},
    {"invite.create", "\"note\":\"authz\"",                                 "U U F F F F o U U U F", 0},
    {"invite.list", "",                                                     "U U F F F F o U U U F", 0},
    {"invite.revoke", "\"invite\":$FRESH_INVITE",                           "U U F F F F o U U U F", 0},
    /* A fresh server id, key and matching fingerprint per cell; removal of a fresh peer. */
    {"peer.add", "$PEER_FIELDS",                                            "U U F F F F o U U U F", 0},
    {"peer.list", "",                                                       "U U F F F F o U U U F", 0},
    {"admin.status", "",                                                    "U U F F F F o U U U F", 0},
    {"peer.remove", "\"server\":\"$FRESH_PEER\"",                           "U U F F F F o U U U F", 0},
    /* An anyone op: the transport refuses a dead bearer token, but the expired account's
     * session still exists (no sweep has run) and join does not look at it. */
    {"join", "\"code\":\"$FRESH_CODE\",\"login\":\"$FRESH_LOGIN\",\"password\":\"joiner-password-1\"",
                                                                            "o U o o o o o U U o o", 0},
    {"device.register", "$DEVKEYS",                                         "U U o o o o o U U U F", 0},
    {"device.list", "\"login\":\"mem\"",                                    "U U o o o o o U U U F", 0},
    {"device.revoke", "\"device\":\"$OWN_DEVICE\"",                         "U U o o o o o U U U o", 0},
    {"device.revoke", "\"device\":\"$VICTIM_DEVICE\"",                      "U U N N N N o U U U N", 0},
    /* A device whose session ended without it (here: the owner changed the password on
     * another session; also user.reset_password, user.disable, expiry) can still be revoked. */
    {"device.revoke", "\"device\":\"$ORPHAN_DEVICE\"",                      "U U N N N N o U U U N", 0},
    /* A new start of the caller's own signed device list, naming a device of its own. */
    {"device.sign", "$DEVLIST",                                             "U U o o o o o U U U F", 0},
    {"room.devices", "\"room\":\"$ROOM\"",                                  "U U o o N N N U U U F", 0},
    {"blob.status", "\"room\":\"$ROOM\",\"blobs\":[\"" ZERO_BLOB "\"]",        "U U o o N N N U U U F", 0},
    {"e2ee.post", "$E2EE",                                                  "U U o o N N N U U U F", 0},
    /* Signed with the member's device: no one else may speak for it. */
    {"e2ee.post", "$E2EE_MEM",                                              "U U o F N N N U U U F", 0},
    {"dept.list", "",                                                       "U U o o o o o U U U F", 0},
    {"group.list", "",                                                      "U U o o o o o U U U F", 0},
    {"room.create", "\"name\":\"新しい部屋\"",                              "U U o o o o o U U U F", 0},
    {"room.direct", "\"user\":\"probe\"",                                   "U U o o o o o U U U F", 0},
    {"room.update", "\"room\":\"$ROOM\",\"topic\":\"台風10号\"",            "U U F o N N N U U U F", 0},
    {"room.invite", "\"room\":\"$ROOM\",\"user\":\"$FRESH_USER\"",          "U U F o N N N U U U F", 0},
    {"room.remove", "\"room\":\"$ROOM\",\"user\":\"$FRESH_MEMBER\"",        "U U F o N N N U U U F", 0},
    {"room.leave", "\"room\":\"$FRESH_ROOM\"",                              "U U o o N N N U U U F", 0},
    {"room.admin", "\"room\":\"$ROOM\",\"user\":\"mem\",\"admin\":false",   "U U F o N N N U U U F", 0},
    /* Hotlines: created and listed by admins; roles by the hotline's room admins. */
    {"hotline.create", "\"name\":\"h\",\"roles\":[\"$FRESH_PEER=primary\"]",     "U U F F F F o U U U F", 0},
    {"hotline.seat", "\"room\":\"$HOTLINE\",\"seat\":\"当直\"",                  "U U F F F o o U U U F", 0},
    {"room.authority", "\"room\":\"$HOTLINE\",\"server\":\"$HOTLINE_PEER\"",       "U U N N N N o U U U F", 0},
    {"hotline.list", "\"csv\":false",                                         "U U F F F F o U U U F", 0},
    {"hotline.role", "\"room\":\"$HOTLINE\",\"server\":\"$HOTLINE_PEER\",\"role\":\"primary\"", "U U N N N N o U U U F", 0},
    /* Admitting a server: a room admin of a shared room, or an admin, at its authority. */
    {"room.server", "\"room\":\"$SHARED_ROOM\",\"server\":\"$FRESH_PEER\"",   "U U F o N N o U U U F", 0},
    {"room.members", "\"room\":\"$ROOM\"",                                  "U U o o N N N U U U F", 0},
    /* Where a room lives and who acknowledged a message: its members, and any admin. */
    {"room.servers", "\"room\":\"$ROOM\"",                                  "U U o o N N o U U U F", 0},
    {"room.servers", "\"room\":\"$ROOM\",\"pos\":$MSG",                     "U U o o N N o U U U F", 0},
    {"room.list", "",                                                       "U U o o o o o U U U F", 0},
    {"room.list", "\"archived\":true",                                      "U U o o o o o U U U F", 0},
    {"room.watch", "\"room\":\"$ROOM\",\"watch\":true",                       "U U o o N N N U U U F", 0},
    /* Unarchiving a room in use changes nothing, so the room stays usable for later rows. */
    {"room.archive", "\"room\":\"$ROOM\",\"archived\":false",            "U U F o N N N U U U F", 0},
    {"room.export", "\"room\":\"$ROOM\"",                                  "U U o o N N N U U U F", 0},
    {"record.export", "\"room\":\"$ROOM\",\"format\":\"csv\"",               "U U o o N N N U U U F", 0},
    {"record.reviewer", "\"room\":\"$ROOM\",\"user\":\"mem\"",                  "U U F F F F o U U U F", 0},
    {"record.review.create", "\"room\":\"$ROOM\"",                            "U U o F N N F U U U F", 0},
    {"record.review.show", "\"review\":$REVIEW",                              "U U o N N N o U U U F", 0},
    {"record.review.mark", "\"review\":$FRESH_REVIEW,\"events\":[\"$PHONE_EVENT\"]", "U U o N N N F U U U F", 0},
    {"record.review.redact", "\"review\":$FRESH_REVIEW,\"event\":\"$PHONE_EVENT\",\"start\":0,\"end\":3",
                                                                            "U U o N N N F U U U F", 0},
    {"record.review.decide", "\"review\":$FRESH_REVIEW,\"redaction\":$LAST_REDACTION,\"accept\":true",
                                                                            "U U o N N N F U U U F", 0},
    {"record.review.approve", "\"review\":$READY_REVIEW",                     "U U F N N N o U U U F", 0},
    {"record.publish", "\"review\":$REVIEW,\"format\":\"csv\"",                  "U U o o N N o U U U F", 0},
    {"room.hold", "\"room\":\"$ROOM\"",                                        "U U F F F F o U U U F", 0},
    {"msg.send", "\"room\":\"$ROOM\",\"body\":\"了解\"",                    "U U o o N N N U U U F", 0},
    /* The message is the member's: the room admin is not its author, but may remove it. */
    {"msg.edit", "\"room\":\"$ROOM\",\"pos\":$FRESH_MSG,\"body\":\"訂正\"", "U U o F N N N U U U F", 0},
    {"msg.delete", "\"room\":\"$ROOM\",\"pos\":$FRESH_MSG",                 "U U o o N N N U U U F", 0},
    {"history", "\"room\":\"$ROOM\"",                                       "U U o o N N N U U U F", 0},
    {"sync", "\"since\":0",                                                 "U U o o o o o U U U F", 0},
    {"read", "\"room\":\"$ROOM\"",                                          "U U o o N N N U U U F", 0},
    {"readers", "\"room\":\"$ROOM\",\"pos\":$MSG",                          "U U o o N N N U U U F", 0},
    {"search", "\"query\":\"" SECRET_MSG "\"",                              "U U o o o o o U U U F", 0},
    {"search", "\"query\":\"冠水\",\"room\":\"$ROOM\"",                     "U U o o N N N U U U F", 0},
    {"notice.post", "\"title\":\"t\",\"body\":\"b\",\"to\":[\"dept:" DEPT_X "\"]",
                                                                            "U U o o F o o U U U F", 0},
    {"notice.post", "\"title\":\"t\",\"body\":\"b\",\"to\":[\"all\"]",      "U U F F F o o U U U F", 0},
    {"notice.post", "\"title\":\"t\",\"body\":\"b\",\"to\":[\"group:" GROUP "\"]",
                                                                            "U U o F F o o U U U F", 0},
    {"notice.post", "\"title\":\"t\",\"body\":\"b\",\"to\":[\"user:victim\"]",
                                                                            "U U F F F o o U U U F", 0},
    /* Announced in the room: only its members may. */
    {"notice.post", "\"title\":\"t\",\"body\":\"b\",\"to\":[\"dept:" DEPT_X "\"],"
                    "\"announce_room\":\"$ROOM\"",                              "U U o o F N N U U U F", 0},
    {"notice.edit", "\"notice\":$NOTICE,\"body\":\"訂正\"",                 "U U F o N N o U U U F", 0},
    {"notice.withdraw", "\"notice\":$FRESH_NOTICE",                         "U U F o N N o U U U F", 0},
    /* The token is the credential (anonymous callers answer with it); a dead session presented
     * with it is still refused, as it is for login. */
    {"notice.answer_link", "\"token\":\"$FRESH_ANSWER_TOKEN\",\"choice\":1",   "o U o o o o o U U o o", 0},
    {"mail.status", "",                                                     "U U F F F F o U U U F", 0},
    {"webhook.status", "",                                                  "U U F F F F o U U U F", 0},
    /* Web Push: each caller subscribes an endpoint of its own, then removes it (rows run in order). */
    {"push.vapid_key", "",                                                  "U U o o o o o U U U F", 0},
    {"push.subscribe", "\"endpoint\":\"https://push.example.net/s/$SELF\",\"p256dh\":\"BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4\",\"auth\":\"BTBZMqHH6r4Tts7J_aSIgg\"",
                                                                            "U U o o o o o U U U F", 0},
    {"push.quiet", "\"from\":\"22:00\",\"to\":\"06:00\"",                      "U U o o o o o U U U F", 0},
    {"push.unsubscribe", "\"endpoint\":\"https://push.example.net/s/$SELF\"", "U U o o o o o U U U F", 0},
    {"notify.prefs", "\"push\":[\"notice\",\"rollcall\"],\"previews\":false",         "U U o o o o o U U U F", 0},
    {"notice.list", "",                                                     "U U o o o o o U U U F", 0},
    {"notice.show", "\"notice\":$NOTICE",                                   "U U o o N N o U U U F", 0},
    {"notice.ack", "\"notice\":$NOTICE",                                    "U U o F N N F U U U F", 0},
    {"notice.respond", "\"notice\":$NOTICE,\"choice\":\"1\"",               "U U o F N N F U U U F", 0},
    {"notice.report", "\"notice\":$NOTICE",                                 "U U F o N N o U U U F", 0},
    {"notice.remind", "\"notice\":$NOTICE",                                 "U U F o N N o U U U F", 0},
    /* Alerts from JMA's telegrams: hq and admins; drills by hand and the rules, admins. */
    {"alert.list", "",                                                      "U U F F F o o U U U F", 0},
    {"alert.show", "\"alert\":$ALERT",                                      "U U F F F o o U U U F", 0},
    {"alert.send_now", "\"alert\":$FRESH_ALERT",                            "U U F F F o o U U U F", 0},
    {"alert.cancel", "\"alert\":$FRESH_ALERT",                              "U U F F F o o U U U F", 0},
    {"alert.rules", "",                                                     "U U F F F o o U U U F", 0},
    {"alert.drill", "",                                                     "U U F F F F o U U U F", 0},
    {"alert.rules.set", "\"delay_s\":180",                                  "U U F F F F o U U U F", 0},
    /* Last: a session that should be dead but is not ends here. */
    {"logout", "",                                                          "U U o o o o o U U U o", FRESH_SESSION},
};
/* clang-format on */
#define NROWS (sizeof rows / sizeof rows[0])

/* A row of the upload and blob endpoints: method, path ($NAME placeholders as in rows[]), what
 * the request carries, the status of success and one expected outcome per caller, as rows[]. */
enum hbody {
    H_NONE,      /* no body */
    H_CREATE,    /* Upload-Length and Upload-Metadata of a blob nobody has */
    H_CREATE_RB, /* the same for the room's blob */
    H_PATCH,     /* the first half of the upload's bytes at offset 0, checksummed */
};
struct http_row {
    const char *method;
    const char *path;
    enum hbody body;
    int ok_status;
    const char *expect;
};

/* The gate for uploads and blobs admits any live session of an active user without a pending
 * one-time password (docs/protocol.md "Uploads and blobs"); then someone else's upload, and a
 * blob one neither uploaded nor may read in a room, is not_found, as if it did not exist. The
 * victim's upload and blob are for no caller here: the victim's own requests at the end show
 * that they exist and that nothing changed them. */
/* clang-format off */
static const struct http_row http_rows[] = {
    /*                                                                anon dis mem own non hq adm rev srv exp otp */
    {"POST",   "/api/v1/uploads",                  H_CREATE,    201, "U U o o o o o U U U F"},
    /* Born complete for its readers; for the rest, exactly as a blob nobody has. */
    {"POST",   "/api/v1/uploads",                  H_CREATE_RB, 201, "U U o o o o o U U U F"},
    {"HEAD",   "/api/v1/uploads/$OWN_UPLOAD",      H_NONE,      200, "U U o o o o o U U U F"},
    {"HEAD",   "/api/v1/uploads/$VICTIM_UPLOAD",   H_NONE,      200, "U U N N N N N U U U F"},
    {"PATCH",  "/api/v1/uploads/$OWN_UPLOAD",      H_PATCH,     204, "U U o o o o o U U U F"},
    {"PATCH",  "/api/v1/uploads/$VICTIM_UPLOAD",   H_PATCH,     204, "U U N N N N N U U U F"},
    {"DELETE", "/api/v1/uploads/$OWN_UPLOAD",      H_NONE,      204, "U U o o o o o U U U F"},
    {"DELETE", "/api/v1/uploads/$VICTIM_UPLOAD",   H_NONE,      204, "U U N N N N N U U U F"},
    {"GET",    "/api/v1/blobs/$ROOM_BLOB",         H_NONE,      200, "U U o o N N N U U U F"},
    {"HEAD",   "/api/v1/blobs/$ROOM_BLOB",         H_NONE,      200, "U U o o N N N U U U F"},
    {"GET",    "/api/v1/blobs/$OWN_BLOB",          H_NONE,      200, "U U o o o o o U U U F"},
    {"HEAD",   "/api/v1/blobs/$OWN_BLOB",          H_NONE,      200, "U U o o o o o U U U F"},
    {"GET",    "/api/v1/blobs/$VICTIM_BLOB",       H_NONE,      200, "U U N N N N N U U U F"},
};
/* clang-format on */
#define NHROWS (sizeof http_rows / sizeof http_rows[0])

static const char *code_of_letter(char c)
{
    switch (c) {
    case 'o':
        return "ok";
    case 'U':
        return "unauthorized";
    case 'F':
        return "forbidden";
    case 'N':
        return "not_found";
    case 'B':
        return "bad_request";
    case 'C':
        return "conflict";
    default:
        return NULL;
    }
}

static char letter_of_code(const char *code)
{
    static const char *const codes[] = {"ok",           "unauthorized", "forbidden",
                                        "not_found",    "bad_request",  "conflict",
                                        "rate_limited", "too_large",    "internal"};
    static const char letters[] = "oUFNBCRTI";
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(code, codes[i]) == 0)
            return letters[i];
    return '?';
}

static int http_status_of(const char *code)
{
    static const struct {
        const char *code;
        int status;
    } map[] = {{"ok", 200},        {"bad_request", 400}, {"unauthorized", 401},
               {"forbidden", 403}, {"not_found", 404},   {"conflict", 409}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(code, map[i].code) == 0)
            return map[i].status;
    return -1;
}

/* Parses a row's expectations into one letter per caller; false if malformed. */
static bool parse_expect(const char *s, char out[NWHO])
{
    int n = 0;
    for (; *s; s++) {
        if (*s == ' ')
            continue;
        if (n == NWHO || !code_of_letter(*s))
            return false;
        out[n++] = *s;
    }
    return n == NWHO;
}

/* ---- the server and its fixtures ---- */

static struct kzd d;

struct dev {
    struct media_device_keys k;
    char id[32];
};

struct caller {
    char login[32];
    char pw[64];
    char token[64];
    struct dev dev; /* registered in the caller's session (for e2ee.post) */
    bool has_dev;
    char upload[48]; /* an unfinished upload of its own (see $OWN_UPLOAD) */
    char blob[65];   /* a finished blob of its own, in no room */
};
static struct caller who[NWHO];
static struct caller victim;     /* whose sessions and devices others try to end */
static char room[64];            /* the owner's room: member and the dead callers are in it */
static long long notice_id;      /* the owner's notice to DEPT_X, asking for an ack and a choice */
static char phone_event[64];     /* the member's message with a phone number, in the room */
static long long review_id;      /* an approved review of the room's record, by the member */
static long long last_redaction; /* the first proposal of the last $FRESH_REVIEW */
static long long msg_pos;        /* the member's message in the room */
static char room_blob[65];       /* uploaded by the member, sent in the room as a photo */
static struct ws adm, own, mem;  /* fixture connections on the admin's, owner's, member's session */
static int fresh;
/* The dispatched account expires this long after the fixtures begin; its column runs last, so
 * the rest of the matrix runs meanwhile. */
#define EXPIRY_DELAY_MS 4000
static long long expires_at;

static void setup(void)
{
    cr_assert_geq(sodium_init(), 0);
    /* No expiry sweep during the test: the expired account's session must be refused for
     * having expired, from that moment, not because a sweep ended it. */
    /* notice.remind once per caller: no minimum interval between reminders (test_push and
     * test_mail check it). */
    kzd_setup_with(&d, "\"housekeeping_interval_s\":3600,\"jma_author\":\"admin\","
                       "\"notice_remind_min_interval_s\":0");
}

static void teardown(void)
{
    ws_close_fd(&adm);
    ws_close_fd(&own);
    ws_close_fd(&mem);
    kzd_teardown(&d);
}

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const cJSON *jget(const cJSON *o, const char *path)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save, *k = strtok_r(buf, ".", &save); k && o; k = strtok_r(NULL, ".", &save))
        o = cJSON_GetObjectItemCaseSensitive(o, k);
    return o;
}

static long long jint(const cJSON *o, const char *path)
{
    const cJSON *v = jget(o, path);
    cr_assert(cJSON_IsNumber(v), "no number at %s", path);
    return (long long)v->valuedouble;
}

static void jstr(const cJSON *o, const char *path, char *out, size_t n)
{
    const cJSON *v = jget(o, path);
    cr_assert(cJSON_IsString(v), "no string at %s", path);
    snprintf(out, n, "%s", v->valuestring);
}

/* vprintf-like (format 2, arguments in ap): the formats are checked where callf and must are
 * called. */
static cJSON *callv(struct ws *w, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static cJSON *callv(struct ws *w, const char *fmt, va_list ap)
{
    static long long next_id = 1;
    char body[16384], req[16448];
    vsnprintf(body, sizeof body, fmt, ap);
    snprintf(req, sizeof req, "{\"id\":%lld,%s}", next_id++, body);
    return ws_call(w, req);
}

static cJSON *callf(struct ws *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static cJSON *callf(struct ws *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cJSON *r = callv(w, fmt, ap);
    va_end(ap);
    return r;
}

/* A fixture request that must succeed; the caller deletes the reply. */
static cJSON *must(struct ws *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static cJSON *must(struct ws *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cJSON *r = callv(w, fmt, ap);
    va_end(ap);
    if (strcmp(reply_code(r), "ok") != 0) {
        char *text = r ? cJSON_PrintUnformatted(r) : NULL;
        cr_assert_fail("fixture request failed: %s -> %s", fmt, text ? text : "(no reply)");
    }
    return r;
}

/* Logs in on a new connection; returns the session id (token copied if tok). */
static long long login_on(struct ws *w, const char *login, const char *pw, char *tok)
{
    cr_assert(ws_open(w, d.port));
    cJSON *r = must(w, "\"op\":\"login\",\"login\":\"%s\",\"password\":\"%s\",\"device\":\"authz\"",
                    login, pw);
    if (tok)
        jstr(r, "token", tok, 64);
    long long id = jint(r, "session.id");
    cJSON_Delete(r);
    return id;
}

static void auth_on(struct ws *w, const struct caller *c)
{
    cr_assert(ws_open(w, d.port));
    cJSON_Delete(must(w, "\"op\":\"auth\",\"token\":\"%s\"", c->token));
}

static void b64url(const uint8_t *bin, size_t n, char *out, size_t cap)
{
    sodium_bin2base64(out, cap, bin, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* New device keys for login, as device.register fields. */
static void dev_fields(const char *login, struct dev *v, char *out, size_t cap)
{
    cr_assert_eq(media_device_keys_new(&v->k), MEDIA_OK);
    uint8_t h[16], sig[64];
    crypto_generichash(h, sizeof h, v->k.sign_pk, 32, NULL, 0);
    b64url(h, sizeof h, v->id, sizeof v->id);
    char qualified[200];
    kzd_qualify(&d, login, qualified, sizeof qualified); /* login@server (issue 19) */
    cr_assert_eq(media_devkey_sign(qualified, v->id, &v->k, sig), MEDIA_OK);
    char spk[64], bpk[64], s[100];
    b64url(v->k.sign_pk, 32, spk, sizeof spk);
    b64url(v->k.box_pk, 32, bpk, sizeof bpk);
    b64url(sig, 64, s, sizeof s);
    snprintf(out, cap, "\"sign_pk\":\"%s\",\"box_pk\":\"%s\",\"sig\":\"%s\"", spk, bpk, s);
}

static void dev_register(struct ws *w, const char *login, struct dev *v)
{
    char f[512];
    dev_fields(login, v, f, sizeof f);
    cJSON_Delete(must(w, "\"op\":\"device.register\",%s", f));
}

/* e2ee.post fields: a key request in the room, signed by device v. */
static void e2ee_fields(const struct dev *v, char *out, size_t cap)
{
    static const char type[] = "e2ee.key_request", data[] = "{}";
    size_t n = strlen(room) + 1 + sizeof type + strlen(data);
    unsigned char msg[256], *p = msg;
    cr_assert_lt(n, sizeof msg);
    p = (unsigned char *)stpcpy((char *)p, room) + 1;
    p = (unsigned char *)stpcpy((char *)p, type) + 1;
    memcpy(p, data, strlen(data));
    uint8_t sig[64];
    cr_assert_eq(media_sign("kizuna/e2ee/v1", msg, n, v->k.sign_sk, sig), MEDIA_OK);
    char s[100];
    b64url(sig, 64, s, sizeof s);
    snprintf(out, cap,
             "\"room\":\"%s\",\"type\":\"%s\",\"device\":\"%s\",\"data\":\"{}\",\"sig\":\"%s\"",
             room, type, v->id, s);
}

/* ---- uploads and blobs over HTTP ---- */

#define UPLOAD_LEN 128 /* every upload a cell makes; cells never finish one */
#define BLOB_LEN   100 /* every finished blob */

static char tus_resp[16384]; /* the last reply, headers and body */
static size_t tus_resp_len;

/* One request with token as the bearer (NULL: none) and body (NULL: none, and no
 * Content-Length); the status. */
static int tus(const char *method, const char *path, const char *token, const char *headers,
               const void *body, size_t len)
{
    char h[1024] = "";
    if (token)
        snprintf(h, sizeof h, "Authorization: Bearer %s\r\n", token);
    snprintf(h + strlen(h), sizeof h - strlen(h), "Tus-Resumable: 1.0.0\r\n%s",
             headers ? headers : "");
    return http_raw(d.port, method, path, h, body, len, len, tus_resp, sizeof tus_resp,
                    &tus_resp_len);
}

static void hex_of(const void *data, size_t len, char hex[65])
{
    uint8_t h[32];
    crypto_generichash(h, sizeof h, data, len, NULL, 0);
    sodium_bin2hex(hex, 65, h, sizeof h);
}

/* POST /api/v1/uploads for blob hex of length bytes. */
static int tus_create(const char *token, const char *hex, size_t length)
{
    char md[128], headers[256];
    sodium_bin2base64(md, sizeof md, (const unsigned char *)hex, 64,
                      sodium_base64_VARIANT_ORIGINAL);
    snprintf(headers, sizeof headers, "Upload-Length: %zu\r\nUpload-Metadata: blob %s\r\n", length,
             md);
    return tus("POST", "/api/v1/uploads", token, headers, "", 0);
}

/* PATCH with the checksum of its body. */
static int tus_patch(const char *path, const char *token, size_t offset, const void *body,
                     size_t len)
{
    uint8_t h[32];
    char sum[64], headers[256];
    crypto_generichash(h, sizeof h, body, len, NULL, 0);
    sodium_bin2base64(sum, sizeof sum, h, sizeof h, sodium_base64_VARIANT_ORIGINAL);
    snprintf(headers, sizeof headers,
             "Upload-Offset: %zu\r\nUpload-Checksum: blake2b %s\r\n"
             "Content-Type: application/offset+octet-stream\r\n",
             offset, sum);
    return tus("PATCH", path, token, headers, body, len);
}

/* A new upload of UPLOAD_LEN bytes of a blob nobody has, by token's session; its id. */
static void upload_new(const char *token, char *id, size_t n)
{
    uint8_t rnd[32];
    char hex[65], location[128];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
    cr_assert_eq(tus_create(token, hex, UPLOAD_LEN), 201, "%s", tus_resp);
    cr_assert(http_header(tus_resp, "Location", location, sizeof location), "%s", tus_resp);
    cr_assert(strncmp(location, "/api/v1/uploads/", 16) == 0, "%s", location);
    snprintf(id, n, "%s", location + 16);
}

/* A finished blob of BLOB_LEN random bytes, uploaded by token's session; its id. */
static void blob_new(const char *token, char hex[65])
{
    uint8_t bytes[BLOB_LEN];
    char location[128];
    randombytes_buf(bytes, sizeof bytes);
    hex_of(bytes, sizeof bytes, hex);
    cr_assert_eq(tus_create(token, hex, sizeof bytes), 201, "%s", tus_resp);
    cr_assert(http_header(tus_resp, "Location", location, sizeof location), "%s", tus_resp);
    cr_assert_eq(tus_patch(location, token, 0, bytes, sizeof bytes), 204, "%s", tus_resp);
}

/* The caller's own upload and blob, made with its token while that still works. */
static void uploads_of(struct caller *c)
{
    upload_new(c->token, c->upload, sizeof c->upload);
    blob_new(c->token, c->blob);
}

/* e2ee.post fields: a photo in the room carrying blob, signed by device v. */
static void e2ee_photo_fields(const struct dev *v, const char *blob, char *out, size_t cap)
{
    static const char type[] = "e2ee.photo", data[] = "{\"epoch\":\"authz\"}";
    unsigned char msg[512], *p = msg;
    size_t n = strlen(room) + 1 + sizeof type + strlen(blob) + 1 + strlen(data);
    cr_assert_lt(n, sizeof msg);
    p = (unsigned char *)stpcpy((char *)p, room) + 1;
    p = (unsigned char *)stpcpy((char *)p, type) + 1;
    p = (unsigned char *)stpcpy((char *)p, blob) + 1;
    memcpy(p, data, strlen(data));
    uint8_t sig[64];
    cr_assert_eq(media_sign("kizuna/e2ee/v1", msg, n, v->k.sign_sk, sig), MEDIA_OK);
    char s[100];
    b64url(sig, 64, s, sizeof s);
    snprintf(out, cap,
             "\"room\":\"%s\",\"type\":\"%s\",\"device\":\"%s\",\"blobs\":[\"%s\"],"
             "\"data\":\"{\\\"epoch\\\":\\\"authz\\\"}\",\"sig\":\"%s\"",
             room, type, v->id, blob, s);
}

static void user_add(const char *login, const char *pw, const char *role, const char *dept)
{
    bool grouped = strcmp(login, "mem") == 0 || strcmp(login, "victim") == 0;
    cJSON_Delete(must(&adm,
                      "\"op\":\"user.add\",\"login\":\"%s\",\"password\":\"%s\",\"role\":\"%s\","
                      "\"department\":\"%s\",\"groups\":[%s]",
                      login, pw, role, dept, grouped ? "\"" GROUP "\"" : ""));
}

static void caller_init(struct caller *c, const char *login)
{
    snprintf(c->login, sizeof c->login, "%s", login);
    snprintf(c->pw, sizeof c->pw, "%s-password-1", login);
}

/* A session over HTTP: 200 for a live token. */
static int http_whoami(const char *token)
{
    char headers[128], body[4096];
    snprintf(headers, sizeof headers, "Authorization: Bearer %s\r\n", token);
    return http_request(d.port, "POST", "/api/v1/whoami", headers, "{}", body, sizeof body);
}

static long long make_review(bool ready, long long *first);

static void fixtures(void)
{
    static const struct {
        enum who w;
        const char *login, *role, *dept;
    } people[] = {
        {ANON, "probe", "staff", DEPT_Y},        {DISABLED, "dis", "staff", DEPT_X},
        {MEMBER, "mem", "staff", DEPT_X},        {OWNER, "owner", "staff", DEPT_X},
        {OUTSIDER, "outsider", "staff", DEPT_Y}, {HQ, "hq1", "hq", "本部"},
        {REVOKED, "rev", "staff", DEPT_X},       {SELF_REVOKED, "srev", "staff", DEPT_X},
    };
    caller_init(&who[ADMIN], "admin");
    snprintf(who[ADMIN].pw, sizeof who[ADMIN].pw, "%s", TEST_ADMIN_PASSWORD);
    login_on(&adm, "admin", TEST_ADMIN_PASSWORD, who[ADMIN].token);

    /* The dispatched account first: it expires while the other columns run. */
    long long expires = wall_ms() + EXPIRY_DELAY_MS;
    cJSON *r = must(
        &adm, "\"op\":\"invite.create\",\"department\":\"" DEPT_X "\",\"account_expires_at\":%lld",
        expires);
    char code[32];
    jstr(r, "code", code, sizeof code);
    cJSON_Delete(r);
    caller_init(&who[EXPIRED], "exp");
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    r = must(&w, "\"op\":\"join\",\"code\":\"%s\",\"login\":\"exp\",\"password\":\"%s\"", code,
             who[EXPIRED].pw);
    jstr(r, "token", who[EXPIRED].token, sizeof who[EXPIRED].token);
    cJSON_Delete(r);
    ws_close_fd(&w);

    for (size_t i = 0; i < sizeof people / sizeof people[0]; i++) {
        caller_init(&who[people[i].w], people[i].login);
        user_add(people[i].login, who[people[i].w].pw, people[i].role, people[i].dept);
    }
    caller_init(&victim, "victim");
    user_add("victim", victim.pw, "staff", DEPT_Y);

    /* One session each; the owner's and member's stay open for fixtures made per cell. */
    login_on(&own, who[OWNER].login, who[OWNER].pw, who[OWNER].token);
    login_on(&mem, who[MEMBER].login, who[MEMBER].pw, who[MEMBER].token);
    for (enum who k = ANON; k < NWHO; k++) {
        if (k == OWNER || k == MEMBER || k == ADMIN || k == EXPIRED || k == REVOKED ||
            k == SELF_REVOKED || k == ONE_TIME)
            continue;
        login_on(&w, who[k].login, who[k].pw, who[k].token);
        ws_close_fd(&w);
    }

    r = must(&own, "\"op\":\"room.create\",\"name\":\"災害対策本部\","
                   "\"members\":[\"mem\",\"dis\",\"rev\",\"srev\",\"exp\"]");
    jstr(r, "room.room", room, sizeof room);
    cJSON_Delete(r);
    r = must(&mem, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"" SECRET_MSG " 県道が冠水\"",
             room);
    msg_pos = jint(r, "pos");
    cJSON_Delete(r);
    /* The record: mem reviews the room; a message for the helper; an approved review. */
    cJSON_Delete(must(&adm, "\"op\":\"record.reviewer\",\"room\":\"%s\",\"user\":\"mem\"", room));
    r = must(&mem, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"連絡先 090-1234-5678\"", room);
    jstr(r, "event_id", phone_event, sizeof phone_event);
    cJSON_Delete(r);
    review_id = make_review(true, NULL);
    cJSON_Delete(must(&adm, "\"op\":\"record.review.approve\",\"review\":%lld", review_id));
    r = must(&own, "\"op\":\"notice.post\",\"title\":\"" SECRET_NOTICE
                   " 安否確認\",\"body\":\"" SECRET_NOTICE
                   " 回答してください\",\"to\":[\"dept:" DEPT_X "\"],\"ask_ack\":true,"
                   "\"choices\":[\"無事\",\"負傷\"]");
    notice_id = jint(r, "notice.id");
    cr_assert_geq(jint(r, "recipients"), 5, "mem, dis, rev, srev and exp");
    cJSON_Delete(r);

    /* Devices for e2ee.post, each in its caller's one session. */
    for (enum who k = MEMBER; k <= ADMIN; k++) {
        auth_on(&w, &who[k]);
        dev_register(&w, who[k].login, &who[k].dev);
        who[k].has_dev = true;
        ws_close_fd(&w);
    }

    /* Blobs: each live caller's own (the one-time password caller makes its own per cell),
     * the victim's with an upload, and the room's, which the member sends as a photo. */
    for (enum who k = MEMBER; k <= ADMIN; k++)
        blob_new(who[k].token, who[k].blob);
    login_on(&w, victim.login, victim.pw, victim.token);
    ws_close_fd(&w);
    uploads_of(&victim);
    uploads_of(&who[ANON]);
    blob_new(who[MEMBER].token, room_blob);
    char photo[1024];
    e2ee_photo_fields(&who[MEMBER].dev, room_blob, photo, sizeof photo);
    cJSON_Delete(must(&mem, "\"op\":\"e2ee.post\",%s", photo));

    /* The dead: each token works until its end. */
    struct ws rv, sr;
    login_on(&rv, "rev", who[REVOKED].pw, who[REVOKED].token);
    dev_register(&rv, "rev", &who[REVOKED].dev);
    login_on(&sr, "srev", who[SELF_REVOKED].pw, who[SELF_REVOKED].token);
    dev_register(&sr, "srev", &who[SELF_REVOKED].dev);
    for (enum who k = ANON; k < ONE_TIME; k++)
        cr_assert_eq(http_whoami(who[k].token), 200, "%s's token works before the test",
                     who_name[k]);
    /* Uploads and blobs of the dead, made while they lived. */
    for (enum who k = ANON; k < ONE_TIME; k++)
        if (is_dead(k))
            uploads_of(&who[k]);
    cJSON_Delete(must(&adm, "\"op\":\"user.disable\",\"login\":\"dis\""));
    cJSON_Delete(must(&adm, "\"op\":\"device.revoke\",\"device\":\"%s\"", who[REVOKED].dev.id));
    cJSON_Delete(must(&sr, "\"op\":\"device.revoke\",\"device\":\"%s\"", who[SELF_REVOKED].dev.id));
    ws_close_fd(&rv);
    ws_close_fd(&sr);
    expires_at = expires;
}

/* ---- per-cell values ---- */

static void fresh_user(char *login, size_t n)
{
    snprintf(login, n, "fresh-%d", ++fresh);
    user_add(login, "fresh-password-1", "staff", DEPT_Y);
}

/* The one-time password caller is new for every cell, since passwd (allowed to it) ends its
 * state: a user who had a device (a lost phone) and whose password an admin then reset, logged
 * in with the one-time password. */
static void one_time_caller(bool with_uploads)
{
    struct caller *c = &who[ONE_TIME];
    snprintf(c->login, sizeof c->login, "once-%d", ++fresh);
    user_add(c->login, "once-password-1", "staff", DEPT_X);
    struct ws s;
    login_on(&s, c->login, "once-password-1", c->token);
    dev_register(&s, c->login, &c->dev);
    if (with_uploads)
        uploads_of(c); /* the phone had an upload pending and a photo sent */
    ws_close_fd(&s);
    cJSON *r = must(&adm, "\"op\":\"user.reset_password\",\"login\":\"%s\"", c->login);
    cr_assert(cJSON_IsTrue(jget(r, "user.must_change_password")));
    jstr(r, "password", c->pw, sizeof c->pw);
    cJSON_Delete(r);
    login_on(&s, c->login, c->pw, c->token);
    ws_close_fd(&s);
}

/* A new session of c (victim's for callers that cannot log in); its id. */
static long long side_session(enum who w)
{
    const struct caller *c = is_live(w) ? &who[w] : &victim;
    struct ws s;
    long long id = login_on(&s, c->login, c->pw, NULL);
    ws_close_fd(&s);
    return id;
}

/* A device registered in a new session of c (victim's for those who cannot log in). */
static void side_device(enum who w, char *out, size_t n)
{
    const struct caller *c = is_live(w) ? &who[w] : &victim;
    struct ws s;
    struct dev v;
    login_on(&s, c->login, c->pw, NULL);
    dev_register(&s, c->login, &v);
    ws_close_fd(&s);
    snprintf(out, n, "%s", v.id);
}

/* device.sign fields: a new start (a root, which may come at any version) of the caller's
 * signed device list, naming a device registered for the caller in a side session; callers who
 * cannot call it use a device they hold already (the gate refuses them first). */
static void devlist_fields(enum who w, char *out, size_t n)
{
    const struct caller *c = &who[w];
    struct dev v;
    bool side = is_live(w) && w != ONE_TIME;
    const struct dev *signer = side                                              ? &v
                               : c->has_dev || w == REVOKED || w == SELF_REVOKED ? &c->dev
                                                                                 : &who[MEMBER].dev;
    long long seq = 0;
    if (side) {
        struct ws s;
        login_on(&s, c->login, c->pw, NULL);
        dev_register(&s, c->login, &v);
        cJSON *r = must(&s, "\"op\":\"device.list\""), *l;
        cJSON_ArrayForEach(l, cJSON_GetObjectItem(r, "lists")) if (jint(l, "seq") > seq) seq =
            jint(l, "seq");
        cJSON_Delete(r);
        ws_close_fd(&s);
    }
    struct media_devlist l = {0};
    kzd_qualify(&d, signer == &who[MEMBER].dev ? who[MEMBER].login : c->login, l.login,
                sizeof l.login);
    l.seq = (uint64_t)seq + 1;
    l.n = 1;
    memcpy(l.dev[0].sign_pk, signer->k.sign_pk, 32);
    memcpy(l.dev[0].box_pk, signer->k.box_pk, 32);
    unsigned char enc[MEDIA_DEVLIST_ENCODED_MAX];
    uint8_t sig[64];
    size_t len;
    cr_assert_eq(media_devlist_encode(&l, enc, sizeof enc, &len), MEDIA_OK);
    cr_assert_eq(media_devlist_sign(enc, len, signer->k.sign_sk, sig), MEDIA_OK);
    char e64[512], s64[100];
    b64url(enc, len, e64, sizeof e64);
    b64url(sig, 64, s64, sizeof s64);
    snprintf(out, n, "\"list\":\"%s\",\"device\":\"%s\",\"sig\":\"%s\"", e64, signer->id, s64);
}

/* peer.add's fields for a server nobody has pinned yet: a fresh id and key, and the fingerprint
 * its admin would read out. The id goes to id (if not NULL). */
static void peer_fields(char *out, size_t n, char *id, size_t idlen)
{
    static int peers;
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    char sid[32], key[FED_KEY_B64LEN + 1], fp[FED_FINGERPRINT_LEN + 1];
    snprintf(sid, sizeof sid, "authz-peer-%d", ++peers);
    fed_key_encode(pk, key, sizeof key);
    cr_assert_eq(fed_fingerprint(sid, pk, fp), 0);
    snprintf(out, n,
             "\"server\":\"%s\",\"key\":\"%s\",\"addresses\":[\"10.0.0.%d:8443\"],"
             "\"fingerprint\":\"%s\"",
             sid, key, peers % 250 + 1, fp);
    if (id)
        snprintf(id, idlen, "%s", sid);
}

/* A review of the room's record by mem, the helper's first proposal in *first (if not NULL);
 * ready: every proposal accepted and the phone message marked, so that someone else may
 * approve it. */
static long long make_review(bool ready, long long *first)
{
    cJSON *r = must(&mem, "\"op\":\"record.review.create\",\"room\":\"%s\"", room);
    long long id = jint(r, "review");
    cr_assert_geq(jint(r, "proposals"), 1, "the helper proposes the phone number");
    cJSON_Delete(r);
    r = must(&mem, "\"op\":\"record.review.show\",\"review\":%lld", id);
    const cJSON *red;
    cJSON_ArrayForEach(red, cJSON_GetObjectItem(r, "redactions"))
    {
        long long rid = jint(red, "id");
        if (first) {
            *first = rid;
            first = NULL;
        }
        if (ready)
            cJSON_Delete(must(&mem,
                              "\"op\":\"record.review.decide\",\"review\":%lld,"
                              "\"redaction\":%lld,\"accept\":true",
                              id, rid));
    }
    cJSON_Delete(r);
    if (ready)
        cJSON_Delete(must(&mem, "\"op\":\"record.review.mark\",\"review\":%lld,\"events\":[\"%s\"]",
                          id, phone_event));
    return id;
}

/* A one-tap answer link for the member to $NOTICE (a roll-call), as mail.c makes one for an
 * e-mail: only the hash of the token is stored, which the test writes itself since no mail
 * relay is configured here. The token is the credential: whoever presents it answers. A link
 * answers only for someone who has not answered yet, so the member's last answer (an earlier
 * caller's cell) is cleared first, as if this were the first mail. */
static void answer_token(char *out, size_t n)
{
    uint8_t raw[32], hash[32];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(out, n, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    crypto_generichash(hash, sizeof hash, (const unsigned char *)out, strlen(out), NULL, 0);
    char path[512];
    snprintf(path, sizeof path, "%s/kizuna.db", d.dir);
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    cr_assert(sqlite3_open(path, &db) == SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    char *err = NULL;
    char clear[256];
    snprintf(clear, sizeof clear,
             "UPDATE notice_recipients SET responded_at = NULL, choice = NULL WHERE notice = %lld"
             " AND user_id = (SELECT id FROM users WHERE login = 'mem')",
             notice_id);
    cr_assert(sqlite3_exec(db, clear, NULL, NULL, &err) == SQLITE_OK, "%s", err ? err : "");
    cr_assert(
        sqlite3_prepare_v2(db,
                           "INSERT INTO answer_links (token_hash, notice, user_id, expires_at)"
                           " SELECT ?, ?, id, 9000000000000 FROM users WHERE login = 'mem'",
                           -1, &s, NULL) == SQLITE_OK);
    sqlite3_bind_blob(s, 1, hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, notice_id);
    cr_assert_eq(sqlite3_step(s), SQLITE_DONE, "%s", sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_changes(db), 1);
    sqlite3_finalize(s);
    sqlite3_close(db);
}

static char last_hotline_peer[64]; /* $HOTLINE's peer, for $HOTLINE_PEER after it */

static void resolve(const char *name, enum who w, char *out, size_t n)
{
    const struct caller *c = &who[w];
    cJSON *r = NULL;
    if (strcmp(name, "ROOM") == 0) {
        snprintf(out, n, "%s", room);
    } else if (strcmp(name, "NOTICE") == 0) {
        snprintf(out, n, "%lld", notice_id);
    } else if (strcmp(name, "MSG") == 0) {
        snprintf(out, n, "%lld", msg_pos);
    } else if (strcmp(name, "SELF") == 0) {
        snprintf(out, n, "%s", c->login);
    } else if (strcmp(name, "PW") == 0) {
        snprintf(out, n, "%s", c->pw);
    } else if (strcmp(name, "TOKEN") == 0) {
        snprintf(out, n, "%s", c->token);
    } else if (strcmp(name, "FRESH_LOGIN") == 0) {
        snprintf(out, n, "new-%d", ++fresh);
    } else if (strcmp(name, "FRESH_USER") == 0) {
        fresh_user(out, n);
    } else if (strcmp(name, "FRESH_MEMBER") == 0) {
        fresh_user(out, n);
        r = must(&own, "\"op\":\"room.invite\",\"room\":\"%s\",\"user\":\"%s\"", room, out);
    } else if (strcmp(name, "FRESH_ROOM") == 0) {
        /* The same name each time: confirmed, as a second room of the same name must be. */
        r = must(&own, "\"op\":\"room.create\",\"name\":\"一時\",\"members\":[\"mem\"],"
                       "\"confirm\":true");
        jstr(r, "room.room", out, n);
    } else if (strcmp(name, "FRESH_MSG") == 0) {
        r = must(&mem, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"fresh\"", room);
        snprintf(out, n, "%lld", jint(r, "pos"));
    } else if (strcmp(name, "FRESH_ANSWER_TOKEN") == 0) {
        answer_token(out, n);
    } else if (strcmp(name, "FRESH_NOTICE") == 0) {
        r = must(&own, "\"op\":\"notice.post\",\"title\":\"fresh\",\"body\":\"fresh\","
                       "\"to\":[\"dept:" DEPT_X "\"]");
        snprintf(out, n, "%lld", jint(r, "notice.id"));
    } else if (strcmp(name, "ALERT") == 0 || strcmp(name, "FRESH_ALERT") == 0) {
        static long long alert; /* $ALERT: one drill alert, made at its first use */
        if (!alert || name[0] == 'F') {
            r = must(&adm, "\"op\":\"alert.drill\"");
            if (name[0] == 'A')
                alert = jint(r, "alert.id");
        }
        snprintf(out, n, "%lld", r ? jint(r, "alert.id") : alert);
    } else if (strcmp(name, "FRESH_CODE") == 0) {
        r = must(&adm, "\"op\":\"invite.create\"");
        jstr(r, "code", out, n);
    } else if (strcmp(name, "FRESH_INVITE") == 0) {
        r = must(&adm, "\"op\":\"invite.create\"");
        snprintf(out, n, "%lld", jint(r, "invite.id"));
    } else if (strcmp(name, "PEER_FIELDS") == 0) {
        peer_fields(out, n, NULL, 0);
    } else if (strcmp(name, "FRESH_PEER") == 0) {
        char fields[512];
        peer_fields(fields, sizeof fields, out, n);
        r = must(&adm, "\"op\":\"peer.add\",%s", fields);
    } else if (strcmp(name, "HOTLINE") == 0) {
        /* A hotline with a fresh pinned peer, created by the admin (its room admin). */
        static char hotline_peer[64];
        char fields[512];
        peer_fields(fields, sizeof fields, hotline_peer, sizeof hotline_peer);
        cJSON_Delete(must(&adm, "\"op\":\"peer.add\",%s", fields));
        r = must(&adm,
                 "\"op\":\"hotline.create\",\"name\":\"県ホットライン\","
                 "\"roles\":[\"%s=affected\"]",
                 hotline_peer);
        jstr(r, "room", out, n);
        snprintf(last_hotline_peer, sizeof last_hotline_peer, "%s", hotline_peer);
    } else if (strcmp(name, "REVIEW") == 0) {
        snprintf(out, n, "%lld", review_id);
    } else if (strcmp(name, "FRESH_REVIEW") == 0) {
        snprintf(out, n, "%lld", make_review(false, &last_redaction));
    } else if (strcmp(name, "READY_REVIEW") == 0) {
        snprintf(out, n, "%lld", make_review(true, NULL));
    } else if (strcmp(name, "LAST_REDACTION") == 0) {
        snprintf(out, n, "%lld", last_redaction);
    } else if (strcmp(name, "PHONE_EVENT") == 0) {
        snprintf(out, n, "%s", phone_event);
    } else if (strcmp(name, "HOTLINE_PEER") == 0) {
        snprintf(out, n, "%s", last_hotline_peer);
    } else if (strcmp(name, "SHARED_ROOM") == 0) {
        /* A room shared with a fresh pinned peer, of which own is the admin and mem a member. */
        char fields[512], peer[64];
        peer_fields(fields, sizeof fields, peer, sizeof peer);
        cJSON_Delete(must(&adm, "\"op\":\"peer.add\",%s", fields));
        r = must(&own,
                 "\"op\":\"room.create\",\"name\":\"共有\",\"members\":[\"mem\"],"
                 "\"servers\":[\"%s\"],\"confirm\":true",
                 peer);
        jstr(r, "room.room", out, n);
    } else if (strcmp(name, "OWN_SESSION") == 0) {
        snprintf(out, n, "%lld", side_session(w));
    } else if (strcmp(name, "VICTIM_SESSION") == 0) {
        snprintf(out, n, "%lld", side_session(ANON));
    } else if (strcmp(name, "OWN_DEVICE") == 0 && w == ONE_TIME) {
        snprintf(out, n, "%s", c->dev.id); /* registered before the reset */
    } else if (strcmp(name, "OWN_DEVICE") == 0) {
        side_device(w, out, n);
    } else if (strcmp(name, "VICTIM_DEVICE") == 0) {
        side_device(ANON, out, n);
    } else if (strcmp(name, "ORPHAN_DEVICE") == 0) {
        side_device(ANON, out, n);
        struct ws s;
        login_on(&s, victim.login, victim.pw, NULL);
        r = must(&s, "\"op\":\"passwd\",\"old_password\":\"%s\",\"new_password\":\"%s\"", victim.pw,
                 victim.pw);
        ws_close_fd(&s);
    } else if (strcmp(name, "DEVLIST") == 0) {
        devlist_fields(w, out, n);
    } else if (strcmp(name, "DEVKEYS") == 0) {
        struct dev v;
        dev_fields(c->login, &v, out, n);
    } else if (strcmp(name, "E2EE") == 0) {
        /* The caller's own device where it has one; the member's for those who have none. */
        e2ee_fields(c->has_dev || w == REVOKED || w == SELF_REVOKED ? &c->dev : &who[MEMBER].dev,
                    out, n);
    } else if (strcmp(name, "E2EE_MEM") == 0) {
        e2ee_fields(&who[MEMBER].dev, out, n);
    } else if (strcmp(name, "OWN_UPLOAD") == 0) {
        if (is_live(w) && w != ONE_TIME)
            upload_new(c->token, out, n); /* fresh: the cell may change or delete it */
        else
            snprintf(out, n, "%s", c->upload);
    } else if (strcmp(name, "VICTIM_UPLOAD") == 0) {
        snprintf(out, n, "%s", victim.upload);
    } else if (strcmp(name, "OWN_BLOB") == 0) {
        snprintf(out, n, "%s", c->blob);
    } else if (strcmp(name, "VICTIM_BLOB") == 0) {
        snprintf(out, n, "%s", victim.blob);
    } else if (strcmp(name, "ROOM_BLOB") == 0) {
        snprintf(out, n, "%s", room_blob);
    } else if (strcmp(name, "CSV") == 0) {
        static const char csv[] = "login,name,department,role,groups\n"
                                  "imported.one,取込 一郎," DEPT_Y ",staff,\n";
        sodium_bin2base64(out, n, (const unsigned char *)csv, strlen(csv),
                          sodium_base64_VARIANT_ORIGINAL);
    } else {
        cr_assert_fail("unknown placeholder $%s", name);
    }
    cJSON_Delete(r);
}

static void expand(const char *tpl, enum who w, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (const char *p = tpl; *p;) {
        if (*p != '$') {
            cr_assert_lt(len + 1, cap);
            out[len++] = *p++;
            out[len] = '\0';
            continue;
        }
        char name[32];
        size_t k = 0;
        for (p++; (isupper((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_') &&
                  k < sizeof name - 1;
             p++)
            name[k++] = *p;
        name[k] = '\0';
        char val[2048];
        resolve(name, w, val, sizeof val);
        cr_assert_lt(len + strlen(val), cap);
        len += (size_t)snprintf(out + len, cap - len, "%s", val);
    }
}

/* ---- running a cell ---- */

struct outcome {
    char code[32];
    char message[160];
    int http;   /* the HTTP status, for cells sent over HTTP (0 otherwise) */
    char *text; /* the whole reply (owned) */
};

static void outcome_from(struct outcome *o, cJSON *r)
{
    snprintf(o->code, sizeof o->code, "%s", reply_code(r));
    const cJSON *m = jget(r, "error.message");
    snprintf(o->message, sizeof o->message, "%s", cJSON_IsString(m) ? m->valuestring : "");
    o->text = r ? cJSON_PrintUnformatted(r) : NULL;
    cJSON_Delete(r);
}

/* Over HTTP with the token as bearer (NULL: none). */
static void run_http(const char *op, const char *token, const char *members, struct outcome *o)
{
    char path[96], headers[128] = "", body[16384];
    static char reply[1 << 16];
    snprintf(path, sizeof path, "/api/v1/%s", op);
    if (token)
        snprintf(headers, sizeof headers, "Authorization: Bearer %s\r\n", token);
    snprintf(body, sizeof body, "{%s}", members);
    o->http = http_request(d.port, "POST", path, headers, body, reply, sizeof reply);
    outcome_from(o, cJSON_Parse(reply));
}

static void run_cell(const struct row *row, enum who w, const char *members, struct outcome *o)
{
    memset(o, 0, sizeof *o);
    if (is_dead(w)) {
        run_http(row->op, who[w].token, members, o);
        return;
    }
    struct ws c;
    if (w == ANON)
        cr_assert(ws_open(&c, d.port));
    else if (row->flags & FRESH_SESSION)
        login_on(&c, who[w].login, who[w].pw, NULL);
    else
        auth_on(&c, &who[w]);
    outcome_from(o, callf(&c, "\"op\":\"%s\"%s%s", row->op, members[0] ? "," : "", members));
    ws_close_fd(&c);
}

/* What a caller outside the room and the notice's audience must never see in a reply. An admin
 * may ask room.servers where any room lives: that reply names the room the admin named, never
 * its messages; so do the record's ops an admin is for (naming reviewers, approving and
 * publishing reviews, holds: docs/records.md), whose published messages are the reviewed ones
 * only (here the phone number's, blacked out). */
static const char *leak_in(const struct row *row, enum who w, const char *text)
{
    if (!text || !(w == OUTSIDER || w == HQ || w == ADMIN))
        return NULL;
    if (strstr(text, SECRET_MSG))
        return "the room's message";
    if (strstr(text, room) &&
        !(w == ADMIN && (strcmp(row->op, "room.servers") == 0 ||
                         strncmp(row->op, "record.", 7) == 0 || strcmp(row->op, "room.hold") == 0)))
        return "the room's id";
    if (w != ADMIN && strstr(text, SECRET_NOTICE))
        return "the notice";
    return NULL;
}

static int bad, cells;
static char anon_args[NROWS][4096];
static char observed[NROWS][NWHO + 1];

static void check_cell(size_t i, enum who w)
{
    const struct row *row = &rows[i];
    char expect[NWHO];
    cr_assert(parse_expect(row->expect, expect), "row %zu (%s): bad expectations", i, row->op);
    if (w == ONE_TIME)
        one_time_caller(false);
    char members[4096];
    expand(row->args, w, members, sizeof members);
    if (w == ANON)
        snprintf(anon_args[i], sizeof anon_args[i], "%s", members);
    struct outcome o;
    run_cell(row, w, members, &o);
    cells++;
    observed[i][w] = letter_of_code(o.code);
    const char *want = code_of_letter(expect[w]);
    const char *leak = strcmp(o.code, "ok") == 0 ? leak_in(row, w, o.text) : NULL;
    if (strcmp(o.code, want) != 0) {
        bad++;
        fprintf(stderr, "MISMATCH %-20s as %-20s expected %-12s got %-12s (%s) {%s}\n", row->op,
                who_name[w], want, o.code, o.message, members);
    } else if (o.http && o.http != http_status_of(o.code)) {
        bad++;
        fprintf(stderr, "MISMATCH %-20s as %-20s HTTP status %d for %s\n", row->op, who_name[w],
                o.http, o.code);
    } else if (leak) {
        bad++;
        fprintf(stderr, "LEAK     %-20s as %-20s the reply shows %s: %.300s\n", row->op,
                who_name[w], leak, o.text);
    }
    free(o.text);
}

/* ---- running a cell of the upload and blob endpoints ---- */

static char observed_http[NHROWS][NWHO + 1];

static char letter_of_status(int status, int ok_status)
{
    switch (status) {
    case 401:
        return 'U';
    case 403:
        return 'F';
    case 404:
        return 'N';
    case 400:
        return 'B';
    case 409:
        return 'C';
    default:
        return status == ok_status ? 'o' : '?';
    }
}

static void check_http_cell(size_t i, enum who w)
{
    const struct http_row *row = &http_rows[i];
    char expect[NWHO];
    cr_assert(parse_expect(row->expect, expect), "http row %zu: bad expectations", i);
    if (w == ONE_TIME)
        one_time_caller(strstr(row->path, "$OWN_") != NULL);
    char path[256];
    expand(row->path, w, path, sizeof path);
    const char *token = w == ANON ? NULL : who[w].token;
    int status;
    switch (row->body) {
    case H_CREATE: {
        uint8_t rnd[32];
        char hex[65];
        randombytes_buf(rnd, sizeof rnd);
        sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
        status = tus_create(token, hex, UPLOAD_LEN);
        break;
    }
    case H_CREATE_RB:
        status = tus_create(token, room_blob, BLOB_LEN);
        break;
    case H_PATCH: {
        uint8_t half[UPLOAD_LEN / 2];
        memset(half, 'k', sizeof half);
        status = tus_patch(path, token, 0, half, sizeof half);
        break;
    }
    default:
        status = tus(row->method, path, token, NULL, NULL, 0);
        break;
    }
    cells++;
    const char *want = code_of_letter(expect[w]);
    int want_status = expect[w] == 'o' ? row->ok_status : http_status_of(want);
    /* The code: from the reply's JSON error, which every refusal but HEAD's carries. */
    char code[32] = "", message[160] = "";
    const char *body = strstr(tus_resp, "\r\n\r\n");
    if (status != row->ok_status && strcmp(row->method, "HEAD") != 0) {
        cJSON *r = body ? cJSON_Parse(body + 4) : NULL;
        const cJSON *cj = jget(r, "error.code"), *mj = jget(r, "error.message");
        snprintf(code, sizeof code, "%s", cJSON_IsString(cj) ? cj->valuestring : "(none)");
        snprintf(message, sizeof message, "%s", cJSON_IsString(mj) ? mj->valuestring : "");
        cJSON_Delete(r);
    }
    char got = code[0] ? letter_of_code(code) : letter_of_status(status, row->ok_status);
    observed_http[i][w] = got;
    char leak[160] = "";
    if (status == row->ok_status && strcmp(row->method, "GET") == 0) {
        /* A blob comes back whole: its bytes hash to its id. */
        char hex[65] = "";
        size_t off = body ? (size_t)(body + 4 - tus_resp) : tus_resp_len;
        hex_of(tus_resp + off, tus_resp_len - off, hex);
        if (strcmp(hex, strrchr(path, '/') + 1) != 0)
            snprintf(leak, sizeof leak, "the body is not the blob (%zu bytes)", tus_resp_len - off);
    } else if (status == row->ok_status && row->body == H_CREATE_RB) {
        /* The room's blob is complete for those who may read it; for the rest it does not
         * exist: an upload from 0, which says nothing of its length. */
        char offset[32] = "";
        http_header(tus_resp, "Upload-Offset", offset, sizeof offset);
        bool reader = w == MEMBER || w == OWNER;
        if (strtoll(offset, NULL, 10) != (reader ? BLOB_LEN : 0))
            snprintf(leak, sizeof leak, "Upload-Offset %s where %d is due", offset,
                     reader ? BLOB_LEN : 0);
    }
    if (got != expect[w] || status != want_status) {
        bad++;
        fprintf(stderr, "MISMATCH %-6s %-32s as %-20s expected %-12s %d, got %c %d (%s)\n",
                row->method, row->path, who_name[w], want, want_status, got, status, message);
    } else if (leak[0]) {
        bad++;
        fprintf(stderr, "LEAK     %-6s %-32s as %-20s %s\n", row->method, row->path, who_name[w],
                leak);
    }
}

/* What the victim's upload and blob are at the end: untouched by every cell. */
static void victim_untouched(void)
{
    char tok[64], path[128], offset[32] = "";
    struct ws s;
    login_on(&s, victim.login, victim.pw, tok);
    ws_close_fd(&s);
    snprintf(path, sizeof path, "/api/v1/uploads/%s", victim.upload);
    cr_assert_eq(tus("HEAD", path, tok, NULL, NULL, 0), 200, "the victim's upload is gone");
    http_header(tus_resp, "Upload-Offset", offset, sizeof offset);
    cr_assert_str_eq(offset, "0", "someone wrote into the victim's upload");
    snprintf(path, sizeof path, "/api/v1/blobs/%s", victim.blob);
    cr_assert_eq(tus("GET", path, tok, NULL, NULL, 0), 200, "the victim's blob is gone");
}

static void wait_for_expiry(void)
{
    long long wait = expires_at + 50 - wall_ms();
    if (wait > 0) {
        struct timespec ts = {wait / 1000, (wait % 1000) * 1000000};
        nanosleep(&ts, NULL); /* waiting for the wall clock to pass a date: nothing to poll */
    }
    /* Refused for having expired, not for anything else. */
    struct outcome o = {0};
    run_http("whoami", who[EXPIRED].token, "", &o);
    cr_assert_str_eq(o.code, "unauthorized");
    cr_assert(strstr(o.message, "expired"), "%s", o.message);
    free(o.text);
}

/* A row's name in the printed matrix: the op and its fields, shortened. */
static void row_label(const struct row *row, char *out, size_t n)
{
    size_t len = (size_t)snprintf(out, n, "%s ", row->op);
    for (const char *p = row->args; *p && len + 1 < n; p++)
        if (*p != '"')
            out[len++] = *p;
    out[len] = '\0';
    if (len > 40) {
        size_t cut = 37;
        while (cut > 0 && ((unsigned char)out[cut] & 0xC0) == 0x80)
            cut--; /* not inside a UTF-8 character */
        snprintf(out + cut, n - cut, "...");
    }
}

Test(authz, every_op_with_every_caller, .init = setup, .fini = teardown, .timeout = 120)
{
    long long t0 = wall_ms();
    fixtures();
    for (size_t i = 0; i < NROWS; i++)
        for (enum who w = ANON; w < NWHO; w++)
            if (w != EXPIRED)
                check_cell(i, w);
    for (size_t i = 0; i < NHROWS; i++)
        for (enum who w = ANON; w < NWHO; w++)
            if (w != EXPIRED)
                check_http_cell(i, w);
    wait_for_expiry();
    for (size_t i = 0; i < NROWS; i++) {
        check_cell(i, EXPIRED);
        observed[i][NWHO] = '\0';
    }
    for (size_t i = 0; i < NHROWS; i++)
        check_http_cell(i, EXPIRED);
    victim_untouched();

    /* Anonymous again, over HTTP this time: the same refusal with status 401. */
    int http_checked = 0;
    for (size_t i = 0; i < NROWS; i++) {
        char expect[NWHO];
        parse_expect(rows[i].expect, expect);
        if (expect[ANON] != 'U')
            continue;
        struct outcome o = {0};
        run_http(rows[i].op, NULL, anon_args[i], &o);
        http_checked++;
        if (o.http != 401 || strcmp(o.code, "unauthorized") != 0) {
            bad++;
            fprintf(stderr, "MISMATCH %-20s anonymous over HTTP: status %d, code %s (%s)\n",
                    rows[i].op, o.http, o.code, o.message);
        }
        free(o.text);
    }

    fprintf(stderr, "authz matrix (o ok, U unauthorized, F forbidden, N not_found):\n%-40s", "op");
    for (enum who w = ANON; w < NWHO; w++)
        fprintf(stderr, " %-4s", who_short[w]);
    fputc('\n', stderr);
    for (size_t i = 0; i < NROWS; i++) {
        char label[64];
        row_label(&rows[i], label, sizeof label);
        fprintf(stderr, "%-40s", label);
        for (enum who w = ANON; w < NWHO; w++)
            fprintf(stderr, " %-4c", observed[i][w]);
        fputc('\n', stderr);
    }
    for (size_t i = 0; i < NHROWS; i++) {
        char label[64];
        snprintf(label, sizeof label, "%s %s%s", http_rows[i].method, http_rows[i].path + 8,
                 http_rows[i].body == H_CREATE_RB ? " (room's blob)" : "");
        fprintf(stderr, "%-40s", label);
        for (enum who w = ANON; w < NWHO; w++)
            fprintf(stderr, " %-4c", observed_http[i][w]);
        fputc('\n', stderr);
    }
    fprintf(stderr, "%d cells, %d anonymous HTTP requests, %d wrong, %.1f s\n", cells, http_checked,
            bad, (wall_ms() - t0) / 1000.0);
    cr_assert_eq(bad, 0, "%d cells of the authorization matrix are wrong (see stderr)", bad);
}

/* Every op in the command table has a row, every row names an op in it, and every row has a
 * caller who succeeds (so its request is valid and refusals are about the caller). */
Test(authz, the_matrix_covers_every_op)
{
    size_t n;
    const struct srv_op *ops = srv_op_table(&n);
    cr_assert_gt(n, 0);
    int missing = 0;
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t j = 0; j < NROWS && !found; j++)
            found = strcmp(rows[j].op, ops[i].name) == 0;
        if (!found) {
            missing++;
            fprintf(stderr, "op %s has no row in the authorization matrix\n", ops[i].name);
        }
    }
    cr_assert_eq(missing, 0,
                 "%d ops are not in the authorization matrix (tests/integration/"
                 "test_authz.c rows[])",
                 missing);
    for (size_t j = 0; j < NROWS; j++) {
        cr_assert_not_null(srv_op_find(rows[j].op), "row %s names no op in the command table",
                           rows[j].op);
        char expect[NWHO];
        cr_assert(parse_expect(rows[j].expect, expect), "row %s: bad expectations", rows[j].op);
        cr_assert_not_null(memchr(expect, 'o', NWHO), "row %s: no caller succeeds", rows[j].op);
        const struct srv_op *op = srv_op_find(rows[j].op);
        if (op->access == OP_ADMIN)
            for (enum who w = ANON; w < NWHO; w++)
                cr_assert(expect[w] != 'o' || w == ADMIN, "row %s: only an admin may succeed",
                          rows[j].op);
        if (op->access != OP_ANON)
            cr_assert_eq(expect[ANON], 'U', "row %s: anonymous must be refused", rows[j].op);
    }

    /* Every method of the upload and blob endpoints has a row; every row refuses anonymous
     * callers and one-time passwords (the gate's rule for them), and has a caller who succeeds
     * unless it is about the victim's upload or blob. */
    static const char *const endpoints[][2] = {
        {"POST", "/api/v1/uploads"},    {"HEAD", "/api/v1/uploads/"}, {"PATCH", "/api/v1/uploads/"},
        {"DELETE", "/api/v1/uploads/"}, {"GET", "/api/v1/blobs/"},    {"HEAD", "/api/v1/blobs/"},
    };
    for (size_t e = 0; e < sizeof endpoints / sizeof endpoints[0]; e++) {
        bool found = false;
        for (size_t j = 0; j < NHROWS && !found; j++)
            found = strcmp(http_rows[j].method, endpoints[e][0]) == 0 &&
                    strncmp(http_rows[j].path, endpoints[e][1], strlen(endpoints[e][1])) == 0;
        cr_assert(found, "%s %s has no row in http_rows[]", endpoints[e][0], endpoints[e][1]);
    }
    for (size_t j = 0; j < NHROWS; j++) {
        char expect[NWHO];
        cr_assert(parse_expect(http_rows[j].expect, expect), "http row %zu: bad expectations", j);
        cr_assert_eq(expect[ANON], 'U', "http row %zu: anonymous must be refused", j);
        cr_assert_eq(expect[ONE_TIME], 'F', "http row %zu: a one-time password must be refused", j);
        cr_assert(memchr(expect, 'o', NWHO) || strstr(http_rows[j].path, "$VICTIM_"),
                  "http row %zu: no caller succeeds", j);
    }
}
