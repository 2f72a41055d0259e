/* copy_io.c: io_uring-backed file reads and writes for `shunt copy` (see copy_io.h). */
#include "tools/copy_io.h"

#include <errno.h>
#include <string.h>

int copy_io_init(struct copy_io *io, unsigned depth)
{
  memset(io, 0, sizeof *io);
  int r = io_uring_queue_init(depth, &io->ring, 0);
  if (r < 0)
    return r;
  io->ready = true;
  return 0;
}

void copy_io_exit(struct copy_io *io)
{
  if (io->ready)
    io_uring_queue_exit(&io->ring);
  io->ready = false;
}

int copy_io_queue(struct copy_io *io, bool write, int fd, void *buf, uint32_t len, uint64_t off,
                  void *tag)
{
  struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);
  if (!sqe) {
    int r = copy_io_submit(io);
    if (r < 0)
      return r;
    if (!(sqe = io_uring_get_sqe(&io->ring)))
      return -EBUSY;
  }
  if (write)
    io_uring_prep_write(sqe, fd, buf, len, off);
  else
    io_uring_prep_read(sqe, fd, buf, len, off);
  io_uring_sqe_set_data(sqe, tag);
  io->pending++;
  io->unsubmitted++;
  return 0;
}

int copy_io_submit(struct copy_io *io)
{
  if (!io->unsubmitted)
    return 0;
  int r = io_uring_submit(&io->ring);
  if (r < 0)
    return r;
  io->unsubmitted = 0;
  return 0;
}

int copy_io_fd(const struct copy_io *io)
{
  return io->ring.ring_fd;
}

int copy_io_reap(struct copy_io *io, void (*done)(void *tag, int res, void *ctx), void *ctx)
{
  struct io_uring_cqe *cqe;
  int n = 0;
  while (io->pending && io_uring_peek_cqe(&io->ring, &cqe) == 0) {
    void *tag = io_uring_cqe_get_data(cqe);
    int res = cqe->res;
    io_uring_cqe_seen(&io->ring, cqe);
    io->pending--;
    n++;
    done(tag, res, ctx);
  }
  return n;
}
