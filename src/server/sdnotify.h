/* sdnotify.h: the systemd readiness protocol (sd_notify(3)) without
 * libsystemd: one datagram to the unix socket named by $NOTIFY_SOCKET. */
#ifndef SHUNT_SERVER_SDNOTIFY_H
#define SHUNT_SERVER_SDNOTIFY_H

/* Send state (e.g. "READY=1", "STOPPING=1") to $NOTIFY_SOCKET, a socket
 * path or, with a leading '@', an abstract socket name.  Returns 0 when sent
 * or when NOTIFY_SOCKET is unset, -errno otherwise (the caller logs it). */
int sdnotify_send(const char *state);

#endif
