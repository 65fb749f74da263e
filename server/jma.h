/* jma.h - what the JMA feed watcher (jma_watch.c: polling and fetching), the rules
 * (jma_rules.c), the alerts (jma_alert.c: deciding, delaying, sending roll-calls) and their ops
 * (ops_alert.c)
 * share. docs/alerts.md describes the whole for administrators. Loop thread only, except the
 * fetch jobs, which touch nothing but their own struct (jma_watch.c). */
#ifndef KIZUNA_JMA_H
#define KIZUNA_JMA_H

#include "jma_parse.h"
#include "server.h"

#define JMA_CODES_MAX 64

/* The rules in force: the jma_* settings, then what an admin set with alert.rules.set. */
struct jma_rules {
    char towns[JMA_CODES_MAX][8];
    int ntowns;
    int town_min; /* jma_intensity_parse */
    int pref_min; /* 0: no prefecture rule */
    char tsunami[JMA_CODES_MAX][8];
    int ntsunami;
    bool special_warnings;
    bool drill;
    int64_t delay_s, aftershock_window_s;
    char audience[256];
    char title[256];
    char body[2048];
    char choices[512];
};

/* Fills r from the settings, then from overrides (a JSON object of alert.rules.set's fields;
 * NULL: none). false with why if a value is not valid. */
bool jma_rules_load(const struct kz_config *cfg, const char *overrides, struct jma_rules *r,
                    char *why, size_t whylen);
/* The rules as alert.rules shows them. The caller owns the result. */
cJSON *jma_rules_json(const struct jma_rules *r);
/* The places of t that match r, appended to places as {code, name, what}; returns the strength
 * (0: no match): a quake's highest matched intensity, a tsunami's warning level (2 津波警報, 3
 * 大津波警報), 1 for a special warning. */
int jma_rules_match(const struct jma_rules *r, const struct jma_telegram *t, cJSON *places);

/* jma_watch.c: starts the watcher's state (always; it polls only while the rules name a town or
 * a tsunami region). -1 if out of memory or the rules in the database are broken. */
int srv_jma_init(struct srv *s);
/* Whether anything is being watched, and the rules in force (valid while the core lives). */
const struct jma_rules *srv_jma_rules(struct srv *s);
/* New rules (from alert.rules.set): watched from the next tick. */
void srv_jma_rules_replace(struct srv *s, const struct jma_rules *r);
/* The feeds' state for alert.list: [{url, ok_at, failures, next_poll_at, error}]. Caller owns. */
cJSON *srv_jma_feeds_json(struct srv *s);

/* jma_alert.c: a telegram fetched from entry entry_id: match, delay, cancel, suppress (loop
 * thread, outside any call; it writes in the loop's transaction). */
void jma_alert_telegram(struct srv *s, const char *entry_id, const struct jma_telegram *t);
/* Sends every pending alert whose delay has ended. */
void jma_alert_due(struct srv *s, int64_t now);
/* alert.drill: a pending drill alert made by hand (by: the admin's login), to rehearse the
 * whole chain; its id, 0 if it could not be stored. */
int64_t jma_alert_drill(struct srv *s, const char *by);
/* alert.send_now and alert.cancel: by is the caller's login. */
enum kz_err jma_alert_send(struct srv *s, struct store_jma_alert *a, const char *by, char *why,
                           size_t whylen);
enum kz_err jma_alert_cancel(struct srv *s, struct store_jma_alert *a, const char *by);
/* The protocol's view of an alert. The caller owns the result. */
cJSON *jma_alert_json(const struct store_jma_alert *a);

#endif
