/* mail_digest.c - the daily digest (docs/notifications.md): once a day at mail_digest_at (in
 * the server's time_zone), each person who chose it (notify.prefs, kind "digest") gets one
 * e-mail listing their must-read notices not yet done as asked (read, acknowledged, answered),
 * with links to open each in Kizuna, and nothing when nothing waits. Driven by the senders'
 * timer (push.c's srv_push_tick): a batch of mail_digest_batch people per turn, one query, so
 * a town of thousands never holds the loop up; the mail itself leaves on the mail threads.
 * Each person's day is recorded in the transaction that queues their mail (mail_digest_days),
 * so a restart, a crash or a clock set back sends no day twice. */
#include "notify.h"
#include "store_push.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct digest_ctx {
    struct srv *s;
    const char *day;
    int64_t people, mails;
    bool failed;
};

static void digest_one(void *arg, const struct store_digest_person *p)
{
    struct digest_ctx *d = arg;
    struct srv *s = d->s;
    const struct kz_config *cfg = s->cfg;
    struct store *st = s->store;
    d->people++;
    if (p->nitems > 0) {
        struct notify_text subj = {0}, text = {0};
        notify_put(&subj, "[Kizuna] 未読のお知らせ %lld 件（%s）", (long long)p->total, d->day);
        notify_put(&text,
                   "%s さん\r\n\r\nまだ済んでいない必読のお知らせが %lld 件あります。\r\n"
                   "You have %lld must-read notice(s) not yet done:\r\n\r\n",
                   p->name, (long long)p->total, (long long)p->total);
        for (size_t i = 0; i < p->nitems; i++) {
            const struct store_digest_item *it = &p->items[i];
            notify_put(&text, "%zu. %s%s%s\r\n", i + 1, it->urgent ? "【至急】" : "",
                       it->rollcall ? "【回答依頼】" : "", it->title);
            if (cfg->public_origin[0])
                notify_put(&text, "   %s/#/notices/%lld\r\n", cfg->public_origin,
                           (long long)it->notice);
        }
        if (p->total > (int64_t)p->nitems)
            notify_put(&text, "\r\nほか %lld 件 / and %lld more\r\n",
                       (long long)(p->total - (int64_t)p->nitems),
                       (long long)(p->total - (int64_t)p->nitems));
        if (!cfg->public_origin[0])
            notify_put(&text, "\r\nKizuna を開いてください。 / Please open Kizuna.\r\n");
        notify_put(&text,
                   "\r\n-- \r\nKizuna (%s)\r\nこのまとめは毎日 %s に届きます。止めるには Kizuna の"
                   "通知設定で「毎日のまとめ」を外してください。\r\n",
                   srv_server_id(s), cfg->mail_digest_at);
        int64_t now = kz_now_ms();
        if (subj.bad || text.bad ||
            store_mail_queue(st, p->user_id, p->email, subj.s, text.s, 0, now, now) != STORE_OK)
            d->failed = true;
        else
            d->mails++;
        free(subj.s);
        free(text.s);
        if (d->failed)
            return; /* not recorded: the next turn tries this person again */
    }
    if (store_mail_digest_done(st, p->user_id, d->day) != STORE_OK)
        d->failed = true;
}

/* When minute `at` of the day next comes after now (tm: now in the server's time zone). A
 * daylight-saving change can make it an hour off; the timer's hourly cap corrects that. */
static int64_t next_at(int64_t now, const struct tm *tm, int at)
{
    int m = tm->tm_hour * 60 + tm->tm_min;
    int64_t midnight = now - ((int64_t)m * 60 + tm->tm_sec) * 1000 - now % 1000;
    return midnight + (int64_t)(m < at ? at : at + 1440) * 60000;
}

void srv_mail_digest_tick(struct srv *s, int64_t *next)
{
    struct srv_push *p = s->push;
    const struct kz_config *cfg = s->cfg;
    *next = 0;
    int at = cfg->mail_digest_at[0] ? srv_hhmm(cfg->mail_digest_at) : -1;
    if (!p || !p->mail_pool || at < 0)
        return;
    int64_t now = kz_now_ms();
    time_t t = (time_t)(now / 1000);
    struct tm tm;
    localtime_r(&t, &tm); /* TZ is time_zone's (kz_time_zone_load) */
    char day[16];
    strftime(day, sizeof day, "%Y-%m-%d", &tm);
    if (tm.tm_hour * 60 + tm.tm_min < at || strcmp(p->digest_done, day) == 0) {
        *next = next_at(now, &tm, at);
        return;
    }
    if (srv_writes_blocked(s) || store_tx_begin(s->store) != STORE_OK) {
        *next = now + 60000; /* the disk refuses writes: try again in a minute */
        return;
    }
    struct digest_ctx d = {.s = s, .day = day};
    if (store_mail_digest_due(s->store, day, now, srv_notify_default("digest", true),
                              cfg->mail_digest_batch, cfg->mail_digest_max_notices, digest_one,
                              &d) != STORE_OK)
        d.failed = true;
    srv_commit_async(s);
    if (d.failed) {
        KZ_ERROR("mail_digest_failed", "day=%s error=\"%s\"", day, store_errmsg(s->store));
        *next = now + 60000;
        return;
    }
    if (d.people)
        KZ_INFO("mail_digest", "day=%s people=%lld mails=%lld", day, (long long)d.people,
                (long long)d.mails);
    if (d.people < cfg->mail_digest_batch) {
        snprintf(p->digest_done, sizeof p->digest_done, "%s", day);
        KZ_INFO("mail_digest_done", "day=%s", day);
        *next = d.mails ? now : next_at(now, &tm, at);
    } else {
        *next = now; /* the next batch, next turn: talk goes on between them */
    }
}
