/* jma_parse.c - reads JMA's Atom feeds and disaster-information telegrams into plain structs
 * (jma_parse.h says what and why).
 *
 * expat, streaming: the parser keeps only the stack of open elements' local names and the text
 * of the element being read, so memory is bounded by max_depth and one text buffer whatever the
 * document holds; values are taken when their element ends, by matching the path's tail. */
#include "jma_parse.h"

#include <expat.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Longest text of one element that is kept (JMA's longest values, headlines, are ~600 bytes;
 * everything we read is far shorter). Longer text is cut, never an error. */
#define JMA_TEXT_MAX 1024
/* Longest local name kept on the stack; longer names never match ours. */
#define JMA_NAME_MAX 32

const char *jma_err_name(enum jma_err e)
{
    switch (e) {
    case JMA_OK:
        return "ok";
    case JMA_ERR_TOO_BIG:
        return "too_big";
    case JMA_ERR_TOO_DEEP:
        return "too_deep";
    case JMA_ERR_TOO_MANY:
        return "too_many";
    case JMA_ERR_DOCTYPE:
        return "doctype";
    case JMA_ERR_SYNTAX:
        return "syntax";
    case JMA_ERR_NOT_JMA:
        return "not_jma";
    case JMA_ERR_NOMEM:
        return "nomem";
    }
    return "unknown";
}

int jma_intensity_parse(const char *code)
{
    static const char *const codes[] = {"1", "2", "3", "4", "5-", "5+", "6-", "6+", "7"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(code, codes[i]) == 0)
            return (int)i + 1;
    return JMA_INT_NONE;
}

const char *jma_intensity_name(int intensity)
{
    static const char *const names[] = {"震度不明", "震度1",   "震度2",   "震度3",   "震度4",
                                        "震度5弱",  "震度5強", "震度6弱", "震度6強", "震度7"};
    if (intensity < 0 || intensity > JMA_INT_7)
        return names[0];
    return names[intensity];
}

bool jma_tsunami_is_warning(const char *kind_code)
{
    return strcmp(kind_code, "51") == 0 || strcmp(kind_code, "52") == 0 ||
           strcmp(kind_code, "53") == 0;
}

/* Copies src into dst[size], cut at a character boundary (expat hands us valid UTF-8; a cut
 * inside a character would put invalid UTF-8 into a notice). */
static void copy_cut(char *dst, size_t size, const char *src, bool *cut)
{
    size_t n = strlen(src);
    if (cut)
        *cut = n >= size;
    if (n >= size) {
        n = size - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

enum doc_kind { DOC_FEED, DOC_TELEGRAM };

struct pstate {
    XML_Parser xp;
    const struct jma_limits *lim;
    enum doc_kind want;
    enum jma_err err;
    bool root_ok;
    int depth;                   /* open elements */
    char (*stack)[JMA_NAME_MAX]; /* max_depth names */
    char text[JMA_TEXT_MAX + 1];
    size_t text_len;
    /* feed */
    struct jma_feed *feed;
    size_t feed_cap;
    /* telegram */
    struct jma_telegram *tg;
    size_t places_cap;
    ptrdiff_t cur_pref, cur_area, cur_city, cur_tsunami;
    size_t item_first; /* WARNING: first place of the open Item */
    bool in_kind;      /* WARNING: inside a Kind of an Item */
    char kind_name[64], kind_code[8], kind_status[32];
};

static void fail(struct pstate *p, enum jma_err e)
{
    if (p->err == JMA_OK)
        p->err = e;
    XML_StopParser(p->xp, XML_FALSE);
}

static const char *local_name(const XML_Char *name)
{
    const char *sep = strrchr(name, '\x01');
    return sep ? sep + 1 : name;
}

/* Whether the open elements end with the '/'-separated names of tail ("Area/City/Code"). */
static bool at(const struct pstate *p, const char *tail)
{
    int n = 1;
    for (const char *c = tail; *c; c++)
        n += *c == '/';
    if (n > p->depth)
        return false;
    const char *c = tail;
    for (int i = p->depth - n; i < p->depth; i++) {
        size_t len = strcspn(c, "/");
        if (strlen(p->stack[i]) != len || memcmp(p->stack[i], c, len) != 0)
            return false;
        c += len + (c[len] == '/');
    }
    return true;
}

static struct jma_place *place_new(struct pstate *p, enum jma_place_level level)
{
    struct jma_telegram *t = p->tg;
    if (t->n_places >= (size_t)p->lim->max_items) {
        fail(p, JMA_ERR_TOO_MANY);
        return NULL;
    }
    if (t->n_places == p->places_cap) {
        size_t cap = p->places_cap ? p->places_cap * 2 : 16;
        struct jma_place *np = realloc(t->places, cap * sizeof *np);
        if (!np) {
            fail(p, JMA_ERR_NOMEM);
            return NULL;
        }
        t->places = np;
        p->places_cap = cap;
    }
    struct jma_place *pl = &t->places[t->n_places++];
    memset(pl, 0, sizeof *pl);
    pl->level = level;
    return pl;
}

static struct jma_place *place_at(struct pstate *p, ptrdiff_t i)
{
    return i >= 0 && (size_t)i < p->tg->n_places ? &p->tg->places[i] : NULL;
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    struct pstate *p = ud;
    if (p->err != JMA_OK)
        return;
    if (p->depth >= p->lim->max_depth) {
        fail(p, JMA_ERR_TOO_DEEP);
        return;
    }
    const char *ln = local_name(name);
    if (p->depth == 0) {
        p->root_ok = strcmp(ln, p->want == DOC_FEED ? "feed" : "Report") == 0;
        if (!p->root_ok) {
            fail(p, JMA_ERR_NOT_JMA);
            return;
        }
    }
    copy_cut(p->stack[p->depth], JMA_NAME_MAX, ln, NULL);
    p->depth++;
    p->text_len = 0;

    if (p->want == DOC_FEED) {
        if (at(p, "feed/entry")) {
            struct jma_feed *f = p->feed;
            if (f->n >= (size_t)p->lim->max_items) {
                fail(p, JMA_ERR_TOO_MANY);
                return;
            }
            if (f->n == p->feed_cap) {
                size_t cap = p->feed_cap ? p->feed_cap * 2 : 16;
                struct jma_entry *ne = realloc(f->entries, cap * sizeof *ne);
                if (!ne) {
                    fail(p, JMA_ERR_NOMEM);
                    return;
                }
                f->entries = ne;
                p->feed_cap = cap;
            }
            memset(&f->entries[f->n++], 0, sizeof f->entries[0]);
        } else if (at(p, "feed/entry/link") && p->feed->n > 0) {
            /* JMA gives one link per entry, the document's; an Atom entry may carry others
             * (rel="related"): the first without rel or with rel="alternate" wins. */
            struct jma_entry *e = &p->feed->entries[p->feed->n - 1];
            const char *href = NULL, *rel = NULL;
            for (size_t i = 0; attrs[i]; i += 2) {
                const char *an = local_name(attrs[i]);
                if (strcmp(an, "href") == 0)
                    href = attrs[i + 1];
                else if (strcmp(an, "rel") == 0)
                    rel = attrs[i + 1];
            }
            if (href && !e->href[0] && (!rel || strcmp(rel, "alternate") == 0))
                copy_cut(e->href, sizeof e->href, href, &e->href_cut);
        }
        return;
    }

    /* Telegram: places open where their element opens, so that values read later in it land
     * on the right one. */
    if (at(p, "Observation/Pref")) {
        if (place_new(p, JMA_PLACE_PREF))
            p->cur_pref = (ptrdiff_t)p->tg->n_places - 1;
        p->cur_area = p->cur_city = -1;
    } else if (at(p, "Observation/Pref/Area")) {
        if (place_new(p, JMA_PLACE_AREA))
            p->cur_area = (ptrdiff_t)p->tg->n_places - 1;
        p->cur_city = -1;
    } else if (at(p, "Observation/Pref/Area/City")) {
        if (place_new(p, JMA_PLACE_CITY))
            p->cur_city = (ptrdiff_t)p->tg->n_places - 1;
    } else if (at(p, "Tsunami/Forecast/Item")) {
        if (place_new(p, JMA_PLACE_TSUNAMI))
            p->cur_tsunami = (ptrdiff_t)p->tg->n_places - 1;
    } else if (at(p, "Warning/Item")) {
        p->item_first = p->tg->n_places;
    } else if (at(p, "Warning/Item/Kind")) {
        p->in_kind = true;
        p->kind_name[0] = p->kind_code[0] = p->kind_status[0] = '\0';
    }
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    struct pstate *p = ud;
    if (p->err != JMA_OK)
        return;
    size_t room = JMA_TEXT_MAX - p->text_len;
    size_t n = (size_t)len < room ? (size_t)len : room;
    memcpy(p->text + p->text_len, s, n);
    p->text_len += n;
}

static enum jma_status status_parse(const char *s)
{
    if (strcmp(s, "通常") == 0)
        return JMA_STATUS_NORMAL;
    if (strcmp(s, "訓練") == 0)
        return JMA_STATUS_DRILL;
    if (strcmp(s, "試験") == 0)
        return JMA_STATUS_TEST;
    return JMA_STATUS_UNKNOWN;
}

static enum jma_info info_parse(const char *s)
{
    if (strcmp(s, "発表") == 0)
        return JMA_INFO_ISSUE;
    if (strcmp(s, "訂正") == 0)
        return JMA_INFO_CORRECT;
    if (strcmp(s, "取消") == 0)
        return JMA_INFO_CANCEL;
    return JMA_INFO_UNKNOWN;
}

static enum jma_kind kind_parse(const char *title)
{
    if (strcmp(title, "震度速報") == 0)
        return JMA_KIND_SHINDO;
    if (strcmp(title, "震源・震度に関する情報") == 0)
        return JMA_KIND_QUAKE;
    if (strncmp(title, "津波警報・注意報・予報", strlen("津波警報・注意報・予報")) == 0)
        return JMA_KIND_TSUNAMI;
    if (strcmp(title, "気象特別警報・警報・注意報") == 0)
        return JMA_KIND_WARNING;
    return JMA_KIND_OTHER;
}

/* Text with surrounding white space (JMA indents) dropped, in place. */
static const char *text_trim(struct pstate *p)
{
    p->text[p->text_len] = '\0';
    char *s = p->text;
    while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

static void end_feed(struct pstate *p, const char *v)
{
    if (p->feed->n == 0)
        return;
    struct jma_entry *e = &p->feed->entries[p->feed->n - 1];
    if (at(p, "feed/entry/id"))
        copy_cut(e->id, sizeof e->id, v, NULL);
    else if (at(p, "feed/entry/title"))
        copy_cut(e->title, sizeof e->title, v, NULL);
    else if (at(p, "feed/entry/updated"))
        copy_cut(e->updated, sizeof e->updated, v, NULL);
}

static void end_telegram(struct pstate *p, const char *v)
{
    struct jma_telegram *t = p->tg;
    struct jma_place *pl;
    if (at(p, "Report/Control/Title")) {
        copy_cut(t->control_title, sizeof t->control_title, v, NULL);
        t->kind = kind_parse(v);
    } else if (at(p, "Report/Control/Status"))
        t->status = status_parse(v);
    else if (at(p, "Report/Head/Title"))
        copy_cut(t->head_title, sizeof t->head_title, v, NULL);
    else if (at(p, "Report/Head/ReportDateTime"))
        copy_cut(t->report_time, sizeof t->report_time, v, NULL);
    else if (at(p, "Report/Head/EventID"))
        copy_cut(t->event_id, sizeof t->event_id, v, NULL);
    else if (at(p, "Report/Head/InfoType"))
        t->info = info_parse(v);
    else if (at(p, "Report/Head/Serial"))
        copy_cut(t->serial, sizeof t->serial, v, NULL);
    else if (at(p, "Body/Earthquake/OriginTime"))
        copy_cut(t->origin_time, sizeof t->origin_time, v, NULL);
    else if (at(p, "Body/Earthquake/Hypocenter/Area/Name"))
        copy_cut(t->epicentre, sizeof t->epicentre, v, NULL);
    else if (at(p, "Body/Earthquake/Magnitude"))
        copy_cut(t->magnitude, sizeof t->magnitude, v, NULL);
    else if (at(p, "Body/Intensity/Observation/MaxInt"))
        t->max_intensity = jma_intensity_parse(v);
    /* Intensity: Pref, Area and City share the names Name, Code and MaxInt. */
    else if (at(p, "Observation/Pref/Area/City/Name") && (pl = place_at(p, p->cur_city)))
        copy_cut(pl->name, sizeof pl->name, v, NULL);
    else if (at(p, "Observation/Pref/Area/City/Code") && (pl = place_at(p, p->cur_city)))
        copy_cut(pl->code, sizeof pl->code, v, NULL);
    else if (at(p, "Observation/Pref/Area/City/MaxInt") && (pl = place_at(p, p->cur_city)))
        pl->intensity = jma_intensity_parse(v);
    else if (at(p, "Observation/Pref/Area/City/Condition") && (pl = place_at(p, p->cur_city)))
        pl->not_received = strstr(v, "未入電") != NULL;
    else if (at(p, "Observation/Pref/Area/Name") && (pl = place_at(p, p->cur_area)))
        copy_cut(pl->name, sizeof pl->name, v, NULL);
    else if (at(p, "Observation/Pref/Area/Code") && (pl = place_at(p, p->cur_area)))
        copy_cut(pl->code, sizeof pl->code, v, NULL);
    else if (at(p, "Observation/Pref/Area/MaxInt") && (pl = place_at(p, p->cur_area)))
        pl->intensity = jma_intensity_parse(v);
    else if (at(p, "Observation/Pref/Name") && (pl = place_at(p, p->cur_pref)))
        copy_cut(pl->name, sizeof pl->name, v, NULL);
    else if (at(p, "Observation/Pref/Code") && (pl = place_at(p, p->cur_pref)))
        copy_cut(pl->code, sizeof pl->code, v, NULL);
    else if (at(p, "Observation/Pref/MaxInt") && (pl = place_at(p, p->cur_pref)))
        pl->intensity = jma_intensity_parse(v);
    /* Tsunami: Item/Area and Item/Category/Kind (LastKind is what it was before). */
    else if (at(p, "Forecast/Item/Area/Name") && (pl = place_at(p, p->cur_tsunami)))
        copy_cut(pl->name, sizeof pl->name, v, NULL);
    else if (at(p, "Forecast/Item/Area/Code") && (pl = place_at(p, p->cur_tsunami)))
        copy_cut(pl->code, sizeof pl->code, v, NULL);
    else if (at(p, "Forecast/Item/Category/Kind/Name") && (pl = place_at(p, p->cur_tsunami)))
        copy_cut(pl->kind_name, sizeof pl->kind_name, v, NULL);
    else if (at(p, "Forecast/Item/Category/Kind/Code") && (pl = place_at(p, p->cur_tsunami)))
        copy_cut(pl->kind_code, sizeof pl->kind_code, v, NULL);
    /* Warnings: an Item lists its Kinds, then its Area. Only special warnings (特別警報) become
     * places: a prefecture's telegram lists every advisory of every town. */
    else if (p->in_kind && at(p, "Warning/Item/Kind/Name"))
        copy_cut(p->kind_name, sizeof p->kind_name, v, NULL);
    else if (p->in_kind && at(p, "Warning/Item/Kind/Code"))
        copy_cut(p->kind_code, sizeof p->kind_code, v, NULL);
    else if (p->in_kind && at(p, "Warning/Item/Kind/Status"))
        copy_cut(p->kind_status, sizeof p->kind_status, v, NULL);
    else if (at(p, "Warning/Item/Area/Name") || at(p, "Warning/Item/Area/Code")) {
        bool is_code = at(p, "Area/Code");
        for (size_t i = p->item_first; i < t->n_places; i++) {
            pl = &t->places[i];
            if (is_code)
                copy_cut(pl->code, sizeof pl->code, v, NULL);
            else
                copy_cut(pl->name, sizeof pl->name, v, NULL);
        }
    }
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    (void)name;
    struct pstate *p = ud;
    /* expat may still call this after a stop (an empty element stopped in on_start): after an
     * error nothing is read any more. */
    if (p->err != JMA_OK)
        return;
    const char *v = text_trim(p);
    if (p->want == DOC_FEED)
        end_feed(p, v);
    else {
        end_telegram(p, v);
        if (p->in_kind && at(p, "Warning/Item/Kind")) {
            p->in_kind = false;
            if (strstr(p->kind_name, "特別警報")) {
                struct jma_place *pl = place_new(p, JMA_PLACE_WARNING);
                if (pl) {
                    copy_cut(pl->kind_name, sizeof pl->kind_name, p->kind_name, NULL);
                    copy_cut(pl->kind_code, sizeof pl->kind_code, p->kind_code, NULL);
                    copy_cut(pl->kind_status, sizeof pl->kind_status, p->kind_status, NULL);
                }
            }
        }
    }
    p->depth--;
    p->text_len = 0;
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal)
{
    (void)name, (void)sysid, (void)pubid, (void)has_internal;
    fail(ud, JMA_ERR_DOCTYPE);
}

static enum jma_err run(struct pstate *p, const char *buf, size_t len)
{
    if (len > p->lim->max_bytes)
        return JMA_ERR_TOO_BIG;
    if (p->lim->max_depth < 1 || len > INT32_MAX)
        return JMA_ERR_TOO_DEEP;
    p->stack = calloc((size_t)p->lim->max_depth, sizeof *p->stack);
    /* '\x01' separates namespace and local name: it cannot occur in an XML name. */
    p->xp = p->stack ? XML_ParserCreateNS("UTF-8", '\x01') : NULL;
    if (!p->xp) {
        free(p->stack);
        return JMA_ERR_NOMEM;
    }
    XML_SetUserData(p->xp, p);
    XML_SetElementHandler(p->xp, on_start, on_end);
    XML_SetCharacterDataHandler(p->xp, on_text);
    XML_SetStartDoctypeDeclHandler(p->xp, on_doctype);
    enum XML_Status st = XML_Parse(p->xp, buf, (int)len, XML_TRUE);
    if (st != XML_STATUS_OK && p->err == JMA_OK)
        p->err = JMA_ERR_SYNTAX;
    if (p->err == JMA_OK && !p->root_ok)
        p->err = JMA_ERR_NOT_JMA;
    XML_ParserFree(p->xp);
    free(p->stack);
    return p->err;
}

enum jma_err jma_feed_parse(const char *buf, size_t len, const struct jma_limits *limits,
                            struct jma_feed *out)
{
    memset(out, 0, sizeof *out);
    struct pstate p = {.lim = limits, .want = DOC_FEED, .feed = out};
    enum jma_err e = run(&p, buf, len);
    if (e != JMA_OK)
        jma_feed_free(out);
    return e;
}

void jma_feed_free(struct jma_feed *f)
{
    free(f->entries);
    f->entries = NULL;
    f->n = 0;
}

enum jma_err jma_telegram_parse(const char *buf, size_t len, const struct jma_limits *limits,
                                struct jma_telegram *out)
{
    memset(out, 0, sizeof *out);
    struct pstate p = {.lim = limits,
                       .want = DOC_TELEGRAM,
                       .tg = out,
                       .cur_pref = -1,
                       .cur_area = -1,
                       .cur_city = -1,
                       .cur_tsunami = -1};
    enum jma_err e = run(&p, buf, len);
    if (e == JMA_OK && out->control_title[0] == '\0')
        e = JMA_ERR_NOT_JMA; /* a Report without Control/Title is not a telegram */
    if (e != JMA_OK)
        jma_telegram_free(out);
    return e;
}

void jma_telegram_free(struct jma_telegram *t)
{
    free(t->places);
    memset(t, 0, sizeof *t);
}
