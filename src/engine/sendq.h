/* sendq.h: a connection's ordered send queue.  Reply bytes are queued as
 * items; one send is in flight at a time and gathers many plain items, so
 * bytes of different replies never interleave and short sends simply continue
 * where they stopped.  An item may also carry its payload in a pipe (spliced
 * to the socket after its header, which goes out with MSG_MORE), be sent with
 * SEND_ZC (its done callback then waits for the kernel's notification), or be
 * held (queued in place, sent only once released: streaming in order). */
#ifndef SHUNT_ENGINE_SENDQ_H
#define SHUNT_ENGINE_SENDQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "engine/engine.h"

#define SENDQ_ITEM_IOV 2
#define SENDQ_MAX_IOV  64

struct sendq_item {
  struct sendq_item *next;
  struct iovec iov[SENDQ_ITEM_IOV];
  int niov;
  /* Called once all its bytes were sent (err 0) or the queue failed (-errno);
   * for a zero-copy item, only after every notification arrived. */
  void (*done)(struct sendq_item *it, int err);
  /* Optional, set by the submitter before sendq_push: */
  bool hold;                /* not ready: the queue stops here until sendq_release() */
  bool zc;                  /* send iov[] with SENDMSG_ZC */
  int pipe_fd;              /* splice_len > 0: read end holding the payload */
  uint32_t splice_len;      /* payload bytes spliced from pipe_fd after iov[] */
  /* Filled by the queue for zero-copy items: */
  unsigned zc_refs;         /* notifications still to come */
  bool zc_sent;             /* all bytes sent, waiting for notifications */
  int zc_err;
  uint64_t zc_copied;       /* bytes of sends the kernel reported as copied */
};

struct sendq {
  struct engine *eng;
  int fd;
  bool is_socket;           /* sendmsg(MSG_NOSIGNAL) on sockets, writev otherwise */
  bool zc_ok;               /* SEND_ZC works here (TCP); zc items are sent plainly otherwise */
  struct sendq_item *head, **tail;
  size_t head_sent;         /* bytes of head already sent */
  bool busy;                /* a send is in flight */
  bool kick_scheduled;
  int error;                /* first error, after which everything fails */
  unsigned long long bytes_sent;
  unsigned zc_outstanding;  /* zero-copy notifications still to come */
  unsigned long long zc_sends, zc_copied_sends;
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

/* Clear the optional fields of an item (hold, zc, splice) before filling it. */
void sendq_item_reset(struct sendq_item *it);

/* Queue an item; its done callback runs later, never inside this call. */
void sendq_push(struct sendq *q, struct sendq_item *it);

/* A held item is ready (its iov/splice fields may have been filled in since
 * it was queued): the queue may send it and what follows. */
void sendq_release(struct sendq *q, struct sendq_item *it);

/* Completion of a send made through q->submit: res bytes (> 0) taken from
 * the front of the iovecs it was given, or -errno. */
void sendq_sent(struct sendq *q, int res);

/* True when nothing is queued or in flight (and no start is scheduled). */
bool sendq_idle(const struct sendq *q);

#endif
