/* conn_handshake.c: a connection's handshake: options fed to
 * proto/handshake.c (replies queued as copies), the --handshake-timeout
 * timer, and STARTTLS (the switch to the TLS transport and its handshake). */
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macros.h"
#include "datapath/datapath.h"
#include "datapath/qos.h"
#include "proto/nbd-protocol.h"
#include "server/conn_int.h"
#include "server/worker.h"

struct hs_item {
  struct sendq_item sq;
  uint8_t data[];
};

static void hs_item_sent(struct sendq_item *sq, int err)
{
  (void)err;
  free(sq);
}

int conn_send_copy(struct conn *c, const uint8_t *data, size_t len)
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

void conn_hs_timer_start(struct conn *c, unsigned seconds)
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
bool conn_hs_timer_stop(struct conn *c)
{
  if (c->hs_timer == OP_BUSY) {
    struct io_uring_sqe *sqe = engine_sqe(c->eng, &engine_ignore_op);
    io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)&c->hs_timer_op, 0);
    c->hs_timer = OP_CANCELLING;
  }
  return c->hs_timer != OP_IDLE;
}

/* The connection's flow in its export's device scheduler: its own, or the
 * one of its client's address or TLS identity (--qos-key). */
static struct dp_flow *conn_flow(struct conn *c)
{
  char key[NI_MAXHOST + 8];
  const char *id = NULL;

  if (dp_qos.key == DP_QOS_KEY_CONN)
    return dp_flow_get(&c->export->dp, NULL);
  if (dp_qos.key == DP_QOS_KEY_TLS)
    id = c->who.dn ? c->who.dn : c->who.psk_identity;
  if (id) {
    snprintf(key, sizeof key, "tls:%.*s", NI_MAXHOST, id);
  } else if (c->who.addr.ss_family != AF_UNSPEC
             && getnameinfo((const struct sockaddr *)&c->who.addr, sizeof c->who.addr, key + 5, NI_MAXHOST,
                            NULL, 0, NI_NUMERICHOST) == 0) {
    memcpy(key, "addr:", 5);
  } else {
    return dp_flow_get(&c->export->dp, NULL);   /* no address (stdio): a flow of its own */
  }
  return dp_flow_get(&c->export->dp, key);
}

void conn_handshake_input(struct conn *c)
{
  struct proto_buf out = { 0 };
  size_t used = 0;
  int st = proto_hs_input(c->hs, rxbuf_data(&c->rx), rxbuf_avail(&c->rx), &used, &out);

  c->rx.start += used;
  if (c->hs->refused_export) {
    /* A refusal belongs in the default log: a mistyped name in a client's
     * configuration shows here first. */
    c->hs->refused_export = false;
    log_msg(LOG_INFO, c->peer, NULL, "refused export '%s': no such export", c->hs->refused_name);
  }
  if (out.len && conn_send_copy(c, out.data, out.len) < 0)
    st = -ENOMEM;
  proto_buf_free(&out);
  if (st < 0) {
    log_msg(LOG_ERROR, c->peer, NULL, "handshake: %s", strerror(-st));
    conn_set_state(c, CONN_FAILED, "handshake failed");
  } else if (st == PROTO_HS_STARTTLS) {
    conn_set_state(c, CONN_STARTTLS, "STARTTLS accepted");   /* TLS begins once the ACK is sent */
  } else if (st == PROTO_HS_CLOSED) {
    /* A client's own NBD_OPT_ABORT (a listing, a probe) is routine; a
     * refused export or a client that negotiated nothing is not. */
    const char *why = c->hs->close_reason ? c->hs->close_reason : "closed";
    log_msg(!c->hs->options_seen ? LOG_WARN : strstr(why, "ABORT") ? LOG_DEBUG : LOG_INFO,
            c->peer, NULL, "handshake ended: %s", why);
    conn_set_state(c, CONN_CLOSING, "handshake ended");
  } else if (st == PROTO_HS_DONE) {
    conn_hs_timer_stop(c);
    c->session = c->hs->session;
    /* The export outlives the table the handshake read (a reload may
     * replace it): the connection holds the export itself from now on. */
    c->export = export_get(c->table->exports[c->session.export_index]);
    c->session.export = &c->export->proto;
    export_table_put(c->table);
    c->table = NULL;
    /* Under TLS the payload must pass through GnuTLS: the copy path, whose
     * replies go through the send queue (no splice or zero-copy send); its
     * writes go O_DIRECT when the export's do (dp_export_tls_path). */
    c->tls.export = export_name(c);
    c->tls.stats = conn_stats(c);
    c->dp = conn_tls_on(&c->tls) ? dp_export_tls_path(&c->export->dp) : c->export->dp.datapath;
    c->sink.export = &c->export->dp;
    c->sink.dp = c->dp;
    c->sink.flow = conn_flow(c);
    free(c->hs);
    c->hs = NULL;
    conn_set_state(c, CONN_TRANSMISSION, "export chosen");
    log_msg(LOG_DEBUG, c->peer, export_name(c), "transmission: %s replies%s, size %llu%s%s",
            c->session.extended ? "extended" : c->session.structured ? "structured" : "simple",
            c->session.meta_base_allocation ? ", base:allocation" : "",
            (unsigned long long)c->session.export->size,
            conn_tls_on(&c->tls) ? ", TLS" : "", c->session.eflags & NBD_FLAG_READ_ONLY ? ", read-only" : "");
    conn_transmission_input(c);
  }
}

/* The send queue's transport under TLS. */
static int tls_submit(struct sendq *q, const struct iovec *iov, int niov)
{
  struct conn *c = container_of(q, struct conn, sq);
  return conn_tls_submit(&c->tls, iov, niov);
}

/* Who the client is, for the access rules, and what it may see. */
void conn_update_access(struct conn *c)
{
  const struct export_table *t = c->table;

  for (size_t i = 0; t && i < t->n; i++)
    c->access[i] = (uint8_t)access_check(&t->exports[i]->cfg.access, &c->who);
  if (c->hs)
    c->hs->access = c->access;
}

/* The STARTTLS ACK is out and no plaintext recv is in flight: start the
 * session with whatever the client already sent after the option (the
 * start of its ClientHello). */
void conn_starttls_begin(struct conn *c)
{
  if (conn_tls_start(&c->tls, c->w->srv->tls, rxbuf_data(&c->rx), rxbuf_avail(&c->rx), c->eof) < 0) {
    conn_set_state(c, CONN_FAILED, "cannot start TLS");
    return;
  }
  c->rx.start = c->rx.end = 0;
  c->sq.submit = tls_submit;
  conn_set_state(c, CONN_TLS_HANDSHAKE, "STARTTLS ACK sent");
}

void conn_starttls_step(struct conn *c)
{
  int r = conn_tls_handshake(&c->tls);

  if (r == -EAGAIN) {
    if (c->eof) {
      log_msg(LOG_DEBUG, c->peer, NULL, "client hung up during the TLS handshake");
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
