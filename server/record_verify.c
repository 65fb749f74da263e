/* record_verify.c - `kizunad verify-record FILE`: checks a JSON Lines record (record.export)
 * against the signed event logs it carries (docs/records.md, "Verifying a record"). Every row's
 * payload must hash to its event id and say what the row says (type, server, log, sender, time,
 * text, target, details); rows must be in the room's order; from each row the hash chain of its
 * log (rows and proof lines) must reach an event signed by its server's key, each signature
 * checked. The keys are the header's unless the caller pins them (the server's own key and its
 * peers', from its data directory), so a record re-signed by someone else fails.
 *
 * Pure over the file and libsodium (event_format.c); nothing here knows a database. */
#include "record.h"
#include "record_verify.h"
#include "event_format.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct vev {
    char id[KZ_EVENT_ID_CHARS];
    char origin[KZ_EVENT_ORIGIN_MAX + 1];
    int64_t inc, seq;
    char prev[KZ_EVENT_ID_CHARS];
    bool sig_ok; /* carries a signature that verifies */
    long line;   /* where it is in the file */
};

struct verify {
    FILE *report;
    int problems;
    cJSON *head;
    const cJSON *keys;
    const struct kz_record_trust *trust;
    struct vev *ev;
    size_t nev, capev;
    long rows;
    int64_t sigs;
    int offset;
    /* the previous row's room-order key */
    int64_t hlc, inc, seq;
    char origin[KZ_EVENT_ORIGIN_MAX + 1];
    bool have_key;
};

static void problem(struct verify *v, long line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problem(struct verify *v, long line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (v->problems < 50) {
        fprintf(v->report, "line %ld: ", line);
        vfprintf(v->report, fmt, ap);
        fputc('\n', v->report);
    }
    va_end(ap);
    v->problems++;
}

static const char *str_of(const cJSON *o, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static bool num_of(const cJSON *o, const char *key, int64_t *out)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(n))
        return false;
    *out = (int64_t)n->valuedouble;
    return true;
}

/* base64url text into a new buffer (caller frees); NULL if it is not. */
static unsigned char *unb64(const char *text, size_t *len)
{
    size_t cap = text ? strlen(text) * 3 / 4 + 3 : 0;
    unsigned char *out = text ? malloc(cap + 1) : NULL;
    const char *end;
    if (!out ||
        sodium_base642bin(out, cap, text, strlen(text), NULL, len, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        *end) {
        free(out);
        return NULL;
    }
    return out;
}

/* The signing key of a server: the pinned one when the caller pins keys, else the header's. */
static bool key_of(struct verify *v, const char *origin, uint8_t pk[KZ_EVENT_PK_BYTES])
{
    if (v->trust)
        return v->trust->key(v->trust->ctx, origin, pk);
    size_t len;
    unsigned char *k = unb64(str_of(v->keys, origin), &len);
    bool ok = k && len == KZ_EVENT_PK_BYTES;
    if (ok)
        memcpy(pk, k, KZ_EVENT_PK_BYTES);
    free(k);
    return ok;
}

/* Checks a line's payload against its event id, signature and log fields; adds it to the
 * events. content receives the payload's content (caller deletes) for rows. */
static bool check_event(struct verify *v, const cJSON *o, long line, struct kz_event_head *h,
                        cJSON **content)
{
    size_t plen = 0, slen = 0;
    unsigned char *payload = unb64(str_of(o, "payload"), &plen);
    unsigned char *sig = unb64(str_of(o, "sig"), &slen);
    bool ok = false;
    if (!payload || !sig) {
        problem(v, line,
                "no payload or signature (a published record is not verifiable: its "
                "review is)");
        goto out;
    }
    const char *why = kz_event_parse(payload, plen, h, content);
    if (why) {
        problem(v, line, "the payload is not an event: %s", why);
        goto out;
    }
    char id[KZ_EVENT_ID_CHARS];
    kz_event_id(payload, plen, id);
    const char *room = str_of(v->head, "room");
    char room_id[KZ_EVENT_ID_CHARS];
    if (h->room[0] == '\0')
        kz_event_room_id(payload, plen, room_id);
    int64_t inc = -1, seq = -1;
    num_of(o, "inc", &inc);
    num_of(o, "seq", &seq);
    if (!str_of(o, "event_id") || strcmp(id, str_of(o, "event_id")) != 0)
        problem(v, line, "the event id is not the payload's hash: altered");
    else if (!room || strcmp(h->room[0] ? h->room : room_id, room) != 0)
        problem(v, line, "an event of another room");
    else if (!str_of(o, "server") || strcmp(h->origin, str_of(o, "server")) != 0 || inc != h->inc ||
             seq != h->seq)
        problem(v, line, "server, inc or seq differ from the payload's");
    else
        ok = true;
    bool sig_ok = false;
    if (ok && slen) {
        uint8_t pk[KZ_EVENT_PK_BYTES];
        if (!key_of(v, h->origin, pk)) {
            problem(v, line, "no key for server %s", h->origin);
            ok = false;
        } else if (!kz_event_verify(payload, plen, sig, slen, pk)) {
            problem(v, line, "the signature of %s does not verify", h->origin);
            ok = false;
        } else {
            sig_ok = true;
            v->sigs++;
        }
    }
    if (ok) {
        if (v->nev == v->capev) {
            size_t cap = v->capev ? v->capev * 2 : 256;
            struct vev *n = realloc(v->ev, cap * sizeof *n);
            if (!n) {
                problem(v, line, "out of memory");
                ok = false;
                goto out;
            }
            v->ev = n;
            v->capev = cap;
        }
        struct vev *e = &v->ev[v->nev++];
        memset(e, 0, sizeof *e);
        memcpy(e->id, id, sizeof e->id);
        snprintf(e->origin, sizeof e->origin, "%s", h->origin);
        e->inc = h->inc;
        e->seq = h->seq;
        memcpy(e->prev, h->prev, sizeof e->prev);
        e->sig_ok = sig_ok;
        e->line = line;
    }
out:
    if (!ok && content) {
        cJSON_Delete(*content);
        *content = NULL;
    }
    free(payload);
    free(sig);
    return ok;
}

static bool same_str(const cJSON *row, const char *key, const cJSON *content, const char *ckey)
{
    const char *a = str_of(row, key), *b = str_of(content, ckey);
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* What a row says against what its payload says. */
static void check_row(struct verify *v, const cJSON *row, long line)
{
    struct kz_event_head h;
    cJSON *content = NULL;
    if (!check_event(v, row, line, &h, &content))
        return;
    v->rows++;
    const char *type = str_of(row, "type");
    int64_t ts = -1;
    num_of(row, "ts", &ts);
    char when[KZ_RECORD_TIME_CHARS];
    kz_record_time(h.ts, v->offset, true, when);
    if (!type || strcmp(type, h.type) != 0)
        problem(v, line, "the type is not the payload's");
    else if (!str_of(row, "sender") || strcmp(str_of(row, "sender"), h.sender) != 0)
        problem(v, line, "the sender is not the payload's");
    else if (ts != h.ts || !str_of(row, "time") || strcmp(str_of(row, "time"), when) != 0)
        problem(v, line, "the time is not the payload's");
    else if (!same_str(row, "seat", content, "seat"))
        problem(v, line, "the seat is not the payload's");
    else if ((strcmp(type, "msg") == 0 || strcmp(type, "msg.edit") == 0) &&
             !same_str(row, "text", content, "body"))
        problem(v, line, "the text is not the payload's: altered");
    else if (strncmp(type, "msg.", 4) == 0 && !same_str(row, "target", content, "target"))
        problem(v, line, "the target is not the payload's");
    else if (cJSON_GetObjectItemCaseSensitive(row, "detail") &&
             !cJSON_Compare(cJSON_GetObjectItemCaseSensitive(row, "detail"), content, true))
        problem(v, line, "the details are not the payload's");
    /* The room's order: (hlc, origin, inc, seq) rises from row to row. */
    int c = !v->have_key                       ? 1
            : h.hlc != v->hlc                  ? (h.hlc > v->hlc ? 1 : -1)
            : strcmp(h.origin, v->origin) != 0 ? strcmp(h.origin, v->origin)
            : h.inc != v->inc                  ? (h.inc > v->inc ? 1 : -1)
                                               : (h.seq > v->seq) - (h.seq < v->seq);
    if (c <= 0)
        problem(v, line, "out of the room's order");
    v->have_key = true;
    v->hlc = h.hlc;
    v->inc = h.inc;
    v->seq = h.seq;
    snprintf(v->origin, sizeof v->origin, "%s", h.origin);
    cJSON_Delete(content);
}

static int vev_cmp(const void *a, const void *b)
{
    const struct vev *x = a, *y = b;
    int c = strcmp(x->origin, y->origin);
    if (c)
        return c;
    if (x->inc != y->inc)
        return x->inc < y->inc ? -1 : 1;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

/* From every event, its log's chain must reach a signed one: each next event names the one
 * before as prev. Walks from the end of each log backwards, so each event is seen once. */
static void check_chains(struct verify *v)
{
    if (v->nev)
        qsort(v->ev, v->nev, sizeof *v->ev, vev_cmp);
    bool covered = false;
    for (size_t i = v->nev; i-- > 0;) {
        struct vev *e = &v->ev[i], *next = i + 1 < v->nev ? &v->ev[i + 1] : NULL;
        bool same_log = next && strcmp(next->origin, e->origin) == 0 && next->inc == e->inc;
        if (same_log && next->seq == e->seq) { /* a row and its proof line: one event */
            if (strcmp(next->id, e->id) != 0)
                problem(v, e->line, "two events at %s/%lld/%lld", e->origin, (long long)e->inc,
                        (long long)e->seq);
            e->sig_ok |= next->sig_ok;
            continue;
        }
        if (e->sig_ok)
            covered = true;
        else if (!(covered && same_log && next->seq == e->seq + 1 &&
                   strcmp(next->prev, e->id) == 0))
            covered = false;
        if (same_log && next->seq == e->seq + 1 && strcmp(next->prev, e->id) != 0)
            problem(v, next->line, "the chain breaks: its prev is not the event before it");
        if (!covered)
            problem(v, e->line, "no signature covers this event (the chain to one is missing)");
    }
}

/* Each log of the record is whole over what it covers: its events follow one another without
 * a gap, and a record of the whole room (no `from`) has each log from its first event. Runs on
 * the events sorted by check_chains. */
static void check_whole(struct verify *v)
{
    bool whole_room = !cJSON_GetObjectItemCaseSensitive(v->head, "from");
    for (size_t i = 0; i < v->nev; i++) {
        const struct vev *e = &v->ev[i], *prev = i ? &v->ev[i - 1] : NULL;
        bool same_log = prev && strcmp(prev->origin, e->origin) == 0 && prev->inc == e->inc;
        if (!same_log && whole_room && e->seq != 1)
            problem(v, e->line, "the log of %s/%lld starts at %lld: events before it are left out",
                    e->origin, (long long)e->inc, (long long)e->seq);
        else if (same_log && e->seq > prev->seq + 1)
            problem(v, e->line, "events %lld to %lld of the log of %s/%lld are left out",
                    (long long)prev->seq + 1, (long long)e->seq - 1, e->origin, (long long)e->inc);
    }
}

int kz_record_verify(FILE *in, const struct kz_record_trust *trust, FILE *report,
                     struct kz_record_verify_stats *stats)
{
    struct verify v = {.report = report, .trust = trust};
    char *line = NULL;
    size_t cap = 0;
    long no = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, in)) > 0) {
        no++;
        cJSON *o = cJSON_ParseWithLength(line, (size_t)n);
        if (!o || !cJSON_IsObject(o)) {
            problem(&v, no, "not a JSON object");
            cJSON_Delete(o);
            continue;
        }
        if (!v.head) {
            const char *tz = str_of(o, "time_zone");
            if (!str_of(o, "record") || strcmp(str_of(o, "record"), "kizuna/record/v1") != 0 ||
                !str_of(o, "room") || !kz_record_zone_offset(tz, &v.offset)) {
                problem(&v, no, "not the header of a Kizuna record (kizuna/record/v1)");
                cJSON_Delete(o);
                break;
            }
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "published"))) {
                problem(&v, no,
                        "a published record carries no signed events: verify the "
                        "internal record it was made from");
                cJSON_Delete(o);
                break;
            }
            v.head = o;
            v.keys = cJSON_GetObjectItemCaseSensitive(o, "keys");
            continue;
        }
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "proof"))) {
            struct kz_event_head h;
            check_event(&v, o, no, &h, NULL);
        } else {
            check_row(&v, o, no);
        }
        cJSON_Delete(o);
    }
    free(line);
    if (!v.head && !v.problems)
        problem(&v, no, "empty: no header");
    check_chains(&v);
    if (v.head)
        check_whole(&v);
    if (stats) {
        stats->rows = v.rows;
        stats->events = (int64_t)v.nev;
        stats->signatures = v.sigs;
    }
    cJSON_Delete(v.head);
    free(v.ev);
    return v.problems;
}
