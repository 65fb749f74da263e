/* op_table.c - the command table: every op the server has, its fields and their limits, who
 * may call it and whether it writes. proto.c looks ops up here (srv_op_find) and checks each
 * request against its row; docs/protocol.md describes every op (tests/unit/test_proto.c checks
 * that it does) and tests/integration/test_authz.c has a row of callers for each. */
#include "core.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Every op the server has. docs/protocol.md describes each; tests/unit/test_proto.c checks
 * that it does. Strings are limited in bytes; an F_STRING with min 1 must not be empty. A limit
 * an operator may change is a setting, never a number here: the op's caps name it (max 0 in
 * fields), so room.create's members follow room_max_members (config.c) and nothing else. */
#define REQ(n, max)                                                                                \
    {                                                                                              \
        n, F_STRING, true, max, 1                                                                  \
    }
#define OPT(n, max)                                                                                \
    {                                                                                              \
        n, F_STRING, false, max, 1                                                                 \
    }
#define LOGIN_ARG REQ("login", STORE_LOGIN_MAX)
#define NOTICE_ARG                                                                                 \
    {                                                                                              \
        "notice", F_INT, true, KZ_POS_MAX, 1                                                       \
    }
#define ROOM_ARG REQ("room", STORE_ROOM_ID_MAX)
#define POS_ARG                                                                                    \
    {                                                                                              \
        "pos", F_INT, true, KZ_POS_MAX, 1                                                          \
    }
#define LIMIT_ARG                                                                                  \
    {                                                                                              \
        "limit", F_INT, false, 10000, 1                                                            \
    }

static const struct srv_op ops[] = {
    /* sessions and one's own account */
    {.name = "login",
     .access = OP_ANON,
     .allowed_before_pwchange = true,
     .fields = {LOGIN_ARG,
                REQ("password", 255),
                OPT("device", STORE_DEVICE_MAX),
                {"shared", F_BOOL, false, 0, 0}},
     .fn = op_login},
    {.name = "auth",
     .access = OP_ANON,
     .allowed_before_pwchange = true,
     .fields = {REQ("token", 64)},
     .fn = op_auth},
    {.name = "logout",
     .access = OP_USER,
     .writes = true,
     .allowed_before_pwchange = true,
     .fn = op_logout},
    {.name = "whoami", .access = OP_USER, .allowed_before_pwchange = true, .fn = op_whoami},
    {.name = "passwd",
     .access = OP_USER,
     .allowed_before_pwchange = true,
     .fields = {REQ("old_password", 255), REQ("new_password", 255)},
     .fn = op_passwd},
    /* account administration */
    {.name = "user.add",
     .access = OP_ADMIN,
     .fields = {LOGIN_ARG,
                OPT("name", STORE_NAME_MAX),
                OPT("role", STORE_ROLE_MAX),
                OPT("password", 255),
                {"department", F_STRING, false, STORE_NAME_MAX, 0},
                {"groups", F_STRINGS, false, 100, 0},
                {"email", F_STRING, false, STORE_EMAIL_MAX, 0},
                {"phone", F_STRING, false, STORE_PHONE_MAX, 0},
                {"expires_at", F_INT, false, KZ_POS_MAX, 0}},
     .fn = op_user_add},
    {.name = "user.list", .access = OP_ADMIN, .fields = {OPT("format", 8)}, .fn = op_user_list},
    {.name = "user.disable",
     .access = OP_ADMIN,
     .writes = true,
     .fields = {LOGIN_ARG},
     .fn = op_user_disable},
    {.name = "user.enable",
     .access = OP_ADMIN,
     .writes = true,
     .fields = {LOGIN_ARG},
     .fn = op_user_enable},
    {.name = "user.reset_password",
     .access = OP_ADMIN,
     .fields = {LOGIN_ARG},
     .fn = op_user_reset_password},
    {.name = "user.import",
     .access = OP_ADMIN,
     .fields = {REQ("csv_base64", 64 << 20), {"dry_run", F_BOOL, false, 0, 0}},
     .fn = op_user_import},
    {.name = "user.update",
     .access = OP_ADMIN,
     .writes = true,
     .fields = {LOGIN_ARG,
                OPT("name", STORE_NAME_MAX),
                OPT("role", STORE_ROLE_MAX),
                {"department", F_STRING, false, STORE_NAME_MAX, 0},
                {"groups", F_STRINGS, false, 100, 0},
                {"email", F_STRING, false, STORE_EMAIL_MAX, 0},
                {"phone", F_STRING, false, STORE_PHONE_MAX, 0},
                {"expires_at", F_INT, false, KZ_POS_MAX, 0}},
     .fn = op_user_update},
    {.name = "session.list",
     .access = OP_USER,
     .allowed_before_pwchange = true,
     .fields = {OPT("login", STORE_LOGIN_MAX)},
     .fn = op_session_list},
    {.name = "session.revoke",
     .access = OP_USER,
     .writes = true,
     .allowed_before_pwchange = true,
     .fields = {{"session", F_INT, true, KZ_POS_MAX, 1}},
     .fn = op_session_revoke},
    {.name = "audit.list",
     .access = OP_ADMIN,
     .fields = {OPT("action", 64),
                OPT("actor", STORE_LOGIN_MAX),
                OPT("target", 255),
                {"since", F_INT, false, KZ_POS_MAX, 0},
                {"before", F_INT, false, KZ_POS_MAX, 1},
                LIMIT_ARG,
                OPT("format", 8)},
     .fn = op_audit_list},
    {.name = "invite.create",
     .access = OP_ADMIN,
     .writes = true,
     .fields = {OPT("role", STORE_ROLE_MAX),
                {"department", F_STRING, false, STORE_NAME_MAX, 0},
                {"groups", F_STRINGS, false, 100, 0},
                {"uses", F_INT, false, 0, 1},
                {"expires_at", F_INT, false, KZ_POS_MAX, 1},
                {"account_expires_at", F_INT, false, KZ_POS_MAX, 1},
                {"note", F_STRING, false, STORE_NOTE_MAX, 0}},
     .caps = {{"uses", "invite_max_uses"}},
     .fn = op_invite_create},
    {.name = "invite.list", .access = OP_ADMIN, .fn = op_invite_list},
    {.name = "invite.revoke",
     .access = OP_ADMIN,
     .writes = true,
     .fields = {{"invite", F_INT, true, KZ_POS_MAX, 1}},
     .fn = op_invite_revoke},
    /* federation: the peer servers this one is paired with (docs/federation.md) */
    {.name = "peer.add",
     .access = OP_ADMIN,
     .writes = true,
     .fields = {REQ("server", STORE_ORIGIN_MAX),
                REQ("key", 64),
                {"addresses", F_STRINGS, true, 0, 0},
                REQ("fingerprint", 128),
                OPT("tls_pin", 64),
                {"name", F_STRING, false, STORE_NAME_MAX, 0}},
     .caps = {{"addresses", "peer_max_addresses"}},
     .fn = op_peer_add},
    {.name = "peer.list", .access = OP_ADMIN, .fn = op_peer_list},
    {.name = "admin.status", .access = OP_ADMIN, .fn = op_admin_status},
    {.name = "peer.remove",
     .access = OP_ADMIN,
     .writes = true,
     .fields = {REQ("server", STORE_ORIGIN_MAX)},
     .fn = op_peer_remove},
    {.name = "join",
     .access = OP_ANON,
     .fields = {REQ("code", 64),
                LOGIN_ARG,
                OPT("name", STORE_NAME_MAX),
                REQ("password", 255),
                OPT("device", STORE_DEVICE_MAX),
                {"shared", F_BOOL, false, 0, 0},
                {"email", F_STRING, false, STORE_EMAIL_MAX, 0},
                {"phone", F_STRING, false, STORE_PHONE_MAX, 0}},
     .fn = op_join},
    /* end-to-end encrypted photos */
    {.name = "device.register",
     .access = OP_USER,
     .writes = true,
     .fields = {REQ("sign_pk", 64), REQ("box_pk", 64), REQ("sig", 128),
                OPT("label", STORE_DEVICE_MAX)},
     .fn = op_device_register},
    {.name = "device.list",
     .access = OP_USER,
     .fields = {OPT("login", STORE_LOGIN_MAX)},
     .fn = op_device_list},
    {.name = "device.revoke",
     .access = OP_USER,
     .writes = true,
     .allowed_before_pwchange = true,
     .fields = {REQ("device", STORE_DEVICE_ID_MAX)},
     .fn = op_device_revoke},
    {.name = "device.sign",
     .access = OP_USER,
     .writes = true,
     .fields = {REQ("list", 8192), REQ("device", STORE_DEVICE_ID_MAX), REQ("sig", 128)},
     .fn = op_device_sign},
    {.name = "room.devices", .access = OP_USER, .fields = {ROOM_ARG}, .fn = op_room_devices},
    /* where a room's photo blobs stand here, fetched from other servers (ops_blobs.c) */
    {.name = "blob.status",
     .access = OP_USER,
     .fields = {ROOM_ARG, {"blobs", F_STRINGS, true, 64, 0}},
     .fn = op_blob_status},
    {.name = "e2ee.post",
     .access = OP_USER,
     .writes = true,
     .fields = {ROOM_ARG,
                REQ("type", STORE_TYPE_MAX),
                REQ("device", STORE_DEVICE_ID_MAX),
                REQ("data", 0),
                REQ("sig", 128),
                {"blobs", F_STRINGS, false, 16, 0},
                OPT("client_id", 64)},
     .caps = {{"data", "e2ee_max_bytes"}},
     .fn = op_e2ee_post},
    {.name = "dept.list", .access = OP_USER, .fn = op_dept_list},
    {.name = "group.list", .access = OP_USER, .fn = op_group_list},
    /* rooms */
    {.name = "room.create",
     .access = OP_USER,
     .writes = true,
     .fields = {REQ("name", STORE_NAME_MAX),
                OPT("topic", STORE_TOPIC_MAX),
                {"members", F_LOGINS, false, 0, 0},
                OPT("history", 7),
                {"confirm", F_BOOL, false, 0, 0},
                OPT("policy_device", STORE_DEVICE_ID_MAX),
                OPT("policy_sig", 128),
                {"servers", F_STRINGS, false, 16, 0}},
     .caps = {{"members", "room_max_members"}},
     .fn = op_room_create},
    {.name = "room.direct",
     .access = OP_USER,
     .writes = true,
     .fields = {REQ("user", STORE_LOGIN_MAX), OPT("policy_device", STORE_DEVICE_ID_MAX),
                OPT("policy_sig", 128)},
     .fn = op_room_direct},
    {.name = "room.update",
     .access = OP_USER,
     .writes = true,
     .fields = {ROOM_ARG,
                OPT("name", STORE_NAME_MAX),
                {"topic", F_STRING, false, STORE_TOPIC_MAX, 0}},
     .fn = op_room_update},
    {.name = "room.invite",
     .access = OP_USER,
     .writes = true,
     .fields = {ROOM_ARG, REQ("user", STORE_LOGIN_MAX)},
     .fn = op_room_invite},
    {.name = "room.remove",
     .access = OP_USER,
     .writes = true,
     .fields = {ROOM_ARG, REQ("user", STORE_LOGIN_MAX)},
     .fn = op_room_remove},
    {.name = "room.leave",
     .access = OP_USER,
     .writes = true,
     .fields = {ROOM_ARG},
     .fn = op_room_leave},
    {.name = "room.admin",
     .access = OP_USER,
     .writes = true,
     .fields = {ROOM_ARG, REQ("user", STORE_LOGIN_MAX), {"admin", F_BOOL, true, 0, 0}},
     .fn = op_room_admin},
    {.name = "room.members", .access = OP_USER, .fields = {ROOM_ARG}, .fn = op_room_members},
    /* counterpart hotline rooms (ops_hotline.c) */
    {.name = "hotline.create",
     .access = OP_ADMIN,
     .writes = true,
     .fields = {REQ("name", STORE_NAME_MAX),
                OPT("topic", STORE_TOPIC_MAX),
                {"roles", F_STRINGS, true, 16, 0},
                OPT("policy_device", STORE_DEVICE_ID_MAX),
                OPT("policy_sig", 128)},
     .fn = op_hotline_create},
    {.name = "hotline.role",
     .access = OP_USER,
     .writes = true,
     .fields = {ROOM_ARG, REQ("server", STORE_SERVER_ID_MAX), REQ("role", 16)},
     .fn = op_hotline_role},
    {.name = "hotline.seat",
     .access = OP_USER,
     .writes = true,
     .fields = {ROOM_ARG,
                REQ("seat", STORE_SEAT_MAX),
                OPT("user", STORE_LOGIN_MAX),
                {"on_duty", F_BOOL, false, 0, 0}},
     .fn = op_hotline_seat},
    {.name = "hotline.list",
     .access = OP_ADMIN,
     .fields = {{"csv", F_BOOL, false, 0, 0}},
     .fn = op_hotline_list},
    /* the authority of a shared room: a room admin (ops_rooms.c) */
    {.name = "room.authority",
     .access = OP_USER,
     .writes = true,
     .fields = {ROOM_ARG, REQ("server", STORE_SERVER_ID_MAX)},
     .fn = op_room_authority},
    {.name = "room.server",
     .access = OP_USER,
     .writes = true,
     .fields = {ROOM_ARG, REQ("server", STORE_SERVER_ID_MAX), {"admitted", F_BOOL, false, 0, 0}},
     .fn = op_room_server},
    /* a member of the room, or an admin (ops_fed_rooms.c) */
    {.name = "room.servers",
     .access = OP_USER,
     .fields = {ROOM_ARG, {"pos", F_INT, false, KZ_POS_MAX, 1}},
     .fn = op_room_servers},
    {.name = "room.list",
     .access = OP_USER,
     .fields = {{"archived", F_BOOL, false, 0, 0}},
     .fn = op_room_list},
    {.name = "room.archive",
     .access = OP_USER,
     .writes = true,
     .fields = {ROOM_ARG, {"archived", F_BOOL, false, 0, 0}},
     .fn = op_room_archive},
    {.name = "room.export",
     .access = OP_USER,
     .fields = {ROOM_ARG, {"after", F_INT, false, KZ_POS_MAX, 0}, LIMIT_ARG},
     .fn = op_room_export},
    /* talk */
    {.name = "msg.send",
     .access = OP_USER,
     .writes = true,
     .no_savepoint = true,
     .fields = {ROOM_ARG, REQ("body", 0), OPT("client_id", 64), {"urgent", F_BOOL, false, 0, 0}},
     .caps = {{"body", "max_message_bytes"}},
     .fn = op_msg_send},
    {.name = "msg.edit",
     .access = OP_USER,
     .writes = true,
     .fields = {ROOM_ARG, POS_ARG, REQ("body", 0)},
     .caps = {{"body", "max_message_bytes"}},
     .fn = op_msg_edit},
    {.name = "msg.delete",
     .access = OP_USER,
     .writes = true,
     .fields = {ROOM_ARG, POS_ARG},
     .fn = op_msg_delete},
    {.name = "history",
     .access = OP_USER,
     .fields = {ROOM_ARG,
                {"before", F_INT, false, KZ_POS_MAX, 1},
                {"after", F_INT, false, KZ_POS_MAX, 0},
                LIMIT_ARG},
     .fn = op_history},
    {.name = "sync",
     .access = OP_USER,
     .fields = {{"since", F_INT, false, KZ_POS_MAX, 0}, LIMIT_ARG},
     .fn = op_sync},
    {.name = "read",
     .access = OP_USER,
     .writes = true,
     .fields = {ROOM_ARG, {"pos", F_INT, false, KZ_POS_MAX, 1}},
     .fn = op_read},
    {.name = "readers", .access = OP_USER, .fields = {ROOM_ARG, POS_ARG}, .fn = op_readers},
    {.name = "search",
     .access = OP_USER,
     .fields = {REQ("query", 256),
                OPT("room", STORE_ROOM_ID_MAX),
                {"before", F_INT, false, KZ_POS_MAX, 1},
                LIMIT_ARG},
     .fn = op_search},
    /* notices */
    {.name = "notice.post",
     .access = OP_USER,
     .writes = true,
     .fields = {REQ("title", STORE_NAME_MAX),
                REQ("body", 0),
                {"to", F_STRINGS, true, 1000, 0},
                OPT("priority", 16),
                OPT("category", 64),
                {"ask_ack", F_BOOL, false, 0, 0},
                {"choices", F_STRINGS, false, 20, 0},
                {"expires_at", F_INT, false, KZ_POS_MAX, 1},
                {"pinned", F_BOOL, false, 0, 0},
                OPT("announce_room", STORE_ROOM_ID_MAX)},
     .caps = {{"body", "notice_max_body_bytes"}},
     .fn = op_notice_post},
    {.name = "notice.edit",
     .access = OP_USER,
     .writes = true,
     .fields = {NOTICE_ARG, OPT("title", STORE_NAME_MAX), OPT("body", 0)},
     .caps = {{"body", "notice_max_body_bytes"}},
     .fn = op_notice_edit},
    {.name = "notice.withdraw",
     .access = OP_USER,
     .writes = true,
     .fields = {NOTICE_ARG},
     .fn = op_notice_withdraw},
    {.name = "notice.list",
     .access = OP_USER,
     .fields = {{"posted", F_BOOL, false, 0, 0}, {"all", F_BOOL, false, 0, 0}, LIMIT_ARG},
     .fn = op_notice_list},
    {.name = "notice.show",
     .access = OP_USER,
     .writes = true,
     .fields = {NOTICE_ARG},
     .fn = op_notice_show},
    {.name = "notice.ack",
     .access = OP_USER,
     .writes = true,
     .fields = {NOTICE_ARG},
     .fn = op_notice_ack},
    {.name = "notice.respond",
     .access = OP_USER,
     .writes = true,
     .fields = {NOTICE_ARG, REQ("choice", STORE_NAME_MAX), OPT("comment", 1000)},
     .fn = op_notice_respond},
    {.name = "notice.report",
     .access = OP_USER,
     .fields = {NOTICE_ARG, OPT("format", 8), LIMIT_ARG},
     .fn = op_notice_report},
    {.name = "notice.remind",
     .access = OP_USER,
     .writes = true,
     .fields = {NOTICE_ARG},
     .fn = op_notice_remind},
};

const struct srv_op *srv_op_table(size_t *count)
{
    *count = sizeof ops / sizeof ops[0];
    return ops;
}

#define OP_COUNT (sizeof ops / sizeof ops[0])
_Static_assert(OP_COUNT <= SRV_OPS_MAX, "raise SRV_OPS_MAX");

size_t srv_op_index(const struct srv_op *op)
{
    return op ? (size_t)(op - ops) : OP_COUNT;
}

/* The ops by name, for a binary search: every request looks its op up, and walking the table
 * with strcmp cost ~1,250 instructions for msg.send (about 50 names before it), ~150 this
 * way (callgrind). Names are unique (test_proto). */
static const struct srv_op *by_name[OP_COUNT];
static pthread_once_t by_name_once = PTHREAD_ONCE_INIT;

static int op_name_cmp(const void *a, const void *b)
{
    return strcmp((*(const struct srv_op *const *)a)->name,
                  (*(const struct srv_op *const *)b)->name);
}

static void by_name_sort(void)
{
    for (size_t i = 0; i < OP_COUNT; i++)
        by_name[i] = &ops[i];
    qsort(by_name, OP_COUNT, sizeof by_name[0], op_name_cmp);
}

/* bsearch's comparison: a name against an entry of by_name. */
static int name_key_cmp(const void *key, const void *entry)
{
    return strcmp(key, (*(const struct srv_op *const *)entry)->name);
}

const struct srv_op *srv_op_find(const char *name)
{
    pthread_once(&by_name_once, by_name_sort);
    const struct srv_op *const *hit =
        bsearch(name, by_name, OP_COUNT, sizeof by_name[0], name_key_cmp);
    return hit ? *hit : NULL;
}
