/* worker.c: a worker thread's loop: multishot accept on every listening
 * socket, an eventfd to be told to stop, and (worker 0) the signalfd. */
#include <errno.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "common/log.h"
#include "datapath/dpworker.h"
#include "server/conn.h"
#include "server/server.h"
#include "server/worker.h"
#include "common/macros.h"

#define SHUTDOWN_GRACE_SECONDS 10
/* After the grace period, how long cut connections may still hold buffers
 * the kernel has not given back (zero-copy sends) before the worker stops
 * waiting for them; the process exit then releases them. */
#define SHUTDOWN_DRAIN_SECONDS 5
/* The connections' periodic check (conn_tick): how soon a connection paused
 * for the memory budget tries again, and the send timeout's resolution. */
#define TICK_MS 250

static void arm_tick(struct worker *w)
{
  struct io_uring_sqe *sqe = engine_sqe(&w->eng, &w->tick_op);
  w->tick_ts = (struct __kernel_timespec){ .tv_nsec = TICK_MS * 1000000L };
  io_uring_prep_timeout(sqe, &w->tick_ts, 0, 0);
  w->tick_armed = true;
}

static void tick_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct worker *w = container_of(op, struct worker, tick_op);
  struct timespec now;
  (void)flags;

  w->tick_armed = false;
  if (res != -ETIME || w->stopping)
    return;
  clock_gettime(CLOCK_MONOTONIC, &now);
  for (struct conn *c = w->conns, *next; c; c = next) {
    next = conn_next(c);
    conn_tick(c, (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000);
  }
  if (w->nconns)
    arm_tick(w);
}

void worker_conn_added(struct worker *w, struct conn *c)
{
  (void)c;
  w->nconns++;
  stat_add(&w->conns_total, 1);
  if (!w->tick_armed && !w->stopping)
    arm_tick(w);
}

/* Take one of the --max-connections slots; false when all are taken.
 * conn_slot_release() gives it back (worker_conn_removed does). */
static bool conn_slot_take(struct server *srv)
{
  unsigned max = srv->cfg->max_connections;
  unsigned n = atomic_fetch_add(&srv->nconns, 1);

  if (max && n >= max) {
    atomic_fetch_sub(&srv->nconns, 1);
    return false;
  }
  return true;
}

static void conn_slot_release(struct server *srv)
{
  atomic_fetch_sub(&srv->nconns, 1);
}

/* A connection over the limit: closed at once, logged at most once a second
 * per worker (with the count so far), so a flood cannot flood the log. */
static void refuse_connection(struct worker *w, int fd, const char *peer)
{
  struct timespec now;

  close(fd);
  w->refused++;
  stat_add(&w->refused_total, 1);
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (w->refused_logged && now.tv_sec == w->refused_log_sec)
    return;
  log_msg(LOG_WARN, peer, NULL, "connection refused: %u connections already open (--max-connections); "
          "%llu refused by worker %d so far", w->srv->cfg->max_connections, w->refused, w->id);
  w->refused_logged = true;
  w->refused_log_sec = now.tv_sec;
}

/* conn_start could not allocate the connection's state (it closed the
 * socket).  Say so, at most once a second per worker: with the heap
 * exhausted every new connection ends like this, which would otherwise look
 * like a server that hangs up for no reason. */
static void conn_start_failed(struct worker *w, const char *peer)
{
  static _Thread_local time_t logged_sec = -1;
  static _Thread_local unsigned long long failed;
  struct timespec now;

  failed++;
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (now.tv_sec == logged_sec)
    return;
  logged_sec = now.tv_sec;
  log_msg(LOG_WARN, peer, NULL, "connection closed: out of memory for its state; "
          "%llu such closes by worker %d so far", failed, w->id);
}

void worker_conn_removed(struct worker *w, struct conn *c)
{
  (void)c;
  w->nconns--;
  conn_slot_release(w->srv);
  if (w->nconns == 0)
    dp_worker_idle(&w->eng);   /* no buffers kept for nobody */
  if (w->srv->cfg->stdio)
    server_request_stop(w->srv);   /* --stdio serves exactly one client */
  if (w->stopping && w->nconns == 0 && w->grace_armed) {
    engine_cancel(&w->eng, &w->grace_op);
  }
}

/* "1.2.3.4:5678", "[::1]:5678" or "unix" for logs. */
static void peer_name(int fd, char *buf, size_t len)
{
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char host[INET6_ADDRSTRLEN];

  if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) {
    snprintf(buf, len, "fd %d", fd);
  } else if (ss.ss_family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    snprintf(buf, len, "%s:%u", host, ntohs(a->sin_port));
  } else if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    snprintf(buf, len, "[%s]:%u", host, ntohs(a->sin6_port));
  } else {
    static atomic_uint unix_clients;
    snprintf(buf, len, "unix#%u", atomic_fetch_add(&unix_clients, 1) + 1);
  }
}

static void arm_accept(struct accept_op *a)
{
  struct io_uring_sqe *sqe = engine_sqe(&a->w->eng, &a->op);
  io_uring_prep_multishot_accept(sqe, a->fd, NULL, NULL, SOCK_CLOEXEC);
  a->armed = true;
}

static void accept_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct accept_op *a = container_of(op, struct accept_op, op);
  struct worker *w = a->w;

  if (!(flags & IORING_CQE_F_MORE))
    a->armed = false;
  if (res >= 0) {
    char peer[96];
    int one = 1;
    if (w->stopping) {
      close(res);
    } else {
      peer_name(res, peer, sizeof peer);
      if (!conn_slot_take(w->srv)) {
        refuse_connection(w, res, peer);
      } else {
        setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);   /* fails harmlessly on unix sockets */
        if (conn_start(w, res, res, peer) < 0) {
          conn_slot_release(w->srv);
          conn_start_failed(w, peer);
        }
      }
    }
  } else if (res != -ECANCELED && res != -EAGAIN && res != -EINTR && res != -ECONNABORTED) {
    /* A multishot accept keeps failing while the condition lasts (no fds, no
     * memory, or a socket that cannot accept at all): stop it, and try again
     * after a pause so that connections can close, instead of spinning. */
    if (!a->backoff) {
      log_msg(LOG_WARN, NULL, NULL, "accept failed: %s; pausing accepts for 100 ms", strerror(-res));
      a->backoff = true;
      if (a->armed) {
        engine_cancel(&w->eng, &a->op);
      }
    }
  }
  if (a->armed || w->stopping)
    return;
  if (!a->backoff) {
    arm_accept(a);
  } else if (!a->retry_armed) {
    struct io_uring_sqe *sqe = engine_sqe(&w->eng, &a->retry_op);
    a->retry_ts = (struct __kernel_timespec){ .tv_sec = 0, .tv_nsec = 100 * 1000 * 1000 };
    io_uring_prep_timeout(sqe, &a->retry_ts, 0, 0);
    a->retry_armed = true;
  }
}

static void accept_retry_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct accept_op *a = container_of(op, struct accept_op, retry_op);
  (void)res; (void)flags;
  a->retry_armed = false;
  a->backoff = false;
  if (!a->armed && !a->w->stopping)
    arm_accept(a);
}

static void stop_self(void *arg) { worker_stop(arg); }

static void stop_server(void *arg)
{
  struct worker *w = arg;
  server_request_stop(w->srv);
}

static void grace_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct worker *w = container_of(op, struct worker, grace_op);
  (void)flags;
  w->grace_armed = false;
  if (res != -ETIME)
    return;   /* cancelled: every connection closed in time */
  if (w->grace_over) {
    /* The grace period must end in an exit, whatever the peers do. */
    log_msg(LOG_WARN, NULL, NULL, "worker %d: %u connections still not closed %d s after they were cut "
            "(zero-copy sends the kernel has not released): exiting without them",
            w->id, w->nconns, SHUTDOWN_DRAIN_SECONDS);
    w->abandoned = true;
    return;
  }
  w->grace_over = true;
  for (struct conn *c = w->conns, *next; c; c = next) {
    next = conn_next(c);
    conn_abort(c);
  }
  if (w->conns) {
    struct io_uring_sqe *sqe = engine_sqe(&w->eng, &w->grace_op);
    w->grace_ts = (struct __kernel_timespec){ .tv_sec = SHUTDOWN_DRAIN_SECONDS };
    io_uring_prep_timeout(sqe, &w->grace_ts, 0, 0);
    w->grace_armed = true;
  }
}

void worker_stop(struct worker *w)
{
  if (w->stopping)
    return;
  w->stopping = true;
  for (size_t i = 0; i < w->naccepts; i++)
    if (w->accepts[i].armed)
      engine_cancel(&w->eng, &w->accepts[i].op);
    else if (w->accepts[i].retry_armed)
      engine_cancel(&w->eng, &w->accepts[i].retry_op);
  engine_stopper_quiet(&w->stopper);
  if (w->tick_armed)
    engine_cancel(&w->eng, &w->tick_op);
  for (struct conn *c = w->conns, *next; c; c = next) {
    next = conn_next(c);
    conn_stop(c);
  }
  if (w->conns) {
    /* Clients that neither finish nor read their replies must not keep the
     * server from exiting: after the grace period they are cut off. */
    struct io_uring_sqe *sqe = engine_sqe(&w->eng, &w->grace_op);
    w->grace_ts = (struct __kernel_timespec){ .tv_sec = SHUTDOWN_GRACE_SECONDS };
    io_uring_prep_timeout(sqe, &w->grace_ts, 0, 0);
    w->grace_armed = true;
  }
}

void worker_wake(struct worker *w)
{
  engine_stopper_wake(&w->stopper);
}

static bool worker_done(void *arg)
{
  struct worker *w = arg;
  /* The signal read (worker 0) stays armed to catch a second signal. */
  return w->stopping && (w->abandoned || (w->nconns == 0 && w->eng.pending == (w->stopper.sig_armed ? 1u : 0u)));
}

int worker_init(struct worker *w, struct server *srv, int id)
{
  int r;

  memset(w, 0, sizeof *w);
  w->srv = srv;
  w->id = id;
  w->grace_op.cb = grace_cb;
  w->tick_op.cb = tick_cb;
  w->stopper.stopping = &srv->stopping;
  w->stopper.request_stop = stop_server;
  w->stopper.stop = stop_self;
  w->stopper.arg = w;
  if ((r = engine_stopper_init(&w->stopper)) < 0)
    return r;
  w->naccepts = srv->nlisten;
  w->accepts = calloc(w->naccepts ? w->naccepts : 1, sizeof *w->accepts);
  if (!w->accepts) {
    engine_stopper_fini(&w->stopper);
    return -ENOMEM;
  }
  for (size_t i = 0; i < w->naccepts; i++) {
    w->accepts[i].op.cb = accept_cb;
    w->accepts[i].retry_op.cb = accept_retry_cb;
    w->accepts[i].w = w;
    w->accepts[i].fd = srv->listen_fds[i];
  }
  return 0;
}

int worker_run(struct worker *w)
{
  /* The ring is made on the thread that uses it (IORING_SETUP_SINGLE_ISSUER). */
  int r = engine_init(&w->eng, 256, w->id);
  if (r < 0)
    return r;
  w->eng_ready = true;
  if (w->srv->cfg->stdio && w->id == 0) {
    conn_slot_take(w->srv);   /* one connection: always within the limit */
    if ((r = conn_start(w, 0, 1, "stdio")) < 0) {
      conn_slot_release(w->srv);
      return r;
    }
  }
  for (size_t i = 0; i < w->naccepts; i++)
    arm_accept(&w->accepts[i]);
  engine_stopper_start(&w->stopper, &w->eng, w->id == 0 ? w->srv->sig_fd : -1);
  if (atomic_load(&w->srv->stopping))
    worker_stop(w);
  return engine_run(&w->eng, worker_done, w);
}

void worker_fini(struct worker *w)
{
  free(w->accepts);
  engine_stopper_fini(&w->stopper);
  if (w->eng_ready)
    engine_fini(&w->eng);
}
