/* test_kzclient.c - the protocol client (clients/cli/kzclient.c) on its own, against the real
 * kizunad: a wait ends at its deadline when nothing arrives.
 *
 * This binary is linked with -Wl,--wrap=lws_service: every lws_service() first sleeps 0-2 ms,
 * as a process preempted under load does between wait_for's clock check and lws's own timer
 * check. What CI's load did now and then (a `kizuna tail` that never printed its 既読 line) then
 * happens within a few waits: the code before the fix hung within 50 waits of 20 ms. */
#include <criterion/criterion.h>
#include <libwebsockets.h>
#include <stdlib.h>
#include <time.h>

#include "harness.h"
#include "kzclient.h"

int __real_lws_service(struct lws_context *ctx, int timeout_ms);
int __wrap_lws_service(struct lws_context *ctx, int timeout_ms);

int __wrap_lws_service(struct lws_context *ctx, int timeout_ms)
{
    struct timespec pause = {0, (long)(rand() % 2000) * 1000L};
    nanosleep(&pause, NULL);
    return __real_lws_service(ctx, timeout_ms);
}

static struct kzd d;

static void setup(void)
{
    kzd_setup(&d);
}

static void teardown(void)
{
    kzd_teardown(&d);
}

TestSuite(kzclient, .init = setup, .fini = teardown, .timeout = 60);

/* Logged in, so the server's login timeout does not close it, and never subscribed: nothing
 * is ever pushed, and only the client's own timer can end each wait. */
Test(kzclient, a_wait_on_an_idle_connection_ends_at_its_deadline)
{
    char err[256];
    struct kzc *c = kzc_connect(d.url, 10000, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "login", "admin");
    cJSON_AddStringToObject(args, "password", TEST_ADMIN_PASSWORD);
    cJSON *reply = kzc_call(c, "login", args, 10000);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(reply, "ok")), "%s", kzc_error(c));
    cJSON_Delete(reply);
    srand(20261129);
    long long worst = 0;
    for (int i = 0; i < 200; i++) {
        long long t0 = mono_ms();
        cJSON *ev = kzc_next_event(c, 20);
        long long took = mono_ms() - t0;
        cr_assert_null(ev, "nothing is pushed to a connection that did not sync");
        cr_assert_geq(took, 19, "wait %d of 20 ms ended early, after %lld ms", i, took);
        cr_assert_lt(took, 2000, "wait %d of 20 ms took %lld ms", i, took);
        if (took > worst)
            worst = took;
    }
    cr_log_info("200 waits of 20 ms, the longest %lld ms", worst);
    kzc_close(c);
}
