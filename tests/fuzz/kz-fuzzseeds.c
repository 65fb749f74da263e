/* kz-fuzzseeds - writes the seed files of fuzz_blob and fuzz_upload_headers that cannot be
 * typed: blobs, envelopes, sealed messages and photo messages under the fixed keys of
 * fuzz_rng.h, and
 * Upload-Metadata / Upload-Checksum values with real base64. The output is committed under
 * tests/fuzz/corpus/; rerun it only when a format changes:
 *   kz-fuzzseeds tests/fuzz/corpus */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <turbojpeg.h>

#include "fuzz_rng.h"
#include "media.h"

static const char *root;

static void put(const char *harness, const char *name, const void *a, size_t alen, const void *b,
                size_t blen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s", root, harness, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(a, 1, alen, f) != alen || (blen && fwrite(b, 1, blen, f) != blen) ||
        fclose(f) != 0) {
        fprintf(stderr, "kz-fuzzseeds: cannot write %s\n", path);
        exit(1);
    }
}

struct mem {
    unsigned char buf[1 << 16];
    size_t len;
};

static int mem_write(void *ctx, const void *p, size_t n)
{
    struct mem *m = ctx;
    if (n > sizeof m->buf - m->len)
        return -1;
    memcpy(m->buf + m->len, p, n);
    m->len += n;

    return 0;
}

static void be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

/* The blob format of media.h written by hand with a small chunk size, which the encryptor
 * never uses but every reader must accept: several chunks in a few hundred bytes. */
static void chunked_blob(const uint8_t key[32], size_t plain_len, uint32_t chunk, struct mem *m)
{
    uint64_t padded = media_blob_padded_len(plain_len);
    unsigned char *pt = calloc(1, padded);
    for (size_t i = 0; i < plain_len; i++)
        pt[i] = (unsigned char)('a' + i % 26);
    unsigned char hdr[MEDIA_BLOB_HEADER];
    memcpy(hdr, "KZB1", 4);
    hdr[4] = 1;
    be(hdr + 5, chunk, 4);
    be(hdr + 9, padded, 8);
    crypto_secretstream_xchacha20poly1305_state st;
    crypto_secretstream_xchacha20poly1305_init_push(&st, hdr + 17, key);
    mem_write(m, hdr, sizeof hdr);
    for (uint64_t pos = 0; pos < padded; pos += chunk) {
        size_t n = padded - pos < chunk ? (size_t)(padded - pos) : chunk;
        unsigned char ct[4096 + crypto_secretstream_xchacha20poly1305_ABYTES];
        unsigned char tag = pos + n == padded ? crypto_secretstream_xchacha20poly1305_TAG_FINAL
                                              : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
        crypto_secretstream_xchacha20poly1305_push(&st, ct, NULL, pt + pos, n,
                                                   pos == 0 ? hdr : NULL, pos == 0 ? 17 : 0, tag);
        mem_write(m, ct, n + crypto_secretstream_xchacha20poly1305_ABYTES);
    }
    free(pt);
}

/* JPEG variants kz-mkjpeg does not make: progressive, grayscale, other subsamplings. */
static void jpeg(const char *name, int w, int h, int subsamp, int flags)
{
    unsigned char px[64 * 64 * 3];
    for (int i = 0; i < w * h * 3; i++)
        px[i] = (unsigned char)(i * 37 % 251);
    tjhandle tj = tjInitCompress();
    unsigned char *out = NULL;
    unsigned long len = 0;
    if (!tj || tjCompress2(tj, px, w, 0, h, TJPF_RGB, &out, &len, subsamp, 40, flags) != 0) {
        fprintf(stderr, "kz-fuzzseeds: cannot make %s\n", name);
        exit(1);
    }
    put("fuzz_jpeg", name, out, len, NULL, 0);
    tjFree(out);
    tjDestroy(tj);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: kz-fuzzseeds CORPUS_DIR\n");
        return 2;
    }
    root = argv[1];
    if (fz_rng_install() != 0)
        return 1;
    uint8_t key[32], spk[32], ssk[32], rpk[32], rsk[32], akey[32];
    fz_rng_blob_key(key);
    fz_fixed_keys(spk, ssk, rpk, rsk, akey);

    /* Blobs: the encryptor's own output (one chunk), and hand-made ones of many chunks. */
    static struct mem m;
    struct media_blob_info info;
    const char text[] = "a photo, as far as the blob format cares";
    fz_rng_reset();
    if (media_blob_encrypt(text, sizeof text - 1, mem_write, &m, &info) != MEDIA_OK)
        return 1;
    put("fuzz_blob", "blob-one-chunk", m.buf, m.len, NULL, 0);
    unsigned char len8[9] = {'k'};
    be(len8 + 1, sizeof text - 1, 8);
    put("fuzz_blob", "known-length", len8, 9, m.buf, m.len);
    m.len = 0;
    chunked_blob(key, 1000, 256, &m);
    put("fuzz_blob", "blob-chunk-256", m.buf, m.len, NULL, 0);
    be(len8 + 1, 1000, 8);
    put("fuzz_blob", "known-length-chunked", len8, 9, m.buf, m.len);
    m.len = 0;
    chunked_blob(key, 541, 512, &m); /* the last chunk is short */
    put("fuzz_blob", "blob-short-last-chunk", m.buf, m.len, NULL, 0);
    put("fuzz_blob", "roundtrip", "r", 1, text, sizeof text - 1);
    put("fuzz_blob", "roundtrip-empty", "r", 1, NULL, 0);

    /* An envelope and a sealed message under the fixed keys. */
    const char inner[] = "{\"from\":\"a\",\"to\":\"b\",\"key\":\"...\"}";
    unsigned char env[1 + sizeof inner + MEDIA_ENVELOPE_OVERHEAD] = {'e'};
    if (media_envelope_seal(inner, sizeof inner - 1, ssk, rpk, env + 1) != MEDIA_OK)
        return 1;
    put("fuzz_blob", "envelope", env, sizeof env - 1, NULL, 0);
    const char ad[] = "room|1";
    unsigned char msg[2 + sizeof ad - 1 + sizeof inner - 1 + MEDIA_AEAD_OVERHEAD];
    msg[0] = 'a';
    msg[1] = sizeof ad - 1;
    memcpy(msg + 2, ad, sizeof ad - 1);
    if (media_aead_seal(inner, sizeof inner - 1, ad, sizeof ad - 1, akey,
                        msg + 2 + sizeof ad - 1) != MEDIA_OK)
        return 1;
    put("fuzz_blob", "aead", msg, sizeof msg, NULL, 0);
    /* A padded photo message sealed as fuzz_blob's 'p' opens it, and one to seal ('q'). */
    const struct media_photo_ad pad = {"r", "e", "d", 1, 0};
    unsigned char *photo;
    size_t photo_len;
    if (media_photo_seal(&pad, inner, sizeof inner - 1, akey, &photo, &photo_len) != MEDIA_OK)
        return 1;
    put("fuzz_blob", "photo", "p", 1, photo, photo_len);
    free(photo);
    put("fuzz_blob", "photo-roundtrip", "q", 1, inner, sizeof inner - 1);

    /* Signed device lists: a first one of two devices, and the version after it (issue 14). */
    static struct media_devlist dl;
    static unsigned char enc[MEDIA_DEVLIST_ENCODED_MAX];
    size_t enc_len;
    snprintf(dl.login, sizeof dl.login, "tanaka");
    dl.seq = 1;
    dl.n = 2;
    memcpy(dl.dev[0].sign_pk, spk, 32);
    memcpy(dl.dev[0].box_pk, rpk, 32);
    memcpy(dl.dev[1].sign_pk, rpk, 32);
    memcpy(dl.dev[1].box_pk, spk, 32);
    if (media_devlist_encode(&dl, enc, sizeof enc, &enc_len) != MEDIA_OK)
        return 1;
    put("fuzz_blob", "devlist-first", "d", 1, enc, enc_len);
    memcpy(dl.prev, dl.hash, 32);
    dl.seq = 2;
    dl.n = 1;
    if (media_devlist_encode(&dl, enc, sizeof enc, &enc_len) != MEDIA_OK)
        return 1;
    put("fuzz_blob", "devlist-next", "d", 1, enc, enc_len);

    /* Upload headers with a real blob id and checksum. */
    char hex[65], b64[128], line[256];
    sodium_bin2hex(hex, sizeof hex, info.hash, sizeof info.hash);
    sodium_bin2base64(b64, sizeof b64, (const unsigned char *)hex, 64,
                      sodium_base64_VARIANT_ORIGINAL);
    snprintf(line, sizeof line, "mblob %s", b64);
    put("fuzz_upload_headers", "metadata", line, strlen(line), NULL, 0);
    snprintf(line, sizeof line, "mfilename cGhvdG8uanBn,blob %s,type aW1hZ2UvanBlZw==", b64);
    put("fuzz_upload_headers", "metadata-several", line, strlen(line), NULL, 0);
    sodium_bin2base64(b64, sizeof b64, info.hash, sizeof info.hash, sodium_base64_VARIANT_ORIGINAL);
    snprintf(line, sizeof line, "cblake2b %s", b64);
    put("fuzz_upload_headers", "checksum", line, strlen(line), NULL, 0);

    jpeg("progressive.jpg", 20, 14, TJSAMP_420, TJFLAG_PROGRESSIVE);
    jpeg("gray.jpg", 9, 9, TJSAMP_GRAY, 0);
    jpeg("444-restart.jpg", 33, 5, TJSAMP_444, 0);
    jpeg("422-progressive.jpg", 5, 40, TJSAMP_422, TJFLAG_PROGRESSIVE);

    jpeg("progressive.jpg", 20, 14, TJSAMP_420, TJFLAG_PROGRESSIVE);
    jpeg("gray.jpg", 9, 9, TJSAMP_GRAY, 0);
    jpeg("444.jpg", 33, 5, TJSAMP_444, 0);
    jpeg("422-progressive.jpg", 5, 40, TJSAMP_422, TJFLAG_PROGRESSIVE);
    return 0;
}
