/* vu_handler.c: the vhost-user message state machine (see vu_handler.h).
 * Section names in comments are those of qemu's vhost-user specification
 * (docs/interop/vhost-user.rst). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "vhost/vu_handler.h"

/* The largest split ring the handler accepts ("Ring states": a power of two). */
#define VU_RING_MAX VU_QUEUE_SIZE_MAX

__attribute__((format(printf, 3, 4)))
static void hlog(struct vu_handler *h, int level, const char *fmt, ...)
{
  char msg[256];
  va_list ap;

  if (!h->ops->log)
    return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  h->ops->log(h->ctx, level, msg);
}

void vu_handler_init(struct vu_handler *h, const struct vu_handler_setup *offer,
                     const struct vu_handler_ops *ops, void *ctx)
{
  memset(h, 0, sizeof *h);
  h->ops = ops;
  h->ctx = ctx;
  h->offer = *offer;
  if (h->offer.nqueues > VHOST_MAX_QUEUES)
    h->offer.nqueues = VHOST_MAX_QUEUES;
  if (h->offer.max_mem_slots > VU_MEM_SLOTS_MAX)
    h->offer.max_mem_slots = VU_MEM_SLOTS_MAX;
  for (unsigned i = 0; i < VHOST_MAX_QUEUES; i++) {
    h->vq[i].kick_fd = h->vq[i].call_fd = h->vq[i].err_fd = -1;
    /* "Ring states": without PROTOCOL_FEATURES a ring is enabled at once. */
    h->vq[i].enabled = true;
  }
}

static void close_fds(struct vu_handler *h, int *fds, size_t nfds)
{
  for (size_t i = 0; i < nfds; i++)
    if (fds[i] >= 0) {
      h->ops->close_fd(h->ctx, fds[i]);
      fds[i] = -1;
    }
}

static void set_fd(struct vu_handler *h, int *slot, int fd)
{
  if (*slot >= 0)
    h->ops->close_fd(h->ctx, *slot);
  *slot = fd;
}

static bool protocol_acked(const struct vu_handler *h, unsigned bit)
{
  return h->protocol_features & VU_BIT(bit);
}

static void reply_u64(const struct vu_msg *msg, struct vu_msg *reply, uint64_t v)
{
  memset(&reply->hdr, 0, sizeof reply->hdr);
  reply->hdr.request = msg->hdr.request;
  reply->hdr.flags = VU_VERSION | VU_FLAG_REPLY;
  reply->hdr.size = sizeof(uint64_t);
  reply->payload.u64 = v;
}

static void reply_state(uint32_t request, struct vu_msg *reply, unsigned index, unsigned num)
{
  memset(&reply->hdr, 0, sizeof reply->hdr);
  reply->hdr.request = request;
  reply->hdr.flags = VU_VERSION | VU_FLAG_REPLY;
  reply->hdr.size = sizeof(struct vhost_vring_state);
  reply->payload.state.index = index;
  reply->payload.state.num = num;
}

/* A ring starts when it has its size, addresses and kick fd, is enabled,
 * and the frontend owns the device ("Starting and stopping rings"). */
static void maybe_start(struct vu_handler *h, unsigned q)
{
  struct vu_vring_conf *vq = &h->vq[q];
  int r;

  if (vq->started || vq->draining || vq->broken || !vq->num || !vq->addr_set || vq->kick_fd < 0 ||
      !vq->enabled)
    return;
  r = h->ops->queue_start(h->ctx, q, vq);
  if (r < 0) {
    hlog(h, LOG_WARN, "queue %u cannot start: %s", q, strerror(-r));
    vq->broken = true;
    return;
  }
  vq->started = true;
}

/* Stop queue q if it runs.  Returns true when it drains (a later
 * vu_handler_queue_stopped() call). */
static bool stop_queue(struct vu_handler *h, unsigned q)
{
  struct vu_vring_conf *vq = &h->vq[q];
  uint16_t base;

  if (vq->draining)
    return true;
  if (!vq->started)
    return false;
  vq->started = false;
  if (h->ops->queue_stop(h->ctx, q, &base) == 1) {
    vq->draining = true;
    return true;
  }
  vq->base = base;
  return false;
}

/* The ring index of a vring message, checked against the queues offered. */
static int ring_index(struct vu_handler *h, const struct vu_msg *msg, unsigned *q)
{
  uint32_t req = msg->hdr.request;
  uint64_t idx = (req == VU_SET_VRING_KICK || req == VU_SET_VRING_CALL || req == VU_SET_VRING_ERR)
    ? (msg->payload.u64 & VU_VRING_IDX_MASK)
    : (req == VU_SET_VRING_ADDR ? msg->payload.addr.index : msg->payload.state.index);

  if (idx >= h->offer.nqueues) {
    hlog(h, LOG_WARN, "%s: ring %llu, but the device has %u queues", vu_request_name(req),
         (unsigned long long)idx, h->offer.nqueues);
    return -EINVAL;
  }
  *q = (unsigned)idx;
  return 0;
}

/* Messages that change a ring's layout are refused while it runs. */
static int ring_idle(struct vu_handler *h, unsigned q, uint32_t req)
{
  if (h->vq[q].started || h->vq[q].draining) {
    hlog(h, LOG_WARN, "%s: ring %u is running", vu_request_name(req), q);
    return -EBUSY;
  }
  return 0;
}

static int handle_vring(struct vu_handler *h, const struct vu_msg *msg, int *fds, size_t nfds)
{
  uint32_t req = msg->hdr.request;
  struct vu_vring_conf *vq;
  unsigned q;
  int r, fd = nfds ? fds[0] : -1;

  if ((r = ring_index(h, msg, &q)) < 0)
    return r;
  vq = &h->vq[q];
  switch (req) {
  case VU_SET_VRING_NUM: {
    uint32_t num = msg->payload.state.num;
    if ((r = ring_idle(h, q, req)) < 0)
      return r;
    if (num == 0 || num > VU_RING_MAX || (num & (num - 1))) {
      hlog(h, LOG_WARN, "SET_VRING_NUM: ring %u size %u (a power of two up to %u expected)", q, num, VU_RING_MAX);
      return -EINVAL;
    }
    vq->num = num;
    return 0;
  }
  case VU_SET_VRING_BASE:
    if ((r = ring_idle(h, q, req)) < 0)
      return r;
    if (msg->payload.state.num > UINT16_MAX) {
      hlog(h, LOG_WARN, "SET_VRING_BASE: ring %u base %u is not a 16-bit index", q, msg->payload.state.num);
      return -EINVAL;
    }
    vq->base = (uint16_t)msg->payload.state.num;
    return 0;
  case VU_SET_VRING_ADDR:
    if ((r = ring_idle(h, q, req)) < 0)
      return r;
    vq->addr = msg->payload.addr;
    vq->addr_set = true;
    vq->broken = false;
    maybe_start(h, q);
    return 0;
  case VU_SET_VRING_KICK:
    if (vq->started || vq->draining) {
      hlog(h, LOG_WARN, "SET_VRING_KICK: ring %u is running", q);
      return -EBUSY;   /* fds[0] is closed by the caller */
    }
    if (fd < 0) {
      hlog(h, LOG_WARN, "SET_VRING_KICK: ring %u without an eventfd (polling is not supported)", q);
      return -EINVAL;
    }
    set_fd(h, &vq->kick_fd, fd);
    fds[0] = -1;
    /* "Ring states": without PROTOCOL_FEATURES the kick starts the ring. */
    if (!(h->features & VU_BIT(VU_F_PROTOCOL_FEATURES)))
      vq->enabled = true;
    maybe_start(h, q);
    return 0;
  case VU_SET_VRING_CALL:
    set_fd(h, &vq->call_fd, fd);
    if (nfds)
      fds[0] = -1;
    if (vq->started)
      h->ops->queue_set_call(h->ctx, q, vq->call_fd);
    return 0;
  case VU_SET_VRING_ERR:
    set_fd(h, &vq->err_fd, fd);
    if (nfds)
      fds[0] = -1;
    return 0;
  case VU_SET_VRING_ENABLE:
    if (msg->payload.state.num > 1) {
      hlog(h, LOG_WARN, "SET_VRING_ENABLE: ring %u value %u (0 or 1 expected)", q, msg->payload.state.num);
      return -EINVAL;
    }
    vq->enabled = msg->payload.state.num == 1;
    if (vq->enabled)
      maybe_start(h, q);
    else
      stop_queue(h, q);
    return 0;
  }
  return -EINVAL;
}

static int handle_mem_table(struct vu_handler *h, const struct vu_msg *msg, int *fds, size_t nfds)
{
  const struct vu_memory *m = &msg->payload.memory;
  int r = 0;

  h->ops->mem_clear(h->ctx);
  h->nregions = 0;
  for (size_t i = 0; i < nfds; i++) {
    int fd = fds[i];
    fds[i] = -1;
    if (r < 0 || i >= m->nregions)
      h->ops->close_fd(h->ctx, fd);
    else if ((r = h->ops->mem_add(h->ctx, &m->regions[i], fd)) == 0)   /* owns fd */
      h->nregions++;
  }
  if (r < 0)
    hlog(h, LOG_WARN, "SET_MEM_TABLE: %s", strerror(-r));
  return r;
}

static int handle_add_reg(struct vu_handler *h, const struct vu_msg *msg, int *fds)
{
  int fd = fds[0], r;

  fds[0] = -1;
  if (h->nregions >= h->offer.max_mem_slots) {
    h->ops->close_fd(h->ctx, fd);
    hlog(h, LOG_WARN, "ADD_MEM_REG: all %u memory slots in use", h->offer.max_mem_slots);
    return -ENOSPC;
  }
  if ((r = h->ops->mem_add(h->ctx, &msg->payload.mem_reg.region, fd)) < 0) {
    hlog(h, LOG_WARN, "ADD_MEM_REG: %s", strerror(-r));
    return r;
  }
  h->nregions++;
  return 0;
}

static int handle_rem_reg(struct vu_handler *h, const struct vu_msg *msg)
{
  int r = h->ops->mem_remove(h->ctx, &msg->payload.mem_reg.region);

  if (r < 0) {
    hlog(h, LOG_WARN, "REM_MEM_REG: no region at guest address 0x%llx",
         (unsigned long long)msg->payload.mem_reg.region.guest_addr);
    return r;
  }
  h->nregions--;
  return 0;
}

static enum vu_result handle_get_config(struct vu_handler *h, const struct vu_msg *msg, struct vu_msg *reply)
{
  const struct vu_config *c = &msg->payload.config;
  uint8_t space[VU_CONFIG_SPACE_MAX];
  size_t have;

  memset(space, 0, sizeof space);
  have = h->ops->get_config(h->ctx, space, sizeof space);
  memset(&reply->hdr, 0, sizeof reply->hdr);
  reply->hdr.request = VU_GET_CONFIG;
  reply->hdr.flags = VU_VERSION | VU_FLAG_REPLY;
  if (c->offset > have || c->size > have - c->offset) {
    hlog(h, LOG_DEBUG, "GET_CONFIG: offset %u size %u past the %zu-byte config space", c->offset, c->size, have);
    reply->hdr.size = 0;   /* "a reply of size 0 means failure" */
    return VU_REPLY;
  }
  reply->hdr.size = VU_CONFIG_HDR_SIZE + c->size;
  reply->payload.config.offset = c->offset;
  reply->payload.config.size = c->size;
  reply->payload.config.flags = c->flags;
  memcpy(reply->payload.config.region, space + c->offset, c->size);
  return VU_REPLY;
}

static int handle_inflight_get(struct vu_handler *h, const struct vu_msg *msg, struct vu_msg *reply, int *reply_fd)
{
  const struct vu_inflight *in = &msg->payload.inflight;
  uint64_t size;
  int fd, r;

  if (in->num_queues == 0 || in->num_queues > h->offer.nqueues || in->queue_size == 0 ||
      in->queue_size > VU_RING_MAX) {
    hlog(h, LOG_WARN, "GET_INFLIGHT_FD: %u queues of %u entries (the device has %u queues)",
         in->num_queues, in->queue_size, h->offer.nqueues);
    return -EINVAL;
  }
  if ((r = h->ops->inflight_new(h->ctx, in->num_queues, in->queue_size, &fd, &size)) < 0) {
    hlog(h, LOG_WARN, "GET_INFLIGHT_FD: %s", strerror(-r));
    return r;
  }
  memset(&reply->hdr, 0, sizeof reply->hdr);
  reply->hdr.request = VU_GET_INFLIGHT_FD;
  reply->hdr.flags = VU_VERSION | VU_FLAG_REPLY;
  reply->hdr.size = sizeof(struct vu_inflight);
  reply->payload.inflight = (struct vu_inflight){ .mmap_size = size, .mmap_offset = 0,
                                                 .num_queues = in->num_queues, .queue_size = in->queue_size };
  *reply_fd = fd;
  return 0;
}

static int handle_inflight_set(struct vu_handler *h, const struct vu_msg *msg, int *fds)
{
  const struct vu_inflight *in = &msg->payload.inflight;
  int fd = fds[0], r;

  fds[0] = -1;
  for (unsigned q = 0; q < h->offer.nqueues; q++)
    if (h->vq[q].started || h->vq[q].draining) {
      h->ops->close_fd(h->ctx, fd);
      hlog(h, LOG_WARN, "SET_INFLIGHT_FD: ring %u is running", q);
      return -EBUSY;
    }
  if (in->num_queues == 0 || in->num_queues > h->offer.nqueues || in->queue_size == 0 ||
      in->queue_size > VU_RING_MAX) {
    h->ops->close_fd(h->ctx, fd);
    hlog(h, LOG_WARN, "SET_INFLIGHT_FD: %u queues of %u entries (the device has %u queues)",
         in->num_queues, in->queue_size, h->offer.nqueues);
    return -EINVAL;
  }
  r = h->ops->inflight_set(h->ctx, fd, in->mmap_size, in->mmap_offset, in->num_queues, in->queue_size);
  if (r < 0)
    hlog(h, LOG_WARN, "SET_INFLIGHT_FD: %s", strerror(-r));
  return r;
}

/* A request with an acknowledgement as its only possible reply: returns
 * the status (0 ok, -errno failed). */
static int handle_plain(struct vu_handler *h, const struct vu_msg *msg, int *fds, size_t nfds)
{
  switch (msg->hdr.request) {
  case VU_SET_FEATURES: {
    uint64_t f = msg->payload.u64;
    if (f & ~h->offer.features) {
      hlog(h, LOG_WARN, "SET_FEATURES: 0x%llx has bits the device does not offer (0x%llx)",
           (unsigned long long)f, (unsigned long long)(f & ~h->offer.features));
      return -EINVAL;
    }
    h->features = f;
    /* "Ring states": with PROTOCOL_FEATURES rings start disabled. */
    if (f & VU_BIT(VU_F_PROTOCOL_FEATURES))
      for (unsigned q = 0; q < h->offer.nqueues; q++)
        if (!h->vq[q].started && !h->vq[q].draining)
          h->vq[q].enabled = false;
    return 0;
  }
  case VU_SET_PROTOCOL_FEATURES: {
    uint64_t f = msg->payload.u64;
    if (f & ~h->offer.protocol_features) {
      hlog(h, LOG_WARN, "SET_PROTOCOL_FEATURES: 0x%llx has bits the device does not offer",
           (unsigned long long)f);
      return -EINVAL;
    }
    h->protocol_features = f;
    return 0;
  }
  case VU_SET_OWNER:
    h->owner = true;
    return 0;
  case VU_RESET_OWNER:
  case VU_RESET_DEVICE:
    /* Stop what runs; the rings' settings stay until set anew. */
    for (unsigned q = 0; q < h->offer.nqueues; q++)
      stop_queue(h, q);
    h->status = 0;
    return 0;
  case VU_SET_MEM_TABLE:
    return handle_mem_table(h, msg, fds, nfds);
  case VU_ADD_MEM_REG:
    if (!protocol_acked(h, VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS))
      return -EOPNOTSUPP;
    return handle_add_reg(h, msg, fds);
  case VU_REM_MEM_REG:
    if (!protocol_acked(h, VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS))
      return -EOPNOTSUPP;
    return handle_rem_reg(h, msg);
  case VU_SET_VRING_NUM: case VU_SET_VRING_BASE: case VU_SET_VRING_ADDR:
  case VU_SET_VRING_KICK: case VU_SET_VRING_CALL: case VU_SET_VRING_ERR: case VU_SET_VRING_ENABLE:
    return handle_vring(h, msg, fds, nfds);
  case VU_SET_CONFIG:
    hlog(h, LOG_DEBUG, "SET_CONFIG: no writable config field; ignored");
    return -EPERM;
  case VU_SET_INFLIGHT_FD:
    if (!protocol_acked(h, VU_PROTOCOL_F_INFLIGHT_SHMFD))
      return -EOPNOTSUPP;
    return handle_inflight_set(h, msg, fds);
  case VU_SET_BACKEND_REQ_FD:
    return -EOPNOTSUPP;   /* not offered; the fd is closed with the rest */
  case VU_SET_STATUS:
    h->status = (uint8_t)msg->payload.u64;
    return 0;
  }
  return -EOPNOTSUPP;
}

enum vu_result vu_handler_handle(struct vu_handler *h, const struct vu_msg *msg, int *fds, size_t nfds,
                                 struct vu_msg *reply, int *reply_fd)
{
  char err[256];
  bool ack;
  int r;

  *reply_fd = -1;
  r = vu_msg_check(msg, nfds, err, sizeof err);
  if (r == -EPROTO) {
    hlog(h, LOG_WARN, "malformed message: %s", err);
    close_fds(h, fds, nfds);
    return VU_CLOSE;
  }
  ack = (msg->hdr.flags & VU_FLAG_NEED_REPLY) && protocol_acked(h, VU_PROTOCOL_F_REPLY_ACK);
  if (r == -EOPNOTSUPP) {
    hlog(h, LOG_DEBUG, "%s", err);
    close_fds(h, fds, nfds);
    if (!ack)
      return VU_NO_REPLY;
    reply_u64(msg, reply, 1);
    return VU_REPLY;
  }
  switch (msg->hdr.request) {
  case VU_GET_FEATURES:
    reply_u64(msg, reply, h->offer.features);
    return VU_REPLY;
  case VU_GET_PROTOCOL_FEATURES:
    reply_u64(msg, reply, h->offer.protocol_features);
    return VU_REPLY;
  case VU_GET_QUEUE_NUM:
    reply_u64(msg, reply, h->offer.nqueues);
    return VU_REPLY;
  case VU_GET_MAX_MEM_SLOTS:
    reply_u64(msg, reply, h->offer.max_mem_slots);
    return VU_REPLY;
  case VU_GET_STATUS:
    reply_u64(msg, reply, h->status);
    return VU_REPLY;
  case VU_GET_CONFIG:
    return handle_get_config(h, msg, reply);
  case VU_GET_INFLIGHT_FD:
    if (!protocol_acked(h, VU_PROTOCOL_F_INFLIGHT_SHMFD) ||
        handle_inflight_get(h, msg, reply, reply_fd) < 0) {
      /* No failure reply exists for it: the frontend gives up on the
       * in-flight region when the connection drops. */
      hlog(h, LOG_WARN, "GET_INFLIGHT_FD refused: dropping the connection");
      return VU_CLOSE;
    }
    return VU_REPLY;
  case VU_GET_VRING_BASE: {
    unsigned q;
    if (ring_index(h, msg, &q) < 0)
      return VU_CLOSE;   /* it waits for a reply we cannot give */
    /* "Starting and stopping rings": the ring stops; it restarts only with
     * a new kick fd. */
    set_fd(h, &h->vq[q].kick_fd, -1);
    if (stop_queue(h, q)) {
      h->waiting = true;
      h->wait_q = q;
      return VU_WAIT;
    }
    reply_state(VU_GET_VRING_BASE, reply, q, h->vq[q].base);
    return VU_REPLY;
  }
  }
  r = handle_plain(h, msg, fds, nfds);
  close_fds(h, fds, nfds);
  if (!ack)
    return VU_NO_REPLY;
  reply_u64(msg, reply, r < 0 ? 1 : 0);
  return VU_REPLY;
}

enum vu_result vu_handler_queue_stopped(struct vu_handler *h, unsigned q, uint16_t base, struct vu_msg *reply)
{
  if (q >= h->offer.nqueues || !h->vq[q].draining)
    return VU_NO_REPLY;
  h->vq[q].draining = false;
  h->vq[q].base = base;
  if (!h->waiting || h->wait_q != q) {
    /* Disabled, then enabled again meanwhile: it may run again. */
    maybe_start(h, q);
    return VU_NO_REPLY;
  }
  h->waiting = false;
  reply_state(VU_GET_VRING_BASE, reply, q, base);
  return VU_REPLY;
}

unsigned vu_handler_shutdown(struct vu_handler *h)
{
  unsigned draining = 0;

  h->waiting = false;
  for (unsigned q = 0; q < h->offer.nqueues; q++) {
    struct vu_vring_conf *vq = &h->vq[q];
    vq->enabled = false;   /* a drain that ends does not restart it */
    if (stop_queue(h, q))
      draining++;
    set_fd(h, &vq->kick_fd, -1);
    set_fd(h, &vq->call_fd, -1);
    set_fd(h, &vq->err_fd, -1);
  }
  return draining;
}
