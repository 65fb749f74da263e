/* test_fed_read.c - read counts (既読) in a shared room agree on every server (issue 17, item 7):
 * a read marker there is the room-order key (hlc, origin, inc, seq) of the last event read,
 * published to the other servers as a room.read event, so a message's read_count is the same
 * wherever it is read once the servers hold the same events (docs/federation.md, "Read counts
 * (既読) across servers").
 *
 * Three real kizunad share a room through fault proxies (support/fedscene.h); users of all
 * three send; users of two of them read up to various messages. The expected count of each
 * message is worked out here from the room's order alone (the readers other than its sender
 * whose last message read is at or after it), and every server's `history` must show exactly
 * it. Then a message is sent on a cut-off server and read there, the others go on and read
 * past it, and after healing the late message is counted alike everywhere too.
 *
 * Environment: as test_fed_sync.c (KZ_FED_SEED, KZ_FED_USERS >= 2, KZ_FED_CONVERGE_MS). */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedscene.h"

#define READ_MSGS    3     /* per user in the first phase */
#define READ_WAIT_MS 30000 /* for room.read events to be published and replicated */
#define HIST_MAX     256

static struct scene the_scene; /* stopped and freed by the teardown, however the test ends */

static void teardown(void)
{
    scene_stop(&the_scene);
}

TestSuite(fed_read, .fini = teardown, .timeout = 240);

/* A message as one server's history shows it. */
struct hmsg {
    char id[FC_ID_MAX];
    char origin[FC_ORIGIN_MAX];
    char login[64]; /* the sender's login on its own server */
    long long pos, count;
    bool late;
};

struct hist {
    int n;
    struct hmsg m[HIST_MAX];
    int others;     /* events that are no messages */
    int read_shown; /* room.read events shown (never) */
};

/* A reader: a scene user and the id of the last message it has read (in room order). */
struct reader {
    struct scene_user *u;
    char last[FC_ID_MAX];
};

/* The room's history on server i, as its user 0 sees it (oldest first). */
static void hist_get(struct scene *sc, int i, struct hist *h)
{
    cJSON *r = scene_user_call(sc, &sc->u[i][0],
                               "{\"id\":7,\"op\":\"history\",\"room\":\"%s\",\"limit\":%lld}",
                               sc->room, 200LL);
    cr_assert_str_eq(reply_code(r), "ok", "history on %s", sc->names[i]);
    memset(h, 0, sizeof *h);
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(r, "events"))
    {
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(e, "event"));
        cr_assert_not_null(type);
        if (strcmp(type, "room.read") == 0)
            h->read_shown++;
        if (strcmp(type, "msg") != 0) {
            h->others++;
            continue;
        }
        cr_assert_lt(h->n, HIST_MAX);
        struct hmsg *m = &h->m[h->n++];
        snprintf(m->id, sizeof m->id, "%s",
                 cJSON_GetStringValue(cJSON_GetObjectItem(e, "event_id")));
        snprintf(m->origin, sizeof m->origin, "%s",
                 cJSON_GetStringValue(cJSON_GetObjectItem(e, "origin")));
        const char *sender = cJSON_GetStringValue(cJSON_GetObjectItem(e, "sender"));
        cr_assert_not_null(sender);
        snprintf(m->login, sizeof m->login, "%.*s", (int)strcspn(sender, "@"), sender);
        m->pos = (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "pos"));
        m->count = (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "read_count"));
        m->late = cJSON_IsTrue(cJSON_GetObjectItem(e, "late"));
    }
    cr_assert(!cJSON_IsTrue(cJSON_GetObjectItem(r, "more")), "the whole room in one page");
    cJSON_Delete(r);
}

static int index_of(const struct hist *h, const char *id)
{
    for (int j = 0; j < h->n; j++)
        if (strcmp(h->m[j].id, id) == 0)
            return j;
    return -1;
}

/* Reader r reads up to message id on its own server (the `read` op at that message's position
 * there); its marker is the furthest message it has read, in room order (h: that order). */
static void read_to(struct scene *sc, struct reader *r, const char *id, const struct hist *order)
{
    struct hist own;
    hist_get(sc, r->u->srv, &own);
    int j = index_of(&own, id);
    cr_assert_geq(j, 0, "%s holds the message read", sc->names[r->u->srv]);
    cJSON *rep =
        scene_user_call(sc, r->u, "{\"id\":8,\"op\":\"read\",\"room\":\"%s\",\"pos\":%lld}",
                        sc->room, own.m[j].pos);
    cr_assert_str_eq(reply_code(rep), "ok", "read by %s", r->u->login);
    cJSON_Delete(rep);
    if (!r->last[0] || index_of(order, id) > index_of(order, r->last))
        snprintf(r->last, sizeof r->last, "%s", id);
}

/* The count every server must show for message j of order: readers other than its sender whose
 * last message read is j or later. */
static long long expected(struct scene *sc, const struct hist *order, int j,
                          const struct reader *rd, int nrd)
{
    long long n = 0;
    for (int k = 0; k < nrd; k++) {
        const struct scene_user *u = rd[k].u;
        bool sender = strcmp(order->m[j].origin, sc->names[u->srv]) == 0 &&
                      strcmp(order->m[j].login, u->login) == 0;
        n += !sender && rd[k].last[0] && index_of(order, rd[k].last) >= j;
    }
    return n;
}

/* Waits until every server's history shows the same messages in the same order as server 0's,
 * each with its expected read count; asserts after READ_WAIT_MS with the first difference.
 * order receives server 0's history. */
static long long wait_counts(struct scene *sc, struct hist *order, const struct reader *rd, int nrd)
{
    long long t0 = scene_now_ms();
    static struct hist h;
    for (;;) {
        char why[512] = "";
        hist_get(sc, 0, order);
        for (int i = 0; i < sc->nsrv && !why[0]; i++) {
            if (i == 0)
                h = *order; /* the very page the counts below are checked against */
            else
                hist_get(sc, i, &h);
            cr_assert_eq(h.read_shown, 0, "%s shows no room.read in history", sc->names[i]);
            if (h.n != order->n) {
                snprintf(why, sizeof why, "%s holds %d messages, %s %d", sc->names[i], h.n,
                         sc->names[0], order->n);
                break;
            }
            for (int j = 0; j < h.n && !why[0]; j++) {
                long long want = expected(sc, order, j, rd, nrd);
                if (strcmp(h.m[j].id, order->m[j].id) != 0)
                    snprintf(why, sizeof why, "%s: message %d is %s, on %s %s", sc->names[i], j,
                             h.m[j].id, sc->names[0], order->m[j].id);
                else if (h.m[j].count != want)
                    snprintf(why, sizeof why,
                             "%s: message %d (%s of %s) has read_count %lld, "
                             "expected %lld",
                             sc->names[i], j, h.m[j].login, h.m[j].origin, h.m[j].count, want);
            }
        }
        if (!why[0])
            return scene_now_ms() - t0;
        if (scene_now_ms() - t0 > READ_WAIT_MS)
            cr_assert_fail("read counts do not agree after %d ms: %s", READ_WAIT_MS, why);
        scene_sleep_ms(50);
    }
}

/* room.read events in server i's database: all of the room's, and those sent by login of the
 * server origin. */
static long long read_events(struct scene *sc, int i, const char *origin, const char *login)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open_v2(sc->db_paths[i], &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *s;
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "SELECT count(*) FROM events e JOIN rooms r ON r.id = e.room"
                                    " WHERE r.room_id = ?1 AND e.type = 'room.read'"
                                    " AND (?2 IS NULL OR (e.origin = ?2 AND"
                                    " json_extract(CAST(e.payload AS TEXT), '$.sender') = ?3))",
                                    -1, &s, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_bind_text(s, 1, sc->room, -1, SQLITE_STATIC);
    if (origin) {
        sqlite3_bind_text(s, 2, origin, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, login, -1, SQLITE_STATIC);
    }
    cr_assert_eq(sqlite3_step(s), SQLITE_ROW, "%s", sqlite3_errmsg(db));
    long long n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

/* Users of two servers read up to various messages; every server shows each message's count as
 * the room's order says, and room.read events (coalesced: one for a burst of reads) are in no
 * history or sync. Then a message sent on a cut-off server, read there, and read past on
 * another server while cut, is counted alike everywhere after healing. */
Test(fed_read, read_counts_agree_on_every_server)
{
    struct scene *sc = &the_scene;
    scene_setup(sc, "read", 3, 0);
    cr_assert_geq(sc->users, 2, "KZ_FED_USERS must be 2 or more here");
    scene_phase_run(sc, scene_all(sc), READ_MSGS);
    scene_converge(sc, "everyone sent");
    static struct hist order;
    hist_get(sc, 0, &order);
    int n = order.n;
    cr_assert_eq(n, 3 * sc->users * READ_MSGS);
    struct reader rd[3] = {{.u = &sc->u[1][0]}, {.u = &sc->u[2][0]}, {.u = &sc->u[0][0]}};

    /* A live client on server 0, which sees the others' reads as `read` pushes, never the
     * room.read events that carry them. */
    struct ws live;
    char pw[96];
    snprintf(pw, sizeof pw, "%.31s%s", sc->u[0][1].login, TEST_PW_SUFFIX);
    ws_live(&live, sc->net.s[0].d.port, sc->u[0][1].login, pw, -1, NULL);
    /* Before anyone reads: nothing is read anywhere. */
    wait_counts(sc, &order, rd, 2);
    /* Server 1's reader reads a third of the way; server 2's reader reads a quarter, half and
     * two thirds of the way at once: one room.read for the three. */
    read_to(sc, &rd[0], order.m[n / 3].id, &order);
    read_to(sc, &rd[1], order.m[n / 4].id, &order);
    read_to(sc, &rd[1], order.m[n / 2].id, &order);
    read_to(sc, &rd[1], order.m[2 * n / 3].id, &order);
    long long took = wait_counts(sc, &order, rd, 2);
    fprintf(stderr, "FIG read: counts agree on 3 servers %lld ms after the reads\n", took);
    scene_converge(sc, "after the reads");
    int read_pushes = 0;
    for (cJSON *ev; (ev = ws_next_event(&live, 300));) {
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(ev, "event"));
        cr_assert_not_null(type);
        cr_assert_str_neq(type, "room.read", "room.read is never pushed");
        read_pushes += strcmp(type, "read") == 0;
        cJSON_Delete(ev);
    }
    cr_assert_gt(read_pushes, 0, "the other servers' reads are pushed as `read` events");
    ws_close_fd(&live);
    long long bursts = read_events(sc, 2, sc->names[2], rd[1].u->login);
    cr_assert(bursts >= 1 && bursts <= 2,
              "three reads within federation_read_publish_ms make one or two room.read events, "
              "not %lld",
              bursts);
    for (int i = 0; i < sc->nsrv; i++)
        cr_assert_gt(read_events(sc, i, NULL, NULL), 0, "%s holds the room.read events",
                     sc->names[i]);
    /* Sync leaves them out as history does. */
    cJSON *r =
        scene_user_call(sc, &sc->u[0][0], "{\"id\":9,\"op\":\"sync\",\"since\":0,\"limit\":500}");
    cr_assert_str_eq(reply_code(r), "ok");
    const cJSON *e;
    int seen = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(r, "events"))
    {
        seen++;
        cr_assert_str_neq(cJSON_GetStringValue(cJSON_GetObjectItem(e, "event")), "room.read",
                          "sync shows no room.read");
    }
    cr_assert_gt(seen, n);
    cJSON_Delete(r);

    /* Server 1 cut off: its second user sends, its reader reads up to that; servers 0 and 2 go
     * on, and server 2's reader reads their newest message, which sorts after the cut-off one. */
    fednet_isolate(&sc->net, 1, true);
    fednet_wait_down(&sc->net, 0, 1, 10000);
    fednet_wait_down(&sc->net, 2, 1, 10000);
    struct scene_user *late_sender = &sc->u[1][1];
    cr_assert(scene_user_send(late_sender, late_sender->next_k++), "%s", late_sender->err);
    char late_id[FC_ID_MAX];
    snprintf(late_id, sizeof late_id, "%s", late_sender->ids[late_sender->nids - 1]);
    struct hist cut;
    hist_get(sc, 1, &cut);
    read_to(sc, &rd[0], late_id, &cut);
    scene_sleep_ms(20); /* the others' messages are made after it, by the clock */
    scene_phase_run(sc, 1u << 0 | 1u << 2, 2);
    struct hist other;
    hist_get(sc, 2, &other);
    cr_assert_eq(index_of(&other, late_id), -1, "server 2 cannot hold it yet");
    /* rd[1]'s last so far is in the first phase: its new marker is the newest message. */
    read_to(sc, &rd[1], other.m[other.n - 1].id, &other);
    fednet_isolate(&sc->net, 1, false);
    fednet_wait_links(&sc->net, 90000);
    scene_converge(sc, "after healing");
    hist_get(sc, 0, &order);
    /* The readers' markers in the merged order: rd[0] read the late message on server 1 (its
     * own server placed it last then; it is no longer last), rd[1] the newest message. */
    if (index_of(&order, late_id) > index_of(&order, rd[0].last))
        snprintf(rd[0].last, sizeof rd[0].last, "%s", late_id);
    snprintf(rd[1].last, sizeof rd[1].last, "%s", other.m[other.n - 1].id);
    /* Server 0's user reads the late message, which has the greatest position of the room's
     * messages there but not the last place in its order: the marker takes its place, not the
     * end's. */
    read_to(sc, &rd[2], late_id, &order);
    took = wait_counts(sc, &order, rd, 3);
    fprintf(stderr, "FIG read: counts agree on 3 servers %lld ms after healing\n", took);
    /* Then everything (no pos): the place of the room's last message. */
    cJSON *all =
        scene_user_call(sc, rd[2].u, "{\"id\":11,\"op\":\"read\",\"room\":\"%s\"}", sc->room);
    cr_assert_str_eq(reply_code(all), "ok");
    cJSON_Delete(all);
    snprintf(rd[2].last, sizeof rd[2].last, "%s", order.m[order.n - 1].id);
    took = wait_counts(sc, &order, rd, 3);
    fprintf(stderr, "FIG read: counts agree on 3 servers %lld ms after reading all\n", took);
    int late = index_of(&order, late_id);
    cr_assert_geq(late, 0);
    cr_assert_lt(late, order.n - 1, "the late message sorts before the others' newer ones");
    cr_assert_eq(order.m[late].count, 3,
                 "the late message (%d of %d) is read by server 1's reader (at %d), by server "
                 "2's (at %d), who read past it before it arrived, and by server 0's: %lld",
                 late, order.n, index_of(&order, rd[0].last), index_of(&order, rd[1].last),
                 order.m[late].count);
    cr_assert(order.m[late].late, "shown late on %s", sc->names[0]);
    /* readers names the same two everywhere. */
    for (int i = 0; i < sc->nsrv; i++) {
        static struct hist h;
        hist_get(sc, i, &h);
        int j = index_of(&h, late_id);
        cr_assert_geq(j, 0);
        cJSON *rr = scene_user_call(sc, &sc->u[i][0],
                                    "{\"id\":10,\"op\":\"readers\",\"room\":\"%s\",\"pos\":%lld}",
                                    sc->room, h.m[j].pos);
        cr_assert_str_eq(reply_code(rr), "ok");
        cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(rr, "read")), 3, "readers on %s",
                     sc->names[i]);
        cJSON_Delete(rr);
    }
    scene_converge(sc, "after the counts agree");
    scene_check_acked(sc);
}
