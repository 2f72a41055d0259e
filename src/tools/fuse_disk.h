/* fuse_disk.h: the FUSE low-level operations of `shunt fuse`: one regular file whose
 * bytes are an NBD export, read and written through a shared libshunt handle from
 * FUSE's worker threads.  fuse.c owns the command line, the mount and the loop. */
#ifndef SHUNT_TOOLS_FUSE_DISK_H
#define SHUNT_TOOLS_FUSE_DISK_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "shunt/shunt.h"

/* Requests served, by kind (printed when the file system is unmounted). */
struct fuse_disk_stats {
  atomic_uint_fast64_t reads, writes, flushes, trims, zeroes, errors;
  atomic_uint_fast64_t bytes_read, bytes_written, rmw;
  atomic_uint_fast64_t max_read, max_write;  /* largest single request seen */
};

/* What discard (fallocate PUNCH_HOLE) becomes on the wire. */
enum fuse_discard {
  FUSE_DISCARD_ZERO,   /* NBD_CMD_WRITE_ZEROES without NO_HOLE: reads back zeros, as
                          PUNCH_HOLE promises; the server may deallocate */
  FUSE_DISCARD_TRIM,   /* NBD_CMD_TRIM: the contents afterwards are unspecified */
};

struct fuse_disk {
  struct shunt_handle *h;          /* thread-safe: every worker thread calls it */
  bool can_flush, can_trim, can_zero; /* what the server offers */
  bool block_status;               /* base:allocation was negotiated */
  uint32_t pref_block;             /* server's preferred block size */
  uint64_t size;                   /* export size, the file's size */
  uint32_t align;                  /* server's minimum block size (1: any offset) */
  bool read_only;                  /* export read-only or --read-only */
  bool file_root;                  /* the mount point is the file itself */
  const char *name;                /* the file's name in the root directory otherwise */
  enum fuse_discard discard;
  unsigned max_io;                 /* wanted max_write (bytes) */
  unsigned max_write;              /* what the kernel granted (set by init) */
  bool async_dio;                  /* the kernel does asynchronous direct I/O */
  struct timespec mtime;           /* mount time: the file's times */
  pthread_rwlock_t rmw;            /* aligned writes share; read-modify-write excludes */
  pthread_key_t buf_key;           /* each worker thread's read buffer */
  struct fuse_disk_stats st;
};

/* The operations; fuse_session_new() gets a struct fuse_disk as userdata. */
extern const struct fuse_lowlevel_ops fuse_disk_ops;

/* Set up d's lock and buffer key (h, info, size... filled by the caller).  0 or -errno. */
int fuse_disk_init(struct fuse_disk *d);
/* Release what fuse_disk_init() set up. */
void fuse_disk_fini(struct fuse_disk *d);

#endif
