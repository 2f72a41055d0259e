/* vhostfe_ring.c: the driver side of a split virtqueue (virtio 1.x, 2.7): descriptor free
 * list, avail publication with release ordering, notification decisions with or without
 * RING_EVENT_IDX, used ring consumption with acquire ordering. */
#include "vhostfe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int fe_vq_init(struct fe_vq *q, struct fe_mem *m, unsigned index, unsigned num, bool event_idx)
{
  uint64_t gpa;
  memset(q, 0, sizeof(*q));
  q->kick_fd = q->call_fd = -1;
  if (num == 0 || num > 32768 || (num & (num - 1)))
    return -EINVAL;
  q->index = index;
  q->num = num;
  q->event_idx = event_idx;
  q->vr.num = num;
  q->vr.desc = fe_mem_alloc(m, 0, 16ull * num, 4096, &gpa);
  q->vr.avail = fe_mem_alloc(m, 0, 6 + 2ull * num, 4096, &gpa);
  q->vr.used = fe_mem_alloc(m, 0, 6 + 8ull * num, 4096, &gpa);
  q->next = calloc(num, sizeof(*q->next));
  q->chain_len = calloc(num, sizeof(*q->chain_len));
  q->cookie = calloc(num, sizeof(*q->cookie));
  if (!q->vr.desc || !q->vr.avail || !q->vr.used || !q->next || !q->chain_len || !q->cookie) {
    fe_vq_free(q);
    return -ENOMEM;
  }
  for (unsigned i = 0; i < num; i++)
    q->next[i] = (uint16_t)(i + 1);
  q->nfree = num;
  return 0;
}

void fe_vq_free(struct fe_vq *q)
{
  free(q->next);
  free(q->chain_len);
  free(q->cookie);
  q->next = q->chain_len = NULL;
  q->cookie = NULL;
  if (q->kick_fd >= 0)
    close(q->kick_fd);
  if (q->call_fd >= 0)
    close(q->call_fd);
  q->kick_fd = q->call_fd = -1;
}

static void put_avail(struct fe_vq *q, uint16_t head)
{
  q->vr.avail->ring[q->avail_idx % q->num] = head;
  q->avail_idx++;
}

int fe_vq_add(struct fe_vq *q, const struct fe_seg *segs, unsigned n, void *cookie,
              struct vring_desc *table, uint64_t table_gpa)
{
  unsigned need = table ? 1 : n;
  if (n == 0 || need > q->nfree)
    return -ENOSPC;
  uint16_t head = q->free_head, d = head;
  if (table) {
    for (unsigned i = 0; i < n; i++) {
      table[i].addr = segs[i].gpa;
      table[i].len = segs[i].len;
      table[i].flags = (uint16_t)((i + 1 < n ? VRING_DESC_F_NEXT : 0) |
                                  (segs[i].writable ? VRING_DESC_F_WRITE : 0));
      table[i].next = (uint16_t)(i + 1 < n ? i + 1 : 0);
    }
    q->vr.desc[d].addr = table_gpa;
    q->vr.desc[d].len = (uint32_t)(n * sizeof(struct vring_desc));
    q->vr.desc[d].flags = VRING_DESC_F_INDIRECT;
    q->vr.desc[d].next = 0;
    q->free_head = q->next[d];
  } else {
    for (unsigned i = 0; i < n; i++) {
      d = q->free_head;
      q->free_head = q->next[d];
      q->vr.desc[d].addr = segs[i].gpa;
      q->vr.desc[d].len = segs[i].len;
      q->vr.desc[d].flags = (uint16_t)((i + 1 < n ? VRING_DESC_F_NEXT : 0) |
                                       (segs[i].writable ? VRING_DESC_F_WRITE : 0));
      q->vr.desc[d].next = i + 1 < n ? q->free_head : 0;
    }
  }
  q->nfree -= need;
  q->chain_len[head] = (uint16_t)need;
  q->cookie[head] = cookie;
  put_avail(q, head);
  return 0;
}

bool fe_vq_publish(struct fe_vq *q)
{
  uint16_t old = q->kicked_idx, now = q->avail_idx;
  __atomic_store_n(&q->vr.avail->idx, now, __ATOMIC_RELEASE);
  /* The device reads avail idx then publishes its event/flags; we publish idx then read
   * them: a full barrier on both sides so that one of us sees the other's write. */
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  q->kicked_idx = now;
  if (old == now)
    return false;
  if (q->event_idx)
    return vring_need_event(__atomic_load_n(&vring_avail_event(&q->vr), __ATOMIC_ACQUIRE), now,
                            old);
  return !(__atomic_load_n(&q->vr.used->flags, __ATOMIC_ACQUIRE) & VRING_USED_F_NO_NOTIFY);
}

void fe_vq_kick(struct fe_vq *q)
{
  uint64_t one = 1;
  if (write(q->kick_fd, &one, sizeof(one)) != sizeof(one))
    perror("vhostfe: kick");
}

void *fe_vq_get_used(struct fe_vq *q, uint32_t *len)
{
  if (q->last_used == __atomic_load_n(&q->vr.used->idx, __ATOMIC_ACQUIRE))
    return NULL;
  struct vring_used_elem e = q->vr.used->ring[q->last_used % q->num];
  q->last_used++;
  if (e.id >= q->num || !q->cookie[e.id]) {
    fprintf(stderr, "vhostfe: queue %u: the device returned head %u, which is not in flight\n",
            q->index, e.id);
    exit(1);
  }
  void *cookie = q->cookie[e.id];
  q->cookie[e.id] = NULL;
  uint16_t last = (uint16_t)e.id;
  for (unsigned i = 1; i < q->chain_len[e.id]; i++)
    last = q->next[last];
  q->next[last] = q->free_head;
  q->free_head = (uint16_t)e.id;
  q->nfree += q->chain_len[e.id];
  if (len)
    *len = e.len;
  return cookie;
}

bool fe_vq_arm(struct fe_vq *q)
{
  if (q->event_idx)
    __atomic_store_n(&vring_used_event(&q->vr), q->last_used, __ATOMIC_RELEASE);
  else
    __atomic_store_n(&q->vr.avail->flags, 0, __ATOMIC_RELEASE);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  return __atomic_load_n(&q->vr.used->idx, __ATOMIC_ACQUIRE) != q->last_used;
}

void fe_vq_add_raw_head(struct fe_vq *q, uint16_t head) { put_avail(q, head); }

void fe_vq_set_avail_idx(struct fe_vq *q, uint16_t idx)
{
  q->avail_idx = idx;
  __atomic_store_n(&q->vr.avail->idx, idx, __ATOMIC_RELEASE);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
