/* store_room_cache.c - the rooms and member lists store_talk.c last read, so that a request's
 * room and membership check and an event's delivery list are not statements each.
 *
 * Every message asked SQLite for its room and its sender's membership (srv_room_for_member,
 * ~19,000 instructions) and again for the room's members to deliver it to (store_member_each,
 * ~17,600 per message in kzbench's ingest): issue 16. With the cache a message costs ~33,600
 * instructions fewer (callgrind, 50 senders, without signatures). An entry holds one room and all
 * its member rows, past members included, in join order (the order of T_MEMBER_EACH_ALL, which is
 * the index room_members_joined's: joined_pos, then user_id), with the user's login and name.
 *
 * When an entry is stale:
 * - a row of rooms changes: SQLite's update hook (store.c) forgets that room;
 * - a row of users changes (a member's login or name): the hook moves room_gen, so every
 *   entry is stale;
 * - a row of room_members changes: room_members is WITHOUT ROWID, which the update hook does
 *   not report, so every statement that writes it forgets its room itself
 *   (store_member_join, _leave, _set_role, _read, store_notice_join_room). A new writer of
 *   room_members must do the same; test_store's cached_rooms_and_members_see_every_change
 *   covers each one;
 * - any rollback, of the transaction or of one op's savepoint: room_gen moves.
 * kizunad is the database's only writer (kizunad.lock), so nothing changes the rows behind
 * the connection's back.
 *
 * An entry is reference counted: store_member_each holds the one it walks, so a callback that
 * writes (and so forgets the entry) or fills another entry into the same slot does not free
 * it underneath the walk.
 */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

struct room_member_rec {
    int64_t user_id, joined_pos, left_pos, read_pos, read_at;
    uint32_t login, name; /* offsets into the entry's string pool */
    char role[8];
};

struct member_key {
    int64_t user_id;
    size_t i; /* into m */
};

struct store_room_entry {
    int refs;
    struct store_room room;
    size_t n, cap;
    struct room_member_rec *m;  /* join order */
    struct member_key *by_user; /* by user_id, for store_member_get */
    char *pool;
    size_t pool_len, pool_cap;
};

static size_t slot_of(int64_t id)
{
    return (uint64_t)id % STORE_ROOM_CACHE;
}

/* FNV-1a over the room's public id. */
static size_t name_slot_of(const char *room_id)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)room_id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % STORE_ROOM_CACHE;
}

void store_room_entry_release(struct store_room_entry *e)
{
    if (!e || --e->refs > 0)
        return;
    free(e->m);
    free(e->by_user);
    free(e->pool);
    free(e);
}

struct store_room_entry *store_room_entry_hold(struct store_room_entry *e)
{
    e->refs++;
    return e;
}

struct store_room_entry *store_room_entry_new(const struct store_room *room)
{
    struct store_room_entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->refs = 1;
    e->room = *room;
    return e;
}

static int pool_add(struct store_room_entry *e, const char *s, uint32_t *off)
{
    size_t len = strlen(s) + 1;
    if (e->pool_len + len > e->pool_cap) {
        size_t cap = e->pool_cap ? e->pool_cap * 2 : 256;
        while (cap < e->pool_len + len)
            cap *= 2;
        char *p = realloc(e->pool, cap);
        if (!p)
            return -1;
        e->pool = p;
        e->pool_cap = cap;
    }
    memcpy(e->pool + e->pool_len, s, len);
    *off = (uint32_t)e->pool_len;
    e->pool_len += len;
    return 0;
}

int store_room_entry_add(struct store_room_entry *e, const struct store_member *m)
{
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 16;
        struct room_member_rec *r = realloc(e->m, cap * sizeof *r);
        if (!r)
            return -1;
        e->m = r;
        e->cap = cap;
    }
    struct room_member_rec *r = &e->m[e->n];
    r->user_id = m->user_id;
    r->joined_pos = m->joined_pos;
    r->left_pos = m->left_pos;
    r->read_pos = m->read_pos;
    r->read_at = m->read_at;
    memcpy(r->role, m->role, sizeof r->role);
    if (pool_add(e, m->login, &r->login) || pool_add(e, m->name, &r->name))
        return -1;
    e->n++;
    return 0;
}

static int by_user_cmp(const void *a, const void *b)
{
    int64_t x = ((const struct member_key *)a)->user_id;
    int64_t y = ((const struct member_key *)b)->user_id;
    return (x > y) - (x < y);
}

int store_room_cache_put(struct store *st, struct store_room_entry *e)
{
    if (e->n) {
        e->by_user = malloc(e->n * sizeof *e->by_user);
        if (!e->by_user)
            return -1;
        for (size_t i = 0; i < e->n; i++)
            e->by_user[i] = (struct member_key){e->m[i].user_id, i};
        qsort(e->by_user, e->n, sizeof *e->by_user, by_user_cmp);
    }
    struct store_room_slot *slot = &st->room_cache[slot_of(e->room.id)];
    store_room_entry_release(slot->e);
    slot->e = store_room_entry_hold(e);
    slot->gen = st->room_gen;
    st->room_by_name[name_slot_of(e->room.room_id)] = e->room.id;
    return 0;
}

struct store_room_entry *store_room_cache_get(struct store *st, int64_t id)
{
    struct store_room_slot *slot = &st->room_cache[slot_of(id)];
    if (slot->e && slot->gen == st->room_gen && slot->e->room.id == id)
        return slot->e;
    return NULL;
}

struct store_room_entry *store_room_cache_find(struct store *st, const char *room_id)
{
    int64_t id = st->room_by_name[name_slot_of(room_id)];
    struct store_room_entry *e = id ? store_room_cache_get(st, id) : NULL;
    return e && strcmp(e->room.room_id, room_id) == 0 ? e : NULL;
}

void store_room_forget(struct store *st, int64_t id)
{
    struct store_room_slot *slot = &st->room_cache[slot_of(id)];
    if (slot->e && slot->e->room.id == id) {
        store_room_entry_release(slot->e);
        slot->e = NULL;
    }
}

void store_rooms_forget_all(struct store *st)
{
    st->room_gen++;
}

void store_room_cache_free(struct store *st)
{
    for (size_t i = 0; i < STORE_ROOM_CACHE; i++) {
        store_room_entry_release(st->room_cache[i].e);
        st->room_cache[i].e = NULL;
    }
}

const struct store_room *store_room_entry_room(const struct store_room_entry *e)
{
    return &e->room;
}

size_t store_room_entry_count(const struct store_room_entry *e)
{
    return e->n;
}

bool store_room_entry_member_at(const struct store_room_entry *e, size_t i, bool include_past,
                                struct store_member *out)
{
    const struct room_member_rec *r = &e->m[i];
    if (r->left_pos && !include_past)
        return false;
    out->room = e->room.id;
    out->user_id = r->user_id;
    /* login and name fit: they came from buffers of these sizes */
    strcpy(out->login, e->pool + r->login);
    strcpy(out->name, e->pool + r->name);
    memcpy(out->role, r->role, sizeof out->role);
    out->joined_pos = r->joined_pos;
    out->left_pos = r->left_pos;
    out->read_pos = r->read_pos;
    out->read_at = r->read_at;
    return true;
}

bool store_room_entry_member(const struct store_room_entry *e, int64_t user_id,
                             struct store_member *out)
{
    size_t lo = 0, hi = e->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int64_t u = e->by_user[mid].user_id;
        if (u == user_id)
            return store_room_entry_member_at(e, e->by_user[mid].i, true, out);
        if (u < user_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}
