/* file.c: the `file` backend: a regular file or a block device.  All data I/O
 * goes through the worker's io_uring (READ/WRITE with RWF_DSYNC for FUA,
 * READ with RWF_NOWAIT for BIO_NOWAIT, FSYNC for FLUSH, FALLOCATE for TRIM
 * and WRITE_ZEROES, FADVISE for CACHE); allocation extents come from
 * lseek(SEEK_DATA/SEEK_HOLE). */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "backend/backend.h"

#define ZERO_CHUNK (1u << 20)   /* writing zeroes by hand: this much per write */

struct file_priv {
  atomic_bool no_punch;        /* fallocate(PUNCH_HOLE) said EOPNOTSUPP */
  atomic_bool no_zero_range;   /* fallocate(ZERO_RANGE) said EOPNOTSUPP */
  bool sparse;                 /* SEEK_DATA works: extents are meaningful */
  /* The last data extent lseek found, so that reads inside it (every read of
   * a fully allocated image) cost no lseek: [data_start, data_end), empty
   * when equal.  Writes only turn holes into data, so they leave it valid;
   * TRIM and WRITE_ZEROES may punch holes, so they clear it and bump ext_gen,
   * and a lookup that raced with them does not store what it found. */
  pthread_mutex_t ext_lock;
  uint64_t data_start, data_end, ext_gen;
};

static uint8_t *zero_chunk;
static pthread_once_t zero_once = PTHREAD_ONCE_INIT;

static void zero_init(void)
{
  zero_chunk = calloc(1, ZERO_CHUNK);
}

/* A shared, never-written buffer of zeroes for filesystems without fallocate. */
static const uint8_t *zero_buffer(void)
{
  pthread_once(&zero_once, zero_init);
  return zero_chunk;
}

enum { ST_MAIN, ST_ZERO_RANGE, ST_ZERO_WRITE, ST_SYNC };

static void file_step(struct bio *io);

/* A write (of data or of zeroes) completed res bytes: resubmit the rest and
 * return true, or leave the final status in *res (0, or -errno; a write of
 * nothing is -EIO) and return false. */
static bool write_advance(struct bio *io, int *res)
{
  if (*res < 0)
    return false;
  if (*res == 0) {
    *res = -EIO;
    return false;
  }
  io->progress += (unsigned)*res;
  if (io->progress < io->length) {
    file_step(io);
    return true;
  }
  *res = 0;
  return false;
}

/* Forget the cached data extent (before and after anything that may punch holes). */
static void ext_forget(struct file_priv *p)
{
  pthread_mutex_lock(&p->ext_lock);
  p->data_start = p->data_end = 0;
  p->ext_gen++;
  pthread_mutex_unlock(&p->ext_lock);
}

static void file_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct bio *io = (struct bio *)((char *)op - offsetof(struct bio, op));
  struct backend *b = io->be;
  struct file_priv *p = b->priv;
  (void)flags;

  /* A BIO_NOWAIT read's -EAGAIN is its answer (not cached), not a retry. */
  if (res == -EINTR || (res == -EAGAIN && !(io->type == BIO_READ && (io->flags & BIO_NOWAIT)))) {
    file_step(io);
    return;
  }
  switch (io->type) {
  case BIO_READ:
    if (res < 0)
      break;
    if (res == 0) {
      /* Past the end of a file that shrank under us: those bytes are gone,
       * an I/O error (as the splice, direct and mmap paths say too), not
       * zeroes the client would take for data. */
      res = -EIO;
      break;
    }
    io->progress += (unsigned)res;
    if (io->progress < io->length) {
      file_step(io);
      return;
    }
    res = 0;
    break;
  case BIO_WRITE:
    if (io->stage == ST_SYNC)
      break;
    if (write_advance(io, &res))
      return;
    break;
  case BIO_TRIM:
    if (io->stage == ST_MAIN) {
      if (res == -EOPNOTSUPP || res == -ENOTSUP) {
        atomic_store(&p->no_punch, true);
        res = 0;   /* trim is advisory */
      }
      if (res == 0 && (io->flags & BIO_FUA)) {
        io->stage = ST_SYNC;
        file_step(io);
        return;
      }
    }
    break;
  case BIO_ZERO:
    if (io->stage == ST_MAIN || io->stage == ST_ZERO_RANGE) {
      if (res == -EOPNOTSUPP || res == -ENOTSUP || res == -EINVAL) {
        /* EINVAL (e.g. an unaligned range on a block device) only rules out
         * this request; EOPNOTSUPP rules the mode out for good. */
        bool never = res != -EINVAL;
        if (io->stage == ST_MAIN && !(io->flags & BIO_NO_HOLE)) {
          if (never)
            atomic_store(&p->no_punch, true);
          io->stage = ST_ZERO_RANGE;
        } else {
          if (never)
            atomic_store(&p->no_zero_range, true);
          if (io->flags & BIO_FAST_ZERO) { res = -ENOTSUP; break; }
          io->stage = ST_ZERO_WRITE;
        }
        file_step(io);
        return;
      }
      if (res == 0 && (io->flags & BIO_FUA)) {
        io->stage = ST_SYNC;
        file_step(io);
        return;
      }
    } else if (io->stage == ST_ZERO_WRITE) {
      if (write_advance(io, &res))
        return;
    }
    break;
  case BIO_CACHE:
    res = 0;   /* a hint: failure changes nothing the client can see */
    break;
  case BIO_FLUSH:
  case BIO_EXTENTS:   /* answered by backend_submit() */
    break;
  }
  if (io->type == BIO_TRIM || io->type == BIO_ZERO)
    ext_forget(p);
  io->complete(io, res < 0 ? res : 0);
}

static void file_step(struct bio *io)
{
  struct backend *b = io->be;
  struct file_priv *p = b->priv;
  struct io_uring_sqe *sqe;
  uint64_t left = io->length - io->progress;

  io->op.cb = file_cb;
  switch (io->type) {
  case BIO_READ:
    sqe = engine_sqe(io->eng, &io->op);
    io_uring_prep_read(sqe, b->fd, (char *)io->buf + io->progress,
                       left > (1u << 30) ? (1u << 30) : (unsigned)left, io->offset + io->progress);
    if (io->flags & BIO_NOWAIT)
      sqe->rw_flags = RWF_NOWAIT;
    if (b->io_async)
      sqe->flags |= IOSQE_ASYNC;
    return;
  case BIO_WRITE:
    if (io->stage == ST_SYNC)
      break;
    sqe = engine_sqe(io->eng, &io->op);
    io_uring_prep_write(sqe, b->fd, (const char *)io->buf + io->progress,
                        left > (1u << 30) ? (1u << 30) : (unsigned)left, io->offset + io->progress);
    if (io->flags & BIO_FUA)
      sqe->rw_flags = RWF_DSYNC;
    if (b->io_async)
      sqe->flags |= IOSQE_ASYNC;
    return;
  case BIO_FLUSH:
  case BIO_EXTENTS:   /* answered by backend_submit() */
    break;
  case BIO_TRIM:
    if (io->stage == ST_SYNC)
      break;
    if (atomic_load(&p->no_punch)) {
      io->stage = (io->flags & BIO_FUA) ? ST_SYNC : ST_MAIN;
      if (io->stage == ST_MAIN) {
        backend_complete_later(io, 0);
        return;
      }
      break;
    }
    sqe = engine_sqe(io->eng, &io->op);
    io_uring_prep_fallocate(sqe, b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, io->offset, io->length);
    return;
  case BIO_ZERO:
    if (io->stage == ST_SYNC)
      break;
    if (io->stage == ST_MAIN && ((io->flags & BIO_NO_HOLE) || atomic_load(&p->no_punch)))
      io->stage = ST_ZERO_RANGE;
    if (io->stage == ST_ZERO_RANGE && atomic_load(&p->no_zero_range)) {
      if (io->flags & BIO_FAST_ZERO) {
        backend_complete_later(io, -ENOTSUP);   /* asked to fail rather than write zeroes */
        return;
      }
      io->stage = ST_ZERO_WRITE;
    }
    if (io->stage == ST_ZERO_WRITE) {
      const uint8_t *z = zero_buffer();
      if (!z) {
        backend_complete_later(io, -ENOMEM);
        return;
      }
      sqe = engine_sqe(io->eng, &io->op);
      io_uring_prep_write(sqe, b->fd, z, left > ZERO_CHUNK ? ZERO_CHUNK : (unsigned)left,
                          io->offset + io->progress);
      if (io->flags & BIO_FUA)
        sqe->rw_flags = RWF_DSYNC;
      return;
    }
    sqe = engine_sqe(io->eng, &io->op);
    io_uring_prep_fallocate(sqe, b->fd,
                            (io->stage == ST_MAIN ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE)
                            | FALLOC_FL_KEEP_SIZE, io->offset, io->length);
    return;
  case BIO_CACHE:
    sqe = engine_sqe(io->eng, &io->op);
    io_uring_prep_fadvise(sqe, b->fd, io->offset, (off_t)io->length, POSIX_FADV_WILLNEED);
    return;
  }
  /* FLUSH, and the durability step after TRIM/ZERO with FUA. */
  io->stage = ST_SYNC;
  sqe = engine_sqe(io->eng, &io->op);
  io_uring_prep_fsync(sqe, b->fd, IORING_FSYNC_DATASYNC);
}

static void file_submit(struct backend *b, struct engine *e, struct bio *io)
{
  struct file_priv *p = b->priv;
  (void)e;
  if (io->type == BIO_TRIM || io->type == BIO_ZERO)
    ext_forget(p);
  if (io->length == 0 && io->type != BIO_FLUSH) {
    backend_complete_later(io, 0);
    return;
  }
  file_step(io);
}

static int file_extents(struct backend *b, uint64_t offset, uint64_t length,
                        struct backend_extent *ext, size_t max, size_t *n)
{
  struct file_priv *p = b->priv;
  uint64_t pos = offset, end = offset + length, stop, gen;
  size_t k = 0;
  bool gone = false;   /* pos is past the end of the file as it is now */

  if (end > b->size)
    end = b->size;
  if (!p->sparse) {
    ext[0].length = end - offset;
    ext[0].flags = 0;
    *n = 1;
    return 0;
  }
  pthread_mutex_lock(&p->ext_lock);
  gen = p->ext_gen;
  if (pos >= p->data_start && pos < p->data_end) {   /* inside the known data extent */
    stop = p->data_end < end ? p->data_end : end;
    ext[k].length = stop - pos, ext[k].flags = 0, k++;
    pos = stop;
  }
  pthread_mutex_unlock(&p->ext_lock);
  while (pos < end && k < max) {
    off_t data = lseek(b->fd, (off_t)pos, SEEK_DATA);
    uint32_t flags;
    if (data < 0 && errno != ENXIO)
      return -errno;
    if (data < 0) {
      /* No data from pos on: a hole up to the end of the file, or pos is past
       * the end of a file that shrank under us.  What is past the end is not
       * a hole: stop there, so that a read of it fails (EIO) on every data
       * path instead of going out as zeroes. */
      struct stat st;
      if (fstat(b->fd, &st) < 0)
        return -errno;
      if (S_ISREG(st.st_mode) && (uint64_t)st.st_size < end) {
        if ((uint64_t)st.st_size <= pos) {
          gone = true;
          break;
        }
        end = (uint64_t)st.st_size;
      }
    }
    if (data < 0 || (uint64_t)data > pos) {
      stop = data < 0 ? end : (uint64_t)data;
      flags = BACKEND_EXTENT_HOLE | BACKEND_EXTENT_ZERO;
    } else {
      off_t hole = lseek(b->fd, (off_t)pos, SEEK_HOLE);
      if (hole < 0)
        return -errno;
      stop = (uint64_t)hole;
      flags = 0;
      if (stop > pos) {
        pthread_mutex_lock(&p->ext_lock);
        if (p->ext_gen == gen)
          p->data_start = pos, p->data_end = stop;
        pthread_mutex_unlock(&p->ext_lock);
      }
    }
    if (stop > end)
      stop = end;
    if (stop <= pos)   /* the file changed under us: report the rest as data */
      stop = end, flags = 0;
    if (k > 0 && ext[k - 1].flags == flags)
      ext[k - 1].length += stop - pos;
    else
      ext[k].length = stop - pos, ext[k].flags = flags, k++;
    pos = stop;
  }
  *n = k;
  return k ? 0 : gone ? -EIO : -EINVAL;
}

static int file_flush_sync(struct backend *b)
{
  return fdatasync(b->fd) < 0 ? -errno : 0;
}

static void file_close(struct backend *b)
{
  struct file_priv *p = b->priv;
  if (p)
    pthread_mutex_destroy(&p->ext_lock);
  close(b->fd);
  free(b->priv);
  free(b);
}

static const struct backend_ops file_ops = {
  .name = "file",
  .submit = file_submit,
  .extents = file_extents,
  .flush_sync = file_flush_sync,
  .close = file_close,
};

/* File systems whose I/O may block on a server or a user-space daemon
 * (backend.io_async). */
static bool io_may_block(int fd)
{
  static const unsigned long magic[] = {
    0x65735546,    /* FUSE */
    0x6969,        /* NFS */
    0xff534d42,    /* CIFS */
    0xfe534d42,    /* SMB2 */
    0x00c36400,    /* Ceph */
    0x01021997,    /* 9p */
    0x5346414f,    /* AFS */
    0x47504653,    /* GPFS */
    0x0bd00bd0,    /* Lustre */
  };
  struct statfs fs;

  if (fd < 0 || fstatfs(fd, &fs) < 0)
    return false;
  for (size_t i = 0; i < sizeof magic / sizeof magic[0]; i++)
    if ((unsigned long)(unsigned)fs.f_type == magic[i])
      return true;
  return false;
}

int backend_file_open(const char *path, bool read_only, struct backend **out, char *err, size_t errlen)
{
  struct backend *b;
  struct file_priv *p;
  struct stat st;
  int fd, r;

  fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) {
    r = -errno;
    snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
    return r;
  }
  if (fstat(fd, &st) < 0) {
    r = -errno;
    snprintf(err, errlen, "cannot stat '%s': %s", path, strerror(errno));
    close(fd);
    return r;
  }
  b = calloc(1, sizeof *b);
  p = calloc(1, sizeof *p);
  if (!b || !p) {
    free(b); free(p); close(fd);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  pthread_mutex_init(&p->ext_lock, NULL);
  b->ops = &file_ops;
  b->fd = fd;
  b->io_async = io_may_block(fd);
  b->priv = p;
  b->read_only = read_only;
  if (S_ISREG(st.st_mode)) {
    b->size = (uint64_t)st.st_size;
    /* SEEK_DATA answers on every Linux filesystem; on those without holes it
     * reports everything as data, which is still correct. */
    p->sparse = lseek(fd, 0, SEEK_DATA) >= 0 || errno == ENXIO;
  } else if (S_ISBLK(st.st_mode)) {
    uint64_t size;
    if (ioctl(fd, BLKGETSIZE64, &size) < 0) {
      r = -errno;
      snprintf(err, errlen, "cannot size block device '%s': %s", path, strerror(errno));
      file_close(b);
      return r;
    }
    b->size = size;
    b->is_blockdev = true;
    int rot = 0;
    char sys[128];
    snprintf(sys, sizeof sys, "/sys/dev/block/%u:%u/queue/rotational", major(st.st_rdev), minor(st.st_rdev));
    FILE *f = fopen(sys, "r");
    if (f) {
      if (fscanf(f, "%d", &rot) != 1) rot = 0;
      fclose(f);
    }
    b->rotational = rot == 1;
  } else {
    snprintf(err, errlen, "'%s' is neither a regular file nor a block device", path);
    file_close(b);
    return -EINVAL;
  }
  b->can_flush = b->can_cache = true;
  b->can_trim = b->can_zero = b->can_fast_zero = !read_only;
  *out = b;
  return 0;
}
