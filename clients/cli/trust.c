/* trust.c - whose devices this device encrypts to (issue 14, items 1 and 2). The server lists
 * devices; it does not decide which of them get keys. Each user's own devices sign the list of
 * devices the user vouches for (media.h, "Signed device lists"); this device keeps, for every
 * user it meets, the version of that list it accepted ("pinned", in contacts.json), takes a
 * newer one only if it follows the pinned one, and encrypts only to devices of the pinned list,
 * and, for a contact this user verified (`kizuna verify`), only to the devices the user accepted
 * then. Every change of a list is told to the user once, with what was added and by which device.
 *
 * contacts.json: {"users":{LOGIN:{"list":B64 (the accepted encoding), "ever":[device ids any
 * accepted version named: their older events still verify], "verified":{"at":ms,
 * "keys":[B64(sign_pk || box_pk)]}}}}. It says whom the user verified: logout wipes it. */
#include "e2ee.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One user as this process knows them. */
struct tr_user {
    char login[MEDIA_DEVLIST_LOGIN_MAX + 1];
    bool has_list;            /* cur is the pinned version */
    bool fetched;             /* the whole chain was read from the server by this process */
    bool stuck;               /* the server's chain does not follow the pinned version */
    long long server_seq;     /* the newest version the server showed (0: none) */
    struct media_devlist cur; /* the accepted newest version */
};

static struct {
    struct tr_user **u;
    size_t n, cap;
    cJSON *pins;   /* contacts.json (owned), read on first need */
    cJSON *warned; /* {"login/device/why": true}: each warning once per process */
    enum trust_own_state own;
    char me[128]; /* this session's login */
    bool me_known;
} tr;

/* ---- contacts.json ---- */

static cJSON *pins(void)
{
    if (tr.pins)
        return tr.pins;
    char path[4200];
    ks_path(path, sizeof path, "contacts.json");
    tr.pins = ks_read_json(path);
    if (!cJSON_IsObject(tr.pins)) {
        cJSON_Delete(tr.pins);
        tr.pins = cJSON_CreateObject();
    }
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(tr.pins, "users")))
        cJSON_AddObjectToObject(tr.pins, "users");
    return tr.pins;
}

/* Pins are kept by the name signatures bind (login@server, issue 19), so a list, which names
 * its user that way, and a user as the server shows them (a bare login for this server's own)
 * find the same pin. A pin kept by the bare login before is taken over. */
static cJSON *pin_of(const char *login, bool create)
{
    char who[CLI_QUALIFIED_MAX];
    cJSON *users = cJSON_GetObjectItemCaseSensitive(pins(), "users");
    cJSON *p = cJSON_GetObjectItemCaseSensitive(users, cli_qualify(login, who));
    if (!p && !strchr(login, '@') && cJSON_GetObjectItemCaseSensitive(users, login)) {
        p = cJSON_DetachItemFromObjectCaseSensitive(users, login);
        cJSON_AddItemToObject(users, who, p);
    }
    if (!p && create)
        p = cJSON_AddObjectToObject(users, who);
    return p;
}

static void pins_save(void)
{
    char path[4200];
    ks_path(path, sizeof path, "contacts.json");
    if (ks_write_json(path, pins()) != 0)
        fprintf(stderr, "kizuna: cannot save contacts.json (the device lists this device "
                        "accepted)\n");
}

static bool ever_has(const char *login, const char *id)
{
    const cJSON *x;
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(pin_of(login, false), "ever"))
    {
        if (cJSON_IsString(x) && strcmp(x->valuestring, id) == 0)
            return true;
    }
    return false;
}

static void ever_add(const struct media_devlist *l)
{
    cJSON *p = pin_of(l->login, true);
    cJSON *ever = cJSON_GetObjectItemCaseSensitive(p, "ever");
    if (!cJSON_IsArray(ever)) {
        cJSON_DeleteItemFromObjectCaseSensitive(p, "ever");
        ever = cJSON_AddArrayToObject(p, "ever");
    }
    for (size_t i = 0; i < l->n; i++)
        if (!ever_has(l->login, l->dev[i].id))
            cJSON_AddItemToArray(ever, cJSON_CreateString(l->dev[i].id));
}

static void pin_list(const struct media_devlist *l, const unsigned char *enc, size_t len)
{
    cJSON *p = pin_of(l->login, true);
    cJSON_DeleteItemFromObjectCaseSensitive(p, "list");
    add_b64(p, "list", enc, len);
    ever_add(l);
}

static const cJSON *verified_of(const char *login)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(pin_of(login, false), "verified");
    return cJSON_IsObject(v) ? v : NULL;
}

static bool verified_has(const cJSON *v, const struct media_devlist_entry *d)
{
    uint8_t k[64];
    const cJSON *x;
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(v, "keys"))
    {
        if (unb64url_exact(cJSON_GetStringValue(x), k, 64) && memcmp(k, d->sign_pk, 32) == 0 &&
            memcmp(k + 32, d->box_pk, 32) == 0)
            return true;
    }
    return false;
}

/* ---- users ---- */

static struct tr_user *user_get(const char *login)
{
    for (size_t i = 0; i < tr.n; i++)
        if (strcmp(tr.u[i]->login, login) == 0)
            return tr.u[i];
    if (strlen(login) > MEDIA_DEVLIST_LOGIN_MAX)
        return NULL;
    if (tr.n == tr.cap) {
        size_t cap = tr.cap ? tr.cap * 2 : 16;
        struct tr_user **grown = realloc(tr.u, cap * sizeof *grown);
        if (!grown)
            return NULL;
        tr.u = grown;
        tr.cap = cap;
    }
    struct tr_user *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    snprintf(u->login, sizeof u->login, "%s", login);
    uint8_t *enc;
    size_t len;
    char who[CLI_QUALIFIED_MAX];
    if (unb64url(cli_str(pin_of(login, false), "list", NULL), &enc, &len)) {
        u->has_list = media_devlist_decode(enc, len, &u->cur) == MEDIA_OK &&
                      strcmp(u->cur.login, cli_qualify(login, who)) == 0;
        free(enc);
    }
    tr.u[tr.n++] = u;
    return u;
}

/* Prints a warning once per process per key. */
static bool warn_once(const char *key)
{
    if (!tr.warned)
        tr.warned = cJSON_CreateObject();
    if (cJSON_GetObjectItemCaseSensitive(tr.warned, key))
        return false;
    cJSON_AddTrueToObject(tr.warned, key);
    return true;
}

/* "iPhone" of a device, from a directory reply; "" if unknown. */
static const char *label_in(const cJSON *dir, const char *id)
{
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(dir, "devices"))
    {
        if (strcmp(cli_str(d, "device", NULL), id) == 0)
            return cli_str(d, "label", NULL);
    }
    return "";
}

static bool is_me(const char *login)
{
    if (!tr.me_known) {
        struct session s;
        if (cli_session_load(&s))
            snprintf(tr.me, sizeof tr.me, "%s", s.login);
        tr.me_known = true;
    }
    return strcmp(tr.me, login) == 0;
}

/* ---- checking what the server serves ---- */

static bool is_b64_of(const cJSON *v, size_t n)
{
    uint8_t buf[64];
    return cJSON_IsString(v) && n <= sizeof buf && unb64url_exact(v->valuestring, buf, n);
}

const char *trust_entry_bad(const cJSON *d, bool in_room)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(d, "device");
    const cJSON *rev = cJSON_GetObjectItemCaseSensitive(d, "revoked_at");
    if (!cJSON_IsObject(d))
        return "an entry that is not an object";
    if (!cJSON_IsString(id) || strlen(id->valuestring) != MEDIA_DEVICE_ID_LEN)
        return "no device id";
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(d, "login")))
        return "no login";
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(d, "label")))
        return "no label";
    if (!is_b64_of(cJSON_GetObjectItemCaseSensitive(d, "sign_pk"), 32) ||
        !is_b64_of(cJSON_GetObjectItemCaseSensitive(d, "box_pk"), 32) ||
        !is_b64_of(cJSON_GetObjectItemCaseSensitive(d, "sig"), 64))
        return "keys or self-signature missing or of the wrong size";
    if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(d, "created_at")))
        return "no created_at";
    /* Absent is not "not revoked": a field the server dropped must not pass for one. */
    if (!cJSON_IsNull(rev) && !cJSON_IsNumber(rev))
        return "no revoked_at";
    if (in_room && !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(d, "joined_pos")))
        return "no joined_pos";
    return NULL;
}

static const char *list_entry_bad(const cJSON *l)
{
    if (!cJSON_IsObject(l) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(l, "login")) ||
        !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(l, "seq")) ||
        !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(l, "list")) ||
        !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(l, "by")) ||
        !is_b64_of(cJSON_GetObjectItemCaseSensitive(l, "sig"), 64))
        return "a signed device list without login, seq, list, by or sig";
    return NULL;
}

/* Every entry of a device.list or room.devices reply, or the reply is refused whole. */
static int reply_check(const cJSON *reply, const char *whose, bool in_room)
{
    const cJSON *devs = cJSON_GetObjectItemCaseSensitive(reply, "devices"), *x;
    const cJSON *lists = cJSON_GetObjectItemCaseSensitive(reply, "lists");
    const char *bad = !cJSON_IsArray(devs)    ? "no devices"
                      : !cJSON_IsArray(lists) ? "no lists"
                                              : NULL;
    int i = 0;
    cJSON_ArrayForEach(x, devs)
    {
        if (!bad && (bad = trust_entry_bad(x, in_room)))
            break;
        i++;
    }
    cJSON_ArrayForEach(x, lists) if (!bad) bad = list_entry_bad(x);
    if (!bad)
        return EXIT_OK;
    fprintf(stderr,
            "kizuna: the server's device list for %s is malformed (device %d: %s): refusing "
            "it\n",
            whose, i + 1, bad);
    return EXIT_REFUSED;
}

/* A signed list entry decoded: enc (caller frees), l, by and sig; false if anything is off. */
static bool list_decode(const cJSON *e, uint8_t **enc, size_t *len, struct media_devlist *l,
                        uint8_t sig[64])
{
    *enc = NULL;
    if (!unb64url(cli_str(e, "list", NULL), enc, len) ||
        media_devlist_decode(*enc, *len, l) != MEDIA_OK ||
        !unb64url_exact(cli_str(e, "sig", NULL), sig, 64) ||
        (long long)l->seq != (long long)cli_num(e, "seq")) {
        free(*enc);
        *enc = NULL;
        return false;
    }
    return true;
}

/* Tells what changed from old to new (one line per device). */
static void report(const struct tr_user *u, const struct media_devlist *old,
                   const struct media_devlist *nu, bool reset, const char *reset_by,
                   const cJSON *dir)
{
    bool me = is_me(u->login);
    char whose[200];
    snprintf(whose, sizeof whose, me ? "your" : "%s's", u->login);
    if (reset)
        fprintf(stderr,
                "kizuna: %s device list started anew, signed by the device %s \"%s\": every "
                "earlier device is dropped%s\n",
                whose, reset_by, label_in(dir, reset_by),
                me ? "" : "; if that is unexpected, compare safety numbers (kizuna verify)");
    /* For a contact the user verified, the room tells (trust_room_devices) that a new device
     * gets no keys until accepted. */
    for (size_t i = 0; i < nu->n; i++)
        if (!old || media_devlist_find(old, nu->dev[i].id) < 0)
            fprintf(stderr, "kizuna: %s devices: %s \"%s\" was added\n", whose, nu->dev[i].id,
                    label_in(dir, nu->dev[i].id));
    for (size_t i = 0; old && i < old->n; i++)
        if (media_devlist_find(nu, old->dev[i].id) < 0)
            fprintf(stderr, "kizuna: %s devices: %s \"%s\" was removed\n", whose, old->dev[i].id,
                    label_in(dir, old->dev[i].id));
}

/* Takes the newest version of u's chain that follows the pinned one (every version, oldest
 * first, in lists); without a pin, the newest that follows from a root (trust on first use).
 * A chain that does not follow is told, once, and the pin kept: the server can then only
 * leave devices out, never add one. */
static void walk(struct tr_user *u, const cJSON *lists, const cJSON *dir)
{
    struct media_devlist *acc = malloc(sizeof *acc), *v = malloc(sizeof *v);
    uint8_t *acc_enc = NULL;
    size_t acc_len = 0;
    if (!acc || !v) {
        free(acc);
        free(v);
        return;
    }
    bool started = false, reset = false, tofu = !u->has_list, skipped = false;
    char problem[200] = "", reset_by[DEVICE_ID_MAX] = "";
    long long last = 0;
    const cJSON *e;
    u->server_seq = 0;
    cJSON_ArrayForEach(e, lists)
    {
        if (strcmp(cli_str(e, "login", NULL), u->login) != 0)
            continue;
        if (cli_num(e, "seq") > u->server_seq)
            u->server_seq = cli_num(e, "seq");
        if (problem[0])
            continue;
        uint8_t *enc, sig[64];
        size_t len;
        char who[CLI_QUALIFIED_MAX];
        bool decoded = list_decode(e, &enc, &len, v, sig);
        if (decoded && (long long)v->seq > last && !strchr(u->login, '@') &&
            strcmp(v->login, u->login) == 0) {
            /* Signed before names were login@server (issue 19): what it vouched for binds no
             * server, so it is history, not trust; the user's devices start the list anew. */
            last = (long long)v->seq;
            free(enc);
            continue;
        }
        if (!decoded || strcmp(v->login, cli_qualify(u->login, who)) != 0 ||
            (long long)v->seq <= last) {
            snprintf(problem, sizeof problem, "version %lld is malformed", cli_num(e, "seq"));
            free(enc);
            continue;
        }
        last = (long long)v->seq;
        const char *by = cli_str(e, "by", NULL);
        if (!started && !tofu) {
            if (v->seq < u->cur.seq) {
                free(enc);
                continue;
            }
            if (v->seq > u->cur.seq || memcmp(v->hash, u->cur.hash, 32) != 0)
                snprintf(problem, sizeof problem,
                         "it has no version %llu as this device accepted it",
                         (unsigned long long)u->cur.seq);
            else
                *acc = *v, started = true;
            free(enc);
            continue;
        }
        enum media_rc rc = media_devlist_follows(started ? acc : NULL, v, enc, len, by, sig);
        if (rc != MEDIA_OK && tofu && media_devlist_follows(NULL, v, enc, len, by, sig) == MEDIA_OK)
            rc = MEDIA_OK; /* before a first pin, every version that stands is history */
        if (rc == MEDIA_OK) {
            if (started && media_devlist_is_root(v) && !tofu) {
                reset = true;
                snprintf(reset_by, sizeof reset_by, "%s", by);
            }
            *acc = *v;
            started = true;
            ever_add(v);
            free(acc_enc);
            acc_enc = enc;
            acc_len = len;
        } else if (tofu) {
            skipped = true; /* a version that does not stand is no one's history */
            free(enc);
        } else {
            snprintf(problem, sizeof problem, "version %llu does not follow version %llu",
                     (unsigned long long)v->seq, (unsigned long long)acc->seq);
            free(enc);
        }
    }
    if (!tofu && !started && !problem[0])
        snprintf(problem, sizeof problem, "it shows no version %llu, which this device accepted",
                 (unsigned long long)u->cur.seq);
    u->stuck = problem[0] != '\0';
    char key[300];
    snprintf(key, sizeof key, "%s//chain", u->login);
    if (u->stuck && warn_once(key))
        fprintf(stderr,
                "kizuna: the server's device list for %s does not follow the one this device "
                "accepted (%s): keeping version %llu, so no device added since receives photo "
                "keys\n",
                u->login, problem, (unsigned long long)u->cur.seq);
    else if (skipped && warn_once(key))
        fprintf(stderr,
                "kizuna: the server's device list for %s has versions that do not verify: "
                "they are ignored\n",
                u->login);
    if (acc_enc && (tofu || acc->seq > u->cur.seq)) {
        if (!tofu)
            report(u, &u->cur, acc, reset, reset_by, dir);
        u->cur = *acc;
        u->has_list = true;
        pin_list(acc, acc_enc, acc_len);
        pins_save();
    }
    free(acc_enc);
    free(acc);
    free(v);
}

int trust_load(struct kzc *c, const char *login, cJSON **dir, const struct media_devlist **list)
{
    if (dir)
        *dir = NULL;
    if (list)
        *list = NULL;
    struct tr_user *u = user_get(login);
    if (!u)
        return EXIT_REFUSED;
    cJSON *args = cJSON_CreateObject(), *reply;
    cJSON_AddStringToObject(args, "login", login);
    int rc = cli_call(c, "device.list", args, &reply);
    if (rc != EXIT_OK)
        return rc;
    if ((rc = reply_check(reply, login, false)) != EXIT_OK) {
        cJSON_Delete(reply);
        return rc;
    }
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(reply, "devices"))
    {
        if (strcmp(cli_str(d, "login", NULL), login) != 0) {
            fprintf(stderr,
                    "kizuna: the server's device list for %s names a device of %s: "
                    "refusing it\n",
                    login, cli_str(d, "login", NULL));
            cJSON_Delete(reply);
            return EXIT_REFUSED;
        }
    }
    walk(u, cJSON_GetObjectItemCaseSensitive(reply, "lists"), reply);
    u->fetched = true;
    if (list && u->has_list)
        *list = &u->cur;
    if (dir)
        *dir = reply;
    else
        cJSON_Delete(reply);
    return EXIT_OK;
}

/* ---- which devices get keys ---- */

enum why_not { OK_TRUSTED, NO_LIST, NOT_LISTED, KEYS_DIFFER, NOT_VERIFIED };

static enum why_not why_not(const struct tr_user *u, const char *id, const uint8_t sign_pk[32],
                            const uint8_t box_pk[32])
{
    if (!u->has_list)
        return NO_LIST;
    int i = media_devlist_find(&u->cur, id);
    if (i < 0)
        return NOT_LISTED;
    if (memcmp(u->cur.dev[i].sign_pk, sign_pk, 32) != 0 ||
        memcmp(u->cur.dev[i].box_pk, box_pk, 32) != 0)
        return KEYS_DIFFER;
    const cJSON *v = is_me(u->login) ? NULL : verified_of(u->login);
    if (v && !verified_has(v, &u->cur.dev[i]))
        return NOT_VERIFIED;
    return OK_TRUSTED;
}

static void warn_excluded(const struct ks_device *me, const char *login, const char *id,
                          const char *label, enum why_not w, char *why, size_t n)
{
    bool mine = strcmp(login, me->login) == 0, self = strcmp(id, me->id) == 0;
    switch (w) {
    case NO_LIST:
        snprintf(why, n, "%s has no signed device list yet", login);
        break;
    case NOT_LISTED:
        snprintf(why, n, "%s is not in %s's signed device list (not approved)", id, login);
        break;
    case KEYS_DIFFER:
        snprintf(why, n, "the server's keys for %s differ from %s's signed device list", id, login);
        break;
    default:
        snprintf(why, n, "%s was added after %s was verified, and is not accepted yet", id, login);
        break;
    }
    char key[300];
    snprintf(key, sizeof key, "%s/%s/%d", login, id, (int)w);
    if (!warn_once(key))
        return;
    if (self)
        fprintf(stderr,
                "kizuna: this device (%s) waits for approval: on another device of yours that "
                "is approved, run: kizuna device approve %s\n",
                id, id);
    else if (mine && w == NOT_LISTED)
        fprintf(stderr,
                "kizuna: your device %s \"%s\" is not approved: it receives no photo keys until "
                "you run: kizuna device approve %s\n",
                id, label, id);
    else if (w == NOT_VERIFIED)
        fprintf(stderr,
                "kizuna: %s's device %s \"%s\" was added after you verified %s: it receives no "
                "photo keys until you compare safety numbers again and accept it: kizuna verify "
                "%s\n",
                login, id, label, login, login);
    else
        fprintf(stderr, "kizuna: %s's device %s \"%s\" receives no photo keys: %s\n", login, id,
                label, why);
}

int trust_room_devices(struct kzc *c, const struct ks_device *me, const char *room_id, cJSON *reply,
                       cJSON **excluded)
{
    *excluded = cJSON_CreateArray();
    char whose[200];
    snprintf(whose, sizeof whose, "room %.8s…", room_id);
    if (reply_check(reply, whose, true) != EXIT_OK)
        return EXIT_REFUSED;
    const cJSON *lists = cJSON_GetObjectItemCaseSensitive(reply, "lists");
    cJSON *devs = cJSON_GetObjectItemCaseSensitive(reply, "devices");
    for (int i = 0; i < cJSON_GetArraySize(devs);) {
        cJSON *d = cJSON_GetArrayItem(devs, i);
        const char *login = cli_str(d, "login", NULL), *id = cli_str(d, "device", NULL);
        struct tr_user *u = user_get(login);
        if (!u) {
            cJSON_AddItemToArray(*excluded, cJSON_DetachItemFromArray(devs, i));
            continue;
        }
        /* The newest version the server names for this member: read the whole chain only when
         * it is not the pinned one (a change, or the first meeting). */
        const cJSON *hint = NULL, *l;
        cJSON_ArrayForEach(l, lists) if (strcmp(cli_str(l, "login", NULL), login) == 0) hint = l;
        uint8_t *enc = NULL, sig[64];
        size_t len;
        struct media_devlist *h = hint ? malloc(sizeof *h) : NULL;
        bool same = h && u->has_list && list_decode(hint, &enc, &len, h, sig) &&
                    memcmp(h->hash, u->cur.hash, 32) == 0;
        free(enc);
        free(h);
        if (hint && !same && (!u->fetched || cli_num(hint, "seq") > u->server_seq)) {
            int rc = trust_load(c, login, NULL, NULL);
            if (rc != EXIT_OK)
                return rc;
        }
        uint8_t spk[32], bpk[32];
        unb64url_exact(cli_str(d, "sign_pk", NULL), spk, 32);
        unb64url_exact(cli_str(d, "box_pk", NULL), bpk, 32);
        enum why_not w = why_not(u, id, spk, bpk);
        if (w == OK_TRUSTED) {
            i++;
            continue;
        }
        char why[300];
        warn_excluded(me, login, id, cli_str(d, "label", NULL), w, why, sizeof why);
        cJSON *x = cJSON_DetachItemFromArray(devs, i);
        cJSON_AddStringToObject(x, "why", why);
        cJSON_AddItemToArray(*excluded, x);
    }
    return EXIT_OK;
}

bool trust_vouched_ever(struct kzc *c, const char *login, const char *device)
{
    struct tr_user *u = user_get(login);
    if (!u)
        return false;
    if (ever_has(login, device) || (u->has_list && media_devlist_find(&u->cur, device) >= 0))
        return true;
    if (!u->fetched && trust_load(c, login, NULL, NULL) != EXIT_OK)
        return false;
    return ever_has(login, device);
}

/* ---- this user's own list ---- */

/* Signs l as the next version with this device's key and publishes it. */
static int publish(struct kzc *c, const struct ks_device *me, struct media_devlist *l)
{
    unsigned char *enc = malloc(MEDIA_DEVLIST_ENCODED_MAX);
    uint8_t sig[64];
    size_t len;
    if (!enc || media_devlist_encode(l, enc, MEDIA_DEVLIST_ENCODED_MAX, &len) != MEDIA_OK ||
        media_devlist_sign(enc, len, me->k.sign_sk, sig) != MEDIA_OK) {
        free(enc);
        return EXIT_REFUSED;
    }
    cJSON *args = cJSON_CreateObject(), *reply;
    add_b64(args, "list", enc, len);
    cJSON_AddStringToObject(args, "device", me->id);
    add_b64(args, "sig", sig, 64);
    int rc = cli_call(c, "device.sign", args, &reply);
    cJSON_Delete(reply);
    if (rc == EXIT_OK) {
        struct tr_user *u = user_get(me->login);
        if (u) {
            u->cur = *l;
            u->has_list = true;
            u->server_seq = (long long)l->seq;
        }
        pin_list(l, enc, len);
        pins_save();
    }
    free(enc);
    return rc;
}

/* Whether the directory says a device is revoked. */
static bool revoked_in(const cJSON *dir, const char *id)
{
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(dir, "devices"))
    {
        if (strcmp(cli_str(d, "device", NULL), id) == 0)
            return cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(d, "revoked_at"));
    }
    return false;
}

int trust_own(struct kzc *c, const struct ks_device *me)
{
    cJSON *dir = NULL;
    const struct media_devlist *cur;
    int rc = trust_load(c, me->login, &dir, &cur);
    if (rc != EXIT_OK)
        return rc;
    struct tr_user *u = user_get(me->login);
    struct media_devlist *next = malloc(sizeof *next);
    if (!u || !next) {
        cJSON_Delete(dir);
        free(next);
        return EXIT_REFUSED;
    }
    bool active = false;
    for (size_t i = 0; cur && i < cur->n; i++)
        active = active || !revoked_in(dir, cur->dev[i].id);
    if (cur && media_devlist_find(cur, me->id) >= 0) {
        /* Approved. Devices the server says were revoked leave the list too, so that a
         * revocation also binds a server that would keep listing them. */
        *next = *cur;
        next->n = 0;
        for (size_t i = 0; i < cur->n; i++)
            if (!revoked_in(dir, cur->dev[i].id) || strcmp(cur->dev[i].id, me->id) == 0)
                next->dev[next->n++] = cur->dev[i];
        tr.own = TRUST_OWN_APPROVED;
        if (next->n != cur->n && !u->stuck && u->server_seq == (long long)cur->seq) {
            next->seq = cur->seq + 1;
            memcpy(next->prev, cur->hash, 32);
            rc = publish(c, me, next);
        }
    } else if (!cur || !active) {
        /* The first device of this user, or none of the listed ones is active any more (every
         * one revoked or logged out): this device starts the list anew. Everyone is shown. */
        memset(next, 0, sizeof *next);
        char who[CLI_QUALIFIED_MAX];
        snprintf(next->login, sizeof next->login, "%.128s", cli_qualify(me->login, who));
        next->seq = (uint64_t)u->server_seq + 1;
        memcpy(next->dev[0].sign_pk, me->k.sign_pk, 32);
        memcpy(next->dev[0].box_pk, me->k.box_pk, 32);
        next->n = 1;
        rc = publish(c, me, next);
        if (rc == EXIT_OK)
            tr.own = TRUST_OWN_APPROVED;
        if (rc == EXIT_OK && next->seq > 1 && !json_out)
            fprintf(stderr, "kizuna: none of your listed devices is active any more: this device "
                            "starts your device list anew (your contacts are told)\n");
    } else {
        tr.own = TRUST_OWN_PENDING;
    }
    free(next);
    cJSON_Delete(dir);
    return rc;
}

enum trust_own_state trust_own_state(void)
{
    return tr.own;
}

/* Adds (add) or removes a device of this user's own list, signed by this device. */
static int own_change(struct kzc *c, const struct ks_device *me, const char *id, bool add)
{
    cJSON *dir = NULL;
    const struct media_devlist *cur;
    int rc = trust_load(c, me->login, &dir, &cur);
    if (rc != EXIT_OK)
        return rc;
    struct tr_user *u = user_get(me->login);
    struct media_devlist *next = malloc(sizeof *next);
    const cJSON *entry = NULL, *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(dir, "devices"))
    {
        if (strcmp(cli_str(d, "device", NULL), id) == 0)
            entry = d;
    }
    rc = EXIT_REFUSED;
    if (!next || !u) {
        /* out of memory */
    } else if (!cur || media_devlist_find(cur, me->id) < 0) {
        fprintf(stderr, "kizuna: this device is not approved itself: do this on a device of "
                        "yours that is (kizuna devices shows which)\n");
    } else if (u->stuck || u->server_seq != (long long)cur->seq) {
        fprintf(stderr, "kizuna: the server's device list does not follow the one this device "
                        "accepted: not signing a new version\n");
    } else if (add &&
               (!entry || cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(entry, "revoked_at")))) {
        fprintf(stderr, "kizuna: no active device %s of yours\n", id);
    } else if (add && media_devlist_find(cur, id) >= 0) {
        rc = EXIT_OK; /* approved already */
    } else if (!add && media_devlist_find(cur, id) < 0) {
        rc = EXIT_OK; /* not listed */
    } else {
        *next = *cur;
        next->seq = cur->seq + 1;
        memcpy(next->prev, cur->hash, 32);
        bool ok = true;
        if (add) {
            uint8_t sig[64];
            struct media_devlist_entry *e = &next->dev[next->n];
            ok = next->n < MEDIA_DEVLIST_MAX &&
                 unb64url_exact(cli_str(entry, "sign_pk", NULL), e->sign_pk, 32) &&
                 unb64url_exact(cli_str(entry, "box_pk", NULL), e->box_pk, 32) &&
                 unb64url_exact(cli_str(entry, "sig", NULL), sig, 64);
            char eid[DEVICE_ID_MAX], who[CLI_QUALIFIED_MAX];
            if (ok)
                ks_device_id(e->sign_pk, eid);
            /* The id is the hash of the signing key, and the keys are the user's own. */
            ok = ok && strcmp(eid, id) == 0 &&
                 media_devkey_verify(cli_qualify(me->login, who), id, e->sign_pk, e->box_pk, sig);
            if (ok)
                next->n++;
            else
                fprintf(stderr, "kizuna: device %s's keys do not verify: not approving it\n", id);
        } else {
            int at = media_devlist_find(next, id);
            next->dev[at] = next->dev[--next->n];
        }
        if (ok)
            rc = publish(c, me, next);
    }
    free(next);
    cJSON_Delete(dir);
    return rc;
}

int trust_approve(struct kzc *c, const struct ks_device *me, const char *id)
{
    return own_change(c, me, id, true);
}

int trust_unlist(struct kzc *c, const struct ks_device *me, const char *id)
{
    return own_change(c, me, id, false);
}

/* ---- verification ---- */

bool trust_verified(const char *login, long long *at)
{
    const cJSON *v = verified_of(login);
    if (v && at)
        *at = cli_num(v, "at");
    return v != NULL;
}

bool trust_is_accepted(const char *login, const struct media_devlist_entry *d)
{
    const cJSON *v = verified_of(login);
    return !v || verified_has(v, d);
}

void trust_mark_verified(const char *login, const struct media_devlist *l, long long now)
{
    cJSON *p = pin_of(login, true);
    cJSON_DeleteItemFromObjectCaseSensitive(p, "verified");
    cJSON *v = cJSON_AddObjectToObject(p, "verified");
    cJSON_AddNumberToObject(v, "at", (double)now);
    cJSON *keys = cJSON_AddArrayToObject(v, "keys");
    for (size_t i = 0; i < l->n; i++) {
        uint8_t k[64];
        memcpy(k, l->dev[i].sign_pk, 32);
        memcpy(k + 32, l->dev[i].box_pk, 32);
        char *t = b64url(k, sizeof k);
        cJSON_AddItemToArray(keys, cJSON_CreateString(t ? t : ""));
        free(t);
    }
    pins_save();
}

/* ---- room policies ---- */

int trust_sign_policy(const struct ks_device *me, const char *history, cJSON *args)
{
    uint8_t sig[64];
    char who[CLI_QUALIFIED_MAX];
    if (media_policy_sign(cli_qualify(me->login, who), history, me->k.sign_sk, sig) != MEDIA_OK)
        return EXIT_REFUSED;
    cJSON_AddStringToObject(args, "policy_device", me->id);
    add_b64(args, "policy_sig", sig, 64);
    return EXIT_OK;
}

int cli_connect_signing(struct kzc **c, const char *history, cJSON *args)
{
    struct session s;
    struct ks_device me;
    int rc = connect_device(c, &s, &me);
    if (rc != EXIT_OK)
        return rc;
    rc = trust_sign_policy(&me, history, args);
    ks_device_wipe(&me);
    if (rc != EXIT_OK) {
        kzc_close(*c);
        *c = NULL;
    }
    return rc;
}
