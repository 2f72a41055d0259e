/* sync.c: libshunt's synchronous calls, built on the asynchronous API: submit,
 * then run the poll loop until every piece has completed.  Large reads and
 * writes are split at max_block and run in parallel. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "client/client.h"

struct waiter {
  unsigned pending;
  int error;
  char msg[1024];            /* the first failure's message */
};

static void on_done(const struct shunt_result *r)
{
  struct waiter *w = r->user;
  w->pending--;
  if (r->error && !w->error) {
    w->error = r->error;
    snprintf(w->msg, sizeof w->msg, "%s", r->message ? r->message : strerror(-r->error));
  }
}

/* Run the event loop (as leader or follower) until at most `upto` of w's
 * requests are outstanding.  Called with the handle locked. */
static int wait_all(struct shunt_handle *h, struct waiter *w, unsigned upto)
{
  while (w->pending > upto) {
    int r = sh_poll_round(h, -1);
    if (r < 0)
      return r;
  }
  return 0;
}

/* Finish a synchronous call: report w's error to this thread, unlock. */
static int finish(struct shunt_handle *h, struct waiter *w, int r)
{
  if (r == 0)
    r = wait_all(h, w, 0);
  if (r == 0 && w->error) {
    r = w->error;
    sh_set_error(h, w->msg);
  }
  sh_unlock(h);
  return r;
}

/* Keep at most this many pieces of one call in flight. */
#define SYNC_DEPTH 16

/* Lock the handle for a synchronous call; refuse one made from a completion
 * callback (it would wait for a round that can never run). */
static int enter(struct shunt_handle *h)
{
  sh_lock(h);
  if (h->polling && pthread_equal(h->poller, pthread_self())) {
    sh_set_error(h, "synchronous call from a completion callback");
    sh_unlock(h);
    return -EDEADLK;
  }
  if (!h->connected) {
    sh_set_error(h, "the handle is not connected");
    sh_unlock(h);
    return -ENOTCONN;
  }
  return 0;
}

/* A submit failed: remember it (the message is already this thread's). */
static void submit_failed(struct shunt_handle *h, struct waiter *w, int64_t c)
{
  if (!w->error) {
    w->error = (int)c;
    snprintf(w->msg, sizeof w->msg, "%s", shunt_last_error(h));
  }
}

static int rw(struct shunt_handle *h, bool write, const struct iovec *iov, int iovcnt,
              uint64_t offset, unsigned flags)
{
  struct waiter w = { 0 };
  uint64_t total = 0;
  int r = 0;
  for (int i = 0; i < iovcnt; i++)
    total += iov[i].iov_len;
  if ((r = enter(h)) < 0)
    return r;
  uint64_t piece = h->info.max_block;
  if (total <= piece) {
    int64_t c = write ? shunt_aio_pwrite(h, iov, iovcnt, offset, flags, on_done, &w)
                      : shunt_aio_pread(h, iov, iovcnt, offset, flags, on_done, &w);
    if (c < 0)
      submit_failed(h, &w, c);
    else
      w.pending++;
    return finish(h, &w, 0);
  }
  struct iovec v[1024];
  for (uint64_t done = 0; done < total && !w.error && r == 0;) {
    uint64_t len = total - done < piece ? total - done : piece;
    int n = sh_iov_slice(iov, iovcnt, done, len, v, 1024);
    uint64_t got = 0;
    for (int i = 0; i < n; i++)
      got += v[i].iov_len;
    int64_t c = write ? shunt_aio_pwrite(h, v, n, offset + done, flags, on_done, &w)
                      : shunt_aio_pread(h, v, n, offset + done, flags, on_done, &w);
    if (c < 0) {
      submit_failed(h, &w, c);
      break;
    }
    w.pending++;
    done += got;
    r = wait_all(h, &w, SYNC_DEPTH - 1);
  }
  if (r < 0)
    (void)wait_all(h, &w, 0); /* the stack waiter must outlive its requests */
  return finish(h, &w, r);
}

int shunt_preadv(struct shunt_handle *h, const struct iovec *iov, int iovcnt, uint64_t offset,
                 unsigned flags)
{
  return rw(h, false, iov, iovcnt, offset, flags);
}

int shunt_pwritev(struct shunt_handle *h, const struct iovec *iov, int iovcnt, uint64_t offset,
                  unsigned flags)
{
  return rw(h, true, iov, iovcnt, offset, flags);
}

int shunt_pread(struct shunt_handle *h, void *buf, size_t len, uint64_t offset, unsigned flags)
{
  struct iovec v = { buf, len };
  return rw(h, false, &v, 1, offset, flags);
}

int shunt_pwrite(struct shunt_handle *h, const void *buf, size_t len, uint64_t offset,
                 unsigned flags)
{
  struct iovec v = { (void *)buf, len };
  return rw(h, true, &v, 1, offset, flags);
}

int shunt_flush(struct shunt_handle *h)
{
  struct waiter w = { 0 };
  int r = enter(h);
  if (r < 0)
    return r;
  int64_t c = shunt_aio_flush(h, on_done, &w);
  if (c < 0)
    submit_failed(h, &w, c);
  else
    w.pending++;
  return finish(h, &w, 0);
}

/* Trim, zero and cache ranges beyond what one request can say are split. */
static uint64_t effect_max(const struct shunt_handle *h)
{
  if (h->info.extended)
    return UINT64_MAX;
  uint64_t m = UINT32_MAX;
  return m / h->info.min_block * h->info.min_block;
}

enum ranged_cmd { RANGED_TRIM, RANGED_ZERO, RANGED_CACHE };

static int ranged(struct shunt_handle *h, enum ranged_cmd cmd, uint64_t offset, uint64_t length,
                  unsigned flags)
{
  struct waiter w = { 0 };
  int r = enter(h);
  if (r < 0)
    return r;
  uint64_t m = effect_max(h);
  while (length && !w.error) {
    uint64_t len = length < m ? length : m;
    int64_t c = cmd == RANGED_ZERO ? shunt_aio_zero(h, offset, len, flags, on_done, &w)
              : cmd == RANGED_TRIM ? shunt_aio_trim(h, offset, len, flags, on_done, &w)
                                   : shunt_aio_cache(h, offset, len, on_done, &w);
    if (c < 0) {
      submit_failed(h, &w, c);
      break;
    }
    w.pending++;
    offset += len;
    length -= len;
  }
  return finish(h, &w, 0);
}

int shunt_trim(struct shunt_handle *h, uint64_t offset, uint64_t length, unsigned flags)
{
  return ranged(h, RANGED_TRIM, offset, length, flags);
}

int shunt_zero(struct shunt_handle *h, uint64_t offset, uint64_t length, unsigned flags)
{
  return ranged(h, RANGED_ZERO, offset, length, flags);
}

int shunt_cache(struct shunt_handle *h, uint64_t offset, uint64_t length)
{
  return ranged(h, RANGED_CACHE, offset, length, 0);
}

struct bs_ctx {
  struct waiter w;           /* first: on_done sees the waiter */
  shunt_extent_fn fn;
  void *user;
};

static void bs_extent(void *user, const char *context, uint64_t offset, uint64_t length,
                      uint32_t flags)
{
  struct bs_ctx *c = user;
  if (c->fn)
    c->fn(c->user, context, offset, length, flags);
}

int shunt_block_status(struct shunt_handle *h, uint64_t offset, uint64_t length, unsigned flags,
                       shunt_extent_fn extent, void *user)
{
  struct bs_ctx c = { .fn = extent, .user = user };
  int r = enter(h);
  if (r < 0)
    return r;
  uint64_t m = effect_max(h);
  if (length > m)
    length = m;
  int64_t k = shunt_aio_block_status(h, offset, length, flags, bs_extent, on_done, &c);
  if (k < 0)
    submit_failed(h, &c.w, k);
  else
    c.w.pending++;
  return finish(h, &c.w, 0);
}
