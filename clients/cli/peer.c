/* peer.c - the peer servers of federation: `kizuna admin peer add|list|remove` (and `admin
 * peers`, the list), with each peer's link and replication as the server sees them. Pairing is
 * done by two admins on the phone: each runs `kizunad fingerprint` on their own server and
 * reads the digits to the other, who gives them to `peer add --fingerprint`; the server refuses
 * a key that does not give those digits (docs/federation.md). Entries of the command table in
 * main.c, which has counted their arguments. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A peer's `replication` (peer.list): what it still lacks of the rooms shared with it, what is
 * in flight to it, and the fork alarm (the skew alarm is the link's, printed above). */
static void print_replication(const cJSON *r)
{
    if (!r)
        return;
    long long behind = cli_num(r, "events_behind"), oldest = cli_num(r, "oldest_undelivered_ts");
    if (behind == 0)
        printf("  replication: up to date");
    else
        printf("  replication: %lld events (%lld bytes) not yet acknowledged", behind,
               cli_num(r, "bytes_behind"));
    if (cli_num(r, "unacked_bytes"))
        printf("; %lld bytes in flight", cli_num(r, "unacked_bytes"));
    printf("\n");
    if (oldest) {
        char when[64];
        cli_format_time((double)oldest, when, sizeof when);
        printf("  oldest undelivered: %s (%.0f s ago)\n", when,
               (double)cli_num(r, "oldest_undelivered_age_ms") / 1000);
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "quarantined")))
        printf("  ALARM:       %lld fork(s) of this peer's logs kept as evidence; those logs are "
               "quarantined (docs/federation.md)\n",
               cli_num(r, "forks"));
}

static void print_peer(const cJSON *p)
{
    const cJSON *a, *addrs = cJSON_GetObjectItemCaseSensitive(p, "addresses");
    const char *name = cli_str(p, "name", NULL);
    printf("%s%s%s%s\n", cli_str(p, "server", NULL), *name ? " (" : "", name, *name ? ")" : "");
    printf("  key:         %s\n", cli_str(p, "key", NULL));
    printf("  fingerprint: %s\n", cli_str(p, "fingerprint", NULL));
    printf("  addresses:  ");
    cJSON_ArrayForEach(a, addrs) printf(" %s", cJSON_IsString(a) ? a->valuestring : "?");
    printf("\n  TLS pin:     %s\n",
           *cli_str(p, "tls_pin", NULL) ? cli_str(p, "tls_pin", NULL) : "(none)");
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(p, "link");
    if (!l)
        return;
    char when[64];
    const cJSON *since = cJSON_GetObjectItemCaseSensitive(l, "since");
    const cJSON *contact = cJSON_GetObjectItemCaseSensitive(l, "last_contact");
    const char *state = cli_str(l, "state", NULL), *dir = cli_str(l, "direction", NULL);
    printf("  link:        %s", state);
    if (*dir)
        printf(" (%s)", strcmp(dir, "out") == 0 ? "dialled by this server" : "dialled by the peer");
    if (cJSON_IsNumber(since)) {
        cli_format_time(since->valuedouble, when, sizeof when);
        printf(" since %s", when);
    }
    printf("\n");
    if (cJSON_IsNumber(contact)) {
        cli_format_time(contact->valuedouble, when, sizeof when);
        printf("  last contact: %s\n", when);
    }
    const cJSON *backoff = cJSON_GetObjectItemCaseSensitive(l, "backoff_ms");
    if (strcmp(state, "disconnected") == 0 && cJSON_IsNumber(backoff))
        printf("  next attempt: within %.1f s (after %lld failed rounds)\n",
               backoff->valuedouble / 1000, cli_num(l, "failures"));
    if (*cli_str(l, "last_error", NULL))
        printf("  last error:  %s\n", cli_str(l, "last_error", NULL));
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(l, "skew_alarm")))
        printf("  ALARM:       clock skew %.0f s (over 120 s): check both servers' clocks\n",
               cJSON_GetObjectItemCaseSensitive(l, "skew_ms")->valuedouble / 1000);
    print_replication(cJSON_GetObjectItemCaseSensitive(p, "replication"));
}

/* `admin peer add ID --key KEY --address HOST:PORT [--address ...] --fingerprint DIGITS
 * [--tls-pin PIN] [--name NAME]`; argv[0] is "add". */
int cmd_peer_add(int argc, char **argv)
{
    cJSON *args = cJSON_CreateObject();
    cJSON *addrs = cJSON_AddArrayToObject(args, "addresses");
    const char *id = NULL, *bad = NULL;
    bool have_key = false, have_fp = false;
    for (int i = 1; i < argc && !bad; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-') {
            if (id)
                bad = "unexpected argument";
            id = a;
            continue;
        }
        if (!v) {
            bad = "an option needs a value";
            break;
        }
        i++;
        if (strcmp(a, "--key") == 0) {
            cJSON_AddStringToObject(args, "key", v);
            have_key = true;
        } else if (strcmp(a, "--address") == 0) {
            cJSON_AddItemToArray(addrs, cJSON_CreateString(v));
        } else if (strcmp(a, "--fingerprint") == 0) {
            cJSON_AddStringToObject(args, "fingerprint", v);
            have_fp = true;
        } else if (strcmp(a, "--tls-pin") == 0) {
            cJSON_AddStringToObject(args, "tls_pin", v);
        } else if (strcmp(a, "--name") == 0) {
            cJSON_AddStringToObject(args, "name", v);
        } else {
            bad = ""; /* cli_usage_error names the option it does not have */
        }
    }
    if (!bad && !id)
        bad = "peer add needs the peer's server ID";
    else if (!bad && !have_key)
        bad = "--key KEY is required: the peer's public key (kizunad fingerprint on its server)";
    else if (!bad && cJSON_GetArraySize(addrs) == 0)
        bad = "--address HOST:PORT is required (repeat it for more addresses)";
    else if (!bad && !have_fp)
        bad = "--fingerprint is required: the 60 digits the peer's administrator reads to you "
              "from kizunad fingerprint on their server";
    if (bad) {
        cJSON_Delete(args);
        return cli_usage_error(*bad ? bad : NULL);
    }
    cJSON_AddStringToObject(args, "server", id);
    cJSON *reply = NULL;
    int rc = cli_call_once("peer.add", args, &reply);
    if (rc == EXIT_OK && !json_out) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(reply, "peer");
        printf("peer added; the fingerprint matches its id and key:\n");
        print_peer(p);
    }
    cJSON_Delete(reply);
    return rc;
}

/* `admin peer list` */
int cmd_peer_list(int argc, char **argv)
{
    (void)argc, (void)argv;
    cJSON *reply = NULL;
    int rc = cli_call_once("peer.list", NULL, &reply);
    if (rc == EXIT_OK && !json_out) {
        printf("this server: %s\n  fingerprint: %s\n\n", cli_str(reply, "self", "server"),
               cli_str(reply, "self", "fingerprint"));
        const cJSON *p, *peers = cJSON_GetObjectItemCaseSensitive(reply, "peers");
        if (cJSON_GetArraySize(peers) == 0)
            printf("no peers (kizuna admin peer add)\n");
        cJSON_ArrayForEach(p, peers) print_peer(p);
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(reply, "replication");
        if (r)
            printf("\nreplication since start: %lld events sent, %lld received, %lld "
                   "duplicates, %lld rejected, %lld invalid, %lld forks, %lld late\n",
                   cli_num(r, "events_sent"), cli_num(r, "events_received"),
                   cli_num(r, "duplicates"), cli_num(r, "rejected"), cli_num(r, "invalid"),
                   cli_num(r, "forks"), cli_num(r, "late"));
    }
    cJSON_Delete(reply);
    return rc;
}

/* `admin peer remove ID` */
int cmd_peer_remove(int argc, char **argv)
{
    (void)argc;
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "server", argv[1]);
    int rc = cli_call_once("peer.remove", args, NULL);
    if (rc == EXIT_OK && !json_out)
        printf("peer %s removed\n", argv[1]);
    return rc;
}
