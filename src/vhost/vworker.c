/* vworker.c: a worker thread's loop (see vworker.h). */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"
#include "datapath/dpworker.h"
#include "vhost/device.h"
#include "vhost/vhost.h"
#include "vhost/vworker.h"

/* Begin stopping (on the worker's own thread): every device of this worker
 * stops accepting and closes its connection once its queues drained. */
static void vworker_stop(struct vworker *w)
{
  if (w->stopping)
    return;
  w->stopping = true;
  engine_stopper_quiet(&w->stopper);
  for (size_t i = 0; i < w->vh->ndevs; i++)
    if (w->vh->devs[i].w == w)
      vdev_stop(&w->vh->devs[i]);
}

static void stop_self(void *arg) { vworker_stop(arg); }

static void stop_vhost(void *arg)
{
  struct vworker *w = arg;
  vhost_request_stop(w->vh);
}

void vworker_device_done(struct vworker *w)
{
  struct vhost *vh = w->vh;

  if (atomic_fetch_sub(&vh->busy_devices, 1) != 1)
    return;
  for (unsigned i = 0; i < vh->nworkers; i++)
    if (atomic_load(&vh->workers[i].eng_live))
      engine_post(&vh->workers[i].eng, &vh->workers[i].nudge_op, 0);
}

static bool vworker_done(void *arg)
{
  struct vworker *w = arg;
  /* Queues of another worker's device may run here until that device is
   * done.  The signal read (worker 0) stays armed to catch a second signal. */
  return w->stopping && atomic_load(&w->vh->busy_devices) == 0 && atomic_load(&w->nhosted) == 0 &&
         w->eng.pending == (w->stopper.sig_armed ? 1u : 0u);
}

int vworker_init(struct vworker *w, struct vhost *vh, int id)
{
  memset(w, 0, sizeof *w);
  w->vh = vh;
  w->id = id;
  w->nudge_op.cb = engine_ignore_op.cb;   /* it only wakes the loop */
  w->stopper.stopping = &vh->stopping;
  w->stopper.request_stop = stop_vhost;
  w->stopper.stop = stop_self;
  w->stopper.arg = w;
  return engine_stopper_init(&w->stopper);
}

int vworker_run(struct vworker *w)
{
  /* The ring is made on the thread that uses it (IORING_SETUP_SINGLE_ISSUER). */
  int r = engine_init(&w->eng, 256, w->id);
  if (r < 0) {
    vhost_gate_wait(w->vh);
    vhost_request_stop(w->vh);
    for (size_t i = 0; i < w->vh->ndevs; i++)   /* they never start: count them done */
      if (w->vh->devs[i].w == w)
        vworker_device_done(w);
    return r;
  }
  w->eng_ready = true;
  atomic_store(&w->eng_live, true);
  vhost_gate_wait(w->vh);
  for (size_t i = 0; i < w->vh->ndevs; i++)
    if (w->vh->devs[i].w == w)
      vdev_start(&w->vh->devs[i]);
  engine_stopper_start(&w->stopper, &w->eng, w->id == 0 ? w->vh->sig_fd : -1);
  if (atomic_load(&w->vh->stopping))
    vworker_stop(w);
  r = engine_run(&w->eng, vworker_done, w);
  atomic_store(&w->eng_live, false);
  return r;
}

void vworker_wake(struct vworker *w)
{
  engine_stopper_wake(&w->stopper);
}

void vworker_fini(struct vworker *w)
{
  engine_stopper_fini(&w->stopper);
  if (w->eng_ready)
    engine_fini(&w->eng);
}
