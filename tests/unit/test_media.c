/* test_media.c - media/ on images and blobs made at test time (no binary fixtures): the JPEG
 * probe, EXIF, the photo pipeline, encrypted blobs, device keys, envelopes, epoch key checks,
 * safety numbers. */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "exif_build.h"
#include "media.h"

/* ---- helpers ---- */

static unsigned char *make_jpeg(int w, int h, const struct exif_spec *s, size_t *len)
{
    unsigned char *j = exb_jpeg(w, h, false, 90, s, len);
    cr_assert_not_null(j);
    return j;
}

/* Decodes a JPEG to RGB; caller frees. */
static unsigned char *decode(const unsigned char *j, size_t len, int *w, int *h)
{
    tjhandle tj = tjInitDecompress();
    int ss, cs;
    cr_assert_eq(tjDecompressHeader3(tj, j, (unsigned long)len, w, h, &ss, &cs), 0);
    unsigned char *px = malloc((size_t)*w * *h * 3);
    cr_assert_eq(tjDecompress2(tj, j, (unsigned long)len, px, *w, 0, *h, TJPF_RGB, 0), 0);
    tjDestroy(tj);
    return px;
}

static bool near_colour(const unsigned char *p, uint32_t c)
{
    for (int k = 0; k < 3; k++) {
        int want = (int)(c >> (16 - 8 * k)) & 0xff;
        if (abs(p[k] - want) > 48)
            return false;
    }
    return true;
}

static bool contains(const unsigned char *hay, size_t n, const char *needle)
{
    return memmem(hay, n, needle, strlen(needle)) != NULL;
}

/* Every segment before the scan must be one a plain encoder writes: no APP1..APP15, no COM. */
static void assert_no_metadata(const unsigned char *j, size_t len, const char *canary)
{
    cr_assert(len > 4 && j[0] == 0xff && j[1] == 0xd8);
    size_t pos = 2;
    for (;;) {
        cr_assert_leq(pos + 4, len);
        cr_assert_eq(j[pos], 0xff);
        unsigned m = j[pos + 1];
        if (m == 0xda)
            break;
        cr_assert(m < 0xe1 || m > 0xef, "APP%u segment in the output", m - 0xe0);
        cr_assert_neq(m, 0xfe, "COM segment in the output");
        if (m == 0xe0)
            cr_assert_eq(memcmp(j + pos + 4, "JFIF\0", 5), 0, "APP0 that is not JFIF");
        pos += 2 + ((size_t)j[pos + 2] << 8 | j[pos + 3]);
    }
    cr_assert_not(contains(j, len, canary), "canary in the output");
    cr_assert_not(contains(j, len, "Exif"));
    cr_assert_not(contains(j, len, "http://ns.adobe.com"));
}

static bool rc_defined(enum media_rc rc)
{
    return rc >= MEDIA_OK && rc <= MEDIA_BLOB_LENGTH;
}

/* ---- probe ---- */

Test(media, probe_reads_dimensions_of_a_real_jpeg)
{
    int w = 64, h = 48;
    unsigned char *rgb = calloc((size_t)w * h * 3, 1);
    unsigned char *jpeg = NULL;
    unsigned long len = 0;
    tjhandle tj = tjInitCompress();
    cr_assert_eq(tjCompress2(tj, rgb, w, 0, h, TJPF_RGB, &jpeg, &len, TJSAMP_420, 80, 0), 0);
    struct media_jpeg_info info;
    cr_assert_eq(media_jpeg_probe(jpeg, len, &info), MEDIA_OK);
    cr_assert_eq(info.width, 64);
    cr_assert_eq(info.height, 48);
    /* Truncated to its first bytes: a JPEG that cannot be read. */
    enum media_rc rc = media_jpeg_probe(jpeg, 20, &info);
    cr_assert_eq(rc, MEDIA_CORRUPT, "got %s", media_rc_name(rc));
    tjFree(jpeg);
    tjDestroy(tj);
    free(rgb);
}

Test(media, probe_rejects_non_jpeg)
{
    struct media_jpeg_info info;
    const unsigned char png[] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    cr_assert_eq(media_jpeg_probe(png, sizeof png, &info), MEDIA_NOT_JPEG);
    cr_assert_eq(media_jpeg_probe(png, 0, &info), MEDIA_NOT_JPEG);
    cr_assert_str_eq(media_rc_name(MEDIA_NOT_JPEG), "not_jpeg");
}

Test(media, every_result_code_has_its_own_name)
{
    for (int a = MEDIA_OK; a <= MEDIA_BLOB_LENGTH; a++) {
        cr_assert_str_neq(media_rc_name(a), "unknown");
        for (int b = a + 1; b <= MEDIA_BLOB_LENGTH; b++)
            cr_assert_str_neq(media_rc_name(a), media_rc_name(b));
    }
}

/* ---- EXIF ---- */

Test(exif, orientation_time_and_gps_in_both_byte_orders)
{
    for (int be = 0; be <= 1; be++) {
        struct exif_spec s = {.big_endian = be,
                              .orientation = 6,
                              .datetime = "2020:01:02 03:04:05",
                              .datetime_original = "2024:05:01 12:34:56",
                              .has_gps = true,
                              .lat = -33.856784,
                              .lon = 151.215297,
                              .canary = "c"};
        size_t tlen;
        unsigned char *tiff = exb_tiff(&s, &tlen);
        cr_assert_eq(tiff[0], be ? 'M' : 'I');
        struct media_exif e;
        cr_assert_eq(media_exif_from_tiff(tiff, tlen, &e), MEDIA_OK);
        cr_assert_eq(e.orientation, 6);
        cr_assert(e.has_captured_at);
        cr_assert_str_eq(e.captured_at, "2024-05-01T12:34:56"); /* original wins */
        cr_assert(e.has_gps);
        cr_assert_float_eq(e.lat, -33.856784, 1e-5);
        cr_assert_float_eq(e.lon, 151.215297, 1e-5);
        free(tiff);

        /* The same through a JPEG's APP1 segment. */
        size_t len;
        unsigned char *j = make_jpeg(32, 16, &s, &len);
        cr_assert_eq(media_exif_from_jpeg(j, len, &e), MEDIA_OK);
        cr_assert_eq(e.orientation, 6);
        cr_assert_str_eq(e.captured_at, "2024-05-01T12:34:56");
        cr_assert_float_eq(e.lon, 151.215297, 1e-5);
        free(j);
    }
}

Test(exif, falls_back_to_datetime_and_signs_follow_the_references)
{
    for (int be = 0; be <= 1; be++) {
        struct exif_spec s = {.big_endian = be,
                              .orientation = 3,
                              .datetime = "1999:12:31 23:59:59",
                              .has_gps = true,
                              .lat = 51.5,
                              .lon = -0.125};
        size_t tlen;
        unsigned char *tiff = exb_tiff(&s, &tlen);
        struct media_exif e;
        cr_assert_eq(media_exif_from_tiff(tiff, tlen, &e), MEDIA_OK);
        cr_assert_eq(e.orientation, 3);
        cr_assert_str_eq(e.captured_at, "1999-12-31T23:59:59");
        cr_assert_float_eq(e.lat, 51.5, 1e-6);
        cr_assert_float_eq(e.lon, -0.125, 1e-6);
        free(tiff);
    }
}

Test(exif, absent_and_nonsense_values_are_absent)
{
    struct exif_spec s = {.orientation = 9, .datetime = "0000:00:00 00:00:00"};
    size_t tlen;
    unsigned char *tiff = exb_tiff(&s, &tlen);
    struct media_exif e;
    cr_assert_eq(media_exif_from_tiff(tiff, tlen, &e), MEDIA_OK);
    cr_assert_eq(e.orientation, 1);
    cr_assert_not(e.has_captured_at);
    cr_assert_not(e.has_gps);
    free(tiff);
    /* A JPEG without EXIF, and bytes that are not TIFF. */
    size_t len;
    unsigned char *j = make_jpeg(16, 16, NULL, &len);
    cr_assert_eq(media_exif_from_jpeg(j, len, &e), MEDIA_OK);
    cr_assert_eq(e.orientation, 1);
    free(j);
    cr_assert_eq(media_exif_from_tiff((const unsigned char *)"XX*\0\0\0\0\0", 8, &e),
                 MEDIA_CORRUPT);
}

/* Little-endian TIFF builders for hand-made hostile structures. */
static void le16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void entry(unsigned char *p, unsigned tag, unsigned type, uint32_t count, uint32_t val)
{
    le16(p, tag);
    le16(p + 2, type);
    le32(p + 4, count);
    le32(p + 8, val);
}

Test(exif, hostile_offsets_loops_and_counts_stay_in_bounds)
{
    struct media_exif e;
    /* Each case is exactly as long as its bytes (heap copies, so ASan sees any overread). */
    unsigned char t[64];

    /* IFD0 whose Exif and GPS pointers point back at IFD0: a loop for a naive parser. */
    memset(t, 0, sizeof t);
    memcpy(t, "II*\0", 4);
    le32(t + 4, 8);
    le16(t + 8, 3);
    entry(t + 10, 0x0112, 3, 1, 8);
    entry(t + 22, 0x8769, 4, 1, 8);
    entry(t + 34, 0x8825, 4, 1, 8);
    unsigned char *h = malloc(50);
    memcpy(h, t, 50);
    cr_assert_eq(media_exif_from_tiff(h, 50, &e), MEDIA_OK);
    cr_assert_eq(e.orientation, 8);
    cr_assert_not(e.has_gps);
    free(h);

    /* An entry count of 65535 in a 20-byte buffer. */
    memset(t, 0, sizeof t);
    memcpy(t, "II*\0", 4);
    le32(t + 4, 8);
    le16(t + 8, 0xffff);
    h = malloc(20);
    memcpy(h, t, 20);
    cr_assert_eq(media_exif_from_tiff(h, 20, &e), MEDIA_OK);
    free(h);

    /* Counts that overflow 32 bits when multiplied, offsets near 4 GiB, IFD0 past the end. */
    const uint32_t counts[] = {0xffffffffu, 0x20000000u, 0x80000001u, 3};
    const uint32_t offsets[] = {0xfffffff0u, 0xffffffffu, 22, 0x7fffffffu};
    for (size_t c = 0; c < 4; c++) {
        memset(t, 0, sizeof t);
        memcpy(t, "II*\0", 4);
        le32(t + 4, 8);
        le16(t + 8, 4);
        entry(t + 10, 0x0132, 2, counts[c], offsets[c]);
        entry(t + 22, 0x8825, 4, 1, 8); /* GPS IFD = IFD0 */
        entry(t + 34, 0x0002, 5, counts[c], offsets[c]);
        entry(t + 46, 0x0001, 2, counts[c], offsets[c]);
        h = malloc(58);
        memcpy(h, t, 58);
        cr_assert_eq(media_exif_from_tiff(h, 58, &e), MEDIA_OK);
        cr_assert_not(e.has_captured_at);
        cr_assert_not(e.has_gps);
        free(h);
    }
    memset(t, 0, sizeof t);
    memcpy(t, "MM\0*", 4);
    t[4] = 0xff, t[5] = 0xff, t[6] = 0xff, t[7] = 0xf0;
    h = malloc(8);
    memcpy(h, t, 8);
    cr_assert_eq(media_exif_from_tiff(h, 8, &e), MEDIA_OK);
    cr_assert_eq(e.orientation, 1);
    free(h);

    /* Every prefix of a full structure, in both byte orders. */
    for (int be = 0; be <= 1; be++) {
        struct exif_spec s = {.big_endian = be,
                              .orientation = 5,
                              .datetime = "2020:01:02 03:04:05",
                              .datetime_original = "2024:05:01 12:34:56",
                              .has_gps = true,
                              .lat = 10,
                              .lon = 20,
                              .canary = "prefix canary"};
        size_t tlen;
        unsigned char *tiff = exb_tiff(&s, &tlen);
        for (size_t n = 0; n <= tlen; n++) {
            h = malloc(n ? n : 1);
            memcpy(h, tiff, n);
            enum media_rc rc = media_exif_from_tiff(h, n, &e);
            cr_assert(rc == MEDIA_OK || rc == MEDIA_CORRUPT);
            cr_assert(e.orientation >= 1 && e.orientation <= 8);
            free(h);
        }
        free(tiff);
    }
}

/* ---- photo pipeline ---- */

/* Corners of the processed image for each orientation, as [TL, TR, BL, BR], when the stored
 * pixels are red, green / blue, white. Worked out by hand from the EXIF definitions. */
static const uint32_t upright[9][4] = {
    [1] = {EXB_TL, EXB_TR, EXB_BL, EXB_BR}, /* as stored */
    [2] = {EXB_TR, EXB_TL, EXB_BR, EXB_BL}, /* mirrored left-right */
    [3] = {EXB_BR, EXB_BL, EXB_TR, EXB_TL}, /* rotated 180 */
    [4] = {EXB_BL, EXB_BR, EXB_TL, EXB_TR}, /* mirrored top-bottom */
    [5] = {EXB_TL, EXB_BL, EXB_TR, EXB_BR}, /* transposed */
    [6] = {EXB_BL, EXB_TL, EXB_BR, EXB_TR}, /* rotated 90 clockwise */
    [7] = {EXB_BR, EXB_TR, EXB_BL, EXB_TL}, /* transversed */
    [8] = {EXB_TR, EXB_BR, EXB_TL, EXB_BL}, /* rotated 90 counter-clockwise */
};

static void check_corners(const unsigned char *j, size_t len, int o, int ew, int eh)
{
    int w, h;
    unsigned char *px = decode(j, len, &w, &h);
    cr_assert_eq(w, ew, "orientation %d: width %d", o, w);
    cr_assert_eq(h, eh, "orientation %d: height %d", o, h);
    int m = 3;
    const unsigned char *c[4] = {px + ((size_t)m * w + m) * 3, px + ((size_t)m * w + w - 1 - m) * 3,
                                 px + ((size_t)(h - 1 - m) * w + m) * 3,
                                 px + ((size_t)(h - 1 - m) * w + w - 1 - m) * 3};
    for (int k = 0; k < 4; k++)
        cr_assert(near_colour(c[k], upright[o][k]),
                  "orientation %d corner %d: got %d,%d,%d want %06x", o, k, c[k][0], c[k][1],
                  c[k][2], upright[o][k]);
    free(px);
}

Test(photo, all_eight_orientations_come_out_upright)
{
    for (int o = 1; o <= 8; o++) {
        struct exif_spec s = {.orientation = o, .big_endian = o % 2};
        size_t len;
        unsigned char *j = make_jpeg(96, 48, &s, &len); /* wide as stored */
        struct media_photo p;
        enum media_rc rc = media_photo_process(j, len, NULL, &p);
        cr_assert_eq(rc, MEDIA_OK, "orientation %d: %s", o, media_rc_name(rc));
        int ew = o >= 5 ? 48 : 96, eh = o >= 5 ? 96 : 48;
        cr_assert_eq(p.width, ew);
        cr_assert_eq(p.height, eh);
        check_corners(p.image, p.image_len, o, ew, eh);
        check_corners(p.thumb, p.thumb_len, o, ew, eh); /* small enough to keep its size */
        media_photo_free(&p);
        free(j);
    }
}

Test(photo, orientation_applies_after_scaling_and_to_the_thumbnail)
{
    struct exif_spec s = {.orientation = 8};
    size_t len;
    unsigned char *j = make_jpeg(1200, 800, &s, &len);
    struct media_photo_opts opt = media_photo_opts_default();
    opt.max_edge = 600;
    struct media_photo p;
    cr_assert_eq(media_photo_process(j, len, &opt, &p), MEDIA_OK);
    cr_assert_eq(p.width, 400);
    cr_assert_eq(p.height, 600);
    check_corners(p.image, p.image_len, 8, 400, 600);
    cr_assert_eq(p.thumb_width, 213);
    cr_assert_eq(p.thumb_height, 320);
    check_corners(p.thumb, p.thumb_len, 8, 213, 320);
    media_photo_free(&p);
    free(j);
}

Test(photo, output_and_thumbnail_carry_no_metadata)
{
    const char *canary = "KZ-CANARY-7f3a9c";
    for (int be = 0; be <= 1; be++) {
        struct exif_spec s = {.big_endian = be,
                              .orientation = 1,
                              .datetime_original = "2024:05:01 12:34:56",
                              .has_gps = true,
                              .lat = 48.8584,
                              .lon = 2.2945,
                              .canary = canary};
        size_t len;
        unsigned char *j = make_jpeg(200, 150, &s, &len);
        /* The input really has it all, so the checks below mean something. */
        cr_assert(contains(j, len, canary));
        cr_assert(contains(j, len, "http://ns.adobe.com/xap/1.0/"));
        cr_assert(contains(j, len, "Exif"));
        struct media_photo p;
        cr_assert_eq(media_photo_process(j, len, NULL, &p), MEDIA_OK);
        assert_no_metadata(p.image, p.image_len, canary);
        assert_no_metadata(p.thumb, p.thumb_len, canary);
        /* Metadata the user may choose to send comes back beside the image. */
        cr_assert(p.has_captured_at);
        cr_assert_str_eq(p.captured_at, "2024-05-01T12:34:56");
        cr_assert(p.has_gps);
        cr_assert_float_eq(p.lat, 48.8584, 1e-5);
        cr_assert_float_eq(p.lon, 2.2945, 1e-5);
        media_photo_free(&p);
        free(j);
    }
}

Test(photo, max_edge_is_respected_exactly)
{
    struct {
        int w, h, orientation, max_edge, ew, eh;
    } cases[] = {
        {1000, 600, 1, 500, 500, 300}, {600, 1000, 1, 500, 300, 500},
        {1000, 600, 6, 500, 300, 500}, {1000, 600, 1, 0, 1000, 600},
        {300, 200, 1, 500, 300, 200},  {1001, 333, 1, 250, 250, 83},
        {640, 640, 1, 639, 639, 639},  {4000, 3000, 1, 2048, 2048, 1536},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct exif_spec s = {.orientation = cases[i].orientation};
        size_t len;
        unsigned char *j = make_jpeg(cases[i].w, cases[i].h, &s, &len);
        struct media_photo_opts opt = media_photo_opts_default();
        opt.max_edge = cases[i].max_edge;
        struct media_photo p;
        cr_assert_eq(media_photo_process(j, len, &opt, &p), MEDIA_OK);
        cr_assert_eq(p.width, cases[i].ew, "case %zu: %dx%d", i, p.width, p.height);
        cr_assert_eq(p.height, cases[i].eh, "case %zu: %dx%d", i, p.width, p.height);
        struct media_jpeg_info info;
        cr_assert_eq(media_jpeg_probe(p.image, p.image_len, &info), MEDIA_OK);
        cr_assert_eq(info.width, cases[i].ew);
        cr_assert_eq(info.height, cases[i].eh);
        media_photo_free(&p);
        free(j);
    }
}

Test(photo, thumbnail_fits_320_px_and_12_kib)
{
    /* A detailed picture, so quality has to drop to fit. */
    size_t len;
    unsigned char *j = exb_jpeg(1600, 1200, true, 95, NULL, &len);
    struct media_photo p;
    cr_assert_eq(media_photo_process(j, len, NULL, &p), MEDIA_OK);
    cr_assert_eq(p.thumb_width, 320);
    cr_assert_eq(p.thumb_height, 240);
    cr_assert_leq(p.thumb_len, 12288);
    struct media_jpeg_info info;
    cr_assert_eq(media_jpeg_probe(p.thumb, p.thumb_len, &info), MEDIA_OK);
    cr_assert_eq(info.width, 320);
    media_photo_free(&p);

    /* A tighter budget still holds, by quality and then by size. */
    struct media_photo_opts opt = media_photo_opts_default();
    opt.thumb_max_bytes = 4096;
    cr_assert_eq(media_photo_process(j, len, &opt, &p), MEDIA_OK);
    cr_assert_leq(p.thumb_len, 4096);
    cr_assert_leq(p.thumb_width, 320);
    media_photo_free(&p);
    free(j);
}

Test(photo, rejects_bad_options_and_non_jpeg)
{
    size_t len;
    unsigned char *j = make_jpeg(32, 32, NULL, &len);
    struct media_photo p;
    struct media_photo_opts opt = media_photo_opts_default();
    opt.quality = 0;
    cr_assert_eq(media_photo_process(j, len, &opt, &p), MEDIA_INVALID);
    opt = media_photo_opts_default();
    opt.thumb_max_bytes = 100;
    cr_assert_eq(media_photo_process(j, len, &opt, &p), MEDIA_INVALID);
    cr_assert_eq(media_photo_process((const unsigned char *)"GIF89a", 6, NULL, &p), MEDIA_NOT_JPEG);
    cr_assert_eq(media_photo_process(j, 3, NULL, &p), MEDIA_NOT_JPEG);
    cr_assert_eq(media_photo_process(j, len / 2, NULL, &p), MEDIA_CORRUPT);
    cr_assert_null(p.image);
    media_photo_free(&p); /* harmless after a failure */
    free(j);
}

Test(photo, progressive_and_greyscale_work_and_cmyk_is_refused)
{
    int w = 120, h = 90;
    unsigned char *px = exb_pattern(w, h, true);
    tjhandle tj = tjInitCompress();
    unsigned char *j = NULL;
    unsigned long len = 0;
    struct media_photo p;
    enum media_rc rc;
    cr_assert_eq(
        tjCompress2(tj, px, w, 0, h, TJPF_RGB, &j, &len, TJSAMP_444, 90, TJFLAG_PROGRESSIVE), 0);
    cr_assert_eq(media_photo_process(j, len, NULL, &p), MEDIA_OK, "progressive");
    cr_assert_eq(p.width, w);
    media_photo_free(&p);
    tjFree(j);
    j = NULL;
    /* A fresh handle: libjpeg-turbo 2.1 keeps the progressive scan script of the last call. */
    tjDestroy(tj);
    tj = tjInitCompress();
    cr_assert_eq(tjCompress2(tj, px, w, 0, h, TJPF_RGB, &j, &len, TJSAMP_GRAY, 90, 0), 0);
    rc = media_photo_process(j, len, NULL, &p);
    cr_assert_eq(rc, MEDIA_OK, "greyscale: %s", media_rc_name(rc));
    cr_assert_eq(p.height, h);
    media_photo_free(&p);
    tjFree(j);
    j = NULL;
    unsigned char *cmyk = calloc((size_t)w * h * 4, 1);
    cr_assert_eq(tjCompress2(tj, cmyk, w, 0, h, TJPF_CMYK, &j, &len, TJSAMP_444, 90, 0), 0);
    rc = media_photo_process(j, len, NULL, &p);
    cr_assert_eq(rc, MEDIA_UNSUPPORTED, "cmyk: %s", media_rc_name(rc));
    tjFree(j);
    free(cmyk);
    tjDestroy(tj);
    free(px);
}

/* Rewrites the frame size in a JPEG's SOF0 segment. */
static void set_sof_size(unsigned char *j, size_t len, int w, int h)
{
    for (size_t i = 2; i + 9 < len; i++) {
        if (j[i] == 0xff && j[i + 1] == 0xc0) {
            j[i + 5] = (unsigned char)(h >> 8), j[i + 6] = (unsigned char)h;
            j[i + 7] = (unsigned char)(w >> 8), j[i + 8] = (unsigned char)w;
            return;
        }
    }
    cr_assert_fail("no SOF0");
}

Test(photo, stray_bytes_between_segments_are_accepted_but_a_cut_stream_is_not)
{
    /* Phones write such files; libjpeg only warns ("extraneous bytes before marker"). */
    size_t len;
    unsigned char *j = make_jpeg(64, 48, NULL, &len);
    size_t at = 2;
    while (at + 4 < len && !(j[at] == 0xff && j[at + 1] == 0xdb)) /* the first DQT */
        at += 2 + ((size_t)j[at + 2] << 8 | j[at + 3]);
    cr_assert_lt(at + 4, len, "a DQT segment");
    unsigned char *stray = malloc(len + 3);
    memcpy(stray, j, at);
    memcpy(stray + at, "\x00\x01\x02", 3);
    memcpy(stray + at + 3, j + at, len - at);
    struct media_photo p;
    enum media_rc prc = media_photo_process(stray, len + 3, NULL, &p);
    cr_assert_eq(prc, MEDIA_OK, "stray bytes: %s", media_rc_name(prc));
    cr_assert_eq(p.width, 64);
    media_photo_free(&p);
    cr_assert_eq(media_photo_process(j, len - 40, NULL, &p), MEDIA_CORRUPT, "a cut stream");
    free(stray);
    free(j);
}

Test(photo, a_tiny_file_cannot_claim_a_huge_image)
{
    size_t len;
    unsigned char *j = make_jpeg(32, 32, NULL, &len);
    struct media_photo p;
    set_sof_size(j, len, 20000, 100);
    cr_assert_eq(media_photo_process(j, len, NULL, &p), MEDIA_TOO_LARGE);
    set_sof_size(j, len, 100, 30000);
    cr_assert_eq(media_photo_process(j, len, NULL, &p), MEDIA_TOO_LARGE);
    set_sof_size(j, len, 12000, 9000); /* 108 megapixels, each edge allowed */
    cr_assert_eq(media_photo_process(j, len, NULL, &p), MEDIA_TOO_LARGE);
    set_sof_size(j, len, 8000, 6000); /* allowed, but the data is not there */
    cr_assert_eq(media_photo_process(j, len, NULL, &p), MEDIA_CORRUPT);
    free(j);
}

/* Truncations at many offsets and seeded byte flips: probe, EXIF and the pipeline must return
 * a defined code and never touch memory they should not (ASan and UBSan watch). */
Test(photo, corpus_of_truncated_and_flipped_jpegs, .timeout = 600)
{
    for (int be = 0; be <= 1; be++) {
        struct exif_spec s = {.big_endian = be,
                              .orientation = be ? 6 : 3,
                              .datetime = "2021:02:03 04:05:06",
                              .datetime_original = "2021:02:03 04:05:07",
                              .has_gps = true,
                              .lat = 60.17,
                              .lon = 24.94,
                              .canary = "fuzz canary"};
        size_t len;
        unsigned char *j = exb_jpeg(80, 56, true, 85, &s, &len);
        cr_assert_not_null(j);
        int okays = 0, runs = 0;
        for (size_t n = 0; n < len; n += n < 1200 ? 1 : 13) {
            unsigned char *c = malloc(n ? n : 1); /* exact size: overreads are caught */
            memcpy(c, j, n);
            struct media_jpeg_info info;
            struct media_exif e;
            struct media_photo p;
            cr_assert(rc_defined(media_jpeg_probe(c, n, &info)));
            cr_assert(rc_defined(media_exif_from_jpeg(c, n, &e)));
            enum media_rc rc = media_photo_process(c, n, NULL, &p);
            cr_assert(rc_defined(rc));
            okays += rc == MEDIA_OK;
            runs++;
            media_photo_free(&p);
            free(c);
        }
        cr_assert_eq(okays, 0, "a truncated JPEG was accepted");
        uint32_t seed = 12345u + (uint32_t)be;
        for (int i = 0; i < 1500; i++) {
            unsigned char *c = malloc(len);
            memcpy(c, j, len);
            for (int f = 0; f < 1 + i % 3; f++) {
                seed = seed * 1103515245u + 12345u;
                size_t at = (seed >> 8) % len;
                seed = seed * 1103515245u + 12345u;
                c[at] ^= (unsigned char)(1 + (seed >> 16) % 255);
            }
            struct media_jpeg_info info;
            struct media_exif e;
            struct media_photo p;
            cr_assert(rc_defined(media_jpeg_probe(c, len, &info)));
            cr_assert(rc_defined(media_exif_from_jpeg(c, len, &e)));
            cr_assert(e.orientation >= 1 && e.orientation <= 8);
            enum media_rc rc = media_photo_process(c, len, NULL, &p);
            cr_assert(rc_defined(rc));
            if (rc == MEDIA_OK) {
                cr_assert_eq(media_jpeg_probe(p.image, p.image_len, &info), MEDIA_OK);
                cr_assert_leq(p.thumb_len, 12288);
            }
            media_photo_free(&p);
            free(c);
        }
        free(j);
        cr_assert_gt(runs, 1000);
    }
}

/* ---- encrypted blobs ---- */

struct mem {
    unsigned char *p;
    size_t len, cap, rd;
};

static int mem_write(void *ctx, const void *buf, size_t len)
{
    struct mem *m = ctx;
    if (m->len + len > m->cap) {
        m->cap = (m->len + len) * 2;
        m->p = realloc(m->p, m->cap);
    }
    memcpy(m->p + m->len, buf, len);
    m->len += len;
    return 0;
}

static long mem_read(void *ctx, void *buf, size_t len)
{
    struct mem *m = ctx;
    size_t n = m->len - m->rd < len ? m->len - m->rd : len;
    memcpy(buf, m->p + m->rd, n);
    m->rd += n;
    return (long)n;
}

static unsigned char *pattern(size_t n)
{
    unsigned char *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 7 + 1 + i / 251); /* no zero bytes at the end */
    return p;
}

/* Decrypts blob (len bytes) into a fresh buffer; returns the code, *out the plaintext. */
static enum media_rc dec_mem(const unsigned char *blob, size_t len, const uint8_t *key,
                             const uint8_t *hash, uint64_t plain_len, struct mem *out)
{
    struct mem in = {.p = (unsigned char *)blob, .len = len};
    memset(out, 0, sizeof *out);
    uint64_t written = 0;
    enum media_rc rc =
        media_blob_decrypt(mem_read, &in, mem_write, out, key, hash, plain_len, &written);
    cr_assert_eq(written, out->len);
    return rc;
}

Test(blob, round_trip_at_chunk_edges_through_files)
{
    const size_t sizes[] = {0, 1, 65535, 65536, 65537, 3 * 1024 * 1024 + 12345};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *plain = pattern(n);
        FILE *f = tmpfile();
        struct media_blob_info info;
        cr_assert_eq(media_blob_encrypt(plain, n, media_write_file, f, &info), MEDIA_OK);
        uint64_t P = media_blob_padded_len(n);
        cr_assert_eq(info.plain_len, n);
        cr_assert_eq(info.padded_len, P);
        cr_assert_eq(info.blob_len, MEDIA_BLOB_HEADER + P + 17 * ((P + 65535) / 65536));
        cr_assert_eq((uint64_t)ftell(f), info.blob_len);

        uint8_t h[32];
        rewind(f);
        cr_assert_eq(media_blob_hash_file(f, h), MEDIA_OK);
        cr_assert_eq(memcmp(h, info.hash, 32), 0, "blob id differs from the file's hash");

        rewind(f);
        FILE *o = tmpfile();
        uint64_t written;
        enum media_rc rc = media_blob_decrypt(media_read_file, f, media_write_file, o, info.key,
                                              info.hash, n, &written);
        cr_assert_eq(rc, MEDIA_OK, "size %zu: %s", n, media_rc_name(rc));
        cr_assert_eq(written, n);
        cr_assert_eq((size_t)ftell(o), n);
        rewind(o);
        unsigned char *back = malloc(n ? n : 1);
        cr_assert_eq(fread(back, 1, n, o), n);
        cr_assert_eq(memcmp(back, plain, n), 0);

        /* Without the true length the padding comes out too, as zeros. */
        rewind(f);
        struct mem all;
        unsigned char *blob = malloc(info.blob_len);
        cr_assert_eq(fread(blob, 1, info.blob_len, f), info.blob_len);
        cr_assert_eq(dec_mem(blob, info.blob_len, info.key, NULL, MEDIA_BLOB_LEN_UNKNOWN, &all),
                     MEDIA_OK);
        cr_assert_eq(all.len, P);
        cr_assert_eq(memcmp(all.p, plain, n), 0);
        for (size_t k = n; k < P; k++)
            cr_assert_eq(all.p[k], 0);
        free(all.p);
        free(blob);
        free(back);
        fclose(o);
        fclose(f);
        free(plain);
    }
}

Test(blob, padding_follows_signal_buckets)
{
    cr_assert_eq(media_blob_padded_len(0), 541);
    cr_assert_eq(media_blob_padded_len(541), 541);
    uint64_t prev = 541;
    for (uint64_t n = 1; n < 3000000; n += n / 7 + 1) {
        uint64_t b = media_blob_padded_len(n);
        cr_assert_geq(b, n);
        cr_assert_geq(b, prev); /* monotonic */
        if (n > 541)
            cr_assert_leq(b, n + n / 20 + 1, "%lu -> %lu", (unsigned long)n, (unsigned long)b);
        cr_assert_eq(media_blob_padded_len(b), b, "a bucket is its own bucket");
        prev = b;
    }
    /* Few distinct sizes: that is the point. */
    cr_assert_eq(media_blob_padded_len(1000000), media_blob_padded_len(1000001));
}

Test(blob, streaming_encryptor_matches_and_checks_its_length)
{
    size_t n = 200000;
    unsigned char *plain = pattern(n);
    struct mem out = {0};
    struct media_blob_enc *e;
    cr_assert_eq(media_blob_enc_begin(n, mem_write, &out, &e), MEDIA_OK);
    size_t pieces[] = {1, 7, 65536, 100000, 200000};
    size_t at = 0;
    for (size_t i = 0; at < n; i++) {
        size_t k = pieces[i % 5] < n - at ? pieces[i % 5] : n - at;
        cr_assert_eq(media_blob_enc_update(e, plain + at, k), MEDIA_OK);
        at += k;
    }
    cr_assert_eq(media_blob_enc_update(e, "x", 1), MEDIA_INVALID); /* more than declared */
    struct media_blob_info info;
    cr_assert_eq(media_blob_enc_finish(e, &info), MEDIA_OK);
    cr_assert_eq(info.blob_len, out.len);
    struct mem back;
    cr_assert_eq(dec_mem(out.p, out.len, info.key, info.hash, n, &back), MEDIA_OK);
    cr_assert_eq(back.len, n);
    cr_assert_eq(memcmp(back.p, plain, n), 0);
    free(back.p);
    free(out.p);

    /* Fewer bytes than declared. */
    struct mem o2 = {0};
    cr_assert_eq(media_blob_enc_begin(10, mem_write, &o2, &e), MEDIA_OK);
    cr_assert_eq(media_blob_enc_update(e, plain, 9), MEDIA_OK);
    cr_assert_eq(media_blob_enc_finish(e, &info), MEDIA_INVALID);
    free(o2.p);
    cr_assert_eq(media_blob_enc_begin(MEDIA_BLOB_MAX + 1, mem_write, &o2, &e), MEDIA_TOO_LARGE);
    free(plain);
}

static unsigned char *copy(const unsigned char *p, size_t n)
{
    unsigned char *c = malloc(n + 1);
    memcpy(c, p, n);
    return c;
}

static void swap_chunks(unsigned char *b, size_t a, size_t c)
{
    size_t sz = 65536 + 17;
    unsigned char *tmp = malloc(sz);
    memcpy(tmp, b + MEDIA_BLOB_HEADER + a * sz, sz);
    memcpy(b + MEDIA_BLOB_HEADER + a * sz, b + MEDIA_BLOB_HEADER + c * sz, sz);
    memcpy(b + MEDIA_BLOB_HEADER + c * sz, tmp, sz);
    free(tmp);
}

Test(blob, each_kind_of_damage_has_its_own_error)
{
    size_t n = 250000; /* padded to 4 chunks: three full, one short */
    unsigned char *plain = pattern(n);
    struct mem b = {0};
    struct media_blob_info info;
    cr_assert_eq(media_blob_encrypt(plain, n, mem_write, &b, &info), MEDIA_OK);
    cr_assert_eq((info.padded_len + 65535) / 65536, 4);
    size_t chunk = 65536 + 17, L = b.len;
    struct {
        const char *what;
        unsigned char *blob;
        size_t len;
        const uint8_t *key, *hash;
        uint64_t plain_len;
        enum media_rc want;
    } cases[20];
    int nc = 0;
#define CASE(w, bl, ln, k, h, pl, rc)                                                              \
    cases[nc++] = (__typeof__(cases[0]))                                                           \
    {                                                                                              \
        w, bl, ln, k, h, pl, rc                                                                    \
    }
    unsigned char *c;

    CASE("intact", copy(b.p, L), L, info.key, info.hash, n, MEDIA_OK);
    c = copy(b.p, L), c[0] = 'X';
    CASE("bad magic", c, L, info.key, NULL, n, MEDIA_BLOB_FORMAT);
    c = copy(b.p, L), c[4] = 2;
    CASE("unknown version", c, L, info.key, NULL, n, MEDIA_BLOB_FORMAT);
    c = copy(b.p, L), memset(c + 5, 0, 4);
    CASE("chunk size 0", c, L, info.key, NULL, n, MEDIA_BLOB_FORMAT);
    c = copy(b.p, L), c[MEDIA_BLOB_HEADER + chunk + 100] ^= 0x04;
    CASE("flipped bit in chunk 1", c, L, info.key, NULL, n, MEDIA_BLOB_TAMPERED);
    c = copy(b.p, L), c[L - 1] ^= 0x80;
    CASE("flipped bit in the last chunk", c, L, info.key, NULL, n, MEDIA_BLOB_TAMPERED);
    c = copy(b.p, L), c[16] ^= 0x01;
    CASE("padded length changed in the header", c, L, info.key, NULL, MEDIA_BLOB_LEN_UNKNOWN,
         MEDIA_BLOB_TAMPERED);
    uint8_t other[32];
    randombytes_buf(other, sizeof other);
    CASE("wrong key", copy(b.p, L), L, other, NULL, n, MEDIA_BLOB_TAMPERED);
    CASE("cut inside chunk 2", copy(b.p, L), MEDIA_BLOB_HEADER + 2 * chunk + 999, info.key, NULL, n,
         MEDIA_BLOB_TRUNCATED);
    CASE("cut inside the header", copy(b.p, L), 30, info.key, NULL, n, MEDIA_BLOB_TRUNCATED);
    CASE("cut one byte short", copy(b.p, L), L - 1, info.key, NULL, n, MEDIA_BLOB_TRUNCATED);
    CASE("cut after chunk 2", copy(b.p, L), MEDIA_BLOB_HEADER + 3 * chunk, info.key, NULL, n,
         MEDIA_BLOB_NO_FINAL);
    CASE("header only", copy(b.p, L), MEDIA_BLOB_HEADER, info.key, NULL, n, MEDIA_BLOB_NO_FINAL);
    c = copy(b.p, L), c[L] = 0;
    CASE("a byte after FINAL", c, L + 1, info.key, NULL, n, MEDIA_BLOB_TRAILING);
    c = copy(b.p, L), swap_chunks(c, 0, 1);
    CASE("chunks 0 and 1 swapped", c, L, info.key, NULL, n, MEDIA_BLOB_REORDERED);
    c = copy(b.p, L), swap_chunks(c, 1, 2);
    CASE("chunks 1 and 2 swapped", c, L, info.key, NULL, n, MEDIA_BLOB_REORDERED);
    uint8_t bad_hash[32];
    memcpy(bad_hash, info.hash, 32);
    bad_hash[31] ^= 1;
    CASE("expected hash differs", copy(b.p, L), L, info.key, bad_hash, n, MEDIA_BLOB_HASH);
    CASE("declared length in another bucket", copy(b.p, L), L, info.key, NULL, n * 2,
         MEDIA_BLOB_LENGTH);
    CASE("declared length shorter, same bucket", copy(b.p, L), L, info.key, NULL, n - 1,
         MEDIA_BLOB_LENGTH);
#undef CASE
    bool seen[MEDIA_BLOB_LENGTH + 1] = {false};
    for (int i = 0; i < nc; i++) {
        struct mem out;
        enum media_rc rc = dec_mem(cases[i].blob, cases[i].len, cases[i].key, cases[i].hash,
                                   cases[i].plain_len, &out);
        cr_assert_eq(rc, cases[i].want, "%s: got %s, want %s", cases[i].what, media_rc_name(rc),
                     media_rc_name(cases[i].want));
        if (rc == MEDIA_BLOB_LENGTH && cases[i].plain_len == n * 2)
            cr_assert_eq(out.len, 0, "a wrong length is refused before any output");
        seen[rc] = true;
        free(out.p);
        free(cases[i].blob);
    }
    /* Eight failure kinds plus success, each reported as itself. */
    for (int rc = MEDIA_BLOB_FORMAT; rc <= MEDIA_BLOB_LENGTH; rc++)
        cr_assert(seen[rc], "%s never reported", media_rc_name(rc));
    free(b.p);
    free(plain);
}

/* ---- keys, signatures, envelopes, AEAD ---- */

Test(keys, device_keys_are_two_independent_pairs)
{
    struct media_device_keys k;
    cr_assert_eq(media_device_keys_new(&k), MEDIA_OK);
    uint8_t conv[32];
    cr_assert_eq(crypto_sign_ed25519_pk_to_curve25519(conv, k.sign_pk), 0);
    cr_assert_neq(memcmp(conv, k.box_pk, 32), 0, "box key derived from the signing key");
    uint8_t pk[32];
    crypto_scalarmult_base(pk, k.box_sk);
    cr_assert_eq(memcmp(pk, k.box_pk, 32), 0);
    media_device_keys_wipe(&k);
    uint8_t zero[64] = {0};
    cr_assert_eq(memcmp(k.sign_sk, zero, 64), 0);
}

Test(keys, signatures_are_bound_to_their_domain)
{
    struct media_device_keys k, other;
    media_device_keys_new(&k);
    media_device_keys_new(&other);
    const char msg[] = "epoch 7 for room r";
    uint8_t sig[64];
    cr_assert_eq(media_sign(MEDIA_DOMAIN_KEYS, msg, sizeof msg, k.sign_sk, sig), MEDIA_OK);
    cr_assert(media_verify(MEDIA_DOMAIN_KEYS, msg, sizeof msg, k.sign_pk, sig));
    cr_assert_not(media_verify(MEDIA_DOMAIN_PHOTO, msg, sizeof msg, k.sign_pk, sig));
    cr_assert_not(media_verify(MEDIA_DOMAIN_DEVKEY, msg, sizeof msg, k.sign_pk, sig));
    cr_assert_not(media_verify(MEDIA_DOMAIN_KEYS, msg, sizeof msg - 1, k.sign_pk, sig));
    cr_assert_not(media_verify(MEDIA_DOMAIN_KEYS, msg, sizeof msg, other.sign_pk, sig));
    /* Not a plain signature over the message either. */
    cr_assert_neq(
        crypto_sign_verify_detached(sig, (const unsigned char *)msg, sizeof msg, k.sign_pk), 0);
    /* The separator: "kizuna/keys/v1" + "x..." must differ from "kizuna/keys/v1x" + "...". */
    uint8_t s2[64];
    media_sign("kizuna/keys/v1x", "abc", 3, k.sign_sk, s2);
    cr_assert_not(media_verify("kizuna/keys/v1", "xabc", 4, k.sign_pk, s2));
    sig[10] ^= 1;
    cr_assert_not(media_verify(MEDIA_DOMAIN_KEYS, msg, sizeof msg, k.sign_pk, sig));
    /* Empty message. */
    cr_assert_eq(media_sign(MEDIA_DOMAIN_PHOTO, NULL, 0, k.sign_sk, sig), MEDIA_OK);
    cr_assert(media_verify(MEDIA_DOMAIN_PHOTO, NULL, 0, k.sign_pk, sig));
}

Test(keys, device_self_signature_covers_user_device_and_both_keys)
{
    struct media_device_keys k, other;
    media_device_keys_new(&k);
    media_device_keys_new(&other);
    uint8_t sig[64];
    cr_assert_eq(media_devkey_sign("alice@a.example", "dev1", &k, sig), MEDIA_OK);
    cr_assert(media_devkey_verify("alice@a.example", "dev1", k.sign_pk, k.box_pk, sig));
    cr_assert_not(media_devkey_verify("alice@b.example", "dev1", k.sign_pk, k.box_pk, sig));
    cr_assert_not(media_devkey_verify("alice@a.example", "dev2", k.sign_pk, k.box_pk, sig));
    cr_assert_not(media_devkey_verify("alice@a.example", "dev1", k.sign_pk, other.box_pk, sig));
    cr_assert_not(media_devkey_verify("alice@a.example", "dev1", other.sign_pk, k.box_pk, sig));
    /* Length prefixes: moving a character between user and device breaks it. */
    cr_assert_not(media_devkey_verify("alice@a.exampled", "ev1", k.sign_pk, k.box_pk, sig));
    /* And it is not valid as a signature in another domain over the same bytes. */
    cr_assert_not(media_verify(MEDIA_DOMAIN_KEYS, "", 0, k.sign_pk, sig));
}

Test(keys, envelopes_open_only_for_the_right_pair)
{
    struct media_device_keys alice, bob, eve;
    media_device_keys_new(&alice);
    media_device_keys_new(&bob);
    media_device_keys_new(&eve);
    const char plain[] =
        "{\"room\":\"r\",\"epoch\":\"e\",\"key\":\"...\",\"from\":\"a\",\"to\":\"b\"}";
    size_t n = sizeof plain, en = n + MEDIA_ENVELOPE_OVERHEAD;
    unsigned char env[sizeof plain + MEDIA_ENVELOPE_OVERHEAD], out[sizeof plain];
    cr_assert_eq(media_envelope_seal(plain, n, alice.box_sk, bob.box_pk, env), MEDIA_OK);
    cr_assert_eq(media_envelope_open(env, en, alice.box_pk, bob.box_sk, out), MEDIA_OK);
    cr_assert_eq(memcmp(out, plain, n), 0);
    cr_assert_eq(media_envelope_open(env, en, alice.box_pk, eve.box_sk, out), MEDIA_AUTH,
                 "wrong recipient key");
    cr_assert_eq(media_envelope_open(env, en, eve.box_pk, bob.box_sk, out), MEDIA_AUTH,
                 "wrong sender key");
    for (size_t i = 0; i < en; i++) {
        env[i] ^= 0x20;
        cr_assert_eq(media_envelope_open(env, en, alice.box_pk, bob.box_sk, out), MEDIA_AUTH,
                     "flipped bit at %zu", i);
        env[i] ^= 0x20;
    }
    cr_assert_eq(
        media_envelope_open(env, MEDIA_ENVELOPE_OVERHEAD - 1, alice.box_pk, bob.box_sk, out),
        MEDIA_AUTH);
    /* Two seals of the same text differ (random nonce). */
    unsigned char env2[sizeof env];
    media_envelope_seal(plain, n, alice.box_sk, bob.box_pk, env2);
    cr_assert_neq(memcmp(env, env2, en), 0);
}

Test(keys, aead_binds_key_and_additional_data)
{
    uint8_t key[32], other[32];
    randombytes_buf(key, sizeof key);
    randombytes_buf(other, sizeof other);
    const char plain[] = "{\"image\":\"...\",\"geo\":[1,2]}";
    const char ad[] = "kizuna/photo/v1|room|epoch|device|7";
    size_t n = sizeof plain, cn = n + MEDIA_AEAD_OVERHEAD;
    unsigned char ct[sizeof plain + MEDIA_AEAD_OVERHEAD], out[sizeof plain];
    cr_assert_eq(media_aead_seal(plain, n, ad, sizeof ad, key, ct), MEDIA_OK);
    cr_assert_eq(media_aead_open(ct, cn, ad, sizeof ad, key, out), MEDIA_OK);
    cr_assert_eq(memcmp(out, plain, n), 0);
    cr_assert_eq(media_aead_open(ct, cn, ad, sizeof ad - 2, key, out), MEDIA_AUTH);
    cr_assert_eq(media_aead_open(ct, cn, ad, sizeof ad, other, out), MEDIA_AUTH);
    cr_assert_eq(media_aead_open(ct, cn, NULL, 0, key, out), MEDIA_AUTH);
    ct[30] ^= 1;
    cr_assert_eq(media_aead_open(ct, cn, ad, sizeof ad, key, out), MEDIA_AUTH);
    cr_assert_eq(media_aead_open(ct, 10, ad, sizeof ad, key, out), MEDIA_AUTH);
    /* No additional data at all is fine too. */
    cr_assert_eq(media_aead_seal(plain, n, NULL, 0, key, ct), MEDIA_OK);
    cr_assert_eq(media_aead_open(ct, cn, NULL, 0, key, out), MEDIA_OK);
}

/* ---- epoch keys bound to their owner (epoch.c) ---- */

static void hex32(const uint8_t b[32], char out[65])
{
    sodium_bin2hex(out, 65, b, 32);
}

Test(epoch, key_check_is_a_fixed_keyed_hash_of_room_owner_and_epoch)
{
    uint8_t key[32], check[32], other[32];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)i;
    char hex[65];
    /* The vector: BLAKE2b-256 keyed with the epoch key over
     * "kizuna/keycheck/v1" 0 room 0 owner 0 epoch 0 (docs/protocol.md). */
    cr_assert_eq(media_epoch_check("U9dtpXO2", "q3W", "AbCd", key, check), MEDIA_OK);
    hex32(check, hex);
    cr_assert_str_eq(hex, "c60a2421a4db56482332275e228a169ee0b2dcbc33ef3aef6437c0d7f3856c05");
    /* Every input changes it, and moving a character between fields does too. */
    cr_assert_eq(media_epoch_check("U9dtpXO", "2q3W", "AbCd", key, other), MEDIA_OK);
    cr_assert_neq(memcmp(check, other, 32), 0);
    cr_assert_eq(media_epoch_check("U9dtpXO2", "q3X", "AbCd", key, other), MEDIA_OK);
    cr_assert_neq(memcmp(check, other, 32), 0, "another owner");
    cr_assert_eq(media_epoch_check("U9dtpXO2", "q3W", "AbCe", key, other), MEDIA_OK);
    cr_assert_neq(memcmp(check, other, 32), 0, "another epoch");
    key[0] ^= 1;
    cr_assert_eq(media_epoch_check("U9dtpXO2", "q3W", "AbCd", key, other), MEDIA_OK);
    cr_assert_neq(memcmp(check, other, 32), 0, "another key");
}

Test(epoch, photo_message_is_bound_to_room_epoch_device_counter_and_time)
{
    uint8_t key[32], other_key[32];
    randombytes_buf(key, sizeof key);
    randombytes_buf(other_key, sizeof other_key);
    const char msg[] = "{\"caption\":\"県道12号線 冠水\",\"gps\":null}";
    const struct media_photo_ad ad = {"room", "epoch", "dev", 7, 1795316640000LL};
    unsigned char *ct;
    size_t ct_len, len;
    char *back;
    cr_assert_eq(media_photo_seal(&ad, msg, strlen(msg), key, &ct, &ct_len), MEDIA_OK);
    cr_assert_eq(media_photo_open(&ad, ct, ct_len, key, &back, &len), MEDIA_OK);
    cr_assert_eq(len, strlen(msg));
    cr_assert_str_eq(back, msg);
    free(back);
    /* Another room, epoch, device, counter or time; a field's character moved to its
     * neighbour; another key; a flipped or cut ciphertext: nothing opens. */
    const struct media_photo_ad wrong[] = {
        {"roon", "epoch", "dev", 7, 1795316640000LL},  {"room", "epocH", "dev", 7, 1795316640000LL},
        {"room", "epoch", "deV", 7, 1795316640000LL},  {"room", "epoch", "dev", 8, 1795316640000LL},
        {"room", "epoch", "dev", 7, 1795316640001LL},  {"roome", "poch", "dev", 7, 1795316640000LL},
        {"room", "epoch", "dev7", 1, 1795316640000LL},
    };
    for (size_t i = 0; i < sizeof wrong / sizeof *wrong; i++)
        cr_assert_eq(media_photo_open(&wrong[i], ct, ct_len, key, &back, &len), MEDIA_AUTH,
                     "case %zu", i);
    cr_assert_eq(media_photo_open(&ad, ct, ct_len, other_key, &back, &len), MEDIA_AUTH);
    cr_assert_null(back);
    ct[ct_len / 2] ^= 1;
    cr_assert_eq(media_photo_open(&ad, ct, ct_len, key, &back, &len), MEDIA_AUTH);
    ct[ct_len / 2] ^= 1;
    cr_assert_eq(media_photo_open(&ad, ct, ct_len - 1, key, &back, &len), MEDIA_AUTH);
    cr_assert_eq(media_photo_open(&ad, ct, MEDIA_AEAD_OVERHEAD - 1, key, &back, &len), MEDIA_AUTH);
    /* Counters start at 1. */
    const struct media_photo_ad zero = {"room", "epoch", "dev", 0, 1795316640000LL};
    cr_assert_eq(media_photo_open(&zero, ct, ct_len, key, &back, &len), MEDIA_INVALID);
    free(ct);
    cr_assert_eq(media_photo_seal(&zero, msg, strlen(msg), key, &ct, &ct_len), MEDIA_INVALID);
    cr_assert_null(ct);
}

/* The vector: the layout of docs/protocol.md written out by hand (a fixed nonce, the additional
 * data as literal bytes, the message padded to the smallest bucket, 541 bytes), opened by
 * media_photo_open; then padding a sender would not make. */
static void seal_by_hand(const uint8_t key[32], const unsigned char *plain, size_t n,
                         unsigned char *ct)
{
    static const char ad[] = "kizuna/photo/v2\0U9dtpXO2\0AbCd\0q3W\0"
                             "42\0"
                             "1795316640000";
    for (int i = 0; i < 24; i++)
        ct[i] = (unsigned char)(0x40 + i);
    crypto_aead_xchacha20poly1305_ietf_encrypt(ct + 24, NULL, plain, n, (const unsigned char *)ad,
                                               sizeof ad - 1, NULL, ct, key);
}

Test(epoch, photo_message_vector_built_by_hand_opens)
{
    uint8_t key[32];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)i;
    const char msg[] = "{\"caption\":\"test\"}";
    unsigned char plain[541] = {0, 0, 0, sizeof msg - 1}, ct[541 + MEDIA_AEAD_OVERHEAD];
    memcpy(plain + 4, msg, sizeof msg - 1);
    cr_assert_eq(media_photo_padded_len(sizeof msg - 1), 541);
    seal_by_hand(key, plain, sizeof plain, ct);
    const struct media_photo_ad want = {"U9dtpXO2", "AbCd", "q3W", 42, 1795316640000LL};
    char *back;
    size_t len;
    cr_assert_eq(media_photo_open(&want, ct, sizeof ct, key, &back, &len), MEDIA_OK);
    cr_assert_eq(len, sizeof msg - 1);
    cr_assert_str_eq(back, msg);
    free(back);
    /* Another bucket than ours is the sender's choice: 600 bytes open too. */
    unsigned char big[600] = {0, 0, 0, sizeof msg - 1}, bct[600 + MEDIA_AEAD_OVERHEAD];
    memcpy(big + 4, msg, sizeof msg - 1);
    seal_by_hand(key, big, sizeof big, bct);
    cr_assert_eq(media_photo_open(&want, bct, sizeof bct, key, &back, &len), MEDIA_OK);
    cr_assert_str_eq(back, msg);
    free(back);
    /* A byte after the message that is not zero, a length past the end, no room for a length:
     * authentic, but refused. */
    plain[540] = 1;
    seal_by_hand(key, plain, sizeof plain, ct);
    cr_assert_eq(media_photo_open(&want, ct, sizeof ct, key, &back, &len), MEDIA_AUTH);
    cr_assert_null(back);
    plain[540] = 0;
    plain[2] = 3; /* 0x312 = 786 > 537 */
    seal_by_hand(key, plain, sizeof plain, ct);
    cr_assert_eq(media_photo_open(&want, ct, sizeof ct, key, &back, &len), MEDIA_AUTH);
    seal_by_hand(key, plain, 3, ct);
    cr_assert_eq(media_photo_open(&want, ct, 3 + MEDIA_AEAD_OVERHEAD, key, &back, &len),
                 MEDIA_AUTH);
}

/* What the size of a sealed message tells: only the bucket of its length. A message with GPS
 * and one without, the same thumbnail, the same caption: one size, unless the 45 bytes of GPS
 * cross a bucket's edge (5% of the message). */
Test(epoch, photo_messages_are_padded_to_size_buckets)
{
    uint8_t key[32];
    randombytes_buf(key, sizeof key);
    const struct media_photo_ad ad = {"room", "epoch", "dev", 1, 1795316640000LL};
    static char msg[20000];
    unsigned char *ct;
    size_t ct_len;
    for (size_t len = 0; len < sizeof msg; len += 997) {
        memset(msg, 'x', len);
        cr_assert_eq(media_photo_seal(&ad, msg, len, key, &ct, &ct_len), MEDIA_OK);
        cr_assert_eq(ct_len, media_blob_padded_len(len + 4) + MEDIA_AEAD_OVERHEAD, "%zu", len);
        cr_assert_geq(ct_len, len + 4 + MEDIA_AEAD_OVERHEAD);
        free(ct);
    }
    /* A thumbnail of 9 KiB (12 KiB of base64) and the rest of the photo JSON. */
    const char gps[] = ",\"gps\":{\"lat\":35.681236,\"lon\":139.767125}";
    size_t base = 12500, with = base + sizeof gps - 1;
    cr_assert_eq(media_photo_padded_len(base), media_photo_padded_len(with),
                 "with and without GPS: one bucket (%zu and %zu bytes)", base, with);
    memset(msg, 'x', with);
    size_t a, b;
    cr_assert_eq(media_photo_seal(&ad, msg, base, key, &ct, &a), MEDIA_OK);
    free(ct);
    cr_assert_eq(media_photo_seal(&ad, msg, with, key, &ct, &b), MEDIA_OK);
    free(ct);
    cr_assert_eq(a, b);
    /* Two captions of 3 and 300 characters in a small message: one size too. */
    cr_assert_eq(media_photo_padded_len(40), media_photo_padded_len(340));
}

/* ---- safety numbers ---- */

static void dev(struct media_device_pub *d, const char *id, unsigned char seed)
{
    d->device_id = id;
    memset(d->sign_pk, seed, 32);
    memset(d->box_pk, seed ^ 0x5a, 32);
}

static void digits_only(const char *s, char out[61])
{
    int n = 0;
    for (; *s; s++)
        if (*s != ' ')
            out[n++] = *s;
    out[n] = '\0';
}

Test(safety, symmetric_sixty_digits_deterministic_and_key_sensitive)
{
    struct media_device_pub a[2], b[3];
    dev(&a[0], "phone", 1);
    dev(&a[1], "laptop", 2);
    dev(&b[0], "desk", 3);
    dev(&b[1], "tablet", 4);
    dev(&b[2], "phone", 5);
    char ab[MEDIA_SAFETY_NUMBER_LEN + 1], ba[MEDIA_SAFETY_NUMBER_LEN + 1],
        again[MEDIA_SAFETY_NUMBER_LEN + 1];
    cr_assert_eq(media_safety_number("alice@a", a, 2, "bob@b", b, 3, ab), MEDIA_OK);
    cr_assert_eq(media_safety_number("bob@b", b, 3, "alice@a", a, 2, ba), MEDIA_OK);
    cr_assert_str_eq(ab, ba, "both sides see the same number");
    cr_assert_eq(strlen(ab), 71);
    for (int i = 0; i < 71; i++) {
        if (i % 6 == 5)
            cr_assert_eq(ab[i], ' ', "%s", ab);
        else
            cr_assert(ab[i] >= '0' && ab[i] <= '9', "%s", ab);
    }
    cr_assert_eq(media_safety_number("alice@a", a, 2, "bob@b", b, 3, again), MEDIA_OK);
    cr_assert_str_eq(ab, again);

    /* The order in which the directory lists devices does not matter. */
    struct media_device_pub a_rev[2] = {a[1], a[0]};
    cr_assert_eq(media_safety_number("alice@a", a_rev, 2, "bob@b", b, 3, again), MEDIA_OK);
    cr_assert_str_eq(ab, again);

    /* Halves: the two fingerprints, in ascending order. */
    char fa[31], fb[31], d[61];
    cr_assert_eq(media_fingerprint("alice@a", a, 2, fa), MEDIA_OK);
    cr_assert_eq(media_fingerprint("bob@b", b, 3, fb), MEDIA_OK);
    cr_assert_eq(strlen(fa), 30);
    digits_only(ab, d);
    cr_assert_eq(strlen(d), 60);
    bool a_first = strcmp(fa, fb) < 0;
    cr_assert_eq(strncmp(d, a_first ? fa : fb, 30), 0);
    cr_assert_eq(strncmp(d + 30, a_first ? fb : fa, 30), 0);

    /* Any change to any key, device id or user id changes the number. */
    struct media_device_pub a2[2], b2[3];
    for (int change = 0; change < 6; change++) {
        memcpy(a2, a, sizeof a);
        memcpy(b2, b, sizeof b);
        const char *ua = "alice@a";
        switch (change) {
        case 0:
            a2[0].sign_pk[31] ^= 1;
            break;
        case 1:
            a2[1].box_pk[0] ^= 1;
            break;
        case 2:
            b2[2].sign_pk[5] ^= 1;
            break;
        case 3:
            b2[0].box_pk[9] ^= 1;
            break;
        case 4:
            b2[1].device_id = "tablet2";
            break;
        case 5:
            ua = "alice@c";
            break;
        }
        cr_assert_eq(media_safety_number(ua, a2, 2, "bob@b", b2, 3, again), MEDIA_OK);
        cr_assert_str_neq(ab, again, "change %d kept the number", change);
    }
    /* A device more or less changes it too. */
    cr_assert_eq(media_safety_number("alice@a", a, 1, "bob@b", b, 3, again), MEDIA_OK);
    cr_assert_str_neq(ab, again);
}

/* ---- signed device lists and room policies (issue 14, items 1 and 6) ---- */

/* A list of n new devices for login; keys[i] gets each device's key pairs. */
static void devlist_new(struct media_devlist *l, const char *login, uint64_t seq, size_t n,
                        struct media_device_keys *keys)
{
    memset(l, 0, sizeof *l);
    snprintf(l->login, sizeof l->login, "%s", login);
    l->seq = seq;
    l->n = n;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(media_device_keys_new(&keys[i]), MEDIA_OK);
        memcpy(l->dev[i].sign_pk, keys[i].sign_pk, 32);
        memcpy(l->dev[i].box_pk, keys[i].box_pk, 32);
    }
}

/* The id media_device_id gives for a device's keys. */
static void id_of(const struct media_device_keys *k, char id[MEDIA_DEVICE_ID_LEN + 1])
{
    media_device_id(k->sign_pk, id);
}

Test(devlist, one_encoding_per_list_and_every_malformed_one_refused)
{
    struct media_devlist l, back, again;
    struct media_device_keys k[3];
    unsigned char enc[MEDIA_DEVLIST_ENCODED_MAX], enc2[MEDIA_DEVLIST_ENCODED_MAX];
    size_t len, len2;
    devlist_new(&l, "tanaka", 7, 3, k);
    cr_assert_eq(media_devlist_encode(&l, enc, sizeof enc, &len), MEDIA_OK);
    cr_assert_eq(len, 6 + 6 + 8 + 32 + 1 + 3 * 64);
    cr_assert_eq(memcmp(enc, "KZDL\x01\x06tanaka", 12), 0);
    cr_assert_eq(media_devlist_decode(enc, len, &back), MEDIA_OK);
    cr_assert_str_eq(back.login, "tanaka");
    cr_assert_eq(back.seq, 7);
    cr_assert_eq(back.n, 3);
    cr_assert(media_devlist_is_root(&back));
    cr_assert_eq(memcmp(back.hash, l.hash, 32), 0);
    /* The same devices in another order encode to the same bytes. */
    again = l;
    struct media_devlist_entry t = again.dev[0];
    again.dev[0] = again.dev[2];
    again.dev[2] = t;
    cr_assert_eq(media_devlist_encode(&again, enc2, sizeof enc2, &len2), MEDIA_OK);
    cr_assert(len2 == len && memcmp(enc, enc2, len) == 0);
    char id[MEDIA_DEVICE_ID_LEN + 1];
    id_of(&k[1], id);
    cr_assert_geq(media_devlist_find(&back, id), 0);
    cr_assert_eq(media_devlist_find(&back, "not-a-device"), -1);

    /* Cut short, a byte more, another version, seq 0, two devices out of order or twice. */
    cr_assert_eq(media_devlist_decode(enc, len - 1, &back), MEDIA_FORMAT);
    memcpy(enc2, enc, len);
    enc2[len] = 0;
    cr_assert_eq(media_devlist_decode(enc2, len + 1, &back), MEDIA_FORMAT);
    memcpy(enc2, enc, len);
    enc2[4] = 2;
    cr_assert_eq(media_devlist_decode(enc2, len, &back), MEDIA_FORMAT);
    memcpy(enc2, enc, len);
    memset(enc2 + 12, 0, 8);
    cr_assert_eq(media_devlist_decode(enc2, len, &back), MEDIA_FORMAT);
    size_t devs = 12 + 8 + 32 + 1;
    memcpy(enc2, enc, len);
    memcpy(enc2 + devs, enc + devs + 64, 64); /* the second device where the first was */
    memcpy(enc2 + devs + 64, enc + devs, 64);
    cr_assert_eq(media_devlist_decode(enc2, len, &back), MEDIA_FORMAT);
    memcpy(enc2, enc, len);
    memcpy(enc2 + devs + 64, enc + devs, 64);
    cr_assert_eq(media_devlist_decode(enc2, len, &back), MEDIA_FORMAT);
    memcpy(enc2, enc, len);
    enc2[8] = '\n'; /* a control character in the login */
    cr_assert_eq(media_devlist_decode(enc2, len, &back), MEDIA_FORMAT);
    /* The encoder refuses what it could not write back. */
    again = l;
    again.dev[1] = again.dev[0];
    cr_assert_eq(media_devlist_encode(&again, enc2, sizeof enc2, &len2), MEDIA_INVALID);
    again = l;
    again.seq = 0;
    cr_assert_eq(media_devlist_encode(&again, enc2, sizeof enc2, &len2), MEDIA_INVALID);
    cr_assert_eq(media_devlist_encode(&l, enc2, 100, &len2), MEDIA_INVALID);
}

Test(devlist, a_version_follows_only_if_a_device_of_the_one_before_signed_it)
{
    struct media_devlist first, next, root, bad;
    struct media_device_keys k[2], newk[1], other[1];
    unsigned char e1[MEDIA_DEVLIST_ENCODED_MAX], e2[MEDIA_DEVLIST_ENCODED_MAX],
        e3[MEDIA_DEVLIST_ENCODED_MAX];
    size_t l1, l2, l3;
    uint8_t s1[64], s2[64], s3[64];
    char a[MEDIA_DEVICE_ID_LEN + 1], n[MEDIA_DEVICE_ID_LEN + 1], o[MEDIA_DEVICE_ID_LEN + 1];
    devlist_new(&first, "sato", 1, 2, k);
    id_of(&k[0], a);
    cr_assert_eq(media_devlist_encode(&first, e1, sizeof e1, &l1), MEDIA_OK);
    cr_assert_eq(media_devlist_sign(e1, l1, k[0].sign_sk, s1), MEDIA_OK);
    /* The first version stands on its own: a root signed by a device it names. */
    cr_assert_eq(media_devlist_follows(NULL, &first, e1, l1, a, s1), MEDIA_OK);
    id_of(&k[1], n);
    cr_assert_eq(media_devlist_follows(NULL, &first, e1, l1, n, s1), MEDIA_AUTH);

    /* Version 2 adds a new phone; a device of version 1 signs it. */
    next = first;
    next.seq = 2;
    memcpy(next.prev, first.hash, 32);
    cr_assert_eq(media_device_keys_new(&newk[0]), MEDIA_OK);
    memcpy(next.dev[2].sign_pk, newk[0].sign_pk, 32);
    memcpy(next.dev[2].box_pk, newk[0].box_pk, 32);
    next.n = 3;
    cr_assert_eq(media_devlist_encode(&next, e2, sizeof e2, &l2), MEDIA_OK);
    cr_assert_eq(media_devlist_sign(e2, l2, k[0].sign_sk, s2), MEDIA_OK);
    cr_assert_eq(media_devlist_follows(&first, &next, e2, l2, a, s2), MEDIA_OK);
    cr_assert_eq(media_devlist_follows(NULL, &next, e2, l2, a, s2), MEDIA_FORMAT,
                 "not a root: it needs the version before");
    /* The new phone cannot approve itself, nor can anyone outside version 1. */
    id_of(&newk[0], n);
    cr_assert_eq(media_devlist_sign(e2, l2, newk[0].sign_sk, s3), MEDIA_OK);
    cr_assert_eq(media_devlist_follows(&first, &next, e2, l2, n, s3), MEDIA_AUTH);
    s2[0] ^= 1;
    cr_assert_eq(media_devlist_follows(&first, &next, e2, l2, a, s2), MEDIA_AUTH);
    s2[0] ^= 1;
    cr_assert_eq(media_devlist_follows(&first, &next, e1, l1, a, s2), MEDIA_INVALID,
                 "the bytes are not this list's");
    /* A skipped version, another prev, another login. */
    bad = next;
    bad.seq = 3;
    cr_assert_eq(media_devlist_encode(&bad, e3, sizeof e3, &l3), MEDIA_OK);
    cr_assert_eq(media_devlist_sign(e3, l3, k[0].sign_sk, s3), MEDIA_OK);
    cr_assert_eq(media_devlist_follows(&first, &bad, e3, l3, a, s3), MEDIA_FORMAT);
    bad = next;
    bad.prev[0] ^= 1;
    cr_assert_eq(media_devlist_encode(&bad, e3, sizeof e3, &l3), MEDIA_OK);
    cr_assert_eq(media_devlist_sign(e3, l3, k[0].sign_sk, s3), MEDIA_OK);
    cr_assert_eq(media_devlist_follows(&first, &bad, e3, l3, a, s3), MEDIA_FORMAT);
    bad = next;
    snprintf(bad.login, sizeof bad.login, "suzuki");
    cr_assert_eq(media_devlist_encode(&bad, e3, sizeof e3, &l3), MEDIA_OK);
    cr_assert_eq(media_devlist_sign(e3, l3, k[0].sign_sk, s3), MEDIA_OK);
    cr_assert_eq(media_devlist_follows(&first, &bad, e3, l3, a, s3), MEDIA_FORMAT);

    /* A new start: a root after version 2, signed by a device it names (no one of before). */
    devlist_new(&root, "sato", 3, 1, other);
    id_of(&other[0], o);
    cr_assert_eq(media_devlist_encode(&root, e3, sizeof e3, &l3), MEDIA_OK);
    cr_assert_eq(media_devlist_sign(e3, l3, other[0].sign_sk, s3), MEDIA_OK);
    cr_assert_eq(media_devlist_follows(&next, &root, e3, l3, o, s3), MEDIA_OK);
    cr_assert(media_devlist_is_root(&root) && !media_devlist_is_root(&next));
    cr_assert_eq(media_devlist_sign(e3, l3, k[0].sign_sk, s3), MEDIA_OK);
    cr_assert_eq(media_devlist_follows(&next, &root, e3, l3, a, s3), MEDIA_AUTH,
                 "a root is signed by its own device");
    /* Domain separation: the same bytes signed as anything else do not verify. */
    cr_assert_eq(media_sign("kizuna/e2ee/v1", e3, l3, other[0].sign_sk, s3), MEDIA_OK);
    cr_assert_eq(media_devlist_follows(&next, &root, e3, l3, o, s3), MEDIA_AUTH);
}

Test(devlist, a_room_policy_binds_login_and_history)
{
    struct media_device_keys k;
    cr_assert_eq(media_device_keys_new(&k), MEDIA_OK);
    uint8_t sig[64];
    cr_assert_eq(media_policy_sign("alice", "joined", k.sign_sk, sig), MEDIA_OK);
    cr_assert(media_policy_verify("alice", "joined", k.sign_pk, sig));
    cr_assert_not(media_policy_verify("alice", "shared", k.sign_pk, sig));
    cr_assert_not(media_policy_verify("alicej", "oined", k.sign_pk, sig),
                  "length-prefixed: no two splits give the same bytes");
    cr_assert_not(media_policy_verify("bob", "joined", k.sign_pk, sig));
    /* Ed25519 over "kizuna/policy/v1" 0x00 u8 5 "alice" u8 6 "joined", as protocol.md says. */
    unsigned char m[] = "\x05"
                        "alice\x06"
                        "joined";
    cr_assert(media_verify(MEDIA_DOMAIN_POLICY, m, sizeof m - 1, k.sign_pk, sig));
    char big[300];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_assert_eq(media_policy_sign(big, "joined", k.sign_sk, sig), MEDIA_INVALID);
}
