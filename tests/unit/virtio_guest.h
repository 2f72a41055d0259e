/* virtio_guest.h: a fake VM for the virtio unit tests: malloc'ed "guest
 * memory" in two regions that are adjacent in guest physical addresses but
 * not on the host (so buffers split at the boundary), a gap after them, and
 * helpers that lay out a split virtqueue in it the way a driver does. */
#ifndef SHUNT_TESTS_VIRTIO_GUEST_H
#define SHUNT_TESTS_VIRTIO_GUEST_H

#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/memtable.h"
#include "virtio/vring.h"

/* Region A: guest [0, 0x80000) at host mem; region B: guest [0x80000,
 * 0x100000) at host mem + 0x100000; guest 0x100000 and up: nothing. */
#define G_REGION 0x80000u
#define G_MEMSIZE 0x180000u
#define G_UADDR 0x7f0000000000ull   /* the front-end's address of guest 0 */
#define G_DESC 0x1000u
#define G_AVAIL 0x2000u
#define G_USED 0x3000u

struct guest {
  uint8_t *mem;
  struct memtable mt;
  struct vring_q q;
  unsigned num;
  uint16_t avail_idx;   /* the driver's next available index */
};

/* Host address of guest physical address gpa (test side, no checks). */
static inline void *g_host(struct guest *g, uint64_t gpa)
{
  return gpa < G_REGION ? g->mem + gpa : g->mem + 0x100000 + (gpa - G_REGION);
}

static inline int guest_init(struct guest *g, unsigned num, uint64_t features)
{
  struct vu_mem_region a = { 0, G_REGION, G_UADDR, 0 };
  struct vu_mem_region b = { G_REGION, G_REGION, G_UADDR + G_REGION, 0 };

  memset(g, 0, sizeof *g);
  g->mem = calloc(1, G_MEMSIZE);
  g->num = num;
  memtable_init(&g->mt);
  if (!g->mem || memtable_add(&g->mt, &a, g->mem, g->mem, G_REGION, NULL, 0) < 0
      || memtable_add(&g->mt, &b, g->mem + 0x100000, g->mem + 0x100000, G_REGION, NULL, 0) < 0)
    return -1;
  return vring_setup(&g->q, &g->mt, num, G_UADDR + G_DESC, G_UADDR + G_AVAIL, G_UADDR + G_USED,
                     features, 0);
}

static inline void guest_free(struct guest *g)
{
  free(g->mem);
}

static inline struct vring_desc *g_desc(struct guest *g, unsigned i)
{
  return (struct vring_desc *)g_host(g, G_DESC) + i;
}

static inline struct vring_avail *g_avail(struct guest *g)
{
  return g_host(g, G_AVAIL);
}

static inline struct vring_used *g_used(struct guest *g)
{
  return g_host(g, G_USED);
}

/* Write descriptor i of table t (the queue's, or an indirect one). */
static inline void g_set_desc(struct vring_desc *t, unsigned i, uint64_t addr, uint32_t len,
                              uint16_t flags, uint16_t next)
{
  t[i].addr = htole64(addr);
  t[i].len = htole32(len);
  t[i].flags = htole16(flags);
  t[i].next = htole16(next);
}

/* Make head available. */
static inline void g_offer(struct guest *g, uint16_t head)
{
  struct vring_avail *a = g_avail(g);
  a->ring[g->avail_idx % g->num] = htole16(head);
  g->avail_idx++;
  __atomic_store_n(&a->idx, htole16(g->avail_idx), __ATOMIC_RELEASE);
}

/* The driver's used_event (EVENT_IDX). */
static inline void g_set_used_event(struct guest *g, uint16_t v)
{
  g_avail(g)->ring[g->num] = htole16(v);
}

/* The device's avail_event (EVENT_IDX). */
static inline uint16_t g_avail_event(struct guest *g)
{
  uint16_t v;
  memcpy(&v, (uint8_t *)g_used(g) + 4 + 8 * (size_t)g->num, sizeof v);
  return le16toh(v);
}

#endif
