/* fed_sync.c - replication of shared rooms over federation links (issue 17, item 5): summaries,
 * batches of signed events, cumulative acknowledgements after commit, durable cursors.
 * (Being built: for now every frame is accepted and ignored.) */
#include "core.h"

void srv_fed_link_up(struct srv *s, const char *peer_id)
{
    (void)s;
    KZ_DEBUG("fed_sync_up", "peer=%s", peer_id);
}

void srv_fed_link_down(struct srv *s, const char *peer_id)
{
    (void)s;
    KZ_DEBUG("fed_sync_down", "peer=%s", peer_id);
}

int srv_fed_frame(struct srv *s, const char *peer_id, const char *data, size_t len, char *why,
                  size_t whylen)
{
    (void)s, (void)peer_id, (void)data, (void)len, (void)why, (void)whylen;
    return 0;
}

void srv_fed_writable(struct srv *s, const char *peer_id)
{
    (void)s, (void)peer_id;
}
