/* pushsvc.h - kzbench's push service stand-in: an HTTP server on 127.0.0.1 that answers 201 to
 * every POST, after an optional delay (a slow push service), on as many connections at once as
 * kizunad opens, and counts which endpoints it heard from. tests/support/pushsink.c is the
 * stand-in for tests (it decrypts and checks each post, one connection at a time); this one only
 * counts, so that it is never the bottleneck being measured. One stand-in per process. */
#ifndef KIZUNA_BENCH_PUSHSVC_H
#define KIZUNA_BENCH_PUSHSVC_H

#include <stdbool.h>

/* Starts it on an ephemeral loopback port, expecting posts to /push/0 .. /push/(endpoints-1);
 * every answer waits delay_ms first. Returns the port, or -1. */
int pushsvc_start(int endpoints, int delay_ms);

struct pushsvc_counts {
    int received;       /* distinct endpoints posted to at least once */
    int duplicates;     /* posts to an endpoint already posted to */
    int stray;          /* posts to any other path, and requests that were not POSTs */
    long long first_ns; /* CLOCK_MONOTONIC of the first post's arrival (0: none yet) */
    long long all_ns;   /* ... of the post that completed the set (0: not yet) */
    int max_conns;      /* most connections open at once */
};
void pushsvc_counts(struct pushsvc_counts *out);

/* Stops accepting, and waits (bounded) for the connections being served to end. */
void pushsvc_stop(void);

#endif
