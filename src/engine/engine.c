/* engine.c: the io_uring event loop (see engine.h).  Completions are copied
 * out of the CQ in batches, the CQ is advanced, then callbacks run, so a
 * callback may freely submit new work. */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "engine/engine.h"

static void post_arm(struct engine *e);

/* The eventfd fired: run everything posted so far, then listen again. */
static void post_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct engine *e = (struct engine *)((char *)op - offsetof(struct engine, post_op));
  struct engine_op *list;
  (void)res; (void)flags;

  pthread_mutex_lock(&e->post_lock);
  list = e->post_head;
  e->post_head = NULL;
  e->post_tail = &e->post_head;
  pthread_mutex_unlock(&e->post_lock);
  post_arm(e);
  while (list) {
    struct engine_op *next = list->defer_next;
    list->cb(list, list->defer_res, 0);
    list = next;
  }
}

/* The eventfd read is the engine's own business: it is not counted in
 * pending (workers stop when pending drops to their own armed ops). */
static void post_arm(struct engine *e)
{
  struct io_uring_sqe *sqe;

  while (!(sqe = io_uring_get_sqe(&e->ring)))
    io_uring_submit(&e->ring);
  io_uring_prep_read(sqe, e->post_fd, &e->post_val, sizeof e->post_val, 0);
  io_uring_sqe_set_data(sqe, &e->post_op);
}

void engine_post(struct engine *e, struct engine_op *op, int res)
{
  bool was_empty;

  op->defer_next = NULL;
  op->defer_res = res;
  pthread_mutex_lock(&e->post_lock);
  was_empty = e->post_head == NULL;
  *e->post_tail = op;
  e->post_tail = &op->defer_next;
  pthread_mutex_unlock(&e->post_lock);
  /* Whoever made the list non-empty wakes the loop; the loop takes the
   * whole list after the wake-up, so later posts ride along. */
  if (was_empty) {
    uint64_t one = 1;
    if (write(e->post_fd, &one, sizeof one) < 0) {
      /* cannot fail: the counter does not get near its maximum */
    }
  }
}

int engine_init(struct engine *e, unsigned entries, int id)
{
  struct io_uring_params p;
  int r;

  memset(e, 0, sizeof *e);
  e->defer_tail = &e->defer_head;
  e->id = id;
  memset(&p, 0, sizeof p);
  p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN;
  p.cq_entries = entries * 8;
  r = io_uring_queue_init_params(entries, &e->ring, &p);
  if (r == -EINVAL) {   /* older kernels: plain ring */
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = entries * 8;
    r = io_uring_queue_init_params(entries, &e->ring, &p);
  }
  if (r < 0)
    return r;
  e->post_fd = eventfd(0, EFD_CLOEXEC);
  if (e->post_fd < 0) {
    r = -errno;
    io_uring_queue_exit(&e->ring);
    return r;
  }
  pthread_mutex_init(&e->post_lock, NULL);
  e->post_tail = &e->post_head;
  e->post_op.cb = post_cb;
  post_arm(e);
  return 0;
}

void engine_fini(struct engine *e)
{
  if (e->dp_fini)
    e->dp_fini(e);
  io_uring_queue_exit(&e->ring);
  close(e->post_fd);
  pthread_mutex_destroy(&e->post_lock);
}

struct io_uring_sqe *engine_sqe(struct engine *e, struct engine_op *op)
{
  struct io_uring_sqe *sqe;

  while (!(sqe = io_uring_get_sqe(&e->ring)))
    io_uring_submit(&e->ring);
  io_uring_sqe_set_data(sqe, op);
  e->pending++;
  return sqe;
}

static void ignore_cb(struct engine_op *op, int res, uint32_t flags)
{
  (void)op; (void)res; (void)flags;
}

struct engine_op engine_ignore_op = { .cb = ignore_cb };

void engine_cancel(struct engine *e, struct engine_op *op)
{
  io_uring_prep_cancel(engine_sqe(e, &engine_ignore_op), op, 0);
}

void engine_defer(struct engine *e, struct engine_op *op, int res)
{
  op->defer_next = NULL;
  op->defer_res = res;
  *e->defer_tail = op;
  e->defer_tail = &op->defer_next;
}

static void run_deferred(struct engine *e)
{
  /* Only what was deferred before this turn: new deferrals wait one turn. */
  struct engine_op *op = e->defer_head;

  e->defer_head = NULL;
  e->defer_tail = &e->defer_head;
  while (op) {
    struct engine_op *next = op->defer_next;
    op->cb(op, op->defer_res, 0);
    op = next;
  }
}

/* Run the callbacks of every completion already in the CQ. */
static void reap(struct engine *e)
{
  enum { BATCH = 128 };
  struct { struct engine_op *op; int res; uint32_t flags; } batch[BATCH];

  for (;;) {
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&e->ring, head, cqe) {
      batch[n].op = io_uring_cqe_get_data(cqe);
      batch[n].res = cqe->res;
      batch[n].flags = cqe->flags;
      if (++n == BATCH)
        break;
    }
    if (n == 0)
      break;
    io_uring_cq_advance(&e->ring, n);
    for (unsigned i = 0; i < n; i++) {
      if (!(batch[i].flags & IORING_CQE_F_MORE) && batch[i].op != &e->post_op)
        e->pending--;
      if (batch[i].op)
        batch[i].op->cb(batch[i].op, batch[i].res, batch[i].flags);
    }
    if (n < BATCH)
      break;
  }
}

int engine_run(struct engine *e, bool (*done)(void *arg), void *arg)
{
  for (;;) {
    run_deferred(e);
    if (done(arg))
      return 0;
    int r = io_uring_submit_and_wait(&e->ring, e->defer_head ? 0 : 1);
    if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY && r != -ETIME)
      return r;
    reap(e);
  }
}

int engine_poll(struct engine *e)
{
  run_deferred(e);
  int r = io_uring_submit_and_get_events(&e->ring);
  if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY)
    return r;
  reap(e);
  return 0;
}
