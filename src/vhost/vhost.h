/* vhost.h: the running `shunt vhost` process: its devices (one unix socket
 * and one source each), its worker threads (one io_uring engine each; a
 * device and its frontend connection are served by one worker, its queues
 * by that worker and the next ones),
 * signals and the statistics file.  SIGINT/SIGTERM: stop accepting, let
 * every queue finish its in-flight requests, flush, exit 0. */
#ifndef SHUNT_VHOST_VHOST_H
#define SHUNT_VHOST_VHOST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "vhost/vconfig.h"

struct vdev;
struct vworker;

struct vhost {
  struct vhost_config *cfg;
  struct vdev *devs;
  size_t ndevs;
  struct vworker *workers;
  unsigned nworkers;
  int sig_fd;              /* SIGINT, SIGTERM: read by worker 0 */
  atomic_uint busy_devices;  /* devices not yet shut down (vworker_device_done) */
  /* The start gate: no worker starts its devices before every worker's
   * engine exists (a device's queues are posted to other workers). */
  pthread_mutex_t gate_lock;
  pthread_cond_t gate_cond;
  unsigned gate_arrived, gate_expected;
  atomic_bool stopping;
};

/* Run the devices of cfg until told to stop.  Returns the exit status
 * (0 after a clean shutdown, 1 when a device could not start). */
int vhost_run(struct vhost_config *cfg);

/* A worker's engine exists (or could not be made): wait until every
 * worker's does (vworker.c). */
void vhost_gate_wait(struct vhost *vh);

/* Begin shutdown from any thread: every worker stops. */
void vhost_request_stop(struct vhost *vh);

#endif
