/* arena.c: the registered buffer arena (see arena.h).  A bitmap of 4 KiB
 * units with next-fit search; waiters are served in order. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "datapath/arena.h"
#include "common/macros.h"


static bool bit(const struct arena *a, size_t i) { return a->map[i / 64] >> (i % 64) & 1; }

static void set_bits(struct arena *a, size_t from, size_t n, bool on)
{
  for (size_t i = from; i < from + n; i++) {
    if (on)
      a->map[i / 64] |= UINT64_C(1) << (i % 64);
    else
      a->map[i / 64] &= ~(UINT64_C(1) << (i % 64));
  }
}

int arena_init(struct arena *a, struct engine *e, size_t size)
{
  memset(a, 0, sizeof *a);
  a->eng = e;
  a->wait_tail = &a->wait_head;
  size = (size + (2u << 20) - 1) & ~(size_t)((2u << 20) - 1);   /* whole 2 MiB hugepages */
  a->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0);
  if (a->base != MAP_FAILED) {
    a->huge = true;
  } else {
    a->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (a->base == MAP_FAILED) {
      a->base = NULL;
      return -errno;
    }
    madvise(a->base, size, MADV_HUGEPAGE);   /* transparent hugepages, when enabled */
  }
  a->size = size;
  a->nunits = size / ARENA_UNIT;
  a->map = calloc((a->nunits + 63) / 64, sizeof *a->map);
  if (!a->map) {
    munmap(a->base, size);
    a->base = NULL;
    return -ENOMEM;
  }
  struct iovec v = { a->base, size };
  a->registered = io_uring_register_buffers(&e->ring, &v, 1) == 0;
  return 0;
}

void arena_fini(struct arena *a)
{
  if (a->registered)
    io_uring_unregister_buffers(&a->eng->ring);
  if (a->base)
    munmap(a->base, a->size);
  free(a->map);
  memset(a, 0, sizeof *a);
}

void *arena_alloc(struct arena *a, size_t len)
{
  size_t need = (len + ARENA_UNIT - 1) / ARENA_UNIT;

  if (!a->base || need == 0 || need > a->nunits - a->used_units)
    return NULL;
  for (size_t pass = 0; pass < 2; pass++) {
    size_t i = pass ? 0 : a->cursor, end = pass ? a->cursor + need : a->nunits;
    if (end > a->nunits)
      end = a->nunits;
    while (i + need <= end) {
      if (a->map[i / 64] == UINT64_MAX && i % 64 == 0) {
        i += 64;
        continue;
      }
      size_t run = 0;
      while (run < need && !bit(a, i + run))
        run++;
      if (run == need) {
        set_bits(a, i, need, true);
        a->used_units += need;
        a->cursor = i + need == a->nunits ? 0 : i + need;
        return a->base + i * ARENA_UNIT;
      }
      i += run + 1;
    }
  }
  return NULL;
}

bool arena_owns(const struct arena *a, const void *p)
{
  return a->base && (const uint8_t *)p >= a->base && (const uint8_t *)p < a->base + a->size;
}

static void waiter_run(struct engine_op *op, int res, uint32_t flags)
{
  struct arena_waiter *w = container_of(op, struct arena_waiter, op);
  (void)res; (void)flags;
  w->ready(w, w->buf);
}

static void wake_waiters(struct arena *a)
{
  while (a->wait_head) {
    struct arena_waiter *w = a->wait_head;
    void *buf = arena_alloc(a, w->len);
    if (!buf)
      return;   /* first come, first served: later ones wait behind it */
    a->wait_head = w->next;
    if (!a->wait_head)
      a->wait_tail = &a->wait_head;
    a->nwaiting--;
    w->buf = buf;
    w->op.cb = waiter_run;
    engine_defer(a->eng, &w->op, 0);
  }
}

void arena_free(struct arena *a, void *p, size_t len)
{
  size_t need = (len + ARENA_UNIT - 1) / ARENA_UNIT;
  size_t i = (size_t)((uint8_t *)p - a->base) / ARENA_UNIT;

  set_bits(a, i, need, false);
  a->used_units -= need;
  wake_waiters(a);
}

void arena_wait(struct arena *a, struct arena_waiter *w)
{
  w->next = NULL;
  *a->wait_tail = w;
  a->wait_tail = &w->next;
  a->nwaiting++;
  wake_waiters(a);
}
