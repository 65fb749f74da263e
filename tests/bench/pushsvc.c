/* pushsvc.c - kzbench's push service and mail relay stand-in (pushsvc.h): one thread accepts,
 * one thread per connection reads requests (keep-alive or not) or SMTP commands, counts them and
 * takes them. A thread per
 * connection because kizunad opens at most push_concurrency (at most 64) at once, and because a
 * delayed answer must not hold up the others, as it would not at a real push service. Every
 * wait polls with a short timeout and checks the stop flag; a connection idle for
 * PUSHSVC_IDLE_MS is closed. */
#include "pushsvc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PUSHSVC_IDLE_MS   10000
#define PUSHSVC_MAX_CONNS 512 /* past it a connection is closed at once (kizunad retries) */
#define PUSHSVC_HEAD_MAX  16384
#define PUSHSVC_BODY_MAX  65536 /* a push body is at most 4 KB (RFC 8291) */

static struct {
    int fd, endpoints, delay_ms;
    pthread_t acceptor;
    bool started, smtp;
    atomic_bool stop;
    atomic_uchar *seen; /* per endpoint */
    atomic_int received, duplicates, stray, conns, max_conns;
    atomic_llong first_ns, all_ns;
} svc;

static long long mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* A header's value (case-insensitive name) in head, which ends at its blank line. */
static bool head_value(const char *head, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p[2] && p[2] != '\r';
         p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            snprintf(out, n, "%.*s", (int)strcspn(v, "\r\n"), v);
            return true;
        }
    }
    return false;
}

/* One post (or message) to endpoint i; -1: to something else. */
static void count_one(long i)
{
    long long now = mono_ns();
    long long zero = 0;
    atomic_compare_exchange_strong(&svc.first_ns, &zero, now);
    if (i < 0 || i >= svc.endpoints) {
        atomic_fetch_add(&svc.stray, 1);
        return;
    }
    if (atomic_exchange(&svc.seen[i], 1)) {
        atomic_fetch_add(&svc.duplicates, 1);
        return;
    }
    if (atomic_fetch_add(&svc.received, 1) + 1 == svc.endpoints)
        atomic_store(&svc.all_ns, now);
}

/* Waits until fd is readable, the connection has been idle too long, or the stand-in stops. */
static bool readable(int fd, long long idle_until)
{
    while (!atomic_load(&svc.stop) && mono_ns() < idle_until) {
        struct pollfd pf = {fd, POLLIN, 0};
        int r = poll(&pf, 1, 100);
        if (r > 0)
            return true;
        if (r < 0)
            return false;
    }
    return false;
}

static void count_post(const char *path)
{
    char *end = NULL;
    long i = strncmp(path, "/push/", 6) == 0 ? strtol(path + 6, &end, 10) : -1;
    count_one(end && !*end ? i : -1);
}

static void delay(void)
{
    if (svc.delay_ms > 0) {
        struct timespec d = {svc.delay_ms / 1000, (long)(svc.delay_ms % 1000) * 1000000L};
        nanosleep(&d, NULL);
    }
}

/* One line (CRLF cut off) of an SMTP session into line; false at the end of the connection, an
 * overlong line, idleness or stop. buf/have hold what was read past it. */
static bool smtp_line(int fd, char *buf, size_t *have, char *line, size_t size)
{
    long long idle_until = mono_ns() + (long long)PUSHSVC_IDLE_MS * 1000000;
    for (;;) {
        char *nl = memchr(buf, '\n', *have);
        if (nl) {
            size_t len = (size_t)(nl - buf);
            if (len >= size)
                return false;
            memcpy(line, buf, len);
            line[len && line[len - 1] == '\r' ? len - 1 : len] = '\0';
            memmove(buf, nl + 1, *have - len - 1);
            *have -= len + 1;
            return true;
        }
        if (*have >= PUSHSVC_HEAD_MAX || !readable(fd, idle_until))
            return false;
        ssize_t n = recv(fd, buf + *have, PUSHSVC_HEAD_MAX - *have, 0);
        if (n <= 0)
            return false;
        *have += (size_t)n;
    }
}

static bool say(int fd, const char *reply)
{
    return send(fd, reply, strlen(reply), MSG_NOSIGNAL) >= 0;
}

/* An SMTP session (RFC 5321, as libcurl's client speaks it): every message is taken; its
 * recipients u<i>@... are counted once its data has ended. */
static void serve_smtp(int fd, char *buf)
{
    size_t have = 0;
    char line[1024];
    long rcpt[8];
    int nrcpt = 0;
    if (!say(fd, "220 kzbench stand-in ESMTP\r\n"))
        return;
    while (smtp_line(fd, buf, &have, line, sizeof line)) {
        const char *reply = "250 OK\r\n";
        if (!strncasecmp(line, "EHLO", 4) || !strncasecmp(line, "HELO", 4)) {
            reply = "250-kzbench\r\n250 8BITMIME\r\n";
        } else if (!strncasecmp(line, "MAIL FROM:", 10) || !strncasecmp(line, "RSET", 4)) {
            nrcpt = 0;
        } else if (!strncasecmp(line, "RCPT TO:", 8)) {
            char *end = NULL, *u = strstr(line, "<u");
            long i = u ? strtol(u + 2, &end, 10) : -1;
            if (nrcpt < 8)
                rcpt[nrcpt++] = end && *end == '@' ? i : -1;
        } else if (!strncasecmp(line, "DATA", 4)) {
            if (!say(fd, "354 go on\r\n"))
                return;
            bool ended = false;
            while (!ended && smtp_line(fd, buf, &have, line, sizeof line))
                ended = strcmp(line, ".") == 0;
            if (!ended)
                return;
            for (int i = 0; i < nrcpt; i++)
                count_one(rcpt[i]);
            nrcpt = 0;
            delay();
        } else if (!strncasecmp(line, "QUIT", 4)) {
            say(fd, "221 bye\r\n");
            return;
        } else if (strncasecmp(line, "NOOP", 4)) {
            reply = "502 not here\r\n";
        }
        if (!say(fd, reply))
            return;
    }
}

static void *serve_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char *buf = malloc(PUSHSVC_HEAD_MAX + 1);
    size_t have = 0;
    bool keep = buf != NULL;
    if (keep && svc.smtp) {
        serve_smtp(fd, buf);
        keep = false;
    }
    while (keep) {
        /* One request's head; bytes after it (its body, a pipelined request) stay in buf. */
        char *end = NULL;
        long long idle_until = mono_ns() + (long long)PUSHSVC_IDLE_MS * 1000000;
        while (!(end = have ? strstr(buf, "\r\n\r\n") : NULL) && have < PUSHSVC_HEAD_MAX) {
            if (!readable(fd, idle_until))
                break;
            ssize_t n = recv(fd, buf + have, PUSHSVC_HEAD_MAX - have, 0);
            if (n <= 0)
                break;
            have += (size_t)n;
            buf[have] = '\0';
        }
        if (!end)
            break;
        size_t head_len = (size_t)(end + 4 - buf);
        char method[8] = "", path[256] = "", cl[32] = "0", v[64];
        if (sscanf(buf, "%7s %255s", method, path) != 2)
            break;
        head_value(buf, "Content-Length", cl, sizeof cl);
        unsigned long want = strtoul(cl, NULL, 10);
        if (want > PUSHSVC_BODY_MAX)
            break;
        if (head_value(buf, "Expect", v, sizeof v) && strcasecmp(v, "100-continue") == 0)
            send(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25, MSG_NOSIGNAL);
        keep = !(head_value(buf, "Connection", v, sizeof v) && strcasecmp(v, "close") == 0);
        /* The body is read and dropped: this stand-in does not decrypt (pushsink.c does). */
        size_t body_here = have - head_len < want ? have - head_len : want;
        size_t left = want - body_here;
        memmove(buf, buf + head_len + body_here, have - head_len - body_here);
        have -= head_len + body_here;
        buf[have] = '\0';
        while (left > 0) {
            char sink[4096];
            if (!readable(fd, idle_until))
                break;
            ssize_t n = recv(fd, sink, left < sizeof sink ? left : sizeof sink, 0);
            if (n <= 0)
                break;
            left -= (size_t)n;
        }
        if (left > 0)
            break;
        if (strcmp(method, "POST") == 0)
            count_post(path);
        else
            atomic_fetch_add(&svc.stray, 1);
        delay();
        const char *reply = keep ? "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
                                 : "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n"
                                   "Connection: close\r\n\r\n";
        if (send(fd, reply, strlen(reply), MSG_NOSIGNAL) < 0)
            break;
    }
    free(buf);
    close(fd);
    atomic_fetch_sub(&svc.conns, 1);
    return NULL;
}

static void *accept_loop(void *arg)
{
    (void)arg;
    while (!atomic_load(&svc.stop)) {
        struct pollfd pf = {svc.fd, POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        int c = accept(svc.fd, NULL, NULL);
        if (c < 0)
            continue;
        int open = atomic_fetch_add(&svc.conns, 1) + 1;
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        if (open > PUSHSVC_MAX_CONNS ||
            pthread_create(&t, &attr, serve_conn, (void *)(intptr_t)c) != 0) {
            close(c);
            atomic_fetch_sub(&svc.conns, 1);
        } else {
            int max = atomic_load(&svc.max_conns);
            while (open > max && !atomic_compare_exchange_weak(&svc.max_conns, &max, open))
                ;
        }
        pthread_attr_destroy(&attr);
    }
    return NULL;
}

int pushsvc_start(int endpoints, int delay_ms, bool smtp)
{
    if (svc.started || endpoints < 1 || delay_ms < 0)
        return -1;
    svc.endpoints = endpoints;
    svc.delay_ms = delay_ms;
    svc.smtp = smtp;
    svc.seen = calloc((size_t)endpoints, sizeof *svc.seen);
    svc.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (!svc.seen || svc.fd < 0 || bind(svc.fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(svc.fd, 1024) != 0 || getsockname(svc.fd, (struct sockaddr *)&a, &al) != 0 ||
        pthread_create(&svc.acceptor, NULL, accept_loop, NULL) != 0) {
        if (svc.fd >= 0)
            close(svc.fd);
        free(svc.seen);
        svc.seen = NULL;
        return -1;
    }
    svc.started = true;
    return ntohs(a.sin_port);
}

void pushsvc_counts(struct pushsvc_counts *out)
{
    out->received = atomic_load(&svc.received);
    out->duplicates = atomic_load(&svc.duplicates);
    out->stray = atomic_load(&svc.stray);
    out->first_ns = atomic_load(&svc.first_ns);
    out->all_ns = atomic_load(&svc.all_ns);
    out->max_conns = atomic_load(&svc.max_conns);
}

void pushsvc_stop(void)
{
    if (!svc.started)
        return;
    atomic_store(&svc.stop, true);
    pthread_join(svc.acceptor, NULL);
    close(svc.fd);
    /* Each connection's thread sees the flag within one poll (100 ms) or its delay. */
    long long until = mono_ns() + 3000000000LL + (long long)svc.delay_ms * 1000000;
    while (atomic_load(&svc.conns) > 0 && mono_ns() < until) {
        struct timespec d = {0, 10000000};
        nanosleep(&d, NULL);
    }
    if (atomic_load(&svc.conns) == 0) { /* else a thread may still read it: left to exit() */
        free(svc.seen);
        svc.seen = NULL;
    }
    svc.started = false;
}
