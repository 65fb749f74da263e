/* redact.h - the redaction helper of the record's review (issue 22, docs/records.md): proposes
 * the spans of a message's text that look like personal data, for a person to accept or
 * reject. Japanese phone numbers (fixed, mobile, free dial, +81; with or without hyphens,
 * full-width digits and hyphens, ー), postal codes (〒123-4567, 123-4567), addresses (a
 * municipality and 丁目/番地/番/号 or 1-2-3), e-mail addresses, and the names of users in the
 * directory. Dates (2024-01-01, 2024年1月1日, 令和6年) and amounts (1,000円, ¥1,000) are left
 * alone.
 *
 * Pure and reentrant (its memory is the call's own): it works on UTF-8 and answers in byte
 * offsets that never split a character, so that a span can be stored as a redaction (message
 * id, byte range) and cut out of the text as it is. It is a helper, not a guarantee: the
 * reviewer reads every message and marks by hand what it misses. */
#ifndef KIZUNA_REDACT_H
#define KIZUNA_REDACT_H

#include <stddef.h>

enum kz_redact_kind {
    KZ_REDACT_PHONE,
    KZ_REDACT_POSTAL,
    KZ_REDACT_ADDRESS,
    KZ_REDACT_EMAIL,
    KZ_REDACT_NAME,
    KZ_REDACT_KINDS
};

/* "phone", "postal", "address", "email", "name" (static). */
const char *kz_redact_kind_name(enum kz_redact_kind k);

struct kz_redact_span {
    size_t start, end; /* bytes [start, end) of the text, on character boundaries */
    enum kz_redact_kind kind;
};

/* The directory's names prepared for kz_redact_find: each as typed, one with a space also
 * without it, and its parts of two characters or more (one character is no name to look for).
 * The caller frees it with kz_redact_names_free; NULL if out of memory. */
struct kz_redact_names;
struct kz_redact_names *kz_redact_names_new(const char *const *names, size_t nnames);
void kz_redact_names_free(struct kz_redact_names *ns); /* accepts NULL */

/* Finds the spans of text (len bytes of UTF-8; invalid bytes are characters of their own that
 * match nothing) that look like personal data, names (may be NULL) those of the directory.
 * Writes at most max spans to out, in order, none overlapping (overlaps are merged, keeping the
 * first kind); returns how many it wrote, or (size_t)-1 if out of memory. */
size_t kz_redact_find(const char *text, size_t len, const struct kz_redact_names *names,
                      struct kz_redact_span *out, size_t max);

#endif
