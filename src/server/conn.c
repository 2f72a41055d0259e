/* conn.c: a client connection's state machine.  Bytes arrive by io_uring recv
 * into a bounded receive buffer (or, for a WRITE payload, straight into the
 * request's buffer); handshake bytes go to proto/handshake.c, requests to
 * proto/request.c and then the export's data path; replies leave through the
 * connection's send queue.  Memory per connection is bounded: the receive
 * buffer, plus at most max_inflight bytes of requests (reading pauses above). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "datapath/datapath.h"
#include "proto/handshake.h"
#include "proto/nbd-protocol.h"
#include "server/conn.h"
#include "server/export.h"
#include "server/request.h"
#include "server/server.h"
#include "server/worker.h"

#define RX_CAP           (PROTO_HS_MAX_UNIT + 4096)
#define MAX_INFLIGHT_REQ 1024u
#define RECV_MAX         (1u << 30)

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

enum conn_phase { CONN_HANDSHAKE, CONN_TRANSMISSION };
enum rx_state { RX_HEADER, RX_PAYLOAD, RX_DISCARD };

struct conn {
  struct worker *w;
  struct engine *eng;
  struct conn *prev, *next;
  int rfd, wfd;
  bool rsock;
  char peer[96];
  enum conn_phase phase;
  struct proto_hs *hs;
  struct proto_session session;
  struct export *export;
  struct sendq sq;
  uint8_t *rx;
  size_t rx_start, rx_end;
  struct engine_op recv_op;
  struct engine_op pump_op;
  bool recv_busy, recv_direct, pump_scheduled, cancel_sent;
  enum rx_state rx_state;
  struct request *rx_req;       /* request whose payload is arriving (or being discarded) */
  uint64_t rx_got;
  uint64_t discard_left;
  uint32_t discard_error;       /* reply for rx_req once its payload is skipped */
  size_t inflight_bytes;
  unsigned inflight_reqs;
  bool eof, closing, dead, paused, stopping;
  unsigned long long nrequests;
};

static void conn_pump(struct conn *c);

static const char *export_name(const struct conn *c)
{
  return c->export ? c->export->cfg.name : NULL;
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
  c->inflight_reqs++;
  c->inflight_bytes += cost;
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
  if (r->buf_from_datapath)
    r->export->datapath->free_buffer(r, r->buf);
  else
    free(r->buf);
  free(r->items);
  free(r->dp_priv);
  c->inflight_reqs--;
  c->inflight_bytes -= r->cost;
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

  if (err && !r->conn->dead) {
    r->conn->dead = true;
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
  if (c->dead)
    return;
  log_msg(LOG_WARN, c->peer, export_name(c), "%s at %llu+%llu failed after part of its reply was sent: disconnecting",
          proto_command_name(r->hdr.type), (unsigned long long)r->hdr.offset, (unsigned long long)r->hdr.length);
  c->dead = true;
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

static void process_handshake(struct conn *c)
{
  struct proto_buf out = { 0 };
  size_t used = 0;
  int st = proto_hs_input(c->hs, c->rx + c->rx_start, c->rx_end - c->rx_start, &used, &out);

  c->rx_start += used;
  if (out.len && send_copy(c, out.data, out.len) < 0)
    st = -ENOMEM;
  proto_buf_free(&out);
  if (st < 0) {
    log_msg(LOG_ERROR, c->peer, NULL, "handshake: %s", strerror(-st));
    c->dead = true;
  } else if (st == PROTO_HS_CLOSED) {
    log_msg(c->hs->options_seen ? LOG_INFO : LOG_WARN, c->peer, NULL, "handshake ended: %s",
            c->hs->close_reason ? c->hs->close_reason : "closed");
    c->closing = true;
  } else if (st == PROTO_HS_DONE) {
    c->session = c->hs->session;
    c->export = &c->w->srv->exports.exports[c->session.export_index];
    free(c->hs);
    c->hs = NULL;
    c->phase = CONN_TRANSMISSION;
    log_msg(LOG_INFO, c->peer, export_name(c), "transmission: %s replies%s, size %llu",
            c->session.extended ? "extended" : c->session.structured ? "structured" : "simple",
            c->session.meta_base_allocation ? ", base:allocation" : "",
            (unsigned long long)c->session.export->size);
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
  if (!err && (h->type == NBD_CMD_READ || h->type == NBD_CMD_WRITE))
    cost += h->length;
  else if (!err && h->type == NBD_CMD_BLOCK_STATUS)
    cost += 40 + 16 * 1024;
  return cost;
}

/* A READ/WRITE buffer: from the data path when it provides them. */
static void *request_buffer(struct request *r, size_t len)
{
  const struct datapath *dp = r->export->datapath;
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
      uint64_t need = r->hdr.length - c->rx_got;
      size_t k = avail < need ? avail : (size_t)need;
      memcpy((char *)r->buf + c->rx_got, c->rx + c->rx_start, k);
      stat_add(&c->export->stats.memcpy_bytes, k);
      stat_add(&c->export->stats.copied_write, k);
      c->rx_start += k;
      c->rx_got += k;
      dp_times_net(&r->times);
      if (c->rx_got < r->hdr.length) {
        if (c->export->datapath->payload_progress)   /* write what has arrived */
          c->export->datapath->payload_progress(r, c->rx_got);
        return;
      }
      stat_add(&c->export->stats.copied_write, r->hdr.length);   /* recv(2) into our buffer */
      c->rx_req = NULL;
      c->rx_state = RX_HEADER;
      c->export->datapath->execute(r);
      continue;
    }
    if (c->stopping) {
      c->closing = true;   /* shutdown: no new requests */
      return;
    }
    n = proto_request_decode(s, c->rx + c->rx_start, avail, &hdr);
    if (n == 0)
      return;
    if (n < 0) {
      log_msg(LOG_WARN, c->peer, export_name(c), "protocol violation (bad request magic or oversized payload): disconnecting");
      c->dead = true;
      return;
    }
    err = proto_request_check(s, &hdr, &act);
    size_t cost = request_cost(&hdr, err);
    if (c->inflight_reqs > 0 && (c->inflight_bytes + cost > c->w->srv->cfg->max_inflight
                                 || c->inflight_reqs >= MAX_INFLIGHT_REQ)) {
      c->paused = true;   /* resumes when a request is freed */
      return;
    }
    c->rx_start += (size_t)n;
    if (hdr.type == NBD_CMD_DISC) {
      log_msg(LOG_DEBUG, c->peer, export_name(c), "client sent NBD_CMD_DISC");
      c->closing = true;
      return;
    }
    r = request_new(c, &hdr, cost);
    if (!r) {
      log_msg(LOG_ERROR, c->peer, export_name(c), "out of memory: disconnecting");
      c->dead = true;
      return;
    }
    if (!err && (hdr.type == NBD_CMD_WRITE || (hdr.type == NBD_CMD_READ && !c->export->datapath->own_read_buffers))
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
      c->rx_state = RX_PAYLOAD;
      continue;
    }
    c->export->datapath->execute(r);
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
  } else if (c->recv_direct) {
    c->rx_got += (unsigned)res;
  } else {
    c->rx_end += (unsigned)res;
  }
  conn_pump(c);
}

static void arm_recv(struct conn *c)
{
  struct io_uring_sqe *sqe;
  void *buf;
  size_t len;

  if (c->recv_busy || c->eof || c->closing || c->dead || c->paused)
    return;
  if (c->stopping && (c->phase == CONN_HANDSHAKE || c->rx_state == RX_HEADER))
    return;
  if (c->rx_state == RX_PAYLOAD && c->rx_start == c->rx_end) {
    uint64_t need = c->rx_req->hdr.length - c->rx_got;
    buf = (char *)c->rx_req->buf + c->rx_got;
    len = need > RECV_MAX ? RECV_MAX : (size_t)need;
    c->recv_direct = true;
  } else {
    if (c->rx_start > 0) {
      memmove(c->rx, c->rx + c->rx_start, c->rx_end - c->rx_start);
      c->rx_end -= c->rx_start;
      c->rx_start = 0;
    }
    if (c->rx_end == RX_CAP) {
      /* Cannot happen: every unit we wait for fits; treat as a violation. */
      log_msg(LOG_ERROR, c->peer, export_name(c), "receive buffer full: disconnecting");
      c->dead = true;
      return;
    }
    buf = c->rx + c->rx_end;
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

/* ---- lifetime ---- */

static void conn_destroy(struct conn *c)
{
  log_msg(LOG_INFO, c->peer, export_name(c), "disconnected after %llu requests", c->nrequests);
  close(c->rfd);
  if (c->wfd != c->rfd)
    close(c->wfd);
  free(c->hs);
  free(c->rx);
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
    if (c->phase == CONN_HANDSHAKE)
      process_handshake(c);
    else
      process_transmission(c);
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
    if (c->rx_req) {   /* hung up in the middle of a WRITE payload */
      struct request *r = c->rx_req;
      c->rx_req = NULL;
      c->rx_state = RX_HEADER;
      c->dead = true;   /* nothing more can be parsed from this stream */
      log_msg(LOG_INFO, c->peer, export_name(c), "client went away in the middle of a request payload");
      if (!(c->export->datapath->payload_abort && c->export->datapath->payload_abort(r))) {
        r->finished = true;
        request_free(r);
      }   /* else writes of its first chunks are running: the data path finishes it */
    }
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
  else if (c->rx_state == RX_HEADER)
    c->closing = true;
  conn_schedule(c);
}

void conn_abort(struct conn *c)
{
  if (c->dead)
    return;
  log_msg(LOG_WARN, c->peer, export_name(c), "still busy at the end of the shutdown grace period: disconnecting");
  c->dead = true;
  /* Makes a pending send or receive on a socket fail at once. */
  shutdown(c->rfd, SHUT_RDWR);
  if (c->wfd != c->rfd)
    shutdown(c->wfd, SHUT_RDWR);
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
    c->rx = malloc(RX_CAP);
    c->hs = malloc(sizeof *c->hs);
  }
  if (!c || !c->rx || !c->hs || proto_hs_greeting(&greet) < 0) {
    if (c) { free(c->rx); free(c->hs); }
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
  bool wsock = fstat(wfd, &st) == 0 && S_ISSOCK(st.st_mode);
  snprintf(c->peer, sizeof c->peer, "%s", peer);
  c->recv_op.cb = recv_cb;
  c->pump_op.cb = pump_cb;
  proto_hs_init(c->hs, w->srv->exports.proto, w->srv->exports.n);
  sendq_init(&c->sq, c->eng, wfd, wsock, sendq_idle_cb);
  c->next = w->conns;
  if (w->conns)
    w->conns->prev = c;
  w->conns = c;
  worker_conn_added(w, c);
  log_msg(LOG_INFO, c->peer, NULL, "connected");
  send_copy(c, greet.data, greet.len);
  proto_buf_free(&greet);
  if (w->stopping)
    conn_stop(c);
  conn_schedule(c);
  return 0;
}

struct conn *conn_next(const struct conn *c)
{
  return c->next;
}
