/* tls.h: libshunt's side of nbds:// (TLS after NBD_OPT_STARTTLS), with GnuTLS
 * on the connection's socket.  Credentials follow the NBD URI spec and libnbd:
 * tls-psk-file (identity from the URI's user, else the login name),
 * tls-certificates DIR (ca-cert.pem, and client-cert.pem + client-key.pem when
 * present), else the system's trusted CAs; tls-verify-peer, tls-hostname. */
#ifndef SHUNT_CLIENT_TLS_H
#define SHUNT_CLIENT_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "common/uri.h"

struct sh_tls;

/* Load the credentials the URI asks for (no I/O on the network).
 * Returns 0 or -errno with a message in err. */
int sh_tls_new(const struct nbd_uri *u, struct sh_tls **out, char *err, size_t errlen);
void sh_tls_free(struct sh_tls *t);

/* The server acknowledged STARTTLS: run the TLS handshake on fd (blocking,
 * bounded by the socket's timeouts).  Returns 0, or -EACCES (certificate or
 * key refused), -ETIMEDOUT, -EPROTO, with a message in err. */
int sh_tls_handshake(struct sh_tls *t, int fd, char *err, size_t errlen);

/* True once the handshake succeeded: the byte movers below apply. */
bool sh_tls_active(const struct sh_tls *t);

/* Decrypt into iov: bytes (> 0), 0 at the end of the stream, -EAGAIN when
 * nothing is available, -errno.  Records without application data (TLS 1.3
 * KeyUpdates, NewSessionTickets) are read past: -EAGAIN comes when the socket
 * had nothing (on a blocking socket: its receive timeout ran out), or after
 * 64 such records in a row (sh_tls_starved() false, the socket may hold
 * more).  Either way GnuTLS then holds no whole record nor decrypted bytes
 * (it reads the socket one record at a time), so poll() on the socket stays
 * a correct readiness test. */
ssize_t sh_tls_readv(struct sh_tls *t, const struct iovec *iov, int iovcnt);
/* After sh_tls_readv returned -EAGAIN: true when the socket had nothing (or
 * its receive timeout ran out), false when it stopped after many records
 * without application data (reading again makes progress). */
bool sh_tls_starved(const struct sh_tls *t);

/* Encrypt and send the first bytes of iov (at most one TLS record): bytes
 * taken, or -EAGAIN (call again with the same leading bytes), or -errno. */
ssize_t sh_tls_writev(struct sh_tls *t, const struct iovec *iov, int iovcnt);

#endif
