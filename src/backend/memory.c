/* memory.c: the `memory` backend: a sparse RAM disk for tests.  Pages of 4 KiB
 * are allocated on first write, in a radix tree (pagetable.c) whose walks cost
 * what is allocated, not the export's size; trimmed or zeroed whole pages are
 * freed (also for WRITE_ZEROES with NO_HOLE: an absent page reads as zeroes
 * just as a page of zeroes does, and reserves nothing either), so holes read
 * as zeroes and show up in base:allocation.
 * The pages may never take more than max_memory bytes: a write that needs
 * more fails with ENOSPC, so the process keeps the memory it needs to go on
 * serving (an exhausted heap refuses every new connection).  An export larger
 * than the memory the process may use needs allow_overcommit.
 * Shared by every connection and worker: a rwlock keeps page frees away from
 * readers. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/pagetable.h"
#include "common/parse.h"
#include "common/sysmem.h"
#include "common/units.h"

#define PAGE      4096u
#define MAX_SIZE  (UINT64_C(1) << 44)        /* 16 TiB */

struct mem_priv {
  pthread_rwlock_t lock;
  struct pagetable pt;
  uint64_t max_pages;     /* the cap on pt.pages */
};

static void mem_read(struct mem_priv *m, uint8_t *buf, uint64_t off, uint64_t len)
{
  while (len) {
    uint64_t pg = off / PAGE, in = off % PAGE, n = PAGE - in;
    if (n > len) n = len;
    const uint8_t *p = pt_get(&m->pt, pg);
    if (p) memcpy(buf, p + in, n);
    else memset(buf, 0, n);
    buf += n; off += n; len -= n;
  }
}

/* Page pg, allocated if absent (caller holds the write lock): 0 and *out, or
 * -ENOSPC at the cap, or -ENOMEM. */
static int page_alloc(struct mem_priv *m, uint64_t pg, uint8_t **out)
{
  uint8_t *p = pt_get(&m->pt, pg);

  if (!p) {
    if (m->pt.pages >= m->max_pages)
      return -ENOSPC;
    if (!(p = calloc(1, PAGE)))
      return -ENOMEM;
    if (pt_set(&m->pt, pg, p) < 0) {
      free(p);
      return -ENOMEM;
    }
  }
  *out = p;
  return 0;
}

static int mem_write(struct mem_priv *m, const uint8_t *src, uint64_t off, uint64_t len)
{
  while (len) {
    uint64_t pg = off / PAGE, in = off % PAGE, n = PAGE - in;
    uint8_t *p;
    int r;
    if (n > len) n = len;
    if ((r = page_alloc(m, pg, &p)) < 0)
      return r;
    memcpy(p + in, src, n);
    src += n; off += n; len -= n;
  }
  return 0;
}

/* Zero part of one page: nothing to do when it is absent. */
static void zero_part(struct mem_priv *m, uint64_t off, uint64_t len)
{
  uint8_t *p = pt_get(&m->pt, off / PAGE);
  if (p)
    memset(p + off % PAGE, 0, len);
}

/* TRIM and WRITE_ZEROES (with or without NO_HOLE): the whole pages in the
 * range are freed in one walk, the partial ones at the ends zeroed in place.
 * Never allocates, so it cannot fail. */
static void mem_zero(struct mem_priv *m, uint64_t off, uint64_t len)
{
  uint64_t end = off + len, first = (off + PAGE - 1) / PAGE, last = end / PAGE;

  if (first >= last) {   /* within one page, or across one boundary */
    uint64_t mid = first * PAGE;
    if (mid > off && mid < end) {
      zero_part(m, off, mid - off);
      zero_part(m, mid, end - mid);
    } else {
      zero_part(m, off, len);
    }
    return;
  }
  if (off < first * PAGE)
    zero_part(m, off, first * PAGE - off);
  pt_free_range(&m->pt, first, last);
  if (end > last * PAGE)
    zero_part(m, last * PAGE, end - last * PAGE);
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
    r = mem_write(m, io->buf, io->offset, io->length);
    pthread_rwlock_unlock(&m->lock);
    break;
  case BIO_TRIM:
  case BIO_ZERO:
    pthread_rwlock_wrlock(&m->lock);
    mem_zero(m, io->offset, io->length);
    pthread_rwlock_unlock(&m->lock);
    break;
  case BIO_FLUSH:
  case BIO_CACHE:
  case BIO_EXTENTS:   /* answered by backend_submit() */
    break;
  }
  backend_complete_later(io, r);
}

static int mem_extents(struct backend *b, uint64_t offset, uint64_t length,
                       struct backend_extent *ext, size_t max, size_t *n)
{
  struct mem_priv *m = b->priv;
  uint64_t pos = offset, end = offset + length, last;
  size_t k = 0;

  if (end > b->size)
    end = b->size;
  last = (end + PAGE - 1) / PAGE;
  pthread_rwlock_rdlock(&m->lock);
  while (pos < end && k < max) {
    uint64_t pg = pos / PAGE, stop;
    uint32_t flags;
    if (pt_get(&m->pt, pg)) {
      stop = pt_next_hole(&m->pt, pg + 1, last) * PAGE;
      flags = 0;
    } else {
      stop = pt_next_data(&m->pt, pg + 1, last) * PAGE;
      flags = BACKEND_EXTENT_HOLE | BACKEND_EXTENT_ZERO;
    }
    if (stop > end) stop = end;
    ext[k].length = stop - pos;
    ext[k].flags = flags;
    k++;
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
  pt_fini(&m->pt);
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

/* The cap on allocated bytes for an export of sz bytes, or 0 with a message
 * when the options do not allow the export. */
static uint64_t memory_cap(uint64_t sz, const struct backend_options *o, const char *size,
                           char *err, size_t errlen)
{
  uint64_t limit = sys_memory_limit(), cap;
  bool over = o && o->allow_overcommit;
  char l[32], c[32];

  units_format_bytes(limit, l, sizeof l);
  if (sz > limit && !over) {
    snprintf(err, errlen, "memory backend: size %s is more than the %s of memory this process may use; "
             "add the export option allow-overcommit to serve it anyway (writes then fail with ENOSPC "
             "beyond max-memory, by default half of that memory)", size, l);
    return 0;
  }
  if (o && o->max_memory) {
    if (o->max_memory > limit && !over) {
      snprintf(err, errlen, "memory backend: max-memory %s is more than the %s of memory this process "
               "may use (allow-overcommit allows it)", units_format_bytes(o->max_memory, c, sizeof c), l);
      return 0;
    }
    cap = o->max_memory;
  } else {
    cap = sz > limit / 2 && over ? limit / 2 : sz;
  }
  return cap < sz ? cap : sz;
}

int backend_memory_open(const char *size, bool read_only, const struct backend_options *o,
                        struct backend **out, char *err, size_t errlen)
{
  struct backend *b;
  struct mem_priv *m;
  uint64_t sz, cap = 0;

  if (parse_size(size, &sz) < 0) {
    snprintf(err, errlen, "memory backend: '%s' is not a size (e.g. 64M)", size);
    return -EINVAL;
  }
  if (sz > MAX_SIZE) {
    snprintf(err, errlen, "memory backend: size %s exceeds 16T", size);
    return -ERANGE;
  }
  /* A read-only export allocates nothing: no cap to check. */
  if (sz && !read_only && !(cap = memory_cap(sz, o, size, err, errlen)))
    return -EINVAL;
  b = calloc(1, sizeof *b);
  m = calloc(1, sizeof *m);
  if (!b || !m || pt_init(&m->pt, (sz + PAGE - 1) / PAGE) < 0) {
    if (m) pt_fini(&m->pt);
    free(m); free(b);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  m->max_pages = sz ? cap / PAGE : 0;
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

int backend_memory_stats(struct backend *b, struct backend_memory_stats *st)
{
  struct mem_priv *m;

  if (b->ops != &memory_ops)
    return -EINVAL;
  m = b->priv;
  pthread_rwlock_rdlock(&m->lock);
  st->bytes = m->pt.pages * PAGE;
  st->max_bytes = m->max_pages * PAGE;
  st->table_bytes = m->pt.nodes * pt_node_size;
  st->walk_steps = atomic_load_explicit(&m->pt.steps, memory_order_relaxed);
  pthread_rwlock_unlock(&m->lock);
  return 0;
}
