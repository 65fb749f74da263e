/* ops_import.c - bulk accounts from CSV: `user.import` checks every line and reports every
 * problem; applying is all or nothing; re-importing the same file changes nothing; new users
 * get one-time passwords that they must change at first login. Header:
 * login,name,department,role,groups (any order; optional email,phone). A file without an email
 * or phone column leaves those of existing users alone. Groups are separated by ';'. UTF-8, with
 * or without a BOM, or CP932 (the Shift_JIS that Japanese Excel saves), converted to UTF-8.
 *
 * The one-time passwords are random, so they are hashed with srv_otp_hash (keyed BLAKE2b, ~1 us
 * each) on the loop, in the same turn as the apply: 1,000 users took 100 s of argon2id on one
 * worker (240 s on a busy machine), and now take well under a second (docs/performance.md). */
#include "server.h"

#include <iconv.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* How to get a file Kizuna reads out of Excel, in the words of Japanese Excel's menus. */
#define SAVE_AS_UTF8 "in Excel, save as 「CSV UTF-8 (コンマ区切り)」"

struct row {
    int line;
    char login[STORE_LOGIN_MAX + 1];
    char *name, *department, *role, *groups; /* owned */
    char *email, *phone;                     /* owned; NULL: the file has no such column */
    bool exists, changes;
    char password[KZ_OTP_CHARS + 1];
    char hash[STORE_HASH_MAX + 1];
};

struct import {
    struct row *rows;
    int nrows;
    cJSON *problems;
    const char *encoding; /* "utf-8", "cp932" (converted) or "utf-16" (refused) */
};

static void import_free(struct import *im)
{
    for (int i = 0; i < im->nrows; i++) {
        free(im->rows[i].name);
        free(im->rows[i].department);
        free(im->rows[i].role);
        free(im->rows[i].groups);
        free(im->rows[i].email);
        free(im->rows[i].phone);
    }
    sodium_memzero(im->rows, sizeof *im->rows * (size_t)im->nrows);
    free(im->rows);
    cJSON_Delete(im->problems);
    free(im);
}

static void problem(struct import *im, int line, const char *msg)
{
    if (cJSON_GetArraySize(im->problems) >= 1000)
        return; /* enough to fix a file */
    /* The header line is not checked for UTF-8, and quotes are cut at a byte count. */
    char text[400];
    snprintf(text, sizeof text, "%s", msg);
    kz_utf8_sanitize(text);
    cJSON *p = cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "line", line);
    cJSON_AddStringToObject(p, "problem", text);
    cJSON_AddItemToArray(im->problems, p);
}

/* Frees the fields a record got before it failed. */
static int csv_fail(char **fields, int n)
{
    while (n > 0)
        free(fields[--n]);
    return -1;
}

/* RFC 4180 fields of one record starting at *pos; quoted fields may hold commas, quotes and
 * newlines. A field loses the ' an export put before a formula (kz_csv_unguard), so that an
 * exported file imports unchanged. Returns the number of fields (at most max), or -1 on an
 * unterminated quote (with nothing left to free). */
static int csv_record(const char *buf, size_t len, size_t *pos, char **fields, int max, int *lines)
{
    int n = 0;
    size_t i = *pos;
    for (;;) {
        char *f = malloc(len - i + 1), *o = f;
        if (!f)
            return csv_fail(fields, n);
        if (i < len && buf[i] == '"') {
            for (i++;; i++) {
                if (i >= len) {
                    free(f);
                    return csv_fail(fields, n);
                }
                if (buf[i] == '"' && i + 1 < len && buf[i + 1] == '"')
                    *o++ = '"', i++;
                else if (buf[i] == '"')
                    break;
                else {
                    *lines += buf[i] == '\n';
                    *o++ = buf[i];
                }
            }
            i++;
        }
        while (i < len && buf[i] != ',' && buf[i] != '\n' && buf[i] != '\r')
            *o++ = buf[i++];
        *o = '\0';
        kz_csv_unguard(f);
        if (n < max)
            fields[n++] = f;
        else
            free(f);
        if (i < len && buf[i] == ',') {
            i++;
            continue;
        }
        if (i < len && buf[i] == '\r')
            i++;
        if (i < len && buf[i] == '\n')
            i++;
        break;
    }
    *pos = i;
    return n;
}

enum col { C_LOGIN, C_NAME, C_DEPT, C_ROLE, C_GROUPS, C_COUNT };
static const char *const col_names[C_COUNT] = {"login", "name", "department", "role", "groups"};

static bool blank(const char *s)
{
    return !s[strspn(s, " \t")];
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every group name in "a;b" fits the store. */
static bool groups_fit(const char *groups)
{
    for (const char *p = groups; *p;) {
        size_t n = strcspn(p, ";");
        if (n > STORE_NAME_MAX)
            return false;
        p += n + (p[n] == ';');
    }
    return true;
}

/* "b;a;;c" -> "a;b;c": groups are a set, and the store lists them in this (byte) order. */
static void groups_normalise(const char *in, char *out, size_t cap)
{
    char *copy = strdup(in), *names[128];
    int n = 0;
    for (char *save, *tok = strtok_r(copy, ";", &save); tok && n < 128;
         tok = strtok_r(NULL, ";", &save))
        if (!blank(tok))
            names[n++] = tok;
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i)
            strncat(out, ";", cap - strlen(out) - 1);
        strncat(out, names[i], cap - strlen(out) - 1);
    }
    free(copy);
}

/* Parses and checks the whole file; fills im->rows and im->problems. */
static void import_parse(struct srv_call *c, struct import *im, const char *buf, size_t len)
{
    struct store *st = srv_store(c->srv);
    size_t pos = 0;
    int line = 1;
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
        pos = 3;
    char *fields[16];
    int extra = 0;
    int nf = csv_record(buf, len, &pos, fields, 16, &extra);
    int at[C_COUNT], at_email = -1, at_phone = -1;
    char msg[320];
    for (int k = 0; k < C_COUNT; k++)
        at[k] = -1;
    for (int f = 0; f < nf; f++) {
        bool known = true;
        if (!strcmp(fields[f], "email"))
            at_email = f;
        else if (!strcmp(fields[f], "phone"))
            at_phone = f;
        else
            known = false;
        for (int k = 0; k < C_COUNT; k++)
            if (strcmp(fields[f], col_names[k]) == 0) {
                at[k] = f;
                known = true;
            }
        if (!known) {
            snprintf(msg, sizeof msg, "unknown column '%.64s'", fields[f]);
            problem(im, 1, msg);
        }
    }
    for (int k = 0; k < C_COUNT; k++)
        if (at[k] < 0) {
            snprintf(msg, sizeof msg, "the header has no '%s' column", col_names[k]);
            problem(im, 1, msg);
        }
    for (int f = 0; f < nf; f++)
        free(fields[f]);
    if (nf < 0 || cJSON_GetArraySize(im->problems) > 0)
        return;
    /* Room for every record the rest can hold (each ends at a CR, an LF or the end), up to
     * import_max_rows: a small file does not reserve room for the largest. */
    long long max_rows = srv_config(c->srv)->import_max_rows, records = 1;
    for (size_t i = pos; i < len; i++)
        records += buf[i] == '\n' || buf[i] == '\r';
    im->rows = calloc((size_t)(records < max_rows ? records : max_rows), sizeof *im->rows);
    line += extra + 1;
    while (pos < len && im->rows) {
        int start_line = line;
        size_t start = pos;
        extra = 0;
        nf = csv_record(buf, len, &pos, fields, 16, &extra);
        line += extra + 1;
        if (nf < 0) {
            problem(im, start_line, "a quoted field is never closed");
            return;
        }
        if (nf == 1 && !fields[0][0]) { /* an empty line */
            free(fields[0]);
            continue;
        }
        bool ok = kz_utf8_valid(buf + start, pos - start);
        if (!ok)
            problem(im, start_line, "the line is neither UTF-8 nor Shift_JIS: " SAVE_AS_UTF8);
        int need = at_email > at_phone ? at_email + 1 : at_phone + 1;
        for (int k = 0; k < C_COUNT; k++)
            need = at[k] + 1 > need ? at[k] + 1 : need;
        if (ok && nf < need) {
            problem(im, start_line, "too few columns");
            ok = false;
        }
        if (ok && im->nrows >= max_rows) {
            long long cap;
            kz_config_cap(srv_config(c->srv), "import_max_rows", &cap, msg, sizeof msg);
            problem(im, start_line, msg);
            ok = false;
        }
        if (ok) {
            struct row *r = &im->rows[im->nrows];
            const char *login = fields[at[C_LOGIN]], *role = fields[at[C_ROLE]];
            if (!kz_login_valid(login)) {
                snprintf(msg, sizeof msg, "'%.64s' is not a valid login id", login);
                problem(im, start_line, msg);
                ok = false;
            }
            for (int i = 0; ok && i < im->nrows; i++)
                if (strcmp(im->rows[i].login, login) == 0) {
                    snprintf(msg, sizeof msg, "login '%s' already appears on line %d", login,
                             im->rows[i].line);
                    problem(im, start_line, msg);
                    ok = false;
                }
            if (blank(fields[at[C_NAME]])) {
                problem(im, start_line, "the name is empty");
                ok = false;
            }
            /* What user.add refuses, the import must report rather than fail on (or cut short,
             * maybe inside a character) when the file is applied. */
            const char *dept = fields[at[C_DEPT]];
            if (*dept && blank(dept)) {
                problem(im, start_line, "the department is blank");
                ok = false;
            }
            if (strlen(fields[at[C_NAME]]) > STORE_NAME_MAX || strlen(dept) > STORE_NAME_MAX ||
                !groups_fit(fields[at[C_GROUPS]])) {
                snprintf(msg, sizeof msg, "a name, department or group is longer than %d bytes",
                         STORE_NAME_MAX);
                problem(im, start_line, msg);
                ok = false;
            }
            if (!kz_role_parse(role, NULL, msg, sizeof msg)) {
                problem(im, start_line, msg);
                ok = false;
            }
            const char *email = at_email >= 0 ? fields[at_email] : NULL;
            const char *phone = at_phone >= 0 ? fields[at_phone] : NULL;
            if (email && !kz_email_valid(email)) {
                snprintf(msg, sizeof msg, "'%.64s' is not an email address", email);
                problem(im, start_line, msg);
                ok = false;
            }
            if (phone && !kz_phone_valid(phone)) {
                snprintf(msg, sizeof msg, "'%.40s' is not a phone number", phone);
                problem(im, start_line, msg);
                ok = false;
            }
            if (ok) {
                r->line = start_line;
                r->email = email ? strdup(email) : NULL;
                r->phone = phone ? strdup(phone) : NULL;
                snprintf(r->login, sizeof r->login, "%s", login);
                r->name = strdup(fields[at[C_NAME]]);
                r->department = strdup(fields[at[C_DEPT]]);
                r->role = strdup(role);
                r->groups = strdup(fields[at[C_GROUPS]]);
                struct store_user u;
                r->exists = store_user_get_by_login(st, login, &u) == STORE_OK;
                if (r->exists) {
                    cJSON *g = srv_user_groups_json(c->srv, u.id);
                    char have[1024] = "";
                    const cJSON *it;
                    cJSON_ArrayForEach(it, g)
                    {
                        if (have[0])
                            strncat(have, ";", sizeof have - strlen(have) - 1);
                        strncat(have, it->valuestring, sizeof have - strlen(have) - 1);
                    }
                    cJSON_Delete(g);
                    char want[1024];
                    groups_normalise(r->groups, want, sizeof want);
                    r->changes = strcmp(u.name, r->name) || strcmp(u.role, r->role) ||
                                 strcmp(u.department_name, r->department) || strcmp(have, want) ||
                                 (r->email && strcmp(u.email, r->email)) ||
                                 (r->phone && strcmp(u.phone, r->phone));
                }
                im->nrows++;
            }
        }
        for (int f = 0; f < nf; f++)
            free(fields[f]);
    }
}

/* The groups column, "a;b", as the JSON array srv_org_groups expects. */
static cJSON *groups_array(const char *text)
{
    cJSON *arr = cJSON_CreateArray();
    char *copy = strdup(text);
    for (char *save, *tok = strtok_r(copy, ";", &save); tok; tok = strtok_r(NULL, ";", &save))
        if (!blank(tok))
            cJSON_AddItemToArray(arr, cJSON_CreateString(tok));
    free(copy);
    return arr;
}

/* Writes one row: the arguments are swapped into the call's args so that the same
 * department/groups code as user.add and user.update applies. */
static enum kz_err apply_row(struct srv_call *c, struct row *r)
{
    struct store *st = srv_store(c->srv);
    cJSON_DeleteItemFromObjectCaseSensitive(c->args, "department");
    cJSON_DeleteItemFromObjectCaseSensitive(c->args, "groups");
    cJSON_AddStringToObject(c->args, "department", r->department);
    cJSON_AddItemToObject(c->args, "groups", groups_array(r->groups));
    struct store_user u = {0};
    enum kz_err e;
    if (r->exists) {
        if (!r->changes)
            return KZ_OK;
        if (store_user_get_by_login(st, r->login, &u) != STORE_OK)
            return srv_fail(c, KZ_CONFLICT, "user %s vanished during the import", r->login);
    }
    snprintf(u.login, sizeof u.login, "%s", r->login);
    snprintf(u.name, sizeof u.name, "%s", r->name);
    snprintf(u.role, sizeof u.role, "%s", r->role);
    if (r->email)
        snprintf(u.email, sizeof u.email, "%s", r->email);
    if (r->phone)
        snprintf(u.phone, sizeof u.phone, "%s", r->phone);
    if ((e = srv_org_department(c, &u)))
        return e;
    if (r->exists) {
        if (store_user_update(st, &u, kz_now_ms()) != STORE_OK)
            return srv_fail(c, KZ_INTERNAL, "cannot update %s", r->login);
    } else {
        snprintf(u.pw_hash, sizeof u.pw_hash, "%s", r->hash);
        u.must_change_password = true;
        enum store_rc rc = store_user_insert(st, &u, kz_now_ms());
        if (rc != STORE_OK)
            return srv_fail(c, rc == STORE_CONFLICT ? KZ_CONFLICT : KZ_INTERNAL,
                            "cannot add %s (line %d)", r->login, r->line);
    }
    return srv_org_groups(c, u.id);
}

static void summary(struct srv_call *c, struct import *im, bool applied)
{
    int add = 0, update = 0, same = 0;
    for (int i = 0; i < im->nrows; i++) {
        add += !im->rows[i].exists;
        update += im->rows[i].exists && im->rows[i].changes;
        same += im->rows[i].exists && !im->rows[i].changes;
    }
    c->result = cJSON_CreateObject();
    cJSON_AddBoolToObject(c->result, "applied", applied);
    cJSON_AddStringToObject(c->result, "encoding", im->encoding);
    cJSON_AddNumberToObject(c->result, "added", add);
    cJSON_AddNumberToObject(c->result, "updated", update);
    cJSON_AddNumberToObject(c->result, "unchanged", same);
    cJSON_AddItemToObject(c->result, "problems", cJSON_Duplicate(im->problems, true));
    if (applied) {
        /* The same as a CSV for the admin's file (written by the CLI, mode 0600). */
        static const char *const header[] = {"login", "one_time_password"};
        struct kz_csv csv = {0};
        kz_csv_row(&csv, header, 2);
        cJSON *pw = cJSON_AddArrayToObject(c->result, "passwords");
        for (int i = 0; i < im->nrows; i++) {
            if (im->rows[i].exists)
                continue;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "login", im->rows[i].login);
            cJSON_AddStringToObject(o, "password", im->rows[i].password);
            cJSON_AddItemToArray(pw, o);
            const char *row[] = {im->rows[i].login, im->rows[i].password};
            kz_csv_row(&csv, row, 2);
        }
        if (!csv.failed)
            cJSON_AddStringToObject(c->result, "passwords_csv", csv.text);
        if (csv.text)
            sodium_memzero(csv.text, csv.cap);
        kz_csv_free(&csv);
    }
}

/* Line by line: whether some line with non-ASCII bytes is valid UTF-8. Such a file is UTF-8
 * with broken lines (to report by number), not Shift_JIS: converting it would garble it. */
static bool has_utf8_text(const char *buf, size_t len)
{
    for (size_t start = 0; start < len;) {
        const char *nl = memchr(buf + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - buf) : len;
        bool high = false;
        for (size_t i = start; i < end && !high; i++)
            high = (unsigned char)buf[i] >= 0x80;
        if (high && kz_utf8_valid(buf + start, end - start))
            return true;
        start = end + 1;
    }
    return false;
}

/* The file as CP932 (Windows' Shift_JIS: ①, ㈱, ～, ﾊﾝｶｸ, 髙 are all its own) converted to
 * UTF-8 with glibc's iconv, or NULL if it is not CP932 from start to end. Caller frees. */
static char *cp932_to_utf8(const char *buf, size_t len, size_t *out_len)
{
    iconv_t cd = iconv_open("UTF-8", "CP932");
    if (cd == (iconv_t)-1)
        return NULL;
    size_t cap = len * 3 + 1; /* a one-byte half-width kana is three bytes of UTF-8 */
    char *out = malloc(cap), *in = (char *)buf, *o = out;
    size_t in_left = len, out_left = cap - 1;
    if (out && iconv(cd, &in, &in_left, &o, &out_left) == (size_t)-1) {
        free(out);
        out = NULL;
    }
    iconv_close(cd);
    if (out) {
        *o = '\0';
        *out_len = (size_t)(o - out);
    }
    return out;
}

/* Hashes the new users' one-time passwords and writes the whole file in one savepoint: any
 * failure undoes all of it. */
static enum kz_err import_apply(struct srv_call *c, struct import *im)
{
    uint8_t key[32];
    srv_otp_key(c->srv, key);
    enum kz_err e = KZ_OK;
    for (int i = 0; i < im->nrows && !e; i++) {
        struct row *r = &im->rows[i];
        if (r->exists)
            continue;
        kz_password_generate(r->password, sizeof r->password);
        if (srv_otp_hash(key, r->password, r->hash) != 0)
            e = srv_fail(c, KZ_INTERNAL, "cannot hash the one-time passwords");
    }
    sodium_memzero(key, sizeof key);
    if (e || (e = srv_call_write_begin(c)))
        return e;
    for (int i = 0; i < im->nrows && !e; i++)
        e = apply_row(c, &im->rows[i]);
    if (e)
        return e;
    summary(c, im, true);
    cJSON *details = cJSON_CreateObject();
    cJSON_AddNumberToObject(details, "added", cJSON_GetObjectItem(c->result, "added")->valuedouble);
    cJSON_AddNumberToObject(details, "updated",
                            cJSON_GetObjectItem(c->result, "updated")->valuedouble);
    srv_audit(c, "user.import", "", details);
    KZ_INFO("users_imported", "by=%s rows=%d encoding=%s", c->auth.user.login, im->nrows,
            im->encoding);
    return KZ_OK;
}

enum kz_err op_user_import(struct srv_call *c)
{
    const char *b64 = srv_arg_str(c, "csv_base64");
    size_t cap = strlen(b64) / 4 * 3 + 3, len = 0;
    char *buf = malloc(cap + 1);
    struct import *im = calloc(1, sizeof *im);
    enum kz_err e = KZ_OK;
    if (!buf || !im) {
        e = srv_fail(c, KZ_INTERNAL, "out of memory");
        goto out;
    }
    if (sodium_base642bin((unsigned char *)buf, cap, b64, strlen(b64), "\n\r ", &len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0) {
        e = srv_fail(c, KZ_BAD_REQUEST, "csv_base64 is not base64");
        goto out;
    }
    buf[len] = '\0';
    im->problems = cJSON_CreateArray();
    im->encoding = "utf-8";
    if (len >= 2 && ((unsigned char)buf[0] == 0xff || (unsigned char)buf[0] == 0xfe) &&
        ((unsigned char)buf[1] ^ (unsigned char)buf[0]) == 0x01) {
        im->encoding = "utf-16";
        problem(im, 1, "the file is UTF-16 (Excel's 「Unicode テキスト」): " SAVE_AS_UTF8);
    } else if (!kz_utf8_valid(buf, len) && !has_utf8_text(buf, len)) {
        size_t conv_len;
        char *conv = cp932_to_utf8(buf, len, &conv_len);
        if (conv) {
            free(buf);
            buf = conv;
            len = conv_len;
            im->encoding = "cp932";
        }
    }
    if (!cJSON_GetArraySize(im->problems))
        import_parse(c, im, buf, len);
    free(buf);
    buf = NULL;
    int problems = cJSON_GetArraySize(im->problems);
    if (srv_arg_bool(c, "dry_run", false)) {
        summary(c, im, false);
        goto out;
    }
    if (problems) {
        const cJSON *p = cJSON_GetArrayItem(im->problems, 0);
        e = srv_fail(c, KZ_BAD_REQUEST,
                     "%d problem(s), nothing imported; first: line %d: %s (see dry_run)", problems,
                     (int)cJSON_GetObjectItem(p, "line")->valuedouble,
                     cJSON_GetObjectItem(p, "problem")->valuestring);
        goto out;
    }
    e = import_apply(c, im);
out:
    free(buf);
    if (im)
        import_free(im);
    return e;
}
