/* test_jma_rules.c - the alert rules (server/jma_rules.c): settings and overrides read or
 * refused, and the samples of tests/vectors/jma/ matched against them. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jma.h"

static const struct jma_limits lim = {.max_bytes = 1 << 20, .max_depth = 32, .max_items = 2000};

static void parse(const char *name, struct jma_telegram *t)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", JMA_VECTORS_DIR, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    static char buf[1 << 20];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    cr_assert_eq(jma_telegram_parse(buf, len, &lim, t), JMA_OK, "%s", name);
}

/* The rules of the defaults with these overrides (a JSON object's members). */
static bool rules(const char *members, struct jma_rules *r, char *why)
{
    struct kz_config cfg;
    kz_config_defaults(&cfg);
    char json[1024];
    snprintf(json, sizeof json, "{%s}", members);
    return jma_rules_load(&cfg, json, r, why, 192);
}

/* The strength t gets under the overrides, and the matched places' names and what, joined. */
static int strength(const char *file, const char *members, char *what, size_t n)
{
    struct jma_rules r;
    char why[192];
    cr_assert(rules(members, &r, why), "%s: %s", members, why);
    struct jma_telegram t;
    parse(file, &t);
    cJSON *places = cJSON_CreateArray();
    int st = jma_rules_match(&r, &t, places);
    what[0] = '\0';
    const cJSON *p;
    cJSON_ArrayForEach(p, places)
    {
        size_t len = strlen(what);
        snprintf(what + len, n - len, "%s:%s;", cJSON_GetObjectItem(p, "name")->valuestring,
                 cJSON_GetObjectItem(p, "what")->valuestring);
    }
    cJSON_Delete(places);
    jma_telegram_free(&t);
    return st;
}

Test(jma_rules, defaults_and_refusals)
{
    struct jma_rules r;
    char why[192];
    cr_assert(rules("", &r, why), "%s", why);
    cr_assert_eq(r.ntowns, 0);
    cr_assert_eq(r.town_min, JMA_INT_5L);
    cr_assert_eq(r.pref_min, JMA_INT_6L);
    cr_assert_eq(r.delay_s, 180);
    cr_assert(rules("\"towns\":\"0420200 0410100\",\"pref_min_int\":\"\"", &r, why), "%s", why);
    cr_assert(r.ntowns == 2 && r.pref_min == 0);
    cr_assert_not(rules("\"towns\":\"04202\"", &r, why), "a 5-digit code");
    cr_assert(strstr(why, "7-digit"), "%s", why);
    cr_assert_not(rules("\"town_min_int\":\"5\"", &r, why));
    cr_assert_not(rules("\"tsunami_areas\":\"22\"", &r, why));
    cr_assert_not(rules("\"choices\":\"無事\"", &r, why), "one choice");
    cr_assert_not(rules("\"delay_s\":-1", &r, why));
    cr_assert_not(rules("\"towns\":7", &r, why), "not a string");
    struct kz_config cfg;
    kz_config_defaults(&cfg);
    cr_assert_not(jma_rules_load(&cfg, "[1]", &r, why, sizeof why));
}

Test(jma_rules, quake_town_prefecture_and_not_received)
{
    char what[512];
    cr_assert_eq(strength("vxse53_ishinomaki_6l.xml", "\"towns\":\"0420200\",\"pref_min_int\":\"\"",
                          what, sizeof what),
                 JMA_INT_6L);
    cr_assert_str_eq(what, "石巻市:震度6弱;");
    /* 仙台市青葉区 had 5強: under a 6弱 threshold, nothing; the prefecture (6弱) does. */
    cr_assert_eq(strength("vxse53_ishinomaki_6l.xml",
                          "\"towns\":\"0410100\",\"town_min_int\":\"6-\",\"pref_min_int\":\"\"",
                          what, sizeof what),
                 0);
    cr_assert_eq(strength("vxse53_ishinomaki_6l.xml",
                          "\"towns\":\"0410100\",\"town_min_int\":\"6-\"", what, sizeof what),
                 JMA_INT_6L);
    cr_assert_str_eq(what, "宮城県:震度6弱;");
    /* 登米市 did not report: possibly strong at a 5弱 threshold, not at 6弱. */
    cr_assert_eq(strength("vxse53_ishinomaki_6l.xml", "\"towns\":\"0421200\",\"pref_min_int\":\"\"",
                          what, sizeof what),
                 JMA_INT_5L);
    cr_assert(strstr(what, "未入電"), "%s", what);
    cr_assert_eq(strength("vxse53_ishinomaki_6l.xml",
                          "\"towns\":\"0421200\",\"town_min_int\":\"6-\",\"pref_min_int\":\"\"",
                          what, sizeof what),
                 0);
    /* A town elsewhere (岩手県 一関市 had 4). */
    cr_assert_eq(strength("vxse53_ishinomaki_6l.xml", "\"towns\":\"0320900\"", what, sizeof what),
                 0);
    /* 震度速報 gives areas only: the prefecture rule, from its areas' intensity. */
    cr_assert_eq(strength("vxse51_drill.xml", "\"towns\":\"0420200\"", what, sizeof what),
                 JMA_INT_6L);
    cr_assert_eq(strength("vxse51_drill.xml", "\"towns\":\"0420200\",\"pref_min_int\":\"\"", what,
                          sizeof what),
                 0);
}

Test(jma_rules, tsunami_and_special_warnings)
{
    char what[512];
    cr_assert_eq(strength("vtse41_warning.xml", "\"tsunami_areas\":\"220\"", what, sizeof what), 2);
    cr_assert_str_eq(what, "宮城県:津波警報;");
    cr_assert_eq(strength("vtse41_warning.xml", "\"tsunami_areas\":\"210\"", what, sizeof what), 0,
                 "an advisory (注意報) is not a warning");
    cr_assert_eq(strength("vpww53_special.xml", "\"towns\":\"0420200\"", what, sizeof what), 1);
    cr_assert_str_eq(what, "石巻市:大雨特別警報;");
    cr_assert_eq(strength("vpww53_special.xml", "\"towns\":\"0420200\",\"special_warnings\":false",
                          what, sizeof what),
                 0);
    cr_assert_eq(strength("vpww53_special.xml", "\"towns\":\"0410100\"", what, sizeof what), 0,
                 "an ordinary 警報");
}
