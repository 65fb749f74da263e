/* kz-e2ee-check - media/'s end-to-end formats from the command line, so that a test of another
 * implementation (the browser's, tests/web/crypto_vectors.test.mjs) can have the C code open
 * and verify what that implementation made, and make fresh ones for it to open. Bytes travel as
 * lowercase hex arguments, blobs as files. Exit 0 and the result on stdout; exit 1 and
 * media_rc_name() (or "bad_signature") on stdout when media/ refuses; exit 2 on misuse.
 *
 *   devkey USER ID SIGN_PK BOX_PK SIG            verifies a device self-signature
 *   policy LOGIN HISTORY SIGN_PK SIG             verifies a history policy signature
 *   devlist ENC BY SIG [PREV_ENC]                decodes a list, checks it follows PREV_ENC (or
 *                                                stands as a first root): "login seq n hash ids..."
 *   envelope-open ENV SENDER_BOX_PK RECIP_BOX_SK the plaintext
 *   envelope-seal PLAIN SENDER_BOX_SK RECIP_BOX_PK
 *   photo-open ROOM EPOCH DEVICE SEQ TS KEY SEALED   the message
 *   photo-seal ROOM EPOCH DEVICE SEQ TS KEY MSG
 *   blob-open FILE KEY HASH PLAIN_LEN|-          "LEN BLAKE2B-256(plaintext)" (the plaintext
 *                                                itself with -o OUT after the arguments)
 *   blob-seal IN OUT                             "KEY HASH BLOB_LEN PADDED_LEN"
 *   padded N...                                  media_blob_padded_len of each N, one a line */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "media.h"
#include "tool_file.h"

static int usage(void)
{
    fprintf(stderr, "usage: kz-e2ee-check devkey|policy|devlist|envelope-open|envelope-seal|"
                    "photo-open|photo-seal|blob-open|blob-seal|padded ARGS (see the source)\n");
    return 2;
}

/* Hex to a malloc'd buffer (+1 byte so that empty input is not NULL); NULL if not hex. */
static unsigned char *unhex(const char *s, size_t *len)
{
    size_t n = strlen(s);
    unsigned char *b = malloc(n / 2 + 1);
    size_t got;
    if (!b || n % 2 || sodium_hex2bin(b, n / 2 + 1, s, n, NULL, &got, NULL) != 0 || got != n / 2) {
        free(b);
        return NULL;
    }
    *len = got;
    return b;
}

static bool unhex_fixed(const char *s, unsigned char *out, size_t want)
{
    size_t n;
    unsigned char *b = unhex(s, &n);
    bool ok = b && n == want;
    if (ok)
        memcpy(out, b, want);
    free(b);
    return ok;
}

static void print_hex(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", b[i]);
}

static int refused(enum media_rc rc)
{
    printf("%s\n", media_rc_name(rc));
    return 1;
}

static bool parse_u64(const char *s, unsigned long long *out)
{
    char *end;
    errno = 0;
    *out = strtoull(s, &end, 10);
    return *s && *s != '-' && !*end && errno == 0;
}

static bool parse_i64(const char *s, long long *out)
{
    char *end;
    errno = 0;
    *out = strtoll(s, &end, 10);
    return *s && !*end && errno == 0;
}

static int cmd_devkey(char **a)
{
    uint8_t pk[32], bpk[32], sig[64];
    if (!unhex_fixed(a[2], pk, 32) || !unhex_fixed(a[3], bpk, 32) || !unhex_fixed(a[4], sig, 64))
        return usage();
    if (!media_devkey_verify(a[0], a[1], pk, bpk, sig)) {
        printf("bad_signature\n");
        return 1;
    }
    printf("ok\n");
    return 0;
}

static int cmd_policy(char **a)
{
    uint8_t pk[32], sig[64];
    if (!unhex_fixed(a[2], pk, 32) || !unhex_fixed(a[3], sig, 64))
        return usage();
    if (!media_policy_verify(a[0], a[1], pk, sig)) {
        printf("bad_signature\n");
        return 1;
    }
    printf("ok\n");
    return 0;
}

static int cmd_devlist(int n, char **a)
{
    static struct media_devlist next, prev;
    uint8_t sig[64];
    size_t len, plen;
    unsigned char *enc = unhex(a[0], &len), *penc = n > 3 ? unhex(a[3], &plen) : NULL;
    int ret = 2;
    if (!enc || !unhex_fixed(a[2], sig, 64) || (n > 3 && !penc))
        goto out;
    enum media_rc rc = media_devlist_decode(enc, len, &next);
    if (rc == MEDIA_OK && penc)
        rc = media_devlist_decode(penc, plen, &prev);
    if (rc == MEDIA_OK)
        rc = media_devlist_follows(penc ? &prev : NULL, &next, enc, len, a[1], sig);
    if (rc != MEDIA_OK) {
        ret = refused(rc);
        goto out;
    }
    printf("%s %llu %zu ", next.login, (unsigned long long)next.seq, next.n);
    print_hex(next.hash, 32);
    for (size_t i = 0; i < next.n; i++)
        printf(" %s", next.dev[i].id);
    printf("\n");
    ret = 0;
out:
    free(enc);
    free(penc);
    return ret == 2 ? usage() : ret;
}

static int cmd_envelope(bool seal, char **a)
{
    uint8_t pk[32], sk[32];
    size_t len;
    unsigned char *in = unhex(a[0], &len);
    if (!in || !unhex_fixed(a[seal ? 2 : 1], pk, 32) || !unhex_fixed(a[seal ? 1 : 2], sk, 32)) {
        free(in);
        return usage();
    }
    size_t out_len = seal ? len + MEDIA_ENVELOPE_OVERHEAD
                          : (len >= MEDIA_ENVELOPE_OVERHEAD ? len - MEDIA_ENVELOPE_OVERHEAD : 0);
    unsigned char *out = malloc(out_len + 1);
    enum media_rc rc = !out   ? MEDIA_NOMEM
                       : seal ? media_envelope_seal(in, len, sk, pk, out)
                              : media_envelope_open(in, len, pk, sk, out);
    int ret = rc == MEDIA_OK ? 0 : refused(rc);
    if (rc == MEDIA_OK) {
        print_hex(out, out_len);
        printf("\n");
    }
    free(in);
    free(out);
    return ret;
}

static int cmd_photo(bool seal, char **a)
{
    unsigned long long seq;
    long long ts;
    uint8_t key[32];
    size_t len;
    unsigned char *in = unhex(a[6], &len);
    if (!in || !parse_u64(a[3], &seq) || !parse_i64(a[4], &ts) || !unhex_fixed(a[5], key, 32)) {
        free(in);
        return usage();
    }
    struct media_photo_ad ad = {.room = a[0], .epoch = a[1], .device = a[2], .seq = seq, .ts = ts};
    enum media_rc rc;
    int ret = 0;
    if (seal) {
        unsigned char *ct;
        size_t ct_len;
        rc = media_photo_seal(&ad, in, len, key, &ct, &ct_len);
        if (rc == MEDIA_OK) {
            print_hex(ct, ct_len);
            printf("\n");
            free(ct);
        }
    } else {
        char *msg;
        size_t msg_len;
        rc = media_photo_open(&ad, in, len, key, &msg, &msg_len);
        if (rc == MEDIA_OK) {
            print_hex((const unsigned char *)msg, msg_len);
            printf("\n");
            sodium_memzero(msg, msg_len);
            free(msg);
        }
    }
    if (rc != MEDIA_OK)
        ret = refused(rc);
    free(in);
    return ret;
}

struct sink {
    crypto_generichash_state h;
    FILE *out;
};

static int sink_write(void *ctx, const void *buf, size_t len)
{
    struct sink *s = ctx;
    crypto_generichash_update(&s->h, buf, len);
    return s->out && fwrite(buf, 1, len, s->out) != len ? -1 : 0;
}

static int cmd_blob_open(int n, char **a)
{
    uint8_t key[32], hash[32];
    unsigned long long plain_len = MEDIA_BLOB_LEN_UNKNOWN;
    if (!unhex_fixed(a[1], key, 32) || !unhex_fixed(a[2], hash, 32) ||
        (strcmp(a[3], "-") != 0 && !parse_u64(a[3], &plain_len)))
        return usage();
    FILE *in = fopen(a[0], "rb");
    if (!in)
        return usage();
    struct sink s = {.out = NULL};
    if (n > 5 && strcmp(a[4], "-o") == 0 && !(s.out = fopen(a[5], "wb"))) {
        fclose(in);
        return usage();
    }
    crypto_generichash_init(&s.h, NULL, 0, 32);
    uint64_t written;
    enum media_rc rc =
        media_blob_decrypt(media_read_file, in, sink_write, &s, key, hash, plain_len, &written);
    fclose(in);
    if (s.out && fclose(s.out) != 0 && rc == MEDIA_OK)
        rc = MEDIA_IO;
    if (rc != MEDIA_OK)
        return refused(rc);
    uint8_t h[32];
    crypto_generichash_final(&s.h, h, sizeof h);
    printf("%llu ", (unsigned long long)written);
    print_hex(h, 32);
    printf("\n");
    return 0;
}

static int cmd_blob_seal(char **a)
{
    size_t len;
    unsigned char *buf = tool_read_file(a[0], &len);
    if (!buf)
        return errno == ENOMEM ? refused(MEDIA_NOMEM) : usage();
    FILE *out = fopen(a[1], "wb");
    struct media_blob_info info;
    enum media_rc rc = out ? media_blob_encrypt(buf, len, media_write_file, out, &info) : MEDIA_IO;
    if (out && fclose(out) != 0 && rc == MEDIA_OK)
        rc = MEDIA_IO;
    free(buf);
    if (rc != MEDIA_OK)
        return refused(rc);
    print_hex(info.key, 32);
    printf(" ");
    print_hex(info.hash, 32);
    printf(" %llu %llu\n", (unsigned long long)info.blob_len, (unsigned long long)info.padded_len);
    sodium_memzero(&info, sizeof info);
    return 0;
}

static int cmd_padded(int n, char **a)
{
    for (int i = 0; i < n; i++) {
        unsigned long long v;
        if (!parse_u64(a[i], &v))
            return usage();
        printf("%llu\n", (unsigned long long)media_blob_padded_len(v));
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || sodium_init() < 0)
        return usage();
    const char *c = argv[1];
    char **a = argv + 2;
    int n = argc - 2;
    if (strcmp(c, "devkey") == 0 && n == 5)
        return cmd_devkey(a);
    if (strcmp(c, "policy") == 0 && n == 4)
        return cmd_policy(a);
    if (strcmp(c, "devlist") == 0 && (n == 3 || n == 4))
        return cmd_devlist(n, a);
    if (strcmp(c, "envelope-open") == 0 && n == 3)
        return cmd_envelope(false, a);
    if (strcmp(c, "envelope-seal") == 0 && n == 3)
        return cmd_envelope(true, a);
    if (strcmp(c, "photo-open") == 0 && n == 7)
        return cmd_photo(false, a);
    if (strcmp(c, "photo-seal") == 0 && n == 7)
        return cmd_photo(true, a);
    if (strcmp(c, "blob-open") == 0 && (n == 4 || n == 6))
        return cmd_blob_open(n, a);
    if (strcmp(c, "blob-seal") == 0 && n == 2)
        return cmd_blob_seal(a);
    if (strcmp(c, "padded") == 0)
        return cmd_padded(n, a);
    return usage();
}
