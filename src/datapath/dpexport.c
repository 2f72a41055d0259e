/* dpexport.c: the choice of an export's data path at start-up, and closing
 * its storage side (see dpexport.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "common/log.h"
#include "datapath/datapath.h"
#include "datapath/dpexport.h"
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

int datapath_setup(struct dp_export *dx, struct backend *b, const struct dp_export_setup *setup,
                   char *err, size_t errlen)
{
  const char *want = setup->datapath ? setup->datapath : "copy";
  const char *why = NULL;
  int r;

  dx->name = setup->name;
  dx->backend = b;
  dx->direct_fd = -1;
  dx->map = NULL;
  dx->map_len = 0;
  rangelock_init(&dx->wlock);
  dx->chunk = setup->chunk ? setup->chunk : dp_default_chunk;
  dx->datapath = &datapath_copy;
  if (!strcmp(want, "copy")) {
    /* nothing to open */
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
    if (r == 0) {
      dx->datapath = &datapath_direct;
    } else if (!strcmp(want, "direct")) {
      snprintf(err, errlen, "datapath=direct: O_DIRECT does not work on %s: %s", setup->path, strerror(-r));
      return r;
    } else {
      dx->datapath = &datapath_splice;
      log_msg(LOG_INFO, NULL, dx->name, "datapath=auto: O_DIRECT does not work here (%s): splice", strerror(-r));
    }
  }
  if (why)
    log_msg(LOG_WARN, NULL, dx->name, "datapath=%s: %s; using copy", want, why);
  else if (!strcmp(want, "auto"))
    log_msg(LOG_INFO, NULL, dx->name, "datapath=auto chose %s", dx->datapath->name);
  if ((dx->datapath == &datapath_splice || dx->datapath == &datapath_mmap) && dx->chunk > dp_pipe_size)
    dp_pipe_size = dx->chunk;
  return 0;
}

void dp_export_close(struct dp_export *dx)
{
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
  rangelock_fini(&dx->wlock);
}
