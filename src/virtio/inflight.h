/* inflight.h: the in-flight region of VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD
 * for split queues ("Inflight I/O tracking" in the vhost-user spec): a
 * shared memory area the back-end creates (GET_INFLIGHT_FD), the front-end
 * keeps across a back-end restart and hands back (SET_INFLIGHT_FD), in which
 * the back-end records which chains it popped and has not completed, so that
 * a restarted back-end resubmits them in their original order.
 *
 * Layout: one region per queue, each INFLIGHT_QUEUE_STRIDE(queue_size) bytes
 * apart: a 16-byte header (features, version 1, desc_num, last_batch_head,
 * used_idx) then desc_num 16-byte entries (inflight flag, next, counter),
 * one per descriptor index (only heads are used).  The area is shared with
 * the front-end: every index read from it is bounded before use.  Pure: the
 * caller creates, maps and passes the memory. */
#ifndef SHUNT_VIRTIO_INFLIGHT_H
#define SHUNT_VIRTIO_INFLIGHT_H

#include <stdint.h>

struct inflight_desc {
  uint8_t inflight;       /* 1 while the chain with this head is in flight */
  uint8_t padding[5];
  uint16_t next;          /* the list of the last used batch */
  uint64_t counter;       /* submission order */
};

struct inflight_region {
  uint64_t features;      /* 0 */
  uint16_t version;       /* 1; 0 = not initialised */
  uint16_t desc_num;      /* entries: the queue size */
  uint16_t last_batch_head;
  uint16_t used_idx;      /* the used index once the last batch is recorded */
  struct inflight_desc desc[];
};

_Static_assert(sizeof(struct inflight_desc) == 16, "in-flight entry is 16 bytes");
_Static_assert(sizeof(struct inflight_region) == 16, "in-flight queue header is 16 bytes");

/* Bytes from one queue's region to the next (64-byte aligned). */
#define INFLIGHT_QUEUE_STRIDE(qs) ((((uint64_t)16 + 16 * (uint64_t)(qs)) + 63) & ~(uint64_t)63)

/* The size of the area for num_queues queues of queue_size entries (the
 * mmap_size GET_INFLIGHT_FD answers), or 0 when either is 0 or queue_size
 * exceeds VU_QUEUE_SIZE_MAX. */
uint64_t inflight_area_size(uint16_t num_queues, uint16_t queue_size);

/* Initialise a fresh (zeroed or not) area of that size: every queue's header
 * at version 1 with desc_num = queue_size, nothing in flight. */
void inflight_area_init(void *area, uint16_t num_queues, uint16_t queue_size);

/* One queue's view of the area. */
struct inflight_q {
  struct inflight_region *r;
  uint16_t desc_num;      /* the entries this side may touch */
  uint64_t counter;       /* the next submission number */
};

/* Attach q to queue qidx of the area (mmap_size bytes, as SET_INFLIGHT_FD
 * described it: num_queues queues of queue_size).  A queue region still at
 * version 0 is initialised; one whose version or desc_num disagrees is
 * refused.  ring_num is the virtqueue's size (SET_VRING_NUM): it must not
 * exceed queue_size.  Returns 0 or -EINVAL. */
int inflight_attach(struct inflight_q *q, void *area, uint64_t mmap_size, uint16_t num_queues,
                    uint16_t queue_size, unsigned qidx, unsigned ring_num);

/* A chain with this head was popped: record it in flight, after every chain
 * recorded before it.  Returns 0 or -EINVAL (head out of range). */
int inflight_mark(struct inflight_q *q, uint16_t head);

/* Completing head: before the used element is pushed, inflight_put_begin();
 * after the used index is published (as used_idx), inflight_put_end().  A
 * restart between the two is repaired by inflight_recover(). */
int inflight_put_begin(struct inflight_q *q, uint16_t head);
int inflight_put_end(struct inflight_q *q, uint16_t head, uint16_t used_idx);

/* One chain to resubmit. */
struct inflight_entry {
  uint16_t head;
  uint64_t counter;
};

/* After a restart: given the used ring's index now (ring_used_idx), clear the
 * entries of a last batch that reached the used ring, then list the heads
 * still in flight (heads below ring_num only) into out[0..max) in submission
 * order (out has room for ring_num entries); later marks number after them;
 * call it once after inflight_attach(), before any mark.  Returns how many
 * were listed.  The caller resubmits them (vring_chain_at()) and sets the
 * queue's next index to pop to ring_used_idx + that count (vring_set_base()),
 * as those chains had been popped. */
unsigned inflight_recover(struct inflight_q *q, uint16_t ring_used_idx, unsigned ring_num,
                          struct inflight_entry *out, unsigned max);

#endif
