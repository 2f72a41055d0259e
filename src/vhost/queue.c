/* queue.c: serving one virtqueue (see queue.h).  A kick (or a completion
 * that made room) runs the queue: pop chains while fewer than its limit are
 * in flight, turn each into a request; completions push used elements, and
 * the driver is notified once per loop turn at most.  The queue lives on
 * its own worker; the connection's worker talks to it only through posted
 * messages (start, stop, a new call fd, a new memory table) and hears back
 * once it drained. */
#include <endian.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_blk.h>

#include "common/log.h"
#include "common/macros.h"
#include "datapath/datapath.h"
#include "datapath/dpexport.h"
#include "datapath/dpworker.h"
#include "datapath/qos.h"
#include "datapath/request.h"
#include "proto/nbd-protocol.h"
#include "shunt/shunt.h"
#include "vhost/blkconfig.h"
#include "vhost/device.h"
#include "vhost/vhost.h"
#include "vhost/queue.h"
#include "vhost/remote.h"
#include "vhost/vconn.h"
#include "vhost/vworker.h"
#include "virtio/inflight.h"
#include "virtio/virtio_blk.h"
#include "virtio/vring.h"

/* iovecs one chain may take (descriptors split at region boundaries take
 * one per piece). */
#define VQ_MAX_IOV (VQ_SEG_MAX + 2 + 64)

struct vqueue {
  struct vconn *c;
  struct vdev *d;
  struct vworker *w;                 /* the worker serving it */
  struct vremote *remote;            /* an NBD source: its connection (remote.h), else NULL */
  unsigned index;
  struct memtable mt;                /* its copy of the guest's memory table */
  void *reg[VU_MEM_SLOTS_MAX];       /* regions it registered on its worker's ring */
  unsigned nreg;
  struct vring_q ring;
  struct request_sink sink;
  struct dp_share share;
  int kick_fd, call_fd;
  struct engine_op kick_op;
  uint64_t kick_val;
  bool kick_armed;
  struct engine_op run_op;           /* deferred run (room freed, resubmission) */
  bool run_armed;
  struct engine_op notify_op;        /* one notification decision per loop turn */
  bool notify_armed;
  unsigned inflight;
  unsigned max_inflight;
  bool stopping;
  bool broken_logged;
  struct inflight_q infl;            /* its part of the in-flight region */
  bool has_infl;                     /* the frontend set an in-flight region */
  struct iovec iov[VQ_MAX_IOV];      /* scratch for a popped chain */
};

/* One virtio-blk request in flight. */
struct vreq {
  struct vqueue *q;
  uint16_t head;
  uint8_t *status;                   /* the status byte in guest memory */
  uint32_t written;                  /* bytes written to the writable part (used len) */
  unsigned niov;
  struct iovec iov[];                /* its data segments */
};

/* A message between the connection's worker and the queue's. */
struct qmsg {
  struct engine_op op;
  struct vqueue *q;
  struct vconn *c;                   /* drained: the connection, */
  unsigned index;                    /* the queue's index */
  uint16_t base;                     /* and its next avail index */
  int fd;                            /* a new call fd */
  struct memtable mt;                /* a new memory table */
};

static struct engine *q_eng(const struct vqueue *q)
{
  return &q->w->eng;
}

/* Run cb(msg) on engine e's thread soon.  False when out of memory. */
static bool post(struct engine *e, engine_cb cb, const struct qmsg *m)
{
  struct qmsg *copy = malloc(sizeof *copy);

  if (!copy)
    return false;
  *copy = *m;
  copy->op.cb = cb;
  engine_post(e, &copy->op, 0);
  return true;
}

static void queue_run(struct vqueue *q);

/* ---- notification ---- */

static void notify_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct vqueue *q = container_of(op, struct vqueue, notify_op);
  (void)res; (void)flags;

  q->notify_armed = false;
  if (q->call_fd >= 0 && vring_need_notify(&q->ring)) {
    uint64_t one = 1;
    if (write(q->call_fd, &one, sizeof one) < 0) {
      /* an eventfd write fails only at its counter's maximum: the driver was woken */
    }
  }
  if (q->stopping && q->inflight == 0 && !q->kick_armed && !q->run_armed)
    queue_run(q);   /* finishes the stop */
}

static void notify_later(struct vqueue *q)
{
  if (!q->notify_armed) {
    q->notify_armed = true;
    engine_defer(q_eng(q), &q->notify_op, 0);
  }
}

/* ---- completions ---- */

static void complete(struct vqueue *q, uint16_t head, uint8_t *status, uint8_t value, uint32_t written)
{
  if (status)
    __atomic_store_n(status, value, __ATOMIC_RELAXED);
  if (q->has_infl)
    inflight_put_begin(&q->infl, head);
  vring_push(&q->ring, head, written);
  if (q->has_infl)
    inflight_put_end(&q->infl, head, q->ring.used_idx);
  notify_later(q);
}

static void sink_done(struct request_sink *s, struct request *r, uint32_t nbd_error)
{
  struct vreq *v = (struct vreq *)(uintptr_t)r->hdr.cookie;
  struct vqueue *q = v->q;

  if (nbd_error)
    log_msg(LOG_DEBUG, q->c->peer, q->d->cfg->socket, "queue %u: request at %llu failed: NBD error %u",
            q->index, (unsigned long long)r->hdr.offset, nbd_error);
  (void)s;
  complete(q, v->head, v->status, nbd_error ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK,
           nbd_error ? 1 : v->written);
  free(v);
  q->inflight--;
  if (!q->run_armed) {
    q->run_armed = true;
    engine_defer(q_eng(q), &q->run_op, 0);
  }
}

static void sink_freed(struct request_sink *s, struct request *r)
{
  (void)s; (void)r;
}

static void sink_push(struct request_sink *s, struct sendq_item *it) { (void)s; (void)it; }
static void sink_release(struct request_sink *s, struct sendq_item *it) { (void)s; (void)it; }
static void sink_send_failed(struct request_sink *s, int err) { (void)s; (void)err; }
static void sink_fail(struct request_sink *s, struct request *r) { (void)s; (void)r; }

/* done set: the request layer never encodes or pushes reply bytes. */
static const struct request_sink_ops queue_sink_ops = {
  .push = sink_push,
  .release = sink_release,
  .send_failed = sink_send_failed,
  .fail = sink_fail,
  .freed = sink_freed,
  .done = sink_done,
};

/* ---- a chain becomes a request ---- */

/* A new vreq holding a copy of the data segments iov[0..n). */
static struct vreq *vreq_new(struct vqueue *q, const struct iovec *iov, unsigned n)
{
  struct vreq *v = malloc(sizeof *v + (n ? n : 1) * sizeof v->iov[0]);

  if (!v)
    return NULL;
  v->q = q;
  v->niov = n;
  if (n)
    memcpy(v->iov, iov, n * sizeof *iov);
  return v;
}

/* Fail a chain that never became a request. */
static void chain_fail(struct vqueue *q, uint16_t head, uint8_t *status, uint8_t value)
{
  atomic_fetch_add(&q->d->bad_requests, 1);
  complete(q, head, status, value, status ? 1 : 0);
}

/* The NBD command of a parsed virtio-blk request (hdr filled), or false
 * for a request answered here (GET_ID). */
static bool to_nbd(const struct vblk_req *b, const struct vblk_seg *seg, struct proto_request *hdr)
{
  switch (b->type) {
  case VIRTIO_BLK_T_IN:
  case VIRTIO_BLK_T_OUT:
    hdr->type = b->type == VIRTIO_BLK_T_IN ? NBD_CMD_READ : NBD_CMD_WRITE;
    hdr->offset = b->sector * VBLK_SECTOR;
    hdr->length = b->len;
    return true;
  case VIRTIO_BLK_T_FLUSH:
    hdr->type = NBD_CMD_FLUSH;
    return true;
  case VIRTIO_BLK_T_DISCARD:
  case VIRTIO_BLK_T_WRITE_ZEROES:
    /* One segment (max_discard_seg = max_write_zeroes_seg = 1). */
    hdr->type = b->type == VIRTIO_BLK_T_DISCARD ? NBD_CMD_TRIM : NBD_CMD_WRITE_ZEROES;
    if (b->type == VIRTIO_BLK_T_WRITE_ZEROES && !(seg->flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP))
      hdr->flags |= NBD_CMD_FLAG_NO_HOLE;
    hdr->offset = seg->sector * VBLK_SECTOR;
    hdr->length = (uint64_t)seg->num_sectors * VBLK_SECTOR;
    return true;
  }
  return false;
}

/* ---- an NBD source ---- */

static void remote_done(const struct shunt_result *res)
{
  struct vreq *v = res->user;
  struct vqueue *q = v->q;
  struct dp_stats *st = dp_export_stats(&q->d->dx, q->w->id);   /* this worker's slot */

  if (res->error) {
    log_msg(LOG_DEBUG, q->c->peer, q->d->cfg->socket, "queue %u: %s", q->index, res->message);
  } else {
    stat_add(&st->requests, 1);
    if (res->cmd == SHUNT_READ) {
      stat_add(&st->reads, 1);
      stat_add(&st->bytes_read, res->length);
    } else if (res->cmd == SHUNT_WRITE) {
      stat_add(&st->writes, 1);
      stat_add(&st->bytes_written, res->length);
    } else {
      stat_add(&st->other, 1);
    }
  }
  complete(q, v->head, v->status, res->error ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK, res->error ? 1 : v->written);
  free(v);
  q->inflight--;
  if (!q->run_armed) {
    q->run_armed = true;
    engine_defer(q_eng(q), &q->run_op, 0);
  }
}

/* Send request b (its data segments in v) to the NBD source: a READ is
 * received straight into the guest's pages, a WRITE sent from them. */
static void remote_submit(struct vqueue *q, const struct vblk_req *b, const struct vblk_seg *seg, struct vreq *v)
{
  struct shunt_handle *h = q->remote->h;
  uint64_t off = seg->sector * VBLK_SECTOR, len = (uint64_t)seg->num_sectors * VBLK_SECTOR;
  int64_t r = -EINVAL;

  q->inflight++;
  switch (b->type) {
  case VIRTIO_BLK_T_IN:
    r = shunt_aio_pread(h, v->iov, (int)v->niov, b->sector * VBLK_SECTOR, 0, remote_done, v);
    break;
  case VIRTIO_BLK_T_OUT:
    r = shunt_aio_pwrite(h, v->iov, (int)v->niov, b->sector * VBLK_SECTOR, 0, remote_done, v);
    break;
  case VIRTIO_BLK_T_FLUSH:
    r = shunt_aio_flush(h, remote_done, v);
    break;
  case VIRTIO_BLK_T_DISCARD:
    r = shunt_aio_trim(h, off, len, 0, remote_done, v);
    break;
  case VIRTIO_BLK_T_WRITE_ZEROES:
    r = shunt_aio_zero(h, off, len, (seg->flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) ? 0 : SHUNT_CMD_NO_HOLE,
                       remote_done, v);
    break;
  }
  if (r < 0) {
    q->inflight--;
    log_msg(LOG_DEBUG, q->c->peer, q->d->cfg->socket, "queue %u: request refused: %s", q->index,
            shunt_last_error(h));
    complete(q, v->head, v->status, VIRTIO_BLK_S_IOERR, 1);
    free(v);
  }
}

/* Turn chain c (iovecs in q->iov) into a request and run it. */
static void chain_run(struct vqueue *q, const struct vring_chain *c)
{
  struct vblk_req b;
  struct vblk_seg seg = { 0 };
  struct proto_request hdr = { 0 };
  struct vreq *v;
  struct request *r;
  int st = vblk_parse(&q->d->blk, q->iov, c, &seg, 1, &b);

  if (st < 0) {
    chain_fail(q, c->head, NULL, 0);   /* no status byte: nothing to answer with */
    return;
  }
  if (st != VIRTIO_BLK_S_OK) {
    chain_fail(q, c->head, b.status, (uint8_t)st);
    return;
  }
  if (b.type == VIRTIO_BLK_T_GET_ID) {
    uint32_t n = vblk_fill_id(&b, q->d->cfg->serial);
    complete(q, c->head, b.status, VIRTIO_BLK_S_OK, vblk_used_len(&b, VIRTIO_BLK_S_OK, n));
    return;
  }
  if (!to_nbd(&b, &seg, &hdr)) {
    chain_fail(q, c->head, b.status, VIRTIO_BLK_S_UNSUPP);
    return;
  }
  if (!(v = vreq_new(q, b.data, b.type == VIRTIO_BLK_T_IN || b.type == VIRTIO_BLK_T_OUT ? b.ndata : 0))) {
    complete(q, c->head, b.status, VIRTIO_BLK_S_IOERR, 1);
    return;
  }
  v->head = c->head;
  v->status = b.status;
  v->written = vblk_used_len(&b, VIRTIO_BLK_S_OK, 0);
  if (q->remote) {
    remote_submit(q, &b, &seg, v);
    return;
  }
  hdr.cookie = (uintptr_t)v;
  if (!(r = request_new(&q->sink, &hdr))) {
    free(v);
    complete(q, c->head, b.status, VIRTIO_BLK_S_IOERR, 1);
    return;
  }
  r->mem_iov = v->iov;
  r->mem_niov = v->niov;
  q->inflight++;
  dp_submit(r);   /* when the device's scheduler lets it in */
}

/* ---- running ---- */

static void drained_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct qmsg *m = container_of(op, struct qmsg, op);
  (void)res; (void)flags;

  vconn_queue_drained(m->c, m->index, m->base);
  free(m);
}

static bool registered(const struct vqueue *q, const void *host)
{
  for (unsigned i = 0; i < q->nreg; i++)
    if (q->reg[i] == host)
      return true;
  return false;
}

static bool in_table(const struct memtable *mt, const void *host)
{
  for (unsigned i = 0; i < mt->n; i++)
    if (mt->r[i].host == host)
      return true;
  return false;
}

/* Register the regions of the queue's table with its worker's ring (a
 * region another queue of the worker registered already is used as it is)
 * and unregister those it registered that the table no longer has. */
static void mem_sync(struct vqueue *q)
{
  for (unsigned i = 0; i < q->nreg;)
    if (!in_table(&q->mt, q->reg[i])) {
      dp_mem_unregister(q_eng(q), q->reg[i]);
      q->reg[i] = q->reg[--q->nreg];
    } else {
      i++;
    }
  for (unsigned i = 0; i < q->mt.n; i++) {
    const struct mt_region *r = &q->mt.r[i];
    int rc;
    if (registered(q, r->host) || q->nreg == VU_MEM_SLOTS_MAX)
      continue;
    rc = dp_mem_register(q_eng(q), r->host, (size_t)r->size);
    if (rc == 0) {
      q->reg[q->nreg++] = r->host;
    } else if (rc != -EEXIST && !q->w->mem_register_refused) {
      q->w->mem_register_refused = true;
      log_msg(LOG_INFO, q->c->peer, q->d->cfg->socket, "guest memory cannot be registered with io_uring (%s): "
              "O_DIRECT reads and writes use it unregistered (said once per worker)", strerror(-rc));
    }
  }
}

/* The stop is complete once nothing is in flight or armed: the queue goes
 * and its connection hears of it on its own worker. */
static bool stop_finished(struct vqueue *q)
{
  struct vworker *w = q->w;
  struct qmsg m = { .c = q->c, .index = q->index, .base = vring_base(&q->ring) };

  if (!q->stopping || q->inflight || q->kick_armed || q->run_armed || q->notify_armed)
    return false;
  if (q->kick_fd >= 0)
    close(q->kick_fd);
  if (q->call_fd >= 0)
    close(q->call_fd);
  for (unsigned i = 0; i < q->nreg; i++)
    dp_mem_unregister(q_eng(q), q->reg[i]);
  free(q);
  while (!post(&m.c->d->w->eng, drained_cb, &m))
    usleep(1000);   /* the connection cannot end without it */
  atomic_fetch_sub(&w->nhosted, 1);
  return true;
}

/* Pop and start chains while the queue may have more in flight. */
static void queue_pop(struct vqueue *q)
{
  vring_kick_disable(&q->ring);
  for (;;) {
    struct vring_chain c;
    int r;
    if (q->inflight >= q->max_inflight)
      return;   /* a completion runs the queue again */
    r = vring_pop(&q->ring, q->iov, VQ_MAX_IOV, VQ_MAX_BYTES + 4096, &c);
    if ((r == 1 || r == -EINVAL) && q->has_infl)
      inflight_mark(&q->infl, c.head);
    if (r == 1) {
      chain_run(q, &c);
    } else if (r == -EINVAL) {
      /* Answered with IOERR where its status byte can be found, so that
       * the driver sees an error rather than waiting for a status. */
      log_msg(LOG_DEBUG, q->c->peer, q->d->cfg->socket, "queue %u: bad descriptor chain (head %u): %s",
              q->index, c.head, q->ring.why);
      uint8_t *st = vring_chain_last_writable(&q->ring, c.head);
      chain_fail(q, c.head, st, VIRTIO_BLK_S_IOERR);
    } else if (r == 0) {
      if (!vring_kick_enable(&q->ring))
        return;
    } else {
      if (!q->broken_logged) {
        q->broken_logged = true;
        atomic_fetch_add(&q->d->broken_queues, 1);
        log_msg(LOG_WARN, q->c->peer, q->d->cfg->socket, "queue %u broken: %s; it serves nothing more "
                "until the frontend sets it up again", q->index, q->ring.why);
      }
      return;
    }
  }
}

static void queue_run(struct vqueue *q)
{
  if (stop_finished(q) || q->stopping)
    return;
  queue_pop(q);
  if (q->remote)
    vremote_drive(q->remote, q_eng(q));
}

static void run_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct vqueue *q = container_of(op, struct vqueue, run_op);
  (void)res; (void)flags;
  q->run_armed = false;
  queue_run(q);
}

static void arm_kick(struct vqueue *q)
{
  struct io_uring_sqe *sqe = engine_sqe(q_eng(q), &q->kick_op);
  io_uring_prep_read(sqe, q->kick_fd, &q->kick_val, sizeof q->kick_val, 0);
  q->kick_armed = true;
}

static void kick_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct vqueue *q = container_of(op, struct vqueue, kick_op);
  (void)flags;

  q->kick_armed = false;
  if (q->stopping) {
    stop_finished(q);
    return;
  }
  if (res < 0 && res != -EINTR && res != -EAGAIN) {
    log_msg(LOG_WARN, q->c->peer, q->d->cfg->socket, "queue %u: kick eventfd read failed: %s",
            q->index, strerror(-res));
    return;   /* the queue waits for its stop */
  }
  arm_kick(q);
  queue_run(q);
}

/* Resubmit what the in-flight region says a previous back end had popped
 * and not completed, in submission order; the ring goes on after them. */
static void resubmit(struct vqueue *q)
{
  struct inflight_entry *e = calloc(q->ring.num, sizeof *e);
  unsigned n;

  if (!e) {
    log_msg(LOG_WARN, q->c->peer, q->d->cfg->socket, "queue %u: no memory to read the in-flight region", q->index);
    return;
  }
  n = inflight_recover(&q->infl, q->ring.used_idx, q->ring.num, e, q->ring.num);
  if (n)
    log_msg(LOG_INFO, q->c->peer, q->d->cfg->socket, "queue %u: resubmitting %u requests left in flight",
            q->index, n);
  vring_set_base(&q->ring, (uint16_t)(q->ring.used_idx + n));
  for (unsigned i = 0; i < n; i++) {
    struct vring_chain c;
    int r = vring_chain_at(&q->ring, e[i].head, q->iov, VQ_MAX_IOV, VQ_MAX_BYTES + 4096, &c);
    if (r == 1)
      chain_run(q, &c);
    else
      chain_fail(q, e[i].head, vring_chain_last_writable(&q->ring, e[i].head), VIRTIO_BLK_S_IOERR);
  }
  free(e);
}

static void start_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct qmsg *m = container_of(op, struct qmsg, op);
  struct vqueue *q = m->q;
  (void)res; (void)flags;

  free(m);
  mem_sync(q);
  if (q->has_infl)
    resubmit(q);
  arm_kick(q);
  /* Chains made available before the kick fd was set get no kick. */
  q->run_armed = true;
  engine_defer(q_eng(q), &q->run_op, 0);
}

int vqueue_start(struct vconn *c, unsigned index, const struct vu_vring_conf *vc, struct vqueue **out)
{
  struct vdev *d = c->d;
  struct vhost *vh = d->vh;
  struct vqueue *q = calloc(1, sizeof *q);
  struct qmsg m;
  int r;

  if (!q)
    return -ENOMEM;
  q->c = c;
  q->d = d;
  q->index = index;
  /* Queue 0 on the device's worker, the next ones on the next workers. */
  q->w = &vh->workers[((size_t)(d - vh->devs) + index) % vh->nworkers];
  if (!atomic_load(&q->w->eng_live)) {
    free(q);
    return -EIO;   /* that worker is not running (the process is stopping) */
  }
  q->kick_fd = q->call_fd = -1;
  q->remote = d->remote ? &d->remote[index] : NULL;
  q->mt = c->mt;
  r = vring_setup(&q->ring, &q->mt, vc->num, vc->addr.desc_user_addr, vc->addr.avail_user_addr,
                  vc->addr.used_user_addr, c->h.features, vc->base);
  if (r < 0) {
    log_msg(LOG_WARN, c->peer, d->cfg->socket, "queue %u: %s", index, q->ring.why);
    free(q);
    return r;
  }
  if ((q->kick_fd = dup(vc->kick_fd)) < 0 || (vc->call_fd >= 0 && (q->call_fd = dup(vc->call_fd)) < 0)) {
    r = -errno;
    if (q->kick_fd >= 0)
      close(q->kick_fd);
    free(q);
    return r;
  }
  q->kick_op.cb = kick_cb;
  q->run_op.cb = run_cb;
  q->notify_op.cb = notify_cb;
  q->max_inflight = MIN((unsigned)vc->num, (unsigned)VQ_MAX_INFLIGHT);
  q->sink = (struct request_sink){ .ops = &queue_sink_ops, .eng = q_eng(q), .session = NULL,
                                  .export = &d->dx, .dp = d->dx.datapath, .share = &q->share,
                                  .peer = c->peer, .flow = d->flow };
  if (c->inflight) {
    r = inflight_attach(&q->infl, c->inflight, c->inflight_len, c->inflight_nq, c->inflight_qsize, index, vc->num);
    if (r < 0)
      log_msg(LOG_WARN, c->peer, d->cfg->socket, "queue %u: the in-flight region (%u queues of %u) does not fit "
              "a ring of %u: not used", index, c->inflight_nq, c->inflight_qsize, vc->num);
    q->has_infl = r == 0;
  }
  m = (struct qmsg){ .q = q };
  atomic_fetch_add(&q->w->nhosted, 1);
  if (!post(q_eng(q), start_cb, &m)) {
    atomic_fetch_sub(&q->w->nhosted, 1);
    close(q->kick_fd);
    if (q->call_fd >= 0)
      close(q->call_fd);
    free(q);
    return -ENOMEM;
  }
  *out = q;
  log_msg(LOG_DEBUG, c->peer, d->cfg->socket, "queue %u started on worker %d: %u entries, base %u", index,
          q->w->id, vc->num, vc->base);
  return 0;
}

static void stop_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct qmsg *m = container_of(op, struct qmsg, op);
  struct vqueue *q = m->q;
  (void)res; (void)flags;

  free(m);
  if (q->stopping)
    return;
  q->stopping = true;
  if (q->kick_armed) {
    engine_cancel(q_eng(q), &q->kick_op);
  }
  if (!q->run_armed) {
    q->run_armed = true;
    engine_defer(q_eng(q), &q->run_op, 0);
  }
}

void vqueue_stop(struct vqueue *q)
{
  struct qmsg m = { .q = q };

  while (!post(q_eng(q), stop_cb, &m))
    usleep(1000);   /* a stop must arrive: the connection waits for it */
}

static void set_call_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct qmsg *m = container_of(op, struct qmsg, op);
  struct vqueue *q = m->q;
  (void)res; (void)flags;

  if (q->call_fd >= 0)
    close(q->call_fd);
  q->call_fd = m->fd;
  free(m);
}

void vqueue_set_call(struct vqueue *q, int call_fd)
{
  struct qmsg m = { .q = q, .fd = call_fd >= 0 ? dup(call_fd) : -1 };

  if (!post(q_eng(q), set_call_cb, &m) && m.fd >= 0)
    close(m.fd);
}

static void set_mem_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct qmsg *m = container_of(op, struct qmsg, op);
  struct vqueue *q = m->q;
  (void)res; (void)flags;

  q->mt = m->mt;
  free(m);
  mem_sync(q);
  /* Its rings may have moved to another mapping, or be gone (the queue
   * then breaks; the old mappings stay until no queue runs). */
  if (vring_remap(&q->ring, &q->mt) < 0 && !q->broken_logged) {
    q->broken_logged = true;
    atomic_fetch_add(&q->d->broken_queues, 1);
    log_msg(LOG_WARN, q->c->peer, q->d->cfg->socket, "queue %u broken by a memory table change: %s",
            q->index, q->ring.why);
  }
}

void vqueue_set_mem(struct vqueue *q, const struct memtable *mt)
{
  struct qmsg m = { .q = q, .mt = *mt };

  if (!post(q_eng(q), set_mem_cb, &m))
    log_msg(LOG_WARN, q->c->peer, q->d->cfg->socket, "queue %u: out of memory: it keeps the previous memory table",
            q->index);
}
