/* vhost.c: bring `shunt vhost` up (devices, sockets, signals, workers), wait
 * for the workers, and shut down cleanly (see vhost.h).  SIGUSR1 writes
 * --stats; SIGHUP and SIGUSR2 are logged and ignored. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"
#include "common/privs.h"
#include "common/sigthread.h"
#include "common/statsfile.h"
#include "common/text.h"
#include "common/workers.h"
#include "datapath/datapath.h"
#include "datapath/dpworker.h"
#include "datapath/qos.h"
#include "datapath/stats.h"
#include "server/listener.h"
#include "shunt/shunt.h"
#include "vhost/device.h"
#include "vhost/guardmem.h"
#include "vhost/remote.h"
#include "vhost/vhost.h"
#include "vhost/vworker.h"

void vhost_gate_wait(struct vhost *vh)
{
  pthread_mutex_lock(&vh->gate_lock);
  vh->gate_arrived++;
  pthread_cond_broadcast(&vh->gate_cond);
  while (vh->gate_arrived < vh->gate_expected)
    pthread_cond_wait(&vh->gate_cond, &vh->gate_lock);
  pthread_mutex_unlock(&vh->gate_lock);
}

/* Fewer workers than planned will arrive at the gate. */
static void gate_expect(struct vhost *vh, unsigned n)
{
  pthread_mutex_lock(&vh->gate_lock);
  vh->gate_expected = n;
  pthread_cond_broadcast(&vh->gate_cond);
  pthread_mutex_unlock(&vh->gate_lock);
}

void vhost_request_stop(struct vhost *vh)
{
  atomic_store(&vh->stopping, true);
  for (unsigned i = 0; i < vh->nworkers; i++)
    vworker_wake(&vh->workers[i]);
}

static int run_worker(void *arg, unsigned i)
{
  struct vhost *vh = arg;
  return vworker_run(&vh->workers[i]);
}

/* Workers that never started will not arrive at the gate. */
static void stop_workers(void *arg, unsigned running)
{
  struct vhost *vh = arg;

  vhost_request_stop(vh);
  if (running < vh->nworkers)
    gate_expect(vh, running);
}

/* ---- statistics file (--stats): SIGUSR1 and exit ---- */

/* The statistics (statsfile.h): per device its data path and the
 * datapath counters (requests, bytes, bytes copied), in serve's format with
 * "devices" for "exports". */
static void stats_fill(struct json *j, void *arg)
{
  struct vhost *vh = arg;

  json_object(j, NULL, JSON_BLOCK);
  json_int(j, "pid", (int64_t)getpid());
  json_uint(j, "guest_pages_lost", guardmem_repaired());
  json_array(j, "devices", JSON_BLOCK);
  for (size_t i = 0; i < vh->ndevs; i++) {
    struct vdev *d = &vh->devs[i];
    struct dp_stats sum;
    dp_export_stats_sum(&d->dx, &sum);
    json_object(j, NULL, JSON_BLOCK);
    json_string(j, "socket", d->cfg->socket);
    json_string(j, "source", d->cfg->source);
    json_string(j, "datapath", d->remote ? "nbd" : d->dx.datapath ? d->dx.datapath->name : "none");
    if (d->remote) {
      /* libshunt's own copies (TLS) count as the device's copies, and
       * are shown apart too. */
      uint64_t copied = 0;
      for (unsigned q = 0; q < d->nqueues; q++)
        copied += shunt_payload_bytes_copied(d->remote[q].h);
      stat_add(&sum.copied_read, copied);
      json_uint(j, "remote_copied_bytes", copied);
    }
    json_uint(j, "queues", d->nqueues);
    json_uint(j, "connections", (uint64_t)atomic_load(&d->connections));
    json_uint(j, "broken_queues", (uint64_t)atomic_load(&d->broken_queues));
    json_uint(j, "bad_requests", (uint64_t)atomic_load(&d->bad_requests));
    json_uint(j, "arena_per_worker", dp_arena_size);
    dp_stats_json(j, &sum);
    dp_qos_json(j, &d->dx);
    json_end(j);
  }
  json_end(j);
  json_end(j);
}

static int write_stats(struct vhost *vh)
{
  return vh->cfg->stats_path ? statsfile_write(vh->cfg->stats_path, stats_fill, vh) : 0;
}

static void usr1_write_stats(void *arg) { write_stats(arg); }

/* Open every device's source and socket (before any worker runs). */
static int open_devices(struct vhost *vh, struct listen_set *set)
{
  char err[512];
  int r;

  vh->devs = calloc(vh->cfg->ndevs, sizeof *vh->devs);
  if (!vh->devs)
    return -ENOMEM;
  for (size_t i = 0; i < vh->cfg->ndevs; i++) {
    struct vdev *d = &vh->devs[i];
    if ((r = vdev_open(d, vh, &vh->cfg->devs[i], err, sizeof err)) < 0) {
      log_msg(LOG_ERROR, NULL, NULL, "%s", err);
      return r;
    }
    vh->ndevs = i + 1;
    if ((r = listener_open_unix_as(set, d->cfg->socket, "socket", vh->cfg->socket_mode, err, sizeof err)) < 0) {
      log_msg(LOG_ERROR, NULL, NULL, "%s", err);
      return r;
    }
    d->listen_fd = set->fds[set->n - 1];
    d->w = &vh->workers[i % vh->nworkers];
  }
  return 0;
}

/* -u/-g: the sockets are given to the user and group the process becomes,
 * so that with the default mode 0600 that user (the VMM's) may connect. */
static int become_user(struct vhost *vh)
{
  const struct privs *p = &vh->cfg->privs;

  if (!p->user && !p->group)
    return 0;
  for (size_t i = 0; i < vh->ndevs; i++)
    if (chown(vh->devs[i].cfg->socket, p->user ? p->uid : (uid_t)-1, p->gid) < 0) {
      log_msg(LOG_ERROR, NULL, vh->devs[i].cfg->socket, "-u/-g: cannot give the socket away: %s", strerror(errno));
      return -1;
    }
  return privs_drop(p);
}

int vhost_run(struct vhost_config *cfg)
{
  struct vhost vh;
  struct listen_set set = { 0 };
  int status = 1, r = 0;
  struct sigthread sig = { 0 };

  memset(&vh, 0, sizeof vh);
  vh.cfg = cfg;
  vh.sig_fd = -1;
  pthread_mutex_init(&vh.gate_lock, NULL);
  pthread_cond_init(&vh.gate_cond, NULL);
  log_threshold = cfg->log_level;
  if (cfg->arena)
    dp_arena_size = cfg->arena;
  dp_qos = cfg->qos;
  if (cfg->stats_path && statsfile_check(cfg->stats_path) < 0)
    return 1;
  vh.nworkers = workers_count(cfg->threads);
  vh.gate_expected = vh.nworkers;
  dp_stats_slots = vh.nworkers;   /* every device counts per worker */
  vh.workers = calloc(vh.nworkers, sizeof *vh.workers);
  if (!vh.workers)
    return 1;
  for (unsigned i = 0; i < vh.nworkers; i++)
    if ((r = vworker_init(&vh.workers[i], &vh, (int)i)) < 0) {
      log_msg(LOG_ERROR, NULL, NULL, "cannot create a worker: %s", strerror(-r));
      vh.nworkers = i;
      goto out;
    }

  /* SIGINT and SIGTERM arrive through a signalfd read by worker 0's ring;
   * SIGUSR1, SIGUSR2 and SIGHUP through the signal thread's sigwait. */
  vh.sig_fd = sigthread_block();
  if (vh.sig_fd < 0) {
    log_msg(LOG_ERROR, NULL, NULL, "signalfd: %s", strerror(-vh.sig_fd));
    goto out;
  }
  if ((r = guardmem_init()) < 0) {
    log_msg(LOG_ERROR, NULL, NULL, "cannot install the SIGBUS handler: %s", strerror(-r));
    goto out;
  }
  if (open_devices(&vh, &set) < 0 || become_user(&vh) < 0)
    goto out;
  atomic_store(&vh.busy_devices, (unsigned)vh.ndevs);
  /* The signal thread reads the devices (SIGUSR1): started once they exist. */
  sigthread_start(&sig, usr1_write_stats, &vh, "no meaning; ignored");

  r = workers_run(&(struct workers){ .n = vh.nworkers, .run = run_worker, .stop = stop_workers, .ctx = &vh });
  status = r < 0 ? 1 : 0;
  log_msg(LOG_INFO, NULL, NULL, "all devices stopped; flushing");

out:
  sigthread_stop(&sig);
  if (write_stats(&vh) < 0)
    status = 1;
  for (unsigned i = 0; i < vh.nworkers; i++)
    vworker_fini(&vh.workers[i]);
  free(vh.workers);
  listener_close_all(&set);   /* also removes the socket files it created */
  for (size_t i = 0; i < vh.ndevs; i++)
    vdev_close(&vh.devs[i]);
  free(vh.devs);
  if (vh.sig_fd >= 0)
    close(vh.sig_fd);
  pthread_cond_destroy(&vh.gate_cond);
  pthread_mutex_destroy(&vh.gate_lock);
  return status;
}
