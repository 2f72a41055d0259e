/* conn.c: a client connection's life as a state machine (conn_int.h lists
 * the states): the recv that feeds it, the input routed by state to the
 * handshake (conn_handshake.c) or to requests (conn_transmission.c), the
 * close sequence, and the request sink (datapath/request.h) that the data
 * paths answer through.  Bytes arrive by io_uring recv into the receive
 * buffers (rxbuf.h), a large WRITE payload
 * straight into its request's buffer, or as TLS records (conn_tls.h);
 * replies leave through the connection's send queue.  Memory per connection
 * is bounded: the receive buffer and its spares, plus at most max_inflight
 * bytes of requests and of retired receive buffers (reading pauses above). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"
#include "datapath/qos.h"
#include "datapath/datapath.h"
#include "proto/nbd-protocol.h"
#include "server/conn_int.h"
#include "datapath/request.h"
#include "server/tls.h"
#include "server/worker.h"

#define RECV_MAX         (1u << 30)
/* Handshake replies buffered before the connection stops taking options
 * (a client that sends options without reading replies). */
#define HS_OUT_MAX       (64u * 1024)

static const char *const conn_state_names[] = {
  [CONN_HANDSHAKE] = "handshake", [CONN_STARTTLS] = "starttls",
  [CONN_TLS_HANDSHAKE] = "tls-handshake", [CONN_TRANSMISSION] = "transmission",
  [CONN_DRAINING] = "draining", [CONN_CLOSING] = "closing", [CONN_FAILED] = "failed",
  [CONN_CLOSED] = "closed",
};

/* The one place the state changes (logged at debug level with why).  Among
 * the live states any move is allowed; otherwise only forward (closing to
 * failed, either to closed): asking a closing connection to close, or a
 * failed one to fail, does nothing.  True when the state changed. */
bool conn_set_state(struct conn *c, enum conn_state to, const char *why)
{
  if (to == c->state || (!conn_live(c) && to < c->state))
    return false;
  log_msg(LOG_DEBUG, c->peer, export_name(c), "%s -> %s: %s", conn_state_names[c->state],
          conn_state_names[to], why);
  c->state = to;
  return true;
}

void conn_schedule(struct conn *c)
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

  if (conn_set_state(c, CONN_FAILED, "a reply could not be sent"))
    log_msg(LOG_DEBUG, c->peer, export_name(c), "send failed: %s", strerror(-err));
}

static void sink_fail(struct request_sink *s, struct request *r)
{
  struct conn *c = sink_conn(s);

  if (c->state >= CONN_FAILED)
    return;
  log_msg(LOG_WARN, c->peer, export_name(c), "%s at %llu+%llu failed after part of its reply was sent: disconnecting",
          proto_command_name(r->hdr.type), (unsigned long long)r->hdr.offset, (unsigned long long)r->hdr.length);
  conn_set_state(c, CONN_FAILED, "a reply was cut short");
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

struct request *conn_request_new(struct conn *c, const struct proto_request *hdr, size_t cost)
{
  struct request *r = request_new(&c->sink, hdr);

  if (!r)
    return NULL;
  r->cost = cost;
  c->inflight_reqs++;
  c->nrequests++;
  return r;
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
    engine_cancel(c->eng, &c->recv_op);
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

static void tls_sent(struct conn_tls *t, int err)
{
  struct conn *c = container_of(t, struct conn, tls);

  if (err && conn_set_state(c, CONN_FAILED, "TLS send failed"))
    log_msg(LOG_DEBUG, c->peer, export_name(c), "TLS send failed: %s", strerror(-err));
  conn_schedule(c);
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
      conn_handshake_input(c);
  } else if (c->state == CONN_TRANSMISSION || c->state == CONN_DRAINING) {
    conn_transmission_input(c);
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
    conn_starttls_begin(c);
  }
  if (c->state == CONN_TLS_HANDSHAKE)
    conn_starttls_step(c);
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
  log_msg(LOG_DEBUG, c->peer, export_name(c), "disconnected after %llu requests", c->nrequests);
  close(c->rfd);
  if (c->wfd != c->rfd)
    close(c->wfd);
  free(c->hs);
  rxbuf_fini(&c->rx);   /* no request holds it or a retired one: none is in flight */
  free(c->access);
  dp_flow_put(c->sink.flow);   /* none of its requests is left */
  export_table_put(c->table);
  if (c->export)
    export_put(c->export);   /* the last connection of an export a reload removed closes it */
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
  /* Unless writes of its first chunks are running (the data path then
   * finishes it), nothing was queued for it: freed now. */
  if (!dp_submit_abort(r))
    request_finish(r);
}

/* The close sequence: once the connection is closing or failed, or its
 * input ended (then what was received is still taken).  Each step that has
 * to wait returns; what it waits for pumps again. */
static void conn_wind_down(struct conn *c)
{
  if (recv_cancel(c))
    return;
  if (conn_hs_timer_stop(c))
    return;
  if (c->rx_req)
    conn_payload_cut(c);
  /* Failed, or the input ended without NBD_CMD_DISC (a hard disconnect in
   * the NBD spec's terms, "Terminating the transmission phase"): requests
   * still waiting in the scheduler would only hold the close back (for
   * queued/limit seconds behind a limit); they get NBD_ESHUTDOWN without
   * entering the device.  After NBD_CMD_DISC every request is served. */
  if (c->inflight_reqs && (c->state == CONN_FAILED || (c->eof && conn_live(c))))
    dp_flow_cancel(c->sink.flow, &c->sink);
  if (c->inflight_reqs || !sendq_idle(&c->sq))
    return;   /* the last request freed, or the queue gone idle, pumps again */
  conn_set_state(c, CONN_CLOSING, "input ended, all answered");   /* (when still live) */
  if (conn_tls_close(&c->tls, c->state == CONN_FAILED))
    return;   /* close_notify or ciphertext still going out; tls_sent pumps again */
  if (!c->pump_scheduled)
    conn_destroy(c);
}

void conn_pump(struct conn *c)
{
  if (conn_live(c)) {
    c->paused = false;   /* conn_transmission_input pauses again if still over the cap */
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
void conn_cut(struct conn *c)
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
    engine_cancel(c->eng, &c->sq.op);
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
    c->table = server_exports_get(w->srv);
    c->access = calloc(c->table->n ? c->table->n : 1, 1);
  }
  if (!c || rxbuf_init(&c->rx) < 0 || !c->hs || !c->access || proto_hs_greeting(&greet) < 0) {
    if (c) { rxbuf_fini(&c->rx); free(c->hs); free(c->access); export_table_put(c->table); }
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
  /* A new connection is told the current size of storage that can grow (rbd). */
  export_table_refresh(c->table);
  proto_hs_init(c->hs, c->table->proto, c->table->n);
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
  log_msg(LOG_DEBUG, c->peer, NULL, "connected");
  conn_send_copy(c, greet.data, greet.len);
  proto_buf_free(&greet);
  conn_hs_timer_start(c, w->srv->cfg->handshake_timeout);
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
      stat_add(&conn_stats(c)->send_timeouts, 1);
    c->timed_out = true;
    conn_cut(c);   /* also when it already failed otherwise: its zero-copy sends need the reset */
  }
}
