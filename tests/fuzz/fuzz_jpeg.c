/* fuzz_jpeg.c - JPEG handling in media/: the header probe the server runs on uploads, the
 * EXIF reader (from a JPEG and from a bare TIFF structure) and the whole photo pipeline
 * (decode, scale, orient, re-encode, thumbnail) with small output sizes so that each input
 * stays cheap. Besides memory errors it checks what media.h promises: EXIF values in range, an
 * output that is a JPEG of the size asked for, with no EXIF left in it. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "media.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *msg)
{
    fprintf(stderr, "fuzz_jpeg: %s\n", msg);
    abort();
}

static void check_exif(const struct media_exif *e)
{
    if (e->orientation < 1 || e->orientation > 8)
        fail("EXIF orientation out of range");
    if (e->has_gps && (!(fabs(e->lat) <= 90) || !(fabs(e->lon) <= 180)))
        fail("EXIF GPS position out of range");
    if (e->has_captured_at && strlen(e->captured_at) != 19)
        fail("EXIF capture time is not YYYY-MM-DDTHH:MM:SS");
}

static void check_output(const unsigned char *jpeg, size_t len, int w, int h, int max_edge)
{
    struct media_jpeg_info info;
    if (media_jpeg_probe(jpeg, len, &info) != MEDIA_OK || info.width != w || info.height != h)
        fail("the pipeline's output does not probe as the JPEG it claims to be");
    if (w > max_edge || h > max_edge || w < 1 || h < 1)
        fail("the pipeline's output is not within the size asked for");
    struct media_exif e;
    if (media_exif_from_jpeg(jpeg, len, &e) != MEDIA_OK || e.has_gps || e.has_captured_at ||
        e.orientation != 1)
        fail("the pipeline's output still carries EXIF");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct media_jpeg_info info;
    media_jpeg_probe(data, size, &info);

    struct media_exif exif;
    if (media_exif_from_jpeg(data, size, &exif) == MEDIA_OK)
        check_exif(&exif);
    if (media_exif_from_tiff(data, size, &exif) == MEDIA_OK)
        check_exif(&exif);

    struct media_photo_opts opt = media_photo_opts_default();
    opt.max_edge = 48;
    opt.thumb_edge = 16;
    opt.thumb_max_bytes = 4096;
    opt.quality = 50;
    struct media_photo p;
    if (media_photo_process(data, size, &opt, &p) == MEDIA_OK) {
        check_output(p.image, p.image_len, p.width, p.height, opt.max_edge);
        check_output(p.thumb, p.thumb_len, p.thumb_width, p.thumb_height, opt.thumb_edge);
        if (p.thumb_len > opt.thumb_max_bytes)
            fail("the thumbnail is over thumb_max_bytes");
    }
    media_photo_free(&p);
    return 0;
}
