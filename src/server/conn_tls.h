/* conn_tls.h: the TLS transport of a server connection (after STARTTLS).
 * Ciphertext is received by the connection's own io_uring recv into the
 * session's input buffer (conn_tls_recv_space, conn_tls_received) and
 * decrypted into the receive buffers (conn_tls_decrypt); the send queue
 * hands plaintext to conn_tls_submit(), which encrypts it record by record
 * straight from the reply's memory (small pieces gathered into one record)
 * and pushes each batch of records to the socket with a non-blocking send;
 * what the socket does not take waits in the session's output buffer and
 * goes out on the same ring (tls.c).  Everything runs on the connection's
 * worker thread. */
#ifndef SHUNT_SERVER_CONN_TLS_H
#define SHUNT_SERVER_CONN_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#include "engine/engine.h"
#include "datapath/stats.h"
#include "engine/sendq.h"
#include "server/rxbuf.h"
#include "server/tls.h"

struct conn_tls {
  struct tls_conn *sess;        /* NULL until conn_tls_start() */
  struct engine *eng;
  struct sendq *sq;             /* the connection's send queue, whose transport this is */
  int wfd;
  bool wsock;
  const char *peer;             /* for logs */
  const char *export;           /* for logs, once the client chose one (else NULL) */
  /* Runs after a ciphertext send completed: err 0 (the connection may pump
   * again) or -errno, the first send failure (the connection is lost; the
   * send queue is failed right after this call). */
  void (*sent)(struct conn_tls *t, int err);
  struct dp_stats *stats;       /* where its copies are counted, once an export is chosen */
  struct engine_op send_op;
  struct engine_op done_op;     /* tells the send queue, on the next turn, that all went out */
  uint8_t *stage;               /* one record's plaintext gathered from small pieces */
  uint64_t direct_seen, buffered_seen, sealed_seen;   /* the session's push counts already counted */
  size_t plain;                 /* plaintext bytes the send queue waits to hear about */
  int send_error;               /* the first send failure: everything after fails */
  bool send_busy;               /* a ciphertext send is in flight */
  bool done_pending;            /* done_op is deferred */
  bool faulted;                 /* encryption read memory that vanished: the session is dead */
  bool want_input;              /* the session waits for more ciphertext */
  bool bye_due;                 /* the session is established; close_notify not yet queued */
};

/* Prepare t (no session yet) for the connection writing to wfd through sq. */
void conn_tls_init(struct conn_tls *t, struct engine *eng, struct sendq *sq, int wfd, bool wsock,
                   const char *peer, void (*sent)(struct conn_tls *t, int err));

/* True from conn_tls_start() on: the connection's bytes are TLS records. */
static inline bool conn_tls_on(const struct conn_tls *t) { return t->sess != NULL; }

/* Start a server session over creds.  early[0..n) are bytes the client sent
 * after STARTTLS that the connection already received (the start of its
 * ClientHello); eof when its input already ended.  The caller then routes
 * its send queue's submit to conn_tls_submit().  Returns 0, or -errno
 * (logged) with no session. */
int conn_tls_start(struct conn_tls *t, const struct tls_creds *creds, const void *early, size_t n,
                   bool eof);

/* Advance the handshake (its output is sent): 0 when it completed and the
 * client was accepted (logged, with the client's identity), -EAGAIN when it
 * needs more input (want_input), or -errno when the client was refused
 * (logged; the alert goes out, no close_notify will follow). */
int conn_tls_handshake(struct conn_tls *t);

/* Where the next ciphertext recv may write and how much (only while
 * want_input); NULL when the session's input buffer is full. */
void *conn_tls_recv_space(struct conn_tls *t, size_t *len);
/* n bytes arrived at conn_tls_recv_space(). */
void conn_tls_received(struct conn_tls *t, size_t n);
/* The client closed its side (no-op without a session). */
void conn_tls_eof(struct conn_tls *t);

/* Decrypt what the session holds into rx (the unparsed bytes are first moved
 * to its start), adding the byte count to *got.  Returns 0 (want_input says
 * whether it waits for ciphertext), 1 at the end of the stream, or -EPROTO
 * (logged). */
int conn_tls_decrypt(struct conn_tls *t, struct rxbufs *rx, size_t *got);

/* The send queue's transport (struct sendq's submit): encrypt up to a
 * bounded chunk of the gathered plaintext and send it.  Runs of pieces
 * smaller than a record (reply headers, small reads) are gathered into one
 * record; a larger piece is encrypted where it lies.  Counted in stats:
 * the plaintext encrypted (tls_encrypted_bytes), the ciphertext the socket
 * took at once, and the ciphertext and gathered plaintext copied
 * (memcpy_bytes).  A SIGBUS while reading the pieces from a registered
 * mapping (common/faultguard.h: the file shrank) fails the transport
 * (-EFAULT, logged): nothing of the record being made goes out. */
int conn_tls_submit(struct conn_tls *t, const struct iovec *iov, int niov);

/* Closing: queue close_notify if the session is established and it was not
 * queued yet (not when failed: nothing more is sent).  True while ciphertext
 * is still going out (the sent callback follows); a failed connection waits
 * only for the send in flight. */
bool conn_tls_close(struct conn_tls *t, bool failed);

/* Free the session. */
void conn_tls_fini(struct conn_tls *t);

#endif
