/* idmap.c - see idmap.h. Linear probing with tombstones; grows at half full. */
#include "idmap.h"

#include <stdlib.h>

#define EMPTY 0
#define GONE  UINT64_MAX

static size_t slot_of(uint64_t key, size_t cap)
{
    return (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 17) & (cap - 1);
}

static size_t find(const struct idmap *m, uint64_t key)
{
    if (!m->cap)
        return SIZE_MAX;
    for (size_t j = slot_of(key, m->cap);; j = (j + 1) & (m->cap - 1)) {
        if (m->keys[j] == EMPTY)
            return SIZE_MAX;
        if (m->keys[j] == key)
            return j;
    }
}

static int grow(struct idmap *m)
{
    /* Big enough for the live entries; never smaller than now, so that churn (connections
     * coming and going) rebuilds in place and clears tombstones instead of growing. */
    size_t cap = 64;
    while ((m->used + 1) * 2 > cap)
        cap *= 2;
    if (cap < m->cap)
        cap = m->cap;
    uint64_t *keys = calloc(cap, sizeof *keys);
    void **vals = calloc(cap, sizeof *vals);
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] == EMPTY || m->keys[i] == GONE)
            continue;
        size_t j = slot_of(m->keys[i], cap);
        while (keys[j] != EMPTY)
            j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    m->tombs = 0;
    return 0;
}

int idmap_put(struct idmap *m, uint64_t key, void *val)
{
    size_t j = find(m, key);
    if (j != SIZE_MAX) {
        m->vals[j] = val;
        return 0;
    }
    if ((m->used + m->tombs + 1) * 2 > m->cap && grow(m) != 0)
        return -1;
    j = slot_of(key, m->cap);
    while (m->keys[j] != EMPTY && m->keys[j] != GONE)
        j = (j + 1) & (m->cap - 1);
    if (m->keys[j] == GONE)
        m->tombs--;
    m->keys[j] = key;
    m->vals[j] = val;
    m->used++;
    return 0;
}

void *idmap_get(const struct idmap *m, uint64_t key)
{
    size_t j = find(m, key);
    return j == SIZE_MAX ? NULL : m->vals[j];
}

void idmap_del(struct idmap *m, uint64_t key)
{
    size_t j = find(m, key);
    if (j == SIZE_MAX)
        return;
    m->keys[j] = GONE;
    m->vals[j] = NULL;
    m->used--;
    m->tombs++;
}

void idmap_free(struct idmap *m)
{
    free(m->keys);
    free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
    m->cap = m->used = m->tombs = 0;
}
