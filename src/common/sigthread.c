/* sigthread.c: SIGUSR1, SIGHUP and SIGUSR2 taken by a thread of their own
 * (sigthread.h). */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>

#include "common/log.h"
#include "common/sigthread.h"

static void *run(void *arg)
{
  struct sigthread *t = arg;
  sigset_t set;
  int sig;

  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGUSR2);
  sigaddset(&set, SIGHUP);
  while (sigwait(&set, &sig) == 0 && !atomic_load(&t->quit)) {
    if (sig == SIGUSR1)
      t->on_usr1(t->arg);
    else if (sig == SIGHUP && t->on_hup)
      t->on_hup(t->arg);
    else if (sig == SIGHUP)
      log_msg(LOG_WARN, NULL, NULL, "SIGHUP: %s", t->hup_msg);
    else
      log_msg(LOG_WARN, NULL, NULL, "SIGUSR2: no meaning; ignored");
  }
  return NULL;
}

int sigthread_block(void)
{
  sigset_t mask;
  int fd;

  signal(SIGPIPE, SIG_IGN);
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGUSR1);
  sigaddset(&mask, SIGUSR2);
  sigaddset(&mask, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &mask, NULL);
  sigdelset(&mask, SIGUSR1);
  sigdelset(&mask, SIGUSR2);
  sigdelset(&mask, SIGHUP);
  fd = signalfd(-1, &mask, SFD_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

bool sigthread_start(struct sigthread *t, void (*on_usr1)(void *arg), void *arg, const char *hup_msg)
{
  int r;

  t->on_usr1 = on_usr1;
  t->arg = arg;
  t->hup_msg = hup_msg;
  atomic_store(&t->quit, false);
  t->started = (r = pthread_create(&t->tid, NULL, run, t)) == 0;
  if (!t->started)
    log_msg(LOG_WARN, NULL, NULL, "cannot start the signal thread: %s (SIGUSR1 writes no statistics)", strerror(r));
  return t->started;
}

void sigthread_stop(struct sigthread *t)
{
  if (!t->started)
    return;
  atomic_store(&t->quit, true);
  pthread_kill(t->tid, SIGUSR1);   /* wakes its sigwait() */
  pthread_join(t->tid, NULL);
  t->started = false;
}
