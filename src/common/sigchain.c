/* sigchain.c: a fault handler's predecessor (see sigchain.h). */
#include <errno.h>
#include <string.h>

#include "common/sigchain.h"

int sigchain_install(struct sigchain *c, int sig, void (*fn)(int sig, siginfo_t *si, void *uc))
{
  struct sigaction sa;

  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = fn;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  return sigaction(sig, &sa, &c->prev) < 0 ? -errno : 0;
}

void sigchain_forward(const struct sigchain *c, int sig, siginfo_t *si, void *uc)
{
  if (c->prev.sa_flags & SA_SIGINFO) {
    c->prev.sa_sigaction(sig, si, uc);
    return;
  }
  if (c->prev.sa_handler != SIG_DFL && c->prev.sa_handler != SIG_IGN) {
    c->prev.sa_handler(sig);
    return;
  }
  /* The default action: the faulting access is retried and kills. */
  signal(sig, SIG_DFL);
}
