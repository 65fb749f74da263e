/* media.h - JPEG handling and the end-to-end encryption formats. No network, no database:
 * clients (and tests) use this; the server never decrypts anything. Small until the photo
 * issue lands. */
#ifndef KIZUNA_MEDIA_H
#define KIZUNA_MEDIA_H

#include <stddef.h>

enum media_rc {
    MEDIA_OK = 0,
    MEDIA_NOT_JPEG, /* the bytes are not a JPEG image */
    MEDIA_CORRUPT,  /* a JPEG header that cannot be decoded */
    MEDIA_NOMEM,
};

struct media_jpeg_info {
    int width, height;
};

/* Reads a JPEG's dimensions from its header without decoding the image. */
enum media_rc media_jpeg_probe(const unsigned char *buf, size_t len, struct media_jpeg_info *out);
/* A stable, human-readable name for a result code. */
const char *media_rc_name(enum media_rc rc);

#endif
