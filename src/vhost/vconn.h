/* vconn.h: one frontend (VMM) connected to a device's socket: reading its
 * vhost-user messages (header, bounded payload, at most VU_MAX_FDS fds in
 * SCM_RIGHTS; surplus fds are closed), answering them through the message
 * state machine (vu_handler.h), the guest memory it hands over (mapped,
 * recorded in a memtable, registered with the worker's ring), its in-flight
 * region, and its queues (queue.h, each on its own worker).  Runs on the
 * device's worker. */
#ifndef SHUNT_VHOST_VCONN_H
#define SHUNT_VHOST_VCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "vhost/vconfig.h"
#include "vhost/vu_handler.h"
#include "virtio/memtable.h"
#include "virtio/vhost_user.h"

struct vdev;
struct vqueue;

struct vconn {
  struct vdev *d;
  int fd;
  char peer[32];                       /* "frontend#N", for log lines */
  struct engine_op poll_op;            /* readable socket */
  bool poll_armed;
  struct engine_op resume_op;          /* go on reading after a deferred reply */
  bool resume_armed;
  struct vu_msg msg;                   /* the message being received */
  size_t got;                          /* header and payload bytes of it so far */
  int fds[VU_MAX_FDS];
  size_t nfds;
  bool dispatching;                    /* inside vu_handler_handle */
  struct vu_handler h;
  struct memtable mt;                  /* the guest's memory */
  struct mt_region retired[VU_MEM_SLOTS_MAX];   /* removed while queues ran: unmapped once none runs */
  unsigned nretired;
  void *inflight;                      /* the in-flight region (mapped), or NULL (virtio/inflight.h) */
  uint64_t inflight_len;
  uint16_t inflight_nq, inflight_qsize;
  struct vqueue *q[VHOST_MAX_QUEUES];  /* running or draining queues (each on its worker) */
  bool q_stopping[VHOST_MAX_QUEUES];   /* told to stop: nothing more is sent to it */
  bool mt_dirty;                       /* the table changed since the queues last got it */
  unsigned nqueues_alive;
  bool closing;                        /* the connection ends: no more messages */
  uint64_t lost_at_start;              /* guardmem_repaired() when it connected */
  bool fatal;                          /* a side effect could not be done safely: drop the frontend */
};

/* Serve the frontend on fd (accepted on d's socket): d->conn is set.
 * Returns 0, or -ENOMEM (fd closed). */
int vconn_start(struct vdev *d, int fd);

/* The process stops: end the connection (its queues finish their
 * in-flight requests first). */
void vconn_stop(struct vconn *c);

/* Queue index has no request in flight any more after a stop, its next
 * avail index is base; the queue is gone (queue.c, on the connection's
 * worker). */
void vconn_queue_drained(struct vconn *c, unsigned index, uint16_t base);

#endif
