/* rangeset.h: a table of address ranges that a signal handler may read at
 * any moment (common/faultguard.c and vhost/guardmem.c: the mappings whose
 * SIGBUS they handle).  A fixed array of slots, given by the owner, changed
 * with atomics only: adding and removing never block, and finding is
 * async-signal-safe. */
#ifndef SHUNT_COMMON_RANGESET_H
#define SHUNT_COMMON_RANGESET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rangeset_slot {
  atomic_int state;
  _Atomic uintptr_t start, end;
};

/* A zero-initialised array of n slots (static storage is). */
struct rangeset {
  struct rangeset_slot *slots;
  unsigned n;
};

/* Add [start, start + len).  Returns 0, or -ENOSPC when every slot is taken. */
int rangeset_add(struct rangeset *rs, const void *start, size_t len);

/* Remove the range that starts at start (as given to rangeset_add). */
void rangeset_remove(struct rangeset *rs, const void *start);

/* Whether [a, a + len) lies inside one range.  Async-signal-safe. */
bool rangeset_covers(const struct rangeset *rs, uintptr_t a, uintptr_t len);

#endif
