/* sendq.c: the per-connection send queue (see sendq.h). */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "engine/sendq.h"

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

static void sendq_start(struct sendq *q);

static void fail_all(struct sendq *q, int err)
{
  struct sendq_item *it = q->head;

  if (!q->error)
    q->error = err;
  q->head = NULL;
  q->tail = &q->head;
  q->head_sent = 0;
  while (it) {
    struct sendq_item *next = it->next;
    it->done(it, err);
    it = next;
  }
}

static void sendq_complete(struct engine_op *op, int res, uint32_t flags)
{
  struct sendq *q = container_of(op, struct sendq, op);
  size_t left;

  (void)flags;
  q->busy = false;
  if (res == -EINTR || res == -EAGAIN) {
    sendq_start(q);
    return;
  }
  if (res <= 0) {
    fail_all(q, res < 0 ? res : -EPIPE);
    if (q->on_idle)
      q->on_idle(q);
    return;
  }
  q->bytes_sent += (unsigned)res;
  left = (size_t)res;
  while (q->head) {
    struct sendq_item *it = q->head;
    size_t len = 0;
    for (int i = 0; i < it->niov; i++)
      len += it->iov[i].iov_len;
    if (q->head_sent + left < len) {
      q->head_sent += left;
      break;
    }
    left -= len - q->head_sent;
    q->head_sent = 0;
    q->head = it->next;
    if (!q->head)
      q->tail = &q->head;
    it->done(it, 0);
  }
  if (q->head)
    sendq_start(q);
  else if (q->on_idle)
    q->on_idle(q);
}

static void sendq_start(struct sendq *q)
{
  size_t skip = q->head_sent;
  int n = 0;

  if (q->busy || !q->head)
    return;
  for (struct sendq_item *it = q->head; it && n < SENDQ_MAX_IOV; it = it->next) {
    for (int i = 0; i < it->niov && n < SENDQ_MAX_IOV; i++) {
      struct iovec v = it->iov[i];
      if (skip >= v.iov_len) {
        skip -= v.iov_len;
        continue;
      }
      v.iov_base = (char *)v.iov_base + skip;
      v.iov_len -= skip;
      skip = 0;
      q->iov[n++] = v;
    }
  }
  if (n == 0) {
    /* Only empty items (n is 0 only when every queued item is empty). */
    struct sendq_item *it = q->head;
    q->head = NULL;
    q->tail = &q->head;
    q->head_sent = 0;
    while (it) {
      struct sendq_item *next = it->next;
      it->done(it, 0);
      it = next;
    }
    if (q->head)
      sendq_start(q);
    else if (q->on_idle)
      q->on_idle(q);
    return;
  }
  if (q->submit) {
    int r;
    q->busy = true;
    if ((r = q->submit(q, q->iov, n)) < 0) {
      q->busy = false;
      fail_all(q, r);
      if (q->on_idle)
        q->on_idle(q);
    }
    return;
  }
  struct io_uring_sqe *sqe = engine_sqe(q->eng, &q->op);
  if (q->is_socket) {
    memset(&q->msg, 0, sizeof q->msg);
    q->msg.msg_iov = q->iov;
    q->msg.msg_iovlen = n;
    io_uring_prep_sendmsg(sqe, q->fd, &q->msg, MSG_NOSIGNAL);
  } else {
    io_uring_prep_writev(sqe, q->fd, q->iov, n, (uint64_t)-1);
  }
  q->busy = true;
}

void sendq_sent(struct sendq *q, int res)
{
  sendq_complete(&q->op, res, 0);
}

static void sendq_kick(struct engine_op *op, int res, uint32_t flags)
{
  struct sendq *q = container_of(op, struct sendq, kick);

  (void)res; (void)flags;
  q->kick_scheduled = false;
  if (q->error) {
    fail_all(q, q->error);
    if (!q->busy && q->on_idle)
      q->on_idle(q);
    return;
  }
  sendq_start(q);
}

void sendq_init(struct sendq *q, struct engine *eng, int fd, bool is_socket,
                void (*on_idle)(struct sendq *q))
{
  memset(q, 0, sizeof *q);
  q->eng = eng;
  q->fd = fd;
  q->is_socket = is_socket;
  q->tail = &q->head;
  q->op.cb = sendq_complete;
  q->kick.cb = sendq_kick;
  q->on_idle = on_idle;
}

void sendq_push(struct sendq *q, struct sendq_item *it)
{
  it->next = NULL;
  *q->tail = it;
  q->tail = &it->next;
  if (!q->busy && !q->kick_scheduled) {
    q->kick_scheduled = true;
    engine_defer(q->eng, &q->kick, 0);
  }
}

bool sendq_idle(const struct sendq *q)
{
  return !q->head && !q->busy && !q->kick_scheduled;
}
