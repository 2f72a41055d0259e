/* listener.h: opening listening sockets: TCP (IPv4 and IPv6) from HOST:PORT
 * strings, unix sockets, and sockets passed by systemd (LISTEN_FDS). */
#ifndef SHUNT_SERVER_LISTENER_H
#define SHUNT_SERVER_LISTENER_H

#include <stddef.h>
#include <sys/types.h>

/* A unix socket file this process created: removed at exit if it is still
 * the same file (device and inode). */
struct listen_unix {
  char *path;
  dev_t dev;
  ino_t ino;
};

/* A growing list of listening fds. */
struct listen_set {
  int *fds;
  size_t n;
  struct listen_unix *owned;
  size_t nowned;
};

/* Split "HOST:PORT", "[V6]:PORT", ":PORT", "PORT" (digits only), "HOST"
 * into host ("" = all addresses) and port (default 10809).  Returns 0 or
 * -EINVAL. */
int listener_split(const char *hostport, char *host, size_t hostlen, char *port, size_t portlen);

/* Bind and listen on every address HOST:PORT resolves to; prints a
 * "listening on" line for each, with the port actually bound (port 0: the
 * kernel's choice).  An empty string is refused (it would mean every
 * address).  Returns 0 or -errno with a message. */
int listener_open_tcp(struct listen_set *set, const char *hostport, char *err, size_t errlen);

/* Bind and listen on a unix socket.  A socket file at path that no server
 * answers on (a stale one) is replaced; a live server's socket, or anything
 * that is not a socket, is refused (-EADDRINUSE, -EEXIST) and left alone.
 * Returns 0 or -errno with a message. */
int listener_open_unix(struct listen_set *set, const char *path, char *err, size_t errlen);

/* Adopt sockets from systemd socket activation; returns how many (0 if none). */
int listener_socket_activation(struct listen_set *set);

/* Close all, and remove the unix socket files listener_open_unix created
 * that are still the same files (not ones another process put there). */
void listener_close_all(struct listen_set *set);

#endif
