/* redact.c - the redaction helper (redact.h): finds phone numbers, postal codes, addresses,
 * e-mail addresses and directory names in a message's UTF-8 text, as byte spans.
 *
 * The text is decoded once into characters with their byte offsets and a normalised twin in
 * which full-width ASCII (０-９, －, ＠, Ａ-ｚ) is ASCII and every dash-like mark (‐ – — − ー ｰ)
 * is '-': the patterns then match on the twin and answer in the original's offsets. */
#include "redact.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const char *kz_redact_kind_name(enum kz_redact_kind k)
{
    static const char *const names[KZ_REDACT_KINDS] = {"phone", "postal", "address", "email",
                                                       "name"};
    return k < KZ_REDACT_KINDS ? names[k] : "";
}

struct text {
    size_t n;
    uint32_t *cp; /* each character as written */
    uint32_t *nc; /* ... normalised */
    size_t *off;  /* its first byte; off[n] is the text's length */
};

struct spans {
    struct kz_redact_span *v;
    size_t n, cap;
    bool failed;
};

static void span_add(struct spans *s, const struct text *t, size_t a, size_t b,
                     enum kz_redact_kind k)
{
    if (s->failed || a >= b)
        return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        struct kz_redact_span *v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            s->failed = true;
            return;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (struct kz_redact_span){t->off[a], t->off[b], k};
}

/* One UTF-8 character at p (n bytes left): its code point and length; an invalid byte is
 * U+FFFD of length 1. */
static uint32_t utf8_next(const unsigned char *p, size_t n, size_t *len)
{
    uint32_t c = p[0];
    size_t need = c < 0x80             ? 1
                  : (c & 0xe0) == 0xc0 ? 2
                  : (c & 0xf0) == 0xe0 ? 3
                  : (c & 0xf8) == 0xf0 ? 4
                                       : 0;
    *len = 1;
    if (need == 1)
        return c;
    if (need == 0 || need > n)
        return 0xfffd;
    uint32_t v = c & (0x7f >> need);
    for (size_t i = 1; i < need; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0xfffd;
        v = (v << 6) | (p[i] & 0x3f);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[need] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0xfffd;
    *len = need;
    return v;
}

static uint32_t normalise(uint32_t c)
{
    if (c >= 0xff01 && c <= 0xff5e) /* full-width ASCII */
        return c - 0xfee0;
    if (c == 0x3000)
        return ' ';
    if ((c >= 0x2010 && c <= 0x2015) || c == 0x2212 || c == 0x30fc || c == 0xff70 || c == 0xfe63 ||
        c == 0x2043)
        return '-';
    return c;
}

static bool text_decode(struct text *t, const char *s, size_t len)
{
    t->cp = malloc((len + 1) * sizeof *t->cp);
    t->nc = malloc((len + 1) * sizeof *t->nc);
    t->off = malloc((len + 1) * sizeof *t->off);
    if (!t->cp || !t->nc || !t->off)
        return false;
    size_t i = 0, n = 0;
    while (i < len) {
        size_t l;
        uint32_t c = utf8_next((const unsigned char *)s + i, len - i, &l);
        t->cp[n] = c;
        t->nc[n] = normalise(c);
        t->off[n++] = i;
        i += l;
    }
    t->off[n] = len;
    t->cp[n] = t->nc[n] = 0; /* a sentinel: matches nothing */
    t->n = n;
    return true;
}

static bool digit(const struct text *t, size_t i)
{
    return i < t->n && t->nc[i] >= '0' && t->nc[i] <= '9';
}

static bool ascii_alnum(uint32_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* ---- phone numbers ---- */

static bool phone_sep(uint32_t c)
{
    return c == '-' || c == ' ' || c == '(' || c == ')';
}

/* Whether digits (a number as dialled in Japan, d of them) is a fixed, mobile, IP, free-dial
 * or navi-dial number: 0 and 9 more whose second is not 0 (03-1234-5678, 0120-000-000,
 * 0570-...), or 11 beginning 070, 080, 090, 050, 020 or 0800. */
static bool phone_digits_ok(const char *d, size_t n)
{
    if (n == 10)
        return d[0] == '0' && d[1] != '0';
    if (n == 11)
        return (d[0] == '0' && d[2] == '0' && strchr("25789", d[1]) && d[1] != 0) ||
               strncmp(d, "0800", 4) == 0;
    return false;
}

/* A number at i: 0…, (0…) or +81…; the longest valid prefix ending with a group of digits. */
static size_t phone_at(const struct text *t, size_t i, size_t *start)
{
    size_t j = i;
    char d[24];
    size_t nd = 0;
    *start = i;
    if (t->nc[i] == '+' && t->nc[i + 1] == '8' && t->nc[i + 2] == '1') {
        d[nd++] = '0'; /* +81 90… is 090… */
        j = i + 3;
        while (j < t->n && phone_sep(t->nc[j]) && j - i < 6)
            j++;
        if (t->nc[j] == '0') /* +81 (0)90…: the 0 once */
            j++;
        while (j < t->n && (t->nc[j] == ')' || t->nc[j] == ' ' || t->nc[j] == '-'))
            j++;
        if (!digit(t, j))
            return 0;
    } else if (t->nc[i] != '0') {
        return 0;
    } else if (i > 0 && t->nc[i - 1] == '(') {
        *start = i - 1;
    }
    size_t best = 0;
    for (;;) {
        while (digit(t, j) && nd < sizeof d - 1)
            d[nd++] = (char)t->nc[j++];
        if (digit(t, j))
            return best; /* too many digits to be a number */
        if (phone_digits_ok(d, nd))
            best = j;
        size_t k = j, seps = 0;
        while (k < t->n && phone_sep(t->nc[k]) && seps < 2) {
            k++;
            seps++;
        }
        if (seps == 0 || !digit(t, k) || nd >= 11)
            break;
        j = k;
    }
    /* 090-1234-5678-9 is not a number that stops at 5678. */
    if (best && t->nc[best] == '-' && digit(t, best + 1))
        return 0;
    return best;
}

static void find_phones(const struct text *t, struct spans *s)
{
    for (size_t i = 0; i < t->n; i++) {
        uint32_t prev = i ? t->nc[i - 1] : 0;
        /* Not the middle of another number (a date's 2024-01-01, 1,000) or of a code. */
        if (ascii_alnum(prev) || prev == ',' || prev == '.' ||
            (i > 1 && phone_sep(prev) && prev != '(' && digit(t, i - 2)))
            continue;
        size_t start, end = phone_at(t, i, &start);
        if (end && !ascii_alnum(t->nc[end])) {
            span_add(s, t, start, end, KZ_REDACT_PHONE);
            i = end - 1;
        }
    }
}

/* ---- postal codes: 〒123-4567, 〒1234567, 123-4567 ---- */

static size_t digits_run(const struct text *t, size_t i)
{
    size_t j = i;
    while (digit(t, j))
        j++;
    return j - i;
}

static void find_postal(const struct text *t, struct spans *s)
{
    for (size_t i = 0; i < t->n; i++) {
        bool mark = t->cp[i] == 0x3012; /* 〒 */
        size_t j = i + mark;
        while (mark && t->nc[j] == ' ')
            j++;
        uint32_t prev = i ? t->nc[i - 1] : 0;
        if (!mark && (ascii_alnum(prev) || prev == '-' || prev == ',' || prev == '.'))
            continue;
        size_t end = 0;
        if (digits_run(t, j) == 3 && t->nc[j + 3] == '-' && digits_run(t, j + 4) == 4)
            end = j + 8;
        else if (mark && digits_run(t, j) == 7)
            end = j + 7;
        /* Not the start of a longer number: 123-4567-8 is not a postal code. */
        if (end && !ascii_alnum(t->nc[end]) && !(t->nc[end] == '-' && digit(t, end + 1))) {
            span_add(s, t, i, end, KZ_REDACT_POSTAL);
            i = end - 1;
        }
    }
}

/* ---- e-mail addresses ---- */

static bool email_local(uint32_t c)
{
    return ascii_alnum(c) || (c && strchr("._%+-", (int)c) && c < 0x80);
}

static bool email_domain(uint32_t c)
{
    return ascii_alnum(c) || c == '.' || c == '-';
}

static void find_emails(const struct text *t, struct spans *s)
{
    for (size_t i = 1; i + 1 < t->n; i++) {
        if (t->nc[i] != '@')
            continue;
        size_t a = i;
        while (a > 0 && email_local(t->nc[a - 1]))
            a--;
        size_t b = i + 1;
        while (b < t->n && email_domain(t->nc[b]))
            b++;
        while (b > i + 1 && (t->nc[b - 1] == '.' || t->nc[b - 1] == '-'))
            b--;
        bool dot = false;
        for (size_t k = i + 2; k + 1 < b; k++)
            dot |= t->nc[k] == '.';
        if (a < i && dot && t->nc[i + 1] != '.') {
            span_add(s, t, a, b, KZ_REDACT_EMAIL);
            i = b;
        }
    }
}

/* ---- addresses ---- */

static bool kanji(uint32_t c)
{
    return (c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf) || c == 0x3005 ||
           (c >= 0xf900 && c <= 0xfaff);
}

static bool katakana(uint32_t c)
{
    return (c >= 0x30a1 && c <= 0x30fa) || c == 0x30fc;
}

static bool numeral(const struct text *t, size_t i)
{
    static const uint32_t kanji_digits[] = {
        0x3007, 0x4e00, 0x4e8c, 0x4e09, 0x56db, 0x4e94, 0x516d,
        0x4e03, 0x516b, 0x4e5d, 0x5341, 0x767e, 0x5343}; /* 〇一二三四五六七八九十百千 */
    if (digit(t, i))
        return true;
    for (size_t k = 0; k < sizeof kanji_digits / sizeof kanji_digits[0]; k++)
        if (i < t->n && t->cp[i] == kanji_digits[k])
            return true;
    return false;
}

/* What an address may be made of: kanji, katakana, digits and its hyphens, and が between
 * kanji (霞が関, 自由が丘). */
static bool address_char(const struct text *t, size_t i)
{
    uint32_t c = t->cp[i];
    if (c == 0x304c)
        return i > 0 && kanji(t->cp[i - 1]) && kanji(t->cp[i + 1]);
    return kanji(c) || katakana(c) || c == 0x30f6 /* ヶ */ || digit(t, i) || t->nc[i] == '-';
}

#define CH_CHOME 0x4e01 /* 丁 */
#define CH_ME    0x76ee /* 目 */
#define CH_BAN   0x756a /* 番 */
#define CH_CHI   0x5730 /* 地 */
#define CH_GOU   0x53f7 /* 号 */

/* The end of a block number's suffix at i (丁目, 番地, 番, 号), or 0. */
static size_t block_suffix(const struct text *t, size_t i)
{
    if (t->cp[i] == CH_CHOME && t->cp[i + 1] == CH_ME)
        return i + 2;
    if (t->cp[i] == CH_BAN)
        return t->cp[i + 1] == CH_CHI ? i + 2 : i + 1;
    if (t->cp[i] == CH_GOU)
        return i + 1;
    return 0;
}

/* Whether the text at i spells s (UTF-8). */
static bool spells(const struct text *t, size_t i, const char *s)
{
    size_t len = strlen(s), k = 0;
    while (k < len) {
        size_t l;
        uint32_t c = utf8_next((const unsigned char *)s + k, len - k, &l);
        if (i >= t->n || t->cp[i] != c)
            return false;
        i++;
        k += l;
    }
    return true;
}

static size_t spelt_len(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += (*p & 0xc0) != 0x80;
    return n;
}

static const char *const prefectures[] = {
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県",   "福島県", "茨城県",
    "栃木県", "群馬県", "埼玉県", "千葉県", "東京都", "神奈川県", "新潟県", "富山県",
    "石川県", "福井県", "山梨県", "長野県", "岐阜県", "静岡県",   "愛知県", "三重県",
    "滋賀県", "京都府", "大阪府", "兵庫県", "奈良県", "和歌山県", "鳥取県", "島根県",
    "岡山県", "広島県", "山口県", "徳島県", "香川県", "愛媛県",   "高知県", "福岡県",
    "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県", "鹿児島県", "沖縄県"};

/* Words that introduce an address rather than begin it: 住所松山市… starts at 松山市. */
static const char *const address_labels[] = {"住所", "所在地", "在住", "自宅", "現住所"};

static bool municipality_mark(uint32_t c)
{
    return c == 0x5e02 /* 市 */ || c == 0x533a /* 区 */ || c == 0x753a /* 町 */ ||
           c == 0x6751 /* 村 */ || c == 0x90e1 /* 郡 */;
}

/* Where the address whose block number starts at a begins: at a prefecture in the run of
 * address characters before it, else a few characters before its first municipality mark
 * (place names are mostly two to four kanji), after any label; SIZE_MAX if the run has no
 * municipality (県道12号 is a road, not an address). */
static size_t address_start(const struct text *t, size_t a)
{
    size_t run = a;
    while (run > 0 && address_char(t, run - 1))
        run--;
    size_t mark = SIZE_MAX;
    for (size_t i = run; i < a; i++) {
        for (size_t p = 0; p < sizeof prefectures / sizeof prefectures[0]; p++)
            if (spells(t, i, prefectures[p]))
                return i;
        if (mark == SIZE_MAX && municipality_mark(t->cp[i]) && i > run)
            mark = i;
    }
    if (mark == SIZE_MAX)
        return SIZE_MAX;
    size_t start = mark > run + 4 ? mark - 4 : run;
    for (size_t i = run; i < mark; i++)
        for (size_t l = 0; l < sizeof address_labels / sizeof address_labels[0]; l++)
            if (spells(t, i, address_labels[l]) && i + spelt_len(address_labels[l]) > start &&
                i + spelt_len(address_labels[l]) <= mark - 1)
                start = i + spelt_len(address_labels[l]);
    while (start < mark && t->cp[start] == 0x304c) /* 住所が松山市: after the label's が */
        start++;
    return start;
}

static void find_addresses(const struct text *t, struct spans *s)
{
    for (size_t i = 0; i < t->n; i++) {
        if (!numeral(t, i) || (i > 0 && numeral(t, i - 1)))
            continue;
        size_t b = i;
        while (numeral(t, b))
            b++;
        /* A block number: 4丁目, 7番地, 12番, 3号, or 4-7-2. */
        size_t end = block_suffix(t, b);
        if (!end && t->nc[b] == '-' && digit(t, b + 1))
            end = b;
        if (!end)
            continue;
        size_t start = address_start(t, i);
        if (start == SIZE_MAX)
            continue;
        /* The rest of it: more numbers, suffixes and hyphens (四丁目7番地2, 4-7-2). */
        for (;;) {
            size_t e;
            if (numeral(t, end))
                end++;
            else if (t->nc[end] == '-' && numeral(t, end + 1))
                end++;
            else if ((e = block_suffix(t, end)) && end > 0 && numeral(t, end - 1))
                end = e;
            else
                break;
        }
        span_add(s, t, start, end, KZ_REDACT_ADDRESS);
        i = end - 1;
    }
}

/* ---- names of the directory ---- */

/* A word to look for (a name, or its form without spaces, or a part), by its first character:
 * the text is read once, each character looking up the words that start with it. 10,000
 * messages of ~60 characters against a directory of 200 names took 2.7 s searched name by name
 * (memcmp at every byte), 0.44 s with memmem, and take 0.03 s so, the same for 2,000 names
 * (gcc -O2, one core of the development machine): a review of a day's hotline opens within
 * one request. */
struct word {
    uint32_t first;
    char *w;
    size_t wl;
    bool ascii;
};

struct kz_redact_names {
    struct word *v;
    size_t n, cap;
};

static bool is_space_at(const char *p, size_t *len)
{
    if (*p == ' ') {
        *len = 1;
        return true;
    }
    if (strncmp(p, "\xe3\x80\x80", 3) == 0) { /* U+3000 */
        *len = 3;
        return true;
    }
    return false;
}

static size_t spelt_len_n(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)s[i] & 0xc0) != 0x80;
    return k;
}

static bool word_add(struct kz_redact_names *ns, const char *w, size_t wl)
{
    if (spelt_len_n(w, wl) < 2)
        return true; /* one character is no name to look for */
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 64;
        struct word *v = realloc(ns->v, cap * sizeof *v);
        if (!v)
            return false;
        ns->v = v;
        ns->cap = cap;
    }
    struct word *x = &ns->v[ns->n];
    size_t l;
    x->first = utf8_next((const unsigned char *)w, wl, &l);
    x->wl = wl;
    x->ascii = true;
    for (size_t k = 0; k < wl; k++)
        x->ascii &= (unsigned char)w[k] < 0x80;
    if (!(x->w = malloc(wl + 1)))
        return false;
    memcpy(x->w, w, wl);
    x->w[wl] = '\0';
    ns->n++;
    return true;
}

static int word_cmp(const void *a, const void *b)
{
    const struct word *x = a, *y = b;
    if (x->first != y->first)
        return x->first < y->first ? -1 : 1;
    return x->wl > y->wl ? -1 : x->wl < y->wl; /* longer first */
}

struct kz_redact_names *kz_redact_names_new(const char *const *names, size_t nnames)
{
    struct kz_redact_names *ns = calloc(1, sizeof *ns);
    char joined[512];
    bool ok = ns != NULL;
    for (size_t i = 0; ok && i < nnames; i++) {
        const char *name = names[i];
        size_t nl = name ? strlen(name) : 0;
        if (nl == 0 || nl >= sizeof joined)
            continue;
        ok = word_add(ns, name, nl);
        /* 山田 花子: also 山田花子, 山田 and 花子. */
        size_t jl = 0, part = 0, sl;
        bool spaced = false;
        for (size_t k = 0; ok && k <= nl; k++) {
            if (k == nl || is_space_at(name + k, &sl)) {
                if (k < nl)
                    spaced = true;
                if (spaced && k > part)
                    ok = word_add(ns, name + part, k - part);
                if (k == nl)
                    break;
                k += sl - 1;
                part = k + 1;
                continue;
            }
            joined[jl++] = name[k];
        }
        if (ok && spaced)
            ok = word_add(ns, joined, jl);
    }
    if (!ok) {
        kz_redact_names_free(ns);
        return NULL;
    }
    if (ns->n)
        qsort(ns->v, ns->n, sizeof *ns->v, word_cmp);
    return ns;
}

void kz_redact_names_free(struct kz_redact_names *ns)
{
    if (!ns)
        return;
    for (size_t i = 0; i < ns->n; i++)
        free(ns->v[i].w);
    free(ns->v);
    free(ns);
}

/* The character that starts at byte b, or SIZE_MAX if b is inside one (binary search). */
static size_t char_at(const struct text *t, size_t b)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->off[mid] < b)
            lo = mid + 1;
        else
            hi = mid;
    }
    return t->off[lo] == b ? lo : SIZE_MAX;
}

static void find_names(const struct text *t, const char *text, size_t len,
                       const struct kz_redact_names *ns, struct spans *s)
{
    if (!ns || !ns->n)
        return;
    for (size_t i = 0; i < t->n; i++) {
        /* The first word starting with this character. */
        size_t lo = 0, hi = ns->n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (ns->v[mid].first < t->cp[i])
                lo = mid + 1;
            else
                hi = mid;
        }
        for (size_t k = lo; k < ns->n && ns->v[k].first == t->cp[i]; k++) {
            const struct word *w = &ns->v[k];
            size_t b = t->off[i], ce;
            if (b + w->wl > len || memcmp(text + b, w->w, w->wl) != 0 ||
                (ce = char_at(t, b + w->wl)) == SIZE_MAX)
                continue;
            /* An ASCII name is a word of its own: "tanaka", not "tanakayama". */
            if (w->ascii && ((i > 0 && ascii_alnum(t->cp[i - 1])) || ascii_alnum(t->cp[ce])))
                continue;
            span_add(s, t, i, ce, KZ_REDACT_NAME);
        }
    }
}

static int span_cmp(const void *a, const void *b)
{
    const struct kz_redact_span *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->end > y->end ? -1 : x->end < y->end;
}

size_t kz_redact_find(const char *text, size_t len, const struct kz_redact_names *names,
                      struct kz_redact_span *out, size_t max)
{
    struct text t = {0};
    struct spans s = {0};
    size_t n = (size_t)-1;
    if (!text_decode(&t, text ? text : "", text ? len : 0))
        goto out;
    find_phones(&t, &s);
    find_postal(&t, &s);
    find_emails(&t, &s);
    find_addresses(&t, &s);
    find_names(&t, text ? text : "", text ? len : 0, names, &s);
    if (s.failed)
        goto out;
    /* In order, the earlier (or, at one start, the longer) span's kind kept over overlaps:
     * phone numbers, postal codes and e-mail addresses were found first. */
    if (s.n)
        qsort(s.v, s.n, sizeof *s.v, span_cmp);
    n = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (n > 0 && s.v[i].start < out[n - 1].end) {
            if (s.v[i].end > out[n - 1].end)
                out[n - 1].end = s.v[i].end;
            continue;
        }
        if (n == max)
            break;
        out[n++] = s.v[i];
    }
out:
    free(t.cp);
    free(t.nc);
    free(t.off);
    free(s.v);
    return n;
}
