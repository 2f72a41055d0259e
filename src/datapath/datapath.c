/* datapath.c: the table of data paths selectable per export
 * (datapath=copy|splice|direct|mmap|auto) and the choice made at start-up. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "common/log.h"
#include "datapath/datapath.h"
#include "datapath/dpworker.h"
#include "proto/nbd-protocol.h"
#include "proto/reply.h"
#include "server/export.h"
#include "server/request.h"

uint32_t dp_default_chunk = DP_DEFAULT_CHUNK;

static const struct datapath *const datapaths[] = {
  &datapath_copy,
  &datapath_splice,
  &datapath_direct,
  &datapath_mmap,
  NULL,
};

const struct datapath *datapath_find(const char *name)
{
  for (size_t i = 0; datapaths[i]; i++)
    if (!strcmp(datapaths[i]->name, name))
      return datapaths[i];
  return NULL;
}

bool dp_read_extents(const struct request *r, struct backend_extent *ext, size_t max, size_t *n)
{
  struct backend *b = r->export->backend;
  uint64_t sum = 0, len = r->hdr.length;

  *n = 0;
  if (!b->ops->extents || len < 4096 || max < 2
      || b->ops->extents(b, r->hdr.offset, len, ext, max - 1, n) < 0 || *n == 0) {
    *n = 0;
    return false;
  }
  for (size_t i = 0; i < *n; i++)
    sum += ext[i].length;
  if (sum < len) {   /* more extents than we asked for: the rest */
    if (ext[*n - 1].flags & BACKEND_EXTENT_ZERO)
      ext[(*n)++] = (struct backend_extent){ len - sum, 0 };
    else
      ext[*n - 1].length += len - sum;
  }
  return true;
}

uint32_t dp_extent_state(uint32_t backend_flags)
{
  return ((backend_flags & BACKEND_EXTENT_HOLE) ? NBD_STATE_HOLE : 0)
         | ((backend_flags & BACKEND_EXTENT_ZERO) ? NBD_STATE_ZERO : 0);
}

const char *datapath_kind_name(int kind)
{
  return kind == DP_SPLICE ? "splice" : kind == DP_DIRECT ? "direct" : kind == DP_MMAP ? "mmap" : "copy";
}

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

int datapath_setup(struct export *ex, char *err, size_t errlen)
{
  const char *want = ex->cfg.datapath ? ex->cfg.datapath : "copy";
  struct backend *b = ex->backend;
  const char *why = NULL;
  int r;

  ex->chunk = ex->cfg.chunk ? (uint32_t)ex->cfg.chunk : dp_default_chunk;
  ex->datapath = &datapath_copy;
  if (!strcmp(want, "copy")) {
    /* nothing to open */
  } else if (b->fd < 0) {
    why = "the backend has no file descriptor";
  } else if (!strcmp(want, "splice")) {
    ex->datapath = &datapath_splice;
  } else if (!strcmp(want, "mmap")) {
    r = datapath_mmap_setup(ex);
    if (r == 0) {
      ex->datapath = &datapath_mmap;
    } else {
      ex->datapath = &datapath_splice;
      log_msg(LOG_WARN, NULL, ex->cfg.name, "datapath=mmap: cannot map %s (%s); using splice", ex->cfg.path,
              r == -ENODEV ? "not a regular file" : strerror(-r));
    }
  } else {
    r = open_direct(ex->cfg.path, ex->cfg.read_only, b->size, &ex->direct_fd);
    if (r == 0) {
      ex->datapath = &datapath_direct;
    } else if (!strcmp(want, "direct")) {
      snprintf(err, errlen, "datapath=direct: O_DIRECT does not work on %s: %s", ex->cfg.path, strerror(-r));
      return r;
    } else {
      ex->datapath = &datapath_splice;
      log_msg(LOG_INFO, NULL, ex->cfg.name, "datapath=auto: O_DIRECT does not work here (%s): splice", strerror(-r));
    }
  }
  if (why)
    log_msg(LOG_WARN, NULL, ex->cfg.name, "datapath=%s: %s; using copy", want, why);
  else if (!strcmp(want, "auto"))
    log_msg(LOG_INFO, NULL, ex->cfg.name, "datapath=auto chose %s", ex->datapath->name);
  if ((ex->datapath == &datapath_splice || ex->datapath == &datapath_mmap) && ex->chunk > dp_pipe_size)
    dp_pipe_size = ex->chunk;
  return 0;
}
