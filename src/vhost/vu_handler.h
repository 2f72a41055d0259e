/* vu_handler.h: the vhost-user message state machine of one frontend
 * connection (the back end's side, virtio-blk): feature negotiation, owner,
 * memory table and slots, vring num/base/addr/kick/call/enable, config
 * space, in-flight region, GET_VRING_BASE that answers only once the
 * queue's in-flight requests completed.  It does no I/O itself: every side
 * effect (mapping a region, starting and stopping a queue, creating the
 * in-flight region, closing an fd) goes through an ops table, so that a fuzz
 * harness drives it with fake ops (tests/fuzz/fuzz_vu_handler.c).  Single
 * threaded: the connection's loop calls it. */
#ifndef SHUNT_VHOST_VU_HANDLER_H
#define SHUNT_VHOST_VU_HANDLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vhost/vconfig.h"
#include "virtio/vhost_user.h"

/* What the handler knows about one vring (set by SET_VRING_*). */
struct vu_vring_conf {
  uint32_t num;                 /* queue size; 0: not set */
  uint16_t base;                /* next avail index to read (SET/GET_VRING_BASE) */
  bool addr_set;
  struct vhost_vring_addr addr; /* frontend user addresses of desc, avail, used */
  int kick_fd, call_fd, err_fd; /* -1: none (the handler owns them) */
  bool enabled;                 /* SET_VRING_ENABLE (always, without PROTOCOL_FEATURES) */
  bool started;                 /* ops->queue_start succeeded; not yet stopped */
  bool draining;                /* ops->queue_stop answered 1: vu_handler_queue_stopped() follows */
  bool broken;                  /* the ring could not start (bad addresses): never started again
                                 * until the frontend sets it up anew (SET_VRING_ADDR) */
};

/* Side effects.  ctx is vu_handler.ctx.  Functions that take an fd own it
 * from then on (also when they fail). */
struct vu_handler_ops {
  /* Map a region of guest memory (fd, mapped at r->mmap_offset) and make it
   * usable for the queues.  Returns 0 or -errno. */
  int (*mem_add)(void *ctx, const struct vu_mem_region *r, int fd);
  /* Drop the region whose guest_addr and size match r's: 0, or -ENOENT. */
  int (*mem_remove)(void *ctx, const struct vu_mem_region *r);
  /* Drop every region (SET_MEM_TABLE replaces them, reset). */
  void (*mem_clear)(void *ctx);
  /* The device's config space (struct virtio_blk_config) into buf (len
   * bytes): returns its size (at most len). */
  size_t (*get_config)(void *ctx, uint8_t *buf, size_t len);
  /* GET_INFLIGHT_FD: make a zeroed in-flight region for nqueues queues of
   * queue_size entries, keep it mapped, and give the fd to send (*fd, the
   * caller closes it after sending) and its size.  0 or -errno. */
  int (*inflight_new)(void *ctx, uint16_t nqueues, uint16_t queue_size, int *fd, uint64_t *size);
  /* SET_INFLIGHT_FD: map the region (fd, size at offset) for nqueues
   * queues of queue_size: the queues record and resubmit from it.  0 or -errno. */
  int (*inflight_set)(void *ctx, int fd, uint64_t size, uint64_t offset, uint16_t nqueues, uint16_t queue_size);
  /* Start serving queue q as vq says (it keeps copies of the fds it
   * needs).  0, or -errno when the ring cannot be served (addresses outside
   * guest memory, say). */
  int (*queue_start)(void *ctx, unsigned q, const struct vu_vring_conf *vq);
  /* Stop queue q: 0 when stopped now (its next avail index in *base), 1
   * when requests are still in flight: vu_handler_queue_stopped() follows. */
  int (*queue_stop)(void *ctx, unsigned q, uint16_t *base);
  /* A running queue's call fd changed (-1: none). */
  void (*queue_set_call)(void *ctx, unsigned q, int call_fd);
  void (*close_fd)(void *ctx, int fd);
  /* A log line about the frontend (level as common/log.h). */
  void (*log)(void *ctx, int level, const char *msg);
};

/* What the device offers. */
struct vu_handler_setup {
  uint64_t features;            /* device feature bits (VIRTIO_*, VU_F_PROTOCOL_FEATURES) */
  uint64_t protocol_features;   /* VU_PROTOCOL_F_* bits */
  unsigned nqueues;             /* at most VHOST_MAX_QUEUES */
  unsigned max_mem_slots;       /* at most VU_MEM_SLOTS_MAX */
};

struct vu_handler {
  const struct vu_handler_ops *ops;
  void *ctx;
  struct vu_handler_setup offer;
  uint64_t features;            /* acked (SET_FEATURES) */
  uint64_t protocol_features;   /* acked (SET_PROTOCOL_FEATURES) */
  bool owner;
  uint8_t status;               /* SET_STATUS */
  unsigned nregions;            /* mapped regions (GET_MAX_MEM_SLOTS bound) */
  struct vu_vring_conf vq[VHOST_MAX_QUEUES];
  /* A GET_VRING_BASE waiting for its queue to drain: no other message is
   * handled until vu_handler_queue_stopped() answers it. */
  bool waiting;
  unsigned wait_q;
  bool wait_ack;                /* its header asked NEED_REPLY (no effect: it has a reply) */
};

enum vu_result {
  VU_NO_REPLY,                  /* done, nothing to send */
  VU_REPLY,                     /* send *reply (with *reply_fd when >= 0) */
  VU_WAIT,                      /* the reply comes from vu_handler_queue_stopped() */
  VU_CLOSE,                     /* malformed or hostile: drop the connection */
};

/* Start a handler for a new connection. */
void vu_handler_init(struct vu_handler *h, const struct vu_handler_setup *offer,
                     const struct vu_handler_ops *ops, void *ctx);

/* Handle msg (header and hdr.size payload bytes, hdr.size <= VU_MAX_PAYLOAD)
 * with its nfds fds (the handler owns them from now on).  Fills *reply and
 * *reply_fd (-1: none) for VU_REPLY.  Must not be called while h->waiting. */
enum vu_result vu_handler_handle(struct vu_handler *h, const struct vu_msg *msg, int *fds, size_t nfds,
                                 struct vu_msg *reply, int *reply_fd);

/* Queue q, stopped with ops->queue_stop() answering 1, has no request in
 * flight any more; its next avail index is base.  Returns VU_REPLY with
 * *reply filled when a GET_VRING_BASE was waiting for it, else VU_NO_REPLY. */
enum vu_result vu_handler_queue_stopped(struct vu_handler *h, unsigned q, uint16_t base, struct vu_msg *reply);

/* The connection ends: stop every started queue (queues still draining call
 * vu_handler_queue_stopped() later as usual) and close every fd.  The
 * memory table stays: the caller drops it (ops->mem_clear) once no queue is
 * draining.  Returns how many queues are still draining. */
unsigned vu_handler_shutdown(struct vu_handler *h);

#endif
