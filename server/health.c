/* health.c - whether this server should be sent traffic (GET /readyz): its database takes
 * writes, the data directory's disk keeps ready_min_free_bytes free, and it is not shutting
 * down. GET /healthz (http_api.c) only says the loop answers; readiness is what a load balancer
 * or a monitor acts on before clients see errors. */
#include "core.h"

#include <sys/statvfs.h>

int64_t srv_disk_free_bytes(struct srv *s)
{
    struct statvfs v;
    if (statvfs(s->data_dir[0] ? s->data_dir : ".", &v) != 0)
        return -1;
    return (int64_t)v.f_bavail * (int64_t)v.f_frsize;
}

/* An idle server commits nothing, so "the last commit succeeded" could be hours old: after
 * ready_write_probe_s without one, one small row is written in the loop's transaction. Its
 * commit (at the end of this loop turn) is what the next readyz reports; at most one probe per
 * interval, so a monitor polling every second costs one write per 30 s by default. */
static void write_probe(struct srv *s, int64_t now)
{
    int64_t every = s->cfg->ready_write_probe_s * 1000;
    if (now - s->commit_ok_at < every || now - s->ready_probe_at < every)
        return;
    s->ready_probe_at = now;
    if (srv_fed_tx_begin(s) != KZ_OK)
        return; /* writes are refused (a disk error): the check below already says so */
    if (store_meta_set(s->store, "ready_probe_at", now) != STORE_OK) {
        KZ_WARN("ready_probe_failed", "error=\"%s\"", store_errmsg(s->store));
        s->commit_failed_at = now;
        if (store_disk_error(s->store))
            srv_writes_block(s);
    }
}

static void check(cJSON *checks, cJSON *failed, const char *name, const char *problem)
{
    cJSON *c = cJSON_AddObjectToObject(checks, name);
    cJSON_AddBoolToObject(c, "ok", problem == NULL);
    if (problem) {
        cJSON_AddStringToObject(c, "why", problem);
        cJSON_AddItemToArray(failed, cJSON_CreateString(name));
    }
}

cJSON *srv_readiness_json(struct srv *s, bool stopping, bool *ready)
{
    int64_t now = kz_now_ms();
    write_probe(s, now);
    cJSON *o = cJSON_CreateObject();
    cJSON *checks = cJSON_CreateObject(), *failed = cJSON_CreateArray();
    const char *db = NULL;
    if (srv_writes_blocked(s))
        db = "writes are refused after a disk error (retried every disk_retry_ms)";
    else if (s->commit_failed_at > s->commit_ok_at)
        db = "the last commit failed";
    check(checks, failed, "database", db);
    int64_t free_bytes = srv_disk_free_bytes(s);
    char why[160];
    const char *disk = NULL;
    if (free_bytes < 0) {
        disk = "the data directory's file system cannot be read (statvfs)";
    } else if (free_bytes < s->cfg->ready_min_free_bytes) {
        snprintf(why, sizeof why, "%lld bytes free, below ready_min_free_bytes (%lld)",
                 (long long)free_bytes, s->cfg->ready_min_free_bytes);
        disk = why;
    }
    check(checks, failed, "disk", disk);
    cJSON *d = cJSON_GetObjectItem(checks, "disk");
    cJSON_AddNumberToObject(d, "free_bytes", (double)free_bytes);
    cJSON_AddNumberToObject(d, "min_free_bytes", (double)s->cfg->ready_min_free_bytes);
    check(checks, failed, "shutdown", stopping ? "the server is shutting down" : NULL);
    *ready = cJSON_GetArraySize(failed) == 0;
    cJSON_AddBoolToObject(o, "ready", *ready);
    cJSON_AddItemToObject(o, "failed", failed);
    cJSON_AddItemToObject(o, "checks", checks);
    return o;
}
