/* kz-mkjpeg - writes a synthetic photo for manual and integration tests:
 *   kz-mkjpeg OUT.jpg [--width W] [--height H] [--orientation N] [--gps LAT,LON]
 *             [--time "YYYY:MM:DD HH:MM:SS"] [--canary TEXT] [--big-endian] [--quality Q]
 *             [--detail]
 * The pixels are four quadrants (red, green / blue, white as stored), so a viewer shows at a
 * glance whether the orientation was applied. --time sets DateTimeOriginal and DateTime;
 * --canary goes into the EXIF UserComment and MakerNote, an XMP APP1, an APP2 and a COM
 * segment; --detail adds texture so the file is about as large as a camera's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exif_build.h"

static int usage(void)
{
    fprintf(stderr, "usage: kz-mkjpeg OUT.jpg [--width W] [--height H] [--orientation N] "
                    "[--gps LAT,LON] [--time \"YYYY:MM:DD HH:MM:SS\"] [--canary TEXT] "
                    "[--big-endian] [--quality Q] [--detail]\n");
    return 2;
}

static bool int_arg(const char *s, int lo, int hi, int *v)
{
    char *end;
    long n = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || n < lo || n > hi)
        return false;
    *v = (int)n;
    return true;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-')
        return usage();
    const char *path = argv[1];
    int w = 640, h = 480, quality = 90;
    bool detail = false;
    struct exif_spec s = {0};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--big-endian") == 0) {
            s.big_endian = true;
            continue;
        }
        if (strcmp(a, "--detail") == 0) {
            detail = true;
            continue;
        }
        if (!v)
            return usage();
        i++;
        if (strcmp(a, "--width") == 0) {
            if (!int_arg(v, 1, 16384, &w))
                return usage();
        } else if (strcmp(a, "--height") == 0) {
            if (!int_arg(v, 1, 16384, &h))
                return usage();
        } else if (strcmp(a, "--quality") == 0) {
            if (!int_arg(v, 1, 100, &quality))
                return usage();
        } else if (strcmp(a, "--orientation") == 0) {
            if (!int_arg(v, 1, 8, &s.orientation))
                return usage();
        } else if (strcmp(a, "--gps") == 0) {
            if (sscanf(v, "%lf,%lf", &s.lat, &s.lon) != 2 || s.lat < -90 || s.lat > 90 ||
                s.lon < -180 || s.lon > 180)
                return usage();
            s.has_gps = true;
        } else if (strcmp(a, "--time") == 0) {
            if (strlen(v) != 19)
                return usage();
            s.datetime = s.datetime_original = v;
        } else if (strcmp(a, "--canary") == 0) {
            s.canary = v;
        } else {
            return usage();
        }
    }
    size_t len;
    unsigned char *jpeg = exb_jpeg(w, h, detail, quality, &s, &len);
    if (!jpeg) {
        fprintf(stderr, "kz-mkjpeg: cannot make the image (canary too long?)\n");
        return 1;
    }
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(jpeg, 1, len, f) == len;
    if (f && fclose(f) != 0)
        ok = false;
    free(jpeg);
    if (!ok) {
        perror(path);
        return 1;
    }
    return 0;
}
