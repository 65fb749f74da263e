/* pushsink.c - the Web Push service stand-in and the browser's half of Web Push, for tests
 * (pushsink.h). The crypto is written out from the RFCs with OpenSSL's primitives, not taken
 * from server/webpush.c, so that a mistake there cannot hide itself here. */
#include "pushsink.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_POSTS 64
#define MAX_RULES 16

struct rule {
    char path[256];
    int status;
    bool first_only;
};

struct pushsink {
    int fd, port;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    struct push_post *posts; /* MAX_POSTS */
    int nposts;
    struct rule rules[MAX_RULES];
    int nrules;
    int delay_ms;
    int overflow;   /* posts beyond MAX_POSTS, counted only */
    bool keepalive; /* answer without closing, and read the next request on the connection */
    int conns;      /* connections accepted */
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool header(const char *head, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            size_t len = strcspn(v, "\r\n");
            snprintf(out, n, "%.*s", (int)len, v);
            return true;
        }
    }
    return false;
}

/* Reads one request on c and answers it; false if there was none (closed, or no full head
 * within 5 s) or the connection is to be closed after it. */
static bool serve_one(struct pushsink *p, int c)
{
    char head[16384];
    size_t got = 0;
    char *end = NULL;
    long long deadline = now_ms() + 5000;
    while (!end && got < sizeof head - 1 && now_ms() < deadline) {
        struct pollfd pf = {c, POLLIN, 0};
        if (poll(&pf, 1, 200) <= 0)
            continue;
        ssize_t n = recv(c, head + got, sizeof head - 1 - got, 0);
        if (n <= 0)
            return false;
        got += (size_t)n;
        head[got] = '\0';
        end = strstr(head, "\r\n\r\n");
    }
    if (!end)
        return false;
    struct push_post *post = calloc(1, sizeof *post);
    char cl[32] = "0", expect[64] = "";
    sscanf(head, "POST %255s", post->path);
    snprintf(post->head, sizeof post->head, "%.*s", (int)(end - head), head);
    header(head, "Authorization", post->authorization, sizeof post->authorization);
    header(head, "TTL", post->ttl, sizeof post->ttl);
    header(head, "Urgency", post->urgency, sizeof post->urgency);
    header(head, "Content-Encoding", post->encoding, sizeof post->encoding);
    header(head, "Content-Length", cl, sizeof cl);
    if (header(head, "Expect", expect, sizeof expect) && strcasecmp(expect, "100-continue") == 0)
        send(c, "HTTP/1.1 100 Continue\r\n\r\n", 25, MSG_NOSIGNAL);
    size_t want = (size_t)strtoul(cl, NULL, 10);
    if (want > sizeof post->body)
        want = sizeof post->body;
    size_t have = got - (size_t)(end + 4 - head);
    if (have > want)
        have = want;
    memcpy(post->body, end + 4, have);
    while (have < want && now_ms() < deadline) {
        struct pollfd pf = {c, POLLIN, 0};
        if (poll(&pf, 1, 200) <= 0)
            continue;
        ssize_t n = recv(c, post->body + have, want - have, 0);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    post->len = have;
    post->at_ms = now_ms();
    pthread_mutex_lock(&p->mu);
    int status = 201;
    for (int i = 0; i < p->nrules; i++)
        if (strcmp(p->rules[i].path, post->path) == 0 && p->rules[i].status) {
            status = p->rules[i].status;
            if (p->rules[i].first_only)
                p->rules[i].status = 0;
        }
    if (p->nposts < MAX_POSTS)
        p->posts[p->nposts++] = *post;
    else
        p->overflow++;
    int delay = p->delay_ms;
    bool keep = p->keepalive;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    free(post);
    if (delay)
        usleep((useconds_t)delay * 1000);
    char reply[128];
    int n = snprintf(reply, sizeof reply, "HTTP/1.1 %d Stand-in\r\nContent-Length: 0\r\n%s\r\n",
                     status, keep ? "" : "Connection: close\r\n");
    return send(c, reply, (size_t)n, MSG_NOSIGNAL) == n && keep;
}

/* Whether c, kept alive, brings another request: false once the client closes it, another
 * client is waiting to connect (this one-thread stand-in then serves that one) or the sink
 * stops. */
static bool next_request(struct pushsink *p, int c)
{
    for (;;) {
        pthread_mutex_lock(&p->mu);
        bool stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop)
            return false;
        struct pollfd pf[2] = {{c, POLLIN, 0}, {p->fd, POLLIN, 0}};
        if (poll(pf, 2, 100) <= 0)
            continue;
        if (pf[1].revents)
            return false;
        return true; /* data or EOF: serve_one tells which */
    }
}

static void *sink_main(void *arg)
{
    struct pushsink *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        bool stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop)
            break;
        struct pollfd pf = {p->fd, POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        int c = accept(p->fd, NULL, NULL);
        if (c < 0)
            continue;
        pthread_mutex_lock(&p->mu);
        p->conns++;
        pthread_mutex_unlock(&p->mu);
        while (serve_one(p, c) && next_request(p, c))
            ;
        close(c);
    }
    return NULL;
}

struct pushsink *pushsink_start(void)
{
    struct pushsink *p = calloc(1, sizeof *p);
    p->posts = calloc(MAX_POSTS, sizeof *p->posts);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (p->fd < 0 || bind(p->fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(p->fd, 16) != 0 ||
        getsockname(p->fd, (struct sockaddr *)&a, &al) != 0)
        abort();
    p->port = ntohs(a.sin_port);
    if (pthread_create(&p->thread, NULL, sink_main, p) != 0)
        abort();
    return p;
}

int pushsink_port(const struct pushsink *p)
{
    return p->port;
}

void pushsink_status(struct pushsink *p, const char *path, int status, bool first_only)
{
    pthread_mutex_lock(&p->mu);
    if (p->nrules < MAX_RULES) {
        struct rule *r = &p->rules[p->nrules++];
        snprintf(r->path, sizeof r->path, "%s", path);
        r->status = status;
        r->first_only = first_only;
    }
    pthread_mutex_unlock(&p->mu);
}

static int find(struct pushsink *p, const char *path, int n)
{
    for (int i = 0, seen = 0; i < p->nposts; i++)
        if (strcmp(p->posts[i].path, path) == 0 && seen++ == n)
            return i;
    return -1;
}

bool pushsink_wait(struct pushsink *p, const char *path, int n, int timeout_ms,
                   struct push_post *out)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->mu);
    int i;
    while ((i = find(p, path, n)) < 0)
        if (pthread_cond_timedwait(&p->cv, &p->mu, &until) != 0)
            break;
    if (i < 0)
        i = find(p, path, n);
    if (i >= 0 && out)
        *out = p->posts[i];
    pthread_mutex_unlock(&p->mu);
    return i >= 0;
}

void pushsink_delay(struct pushsink *p, int ms)
{
    pthread_mutex_lock(&p->mu);
    p->delay_ms = ms;
    pthread_mutex_unlock(&p->mu);
}

void pushsink_keepalive(struct pushsink *p, bool on)
{
    pthread_mutex_lock(&p->mu);
    p->keepalive = on;
    pthread_mutex_unlock(&p->mu);
}

int pushsink_connections(struct pushsink *p)
{
    pthread_mutex_lock(&p->mu);
    int n = p->conns;
    pthread_mutex_unlock(&p->mu);
    return n;
}

int pushsink_count(struct pushsink *p, const char *path)
{
    pthread_mutex_lock(&p->mu);
    int n = path ? 0 : p->overflow;
    for (int i = 0; i < p->nposts; i++)
        n += !path || strcmp(p->posts[i].path, path) == 0;
    pthread_mutex_unlock(&p->mu);
    return n;
}

bool push_post_header(const struct push_post *post, const char *name, char *out, size_t n)
{
    return header(post->head, name, out, n);
}

void pushsink_stop(struct pushsink *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    close(p->fd);
    free(p->posts);
    free(p);
}

/* ---- the browser's half ---- */

static EVP_PKEY *ec_key(const uint8_t *priv, const uint8_t pub[65])
{
    unsigned char le[32];
    OSSL_PARAM prm[4];
    int n = 0;
    prm[n++] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
    prm[n++] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pub, 65);
    if (priv) {
        BIGNUM *bn = BN_bin2bn(priv, 32, NULL);
        BN_bn2nativepad(bn, le, 32);
        BN_free(bn);
        prm[n++] = OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_PRIV_KEY, le, 32);
    }
    prm[n] = OSSL_PARAM_construct_end();
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (!c || EVP_PKEY_fromdata_init(c) != 1 ||
        EVP_PKEY_fromdata(c, &k, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, prm) != 1)
        k = NULL;
    EVP_PKEY_CTX_free(c);
    return k;
}

void push_keys_new(struct push_keys *k)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    BIGNUM *d = NULL;
    size_t len = 0;
    if (!key || EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &d) != 1 ||
        BN_bn2binpad(d, k->priv, 32) != 32 ||
        EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, k->pub, 65, &len) != 1 ||
        len != 65)
        abort();
    BN_free(d);
    EVP_PKEY_free(key);
    randombytes_buf(k->auth, sizeof k->auth);
    sodium_bin2base64(k->pub64, sizeof k->pub64, k->pub, 65,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_bin2base64(k->auth64, sizeof k->auth64, k->auth, 16,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static void hmac(const uint8_t *key, size_t kl, const uint8_t *d, size_t dl, uint8_t out[32])
{
    size_t n = 32;
    EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, kl, d, dl, out, 32, &n);
}

/* HKDF-SHA256 with one expand block (every output here is at most 32 bytes). */
static void hkdf(const uint8_t *salt, size_t sl, const uint8_t *ikm, size_t il, const uint8_t *info,
                 size_t infol, uint8_t *out, size_t ol)
{
    uint8_t prk[32], t[32], buf[300];
    hmac(salt, sl, ikm, il, prk);
    memcpy(buf, info, infol);
    buf[infol] = 1;
    hmac(prk, 32, buf, infol + 1, t);
    memcpy(out, t, ol);
}

bool push_decrypt(const struct push_keys *k, const uint8_t *body, size_t len, char *out,
                  size_t outlen)
{
    if (len < 86 + 17 || body[20] != 65)
        return false;
    uint32_t rs =
        (uint32_t)body[16] << 24 | (uint32_t)body[17] << 16 | (uint32_t)body[18] << 8 | body[19];
    if (rs < 18 || len - 86 > rs)
        return false; /* one record only, as small pushes are */
    EVP_PKEY *me = ec_key(k->priv, k->pub), *them = ec_key(NULL, body + 21);
    EVP_PKEY_CTX *c = me && them ? EVP_PKEY_CTX_new_from_pkey(NULL, me, NULL) : NULL;
    uint8_t secret[32];
    size_t sl = 32;
    bool ok = c && EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, them) == 1 &&
              EVP_PKEY_derive(c, secret, &sl) == 1;
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(me);
    EVP_PKEY_free(them);
    if (!ok)
        return false;
    uint8_t info[144], ikm[32], cek[16], nonce[12];
    memcpy(info, "WebPush: info", 14);
    memcpy(info + 14, k->pub, 65);
    memcpy(info + 79, body + 21, 65);
    hkdf(k->auth, 16, secret, 32, info, 144, ikm, 32);
    hkdf(body, 16, ikm, 32, (const uint8_t *)"Content-Encoding: aes128gcm", 28, cek, 16);
    hkdf(body, 16, ikm, 32, (const uint8_t *)"Content-Encoding: nonce", 24, nonce, 12);
    size_t cl = len - 86 - 16;
    uint8_t *plain = malloc(cl + 16);
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    int a = 0, b = 0;
    ok = EVP_DecryptInit_ex(x, EVP_aes_128_gcm(), NULL, cek, nonce) == 1 &&
         EVP_DecryptUpdate(x, plain, &a, body + 86, (int)cl) == 1 &&
         EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_TAG, 16, (void *)(body + 86 + cl)) == 1 &&
         EVP_DecryptFinal_ex(x, plain + a, &b) == 1;
    EVP_CIPHER_CTX_free(x);
    size_t pl = (size_t)(a + b);
    /* The last record: delimiter 2 after the content, then only zero padding. */
    while (ok && pl > 0 && plain[pl - 1] == 0)
        pl--;
    ok = ok && pl > 0 && plain[pl - 1] == 2 && pl - 1 < outlen;
    if (ok) {
        memcpy(out, plain, pl - 1);
        out[pl - 1] = '\0';
    }
    free(plain);
    return ok;
}

static bool b64u(const char *s, size_t len, uint8_t *out, size_t cap, size_t *n)
{
    return sodium_base642bin(out, cap, s, len, NULL, n, NULL,
                             sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0;
}

bool push_vapid_check(const char *authorization, const char *want_key, const char *want_aud,
                      const char *want_sub, char *err, size_t errlen)
{
#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        return false;                                                                              \
    } while (0)
    if (strncmp(authorization, "vapid t=", 8) != 0)
        FAIL("not a vapid authorization: %.80s", authorization);
    const char *jwt = authorization + 8;
    const char *kpart = strstr(jwt, ", k=");
    if (!kpart)
        FAIL("no k=");
    if (strcmp(kpart + 4, want_key) != 0)
        FAIL("k is %s, not the server's key %s", kpart + 4, want_key);
    const char *d1 = memchr(jwt, '.', (size_t)(kpart - jwt));
    const char *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(kpart - d1 - 1)) : NULL;
    if (!d2)
        FAIL("the token is not a JWT");
    uint8_t head[256], claims[1024], sig[64], pub[65];
    size_t hl = 0, cl = 0, sgl = 0, pl = 0;
    if (!b64u(jwt, (size_t)(d1 - jwt), head, sizeof head - 1, &hl) ||
        !b64u(d1 + 1, (size_t)(d2 - d1 - 1), claims, sizeof claims - 1, &cl) ||
        !b64u(d2 + 1, (size_t)(kpart - d2 - 1), sig, sizeof sig, &sgl) || sgl != 64 ||
        !b64u(kpart + 4, strlen(kpart + 4), pub, sizeof pub, &pl) || pl != 65)
        FAIL("bad base64url in the token");
    head[hl] = claims[cl] = '\0';
    if (!strstr((char *)head, "\"alg\":\"ES256\""))
        FAIL("alg is not ES256: %s", head);
    char want[600];
    snprintf(want, sizeof want, "\"aud\":\"%s\"", want_aud);
    if (!strstr((char *)claims, want))
        FAIL("aud is not %s: %s", want_aud, claims);
    snprintf(want, sizeof want, "\"sub\":\"%s\"", want_sub);
    if (!strstr((char *)claims, want))
        FAIL("sub is not %s: %s", want_sub, claims);
    const char *e = strstr((char *)claims, "\"exp\":");
    long long exp = e ? strtoll(e + 6, NULL, 10) : 0, now = (long long)time(NULL);
    if (exp <= now || exp > now + 24 * 3600)
        FAIL("exp %lld is not within 24 hours of now %lld", exp, now);
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
    unsigned char *der = NULL;
    int dl = i2d_ECDSA_SIG(es, &der);
    ECDSA_SIG_free(es);
    EVP_PKEY *vk = ec_key(NULL, pub);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok =
        vk && dl > 0 && EVP_DigestVerifyInit_ex(md, NULL, "SHA256", NULL, NULL, vk, NULL) == 1 &&
        EVP_DigestVerify(md, der, (size_t)dl, (const unsigned char *)jwt, (size_t)(d2 - jwt)) == 1;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(vk);
    OPENSSL_free(der);
    if (!ok)
        FAIL("the signature does not verify with k");
    return true;
#undef FAIL
}
