/* conn_int.h: what the parts of a server connection share (conn.c: its
 * life, input and close; conn_handshake.c: the handshake and STARTTLS;
 * conn_transmission.c: requests).  Internal to src/server/conn*.c. */
#ifndef SHUNT_SERVER_CONN_INT_H
#define SHUNT_SERVER_CONN_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "datapath/dpworker.h"
#include "datapath/request.h"
#include "engine/engine.h"
#include "engine/sendq.h"
#include "proto/handshake.h"
#include "proto/session.h"
#include "server/access.h"
#include "server/conn.h"
#include "server/conn_tls.h"
#include "server/export.h"
#include "server/rxbuf.h"
#include "server/server.h"
#include "server/worker.h"

struct request;
struct proto_request;

/* The connection's life.  conn_set_state() is the one place that changes
 * it.  The live states (below CONN_CLOSING) take input; a connection never
 * goes back to one once it is closing or failed. */
enum conn_state {
  CONN_HANDSHAKE,       /* options (plaintext, or over TLS once it is up) */
  CONN_STARTTLS,        /* STARTTLS accepted: its ACK goes out, the plaintext recv ends */
  CONN_TLS_HANDSHAKE,   /* the TLS handshake */
  CONN_TRANSMISSION,    /* requests */
  CONN_DRAINING,        /* server shutdown: the request being received is taken, no new one */
  CONN_CLOSING,         /* no more input: requests in flight finish, replies and close_notify go out */
  CONN_FAILED,          /* nothing more is sent or received: requests in flight finish internally */
  CONN_CLOSED,          /* released (conn_destroy) */
};

/* Transmission's parser: where the bytes at rx.start belong. */
enum rx_state {
  RX_HEADER,            /* a request header (or nothing yet): between requests */
  RX_IN_PLACE,          /* a small WRITE's header, waiting for its payload behind it */
  RX_PAYLOAD,           /* rx_req's payload, copied (or received) into its buffer */
  RX_DISCARD,           /* rx_req's payload, skipped (the request is refused) */
};

/* An io_uring operation the connection may have to cancel before closing. */
enum op_state { OP_IDLE, OP_BUSY, OP_CANCELLING };

/* Where the recv in flight puts its bytes. */
enum recv_target { RECV_RX, RECV_PAYLOAD, RECV_TLS };

struct conn {
  struct worker *w;
  struct engine *eng;
  struct conn *prev, *next;
  int rfd, wfd;
  bool rsock, wsock;
  char peer[96];
  enum conn_state state;
  struct proto_hs *hs;
  struct proto_session session;
  /* The exports as they were when it connected (held until it chose one:
   * a reload does not change what its handshake offers). */
  struct export_table *table;
  struct export *export;        /* the chosen one (a reference), from transmission on */
  struct sendq sq;
  struct rxbufs rx;             /* receive buffers (rxbuf.h) */
  struct engine_op recv_op;
  enum op_state recv_state;
  enum recv_target recv_target;
  struct engine_op pump_op;
  bool pump_scheduled;          /* pump_op is deferred: conn_pump() runs soon */
  enum rx_state rx_state;
  struct request *rx_req;       /* request whose payload is arriving (or being discarded) */
  uint64_t rx_got;
  uint64_t rx_charged;          /* payload bytes of rx_req charged so far (<= its length) */
  uint64_t discard_left;
  uint32_t discard_error;       /* reply for rx_req once its payload is skipped */
  size_t inflight_bytes;
  unsigned inflight_reqs;
  struct dp_share share;        /* its part of the worker's pipes and arena */
  struct request_sink sink;     /* how its requests reach it (datapath/request.h) */
  /* Facts that hold across states: */
  bool paused;                  /* over a cap: no recv until a request is freed (reset each pump) */
  bool budget_wait;             /* paused for --memory-budget: the worker's tick resumes it */
  bool eof;                     /* the input ended: what was received is still taken, then it closes */
  uint64_t rx_total;            /* bytes received, for --send-timeout */
  uint64_t stall_sent, stall_rx;   /* progress seen at the last tick */
  unsigned stall_zc;
  uint64_t stall_since_ms;      /* since when it holds buffers without progress */
  bool timed_out;               /* cut by --send-timeout (once) */
  unsigned long long nrequests;
  const struct datapath *dp;    /* the export's, or copy under TLS */
  /* Access rules and TLS. */
  struct access_peer who;       /* address, and TLS identity once known */
  uint8_t *access;              /* enum proto_access per export, read by the handshake */
  struct conn_tls tls;          /* the TLS transport, from STARTTLS on (conn_tls.h) */
  struct engine_op hs_timer_op;   /* --handshake-timeout */
  struct __kernel_timespec hs_timer_ts;
  enum op_state hs_timer;
};

static inline const char *export_name(const struct conn *c)
{
  return c->export ? c->export->cfg.name : NULL;
}

/* The connection's worker's slot of its export's stats (once it has one). */
static inline struct dp_stats *conn_stats(struct conn *c)
{
  return dp_export_stats(&c->export->dp, c->eng->id);
}

static inline bool conn_live(const struct conn *c)
{
  return c->state < CONN_CLOSING;
}

/* In-flight bytes change: the connection's and the server's (--memory-budget). */
static inline void inflight_add(struct conn *c, size_t n)
{
  c->inflight_bytes += n;
  atomic_fetch_add(&c->w->srv->inflight, n);
}

static inline void inflight_sub(struct conn *c, size_t n)
{
  c->inflight_bytes -= n;
  atomic_fetch_sub(&c->w->srv->inflight, n);
}

/* conn.c */

/* The one place the state changes: see conn.c.  True when it changed. */
bool conn_set_state(struct conn *c, enum conn_state to, const char *why);
/* Run conn_pump() soon (once, however often asked before it runs). */
void conn_schedule(struct conn *c);
/* Take input, arm the recv, and close when it is time. */
void conn_pump(struct conn *c);
/* Fail the connection now: a pending send or receive fails at once. */
void conn_cut(struct conn *c);
/* A request read off the connection; cost bytes were charged for it
 * (counted in flight until it is freed).  NULL on ENOMEM. */
struct request *conn_request_new(struct conn *c, const struct proto_request *hdr, size_t cost);

/* conn_handshake.c */

/* Queue a copy of data[0..len) (handshake bytes).  Returns 0 or -ENOMEM. */
int conn_send_copy(struct conn *c, const uint8_t *data, size_t len);
/* Arm --handshake-timeout (0: none); it cuts a connection still negotiating. */
void conn_hs_timer_start(struct conn *c, unsigned seconds);
/* Disarm it.  True while it is armed: its completion still comes, and pumps. */
bool conn_hs_timer_stop(struct conn *c);
/* Feed the received options to the handshake; moves to starttls, closing,
 * failed or transmission when it says so. */
void conn_handshake_input(struct conn *c);
/* Who the client is decides what it may see: recompute the access rules. */
void conn_update_access(struct conn *c);
/* STARTTLS: the ACK is out and no plaintext recv is in flight: start the
 * session (to tls-handshake, or failed). */
void conn_starttls_begin(struct conn *c);
/* Advance the TLS handshake: back to handshake once established, closing
 * when refused or when the input ended. */
void conn_starttls_step(struct conn *c);

/* conn_transmission.c */

/* Parse and start the requests the receive buffers hold, within the caps
 * (pausing the connection above them). */
void conn_transmission_input(struct conn *c);

#endif
