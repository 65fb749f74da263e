/* jma_parse.h - reads the Japan Meteorological Agency's disaster-information XML (気象庁防災情報
 * XML): its Atom feeds and the telegrams that can start a roll-call (震度速報 VXSE51, 震源・震度に
 * 関する情報 VXSE53, 津波警報・注意報 VTSE41, 気象特別警報・警報・注意報 VPWW5x). Pure: bytes in,
 * plain structs out; no network, no database, no clock, so that unit tests and the fuzz harness
 * (tests/fuzz/fuzz_jma.c) call it directly and the watcher (server/jma_watch.c) calls it on what a
 * worker fetched. Every byte is hostile: documents larger than limits->max_bytes, deeper than
 * max_depth, with more than max_items places or entries, or with a DOCTYPE (JMA's documents have
 * none; refusing it shuts out entity expansion) are refused as a whole.
 *
 * Elements are matched by local name, whatever their namespace prefix: JMA's telegrams put
 * Control, Head and Body in three namespaces and the values in a fourth (jmx_eb). */
#ifndef KIZUNA_JMA_PARSE_H
#define KIZUNA_JMA_PARSE_H

#include <stdbool.h>
#include <stddef.h>

struct jma_limits {
    size_t max_bytes; /* jma_max_doc_bytes */
    int max_depth;    /* jma_max_depth */
    int max_items;    /* jma_max_items: places in a telegram, entries in a feed */
};

enum jma_err {
    JMA_OK = 0,
    JMA_ERR_TOO_BIG,  /* more than max_bytes */
    JMA_ERR_TOO_DEEP, /* nested deeper than max_depth */
    JMA_ERR_TOO_MANY, /* more than max_items places or entries */
    JMA_ERR_DOCTYPE,  /* a DOCTYPE declaration */
    JMA_ERR_SYNTAX,   /* not well-formed XML (expat's error) */
    JMA_ERR_NOT_JMA,  /* well-formed, but not a JMA Report or an Atom feed */
    JMA_ERR_NOMEM,
};

/* The stable name of an error ("too_big", ...), for logs and the audit. */
const char *jma_err_name(enum jma_err e);

/* Atom feed entry: each field is cut at its array's size minus one (the watcher refuses a
 * link that was cut rather than fetch a wrong address: href_cut). */
struct jma_entry {
    char id[256];
    char title[128];
    char updated[40];
    char href[512];
    bool href_cut;
};

struct jma_feed {
    struct jma_entry *entries; /* owned by the feed: jma_feed_free */
    size_t n;
};

/* Parses an Atom feed. On JMA_OK *out holds the entries in document order (the caller frees it
 * with jma_feed_free); on error *out is empty. */
enum jma_err jma_feed_parse(const char *buf, size_t len, const struct jma_limits *limits,
                            struct jma_feed *out);
void jma_feed_free(struct jma_feed *f);

enum jma_status { JMA_STATUS_UNKNOWN = 0, JMA_STATUS_NORMAL, JMA_STATUS_DRILL, JMA_STATUS_TEST };
enum jma_info { JMA_INFO_UNKNOWN = 0, JMA_INFO_ISSUE, JMA_INFO_CORRECT, JMA_INFO_CANCEL };
enum jma_kind {
    JMA_KIND_OTHER = 0,
    JMA_KIND_SHINDO, /* 震度速報 (VXSE51): intensity by forecast area, no municipalities */
    JMA_KIND_QUAKE, /* 震源・震度に関する情報 (VXSE53): epicentre and per-city intensity */
    JMA_KIND_TSUNAMI, /* 津波警報・注意報・予報 (VTSE41) */
    JMA_KIND_WARNING, /* 気象特別警報・警報・注意報 (VPWW53/54) */
};

/* Seismic intensity as an ordered number: 0 none or unknown, then 1 2 3 4, 5 (5弱), 6 (5強),
 * 7 (6弱), 8 (6強), 9 (7). */
enum {
    JMA_INT_NONE = 0,
    JMA_INT_5L = 5,
    JMA_INT_5U = 6,
    JMA_INT_6L = 7,
    JMA_INT_6U = 8,
    JMA_INT_7 = 9
};
/* JMA's code ("1".."4", "5-", "5+", "6-", "6+", "7") as that number; 0 for anything else. */
int jma_intensity_parse(const char *code);
/* The number back as Japanese ("震度6弱"); "震度不明" for 0. Static string. */
const char *jma_intensity_name(int intensity);

enum jma_place_level {
    JMA_PLACE_PREF,    /* Intensity/Observation/Pref: 2-digit code */
    JMA_PLACE_AREA,    /* .../Pref/Area: forecast area (3 digits) */
    JMA_PLACE_CITY,    /* .../Area/City: 7-digit municipality code */
    JMA_PLACE_TSUNAMI, /* Tsunami/Forecast/Item: forecast region, kind code */
    JMA_PLACE_WARNING, /* Warning/Item: municipality, one kind */
};

struct jma_place {
    enum jma_place_level level;
    char code[16];
    char name[64];
    int intensity;      /* PREF, AREA, CITY: MaxInt as jma_intensity_parse; 0 if absent */
    bool not_received;  /* CITY: "震度５弱以上未入電": unknown, possibly strong */
    char kind_code[8];  /* TSUNAMI, WARNING: Kind/Code (52 大津波警報, 51 津波警報, ...) */
    char kind_name[64]; /* TSUNAMI, WARNING: Kind/Name */
    char kind_status[32]; /* WARNING: Kind/Status (発表, 継続, 解除, ...) */
};

struct jma_telegram {
    enum jma_kind kind;
    enum jma_status status;
    enum jma_info info;
    char control_title[128];
    char head_title[256];
    char report_time[40];
    char event_id[64];
    char serial[16];
    char origin_time[40];
    char epicentre[128];
    char magnitude[16];       /* as written ("6.8"; "NaN" when unknown) */
    int max_intensity;        /* Observation/MaxInt */
    struct jma_place *places; /* owned: jma_telegram_free */
    size_t n_places;
};

/* Parses one telegram. On JMA_OK *out is filled (the caller frees it with jma_telegram_free);
 * on error *out is empty. A well-formed Report of a kind not listed above is JMA_OK with
 * JMA_KIND_OTHER. */
enum jma_err jma_telegram_parse(const char *buf, size_t len, const struct jma_limits *limits,
                                struct jma_telegram *out);
void jma_telegram_free(struct jma_telegram *t);

/* Whether a tsunami kind code is a warning (大津波警報 52/53, 津波警報 51). */
bool jma_tsunami_is_warning(const char *kind_code);

#endif
