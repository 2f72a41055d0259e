/* server.h: the running server: configuration, export table, listening
 * sockets, worker threads, and the shutdown sequence (SIGINT/SIGTERM: stop
 * accepting, finish in-flight requests, flush, exit 0; SIGHUP reloads the
 * configuration file (reload.h); SIGUSR2 is ignored).  Under systemd
 * (NOTIFY_SOCKET) it reports READY=1 once listening, RELOADING=1 around a
 * reload, and STOPPING=1 when shutdown begins. */
#ifndef SHUNT_SERVER_SERVER_H
#define SHUNT_SERVER_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/config.h"
#include "server/export.h"

struct worker;

struct server {
  struct server_config *cfg;
  /* The exports offered now: read through server_exports_get(), replaced
   * whole by a reload under exports_lock and stats_lock. */
  struct export_table *exports;
  pthread_mutex_t exports_lock;
  int *listen_fds;
  size_t nlisten;
  struct worker *workers;
  unsigned nworkers;
  int sig_fd;
  atomic_bool stopping;
  struct tls_creds *tls;   /* NULL when TLS is off */
  atomic_uint nconns;        /* connections open, all workers (--max-connections) */
  atomic_size_t inflight;    /* request bytes in flight, all connections (--memory-budget) */
  size_t memory_budget;      /* the cap on inflight */
  atomic_bool ready;         /* READY=1 sent (server_config.on_ready ran) */
  uint64_t start_ns;         /* CLOCK_MONOTONIC at start, for uptime */
  /* Held while the statistics are read (metrics.c: the signal thread's
   * --stats, the control and metrics thread): whatever changes the export
   * table while the server runs must hold it too. */
  pthread_mutex_t stats_lock;
};

/* Run the server described by cfg until it is told to stop.
 * Returns the process exit status (0 after a clean shutdown). */
int server_run(struct server_config *cfg);

/* The export table offered now, with a reference for the caller
 * (export_table_put() it).  Any thread. */
struct export_table *server_exports_get(struct server *srv);

/* Begin shutdown from any worker thread: every worker stops. */
void server_request_stop(struct server *srv);

#endif
