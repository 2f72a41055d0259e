/* workers.h: how `shunt serve` and `shunt vhost` run their worker loops:
 * worker 0 on the calling thread, every other one on a thread of its own,
 * all joined before the call returns.  What a worker is, and how it is told
 * to stop, stays the caller's. */
#ifndef SHUNT_COMMON_WORKERS_H
#define SHUNT_COMMON_WORKERS_H

struct workers {
  unsigned n;                              /* how many workers (at least 1) */
  /* Worker i's loop, run until it stopped: 0 or -errno. */
  int (*run)(void *ctx, unsigned i);
  /* Ask every worker to stop (a thread could not start, or worker 0's loop
   * failed); running: how many workers run, worker 0 included (fewer than
   * n when the thread of worker `running` could not start). */
  void (*stop)(void *ctx, unsigned running);
  void *ctx;
};

/* The number of workers to run for a --threads value: threads itself, or
 * when 0 one per online CPU (at least 1). */
unsigned workers_count(unsigned threads);

/* Run ws->run for workers 1..n-1 on threads of their own and for worker 0
 * on this thread; wait for all of them.  A worker whose loop fails is logged
 * ("worker I: event loop failed: ..."); a thread that cannot start is logged
 * and ws->stop is called, and the workers already running still run to
 * their end; when worker 0's loop fails, ws->stop is called too.  Returns
 * worker 0's result (0 or -errno): the other workers' results are logged
 * only. */
int workers_run(const struct workers *ws);

#endif
