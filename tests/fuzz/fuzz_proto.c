/* fuzz_proto.c - the protocol request parser and the command dispatch, with every op behind
 * it, through both transports' entry points (srv_handle_ws_text, srv_handle_http).
 *
 * Input: one mode byte, then the request. The mode's value modulo 8 picks the transport (odd:
 * HTTP) and the caller ((mode >> 1) & 3: anonymous, admin, staff member, ended session), so
 * the seeds read as text: '2' is a WebSocket frame from the admin, '5' an HTTP request from
 * the staff member. For WebSocket the rest is the frame; for HTTP it is the op name (the
 * part of the path after /api/v1/), a newline, and the body. "$ROOM" stands for the id of
 * the room created at setup and "$TOKEN" for the admin's session token (fuzz_core.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_init();
    if (size < 1)
        return 0;
    int mode = data[0] % 8;
    enum fz_caller who = (enum fz_caller)((mode >> 1) & 3);
    const char *rest = (const char *)data + 1;
    size_t len = size - 1;
    cJSON *r;
    if (mode & 1) {
        /* The transport takes the op from the URI: a C string, at most a path's length. */
        const char *nl = memchr(rest, '\n', len);
        size_t oplen = nl ? (size_t)(nl - rest) : len;
        char op[256];
        if (oplen >= sizeof op)
            oplen = sizeof op - 1;
        memcpy(op, rest, oplen);
        op[oplen] = '\0';
        const char *body = nl ? nl + 1 : rest + len;
        r = fz_http(who, op, body, len - (size_t)(body - rest));
    } else {
        r = fz_ws(who, rest, len);
    }
    cJSON_Delete(r);
    return 0;
}
