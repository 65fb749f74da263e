/* listener.c - binds the listening socket, accepts, and decides who may connect.
 *
 * Why not lws's own listener (4.1.6): given an IPv4 address as its interface it binds an IPv6
 * socket to [::], i.e. every address of the machine (its lws_interface_to_sa writes the IPv4
 * address into a sockaddr_in6 at the IPv4 offset); and when accept() fails with EMFILE it
 * returns with the listening socket still readable, so poll() wakes at once, forever, at full
 * CPU. Owning the socket fixes both, and lets every connection of any kind be counted before
 * it costs a header buffer.
 *
 * Descriptors: the soft limit is set at start to max_connections + fd_reserve, as far as the
 * hard limit allows. A newcomer is refused when the connections plus the files they hold open
 * (a blob being downloaded, an upload being written: listener_files) would leave fewer than
 * fd_reserve descriptors for the database, logs and the server's own work. If accept() still meets
 * EMFILE (something else used the reserve), a spare descriptor on /dev/null is given up to
 * accept the waiting client, tell it 503 and close it; if even that fails, accepting pauses
 * for PAUSE_MS and resumes by itself. Either way the loop sleeps and the rest are served.
 */
#include "listener.h"
#include "idmap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPT_BATCH  64         /* connections accepted per wakeup, for fairness */
#define PAUSE_MS      100        /* accepting rests this long when the kernel is short */
#define NOFILE_CEIL   (1L << 20) /* what "unlimited" is taken to mean */
#define WARN_EVERY_MS 10000      /* one warning per refusal reason per this long */

/* What an admitted connection carries (its wsi's opaque user data). */
struct slot {
    struct kz_listener *owner; /* the listener that admitted it */
    uint64_t key;
    char addr[STORE_ADDR_MAX + 1];
};

struct kz_listener {
    const struct kz_config *cfg;
    int fd;       /* the listening socket; lws owns it once adopted */
    int spare_fd; /* /dev/null, given up to refuse a client when descriptors run out */
    int port;
    bool tls, adopted, paused;
    struct lws *wsi;       /* the listening socket inside the loop */
    struct lws_vhost *vh;  /* where admitted connections go */
    struct idmap addrs;    /* address key -> int count of open connections (boxed) */
    long conns, files;     /* admitted connections; files they hold open */
    long fds_max;          /* most conns + files: the limit less fd_reserve */
    long nofile;           /* the process's descriptor limit, as set */
    struct slot *adopting; /* the slot being handed to lws right now */
    bool adopting_gone;    /* ... and lws destroyed it during the handover */
    int64_t warned_at[3];  /* per refusal reason, the last warning's time */
    lws_sorted_usec_list_t resume_sul;
};

uint64_t listener_addr_key(const char *addr)
{
    uint8_t h[8];
    crypto_generichash(h, sizeof h, (const unsigned char *)addr, strlen(addr), NULL, 0);
    uint64_t k;
    memcpy(&k, h, sizeof k);
    return k && k != UINT64_MAX ? k : 1;
}

/* HOST:PORT with HOST an IPv4 address, [IPv6 address], * or empty (every address). */
static int parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len, bool *any,
                        char *err, size_t errlen)
{
    char host[128];
    snprintf(host, sizeof host, "%s", listen);
    char *colon = strrchr(host, ':'), *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || end == colon + 1 || *end || port < 0 || port > 65535) {
        snprintf(err, errlen, "listen '%s' is not HOST:PORT", listen);
        return -1;
    }
    *colon = '\0';
    memset(ss, 0, sizeof *ss);
    *any = !host[0] || strcmp(host, "*") == 0;
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    size_t n = strlen(host);
    if (*any) {
        v6->sin6_family = AF_INET6;
        v6->sin6_addr = in6addr_any;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof *v6;
    } else if (host[0] == '[' && n > 2 && host[n - 1] == ']') {
        host[n - 1] = '\0';
        if (inet_pton(AF_INET6, host + 1, &v6->sin6_addr) != 1)
            goto bad;
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof *v6;
    } else if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof *v4;
    } else {
        goto bad;
    }
    return 0;
bad:
    snprintf(err, errlen,
             "listen '%s': HOST must be an IPv4 address, an IPv6 address in brackets, or * "
             "for every address",
             listen);
    return -1;
}

static int bind_socket(const struct sockaddr_storage *ss, socklen_t len, bool any)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1, v6only = any ? 0 : 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* [::1] means ::1 only; * means both families on one socket. */
    if (ss->ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) != 0)
        goto fail;
    if (bind(fd, (const struct sockaddr *)ss, len) != 0 || listen(fd, SOMAXCONN) != 0)
        goto fail;
    return fd;
fail:;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

/* Sets the soft descriptor limit to what the configuration needs (want), as far as the hard
 * limit allows, and returns it. Exactly, not merely at least: lws sizes its descriptor table
 * from fd_limit_per_thread, and when that is below the process limit it finds a connection
 * by a linear search of the whole table on every event instead of by index. */
static long nofile_set(long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_max != RLIM_INFINITY && (rlim_t)want > rl.rlim_max)
        want = (long)rl.rlim_max;
    rl.rlim_cur = (rlim_t)want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        getrlimit(RLIMIT_NOFILE, &rl);
    return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)NOFILE_CEIL ? NOFILE_CEIL
                                                                             : (long)rl.rlim_cur;
}

bool listener_listen_valid(const char *listen, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    bool any;
    return parse_listen(listen, &ss, &len, &any, err, errlen) == 0;
}

bool listener_loopback(const char *listen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    bool any;
    char err[160];
    if (parse_listen(listen, &ss, &len, &any, err, sizeof err) != 0 || any)
        return false;
    if (ss.ss_family == AF_INET)
        return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
    return IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr);
}

struct kz_listener *listener_open(const struct kz_config *cfg, const char *listen, char *err,
                                  size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    bool any;
    if (parse_listen(listen, &ss, &len, &any, err, errlen) != 0)
        return NULL;
    long nofile = nofile_set((long)(cfg->max_connections + cfg->fd_reserve));
    long fds_max = nofile - (long)cfg->fd_reserve;
    if (fds_max < 1) {
        snprintf(err, errlen,
                 "the descriptor limit (%ld) leaves no room for connections after fd_reserve "
                 "(%lld): raise LimitNOFILE (ulimit -n)",
                 nofile, cfg->fd_reserve);
        return NULL;
    }
    if (fds_max < cfg->max_connections)
        KZ_WARN("fd_limit",
                "limit=%ld max_connections=%lld connections=%ld "
                "hint=\"raise LimitNOFILE or ulimit -n\"",
                nofile, cfg->max_connections, fds_max);
    int fd = bind_socket(&ss, len, any);
    if (fd < 0 && any && (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL)) {
        /* A machine without IPv6: every IPv4 address. */
        struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
        in_port_t port = ((struct sockaddr_in6 *)&ss)->sin6_port;
        memset(&ss, 0, sizeof ss);
        v4->sin_family = AF_INET;
        v4->sin_addr.s_addr = htonl(INADDR_ANY);
        v4->sin_port = port;
        fd = bind_socket(&ss, sizeof *v4, false);
    }
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", listen, strerror(errno));
        return NULL;
    }
    struct kz_listener *l = calloc(1, sizeof *l);
    if (!l) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    getsockname(fd, (struct sockaddr *)&bound, &blen);
    l->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    l->cfg = cfg;
    l->fd = fd;
    l->fds_max = fds_max;
    l->nofile = nofile;
    l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return l;
}

int listener_port(const struct kz_listener *l)
{
    return l->port;
}

long listener_nofile(const struct kz_listener *l)
{
    return l->nofile;
}

int listener_start(struct kz_listener *l, struct lws_vhost *vh, bool tls)
{
    lws_adopt_desc_t info;
    memset(&info, 0, sizeof info);
    info.vh = vh;
    info.type = LWS_ADOPT_RAW_FILE_DESC;
    info.fd.filefd = l->fd;
    info.vh_prot_name = listener_protocol.name;
    info.opaque = l;
    l->vh = vh;
    l->tls = tls;
    l->adopted = true; /* from here on lws closes the socket, even when adoption fails */
    l->wsi = lws_adopt_descriptor_vhost_via_info(&info);
    return l->wsi ? 0 : -1;
}

void listener_stop(struct kz_listener *l)
{
    lws_sul_cancel(&l->resume_sul);
    if (l->wsi)
        lws_rx_flow_control(l->wsi, 0);
    l->paused = true;
}

static int64_t now_ms(void)
{
    return lws_now_usecs() / 1000;
}

/* Tells a refused client why, in the protocol's error shape, and closes. Over TLS there is
 * no handshake yet to speak through: the connection is only closed. */
static void refuse(struct kz_listener *l, int fd, int reason, int status, const char *code,
                   const char *msg)
{
    static const char *const reasons[] = {"max_connections_per_address", "max_connections",
                                          "descriptors"};
    if (now_ms() - l->warned_at[reason] >= WARN_EVERY_MS) {
        l->warned_at[reason] = now_ms();
        KZ_WARN("connection_refused", "reason=%s connections=%ld files=%ld", reasons[reason],
                l->conns, l->files);
    }
    if (!l->tls) {
        /* Read what the client already sent: closing with unread bytes resets the connection,
         * and the client could lose the reply. */
        char sink[2048];
        while (recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0)
            ;
        char body[320], all[640];
        int bn = snprintf(body, sizeof body,
                          "{\"ok\":false,\"error\":{\"code\":\"%s\",\"message\":\"%s\","
                          "\"retry_after_s\":1}}",
                          code, msg);
        int n =
            snprintf(all, sizeof all,
                     "HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
                     "content-length: %d\r\nretry-after: 1\r\nconnection: close\r\n\r\n%s",
                     status, status == 429 ? "Too Many Requests" : "Service Unavailable", bn, body);
        if (send(fd, all, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) > 0)
            shutdown(fd, SHUT_WR);
    }
    close(fd);
}

static void client_addr(const struct sockaddr_storage *ss, char *out, size_t n)
{
    out[0] = '\0';
    if (ss->ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)n);
        return;
    }
    const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a)) /* a dual-stack socket: one address, one count */
        inet_ntop(AF_INET, &a->s6_addr[12], out, (socklen_t)n);
    else
        inet_ntop(AF_INET6, a, out, (socklen_t)n);
}

static void count(struct kz_listener *l, uint64_t key, int delta)
{
    intptr_t n = (intptr_t)idmap_get(&l->addrs, key) + delta;
    if (n > 0)
        idmap_put(&l->addrs, key, (void *)n);
    else
        idmap_del(&l->addrs, key);
    l->conns += delta;
}

static void admit(struct kz_listener *l, int fd, const struct sockaddr_storage *ss)
{
    char addr[STORE_ADDR_MAX + 1];
    client_addr(ss, addr, sizeof addr);
    uint64_t key = listener_addr_key(addr);
    if (l->conns >= l->cfg->max_connections) {
        refuse(l, fd, 1, 503, "unavailable",
               "the server is at its connection limit: retry in a moment");
        return;
    }
    if (l->conns + l->files >= l->fds_max) {
        refuse(l, fd, 2, 503, "unavailable",
               "the server is out of file descriptors: retry in a moment");
        return;
    }
    if ((intptr_t)idmap_get(&l->addrs, key) >= l->cfg->max_connections_per_address) {
        refuse(l, fd, 0, 429, "rate_limited", "too many connections from your address");
        return;
    }
    struct slot *s = malloc(sizeof *s);
    if (!s) {
        refuse(l, fd, 2, 503, "unavailable", "the server is short of memory: retry shortly");
        return;
    }
    s->owner = l;
    s->key = key;
    memcpy(s->addr, addr, sizeof addr);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    count(l, key, 1);
    lws_adopt_desc_t info;
    memset(&info, 0, sizeof info);
    info.vh = l->vh;
    info.type = LWS_ADOPT_SOCKET | LWS_ADOPT_HTTP | (l->tls ? LWS_ADOPT_ALLOW_SSL : 0);
    info.fd.sockfd = fd;
    info.opaque = s;
    l->adopting = s;
    l->adopting_gone = false;
    struct lws *wsi = lws_adopt_descriptor_vhost_via_info(&info);
    l->adopting = NULL;
    /* On failure lws has closed fd; it may or may not have destroyed a wsi carrying s. */
    if (!wsi && !l->adopting_gone) {
        count(l, key, -1);
        free(s);
    }
}

static void resume_cb(lws_sorted_usec_list_t *sul)
{
    struct kz_listener *l = lws_container_of(sul, struct kz_listener, resume_sul);
    if (l->spare_fd < 0)
        l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    l->paused = false;
    if (l->wsi)
        lws_rx_flow_control(l->wsi, 1);
}

static void pause_accepting(struct kz_listener *l)
{
    if (l->paused || !l->wsi)
        return;
    l->paused = true;
    lws_rx_flow_control(l->wsi, 0);
    lws_sul_schedule(lws_get_context(l->wsi), 0, &l->resume_sul, resume_cb,
                     PAUSE_MS * LWS_US_PER_MS);
}

/* EMFILE: give up the spare to take the waiting client off the queue and tell it so. */
static void shed(struct kz_listener *l)
{
    if (l->spare_fd >= 0) {
        close(l->spare_fd);
        l->spare_fd = -1;
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0)
            refuse(l, fd, 2, 503, "unavailable",
                   "the server is out of file descriptors: retry in a moment");
        l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (l->spare_fd >= 0)
            return;
    }
    if (now_ms() - l->warned_at[2] >= WARN_EVERY_MS) {
        l->warned_at[2] = now_ms();
        KZ_WARN("accept_paused", "reason=descriptors connections=%ld", l->conns);
    }
    pause_accepting(l);
}

static void accept_some(struct kz_listener *l)
{
    for (int i = 0; i < ACCEPT_BATCH && !l->paused; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            admit(l, fd, &ss);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
            continue;
        if (errno == EMFILE || errno == ENFILE)
            shed(l);
        else if (errno != EAGAIN && errno != EWOULDBLOCK)
            pause_accepting(l); /* ENOBUFS, ENOMEM: the kernel is short, let it recover */
        return;
    }
}

static int listener_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    (void)user;
    (void)in;
    (void)len;
    struct kz_listener *l = lws_get_opaque_user_data(wsi);
    if (!l)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        accept_some(l);
        return 0;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        lws_sul_cancel(&l->resume_sul);
        lws_set_opaque_user_data(wsi, NULL); /* listener_forget must not take it for a slot */
        l->wsi = NULL;
        return 0;
    default:
        return 0;
    }
}

const struct lws_protocols listener_protocol = {"kizuna-listen", listener_cb, 0, 0, 0, NULL, 0};

void listener_forget(struct kz_listener *l, struct lws *wsi)
{
    if (!l || wsi == l->wsi)
        return;
    struct slot *s = lws_get_opaque_user_data(wsi);
    if (!s)
        return;
    /* lws may have moved the connection to another vhost (see listener_owner): its slot is
     * its own listener's, whichever vhost's callback is told of its end. */
    l = s->owner;
    if (wsi == l->wsi)
        return;
    lws_set_opaque_user_data(wsi, NULL);
    if (s == l->adopting)
        l->adopting_gone = true;
    count(l, s->key, -1);
    free(s);
}

void listener_files(struct kz_listener *l, int delta)
{
    l->files += delta;
}

bool listener_foreign(const struct kz_listener *l, struct lws *wsi)
{
    const struct slot *s = lws_get_opaque_user_data(wsi);
    return s && s->owner != l;
}

const char *listener_peer(struct lws *wsi)
{
    const struct slot *s = lws_get_opaque_user_data(wsi);
    return s ? s->addr : NULL;
}

void listener_free(struct kz_listener *l)
{
    if (!l)
        return;
    if (!l->adopted)
        close(l->fd);
    if (l->spare_fd >= 0)
        close(l->spare_fd);
    idmap_free(&l->addrs);
    free(l);
}
