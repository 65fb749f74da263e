/* notify.c - `kizuna notify`: what reaches the user outside Kizuna, per kind of notification,
 * by push and by e-mail, and whether pushes carry previews (notify.prefs; docs/notifications.md,
 * "Your choices"). The server checks the kinds and keeps urgent ones on one channel at least. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

/* "a,b,c" as a JSON array of strings ("" is the empty list: that channel off for every kind). */
static cJSON *kinds_of(const char *list)
{
    cJSON *a = cJSON_CreateArray();
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (n) {
            char kind[64];
            snprintf(kind, sizeof kind, "%.*s", (int)(n < sizeof kind ? n : sizeof kind - 1), p);
            cJSON_AddItemToArray(a, cJSON_CreateString(kind));
        }
        p += n + (p[n] == ',');
    }
    return a;
}

static void print_list(const char *label, const cJSON *list)
{
    printf("%-22s", label);
    const cJSON *k;
    int n = 0;
    cJSON_ArrayForEach(k, list) printf("%s%s", n++ ? " " : "", k->valuestring);
    printf("%s\n", n ? "" : "(nothing)");
}

/* `notify [--push KIND,KIND] [--email KIND,KIND] [--previews on|off]` */
int cmd_notify(int argc, char **argv)
{
    cJSON *args = cJSON_CreateObject();
    for (int i = 1; i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool previews = strcmp(argv[i], "--previews") == 0;
        if (!v || (strcmp(argv[i], "--push") && strcmp(argv[i], "--email") && !previews) ||
            (previews && strcmp(v, "on") && strcmp(v, "off"))) {
            cJSON_Delete(args);
            return cli_usage_error(NULL);
        }
        if (previews)
            cJSON_AddBoolToObject(args, "previews", strcmp(v, "on") == 0);
        else
            cJSON_AddItemToObject(args, argv[i] + 2, kinds_of(v));
    }
    cJSON *r = NULL;
    int rc = cli_call_once("notify.prefs", args, &r);
    if (rc == EXIT_OK && !json_out) {
        print_list("by push", cJSON_GetObjectItem(r, "push"));
        print_list("by e-mail", cJSON_GetObjectItem(r, "email"));
        printf("%-22s%s\n", "previews",
               cJSON_IsTrue(cJSON_GetObjectItem(r, "previews")) ? "on (pushes show the text)"
                                                                : "off (who and where only)");
        const cJSON *off = cJSON_GetObjectItem(r, "offered");
        print_list("kinds push offers", cJSON_GetObjectItem(off, "push"));
        print_list("kinds e-mail offers", cJSON_GetObjectItem(off, "email"));
    }
    cJSON_Delete(r);
    return rc;
}
