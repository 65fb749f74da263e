/* test_util.c - config table, UTF-8, login ids, passwords, tokens and CSV cells. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

Test(config, defaults_and_json_and_overrides)
{
    struct kz_config c;
    char err[256];
    kz_config_defaults(&c);
    cr_assert_str_eq(c.listen, "127.0.0.1:8080");
    cr_assert_eq(c.sqlite_synchronous_full, 1);
    cr_assert_eq(c.log_level, KZ_LOG_INFO);
    cr_assert_eq(kz_config_apply_json(&c,
                                      "{\"max_connections\":500,\"log_level\":\"debug\","
                                      "\"sqlite_synchronous_full\":false}",
                                      err, sizeof err),
                 0, "%s", err);
    cr_assert_eq(c.max_connections, 500);
    cr_assert_eq(c.log_level, KZ_LOG_DEBUG);
    cr_assert_eq(c.sqlite_synchronous_full, 0);
    cr_assert_eq(kz_config_set(&c, "listen=[::1]:0", err, sizeof err), 0);
    cr_assert_str_eq(c.listen, "[::1]:0");
    cr_assert_eq(kz_config_set(&c, "max_frame_bytes=2048", err, sizeof err), 0);
    cr_assert_eq(c.max_frame_bytes, 2048);
}

Test(config, rejects_unknown_keys_wrong_types_and_out_of_range)
{
    struct kz_config c;
    char err[256];
    kz_config_defaults(&c);
    cr_assert_neq(kz_config_apply_json(&c, "{\"max_conections\":5}", err, sizeof err), 0);
    cr_assert(strstr(err, "unknown setting"), "%s", err);
    cr_assert_neq(kz_config_apply_json(&c, "{\"max_connections\":\"5\"}", err, sizeof err), 0);
    cr_assert_neq(kz_config_apply_json(&c, "{\"max_connections\":1.5}", err, sizeof err), 0);
    cr_assert_neq(kz_config_apply_json(&c, "{\"max_connections\":1}", err, sizeof err), 0);
    cr_assert(strstr(err, "out of range"), "%s", err);
    cr_assert_neq(kz_config_apply_json(&c, "[1]", err, sizeof err), 0);
    cr_assert_neq(kz_config_set(&c, "log_level=loud", err, sizeof err), 0);
    cr_assert_neq(kz_config_set(&c, "max_connections=12abc", err, sizeof err), 0);
    cr_assert_neq(kz_config_set(&c, "novalue", err, sizeof err), 0);
    cr_assert_eq(c.max_connections, 10000, "a refused setting changes nothing");
}

Test(utf8, accepts_valid_and_rejects_invalid)
{
    const char *good[] = {"", "ascii", "日本語の文章", "絆", "\xf0\x9f\x98\x80"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert(kz_utf8_valid(good[i], strlen(good[i])), "%zu", i);
    const char *bad[] = {"\xff",
                         "\xc0\xaf" /* overlong '/' */,
                         "\xed\xa0\x80" /* surrogate */,
                         "\xe6\x97" /* truncated */,
                         "\xf4\x90\x80\x80" /* > U+10FFFF */,
                         "a\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert(!kz_utf8_valid(bad[i], strlen(bad[i])), "%zu", i);
}

Test(utf8, sanitize_replaces_only_what_is_invalid)
{
    struct {
        const char *in, *out;
    } cases[] = {
        {"", ""},
        {"日本語 ok", "日本語 ok"},
        {"a\377b", "a?b"},
        {"cut \xe6\x97", "cut ??"}, /* a character cut in two by a byte limit */
        {"\xc0\xaf/", "?\?/"},
        {"\xed\xa0\x80", "???"},
        {"\x80\xe7\xb5\x86", "?絆"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s", cases[i].in);
        kz_utf8_sanitize(buf);
        cr_assert_str_eq(buf, cases[i].out, "case %zu", i);
        cr_assert(kz_utf8_valid(buf, strlen(buf)));
    }
}

/* A payload or preview cut to a byte budget stays valid UTF-8: the cut moves back to a
 * character's start, and never past the buffer. */
Test(utf8, copy_cut_stops_at_a_character_start)
{
    char out[16];
    kz_utf8_copy_cut(out, sizeof out, "避難所", 7); /* 3 bytes each: two fit in 7 */
    cr_assert_str_eq(out, "避難");
    kz_utf8_copy_cut(out, sizeof out, "避難所", 9);
    cr_assert_str_eq(out, "避難所");
    kz_utf8_copy_cut(out, sizeof out, "ab避", 3);
    cr_assert_str_eq(out, "ab");
    kz_utf8_copy_cut(out, 4, "abcdef", 100); /* the buffer bounds it too */
    cr_assert_str_eq(out, "abc");
    kz_utf8_copy_cut(out, sizeof out, "", 5);
    cr_assert_str_eq(out, "");
}

Test(accounts, login_ids)
{
    cr_assert(kz_login_valid("admin"));
    cr_assert(kz_login_valid("t.tanaka-2_b"));
    cr_assert(kz_login_valid("0day"));
    cr_assert(!kz_login_valid(""));
    cr_assert(!kz_login_valid(".hidden"));
    cr_assert(!kz_login_valid("Upper"));
    cr_assert(!kz_login_valid("has space"));
    cr_assert(!kz_login_valid("田中"));
    char long_id[80];
    memset(long_id, 'a', 65);
    long_id[65] = '\0';
    cr_assert(!kz_login_valid(long_id));
}

Test(accounts, password_rules)
{
    cr_assert_null(kz_password_problem("long-enough-1", "tanaka", 10));
    cr_assert_not_null(kz_password_problem("short", "tanaka", 10));
    cr_assert_not_null(kz_password_problem("TanakaTaro", "tanakataro", 10));
    /* Length counts characters, not bytes: ten kanji are ten characters. */
    cr_assert_null(kz_password_problem("一二三四五六七八九十", "x", 10));
    cr_assert_not_null(kz_password_problem("一二三四五六七八九", "x", 10));
}

Test(accounts, generated_passwords_and_tokens)
{
    char a[17], b[17];
    kz_password_generate(a, sizeof a);
    kz_password_generate(b, sizeof b);
    cr_assert_eq(strlen(a), 16);
    cr_assert_str_neq(a, b);
    cr_assert_eq(strcspn(a, "0O1lI8B"), 16, "no look-alike characters: %s", a);

    char t1[KZ_TOKEN_CHARS], t2[KZ_TOKEN_CHARS];
    uint8_t h1[STORE_TOKEN_HASH], h2[STORE_TOKEN_HASH], again[STORE_TOKEN_HASH];
    kz_token_new(t1, h1);
    kz_token_new(t2, h2);
    cr_assert_eq(strlen(t1), 43);
    cr_assert_str_neq(t1, t2);
    cr_assert(kz_token_hash(t1, again));
    cr_assert_arr_eq(h1, again, STORE_TOKEN_HASH);
    cr_assert(!kz_token_hash("short", again));
}

/* Issue 12, defect 5: every CSV cell goes through kz_csv_cell, which keeps spreadsheets from
 * running it as a formula, and user.import reads it back with kz_csv_unguard. */
static char *csv_one(const char *cell)
{
    struct kz_csv csv = {0};
    kz_csv_cell(&csv, cell, true);
    cr_assert(!csv.failed);
    /* Every CSV begins with a UTF-8 BOM (issue 13, item 4); the cell follows it. */
    cr_assert(strncmp(csv.text, "\xef\xbb\xbf", 3) == 0, "%s", csv.text);
    memmove(csv.text, csv.text + 3, strlen(csv.text + 3) + 1);
    return csv.text;
}

Test(csv, formula_cells_are_guarded_and_every_cell_quoted)
{
    const char *cases[][2] = {
        {"+SUM(1,1)", "\"'+SUM(1,1)\"\n"},
        {"=HYPERLINK(\"http://x\",\"y\")", "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"\n"},
        {"-1+1", "\"'-1+1\"\n"},
        {"-", "\"'-\"\n"},
        {"@SUM(A1)", "\"'@SUM(A1)\"\n"},
        {"\t=1", "\"'\t=1\"\n"},
        {"\r=1", "\"'\r=1\"\n"},
        {"+81 22-123-4567", "\"'+81 22-123-4567\"\n"},
        /* an apostrophe that would read as the guard is guarded itself */
        {"'=x", "\"''=x\"\n"},
        {"''", "\"'''\"\n"},
        /* and nothing else changes */
        {"'Tis", "\"'Tis\"\n"},
        {"'", "\"'\"\n"},
        {"田中 花子", "\"田中 花子\"\n"},
        {"a=1", "\"a=1\"\n"},
        {" =1", "\" =1\"\n"},
        {"", "\"\"\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = csv_one(cases[i][0]);
        cr_assert_str_eq(got, cases[i][1], "cell [%s]", cases[i][0]);
        free(got);
    }
    char posix[64], err[256];
    cr_assert_eq(kz_time_zone_load("UTC", posix, sizeof posix, err, sizeof err), 0, "%s", err);
    struct kz_csv csv = {0};
    const char *row[] = {"a", "-b", NULL};
    kz_csv_row(&csv, row, 3);
    kz_csv_time(&csv, 0, false);
    kz_csv_time(&csv, 1767312245000, true);
    cr_assert_str_eq(csv.text, "\xef\xbb\xbf\"a\",\"'-b\",\"\"\n\"\",\"2026-01-02 00:04:05\"\n");
    kz_csv_free(&csv);
}

Test(csv, unguard_gives_back_exactly_what_was_written)
{
    const char *cells[] = {
        "+SUM(1,1)", "-",   "-田中", "@home", "\tx", "\rx", "=1",    "'=x",
        "''",        "'''", "'-'",   "'Tis",  "'",   "",    "plain", "+81 22-123-4567"};
    for (size_t i = 0; i < sizeof cells / sizeof cells[0]; i++) {
        char *text = csv_one(cells[i]);
        /* the cell without its quotes and the newline (none of these holds a quote) */
        size_t n = strlen(text);
        memmove(text, text + 1, n - 3);
        text[n - 3] = '\0';
        kz_csv_unguard(text);
        cr_assert_str_eq(text, cells[i]);
        free(text);
    }
    /* A file made by hand in a spreadsheet: '+81... is +81..., as the spreadsheet shows it. */
    char hand[] = "'+81 22-123-4567", plain[] = "'Tis";
    kz_csv_unguard(hand);
    kz_csv_unguard(plain);
    cr_assert_str_eq(hand, "+81 22-123-4567");
    cr_assert_str_eq(plain, "'Tis");
}

/* Issue 13, item 4: Excel opens a CSV as UTF-8 only when it begins with a BOM (without one,
 * Japanese Excel reads it as Shift_JIS and shows mojibake), and staff read times in the server's
 * time zone (time_zone, default Asia/Tokyo), not UTC. */
Test(csv, every_csv_begins_with_a_bom_and_shows_times_in_the_server_zone)
{
    char posix[64], err[256];
    cr_assert_eq(kz_time_zone_load("Asia/Tokyo", posix, sizeof posix, err, sizeof err), 0, "%s",
                 err);
    cr_assert_str_eq(posix, "JST-9", "the rule a client without tzdata can use");
    struct kz_csv csv = {0};
    const char *header[] = {"at", "name"};
    kz_csv_row(&csv, header, 2);
    kz_csv_time(&csv, 1767312245000, false); /* 2026-01-02T00:04:05Z */
    kz_csv_cell(&csv, "田中 花子", true);
    kz_csv_time(&csv, 1767312245999, true);
    cr_assert_str_eq(csv.text, "\xef\xbb\xbf\"at\",\"name\"\n"
                               "\"2026-01-02 09:04:05\",\"田中 花子\"\n"
                               "\"2026-01-02 09:04:05\"\n");
    kz_csv_free(&csv);
    cr_assert_eq(kz_time_zone_load("America/New_York", posix, sizeof posix, err, sizeof err), 0,
                 "%s", err);
    cr_assert_str_eq(posix, "EST5EDT,M3.2.0,M11.1.0");
    kz_csv_time(&csv, 1767312245000, true);
    cr_assert_str_eq(csv.text, "\xef\xbb\xbf\"2026-01-01 19:04:05\"\n");
    kz_csv_free(&csv);
}

Test(csv, the_time_zone_must_be_a_zone_of_tzdata)
{
    char posix[64] = "unchanged", err[256];
    const char *bad[] = {"",
                         "Mars/Olympus",
                         "Asia",                           /* a directory */
                         "zone.tab",                       /* a file, not a zone */
                         "../../../etc/passwd",            /* outside the zone database */
                         "/usr/share/zoneinfo/Asia/Tokyo", /* a path, not a name */
                         "Asia/../Asia/Tokyo",
                         ":Asia/Tokyo",
                         "JST-9"}; /* a POSIX rule is not a zone name */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        cr_assert_neq(kz_time_zone_load(bad[i], posix, sizeof posix, err, sizeof err), 0, "[%s]",
                      bad[i]);
        cr_assert(strstr(err, "time_zone"), "the message names the setting: %s", err);
    }
    cr_assert_str_eq(posix, "unchanged");
    const char *good[] = {"UTC", "Asia/Tokyo", "Europe/London", "Etc/GMT-9"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert_eq(kz_time_zone_load(good[i], posix, sizeof posix, err, sizeof err), 0, "%s",
                     err);
}

/* Issue 13, item 5: one-time passwords are random (KZ_OTP_CHARS characters of a 53-letter
 * alphabet, over 112 bits), so a keyed BLAKE2b hash stands in for argon2id; the stored hash says
 * which kind it is, and both verify. */
Test(accounts, one_time_passwords_use_a_keyed_fast_hash_and_both_kinds_verify)
{
    uint8_t key[32], other[32];
    memset(key, 7, sizeof key);
    memset(other, 8, sizeof other);
    char otp[KZ_OTP_CHARS + 1], h1[STORE_HASH_MAX + 1], h2[STORE_HASH_MAX + 1];
    kz_password_generate(otp, sizeof otp);
    cr_assert_eq(strlen(otp), 20);
    cr_assert_eq(srv_otp_hash(key, otp, h1), 0);
    cr_assert_eq(srv_otp_hash(key, otp, h2), 0);
    cr_assert(strncmp(h1, "$kzotp1$", 8) == 0, "%s", h1);
    cr_assert_str_neq(h1, h2, "salted: the same password hashes differently");
    bool fast = false;
    cr_assert(srv_password_verify(key, h1, otp, &fast));
    cr_assert(fast);
    cr_assert(srv_password_verify(key, h2, otp, &fast));
    cr_assert(!srv_password_verify(other, h1, otp, &fast), "the hash is keyed");
    cr_assert(!srv_password_verify(key, h1, "not-the-password", &fast));
    h1[strlen(h1) - 2] ^= 1;
    cr_assert(!srv_password_verify(key, h1, otp, &fast), "a damaged hash verifies nothing");
    cr_assert(!srv_password_verify(key, "", otp, &fast));
    cr_assert(!srv_password_verify(key, "$kzotp1$", otp, &fast));
    /* argon2id hashes (every chosen password, and every hash stored before) still verify. */
    struct kz_config c;
    kz_config_defaults(&c);
    c.argon2_opslimit = 1;
    c.argon2_memlimit_kib = 8;
    char a[STORE_HASH_MAX + 1];
    cr_assert_eq(srv_password_hash(&c, "chosen-password-1", a), 0);
    cr_assert(strncmp(a, "$argon2id$", 10) == 0, "%s", a);
    cr_assert(srv_password_verify(key, a, "chosen-password-1", &fast));
    cr_assert(!fast);
    cr_assert(!srv_password_verify(key, a, "chosen-password-2", &fast));
}

#include "idmap.h"

Test(idmap, put_get_delete_and_churn)
{
    struct idmap m = {0};
    int vals[1000];
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(idmap_put(&m, (uint64_t)i + 1, &vals[i]), 0);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(idmap_get(&m, (uint64_t)i + 1), &vals[i]);
    cr_assert_null(idmap_get(&m, 5000));
    for (int i = 0; i < 1000; i += 2)
        idmap_del(&m, (uint64_t)i + 1);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(idmap_get(&m, (uint64_t)i + 1), i % 2 ? &vals[i] : NULL);
    /* Connections come and go for weeks: the table must not grow with churn. */
    size_t cap = m.cap;
    for (uint64_t k = 100000; k < 300000; k++) {
        cr_assert_eq(idmap_put(&m, k, &vals[0]), 0);
        idmap_del(&m, k);
    }
    cr_assert_leq(m.cap, cap * 2);
    cr_assert_eq(m.used, 500);
    idmap_free(&m);
}
