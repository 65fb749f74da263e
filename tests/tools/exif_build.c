/* exif_build.c - see exif_build.h. */
#include "exif_build.h"

#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#define MAX_CANARY 16000 /* every segment stays far below the 65533-byte limit */

/* One directory entry; its value bytes are already in the file's byte order. */
struct ent {
    unsigned tag, type;
    uint32_t count;
    const unsigned char *data;
    size_t size;
    unsigned char own[32]; /* storage for small values; data points here or elsewhere */
};

struct ifd {
    struct ent e[8];
    int n;
};

static void put16(bool be, unsigned char *p, unsigned v)
{
    p[be ? 0 : 1] = (unsigned char)(v >> 8);
    p[be ? 1 : 0] = (unsigned char)v;
}

static void put32(bool be, unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[be ? 3 - i : i] = (unsigned char)(v >> (8 * i));
}

static struct ent *add(struct ifd *d, unsigned tag, unsigned type, uint32_t count)
{
    struct ent *e = &d->e[d->n++];
    memset(e, 0, sizeof *e);
    e->tag = tag;
    e->type = type;
    e->count = count;
    e->data = e->own;
    return e;
}

static void add_short(struct ifd *d, bool be, unsigned tag, unsigned v)
{
    struct ent *e = add(d, tag, 3, 1);
    put16(be, e->own, v);
    e->size = 2;
}

static void add_long(struct ifd *d, bool be, unsigned tag, uint32_t v)
{
    struct ent *e = add(d, tag, 4, 1);
    put32(be, e->own, v);
    e->size = 4;
}

/* ASCII with its NUL, as TIFF counts it. */
static void add_ascii(struct ifd *d, unsigned tag, const char *s)
{
    size_t n = strlen(s) + 1;
    struct ent *e = add(d, tag, 2, (uint32_t)n);
    e->data = (const unsigned char *)s;
    e->size = n;
}

static void add_bytes(struct ifd *d, unsigned tag, const unsigned char *p, size_t n)
{
    struct ent *e = add(d, tag, 7, (uint32_t)n); /* UNDEFINED */
    e->data = p;
    e->size = n;
}

/* Degrees, minutes and hundredths of seconds as three RATIONALs. */
static void add_dms(struct ifd *d, bool be, unsigned tag, double v)
{
    v = fabs(v);
    double deg = floor(v), min = floor((v - deg) * 60);
    double sec = ((v - deg) * 60 - min) * 60;
    uint32_t num[3] = {(uint32_t)deg, (uint32_t)min, (uint32_t)llround(sec * 100)};
    uint32_t den[3] = {1, 1, 100};
    struct ent *e = add(d, tag, 5, 3);
    for (int i = 0; i < 3; i++) {
        put32(be, e->own + i * 8, num[i]);
        put32(be, e->own + i * 8 + 4, den[i]);
    }
    e->size = 24;
}

static size_t ifd_size(const struct ifd *d)
{
    size_t n = 2 + 12 * (size_t)d->n + 4;
    for (int i = 0; i < d->n; i++)
        if (d->e[i].size > 4)
            n += d->e[i].size + (d->e[i].size & 1);
    return n;
}

/* Writes d at off with its large values from *data on (word aligned); returns nothing, the
 * layout was fixed by the caller. */
static void write_ifd(bool be, unsigned char *p, size_t off, const struct ifd *d, size_t *data)
{
    put16(be, p + off, (unsigned)d->n);
    for (int i = 0; i < d->n; i++) {
        const struct ent *e = &d->e[i];
        unsigned char *q = p + off + 2 + 12 * (size_t)i;
        put16(be, q, e->tag);
        put16(be, q + 2, e->type);
        put32(be, q + 4, e->count);
        if (e->size <= 4) {
            memcpy(q + 8, e->data, e->size);
        } else {
            put32(be, q + 8, (uint32_t)*data);
            memcpy(p + *data, e->data, e->size);
            *data += e->size + (e->size & 1);
        }
    }
    put32(be, p + off + 2 + 12 * (size_t)d->n, 0); /* no next IFD */
}

unsigned char *exb_tiff(const struct exif_spec *s, size_t *len)
{
    bool be = s->big_endian;
    size_t clen = s->canary ? strlen(s->canary) : 0;
    if (clen > MAX_CANARY)
        return NULL;
    /* UserComment: an 8-byte character code, then the text. MakerNote: vendor-specific bytes,
     * here a tag and the canary. */
    unsigned char comment[8 + MAX_CANARY], maker[4 + MAX_CANARY];
    memcpy(comment, "ASCII\0\0\0", 8);
    memcpy(maker, "KZMN", 4);
    if (clen) {
        memcpy(comment + 8, s->canary, clen);
        memcpy(maker + 4, s->canary, clen);
    }

    struct ifd ifd0 = {.n = 0}, exif = {.n = 0}, gps = {.n = 0};
    if (s->orientation)
        add_short(&ifd0, be, 0x0112, (unsigned)s->orientation);
    if (s->datetime)
        add_ascii(&ifd0, 0x0132, s->datetime);
    bool has_exif = s->datetime_original || clen;
    if (has_exif)
        add_long(&ifd0, be, 0x8769, 0); /* patched below */
    if (s->has_gps)
        add_long(&ifd0, be, 0x8825, 0);
    if (s->datetime_original)
        add_ascii(&exif, 0x9003, s->datetime_original);
    if (clen) {
        add_bytes(&exif, 0x927c, maker, 4 + clen);
        add_bytes(&exif, 0x9286, comment, 8 + clen);
    }
    if (s->has_gps) {
        static const unsigned char version[4] = {2, 3, 0, 0};
        struct ent *v = add(&gps, 0x0000, 1, 4);
        memcpy(v->own, version, 4);
        v->size = 4;
        add_ascii(&gps, 0x0001, s->lat < 0 ? "S" : "N");
        add_dms(&gps, be, 0x0002, s->lat);
        add_ascii(&gps, 0x0003, s->lon < 0 ? "W" : "E");
        add_dms(&gps, be, 0x0004, s->lon);
    }

    /* Layout: header, IFD0, Exif IFD, GPS IFD, each followed by its large values. */
    size_t off0 = 8, off_exif = off0 + ifd_size(&ifd0);
    size_t off_gps = off_exif + (has_exif ? ifd_size(&exif) : 0);
    size_t total = off_gps + (s->has_gps ? ifd_size(&gps) : 0);
    for (int i = 0; i < ifd0.n; i++) {
        if (ifd0.e[i].tag == 0x8769)
            put32(be, ifd0.e[i].own, (uint32_t)off_exif);
        if (ifd0.e[i].tag == 0x8825)
            put32(be, ifd0.e[i].own, (uint32_t)off_gps);
    }
    unsigned char *p = calloc(1, total);
    if (!p)
        return NULL;
    memcpy(p, be ? "MM\0*" : "II*\0", 4);
    put32(be, p + 4, (uint32_t)off0);
    size_t data = off0 + 2 + 12 * (size_t)ifd0.n + 4;
    write_ifd(be, p, off0, &ifd0, &data);
    if (has_exif) {
        data = off_exif + 2 + 12 * (size_t)exif.n + 4;
        write_ifd(be, p, off_exif, &exif, &data);
    }
    if (s->has_gps) {
        data = off_gps + 2 + 12 * (size_t)gps.n + 4;
        write_ifd(be, p, off_gps, &gps, &data);
    }
    *len = total;
    return p;
}

/* Appends marker segment m with body (id, then data) to out at *pos. */
static void segment(unsigned char *out, size_t *pos, unsigned m, const void *id, size_t id_len,
                    const void *data, size_t data_len)
{
    size_t n = 2 + id_len + data_len;
    out[(*pos)++] = 0xff;
    out[(*pos)++] = (unsigned char)m;
    out[(*pos)++] = (unsigned char)(n >> 8);
    out[(*pos)++] = (unsigned char)n;
    memcpy(out + *pos, id, id_len);
    memcpy(out + *pos + id_len, data, data_len);
    *pos += id_len + data_len;
}

unsigned char *exb_insert(const unsigned char *jpeg, size_t len, const struct exif_spec *s,
                          size_t *out_len)
{
    if (len < 2)
        return NULL;
    size_t tlen = 0;
    unsigned char *tiff = exb_tiff(s, &tlen);
    if (!tiff)
        return NULL;
    char xmp[MAX_CANARY + 512] = "";
    static const char xmp_id[] = "http://ns.adobe.com/xap/1.0/"; /* with its NUL */
    if (s->canary)
        snprintf(xmp, sizeof xmp,
                 "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><rdf:RDF "
                 "xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\"><rdf:Description "
                 "xmlns:dc=\"http://purl.org/dc/elements/1.1/\" dc:description=\"%s\"/>"
                 "</rdf:RDF></x:xmpmeta>",
                 s->canary);
    size_t xlen = strlen(xmp), clen = s->canary ? strlen(s->canary) : 0;
    unsigned char *out = malloc(len + tlen + 2 * xlen + 2 * clen + 256);
    if (!out) {
        free(tiff);
        return NULL;
    }
    size_t pos = 0;
    out[pos++] = 0xff;
    out[pos++] = 0xd8;
    segment(out, &pos, 0xe1, "Exif\0\0", 6, tiff, tlen);
    if (s->canary) {
        segment(out, &pos, 0xe1, xmp_id, sizeof xmp_id, xmp, xlen);
        segment(out, &pos, 0xe2, "KZTEST\0", 7, s->canary, clen);
        segment(out, &pos, 0xfe, "", 0, s->canary, clen); /* COM */
    }
    memcpy(out + pos, jpeg + 2, len - 2);
    *out_len = pos + len - 2;
    free(tiff);
    return out;
}

unsigned char *exb_pattern(int w, int h, bool detail)
{
    unsigned char *px = malloc((size_t)w * h * 3);
    if (!px)
        return NULL;
    uint32_t rnd = 2463534242u;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            bool right = x >= w / 2, bottom = y >= h / 2;
            uint32_t c = bottom ? (right ? EXB_BR : EXB_BL) : (right ? EXB_TR : EXB_TL);
            unsigned char *p = px + ((size_t)y * w + x) * 3;
            for (int k = 0; k < 3; k++) {
                int v = (int)(c >> (16 - 8 * k)) & 0xff;
                if (detail) {
                    /* Smooth waves plus a little noise: roughly the entropy of a photo. */
                    rnd ^= rnd << 13, rnd ^= rnd >> 17, rnd ^= rnd << 5;
                    double wave = 40 * sin(x * 0.05 + k) * cos(y * 0.03 - k);
                    v = v * 3 / 4 + 32 + (int)wave + (int)(rnd % 13) - 6;
                    v = v < 0 ? 0 : v > 255 ? 255 : v;
                }
                p[k] = (unsigned char)v;
            }
        }
    }
    return px;
}

unsigned char *exb_jpeg(int w, int h, bool detail, int quality, const struct exif_spec *s,
                        size_t *len)
{
    unsigned char *px = exb_pattern(w, h, detail);
    tjhandle tj = tjInitCompress();
    unsigned char *jpeg = NULL, *out = NULL;
    unsigned long jlen = 0;
    if (px && tj &&
        tjCompress2(tj, px, w, 0, h, TJPF_RGB, &jpeg, &jlen, TJSAMP_420, quality, 0) == 0) {
        if (s) {
            out = exb_insert(jpeg, jlen, s, len);
        } else if ((out = malloc(jlen))) {
            memcpy(out, jpeg, jlen);
            *len = jlen;
        }
    }
    tjFree(jpeg);
    if (tj)
        tjDestroy(tj);
    free(px);
    return out;
}
