/* submit.c: libshunt's request side: checking and queueing requests, spreading
 * them over connections, gathering queued headers and write payloads into
 * writev batches (payload sent from the caller's buffers), and completion. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>

#include "client/client.h"
#include "proto/nbd-protocol.h"

static const uint16_t cmd_of[] = {
  [SHUNT_READ] = NBD_CMD_READ, [SHUNT_WRITE] = NBD_CMD_WRITE, [SHUNT_FLUSH] = NBD_CMD_FLUSH,
  [SHUNT_TRIM] = NBD_CMD_TRIM, [SHUNT_ZERO] = NBD_CMD_WRITE_ZEROES,
  [SHUNT_BLOCK_STATUS] = NBD_CMD_BLOCK_STATUS, [SHUNT_CACHE] = NBD_CMD_CACHE,
};

static enum shunt_cmd shunt_cmd_of(uint16_t cmd)
{
  for (unsigned i = 0; i < sizeof cmd_of / sizeof cmd_of[0]; i++)
    if (cmd_of[i] == cmd)
      return (enum shunt_cmd)i;
  return SHUNT_READ;
}

const char *shunt_cmd_name(enum shunt_cmd cmd)
{
  return (unsigned)cmd < sizeof cmd_of / sizeof cmd_of[0] ? proto_command_spec_name(cmd_of[cmd]) : "UNKNOWN";
}

void sh_describe(const struct shunt_handle *h, const struct sh_req *r, char *buf, size_t len)
{
  if (r->cmd == NBD_CMD_FLUSH)
    snprintf(buf, len, "%s: FLUSH", h->uri_text);
  else
    snprintf(buf, len, "%s: %s %llu bytes at offset %llu", h->uri_text, proto_command_spec_name(r->cmd),
             (unsigned long long)r->length, (unsigned long long)r->offset);
}

static int fail(struct shunt_handle *h, int err, const char *what, uint64_t off, uint64_t len,
                const char *why)
{
  char m[1024];
  snprintf(m, sizeof m, "%s: %s %llu bytes at offset %llu: %s", h->uri_text, what,
           (unsigned long long)len, (unsigned long long)off, why);
  sh_set_error(h, m);
  return err;
}

static int alloc_slot(struct shunt_handle *h, struct sh_req *r)
{
  if (!h->nfree) {
    uint32_t n = h->nslots ? h->nslots * 2 : 64;
    struct sh_req **s = realloc(h->slots, n * sizeof *s);
    if (!s)
      return -ENOMEM;
    h->slots = s;
    uint32_t *f = realloc(h->free_slots, n * sizeof *f);
    if (!f)
      return -ENOMEM;
    h->free_slots = f;
    for (uint32_t i = n; i > h->nslots; i--) {
      s[i - 1] = NULL;
      f[h->nfree++] = i - 1;
    }
    h->nslots = n;
  }
  r->slot = h->free_slots[--h->nfree];
  if (++h->gen == 0)
    h->gen = 1;
  r->cookie = (uint64_t)h->gen << 32 | r->slot;
  h->slots[r->slot] = r;
  return 0;
}

struct sh_req *sh_lookup(struct shunt_handle *h, uint64_t cookie)
{
  uint32_t slot = (uint32_t)cookie;
  if (slot >= h->nslots || !h->slots[slot] || h->slots[slot]->cookie != cookie)
    return NULL;
  return h->slots[slot];
}

void sh_req_encode(struct sh_req *r, bool extended)
{
  uint16_t fl = r->wflags;
  if (extended && r->cmd == NBD_CMD_WRITE)
    fl |= NBD_CMD_FLAG_PAYLOAD_LEN; /* spec: MUST be set for WRITE with extended headers */
  r->hdrlen = proto_request_encode(r->hdr, extended, fl, r->cmd, r->cookie, r->offset,
                                 r->length);
  r->sent = 0;
}

void sh_queue_req(struct shunt_handle *h, unsigned ci, struct sh_req *r)
{
  struct sh_conn *c = &h->conns[ci];
  r->conn = (int)ci;
  r->next = NULL;
  r->queued = true;
  if (c->sq_tail)
    c->sq_tail->next = r;
  else
    c->sq_head = r;
  c->sq_tail = r;
  c->inflight++;
}

static int pick_conn(struct shunt_handle *h)
{
  int best = -1, waiting = -1;
  for (unsigned i = 0; i < h->nconns; i++) {
    if (h->conns[i].live && (best < 0 || h->conns[i].inflight < h->conns[best].inflight))
      best = (int)i;
    else if (h->conns[i].reconnecting && waiting < 0)
      waiting = (int)i; /* sent once it is back (handle.c) */
  }
  return best >= 0 ? best : waiting;
}

void sh_complete(struct shunt_handle *h, struct sh_req *r)
{
  struct shunt_result res = {
    .cookie = r->cookie, .cmd = shunt_cmd_of(r->cmd), .offset = r->offset,
    .length = r->length, .error = r->error, .user = r->user,
    .piped = r->cmd == NBD_CMD_READ && r->pipe_fd >= 0 ? r->pipe_len : 0,
  };
  shunt_done_fn done = r->done;
  h->slots[r->slot] = NULL;
  h->free_slots[h->nfree++] = r->slot;
  if (r->conn >= 0 && h->conns[r->conn].inflight)
    h->conns[r->conn].inflight--;
  h->in_flight--;
  h->stats.requests++;
  h->completed++;
  if (r->error) {
    char what[256];
    h->stats.errors++;
    sh_describe(h, r, what, sizeof what);
    snprintf(h->msg, sizeof h->msg, "%s: %s%s%s%s", what, strerror(-r->error),
             !r->errmsg ? "" : r->errmsg_server ? " (server: " : " (",
             r->errmsg ? r->errmsg : "", r->errmsg ? ")" : "");
    sh_set_error(h, h->msg);
    res.message = h->msg;
  } else if (res.cmd == SHUNT_READ) {
    h->stats.bytes_read += res.length;
  } else if (res.cmd == SHUNT_WRITE) {
    h->stats.bytes_written += res.length;
  }
  if (r->iov != r->iov_inline)
    free(r->iov);
  free(r->errmsg);
  sh_cover_reset(&r->cover);
  free(r);
  /* The callback runs last: it may submit new requests. */
  if (done)
    done(&res);
}

enum seg_kind { SEG_IOV, SEG_PIPE, SEG_FILE };

/* Where write payload byte pos of r comes from, and up to where (*end). */
static enum seg_kind payload_segment(const struct sh_req *r, uint64_t pos, uint64_t *end)
{
  if (r->file_fd >= 0) {
    *end = r->length;
    return SEG_FILE;
  }
  if (r->pipe_fd >= 0 && r->pipe_len) {
    if (pos < r->pipe_from) {
      *end = r->pipe_from;
      return SEG_IOV;
    }
    if (pos < r->pipe_from + r->pipe_len) {
      *end = r->pipe_from + r->pipe_len;
      return SEG_PIPE;
    }
  }
  *end = r->length;
  return SEG_IOV;
}

/* sent bytes of c's queue went out: advance the queued requests. */
static void advance_sends(struct sh_conn *c, uint64_t done)
{
  while (done && c->sq_head) {
    struct sh_req *r = c->sq_head;
    uint64_t total = r->hdrlen + (r->cmd == NBD_CMD_WRITE ? r->length : 0);
    uint64_t take = total - r->sent < done ? total - r->sent : done;
    r->sent += take;
    done -= take;
    if (r->sent == total) {
      c->sq_head = r->next;
      if (!c->sq_head)
        c->sq_tail = NULL;
      r->queued = false;
      r->next = NULL;
    }
  }
}

/* sendfile() and splice() into a socket have no MSG_NOSIGNAL: a peer that
 * hung up would raise SIGPIPE in the caller's process, whose disposition a
 * library must not change.  So SIGPIPE is blocked in this thread around the
 * call, and one it raised is taken back before the mask returns (unless
 * one was already pending: that one is the caller's). */
struct sigpipe_guard {
  sigset_t old;
  bool pending_before;
};

static void sigpipe_hold(struct sigpipe_guard *g)
{
  sigset_t set, pend;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, &g->old);
  sigpending(&pend);
  g->pending_before = sigismember(&pend, SIGPIPE) == 1;
}

static void sigpipe_release(struct sigpipe_guard *g, bool raised)
{
  if (raised && !g->pending_before) {
    sigset_t set;
    struct timespec zero = { 0, 0 };
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
      ;
  }
  pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* The head request's payload is at a pipe or file segment: let the kernel
 * move it (SIGPIPE held back: see sigpipe_hold()).  Returns bytes sent,
 * -EAGAIN, or -errno. */
static ssize_t send_kernel_segment(struct sh_conn *c, struct sh_req *r)
{
  uint64_t pos = r->sent - r->hdrlen, end;
  enum seg_kind k = payload_segment(r, pos, &end);
  size_t want = end - pos > (1u << 30) ? (size_t)1 << 30 : (size_t)(end - pos);
  ssize_t n;
  bool more = end < r->length || r->next;
  struct sigpipe_guard g;
  int err;
  sigpipe_hold(&g);
  do {
    if (k == SEG_FILE) {
      off_t o = (off_t)(r->file_off + pos);
      n = sendfile(c->t.fd, r->file_fd, &o, want);
    } else {
      n = splice(r->pipe_fd, NULL, c->t.fd, NULL, want,
                 SPLICE_F_NONBLOCK | (more ? SPLICE_F_MORE : 0));
    }
  } while (n < 0 && errno == EINTR);
  err = errno;
  sigpipe_release(&g, n < 0 && err == EPIPE);
  errno = err;
  int avail;
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && k == SEG_PIPE &&
      ioctl(r->pipe_fd, FIONREAD, &avail) == 0 && avail == 0)
    return -EPIPE; /* the pipe is short of the promised bytes: do not spin */
  if (n < 0)
    return errno == EWOULDBLOCK ? -EAGAIN : -errno;
  if (n == 0)
    return k == SEG_FILE ? -ENODATA : -EPIPE; /* short file / pipe short of bytes */
  return n;
}

/* Gather queued headers and payloads into one sendmsg; advance what was sent.
 * Payload that comes from a pipe or file ends the batch (sent with MSG_MORE)
 * and goes by splice/sendfile.  Returns 0 (all sent or the socket is full) or
 * -errno. */
int sh_conn_flush_sends(struct shunt_handle *h, struct sh_conn *c)
{
  enum { MAXV = 256 };
  struct iovec v[MAXV];
  (void)h;
  while (c->live && c->sq_head) {
    int n = 0;
    bool more = false;
    for (struct sh_req *r = c->sq_head; r && n < MAXV - 1; r = r->next) {
      uint64_t pos = r->sent;
      if (pos < r->hdrlen) {
        v[n].iov_base = r->hdr + pos;
        v[n].iov_len = r->hdrlen - pos;
        n++;
        pos = r->hdrlen;
      }
      if (r->cmd != NBD_CMD_WRITE)
        continue;
      bool stop = false;
      for (uint64_t p = pos - r->hdrlen, end; p < r->length && !stop; p = end) {
        if (payload_segment(r, p, &end) != SEG_IOV) {
          more = stop = true; /* the kernel sends this part next */
          break;
        }
        uint64_t got = 0;
        int k = sh_iov_slice(r->iov, r->iovcnt, p, end - p, v + n, MAXV - n);
        for (int i = 0; i < k; i++)
          got += v[n + i].iov_len;
        n += k;
        if (got < end - p)
          stop = true; /* the next header must not follow a partial payload */
      }
      if (stop)
        break;
    }
    ssize_t s;
    if (n == 0) {
      s = send_kernel_segment(c, c->sq_head);
    } else if (more) {
      struct msghdr m = { .msg_iov = v, .msg_iovlen = (size_t)n };
      do
        s = sendmsg(c->t.fd, &m, MSG_NOSIGNAL | MSG_MORE);
      while (s < 0 && errno == EINTR);
      if (s < 0)
        s = errno == EWOULDBLOCK ? -EAGAIN : -errno;
    } else {
      s = sh_transport_writev(&c->t, v, n);
    }
    if (s == -EAGAIN || s == -EWOULDBLOCK)
      return 0;
    if (s < 0)
      return (int)s;
    advance_sends(c, (uint64_t)s);
  }
  return 0;
}

/* A write whose pipe bytes were partly sent cannot be sent again. */
bool sh_req_replayable(const struct sh_req *r)
{
  if (r->cmd != NBD_CMD_WRITE || r->pipe_fd < 0 || !r->pipe_len || r->sent <= r->hdrlen)
    return true;
  return r->sent - r->hdrlen <= r->pipe_from;
}

/* Common checks and queueing for every submit call. */
/* Payload moved by the kernel: see struct sh_req. */
struct kpay {
  int pipe_fd;
  uint64_t pipe_from, pipe_len;
  int file_fd;
  uint64_t file_off;
};

static int64_t submit_locked(struct shunt_handle *h, uint16_t cmd, const struct iovec *iov, int iovcnt,
                      uint64_t offset, uint64_t length, unsigned flags, shunt_extent_fn extent,
                      shunt_done_fn done, void *user, const struct kpay *kp)
{
  const struct sh_info *in = &h->info;
  const char *name = proto_command_spec_name(cmd);
  uint16_t wf = 0;
  if (!h->connected)
    return fail(h, -ENOTCONN, name, offset, length, "the handle is not connected");
  if (flags & ~(SHUNT_CMD_FUA | SHUNT_CMD_NO_HOLE | SHUNT_CMD_DF | SHUNT_CMD_REQ_ONE |
                SHUNT_CMD_FAST_ZERO))
    return fail(h, -EINVAL, name, offset, length, "unknown flags");
  if (flags & SHUNT_CMD_FUA) {
    if (!in->can_fua)
      return fail(h, -ENOTSUP, name, offset, length, "server does not support FUA");
    wf |= NBD_CMD_FLAG_FUA;
  }
  if (flags & SHUNT_CMD_NO_HOLE) wf |= NBD_CMD_FLAG_NO_HOLE;
  if (flags & SHUNT_CMD_REQ_ONE) wf |= NBD_CMD_FLAG_REQ_ONE;
  if (flags & SHUNT_CMD_DF) {
    if (!in->can_df)
      return fail(h, -ENOTSUP, name, offset, length, "server does not support DF");
    wf |= NBD_CMD_FLAG_DF;
  }
  if (flags & SHUNT_CMD_FAST_ZERO) {
    if (!in->can_fast_zero)
      return fail(h, -ENOTSUP, name, offset, length, "server does not support FAST_ZERO");
    wf |= NBD_CMD_FLAG_FAST_ZERO;
  }
  if (cmd != NBD_CMD_FLUSH) {
    if (length == 0)
      return fail(h, -EINVAL, name, offset, length, "zero length");
    if (offset > in->size || length > in->size - offset)
      return fail(h, -EINVAL, name, offset, length, "beyond the end of the export");
    if (!in->extended && length > UINT32_MAX)
      return fail(h, -EINVAL, name, offset, length, "longer than 32 bits allow");
  }
  if ((cmd == NBD_CMD_READ || cmd == NBD_CMD_WRITE) && length > in->max_block)
    return fail(h, -EINVAL, name, offset, length, "longer than the server's maximum block size");
  if ((cmd == NBD_CMD_WRITE || cmd == NBD_CMD_TRIM || cmd == NBD_CMD_WRITE_ZEROES) &&
      in->read_only)
    return fail(h, -EROFS, name, offset, length, "export is read-only");
  if ((cmd == NBD_CMD_FLUSH && !in->can_flush) || (cmd == NBD_CMD_TRIM && !in->can_trim) ||
      (cmd == NBD_CMD_WRITE_ZEROES && !in->can_zero) ||
      (cmd == NBD_CMD_BLOCK_STATUS && !in->block_status) ||
      (cmd == NBD_CMD_CACHE && !in->can_cache))
    return fail(h, -ENOTSUP, name, offset, length, "server does not support this command");
  int ci = pick_conn(h);
  if (ci < 0) {
    char why[600];
    snprintf(why, sizeof why, "not connected (every connection was lost; last: %s)",
             h->lost[0] ? h->lost : "unknown");
    return fail(h, -ENOTCONN, name, offset, length, why);
  }

  struct sh_req *r = calloc(1, sizeof *r);
  if (!r)
    return -ENOMEM;
  r->cmd = cmd;
  r->wflags = wf;
  r->offset = offset;
  r->length = length;
  r->done = done;
  r->extent = extent;
  r->user = user;
  r->bs_pos = offset;
  r->conn = -1;
  r->pipe_fd = kp ? kp->pipe_fd : -1;
  r->pipe_from = kp ? kp->pipe_from : 0;
  r->pipe_len = kp ? kp->pipe_len : 0;
  r->pipe_done = h->opt.copy_reads;
  r->file_fd = kp ? kp->file_fd : -1;
  r->file_off = kp ? kp->file_off : 0;
  if (iovcnt > 0) {
    r->iov = iovcnt <= SH_IOV_INLINE ? r->iov_inline : malloc((size_t)iovcnt * sizeof *iov);
    if (!r->iov) {
      free(r);
      return -ENOMEM;
    }
    memcpy(r->iov, iov, (size_t)iovcnt * sizeof *iov);
    r->iovcnt = iovcnt;
  }
  if (alloc_slot(h, r) < 0) {
    if (r->iov != r->iov_inline)
      free(r->iov);
    free(r);
    return -ENOMEM;
  }
  sh_req_encode(r, h->conns[ci].extended);
  sh_queue_req(h, (unsigned)ci, r);
  h->in_flight++;
  if (h->polling && !pthread_equal(h->poller, pthread_self())) {
    /* Another thread sits in poll() with an fd set computed before this
     * request existed: send now, and wake it if the socket is full. */
    struct sh_conn *c = &h->conns[ci];
    if (sh_conn_flush_sends(h, c) < 0 || c->sq_head)
      shunt_wake(h);
  }
  return (int64_t)r->cookie;
}

static int64_t submit_kp(struct shunt_handle *h, uint16_t cmd, const struct iovec *iov, int iovcnt,
                         uint64_t offset, uint64_t length, unsigned flags, shunt_extent_fn extent,
                         shunt_done_fn done, void *user, const struct kpay *kp)
{
  sh_lock(h);
  int64_t r = submit_locked(h, cmd, iov, iovcnt, offset, length, flags, extent, done, user, kp);
  sh_unlock(h);
  return r;
}

static int64_t submit(struct shunt_handle *h, uint16_t cmd, const struct iovec *iov, int iovcnt,
                      uint64_t offset, uint64_t length, unsigned flags, shunt_extent_fn extent,
                      shunt_done_fn done, void *user)
{
  sh_lock(h);
  int64_t r = submit_locked(h, cmd, iov, iovcnt, offset, length, flags, extent, done, user, NULL);
  sh_unlock(h);
  return r;
}

static int iov_check(struct shunt_handle *h, const char *name, const struct iovec *iov,
                     int iovcnt, uint64_t offset, uint64_t *len)
{
  uint64_t t = 0;
  if (iovcnt <= 0 || iovcnt > 1024 * 1024 || !iov)
    return fail(h, -EINVAL, name, offset, 0, "bad iovec count");
  for (int i = 0; i < iovcnt; i++) {
    if (t + iov[i].iov_len < t)
      return fail(h, -EINVAL, name, offset, t, "iovec lengths overflow");
    t += iov[i].iov_len;
  }
  *len = t;
  return 0;
}

/* iov_check(), then the flags a payload command allows (READ: DF; WRITE: FUA). */
static int payload_check(struct shunt_handle *h, uint16_t cmd, const struct iovec *iov, int iovcnt,
                         uint64_t offset, unsigned flags, uint64_t *len)
{
  bool rd = cmd == NBD_CMD_READ;
  int r = iov_check(h, rd ? "READ" : "WRITE", iov, iovcnt, offset, len);
  if (r < 0)
    return r;
  if (flags & ~(rd ? SHUNT_CMD_DF : SHUNT_CMD_FUA))
    return fail(h, -EINVAL, rd ? "READ" : "WRITE", offset, *len,
                rd ? "flag not valid for a read" : "flag not valid for a write");
  return 0;
}

int64_t shunt_aio_pread(struct shunt_handle *h, const struct iovec *iov, int iovcnt,
                        uint64_t offset, unsigned flags, shunt_done_fn done, void *user)
{
  uint64_t len;
  int r = payload_check(h, NBD_CMD_READ, iov, iovcnt, offset, flags, &len);
  if (r < 0)
    return r;
  return submit(h, NBD_CMD_READ, iov, iovcnt, offset, len, flags, NULL, done, user);
}

int64_t shunt_aio_pwrite(struct shunt_handle *h, const struct iovec *iov, int iovcnt,
                         uint64_t offset, unsigned flags, shunt_done_fn done, void *user)
{
  uint64_t len;
  int r = payload_check(h, NBD_CMD_WRITE, iov, iovcnt, offset, flags, &len);
  if (r < 0)
    return r;
  return submit(h, NBD_CMD_WRITE, iov, iovcnt, offset, len, flags, NULL, done, user);
}

int64_t shunt_aio_flush(struct shunt_handle *h, shunt_done_fn done, void *user)
{
  return submit(h, NBD_CMD_FLUSH, NULL, 0, 0, 0, 0, NULL, done, user);
}

int64_t shunt_aio_trim(struct shunt_handle *h, uint64_t offset, uint64_t length, unsigned flags,
                       shunt_done_fn done, void *user)
{
  if (flags & ~(SHUNT_CMD_FUA))
    return fail(h, -EINVAL, "TRIM", offset, length, "flag not valid for a trim");
  return submit(h, NBD_CMD_TRIM, NULL, 0, offset, length, flags, NULL, done, user);
}

int64_t shunt_aio_zero(struct shunt_handle *h, uint64_t offset, uint64_t length, unsigned flags,
                       shunt_done_fn done, void *user)
{
  if (flags & ~(SHUNT_CMD_FUA | SHUNT_CMD_NO_HOLE | SHUNT_CMD_FAST_ZERO))
    return fail(h, -EINVAL, "WRITE_ZEROES", offset, length, "flag not valid for a zero");
  return submit(h, NBD_CMD_WRITE_ZEROES, NULL, 0, offset, length, flags, NULL, done, user);
}

int64_t shunt_aio_cache(struct shunt_handle *h, uint64_t offset, uint64_t length,
                        shunt_done_fn done, void *user)
{
  return submit(h, NBD_CMD_CACHE, NULL, 0, offset, length, 0, NULL, done, user);
}

int64_t shunt_aio_block_status(struct shunt_handle *h, uint64_t offset, uint64_t length,
                               unsigned flags, shunt_extent_fn extent, shunt_done_fn done,
                               void *user)
{
  if (flags & ~(SHUNT_CMD_REQ_ONE))
    return fail(h, -EINVAL, "BLOCK_STATUS", offset, length, "flag not valid for block status");
  return submit(h, NBD_CMD_BLOCK_STATUS, NULL, 0, offset, length, flags, extent, done, user);
}

int64_t shunt_aio_pread_pipe(struct shunt_handle *h, const struct iovec *iov, int iovcnt,
                             uint64_t offset, unsigned flags, int pipe_wfd, uint64_t pipe_from,
                             shunt_done_fn done, void *user)
{
  uint64_t len;
  int r = payload_check(h, NBD_CMD_READ, iov, iovcnt, offset, flags, &len);
  if (r < 0)
    return r;
  if (h->tls)
    return fail(h, -EOPNOTSUPP, "READ", offset, len, "no splice over TLS");
  if (pipe_wfd < 0 || pipe_from > len)
    return fail(h, -EINVAL, "READ", offset, len, "bad pipe or pipe offset");
  struct kpay kp = { .pipe_fd = pipe_wfd, .pipe_from = pipe_from, .file_fd = -1 };
  return submit_kp(h, NBD_CMD_READ, iov, iovcnt, offset, len, flags, NULL, done, user, &kp);
}

int64_t shunt_aio_pwrite_pipe(struct shunt_handle *h, const struct iovec *iov, int iovcnt,
                              uint64_t offset, unsigned flags, int pipe_rfd, uint64_t pipe_from,
                              uint64_t piped, shunt_done_fn done, void *user)
{
  uint64_t len;
  int r = payload_check(h, NBD_CMD_WRITE, iov, iovcnt, offset, flags, &len);
  if (r < 0)
    return r;
  if (h->tls)
    return fail(h, -EOPNOTSUPP, "WRITE", offset, len, "no splice over TLS");
  if (pipe_rfd < 0 || pipe_from > len || piped > len - pipe_from)
    return fail(h, -EINVAL, "WRITE", offset, len, "bad pipe or pipe range");
  struct kpay kp = { .pipe_fd = pipe_rfd, .pipe_from = pipe_from, .pipe_len = piped,
                     .file_fd = -1 };
  return submit_kp(h, NBD_CMD_WRITE, iov, iovcnt, offset, len, flags, NULL, done, user, &kp);
}

int64_t shunt_aio_pwrite_file(struct shunt_handle *h, int fd, uint64_t fd_offset,
                              uint64_t length, uint64_t offset, unsigned flags,
                              shunt_done_fn done, void *user)
{
  if (flags & ~(SHUNT_CMD_FUA))
    return fail(h, -EINVAL, "WRITE", offset, length, "flag not valid for a write");
  if (h->tls)
    return fail(h, -EOPNOTSUPP, "WRITE", offset, length, "no sendfile over TLS");
  if (fd < 0 || fd_offset > (uint64_t)INT64_MAX - length)
    return fail(h, -EINVAL, "WRITE", offset, length, "bad file or file offset");
  struct kpay kp = { .pipe_fd = -1, .file_fd = fd, .file_off = fd_offset };
  return submit_kp(h, NBD_CMD_WRITE, NULL, 0, offset, length, flags, NULL, done, user, &kp);
}
