/* kzclient.h - a small blocking client for Kizuna's protocol over WebSocket, on libwebsockets.
 * The kizuna CLI uses it, and so can tests and the load generator. One struct kzc is one
 * connection with its own lws context; use it from one thread. */
#ifndef KIZUNA_KZCLIENT_H
#define KIZUNA_KZCLIENT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

struct kzc;

/* Connects to a server given as http://HOST:PORT (or https://, ws://, wss://). Returns NULL
 * and a message in err if it cannot be reached within timeout_ms. The caller owns the result
 * and releases it with kzc_close(). */
struct kzc *kzc_connect(const char *url, int timeout_ms, char *err, size_t errlen);

/* Sends {"id":N,"op":op,...args} and waits for its reply. args is consumed (may be NULL).
 * Returns the reply object (owned by the caller; check its "ok" field), or NULL if the
 * connection failed or timed out (message in kzc_error()). Events that arrive meanwhile are
 * kept for kzc_next_event(). */
cJSON *kzc_call(struct kzc *c, const char *op, cJSON *args, int timeout_ms);

/* The next server-pushed event, waiting up to timeout_ms; NULL if none came or the connection
 * closed. The caller owns the result. */
cJSON *kzc_next_event(struct kzc *c, int timeout_ms);

/* True once the server has closed the connection; *code and reason (if non-NULL) receive the
 * close frame's status and text. */
bool kzc_closed(const struct kzc *c, int *code, char *reason, size_t reasonlen);

const char *kzc_error(const struct kzc *c);
void kzc_close(struct kzc *c);

#endif
