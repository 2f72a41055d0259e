/* endpoint_file.c: a local file or block device as a `shunt copy` endpoint
 * (see endpoint.h).  Reads and writes go through an io_uring (copy_io.c) so
 * that disk work overlaps the network; short transfers are continued here.
 * A destination writes its page-aligned parts with O_DIRECT while fewer than
 * direct_max such writes are in flight, the rest through the page cache.
 * Extents come from SEEK_DATA/SEEK_HOLE; zeroing uses fallocate or
 * BLKZEROOUT, and writes zeroes only where neither works. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/macros.h"
#include "tools/copy_io.h"
#include "tools/copy_same.h"
#include "tools/endpoint.h"

#define FILE_MAX_REQ (UINT64_C(1) << 30)
#define DIRECT_ALIGN 4096u   /* whole pages: direct and buffered writes never share one */
#define ZERO_CHUNK   (1u << 20)

struct file_ep {
  struct endpoint e;
  int fd;
  int dfd;                   /* opened O_DIRECT too (aligned writes), or -1 */
  bool blockdev;
  struct stat st;
  struct copy_io io;
  unsigned direct_busy, direct_max;
  unsigned char *zeros;      /* ZERO_CHUNK zero bytes, for writing zeroes */
};

static struct file_ep *file_ep(struct endpoint *e)
{
  return container_of(e, struct file_ep, e);
}

/* Queue the rest of io (from io->xfer): a read, or a write whose aligned part
 * goes O_DIRECT when allowed and whose odd tail follows buffered. */
static int queue_rest(struct file_ep *f, struct ep_io *io)
{
  uint64_t pos = io->xfer, off = io->off + pos, len = io->len - pos;
  if (!io->writing)
    return copy_io_queue(&f->io, false, f->fd, io->buf + pos, (uint32_t)len, off, io);
  uint64_t aligned = ROUND_DOWN(len, DIRECT_ALIGN);
  io->direct = f->dfd >= 0 && off % DIRECT_ALIGN == 0 && pos % DIRECT_ALIGN == 0 && aligned &&
               f->direct_busy < f->direct_max;
  f->direct_busy += io->direct;
  if (io->direct)
    len = aligned;
  return copy_io_queue(&f->io, true, io->direct ? f->dfd : f->fd, io->buf + pos, (uint32_t)len,
                       off, io);
}

static void fail_io(struct file_ep *f, struct ep_io *io, int err)
{
  char msg[600];
  snprintf(msg, sizeof msg, "%s: %s: %s", f->e.name, io->writing ? "write" : "read",
           err == -ENODATA ? "unexpected end of file" : strerror(-err));
  io->done(io, err, msg);
}

/* A read or write finished (res: bytes or -errno). */
static void on_done(void *tag, int res, void *ctx)
{
  struct ep_io *io = tag;
  struct file_ep *f = ctx;
  if (io->writing && io->direct) {
    f->direct_busy--;
    f->e.direct_bytes += res > 0 ? (uint64_t)res : 0;
    if (res == -EINVAL) {
      /* The device wants a larger alignment than pages: no O_DIRECT then. */
      close(f->dfd);
      f->dfd = -1;
      res = queue_rest(f, io);
      if (res == 0)
        return;
    }
  }
  if (res <= 0) {
    fail_io(f, io, res < 0 ? res : -ENODATA);
    return;
  }
  io->xfer += (uint64_t)res;
  if (io->xfer < io->len) {
    int r = queue_rest(f, io);
    if (r < 0)
      fail_io(f, io, r);
    return;
  }
  io->done(io, 0, NULL);
}

static int start(struct file_ep *f, struct ep_io *io, bool writing)
{
  io->xfer = 0;
  io->writing = writing;
  io->direct = false;
  int r = queue_rest(f, io);
  if (r < 0)
    snprintf(f->e.errmsg, sizeof f->e.errmsg, "%s: %s: %s", f->e.name,
             writing ? "write" : "read", strerror(-r));
  return r;
}

static int file_read(struct endpoint *e, struct ep_io *io)
{
  return start(file_ep(e), io, false);
}

static int file_write(struct endpoint *e, struct ep_io *io)
{
  return start(file_ep(e), io, true);
}

static int file_zero(struct endpoint *e, struct ep_io *io)
{
  struct file_ep *f = file_ep(e);
  int r = fallocate(f->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)io->off,
                    (off_t)io->len);
  if (r < 0 && f->blockdev) {
    uint64_t range[2] = { io->off, io->len };
    r = ioctl(f->fd, BLKZEROOUT, range);
  }
  if (r == 0)
    return 1;
  /* No way to zero cheaply: write zeroes. */
  if (!f->zeros && !(f->zeros = calloc(1, ZERO_CHUNK))) {
    snprintf(e->errmsg, sizeof e->errmsg, "out of memory");
    return -ENOMEM;
  }
  for (uint64_t p = 0; p < io->len;) {
    size_t l = (size_t)MIN(io->len - p, (uint64_t)ZERO_CHUNK);
    ssize_t n = pwrite(f->fd, f->zeros, l, (off_t)(io->off + p));
    if (n <= 0) {
      r = n < 0 ? -errno : -EIO;
      if (r == -EINTR)
        continue;
      snprintf(e->errmsg, sizeof e->errmsg, "%s: write: %s", e->name, strerror(-r));
      return r;
    }
    p += (uint64_t)n;
  }
  return 1;
}

static int file_extents(struct endpoint *e, uint64_t off, uint64_t len, ep_extent_fn fn,
                        void *user)
{
  struct file_ep *f = file_ep(e);
  uint64_t pos = off, end = off + len;
  while (pos < end) {
    off_t d = lseek(f->fd, (off_t)pos, SEEK_DATA);
    if (d < 0 && errno == ENXIO) {
      d = (off_t)end; /* the rest is a hole */
    } else if (d < 0) {
      fn(user, pos, end - pos, false); /* no SEEK_DATA: all data */
      return 0;
    }
    uint64_t du = MIN((uint64_t)d, end);
    if (du > pos)
      fn(user, pos, du - pos, true);
    if (du >= end)
      break;
    off_t hl = lseek(f->fd, d, SEEK_HOLE);
    uint64_t hu = hl < 0 ? end : MIN((uint64_t)hl, end);
    fn(user, du, hu - du, false);
    pos = hu;
  }
  return 0;
}

static int file_flush(struct endpoint *e)
{
  if (fsync(file_ep(e)->fd) == 0)
    return 0;
  int r = -errno;
  snprintf(e->errmsg, sizeof e->errmsg, "%s", strerror(-r));
  return r;
}

static int file_submit(struct endpoint *e)
{
  int r = copy_io_submit(&file_ep(e)->io);
  if (r < 0)
    snprintf(e->errmsg, sizeof e->errmsg, "io_uring submit: %s", strerror(-r));
  return r;
}

static int file_reap(struct endpoint *e)
{
  struct file_ep *f = file_ep(e);
  return copy_io_reap(&f->io, on_done, f);
}

static unsigned file_pollfds(struct endpoint *e, struct pollfd *pfd, unsigned max)
{
  struct file_ep *f = file_ep(e);
  if (!f->io.pending || max < 1)
    return 0;
  pfd[0] = (struct pollfd){ .fd = copy_io_fd(&f->io), .events = POLLIN };
  return 1;
}

static int file_process(struct endpoint *e, const struct pollfd *pfd, unsigned n)
{
  (void)pfd;
  (void)n;
  return file_reap(e);
}

static int file_close(struct endpoint *e, char *err, size_t errlen)
{
  struct file_ep *f = file_ep(e);
  int r = 0;
  if (f->dfd >= 0 && close(f->dfd) < 0)
    r = -errno;
  if (f->fd >= 0 && close(f->fd) < 0 && !r)
    r = -errno;
  if (r && errlen)
    snprintf(err, errlen, "%s: close: %s", e->name, strerror(-r));
  copy_io_exit(&f->io);
  free(f->zeros);
  free(f);
  return r;
}

static const struct endpoint_ops file_ops = {
  .read = file_read,
  .write = file_write,
  .zero = file_zero,
  .extents = file_extents,
  .flush = file_flush,
  .submit = file_submit,
  .reap = file_reap,
  .pollfds = file_pollfds,
  .process = file_process,
  .close = file_close,
};

int endpoint_open_file(struct endpoint **ep, const char *name, const struct endpoint_params *p,
                       char *err, size_t errlen)
{
  struct file_ep *f = calloc(1, sizeof *f);
  if (!f) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  f->e.ops = &file_ops;
  f->e.name = name;
  f->e.fd = f->fd = f->dfd = -1;
  f->e.st = &f->st;
  f->e.max_req = FILE_MAX_REQ;
  f->direct_max = p->direct_max ? p->direct_max : 1;
  f->fd = open(name, p->write ? O_WRONLY | O_CREAT | O_CLOEXEC : O_RDONLY | O_CLOEXEC, 0644);
  if (f->fd < 0 || fstat(f->fd, &f->st) < 0) {
    snprintf(err, errlen, "%s: %s", name, strerror(errno));
    goto fail;
  }
  /* The destination is truncated below: never when it is the source (the
   * same path, a symlink or hard link to it, or the same block device). */
  if (p->write && p->source && p->source->st && copy_same_file(p->source->st, &f->st)) {
    snprintf(err, errlen, "%s and %s are the same file", p->source->name, name);
    goto fail;
  }
  if (S_ISBLK(f->st.st_mode)) {
    f->blockdev = true;
    if (ioctl(f->fd, BLKGETSIZE64, &f->e.size) < 0) {
      snprintf(err, errlen, "%s: BLKGETSIZE64: %s", name, strerror(errno));
      goto fail;
    }
  } else if (S_ISREG(f->st.st_mode)) {
    f->e.size = (uint64_t)f->st.st_size;
    if (p->write) {
      /* A regular destination file is recreated sparse: holes need no writing.
       * A new (empty) one is only extended: on ext4, truncating to 0 arms
       * auto_da_alloc, and close() then writes back the whole copy itself. */
      if ((f->st.st_size > 0 && ftruncate(f->fd, 0) < 0) || ftruncate(f->fd, (off_t)p->size) < 0) {
        snprintf(err, errlen, "%s: truncate: %s", name, strerror(errno));
        goto fail;
      }
      f->e.size = p->size;
      f->e.fresh = true;
    }
  } else {
    snprintf(err, errlen, "%s: not a regular file, block device or NBD URI", name);
    goto fail;
  }
  /* Aligned writes bypass the page cache: no copy into it, and no dirty
   * pages for the kernel to write back later.  Where O_DIRECT is refused
   * (some file systems), every write stays buffered. */
  if (p->write && p->direct)
    f->dfd = open(name, O_WRONLY | O_DIRECT | O_CLOEXEC);
  int r = copy_io_init(&f->io, p->depth ? p->depth : 1);
  if (r < 0) {
    snprintf(err, errlen, "io_uring: %s", strerror(-r));
    goto fail;
  }
  f->e.fd = f->fd;
  *ep = &f->e;
  return 0;
fail:
  file_close(&f->e, NULL, 0);
  return -1;
}
