/* copy.c: the `copy` data path: read from the backend into a buffer, then send
 * it; WRITE data was received into a buffer by conn.c, then it is written.
 * Sparse reads become OFFSET_HOLE chunks when structured replies are on. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "datapath/datapath.h"
#include "proto/nbd-protocol.h"
#include "datapath/dpexport.h"
#include "datapath/request.h"

#define READ_MAX_EXTENTS  64      /* content chunks per read reply, at most */
#define BS_MAX_EXTENTS    1024    /* descriptors per block status reply */
#define BS_COMPACT_LIMIT  UINT64_C(0xfffff000)   /* compact descriptors have 32-bit lengths */

/* A read split into one backend read per data extent. */
struct read_state {
  size_t n;
  unsigned pending;
  int error;                            /* first error, if any */
  int res[READ_MAX_EXTENTS];            /* each extent's read result */
  struct backend_extent ext[READ_MAX_EXTENTS];
  struct bio bios[READ_MAX_EXTENTS + 1];   /* the last one only releases the submit hold */
};

static const char *errmsg(int res)
{
  return res == -ENOTSUP ? "cannot zero this range quickly" : res ? strerror(-res) : NULL;
}

void copy_status_done(struct bio *io, int res)
{
  struct request *r = io->owner;
  dp_times_disk(&r->times);
  if (io->type == BIO_WRITE && res == 0) {
    stat_add(&r->export->stats.bytes_written, io->length);
    stat_add(&r->export->stats.bytes_path[DP_COPY], io->length);
    stat_add(&r->export->stats.copied_write, io->length);   /* write(2) (or memcpy) from our buffer */
  }
  request_reply_status(r, proto_errno_to_nbd(res), errmsg(res));
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

static void submit_status_bio(struct request *r, enum bio_type type, unsigned flags)
{
  submit_bio(r, type, flags, copy_status_done);
}

void copy_modify_request(struct request *r, void (*done)(struct bio *io, int res))
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
  stat_add(&r->export->stats.bytes_read, data);
  stat_add(&r->export->stats.bytes_path[DP_COPY], data);
  stat_add(&r->export->stats.copied_read, 2 * data);
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
    if (st->res[i] < 0)
      /* The extents that did read still go out; the failed one is reported
       * with its offset ("NBD_REPLY_TYPE_ERROR_OFFSET"). */
      request_send(r, &items[i], proto_reply_error_chunk(items[i].hdr, s, &r->hdr, flags,
                                                         proto_errno_to_nbd(st->res[i]), errmsg(st->res[i]),
                                                         1, r->hdr.offset + rel), NULL, 0);
    else if (st->ext[i].flags & BACKEND_EXTENT_ZERO)
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

static void read_whole_done(struct bio *io, int res)
{
  struct request *r = io->owner;
  dp_times_disk(&r->times);
  if (res < 0)
    request_reply_status(r, proto_errno_to_nbd(res), errmsg(res));
  else
    read_reply(r, NULL);
}

static void read_extent_done(struct bio *io, int res)
{
  struct request *r = io->owner;
  struct read_state *st = r->dp_priv;

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
 * state, or NULL when the read is better done in one piece. */
static struct read_state *read_split(struct request *r)
{
  struct read_state *st;

  if (r->hdr.flags & NBD_CMD_FLAG_DF)
    return NULL;
  st = calloc(1, sizeof *st);
  if (!st)
    return NULL;
  if (!dp_read_extents(r, st->ext, READ_MAX_EXTENTS, &st->n)
      || (st->n == 1 && !(st->ext[0].flags & BACKEND_EXTENT_ZERO))) {
    free(st);
    return NULL;
  }
  return st;
}

void copy_read_request(struct request *r)
{
  struct read_state *st;
  uint64_t rel = 0;

  if (r->hdr.length == 0) {
    request_reply_status(r, 0, NULL);
    return;
  }
  r->times.disk_begin = dp_now();
  st = proto_uses_chunks(r->session) ? read_split(r) : NULL;
  if (!st) {
    r->bio = (struct bio){ .type = BIO_READ, .buf = r->buf, .offset = r->hdr.offset,
                           .length = r->hdr.length, .complete = read_whole_done, .owner = r };
    backend_submit(r->export->backend, r->eng, &r->bio);
    return;
  }
  r->dp_priv = st;
  st->pending = 1;   /* held until every read is submitted */
  for (size_t i = 0; i < st->n; i++) {
    if (!(st->ext[i].flags & BACKEND_EXTENT_ZERO)) {
      st->bios[i] = (struct bio){ .type = BIO_READ, .buf = (char *)r->buf + rel,
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

static void copy_block_status(struct request *r)
{
  const struct proto_session *s = r->session;
  struct backend *b = r->export->backend;
  bool one = r->hdr.flags & NBD_CMD_FLAG_REQ_ONE;
  size_t max = one ? 1 : BS_MAX_EXTENTS, n = 0;
  uint64_t len = r->hdr.length;
  struct backend_extent *ext;
  struct proto_extent *desc;
  int res = -ENOTSUP;

  if (len == 0) {
    request_reply_status(r, NBD_EINVAL, "zero-length block status");
    return;
  }
  if (!s->extended && len > BS_COMPACT_LIMIT)
    len = BS_COMPACT_LIMIT;
  ext = malloc(max * sizeof *ext);
  desc = malloc(max * sizeof *desc);
  r->buf = malloc(proto_block_status_size(s, max));
  if (!ext || !desc || !r->buf) {
    free(ext);
    free(desc);
    request_reply_status(r, NBD_ENOMEM, "out of memory");
    return;
  }
  if (b->ops->extents)
    res = b->ops->extents(b, r->hdr.offset, len, ext, max, &n);
  if (res < 0) {
    /* "a server MAY reply with a single block status descriptor with length
     * matching the requested length" (status 0 is always safe). */
    ext[0] = (struct backend_extent){ len, 0 };
    n = 1;
  }
  for (size_t i = 0; i < n; i++)
    desc[i] = (struct proto_extent){ ext[i].length, dp_extent_state(ext[i].flags) };
  r->buflen = proto_reply_block_status(r->buf, s, &r->hdr, PROTO_META_BASE_ALLOCATION_ID, desc, n);
  free(ext);
  free(desc);
  request_send(r, &r->status_item, 0, r->buf, r->buflen);
  request_finish(r);
}

static void copy_execute(struct request *r)
{
  unsigned fua = (r->hdr.flags & NBD_CMD_FLAG_FUA) ? BIO_FUA : 0;

  switch (r->hdr.type) {
  case NBD_CMD_READ:
    copy_read_request(r);
    return;
  case NBD_CMD_WRITE:
    submit_status_bio(r, BIO_WRITE, fua);
    return;
  case NBD_CMD_FLUSH:
    submit_status_bio(r, BIO_FLUSH, 0);
    return;
  case NBD_CMD_TRIM:
  case NBD_CMD_WRITE_ZEROES:
    copy_modify_request(r, copy_status_done);
    return;
  case NBD_CMD_CACHE:
    submit_status_bio(r, BIO_CACHE, 0);
    return;
  case NBD_CMD_BLOCK_STATUS:
    copy_block_status(r);
    return;
  default:
    request_reply_status(r, NBD_EINVAL, "unknown command");
    return;
  }
}

const struct datapath datapath_copy = {
  .name = "copy",
  .execute = copy_execute,
};
