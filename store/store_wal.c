/* store_wal.c - the write-ahead log for a server that makes its commits durable on a thread of
 * its own (server/syncer.c): the loop's connection commits without waiting for the disk
 * (synchronous=NORMAL, no automatic checkpoints), and a second connection, used only by the
 * syncer's thread, checkpoints the log into the database file while the loop goes on.
 *
 * Why this is as safe as synchronous=FULL: a COMMIT with synchronous=NORMAL has written all of
 * its frames, commit frame included, into the -wal file before it returns; the syncer then
 * fdatasyncs that file, and nothing of the commit reaches a client before it has. A power cut
 * before the sync loses only what nobody was told about; WAL frames carry checksums and salts,
 * so recovery stops at the last whole commit (sqlite.org/wal.html). */
#include "store_internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

struct store_ckpt {
    sqlite3 *db;
};

static int on_wal(void *arg, sqlite3 *db, const char *name, int frames)
{
    struct store *st = arg;
    (void)db, (void)name;
    atomic_store_explicit(&st->wal_frames, frames, memory_order_relaxed);
    return SQLITE_OK;
}

enum store_rc store_wal_defer_sync(struct store *st)
{
    if (sqlite3_exec(st->db, "PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0;", NULL, NULL,
                     NULL) != SQLITE_OK) {
        snprintf(st->errmsg, sizeof st->errmsg, "%s", sqlite3_errmsg(st->db));
        return STORE_ERROR;
    }
    sqlite3_wal_hook(st->db, on_wal, st);
    return STORE_OK;
}

void store_wal_autocheckpoint(struct store *st, int frames)
{
    sqlite3_wal_autocheckpoint(st->db, frames); /* SQLite's own hook replaces on_wal */
}

enum store_rc store_wal_checkpoint(struct store *st)
{
    if (sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL) !=
        SQLITE_OK) {
        snprintf(st->errmsg, sizeof st->errmsg, "%s", sqlite3_errmsg(st->db));
        return STORE_ERROR;
    }
    return STORE_OK;
}

const char *store_file_path(struct store *st)
{
    const char *p = sqlite3_db_filename(st->db, "main");
    return p ? p : "";
}

int store_wal_frames(struct store *st)
{
    return atomic_load_explicit(&st->wal_frames, memory_order_relaxed);
}

struct store_ckpt *store_ckpt_open(const char *path, char *err, size_t errlen)
{
    struct store_ckpt *ck = calloc(1, sizeof *ck);
    if (!ck) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (sqlite3_open_v2(path, &ck->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(ck->db, "PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0;", NULL, NULL,
                     NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s for checkpoints: %s", path,
                 ck->db ? sqlite3_errmsg(ck->db) : "out of memory");
        store_ckpt_close(ck);
        return NULL;
    }
    return ck;
}

enum store_rc store_ckpt_run(struct store_ckpt *ck, int *log_frames, int *copied)
{
    /* PASSIVE: copies what no reader still needs and never waits for, or blocks, the loop's
     * connection; the loop's next commit starts the log over once all of it is copied. */
    int rc = sqlite3_wal_checkpoint_v2(ck->db, NULL, SQLITE_CHECKPOINT_PASSIVE, log_frames, copied);
    return rc == SQLITE_OK || rc == SQLITE_BUSY ? STORE_OK : STORE_ERROR;
}

const char *store_ckpt_errmsg(struct store_ckpt *ck)
{
    return sqlite3_errmsg(ck->db);
}

void store_ckpt_close(struct store_ckpt *ck)
{
    if (!ck)
        return;
    sqlite3_close(ck->db);
    free(ck);
}
