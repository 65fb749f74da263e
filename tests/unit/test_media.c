/* test_media.c - media/ on images made at test time. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <turbojpeg.h>

#include "media.h"

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
