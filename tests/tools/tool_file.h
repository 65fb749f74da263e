/* tool_file.h - reading a whole file into memory, for the command-line tools of tests/tools/
 * (kz-photo, kz-e2ee-check), each one program of its own: header-only, so a tool includes it
 * without another library to link. */
#ifndef KIZUNA_TOOL_FILE_H
#define KIZUNA_TOOL_FILE_H

#include <stdio.h>
#include <stdlib.h>

/* The whole file at path (the caller frees it) and its length in *len; NULL if it cannot be
 * opened (errno from fopen) or memory ran out (errno ENOMEM). Reads until end of file, so it
 * takes pipes too; the buffer starts at 1 MiB and doubles. */
static inline unsigned char *tool_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n == cap) {
            cap = cap ? cap * 2 : 1 << 20;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    fclose(f);
    *len = n;
    return buf;
}

#endif
