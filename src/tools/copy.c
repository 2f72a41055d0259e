/* copy.c: `shunt copy SRC DST` between files, block devices and NBD URIs in any
 * direction.  Sparse-aware (holes are neither read nor written; zeroes go as
 * WRITE_ZEROES or stay holes), parallel (multi-conn, many requests in flight
 * through libshunt's asynchronous API), with a progress bar and --json.
 * Payload from an NBD source goes through a pipe per slot (spliced in and out
 * by the kernel), a file source is sent with sendfile: only the first
 * PROBE_BYTES of each request pass through user memory, to spot zero blocks. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"
#include "common/macros.h"
#include "common/units.h"
#include "common/uri.h"
#include "shunt/shunt.h"
#include "tools/commands.h"
#include "tools/copy_io.h"
#include "tools/copy_same.h"

#define EXTENT_BATCH (UINT64_C(1) << 30)   /* plan this much of the source at a time */
#define MAX_ZERO_REQ (UINT64_C(1) << 30)   /* one WRITE_ZEROES at most */
#define PROBE_BYTES 4096                   /* zero check before the kernel moves the rest */

struct endpoint {
  const char *name;
  struct shunt_handle *h;  /* NBD, or NULL */
  int fd;                  /* file or block device */
  int dfd;                 /* destination opened O_DIRECT too (aligned writes), or -1 */
  uint64_t size;
  bool blockdev;
  bool fresh;              /* destination known to read as zeroes */
  struct stat st;          /* file or block device: its fstat */
  uint64_t max_req;
};

struct extent {
  uint64_t off, len;
  bool zero;
};

struct copy;
enum file_op { FILE_NONE, FILE_READ, FILE_WRITE };

struct slot {
  struct copy *cp;
  unsigned char *buf;
  uint64_t off, len;
  uint64_t xfer;           /* file op: bytes done so far */
  uint64_t rd_end;         /* file read: read up to here (a probe, or len) */
  enum file_op op;
  bool busy;
  bool direct_io;          /* the file write in flight went through dst.dfd */
  int pipe[2];             /* NBD source: the payload's pipe, or -1 */
  uint64_t pipe_from, piped; /* the pipe holds request bytes [pipe_from, +piped) */
};

struct copy {
  struct endpoint src, dst;
  struct extent *ext;
  size_t next, n, cap;
  uint64_t planned;        /* source extents known up to here */
  struct slot *slots;
  unsigned nslots, busy;
  uint64_t req_size;
  bool sparse, target_is_zero, flush, json, progress;
  bool direct;             /* write file destinations with O_DIRECT where aligned */
  unsigned direct_busy, direct_max; /* O_DIRECT writes in flight, and the most */
  bool splice_src;         /* NBD source and destination: payload through pipes */
  bool sendfile_src;       /* file source, NBD destination: sendfile */
  uint64_t probe;          /* bytes checked for zeroes in user memory (0: none) */
  uint64_t data_bytes, zero_bytes, skipped_bytes, done_bytes, requests;
  uint64_t spliced_bytes, sendfile_bytes; /* data the kernel moved past user memory */
  uint64_t direct_bytes;   /* written to a file destination with O_DIRECT */
  int error;
  char errmsg[1024];
  unsigned char *zerobuf;
  struct copy_io io;       /* file reads/writes, when either side is a file */
};

static void usage(FILE *f)
{
  fprintf(f,
    "usage: shunt copy [OPTIONS] SRC DST\n"
    "\n"
    "Copy between files, block devices and NBD URIs (nbd://, nbd+unix://; nbds://\n"
    "and nbds+unix:// over TLS) in any direction.  Holes in SRC are neither read\n"
    "nor written: a new or regular DST\n"
    "file keeps them as holes, an NBD DST gets WRITE_ZEROES.  Blocks read as all\n"
    "zeroes are treated the same way unless --no-sparse.  SRC and DST may not be\n"
    "the same file or the same export.\n"
    "\n"
    "  -C, --connections N   NBD connections per URI when the server allows (4)\n"
    "  -R, --requests N      requests in flight (64)\n"
    "  -S, --request-size N  bytes per request (256K; capped by the server)\n"
    "      --no-sparse       copy every byte as data\n"
    "      --no-splice       move every byte through user memory (no splice or\n"
    "                        sendfile; for comparison)\n"
    "      --no-direct       write a file or block device DST through the page\n"
    "                        cache (default: O_DIRECT for aligned writes, up to half\n"
    "                        the requests in flight; the overflow is buffered)\n"
    "      --target-is-zero  DST already reads as zeroes: skip zero ranges\n"
    "      --flush           flush DST (NBD FLUSH or fsync) at the end\n"
    "      --reconnect N     after a dropped NBD connection, reconnect up to N times\n"
    "                        (with backoff) and retry the requests in flight (NBD to\n"
    "                        NBD then moves the payload through user memory)\n"
    "      --json            print a JSON summary on stdout\n"
    "      --progress        force the progress bar (default: when stderr is a tty)\n"
    "      --no-progress     never show it\n"
    "  -h, --help            this text\n"
    "\n"
    "Exit status: 0 on success, 1 on any error, 2 on bad usage.\n");
}

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void set_error(struct copy *cp, int err, const char *fmt, const char *a, const char *b)
{
  if (cp->error)
    return;
  cp->error = err ? err : -EIO;
  snprintf(cp->errmsg, sizeof cp->errmsg, fmt, a, b);
}

static unsigned reconnect_tries;

static int open_endpoint(struct endpoint *e, const char *name, bool dst, uint64_t want_size,
                         unsigned conns, struct copy *cp)
{
  memset(e, 0, sizeof *e);
  e->name = name;
  e->fd = e->dfd = -1;
  if (nbd_uri_is_nbd(name)) {
    struct shunt_options o = { .connections = conns, .reconnect = reconnect_tries };
    char err[512];
    if (shunt_connect(&e->h, name, &o, err, sizeof err) < 0) {
      fprintf(stderr, "shunt copy: %s\n", err);
      return -1;
    }
    const struct shunt_info *in = shunt_get_info(e->h);
    e->size = in->size;
    e->max_req = in->max_block;
    if (dst && in->read_only) {
      fprintf(stderr, "shunt copy: %s: export is read-only\n", name);
      return -1;
    }
    return 0;
  }
  e->fd = open(name, dst ? O_WRONLY | O_CREAT | O_CLOEXEC : O_RDONLY | O_CLOEXEC, 0644);
  if (e->fd < 0) {
    fprintf(stderr, "shunt copy: %s: %s\n", name, strerror(errno));
    return -1;
  }
  struct stat st;
  if (fstat(e->fd, &st) < 0) {
    fprintf(stderr, "shunt copy: %s: %s\n", name, strerror(errno));
    return -1;
  }
  e->st = st;
  /* The destination is truncated below: never when it is the source (the
   * same path, a symlink or hard link to it, or the same block device). */
  if (dst && cp->src.fd >= 0 && copy_same_file(&cp->src.st, &st)) {
    fprintf(stderr, "shunt copy: %s and %s are the same file\n", cp->src.name, name);
    return -1;
  }
  e->max_req = UINT64_C(1) << 30;
  if (S_ISBLK(st.st_mode)) {
    e->blockdev = true;
    if (ioctl(e->fd, BLKGETSIZE64, &e->size) < 0) {
      fprintf(stderr, "shunt copy: %s: BLKGETSIZE64: %s\n", name, strerror(errno));
      return -1;
    }
  } else if (S_ISREG(st.st_mode)) {
    e->size = (uint64_t)st.st_size;
    if (dst) {
      /* A regular destination file is recreated sparse: holes need no writing.
       * A new (empty) one is only extended: on ext4, truncating to 0 arms
       * auto_da_alloc, and close() then writes back the whole copy itself. */
      if ((st.st_size > 0 && ftruncate(e->fd, 0) < 0) || ftruncate(e->fd, (off_t)want_size) < 0) {
        fprintf(stderr, "shunt copy: %s: truncate: %s\n", name, strerror(errno));
        return -1;
      }
      e->size = want_size;
      e->fresh = true;
    }
  } else {
    fprintf(stderr, "shunt copy: %s: not a regular file, block device or NBD URI\n", name);
    return -1;
  }
  /* Aligned writes bypass the page cache: no copy into it, and no dirty
   * pages for the kernel to write back later.  Where O_DIRECT is refused
   * (some file systems), every write stays buffered. */
  if (dst && cp->direct)
    e->dfd = open(name, O_WRONLY | O_DIRECT | O_CLOEXEC);
  return 0;
}

static int add_extent(struct copy *cp, uint64_t off, uint64_t len, bool zero)
{
  if (!len)
    return 0;
  if (!cp->sparse)
    zero = false;
  if (cp->n && cp->ext[cp->n - 1].zero == zero && cp->ext[cp->n - 1].off + cp->ext[cp->n - 1].len == off) {
    cp->ext[cp->n - 1].len += len;
    return 0;
  }
  if (cp->n == cp->cap) {
    size_t c = cp->cap ? cp->cap * 2 : 256;
    struct extent *e = realloc(cp->ext, c * sizeof *e);
    if (!e)
      return -ENOMEM;
    cp->ext = e;
    cp->cap = c;
  }
  cp->ext[cp->n++] = (struct extent){ off, len, zero };
  return 0;
}

struct bs_collect {
  struct copy *cp;
  uint64_t end;
  uint64_t reached;
  int err;
};

static void on_extent(void *user, uint64_t off, uint64_t len, uint32_t flags)
{
  struct bs_collect *b = user;
  if (off >= b->end)
    return;
  if (len > b->end - off)
    len = b->end - off;
  if (add_extent(b->cp, off, len, flags & SHUNT_EXTENT_ZERO) < 0)
    b->err = -ENOMEM;
  b->reached = off + len;
}

/* Learn the next batch of the source's extents (drops the consumed ones). */
static int plan_more(struct copy *cp)
{
  uint64_t size = cp->src.size;
  if (cp->next) {
    memmove(cp->ext, cp->ext + cp->next, (cp->n - cp->next) * sizeof *cp->ext);
    cp->n -= cp->next;
    cp->next = 0;
  }
  uint64_t start = cp->planned;
  uint64_t end = size - start < EXTENT_BATCH ? size : start + EXTENT_BATCH;
  if (start >= size)
    return 0;
  if (cp->src.h && cp->sparse && shunt_get_info(cp->src.h)->block_status) {
    struct bs_collect b = { .cp = cp, .end = end, .reached = start };
    while (b.reached < end) {
      uint64_t before = b.reached;
      if (shunt_block_status(cp->src.h, b.reached, end - b.reached, 0, on_extent, &b) < 0) {
        set_error(cp, -EIO, "%s%s", shunt_last_error(cp->src.h), "");
        return -EIO;
      }
      if (b.err)
        return b.err;
      if (b.reached == before)
        return add_extent(cp, start, end - start, false);
    }
  } else if (cp->src.fd >= 0 && cp->sparse) {
    uint64_t pos = start;
    while (pos < end) {
      off_t d = lseek(cp->src.fd, (off_t)pos, SEEK_DATA);
      if (d < 0 && errno == ENXIO)
        d = (off_t)end; /* the rest is a hole */
      else if (d < 0) {
        add_extent(cp, pos, end - pos, false); /* no SEEK_DATA: all data */
        break;
      }
      uint64_t du = (uint64_t)d < end ? (uint64_t)d : end;
      if (add_extent(cp, pos, du - pos, true) < 0)
        return -ENOMEM;
      if (du >= end)
        break;
      off_t hl = lseek(cp->src.fd, d, SEEK_HOLE);
      uint64_t hu = hl < 0 ? end : (uint64_t)hl < end ? (uint64_t)hl : end;
      if (add_extent(cp, du, hu - du, false) < 0)
        return -ENOMEM;
      pos = hu;
    }
  } else if (add_extent(cp, start, end - start, false) < 0) {
    return -ENOMEM;
  }
  cp->planned = end;
  return 0;
}

/* Take the next piece of work: at most max bytes of one extent. */
static bool next_work(struct copy *cp, uint64_t max_data, uint64_t *off, uint64_t *len, bool *zero)
{
  while (cp->next == cp->n) {
    if (cp->planned >= cp->src.size || cp->error)
      return false;
    if (plan_more(cp) < 0) {
      if (!cp->error)
        set_error(cp, -ENOMEM, "%s%s", "out of memory", "");
      return false;
    }
  }
  struct extent *e = &cp->ext[cp->next];
  uint64_t lim = e->zero ? MAX_ZERO_REQ : max_data;
  *off = e->off;
  *zero = e->zero;
  *len = e->len < lim ? e->len : lim;
  e->off += *len;
  e->len -= *len;
  if (!e->len)
    cp->next++;
  return true;
}

static void slot_free(struct slot *s)
{
  s->busy = false;
  s->cp->busy--;
}

static void on_write_done(const struct shunt_result *r)
{
  struct slot *s = r->user;
  struct copy *cp = s->cp;
  if (r->error)
    set_error(cp, r->error, "%s%s", r->message, "");
  else
    cp->done_bytes += r->length;
  cp->requests++;
  slot_free(s);
}

/* Make [off, off+len) of the destination read as zeroes; the slot (may be
 * NULL for synchronous paths) is freed when done. */
static void dst_zero(struct copy *cp, struct slot *s, uint64_t off, uint64_t len)
{
  struct endpoint *d = &cp->dst;
  cp->zero_bytes += len;
  if (d->fresh || cp->target_is_zero) {
    cp->skipped_bytes += len;
    cp->done_bytes += len;
    if (s)
      slot_free(s);
    return;
  }
  if (d->h && shunt_get_info(d->h)->can_zero) {
    if (!s) {
      int r = shunt_zero(d->h, off, len, 0);
      if (r < 0)
        set_error(cp, r, "%s%s", shunt_last_error(d->h), "");
      else
        cp->done_bytes += len;
      cp->requests++;
      return;
    }
    s->off = off;
    s->len = len;
    if (shunt_aio_zero(d->h, off, len, 0, on_write_done, s) < 0) {
      set_error(cp, -EIO, "%s%s", shunt_last_error(d->h), "");
      slot_free(s);
    }
    return;
  }
  if (d->fd >= 0) {
    int r = fallocate(d->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
    if (r < 0 && d->blockdev) {
      uint64_t range[2] = { off, len };
      r = ioctl(d->fd, BLKZEROOUT, range);
    }
    if (r == 0) {
      cp->done_bytes += len;
      if (s)
        slot_free(s);
      return;
    }
  }
  /* No way to zero cheaply: write zeroes. */
  for (uint64_t p = 0; p < len && !cp->error;) {
    uint64_t l = len - p < cp->req_size ? len - p : cp->req_size;
    int r;
    if (d->h)
      r = shunt_pwrite(d->h, cp->zerobuf, l, off + p, 0);
    else
      r = pwrite(d->fd, cp->zerobuf, l, (off_t)(off + p)) == (ssize_t)l ? 0 : -errno;
    if (r < 0)
      set_error(cp, r, "%s: write: %s", d->name, strerror(-r));
    p += l;
  }
  cp->done_bytes += len;
  if (s)
    slot_free(s);
}

/* Move the slot's piped bytes into its buffer (for a full zero check). */
static int pipe_to_buf(struct copy *cp, struct slot *s)
{
  for (uint64_t got = 0; got < s->piped;) {
    ssize_t n = read(s->pipe[0], s->buf + s->pipe_from + got, s->piped - got);
    if (n <= 0) {
      int e = n < 0 ? -errno : -EIO;
      if (e == -EINTR)
        continue;
      set_error(cp, e, "read from pipe: %s%s", strerror(-e), "");
      return e;
    }
    got += (uint64_t)n;
  }
  s->piped = 0;
  return 0;
}

#define DIRECT_ALIGN 4096u  /* whole pages: direct and buffered writes never share one */

/* Queue the rest of the slot's file write, from s->xfer: its aligned part
 * O_DIRECT (while fewer than direct_max are in flight), else, and an odd
 * tail, through the page cache. */
static int queue_file_write(struct copy *cp, struct slot *s)
{
  uint64_t pos = s->xfer, off = s->off + pos, len = s->len - pos;
  uint64_t aligned = len / DIRECT_ALIGN * DIRECT_ALIGN; /* an odd tail follows buffered */
  s->direct_io = cp->dst.dfd >= 0 && off % DIRECT_ALIGN == 0 && pos % DIRECT_ALIGN == 0 &&
                 aligned && cp->direct_busy < cp->direct_max;
  cp->direct_busy += s->direct_io;
  if (s->direct_io)
    len = aligned;
  return copy_io_queue(&cp->io, true, s->direct_io ? cp->dst.dfd : cp->dst.fd, s->buf + pos,
                       (uint32_t)len, off, s);
}

/* Data for the slot is in its buffer and pipe: send it to the destination. */
static void data_ready(struct slot *s)
{
  struct copy *cp = s->cp;
  struct endpoint *d = &cp->dst;
  if (cp->sparse) {
    /* Only the bytes in user memory are looked at; when they are all zero,
     * the piped rest is fetched to decide. */
    bool zero = is_zero(s->buf, s->piped ? s->pipe_from : s->len);
    if (zero && s->piped) {
      if (pipe_to_buf(cp, s) < 0) {
        slot_free(s);
        return;
      }
      zero = is_zero(s->buf + s->pipe_from, s->len - s->pipe_from);
    }
    if (zero) {
      dst_zero(cp, s, s->off, s->len);
      return;
    }
  }
  cp->data_bytes += s->len;
  if (d->h) {
    struct iovec v = { s->buf, s->len };
    int64_t r = s->piped ? shunt_aio_pwrite_pipe(d->h, &v, 1, s->off, 0, s->pipe[0], s->pipe_from,
                                                 s->piped, on_write_done, s)
                         : shunt_aio_pwrite(d->h, &v, 1, s->off, 0, on_write_done, s);
    if (r < 0) {
      set_error(cp, -EIO, "%s%s", shunt_last_error(d->h), "");
      slot_free(s);
    }
    return;
  }
  s->op = FILE_WRITE;
  s->xfer = 0;
  int r = queue_file_write(cp, s);
  if (r < 0) {
    set_error(cp, r, "%s: write: %s", d->name, strerror(-r));
    s->op = FILE_NONE;
    slot_free(s);
  }
}

static void on_read_done(const struct shunt_result *r)
{
  struct slot *s = r->user;
  s->cp->requests++;
  s->piped = r->piped;
  s->cp->spliced_bytes += r->piped;
  if (r->error) {
    set_error(s->cp, r->error, "%s%s", r->message, "");
    slot_free(s);
    return;
  }
  data_ready(s);
}

/* File source, NBD destination: the kernel sends the slot's range. */
static void send_file(struct copy *cp, struct slot *s)
{
  cp->data_bytes += s->len;
  cp->sendfile_bytes += s->len;
  if (shunt_aio_pwrite_file(cp->dst.h, cp->src.fd, s->off, s->len, s->off, 0, on_write_done,
                            s) < 0) {
    set_error(cp, -EIO, "%s%s", shunt_last_error(cp->dst.h), "");
    slot_free(s);
  }
}

static void start_slot(struct copy *cp, struct slot *s, uint64_t off, uint64_t len)
{
  s->busy = true;
  s->off = off;
  s->len = len;
  cp->busy++;
  s->piped = 0;
  if (cp->src.h) {
    struct iovec v = { s->buf, len };
    int64_t r;
    if (cp->splice_src) {
      s->pipe_from = cp->probe < len ? cp->probe : len;
      r = shunt_aio_pread_pipe(cp->src.h, &v, 1, off, 0, s->pipe[1], s->pipe_from,
                               on_read_done, s);
    } else {
      r = shunt_aio_pread(cp->src.h, &v, 1, off, 0, on_read_done, s);
    }
    if (r < 0) {
      set_error(cp, -EIO, "%s%s", shunt_last_error(cp->src.h), "");
      slot_free(s);
    }
    return;
  }
  if (cp->sendfile_src && !cp->probe) {
    send_file(cp, s);
    return;
  }
  s->op = FILE_READ;
  s->xfer = 0;
  s->rd_end = cp->sendfile_src && cp->probe < len ? cp->probe : len;
  int r = copy_io_queue(&cp->io, false, cp->src.fd, s->buf, (uint32_t)s->rd_end, off, s);
  if (r < 0) {
    set_error(cp, r, "%s: read: %s", cp->src.name, strerror(-r));
    s->op = FILE_NONE;
    slot_free(s);
  }
}

/* A file read or write finished (res: bytes or -errno); short ones continue. */
static void on_file_done(void *tag, int res, void *ctx)
{
  struct slot *s = tag;
  struct copy *cp = ctx;
  bool write = s->op == FILE_WRITE;
  const char *name = write ? cp->dst.name : cp->src.name;
  if (write && s->direct_io) {
    cp->direct_busy--;
    cp->direct_bytes += res > 0 ? (uint64_t)res : 0;
  }
  if (write && res == -EINVAL && s->direct_io) {
    /* The device wants a larger alignment than pages: no O_DIRECT then. */
    close(cp->dst.dfd);
    cp->dst.dfd = -1;
    res = queue_file_write(cp, s);
    if (res == 0)
      return;
  }
  if (res <= 0) {
    set_error(cp, res < 0 ? res : -EIO, write ? "%s: write: %s" : "%s: read: %s", name,
              res < 0 ? strerror(-res) : "unexpected end of file");
    s->op = FILE_NONE;
    slot_free(s);
    return;
  }
  s->xfer += (uint64_t)res;
  if (!write && s->xfer == s->rd_end && s->rd_end < s->len) {
    /* The probe is read: data goes by sendfile, zeroes are read in full. */
    if (!is_zero(s->buf, s->rd_end)) {
      s->op = FILE_NONE;
      cp->requests++;
      send_file(cp, s);
      return;
    }
    s->rd_end = s->len;
  }
  if (s->xfer < (write ? s->len : s->rd_end)) {
    int r = write ? queue_file_write(cp, s)
                  : copy_io_queue(&cp->io, false, cp->src.fd, s->buf + s->xfer,
                                  (uint32_t)(s->rd_end - s->xfer), s->off + s->xfer, s);
    if (r < 0) {
      set_error(cp, r, write ? "%s: write: %s" : "%s: read: %s", name, strerror(-r));
      s->op = FILE_NONE;
      slot_free(s);
    }
    return;
  }
  s->op = FILE_NONE;
  if (write) {
    cp->done_bytes += s->len;
    cp->requests++;
    slot_free(s);
  } else {
    cp->requests++;
    data_ready(s);
  }
}

static void fill(struct copy *cp)
{
  for (unsigned i = 0; i < cp->nslots && !cp->error; i++) {
    struct slot *s = &cp->slots[i];
    if (s->busy)
      continue;
    uint64_t off, len;
    bool zero;
    if (!next_work(cp, cp->req_size, &off, &len, &zero))
      return;
    if (zero) {
      s->busy = true;
      cp->busy++;
      dst_zero(cp, s, off, len);
    } else {
      start_slot(cp, s, off, len);
    }
    if (!s->busy)
      i--; /* the slot was freed at once (synchronous path): reuse it */
  }
}

static void progress(struct copy *cp, double t0, bool final)
{
  char a[32], b[32], r[32];
  double dt = now_s() - t0;
  double rate = dt > 0 ? (double)cp->done_bytes / dt : 0;
  double pct = cp->src.size ? 100.0 * (double)cp->done_bytes / (double)cp->src.size : 100;
  double eta = rate > 0 ? (double)(cp->src.size - cp->done_bytes) / rate : 0;
  fprintf(stderr, "\r\033[Kshunt copy: %5.1f%%  %s / %s  %s/s  ETA %.0fs", pct,
          units_format_bytes(cp->done_bytes, a, sizeof a),
          units_format_bytes(cp->src.size, b, sizeof b),
          units_format_bytes((uint64_t)rate, r, sizeof r), eta);
  if (final)
    fputc('\n', stderr);
}

static int run(struct copy *cp)
{
  double t0 = now_s(), last = 0;
  for (;;) {
    if (!cp->error)
      fill(cp);
    if (cp->busy == 0 && (cp->error || (cp->next == cp->n && cp->planned >= cp->src.size)))
      break;
    if (cp->busy == 0)
      continue;
    struct pollfd pfd[2 * 65 + 1];
    unsigned ns = 0, nd = 0, nf = 0;
    int r = copy_io_submit(&cp->io);
    if (r < 0)
      set_error(cp, r, "io_uring submit: %s%s", strerror(-r), "");
    if (cp->src.h)
      ns = shunt_pollfds(cp->src.h, pfd, 65);
    if (cp->dst.h)
      nd = shunt_pollfds(cp->dst.h, pfd + ns, 65);
    if (cp->io.pending) {
      pfd[ns + nd] = (struct pollfd){ .fd = copy_io_fd(&cp->io), .events = POLLIN };
      nf = 1;
    }
    if (copy_io_reap(&cp->io, on_file_done, cp) > 0)
      continue; /* completions were already waiting */
    if (poll(pfd, ns + nd + nf, cp->progress ? 250 : -1) < 0 && errno != EINTR) {
      set_error(cp, -errno, "poll: %s%s", strerror(errno), "");
      break;
    }
    if (cp->src.h && shunt_pollfds_process(cp->src.h, pfd, ns) < 0)
      set_error(cp, -EIO, "%s%s", shunt_last_error(cp->src.h), "");
    if (cp->dst.h && shunt_pollfds_process(cp->dst.h, pfd + ns, nd) < 0)
      set_error(cp, -EIO, "%s%s", shunt_last_error(cp->dst.h), "");
    copy_io_reap(&cp->io, on_file_done, cp);
    if (cp->progress && now_s() - last > 0.25) {
      progress(cp, t0, false);
      last = now_s();
    }
  }
  if (cp->progress)
    progress(cp, t0, true);
  return cp->error;
}

int cmd_copy(int argc, char **argv)
{
  enum { O_NOSPARSE = 256, O_TZ, O_FLUSH, O_JSON, O_PROGRESS, O_NOPROGRESS, O_RECONNECT,
         O_NOSPLICE, O_NODIRECT };
  static const struct option lo[] = {
    { "connections", required_argument, NULL, 'C' }, { "requests", required_argument, NULL, 'R' },
    { "request-size", required_argument, NULL, 'S' }, { "no-sparse", no_argument, NULL, O_NOSPARSE },
    { "target-is-zero", no_argument, NULL, O_TZ }, { "flush", no_argument, NULL, O_FLUSH },
    { "json", no_argument, NULL, O_JSON }, { "progress", no_argument, NULL, O_PROGRESS },
    { "no-progress", no_argument, NULL, O_NOPROGRESS }, { "help", no_argument, NULL, 'h' },
    { "reconnect", required_argument, NULL, O_RECONNECT },
    { "no-splice", no_argument, NULL, O_NOSPLICE },
    { "no-direct", no_argument, NULL, O_NODIRECT },
    { NULL, 0, NULL, 0 },
  };
  struct copy cp = { .sparse = true, .direct = true, .req_size = 256 * 1024 };
  cp.src.fd = cp.src.dfd = cp.dst.fd = cp.dst.dfd = -1;
  uint64_t conns = 4, reqs = 64;
  int progress_opt = -1, c;
  bool splice = true;
  while ((c = getopt_long(argc, argv, "C:R:S:h", lo, NULL)) != -1) {
    switch (c) {
    case 'C':
      if (units_parse_size(optarg, &conns) < 0 || conns < 1 || conns > 64) {
        fprintf(stderr, "shunt copy: bad --connections '%s' (1..64)\n", optarg);
        return 2;
      }
      break;
    case 'R':
      if (units_parse_size(optarg, &reqs) < 0 || reqs < 1 || reqs > 1024) {
        fprintf(stderr, "shunt copy: bad --requests '%s' (1..1024)\n", optarg);
        return 2;
      }
      break;
    case 'S':
      if (units_parse_size(optarg, &cp.req_size) < 0 || cp.req_size < 512 ||
          cp.req_size > (UINT64_C(64) << 20)) {
        fprintf(stderr, "shunt copy: bad --request-size '%s' (512..64M)\n", optarg);
        return 2;
      }
      break;
    case O_RECONNECT: {
      uint64_t v;
      if (units_parse_size(optarg, &v) < 0 || v > 1000) {
        fprintf(stderr, "shunt copy: bad --reconnect '%s' (0..1000)\n", optarg);
        return 2;
      }
      reconnect_tries = (unsigned)v;
      break;
    }
    case O_NOSPARSE: cp.sparse = false; break;
    case O_NOSPLICE: splice = false; break;
    case O_NODIRECT: cp.direct = false; break;
    case O_TZ: cp.target_is_zero = true; break;
    case O_FLUSH: cp.flush = true; break;
    case O_JSON: cp.json = true; break;
    case O_PROGRESS: progress_opt = 1; break;
    case O_NOPROGRESS: progress_opt = 0; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind != argc - 2) {
    usage(stderr);
    return 2;
  }
  cp.progress = progress_opt >= 0 ? progress_opt : (isatty(2) && !cp.json);
  int rc = 1;
  double t0 = now_s();
  if (nbd_uri_is_nbd(argv[optind]) && nbd_uri_is_nbd(argv[optind + 1]) &&
      copy_same_export(argv[optind], argv[optind + 1])) {
    fprintf(stderr, "shunt copy: %s and %s are the same export\n", argv[optind], argv[optind + 1]);
    goto out;
  }
  if (open_endpoint(&cp.src, argv[optind], false, 0, (unsigned)conns, &cp) < 0)
    goto out;
  if (open_endpoint(&cp.dst, argv[optind + 1], true, cp.src.size, (unsigned)conns, &cp) < 0)
    goto out;
  if (cp.dst.size < cp.src.size) {
    fprintf(stderr, "shunt copy: %s (%llu bytes) is smaller than %s (%llu bytes)\n",
            cp.dst.name, (unsigned long long)cp.dst.size, cp.src.name,
            (unsigned long long)cp.src.size);
    goto out;
  }
  if (cp.req_size > cp.src.max_req)
    cp.req_size = cp.src.max_req;
  if (cp.req_size > cp.dst.max_req)
    cp.req_size = cp.dst.max_req;
  cp.nslots = (unsigned)reqs;
  cp.slots = calloc(cp.nslots, sizeof *cp.slots);
  for (unsigned i = 0; cp.slots && i < cp.nslots; i++)
    cp.slots[i].pipe[0] = cp.slots[i].pipe[1] = -1;
  cp.zerobuf = aligned_alloc(4096, ROUND_UP(cp.req_size, 4096));
  if (!cp.slots || !cp.zerobuf)
    goto oom;
  memset(cp.zerobuf, 0, cp.req_size);
  if (cp.src.fd >= 0 || cp.dst.fd >= 0) {
    int r = copy_io_init(&cp.io, cp.nslots * 2);
    if (r < 0) {
      fprintf(stderr, "shunt copy: io_uring: %s\n", strerror(-r));
      goto out;
    }
  }
  /* splice and sendfile need plain sockets (not TLS: nbds://). */
  bool src_plain = cp.src.h && strncmp(cp.src.name, "nbds", 4) != 0;
  bool dst_plain = cp.dst.h && strncmp(cp.dst.name, "nbds", 4) != 0;
  /* A write whose pipe bytes were partly sent cannot be resent after a
   * reconnect: with --reconnect, NBD -> NBD keeps the payload in buffers. */
  cp.splice_src = splice && src_plain && dst_plain && reconnect_tries == 0;
  cp.sendfile_src = splice && cp.src.fd >= 0 && dst_plain;
  cp.probe = cp.sparse ? PROBE_BYTES : 0;
  /* O_DIRECT for up to half the requests in flight: while the disk keeps up,
   * every write bypasses the page cache; when it falls behind, the overflow
   * goes to the page cache instead of waiting (costs a copy, keeps the pace). */
  cp.direct_max = cp.nslots / 2 ? cp.nslots / 2 : 1;
  for (unsigned i = 0; i < cp.nslots; i++) {
    struct slot *s = &cp.slots[i];
    s->cp = &cp;
    if (!(s->buf = aligned_alloc(4096, ROUND_UP(cp.req_size, 4096))))
      goto oom;
    if (cp.splice_src) {
      if (pipe2(s->pipe, O_CLOEXEC) < 0) {
        fprintf(stderr, "shunt copy: pipe: %s\n", strerror(errno));
        goto out;
      }
      /* Room for a whole request; if the kernel refuses, bytes that do not
       * fit land in the buffer instead. */
      if (fcntl(s->pipe[1], F_SETPIPE_SZ, (int)cp.req_size) < 0)
        (void)fcntl(s->pipe[1], F_SETPIPE_SZ, 1 << 20);
    }
  }
  if (run(&cp) == 0 && cp.flush) {
    int r = cp.dst.h ? shunt_flush(cp.dst.h) : fsync(cp.dst.fd) < 0 ? -errno : 0;
    if (r < 0)
      set_error(&cp, r, "flush %s: %s", cp.dst.name,
                cp.dst.h ? shunt_last_error(cp.dst.h) : strerror(-r));
  }
  if (cp.dst.dfd >= 0 && close(cp.dst.dfd) < 0 && !cp.error)
    set_error(&cp, -errno, "%s: close: %s", cp.dst.name, strerror(errno));
  cp.dst.dfd = -1;
  if (!cp.error && cp.dst.fd >= 0 && close(cp.dst.fd) < 0)
    set_error(&cp, -errno, "%s: close: %s", cp.dst.name, strerror(errno));
  else if (cp.dst.fd >= 0)
    close(cp.dst.fd);
  cp.dst.fd = -1;
  if (cp.error)
    fprintf(stderr, "shunt copy: %s\n", cp.errmsg);
  rc = cp.error ? 1 : 0;
  if (cp.json) {
    double dt = now_s() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    struct json j;
    json_init_file(&j, stdout);
    json_object(&j, NULL, JSON_BLOCK);
    json_string(&j, "source", cp.src.name);
    json_string(&j, "destination", cp.dst.name);
    json_uint(&j, "size", cp.src.size);
    json_uint(&j, "copied_bytes", cp.done_bytes);
    json_uint(&j, "data_bytes", cp.data_bytes);
    json_uint(&j, "zero_bytes", cp.zero_bytes);
    json_uint(&j, "zero_bytes_skipped", cp.skipped_bytes);
    json_uint(&j, "spliced_bytes", cp.spliced_bytes);
    json_uint(&j, "sendfile_bytes", cp.sendfile_bytes);
    json_uint(&j, "direct_bytes", cp.direct_bytes);
    json_uint(&j, "requests", cp.requests);
    json_double(&j, "seconds", dt, 3);
    json_double(&j, "mib_per_second", dt > 0 ? (double)cp.done_bytes / dt / 1048576 : 0, 1);
    json_double(&j, "cpu_user_seconds",
                (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6, 3);
    json_double(&j, "cpu_system_seconds",
                (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6, 3);
    json_bool(&j, "flushed", cp.flush && !cp.error);
    json_string(&j, "error", cp.error ? cp.errmsg : NULL);
    json_end(&j);
    if (json_finish(&j) < 0 && !rc) {
      fprintf(stderr, "shunt copy: writing the JSON summary failed\n");
      rc = 1;
    }
  }
  goto out;
oom:
  fprintf(stderr, "shunt copy: out of memory\n");
  rc = 1;
out:
  shunt_close(cp.src.h);
  shunt_close(cp.dst.h);
  if (cp.src.fd >= 0)
    close(cp.src.fd);
  if (cp.dst.fd >= 0)
    close(cp.dst.fd);
  if (cp.dst.dfd >= 0)
    close(cp.dst.dfd);
  for (unsigned i = 0; cp.slots && i < cp.nslots; i++) {
    free(cp.slots[i].buf);
    for (int k = 0; k < 2; k++)
      if (cp.slots[i].pipe[k] >= 0)
        close(cp.slots[i].pipe[k]);
  }
  free(cp.slots);
  free(cp.zerobuf);
  free(cp.ext);
  copy_io_exit(&cp.io);
  return rc;
}
