/* guardmem.c: repairing a SIGBUS in guest memory (see guardmem.h).  The
 * regions are a common/rangeset.h table, which the handler may read at
 * any moment. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/rangeset.h"
#include "common/sigchain.h"
#include "vhost/guardmem.h"

#define GUARD_SLOTS 1024

static struct rangeset_slot slots[GUARD_SLOTS];
static struct rangeset guarded = { slots, GUARD_SLOTS };
static atomic_uint_fast64_t repaired;
static uintptr_t page_size;
static struct sigchain chain;   /* the SIGBUS handler before ours */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int install_error;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
  uintptr_t a = (uintptr_t)si->si_addr;

  if (rangeset_covers(&guarded, a, 1)) {
    void *page = (void *)(a & ~(page_size - 1));
    if (mmap(page, page_size, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED) {
      atomic_fetch_add(&repaired, 1);
      return;   /* the access is retried on the zero page */
    }
  }
  /* Not guest memory (or no repair possible): the handler before ours
   * (a guard's, a sanitizer's), or the default action. */
  sigchain_forward(&chain, sig, si, uc);
}

static void install(void)
{
  page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
  install_error = sigchain_install(&chain, SIGBUS, on_sigbus);
}

int guardmem_init(void)
{
  pthread_once(&once, install);
  return install_error;
}

int guardmem_add(void *start, size_t len)
{
  return rangeset_add(&guarded, start, len);
}

void guardmem_remove(void *start)
{
  rangeset_remove(&guarded, start);
}

uint64_t guardmem_repaired(void)
{
  return atomic_load(&repaired);
}
