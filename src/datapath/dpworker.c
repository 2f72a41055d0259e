/* dpworker.c: per-worker arena, pipe pool and buffer pool (see dpworker.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "datapath/dpworker.h"
#include "datapath/memreg.h"
#include "common/macros.h"


size_t dp_arena_size = 64u << 20;
size_t dp_pipe_size = 256u << 10;
size_t dp_pool_size = 64u << 20;

static void random_fds_close(struct dp_worker *dw)
{
  for (unsigned i = 0; i < dw->nrfd; i++)
    if (dw->rfd[i].fd != dw->rfd[i].src)
      close(dw->rfd[i].fd);
  dw->nrfd = 0;
}

static void dp_worker_fini(struct engine *e)
{
  struct dp_worker *dw = e->dp;
  if (!dw)
    return;
  if (dw->arena_ok)
    arena_fini(&dw->arena);
  dp_fixed_fini(dw);
  random_fds_close(dw);
  bufpool_fini(&dw->pool);
  while (dw->free_pipes) {
    struct dp_pipe *p = dw->free_pipes;
    dw->free_pipes = p->next;
    close(p->rfd);
    close(p->wfd);
    free(p);
  }
  free(dw);
  e->dp = NULL;
}

struct dp_worker *dp_worker_get(struct engine *e)
{
  struct dp_worker *dw = e->dp;
  if (dw)
    return dw;
  dw = calloc(1, sizeof *dw);
  if (!dw)
    return NULL;
  dw->eng = e;
  dw->wait_tail = &dw->wait_head;
  bufpool_init(&dw->pool, dp_pool_size);
  e->dp = dw;
  e->dp_fini = dp_worker_fini;
  return dw;
}

struct arena *dp_arena(struct dp_worker *dw)
{
  if (!dw->arena_tried) {
    int r = arena_init(&dw->arena, dw->eng, dp_arena_size);
    dw->arena_tried = true;
    dw->arena_ok = r == 0;
    if (r == 0 && !dw->arena.registered)
      dp_fixed_adopt_arena(dw);   /* the table of registered memory exists: slot 0 */
    if (r < 0)
      log_msg(LOG_WARN, NULL, NULL, "worker %d: no buffer arena (%s): direct I/O uses ordinary memory",
              dw->eng->id, strerror(-r));
    else
      log_msg(LOG_INFO, NULL, NULL, "worker %d: buffer arena of %zu MiB on %s pages, %sregistered with io_uring",
              dw->eng->id, dw->arena.size >> 20, dw->arena.huge ? "huge" : "normal",
              dw->arena.registered ? "" : "NOT ");
  }
  return dw->arena_ok ? &dw->arena : NULL;
}

void *dp_buffer_get(struct engine *e, size_t len, bool prefault, struct dp_stats *st)
{
  struct dp_worker *dw = dp_worker_get(e);
  bool hit;
  void *b;

  if (!dw)
    return NULL;
  b = bufpool_get(&dw->pool, len, prefault, &hit);
  if (b && st)
    stat_add(hit ? &st->pool_hits : &st->pool_allocs, 1);
  return b;
}

void dp_buffer_put(struct engine *e, void *buf, size_t len)
{
  struct dp_worker *dw = e->dp;

  if (!buf)
    return;
  if (dw)
    bufpool_put(&dw->pool, buf, len);
  else   /* the worker's state is gone (cannot happen while requests live) */
    munmap(buf, bufpool_size(len));
}

void dp_worker_idle(struct engine *e)
{
  struct dp_worker *dw = e->dp;

  if (dw)
    bufpool_trim(&dw->pool, 0);
}

static struct dp_pipe *pipe_new(struct dp_worker *dw)
{
  int fds[2];
  struct dp_pipe *p = malloc(sizeof *p);
  if (!p)
    return NULL;
  if (pipe2(fds, O_CLOEXEC) < 0) {
    free(p);
    return NULL;
  }
  /* Room for a whole chunk plus the partial pages at its two ends, and for a
   * whole page-cached request up to DP_HOT_MAX; unprivileged users may not
   * exceed fs.pipe-max-size (1 MiB by default): then that much. */
  size_t want = (dp_pipe_size > DP_HOT_MAX ? dp_pipe_size : DP_HOT_MAX) + 2 * 4096;
  if (fcntl(fds[1], F_SETPIPE_SZ, (int)want) < 0 && want > DP_HOT_MAX)
    (void)fcntl(fds[1], F_SETPIPE_SZ, (int)DP_HOT_MAX);   /* the size we get is checked below */
  int got = fcntl(fds[1], F_GETPIPE_SZ);
  size_t bytes = got > 0 ? (size_t)got : 4096;
  if (dw->pipe_bytes && bytes < dw->pipe_bytes && dw->inuse > 0) {
    /* Smaller than the chunks already planned for (the user's pipe pages
     * ran out): wait for one of the pipes in use instead. */
    close(fds[0]);
    close(fds[1]);
    free(p);
    return NULL;
  }
  /* Plan for the smallest pipe there is; the first pipe after an idle spell
   * sets it afresh (so pipes that grew back are used again). */
  if (!dw->pipe_bytes || bytes < dw->pipe_bytes || dw->npipes == 0) {
    dw->pipe_bytes = bytes;
    dw->pipe_cap = bytes > 2 * 4096 ? bytes - 2 * 4096 : 4096;
  }
  p->rfd = fds[0];
  p->wfd = fds[1];
  p->bytes = bytes;
  p->next = NULL;
  dw->npipes++;
  return p;
}

struct dp_pipe *dp_pipe_get(struct dp_worker *dw)
{
  struct dp_pipe *p;
  if (dw->wait_head)
    return NULL;   /* first come, first served */
  if ((p = dw->free_pipes))
    dw->free_pipes = p->next;
  else if (dw->npipes < DP_MAX_PIPES)
    p = pipe_new(dw);
  if (p)
    dw->inuse++;
  return p;
}

static void waiter_run(struct engine_op *op, int res, uint32_t flags)
{
  struct pipe_waiter *w = container_of(op, struct pipe_waiter, op);
  (void)res; (void)flags;
  w->ready(w, w->p);
}

static void wake(struct dp_worker *dw)
{
  while (dw->wait_head) {
    struct dp_pipe *p = dw->free_pipes;
    if (p)
      dw->free_pipes = p->next;
    else if (dw->npipes < DP_MAX_PIPES)
      p = pipe_new(dw);
    /* No pipe: wait for one in use to come back; with none in use nothing
     * would ever wake the waiters, so they go on without (p = NULL). */
    if (!p && dw->inuse > 0)
      return;
    struct pipe_waiter *w = dw->wait_head;
    dw->wait_head = w->next;
    if (!dw->wait_head)
      dw->wait_tail = &dw->wait_head;
    dw->nwaiting--;
    if (p)
      dw->inuse++;
    w->p = p;
    w->op.cb = waiter_run;
    engine_defer(dw->eng, &w->op, 0);
  }
}

static void pipe_close(struct dp_worker *dw, struct dp_pipe *p)
{
  close(p->rfd);
  close(p->wfd);
  free(p);
  dw->npipes--;
}

void dp_pipe_put(struct dp_worker *dw, struct dp_pipe *p, bool ok)
{
  dw->inuse--;
  if (!ok) {
    pipe_close(dw, p);
  } else {
    p->next = dw->free_pipes;
    dw->free_pipes = p;
  }
  wake(dw);
  /* Nothing in flight on this worker: give the descriptors back (an idle
   * server holds no more than before its clients came). */
  if (dw->inuse == 0 && !dw->wait_head) {
    while (dw->free_pipes) {
      struct dp_pipe *q = dw->free_pipes;
      dw->free_pipes = q->next;
      pipe_close(dw, q);
    }
    random_fds_close(dw);   /* no splice read is running or waiting */
  }
}

void dp_pipe_wait(struct dp_worker *dw, struct pipe_waiter *w)
{
  w->next = NULL;
  *dw->wait_tail = w;
  dw->wait_tail = &w->next;
  dw->nwaiting++;
  wake(dw);
}

/* ---- per-connection shares ---- */

static void share_init(struct dp_share *sh)
{
  if (!sh->pw_tail)
    sh->pw_tail = &sh->pw_head;
  if (!sh->aw_tail)
    sh->aw_tail = &sh->aw_head;
}

struct dp_pipe *dp_share_pipe_get(struct dp_worker *dw, struct dp_share *sh, struct pipe_waiter *w, bool *queued)
{
  struct dp_pipe *p;

  share_init(sh);
  *queued = false;
  if (sh->pw_head || sh->pipes >= DP_SHARE_PIPES) {
    /* Its share is in use: wait for its own (first come, first served
     * among its chunks, so a simple reply's held chunks go first). */
    w->next = NULL;
    *sh->pw_tail = w;
    sh->pw_tail = &w->next;
    *queued = true;
    return NULL;
  }
  if ((p = dp_pipe_get(dw)))
    sh->pipes++;
  return p;
}

void dp_share_pipe_put(struct dp_worker *dw, struct dp_share *sh, struct dp_pipe *p, bool ok)
{
  sh->pipes--;
  dp_pipe_put(dw, p, ok);
  while (sh->pw_head && sh->pipes < DP_SHARE_PIPES) {
    struct pipe_waiter *w = sh->pw_head;
    sh->pw_head = w->next;
    if (!sh->pw_head)
      sh->pw_tail = &sh->pw_head;
    if ((w->p = dp_pipe_get(dw)))
      sh->pipes++;
    w->op.cb = waiter_run;
    engine_defer(dw->eng, &w->op, 0);
  }
}

static void arena_waiter_run(struct engine_op *op, int res, uint32_t flags)
{
  struct arena_waiter *w = container_of(op, struct arena_waiter, op);
  (void)res; (void)flags;
  w->ready(w, w->buf);
}

void *dp_share_arena_get(struct dp_worker *dw, struct dp_share *sh, struct arena_waiter *w, size_t len,
                         bool *queued)
{
  struct arena *a = dp_arena(dw);
  void *buf;

  share_init(sh);
  *queued = false;
  if (!a || len > a->size / 4)
    return NULL;
  if (sh->aw_head || sh->arena_bytes + len > a->size / 4) {
    if (!w)
      return NULL;
    w->len = len;
    w->next = NULL;
    *sh->aw_tail = w;
    sh->aw_tail = &w->next;
    *queued = true;
    return NULL;
  }
  if ((buf = arena_alloc(a, len)))
    sh->arena_bytes += len;
  return buf;
}

void dp_share_arena_put(struct dp_worker *dw, struct dp_share *sh, void *buf, size_t len)
{
  struct arena *a = &dw->arena;

  arena_free(a, buf, len);
  sh->arena_bytes -= len;
  while (sh->aw_head && sh->arena_bytes + sh->aw_head->len <= a->size / 4) {
    struct arena_waiter *w = sh->aw_head;
    sh->aw_head = w->next;
    if (!sh->aw_head)
      sh->aw_tail = &sh->aw_head;
    if ((w->buf = arena_alloc(a, w->len)))
      sh->arena_bytes += w->len;
    w->op.cb = arena_waiter_run;
    engine_defer(dw->eng, &w->op, 0);
  }
}

bool dp_pipe_fits(size_t pipe_bytes, uint64_t off, uint64_t len)
{
  uint64_t pages = (ROUND_UP(off + len, 4096) - ROUND_DOWN(off, 4096)) / 4096;
  return pages <= pipe_bytes / 4096;
}

int dp_read_fd(struct dp_worker *dw, int fd, uint64_t off, uint64_t len)
{
  bool seq = false;
  for (unsigned i = 0; i < DP_SEQ_SLOTS && !seq; i++)
    seq = dw->seq[i].fd == fd && dw->seq[i].end == off && off != 0;
  dw->seq[dw->seq_next].fd = fd;
  dw->seq[dw->seq_next].end = off + len;
  dw->seq_next = (dw->seq_next + 1) % DP_SEQ_SLOTS;
  if (seq)
    return fd;
  for (unsigned i = 0; i < dw->nrfd; i++)
    if (dw->rfd[i].src == fd)
      return dw->rfd[i].fd;
  if (dw->nrfd == DP_RANDOM_FDS)
    return fd;
  /* A new open file description: readahead state and the FMODE_RANDOM flag
   * belong to it, not to the file. */
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  int rfd = open(path, O_RDONLY | O_CLOEXEC);
  if (rfd >= 0 && posix_fadvise(rfd, 0, 0, POSIX_FADV_RANDOM) != 0) {
    close(rfd);
    rfd = -1;
  }
  dw->rfd[dw->nrfd].src = fd;
  dw->rfd[dw->nrfd].fd = rfd >= 0 ? rfd : fd;   /* remembered either way: tried once */
  dw->nrfd++;
  return rfd >= 0 ? rfd : fd;
}

#ifndef __NR_cachestat
#define __NR_cachestat 451   /* the same number on every architecture */
#endif

struct dp_cachestat_range { uint64_t off, len; };
struct dp_cachestat { uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted; };

int dp_range_cached(int fd, uint64_t off, uint64_t len)
{
  static int unsupported;
  struct dp_cachestat_range rg = { ROUND_DOWN(off, 4096), 0 };
  struct dp_cachestat cs = { 0 };

  if (len == 0)
    return 1;
  if (__atomic_load_n(&unsupported, __ATOMIC_RELAXED))
    return -ENOSYS;
  rg.len = ROUND_UP(off + len, 4096) - rg.off;
  if (syscall(__NR_cachestat, fd, &rg, &cs, 0) < 0) {
    int e = errno;
    if (e == ENOSYS || e == EPERM || e == EOPNOTSUPP)
      __atomic_store_n(&unsupported, 1, __ATOMIC_RELAXED);
    return -e;
  }
  return cs.nr_cache >= rg.len / 4096;
}
