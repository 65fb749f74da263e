/* devices.c - the device directory: `devices [LOGIN]`, `device revoke ID`, `verify USER`
 * (safety numbers, E12). Every command first makes sure this device's keys exist and are
 * registered, so `kizuna devices` is also how a user sets up encryption on a new CLI. */
#include "e2ee.h"

#include <stdlib.h>
#include <string.h>

/* device.list of login (NULL: ours); the caller deletes the result. */
static int list_devices(struct kzc *c, const char *login, cJSON **reply)
{
    cJSON *args = cJSON_CreateObject();
    if (login)
        cJSON_AddStringToObject(args, "login", login);
    return call(c, "device.list", args, reply);
}

/* A directory entry's keys, if its id and self-signature check out. */
static bool entry_keys(const cJSON *d, uint8_t sign_pk[32], uint8_t box_pk[32])
{
    uint8_t sig[64];
    char id[DEVICE_ID_MAX];
    if (!unb64url_exact(str(d, "sign_pk", NULL), sign_pk, 32) ||
        !unb64url_exact(str(d, "box_pk", NULL), box_pk, 32) ||
        !unb64url_exact(str(d, "sig", NULL), sig, 64))
        return false;
    ks_device_id(sign_pk, id);
    return strcmp(id, str(d, "device", NULL)) == 0 &&
           media_devkey_verify(str(d, "login", NULL), id, sign_pk, box_pk, sig);
}

static void print_device(const cJSON *d, const char *mine)
{
    char created[32], revoked[48] = "";
    format_time(cJSON_GetObjectItemCaseSensitive(d, "created_at")->valuedouble, created,
                sizeof created);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(d, "revoked_at");
    if (cJSON_IsNumber(r)) {
        char when[32];
        format_time(r->valuedouble, when, sizeof when);
        snprintf(revoked, sizeof revoked, "  REVOKED %s", when);
    }
    uint8_t s[32], b[32];
    printf("  %s  created %s  %s%s%s%s\n", str(d, "device", NULL), created, str(d, "label", NULL),
           revoked, strcmp(str(d, "device", NULL), mine) == 0 ? "  (this device)" : "",
           entry_keys(d, s, b) ? "" : "  (SELF-SIGNATURE DOES NOT VERIFY)");
}

static int cmd_list(const char *login)
{
    struct kzc *c;
    struct session s;
    struct ks_device me;
    int rc = connect_device(&c, &s, &me);
    if (rc != EXIT_OK)
        return rc;
    cJSON *reply = NULL;
    rc = list_devices(c, login, &reply);
    kzc_close(c);
    if (rc == EXIT_OK && json_out) {
        print_json(reply);
    } else if (rc == EXIT_OK) {
        printf("devices of %s:\n", str(reply, "login", NULL));
        const cJSON *d;
        cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(reply, "devices"))
            print_device(d, me.id);
    }
    cJSON_Delete(reply);
    ks_device_wipe(&me);
    return rc;
}

static int cmd_revoke_device(const char *id)
{
    struct kzc *c;
    struct session s;
    struct ks_device me;
    int rc = connect_device(&c, &s, &me);
    if (rc != EXIT_OK)
        return rc;
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "device", id);
    bool own = strcmp(id, me.id) == 0;
    ks_device_wipe(&me);
    rc = call_and_close(c, "device.revoke", args, NULL);
    if (rc == EXIT_OK && own)
        keystore_wipe(); /* our keys can never be used again: nothing of them stays */
    if (rc == EXIT_OK && !json_out)
        printf("device %s revoked: it receives no new photo keys and its session ended\n", id);
    return rc;
}

/* The active devices of a device.list reply with verified keys. The caller frees *out. */
static int pubs_of(const cJSON *reply, struct media_device_pub **out, size_t *n)
{
    const cJSON *devs = cJSON_GetObjectItemCaseSensitive(reply, "devices"), *d;
    *out = calloc((size_t)cJSON_GetArraySize(devs) + 1, sizeof **out);
    *n = 0;
    if (!*out)
        return -1;
    cJSON_ArrayForEach(d, devs)
    {
        if (!cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(d, "revoked_at")))
            continue;
        struct media_device_pub *p = &(*out)[*n];
        if (!entry_keys(d, p->sign_pk, p->box_pk)) {
            fprintf(stderr, "kizuna: device %s of %s: its self-signature does not verify\n",
                    str(d, "device", NULL), str(d, "login", NULL));
            return -1;
        }
        p->device_id = str(d, "device", NULL);
        (*n)++;
    }
    return 0;
}

static int cmd_verify(const char *user)
{
    struct kzc *c;
    struct session s;
    struct ks_device me;
    int rc = connect_device(&c, &s, &me);
    if (rc != EXIT_OK)
        return rc;
    ks_device_wipe(&me);
    cJSON *mine = NULL, *theirs = NULL;
    if ((rc = list_devices(c, NULL, &mine)) == EXIT_OK)
        rc = list_devices(c, user, &theirs);
    kzc_close(c);
    struct media_device_pub *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    char number[MEDIA_SAFETY_NUMBER_LEN + 1];
    if (rc == EXIT_OK && (pubs_of(mine, &a, &na) != 0 || pubs_of(theirs, &b, &nb) != 0 ||
                          media_safety_number(s.login, a, na, str(theirs, "login", NULL), b, nb,
                                              number) != MEDIA_OK))
        rc = EXIT_REFUSED;
    if (rc == EXIT_OK && nb == 0) {
        /* A number over no keys would vouch for nothing: say so instead. */
        fprintf(stderr, "kizuna: %s has no active device yet: nothing to verify\n",
                str(theirs, "login", NULL));
        rc = EXIT_REFUSED;
    }
    if (rc == EXIT_OK && json_out) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddTrueToObject(o, "ok");
        cJSON_AddStringToObject(o, "user", str(theirs, "login", NULL));
        cJSON_AddStringToObject(o, "safety_number", number);
        print_json(o);
        cJSON_Delete(o);
    } else if (rc == EXIT_OK) {
        printf("safety number of %s (%zu device%s) and %s (%zu device%s):\n\n  %s\n\n", s.login, na,
               na == 1 ? "" : "s", str(theirs, "login", NULL), nb, nb == 1 ? "" : "s", number);
        printf("compare it with theirs, in person or on a call you trust; or scan:\n");
        char digits[61];
        size_t nd = 0;
        for (const char *p = number; *p && nd < sizeof digits - 1; p++)
            if (*p != ' ')
                digits[nd++] = *p;
        digits[nd] = '\0';
        print_qr(digits);
    }
    free(a);
    free(b);
    cJSON_Delete(mine);
    cJSON_Delete(theirs);
    return rc;
}

int cmd_devices(int argc, char **argv, bool *handled)
{
    *handled = true;
    if (strcmp(argv[0], "devices") == 0 && argc <= 2)
        return cmd_list(argc == 2 ? argv[1] : NULL);
    if (strcmp(argv[0], "device") == 0 && argc == 3 && strcmp(argv[1], "revoke") == 0)
        return cmd_revoke_device(argv[2]);
    if (strcmp(argv[0], "device") == 0)
        return usage_error("device revoke ID");
    if (strcmp(argv[0], "verify") == 0 && argc == 2)
        return cmd_verify(argv[1]);
    if (strcmp(argv[0], "verify") == 0)
        return usage_error("verify USER");
    *handled = false;
    return EXIT_USAGE;
}

void device_enroll(void)
{
    /* Quiet and best effort: a login that worked is not undone by a key problem, and the
     * photo commands register the device again when they need it. */
    bool was_json = json_out;
    json_out = false;
    struct kzc *c = NULL;
    struct session s;
    struct ks_device me;
    if (connect_device(&c, &s, &me) == EXIT_OK) {
        ks_device_wipe(&me);
        kzc_close(c);
    }
    json_out = was_json;
}
