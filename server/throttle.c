/* throttle.c - failed-login counting per account and per client address, in memory. A
 * locked-out login is refused before any password hashing, so a guessing storm costs the
 * server nothing but a table lookup. The table is bounded: past login_fail_tracked_max keys (an
 * account's and an address's per failure) it starts afresh, which at worst forgives some
 * attackers early and never grows the server without limit. */
#include "core.h"
#include "idmap.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct fail {
    int count;
    int64_t first_ms;
    int64_t locked_until;
};

static struct idmap fails;

/* 64 bits of BLAKE2b; a collision merely shares a counter. */
static uint64_t key_of(const char *kind, const char *value)
{
    uint8_t h[8];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    crypto_generichash_update(&st, (const unsigned char *)kind, strlen(kind) + 1);
    crypto_generichash_update(&st, (const unsigned char *)value, strlen(value));
    crypto_generichash_final(&st, h, sizeof h);
    uint64_t k;
    memcpy(&k, h, sizeof k);
    return k ? k : 1;
}

static void forget_all(void)
{
    for (size_t i = 0; i < fails.cap; i++)
        if (fails.keys[i] && fails.keys[i] != UINT64_MAX)
            free(fails.vals[i]);
    idmap_free(&fails);
}

static int64_t wait_for(uint64_t key, int64_t now)
{
    struct fail *f = idmap_get(&fails, key);
    return f && f->locked_until > now ? (f->locked_until - now + 999) / 1000 : 0;
}

int64_t srv_throttle_wait(struct srv *s, const char *login, const char *address)
{
    (void)s;
    int64_t now = kz_now_ms(), a = wait_for(key_of("login", login), now);
    int64_t b = wait_for(key_of("addr", address), now);
    return a > b ? a : b;
}

static bool count(uint64_t key, long long max, const struct kz_config *cfg, int64_t now)
{
    if ((long long)fails.used >= cfg->login_fail_tracked_max)
        forget_all();
    struct fail *f = idmap_get(&fails, key);
    if (!f) {
        if (!(f = calloc(1, sizeof *f)) || idmap_put(&fails, key, f) != 0) {
            free(f);
            return false;
        }
    }
    if (now - f->first_ms > cfg->login_fail_window_s * 1000) {
        f->count = 0;
        f->first_ms = now;
    }
    if (++f->count < max)
        return false;
    bool newly = f->locked_until <= now;
    f->locked_until = now + cfg->login_lockout_s * 1000;
    return newly;
}

bool srv_throttle_failed(struct srv *s, const char *login, const char *address)
{
    int64_t now = kz_now_ms();
    bool a = count(key_of("login", login), s->cfg->login_fail_max, s->cfg, now);
    bool b = count(key_of("addr", address), s->cfg->login_fail_max_per_address, s->cfg, now);
    return a || b;
}

void srv_throttle_succeeded(struct srv *s, const char *login)
{
    (void)s;
    uint64_t key = key_of("login", login);
    struct fail *f = idmap_get(&fails, key);
    if (f) {
        idmap_del(&fails, key);
        free(f);
    }
}

void srv_throttle_free(void)
{
    forget_all();
}
