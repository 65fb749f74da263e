/* proto.c - the one protocol: parse a request, find its op in the command table, check who may
 * call it and what it carries, run it, and reply. Both transports come through here.
 *
 * Replies to anything that ran while a transaction was open are held until it commits
 * (commit.c), and then until that commit is on disk (outbox.c): an acknowledgement always
 * means "on disk". */
#include "core.h"
#include "metrics.h"
#include "event_format.h"
#include "json_write.h"

#include <libwebsockets.h>
#include <sodium.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *code;
    int http;
} errs[] = {
    [KZ_OK] = {"ok", 200},
    [KZ_BAD_REQUEST] = {"bad_request", 400},
    [KZ_UNAUTHORIZED] = {"unauthorized", 401},
    [KZ_FORBIDDEN] = {"forbidden", 403},
    [KZ_NOT_FOUND] = {"not_found", 404},
    [KZ_CONFLICT] = {"conflict", 409},
    [KZ_TOO_LARGE] = {"too_large", 413},
    [KZ_RATE_LIMITED] = {"rate_limited", 429},
    [KZ_INTERNAL] = {"internal", 500},
    [KZ_UNAVAILABLE] = {"unavailable", 503},
};

const char *kz_err_code(enum kz_err e)
{
    return errs[e].code;
}

int kz_err_http_status(enum kz_err e)
{
    return errs[e].http;
}

struct kz_frame *kz_frame_from_text(const char *text, size_t len, int http_status)
{
    /* LWS_PRE bytes for the WebSocket header, then the text and a NUL. */
    struct kz_frame *f = malloc(sizeof *f + LWS_PRE + len + 1);
    if (!f)
        return NULL;
    f->refs = 1;
    f->http_status = http_status;
    f->req_id = 0;
    f->len = len;
    f->data = f->buf + LWS_PRE;
    memcpy(f->data, text, len);
    f->data[len] = '\0';
    return f;
}

struct kz_frame *kz_frame_from_json(const cJSON *json, int http_status)
{
    char *text = cJSON_PrintUnformatted(json);
    if (!text)
        return NULL;
    struct kz_frame *f = kz_frame_from_text(text, strlen(text), http_status);
    cJSON_free(text);
    return f;
}

struct kz_frame *kz_frame_ref(struct kz_frame *f)
{
    f->refs++;
    return f;
}

void kz_frame_unref(struct kz_frame *f)
{
    if (f && --f->refs == 0)
        free(f);
}

struct srv *srv_new(const struct kz_config *cfg, struct store *store, struct kz_workers *workers,
                    const struct srv_transport *tx)
{
    struct srv *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->cfg = cfg;
    s->store = store;
    s->workers = workers;
    s->tx = *tx;
    kz_metrics.start_ms = kz_now_ms();
    if (srv_jma_init(s) != 0) { /* its rules are broken: logged (jma_rules_invalid) */
        free(s);
        return NULL;
    }
    return s;
}

const char *srv_server_id(struct srv *s)
{
    return s->origin;
}

void srv_free(struct srv *s)
{
    if (!s)
        return;
    srv_push_free(s); /* its last answers are written before the flush */
    srv_flush(s);
    srv_out_free(s);
    srv_events_forget(s);
    free(s->pending);
    free(s->pushes);
    free(s->subs);
    srv_reads_free(s);
    srv_room_hlc_free(s);
    srv_fed_free(s);
    srv_fed_blobs_free(s);
    srv_jma_free(s);
    srv_throttle_free();
    sodium_memzero(s->sk, sizeof s->sk);
    free(s);
}

void srv_set_identity(struct srv *s, const char *origin, int64_t inc, const uint8_t sk[64])
{
    snprintf(s->origin, sizeof s->origin, "%s", origin);
    s->inc = inc;
    memcpy(s->sk, sk, sizeof s->sk);
    kz_event_key_id(sk + 32, s->key_id); /* libsodium's secret key ends with the public key */
}

void srv_set_event_clock(struct srv *s, int64_t (*now_ms)(void))
{
    s->clock = now_ms;
}

struct store *srv_store(struct srv *s)
{
    return s->store;
}

const struct kz_config *srv_config(struct srv *s)
{
    return s->cfg;
}

const struct srv_transport *srv_tx(struct srv *s)
{
    return &s->tx;
}

struct kz_workers *srv_workers(struct srv *s)
{
    return s->workers;
}

/* ---- replies ---- */

/* HTTP replies carry no id: the request had none. */
static cJSON *error_json(cJSON *id, bool is_http, enum kz_err e, const char *msg);
static cJSON *error_json_retry(cJSON *id, bool is_http, enum kz_err e, const char *msg,
                               int64_t retry_after_s)
{
    cJSON *o = error_json(id, is_http, e, msg);
    if (retry_after_s > 0)
        cJSON_AddNumberToObject(cJSON_GetObjectItemCaseSensitive(o, "error"), "retry_after_s",
                                (double)retry_after_s);
    return o;
}

static cJSON *error_json(cJSON *id, bool is_http, enum kz_err e, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    if (!is_http)
        cJSON_AddItemToObject(o, "id", id ? cJSON_Duplicate(id, true) : cJSON_CreateNull());
    cJSON_AddFalseToObject(o, "ok");
    cJSON *err = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(err, "code", kz_err_code(e));
    cJSON_AddStringToObject(err, "message", msg && *msg ? msg : kz_err_code(e));
    return o;
}

static void send_json(struct srv *s, uint64_t conn_id, cJSON *json, int status)
{
    struct kz_frame *f = kz_frame_from_json(json, status);
    if (f) {
        srv_out_send(s, conn_id, f);
        kz_frame_unref(f);
    }
}

void srv_send_error(struct srv *s, uint64_t conn_id, bool is_http, enum kz_err e, const char *msg)
{
    cJSON *o = error_json(NULL, is_http, e, msg);
    send_json(s, conn_id, o, kz_err_http_status(e));
    cJSON_Delete(o);
}

void srv_send_error_to(struct srv *s, uint64_t conn_id, cJSON *id, bool is_http, enum kz_err e,
                       const char *msg, int64_t retry_after_s)
{
    cJSON *o = error_json_retry(id, is_http, e, msg, retry_after_s);
    send_json(s, conn_id, o, kz_err_http_status(e));
    cJSON_Delete(o);
}

static void hold(struct srv *s, struct srv_call *c, struct kz_frame *f)
{
    struct held *h = calloc(1, sizeof *h);
    if (!h) {
        kz_frame_unref(f);
        return;
    }
    h->conn_id = c->conn_id;
    h->is_http = c->is_http;
    h->id = c->id;
    c->id = NULL;
    h->frame = f;
    if (s->held_tail)
        s->held_tail->next = h;
    else
        s->held_head = h;
    s->held_tail = h;
}

enum kz_err srv_fail(struct srv_call *c, enum kz_err e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    va_end(ap);
    /* Messages quote requests (an op name from a URL, a field name cut at 64 bytes) and are cut
     * to the buffer: a reply must stay valid UTF-8 all the same. */
    kz_utf8_sanitize(c->errmsg);
    return e;
}

static enum kz_err refuse_write(struct srv_call *c)
{
    c->retry_after_s = (c->srv->cfg->disk_retry_ms + 999) / 1000;
    return srv_fail(c, KZ_UNAVAILABLE,
                    "the server's disk is full or read-only: writes are refused for now; reads "
                    "still work");
}

enum kz_err srv_call_write_begin(struct srv_call *c)
{
    if (srv_writes_blocked(c->srv))
        return refuse_write(c);
    if (store_op_begin(c->srv->store) != STORE_OK)
        return srv_fail(c, KZ_INTERNAL, "database unavailable");
    c->in_op = true;
    c->pending_mark = c->srv->npending;
    c->pushes_mark = c->srv->npushes;
    return KZ_OK;
}

static void call_free(struct srv_call *c)
{
    cJSON_Delete(c->id);
    cJSON_Delete(c->args);
    cJSON_Delete(c->result);
    free(c);
}

/* A success reply: {"id":..,"ok":true, then the result's members}, id and ok first so that
 * replies read well in logs and terminals; no id over HTTP. Written straight from the result
 * (json_write.c, cJSON's own layout) rather than moved into a new tree and printed by cJSON:
 * srv_call_finish took ~13,500 instructions a request before, ~6,900 after, most of that now
 * freeing the request's and the result's trees (callgrind, kzbench's ingest). */
static struct kz_frame *reply_ok(const struct srv_call *c)
{
    struct kz_json j;
    kz_json_init(&j, 128);
    kz_json_raw(&j, "{", 1);
    if (!c->is_http) {
        kz_json_key(&j, "id");
        if (c->id)
            kz_json_item(&j, c->id);
        else
            kz_json_raw(&j, "null", 4);
    }
    kz_json_key(&j, "ok");
    kz_json_bool(&j, true);
    for (const cJSON *it = c->result ? c->result->child : NULL; it; it = it->next) {
        kz_json_key(&j, it->string);
        kz_json_item(&j, it);
    }
    kz_json_raw(&j, "}", 1);
    size_t len;
    char *text = kz_json_take(&j, &len);
    if (!text)
        return NULL;
    struct kz_frame *f = kz_frame_from_text(text, len, kz_err_http_status(KZ_OK));
    free(text);
    return f;
}

void srv_call_finish(struct srv_call *c, enum kz_err e)
{
    struct srv *s = c->srv;
    if (c->in_op) {
        if (store_op_end(s->store, e == KZ_OK) != STORE_OK && e == KZ_OK)
            e = srv_fail(c, KZ_INTERNAL, "database error");
        c->in_op = false;
        /* Events and pushes of an op that was rolled back never happened. */
        if (e != KZ_OK)
            srv_events_truncate(s, c->pending_mark, c->pushes_mark);
    }
    if (e == KZ_INTERNAL && store_disk_error(s->store)) {
        srv_writes_block(s);
        e = refuse_write(c);
    }
    if (c->in_tx && (e == KZ_INTERNAL || e == KZ_UNAVAILABLE)) {
        s->doomed = true;
        s->doomed_by_disk |= e == KZ_UNAVAILABLE;
    }
    /* Counted as answered: a held reply whose commit then fails is counted again there
     * (kizuna_commit_failures_total). */
    kz_metrics.requests[srv_op_index(c->op)][e]++;
    struct kz_frame *f;
    if (e == KZ_OK) {
        f = reply_ok(c);
    } else {
        if (e == KZ_INTERNAL)
            KZ_ERROR("op_failed", "op=%s error=\"%s\"", c->op ? c->op->name : "-", c->errmsg);
        cJSON *o = error_json_retry(c->id, c->is_http, e, c->errmsg, c->retry_after_s);
        f = kz_frame_from_json(o, kz_err_http_status(e));
        cJSON_Delete(o);
    }
    if (c->deferred)
        s->tx.pause(s->tx.ctx, c->conn_id, false);
    if (f && c->is_http)
        f->req_id = c->req_id; /* the reply names its log lines: X-Request-Id */
    if (f && store_tx_is_open(s->store)) {
        hold(s, c, f);
        s->tx.want_commit(s->tx.ctx);
    } else if (f) {
        srv_out_send(s, c->conn_id, f);
        kz_frame_unref(f);
    }
    call_free(c);
}

/* ---- argument checking against the op's fields ---- */

const char *srv_arg_str(const struct srv_call *c, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->args, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool srv_arg_bool(const struct srv_call *c, const char *name, bool dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->args, name);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

int64_t srv_arg_int(const struct srv_call *c, const char *name, int64_t dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->args, name);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : dflt;
}

const cJSON *srv_arg_list(const struct srv_call *c, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->args, name);
    return cJSON_IsArray(v) ? v : NULL;
}

enum kz_err srv_arg_format(struct srv_call *c, bool *csv)
{
    const char *format = srv_arg_str(c, "format");
    *csv = format && strcmp(format, "csv") == 0;
    if (format && !*csv && strcmp(format, "json") != 0)
        return srv_fail(c, KZ_BAD_REQUEST, "format is json or csv");
    return KZ_OK;
}

static const struct srv_field *field_find(const struct srv_op *op, const char *name)
{
    for (int i = 0; i < SRV_FIELDS_MAX && op->fields[i].name; i++)
        if (strcmp(op->fields[i].name, name) == 0)
            return &op->fields[i];
    return NULL;
}

enum kz_err srv_fail_cap(struct srv_call *c, enum kz_err e, const char *setting)
{
    long long max;
    char why[sizeof c->errmsg];
    if (!kz_config_cap(c->srv->cfg, setting, &max, why, sizeof why))
        return srv_fail(c, KZ_INTERNAL, "no setting %s caps requests", setting);
    return srv_fail(c, e, "%s", why);
}

/* The setting that caps field f of op (its caps), or NULL. */
static const char *cap_of(const struct srv_op *op, const struct srv_field *f)
{
    for (int i = 0; i < SRV_CAPS_MAX && op->caps[i].field; i++)
        if (strcmp(op->caps[i].field, f->name) == 0)
            return op->caps[i].setting;
    return NULL;
}

static enum kz_err check_field(struct srv_call *c, const struct srv_field *f, const cJSON *v)
{
    /* A capped field: the setting's value is its max, and the setting's words refuse. Finding
     * it by name walks the config table's 52 names: 0.14 to 0.38 us a field (-O2), paid only by
     * the few requests that carry one (a message, a notice, a photo, a room, an invitation). */
    const char *cap = cap_of(c->op, f);
    long long max = f->max;
    if (cap && !kz_config_cap(c->srv->cfg, cap, &max, NULL, 0))
        return srv_fail(c, KZ_INTERNAL, "no setting %s caps requests", cap);
    switch (f->type) {
    case F_STRING: {
        if (!cJSON_IsString(v))
            return srv_fail(c, KZ_BAD_REQUEST, "field '%s' must be a string", f->name);
        size_t len = strlen(v->valuestring);
        if ((long long)len < f->min)
            return srv_fail(c, KZ_BAD_REQUEST, "field '%s' must not be empty", f->name);
        if (cap && (long long)len > max)
            return srv_fail_cap(c, KZ_TOO_LARGE, cap);
        if (max && (long long)len > max)
            return srv_fail(c, KZ_BAD_REQUEST, "field '%s' is longer than %lld bytes", f->name,
                            max);
        return KZ_OK;
    }
    case F_INT: {
        double d = v->valuedouble;
        if (!cJSON_IsNumber(v) || !isfinite(d) || d != floor(d))
            return srv_fail(c, KZ_BAD_REQUEST, "field '%s' must be an integer", f->name);
        if (cap && d > (double)max)
            return srv_fail_cap(c, KZ_BAD_REQUEST, cap);
        if (d < (double)f->min || d > (double)max)
            return srv_fail(c, KZ_BAD_REQUEST, "field '%s' must be between %lld and %lld", f->name,
                            f->min, max);
        return KZ_OK;
    }
    case F_BOOL:
        if (!cJSON_IsBool(v))
            return srv_fail(c, KZ_BAD_REQUEST, "field '%s' must be true or false", f->name);
        return KZ_OK;
    case F_STRINGS:
    case F_LOGINS: {
        if (!cJSON_IsArray(v))
            return srv_fail(c, KZ_BAD_REQUEST, "field '%s' must be an array of login ids", f->name);
        if (cap && cJSON_GetArraySize(v) > max)
            return srv_fail_cap(c, KZ_TOO_LARGE, cap);
        if (cJSON_GetArraySize(v) > max)
            return srv_fail(c, KZ_BAD_REQUEST, "field '%s' has more than %lld items", f->name, max);
        const cJSON *item;
        cJSON_ArrayForEach(item, v)
        {
            if (!cJSON_IsString(item) ||
                (f->type == F_LOGINS && !kz_login_valid(item->valuestring)))
                return srv_fail(c, KZ_BAD_REQUEST, "field '%s' must hold %s", f->name,
                                f->type == F_LOGINS ? "login ids" : "strings");
            size_t len = strlen(item->valuestring);
            if (f->type == F_STRINGS && (len == 0 || len > STORE_NAME_MAX))
                return srv_fail(c, KZ_BAD_REQUEST, "field '%s' holds an empty or too long item",
                                f->name);
        }
        return KZ_OK;
    }
    }
    return KZ_INTERNAL;
}

static enum kz_err check_args(struct srv_call *c)
{
    const struct srv_op *op = c->op;
    const cJSON *v;
    cJSON_ArrayForEach(v, c->args)
    {
        if (strcmp(v->string, "id") == 0 || strcmp(v->string, "op") == 0)
            continue;
        const struct srv_field *f = field_find(op, v->string);
        if (!f)
            return srv_fail(c, KZ_BAD_REQUEST, "unknown field '%.64s' for op %s", v->string,
                            op->name);
        enum kz_err e = check_field(c, f, v);
        if (e)
            return e;
    }
    for (int i = 0; i < SRV_FIELDS_MAX && op->fields[i].name; i++)
        if (op->fields[i].required &&
            !cJSON_GetObjectItemCaseSensitive(c->args, op->fields[i].name))
            return srv_fail(c, KZ_BAD_REQUEST, "missing field '%s'", op->fields[i].name);
    return KZ_OK;
}

/* ---- who is calling ---- */

/* Who is calling, through the one gate (gate.c); then the session's last-seen time, best
 * effort. */
static enum kz_err admit(struct srv_call *c)
{
    struct srv *s = c->srv;
    const struct srv_op *op = c->op;
    if (op->access == OP_ANON)
        return KZ_OK;
    const struct srv_gate_need need = {op->access, op->allowed_before_pwchange, op->name};
    struct store_session ses;
    char why[192];
    enum kz_err e = srv_gate_find_id(s, c->session_id, &ses, why, sizeof why);
    if (!e)
        e = srv_gate_admit(s, &ses, &need, &c->auth, why, sizeof why);
    if (e)
        return srv_fail(c, e, "%s", why);
    c->authed = true;
    int64_t now = kz_now_ms();
    if (now - ses.last_seen >= s->cfg->session_touch_interval_s * 1000 && !srv_writes_blocked(s)) {
        /* Best effort: a failed touch must not fail the request it rides on. */
        if (store_tx_begin(s->store) == STORE_OK) {
            store_session_touch(s->store, ses.id, now);
            s->tx.want_commit(s->tx.ctx);
        }
    }
    return KZ_OK;
}

static void dispatch(struct srv_call *c, const char *opname)
{
    enum kz_err e;
    c->op = srv_op_find(opname);
    if (!c->op) {
        e = srv_fail(c, KZ_BAD_REQUEST, "unknown op '%.64s'", opname);
        goto out;
    }
    if ((e = check_args(c)) || (e = admit(c)))
        goto out;
    if (c->op->writes && srv_writes_blocked(c->srv)) {
        e = refuse_write(c);
        goto out;
    }
    if (c->op->writes && c->op->no_savepoint) {
        if (store_tx_begin(c->srv->store) != STORE_OK) {
            e = srv_fail(c, KZ_INTERNAL, "database unavailable");
            goto out;
        }
        c->in_tx = true;
    } else if (c->op->writes && (e = srv_call_write_begin(c))) {
        goto out;
    }
    int64_t t0 = kz_now_ms();
    e = c->op->fn(c);
    if (kz_now_ms() - t0 >= c->srv->cfg->slow_op_ms)
        KZ_INFO("slow_op", "op=%s ms=%lld", c->op->name, (long long)(kz_now_ms() - t0));
    if (c->deferred) {
        c->srv->tx.pause(c->srv->tx.ctx, c->conn_id, true);
        return;
    }
out:
    srv_call_finish(c, e);
}

enum kz_err srv_call_as(struct srv *s, const char *opname, const char *login, cJSON *args,
                        cJSON **result, char *why, size_t whylen)
{
    struct srv_call c = {.srv = s, .args = args};
    enum kz_err e;
    *result = NULL;
    c.op = srv_op_find(opname);
    /* Only ops that finish in their handler: the call lives on this stack. */
    if (!c.op || (strcmp(opname, "notice.post") != 0 && strcmp(opname, "msg.send") != 0)) {
        e = srv_fail(&c, KZ_INTERNAL, "op %s cannot be called from inside", opname);
        goto out;
    }
    if (!kz_login_valid(login) ||
        store_user_get_by_login(s->store, login, &c.auth.user) != STORE_OK) {
        e = srv_fail(&c, KZ_NOT_FOUND, "no account '%s' to act as", login);
        goto out;
    }
    if (c.auth.user.disabled) {
        e = srv_fail(&c, KZ_FORBIDDEN, "the account '%s' is disabled", login);
        goto out;
    }
    c.authed = true;
    if ((e = check_args(&c)))
        goto out;
    if (c.op->access == OP_ADMIN && !kz_role_is(c.auth.user.role, KZ_ROLE_ADMIN)) {
        e = srv_fail(&c, KZ_FORBIDDEN, "the account '%s' is not an admin", login);
        goto out;
    }
    if (c.op->writes && srv_writes_blocked(s)) {
        e = refuse_write(&c);
        goto out;
    }
    if (c.op->writes && c.op->no_savepoint) {
        if (store_tx_begin(s->store) != STORE_OK) {
            e = srv_fail(&c, KZ_INTERNAL, "database unavailable");
            goto out;
        }
        c.in_tx = true;
    } else if (c.op->writes && (e = srv_call_write_begin(&c))) {
        goto out;
    }
    e = c.op->fn(&c);
out:
    if (c.in_op) {
        if (store_op_end(s->store, e == KZ_OK) != STORE_OK && e == KZ_OK)
            e = srv_fail(&c, KZ_INTERNAL, "database error");
        if (e != KZ_OK)
            srv_events_truncate(s, c.pending_mark, c.pushes_mark);
    }
    if (c.in_tx && (e == KZ_INTERNAL || e == KZ_UNAVAILABLE))
        s->doomed = true;
    if (store_tx_is_open(s->store))
        s->tx.want_commit(s->tx.ctx);
    if (e == KZ_OK)
        *result = c.result;
    else
        cJSON_Delete(c.result);
    snprintf(why, whylen, "%s", e == KZ_OK ? "" : c.errmsg);
    return e;
}

/* Where the JSON text would put a NUL character into a string: a raw 0 byte anywhere, or the
 * escape \u0000 in any string (a key or a value, at any depth). cJSON decodes \u0000 to a 0
 * byte, and every C string after it ends there: "abc\u0000def" would be stored as "abc", and
 * "u1\u0000evil" would log in as u1. The walk follows JSON's escapes as cJSON's does, so
 * "\\u0000" (an escaped backslash, then the text u0000) is ordinary text and passes. NULL if
 * there is none, else what is wrong. */
static const char *request_nul(const char *text, size_t len)
{
    if (memchr(text, '\0', len))
        return "contains a NUL byte";
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        if (!in_string) {
            in_string = text[i] == '"';
        } else if (text[i] == '"') {
            in_string = false;
        } else if (text[i] == '\\' && ++i < len && text[i] == 'u' && len - i > 4 &&
                   memcmp(text + i + 1, "0000", 4) == 0) {
            return "has a NUL character (\\u0000) in a string: text with NUL characters is "
                   "refused, never cut short";
        }
    }
    return NULL;
}

/* The one parser of requests, for both transports (`what` is "frame" or "body"): valid UTF-8, a
 * JSON object, no NUL character in any string. Fills c->args and, over WebSocket, c->id (the
 * NUL check comes after it, so that the refusal answers the request's id). */
static enum kz_err request_parse(struct srv_call *c, const char *text, size_t len, const char *what)
{
    if (!kz_utf8_valid(text, len))
        return srv_fail(c, KZ_BAD_REQUEST, "the %s is not valid UTF-8", what);
    c->args = cJSON_ParseWithLength(text, len);
    if (!c->args)
        return srv_fail(c, KZ_BAD_REQUEST, "the %s is not valid JSON", what);
    if (!cJSON_IsObject(c->args))
        return srv_fail(c, KZ_BAD_REQUEST, "the %s must be a JSON object", what);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(c->args, "id");
    if (!c->is_http && (cJSON_IsNumber(id) || cJSON_IsString(id)))
        c->id = cJSON_Duplicate(id, false);
    const char *nul = request_nul(text, len);
    if (nul)
        return srv_fail(c, KZ_BAD_REQUEST, "the %s %s", what, nul);
    return KZ_OK;
}

static struct srv_call *call_new(struct srv *s, uint64_t conn_id, const char *peer)
{
    struct srv_call *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->srv = s;
    c->conn_id = conn_id;
    snprintf(c->peer, sizeof c->peer, "%s", peer ? peer : "");
    /* Numbered from start: unique among the lines of one run, short enough to grep for. */
    static uint64_t last_req;
    c->req_id = ++last_req;
    kz_log_request(c->req_id);
    return c;
}

void srv_handle_ws_text(struct srv *s, uint64_t conn_id, int64_t session_id, const char *peer,
                        const char *text, size_t len)
{
    struct srv_call *c = call_new(s, conn_id, peer);
    if (!c)
        return;
    c->session_id = session_id;
    enum kz_err e = request_parse(c, text, len, "frame");
    if (e)
        goto fail;
    if (!c->id) {
        e = srv_fail(c, KZ_BAD_REQUEST, "field 'id' must be a number or a string");
        goto fail;
    }
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(c->args, "op");
    if (!cJSON_IsString(op)) {
        e = srv_fail(c, KZ_BAD_REQUEST, "field 'op' must be a string");
        goto fail;
    }
    dispatch(c, op->valuestring);
    kz_log_request(0);
    return;
fail:
    srv_call_finish(c, e);
    kz_log_request(0);
}

void srv_handle_http(struct srv *s, uint64_t conn_id, const char *op, const char *bearer,
                     const char *peer, const char *body, size_t len)
{
    struct srv_call *c = call_new(s, conn_id, peer);
    if (!c)
        return;
    c->is_http = true;
    enum kz_err e;
    if (bearer && *bearer) {
        uint8_t hash[STORE_TOKEN_HASH];
        struct store_session ses;
        enum store_rc rc = kz_token_hash(bearer, hash) ? store_session_lookup(s->store, hash, &ses)
                                                       : STORE_NOT_FOUND;
        if (rc == STORE_NOT_FOUND) {
            e = srv_fail(c, KZ_UNAUTHORIZED, "the token is not valid: log in again");
            goto fail;
        }
        if (rc != STORE_OK) {
            e = srv_fail(c, KZ_INTERNAL, "session lookup failed");
            goto fail;
        }
        c->session_id = ses.id;
    }
    /* An empty body is an op without arguments. */
    if (len == 0 && !(c->args = cJSON_CreateObject())) {
        e = srv_fail(c, KZ_INTERNAL, "out of memory");
        goto fail;
    }
    if (len && (e = request_parse(c, body, len, "body")))
        goto fail;
    cJSON_DeleteItemFromObjectCaseSensitive(c->args, "id");
    cJSON_DeleteItemFromObjectCaseSensitive(c->args, "op");
    dispatch(c, op);
    kz_log_request(0);
    return;
fail:
    srv_call_finish(c, e);
    kz_log_request(0);
}
