/* transport.h: how libshunt moves bytes on one connection: a plain TCP or
 * unix socket, or for nbds:// a TLS session (client/tls.h) behind the same
 * calls, so the handshake and request code never touch the socket directly. */
#ifndef SHUNT_CLIENT_TRANSPORT_H
#define SHUNT_CLIENT_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "common/uri.h"

struct sh_tls;

struct sh_transport {
  int fd;
  unsigned timeout_ms;   /* the last sh_transport_set_timeout (0: none) */
  struct sh_tls *tls;    /* nbds://: credentials, then the session (client/tls.h) */
};

/* Resolve and connect to the server the URI names (TCP or unix socket), blocking,
 * with timeout_ms for the connect.  Returns 0 and fills *t, or -errno with a
 * message in err.  For a TLS URI the credentials are loaded here (t->tls) and the
 * handshake code sends STARTTLS first. */
int sh_transport_dial(const struct nbd_uri *u, unsigned timeout_ms, struct sh_transport *t,
                      char *err, size_t errlen);

/* After the server acknowledged NBD_OPT_STARTTLS: the TLS handshake; from
 * then on every call below goes through TLS.  Returns 0 or -errno + err. */
int sh_transport_starttls(struct sh_transport *t, char *err, size_t errlen);

/* Apply a send/receive timeout for the blocking handshake (0 = none). */
int sh_transport_set_timeout(struct sh_transport *t, unsigned timeout_ms);
/* Switch to non-blocking mode for the transmission phase. */
int sh_transport_set_nonblock(struct sh_transport *t);

/* Blocking exact read/write of len bytes: 0, -ECONNRESET on EOF, -ETIMEDOUT, -errno. */
int sh_transport_read_full(struct sh_transport *t, void *buf, size_t len);
int sh_transport_write_full(struct sh_transport *t, const void *buf, size_t len);
/* What has already arrived, up to len bytes, without waiting (plaintext only):
 * bytes read, 0 when none (or on error or EOF).  For error messages. */
ssize_t sh_transport_read_ready(struct sh_transport *t, void *buf, size_t len);

/* One readv/writev: bytes moved, 0 on EOF (read), or -errno (-EAGAIN when the
 * non-blocking socket has nothing). */
ssize_t sh_transport_readv(struct sh_transport *t, const struct iovec *iov, int iovcnt);
ssize_t sh_transport_writev(struct sh_transport *t, const struct iovec *iov, int iovcnt);

void sh_transport_close(struct sh_transport *t);

#endif
