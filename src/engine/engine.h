/* engine.h: one io_uring event loop per worker thread.  Every operation is an
 * engine_op whose callback runs when its completion arrives; operations that
 * finish without the kernel (memory backend, batching hooks) are deferred to
 * the next loop turn so no callback ever runs inside the call that started it. */
#ifndef SHUNT_ENGINE_ENGINE_H
#define SHUNT_ENGINE_ENGINE_H

#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct engine_op;

/* Completion callback: res is the CQE result (bytes, fd, or -errno). */
typedef void (*engine_cb)(struct engine_op *op, int res, uint32_t cqe_flags);

struct engine_op {
  engine_cb cb;
  struct engine_op *defer_next;  /* engine-internal */
  int defer_res;                 /* engine-internal */
};

struct engine {
  struct io_uring ring;
  struct engine_op *defer_head, **defer_tail;
  unsigned pending;      /* completions still to come (multishot ops count once) */
  int id;                /* worker number, for logs */
  void *dp;              /* the data paths' per-worker state (src/datapath/dpworker.c) */
  void (*dp_fini)(struct engine *e);   /* frees dp; run by engine_fini before the ring goes */
  /* Work posted by other threads (engine_post): a list under a mutex and an
   * eventfd whose read is always armed on this ring (not counted in pending). */
  pthread_mutex_t post_lock;
  struct engine_op *post_head, **post_tail;
  int post_fd;
  struct engine_op post_op;
  uint64_t post_val;
};

/* Create the ring (entries SQEs).  Returns 0 or -errno. */
int engine_init(struct engine *e, unsigned entries, int id);
/* Destroy the ring; all operations must have completed. */
void engine_fini(struct engine *e);

/* An SQE whose completion goes to op->cb.  Never fails: when the submission
 * queue is full it is submitted first.  The caller fills in the rest. */
struct io_uring_sqe *engine_sqe(struct engine *e, struct engine_op *op);

/* An op whose completion is ignored: for the SQEs that cancel or remove
 * another op (the cancelled op's own completion still comes to it). */
extern struct engine_op engine_ignore_op;

/* Ask the kernel to cancel op, in flight on e (io_uring_prep_cancel); op's
 * callback still runs, with -ECANCELED or with what completed first. */
void engine_cancel(struct engine *e, struct engine_op *op);

/* Run op->cb(op, res, 0) on the next loop turn, before waiting. */
void engine_defer(struct engine *e, struct engine_op *op, int res);

/* From any thread: run op->cb(op, res, 0) on e's loop (its own thread) soon.
 * For waking work that belongs to another worker (e.g. a range lock granted
 * by a release on another worker); e must outlive the call and the callback.
 * Costs a mutex and, when e had nothing posted, one eventfd write. */
void engine_post(struct engine *e, struct engine_op *op, int res);

/* Run the loop until done(arg) is true (checked after each turn).
 * Returns 0, or -errno when the ring fails. */
int engine_run(struct engine *e, bool (*done)(void *arg), void *arg);

/* One turn without waiting: run deferred work, submit, and run the callbacks
 * of completions already there (tests drive a loop by hand with it).
 * Returns 0 or -errno. */
int engine_poll(struct engine *e);

#endif
