/* test_dpshare.c: per-connection shares of a worker's pipes and arena
 * (dpworker.h): a connection holds at most DP_SHARE_PIPES pipes and a
 * quarter of the arena; beyond that its chunks wait for its own pipes and
 * pieces, served in its own order as it gives them back; when other
 * connections hold the rest of the pool it is told to do without (never
 * queued behind them); WRITE payloads (no waiter) never wait. */
#include <unistd.h>

#include "datapath/dpworker.h"
#include "engine/engine.h"
#include "tap.h"

static struct engine eng;
static int npipes_ready, narena_ready;
static struct dp_pipe *got_pipe;
static void *got_buf;

static void pipe_ready(struct pipe_waiter *w, struct dp_pipe *p)
{
  (void)w;
  npipes_ready++;
  got_pipe = p;
}

static void arena_ready(struct arena_waiter *w, void *buf)
{
  (void)w;
  narena_ready++;
  got_buf = buf;
}

static void run_turns(int n)
{
  while (n-- > 0) {
    engine_poll(&eng);
    usleep(200);
  }
}

#define NCONN 5

int main(void)
{
  struct dp_share sh[NCONN] = { 0 };
  struct dp_pipe *held[NCONN][DP_SHARE_PIPES];
  bool queued;

  dp_arena_size = 4u << 20;   /* shares of 1 MiB */
  ok(engine_init(&eng, 64, 0) == 0, "engine");
  struct dp_worker *dw = dp_worker_get(&eng);
  ok(dw != NULL, "worker state");

  /* Pipes: 4 connections take their shares, which is the whole pool. */
  int taken = 0;
  for (int c = 0; c < 4; c++)
    for (int i = 0; i < DP_SHARE_PIPES; i++) {
      struct pipe_waiter w = { .ready = pipe_ready };
      held[c][i] = dp_share_pipe_get(dw, &sh[c], &w, &queued);
      taken += held[c][i] != NULL && !queued;
    }
  ok(taken == DP_MAX_PIPES && dw->inuse == DP_MAX_PIPES, "4 connections hold %d pipes, 8 each", taken);
  struct pipe_waiter wa = { .ready = pipe_ready };
  ok(dp_share_pipe_get(dw, &sh[0], &wa, &queued) == NULL && queued,
     "a 9th pipe for connection 0: it waits for its own");
  struct pipe_waiter we = { .ready = pipe_ready };
  ok(dp_share_pipe_get(dw, &sh[4], &we, &queued) == NULL && !queued,
     "connection 4, pool held by others: told to do without, not queued behind them");
  dp_share_pipe_put(dw, &sh[1], held[1][0], true);
  run_turns(5);
  ok(npipes_ready == 0 && sh[1].pipes == DP_SHARE_PIPES - 1, "a pipe given back by connection 1 wakes nobody else's waiter");
  dp_share_pipe_put(dw, &sh[0], held[0][0], true);
  run_turns(5);
  ok(npipes_ready == 1 && got_pipe != NULL && sh[0].pipes == DP_SHARE_PIPES,
     "connection 0's waiter gets a pipe when connection 0 gives one back");
  held[0][0] = got_pipe;
  for (int c = 0; c < 4; c++)
    for (int i = c == 1 ? 1 : 0; i < DP_SHARE_PIPES; i++)
      dp_share_pipe_put(dw, &sh[c], held[c][i], true);
  ok(dw->inuse == 0 && sh[0].pipes == 0 && sh[3].pipes == 0, "all pipes given back");

  /* Arena: 4 MiB, a share is 1 MiB. */
  void *piece[4][4];
  int pieces = 0;
  for (int c = 0; c < 4; c++)
    for (int i = 0; i < 4; i++) {
      piece[c][i] = dp_share_arena_get(dw, &sh[c], NULL, 256u << 10, &queued);
      pieces += piece[c][i] != NULL;
    }
  ok(pieces == 16 && dw->arena_ok && dw->arena.used_units == dw->arena.nunits,
     "4 connections hold the whole arena, 1 MiB each");
  struct arena_waiter aw = { .ready = arena_ready };
  ok(dp_share_arena_get(dw, &sh[0], &aw, 4096, &queued) == NULL && queued,
     "connection 0 over its share: waits for its own");
  ok(dp_share_arena_get(dw, &sh[0], NULL, 4096, &queued) == NULL && !queued,
     "a WRITE payload over the share (no waiter): other memory at once");
  struct arena_waiter ae = { .ready = arena_ready };
  ok(dp_share_arena_get(dw, &sh[4], &ae, 4096, &queued) == NULL && !queued,
     "connection 4, arena held by others: other memory, not queued");
  ok(dp_share_arena_get(dw, &sh[4], &ae, 2u << 20, &queued) == NULL && !queued,
     "a piece larger than a share: other memory");
  dp_share_arena_put(dw, &sh[2], piece[2][0], 256u << 10);
  run_turns(5);
  ok(narena_ready == 0, "a piece given back by connection 2 does not serve connection 0's waiter");
  dp_share_arena_put(dw, &sh[0], piece[0][0], 256u << 10);
  run_turns(5);
  ok(narena_ready == 1 && got_buf != NULL && sh[0].arena_bytes == (768u << 10) + 4096,
     "connection 0's waiter is served when connection 0 gives a piece back");
  dp_share_arena_put(dw, &sh[0], got_buf, 4096);
  for (int c = 0; c < 4; c++)
    for (int i = 0; i < 4; i++)
      if (!(c == 0 && i == 0) && !(c == 2 && i == 0))
        dp_share_arena_put(dw, &sh[c], piece[c][i], 256u << 10);
  ok(dw->arena.used_units == 0 && sh[0].arena_bytes == 0 && sh[3].arena_bytes == 0, "all pieces given back");

  engine_fini(&eng);
  return tap_done();
}
