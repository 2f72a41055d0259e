/* dpworker.h: the data paths' per-worker resources, made on first use on
 * the worker's own thread and hung off its engine (engine->dp): the buffer
 * arena (direct path), a pool of pipes (splice path) and a pool of payload
 * buffers (bufpool.h: every buffer that is not the arena's).  The data paths
 * take them through per-connection shares (struct dp_share): a chunk waits
 * only for pipes and buffers its own connection holds, and does without
 * (a buffer of its own) when other connections hold the pool. */
#ifndef SHUNT_DATAPATH_DPWORKER_H
#define SHUNT_DATAPATH_DPWORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "datapath/arena.h"
#include "datapath/bufpool.h"
#include "datapath/stats.h"
#include "engine/engine.h"

/* Pipes per worker: 32 pipes of 1 MiB are 8192 pages, half the default
 * fs.pipe-user-pages-soft (16384 per user; beyond it unprivileged users get
 * 2-page pipes), so two workers stay within it. */
#define DP_MAX_PIPES 32
/* A page-cached READ up to this size goes out as one splice chunk (so pipes
 * are sized to hold it: the default fs.pipe-max-size). */
#define DP_HOT_MAX (1u << 20)
#define DP_RANDOM_FDS 8           /* backend files with a random-access twin, per worker */
#define DP_SEQ_SLOTS 16           /* recent read ends remembered, per worker */

struct dp_fixed;

struct dp_pipe {
  struct dp_pipe *next;
  int rfd, wfd;
  size_t bytes;                   /* its F_GETPIPE_SZ: one page per slot */
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
  struct bufpool pool;            /* payload buffers (bufpool.h), bounded by dp_pool_size */
  bool arena_tried, arena_ok;
  struct dp_fixed *fixed;         /* the registered buffer table (memreg.h), NULL until needed */
  struct dp_pipe *free_pipes;
  unsigned npipes;                /* pipes that exist (free or in use) */
  unsigned inuse;                 /* pipes handed out */
  size_t pipe_cap;                /* bytes one chunk may have (pipe_bytes less 2 pages) */
  size_t pipe_bytes;              /* the smallest pipe's F_GETPIPE_SZ since the worker
                                   * last had no pipe (what chunks are planned for) */
  struct pipe_waiter *wait_head, **wait_tail;
  unsigned nwaiting;
  struct { int src, fd; } rfd[DP_RANDOM_FDS];   /* fd -> its POSIX_FADV_RANDOM twin */
  unsigned nrfd;
  struct { int fd; uint64_t end; } seq[DP_SEQ_SLOTS];
  unsigned seq_next;
};

/* A connection's part of its worker's pipes and arena (each request sink
 * keeps one, request.h; its requests point to it).  One connection holds at most
 * DP_SHARE_PIPES pipes and a quarter of the arena: beyond that its chunks
 * wait for its own pipes and buffers to come back (its own progress), in
 * its own first-come order; when the pool is taken by other connections
 * they do without (a buffer of their own, within the connection's in-flight
 * cap).  So a connection that stops reading its replies holds no more than
 * its share, and nobody ever waits for what another connection holds. */
#define DP_SHARE_PIPES (DP_MAX_PIPES / 4)
struct dp_share {
  unsigned pipes;                 /* pipes its requests hold */
  size_t arena_bytes;             /* arena bytes its requests hold */
  struct pipe_waiter *pw_head, **pw_tail;
  struct arena_waiter *aw_head, **aw_tail;
};

/* Sizes every worker uses (set once at start-up, before workers run). */
extern size_t dp_arena_size;      /* per worker; default 64 MiB */
extern size_t dp_pipe_size;       /* the largest chunk of any splice export */
extern size_t dp_pool_size;       /* bound of each worker's buffer pool; default 64 MiB */

/* The worker state of engine e, created on first use; NULL on ENOMEM. */
struct dp_worker *dp_worker_get(struct engine *e);

/* The worker's arena, mapped and registered on first use; NULL when no
 * memory could be mapped at all. */
struct arena *dp_arena(struct dp_worker *dw);

/* A buffer of at least len bytes from the buffer pool of engine e's worker
 * (bufpool_get; prefault for memory the kernel fills at once, not for a
 * WRITE payload that arrives over time), counted as a pool hit or
 * allocation in st (may be NULL).  Page-aligned.  NULL on ENOMEM.  On e's
 * thread. */
void *dp_buffer_get(struct engine *e, size_t len, bool prefault, struct dp_stats *st);
/* Give back buf from dp_buffer_get(e, len, ...). */
void dp_buffer_put(struct engine *e, void *buf, size_t len);
/* Engine e's worker serves nobody now: its buffer pool unmaps its idle
 * buffers (buffers still in use come back to the pool as usual).  On e's
 * thread. */
void dp_worker_idle(struct engine *e);

/* A free pipe, or NULL (all DP_MAX_PIPES in use, someone waits, or pipe()
 * failed).  The data paths go through dp_share_pipe_get, which uses it.  A
 * pipe may be smaller
 * than the chunks planned from pipe_cap/pipe_bytes (a user that is not
 * privileged gets 2-page pipes once its pipe pages run out, pipe(7)):
 * check with dp_pipe_fits before splicing into it. */
struct dp_pipe *dp_pipe_get(struct dp_worker *dw);
/* Give a pipe back; ok=false (its content is unknown) closes it. */
void dp_pipe_put(struct dp_worker *dw, struct dp_pipe *p, bool ok);
/* Queue w on the worker-wide, first-come queue: w->ready runs on a later
 * loop turn with a pipe, or with NULL when there is nothing to wait for (no
 * pipe in use on this worker and none can be made).  Not for requests of
 * connections (they would wait behind every other connection: use
 * dp_share_pipe_get). */
void dp_pipe_wait(struct dp_worker *dw, struct pipe_waiter *w);
/* A pipe for a chunk of connection sh.  Returns the pipe, or NULL: with
 * *queued set, w was queued behind sh's own pipes (w->ready runs on a later
 * loop turn with a pipe, or with NULL: do without); otherwise there is no
 * pipe to be had now (do without: read into a buffer). */
struct dp_pipe *dp_share_pipe_get(struct dp_worker *dw, struct dp_share *sh, struct pipe_waiter *w, bool *queued);
/* Give back a pipe from dp_share_pipe_get (ok as for dp_pipe_put); serves
 * sh's own waiters. */
void dp_share_pipe_put(struct dp_worker *dw, struct dp_share *sh, struct dp_pipe *p, bool ok);
/* len bytes (a multiple of ARENA_UNIT) of the worker's arena for connection
 * sh.  Returns the piece, or NULL: with *queued set, w (w->len = len) was
 * queued behind sh's own pieces (w->ready runs later with a piece, or with
 * NULL: use other memory); otherwise use other memory now (no arena, len
 * over the share, or the arena taken by others).  w may be NULL: never
 * queue (WRITE payloads, whose client is already sending). */
void *dp_share_arena_get(struct dp_worker *dw, struct dp_share *sh, struct arena_waiter *w, size_t len,
                         bool *queued);
/* Give back a piece from dp_share_arena_get; serves sh's own waiters. */
void dp_share_arena_put(struct dp_worker *dw, struct dp_share *sh, void *buf, size_t len);

/* True when an empty pipe of pipe_bytes bytes holds all of [off, off + len)
 * of a file in one splice: a splice from a file takes a pipe slot (a page)
 * for every page the range touches.  A splice into a pipe that cannot hold
 * it stops short, and the rest would wait for room forever. */
bool dp_pipe_fits(size_t pipe_bytes, uint64_t off, uint64_t len);

/* The fd a splice read of [off, off + len) of fd should use: fd itself when
 * the read continues one of the worker's recent reads of fd (a sequential
 * stream, where the kernel's readahead helps), else a second open file
 * description of the same file with POSIX_FADV_RANDOM, which reads exactly
 * the pages asked for (readahead on random reads reads bytes nobody asked
 * for; made on first use; fd itself when it cannot be made).  Remembers the
 * read's end. */
int dp_read_fd(struct dp_worker *dw, int fd, uint64_t off, uint64_t len);

/* 1 when every page of [off, off + len) of fd is in the page cache, 0 when
 * not, -errno when the kernel cannot tell (cachestat(2) needs Linux 6.5). */
int dp_range_cached(int fd, uint64_t off, uint64_t len);

#endif
