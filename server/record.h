/* record.h - the record of a room (issue 22, docs/records.md): its chronology written as JSON
 * Lines, CSV or one printable HTML page, the fixed time zones it is written in, and the marks
 * that replace redacted text in a published version.
 *
 * Pure functions over cJSON rows and a growing buffer (json_write.h): no store, no server, no
 * process state. ops_record.c builds one row per event and hands it here; a row is a cJSON
 * object whose members are described in docs/records.md ("The JSON Lines export"). The body of
 * an export (everything after its header) depends on the rows alone, so two servers holding the
 * same events write the same bytes. */
#ifndef KIZUNA_RECORD_H
#define KIZUNA_RECORD_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json_write.h"

enum kz_record_format { KZ_RECORD_JSONL, KZ_RECORD_CSV, KZ_RECORD_HTML };

/* "jsonl", "csv" or "html"; false for anything else. */
bool kz_record_format_parse(const char *name, enum kz_record_format *out);

/* The offset from UTC, in minutes east, of a zone of the record's table (Asia/Tokyo, UTC, ...;
 * zones without daylight saving only, so a table is exact and no tzdata is needed at run time);
 * false if zone is not in it. */
bool kz_record_zone_offset(const char *zone, int *minutes);
/* The names the table knows, for error messages: "Asia/Tokyo, Asia/Seoul, ..." (static). */
const char *kz_record_zone_names(void);

/* ms since the epoch at offset minutes, written to out (caller's): iso "2026-11-30T13:45:07+09:00",
 * else "2026-11-30 13:45:07" (as Excel reads a date and time). */
#define KZ_RECORD_TIME_CHARS 64
void kz_record_time(int64_t ms, int offset, bool iso, char out[KZ_RECORD_TIME_CHARS]);

/* The text that stands for each redaction in a published record. */
#define KZ_RECORD_REDACTED "■■■"

/* A byte range of a text to black out. */
struct kz_record_cut {
    size_t start, end;
};
/* text with each of cuts[0..n) (any order, overlapping or not, clamped to the text) replaced by
 * one KZ_RECORD_REDACTED, overlapping and touching cuts making one mark; the caller frees it
 * with free(). Cuts are stored on character boundaries (ops_review.c checks); one that is not
 * is widened to the characters it touches, so no part of a character survives. NULL if out of
 * memory. Sorts cuts in place. */
char *kz_record_redact(const char *text, struct kz_record_cut *cuts, size_t n);

/* Writing one export into out: kz_record_begin once with the header (a cJSON object: room,
 * room_name, from, to, exported_at, exported_by, server, time_zone, and for JSON Lines what
 * else it carries; it stays the caller's), kz_record_row for each row in the room's order,
 * kz_record_end after the last. A paged export calls begin on its first page and end
 * on its last only. offset is the time zone's (kz_record_zone_offset). After an allocation
 * failure out is failed (json_write.h). */
void kz_record_begin(struct kz_json *out, enum kz_record_format f, const cJSON *head, int offset);
void kz_record_row(struct kz_json *out, enum kz_record_format f, const cJSON *row, int offset);
void kz_record_end(struct kz_json *out, enum kz_record_format f);

/* A marker line every HTML export has between its header and its rows: the bytes after it are
 * the same on every server holding the same events. */
#define KZ_RECORD_HTML_BODY_MARK "<!-- kizuna-record-body -->"

#endif
