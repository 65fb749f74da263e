/* faultproxy_units.c - the fault proxy's decisions: the bytes read from one side become units
 * (an HTTP head, one RFC 6455 frame, a raw chunk), each with its seeded decisions drawn, and
 * are queued, duplicated or held back; see faultproxy_int.h. No sockets here. */
#include "faultproxy_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

const char *const fpi_dir_name[2] = {"up", "down"};

/* ---- seeded randomness (splitmix64 seeds xorshift64*, as tests/integration/test_crash.c) ---- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dULL;
}

uint64_t fpi_rng_stream(uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ULL);
    uint64_t s = splitmix64(&x);
    return s ? s : 1;
}

long long fpi_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- small helpers (the mutex must be held where noted) ---- */

void fpi_error(struct faultproxy *p, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&p->mu);
    va_start(ap, fmt);
    vsnprintf(p->err, sizeof p->err, fmt, ap);
    va_end(ap);
    p->st.errors++;
    fprintf(stderr, "faultproxy %s: %s\n", p->name, p->err);
    pthread_mutex_unlock(&p->mu);
}

/* mutex held */
static void log_decision(struct faultproxy *p, const struct conn *c, int dir, unsigned unit,
                         const char *what, long long arg)
{
    if (p->log_len == FP_LOG_MAX) {
        p->st.log_dropped++;
        return;
    }
    struct logent *e = &p->log[p->log_len++];
    e->conn = c->no;
    e->unit = unit;
    e->at = p->log_len;
    e->dir = (uint8_t)dir;
    snprintf(e->what, sizeof e->what, "%s", what);
    e->arg = arg;
}

void fpi_free_units(struct unit *u)
{
    while (u) {
        struct unit *n = u->next;
        free(u);
        u = n;
    }
}

/* ---- turning read bytes into scheduled units ---- */

/* Appends u to the send queue (its bytes are already counted in d->queued). */
static void enqueue(struct direction *d, struct unit *u)
{
    u->release_us = u->release_us > d->last_release_us ? u->release_us : d->last_release_us;
    d->last_release_us = u->release_us;
    u->next = NULL;
    if (d->tail)
        d->tail->next = u;
    else
        d->head = u;
    d->tail = u;
}

static struct unit *unit_copy(const struct unit *u)
{
    struct unit *c = malloc(sizeof *c + u->len);
    if (c)
        memcpy(c, u, sizeof *c + u->len);
    return c;
}

/* Queues u and its copies. */
static void enqueue_copies(struct direction *d, struct unit *u)
{
    for (int i = 1; i < u->copies; i++) {
        struct unit *c = unit_copy(u);
        if (c)
            enqueue(d, c);
        else
            d->queued -= u->len;
    }
    enqueue(d, u);
}

/* Sends out every held frame (with its copies), in the order they came. */
void fpi_release_held(struct direction *d)
{
    struct unit *h = d->held;
    d->held = d->held_tail = NULL;
    while (h) {
        struct unit *n = h->next;
        enqueue_copies(d, h);
        h = n;
    }
}

/* One unit read in direction dir: draw its decisions and queue it. eligible: a whole data
 * message (may be duplicated or reordered); frame: a WebSocket frame (may be truncated). */
bool fpi_emit(struct faultproxy *p, struct conn *c, int dir, const unsigned char *bytes, size_t len,
              bool frame, bool eligible)
{
    struct direction *d = &c->d[dir];
    /* Six draws per unit, always: one fault's setting never shifts another's decisions. */
    uint64_t r_jit = rng_next(&d->rng), r_dup = rng_next(&d->rng), r_reo = rng_next(&d->rng);
    uint64_t r_trunc = rng_next(&d->rng), r_loss = rng_next(&d->rng), r_off = rng_next(&d->rng);
    unsigned no = ++d->units;
    if (frame)
        d->frames++;
    struct unit *u = malloc(sizeof *u + len);
    if (!u) {
        fpi_error(p, "out of memory for a unit of %zu bytes", len);
        return false;
    }
    memcpy(u->data, bytes, len);
    u->len = u->stop_at = len;
    u->off = 0;
    u->end = END_NONE;
    u->copies = 1;

    pthread_mutex_lock(&p->mu);
    const struct fp_dir_faults *f = &p->faults.dir[dir];
    int hold_ms = p->faults.reorder_hold_ms > 0 ? p->faults.reorder_hold_ms : HOLD_MS;
    long long jitter = f->jitter_ms > 0 ? (long long)(r_jit % (uint64_t)(f->jitter_ms + 1)) : 0;
    long long now = fpi_now_us();
    u->release_us = now + ((long long)f->delay_ms + jitter) * 1000;
    p->st.units[dir]++;
    p->st.bytes_in[dir] += len;
    if (frame)
        p->st.frames[dir]++;
    if (jitter)
        log_decision(p, c, dir, no, "jitter", jitter);
    bool hold = false;
    if (r_loss % 100 < (uint64_t)f->loss_pct) {
        u->stop_at = (size_t)(r_off % (len + 1));
        u->end = END_LOSS;
        p->st.losses[dir]++;
        log_decision(p, c, dir, no, "loss", (long long)u->stop_at);
    } else if (frame && len >= 2 && r_trunc % 100 < (uint64_t)f->trunc_pct) {
        u->stop_at = 1 + (size_t)(r_off % (len - 1));
        u->end = END_TRUNC;
        p->st.truncs[dir]++;
        log_decision(p, c, dir, no, "trunc", (long long)u->stop_at);
    } else if (eligible) {
        if (r_dup % 100 < (uint64_t)f->dup_pct) {
            u->copies = 2;
            p->st.dups[dir]++;
            log_decision(p, c, dir, no, "dup", -1);
        }
        if (r_reo % 100 < (uint64_t)f->reorder_pct) {
            hold = true;
            p->st.holds[dir]++;
            log_decision(p, c, dir, no, "hold", -1);
        }
    }
    pthread_mutex_unlock(&p->mu);

    d->queued += len * (size_t)u->copies;
    if (u->end != END_NONE)
        d->doomed = true;
    if (hold) { /* decided by the seed alone, whatever is held already */
        if (!d->held)
            d->held_until_us = now + (long long)hold_ms * 1000;
        u->next = NULL;
        if (d->held_tail)
            d->held_tail->next = u;
        else
            d->held = u;
        d->held_tail = u;
        return true;
    }
    if (!eligible)
        fpi_release_held(d); /* a control frame, fragment or end never overtakes a held frame */
    enqueue_copies(d, u);
    fpi_release_held(d); /* after this frame: the reorder */
    return true;
}

static bool head_is_101(const unsigned char *b, size_t n)
{
    return n >= 12 && memcmp(b, "HTTP/1.", 7) == 0 && memcmp(b + 8, " 101", 4) == 0;
}

static bool asks_upgrade(const unsigned char *b, size_t n)
{
    char tmp[FP_HEAD_MAX + 1];
    size_t m = n < FP_HEAD_MAX ? n : FP_HEAD_MAX;
    memcpy(tmp, b, m);
    tmp[m] = '\0';
    for (char *line = strstr(tmp, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        char *eol = strstr(line + 2, "\r\n");
        if (!eol)
            break;
        *eol = '\0'; /* this line alone */
        bool hit = strncasecmp(line + 2, "upgrade:", 8) == 0 && strcasestr(line + 10, "websocket");
        *eol = '\r';
        if (hit)
            return true;
    }
    return false;
}

/* Cuts what arrived in d->in into units. False: the connection must be reset. */
bool fpi_parse_input(struct faultproxy *p, struct conn *c, int dir)
{
    struct direction *d = &c->d[dir];
    size_t max_frame = p->cfg.max_frame;
    if (dir == FP_UP && d->parse == P_UNDECIDED) {
        size_t k = d->in_len < 4 ? d->in_len : 4;
        if (memcmp(d->in, "GET ", k) != 0) {
            c->d[0].parse = c->d[1].parse = P_RAW;
        } else if (k == 4) {
            c->d[0].parse = c->d[1].parse = P_HEAD;
        }
    }
    if (dir == FP_DOWN && d->parse == P_UNDECIDED) /* the target spoke first: not HTTP */
        c->d[0].parse = c->d[1].parse = P_RAW;
    size_t used = 0;
    while (used < d->in_len && !d->doomed) {
        const unsigned char *b = d->in + used;
        size_t n = d->in_len - used;
        if (d->parse == P_UNDECIDED)
            break;
        if (d->parse == P_RAW) {
            if (!fpi_emit(p, c, dir, b, n, false, false))
                return false;
            used += n;
            continue;
        }
        if (d->parse == P_HEAD) {
            unsigned char *e = memmem(b, n, "\r\n\r\n", 4);
            if (!e) {
                if (n >= FP_HEAD_MAX) {
                    fpi_error(p, "an HTTP head (%s) over %d bytes: connection reset",
                              fpi_dir_name[dir], FP_HEAD_MAX);
                    return false;
                }
                break;
            }
            size_t hl = (size_t)(e + 4 - b);
            if (dir == FP_UP) {
                c->upgrade_asked = asks_upgrade(b, hl);
                d->parse = c->upgrade_asked ? P_FRAMES : P_RAW;
            } else {
                d->parse = c->upgrade_asked && head_is_101(b, hl) ? P_FRAMES : P_RAW;
                if (d->parse == P_RAW && c->d[FP_UP].parse == P_FRAMES && c->d[FP_UP].in_len == 0)
                    c->d[FP_UP].parse = P_RAW; /* refused upgrade: plain HTTP both ways */
            }
            if (!fpi_emit(p, c, dir, b, hl, false, false))
                return false;
            used += hl;
            continue;
        }
        /* P_FRAMES: RFC 6455 section 5.2 */
        if (n < 2)
            break;
        size_t l7 = b[1] & 0x7f, hl = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0);
        hl += (b[1] & 0x80) ? 4 : 0;
        if (n < hl)
            break;
        uint64_t pl = l7;
        if (l7 == 126) {
            pl = (uint64_t)b[2] << 8 | b[3];
        } else if (l7 == 127) {
            pl = 0;
            for (int i = 0; i < 8; i++)
                pl = pl << 8 | b[2 + i];
        }
        if (pl > max_frame || hl + pl > max_frame) {
            fpi_error(p,
                      "a WebSocket frame (%s) of %llu payload bytes (+%zu of header) is over the "
                      "cap of %zu bytes (fp_config.max_frame): connection reset",
                      fpi_dir_name[dir], (unsigned long long)pl, hl, max_frame);
            return false;
        }
        size_t total = hl + (size_t)pl;
        if (n < total) {
            if (d->in_cap < total + used) { /* room for the whole frame */
                size_t cap = d->in_cap;
                while (cap < total + used)
                    cap *= 2;
                unsigned char *nb = realloc(d->in, cap);
                if (!nb) {
                    fpi_error(p, "out of memory for a frame of %zu bytes", total);
                    return false;
                }
                d->in = nb;
                d->in_cap = cap;
            }
            break;
        }
        int op = b[0] & 0x0f;
        bool fin = b[0] & 0x80;
        if (!fpi_emit(p, c, dir, b, total, true, fin && (op == 0x1 || op == 0x2)))
            return false;
        used += total;
    }
    if (d->doomed)
        used = d->in_len; /* nothing after a unit that ends the connection */
    memmove(d->in, d->in + used, d->in_len - used);
    d->in_len -= used;
    return true;
}
