/* rangelock.h: ordering of writes to the same blocks of one file, across
 * all workers and the file's exports (the direct data path's writes).  A writer locks the blocks it touches:
 * shared when it only overwrites whole blocks (O_DIRECT writes of aligned
 * data: any number at once), exclusive when it reads and rewrites a block
 * (the unaligned edge of a write, read-modify-write) or changes blocks
 * behind the writes' back (TRIM, WRITE_ZEROES).  Two locks conflict when
 * their ranges overlap and one of them is exclusive.
 *
 * First come, first served: a lock is granted when it conflicts with no
 * lock taken before it, held or still waiting, so a waiter is never
 * overtaken by a later conflicting lock and nobody starves.  A waiter is
 * granted on its own worker's loop (engine_post from the releasing worker).
 * The table's mutex is held only to update it, never across I/O.  Reads take
 * no lock.  Cost: a shared lock or release walks the exclusive locks in
 * flight on the export; an exclusive one walks all of them. */
#ifndef SHUNT_DATAPATH_RANGELOCK_H
#define SHUNT_DATAPATH_RANGELOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

struct rl_lock {
  /* Set by the caller before rangelock_lock. */
  uint64_t start, end;           /* byte range [start, end); callers round it to blocks */
  bool excl;
  const void *merge_key;         /* non-NULL: rangelock_take_same may hand it to a holder */
  struct engine *eng;            /* the owner's loop: granted() runs there; unlock is called there */
  void (*granted)(struct rl_lock *l);
  /* rangelock-internal */
  struct engine_op op;
  struct rl_lock *prev, *next;   /* the table's list, in order of arrival */
  struct rl_lock *xprev, *xnext; /* the exclusive locks only, same order */
  uint64_t seq;                  /* arrival number */
  bool held;
};

struct rangelock {
  pthread_mutex_t mu;
  struct rl_lock *head, *tail;   /* every lock, in order of arrival */
  struct rl_lock *xhead, *xtail; /* the exclusive ones */
  uint64_t seq;
  uint64_t waits;                /* locks that had to wait, for tests and stats */
};

/* Set up and tear down (the table must be empty) a table. */
void rangelock_init(struct rangelock *t);
void rangelock_fini(struct rangelock *t);

/* Take l on t.  Returns true when granted at once (granted() is not called);
 * false when l waits: l->granted(l) runs later on l->eng's loop, once every
 * conflicting lock taken before l has been released. */
bool rangelock_lock(struct rangelock *t, struct rl_lock *l);

/* Release a held lock, on l->eng's loop; grants the waiters it was holding
 * up that nothing else holds up (on their own loops, never inside this call). */
void rangelock_unlock(struct rangelock *t, struct rl_lock *l);

/* For the holder l of an exclusive lock: take (mark held, without calling
 * granted()) up to max waiters queued right behind l for exactly l's range
 * with l's merge_key, in order, stopping at the first conflicting lock that
 * is not such a waiter (nothing is overtaken).  l's owner then does their
 * work together with its own (one read-modify-write of a hot block instead
 * of one each) and tells their owners, who release them as usual.
 * Returns how many were stored in out[]. */
size_t rangelock_take_same(struct rangelock *t, struct rl_lock *l, struct rl_lock **out, size_t max);

#endif
