/* faultproxy.c - the fault proxy's sockets: its thread, one poll loop per link over the
 * listening socket, a wake-up eventfd and every connection pair (reading, sending what is due
 * at the rate allowed, ending connections), and the public functions of faultproxy.h. What is
 * read becomes units and decisions in faultproxy_units.c. */
#include "faultproxy_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK  65536
#define RATE_SLICES 20 /* a rate-capped direction sends rate/20 bytes at a time (50 ms) */
#define POLL_MAX_MS 1000

/* Closes with RST rather than FIN. */
static void reset_fd(int fd)
{
    if (fd < 0)
        return;
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

/* Ends a connection: with RST (reset) or FIN after what was written (truncation). */
static void conn_close(struct faultproxy *p, struct conn *c, bool reset)
{
    for (int i = 0; i < 2; i++) {
        if (c->fd[i] < 0)
            continue;
        if (reset) {
            reset_fd(c->fd[i]);
        } else {
            shutdown(c->fd[i], SHUT_WR);
            close(c->fd[i]);
        }
        c->fd[i] = -1;
    }
    for (int i = 0; i < 2; i++) {
        free(c->d[i].in);
        fpi_free_units(c->d[i].head);
        fpi_free_units(c->d[i].held);
    }
    if (reset) {
        pthread_mutex_lock(&p->mu);
        p->st.resets++;
        pthread_mutex_unlock(&p->mu);
    }
    memset(c, 0, sizeof *c);
    c->fd[0] = c->fd[1] = -1;
}

/* ---- the loop ---- */

static bool can_read(const struct faultproxy *p, const struct conn *c, int dir)
{
    const struct direction *d = &c->d[dir];
    return !c->connecting && !d->eof && !d->doomed && d->queued < p->cfg.queue_cap &&
           d->in_len < d->in_cap;
}

/* Reads what is there for dir. False: reset the connection. */
static bool read_dir(struct faultproxy *p, struct conn *c, int dir)
{
    struct direction *d = &c->d[dir];
    size_t room = d->in_cap - d->in_len;
    if (room > READ_CHUNK)
        room = READ_CHUNK;
    ssize_t r = recv(c->fd[dir], d->in + d->in_len, room, 0);
    if (r < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    if (r == 0) {
        d->eof = true;
        if (d->in_len && !d->doomed) { /* a partial head or frame, then FIN: pass it on */
            if (!fpi_emit(p, c, dir, d->in, d->in_len, false, false))
                return false;
            d->in_len = 0;
        }
        return true;
    }
    d->in_len += (size_t)r;
    return fpi_parse_input(p, c, dir);
}

/* Sends what is due in dir. *wait_us: when something will next be due (or stays). False: the
 * connection was closed here (or must be reset: *reset). */
static bool flush_dir(struct faultproxy *p, struct conn *c, int dir, long long *wake_us,
                      bool *want_out, bool *reset)
{
    struct direction *d = &c->d[dir];
    int out = dir == FP_UP ? 1 : 0;
    long long now = fpi_now_us();
    if (d->held && now >= d->held_until_us)
        fpi_release_held(d);
    else if (d->held && d->held_until_us < *wake_us)
        *wake_us = d->held_until_us;
    pthread_mutex_lock(&p->mu);
    long rate = p->faults.dir[dir].rate_bps;
    pthread_mutex_unlock(&p->mu);
    while (d->head) {
        struct unit *u = d->head;
        now = fpi_now_us();
        if (u->release_us > now) {
            if (u->release_us < *wake_us)
                *wake_us = u->release_us;
            return true;
        }
        if (rate > 0 && d->next_send_us > now) {
            if (d->next_send_us < *wake_us)
                *wake_us = d->next_send_us;
            return true;
        }
        size_t n = u->stop_at - u->off;
        if (rate > 0) {
            size_t slice = (size_t)(rate / RATE_SLICES) ? (size_t)(rate / RATE_SLICES) : 1;
            n = n < slice ? n : slice;
        }
        ssize_t w = n ? send(c->fd[out], u->data + u->off, n, MSG_NOSIGNAL | MSG_DONTWAIT) : 0;
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                *want_out = true;
                return true;
            }
            *reset = true;
            return false;
        }
        u->off += (size_t)w;
        pthread_mutex_lock(&p->mu);
        p->st.bytes_out[dir] += (unsigned long long)w;
        pthread_mutex_unlock(&p->mu);
        if (rate > 0) {
            long long base = d->next_send_us > now ? d->next_send_us : now;
            d->next_send_us = base + (long long)w * 1000000 / rate;
        }
        if (u->off < u->stop_at)
            continue;
        if (u->end == END_TRUNC) {
            conn_close(p, c, false);
            return false;
        }
        if (u->end == END_LOSS) {
            *reset = true;
            return false;
        }
        d->head = u->next;
        if (!d->head)
            d->tail = NULL;
        d->queued -= u->len;
        free(u);
    }
    if (d->eof && !d->held && !d->shut && d->in_len == 0) {
        shutdown(c->fd[out], SHUT_WR);
        d->shut = true;
    }
    return true;
}

static void accept_one(struct faultproxy *p)
{
    int fd = accept4(p->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    pthread_mutex_lock(&p->mu);
    bool cut = p->cut;
    if (cut)
        p->st.refused++;
    pthread_mutex_unlock(&p->mu);
    if (cut) {
        reset_fd(fd);
        return;
    }
    struct conn *c = NULL;
    for (int i = 0; i < FP_MAX_CONNS && !c; i++)
        if (!p->conns[i].used)
            c = &p->conns[i];
    if (!c) {
        fpi_error(p, "over %d connections at once: the new one is reset", FP_MAX_CONNS);
        reset_fd(fd);
        return;
    }
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->cfg.target_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || (connect(s, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS)) {
        fpi_error(p, "connect to :%d: %s", p->cfg.target_port, strerror(errno));
        if (s >= 0)
            close(s);
        reset_fd(fd);
        return;
    }
    memset(c, 0, sizeof *c);
    c->used = true;
    c->connecting = true;
    c->fd[0] = fd;
    c->fd[1] = s;
    c->connect_deadline_us = fpi_now_us() + (long long)FP_CONNECT_MS * 1000;
    c->no = ++p->next_conn;
    for (int i = 0; i < 2; i++) {
        c->d[i].in = malloc(IN_CAP_INITIAL);
        c->d[i].in_cap = IN_CAP_INITIAL;
        c->d[i].rng = fpi_rng_stream(p->cfg.seed, (uint64_t)c->no * 2 + (uint64_t)i);
    }
    pthread_mutex_lock(&p->mu);
    p->st.conns++;
    pthread_mutex_unlock(&p->mu);
    if (!c->d[0].in || !c->d[1].in) {
        fpi_error(p, "out of memory for a connection");
        conn_close(p, c, true);
    }
}

static void *proxy_main(void *arg)
{
    struct faultproxy *p = arg;
    struct pollfd pf[2 + 2 * FP_MAX_CONNS];
    int owner[2 + 2 * FP_MAX_CONNS];
    for (;;) {
        pthread_mutex_lock(&p->mu);
        bool stop = p->stop, apply_cut = p->cut_gen != p->cut_gen_applied;
        unsigned cut_gen = p->cut_gen;
        pthread_mutex_unlock(&p->mu);
        if (stop)
            break;
        long long now = fpi_now_us(), wake = now + (long long)POLL_MAX_MS * 1000;
        int np = 0;
        pf[np++] = (struct pollfd){.fd = p->wake_fd, .events = POLLIN};
        pf[np++] = (struct pollfd){.fd = p->listen_fd, .events = POLLIN};
        for (int i = 0; i < FP_MAX_CONNS; i++) {
            struct conn *c = &p->conns[i];
            if (!c->used)
                continue;
            if (apply_cut) {
                conn_close(p, c, true);
                continue;
            }
            if (c->connecting) {
                if (now >= c->connect_deadline_us) {
                    fpi_error(p, "connect to :%d: no answer in %d ms", p->cfg.target_port,
                              FP_CONNECT_MS);
                    conn_close(p, c, true);
                    continue;
                }
                if (c->connect_deadline_us < wake)
                    wake = c->connect_deadline_us;
                pf[np] = (struct pollfd){.fd = c->fd[1], .events = POLLOUT};
                owner[np++] = i;
                continue;
            }
            bool want_out[2] = {false, false}, reset = false, alive = true;
            for (int dir = 0; dir < 2 && alive; dir++)
                alive = flush_dir(p, c, dir, &wake, &want_out[dir], &reset);
            if (!alive) {
                if (reset)
                    conn_close(p, c, true);
                continue;
            }
            if (c->d[0].shut && c->d[1].shut) {
                conn_close(p, c, false);
                continue;
            }
            for (int side = 0; side < 2; side++) {
                /* side 0 (dialer) is read for FP_UP and written for FP_DOWN */
                short ev = 0;
                if (can_read(p, c, side))
                    ev |= POLLIN;
                if (want_out[side == 0 ? FP_DOWN : FP_UP])
                    ev |= POLLOUT;
                /* Nothing wanted: not polled at all, or a hang-up would wake the loop at once
                 * again and again while a delayed unit waits. */
                pf[np] = (struct pollfd){.fd = ev ? c->fd[side] : -1, .events = ev};
                owner[np++] = i;
            }
        }
        if (apply_cut) {
            pthread_mutex_lock(&p->mu);
            p->cut_gen_applied = cut_gen;
            pthread_cond_broadcast(&p->cut_done);
            pthread_mutex_unlock(&p->mu);
        }
        long long left = wake - fpi_now_us();
        int timeout = left <= 0 ? 0 : (int)((left + 999) / 1000);
        int n = poll(pf, (nfds_t)np, timeout);
        if (n < 0 && errno != EINTR) {
            fpi_error(p, "poll: %s", strerror(errno));
            break;
        }
        if (n <= 0)
            continue;
        if (pf[0].revents) {
            uint64_t v;
            if (read(p->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
                fpi_error(p, "wake: %s", strerror(errno));
        }
        if (pf[1].revents & POLLIN)
            accept_one(p);
        for (int k = 2; k < np; k++) {
            struct conn *c = &p->conns[owner[k]];
            if (!pf[k].revents || !c->used)
                continue;
            if (c->connecting) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &err, &el);
                if (err) {
                    fpi_error(p, "connect to :%d: %s", p->cfg.target_port, strerror(err));
                    conn_close(p, c, true);
                } else {
                    c->connecting = false;
                }
                continue;
            }
            if (pf[k].fd < 0)
                continue;
            int side = pf[k].fd == c->fd[0] ? 0 : 1;
            if ((pf[k].revents & (POLLIN | POLLHUP | POLLERR)) && can_read(p, c, side) &&
                !read_dir(p, c, side))
                conn_close(p, c, true);
        }
    }
    for (int i = 0; i < FP_MAX_CONNS; i++)
        if (p->conns[i].used)
            conn_close(p, &p->conns[i], false);
    return NULL;
}

/* ---- the public side ---- */

uint64_t fp_seed_env(uint64_t def)
{
    const char *s = getenv("KIZUNA_FAULT_SEED");
    if (!s || !*s)
        return def;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end) {
        fprintf(stderr, "faultproxy: KIZUNA_FAULT_SEED=%s is not a number; using 0x%llx\n", s,
                (unsigned long long)def);
        return def;
    }
    return v;
}

struct faultproxy *fp_start(const struct fp_config *cfg)
{
    struct faultproxy *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->cfg = *cfg;
    if (!p->cfg.max_frame)
        p->cfg.max_frame = FP_MAX_FRAME_DEFAULT;
    if (!p->cfg.queue_cap)
        p->cfg.queue_cap = FP_QUEUE_CAP_DEFAULT;
    p->faults = cfg->faults;
    p->log = calloc(FP_LOG_MAX, sizeof *p->log);
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cut_done, &ca);
    pthread_condattr_destroy(&ca);
    for (int i = 0; i < FP_MAX_CONNS; i++)
        p->conns[i].fd[0] = p->conns[i].fd[1] = -1;
    p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (!p->log || p->wake_fd < 0 || p->listen_fd < 0 ||
        bind(p->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(p->listen_fd, 64) != 0 ||
        getsockname(p->listen_fd, (struct sockaddr *)&a, &al) != 0) {
        fprintf(stderr, "faultproxy: cannot listen: %s\n", strerror(errno));
        goto fail;
    }
    p->port = ntohs(a.sin_port);
    snprintf(p->name, sizeof p->name, "%s", cfg->name ? cfg->name : "");
    if (!p->name[0])
        snprintf(p->name, sizeof p->name, ":%d->:%d", p->port, cfg->target_port);
    fprintf(stderr, "faultproxy %s: :%d -> :%d seed=0x%llx (replay: KIZUNA_FAULT_SEED=0x%llx)\n",
            p->name, p->port, cfg->target_port, (unsigned long long)cfg->seed,
            (unsigned long long)cfg->seed);
    if (pthread_create(&p->thread, NULL, proxy_main, p) != 0) {
        fprintf(stderr, "faultproxy: cannot start its thread\n");
        goto fail;
    }
    return p;
fail:
    if (p->listen_fd >= 0)
        close(p->listen_fd);
    if (p->wake_fd >= 0)
        close(p->wake_fd);
    pthread_cond_destroy(&p->cut_done);
    pthread_mutex_destroy(&p->mu);
    free(p->log);
    free(p);
    return NULL;
}

int fp_port(const struct faultproxy *p)
{
    return p->port;
}

static void wake(struct faultproxy *p)
{
    uint64_t one = 1;
    if (write(p->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        fprintf(stderr, "faultproxy %s: wake: %s\n", p->name, strerror(errno));
}

void fp_set(struct faultproxy *p, const struct fp_faults *f)
{
    pthread_mutex_lock(&p->mu);
    p->faults = *f;
    pthread_mutex_unlock(&p->mu);
    wake(p);
}

void fp_cut(struct faultproxy *p, bool cut)
{
    fprintf(stderr, "faultproxy %s: %s\n", p->name, cut ? "cut" : "healed");
    pthread_mutex_lock(&p->mu);
    p->cut = cut;
    unsigned gen = cut ? ++p->cut_gen : p->cut_gen;
    pthread_mutex_unlock(&p->mu);
    if (!cut)
        return;
    wake(p);
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += FP_STOP_MS / 1000;
    pthread_mutex_lock(&p->mu);
    int rc = 0;
    while ((int)(p->cut_gen_applied - gen) < 0 && rc == 0)
        rc = pthread_cond_timedwait(&p->cut_done, &p->mu, &dl);
    pthread_mutex_unlock(&p->mu);
    if (rc) {
        fprintf(stderr, "faultproxy %s: the thread did not cut in %d ms\n", p->name, FP_STOP_MS);
        abort();
    }
}

void fp_stats(struct faultproxy *p, struct fp_stats *out)
{
    pthread_mutex_lock(&p->mu);
    *out = p->st;
    pthread_mutex_unlock(&p->mu);
}

/* By connection, direction and unit: how the two directions interleave in time varies from
 * run to run, the decisions of each do not. */
static int logent_cmp(const void *a, const void *b)
{
    const struct logent *x = a, *y = b;
    if (x->conn != y->conn)
        return x->conn < y->conn ? -1 : 1;
    if (x->dir != y->dir)
        return x->dir < y->dir ? -1 : 1;
    if (x->unit != y->unit)
        return x->unit < y->unit ? -1 : 1;
    return x->at < y->at ? -1 : x->at > y->at;
}

size_t fp_decisions(struct faultproxy *p, char *buf, size_t cap)
{
    size_t len = 0;
    if (cap)
        buf[0] = '\0';
    pthread_mutex_lock(&p->mu);
    struct logent *sorted = malloc((p->log_len ? p->log_len : 1) * sizeof *sorted);
    if (!sorted) {
        pthread_mutex_unlock(&p->mu);
        return 0;
    }
    memcpy(sorted, p->log, p->log_len * sizeof *sorted);
    qsort(sorted, p->log_len, sizeof *sorted, logent_cmp);
    for (unsigned i = 0; i < p->log_len; i++) {
        const struct logent *e = &sorted[i];
        char line[80];
        int n = e->arg >= 0 ? snprintf(line, sizeof line, "c%u %s #%u %s %lld\n", e->conn,
                                       fpi_dir_name[e->dir], e->unit, e->what, e->arg)
                            : snprintf(line, sizeof line, "c%u %s #%u %s\n", e->conn,
                                       fpi_dir_name[e->dir], e->unit, e->what);
        if (len + (size_t)n < cap)
            memcpy(buf + len, line, (size_t)n + 1);
        else if (len < cap)
            buf[len] = '\0';
        len += (size_t)n;
    }
    pthread_mutex_unlock(&p->mu);
    free(sorted);
    return len;
}

void fp_last_error(struct faultproxy *p, char *buf, size_t cap)
{
    pthread_mutex_lock(&p->mu);
    snprintf(buf, cap, "%s", p->err);
    pthread_mutex_unlock(&p->mu);
}

void fp_stop(struct faultproxy *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_mutex_unlock(&p->mu);
    wake(p);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += FP_STOP_MS / 1000;
    if (pthread_timedjoin_np(p->thread, NULL, &dl) != 0) {
        fprintf(stderr, "faultproxy %s: the thread did not stop in %d ms\n", p->name, FP_STOP_MS);
        abort();
    }
    struct fp_stats *s = &p->st;
    fprintf(stderr,
            "faultproxy %s: seed=0x%llx conns=%u refused=%u resets=%u errors=%u | up: frames=%u "
            "dup=%u hold=%u trunc=%u loss=%u | down: frames=%u dup=%u hold=%u trunc=%u "
            "loss=%u\n",
            p->name, (unsigned long long)p->cfg.seed, s->conns, s->refused, s->resets, s->errors,
            s->frames[0], s->dups[0], s->holds[0], s->truncs[0], s->losses[0], s->frames[1],
            s->dups[1], s->holds[1], s->truncs[1], s->losses[1]);
    close(p->listen_fd);
    close(p->wake_fd);
    pthread_cond_destroy(&p->cut_done);
    pthread_mutex_destroy(&p->mu);
    free(p->log);
    free(p);
}
