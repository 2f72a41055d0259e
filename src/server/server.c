/* server.c: bring the server up (exports, listeners, signals, workers), wait
 * for them, and shut down cleanly: after SIGINT/SIGTERM every worker stops
 * accepting, finishes its in-flight requests and closes; then every export is
 * flushed and the process exits 0.  SIGUSR1 writes --stats; SIGHUP reloads
 * the configuration file (reload.c); SIGUSR2 is logged and ignored.  The
 * control socket and /metrics run on a thread of their own (ops.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/backend.h"
#include "common/json.h"
#include "common/log.h"
#include "common/sigthread.h"
#include "common/statsfile.h"
#include "common/sysmem.h"
#include "common/workers.h"
#include "datapath/datapath.h"
#include "datapath/dpworker.h"
#include "datapath/qos.h"
#include "datapath/stats.h"
#include "server/conn.h"
#include "server/listener.h"
#include "server/metrics.h"
#include "server/ops.h"
#include "server/reload.h"
#include "server/sdnotify.h"
#include "server/server.h"
#include "server/tls.h"
#include "server/worker.h"

/* Tell systemd (Type=notify) about a state change: READY=1 once serving,
 * STOPPING=1 when a server that said so begins to shut down. */
static void notify(struct server *srv, const char *state)
{
  int r;

  if (!strcmp(state, "READY=1"))
    atomic_store(&srv->ready, true);
  else if (!atomic_load(&srv->ready))
    return;
  if ((r = sdnotify_send(state)) < 0)
    log_msg(LOG_WARN, NULL, NULL, "NOTIFY_SOCKET: cannot send %s: %s", state, strerror(-r));
}

void server_request_stop(struct server *srv)
{
  if (!atomic_exchange(&srv->stopping, true))
    notify(srv, "STOPPING=1");
  for (unsigned i = 0; i < srv->nworkers; i++)
    worker_wake(&srv->workers[i]);
}

static int run_worker(void *arg, unsigned i)
{
  struct server *srv = arg;
  return worker_run(&srv->workers[i]);
}

static void stop_workers(void *arg, unsigned running)
{
  (void)running;
  server_request_stop(arg);
}

/* ---- statistics file (--stats): SIGUSR1 and exit ---- */

static void stats_fill(struct json *j, void *arg) { metrics_json(arg, j); }

/* Write the statistics file (statsfile.h).  Returns 0 or -errno, logged. */
static int write_stats(struct server *srv)
{
  return srv->cfg->stats_path ? statsfile_write(srv->cfg->stats_path, stats_fill, srv) : 0;
}

static void usr1_write_stats(void *arg) { write_stats(arg); }

/* SIGHUP: RELOADING=1, the reload (reload.h), READY=1 again. */
static void hup_reload(void *arg)
{
  struct server *srv = arg;
  char state[64];

  /* Not before the first READY=1 (a reload during start-up), nor once
   * stopping: systemd would take READY=1 for the end of the stop. */
  bool tell = atomic_load(&srv->ready) && !atomic_load(&srv->stopping);

  snprintf(state, sizeof state, "RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)(dp_now() / 1000));
  if (tell)
    notify(srv, state);
  server_reload(srv);
  if (tell && !atomic_load(&srv->stopping))
    notify(srv, "READY=1");
}

struct export_table *server_exports_get(struct server *srv)
{
  pthread_mutex_lock(&srv->exports_lock);
  struct export_table *t = export_table_get(srv->exports);
  pthread_mutex_unlock(&srv->exports_lock);
  return t;
}

static int open_listeners(struct server *srv, struct listen_set *set)
{
  struct server_config *cfg = srv->cfg;
  char err[512];
  int r;

  if (cfg->stdio)
    return 0;
  r = listener_socket_activation(set);
  if (r < 0)
    return r;
  for (size_t i = 0; i < cfg->nlisten; i++)
    if ((r = listener_open_tcp(set, cfg->listen[i], err, sizeof err)) < 0) {
      log_msg(LOG_ERROR, NULL, NULL, "%s", err);
      return r;
    }
  for (size_t i = 0; i < cfg->nunix; i++)
    if ((r = listener_open_unix(set, cfg->unix_paths[i], err, sizeof err)) < 0) {
      log_msg(LOG_ERROR, NULL, NULL, "%s", err);
      return r;
    }
  if (set->n == 0 && (r = listener_open_tcp(set, ":" SHUNT_DEFAULT_PORT, err, sizeof err)) < 0) {
    log_msg(LOG_ERROR, NULL, NULL, "%s", err);
    return r;
  }
  return 0;
}

/* --memory-budget, or half of the memory the process may use (at least
 * SHUNT_MIN_AUTO_MEMORY_BUDGET). */
static size_t memory_budget(const struct server_config *cfg)
{
  uint64_t limit = sys_memory_limit();
  uint64_t half = limit == UINT64_MAX ? 0 : limit / 2;

  if (cfg->memory_budget)
    half = cfg->memory_budget;
  else if (half < SHUNT_MIN_AUTO_MEMORY_BUDGET)
    half = SHUNT_MIN_AUTO_MEMORY_BUDGET;
  return half > SIZE_MAX ? SIZE_MAX : (size_t)half;
}

int server_run(struct server_config *cfg)
{
  struct server srv;
  struct listen_set set = { 0 };
  char err[512];
  int status = 1, r;
  unsigned nworkers;
  struct sigthread sig = { 0 };
  struct ops *ops = NULL;

  memset(&srv, 0, sizeof srv);
  srv.cfg = cfg;
  srv.start_ns = dp_now();
  pthread_mutex_init(&srv.stats_lock, NULL);
  pthread_mutex_init(&srv.exports_lock, NULL);
  srv.sig_fd = -1;
  log_threshold = cfg->log_level;
  log_set_target(cfg->log_target);

  if (cfg->nexports == 0) {
    log_msg(LOG_ERROR, NULL, NULL, "no exports: give NAME=PATH on the command line or in --config");
    return 2;
  }
  if (cfg->chunk)
    dp_default_chunk = (uint32_t)cfg->chunk;
  if (cfg->arena)
    dp_arena_size = cfg->arena;
  dp_qos = cfg->qos;
  if (cfg->stats_path && statsfile_check(cfg->stats_path) < 0)
    return 1;
  nworkers = cfg->stdio ? 1 : workers_count(cfg->threads);
  dp_stats_slots = nworkers;   /* every export counts per worker */
  srv.memory_budget = memory_budget(cfg);
  log_msg(LOG_INFO, NULL, NULL, "memory budget %zu MiB for the request buffers of all connections%s",
          srv.memory_budget >> 20, cfg->memory_budget ? "" : " (half of the memory the process may use)");
  if (export_table_open(&srv.exports, cfg->exports, cfg->nexports, err, sizeof err) < 0) {
    log_msg(LOG_ERROR, NULL, NULL, "%s", err);
    pthread_mutex_destroy(&srv.exports_lock);
    pthread_mutex_destroy(&srv.stats_lock);
    return 1;
  }
  cfg->nexports = 0;   /* taken by the table */
  if (cfg->tls.mode != TLS_MODE_OFF) {
    if (tls_creds_load(&srv.tls, &cfg->tls, err, sizeof err) < 0) {
      log_msg(LOG_ERROR, NULL, NULL, "TLS: %s", err);
      export_table_put(srv.exports);
      pthread_mutex_destroy(&srv.exports_lock);
      pthread_mutex_destroy(&srv.stats_lock);
      return 1;
    }
    log_msg(LOG_INFO, NULL, NULL, "TLS %s:%s%s%s", cfg->tls.mode == TLS_MODE_REQUIRE ? "required" : "offered",
            cfg->tls.certificates ? " X.509" : "", cfg->tls.psk_file ? " PSK" : "",
            cfg->tls.verify_peer || cfg->tls.nallow_dn ? ", client certificates verified" : "");
  } else if (cfg->tls.certificates || cfg->tls.psk_file) {
    log_msg(LOG_WARN, NULL, NULL, "TLS credentials given but --tls is off: serving plaintext only");
  }
  for (size_t i = 0; i < srv.exports->n; i++)
    reload_log_export(srv.exports->exports[i]);

  /* SIGINT and SIGTERM arrive through a signalfd read by worker 0's ring;
   * SIGUSR1, SIGUSR2 and SIGHUP through the signal thread's sigwait.  Block
   * them all in every thread (threads inherit the mask). */
  srv.sig_fd = sigthread_block();
  sig.on_hup = hup_reload;
  sigthread_start(&sig, usr1_write_stats, &srv, NULL);
  if (srv.sig_fd < 0) {
    log_msg(LOG_ERROR, NULL, NULL, "signalfd: %s", strerror(-srv.sig_fd));
    goto out;
  }

  if (open_listeners(&srv, &set) < 0)
    goto out;
  srv.listen_fds = set.fds;
  srv.nlisten = set.n;

  srv.nworkers = nworkers;
  /* What each worker's buffer pool keeps (idle and handed out) stays
   * within its part of the memory budget. */
  if (dp_pool_size > srv.memory_budget / srv.nworkers)
    dp_pool_size = srv.memory_budget / srv.nworkers;
  srv.workers = calloc(srv.nworkers, sizeof *srv.workers);
  if (!srv.workers)
    goto out;
  for (unsigned i = 0; i < srv.nworkers; i++) {
    if ((r = worker_init(&srv.workers[i], &srv, (int)i)) < 0) {
      log_msg(LOG_ERROR, NULL, NULL, "cannot create io_uring worker: %s", strerror(-r));
      srv.nworkers = i;
      goto out;
    }
  }
  /* The control socket and /metrics are bound here, before the hook drops
   * privileges, and answer before READY=1 or --fork's return. */
  if (ops_start(&srv, &ops, err, sizeof err) < 0) {
    log_msg(LOG_ERROR, NULL, NULL, "%s", err);
    goto out;
  }
  /* Listening, and every worker able to serve: the caller's hook (pid
   * file, privileges, --fork, --run), then systemd hears of it. */
  if (cfg->on_ready && cfg->on_ready(&srv, cfg->on_ready_arg) < 0) {
    status = 1;
    goto out;
  }
  notify(&srv, "READY=1");
  r = workers_run(&(struct workers){ .n = srv.nworkers, .run = run_worker, .stop = stop_workers, .ctx = &srv });
  status = r < 0 ? 1 : 0;
  log_msg(LOG_INFO, NULL, NULL, "all connections closed; flushing exports");

out:
  sigthread_stop(&sig);
  ops_stop(ops);
  /* The final statistics are part of a clean exit: failing to write them
   * makes the exit status 1. */
  if (write_stats(&srv) < 0)
    status = 1;
  for (unsigned i = 0; i < srv.nworkers; i++)
    worker_fini(&srv.workers[i]);
  free(srv.workers);
  listener_close_all(&set);   /* also removes the unix socket files it created */
  /* Connections a worker gave up on (zero-copy sends the kernel kept) still
   * hold their exports, which then stay open: flush them here all the same,
   * as a clean exit promises. */
  for (size_t i = 0; srv.exports && i < srv.exports->n; i++) {
    struct export *ex = srv.exports->exports[i];
    if (atomic_load(&ex->refs) > 1 && ex->dp.backend && ex->dp.backend->ops->flush_sync(ex->dp.backend) < 0)
      log_msg(LOG_ERROR, NULL, ex->cfg.name, "flush at exit failed");
  }
  export_table_put(srv.exports);
  tls_creds_free(srv.tls);
  if (srv.sig_fd >= 0)
    close(srv.sig_fd);
  pthread_mutex_destroy(&srv.exports_lock);
  pthread_mutex_destroy(&srv.stats_lock);
  return status;
}
