/* test_talk.c - talk rooms against the real kizunad, with several real clients. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "harness.h"

#define PW "password-1234"

static struct kzd d;
static struct ws admin;

static void setup(void)
{
    kzd_setup(&d);
    cr_assert(ws_open(&admin, d.port));
    cr_assert(ws_login(&admin, "admin", TEST_ADMIN_PASSWORD, NULL));
    const char *users[] = {"tanaka", "sato", "suzuki", "outsider"};
    for (size_t i = 0; i < sizeof users / sizeof users[0]; i++) {
        cJSON *r = ws_callf(&admin, "\"op\":\"user.add\",\"login\":\"%s\",\"password\":\"%s\"",
                            users[i], PW);
        cr_assert_str_eq(reply_code(r), "ok");
        cJSON_Delete(r);
    }
}

static void teardown(void)
{
    ws_close_fd(&admin);
    kzd_teardown(&d);
}

TestSuite(talk, .init = setup, .fini = teardown, .timeout = 90);

/* Creates a group room as `w`'s user with the given members; returns its id (static). */
static const char *create_room(struct ws *w, const char *name, const char *members_json)
{
    static char id[64];
    cJSON *r =
        ws_callf(w, "\"op\":\"room.create\",\"name\":\"%s\",\"members\":%s", name, members_json);
    cr_assert_str_eq(reply_code(r), "ok", "room.create");
    reply_room(r, id, sizeof id);
    cJSON_Delete(r);
    return id;
}

static long long send_msg(struct ws *w, const char *room, const char *body)
{
    cJSON *r = ws_callf(w, "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"%s\"", room, body);
    cr_assert_str_eq(reply_code(r), "ok", "msg.send %s", body);
    long long pos = (long long)cJSON_GetObjectItem(r, "pos")->valuedouble;
    cJSON_Delete(r);
    return pos;
}

/* The next pushed event of a type, skipping others (membership, read updates). */
static cJSON *next_of(struct ws *w, const char *type, int timeout_ms)
{
    for (;;) {
        cJSON *e = ws_next_event(w, timeout_ms);
        if (!e)
            return NULL;
        if (strcmp(cJSON_GetObjectItem(e, "event")->valuestring, type) == 0)
            return e;
        cJSON_Delete(e);
    }
}

static const char *body_of(const cJSON *e)
{
    return cJSON_GetObjectItem(cJSON_GetObjectItem(e, "content"), "body")->valuestring;
}

Test(talk, a_message_reaches_every_session_of_every_member)
{
    const char *room = create_room(&admin, "本部", "[\"tanaka\",\"sato\"]");
    struct ws t_phone, t_pc, s, o;
    ws_live(&t_phone, d.port, "tanaka", PW, -1, NULL);
    ws_live(&t_pc, d.port, "tanaka", PW, -1, NULL);
    ws_live(&s, d.port, "sato", PW, -1, NULL);
    ws_live(&o, d.port, "outsider", PW, -1, NULL);
    long long pos = send_msg(&admin, room, "全員に届くこと");
    struct ws *receivers[] = {&t_phone, &t_pc, &s};
    for (size_t i = 0; i < 3; i++) {
        cJSON *e = next_of(receivers[i], "msg", 5000);
        cr_assert_not_null(e, "receiver %zu got nothing", i);
        cr_assert_eq((long long)cJSON_GetObjectItem(e, "pos")->valuedouble, pos);
        cr_assert_str_eq(body_of(e), "全員に届くこと");
        cr_assert_str_eq(cJSON_GetObjectItem(e, "sender")->valuestring, "admin");
        cJSON_Delete(e);
    }
    cJSON *leak = next_of(&o, "msg", 500);
    cr_assert_null(leak, "a non-member must not receive the room's events");
    ws_close_fd(&t_phone);
    ws_close_fd(&t_pc);
    ws_close_fd(&s);
    ws_close_fd(&o);
}

Test(talk, a_non_member_can_neither_read_send_search_nor_see_the_room)
{
    const char *room = create_room(&admin, "秘密の部屋", "[\"tanaka\"]");
    send_msg(&admin, room, "秘密の冠水情報");
    struct ws o;
    cJSON *events = cJSON_CreateArray();
    ws_live(&o, d.port, "outsider", PW, 0, events);
    cr_assert_eq(cJSON_GetArraySize(events), 0, "sync from 0 shows nothing of the room");
    cJSON_Delete(events);
    const char *ops[] = {
        "\"op\":\"history\"",
        "\"op\":\"msg.send\",\"body\":\"入れて\"",
        "\"op\":\"room.members\"",
        "\"op\":\"readers\",\"pos\":1",
        "\"op\":\"read\"",
        "\"op\":\"room.invite\",\"user\":\"outsider\"",
        "\"op\":\"search\",\"query\":\"冠水\"",
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        cJSON *r = ws_callf(&o, "%s,\"room\":\"%s\"", ops[i], room);
        cr_assert_str_eq(reply_code(r), "not_found", "op %zu", i);
        cJSON_Delete(r);
    }
    cJSON *r = ws_callf(&o, "\"op\":\"search\",\"query\":\"冠水情報\"");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "results")), 0);
    cJSON_Delete(r);
    r = ws_callf(&o, "\"op\":\"room.list\"");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "rooms")), 0);
    cJSON_Delete(r);
    /* Same answer as for a room that does not exist at all. */
    r = ws_callf(&o, "\"op\":\"history\",\"room\":\"no-such-room\"");
    cr_assert_str_eq(reply_code(r), "not_found");
    cJSON_Delete(r);
    ws_close_fd(&o);
}

Test(talk, a_retry_with_the_same_client_id_makes_one_message)
{
    const char *room = create_room(&admin, "再送", "[]");
#define ONCE "\"op\":\"msg.send\",\"room\":\"%s\",\"body\":\"一度だけ\",\"client_id\":\"abc-1\""
    cJSON *a = ws_callf(&admin, ONCE, room);
    /* The retry comes on a new connection, as after a dropped one. */
    struct ws again;
    cr_assert(ws_open(&again, d.port));
    cr_assert(ws_login(&again, "admin", TEST_ADMIN_PASSWORD, NULL));
    cJSON *b = ws_callf(&again, ONCE, room);
    cr_assert_str_eq(reply_code(a), "ok");
    cr_assert_str_eq(reply_code(b), "ok");
    cr_assert_eq(cJSON_GetObjectItem(a, "pos")->valuedouble,
                 cJSON_GetObjectItem(b, "pos")->valuedouble);
    cr_assert_str_eq(cJSON_GetObjectItem(a, "event_id")->valuestring,
                     cJSON_GetObjectItem(b, "event_id")->valuestring);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(b, "duplicate")));
    cJSON_Delete(a);
    cJSON_Delete(b);
    cJSON *h = ws_callf(&again, "\"op\":\"history\",\"room\":\"%s\"", room);
    int msgs = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(h, "events")) msgs +=
        strcmp(cJSON_GetObjectItem(e, "event")->valuestring, "msg") == 0;
    cr_assert_eq(msgs, 1);
    cJSON_Delete(h);
    ws_close_fd(&again);
}

/* Collects the bodies of msg events, asserting strictly increasing positions. */
static int collect(cJSON *events, char bodies[][32], int max, long long *last)
{
    int n = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, events)
    {
        long long pos = (long long)cJSON_GetObjectItem(e, "pos")->valuedouble;
        cr_assert_gt(pos, *last, "positions go up, never repeat");
        *last = pos;
        if (strcmp(cJSON_GetObjectItem(e, "event")->valuestring, "msg") == 0 && n < max)
            snprintf(bodies[n++], 32, "%s", body_of(e));
    }
    return n;
}

Test(talk, resume_gets_every_acknowledged_message_once_across_restart_and_kill_9)
{
    const char *r = create_room(&admin, "再開", "[\"tanaka\"]");
    char room[64];
    snprintf(room, sizeof room, "%s", r);
    struct ws t;
    long long last = ws_live(&t, d.port, "tanaka", PW, -1, NULL);
    char sent[30][32];
    int nsent = 0;
    /* Live for a while, then the client drops. */
    for (; nsent < 5; nsent++) {
        snprintf(sent[nsent], 32, "m%d", nsent);
        send_msg(&admin, room, sent[nsent]);
    }
    char got[64][32];
    int ngot = 0;
    for (int i = 0; i < 5; i++) {
        cJSON *e = next_of(&t, "msg", 5000);
        cr_assert_not_null(e);
        cJSON *arr = cJSON_CreateArray();
        cJSON_AddItemToArray(arr, e);
        ngot += collect(arr, got + ngot, 64 - ngot, &last);
        cJSON_Delete(arr);
    }
    ws_close_fd(&t);
    for (; nsent < 12; nsent++) {
        snprintf(sent[nsent], 32, "m%d", nsent);
        send_msg(&admin, room, sent[nsent]);
    }
    /* A clean restart, more messages, then kill -9 right after acknowledgements. */
    ws_close_fd(&admin);
    cr_assert_eq(kzd_stop(&d), 0);
    kzd_start(&d);
    cr_assert(ws_open(&admin, d.port));
    cr_assert(ws_login(&admin, "admin", TEST_ADMIN_PASSWORD, NULL));
    for (; nsent < 20; nsent++) {
        snprintf(sent[nsent], 32, "m%d", nsent);
        send_msg(&admin, room, sent[nsent]);
    }
    kzd_kill(&d);
    ws_close_fd(&admin);
    kzd_start(&d);
    cr_assert(ws_open(&admin, d.port));
    cr_assert(ws_login(&admin, "admin", TEST_ADMIN_PASSWORD, NULL));
    /* Resume in pages of 7 from the last position seen. */
    cJSON *events = cJSON_CreateArray();
    ws_live(&t, d.port, "tanaka", PW, last, events);
    ngot += collect(events, got + ngot, 64 - ngot, &last);
    cJSON_Delete(events);
    /* And live again after the resume. */
    for (; nsent < 23; nsent++) {
        snprintf(sent[nsent], 32, "m%d", nsent);
        send_msg(&admin, room, sent[nsent]);
    }
    for (int i = 20; i < 23; i++) {
        cJSON *e = next_of(&t, "msg", 5000);
        cr_assert_not_null(e);
        cJSON *arr = cJSON_CreateArray();
        cJSON_AddItemToArray(arr, e);
        ngot += collect(arr, got + ngot, 64 - ngot, &last);
        cJSON_Delete(arr);
    }
    cr_assert_eq(ngot, nsent, "got %d of %d", ngot, nsent);
    for (int i = 0; i < nsent; i++)
        cr_assert_str_eq(got[i], sent[i], "message %d in order", i);
    cr_assert_null(next_of(&t, "msg", 300), "and nothing twice");
    ws_close_fd(&t);
}

Test(talk, read_counts_and_readers)
{
    const char *room = create_room(&admin, "既読", "[\"tanaka\",\"sato\",\"suzuki\"]");
    struct ws t, s;
    ws_live(&t, d.port, "tanaka", PW, -1, NULL);
    ws_live(&s, d.port, "sato", PW, -1, NULL);
    long long p1 = send_msg(&admin, room, "一つ目");
    long long p2 = send_msg(&admin, room, "二つ目");
    cJSON *r = ws_callf(&t, "\"op\":\"read\",\"room\":\"%s\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    r = ws_callf(&s, "\"op\":\"read\",\"room\":\"%s\",\"pos\":%lld", room, p1);
    cJSON_Delete(r);
    /* The sender's own marker passes its messages but never counts. */
    r = ws_callf(&admin, "\"op\":\"history\",\"room\":\"%s\"", room);
    long long c1 = -1, c2 = -1;
    cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(r, "events"))
    {
        long long pos = (long long)cJSON_GetObjectItem(e, "pos")->valuedouble;
        if (pos == p1)
            c1 = (long long)cJSON_GetObjectItem(e, "read_count")->valuedouble;
        if (pos == p2)
            c2 = (long long)cJSON_GetObjectItem(e, "read_count")->valuedouble;
    }
    cJSON_Delete(r);
    cr_assert_eq(c1, 2, "tanaka and sato read the first");
    cr_assert_eq(c2, 1, "only tanaka read the second");

    r = ws_callf(&admin, "\"op\":\"readers\",\"room\":\"%s\",\"pos\":%lld", room, p2);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "read")), 1);
    cr_assert_str_eq(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "read"), 0), "login")
            ->valuestring,
        "tanaka");
    cr_assert_gt(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "read"), 0), "at")
                     ->valuedouble,
                 0);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "unread")), 2, "sato and suzuki");
    cJSON_Delete(r);

    /* Members who are live see the counts rise, coalesced into `read` events. */
    long long live_count = -1;
    for (cJSON *ev; live_count < 2 && (ev = next_of(&s, "read", 3000));) {
        cJSON *pair;
        cJSON_ArrayForEach(
            pair, cJSON_GetObjectItem(
                      ev, "counts")) if ((long long)cJSON_GetArrayItem(pair, 0)->valuedouble == p1)
            live_count = (long long)cJSON_GetArrayItem(pair, 1)->valuedouble;
        cJSON_Delete(ev);
    }
    cr_assert_eq(live_count, 2, "the live read count of the first message");

    r = ws_callf(&t, "\"op\":\"room.list\"");
    cJSON *room0 = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "rooms"), 0);
    cr_assert_eq(cJSON_GetObjectItem(room0, "unread")->valuedouble, 0);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(room0, "last"), "body")->valuestring,
                     "二つ目");
    /* The sender's name too, for a room list that shows people, not logins. */
    cr_assert(
        cJSON_IsString(cJSON_GetObjectItem(cJSON_GetObjectItem(room0, "last"), "sender_name")));
    cJSON_Delete(r);
    r = ws_callf(&s, "\"op\":\"room.list\"");
    room0 = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "rooms"), 0);
    cr_assert_eq(cJSON_GetObjectItem(room0, "unread")->valuedouble, 1);
    cJSON_Delete(r);
    ws_close_fd(&t);
    ws_close_fd(&s);
}

Test(talk, search_finds_japanese_words_inside_sentences)
{
    const char *room = create_room(&admin, "検索", "[\"tanaka\"]");
    send_msg(&admin, room, "県道12号線が冠水しています");
    send_msg(&admin, room, "第二避難所を開設しました");
    send_msg(&admin, room, "土砂崩れで通行止め");
    struct {
        const char *q;
        const char *expect;
    } cases[] = {
        {"冠水", "県道12号線が冠水しています"},   /* two characters */
        {"号線が", "県道12号線が冠水しています"}, /* three: the trigram index */
        {"避難所", "第二避難所を開設しました"},
        {"土砂崩れ", "土砂崩れで通行止め"},
    };
    struct ws t;
    cr_assert(ws_open(&t, d.port));
    cr_assert(ws_login(&t, "tanaka", PW, NULL));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *r = ws_callf(&t, "\"op\":\"search\",\"query\":\"%s\"", cases[i].q);
        cr_assert_str_eq(reply_code(r), "ok");
        cJSON *res = cJSON_GetObjectItem(r, "results");
        cr_assert_eq(cJSON_GetArraySize(res), 1, "query %s", cases[i].q);
        cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 0), "body")->valuestring,
                         cases[i].expect);
        cJSON_Delete(r);
    }
    /* Newest first; an edit is found by its new text; a deleted message is not found. */
    long long p = send_msg(&admin, room, "冠水は解消");
    cJSON *r = ws_callf(&t, "\"op\":\"search\",\"query\":\"冠水\"");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "results")), 2);
    cr_assert_eq(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "results"), 0), "pos")
            ->valuedouble,
        p);
    cJSON_Delete(r);
    r = ws_callf(&admin, "\"op\":\"msg.edit\",\"room\":\"%s\",\"pos\":%lld,\"body\":\"道路は復旧\"",
                 room, p);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    r = ws_callf(&t, "\"op\":\"search\",\"query\":\"道路は復旧\"");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "results")), 1);
    cJSON_Delete(r);
    r = ws_callf(&admin, "\"op\":\"msg.delete\",\"room\":\"%s\",\"pos\":%lld", room, p);
    cJSON_Delete(r);
    r = ws_callf(&t, "\"op\":\"search\",\"query\":\"道路は復旧\"");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "results")), 0);
    cJSON_Delete(r);
    ws_close_fd(&t);
}

Test(talk, edits_and_deletes_are_events_and_history_shows_the_latest)
{
    const char *room = create_room(&admin, "編集", "[\"tanaka\"]");
    struct ws t;
    ws_live(&t, d.port, "tanaka", PW, -1, NULL);
    long long p = send_msg(&admin, room, "誤字あり");
    cJSON *r =
        ws_callf(&t, "\"op\":\"msg.edit\",\"room\":\"%s\",\"pos\":%lld,\"body\":\"x\"", room, p);
    cr_assert_str_eq(reply_code(r), "forbidden", "only the author edits");
    cJSON_Delete(r);
    r = ws_callf(&admin, "\"op\":\"msg.edit\",\"room\":\"%s\",\"pos\":%lld,\"body\":\"誤字なし\"",
                 room, p);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    cJSON *e = next_of(&t, "msg.edit", 5000);
    cr_assert_not_null(e);
    cr_assert_eq(cJSON_GetObjectItem(e, "target_pos")->valuedouble, p);
    cJSON_Delete(e);
    r = ws_callf(&admin, "\"op\":\"history\",\"room\":\"%s\",\"limit\":1", room);
    cJSON *last = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "events"), 0);
    cr_assert_str_eq(body_of(last), "誤字なし");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(last, "edited")));
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "more")));
    cJSON_Delete(r);
    r = ws_callf(&admin, "\"op\":\"msg.delete\",\"room\":\"%s\",\"pos\":%lld", room, p);
    cJSON_Delete(r);
    r = ws_callf(&admin, "\"op\":\"history\",\"room\":\"%s\",\"limit\":1", room);
    last = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "events"), 0);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(last, "deleted")));
    cr_assert_str_eq(body_of(last), "");
    cJSON_Delete(r);
    ws_close_fd(&t);
}

Test(talk, membership_changes_are_events_and_removal_stops_delivery)
{
    const char *room = create_room(&admin, "班", "[\"tanaka\"]");
    struct ws t, s;
    ws_live(&t, d.port, "tanaka", PW, -1, NULL);
    ws_live(&s, d.port, "sato", PW, -1, NULL);
    cJSON *r = ws_callf(&t, "\"op\":\"room.invite\",\"room\":\"%s\",\"user\":\"sato\"", room);
    cr_assert_str_eq(reply_code(r), "forbidden", "only room admins invite");
    cJSON_Delete(r);
    r = ws_callf(&admin, "\"op\":\"room.invite\",\"room\":\"%s\",\"user\":\"sato\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    cJSON *e = next_of(&s, "member", 5000);
    cr_assert_not_null(e, "the invitee learns of the room");
    cJSON_Delete(e);
    send_msg(&admin, room, "ようこそ");
    e = next_of(&s, "msg", 5000);
    cr_assert_not_null(e);
    cJSON_Delete(e);
    r = ws_callf(&admin, "\"op\":\"room.remove\",\"room\":\"%s\",\"user\":\"sato\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    e = next_of(&s, "member", 5000);
    cr_assert_not_null(e, "the removed member is told");
    cr_assert_str_eq(
        cJSON_GetObjectItem(cJSON_GetObjectItem(e, "content"), "membership")->valuestring,
        "remove");
    cJSON_Delete(e);
    send_msg(&admin, room, "さようなら");
    cr_assert_null(next_of(&s, "msg", 500), "nothing after removal");
    e = next_of(&t, "msg", 5000);
    cr_assert_not_null(e);
    cJSON_Delete(e);
    r = ws_callf(&t, "\"op\":\"room.members\",\"room\":\"%s\"", room);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "members")), 2);
    cJSON_Delete(r);
    /* The last admin leaving hands the room to the longest-standing member. */
    r = ws_callf(&admin, "\"op\":\"room.leave\",\"room\":\"%s\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    e = next_of(&t, "member.role", 5000);
    cr_assert_not_null(e);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(e, "content"), "user")->valuestring,
                     "tanaka");
    cJSON_Delete(e);
    ws_close_fd(&t);
    ws_close_fd(&s);
}

Test(talk, one_to_one_rooms_are_found_from_either_side)
{
    struct ws t;
    cr_assert(ws_open(&t, d.port));
    cr_assert(ws_login(&t, "tanaka", PW, NULL));
    cJSON *a = ws_callf(&admin, "\"op\":\"room.direct\",\"user\":\"tanaka\"");
    cJSON *b = ws_callf(&t, "\"op\":\"room.direct\",\"user\":\"admin\"");
    cJSON *c = ws_callf(&admin, "\"op\":\"room.direct\",\"user\":\"tanaka\"");
    const char *ida = cJSON_GetObjectItem(cJSON_GetObjectItem(a, "room"), "room")->valuestring;
    cr_assert_str_eq(ida, cJSON_GetObjectItem(cJSON_GetObjectItem(b, "room"), "room")->valuestring);
    cr_assert_str_eq(ida, cJSON_GetObjectItem(cJSON_GetObjectItem(c, "room"), "room")->valuestring);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "room"), "with")->valuestring,
                     "admin");
    cJSON_Delete(a);
    cJSON_Delete(b);
    cJSON_Delete(c);
    cJSON *r = ws_callf(&t, "\"op\":\"room.direct\",\"user\":\"tanaka\"");
    cr_assert_str_eq(reply_code(r), "bad_request");
    cJSON_Delete(r);
    ws_close_fd(&t);
}

Test(talk, a_stalled_client_is_dropped_and_everyone_else_keeps_going)
{
    const char *r = create_room(&admin, "遅延", "[\"tanaka\",\"sato\"]");
    char room[64];
    snprintf(room, sizeof room, "%s", r);
    struct ws slow, ok;
    /* The stalled client stops reading; its socket buffer is kept tiny, so the server's own
     * queue (max_queue_bytes 64 KiB in the test config) is what fills. */
    ws_live_rcvbuf(&slow, d.port, 4096, "tanaka", PW, -1, NULL);
    long long ok_last = ws_live(&ok, d.port, "sato", PW, -1, NULL);
    char body[8001];
    memset(body, 'x', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    int sent = 0;
    for (; sent < 80; sent++) {
        send_msg(&admin, room, body);
        cJSON *e = next_of(&ok, "msg", 5000); /* the healthy member keeps up throughout */
        cr_assert_not_null(e, "healthy client starved at %d", sent);
        ok_last = (long long)cJSON_GetObjectItem(e, "pos")->valuedouble;
        cJSON_Delete(e);
    }
    /* The stalled client was cut off: draining its socket ends in a close frame. */
    cr_assert_eq(ws_wait_close(&slow, 10000), 1008);
    cr_assert(strstr(slow.close_reason, "slow consumer"), "%s", slow.close_reason);
    ws_close_fd(&slow);
    /* It resumes and gets every message exactly once. */
    cJSON *events = cJSON_CreateArray();
    struct ws again;
    ws_live(&again, d.port, "tanaka", PW, 0, events);
    int msgs = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, events) msgs +=
        strcmp(cJSON_GetObjectItem(e, "event")->valuestring, "msg") == 0;
    cr_assert_eq(msgs, sent);
    cJSON_Delete(events);
    (void)ok_last;
    ws_close_fd(&again);
    ws_close_fd(&ok);
}

/* A page of large events is cut by bytes (at 1 MiB with the test config's 64 KiB queue; 100
 * messages of 12 KB are 1.2 MB), and a reply larger than the queue does not close the reader
 * as a slow consumer: it pages through history and sync, gets each message once, and stays
 * connected. */
Test(talk, pages_of_large_events_are_cut_by_bytes_and_the_reader_stays_connected)
{
    const char *r = create_room(&admin, "大きな報告", "[\"tanaka\"]");
    char room[64];
    snprintf(room, sizeof room, "%s", r);
    static char body[12001];
    memset(body, 'y', sizeof body - 1);
    enum { N = 100 };
    for (int i = 0; i < N; i++) {
        snprintf(body, 8, "%03d", i);
        body[3] = 'y';
        send_msg(&admin, room, body);
    }
    struct ws w;
    cr_assert(ws_open(&w, d.port));
    cr_assert(ws_login(&w, "tanaka", PW, NULL));
    bool seen[N] = {false};
    int pages = 0, got = 0;
    long long before = 0;
    for (bool more = true; more; pages++) {
        cJSON *h = before ? ws_callf(&w,
                                     "\"op\":\"history\",\"room\":\"%s\",\"limit\":200,"
                                     "\"before\":%lld",
                                     room, before)
                          : ws_callf(&w, "\"op\":\"history\",\"room\":\"%s\",\"limit\":200", room);
        cr_assert_str_eq(reply_code(h), "ok", "history page %d", pages);
        more = cJSON_IsTrue(cJSON_GetObjectItem(h, "more"));
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(h, "events"))
        {
            long long pos = (long long)cJSON_GetObjectItem(e, "pos")->valuedouble;
            if (!before || pos < before)
                before = pos;
            if (strcmp(cJSON_GetObjectItem(e, "event")->valuestring, "msg") != 0)
                continue;
            int i = atoi(body_of(e));
            cr_assert(i >= 0 && i < N && !seen[i], "message %d once", i);
            seen[i] = true;
            got++;
        }
        cJSON_Delete(h);
        cr_assert_lt(pages, 100, "history ends");
    }
    cr_assert_eq(got, N, "every message in history");
    cr_assert_geq(pages, 2, "cut into pages by bytes, not one page of 200");
    /* sync from the start: pages too, each not yet live until the last. */
    long long since = 0;
    got = 0;
    for (bool more = true; more;) {
        cJSON *y = ws_callf(&w, "\"op\":\"sync\",\"since\":%lld,\"limit\":200", since);
        cr_assert_str_eq(reply_code(y), "ok", "sync");
        more = cJSON_IsTrue(cJSON_GetObjectItem(y, "more"));
        cr_assert_eq(cJSON_IsTrue(cJSON_GetObjectItem(y, "live")), !more);
        since = (long long)cJSON_GetObjectItem(y, "next")->valuedouble;
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(y, "events")) got +=
            strcmp(cJSON_GetObjectItem(e, "event")->valuestring, "msg") == 0 &&
            strcmp(cJSON_GetObjectItem(e, "room")->valuestring, room) == 0;
        cJSON_Delete(y);
    }
    cr_assert_eq(got, N, "every message in sync");
    ws_close_fd(&w);
}

/* The stored events are signed bytes in hash-chained per-origin logs, and every log ends in a
 * checkpoint signature by the server's key that covers the whole chain. */
Test(talk, event_logs_are_hash_chained_and_signed)
{
    const char *r = create_room(&admin, "署名", "[\"tanaka\"]");
    char room[64];
    snprintf(room, sizeof room, "%s", r);
    for (int i = 0; i < 20; i++) {
        char body[32];
        snprintf(body, sizeof body, "m%d", i);
        send_msg(&admin, room, body);
    }
    cJSON *e =
        ws_callf(&admin, "\"op\":\"msg.edit\",\"room\":\"%s\",\"pos\":%d,\"body\":\"x\"", room, 5);
    cJSON_Delete(e);
    ws_close_fd(&admin);
    cr_assert_eq(kzd_stop(&d), 0);

    struct kzd_log_check lc;
    char err[256];
    cr_assert(kzd_check_event_logs(&d, &lc, err, sizeof err), "%s", err);
    cr_assert_geq(lc.events, 23);
    cr_assert_gt(lc.signatures, 0);
    kzd_start(&d); /* teardown expects a running server */
    cr_assert(ws_open(&admin, d.port));
}

/* ---- issue 13: search people can use, moderation, archiving, same-name rooms ---- */

/* The bodies of a search's results, newest first, joined by '|'. */
static void search_bodies(struct ws *w, const char *query, char *out, size_t n)
{
    cJSON *r = ws_callf(w, "\"op\":\"search\",\"query\":\"%s\"", query);
    cr_assert_str_eq(reply_code(r), "ok", "search %s", query);
    out[0] = '\0';
    const cJSON *hit;
    cJSON_ArrayForEach(hit, cJSON_GetObjectItem(r, "results"))
        snprintf(out + strlen(out), n - strlen(out), "%s%s", out[0] ? "|" : "",
                 cJSON_GetObjectItem(hit, "body")->valuestring);
    cJSON_Delete(r);
}

Test(talk, several_words_find_the_messages_that_have_all_of_them)
{
    const char *room = create_room(&admin, "道路状況", "[\"tanaka\"]");
    send_msg(&admin, room, "県道12号線が冠水しています");
    send_msg(&admin, room, "国道4号は土砂崩れで通行止め");
    send_msg(&admin, room, "市道3号線は冠水のため通行止めです");
    send_msg(&admin, room, "通行止めは18時に解除されました");
    struct ws t;
    cr_assert(ws_open(&t, d.port));
    cr_assert(ws_login(&t, "tanaka", PW, NULL));
    char got[1024];
    struct {
        const char *q, *expect;
    } cases[] = {
        /* 冠水 has two characters (a scan), 通行止め four (the trigram index): both must hold */
        {"冠水 通行止め", "市道3号線は冠水のため通行止めです"},
        {"通行止め 冠水", "市道3号線は冠水のため通行止めです"},
        /* the space a Japanese keyboard types (U+3000), and extra spaces */
        {"冠水\u3000通行止め", "市道3号線は冠水のため通行止めです"},
        {"  通行止め  解除 ", "通行止めは18時に解除されました"},
        {"土砂崩れ 通行止め", "国道4号は土砂崩れで通行止め"},
        {"冠水 号線", "市道3号線は冠水のため通行止めです|県道12号線が冠水しています"},
        {"冠水 解除", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        search_bodies(&t, cases[i].q, got, sizeof got);
        cr_assert_str_eq(got, cases[i].expect, "query '%s'", cases[i].q);
    }
    cJSON *r = ws_callf(&t, "\"op\":\"search\",\"query\":\"\u3000\u3000\"");
    cr_assert_str_eq(reply_code(r), "bad_request", "only spaces: no words");
    cJSON_Delete(r);
    ws_close_fd(&t);
}

Test(talk, a_room_admin_removes_anyones_message_and_everyone_sees_an_admin_did)
{
    const char *room = create_room(&admin, "現地報告", "[\"tanaka\",\"sato\"]");
    struct ws t, s;
    cr_assert(ws_open(&t, d.port));
    cr_assert(ws_login(&t, "tanaka", PW, NULL));
    ws_live(&s, d.port, "sato", PW, -1, NULL);
    long long p = send_msg(&t, room, "個人の電話番号 090-xxxx-xxxx");
    cJSON *r = ws_callf(&s, "\"op\":\"msg.delete\",\"room\":\"%s\",\"pos\":%lld", room, p);
    cr_assert_str_eq(reply_code(r), "forbidden", "a member may not delete another's message");
    cJSON_Delete(r);
    r = ws_callf(&admin, "\"op\":\"msg.edit\",\"room\":\"%s\",\"pos\":%lld,\"body\":\"x\"", room,
                 p);
    cr_assert_str_eq(reply_code(r), "forbidden", "an admin removes, but never rewrites");
    cJSON_Delete(r);
    r = ws_callf(&admin, "\"op\":\"msg.delete\",\"room\":\"%s\",\"pos\":%lld", room, p);
    cr_assert_str_eq(reply_code(r), "ok", "the room admin removes it");
    cJSON_Delete(r);
    cJSON *e = next_of(&s, "msg.delete", 5000);
    cr_assert_not_null(e, "members see the removal live");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(e, "content"), "by_admin")));
    cr_assert_str_eq(cJSON_GetObjectItem(e, "sender")->valuestring, "admin");
    cJSON_Delete(e);
    r = ws_callf(&s, "\"op\":\"history\",\"room\":\"%s\",\"limit\":1", room);
    cJSON *last = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "events"), 0);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(last, "deleted")));
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(last, "deleted_by_admin")), "shown as removed");
    cr_assert_str_eq(cJSON_GetObjectItem(last, "deleted_by")->valuestring, "admin");
    cr_assert_str_eq(body_of(last), "");
    cJSON_Delete(r);
    cr_assert(ws_audit_has(&admin, "msg.remove", "tanaka"), "audited, about the author");
    /* The author deleting its own message is no moderation. */
    long long q = send_msg(&t, room, "誤送信");
    r = ws_callf(&t, "\"op\":\"msg.delete\",\"room\":\"%s\",\"pos\":%lld", room, q);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    r = ws_callf(&t, "\"op\":\"history\",\"room\":\"%s\",\"limit\":1", room);
    last = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "events"), 0);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(last, "deleted_by_admin")));
    cJSON_Delete(r);
    ws_close_fd(&t);
    ws_close_fd(&s);
}

static bool listed(struct ws *w, const char *room, bool archived)
{
    cJSON *r = ws_callf(w, "\"op\":\"room.list\"%s", archived ? ",\"archived\":true" : "");
    cr_assert_str_eq(reply_code(r), "ok");
    bool found = false;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(r, "rooms"))
    {
        found |= strcmp(cJSON_GetObjectItem(it, "room")->valuestring, room) == 0;
    }
    cJSON_Delete(r);
    return found;
}

Test(talk, an_archived_room_is_read_only_unlisted_and_still_searchable_and_exportable)
{
    char room[64];
    snprintf(room, sizeof room, "%s", create_room(&admin, "令和8年台風10号", "[\"tanaka\"]"));
    send_msg(&admin, room, "避難指示を解除しました");
    long long p = send_msg(&admin, room, "=HYPERLINK(\\\"x\\\") 台風10号 対応終了");
    struct ws t;
    ws_live(&t, d.port, "tanaka", PW, -1, NULL);
    cJSON *r = ws_callf(&t, "\"op\":\"room.archive\",\"room\":\"%s\"", room);
    cr_assert_str_eq(reply_code(r), "forbidden", "room admins archive");
    cJSON_Delete(r);
    r = ws_callf(&admin, "\"op\":\"room.archive\",\"room\":\"%s\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "room"), "archived")));
    cJSON_Delete(r);
    cJSON *e = next_of(&t, "room.archive", 5000);
    cr_assert_not_null(e, "members learn it live");
    cJSON_Delete(e);
    cr_assert(!listed(&t, room, false), "hidden from the room list");
    cr_assert(listed(&t, room, true), "listed among the archived rooms");
    /* Read-only: no messages, edits, deletions, renames or membership changes. */
    const char *writes[] = {
        "\"op\":\"msg.send\",\"body\":\"まだ書ける?\"",
        "\"op\":\"room.update\",\"topic\":\"x\"",
        "\"op\":\"room.invite\",\"user\":\"sato\"",
        "\"op\":\"room.remove\",\"user\":\"tanaka\"",
        "\"op\":\"room.admin\",\"user\":\"tanaka\",\"admin\":true",
    };
    for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
        r = ws_callf(&admin, "%s,\"room\":\"%s\"", writes[i], room);
        cr_assert_str_eq(reply_code(r), "conflict", "%s", writes[i]);
        cr_assert(
            strstr(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "message")->valuestring,
                   "archived"));
        cJSON_Delete(r);
    }
    r = ws_callf(&admin, "\"op\":\"msg.delete\",\"room\":\"%s\",\"pos\":%lld", room, p);
    cr_assert_str_eq(reply_code(r), "conflict");
    cJSON_Delete(r);
    /* Still read, searched and exported. */
    r = ws_callf(&t, "\"op\":\"history\",\"room\":\"%s\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    char got[1024];
    search_bodies(&t, "避難指示 解除", got, sizeof got);
    cr_assert_str_eq(got, "避難指示を解除しました");
    r = ws_callf(&t, "\"op\":\"room.export\",\"room\":\"%s\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    const char *csv = cJSON_GetObjectItem(r, "csv")->valuestring;
    if (strncmp(csv, "\xef\xbb\xbf", 3) == 0)
        csv += 3; /* a byte-order mark for Excel */
    cr_assert(strncmp(csv, "\"pos\",\"at\",\"event\",\"sender\"", 26) == 0, "%s", csv);
    cr_assert(strstr(csv, "\"避難指示を解除しました\""), "%s", csv);
    cr_assert(strstr(csv, "\"'=HYPERLINK(\"\"x\"\") 台風10号 対応終了\""), "formulas guarded: %s",
              csv);
    cr_assert(strstr(csv, "\"room.archive\""), "%s", csv);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "more")));
    cJSON_Delete(r);
    /* Paged: one event at a time, the header only on the first page. */
    r = ws_callf(&t, "\"op\":\"room.export\",\"room\":\"%s\",\"limit\":1", room);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "more")));
    long long next = (long long)cJSON_GetObjectItem(r, "next_after")->valuedouble;
    cJSON_Delete(r);
    r = ws_callf(&t, "\"op\":\"room.export\",\"room\":\"%s\",\"after\":%lld,\"limit\":1", room,
                 next);
    const char *page = cJSON_GetObjectItem(r, "csv")->valuestring;
    cr_assert_null(strstr(page, "\"pos\""), "no header: %s", page);
    cr_assert(page[0] == '"', "no byte-order mark inside the file: %s", page);
    cr_assert_gt(cJSON_GetObjectItem(r, "next_after")->valuedouble, next);
    cJSON_Delete(r);
    char target[80];
    snprintf(target, sizeof target, "room:%s", room);
    cr_assert(ws_audit_has(&admin, "room.archive", target));
    cr_assert(ws_audit_has(&admin, "room.export", target), "tanaka's export is accounted for");
    /* Unarchived: in use again. */
    r = ws_callf(&admin, "\"op\":\"room.archive\",\"room\":\"%s\",\"archived\":false", room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    cr_assert(listed(&t, room, false));
    send_msg(&admin, room, "再開します");
    cr_assert(ws_audit_has(&admin, "room.unarchive", target));
    ws_close_fd(&t);
}

Test(talk, a_second_room_with_the_name_of_one_of_yours_must_be_confirmed)
{
    char first[64];
    snprintf(first, sizeof first, "%s", create_room(&admin, "災害対策本部", "[\"tanaka\"]"));
    cJSON *r = ws_callf(&admin, "\"op\":\"room.create\",\"name\":\"災害対策本部\"");
    cr_assert_str_eq(reply_code(r), "conflict");
    const char *msg = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "message")->valuestring;
    cr_assert(strstr(msg, "災害対策本部") && strstr(msg, "confirm"), "%s", msg);
    char prefix[9];
    snprintf(prefix, sizeof prefix, "%.8s", first);
    cr_assert(strstr(msg, prefix), "names the room it is confused with: %s", msg);
    cJSON_Delete(r);
    r = ws_callf(&admin, "\"op\":\"room.list\"");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "rooms")), 1, "nothing was created");
    cJSON_Delete(r);
    r = ws_callf(&admin, "\"op\":\"room.create\",\"name\":\"災害対策本部\",\"confirm\":true");
    cr_assert_str_eq(reply_code(r), "ok", "confirmed");
    cJSON_Delete(r);
    /* Someone else's room of that name is none of yours: sato is asked nothing. */
    struct ws s;
    cr_assert(ws_open(&s, d.port));
    cr_assert(ws_login(&s, "sato", PW, NULL));
    r = ws_callf(&s, "\"op\":\"room.create\",\"name\":\"災害対策本部\"");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    ws_close_fd(&s);
}
