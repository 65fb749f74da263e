/* blob.c - the padded, chunked secretstream blob (E6 step 3-5); layout in media.h. */
#include "media.h"

#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define VERSION   1
#define ABYTES    crypto_secretstream_xchacha20poly1305_ABYTES
#define PREFIX    17 /* magic, version, chunk size, padded length: chunk 0's additional data */
#define MIN_CHUNK 256
#define MAX_CHUNK (4u << 20) /* a reader allocates two chunks: bound what a header can ask */

_Static_assert(PREFIX + crypto_secretstream_xchacha20poly1305_HEADERBYTES == MEDIA_BLOB_HEADER,
               "header layout");

int media_write_file(void *fp, const void *buf, size_t len)
{
    return fwrite(buf, 1, len, fp) == len ? 0 : -1;
}

long media_read_file(void *fp, void *buf, size_t len)
{
    size_t n = fread(buf, 1, len, fp);
    if (n < len && ferror((FILE *)fp))
        return -1;
    return (long)n;
}

uint64_t media_blob_padded_len(uint64_t n)
{
    if (n <= 541)
        return 541;
    /* Signal's formula in doubles; the loop corrects the rare case where rounding in log()
     * or pow() lands one bucket short of n. */
    double k = ceil(log((double)n) / log(1.05));
    uint64_t b = (uint64_t)floor(pow(1.05, k));
    while (b < n)
        b = (uint64_t)floor(pow(1.05, ++k));
    return b;
}

static void put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* ---- encryption ---- */

struct media_blob_enc {
    crypto_secretstream_xchacha20poly1305_state st;
    crypto_generichash_state hash;
    unsigned char key[MEDIA_BLOB_KEYBYTES];
    unsigned char prefix[PREFIX];
    media_write_fn wr;
    void *wctx;
    uint64_t plain_len, padded_len;
    uint64_t fed;    /* plaintext bytes taken, padding included */
    uint64_t pushed; /* plaintext bytes encrypted */
    uint64_t written;
    bool first; /* the next chunk is chunk 0 (carries the prefix as additional data) */
    size_t buf_len;
    unsigned char buf[MEDIA_BLOB_CHUNK];
    unsigned char ct[MEDIA_BLOB_CHUNK + ABYTES];
};

static enum media_rc enc_out(struct media_blob_enc *e, const void *p, size_t n)
{
    if (e->wr(e->wctx, p, n) != 0)
        return MEDIA_IO;
    crypto_generichash_update(&e->hash, p, n);
    e->written += n;
    return MEDIA_OK;
}

static enum media_rc enc_push(struct media_blob_enc *e, unsigned char tag)
{
    unsigned long long clen;
    crypto_secretstream_xchacha20poly1305_push(&e->st, e->ct, &clen, e->buf, e->buf_len,
                                               e->first ? e->prefix : NULL, e->first ? PREFIX : 0,
                                               tag);
    e->first = false;
    e->pushed += e->buf_len;
    e->buf_len = 0;
    return enc_out(e, e->ct, (size_t)clen);
}

/* Takes plaintext (data, or zeros when data is NULL). A full buffer is pushed only once more
 * bytes follow it, so the chunk that reaches padded_len stays for finish to tag FINAL. */
static enum media_rc enc_feed(struct media_blob_enc *e, const unsigned char *data, size_t len)
{
    while (len > 0) {
        if (e->buf_len == MEDIA_BLOB_CHUNK) {
            enum media_rc rc = enc_push(e, crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
            if (rc != MEDIA_OK)
                return rc;
        }
        size_t n = MEDIA_BLOB_CHUNK - e->buf_len;
        if (n > len)
            n = len;
        if (data) {
            memcpy(e->buf + e->buf_len, data, n);
            data += n;
        } else {
            memset(e->buf + e->buf_len, 0, n);
        }
        e->buf_len += n;
        e->fed += n;
        len -= n;
    }
    return MEDIA_OK;
}

void media_blob_enc_abort(struct media_blob_enc *e)
{
    if (e) {
        sodium_memzero(e, sizeof *e);
        free(e);
    }
}

enum media_rc media_blob_enc_begin(uint64_t plain_len, media_write_fn wr, void *wctx,
                                   struct media_blob_enc **out)
{
    *out = NULL;
    if (plain_len > MEDIA_BLOB_MAX)
        return MEDIA_TOO_LARGE;
    if (sodium_init() < 0)
        return MEDIA_NOMEM;
    struct media_blob_enc *e = calloc(1, sizeof *e);
    if (!e)
        return MEDIA_NOMEM;
    e->wr = wr;
    e->wctx = wctx;
    e->plain_len = plain_len;
    e->padded_len = media_blob_padded_len(plain_len);
    e->first = true;
    crypto_secretstream_xchacha20poly1305_keygen(e->key);
    crypto_generichash_init(&e->hash, NULL, 0, MEDIA_BLOB_HASHBYTES);
    memcpy(e->prefix, "KZB1", 4);
    e->prefix[4] = VERSION;
    put_be(e->prefix + 5, MEDIA_BLOB_CHUNK, 4);
    put_be(e->prefix + 9, e->padded_len, 8);
    unsigned char header[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
    crypto_secretstream_xchacha20poly1305_init_push(&e->st, header, e->key);
    enum media_rc rc = enc_out(e, e->prefix, PREFIX);
    if (rc == MEDIA_OK)
        rc = enc_out(e, header, sizeof header);
    if (rc != MEDIA_OK) {
        media_blob_enc_abort(e);
        return rc;
    }
    *out = e;
    return MEDIA_OK;
}

enum media_rc media_blob_enc_update(struct media_blob_enc *e, const void *data, size_t len)
{
    if (len > e->plain_len - e->fed)
        return MEDIA_INVALID;
    return enc_feed(e, data, len);
}

enum media_rc media_blob_enc_finish(struct media_blob_enc *e, struct media_blob_info *info)
{
    memset(info, 0, sizeof *info);
    enum media_rc rc = MEDIA_INVALID;
    if (e->fed != e->plain_len)
        goto out;
    rc = enc_feed(e, NULL, e->padded_len - e->plain_len); /* the padding */
    if (rc != MEDIA_OK)
        goto out;
    rc = enc_push(e, crypto_secretstream_xchacha20poly1305_TAG_FINAL);
    if (rc != MEDIA_OK)
        goto out;
    memcpy(info->key, e->key, sizeof info->key);
    crypto_generichash_final(&e->hash, info->hash, sizeof info->hash);
    info->blob_len = e->written;
    info->plain_len = e->plain_len;
    info->padded_len = e->padded_len;
out:
    media_blob_enc_abort(e);
    return rc;
}

enum media_rc media_blob_encrypt(const void *plain, size_t len, media_write_fn wr, void *wctx,
                                 struct media_blob_info *info)
{
    struct media_blob_enc *e;
    enum media_rc rc = media_blob_enc_begin(len, wr, wctx, &e);
    if (rc != MEDIA_OK)
        return rc;
    rc = media_blob_enc_update(e, plain, len);
    if (rc != MEDIA_OK) {
        media_blob_enc_abort(e);
        return rc;
    }
    return media_blob_enc_finish(e, info);
}

/* ---- decryption ---- */

struct dec {
    media_read_fn rd;
    void *rctx;
    crypto_generichash_state hash;
    bool io_error;
};

/* Reads up to len bytes, fewer only at the end of the input; hashes what it read. */
static size_t dec_read(struct dec *d, unsigned char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        long n = d->rd(d->rctx, buf + got, len - got);
        if (n < 0) {
            d->io_error = true;
            break;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    crypto_generichash_update(&d->hash, buf, got);
    return got;
}

/* Chunk i failed to authenticate under state st. If st opens one of the following chunks,
 * those chunks were moved (MEDIA_BLOB_REORDERED); otherwise the chunk is simply forged
 * (MEDIA_BLOB_TAMPERED). Runs only after a failure, reading the rest of the input. */
static enum media_rc classify_failure(struct dec *d,
                                      const crypto_secretstream_xchacha20poly1305_state *st,
                                      uint64_t i, uint64_t nchunks, size_t chunk,
                                      const unsigned char *ad, unsigned char *ct, unsigned char *pt)
{
    for (uint64_t j = i + 1; j < nchunks; j++) {
        size_t n = dec_read(d, ct, chunk + ABYTES);
        if (n <= ABYTES)
            break;
        crypto_secretstream_xchacha20poly1305_state trial = *st;
        unsigned char tag;
        int ok = crypto_secretstream_xchacha20poly1305_pull(&trial, pt, NULL, &tag, ct, n, ad,
                                                            ad ? PREFIX : 0);
        sodium_memzero(&trial, sizeof trial);
        if (ok == 0)
            return MEDIA_BLOB_REORDERED;
    }
    return MEDIA_BLOB_TAMPERED;
}

static bool all_zero(const unsigned char *p, size_t n)
{
    unsigned char acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

enum media_rc media_blob_decrypt(media_read_fn rd, void *rctx, media_write_fn wr, void *wctx,
                                 const uint8_t key[MEDIA_BLOB_KEYBYTES], const uint8_t *expect_hash,
                                 uint64_t plain_len, uint64_t *written)
{
    if (written)
        *written = 0;
    if (sodium_init() < 0)
        return MEDIA_NOMEM;
    struct dec d = {.rd = rd, .rctx = rctx};
    crypto_generichash_init(&d.hash, NULL, 0, MEDIA_BLOB_HASHBYTES);

    unsigned char hdr[MEDIA_BLOB_HEADER];
    size_t got = dec_read(&d, hdr, sizeof hdr);
    if (d.io_error)
        return MEDIA_IO;
    /* Judge the magic on whatever arrived, so junk is "format" and a cut header "truncated". */
    if (memcmp(hdr, "KZB1", got < 4 ? got : 4) != 0 || (got > 4 && hdr[4] != VERSION))
        return MEDIA_BLOB_FORMAT;
    if (got < sizeof hdr)
        return MEDIA_BLOB_TRUNCATED;
    uint64_t chunk = get_be(hdr + 5, 4), padded = get_be(hdr + 9, 8);
    if (chunk < MIN_CHUNK || chunk > MAX_CHUNK || padded == 0 || padded > 2 * MEDIA_BLOB_MAX)
        return MEDIA_BLOB_FORMAT;
    uint64_t nchunks = (padded + chunk - 1) / chunk;
    uint64_t out_len = plain_len == MEDIA_BLOB_LEN_UNKNOWN ? padded : plain_len;

    crypto_secretstream_xchacha20poly1305_state st;
    if (crypto_secretstream_xchacha20poly1305_init_pull(&st, hdr + PREFIX, key) != 0)
        return MEDIA_BLOB_FORMAT;
    unsigned char *ct = malloc(chunk + ABYTES), *pt = malloc(chunk);
    enum media_rc rc = MEDIA_OK;
    uint64_t pos = 0, out = 0; /* plaintext offset; bytes written */
    if (!ct || !pt) {
        rc = MEDIA_NOMEM;
        goto done;
    }
    for (uint64_t i = 0; i < nchunks; i++) {
        bool last = i == nchunks - 1;
        size_t want = last ? (size_t)(padded - pos) + ABYTES : chunk + ABYTES;
        size_t n = dec_read(&d, ct, want);
        if (d.io_error) {
            rc = MEDIA_IO;
            goto done;
        }
        if (n < want) {
            rc = n == 0 ? MEDIA_BLOB_NO_FINAL : MEDIA_BLOB_TRUNCATED;
            goto done;
        }
        const unsigned char *ad = i == 0 ? hdr : NULL;
        crypto_secretstream_xchacha20poly1305_state before = st;
        unsigned char tag;
        if (crypto_secretstream_xchacha20poly1305_pull(&st, pt, NULL, &tag, ct, n, ad,
                                                       ad ? PREFIX : 0) != 0) {
            rc = classify_failure(&d, &before, i, nchunks, chunk, ad, ct, pt);
            sodium_memzero(&before, sizeof before);
            goto done;
        }
        sodium_memzero(&before, sizeof before);
        bool final = tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL;
        if (final != last) {
            /* Both need the key: a sender that wrote a bad stream. A FINAL too early reads as
             * a cut stream, a missing FINAL as exactly that. */
            rc = last ? MEDIA_BLOB_NO_FINAL : MEDIA_BLOB_TRAILING;
            goto done;
        }
        if (i == 0 && plain_len != MEDIA_BLOB_LEN_UNKNOWN &&
            (plain_len > MEDIA_BLOB_MAX || media_blob_padded_len(plain_len) != padded)) {
            rc = MEDIA_BLOB_LENGTH; /* checked once the header is authentic, before output */
            goto done;
        }
        size_t len = n - ABYTES, keep = len;
        if (pos + len > out_len)
            keep = out_len > pos ? (size_t)(out_len - pos) : 0;
        if (!all_zero(pt + keep, len - keep)) {
            rc = MEDIA_BLOB_LENGTH;
            goto done;
        }
        if (keep && wr(wctx, pt, keep) != 0) {
            rc = MEDIA_IO;
            goto done;
        }
        out += keep;
        pos += len;
    }
    unsigned char extra;
    if (dec_read(&d, &extra, 1) != 0) {
        rc = MEDIA_BLOB_TRAILING;
        goto done;
    }
    if (d.io_error) {
        rc = MEDIA_IO;
        goto done;
    }
    if (expect_hash) {
        unsigned char h[MEDIA_BLOB_HASHBYTES];
        crypto_generichash_final(&d.hash, h, sizeof h);
        if (sodium_memcmp(h, expect_hash, sizeof h) != 0)
            rc = MEDIA_BLOB_HASH;
    }
done:
    sodium_memzero(&st, sizeof st);
    if (pt)
        sodium_memzero(pt, chunk);
    free(ct);
    free(pt);
    if (written)
        *written = out;
    return rc;
}

enum media_rc media_blob_hash_file(FILE *f, uint8_t hash[MEDIA_BLOB_HASHBYTES])
{
    if (sodium_init() < 0)
        return MEDIA_NOMEM;
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, MEDIA_BLOB_HASHBYTES);
    unsigned char buf[16384];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        crypto_generichash_update(&st, buf, n);
    if (ferror(f))
        return MEDIA_IO;
    crypto_generichash_final(&st, hash, MEDIA_BLOB_HASHBYTES);
    return MEDIA_OK;
}
