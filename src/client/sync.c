/* sync.c: libshunt's synchronous calls, built on the asynchronous API: submit,
 * then run the poll loop until every piece has completed.  Large reads and
 * writes are split at max_block and run in parallel. */
#include <errno.h>
#include <string.h>

#include "client/client.h"

struct waiter {
  unsigned pending;
  int error;
};

static void on_done(const struct shunt_result *r)
{
  struct waiter *w = r->user;
  w->pending--;
  if (r->error && !w->error)
    w->error = r->error;
}

static int wait_all(struct shunt_handle *h, struct waiter *w, unsigned upto)
{
  while (w->pending > upto) {
    int r = shunt_poll(h, -1);
    if (r < 0)
      return r;
  }
  return 0;
}

/* Keep at most this many pieces of one call in flight. */
#define SYNC_DEPTH 16

static int rw(struct shunt_handle *h, bool write, const struct iovec *iov, int iovcnt,
              uint64_t offset, unsigned flags)
{
  struct waiter w = { 0 };
  uint64_t total = 0;
  for (int i = 0; i < iovcnt; i++)
    total += iov[i].iov_len;
  uint64_t piece = h->info.max_block;
  if (total <= piece) {
    int64_t c = write ? shunt_aio_pwrite(h, iov, iovcnt, offset, flags, on_done, &w)
                      : shunt_aio_pread(h, iov, iovcnt, offset, flags, on_done, &w);
    if (c < 0)
      return (int)c;
    w.pending++;
  } else {
    struct iovec v[1024];
    for (uint64_t done = 0; done < total && !w.error;) {
      uint64_t len = total - done < piece ? total - done : piece;
      int n = sh_iov_slice(iov, iovcnt, done, len, v, 1024);
      uint64_t got = 0;
      for (int i = 0; i < n; i++)
        got += v[i].iov_len;
      int64_t c = write ? shunt_aio_pwrite(h, v, n, offset + done, flags, on_done, &w)
                        : shunt_aio_pread(h, v, n, offset + done, flags, on_done, &w);
      if (c < 0) {
        w.error = (int)c;
        break;
      }
      w.pending++;
      done += got;
      int r = wait_all(h, &w, SYNC_DEPTH - 1);
      if (r < 0)
        return r;
    }
  }
  int r = wait_all(h, &w, 0);
  return r < 0 ? r : w.error;
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

static int one(struct shunt_handle *h, int64_t cookie, struct waiter *w)
{
  if (cookie < 0)
    return (int)cookie;
  w->pending++;
  int r = wait_all(h, w, 0);
  return r < 0 ? r : w->error;
}

int shunt_flush(struct shunt_handle *h)
{
  struct waiter w = { 0 };
  return one(h, shunt_aio_flush(h, on_done, &w), &w);
}

/* Trim and zero ranges beyond what one request can say are split. */
static uint64_t effect_max(const struct shunt_handle *h)
{
  if (h->info.extended)
    return UINT64_MAX;
  uint64_t m = UINT32_MAX;
  return m / h->info.min_block * h->info.min_block;
}

int shunt_trim(struct shunt_handle *h, uint64_t offset, uint64_t length, unsigned flags)
{
  struct waiter w = { 0 };
  uint64_t m = effect_max(h);
  while (length && !w.error) {
    uint64_t len = length < m ? length : m;
    int64_t c = shunt_aio_trim(h, offset, len, flags, on_done, &w);
    if (c < 0)
      return (int)c;
    w.pending++;
    offset += len;
    length -= len;
  }
  int r = wait_all(h, &w, 0);
  return r < 0 ? r : w.error;
}

int shunt_zero(struct shunt_handle *h, uint64_t offset, uint64_t length, unsigned flags)
{
  struct waiter w = { 0 };
  uint64_t m = effect_max(h);
  while (length && !w.error) {
    uint64_t len = length < m ? length : m;
    int64_t c = shunt_aio_zero(h, offset, len, flags, on_done, &w);
    if (c < 0)
      return (int)c;
    w.pending++;
    offset += len;
    length -= len;
  }
  int r = wait_all(h, &w, 0);
  return r < 0 ? r : w.error;
}

struct bs_ctx {
  struct waiter w;           /* first: on_done sees the waiter */
  shunt_extent_fn fn;
  void *user;
};

static void bs_extent(void *user, uint64_t offset, uint64_t length, uint32_t flags)
{
  struct bs_ctx *c = user;
  if (c->fn)
    c->fn(c->user, offset, length, flags);
}

int shunt_block_status(struct shunt_handle *h, uint64_t offset, uint64_t length, unsigned flags,
                       shunt_extent_fn extent, void *user)
{
  struct bs_ctx c = { .fn = extent, .user = user };
  uint64_t m = effect_max(h);
  if (length > m)
    length = m;
  return one(h, shunt_aio_block_status(h, offset, length, flags, bs_extent, on_done, &c), &c.w);
}
