/* receive.c: the reply state machine of one connection.  Headers and small chunk
 * payloads are read exactly (never past the header, so payload bytes are never
 * read into a library buffer); read payload goes by readv straight into the
 * slice of the caller's iovecs that the chunk's offset names, in any order;
 * for shunt_aio_pread_pipe() the in-order part is spliced into the caller's
 * pipe instead.  One readv may also take what the stream must hold next (see
 * struct lookahead), so a simple read reply costs one system call. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "client/client.h"
#include "client/tls.h"
#include "common/wire.h"
#include "proto/nbd-protocol.h"

static void set_error(struct sh_req *r, int err, const char *msg, size_t msglen)
{
  if (r->error)
    return; /* keep the first */
  r->error = err;
  if (msg && msglen) {
    r->errmsg = strndup(msg, msglen);
    r->errmsg_server = true;
  }
}

static void set_local_error(struct sh_req *r, int err, const char *msg)
{
  if (r->error)
    return;
  r->error = err;
  r->errmsg = strdup(msg);
}

static void start_header(struct sh_conn *c)
{
  c->rs = RS_HDR;
  c->hgot = 0;
  c->hneed = proto_reply_min_header(c->extended);
  c->cur = NULL;
}

static void start_meta(struct sh_conn *c, size_t need)
{
  c->rs = RS_META;
  c->mgot = 0;
  c->mneed = need;
}

/* The current chunk is fully consumed.  A successful structured read must have
 * been covered entirely (spec, "Structured replies": the server MUST send
 * enough data chunks to cover the entire region); chunks never overlap (they
 * were checked), so counting their bytes is enough. */
static int chunk_done(struct shunt_handle *h, struct sh_conn *c, const char **why)
{
  struct sh_req *r = c->cur;
  bool last = !c->rep.chunk || (c->rep.flags & NBD_REPLY_FLAG_DONE);
  start_header(c);
  if (!last)
    return 0;
  if (!r->error && r->cmd == NBD_CMD_READ && c->rep.chunk && r->covered != r->length) {
    *why = "the server's chunks did not cover the whole read";
    return -EPROTO;
  }
  sh_complete(h, r);
  return 0;
}

/* Claim [rel, rel+len) of read r for a content chunk (or one byte for an error
 * offset).  Spec: content chunks MUST NOT overlap an earlier content or error
 * chunk of the same reply; one that does is a protocol violation, caught before
 * its bytes are written over ones already delivered. */
static int claim(struct sh_req *r, uint64_t rel, uint64_t len, const char *overlap,
                 const char **why)
{
  int e = sh_cover_claim(&r->cover, r->length, rel, len);
  if (e == -EEXIST) {
    *why = overlap;
    return -EPROTO;
  }
  if (e < 0) /* cannot check this reply: fail the read rather than trust it */
    set_local_error(r, e, "out of memory tracking the chunks of the read");
  return 0;
}

static int header_done(struct shunt_handle *h, struct sh_conn *c, const char **why)
{
  struct sh_req *r = sh_lookup(h, c->rep.cookie);
  if (!r || r->conn != (int)(c - h->conns)) {
    *why = "reply for a request that is not in flight";
    return -EPROTO;
  }
  if (r->queued) {
    /* Its header went out but not all of it: a reply now is a protocol error
     * (and completing it would free a request still on the send queue). */
    *why = "reply to a request that was not fully sent";
    return -EPROTO;
  }
  c->cur = r;
  if (!c->rep.chunk) {
    if (c->rep.error) {
      set_error(r, -proto_nbd_to_errno(c->rep.error), NULL, 0);
      return chunk_done(h, c, why);
    } else if (r->cmd == NBD_CMD_READ) {
      c->rs = RS_DATA;
      c->data_rel = 0;
      c->left = r->length;
      r->covered = r->length;
    } else {
      return chunk_done(h, c, why);
    }
    return 0;
  }
  h->stats.chunks++;
  if (proto_chunk_check(&c->rep, r->cmd, c->extended, r->offset, r->length, why) < 0)
    return -EPROTO;
  switch (c->rep.type) {
  case NBD_REPLY_TYPE_NONE:
    return chunk_done(h, c, why);
  case NBD_REPLY_TYPE_OFFSET_DATA:
    start_meta(c, sizeof(struct nbd_chunk_offset_data));
    break;
  case NBD_REPLY_TYPE_OFFSET_HOLE:
    start_meta(c, sizeof(struct nbd_chunk_offset_hole));
    break;
  case NBD_REPLY_TYPE_BLOCK_STATUS:
  case NBD_REPLY_TYPE_BLOCK_STATUS_EXT:
    c->bs_ext = c->rep.type == NBD_REPLY_TYPE_BLOCK_STATUS_EXT;
    if (c->rep.length < proto_bs_head_size(c->bs_ext)) {
      *why = "block status chunk too short";
      return -EPROTO;
    }
    start_meta(c, proto_bs_head_size(c->bs_ext));
    break;
  default: /* an error chunk, length already bounded by proto_chunk_check */
    start_meta(c, (size_t)c->rep.length);
    break;
  }
  return 0;
}

static int meta_done(struct shunt_handle *h, struct sh_conn *c, const char **why)
{
  struct sh_req *r = c->cur;
  uint64_t rel, len;
  switch (c->rep.type) {
  case NBD_REPLY_TYPE_OFFSET_DATA:
    if (proto_chunk_data_decode(c->mbuf, c->rep.length, r->offset, r->length, &rel, &len) < 0) {
      *why = "OFFSET_DATA chunk outside the request";
      return -EPROTO;
    }
    if (claim(r, rel, len, "OFFSET_DATA chunk overlaps an earlier chunk of the read", why) < 0)
      return -EPROTO;
    c->rs = RS_DATA;
    c->data_rel = rel;
    c->left = len;
    r->covered += len;
    return 0;
  case NBD_REPLY_TYPE_OFFSET_HOLE: {
    if (proto_chunk_hole_decode(c->mbuf, c->rep.length, r->offset, r->length, &rel, &len) < 0) {
      *why = "OFFSET_HOLE chunk outside the request";
      return -EPROTO;
    }
    if (claim(r, rel, len, "OFFSET_HOLE chunk overlaps an earlier chunk of the read", why) < 0)
      return -EPROTO;
    if (r->pipe_fd >= 0 && rel + len > r->pipe_from + r->pipe_len)
      r->pipe_done = true; /* zeroes go to the iovecs; the pipe ends here */
    struct iovec v[64];
    while (len) {
      int n = sh_iov_slice(r->iov, r->iovcnt, rel, len, v, 64);
      for (int i = 0; i < n; i++) {
        memset(v[i].iov_base, 0, v[i].iov_len);
        rel += v[i].iov_len;
        len -= v[i].iov_len;
        r->covered += v[i].iov_len;
        h->stats.hole_bytes += v[i].iov_len;
      }
    }
    return chunk_done(h, c, why);
  }
  case NBD_REPLY_TYPE_BLOCK_STATUS:
  case NBD_REPLY_TYPE_BLOCK_STATUS_EXT: {
    uint32_t ctx;
    uint64_t ndesc;
    if (proto_bs_head_decode(c->mbuf, c->rep.length, c->bs_ext, &ctx, &ndesc) < 0) {
      *why = "malformed block status chunk";
      return -EPROTO;
    }
    /* Context ids are per connection.  Spec: one chunk per context, each
     * starting at the request's offset. */
    c->bs_mine = false;
    for (unsigned i = 0; i < h->nmetas && !c->bs_mine; i++)
      if (c->meta_ok[i] && c->meta_ids[i] == ctx) {
        c->bs_mine = true;
        c->bs_ctx = i;
      }
    r->bs_pos = r->offset;
    c->rs = RS_BS_DESC;
    c->left = ndesc * proto_bs_desc_size(c->bs_ext);
    c->mgot = 0;
    return 0;
  }
  default: {
    struct proto_chunk_error e;
    if (proto_chunk_error_decode(c->mbuf, c->mneed, c->rep.type, &e) < 0) {
      *why = "malformed error chunk";
      return -EPROTO;
    }
    if (e.has_offset && r->cmd == NBD_CMD_READ) {
      /* Spec (NBD_REPLY_TYPE_ERROR_OFFSET): the offset MUST lie within the
       * request.  It may fall inside an earlier content chunk (that data is
       * valid up to it); a later content chunk must not cover it. */
      if (e.offset < r->offset || e.offset - r->offset >= r->length) {
        *why = "error chunk offset outside the request";
        return -EPROTO;
      }
      uint64_t at = e.offset - r->offset;
      if (!sh_cover_has(&r->cover, at)) /* -ENOMEM only: the read fails anyway */
        (void)sh_cover_claim(&r->cover, r->length, at, 1);
    }
    set_error(r, -proto_nbd_to_errno(e.error), e.msg, e.msglen);
    return chunk_done(h, c, why);
  }
  }
}

/* Hand a batch of whole descriptors in mbuf to the caller's extent callback. */
static int bs_batch(struct shunt_handle *h, struct sh_conn *c, size_t bytes, const char **why)
{
  struct sh_req *r = c->cur;
  size_t ds = proto_bs_desc_size(c->bs_ext);
  for (size_t i = 0; i + ds <= bytes; i += ds) {
    uint64_t len;
    uint32_t flags;
    if (proto_bs_desc_decode(c->mbuf + i, c->bs_ext, &len, &flags) < 0) {
      *why = "block status descriptor with zero length or 64-bit status";
      return -EPROTO;
    }
    if (!c->bs_mine || r->error)
      continue;
    if (r->bs_pos >= r->offset + r->length) {
      /* Spec: only the final extent may go past the requested length. */
      *why = "block status extents beyond the requested range";
      return -EPROTO;
    }
    if (r->extent)
      r->extent(r->user, h->metas[c->bs_ctx], r->bs_pos, len, flags);
    r->bs_pos = len > UINT64_MAX - r->bs_pos ? UINT64_MAX : r->bs_pos + len;
  }
  return 0;
}

/* The staged path (opt.copy_reads), kept only to compare against and to prove
 * the counter: payload goes into a library buffer, then is copied out. */
static ssize_t receive_by_copy(struct shunt_handle *h, struct sh_conn *c)
{
  unsigned char stage[16384];
  struct iovec sv = { stage, c->left < sizeof stage ? (size_t)c->left : sizeof stage };
  ssize_t n = sh_transport_readv(&c->t, &sv, 1);
  if (n <= 0)
    return n;
  struct iovec v[64];
  uint64_t done = 0;
  while (done < (uint64_t)n) {
    int k = sh_iov_slice(c->cur->iov, c->cur->iovcnt, c->data_rel + done, (uint64_t)n - done, v, 64);
    for (int i = 0; i < k; i++) {
      memcpy(v[i].iov_base, stage + done, v[i].iov_len);
      done += v[i].iov_len;
    }
  }
  h->stats.payload_bytes_copied += (uint64_t)n;
  return n;
}

/* Splice read payload at the pipe's front from the socket into q's pipe.
 * Returns bytes, -EAGAIN (nothing to read), -EMSGSIZE (the pipe is full: the
 * request stops using it) or -errno. */
static ssize_t receive_to_pipe(struct sh_conn *c, struct sh_req *q)
{
  ssize_t n;
  do
    n = splice(c->t.fd, NULL, q->pipe_fd, NULL, c->left, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
  while (n < 0 && errno == EINTR);
  if (n > 0) {
    q->pipe_len += (uint64_t)n;
    return n;
  }
  if (n == 0)
    return 0;
  int e = errno == EWOULDBLOCK ? EAGAIN : errno;
  int avail = 0;
  if (e == EAGAIN && ioctl(c->t.fd, FIONREAD, &avail) == 0 && avail > 0) {
    q->pipe_done = true; /* the socket has data, so the pipe had no room */
    return -EMSGSIZE;
  }
  return -e;
}

/* What one readv may take beyond the current item, so that a reply costs one
 * system call rather than two or four.  Only bytes the stream must hold next
 * are asked for, so nothing past them is ever read into a library buffer:
 * after a chunk ends comes a reply header, at least its minimum size (into
 * labuf, then moved to hbuf); once the first 16 bytes of a structured (not
 * extended) header name the chunk's type, its last 4 bytes are followed by the
 * fixed-size payload of an OFFSET_DATA (8-byte offset) or OFFSET_HOLE (offset
 * and length, 12 bytes, ending the chunk) into mbuf.  A chunk whose length
 * does not match its type drops the connection anyway. */
struct lookahead {
  size_t meta;               /* bytes into mbuf (0: none) */
  bool hdr;                  /* then the next reply header into labuf */
};
/* RS_BS_DESC: the bytes of the batch of whole descriptors being read into mbuf. */
static size_t bs_want(const struct sh_conn *c)
{
  size_t ds = proto_bs_desc_size(c->bs_ext);
  size_t room = sizeof c->mbuf / ds * ds;
  return c->left < room ? (size_t)c->left : room;
}

/* Account n bytes that arrived for the current state; returns 0 or -EPROTO. */
static int consume(struct shunt_handle *h, struct sh_conn *c, size_t n, const char **why)
{
  switch (c->rs) {
  case RS_HDR: {
    c->hgot += n;
    if (c->hgot < c->hneed)
      return 0;
    size_t need;
    int d = proto_reply_decode(c->hbuf, c->hgot, c->extended, h->neg.structured, &c->rep, &need);
    if (d < 0) {
      *why = "bad reply magic";
      return -EPROTO;
    }
    if (d == 1) {
      c->hneed = need;
      return 0;
    }
    return header_done(h, c, why);
  }
  case RS_META:
    c->mgot += n;
    return c->mgot == c->mneed ? meta_done(h, c, why) : 0;
  case RS_BS_DESC: {
    size_t want = bs_want(c);
    c->mgot += n;
    if (c->mgot < want)
      return 0;
    int r = bs_batch(h, c, want, why);
    c->left -= want;
    c->mgot = 0;
    if (r == 0 && c->left == 0)
      r = chunk_done(h, c, why);
    return r;
  }
  case RS_DATA:
    c->data_rel += n;
    c->left -= n;
    return c->left == 0 ? chunk_done(h, c, why) : 0;
  }
  return 0;
}

/* The first 16 bytes of a structured (not extended) header are in: what the
 * readv of its last bytes may also take. */
static struct lookahead header_lookahead(const struct sh_conn *c)
{
  struct lookahead la = { 0, false };
  if (c->extended || c->hgot < 8 || c->hneed != sizeof(struct nbd_structured_reply))
    return la;
  if (get_be32(c->hbuf) != NBD_STRUCTURED_REPLY_MAGIC)
    return la;
  switch (get_be16(c->hbuf + 6)) {
  case NBD_REPLY_TYPE_OFFSET_DATA:
    la.meta = sizeof(struct nbd_chunk_offset_data);
    break;
  case NBD_REPLY_TYPE_OFFSET_HOLE:
    la.meta = sizeof(struct nbd_chunk_offset_hole);
    la.hdr = true;
    break;
  case NBD_REPLY_TYPE_NONE:
    la.hdr = true;
    break;
  }
  return la;
}

/* Hand the extra bytes a readv took past the current item to the states that
 * follow (see struct lookahead); they must be the ones that were expected. */
static int consume_lookahead(struct shunt_handle *h, struct sh_conn *c, struct lookahead la,
                             size_t extra, const char **why)
{
  if (la.meta && extra) {
    size_t m = extra < la.meta ? extra : la.meta;
    if (c->rs != RS_META || c->mgot != 0 || c->mneed != la.meta)
      goto misfit;
    int r = consume(h, c, m, why);
    if (r < 0)
      return r;
    extra -= m;
  }
  if (!extra)
    return 0;
  if (!la.hdr || c->rs != RS_HDR || c->hgot != 0 || extra > c->hneed)
    goto misfit;
  memcpy(c->hbuf, c->labuf, extra);
  return consume(h, c, extra, why);
misfit:
  *why = "reply bytes read ahead do not fit the reply";
  return -EPROTO;
}

int sh_conn_receive(struct shunt_handle *h, struct sh_conn *c, const char **why)
{
  for (;;) {
    ssize_t n;
    struct iovec v[66];
    int k = 0;
    size_t main_len = 0, asked = 0;
    struct lookahead la = { 0, false };
    size_t hmin = proto_reply_min_header(c->extended);
    if (c->rs == RS_HDR) {
      v[k++] = (struct iovec){ c->hbuf + c->hgot, c->hneed - c->hgot };
      main_len = c->hneed - c->hgot;
      la = header_lookahead(c);
      if (la.meta)
        v[k++] = (struct iovec){ c->mbuf, la.meta };
      if (la.hdr)
        v[k++] = (struct iovec){ c->labuf, hmin };
      asked = main_len + la.meta + (la.hdr ? hmin : 0);
      n = sh_transport_readv(&c->t, v, k);
    } else if (c->rs == RS_META) {
      v[k++] = (struct iovec){ c->mbuf + c->mgot, c->mneed - c->mgot };
      main_len = c->mneed - c->mgot;
      /* A hole or error chunk ends with this payload. */
      la.hdr = c->rep.type != NBD_REPLY_TYPE_OFFSET_DATA &&
               c->rep.type != NBD_REPLY_TYPE_BLOCK_STATUS &&
               c->rep.type != NBD_REPLY_TYPE_BLOCK_STATUS_EXT;
      if (la.hdr)
        v[k++] = (struct iovec){ c->labuf, hmin };
      asked = main_len + (la.hdr ? hmin : 0);
      n = sh_transport_readv(&c->t, v, k);
    } else if (c->rs == RS_BS_DESC) {
      struct iovec bv = { c->mbuf + c->mgot, bs_want(c) - c->mgot };
      asked = bv.iov_len;
      n = sh_transport_readv(&c->t, &bv, 1);
    } else if (h->opt.copy_reads) {
      n = receive_by_copy(h, c);
    } else {
      struct sh_req *q = c->cur;
      uint64_t want = c->left;
      if (q->pipe_fd >= 0 && !q->pipe_done) {
        uint64_t front = q->pipe_from + q->pipe_len;
        if (c->data_rel == front) {
          n = receive_to_pipe(c, q);
          h->stats.receive_calls++;
          if (n == -EMSGSIZE)
            continue; /* the pipe is full: the rest goes to the iovecs */
          goto got;
        }
        if (c->data_rel < q->pipe_from && q->pipe_from - c->data_rel < want)
          want = q->pipe_from - c->data_rel; /* up to where the pipe starts */
        else if (c->data_rel > front)
          q->pipe_done = true; /* out of order: the pipe ends at front */
        else if (c->data_rel >= q->pipe_from && front - c->data_rel < want)
          want = front - c->data_rel; /* resent after a reconnect: already piped */
      }
      k = sh_iov_slice(q->iov, q->iovcnt, c->data_rel, want, v, 64);
      for (int i = 0; i < k; i++)
        main_len += v[i].iov_len;
      if (main_len == c->left) {
        /* The chunk ends in this read: the next reply header may come with it. */
        v[k++] = (struct iovec){ c->labuf, hmin };
        la.hdr = true;
      }
      asked = main_len + (la.hdr ? hmin : 0);
      n = sh_transport_readv(&c->t, v, k);
    }
    h->stats.receive_calls++;
  got:
    if (n == -EAGAIN || n == -EWOULDBLOCK)
      return 0;
    if (n < 0) {
      *why = "receive failed";
      return (int)n;
    }
    if (n == 0) {
      *why = "server closed the connection";
      return -ECONNRESET;
    }
    /* A plain socket's readv returns less than asked only when its receive
     * queue is empty: the readv that would say EAGAIN is skipped (poll() says
     * when more comes).  Not over TLS: the library may hold decrypted bytes. */
    bool drained = (size_t)n < asked && !sh_tls_active(c->t.tls);
    size_t extra = 0;
    if ((size_t)n > main_len && (la.meta || la.hdr)) {
      extra = (size_t)n - main_len;
      n = (ssize_t)main_len;
    }
    int r = consume(h, c, (size_t)n, why);
    if (r == 0 && extra)
      r = consume_lookahead(h, c, la, extra, why);
    if (r < 0 || drained)
      return r;
  }
}
