/* fed_sync.c - replication of shared rooms over federation links (issue 17, items 5-8): each
 * side tells the other what it holds (summary: per shared room, the version vector its `logs`
 * table is), streams what the other lacks as contiguous batches of one log ending on a signed
 * event, and acknowledges cumulatively once what it took is committed. Received events are
 * checked end to end (the origin's pinned key, the chain, the id), so any member server may
 * relay any member's events.
 *
 * The outbound queue is the log itself: per (peer, room, origin, inc) a stream remembers what
 * was sent and what is acknowledged; acknowledgements are durable (fed_cursors), and after a
 * reconnect the peer's summary says exactly where to resume, so a restart loses nothing and
 * nothing acknowledged is sent again. Every frame to a peer goes through the outbox, behind
 * the commit it depends on: no peer sees an event, an acknowledgement or a summary that a power
 * cut could still take back (a restarted origin would otherwise reuse its sequence numbers and
 * fork its own log). Frames that report state (acks, summaries) are held until the open
 * transaction commits.
 *
 * Validity is decided the same way on every server: the origin is a pinned peer admitted to
 * the room by its authority (or this server's own older incarnation), its member events
 * concern its own users only, its other events come from its users who are members, and only
 * the authority changes the room itself. An event that fails these is kept (a log has no
 * holes) but changes nothing and reaches no one. */
#include "core.h"
#include "event_format.h"
#include "fed.h"
#include "json_write.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define SUMMARY_FRAME_BYTES 65536 /* a summary is split into frames of about this size */
#define OFFERED_MAX         1024  /* rooms a peer may offer this server before it holds them */
#define SUMMARY_ROOMS_PAGE  64

/* One batch on its way to a peer: acknowledged when the peer's ack reaches end. */
struct fs_flight {
    int64_t end;
    int64_t bytes;
};

/* One log toward one peer. */
struct fs_stream {
    int64_t room;
    char origin[STORE_SERVER_ID_MAX + 1];
    int64_t inc;
    int64_t sent, acked; /* seqs: sent on this link, acknowledged by the peer (durable) */
    bool own_lacking;    /* a log of the peer's own that its summary says it lacks (a restore) */
    struct fs_flight *flight;
    size_t nflight, capflight;
};

struct fs_peer {
    char id[STORE_SERVER_ID_MAX + 1];
    bool up;
    bool summarised;    /* the peer's summary arrived on this link: streaming may start */
    int64_t unacked;    /* bytes of batches in flight */
    int64_t summary_at; /* when this server last sent its summary (ms) */
    struct fs_stream *streams;
    size_t nstreams, capstreams;
    int64_t *dirty; /* rooms with something to send */
    size_t ndirty, capdirty;
    size_t rr;          /* the dirty room the next turn starts with (round robin) */
    int64_t *mentioned; /* rooms the peer's summary in progress named */
    size_t nmentioned, capmentioned;
    /* Rooms the peer's summaries on this link named that this server does not hold: it says this
     * server shares them (a server admitted after the room's creation takes it from these). */
    char (*offered)[KZ_EVENT_ID_CHARS];
    size_t noffered, capoffered;
    bool summary_due; /* send the summary again after the next commit (an admission) */
    struct fs_peer *next;
};

/* A frame that reports state, held until the transaction it reports commits. */
struct fs_held {
    const char *peer; /* its fs_peer's id */
    struct kz_frame *frame;
    struct fs_held *next;
};

/* A batch that arrived ahead of its log (a reordered frame): it waits for the batch before it
 * (srv_fed_pending_*), within federation_pending_bytes. */
struct fs_pending {
    const char *peer; /* its fs_peer's id */
    char room[KZ_EVENT_ID_CHARS];
    char origin[STORE_SERVER_ID_MAX + 1];
    int64_t inc, first;
    int64_t at;
    char *frame; /* the events frame, as JSON text */
    size_t len;
    struct fs_pending *next;
};

/* A log that waits for an authority grant (srv_fed_wait_add). */
struct fs_wait {
    const char *peer; /* its fs_peer's id */
    int64_t room;
    char room_id[KZ_EVENT_ID_CHARS];
    char origin[STORE_SERVER_ID_MAX + 1];
    int64_t inc;
};
#define WAITS_MAX 64

struct fed_sync {
    struct fs_wait waits[WAITS_MAX];
    int nwaits;
    struct fs_peer *peers;
    struct fs_held *held, *held_tail;
    struct srv_fed_counters n;
    struct fs_pending *pending;
    int64_t pending_bytes;
};

static struct fed_sync *fs_of(struct srv *s)
{
    if (!s->fed)
        s->fed = calloc(1, sizeof *s->fed);
    return s->fed;
}

static struct fs_peer *peer_get(struct srv *s, const char *id)
{
    struct fed_sync *f = fs_of(s);
    if (!f)
        return NULL;
    for (struct fs_peer *p = f->peers; p; p = p->next)
        if (strcmp(p->id, id) == 0)
            return p;
    struct fs_peer *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    snprintf(p->id, sizeof p->id, "%s", id);
    p->next = f->peers;
    f->peers = p;
    return p;
}

static bool grow(void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return true;
    size_t c = *cap ? *cap * 2 : 8;
    void *a = realloc(*arr, c * size);
    if (!a)
        return false;
    *arr = a;
    *cap = c;
    return true;
}

static void ids_add(int64_t **arr, size_t *n, size_t *cap, int64_t v)
{
    for (size_t i = 0; i < *n; i++)
        if ((*arr)[i] == v)
            return;
    if (grow((void **)arr, cap, *n, sizeof **arr))
        (*arr)[(*n)++] = v;
}

static bool ids_has(const int64_t *arr, size_t n, int64_t v)
{
    for (size_t i = 0; i < n; i++)
        if (arr[i] == v)
            return true;
    return false;
}

/* The stream of (room, origin, inc) toward p, made at first use from the durable cursor. */
static struct fs_stream *stream_get(struct srv *s, struct fs_peer *p, int64_t room,
                                    const char *origin, int64_t inc)
{
    for (size_t i = 0; i < p->nstreams; i++) {
        struct fs_stream *x = &p->streams[i];
        if (x->room == room && x->inc == inc && strcmp(x->origin, origin) == 0)
            return x;
    }
    if (!grow((void **)&p->streams, &p->capstreams, p->nstreams, sizeof *p->streams))
        return NULL;
    struct fs_stream *x = &p->streams[p->nstreams++];
    memset(x, 0, sizeof *x);
    x->room = room;
    snprintf(x->origin, sizeof x->origin, "%s", origin);
    x->inc = inc;
    store_fed_cursor_get(s->store, p->id, room, origin, inc, &x->acked);
    x->sent = x->acked;
    return x;
}

/* Forgets what is in flight on x above seq (a lost link, a peer that asks again). */
static void stream_rewind(struct fs_peer *p, struct fs_stream *x, int64_t seq)
{
    size_t keep = 0;
    for (size_t i = 0; i < x->nflight; i++) {
        if (x->flight[i].end <= seq)
            x->flight[keep++] = x->flight[i];
        else
            p->unacked -= x->flight[i].bytes;
    }
    x->nflight = keep;
    x->sent = seq;
}

/* The peer holds (room, origin, inc) up to seq, durably: moves the stream and its cursor. */
static void stream_acked(struct srv *s, struct fs_peer *p, struct fs_stream *x, int64_t seq)
{
    if (seq <= x->acked)
        return;
    x->acked = seq;
    if (x->sent < seq)
        x->sent = seq;
    size_t keep = 0;
    for (size_t i = 0; i < x->nflight; i++) {
        if (x->flight[i].end <= seq)
            p->unacked -= x->flight[i].bytes;
        else
            x->flight[keep++] = x->flight[i];
    }
    x->nflight = keep;
    if (srv_fed_tx_begin(s) == KZ_OK)
        store_fed_cursor_set(s->store, p->id, x->room, x->origin, x->inc, seq, kz_now_ms());
}

enum kz_err srv_fed_tx_begin(struct srv *s)
{
    if (store_tx_is_open(s->store))
        return KZ_OK;
    if (srv_writes_blocked(s) || store_tx_begin(s->store) != STORE_OK)
        return KZ_UNAVAILABLE;
    s->tx.want_commit(s->tx.ctx);
    return KZ_OK;
}

/* ---- frames out ---- */

static struct kz_frame *frame_take(struct kz_json *j)
{
    size_t len;
    char *text = kz_json_take(j, &len);
    if (!text)
        return NULL;
    struct kz_frame *f = kz_frame_from_text(text, len, 0);
    free(text);
    return f;
}

/* Sends f (consumed) to peer behind the commits it depends on; a frame that reports state is
 * held until the open transaction commits. */
static void send_frame(struct srv *s, const char *peer_id, struct kz_frame *f, bool reports_state)
{
    struct fs_peer *p = peer_get(s, peer_id);
    if (!f || !p) {
        kz_frame_unref(f);
        return;
    }
    const char *peer = p->id; /* lives as long as the core: the outbox keeps the pointer */
    struct fed_sync *fs = s->fed;
    if (reports_state && fs && store_tx_is_open(s->store)) {
        struct fs_held *h = calloc(1, sizeof *h);
        if (h) {
            h->peer = peer;
            h->frame = f;
            if (fs->held_tail)
                fs->held_tail->next = h;
            else
                fs->held = h;
            fs->held_tail = h;
            return;
        }
    }
    srv_out_fed(s, peer, f);
    kz_frame_unref(f);
}

static void pump(struct srv *s, struct fs_peer *p);
static void summary_send(struct srv *s, struct fs_peer *p);

void srv_fed_after_commit(struct srv *s, bool ok)
{
    struct fed_sync *fs = s->fed;
    srv_fed_blobs_after_commit(s, ok);
    if (!fs)
        return;
    struct fs_held *h = fs->held;
    fs->held = fs->held_tail = NULL;
    while (h) {
        struct fs_held *next = h->next;
        if (ok)
            srv_out_fed(s, h->peer, h->frame);
        kz_frame_unref(h->frame);
        free(h);
        h = next;
    }
    for (struct fs_peer *p = fs->peers; p; p = p->next) {
        if (p->summary_due && p->up && ok && !store_tx_is_open(s->store)) {
            p->summary_due = false;
            summary_send(s, p);
        }
        if (p->ndirty)
            pump(s, p);
    }
}

bool srv_fed_offered(struct srv *s, const char *peer, const char *room_id)
{
    struct fed_sync *fs = s->fed;
    for (struct fs_peer *p = fs ? fs->peers : NULL; p; p = p->next)
        if (strcmp(p->id, peer) == 0)
            for (size_t i = 0; i < p->noffered; i++)
                if (strcmp(p->offered[i], room_id) == 0)
                    return true;
    return false;
}

void srv_fed_server_admitted(struct srv *s, const char *server, int64_t room)
{
    struct fs_peer *p = peer_get(s, server);
    if (!p)
        return;
    p->summary_due = true; /* it names the room, which the server takes from it */
    srv_fed_room_changed(s, room);
}

/* An ack or a want about one log (docs/protocol.md, "Server to server"). */
static void state_frame(struct srv *s, const char *peer, const char *t, const char *room,
                        const char *origin, int64_t inc, int64_t seq, bool retry)
{
    struct kz_json j;
    kz_json_init(&j, 256);
    kz_json_raw(&j, "{", 1);
    kz_json_key(&j, "t");
    kz_json_str(&j, t);
    kz_json_key(&j, "room");
    kz_json_str(&j, room);
    kz_json_key(&j, "origin");
    kz_json_str(&j, origin);
    kz_json_key(&j, "inc");
    kz_json_int(&j, inc);
    kz_json_key(&j, "seq");
    kz_json_int(&j, seq);
    if (retry) {
        kz_json_key(&j, "retry");
        kz_json_bool(&j, true);
    }
    kz_json_raw(&j, "}", 1);
    send_frame(s, peer, frame_take(&j), true);
}

/* ---- summaries ---- */

struct summary_ctx {
    struct srv *s;
    const char *peer;
    struct kz_json j;
    bool open;  /* j holds a frame with at least one room */
    bool first; /* the next log is the first of its room */
    int64_t last_room;
    int nrooms;
};

static void summary_start(struct summary_ctx *c)
{
    kz_json_init(&c->j, SUMMARY_FRAME_BYTES);
    kz_json_raw(&c->j, "{\"t\":\"summary\",\"rooms\":[", 24);
    c->open = false;
}

static void summary_flush(struct summary_ctx *c, bool done)
{
    kz_json_raw(&c->j, "]", 1);
    kz_json_key(&c->j, "done");
    kz_json_bool(&c->j, done);
    kz_json_raw(&c->j, "}", 1);
    send_frame(c->s, c->peer, frame_take(&c->j), true);
}

static int summary_log(void *arg, const struct store_log *l)
{
    struct summary_ctx *c = arg;
    kz_json_raw(&c->j, c->first ? "[" : ",[", c->first ? 1 : 2);
    c->first = false;
    kz_json_str(&c->j, l->origin);
    kz_json_raw(&c->j, ",", 1);
    kz_json_int(&c->j, l->inc);
    kz_json_raw(&c->j, ",", 1);
    kz_json_int(&c->j, l->head_seq);
    kz_json_raw(&c->j, "]", 1);
    return 0;
}

static int summary_room(void *arg, int64_t room, const char *room_id)
{
    struct summary_ctx *c = arg;
    c->last_room = room;
    c->nrooms++;
    if (c->open)
        kz_json_raw(&c->j, ",", 1);
    kz_json_raw(&c->j, "{", 1);
    kz_json_key(&c->j, "room");
    kz_json_str(&c->j, room_id);
    kz_json_key(&c->j, "logs");
    kz_json_raw(&c->j, "[", 1);
    c->first = true;
    store_log_each(c->s->store, room, summary_log, c);
    kz_json_raw(&c->j, "]}", 2);
    c->open = true;
    return 0;
}

/* Sends this server's holdings of every room shared with peer, in frames of about
 * SUMMARY_FRAME_BYTES; the last says done. */
static void summary_send(struct srv *s, struct fs_peer *p)
{
    struct summary_ctx c = {.s = s, .peer = p->id};
    p->summary_at = kz_now_ms();
    summary_start(&c);
    for (;;) {
        c.nrooms = 0;
        if (store_shared_rooms_each(s->store, p->id, c.last_room, SUMMARY_ROOMS_PAGE, summary_room,
                                    &c) != STORE_OK)
            break;
        if (c.nrooms < SUMMARY_ROOMS_PAGE)
            break;
        if (c.j.len >= SUMMARY_FRAME_BYTES) {
            summary_flush(&c, false);
            summary_start(&c);
        }
    }
    summary_flush(&c, true);
}

/* ---- sending a room's logs ---- */

struct batch_ctx {
    struct srv *s;
    int64_t budget; /* bytes the frame may still take */
    int target;     /* events after which the batch ends at the next signature */
    struct kz_json j;
    int n;
    size_t signed_len; /* j's length after the last signed event */
    int signed_n;
    int64_t signed_seq;
    int64_t bytes;
};

static int batch_event(void *arg, const struct store_event *e)
{
    struct batch_ctx *b = arg;
    if (b->n && (int64_t)(e->payload_len * 2 + 200) > b->budget && b->signed_n)
        return 1;
    kz_json_raw(&b->j, b->n ? ",[" : "[", b->n ? 2 : 1);
    kz_json_strn(&b->j, e->payload, e->payload_len);
    kz_json_raw(&b->j, ",", 1);
    char sig[FED_SIG_B64LEN + 1] = "";
    if (e->sig_len == KZ_EVENT_SIG_BYTES)
        sodium_bin2base64(sig, sizeof sig, e->sig, e->sig_len,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    kz_json_str(&b->j, sig);
    kz_json_raw(&b->j, "]", 1);
    b->n++;
    b->budget -= (int64_t)e->payload_len * 2 + 100;
    if (sig[0]) {
        b->signed_len = b->j.len;
        b->signed_n = b->n;
        b->signed_seq = e->seq;
        b->bytes = (int64_t)b->j.len;
        if (b->n >= b->target)
            return 1;
    }
    return 0;
}

/* What one turn of sending did: nothing is left to send; a batch went and more remain; or the
 * unacknowledged-bytes bound stopped it (the room stays dirty). */
enum pump_rc { PUMP_DONE, PUMP_MORE, PUMP_BLOCKED };

/* Sends the next batch p lacks of one log (one per turn, so that every room and log moves on
 * in turn: a long backlog in one room never holds up another). */
static enum pump_rc pump_log(struct srv *s, struct fs_peer *p, const struct store_room *r,
                             const struct store_log *log, int64_t upto)
{
    struct store_log capped = *log, *l = &capped;
    if (upto && l->head_seq > upto)
        l->head_seq = upto; /* a removed server gets its log up to its removal */
    struct fs_stream *x = stream_get(s, p, r->id, l->origin, l->inc);
    if (!x)
        return PUMP_BLOCKED;
    /* A server holds what it wrote itself, unless its summary said otherwise (a restore). */
    if (strcmp(l->origin, p->id) == 0 && !x->own_lacking)
        return PUMP_DONE;
    if (x->sent < l->head_seq) {
        if (p->unacked >= s->cfg->federation_unacked_bytes)
            return PUMP_BLOCKED;
        struct batch_ctx b = {.s = s,
                              .budget = s->cfg->federation_max_frame_bytes - 1024,
                              .target = (int)s->cfg->federation_batch_events};
        kz_json_init(&b.j, 4096);
        kz_json_raw(&b.j, "{", 1);
        kz_json_key(&b.j, "t");
        kz_json_str(&b.j, "events");
        kz_json_key(&b.j, "room");
        kz_json_str(&b.j, r->room_id);
        kz_json_key(&b.j, "origin");
        kz_json_str(&b.j, l->origin);
        kz_json_key(&b.j, "inc");
        kz_json_int(&b.j, l->inc);
        kz_json_key(&b.j, "events");
        kz_json_raw(&b.j, "[", 1);
        if (store_log_range(s->store, r->id, l->origin, l->inc, x->sent, KZ_EVENT_CHECKPOINT_EVENTS,
                            batch_event, &b) != STORE_OK ||
            !b.signed_n) {
            /* No signed event within reach: the log's checkpoint is not committed yet. */
            kz_json_free(&b.j);
            return PUMP_DONE;
        }
        b.j.len = b.signed_len; /* the batch ends on its last signed event */
        kz_json_raw(&b.j, "]}", 2);
        struct kz_frame *f = frame_take(&b.j);
        if (!f || !grow((void **)&x->flight, &x->capflight, x->nflight, sizeof *x->flight)) {
            kz_frame_unref(f);
            return PUMP_BLOCKED;
        }
        x->flight[x->nflight++] = (struct fs_flight){b.signed_seq, (int64_t)f->len};
        p->unacked += (int64_t)f->len;
        x->sent = b.signed_seq;
        fs_of(s)->n.events_sent += b.signed_n;
        send_frame(s, p->id, f, false);
    }
    return x->sent < l->head_seq ? PUMP_MORE : PUMP_DONE;
}

struct logs_ctx {
    struct store_log *logs;
    size_t n, cap;
};

static int collect_log(void *arg, const struct store_log *l)
{
    struct logs_ctx *c = arg;
    if (!grow((void **)&c->logs, &c->cap, c->n, sizeof *c->logs))
        return 1;
    c->logs[c->n++] = *l;
    return 0;
}

/* Sends p one batch of each log of room it lacks. The authority's log goes first: a server that
 * lacks the room takes nothing before its creation. */
static enum pump_rc pump_room(struct srv *s, struct fs_peer *p, int64_t room)
{
    struct store_room r;
    bool known = false, admitted = false;
    int64_t changed_pos = 0, upto = 0, upto_inc = 0;
    if (store_room_get_by_id(s->store, room, &r) != STORE_OK || !r.authority[0] ||
        store_room_server_state(s->store, room, p->id, &known, &admitted, &changed_pos) !=
            STORE_OK ||
        !known)
        return PUMP_DONE;
    /* A server removed from the room gets the authority's log up to its removal, so that it
     * knows (its users can no longer write there), and nothing after it. */
    char origin[STORE_SERVER_ID_MAX + 1] = "";
    if (!admitted &&
        (store_event_log_pos(s->store, changed_pos, origin, &upto_inc, &upto) != STORE_OK ||
         strcmp(origin, r.authority) != 0))
        return PUMP_DONE;
    struct logs_ctx c = {0};
    if (store_log_each(s->store, room, collect_log, &c) != STORE_OK) {
        free(c.logs);
        return PUMP_DONE;
    }
    enum pump_rc rc = PUMP_DONE;
    for (int pass = 0; pass < 2 && rc != PUMP_BLOCKED; pass++)
        for (size_t i = 0; i < c.n && rc != PUMP_BLOCKED; i++)
            if ((strcmp(c.logs[i].origin, r.authority) == 0) == (pass == 0) &&
                (admitted || (pass == 0 && c.logs[i].inc == upto_inc))) {
                enum pump_rc one = pump_log(s, p, &r, &c.logs[i], admitted ? 0 : upto);
                if (one != PUMP_DONE)
                    rc = one;
            }
    free(c.logs);
    return rc;
}

/* Sends p what it lacks of its dirty rooms. Never inside an open transaction: what it would
 * read may still roll back, and the outbox would let it out behind the previous commit;
 * srv_fed_after_commit pumps once the transaction is committed. */
static void pump(struct srv *s, struct fs_peer *p)
{
    if (!p->up || !p->summarised || store_tx_is_open(s->store))
        return;
    /* Round robin over the rooms with something to send, one batch per log each turn, from
     * where the last pump stopped: no room waits for another's backlog. Each step sends a
     * batch or retires a room, so this ends, at the bound or with nothing left. */
    while (p->ndirty) {
        if (p->rr >= p->ndirty)
            p->rr = 0;
        enum pump_rc rc = pump_room(s, p, p->dirty[p->rr]);
        if (rc == PUMP_BLOCKED)
            return;
        if (rc == PUMP_DONE) {
            memmove(&p->dirty[p->rr], &p->dirty[p->rr + 1],
                    (p->ndirty - p->rr - 1) * sizeof *p->dirty);
            p->ndirty--;
        } else {
            p->rr++;
        }
    }
    srv_fed_blobs_idle(s, p->id); /* nothing left for the peer: a blob part may go */
}

bool srv_fed_pump_idle(struct srv *s, const char *peer)
{
    struct fed_sync *fs = s->fed;
    for (struct fs_peer *p = fs ? fs->peers : NULL; p; p = p->next)
        if (strcmp(p->id, peer) == 0)
            return p->up && p->summarised && !p->ndirty;
    return false;
}

void srv_fed_room_changed(struct srv *s, int64_t room)
{
    struct fed_sync *fs = s->fed;
    for (struct fs_peer *p = fs ? fs->peers : NULL; p; p = p->next)
        if (p->up)
            ids_add(&p->dirty, &p->ndirty, &p->capdirty, room);
}

void srv_fed_peer_holds(struct srv *s, const char *peer, int64_t room, const char *origin,
                        int64_t inc, int64_t seq)
{
    struct fs_peer *p = peer_get(s, peer);
    struct fs_stream *x = p ? stream_get(s, p, room, origin, inc) : NULL;
    if (x)
        stream_acked(s, p, x, seq);
}

/* ---- link life ---- */

void srv_fed_link_up(struct srv *s, const char *peer_id)
{
    struct fs_peer *p = peer_get(s, peer_id);
    if (!p)
        return;
    p->up = true;
    p->summarised = false;
    p->nmentioned = 0;
    p->noffered = 0;
    KZ_INFO("fed_sync_up", "peer=%s", peer_id);
    summary_send(s, p);
    srv_fed_blobs_link(s, peer_id, true);
}

void srv_fed_link_down(struct srv *s, const char *peer_id)
{
    struct fs_peer *p = peer_get(s, peer_id);
    if (!p)
        return;
    p->up = false;
    p->summarised = false;
    for (size_t i = 0; i < p->nstreams; i++)
        stream_rewind(p, &p->streams[i], p->streams[i].acked);
    p->unacked = 0;
    p->ndirty = 0;
    srv_fed_blobs_link(s, peer_id, false);
}

void srv_fed_writable(struct srv *s, const char *peer_id)
{
    struct fs_peer *p = peer_get(s, peer_id);
    if (p)
        pump(s, p);
}

/* ---- frames in ---- */

static const char *jstr(const cJSON *o, const char *k)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static bool jint(const cJSON *o, const char *k, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > (double)KZ_EVENT_INT_MAX ||
        v->valuedouble != (double)(int64_t)v->valuedouble)
        return false;
    *out = (int64_t)v->valuedouble;
    return true;
}

static int bad(char *why, size_t n, const char *what)
{
    snprintf(why, n, "%s", what);
    return -1;
}

struct room_reset {
    struct srv *s;
    struct fs_peer *p;
    int64_t room;
    const cJSON *logs; /* the peer's vector; NULL: it holds nothing of the room */
};

/* Whether the peer's vector names (origin, inc). */
static bool vector_names(const cJSON *logs, const char *origin, int64_t inc)
{
    const cJSON *l;
    cJSON_ArrayForEach(l, logs)
    {
        const cJSON *o = cJSON_GetArrayItem(l, 0), *i = cJSON_GetArrayItem(l, 1);
        if (cJSON_IsString(o) && cJSON_IsNumber(i) && strcmp(o->valuestring, origin) == 0 &&
            (int64_t)i->valuedouble == inc)
            return true;
    }
    return false;
}

/* A log of the room this server holds and the peer does not: it goes from its start, whatever
 * the peer acknowledged before (a peer restored from a backup older than it). */
static int reset_unnamed(void *arg, const struct store_log *l)
{
    struct room_reset *c = arg;
    if (c->logs && vector_names(c->logs, l->origin, l->inc))
        return 0;
    struct fs_stream *x = stream_get(c->s, c->p, c->room, l->origin, l->inc);
    if (!x)
        return 0;
    if (x->acked || x->sent) {
        stream_rewind(c->p, x, 0);
        x->acked = 0;
    }
    x->own_lacking = true;
    return 0;
}

/* The peer's view of one room it shares: its vector moves the streams toward it. */
static void summary_room_in(struct srv *s, struct fs_peer *p, const cJSON *room)
{
    const char *room_id = jstr(room, "room");
    const cJSON *logs = cJSON_GetObjectItemCaseSensitive(room, "logs");
    struct store_room r;
    bool admitted = false;
    if (room_id && strlen(room_id) == KZ_EVENT_ID_LEN && cJSON_IsArray(logs) &&
        store_room_get(s->store, room_id, &r) == STORE_NOT_FOUND) {
        bool known = false;
        for (size_t i = 0; i < p->noffered && !known; i++)
            known = strcmp(p->offered[i], room_id) == 0;
        if (!known && p->noffered < OFFERED_MAX &&
            grow((void **)&p->offered, &p->capoffered, p->noffered, sizeof *p->offered))
            snprintf(p->offered[p->noffered++], KZ_EVENT_ID_CHARS, "%s", room_id);
        return;
    }
    /* A removed server too: it is sent the authority's log up to its removal (pump_room). */
    bool known = false;
    int64_t changed_pos = 0;
    if (!room_id || !cJSON_IsArray(logs) || store_room_get(s->store, room_id, &r) != STORE_OK ||
        !r.authority[0] ||
        store_room_server_state(s->store, r.id, p->id, &known, &admitted, &changed_pos) || !known)
        return;
    ids_add(&p->mentioned, &p->nmentioned, &p->capmentioned, r.id);
    /* Logs this server holds and the peer does not name: it holds none of them. */
    struct room_reset rr = {s, p, r.id, logs};
    store_log_each(s->store, r.id, reset_unnamed, &rr);
    const cJSON *l;
    cJSON_ArrayForEach(l, logs)
    {
        const cJSON *o = cJSON_GetArrayItem(l, 0), *inc = cJSON_GetArrayItem(l, 1),
                    *seq = cJSON_GetArrayItem(l, 2);
        if (!cJSON_IsString(o) || strlen(o->valuestring) > STORE_SERVER_ID_MAX ||
            !cJSON_IsNumber(inc) || !cJSON_IsNumber(seq) || seq->valuedouble < 0 ||
            seq->valuedouble > (double)KZ_EVENT_INT_MAX)
            continue;
        int64_t head = 0;
        char head_id[STORE_ROOM_ID_MAX + 1];
        if (store_log_head(s->store, r.id, o->valuestring, (int64_t)inc->valuedouble, &head,
                           head_id) != STORE_OK)
            continue; /* a log this server does not hold: the peer will send it */
        struct fs_stream *x = stream_get(s, p, r.id, o->valuestring, (int64_t)inc->valuedouble);
        if (!x)
            continue;
        int64_t theirs = (int64_t)seq->valuedouble;
        if (theirs > head)
            theirs = head; /* they hold more than this server: nothing to send */
        if (strcmp(x->origin, p->id) == 0)
            x->own_lacking = theirs < head;
        if (theirs < x->acked) {
            /* The peer lost what it had acknowledged (restored from a backup): send again. */
            KZ_WARN("fed_peer_behind", "peer=%s room=%s origin=%s inc=%lld acked=%lld holds=%lld",
                    p->id, room_id, x->origin, (long long)x->inc, (long long)x->acked,
                    (long long)theirs);
            stream_rewind(p, x, theirs);
            x->own_lacking = true;
            x->acked = theirs;
        } else {
            stream_acked(s, p, x, theirs);
            if (x->sent < theirs)
                x->sent = theirs;
        }
    }
    ids_add(&p->dirty, &p->ndirty, &p->capdirty, r.id);
}

struct unmentioned_ctx {
    struct srv *s;
    struct fs_peer *p;
};

static int unmentioned_room(void *arg, int64_t room, const char *room_id)
{
    (void)room_id;
    struct unmentioned_ctx *c = arg;
    if (ids_has(c->p->mentioned, c->p->nmentioned, room))
        return 0;
    /* The peer holds nothing of a room shared with it: all of it goes. */
    struct room_reset rr = {c->s, c->p, room, NULL};
    store_log_each(c->s->store, room, reset_unnamed, &rr);
    ids_add(&c->p->dirty, &c->p->ndirty, &c->p->capdirty, room);
    return 0;
}

static int summary_in(struct srv *s, struct fs_peer *p, const cJSON *j, char *why, size_t n)
{
    const cJSON *rooms = cJSON_GetObjectItemCaseSensitive(j, "rooms");
    if (!cJSON_IsArray(rooms))
        return bad(why, n, "summary without rooms");
    const cJSON *room;
    cJSON_ArrayForEach(room, rooms) summary_room_in(s, p, room);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "done"))) {
        struct unmentioned_ctx c = {s, p};
        store_shared_rooms_each(s->store, p->id, 0, 1 << 30, unmentioned_room, &c);
        p->nmentioned = 0;
        p->summarised = true;
    }
    pump(s, p);
    return 0;
}

static struct fs_stream *stream_of(struct srv *s, struct fs_peer *p, const cJSON *j, int64_t *seq)
{
    const char *room_id = jstr(j, "room"), *origin = jstr(j, "origin");
    int64_t inc;
    struct store_room r;
    if (!room_id || !origin || !jint(j, "inc", &inc) || !jint(j, "seq", seq) ||
        strlen(origin) > STORE_SERVER_ID_MAX || store_room_get(s->store, room_id, &r) != STORE_OK)
        return NULL;
    int64_t head = 0;
    char head_id[STORE_ROOM_ID_MAX + 1];
    if (store_log_head(s->store, r.id, origin, inc, &head, head_id) != STORE_OK)
        return NULL;
    if (*seq > head) /* no one holds from this server more than it has: a confused peer */
        *seq = head;
    return stream_get(s, p, r.id, origin, inc);
}

static int ack_in(struct srv *s, struct fs_peer *p, const cJSON *j, bool want)
{
    int64_t seq;
    struct fs_stream *x = stream_of(s, p, j, &seq);
    if (!x)
        return 0;
    if (!want) {
        stream_acked(s, p, x, seq);
    } else {
        /* The peer holds up to seq and could not take what followed: send again from there. */
        stream_rewind(p, x, seq < x->sent ? seq : x->sent);
        if (seq < x->acked)
            x->acked = seq;
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "retry")))
            ids_add(&p->dirty, &p->ndirty, &p->capdirty, x->room);
    }
    pump(s, p);
    return 0;
}

int srv_fed_frame(struct srv *s, const char *peer_id, const char *data, size_t len, char *why,
                  size_t whylen)
{
    struct fs_peer *p = peer_get(s, peer_id);
    if (!p)
        return bad(why, whylen, "out of memory");
    cJSON *j = cJSON_ParseWithLength(data, len);
    const char *t = jstr(j, "t");
    int rc;
    if (!t)
        rc = bad(why, whylen, "not a frame: a JSON object with a type t");
    else if (strcmp(t, "events") == 0)
        rc = srv_fed_events_in(s, peer_id, j, why, whylen);
    else if (strcmp(t, "ack") == 0)
        rc = ack_in(s, p, j, false);
    else if (strcmp(t, "want") == 0)
        rc = ack_in(s, p, j, true);
    else if (strcmp(t, "summary") == 0)
        rc = summary_in(s, p, j, why, whylen);
    else if (strncmp(t, "blob.", 5) == 0)
        rc = srv_fed_blob_frame(s, peer_id, t, j, why, whylen); /* fed_blobs.c */
    else
        rc = bad(why, whylen, "unknown frame type");
    cJSON_Delete(j);
    /* Any contact after the summary interval: tell the peer again what this server holds. */
    if (rc == 0 && p->up && kz_now_ms() - p->summary_at >= s->cfg->federation_summary_s * 1000)
        summary_send(s, p);
    return rc;
}

void srv_fed_ack(struct srv *s, const char *peer, const char *room_id, const char *origin,
                 int64_t inc, int64_t seq, bool want, bool retry)
{
    state_frame(s, peer, want ? "want" : "ack", room_id, origin, inc, seq, want && retry);
}

#define PENDING_MAX_AGE_MS 60000 /* a gap not filled by then was lost: the summary repairs it */

static void pending_free(struct fed_sync *fs, struct fs_pending **link)
{
    struct fs_pending *x = *link;
    *link = x->next;
    fs->pending_bytes -= (int64_t)x->len;
    free(x->frame);
    free(x);
}

void srv_fed_wait_add(struct srv *s, const char *peer, int64_t room, const char *room_id,
                      const char *origin, int64_t inc)
{
    struct fed_sync *fs = fs_of(s);
    struct fs_peer *p = peer_get(s, peer);
    if (!fs || !p)
        return;
    for (int i = 0; i < fs->nwaits; i++)
        if (fs->waits[i].room == room && fs->waits[i].inc == inc &&
            !strcmp(fs->waits[i].origin, origin) && !strcmp(fs->waits[i].peer, p->id))
            return;
    if (fs->nwaits == WAITS_MAX)
        return; /* the next summary asks for it anyway */
    struct fs_wait *w = &fs->waits[fs->nwaits++];
    w->peer = p->id;
    w->room = room;
    w->inc = inc;
    snprintf(w->room_id, sizeof w->room_id, "%s", room_id);
    snprintf(w->origin, sizeof w->origin, "%s", origin);
}

void srv_fed_wait_wake(struct srv *s, int64_t room)
{
    struct fed_sync *fs = s->fed;
    for (int i = 0; fs && i < fs->nwaits;) {
        struct fs_wait *w = &fs->waits[i];
        if (w->room != room) {
            i++;
            continue;
        }
        int64_t head = 0;
        char head_id[STORE_ROOM_ID_MAX + 1];
        store_log_head(s->store, room, w->origin, w->inc, &head, head_id);
        srv_fed_ack(s, w->peer, w->room_id, w->origin, w->inc, head, true, true);
        fs->waits[i] = fs->waits[--fs->nwaits];
    }
}

void srv_fed_housekeep(struct srv *s)
{
    struct fed_sync *fs = s->fed;
    int64_t now = kz_now_ms();
    srv_fed_blobs_housekeep(s);
    for (struct fs_peer *p = fs ? fs->peers : NULL; p; p = p->next)
        if (p->up && now - p->summary_at >= s->cfg->federation_summary_s * 1000)
            summary_send(s, p); /* a quiet link too: whatever was lost is found and sent */
    for (struct fs_pending **l = fs ? &fs->pending : NULL; l && *l;)
        if (now - (*l)->at > PENDING_MAX_AGE_MS)
            pending_free(fs, l);
        else
            l = &(*l)->next;
}

bool srv_fed_pending_put(struct srv *s, const char *peer, const cJSON *frame, const char *room,
                         const char *origin, int64_t inc, int64_t first)
{
    struct fed_sync *fs = fs_of(s);
    struct fs_peer *p = peer_get(s, peer);
    if (!fs || !p)
        return false;
    int64_t now = kz_now_ms();
    for (struct fs_pending **l = &fs->pending; *l;) {
        struct fs_pending *x = *l;
        if (now - x->at > PENDING_MAX_AGE_MS)
            pending_free(fs, l);
        else if (x->inc == inc && x->first == first && !strcmp(x->room, room) &&
                 !strcmp(x->origin, origin))
            return true; /* held already (a duplicated frame) */
        else
            l = &x->next;
    }
    char *text = cJSON_PrintUnformatted(frame);
    size_t len = text ? strlen(text) : 0;
    struct fs_pending *x = text ? calloc(1, sizeof *x) : NULL;
    if (!x || fs->pending_bytes + (int64_t)len > s->cfg->federation_pending_bytes) {
        free(text);
        free(x);
        return false;
    }
    *x = (struct fs_pending){.peer = p->id,
                             .inc = inc,
                             .first = first,
                             .at = now,
                             .frame = text,
                             .len = len,
                             .next = fs->pending};
    snprintf(x->room, sizeof x->room, "%s", room);
    snprintf(x->origin, sizeof x->origin, "%s", origin);
    fs->pending = x;
    fs->pending_bytes += (int64_t)len;
    return true;
}

cJSON *srv_fed_pending_take(struct srv *s, const char *room, const char *origin, int64_t inc,
                            int64_t head, const char **peer)
{
    struct fed_sync *fs = s->fed;
    for (struct fs_pending **l = fs ? &fs->pending : NULL; l && *l; l = &(*l)->next) {
        struct fs_pending *x = *l;
        if (x->inc != inc || x->first > head + 1 || strcmp(x->room, room) ||
            strcmp(x->origin, origin))
            continue;
        cJSON *j = cJSON_ParseWithLength(x->frame, x->len);
        *peer = x->peer;
        pending_free(fs, l);
        return j;
    }
    return NULL;
}

void srv_fed_counters(struct srv *s, struct srv_fed_counters *out)
{
    struct fed_sync *fs = s->fed;
    if (fs)
        *out = fs->n;
    else
        memset(out, 0, sizeof *out);
}

struct srv_fed_counters *srv_fed_counters_mut(struct srv *s)
{
    struct fed_sync *fs = fs_of(s);
    return fs ? &fs->n : NULL;
}

void srv_fed_peer_state(struct srv *s, const char *peer_id, bool *up, int64_t *unacked)
{
    *up = false;
    *unacked = 0;
    struct fed_sync *fs = s->fed;
    for (struct fs_peer *p = fs ? fs->peers : NULL; p; p = p->next)
        if (strcmp(p->id, peer_id) == 0) {
            *up = p->up;
            *unacked = p->unacked;
        }
}

void srv_fed_free(struct srv *s)
{
    struct fed_sync *fs = s->fed;
    if (!fs)
        return;
    srv_fed_after_commit(s, false);
    while (fs->pending)
        pending_free(fs, &fs->pending);
    struct fs_peer *p = fs->peers;
    while (p) {
        struct fs_peer *next = p->next;
        for (size_t i = 0; i < p->nstreams; i++)
            free(p->streams[i].flight);
        free(p->streams);
        free(p->dirty);
        free(p->mentioned);
        free(p->offered);
        free(p);
        p = next;
    }
    free(fs);
    s->fed = NULL;
}
