/* backend.h: the storage behind an export.  One small interface: submit an
 * asynchronous bio (read, write, flush, trim, zero, cache, extents) on the
 * calling worker's engine, or ask synchronously for allocation extents where
 * that is local and cheap.  One backend instance serves every connection to
 * its export (multi-conn consistency). */
#ifndef SHUNT_BACKEND_BACKEND_H
#define SHUNT_BACKEND_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

/* BIO_EXTENTS: the allocation map from offset on, as extents() gives it,
 * into buf (an array of count struct backend_extent), covering at most length
 * bytes; on success count is set to the number filled (at least one).  For a
 * backend without extents_remote, backend_submit() answers it with extents()
 * on the next loop turn; a backend with extents_remote answers it in its
 * submit() without blocking the loop (the rbd backend: on a thread of its
 * own).  -ENOTSUP when the backend cannot tell. */
enum bio_type { BIO_READ, BIO_WRITE, BIO_FLUSH, BIO_TRIM, BIO_ZERO, BIO_CACHE, BIO_EXTENTS };

#define BIO_FUA       (1u << 0)  /* durable before completion */
#define BIO_NO_HOLE   (1u << 1)  /* BIO_ZERO: keep the range allocated */
#define BIO_FAST_ZERO (1u << 2)  /* BIO_ZERO: fail with -ENOTSUP unless it is cheap */
/* BIO_READ on a file backend (backend.fd >= 0) only: read what the page
 * cache holds, never waiting for the device (RWF_NOWAIT).  Completes with
 * -EAGAIN when part of the range is not cached (io->progress bytes of it,
 * from the start, were read; the kernel may have started reading the rest
 * into the page cache, as readahead), -EOPNOTSUPP when the file refuses
 * such reads (tmpfs, FUSE). */
#define BIO_NOWAIT    (1u << 3)

struct backend;

/* One run of bytes of an allocation map, as extents() describes it. */
struct backend_extent {
  uint64_t length;
  uint32_t flags;            /* BACKEND_EXTENT_* */
};

#define BACKEND_EXTENT_HOLE (1u << 0)  /* not allocated */
#define BACKEND_EXTENT_ZERO (1u << 1)  /* reads as zeroes */

/* One backend operation.  The submitter fills type..complete; the rest is the
 * backend's.  complete() runs exactly once, never inside submit(). */
struct bio {
  enum bio_type type;
  unsigned flags;
  void *buf;                 /* READ: destination; WRITE: source; EXTENTS: the extents */
  uint64_t offset, length;
  size_t count;              /* EXTENTS: capacity of buf in, extents filled out */
  void (*complete)(struct bio *io, int res);   /* res: 0 or -errno */
  void *owner;               /* for the submitter */
  /* backend-private */
  struct engine_op op;
  struct engine *eng;
  struct backend *be;
  uint64_t progress;         /* the submitter may read it after a BIO_NOWAIT -EAGAIN */
  int stage;
  struct bio *next;          /* for a backend's own queue */
};

struct backend_ops {
  const char *name;
  /* Start io on engine e (BIO_EXTENTS only when b->extents_remote). */
  void (*submit)(struct backend *b, struct engine *e, struct bio *io);
  /* Describe allocation from offset on: fills up to max extents (at least
   * one on success), covering at most length bytes; a range past the end
   * of a file that shrank under the export is not described (-EIO when
   * that leaves nothing), so that reads of it fail.  May block briefly
   * (lseek); see docs/design.md.  With b->extents_remote it waits for
   * another machine: never call it on a worker's loop then, submit a
   * BIO_EXTENTS instead.  NULL when the backend cannot tell. */
  int (*extents)(struct backend *b, uint64_t offset, uint64_t length,
                 struct backend_extent *ext, size_t max, size_t *n);
  /* Make everything durable, synchronously (used at shutdown). */
  int (*flush_sync)(struct backend *b);
  /* Re-read the size of storage that may change under the export (b->size;
   * cheap: no round trip), before a new connection is told the size.
   * Returns 0 or -errno.  NULL when the size is fixed. */
  int (*refresh)(struct backend *b);
  void (*close)(struct backend *b);
};

struct backend {
  const struct backend_ops *ops;
  uint64_t size;
  bool read_only;
  bool can_trim, can_zero, can_fast_zero, can_cache, can_flush, rotational;
  int fd;           /* the open file for file backends, -1 otherwise (for data paths) */
  bool is_blockdev;
  /* fd lies on a file system whose I/O may wait for someone else (FUSE, NFS,
   * CIFS/SMB, Ceph, 9p...): its reads and writes are submitted IOSQE_ASYNC,
   * here and by the data paths, so that io_uring hands them to a kernel
   * worker at once instead of trying them inline, where a stalled server
   * would hold the submitting thread and every other export or device it
   * serves (io_uring's own check whether a FUSE file can do non-blocking I/O
   * already waits for the daemon). */
  bool io_async;
  /* extents() asks another machine (a round trip, blocking the caller): the
   * data paths then read in one piece instead of splitting reads along
   * holes, and only BLOCK_STATUS asks, through a BIO_EXTENTS bio that the
   * backend answers without blocking the loop. */
  bool extents_remote;
  void *priv;
};

/* The options of backend=rbd (docs/rbd.md), owned strings or NULL. */
struct backend_rbd_options {
  char *conf;           /* ceph-conf: the ceph.conf to read; NULL: librados's search path */
  char *id;             /* ceph-id: the client's name without "client."; NULL: admin */
  char *cluster;        /* ceph-cluster: the cluster's name; NULL: ceph */
  bool lock_exclusive;  /* lock=exclusive: take the image's lock and keep it */
};

/* Options of one backend kind (the export options that name them). */
struct backend_options {
  /* memory: serve a size larger than sys_memory_limit() (common/sysmem.h) ("allow-overcommit") */
  bool allow_overcommit;
  /* memory: the most bytes of pages it may allocate, 0 for the default: the
   * size, but half of sys_memory_limit() (common/sysmem.h) with allow_overcommit ("max-memory") */
  uint64_t max_memory;
  /* rbd: NULL for the defaults */
  const struct backend_rbd_options *rbd;
};

/* Set key=value when key is an option of backend=rbd (ceph-conf, ceph-id,
 * ceph-cluster, lock): returns 0 when set, -EINVAL or -ENOMEM with a message
 * in err (prefixed by who) when the value is bad, 1 when key is none of them. */
int backend_rbd_set_option(struct backend_rbd_options *o, const char *key, const char *value,
                           const char *who, char *err, size_t errlen);

/* true when any rbd option is set. */
bool backend_rbd_options_set(const struct backend_rbd_options *o);

/* Free the strings of o and zero it. */
void backend_rbd_options_free(struct backend_rbd_options *o);

/* Open a backend of the given kind ("file", "memory" or "rbd") on path (for
 * memory: a size such as 64M; for rbd: POOL/IMAGE[@SNAP]).  On failure
 * returns -errno and writes a message to err (-ENOTSUP for rbd in a build
 * without librbd). */
int backend_open(const char *kind, const char *path, bool read_only,
                 struct backend **out, char *err, size_t errlen);

/* backend_open with options (o may be NULL: the defaults).  Options of
 * another kind than the one opened are refused (-EINVAL). */
int backend_open_opts(const char *kind, const char *path, bool read_only,
                      const struct backend_options *o, struct backend **out,
                      char *err, size_t errlen);

/* Close and free. */
void backend_close(struct backend *b);

/* Submit a bio (sets io->be and io->eng, then calls the backend; answers a
 * BIO_EXTENTS itself with extents() unless b->extents_remote). */
void backend_submit(struct backend *b, struct engine *e, struct bio *io);

/* Finish io with res on the next loop turn (for synchronous backends). */
void backend_complete_later(struct bio *io, int res);

/* The per-kind constructors, called by backend_open. */
int backend_file_open(const char *path, bool read_only, struct backend **out, char *err, size_t errlen);
int backend_memory_open(const char *size, bool read_only, const struct backend_options *o,
                        struct backend **out, char *err, size_t errlen);
/* spec is POOL/IMAGE[@SNAP]; o may be NULL.  A snapshot is opened read-only. */
int backend_rbd_open(const char *spec, bool read_only, const struct backend_rbd_options *o,
                     struct backend **out, char *err, size_t errlen);


/* What a memory backend holds. */
struct backend_memory_stats {
  uint64_t bytes;         /* in pages */
  uint64_t max_bytes;     /* the cap on bytes (writes beyond: ENOSPC) */
  uint64_t table_bytes;   /* the page table's own nodes */
  uint64_t walk_steps;    /* page table nodes visited by range walks so far */
};

/* Fill st for a memory backend; -EINVAL for another kind. */
int backend_memory_stats(struct backend *b, struct backend_memory_stats *st);

#endif
