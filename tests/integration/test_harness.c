/* test_harness.c - whatever a test starts dies with the test, however the test ends (issue 12,
 * defect 9: after a run of the test command a kizunad under valgrind was still serving an idle
 * data directory, reparented to init).
 *
 * Each `victim` test below ends badly on purpose: an assertion before its teardown, abort(), a
 * SIGKILL, Criterion's timeout, a server that never says "listening on". A `harness` test runs
 * one victim in a Criterion run of its own (this binary, --filter victim/NAME) with
 * KZ_HARNESS_VICTIM naming a directory where every process that must die writes its pid (and
 * its data directory, to be removed afterwards). All of
 * that run's processes inherit the variable, so once the run has exited, any process whose
 * environment still holds it was left behind: the test waits for there to be none, with a
 * deadline, and otherwise prints them, kills them and fails. Without the parent-death signal in
 * tests/support/harness.c every victim leaves its servers running.
 *
 * This binary is also the server that never starts: `test_harness --pretend-kizunad ...`
 * writes its pid and waits forever without printing anything; and the reader that runs until
 * it is stopped: `test_harness --pretend-reader` writes its pid, prints "ready" and waits. */
#include "harness.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define VICTIM_ENV       "KZ_HARNESS_VICTIM"
#define PRETEND          "--pretend-kizunad"
#define PRETEND_READER   "--pretend-reader"
#define RUN_DEADLINE_MS  60000 /* a victim run, from start to exit */
#define GONE_DEADLINE_MS 10000 /* its processes, from its exit to their death */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(int ms)
{
    /* Polling for processes to end: there is no descriptor to wait on. */
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static const char *self_exe(void)
{
    static char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    cr_assert_gt(n, 0);
    path[n] = '\0';
    return path;
}

/* Appends a line to the file `name` in the victim run's directory. */
static void record_line(const char *name, const char *text)
{
    const char *dir = getenv(VICTIM_ENV);
    char path[300], line[400];
    snprintf(path, sizeof path, "%s/%s", dir ? dir : ".", name);
    int fd = dir ? open(path, O_WRONLY | O_APPEND | O_CREAT, 0600) : -1;
    if (fd < 0)
        return;
    int n = snprintf(line, sizeof line, "%s\n", text);
    ssize_t w = write(fd, line, (size_t)n);
    (void)w;
    close(fd);
}

/* A process that must die with the victim (pids), and a data directory to remove (dirs). */
static void record(pid_t pid, const char *data_dir)
{
    char text[32];
    snprintf(text, sizeof text, "%d", (int)pid);
    record_line("pids", text);
    if (data_dir)
        record_line("dirs", data_dir);
}

/* A server that never says "listening on" (it records the --data it was given), or a
 * long-running reader (ready: once its pid is recorded, it says so on stdout): waits forever. */
static _Noreturn void pretend(int argc, char **argv, bool ready)
{
    const char *data = NULL;
    for (int i = 2; i + 1 < argc; i++)
        data = strcmp(argv[i], "--data") == 0 ? argv[i + 1] : data;
    record(getpid(), data);
    if (ready) {
        fputs("ready\n", stdout);
        fflush(stdout);
    }
    for (;;)
        pause();
}

/* Whether a process (not this one) has "name=value" in its environment; its command line, with
 * spaces for NULs, goes to cmdline. */
static bool carries(pid_t pid, const char *entry, char *cmdline, size_t n)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false; /* gone, or not ours */
    static char env[1 << 16];
    size_t len = fread(env, 1, sizeof env - 1, f);
    fclose(f);
    env[len] = '\0';
    bool found = false;
    for (size_t i = 0; i < len && !found; i += strlen(env + i) + 1)
        found = strcmp(env + i, entry) == 0;
    if (!found)
        return false; /* a zombie has no environment left: dead, only not yet reaped */
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    cmdline[0] = '\0';
    if ((f = fopen(path, "r"))) {
        size_t m = fread(cmdline, 1, n - 1, f);
        fclose(f);
        for (size_t i = 0; i < m; i++)
            cmdline[i] = cmdline[i] ? cmdline[i] : ' ';
        cmdline[m] = '\0';
    }
    return true;
}

/* The processes carrying entry in their environment (up to max pids), only those whose command
 * line contains word if not NULL; their count. If describe, each is printed to stderr with its
 * command line. */
static int carriers(const char *entry, const char *word, pid_t *pids, int max, bool describe)
{
    DIR *proc = opendir("/proc");
    cr_assert_not_null(proc);
    int count = 0;
    struct dirent *e;
    char cmdline[512];
    while ((e = readdir(proc))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0 || pid == getpid() ||
            !carries((pid_t)pid, entry, cmdline, sizeof cmdline) ||
            (word && !strstr(cmdline, word)))
            continue;
        if (describe)
            fprintf(stderr, "left running: pid %ld: %s\n", pid, cmdline);
        if (count < max)
            pids[count] = (pid_t)pid;
        count++;
    }
    closedir(proc);
    return count;
}

/* The argument after opt in a process's command line (false if none). */
static bool arg_of(pid_t pid, const char *opt, char *out, size_t n)
{
    char path[64], args[4096];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    FILE *f = fopen(path, "r");
    size_t len = f ? fread(args, 1, sizeof args - 1, f) : 0;
    if (f)
        fclose(f);
    args[len] = '\0';
    for (size_t i = 0; i < len; i += strlen(args + i) + 1) {
        if (strcmp(args + i, opt) == 0 && i + strlen(opt) + 1 < len) {
            snprintf(out, n, "%s", args + i + strlen(opt) + 1);
            return true;
        }
    }
    return false;
}

/* Waits, with a deadline, until no process carries entry; otherwise prints and kills them and
 * fails the test. */
static void assert_all_gone(const char *entry, const char *what)
{
    pid_t pids[64];
    long long deadline = now_ms() + GONE_DEADLINE_MS;
    int n;
    while ((n = carriers(entry, NULL, pids, 64, false)) > 0 && now_ms() < deadline)
        pause_ms(20);
    if (n == 0)
        return;
    carriers(entry, NULL, pids, 64, true);
    for (int i = 0; i < n && i < 64; i++)
        kill(pids[i], SIGKILL); /* this test leaves nothing behind either */
    cr_assert_fail("%d process(es) outlived %s by %d ms (listed above)", n, what, GONE_DEADLINE_MS);
}

/* Runs victim/NAME in a Criterion run of its own, expects it to fail, and then every process
 * it started to be gone; `expected` is how many it records (proof that it got as far as
 * starting them). */
static void run_victim(const char *name, int expected)
{
    char dir[] = "/tmp/kizuna-harness-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char pidfile[64], dirfile[64], log[64], entry[128], filter[64];
    snprintf(pidfile, sizeof pidfile, "%s/pids", dir);
    snprintf(dirfile, sizeof dirfile, "%s/dirs", dir);
    snprintf(log, sizeof log, "%s/run.log", dir);
    snprintf(entry, sizeof entry, VICTIM_ENV "=%s", dir);
    snprintf(filter, sizeof filter, "--filter=victim/%s", name);
    const char *exe = self_exe();
    pid_t parent = getpid();
    pid_t run = fork();
    cr_assert_geq(run, 0);
    if (run == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(127);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        putenv(entry);
        unsetenv("BXFI_MAP"); /* Criterion's worker marker: the run is a runner of its own */
        execl(exe, exe, filter, "--jobs=1", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    long long deadline = now_ms() + RUN_DEADLINE_MS;
    pid_t r;
    while ((r = waitpid(run, &status, WNOHANG)) == 0 && now_ms() < deadline)
        pause_ms(20);
    if (r != run) {
        kill(run, SIGKILL);
        waitpid(run, &status, 0);
    }
    char cmd[700];
    snprintf(cmd, sizeof cmd, "cat '%s' >&2", log);
    if (r != run || !WIFEXITED(status) || WEXITSTATUS(status) == 0) {
        int rc = system(cmd);
        (void)rc;
        cr_assert_fail("victim/%s: the run should fail by itself within %d ms (status %d)", name,
                       RUN_DEADLINE_MS, status);
    }
    /* How many processes it started. */
    int recorded = 0;
    FILE *f = fopen(pidfile, "r");
    for (int pid; f && fscanf(f, "%d", &pid) == 1;)
        recorded++;
    if (f)
        fclose(f);
    if (recorded != expected) {
        int rc = system(cmd);
        (void)rc;
    }
    char what[64];
    snprintf(what, sizeof what, "victim/%s", name);
    assert_all_gone(entry, what);
    cr_assert_eq(recorded, expected, "victim/%s started %d of its %d processes (log above)", name,
                 recorded, expected);
    /* The victims' data directories (and kzd's config files beside them), then the run's. */
    char data[300];
    f = fopen(dirfile, "r");
    while (f && fscanf(f, "%299s", data) == 1) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s.json'", data, data);
        int rc = system(cmd);
        (void)rc;
    }
    if (f)
        fclose(f);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    int rc = system(cmd);
    (void)rc;
}

/* ---- the victims: skipped unless run by run_victim ---- */

static void victim_only(void)
{
    if (!getenv(VICTIM_ENV))
        cr_skip_test("run by the harness tests, each in a run of its own");
    /* Criterion's mark of its worker processes: this binary started again as a pretend server
     * must not take itself for one. */
    unsetenv("BXFI_MAP");
}

/* A real kizunad, recorded. The struct is never torn down: that is the point. */
static void start_server(struct kzd *d)
{
    kzd_setup(d);
    record(d->pid, d->dir);
}

/* A long-running child that is not a server, like `kizuna tail`: it records itself. */
static void start_reader(void)
{
    const char *argv[] = {self_exe(), PRETEND_READER, NULL};
    int fd;
    cr_assert_gt(spawn_reader(argv, NULL, &fd), 0);
    char buf[64];
    size_t len = 0;
    cr_assert(read_until(fd, buf, sizeof buf, &len, "ready", 10000), "the reader started");
}

TestSuite(victim, .init = victim_only);

Test(victim, assertion)
{
    struct kzd d;
    start_server(&d);
    start_reader();
    cr_assert_fail("a failed assertion: the test ends before its teardown");
}

Test(victim, abort)
{
    struct kzd d;
    start_server(&d);
    abort();
}

Test(victim, sigkill)
{
    struct kzd d;
    start_server(&d);
    raise(SIGKILL);
}

/* Criterion kills the worker when the timeout passes, here while it waits in run_capture for a
 * child that never ends. The timeout leaves room for kzd_setup under ASan on a busy machine. */
Test(victim, timeout, .timeout = 10)
{
    struct kzd d;
    start_server(&d);
    const char *argv[] = {self_exe(), PRETEND, NULL};
    char out[64];
    run_capture(argv, NULL, NULL, out, sizeof out);
}

/* A server that never prints its "listening on" line (a valgrind slower than the deadline). */
Test(victim, no_start)
{
    char wrapper[4200];
    snprintf(wrapper, sizeof wrapper, "%s %s", self_exe(), PRETEND);
    setenv("KIZUNA_TEST_WRAPPER", wrapper, 1);
    setenv("KIZUNA_TEST_START_MS", "3000", 1);
    struct kzd d;
    kzd_setup(&d);
}

/* ---- the tests ---- */

Test(harness, a_failed_assertion_takes_the_server_and_a_reader_with_it)
{
    run_victim("assertion", 2);
}

Test(harness, abort_takes_the_server_with_it)
{
    run_victim("abort", 1);
}

Test(harness, sigkill_takes_the_server_with_it)
{
    run_victim("sigkill", 1);
}

Test(harness, a_timeout_takes_the_server_and_a_running_command_with_it)
{
    run_victim("timeout", 2);
}

Test(harness, a_server_that_never_starts_is_not_left_behind)
{
    run_victim("no_start", 1);
}

/* kzbench (tests/bench/smoke.sh) starts its own kizunad: killed with SIGKILL in the middle of a
 * scenario, it must not leave it behind. */
Test(harness, kzbench_takes_its_server_with_it)
{
    char entry[96];
    snprintf(entry, sizeof entry, VICTIM_ENV "=kzbench-%d-%lld", (int)getpid(), now_ms());
    pid_t parent = getpid();
    pid_t bench = fork();
    cr_assert_geq(bench, 0);
    if (bench == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(127);
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        putenv(entry);
        execl(KZBENCH_PATH, KZBENCH_PATH, "--kizunad", KIZUNAD_PATH, "--scenario", "rooms",
              "--rooms", "2", "--per-room", "2", "--rate", "5", "--duration", "60", (char *)NULL);
        _exit(127);
    }
    /* Its server is up once a `kizunad serve` carries the variable. */
    pid_t pids[8];
    long long deadline = now_ms() + RUN_DEADLINE_MS;
    bool server = false;
    while (!(server = carriers(entry, " serve ", pids, 8, false) > 0) && now_ms() < deadline &&
           waitpid(bench, NULL, WNOHANG) == 0)
        pause_ms(20);
    char data[300] = "";
    if (server)
        arg_of(pids[0], "--data", data, sizeof data); /* kzbench's directory + "/data" */
    kill(bench, SIGKILL);
    waitpid(bench, NULL, 0);
    cr_assert(server, "kzbench started no server within %d ms", RUN_DEADLINE_MS);
    assert_all_gone(entry, "kzbench");
    char *slash = strrchr(data, '/');
    if (slash && strncmp(data, "/tmp/kzbench-", 13) == 0) {
        *slash = '\0';
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", data);
        int rc = system(cmd);
        (void)rc;
    }
}

int main(int argc, char *argv[])
{
    if (argc >= 2 && strcmp(argv[1], PRETEND) == 0)
        pretend(argc, argv, false);
    if (argc >= 2 && strcmp(argv[1], PRETEND_READER) == 0)
        pretend(argc, argv, true);
    struct criterion_test_set *tests = criterion_initialize();
    int result = 0;
    if (criterion_handle_args(argc, argv, true))
        result = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    return result;
}
