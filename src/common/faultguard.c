/* faultguard.c: SIGBUS in registered mappings returns to the guard armed on
 * the faulting thread (see faultguard.h).  The list is a fixed array of
 * slots changed with atomics only, since the handler reads it at any
 * moment; the armed guard is thread-local. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "common/faultguard.h"

#define FAULTGUARD_SLOTS 256

enum { SLOT_FREE, SLOT_BUSY, SLOT_LIVE };

static struct {
  atomic_int state;
  _Atomic uintptr_t start, end;
} slots[FAULTGUARD_SLOTS];
static _Thread_local struct faultguard *armed;
static struct sigaction previous;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int install_error;

static int find(uintptr_t a, uintptr_t len)
{
  for (unsigned i = 0; i < FAULTGUARD_SLOTS; i++) {
    if (atomic_load(&slots[i].state) != SLOT_LIVE)
      continue;
    uintptr_t s = atomic_load(&slots[i].start), e = atomic_load(&slots[i].end);
    if (a >= s && a < e && len <= e - a)
      return 1;
  }
  return 0;
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
  struct faultguard *g = armed;

  if (g && find((uintptr_t)si->si_addr, 1)) {
    armed = g->prev;
    g->addr = si->si_addr;
    siglongjmp(g->env, 1);
  }
  if (previous.sa_flags & SA_SIGINFO) {
    previous.sa_sigaction(sig, si, uc);
    return;
  }
  if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
    previous.sa_handler(sig);
    return;
  }
  /* The default action: the faulting access is retried and kills. */
  signal(sig, SIG_DFL);
}

static void install(void)
{
  struct sigaction sa;

  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigbus;
  /* Not blocked inside the handler: the jump leaves it without restoring
   * a signal mask (sigsetjmp(env, 0) saves none, and costs no syscall). */
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, &previous) < 0)
    install_error = -errno;
}

int faultguard_add(const void *start, size_t len)
{
  pthread_once(&once, install);
  if (install_error)
    return install_error;
  for (unsigned i = 0; i < FAULTGUARD_SLOTS; i++) {
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

void faultguard_remove(const void *start)
{
  for (unsigned i = 0; i < FAULTGUARD_SLOTS; i++) {
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

int faultguard_covers(const void *p, size_t len)
{
  return find((uintptr_t)p, len);
}

void faultguard_enter(struct faultguard *g)
{
  g->prev = armed;
  g->addr = NULL;
  armed = g;
}

void faultguard_leave(struct faultguard *g)
{
  if (armed == g)
    armed = g->prev;
}
