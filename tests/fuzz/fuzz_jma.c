/* fuzz_jma.c - JMA's Atom feeds and telegrams (server/jma_parse.c), which kizunad fetches from
 * the network. The whole input goes to both parsers.
 * Checks besides memory errors: what is returned stays within the limits and every string
 * ends within its field. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jma_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *msg)
{
    fprintf(stderr, "fuzz_jma: %s\n", msg);
    abort();
}

#define ENDS(field) (memchr((field), '\0', sizeof(field)) != NULL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct jma_limits lim = {.max_bytes = 1 << 16, .max_depth = 24, .max_items = 64};
    struct jma_feed f;
    if (jma_feed_parse((const char *)data, size, &lim, &f) == JMA_OK) {
        if (f.n > 64)
            fail("more entries than max_items");
        for (size_t i = 0; i < f.n; i++)
            if (!ENDS(f.entries[i].id) || !ENDS(f.entries[i].href) || !ENDS(f.entries[i].title))
                fail("an entry's field is not terminated");
    } else if (f.n || f.entries)
        fail("a failed feed left entries");
    jma_feed_free(&f);

    struct jma_telegram t;
    if (jma_telegram_parse((const char *)data, size, &lim, &t) == JMA_OK) {
        if (t.n_places > 64)
            fail("more places than max_items");
        if (!ENDS(t.event_id) || !ENDS(t.serial) || !ENDS(t.epicentre))
            fail("a field is not terminated");
        for (size_t i = 0; i < t.n_places; i++) {
            if (!ENDS(t.places[i].code) || !ENDS(t.places[i].name))
                fail("a place's field is not terminated");
            if (t.places[i].intensity < 0 || t.places[i].intensity > JMA_INT_7)
                fail("an intensity out of range");
        }
    } else if (t.n_places || t.places)
        fail("a failed telegram left places");
    jma_telegram_free(&t);
    return 0;
}
