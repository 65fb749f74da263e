/* kz-photo - runs the photo pipeline on a file and reports what came out and how long it took
 * (the figures in docs/performance.md):
 *   kz-photo IN.jpg [--out OUT.jpg] [--thumb THUMB.jpg] [--max-edge N] [--runs N]
 * Each run is media_photo_process on the file already in memory. Wall-clock and CPU time (of
 * this process) are both reported, medians last: on a shared machine CPU time is the steadier. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "media.h"
#include "tool_file.h"

static int usage(void)
{
    fprintf(stderr, "usage: kz-photo IN.jpg [--out OUT.jpg] [--thumb THUMB.jpg] "
                    "[--max-edge N] [--runs N]\n");
    return 2;
}

static bool spit(const char *path, const unsigned char *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(p, 1, n, f) == n;
    if (f && fclose(f) != 0)
        ok = false;
    return ok;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-')
        return usage();
    const char *out_path = NULL, *thumb_path = NULL;
    struct media_photo_opts opt = media_photo_opts_default();
    int runs = 1;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--out") == 0)
            out_path = argv[i + 1];
        else if (strcmp(argv[i], "--thumb") == 0)
            thumb_path = argv[i + 1];
        else if (strcmp(argv[i], "--max-edge") == 0)
            opt.max_edge = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--runs") == 0)
            runs = atoi(argv[i + 1]);
        else
            return usage();
    }
    if (argc % 2 != 0 || runs < 1 || runs > 1000)
        return usage();
    size_t len;
    unsigned char *in = tool_read_file(argv[1], &len);
    if (!in) {
        perror(argv[1]);
        return 1;
    }
    double *ms = malloc(sizeof *ms * (size_t)runs), *cpu = malloc(sizeof *cpu * (size_t)runs);
    struct media_photo p = {0};
    enum media_rc rc = MEDIA_OK;
    for (int r = 0; r < runs && rc == MEDIA_OK; r++) {
        media_photo_free(&p);
        struct timespec t0, t1, c0, c1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
        rc = media_photo_process(in, len, &opt, &p);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ms[r] = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
        cpu[r] = (c1.tv_sec - c0.tv_sec) * 1e3 + (c1.tv_nsec - c0.tv_nsec) / 1e6;
        printf("run %d: %.1f ms wall, %.1f ms cpu\n", r + 1, ms[r], cpu[r]);
    }
    if (rc != MEDIA_OK) {
        fprintf(stderr, "kz-photo: %s\n", media_rc_name(rc));
        free(ms);
        free(cpu);
        free(in);
        return 1;
    }
    qsort(ms, (size_t)runs, sizeof *ms, cmp_double);
    qsort(cpu, (size_t)runs, sizeof *cpu, cmp_double);
    printf("input %zu bytes; image %dx%d %zu bytes; thumb %dx%d %zu bytes\n", len, p.width,
           p.height, p.image_len, p.thumb_width, p.thumb_height, p.thumb_len);
    if (p.has_captured_at)
        printf("captured_at %s\n", p.captured_at);
    if (p.has_gps)
        printf("gps %.6f,%.6f\n", p.lat, p.lon);
    printf("median %.1f ms wall (min %.1f, max %.1f), %.1f ms cpu (min %.1f, max %.1f); %d runs\n",
           ms[runs / 2], ms[0], ms[runs - 1], cpu[runs / 2], cpu[0], cpu[runs - 1], runs);
    int status = 0;
    if ((out_path && !spit(out_path, p.image, p.image_len)) ||
        (thumb_path && !spit(thumb_path, p.thumb, p.thumb_len))) {
        perror("kz-photo: write");
        status = 1;
    }
    media_photo_free(&p);
    free(ms);
    free(cpu);
    free(in);
    return status;
}
