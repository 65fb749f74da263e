/* fuzz_import.c - CSV bulk import (`user.import`, server/ops_import.c): the input is the CSV
 * file. It goes in as the admin twice, as a dry run and applied (both rolled back, see
 * fuzz_core.h), and the two must agree: a file the dry run finds no problem in is imported
 * with the same counts, and a file with problems is refused with bad_request. */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static cJSON *import(const char *b64, bool dry_run)
{
    size_t cap = strlen(b64) + 96;
    char *req = malloc(cap);
    int n =
        snprintf(req, cap, "{\"id\":1,\"op\":\"user.import\",\"dry_run\":%s,\"csv_base64\":\"%s\"}",
                 dry_run ? "true" : "false", b64);
    cJSON *r = fz_ws(FZ_ADMIN, req, (size_t)n);
    free(req);
    return r;
}

static double num(const cJSON *r, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, name);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_init();
    size_t cap = sodium_base64_ENCODED_LEN(size, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(cap);
    sodium_bin2base64(b64, cap, data, size, sodium_base64_VARIANT_ORIGINAL);
    if (!*b64) { /* an empty file: csv_base64 must not be empty */
        free(b64);
        return 0;
    }
    cJSON *dry = import(b64, true);
    cJSON *applied = import(b64, false);
    free(b64);
    char *dry_text = cJSON_PrintUnformatted(dry), *applied_text = cJSON_PrintUnformatted(applied);
    char detail[512];
    snprintf(detail, sizeof detail, "dry run: %.200s\napplied: %.200s", dry_text, applied_text);
    if (strcmp(fz_code(dry), "ok") != 0)
        fz_fail("the dry run failed", detail);
    int problems = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(dry, "problems"));
    const char *code = fz_code(applied);
    if (problems == 0) {
        if (strcmp(code, "ok") != 0)
            fz_fail("a file the dry run accepted was not imported", detail);
        if (num(dry, "added") != num(applied, "added") ||
            num(dry, "updated") != num(applied, "updated") ||
            num(dry, "unchanged") != num(applied, "unchanged"))
            fz_fail("the dry run and the import count differently", detail);
    } else if (strcmp(code, "bad_request") != 0) {
        fz_fail("a file with problems was not refused", detail);
    }
    cJSON_free(dry_text);
    cJSON_free(applied_text);
    cJSON_Delete(dry);
    cJSON_Delete(applied);
    return 0;
}
