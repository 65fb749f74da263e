/* harness.h - run the real kizunad on an ephemeral loopback port with a temporary data
 * directory, and talk to it over real sockets: a raw WebSocket client (so tests can also send
 * what no well-behaved client would) and a one-shot HTTP client. Every wait has a deadline.
 *
 * Every process the harness starts (kzd_start, run_capture, spawn_reader) dies with the test:
 * it gets SIGKILL when the thread that started it ends, however the test ends (an assertion
 * before the teardown, a crash, abort(), Criterion's timeout, ctest killing the test). So
 * kzd_start and spawn_reader must be called on the test's own thread (they assert it), never
 * on a helper thread that returns earlier. tests/integration/test_harness.c proves it, and
 * deploy/setup.sh test fails if anything the suite started is still running at its end. */
#ifndef KIZUNA_TEST_HARNESS_H
#define KIZUNA_TEST_HARNESS_H

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define TEST_ADMIN_PASSWORD "admin-pass-123"

struct kzd {
    pid_t pid;
    int port;
    int fed_port;     /* the federation listener's, when federation_listen is set (else 0) */
    char dir[256];    /* the data directory */
    char config[300]; /* a config file that makes password hashing cheap */
    char url[64];     /* http://127.0.0.1:PORT */
};

/* Makes a temporary directory, runs `kizunad init` in it (admin/TEST_ADMIN_PASSWORD) and
 * starts `kizunad serve` on port 0, waiting for its "listening on" line (20 s, or
 * KIZUNA_TEST_START_MS milliseconds), and taking fed_port from the "federating on" line before
 * it when the config sets federation_listen. Aborts the test on failure, after killing the
 * server. */
void kzd_setup(struct kzd *d);
/* The same, with extra config members (JSON without braces, e.g. "\"x\":1") that override the
 * test defaults. */
void kzd_setup_with(struct kzd *d, const char *extra_config);
/* Starts serve again on the same data directory (after a stop or a kill), on the same port and
 * federation port. KIZUNA_TEST_WRAPPER
 * (space-separated words, e.g. "valgrind -q") runs it under a tool. */
void kzd_start(struct kzd *d);
/* SIGTERM, then waits (with a deadline) and returns the exit status (0 = clean, no leaks). */
int kzd_stop(struct kzd *d);
/* SIGKILL and reap. */
void kzd_kill(struct kzd *d);
/* login as the server names it in what devices sign (issue 19): "login@SERVER_ID", the id
 * asked of the running server (whoami as admin). */
void kzd_qualify(struct kzd *d, const char *login, char *out, size_t n);
/* Whether a line of the server's log (DIR/stderr.log) so far contains needle. */
bool kzd_log_has(const struct kzd *d, const char *needle);
/* Waits for a server that stops by itself; its exit status, or -1 (and SIGKILL) after
 * timeout_ms. */
int kzd_wait_exit(struct kzd *d, int timeout_ms);
/* Stops the server if running (asserting a clean exit) and removes the directory. */
void kzd_teardown(struct kzd *d);
/* Runs a program with extra environment (NULL-terminated "K=V" list) and stdin text, capturing
 * stdout into out (NUL-terminated). Returns the exit status, or -1. */
int run_capture(const char *const argv[], const char *const env[], const char *stdin_text,
                char *out, size_t outlen);

/* Test users other than admin have the password LOGIN TEST_PW_SUFFIX. */
#define TEST_PW_SUFFIX "-password-1"

/* One device of a user for the CLI: which server, which config dir (the device's keys), which
 * user's password goes in KIZUNA_PASSWORD (admin: TEST_ADMIN_PASSWORD, anyone else LOGIN
 * TEST_PW_SUFFIX), how long uploads may retry, one optional extra environment entry, and
 * whether stderr goes to out with stdout (to check what the user is warned of). */
struct kz_device {
    const char *server_url;
    const char *config_dir;
    const char *user;
    const char *extra_env;
    int retry_max_s;
    bool merge_stderr;
};
/* Runs kizuna on dev with stdin `in` (may be NULL) and the arguments in ap (NULL-terminated,
 * at most 18); stdout goes to out (NUL-terminated). Returns the exit status, or -1. */
int kz_device_run(const struct kz_device *dev, const char *in, char *out, size_t outlen,
                  va_list ap);

/* Starts a long-running program (e.g. kizuna tail) with its stdout on a pipe (*out_fd). */
pid_t spawn_reader(const char *const argv[], const char *const env[], int *out_fd);
/* Reads from fd into buf (appending at *len) until it contains needle or the deadline. */
bool read_until(int fd, char *buf, size_t cap, size_t *len, const char *needle, int timeout_ms);

/* What kzd_check_event_logs saw. */
struct kzd_log_check {
    int events;     /* rows checked */
    int logs;       /* (room, origin, inc) logs */
    int signatures; /* checkpoint signatures verified */
};
/* Checks the signed, hash-chained event logs in the data directory's database (best with the
 * server stopped): per (room, origin, inc) log, seq runs from 1 without gaps, each event id is
 * the BLAKE2b-256 of its stored bytes, `prev` names the previous event, every checkpoint
 * signature verifies with server.key and every log ends in one. Never asserts (usable off the
 * test's main thread); false with the first problem in err. */
bool kzd_check_event_logs(const struct kzd *d, struct kzd_log_check *out, char *err, size_t errlen);

/* ---- raw WebSocket ---- */
#define WS_STASH 4096
struct ws {
    int fd;
    int close_code; /* set once a close frame arrived */
    char close_reason[128];
    char *stash[WS_STASH]; /* events that arrived while ws_call waited for a reply */
    int stash_head, stash_len;
};
/* Opens /api/v1/ws; false if the upgrade failed. */
/* Milliseconds of the monotonic clock: for deadlines. */
long long mono_ms(void);
bool ws_open(struct ws *w, int port);
/* The same with a small socket receive buffer (bytes), to play a stalled client. */
bool ws_open_rcvbuf(struct ws *w, int port, int rcvbuf);
void ws_close_fd(struct ws *w);
/* Sends one frame with the given opcode (0x1 text, 0x2 binary), masked as a client must. */
bool ws_send_frame(struct ws *w, int opcode, const void *data, size_t len);
bool ws_send_text(struct ws *w, const char *text);
/* Receives the next text message (caller frees), or NULL on close/timeout. */
char *ws_recv_text(struct ws *w, int timeout_ms);
/* Sends a request and returns the reply with the same id (caller deletes); events skipped. */
cJSON *ws_call(struct ws *w, const char *json_request);
/* The same, but never asserts, so it is safe off the test's main thread: NULL also for a
 * request that is not JSON with a numeric id. */
cJSON *ws_try_call(struct ws *w, const char *json_request);
/* Logs in over this connection; returns the token in tok (>= 64 bytes) or false. */
bool ws_login(struct ws *w, const char *login, const char *password, char *tok);
/* The next pushed event (stashed or from the socket), parsed; NULL on timeout or close. */
cJSON *ws_next_event(struct ws *w, int timeout_ms);
/* Sends a printf-formatted request and returns its reply (caller deletes). */
cJSON *ws_callf(struct ws *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Opens a connection, logs in and syncs until live from `since` (-1: from now); every event
 * the sync returned is appended to `events` (if non-NULL). Returns the last position. */
long long ws_live(struct ws *w, int port, const char *login, const char *password, long long since,
                  cJSON *events);
long long ws_live_rcvbuf(struct ws *w, int port, int rcvbuf, const char *login,
                         const char *password, long long since, cJSON *events);
/* Waits for the server's close frame; returns its code, or -1 on timeout. */
int ws_wait_close(struct ws *w, int timeout_ms);

/* Whether the audit log (read by an admin connection) has an entry of action about target. */
bool ws_audit_has(struct ws *admin, const char *action, const char *target);
/* The error code of a reply ("ok" if ok), for assertions. */
const char *reply_code(const cJSON *reply);

/* ---- one-shot HTTP ---- */
/* Sends a request and returns the status; the body is copied to body (NUL-terminated). */
int http_request(int port, const char *method, const char *path, const char *headers,
                 const char *reqbody, char *body, size_t bodylen);

/* Any method with a binary body of body_len bytes of which only send_len are sent (then the
 * connection is cut and 0 returned); body NULL sends no Content-Length. Returns the status; the
 * whole response (headers and body) goes to resp. */
int http_raw(int port, const char *method, const char *path, const char *headers, const void *body,
             size_t body_len, size_t send_len, char *resp, size_t resp_cap, size_t *resp_len);
/* The id of the room a room.create or room.direct reply r names, into out (asserts it does). */
void reply_room(const cJSON *r, char *out, size_t n);
/* The value of the sample named exactly sample (a metric's name and labels, e.g.
 * kizuna_push_sends_total{result="sent"}) in a /metrics text, or -1 if it has none. */
double metric_value(const char *text, const char *sample);
/* A plain TCP connection to the server (a client that misbehaves below HTTP), or -1. */
int tcp_open(int port);
/* Reads and discards until the server closes the connection (true) or the deadline passes. */
bool tcp_wait_closed(int fd, int timeout_ms);
/* The first cell of a CSV (every cell quoted, as Kizuna writes them) that a spreadsheet would
 * run as a formula, or that is not quoted; NULL if there is none. */
const char *csv_formula_cell(const char *csv);
/* A response header's value (case-insensitive name, without the colon). */
bool http_header(const char *resp, const char *name, char *out, size_t n);

#endif
