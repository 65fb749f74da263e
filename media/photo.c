/* photo.c - decode, scale, turn upright, re-encode without metadata, thumbnail (E6 1-2).
 *
 * Metadata is stripped by construction: the output is a fresh tjCompress2 of decoded pixels,
 * so nothing of the input's segments (EXIF, XMP, ICC, maker notes, comments) can survive. */
#include "media.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#define THUMB_FIRST_QUALITY 80
#define THUMB_QUALITY_FLOOR 30
#define THUMB_QUALITY_STEP  10
#define THUMB_MIN_EDGE      16

struct media_photo_opts media_photo_opts_default(void)
{
    return (struct media_photo_opts){
        .max_edge = 2048, .quality = 85, .thumb_edge = 320, .thumb_max_bytes = 12288};
}

void media_photo_free(struct media_photo *p)
{
    tjFree(p->image);
    tjFree(p->thumb);
    memset(p, 0, sizeof *p);
}

/* An RGB image, 3 bytes per pixel, rows packed. */
struct rgb {
    unsigned char *px;
    int w, h;
};

/* Output size keeping the aspect ratio, longest edge exactly `edge` if it was longer. */
static void fit(int w, int h, int edge, int *ow, int *oh)
{
    *ow = w;
    *oh = h;
    if (edge <= 0 || (w <= edge && h <= edge))
        return;
    if (w >= h) {
        *ow = edge;
        *oh = (int)(((long long)h * edge + w / 2) / w);
    } else {
        *oh = edge;
        *ow = (int)(((long long)w * edge + h / 2) / h);
    }
    if (*ow < 1)
        *ow = 1;
    if (*oh < 1)
        *oh = 1;
}

/* Area-average weights for shrinking one axis from n to m (m <= n) samples. Output i covers
 * source interval [i*n/m, (i+1)*n/m); each source sample weighs by its overlap with it.
 * Weights are 16.16 fixed point and each output's weights sum to exactly 65536. */
struct axis {
    int taps;    /* room for weights per output sample */
    int *first;  /* [m] first source sample */
    int *count;  /* [m] weights used, all on source samples < n */
    int32_t *wt; /* [m * taps] */
};

static void axis_free(struct axis *a)
{
    free(a->first);
    free(a->count);
    free(a->wt);
}

static bool axis_make(int n, int m, struct axis *a)
{
    double scale = (double)n / m;
    a->taps = (int)scale + 2;
    a->first = malloc(sizeof *a->first * (size_t)m);
    a->count = malloc(sizeof *a->count * (size_t)m);
    a->wt = calloc((size_t)m * a->taps, sizeof *a->wt);
    if (!a->first || !a->count || !a->wt) {
        axis_free(a);
        return false;
    }
    for (int i = 0; i < m; i++) {
        double lo = i * scale, hi = (i + 1) * scale;
        if (hi > n)
            hi = n;
        int j0 = (int)lo;
        a->first[i] = j0;
        int32_t *w = a->wt + (size_t)i * a->taps;
        int32_t sum = 0, best = 0;
        int k = 0;
        for (; k < a->taps && j0 + k < n; k++) {
            double a0 = lo > j0 + k ? lo : j0 + k, a1 = hi < j0 + k + 1 ? hi : j0 + k + 1;
            if (a1 <= a0)
                break;
            w[k] = (int32_t)((a1 - a0) / scale * 65536 + 0.5);
            sum += w[k];
            if (w[k] > w[best])
                best = k;
        }
        a->count[i] = k;
        w[best] += 65536 - sum; /* rounding residue, so flat areas stay exactly flat */
    }
    return true;
}

/* Shrinks src to w x h (each no larger than the source's), horizontally then vertically. */
static bool resample(const struct rgb *src, int w, int h, struct rgb *dst)
{
    struct axis ax = {0}, ay = {0};
    unsigned char *tmp = malloc((size_t)w * src->h * 3);
    dst->px = malloc((size_t)w * h * 3);
    dst->w = w;
    dst->h = h;
    if (!tmp || !dst->px || !axis_make(src->w, w, &ax) || !axis_make(src->h, h, &ay)) {
        free(tmp);
        free(dst->px);
        dst->px = NULL;
        axis_free(&ax);
        return false;
    }
    for (int y = 0; y < src->h; y++) {
        const unsigned char *row = src->px + (size_t)y * src->w * 3;
        unsigned char *o = tmp + (size_t)y * w * 3;
        for (int x = 0; x < w; x++) {
            const int32_t *wt = ax.wt + (size_t)x * ax.taps;
            const unsigned char *s = row + (size_t)ax.first[x] * 3;
            int32_t r = 1 << 15, g = 1 << 15, b = 1 << 15; /* rounds to nearest */
            for (int k = 0; k < ax.count[x]; k++) {
                r += wt[k] * s[k * 3];
                g += wt[k] * s[k * 3 + 1];
                b += wt[k] * s[k * 3 + 2];
            }
            o[x * 3] = (unsigned char)(r >> 16);
            o[x * 3 + 1] = (unsigned char)(g >> 16);
            o[x * 3 + 2] = (unsigned char)(b >> 16);
        }
    }
    /* Vertically a row at a time, so the inner loop runs along memory and vectorises. */
    size_t stride = (size_t)w * 3;
    int32_t *acc = malloc(stride * sizeof *acc);
    if (!acc) {
        free(tmp);
        free(dst->px);
        dst->px = NULL;
        axis_free(&ax);
        axis_free(&ay);
        return false;
    }
    for (int y = 0; y < h; y++) {
        const int32_t *wt = ay.wt + (size_t)y * ay.taps;
        for (size_t x = 0; x < stride; x++)
            acc[x] = 1 << 15;
        for (int k = 0; k < ay.count[y]; k++) {
            const unsigned char *s = tmp + (size_t)(ay.first[y] + k) * stride;
            int32_t wk = wt[k];
            for (size_t x = 0; x < stride; x++)
                acc[x] += wk * s[x];
        }
        unsigned char *o = dst->px + (size_t)y * stride;
        for (size_t x = 0; x < stride; x++)
            o[x] = (unsigned char)(acc[x] >> 16);
    }
    free(acc);
    free(tmp);
    axis_free(&ax);
    axis_free(&ay);
    return true;
}

/* Turns src upright for EXIF orientation o (1..8) into dst. For each output pixel (x, y) the
 * source pixel is, with W x H the source size:
 *   1 (x, y)          2 mirrored: (W-1-x, y)     3 rotated 180: (W-1-x, H-1-y)
 *   4 flipped: (x, H-1-y)                        5 transposed: (y, x)
 *   6 rotated 90 clockwise: (y, H-1-x)           7 transversed: (W-1-y, H-1-x)
 *   8 rotated 90 counter-clockwise: (W-1-y, x)
 * 5-8 swap width and height. */
static bool orient(const struct rgb *src, int o, struct rgb *dst)
{
    int W = src->w, H = src->h;
    bool swap = o >= 5;
    dst->w = swap ? H : W;
    dst->h = swap ? W : H;
    dst->px = malloc((size_t)W * H * 3);
    if (!dst->px)
        return false;
    for (int y = 0; y < dst->h; y++) {
        unsigned char *out = dst->px + (size_t)y * dst->w * 3;
        for (int x = 0; x < dst->w; x++) {
            int sx, sy;
            switch (o) {
            case 2:
                sx = W - 1 - x, sy = y;
                break;
            case 3:
                sx = W - 1 - x, sy = H - 1 - y;
                break;
            case 4:
                sx = x, sy = H - 1 - y;
                break;
            case 5:
                sx = y, sy = x;
                break;
            case 6:
                sx = y, sy = H - 1 - x;
                break;
            case 7:
                sx = W - 1 - y, sy = H - 1 - x;
                break;
            case 8:
                sx = W - 1 - y, sy = x;
                break;
            default:
                sx = x, sy = y;
                break;
            }
            memcpy(out + (size_t)x * 3, src->px + ((size_t)sy * W + sx) * 3, 3);
        }
    }
    return true;
}

static enum media_rc encode(const struct rgb *img, int quality, unsigned char **out,
                            size_t *out_len)
{
    tjhandle tj = tjInitCompress();
    if (!tj)
        return MEDIA_NOMEM;
    unsigned char *buf = NULL;
    unsigned long len = 0;
    int rc = tjCompress2(tj, img->px, img->w, 0, img->h, TJPF_RGB, &buf, &len, TJSAMP_420, quality,
                         TJFLAG_ACCURATEDCT);
    tjDestroy(tj);
    if (rc != 0) {
        tjFree(buf);
        return MEDIA_NOMEM; /* our own pixels always encode; failing means allocation */
    }
    *out = buf;
    *out_len = len;
    return MEDIA_OK;
}

/* The thumbnail: at most thumb_edge, lowering the quality stepwise to the floor, then the
 * size by a quarter, until it fits. At THUMB_MIN_EDGE any quality fits in 4096 bytes. */
static enum media_rc thumbnail(const struct rgb *img, const struct media_photo_opts *opt,
                               struct media_photo *out)
{
    int edge = opt->thumb_edge;
    int q = opt->quality < THUMB_FIRST_QUALITY ? opt->quality : THUMB_FIRST_QUALITY;
    for (;;) {
        int tw, th;
        fit(img->w, img->h, edge, &tw, &th);
        struct rgb t = *img;
        if (tw != img->w || th != img->h) {
            if (!resample(img, tw, th, &t))
                return MEDIA_NOMEM;
        }
        for (;;) {
            unsigned char *buf;
            size_t len;
            enum media_rc rc = encode(&t, q, &buf, &len);
            if (rc != MEDIA_OK) {
                if (t.px != img->px)
                    free(t.px);
                return rc;
            }
            if (len <= opt->thumb_max_bytes ||
                (q <= THUMB_QUALITY_FLOOR && edge <= THUMB_MIN_EDGE)) {
                if (t.px != img->px)
                    free(t.px);
                if (len > opt->thumb_max_bytes) { /* cannot happen with thumb_max_bytes >= 4096 */
                    tjFree(buf);
                    return MEDIA_TOO_LARGE;
                }
                out->thumb = buf;
                out->thumb_len = len;
                out->thumb_width = t.w;
                out->thumb_height = t.h;
                return MEDIA_OK;
            }
            tjFree(buf);
            if (q <= THUMB_QUALITY_FLOOR)
                break;
            q -= THUMB_QUALITY_STEP;
            if (q < THUMB_QUALITY_FLOOR)
                q = THUMB_QUALITY_FLOOR;
        }
        if (t.px != img->px)
            free(t.px);
        edge = edge * 3 / 4 > THUMB_MIN_EDGE ? edge * 3 / 4 : THUMB_MIN_EDGE;
    }
}

/* The smallest DCT scaling factor (1/8 .. 1) whose result still has its longest edge >= want,
 * so the resampler only ever shrinks and the decoder does most of the shrinking for free. */
static tjscalingfactor pick_scale(int w, int h, int want)
{
    tjscalingfactor best = {1, 1};
    int n = 0;
    tjscalingfactor *f = tjGetScalingFactors(&n);
    int longest = w > h ? w : h, best_edge = longest;
    for (int i = 0; f && i < n; i++) {
        if (f[i].num > f[i].denom)
            continue; /* never upscale */
        int e = TJSCALED(longest, f[i]);
        if (e >= want && e < best_edge) {
            best = f[i];
            best_edge = e;
        }
    }
    return best;
}

static bool opts_valid(const struct media_photo_opts *o)
{
    return o->max_edge >= 0 && o->quality >= 1 && o->quality <= 100 &&
           o->thumb_edge >= THUMB_MIN_EDGE && o->thumb_max_bytes >= 4096;
}

enum media_rc media_photo_process(const unsigned char *jpeg, size_t len,
                                  const struct media_photo_opts *opt, struct media_photo *out)
{
    memset(out, 0, sizeof *out);
    struct media_photo_opts def = media_photo_opts_default();
    if (!opt)
        opt = &def;
    if (!opts_valid(opt))
        return MEDIA_INVALID;
    if (len < 4 || jpeg[0] != 0xff || jpeg[1] != 0xd8 || jpeg[2] != 0xff)
        return MEDIA_NOT_JPEG;
    if (len > ULONG_MAX)
        return MEDIA_TOO_LARGE;

    struct media_exif exif;
    media_exif_from_jpeg(jpeg, len, &exif); /* broken EXIF only means no metadata */

    tjhandle tj = tjInitDecompress();
    if (!tj)
        return MEDIA_NOMEM;
    enum media_rc rc = MEDIA_OK;
    struct rgb dec = {0}, small = {0}, up = {0};
    int w = 0, h = 0, subsamp, colorspace;
    if ((tjDecompressHeader3(tj, jpeg, (unsigned long)len, &w, &h, &subsamp, &colorspace) != 0 &&
         !media_tj_harmless_warning(tj)) ||
        w <= 0 || h <= 0) {
        rc = MEDIA_CORRUPT;
        goto done;
    }
    /* Checked before anything is allocated: a 100-byte file can claim 65535 x 65535. */
    if (w > MEDIA_MAX_EDGE || h > MEDIA_MAX_EDGE || (long long)w * h > MEDIA_MAX_PIXELS) {
        rc = MEDIA_TOO_LARGE;
        goto done;
    }
    if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) {
        rc = MEDIA_UNSUPPORTED;
        goto done;
    }
    int tw, th;
    fit(w, h, opt->max_edge, &tw, &th);
    tjscalingfactor sf = pick_scale(w, h, tw > th ? tw : th);
    dec.w = TJSCALED(w, sf);
    dec.h = TJSCALED(h, sf);
    dec.px = malloc((size_t)dec.w * dec.h * 3);
    if (!dec.px) {
        rc = MEDIA_NOMEM;
        goto done;
    }
    /* A truncated or damaged stream is an error, not a half-grey photo; but phones write
     * files with stray bytes between segments, which libjpeg only warns about and which do not
     * touch the pixels, and refusing those would refuse real photos.
     * LIMITSCANS: refuses progressive files with absurd scan counts (a CPU-time attack). */
    if (tjDecompress2(tj, jpeg, (unsigned long)len, dec.px, dec.w, 0, dec.h, TJPF_RGB,
                      TJFLAG_LIMITSCANS) != 0 &&
        !media_tj_harmless_warning(tj)) {
        rc = MEDIA_CORRUPT;
        goto done;
    }
    /* tw x th were computed from the full size; DCT scaling may have rounded up a pixel. */
    if (tw > dec.w)
        tw = dec.w;
    if (th > dec.h)
        th = dec.h;
    if (tw != dec.w || th != dec.h) {
        if (!resample(&dec, tw, th, &small)) {
            rc = MEDIA_NOMEM;
            goto done;
        }
        free(dec.px);
        dec.px = NULL;
    } else {
        small = dec;
        dec.px = NULL;
    }
    if (exif.orientation != 1) {
        if (!orient(&small, exif.orientation, &up)) {
            rc = MEDIA_NOMEM;
            goto done;
        }
        free(small.px);
        small.px = NULL;
    } else {
        up = small;
        small.px = NULL;
    }
    rc = encode(&up, opt->quality, &out->image, &out->image_len);
    if (rc != MEDIA_OK)
        goto done;
    out->width = up.w;
    out->height = up.h;
    rc = thumbnail(&up, opt, out);
    if (rc != MEDIA_OK)
        goto done;
    out->has_captured_at = exif.has_captured_at;
    memcpy(out->captured_at, exif.captured_at, sizeof out->captured_at);
    out->has_gps = exif.has_gps;
    out->lat = exif.lat;
    out->lon = exif.lon;
done:
    tjDestroy(tj);
    free(dec.px);
    free(small.px);
    free(up.px);
    if (rc != MEDIA_OK)
        media_photo_free(out);
    return rc;
}
