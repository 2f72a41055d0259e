/* bufpool.h: a worker's pool of payload buffers, so that READ and WRITE
 * data, block-status replies and bounce blocks do not map, fault and zero
 * fresh memory per request.  Buffers come in size classes (powers of two
 * from 4 KiB to the 32 MiB maximum payload), page-aligned, kept on one free
 * list per class and handed out again; a new buffer is pre-faulted when the
 * caller asks (MAP_POPULATE).  Bounded: a returned buffer is kept only while
 * the pool's buffers (idle and handed out) stay within its bound, so idle
 * memory never exceeds it; handed-out buffers are what their requests were
 * charged for (in-flight caps).  One pool per worker thread, no locks: a
 * buffer returned on another thread is unmapped there. */
#ifndef SHUNT_DATAPATH_BUFPOOL_H
#define SHUNT_DATAPATH_BUFPOOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BUFPOOL_MIN_SHIFT 12u     /* 4 KiB */
#define BUFPOOL_MAX_SHIFT 25u     /* 32 MiB, the largest payload the server accepts */
#define BUFPOOL_CLASSES   (BUFPOOL_MAX_SHIFT - BUFPOOL_MIN_SHIFT + 1)


struct bufpool {
  void *free[BUFPOOL_CLASSES];    /* idle buffers per class, linked through their first word */
  unsigned nfree[BUFPOOL_CLASSES];
  _Atomic size_t held;            /* bytes of the pool's buffers that exist (idle or handed out) */
  _Atomic size_t idle;            /* bytes of them on the free lists (written by the owner only) */
  size_t max;                     /* bound on held beyond which returned buffers are unmapped */
  uint64_t hits, allocs;          /* gets served from a free list / by mapping a new buffer */
  pthread_t owner;                /* the thread whose lists these are */
  struct bufpool *next_pool;      /* every pool of the process, for bufpool_totals */
  struct bufpool **prev_pool;
};

/* Bytes held by every pool of the process (handed out and idle), and how
 * many of them are idle: for the stats.  Each pool keeps its own counts (no
 * counter shared by the workers); this sums them, from any thread. */
void bufpool_totals(uint64_t *held, uint64_t *idle);

/* An empty pool owned by the calling thread, keeping at most max bytes
 * (counted in bufpool_totals until bufpool_fini). */
void bufpool_init(struct bufpool *p, size_t max);

/* Unmap the idle buffers (the owner thread, none handed out any more); the
 * pool leaves bufpool_totals. */
void bufpool_fini(struct bufpool *p);

/* The bytes a buffer for len bytes really has: its class's size (len
 * rounded up to a power of two, at least 4 KiB), or len rounded up to whole
 * pages beyond the largest class. */
size_t bufpool_size(size_t len);

/* A page-aligned buffer of at least len bytes (len > 0), from the free list
 * of its class or newly mapped: with prefault, all its pages are faulted in
 * at once (a READ's buffer, filled by the kernel at once); without, they
 * are faulted as they are written (a WRITE's payload, which arrives bit by
 * bit: a header alone must not take memory).  *hit (may be NULL) tells
 * which.  NULL on ENOMEM.  Owner thread only. */
void *bufpool_get(struct bufpool *p, size_t len, bool prefault, bool *hit);

/* Give back buf from bufpool_get(p, len, ...): kept for reuse when the
 * pool is within its bound with it, giving up idle buffers (largest first)
 * if that makes room; else unmapped.  Any thread (on another than the
 * owner it is unmapped). */
void bufpool_put(struct bufpool *p, void *buf, size_t len);

/* Unmap idle buffers, largest first, until at most keep bytes are idle
 * (owner thread; for when the worker is idle). */
void bufpool_trim(struct bufpool *p, size_t keep);

#endif
