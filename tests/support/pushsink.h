/* pushsink.h - a Web Push service stand-in for tests: an HTTP server on 127.0.0.1 that takes
 * the posts kizunad makes to subscription endpoints (or to the outgoing webhook's URL), answers
 * each with the status the test set for its path, and keeps them for the test to check. And the
 * browser's half, written from RFC 8291 and RFC 8292 independently of the server's code: a
 * subscription's keys, the decryption of what arrives, and the check of its VAPID signature. */
#ifndef KIZUNA_TEST_PUSHSINK_H
#define KIZUNA_TEST_PUSHSINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct push_post {
    char path[256];
    char authorization[1600], ttl[32], urgency[32], encoding[64];
    char head[4096]; /* the request line and headers as received */
    uint8_t body[8192];
    size_t len;
    long long at_ms; /* monotonic, when it arrived */
};

struct pushsink;
/* Starts the stand-in on an ephemeral loopback port (its thread ends with pushsink_stop). */
struct pushsink *pushsink_start(void);
int pushsink_port(const struct pushsink *p);
/* Answers posts to path with status (default 201); first_only: only the next one, then 201. */
void pushsink_status(struct pushsink *p, const char *path, int status, bool first_only);
/* Every answer waits ms first (a slow push service). */
void pushsink_delay(struct pushsink *p, int ms);
/* Waits for the n-th post (0-based, counting all paths) to path; false after timeout_ms. The
 * copy goes to out. */
bool pushsink_wait(struct pushsink *p, const char *path, int n, int timeout_ms,
                   struct push_post *out);
/* on: answers keep the connection open (HTTP/1.1 keep-alive) and the next request on it is
 * served, until the client closes it or another client connects; off (the default): every
 * answer says Connection: close. */
void pushsink_keepalive(struct pushsink *p, bool on);
/* Connections accepted so far. */
int pushsink_connections(struct pushsink *p);
/* Posts received for path so far (NULL: all paths). */
int pushsink_count(struct pushsink *p, const char *path);
/* A header's value in post (case-insensitive name, without the colon); false if absent. */
bool push_post_header(const struct push_post *post, const char *name, char *out, size_t n);
void pushsink_stop(struct pushsink *p);

/* A browser's subscription keys: p256dh (65 bytes) with its private key, and auth. */
struct push_keys {
    uint8_t priv[32], pub[65], auth[16];
    char pub64[100], auth64[40];
};
void push_keys_new(struct push_keys *k);
/* Decrypts an aes128gcm body for k into out (NUL-terminated); false if it does not decrypt. */
bool push_decrypt(const struct push_keys *k, const uint8_t *body, size_t len, char *out,
                  size_t outlen);
/* Checks "vapid t=JWT, k=KEY": the signature verifies with KEY, KEY is want_key (base64url),
 * aud is want_aud, exp within 24 hours from now and sub is want_sub. false with why in err. */
bool push_vapid_check(const char *authorization, const char *want_key, const char *want_aud,
                      const char *want_sub, char *err, size_t errlen);

#endif
