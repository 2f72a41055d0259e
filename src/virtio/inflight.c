/* inflight.c: recording in-flight chains in the shared in-flight area, and
 * listing them again after a restart. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/inflight.h"
#include "virtio/vhost_user.h"

uint64_t inflight_area_size(uint16_t num_queues, uint16_t queue_size)
{
  if (num_queues == 0 || queue_size == 0 || queue_size > VU_QUEUE_SIZE_MAX)
    return 0;
  return (uint64_t)num_queues * INFLIGHT_QUEUE_STRIDE(queue_size);
}

static struct inflight_region *queue_region(void *area, uint16_t queue_size, unsigned qidx)
{
  return (struct inflight_region *)(void *)((uint8_t *)area + qidx * INFLIGHT_QUEUE_STRIDE(queue_size));
}

void inflight_area_init(void *area, uint16_t num_queues, uint16_t queue_size)
{
  memset(area, 0, inflight_area_size(num_queues, queue_size));
  for (unsigned i = 0; i < num_queues; i++) {
    struct inflight_region *r = queue_region(area, queue_size, i);
    r->version = 1;
    r->desc_num = queue_size;
  }
}

int inflight_attach(struct inflight_q *q, void *area, uint64_t mmap_size, uint16_t num_queues,
                    uint16_t queue_size, unsigned qidx, unsigned ring_num)
{
  uint64_t need = inflight_area_size(num_queues, queue_size);
  struct inflight_region *r;

  memset(q, 0, sizeof *q);
  if (!area || need == 0 || need > mmap_size || qidx >= num_queues || ring_num == 0
      || ring_num > queue_size)
    return -EINVAL;
  r = queue_region(area, queue_size, qidx);
  if (__atomic_load_n(&r->version, __ATOMIC_ACQUIRE) == 0) {
    memset(r, 0, INFLIGHT_QUEUE_STRIDE(queue_size));
    r->desc_num = queue_size;
    __atomic_store_n(&r->version, 1, __ATOMIC_RELEASE);
  }
  if (r->version != 1 || r->desc_num != queue_size)
    return -EINVAL;
  q->r = r;
  q->desc_num = queue_size;
  return 0;
}

int inflight_mark(struct inflight_q *q, uint16_t head)
{
  if (!q->r || head >= q->desc_num)
    return -EINVAL;
  /* The counter first: a restart that sees the flag sees its counter. */
  __atomic_store_n(&q->r->desc[head].counter, q->counter++, __ATOMIC_RELAXED);
  __atomic_store_n(&q->r->desc[head].inflight, 1, __ATOMIC_RELEASE);
  return 0;
}

int inflight_put_begin(struct inflight_q *q, uint16_t head)
{
  if (!q->r || head >= q->desc_num)
    return -EINVAL;
  __atomic_store_n(&q->r->desc[head].next, q->r->last_batch_head, __ATOMIC_RELAXED);
  __atomic_store_n(&q->r->last_batch_head, head, __ATOMIC_RELEASE);
  return 0;
}

int inflight_put_end(struct inflight_q *q, uint16_t head, uint16_t used_idx)
{
  if (!q->r || head >= q->desc_num)
    return -EINVAL;
  __atomic_store_n(&q->r->desc[head].inflight, 0, __ATOMIC_RELEASE);
  __atomic_store_n(&q->r->used_idx, used_idx, __ATOMIC_RELEASE);
  return 0;
}

static int by_counter(const void *a, const void *b)
{
  const struct inflight_entry *x = a, *y = b;

  if (x->counter != y->counter)
    return x->counter < y->counter ? -1 : 1;
  return x->head < y->head ? -1 : x->head > y->head;
}

unsigned inflight_recover(struct inflight_q *q, uint16_t ring_used_idx, unsigned ring_num,
                          struct inflight_entry *out, unsigned max)
{
  struct inflight_region *r = q->r;
  unsigned n = 0;
  uint64_t top = 0;

  if (!r)
    return 0;
  if (r->used_idx != ring_used_idx) {
    /* The last batch reached the used ring but not the record: walk back
     * from its head (bounded: the area may hold anything). */
    uint16_t batch = (uint16_t)(ring_used_idx - r->used_idx);
    uint16_t i = r->last_batch_head;
    for (unsigned k = 0; k < batch && k < q->desc_num && i < q->desc_num; k++) {
      r->desc[i].inflight = 0;
      i = r->desc[i].next;
    }
    r->used_idx = ring_used_idx;
  }
  for (unsigned i = 0; i < q->desc_num; i++) {
    if (r->desc[i].inflight != 1)
      continue;
    if (i >= ring_num || n >= max) {
      r->desc[i].inflight = 0;   /* not a head of this ring: nothing to resubmit */
      continue;
    }
    out[n].head = (uint16_t)i;
    out[n].counter = r->desc[i].counter;
    if (out[n].counter >= top)
      top = out[n].counter + 1;
    n++;
  }
  qsort(out, n, sizeof *out, by_counter);
  q->counter = top;
  return n;
}
