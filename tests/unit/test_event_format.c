/* test_event_format.c - the event format (server/event_format.c) against the fixed vectors in
 * tests/vectors/events/, which were made by a separate implementation (Python's json, hashlib
 * and cryptography): building each payload from its fields gives exactly the stored bytes,
 * ids, room ids and signatures match, and a log checker takes every good event and gives each
 * bad one the verdict the vector names. docs/event-format.md describes both. */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event_format.h"
#include "json_write.h"
#include "vectors.h"

/* o[key] as an integer, or 0 when missing (fields and log states v1's vectors do not have). */
static int64_t opt_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

static void key_of(const cJSON *v, uint8_t pk[32], uint8_t sk[64])
{
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(v, "key");
    size_t n;
    unsigned char *seed = vec_unhex(vec_str_or_null(key, "seed_hex"), &n);
    cr_assert_eq(n, 32);
    crypto_sign_seed_keypair(pk, sk, seed);
    free(seed);
    unsigned char *want = vec_unhex(vec_str_or_null(key, "public_key_hex"), &n);
    cr_assert_eq(n, 32);
    cr_assert_eq(memcmp(want, pk, 32), 0, "the seed does not give the public key");
    free(want);
    const char *key_id = vec_str_or_null(key, "key_id"); /* v2's files */
    if (key_id) {
        char mine[KZ_EVENT_KEY_ID_CHARS];
        kz_event_key_id(pk, mine);
        cr_assert_str_eq(mine, key_id, "key id");
    }
}

/* Every event of a log vector: bytes, id, room id, signature, fields read back, and the whole
 * log checked from scratch (or, given log, continued). Returns the number of events. */
static int check_log_vector_in(const char *name, struct kz_event_log *given)
{
    cJSON *v = vec_load("events", name);
    uint8_t pk[32], sk[64];
    key_of(v, pk, sk);
    struct kz_event_log log;
    if (given)
        log = *given;
    else
        kz_event_log_start(&log, NULL, NULL, 0, 0, NULL);
    int n = 0;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(v, "events"))
    {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(ev, "fields");
        const char *payload = vec_str_or_null(ev, "payload");
        size_t plen = strlen(payload), hlen;
        unsigned char *bytes = vec_unhex(vec_str_or_null(ev, "payload_hex"), &hlen);
        cr_assert(hlen == plen && memcmp(bytes, payload, plen) == 0,
                  "%s #%d: payload and payload_hex differ", name, n + 1);
        free(bytes);

        /* Built from the fields: exactly the same bytes. */
        struct kz_event_fields kf = {.v = (int)opt_num(f, "v"),
                                     .room = vec_str_or_null(f, "room"),
                                     .origin = vec_str_or_null(f, "origin"),
                                     .inc = vec_num(f, "inc"),
                                     .key = vec_str_or_null(f, "key"),
                                     .seq = vec_num(f, "seq"),
                                     .prev = vec_str_or_null(f, "prev"),
                                     .hlc = opt_num(f, "hlc"),
                                     .ts = vec_num(f, "ts"),
                                     .type = vec_str_or_null(f, "type"),
                                     .sender = vec_str_or_null(f, "sender")};
        size_t blen = 0;
        char *built =
            kz_event_payload_build(&kf, cJSON_GetObjectItemCaseSensitive(f, "content"), &blen);
        cr_assert(built);
        cr_assert_str_eq(built, payload, "%s #%d: built differently", name, n + 1);
        cr_assert_eq(blen, plen);
        kz_event_payload_free(built);

        char id[KZ_EVENT_ID_CHARS];
        kz_event_id(payload, plen, id);
        cr_assert_str_eq(id, vec_str_or_null(ev, "event_id"), "%s #%d: event id", name, n + 1);
        if (vec_str_or_null(ev, "room_id")) {
            char room[KZ_EVENT_ID_CHARS];
            kz_event_room_id(payload, plen, room);
            cr_assert_str_eq(room, vec_str_or_null(ev, "room_id"), "%s #%d: room id", name, n + 1);
        }

        size_t siglen = 0;
        unsigned char *sig = vec_unhex(vec_str_or_null(ev, "signature_hex"), &siglen);
        if (siglen) {
            uint8_t mine[KZ_EVENT_SIG_BYTES];
            cr_assert_eq(kz_event_sign(payload, plen, sk, mine), 0);
            cr_assert_eq(siglen, sizeof mine);
            cr_assert_eq(memcmp(mine, sig, siglen), 0, "%s #%d: signature", name, n + 1);
            cr_assert(kz_event_verify(payload, plen, sig, siglen, pk));
        }

        /* Read back: the same fields, and the content. */
        struct kz_event_head h;
        cJSON *content = NULL;
        const char *why = kz_event_parse(payload, plen, &h, &content);
        cr_assert_null(why, "%s #%d: %s", name, n + 1, why);
        cr_assert_str_eq(h.room, kf.room ? kf.room : "");
        cr_assert_str_eq(h.origin, kf.origin);
        cr_assert_eq(h.inc, kf.inc);
        cr_assert_eq(h.seq, kf.seq);
        cr_assert_str_eq(h.prev, kf.prev ? kf.prev : "");
        cr_assert_eq(h.ts, kf.ts);
        cr_assert_eq(h.v, kf.v ? kf.v : 1);
        cr_assert_str_eq(h.key, kf.key ? kf.key : "");
        cr_assert_eq(h.hlc, kf.v ? kf.hlc : kf.ts, "v1's hlc is its ts");
        cr_assert_str_eq(h.type, kf.type);
        cr_assert_str_eq(h.sender, kf.sender);
        cr_assert(cJSON_Compare(content, cJSON_GetObjectItemCaseSensitive(f, "content"), true));
        cJSON_Delete(content);

        enum kz_event_verdict verdict = kz_event_log_check(&log, payload, plen, sig, siglen, pk,
                                                           vec_str_or_null(ev, "event_id"), id);
        cr_assert_eq(verdict, KZ_EVENT_OK, "%s #%d: %s", name, n + 1,
                     kz_event_verdict_name(verdict));
        free(sig);
        n++;
    }
    cr_assert_str_eq(log.room, vec_str_or_null(v, "room_id"));
    cr_assert_eq(log.signed_seq, log.seq, "%s does not end on a checkpoint", name);
    if (given)
        *given = log;
    cJSON_Delete(v);
    return n;
}

static int check_log_vector(const char *name)
{
    return check_log_vector_in(name, NULL);
}

Test(event_format, room_log)
{
    cr_assert_eq(check_log_vector("log-room.json"), 8);
}

Test(event_format, second_incarnation)
{
    cr_assert_eq(check_log_vector("log-incarnation.json"), 2);
}

/* v2: a version, the key's id and a clock that does not follow the origin's back. */
Test(event_format, v2_log)
{
    cr_assert_eq(check_log_vector("log-v2.json"), 6);
    cJSON *v = vec_load("events", "log-v2.json");
    int64_t last_ts = 0, last_hlc = 0;
    bool stepped_back = false;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(v, "events"))
    {
        const cJSON *f = vec_item(ev, "fields");
        int64_t ts = vec_num(f, "ts"), hlc = vec_num(f, "hlc");
        stepped_back |= ts < last_ts;
        cr_assert_eq(hlc, kz_event_hlc_next(ts, last_hlc), "hlc = max(now, highest + 1)");
        last_ts = ts;
        last_hlc = hlc;
    }
    cr_assert(stepped_back, "the vector's clock goes back");
    cJSON_Delete(v);
}

/* A v1 log continued in v2 by an upgraded origin: one log, one chain. */
Test(event_format, v1_log_continued_in_v2)
{
    struct kz_event_log log;
    kz_event_log_start(&log, NULL, NULL, 0, 0, NULL);
    cr_assert_eq(check_log_vector_in("log-room.json", &log), 8);
    cr_assert_eq(check_log_vector_in("log-upgrade.json", &log), 2);
    cr_assert_eq(log.seq, 10);
    cr_assert_eq(log.v, 2);
}

Test(event_format, hlc_next)
{
    cr_assert_eq(kz_event_hlc_next(1000, 0), 1000);
    cr_assert_eq(kz_event_hlc_next(1000, 999), 1000);
    cr_assert_eq(kz_event_hlc_next(1000, 1000), 1001, "never equal to the room's highest");
    cr_assert_eq(kz_event_hlc_next(500, 1000), 1001, "a clock stepped back does not move hlc back");
}

Test(event_format, rejects)
{
    cJSON *v = vec_load("events", "rejects.json");
    uint8_t pk[32], sk[64];
    key_of(v, pk, sk);
    int n = 0, kinds = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(v, "cases"))
    {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(c, "log");
        struct kz_event_log log;
        kz_event_log_start(&log, vec_str_or_null(l, "room"), vec_str_or_null(l, "origin"),
                           vec_num(l, "inc"), vec_num(l, "seq"), vec_str_or_null(l, "head"));
        /* v2's state, where a case gives it: the last event's version and clock, and the run
         * of unsigned events since the last signature. */
        log.v = (int)opt_num(l, "v");
        log.hlc = opt_num(l, "hlc");
        log.run_events = opt_num(l, "run_events");
        log.run_bytes = opt_num(l, "run_bytes");
        struct kz_event_log before = log;
        const char *payload = vec_str_or_null(c, "payload");
        size_t siglen;
        unsigned char *sig = vec_unhex(vec_str_or_null(c, "signature_hex"), &siglen);
        char id[KZ_EVENT_ID_CHARS] = "";
        enum kz_event_verdict verdict = kz_event_log_check(
            &log, payload, strlen(payload), sig, siglen, pk, vec_str_or_null(c, "event_id"), id);
        cr_assert_str_eq(kz_event_verdict_name(verdict), vec_str_or_null(c, "verdict"), "case %s",
                         vec_str_or_null(c, "name"));
        if (verdict == KZ_EVENT_OK) {
            cr_assert_eq(log.seq, before.seq + 1);
            cr_assert_str_eq(log.head, id);
            cr_assert_eq(log.signed_seq, siglen ? log.seq : before.signed_seq);
            cr_assert_eq(log.run_events, siglen ? 0 : before.run_events + 1);
        } else {
            cr_assert_eq(memcmp(&log, &before, sizeof log), 0, "case %s moved the log",
                         vec_str_or_null(c, "name"));
        }
        if (verdict == KZ_EVENT_MALFORMED) {
            struct kz_event_head h;
            cr_assert_not_null(kz_event_parse(payload, strlen(payload), &h, NULL));
        }
        kinds |= 1 << verdict;
        free(sig);
        n++;
    }
    cr_assert_gt(n, 50);
    cr_assert_eq(kinds, (1 << (KZ_EVENT_VERDICT_LAST + 1)) - 1, "every verdict has a case");
    cJSON_Delete(v);
}

/* The documented format names what the code uses. */
Test(event_format, documented)
{
    char path[512];
    snprintf(path, sizeof path, "%s/event-format.md", DOCS_DIR);
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    static char doc[1 << 16];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[n] = '\0';
    const char *must[] = {KZ_EVENT_DOMAIN_ID,    KZ_EVENT_DOMAIN_ROOM, KZ_EVENT_DOMAIN_SIGN,
                          KZ_EVENT_DOMAIN_KEYID, "log-room.json",      "log-incarnation.json",
                          "log-v2.json",         "log-upgrade.json",   "rejects.json"};
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
        cr_assert(strstr(doc, must[i]), "docs/event-format.md does not mention %s", must[i]);
    for (int v = KZ_EVENT_OK; v <= KZ_EVENT_VERDICT_LAST; v++) {
        char quoted[40];
        snprintf(quoted, sizeof quoted, "`%s`", kz_event_verdict_name(v));
        cr_assert(strstr(doc, quoted), "docs/event-format.md does not name verdict %s", quoted);
    }
}

/* json_write.c prints what cJSON_PrintUnformatted prints, byte for byte: every type, escapes of
 * every byte below 0x20, non-ASCII, numbers cJSON must print itself, nesting, empty
 * containers, raw items; and integers in plain decimal to the limits of int64_t. */
Test(event_format, json_write_matches_cjson)
{
    char ctl[64], *p = ctl;
    for (int c = 1; c < 0x20; c++)
        *p++ = (char)c;
    *p++ = '"';
    *p++ = '\\';
    *p++ = '/';
    *p++ = 0x7f;
    *p = '\0';
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "ctl", ctl);
    cJSON_AddStringToObject(o, "ja", "県道12号線が冠水 🙏");
    cJSON_AddStringToObject(o, "", "");
    cJSON_AddNumberToObject(o, "int", 42);
    cJSON_AddNumberToObject(o, "neg", -7);
    cJSON_AddNumberToObject(o, "big", 9007199254740991.0);
    cJSON_AddNumberToObject(o, "frac", 0.1);
    cJSON_AddNumberToObject(o, "tiny", 1e-300);
    cJSON_AddNumberToObject(o, "negzero", -0.0);
    /* around the writer's own digits for whole numbers below 1e15, and past them */
    const double whole[] = {
        2147483647.0,        2147483648.0,       -2147483648.0, -2147483649.0, -12345678901.0,
        999999999999999.0,   -999999999999999.0, 1e15,          -1e15,         1e16,
        123456789012345678.0};
    for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++) {
        char key[16];
        snprintf(key, sizeof key, "w%zu", i);
        cJSON_AddNumberToObject(o, key, whole[i]);
    }
    cJSON_AddTrueToObject(o, "t");
    cJSON_AddFalseToObject(o, "f");
    cJSON_AddNullToObject(o, "n");
    cJSON_AddRawToObject(o, "raw", "123");
    cJSON_AddObjectToObject(o, "empty_o");
    cJSON_AddArrayToObject(o, "empty_a");
    cJSON *a = cJSON_AddArrayToObject(o, "a");
    cJSON_AddItemToArray(a, cJSON_CreateString("x\ny"));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(3));
    cJSON *inner = cJSON_CreateObject();
    cJSON_AddStringToObject(inner, "k\"ey", "v");
    cJSON_AddItemToArray(a, inner);
    cJSON_AddItemToArray(a, cJSON_CreateArray());
    char *want = cJSON_PrintUnformatted(o);
    struct kz_json j;
    kz_json_init(&j, 0);
    kz_json_item(&j, o);
    size_t len = 0;
    char *got = kz_json_take(&j, &len);
    cr_assert(got && want);
    cr_assert_str_eq(got, want);
    cr_assert_eq(len, strlen(want));
    free(got);
    cJSON_free(want);
    cJSON_Delete(o);

    const int64_t ints[] = {0, 1, -1, 9, 10, 1767225600000, 9007199254740991, INT64_MAX, INT64_MIN};
    const char *text[] = {"0",
                          "1",
                          "-1",
                          "9",
                          "10",
                          "1767225600000",
                          "9007199254740991",
                          "9223372036854775807",
                          "-9223372036854775808"};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        kz_json_init(&j, 0);
        kz_json_int(&j, ints[i]);
        got = kz_json_take(&j, NULL);
        cr_assert_str_eq(got, text[i]);
        free(got);
    }
    /* An item cJSON cannot print fails the whole text. */
    cJSON bad = {0};
    kz_json_init(&j, 0);
    kz_json_item(&j, &bad);
    cr_assert_null(kz_json_take(&j, NULL));
}
