/* copy.c: the `copy` data path, which serves every READ and WRITE: read from
 * the backend into a buffer, then send it; a WRITE's payload was received
 * into a buffer by the front end, then it is written.  Sparse reads become
 * OFFSET_HOLE chunks when structured replies are on.  A READ with
 * r->read_missed first asks the page cache alone (BIO_NOWAIT) and reads
 * what it lacks as usual. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "datapath/datapath.h"
#include "datapath/dpexport.h"
#include "datapath/request.h"
#include "proto/nbd-protocol.h"

#define READ_MAX_EXTENTS  64      /* content chunks per read reply, at most */

/* A read split into one backend read per data extent. */
struct read_state {
  size_t n;
  unsigned pending;
  int error;                            /* first error, if any */
  int res[READ_MAX_EXTENTS];            /* each extent's read result */
  struct backend_extent ext[READ_MAX_EXTENTS];
  struct bio bios[READ_MAX_EXTENTS + 1];   /* the last one only releases the submit hold */
};

/* Queue the reply to a read whose data is in r->buf (st: the extent split, or NULL). */
static void read_reply(struct request *r, struct read_state *st)
{
  const struct proto_session *s = r->session;
  struct reply_item *it = &r->status_item;
  uint64_t rel = 0, data = r->hdr.length;

  if (st)
    for (size_t i = 0; i < st->n; i++)
      if (st->res[i] < 0 || (st->ext[i].flags & BACKEND_EXTENT_ZERO))
        data -= st->ext[i].length;
  /* Two CPU copies per byte: into our buffer (read(2) or memcpy), and from
   * it into the socket (sendmsg). */
  stat_add(&r->stats->bytes_read, data);
  stat_add(&r->stats->bytes_path[DP_COPY], data);
  stat_add(&r->stats->copied_read, 2 * data);
  it->payload = true;
  r->times.net_begin = dp_now();
  if (!proto_uses_chunks(s)) {
    request_send(r, it, proto_reply_simple(it->hdr, r->hdr.cookie, 0), r->buf, r->hdr.length);
    request_finish(r);
    return;
  }
  if (!st) {
    request_send(r, it, proto_reply_offset_data(it->hdr, s, &r->hdr, NBD_REPLY_FLAG_DONE, r->hdr.offset,
                                                (uint32_t)r->hdr.length), r->buf, r->hdr.length);
    request_finish(r);
    return;
  }
  struct reply_item *items = request_items(r, st->n);
  if (!items) {
    request_reply_status(r, NBD_ENOMEM, "out of memory");
    return;
  }
  for (size_t i = 0; i < st->n; i++) {
    uint16_t flags = i + 1 == st->n ? NBD_REPLY_FLAG_DONE : 0;
    uint32_t len = (uint32_t)st->ext[i].length;
    if (st->res[i] < 0) {
      /* The extents that did read still go out; the failed one is reported
       * with its offset ("NBD_REPLY_TYPE_ERROR_OFFSET"). */
      request_note_error(r, proto_errno_to_nbd(st->res[i]));
      request_send(r, &items[i], proto_reply_error_chunk(items[i].hdr, s, &r->hdr, flags,
                                                         proto_errno_to_nbd(st->res[i]), dp_error_text(st->res[i]),
                                                         1, r->hdr.offset + rel), NULL, 0);
    } else if (st->ext[i].flags & BACKEND_EXTENT_ZERO)
      request_send(r, &items[i], proto_reply_offset_hole(items[i].hdr, s, &r->hdr, flags,
                                                         r->hdr.offset + rel, len), NULL, 0);
    else if ((items[i].payload = true))
      request_send(r, &items[i], proto_reply_offset_data(items[i].hdr, s, &r->hdr, flags,
                                                         r->hdr.offset + rel, len),
                   (char *)r->buf + rel, len);
    rel += len;
  }
  request_finish(r);
}

/* A BIO_NOWAIT read the page cache could not serve whole (-EAGAIN after
 * io->progress bytes), or that the file refuses (-EOPNOTSUPP): tell
 * r->read_missed (once per request) and read the rest as usual, waiting
 * for the disk.  Returns true when it did. */
static bool nowait_missed(struct bio *io, int res)
{
  struct request *r = io->owner;
  void (*missed)(struct request *, int) = r->read_missed;
  uint64_t done = io->progress;

  if (!(io->flags & BIO_NOWAIT) || (res != -EAGAIN && res != -EOPNOTSUPP) || done >= io->length)
    return false;
  r->read_missed = NULL;
  if (missed)
    missed(r, res);
  io->flags &= ~BIO_NOWAIT;
  io->buf = (char *)io->buf + done;
  io->offset += done;
  io->length -= done;
  backend_submit(r->export->backend, r->eng, io);
  return true;
}

static void read_whole_done(struct bio *io, int res)
{
  struct request *r = io->owner;
  if (nowait_missed(io, res))
    return;
  dp_times_disk(&r->times);
  if (res < 0)
    request_reply_status(r, proto_errno_to_nbd(res), dp_error_text(res));
  else
    read_reply(r, NULL);
}

static void read_extent_done(struct bio *io, int res)
{
  struct request *r = io->owner;
  struct read_state *st = r->dp_priv;

  if (nowait_missed(io, res))
    return;
  if (io != &st->bios[READ_MAX_EXTENTS]) {
    st->res[io - st->bios] = res;
    dp_times_disk(&r->times);
  }
  if (res < 0 && !st->error)
    st->error = res;
  if (--st->pending == 0)
    read_reply(r, st);
}

/* Split a structured read along the backend's allocation map.  Returns the
 * state, or NULL when the read is better done in one piece (the map is
 * looked at on the stack first: most reads lie in one data extent, and the
 * state, some 8 KiB, would be allocated and zeroed for nothing). */
static struct read_state *read_split(struct request *r)
{
  struct backend_extent ext[READ_MAX_EXTENTS];
  struct read_state *st;
  size_t n;

  if ((r->hdr.flags & NBD_CMD_FLAG_DF) || !dp_read_extents(r, ext, READ_MAX_EXTENTS, &n)
      || (n == 1 && !(ext[0].flags & BACKEND_EXTENT_ZERO)))
    return NULL;
  st = calloc(1, sizeof *st);
  if (!st)
    return NULL;
  memcpy(st->ext, ext, n * sizeof *ext);
  st->n = n;
  return st;
}

static void copy_read(const struct datapath *self, struct request *r)
{
  struct read_state *st;
  uint64_t rel = 0;
  unsigned flags = r->read_missed ? BIO_NOWAIT : 0;

  (void)self;
  if (r->hdr.length == 0) {
    request_reply_status(r, 0, NULL);
    return;
  }
  r->times.disk_begin = dp_now();
  st = proto_uses_chunks(r->session) ? read_split(r) : NULL;
  if (!st) {
    r->bio = (struct bio){ .type = BIO_READ, .flags = flags, .buf = r->buf, .offset = r->hdr.offset,
                           .length = r->hdr.length, .complete = read_whole_done, .owner = r };
    backend_submit(r->export->backend, r->eng, &r->bio);
    return;
  }
  r->dp_priv = st;
  st->pending = 1;   /* held until every read is submitted */
  for (size_t i = 0; i < st->n; i++) {
    if (!(st->ext[i].flags & BACKEND_EXTENT_ZERO)) {
      st->bios[i] = (struct bio){ .type = BIO_READ, .flags = flags, .buf = (char *)r->buf + rel,
                                  .offset = r->hdr.offset + rel, .length = st->ext[i].length,
                                  .complete = read_extent_done, .owner = r };
      st->pending++;
      backend_submit(r->export->backend, r->eng, &st->bios[i]);
    }
    rel += st->ext[i].length;
  }
  /* Drop the hold through the same path as a completion, on the next turn. */
  st->bios[READ_MAX_EXTENTS] = (struct bio){ .type = BIO_FLUSH, .complete = read_extent_done, .owner = r };
  st->bios[READ_MAX_EXTENTS].eng = r->eng;
  backend_complete_later(&st->bios[READ_MAX_EXTENTS], 0);
}

static void copy_write(const struct datapath *self, struct request *r)
{
  (void)self;
  r->bio = (struct bio){ .type = BIO_WRITE, .flags = (r->hdr.flags & NBD_CMD_FLAG_FUA) ? BIO_FUA : 0,
                         .buf = r->buf, .offset = r->hdr.offset, .length = r->hdr.length,
                         .complete = dp_bio_status_done, .owner = r };
  r->times.disk_begin = dp_now();
  backend_submit(r->export->backend, r->eng, &r->bio);
}

const struct datapath datapath_copy = {
  .name = "copy",
  .read = copy_read,
  .write = copy_write,
};
