/* datapath.c: the table of data paths selectable per export
 * (datapath=copy|splice|direct|mmap|auto), the entry point that executes a
 * request on its path, and the allocation map the paths split reads by. */
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "datapath/datapath.h"
#include "datapath/dpexport.h"
#include "datapath/request.h"
#include "proto/nbd-protocol.h"

uint32_t dp_default_chunk = DP_DEFAULT_CHUNK;

static const struct datapath *const datapaths[] = {
  &datapath_copy,
  &datapath_splice,
  &datapath_direct,
  &datapath_mmap,
  &datapath_auto,
  NULL,
};

void dp_execute(struct request *r)
{
  const struct datapath *dp = r->dp;

  if (r->sink->ops->done) {   /* a memory front end (request.h) */
    dp_mem_execute(r);
    return;
  }
  switch (r->hdr.type) {
  case NBD_CMD_READ:
    while (!dp->read)
      dp = dp->fallback;
    dp->read(dp, r);
    return;
  case NBD_CMD_WRITE:
    while (!dp->write)
      dp = dp->fallback;
    dp->write(dp, r);
    return;
  default:
    dp_command(r);
    return;
  }
}

void dp_fallback_read(const struct datapath *self, struct request *r)
{
  const struct datapath *next = self->fallback;

  while (!next->read)
    next = next->fallback;
  if (!next->own_read_buffers && !r->buf && r->hdr.length > 0 && !request_pool_buffer(r, r->hdr.length)) {
    request_reply_status(r, NBD_ENOMEM, "out of memory");
    return;
  }
  next->read(next, r);
}

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
  if (!b->ops->extents || b->extents_remote || len < 4096 || max < 2
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

const char *datapath_kind_name(int kind)
{
  return kind == DP_SPLICE ? "splice" : kind == DP_DIRECT ? "direct" : kind == DP_MMAP ? "mmap" : "copy";
}
