/* syncgate.c - an LD_PRELOAD shim that plays a slow or failing disk for test_durable: fsync
 * and fdatasync wait while the file named by KIZUNA_SYNC_GATE exists (at most a minute), and
 * fail with EIO while the file named by KIZUNA_SYNC_FAIL exists. Everything else passes
 * through to libc. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

__attribute__((constructor)) static void syncgate_init(void)
{
    real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
}

static int syncgate_wait(void)
{
    const char *fail = getenv("KIZUNA_SYNC_FAIL");
    if (fail && access(fail, F_OK) == 0) {
        errno = EIO;
        return -1;
    }
    const char *gate = getenv("KIZUNA_SYNC_GATE");
    struct timespec ms = {0, 1000000};
    for (int i = 0; gate && i < 60000 && access(gate, F_OK) == 0; i++)
        nanosleep(&ms, NULL);
    return 0;
}

int fsync(int fd)
{
    return syncgate_wait() ? -1 : real_fsync(fd);
}

int fdatasync(int fd)
{
    return syncgate_wait() ? -1 : real_fdatasync(fd);
}
