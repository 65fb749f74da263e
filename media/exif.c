/* exif.c - the few EXIF fields we use, from a hostile TIFF structure.
 *
 * Every read goes through span(), which checks offset and length against the buffer without
 * overflowing. Only three IFDs are read (IFD0 and the Exif and GPS IFDs it points to) and no
 * "next IFD" link is followed, so a structure whose pointers form a loop costs three IFD scans
 * at most. */
#include "media.h"

#include <string.h>

enum {
    TAG_ORIENTATION = 0x0112,
    TAG_DATETIME = 0x0132,
    TAG_EXIF_IFD = 0x8769,
    TAG_GPS_IFD = 0x8825,
    TAG_DATETIME_ORIGINAL = 0x9003,
    TAG_GPS_LAT_REF = 0x0001,
    TAG_GPS_LAT = 0x0002,
    TAG_GPS_LON_REF = 0x0003,
    TAG_GPS_LON = 0x0004,
};

enum {
    TYPE_BYTE = 1,
    TYPE_ASCII = 2,
    TYPE_SHORT = 3,
    TYPE_LONG = 4,
    TYPE_RATIONAL = 5,
};

struct tiff {
    const unsigned char *p;
    size_t len;
    bool be; /* "MM": big-endian */
};

/* A directory entry, its value located and bounds-checked. */
struct entry {
    unsigned type;
    uint32_t count;
    const unsigned char *val; /* count values of the type's size, all inside the buffer */
};

/* n bytes at off, or NULL if any of them is outside the buffer. 64-bit arguments: callers
 * multiply 32-bit counts by type sizes and add offsets, which cannot overflow 64 bits. */
static const unsigned char *span(const struct tiff *t, uint64_t off, uint64_t n)
{
    if (off > t->len || n > t->len - off)
        return NULL;
    return t->p + off;
}

static unsigned get16(const struct tiff *t, const unsigned char *b)
{
    return t->be ? (unsigned)(b[0] << 8 | b[1]) : (unsigned)(b[1] << 8 | b[0]);
}

static uint32_t get32(const struct tiff *t, const unsigned char *b)
{
    if (t->be)
        return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return (uint32_t)b[3] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[1] << 8 | b[0];
}

static unsigned type_size(unsigned type)
{
    switch (type) {
    case TYPE_BYTE:
    case TYPE_ASCII:
    case 6: /* SBYTE */
    case 7: /* UNDEFINED */
        return 1;
    case TYPE_SHORT:
    case 8: /* SSHORT */
        return 2;
    case TYPE_LONG:
    case 9:  /* SLONG */
    case 11: /* FLOAT */
        return 4;
    case TYPE_RATIONAL:
    case 10: /* SRATIONAL */
    case 12: /* DOUBLE */
        return 8;
    }
    return 0;
}

/* Looks tag up in the IFD at ifd_off. false when the IFD or the entry is unreadable, the tag
 * is absent, or its value lies outside the buffer. */
static bool find(const struct tiff *t, uint32_t ifd_off, unsigned tag, struct entry *e)
{
    const unsigned char *hdr = span(t, ifd_off, 2);
    if (!hdr)
        return false;
    unsigned n = get16(t, hdr);
    const unsigned char *ents = span(t, (uint64_t)ifd_off + 2, (uint64_t)n * 12);
    if (!ents)
        return false;
    for (unsigned i = 0; i < n; i++) {
        const unsigned char *d = ents + (size_t)i * 12;
        if (get16(t, d) != tag)
            continue;
        e->type = get16(t, d + 2);
        e->count = get32(t, d + 4);
        unsigned sz = type_size(e->type);
        if (sz == 0)
            return false;
        uint64_t bytes = (uint64_t)e->count * sz;
        /* Values of up to four bytes sit in the entry itself, larger ones at an offset. */
        e->val = bytes <= 4 ? d + 8 : span(t, get32(t, d + 8), bytes);
        return e->val != NULL;
    }
    return false;
}

static bool find_uint(const struct tiff *t, uint32_t ifd, unsigned tag, uint32_t *v)
{
    struct entry e;
    if (!find(t, ifd, tag, &e) || e.count < 1)
        return false;
    if (e.type == TYPE_SHORT)
        *v = get16(t, e.val);
    else if (e.type == TYPE_LONG)
        *v = get32(t, e.val);
    else
        return false;
    return true;
}

static bool digits(const char *s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        *v = *v * 10 + (s[i] - '0');
    }
    return true;
}

/* "YYYY:MM:DD HH:MM:SS" -> "YYYY-MM-DDTHH:MM:SS". Cameras without a set clock write zeros or
 * spaces; those (and any other nonsense) count as absent. */
static bool find_time(const struct tiff *t, uint32_t ifd, unsigned tag, char out[20])
{
    struct entry e;
    if (!find(t, ifd, tag, &e) || e.type != TYPE_ASCII || e.count < 19)
        return false;
    const char *s = (const char *)e.val;
    int y, mo, d, h, mi, se;
    if (!digits(s, 4, &y) || s[4] != ':' || !digits(s + 5, 2, &mo) || s[7] != ':' ||
        !digits(s + 8, 2, &d) || s[10] != ' ' || !digits(s + 11, 2, &h) || s[13] != ':' ||
        !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &se))
        return false;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return false;
    memcpy(out, s, 19);
    out[4] = out[7] = '-';
    out[10] = 'T';
    out[19] = '\0';
    return true;
}

/* Degrees, minutes, seconds as three RATIONALs, with an "N"/"S" or "E"/"W" reference. */
static bool find_coord(const struct tiff *t, uint32_t ifd, unsigned ref_tag, unsigned tag, char pos,
                       char neg, double limit, double *out)
{
    struct entry ref, e;
    if (!find(t, ifd, ref_tag, &ref) || ref.type != TYPE_ASCII || ref.count < 1)
        return false;
    if (ref.val[0] != pos && ref.val[0] != neg)
        return false;
    if (!find(t, ifd, tag, &e) || e.type != TYPE_RATIONAL || e.count < 3)
        return false;
    double v = 0, unit = 1;
    for (int i = 0; i < 3; i++, unit *= 60) {
        uint32_t num = get32(t, e.val + i * 8), den = get32(t, e.val + i * 8 + 4);
        if (den == 0)
            return false;
        v += (double)num / den / unit;
    }
    if (v > limit)
        return false;
    *out = ref.val[0] == neg ? -v : v;
    return true;
}

enum media_rc media_exif_from_tiff(const unsigned char *tiff, size_t len, struct media_exif *out)
{
    memset(out, 0, sizeof *out);
    out->orientation = 1;
    struct tiff t = {tiff, len, false};
    if (len < 8)
        return MEDIA_CORRUPT;
    if (memcmp(tiff, "II*\0", 4) == 0)
        t.be = false;
    else if (memcmp(tiff, "MM\0*", 4) == 0)
        t.be = true;
    else
        return MEDIA_CORRUPT;
    uint32_t ifd0 = get32(&t, tiff + 4);

    uint32_t v;
    if (find_uint(&t, ifd0, TAG_ORIENTATION, &v) && v >= 1 && v <= 8)
        out->orientation = (int)v;

    uint32_t exif_ifd;
    if (find_uint(&t, ifd0, TAG_EXIF_IFD, &exif_ifd) &&
        find_time(&t, exif_ifd, TAG_DATETIME_ORIGINAL, out->captured_at))
        out->has_captured_at = true;
    else if (find_time(&t, ifd0, TAG_DATETIME, out->captured_at))
        out->has_captured_at = true;

    uint32_t gps;
    double lat, lon;
    if (find_uint(&t, ifd0, TAG_GPS_IFD, &gps) &&
        find_coord(&t, gps, TAG_GPS_LAT_REF, TAG_GPS_LAT, 'N', 'S', 90, &lat) &&
        find_coord(&t, gps, TAG_GPS_LON_REF, TAG_GPS_LON, 'E', 'W', 180, &lon)) {
        out->has_gps = true;
        out->lat = lat;
        out->lon = lon;
    }
    return MEDIA_OK;
}

enum media_rc media_exif_from_jpeg(const unsigned char *jpeg, size_t len, struct media_exif *out)
{
    memset(out, 0, sizeof *out);
    out->orientation = 1;
    if (len < 4 || jpeg[0] != 0xff || jpeg[1] != 0xd8)
        return MEDIA_NOT_JPEG;
    /* Walk the marker segments up to the image data. pos grows on every turn. */
    size_t pos = 2;
    while (len - pos >= 4) {
        if (jpeg[pos] != 0xff)
            break; /* not a marker: the decoder will judge the file, EXIF is simply absent */
        unsigned m = jpeg[pos + 1];
        if (m == 0xff) { /* fill byte before a marker */
            pos++;
            continue;
        }
        if (m == 0x01 || (m >= 0xd0 && m <= 0xd8)) { /* markers without a length */
            pos += 2;
            continue;
        }
        if (m == 0xda || m == 0xd9) /* start of scan, end of image */
            break;
        size_t seg = (size_t)jpeg[pos + 2] << 8 | jpeg[pos + 3]; /* counts its own 2 bytes */
        if (seg < 2 || seg - 2 > len - pos - 4)
            break;
        const unsigned char *body = jpeg + pos + 4;
        if (m == 0xe1 && seg - 2 >= 6 && memcmp(body, "Exif\0\0", 6) == 0) {
            struct media_exif e;
            if (media_exif_from_tiff(body + 6, seg - 8, &e) == MEDIA_OK)
                *out = e;
            return MEDIA_OK; /* the first Exif segment is the one cameras and viewers use */
        }
        pos += 2 + seg;
    }
    return MEDIA_OK;
}
