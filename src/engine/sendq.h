/* sendq.h: a connection's ordered send queue.  Reply bytes are queued as
 * items of up to SENDQ_ITEM_IOV iovecs; one send is in flight at a time and
 * gathers many items, so bytes of different replies never interleave and
 * short sends simply continue where they stopped. */
#ifndef SHUNT_ENGINE_SENDQ_H
#define SHUNT_ENGINE_SENDQ_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "engine/engine.h"

#define SENDQ_ITEM_IOV 2
#define SENDQ_MAX_IOV  64

struct sendq_item {
  struct sendq_item *next;
  struct iovec iov[SENDQ_ITEM_IOV];
  int niov;
  /* Called once all its bytes were sent (err 0) or the queue failed (-errno). */
  void (*done)(struct sendq_item *it, int err);
};

struct sendq {
  struct engine *eng;
  int fd;
  bool is_socket;           /* sendmsg(MSG_NOSIGNAL) on sockets, writev otherwise */
  struct sendq_item *head, **tail;
  size_t head_sent;         /* bytes of head already sent */
  bool busy;                /* a send is in flight */
  bool kick_scheduled;
  int error;                /* first error, after which everything fails */
  unsigned long long bytes_sent;
  struct engine_op op;      /* send completions */
  struct engine_op kick;    /* deferred start, to batch items queued in one turn */
  struct iovec iov[SENDQ_MAX_IOV];
  struct msghdr msg;
  /* Called when the queue becomes empty (or fails) with no send in flight. */
  void (*on_idle)(struct sendq *q);
  /* Optional transport (TLS): takes the gathered plaintext instead of the
   * socket, and later calls sendq_sent() with how much it took (or -errno).
   * Returns 0, or -errno to fail the queue at once. */
  int (*submit)(struct sendq *q, const struct iovec *iov, int niov);
};

/* Prepare a queue over fd. */
void sendq_init(struct sendq *q, struct engine *eng, int fd, bool is_socket,
                void (*on_idle)(struct sendq *q));

/* Queue an item; its done callback runs later, never inside this call. */
void sendq_push(struct sendq *q, struct sendq_item *it);

/* Completion of a send made through q->submit: res bytes (> 0) taken from
 * the front of the iovecs it was given, or -errno. */
void sendq_sent(struct sendq *q, int res);

/* True when nothing is queued or in flight (and no start is scheduled). */
bool sendq_idle(const struct sendq *q);

#endif
