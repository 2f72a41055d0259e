/* command.c: the commands every data path serves alike: FLUSH, TRIM,
 * WRITE_ZEROES and CACHE as one backend bio each, answered with a status
 * reply, and BLOCK_STATUS from the backend's allocation map (its extent
 * flags become base:allocation states here, where the reply is built).  On
 * an export whose writes are ordered by the file's range lock (direct, or
 * auto writing O_DIRECT: dp_export_writes_direct()), TRIM and WRITE_ZEROES
 * take the lock on every block they touch. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "common/macros.h"
#include "datapath/datapath.h"
#include "datapath/dpexport.h"
#include "datapath/rangelock.h"
#include "datapath/request.h"
#include "proto/nbd-protocol.h"

#define BS_MAX_EXTENTS    1024    /* descriptors per block status reply */
#define BS_COMPACT_LIMIT  UINT64_C(0xfffff000)   /* compact descriptors have 32-bit lengths */

const char *dp_error_text(int res)
{
  return res == -ENOTSUP ? "cannot zero this range quickly" : res ? strerror(-res) : NULL;
}

uint32_t dp_extent_state(uint32_t backend_flags)
{
  return ((backend_flags & BACKEND_EXTENT_HOLE) ? NBD_STATE_HOLE : 0)
         | ((backend_flags & BACKEND_EXTENT_ZERO) ? NBD_STATE_ZERO : 0);
}

void dp_bio_status_done(struct bio *io, int res)
{
  struct request *r = io->owner;
  dp_times_disk(&r->times);
  if (io->type == BIO_WRITE && res == 0) {
    stat_add(&r->stats->bytes_written, io->length);
    stat_add(&r->stats->bytes_path[DP_COPY], io->length);
    stat_add(&r->stats->copied_write, io->length);   /* write(2) (or memcpy) from our buffer */
  }
  request_reply_status(r, proto_errno_to_nbd(res), dp_error_text(res));
}

static void submit_bio(struct request *r, enum bio_type type, unsigned flags,
                       void (*done)(struct bio *io, int res))
{
  r->bio.type = type;
  r->bio.flags = flags;
  r->bio.buf = r->buf;
  r->bio.offset = r->hdr.offset;
  r->bio.length = type == BIO_FLUSH ? 0 : r->hdr.length;
  r->bio.complete = done;
  r->bio.owner = r;
  r->times.disk_begin = dp_now();
  backend_submit(r->export->backend, r->eng, &r->bio);
}

/* TRIM or WRITE_ZEROES of r: the bio its header's flags ask for (FUA,
 * NO_HOLE, FAST_ZERO), with done(bio, res) run at its end. */
static void modify(struct request *r, void (*done)(struct bio *io, int res))
{
  unsigned f = (r->hdr.flags & NBD_CMD_FLAG_FUA) ? BIO_FUA : 0;

  if (r->hdr.type == NBD_CMD_TRIM) {
    submit_bio(r, BIO_TRIM, f, done);
    return;
  }
  f |= ((r->hdr.flags & NBD_CMD_FLAG_NO_HOLE) ? BIO_NO_HOLE : 0)
       | ((r->hdr.flags & NBD_CMD_FLAG_FAST_ZERO) ? BIO_FAST_ZERO : 0);
  submit_bio(r, BIO_ZERO, f, done);
}

/* ---- TRIM and WRITE_ZEROES under the range lock ----
 * They change blocks behind the O_DIRECT writes' back (fallocate; zeroes
 * written by hand where it is missing, and fallocate zeroes the partial
 * blocks at either end through the page cache): they hold an exclusive lock
 * on every block they touch, so no O_DIRECT write or read-modify-write of
 * those blocks runs meanwhile; the next O_DIRECT access flushes what they
 * left in the page cache. */

struct locked_modify {
  struct rl_lock lk;
  struct request *r;
};

static void locked_modify_done(struct bio *io, int res)
{
  struct request *r = io->owner;
  struct locked_modify *m = r->dp_priv;

  rangelock_unlock(r->export->wlock, &m->lk);
  dp_bio_status_done(io, res);
}

static void locked_modify_granted(struct rl_lock *l)
{
  modify(container_of(l, struct locked_modify, lk)->r, locked_modify_done);
}

static void locked_modify(struct request *r)
{
  struct locked_modify *m = calloc(1, sizeof *m);

  if (!m) {
    request_reply_status(r, NBD_ENOMEM, "out of memory");
    return;
  }
  r->dp_priv = m;
  m->r = r;
  m->lk.start = ROUND_DOWN(r->hdr.offset, DP_DIRECT_ALIGN);
  m->lk.end = ROUND_UP(r->hdr.offset + r->hdr.length, DP_DIRECT_ALIGN);
  m->lk.excl = true;
  m->lk.eng = r->eng;
  m->lk.granted = locked_modify_granted;
  if (rangelock_lock(r->export->wlock, &m->lk))
    locked_modify_granted(&m->lk);
  else
    stat_add(&r->stats->range_lock_waits, 1);
}

/* ---- BLOCK_STATUS ----
 * One pooled buffer holds the reply, then the backend's extents and their
 * descriptors (scratch while the reply is encoded).  A backend whose map
 * is local (lseek, a page table) answers at once; one whose map is on
 * another machine (b->extents_remote: rbd) answers a BIO_EXTENTS later,
 * without holding the loop, and the request waits for it like any bio. */

/* Extents per reply: one with REQ_ONE. */
static size_t bs_max(const struct request *r)
{
  return (r->hdr.flags & NBD_CMD_FLAG_REQ_ONE) ? 1 : BS_MAX_EXTENTS;
}

/* Bytes of r's buffer reserved for the encoded reply. */
static size_t bs_reply_max(const struct request *r)
{
  return (proto_block_status_size(r->session, bs_max(r)) + 15) & ~(size_t)15;
}

/* The length to describe: compact descriptors have 32-bit lengths. */
static uint64_t bs_length(const struct request *r)
{
  return !r->session->extended && r->hdr.length > BS_COMPACT_LIMIT ? BS_COMPACT_LIMIT : r->hdr.length;
}

static struct backend_extent *bs_extents(const struct request *r)
{
  return (struct backend_extent *)((char *)r->buf + bs_reply_max(r));
}

/* Answer r from the n extents in its buffer (res: the backend's result). */
static void bs_reply(struct request *r, int res, size_t n)
{
  struct backend_extent *ext = bs_extents(r);
  struct proto_extent *desc = (struct proto_extent *)(ext + bs_max(r));

  if (res < 0 || n == 0) {
    /* "a server MAY reply with a single block status descriptor with length
     * matching the requested length" (status 0 is always safe). */
    ext[0] = (struct backend_extent){ bs_length(r), 0 };
    n = 1;
  }
  for (size_t i = 0; i < n; i++)
    desc[i] = (struct proto_extent){ ext[i].length, dp_extent_state(ext[i].flags) };
  r->buflen = proto_reply_block_status(r->buf, r->session, &r->hdr, PROTO_META_BASE_ALLOCATION_ID, desc, n);
  request_send(r, &r->status_item, 0, r->buf, r->buflen);
  request_finish(r);
}

static void bs_extents_done(struct bio *io, int res)
{
  bs_reply(io->owner, res, res < 0 ? 0 : io->count);
}

static void block_status(struct request *r)
{
  struct backend *b = r->export->backend;
  size_t max = bs_max(r), n = 0;
  struct backend_extent *ext;
  int res = -ENOTSUP;

  if (r->hdr.length == 0) {
    request_reply_status(r, NBD_EINVAL, "zero-length block status");
    return;
  }
  if (!request_pool_buffer(r, bs_reply_max(r) + max * (sizeof *ext + sizeof(struct proto_extent)))) {
    request_reply_status(r, NBD_ENOMEM, "out of memory");
    return;
  }
  ext = bs_extents(r);
  if (b->ops->extents && b->extents_remote) {
    r->bio.type = BIO_EXTENTS;
    r->bio.flags = 0;
    r->bio.buf = ext;
    r->bio.count = max;
    r->bio.offset = r->hdr.offset;
    r->bio.length = bs_length(r);
    r->bio.complete = bs_extents_done;
    r->bio.owner = r;
    backend_submit(b, r->eng, &r->bio);
    return;
  }
  if (b->ops->extents)
    res = b->ops->extents(b, r->hdr.offset, bs_length(r), ext, max, &n);
  bs_reply(r, res, n);
}

void dp_command(struct request *r)
{
  switch (r->hdr.type) {
  case NBD_CMD_FLUSH:
    submit_bio(r, BIO_FLUSH, 0, dp_bio_status_done);
    return;
  case NBD_CMD_TRIM:
  case NBD_CMD_WRITE_ZEROES:
    if (dp_export_writes_direct(r->export))
      locked_modify(r);
    else
      modify(r, dp_bio_status_done);
    return;
  case NBD_CMD_CACHE:
    submit_bio(r, BIO_CACHE, 0, dp_bio_status_done);
    return;
  case NBD_CMD_BLOCK_STATUS:
    block_status(r);
    return;
  default:
    request_reply_status(r, NBD_EINVAL, "unknown command");
    return;
  }
}
