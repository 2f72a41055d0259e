/* sigthread.h: the thread of `shunt serve` and `shunt vhost` that takes
 * SIGUSR1 (write the statistics), SIGHUP (reload, when the caller has a
 * reload; else logged and ignored) and SIGUSR2 (logged and ignored: their
 * default action would kill the process without its clean shutdown) with
 * sigwait().  The caller blocks those signals in every thread first
 * (sigthread_block). */
#ifndef SHUNT_COMMON_SIGTHREAD_H
#define SHUNT_COMMON_SIGTHREAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct sigthread {
  void (*on_usr1)(void *arg);
  void *arg;
  const char *hup_msg;      /* logged on SIGHUP ("SIGHUP: <hup_msg>") without on_hup */
  /* Set before sigthread_start (NULL: none): runs on SIGHUP, on this thread
   * (SIGUSR1 waits for it), with the same arg as on_usr1. */
  void (*on_hup)(void *arg);
  pthread_t tid;
  atomic_bool quit;
  bool started;
};

/* Ignore SIGPIPE; block SIGINT, SIGTERM, SIGUSR1, SIGUSR2 and SIGHUP in
 * the calling thread (threads it starts later inherit the mask: call it
 * before any).  Returns a signalfd (close-on-exec) that reads SIGINT and
 * SIGTERM, or -errno: the signals stay blocked either way. */
int sigthread_block(void);

/* Start it: on_usr1(arg) runs on SIGUSR1.  False (logged) when the thread
 * cannot be made; sigthread_stop() is then a no-op. */
bool sigthread_start(struct sigthread *t, void (*on_usr1)(void *arg), void *arg, const char *hup_msg);

/* Stop and join it (when started). */
void sigthread_stop(struct sigthread *t);

#endif
