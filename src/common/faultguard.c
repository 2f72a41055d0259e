/* faultguard.c: SIGBUS in registered mappings returns to the guard armed on
 * the faulting thread (see faultguard.h).  The mappings are a
 * common/rangeset.h table, which the handler may read at any moment; the
 * armed guard is thread-local. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "common/faultguard.h"
#include "common/rangeset.h"
#include "common/sigchain.h"

#define FAULTGUARD_SLOTS 256

static struct rangeset_slot slots[FAULTGUARD_SLOTS];
static struct rangeset guarded = { slots, FAULTGUARD_SLOTS };
static _Thread_local struct faultguard *armed;
static struct sigchain chain;   /* the SIGBUS handler before ours */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int install_error;

static int find(uintptr_t a, uintptr_t len) { return rangeset_covers(&guarded, a, len); }

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
  struct faultguard *g = armed;

  if (g && find((uintptr_t)si->si_addr, 1)) {
    armed = g->prev;
    g->addr = si->si_addr;
    siglongjmp(g->env, 1);
  }
  sigchain_forward(&chain, sig, si, uc);
}

static void install(void)
{
  install_error = sigchain_install(&chain, SIGBUS, on_sigbus);
}

int faultguard_add(const void *start, size_t len)
{
  pthread_once(&once, install);
  if (install_error)
    return install_error;
  return rangeset_add(&guarded, start, len);
}

void faultguard_remove(const void *start)
{
  rangeset_remove(&guarded, start);
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
