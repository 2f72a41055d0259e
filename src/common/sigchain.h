/* sigchain.h: handlers of fault signals (SIGBUS) that take only the faults
 * in memory they know, and leave every other one to whoever had the signal
 * before them: the handler installed earlier (a sanitizer's, another
 * guard's), or the default action.  faultguard.h and vhost's guardmem.h
 * each install one; in either order, each passes on what is not its own. */
#ifndef SHUNT_COMMON_SIGCHAIN_H
#define SHUNT_COMMON_SIGCHAIN_H

#include <signal.h>

struct sigchain {
  struct sigaction prev;        /* what the signal did before sigchain_install */
};

/* Install fn for sig with SA_SIGINFO | SA_NODEFER (the signal is not
 * blocked inside fn, which may leave by siglongjmp() without restoring a
 * signal mask), keeping what it replaces in c->prev.  Once per chain: a
 * second install would make fn its own predecessor.  Returns 0 or -errno. */
int sigchain_install(struct sigchain *c, int sig, void (*fn)(int sig, siginfo_t *si, void *uc));

/* From fn, for a fault that is not its own: run the previous handler, or,
 * when there was none (default or ignored), restore the default action and
 * return, so that the faulting access is retried and kills the process.
 * Async-signal-safe. */
void sigchain_forward(const struct sigchain *c, int sig, siginfo_t *si, void *uc);

#endif
