/* exif_build.h - synthetic JPEG photos with EXIF, XMP and comment segments, for test_media and
 * kz-mkjpeg. Test-only code: it writes well-formed structures, media/exif.c reads hostile ones. */
#ifndef KIZUNA_EXIF_BUILD_H
#define KIZUNA_EXIF_BUILD_H

#include <stdbool.h>
#include <stddef.h>

/* Quadrant colours of the test pattern, as stored (before any orientation is applied). */
#define EXB_TL 0xff0000 /* red */
#define EXB_TR 0x00ff00 /* green */
#define EXB_BL 0x0000ff /* blue */
#define EXB_BR 0xffffff /* white */

struct exif_spec {
    bool big_endian;               /* "MM" instead of "II" */
    int orientation;               /* IFD0 Orientation; 0 writes no tag */
    const char *datetime;          /* IFD0 DateTime "YYYY:MM:DD HH:MM:SS"; NULL: none */
    const char *datetime_original; /* Exif IFD DateTimeOriginal; NULL: none */
    bool has_gps;                  /* GPS IFD with N/S and E/W references */
    double lat, lon;
    /* NULL: none. Otherwise written to the EXIF UserComment and MakerNote, an XMP APP1, an
     * APP2 and a COM segment: everything that must not survive the photo pipeline. */
    const char *canary;
};

/* The TIFF structure of an APP1 Exif segment (without "Exif\0\0"). malloc'd, caller frees;
 * NULL if the canary is too long for one segment. */
unsigned char *exb_tiff(const struct exif_spec *s, size_t *len);
/* jpeg with the segments of s inserted right after SOI. malloc'd, caller frees; NULL on error. */
unsigned char *exb_insert(const unsigned char *jpeg, size_t len, const struct exif_spec *s,
                          size_t *out_len);
/* A w x h RGB picture of four coloured quadrants (EXB_*). detail adds texture and noise so the
 * JPEG is about as large as a real photo (for timing). malloc'd, caller frees. */
unsigned char *exb_pattern(int w, int h, bool detail);
/* exb_pattern encoded with tjCompress2 (4:2:0) at quality, then exb_insert (s may be NULL).
 * malloc'd, caller frees; NULL on error. */
unsigned char *exb_jpeg(int w, int h, bool detail, int quality, const struct exif_spec *s,
                        size_t *len);

#endif
