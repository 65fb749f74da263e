/* jma_rules.c - the alert rules (docs/alerts.md): read from the jma_* settings and what an
 * admin set over them (alert.rules.set), shown (alert.rules), and matched against a telegram's
 * places. Pure over its arguments: no store, no clock. */
#include "jma.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- rules ---- */

static int codes_parse(const char *text, char out[][8], int max, size_t digits, char *why,
                       size_t whylen)
{
    char buf[1024], *save = NULL;
    int n = 0;
    snprintf(buf, sizeof buf, "%s", text);
    for (char *t = strtok_r(buf, " ,", &save); t; t = strtok_r(NULL, " ,", &save)) {
        if (strlen(t) != digits || strspn(t, "0123456789") != digits) {
            snprintf(why, whylen, "'%.16s' is not a %zu-digit code", t, digits);
            return -1;
        }
        if (n == max) {
            snprintf(why, whylen, "more than %d codes", max);
            return -1;
        }
        memcpy(out[n++], t, digits + 1);
    }
    return n;
}

static bool rule_str(const cJSON *o, const char *key, char *dst, size_t cap, char *why,
                     size_t whylen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v)
        return true;
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap) {
        snprintf(why, whylen, "rule %s must be a string under %zu bytes", key, cap);
        return false;
    }
    snprintf(dst, cap, "%s", v->valuestring);
    return true;
}

bool jma_rules_load(const struct kz_config *cfg, const char *overrides, struct jma_rules *r,
                    char *why, size_t whylen)
{
    memset(r, 0, sizeof *r);
    char towns[sizeof cfg->jma_towns], tsunami[sizeof cfg->jma_tsunami_areas];
    char town_min[8], pref_min[8];
    snprintf(towns, sizeof towns, "%s", cfg->jma_towns);
    snprintf(tsunami, sizeof tsunami, "%s", cfg->jma_tsunami_areas);
    snprintf(town_min, sizeof town_min, "%s", cfg->jma_town_min_int);
    snprintf(pref_min, sizeof pref_min, "%s", cfg->jma_pref_min_int);
    r->special_warnings = cfg->jma_special_warnings;
    r->drill = cfg->jma_drill;
    r->delay_s = cfg->jma_delay_s;
    r->aftershock_window_s = cfg->jma_aftershock_window_s;
    snprintf(r->audience, sizeof r->audience, "%s", cfg->jma_audience);
    snprintf(r->title, sizeof r->title, "%s", cfg->jma_title);
    snprintf(r->body, sizeof r->body, "%s", cfg->jma_body);
    snprintf(r->choices, sizeof r->choices, "%s", cfg->jma_choices);
    if (overrides) {
        cJSON *o = cJSON_Parse(overrides);
        bool ok = cJSON_IsObject(o);
        if (!ok)
            snprintf(why, whylen, "the stored rules are not a JSON object");
        ok = ok && rule_str(o, "towns", towns, sizeof towns, why, whylen) &&
             rule_str(o, "tsunami_areas", tsunami, sizeof tsunami, why, whylen) &&
             rule_str(o, "town_min_int", town_min, sizeof town_min, why, whylen) &&
             rule_str(o, "pref_min_int", pref_min, sizeof pref_min, why, whylen) &&
             rule_str(o, "audience", r->audience, sizeof r->audience, why, whylen) &&
             rule_str(o, "title", r->title, sizeof r->title, why, whylen) &&
             rule_str(o, "body", r->body, sizeof r->body, why, whylen) &&
             rule_str(o, "choices", r->choices, sizeof r->choices, why, whylen);
        const cJSON *v;
        if (ok && cJSON_IsBool(v = cJSON_GetObjectItemCaseSensitive(o, "special_warnings")))
            r->special_warnings = cJSON_IsTrue(v);
        if (ok && cJSON_IsBool(v = cJSON_GetObjectItemCaseSensitive(o, "drill")))
            r->drill = cJSON_IsTrue(v);
        if (ok && cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(o, "delay_s")))
            r->delay_s = (int64_t)v->valuedouble;
        if (ok && cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(o, "aftershock_window_s")))
            r->aftershock_window_s = (int64_t)v->valuedouble;
        cJSON_Delete(o);
        if (!ok)
            return false;
    }
    if ((r->ntowns = codes_parse(towns, r->towns, JMA_CODES_MAX, 7, why, whylen)) < 0 ||
        (r->ntsunami = codes_parse(tsunami, r->tsunami, JMA_CODES_MAX, 3, why, whylen)) < 0)
        return false;
    if (!(r->town_min = jma_intensity_parse(town_min))) {
        snprintf(why, whylen, "town_min_int '%s' is not 1-4, 5-, 5+, 6-, 6+ or 7", town_min);
        return false;
    }
    if (pref_min[0] && !(r->pref_min = jma_intensity_parse(pref_min))) {
        snprintf(why, whylen, "pref_min_int '%s' is not 1-4, 5-, 5+, 6-, 6+, 7 or empty", pref_min);
        return false;
    }
    if (r->delay_s < 0 || r->delay_s > 86400 || r->aftershock_window_s < 0 ||
        r->aftershock_window_s > 30 * 86400) {
        snprintf(why, whylen, "delay_s is 0-86400 and aftershock_window_s 0-2592000");
        return false;
    }
    int nchoices = 1;
    for (const char *c = r->choices; *c; c++)
        nchoices += *c == '|';
    if (nchoices < 2 || !r->audience[strspn(r->audience, " ")] || !r->title[0] || !r->body[0]) {
        snprintf(why, whylen,
                 "the roll-call needs a title, a body, an audience and at least two "
                 "choices separated by |");
        return false;
    }
    return true;
}

static const char *intensity_code(int i)
{
    static const char *const codes[] = {"", "1", "2", "3", "4", "5-", "5+", "6-", "6+", "7"};
    return i >= 0 && i <= JMA_INT_7 ? codes[i] : "";
}

static cJSON *codes_json(char codes[][8], int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(codes[i]));
    return a;
}

cJSON *jma_rules_json(const struct jma_rules *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "towns", codes_json((char(*)[8])r->towns, r->ntowns));
    cJSON_AddStringToObject(o, "town_min_int", intensity_code(r->town_min));
    cJSON_AddStringToObject(o, "pref_min_int", intensity_code(r->pref_min));
    cJSON_AddItemToObject(o, "tsunami_areas", codes_json((char(*)[8])r->tsunami, r->ntsunami));
    cJSON_AddBoolToObject(o, "special_warnings", r->special_warnings);
    cJSON_AddBoolToObject(o, "drill", r->drill);
    cJSON_AddNumberToObject(o, "delay_s", (double)r->delay_s);
    cJSON_AddNumberToObject(o, "aftershock_window_s", (double)r->aftershock_window_s);
    cJSON_AddStringToObject(o, "audience", r->audience);
    cJSON_AddStringToObject(o, "title", r->title);
    cJSON_AddStringToObject(o, "body", r->body);
    cJSON_AddStringToObject(o, "choices", r->choices);
    return o;
}

/* ---- matching ---- */

static bool has_code(const char codes[][8], int n, const char *code)
{
    for (int i = 0; i < n; i++)
        if (strcmp(codes[i], code) == 0)
            return true;
    return false;
}

static bool town_in_pref(const struct jma_rules *r, const char *pref)
{
    for (int i = 0; i < r->ntowns; i++)
        if (strlen(pref) == 2 && strncmp(r->towns[i], pref, 2) == 0)
            return true;
    return false;
}

static void add_match(cJSON *places, const struct jma_place *p, const char *what, int *strength,
                      int s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "code", p->code);
    cJSON_AddStringToObject(o, "name", p->name);
    cJSON_AddStringToObject(o, "what", what);
    cJSON_AddItemToArray(places, o);
    if (s > *strength)
        *strength = s;
}

int jma_rules_match(const struct jma_rules *r, const struct jma_telegram *t, cJSON *places)
{
    int strength = 0;
    if (t->kind == JMA_KIND_SHINDO || t->kind == JMA_KIND_QUAKE) {
        /* A prefecture's intensity is its own MaxInt or its areas' (VXSE51 gives areas only). */
        int pref_i = -1, pref_max = 0;
        for (size_t i = 0; i <= t->n_places; i++) {
            const struct jma_place *p = i < t->n_places ? &t->places[i] : NULL;
            if ((!p || p->level == JMA_PLACE_PREF) && pref_i >= 0) {
                const struct jma_place *pp = &t->places[pref_i];
                if (r->pref_min && pref_max >= r->pref_min && town_in_pref(r, pp->code))
                    add_match(places, pp, jma_intensity_name(pref_max), &strength, pref_max);
            }
            if (!p)
                break;
            if (p->level == JMA_PLACE_PREF) {
                pref_i = (int)i;
                pref_max = p->intensity;
            } else if (p->level == JMA_PLACE_AREA && p->intensity > pref_max) {
                pref_max = p->intensity;
            } else if (p->level == JMA_PLACE_CITY && has_code(r->towns, r->ntowns, p->code)) {
                if (p->intensity >= r->town_min)
                    add_match(places, p, jma_intensity_name(p->intensity), &strength, p->intensity);
                else if (p->not_received && r->town_min <= JMA_INT_5L)
                    /* "震度5弱以上未入電": the town's meter did not report; it may be strong. */
                    add_match(places, p, "震度5弱以上未入電", &strength, JMA_INT_5L);
            }
        }
    } else if (t->kind == JMA_KIND_TSUNAMI) {
        for (size_t i = 0; i < t->n_places; i++) {
            const struct jma_place *p = &t->places[i];
            if (p->level == JMA_PLACE_TSUNAMI && has_code(r->tsunami, r->ntsunami, p->code) &&
                jma_tsunami_is_warning(p->kind_code))
                add_match(places, p, p->kind_name, &strength,
                          strcmp(p->kind_code, "51") == 0 ? 2 : 3);
        }
    } else if (t->kind == JMA_KIND_WARNING && r->special_warnings) {
        for (size_t i = 0; i < t->n_places; i++) {
            const struct jma_place *p = &t->places[i];
            if (p->level == JMA_PLACE_WARNING && has_code(r->towns, r->ntowns, p->code) &&
                strcmp(p->kind_status, "発表") == 0)
                add_match(places, p, p->kind_name, &strength, 1);
        }
    }
    return strength;
}
