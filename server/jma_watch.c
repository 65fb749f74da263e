/* jma_watch.c - polls JMA's Atom feeds and fetches each new telegram once (docs/alerts.md).
 *
 * The loop never waits on the network: every request is a kz_workers job doing a blocking
 * libcurl transfer (http and https; the project already builds with libcurl for the CLI) with
 * a connect and a total timeout, a size cap and nothing else shared; its done() runs on the
 * loop and is the only place its result is read. One request is in flight at a time: JMA asks
 * clients to download little, and the worker pool also hashes passwords. Each feed is asked
 * with If-None-Match/If-Modified-Since and backs off (doubling from jma_poll_s up to
 * jma_backoff_max_s) after a failure; the state is shown by alert.list and logged. A telegram's
 * entry id goes into jma_seen once fetched (or given up after three tries), so that a restart
 * fetches nothing twice. A telegram is fetched only from the origin of the feed that listed it:
 * a forged feed must not make the server fetch addresses of its choosing. */
#include "core.h"
#include "jma.h"
#include "metrics.h"

#include <curl/curl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define JMA_FEEDS_MAX    8
#define JMA_QUEUE_MAX    256 /* telegrams waiting to be fetched */
#define JMA_TRIES        3   /* fetches of one telegram before it is given up */
#define JMA_SEEN_KEEP_MS (30LL * 86400 * 1000)

struct jma_feed_state {
    char url[1024];
    char etag[256], last_modified[64];
    int64_t next_poll_at, ok_at;
    int failures;
    char error[192];
};

struct jma_pending_doc {
    char entry_id[256];
    char href[512];
    int tries;
    int64_t not_before;
};

struct jma {
    struct jma_rules rules;
    struct jma_feed_state feeds[JMA_FEEDS_MAX];
    int nfeeds;
    struct jma_pending_doc queue[JMA_QUEUE_MAX];
    int nqueue;
    bool busy;            /* a fetch job is out */
    atomic_bool stopping; /* shutdown: transfers give up at once */
    int64_t pruned_at;
};

/* One transfer, owned by the job until its done() frees it. */
struct jma_fetch {
    struct kz_job job;
    struct srv *srv;
    atomic_bool *stopping;
    bool is_feed;
    int feed;                   /* is_feed: index into feeds */
    struct jma_pending_doc doc; /* !is_feed: what is fetched */
    char url[1024];
    char if_none_match[256], if_modified_since[64];
    size_t max_bytes;
    long timeout_s;
    /* result */
    long status;
    char *body;
    size_t len, cap;
    bool too_big;
    char error[192];
    char etag[256], last_modified[64];
};

static size_t on_body(char *ptr, size_t size, size_t n, void *arg)
{
    struct jma_fetch *f = arg;
    size_t add = size * n;
    if (add > f->max_bytes - f->len) {
        f->too_big = true;
        return 0; /* aborts the transfer */
    }
    if (f->len + add > f->cap) {
        size_t cap = f->cap ? f->cap : 16384;
        while (cap < f->len + add)
            cap *= 2;
        char *nb = realloc(f->body, cap + 1);
        if (!nb)
            return 0;
        f->body = nb;
        f->cap = cap;
    }
    memcpy(f->body + f->len, ptr, add);
    f->len += add;
    return add;
}

/* Copies a header's value (after "Name:") into dst, trimmed. */
static void header_value(const char *line, size_t len, size_t name_len, char *dst, size_t cap)
{
    const char *v = line + name_len;
    size_t n = len - name_len;
    while (n && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
        n--;
    if (n >= cap)
        return; /* an over-long validator is not sent back */
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static size_t on_header(char *line, size_t size, size_t n, void *arg)
{
    struct jma_fetch *f = arg;
    size_t len = size * n;
    if (len > 5 && strncasecmp(line, "ETag:", 5) == 0)
        header_value(line, len, 5, f->etag, sizeof f->etag);
    else if (len > 14 && strncasecmp(line, "Last-Modified:", 14) == 0)
        header_value(line, len, 14, f->last_modified, sizeof f->last_modified);
    return len;
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    struct jma_fetch *f = arg;
    return atomic_load(f->stopping) ? 1 : 0;
}

/* Worker thread: the transfer, touching only f. */
static void fetch_work(struct kz_job *job)
{
    struct jma_fetch *f = (struct jma_fetch *)job;
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(f->error, sizeof f->error, "libcurl unavailable");
        return;
    }
    struct curl_slist *hdrs = NULL;
    char line[320];
    if (f->if_none_match[0]) {
        snprintf(line, sizeof line, "If-None-Match: %s", f->if_none_match);
        hdrs = curl_slist_append(hdrs, line);
    }
    if (f->if_modified_since[0]) {
        snprintf(line, sizeof line, "If-Modified-Since: %s", f->if_modified_since);
        hdrs = curl_slist_append(hdrs, line);
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, f->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, f->timeout_s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, f->timeout_s);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, ""); /* JMA serves gzip */
    curl_easy_setopt(h, CURLOPT_USERAGENT, "kizunad (JMA feed watcher)");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, f);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_easy_perform(h);
    if (f->too_big)
        snprintf(f->error, sizeof f->error, "larger than jma_max_doc_bytes");
    else if (rc != CURLE_OK)
        snprintf(f->error, sizeof f->error, "%.180s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    else
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &f->status);
    if (f->body)
        f->body[f->len] = '\0';
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
}

static void fetch_free(struct jma_fetch *f)
{
    free(f->body);
    free(f);
}

static struct jma_limits limits_of(const struct kz_config *cfg)
{
    return (struct jma_limits){.max_bytes = (size_t)cfg->jma_max_doc_bytes,
                               .max_depth = (int)cfg->jma_max_depth,
                               .max_items = (int)cfg->jma_max_items};
}

/* Writes outside any call go into the loop's transaction (as replication's do). */
static bool tx_begin(struct srv *s)
{
    if (store_tx_is_open(s->store))
        return true;
    if (srv_writes_blocked(s) || store_tx_begin(s->store) != STORE_OK)
        return false;
    s->tx.want_commit(s->tx.ctx);
    return true;
}

static void seen_add(struct srv *s, const struct jma_pending_doc *d, const char *result)
{
    if (!tx_begin(s) ||
        store_jma_seen_add(s->store, d->entry_id, d->href, kz_now_ms(), result) != STORE_OK)
        KZ_ERROR("jma_seen_failed", "entry=\"%s\" error=\"%s\"", d->entry_id,
                 store_errmsg(s->store));
}

/* "scheme://host[:port]/" of url: its length, 0 if url has no such prefix. */
static size_t origin_len(const char *url)
{
    const char *p = strstr(url, "://");
    if (!p || p == url)
        return 0;
    const char *slash = strchr(p + 3, '/');
    return slash ? (size_t)(slash - url) + 1 : 0;
}

/* Whether an entry's telegram may matter to the rules: fetched only then (JMA lists a hundred
 * other kinds; fetching them would be the heavy use JMA blocks). */
static bool entry_wanted(const struct jma_rules *r, const char *title)
{
    if (r->ntowns &&
        (strcmp(title, "震度速報") == 0 || strcmp(title, "震源・震度に関する情報") == 0))
        return true;
    if (r->ntsunami &&
        strncmp(title, "津波警報・注意報・予報", strlen("津波警報・注意報・予報")) == 0)
        return true;
    return r->ntowns && r->special_warnings && strcmp(title, "気象特別警報・警報・注意報") == 0;
}

static bool queued(const struct jma *j, const char *entry_id)
{
    for (int i = 0; i < j->nqueue; i++)
        if (strcmp(j->queue[i].entry_id, entry_id) == 0)
            return true;
    return false;
}

static void feed_done(struct srv *s, struct jma_fetch *f)
{
    struct jma *j = s->jma;
    struct jma_feed_state *fs = &j->feeds[f->feed];
    int64_t now = kz_now_ms();
    const struct kz_config *cfg = s->cfg;
    if (!f->error[0] && f->status != 200 && f->status != 304)
        snprintf(f->error, sizeof f->error, "HTTP status %ld", f->status);
    struct jma_feed feed = {0};
    if (!f->error[0] && f->status == 200) {
        struct jma_limits lim = limits_of(cfg);
        enum jma_err e = jma_feed_parse(f->body ? f->body : "", f->len, &lim, &feed);
        if (e != JMA_OK)
            snprintf(f->error, sizeof f->error, "not a feed (%s)", jma_err_name(e));
    }
    if (f->error[0])
        kz_metrics.jma_fetches_failed++;
    else
        kz_metrics.jma_fetches_ok++;
    if (f->error[0]) {
        fs->failures++;
        int64_t wait = cfg->jma_poll_s;
        for (int i = 0; i < fs->failures && wait < cfg->jma_backoff_max_s; i++)
            wait *= 2;
        if (wait > cfg->jma_backoff_max_s)
            wait = cfg->jma_backoff_max_s;
        fs->next_poll_at = now + wait * 1000;
        snprintf(fs->error, sizeof fs->error, "%s", f->error);
        KZ_WARN("jma_feed_failed", "url=\"%s\" failures=%d retry_s=%lld error=\"%s\"", fs->url,
                fs->failures, (long long)wait, f->error);
        return;
    }
    if (fs->failures)
        KZ_INFO("jma_feed_recovered", "url=\"%s\" after=%d", fs->url, fs->failures);
    fs->failures = 0;
    fs->error[0] = '\0';
    fs->ok_at = now;
    fs->next_poll_at = now + cfg->jma_poll_s * 1000;
    if (f->status == 304)
        return;
    snprintf(fs->etag, sizeof fs->etag, "%s", f->etag);
    snprintf(fs->last_modified, sizeof fs->last_modified, "%s", f->last_modified);
    size_t olen = origin_len(fs->url);
    int added = 0;
    /* Oldest first: JMA lists the newest first, and a cancellation must follow what it
     * cancels. */
    for (size_t i = feed.n; i-- > 0;) {
        const struct jma_entry *e = &feed.entries[i];
        if (!e->id[0] || !entry_wanted(&j->rules, e->title) || queued(j, e->id))
            continue;
        enum store_rc rc = store_jma_seen_has(s->store, e->id);
        if (rc == STORE_OK)
            continue;
        if (rc != STORE_NOT_FOUND)
            break;
        if (e->href_cut || !olen || strncmp(e->href, fs->url, olen) != 0) {
            KZ_WARN("jma_entry_refused",
                    "entry=\"%s\" href=\"%.200s\" why=\"not on the feed's "
                    "origin\"",
                    e->id, e->href);
            struct jma_pending_doc d = {0};
            snprintf(d.entry_id, sizeof d.entry_id, "%s", e->id);
            seen_add(s, &d, "foreign_href");
            continue;
        }
        if (j->nqueue == JMA_QUEUE_MAX) {
            KZ_WARN("jma_queue_full", "entry=\"%s\"", e->id);
            break; /* the next poll lists it again */
        }
        struct jma_pending_doc *d = &j->queue[j->nqueue++];
        memset(d, 0, sizeof *d);
        snprintf(d->entry_id, sizeof d->entry_id, "%s", e->id);
        snprintf(d->href, sizeof d->href, "%s", e->href);
        added++;
    }
    if (added)
        KZ_INFO("jma_feed_new", "url=\"%s\" entries=%zu new=%d", fs->url, feed.n, added);
    jma_feed_free(&feed);
}

static void doc_done(struct srv *s, struct jma_fetch *f)
{
    struct jma *j = s->jma;
    struct jma_pending_doc *d = &f->doc;
    if (!f->error[0] && f->status != 200)
        snprintf(f->error, sizeof f->error, "HTTP status %ld", f->status);
    if (f->error[0])
        kz_metrics.jma_fetches_failed++;
    else
        kz_metrics.jma_fetches_ok++;
    if (f->error[0] && !f->too_big) {
        d->tries++;
        KZ_WARN("jma_fetch_failed", "entry=\"%s\" tries=%d error=\"%s\"", d->entry_id, d->tries,
                f->error);
        if (d->tries < JMA_TRIES && j->nqueue < JMA_QUEUE_MAX) {
            d->not_before = kz_now_ms() + s->cfg->jma_poll_s * 1000;
            j->queue[j->nqueue++] = *d;
        } else {
            seen_add(s, d, "fetch_failed");
        }
        return;
    }
    if (f->too_big) {
        KZ_WARN("jma_telegram_refused", "entry=\"%s\" why=too_big", d->entry_id);
        seen_add(s, d, "too_big");
        return;
    }
    struct jma_limits lim = limits_of(s->cfg);
    struct jma_telegram t;
    enum jma_err e = jma_telegram_parse(f->body ? f->body : "", f->len, &lim, &t);
    if (e != JMA_OK) {
        KZ_WARN("jma_telegram_refused", "entry=\"%s\" why=%s", d->entry_id, jma_err_name(e));
        seen_add(s, d, jma_err_name(e));
        return;
    }
    seen_add(s, d, "telegram");
    KZ_INFO("jma_telegram", "entry=\"%s\" title=\"%s\" event=\"%s\" serial=\"%s\" places=%zu",
            d->entry_id, t.control_title, t.event_id, t.serial, t.n_places);
    jma_alert_telegram(s, d->entry_id, &t);
    jma_telegram_free(&t);
}

static void fetch_done(struct kz_job *job, bool ran)
{
    struct jma_fetch *f = (struct jma_fetch *)job;
    struct srv *s = f->srv;
    if (ran && s->jma) {
        s->jma->busy = false;
        if (f->is_feed)
            feed_done(s, f);
        else
            doc_done(s, f);
    }
    fetch_free(f);
}

static struct jma_fetch *fetch_new(struct srv *s)
{
    struct jma_fetch *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->job.work = fetch_work;
    f->job.done = fetch_done;
    f->srv = s;
    f->stopping = &s->jma->stopping;
    f->max_bytes = (size_t)s->cfg->jma_max_doc_bytes;
    f->timeout_s = (long)s->cfg->jma_fetch_timeout_s;
    return f;
}

static void submit(struct srv *s, struct jma_fetch *f)
{
    if (kz_workers_submit(s->workers, &f->job))
        s->jma->busy = true;
    else
        fetch_free(f); /* the pool is full (logins): tried again next tick */
}

int srv_jma_tick(struct srv *s)
{
    struct jma *j = s->jma;
    if (!j)
        return 1000;
    int64_t now = kz_now_ms();
    bool watching = j->rules.ntowns || j->rules.ntsunami;
    if (watching && !j->busy && !atomic_load(&j->stopping)) {
        /* Telegrams first: a listed quake matters more than the next poll. */
        int pick = -1;
        for (int i = 0; i < j->nqueue && pick < 0; i++)
            if (j->queue[i].not_before <= now)
                pick = i;
        struct jma_fetch *f;
        if (pick >= 0 && (f = fetch_new(s))) {
            f->doc = j->queue[pick];
            memmove(&j->queue[pick], &j->queue[pick + 1],
                    (size_t)(j->nqueue - pick - 1) * sizeof j->queue[0]);
            j->nqueue--;
            snprintf(f->url, sizeof f->url, "%s", f->doc.href);
            submit(s, f);
        } else if (pick < 0) {
            int due = -1;
            for (int i = 0; i < j->nfeeds; i++)
                if (j->feeds[i].next_poll_at <= now &&
                    (due < 0 || j->feeds[i].next_poll_at < j->feeds[due].next_poll_at))
                    due = i;
            if (due >= 0 && (f = fetch_new(s))) {
                struct jma_feed_state *fs = &j->feeds[due];
                f->is_feed = true;
                f->feed = due;
                snprintf(f->url, sizeof f->url, "%s", fs->url);
                snprintf(f->if_none_match, sizeof f->if_none_match, "%s", fs->etag);
                snprintf(f->if_modified_since, sizeof f->if_modified_since, "%s",
                         fs->last_modified);
                submit(s, f);
            }
        }
    }
    jma_alert_due(s, now);
    /* Only while watching: a server without rules writes nothing of its own every hour. */
    if (watching && now - j->pruned_at > 3600 * 1000 && !srv_writes_blocked(s)) {
        j->pruned_at = now;
        if (tx_begin(s))
            store_jma_seen_prune(s->store, now - JMA_SEEN_KEEP_MS);
    }
    return 1000;
}

int srv_jma_init(struct srv *s)
{
    struct jma *j = calloc(1, sizeof *j);
    if (!j)
        return -1;
    atomic_init(&j->stopping, false);
    char *over = NULL, why[192];
    enum store_rc rc = store_jma_rules_get(s->store, &over);
    if ((rc != STORE_OK && rc != STORE_NOT_FOUND) ||
        !jma_rules_load(s->cfg, over, &j->rules, why, sizeof why)) {
        KZ_ERROR("jma_rules_invalid", "error=\"%s\"",
                 rc == STORE_OK || rc == STORE_NOT_FOUND ? why : store_errmsg(s->store));
        free(over);
        free(j);
        return -1;
    }
    free(over);
    char urls[sizeof s->cfg->jma_feeds], *save = NULL;
    snprintf(urls, sizeof urls, "%s", s->cfg->jma_feeds);
    for (char *u = strtok_r(urls, " ", &save); u && j->nfeeds < JMA_FEEDS_MAX;
         u = strtok_r(NULL, " ", &save))
        snprintf(j->feeds[j->nfeeds++].url, sizeof j->feeds[0].url, "%s", u);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    s->jma = j;
    return 0;
}

void srv_jma_stop(struct srv *s)
{
    if (s->jma)
        atomic_store(&s->jma->stopping, true);
}

void srv_jma_free(struct srv *s)
{
    if (!s->jma)
        return;
    free(s->jma);
    s->jma = NULL;
    curl_global_cleanup();
}

const struct jma_rules *srv_jma_rules(struct srv *s)
{
    return &s->jma->rules;
}

void srv_jma_rules_replace(struct srv *s, const struct jma_rules *r)
{
    s->jma->rules = *r;
}

cJSON *srv_jma_feeds_json(struct srv *s)
{
    cJSON *a = cJSON_CreateArray();
    struct jma *j = s->jma;
    bool watching = j->rules.ntowns || j->rules.ntsunami;
    for (int i = 0; i < j->nfeeds; i++) {
        const struct jma_feed_state *fs = &j->feeds[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "url", fs->url);
        cJSON_AddBoolToObject(o, "watched", watching);
        cJSON_AddNumberToObject(o, "ok_at", (double)fs->ok_at);
        cJSON_AddNumberToObject(o, "failures", fs->failures);
        cJSON_AddNumberToObject(o, "next_poll_at", (double)fs->next_poll_at);
        cJSON_AddStringToObject(o, "error", fs->error);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}
