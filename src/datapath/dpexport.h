/* dpexport.h: the storage side of an export, as the data paths see it: the
 * open backend, the data path chosen for it, the O_DIRECT fd or the mapping
 * that path uses, the chunk size, the range lock that orders direct writes
 * (one per file, shared by every export of it), and the export's stats.  A front end (the NBD server's struct export)
 * embeds one per export and hands it to every request (request.h). */
#ifndef SHUNT_DATAPATH_DPEXPORT_H
#define SHUNT_DATAPATH_DPEXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "datapath/iosched.h"
#include "datapath/rangelock.h"
#include "datapath/stats.h"

struct backend;
struct datapath;
struct dp_device;

/* What every export of one file shares (keyed by device and inode): the
 * range lock that orders O_DIRECT writes against each other and against
 * TRIM/WRITE_ZEROES, and how the file's writable exports write, so that
 * `auto` picks the write discipline that cannot race with theirs. */
struct dp_file {
  uint64_t dev, ino;           /* 0, 0: not shared (a backend without a file) */
  unsigned refs;
  unsigned direct_writers;     /* writable exports on a fixed O_DIRECT-writing path */
  unsigned buffered_writers;   /* writable exports on a fixed page-cache-writing path */
  struct rangelock wlock;
  struct dp_file *next;
};

struct dp_export {
  const char *name;            /* for log messages; owned by the front end */
  struct backend *backend;
  const struct datapath *datapath;
  int direct_fd;               /* O_DIRECT fd beside backend->fd (direct path), else -1 */
  void *map;                   /* mmap path: the whole file, PROT_READ, MAP_SHARED; else NULL */
  uint64_t map_len;
  bool map_guarded;            /* map is registered with common/faultguard.h: user-space
                                * code may read it (TLS encryption) */
  uint32_t chunk;              /* effective chunk size */
  bool read_only;
  /* A FUA write through direct_fd is made durable by an fdatasync after it:
   * the file system (FUSE) does not honour RWF_DSYNC on an asynchronous
   * O_DIRECT write. */
  bool fua_by_sync;
  /* With direct_fd: the alignment O_DIRECT needs of memory addresses and
   * of file offsets and lengths (statx STATX_DIOALIGN; DP_DIRECT_ALIGN when
   * the kernel does not say).  0 without direct_fd. */
  uint32_t dio_mem_align, dio_off_align;
  /* auto (auto.c): small READs in a row that cachestat(2) found cached
   * (atomic; capped), and whether the file refused an RWF_NOWAIT read. */
  unsigned small_cached_run;
  bool nowait_refused;
  struct dp_file *file;        /* shared with the other exports of the same file */
  bool counted;                /* counted in file's direct_writers or buffered_writers */
  struct rangelock *wlock;     /* &file->wlock: orders O_DIRECT writes to the same blocks (rangelock.h) */
  struct sched_params qos;     /* what each of its flows is entitled to (qos.h) */
  struct dp_device *qdev;      /* its device's scheduler; NULL: not scheduled */
  struct dp_stats_slot *stats;  /* one slot per worker (stats.h), made by datapath_setup */
  unsigned nstats;
};

/* Make dx's per-worker stats slots (dp_stats_slots of them), as
 * datapath_setup does: for a front end whose device has no backend here
 * (a remote source) but counts its requests alike.  0 or -ENOMEM.  Freed by
 * dp_export_close(). */
int dp_export_stats_init(struct dp_export *dx);

/* Worker (engine id) worker's slot of dx's stats, written only by that
 * worker.  An export datapath_setup did not make slots for counts into a
 * slot of its own that nobody reads. */
struct dp_stats *dp_export_stats(struct dp_export *dx, int worker);

/* The sum of dx's slots into *out (from any thread). */
void dp_export_stats_sum(const struct dp_export *dx, struct dp_stats *out);

/* What datapath_setup needs to know about an export. */
struct dp_export_setup {
  const char *name;            /* kept in dp_export.name: must outlive it */
  const char *path;            /* the backend's file: the direct path opens it again */
  const char *datapath;        /* auto (also NULL), copy, splice, direct, mmap */
  uint32_t chunk;              /* 0: dp_default_chunk */
  bool read_only;
  struct sched_params qos;     /* weight, reservation, limits of each flow */
};

/* Take backend b into dx and pick dx's effective data path from
 * setup->datapath: open the O_DIRECT fd for direct, fall back to copy for
 * backends without a file, map the file for mmap; auto does both when it
 * can (without O_DIRECT it reads through the page cache only, without a
 * mapping it sends cached reads by splice).  Joins the dp_file of the
 * backend's file.  Logs the choice and warns when this export writes the
 * file through the page cache while another writes it O_DIRECT.  Returns 0 or -errno with a message; either way dx then
 * holds b and must be closed with dp_export_close(). */
int datapath_setup(struct dp_export *dx, struct backend *b, const struct dp_export_setup *setup,
                   char *err, size_t errlen);

/* Flush the backend synchronously (logged when it fails), close it and what
 * datapath_setup opened (its stats too).  No request may be in flight. */
void dp_export_close(struct dp_export *dx);

/* True when dx's WRITEs go O_DIRECT under its range lock: the direct path,
 * or auto on a file no fixed path writes through the page cache (auto.c).
 * Then TRIM and WRITE_ZEROES take the range lock too (command.c). */
bool dp_export_writes_direct(const struct dp_export *dx);

/* The data path of a TLS connection to dx (which needs the bytes in user
 * memory): READs whose pages are cached are encrypted straight from dx's
 * mapping when it has one (mmap, auto), the rest read as copy reads;
 * WRITEs as copy, unless dx writes O_DIRECT: then as the direct path's, so
 * that a TLS client never writes the page cache under an O_DIRECT writer. */
const struct datapath *dp_export_tls_path(const struct dp_export *dx);

/* The mmap path (src/datapath/mmap.c): map dx's backend file read-only
 * (MAP_SHARED, whole file) into dx->map.  -ENODEV when it is not a regular
 * file, -errno when mmap fails (the caller then uses splice). */
int datapath_mmap_setup(struct dp_export *dx);

/* Unmap what datapath_mmap_setup mapped (export close; no send may be queued). */
void datapath_mmap_close(struct dp_export *dx);

#endif
