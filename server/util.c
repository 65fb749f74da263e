/* util.c - small helpers: time and the time zone, UTF-8, passwords, tokens, CSV cells, base64url.
 * The only state is the process's time zone (TZ), set once at start by kz_time_zone_load. */
#include "server.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t kz_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int kz_time_zone_load(const char *zone, char *posix, size_t n, char *err, size_t errlen)
{
    const char *dir = getenv("TZDIR"); /* where glibc looks, as it does */
    if (!dir || !*dir)
        dir = "/usr/share/zoneinfo";
    /* A name, never a path: parts of letters, digits, '_', '-', '+' between single slashes. */
    size_t len = strlen(zone);
    bool name =
        len > 0 && len < 64 && zone[0] != '/' && zone[len - 1] != '/' && !strstr(zone, "//");
    for (const char *p = zone; name && *p; p++)
        name = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
               strchr("_-+/", *p);
    char path[4200], why[160] = "";
    snprintf(path, sizeof path, "%s/%s", dir, zone);
    /* A zone file is a few KiB; its POSIX rule for times after the table is its last line. */
    enum { ZONE_FILE_MAX = 65536 };
    char *buf = malloc(ZONE_FILE_MAX);
    size_t got = 0;
    FILE *f = name && buf ? fopen(path, "rb") : NULL;
    if (f) {
        got = fread(buf, 1, ZONE_FILE_MAX, f);
        if (ferror(f))
            snprintf(why, sizeof why, "%s", strerror(errno));
        fclose(f);
    } else if (name) {
        snprintf(why, sizeof why, "%s", buf ? strerror(errno) : "out of memory");
    } else {
        snprintf(why, sizeof why, "not a zone name");
    }
    if (!why[0] && (got < 44 || memcmp(buf, "TZif", 4) != 0))
        snprintf(why, sizeof why, "not a tzdata zone file");
    if (why[0]) {
        snprintf(err, errlen,
                 "time_zone: '%.63s' is not a time zone of tzdata (%s: %s): use a name such as "
                 "Asia/Tokyo or UTC, and install the tzdata package if it is missing",
                 zone, name ? path : zone, why);
        free(buf);
        return -1;
    }
    char rule[64] = "";
    if (buf[4] >= '2' && got > 2 && buf[got - 1] == '\n') {
        size_t end = got - 1, start = end;
        while (start > 0 && buf[start - 1] != '\n')
            start--;
        bool ok = end - start < sizeof rule;
        for (size_t i = start; ok && i < end; i++)
            ok = (buf[i] >= 'a' && buf[i] <= 'z') || (buf[i] >= 'A' && buf[i] <= 'Z') ||
                 (buf[i] >= '0' && buf[i] <= '9') || (buf[i] && strchr("+-,./:<>", buf[i]));
        if (ok && start > 0 && buf[start] != ':' && buf[start] != '/')
            snprintf(rule, sizeof rule, "%.*s", (int)(end - start), buf + start);
    }
    free(buf);
    if (setenv("TZ", zone, 1) != 0) {
        snprintf(err, errlen, "time_zone: cannot set TZ: %s", strerror(errno));
        return -1;
    }
    tzset();
    snprintf(posix, n, "%s", rule);
    return 0;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF. */
bool kz_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str, *end = s + len;
    while (s < end) {
        /* ASCII eight bytes at a time: requests are mostly ASCII JSON around their text. */
        uint64_t w;
        while (end - s >= 8 && (memcpy(&w, s, 8), (w & 0x8080808080808080u) == 0))
            s += 8;
        if (s == end)
            break;
        unsigned c = *s;
        size_t n;
        unsigned min;
        if (c < 0x80) {
            s++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, min = 0x10000, c &= 0x07;
        } else {
            return false;
        }
        if ((size_t)(end - s) <= n)
            return false;
        for (size_t i = 1; i <= n; i++) {
            if ((s[i] & 0xc0) != 0x80)
                return false;
            c = (c << 6) | (s[i] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return false;
        s += n + 1;
    }
    return true;
}

void kz_utf8_copy_cut(char *out, size_t n, const char *s, size_t max)
{
    size_t len = strlen(s);
    if (max >= n)
        max = n - 1;
    if (len > max) {
        len = max;
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
            len--;
    }
    memcpy(out, s, len);
    out[len] = '\0';
}

void kz_utf8_sanitize(char *str)
{
    size_t len = strlen(str);
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)str[i];
        size_t n = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        if (n <= len - i && kz_utf8_valid(str + i, n))
            i += n;
        else
            str[i++] = '?';
    }
}

void kz_password_generate(char *out, size_t n)
{
    /* No 0/O, 1/l/I, 8/B: the password is read off a screen and typed on a phone. */
    static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXYZ2345679";
    for (size_t i = 0; i + 1 < n; i++)
        out[i] = alphabet[randombytes_uniform(sizeof alphabet - 1)];
    if (n)
        out[n - 1] = '\0';
}

bool kz_email_valid(const char *email)
{
    size_t len = strlen(email);
    if (len == 0)
        return true;
    const char *at = strchr(email, '@');
    if (len > STORE_EMAIL_MAX || !at || at == email || !at[1] || strchr(at + 1, '@'))
        return false;
    for (const unsigned char *p = (const unsigned char *)email; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return false;
    return kz_utf8_valid(email, len);
}

bool kz_phone_valid(const char *phone)
{
    size_t len = strlen(phone), digits = 0;
    if (len == 0)
        return true;
    if (len > STORE_PHONE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = phone[i];
        if (c >= '0' && c <= '9')
            digits++;
        else if (!strchr("+- ()", c) || (c == '+' && i != 0))
            return false;
    }
    return digits >= 3;
}

/* Crockford's base32: no I, L, O, U, so a code read aloud or off a screen survives. */
static const char invite_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

void kz_invite_code_new(char out[KZ_INVITE_CHARS], uint8_t hash[STORE_TOKEN_HASH])
{
    char raw[KZ_INVITE_DIGITS];
    for (int i = 0; i < KZ_INVITE_DIGITS; i++)
        raw[i] = invite_alphabet[randombytes_uniform(32)];
    size_t o = 0;
    for (int i = 0; i < KZ_INVITE_DIGITS; i++) {
        if (i && i % 4 == 0)
            out[o++] = '-';
        out[o++] = raw[i];
    }
    out[o] = '\0';
    kz_invite_code_hash(out, hash);
    sodium_memzero(raw, sizeof raw);
}

bool kz_invite_code_hash(const char *code, uint8_t hash[STORE_TOKEN_HASH])
{
    char norm[KZ_INVITE_DIGITS];
    int n = 0;
    for (const char *p = code; *p; p++) {
        char c = *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
        if (c == '-' || c == ' ')
            continue;
        if (c == 'O')
            c = '0';
        else if (c == 'I' || c == 'L')
            c = '1';
        if (!strchr(invite_alphabet, c) || c == '\0' || n == KZ_INVITE_DIGITS)
            return false;
        norm[n++] = c;
    }
    if (n != KZ_INVITE_DIGITS)
        return false;
    crypto_generichash(hash, STORE_TOKEN_HASH, (const unsigned char *)norm, sizeof norm,
                       (const unsigned char *)"kizuna/invite/v1", 16);
    return true;
}

bool kz_login_valid(const char *login)
{
    size_t len = strlen(login);
    if (len == 0 || len > STORE_LOCAL_LOGIN_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = login[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return false;
    }
    return true;
}

/* Listed as the messages name them; the enum's order. */
static const char *const role_names[KZ_ROLE_COUNT] = {"admin", "hq", "staff"};

const char *kz_role_name(enum kz_role r)
{
    return (unsigned)r < KZ_ROLE_COUNT ? role_names[r] : "";
}

bool kz_role_parse(const char *name, enum kz_role *out, char *why, size_t n)
{
    for (int r = 0; name && r < KZ_ROLE_COUNT; r++) {
        if (strcmp(name, role_names[r]) == 0) {
            if (out)
                *out = (enum kz_role)r;
            return true;
        }
    }
    if (why) {
        /* "unknown role 'boss' (admin, hq or staff)": the list from the table above. */
        int len = snprintf(why, n, "unknown role '%.32s' (", name ? name : "");
        for (int r = 0; r < KZ_ROLE_COUNT && len >= 0 && (size_t)len < n; r++) {
            const char *sep = r == KZ_ROLE_COUNT - 1 ? " or " : ", ";
            len += snprintf(why + len, n - (size_t)len, "%s%s", r ? sep : "", role_names[r]);
        }
        if (len >= 0 && (size_t)len < n)
            snprintf(why + len, n - (size_t)len, ")");
        kz_utf8_sanitize(why); /* the name was cut at 32 bytes, maybe inside a character */
    }
    return false;
}

bool kz_role_is(const char *name, enum kz_role r)
{
    return (unsigned)r < KZ_ROLE_COUNT && name && strcmp(name, role_names[r]) == 0;
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

const char *kz_password_problem(const char *password, const char *login, long long min_len)
{
    if ((long long)utf8_chars(password) < min_len)
        return "password is too short";
    if (strlen(password) > 255)
        return "password is longer than 255 bytes";
    if (login && strcasecmp(password, login) == 0)
        return "password must not be the login id";
    return NULL;
}

void kz_token_new(char token[KZ_TOKEN_CHARS], uint8_t hash[STORE_TOKEN_HASH])
{
    uint8_t raw[KZ_TOKEN_BYTES];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(token, KZ_TOKEN_CHARS, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
    kz_token_hash(token, hash);
}

bool kz_token_hash(const char *token, uint8_t hash[STORE_TOKEN_HASH])
{
    if (strlen(token) != KZ_TOKEN_CHARS - 1)
        return false;
    /* The token is high-entropy, so a fast keyless hash is enough: the database alone never
     * yields a usable token. */
    crypto_generichash(hash, STORE_TOKEN_HASH, (const unsigned char *)token, KZ_TOKEN_CHARS - 1,
                       NULL, 0);
    return true;
}

/* What a spreadsheet takes for the start of a formula (=1+1, +1, -1, @SUM(...)), and the tab
 * and carriage return that OWASP's list adds (some spreadsheets skip them before one). */
static bool csv_formula_start(char ch)
{
    return ch && strchr("=+-@\t\r", ch);
}

/* Whether a cell begins with the ' that kz_csv_cell puts before a formula, or would look as if
 * it did. */
static bool csv_guarded(const char *cell)
{
    return cell[0] == '\'' && (csv_formula_start(cell[1]) || cell[1] == '\'');
}

bool kz_csv_guard_needed(const char *cell)
{
    return cell && (csv_formula_start(cell[0]) || csv_guarded(cell));
}

void kz_csv_cell(struct kz_csv *csv, const char *cell, bool last)
{
    if (!cell)
        cell = "";
    if (csv->failed)
        return;
    bool guard = csv_formula_start(cell[0]) || csv_guarded(cell);
    /* doubled quotes, the BOM, the guard, quotes, separator, NUL */
    size_t need = strlen(cell) * 2 + 8;
    if (csv->len + need > csv->cap) {
        size_t cap = (csv->cap ? csv->cap : 4096) * 2 + need;
        char *grown = realloc(csv->text, cap);
        if (!grown) {
            csv->failed = true;
            return;
        }
        csv->text = grown;
        csv->cap = cap;
    }
    char *p = csv->text + csv->len;
    if (csv->len == 0) { /* the BOM: Excel then reads UTF-8, not Shift_JIS */
        memcpy(p, "\xef\xbb\xbf", 3);
        p += 3;
    }
    *p++ = '"';
    if (guard)
        *p++ = '\'';
    for (const char *c = cell; *c; c++) {
        if (*c == '"')
            *p++ = '"';
        *p++ = *c;
    }
    *p++ = '"';
    *p++ = last ? '\n' : ',';
    *p = '\0';
    csv->len = (size_t)(p - csv->text);
}

void kz_csv_row(struct kz_csv *csv, const char *const cells[], size_t n)
{
    for (size_t i = 0; i < n; i++)
        kz_csv_cell(csv, cells[i], i + 1 == n);
}

void kz_csv_time(struct kz_csv *csv, int64_t ms, bool last)
{
    char buf[32] = "";
    if (ms) {
        time_t t = (time_t)(ms / 1000);
        struct tm tm;
        localtime_r(&t, &tm); /* the server's time_zone (kz_time_zone_load) */
        strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    }
    kz_csv_cell(csv, buf, last);
}

void kz_csv_unguard(char *cell)
{
    if (csv_guarded(cell))
        memmove(cell, cell + 1, strlen(cell));
}

void kz_csv_free(struct kz_csv *csv)
{
    free(csv->text);
    *csv = (struct kz_csv){0};
}

bool kz_actor_login_valid(const char *login)
{
    const char *at = strchr(login, '@');
    char local[STORE_LOCAL_LOGIN_MAX + 1];
    if (!at || (size_t)(at - login) > STORE_LOCAL_LOGIN_MAX || strlen(at + 1) < 3 ||
        strlen(at + 1) > STORE_SERVER_ID_MAX)
        return false;
    snprintf(local, sizeof local, "%.*s", (int)(at - login), login);
    for (const char *p = at + 1; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
            return false;
    return kz_login_valid(local);
}

bool kz_b64url_exact(const char *text, uint8_t *out, size_t n)
{
    size_t got = 0;
    const char *end = NULL;
    return text &&
           sodium_base642bin(out, n, text, strlen(text), NULL, &got, &end,
                             sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 &&
           got == n && (!end || !*end);
}

void kz_json_add_b64url(cJSON *o, const char *name, const uint8_t *bin, size_t n)
{
    size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *buf = malloc(cap);
    if (buf) {
        sodium_bin2base64(buf, cap, bin, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        cJSON_AddStringToObject(o, name, buf);
    }
    free(buf);
}
