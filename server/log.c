/* log.c - one line per event on stderr, in logfmt:
 *   ts=2026-11-22T00:34:53.123Z level=info component=api event=login req=1f login=admin ...
 * component is the layer that logged (from the source file: log_components), req the request
 * being served when the line was written (kz_log_request), so every line a client's request
 * caused can be found from one of them. Under systemd (JOURNAL_STREAM names our stderr) each
 * line starts with its syslog priority, <3> to <7>, which journald takes as the entry's
 * priority (sd-daemon(3)): `journalctl -p warning` then shows warnings and errors only.
 *
 * Call sites write their fields as key=value text; the line is normalised here, centrally:
 * values that would break logfmt are quoted, control characters escaped (a line is always one
 * line), and words that are no key=value pair are gathered into one msg="..." field. Callers
 * never pass passwords or tokens; values that come from clients are validated (login ids) or
 * quoted by the caller before they reach a log line. */
#include "server.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static int log_level = KZ_LOG_INFO;
static const char *const names[] = {"error", "warn", "info", "debug"};
/* syslog's priorities of the four levels: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG. */
static const int priorities[] = {3, 4, 6, 7};
static _Thread_local uint64_t current_request;
static int journal = -1; /* -1: not looked at yet */

/* The last KZ_LOG_RECENT error lines, for admin.status's recent alarms; any thread logs. */
static struct kz_log_entry recent[KZ_LOG_RECENT];
static size_t recent_next, recent_count;
static pthread_mutex_t recent_lock = PTHREAD_MUTEX_INITIALIZER;

size_t kz_log_recent(struct kz_log_entry *out, size_t max)
{
    pthread_mutex_lock(&recent_lock);
    size_t n = recent_count < max ? recent_count : max;
    for (size_t i = 0; i < n; i++) /* newest first */
        out[i] = recent[(recent_next + KZ_LOG_RECENT - 1 - i) % KZ_LOG_RECENT];
    pthread_mutex_unlock(&recent_lock);
    return n;
}

static void recent_add(const char *line)
{
    pthread_mutex_lock(&recent_lock);
    struct kz_log_entry *e = &recent[recent_next];
    e->at = kz_now_ms();
    snprintf(e->line, sizeof e->line, "%s", line);
    recent_next = (recent_next + 1) % KZ_LOG_RECENT;
    if (recent_count < KZ_LOG_RECENT)
        recent_count++;
    pthread_mutex_unlock(&recent_lock);
}

void kz_log_set_level(int level)
{
    log_level = level;
}

int kz_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

void kz_log_request(uint64_t id)
{
    current_request = id;
}

uint64_t kz_log_request_current(void)
{
    return current_request;
}

/* Whether stderr is the journal's stream: JOURNAL_STREAM is "DEV:INODE" of it, and a child
 * that inherited the variable but writes elsewhere (a pipe, a file) gets no prefixes. */
static bool journal_stream(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    return js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
           (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* Source files by layer: the component a line names. A file that is not listed is its own
 * component (its name without .c). */
static const struct {
    const char *prefix, *component;
} log_components[] = {
    {"fed_", "federation"},   {"ops_", "api"},           {"proto", "api"},
    {"gate", "api"},          {"op_table", "api"},       {"throttle", "api"},
    {"event_", "events"},     {"commit", "storage"},     {"outbox", "storage"},
    {"syncer", "storage"},    {"http_", "transport"},    {"ws", "transport"},
    {"conn", "transport"},    {"listener", "transport"}, {"transport", "transport"},
    {"uploads", "transport"}, {"blobs", "blobs"},        {"main", "server"},
    {"config", "server"},     {"health", "server"},      {"metrics", "server"},
};

static void component_of(const char *file, char *out, size_t n)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    for (size_t i = 0; i < sizeof log_components / sizeof log_components[0]; i++)
        if (strncmp(base, log_components[i].prefix, strlen(log_components[i].prefix)) == 0) {
            snprintf(out, n, "%s", log_components[i].component);
            return;
        }
    size_t len = strcspn(base, ".");
    snprintf(out, n, "%.*s", (int)len, base);
}

struct line {
    char *p;
    size_t len, cap;
};

static void put_char(struct line *l, char c)
{
    if (l->len + 1 < l->cap)
        l->p[l->len++] = c;
}

static void put_str(struct line *l, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put_char(l, s[i]);
}

/* A value's bytes, escaped so the line stays one logfmt line: \", \\ and control characters
 * (\n, \t, \xNN). */
static void put_escaped(struct line *l, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            put_char(l, '\\');
            put_char(l, (char)c);
        } else if (c == '\n') {
            put_str(l, "\\n", 2);
        } else if (c == '\t') {
            put_str(l, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            char hex[5];
            snprintf(hex, sizeof hex, "\\x%02x", c);
            put_str(l, hex, 4);
        } else {
            put_char(l, (char)c);
        }
    }
}

static bool key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

/* The end of a quoted string starting at s[i] == '"' (the index after its closing quote, or
 * n if it never closes). */
static size_t quoted_end(const char *s, size_t i, size_t n)
{
    for (i++; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n)
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return n;
}

/* Appends the caller's text as logfmt pairs; words that are not key=value go to msg. */
static void put_fields(struct line *l, const char *s)
{
    size_t n = strlen(s), i = 0;
    char free_text[512];
    struct line msg = {free_text, 0, sizeof free_text};
    while (i < n) {
        while (i < n && s[i] == ' ')
            i++;
        if (i >= n)
            break;
        size_t k = i;
        while (k < n && key_char(s[k]))
            k++;
        if (k > i && k < n && s[k] == '=') {
            size_t v = k + 1, end;
            put_char(l, ' ');
            put_str(l, s + i, k + 1 - i);
            if (v < n && s[v] == '"') {
                end = quoted_end(s, v, n);
                size_t inner_end = end > v + 1 && s[end - 1] == '"' ? end - 1 : end;
                put_char(l, '"');
                /* Already quoted by the caller: keep its escapes, escape only controls. */
                for (size_t j = v + 1; j < inner_end; j++) {
                    if (s[j] == '\\' && j + 1 < inner_end) {
                        put_char(l, '\\');
                        put_char(l, s[++j]);
                    } else {
                        put_escaped(l, s + j, 1);
                    }
                }
                put_char(l, '"');
            } else {
                end = v;
                while (end < n && s[end] != ' ')
                    end++;
                size_t vlen = end - v;
                /* "key=value: more words": the colon belongs to the words, not the value. */
                if (vlen > 1 && s[v + vlen - 1] == ':' && s[v + vlen - 2] != ':')
                    vlen--;
                bool plain = vlen > 0;
                for (size_t j = v; j < v + vlen; j++)
                    if (s[j] == '"' || s[j] == '=' || s[j] == '\\' || (unsigned char)s[j] < 0x21 ||
                        s[j] == 0x7f)
                        plain = false;
                if (plain) {
                    put_str(l, s + v, vlen);
                } else {
                    put_char(l, '"');
                    put_escaped(l, s + v, vlen);
                    put_char(l, '"');
                }
            }
            i = end;
            continue;
        }
        size_t end = s[i] == '"' ? quoted_end(s, i, n) : i;
        while (end < n && s[end] != ' ')
            end++;
        if (msg.len)
            put_char(&msg, ' ');
        put_str(&msg, s + i, end - i);
        i = end;
    }
    if (msg.len) {
        put_str(l, " msg=\"", 6);
        put_escaped(l, msg.p, msg.len);
        put_char(l, '"');
    }
}

void kz_log_at(int level, const char *file, const char *event, const char *fmt, ...)
{
    if (level > log_level)
        return;
    if (journal < 0)
        journal = journal_stream();
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char component[32];
    component_of(file ? file : "kizunad", component, sizeof component);
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    char buf[2048];
    struct line l = {buf, 0, sizeof buf};
    char head[192];
    int hn = 0;
    if (journal) /* <N> first: journald reads the priority from the line's start */
        hn = snprintf(head, sizeof head, "<%d>", priorities[level]);
    hn += snprintf(head + hn, sizeof head - (size_t)hn,
                   "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s component=%s event=",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   ts.tv_nsec / 1000000, names[level], component);
    put_str(&l, head, (size_t)hn);
    put_escaped(&l, event, strlen(event));
    if (current_request) {
        char req[32];
        int rn = snprintf(req, sizeof req, " req=%llx", (unsigned long long)current_request);
        put_str(&l, req, (size_t)rn);
    }
    put_fields(&l, text);
    l.p[l.len] = '\0';
    if (level == KZ_LOG_ERROR)
        recent_add(l.p + (journal ? 3 : 0));
    /* One write per line, so lines from the lws emitter and ours never interleave. */
    fprintf(stderr, "%s\n", l.p);
}
