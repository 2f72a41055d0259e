/* dpworker.h: the data paths' per-worker resources, made on first use on
 * the worker's own thread and hung off its engine (engine->dp): the buffer
 * arena (direct path) and a pool of pipes (splice path), each with a
 * first-come wait queue so a request waits instead of failing. */
#ifndef SHUNT_DATAPATH_DPWORKER_H
#define SHUNT_DATAPATH_DPWORKER_H

#include <stdbool.h>
#include <stddef.h>

#include "datapath/arena.h"
#include "engine/engine.h"

#define DP_MAX_PIPES 64

struct dp_pipe {
  struct dp_pipe *next;
  int rfd, wfd;
};

struct pipe_waiter {
  struct engine_op op;
  struct pipe_waiter *next;
  void (*ready)(struct pipe_waiter *w, struct dp_pipe *p);
  struct dp_pipe *p;
};

struct dp_worker {
  struct engine *eng;
  struct arena arena;
  bool arena_tried, arena_ok;
  struct dp_pipe *free_pipes;
  unsigned npipes;                /* pipes that exist (free or in use) */
  unsigned inuse;                 /* pipes handed out */
  size_t pipe_cap;                /* bytes one pipe holds */
  struct pipe_waiter *wait_head, **wait_tail;
  unsigned nwaiting;
};

/* Sizes every worker uses (set once at start-up, before workers run). */
extern size_t dp_arena_size;      /* per worker; default 64 MiB */
extern size_t dp_pipe_size;       /* the largest chunk of any splice export */

/* The worker state of engine e, created on first use; NULL on ENOMEM. */
struct dp_worker *dp_worker_get(struct engine *e);

/* The worker's arena, mapped and registered on first use; NULL when no
 * memory could be mapped at all. */
struct arena *dp_arena(struct dp_worker *dw);

/* A free pipe, or NULL (all DP_MAX_PIPES in use, someone waits, or pipe()
 * failed); the caller then waits with dp_pipe_wait. */
struct dp_pipe *dp_pipe_get(struct dp_worker *dw);
/* Give a pipe back; ok=false (its content is unknown) closes it. */
void dp_pipe_put(struct dp_worker *dw, struct dp_pipe *p, bool ok);
/* Queue w: w->ready runs on a later loop turn with a pipe. */
void dp_pipe_wait(struct dp_worker *dw, struct pipe_waiter *w);

#endif
