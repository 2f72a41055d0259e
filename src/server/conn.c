/* conn.c: a client connection's state machine.  Bytes arrive by io_uring recv
 * into a bounded receive buffer (or, for a large WRITE payload, straight into
 * the request's buffer); handshake bytes go to proto/handshake.c, requests to
 * proto/request.c and then the export's data path; replies leave through the
 * connection's send queue.  A small WRITE is executed from the receive buffer
 * itself (rxbuf.h).  Memory per connection is bounded: the
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
#include "proto/handshake.h"
#include "proto/nbd-protocol.h"
#include "server/conn.h"
#include "server/conn_tls.h"
#include "server/export.h"
#include "server/access.h"
#include "server/request.h"
#include "server/rxbuf.h"
#include "server/server.h"
#include "server/tls.h"
#include "server/worker.h"
#include "common/macros.h"

#define MAX_INFLIGHT_REQ 1024u
/* In-flight bytes a connection may always have, whatever --memory-budget
 * others used up: one 1 MiB request and its overhead. */
#define CONN_MIN_BUDGET  (2u << 20)
/* A WRITE payload is charged against the caps as it arrives, this much at a
 * time: a header alone (a client announcing 32 MiB, then silence) holds one
 * step of them, not the length it claims. */
#define PAYLOAD_STEP     (1u << 20)
#define RECV_MAX         (1u << 30)
/* Handshake replies buffered before the connection stops taking options
 * (a client that sends options without reading replies). */
#define HS_OUT_MAX       (64u * 1024)


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

static const char *const conn_state_names[] = {
  [CONN_HANDSHAKE] = "handshake", [CONN_STARTTLS] = "starttls",
  [CONN_TLS_HANDSHAKE] = "tls-handshake", [CONN_TRANSMISSION] = "transmission",
  [CONN_DRAINING] = "draining", [CONN_CLOSING] = "closing", [CONN_FAILED] = "failed",
  [CONN_CLOSED] = "closed",
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
  struct export *export;
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

static void conn_pump(struct conn *c);
static void conn_cut(struct conn *c);

static const char *export_name(const struct conn *c)
{
  return c->export ? c->export->cfg.name : NULL;
}

static bool conn_live(const struct conn *c)
{
  return c->state < CONN_CLOSING;
}

/* The one place the state changes (logged at debug level with why).  Among
 * the live states any move is allowed; otherwise only forward (closing to
 * failed, either to closed): asking a closing connection to close, or a
 * failed one to fail, does nothing.  True when the state changed. */
static bool conn_set_state(struct conn *c, enum conn_state to, const char *why)
{
  if (to == c->state || (!conn_live(c) && to < c->state))
    return false;
  log_msg(LOG_DEBUG, c->peer, export_name(c), "%s -> %s: %s", conn_state_names[c->state],
          conn_state_names[to], why);
  c->state = to;
  return true;
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
      stat_add(&c->export->stats.budget_waits, 1);
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

/* A request executed from b is freed. */
static void rx_unpin(struct conn *c, struct rxbuf *b)
{
  if (rxbuf_unpin(&c->rx, b))
    inflight_sub(c, RXBUF_SIZE);   /* a retired buffer is released */
}

/* Where the next recv into the receive buffers goes (rxbuf_recv_space): a
 * retired buffer counts in flight; no room disconnects.  Returns 0 or -errno
 * with the connection failed. */
static int rx_space(struct conn *c, bool in_place, void **buf, size_t *len)
{
  int r = rxbuf_recv_space(&c->rx, in_place, buf, len);

  if (r == 1)
    inflight_add(c, RXBUF_SIZE);   /* until its last request is freed (rx_unpin) */
  else if (r == -ENOMEM)
    log_msg(LOG_ERROR, c->peer, export_name(c), "out of memory for a receive buffer: disconnecting");
  else if (r < 0)
    log_msg(LOG_ERROR, c->peer, export_name(c), "receive buffer full: disconnecting");
  if (r < 0)
    conn_set_state(c, CONN_FAILED, "no room to receive");
  return r < 0 ? r : 0;
}

/* ---- requests (the API in request.h) ---- */

static struct request *request_new(struct conn *c, const struct proto_request *hdr, size_t cost)
{
  struct request *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->conn = c;
  r->eng = c->eng;
  r->session = &c->session;
  r->export = c->export;
  r->hdr = *hdr;
  r->cost = cost;
  r->share = &c->share;
  c->inflight_reqs++;   /* its cost was charged before (charge) */
  c->nrequests++;
  r->times.recv = dp_now();
  stat_add(&c->export->stats.requests, 1);
  stat_add(hdr->type == NBD_CMD_READ ? &c->export->stats.reads
           : hdr->type == NBD_CMD_WRITE ? &c->export->stats.writes : &c->export->stats.other, 1);
  return r;
}

static void request_free(struct request *r)
{
  struct conn *c = r->conn;

  if (r->hdr.type == NBD_CMD_READ || r->hdr.type == NBD_CMD_WRITE)
    dp_stats_account(&r->export->stats, &r->times, r->hdr.type == NBD_CMD_WRITE);
  if (r->rx_pin)
    rx_unpin(c, r->rx_pin);
  else if (r->buf_from_datapath)
    c->dp->free_buffer(r, r->buf);
  else
    free(r->buf);
  free(r->items);
  free(r->dp_priv);
  c->inflight_reqs--;
  inflight_sub(c, r->cost);
  free(r);
  conn_schedule(c);   /* maybe resume reading, or close */
}

struct reply_item *request_items(struct request *r, size_t n)
{
  if (r->items || n == 0)
    return NULL;
  r->items = calloc(n, sizeof *r->items);
  r->nitems = r->items ? n : 0;
  return r->items;
}

static void item_sent(struct sendq_item *sq, int err)
{
  struct reply_item *it = container_of(sq, struct reply_item, sq);
  struct request *r = it->req;

  if (err && conn_set_state(r->conn, CONN_FAILED, "a reply could not be sent")) {
    log_msg(LOG_DEBUG, r->conn->peer, export_name(r->conn), "send failed: %s", strerror(-err));
  }
  if (it->payload && !err)
    dp_times_net(&r->times);
  if (it->release)
    it->release(it, err);
  if (--r->unsent == 0 && r->finished)
    request_free(r);
}

void request_send(struct request *r, struct reply_item *it, size_t hdr_len,
                  const void *data, size_t data_len)
{
  it->req = r;
  it->sq.niov = 0;
  if (hdr_len)
    it->sq.iov[it->sq.niov++] = (struct iovec){ it->hdr, hdr_len };
  if (data_len)
    it->sq.iov[it->sq.niov++] = (struct iovec){ (void *)data, data_len };
  it->sq.done = item_sent;
  r->unsent++;
  sendq_push(&r->conn->sq, &it->sq);
}

void request_push(struct request *r, struct reply_item *it, bool held)
{
  it->req = r;
  it->sq.done = item_sent;
  it->sq.hold = held;
  r->unsent++;
  sendq_push(&r->conn->sq, &it->sq);
}

void request_send_held(struct request *r, struct reply_item *it, size_t hdr_len,
                       const void *data, size_t data_len)
{
  it->sq.niov = 0;
  if (hdr_len)
    it->sq.iov[it->sq.niov++] = (struct iovec){ it->hdr, hdr_len };
  if (data_len)
    it->sq.iov[it->sq.niov++] = (struct iovec){ (void *)data, data_len };
  request_push(r, it, true);
}

void request_release(struct request *r, struct reply_item *it)
{
  sendq_release(&r->conn->sq, &it->sq);
}

void request_fail_connection(struct request *r)
{
  struct conn *c = r->conn;
  if (c->state >= CONN_FAILED)
    return;
  log_msg(LOG_WARN, c->peer, export_name(c), "%s at %llu+%llu failed after part of its reply was sent: disconnecting",
          proto_command_name(r->hdr.type), (unsigned long long)r->hdr.offset, (unsigned long long)r->hdr.length);
  conn_set_state(c, CONN_FAILED, "a reply was cut short");
  shutdown(c->wfd, SHUT_RDWR);
  conn_schedule(c);
}

void request_finish(struct request *r)
{
  r->finished = true;
  if (r->unsent == 0)
    request_free(r);
}

void request_reply_status(struct request *r, uint32_t nbd_error, const char *msg)
{
  struct reply_item *it = &r->status_item;

  if (nbd_error)
    log_msg(LOG_DEBUG, r->conn->peer, export_name(r->conn), "%s at %llu+%llu: error %u%s%s",
            proto_command_name(r->hdr.type), (unsigned long long)r->hdr.offset,
            (unsigned long long)r->hdr.length, nbd_error, msg ? ": " : "", msg ? msg : "");
  request_send(r, it, proto_reply_status(it->hdr, r->session, &r->hdr, nbd_error, msg), NULL, 0);
  request_finish(r);
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

  c->hs_timer = OP_IDLE;
  if (res == -ETIME && c->state < CONN_TRANSMISSION) {
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
  c->hs_timer = OP_BUSY;
}

/* Disarm the timer.  True while it is armed: its completion (-ECANCELED)
 * still arrives, and pumps again. */
static bool hs_timer_stop(struct conn *c)
{
  if (c->hs_timer == OP_BUSY) {
    struct io_uring_sqe *sqe = engine_sqe(c->eng, &worker_ignore_op);
    io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)&c->hs_timer_op, 0);
    c->hs_timer = OP_CANCELLING;
  }
  return c->hs_timer != OP_IDLE;
}

static void process_handshake(struct conn *c)
{
  struct proto_buf out = { 0 };
  size_t used = 0;
  int st = proto_hs_input(c->hs, rxbuf_data(&c->rx), rxbuf_avail(&c->rx), &used, &out);

  c->rx.start += used;
  if (out.len && send_copy(c, out.data, out.len) < 0)
    st = -ENOMEM;
  proto_buf_free(&out);
  if (st < 0) {
    log_msg(LOG_ERROR, c->peer, NULL, "handshake: %s", strerror(-st));
    conn_set_state(c, CONN_FAILED, "handshake failed");
  } else if (st == PROTO_HS_STARTTLS) {
    conn_set_state(c, CONN_STARTTLS, "STARTTLS accepted");   /* TLS begins once the ACK is sent */
  } else if (st == PROTO_HS_CLOSED) {
    log_msg(c->hs->options_seen ? LOG_INFO : LOG_WARN, c->peer, NULL, "handshake ended: %s",
            c->hs->close_reason ? c->hs->close_reason : "closed");
    conn_set_state(c, CONN_CLOSING, "handshake ended");
  } else if (st == PROTO_HS_DONE) {
    hs_timer_stop(c);
    c->session = c->hs->session;
    c->export = &c->w->srv->exports.exports[c->session.export_index];
    /* Under TLS the payload must pass through GnuTLS: the copy path, whose
     * replies go through the send queue (no splice or zero-copy send). */
    c->tls.export = export_name(c);
    c->dp = conn_tls_on(&c->tls) ? &datapath_copy : c->export->datapath;
    free(c->hs);
    c->hs = NULL;
    conn_set_state(c, CONN_TRANSMISSION, "export chosen");
    log_msg(LOG_INFO, c->peer, export_name(c), "transmission: %s replies%s, size %llu%s%s",
            c->session.extended ? "extended" : c->session.structured ? "structured" : "simple",
            c->session.meta_base_allocation ? ", base:allocation" : "",
            (unsigned long long)c->session.export->size,
            conn_tls_on(&c->tls) ? ", TLS" : "", c->session.eflags & NBD_FLAG_READ_ONLY ? ", read-only" : "");
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
  return !conn_tls_on(&c->tls) && !c->dp->alloc_buffer && h->type == NBD_CMD_WRITE && h->length > 0
         && h->length <= RXBUF_SMALL_WRITE && (!c->dp->payload_progress || h->length <= c->export->chunk);
}

/* A READ/WRITE buffer: from the data path when it provides them. */
static void *request_buffer(struct request *r, size_t len)
{
  const struct datapath *dp = r->conn->dp;
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

  while (c->state == CONN_TRANSMISSION || c->state == CONN_DRAINING) {
    size_t avail = rxbuf_avail(&c->rx);
    struct proto_request hdr;
    enum proto_payload_action act;
    struct request *r;
    uint32_t err;
    int n;

    if (c->rx_state == RX_DISCARD) {
      size_t k = avail < c->discard_left ? avail : (size_t)c->discard_left;
      c->rx.start += k;
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
      memcpy((char *)r->buf + c->rx_got, rxbuf_data(&c->rx), k);
      stat_add(&c->export->stats.memcpy_bytes, k);
      stat_add(&c->export->stats.copied_write, k);
      c->rx.start += k;
      c->rx_got += k;
      dp_times_net(&r->times);
      if (c->rx_got < r->hdr.length) {
        if (c->dp->payload_progress)   /* write what has arrived */
          c->dp->payload_progress(r, c->rx_got);
        if (rxbuf_avail(&c->rx))
          continue;   /* more is here already: charge the next step */
        return;
      }
      stat_add(&c->export->stats.copied_write, r->hdr.length);   /* recv(2) into our buffer */
      c->rx_req = NULL;
      c->rx_state = RX_HEADER;
      c->dp->execute(r);
      continue;
    }
    if (c->state == CONN_DRAINING && c->rx_state == RX_HEADER) {
      conn_set_state(c, CONN_CLOSING, "server shutdown");   /* no new requests */
      return;
    }
    n = proto_request_decode(s, rxbuf_data(&c->rx), avail, &hdr);
    if (n == 0) {
      c->rx.need = proto_request_header_size(s);
      return;
    }
    if (n < 0) {
      log_msg(LOG_WARN, c->peer, export_name(c), "protocol violation (bad request magic or oversized payload): disconnecting");
      conn_set_state(c, CONN_FAILED, "protocol violation");
      return;
    }
    err = proto_request_check(s, &hdr, &act);
    bool in_place = !err && act == PROTO_PAYLOAD_RECEIVE && write_in_place(c, &hdr);
    if (in_place && avail - (size_t)n < hdr.length) {
      if (c->rx.start + (size_t)n + hdr.length <= RXBUF_SIZE) {
        c->rx.need = (size_t)n + hdr.length;   /* arm_recv receives the rest behind it */
        c->rx_state = RX_IN_PLACE;
        return;
      }
      in_place = false;   /* not expected (see rxbuf.h); the copy is still correct */
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
    c->rx.start += (size_t)n;
    c->rx_state = RX_HEADER;
    if (hdr.type == NBD_CMD_DISC) {
      inflight_sub(c, cost);
      conn_set_state(c, CONN_CLOSING, "client sent NBD_CMD_DISC");
      return;
    }
    r = request_new(c, &hdr, cost);
    if (!r) {
      inflight_sub(c, cost);
      log_msg(LOG_ERROR, c->peer, export_name(c), "out of memory: disconnecting");
      conn_set_state(c, CONN_FAILED, "out of memory");
      return;
    }
    if (in_place) {
      r->buf = rxbuf_pin(&c->rx, hdr.length, &r->rx_pin);
      /* recv(2) into the receive buffer; the backend write is the second
       * (and last) copy. */
      stat_add(&c->export->stats.copied_write, hdr.length);
      dp_times_net(&r->times);
      c->dp->execute(r);
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
    c->dp->execute(r);
  }
}

/* ---- receiving ---- */

static void recv_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct conn *c = container_of(op, struct conn, recv_op);
  (void)flags;

  c->recv_state = OP_IDLE;
  if (res == -EINTR || res == -EAGAIN || res == -ECANCELED) {
    /* retried (or, when cancelled, closed) by the pump below */
  } else if (res < 0) {
    log_msg(LOG_DEBUG, c->peer, export_name(c), "receive failed: %s", strerror(-res));
    conn_set_state(c, CONN_FAILED, "receive failed");
  } else if (res == 0) {
    c->eof = true;
    conn_tls_eof(&c->tls);
  } else if (c->recv_target == RECV_TLS) {
    conn_tls_received(&c->tls, (unsigned)res);
  } else if (c->recv_target == RECV_PAYLOAD) {
    c->rx_got += (unsigned)res;
  } else {
    c->rx.end += (unsigned)res;
  }
  if (res > 0)
    c->rx_total += (unsigned)res;
  conn_pump(c);
}

/* Cancel the recv in flight (once).  True while one is in flight: its
 * completion pumps again. */
static bool recv_cancel(struct conn *c)
{
  if (c->recv_state == OP_BUSY) {
    struct io_uring_sqe *sqe = engine_sqe(c->eng, &worker_ignore_op);
    io_uring_prep_cancel(sqe, &c->recv_op, 0);
    c->recv_state = OP_CANCELLING;
  }
  return c->recv_state != OP_IDLE;
}

static void arm_recv(struct conn *c)
{
  struct io_uring_sqe *sqe;
  void *buf;
  size_t len;

  if (c->recv_state != OP_IDLE || c->eof || !conn_live(c) || c->paused)
    return;
  if (c->state == CONN_DRAINING && c->rx_state == RX_HEADER)
    return;   /* shutdown: no new request */
  if (c->state == CONN_STARTTLS)
    return;   /* the next bytes are TLS: they wait for the session */
  if (c->state == CONN_HANDSHAKE && !sendq_idle(&c->sq))
    return;   /* option replies still unsent: resumed by sendq_idle_cb */
  if (conn_tls_on(&c->tls)) {
    /* Ciphertext into the session's input buffer, only when it asked. */
    if (!c->tls.want_input)
      return;
    if (!(buf = conn_tls_recv_space(&c->tls, &len))) {
      log_msg(LOG_ERROR, c->peer, export_name(c), "TLS input buffer full: disconnecting");
      conn_set_state(c, CONN_FAILED, "TLS input buffer full");
      return;
    }
    c->recv_target = RECV_TLS;
  } else if (c->rx_state == RX_PAYLOAD && rxbuf_avail(&c->rx) == 0) {
    uint64_t need = c->rx_charged - c->rx_got;
    if (need == 0)
      return;   /* paused until the next step is charged (payload_charge) */
    buf = (char *)c->rx_req->buf + c->rx_got;
    len = need > RECV_MAX ? RECV_MAX : (size_t)need;
    c->recv_target = RECV_PAYLOAD;
  } else {
    if (rx_space(c, c->state != CONN_HANDSHAKE, &buf, &len) < 0)
      return;
    c->recv_target = RECV_RX;
  }
  sqe = engine_sqe(c->eng, &c->recv_op);
  if (c->rsock)
    io_uring_prep_recv(sqe, c->rfd, buf, len, 0);
  else
    io_uring_prep_read(sqe, c->rfd, buf, (unsigned)len, (uint64_t)-1);
  c->recv_state = OP_BUSY;
}

/* ---- TLS transport (conn_tls.h) ---- */

/* The send queue's transport under TLS. */
static int tls_submit(struct sendq *q, const struct iovec *iov, int niov)
{
  struct conn *c = container_of(q, struct conn, sq);
  return conn_tls_submit(&c->tls, iov, niov);
}

static void tls_sent(struct conn_tls *t, int err)
{
  struct conn *c = container_of(t, struct conn, tls);

  if (err && conn_set_state(c, CONN_FAILED, "TLS send failed"))
    log_msg(LOG_DEBUG, c->peer, export_name(c), "TLS send failed: %s", strerror(-err));
  conn_schedule(c);
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

/* The STARTTLS ACK is out and no plaintext recv is in flight: start the
 * session with whatever the client already sent after the option (the
 * start of its ClientHello). */
static void tls_begin(struct conn *c)
{
  if (conn_tls_start(&c->tls, c->w->srv->tls, rxbuf_data(&c->rx), rxbuf_avail(&c->rx), c->eof) < 0) {
    conn_set_state(c, CONN_FAILED, "cannot start TLS");
    return;
  }
  c->rx.start = c->rx.end = 0;
  c->sq.submit = tls_submit;
  conn_set_state(c, CONN_TLS_HANDSHAKE, "STARTTLS ACK sent");
}

static void tls_step_handshake(struct conn *c)
{
  int r = conn_tls_handshake(&c->tls);

  if (r == -EAGAIN) {
    if (c->eof) {
      log_msg(LOG_INFO, c->peer, NULL, "client hung up during the TLS handshake");
      conn_set_state(c, CONN_CLOSING, "end of input during the TLS handshake");
    }
    return;
  }
  if (r < 0) {
    conn_set_state(c, CONN_CLOSING, "TLS refused");   /* after the alert is sent */
    return;
  }
  c->who.tls = true;
  c->who.dn = tls_conn_dn(c->tls.sess);
  c->who.psk_identity = tls_conn_psk_identity(c->tls.sess);
  conn_update_access(c);
  proto_hs_tls_started(c->hs);
  conn_set_state(c, CONN_HANDSHAKE, "TLS established");
}

/* Decrypt what the session holds into rx; returns the bytes added. */
static size_t tls_fill_rx(struct conn *c)
{
  size_t got = 0;
  int r = conn_tls_decrypt(&c->tls, &c->rx, &got);

  if (r > 0)
    c->eof = true;
  else if (r < 0)
    conn_set_state(c, CONN_FAILED, "TLS failure");
  return got;
}

/* Parse what the receive buffers hold, in the states that take it. */
static bool conn_process(struct conn *c)
{
  if (c->state == CONN_HANDSHAKE) {
    /* Options are taken only while their replies are out (a client that
     * sends options without reading replies stalls itself, not the server). */
    if (sendq_idle(&c->sq))
      process_handshake(c);
  } else if (c->state == CONN_TRANSMISSION || c->state == CONN_DRAINING) {
    process_transmission(c);
  } else {
    return false;
  }
  return true;
}

/* Feed the state machine from the transport. */
static void conn_input(struct conn *c)
{
  if (c->state == CONN_STARTTLS) {
    if (!sendq_idle(&c->sq))
      return;   /* the ACK is not out yet */
    if (recv_cancel(c))
      return;   /* a plaintext recv is in flight: its bytes come before the switch */
    tls_begin(c);
  }
  if (c->state == CONN_TLS_HANDSHAKE)
    tls_step_handshake(c);
  if (!conn_tls_on(&c->tls)) {
    conn_process(c);
    return;
  }
  /* Decrypted bytes may exceed rx: decrypt, process, repeat while both move. */
  while (c->state == CONN_HANDSHAKE || c->state == CONN_TRANSMISSION || c->state == CONN_DRAINING) {
    size_t got = tls_fill_rx(c);
    if (!conn_process(c) || !got || c->paused)
      break;
  }
}

/* ---- lifetime ---- */

static void conn_destroy(struct conn *c)
{
  conn_set_state(c, CONN_CLOSED, "all done");
  log_msg(LOG_INFO, c->peer, export_name(c), "disconnected after %llu requests", c->nrequests);
  close(c->rfd);
  if (c->wfd != c->rfd)
    close(c->wfd);
  free(c->hs);
  rxbuf_fini(&c->rx);   /* no request holds it or a retired one: none is in flight */
  free(c->access);
  conn_tls_fini(&c->tls);
  if (c->prev)
    c->prev->next = c->next;
  else
    c->w->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  worker_conn_removed(c->w, c);
  free(c);
}

/* The input ended in the middle of a WRITE payload: nothing more can be
 * parsed from this stream. */
static void conn_payload_cut(struct conn *c)
{
  struct request *r = c->rx_req;

  c->rx_req = NULL;
  c->rx_state = RX_HEADER;
  conn_set_state(c, CONN_FAILED, "input ended in a request payload");
  log_msg(LOG_INFO, c->peer, export_name(c), "client went away in the middle of a request payload");
  if (!(c->dp->payload_abort && c->dp->payload_abort(r))) {
    r->finished = true;
    request_free(r);
  }   /* else writes of its first chunks are running: the data path finishes it */
}

/* The close sequence: once the connection is closing or failed, or its
 * input ended (then what was received is still taken).  Each step that has
 * to wait returns; what it waits for pumps again. */
static void conn_wind_down(struct conn *c)
{
  if (recv_cancel(c))
    return;
  if (hs_timer_stop(c))
    return;
  if (c->rx_req)
    conn_payload_cut(c);
  if (c->inflight_reqs || !sendq_idle(&c->sq))
    return;   /* the last request freed, or the queue gone idle, pumps again */
  conn_set_state(c, CONN_CLOSING, "input ended, all answered");   /* (when still live) */
  if (conn_tls_close(&c->tls, c->state == CONN_FAILED))
    return;   /* close_notify or ciphertext still going out; tls_sent pumps again */
  if (!c->pump_scheduled)
    conn_destroy(c);
}

static void conn_pump(struct conn *c)
{
  if (conn_live(c)) {
    c->paused = false;   /* process_transmission pauses again if still over the cap */
    conn_input(c);
    arm_recv(c);
  }
  if (!conn_live(c) || c->eof)
    conn_wind_down(c);
}

static void sendq_idle_cb(struct sendq *q)
{
  struct conn *c = container_of(q, struct conn, sq);
  if (q->error)
    conn_set_state(c, CONN_FAILED, "send failed");
  conn_schedule(c);
}

void conn_stop(struct conn *c)
{
  if (c->state < CONN_TRANSMISSION || (c->state == CONN_TRANSMISSION && c->rx_state == RX_HEADER))
    conn_set_state(c, CONN_CLOSING, "server shutdown");
  else if (c->state == CONN_TRANSMISSION)
    conn_set_state(c, CONN_DRAINING, "server shutdown");
  conn_schedule(c);
}

void conn_abort(struct conn *c)
{
  /* Also when already failed: it may still wait for zero-copy sends that
   * only a reset releases. */
  if (c->state != CONN_FAILED)
    log_msg(LOG_WARN, c->peer, export_name(c), "still busy at the end of the shutdown grace period: disconnecting");
  conn_cut(c);
}

/* Cut the connection now: a pending send or receive fails at once. */
static void conn_cut(struct conn *c)
{
  conn_set_state(c, CONN_FAILED, "cut");
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
    c->hs = malloc(sizeof *c->hs);
    c->access = calloc(w->srv->exports.n ? w->srv->exports.n : 1, 1);
  }
  if (!c || rxbuf_init(&c->rx) < 0 || !c->hs || !c->access || proto_hs_greeting(&greet) < 0) {
    if (c) { rxbuf_fini(&c->rx); free(c->hs); free(c->access); }
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
  proto_hs_init(c->hs, w->srv->exports.proto, w->srv->exports.n);
  c->hs->out_max = HS_OUT_MAX;
  sendq_init(&c->sq, c->eng, wfd, c->wsock, sendq_idle_cb);
  conn_tls_init(&c->tls, c->eng, &c->sq, wfd, c->wsock, c->peer, tls_sent);
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
  bool holding = c->export && !c->timed_out   /* (in or past transmission) */
                 && (c->sq.busy || c->sq.zc_outstanding || (c->rx_req && !c->budget_wait));
  bool progress = c->sq.bytes_sent != c->stall_sent || c->rx_total != c->stall_rx
                  || c->sq.zc_outstanding != c->stall_zc;

  if (c->budget_wait && c->state != CONN_FAILED)
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
      stat_add(&c->export->stats.send_timeouts, 1);
    c->timed_out = true;
    conn_cut(c);   /* also when it already failed otherwise: its zero-copy sends need the reset */
  }
}
