/* worker.h: a worker thread: its engine, the accepts it keeps armed on every
 * listening socket, and the connections it serves.  The server (server.c)
 * starts one per core unless told otherwise. */
#ifndef SHUNT_SERVER_WORKER_H
#define SHUNT_SERVER_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "datapath/stats.h"
#include "engine/engine.h"
#include "engine/stopper.h"

struct server;
struct conn;

struct accept_op {
  struct engine_op op;
  struct engine_op retry_op;     /* timeout before re-arming after EMFILE and the like */
  struct __kernel_timespec retry_ts;
  struct worker *w;
  int fd;
  bool armed, retry_armed, backoff;
};

struct worker {
  struct server *srv;
  struct engine eng;
  bool eng_ready;
  int id;
  struct accept_op *accepts;     /* one per listening socket */
  size_t naccepts;
  struct engine_stopper stopper; /* woken by other threads; worker 0: the signalfd */
  struct engine_op grace_op;     /* shutdown grace period: then connections are cut */
  struct __kernel_timespec grace_ts;
  bool grace_armed;
  bool grace_over;               /* connections were cut; grace_op now bounds the wait for them */
  bool abandoned;                /* gave up waiting for cut connections: the loop ends */
  struct engine_op tick_op;      /* while it has connections: --send-timeout, --memory-budget */
  struct __kernel_timespec tick_ts;
  bool tick_armed;
  struct conn *conns;            /* linked by conn.c; walk with conn_next() */
  unsigned nconns;
  bool stopping;
  unsigned long long refused;    /* connections closed over --max-connections */
  stat_t conns_total, refused_total;   /* connections served and refused, for the stats (metrics.h) */
  bool refused_logged;
  long refused_log_sec;          /* CLOCK_MONOTONIC second of the last such log line */
};

/* Prepare the worker (its eventfd; the engine is made by worker_run on the
 * worker's own thread).  Returns 0 or -errno. */
int worker_init(struct worker *w, struct server *srv, int id);
/* Release what worker_init made (after the loop ended). */
void worker_fini(struct worker *w);
/* Create the engine and run the loop in the calling thread until the worker
 * has stopped (worker 0 also starts the --stdio connection). */
int worker_run(struct worker *w);
/* Ask the worker (from any thread) to stop. */
void worker_wake(struct worker *w);
/* Begin stopping (on the worker's own thread). */
void worker_stop(struct worker *w);

/* conn.c calls these when a connection starts and ends (after linking it
 * into, or unlinking it from, w->conns). */
void worker_conn_added(struct worker *w, struct conn *c);
void worker_conn_removed(struct worker *w, struct conn *c);

#endif
