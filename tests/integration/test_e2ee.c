/* test_e2ee.c - the server's side of end-to-end encrypted photos, over real sockets: the
 * device directory, signed encrypted events, resumable uploads (cut bodies, wrong offsets and
 * checksums, kill -9 mid-upload) and who may download a blob. The client side (photo send and
 * get through the CLI) is test_photo.c. */
#include <criterion/criterion.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "harness.h"
#include "media.h"

static struct kzd d;

static void setup(void)
{
    kzd_setup(&d);
}

static void teardown(void)
{
    kzd_teardown(&d);
}

TestSuite(e2ee, .init = setup, .fini = teardown, .timeout = 90);

struct dev {
    struct media_device_keys k;
    char id[32];
};

static void b64(const uint8_t *bin, size_t n, char *out, size_t cap)
{
    sodium_bin2base64(out, cap, bin, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static void dev_new(struct dev *v)
{
    cr_assert_eq(media_device_keys_new(&v->k), MEDIA_OK);
    uint8_t h[16];
    crypto_generichash(h, sizeof h, v->k.sign_pk, 32, NULL, 0);
    b64(h, sizeof h, v->id, sizeof v->id);
}

static cJSON *dev_register(struct ws *w, const char *login, struct dev *v, bool break_sig)
{
    uint8_t sig[64];
    char who[200];
    kzd_qualify(&d, login, who, sizeof who); /* devices sign login@server (issue 19) */
    cr_assert_eq(media_devkey_sign(who, v->id, &v->k, sig), MEDIA_OK);
    sig[0] ^= break_sig;
    char spk[64], bpk[64], s[100];
    b64(v->k.sign_pk, 32, spk, sizeof spk);
    b64(v->k.box_pk, 32, bpk, sizeof bpk);
    b64(sig, 64, s, sizeof s);
    return ws_callf(w,
                    "\"op\":\"device.register\",\"sign_pk\":\"%s\",\"box_pk\":\"%s\","
                    "\"sig\":\"%s\",\"label\":\"test phone\"",
                    spk, bpk, s);
}

/* Signs an e2ee event as protocol.md says and posts it. blob may be NULL. */
static cJSON *e2ee_post(struct ws *w, const char *room, const char *type, const struct dev *v,
                        const char *blob, const char *data, bool break_sig)
{
    size_t n = strlen(room) + strlen(type) + 2 + (blob ? strlen(blob) + 1 : 0) + strlen(data);
    unsigned char *msg = malloc(n), *p = msg;
    p = (unsigned char *)stpcpy((char *)p, room) + 1;
    p = (unsigned char *)stpcpy((char *)p, type) + 1;
    if (blob)
        p = (unsigned char *)stpcpy((char *)p, blob) + 1;
    memcpy(p, data, strlen(data));
    uint8_t sig[64];
    cr_assert_eq(media_sign("kizuna/e2ee/v1", msg, n, v->k.sign_sk, sig), MEDIA_OK);
    free(msg);
    sig[5] ^= break_sig;
    char s[100], blobs[100] = "";
    b64(sig, 64, s, sizeof s);
    if (blob)
        snprintf(blobs, sizeof blobs, ",\"blobs\":[\"%s\"]", blob);
    cJSON *j = cJSON_CreateString(data);
    char *quoted = cJSON_PrintUnformatted(j);
    cJSON *r = ws_callf(w,
                        "\"op\":\"e2ee.post\",\"room\":\"%s\",\"type\":\"%s\",\"device\":\"%s\","
                        "\"data\":%s,\"sig\":\"%s\"%s",
                        room, type, v->id, quoted, s, blobs);
    cJSON_free(quoted);
    cJSON_Delete(j);
    return r;
}

static void add_user(const char *login)
{
    struct ws a;
    cr_assert(ws_open(&a, d.port));
    cr_assert(ws_login(&a, "admin", TEST_ADMIN_PASSWORD, NULL));
    cJSON *r = ws_callf(&a, "\"op\":\"user.add\",\"login\":\"%s\",\"password\":\"%s-password\"",
                        login, login);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    ws_close_fd(&a);
}

static void user_ws(struct ws *w, const char *login, char *token)
{
    char pw[64];
    snprintf(pw, sizeof pw, "%s-password", login);
    cr_assert(ws_open(w, d.port));
    cr_assert(ws_login(w, login, pw, token), "%s logs in", login);
}

static void room_with(struct ws *w, const char *members, char *room)
{
    cJSON *r = ws_callf(w, "\"op\":\"room.create\",\"name\":\"現場写真\",\"members\":%s", members);
    cr_assert_str_eq(reply_code(r), "ok");
    snprintf(room, 64, "%s",
             cJSON_GetObjectItem(cJSON_GetObjectItem(r, "room"), "room")->valuestring);
    cJSON_Delete(r);
}

/* ---- uploads over HTTP ---- */

static char resp[1 << 20];
static size_t resp_len;

static int upload_call(const char *method, const char *path, const char *token,
                       const char *extra_headers, const void *body, size_t len, size_t send)
{
    char headers[1024];
    snprintf(headers, sizeof headers, "Authorization: Bearer %s\r\nTus-Resumable: 1.0.0\r\n%s",
             token, extra_headers ? extra_headers : "");
    return http_raw(d.port, method, path, headers, body, len, send, resp, sizeof resp, &resp_len);
}

static void blob_id(const void *data, size_t len, char hex[65])
{
    uint8_t h[32];
    crypto_generichash(h, sizeof h, data, len, NULL, 0);
    sodium_bin2hex(hex, 65, h, sizeof h);
}

static int create_upload(const char *token, const char *hex, size_t len, char *location)
{
    char md[128], headers[256];
    sodium_bin2base64(md, sizeof md, (const unsigned char *)hex, 64,
                      sodium_base64_VARIANT_ORIGINAL);
    snprintf(headers, sizeof headers, "Upload-Length: %zu\r\nUpload-Metadata: blob %s\r\n", len,
             md);
    int st = upload_call("POST", "/api/v1/uploads", token, headers, "", 0, 0);
    if (location && !http_header(resp, "Location", location, 128))
        location[0] = '\0';
    return st;
}

static int patch(const char *token, const char *location, size_t offset, const void *body,
                 size_t len, size_t send, bool bad_checksum)
{
    uint8_t h[32];
    crypto_generichash(h, sizeof h, body, len, NULL, 0);
    h[0] ^= bad_checksum;
    char sum[64], headers[256];
    sodium_bin2base64(sum, sizeof sum, h, sizeof h, sodium_base64_VARIANT_ORIGINAL);
    snprintf(headers, sizeof headers,
             "Upload-Offset: %zu\r\nUpload-Checksum: blake2b %s\r\n"
             "Content-Type: application/offset+octet-stream\r\n",
             offset, sum);
    return upload_call("PATCH", location, token, headers, body, len, send);
}

static long long head_offset(const char *token, const char *location)
{
    int st = upload_call("HEAD", location, token, NULL, "", 0, 0);
    char v[32];
    if (st != 200 || !http_header(resp, "Upload-Offset", v, sizeof v))
        return -st;
    return atoll(v);
}

static unsigned char *random_blob(size_t len)
{
    unsigned char *b = malloc(len);
    randombytes_buf(b, len);
    return b;
}

Test(e2ee, an_upload_resumes_through_cuts_bad_checksums_wrong_offsets_and_kill_9)
{
    add_user("sato");
    char token[64], location[128], hex[65];
    struct ws w;
    user_ws(&w, "sato", token);
    const size_t len = 300000;
    unsigned char *blob = random_blob(len);
    blob_id(blob, len, hex);
    cr_assert_eq(create_upload(token, hex, len, location), 201, "%s", resp);
    cr_assert(strncmp(location, "/api/v1/uploads/", 16) == 0, "%s", location);
    cr_assert_eq(head_offset(token, location), 0);

    cr_assert_eq(patch(token, location, 0, blob, 100000, 100000, false), 204, "%s", resp);
    cr_assert_eq(head_offset(token, location), 100000);
    /* A body cut in the middle keeps nothing of itself. */
    cr_assert_eq(patch(token, location, 100000, blob + 100000, 100000, 40000, false), 0);
    cr_assert_eq(head_offset(token, location), 100000, "a cut PATCH changes nothing");
    cr_assert_eq(patch(token, location, 100000, blob + 100000, 50000, 50000, true), 460, "%s",
                 resp);
    cr_assert_eq(head_offset(token, location), 100000, "a bad checksum keeps nothing");
    cr_assert_eq(patch(token, location, 0, blob, 1000, 1000, false), 409, "wrong offset");
    char v[32];
    cr_assert(http_header(resp, "Upload-Offset", v, sizeof v) && atoll(v) == 100000,
              "a 409 says where the upload is");
    cr_assert_eq(patch(token, location, 100000, blob + 100000, 100000, 100000, false), 204);

    /* kill -9 after an acknowledged PATCH: the offset survives. */
    ws_close_fd(&w);
    kzd_kill(&d);
    kzd_start(&d);
    cr_assert_eq(head_offset(token, location), 200000, "acknowledged bytes survive kill -9");
    char other_token[64];
    add_user("suzuki");
    struct ws o;
    user_ws(&o, "suzuki", other_token);
    cr_assert_eq(head_offset(other_token, location), -404, "someone else's upload is not there");
    cr_assert_eq(patch(token, location, 200000, blob + 200000, len - 200000, len - 200000, false),
                 204, "%s", resp);

    char path[128];
    snprintf(path, sizeof path, "/api/v1/blobs/%s", hex);
    cr_assert_eq(upload_call("GET", path, token, NULL, "", 0, 0), 200, "the uploader reads it");
    char *body = strstr(resp, "\r\n\r\n") + 4;
    cr_assert_eq(resp_len - (size_t)(body - resp), len);
    cr_assert(memcmp(body, blob, len) == 0, "the same bytes come back");
    cr_assert_eq(upload_call("GET", path, token, "Range: bytes=1000-1999\r\n", "", 0, 0), 206);
    cr_assert(memcmp(strstr(resp, "\r\n\r\n") + 4, blob + 1000, 1000) == 0);
    cr_assert(http_header(resp, "Content-Range", v, sizeof v));
    cr_assert_str_eq(v, "bytes 1000-1999/300000");
    cr_assert_eq(upload_call("GET", path, token, "Range: bytes=400000-\r\n", "", 0, 0), 416);
    cr_assert_eq(upload_call("GET", path, other_token, NULL, "", 0, 0), 404,
                 "nobody else until a room event references it");
    /* The same bytes again are stored once: the upload is born complete. */
    cr_assert_eq(create_upload(token, hex, len, location), 201);
    cr_assert(http_header(resp, "Upload-Offset", v, sizeof v) && atoll(v) == (long long)len);
    ws_close_fd(&o);
    free(blob);
}

Test(e2ee, uploads_refuse_bad_requests)
{
    add_user("sato");
    char token[64], location[128], hex[65];
    struct ws w;
    user_ws(&w, "sato", token);
    unsigned char *blob = random_blob(6000);
    blob_id(blob, 5000, hex);
    cr_assert_eq(create_upload("not-a-token", hex, 5000, NULL), 401);
    cr_assert_eq(create_upload(token, "nothex", 5000, NULL), 400);
    cr_assert_eq(create_upload(token, hex, 0, NULL), 413);
    cr_assert_eq(create_upload(token, hex, (size_t)1 << 40, NULL), 413, "over blob_max_bytes");
    cr_assert_eq(upload_call("GET", "/api/v1/blobs/../../kizuna.db", token, NULL, "", 0, 0), 404);
    cr_assert_eq(upload_call("HEAD", "/api/v1/uploads/..%2f..%2fkizuna.db", token, NULL, "", 0, 0),
                 404);
    /* Bytes that are not the blob they claim to be: refused at the last byte, from 0 again. */
    char wrong[65];
    memcpy(wrong, hex, 65);
    wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
    cr_assert_eq(create_upload(token, wrong, 5000, location), 201);
    cr_assert_eq(patch(token, location, 0, blob, 5000, 5000, false), 460, "%s", resp);
    cr_assert_eq(head_offset(token, location), 0);
    cr_assert_eq(patch(token, location, 0, blob, 6000, 6000, false), 413, "past Upload-Length");
    cr_assert_eq(upload_call("DELETE", location, token, NULL, "", 0, 0), 204);
    cr_assert_eq(head_offset(token, location), -404);
    ws_close_fd(&w);
    free(blob);
}

/* Uploads a whole blob in one PATCH; returns its id in hex. */
static void upload_blob(const char *token, const unsigned char *blob, size_t len, char hex[65])
{
    char location[128];
    blob_id(blob, len, hex);
    cr_assert_eq(create_upload(token, hex, len, location), 201);
    cr_assert_eq(patch(token, location, 0, blob, len, len, false), 204, "%s", resp);
}

Test(e2ee, devices_and_signed_events_decide_who_may_post_and_read)
{
    add_user("sato");
    add_user("ito");
    add_user("kato");
    char tok_sato[64], tok_ito[64], tok_kato[64], room[64];
    struct ws s, i, k;
    user_ws(&s, "sato", tok_sato);
    user_ws(&i, "ito", tok_ito);
    user_ws(&k, "kato", tok_kato);
    struct dev ds, di, dk;
    dev_new(&ds);
    dev_new(&di);
    dev_new(&dk);
    cJSON *r = dev_register(&s, "sato", &ds, true);
    cr_assert_str_eq(reply_code(r), "bad_request", "a broken self-signature");
    cJSON_Delete(r);
    r = dev_register(&s, "sato", &ds, false);
    cr_assert_str_eq(reply_code(r), "ok");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "device"), "device")->valuestring,
                     ds.id, "the id is the hash of the signing key");
    cJSON_Delete(r);
    r = dev_register(&s, "sato", &ds, false);
    cr_assert_str_eq(reply_code(r), "ok", "registering again is a no-op");
    cJSON_Delete(r);
    r = dev_register(&i, "ito", &ds, false);
    cr_assert_str_eq(reply_code(r), "conflict", "sato's device cannot become ito's");
    cJSON_Delete(r);
    r = dev_register(&i, "ito", &di, false);
    cJSON_Delete(r);
    r = dev_register(&k, "kato", &dk, false);
    cJSON_Delete(r);

    room_with(&s, "[\"ito\"]", room);
    r = ws_callf(&s, "\"op\":\"room.devices\",\"room\":\"%s\"", room);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "devices")), 2, "sato's and ito's");
    cJSON_Delete(r);
    r = ws_callf(&k, "\"op\":\"room.devices\",\"room\":\"%s\"", room);
    cr_assert_str_eq(reply_code(r), "not_found", "a non-member learns nothing");
    cJSON_Delete(r);

    unsigned char *blob = random_blob(20000);
    char hex[65];
    upload_blob(tok_sato, blob, 20000, hex);
    const char *data = "{\"epoch\":\"e1\",\"n\":1,\"ct\":\"AAAA\"}";
    r = e2ee_post(&s, room, "e2ee.photo", &ds, hex, data, true);
    cr_assert_str_eq(reply_code(r), "bad_request", "a broken device signature");
    cJSON_Delete(r);
    r = e2ee_post(&i, room, "e2ee.photo", &ds, NULL, data, false);
    cr_assert_str_eq(reply_code(r), "forbidden", "ito cannot speak for sato's device");
    cJSON_Delete(r);
    r = e2ee_post(&s, room, "e2ee.nonsense", &ds, NULL, data, false);
    cr_assert_str_eq(reply_code(r), "bad_request");
    cJSON_Delete(r);
    r = e2ee_post(&s, room, "e2ee.photo", &ds,
                  "00000000000000000000000000000000000000000000000000"
                  "00000000000000",
                  data, false);
    cr_assert_str_eq(reply_code(r), "not_found", "a blob never uploaded");
    cJSON_Delete(r);

    char path[128];
    snprintf(path, sizeof path, "/api/v1/blobs/%s", hex);
    cr_assert_eq(upload_call("GET", path, tok_ito, NULL, "", 0, 0), 404, "not referenced yet");
    r = e2ee_post(&s, room, "e2ee.photo", &ds, hex, data, false);
    cr_assert_str_eq(reply_code(r), "ok");
    long long pos = (long long)cJSON_GetObjectItem(r, "pos")->valuedouble;
    cJSON_Delete(r);
    cr_assert_eq(upload_call("GET", path, tok_ito, NULL, "", 0, 0), 200, "a member reads it");
    cr_assert_eq(upload_call("GET", path, tok_kato, NULL, "", 0, 0), 404, "a non-member does not");

    /* The event reaches members as stored: the device's data and signature, nothing more. */
    r = ws_callf(&i, "\"op\":\"history\",\"room\":\"%s\",\"after\":%lld", room, pos - 1);
    cJSON *ev = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "events"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(ev, "event")->valuestring, "e2ee.photo");
    cJSON *content = cJSON_GetObjectItem(ev, "content");
    cr_assert_str_eq(cJSON_GetObjectItem(content, "data")->valuestring, data);
    cr_assert_str_eq(cJSON_GetObjectItem(content, "device")->valuestring, ds.id);
    cJSON_Delete(r);

    /* A lost phone: the admin revokes ito's device; its session dies with it. */
    struct ws a;
    cr_assert(ws_open(&a, d.port));
    cr_assert(ws_login(&a, "admin", TEST_ADMIN_PASSWORD, NULL));
    r = ws_callf(&a, "\"op\":\"device.revoke\",\"device\":\"%s\"", di.id);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    cr_assert_eq(ws_wait_close(&i, 5000), 1008);
    cr_assert_str_eq(i.close_reason, "device revoked");
    cr_assert_eq(upload_call("GET", path, tok_ito, NULL, "", 0, 0), 401, "its token is dead");
    r = ws_callf(&s, "\"op\":\"room.devices\",\"room\":\"%s\"", room);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "devices")), 1,
                 "the next photo is not encrypted to it");
    cJSON_Delete(r);
    r = ws_callf(&k, "\"op\":\"device.revoke\",\"device\":\"%s\"", ds.id);
    cr_assert_str_eq(reply_code(r), "not_found", "only the owner or an admin");
    cJSON_Delete(r);
    cr_assert(ws_audit_has(&a, "device.revoke", "ito"));
    cr_assert(ws_audit_has(&a, "device.register", "sato"));

    /* Logging out revokes the session's device too (the CLI wipes its keys). */
    r = ws_call(&s, "{\"id\":99,\"op\":\"logout\"}");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    r = ws_callf(&k, "\"op\":\"device.list\",\"login\":\"sato\"");
    cJSON *dv = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "devices"), 0);
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(dv, "revoked_at")), "revoked at logout");
    cJSON_Delete(r);
    ws_close_fd(&s);
    ws_close_fd(&i);
    ws_close_fd(&k);
    ws_close_fd(&a);
    free(blob);
}

/* ---- uploads at their edges: an empty PATCH, someone else's blob id, a session that ends ---- */

/* The Upload-Offset header of the last reply, or -1. */
static long long resp_offset(void)
{
    char v[32];
    return http_header(resp, "Upload-Offset", v, sizeof v) ? atoll(v) : -1;
}

/* An empty PATCH (Content-Length: 0) is a no-op that says where the upload is, also once it is
 * finished: it used to run the last-byte check on a staging file that was already gone, and
 * reset a finished upload to 0 (issue 12). */
Test(e2ee, an_empty_patch_changes_nothing_even_on_a_finished_upload)
{
    add_user("sato");
    char token[64], location[128], hex[65];
    struct ws w;
    user_ws(&w, "sato", token);
    const size_t len = 50000;
    unsigned char *blob = random_blob(len);
    blob_id(blob, len, hex);
    cr_assert_eq(create_upload(token, hex, len, location), 201, "%s", resp);
    cr_assert_eq(patch(token, location, 0, blob, 0, 0, false), 204, "%s", resp);
    cr_assert_eq(resp_offset(), 0);
    cr_assert_eq(patch(token, location, 0, blob, 20000, 20000, false), 204, "%s", resp);
    cr_assert_eq(patch(token, location, 20000, blob + 20000, 0, 0, false), 204, "%s", resp);
    cr_assert_eq(resp_offset(), 20000);
    cr_assert_eq(patch(token, location, 0, blob, 0, 0, false), 409,
                 "an empty PATCH at a wrong offset is still a 409");
    cr_assert_eq(head_offset(token, location), 20000);
    cr_assert_eq(patch(token, location, 20000, blob + 20000, len - 20000, len - 20000, false), 204,
                 "%s", resp);
    cr_assert_eq(resp_offset(), (long long)len);

    /* Finished: an empty PATCH at the end answers 204 with the length, and changes nothing. */
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(patch(token, location, len, blob + len, 0, 0, false), 204, "%s", resp);
        cr_assert_eq(resp_offset(), (long long)len, "%s", resp);
    }
    cr_assert_eq(head_offset(token, location), (long long)len, "the upload stays finished");
    char staging[400];
    snprintf(staging, sizeof staging, "%s/uploads/%s", d.dir, strrchr(location, '/') + 1);
    struct stat sb;
    cr_assert_neq(stat(staging, &sb), 0, "no staging file comes back");
    char path[128];
    snprintf(path, sizeof path, "/api/v1/blobs/%s", hex);
    cr_assert_eq(upload_call("GET", path, token, NULL, "", 0, 0), 200);
    const char *body = strstr(resp, "\r\n\r\n") + 4;
    cr_assert(resp_len - (size_t)(body - resp) == len && memcmp(body, blob, len) == 0);
    /* A born-complete upload of the same bytes, too. */
    cr_assert_eq(create_upload(token, hex, len, location), 201);
    cr_assert_eq(patch(token, location, len, blob + len, 0, 0, false), 204, "%s", resp);
    cr_assert_eq(resp_offset(), (long long)len);
    cr_assert_eq(head_offset(token, location), (long long)len);
    ws_close_fd(&w);
    free(blob);
}

/* Blob ids are hashes of ciphertext, so anyone who has seen one (a former member, a log) could
 * ask about it. POST /uploads used to answer a stranger with a born-complete upload, or with
 * "a different length": the blob exists, and how long it is (issue 12). Now only a caller who
 * may already read the blob (its uploader, a member of a room that references it) is spared
 * the bytes; anyone else gets an ordinary upload from 0, exactly as for an unknown id. */
Test(e2ee, someone_elses_blob_id_tells_a_stranger_nothing)
{
    add_user("sato");
    add_user("ito");
    add_user("kato");
    char tok_sato[64], tok_ito[64], tok_kato[64], room[64], location[128], hex[65], v[32];
    struct ws s, i, k;
    user_ws(&s, "sato", tok_sato);
    user_ws(&i, "ito", tok_ito);
    user_ws(&k, "kato", tok_kato);
    const size_t len = 30000;
    unsigned char *blob = random_blob(len);
    upload_blob(tok_sato, blob, len, hex);
    unsigned char *other = random_blob(len);
    char unknown[65];
    blob_id(other, len, unknown);

    /* A stranger: the stored blob and an unknown one get the same answers. */
    const char *ids[] = {hex, unknown};
    int status[2][2];
    long long offset[2][2];
    for (int n = 0; n < 2; n++) {
        status[n][0] = create_upload(tok_kato, ids[n], len, NULL);
        offset[n][0] = resp_offset();
        status[n][1] = create_upload(tok_kato, ids[n], 12345, NULL);
        offset[n][1] = resp_offset();
    }
    cr_assert_eq(status[0][0], 201, "%s", resp);
    cr_assert_eq(offset[0][0], 0, "not born complete for a stranger");
    cr_assert_eq(status[0][1], 201, "another length is not refused: that would say the length");
    cr_assert_eq(offset[0][1], 0);
    cr_assert(memcmp(status[0], status[1], sizeof status[0]) == 0 &&
                  memcmp(offset[0], offset[1], sizeof offset[0]) == 0,
              "as for a blob that does not exist");
    char path[128];
    snprintf(path, sizeof path, "/api/v1/blobs/%s", hex);
    cr_assert_eq(upload_call("GET", path, tok_kato, NULL, "", 0, 0), 404);

    /* A stranger who does hold the bytes sends them all; they are stored once, and the blob
     * and who may read it stay as they were. Wrong bytes end as for any wrong hash. */
    cr_assert_eq(create_upload(tok_kato, hex, len, location), 201);
    cr_assert_eq(patch(tok_kato, location, 0, blob, len, len, false), 204, "%s", resp);
    cr_assert_eq(create_upload(tok_kato, hex, 12345, location), 201);
    cr_assert_eq(patch(tok_kato, location, 0, other, 12345, 12345, false), 460, "%s", resp);
    cr_assert_eq(upload_call("GET", path, tok_kato, NULL, "", 0, 0), 404);
    cr_assert_eq(upload_call("GET", path, tok_sato, NULL, "", 0, 0), 200);
    const char *body = strstr(resp, "\r\n\r\n") + 4;
    cr_assert(resp_len - (size_t)(body - resp) == len && memcmp(body, blob, len) == 0);

    /* The uploader is spared the bytes, and told of a wrong length, as before. */
    cr_assert_eq(create_upload(tok_sato, hex, len, NULL), 201);
    cr_assert(http_header(resp, "Upload-Offset", v, sizeof v) && atoll(v) == (long long)len);
    cr_assert_eq(create_upload(tok_sato, hex, 12345, NULL), 400);

    /* So is a member of a room whose event references it: she may download it anyway. */
    struct dev ds;
    dev_new(&ds);
    cJSON *r = dev_register(&s, "sato", &ds, false);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    cr_assert_eq(create_upload(tok_ito, hex, len, NULL), 201);
    cr_assert_eq(resp_offset(), 0, "ito may not read it yet");
    room_with(&s, "[\"ito\"]", room);
    r = e2ee_post(&s, room, "e2ee.photo", &ds, hex, "{\"epoch\":\"e1\",\"n\":1,\"ct\":\"AAAA\"}",
                  false);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    cr_assert_eq(create_upload(tok_ito, hex, len, NULL), 201);
    cr_assert_eq(resp_offset(), (long long)len, "a reader is spared the bytes");
    ws_close_fd(&s);
    ws_close_fd(&i);
    ws_close_fd(&k);
    free(blob);
    free(other);
}

/* Starts a PATCH on a connection of its own: headers and the first `first` bytes of the body.
 * Returns the socket. */
static int patch_start(const char *token, const char *location, size_t offset,
                       const unsigned char *body, size_t len, size_t first)
{
    uint8_t h[32];
    crypto_generichash(h, sizeof h, body, len, NULL, 0);
    char sum[64], req[1024];
    sodium_bin2base64(sum, sizeof sum, h, sizeof h, sodium_base64_VARIANT_ORIGINAL);
    int n = snprintf(req, sizeof req,
                     "PATCH %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Authorization: Bearer %s\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: %zu\r\n"
                     "Upload-Checksum: blake2b %s\r\n"
                     "Content-Type: application/offset+octet-stream\r\nContent-Length: %zu\r\n\r\n",
                     location, token, offset, sum, len);
    int fd = tcp_open(d.port);
    cr_assert_geq(fd, 0);
    cr_assert_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    for (size_t done = 0; done < first;) {
        ssize_t k = send(fd, body + done, first - done, MSG_NOSIGNAL);
        cr_assert_gt(k, 0);
        done += (size_t)k;
    }
    return fd;
}

/* Sends the rest of the body and returns the reply's status (the reply goes to resp). */
static int patch_finish(int fd, const unsigned char *rest, size_t n)
{
    for (size_t done = 0; done < n;) {
        ssize_t k = send(fd, rest + done, n - done, MSG_NOSIGNAL);
        if (k <= 0)
            break;
        done += (size_t)k;
    }
    resp_len = 0;
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    for (ssize_t k; resp_len < sizeof resp - 1 &&
                    (k = read(fd, resp + resp_len, sizeof resp - 1 - resp_len)) > 0;)
        resp_len += (size_t)k;
    close(fd);
    resp[resp_len] = '\0';
    int status = -1;
    return sscanf(resp, "HTTP/1.1 %d", &status) == 1 ? status : -1;
}

/* Waits (with a deadline) until the staging file holds `size` bytes: the server is inside the
 * PATCH, past its checks at the start. */
static void wait_staged(const char *location, long long size)
{
    char staging[400];
    snprintf(staging, sizeof staging, "%s/uploads/%s", d.dir, strrchr(location, '/') + 1);
    struct stat sb;
    for (int n = 0; n < 200 && !(stat(staging, &sb) == 0 && sb.st_size >= size); n++)
        usleep(25000);
    cr_assert(stat(staging, &sb) == 0 && sb.st_size >= size, "the PATCH is under way");
}
/* Thumbnail first (issue 21): a phone on a weak link posts the photo message (its thumbnail is
 * inside) as soon as the upload is created, then uploads. Members see it at once, the blob
 * answers 503 blob_not_here with the sender's progress, and only the finished, hashed upload
 * lets them download it; naming an upload that is not yours, or a non-photo, gets nothing. */
Test(e2ee, a_photo_posted_before_its_blob_is_readable_once_the_upload_ends)
{
    add_user("sato");
    add_user("ito");
    add_user("kato");
    char tok_sato[64], tok_ito[64], tok_kato[64], room[64], location[128], hex[65], path[128];
    struct ws s, i, k;
    user_ws(&s, "sato", tok_sato);
    user_ws(&i, "ito", tok_ito);
    user_ws(&k, "kato", tok_kato);
    struct dev ds, dk;
    dev_new(&ds);
    dev_new(&dk);
    cJSON_Delete(dev_register(&s, "sato", &ds, false));
    cJSON_Delete(dev_register(&k, "kato", &dk, false));
    room_with(&s, "[\"ito\",\"kato\"]", room);
    const size_t len = 200000;
    unsigned char *blob = random_blob(len);
    blob_id(blob, len, hex);
    snprintf(path, sizeof path, "/api/v1/blobs/%s", hex);
    const char *data = "{\"epoch\":\"e1\",\"seq\":1,\"ct\":\"AAAA\"}";

    cJSON *r = e2ee_post(&s, room, "e2ee.photo", &ds, hex, data, false);
    cr_assert_str_eq(reply_code(r), "not_found", "no upload started: nothing to wait for");
    cJSON_Delete(r);
    cr_assert_eq(create_upload(tok_sato, hex, len, location), 201);
    cr_assert_eq(patch(tok_sato, location, 0, blob, 50000, 50000, false), 204, "%s", resp);
    r = e2ee_post(&k, room, "e2ee.photo", &dk, hex, data, false);
    cr_assert_str_eq(reply_code(r), "not_found", "kato cannot name sato's upload");
    cJSON_Delete(r);
    r = e2ee_post(&s, room, "e2ee.withheld", &ds, hex, data, false);
    cr_assert_str_eq(reply_code(r), "not_found", "only a photo waits for its blob");
    cJSON_Delete(r);
    r = e2ee_post(&s, room, "e2ee.photo", &ds, hex, data, false);
    cr_assert_str_eq(reply_code(r), "ok", "the photo goes before its blob");
    cJSON_Delete(r);

    /* The room list shows the photo as the room's last message. */
    r = ws_callf(&i, "\"op\":\"room.list\"");
    cJSON *last =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "rooms"), 0), "last");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(last, "photo")), "%s", cJSON_PrintUnformatted(last));
    cr_assert_str_eq(cJSON_GetObjectItem(last, "sender")->valuestring, "sato");
    cJSON_Delete(r);

    cr_assert_eq(upload_call("GET", path, tok_ito, NULL, "", 0, 0), 503, "%s", resp);
    cr_assert(strstr(resp, "\"blob_not_here\"") && strstr(resp, "uploading it (25%)") &&
                  strstr(resp, "\"state\":\"uploading\""),
              "%s", resp);
    r = ws_callf(&i, "\"op\":\"blob.status\",\"room\":\"%s\",\"blobs\":[\"%s\"]", room, hex);
    cJSON *st = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "blobs"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(st, "state")->valuestring, "uploading");
    cr_assert_eq(cJSON_GetObjectItem(st, "have")->valuedouble, 50000);
    cr_assert_eq(cJSON_GetObjectItem(st, "total")->valuedouble, (double)len);
    cJSON_Delete(r);

    /* A stranger learns nothing of it meanwhile. */
    struct ws o;
    char tok_o[64];
    add_user("oda");
    user_ws(&o, "oda", tok_o);
    cr_assert_eq(upload_call("GET", path, tok_o, NULL, "", 0, 0), 404, "a stranger: no such blob");

    cr_assert_eq(patch(tok_sato, location, 50000, blob + 50000, len - 50000, len - 50000, false),
                 204, "%s", resp);
    cr_assert_eq(upload_call("GET", path, tok_ito, NULL, "", 0, 0), 200, "now whole");
    cr_assert_eq(resp_len >= len, true);
    cr_assert_eq(upload_call("GET", path, tok_o, NULL, "", 0, 0), 404, "still nothing to oda");
    r = ws_callf(&i, "\"op\":\"blob.status\",\"room\":\"%s\",\"blobs\":[\"%s\"]", room, hex);
    st = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "blobs"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(st, "state")->valuestring, "here");
    cJSON_Delete(r);
    ws_close_fd(&s);
    ws_close_fd(&i);
    ws_close_fd(&k);
    ws_close_fd(&o);
    free(blob);
}

/* The session or the account behind a PATCH ends while its body streams in (a lost phone is
 * cut off): the PATCH used to complete all the same. It is checked again at the last byte,
 * refused with 401 and commits nothing; the upload resumes from where it was, for the owner's
 * other session (issue 12). */
Test(e2ee, a_patch_whose_session_ends_midway_commits_nothing)
{
    add_user("sato");
    add_user("ito");
    char tok_sato[64], tok_phone[64], tok_ito[64], location[128], hex[65];
    struct ws s, phone, i, a;
    user_ws(&s, "sato", tok_sato);
    user_ws(&phone, "sato", tok_phone);
    user_ws(&i, "ito", tok_ito);
    cr_assert(ws_open(&a, d.port));
    cr_assert(ws_login(&a, "admin", TEST_ADMIN_PASSWORD, NULL));
    const size_t len = 200000;
    unsigned char *blob = random_blob(len);
    blob_id(blob, len, hex);

    /* Sato's phone uploads; sato revokes the phone's session from the other one mid-PATCH. */
    cr_assert_eq(create_upload(tok_phone, hex, len, location), 201, "%s", resp);
    cr_assert_eq(patch(tok_phone, location, 0, blob, 50000, 50000, false), 204, "%s", resp);
    int fd = patch_start(tok_phone, location, 50000, blob + 50000, len - 50000, 60000);
    wait_staged(location, 50000 + 60000);
    cJSON *r = ws_call(&s, "{\"id\":1,\"op\":\"session.list\"}");
    long long phone_session = -1;
    cJSON *ses;
    cJSON_ArrayForEach(ses, cJSON_GetObjectItem(r, "sessions"))
    {
        if (!cJSON_IsTrue(cJSON_GetObjectItem(ses, "current")))
            phone_session = (long long)cJSON_GetObjectItem(ses, "id")->valuedouble;
    }
    cJSON_Delete(r);
    cr_assert_geq(phone_session, 0);
    r = ws_callf(&s, "\"op\":\"session.revoke\",\"session\":%lld", phone_session);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    cr_assert_eq(patch_finish(fd, blob + 110000, len - 110000), 401, "%s", resp);
    cr_assert(strstr(resp, "\"unauthorized\""), "%s", resp);
    cr_assert_eq(head_offset(tok_sato, location), 50000, "nothing of the PATCH was committed");
    cr_assert_eq(patch(tok_sato, location, 50000, blob + 50000, len - 50000, len - 50000, false),
                 204, "the other session resumes from the committed offset: %s", resp);
    char path[128];
    snprintf(path, sizeof path, "/api/v1/blobs/%s", hex);
    cr_assert_eq(upload_call("GET", path, tok_sato, NULL, "", 0, 0), 200);
    const char *body = strstr(resp, "\r\n\r\n") + 4;
    cr_assert(resp_len - (size_t)(body - resp) == len && memcmp(body, blob, len) == 0);

    /* An admin disables ito mid-PATCH, the last one: no blob comes of it. */
    unsigned char *two = random_blob(len);
    blob_id(two, len, hex);
    cr_assert_eq(create_upload(tok_ito, hex, len, location), 201, "%s", resp);
    fd = patch_start(tok_ito, location, 0, two, len, 100000);
    wait_staged(location, 100000);
    r = ws_call(&a, "{\"id\":2,\"op\":\"user.disable\",\"login\":\"ito\"}");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    cr_assert_eq(patch_finish(fd, two + 100000, len - 100000), 401, "%s", resp);
    r = ws_call(&a, "{\"id\":3,\"op\":\"user.enable\",\"login\":\"ito\"}");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    ws_close_fd(&i);
    user_ws(&i, "ito", tok_ito);
    cr_assert_eq(head_offset(tok_ito, location), 0, "nothing of the PATCH was committed");
    snprintf(path, sizeof path, "/api/v1/blobs/%s", hex);
    cr_assert_eq(upload_call("GET", path, tok_ito, NULL, "", 0, 0), 404, "no blob");
    ws_close_fd(&s);
    ws_close_fd(&phone);
    ws_close_fd(&i);
    ws_close_fd(&a);
    free(blob);
    free(two);
}

/* ---- limits: quotas and expiry, on a server of their own ---- */

static void setup_limits(void)
{
    kzd_setup_with(&d, "\"upload_quota_bytes\":1048576,\"blob_max_bytes\":600000");
}

Test(e2ee, quotas_hold_and_expired_uploads_are_refused_then_swept, .init = setup_limits)
{
    add_user("sato");
    char token[64], location[128], hex[65];
    struct ws w;
    user_ws(&w, "sato", token);
    ws_close_fd(&w);
    unsigned char *blob = random_blob(500000);
    upload_blob(token, blob, 500000, hex);
    /* 500,000 stored; another 500,000 still fits the 1 MiB quota, a third does not. */
    unsigned char *two = random_blob(500000), *three = random_blob(500000);
    char hex2[65], hex3[65];
    blob_id(two, 500000, hex2);
    blob_id(three, 500000, hex3);
    cr_assert_eq(create_upload(token, hex2, 500000, location), 201, "%s", resp);
    cr_assert_eq(create_upload(token, hex3, 500000, NULL), 413, "over the quota: %s", resp);
    cr_assert(strstr(resp, "quota"), "%s", resp);
    cr_assert_eq(create_upload(token, hex3, 700000, NULL), 413, "over blob_max_bytes");

    /* An upload left unfinished past its expiry: 410, then the sweep removes it. */
    cr_assert_eq(patch(token, location, 0, two, 100000, 100000, false), 204);
    char staging[400];
    snprintf(staging, sizeof staging, "%s/uploads/%s", d.dir, strrchr(location, '/') + 1);
    struct stat sb;
    cr_assert_eq(stat(staging, &sb), 0, "the staging file exists");
    cr_assert_eq(kzd_stop(&d), 0);
    char db[400];
    snprintf(db, sizeof db, "%s/kizuna.db", d.dir);
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
    cr_assert_eq(
        sqlite3_prepare_v2(h, "UPDATE uploads SET expires_at = 1 WHERE id = ?", -1, &st, NULL),
        SQLITE_OK);
    sqlite3_bind_text(st, 1, strrchr(location, '/') + 1, -1, SQLITE_STATIC);
    cr_assert_eq(sqlite3_step(st), SQLITE_DONE);
    cr_assert_eq(sqlite3_changes(h), 1);
    sqlite3_finalize(st);
    sqlite3_close(h);
    /* A staging file no upload owns (left by a kill after a commit) goes at the next start. */
    char orphan[400];
    snprintf(orphan, sizeof orphan, "%s/uploads/orphan0staging0file", d.dir);
    FILE *of = fopen(orphan, "w");
    cr_assert_not_null(of);
    fputs("left behind", of);
    fclose(of);
    kzd_start(&d);
    /* The first sweep runs at start; either answer says the upload is over, never 200. */
    long long got = head_offset(token, location);
    cr_assert(got == -410 || got == -404, "an expired upload is refused (%lld)", got);
    /* The housekeeping beat (1 s in tests) drops the row and the staging file: waiting for a
     * periodic job, with a deadline, not for readiness. */
    for (int i = 0; i < 100 && (stat(staging, &sb) == 0 || head_offset(token, location) != -404);
         i++)
        usleep(50000);
    cr_assert_neq(stat(staging, &sb), 0, "the staging file is removed");
    cr_assert_neq(stat(orphan, &sb), 0, "an orphan staging file is removed");
    cr_assert_eq(head_offset(token, location), -404);
    /* Expired bytes no longer count: the quota has room again. */
    cr_assert_eq(create_upload(token, hex3, 500000, NULL), 201, "%s", resp);
    free(blob);
    free(two);
    free(three);
}

/* ---- epochs: a key reaches only current devices, and a departed holder closes an epoch ---- */

/* Posts e2ee.keys for epoch with an entry for each of n devices (the boxes are not the server's
 * to open: any bytes do) and returns the reply's code (static). */
static const char *post_keys(struct ws *w, const char *room, const struct dev *from,
                             const char *epoch, const struct dev *const *to, int n)
{
    char data[2048];
    int len = snprintf(data, sizeof data, "{\"epoch\":\"%s\",\"history\":\"shared\",\"entries\":[",
                       epoch);
    for (int i = 0; i < n; i++)
        len += snprintf(data + len, sizeof data - (size_t)len, "%s{\"to\":\"%s\",\"box\":\"AAAA\"}",
                        i ? "," : "", to[i]->id);
    snprintf(data + len, sizeof data - (size_t)len, "]}");
    static char code[32];
    cJSON *r = e2ee_post(w, room, "e2ee.keys", from, NULL, data, false);
    snprintf(code, sizeof code, "%s", reply_code(r));
    cJSON_Delete(r);
    return code;
}

/* Posts an e2ee.photo under epoch; returns the reply's code (static) and, on a refusal, its
 * message in msg. */
static const char *post_photo(struct ws *w, const char *room, const struct dev *from,
                              const char *epoch, char *msg, size_t msglen)
{
    char data[256];
    snprintf(data, sizeof data, "{\"epoch\":\"%s\",\"n\":0,\"ct\":\"AAAA\"}", epoch);
    static char code[32];
    cJSON *r = e2ee_post(w, room, "e2ee.photo", from, NULL, data, false);
    snprintf(code, sizeof code, "%s", reply_code(r));
    const cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "message");
    if (msg)
        snprintf(msg, msglen, "%s", cJSON_IsString(m) ? m->valuestring : "");
    cJSON_Delete(r);
    return code;
}

/* A client that forgot to rotate (E2EE.md: a new epoch on revocation and on removal) is stopped
 * by the server: it takes key envelopes only for current member devices, and refuses a photo
 * under an epoch whose key went to a device that has since left (revoked, logged out, or its
 * owner removed). The clients' own rule is in test_photo.c. */
Test(e2ee, a_key_reaches_only_current_devices_and_an_epoch_held_by_one_that_left_is_closed)
{
    add_user("sato");
    add_user("ito");
    add_user("kato");
    char tok[64], room[64], msg[512];
    struct ws s, i, i2, k;
    user_ws(&s, "sato", tok);
    user_ws(&i, "ito", tok);
    user_ws(&i2, "ito", tok); /* ito's second phone: a session of its own */
    user_ws(&k, "kato", tok);
    struct dev ds, di, di2, dk;
    struct {
        struct ws *w;
        const char *login;
        struct dev *v;
    } regs[] = {{&s, "sato", &ds}, {&i, "ito", &di}, {&i2, "ito", &di2}, {&k, "kato", &dk}};
    for (size_t n = 0; n < sizeof regs / sizeof regs[0]; n++) {
        dev_new(regs[n].v);
        cJSON *r = dev_register(regs[n].w, regs[n].login, regs[n].v, false);
        cr_assert_str_eq(reply_code(r), "ok");
        cJSON_Delete(r);
    }
    room_with(&s, "[\"ito\"]", room);
    const struct dev *first[] = {&ds, &di}, *phone2[] = {&di2}, *all[] = {&ds, &di, &di2},
                     *kato[] = {&dk};
    cr_assert_str_eq(post_keys(&s, room, &ds, "E1", first, 2), "ok");
    cr_assert_str_eq(post_photo(&s, room, &ds, "E1", msg, sizeof msg), "ok", "%s", msg);
    /* Ito's second phone asked for the key, and sato answered. */
    cr_assert_str_eq(post_keys(&s, room, &ds, "E1", phone2, 1), "ok");
    cr_assert_str_eq(post_photo(&s, room, &ds, "E1", msg, sizeof msg), "ok", "%s", msg);

    /* The phone is lost: ito revokes it. E1 is closed; a key for it is refused. */
    cJSON *r = ws_callf(&i, "\"op\":\"device.revoke\",\"device\":\"%s\"", di2.id);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    cr_assert_str_eq(post_photo(&s, room, &ds, "E1", msg, sizeof msg), "conflict",
                     "a photo under an epoch the revoked phone holds");
    cr_assert(strstr(msg, di2.id) && strstr(msg, "new epoch"), "%s", msg);
    cr_assert_str_eq(post_keys(&s, room, &ds, "E1", phone2, 1), "conflict");
    cr_assert_str_eq(post_keys(&s, room, &ds, "E2", all, 3), "conflict",
                     "one entry for a revoked device refuses the whole event");
    cr_assert_str_eq(post_photo(&s, room, &ds, "E2", msg, sizeof msg), "ok",
                     "nothing of the refused event was kept: %s", msg);
    cr_assert_str_eq(post_keys(&s, room, &ds, "E2", first, 2), "ok");
    cr_assert_str_eq(post_photo(&s, room, &ds, "E2", msg, sizeof msg), "ok", "%s", msg);

    /* A member who got E2 by a key request is removed: E2 is closed for photos too. */
    r = ws_callf(&s, "\"op\":\"room.invite\",\"room\":\"%s\",\"user\":\"kato\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    cr_assert_str_eq(post_keys(&i, room, &di, "E2", kato, 1), "ok", "any member device answers");
    cr_assert_str_eq(post_photo(&s, room, &ds, "E2", msg, sizeof msg), "ok", "%s", msg);
    r = ws_callf(&s, "\"op\":\"room.remove\",\"room\":\"%s\",\"user\":\"kato\"", room);
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    cr_assert_str_eq(post_photo(&s, room, &ds, "E2", msg, sizeof msg), "conflict");
    cr_assert(strstr(msg, dk.id), "%s", msg);
    cr_assert_str_eq(post_keys(&s, room, &ds, "E3", kato, 1), "conflict", "kato is no member");
    cr_assert_str_eq(post_keys(&s, room, &ds, "E3", first, 2), "ok");
    cr_assert_str_eq(post_photo(&s, room, &ds, "E3", msg, sizeof msg), "ok", "%s", msg);

    /* A device whose session ended (logout) has left the recipients as well. */
    r = ws_call(&i, "{\"id\":98,\"op\":\"logout\"}");
    cr_assert_str_eq(reply_code(r), "ok");
    cJSON_Delete(r);
    cr_assert_str_eq(post_photo(&s, room, &ds, "E3", msg, sizeof msg), "conflict", "%s", msg);
    const struct dev *sato_only[] = {&ds};
    cr_assert_str_eq(post_keys(&s, room, &ds, "E5", sato_only, 1), "ok");
    cr_assert_str_eq(post_photo(&s, room, &ds, "E5", msg, sizeof msg), "ok", "%s", msg);

    /* The fields the server reads must be there. */
    const char *bad_keys[] = {"not json", "{\"entries\":[]}", "{\"epoch\":\"E4\"}",
                              "{\"epoch\":\"E4\",\"entries\":[{\"box\":\"AAAA\"}]}",
                              "{\"epoch\":7,\"entries\":[]}"};
    for (size_t n = 0; n < sizeof bad_keys / sizeof bad_keys[0]; n++) {
        r = e2ee_post(&s, room, "e2ee.keys", &ds, NULL, bad_keys[n], false);
        cr_assert_str_eq(reply_code(r), "bad_request", "%s", bad_keys[n]);
        cJSON_Delete(r);
    }
    r = e2ee_post(&s, room, "e2ee.photo", &ds, NULL, "{\"n\":0,\"ct\":\"AAAA\"}", false);
    cr_assert_str_eq(reply_code(r), "bad_request", "a photo names its epoch");
    cJSON_Delete(r);
    ws_close_fd(&s);
    ws_close_fd(&i);
    ws_close_fd(&i2);
    ws_close_fd(&k);

    /* A database from before migration 9 learns who holds which epoch from the e2ee.keys
     * events it already has: drop the table (and undo the later migrations: 10's columns,
     * 11's device lists, 12's revocation positions, 13's index), step the schema back, start
     * again. */
    cr_assert_eq(kzd_stop(&d), 0);
    char db[400];
    snprintf(db, sizeof db, "%s/kizuna.db", d.dir);
    sqlite3 *h = NULL;
    cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(h,
                              "DROP TABLE epoch_devices; PRAGMA user_version = 8;"
                              "ALTER TABLE messages DROP COLUMN deleted_by;"
                              "ALTER TABLE rooms DROP COLUMN archived_at;"
                              "DROP TABLE device_lists;"
                              "ALTER TABLE devices DROP COLUMN revoked_pos;"
                              "DROP INDEX room_members_joined;"
                              /* an event no migration may choke on */
                              "INSERT INTO events (room, origin, inc, seq, event_id, type, ts,"
                              " payload, sig) SELECT room, origin, inc, seq + 1000, 'junk',"
                              " 'e2ee.keys', ts, CAST('{\"content\":{\"data\":\"[1,\"}}' AS BLOB),"
                              " sig FROM events WHERE type = 'e2ee.keys' LIMIT 1;",
                              NULL, NULL, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(h));
    sqlite3_close(h);
    kzd_start(&d);
    user_ws(&s, "sato", tok);
    cr_assert_str_eq(post_photo(&s, room, &ds, "E1", msg, sizeof msg), "conflict", "%s", msg);
    cr_assert_str_eq(post_photo(&s, room, &ds, "E2", msg, sizeof msg), "conflict", "%s", msg);
    cr_assert_str_eq(post_photo(&s, room, &ds, "E5", msg, sizeof msg), "ok", "%s", msg);
    ws_close_fd(&s);
}
