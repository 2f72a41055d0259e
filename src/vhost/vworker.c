/* vworker.c: a worker thread's loop (see vworker.h). */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
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
  if (w->wake_armed)
    engine_cancel(&w->eng, &w->wake_op);
  for (size_t i = 0; i < w->vh->ndevs; i++)
    if (w->vh->devs[i].w == w)
      vdev_stop(&w->vh->devs[i]);
}

static void arm_wake(struct vworker *w)
{
  struct io_uring_sqe *sqe = engine_sqe(&w->eng, &w->wake_op);
  io_uring_prep_read(sqe, w->wake_fd, &w->wake_val, sizeof w->wake_val, 0);
  w->wake_armed = true;
}

static void wake_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct vworker *w = container_of(op, struct vworker, wake_op);
  (void)res; (void)flags;
  w->wake_armed = false;
  if (atomic_load(&w->vh->stopping))
    vworker_stop(w);
  else if (!w->stopping)
    arm_wake(w);
}

static void arm_signal(struct vworker *w)
{
  struct io_uring_sqe *sqe = engine_sqe(&w->eng, &w->sig_op);
  io_uring_prep_read(sqe, w->vh->sig_fd, &w->siginfo, sizeof w->siginfo, 0);
  w->sig_armed = true;
}

static void signal_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct vworker *w = container_of(op, struct vworker, sig_op);
  (void)flags;
  w->sig_armed = false;
  if (res == -ECANCELED)
    return;
  if (res == (int)sizeof w->siginfo) {
    if (atomic_load(&w->vh->stopping)) {
      log_msg(LOG_WARN, NULL, NULL, "second signal %u: exiting at once", w->siginfo.ssi_signo);
      _exit(1);
    }
    log_msg(LOG_INFO, NULL, NULL, "signal %u: finishing in-flight requests, then exiting",
            w->siginfo.ssi_signo);
    vhost_request_stop(w->vh);
  }
  arm_signal(w);   /* a second signal forces exit */
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
         w->eng.pending == (w->sig_armed ? 1u : 0u);
}

int vworker_init(struct vworker *w, struct vhost *vh, int id)
{
  memset(w, 0, sizeof *w);
  w->vh = vh;
  w->id = id;
  w->wake_op.cb = wake_cb;
  w->sig_op.cb = signal_cb;
  w->nudge_op.cb = engine_ignore_op.cb;   /* it only wakes the loop */
  w->wake_fd = eventfd(0, EFD_CLOEXEC);
  return w->wake_fd < 0 ? -errno : 0;
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
  arm_wake(w);
  if (w->id == 0 && w->vh->sig_fd >= 0)
    arm_signal(w);
  if (atomic_load(&w->vh->stopping))
    vworker_stop(w);
  r = engine_run(&w->eng, vworker_done, w);
  atomic_store(&w->eng_live, false);
  return r;
}

void vworker_wake(struct vworker *w)
{
  uint64_t one = 1;
  if (write(w->wake_fd, &one, sizeof one) < 0) {
    /* the counter cannot overflow with our few writes */
  }
}

void vworker_fini(struct vworker *w)
{
  close(w->wake_fd);
  if (w->eng_ready)
    engine_fini(&w->eng);
}
