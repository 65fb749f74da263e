/* test_faultproxy.c - the fault proxy (support/faultproxy.h) proves each of its faults against
 * a tiny WebSocket echo peer written here, and passes the real kizunad's client API through.
 *
 * The echo peer answers any "GET " head with 101 and then echoes every frame's payload as an
 * unmasked frame of the same opcode; a payload "burst N" makes it send N frames "b0000".. in
 * order instead (the server->client direction's turn). Anything else it echoes as raw bytes.
 *
 * KIZUNA_FAULT_SEED replays a seed (printed by every proxy at start); timings are only checked
 * as "not earlier than", never as "within". */
#include "faultproxy.h"
#include "harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SEED     0x6b697a756e61ULL /* "kizuna" */
#define IO_MS    5000
#define PEER_MAX 8
#define PEER_BUF (2u << 20)

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    long long deadline = now_ms() + IO_MS;
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            long long left = deadline - now_ms();
            if (left <= 0 || poll(&pf, 1, (int)left) < 0)
                return false;
            continue;
        }
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* ---- the echo peer ---- */

struct peer_conn {
    int fd;
    bool ws, decided;
    unsigned char *buf;
    size_t len;
};

static struct {
    int listen_fd, port;
    pthread_t thread;
    atomic_bool stop;
    struct peer_conn c[PEER_MAX];
} peer;

static bool send_frame(int fd, int op, const void *data, size_t len)
{
    unsigned char h[10] = {(unsigned char)(0x80 | op)};
    size_t hl = 2;
    if (len < 126) {
        h[1] = (unsigned char)len;
    } else if (len < 65536) {
        h[1] = 126, h[2] = (unsigned char)(len >> 8), h[3] = (unsigned char)len, hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
        hl = 10;
    }
    return write_all(fd, h, hl) && write_all(fd, data, len);
}

/* Handles what c holds; false: close it. */
static bool peer_serve(struct peer_conn *c)
{
    if (!c->decided) {
        if (c->len < 4)
            return true;
        c->ws = memcmp(c->buf, "GET ", 4) == 0;
        c->decided = true;
    }
    if (!c->ws) {
        bool ok = write_all(c->fd, c->buf, c->len);
        c->len = 0;
        return ok;
    }
    for (;;) {
        unsigned char *e = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (c->len && c->buf[0] == 'G') { /* the head */
            if (!e)
                return true;
            size_t hl = (size_t)(e + 4 - c->buf);
            static const char ok101[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: "
                                        "websocket\r\nConnection: Upgrade\r\n\r\n";
            if (!write_all(c->fd, ok101, sizeof ok101 - 1))
                return false;
            memmove(c->buf, c->buf + hl, c->len - hl);
            c->len -= hl;
            continue;
        }
        if (c->len < 2)
            return true;
        unsigned char *b = c->buf;
        size_t l7 = b[1] & 0x7f, hl = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + 4;
        if (!(b[1] & 0x80))
            return false; /* a client frame must be masked */
        if (c->len < hl)
            return true;
        uint64_t pl = l7;
        if (l7 == 126)
            pl = (uint64_t)b[2] << 8 | b[3];
        else if (l7 == 127)
            for (int i = 0; i < 8; i++)
                pl = i ? pl << 8 | b[2 + i] : b[2];
        if (hl + pl > PEER_BUF)
            return false;
        if (c->len < hl + pl)
            return true;
        unsigned char *m = b + hl - 4, *d = b + hl;
        for (uint64_t i = 0; i < pl; i++)
            d[i] ^= m[i & 3];
        int op = b[0] & 0x0f;
        unsigned n;
        bool ok = true;
        if (op == 0x8) {
            send_frame(c->fd, 0x8, d, (size_t)pl);
            return false;
        } else if (pl > 6 && pl < 20 && memcmp(d, "burst ", 6) == 0 &&
                   sscanf((char *)d + 6, "%u", &n) == 1) {
            for (unsigned i = 0; i < n && ok; i++) {
                char t[16];
                int tl = snprintf(t, sizeof t, "b%04u", i);
                ok = send_frame(c->fd, 0x1, t, (size_t)tl);
            }
        } else {
            ok = send_frame(c->fd, op, d, (size_t)pl);
        }
        memmove(c->buf, c->buf + hl + pl, c->len - hl - pl);
        c->len -= hl + (size_t)pl;
        if (!ok)
            return false;
    }
}

static void peer_close(struct peer_conn *c)
{
    close(c->fd);
    free(c->buf);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

static void *peer_main(void *arg)
{
    (void)arg;
    while (!peer.stop) {
        struct pollfd pf[1 + PEER_MAX];
        int idx[1 + PEER_MAX], np = 0;
        pf[np++] = (struct pollfd){.fd = peer.listen_fd, .events = POLLIN};
        for (int i = 0; i < PEER_MAX; i++)
            if (peer.c[i].fd >= 0) {
                idx[np] = i;
                pf[np++] = (struct pollfd){.fd = peer.c[i].fd, .events = POLLIN};
            }
        if (poll(pf, (nfds_t)np, 50) <= 0) /* 50 ms: how soon it sees peer.stop */
            continue;
        if (pf[0].revents & POLLIN) {
            int fd = accept(peer.listen_fd, NULL, NULL);
            int i = 0;
            while (i < PEER_MAX && peer.c[i].fd >= 0)
                i++;
            if (fd >= 0 && i < PEER_MAX) {
                peer.c[i].fd = fd;
                peer.c[i].buf = malloc(PEER_BUF);
            } else if (fd >= 0) {
                close(fd);
            }
        }
        for (int k = 1; k < np; k++) {
            struct peer_conn *c = &peer.c[idx[k]];
            if (!pf[k].revents)
                continue;
            ssize_t r = recv(c->fd, c->buf + c->len, PEER_BUF - c->len, 0);
            if (r <= 0) {
                peer_close(c);
                continue;
            }
            c->len += (size_t)r;
            if (!peer_serve(c))
                peer_close(c);
        }
    }
    for (int i = 0; i < PEER_MAX; i++)
        if (peer.c[i].fd >= 0)
            peer_close(&peer.c[i]);
    return NULL;
}

static void peer_start(void)
{
    memset(&peer, 0, sizeof peer);
    for (int i = 0; i < PEER_MAX; i++)
        peer.c[i].fd = -1;
    peer.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    cr_assert_eq(bind(peer.listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(peer.listen_fd, 16), 0);
    cr_assert_eq(getsockname(peer.listen_fd, (struct sockaddr *)&a, &al), 0);
    peer.port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&peer.thread, NULL, peer_main, NULL), 0);
}

static void peer_stop(void)
{
    peer.stop = true;
    pthread_join(peer.thread, NULL); /* it sees the flag within 50 ms */
    close(peer.listen_fd);
}

/* ---- the client side ---- */

static struct faultproxy *proxy_to_peer(uint64_t seed, const struct fp_faults *f)
{
    struct fp_config cfg = {.target_port = peer.port, .seed = seed, .name = "test"};
    if (f)
        cfg.faults = *f;
    struct faultproxy *p = fp_start(&cfg);
    cr_assert_not_null(p);
    return p;
}

static bool read_exact(int fd, void *buf, size_t n, long long deadline)
{
    unsigned char *p = buf;
    while (n) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        long long left = deadline - now_ms();
        if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
            return false;
        ssize_t r = recv(fd, p, n, 0);
        if (r <= 0)
            return false;
        p += r;
        n -= (size_t)r;
    }
    return true;
}

/* The next frame from the server side (unmasked): opcode, or -1 on close/timeout. *out is
 * malloc'ed (caller frees), NUL-terminated. */
static int recv_frame(int fd, unsigned char **out, size_t *len, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    unsigned char h[10];
    *out = NULL;
    if (!read_exact(fd, h, 2, deadline))
        return -1;
    cr_assert_eq(h[1] & 0x80, 0, "a server frame arrived masked");
    uint64_t pl = h[1] & 0x7f;
    if (pl == 126) {
        if (!read_exact(fd, h + 2, 2, deadline))
            return -1;
        pl = (uint64_t)h[2] << 8 | h[3];
    } else if (pl == 127) {
        if (!read_exact(fd, h + 2, 8, deadline))
            return -1;
        pl = 0;
        for (int i = 0; i < 8; i++)
            pl = pl << 8 | h[2 + i];
    }
    cr_assert_leq(pl, PEER_BUF);
    *out = malloc(pl + 1);
    if (!read_exact(fd, *out, pl, deadline)) {
        free(*out);
        *out = NULL;
        return -1;
    }
    (*out)[pl] = '\0';
    *len = pl;
    return h[0] & 0x0f;
}

static char *recv_text(struct ws *w, int timeout_ms)
{
    unsigned char *t;
    size_t n;
    int op = recv_frame(w->fd, &t, &n, timeout_ms);
    if (op != 0x1) {
        free(t);
        return NULL;
    }
    return (char *)t;
}

/* Reads frames "<prefix>NNNN" until the proxy's counts say nothing more will come: `up` more
 * client frames passed than in base, `down` more server frames, and as many arrived as the
 * server frames plus their duplicates (no waiting for a silence). seen[i] counts arrivals,
 * order[] keeps the first max_order in arrival order. Returns how many arrived. */
static int collect(struct ws *w, struct faultproxy *p, const struct fp_stats *base, char prefix,
                   int n, bool echo, int *seen, int *order, int max_order)
{
    int got = 0;
    long long deadline = now_ms() + IO_MS;
    for (;;) {
        struct fp_stats st;
        fp_stats(p, &st);
        unsigned up = st.frames[FP_UP] - base->frames[FP_UP];
        unsigned down = st.frames[FP_DOWN] - base->frames[FP_DOWN];
        unsigned dup_up = st.dups[FP_UP] - base->dups[FP_UP];
        unsigned dup_down = st.dups[FP_DOWN] - base->dups[FP_DOWN];
        /* echo: every client frame that reached the peer (duplicates too) comes back once */
        unsigned want_down = echo ? (unsigned)n + dup_up : (unsigned)n;
        if (up == (echo ? (unsigned)n : 1) && down == want_down &&
            (unsigned)got == want_down + dup_down)
            return got;
        cr_assert_lt(now_ms(), deadline, "%d frames arrived; up %u down %u dups %u/%u", got, up,
                     down, dup_up, dup_down);
        char *t = recv_text(w, 100);
        if (!t)
            continue;
        char *end;
        long i = strtol(t + 1, &end, 10);
        cr_assert(t[0] == prefix && end != t + 1 && !*end && i >= 0 && i < n, "%s", t);
        seen[i]++;
        if (got < max_order)
            order[got] = i;
        got++;
        free(t);
    }
}

/* Sends "m0000".."m(n-1)" and collects the echoes. */
static int echo_many(struct ws *w, struct faultproxy *p, int n, int *seen, int *order,
                     int max_order)
{
    struct fp_stats base;
    fp_stats(p, &base);
    for (int i = 0; i < n; i++) {
        char t[16];
        snprintf(t, sizeof t, "m%04d", i);
        cr_assert(ws_send_text(w, t));
    }
    return collect(w, p, &base, 'm', n, true, seen, order, max_order);
}

/* ---- the tests ---- */

Test(faultproxy, passes_websocket_frames_and_raw_bytes_through_unchanged)
{
    peer_start();
    struct faultproxy *p = proxy_to_peer(fp_seed_env(SEED), NULL);
    struct ws w;
    cr_assert(ws_open(&w, fp_port(p)));
    /* every length encoding: 7-bit, 16-bit, 64-bit, an empty frame */
    size_t sizes[] = {0, 1, 125, 126, 65535, 65536, 300000};
    uint64_t x = 42;
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        unsigned char *b = malloc(sizes[k] + 1);
        for (size_t i = 0; i < sizes[k]; i++)
            b[i] = (unsigned char)((x = x * 6364136223846793005ULL + 1) >> 56);
        cr_assert(ws_send_frame(&w, 0x2, b, sizes[k]));
        unsigned char *e;
        size_t n;
        cr_assert_eq(recv_frame(w.fd, &e, &n, IO_MS), 0x2, "size %zu", sizes[k]);
        cr_assert_eq(n, sizes[k]);
        cr_assert(memcmp(b, e, n) == 0, "size %zu: bytes differ", sizes[k]);
        free(b);
        free(e);
    }
    ws_close_fd(&w);

    /* Not HTTP: raw bytes both ways, 1 MiB read while written. */
    int fd = tcp_open(fp_port(p));
    cr_assert_geq(fd, 0);
    size_t total = 1u << 20, sent = 0, got = 0;
    unsigned char *src = malloc(total), *back = malloc(total);
    for (size_t i = 0; i < total; i++)
        src[i] = (unsigned char)((x = x * 6364136223846793005ULL + 1) >> 56);
    src[0] = 0;
    long long deadline = now_ms() + IO_MS;
    while (got < total && now_ms() < deadline) {
        struct pollfd pf = {.fd = fd, .events = POLLIN | (sent < total ? POLLOUT : 0)};
        cr_assert_geq(poll(&pf, 1, 100), 0);
        if ((pf.revents & POLLOUT) && sent < total) {
            ssize_t s = send(fd, src + sent, total - sent > 65536 ? 65536 : total - sent,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (s > 0)
                sent += (size_t)s;
        }
        if (pf.revents & POLLIN) {
            ssize_t r = recv(fd, back + got, total - got, MSG_DONTWAIT);
            cr_assert_neq(r, 0, "closed after %zu bytes", got);
            if (r > 0)
                got += (size_t)r;
        }
    }
    cr_assert_eq(got, total);
    cr_assert(memcmp(src, back, total) == 0, "raw bytes differ");
    close(fd);
    free(src);
    free(back);
    struct fp_stats st;
    fp_stats(p, &st);
    cr_assert_eq(st.frames[FP_UP], 7);
    cr_assert_eq(st.frames[FP_DOWN], 7);
    cr_assert_eq(st.dups[0] + st.holds[0] + st.truncs[0] + st.losses[0], 0);
    fp_stop(p);
    peer_stop();
}

Test(faultproxy, delay_is_never_shorter_than_asked)
{
    peer_start();
    struct fp_faults f = {0};
    f.dir[FP_UP].delay_ms = 60;
    f.dir[FP_UP].jitter_ms = 20;
    f.dir[FP_DOWN].delay_ms = 40;
    struct faultproxy *p = proxy_to_peer(fp_seed_env(SEED), &f);
    struct ws w;
    long long t0 = now_ms();
    cr_assert(ws_open(&w, fp_port(p)));
    long long t1 = now_ms();
    cr_assert_geq(t1 - t0, 100, "the upgrade took %lld ms", t1 - t0);
    for (int i = 0; i < 3; i++) {
        t0 = now_ms();
        cr_assert(ws_send_text(&w, "ping"));
        char *t = recv_text(&w, IO_MS);
        cr_assert_str_eq(t, "ping");
        free(t);
        cr_assert_geq(now_ms() - t0, 100, "a round trip took %lld ms", now_ms() - t0);
    }
    ws_close_fd(&w);
    fp_stop(p);
    peer_stop();
}

Test(faultproxy, slow_caps_bytes_per_second)
{
    peer_start();
    struct fp_faults f = {0};
    f.dir[FP_UP].rate_bps = 100000;
    struct faultproxy *p = proxy_to_peer(fp_seed_env(SEED), &f);
    struct ws w;
    cr_assert(ws_open(&w, fp_port(p)));
    static unsigned char b[50000];
    memset(b, 'x', sizeof b);
    long long t0 = now_ms();
    cr_assert(ws_send_frame(&w, 0x2, b, sizeof b));
    unsigned char *e;
    size_t n;
    cr_assert_eq(recv_frame(w.fd, &e, &n, IO_MS), 0x2);
    cr_assert_eq(n, sizeof b);
    free(e);
    /* The first 50 ms slice goes at once: (50000 - 5000) / 100000 s at least. */
    cr_assert_geq(now_ms() - t0, 450, "50 kB at 100 kB/s took %lld ms", now_ms() - t0);
    ws_close_fd(&w);
    fp_stop(p);
    peer_stop();
}

static void duplicate_case(int dir)
{
    peer_start();
    struct fp_faults f = {0};
    f.dir[dir].dup_pct = 30;
    struct faultproxy *p = proxy_to_peer(fp_seed_env(SEED), &f);
    struct ws w;
    cr_assert(ws_open(&w, fp_port(p)));
    enum { N = 200 };
    int seen[N] = {0}, order[2 * N], got;
    if (dir == FP_UP) {
        got = echo_many(&w, p, N, seen, order, 2 * N);
    } else {
        struct fp_stats base;
        fp_stats(p, &base);
        cr_assert(ws_send_text(&w, "burst 200"));
        got = collect(&w, p, &base, 'b', N, false, seen, order, 2 * N);
    }
    struct fp_stats st;
    fp_stats(p, &st);
    int twice = 0;
    for (int i = 0; i < N; i++) {
        cr_assert_geq(seen[i], 1, "frame %d lost", i);
        cr_assert_leq(seen[i], 2, "frame %d came %d times", i, seen[i]);
        twice += seen[i] == 2;
    }
    fprintf(stderr, "faultproxy: %s: %d frames, %u duplicated, %d arrived twice\n",
            dir == FP_UP ? "up" : "down", N, st.dups[dir], twice);
    cr_assert_gt(twice, 0);
    cr_assert_eq((unsigned)twice, st.dups[dir]);
    cr_assert_eq(got, N + twice);
    ws_close_fd(&w);
    fp_stop(p);
    peer_stop();
}

Test(faultproxy, duplicate_client_frames)
{
    duplicate_case(FP_UP);
}

Test(faultproxy, duplicate_server_frames)
{
    duplicate_case(FP_DOWN);
}

Test(faultproxy, reorder_changes_order_but_loses_nothing)
{
    peer_start();
    struct fp_faults f = {0};
    f.dir[FP_UP].reorder_pct = 30;
    f.dir[FP_DOWN].reorder_pct = 30;
    struct faultproxy *p = proxy_to_peer(fp_seed_env(SEED), &f);
    struct ws w;
    cr_assert(ws_open(&w, fp_port(p)));
    enum { N = 200 };
    int seen[N] = {0}, order[N];
    int got = echo_many(&w, p, N, seen, order, N);
    cr_assert_eq(got, N);
    int out_of_place = 0;
    for (int i = 0; i < N; i++) {
        cr_assert_eq(seen[i], 1, "frame %d came %d times", i, seen[i]);
        out_of_place += order[i] != i;
    }
    struct fp_stats st;
    fp_stats(p, &st);
    fprintf(stderr, "faultproxy: reorder: %u held up, %u held down, %d of %d out of place\n",
            st.holds[FP_UP], st.holds[FP_DOWN], out_of_place, N);
    cr_assert_gt(st.holds[FP_UP] + st.holds[FP_DOWN], 0);
    cr_assert_gt(out_of_place, 0);
    ws_close_fd(&w);
    fp_stop(p);
    peer_stop();
}

Test(faultproxy, cut_resets_and_refuses_then_heals)
{
    peer_start();
    struct faultproxy *p = proxy_to_peer(fp_seed_env(SEED), NULL);
    struct ws w;
    cr_assert(ws_open(&w, fp_port(p)));
    fp_cut(p, true);
    cr_assert(tcp_wait_closed(w.fd, IO_MS), "the open connection was not reset");
    ws_close_fd(&w);
    struct ws w2;
    cr_assert_not(ws_open(&w2, fp_port(p)), "a connection went through a cut link");
    ws_close_fd(&w2);
    fp_cut(p, false);
    struct ws w3;
    cr_assert(ws_open(&w3, fp_port(p)));
    cr_assert(ws_send_text(&w3, "after"));
    char *t = recv_text(&w3, IO_MS);
    cr_assert_str_eq(t, "after");
    free(t);
    ws_close_fd(&w3);
    struct fp_stats st;
    fp_stats(p, &st);
    cr_assert_geq(st.refused, 1);
    cr_assert_geq(st.resets, 1);
    fp_stop(p);
    peer_stop();
}

Test(faultproxy, truncate_closes_in_the_middle_of_a_frame)
{
    peer_start();
    struct faultproxy *p = proxy_to_peer(fp_seed_env(SEED), NULL);
    struct ws w;
    cr_assert(ws_open(&w, fp_port(p)));
    struct fp_faults f = {0};
    f.dir[FP_DOWN].trunc_pct = 100;
    fp_set(p, &f);
    static const char msg[] = "a frame that will not arrive whole";
    cr_assert(ws_send_text(&w, msg));
    size_t whole = 2 + strlen(msg), got = 0;
    unsigned char buf[256];
    long long deadline = now_ms() + IO_MS;
    for (;;) {
        struct pollfd pf = {.fd = w.fd, .events = POLLIN};
        cr_assert_gt(poll(&pf, 1, (int)(deadline - now_ms())), 0, "no close in time");
        ssize_t r = recv(w.fd, buf + got, sizeof buf - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    char log[256];
    fp_decisions(p, log, sizeof log);
    fprintf(stderr, "faultproxy: truncated after %zu of %zu bytes (%s)\n", got, whole, log);
    cr_assert(got > 0 && got < whole, "got %zu of a %zu-byte frame", got, whole);
    cr_assert_eq(buf[0], 0x81);
    struct fp_stats st;
    fp_stats(p, &st);
    cr_assert_eq(st.truncs[FP_DOWN], 1);
    ws_close_fd(&w);
    fp_stop(p);
    peer_stop();
}

Test(faultproxy, loss_drops_the_connection)
{
    peer_start();
    struct faultproxy *p = proxy_to_peer(fp_seed_env(SEED), NULL);
    struct ws w;
    cr_assert(ws_open(&w, fp_port(p)));
    struct fp_faults f = {0};
    f.dir[FP_UP].loss_pct = 100;
    fp_set(p, &f);
    cr_assert(ws_send_text(&w, "lost"));
    cr_assert(tcp_wait_closed(w.fd, IO_MS), "the connection was not dropped");
    struct fp_stats st;
    fp_stats(p, &st);
    cr_assert_eq(st.losses[FP_UP], 1);
    ws_close_fd(&w);
    fp_stop(p);
    peer_stop();
}

Test(faultproxy, frame_over_the_cap_is_a_clear_error)
{
    peer_start();
    struct fp_config cfg = {.target_port = peer.port, .seed = SEED, .max_frame = 1000};
    struct faultproxy *p = fp_start(&cfg);
    cr_assert_not_null(p);
    struct ws w;
    cr_assert(ws_open(&w, fp_port(p)));
    static unsigned char b[2000];
    cr_assert(ws_send_frame(&w, 0x2, b, sizeof b));
    cr_assert(tcp_wait_closed(w.fd, IO_MS));
    char err[256];
    fp_last_error(p, err, sizeof err);
    cr_assert(strstr(err, "2000 payload bytes (+8 of header) is over the cap of 1000 bytes"), "%s",
              err);
    ws_close_fd(&w);
    fp_stop(p);
    peer_stop();
}

/* One run of a schedule: 200 frames echoed, with duplicates, reorders and jitter both ways. */
static size_t schedule_run(uint64_t seed, char *log, size_t cap)
{
    struct fp_faults f = {0};
    for (int d = 0; d < 2; d++) {
        f.dir[d].dup_pct = 20;
        f.dir[d].reorder_pct = 20;
        f.dir[d].jitter_ms = 3;
    }
    struct faultproxy *p = proxy_to_peer(seed, &f);
    struct ws w;
    cr_assert(ws_open(&w, fp_port(p)));
    enum { N = 200 };
    int seen[N] = {0}, order[1];
    echo_many(&w, p, N, seen, order, 0);
    for (int i = 0; i < N; i++)
        cr_assert_geq(seen[i], 1, "frame %d lost", i);
    ws_close_fd(&w);
    size_t len = fp_decisions(p, log, cap);
    fp_stop(p);
    return len;
}

Test(faultproxy, the_same_seed_gives_the_same_decisions)
{
    peer_start();
    uint64_t seed = fp_seed_env(SEED);
    enum { CAP = 1 << 16 };
    char *a = malloc(CAP), *b = malloc(CAP), *c = malloc(CAP);
    size_t la = schedule_run(seed, a, CAP);
    size_t lb = schedule_run(seed, b, CAP);
    schedule_run(seed + 1, c, CAP);
    cr_assert_lt(la, CAP);
    cr_assert_gt(la, 0);
    cr_assert(la == lb && strcmp(a, b) == 0, "seed 0x%llx: two runs decided differently",
              (unsigned long long)seed);
    cr_assert(strcmp(a, c) != 0, "another seed decided the same");
    free(a);
    free(b);
    free(c);
    peer_stop();
}

/* The real server's client API through the proxy: upgrade, login and a call, with delay. */
Test(faultproxy, kizunad_client_api_through_the_proxy)
{
    struct kzd d;
    kzd_setup(&d);
    struct fp_config cfg = {.target_port = d.port, .seed = fp_seed_env(SEED), .name = "kizunad"};
    cfg.faults.dir[FP_UP].delay_ms = 20;
    cfg.faults.dir[FP_DOWN].delay_ms = 20;
    struct faultproxy *p = fp_start(&cfg);
    cr_assert_not_null(p);
    struct ws w;
    cr_assert(ws_open(&w, fp_port(p)));
    char tok[128];
    long long t0 = now_ms();
    cr_assert(ws_login(&w, "admin", TEST_ADMIN_PASSWORD, tok));
    cr_assert_geq(now_ms() - t0, 40);
    cJSON *r = ws_callf(&w, "\"op\":\"sync\"");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    ws_close_fd(&w);
    struct fp_stats st;
    fp_stats(p, &st);
    cr_assert_geq(st.frames[FP_UP], 2);
    cr_assert_geq(st.frames[FP_DOWN], 2);
    fp_stop(p);
    kzd_teardown(&d);
}
