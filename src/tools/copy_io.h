/* copy_io.h: the file side of `shunt copy`: reads and writes of local files and
 * block devices queued on an io_uring, so that disk and page-cache work overlap
 * with the network instead of stalling the copy's single event loop. */
#ifndef SHUNT_TOOLS_COPY_IO_H
#define SHUNT_TOOLS_COPY_IO_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

struct copy_io {
  struct io_uring ring;
  bool ready;
  unsigned pending;          /* queued or in flight */
  unsigned unsubmitted;
};

/* Set up a ring for depth operations: 0 or -errno. */
int copy_io_init(struct copy_io *io, unsigned depth);
void copy_io_exit(struct copy_io *io);

/* Queue a read or write of buf[0..len) at off; tag comes back on completion. */
int copy_io_queue(struct copy_io *io, bool write, int fd, void *buf, uint32_t len, uint64_t off,
                  void *tag);

/* Submit what was queued: 0 or -errno. */
int copy_io_submit(struct copy_io *io);

/* The descriptor to poll for completions (POLLIN). */
int copy_io_fd(const struct copy_io *io);

/* Call done(tag, res, ctx) for each completed operation (res: bytes or -errno).
 * Returns how many completed. */
int copy_io_reap(struct copy_io *io, void (*done)(void *tag, int res, void *ctx), void *ctx);

#endif
