/* ops_account.c - sessions and one's own account: login, auth, logout, whoami, passwd; and the
 * password hashing every op that touches a password goes through: argon2id for passwords people
 * choose, a keyed BLAKE2b for the one-time passwords the server generates. */
#include "core.h"
#include "metrics.h"
#include "server.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* ---- the two kinds of password hash ---- */

#define OTP_PREFIX     "$kzotp1$"
#define OTP_SALT_BYTES 16
#define OTP_MAC_BYTES  32

void srv_otp_key(struct srv *s, uint8_t key[32])
{
    /* The first 32 bytes of the Ed25519 secret key are its seed, the secret in server.key. */
    crypto_kdf_derive_from_key(key, 32, 1, "kz-otp-1", s->sk);
}

static void otp_mac(const uint8_t key[32], const uint8_t salt[OTP_SALT_BYTES], const char *password,
                    uint8_t mac[OTP_MAC_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, 32, OTP_MAC_BYTES);
    crypto_generichash_update(&st, salt, OTP_SALT_BYTES);
    crypto_generichash_update(&st, (const unsigned char *)password, strlen(password));
    crypto_generichash_final(&st, mac, OTP_MAC_BYTES);
    sodium_memzero(&st, sizeof st);
}

int srv_otp_hash(const uint8_t key[32], const char *password, char out[STORE_HASH_MAX + 1])
{
    uint8_t salt[OTP_SALT_BYTES], mac[OTP_MAC_BYTES];
    char
        salt64[sodium_base64_ENCODED_LEN(OTP_SALT_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    char mac64[sodium_base64_ENCODED_LEN(OTP_MAC_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    randombytes_buf(salt, sizeof salt);
    otp_mac(key, salt, password, mac);
    sodium_bin2base64(salt64, sizeof salt64, salt, sizeof salt,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_bin2base64(mac64, sizeof mac64, mac, sizeof mac,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    int n = snprintf(out, STORE_HASH_MAX + 1, OTP_PREFIX "%s$%s", salt64, mac64);
    sodium_memzero(mac, sizeof mac);
    return n > 0 && n <= STORE_HASH_MAX ? 0 : -1;
}

bool srv_password_verify(const uint8_t key[32], const char *hash, const char *password, bool *fast)
{
    *fast = strncmp(hash, OTP_PREFIX, strlen(OTP_PREFIX)) == 0;
    if (!*fast)
        return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
    const char *salt64 = hash + strlen(OTP_PREFIX), *dollar = strchr(salt64, '$');
    uint8_t salt[OTP_SALT_BYTES], want[OTP_MAC_BYTES], got[OTP_MAC_BYTES];
    size_t salt_len = 0, mac_len = 0;
    if (!dollar ||
        sodium_base642bin(salt, sizeof salt, salt64, (size_t)(dollar - salt64), NULL, &salt_len,
                          NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        salt_len != sizeof salt ||
        sodium_base642bin(want, sizeof want, dollar + 1, strlen(dollar + 1), NULL, &mac_len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        mac_len != sizeof want)
        return false;
    otp_mac(key, salt, password, got);
    bool same = crypto_verify_32(got, want) == 0;
    sodium_memzero(got, sizeof got);
    return same;
}

/* ---- password jobs on the worker pool ---- */

static void pw_work(struct kz_job *job)
{
    struct srv_pw_job *pj = (struct srv_pw_job *)job;
    bool fast = false;
    if (pj->verify_hash[0])
        pj->verified = srv_password_verify(pj->otp_key, pj->verify_hash, pj->password, &fast);
    if (pj->new_password[0] && (pj->verified || !pj->verify_hash[0])) {
        pj->hashed = pj->one_time ? srv_otp_hash(pj->otp_key, pj->new_password, pj->new_hash) == 0
                                  : crypto_pwhash_str(pj->new_hash, pj->new_password,
                                                      strlen(pj->new_password), pj->opslimit,
                                                      pj->memlimit) == 0;
    } else if (fast) {
        /* Every login costs one argon2id, whatever kind of hash the account holds (and for a
         * login id that does not exist): how long a login takes tells no one which accounts
         * still have their one-time password. */
        char scratch[crypto_pwhash_STRBYTES];
        if (crypto_pwhash_str(scratch, pj->password, strlen(pj->password), pj->opslimit,
                              pj->memlimit) == 0)
            sodium_memzero(scratch, sizeof scratch);
    }
}

static void pw_done(struct kz_job *job, bool ran)
{
    struct srv_pw_job *pj = (struct srv_pw_job *)job;
    kz_log_request(pj->call->req_id); /* the request's second half: its lines, too */
    if (ran)
        pj->then(pj);
    else
        srv_call_finish(pj->call, srv_fail(pj->call, KZ_INTERNAL, "the server is shutting down"));
    kz_log_request(0);
    sodium_memzero(pj, sizeof *pj);
    free(pj);
}

struct srv_pw_job *srv_pw_job_new(struct srv_call *c, void (*then)(struct srv_pw_job *))
{
    struct srv_pw_job *pj = calloc(1, sizeof *pj);
    if (!pj)
        return NULL;
    const struct kz_config *cfg = srv_config(c->srv);
    pj->job.work = pw_work;
    pj->job.done = pw_done;
    pj->call = c;
    pj->then = then;
    pj->opslimit = (unsigned long long)cfg->argon2_opslimit;
    pj->memlimit = (size_t)cfg->argon2_memlimit_kib * 1024;
    srv_otp_key(c->srv, pj->otp_key);
    return pj;
}

enum kz_err srv_pw_job_submit(struct srv_pw_job *pj)
{
    struct srv_call *c = pj->call;
    if (kz_workers_submit(srv_workers(c->srv), &pj->job)) {
        c->deferred = true;
        return KZ_OK;
    }
    sodium_memzero(pj, sizeof *pj);
    free(pj);
    KZ_WARN("hash_queue_full", "op=%s addr=%s", c->op->name, c->peer);
    return srv_fail(c, KZ_RATE_LIMITED, "the server is busy checking passwords: retry in 1 second");
}

/* Starts a password job for an op, or says why it cannot. */
static enum kz_err pw_job_or_fail(struct srv_call *c, struct srv_pw_job *pj)
{
    if (!pj)
        return srv_fail(c, KZ_INTERNAL, "out of memory");
    return srv_pw_job_submit(pj);
}

int srv_password_hash(const struct kz_config *cfg, const char *password,
                      char out[STORE_HASH_MAX + 1])
{
    return crypto_pwhash_str(out, password, strlen(password),
                             (unsigned long long)cfg->argon2_opslimit,
                             (size_t)cfg->argon2_memlimit_kib * 1024);
}

cJSON *srv_user_json(const struct store_user *u)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "login", u->login);
    cJSON_AddStringToObject(o, "name", u->name);
    cJSON_AddStringToObject(o, "role", u->role);
    cJSON_AddStringToObject(o, "department", u->department_name);
    cJSON_AddBoolToObject(o, "disabled", u->disabled);
    cJSON_AddBoolToObject(o, "must_change_password", u->must_change_password);
    cJSON_AddNumberToObject(o, "created_at", (double)u->created_at);
    cJSON_AddStringToObject(o, "email", u->email);
    cJSON_AddStringToObject(o, "phone", u->phone);
    if (u->expires_at)
        cJSON_AddNumberToObject(o, "expires_at", (double)u->expires_at);
    else
        cJSON_AddNullToObject(o, "expires_at");
    return o;
}

static cJSON *session_json(const struct store_session *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)s->id);
    cJSON_AddStringToObject(o, "device", s->device);
    cJSON_AddNumberToObject(o, "created_at", (double)s->created_at);
    cJSON_AddNumberToObject(o, "last_seen", (double)s->last_seen);
    cJSON_AddBoolToObject(o, "shared", s->shared);
    return o;
}

/* The server's time zone, in every reply a client gets as it starts (login, join, auth,
 * whoami): clients show times in it, not in the zone of the machine they run on. The POSIX rule
 * works without tzdata on the client. */
static void add_time_zone(struct srv_call *c)
{
    const struct kz_config *cfg = srv_config(c->srv);
    cJSON_AddStringToObject(c->result, "time_zone", cfg->time_zone);
    cJSON_AddStringToObject(c->result, "time_zone_posix", cfg->time_zone_posix);
    /* The server's id: clients name their user "login@server_id" in what devices sign. */
    cJSON_AddStringToObject(c->result, "server_id", srv_server_id(c->srv));
}

/* ---- login ---- */

enum kz_err srv_session_open(struct srv_call *c, const struct store_user *u, const char *device,
                             bool shared, const char *action)
{
    struct srv *s = c->srv;
    char token[KZ_TOKEN_CHARS];
    uint8_t hash[STORE_TOKEN_HASH];
    kz_token_new(token, hash);
    struct store_session ses = {.user_id = u->id, .shared = shared};
    snprintf(ses.device, sizeof ses.device, "%s", device ? device : "unnamed device");
    snprintf(ses.address, sizeof ses.address, "%s", c->peer);
    ses.created_at = ses.last_seen = kz_now_ms();
    if (store_session_insert(srv_store(s), hash, &ses) != STORE_OK) {
        sodium_memzero(token, sizeof token);
        return srv_fail(c, KZ_INTERNAL, "cannot create the session");
    }
    c->result = cJSON_CreateObject();
    cJSON_AddStringToObject(c->result, "token", token);
    cJSON_AddItemToObject(c->result, "user", srv_user_json(u));
    cJSON_AddItemToObject(c->result, "session", session_json(&ses));
    add_time_zone(c);
    sodium_memzero(token, sizeof token);
    if (!c->is_http)
        srv_tx(s)->bind(srv_tx(s)->ctx, c->conn_id, ses.id, u->id);
    KZ_INFO("login", "login=%s session=%lld addr=%s shared=%d", u->login, (long long)ses.id,
            c->peer, shared);
    cJSON *details = cJSON_CreateObject();
    cJSON_AddNumberToObject(details, "session", (double)ses.id);
    cJSON_AddStringToObject(details, "device", ses.device);
    if (shared)
        cJSON_AddBoolToObject(details, "shared", true);
    srv_audit(c, action, u->login, details);
    return KZ_OK;
}

static const char wrong_credentials[] = "wrong login id or password";

static void login_then(struct srv_pw_job *pj)
{
    struct srv_call *c = pj->call;
    struct srv *s = c->srv;
    struct store *st = srv_store(s);
    const char *login = srv_arg_str(c, "login");
    struct store_user u;
    enum kz_err e;

    if (!pj->verified) {
        KZ_WARN("login_failed", "login=%s addr=%s", kz_login_valid(login) ? login : "-", c->peer);
        bool locked = srv_throttle_failed(s, login, c->peer);
        kz_metrics.login_failures++;
        kz_metrics.login_lockouts += locked;
        srv_audit(c, "login.failed", kz_login_valid(login) ? login : "-", NULL);
        if (locked)
            srv_audit(c, "login.locked", kz_login_valid(login) ? login : "-", NULL);
        e = srv_fail(c, KZ_UNAUTHORIZED, wrong_credentials);
        goto out;
    }
    srv_throttle_succeeded(s, login);
    /* The account may have changed while the hash ran. */
    const char *refusal = "the account is disabled";
    if (store_user_get_by_login(st, login, &u) != STORE_OK ||
        (refusal = srv_user_refusal(&u, kz_now_ms()))) {
        KZ_WARN("login_refused", "login=%s addr=%s reason=\"%s\"", login, c->peer, refusal);
        e = srv_fail(c, KZ_UNAUTHORIZED, "%s", refusal);
        goto out;
    }
    if ((e = srv_call_write_begin(c)))
        goto out;
    e = srv_session_open(c, &u, srv_arg_str(c, "device"), srv_arg_bool(c, "shared", false),
                         "login");
out:
    srv_call_finish(c, e);
}

enum kz_err op_login(struct srv_call *c)
{
    const char *login = srv_arg_str(c, "login");
    const char *password = srv_arg_str(c, "password");
    /* Refused before any hashing: a guessing storm costs a lookup, not argon2id. */
    int64_t wait = srv_throttle_wait(c->srv, login, c->peer);
    if (wait > 0) {
        KZ_WARN("login_throttled", "login=%s addr=%s wait_s=%lld",
                kz_login_valid(login) ? login : "-", c->peer, (long long)wait);
        c->retry_after_s = wait;
        return srv_fail(c, KZ_RATE_LIMITED, "too many failed logins: retry in %lld s",
                        (long long)wait);
    }
    struct store_user u;
    enum store_rc rc = kz_login_valid(login) ? store_user_get_by_login(srv_store(c->srv), login, &u)
                                             : STORE_NOT_FOUND;
    if (rc != STORE_OK && rc != STORE_NOT_FOUND)
        return srv_fail(c, KZ_INTERNAL, "user lookup failed");
    struct srv_pw_job *pj = srv_pw_job_new(c, login_then);
    if (pj) {
        snprintf(pj->password, sizeof pj->password, "%s", password);
        if (rc == STORE_OK) {
            snprintf(pj->verify_hash, sizeof pj->verify_hash, "%s", u.pw_hash);
        } else {
            /* Unknown login: spend the same time hashing, so timing does not reveal which
             * login ids exist. verified stays false. */
            snprintf(pj->new_password, sizeof pj->new_password, "%s", password);
        }
    }
    return pw_job_or_fail(c, pj);
}

enum kz_err op_auth(struct srv_call *c)
{
    struct srv *s = c->srv;
    struct store_session ses;
    struct srv_auth who;
    /* auth itself may be used before a one-time password is changed: passwd needs it. */
    const struct srv_gate_need need = {OP_USER, true, "auth"};
    char why[192];
    enum kz_err e = srv_gate_find_token(s, srv_arg_str(c, "token"), &ses, why, sizeof why);
    if (!e)
        e = srv_gate_admit(s, &ses, &need, &who, why, sizeof why);
    if (e)
        return srv_fail(c, e, "%s", why);
    const struct store_user u = who.user;
    if (!c->is_http)
        srv_tx(s)->bind(srv_tx(s)->ctx, c->conn_id, ses.id, u.id);
    c->result = cJSON_CreateObject();
    cJSON_AddItemToObject(c->result, "user", srv_user_json(&u));
    cJSON_AddItemToObject(c->result, "session", session_json(&ses));
    add_time_zone(c);
    return KZ_OK;
}

enum kz_err op_logout(struct srv_call *c)
{
    struct srv *s = c->srv;
    /* A device's keys go with its session: the CLI wipes them at logout, so senders must stop
     * encrypting to it. */
    enum kz_err e = srv_devices_of_session_revoke(c, c->auth.session_id);
    if (e)
        return e;
    if (store_session_end(srv_store(s), c->auth.session_id, kz_now_ms()) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot end the session");
    const struct srv_transport *tx = srv_tx(s);
    if (!c->is_http)
        tx->bind(tx->ctx, c->conn_id, 0, 0);
    struct srv_close which = {.user_id = c->auth.user.id,
                              .session_id = c->auth.session_id,
                              .except_conn = c->conn_id,
                              .reason = "logged out"};
    tx->close_conns(tx->ctx, &which);
    KZ_INFO("logout", "login=%s session=%lld", c->auth.user.login, (long long)c->auth.session_id);
    return KZ_OK;
}

enum kz_err op_whoami(struct srv_call *c)
{
    struct store_session ses;
    if (store_session_get(srv_store(c->srv), c->auth.session_id, &ses) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "session lookup failed");
    c->result = cJSON_CreateObject();
    cJSON_AddItemToObject(c->result, "user", srv_user_json(&c->auth.user));
    cJSON_AddItemToObject(c->result, "session", session_json(&ses));
    add_time_zone(c);
    return KZ_OK;
}

/* ---- passwd ---- */

static void passwd_then(struct srv_pw_job *pj)
{
    struct srv_call *c = pj->call;
    struct srv *s = c->srv;
    struct store *st = srv_store(s);
    enum kz_err e;
    if (!pj->verified) {
        KZ_WARN("passwd_failed", "login=%s addr=%s", c->auth.user.login, c->peer);
        e = srv_fail(c, KZ_FORBIDDEN, "the current password is wrong");
        goto out;
    }
    if (!pj->hashed) {
        e = srv_fail(c, KZ_INTERNAL, "cannot hash the new password");
        goto out;
    }
    int64_t now = kz_now_ms();
    if ((e = srv_call_write_begin(c)))
        goto out;
    if (store_user_set_password(st, c->auth.user.id, pj->new_hash, false, now) != STORE_OK ||
        store_session_end_user(st, c->auth.user.id, c->auth.session_id, now) != STORE_OK) {
        e = srv_fail(c, KZ_INTERNAL, "cannot store the new password");
        goto out;
    }
    /* A new password logs out every other device: the old one may be what leaked. */
    const struct srv_transport *tx = srv_tx(s);
    struct srv_close which = {.user_id = c->auth.user.id,
                              .keep_session_id = c->auth.session_id,
                              .reason = "password changed"};
    tx->close_conns(tx->ctx, &which);
    KZ_INFO("passwd", "login=%s", c->auth.user.login);
    srv_audit(c, "passwd", c->auth.user.login, NULL);
out:
    srv_call_finish(c, e);
}

enum kz_err op_passwd(struct srv_call *c)
{
    const char *np = srv_arg_str(c, "new_password");
    const char *problem =
        kz_password_problem(np, c->auth.user.login, srv_config(c->srv)->password_min_length);
    if (problem)
        return srv_fail(c, KZ_BAD_REQUEST, "%s", problem);
    struct srv_pw_job *pj = srv_pw_job_new(c, passwd_then);
    if (pj) {
        snprintf(pj->verify_hash, sizeof pj->verify_hash, "%s", c->auth.user.pw_hash);
        snprintf(pj->password, sizeof pj->password, "%s", srv_arg_str(c, "old_password"));
        snprintf(pj->new_password, sizeof pj->new_password, "%s", np);
    }
    return pw_job_or_fail(c, pj);
}

/* ---- sessions and devices ---- */

struct sessions_ctx {
    cJSON *arr;
    int64_t current;
};

static int session_row(void *arg, const struct store_session *ses)
{
    struct sessions_ctx *sc = arg;
    cJSON *o = session_json(ses);
    cJSON_AddStringToObject(o, "address", ses->address);
    cJSON_AddBoolToObject(o, "current", ses->id == sc->current);
    cJSON_AddItemToArray(sc->arr, o);
    return 0;
}

/* One's own sessions, or (admins) anyone's: what a lost phone's session looks like. */
enum kz_err op_session_list(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    const char *login = srv_arg_str(c, "login");
    struct store_user u = c->auth.user;
    if (login && strcmp(login, c->auth.user.login) != 0) {
        if (!kz_role_is(c->auth.user.role, KZ_ROLE_ADMIN))
            return srv_fail(c, KZ_FORBIDDEN, "only an admin may list another user's sessions");
        if (!kz_login_valid(login) || store_user_get_by_login(st, login, &u) != STORE_OK)
            return srv_fail(c, KZ_NOT_FOUND, "no user with login id '%s'",
                            kz_login_valid(login) ? login : "?");
    }
    c->result = cJSON_CreateObject();
    cJSON_AddStringToObject(c->result, "login", u.login);
    struct sessions_ctx sc = {cJSON_AddArrayToObject(c->result, "sessions"), c->auth.session_id};
    if (store_session_each(st, u.id, session_row, &sc) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "session list failed");
    return KZ_OK;
}

/* Ends one session (a lost phone): its token stops working and its live connections close at
 * once. Users revoke their own; admins anyone's. */
enum kz_err op_session_revoke(struct srv_call *c)
{
    struct store *st = srv_store(c->srv);
    struct store_session ses;
    int64_t id = srv_arg_int(c, "session", 0);
    bool admin = kz_role_is(c->auth.user.role, KZ_ROLE_ADMIN);
    if (store_session_get(st, id, &ses) != STORE_OK || (ses.user_id != c->auth.user.id && !admin))
        return srv_fail(c, KZ_NOT_FOUND, "no live session %lld", (long long)id);
    enum kz_err e = srv_devices_of_session_revoke(c, id);
    if (e)
        return e;
    if (store_session_end(st, id, kz_now_ms()) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "cannot end the session");
    const struct srv_transport *tx = srv_tx(c->srv);
    /* Its own reason when an admin cut off someone else's device, so that device can say so. */
    struct srv_close which = {.user_id = ses.user_id,
                              .session_id = id,
                              .except_conn = c->conn_id,
                              .reason = ses.user_id == c->auth.user.id
                                            ? "session revoked"
                                            : "session revoked by an admin"};
    tx->close_conns(tx->ctx, &which);
    if (id == c->auth.session_id && !c->is_http)
        tx->bind(tx->ctx, c->conn_id, 0, 0);
    KZ_INFO("session_revoked", "by=%s session=%lld user_id=%lld", c->auth.user.login, (long long)id,
            (long long)ses.user_id);
    struct store_user owner;
    cJSON *details = cJSON_CreateObject();
    cJSON_AddNumberToObject(details, "session", (double)id);
    cJSON_AddStringToObject(details, "device", ses.device);
    srv_audit(c, "session.revoke",
              store_user_get(st, ses.user_id, &owner) == STORE_OK ? owner.login : "-", details);
    return KZ_OK;
}
