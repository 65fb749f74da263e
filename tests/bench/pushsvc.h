/* pushsvc.h - kzbench's push service (or mail relay) stand-in: an HTTP server on 127.0.0.1
 * that answers 201 to every POST, or a plain SMTP server that takes every message, after an
 * optional delay (a slow service), on as many connections at once as kizunad opens, and counts
 * which endpoints (or recipients) it heard from. tests/support/pushsink.c and smtpsink.c are the
 * stand-ins for tests (they decrypt, parse and keep what arrives, one connection at a time);
 * this one only counts, so that it is never the bottleneck being measured. One per process. */
#ifndef KIZUNA_BENCH_PUSHSVC_H
#define KIZUNA_BENCH_PUSHSVC_H

#include <stdbool.h>

/* Starts it on an ephemeral loopback port, expecting posts to /push/0 .. /push/(endpoints-1),
 * or with smtp, messages to u0@.. u(endpoints-1)@ (any domain); every answer to a post or to a
 * message's data waits delay_ms first. Returns the port, or -1. */
int pushsvc_start(int endpoints, int delay_ms, bool smtp);

struct pushsvc_counts {
    int received;       /* distinct endpoints posted (or mailed) to at least once */
    int duplicates;     /* posts (messages) to an endpoint already reached */
    int stray;          /* posts to any other path or address, requests that were not POSTs */
    long long first_ns; /* CLOCK_MONOTONIC of the first post's arrival (0: none yet) */
    long long all_ns;   /* ... of the post that completed the set (0: not yet) */
    int max_conns;      /* most connections open at once */
};
void pushsvc_counts(struct pushsvc_counts *out);

/* Stops accepting, and waits (bounded) for the connections being served to end. */
void pushsvc_stop(void);

#endif
