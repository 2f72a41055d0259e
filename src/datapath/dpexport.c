/* dpexport.c: the choice of an export's data path at start-up, the files
 * shared by several exports, and closing an export's storage side (see
 * dpexport.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "backend/backend.h"
#include "common/log.h"
#include "datapath/datapath.h"
#include "datapath/dpexport.h"
#include "datapath/qos.h"
#include "datapath/dpworker.h"

/* Open path with O_DIRECT and read its first block: -errno when direct I/O
 * does not work there (tmpfs, some FUSE and network filesystems). */
static int open_direct(const char *path, bool read_only, uint64_t size, int *out)
{
  int fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_DIRECT | O_CLOEXEC);
  void *buf = NULL;
  int r = 0;

  if (fd < 0)
    return -errno;
  if (size >= DP_DIRECT_ALIGN) {
    if (posix_memalign(&buf, DP_DIRECT_ALIGN, DP_DIRECT_ALIGN)) {
      close(fd);
      return -ENOMEM;
    }
    if (pread(fd, buf, DP_DIRECT_ALIGN, 0) < 0)
      r = -errno;
    free(buf);
  }
  if (r < 0) {
    close(fd);
    return r;
  }
  *out = fd;
  return 0;
}

/* Every dp_file with a device and inode, for the exports that share them. */
static pthread_mutex_t files_mu = PTHREAD_MUTEX_INITIALIZER;
static struct dp_file *files;

/* The dp_file of fd's file (a new one, shared when it has a device and
 * inode), with one more reference; NULL on ENOMEM. */
static struct dp_file *file_get(int fd)
{
  struct stat sb;
  struct dp_file *f = NULL;
  bool shared = fd >= 0 && fstat(fd, &sb) == 0;

  pthread_mutex_lock(&files_mu);
  if (shared)
    for (f = files; f; f = f->next)
      if (f->dev == (uint64_t)sb.st_dev && f->ino == (uint64_t)sb.st_ino)
        break;
  if (!f && (f = calloc(1, sizeof *f))) {
    rangelock_init(&f->wlock);
    if (shared) {
      f->dev = (uint64_t)sb.st_dev;
      f->ino = (uint64_t)sb.st_ino;
      f->next = files;
      files = f;
    }
  }
  if (f)
    f->refs++;
  pthread_mutex_unlock(&files_mu);
  return f;
}

/* Drop dx's reference on its file (and its count among the writers). */
static void file_put(struct dp_export *dx)
{
  struct dp_file *f = dx->file;

  pthread_mutex_lock(&files_mu);
  if (dx->counted) {
    if (dx->datapath->range_locked)
      f->direct_writers--;
    else
      f->buffered_writers--;
    dx->counted = false;
  }
  if (--f->refs == 0) {
    for (struct dp_file **p = &files; *p; p = &(*p)->next)
      if (*p == f) {
        *p = f->next;
        break;
      }
    rangelock_fini(&f->wlock);
    free(f);
  }
  pthread_mutex_unlock(&files_mu);
}

/* Whether dx counts among its file's writers: a writable export of a file
 * on a fixed path (auto adapts to the others and is not counted). */
static bool fixed_writer(const struct dp_export *dx)
{
  return !dx->read_only && dx->datapath != &datapath_auto && dx->backend->fd >= 0;
}

/* Count dx among its file's writers; warn when the file is now written both
 * through the page cache and O_DIRECT by fixed paths, which nothing can make
 * safe. */
static void file_join(struct dp_export *dx)
{
  struct dp_file *f = dx->file;

  if (!fixed_writer(dx))
    return;
  pthread_mutex_lock(&files_mu);
  if (dx->datapath->range_locked)
    f->direct_writers++;
  else
    f->buffered_writers++;
  dx->counted = true;
  bool mixed = f->direct_writers && f->buffered_writers;
  pthread_mutex_unlock(&files_mu);
  if (mixed)
    log_msg(LOG_WARN, NULL, dx->name,
            "another export writes this file with datapath=%s: O_DIRECT and page-cache writes of the same "
            "blocks may lose writes; use datapath=auto or the same path for both",
            dx->datapath->range_locked ? "copy, splice or mmap" : "direct");
}

bool dp_export_writes_direct(const struct dp_export *dx)
{
  if (dx->datapath->range_locked)
    return true;
  return dx->datapath == &datapath_auto && dx->direct_fd >= 0 && dx->file && dx->file->buffered_writers == 0;
}

const struct datapath *dp_export_tls_path(const struct dp_export *dx)
{
  return dp_export_writes_direct(dx) ? &datapath_tls_direct : &datapath_tls;
}

/* FUSE's statfs f_type. */
#define FUSE_FS_MAGIC 0x65735546

/* datapath=auto: the O_DIRECT fd and the mapping when they work; copy
 * without a file.  Not O_DIRECT on FUSE: there the daemon serves O_DIRECT
 * requests as it likes, and acknowledged FUA writes (RWF_DSYNC on an
 * asynchronous O_DIRECT write) were seen lost at a power cut that the same
 * writes through the page cache survive (tests/tools/lossyfs.c). */
static void setup_auto(struct dp_export *dx, const struct dp_export_setup *setup)
{
  struct backend *b = dx->backend;
  struct statfs fs;
  int r;

  if (b->fd < 0) {
    log_msg(LOG_INFO, NULL, dx->name, "datapath=auto: the backend has no file descriptor; using copy");
    return;
  }
  dx->datapath = &datapath_auto;
  bool fuse = fstatfs(b->fd, &fs) == 0 && fs.f_type == FUSE_FS_MAGIC;
  r = fuse ? 0 : open_direct(setup->path, setup->read_only, b->size, &dx->direct_fd);
  if (fuse)
    log_msg(LOG_INFO, NULL, dx->name, "datapath=auto: a FUSE file: reads and writes go through the page cache");
  else if (r < 0)
    log_msg(LOG_INFO, NULL, dx->name, "datapath=auto: O_DIRECT does not work here (%s): reads go through "
            "the page cache", strerror(-r));
  r = datapath_mmap_setup(dx);
  if (r < 0 && b->size > 0)
    log_msg(LOG_INFO, NULL, dx->name, "datapath=auto: cannot map %s (%s): cached reads go by splice",
            setup->path, r == -ENODEV ? "not a regular file" : strerror(-r));
}

/* What O_DIRECT on direct_fd needs aligned (dp_export.dio_*). */
static void dio_align(struct dp_export *dx)
{
  struct statx sx;

  dx->dio_mem_align = dx->dio_off_align = 0;
  if (dx->direct_fd < 0)
    return;
  dx->dio_mem_align = dx->dio_off_align = DP_DIRECT_ALIGN;
  if (statx(dx->direct_fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 && (sx.stx_mask & STATX_DIOALIGN)
      && sx.stx_dio_mem_align && sx.stx_dio_offset_align) {
    dx->dio_mem_align = sx.stx_dio_mem_align;
    dx->dio_off_align = sx.stx_dio_offset_align;
  }
}

int datapath_setup(struct dp_export *dx, struct backend *b, const struct dp_export_setup *setup,
                   char *err, size_t errlen)
{
  const char *want = setup->datapath ? setup->datapath : "auto";
  const char *why = NULL;
  int r;

  dx->name = setup->name;
  dx->backend = b;
  dx->direct_fd = -1;
  dx->map = NULL;
  dx->map_len = 0;
  dx->map_guarded = false;
  dx->small_cached_run = 0;
  dx->nowait_refused = false;
  dx->read_only = setup->read_only;
  dx->counted = false;
  dx->file = file_get(b->fd);
  dx->wlock = dx->file ? &dx->file->wlock : NULL;
  dx->chunk = setup->chunk ? setup->chunk : dp_default_chunk;
  dx->datapath = &datapath_copy;
  dp_export_stats_init(dx);
  if (!dx->file || !dx->stats) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  if (!strcmp(want, "copy")) {
    /* nothing to open */
  } else if (!strcmp(want, "auto")) {
    setup_auto(dx, setup);
  } else if (b->fd < 0) {
    why = "the backend has no file descriptor";
  } else if (!strcmp(want, "splice")) {
    dx->datapath = &datapath_splice;
  } else if (!strcmp(want, "mmap")) {
    r = datapath_mmap_setup(dx);
    if (r == 0) {
      dx->datapath = &datapath_mmap;
    } else {
      dx->datapath = &datapath_splice;
      log_msg(LOG_WARN, NULL, dx->name, "datapath=mmap: cannot map %s (%s); using splice", setup->path,
              r == -ENODEV ? "not a regular file" : strerror(-r));
    }
  } else {
    r = open_direct(setup->path, setup->read_only, b->size, &dx->direct_fd);
    if (r < 0) {
      snprintf(err, errlen, "datapath=direct: O_DIRECT does not work on %s: %s", setup->path, strerror(-r));
      return r;
    }
    dx->datapath = &datapath_direct;
    struct statfs fs;
    dx->fua_by_sync = fstatfs(dx->direct_fd, &fs) == 0 && fs.f_type == FUSE_FS_MAGIC;
  }
  if (why)
    log_msg(LOG_WARN, NULL, dx->name, "datapath=%s: %s; using copy", want, why);
  dio_align(dx);
  file_join(dx);
  dx->qos = setup->qos;
  if (dp_qos_join(dx) < 0)
    log_msg(LOG_WARN, NULL, dx->name, "out of memory for its device's scheduler: requests go unscheduled");
  if ((dx->datapath == &datapath_splice || dx->datapath == &datapath_mmap || dx->datapath == &datapath_auto)
      && dx->chunk > dp_pipe_size)
    dp_pipe_size = dx->chunk;
  return 0;
}

int dp_export_stats_init(struct dp_export *dx)
{
  dx->nstats = dp_stats_slots ? dp_stats_slots : 1;
  dx->stats = aligned_alloc(_Alignof(struct dp_stats_slot), dx->nstats * sizeof *dx->stats);
  if (!dx->stats) {
    dx->nstats = 0;
    return -ENOMEM;
  }
  memset(dx->stats, 0, dx->nstats * sizeof *dx->stats);
  return 0;
}

struct dp_stats *dp_export_stats(struct dp_export *dx, int worker)
{
  static struct dp_stats_slot unread;   /* exports without slots: counted nowhere */

  if (!dx->nstats)
    return &unread.s;
  return &dx->stats[(unsigned)worker % dx->nstats].s;
}

void dp_export_stats_sum(const struct dp_export *dx, struct dp_stats *out)
{
  dp_stats_sum(out, dx->stats, dx->nstats);
}

void dp_export_close(struct dp_export *dx)
{
  free(dx->stats);
  dx->stats = NULL;
  dx->nstats = 0;
  if (!dx->backend)
    return;
  int r = dx->backend->ops->flush_sync(dx->backend);
  if (r < 0)
    log_msg(LOG_ERROR, NULL, dx->name, "flush at exit failed: %s", strerror(-r));
  backend_close(dx->backend);
  dx->backend = NULL;
  if (dx->direct_fd >= 0)
    close(dx->direct_fd);
  dx->direct_fd = -1;
  datapath_mmap_close(dx);
  dp_qos_leave(dx);
  if (dx->file)
    file_put(dx);
  dx->file = NULL;
  dx->wlock = NULL;
}
