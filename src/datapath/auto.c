/* auto.c: the `auto` data path (the default), which picks one of the other
 * paths for every READ and WRITE, and the paths of TLS connections.  Each choice is counted in the export's
 * stats (auto_choice: READs and WRITEs, and their bytes, per path).
 *
 * READ, by whether its pages are in the page cache.  A READ of DP_SPLICE_MIN
 * or more asks cachestat(2).  A small one asks it too, until HOT_RUN small
 * READs in a row were all cached; from then on a small READ is read
 * with RWF_NOWAIT straight away (no syscall of its own: cachestat cost
 * hot random 4 KiB reads about 6% of the server's CPU), and the first one
 * that finds pages missing makes the next ones ask cachestat again.  That
 * miss is finished through the page cache: on a miss the kernel has already
 * started reading the missing pages in (readahead, on ext4, xfs and block
 * devices alike), so an O_DIRECT read would read them a second time.  A
 * file system that refuses RWF_NOWAIT (tmpfs) is remembered per export:
 * cachestat for good.
 * - cached: under DP_SPLICE_MIN, as splice reads a small READ (a read into
 *   a pool buffer, sent with its header in one gathered send: hot random
 *   4 KiB reads through shunt bench ran 2% faster than when they were sent
 *   from the mapping, which left the CPUs partly idle, and the same through
 *   fio);
 *   larger, the cheapest way out of the cache, the mmap path's send from
 *   the mapping (one kernel copy, no pipe) when the file is mapped, else
 *   splice;
 * - not cached: direct, O_DIRECT into the worker's arena with chunks sent as
 *   they complete, which leaves the page cache alone, so a cold scan does
 *   not evict what other reads keep hot.  Small uncached reads go direct
 *   too: a buffered read would cost the same one disk read and syscall,
 *   plus inserting (and later evicting) page-cache pages that a random
 *   small read rarely meets again; below DP_ZC_MIN the direct path sends
 *   with an ordinary gathered send, as copy does.  Without O_DIRECT on the
 *   file system: splice (or copy when small, without asking: both ways it
 *   is read into a buffer).
 * WRITE: one discipline per export, decided by the file's other exports
 * (dp_export_writes_direct()) so that the same blocks are never written
 * through the page cache and O_DIRECT at once, which loses acknowledged
 * writes (docs/design.md, "Direct writes never go through the page cache"):
 * - O_DIRECT, range-locked, unaligned edges read-modify-written (the direct
 *   path's writes), when O_DIRECT works and no export of the file on a
 *   fixed path writes through the page cache.  Small writes too: a
 *   buffered small write would be cheaper (no read-modify-write of an
 *   unaligned edge), but it would race with the O_DIRECT writes of larger
 *   ones to the same block;
 * - otherwise buffered, as the splice path writes (chunk by chunk while
 *   the payload arrives; a small one straight from the front end's receive
 *   buffer, dp_write_in_place()).  Reads stay coherent either way: an O_DIRECT read
 *   first writes back dirty cached pages of its range, and an O_DIRECT
 *   write drops the cached pages it overwrites. */
#include <errno.h>
#include <stdlib.h>

#include "backend/backend.h"
#include "common/log.h"
#include "datapath/datapath.h"
#include "datapath/dpexport.h"
#include "datapath/dpworker.h"
#include "datapath/request.h"
#include "proto/nbd-protocol.h"

/* Hand r to path dp (now r->dp), counting the choice. */
static void choose(struct request *r, const struct datapath *dp)
{
  struct dp_stats *s = r->stats;

  r->dp = dp;
  if (r->hdr.type == NBD_CMD_WRITE) {
    stat_add(&s->auto_writes[dp->kind], 1);
    stat_add(&s->auto_write_bytes[dp->kind], r->hdr.length);
  } else {
    stat_add(&s->auto_reads[dp->kind], 1);
    stat_add(&s->auto_read_bytes[dp->kind], r->hdr.length);
  }
}

/* Small READs in a row that cachestat(2) must find cached before the next
 * ones are read from the page cache without asking (RWF_NOWAIT). */
#define HOT_RUN 32

/* Whether the next small READ of ex goes RWF_NOWAIT (its pages are most
 * likely cached) instead of asking cachestat first. */
static bool small_reads_hot(const struct dp_export *ex)
{
  return __atomic_load_n(&ex->small_cached_run, __ATOMIC_RELAXED) >= HOT_RUN
         && !__atomic_load_n(&ex->nowait_refused, __ATOMIC_RELAXED);
}

/* cachestat(2) found a small READ of ex cached (or not).  Written only when
 * it changes: a cold export's workers do not pass the line back and forth. */
static void small_read_asked(struct dp_export *ex, bool cached)
{
  unsigned run = __atomic_load_n(&ex->small_cached_run, __ATOMIC_RELAXED);

  if (!cached && run)
    __atomic_store_n(&ex->small_cached_run, 0, __ATOMIC_RELAXED);
  else if (cached && run < HOT_RUN)
    __atomic_fetch_add(&ex->small_cached_run, 1, __ATOMIC_RELAXED);
}

/* r->read_missed of a small READ read RWF_NOWAIT: its pages were not all
 * cached (the copy path now reads the rest, waiting for the disk), or the
 * file refuses such reads: ask cachestat again. */
static void small_read_missed(struct request *r, int res)
{
  struct dp_export *ex = r->export;

  __atomic_store_n(&ex->small_cached_run, 0, __ATOMIC_RELAXED);
  if (res != -EOPNOTSUPP)
    stat_add(&r->stats->auto_cache_misses, 1);
  else if (!__atomic_exchange_n(&ex->nowait_refused, true, __ATOMIC_RELAXED))
    log_msg(LOG_INFO, NULL, ex->name, "datapath=auto: the file system refuses RWF_NOWAIT reads: "
            "small reads ask cachestat(2) whether they are cached");
}

static void auto_read(const struct datapath *self, struct request *r)
{
  struct dp_export *ex = r->export;
  uint64_t off = r->hdr.offset, len = r->hdr.length;
  bool small = len < DP_SPLICE_MIN;

  (void)self;
  if (small && len > 0 && (ex->direct_fd < 0 || small_reads_hot(ex))) {
    /* Cached or not, read into a buffer: without O_DIRECT there is no
     * other way; when recent small reads were all cached, RWF_NOWAIT
     * finds out (and reads) at once. */
    choose(r, &datapath_copy);
    if (ex->direct_fd >= 0)
      r->read_missed = small_read_missed;
    dp_fallback_read(&datapath_splice, r);
    return;
  }
  int cached = len > 0 ? dp_range_cached(ex->backend->fd, off, len) : 0;
  if (small && len > 0)
    small_read_asked(ex, cached == 1);
  if (cached == 1) {
    if (small) {
      choose(r, &datapath_copy);
      dp_fallback_read(&datapath_splice, r);
    } else if (ex->map && off <= ex->map_len && len <= ex->map_len - off) {
      choose(r, &datapath_mmap);
      dp_mmap_send(r);
    } else {
      choose(r, &datapath_splice);
      datapath_splice.read(&datapath_splice, r);
    }
    return;
  }
  if (ex->direct_fd >= 0) {
    choose(r, &datapath_direct);
    datapath_direct.read(&datapath_direct, r);
  } else {
    choose(r, &datapath_splice);
    datapath_splice.read(&datapath_splice, r);
  }
}

/* ---- writes ---- */

/* A READ or WRITE buffer from the worker's buffer pool (a READ's pages
 * faulted in at once, a WRITE payload's as it arrives), returned by
 * auto_free_buffer. */
static void *heap_buffer(struct request *r, size_t len)
{
  void *b = dp_buffer_get(r->eng, len ? len : 1, r->hdr.type != NBD_CMD_WRITE, r->stats);
  r->buf_base = b;
  r->buf_alloc = len ? len : 1;
  return b;
}

/* The direct path frees its arena units, and returns to the worker's
 * buffer pool what came from elsewhere (r->buf_base: its own fallback, or
 * heap_buffer). */
static void auto_free_buffer(struct request *r, void *buf)
{
  datapath_direct.free_buffer(r, buf);
}

static void buffered_write(const struct datapath *self, struct request *r)
{
  (void)self;
  datapath_splice.write(&datapath_splice, r);
}

static void buffered_progress(struct request *r, uint64_t got)
{
  datapath_splice.payload_progress(r, got);
}

static bool buffered_abort(struct request *r)
{
  return datapath_splice.payload_abort(r);
}

/* auto's buffered writes: the splice path's, from a heap buffer that
 * auto_free_buffer returns (the splice path has no buffers of its own). */
static const struct datapath auto_buffered = {
  .name = "splice",
  .write = buffered_write,
  .fallback = &datapath_copy,
  .alloc_buffer = heap_buffer,
  .free_buffer = auto_free_buffer,
  .payload_progress = buffered_progress,
  .payload_abort = buffered_abort,
  .kind = DP_SPLICE,
  .own_read_buffers = true,
};

/* The path that writes r, chosen (and counted) once per WRITE: at its
 * buffer's allocation, or at execution for a WRITE without payload. */
static const struct datapath *write_path(struct request *r)
{
  if (r->dp == &datapath_auto)
    choose(r, dp_export_writes_direct(r->export) ? &datapath_direct : &auto_buffered);
  return r->dp;
}

bool dp_write_in_place(const struct datapath *dp, const struct dp_export *dx)
{
  if (dp == &datapath_auto)
    return !dp_export_writes_direct(dx);
  return !dp->alloc_buffer;
}

static void *auto_alloc_buffer(struct request *r, size_t len)
{
  const struct datapath *dp = write_path(r);
  return dp->alloc_buffer(r, len);
}

static void auto_write(const struct datapath *self, struct request *r)
{
  const struct datapath *dp = write_path(r);
  (void)self;
  dp->write(dp, r);
}

/* Called only after auto_alloc_buffer chose r->dp. */
static void auto_payload_progress(struct request *r, uint64_t got)
{
  r->dp->payload_progress(r, got);
}

static bool auto_payload_abort(struct request *r)
{
  return r->dp != &datapath_auto && r->dp->payload_abort(r);
}

const struct datapath datapath_auto = {
  .name = "auto",
  .read = auto_read,
  .write = auto_write,
  .fallback = &datapath_copy,
  .alloc_buffer = auto_alloc_buffer,
  .free_buffer = auto_free_buffer,
  .payload_progress = auto_payload_progress,
  .payload_abort = auto_payload_abort,
  .kind = DP_COPY,
  .own_read_buffers = true,
  /* TRIM and WRITE_ZEROES lock per export: dp_export_writes_direct(). */
};

/* ---- TLS connections ---- */

/* The session encrypts from user memory, so nothing is spliced or sent
 * zero-copy: a READ whose pages are all cached is encrypted straight from
 * the export's mapping (when it is registered with the fault guard, which
 * turns a SIGBUS from a file shrunk under it into a failed connection),
 * any other one is read into a buffer as copy reads. */
static void tls_read(const struct datapath *self, struct request *r)
{
  struct dp_export *ex = r->export;
  uint64_t off = r->hdr.offset, len = r->hdr.length;

  if (ex->map_guarded && len > 0 && off <= ex->map_len && len <= ex->map_len - off
      && dp_range_cached(ex->backend->fd, off, len) == 1) {
    dp_mmap_send(r);
    return;
  }
  dp_fallback_read(self, r);
}

const struct datapath datapath_tls = {
  .name = "copy",
  .read = tls_read,
  .fallback = &datapath_copy,
  .kind = DP_COPY,
  .own_read_buffers = true,
};

/* An export that writes O_DIRECT: WRITEs as the direct path's, into its
 * buffers. */
static void *tls_alloc_buffer(struct request *r, size_t len)
{
  if (r->hdr.type == NBD_CMD_WRITE)
    return datapath_direct.alloc_buffer(r, len);
  return heap_buffer(r, len);
}

static void tls_write(const struct datapath *self, struct request *r)
{
  (void)self;
  datapath_direct.write(&datapath_direct, r);
}

static void tls_progress(struct request *r, uint64_t got)
{
  datapath_direct.payload_progress(r, got);
}

static bool tls_abort(struct request *r)
{
  return datapath_direct.payload_abort(r);
}

const struct datapath datapath_tls_direct = {
  .name = "copy",
  .read = tls_read,
  .write = tls_write,
  .fallback = &datapath_copy,
  .alloc_buffer = tls_alloc_buffer,
  .free_buffer = auto_free_buffer,
  .payload_progress = tls_progress,
  .payload_abort = tls_abort,
  .kind = DP_DIRECT,
  .own_read_buffers = true,
  .range_locked = true,
};
