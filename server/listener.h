/* listener.h - the listening socket and who may connect to it. kizunad only.
 *
 * kizunad binds and accepts itself, then hands each admitted socket to libwebsockets. Before a
 * connection costs anything it is counted against max_connections_per_address,
 * max_connections, and a total of descriptors (connections and the files they hold open) that
 * keeps fd_reserve of them free; a refused client gets a one-line HTTP error
 * (429 rate_limited or 503 unavailable) and is closed at once. Everything runs on the event
 * loop's thread.
 */
#ifndef KIZUNA_LISTENER_H
#define KIZUNA_LISTENER_H

#include <libwebsockets.h>
#include <stdbool.h>

#include "server.h"

struct kz_listener;

/* Sets the descriptor limit to what the configuration needs (as far as allowed) and binds exactly
 * listen (HOST:PORT: an IPv4 address, [IPv6 address], or * for every address): cfg->listen for
 * the API, cfg->federation_listen for federation. Each listener counts its own connections
 * against cfg's limits. The caller owns the result and frees it with listener_free() after the
 * lws context is destroyed. NULL with a message in err.
 */
struct kz_listener *listener_open(const struct kz_config *cfg, const char *listen, char *err,
                                  size_t errlen);
/* Whether listen is HOST:PORT as listener_open takes it; if not, why in err. */
bool listener_listen_valid(const char *listen, char *err, size_t errlen);
/* Whether listen (HOST:PORT) names a loopback address (127.0.0.0/8, [::1]): only there may
 * federation go without TLS. */
bool listener_loopback(const char *listen);
/* A client address as a key for idmap (nonzero, never UINT64_MAX): what the per-address
 * limits here and the per-address request rates (conn.c) count by. */
uint64_t listener_addr_key(const char *addr);
/* The port actually bound (when the config asked for port 0). */
int listener_port(const struct kz_listener *l);
/* The process's descriptor limit as listener_open set it: give lws exactly this as
 * fd_limit_per_thread (a smaller table makes lws search it linearly on every event). */
long listener_nofile(const struct kz_listener *l);
/* Joins the event loop of vh: from now on connections are accepted and adopted as HTTP (TLS
 * if tls). -1 if lws cannot take the socket. */
int listener_start(struct kz_listener *l, struct lws_vhost *vh, bool tls);
/* Stops accepting (shutdown): new connections wait in the kernel's queue and are reset when
 * the process exits. */
void listener_stop(struct kz_listener *l);
/* The protocol entry whose callback serves the listening socket; put it in the vhost's
 * protocol list. */
extern const struct lws_protocols listener_protocol;
/* Called for every LWS_CALLBACK_WSI_DESTROY on the vhost: releases what an admitted
 * connection was counted for. Ignores any other wsi. */
void listener_forget(struct kz_listener *l, struct lws *wsi);
/* Whether an admitted connection came through another listener than l. lws 4.1 moves an HTTP
 * connection to the vhost whose name matches its Host header, or else to the first vhost "on
 * its port" (lws_select_vhost); kizunad's vhosts all have the same pseudo-port, so a request
 * on one listener can land in another listener's vhost. Every vhost refuses such a
 * connection: the API is never served on the federation port, nor federation on the API's. */
bool listener_foreign(const struct kz_listener *l, struct lws *wsi);
/* The client address of an admitted connection (as the limits and the audit log see it), or
 * NULL for a wsi the listener did not admit. Owned by the listener, valid while wsi lives. */
const char *listener_peer(struct lws *wsi);
/* A connection opened (delta 1) or closed (-1) a file for its request (a blob download, an
 * upload's staging file): counted with the connections against the descriptor limit. */
void listener_files(struct kz_listener *l, int delta);
void listener_free(struct kz_listener *l);

#endif
