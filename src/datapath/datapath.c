/* datapath.c: the table of data paths selectable per export
 * (datapath=copy|splice|direct|mmap), and what they share about extents. */
#include <string.h>

#include "backend/backend.h"
#include "datapath/datapath.h"
#include "datapath/dpexport.h"
#include "proto/nbd-protocol.h"
#include "proto/reply.h"
#include "datapath/request.h"

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
