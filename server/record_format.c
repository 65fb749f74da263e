/* record_format.c - writes a room's record (record.h) as JSON Lines, CSV or one HTML page, and
 * the table of time zones it is written in. Pure: everything comes from the rows and header. */
#include "record.h"
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

bool kz_record_format_parse(const char *name, enum kz_record_format *out)
{
    static const char *const names[] = {"jsonl", "csv", "html"};
    for (int i = 0; i < 3; i++) {
        if (name && strcmp(name, names[i]) == 0) {
            *out = (enum kz_record_format)i;
            return true;
        }
    }
    return false;
}

/* Zones without daylight saving, so an offset is the whole rule: a record must print the same
 * times on a minimal Debian without tzdata (the server's time_zone setting needs it). */
static const struct {
    const char *name;
    int minutes;
} zones[] = {
    {"Asia/Tokyo", 540},  {"Asia/Seoul", 540}, {"Asia/Taipei", 480}, {"Asia/Shanghai", 480},
    {"Asia/Manila", 480}, {"UTC", 0},          {"Etc/UTC", 0},
};

bool kz_record_zone_offset(const char *zone, int *minutes)
{
    for (size_t i = 0; zone && i < sizeof zones / sizeof zones[0]; i++) {
        if (strcmp(zone, zones[i].name) == 0) {
            *minutes = zones[i].minutes;
            return true;
        }
    }
    return false;
}

const char *kz_record_zone_names(void)
{
    return "Asia/Tokyo, Asia/Seoul, Asia/Taipei, Asia/Shanghai, Asia/Manila, UTC, Etc/UTC";
}

void kz_record_time(int64_t ms, int offset, bool iso, char out[KZ_RECORD_TIME_CHARS])
{
    /* Floor division: times before 1970 are not in any record, but must not print garbage. */
    int64_t s = ms / 1000 - (ms % 1000 < 0);
    time_t t = (time_t)(s + (int64_t)offset * 60);
    struct tm tm;
    gmtime_r(&t, &tm);
    char date[40];
    strftime(date, sizeof date, iso ? "%Y-%m-%dT%H:%M:%S" : "%Y-%m-%d %H:%M:%S", &tm);
    if (!iso) {
        snprintf(out, KZ_RECORD_TIME_CHARS, "%s", date);
        return;
    }
    int a = offset < 0 ? -offset : offset;
    snprintf(out, KZ_RECORD_TIME_CHARS, "%s%c%02d:%02d", date, offset < 0 ? '-' : '+', a / 60,
             a % 60);
}

static int cut_cmp(const void *a, const void *b)
{
    const struct kz_record_cut *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

char *kz_record_redact(const char *text, struct kz_record_cut *cuts, size_t n)
{
    size_t len = strlen(text), mark = strlen(KZ_RECORD_REDACTED);
    char *out = malloc(len + n * mark + 1);
    if (!out)
        return NULL;
    if (n)
        qsort(cuts, n, sizeof *cuts, cut_cmp);
    size_t at = 0, o = 0;
    bool marked = false;
    for (size_t i = 0; i < n; i++) {
        size_t a = cuts[i].start < len ? cuts[i].start : len;
        size_t b = cuts[i].end < len ? cuts[i].end : len;
        while (a > 0 && ((unsigned char)text[a] & 0xc0) == 0x80)
            a--;
        while (b < len && ((unsigned char)text[b] & 0xc0) == 0x80)
            b++;
        if (b <= a)
            continue;
        if (marked && a <= at) { /* overlaps or touches the mark before: one mark */
            at = b > at ? b : at;
            continue;
        }
        memcpy(out + o, text + at, a - at);
        o += a - at;
        memcpy(out + o, KZ_RECORD_REDACTED, mark);
        o += mark;
        at = b;
        marked = true;
    }
    memcpy(out + o, text + at, len - at);
    o += len - at;
    out[o] = '\0';
    return out;
}

static const char *str_of(const cJSON *o, const char *key)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
    return s ? s : "";
}

static void put(struct kz_json *out, const char *s)
{
    kz_json_raw(out, s, strlen(s));
}

/* ---- what a row says, in words: the CSV's and the page's "内容" ---- */

/* The words for an event that is not a message, e.g. "参加: tanaka (member)", into buf. */
static void describe(const cJSON *row, char *buf, size_t n)
{
    const char *type = str_of(row, "type");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(row, "detail");
    const char *user = str_of(d, "user");
    if (strcmp(type, "member") == 0) {
        const char *how = str_of(d, "membership");
        const char *word = strcmp(how, "join") == 0     ? "参加"
                           : strcmp(how, "leave") == 0  ? "退出"
                           : strcmp(how, "remove") == 0 ? "除外"
                                                        : how;
        if (*str_of(d, "role"))
            snprintf(buf, n, "%s: %s (%s)", word, user, str_of(d, "role"));
        else
            snprintf(buf, n, "%s: %s", word, user);
    } else if (strcmp(type, "member.role") == 0) {
        snprintf(buf, n, "役割変更: %s → %s", user, str_of(d, "role"));
    } else if (strcmp(type, "room.create") == 0) {
        snprintf(buf, n, "ルーム作成: %s", str_of(d, "name"));
    } else if (strcmp(type, "room.update") == 0) {
        snprintf(buf, n, "ルーム名・トピック変更: %s / %s", str_of(d, "name"), str_of(d, "topic"));
    } else if (strcmp(type, "room.archive") == 0) {
        snprintf(buf, n, "%s",
                 cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(d, "archived")) ? "アーカイブ解除"
                                                                                : "アーカイブ");
    } else if (strcmp(type, "msg.delete") == 0) {
        snprintf(buf, n, "%s: %s",
                 cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(row, "by_admin"))
                     ? "削除 (管理者による)"
                     : "削除",
                 str_of(row, "target"));
    } else if (strcmp(type, "e2ee.photo") == 0) {
        snprintf(buf, n, "写真 (暗号化、サーバーでは開けません): %s", str_of(row, "photo"));
    } else if (strcmp(type, "hotline.seat") == 0) {
        const char *who = str_of(d, "user");
        snprintf(buf, n, "席 %s: %s%s%s", str_of(d, "seat"), *who ? who : "(空席)",
                 *str_of(d, "name") ? " " : "", str_of(d, "name"));
    } else {
        char *json = cJSON_PrintUnformatted(d);
        snprintf(buf, n, "%s: %s", type, json ? json : "");
        cJSON_free(json);
    }
}

/* Messages and edits show their text; everything else its words, cut (if ever: names are
 * bounded, so only an unknown event's content can be long) at a character's start. */
static const char *content_of(const cJSON *row, char *buf, size_t n)
{
    const char *type = str_of(row, "type");
    if (strcmp(type, "msg") == 0 || strcmp(type, "msg.edit") == 0)
        return str_of(row, "text");
    describe(row, buf, n);
    size_t len = strlen(buf);
    if (len + 1 == n) {
        while (len > 0 && ((unsigned char)buf[len - 1] & 0xc0) == 0x80)
            len--;
        if (len > 0 && ((unsigned char)buf[len - 1] & 0x80))
            len--; /* the lead byte of the character cut */
        buf[len] = '\0';
    }
    return buf;
}

static const char *kind_word(const char *type)
{
    static const struct {
        const char *type, *word;
    } words[] = {{"msg", "発言"},           {"msg.edit", "編集"},      {"msg.delete", "削除"},
                 {"e2ee.photo", "写真"},    {"member", "メンバー"},    {"member.role", "役割"},
                 {"room.create", "ルーム"}, {"room.update", "ルーム"}, {"room.archive", "ルーム"},
                 {"hotline.seat", "席"}};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcmp(type, words[i].type) == 0)
            return words[i].word;
    return type;
}

static const char *state_word(const char *state)
{
    return strcmp(state, "edited") == 0    ? "編集済み"
           : strcmp(state, "deleted") == 0 ? "削除済み"
                                           : "";
}

/* The read count as people read it: "3", or in a shared room "3 (jp-a 2/2, jp-b 1/4)". */
static void read_words(const cJSON *row, char *buf, size_t n)
{
    const cJSON *rc = cJSON_GetObjectItemCaseSensitive(row, "read_count");
    buf[0] = '\0';
    if (!cJSON_IsNumber(rc))
        return;
    size_t len = (size_t)snprintf(buf, n, "%lld", (long long)rc->valuedouble);
    const cJSON *g, *groups = cJSON_GetObjectItemCaseSensitive(row, "read_by_server");
    bool first = true;
    cJSON_ArrayForEach(g, groups)
    {
        if (len >= n)
            break;
        len += (size_t)snprintf(buf + len, n - len, "%s%s %d/%d", first ? " (" : ", ",
                                cJSON_GetStringValue(cJSON_GetArrayItem(g, 0)),
                                (int)cJSON_GetNumberValue(cJSON_GetArrayItem(g, 1)),
                                (int)cJSON_GetNumberValue(cJSON_GetArrayItem(g, 2)));
        first = false;
    }
    if (!first && len < n)
        snprintf(buf + len, n - len, ")");
}

/* ---- CSV: UTF-8 with a BOM, CRLF between records (RFC 4180), every cell quoted and guarded
 * against formulas as every CSV of Kizuna (kz_csv_guard_needed) ---- */

static void csv_cell(struct kz_json *out, const char *cell, bool last)
{
    kz_json_raw(out, "\"", 1);
    if (kz_csv_guard_needed(cell))
        kz_json_raw(out, "'", 1);
    for (const char *p = cell; *p;) {
        const char *q = strchr(p, '"');
        size_t run = q ? (size_t)(q - p) + 1 : strlen(p);
        kz_json_raw(out, p, run);
        if (q)
            kz_json_raw(out, "\"", 1);
        p += run;
    }
    kz_json_raw(out, last ? "\"\r\n" : "\",", last ? 3 : 2);
}

static const char *const csv_header[] = {"日時", "自治体", "席",   "発信者", "氏名",      "種別",
                                         "内容", "対象",   "状態", "既読",   "イベントID"};

static void csv_row(struct kz_json *out, const cJSON *row, int offset)
{
    char when[KZ_RECORD_TIME_CHARS], buf[2048], reads[512];
    kz_record_time((int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(row, "ts")),
                   offset, false, when);
    read_words(row, reads, sizeof reads);
    const char *cells[] = {when,
                           str_of(row, "server"),
                           str_of(row, "seat"),
                           str_of(row, "sender"),
                           str_of(row, "sender_name"),
                           kind_word(str_of(row, "type")),
                           content_of(row, buf, sizeof buf),
                           str_of(row, "target"),
                           state_word(str_of(row, "state")),
                           reads,
                           str_of(row, "event_id")};
    size_t n = sizeof cells / sizeof cells[0];
    for (size_t i = 0; i < n; i++)
        csv_cell(out, cells[i], i + 1 == n);
}

/* ---- HTML: one page, nothing fetched, every text escaped ---- */

static void html_text(struct kz_json *out, const char *s)
{
    for (const char *p = s; *p;) {
        size_t run = strcspn(p, "&<>\"'");
        kz_json_raw(out, p, run);
        p += run;
        switch (*p) {
        case '&':
            put(out, "&amp;");
            break;
        case '<':
            put(out, "&lt;");
            break;
        case '>':
            put(out, "&gt;");
            break;
        case '"':
            put(out, "&quot;");
            break;
        case '\'':
            put(out, "&#39;");
            break;
        default:
            continue;
        }
        p++;
    }
}

/* A4 with the page number and count in the bottom margin (CSS Paged Media margin boxes, which
 * Chromium prints); the table's head repeats on every page and no row is split. */
static const char html_style[] =
    "@page{size:A4;margin:14mm 10mm 16mm 10mm;"
    "@bottom-center{content:counter(page) \" / \" counter(pages);font-size:9pt}}"
    "body{font-family:\"Noto Sans CJK JP\",\"Noto Sans JP\",\"Hiragino Sans\",\"Yu Gothic\","
    "sans-serif;font-size:9.5pt;color:#000;margin:0}"
    "h1{font-size:14pt;margin:0 0 4px}"
    "dl.head{display:grid;grid-template-columns:max-content auto;gap:0 12px;margin:0 0 8px;"
    "font-size:9pt}dl.head dt{font-weight:bold}dl.head dd{margin:0}"
    "table{border-collapse:collapse;width:100%;table-layout:fixed}"
    "thead{display:table-header-group}tr{break-inside:avoid}"
    "th,td{border:1px solid #888;padding:2px 4px;vertical-align:top;text-align:left;"
    "overflow-wrap:anywhere}th{background:#eee}"
    "td.text{white-space:pre-wrap}tr.deleted td.text{color:#555}"
    "col.when{width:15%}col.where{width:12%}col.who{width:13%}col.kind{width:8%}"
    "col.state{width:7%}col.reads{width:7%}"
    "p.count{margin:6px 0 0;font-size:9pt}"
    "img.thumb{display:block;max-width:100%;height:auto;margin-top:2px}";

static void html_head_item(struct kz_json *out, const char *term, const char *value)
{
    put(out, "<dt>");
    html_text(out, term);
    put(out, "</dt><dd>");
    html_text(out, value);
    put(out, "</dd>");
}

static void html_begin(struct kz_json *out, const cJSON *head, int offset)
{
    char from[KZ_RECORD_TIME_CHARS] = "", to[KZ_RECORD_TIME_CHARS] = "",
         at[KZ_RECORD_TIME_CHARS] = "", range[2 * KZ_RECORD_TIME_CHARS + 32];
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(head, "from"),
                *t = cJSON_GetObjectItemCaseSensitive(head, "to");
    if (cJSON_IsNumber(f))
        kz_record_time((int64_t)f->valuedouble, offset, false, from);
    if (cJSON_IsNumber(t))
        kz_record_time((int64_t)t->valuedouble, offset, false, to);
    kz_record_time(
        (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(head, "exported_at")),
        offset, false, at);
    snprintf(range, sizeof range, "%s 〜 %s", from[0] ? from : "(最初)", to[0] ? to : "(最後)");
    bool published = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(head, "published"));
    put(out, "<!DOCTYPE html>\n<html lang=\"ja\"><head><meta charset=\"utf-8\"><title>");
    html_text(out, published ? "公開版 記録: " : "記録: ");
    html_text(out, str_of(head, "room_name"));
    put(out, "</title><style>");
    put(out, html_style);
    put(out, "</style></head><body><header><h1>");
    html_text(out, published ? "時系列記録 (公開版): " : "時系列記録: ");
    html_text(out, str_of(head, "room_name"));
    put(out, "</h1><dl class=\"head\">");
    html_head_item(out, "ルームID", str_of(head, "room"));
    html_head_item(out, "期間", range);
    html_head_item(out, "出力日時", at);
    if (!published)
        html_head_item(out, "出力者", str_of(head, "exported_by"));
    else
        html_head_item(out, "審査", str_of(head, "title"));
    html_head_item(out, "サーバー", str_of(head, "server"));
    html_head_item(out, "時間帯", str_of(head, "time_zone"));
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(head, "servers"))
    {
        html_head_item(out, str_of(s, "server"), str_of(s, "name"));
    }
    put(out, "</dl></header>\n" KZ_RECORD_HTML_BODY_MARK "\n");
    put(out, "<table><colgroup><col class=\"when\"><col class=\"where\"><col class=\"who\">"
             "<col class=\"kind\"><col class=\"text\"><col class=\"state\"><col class=\"reads\">"
             "</colgroup><thead><tr><th>日時</th><th>自治体・席</th><th>発信者</th><th>種別</th>"
             "<th>内容</th><th>状態</th><th>既読</th></tr></thead><tbody>\n");
}

static void html_row(struct kz_json *out, const cJSON *row, int offset)
{
    char when[KZ_RECORD_TIME_CHARS], buf[2048], reads[512];
    kz_record_time((int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(row, "ts")),
                   offset, false, when);
    read_words(row, reads, sizeof reads);
    const char *state = str_of(row, "state");
    put(out, *state ? "<tr class=\"" : "<tr");
    if (*state) {
        html_text(out, state);
        put(out, "\"");
    }
    put(out, " id=\"e-");
    html_text(out, str_of(row, "event_id"));
    put(out, "\"><td>");
    html_text(out, when);
    put(out, "</td><td>");
    html_text(out, str_of(row, "server"));
    if (*str_of(row, "seat")) {
        put(out, "<br>");
        html_text(out, str_of(row, "seat"));
    }
    put(out, "</td><td>");
    html_text(out, str_of(row, "sender_name"));
    if (*str_of(row, "sender")) {
        put(out, "<br>");
        html_text(out, str_of(row, "sender"));
    }
    put(out, "</td><td>");
    html_text(out, kind_word(str_of(row, "type")));
    put(out, "</td><td class=\"text\">");
    html_text(out, content_of(row, buf, sizeof buf));
    if (strcmp(str_of(row, "type"), "msg.edit") == 0) {
        put(out, "<br>(対象: ");
        html_text(out, str_of(row, "target"));
        put(out, ")");
    }
    put(out, "</td><td>");
    html_text(out, state_word(state));
    put(out, "</td><td>");
    html_text(out, reads);
    put(out, "</td></tr>\n");
}

void kz_record_begin(struct kz_json *out, enum kz_record_format f, const cJSON *head, int offset)
{
    if (f == KZ_RECORD_JSONL) {
        kz_json_item(out, head);
        kz_json_raw(out, "\n", 1);
    } else if (f == KZ_RECORD_CSV) {
        kz_json_raw(out, "\xef\xbb\xbf", 3); /* without it Excel reads Shift_JIS */
        size_t n = sizeof csv_header / sizeof csv_header[0];
        for (size_t i = 0; i < n; i++)
            csv_cell(out, csv_header[i], i + 1 == n);
    } else {
        html_begin(out, head, offset);
    }
}

void kz_record_row(struct kz_json *out, enum kz_record_format f, const cJSON *row, int offset)
{
    if (f == KZ_RECORD_JSONL) {
        kz_json_item(out, row);
        kz_json_raw(out, "\n", 1);
    } else if (f == KZ_RECORD_CSV) {
        csv_row(out, row, offset);
    } else {
        html_row(out, row, offset);
    }
}

void kz_record_end(struct kz_json *out, enum kz_record_format f)
{
    if (f == KZ_RECORD_HTML)
        put(out, "</tbody></table>\n<p class=\"count\">以上</p></body></html>\n");
}
