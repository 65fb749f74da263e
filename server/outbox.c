/* outbox.c - the core's way out to connections, in step with the disk. The loop commits
 * without waiting for fsync (syncer.c does that on its own thread), so each commit opens a
 * batch, and every reply, push, alert and close from then on queues in the newest batch until
 * the syncer reports that commit on disk. Queuing everything, reads included, keeps two
 * promises at once: no one sees what a power cut could still take back, and the frames of one
 * connection leave in the order they were made. Without outstanding batches (or without a
 * syncer) frames go straight to the transport. */
#include "core.h"
#include "metrics.h"

#include <stdlib.h>

enum out_kind { OUT_SEND, OUT_PUSH, OUT_ALERT, OUT_CLOSE, OUT_FED };

struct out_item {
    enum out_kind kind;
    uint64_t conn_id;
    int64_t user_id, pos;
    struct kz_frame *frame; /* a reference of the batch's own (NULL for a close) */
    struct srv_close close;
    const char *peer; /* OUT_FED: the peer's id, as long-lived as the core (fed_sync.c) */
};

struct out_batch {
    uint64_t seq;   /* the commit it waits for */
    double started; /* when its COMMIT was issued (kz_metrics_clock) */
    struct out_item *items;
    size_t n, cap;
    struct out_batch *next;
};

int srv_out_batch(struct srv *s, uint64_t seq, double started)
{
    struct out_batch *b = calloc(1, sizeof *b);
    if (!b)
        return -1;
    b->seq = seq;
    b->started = started;
    if (s->out_tail)
        s->out_tail->next = b;
    else
        s->out_head = b;
    s->out_tail = b;
    return 0;
}

static void item_run(struct srv *s, const struct out_item *it)
{
    switch (it->kind) {
    case OUT_SEND:
        s->tx.send(s->tx.ctx, it->conn_id, it->frame);
        break;
    case OUT_PUSH:
        s->tx.push(s->tx.ctx, it->user_id, it->pos, it->frame);
        break;
    case OUT_ALERT:
        s->tx.alert(s->tx.ctx, it->user_id, it->frame);
        break;
    case OUT_CLOSE:
        s->tx.close_conns(s->tx.ctx, &it->close);
        break;
    case OUT_FED:
        if (s->tx.fed_send && !s->tx.fed_send(s->tx.ctx, it->peer, it->frame))
            KZ_WARN("fed_frame_dropped", "peer=%s bytes=%zu", it->peer, it->frame->len);
        break;
    }
}

/* Queues it in the newest batch, or runs it now if nothing waits for the disk. */
static void out(struct srv *s, struct out_item it)
{
    struct out_batch *b = s->out_tail;
    if (b && b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        struct out_item *items = realloc(b->items, cap * sizeof *items);
        if (!items) {
            /* Cannot queue: wait for the disk here rather than send early or lose it. */
            srv_out_flush(s);
            b = NULL;
        } else {
            b->items = items;
            b->cap = cap;
        }
    }
    if (!b) {
        item_run(s, &it);
        return;
    }
    if (it.frame)
        kz_frame_ref(it.frame);
    b->items[b->n++] = it;
}

void srv_out_send(struct srv *s, uint64_t conn_id, struct kz_frame *f)
{
    out(s, (struct out_item){.kind = OUT_SEND, .conn_id = conn_id, .frame = f});
}

void srv_out_push(struct srv *s, int64_t user_id, int64_t pos, struct kz_frame *f)
{
    out(s, (struct out_item){.kind = OUT_PUSH, .user_id = user_id, .pos = pos, .frame = f});
}

void srv_out_alert(struct srv *s, int64_t user_id, struct kz_frame *f)
{
    out(s, (struct out_item){.kind = OUT_ALERT, .user_id = user_id, .frame = f});
}

void srv_out_close(struct srv *s, const struct srv_close *which)
{
    out(s, (struct out_item){.kind = OUT_CLOSE, .close = *which});
}

void srv_out_fed(struct srv *s, const char *peer, struct kz_frame *f)
{
    out(s, (struct out_item){.kind = OUT_FED, .peer = peer, .frame = f});
}

static void batch_free(struct out_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        kz_frame_unref(b->items[i].frame);
    free(b->items);
    free(b);
}

/* Sends the batches whose commits are at or before done, oldest first. */
static void release_upto(struct srv *s, uint64_t done)
{
    struct out_batch *b;
    while ((b = s->out_head) && b->seq <= done) {
        /* Unlinked first: a transport callback that queues more (none does today) would then
         * queue behind the next batch, or go straight out, never into this one. */
        s->out_head = b->next;
        if (!s->out_head)
            s->out_tail = NULL;
        /* Observed when the loop learns the commit is on disk: what its clients waited. */
        kz_hist_observe(&kz_metrics.commit_seconds, kz_metrics_clock() - b->started);
        for (size_t i = 0; i < b->n; i++)
            item_run(s, &b->items[i]);
        batch_free(b);
    }
}

void srv_out_release(struct srv *s)
{
    if (s->out_head && s->syncer)
        release_upto(s, kz_syncer_done(s->syncer));
}

void srv_out_flush(struct srv *s)
{
    if (!s->out_tail)
        return;
    if (s->syncer)
        kz_syncer_wait(s->syncer, s->out_tail->seq);
    release_upto(s, s->out_tail->seq);
}

void srv_out_free(struct srv *s)
{
    while (s->out_head) {
        struct out_batch *b = s->out_head;
        s->out_head = b->next;
        batch_free(b);
    }
    s->out_tail = NULL;
}
