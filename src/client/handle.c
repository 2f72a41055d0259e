/* handle.c: a libshunt handle: creating and closing it, the poll loop that
 * drives sends and receives, losing and re-establishing connections (the
 * first connect is connect.c's). */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "proto/nbd-protocol.h"

void sh_lock(struct shunt_handle *h)
{
  pthread_mutex_lock(&h->lock);
}

void sh_unlock(struct shunt_handle *h)
{
  pthread_mutex_unlock(&h->lock);
}

/* The last failure this thread saw, and on which handle: with several threads
 * on one handle, each keeps its own message. */
static __thread const struct shunt_handle *tls_err_handle;
static __thread char tls_err[1024];

void sh_set_error(struct shunt_handle *h, const char *msg)
{
  snprintf(h->last_error, sizeof h->last_error, "%s", msg);
  tls_err_handle = h;
  snprintf(tls_err, sizeof tls_err, "%s", msg);
}

static void init_locks(struct shunt_handle *h)
{
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_init(&h->lock, &a);
  pthread_mutexattr_destroy(&a);
  pthread_cond_init(&h->progress, NULL);
}

struct shunt_handle *shunt_create(void)
{
  struct shunt_handle *h = calloc(1, sizeof *h);
  if (!h)
    return NULL;
  h->wakefd = h->timerfd = h->given_fd = -1;
  init_locks(h);
  if (sh_options_init(h) < 0) {
    shunt_close(h);
    return NULL;
  }
  return h;
}

int shunt_connection_fd(const struct shunt_handle *h, unsigned i)
{
  struct shunt_handle *m = (struct shunt_handle *)h;
  sh_lock(m);
  int fd = i >= h->nconns || !h->conns[i].live ? -EINVAL : h->conns[i].t.fd;
  sh_unlock(m);
  return fd;
}

int shunt_release_fds(struct shunt_handle *h, int *fds, unsigned n)
{
  if (h->tls)
    return -EPROTONOSUPPORT;   /* a TLS session cannot be handed to the kernel */
  sh_lock(h);
  bool reconnecting = false;
  for (unsigned i = 0; i < h->nconns; i++)
    reconnecting |= h->conns[i].reconnecting;
  if (h->in_flight || reconnecting || n < h->nconns) {
    int e = h->in_flight || reconnecting ? -EBUSY : -EINVAL;
    sh_unlock(h);
    return e;
  }
  unsigned k = 0;
  for (unsigned i = 0; i < h->nconns; i++) {
    if (!h->conns[i].live)
      continue;
    /* Hand over a blocking socket, as the kernel nbd driver and nbd-client expect. */
    int fl = fcntl(h->conns[i].t.fd, F_GETFL);
    if (fl >= 0)
      fcntl(h->conns[i].t.fd, F_SETFL, fl & ~O_NONBLOCK);
    fds[k++] = h->conns[i].t.fd;
    h->conns[i].t.fd = -1;
    h->conns[i].live = false;
  }
  sh_unlock(h);
  return (int)k;
}

static void fail_all(struct shunt_handle *h, int ci, int err, const char *msg)
{
  for (uint32_t s = 0; s < h->nslots; s++) {
    struct sh_req *r = h->slots[s];
    if (!r || (ci >= 0 && r->conn != ci))
      continue;
    if (!r->error) {
      r->error = err;
      free(r->errmsg);
      r->errmsg = msg ? strdup(msg) : NULL;
    }
    r->queued = false;
    sh_complete(h, r);
  }
}

void sh_disconnect(struct shunt_handle *h)
{
  for (unsigned i = 0; i < h->nconns; i++) {
    struct sh_conn *c = &h->conns[i];
    if (c->live && !c->sq_head && c->rs == RS_HDR && c->hgot == 0) {
      /* Spec: NBD_CMD_DISC before closing; best effort, never blocks long. */
      unsigned char hdr[32];
      size_t len = proto_request_encode(hdr, c->extended, 0, NBD_CMD_DISC, 0, 0, 0);
      struct iovec v = { hdr, len };
      (void)sh_transport_writev(&c->t, &v, 1);
    }
    c->live = false;
  }
  fail_all(h, -1, -ECANCELED, "handle closed");
  for (unsigned i = 0; i < h->nconns; i++)
    sh_transport_close(&h->conns[i].t);
  if (h->given_fd >= 0)
    close(h->given_fd);
  h->given_fd = -1;
  if (h->wakefd >= 0)
    close(h->wakefd);
  if (h->timerfd >= 0)
    close(h->timerfd);
  h->wakefd = h->timerfd = -1;
  sh_wait_child(h);
  sh_negotiated_free(&h->neg);
  memset(&h->neg, 0, sizeof h->neg);
  memset(&h->info, 0, sizeof h->info);
  for (unsigned k = 0; k < h->ntargets; k++) {
    nbd_uri_free(&h->targets[k].uri);
    free(h->targets[k].text);
  }
  memset(h->targets, 0, sizeof h->targets);
  h->ntargets = 0;
  h->tls = false;
  free(h->fd_what);
  h->fd_what = NULL;
  h->uri_text = NULL;
  free(h->conns);
  h->conns = NULL;
  h->nconns = 0;
  h->connected = false;
}

void shunt_close(struct shunt_handle *h)
{
  if (!h)
    return;
  sh_disconnect(h);
  free(h->slots);
  free(h->free_slots);
  sh_options_free(h);
  if (tls_err_handle == h)
    tls_err_handle = NULL;
  pthread_cond_destroy(&h->progress);
  pthread_mutex_destroy(&h->lock);
  free(h);
}

static uint64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A connection waits for its reconnect time (not one being dialed). */
static bool reconnect_waiting(const struct shunt_handle *h)
{
  for (unsigned i = 0; i < h->nconns; i++)
    if (h->conns[i].reconnecting && !h->conns[i].dialing)
      return true;
  return false;
}

/* Arm the timer for the earliest waiting reconnect, or disarm it; wake the
 * leader, whose poll set was computed before. */
static void arm_timer(struct shunt_handle *h)
{
  struct itimerspec its = { 0 };
  uint64_t due = UINT64_MAX;
  for (unsigned i = 0; i < h->nconns; i++) {
    const struct sh_conn *c = &h->conns[i];
    if (c->reconnecting && !c->dialing && c->due_ms < due)
      due = c->due_ms;
  }
  if (due != UINT64_MAX) {
    its.it_value.tv_sec = (time_t)(due / 1000);
    its.it_value.tv_nsec = (long)(due % 1000) * 1000000 + 1; /* never 0: that disarms */
  }
  if (h->timerfd >= 0)
    (void)timerfd_settime(h->timerfd, TFD_TIMER_ABSTIME, &its, NULL);
  shunt_wake(h);
}

/* Become the thread that leads (as sh_poll_round does), waking the current
 * leader so that its round ends; completion callbacks run as leader. */
static void lead_begin(struct shunt_handle *h)
{
  while (h->polling) {
    shunt_wake(h);
    pthread_cond_wait(&h->progress, &h->lock);
  }
  h->polling = true;
  h->poller = pthread_self();
}

static void lead_end(struct shunt_handle *h)
{
  h->polling = false;
  h->rounds++;
  pthread_cond_broadcast(&h->progress);
}

/* The new connection of ci is up: send its requests again.  Requests that had
 * been sent on the lost one are retried (every NBD command is idempotent: a
 * retried write writes the same bytes again); ones submitted meanwhile were
 * only queued. */
static int reconnected(struct shunt_handle *h, unsigned ci, unsigned target,
                       struct sh_transport *t, const struct sh_negotiated *n)
{
  int before;
  unsigned old_target = h->conns[ci].target;
  bool lead = false;
  for (uint32_t s = 0; s < h->nslots && !lead; s++)
    lead = h->slots[s] && h->slots[s]->conn == (int)ci &&
           (!sh_req_replayable(h->slots[s]) || (!n->extended && h->slots[s]->length > UINT32_MAX));
  if (lead) {
    /* Some fail here: complete them as leader, as give_up() does (dialing
     * keeps other threads from dialing ci while we wait to lead). */
    h->conns[ci].dialing = true;
    lead_begin(h);
  }
  before = h->completed;
  sh_init_conn(&h->conns[ci], t, target, n);
  h->stats.reconnects++;
  if (target != old_target) {
    h->stats.failovers++;
    h->uri_text = h->info.server = h->targets[target].text;
  }
  if (!n->extended)
    h->info.extended = false; /* later requests must fit compact headers */
  for (uint32_t s = 0; s < h->nslots; s++) {
    struct sh_req *r = h->slots[s];
    if (!r || r->conn != (int)ci)
      continue;
    const char *lost = !sh_req_replayable(r)
                       ? "connection lost after part of the payload left its pipe"
                       : !n->extended && r->length > UINT32_MAX
                       ? "the new connection's compact headers cannot say its length"
                       : NULL;
    if (lost) {
      /* Its pipe bytes went to the dead socket, or it cannot be said again. */
      r->error = -ECONNRESET;
      free(r->errmsg);
      r->errmsg = strdup(lost);
      r->errmsg_server = false;
      r->queued = false;
      sh_complete(h, r);
      continue;
    }
    if (!r->queued) {
      r->retries++;
      h->stats.retried++;
    }
    r->covered = 0;
    sh_cover_reset(&r->cover);
    r->bs_pos = r->offset;
    r->error = 0;
    free(r->errmsg);
    r->errmsg = NULL;
    r->errmsg_server = false;
    sh_req_encode(r, n->extended);
    sh_queue_req(h, ci, r);
  }
  if (lead)
    lead_end(h);
  return h->completed - before;
}

/* The server of connection c, for messages. */
static const char *conn_server(const struct shunt_handle *h, const struct sh_conn *c)
{
  return h->ntargets ? h->targets[c->target].text : h->uri_text;
}

/* The last attempt failed: fail ci's requests with the error it was lost
 * with.  Returns the requests completed. */
static int give_up(struct shunt_handle *h, unsigned ci, const char *last)
{
  struct sh_conn *c = &h->conns[ci];
  char msg[1536], full[2048];
  c->reconnecting = false;
  c->sq_head = c->sq_tail = NULL; /* requests submitted meanwhile fail too */
  c->inflight = 0;
  snprintf(msg, sizeof msg, "%s; gave up after %u reconnect attempt%s (last: %s)", c->lost_msg,
           c->attempts, c->attempts == 1 ? "" : "s", last);
  snprintf(h->lost, sizeof h->lost, "%.*s", (int)sizeof h->lost - 1, msg);
  snprintf(full, sizeof full, "%s: %s", conn_server(h, c), msg);
  sh_set_error(h, full);
  lead_begin(h);
  int before = h->completed;
  fail_all(h, (int)ci, c->lost_err, msg);
  int n = h->completed - before;
  lead_end(h);
  return n;
}

/* One attempt to reconnect ci, to the next target of the list (round robin
 * from the one after the server that was lost): connect and negotiate with
 * the lock released (ci is marked dialing, so nothing else touches it; other
 * threads lead and submit meanwhile), then install the connection, or
 * schedule the next attempt, or give up.  The next target is tried at once;
 * the backoff delay comes after each full round of the list.  A server whose
 * export differs (size, ...) counts as a failed attempt, its reason kept for
 * the message.  Called with the lock held once, not as leader.  Returns the
 * requests completed. */
static int reconnect_attempt(struct shunt_handle *h, unsigned ci)
{
  struct sh_conn *c = &h->conns[ci];
  struct sh_transport t;
  struct sh_negotiated n;
  char err[768], why[256];
  unsigned target = c->next_target;
  c->dialing = true;
  c->attempts++;
  sh_unlock(h);
  int r = sh_open_conn(h, target, &t, &n, err, sizeof err); /* reads only what connect fixed */
  sh_lock(h);
  c->dialing = false;
  if (r == 0) {
    if (sh_same_export(&h->neg, &n, why, sizeof why)) {
      int done = reconnected(h, ci, target, &t, &n);
      sh_negotiated_free(&n);
      return done;
    }
    sh_negotiated_free(&n);
    sh_transport_close(&t);
    snprintf(err, sizeof err, "%s: refused: %s", h->targets[target].text, why);
  }
  uint64_t now = now_ms(), end = c->lost_ms + h->opt.reconnect_deadline_ms;
  if (c->attempts >= h->opt.reconnect || (h->opt.reconnect_deadline_ms && now >= end))
    return give_up(h, ci, err);
  c->next_target = (target + 1) % h->ntargets;
  c->due_ms = now;
  if (c->next_target == c->first_target) {
    /* A whole round failed: back off. */
    c->due_ms = now + c->delay_ms;
    c->delay_ms = c->delay_ms < 5000 ? c->delay_ms * 2 : 10000;
  }
  if (h->opt.reconnect_deadline_ms && c->due_ms > end)
    c->due_ms = end;
  return 0;
}

/* Make the reconnect attempts that are due (see reconnect_attempt).  Returns
 * the requests completed. */
static int reconnect_due(struct shunt_handle *h)
{
  int done = 0;
  bool tried = false;
  if (h->timerfd < 0)
    return 0; /* no reconnect configured */
  for (;;) {
    uint64_t now = now_ms();
    unsigned ci = 0;
    while (ci < h->nconns &&
           !(h->conns[ci].reconnecting && !h->conns[ci].dialing && h->conns[ci].due_ms <= now))
      ci++;
    if (ci == h->nconns)
      break;
    done += reconnect_attempt(h, ci);
    tried = true;
  }
  if (tried)
    arm_timer(h);
  return done;
}

void sh_conn_lost(struct shunt_handle *h, unsigned ci, int err, const char *why)
{
  struct sh_conn *c = &h->conns[ci];
  char msg[512];
  snprintf(msg, sizeof msg, "connection %u lost: %s (%s)", ci, why, strerror(-err));
  snprintf(h->lost, sizeof h->lost, "%s", msg);
  char full[1024];
  snprintf(full, sizeof full, "%s: %s", conn_server(h, c), msg);
  sh_set_error(h, full);
  sh_transport_close(&c->t);
  c->live = false;
  c->sq_head = c->sq_tail = NULL;
  c->inflight = 0;
  if (h->opt.reconnect && h->ntargets && h->timerfd >= 0 && err != -EPROTO) {
    /* Requests whose reply was partly received restart from scratch once the
     * connection is back.  Nothing waits here: the attempt is made by a
     * polling thread when due (reconnect_due), without the lock. */
    for (uint32_t s = 0; s < h->nslots; s++)
      if (h->slots[s] && h->slots[s]->conn == (int)ci)
        h->slots[s]->queued = false;
    c->reconnecting = true;
    c->attempts = 0;
    c->lost_ms = now_ms();
    c->first_target = c->next_target = (c->target + 1) % h->ntargets;
    c->due_ms = c->lost_ms + h->opt.reconnect_delay_ms;
    c->delay_ms = h->opt.reconnect_delay_ms < 5000 ? h->opt.reconnect_delay_ms * 2 : 10000;
    c->lost_err = err;
    snprintf(c->lost_msg, sizeof c->lost_msg, "%s", msg);
    arm_timer(h);
    return;
  }
  fail_all(h, (int)ci, err, msg);
}

unsigned shunt_in_flight(const struct shunt_handle *h)
{
  struct shunt_handle *m = (struct shunt_handle *)h;
  sh_lock(m);
  unsigned n = h->in_flight;
  sh_unlock(m);
  return n;
}

void shunt_wake(struct shunt_handle *h)
{
  uint64_t one = 1;
  ssize_t r = write(h->wakefd, &one, sizeof one);
  (void)r;
}

static void flush_all(struct shunt_handle *h)
{
  for (unsigned i = 0; i < h->nconns; i++) {
    struct sh_conn *c = &h->conns[i];
    if (!c->live || !c->sq_head)
      continue;
    int r = sh_conn_flush_sends(h, c);
    if (r < 0)
      sh_conn_lost(h, i, r, "send failed");
  }
}

/* Send what is queued (h->completed counts the requests a lost connection
 * failed meanwhile), then fill pfd. */
static unsigned pollfds_locked(struct shunt_handle *h, struct pollfd *pfd, unsigned max)
{
  unsigned n = 0;
  h->completed = 0;
  flush_all(h);
  if (n < max)
    pfd[n++] = (struct pollfd){ .fd = h->wakefd, .events = POLLIN };
  /* Only while a connection is down: its slot is free, so the count stays
   * within connections + 1. */
  if (n < max && h->timerfd >= 0 && reconnect_waiting(h))
    pfd[n++] = (struct pollfd){ .fd = h->timerfd, .events = POLLIN };
  for (unsigned i = 0; i < h->nconns && n < max; i++) {
    struct sh_conn *c = &h->conns[i];
    if (!c->live)
      continue;
    pfd[n++] = (struct pollfd){ .fd = c->t.fd,
                                .events = (short)(POLLIN | (c->sq_head ? POLLOUT : 0)) };
  }
  return n;
}

static int process_locked(struct shunt_handle *h, const struct pollfd *pfd, unsigned n)
{
  h->completed = 0;
  for (unsigned k = 0; k < n; k++) {
    if (!pfd[k].revents)
      continue;
    if (pfd[k].fd == h->wakefd || pfd[k].fd == h->timerfd) {
      uint64_t v;
      ssize_t r = read(pfd[k].fd, &v, sizeof v);
      (void)r;
      continue;
    }
    for (unsigned i = 0; i < h->nconns; i++) {
      struct sh_conn *c = &h->conns[i];
      if (!c->live || c->t.fd != pfd[k].fd)
        continue;
      const char *why = "";
      int r = 0;
      if (pfd[k].revents & POLLOUT)
        r = sh_conn_flush_sends(h, c);
      if (r == 0 && (pfd[k].revents & (POLLIN | POLLERR | POLLHUP)))
        r = sh_conn_receive(h, c, &why);
      else if (r < 0)
        why = "send failed";
      if (r < 0)
        sh_conn_lost(h, i, r, why);
      break;
    }
  }
  flush_all(h);
  return h->completed;
}

unsigned shunt_pollfds(struct shunt_handle *h, struct pollfd *pfd, unsigned max)
{
  sh_lock(h);
  unsigned n = pollfds_locked(h, pfd, max);
  if (h->completed)
    shunt_wake(h);   /* requests failed on a send: the caller's poll returns at once */
  sh_unlock(h);
  return n;
}

int shunt_pollfds_process(struct shunt_handle *h, const struct pollfd *pfd, unsigned n)
{
  sh_lock(h);
  int r = process_locked(h, pfd, n);
  r += reconnect_due(h);
  sh_unlock(h);
  return r;
}

static void deadline_after(struct timespec *ts, int ms)
{
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (long)(ms % 1000) * 1000000;
  if (ts->tv_nsec >= 1000000000) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000;
  }
}

int sh_poll_round(struct shunt_handle *h, int timeout_ms)
{
  if (h->in_flight == 0)
    return 0;
  if (h->polling) {
    if (pthread_equal(h->poller, pthread_self()))
      return -EDEADLK; /* called from a completion callback */
    /* Follower: the leader's round will complete our requests too. */
    uint64_t seen = h->rounds;
    struct timespec ts;
    if (timeout_ms >= 0)
      deadline_after(&ts, timeout_ms);
    while (h->polling && h->rounds == seen) {
      if (timeout_ms < 0)
        pthread_cond_wait(&h->progress, &h->lock);
      else if (pthread_cond_timedwait(&h->progress, &h->lock, &ts) == ETIMEDOUT)
        break;
    }
    return 0;
  }
  struct pollfd pfd[SH_MAX_CONNECTIONS + 1];
  h->polling = true;
  h->poller = pthread_self();
  unsigned n = pollfds_locked(h, pfd, SH_MAX_CONNECTIONS + 1);
  if (h->completed) {
    /* A send failed and the connection's requests with it (no reconnect):
     * that is this round's progress; a poll now might wait for nothing. */
    int done = h->completed;
    lead_end(h);
    return done;
  }
  sh_unlock(h);
  int r;
  do
    r = poll(pfd, n, timeout_ms);
  while (r < 0 && errno == EINTR);
  int e = errno;
  sh_lock(h);
  int ret = r < 0 ? -e : process_locked(h, pfd, n);
  lead_end(h);
  /* No longer leading: another thread may poll the other connections while
   * this one makes a due reconnect attempt. */
  int more = reconnect_due(h);
  return ret < 0 ? ret : ret + more;
}

int shunt_poll(struct shunt_handle *h, int timeout_ms)
{
  sh_lock(h);
  int r = sh_poll_round(h, timeout_ms);
  sh_unlock(h);
  return r;
}

const char *shunt_last_error(const struct shunt_handle *h)
{
  return tls_err_handle == h ? tls_err : h->last_error;
}

