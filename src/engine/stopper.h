/* stopper.h: how a worker's loop learns that it must stop.  Any thread may
 * wake it (an eventfd whose read stays armed on the worker's ring); one
 * worker also reads the process's signalfd of SIGINT and SIGTERM: the first
 * signal asks the whole process to stop, a second one, once it stops, exits
 * at once.  serve's and vhost's workers each keep one. */
#ifndef SHUNT_ENGINE_STOPPER_H
#define SHUNT_ENGINE_STOPPER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/signalfd.h>

#include "engine/engine.h"

struct engine_stopper {
  /* Set by the owner before engine_stopper_start. */
  const atomic_bool *stopping;     /* the process stops (set by request_stop) */
  void (*request_stop)(void *arg); /* a signal came: stop the whole process */
  void (*stop)(void *arg);         /* woken while the process stops: this worker
                                    * begins stopping (on its own thread) */
  void *arg;
  /* The stopper's own. */
  struct engine *eng;
  bool quiet;                      /* engine_stopper_quiet: not armed again */
  int wake_fd;                     /* eventfd: another thread asks us to stop */
  struct engine_op wake_op;
  uint64_t wake_val;
  bool wake_armed;
  int sig_fd;                      /* the signalfd, or -1 on all workers but one */
  struct engine_op sig_op;
  struct signalfd_siginfo siginfo;
  bool sig_armed;                  /* stays armed to the end: counts in eng->pending */
};

/* Make the eventfd (the other fields are zeroed, sig_fd -1).  Returns 0 or
 * -errno. */
int engine_stopper_init(struct engine_stopper *s);
/* Close the eventfd (after the loop ended). */
void engine_stopper_fini(struct engine_stopper *s);
/* On the worker's thread, its engine made: arm the wake read on e, and the
 * read of sig_fd when it is not -1 ("signal N: finishing in-flight
 * requests, then exiting" is logged, then request_stop; a signal once
 * *stopping is set logs "second signal N: exiting at once" and _exits 1). */
void engine_stopper_start(struct engine_stopper *s, struct engine *e, int sig_fd);
/* From any thread: the worker's wake read completes (and, when the process
 * stops, stop runs on the worker's thread). */
void engine_stopper_wake(struct engine_stopper *s);
/* On the worker's thread, as it begins stopping: the wake read is
 * cancelled and not armed again. */
void engine_stopper_quiet(struct engine_stopper *s);

#endif
