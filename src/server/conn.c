/* conn.c: a client connection's state machine.  Bytes arrive by io_uring recv
 * into a bounded receive buffer (or, for a large WRITE payload, straight into
 * the request's buffer); handshake bytes go to proto/handshake.c, requests to
 * proto/request.c and then the export's data path; replies leave through the
 * connection's send queue.  A small WRITE is executed from the receive buffer
 * itself ("Receive buffers" below).  Memory per connection is bounded: the
 * receive buffer and its spares, plus at most max_inflight bytes of requests
 * and of retired receive buffers (reading pauses above). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "datapath/datapath.h"
#include "datapath/dpworker.h"
#include "datapath/request.h"
#include "proto/handshake.h"
#include "proto/nbd-protocol.h"
#include "server/conn.h"
#include "server/export.h"
#include "server/access.h"
#include "server/server.h"
#include "server/tls.h"
#include "server/worker.h"
#include "common/macros.h"

/* Receive buffers: recvs fill a buffer up to RX_CAP (the handshake's and
 * TLS's whole buffer); behind that, RX_UNIT_MAX more bytes are reserved so
 * that a request which started before RX_CAP can always complete in place. */
#define RX_CAP           (PROTO_HS_MAX_UNIT + 4096)
#define RX_SMALL_WRITE   (16u * 1024)   /* WRITEs up to this are executed in place */
#define RX_UNIT_MAX      (32u + RX_SMALL_WRITE)   /* the largest unit waited for in place */
#define RX_SIZE          (RX_CAP + RX_UNIT_MAX)
#define RX_SPARES        2u             /* unpinned buffers a connection keeps for reuse */
#define MAX_INFLIGHT_REQ 1024u
/* In-flight bytes a connection may always have, whatever --memory-budget
 * others used up: one 1 MiB request and its overhead. */
#define CONN_MIN_BUDGET  (2u << 20)
/* A WRITE payload is charged against the caps as it arrives, this much at a
 * time: a header alone (a client announcing 32 MiB, then silence) holds one
 * step of them, not the length it claims. */
#define PAYLOAD_STEP     (1u << 20)
#define RECV_MAX         (1u << 30)
#define TLS_SEND_CHUNK   (256u * 1024)   /* plaintext encrypted per send */
/* Handshake replies buffered before the connection stops taking options
 * (a client that sends options without reading replies). */
#define HS_OUT_MAX       (64u * 1024)


enum conn_phase { CONN_HANDSHAKE, CONN_TRANSMISSION };
enum rx_state { RX_HEADER, RX_PAYLOAD, RX_DISCARD };

/* A receive buffer.  Requests executed from it hold references; a buffer
 * that still has some when the connection needs room is retired (the
 * connection goes on in a fresh one) rather than compacted under them. */
struct rxbuf {
  unsigned refs;                /* requests whose payload lies in data[] */
  bool retired;                 /* no longer the connection's: recycled at refs 0 */
  uint8_t data[];               /* RX_SIZE bytes */
};

struct conn {
  struct worker *w;
  struct engine *eng;
  struct conn *prev, *next;
  int rfd, wfd;
  bool rsock, wsock;
  char peer[96];
  enum conn_phase phase;
  struct proto_hs *hs;
  struct proto_session session;
  struct export *export;
  struct sendq sq;
  struct rxbuf *rxb;            /* the current receive buffer (bytes in rxb->data) */
  size_t rx_start, rx_end;
  size_t rx_need;               /* transmission: bytes from rx_start the unit there needs */
  bool rx_waiting;              /* the unit at rx_start is a WRITE waiting for its payload in place */
  struct rxbuf *rx_spare[RX_SPARES];
  unsigned nspare;
  struct engine_op recv_op;
  struct engine_op pump_op;
  bool recv_busy, recv_direct, pump_scheduled, cancel_sent;
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
  bool budget_wait;             /* paused for --memory-budget: the worker's tick resumes it */
  uint64_t rx_total;            /* bytes received, for --send-timeout */
  uint64_t stall_sent, stall_rx;   /* progress seen at the last tick */
  unsigned stall_zc;
  uint64_t stall_since_ms;      /* since when it holds buffers without progress */
  bool timed_out;               /* cut by --send-timeout (once) */
  bool eof, closing, dead, paused, stopping;
  unsigned long long nrequests;
  const struct datapath *dp;    /* the export's, or copy under TLS */
  /* Access rules and TLS (the transport: see "TLS transport" below). */
  struct access_peer who;       /* address, and TLS identity once known */
  uint8_t *access;              /* enum proto_access per export, read by the handshake */
  struct tls_conn *tls;         /* from STARTTLS on */
  bool starttls_pending;        /* ACK queued; TLS starts once it is sent */
  bool tls_handshaking, tls_want_input, tls_send_busy, tls_failed, tls_bye_sent;
  bool recv_tls;                /* the recv in flight fills the TLS input buffer */
  int tls_send_error;
  size_t tls_plain;             /* plaintext bytes the send queue waits to hear about */
  struct engine_op tls_send_op;
  struct engine_op hs_timer_op;   /* --handshake-timeout */
  struct __kernel_timespec hs_timer_ts;
  bool hs_timer_armed, hs_timer_cancelled;
};

static void conn_pump(struct conn *c);
static void conn_cut(struct conn *c);

static const char *export_name(const struct conn *c)
{
  return c->export ? c->export->cfg.name : NULL;
}

/* In-flight bytes change: the connection's and the server's (--memory-budget). */
static void inflight_add(struct conn *c, size_t n)
{
  c->inflight_bytes += n;
  atomic_fetch_add(&c->w->srv->inflight, n);
}

static void inflight_sub(struct conn *c, size_t n)
{
  c->inflight_bytes -= n;
  atomic_fetch_sub(&c->w->srv->inflight, n);
}

/* Charge cost bytes to the connection and the server (both counts) if
 * they may be taken now: within --max-inflight when the connection has
 * other requests in flight (alone, one request always goes on), and beyond
 * CONN_MIN_BUDGET in flight (so greedy or stalled connections cannot starve
 * the others) only within the server's --memory-budget.  Otherwise the
 * connection pauses, resumed when one of its requests is freed or, for the
 * budget, by the worker's tick; false. */
static bool charge(struct conn *c, size_t cost, bool others)
{
  struct server *srv = c->w->srv;

  if (others && c->inflight_bytes + cost > srv->cfg->max_inflight) {
    c->paused = true;
    return false;
  }
  size_t before = atomic_fetch_add(&srv->inflight, cost);
  if (c->inflight_bytes + cost > CONN_MIN_BUDGET && before + cost > srv->memory_budget) {
    atomic_fetch_sub(&srv->inflight, cost);
    if (!c->budget_wait)
      stat_add(&c->export->dp.stats.budget_waits, 1);
    c->paused = c->budget_wait = true;
    return false;
  }
  c->budget_wait = false;
  c->inflight_bytes += cost;
  return true;
}

/* Before more of rx_req's payload is received: charge its next step once
 * what was charged has arrived (its other requests count against the cap).
 * False when the connection pauses instead (resumed as for a header). */
static bool payload_charge(struct conn *c)
{
  struct request *r = c->rx_req;
  uint64_t left = r->hdr.length - c->rx_charged;
  size_t more = left < PAYLOAD_STEP ? (size_t)left : PAYLOAD_STEP;

  if (c->rx_got < c->rx_charged || more == 0)
    return true;
  if (!charge(c, more, c->inflight_reqs > 1))
    return false;
  r->cost += more;
  c->rx_charged += more;
  return true;
}

static void conn_schedule(struct conn *c)
{
  if (!c->pump_scheduled) {
    c->pump_scheduled = true;
    engine_defer(c->eng, &c->pump_op, 0);
  }
}

static void pump_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct conn *c = container_of(op, struct conn, pump_op);
  (void)res; (void)flags;
  c->pump_scheduled = false;
  conn_pump(c);
}

/* ---- receive buffers ----
 * In transmission without TLS, bytes already received are never moved: a
 * small WRITE (write_in_place) waits until its whole payload is in the
 * buffer and is then executed from there, the buffer pinned until the
 * request is freed; parsing goes on behind it.  Recvs fill the buffer up to
 * RX_CAP, except that a unit (a request header, or a small WRITE with its
 * payload) that started before RX_CAP gets exactly its missing bytes, in
 * the reserve behind RX_CAP.  Once the buffer is used up, it is reused from
 * its start if nothing is pinned, or else retired, counted against
 * max_inflight until its last request is freed, and the connection goes on
 * in a spare or new buffer.  So a small WRITE costs two copies per byte:
 * recv(2) into the buffer and the backend write. */

static struct rxbuf *rx_alloc(struct conn *c)
{
  struct rxbuf *b = c->nspare ? c->rx_spare[--c->nspare] : malloc(sizeof *b + RX_SIZE);
  if (b) {
    b->refs = 0;
    b->retired = false;
  }
  return b;
}

static void rx_recycle(struct conn *c, struct rxbuf *b)
{
  if (c->nspare < RX_SPARES)
    c->rx_spare[c->nspare++] = b;
  else
    free(b);
}

/* A request executed from b is freed. */
static void rx_unpin(struct conn *c, struct rxbuf *b)
{
  if (--b->refs || !b->retired)
    return;
  inflight_sub(c, RX_SIZE);
  rx_recycle(c, b);
}

/* The receive buffer has no room for a unit it must hold: disconnect. */
static int rx_full(struct conn *c)
{
  log_msg(LOG_ERROR, c->peer, export_name(c), "receive buffer full: disconnecting");
  c->dead = true;
  return -ENOSPC;
}

/* Before a transmission recv: start over in this buffer or a fresh one when
 * everything in it is consumed and too little room is left.  Returns 0, or
 * -errno with the connection dead. */
static int rx_make_room(struct conn *c)
{
  struct rxbuf *b;

  if (c->rx_start < c->rx_end) {
    if (c->rx_start + c->rx_need <= RX_SIZE)
      return 0;   /* the unit completes in place (always: see above) */
    return rx_full(c);
  }
  if (c->rxb->refs == 0) {
    c->rx_start = c->rx_end = 0;
    return 0;
  }
  if (c->rx_end + RX_UNIT_MAX <= RX_CAP)
    return 0;   /* room for more behind the pinned requests */
  if (!(b = rx_alloc(c))) {
    log_msg(LOG_ERROR, c->peer, export_name(c), "out of memory for a receive buffer: disconnecting");
    c->dead = true;
    return -ENOMEM;
  }
  c->rxb->retired = true;
  inflight_add(c, RX_SIZE);   /* until its last request is freed (rx_unpin) */
  c->rxb = b;
  c->rx_start = c->rx_end = 0;
  return 0;
}

/* ---- the request sink (datapath/request.h): what requests tell the connection ---- */

static struct conn *sink_conn(struct request_sink *s)
{
  return container_of(s, struct conn, sink);
}

static void sink_push(struct request_sink *s, struct sendq_item *it)
{
  sendq_push(&sink_conn(s)->sq, it);
}

static void sink_release(struct request_sink *s, struct sendq_item *it)
{
  sendq_release(&sink_conn(s)->sq, it);
}

static void sink_send_failed(struct request_sink *s, int err)
{
  struct conn *c = sink_conn(s);

  if (!c->dead) {
    c->dead = true;
    log_msg(LOG_DEBUG, c->peer, export_name(c), "send failed: %s", strerror(-err));
  }
}

static void sink_fail(struct request_sink *s, struct request *r)
{
  struct conn *c = sink_conn(s);

  if (c->dead)
    return;
  log_msg(LOG_WARN, c->peer, export_name(c), "%s at %llu+%llu failed after part of its reply was sent: disconnecting",
          proto_command_name(r->hdr.type), (unsigned long long)r->hdr.offset, (unsigned long long)r->hdr.length);
  c->dead = true;
  shutdown(c->wfd, SHUT_RDWR);
  conn_schedule(c);
}

static void sink_freed(struct request_sink *s, struct request *r)
{
  struct conn *c = sink_conn(s);

  if (r->buf_lender)
    rx_unpin(c, r->buf_lender);
  c->inflight_reqs--;
  inflight_sub(c, r->cost);
  conn_schedule(c);   /* maybe resume reading, or close */
}

static const struct request_sink_ops conn_sink_ops = {
  .push = sink_push,
  .release = sink_release,
  .send_failed = sink_send_failed,
  .fail = sink_fail,
  .freed = sink_freed,
};

/* A request read off the connection; cost bytes were charged for it (charge). */
static struct request *conn_request_new(struct conn *c, const struct proto_request *hdr, size_t cost)
{
  struct request *r = request_new(&c->sink, hdr);

  if (!r)
    return NULL;
  r->cost = cost;
  c->inflight_reqs++;
  c->nrequests++;
  return r;
}

/* ---- handshake ---- */

struct hs_item {
  struct sendq_item sq;
  uint8_t data[];
};

static void hs_item_sent(struct sendq_item *sq, int err)
{
  (void)err;
  free(sq);
}

static int send_copy(struct conn *c, const uint8_t *data, size_t len)
{
  struct hs_item *it = malloc(sizeof *it + len);
  if (!it)
    return -ENOMEM;
  memcpy(it->data, data, len);
  sendq_item_reset(&it->sq);
  it->sq.iov[0] = (struct iovec){ it->data, len };
  it->sq.niov = 1;
  it->sq.done = hs_item_sent;
  sendq_push(&c->sq, &it->sq);
  return 0;
}

static void process_transmission(struct conn *c);

/* ---- handshake timeout (an io_uring timeout per connection, no thread) ---- */

static void hs_timer_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct conn *c = container_of(op, struct conn, hs_timer_op);
  (void)flags;

  c->hs_timer_armed = false;
  if (res == -ETIME && c->phase == CONN_HANDSHAKE && !c->dead) {
    log_msg(LOG_WARN, c->peer, NULL, "handshake not finished within %u s: disconnecting",
            c->w->srv->cfg->handshake_timeout);
    conn_cut(c);
  }
  conn_pump(c);
}

static void hs_timer_start(struct conn *c, unsigned seconds)
{
  struct io_uring_sqe *sqe;

  if (!seconds)
    return;
  c->hs_timer_op.cb = hs_timer_cb;
  c->hs_timer_ts = (struct __kernel_timespec){ .tv_sec = seconds };
  sqe = engine_sqe(c->eng, &c->hs_timer_op);
  io_uring_prep_timeout(sqe, &c->hs_timer_ts, 0, 0);
  c->hs_timer_armed = true;
}

/* Disarm the timer; its completion (-ECANCELED) still arrives later. */
static void hs_timer_stop(struct conn *c)
{
  if (c->hs_timer_armed && !c->hs_timer_cancelled) {
    struct io_uring_sqe *sqe = engine_sqe(c->eng, &worker_ignore_op);
    io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)&c->hs_timer_op, 0);
    c->hs_timer_cancelled = true;
  }
}

static void process_handshake(struct conn *c)
{
  struct proto_buf out = { 0 };
  size_t used = 0;
  int st = proto_hs_input(c->hs, c->rxb->data + c->rx_start, c->rx_end - c->rx_start, &used, &out);

  c->rx_start += used;
  if (out.len && send_copy(c, out.data, out.len) < 0)
    st = -ENOMEM;
  proto_buf_free(&out);
  if (st < 0) {
    log_msg(LOG_ERROR, c->peer, NULL, "handshake: %s", strerror(-st));
    c->dead = true;
  } else if (st == PROTO_HS_STARTTLS) {
    log_msg(LOG_DEBUG, c->peer, NULL, "STARTTLS accepted");
    c->starttls_pending = true;   /* TLS begins once the ACK is sent */
  } else if (st == PROTO_HS_CLOSED) {
    log_msg(c->hs->options_seen ? LOG_INFO : LOG_WARN, c->peer, NULL, "handshake ended: %s",
            c->hs->close_reason ? c->hs->close_reason : "closed");
    c->closing = true;
  } else if (st == PROTO_HS_DONE) {
    hs_timer_stop(c);
    c->session = c->hs->session;
    c->export = &c->w->srv->exports.exports[c->session.export_index];
    /* Under TLS the payload must pass through GnuTLS: the copy path, whose
     * replies go through the send queue (no splice or zero-copy send). */
    c->dp = c->tls ? dp_export_tls_path(&c->export->dp) : c->export->dp.datapath;
    c->sink.export = &c->export->dp;
    c->sink.dp = c->dp;
    free(c->hs);
    c->hs = NULL;
    c->phase = CONN_TRANSMISSION;
    log_msg(LOG_INFO, c->peer, export_name(c), "transmission: %s replies%s, size %llu%s%s",
            c->session.extended ? "extended" : c->session.structured ? "structured" : "simple",
            c->session.meta_base_allocation ? ", base:allocation" : "",
            (unsigned long long)c->session.export->size,
            c->tls ? ", TLS" : "", c->session.eflags & NBD_FLAG_READ_ONLY ? ", read-only" : "");
    process_transmission(c);
  }
}

/* ---- transmission ---- */

static const char *refusal_message(uint32_t err)
{
  switch (err) {
  case NBD_EPERM: return "export is read-only";
  case NBD_ENOMEM: return "out of memory";
  default: return "invalid request (range, alignment, size or flags)";
  }
}

static size_t request_cost(const struct proto_request *h, uint32_t err)
{
  size_t cost = sizeof(struct request);
  if (!err && h->type == NBD_CMD_READ)
    cost += h->length;
  else if (!err && h->type == NBD_CMD_WRITE)   /* the rest as it arrives: payload_charge */
    cost += h->length < PAYLOAD_STEP ? h->length : PAYLOAD_STEP;
  else if (!err && h->type == NBD_CMD_BLOCK_STATUS)
    cost += 40 + 16 * 1024;
  return cost;
}

/* A WRITE executed straight from the receive buffer: small enough to wait
 * for its whole payload there, a data path that takes any buffer (direct
 * writes from its arena), and one that would not start writing before the
 * payload is complete anyway (at most one chunk; larger ones still stream).
 * Not under TLS, whose decryption compacts the receive buffer. */
static bool write_in_place(const struct conn *c, const struct proto_request *h)
{
  return !c->tls && !c->dp->alloc_buffer && h->type == NBD_CMD_WRITE && h->length > 0
         && h->length <= RX_SMALL_WRITE && (!c->dp->payload_progress || h->length <= c->export->dp.chunk);
}

/* A READ/WRITE buffer: from the data path when it provides them. */
static void *request_buffer(struct request *r, size_t len)
{
  const struct datapath *dp = r->dp;
  if (dp->alloc_buffer && dp->free_buffer) {
    void *b = dp->alloc_buffer(r, len);
    r->buf_from_datapath = b != NULL;
    return b;
  }
  return malloc(len);
}

static void process_transmission(struct conn *c)
{
  const struct proto_session *s = &c->session;

  while (!c->dead && !c->closing) {
    size_t avail = c->rx_end - c->rx_start;
    struct proto_request hdr;
    enum proto_payload_action act;
    struct request *r;
    uint32_t err;
    int n;

    if (c->rx_state == RX_DISCARD) {
      size_t k = avail < c->discard_left ? avail : (size_t)c->discard_left;
      c->rx_start += k;
      c->discard_left -= k;
      if (c->discard_left)
        return;
      c->rx_state = RX_HEADER;
      /* Reply only now: clients (libnbd) match replies to requests whose
       * payload they have finished sending. */
      r = c->rx_req;
      c->rx_req = NULL;
      request_reply_status(r, c->discard_error, refusal_message(c->discard_error));
      continue;
    }
    if (c->rx_state == RX_PAYLOAD) {
      r = c->rx_req;
      if (!payload_charge(c))
        return;
      uint64_t need = c->rx_charged - c->rx_got;
      size_t k = avail < need ? avail : (size_t)need;
      memcpy((char *)r->buf + c->rx_got, c->rxb->data + c->rx_start, k);
      stat_add(&c->export->dp.stats.memcpy_bytes, k);
      stat_add(&c->export->dp.stats.copied_write, k);
      c->rx_start += k;
      c->rx_got += k;
      dp_times_net(&r->times);
      if (c->rx_got < r->hdr.length) {
        if (c->dp->payload_progress)   /* write what has arrived */
          c->dp->payload_progress(r, c->rx_got);
        if (c->rx_start < c->rx_end)
          continue;   /* more is here already: charge the next step */
        return;
      }
      stat_add(&c->export->dp.stats.copied_write, r->hdr.length);   /* recv(2) into our buffer */
      c->rx_req = NULL;
      c->rx_state = RX_HEADER;
      dp_execute(r);
      continue;
    }
    if (c->stopping && !c->rx_waiting) {
      c->closing = true;   /* shutdown: no new requests (one whose payload is arriving completes) */
      return;
    }
    n = proto_request_decode(s, c->rxb->data + c->rx_start, avail, &hdr);
    if (n == 0) {
      c->rx_need = proto_request_header_size(s);
      return;
    }
    if (n < 0) {
      log_msg(LOG_WARN, c->peer, export_name(c), "protocol violation (bad request magic or oversized payload): disconnecting");
      c->dead = true;
      return;
    }
    err = proto_request_check(s, &hdr, &act);
    bool in_place = !err && act == PROTO_PAYLOAD_RECEIVE && write_in_place(c, &hdr);
    if (in_place && avail - (size_t)n < hdr.length) {
      if (c->rx_start + (size_t)n + hdr.length <= RX_SIZE) {
        c->rx_need = (size_t)n + hdr.length;   /* arm_recv receives the rest behind it */
        c->rx_waiting = true;
        return;
      }
      in_place = false;   /* not expected (see "receive buffers"); the copy is still correct */
    }
    /* In place, the payload's memory is the receive buffer's (charged
     * against max_inflight once retired with requests in it). */
    size_t cost = in_place ? sizeof(struct request) : request_cost(&hdr, err);
    if (c->inflight_reqs >= MAX_INFLIGHT_REQ) {
      c->paused = true;   /* resumes when a request is freed */
      return;
    }
    if (!charge(c, cost, c->inflight_reqs > 0))
      return;
    c->rx_start += (size_t)n;
    c->rx_waiting = false;
    if (hdr.type == NBD_CMD_DISC) {
      inflight_sub(c, cost);
      log_msg(LOG_DEBUG, c->peer, export_name(c), "client sent NBD_CMD_DISC");
      c->closing = true;
      return;
    }
    r = conn_request_new(c, &hdr, cost);
    if (!r) {
      inflight_sub(c, cost);
      log_msg(LOG_ERROR, c->peer, export_name(c), "out of memory: disconnecting");
      c->dead = true;
      return;
    }
    if (in_place) {
      r->buf = c->rxb->data + c->rx_start;
      r->buf_lender = c->rxb;
      c->rxb->refs++;
      c->rx_start += hdr.length;
      /* recv(2) into the receive buffer; the backend write is the second
       * (and last) copy. */
      stat_add(&c->export->dp.stats.copied_write, hdr.length);
      dp_times_net(&r->times);
      dp_execute(r);
      continue;
    }
    if (!err && (hdr.type == NBD_CMD_WRITE || (hdr.type == NBD_CMD_READ && !c->dp->own_read_buffers))
        && hdr.length && !(r->buf = request_buffer(r, hdr.length))) {
      err = NBD_ENOMEM;
      if (act == PROTO_PAYLOAD_RECEIVE)
        act = PROTO_PAYLOAD_DISCARD;
    }
    if (err) {
      if (act != PROTO_PAYLOAD_NONE) {
        c->rx_state = RX_DISCARD;
        c->discard_left = hdr.payload;
        c->discard_error = err;
        c->rx_req = r;
        log_msg(LOG_DEBUG, c->peer, export_name(c), "%s at %llu+%llu: error %u; discarding %llu payload bytes",
                proto_command_name(hdr.type), (unsigned long long)hdr.offset, (unsigned long long)hdr.length,
                err, (unsigned long long)hdr.payload);
        continue;
      }
      request_reply_status(r, err, refusal_message(err));
      continue;
    }
    if (act == PROTO_PAYLOAD_RECEIVE) {
      c->rx_req = r;
      c->rx_got = 0;
      c->rx_charged = cost - sizeof(struct request);   /* request_cost: the first step */
      c->rx_state = RX_PAYLOAD;
      continue;
    }
    dp_execute(r);
  }
}

/* ---- receiving ---- */

static void recv_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct conn *c = container_of(op, struct conn, recv_op);
  (void)flags;

  c->recv_busy = false;
  if (res == -EINTR || res == -EAGAIN || res == -ECANCELED) {
    /* retried (or, when cancelled, closed) by the pump below */
  } else if (res < 0) {
    log_msg(LOG_DEBUG, c->peer, export_name(c), "receive failed: %s", strerror(-res));
    c->dead = true;
  } else if (res == 0) {
    c->eof = true;
    if (c->tls)
      tls_in_eof(c->tls);
  } else if (c->recv_tls) {
    tls_in_commit(c->tls, (unsigned)res);
    c->tls_want_input = false;
  } else if (c->recv_direct) {
    c->rx_got += (unsigned)res;
  } else {
    c->rx_end += (unsigned)res;
  }
  if (res > 0)
    c->rx_total += (unsigned)res;
  conn_pump(c);
}

static void arm_recv(struct conn *c)
{
  struct io_uring_sqe *sqe;
  void *buf;
  size_t len;

  if (c->recv_busy || c->eof || c->closing || c->dead || c->paused)
    return;
  if (c->stopping && (c->phase == CONN_HANDSHAKE || (c->rx_state == RX_HEADER && !c->rx_waiting)))
    return;
  if (c->starttls_pending)
    return;   /* the next bytes are TLS: they wait for the session */
  if (c->phase == CONN_HANDSHAKE && !c->tls_handshaking && !sendq_idle(&c->sq))
    return;   /* option replies still unsent: resumed by sendq_idle_cb */
  c->recv_tls = false;
  if (c->tls) {
    /* Ciphertext into the session's input buffer, only when it asked. */
    if (!c->tls_want_input)
      return;
    buf = tls_in_space(c->tls, &len);
    if (len == 0) {
      log_msg(LOG_ERROR, c->peer, export_name(c), "TLS input buffer full: disconnecting");
      c->dead = true;
      return;
    }
    c->recv_direct = false;
    c->recv_tls = true;
  } else if (c->rx_state == RX_PAYLOAD && c->rx_start == c->rx_end) {
    uint64_t need = c->rx_charged - c->rx_got;
    if (need == 0)
      return;   /* paused until the next step is charged (payload_charge) */
    buf = (char *)c->rx_req->buf + c->rx_got;
    len = need > RECV_MAX ? RECV_MAX : (size_t)need;
    c->recv_direct = true;
  } else if (c->phase == CONN_TRANSMISSION) {
    /* Up to RX_CAP, or further to the end of the unit begun before it. */
    size_t end;
    if (rx_make_room(c) < 0)
      return;
    end = c->rx_start < c->rx_end ? c->rx_start + c->rx_need : 0;
    if (end < RX_CAP)
      end = RX_CAP;
    if (end <= c->rx_end) {   /* cannot happen: rx_need said more was needed */
      rx_full(c);
      return;
    }
    buf = c->rxb->data + c->rx_end;
    len = end - c->rx_end;
    c->recv_direct = false;
  } else {
    if (c->rx_start > 0) {
      memmove(c->rxb->data, c->rxb->data + c->rx_start, c->rx_end - c->rx_start);
      c->rx_end -= c->rx_start;
      c->rx_start = 0;
    }
    if (c->rx_end == RX_CAP) {
      rx_full(c);   /* cannot happen: every unit we wait for fits */
      return;
    }
    buf = c->rxb->data + c->rx_end;
    len = RX_CAP - c->rx_end;
    c->recv_direct = false;
  }
  sqe = engine_sqe(c->eng, &c->recv_op);
  if (c->rsock)
    io_uring_prep_recv(sqe, c->rfd, buf, len, 0);
  else
    io_uring_prep_read(sqe, c->rfd, buf, (unsigned)len, (uint64_t)-1);
  c->recv_busy = true;
  c->cancel_sent = false;
}

/* ---- TLS transport ----
 * A plaintext connection receives into rx (or straight into a WRITE buffer)
 * and its send queue writes to the socket.  A TLS connection receives
 * ciphertext into the session's input buffer, decrypts into rx, and its send
 * queue hands plaintext to tls_submit(), which encrypts into the session's
 * output buffer and sends that with the same ring.  GnuTLS itself never
 * touches the socket (src/server/tls.c). */

static void tls_flush(struct conn *c);

static void tls_send_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct conn *c = container_of(op, struct conn, tls_send_op);
  (void)flags;

  c->tls_send_busy = false;
  if (res > 0) {
    tls_out_consumed(c->tls, (size_t)res);
  } else if (res != -EINTR && res != -EAGAIN) {
    c->tls_send_error = res < 0 ? res : -EPIPE;
    if (!c->dead)
      log_msg(LOG_DEBUG, c->peer, export_name(c), "TLS send failed: %s", strerror(-c->tls_send_error));
    c->dead = true;
    if (c->tls_plain) {
      c->tls_plain = 0;
      sendq_sent(&c->sq, c->tls_send_error);
    }
    conn_schedule(c);
    return;
  }
  tls_flush(c);
  conn_schedule(c);   /* maybe close, now that the output drained */
}

/* Send pending ciphertext; once all is out, tell the send queue that the
 * plaintext it handed over is gone. */
static void tls_flush(struct conn *c)
{
  struct io_uring_sqe *sqe;
  const void *p;
  size_t len;

  if (c->tls_send_busy || c->tls_send_error)
    return;
  len = tls_out_pending(c->tls, &p);
  if (len == 0) {
    if (c->tls_plain) {
      size_t n = c->tls_plain;
      c->tls_plain = 0;
      sendq_sent(&c->sq, (int)n);
    }
    return;
  }
  if (len > RECV_MAX)
    len = RECV_MAX;
  sqe = engine_sqe(c->eng, &c->tls_send_op);
  if (c->wsock)
    io_uring_prep_send(sqe, c->wfd, p, len, MSG_NOSIGNAL);
  else
    io_uring_prep_write(sqe, c->wfd, p, (unsigned)len, (uint64_t)-1);
  c->tls_send_busy = true;
}

/* The send queue's transport under TLS: encrypt up to TLS_SEND_CHUNK bytes. */
static int tls_submit(struct sendq *q, const struct iovec *iov, int niov)
{
  struct conn *c = container_of(q, struct conn, sq);
  size_t total = 0;

  if (c->tls_send_error)
    return c->tls_send_error;
  for (int i = 0; i < niov && total < TLS_SEND_CHUNK; i++) {
    size_t k = iov[i].iov_len;
    if (k > TLS_SEND_CHUNK - total)
      k = TLS_SEND_CHUNK - total;
    if (tls_conn_write(c->tls, iov[i].iov_base, k) < 0) {
      log_msg(LOG_ERROR, c->peer, export_name(c), "%s", tls_conn_error(c->tls));
      return -EPROTO;
    }
    total += k;
  }
  c->tls_plain = total;
  tls_flush(c);
  return 0;
}

/* Who the client is, for the access rules, and what it may see. */
static void conn_update_access(struct conn *c)
{
  const struct export_table *t = &c->w->srv->exports;

  for (size_t i = 0; i < t->n; i++)
    c->access[i] = (uint8_t)access_check(&t->exports[i].cfg.access, &c->who);
  if (c->hs)
    c->hs->access = c->access;
}

/* The STARTTLS ACK is out: start the session with whatever the client
 * already sent after the option (the start of its ClientHello). */
static void tls_begin(struct conn *c)
{
  int r = tls_conn_new(&c->tls, c->w->srv->tls);

  c->starttls_pending = false;
  if (r < 0) {
    log_msg(LOG_ERROR, c->peer, NULL, "cannot start TLS: %s", strerror(-r));
    c->dead = true;
    return;
  }
  if (c->rx_end > c->rx_start && tls_in_put(c->tls, c->rxb->data + c->rx_start, c->rx_end - c->rx_start) < 0) {
    c->dead = true;
    return;
  }
  c->rx_start = c->rx_end = 0;
  if (c->eof)
    tls_in_eof(c->tls);
  c->sq.submit = tls_submit;
  c->tls_handshaking = true;
}

static void tls_step_handshake(struct conn *c)
{
  char desc[128];
  int r = tls_conn_handshake(c->tls);

  tls_flush(c);
  if (r == -EAGAIN) {
    c->tls_want_input = true;
    if (c->eof) {
      log_msg(LOG_INFO, c->peer, NULL, "client hung up during the TLS handshake");
      c->tls_failed = true;
    }
    return;
  }
  c->tls_handshaking = false;
  if (r < 0) {
    /* Too late for plaintext: "the server MUST terminate the session". */
    log_msg(LOG_WARN, c->peer, NULL, "TLS refused: %s", tls_conn_error(c->tls));
    c->tls_failed = true;
    c->closing = true;   /* after the alert is sent */
    return;
  }
  c->who.tls = true;
  c->who.dn = tls_conn_dn(c->tls);
  c->who.psk_identity = tls_conn_psk_identity(c->tls);
  conn_update_access(c);
  proto_hs_tls_started(c->hs);
  log_msg(LOG_INFO, c->peer, NULL, "TLS established: %s%s%s%s%s",
          tls_conn_description(c->tls, desc, sizeof desc),
          c->who.dn ? ", client " : "", c->who.dn ? c->who.dn : "",
          c->who.psk_identity ? ", PSK identity " : "", c->who.psk_identity ? c->who.psk_identity : "");
}

/* Decrypt what the session holds into rx; returns the bytes added. */
static size_t tls_fill_rx(struct conn *c)
{
  size_t got = 0;

  if (c->rx_start > 0) {
    memmove(c->rxb->data, c->rxb->data + c->rx_start, c->rx_end - c->rx_start);
    c->rx_end -= c->rx_start;
    c->rx_start = 0;
  }
  while (c->rx_end < RX_CAP && !c->dead) {
    ssize_t n = tls_conn_read(c->tls, c->rxb->data + c->rx_end, RX_CAP - c->rx_end);
    if (n > 0) {
      c->rx_end += (size_t)n;
      got += (size_t)n;
    } else if (n == -EAGAIN) {
      c->tls_want_input = true;
      break;
    } else if (n == 0) {
      c->eof = true;
      break;
    } else {
      log_msg(LOG_WARN, c->peer, export_name(c), "%s: disconnecting", tls_conn_error(c->tls));
      c->dead = true;
    }
  }
  tls_flush(c);   /* a post-handshake message may have produced output */
  return got;
}

static void conn_process(struct conn *c)
{
  if (c->closing)
    return;   /* the handshake already ended (or shutdown began) */
  if (c->phase == CONN_HANDSHAKE) {
    /* Options are taken only while their replies are out (a client that
     * sends options without reading replies stalls itself, not the server). */
    if (sendq_idle(&c->sq))
      process_handshake(c);
  } else
    process_transmission(c);
}

/* Feed the state machines from the transport. */
static void conn_input(struct conn *c)
{
  size_t got;

  if (c->starttls_pending) {
    if (!sendq_idle(&c->sq))
      return;   /* the ACK is not out yet */
    if (c->recv_busy) {
      /* A plaintext recv is in flight: take its bytes before switching. */
      if (!c->cancel_sent) {
        struct io_uring_sqe *sqe = engine_sqe(c->eng, &worker_ignore_op);
        io_uring_prep_cancel(sqe, &c->recv_op, 0);
        c->cancel_sent = true;
      }
      return;
    }
    tls_begin(c);
  }
  if (!c->tls) {
    conn_process(c);
    return;
  }
  if (c->tls_handshaking && !c->dead)
    tls_step_handshake(c);
  if (c->tls_handshaking || c->tls_failed)
    return;
  /* Decrypted bytes may exceed rx: decrypt, process, repeat while both move. */
  do {
    got = tls_fill_rx(c);
    conn_process(c);
  } while (got && !c->dead && !c->closing && !c->paused);
}

/* ---- lifetime ---- */

static void conn_destroy(struct conn *c)
{
  log_msg(LOG_INFO, c->peer, export_name(c), "disconnected after %llu requests", c->nrequests);
  close(c->rfd);
  if (c->wfd != c->rfd)
    close(c->wfd);
  free(c->hs);
  free(c->rxb);   /* no request holds it or a retired one: none is in flight */
  while (c->nspare)
    free(c->rx_spare[--c->nspare]);
  free(c->access);
  tls_conn_free(c->tls);
  if (c->prev)
    c->prev->next = c->next;
  else
    c->w->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  worker_conn_removed(c->w, c);
  free(c);
}

static void conn_pump(struct conn *c)
{
  if (!c->dead) {
    c->paused = false;   /* process_transmission pauses again if still over the cap */
    conn_input(c);
    arm_recv(c);
  }
  if (c->dead || c->eof || c->closing) {
    if (c->recv_busy) {
      if (!c->cancel_sent) {
        struct io_uring_sqe *sqe = engine_sqe(c->eng, &worker_ignore_op);
        io_uring_prep_cancel(sqe, &c->recv_op, 0);
        c->cancel_sent = true;
      }
      return;
    }
    if (c->hs_timer_armed) {
      hs_timer_stop(c);
      return;   /* hs_timer_cb pumps again */
    }
    if (c->rx_req) {   /* hung up in the middle of a WRITE payload */
      struct request *r = c->rx_req;
      c->rx_req = NULL;
      c->rx_state = RX_HEADER;
      c->dead = true;   /* nothing more can be parsed from this stream */
      log_msg(LOG_INFO, c->peer, export_name(c), "client went away in the middle of a request payload");
      /* Unless writes of its first chunks are running (the data path then
       * finishes it), nothing was queued for it: freed now. */
      if (!(c->dp->payload_abort && c->dp->payload_abort(r)))
        request_finish(r);
    }
    if (c->tls && !c->dead && !c->tls_failed && !c->tls_handshaking && !c->tls_bye_sent
        && c->inflight_reqs == 0 && sendq_idle(&c->sq)) {
      c->tls_bye_sent = true;   /* close_notify, so the client sees a clean end */
      tls_conn_bye(c->tls);
      tls_flush(c);
    }
    if (c->tls && (c->tls_send_busy || (!c->dead && tls_out_pending(c->tls, &(const void *){ NULL }))))
      return;   /* ciphertext still going out; tls_send_cb pumps again */
    if (c->inflight_reqs == 0 && sendq_idle(&c->sq) && !c->pump_scheduled)
      conn_destroy(c);
  }
}

static void sendq_idle_cb(struct sendq *q)
{
  struct conn *c = container_of(q, struct conn, sq);
  if (q->error)
    c->dead = true;
  conn_schedule(c);
}

void conn_stop(struct conn *c)
{
  c->stopping = true;
  if (c->phase == CONN_HANDSHAKE)
    c->closing = true;
  else if (c->rx_state == RX_HEADER && !c->rx_waiting)
    c->closing = true;
  conn_schedule(c);
}

void conn_abort(struct conn *c)
{
  /* Also when already failed: it may still wait for zero-copy sends that
   * only a reset releases. */
  if (!c->dead)
    log_msg(LOG_WARN, c->peer, export_name(c), "still busy at the end of the shutdown grace period: disconnecting");
  conn_cut(c);
}

/* Cut the connection now: a pending send or receive fails at once. */
static void conn_cut(struct conn *c)
{
  c->dead = true;
  /* Makes a pending send or receive on a socket fail at once. */
  shutdown(c->rfd, SHUT_RDWR);
  if (c->wfd != c->rfd)
    shutdown(c->wfd, SHUT_RDWR);
  if (c->sq.zc_outstanding && c->wsock) {
    /* Zero-copy sends still queued in the socket (a client that does not
     * read keeps them there for as long as it acknowledges window probes)
     * are released only when the kernel drops them: a disconnect (connect
     * with AF_UNSPEC) resets the TCP connection and purges its send queue,
     * so their notifications arrive and the buffers come back. */
    struct sockaddr sa = { .sa_family = AF_UNSPEC };
    if (connect(c->wfd, &sa, sizeof sa) < 0)
      log_msg(LOG_DEBUG, c->peer, export_name(c), "disconnect: %s", strerror(errno));
  }
  if (c->sq.busy) {
    struct io_uring_sqe *sqe = engine_sqe(c->eng, &worker_ignore_op);
    io_uring_prep_cancel(sqe, &c->sq.op, 0);
  }
  conn_schedule(c);
}

int conn_start(struct worker *w, int rfd, int wfd, const char *peer)
{
  struct conn *c = calloc(1, sizeof *c);
  struct proto_buf greet = { 0 };
  struct stat st;

  if (c) {
    c->rxb = rx_alloc(c);
    c->hs = malloc(sizeof *c->hs);
    c->access = calloc(w->srv->exports.n ? w->srv->exports.n : 1, 1);
  }
  if (!c || !c->rxb || !c->hs || !c->access || proto_hs_greeting(&greet) < 0) {
    if (c) { free(c->rxb); free(c->hs); free(c->access); }
    free(c);
    proto_buf_free(&greet);
    close(rfd);
    if (wfd != rfd)
      close(wfd);
    return -ENOMEM;
  }
  c->w = w;
  c->eng = &w->eng;
  c->rfd = rfd;
  c->wfd = wfd;
  c->rsock = fstat(rfd, &st) == 0 && S_ISSOCK(st.st_mode);
  c->wsock = fstat(wfd, &st) == 0 && S_ISSOCK(st.st_mode);
  snprintf(c->peer, sizeof c->peer, "%s", peer);
  c->recv_op.cb = recv_cb;
  c->pump_op.cb = pump_cb;
  c->sink = (struct request_sink){ .ops = &conn_sink_ops, .eng = c->eng, .session = &c->session,
                                  .share = &c->share, .peer = c->peer };
  proto_hs_init(c->hs, w->srv->exports.proto, w->srv->exports.n);
  c->hs->out_max = HS_OUT_MAX;
  sendq_init(&c->sq, c->eng, wfd, c->wsock, sendq_idle_cb);
  c->tls_send_op.cb = tls_send_cb;
  if (w->srv->tls)
    c->hs->tls_mode = w->srv->cfg->tls.mode == TLS_MODE_REQUIRE ? PROTO_TLS_REQUIRE : PROTO_TLS_ON;
  access_peer_from_fd(&c->who, rfd);
  conn_update_access(c);
  c->next = w->conns;
  if (w->conns)
    w->conns->prev = c;
  w->conns = c;
  worker_conn_added(w, c);
  log_msg(LOG_INFO, c->peer, NULL, "connected");
  send_copy(c, greet.data, greet.len);
  proto_buf_free(&greet);
  hs_timer_start(c, w->srv->cfg->handshake_timeout);
  if (w->stopping)
    conn_stop(c);
  conn_schedule(c);
  return 0;
}

struct conn *conn_next(const struct conn *c)
{
  return c->next;
}

void conn_tick(struct conn *c, uint64_t now_ms)
{
  unsigned timeout = c->w->srv->cfg->send_timeout;
  /* Holding buffers the client must release: a send it does not take (or
   * zero-copy sends not yet let go), or a WRITE payload it does not finish
   * (not while the server itself holds the payload back for the budget). */
  bool holding = c->phase == CONN_TRANSMISSION && !c->timed_out
                 && (c->sq.busy || c->sq.zc_outstanding || (c->rx_req && !c->budget_wait));
  bool progress = c->sq.bytes_sent != c->stall_sent || c->rx_total != c->stall_rx
                  || c->sq.zc_outstanding != c->stall_zc;

  if (c->budget_wait && !c->dead)
    conn_schedule(c);   /* memory may have been freed by any connection */
  if (!holding || progress) {
    c->stall_sent = c->sq.bytes_sent;
    c->stall_rx = c->rx_total;
    c->stall_zc = c->sq.zc_outstanding;
    c->stall_since_ms = now_ms;
    return;
  }
  if (timeout && now_ms - c->stall_since_ms >= (uint64_t)timeout * 1000) {
    log_msg(LOG_WARN, c->peer, export_name(c), "no progress for %u s while holding buffers (%s): disconnecting",
            timeout, c->rx_req ? "a request payload not sent on" : "replies not read");
    if (c->export)
      stat_add(&c->export->dp.stats.send_timeouts, 1);
    c->timed_out = true;
    conn_cut(c);   /* also when it already failed otherwise: its zero-copy sends need the reset */
  }
}
