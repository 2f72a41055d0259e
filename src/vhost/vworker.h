/* vworker.h: a worker thread of `shunt vhost`: its engine (one io_uring
 * loop), the devices assigned to it (their accepts and connections run on
 * this loop), the queues it serves (of its devices and of others'), an
 * eventfd to be told to stop and, on worker 0, the signalfd. */
#ifndef SHUNT_VHOST_VWORKER_H
#define SHUNT_VHOST_VWORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/engine.h"
#include "engine/stopper.h"

struct vhost;

struct vworker {
  struct vhost *vh;
  struct engine eng;
  bool eng_ready;
  int id;
  struct engine_stopper stopper; /* woken by other threads; worker 0: the signalfd */
  bool stopping;
  atomic_uint nhosted;           /* queues served here (of devices of any worker) */
  atomic_bool eng_live;          /* the engine takes posts (engine_post) */
  struct engine_op nudge_op;     /* posted when the last device shut down: the loop looks again */
  bool mem_register_refused;     /* dp_mem_register refused once (logged once) */
};

/* Prepare the worker (its eventfd; the engine is made by vworker_run on the
 * worker's own thread).  Returns 0 or -errno. */
int vworker_init(struct vworker *w, struct vhost *vh, int id);
/* Create the engine, start the worker's devices and run the loop in the
 * calling thread until the worker stopped and its devices shut down. */
int vworker_run(struct vworker *w);
/* Release what vworker_init and vworker_run made (after the loop ended). */
void vworker_fini(struct vworker *w);
/* Ask the worker (from any thread) to stop. */
void vworker_wake(struct vworker *w);
/* A device of w finished shutting down (on w's thread).  After the last
 * device of the process, every worker ends once it serves no queue. */
void vworker_device_done(struct vworker *w);

#endif
