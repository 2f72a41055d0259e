/* conn_transmission.c: a connection's requests: headers decoded by
 * proto/request.c, charged against the connection's in-flight cap and the
 * server's memory budget, WRITE payloads received (in place, copied or
 * skipped), and the request handed to the data path. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "datapath/datapath.h"
#include "proto/nbd-protocol.h"
#include "proto/request.h"
#include "server/conn_int.h"
#include "datapath/request.h"

#define MAX_INFLIGHT_REQ 1024u
/* In-flight bytes a connection may always have, whatever --memory-budget
 * others used up: one 1 MiB request and its overhead. */
#define CONN_MIN_BUDGET  (2u << 20)
/* A WRITE payload is charged against the caps as it arrives, this much at a
 * time: a header alone (a client announcing 32 MiB, then silence) holds one
 * step of them, not the length it claims. */
#define PAYLOAD_STEP     (1u << 20)

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
 * for its whole payload there, a data path that takes any buffer
 * (dp_write_in_place(): not one that writes O_DIRECT from its arena), and one that would not start writing before the
 * payload is complete anyway (at most one chunk; larger ones still stream).
 * Not under TLS, whose decryption compacts the receive buffer. */
static bool write_in_place(const struct conn *c, const struct proto_request *h)
{
  return !conn_tls_on(&c->tls) && dp_write_in_place(c->dp, &c->export->dp) && h->type == NBD_CMD_WRITE && h->length > 0
         && h->length <= RXBUF_SMALL_WRITE && (!c->dp->payload_progress || h->length <= c->export->dp.chunk);
}

void conn_transmission_input(struct conn *c)
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
      stat_add(&c->export->dp.stats.memcpy_bytes, k);
      stat_add(&c->export->dp.stats.copied_write, k);
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
      stat_add(&c->export->dp.stats.copied_write, r->hdr.length);   /* recv(2) into our buffer */
      c->rx_req = NULL;
      c->rx_state = RX_HEADER;
      dp_execute(r);
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
    r = conn_request_new(c, &hdr, cost);
    if (!r) {
      inflight_sub(c, cost);
      log_msg(LOG_ERROR, c->peer, export_name(c), "out of memory: disconnecting");
      conn_set_state(c, CONN_FAILED, "out of memory");
      return;
    }
    if (in_place) {
      struct rxbuf *pin;
      r->buf = rxbuf_pin(&c->rx, hdr.length, &pin);
      r->buf_lender = pin;
      /* recv(2) into the receive buffer; the backend write is the second
       * (and last) copy. */
      stat_add(&c->export->dp.stats.copied_write, hdr.length);
      dp_times_net(&r->times);
      dp_execute(r);
      continue;
    }
    if (!err && (hdr.type == NBD_CMD_WRITE || (hdr.type == NBD_CMD_READ && !c->dp->own_read_buffers))
        && hdr.length && !request_alloc_buffer(r, hdr.length)) {
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
