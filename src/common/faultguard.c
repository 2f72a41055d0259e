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

#define FAULTGUARD_SLOTS 256

static struct rangeset_slot slots[FAULTGUARD_SLOTS];
static struct rangeset guarded = { slots, FAULTGUARD_SLOTS };
static _Thread_local struct faultguard *armed;
static struct sigaction previous;
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
