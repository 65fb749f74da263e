/* photocli.h - what the integration tests that drive the real kizuna through photos share
 * (test_photo.c, test_trust.c, test_fed_photo.c): reading the JSON a `--json` command printed
 * and a device's config dir, making a camera-like JPEG with kz-mkjpeg, and checking a photo's
 * bytes and what a device's key store opens. Each test keeps its own way of running kizuna
 * (one server or several, a dir per device or per user); these take paths and text, not that.
 *
 * Header-only (static inline), so a test includes it without another library to link; the
 * caller links libsodium when it uses pcli_keystore_opens, and defines nothing. Every helper
 * aborts the test (Criterion) where it says so. */
#ifndef KIZUNA_TEST_PHOTOCLI_H
#define KIZUNA_TEST_PHOTOCLI_H

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <ftw.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

/* o's string member k, or "" (never NULL). */
static inline const char *pcli_jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* o's number member k, or 0. */
static inline long long pcli_jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) ? (long long)v->valuedouble : 0;
}

/* The JSON document of a --json command's output (the last line that parses: warnings on
 * stderr come before it). Aborts the test if there is none; the caller deletes it. */
static inline cJSON *pcli_json_of(const char *out)
{
    cJSON *found = NULL;
    for (const char *line = out; *line;) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        if (*line == '{') {
            cJSON *o = cJSON_ParseWithLength(line, n);
            if (o) {
                cJSON_Delete(found);
                found = o;
            }
        }
        line += n + (end != NULL);
    }
    cr_assert_not_null(found, "no JSON in: %s", out);
    return found;
}

/* The whole file (NUL-terminated, caller frees) and its length; NULL and *len 0 if it cannot
 * be opened. */
static inline unsigned char *pcli_slurp(const char *path, size_t *len)
{
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    unsigned char *buf = malloc((size_t)n + 1);
    *len = fread(buf, 1, (size_t)n, f);
    fclose(f);
    buf[*len] = 0;
    return buf;
}

/* A JSON file of a client's config dir, base/dir/name; aborts the test if it is missing or not
 * JSON. The caller deletes it. */
static inline cJSON *pcli_config_json(const char *base, const char *dir, const char *name)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s/%s", base, dir, name);
    size_t n;
    unsigned char *text = pcli_slurp(path, &n);
    cr_assert_not_null(text, "%s has %s", dir, name);
    cJSON *o = cJSON_Parse((char *)text);
    free(text);
    cr_assert_not_null(o, "%s/%s is JSON", dir, name);
    return o;
}

/* Writes a synthetic camera photo to path with kz-mkjpeg (KZ_MKJPEG_PATH, which the test
 * defines): GPS gps ("LAT,LON"), capture time (EXIF "YYYY:MM:DD HH:MM:SS") and canary in its
 * EXIF; big: 2400x1800 with detail, else kz-mkjpeg's small default. */
#define pcli_make_jpeg(path, gps, time, canary, big)                                               \
    pcli_mkjpeg(KZ_MKJPEG_PATH, path, gps, time, canary, big)
static inline void pcli_mkjpeg(const char *mkjpeg, const char *path, const char *gps,
                               const char *time, const char *canary, bool big)
{
    const char *argv[] = {mkjpeg,     path,       "--gps",
                          gps,        "--time",   time,
                          "--canary", canary,     big ? "--width" : NULL,
                          "2400",     "--height", "1800",
                          "--detail", NULL};
    char o[1024];
    cr_assert_eq(run_capture(argv, NULL, NULL, o, sizeof o), 0, "kz-mkjpeg: %s", o);
}

/* Walks the JPEG's marker segments up to the scan: true if any is APP1 (EXIF or XMP). Aborts
 * the test if it does not start as a JPEG. */
static inline bool pcli_has_app1(const unsigned char *j, size_t n)
{
    cr_assert(n > 4 && j[0] == 0xFF && j[1] == 0xD8, "a JPEG");
    for (size_t i = 2; i + 4 <= n && j[i] == 0xFF;) {
        unsigned m = j[i + 1];
        if (m == 0xE1)
            return true;
        if (m == 0xDA)
            break;
        i += 2 + ((size_t)j[i + 2] << 8 | j[i + 3]);
    }
    return false;
}

/* Whether any epoch key that the device with config dir base/dir keeps for the room opens the
 * photo event's message (XChaCha20-Poly1305, additional data as docs/protocol.md says): what a
 * lost phone's files give whoever holds it, whatever a server still serves it. *tried gets the
 * number of keys tried (every one kept, whatever epoch it claims to be). */
static inline bool pcli_keystore_opens(const char *base, const char *dir, const char *room,
                                       const cJSON *ev, int *tried)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s/rooms/%s.json", base, dir, room);
    size_t n;
    unsigned char *text = pcli_slurp(path, &n);
    cr_assert_not_null(text, "%s keeps keys for the room", dir);
    cJSON *ks = cJSON_Parse((char *)text);
    free(text);
    const cJSON *content = cJSON_GetObjectItem(ev, "content");
    cJSON *data = cJSON_Parse(pcli_jstr(content, "data"));
    const char *ct64 = pcli_jstr(data, "ct");
    unsigned char *ct = malloc(strlen(ct64) + 1), *plain = malloc(strlen(ct64) + 1);
    size_t ct_len = 0;
    cr_assert_eq(sodium_base642bin(ct, strlen(ct64) + 1, ct64, strlen(ct64), NULL, &ct_len, NULL,
                                   sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                 0);
    cr_assert_gt(ct_len, 24 + 16);
    char ad[400];
    int ad_len = snprintf(ad, sizeof ad, "kizuna/photo/v2%c%s%c%s%c%s%c%lld%c%lld", 0, room, 0,
                          pcli_jstr(data, "epoch"), 0, pcli_jstr(content, "device"), 0,
                          pcli_jnum(data, "seq"), 0, pcli_jnum(data, "ts"));
    bool opened = false;
    *tried = 0;
    const cJSON *k;
    cJSON_ArrayForEach(k, cJSON_GetObjectItem(ks, "keys"))
    {
        uint8_t key[32];
        size_t got = 0;
        const char *k64 = pcli_jstr(k, "key");
        if (sodium_base642bin(key, sizeof key, k64, strlen(k64), NULL, &got, NULL,
                              sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
            got != sizeof key)
            continue;
        (*tried)++;
        opened = opened || crypto_aead_xchacha20poly1305_ietf_decrypt(
                               plain, NULL, NULL, ct + 24, ct_len - 24, (unsigned char *)ad,
                               (unsigned long long)ad_len, ct, key) == 0;
    }
    free(ct);
    free(plain);
    cJSON_Delete(data);
    cJSON_Delete(ks);
    return opened;
}

/* ---- what must not be in a file: a caption, GPS, a photo's pixels ---- */

#define PCLI_SCAN_MAX 12

/* The needles looked for and where they were found ("WHAT in PATH" lines): one scan a test
 * process (Criterion runs each test in a process of its own). */
struct pcli_scan {
    const char *what[PCLI_SCAN_MAX];
    const void *needle[PCLI_SCAN_MAX];
    size_t len[PCLI_SCAN_MAX];
    int n;
    char hits[4096];
};

static inline struct pcli_scan *pcli_scan(void)
{
    static struct pcli_scan scan;
    return &scan;
}

/* Starts a new scan: no needles, no hits. */
static inline void pcli_scan_reset(void)
{
    memset(pcli_scan(), 0, sizeof(struct pcli_scan));
}

/* Looks for len bytes at needle (which must outlive the scan), named what in a hit. */
static inline void pcli_scan_add(const char *what, const void *needle, size_t len)
{
    struct pcli_scan *s = pcli_scan();
    cr_assert_lt(s->n, PCLI_SCAN_MAX);
    s->what[s->n] = what;
    s->needle[s->n] = needle;
    s->len[s->n++] = len;
}

/* An nftw callback (FTW_PHYS), or called on one file with type FTW_F: adds a hit line for each
 * needle the file holds. */
static inline int pcli_scan_file(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (type != FTW_F)
        return 0;
    struct pcli_scan *s = pcli_scan();
    size_t len;
    unsigned char *buf = pcli_slurp(path, &len);
    for (int i = 0; buf && i < s->n; i++)
        if (memmem(buf, len, s->needle[i], s->len[i]))
            snprintf(s->hits + strlen(s->hits), sizeof s->hits - strlen(s->hits), "%s in %s\n",
                     s->what[i], path);
    free(buf);
    return 0;
}

#endif
