/* devices.c - the device directory as this user sees and controls it: `devices [LOGIN]` (each
 * device, and whether its owner's signed list vouches for it), `device approve ID` (sign a new
 * device of one's own into the list), `device revoke ID`, `verify USER [--yes]` (safety numbers,
 * E12, over exactly the devices that may receive keys, remembered so that a later change is
 * shown and must be accepted). Every command first makes sure this device's keys exist and are
 * registered, so `kizuna devices` is also how a user sets up encryption on a new CLI. */
#include "e2ee.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A directory entry's keys, if its id and self-signature check out. */
static bool entry_keys(const cJSON *d, uint8_t sign_pk[32], uint8_t box_pk[32])
{
    uint8_t sig[64];
    char id[DEVICE_ID_MAX], who[CLI_QUALIFIED_MAX];
    if (!unb64url_exact(cli_str(d, "sign_pk", NULL), sign_pk, 32) ||
        !unb64url_exact(cli_str(d, "box_pk", NULL), box_pk, 32) ||
        !unb64url_exact(cli_str(d, "sig", NULL), sig, 64))
        return false;
    ks_device_id(sign_pk, id);
    return strcmp(id, cli_str(d, "device", NULL)) == 0 &&
           media_devkey_verify(cli_qualify(cli_str(d, "login", NULL), who), id, sign_pk, box_pk,
                               sig);
}

/* What a device's owner's accepted list says of it, for `devices`. */
static const char *status_of(const cJSON *d, const struct media_devlist *list)
{
    uint8_t s[32], b[32];
    if (!entry_keys(d, s, b))
        return "SELF-SIGNATURE DOES NOT VERIFY";
    int i = list ? media_devlist_find(list, cli_str(d, "device", NULL)) : -1;
    if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(d, "revoked_at")))
        return i >= 0 ? "revoked (still in the signed list until an approved device updates it)"
                      : "";
    if (i < 0)
        return "NOT APPROVED by its owner: receives no photo keys";
    if (memcmp(list->dev[i].box_pk, b, 32) != 0 || memcmp(list->dev[i].sign_pk, s, 32) != 0)
        return "KEYS DIFFER from its owner's signed list: receives no photo keys";
    if (!trust_is_accepted(list->login, &list->dev[i]))
        return "added after you verified its owner: receives no photo keys until kizuna verify";
    return "approved";
}

static void print_device(const cJSON *d, const char *mine, const struct media_devlist *list)
{
    char created[32], revoked[48] = "";
    cli_format_time(cli_num(d, "created_at"), created, sizeof created);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(d, "revoked_at");
    if (cJSON_IsNumber(r)) {
        char when[32];
        cli_format_time(r->valuedouble, when, sizeof when);
        snprintf(revoked, sizeof revoked, "  REVOKED %s", when);
    }
    const char *status = status_of(d, list);
    printf("  %s  created %s  %s%s%s%s%s\n", cli_str(d, "device", NULL), created,
           cli_str(d, "label", NULL), revoked,
           strcmp(cli_str(d, "device", NULL), mine) == 0 ? "  (this device)" : "",
           *status ? "  " : "", status);
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
    const struct media_devlist *list = NULL;
    rc = trust_load(c, login ? login : s.login, &reply, &list);
    kzc_close(c);
    if (rc == EXIT_OK && json_out) {
        cli_print_json(reply);
    } else if (rc == EXIT_OK) {
        printf("devices of %s", cli_str(reply, "login", NULL));
        if (list)
            printf(" (signed device list version %llu)", (unsigned long long)list->seq);
        else
            printf(" (no signed device list yet: none receives photo keys)");
        printf(":\n");
        const cJSON *d;
        cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(reply, "devices"))
            print_device(d, me.id, list);
        if ((!login || strcmp(login, s.login) == 0) && trust_own_state() == TRUST_OWN_PENDING)
            printf("this device waits for approval: on an approved device of yours run: kizuna "
                   "device approve %s\n",
                   me.id);
    }
    cJSON_Delete(reply);
    ks_device_wipe(&me);
    return rc;
}

static int cmd_approve(const char *id)
{
    struct kzc *c;
    struct session s;
    struct ks_device me;
    int rc = connect_device(&c, &s, &me);
    if (rc != EXIT_OK)
        return rc;
    rc = trust_approve(c, &me, id);
    kzc_close(c);
    ks_device_wipe(&me);
    if (rc == EXIT_OK && !json_out)
        printf("device %s approved: it is in your signed device list, and photo keys go to it "
               "(compare its id with the one `kizuna devices` shows on that device)\n",
               id);
    else if (rc == EXIT_OK)
        puts("{\"ok\":true}");
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
    bool own = strcmp(id, me.id) == 0;
    cJSON *args = cJSON_CreateObject(), *reply = NULL;
    cJSON_AddStringToObject(args, "device", id);
    rc = cli_call(c, "device.revoke", args, &reply);
    /* Then out of the signed list too, so that the revocation binds even a server that would
     * keep listing it (another device does it for a device that revoked itself). */
    if (rc == EXIT_OK && !own && trust_unlist(c, &me, id) != EXIT_OK)
        fprintf(stderr,
                "kizuna: device %s is revoked, but your signed device list still names "
                "it: run this again from an approved device\n",
                id);
    if (rc == EXIT_OK && json_out)
        cli_print_json(reply);
    cJSON_Delete(reply);
    kzc_close(c);
    ks_device_wipe(&me);
    if (rc == EXIT_OK && own)
        keystore_wipe(); /* our keys can never be used again: nothing of them stays */
    if (rc == EXIT_OK && !json_out)
        printf("device %s revoked: it receives no new photo keys and its session ended\n", id);
    return rc;
}

/* The devices of a list as media_safety_number takes them (pointing into l). */
static void pubs_of(const struct media_devlist *l, struct media_device_pub *out)
{
    for (size_t i = 0; i < l->n; i++) {
        out[i].device_id = l->dev[i].id;
        memcpy(out[i].sign_pk, l->dev[i].sign_pk, 32);
        memcpy(out[i].box_pk, l->dev[i].box_pk, 32);
    }
}

static long long wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The safety number is over the signed lists of both users: exactly the devices that may ever
 * receive keys (the server can leave some out of a room, never add one; issue 14, item 2). */
static int cmd_verify(const char *user, bool yes)
{
    struct kzc *c;
    struct session s;
    struct ks_device me;
    int rc = connect_device(&c, &s, &me);
    if (rc != EXIT_OK)
        return rc;
    ks_device_wipe(&me);
    cJSON *mine = NULL, *theirs = NULL;
    const struct media_devlist *ml = NULL, *tl = NULL;
    struct media_devlist *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    if ((rc = trust_load(c, s.login, &mine, &ml)) == EXIT_OK && ml && a)
        *a = *ml; /* copied: the next trust_load may change what ml points to */
    if (rc == EXIT_OK)
        rc = trust_load(c, user, &theirs, &tl);
    kzc_close(c);
    if (rc == EXIT_OK && (!a || !b))
        rc = EXIT_REFUSED;
    if (rc == EXIT_OK && (!ml || !tl || tl->n == 0)) {
        /* A number over no keys would vouch for nothing: say so instead. */
        fprintf(stderr,
                "kizuna: %s has no signed device list with a device yet: nothing to verify\n",
                !ml ? s.login : user);
        rc = EXIT_REFUSED;
    }
    if (rc == EXIT_OK)
        *b = *tl;
    struct media_device_pub pa[MEDIA_DEVLIST_MAX], pb[MEDIA_DEVLIST_MAX];
    char number[MEDIA_SAFETY_NUMBER_LEN + 1];
    if (rc == EXIT_OK) {
        pubs_of(a, pa);
        pubs_of(b, pb);
        char qa[CLI_QUALIFIED_MAX], qb[CLI_QUALIFIED_MAX];
        if (media_safety_number(cli_qualify(s.login, qa), pa, a->n, cli_qualify(user, qb), pb, b->n,
                                number) != MEDIA_OK)
            rc = EXIT_REFUSED;
    }
    long long at = 0;
    bool verified = rc == EXIT_OK && trust_verified(user, &at);
    int added = 0;
    for (size_t i = 0; rc == EXIT_OK && i < b->n; i++)
        added += !trust_is_accepted(user, &b->dev[i]);
    if (rc == EXIT_OK && json_out) {
        if (yes && (!verified || added))
            trust_mark_verified(user, b, wall_now_ms());
        cJSON *o = cJSON_CreateObject();
        cJSON_AddTrueToObject(o, "ok");
        cJSON_AddStringToObject(o, "user", user);
        cJSON_AddStringToObject(o, "safety_number", number);
        cJSON_AddNumberToObject(o, "devices", (double)b->n);
        cJSON_AddBoolToObject(o, "verified", yes || (verified && !added));
        cJSON *arr = cJSON_AddArrayToObject(o, "added_since_verified");
        for (size_t i = 0; verified && i < b->n; i++)
            if (!trust_is_accepted(user, &b->dev[i]))
                cJSON_AddItemToArray(arr, cJSON_CreateString(b->dev[i].id));
        cli_print_json(o);
        cJSON_Delete(o);
    } else if (rc == EXIT_OK) {
        printf("safety number of %s (%zu device%s) and %s (%zu device%s):\n\n  %s\n\n", s.login,
               a->n, a->n == 1 ? "" : "s", user, b->n, b->n == 1 ? "" : "s", number);
        printf("%s's devices, as %s's signed device list names them:\n", user, user);
        for (size_t i = 0; i < b->n; i++) {
            const cJSON *d, *entry = NULL;
            cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(theirs, "devices"))
            {
                if (strcmp(cli_str(d, "device", NULL), b->dev[i].id) == 0)
                    entry = d;
            }
            printf("  %s  %s%s\n", b->dev[i].id, cli_str(entry, "label", NULL),
                   verified && !trust_is_accepted(user, &b->dev[i]) ? "  NEW since you verified"
                                                                    : "");
        }
        printf("compare the number with theirs, in person or on a call you trust; or scan:\n");
        char digits[61];
        size_t nd = 0;
        for (const char *p = number; *p && nd < sizeof digits - 1; p++)
            if (*p != ' ')
                digits[nd++] = *p;
        digits[nd] = '\0';
        cli_print_qr(digits);
        char when[32] = "";
        if (verified)
            cli_format_time((double)at, when, sizeof when);
        if (verified && !added) {
            printf("you verified %s on %s; nothing was added since\n", user, when);
        } else {
            if (verified)
                printf("you verified %s on %s; %d device%s added since then: %s no photo keys "
                       "until you accept %s\n",
                       user, when, added, added == 1 ? " was" : "s were",
                       added == 1 ? "it receives" : "they receive", added == 1 ? "it" : "them");
            bool go = yes;
            if (!go) {
                fprintf(stderr, "Do the numbers match? %s [y/N] ",
                        verified ? "Accept the new devices" : "Mark them as verified");
                char line[16] = "";
                go = fgets(line, sizeof line, stdin) && (line[0] == 'y' || line[0] == 'Y');
                if (!isatty(STDIN_FILENO))
                    fputc('\n', stderr);
            }
            if (go) {
                trust_mark_verified(user, b, wall_now_ms());
                printf("%s is verified: photo keys go to %s %zu device%s; a device added later "
                       "waits until you verify again\n",
                       user, b->n == 1 ? "this" : "these", b->n, b->n == 1 ? "" : "s");
            } else {
                printf("not marked as verified\n");
            }
        }
    }
    free(a);
    free(b);
    cJSON_Delete(mine);
    cJSON_Delete(theirs);
    return rc;
}

/* The command table's entries (main.c); argv[0] is the command's last word. `devices [LOGIN]`: */
int cmd_devices(int argc, char **argv)
{
    return cmd_list(argc == 2 ? argv[1] : NULL);
}

/* `device revoke ID` */
int cmd_device_revoke(int argc, char **argv)
{
    (void)argc;
    return cmd_revoke_device(argv[1]);
}

/* `device approve ID` */
int cmd_device_approve(int argc, char **argv)
{
    (void)argc;
    return cmd_approve(argv[1]);
}

/* `verify USER [--yes]` */
int cmd_verify_user(int argc, char **argv)
{
    bool yes = argc == 3 && (strcmp(argv[2], "--yes") == 0 || strcmp(argv[2], "-y") == 0);
    if (argc == 2 || yes)
        return cmd_verify(argv[1], yes);
    return cli_usage_error("verify USER [--yes]");
}

void cli_device_enroll(void)
{
    /* Quiet and best effort: a login that worked is not undone by a key problem, and the
     * photo commands register the device again when they need it. */
    bool was_json = json_out;
    json_out = false;
    struct kzc *c = NULL;
    struct session s;
    struct ks_device me;
    if (connect_device(&c, &s, &me) == EXIT_OK) {
        if (trust_own_state() == TRUST_OWN_PENDING && !was_json)
            fprintf(stderr,
                    "kizuna: this device (%s) is not approved yet: photos are not encrypted to "
                    "it until, on another device of yours, you run: kizuna device approve %s\n",
                    me.id, me.id);
        ks_device_wipe(&me);
        kzc_close(c);
    }
    json_out = was_json;
}
