/* server.h: the running server: configuration, export table, listening
 * sockets, worker threads, and the shutdown sequence (SIGINT/SIGTERM: stop
 * accepting, finish in-flight requests, flush, exit 0; SIGHUP and SIGUSR2 are
 * ignored).  Under systemd (NOTIFY_SOCKET) it reports READY=1 once listening
 * and STOPPING=1 when shutdown begins. */
#ifndef SHUNT_SERVER_SERVER_H
#define SHUNT_SERVER_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/config.h"
#include "server/export.h"

struct worker;

struct server {
  struct server_config *cfg;
  struct export_table exports;
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
  bool ready;                /* READY=1 sent (server_config.on_ready ran) */
};

/* Run the server described by cfg until it is told to stop.
 * Returns the process exit status (0 after a clean shutdown). */
int server_run(struct server_config *cfg);

/* Begin shutdown from any worker thread: every worker stops. */
void server_request_stop(struct server *srv);

#endif
