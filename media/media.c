/* media.c - the JPEG probe and result names; see media.h. */
#include "media.h"

#include <string.h>
#include <turbojpeg.h>

enum media_rc media_jpeg_probe(const unsigned char *buf, size_t len, struct media_jpeg_info *out)
{
    /* SOI marker first: anything else is not a JPEG, whatever a decoder might make of it. */
    if (len < 4 || buf[0] != 0xff || buf[1] != 0xd8 || buf[2] != 0xff)
        return MEDIA_NOT_JPEG;
    tjhandle tj = tjInitDecompress();
    if (!tj)
        return MEDIA_NOMEM;
    int subsamp, colorspace, w = 0, h = 0;
    int rc = tjDecompressHeader3(tj, buf, (unsigned long)len, &w, &h, &subsamp, &colorspace);
    if (rc != 0 && media_tj_harmless_warning(tj))
        rc = 0;
    tjDestroy(tj);
    /* A stream cut before its frame header reads as "tables only": success with no size. */
    if (rc != 0 || w <= 0 || h <= 0)
        return MEDIA_CORRUPT;
    out->width = w;
    out->height = h;
    return MEDIA_OK;
}

bool media_tj_harmless_warning(void *tj)
{
    /* The one libjpeg warning that leaves the image whole: stray bytes between two segments,
     * which phones write; libjpeg skips them. Everything else (a cut stream, bad entropy data)
     * would be a half-grey photo. */
    return tjGetErrorCode(tj) == TJERR_WARNING &&
           strstr(tjGetErrorStr2(tj), "extraneous bytes before marker") != NULL;
}

const char *media_rc_name(enum media_rc rc)
{
    switch (rc) {
    case MEDIA_OK:
        return "ok";
    case MEDIA_NOT_JPEG:
        return "not_jpeg";
    case MEDIA_CORRUPT:
        return "corrupt";
    case MEDIA_NOMEM:
        return "out_of_memory";
    case MEDIA_TOO_LARGE:
        return "too_large";
    case MEDIA_UNSUPPORTED:
        return "unsupported";
    case MEDIA_INVALID:
        return "invalid_argument";
    case MEDIA_IO:
        return "io_error";
    case MEDIA_AUTH:
        return "not_authentic";
    case MEDIA_BLOB_FORMAT:
        return "blob_format";
    case MEDIA_BLOB_TAMPERED:
        return "blob_tampered";
    case MEDIA_BLOB_TRUNCATED:
        return "blob_truncated";
    case MEDIA_BLOB_NO_FINAL:
        return "blob_no_final";
    case MEDIA_BLOB_TRAILING:
        return "blob_trailing";
    case MEDIA_BLOB_REORDERED:
        return "blob_reordered";
    case MEDIA_BLOB_HASH:
        return "blob_hash";
    case MEDIA_BLOB_LENGTH:
        return "blob_length";
    case MEDIA_FORMAT:
        return "format";
    }
    return "unknown";
}
