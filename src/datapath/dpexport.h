/* dpexport.h: the storage side of an export, as the data paths see it: the
 * open backend, the data path chosen for it, the O_DIRECT fd or the mapping
 * that path uses, the chunk size, the range lock that orders direct writes,
 * and the export's stats.  A front end (the NBD server's struct export)
 * embeds one per export and hands it to every request (request.h). */
#ifndef SHUNT_DATAPATH_DPEXPORT_H
#define SHUNT_DATAPATH_DPEXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "datapath/rangelock.h"
#include "datapath/stats.h"

struct backend;
struct datapath;

struct dp_export {
  const char *name;            /* for log messages; owned by the front end */
  struct backend *backend;
  const struct datapath *datapath;
  int direct_fd;               /* O_DIRECT fd beside backend->fd (direct path), else -1 */
  void *map;                   /* mmap path: the whole file, PROT_READ, MAP_SHARED; else NULL */
  uint64_t map_len;
  uint32_t chunk;              /* effective chunk size */
  struct rangelock wlock;      /* direct path: orders writes to the same blocks (rangelock.h) */
  struct dp_stats stats;
};

/* What datapath_setup needs to know about an export. */
struct dp_export_setup {
  const char *name;            /* kept in dp_export.name: must outlive it */
  const char *path;            /* the backend's file: the direct path opens it again */
  const char *datapath;        /* copy (NULL means copy), splice, direct, mmap, auto */
  uint32_t chunk;              /* 0: dp_default_chunk */
  bool read_only;
};

/* Take backend b into dx and pick dx's effective data path from
 * setup->datapath: open the O_DIRECT fd for direct, fall back to copy for
 * backends without a file, probe O_DIRECT for auto, map the file for mmap.
 * Logs the choice.  Returns 0 or -errno with a message; either way dx then
 * holds b and must be closed with dp_export_close(). */
int datapath_setup(struct dp_export *dx, struct backend *b, const struct dp_export_setup *setup,
                   char *err, size_t errlen);

/* Flush the backend synchronously (logged when it fails), close it and what
 * datapath_setup opened.  No request may be in flight. */
void dp_export_close(struct dp_export *dx);

/* The mmap path (src/datapath/mmap.c): map dx's backend file read-only
 * (MAP_SHARED, whole file) into dx->map.  -ENODEV when it is not a regular
 * file, -errno when mmap fails (the caller then uses splice). */
int datapath_mmap_setup(struct dp_export *dx);

/* Unmap what datapath_mmap_setup mapped (export close; no send may be queued). */
void datapath_mmap_close(struct dp_export *dx);

#endif
