/* test_jma.c - JMA's feeds and telegrams (server/jma_parse.c) read from the samples in
 * tests/vectors/jma/ (written to JMA's published schema), and hostile documents refused. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jma_parse.h"

static const struct jma_limits lim = {.max_bytes = 1 << 20, .max_depth = 32, .max_items = 2000};

/* tests/vectors/jma/NAME, whole; the caller frees it. */
static char *load(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", JMA_VECTORS_DIR, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    char *buf = malloc(1 << 20);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

static const struct jma_place *find(const struct jma_telegram *t, enum jma_place_level lv,
                                    const char *code)
{
    for (size_t i = 0; i < t->n_places; i++)
        if (t->places[i].level == lv && strcmp(t->places[i].code, code) == 0)
            return &t->places[i];
    return NULL;
}

Test(jma, quake_per_city)
{
    size_t len;
    char *buf = load("vxse53_ishinomaki_6l.xml", &len);
    struct jma_telegram t;
    cr_assert_eq(jma_telegram_parse(buf, len, &lim, &t), JMA_OK);
    cr_assert_eq(t.kind, JMA_KIND_QUAKE);
    cr_assert_eq(t.status, JMA_STATUS_NORMAL);
    cr_assert_eq(t.info, JMA_INFO_ISSUE);
    cr_assert_str_eq(t.event_id, "20261130030312");
    cr_assert_str_eq(t.serial, "1");
    cr_assert_str_eq(t.origin_time, "2026-11-30T03:03:00+09:00");
    cr_assert_str_eq(t.epicentre, "宮城県沖");
    cr_assert_str_eq(t.magnitude, "6.8");
    cr_assert_eq(t.max_intensity, JMA_INT_6L);
    const struct jma_place *c = find(&t, JMA_PLACE_CITY, "0420200");
    cr_assert_not_null(c);
    cr_assert_str_eq(c->name, "石巻市");
    cr_assert_eq(c->intensity, JMA_INT_6L, "the station's Int must not overwrite the city's");
    c = find(&t, JMA_PLACE_CITY, "0421200");
    cr_assert(c && c->not_received && c->intensity == 0);
    c = find(&t, JMA_PLACE_CITY, "0410100");
    cr_assert(c && c->intensity == JMA_INT_5U);
    c = find(&t, JMA_PLACE_CITY, "0320900");
    cr_assert(c && c->intensity == 4);
    const struct jma_place *p = find(&t, JMA_PLACE_PREF, "04");
    cr_assert(p && p->intensity == JMA_INT_6L && strcmp(p->name, "宮城県") == 0);
    const struct jma_place *a = find(&t, JMA_PLACE_AREA, "222");
    cr_assert(a && a->intensity == JMA_INT_5U);
    cr_assert_eq(t.n_places, 2 + 3 + 4, "2 prefs, 3 areas, 4 cities; got %zu", t.n_places);
    cr_assert_null(find(&t, JMA_PLACE_CITY, "0420232"), "a station is not a city");
    jma_telegram_free(&t);
    free(buf);
}

Test(jma, shindo_drill_by_area)
{
    size_t len;
    char *buf = load("vxse51_drill.xml", &len);
    struct jma_telegram t;
    cr_assert_eq(jma_telegram_parse(buf, len, &lim, &t), JMA_OK);
    cr_assert_eq(t.kind, JMA_KIND_SHINDO);
    cr_assert_eq(t.status, JMA_STATUS_DRILL);
    cr_assert_str_eq(t.serial, "");
    const struct jma_place *a = find(&t, JMA_PLACE_AREA, "220");
    cr_assert(a && a->intensity == JMA_INT_6L);
    for (size_t i = 0; i < t.n_places; i++)
        cr_assert_neq(t.places[i].level, JMA_PLACE_CITY);
    jma_telegram_free(&t);
    free(buf);
}

Test(jma, tsunami)
{
    size_t len;
    char *buf = load("vtse41_warning.xml", &len);
    struct jma_telegram t;
    cr_assert_eq(jma_telegram_parse(buf, len, &lim, &t), JMA_OK);
    cr_assert_eq(t.kind, JMA_KIND_TSUNAMI);
    cr_assert_eq(t.n_places, 2);
    const struct jma_place *m = find(&t, JMA_PLACE_TSUNAMI, "220");
    cr_assert(m && strcmp(m->kind_code, "51") == 0 && strcmp(m->kind_name, "津波警報") == 0,
              "Kind, not LastKind");
    cr_assert(jma_tsunami_is_warning(m->kind_code));
    const struct jma_place *i = find(&t, JMA_PLACE_TSUNAMI, "210");
    cr_assert(i && !jma_tsunami_is_warning(i->kind_code));
    cr_assert_str_eq(t.epicentre, "宮城県沖");
    jma_telegram_free(&t);
    free(buf);
}

Test(jma, special_warning_only)
{
    size_t len;
    char *buf = load("vpww53_special.xml", &len);
    struct jma_telegram t;
    cr_assert_eq(jma_telegram_parse(buf, len, &lim, &t), JMA_OK);
    cr_assert_eq(t.kind, JMA_KIND_WARNING);
    cr_assert_eq(t.n_places, 1, "only 特別警報 become places; got %zu", t.n_places);
    cr_assert_eq(t.places[0].level, JMA_PLACE_WARNING);
    cr_assert_str_eq(t.places[0].code, "0420200");
    cr_assert_str_eq(t.places[0].kind_name, "大雨特別警報");
    cr_assert_str_eq(t.places[0].kind_status, "発表");
    jma_telegram_free(&t);
    free(buf);
}

Test(jma, feed_entries)
{
    size_t len;
    char *buf = load("feed_eqvol.xml", &len);
    struct jma_feed f;
    cr_assert_eq(jma_feed_parse(buf, len, &lim, &f), JMA_OK);
    cr_assert_eq(f.n, 2);
    cr_assert_str_eq(f.entries[0].id, "urn:uuid:8a0e3f1c-6b1e-3a52-9a55-1c2d3e4f5a6b");
    cr_assert_str_eq(f.entries[0].title, "震源・震度に関する情報");
    cr_assert_str_eq(f.entries[0].updated, "2026-11-29T18:09:52Z");
    cr_assert_str_eq(f.entries[0].href, "https://www.data.jma.go.jp/developer/xml/data/"
                                        "20261129180952_0_VXSE53_010000.xml");
    cr_assert_str_eq(f.entries[1].title, "震度速報");
    jma_feed_free(&f);
    /* A telegram is not a feed, nor a feed a telegram. */
    struct jma_telegram t;
    cr_assert_eq(jma_telegram_parse(buf, len, &lim, &t), JMA_ERR_NOT_JMA);
    free(buf);
    buf = load("vxse51_drill.xml", &len);
    cr_assert_eq(jma_feed_parse(buf, len, &lim, &f), JMA_ERR_NOT_JMA);
    cr_assert_eq(f.n, 0);
    free(buf);
}

Test(jma, intensity_codes)
{
    cr_assert_eq(jma_intensity_parse("5-"), JMA_INT_5L);
    cr_assert_eq(jma_intensity_parse("6+"), JMA_INT_6U);
    cr_assert_eq(jma_intensity_parse("7"), JMA_INT_7);
    cr_assert_eq(jma_intensity_parse("5"), 0);
    cr_assert_eq(jma_intensity_parse(""), 0);
    cr_assert_str_eq(jma_intensity_name(JMA_INT_6L), "震度6弱");
    cr_assert_str_eq(jma_intensity_name(42), "震度不明");
}

static enum jma_err tg(const char *doc, const struct jma_limits *l)
{
    struct jma_telegram t;
    enum jma_err e = jma_telegram_parse(doc, strlen(doc), l, &t);
    cr_assert(e != JMA_OK || t.kind != JMA_KIND_OTHER || t.n_places == 0);
    jma_telegram_free(&t);
    return e;
}

Test(jma, hostile)
{
    cr_assert_eq(tg("", &lim), JMA_ERR_SYNTAX);
    cr_assert_eq(tg("<Report><Control><Title>震度速報", &lim), JMA_ERR_SYNTAX);
    cr_assert_eq(tg("\xff\xfe<Report/>", &lim), JMA_ERR_SYNTAX);
    cr_assert_eq(tg("<html><body>503</body></html>", &lim), JMA_ERR_NOT_JMA);
    cr_assert_eq(tg("<Report/>", &lim), JMA_ERR_NOT_JMA, "no Control/Title");
    /* Entities would need a DOCTYPE: none is accepted (billion laughs, external entities). */
    cr_assert_eq(tg("<!DOCTYPE r [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;&a;\">]>"
                    "<Report><Control><Title>&b;</Title></Control></Report>",
                    &lim),
                 JMA_ERR_DOCTYPE);
    cr_assert_eq(tg("<!DOCTYPE r SYSTEM \"file:///etc/passwd\"><Report/>", &lim), JMA_ERR_DOCTYPE);
    /* Depth: 40 nested elements against 32. */
    char deep[40 * 7 + 1] = "";
    for (int i = 0; i < 40; i++)
        strcat(deep, "<a>");
    struct jma_limits l = lim;
    cr_assert_eq(tg(deep, &l), JMA_ERR_NOT_JMA, "the root is checked first");
    char deep2[64 * 8] = "<Report>";
    for (int i = 0; i < 40; i++)
        strcat(deep2, "<a/><a>");
    cr_assert_eq(tg(deep2, &l), JMA_ERR_TOO_DEEP);
    /* Size, before any parsing. */
    l.max_bytes = 10;
    cr_assert_eq(tg("<Report><Control/></Report>", &l), JMA_ERR_TOO_BIG);
    /* Places: three cities against two. */
    l = lim;
    l.max_items = 2;
    const char *many = "<Report><Control><Title>震源・震度に関する情報</Title></Control><Body>"
                       "<Intensity><Observation><Pref><Area><City/><City/><City/></Area></Pref>"
                       "</Observation></Intensity></Body></Report>";
    cr_assert_eq(tg(many, &l), JMA_ERR_TOO_MANY);
    l.max_items = 5;
    cr_assert_eq(tg(many, &l), JMA_OK);
}

Test(jma, long_values_cut_at_characters)
{
    /* 100 three-byte characters into a 64-byte name: cut at 63 bytes = 21 characters. */
    char doc[2048] = "<Report><Control><Title>震源・震度に関する情報</Title></Control><Body>"
                     "<Intensity><Observation><Pref><Area><City><Name>";
    for (int i = 0; i < 100; i++)
        strcat(doc, "市");
    strcat(doc, "</Name><Code>0420200</Code><MaxInt>7</MaxInt></City></Area></Pref>"
                "</Observation></Intensity></Body></Report>");
    struct jma_telegram t;
    cr_assert_eq(jma_telegram_parse(doc, strlen(doc), &lim, &t), JMA_OK);
    const struct jma_place *c = find(&t, JMA_PLACE_CITY, "0420200");
    cr_assert(c && strlen(c->name) == 63 && c->intensity == JMA_INT_7);
    jma_telegram_free(&t);
}
