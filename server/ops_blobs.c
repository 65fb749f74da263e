/* ops_blobs.c - blob.status: where the blobs of a room's photos stand on this server, for a
 * member whose client waits for a photo another server sent (fed_blobs.c fetches it). A client
 * shows "not here yet (37%)" or "failed its integrity check (from server S)" from this instead
 * of a bare error; GET /api/v1/blobs/ID says the same with 503 (blobs.c). */
#include "server.h"

#include <string.h>

/* One blob's entry: here, fetching, waiting or failed; unknown for a blob the caller cannot read
 * in this room (one answer for absent and forbidden, as downloads give). */
static enum kz_err status_of(struct srv_call *c, const struct store_room *room, const char *blob,
                             cJSON *o)
{
    struct store *st = srv_store(c->srv);
    bool here = false, wanted = false, readable = false;
    int64_t size = 0, uploader = 0;
    struct store_blob_want w;
    const char *state = "unknown";
    int64_t have = 0, total = 0;
    char why[200] = "";
    if (srv_blob_id_valid(blob) &&
        store_blob_in_room(st, blob, room->id, &here, &wanted) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "blob lookup failed");
    if (here && store_blob_get(st, blob, &size, &uploader) == STORE_OK &&
        (uploader == c->auth.user.id ||
         (store_blob_readable(st, blob, c->auth.user.id, &readable) == STORE_OK && readable))) {
        state = "here";
        have = total = size;
    } else if (wanted &&
               store_blob_want_readable(st, blob, c->auth.user.id, &readable) == STORE_OK &&
               readable && store_blob_want_get(st, blob, &w) == STORE_OK) {
        /* "fetching" as stored may predate a link that went down or a restart. */
        state = !strcmp(w.state, "fetching") && !srv_fed_blob_fetching(c->srv, blob) ? "waiting"
                                                                                     : w.state;
        have = w.have;
        total = w.total;
        snprintf(why, sizeof why, "%s", w.last_error);
    } else if (srv_blob_id_valid(blob) &&
               store_blob_pending_readable(st, blob, c->auth.user.id, room->id, &readable,
                                           &uploader) == STORE_OK &&
               readable) {
        /* Posted before its blob (thumbnail first): the sender's upload is where it stands. */
        if (store_upload_live(st, uploader, blob, kz_now_ms(), &have, &total) == STORE_OK) {
            state = "uploading";
        } else {
            state = "waiting";
            snprintf(why, sizeof why, "the sender's upload stopped before the end");
        }
    }
    cJSON_AddStringToObject(o, "id", blob);
    cJSON_AddStringToObject(o, "state", state);
    cJSON_AddNumberToObject(o, "have", (double)have);
    cJSON_AddNumberToObject(o, "total", (double)total);
    if (why[0])
        cJSON_AddStringToObject(o, "why", why);
    return KZ_OK;
}

enum kz_err op_blob_status(struct srv_call *c)
{
    struct store_room room;
    struct store_member me;
    enum kz_err e = srv_room_for_member(c, &room, &me);
    if (e)
        return e;
    c->result = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(c->result, "blobs");
    const cJSON *b;
    cJSON_ArrayForEach(b, srv_arg_list(c, "blobs"))
    {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, o);
        if ((e = status_of(c, &room, b->valuestring, o)) != KZ_OK)
            return e;
    }
    return KZ_OK;
}
