/* fuse_disk.c: the FUSE low-level operations of `shunt fuse`.  One inode (or two:
 * a root directory holding the file) whose reads, writes, fsync and fallocate become
 * NBD READ, WRITE, FLUSH, WRITE_ZEROES and TRIM through libshunt.  Every operation
 * runs synchronously on the FUSE worker thread that received it; libshunt's handle
 * is shared, so N busy workers keep N requests in flight. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/checked.h"
#include "common/macros.h"
#include "tools/fuse_disk.h"

#define DISK_INO_DIR FUSE_ROOT_ID
#define ATTR_TIMEOUT 3600.0 /* the size never changes; nothing else matters */

static struct fuse_disk *disk_of(fuse_req_t req)
{
  return fuse_req_userdata(req);
}

static fuse_ino_t disk_ino(const struct fuse_disk *d)
{
  return d->file_root ? FUSE_ROOT_ID : FUSE_ROOT_ID + 1;
}

/* Failures of the connection itself reach the kernel as EIO; the server's own errors
 * (ENOSPC, EPERM, EINVAL...) pass through. */
static int disk_errno(struct fuse_disk *d, int e)
{
  atomic_fetch_add(&d->st.errors, 1);
  /* Every failure but a local allocation comes from libshunt, which names the request. */
  log_msg(LOG_ERROR, NULL, NULL, "%s", e == -ENOMEM ? strerror(ENOMEM) : shunt_last_error(d->h));
  switch (-e) {
  case ECONNRESET: case ENOTCONN: case EPROTO: case ECANCELED: case EPIPE:
    return EIO;
  default:
    return -e;
  }
}

static void disk_attr(const struct fuse_disk *d, fuse_ino_t ino, struct stat *st)
{
  memset(st, 0, sizeof *st);
  st->st_ino = ino;
  st->st_uid = getuid();
  st->st_gid = getgid();
  st->st_atim = st->st_mtim = st->st_ctim = d->mtime;
  if (ino != disk_ino(d)) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
    return;
  }
  st->st_mode = S_IFREG | (d->read_only ? 0444 : 0644);
  st->st_nlink = 1;
  st->st_size = (off_t)d->size;
  st->st_blocks = (blkcnt_t)((d->size + 511) / 512);
  st->st_blksize = d->pref_block ? d->pref_block : 4096;
}

static bool disk_valid_ino(const struct fuse_disk *d, fuse_ino_t ino)
{
  return ino == FUSE_ROOT_ID || ino == disk_ino(d);
}

static void stat_max(atomic_uint_fast64_t *m, uint64_t v)
{
  uint_fast64_t cur = atomic_load(m);
  while (v > cur && !atomic_compare_exchange_weak(m, &cur, v))
    ;
}

/* ---- Buffers ---- */

struct thread_buf {
  size_t cap;
  char data[];
};

/* This worker thread's buffer of at least len bytes (kept for its next request). */
static void *thread_buf(struct fuse_disk *d, size_t len)
{
  struct thread_buf *b = pthread_getspecific(d->buf_key);
  if (b && b->cap >= len)
    return b->data;
  size_t cap = len < 65536 ? 65536 : len;
  struct thread_buf *n = malloc(sizeof *n + cap);
  if (!n)
    return NULL;
  n->cap = cap;
  free(b);
  pthread_setspecific(d->buf_key, n);
  return n->data;
}

int fuse_disk_init(struct fuse_disk *d)
{
  int e = pthread_rwlock_init(&d->rmw, NULL);
  if (e)
    return -e;
  e = pthread_key_create(&d->buf_key, free);
  if (e) {
    pthread_rwlock_destroy(&d->rmw);
    return -e;
  }
  if (!d->align)
    d->align = 1;
  return 0;
}

void fuse_disk_fini(struct fuse_disk *d)
{
  free(pthread_getspecific(d->buf_key)); /* the main thread's, if it read */
  pthread_setspecific(d->buf_key, NULL);
  pthread_key_delete(d->buf_key);
  pthread_rwlock_destroy(&d->rmw);
}

/* ---- Aligned access ---- */

/* [*a, *e): [off, off+len) widened to the minimum block, capped at the export's end
 * (the end itself is a valid request boundary). */
static void disk_widen(const struct fuse_disk *d, uint64_t off, uint64_t len, uint64_t *a,
                       uint64_t *e)
{
  *a = off / d->align * d->align;
  uint64_t end = off + len;
  uint64_t r = end % d->align;
  *e = r ? end + (d->align - r) : end;
  if (*e > d->size)
    *e = d->size;
}

static bool disk_aligned(const struct fuse_disk *d, uint64_t off, uint64_t len)
{
  return off % d->align == 0 && (len % d->align == 0 || off + len == d->size);
}

/* Write [off, off+len) of the export, any alignment: unaligned edges are widened to
 * the server's minimum block by read-modify-write under the exclusive lock.  0 or -errno. */
static int disk_pwrite(struct fuse_disk *d, const void *buf, size_t len, uint64_t off)
{
  if (!range_within(off, len, d->size))
    return -EINVAL;
  int r;
  if (disk_aligned(d, off, len)) {
    pthread_rwlock_rdlock(&d->rmw);
    r = shunt_pwrite(d->h, buf, len, off, 0);
    pthread_rwlock_unlock(&d->rmw);
    return r;
  }
  /* Read-modify-write of the partial blocks at either end.  The exclusive lock keeps
   * a concurrent write to the same block from being undone by our write-back. */
  uint64_t a, e;
  disk_widen(d, off, len, &a, &e);
  char *b = malloc(e - a);
  if (!b)
    return -ENOMEM;
  atomic_fetch_add(&d->st.rmw, 1);
  pthread_rwlock_wrlock(&d->rmw);
  uint64_t first_end = a + d->align < e ? a + d->align : e; /* the first block */
  uint64_t last = (e - 1) / d->align * d->align;             /* the last block */
  r = 0;
  if (off != a)
    r = shunt_pread(d->h, b, first_end - a, a, 0);
  if (!r && off + len != e && !(off != a && last == a))
    r = shunt_pread(d->h, b + (last - a), e - last, last, 0);
  if (!r) {
    memcpy(b + (off - a), buf, len);
    r = shunt_pwrite(d->h, b, e - a, a, 0);
  }
  pthread_rwlock_unlock(&d->rmw);
  free(b);
  return r;
}

/* ---- Operations ---- */

static void op_init(void *user, struct fuse_conn_info *conn)
{
  struct fuse_disk *d = user;
  if (conn->capable & FUSE_CAP_ASYNC_DIO)
    conn->want |= FUSE_CAP_ASYNC_DIO;
  d->async_dio = conn->want & FUSE_CAP_ASYNC_DIO;
  /* libfuse offers up to 1 MiB (256 pages) when the kernel takes FUSE_MAX_PAGES. */
  if (conn->max_write > d->max_io)
    conn->max_write = d->max_io;
  d->max_write = conn->max_write;
  /* Room for many asynchronous direct I/O requests (loop --direct-io=on). */
  conn->max_background = 128;
  conn->congestion_threshold = 96;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
  struct fuse_disk *d = disk_of(req);
  if (d->file_root || parent != FUSE_ROOT_ID || strcmp(name, d->name)) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  struct fuse_entry_param e = { .ino = disk_ino(d), .attr_timeout = ATTR_TIMEOUT,
                                .entry_timeout = ATTR_TIMEOUT };
  disk_attr(d, e.ino, &e.attr);
  fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  (void)fi;
  struct fuse_disk *d = disk_of(req);
  if (!disk_valid_ino(d, ino)) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  struct stat st;
  disk_attr(d, ino, &st);
  fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

/* The size is the export's and cannot change; times and modes are not stored. */
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
  struct fuse_disk *d = disk_of(req);
  if ((to_set & FUSE_SET_ATTR_SIZE) && (ino != disk_ino(d) || (uint64_t)attr->st_size != d->size)) {
    fuse_reply_err(req, EPERM);
    return;
  }
  op_getattr(req, ino, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
  (void)fi;
  struct fuse_disk *d = disk_of(req);
  if (ino != FUSE_ROOT_ID || d->file_root) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  const char *names[] = { ".", "..", d->name };
  fuse_ino_t inos[] = { FUSE_ROOT_ID, FUSE_ROOT_ID, disk_ino(d) };
  char buf[1024];
  size_t pos = 0;
  if (size > sizeof buf)
    size = sizeof buf;
  for (off_t i = off; i >= 0 && i < 3; i++) {
    struct stat st;
    disk_attr(d, inos[i], &st);
    size_t n = fuse_add_direntry(req, buf + pos, size - pos, names[i], &st, i + 1);
    if (n > size - pos)
      break;
    pos += n;
  }
  fuse_reply_buf(req, buf, pos);
}

/* Direct I/O: the kernel caches nothing of the file, so every read reaches the
 * server and sees what other clients wrote (the loop device and the file system
 * above it keep their own caches). */
static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct fuse_disk *d = disk_of(req);
  if (ino != disk_ino(d)) {
    fuse_reply_err(req, EISDIR);
    return;
  }
  if (d->read_only && (fi->flags & O_ACCMODE) != O_RDONLY) {
    fuse_reply_err(req, EROFS);
    return;
  }
  fi->direct_io = 1;
  fi->keep_cache = 0;
  fi->noflush = 1; /* close() needs no round trip: fsync is what flushes */
  fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
  (void)ino; (void)fi;
  struct fuse_disk *d = disk_of(req);
  if (off < 0 || (uint64_t)off >= d->size || size == 0) {
    fuse_reply_buf(req, NULL, 0);
    return;
  }
  uint64_t n = d->size - (uint64_t)off;
  if (n > size)
    n = size;
  uint64_t a, e;
  disk_widen(d, (uint64_t)off, n, &a, &e);
  char *b = thread_buf(d, e - a);
  if (!b) {
    fuse_reply_err(req, ENOMEM);
    return;
  }
  int r = shunt_pread(d->h, b, e - a, a, 0);
  if (r) {
    fuse_reply_err(req, disk_errno(d, r));
    return;
  }
  atomic_fetch_add(&d->st.reads, 1);
  atomic_fetch_add(&d->st.bytes_read, n);
  stat_max(&d->st.max_read, n);
  fuse_reply_buf(req, b + ((uint64_t)off - a), n);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
  (void)ino; (void)fi;
  struct fuse_disk *d = disk_of(req);
  if (off < 0) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  if (size && (uint64_t)off >= d->size) {
    fuse_reply_err(req, ENOSPC);
    return;
  }
  uint64_t n = d->size - (uint64_t)off;
  if (n > size)
    n = size; /* a short write at the end; the next one gets ENOSPC */
  int r = n ? disk_pwrite(d, buf, n, (uint64_t)off) : 0;
  if (r) {
    fuse_reply_err(req, disk_errno(d, r));
    return;
  }
  atomic_fetch_add(&d->st.writes, 1);
  atomic_fetch_add(&d->st.bytes_written, n);
  stat_max(&d->st.max_write, n);
  fuse_reply_write(req, n);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
  (void)ino; (void)datasync; (void)fi;
  struct fuse_disk *d = disk_of(req);
  int r = d->can_flush ? shunt_flush(d->h) : 0;
  if (r) {
    fuse_reply_err(req, disk_errno(d, r));
    return;
  }
  if (d->can_flush)
    atomic_fetch_add(&d->st.flushes, 1);
  fuse_reply_err(req, 0);
}

/* Zero or trim [off, off+len): the aligned middle by one command, the partial blocks
 * at the edges by writing zeros (for trim they are left alone: trim is advisory). */
static int disk_zero_range(struct fuse_disk *d, uint64_t off, uint64_t len, bool trim,
                           unsigned flags)
{
  uint64_t a = (off + d->align - 1) / d->align * d->align;
  uint64_t e = (off + len) / d->align * d->align;
  if (off + len == d->size)
    e = d->size;
  int r = 0;
  if (a < e) { /* shared lock: a concurrent read-modify-write must not undo it */
    pthread_rwlock_rdlock(&d->rmw);
    r = trim ? shunt_trim(d->h, a, e - a, 0) : shunt_zero(d->h, a, e - a, flags);
    pthread_rwlock_unlock(&d->rmw);
  }
  if (r || trim)
    return r;
  if (a > e) /* the whole range lies inside one block */
    a = e = off + len;
  static const char zeros[4096];
  uint64_t edges[2][2] = { { off, a - off }, { e, off + len - e } };
  for (int i = 0; i < 2 && !r; i++)
    for (uint64_t p = edges[i][0], left = edges[i][1]; left && !r;) {
      uint64_t n = left < sizeof zeros ? left : sizeof zeros;
      r = disk_pwrite(d, zeros, n, p);
      p += n;
      left -= n;
    }
  return r;
}

/* The loop driver sends discard as PUNCH_HOLE and WRITE_ZEROES as PUNCH_HOLE or (with
 * NOUNMAP) ZERO_RANGE, always with KEEP_SIZE.  PUNCH_HOLE promises zeros on later
 * reads, which NBD's TRIM does not (the spec: the client MUST NOT assume anything
 * about the contents), so by default it becomes WRITE_ZEROES without NO_HOLE, which
 * lets the server deallocate; --discard=trim sends TRIM instead. */
static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t length,
                         struct fuse_file_info *fi)
{
  (void)ino; (void)fi;
  struct fuse_disk *d = disk_of(req);
  int what = mode & ~FALLOC_FL_KEEP_SIZE;
  if (off < 0 || length <= 0) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  if (what != FALLOC_FL_PUNCH_HOLE && what != FALLOC_FL_ZERO_RANGE) {
    fuse_reply_err(req, EOPNOTSUPP); /* no space can be reserved on an NBD export */
    return;
  }
  if (d->read_only) {
    fuse_reply_err(req, EROFS);
    return;
  }
  uint64_t o = (uint64_t)off, n = (uint64_t)length;
  if (o >= d->size || n > d->size - o) {
    if (!(mode & FALLOC_FL_KEEP_SIZE)) {
      fuse_reply_err(req, EFBIG); /* the export cannot grow */
      return;
    }
    n = o >= d->size ? 0 : d->size - o;
  }
  bool trim = what == FALLOC_FL_PUNCH_HOLE && d->discard == FUSE_DISCARD_TRIM;
  if (trim ? !d->can_trim : !d->can_zero) {
    fuse_reply_err(req, EOPNOTSUPP);
    return;
  }
  unsigned flags = what == FALLOC_FL_ZERO_RANGE ? SHUNT_CMD_NO_HOLE : 0;
  int r = n ? disk_zero_range(d, o, n, trim, flags) : 0;
  if (r) {
    fuse_reply_err(req, disk_errno(d, r));
    return;
  }
  atomic_fetch_add(trim ? &d->st.trims : &d->st.zeroes, 1);
  fuse_reply_err(req, 0);
}

/* SEEK_DATA/SEEK_HOLE from base:allocation, so sparse-aware readers of the file
 * (cp --sparse, qemu-img convert) skip the export's holes.  HOLE extents are holes;
 * without block status the whole file is data, as for any file system. */
struct seek_ctx {
  bool want_hole, found;
  uint64_t at, end;
};

static void seek_extent(void *user, const char *context, uint64_t off, uint64_t len,
                        uint32_t flags)
{
  struct seek_ctx *c = user;
  if (strcmp(context, "base:allocation"))
    return;
  if (!c->found && !!(flags & SHUNT_EXTENT_HOLE) == c->want_hole) {
    c->found = true;
    c->at = off;
  }
  if (off + len > c->end)
    c->end = off + len;
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                     struct fuse_file_info *fi)
{
  (void)ino; (void)fi;
  struct fuse_disk *d = disk_of(req);
  if (whence != SEEK_DATA && whence != SEEK_HOLE) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  if (off < 0 || (uint64_t)off >= d->size) {
    fuse_reply_err(req, ENXIO);
    return;
  }
  uint64_t o = (uint64_t)off;
  if (!d->block_status) {
    fuse_reply_lseek(req, whence == SEEK_DATA ? off : (off_t)d->size);
    return;
  }
  const uint64_t chunk = 1u << 30; /* a query per GiB at most: fits compact requests */
  for (uint64_t pos = o / d->align * d->align; pos < d->size;) {
    struct seek_ctx c = { .want_hole = whence == SEEK_HOLE, .end = pos };
    uint64_t len = d->size - pos < chunk ? d->size - pos : chunk;
    int r = shunt_block_status(d->h, pos, len, 0, seek_extent, &c);
    if (r) {
      fuse_reply_err(req, disk_errno(d, r));
      return;
    }
    if (c.found && c.at < d->size) {
      fuse_reply_lseek(req, (off_t)(c.at > o ? c.at : o));
      return;
    }
    if (c.end <= pos) /* no progress: the server said nothing useful */
      break;
    pos = c.end;
  }
  if (whence == SEEK_DATA)
    fuse_reply_err(req, ENXIO);
  else
    fuse_reply_lseek(req, (off_t)d->size);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
  (void)ino;
  struct fuse_disk *d = disk_of(req);
  struct statvfs s = { .f_bsize = 4096, .f_frsize = 4096, .f_namemax = 255,
                       .f_blocks = ROUND_UP(d->size, 4096) / 4096, .f_files = 2 };
  fuse_reply_statfs(req, &s);
}

const struct fuse_lowlevel_ops fuse_disk_ops = {
  .init = op_init,
  .lookup = op_lookup,
  .getattr = op_getattr,
  .setattr = op_setattr,
  .readdir = op_readdir,
  .open = op_open,
  .read = op_read,
  .write = op_write,
  .fsync = op_fsync,
  .fallocate = op_fallocate,
  .lseek = op_lseek,
  .statfs = op_statfs,
};
