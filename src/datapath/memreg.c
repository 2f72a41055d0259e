/* memreg.c: the caller's memory registered as fixed buffers on a worker's
 * ring, in a sparse buffer table shared with the arena (see memreg.h and
 * dp_mem_register() in datapath.h).  Slots are updated one by one
 * (IORING_REGISTER_BUFFERS_UPDATE): registering or unregistering memory
 * never disturbs the arena or I/O in flight on other slots (the kernel
 * keeps a slot's old pages until the I/O that uses them ends). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "datapath/datapath.h"
#include "datapath/dpworker.h"
#include "datapath/memreg.h"


size_t dp_mem_piece_max = DP_MEM_PIECE_MAX;

struct dp_fixed_slot {
  void *owner;                   /* the addr dp_mem_register was called with; NULL: free */
  const uint8_t *addr;
  size_t len;
};

struct dp_fixed {
  int err;                       /* 0: the sparse table exists; else why it does not */
  bool vec_fixed;                /* the kernel has READV_FIXED/WRITEV_FIXED */
  unsigned used;                 /* slots 1.. in use */
  struct dp_fixed_slot slot[DP_FIXED_SLOTS];
};

/* Register the arena in slot 0 of the table; true when it worked. */
static bool arena_in_slot0(struct dp_worker *dw)
{
  struct iovec v = { dw->arena.base, dw->arena.size };
  return io_uring_register_buffers_update_tag(&dw->eng->ring, 0, &v, NULL, 1) == 1;
}

/* The table of dw's ring, made on first use: the arena, registered alone
 * so far, moves into slot 0.  NULL on ENOMEM; otherwise fx->err says
 * whether the table exists. */
static struct dp_fixed *fixed_table(struct dp_worker *dw)
{
  struct io_uring *ring = &dw->eng->ring;
  struct dp_fixed *fx = dw->fixed;
  bool arena = dw->arena_ok && dw->arena.registered;

  if (fx)
    return fx;
  if (!(fx = calloc(1, sizeof *fx)))
    return NULL;
  dw->fixed = fx;
  if (arena)
    io_uring_unregister_buffers(ring);
  fx->err = io_uring_register_buffers_sparse(ring, DP_FIXED_SLOTS);
  if (fx->err < 0) {
    if (arena) {
      struct iovec v = { dw->arena.base, dw->arena.size };
      dw->arena.registered = io_uring_register_buffers(ring, &v, 1) == 0;
    }
    return fx;
  }
  fx->err = 0;
  if (arena)
    dw->arena.registered = arena_in_slot0(dw);
  struct io_uring_probe *p = io_uring_get_probe_ring(ring);
  fx->vec_fixed = p && io_uring_opcode_supported(p, DP_OP_READV_FIXED)
                  && io_uring_opcode_supported(p, DP_OP_WRITEV_FIXED);
  if (p)
    io_uring_free_probe(p);
  return fx;
}

void dp_fixed_adopt_arena(struct dp_worker *dw)
{
  if (dw->fixed && dw->fixed->err == 0)
    dw->arena.registered = arena_in_slot0(dw);
}

void dp_fixed_fini(struct dp_worker *dw)
{
  free(dw->fixed);
  dw->fixed = NULL;
}

static void slot_clear(struct dp_worker *dw, unsigned i)
{
  struct iovec none = { NULL, 0 };

  io_uring_register_buffers_update_tag(&dw->eng->ring, i, &none, NULL, 1);
  dw->fixed->slot[i] = (struct dp_fixed_slot){ 0 };
  dw->fixed->used--;
}

void dp_mem_unregister(struct engine *e, void *addr)
{
  struct dp_worker *dw = e->dp;

  if (!dw || !dw->fixed || !addr)
    return;
  for (unsigned i = 1; i < DP_FIXED_SLOTS && dw->fixed->used; i++)
    if (dw->fixed->slot[i].owner == addr)
      slot_clear(dw, i);
}

int dp_mem_register(struct engine *e, void *addr, size_t len)
{
  struct dp_worker *dw = dp_worker_get(e);
  struct dp_fixed *fx;
  size_t done = 0;
  unsigned i = 1;

  if (!dw)
    return -ENOMEM;
  if (!addr || len == 0)
    return -EINVAL;
  if (!(fx = fixed_table(dw)))
    return -ENOMEM;
  if (fx->err)
    return fx->err;
  for (unsigned k = 1; k < DP_FIXED_SLOTS; k++)
    if (fx->slot[k].owner == addr)
      return -EEXIST;
  while (done < len) {
    size_t max = dp_mem_piece_max && dp_mem_piece_max < DP_MEM_PIECE_MAX ? dp_mem_piece_max : DP_MEM_PIECE_MAX;
    size_t piece = len - done < max ? len - done : max;
    struct iovec v = { (uint8_t *)addr + done, piece };
    int r;
    while (i < DP_FIXED_SLOTS && fx->slot[i].owner)
      i++;
    r = i == DP_FIXED_SLOTS ? -ENOSPC : io_uring_register_buffers_update_tag(&e->ring, i, &v, NULL, 1);
    if (r != 1) {
      dp_mem_unregister(e, addr);   /* the pieces registered so far */
      return r < 0 ? r : -EIO;
    }
    fx->slot[i] = (struct dp_fixed_slot){ addr, v.iov_base, piece };
    fx->used++;
    done += piece;
  }
  return 0;
}

int dp_mem_fixed_index(struct engine *e, const void *addr, size_t len)
{
  struct dp_worker *dw = e->dp;
  const uint8_t *p = addr;
  unsigned seen = 0;

  if (!dw || !dw->fixed || !dw->fixed->used)
    return -1;
  for (unsigned i = 1; i < DP_FIXED_SLOTS && seen < dw->fixed->used; i++) {
    const struct dp_fixed_slot *s = &dw->fixed->slot[i];
    if (!s->owner)
      continue;
    seen++;
    if (p >= s->addr && len <= s->len && (size_t)(p - s->addr) <= s->len - len)
      return (int)i;
  }
  return -1;
}

bool dp_mem_vec_fixed(struct engine *e)
{
  struct dp_worker *dw = e->dp;
  return dw && dw->fixed && dw->fixed->vec_fixed;
}

void dp_mem_no_vec_fixed(struct engine *e)
{
  struct dp_worker *dw = e->dp;
  if (dw && dw->fixed)
    dw->fixed->vec_fixed = false;
}
