/* syncer.c - the commit pipeline's writer thread. The event loop commits without waiting for
 * the disk (store_wal_defer_sync) and goes on reading requests; this thread fdatasyncs the
 * write-ahead log behind it, one sync for every commit made meanwhile, and wakes the loop,
 * which then releases the replies and deliveries those commits held (outbox.c). A second
 * thread checkpoints the log into the database, so the next sync never waits for that (a
 * checkpoint copies pages and syncs the database file: milliseconds).
 *
 * The log starts over only when a write transaction begins with all of it copied, and the
 * loop's next transaction has always begun before a checkpoint on another connection ends: left
 * to the checkpoint thread alone, the log grew without end (262 MB in 8 s of the rooms
 * benchmark). So the thread copies the bulk, and then the loop, right after its next commit,
 * copies the few pages written meanwhile itself (kz_syncer_take_checkpoint); the transaction
 * after that starts the log over.
 *
 * A failed fdatasync ends the process: the kernel may have dropped the pages it could not
 * write, and retrying would report as durable what is not (the "fsyncgate" lesson, which
 * PostgreSQL also answers with a stop). Nothing of the failed commits was acknowledged, and the
 * restart recovers whatever of them did reach the disk, exactly as after a kill -9. */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct kz_syncer {
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* the loop asked for a sync, or stop */
    pthread_cond_t done_cv; /* a sync finished (kz_syncer_wait) */
    pthread_cond_t ckpt_cv; /* the log has grown: checkpoint (the second thread) */
    bool ckpt_wanted;       /* the sync thread found the log long: the thread copies the bulk */
    bool ckpt_finish;       /* ... and has: the loop copies the rest (kz_syncer_take_checkpoint) */
    uint64_t requested;     /* the newest commit the loop wants on disk */
    uint64_t done;          /* every commit up to here is on disk */
    bool stopping;
    struct store *store; /* only store_wal_frames() from this thread: it is atomic */
    struct store_ckpt *ckpt;
    int ckpt_frames; /* checkpoint once the log holds this many frames */
    int ckpt_mark;   /* the log's length at the last pass (0 after it started over) */
    char wal_path[4096];
    int wal_fd;
    dev_t wal_dev;
    ino_t wal_ino;
    void (*wake)(void *);
    void *wake_arg;
    pthread_t thread, ckpt_thread;
    bool ckpt_running;
};

/* (Re)opens the -wal file. SQLite keeps the same file for the life of its connection, but if
 * it were ever replaced, a sync of the old one would prove nothing about the new. */
static int wal_open(struct kz_syncer *y)
{
    struct stat st;
    if (y->wal_fd >= 0 && stat(y->wal_path, &st) == 0 && st.st_dev == y->wal_dev &&
        st.st_ino == y->wal_ino)
        return 0;
    if (y->wal_fd >= 0)
        close(y->wal_fd);
    y->wal_fd = open(y->wal_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (y->wal_fd < 0 || fstat(y->wal_fd, &st) != 0)
        return -1;
    y->wal_dev = st.st_dev;
    y->wal_ino = st.st_ino;
    return 0;
}

static void checkpoint(struct kz_syncer *y)
{
    int frames = 0, copied = 0;
    int64_t t0 = kz_now_ms();
    if (store_ckpt_run(y->ckpt, &frames, &copied) != STORE_OK)
        KZ_WARN("checkpoint_failed", "error=\"%s\"", store_ckpt_errmsg(y->ckpt));
    else
        KZ_DEBUG("checkpoint", "frames=%d copied=%d ms=%lld", frames, copied,
                 (long long)(kz_now_ms() - t0));
}

static void *syncer_main(void *arg)
{
    struct kz_syncer *y = arg;
    pthread_mutex_lock(&y->mu);
    for (;;) {
        while (y->done == y->requested && !y->stopping)
            pthread_cond_wait(&y->work_cv, &y->mu);
        if (y->done == y->requested)
            break; /* stopping, and everything asked for is on disk */
        uint64_t target = y->requested;
        pthread_mutex_unlock(&y->mu);
        /* Everything the loop committed before it asked for target is in the file now. */
        if (wal_open(y) != 0 || fdatasync(y->wal_fd) != 0) {
            KZ_ERROR("sync_failed",
                     "error=\"%s\" file=%s: the disk may have lost committed data; "
                     "stopping so that a restart recovers what is really on it",
                     strerror(errno), y->wal_path);
            _exit(EXIT_FAILURE);
        }
        pthread_mutex_lock(&y->mu);
        y->done = target;
        pthread_cond_broadcast(&y->done_cv);
        /* Under the lock: kz_syncer_unhook may be taking the loop away right now. */
        if (y->wake)
            y->wake(y->wake_arg);
        /* A pass per ckpt_frames frames of growth, not one per sync while the log is long: a
         * pass holds a read lock, and one running when the loop's next commit comes would keep
         * the log from starting over. */
        int frames = store_wal_frames(y->store);
        if (frames < y->ckpt_mark)
            y->ckpt_mark = 0; /* the log started over */
        if (frames >= y->ckpt_mark + y->ckpt_frames && !y->ckpt_wanted && !y->ckpt_finish) {
            y->ckpt_wanted = true;
            y->ckpt_mark = frames;
            pthread_cond_signal(&y->ckpt_cv);
        }
    }
    pthread_mutex_unlock(&y->mu);
    return NULL;
}

static void *ckpt_main(void *arg)
{
    struct kz_syncer *y = arg;
    pthread_mutex_lock(&y->mu);
    for (;;) {
        while (!y->ckpt_wanted && !y->stopping)
            pthread_cond_wait(&y->ckpt_cv, &y->mu);
        if (y->stopping)
            break;
        pthread_mutex_unlock(&y->mu);
        checkpoint(y);
        pthread_mutex_lock(&y->mu);
        y->ckpt_wanted = false;
        y->ckpt_finish = true;
    }
    pthread_mutex_unlock(&y->mu);
    return NULL;
}

/* Frees what kz_syncer_start made; the threads are not running. */
static void syncer_free(struct kz_syncer *y)
{
    store_ckpt_close(y->ckpt);
    if (y->wal_fd >= 0)
        close(y->wal_fd);
    pthread_mutex_destroy(&y->mu);
    pthread_cond_destroy(&y->work_cv);
    pthread_cond_destroy(&y->done_cv);
    pthread_cond_destroy(&y->ckpt_cv);
    free(y);
}

struct kz_syncer *kz_syncer_start(struct store *st, int checkpoint_frames, void (*wake)(void *),
                                  void *wake_arg, char *err, size_t errlen)
{
    struct kz_syncer *y = calloc(1, sizeof *y);
    if (!y) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    y->store = st;
    y->ckpt_frames = checkpoint_frames;
    y->wake = wake;
    y->wake_arg = wake_arg;
    y->wal_fd = -1;
    snprintf(y->wal_path, sizeof y->wal_path, "%s-wal", store_file_path(st));
    pthread_mutex_init(&y->mu, NULL);
    pthread_cond_init(&y->work_cv, NULL);
    pthread_cond_init(&y->done_cv, NULL);
    pthread_cond_init(&y->ckpt_cv, NULL);
    if (!(y->ckpt = store_ckpt_open(store_file_path(st), err, errlen)))
        goto fail;
    if (wal_open(y) != 0) {
        snprintf(err, errlen, "cannot open %s: %s", y->wal_path, strerror(errno));
        goto fail;
    }
    /* Only now: a failure above leaves the store syncing every commit itself, as before. */
    if (store_wal_defer_sync(st) != STORE_OK) {
        snprintf(err, errlen, "cannot defer syncs: %s", store_errmsg(st));
        goto fail;
    }
    if (pthread_create(&y->thread, NULL, syncer_main, y) != 0) {
        snprintf(err, errlen, "cannot start the sync thread");
        goto fail;
    }
    if (pthread_create(&y->ckpt_thread, NULL, ckpt_main, y) != 0) {
        /* Syncs go on without checkpoints: say so, and let the store checkpoint itself. */
        KZ_WARN("checkpoint_thread", "cannot start it: the log is checkpointed at commits");
        store_wal_autocheckpoint(st, y->ckpt_frames);
    } else {
        y->ckpt_running = true;
    }
    return y;
fail:
    syncer_free(y);
    return NULL;
}

void kz_syncer_request(struct kz_syncer *y, uint64_t seq)
{
    pthread_mutex_lock(&y->mu);
    if (seq > y->requested) {
        y->requested = seq;
        pthread_cond_signal(&y->work_cv);
    }
    pthread_mutex_unlock(&y->mu);
}

uint64_t kz_syncer_done(struct kz_syncer *y)
{
    pthread_mutex_lock(&y->mu);
    uint64_t done = y->done;
    pthread_mutex_unlock(&y->mu);
    return done;
}

bool kz_syncer_take_checkpoint(struct kz_syncer *y)
{
    pthread_mutex_lock(&y->mu);
    bool due = y->ckpt_finish;
    y->ckpt_finish = false;
    pthread_mutex_unlock(&y->mu);
    return due;
}

void kz_syncer_wait(struct kz_syncer *y, uint64_t seq)
{
    pthread_mutex_lock(&y->mu);
    while (y->done < seq)
        pthread_cond_wait(&y->done_cv, &y->mu);
    pthread_mutex_unlock(&y->mu);
}

void kz_syncer_unhook(struct kz_syncer *y)
{
    if (!y)
        return;
    pthread_mutex_lock(&y->mu);
    y->wake = NULL;
    pthread_mutex_unlock(&y->mu);
}

void kz_syncer_stop(struct kz_syncer *y)
{
    if (!y)
        return;
    pthread_mutex_lock(&y->mu);
    y->stopping = true;
    pthread_cond_signal(&y->work_cv);
    pthread_cond_signal(&y->ckpt_cv);
    pthread_mutex_unlock(&y->mu);
    pthread_join(y->thread, NULL);
    if (y->ckpt_running)
        pthread_join(y->ckpt_thread, NULL);
    syncer_free(y);
}
