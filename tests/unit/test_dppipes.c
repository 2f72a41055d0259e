/* test_dppipes.c: the splice path's pipe pool when pipes are small or
 * cannot be made: dp_pipe_fits (a splice from a file takes one pipe slot per
 * page it touches), each pipe's own size, and a waiter with no pipe in use
 * on its worker is told so (ready with NULL) instead of waiting forever,
 * while one with a pipe in use waits for it.  pipe() is made to fail with
 * a low RLIMIT_NOFILE (no root needed). */
#include <sys/resource.h>
#include <unistd.h>

#include "datapath/dpworker.h"
#include "engine/engine.h"
#include "tap.h"

static struct engine eng;
static int nready;
static struct dp_pipe *got;

static void ready(struct pipe_waiter *w, struct dp_pipe *p)
{
  (void)w;
  nready++;
  got = p;
}

static void run_turns(int n)
{
  while (n-- > 0) {
    engine_poll(&eng);
    usleep(200);
  }
}

/* No new descriptor can be opened until nofile_restore(). */
static struct rlimit saved;
static void nofile_block(void)
{
  struct rlimit rl;
  int fd = dup(0);   /* the lowest free descriptor */
  close(fd);
  getrlimit(RLIMIT_NOFILE, &saved);
  rl = saved;
  rl.rlim_cur = (rlim_t)fd;
  setrlimit(RLIMIT_NOFILE, &rl);
}
static void nofile_restore(void) { setrlimit(RLIMIT_NOFILE, &saved); }

int main(void)
{
  ok(dp_pipe_fits(8192, 0, 8192), "2-page pipe: 8 KiB page-aligned fits");
  ok(!dp_pipe_fits(8192, 1, 8192), "2-page pipe: 8 KiB at offset 1 (3 pages) does not");
  ok(dp_pipe_fits(8192, 4095, 2), "2-page pipe: 2 bytes across a page boundary fit");
  ok(!dp_pipe_fits(8192, 0, 32768), "2-page pipe: a 32 KiB chunk does not");
  ok(dp_pipe_fits(65536, 0, 65536) && !dp_pipe_fits(65536, 512, 65536),
     "64 KiB pipe: 64 KiB aligned fits, at offset 512 (17 pages) not");
  ok(dp_pipe_fits((1u << 20) + 8192, 12288 + 100, 1u << 20),
     "1 MiB + 2 pages: any 1 MiB fits (DP_HOT_MAX)");
  ok(!dp_pipe_fits(65536, 4096, 1u << 20), "64 KiB pipe: a 1 MiB whole-request chunk does not");

  ok(engine_init(&eng, 64, 0) == 0, "engine");
  struct dp_worker *dw = dp_worker_get(&eng);
  ok(dw != NULL, "worker state");

  struct dp_pipe *p = dp_pipe_get(dw);
  ok(p && p->bytes >= 4096 && p->bytes == dw->pipe_bytes, "a pipe knows its size (%zu bytes)", p ? p->bytes : 0);
  dp_pipe_put(dw, p, true);
  ok(dw->npipes == 0 && dw->inuse == 0, "idle worker: its pipes are closed");

  /* No pipe in use and none can be made: the waiter goes on without. */
  struct pipe_waiter w1 = { .ready = ready };
  nofile_block();
  ok(dp_pipe_get(dw) == NULL, "pipe() fails (RLIMIT_NOFILE): no pipe");
  dp_pipe_wait(dw, &w1);
  run_turns(5);
  nofile_restore();
  ok(nready == 1 && got == NULL, "no pipe in use: the waiter is told there is none (not left waiting)");
  ok(dw->nwaiting == 0 && dw->inuse == 0, "nothing queued, nothing in use");

  /* A pipe in use: a waiter waits for it, then gets it. */
  nready = 0;
  struct dp_pipe *held = dp_pipe_get(dw);
  ok(held != NULL, "one pipe in use");
  struct pipe_waiter w2 = { .ready = ready };
  nofile_block();
  ok(dp_pipe_get(dw) == NULL, "no second pipe can be made");
  dp_pipe_wait(dw, &w2);
  run_turns(5);
  ok(nready == 0 && dw->nwaiting == 1, "a pipe in use: the waiter waits");
  dp_pipe_put(dw, held, true);
  run_turns(5);
  nofile_restore();
  ok(nready == 1 && got == held, "the pipe given back goes to the waiter");
  dp_pipe_put(dw, got, true);
  ok(dw->inuse == 0 && dw->npipes == 0, "all given back and closed");

  engine_fini(&eng);
  return tap_done();
}
