/* notice.h - what the notice ops share (ops_notice.c: posting, changing, reading;
 * ops_notice_report.c: reports and reminders). Included by those two files only. */
#ifndef KIZUNA_NOTICE_H
#define KIZUNA_NOTICE_H

#include "server.h"

#define NOTICE_LINK "kizuna://notice/"

/* A copy of a notice and the caller's relation to it. */
struct notice_view {
    struct store_notice n; /* strings below point into this view's own copies */
    char *title, *body, *category, *choices, *audience, *author_login, *author_name, *comment;
    bool can_manage; /* author or admin: report, remind, edit, withdraw */
};

/* Loads the notice named by the call's `notice` argument into v, for a caller who may see it
 * (a recipient, its author, an admin); not_found otherwise. v is the caller's to free with
 * notice_view_free. */
enum kz_err notice_view_load(struct srv_call *c, struct notice_view *v);
void notice_view_free(struct notice_view *v);
/* An audit entry about notice id; details (consumed, may be NULL) gain its title. */
void notice_audit(struct srv_call *c, const char *action, int64_t id, const char *title,
                  cJSON *details);
/* forbidden unless the caller may manage v (its author or an admin). */
enum kz_err notice_require_manager(struct srv_call *c, const struct notice_view *v);
/* conflict if v was withdrawn. */
enum kz_err notice_require_open(struct srv_call *c, const struct notice_view *v);
/* The protocol's view of a notice. The caller owns the result. */
cJSON *notice_to_json(const struct store_notice *n);
/* A positionless summary (event `event`) pushed ahead of everything queued, for urgent notices
 * and reminders. The caller unrefs it. */
struct kz_frame *notice_alert_frame(const char *event, const struct store_notice *n);

#endif
