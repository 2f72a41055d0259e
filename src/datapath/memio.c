/* memio.c: READ and WRITE of requests whose payload is the caller's memory
 * (r->mem_iov: a VM's pages), for memory front ends (request.h: a sink with
 * ops->done), and the checks a server would make before executing them.
 * Bytes move straight between the backend and the caller's segments:
 * - copy (the copy, splice and mmap paths; auto's cached reads and its
 *   buffered writes): preadv/pwritev (IORING_OP_READV/WRITEV) on the
 *   buffered fd, one kernel copy through the page cache, none in user space;
 * - direct (the direct path; auto's uncached reads and its O_DIRECT
 *   writes): O_DIRECT on the export's direct fd into and out of the
 *   segments that O_DIRECT can take (address and length aligned as the
 *   file system asks, dp_export.dio_*), with READ_FIXED/WRITE_FIXED (or
 *   READV_FIXED/WRITEV_FIXED for several segments of one registered piece)
 *   on memory registered with dp_mem_register() (memreg.c), READV/WRITEV
 *   otherwise; a run of segments it cannot take is bounced through one
 *   aligned buffer (the worker's arena within the sink's share, else the
 *   buffer pool) and counted as copied.  Writes hold the export's range
 *   lock shared over their blocks, as the direct path's aligned writes do
 *   (its read-modify-writes and TRIM/WRITE_ZEROES take it exclusive).  A
 *   write whose file range O_DIRECT cannot take (unaligned ends) is
 *   gathered into one buffer and written by the direct path, which
 *   read-modify-writes the edge blocks;
 * - a backend without a file (memory): one bio per segment (its memcpy is
 *   counted).
 * Reads never go past the export (checked first); a read that meets the
 * end of a file that shrank under the export fails with EIO.  Every
 * request ends in request_reply_status(), which calls ops->done once. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "common/checked.h"
#include "common/macros.h"
#include "datapath/datapath.h"
#include "datapath/dpexport.h"
#include "datapath/dpworker.h"
#include "datapath/memreg.h"
#include "datapath/rangelock.h"
#include "datapath/request.h"
#include "proto/nbd-protocol.h"

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

enum mio_mode { MIO_COPY, MIO_DIRECT, MIO_BIO };

struct memio;

/* One I/O of a memory request: a run of the caller's segments at file
 * offset pos (iov advanced as bytes complete), or a bounce buffer covering
 * the blocks of a run of segments O_DIRECT cannot take. */
struct mio_op {
  struct engine_op op;
  struct memio *m;
  int fd;
  uint64_t pos;                  /* file offset of the next byte to move */
  struct iovec *iov;             /* the segments still to do (a slice of m->iov) */
  unsigned niov;
  int fixed;                     /* registered buffer index of iov[0] (niov 1), or -1 */
  /* bounce: memory [bounce, bounce + blen) is file [pos0, pos0 + blen);
   * the segments' bytes are file [dpos, dpos + dlen) */
  uint8_t *bounce;
  size_t blen, bdone, balloc;    /* I/O length, bytes done, length allocated */
  bool in_arena;
  uint64_t pos0, dpos, dlen;
  struct bio bio;                /* MIO_BIO */
};

struct memio {
  struct request *r;
  enum mio_mode mode;
  bool write;
  unsigned pending;              /* ops in flight, + 1 while issuing */
  int err;                       /* the first error */
  struct rl_lock lk;             /* direct writes: their blocks, shared */
  bool locked;
  struct engine_op sync_op;      /* FUA by fdatasync (fua_by_sync) */
  unsigned nops;
  struct mio_op *ops;            /* nops of them */
  struct iovec *iov;             /* a copy of r->mem_iov the ops advance through */
};

static struct dp_stats *stats(const struct request *r) { return r->stats; }

/* ---- checks ---- */

/* The NBD error a server would answer r with before executing it, or 0. */
static uint32_t mem_check(const struct request *r)
{
  const struct dp_export *dx = r->export;
  const struct backend *b = dx->backend;
  uint16_t t = r->hdr.type;
  bool modifies = t == NBD_CMD_WRITE || t == NBD_CMD_TRIM || t == NBD_CMD_WRITE_ZEROES;

  switch (t) {
  case NBD_CMD_FLUSH:
    return 0;
  case NBD_CMD_READ: case NBD_CMD_WRITE: case NBD_CMD_TRIM: case NBD_CMD_WRITE_ZEROES: case NBD_CMD_CACHE:
    break;
  default:
    return NBD_EINVAL;
  }
  if (modifies && (dx->read_only || b->read_only))
    return NBD_EPERM;
  if (!range_within(r->hdr.offset, r->hdr.length, b->size))
    return t == NBD_CMD_WRITE || t == NBD_CMD_WRITE_ZEROES ? NBD_ENOSPC : NBD_EINVAL;
  if ((t == NBD_CMD_TRIM && !b->can_trim) || (t == NBD_CMD_WRITE_ZEROES && !b->can_zero))
    return NBD_EINVAL;
  if (t == NBD_CMD_READ || t == NBD_CMD_WRITE) {
    uint64_t sum = 0;
    if (r->mem_niov && !r->mem_iov)
      return NBD_EINVAL;
    for (unsigned i = 0; i < r->mem_niov; i++)
      if (ck_add_overflow(sum, (uint64_t)r->mem_iov[i].iov_len, &sum))
        return NBD_EINVAL;
    if (sum != r->hdr.length)
      return NBD_EINVAL;
  }
  return 0;
}

/* ---- the end ---- */

static void mem_count(struct memio *m)
{
  struct request *r = m->r;
  struct dp_stats *s = stats(r);
  uint64_t len = r->hdr.length;

  stat_add(m->write ? &s->bytes_written : &s->bytes_read, len);
  stat_add(&s->bytes_path[m->mode == MIO_DIRECT ? DP_DIRECT : DP_COPY], len);
  if (m->mode != MIO_DIRECT)   /* the kernel's copy through the page cache, or the backend's memcpy */
    stat_add(m->write ? &s->copied_write : &s->copied_read, len);
  if (m->mode == MIO_BIO)
    stat_add(&s->memcpy_bytes, len);
}

static void mem_reply(struct memio *m)
{
  struct request *r = m->r;
  int err = m->err;

  if (!err)
    mem_count(m);
  request_reply_status(r, proto_errno_to_nbd(err), dp_error_text(err));
}

static void fua_sync_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct memio *m = container_of(op, struct memio, sync_op);
  (void)flags;
  if (res < 0 && !m->err)
    m->err = res;
  mem_reply(m);
}

/* Every op is done: release the lock, make a FUA write durable where the
 * file system ignores RWF_DSYNC on O_DIRECT (fua_by_sync), answer. */
static void mem_finish(struct memio *m)
{
  struct request *r = m->r;

  for (unsigned i = 0; i < m->nops; i++)
    if (m->ops[i].bounce) {
      struct mio_op *o = &m->ops[i];
      if (o->in_arena)
        dp_share_arena_put(r->eng->dp, r->share, o->bounce, o->balloc);
      else
        dp_buffer_put(r->eng, o->bounce, o->balloc);
      o->bounce = NULL;
    }
  if (m->locked)
    rangelock_unlock(r->export->wlock, &m->lk);
  m->locked = false;
  if (!m->err && m->write && m->mode == MIO_DIRECT && (r->hdr.flags & NBD_CMD_FLAG_FUA)
      && r->export->fua_by_sync) {
    struct io_uring_sqe *sqe = engine_sqe(r->eng, &m->sync_op);
    m->sync_op.cb = fua_sync_cb;
    io_uring_prep_fsync(sqe, r->export->direct_fd, IORING_FSYNC_DATASYNC);
    return;
  }
  mem_reply(m);
}

static void op_put(struct memio *m, int res)
{
  if (res < 0 && !m->err)
    m->err = res;
  if (res <= 0)
    dp_times_disk(&m->r->times);
  if (--m->pending == 0)
    mem_finish(m);
}

/* ---- one op ---- */

static void op_submit(struct mio_op *o);

/* Drop n completed bytes from the front of o's segments. */
static void iov_advance(struct mio_op *o, size_t n)
{
  o->pos += n;
  while (n && o->niov) {
    if (n < o->iov->iov_len) {
      o->iov->iov_base = (uint8_t *)o->iov->iov_base + n;
      o->iov->iov_len -= n;
      return;
    }
    n -= o->iov->iov_len;
    o->iov++;
    o->niov--;
  }
  while (o->niov && o->iov->iov_len == 0) {
    o->iov++;
    o->niov--;
  }
}

/* A bounce read is done: its bytes go to the segments. */
static void bounce_scatter(struct mio_op *o)
{
  uint8_t *p = o->bounce + (o->dpos - o->pos0);
  for (unsigned i = 0; i < o->niov; i++) {
    memcpy(o->iov[i].iov_base, p, o->iov[i].iov_len);
    p += o->iov[i].iov_len;
  }
}

static void op_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct mio_op *o = container_of(op, struct mio_op, op);
  struct memio *m = o->m;
  (void)flags;

  if (res == -EINTR || res == -EAGAIN) {
    op_submit(o);
    return;
  }
  if ((res == -EINVAL || res == -EOPNOTSUPP) && o->fixed >= 0 && o->niov > 1 && !o->bounce
      && dp_mem_vec_fixed(m->r->eng)) {
    /* No READV_FIXED/WRITEV_FIXED after all: one segment per operation. */
    dp_mem_no_vec_fixed(m->r->eng);
    op_submit(o);
    return;
  }
  if (res == 0)
    res = -EIO;   /* the end of a file that shrank under the export: never zeroes */
  if (res < 0) {
    op_put(m, res);
    return;
  }
  if (o->bounce) {
    o->bdone += (unsigned)res;
    /* A bounce read may stop at the end of the file, past the bytes it needs. */
    uint64_t need = m->write ? o->blen : o->dpos + o->dlen - o->pos0;
    if (o->bdone < need) {
      op_submit(o);
      return;
    }
    if (!m->write)
      bounce_scatter(o);
    op_put(m, 0);
    return;
  }
  iov_advance(o, (unsigned)res);
  if (o->niov) {
    op_submit(o);
    return;
  }
  op_put(m, 0);
}

static void op_submit(struct mio_op *o)
{
  struct memio *m = o->m;
  struct request *r = m->r;
  struct io_uring_sqe *sqe = engine_sqe(r->eng, &o->op);

  o->op.cb = op_cb;
  if (o->bounce) {
    uint8_t *p = o->bounce + o->bdone;
    unsigned len = (unsigned)(o->blen - o->bdone);
    uint64_t pos = o->pos0 + o->bdone;
    if (m->write) {
      if (o->fixed >= 0)
        io_uring_prep_write_fixed(sqe, o->fd, p, len, pos, o->fixed);
      else
        io_uring_prep_write(sqe, o->fd, p, len, pos);
    } else {
      if (o->fixed >= 0)
        io_uring_prep_read_fixed(sqe, o->fd, p, len, pos, o->fixed);
      else
        io_uring_prep_read(sqe, o->fd, p, len, pos);
    }
  } else if (o->fixed >= 0 && (o->niov == 1 || !dp_mem_vec_fixed(r->eng))) {
    /* One segment (the rest of a run follows as this one completes). */
    if (m->write)
      io_uring_prep_write_fixed(sqe, o->fd, o->iov->iov_base, (unsigned)o->iov->iov_len, o->pos, o->fixed);
    else
      io_uring_prep_read_fixed(sqe, o->fd, o->iov->iov_base, (unsigned)o->iov->iov_len, o->pos, o->fixed);
  } else if (o->fixed >= 0) {
    unsigned n = o->niov < IOV_MAX ? o->niov : IOV_MAX;
    if (m->write)
      io_uring_prep_writev(sqe, o->fd, o->iov, n, o->pos);
    else
      io_uring_prep_readv(sqe, o->fd, o->iov, n, o->pos);
    sqe->opcode = m->write ? DP_OP_WRITEV_FIXED : DP_OP_READV_FIXED;
    sqe->buf_index = (uint16_t)o->fixed;
  } else {
    unsigned n = o->niov < IOV_MAX ? o->niov : IOV_MAX;
    if (m->write)
      io_uring_prep_writev(sqe, o->fd, o->iov, n, o->pos);
    else
      io_uring_prep_readv(sqe, o->fd, o->iov, n, o->pos);
  }
  if (m->write && (r->hdr.flags & NBD_CMD_FLAG_FUA))
    sqe->rw_flags = RWF_DSYNC;
  if (r->export->backend->io_async)
    sqe->flags |= IOSQE_ASYNC;
}

/* ---- a backend without a file: one bio per segment, one after another ---- */

static void bio_next(struct mio_op *o);

static void bio_cb(struct bio *io, int res)
{
  struct mio_op *o = io->owner;
  if (res < 0) {
    op_put(o->m, res);
    return;
  }
  o->pos += o->iov->iov_len;
  o->iov++;
  o->niov--;
  bio_next(o);
}

static void bio_next(struct mio_op *o)
{
  struct request *r = o->m->r;

  while (o->niov && o->iov->iov_len == 0) {
    o->iov++;
    o->niov--;
  }
  if (!o->niov) {
    op_put(o->m, 0);
    return;
  }
  o->bio = (struct bio){ .type = o->m->write ? BIO_WRITE : BIO_READ,
                         .flags = o->m->write && (r->hdr.flags & NBD_CMD_FLAG_FUA) ? BIO_FUA : 0,
                         .buf = o->iov->iov_base, .offset = o->pos, .length = o->iov->iov_len,
                         .complete = bio_cb, .owner = o };
  backend_submit(r->export->backend, r->eng, &o->bio);
}

/* ---- planning ---- */

/* The request's state, one allocation (r->dp_priv, freed with it): room
 * for maxops ops and a copy of r->mem_iov. */
static struct memio *memio_new(struct request *r, enum mio_mode mode, unsigned maxops)
{
  size_t n = r->mem_niov;
  struct memio *m = calloc(1, sizeof *m + maxops * sizeof *m->ops + n * sizeof *m->iov);

  if (!m)
    return NULL;
  m->ops = (struct mio_op *)(m + 1);
  m->iov = (struct iovec *)(m->ops + maxops);
  if (n)
    memcpy(m->iov, r->mem_iov, n * sizeof *m->iov);
  m->r = r;
  m->mode = mode;
  m->write = r->hdr.type == NBD_CMD_WRITE;
  r->dp_priv = m;
  return m;
}

/* Copy mode and MIO_BIO: one op over every segment. */
static void mem_whole(struct memio *m)
{
  struct request *r = m->r;
  struct mio_op *o = &m->ops[0];

  m->nops = 1;
  *o = (struct mio_op){ .m = m, .fd = r->export->backend->fd, .pos = r->hdr.offset,
                        .iov = m->iov, .niov = r->mem_niov, .fixed = -1 };
  m->pending = 1;
  if (m->mode == MIO_BIO)
    bio_next(o);
  else
    op_submit(o);
}

/* Direct mode: can O_DIRECT take segment v at file offset pos? */
static bool dio_ok(const struct dp_export *dx, const struct iovec *v, uint64_t pos)
{
  return is_aligned((uintptr_t)v->iov_base, dx->dio_mem_align) && is_aligned(v->iov_len, dx->dio_off_align)
         && is_aligned(pos, dx->dio_off_align);
}

/* A bounce buffer of o->blen bytes for op o: a piece of the worker's arena
 * within the sink's share (never waiting), else from the buffer pool.
 * False on ENOMEM. */
static bool bounce_get(struct memio *m, struct mio_op *o)
{
  struct request *r = m->r;
  struct dp_worker *dw = dp_worker_get(r->eng);
  struct arena *a = dw && r->share ? dp_arena(dw) : NULL;
  bool queued;

  o->balloc = ROUND_UP(o->blen, (size_t)ARENA_UNIT);
  if (a && (o->bounce = dp_share_arena_get(dw, r->share, NULL, o->balloc, &queued))) {
    o->in_arena = true;
    o->fixed = a->registered ? 0 : -1;   /* the arena is buffer 0 (memreg.h) */
    stat_add(&stats(r)->arena_allocs, 1);
    return true;
  }
  if (a)
    stat_add(&stats(r)->arena_fallbacks, 1);
  o->bounce = dp_buffer_get(r->eng, o->balloc, !m->write, stats(r));
  return o->bounce != NULL;
}

/* Direct mode: plan the ops (runs of segments O_DIRECT takes, straight;
 * runs it does not, bounced) and take the bounce buffers.  -ENOMEM or 0. */
static int direct_plan(struct memio *m)
{
  struct request *r = m->r;
  const struct dp_export *dx = r->export;
  struct dp_stats *s = stats(r);
  struct iovec *v = m->iov;
  unsigned n = r->mem_niov, i = 0;
  uint64_t pos = r->hdr.offset;
  bool vec = dp_mem_vec_fixed(r->eng);

  while (i < n) {
    if (v[i].iov_len == 0) {
      i++;
      continue;
    }
    struct mio_op *o = &m->ops[m->nops++];
    *o = (struct mio_op){ .m = m, .fd = dx->direct_fd, .pos = pos, .iov = &v[i], .fixed = -1 };
    unsigned j = i;
    uint64_t p = pos;
    if (dio_ok(dx, &v[i], pos)) {
      /* Straight: one registered piece (several segments with
       * READV_FIXED), or segments of unregistered memory. */
      o->fixed = dp_mem_fixed_index(r->eng, v[i].iov_base, v[i].iov_len);
      while (j < n && (v[j].iov_len == 0 || dio_ok(dx, &v[j], p))) {
        if (v[j].iov_len && j > i
            && (dp_mem_fixed_index(r->eng, v[j].iov_base, v[j].iov_len) != o->fixed || (o->fixed >= 0 && !vec)))
          break;
        p += v[j++].iov_len;
      }
      if (o->fixed >= 0)
        stat_add(&s->mem_fixed_ios, 1);
    } else {
      /* Bounced: the blocks around the run, one buffer. */
      while (j < n && (v[j].iov_len == 0 || !dio_ok(dx, &v[j], p)))
        p += v[j++].iov_len;
      o->dpos = pos;
      o->dlen = p - pos;
      o->pos0 = ROUND_DOWN(pos, (uint64_t)dx->dio_off_align);
      o->blen = ROUND_UP(p, (uint64_t)dx->dio_off_align) - o->pos0;
      if (!bounce_get(m, o)) {
        m->nops--;
        return -ENOMEM;
      }
      stat_add(m->write ? &s->copied_write : &s->copied_read, o->dlen);
      stat_add(&s->memcpy_bytes, o->dlen);
      if (m->write) {   /* the run's bytes, gathered now: its blocks are whole (aligned ends) */
        uint8_t *q = o->bounce;
        for (unsigned k = i; k < j; k++) {
          memcpy(q, v[k].iov_base, v[k].iov_len);
          q += v[k].iov_len;
        }
      }
    }
    o->niov = j - i;
    i = j;
    pos = p;
  }
  return 0;
}

static void direct_issue(struct memio *m)
{
  m->pending = 1;   /* until every op is issued */
  for (unsigned i = 0; i < m->nops; i++) {
    m->pending++;
    op_submit(&m->ops[i]);
  }
  op_put(m, 0);
}

static void direct_granted(struct rl_lock *l)
{
  direct_issue(container_of(l, struct memio, lk));
}

/* A direct write whose file range O_DIRECT cannot take: gathered into one
 * buffer laid out as the direct path lays out a WRITE payload (file-aligned
 * offsets memory-aligned), then written by the direct path. */
static void gather_write(struct request *r)
{
  struct dp_worker *dw = dp_worker_get(r->eng);
  struct arena *a = dw && r->share ? dp_arena(dw) : NULL;
  size_t lead = r->hdr.offset & (DP_DIRECT_ALIGN - 1);
  size_t memlen = ROUND_UP(lead + r->hdr.length, (size_t)DP_DIRECT_ALIGN);
  struct dp_stats *s = stats(r);
  uint8_t *base = NULL, *p;
  bool queued;

  if (a && (base = dp_share_arena_get(dw, r->share, NULL, memlen, &queued)))
    stat_add(&s->arena_allocs, 1);
  else if (!(base = dp_buffer_get(r->eng, memlen, false, s))) {
    request_reply_status(r, NBD_ENOMEM, "out of memory");
    return;
  }
  r->dp = &datapath_direct;   /* its free_buffer gives the buffer back */
  r->buf_base = base;
  r->buf_alloc = memlen;
  r->buf = p = base + lead;
  r->buf_from_datapath = true;
  for (unsigned i = 0; i < r->mem_niov; i++) {
    memcpy(p, r->mem_iov[i].iov_base, r->mem_iov[i].iov_len);
    p += r->mem_iov[i].iov_len;
  }
  stat_add(&s->copied_write, r->hdr.length);
  stat_add(&s->memcpy_bytes, r->hdr.length);
  datapath_direct.write(&datapath_direct, r);
}

static void direct_rw(struct request *r)
{
  const struct dp_export *dx = r->export;
  bool write = r->hdr.type == NBD_CMD_WRITE;
  struct memio *m;

  if (write && (!is_aligned(r->hdr.offset, dx->dio_off_align) || !is_aligned(r->hdr.length, dx->dio_off_align))) {
    gather_write(r);
    return;
  }
  if (!(m = memio_new(r, MIO_DIRECT, r->mem_niov))) {
    request_reply_status(r, NBD_ENOMEM, "out of memory");
    return;
  }
  r->times.disk_begin = dp_now();
  if (direct_plan(m) < 0) {
    m->pending = 1;
    op_put(m, -ENOMEM);   /* gives back the bounce buffers taken */
    return;
  }
  if (!write) {
    direct_issue(m);
    return;
  }
  m->lk = (struct rl_lock){ .start = ROUND_DOWN(r->hdr.offset, (uint64_t)DP_DIRECT_ALIGN),
                            .end = ROUND_UP(r->hdr.offset + r->hdr.length, (uint64_t)DP_DIRECT_ALIGN),
                            .eng = r->eng, .granted = direct_granted };
  m->locked = true;
  if (rangelock_lock(dx->wlock, &m->lk))
    direct_issue(m);
  else
    stat_add(&stats(r)->range_lock_waits, 1);
}

/* The way r's bytes move (auto: chosen here and counted, as auto.c counts
 * its choices). */
static enum mio_mode mem_mode(struct request *r)
{
  struct dp_export *dx = r->export;
  struct dp_stats *s = stats(r);
  bool write = r->hdr.type == NBD_CMD_WRITE, direct;

  if (dx->backend->fd < 0)
    return MIO_BIO;
  if (r->dp != &datapath_auto)
    return r->dp->kind == DP_DIRECT && dx->direct_fd >= 0 ? MIO_DIRECT : MIO_COPY;
  if (write)
    direct = dp_export_writes_direct(dx);
  else
    direct = dx->direct_fd >= 0 && dp_range_cached(dx->backend->fd, r->hdr.offset, r->hdr.length) != 1;
  int kind = direct ? DP_DIRECT : DP_COPY;
  stat_add(write ? &s->auto_writes[kind] : &s->auto_reads[kind], 1);
  stat_add(write ? &s->auto_write_bytes[kind] : &s->auto_read_bytes[kind], r->hdr.length);
  r->dp = direct ? &datapath_direct : &datapath_copy;
  return direct ? MIO_DIRECT : MIO_COPY;
}

void dp_mem_execute(struct request *r)
{
  uint32_t err = mem_check(r);
  struct memio *m;

  if (err) {
    request_reply_status(r, err, err == NBD_EPERM ? "read-only" : "request out of range or malformed");
    return;
  }
  if (r->hdr.type != NBD_CMD_READ && r->hdr.type != NBD_CMD_WRITE) {
    dp_command(r);
    return;
  }
  if (r->hdr.length == 0) {
    request_reply_status(r, 0, NULL);
    return;
  }
  enum mio_mode mode = mem_mode(r);
  if (mode == MIO_DIRECT) {
    direct_rw(r);
    return;
  }
  if (!(m = memio_new(r, mode, 1))) {
    request_reply_status(r, NBD_ENOMEM, "out of memory");
    return;
  }
  r->times.disk_begin = dp_now();
  mem_whole(m);
}
