/* transport.h - libwebsockets behind the core's struct srv_transport. kizunad only; the
 * layer's files are listed in transport_int.h. */
#ifndef KIZUNA_TRANSPORT_H
#define KIZUNA_TRANSPORT_H

#include "server.h"

struct transport;

/* Creates the listening context and fills tx with the transport's functions. The caller owns
 * the result and frees it with transport_free() after transport_run() returns. */
struct transport *transport_new(const struct kz_config *cfg, struct srv_transport *tx, char *err,
                                size_t errlen);
/* The port actually bound (useful when the config asked for port 0). */
int transport_port(const struct transport *t);
/* The federation listener's port, 0 when federation is off. */
int transport_fed_port(const struct transport *t);
/* Gives the transport the core and the worker pool it dispatches to. */
void transport_attach(struct transport *t, struct srv *srv, struct kz_workers *workers);
/* What worker threads call to wake the loop (thread-safe), and its argument. */
void (*transport_wake_fn(void))(void *);
void *transport_wake_arg(struct transport *t);
/* Loads the TLS certificates and keys (tls_cert_file, federation_tls_cert_file) again from
 * their files, for SIGHUP after a renewal: new connections get the new ones. *reloaded: how many
 * pairs. -1 with a message if one does not load (the old one stays in use). */
int transport_tls_reload(struct transport *t, int *reloaded, char *err, size_t errlen);
/* On SIGHUP, fn(arg) runs on the loop thread between two turns (kizunad reloads its
 * settings). */
void transport_on_reload(struct transport *t, void (*fn)(void *), void *arg);
/* Serves until SIGTERM or SIGINT, then commits and closes every WebSocket with a close frame.
 * Under systemd it says READY=1 first, pings the watchdog from the loop at half of
 * WATCHDOG_USEC (a stuck loop stops pinging and is restarted), and says STOPPING=1 at the
 * end. */
void transport_run(struct transport *t);
void transport_free(struct transport *t);

#endif
