/* harness.c - see harness.h. */
#include "harness.h"
#include "event_format.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_DEADLINE_MS 20000
#define IO_DEADLINE_MS    10000

/* Called first in every child the harness forks, before exec: the child gets SIGKILL when the
 * thread that forked it ends, however it ends (an assertion, a crash, abort(), Criterion's
 * timeout, a SIGKILL from ctest). Without it a test that failed before its teardown left its
 * kizunad or `kizuna tail` running forever, reparented to init (issue 12, defect 9). The
 * setting survives exec of a non-setuid program, and valgrind runs the program in the same
 * process, so it reaches a kizunad under KIZUNA_TEST_WRAPPER as well. SIGKILL, not SIGTERM: a
 * server that is stuck (issue 12, defect 1) ignores SIGTERM. If the parent already died between
 * fork and prctl, nothing would ever send the signal: the child leaves at once. */
static void die_with_parent(pid_t parent)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(127);
}

/* The death signal follows the thread that forked, not the process: a child started from a
 * thread that returns before the test ends would be killed with that thread. Only the test's
 * own thread starts long-running children (run_capture waits for its child, so any thread may
 * call it). */
static void assert_test_thread(const char *what)
{
    cr_assert_eq(gettid(), getpid(), "%s must be called on the test's own thread", what);
}

long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for fd to become readable before the deadline. */
static bool wait_readable(int fd, long long deadline)
{
    for (;;) {
        long long left = deadline - mono_ms();
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return true;
        if (n < 0 && errno != EINTR)
            return false;
    }
}

static int wait_exit(pid_t pid, int timeout_ms)
{
    long long deadline = mono_ms() + timeout_ms;
    int status;
    while (mono_ms() < deadline) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL); /* reaping a child: there is no fd to poll */
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

int run_capture(const char *const argv[], const char *const env[], const char *stdin_text,
                char *out, size_t outlen)
{
    int in[2], o[2];
    if (pipe(in) || pipe(o))
        return -1;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        die_with_parent(parent);
        dup2(in[0], 0);
        dup2(o[1], 1);
        close(in[1]);
        close(o[0]);
        for (int i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(o[1]);
    if (stdin_text) {
        ssize_t w = write(in[1], stdin_text, strlen(stdin_text));
        (void)w;
    }
    close(in[1]);
    size_t len = 0;
    long long deadline = mono_ms() + 60000;
    while (wait_readable(o[0], deadline)) {
        char buf[4096];
        ssize_t n = read(o[0], buf, sizeof buf);
        if (n <= 0)
            break;
        size_t take = (size_t)n < outlen - 1 - len ? (size_t)n : outlen - 1 - len;
        memcpy(out + len, buf, take);
        len += take;
    }
    out[len] = '\0';
    close(o[0]);
    return wait_exit(pid, 60000);
}

void kzd_start(struct kzd *d)
{
    assert_test_thread("kzd_start");
    int o[2];
    cr_assert_eq(pipe(o), 0);
    char errlog[300];
    snprintf(errlog, sizeof errlog, "%s/stderr.log", d->dir);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        die_with_parent(parent);
        int fd = open(errlog, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(o[1], 1);
        dup2(fd, 2);
        close(o[0]);
        /* KIZUNA_TEST_FSIZE limits the size of every file the server writes (a disk that
         * fills up); the test raises it again with prlimit. */
        const char *fsize = getenv("KIZUNA_TEST_FSIZE");
        if (fsize && *fsize) {
            struct rlimit rl = {.rlim_cur = (rlim_t)strtoull(fsize, NULL, 10),
                                .rlim_max = RLIM_INFINITY};
            setrlimit(RLIMIT_FSIZE, &rl);
        }
        /* KIZUNA_TEST_WRAPPER runs the server under a tool, e.g. valgrind. */
        const char *argv[32];
        int n = 0;
        char wrapper[512] = "";
        const char *w = getenv("KIZUNA_TEST_WRAPPER");
        if (w && *w) {
            snprintf(wrapper, sizeof wrapper, "%s", w);
            for (char *tok = strtok(wrapper, " "); tok && n < 20; tok = strtok(NULL, " "))
                argv[n++] = tok;
        }
        /* A restart keeps the port, so clients that reconnect by themselves find it again. */
        char listen[32];
        snprintf(listen, sizeof listen, "127.0.0.1:%d", d->port);
        const char *rest[] = {KIZUNAD_PATH, "serve",    "--data", d->dir, "--config",
                              d->config,    "--listen", listen,   NULL};
        for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++)
            argv[n++] = rest[i];
        char fed[64];
        if (d->fed_port) {
            snprintf(fed, sizeof fed, "federation_listen=127.0.0.1:%d", d->fed_port);
            argv[n - 1] = "--set";
            argv[n++] = fed;
            argv[n++] = NULL;
        }
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(o[1]);
    d->pid = pid;
    /* Wait for the line, never a fixed sleep. KIZUNA_TEST_START_MS overrides the deadline (a
     * slow wrapper; test_harness's server that never starts). */
    const char *start_ms = getenv("KIZUNA_TEST_START_MS");
    char *end = NULL;
    long ms = start_ms ? strtol(start_ms, &end, 10) : 0;
    long long deadline =
        mono_ms() + (end && !*end && ms > 0 && ms <= 600000 ? ms : START_DEADLINE_MS);
    char out[512], *line = out;
    size_t len = 0;
    out[0] = '\0';
    /* "federating on" (with federation_listen) comes first, then "listening on". */
    while (len < sizeof out - 1 && !strstr(out, "listening on") && wait_readable(o[0], deadline)) {
        ssize_t n = read(o[0], out + len, sizeof out - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        out[len] = '\0';
    }
    while (len < sizeof out - 1 && strstr(out, "listening on") &&
           !strchr(strstr(out, "listening on"), '\n') && wait_readable(o[0], deadline)) {
        ssize_t n = read(o[0], out + len, sizeof out - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        out[len] = '\0';
    }
    close(o[0]);
    int port = 0, fed_port = 0;
    /* HOST:PORT, HOST perhaps 0.0.0.0 or [::]: the port is after the line's last ':'. */
    const char *fed = strstr(out, "federating on ");
    if (fed) {
        const char *nl = strchr(fed, '\n'), *colon = NULL;
        for (const char *c = fed; nl && c < nl; c++)
            if (*c == ':')
                colon = c;
        if (colon && sscanf(colon + 1, "%d", &fed_port) == 1)
            d->fed_port = fed_port;
    }
    if (strstr(out, "listening on"))
        line = strstr(out, "listening on");
    if (sscanf(line, "listening on 127.0.0.1:%d", &port) != 1) {
        kzd_kill(d); /* not left starting (or stuck) behind the failed assertion */
        cr_assert_fail("kizunad did not start (stdout: '%s', see %s)", line, errlog);
    }
    d->port = port;
    snprintf(d->url, sizeof d->url, "http://127.0.0.1:%d", port);
}

void kzd_setup(struct kzd *d)
{
    kzd_setup_with(d, NULL);
}

void kzd_setup_with(struct kzd *d, const char *extra_config)
{
    memset(d, 0, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "/tmp/kizuna-test-XXXXXX");
    cr_assert_not_null(mkdtemp(d->dir));
    snprintf(d->config, sizeof d->config, "%s.json", d->dir);
    FILE *f = fopen(d->config, "w");
    cr_assert_not_null(f);
    /* The cheapest argon2id libsodium allows: the tests exercise the path, not the cost. */
    fputs("{\"argon2_opslimit\":1,\"argon2_memlimit_kib\":8,\"log_level\":\"debug\","
          "\"max_frame_bytes\":65536,\"shutdown_grace_ms\":2000,"
          "\"max_queue_bytes\":65536,\"socket_sndbuf_bytes\":16384,"
          "\"read_push_interval_ms\":50,\"login_lockout_s\":1,"
          "\"housekeeping_interval_s\":1,\"session_touch_interval_s\":1,"
          "\"shared_session_idle_s\":2,"
          /* Tests make requests at machine speed; test_hostile lowers these again. */
          "\"requests_per_second\":100000,\"request_burst\":100000",
          f);
    /* Later members override earlier ones: settings are applied in order. */
    fprintf(f, "%s%s}\n", extra_config && *extra_config ? "," : "",
            extra_config ? extra_config : "");
    fclose(f);
    const char *argv[] = {KIZUNAD_PATH, "init", "--data", d->dir, "--config", d->config, NULL};
    const char *env[] = {"KIZUNA_ADMIN_PASSWORD=" TEST_ADMIN_PASSWORD, NULL};
    char out[1024];
    int rc = run_capture(argv, env, NULL, out, sizeof out);
    cr_assert_eq(rc, 0, "kizunad init failed: %s", out);
    kzd_start(d);
}

int kzd_stop(struct kzd *d)
{
    if (d->pid <= 0)
        return 0;
    kill(d->pid, SIGTERM);
    int rc = wait_exit(d->pid, 20000);
    d->pid = 0;
    return rc;
}

int kzd_wait_exit(struct kzd *d, int timeout_ms)
{
    if (d->pid <= 0)
        return 0;
    int rc = wait_exit(d->pid, timeout_ms);
    d->pid = 0;
    return rc;
}

void kzd_kill(struct kzd *d)
{
    if (d->pid <= 0)
        return;
    kill(d->pid, SIGKILL);
    wait_exit(d->pid, 20000);
    d->pid = 0;
}

/* The first line of d's log that holds a password every test run uses (the admin's, and the
 * LOGIN TEST_PW_SUFFIX of other test users), into line; false if none does. Every test's
 * teardown looks, so the whole suite checks that no password reaches a log (issue 23). */
static bool log_secret_line(const struct kzd *d, char *line, size_t n)
{
    char path[400];
    snprintf(path, sizeof path, "%s/stderr.log", d->dir);
    FILE *f = fopen(path, "r");
    bool found = false;
    while (f && !found && fgets(line, (int)n, f))
        found = strstr(line, TEST_ADMIN_PASSWORD) || strstr(line, TEST_PW_SUFFIX);
    if (f)
        fclose(f);
    return found;
}

void kzd_teardown(struct kzd *d)
{
    /* Every test ends with a clean stop, so every test is also a check that kizunad shuts down
     * cleanly and (under ASan or valgrind) leaks nothing. */
    int rc = kzd_stop(d);
    char cmd[700], secret_line[1024];
    bool leaked = d->dir[0] && log_secret_line(d, secret_line, sizeof secret_line);
    if (rc != 0) {
        snprintf(cmd, sizeof cmd, "tail -n 60 '%s/stderr.log' >&2", d->dir);
        rc = system(cmd) == 0 ? rc : rc;
    }
    /* KIZUNA_TEST_KEEP=1 keeps the data directory and the server's log for a post-mortem. */
    if (!getenv("KIZUNA_TEST_KEEP")) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", d->dir, d->config);
        int rm = system(cmd);
        (void)rm;
    } else {
        fprintf(stderr, "kept %s\n", d->dir);
    }
    if (rc != 0) {
        /* Criterion ignores assertions in .fini, but not a crashed test. */
        fprintf(stderr,
                "kizunad did not exit cleanly (status %d): a crash, a sanitizer report or "
                "a leak; its log is above\n",
                rc);
        abort();
    }
    if (leaked) {
        fprintf(stderr, "a test password reached kizunad's log:\n%s", secret_line);
        abort();
    }
}

bool kzd_check_event_logs(const struct kzd *d, struct kzd_log_check *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    snprintf(err, errlen, "ok");
    char path[400], line[128] = "";
    snprintf(path, sizeof path, "%s/server.key", d->dir);
    FILE *f = fopen(path, "r");
    bool got_line = f && fgets(line, sizeof line, f);
    if (f)
        fclose(f);
    /* "ed25519-seed " then the base64 seed */
    unsigned char seed[32], pk[32], sk[64];
    size_t n;
    if (!got_line || strlen(line) < 13 ||
        sodium_base642bin(seed, sizeof seed, line + 13, strcspn(line + 13, "\n"), NULL, &n, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        n != sizeof seed) {
        snprintf(err, errlen, "cannot read the key in %s", path);
        return false;
    }
    crypto_sign_seed_keypair(pk, sk, seed);
    sodium_memzero(sk, sizeof sk);

    snprintf(path, sizeof path, "%s/kizuna.db", d->dir);
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT e.room, r.room_id, e.origin, e.inc, e.seq, e.event_id,"
                           " e.payload, e.sig FROM events e LEFT JOIN rooms r ON r.id = e.room"
                           " ORDER BY e.room, e.origin, e.inc, e.seq",
                           -1, &s, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot read %s: %s", path, db ? sqlite3_errmsg(db) : "no memory");
        sqlite3_close(db);
        return false;
    }
    /* The checks are the event format's own (server/event_format.c), as a peer's would be. */
    struct kz_event_log log = {0};
    long long last_room = -1;
    bool ok = true;
    int rc = SQLITE_DONE;
    while (ok && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        long long room = sqlite3_column_int64(s, 0), inc = sqlite3_column_int64(s, 3),
                  seq = sqlite3_column_int64(s, 4);
        const char *room_id = (const char *)sqlite3_column_text(s, 1);
        const char *origin = (const char *)sqlite3_column_text(s, 2);
        const char *id = (const char *)sqlite3_column_text(s, 5);
        const void *payload = sqlite3_column_blob(s, 6);
        size_t plen = (size_t)sqlite3_column_bytes(s, 6);
        const unsigned char *sig = sqlite3_column_blob(s, 7);
        size_t siglen = (size_t)sqlite3_column_bytes(s, 7);
        origin = origin ? origin : "";
        if (!room_id) {
            snprintf(err, errlen, "room %lld seq %lld: the event's room does not exist", room, seq);
            ok = false;
            break;
        }
        if (room != last_room || inc != log.inc || strcmp(origin, log.origin) != 0) {
            if (log.seq && log.signed_seq != log.seq) {
                snprintf(err, errlen, "the log of room %lld does not end in a signed checkpoint",
                         last_room);
                ok = false;
                break;
            }
            last_room = room;
            kz_event_log_start(&log, room_id, origin, inc, 0, NULL);
            out->logs++;
        }
        enum kz_event_verdict v = kz_event_log_check(&log, payload ? payload : "", plen, sig,
                                                     siglen, pk, id ? id : "", NULL);
        if (v != KZ_EVENT_OK) {
            const char *why = NULL;
            struct kz_event_head h;
            if (v == KZ_EVENT_MALFORMED)
                why = kz_event_parse(payload ? payload : "", plen, &h, NULL);
            snprintf(err, errlen, "room %lld seq %lld: %s%s%s", room, seq, kz_event_verdict_name(v),
                     why ? ": " : "", why ? why : "");
            ok = false;
            break;
        }
        if (log.seq != seq) {
            snprintf(err, errlen, "room %lld seq %lld: the payload says seq %lld", room, seq,
                     (long long)log.seq);
            ok = false;
            break;
        }
        if (siglen)
            out->signatures++;
        out->events++;
    }
    if (ok && rc != SQLITE_DONE) {
        snprintf(err, errlen, "reading events: %s", sqlite3_errmsg(db));
        ok = false;
    }
    if (ok && log.seq && log.signed_seq != log.seq) {
        snprintf(err, errlen, "the log of room %lld does not end in a signed checkpoint",
                 last_room);
        ok = false;
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return ok;
}

int kz_device_run(const struct kz_device *dev, const char *in, char *out, size_t outlen, va_list ap)
{
    bool admin = strcmp(dev->user, "admin") == 0;
    char env_dir[400], env_srv[200], env_pw[200], env_retry[64];
    snprintf(env_dir, sizeof env_dir, "KIZUNA_CONFIG_DIR=%s", dev->config_dir);
    snprintf(env_srv, sizeof env_srv, "KIZUNA_SERVER=%s", dev->server_url);
    snprintf(env_pw, sizeof env_pw, "KIZUNA_PASSWORD=%s%s", admin ? TEST_ADMIN_PASSWORD : dev->user,
             admin ? "" : TEST_PW_SUFFIX);
    snprintf(env_retry, sizeof env_retry, "KIZUNA_RETRY_MAX_S=%d", dev->retry_max_s);
    const char *env[] = {env_dir, env_srv, env_pw, env_retry, dev->extra_env, NULL};
    const char *argv[24];
    int n = 0;
    if (dev->merge_stderr) { /* what the user sees, warnings included */
        argv[n++] = "/bin/sh";
        argv[n++] = "-c";
        argv[n++] = "exec \"$0\" \"$@\" 2>&1";
    }
    argv[n++] = KIZUNA_PATH;
    while (n < 23 && (argv[n] = va_arg(ap, const char *)))
        n++;
    argv[23] = NULL;
    return run_capture(argv, env, in, out, outlen);
}

pid_t spawn_reader(const char *const argv[], const char *const env[], int *out_fd)
{
    assert_test_thread("spawn_reader");
    int o[2];
    if (pipe(o))
        return -1;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        die_with_parent(parent);
        dup2(o[1], 1);
        close(o[0]);
        for (int i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(o[1]);
    *out_fd = o[0];
    return pid;
}

bool read_until(int fd, char *buf, size_t cap, size_t *len, const char *needle, int timeout_ms)
{
    long long deadline = mono_ms() + timeout_ms;
    for (;;) {
        buf[*len] = '\0';
        if (strstr(buf, needle))
            return true;
        if (*len + 1 >= cap || !wait_readable(fd, deadline))
            return false;
        ssize_t n = read(fd, buf + *len, cap - 1 - *len);
        if (n <= 0)
            return false;
        *len += (size_t)n;
    }
}

/* ---- sockets ---- */

static int tcp_connect(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* Before connect, so the advertised window stays small too. */
    if (fd >= 0 && rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static bool write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static bool read_exact(int fd, void *buf, size_t len, long long deadline)
{
    char *p = buf;
    while (len) {
        if (!wait_readable(fd, deadline))
            return false;
        ssize_t n = read(fd, p, len);
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

int http_request(int port, const char *method, const char *path, const char *headers,
                 const char *reqbody, char *body, size_t bodylen)
{
    char resp[65536];
    size_t len = reqbody ? strlen(reqbody) : 0, resp_len;
    int status =
        http_raw(port, method, path, headers, reqbody, len, len, resp, sizeof resp, &resp_len);
    char *b = strstr(resp, "\r\n\r\n");
    snprintf(body, bodylen, "%s", status > 0 && b ? b + 4 : "");
    return status;
}

void reply_room(const cJSON *r, char *out, size_t n)
{
    const char *id =
        cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "room"), "room"));
    cr_assert_not_null(id, "the reply names no room");
    snprintf(out, n, "%s", id);
}

double metric_value(const char *text, const char *sample)
{
    size_t n = strlen(sample);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, sample, n) && l[n] == ' ')
            return strtod(l + n + 1, NULL);
    return -1;
}

int tcp_open(int port)
{
    return tcp_connect(port, 0);
}

bool tcp_wait_closed(int fd, int timeout_ms)
{
    long long deadline = mono_ms() + timeout_ms;
    char buf[4096];
    while (wait_readable(fd, deadline)) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0)
            return true;
    }
    return false;
}

int http_raw(int port, const char *method, const char *path, const char *headers, const void *body,
             size_t body_len, size_t send_len, char *resp, size_t resp_cap, size_t *resp_len)
{
    int fd = tcp_connect(port, 0);
    *resp_len = 0;
    if (fd < 0)
        return -1;
    char req[8192];
    int n =
        snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s",
                 method, path, headers ? headers : "");
    /* No body at all: no Content-Length either (the server must cope with that too). */
    if (body)
        n += snprintf(req + n, sizeof req - (size_t)n, "Content-Length: %zu\r\n", body_len);
    n += snprintf(req + n, sizeof req - (size_t)n, "\r\n");
    bool ok = write_all(fd, req, (size_t)n) &&
              (!send_len || write_all(fd, body, send_len < body_len ? send_len : body_len));
    if (ok && send_len < body_len) {
        close(fd); /* a connection cut in the middle of the body */
        return 0;
    }
    size_t len = 0;
    long long deadline = mono_ms() + IO_DEADLINE_MS;
    while (len < resp_cap - 1 && wait_readable(fd, deadline)) {
        ssize_t r = read(fd, resp + len, resp_cap - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        char *hdr_end = memmem(resp, len, "\r\n\r\n", 4);
        resp[len] = '\0';
        char *cl = strcasestr(resp, "content-length:");
        if (hdr_end && cl && cl < hdr_end &&
            len >= (size_t)(hdr_end + 4 - resp) + strtoul(cl + 15, NULL, 10))
            break;
    }
    close(fd);
    resp[len] = '\0';
    *resp_len = len;
    int status = -1;
    if (sscanf(resp, "HTTP/1.1 %d", &status) != 1)
        return -1;
    return status;
}

bool http_header(const char *resp, const char *name, char *out, size_t n)
{
    const char *end = strstr(resp, "\r\n\r\n");
    size_t nl = strlen(name);
    for (const char *p = strstr(resp, "\r\n"); p && (!end || p < end); p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
            const char *v = p + 3 + nl;
            while (*v == ' ')
                v++;
            snprintf(out, n, "%.*s", (int)strcspn(v, "\r\n"), v);
            return true;
        }
    }
    return false;
}

bool ws_open(struct ws *w, int port)
{
    return ws_open_rcvbuf(w, port, 0);
}

bool ws_open_rcvbuf(struct ws *w, int port, int rcvbuf)
{
    memset(w, 0, sizeof *w);
    w->fd = tcp_connect(port, rcvbuf);
    if (w->fd < 0)
        return false;
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n");
    if (!write_all(w->fd, req, (size_t)n))
        return false;
    /* Read the response headers byte by byte so no frame data is swallowed. */
    char resp[2048];
    size_t len = 0;
    long long deadline = mono_ms() + IO_DEADLINE_MS;
    while (len < sizeof resp - 1) {
        if (!read_exact(w->fd, resp + len, 1, deadline))
            return false;
        len++;
        resp[len] = '\0';
        if (len >= 4 && memcmp(resp + len - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    return strncmp(resp, "HTTP/1.1 101", 12) == 0;
}

void ws_close_fd(struct ws *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    while (w->stash_len) {
        free(w->stash[w->stash_head]);
        w->stash_head = (w->stash_head + 1) % WS_STASH;
        w->stash_len--;
    }
}

bool ws_send_frame(struct ws *w, int opcode, const void *data, size_t len)
{
    unsigned char hdr[14];
    size_t h = 0;
    hdr[h++] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        hdr[h++] = (unsigned char)(0x80 | len);
    } else if (len < 65536) {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (unsigned char)(len >> 8);
        hdr[h++] = (unsigned char)len;
    } else {
        hdr[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
    memcpy(hdr + h, mask, 4);
    h += 4;
    unsigned char *buf = malloc(h + len);
    if (!buf)
        return false;
    memcpy(buf, hdr, h);
    for (size_t i = 0; i < len; i++)
        buf[h + i] = ((const unsigned char *)data)[i] ^ mask[i & 3];
    bool ok = write_all(w->fd, buf, h + len);
    free(buf);
    return ok;
}

bool ws_send_text(struct ws *w, const char *text)
{
    return ws_send_frame(w, 0x1, text, strlen(text));
}

char *ws_recv_text(struct ws *w, int timeout_ms)
{
    long long deadline = mono_ms() + timeout_ms;
    for (;;) {
        unsigned char h[2];
        if (!read_exact(w->fd, h, 2, deadline))
            return NULL;
        int opcode = h[0] & 0x0f;
        uint64_t len = h[1] & 0x7f;
        if (len == 126) {
            unsigned char e[2];
            if (!read_exact(w->fd, e, 2, deadline))
                return NULL;
            len = ((uint64_t)e[0] << 8) | e[1];
        } else if (len == 127) {
            unsigned char e[8];
            if (!read_exact(w->fd, e, 8, deadline))
                return NULL;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | e[i];
        }
        if (len > (64u << 20))
            return NULL;
        char *payload = malloc(len + 1);
        if (!payload || !read_exact(w->fd, payload, len, deadline)) {
            free(payload);
            return NULL;
        }
        payload[len] = '\0';
        if (opcode == 0x8) {
            w->close_code =
                len >= 2 ? ((unsigned char)payload[0] << 8) | (unsigned char)payload[1] : 1005;
            snprintf(w->close_reason, sizeof w->close_reason, "%s", len > 2 ? payload + 2 : "");
            free(payload);
            return NULL;
        }
        if (opcode == 0x1)
            return payload;
        free(payload); /* pings and others: not expected, skip */
    }
}

static void stash_push(struct ws *w, char *text)
{
    if (w->stash_len == WS_STASH) {
        free(text); /* a test that lets 4096 events pile up has a bug of its own */
        return;
    }
    w->stash[(w->stash_head + w->stash_len++) % WS_STASH] = text;
}

cJSON *ws_next_event(struct ws *w, int timeout_ms)
{
    char *text;
    if (w->stash_len) {
        text = w->stash[w->stash_head];
        w->stash_head = (w->stash_head + 1) % WS_STASH;
        w->stash_len--;
    } else {
        text = ws_recv_text(w, timeout_ms);
    }
    if (!text)
        return NULL;
    cJSON *e = cJSON_Parse(text);
    free(text);
    return e;
}

cJSON *ws_callf(struct ws *w, const char *fmt, ...)
{
    static long long next_id = 1000; /* atomic: tests call this from several threads */
    char body[65536], req[65600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    /* fmt is the request without braces' id: "\"op\":\"x\",..." */
    snprintf(req, sizeof req, "{\"id\":%lld,%s}", __atomic_fetch_add(&next_id, 1, __ATOMIC_RELAXED),
             body);
    return ws_call(w, req);
}

long long ws_live(struct ws *w, int port, const char *login, const char *password, long long since,
                  cJSON *events)
{
    return ws_live_rcvbuf(w, port, 0, login, password, since, events);
}

long long ws_live_rcvbuf(struct ws *w, int port, int rcvbuf, const char *login,
                         const char *password, long long since, cJSON *events)
{
    cr_assert(ws_open_rcvbuf(w, port, rcvbuf));
    cr_assert(ws_login(w, login, password, NULL), "login %s", login);
    for (;;) {
        cJSON *r = since < 0 ? ws_callf(w, "\"op\":\"sync\"")
                             : ws_callf(w, "\"op\":\"sync\",\"since\":%lld,\"limit\":7", since);
        cr_assert_str_eq(reply_code(r), "ok");
        cJSON *ev;
        cJSON *arr = cJSON_GetObjectItem(r, "events");
        while (events && (ev = cJSON_DetachItemFromArray(arr, 0)))
            cJSON_AddItemToArray(events, ev);
        since = (long long)cJSON_GetObjectItem(r, "next")->valuedouble;
        bool live = cJSON_IsTrue(cJSON_GetObjectItem(r, "live"));
        cJSON_Delete(r);
        if (live)
            return since;
    }
}

cJSON *ws_call(struct ws *w, const char *json_request)
{
    cJSON *req = cJSON_Parse(json_request);
    cr_assert_not_null(req, "bad test request: %s", json_request);
    cJSON_Delete(req);
    return ws_try_call(w, json_request);
}

cJSON *ws_try_call(struct ws *w, const char *json_request)
{
    cJSON *req = cJSON_Parse(json_request);
    const cJSON *req_id = cJSON_GetObjectItem(req, "id");
    if (!cJSON_IsNumber(req_id)) {
        cJSON_Delete(req);
        return NULL;
    }
    double id = req_id->valuedouble;
    cJSON_Delete(req);
    if (!ws_send_text(w, json_request))
        return NULL;
    for (;;) {
        char *text = ws_recv_text(w, IO_DEADLINE_MS);
        if (!text)
            return NULL;
        cJSON *r = cJSON_Parse(text);
        if (cJSON_GetObjectItem(r, "event")) {
            stash_push(w, text); /* for ws_next_event */
            cJSON_Delete(r);
            continue;
        }
        free(text);
        const cJSON *rid = cJSON_GetObjectItem(r, "id");
        if (cJSON_IsNumber(rid) && rid->valuedouble == id)
            return r;
        cJSON_Delete(r);
    }
}

bool ws_login(struct ws *w, const char *login, const char *password, char *tok)
{
    char req[512];
    snprintf(req, sizeof req,
             "{\"id\":1,\"op\":\"login\",\"login\":\"%s\",\"password\":\"%s\",\"device\":\"test\"}",
             login, password);
    cJSON *r = ws_call(w, req);
    const cJSON *t = cJSON_GetObjectItem(r, "token");
    bool ok = cJSON_IsString(t);
    if (ok && tok)
        snprintf(tok, 64, "%s", t->valuestring);
    cJSON_Delete(r);
    return ok;
}

int ws_wait_close(struct ws *w, int timeout_ms)
{
    long long deadline = mono_ms() + timeout_ms;
    while (!w->close_code && mono_ms() < deadline) {
        char *t = ws_recv_text(w, (int)(deadline - mono_ms()));
        if (!t)
            break;
        free(t);
    }
    return w->close_code ? w->close_code : -1;
}

bool ws_audit_has(struct ws *admin, const char *action, const char *target)
{
    char req[256];
    snprintf(req, sizeof req,
             "{\"id\":50,\"op\":\"audit.list\",\"action\":\"%s\",\"target\":\"%s\"}", action,
             target);
    cJSON *r = ws_call(admin, req);
    bool found = cJSON_GetArraySize(cJSON_GetObjectItem(r, "entries")) > 0;
    if (found) {
        cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "entries"), 0);
        cr_assert(cJSON_IsString(cJSON_GetObjectItem(e, "address")));
        cr_assert_gt(cJSON_GetObjectItem(e, "at")->valuedouble, 0);
    }
    cJSON_Delete(r);
    return found;
}

const char *reply_code(const cJSON *reply)
{
    if (!reply)
        return "(no reply)";
    if (cJSON_IsTrue(cJSON_GetObjectItem(reply, "ok")))
        return "ok";
    const cJSON *code = cJSON_GetObjectItem(cJSON_GetObjectItem(reply, "error"), "code");
    return cJSON_IsString(code) ? code->valuestring : "(no code)";
}

const char *csv_formula_cell(const char *csv)
{
    const char *p = csv;
    if (strncmp(p, "\xef\xbb\xbf", 3) == 0)
        p += 3; /* the BOM that tells Excel the file is UTF-8 */
    while (*p) {
        if (*p != '"' || (p[1] && strchr("=+-@\t\r", p[1])))
            return p;
        for (p++; *p && !(*p == '"' && p[1] != '"'); p += *p == '"' ? 2 : 1)
            ;
        if (!*p)
            return NULL;
        p++;
        if (*p == ',' || *p == '\n')
            p++;
    }
    return NULL;
}

void kzd_qualify(struct kzd *d, const char *login, char *out, size_t n)
{
    struct ws w;
    cr_assert(ws_open(&w, d->port), "connect for whoami");
    cr_assert(ws_login(&w, "admin", TEST_ADMIN_PASSWORD, NULL), "admin login for whoami");
    cJSON *r = ws_callf(&w, "\"op\":\"whoami\"");
    ws_close_fd(&w);
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(r, "server_id"));
    cr_assert_not_null(id, "whoami names no server_id");
    snprintf(out, n, "%s@%s", login, id);
    cJSON_Delete(r);
}

bool kzd_log_has(const struct kzd *d, const char *needle)
{
    char path[400];
    snprintf(path, sizeof path, "%s/stderr.log", d->dir);
    FILE *f = fopen(path, "r");
    char line[4096];
    bool found = false;
    while (f && !found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return found;
}
