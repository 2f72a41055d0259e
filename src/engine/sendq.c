/* sendq.c: the per-connection send queue (see sendq.h). */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sendq.h"
#include "common/macros.h"

#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif


/* One zero-copy send: lives until its notification arrives. */
struct zc_ticket {
  struct engine_op op;
  struct sendq *q;
  struct sendq_item *it;
  uint64_t bytes;
  bool sent_cqe;            /* the send's own completion arrived */
};

static void sendq_start(struct sendq *q);

static size_t iov_len(const struct sendq_item *it)
{
  size_t len = 0;
  for (int i = 0; i < it->niov; i++)
    len += it->iov[i].iov_len;
  return len;
}

/* An item's bytes are all sent (or failed): done now, or after its notifications. */
static void item_finished(struct sendq_item *it, int err)
{
  if (it->zc_refs > 0) {
    it->zc_sent = true;
    if (!it->zc_err)
      it->zc_err = err;
    return;
  }
  it->done(it, err);
}

static void notify_idle(struct sendq *q)
{
  if (q->on_idle && !q->busy && !q->head)
    q->on_idle(q);
}

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
    item_finished(it, err);
    it = next;
  }
}

/* res bytes of the queue's head were sent. */
static void advance(struct sendq *q, size_t left)
{
  q->bytes_sent += left;
  while (q->head) {
    struct sendq_item *it = q->head;
    size_t len = iov_len(it) + it->splice_len;
    if (it->hold)   /* not filled in yet: it only looks empty */
      break;
    if (q->head_sent + left < len) {
      q->head_sent += left;
      break;
    }
    left -= len - q->head_sent;
    q->head_sent = 0;
    q->head = it->next;
    if (!q->head)
      q->tail = &q->head;
    item_finished(it, 0);
  }
}

static void after_send(struct sendq *q, int res)
{
  q->busy = false;
  if (res == -EINTR || res == -EAGAIN || ((res == -EOPNOTSUPP || res == -EINVAL) && !q->zc_ok && q->zc_sends)) {
    sendq_start(q);
    return;
  }
  if (res <= 0) {
    fail_all(q, res < 0 ? res : -EPIPE);
    if (q->on_idle)
      q->on_idle(q);
    return;
  }
  advance(q, (size_t)res);
  if (q->head)
    sendq_start(q);
  else
    notify_idle(q);
}

static void sendq_complete(struct engine_op *op, int res, uint32_t flags)
{
  (void)flags;
  after_send(container_of(op, struct sendq, op), res);
}

static void zc_complete(struct engine_op *op, int res, uint32_t flags)
{
  struct zc_ticket *t = container_of(op, struct zc_ticket, op);
  struct sendq *q = t->q;
  struct sendq_item *it = t->it;

  if (flags & IORING_CQE_F_NOTIF) {
    if ((uint32_t)res & IORING_NOTIF_USAGE_ZC_COPIED) {
      it->zc_copied += t->bytes;
      q->zc_copied_sends++;
    }
    q->zc_outstanding--;
    it->zc_refs--;
    free(t);
    if (it->zc_refs == 0 && it->zc_sent)
      it->done(it, it->zc_err);
    notify_idle(q);
    return;
  }
  t->bytes = res > 0 ? (uint64_t)res : 0;
  if (res == -EOPNOTSUPP || res == -EINVAL)
    q->zc_ok = false;   /* not on this socket after all: ordinary sends, retried below */
  if (!(flags & IORING_CQE_F_MORE)) {   /* no notification will follow */
    q->zc_outstanding--;
    it->zc_refs--;
    free(t);
  }
  after_send(q, res);
}

/* Finish leading items that carry no bytes. */
static void drop_empty(struct sendq *q)
{
  while (q->head && !q->head->hold && q->head_sent == 0
         && iov_len(q->head) + q->head->splice_len == 0) {
    struct sendq_item *it = q->head;
    q->head = it->next;
    if (!q->head)
      q->tail = &q->head;
    item_finished(it, 0);
  }
}

/* Copy the iovecs of it, skipping *skip bytes, into q->iov from n. */
static int gather(struct sendq *q, const struct sendq_item *it, size_t *skip, int n)
{
  for (int i = 0; i < it->niov && n < SENDQ_MAX_IOV; i++) {
    struct iovec v = it->iov[i];
    if (*skip >= v.iov_len) {
      *skip -= v.iov_len;
      continue;
    }
    v.iov_base = (char *)v.iov_base + *skip;
    v.iov_len -= *skip;
    *skip = 0;
    q->iov[n++] = v;
  }
  return n;
}

static void sendq_start(struct sendq *q)
{
  struct io_uring_sqe *sqe;
  struct sendq_item *head;
  size_t skip = q->head_sent;
  bool more = false;
  int n = 0;

  if (q->busy)
    return;
  drop_empty(q);
  head = q->head;
  if (!head || head->hold) {
    if (!head)
      notify_idle(q);
    return;
  }
  if (head->splice_len && q->submit) {   /* cannot splice into a TLS session */
    fail_all(q, -EOPNOTSUPP);
    if (q->on_idle)
      q->on_idle(q);
    return;
  }
  if (head->splice_len && q->head_sent >= iov_len(head)) {
    size_t done = q->head_sent - iov_len(head);
    sqe = engine_sqe(q->eng, &q->op);
    io_uring_prep_splice(sqe, head->pipe_fd, -1, q->fd, -1,
                         head->splice_len - (unsigned)done, head->next ? SPLICE_F_MORE : 0);
    q->busy = true;
    return;
  }
  if (head->zc && q->zc_ok && !q->submit && !head->splice_len) {
    struct zc_ticket *t = calloc(1, sizeof *t);
    if (t) {
      n = gather(q, head, &skip, 0);
      t->op.cb = zc_complete;
      t->q = q;
      t->it = head;
      head->zc_refs++;
      q->zc_outstanding++;
      q->zc_sends++;
      memset(&q->msg, 0, sizeof q->msg);
      q->msg.msg_iov = q->iov;
      q->msg.msg_iovlen = n;
      sqe = engine_sqe(q->eng, &t->op);
      io_uring_prep_sendmsg_zc(sqe, q->fd, &q->msg, MSG_NOSIGNAL);
      sqe->ioprio |= IORING_SEND_ZC_REPORT_USAGE;
      q->busy = true;
      return;
    }
    /* no memory for the ticket: an ordinary send is just as correct */
  }
  for (struct sendq_item *it = head; it && n < SENDQ_MAX_IOV; it = it->next) {
    if (it->hold || (it != head && it->zc && q->zc_ok && !q->submit && !it->splice_len)) {
      more = true;
      break;
    }
    n = gather(q, it, &skip, n);
    if (it->splice_len) {   /* its payload follows from the pipe */
      more = true;
      break;
    }
  }
  if (q->submit) {   /* a transport of its own (TLS): it takes the plain bytes */
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
  sqe = engine_sqe(q->eng, &q->op);
  if (q->is_socket) {
    memset(&q->msg, 0, sizeof q->msg);
    q->msg.msg_iov = q->iov;
    q->msg.msg_iovlen = n;
    io_uring_prep_sendmsg(sqe, q->fd, &q->msg, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
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
  /* SEND_ZC works on TCP sockets (not on unix sockets or pipes). */
  int domain = 0;
  socklen_t dl = sizeof domain;
  q->zc_ok = is_socket && getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dl) == 0
             && (domain == AF_INET || domain == AF_INET6);
}

void sendq_item_reset(struct sendq_item *it)
{
  it->hold = false;
  it->zc = false;
  it->pipe_fd = -1;
  it->splice_len = 0;
  it->zc_refs = 0;
  it->zc_sent = false;
  it->zc_err = 0;
  it->zc_copied = 0;
}

static void schedule(struct sendq *q)
{
  if (!q->busy && !q->kick_scheduled) {
    q->kick_scheduled = true;
    engine_defer(q->eng, &q->kick, 0);
  }
}

void sendq_push(struct sendq *q, struct sendq_item *it)
{
  it->next = NULL;
  *q->tail = it;
  q->tail = &it->next;
  schedule(q);
}

void sendq_release(struct sendq *q, struct sendq_item *it)
{
  it->hold = false;
  schedule(q);
}

bool sendq_idle(const struct sendq *q)
{
  return !q->head && !q->busy && !q->kick_scheduled && q->zc_outstanding == 0;
}
