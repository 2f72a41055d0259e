/* mmap.c: the `mmap` data path.  A READ whose range is all in the page cache
 * (cachestat(2)) is sent straight from a read-only MAP_SHARED mapping of the
 * backend file with an ordinary gathered send: one kernel copy into the
 * socket, no user-space copy, no pipe, no io-wq.  Cold reads and writes
 * go to its fallback, the splice path, so the event loop never faults on a
 * page that is not cached.
 * The mapping lives as long as the export (datapath_mmap_setup, munmap at
 * export close), so it outlives every queued send.  If someone truncates the
 * file under us, a send from the mapping beyond the new end fails with
 * EFAULT (the kernel's copy from user memory fails; no SIGBUS in kernel
 * mode: tests/unit/test_mmap_truncate.c): the connection fails, the server
 * lives on.  Under TLS the session encrypts from the mapping in user space:
 * the mapping is registered with common/faultguard.h, whose guard around
 * the encryption turns that SIGBUS into a failed connection too. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "backend/backend.h"
#include "common/faultguard.h"
#include "common/log.h"
#include "datapath/datapath.h"
#include "datapath/dpexport.h"
#include "datapath/dpworker.h"
#include "datapath/request.h"
#include "proto/nbd-protocol.h"

#define MAX_EXTENTS 64

int datapath_mmap_setup(struct dp_export *ex)
{
  struct backend *b = ex->backend;
  struct stat sb;
  void *m;

  if (fstat(b->fd, &sb) < 0)
    return -errno;
  if (!S_ISREG(sb.st_mode))
    return -ENODEV;
  if (b->size == 0 || b->size > SIZE_MAX)
    return -EINVAL;
  m = mmap(NULL, (size_t)b->size, PROT_READ, MAP_SHARED, b->fd, 0);
  if (m == MAP_FAILED)
    return -errno;
  ex->map = m;
  ex->map_len = b->size;
  ex->map_guarded = faultguard_add(m, (size_t)b->size) == 0;
  return 0;
}

void datapath_mmap_close(struct dp_export *ex)
{
  if (ex->map_guarded)
    faultguard_remove(ex->map);
  if (ex->map)
    munmap(ex->map, (size_t)ex->map_len);
  ex->map = NULL;
  ex->map_len = 0;
  ex->map_guarded = false;
}

/* Queue one data item (header + data from the mapping) and count it. */
static void send_data(struct request *r, struct reply_item *it, size_t hdr_len, uint64_t rel, uint64_t len)
{
  struct dp_stats *s = r->stats;

  it->payload = true;
  /* One copy per byte: the kernel's, from the mapping into the socket (under
   * TLS: of the ciphertext, which the session encrypted from the mapping). */
  stat_add(&s->bytes_read, len);
  stat_add(&s->bytes_path[DP_MMAP], len);
  stat_add(&s->copied_read, len);
  request_send(r, it, hdr_len, (const char *)r->export->map + r->hdr.offset + rel, len);
}

/* Structured reply split along the allocation map (holes as OFFSET_HOLE);
 * false when there is no split to make (one data chunk then). */
static bool send_split(struct request *r)
{
  const struct proto_session *s = r->session;
  struct backend_extent ext[MAX_EXTENTS];
  size_t n = 0;
  uint64_t rel = 0;
  struct reply_item *items;

  if ((r->hdr.flags & NBD_CMD_FLAG_DF) || !dp_read_extents(r, ext, MAX_EXTENTS, &n)
      || (n == 1 && !(ext[0].flags & BACKEND_EXTENT_ZERO)))
    return false;
  if (!(items = request_items(r, n))) {
    request_reply_status(r, NBD_ENOMEM, "out of memory");
    return true;
  }
  for (size_t i = 0; i < n; i++) {
    uint16_t flags = i + 1 == n ? NBD_REPLY_FLAG_DONE : 0;
    uint32_t len = (uint32_t)ext[i].length;
    if (ext[i].flags & BACKEND_EXTENT_ZERO)
      request_send(r, &items[i], proto_reply_offset_hole(items[i].hdr, s, &r->hdr, flags,
                                                         r->hdr.offset + rel, len), NULL, 0);
    else
      send_data(r, &items[i], proto_reply_offset_data(items[i].hdr, s, &r->hdr, flags,
                                                      r->hdr.offset + rel, len), rel, len);
    rel += len;
  }
  request_finish(r);
  return true;
}

void dp_mmap_send(struct request *r)
{
  struct reply_item *it = &r->status_item;
  const struct proto_session *s = r->session;

  r->times.disk_begin = r->times.net_begin = dp_now();
  dp_times_disk(&r->times);   /* nothing to wait for: the data is in memory */
  if (!proto_uses_chunks(s)) {
    send_data(r, it, proto_reply_simple(it->hdr, r->hdr.cookie, 0), 0, r->hdr.length);
    request_finish(r);
    return;
  }
  if (send_split(r))
    return;
  /* One data chunk: fully allocated, or NBD_CMD_FLAG_DF ("don't fragment"). */
  send_data(r, it, proto_reply_offset_data(it->hdr, s, &r->hdr, NBD_REPLY_FLAG_DONE, r->hdr.offset,
                                           (uint32_t)r->hdr.length), 0, r->hdr.length);
  request_finish(r);
}

static void mmap_read(const struct datapath *self, struct request *r)
{
  struct dp_export *ex = r->export;
  uint64_t off = r->hdr.offset, len = r->hdr.length;

  /* The request was validated against the export size; the mapping covers
   * it unless the file was smaller at setup (then: the fallback). */
  if (ex->map && len > 0 && off <= ex->map_len && len <= ex->map_len - off
      && dp_range_cached(ex->backend->fd, off, len) == 1) {
    dp_mmap_send(r);
    return;
  }
  dp_fallback_read(self, r);
}

/* Writes: the fallback's (splice: write(2) into the page cache, which the
 * MAP_SHARED mapping sees at once). */
static void mmap_payload_progress(struct request *r, uint64_t got)
{
  datapath_mmap.fallback->payload_progress(r, got);
}

static bool mmap_payload_abort(struct request *r)
{
  return datapath_mmap.fallback->payload_abort(r);
}

const struct datapath datapath_mmap = {
  .name = "mmap",
  .read = mmap_read,
  .fallback = &datapath_splice,
  .payload_progress = mmap_payload_progress,
  .payload_abort = mmap_payload_abort,
  .kind = DP_MMAP,
  .own_read_buffers = true,
};
