/* gate.c - who may call: the one place a caller is admitted, for every entry point (the op
 * table over the WebSocket and HTTP, the upload and blob endpoints, and later the federation
 * listener).
 *
 * A caller is a session, found by its token (HTTP requests, op auth) or by the id its
 * connection is bound to (the WebSocket, a PATCH reaching its last byte). It is admitted when:
 * the session exists; its user is neither past the account's expiry nor disabled; a session on
 * a shared device has not been idle past shared_session_idle_s; no one-time password waits to
 * be changed, unless the entry point may be used before (passwd, logout, whoami); and the user
 * has the role the entry point needs. Expiry is checked before "disabled": the housekeeping
 * sweep disables expired accounts, and their owners must be told the account expired.
 */
#include "core.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *srv_user_refusal(const struct store_user *u, int64_t now)
{
    if (u->expires_at && now >= u->expires_at)
        return "the account has expired";
    if (u->disabled)
        return "the account is disabled";
    return NULL;
}

const char *srv_session_refusal(struct srv *s, const struct store_session *ses,
                                const struct store_user *u, int64_t now)
{
    const char *why = srv_user_refusal(u, now);
    if (why)
        return why;
    /* last_seen lags by up to session_touch_interval_s; the idle time is meant to be far
     * longer (operations.md). The housekeeping sweep ends such sessions for good. */
    if (ses->shared && now - ses->last_seen > s->cfg->shared_session_idle_s * 1000)
        return "the session on this shared device ended after being idle: log in again";
    return NULL;
}

static enum kz_err refuse(char *why, size_t n, enum kz_err e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum kz_err refuse(char *why, size_t n, enum kz_err e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return e;
}

enum kz_err srv_gate_find_token(struct srv *s, const char *token, struct store_session *ses,
                                char *why, size_t n)
{
    uint8_t hash[STORE_TOKEN_HASH];
    if (!token || !*token)
        return refuse(why, n, KZ_UNAUTHORIZED, "log in first (Authorization: Bearer <token>)");
    enum store_rc rc =
        kz_token_hash(token, hash) ? store_session_lookup(s->store, hash, ses) : STORE_NOT_FOUND;
    if (rc == STORE_NOT_FOUND)
        return refuse(why, n, KZ_UNAUTHORIZED, "the token is not valid: log in again");
    if (rc != STORE_OK)
        return refuse(why, n, KZ_INTERNAL, "session lookup failed");
    return KZ_OK;
}

enum kz_err srv_gate_find_id(struct srv *s, int64_t session_id, struct store_session *ses,
                             char *why, size_t n)
{
    if (session_id == 0)
        return refuse(why, n, KZ_UNAUTHORIZED, "log in first");
    enum store_rc rc = store_session_get(s->store, session_id, ses);
    if (rc == STORE_NOT_FOUND)
        return refuse(why, n, KZ_UNAUTHORIZED, "the session has ended: log in again");
    if (rc != STORE_OK)
        return refuse(why, n, KZ_INTERNAL, "session lookup failed");
    return KZ_OK;
}

enum kz_err srv_gate_admit(struct srv *s, const struct store_session *ses,
                           const struct srv_gate_need *need, struct srv_auth *out, char *why,
                           size_t n)
{
    if (store_user_get(s->store, ses->user_id, &out->user) != STORE_OK)
        return refuse(why, n, KZ_INTERNAL, "user lookup failed");
    const char *refusal = srv_session_refusal(s, ses, &out->user, kz_now_ms());
    if (refusal)
        return refuse(why, n, KZ_UNAUTHORIZED, "%s", refusal);
    if (out->user.must_change_password && !need->before_pwchange)
        return refuse(why, n, KZ_FORBIDDEN,
                      "you must change your one-time password first (op passwd)");
    if (need->access == OP_ADMIN && !kz_role_is(out->user.role, KZ_ROLE_ADMIN))
        return refuse(why, n, KZ_FORBIDDEN, "only an admin may use %s", need->what);
    out->session_id = ses->id;
    return KZ_OK;
}

enum kz_err srv_gate_token(struct srv *s, const char *token, const struct srv_gate_need *need,
                           struct srv_auth *out, char *why, size_t n)
{
    struct store_session ses;
    enum kz_err e = srv_gate_find_token(s, token, &ses, why, n);
    return e ? e : srv_gate_admit(s, &ses, need, out, why, n);
}
