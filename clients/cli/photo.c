/* photo.c - `photo list` and `photo get`: read a room's encrypted photos. Every command that
 * reads a room also answers other devices' key requests (room.c). A decrypted image reaches
 * the disk only when the user names a file with -o; the downloaded ciphertext waits in
 * staging/dl-BLOB.kzb (resumable with Range) and goes once the photo is decrypted. */
#include "e2ee.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static long long num_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? (long long)v->valuedouble : 0;
}

/* Connects, registers this device, resolves ROOM and reads it. On EXIT_OK the caller frees
 * rv, wipes *me and closes *c. */
static int open_room(const char *want, struct kzc **c, struct ks_device *me, struct room_view *rv)
{
    struct session s;
    int rc = connect_device(c, &s, me);
    if (rc != EXIT_OK)
        return rc;
    char room_id[ROOM_ID_MAX];
    if ((rc = resolve_room(*c, want, room_id, NULL, 0)) == EXIT_OK &&
        (rc = rv_load(*c, me, room_id, rv)) == EXIT_OK && (rc = rv_answer_requests(rv)) != EXIT_OK)
        rv_free(rv);
    if (rc != EXIT_OK) {
        ks_device_wipe(me);
        kzc_close(*c);
    }
    return rc;
}

static const char *state_name(enum photo_state s)
{
    switch (s) {
    case PHOTO_READY:
        return "ready";
    case PHOTO_WAITING:
        return "waiting";
    case PHOTO_WITHHELD:
        return "withheld";
    default:
        return "integrity_failure";
    }
}

/* The thumbnail's byte count (it travels base64url inside the message). */
static size_t thumb_bytes(const cJSON *msg)
{
    uint8_t *t;
    size_t n = 0;
    if (!unb64url(cli_str(msg, "thumb", "jpeg"), &t, &n))
        return 0;
    free(t);
    return n;
}

/* One photo as JSON for --json (the caller deletes it). */
static cJSON *photo_to_json(const cJSON *ev, const struct photo_view *pv)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "pos", (double)num_of(ev, "pos"));
    cJSON_AddStringToObject(o, "sender", cli_str(ev, "sender", NULL));
    cJSON_AddStringToObject(o, "device", pv->device);
    cJSON_AddNumberToObject(o, "ts", (double)num_of(ev, "ts"));
    cJSON_AddStringToObject(o, "state", state_name(pv->state));
    cJSON_AddStringToObject(o, "detail", pv->detail);
    if (pv->warning[0])
        cJSON_AddStringToObject(o, "warning", pv->warning);
    cJSON_AddStringToObject(o, "epoch", pv->epoch);
    if (pv->state == PHOTO_WAITING) { /* whose key it waits for, and where that device lives */
        cJSON *from = cJSON_AddObjectToObject(o, "key_from");
        cJSON_AddStringToObject(from, "device", pv->device);
        cJSON_AddStringToObject(from, "server", pv->server);
    }
    if (pv->state != PHOTO_READY)
        return o;
    const cJSON *m = pv->msg;
    cJSON_AddStringToObject(o, "caption", cli_str(m, "caption", NULL));
    cJSON_AddItemToObject(o, "captured_at",
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(m, "captured_at"), 1));
    cJSON_AddItemToObject(o, "gps", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(m, "gps"), 1));
    cJSON_AddStringToObject(o, "file_name", cli_str(m, "file_name", NULL));
    cJSON *th = cJSON_AddObjectToObject(o, "thumb");
    cJSON_AddNumberToObject(th, "w", (double)num_of(cJSON_GetObjectItem(m, "thumb"), "w"));
    cJSON_AddNumberToObject(th, "h", (double)num_of(cJSON_GetObjectItem(m, "thumb"), "h"));
    cJSON_AddNumberToObject(th, "bytes", (double)thumb_bytes(m));
    const cJSON *img = cJSON_GetObjectItemCaseSensitive(m, "image");
    cJSON *im = cJSON_AddObjectToObject(o, "image");
    cJSON_AddStringToObject(im, "blob", cli_str(img, "blob", NULL));
    cJSON_AddNumberToObject(im, "len", (double)num_of(img, "len"));
    cJSON_AddNumberToObject(im, "w", (double)num_of(img, "w"));
    cJSON_AddNumberToObject(im, "h", (double)num_of(img, "h"));
    return o;
}

static void print_photo(const cJSON *ev, const struct photo_view *pv)
{
    char when[32];
    cli_format_time((double)num_of(ev, "ts"), when, sizeof when);
    printf("#%lld %s %s: %s\n", num_of(ev, "pos"), when, cli_str(ev, "sender", NULL), pv->detail);
    if (pv->warning[0])
        printf("    warning: %s\n", pv->warning);
    if (pv->state != PHOTO_READY)
        return;
    const cJSON *m = pv->msg;
    const cJSON *gps = cJSON_GetObjectItemCaseSensitive(m, "gps");
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(m, "thumb");
    const cJSON *img = cJSON_GetObjectItemCaseSensitive(m, "image");
    printf("    caption: %s\n", cli_str(m, "caption", NULL));
    printf("    captured: %s\n",
           *cli_str(m, "captured_at", NULL) ? cli_str(m, "captured_at", NULL) : "-");
    if (cJSON_IsObject(gps))
        printf("    GPS: %.6f,%.6f\n", cJSON_GetObjectItem(gps, "lat")->valuedouble,
               cJSON_GetObjectItem(gps, "lon")->valuedouble);
    else
        printf("    GPS: -\n");
    printf("    thumbnail: %lldx%lld, %zu bytes; image: %lldx%lld, %lld bytes\n", num_of(th, "w"),
           num_of(th, "h"), thumb_bytes(m), num_of(img, "w"), num_of(img, "h"), num_of(img, "len"));
}

/* have of total as a whole percentage, 0 for anything a server should not have said. */
static int percent_of(double have, double total)
{
    return total > 0 && have >= 0 && have <= total ? (int)(have * 100 / total) : 0;
}

/* Where the blobs of the photos from index `from` on stand on this server (blob.status, at most
 * 64): the reply's entries (the caller deletes them), NULL if the server does not say. A photo
 * from another server may be listed before its server has fetched its blob. */
static cJSON *blob_states(struct kzc *c, const char *room_id, const cJSON *events, int from)
{
    cJSON *ids = cJSON_CreateArray();
    int i = 0;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, events)
    {
        const cJSON *b =
            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(
                                   cJSON_GetObjectItemCaseSensitive(ev, "content"), "blobs"),
                               0);
        if (i++ >= from && cJSON_IsString(b) && cJSON_GetArraySize(ids) < 64 &&
            strcmp(cli_str(ev, "event", NULL), "e2ee.photo") == 0)
            cJSON_AddItemToArray(ids, cJSON_CreateString(b->valuestring));
    }
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "room", room_id);
    cJSON_AddItemToObject(args, "blobs", ids);
    cJSON *r = kzc_call(c, "blob.status", args, TIMEOUT_MS);
    cJSON *out = cJSON_DetachItemFromObjectCaseSensitive(r, "blobs");
    cJSON_Delete(r);
    return out;
}

/* The blob state of photo ev when it is not here yet ("" when it is, or the server did not
 * say), as `photo list` shows it: "not here yet (37%)", "failed its integrity check (from
 * server S)". *entry receives the status entry (NULL if none). */
static const char *blob_note(const cJSON *states, const cJSON *ev, const cJSON **entry, char *out,
                             size_t n)
{
    const cJSON *b = cJSON_GetArrayItem(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ev, "content"), "blobs"),
        0);
    const cJSON *e;
    out[0] = '\0';
    *entry = NULL;
    cJSON_ArrayForEach(e, states) if (cJSON_IsString(b) &&
                                      !strcmp(cli_str(e, "id", NULL), b->valuestring)) *entry = e;
    const char *state = cli_str(*entry, "state", NULL);
    double have = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(*entry, "have"));
    double total = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(*entry, "total"));
    if (!strcmp(state, "failed"))
        snprintf(out, n, "%s",
                 *cli_str(*entry, "why", NULL) ? cli_str(*entry, "why", NULL)
                                               : "failed its integrity check");
    else if (!strcmp(state, "fetching") || !strcmp(state, "waiting"))
        snprintf(out, n, "not here yet (%d%%)", percent_of(have, total));
    return out;
}

/* `photo list ROOM [--limit N]`, an entry of the command table; argv[0] is "list". */
int cmd_photo_list(int argc, char **argv)
{
    const char *room = NULL;
    long limit = 20;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
            limit = strtol(argv[++i], &end, 10);
            if (*end || limit <= 0)
                return cli_usage_error("--limit: a number from 1");
        } else if (!room) {
            room = argv[i];
        } else {
            return cli_usage_error(NULL);
        }
    }
    if (!room)
        return cli_usage_error("photo list needs a ROOM");
    struct kzc *c;
    struct ks_device me;
    struct room_view rv;
    int rc = open_room(room, &c, &me, &rv);
    if (rc != EXIT_OK)
        return rc;
    /* The newest `limit` photos, shown oldest first. */
    int total = 0, seen = 0;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, rv.events) total +=
        strcmp(cli_str(ev, "event", NULL), "e2ee.photo") == 0;
    cJSON *out = cJSON_CreateArray();
    int n = cJSON_GetArraySize(rv.events), first = n;
    for (int i = 0, k = 0; i < n && first == n; i++)
        if (strcmp(cli_str(cJSON_GetArrayItem(rv.events, i), "event", NULL), "e2ee.photo") == 0 &&
            k++ >= total - limit)
            first = i;
    cJSON *states = total ? blob_states(c, rv.room_id, rv.events, first) : NULL;
    for (int i = 0; i < n && rc == EXIT_OK; i++) {
        ev = cJSON_GetArrayItem(rv.events, i);
        if (strcmp(cli_str(ev, "event", NULL), "e2ee.photo") != 0 || seen++ < total - limit)
            continue;
        struct photo_view pv;
        rc = rv_photo(&rv, ev, &pv);
        char note[240];
        const cJSON *entry;
        blob_note(states, ev, &entry, note, sizeof note);
        if (json_out) {
            cJSON *o = photo_to_json(ev, &pv);
            if (entry) /* where its blob stands on this server */
                cJSON_AddItemToObject(o, "blob", cJSON_Duplicate(entry, true));
            cJSON_AddItemToArray(out, o);
        } else {
            print_photo(ev, &pv);
            if (note[0])
                printf("    blob: %s\n", note);
        }
        cJSON_Delete(pv.msg);
    }
    cJSON_Delete(states);
    if (rc == EXIT_OK && json_out) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddTrueToObject(o, "ok");
        cJSON_AddStringToObject(o, "room", rv.room_id);
        cJSON_AddItemToObject(o, "photos", out);
        out = NULL;
        cli_print_json(o);
        cJSON_Delete(o);
    } else if (rc == EXIT_OK && total == 0) {
        printf("no photos in this room\n");
    }
    cJSON_Delete(out);
    rv_free(&rv);
    ks_device_wipe(&me);
    kzc_close(c);
    return rc;
}

/* ---- downloading and decrypting ---- */

/* Bytes of the blob of a JPEG of len bytes (media.h layout): header, padded plaintext and a
 * 17-byte tag per chunk. */
static uint64_t blob_len_of(uint64_t len)
{
    uint64_t p = media_blob_padded_len(len);
    return MEDIA_BLOB_HEADER + p + 17 * ((p + MEDIA_BLOB_CHUNK - 1) / MEDIA_BLOB_CHUNK);
}

static long long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long long)sb.st_size : 0;
}

enum dl { DL_DONE, DL_RETRY, DL_RESTART, DL_REFUSED };

/* One GET of what is still missing, appended to the staging file. */
static enum dl download_step(const char *url, const char *token, const char *path, long long want)
{
    long long have = file_size(path);
    if (have == want)
        return DL_DONE;
    if (have > want)
        return DL_RESTART;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "ab") : NULL;
    if (!f) {
        fprintf(stderr, "kizuna: cannot write %s: %s\n", path, strerror(errno));
        return DL_REFUSED;
    }
    char range[64];
    snprintf(range, sizeof range, "Range: bytes=%lld-", have);
    const char *headers[] = {range, NULL};
    struct hx_req req = {
        .method = "GET", .url = url, .token = token, .headers = have ? headers : NULL, .sink = f};
    struct hx_resp r;
    int tx = hx_perform(&req, &r);
    bool wrote = fclose(f) == 0 && !r.sink_failed;
    if (!wrote) {
        fprintf(stderr, "kizuna: cannot write %s\n", path);
        return DL_REFUSED;
    }
    /* A 200 to a ranged request, or a range that starts elsewhere, is not our continuation. */
    if ((r.status == 200 && have) || (r.status == 206 && r.range_start != have) ||
        r.status == 416 || (r.total >= 0 && r.total != want && r.status / 100 == 2))
        return DL_RESTART;
    cJSON *o = tx == 0 && r.status == 503 ? cJSON_Parse(r.body) : NULL;
    const char *code = cli_str(o, "error", "code");
    if (!strcmp(code, "blob_not_here") || !strcmp(code, "blob_failed")) {
        /* Another server's photo whose blob this server is still fetching (docs/federation.md,
         * "Blobs across servers"): say how far, rather than wait without a word. */
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
        if (!strcmp(code, "blob_failed"))
            fprintf(stderr,
                    "kizuna: the photo failed its integrity check (from server %s): your server "
                    "fetches it again from another server; try later\n",
                    *cli_str(e, "from", NULL) ? cli_str(e, "from", NULL) : "?");
        else
            fprintf(stderr,
                    "kizuna: the photo is not here yet (%d%%): your server is fetching it from "
                    "another server; try again shortly\n",
                    percent_of(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "have")),
                               cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "total"))));
        cJSON_Delete(o);
        return DL_REFUSED;
    }
    cJSON_Delete(o);
    if (tx != 0 || r.status >= 500)
        return DL_RETRY;
    if (r.status == 200 || r.status == 206)
        return file_size(path) == want ? DL_DONE : DL_RETRY;
    o = cJSON_Parse(r.body);
    fprintf(stderr, "kizuna: cannot download the photo: HTTP %ld: %s\n", r.status,
            r.status == 404                   ? "the blob is not there, or not yours to read"
            : *cli_str(o, "error", "message") ? cli_str(o, "error", "message")
                                              : "refused");
    cJSON_Delete(o);
    return DL_REFUSED;
}

/* Downloads the blob into staging, resuming with Range after a cut connection. */
static int download(const char *blob, long long want, char *path, size_t pathlen)
{
    struct session s;
    if (!cli_session_load(&s))
        return EXIT_REFUSED;
    char base[600], url[1200], name[120];
    hx_base(cli_server_url(&s), base, sizeof base);
    snprintf(url, sizeof url, "%s/api/v1/blobs/%s", base, blob);
    snprintf(name, sizeof name, "dl-%s.kzb", blob);
    staging_path(path, pathlen, name);
    char dir[4200];
    staging_path(dir, sizeof dir, "");
    if (cli_mkdirs(dir) != 0)
        return EXIT_REFUSED;
    struct retry r;
    retry_start(&r);
    for (;;) {
        long long before = file_size(path);
        enum dl step = download_step(url, s.token, path, want);
        if (step == DL_DONE)
            return EXIT_OK;
        if (step == DL_REFUSED)
            return EXIT_REFUSED;
        if (step == DL_RESTART)
            unlink(path);
        if (file_size(path) > before)
            retry_start(&r);
        if (!retry_wait(&r, "the download was interrupted"))
            return cli_unreachable("the download made no progress within KIZUNA_RETRY_MAX_S");
    }
}

static const char *blob_error(enum media_rc rc)
{
    switch (rc) {
    case MEDIA_BLOB_FORMAT:
        return "the blob's header is not a Kizuna blob (bad magic, version or field)";
    case MEDIA_BLOB_TAMPERED:
        return "a chunk of the blob does not authenticate: altered, or the wrong key";
    case MEDIA_BLOB_TRUNCATED:
        return "the blob stops inside its header or a chunk: truncated";
    case MEDIA_BLOB_NO_FINAL:
        return "the blob stops before its final chunk: truncated";
    case MEDIA_BLOB_TRAILING:
        return "the blob has bytes after its final chunk";
    case MEDIA_BLOB_REORDERED:
        return "the blob's chunks are out of order";
    case MEDIA_BLOB_HASH:
        return "the blob's BLAKE2b-256 is not its id";
    case MEDIA_BLOB_LENGTH:
        return "the blob's length does not match the length the message declares";
    case MEDIA_IO:
        return "cannot read the blob or write the output";
    case MEDIA_NOMEM:
        return "out of memory";
    default:
        return media_rc_name(rc);
    }
}

static int write_nothing(void *ctx, const void *buf, size_t len)
{
    (void)ctx;
    (void)buf;
    (void)len;
    return 0;
}

/* Checks the hash, then decrypts into out_path (through OUT.part, renamed only when every
 * chunk authenticated) or, without out_path, only verifies. */
static int decrypt_blob(const char *blob_path, const cJSON *img, const char *out_path)
{
    uint8_t key[32], want[32], got[32];
    const char *id = cli_str(img, "blob", NULL);
    if (!unb64url_exact(cli_str(img, "key", NULL), key, 32) ||
        sodium_hex2bin(want, 32, id, strlen(id), NULL, NULL, NULL) != 0) {
        fprintf(stderr, "kizuna: integrity failure: the message's image key or id is malformed\n");
        return EXIT_REFUSED;
    }
    FILE *in = fopen(blob_path, "rb");
    if (!in || media_blob_hash_file(in, got) != MEDIA_OK || sodium_memcmp(got, want, 32) != 0) {
        if (in)
            fclose(in);
        sodium_memzero(key, sizeof key);
        unlink(blob_path); /* downloading it again is the only way forward */
        fprintf(stderr, "kizuna: integrity failure: the downloaded blob's BLAKE2b-256 is not its "
                        "id (nothing decrypted)\n");
        return EXIT_REFUSED;
    }
    rewind(in);
    char part[4200];
    FILE *out = NULL;
    if (out_path) {
        snprintf(part, sizeof part, "%s.part", out_path);
        int fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        out = fd >= 0 ? fdopen(fd, "wb") : NULL;
        if (!out) {
            fprintf(stderr, "kizuna: cannot write %s: %s\n", part, strerror(errno));
            fclose(in);
            sodium_memzero(key, sizeof key);
            return EXIT_REFUSED;
        }
    }
    enum media_rc rc =
        media_blob_decrypt(media_read_file, in, out ? media_write_file : write_nothing, out, key,
                           want, (uint64_t)num_of(img, "len"), NULL);
    sodium_memzero(key, sizeof key);
    fclose(in);
    bool ok = rc == MEDIA_OK;
    if (out) {
        ok = fclose(out) == 0 && ok;
        if (ok && rename(part, out_path) != 0)
            ok = false;
        if (!ok)
            unlink(part); /* fail closed: no half-decrypted file is left */
    }
    if (!ok) {
        fprintf(stderr, "kizuna: integrity failure: %s\n",
                rc != MEDIA_OK ? blob_error(rc) : "cannot write the output file");
        return EXIT_REFUSED;
    }
    return EXIT_OK;
}

static int write_thumb(const cJSON *msg, const char *out_path)
{
    uint8_t *t;
    size_t n;
    if (!unb64url(cli_str(msg, "thumb", "jpeg"), &t, &n)) {
        fprintf(stderr, "kizuna: integrity failure: the thumbnail is malformed\n");
        return EXIT_REFUSED;
    }
    int rc = ks_write_private(out_path, t, n) == 0 ? EXIT_OK : EXIT_REFUSED;
    if (rc != EXIT_OK)
        fprintf(stderr, "kizuna: cannot write %s: %s\n", out_path, strerror(errno));
    free(t);
    return rc;
}

/* Finds the photo at pos and opens it; on EXIT_OK *msg (the caller's) is the photo JSON. */
static int fetch_photo(const char *room, long long pos, cJSON **msg, cJSON **ev_out)
{
    struct kzc *c;
    struct ks_device me;
    struct room_view rv;
    int rc = open_room(room, &c, &me, &rv);
    if (rc != EXIT_OK)
        return rc;
    const cJSON *ev, *found = NULL;
    cJSON_ArrayForEach(ev, rv.events) if (num_of(ev, "pos") == pos &&
                                          strcmp(cli_str(ev, "event", NULL), "e2ee.photo") == 0)
        found = ev;
    struct photo_view pv = {0};
    if (!found) {
        fprintf(stderr, "kizuna: not_found: #%lld is not a photo of this room\n", pos);
        rc = EXIT_REFUSED;
    } else if ((rc = rv_photo(&rv, found, &pv)) == EXIT_OK && pv.state != PHOTO_READY) {
        if (json_out) {
            cJSON *o = photo_to_json(found, &pv);
            cJSON_AddFalseToObject(o, "ok");
            cli_print_json(o);
            cJSON_Delete(o);
        } else {
            fprintf(stderr, "kizuna: #%lld: %s\n", pos, pv.detail);
        }
        rc = EXIT_REFUSED;
    } else if (rc == EXIT_OK) {
        *msg = pv.msg;
        *ev_out = photo_to_json(found, &pv);
        pv.msg = NULL;
    }
    cJSON_Delete(pv.msg);
    rv_free(&rv);
    ks_device_wipe(&me);
    kzc_close(c);
    return rc;
}

/* `photo get ROOM POS [-o FILE] [--thumb]`, an entry of the command table; argv[0] is "get". */
int cmd_photo_get(int argc, char **argv)
{
    const char *room = NULL, *pos_text = NULL, *out_path = NULL;
    bool thumb = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
            out_path = argv[++i];
        else if (strcmp(argv[i], "--thumb") == 0)
            thumb = true;
        else if (!room)
            room = argv[i];
        else if (!pos_text)
            pos_text = argv[i];
        else
            return cli_usage_error(NULL);
    }
    char *end = NULL;
    long long pos = pos_text ? strtoll(pos_text, &end, 10) : 0;
    if (!room || !pos_text)
        return cli_usage_error("photo get needs a ROOM and a POS");
    if (*end || pos <= 0)
        return cli_usage_error("POS: the photo's position in the room, a number from 1");
    cJSON *msg = NULL, *info = NULL;
    int rc = fetch_photo(room, pos, &msg, &info);
    if (rc != EXIT_OK)
        return rc;
    const cJSON *img = cJSON_GetObjectItemCaseSensitive(msg, "image");
    if (thumb) {
        if (out_path)
            rc = write_thumb(msg, out_path);
    } else {
        char blob_path[4200];
        rc = download(cli_str(img, "blob", NULL),
                      (long long)blob_len_of((uint64_t)num_of(img, "len")), blob_path,
                      sizeof blob_path);
        if (rc == EXIT_OK) {
            rc = decrypt_blob(blob_path, img, out_path);
            unlink(blob_path);
        }
    }
    if (rc == EXIT_OK) {
        if (json_out) {
            cJSON_AddTrueToObject(info, "ok");
            if (out_path)
                cJSON_AddStringToObject(info, "written", out_path);
            cli_print_json(info);
        } else {
            const cJSON *gps = cJSON_GetObjectItemCaseSensitive(msg, "gps");
            printf("#%lld from %s\ncaption: %s\ncaptured: %s\n", pos, cli_str(info, "sender", NULL),
                   cli_str(msg, "caption", NULL),
                   *cli_str(msg, "captured_at", NULL) ? cli_str(msg, "captured_at", NULL) : "-");
            if (cJSON_IsObject(gps))
                printf("GPS: %.6f,%.6f\n", cJSON_GetObjectItem(gps, "lat")->valuedouble,
                       cJSON_GetObjectItem(gps, "lon")->valuedouble);
            else
                printf("GPS: -\n");
            if (out_path)
                printf("%s written to %s\n", thumb ? "thumbnail" : "photo", out_path);
            else if (!thumb)
                printf("verified (blob hash and every chunk); nothing written: use -o FILE\n");
        }
    }
    cJSON_Delete(msg);
    cJSON_Delete(info);
    return rc;
}
