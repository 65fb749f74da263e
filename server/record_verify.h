/* record_verify.h - checking a JSON Lines record against the signed event logs it carries
 * (record_verify.c; `kizunad verify-record`, docs/records.md). */
#ifndef KIZUNA_RECORD_VERIFY_H
#define KIZUNA_RECORD_VERIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Where the servers' signing keys come from when the record's header is not to be trusted: key
 * writes the 32-byte Ed25519 key of server origin into pk, false if it knows none. */
struct kz_record_trust {
    bool (*key)(void *ctx, const char *origin, uint8_t pk[32]);
    void *ctx;
};

struct kz_record_verify_stats {
    int64_t rows, events, signatures;
};

/* Reads a record (a header line, rows and proof lines) from in and checks it, writing each
 * problem as a line to report (the first 50). trust NULL takes the header's keys. Returns the
 * number of problems: 0 is a record whose every row is an event of its server, unaltered, in
 * the room's order, covered by a signature. stats (may be NULL) receives what was checked. */
int kz_record_verify(FILE *in, const struct kz_record_trust *trust, FILE *report,
                     struct kz_record_verify_stats *stats);

#endif
