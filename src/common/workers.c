/* workers.c: worker 0 on the calling thread, the others on their own
 * (workers.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/workers.h"

struct worker_thread {
  const struct workers *ws;
  unsigned i;
  pthread_t tid;
};

static void *worker_thread(void *arg)
{
  struct worker_thread *t = arg;
  int r = t->ws->run(t->ws->ctx, t->i);
  if (r < 0)
    log_msg(LOG_ERROR, NULL, NULL, "worker %u: event loop failed: %s", t->i, strerror(-r));
  return NULL;
}

unsigned workers_count(unsigned threads)
{
  long n;

  if (threads)
    return threads;
  n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (unsigned)n : 1;
}

int workers_run(const struct workers *ws)
{
  struct worker_thread *t = ws->n > 1 ? calloc(ws->n, sizeof *t) : NULL;
  unsigned started;
  int r;

  for (started = 1; started < ws->n; started++) {
    if (t) {
      t[started].ws = ws;
      t[started].i = started;
    }
    r = t ? pthread_create(&t[started].tid, NULL, worker_thread, &t[started]) : ENOMEM;
    if (r != 0) {
      log_msg(LOG_ERROR, NULL, NULL, "cannot start worker thread: %s", strerror(r));
      ws->stop(ws->ctx, started);
      break;
    }
  }
  r = ws->run(ws->ctx, 0);
  if (r < 0) {
    log_msg(LOG_ERROR, NULL, NULL, "worker 0: event loop failed: %s", strerror(-r));
    ws->stop(ws->ctx, started);
  }
  for (unsigned i = 1; i < started; i++)
    pthread_join(t[i].tid, NULL);
  free(t);
  return r;
}
