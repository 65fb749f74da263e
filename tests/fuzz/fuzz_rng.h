/* fuzz_rng.h - deterministic randomness for fuzz_blob and its seed generator: with it
 * installed (before sodium_init), the blob encryptor's "fresh random key" is always the same,
 * so seeds made by kz-fuzzseeds decrypt under the key fuzz_blob uses. Never for real use. */
#ifndef KIZUNA_FUZZ_RNG_H
#define KIZUNA_FUZZ_RNG_H

#include <sodium.h>
#include <string.h>

static uint64_t fz_rng_calls;

static void fz_rng_buf(void *buf, size_t n)
{
    unsigned char seed[randombytes_SEEDBYTES] = "kizuna fuzz: not random at all";
    memcpy(seed, &fz_rng_calls, sizeof fz_rng_calls);
    fz_rng_calls++;
    randombytes_buf_deterministic(buf, n, seed);
}

static uint32_t fz_rng_random(void)
{
    uint32_t v;
    fz_rng_buf(&v, sizeof v);
    return v;
}

static const char *fz_rng_name(void)
{
    return "kizuna-fuzz-deterministic";
}

static struct randombytes_implementation fz_rng = {
    .implementation_name = fz_rng_name, .random = fz_rng_random, .buf = fz_rng_buf};

/* Installs the generator and initialises libsodium; -1 on failure. */
static inline int fz_rng_install(void)
{
    if (randombytes_set_implementation(&fz_rng) != 0)
        return -1;
    return sodium_init() < 0 ? -1 : 0;
}

/* Starts the sequence again: the next key the blob encryptor draws is fz_rng_blob_key(). */
static inline void fz_rng_reset(void)
{
    fz_rng_calls = 0;
}

/* The key media_blob_encrypt draws first after fz_rng_reset(). */
static inline void fz_rng_blob_key(uint8_t key[32])
{
    fz_rng_reset();
    crypto_secretstream_xchacha20poly1305_keygen(key);
    fz_rng_reset();
}

/* Fixed key pairs and an AEAD key for the envelope and message formats. */
static inline void fz_fixed_keys(uint8_t sender_pk[32], uint8_t sender_sk[32],
                                 uint8_t recipient_pk[32], uint8_t recipient_sk[32],
                                 uint8_t aead_key[32])
{
    unsigned char seed[32];
    memset(seed, 's', sizeof seed);
    crypto_box_seed_keypair(sender_pk, sender_sk, seed);
    memset(seed, 'r', sizeof seed);
    crypto_box_seed_keypair(recipient_pk, recipient_sk, seed);
    memset(aead_key, 'k', 32);
}

#endif
