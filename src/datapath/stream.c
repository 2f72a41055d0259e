/* stream.c: the `splice` and `direct` data paths, and synchronized sends.
 * A READ is split into chunks (chunk= bytes, at absolute multiples of it)
 * whose backend reads are issued in offset order: the first alone (so the
 * first chunk is ready, and on the wire, soonest), then one more in flight
 * per completed read up to READ_WINDOW bytes; each chunk goes out as soon as
 * its read completes: its own OFFSET_DATA chunk (any order) with structured
 * replies, or, in a simple reply, the next piece of the payload once every
 * earlier piece is out (held items in the send queue keep the order).
 * On the splice path a READ whose pages are all in the page cache (up to
 * DP_HOT_MAX) is one chunk: there is no disk to overlap with, and every chunk
 * costs a header, a pipe and a splice more on both ends.
 *   splice: file --splice--> pipe (one per chunk) --splice--> socket; a chunk
 *           whose pipe came out too small to hold it (pipes of a user that
 *           is not privileged shrink to 2 pages once its pipe pages run out)
 *           is read into a buffer and sent from there instead (counted as
 *           copied): a splice into a full pipe would wait forever.
 *   direct: O_DIRECT READ_FIXED into the worker's registered arena, SENDMSG_ZC;
 *           a buffer returns to the arena only after the send's notification.
 * A WRITE is written chunk by chunk while its payload arrives; on the direct
 * path the aligned middle goes O_DIRECT (WRITE_FIXED from the arena) and the
 * unaligned head/tail are read-modify-written O_DIRECT through bounce blocks,
 * ordered by the file's range lock, which all its exports share (see
 * "direct writes" below).
 * Both hand small or unsplit reads to their fallback, the copy path. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "common/macros.h"
#include "datapath/datapath.h"
#include "datapath/dpexport.h"
#include "datapath/dpworker.h"
#include "datapath/qos.h"
#include "datapath/rangelock.h"
#include "datapath/request.h"
#include "proto/nbd-protocol.h"

#define A DP_DIRECT_ALIGN
#define MAX_EXTENTS 64
/* Reads in flight per request, in bytes (at least 2 reads): all of a
 * request's chunk reads issued at once share the disk and finish together,
 * so the first chunk (and the network) waits for nearly all of them. */
#define READ_WINDOW (512u << 10)

struct stream;

struct chunk {
  struct reply_item item;        /* header + this chunk's data */
  struct stream *st;
  uint64_t rel;                  /* offset in the request */
  uint32_t len;
  bool hole, read_done, item_done, sent_ok, freed;
  bool ready, submitted;         /* has its pipe or buffer; its read was issued */
  int res;
  struct engine_op op;           /* the read */
  uint64_t done;                 /* bytes read so far */
  uint8_t *mem;                  /* direct: aligned buffer, data at mem + skip;
                                  * splice: the buffer of a chunk no pipe could hold */
  size_t memlen;
  uint32_t skip;
  bool in_arena;
  struct arena_waiter aw;
  struct dp_pipe *pipe;          /* splice */
  struct pipe_waiter pw;
};

struct stream {
  struct request *r;
  struct dp_worker *dw;
  bool structured, started;
  unsigned n, ndata, pending;    /* chunks, data chunks, reads not yet done */
  unsigned next;                 /* the first chunk whose read is not issued yet */
  unsigned inflight, window, wmax;  /* reads in flight; allowed now; allowed at most */
  int rfd;                       /* splice: the fd the reads use (dp_read_fd) */
  uint64_t max_rel_sent;         /* structured: highest chunk offset queued so far */
  int first_err;
  struct chunk c[];
};

/* r->dp: the export's path, or the one auto chose for r (auto.c). */
static bool is_direct(const struct request *r) { return r->dp->kind == DP_DIRECT; }
/* The kind bytes are counted as: the mmap path hands its cold reads and
 * its writes to the splice path, and they count as splice. */
static int path_kind(const struct request *r) { return is_direct(r) ? DP_DIRECT : DP_SPLICE; }
static struct dp_stats *stats(const struct request *r) { return r->stats; }

static const char *errmsg(int res) { return res ? strerror(-res) : NULL; }

/* ---- chunk resources ---- */

static void chunk_free_resources(struct chunk *c)
{
  struct dp_worker *dw = c->st->dw;
  if (c->freed)
    return;
  c->freed = true;
  if (c->pipe)   /* reusable only when all it held went out */
    dp_share_pipe_put(dw, c->st->r->share, c->pipe, c->sent_ok);
  c->pipe = NULL;
  if (c->mem) {
    if (c->in_arena)
      dp_share_arena_put(dw, c->st->r->share, c->mem, c->memlen);
    else
      dp_buffer_put(c->st->r->eng, c->mem, c->memlen);
  }
  c->mem = NULL;
}

/* The item is done (sent, or the queue failed): its buffer or pipe may be
 * reused, unless the read into it is still running (then when it ends). */
static void chunk_item_release(struct reply_item *it, int err)
{
  struct chunk *c = container_of(it, struct chunk, item);
  c->item_done = true;
  c->sent_ok = err == 0 && it->sq.splice_len == c->len;
  if (it->sq.zc_copied) {
    stat_add(&stats(c->st->r)->zc_copied_sends, 1);
    stat_add(&stats(c->st->r)->zc_copied_bytes, it->sq.zc_copied);
  }
  if (c->read_done)
    chunk_free_resources(c);
}

/* ---- reads ---- */

static void chunk_read_done(struct chunk *c, int res);
static void chunk_submit(struct chunk *c);

/* Enough read: direct reads cover [start - skip, ...), splice reads [start, ...). */
static bool chunk_complete(const struct chunk *c)
{
  return is_direct(c->st->r) ? c->done >= c->skip + c->len : c->done >= c->len;
}

static void read_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct chunk *c = container_of(op, struct chunk, op);
  (void)flags;

  if (res == -EINTR || res == -EAGAIN) {
    chunk_submit(c);
    return;
  }
  if (res <= 0) {   /* 0: end of file before the data we need */
    chunk_read_done(c, res < 0 ? res : -EIO);
    return;
  }
  c->done += (unsigned)res;
  if (chunk_complete(c))
    chunk_read_done(c, 0);
  else
    chunk_submit(c);
}

static void chunk_submit(struct chunk *c)
{
  struct request *r = c->st->r;
  struct dp_export *ex = r->export;
  struct io_uring_sqe *sqe = engine_sqe(r->eng, &c->op);
  uint64_t start = r->hdr.offset + c->rel;

  c->op.cb = read_cb;
  if (is_direct(r)) {
    uint64_t pos = start - c->skip + c->done;
    unsigned len = (unsigned)(c->memlen - c->done);
    if (c->in_arena && c->st->dw->arena.registered)
      io_uring_prep_read_fixed(sqe, ex->direct_fd, c->mem + c->done, len, pos, 0);
    else
      io_uring_prep_read(sqe, ex->direct_fd, c->mem + c->done, len, pos);
  } else if (c->mem) {
    /* Not st->rfd: the worker closes its random-access fds once it has no
     * pipe in use, and this read holds none. */
    io_uring_prep_read(sqe, ex->backend->fd, c->mem + c->done, (unsigned)(c->len - c->done), start + c->done);
  } else {
    io_uring_prep_splice(sqe, c->st->rfd, (int64_t)(start + c->done), c->pipe->wfd, -1,
                         (unsigned)(c->len - c->done), SPLICE_F_MOVE);
  }
  if (ex->backend->io_async)
    sqe->flags |= IOSQE_ASYNC;
}

/* Issue reads in offset order while fewer than st->window are in flight; a
 * chunk still waiting for its pipe or buffer stops the walk. */
static void stream_issue(struct stream *st)
{
  while (st->inflight < st->window && st->next < st->n) {
    struct chunk *c = &st->c[st->next];
    if (!c->hole && !c->read_done) {   /* read_done: failed before its read */
      if (!c->ready)
        return;
      c->submitted = true;
      st->inflight++;
      chunk_submit(c);
    }
    st->next++;
  }
}

static void chunk_ready(struct chunk *c)
{
  c->ready = true;
  stream_issue(c->st);
}

static void fail_later_cb(struct engine_op *op, int res, uint32_t flags)
{
  (void)flags;
  chunk_read_done(container_of(op, struct chunk, op), res);
}

/* Direct path: memory of the chunk's own (the arena is taken by other
 * connections, or the piece is larger than a connection's share). */
static void own_buffer(struct chunk *c)
{
  struct request *r = c->st->r;

  stat_add(&stats(r)->arena_fallbacks, 1);
  if (!(c->mem = dp_buffer_get(r->eng, c->memlen, true, stats(r)))) {
    c->op.cb = fail_later_cb;
    engine_defer(r->eng, &c->op, -ENOMEM);
    return;
  }
  chunk_ready(c);
}

/* buf: a piece of the arena, or NULL (use other memory). */
static void got_buffer(struct arena_waiter *w, void *buf)
{
  struct chunk *c = container_of(w, struct chunk, aw);
  if (!buf) {
    own_buffer(c);
    return;
  }
  c->mem = buf;
  c->in_arena = true;
  chunk_ready(c);
}

/* Splice path, p = the chunk's pipe or NULL (none to be had).  A pipe
 * smaller than the chunk (planned for the pipes the worker had) cannot take
 * it: one splice would fill it and the rest wait for room that never comes,
 * as nothing drains the pipe before the chunk is read.  Then, and without a
 * pipe, the chunk is read into a buffer and sent from there.  The unused
 * small pipe stays with the chunk and is closed with it (nothing went
 * through it): while the worker has a pipe in use its random-access fds
 * stay open for the stream's other chunks (dp_pipe_put). */
static void got_pipe(struct pipe_waiter *w, struct dp_pipe *p)
{
  struct chunk *c = container_of(w, struct chunk, pw);
  struct request *r = c->st->r;

  c->pipe = p;
  if (p && dp_pipe_fits(p->bytes, r->hdr.offset + c->rel, c->len)) {
    chunk_ready(c);
    return;
  }
  c->memlen = c->len;
  if (!(c->mem = dp_buffer_get(r->eng, c->memlen, true, stats(r)))) {
    c->op.cb = fail_later_cb;
    engine_defer(r->eng, &c->op, -ENOMEM);
    return;
  }
  chunk_ready(c);
}

/* Get the chunk's buffer or pipe, then read when stream_issue() gets to it.
 * A connection holds at most its share of the worker's pipes and arena
 * (dpworker.h): beyond it the chunk waits for the connection's own to come
 * back (first come, first served among its chunks, so a request's chunks
 * get theirs before any later request's: a simple reply's held chunks never
 * wait behind a later reply's); when other connections hold the rest, it
 * does without (a buffer of its own) instead of waiting for them. */
static void chunk_start(struct chunk *c)
{
  struct stream *st = c->st;
  struct request *r = st->r;
  bool queued;

  if (!is_direct(r)) {
    c->pw.ready = got_pipe;
    struct dp_pipe *p = dp_share_pipe_get(st->dw, r->share, &c->pw, &queued);
    if (queued) {
      stat_add(&stats(r)->pipe_waits, 1);
      dp_qos_waiting(r);
    } else
      got_pipe(&c->pw, p);
    return;
  }
  uint64_t start = r->hdr.offset + c->rel;
  uint64_t as = start & ~(uint64_t)(A - 1), ae = (start + c->len + A - 1) & ~(uint64_t)(A - 1);
  c->skip = (uint32_t)(start - as);
  c->memlen = ae - as;
  c->aw.ready = got_buffer;
  if ((c->mem = dp_share_arena_get(st->dw, r->share, &c->aw, c->memlen, &queued))) {
    c->in_arena = true;
    stat_add(&stats(r)->arena_allocs, 1);
    chunk_ready(c);
  } else if (queued) {
    stat_add(&stats(r)->arena_waits, 1);
    dp_qos_waiting(r);
  } else {
    own_buffer(c);
  }
}

/* Fill the chunk's item with its data (after an optional header). */
static void fill_item(struct chunk *c, size_t hdr_len)
{
  struct reply_item *it = &c->item;
  struct request *r = c->st->r;

  it->sq.niov = 0;
  if (hdr_len)
    it->sq.iov[it->sq.niov++] = (struct iovec){ it->hdr, hdr_len };
  it->release = chunk_item_release;
  if (c->res < 0 || c->hole || !c->read_done)
    return;
  it->payload = true;
  stat_add(&stats(r)->bytes_read, c->len);
  stat_add(&stats(r)->bytes_path[path_kind(r)], c->len);
  if (is_direct(r) || c->mem) {
    it->sq.iov[it->sq.niov++] = (struct iovec){ c->mem + c->skip, c->len };
    if (is_direct(r) && c->len >= DP_ZC_MIN) {
      it->sq.zc = true;
      stat_add(&stats(r)->zc_sends, 1);
    } else {
      /* Small: an ordinary send (one kernel copy, counted) gathers with
       * the replies around it; SEND_ZC would cost more than it saves.
       * (A splice chunk without a pipe, got_pipe(): copied too.) */
      stat_add(&stats(r)->copied_read, c->len);
    }
  } else {
    it->sq.pipe_fd = c->pipe->rfd;
    it->sq.splice_len = c->len;
  }
  if (!r->times.net_begin)
    r->times.net_begin = dp_now();
}

/* Simple reply, error before anything went out: one error reply. */
static void stream_fail_simple(struct stream *st)
{
  for (unsigned i = 0; i < st->n; i++)
    chunk_free_resources(&st->c[i]);
  request_reply_status(st->r, proto_errno_to_nbd(st->first_err), errmsg(st->first_err));
}

/* Simple reply, chunk 0 read fine and nothing failed so far: queue the
 * header with chunk 0, and every later chunk in its place (held until read). */
static void simple_start(struct stream *st)
{
  struct request *r = st->r;
  st->started = true;
  for (unsigned i = 0; i < st->n; i++) {
    struct chunk *c = &st->c[i];
    fill_item(c, i == 0 ? proto_reply_simple(c->item.hdr, r->hdr.cookie, 0) : 0);
    request_push(r, &c->item, !c->read_done);
  }
}

static void chunk_read_done(struct chunk *c, int res)
{
  struct stream *st = c->st;
  struct request *r = st->r;
  const struct proto_session *s = r->session;
  struct reply_item *it = &c->item;

  c->res = res;
  c->read_done = true;
  st->pending--;
  if (c->submitted)
    st->inflight--;
  if (st->window < st->wmax)
    st->window++;
  stream_issue(st);   /* the disk goes on while this chunk is sent */
  dp_times_disk(&r->times);
  if (res < 0 && !st->first_err)
    st->first_err = res;
  if (c->item_done) {   /* the connection failed while we read */
    chunk_free_resources(c);
  } else if (st->structured) {
    uint16_t flags = st->pending == 0 ? NBD_REPLY_FLAG_DONE : 0;
    if (res < 0) {
      request_note_error(r, proto_errno_to_nbd(res));
      fill_item(c, proto_reply_error_chunk(it->hdr, s, &r->hdr, flags, proto_errno_to_nbd(res), errmsg(res),
                                           1, r->hdr.offset + c->rel));
      chunk_free_resources(c);
    } else {
      fill_item(c, proto_reply_offset_data(it->hdr, s, &r->hdr, flags, r->hdr.offset + c->rel, c->len));
    }
    if (c->rel < st->max_rel_sent)
      stat_add(&stats(r)->chunks_out_of_order, 1);
    else
      st->max_rel_sent = c->rel;
    request_push(r, it, false);
  } else if (st->started) {
    if (res < 0) {
      /* Part of the payload is out: the only way to tell the client is to
       * cut the connection (the spec's rule for simple replies). */
      request_fail_connection(r);
      it->sq.niov = 0;
      chunk_free_resources(c);
    } else {
      fill_item(c, 0);
    }
    request_release(r, it);
  } else if (c == &st->c[0] && res == 0 && !st->first_err) {
    simple_start(st);
  } else if (st->first_err) {
    /* A simple reply that failed before anything went out sends none of
     * its chunks: what the read ones hold goes back now, so that the
     * chunks still waiting for their connection's pipes or buffers (held
     * by these) get them and finish. */
    for (unsigned i = 0; i < st->n; i++)
      if (st->c[i].read_done && !st->c[i].hole)
        chunk_free_resources(&st->c[i]);
  }
  if (st->pending == 0) {
    if (!st->structured && !st->started)
      stream_fail_simple(st);   /* an error before anything went out */
    else
      request_finish(r);
  }
}

/* Split the request into chunks along extents (structured replies; not when
 * one data chunk is wanted) and at absolute multiples of csize (not at all
 * when whole); NULL on ENOMEM. */
static struct stream *stream_plan(struct request *r, struct dp_worker *dw, uint32_t csize, bool whole,
                                  bool one)
{
  struct backend_extent ext[MAX_EXTENTS];
  size_t next = 0;
  bool structured = proto_uses_chunks(r->session);
  uint64_t off = r->hdr.offset, len = r->hdr.length;
  struct stream *st = NULL;

  if (!structured || one || !dp_read_extents(r, ext, MAX_EXTENTS, &next)) {
    ext[0] = (struct backend_extent){ len, 0 };
    next = 1;
  }
  for (int pass = 0; pass < 2; pass++) {   /* count, then fill */
    uint64_t rel = 0;
    unsigned k = 0, ndata = 0;
    for (size_t i = 0; i < next; i++) {
      uint64_t end = rel + ext[i].length;
      bool hole = ext[i].flags & BACKEND_EXTENT_ZERO;
      while (rel < end) {
        uint64_t stop = hole || whole ? end : ((off + rel) / csize + 1) * csize - off;
        if (stop > end)
          stop = end;
        if (pass) {
          st->c[k] = (struct chunk){ .st = st, .rel = rel, .len = (uint32_t)(stop - rel), .hole = hole };
          st->c[k].item.req = r;
          sendq_item_reset(&st->c[k].item.sq);
        }
        k++;
        ndata += !hole;
        rel = stop;
      }
    }
    if (!pass) {
      st = calloc(1, sizeof *st + k * sizeof st->c[0]);
      if (!st)
        return NULL;
      st->r = r;
      st->dw = dw;
      st->structured = structured;
      st->n = k;
      st->ndata = ndata;
    }
  }
  return st;
}

static void stream_read(const struct datapath *self, struct request *r)
{
  struct dp_worker *dw = dp_worker_get(r->eng);
  uint32_t csize = r->export->chunk;
  struct stream *st;

  if (r->hdr.length == 0) {
    request_reply_status(r, 0, NULL);
    return;
  }
  if (!dw) {
    request_reply_status(r, NBD_ENOMEM, "out of memory");
    return;
  }
  if (!is_direct(r) && r->hdr.length < DP_SPLICE_MIN) {
    /* Small reads: a read into a buffer and a gathered send cost less
     * than two splices and a send of their own (docs/design.md). */
    dp_fallback_read(self, r);
    return;
  }
  bool whole = false, one = false;
  if ((r->hdr.flags & NBD_CMD_FLAG_DF) && proto_uses_chunks(r->session)) {
    /* One data chunk wanted ("don't fragment").  Direct: one O_DIRECT
     * chunk (a buffered read would fill the page cache of a direct export,
     * whose pages a concurrent O_DIRECT write may then fail to invalidate);
     * otherwise the fallback (copy) path does that. */
    if (is_direct(r)) {
      whole = one = true;
    } else {
      dp_fallback_read(self, r);
      return;
    }
  }
  int rfd = -1;
  if (!is_direct(r)) {
    uint64_t off = r->hdr.offset, len = r->hdr.length;
    int fd = r->export->backend->fd;
    /* Learn how much a pipe holds; again while pipes are tiny and the
     * worker has none (the user's pipe pages may be back). */
    if (!dw->pipe_cap || (dw->pipe_cap < DP_SPLICE_MIN && dw->npipes == 0)) {
      struct dp_pipe *p = dp_pipe_get(dw);
      if (p)
        dp_pipe_put(dw, p, true);
    }
    if (dw->pipe_cap && dw->pipe_cap < DP_SPLICE_MIN) {
      /* 2-page pipes (the user's pipe pages ran out): a chunk, a header
       * and two splices per page would cost more than one copy. */
      dp_fallback_read(self, r);
      return;
    }
    if (dw->pipe_cap && csize > dw->pipe_cap) {
      /* The largest power of two that fits: chunk=1M with 1 MiB pipes cuts
       * a 1 MiB request into two halves, not 1016K + 8K. */
      csize = A;
      while ((size_t)csize * 2 <= dw->pipe_cap)
        csize *= 2;
    }
    /* Page-cached and fits one pipe (the pages it spans): one chunk. */
    uint64_t span = ROUND_UP(off + len, 4096) - ROUND_DOWN(off, 4096);
    whole = len > csize && len <= DP_HOT_MAX && span <= dw->pipe_bytes && dp_range_cached(fd, off, len) == 1;
    /* Split reads that do not continue a recent one skip readahead. */
    rfd = len > csize && !whole ? dp_read_fd(dw, fd, off, len) : fd;
  }
  if (!(st = stream_plan(r, dw, csize, whole, one))) {
    request_reply_status(r, NBD_ENOMEM, "out of memory");
    return;
  }
  st->rfd = rfd;
  st->window = 1;
  st->wmax = csize < READ_WINDOW / 2 ? READ_WINDOW / csize : 2;
  r->dp_priv = st;
  r->times.disk_begin = dp_now();
  stat_add(&stats(r)->chunks, st->ndata);
  st->pending = st->ndata;
  if (st->structured) {   /* holes go out at once */
    unsigned holes = st->n - st->ndata, seen = 0;
    for (unsigned i = 0; i < st->n; i++) {
      struct chunk *c = &st->c[i];
      if (!c->hole)
        continue;
      c->read_done = true;
      fill_item(c, proto_reply_offset_hole(c->item.hdr, r->session, &r->hdr,
                                           st->ndata == 0 && ++seen == holes ? NBD_REPLY_FLAG_DONE : 0,
                                           r->hdr.offset + c->rel, c->len));
      request_push(r, &c->item, false);
    }
    if (st->ndata == 0) {
      request_finish(r);
      return;
    }
  }
  /* Pipes and buffers for all chunks now, in order; reads as the window allows. */
  for (unsigned i = 0; i < st->n; i++)
    if (!st->c[i].hole)
      chunk_start(&st->c[i]);
}

/* ---- writes: chunk by chunk while the payload arrives ---- */

struct wstate {
  struct request *r;
  uint64_t issued;               /* payload bytes handed to writes so far */
  unsigned pending;
  int err;
  bool all;                      /* the payload is complete and all of it issued */
  bool aborted;                  /* the payload never completed: no reply */
  bool synced;                   /* the fdatasync of a FUA write (fua_by_sync) is done */
  struct engine_op sync_op;
};

struct dpiece;

struct wop {
  struct engine_op op;
  struct wstate *ws;
  struct dpiece *dc;             /* direct: the locked piece it belongs to, else NULL */
  int fd;
  uint8_t *buf;
  uint64_t off, len, done;
  bool fixed;
};

static void wop_submit(struct wop *w);
static void dpiece_hold(struct dpiece *dc);
static void dpiece_put(struct dpiece *dc, int res);

static void write_finish(struct wstate *ws);

static void fua_sync_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct wstate *ws = container_of(op, struct wstate, sync_op);
  (void)flags;
  if (res < 0 && !ws->err)
    ws->err = res;
  ws->synced = true;
  write_finish(ws);
}

/* Reply to the write; a FUA write on an export whose file system ignores
 * RWF_DSYNC on asynchronous O_DIRECT writes (fua_by_sync) is first made
 * durable with an fdatasync of the O_DIRECT fd. */
static void write_finish(struct wstate *ws)
{
  struct request *r = ws->r;
  if (!ws->err && !ws->synced && (r->hdr.flags & NBD_CMD_FLAG_FUA) && r->export->fua_by_sync
      && r->export->direct_fd >= 0) {
    struct io_uring_sqe *sqe = engine_sqe(r->eng, &ws->sync_op);
    ws->sync_op.cb = fua_sync_cb;
    io_uring_prep_fsync(sqe, r->export->direct_fd, IORING_FSYNC_DATASYNC);
    return;
  }
  request_reply_status(r, proto_errno_to_nbd(ws->err), errmsg(ws->err));
}

/* One of the request's writes (or direct pieces) ended with res. */
static void ws_put(struct wstate *ws, int res)
{
  if (res < 0 && !ws->err)
    ws->err = res;
  dp_times_disk(&ws->r->times);
  if (--ws->pending == 0 && ws->aborted)
    request_finish(ws->r);
  else if (ws->pending == 0 && ws->all)
    write_finish(ws);
}

static void wop_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct wop *w = container_of(op, struct wop, op);
  struct wstate *ws = w->ws;
  (void)flags;

  if (res == -EINTR || res == -EAGAIN) {
    wop_submit(w);
    return;
  }
  if (res > 0) {
    w->done += (unsigned)res;
    if (w->done < w->len) {
      wop_submit(w);
      return;
    }
    res = 0;
  } else if (res == 0) {
    res = -EIO;
  }
  struct dpiece *dc = w->dc;
  free(w);
  if (dc)
    dpiece_put(dc, res);
  else
    ws_put(ws, res);
}

static void wop_submit(struct wop *w)
{
  struct request *r = w->ws->r;
  struct io_uring_sqe *sqe = engine_sqe(r->eng, &w->op);
  unsigned len = (unsigned)(w->len - w->done);

  w->op.cb = wop_cb;
  if (w->fixed)
    io_uring_prep_write_fixed(sqe, w->fd, w->buf + w->done, len, w->off + w->done, 0);
  else
    io_uring_prep_write(sqe, w->fd, w->buf + w->done, len, w->off + w->done);
  if (r->hdr.flags & NBD_CMD_FLAG_FUA)
    sqe->rw_flags = RWF_DSYNC;
  if (r->export->backend->io_async)
    sqe->flags |= IOSQE_ASYNC;
}

/* Write payload bytes [a, b) (request-relative) through fd, as part of
 * direct piece dc (or of the request itself when dc is NULL). */
static void write_piece(struct wstate *ws, struct dpiece *dc, int fd, uint64_t a, uint64_t b, bool fixed)
{
  struct request *r = ws->r;
  struct wop *w;

  if (b <= a)
    return;
  if (!(w = calloc(1, sizeof *w))) {
    if (!ws->err)
      ws->err = -ENOMEM;
    return;
  }
  w->ws = ws;
  w->dc = dc;
  w->fd = fd;
  w->buf = (uint8_t *)r->buf + a;
  w->off = r->hdr.offset + a;
  w->len = b - a;
  w->fixed = fixed;
  if (dc)
    dpiece_hold(dc);
  else
    ws->pending++;
  if (!r->times.disk_begin)
    r->times.disk_begin = dp_now();
  wop_submit(w);
}

/* ---- direct writes: locked pieces, unaligned edges read-modify-written ----
 *
 * The page cache of a direct export stays out of the way: an unaligned edge
 * of a write is merged into its 4 KiB block through a bounce block (O_DIRECT
 * read of the block, the payload bytes copied in, O_DIRECT write of the
 * block), never written through the buffered fd (a buffered write racing an
 * O_DIRECT write of the same block loses one of them when the page cache is
 * written back; the kernel logs "Page cache invalidation failure").  While
 * an edge is between its read and its write, nothing else may write its
 * block, so every piece of a direct write (unaligned head, aligned middle,
 * unaligned tail of each chunk) locks the blocks it touches in the export's
 * range lock (rangelock.h): an edge its block, exclusive; the middle its
 * whole blocks, shared.  Only conflicting locks wait, first come first
 * served.  A piece's lock is taken when its payload is in memory and held
 * only across its own disk I/O, so no lock ever waits on the network or on
 * a buffer. */

struct dpiece {
  struct rl_lock lk;             /* the blocks [a, b) touches; exclusive for an edge */
  struct wstate *ws;
  uint64_t a, b;                 /* payload bytes (request-relative) */
  unsigned pending;              /* its write or read-modify-write in flight, + 1 while issuing */
  int err;
  struct engine_op merged_op;    /* merged into another edge's read-modify-write: its end */
};

/* Edges waiting for the block an edge is merging into, taken along with it:
 * a block that many small writes hit (a journal, a bitmap) costs one
 * read and one write per batch instead of per write. */
#define RMW_MERGE_MAX 64
static const char rmw_key;       /* merge_key of edge locks */

/* One unaligned edge: the block at pos, payload bytes [a, b) go into it. */
struct rmw {
  struct engine_op op;
  struct dpiece *dc;
  uint8_t *blk;
  uint64_t pos, a, b;
  unsigned done;
  bool writing, fua;
  size_t nmerged;
  struct rl_lock *merged[RMW_MERGE_MAX];
};

static void dpiece_hold(struct dpiece *dc)
{
  dc->pending++;
}

static void dpiece_put(struct dpiece *dc, int res)
{
  struct wstate *ws = dc->ws;
  if (res < 0 && !dc->err)
    dc->err = res;
  dp_times_disk(&ws->r->times);
  if (--dc->pending)
    return;
  rangelock_unlock(ws->r->export->wlock, &dc->lk);
  res = dc->err;
  free(dc);
  ws_put(ws, res);
}

static void rmw_submit(struct rmw *m);

/* A piece whose edge another one merged into its block: done, with res (on
 * the piece's own loop, where its lock is released). */
static void dpiece_merged_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct dpiece *x = container_of(op, struct dpiece, merged_op);
  (void)flags;
  dpiece_hold(x);
  dpiece_put(x, res);
}

/* The block is read and m's own bytes are in: add the bytes of the edges
 * queued right behind it for the same block, in their order (a later
 * write's bytes land over an earlier one's, as if each had its turn).
 * Their payloads lie complete in their requests' buffers, which live until
 * their pieces are done; the lock table's mutex orders those writes before
 * these reads. */
static void rmw_merge(struct rmw *m)
{
  struct request *r = m->dc->ws->r;
  struct dp_stats *s = stats(r);

  m->fua = r->hdr.flags & NBD_CMD_FLAG_FUA;
  m->nmerged = rangelock_take_same(r->export->wlock, &m->dc->lk, m->merged, RMW_MERGE_MAX);
  for (size_t i = 0; i < m->nmerged; i++) {
    struct dpiece *x = container_of(m->merged[i], struct dpiece, lk);
    struct request *xr = x->ws->r;
    memcpy(m->blk + (xr->hdr.offset + x->a - m->pos), (uint8_t *)xr->buf + x->a, x->b - x->a);
    if (xr->hdr.flags & NBD_CMD_FLAG_FUA)
      m->fua = true;
    stat_add(&s->bounce_bytes, x->b - x->a);
    stat_add(&s->copied_write, x->b - x->a);
    stat_add(&s->memcpy_bytes, x->b - x->a);
  }
  if (m->nmerged)
    stat_add(&s->rmw_merged, m->nmerged);
}

static void rmw_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct rmw *m = container_of(op, struct rmw, op);
  struct request *r = m->dc->ws->r;
  (void)flags;

  if (res == -EINTR || res == -EAGAIN) {
    rmw_submit(m);
    return;
  }
  if (res > 0) {
    m->done += (unsigned)res;
    if (m->done < A) {   /* short: the rest (the block lies inside the file) */
      rmw_submit(m);
      return;
    }
    if (!m->writing) {   /* read: patch the payload in, then write the block */
      memcpy(m->blk + (r->hdr.offset + m->a - m->pos), (uint8_t *)r->buf + m->a, m->b - m->a);
      rmw_merge(m);
      m->writing = true;
      m->done = 0;
      rmw_submit(m);
      return;
    }
    res = 0;
  } else if (res == 0) {
    res = -EIO;
  }
  struct dpiece *dc = m->dc;
  for (size_t i = 0; i < m->nmerged; i++) {
    struct dpiece *x = container_of(m->merged[i], struct dpiece, lk);
    x->merged_op.cb = dpiece_merged_cb;
    if (x->lk.eng == r->eng)
      engine_defer(r->eng, &x->merged_op, res);
    else
      engine_post(x->lk.eng, &x->merged_op, res);
  }
  dp_buffer_put(r->eng, m->blk, A);
  free(m);
  dpiece_put(dc, res);
}

static void rmw_submit(struct rmw *m)
{
  struct request *r = m->dc->ws->r;
  struct io_uring_sqe *sqe = engine_sqe(r->eng, &m->op);
  int fd = r->export->direct_fd;

  m->op.cb = rmw_cb;
  if (!m->writing) {
    io_uring_prep_read(sqe, fd, m->blk + m->done, A - m->done, m->pos + m->done);
  } else {
    io_uring_prep_write(sqe, fd, m->blk + m->done, A - m->done, m->pos + m->done);
    if (m->fua)
      sqe->rw_flags = RWF_DSYNC;
  }
  if (r->export->backend->io_async)
    sqe->flags |= IOSQE_ASYNC;
}

/* Merge payload bytes [a, b) into the block at file offset pos. */
static void rmw_start(struct dpiece *dc, uint64_t pos, uint64_t a, uint64_t b)
{
  struct wstate *ws = dc->ws;
  struct request *r = ws->r;
  struct dp_export *ex = r->export;
  struct dp_stats *s = stats(r);
  struct rmw *m;

  stat_add(&s->bounce_bytes, b - a);
  stat_add(&s->copied_write, b - a);
  if (pos + A > ex->backend->size) {
    /* The file's last block, partly beyond its end: an O_DIRECT write of
     * the whole block would grow the file.  These bytes go through the page
     * cache, still inside the exclusive lock: nothing writes the block
     * meanwhile, and the next O_DIRECT access of it flushes the page first. */
    write_piece(ws, dc, ex->backend->fd, a, b, false);
    return;
  }
  stat_add(&s->memcpy_bytes, b - a);
  if (!(m = calloc(1, sizeof *m)) || !(m->blk = dp_buffer_get(r->eng, A, true, s))) {
    free(m);
    if (!dc->err)
      dc->err = -ENOMEM;
    return;
  }
  m->dc = dc;
  m->pos = pos;
  m->a = a;
  m->b = b;
  dpiece_hold(dc);
  rmw_submit(m);
}

/* The piece's blocks are locked: an edge is merged into its block, the
 * aligned middle is written straight from the payload. */
static void dpiece_start(struct dpiece *dc)
{
  struct wstate *ws = dc->ws;
  struct request *r = ws->r;
  struct dp_worker *dw = r->eng->dp;
  bool fixed = dw && dw->arena_ok && dw->arena.registered && r->buf_base && arena_owns(&dw->arena, r->buf_base);

  dpiece_hold(dc);   /* until everything is issued */
  if (dc->lk.excl)
    rmw_start(dc, dc->lk.start, dc->a, dc->b);
  else
    write_piece(ws, dc, r->export->direct_fd, dc->a, dc->b, fixed);
  dpiece_put(dc, 0);
}

static void dpiece_granted(struct rl_lock *l)
{
  dpiece_start(container_of(l, struct dpiece, lk));
}

/* Lock the blocks of payload bytes [a, b) (an edge: its one block,
 * exclusive; a middle of whole blocks: shared), then write them. */
static void dpiece_new(struct wstate *ws, uint64_t a, uint64_t b, bool edge)
{
  struct request *r = ws->r;
  uint64_t as = r->hdr.offset + a, ae = r->hdr.offset + b;
  struct dpiece *dc;

  if (b <= a)
    return;
  if (!(dc = calloc(1, sizeof *dc))) {
    if (!ws->err)
      ws->err = -ENOMEM;
    return;
  }
  dc->ws = ws;
  dc->a = a;
  dc->b = b;
  dc->lk.start = as & ~(uint64_t)(A - 1);
  dc->lk.end = (ae + A - 1) & ~(uint64_t)(A - 1);
  dc->lk.excl = edge;
  dc->lk.merge_key = edge && dc->lk.end <= r->export->backend->size ? &rmw_key : NULL;
  dc->lk.eng = r->eng;
  dc->lk.granted = dpiece_granted;
  ws->pending++;
  if (!r->times.disk_begin)
    r->times.disk_begin = dp_now();
  if (rangelock_lock(r->export->wlock, &dc->lk))
    dpiece_start(dc);
  else
    stat_add(&stats(r)->range_lock_waits, 1);
}

/* Payload bytes [a, b) are in memory: an unaligned head, the aligned
 * middle and an unaligned tail each lock and go on their own, so a write
 * waits only for writes of the very blocks it touches (neighbouring
 * unaligned writes share a block at most at each end: no long chains). */
static void direct_write_range(struct wstate *ws, uint64_t a, uint64_t b)
{
  uint64_t o = ws->r->hdr.offset, p = o + a, ae = o + b;
  uint64_t mid_end = ae & ~(uint64_t)(A - 1);

  if (p & (A - 1)) {
    uint64_t stop = (p & ~(uint64_t)(A - 1)) + A;
    if (stop > ae)
      stop = ae;
    dpiece_new(ws, p - o, stop - o, true);
    p = stop;
  }
  if (mid_end > p) {
    dpiece_new(ws, p - o, mid_end - o, false);
    p = mid_end;
  }
  if (p < ae)
    dpiece_new(ws, p - o, ae - o, true);
}

/* Issue the writes of payload bytes [a, b). */
static void write_range(struct wstate *ws, uint64_t a, uint64_t b)
{
  struct request *r = ws->r;
  struct dp_export *ex = r->export;
  struct dp_stats *s = stats(r);

  stat_add(&s->chunks, 1);
  if (is_direct(r)) {
    direct_write_range(ws, a, b);
    return;
  }
  stat_add(&s->copied_write, b - a);   /* write(2) copies into the page cache */
  write_piece(ws, NULL, ex->backend->fd, a, b, false);
}

static struct wstate *wstate(struct request *r)
{
  struct wstate *ws = r->dp_priv;
  if (!ws && (ws = calloc(1, sizeof *ws))) {
    ws->r = r;
    r->dp_priv = ws;
  }
  return ws;
}

static void stream_payload_progress(struct request *r, uint64_t got)
{
  struct wstate *ws = wstate(r);
  uint64_t o = r->hdr.offset, csize = r->export->chunk;

  if (!ws)
    return;   /* dp_execute() then reports ENOMEM (stream_write) */
  for (;;) {
    uint64_t next = ((o + ws->issued) / csize + 1) * csize - o;
    if (next > r->hdr.length || next > got)
      return;
    write_range(ws, ws->issued, next);
    ws->issued = next;
  }
}

static bool stream_payload_abort(struct request *r)
{
  struct wstate *ws = r->dp_priv;
  if (!ws || ws->pending == 0)
    return false;
  ws->aborted = true;
  return true;
}

static void stream_write(const struct datapath *self, struct request *r)
{
  struct wstate *ws = wstate(r);

  (void)self;

  if (!ws) {
    request_reply_status(r, NBD_ENOMEM, "out of memory");
    return;
  }
  stat_add(&stats(r)->bytes_written, r->hdr.length);
  stat_add(&stats(r)->bytes_path[path_kind(r)], r->hdr.length);
  write_range(ws, ws->issued, r->hdr.length);
  ws->issued = r->hdr.length;
  ws->all = true;
  if (ws->pending == 0) {
    if (r->hdr.length == 0)
      dp_times_disk(&r->times);
    write_finish(ws);
  }
}

/* ---- buffers for WRITE payloads (direct: from the arena) ---- */

static void *direct_alloc_buffer(struct request *r, size_t len)
{
  struct dp_worker *dw = dp_worker_get(r->eng);
  struct arena *a = dw ? dp_arena(dw) : NULL;
  size_t lead = r->hdr.offset & (A - 1);
  size_t memlen = (lead + len + A - 1) & ~(size_t)(A - 1);
  void *base = NULL;

  bool queued;

  /* The payload is placed so that file-aligned offsets are memory-aligned.
   * Arena only within the connection's share and never waiting (the client
   * is already sending); other memory is faulted in only as the payload
   * arrives, so a WRITE header alone takes no memory that others need. */
  if (a && (base = dp_share_arena_get(dw, r->share, NULL, memlen, &queued))) {
    stat_add(&stats(r)->arena_allocs, 1);
  } else {
    stat_add(&stats(r)->arena_fallbacks, 1);
    if (!(base = dp_buffer_get(r->eng, memlen, false, stats(r))))
      return NULL;
  }
  r->buf_base = base;
  r->buf_alloc = memlen;
  return (uint8_t *)base + lead;
}

static void direct_free_buffer(struct request *r, void *buf)
{
  struct dp_worker *dw = r->eng->dp;
  (void)buf;
  if (dw && dw->arena_ok && arena_owns(&dw->arena, r->buf_base))
    dp_share_arena_put(dw, r->share, r->buf_base, r->buf_alloc);
  else
    dp_buffer_put(r->eng, r->buf_base, r->buf_alloc);
}

const struct datapath datapath_splice = {
  .name = "splice",
  .read = stream_read,
  .write = stream_write,
  .fallback = &datapath_copy,
  .payload_progress = stream_payload_progress,
  .payload_abort = stream_payload_abort,
  .kind = DP_SPLICE,
  .own_read_buffers = true,
};

const struct datapath datapath_direct = {
  .name = "direct",
  .read = stream_read,
  .write = stream_write,
  .fallback = &datapath_copy,
  .alloc_buffer = direct_alloc_buffer,
  .free_buffer = direct_free_buffer,
  .payload_progress = stream_payload_progress,
  .payload_abort = stream_payload_abort,
  .kind = DP_DIRECT,
  .own_read_buffers = true,
  .range_locked = true,
};
