/* smtpsink.h - a mail relay stand-in for tests: a plain SMTP server on 127.0.0.1 that takes
 * what kizunad sends, keeps each message whole for the test to parse, and can refuse on
 * demand (421 at the greeting for the next sessions, 550 for a recipient). */
#ifndef KIZUNA_TEST_SMTPSINK_H
#define KIZUNA_TEST_SMTPSINK_H

#include <stdbool.h>
#include <stddef.h>

struct smtp_msg {
    char from[256], rcpt[256];
    char data[65536]; /* the message as sent, dot-unstuffed */
    size_t len;
};

struct smtpsink;
struct smtpsink *smtpsink_start(void);
int smtpsink_port(const struct smtpsink *s);
/* The next n sessions are greeted with 421 (the relay is busy). */
void smtpsink_busy(struct smtpsink *s, int n);
/* RCPT TO for this address is refused with 550 (unknown user). */
void smtpsink_refuse(struct smtpsink *s, const char *rcpt);
/* Waits for the n-th message (0-based) accepted for rcpt; false after timeout_ms. */
bool smtpsink_wait(struct smtpsink *s, const char *rcpt, int n, int timeout_ms,
                   struct smtp_msg *out);
int smtpsink_count(struct smtpsink *s, const char *rcpt);
/* Sessions the sink saw (including refused ones). */
int smtpsink_sessions(struct smtpsink *s);
void smtpsink_stop(struct smtpsink *s);

/* Parsing what arrived: a header's value, unfolded, with RFC 2047 encoded words (UTF-8, B or
 * Q) decoded; and the body decoded from base64 or quoted-printable per its
 * Content-Transfer-Encoding. false if absent or malformed. */
bool mail_header(const struct smtp_msg *m, const char *name, char *out, size_t n);
bool mail_body(const struct smtp_msg *m, char *out, size_t n);

#endif
