/* idmap.h - an open-addressing hash map from nonzero 64-bit ids to pointers. The transport
 * finds connections by id and a user's connections by user id with it. */
#ifndef KIZUNA_IDMAP_H
#define KIZUNA_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap {
    uint64_t *keys; /* 0 = empty, UINT64_MAX = deleted */
    void **vals;
    size_t cap, used, tombs;
};

/* Stores val under key (replacing any value); -1 if out of memory. key must be nonzero. */
int idmap_put(struct idmap *m, uint64_t key, void *val);
/* The value under key, or NULL. */
void *idmap_get(const struct idmap *m, uint64_t key);
void idmap_del(struct idmap *m, uint64_t key);
/* Frees the table (not the values). */
void idmap_free(struct idmap *m);

#endif
