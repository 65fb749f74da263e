/* commit.c - the commit path. Requests of one loop turn share one transaction; the loop
 * commits it at the end of the turn (srv_commit_async) or, while the sync thread is still
 * writing the previous commit, keeps it open to gather more (group commit) and commits it when
 * the thread wakes the loop (srv_release). What a commit releases (held replies, events,
 * pushes) goes to the outbox, which sends it once the commit is on disk (outbox.c, syncer.c).
 * A commit that fails answers every held request with an error and makes connections resync;
 * a full disk refuses writes for a while (srv_writes_block). */
#include "core.h"
#include "metrics.h"

#include <stdlib.h>

void srv_set_syncer(struct srv *s, struct kz_syncer *y)
{
    s->syncer = y;
}

void srv_tick(struct srv *s)
{
    s->tick_scheduled = false;
    /* Markers are pushed only once they are committed (and, through the outbox, on disk): a
     * commit that waits for the syncer pushes them when it is made (srv_release). */
    srv_commit_async(s);
    if (s->commit_waiting)
        s->reads_waiting = true;
    else
        srv_reads_push(s);
}

bool srv_writes_blocked(struct srv *s)
{
    return s->writes_blocked_until && kz_now_ms() < s->writes_blocked_until;
}

void srv_writes_block(struct srv *s)
{
    s->writes_blocked_until = kz_now_ms() + s->cfg->disk_retry_ms;
    if (!s->disk_alarm)
        KZ_ERROR("disk_alarm",
                 "writes refused: the disk is full or read-only (%s); reads go "
                 "on, writes are retried every %lld ms",
                 store_errmsg(s->store), s->cfg->disk_retry_ms);
    s->disk_alarm = true;
}

void srv_note_subscribe(struct srv *s, uint64_t conn_id)
{
    if (!store_tx_is_open(s->store))
        return;
    if (s->nsubs == s->capsubs) {
        size_t cap = s->capsubs ? s->capsubs * 2 : 16;
        uint64_t *subs = realloc(s->subs, cap * sizeof *subs);
        if (!subs) {
            s->nsubs = 0; /* cannot track: a failed commit then closes everyone, as before */
            return;
        }
        s->subs = subs;
        s->capsubs = cap;
    }
    s->subs[s->nsubs++] = conn_id;
}

static bool commit_now(struct srv *s);

bool srv_commit(struct srv *s)
{
    uint64_t before = s->commit_seq;
    bool ok = commit_now(s);
    if (s->commit_seq != before)
        srv_out_flush(s); /* only this call's commit must be on disk when it returns */
    return ok;
}

void srv_flush(struct srv *s)
{
    commit_now(s);
    srv_out_flush(s);
}

bool srv_commit_async(struct srv *s)
{
    /* Group commit: while the syncer is still writing the last commit, this transaction stays
     * open and gathers the next requests; srv_release commits it as soon as the syncer is done.
     * So commits grow with the load and each sync carries all that arrived meanwhile. */
    if (s->syncer && !s->doomed && store_tx_is_open(s->store) &&
        kz_syncer_done(s->syncer) < s->commit_seq) {
        s->commit_waiting = true;
        return true;
    }
    return commit_now(s);
}

void srv_release(struct srv *s)
{
    if (!s->syncer)
        return;
    srv_out_release(s);
    if (s->commit_waiting && kz_syncer_done(s->syncer) >= s->commit_seq) {
        commit_now(s);
        if (s->reads_waiting) {
            s->reads_waiting = false;
            srv_reads_push(s);
        }
    }
}

static bool commit_now(struct srv *s)
{
    s->commit_waiting = false;
    bool ok = true, disk = false, committed = false;
    KZ_DEBUG("commit", "open=%d events=%zu", store_tx_is_open(s->store), s->npending);
    double t0 = kz_metrics_clock();
    if (s->doomed) {
        store_tx_rollback(s->store);
        s->doomed = false;
        disk = s->doomed_by_disk;
        s->doomed_by_disk = false;
        ok = false;
        KZ_ERROR("commit_refused", "reason=\"an op failed after writing\"");
    } else if (store_tx_is_open(s->store) &&
               (committed = true,
                srv_events_checkpoint(s) != KZ_OK || store_tx_commit(s->store) != STORE_OK)) {
        disk = store_disk_error(s->store);
        store_tx_rollback(s->store);
        ok = false;
        KZ_ERROR("commit_failed", "error=\"%s\"", store_errmsg(s->store));
        if (disk)
            srv_writes_block(s);
    } else if (s->disk_alarm && !srv_writes_blocked(s)) {
        KZ_INFO("disk_recovered", "writes accepted again");
        s->disk_alarm = false;
    }
    if (committed || !ok)
        *(ok ? &s->commit_ok_at : &s->commit_failed_at) = kz_now_ms();
    if (!ok)
        kz_metrics.commit_failures++;
    if (ok && committed) {
        uint64_t answered = 0;
        for (const struct held *h = s->held_head; h; h = h->next)
            answered++;
        kz_hist_observe(&kz_metrics.commit_requests, (double)answered);
        kz_metrics.events_committed += s->npending;
        /* Without the sync thread the COMMIT itself waited for the disk; with it, the commit
         * is on disk when the outbox releases its batch (outbox.c observes it there). */
        if (!s->syncer)
            kz_hist_observe(&kz_metrics.commit_seconds, kz_metrics_clock() - t0);
    }
    if (ok && committed && s->syncer && kz_syncer_take_checkpoint(s->syncer) &&
        store_wal_checkpoint(s->store) != STORE_OK)
        KZ_WARN("checkpoint_failed", "error=\"%s\"", store_errmsg(s->store));
    if (ok && committed && s->syncer) {
        /* What this commit releases waits for the disk (outbox.c); without memory for that,
         * wait for the disk now. */
        if (srv_out_batch(s, ++s->commit_seq, t0) == 0)
            kz_syncer_request(s->syncer, s->commit_seq);
        else {
            kz_syncer_request(s->syncer, s->commit_seq);
            kz_syncer_wait(s->syncer, s->commit_seq);
            kz_hist_observe(&kz_metrics.commit_seconds, kz_metrics_clock() - t0);
        }
    }
    struct held *h = s->held_head;
    s->held_head = s->held_tail = NULL;
    /* Replies first, then events: a sender sees its acknowledgement before its own echo. */
    while (h) {
        struct held *next = h->next;
        if (ok) {
            srv_out_send(s, h->conn_id, h->frame);
        } else {
            if (disk)
                srv_send_error_to(s, h->conn_id, h->id, h->is_http, KZ_UNAVAILABLE,
                                  "the server's disk is full or read-only: nothing was "
                                  "written; retry later",
                                  (s->cfg->disk_retry_ms + 999) / 1000);
            else
                srv_send_error_to(s, h->conn_id, h->id, h->is_http, KZ_INTERNAL,
                                  "the write could not be committed", 0);
        }
        kz_frame_unref(h->frame);
        cJSON_Delete(h->id);
        free(h);
        h = next;
    }
    if (ok)
        srv_events_deliver(s);
    srv_fed_after_commit(s, ok); /* peers, too, only get what is committed */
    if (!ok) {
        /* Positions of the lost transaction will be handed out again: every live connection
         * must resync rather than trust what it was sent. */
        srv_events_forget(s);
        if (disk) {
            /* Nothing was delivered from the lost transaction; only connections that went
             * live inside it hold a position that may be handed out again. */
            for (size_t i = 0; i < s->nsubs; i++) {
                struct srv_close one = {.conn_id = s->subs[i],
                                        .reason = "server cannot write: reconnect and resume"};
                srv_out_close(s, &one);
            }
        } else {
            struct srv_close all = {.reason = "server error: reconnect and resume"};
            srv_out_close(s, &all);
        }
    }
    s->nsubs = 0;
    return ok;
}
