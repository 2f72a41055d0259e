/* device.h: one vhost-user-blk device of `shunt vhost`: its source (the
 * storage side, a dp_export as the NBD server's exports have), its listening
 * unix socket, and the frontend connected to it now (one at a time: another
 * frontend waits in the socket's backlog until this one leaves).  All of it
 * runs on the device's worker; its queues on theirs (queue.h). */
#ifndef SHUNT_VHOST_DEVICE_H
#define SHUNT_VHOST_DEVICE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "datapath/dpexport.h"
#include "engine/engine.h"
#include "vhost/vconfig.h"
#include "virtio/virtio_blk.h"

struct vhost;
struct vworker;
struct vconn;

struct vdev {
  struct vhost *vh;
  struct vworker *w;                  /* its worker: accept, connection, queues */
  const struct vhost_dev_config *cfg;
  struct dp_export dx;                /* the source: a file or block device */
  bool dx_open;
  struct dp_flow *flow;               /* its flow in the storage device's scheduler (all its
                                       * queues', every frontend's); NULL: not scheduled */
  struct vremote *remote;             /* or an NBD export: one connection per queue (remote.h) */
  uint64_t size;                      /* the source's size in bytes */
  unsigned nqueues;                   /* queues offered (num_queues) */
  uint32_t blk_size;                  /* logical block size the guest sees */
  struct vblk_params blk;             /* the virtio-blk device it is (blkconfig.h) */
  int listen_fd;                      /* owned by the process's listen set */
  struct engine_op accept_op;
  bool accept_armed;
  struct vconn *conn;                 /* the frontend served now, or NULL */
  bool stopping;                      /* the process stops: no more frontends */
  bool done;                          /* stopped and its connection gone */
  atomic_uint_fast64_t connections;   /* frontends served so far */
  atomic_uint_fast64_t broken_queues; /* queues stopped for a malformed ring */
  atomic_uint_fast64_t bad_requests;  /* requests failed for bad descriptors or headers */
};

/* Open cfg's source and pick its data path (the main thread, before the
 * workers run).  Returns 0 or -errno with a message in err; on failure
 * vdev_close still releases what was opened. */
int vdev_open(struct vdev *d, struct vhost *vh, const struct vhost_dev_config *cfg, char *err, size_t errlen);

/* On its worker: accept a frontend. */
void vdev_start(struct vdev *d);

/* On its worker: stop accepting; the connection (if any) stops its queues,
 * waits for their in-flight requests and closes; then the worker is told
 * (vworker_device_done). */
void vdev_stop(struct vdev *d);

/* The connection ended (called by it, on the worker, after its queues
 * drained and its memory was unmapped): accept the next frontend, or finish
 * stopping. */
void vdev_conn_closed(struct vdev *d);

/* Flush and close the source (after the workers ended). */
void vdev_close(struct vdev *d);

#endif
