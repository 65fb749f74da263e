/* fed_blobs.c - encrypted blobs across servers (issue 19, item 3), the pulling side: a server
 * that holds an e2ee.photo event but not its blobs pulls them, over the federation links, from
 * member servers of the room that hold them; and the core's calls into both sides (frames, link
 * changes, the timer, housekeeping). fed_blob_serve.c answers the other servers' requests.
 * docs/federation.md ("Blobs across servers") says why it is built this way; docs/protocol.md
 * has the frames.
 *
 * take_one (fed_receive.c) records a want per blob a valid received photo names
 * (store_blob_fetch.c), in the transaction that stores the event: events are never held back
 * by blobs. The puller gives each link at most one blob at a time and one blob.get in flight,
 * asks for federation_blob_chunk_bytes at a time and spaces its requests so that the link
 * carries at most federation_blob_bytes_per_s of blob parts. Each part is appended to
 * DATA/fedblobs/ID.part and fsynced before its offset is committed, so a kill at any moment
 * resumes from a committed offset (a longer file is cut back to it). At the last byte the file
 * is hashed: equal to the id, it is linked into DATA/blobs like an upload and the blob and its
 * references recorded; not equal, the bytes are dropped and that source is skipped for the
 * blob. The hash needs no key: the id is BLAKE2b-256 of the ciphertext.
 *
 * Sources: the waiting events' origin servers first, then the rooms' other admitted member
 * servers, of those with an up link; a source that answers blob.none is skipped for 10 s;
 * none reachable: the want waits for a link to come up (srv_fed_blobs_link). A link that goes
 * down mid-blob hands the blob to another source within milliseconds (the blob timer kicks:
 * the link's end itself writes nothing, as it also comes during shutdown).
 *
 * Staging is bounded: federation_blob_staging_bytes caps the partial files together (see "the
 * staging bound" below), so a member server that names many blobs and serves each partly
 * fills at most that much of the disk. A fetch that would pass it waits ("waiting: staging
 * full"), and its want stays: the event is valid, only its blob is late.
 *
 * Every field of a blob frame is hostile: a frame that breaks the protocol (a bad id, a
 * negative or fractional number, base64 that is not exact, a part longer than asked) returns
 * -1 and closes the link; an answer nobody asked for is ignored. Event loop thread only. */
#include "fed_blobs_int.h"
#include "media.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REQUEST_TIMEOUT_MS 30000 /* a blob.get unanswered this long: the source is dropped */
#define NONE_SKIP_MS       10000 /* a source that said blob.none is not asked again before */
#define NO_SOURCE_WAIT_MS  60000 /* no source reachable: look again (a link up looks at once) */
#define BACKOFF_MIN_MS     10000 /* every source failed: the next round after this, doubling */
#define BACKOFF_MAX_MS     3600000
#define DUE_PER_KICK       256 /* wants looked at per kick, at most (two queries each) */
#define SOURCES_MAX        16
#define STAGING_WAIT_MS    60000  /* no staging space: look again (sooner: when a fetch ends) */
#define STAGING_STALE_MS   600000 /* staged bytes that have not grown for this long may go */
#define STALE_PER_PASS     256    /* stalled partial files looked at per search for space */

/* The last error of a want waiting for staging space: what a fetch's end wakes (and what
 * blob.status and the 503 say). */
static const char STAGING_FULL[] = "waiting: staging full";
static const char STAGING_TOO_SMALL[] =
    "waiting: larger than federation_blob_staging_bytes (raise it to fetch this blob)";

struct fed_blobs *fb_of(struct srv *s)
{
    if (!s->fb)
        s->fb = calloc(1, sizeof *s->fb);
    return s->fb;
}

struct fb_link *fb_link_get(struct srv *s, const char *peer)
{
    struct fed_blobs *fb = fb_of(s);
    if (!fb)
        return NULL;
    for (struct fb_link *l = fb->links; l; l = l->next)
        if (strcmp(l->peer, peer) == 0)
            return l;
    struct fb_link *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    snprintf(l->peer, sizeof l->peer, "%s", peer);
    l->next = fb->links;
    fb->links = l;
    return l;
}

static void staging_path(const struct srv *s, const char *blob, char *out, size_t n)
{
    snprintf(out, n, "%s/fedblobs/%s.part", s->data_dir, blob);
}

/* The most blob bytes one part may carry: its base64 within federation_max_frame_bytes. */
int64_t fb_part_max(const struct srv *s)
{
    return (s->cfg->federation_max_frame_bytes - FRAME_OVERHEAD) / 4 * 3;
}

/* A whole number in [lo, hi]: false for anything else (a string, a fraction, out of range). */
bool fb_jnum(const cJSON *o, const char *k, int64_t lo, int64_t hi, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= (double)lo && v->valuedouble <= (double)hi) ||
        v->valuedouble != (double)(int64_t)v->valuedouble)
        return false;
    *out = (int64_t)v->valuedouble;
    return true;
}

const char *fb_jstr(const cJSON *o, const char *k)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

int fb_bad(char *why, size_t n, const char *what)
{
    snprintf(why, n, "%s", what);
    return -1;
}

void fb_send_text(struct srv *s, struct fb_link *l, const char *text, size_t len)
{
    struct kz_frame *f = kz_frame_from_text(text, len, 0);
    if (!f)
        return;
    srv_out_fed(s, l->peer, f);
    kz_frame_unref(f);
}

/* Whether a link is up and has no job. */
static bool free_link(const struct fed_blobs *fb)
{
    for (const struct fb_link *l = fb->links; l; l = l->next)
        if (l->up && !l->job.active)
            return true;
    return false;
}

/* ---- the timer: paced requests and their timeouts ---- */

/* Arms the one timer for the soonest thing a link waits for (a paced request, a timeout), or
 * at once for a kick that is due while a link is free (srv_fed_blobs_tick kicks). */
void fb_arm(struct srv *s)
{
    struct fed_blobs *fb = s->fb;
    if (!fb || !s->tx.blob_timer)
        return;
    int64_t now = kz_now_ms(), soonest = 0;
    if (fb->kick_due && free_link(fb) && !srv_writes_blocked(s))
        soonest = now;
    for (struct fb_link *l = fb->links; l; l = l->next) {
        if (l->serve.pending && l->serve_at > now && (!soonest || l->serve_at < soonest))
            soonest = l->serve_at;
        if (!l->job.active)
            continue;
        int64_t at = l->job.sent ? l->job.sent_at + REQUEST_TIMEOUT_MS : l->next_at;
        if (!soonest || at < soonest)
            soonest = at;
    }
    if (soonest)
        s->tx.blob_timer(s->tx.ctx, (int)(soonest > now ? soonest - now : 1));
}

/* ---- pulling ---- */

static void kick(struct srv *s);

static bool none_recent(struct fed_blobs *fb, const char *blob, const char *peer, int64_t now)
{
    for (int i = 0; i < fb->nnones; i++)
        if (now - fb->nones[i].at < NONE_SKIP_MS && !strcmp(fb->nones[i].blob, blob) &&
            !strcmp(fb->nones[i].peer, peer))
            return true;
    return false;
}

static void none_add(struct fed_blobs *fb, const char *blob, const char *peer, int64_t now)
{
    int slot = fb->nnones < NONES_MAX ? fb->nnones++ : 0;
    for (int i = 0; i < fb->nnones; i++)
        if (fb->nones[i].at < fb->nones[slot].at)
            slot = i; /* full: the oldest goes */
    snprintf(fb->nones[slot].blob, sizeof fb->nones[slot].blob, "%s", blob);
    snprintf(fb->nones[slot].peer, sizeof fb->nones[slot].peer, "%s", peer);
    fb->nones[slot].at = now;
}

static bool in_flight(struct fed_blobs *fb, const char *blob)
{
    for (struct fb_link *l = fb->links; l; l = l->next)
        if (l->job.active && !strcmp(l->job.blob, blob))
            return true;
    return false;
}

/* Sends the job's next blob.get, or arms the timer for when the bandwidth cap allows it. */
static void request_next(struct srv *s, struct fb_link *l)
{
    struct fb_job *j = &l->job;
    int64_t now = kz_now_ms();
    if (!l->up || j->sent)
        return;
    if (l->next_at > now) {
        fb_arm(s);
        return;
    }
    int64_t len = s->cfg->federation_blob_chunk_bytes;
    if (len > fb_part_max(s))
        len = fb_part_max(s);
    if (j->total && j->total - j->offset < len)
        len = j->total - j->offset;
    if (!j->total && j->reserved - j->offset < len)
        len = j->reserved - j->offset; /* no more than was reserved before the total is said */
    if (len < 1)
        len = 1;
    char text[400];
    int n = snprintf(text, sizeof text,
                     "{\"t\":\"blob.get\",\"id\":\"%s\",\"room\":\"%s\",\"offset\":%lld,"
                     "\"length\":%lld}",
                     j->blob, j->room_id, (long long)j->offset, (long long)len);
    if (n <= 0 || (size_t)n >= sizeof text)
        return;
    j->sent = true;
    j->sent_at = now;
    j->req_len = len;
    fb_send_text(s, l, text, (size_t)n);
    fb_arm(s);
}

/* The job on l ended without the blob: the want keeps what is staged and is due again now. */
static void job_stop(struct srv *s, struct fb_link *l, const char *why)
{
    struct fb_job *j = &l->job;
    if (!j->active)
        return;
    j->active = false;
    s->fb->staging_freed = true; /* what it reserved beyond its staged bytes */
    KZ_INFO("blob_fetch_stop", "blob=%s source=%s offset=%lld received=%lld why=\"%s\"", j->blob,
            l->peer, (long long)j->offset, (long long)j->received, why);
    struct store_blob_want w;
    if (srv_fed_tx_begin(s) == KZ_OK && store_blob_want_get(s->store, j->blob, &w) == STORE_OK)
        store_blob_want_retry(s->store, j->blob, "waiting", j->offset, w.tries, kz_now_ms(), why);
}

/* Begins fetching w from l's peer, naming room_id, with need bytes of staging reserved: the
 * staging file is cut back to the committed offset (bytes written after the last commit are
 * not trusted). */
static void job_start(struct srv *s, struct fb_link *l, const struct store_blob_want *w,
                      const char *room_id, int64_t need)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/fedblobs", s->data_dir);
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        KZ_ERROR("blob_fetch_io", "dir=%s error=\"%s\"", path, strerror(errno));
        return;
    }
    staging_path(s, w->blob, path, sizeof path);
    int64_t have = w->total && w->have > w->total ? 0 : w->have;
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        KZ_ERROR("blob_fetch_io", "blob=%s error=\"%s\"", w->blob, strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    if (st.st_size < have) {
        KZ_WARN("blob_fetch_short", "blob=%s committed=%lld file=%lld", w->blob, (long long)have,
                (long long)st.st_size);
        have = st.st_size;
    }
    if (st.st_size != have && ftruncate(fd, have) != 0) {
        KZ_ERROR("blob_fetch_io", "blob=%s error=\"%s\"", w->blob, strerror(errno));
        close(fd);
        return; /* bytes past the committed offset would end up in the blob */
    }
    close(fd);
    struct fb_job *j = &l->job;
    memset(j, 0, sizeof *j);
    j->active = true;
    snprintf(j->blob, sizeof j->blob, "%s", w->blob);
    snprintf(j->room_id, sizeof j->room_id, "%s", room_id);
    j->offset = have;
    j->total = have ? w->total : 0;
    j->reserved = need;
    j->started_at = kz_now_ms();
    KZ_INFO("blob_fetch_start", "blob=%s source=%s offset=%lld total=%lld", j->blob, l->peer,
            (long long)have, (long long)j->total);
    if (srv_fed_tx_begin(s) == KZ_OK)
        store_blob_want_progress(s->store, j->blob, have, j->total, l->peer, "fetching",
                                 j->started_at);
    request_next(s, l);
}

/* ---- the staging bound (federation_blob_staging_bytes) ----
 *
 * The partial files (DATA/fedblobs/ID.part) together hold at most federation_blob_staging_bytes.
 * Counted: every want's staged bytes (its committed have, which is what its file holds), plus,
 * for each fetch under way, what it has reserved beyond them: its whole total once a source has
 * said it, before that its first request. A fetch starts only when its reservation fits, and
 * nothing is staged before its whole total fits: the first part says the total, and if it does
 * not fit the part is thrown away (one chunk, 64 KiB by default) and the want waits, keeping
 * the total to make room for next time. Reserving whole totals is what keeps two fetches from
 * each filling half the space and neither finishing. A want that waits for space is woken when
 * any fetch ends, and looked at again every minute besides.
 *
 * Partial files that stopped growing stay, so that a fetch cut by a link that comes back
 * resumes where it was. They are what a hostile member server would pile up (a photo per blob
 * it serves partly, then silence), so when a fetch needs space, the partial files that have not
 * grown for STAGING_STALE_MS (10 minutes) are dropped, the longest stalled first and only as
 * many as make room (none if even all of them would not): their wants stay and fetch again from
 * 0 later. Ten minutes: a link that comes back sooner resumes what it cut, and the default 1 GiB
 * takes over an hour to fill at the default 256 KiB/s of one link, so a fetch that meets a full
 * staging space rarely waits for anything to go stale. */

/* The first request's length: a chunk, within a part. */
static int64_t chunk_len(const struct srv *s)
{
    int64_t len = s->cfg->federation_blob_chunk_bytes;
    return len < fb_part_max(s) ? len : fb_part_max(s);
}

/* What w must be able to stage to be fetched: its whole size when known (a total said before
 * any byte was staged counts only when it could fit at all: it may come from a source that
 * lies), else its first request. */
static int64_t want_need(const struct srv *s, const struct store_blob_want *w)
{
    int64_t cap = s->cfg->federation_blob_staging_bytes, first = chunk_len(s);
    if (w->total && (w->have || w->total <= cap))
        return w->total;
    return w->have + (first < cap ? first : cap);
}

/* Bytes the staging files hold or may come to hold before the fetches under way end; -1 if
 * the store fails. */
static int64_t staging_used(struct srv *s)
{
    int64_t used = 0;
    if (store_blob_staged_bytes(s->store, &used) != STORE_OK)
        return -1;
    for (const struct fb_link *l = s->fb->links; l; l = l->next)
        if (l->job.active && l->job.reserved > l->job.offset)
            used += l->job.reserved - l->job.offset;
    return used;
}

struct stale {
    int n;
    struct store_blob_want v[STALE_PER_PASS];
};

static int stale_add(void *arg, const struct store_blob_want *w)
{
    struct stale *c = arg;
    c->v[c->n++] = *w;
    return c->n == STALE_PER_PASS;
}

/* Frees at least over bytes by dropping the partial files that have not grown for
 * STAGING_STALE_MS, the longest stalled first, never blob's own or one being fetched; drops
 * none if that would not free enough. True if it freed enough. */
static bool staging_evict(struct srv *s, const char *blob, int64_t over)
{
    struct stale *c = malloc(sizeof *c);
    if (!c)
        return false;
    c->n = 0;
    int64_t now = kz_now_ms(), freed = 0;
    int upto = 0;
    bool ok = store_blob_want_stale(s->store, now - STAGING_STALE_MS, STALE_PER_PASS, stale_add,
                                    c) == STORE_OK;
    for (int i = 0; ok && i < c->n && freed < over; i++, upto = i)
        if (!strcmp(c->v[i].blob, blob) || in_flight(s->fb, c->v[i].blob))
            c->v[i].have = 0; /* passed over */
        else
            freed += c->v[i].have;
    ok = ok && freed >= over && srv_fed_tx_begin(s) == KZ_OK;
    for (int i = 0; ok && i < upto; i++) {
        const struct store_blob_want *w = &c->v[i];
        if (!w->have)
            continue;
        /* The row first: a crash before the commit finds the file gone and starts from 0. */
        ok = store_blob_want_retry(s->store, w->blob, w->state, 0, w->tries, w->next_at,
                                   w->last_error) == STORE_OK;
        char path[4200];
        staging_path(s, w->blob, path, sizeof path);
        if (ok && unlink(path) != 0 && errno != ENOENT)
            KZ_ERROR("blob_fetch_io", "blob=%s error=\"%s\"", w->blob, strerror(errno));
        if (ok)
            KZ_INFO("blob_staging_dropped",
                    "blob=%s bytes=%lld stalled_s=%lld: fetched again from 0 later", w->blob,
                    (long long)w->have, (long long)((now - w->moved_at) / 1000));
    }
    free(c);
    return ok;
}

/* Whether blob, which counts own bytes of the staging total now, may grow to need: within
 * federation_blob_staging_bytes, if need be once stalled partial files are dropped. */
static bool staging_fits(struct srv *s, const char *blob, int64_t own, int64_t need)
{
    int64_t cap = s->cfg->federation_blob_staging_bytes, used = staging_used(s);
    if (need > cap || used < 0)
        return false;
    int64_t over = used - own + need - cap;
    return over <= 0 || staging_evict(s, blob, over);
}

/* blob (total bytes, 0: not known) cannot have the need bytes of staging it needs: it waits,
 * its staged bytes kept, until a fetch ends (kick wakes it) or STAGING_WAIT_MS; one larger than
 * the whole bound waits for a restart with a larger one (link ups wake every want). */
static void staging_wait(struct srv *s, const char *blob, int64_t total, int64_t need)
{
    bool never = need > s->cfg->federation_blob_staging_bytes;
    if (srv_fed_tx_begin(s) == KZ_OK)
        store_blob_want_wait(s->store, blob, total,
                             kz_now_ms() + (never ? BACKOFF_MAX_MS : STAGING_WAIT_MS),
                             never ? STAGING_TOO_SMALL : STAGING_FULL);
}

/* The first part of l's job says a total that does not fit: the part (got bytes) is not
 * staged, the job ends, and the want waits for space with that total. */
static void staging_pause(struct srv *s, struct fb_link *l, int64_t total, int64_t got)
{
    struct fb_job *j = &l->job;
    j->active = false;
    s->fb->staging_freed = true; /* its first request's reservation */
    KZ_INFO("blob_fetch_stop",
            "blob=%s source=%s offset=0 received=0 discarded=%lld total=%lld why=\"%s\"", j->blob,
            l->peer, (long long)got, (long long)total,
            total > s->cfg->federation_blob_staging_bytes ? STAGING_TOO_SMALL : STAGING_FULL);
    staging_wait(s, j->blob, total, total);
}

struct sources {
    struct srv *s;
    int n;
    struct {
        char server[STORE_SERVER_ID_MAX + 1];
        char room_id[STORE_ROOM_ID_MAX + 1];
    } v[SOURCES_MAX];
};

static int source_add(void *arg, const char *server, const char *room_id, bool is_origin)
{
    (void)is_origin; /* the order says it: origins come first */
    struct sources *c = arg;
    if (c->n == SOURCES_MAX)
        return 1;
    snprintf(c->v[c->n].server, sizeof c->v[c->n].server, "%s", server);
    snprintf(c->v[c->n].room_id, sizeof c->v[c->n].room_id, "%s", room_id);
    c->n++;
    return 0;
}

static int64_t backoff_ms(int64_t tries)
{
    int64_t b = BACKOFF_MIN_MS;
    for (int64_t i = 1; i < tries && b < BACKOFF_MAX_MS; i++)
        b *= 2;
    return b < BACKOFF_MAX_MS ? b : BACKOFF_MAX_MS;
}

/* Finds w a source: the first whose link is up and free. None free but some busy: it waits
 * for one. None reachable: it waits for a link (or NO_SOURCE_WAIT_MS). Every source failed
 * the hash: failed, tried again from scratch after a backoff. */
static void want_place(struct srv *s, struct store_blob_want *w)
{
    struct fed_blobs *fb = s->fb;
    int64_t now = kz_now_ms();
    char bad_server[STORE_SERVER_ID_MAX + 1] = "";
    struct sources c = {.s = s};
    if (store_blob_want_sources(s->store, w->blob, s->origin, source_add, &c) != STORE_OK ||
        store_blob_bad_last(s->store, w->blob, bad_server, sizeof bad_server) != STORE_OK)
        return;
    if (c.n == 0 && bad_server[0] && !strcmp(w->state, "failed")) {
        /* Its backoff is over: every member server gets another chance. */
        if (srv_fed_tx_begin(s) != KZ_OK || store_blob_bad_clear(s->store, w->blob) != STORE_OK ||
            store_blob_want_sources(s->store, w->blob, s->origin, source_add, &c) != STORE_OK)
            return;
        bad_server[0] = '\0';
    }
    bool busy = false, none = false;
    for (int i = 0; i < c.n; i++) {
        struct fb_link *l = fb_link_get(s, c.v[i].server);
        if (l && l->up && none_recent(fb, w->blob, l->peer, now))
            none = true;
        if (!l || !l->up || none_recent(fb, w->blob, l->peer, now))
            continue;
        if (l->job.active) {
            busy = true;
            continue;
        }
        int64_t need = want_need(s, w);
        if (!staging_fits(s, w->blob, w->have, need)) {
            staging_wait(s, w->blob, w->total, need);
            return;
        }
        job_start(s, l, w, c.v[i].room_id, need);
        return;
    }
    if (busy)
        return; /* due still: the next kick (a link's job ends) looks again */
    if (srv_fed_tx_begin(s) != KZ_OK)
        return;
    char why[160];
    if (bad_server[0]) {
        snprintf(why, sizeof why, "failed its integrity check (from server %s)", bad_server);
        int64_t tries = w->tries + 1;
        store_blob_want_retry(s->store, w->blob, "failed", w->have, tries,
                              now + (c.n ? NO_SOURCE_WAIT_MS : backoff_ms(tries)), why);
    } else {
        /* A photo is posted before its blob (the thumbnail first): its own server may not
         * have the blob yet either. */
        snprintf(why, sizeof why, "%s",
                 none  ? "no member server has it yet (its sender may still be uploading it)"
                 : c.n ? "no member server that may hold it is linked now"
                       : "no member server of its rooms to fetch it from");
        store_blob_want_retry(s->store, w->blob, "waiting", w->have, w->tries,
                              now + (none ? NONE_SKIP_MS : NO_SOURCE_WAIT_MS), why);
    }
}

struct due {
    int n;
    struct store_blob_want v[DUE_PER_KICK];
};

static int due_add(void *arg, const struct store_blob_want *w)
{
    struct due *d = arg;
    d->v[d->n++] = *w;
    return d->n == DUE_PER_KICK;
}

/* Gives free links the wants that are due, soonest first, until no link is free: a want whose
 * sources are all busy stays due and is passed over, so it never holds up a want another link
 * could take. */
static void kick(struct srv *s)
{
    struct fed_blobs *fb = fb_of(s);
    if (!fb || srv_writes_blocked(s))
        return;
    fb->kick_due = false;
    if (!free_link(fb))
        return;
    if (fb->staging_freed) {
        fb->staging_freed = false;
        if (srv_fed_tx_begin(s) == KZ_OK)
            store_blob_want_wake_why(s->store, STAGING_FULL);
    }
    struct due *d = malloc(sizeof *d);
    if (!d)
        return;
    d->n = 0;
    if (store_blob_want_due(s->store, kz_now_ms(), DUE_PER_KICK, due_add, d) == STORE_OK)
        for (int i = 0; i < d->n && free_link(fb); i++)
            if (!in_flight(fb, d->v[i].blob))
                want_place(s, &d->v[i]);
    free(d);
}

/* The last byte is staged: hash the file. Equal to the id: in place, recorded, the want gone.
 * Not: dropped, and its source skipped for this blob. Hashing up to blob_max_bytes runs on the
 * loop, as an upload's last PATCH does (about 1 s for 64 MiB of BLAKE2b on a slow core). */
static void job_finish(struct srv *s, struct fb_link *l)
{
    struct fb_job *j = &l->job;
    char staging[4200], final[4200], dir[4200];
    staging_path(s, j->blob, staging, sizeof staging);
    srv_blob_path(s, j->blob, final, sizeof final);
    snprintf(dir, sizeof dir, "%s/blobs/%.2s", s->data_dir, j->blob);
    FILE *f = fopen(staging, "rb");
    uint8_t hash[MEDIA_BLOB_HASHBYTES];
    char hex[STORE_BLOB_ID_LEN + 1] = "";
    bool ok = f && media_blob_hash_file(f, hash) == MEDIA_OK;
    if (f)
        fclose(f);
    if (ok)
        sodium_bin2hex(hex, sizeof hex, hash, sizeof hash);
    int64_t now = kz_now_ms();
    j->active = false;
    s->fb->staging_freed = true;
    if (srv_fed_tx_begin(s) != KZ_OK)
        return;
    if (!ok || strcmp(hex, j->blob) != 0) {
        KZ_WARN("blob_integrity_failed", "blob=%s source=%s bytes=%lld: dropped", j->blob, l->peer,
                (long long)j->total);
        unlink(staging);
        struct store_blob_want w;
        char why[160];
        snprintf(why, sizeof why, "failed its integrity check (from server %s)", l->peer);
        if (store_blob_bad_add(s->store, j->blob, l->peer, now) == STORE_OK &&
            store_blob_want_get(s->store, j->blob, &w) == STORE_OK)
            store_blob_want_retry(s->store, j->blob, "waiting", 0, w.tries, now, why);
        return;
    }
    if ((mkdir(dir, 0700) != 0 && errno != EEXIST) ||
        (link(staging, final) != 0 && errno != EEXIST) || srv_dir_sync(dir) != 0) {
        KZ_ERROR("blob_fetch_io", "blob=%s error=\"%s\"", j->blob, strerror(errno));
        return;
    }
    if (store_blob_want_done(s->store, j->blob, j->total, now) != STORE_OK) {
        KZ_ERROR("blob_fetch_store", "blob=%s error=\"%s\"", j->blob, store_errmsg(s->store));
        return;
    }
    /* The blob file holds the bytes now; a crash before the commit finds the want again and
     * fetches anew (the link above then meets the file already there). */
    unlink(staging);
    KZ_INFO("blob_fetched", "blob=%s bytes=%lld source=%s received=%lld parts=%d ms=%lld", j->blob,
            (long long)j->total, l->peer, (long long)j->received, j->parts,
            (long long)(now - j->started_at));
}

/* Appends one part to the staging file and syncs it; false on an I/O error (logged). */
static bool stage(struct srv *s, const char *blob, int64_t offset, const uint8_t *data, size_t n)
{
    char path[4200], dir[4200];
    snprintf(dir, sizeof dir, "%s/fedblobs", s->data_dir);
    staging_path(s, blob, path, sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && pwrite(fd, data, n, offset) == (ssize_t)n && fsync(fd) == 0;
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (ok && offset == 0)
        ok = srv_dir_sync(dir) == 0; /* a new file: its name survives a power cut too */
    if (!ok)
        KZ_ERROR("blob_fetch_io", "blob=%s offset=%lld error=\"%s\"", blob, (long long)offset,
                 strerror(e));
    return ok;
}

/* blob.part {id, offset, total, data}: the answer to the job's blob.get. */
static int part_in(struct srv *s, struct fb_link *l, const cJSON *jf, char *why, size_t n)
{
    const char *id = fb_jstr(jf, "id"), *data = fb_jstr(jf, "data");
    int64_t offset, total;
    if (!id || !srv_blob_id_valid(id) || !data ||
        !fb_jnum(jf, "offset", 0, s->cfg->blob_max_bytes, &offset) ||
        !fb_jnum(jf, "total", 1, s->cfg->blob_max_bytes, &total))
        return fb_bad(why, n, "a blob.part names a blob id, its offset, its total and its data");
    struct fb_job *j = &l->job;
    if (!j->active || !j->sent || strcmp(j->blob, id) != 0 || offset != j->offset)
        return 0; /* not what this server asked for (a late answer after a timeout) */
    size_t dlen = strlen(data), got = 0;
    const char *end = NULL;
    size_t cap = (size_t)j->req_len;
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf)
        return 0;
    /* Exact base64: nothing ignored, nothing left over, no more than was asked for. */
    if (dlen > (size_t)sodium_base64_ENCODED_LEN(cap, sodium_base64_VARIANT_ORIGINAL) ||
        sodium_base642bin(buf, cap, data, dlen, NULL, &got, &end, sodium_base64_VARIANT_ORIGINAL) !=
            0 ||
        end != data + dlen || got == 0 || offset + (int64_t)got > total) {
        free(buf);
        return fb_bad(why, n,
                      "a blob.part's data is exact base64 of 1 to length bytes within total");
    }
    j->sent = false;
    if (j->total && total != j->total) {
        free(buf);
        /* The source contradicts the bytes staged: none of them can be trusted. */
        char text[160];
        snprintf(text, sizeof text, "failed its integrity check (from server %s): total changed",
                 l->peer);
        KZ_WARN("blob_integrity_failed", "blob=%s source=%s: total %lld after %lld", id, l->peer,
                (long long)total, (long long)j->total);
        j->offset = 0;
        int64_t now = kz_now_ms();
        if (srv_fed_tx_begin(s) == KZ_OK)
            store_blob_bad_add(s->store, id, l->peer, now);
        job_stop(s, l, text);
        kick(s);
        return 0;
    }
    int64_t now = kz_now_ms(), rate = s->cfg->federation_blob_bytes_per_s;
    if (rate > 0)
        l->next_at = (l->next_at > now ? l->next_at : now) + (int64_t)got * 1000 / rate;
    /* The first part says the total: nothing is staged before all of it fits. */
    if (!j->total && total > j->reserved && !staging_fits(s, id, j->reserved, total)) {
        free(buf);
        staging_pause(s, l, total, (int64_t)got);
        kick(s);
        return 0;
    }
    if (!stage(s, id, offset, buf, got)) {
        free(buf);
        job_stop(s, l, "cannot write the staging file");
        return 0;
    }
    free(buf);
    j->offset += (int64_t)got;
    j->total = total;
    j->reserved = total;
    j->received += (int64_t)got;
    j->parts++;
    if (srv_fed_tx_begin(s) != KZ_OK ||
        store_blob_want_progress(s->store, id, j->offset, total, l->peer, "fetching", now) !=
            STORE_OK) {
        job_stop(s, l, "cannot record the offset");
        return 0;
    }
    if (j->offset == total) {
        job_finish(s, l);
        kick(s);
    } else {
        request_next(s, l);
    }
    return 0;
}

/* blob.none {id, why}: the source does not serve it: the next one. */
static int none_in(struct srv *s, struct fb_link *l, const cJSON *jf, char *why, size_t n)
{
    const char *id = fb_jstr(jf, "id"), *text = fb_jstr(jf, "why");
    if (!id || !srv_blob_id_valid(id) || (text && strlen(text) > 200))
        return fb_bad(why, n, "a blob.none names a blob id");
    struct fb_job *j = &l->job;
    if (!j->active || !j->sent || strcmp(j->blob, id) != 0)
        return 0;
    none_add(s->fb, id, l->peer, kz_now_ms());
    j->sent = false;
    job_stop(s, l, "the source does not serve it");
    kick(s);
    return 0;
}

/* ---- the core's calls ---- */

int srv_fed_blob_frame(struct srv *s, const char *peer, const char *t, const cJSON *j, char *why,
                       size_t n)
{
    struct fb_link *l = fb_link_get(s, peer);
    if (!l)
        return fb_bad(why, n, "out of memory");
    if (!strcmp(t, "blob.get"))
        return fb_get_in(s, l, j, why, n);
    if (!strcmp(t, "blob.part"))
        return part_in(s, l, j, why, n);
    if (!strcmp(t, "blob.none"))
        return none_in(s, l, j, why, n);
    return fb_bad(why, n, "unknown frame type");
}

bool srv_fed_blob_fetching(struct srv *s, const char *blob)
{
    return s->fb && in_flight(s->fb, blob);
}

void srv_fed_blobs_link(struct srv *s, const char *peer, bool up)
{
    struct fb_link *l = fb_link_get(s, peer);
    if (!l)
        return;
    l->up = up;
    l->serve.pending = false;
    if (!up) {
        /* Memory only: a link also goes down while the server shuts down, after its last
         * commit, and nothing here may write. The staged bytes' offset is committed already;
         * the want is due as it was, and the blob timer, armed at once while another link is
         * free, kicks it to another source (kick writes, from the timer). */
        struct fed_blobs *fb = s->fb;
        if (l->job.active) {
            KZ_INFO("blob_fetch_stop",
                    "blob=%s source=%s offset=%lld received=%lld why=\"the link went down\"",
                    l->job.blob, l->peer, (long long)l->job.offset, (long long)l->job.received);
            fb->staging_freed = true;
        }
        bool had_job = l->job.active;
        l->job.active = l->job.sent = false;
        fb->kick_due = true;
        if (had_job)
            fb_arm(s);
        return;
    }
    if (srv_fed_tx_begin(s) == KZ_OK)
        store_blob_want_wake(s->store); /* whatever waited for a source looks again */
    kick(s);
}

enum kz_err srv_fed_blobs_event(struct srv *s, const struct store_room *r,
                                const struct store_event *ev, const cJSON *content)
{
    const cJSON *blobs = cJSON_GetObjectItemCaseSensitive(content, "blobs"), *b;
    if (strcmp(ev->type, "e2ee.photo") != 0 || !cJSON_IsArray(blobs) || !ev->sender)
        return KZ_OK;
    int n = 0;
    cJSON_ArrayForEach(b, blobs)
    {
        if (++n > 16 || !cJSON_IsString(b) || !srv_blob_id_valid(b->valuestring))
            continue; /* the sender's devices cannot open such a photo anyway */
        int64_t size, uploader;
        enum store_rc rc = store_blob_get(s->store, b->valuestring, &size, &uploader);
        if (rc == STORE_OK)
            rc = store_blob_ref_add(s->store, b->valuestring, r->id, ev->pos);
        else if (rc == STORE_NOT_FOUND)
            rc = store_blob_want_add(s->store, b->valuestring, r->id, ev->pos, ev->origin,
                                     ev->sender, kz_now_ms());
        if (rc != STORE_OK)
            return KZ_INTERNAL;
        struct fed_blobs *fb = fb_of(s);
        if (fb)
            fb->kick_due = true;
    }
    return KZ_OK;
}

void srv_fed_blobs_after_commit(struct srv *s, bool ok)
{
    struct fed_blobs *fb = s->fb;
    if (!fb || !ok || store_tx_is_open(s->store))
        return;
    /* The pump skips its turn inside a transaction: a request that waited for it goes now. */
    fb_serve_waiting(s);
    if (fb->kick_due)
        kick(s);
}

void srv_fed_blobs_tick(struct srv *s)
{
    struct fed_blobs *fb = s->fb;
    if (!fb)
        return;
    fb_serve_waiting(s);
    int64_t now = kz_now_ms();
    bool ended = fb->kick_due;
    for (struct fb_link *l = fb->links; l; l = l->next) {
        if (!l->job.active)
            continue;
        if (l->job.sent && now - l->job.sent_at >= REQUEST_TIMEOUT_MS) {
            l->job.sent = false;
            none_add(fb, l->job.blob, l->peer, now);
            job_stop(s, l, "the source did not answer in time");
            ended = true;
        } else if (!l->job.sent) {
            request_next(s, l);
        }
    }
    if (ended)
        kick(s);
    fb_arm(s);
}

void srv_fed_blobs_housekeep(struct srv *s)
{
    struct fed_blobs *fb = fb_of(s);
    if (!fb)
        return;
    srv_fed_blobs_tick(s);
    kick(s);
}

void srv_fed_blobs_free(struct srv *s)
{
    struct fed_blobs *fb = s->fb;
    if (!fb)
        return;
    while (fb->links) {
        struct fb_link *next = fb->links->next;
        free(fb->links);
        fb->links = next;
    }
    free(fb);
    s->fb = NULL;
}
