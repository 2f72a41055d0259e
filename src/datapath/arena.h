/* arena.h: a worker's buffer arena for the direct data path: one region
 * mapped up front (on hugepages when there are any), registered with the
 * worker's io_uring (READ_FIXED/WRITE_FIXED use buffer index 0), handed out
 * in 4 KiB-aligned pieces.  When it is full a caller may queue a waiter that
 * runs (on the next loop turn) as soon as a piece of its size is free. */
#ifndef SHUNT_DATAPATH_ARENA_H
#define SHUNT_DATAPATH_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

#define ARENA_UNIT 4096u

struct arena_waiter {
  struct engine_op op;           /* arena-internal: deferred wake-up */
  struct arena_waiter *next;
  size_t len;
  /* Runs on the next loop turn with a piece of len bytes. */
  void (*ready)(struct arena_waiter *w, void *buf);
  void *buf;
};

struct arena {
  struct engine *eng;
  uint8_t *base;
  size_t size, nunits, used_units;
  uint64_t *map;                 /* one bit per unit, set = in use */
  size_t cursor;                 /* next-fit search start */
  bool huge, registered;
  struct arena_waiter *wait_head, **wait_tail;
  unsigned nwaiting;
};

/* Map size bytes (rounded up to units) and register them with e's ring.
 * Registration failing is not an error (plain READ/WRITE are used then).
 * Returns 0 or -errno (no memory at all). */
int arena_init(struct arena *a, struct engine *e, size_t size);
/* Unregister and unmap. */
void arena_fini(struct arena *a);

/* A piece of len bytes (4 KiB aligned), or NULL when none is free. */
void *arena_alloc(struct arena *a, size_t len);
/* Give back a piece from arena_alloc (same len); wakes waiters that now fit. */
void arena_free(struct arena *a, void *p, size_t len);
/* True when p lies inside the arena. */
bool arena_owns(const struct arena *a, const void *p);

/* Queue w (w->len, w->ready set) to get a piece once one is free, in
 * first-come order. */
void arena_wait(struct arena *a, struct arena_waiter *w);

#endif
