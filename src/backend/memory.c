/* memory.c: the `memory` backend: a sparse RAM disk for tests.  Pages of 4 KiB
 * are allocated on first write; trimmed or zeroed whole pages are freed, so
 * holes read as zeroes and show up in base:allocation.  Shared by every
 * connection and worker: a rwlock keeps page frees away from readers. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "common/parse.h"
#include "proto/nbd-protocol.h"

#define PAGE      4096u
#define L2_PAGES  512u                       /* pages per second-level table (2 MiB) */
#define MAX_SIZE  (UINT64_C(1) << 44)        /* 16 TiB: the first-level table stays small */

struct mem_priv {
  pthread_rwlock_t lock;
  uint8_t ***l1;          /* l1[i][j]: page (i * L2_PAGES + j), or NULL for a hole */
  uint64_t nl1;
};

static uint8_t *page_get(struct mem_priv *m, uint64_t pg)
{
  uint8_t **l2 = m->l1[pg / L2_PAGES];
  return l2 ? l2[pg % L2_PAGES] : NULL;
}

/* Allocate page pg if absent (caller holds the write lock). */
static uint8_t *page_alloc(struct mem_priv *m, uint64_t pg)
{
  uint8_t ***slot = &m->l1[pg / L2_PAGES];
  if (!*slot && !(*slot = calloc(L2_PAGES, sizeof **slot)))
    return NULL;
  uint8_t **p = &(*slot)[pg % L2_PAGES];
  if (!*p)
    *p = calloc(1, PAGE);
  return *p;
}

static void page_free(struct mem_priv *m, uint64_t pg)
{
  uint8_t **l2 = m->l1[pg / L2_PAGES];
  if (l2) {
    free(l2[pg % L2_PAGES]);
    l2[pg % L2_PAGES] = NULL;
  }
}

static void mem_read(struct mem_priv *m, uint8_t *buf, uint64_t off, uint64_t len)
{
  while (len) {
    uint64_t pg = off / PAGE, in = off % PAGE, n = PAGE - in;
    if (n > len) n = len;
    const uint8_t *p = page_get(m, pg);
    if (p) memcpy(buf, p + in, n);
    else memset(buf, 0, n);
    buf += n; off += n; len -= n;
  }
}

/* Write (src) or zero (src NULL) a range; frees pages that become wholly
 * zero when may_free.  Caller holds the write lock. */
static int mem_write(struct mem_priv *m, const uint8_t *src, uint64_t off, uint64_t len, bool may_free)
{
  while (len) {
    uint64_t pg = off / PAGE, in = off % PAGE, n = PAGE - in;
    if (n > len) n = len;
    if (!src && n == PAGE && may_free) {
      page_free(m, pg);
    } else if (!src) {
      uint8_t *p = may_free ? page_get(m, pg) : page_alloc(m, pg);
      if (!may_free && !p) return -ENOMEM;
      if (p) memset(p + in, 0, n);
    } else {
      uint8_t *p = page_alloc(m, pg);
      if (!p) return -ENOMEM;
      memcpy(p + in, src, n);
      src += n;
    }
    off += n; len -= n;
  }
  return 0;
}

static void mem_submit(struct backend *b, struct engine *e, struct bio *io)
{
  struct mem_priv *m = b->priv;
  int r = 0;
  (void)e;

  switch (io->type) {
  case BIO_READ:
    pthread_rwlock_rdlock(&m->lock);
    mem_read(m, io->buf, io->offset, io->length);
    pthread_rwlock_unlock(&m->lock);
    break;
  case BIO_WRITE:
    pthread_rwlock_wrlock(&m->lock);
    r = mem_write(m, io->buf, io->offset, io->length, false);
    pthread_rwlock_unlock(&m->lock);
    break;
  case BIO_TRIM:
  case BIO_ZERO:
    pthread_rwlock_wrlock(&m->lock);
    r = mem_write(m, NULL, io->offset, io->length, !(io->type == BIO_ZERO && (io->flags & BIO_NO_HOLE)));
    pthread_rwlock_unlock(&m->lock);
    break;
  case BIO_FLUSH:
  case BIO_CACHE:
    break;
  }
  backend_complete_later(io, r);
}

static int mem_extents(struct backend *b, uint64_t offset, uint64_t length,
                       struct proto_extent *ext, size_t max, size_t *n)
{
  struct mem_priv *m = b->priv;
  uint64_t pos = offset, end = offset + length;
  size_t k = 0;

  if (end > b->size)
    end = b->size;
  pthread_rwlock_rdlock(&m->lock);
  while (pos < end) {
    uint64_t stop = (pos / PAGE + 1) * PAGE;
    uint32_t flags = page_get(m, pos / PAGE) ? 0 : NBD_STATE_HOLE | NBD_STATE_ZERO;
    if (stop > end) stop = end;
    if (k > 0 && ext[k - 1].flags == flags) {
      ext[k - 1].length += stop - pos;
    } else {
      if (k == max) break;
      ext[k].length = stop - pos;
      ext[k].flags = flags;
      k++;
    }
    pos = stop;
  }
  pthread_rwlock_unlock(&m->lock);
  *n = k;
  return k ? 0 : -EINVAL;
}

static int mem_flush_sync(struct backend *b)
{
  (void)b;
  return 0;
}

static void mem_close(struct backend *b)
{
  struct mem_priv *m = b->priv;
  for (uint64_t i = 0; i < m->nl1; i++) {
    if (!m->l1[i]) continue;
    for (unsigned j = 0; j < L2_PAGES; j++)
      free(m->l1[i][j]);
    free(m->l1[i]);
  }
  free(m->l1);
  pthread_rwlock_destroy(&m->lock);
  free(m);
  free(b);
}

static const struct backend_ops memory_ops = {
  .name = "memory",
  .submit = mem_submit,
  .extents = mem_extents,
  .flush_sync = mem_flush_sync,
  .close = mem_close,
};

int backend_memory_open(const char *size, bool read_only, struct backend **out, char *err, size_t errlen)
{
  struct backend *b;
  struct mem_priv *m;
  uint64_t sz;

  if (parse_size(size, &sz) < 0) {
    snprintf(err, errlen, "memory backend: '%s' is not a size (e.g. 64M)", size);
    return -EINVAL;
  }
  if (sz > MAX_SIZE) {
    snprintf(err, errlen, "memory backend: size %s exceeds 16T", size);
    return -ERANGE;
  }
  b = calloc(1, sizeof *b);
  m = calloc(1, sizeof *m);
  if (b && m) {
    m->nl1 = (sz + (uint64_t)PAGE * L2_PAGES - 1) / ((uint64_t)PAGE * L2_PAGES);
    m->l1 = calloc(m->nl1 ? m->nl1 : 1, sizeof *m->l1);
  }
  if (!b || !m || !m->l1) {
    if (m) free(m->l1);
    free(m); free(b);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  pthread_rwlock_init(&m->lock, NULL);
  b->ops = &memory_ops;
  b->priv = m;
  b->fd = -1;
  b->size = sz;
  b->read_only = read_only;
  b->can_flush = b->can_cache = true;
  b->can_trim = b->can_zero = b->can_fast_zero = !read_only;
  *out = b;
  return 0;
}
