/* vring.h: the device's side of a split virtqueue (virtio 1.x "Split
 * Virtqueues") in a VM's memory: pop the next available descriptor chain as
 * host iovecs, push a used element, decide whether to notify the driver
 * (RING_EVENT_IDX or the flags), and enable or disable kicks.
 *
 * Everything in the VM's memory is hostile: each descriptor is copied once
 * and checked (address and length inside the VM's regions, chain length,
 * loops, indirect tables, readable parts before writable ones), and indices
 * are bounded.  A bad chain fails that request; ring state that makes no
 * sense (an available index that jumps by more than the queue size, a head
 * index past the queue, rings no longer mapped after a memory table change)
 * marks the queue broken, after which it pops nothing.  Shared-ring
 * ordering: the available index is read with acquire, the used index
 * published with release, and a full fence separates publishing from reading
 * the driver's event index.  Pure: no syscalls; one thread per queue.
 *
 * Bounds: a caller serving virtio-blk pops with at least seg_max + 2
 * segments (header, data, status) plus one per region boundary a buffer may
 * cross, and a byte bound of its largest request plus the header and status. */
#ifndef SHUNT_VIRTIO_VRING_H
#define SHUNT_VIRTIO_VRING_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "virtio/memtable.h"

struct vring_q {
  const struct memtable *mt;
  uint16_t num;                /* queue size, a power of two <= VU_QUEUE_SIZE_MAX */
  struct vring_desc *desc;     /* host addresses of the three parts */
  struct vring_avail *avail;
  struct vring_used *used;
  uint64_t desc_uaddr, avail_uaddr, used_uaddr;   /* as SET_VRING_ADDR gave them */
  uint16_t last_avail;         /* the next available entry to pop */
  uint16_t used_idx;           /* the used index as this side last published it */
  uint16_t signalled_used;     /* used_idx when the driver was last notified */
  bool signalled_valid;        /* signalled_used means something */
  bool event_idx;              /* VIRTIO_RING_F_EVENT_IDX negotiated */
  bool indirect;               /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
  bool broken;
  char why[128];               /* why broken (or why setup failed) */
};

/* Set up q on mt: size num, the front-end's user addresses of the descriptor
 * table, the available ring and the used ring (SET_VRING_ADDR), the
 * negotiated features (EVENT_IDX and INDIRECT_DESC are read from them), and
 * the first available index to pop (SET_VRING_BASE).  The used index is read
 * from the used ring.  Checks num (a power of two, 1..VU_QUEUE_SIZE_MAX), the
 * alignments (16, 2, 4) and that each part lies whole in one region.
 * Returns 0 or -EINVAL with the reason in q->why. */
int vring_setup(struct vring_q *q, const struct memtable *mt, unsigned num, uint64_t desc_uaddr,
                uint64_t avail_uaddr, uint64_t used_uaddr, uint64_t features, uint16_t base);

/* After the VM's memory table changed (the queue stopped meanwhile): find
 * the rings again in mt, now q's table.  Returns 0, or -EIO and breaks the
 * queue when a ring is no longer inside one region. */
int vring_remap(struct vring_q *q, const struct memtable *mt);

/* The next index to pop: GET_VRING_BASE's answer once the queue is drained. */
static inline uint16_t vring_base(const struct vring_q *q)
{
  return q->last_avail;
}

/* After a restart without an in-flight region: pop again everything the
 * driver made available that was never used (last_avail = used index). */
static inline void vring_rewind_to_used(struct vring_q *q)
{
  q->last_avail = q->used_idx;
}

/* A popped chain: the head to push back, and the iovecs (readable first,
 * n_out of them, out_bytes in all; then writable, n_in, in_bytes). */
struct vring_chain {
  uint16_t head;
  unsigned n_out, n_in;
  uint64_t out_bytes, in_bytes;
};

/* Pop the next available chain into iov[0..max_iov) (a descriptor split at
 * region boundaries takes one iovec per piece; zero-length descriptors take
 * none), with at most max_bytes in all.
 * Returns 1 with the chain in *c; 0 when nothing is available; -EINVAL when
 * the chain is bad: c->head is set, the chain was consumed, the caller must
 * push it back (length 0, or 1 after writing a status: see
 * vring_chain_last_writable()) and must not touch the iovecs; -EIO when the queue
 * is broken (q->why says why). */
int vring_pop(struct vring_q *q, struct iovec *iov, unsigned max_iov, uint64_t max_bytes,
              struct vring_chain *c);

/* For a chain vring_pop() refused (-EINVAL): the host address of the last
 * byte of its last writable descriptor, when the chain's structure is sound
 * (indices, length, indirect table) and that byte lies in the VM's memory,
 * else NULL.  Where virtio-blk keeps the status byte: the caller writes
 * VIRTIO_BLK_S_IOERR there and pushes the chain with length 1, so the driver
 * sees an I/O error rather than a status it never got.  q->why is kept. */
uint8_t *vring_chain_last_writable(struct vring_q *q, uint16_t head);

/* Read the chain at head again without taking anything from the available
 * ring (resubmitting what the in-flight area lists after a restart).  Same
 * checks and returns as vring_pop(), except 0 is never returned and a head
 * past the queue fails that chain (-EINVAL). */
int vring_chain_at(struct vring_q *q, uint16_t head, struct iovec *iov, unsigned max_iov,
                   uint64_t max_bytes, struct vring_chain *c);

/* Set the next available index to pop (after resubmitting in-flight chains:
 * the used index plus their count). */
static inline void vring_set_base(struct vring_q *q, uint16_t base)
{
  q->last_avail = base;
}

/* Give a chain back: used element {head, len} (len = bytes written to its
 * writable part), then the used index published with release.  head must be
 * one vring_pop() returned.  Still works on a queue broken by its indices (the
 * chains in flight complete); does nothing once its rings are gone. */
void vring_push(struct vring_q *q, uint16_t head, uint32_t len);

/* Should the driver be notified (call eventfd) now, for what was pushed since
 * the last notification?  With EVENT_IDX: when the used index has passed the
 * driver's used_event; otherwise unless the driver set
 * VRING_AVAIL_F_NO_INTERRUPT.  Records the notification as made when it
 * answers true. */
bool vring_need_notify(struct vring_q *q);

/* Ask the driver for kicks again (EVENT_IDX: avail_event = last_avail;
 * otherwise clear VRING_USED_F_NO_NOTIFY), then look again: returns true when
 * chains became available meanwhile (the caller pops instead of sleeping). */
bool vring_kick_enable(struct vring_q *q);

/* Tell the driver kicks are not needed while the queue is being served
 * (without EVENT_IDX: set VRING_USED_F_NO_NOTIFY; with it, a no-op: the event
 * index already stays behind). */
void vring_kick_disable(struct vring_q *q);

/* Chains the driver has made available and vring_pop() has not taken yet
 * (0 when broken). */
unsigned vring_avail_count(struct vring_q *q);

#endif
