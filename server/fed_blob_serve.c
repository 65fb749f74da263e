/* fed_blob_serve.c - answering other servers' blob.get (docs/protocol.md, "Blobs across
 * servers"): a part only for a blob complete here, referenced by an event of the named room, to
 * an admitted member server of that room; the same blob.none for everything else, so an id
 * alone never says that a blob exists. An answer waits while the event pump has anything for
 * the asking peer (srv_fed_pump_idle: parts never delay events) and keeps to
 * federation_blob_bytes_per_s, whatever the asker does. A blob file shorter than its row says
 * (a damaged disk) is said, never sent short; damaged bytes are the asker's hash check's to
 * find. fed_blobs.c pulls; fed_blobs_int.h has what the two share. */
#include "event_format.h"
#include "fed_blobs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool room_id_valid(const char *r)
{
    size_t n = strlen(r);
    if (n == 0 || n > STORE_ROOM_ID_MAX)
        return false;
    for (; *r; r++)
        if (!((*r >= 'a' && *r <= 'z') || (*r >= 'A' && *r <= 'Z') || (*r >= '0' && *r <= '9') ||
              *r == '-' || *r == '_'))
            return false;
    return true;
}

static void none_send(struct srv *s, struct fb_link *l, const char *blob, const char *why)
{
    KZ_INFO("blob_serve_none", "peer=%s blob=%s why=\"%s\"", l->peer, blob, why);
    char text[400];
    int n = snprintf(text, sizeof text, "{\"t\":\"blob.none\",\"id\":\"%s\",\"why\":\"%s\"}", blob,
                     why);
    if (n > 0 && (size_t)n < sizeof text)
        fb_send_text(s, l, text, (size_t)n);
}

/* Answers r; the blob bytes it sent. */
static int64_t serve_now(struct srv *s, struct fb_link *l, const struct fb_serve *r)
{
    int64_t size = 0;
    enum store_rc rc = store_blob_servable(s->store, r->blob, r->room_id, l->peer, &size);
    if (rc != STORE_OK) {
        none_send(s, l, r->blob, rc == STORE_NOT_FOUND ? "not here" : "unavailable");
        return 0;
    }
    if (r->offset >= size) {
        none_send(s, l, r->blob, "the offset is past its end");
        return 0;
    }
    int64_t len = r->length < size - r->offset ? r->length : size - r->offset;
    if (len > fb_part_max(s))
        len = fb_part_max(s);
    char path[4200];
    srv_blob_path(s, r->blob, path, sizeof path);
    uint8_t *buf = malloc((size_t)len);
    size_t b64 = sodium_base64_ENCODED_LEN((size_t)len, sodium_base64_VARIANT_ORIGINAL);
    char *text = buf ? malloc(FRAME_OVERHEAD + b64) : NULL;
    int fd = text ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    ssize_t got = fd >= 0 ? pread(fd, buf, (size_t)len, r->offset) : -1;
    if (fd >= 0)
        close(fd);
    if (got != (ssize_t)len) {
        /* A blob file shorter than its row says (damaged on disk): said, never sent short. */
        KZ_ERROR("blob_serve_io", "blob=%s peer=%s offset=%lld error=\"%s\"", r->blob, l->peer,
                 (long long)r->offset, got < 0 ? strerror(errno) : "short file");
        none_send(s, l, r->blob, "unreadable here");
        len = 0;
    } else {
        int h = snprintf(text, FRAME_OVERHEAD,
                         "{\"t\":\"blob.part\",\"id\":\"%s\",\"offset\":%lld,\"total\":%lld,"
                         "\"data\":\"",
                         r->blob, (long long)r->offset, (long long)size);
        sodium_bin2base64(text + h, b64, buf, (size_t)len, sodium_base64_VARIANT_ORIGINAL);
        size_t tl = (size_t)h + strlen(text + h);
        memcpy(text + tl, "\"}", 3);
        fb_send_text(s, l, text, tl + 2);
    }
    free(text);
    free(buf);
    return len;
}

/* Answers l's waiting blob.get once the peer's event pump is idle and the cap allows: the
 * server holds its side of the link to federation_blob_bytes_per_s too, whatever the asker
 * does. */
static void serve_try(struct srv *s, struct fb_link *l)
{
    int64_t now = kz_now_ms(), rate = s->cfg->federation_blob_bytes_per_s;
    if (!l->serve.pending || !srv_fed_pump_idle(s, l->peer))
        return;
    if (l->serve_at > now) {
        fb_arm(s);
        return;
    }
    struct fb_serve r = l->serve;
    l->serve.pending = false;
    int64_t n = serve_now(s, l, &r);
    if (rate > 0 && n > 0)
        l->serve_at = (l->serve_at > now ? l->serve_at : now) + n * 1000 / rate;
}

/* blob.get {id, room, offset, length}. */
int fb_get_in(struct srv *s, struct fb_link *l, const cJSON *jf, char *why, size_t n)
{
    const char *id = fb_jstr(jf, "id"), *room = fb_jstr(jf, "room");
    int64_t offset, length;
    if (!id || !srv_blob_id_valid(id) || !room || !room_id_valid(room) ||
        !fb_jnum(jf, "offset", 0, s->cfg->blob_max_bytes, &offset) ||
        !fb_jnum(jf, "length", 1, KZ_EVENT_INT_MAX, &length))
        return fb_bad(why, n, "a blob.get names a blob id, a room, an offset and a length");
    /* One request per link: a second replaces the first (a well-behaved asker waits). Events
     * first: the answer waits while the event pump has anything for this peer. */
    l->serve = (struct fb_serve){.pending = true, .offset = offset, .length = length};
    snprintf(l->serve.blob, sizeof l->serve.blob, "%s", id);
    snprintf(l->serve.room_id, sizeof l->serve.room_id, "%s", room);
    serve_try(s, l);
    return 0;
}

/* Answers the blob.get each link holds once its event pump has nothing to send. */
void fb_serve_waiting(struct srv *s)
{
    for (struct fb_link *l = s->fb ? s->fb->links : NULL; l; l = l->next)
        serve_try(s, l);
}

void srv_fed_blobs_idle(struct srv *s, const char *peer)
{
    struct fed_blobs *fb = s->fb;
    for (struct fb_link *l = fb ? fb->links : NULL; l; l = l->next)
        if (!strcmp(l->peer, peer))
            serve_try(s, l);
}
