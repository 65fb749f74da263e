/* smtpsink.c - the mail relay stand-in and a small MIME reader for tests (smtpsink.h). */
#include "smtpsink.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_MSGS 32

struct smtpsink {
    int fd, port;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    int busy, sessions;
    char refuse[256];
    struct smtp_msg *msgs;
    int nmsgs;
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads one CRLF-terminated line into line (without the CRLF), using buf as carry-over. */
static bool read_line(int c, char *buf, size_t *have, char *line, size_t n)
{
    long long deadline = now_ms() + 10000;
    for (;;) {
        char *eol = memmem(buf, *have, "\r\n", 2);
        if (eol) {
            size_t len = (size_t)(eol - buf);
            snprintf(line, n, "%.*s", (int)(len < n ? len : n - 1), buf);
            memmove(buf, eol + 2, *have - len - 2);
            *have -= len + 2;
            return true;
        }
        if (*have >= 70000 || now_ms() > deadline)
            return false;
        struct pollfd pf = {c, POLLIN, 0};
        if (poll(&pf, 1, 200) <= 0)
            continue;
        ssize_t r = recv(c, buf + *have, 70000 - *have, 0);
        if (r <= 0)
            return false;
        *have += (size_t)r;
    }
}

static void say(int c, const char *s)
{
    send(c, s, strlen(s), MSG_NOSIGNAL);
}

/* After a message, whether the client sends more on its session (kizunad's mail threads keep
 * theirs open for the next message): false if it closes it, or another client is waiting to
 * connect to this one-thread relay, which then ends the idle session with a 421 as a real relay
 * ends an idle one after its timeout. */
static bool more_on_session(struct smtpsink *s, int c, size_t have)
{
    for (long long deadline = now_ms() + 10000; have == 0 && now_ms() < deadline;) {
        pthread_mutex_lock(&s->mu);
        bool stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        struct pollfd pf[2] = {{c, POLLIN, 0}, {s->fd, POLLIN, 0}};
        if (stop || (poll(pf, 2, 100) > 0 && !pf[0].revents && pf[1].revents)) {
            say(c, "421 sink closing an idle session\r\n");
            return false;
        }
        if (pf[0].revents)
            return true;
    }
    return true;
}

static void session(struct smtpsink *s, int c)
{
    pthread_mutex_lock(&s->mu);
    s->sessions++;
    bool busy = s->busy > 0;
    if (busy)
        s->busy--;
    char refuse[256];
    snprintf(refuse, sizeof refuse, "%s", s->refuse);
    pthread_mutex_unlock(&s->mu);
    if (busy) {
        say(c, "421 sink busy, try later\r\n");
        return;
    }
    say(c, "220 sink ESMTP\r\n");
    char *buf = malloc(70001);
    size_t have = 0;
    char line[1024];
    struct smtp_msg *m = calloc(1, sizeof *m);
    while (read_line(c, buf, &have, line, sizeof line)) {
        if (!strncasecmp(line, "EHLO", 4) || !strncasecmp(line, "HELO", 4)) {
            say(c, "250 sink\r\n");
        } else if (!strncasecmp(line, "MAIL FROM:", 10)) {
            snprintf(m->from, sizeof m->from, "%.255s", line + 10); /* longer: cut */
            say(c, "250 ok\r\n");
        } else if (!strncasecmp(line, "RCPT TO:", 8)) {
            char addr[256];
            snprintf(addr, sizeof addr, "%.255s", line + 8);
            char *lt = strchr(addr, '<'), *gt = strchr(addr, '>');
            if (lt && gt && gt > lt) {
                *gt = '\0';
                memmove(addr, lt + 1, strlen(lt + 1) + 1);
            }
            if (refuse[0] && strcmp(addr, refuse) == 0) {
                say(c, "550 no such user\r\n");
            } else {
                snprintf(m->rcpt, sizeof m->rcpt, "%s", addr);
                say(c, "250 ok\r\n");
            }
        } else if (!strcasecmp(line, "DATA")) {
            say(c, "354 go on\r\n");
            m->len = 0;
            while (read_line(c, buf, &have, line, sizeof line) && strcmp(line, ".") != 0) {
                const char *l = line[0] == '.' ? line + 1 : line; /* dot-unstuffing */
                size_t k = strlen(l);
                if (m->len + k + 3 < sizeof m->data) {
                    memcpy(m->data + m->len, l, k);
                    memcpy(m->data + m->len + k, "\r\n", 2);
                    m->len += k + 2;
                }
            }
            m->data[m->len] = '\0';
            pthread_mutex_lock(&s->mu);
            if (s->nmsgs < MAX_MSGS)
                s->msgs[s->nmsgs++] = *m;
            pthread_cond_broadcast(&s->cv);
            pthread_mutex_unlock(&s->mu);
            say(c, "250 queued\r\n");
            if (!more_on_session(s, c, have))
                break;
        } else if (!strcasecmp(line, "QUIT")) {
            say(c, "221 bye\r\n");
            break;
        } else if (!strcasecmp(line, "RSET") || !strcasecmp(line, "NOOP")) {
            say(c, "250 ok\r\n");
        } else {
            say(c, "502 not here\r\n");
        }
    }
    free(m);
    free(buf);
}

static void *sink_main(void *arg)
{
    struct smtpsink *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        bool stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        struct pollfd pf = {s->fd, POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            continue;
        session(s, c);
        close(c);
    }
    return NULL;
}

struct smtpsink *smtpsink_start(void)
{
    struct smtpsink *s = calloc(1, sizeof *s);
    s->msgs = calloc(MAX_MSGS, sizeof *s->msgs);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(s->fd, 16) != 0 ||
        getsockname(s->fd, (struct sockaddr *)&a, &al) != 0)
        abort();
    s->port = ntohs(a.sin_port);
    if (pthread_create(&s->thread, NULL, sink_main, s) != 0)
        abort();
    return s;
}

int smtpsink_port(const struct smtpsink *s)
{
    return s->port;
}

void smtpsink_busy(struct smtpsink *s, int n)
{
    pthread_mutex_lock(&s->mu);
    s->busy = n;
    pthread_mutex_unlock(&s->mu);
}

void smtpsink_refuse(struct smtpsink *s, const char *rcpt)
{
    pthread_mutex_lock(&s->mu);
    snprintf(s->refuse, sizeof s->refuse, "%s", rcpt);
    pthread_mutex_unlock(&s->mu);
}

static int find(struct smtpsink *s, const char *rcpt, int n)
{
    for (int i = 0, seen = 0; i < s->nmsgs; i++)
        if (strcmp(s->msgs[i].rcpt, rcpt) == 0 && seen++ == n)
            return i;
    return -1;
}

bool smtpsink_wait(struct smtpsink *s, const char *rcpt, int n, int timeout_ms,
                   struct smtp_msg *out)
{
    long long deadline = now_ms() + timeout_ms;
    pthread_mutex_lock(&s->mu);
    int i;
    while ((i = find(s, rcpt, n)) < 0 && now_ms() < deadline) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 50000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &until);
    }
    if (i >= 0 && out)
        *out = s->msgs[i];
    pthread_mutex_unlock(&s->mu);
    return i >= 0;
}

int smtpsink_count(struct smtpsink *s, const char *rcpt)
{
    pthread_mutex_lock(&s->mu);
    int n = 0;
    for (int i = 0; i < s->nmsgs; i++)
        n += strcmp(s->msgs[i].rcpt, rcpt) == 0;
    pthread_mutex_unlock(&s->mu);
    return n;
}

int smtpsink_sessions(struct smtpsink *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->sessions;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void smtpsink_stop(struct smtpsink *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    close(s->fd);
    free(s->msgs);
    free(s);
}

/* ---- MIME ---- */

static int hexval(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                  : -1;
}

/* Decodes quoted-printable (q: the RFC 2047 Q form, where _ is a space). */
static size_t qp_decode(const char *in, size_t len, char *out, bool q)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '=' && i + 2 < len + 1 && i + 1 < len && in[i + 1] == '\r') {
            i += 2; /* soft break */
        } else if (in[i] == '=' && i + 2 < len && hexval(in[i + 1]) >= 0 &&
                   hexval(in[i + 2]) >= 0) {
            out[o++] = (char)(hexval(in[i + 1]) * 16 + hexval(in[i + 2]));
            i += 2;
        } else {
            out[o++] = q && in[i] == '_' ? ' ' : in[i];
        }
    }
    return o;
}

bool mail_header(const struct smtp_msg *m, const char *name, char *out, size_t n)
{
    const char *end = strstr(m->data, "\r\n\r\n");
    if (!end)
        return false;
    size_t nl = strlen(name);
    const char *p = m->data;
    while (p < end) {
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':')
            break;
        p = strstr(p, "\r\n");
        if (!p)
            return false;
        p += 2;
    }
    if (p >= end)
        return false;
    /* The value, unfolded: continuation lines begin with a space or tab. */
    char raw[4096];
    size_t rl = 0;
    for (const char *v = p + nl + 1;; v++) {
        if (v[0] == '\r' && v[1] == '\n') {
            if (v[2] != ' ' && v[2] != '\t')
                break;
            v += 2;
            continue; /* the fold's whitespace stays */
        }
        if (rl + 1 < sizeof raw)
            raw[rl++] = *v;
    }
    raw[rl] = '\0';
    /* Encoded words; whitespace between two of them is dropped (RFC 2047 6.2). */
    size_t o = 0;
    const char *s = raw;
    while (*s == ' ')
        s++;
    bool last_word = false;
    while (*s && o + 1 < n) {
        if (strncmp(s, "=?", 2) == 0) {
            const char *q1 = strchr(s + 2, '?');
            const char *q2 = q1 ? strchr(q1 + 1, '?') : NULL;
            const char *e = q2 ? strstr(q2 + 1, "?=") : NULL;
            if (!e || strncasecmp(s + 2, "UTF-8", (size_t)(q1 - s - 2)) != 0)
                return false;
            char dec[1024];
            size_t dl = 0;
            if (q1[1] == 'B' || q1[1] == 'b') {
                if (sodium_base642bin((unsigned char *)dec, sizeof dec, q2 + 1,
                                      (size_t)(e - q2 - 1), NULL, &dl, NULL,
                                      sodium_base64_VARIANT_ORIGINAL) != 0)
                    return false;
            } else {
                dl = qp_decode(q2 + 1, (size_t)(e - q2 - 1), dec, true);
            }
            if (o + dl + 1 > n)
                return false;
            memcpy(out + o, dec, dl);
            o += dl;
            s = e + 2;
            last_word = true;
            const char *w = s;
            while (*w == ' ' || *w == '\t')
                w++;
            if (strncmp(w, "=?", 2) == 0)
                s = w;
        } else {
            out[o++] = *s++;
            last_word = false;
        }
    }
    (void)last_word;
    out[o] = '\0';
    return true;
}

bool mail_body(const struct smtp_msg *m, char *out, size_t n)
{
    const char *body = strstr(m->data, "\r\n\r\n");
    if (!body)
        return false;
    body += 4;
    char cte[64] = "";
    mail_header(m, "Content-Transfer-Encoding", cte, sizeof cte);
    size_t len = strlen(body);
    if (strcasecmp(cte, "base64") == 0) {
        size_t dl = 0;
        if (sodium_base642bin((unsigned char *)out, n - 1, body, len, "\r\n", &dl, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0)
            return false;
        out[dl] = '\0';
        return true;
    }
    if (strcasecmp(cte, "quoted-printable") == 0) {
        if (len >= n)
            return false;
        out[qp_decode(body, len, out, false)] = '\0';
        return true;
    }
    snprintf(out, n, "%s", body);
    return true;
}
