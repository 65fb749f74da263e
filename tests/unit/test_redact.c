/* test_redact.c - the redaction helper (server/redact.c): it finds the Japanese phone-number,
 * postal-code and address forms, e-mail addresses and directory names of docs/records.md, in
 * byte offsets on character boundaries, and leaves dates and amounts alone. Also the record's
 * time zones and times (record_format.c), which are as pure. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "record.h"
#include "redact.h"

#define MAXS 32

/* The spans of text as "kind:text|kind:text|..." in out. */
static void found(const char *text, const char *const *names, size_t nnames, char *out, size_t n)
{
    struct kz_redact_span s[MAXS];
    struct kz_redact_names *ns = kz_redact_names_new(names, nnames);
    cr_assert_not_null(ns);
    size_t k = kz_redact_find(text, strlen(text), ns, s, MAXS);
    kz_redact_names_free(ns);
    cr_assert_neq(k, (size_t)-1);
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < k; i++) {
        cr_assert_lt(s[i].start, s[i].end);
        cr_assert_leq(s[i].end, strlen(text));
        /* Never inside a character: both ends are a character's first byte (or the end). */
        cr_assert(((unsigned char)text[s[i].start] & 0xc0) != 0x80, "start splits a character");
        cr_assert(s[i].end == strlen(text) || ((unsigned char)text[s[i].end] & 0xc0) != 0x80,
                  "end splits a character");
        if (i)
            cr_assert_leq(s[i - 1].end, s[i].start, "in order, not overlapping");
        len += (size_t)snprintf(out + len, n - len, "%s%s:%.*s", i ? "|" : "",
                                kz_redact_kind_name(s[i].kind), (int)(s[i].end - s[i].start),
                                text + s[i].start);
    }
}

static void expect(const char *text, const char *want)
{
    char got[1024];
    found(text, NULL, 0, got, sizeof got);
    cr_expect_str_eq(got, want, "in «%s»", text);
}

Test(redact, phone_numbers_fixed_mobile_free_dial_with_and_without_hyphens)
{
    expect("連絡先は090-1234-5678です", "phone:090-1234-5678");
    expect("連絡先は09012345678です", "phone:09012345678");
    expect("080 1234 5678 まで", "phone:080 1234 5678");
    expect("携帯 070-1234-5678", "phone:070-1234-5678");
    expect("市役所 089-948-6688", "phone:089-948-6688");
    expect("東京 03-1234-5678、大阪 06(6123)4567", "phone:03-1234-5678|phone:06(6123)4567");
    expect("(0898)22-1234 へ", "phone:(0898)22-1234");
    expect("0899412345", "phone:0899412345");
    expect("フリーダイヤル 0120-000-000", "phone:0120-000-000");
    expect("+81-90-1234-5678", "phone:+81-90-1234-5678");
    expect("IP電話 050-1234-5678", "phone:050-1234-5678");
}

Test(redact, phone_numbers_in_full_width_digits_and_dashes)
{
    expect("０９０－１２３４－５６７８", "phone:０９０－１２３４－５６７８");
    expect("０９０ー１２３４ー５６７８に電話", "phone:０９０ー１２３４ー５６７８");
    expect("TEL：０８９‐９４８‐６６８８", "phone:０８９‐９４８‐６６８８");
    expect("０９０１２３４５６７８", "phone:０９０１２３４５６７８");
    expect("03−1234−5678", "phone:03−1234−5678"); /* U+2212 */
}

Test(redact, a_phone_number_followed_by_other_numbers)
{
    expect("090-1234-5678 3人", "phone:090-1234-5678");
    expect("090-1234-5678-9", ""); /* not a number of Japan: twelve digits */
    expect("番号 0901234567890", "");
    expect("A09012345678", ""); /* part of a code */
}

Test(redact, postal_codes)
{
    expect("〒790-0001 松山市", "postal:〒790-0001");
    expect("〒 7900001", "postal:〒 7900001");
    expect("郵便番号 123-4567", "postal:123-4567");
    expect("〒７９０－０００１", "postal:〒７９０－０００１");
    expect("123-4567-8", "");
}

Test(redact, addresses)
{
    expect("住所 松山市一番町四丁目7番地2。", "address:松山市一番町四丁目7番地2");
    expect("住所松山市一番町4-7-2", "address:松山市一番町4-7-2");
    expect("愛媛県松山市南堀端町2番地3 へ", "address:愛媛県松山市南堀端町2番地3");
    expect("東京都千代田区霞が関1-3-1", "address:東京都千代田区霞が関1-3-1");
    expect("住所が松山市一番町4-7-2です", "address:松山市一番町4-7-2");
    expect("大洲市東大洲１２３番地", "address:大洲市東大洲１２３番地");
    expect("西予市宇和町卯之町3丁目434番地1", "address:西予市宇和町卯之町3丁目434番地1");
    expect("鬼北町大字近永800番地", "address:鬼北町大字近永800番地");
}

Test(redact, roads_dates_and_amounts_are_left_alone)
{
    expect("県道12号線が冠水しています", "");
    expect("国道196号 通行止め", "");
    expect("2024-01-01 から", "");
    expect("2024年1月1日から避難", "");
    expect("令和6年能登半島地震", "");
    expect("令和６年１月１日", "");
    expect("見舞金 1,000円、¥1,000、￥10,000、１，０００円", "");
    expect("午前10時30分、3人、50%", "");
    expect("2024/01/01 09:00", "");
}

Test(redact, email_addresses)
{
    expect("メールは taro.yamada+x@city.matsuyama.ehime.jp まで。",
           "email:taro.yamada+x@city.matsuyama.ehime.jp");
    expect("ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ", "email:ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ");
    expect("@everyone 集合", "");
    expect("a@b", "");
}

Test(redact, names_of_the_directory)
{
    const char *names[] = {"山田 花子", "Tanaka Ichiro", "佐藤", "x"};
    char got[1024];
    found("山田花子さんと山田さん、花子さん、佐藤さん", names, 4, got, sizeof got);
    cr_assert_str_eq(got, "name:山田花子|name:山田|name:花子|name:佐藤");
    found("tanaka ichiro / Tanaka Ichiro / Tanakayama", names, 4, got, sizeof got);
    cr_assert_str_eq(got, "name:Tanaka Ichiro");
    /* Typed with another space: both parts still go. */
    found("山田　花子 (全角の空白)", names, 4, got, sizeof got);
    cr_assert_str_eq(got, "name:山田|name:花子");
}

Test(redact, everything_at_once_merged_in_order)
{
    const char *names[] = {"山田 花子"};
    char got[1024];
    found("要救助者 山田花子 さん、連絡先 090-1234-5678、住所 〒790-0001 松山市一番町四丁目7番地2。"
          "2024年1月1日から避難、見舞金 1,000円",
          names, 1, got, sizeof got);
    cr_assert_str_eq(got, "name:山田花子|phone:090-1234-5678|postal:〒790-0001|"
                          "address:松山市一番町四丁目7番地2");
}

Test(redact, invalid_utf8_and_limits)
{
    /* Invalid bytes match nothing and never shift a span off a boundary. */
    const char text[] = "\xff\xfe 090-1234-5678 \xe3\x81";
    struct kz_redact_span s[1];
    size_t k = kz_redact_find(text, sizeof text - 1, NULL, s, 1);
    cr_assert_eq(k, 1);
    cr_assert_eq(s[0].start, 3);
    cr_assert_eq(s[0].end, 16);
    /* At most max spans. */
    k = kz_redact_find("090-1234-5678 090-1234-5679", 27, NULL, s, 1);
    cr_assert_eq(k, 1);
    cr_assert_eq(kz_redact_find("", 0, NULL, s, 1), 0);
}

Test(record_time, zones_without_tzdata)
{
    int off = -1;
    cr_assert(kz_record_zone_offset("Asia/Tokyo", &off));
    cr_assert_eq(off, 540);
    cr_assert(kz_record_zone_offset("UTC", &off));
    cr_assert_eq(off, 0);
    cr_assert_not(kz_record_zone_offset("Europe/London", &off),
                  "daylight saving: not a table zone");
    cr_assert_not(kz_record_zone_offset(NULL, &off));
    char t[KZ_RECORD_TIME_CHARS];
    kz_record_time(1704034800000LL, 540, true, t); /* 2023-12-31T15:00:00Z */
    cr_assert_str_eq(t, "2024-01-01T00:00:00+09:00");
    kz_record_time(1704034800000LL, 540, false, t);
    cr_assert_str_eq(t, "2024-01-01 00:00:00");
    kz_record_time(1704034800999LL, 0, true, t);
    cr_assert_str_eq(t, "2023-12-31T15:00:00+00:00");
}
