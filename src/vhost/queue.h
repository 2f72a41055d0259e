/* queue.h: one virtqueue of a frontend connection, served on the device's
 * worker: the kick eventfd's read armed on the worker's ring, chains popped
 * (virtio/vring.h) and parsed as virtio-blk requests, each turned into a
 * struct request on the queue's request sink and run by dp_submit() (the
 * storage device's scheduler, the device being one flow) on
 * the device's dp_export with the chain's data segments as its memory
 * (r->mem_iov); its completion writes the status byte, pushes the used
 * element and notifies the driver (call eventfd) as RING_EVENT_IDX says.
 * At most min(queue size, VQ_MAX_INFLIGHT) requests of a queue are in
 * flight, and its bounce buffers come from its own dp_share: one VM cannot
 * take all of a worker's arena or pool. */
#ifndef SHUNT_VHOST_QUEUE_H
#define SHUNT_VHOST_QUEUE_H

#include <stdint.h>

#include "vhost/vu_handler.h"
#include "virtio/memtable.h"

struct vconn;
struct vqueue;

/* Requests one queue has in flight at most. */
#define VQ_MAX_INFLIGHT 256
/* Data segments one request may have (advertised as seg_max). */
#define VQ_SEG_MAX 254
/* The largest request payload a queue accepts (larger: IOERR). */
#define VQ_MAX_BYTES (64u << 20)

/* Start serving queue index of c as vq describes (ring addresses checked
 * against c's memory table, of which the queue keeps a copy; kick and call
 * fds duplicated), on worker (device index + queue index) mod workers: the
 * rest happens there.  Requests the frontend's in-flight region lists are
 * resubmitted first.  Returns 0 with *out set, or -errno.  This and the
 * other calls below run on the connection's worker. */
int vqueue_start(struct vconn *c, unsigned index, const struct vu_vring_conf *vq, struct vqueue **out);

/* Stop: pop nothing more; once its kick read is cancelled and its in-flight
 * requests completed, the queue is freed and vconn_queue_drained(c, index,
 * base) runs on the connection's worker (never inside this call).  No other
 * call on q may follow. */
void vqueue_stop(struct vqueue *q);

/* The driver's call eventfd changed (-1: none; the queue keeps a copy). */
void vqueue_set_call(struct vqueue *q, int call_fd);

/* The guest's memory table changed: the queue takes a copy of mt (regions
 * removed stay mapped by the connection until no queue runs). */
void vqueue_set_mem(struct vqueue *q, const struct memtable *mt);

#endif
