/* test_workers.c: common/workers.h: every worker runs once, worker 0 on the
 * calling thread, and worker 0's failure asks the others to stop. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "common/workers.h"
#include "tap.h"

struct ctx {
  atomic_uint ran;            /* bit i: worker i ran */
  atomic_uint stops;          /* calls of stop */
  unsigned running;           /* what stop was told */
  pthread_t caller;
  atomic_bool zero_here;      /* worker 0 ran on the calling thread */
  int zero_result;
  atomic_bool others_wait;    /* workers 1.. wait for a stop */
};

static int run(void *arg, unsigned i)
{
  struct ctx *c = arg;

  atomic_fetch_or(&c->ran, 1u << i);
  if (i == 0) {
    atomic_store(&c->zero_here, pthread_equal(pthread_self(), c->caller));
    return c->zero_result;
  }
  while (atomic_load(&c->others_wait) && atomic_load(&c->stops) == 0)
    sched_yield();
  return i == 2 ? -EIO : 0;   /* logged only */
}

static void stop(void *arg, unsigned running)
{
  struct ctx *c = arg;

  c->running = running;
  atomic_fetch_add(&c->stops, 1);
}

int main(void)
{
  struct ctx c = { .caller = pthread_self() };
  struct workers ws = { .n = 4, .run = run, .stop = stop, .ctx = &c };

  ok(workers_run(&ws) == 0, "worker 0's result is returned");
  ok(atomic_load(&c.ran) == 0xf, "every worker ran once");
  ok(atomic_load(&c.zero_here), "worker 0 runs on the calling thread");
  ok(atomic_load(&c.stops) == 0, "no stop when every worker ends by itself");

  c = (struct ctx){ .caller = pthread_self(), .zero_result = -EIO, .others_wait = true };
  ok(workers_run(&ws) == -EIO, "worker 0's failure is returned");
  ok(atomic_load(&c.stops) == 1 && c.running == 4, "worker 0's failure stops the others (4 running)");
  ok(atomic_load(&c.ran) == 0xf, "the other workers ran to their end");

  c = (struct ctx){ .caller = pthread_self() };
  ws.n = 1;
  ok(workers_run(&ws) == 0 && atomic_load(&c.ran) == 1, "one worker: on this thread only");

  ok(workers_count(3) == 3, "--threads 3: 3 workers");
  ok(workers_count(0) >= 1, "--threads 0: one per online CPU");
  return tap_done();
}
