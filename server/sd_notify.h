/* sd_notify.h - systemd's notify protocol without libsystemd: READY=1 once kizunad serves,
 * WATCHDOG=1 from the event loop, STOPPING=1 at shutdown. kizunad only; any thread. */
#ifndef KIZUNA_SD_NOTIFY_H
#define KIZUNA_SD_NOTIFY_H

#include <stdint.h>

/* Sends state ("READY=1", "WATCHDOG=1", ...) as one datagram to $NOTIFY_SOCKET, a path or an
 * abstract name written with a leading '@'. 0 if sent or if NOTIFY_SOCKET is unset (not run by
 * systemd: nothing to tell); -1 if it is set but the datagram could not be sent. */
int kz_sd_notify(const char *state);
/* The watchdog interval systemd asks for ($WATCHDOG_USEC, microseconds), or 0 when there is
 * none or it is meant for another process ($WATCHDOG_PID names another pid). */
int64_t kz_sd_watchdog_usec(void);

#endif
