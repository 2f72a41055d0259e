/* rangeset.c: a table of address ranges read by signal handlers (rangeset.h). */
#include <errno.h>

#include "common/rangeset.h"

enum { SLOT_FREE, SLOT_BUSY, SLOT_LIVE };

int rangeset_add(struct rangeset *rs, const void *start, size_t len)
{
  for (unsigned i = 0; i < rs->n; i++) {
    int want = SLOT_FREE;
    if (!atomic_compare_exchange_strong(&rs->slots[i].state, &want, SLOT_BUSY))
      continue;
    atomic_store(&rs->slots[i].start, (uintptr_t)start);
    atomic_store(&rs->slots[i].end, (uintptr_t)start + len);
    atomic_store(&rs->slots[i].state, SLOT_LIVE);
    return 0;
  }
  return -ENOSPC;
}

void rangeset_remove(struct rangeset *rs, const void *start)
{
  for (unsigned i = 0; i < rs->n; i++) {
    int want = SLOT_LIVE;
    if (atomic_load(&rs->slots[i].start) != (uintptr_t)start)
      continue;
    if (!atomic_compare_exchange_strong(&rs->slots[i].state, &want, SLOT_BUSY))
      continue;
    atomic_store(&rs->slots[i].start, 0);
    atomic_store(&rs->slots[i].end, 0);
    atomic_store(&rs->slots[i].state, SLOT_FREE);
    return;
  }
}

bool rangeset_covers(const struct rangeset *rs, uintptr_t a, uintptr_t len)
{
  for (unsigned i = 0; i < rs->n; i++) {
    if (atomic_load(&rs->slots[i].state) != SLOT_LIVE)
      continue;
    uintptr_t s = atomic_load(&rs->slots[i].start), e = atomic_load(&rs->slots[i].end);
    if (a >= s && a < e && len <= e - a)
      return true;
  }
  return false;
}
