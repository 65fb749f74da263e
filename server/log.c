/* log.c - one line per event on stderr: "2026-11-22T00:34:53.123Z info event key=value ...".
 * Callers never pass passwords or tokens; values that come from clients are validated (login
 * ids) or escaped by the caller before they reach a log line. */
#include "server.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static int log_level = KZ_LOG_INFO;
static const char *const names[] = {"error", "warn", "info", "debug"};

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

void kz_log(int level, const char *event, const char *fmt, ...)
{
    if (level > log_level)
        return;
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char line[1024];
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, names[level], event);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* One write per line, so lines from the lws emitter and ours never interleave. */
    fprintf(stderr, "%s\n", line);
}
