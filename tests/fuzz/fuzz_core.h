/* fuzz_core.h - the real server core (proto.c and every op) behind a fake transport, for the
 * fuzz harnesses that speak the protocol (fuzz_proto, fuzz_import). The same approach as
 * tests/unit/test_proto.c: no event loop, no sockets, a real store and worker pool.
 *
 * State: one in-memory SQLite store, created once, holding an admin, a staff member, a room
 * with a message, a notice and an invitation. Every request after setup runs in a transaction
 * that is rolled back instead of committed (after the events were signed, as at a real
 * commit), so each input sees the same database and a crash reproduces from its input alone.
 */
#ifndef KIZUNA_FUZZ_CORE_H
#define KIZUNA_FUZZ_CORE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

enum fz_caller { FZ_ANON, FZ_ADMIN, FZ_STAFF, FZ_STALE }; /* STALE: an ended/unknown session */

/* Creates the store, the core and the initial state; aborts on failure. Idempotent. */
void fz_init(void);

/* One request, as a WebSocket text frame or as POST /api/v1/<op> with a JSON body. Runs the
 * loop's duties until its one reply arrives and returns that reply (the caller owns it), after
 * checking what every reply must be: exactly one, valid UTF-8, a JSON object with "ok", an
 * error code from the protocol's list and, over HTTP, the status that goes with it. Any breach
 * aborts, which libFuzzer reports as a crash. The text "$ROOM" in body is replaced by the
 * setup room's id and "$TOKEN" by the admin's session token first. */
cJSON *fz_ws(enum fz_caller who, const char *text, size_t len);
cJSON *fz_http(enum fz_caller who, const char *op, const char *body, size_t len);

/* "ok" if the reply succeeded, else its error code. */
const char *fz_code(const cJSON *reply);

/* Prints msg and the reply text, then aborts (a finding). */
void fz_fail(const char *msg, const char *detail) __attribute__((noreturn));

#endif
