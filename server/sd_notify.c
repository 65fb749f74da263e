/* sd_notify.c - one datagram to $NOTIFY_SOCKET per state change, as sd_notify(3) documents the
 * protocol: libsystemd would be a dependency for a dozen lines. */
#include "sd_notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int kz_sd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return 0;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t n = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || n >= sizeof sa.sun_path)
        return -1;
    memcpy(sa.sun_path, path, n);
    /* An abstract name has no NUL after it: its length is exactly n bytes. */
    if (path[0] == '@')
        sa.sun_path[0] = '\0';
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    size_t slen = strlen(state);
    ssize_t w;
    do
        w = sendto(fd, state, slen, MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
    while (w < 0 && errno == EINTR);
    close(fd);
    return w == (ssize_t)slen ? 0 : -1;
}

int64_t kz_sd_watchdog_usec(void)
{
    const char *usec = getenv("WATCHDOG_USEC");
    if (!usec || !*usec)
        return 0;
    const char *pid = getenv("WATCHDOG_PID");
    char *end;
    if (pid && *pid) {
        long long p = strtoll(pid, &end, 10);
        if (*end || p != (long long)getpid())
            return 0;
    }
    errno = 0;
    long long us = strtoll(usec, &end, 10);
    if (errno || *end || us <= 0)
        return 0;
    return us;
}
