/* fed_blobs_int.h - what the two files of blobs across servers share, and nothing else
 * includes: fed_blobs.c (the puller, the core's calls, the timer) and fed_blob_serve.c (answering
 * other servers' blob.get). Event loop thread only. */
#ifndef KIZUNA_FED_BLOBS_INT_H
#define KIZUNA_FED_BLOBS_INT_H

#include "core.h"

#define NONES_MAX      64
#define FRAME_OVERHEAD 320 /* a blob.part's bytes beside its data */

/* The blob a link is fetching (at most one per link, one request in flight). */
struct fb_job {
    bool active;
    char blob[STORE_BLOB_ID_LEN + 1];
    char room_id[STORE_ROOM_ID_MAX + 1];
    int64_t offset;   /* bytes staged: the next request's offset */
    int64_t total;    /* 0: not said yet */
    int64_t reserved; /* staging bytes held for it (its total once known; fed_blobs.c) */
    bool sent;        /* a blob.get is in flight */
    int64_t sent_at;  /* ms */
    int64_t req_len;  /* what it asked for */
    int64_t received; /* bytes this job took (the logs' figures) */
    int parts;
    int64_t started_at;
};

/* A blob.get that waits for the peer's event pump to have nothing to send. */
struct fb_serve {
    bool pending;
    char blob[STORE_BLOB_ID_LEN + 1];
    char room_id[STORE_ROOM_ID_MAX + 1];
    int64_t offset, length;
};

struct fb_link {
    char peer[STORE_SERVER_ID_MAX + 1]; /* lives as long as the core: the outbox keeps it */
    bool up;
    int64_t next_at;  /* ms: the next blob.get may go (the bandwidth cap) */
    int64_t serve_at; /* ms: the next blob.part may go (the same cap, serving) */
    struct fb_job job;
    struct fb_serve serve;
    struct fb_link *next;
};

struct fb_none {
    char blob[STORE_BLOB_ID_LEN + 1];
    char peer[STORE_SERVER_ID_MAX + 1];
    int64_t at;
};

struct fed_blobs {
    struct fb_link *links;
    struct fb_none nones[NONES_MAX];
    int nnones;
    bool kick_due;      /* a want was recorded, or a link with a job went down: look for sources */
    bool staging_freed; /* a job ended: the wants waiting for staging space look again */
};

/* fed_blobs.c */
/* The state, made at first use (NULL if out of memory). */
struct fed_blobs *fb_of(struct srv *s);
/* The link state of peer, made at first use (NULL if out of memory). */
struct fb_link *fb_link_get(struct srv *s, const char *peer);
/* The most blob bytes one part may carry: its base64 within federation_max_frame_bytes. */
int64_t fb_part_max(const struct srv *s);
/* A whole number in [lo, hi] under k: false for anything else. */
bool fb_jnum(const cJSON *o, const char *k, int64_t lo, int64_t hi, int64_t *out);
const char *fb_jstr(const cJSON *o, const char *k);
/* Says what in why and returns -1 (a malformed frame). */
int fb_bad(char *why, size_t n, const char *what);
/* A frame of text to l's peer, through the outbox. */
void fb_send_text(struct srv *s, struct fb_link *l, const char *text, size_t len);
/* Arms the timer for the soonest paced request, timeout or paced answer. */
void fb_arm(struct srv *s);

/* fed_blob_serve.c */
/* A blob.get from l's peer: -1 if malformed, else 0 (answered now, or when the peer's event
 * pump is idle and the cap allows). */
int fb_get_in(struct srv *s, struct fb_link *l, const cJSON *jf, char *why, size_t n);
/* Answers every waiting blob.get that may go now. */
void fb_serve_waiting(struct srv *s);

#endif
