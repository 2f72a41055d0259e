/* guardmem.c: repairing a SIGBUS in guest memory (see guardmem.h).  The
 * list is a fixed array of slots changed with atomics only, since the
 * signal handler reads it at any moment. */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vhost/guardmem.h"

#define GUARD_SLOTS 1024

enum { SLOT_FREE, SLOT_BUSY, SLOT_LIVE };

static struct {
  atomic_int state;
  _Atomic uintptr_t start, end;
} slots[GUARD_SLOTS];
static atomic_uint_fast64_t repaired;
static uintptr_t page_size;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
  uintptr_t a = (uintptr_t)si->si_addr;
  (void)uc;

  for (unsigned i = 0; i < GUARD_SLOTS; i++) {
    if (atomic_load(&slots[i].state) != SLOT_LIVE)
      continue;
    if (a < atomic_load(&slots[i].start) || a >= atomic_load(&slots[i].end))
      continue;
    void *page = (void *)(a & ~(page_size - 1));
    if (mmap(page, page_size, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED) {
      atomic_fetch_add(&repaired, 1);
      return;   /* the access is retried on the zero page */
    }
    break;
  }
  /* Not guest memory (or no repair possible): the default action. */
  signal(sig, SIG_DFL);
}

int guardmem_init(void)
{
  struct sigaction sa;

  page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  return sigaction(SIGBUS, &sa, NULL) < 0 ? -errno : 0;
}

int guardmem_add(void *start, size_t len)
{
  for (unsigned i = 0; i < GUARD_SLOTS; i++) {
    int want = SLOT_FREE;
    if (!atomic_compare_exchange_strong(&slots[i].state, &want, SLOT_BUSY))
      continue;
    atomic_store(&slots[i].start, (uintptr_t)start);
    atomic_store(&slots[i].end, (uintptr_t)start + len);
    atomic_store(&slots[i].state, SLOT_LIVE);
    return 0;
  }
  return -ENOSPC;
}

void guardmem_remove(void *start)
{
  for (unsigned i = 0; i < GUARD_SLOTS; i++) {
    int want = SLOT_LIVE;
    if (atomic_load(&slots[i].start) != (uintptr_t)start)
      continue;
    if (!atomic_compare_exchange_strong(&slots[i].state, &want, SLOT_BUSY))
      continue;
    atomic_store(&slots[i].start, 0);
    atomic_store(&slots[i].end, 0);
    atomic_store(&slots[i].state, SLOT_FREE);
    return;
  }
}

uint64_t guardmem_repaired(void)
{
  return atomic_load(&repaired);
}
