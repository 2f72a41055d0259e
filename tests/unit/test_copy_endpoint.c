/* test_copy_endpoint.c: the file endpoint of `shunt copy`
 * (src/tools/endpoint_file.c): size and extents of a sparse source, an
 * asynchronous read across a hole, the refusal to write a file onto itself,
 * and a destination that is recreated at the source's size, written (aligned
 * and odd parts), zeroed and flushed. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/endpoint.h"
#include "tap.h"

#define KIB 1024u
#define SRC_SIZE (1024 * KIB + 100)

struct extent_list {
  uint64_t off[64], len[64];
  bool zero[64];
  unsigned n;
};

static void collect(void *user, uint64_t off, uint64_t len, bool zero)
{
  struct extent_list *l = user;
  if (l->n < 64) {
    l->off[l->n] = off;
    l->len[l->n] = len;
    l->zero[l->n] = zero;
    l->n++;
  }
}

struct wait {
  bool done;
  int err;
};

static void on_done(struct ep_io *io, int err, const char *msg)
{
  struct wait *w = io->user;
  w->done = true;
  w->err = err;
  if (err)
    printf("# %s\n", msg);
}

/* Run e's event loop until w is done (or 5 s without progress): 0 or -errno. */
static int wait_for(struct endpoint *e, struct wait *w)
{
  while (!w->done) {
    struct pollfd pfd[EP_MAX_POLLFDS];
    if (e->ops->submit(e) < 0)
      return -EIO;
    unsigned n = e->ops->pollfds(e, pfd, EP_MAX_POLLFDS);
    int r = e->ops->reap(e);
    if (r < 0)
      return r;
    if (r > 0)
      continue;
    if (poll(pfd, n, 5000) <= 0)
      return -ETIMEDOUT;
    if (e->ops->process(e, pfd, n) < 0)
      return -EIO;
  }
  return 0;
}

static struct ep_io io_for(uint64_t off, uint64_t len, unsigned char *buf, struct wait *w)
{
  return (struct ep_io){ .off = off, .len = len, .buf = buf, .pipe_rfd = -1, .pipe_wfd = -1,
                         .src_fd = -1, .done = on_done, .user = w };
}

int main(void)
{
  char dir[] = "/tmp/shunt-endpoint.XXXXXX", src_path[64], dst_path[64], err[600];
  static unsigned char data[SRC_SIZE], buf[SRC_SIZE];
  struct endpoint *src = NULL, *dst = NULL;

  if (!mkdtemp(dir)) {
    printf("Bail out! mkdtemp: %s\n", strerror(errno));
    return 1;
  }
  snprintf(src_path, sizeof src_path, "%s/src.img", dir);
  snprintf(dst_path, sizeof dst_path, "%s/dst.img", dir);
  /* Data in [0, 64K) and [512K, end); a hole between. */
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (i < 64 * KIB || i >= 512 * KIB) ? (unsigned char)(i * 7 + 1) : 0;
  int fd = open(src_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ok(fd >= 0 && pwrite(fd, data, 64 * KIB, 0) == 64 * KIB &&
     pwrite(fd, data + 512 * KIB, SRC_SIZE - 512 * KIB, 512 * KIB) == SRC_SIZE - 512 * KIB &&
     fsync(fd) == 0 && close(fd) == 0, "a sparse source file is written");

  struct endpoint_params sp = { .depth = 8 };
  ok(endpoint_open_file(&src, src_path, &sp, err, sizeof err) == 0, "the source opens");
  if (!src) {
    printf("# %s\n", err);
    return tap_done();
  }
  ok(src->size == SRC_SIZE && src->st && src->fd >= 0 && !src->fresh,
     "its size (%llu), fstat and descriptor are known", (unsigned long long)src->size);
  ok(src->max_req > 0 && src->caps == 0 && src->ops->write_from_fd == NULL,
     "a file offers neither pipes nor sendfile of its own");

  struct extent_list l = { .n = 0 };
  ok(src->ops->extents(src, 0, SRC_SIZE, collect, &l) == 0, "extents of the whole file");
  bool contiguous = l.n > 0 && l.off[0] == 0;
  uint64_t end = 0, zero_bytes = 0;
  for (unsigned i = 0; i < l.n; i++) {
    contiguous = contiguous && l.off[i] == end;
    end = l.off[i] + l.len[i];
    zero_bytes += l.zero[i] ? l.len[i] : 0;
  }
  ok(contiguous && end == SRC_SIZE, "%u extents cover the file in order", l.n);
  bool data_in_data = true;
  for (unsigned i = 0; i < l.n; i++)
    if (l.zero[i])
      for (uint64_t b = l.off[i]; b < l.off[i] + l.len[i]; b++)
        data_in_data = data_in_data && data[b] == 0;
  ok(data_in_data, "no written byte lies in a zero extent (%llu bytes of hole found)",
     (unsigned long long)zero_bytes);
  l.n = 0;
  ok(src->ops->extents(src, 600 * KIB, 4 * KIB, collect, &l) == 0 && l.n == 1 &&
     l.off[0] == 600 * KIB && l.len[0] == 4 * KIB && !l.zero[0], "extents of a range stay in it");

  struct wait w = { 0 };
  struct ep_io io = io_for(60 * KIB, 512 * KIB, buf, &w);
  ok(src->ops->read(src, &io) == 0 && !w.done, "a read is queued, not run inside the call");
  ok(wait_for(src, &w) == 0 && w.err == 0, "the read completes");
  ok(memcmp(buf, data + 60 * KIB, 512 * KIB) == 0, "it read data, the hole and data again");
  w = (struct wait){ 0 };
  io = io_for(SRC_SIZE - 50, 100, buf, &w);
  ok(src->ops->read(src, &io) == 0 && wait_for(src, &w) == 0 && w.err == -ENODATA,
     "a read past the end fails (%d)", w.err);

  struct endpoint_params dp = { .write = true, .size = SRC_SIZE, .direct = true, .depth = 8,
                                .direct_max = 1, .source = src };
  ok(endpoint_open_file(&dst, src_path, &dp, err, sizeof err) < 0 && strstr(err, "same file"),
     "the source as destination is refused: %s", err);
  struct stat st;
  ok(stat(src_path, &st) == 0 && st.st_size == SRC_SIZE, "and left as it was");

  fd = open(dst_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ok(fd >= 0 && write(fd, "old", 3) == 3 && close(fd) == 0, "an old destination file exists");
  ok(endpoint_open_file(&dst, dst_path, &dp, err, sizeof err) == 0, "the destination opens");
  if (!dst) {
    printf("# %s\n", err);
    return tap_done();
  }
  ok(dst->size == SRC_SIZE && dst->fresh, "it is recreated at the source's size and reads as zeroes");
  ok(stat(dst_path, &st) == 0 && st.st_size == SRC_SIZE && st.st_blocks == 0,
     "with no blocks allocated");

  /* From page-aligned memory: 128 KiB at a 4K-aligned offset go O_DIRECT
   * (where the file system takes it), the odd tail through the page cache. */
  unsigned char *aligned = aligned_alloc(4096, 256 * KIB);
  int dfd = open(dst_path, O_WRONLY | O_DIRECT);
  bool direct_ok = dfd >= 0;
  if (dfd >= 0)
    close(dfd);
  memcpy(aligned, data + 4 * KIB, 128 * KIB + 100);
  w = (struct wait){ 0 };
  io = io_for(4 * KIB, 128 * KIB + 100, aligned, &w);
  ok(dst->ops->write(dst, &io) == 0 && wait_for(dst, &w) == 0 && w.err == 0,
     "an aligned write with an odd tail completes");
  ok(direct_ok ? dst->direct_bytes == 128 * KIB : dst->direct_bytes == 0,
     "its aligned part bypassed the page cache: %llu bytes (O_DIRECT %s here)",
     (unsigned long long)dst->direct_bytes, direct_ok ? "available" : "refused");
  /* From memory that is not page-aligned: O_DIRECT fails with EINVAL, and the
   * write goes through the page cache instead. */
  w = (struct wait){ 0 };
  io = io_for(256 * KIB, 8 * KIB, data + 256 * KIB + 1, &w);
  ok(dst->ops->write(dst, &io) == 0 && wait_for(dst, &w) == 0 && w.err == 0 &&
     dst->direct_bytes == (direct_ok ? 128 * KIB : 0),
     "a write from unaligned memory falls back to the page cache");
  fd = open(dst_path, O_RDONLY);
  ok(fd >= 0 && pread(fd, buf, 8 * KIB, 256 * KIB) == 8 * KIB &&
     memcmp(buf, data + 256 * KIB + 1, 8 * KIB) == 0, "and its bytes landed too");
  ok(fd >= 0 && pread(fd, buf, 128 * KIB + 200, 4 * KIB) == 128 * KIB + 200 &&
     memcmp(buf, data + 4 * KIB, 128 * KIB + 100) == 0 && buf[128 * KIB + 100] == 0,
     "the bytes landed where they belong");
  w = (struct wait){ 0 };
  io = io_for(8 * KIB, 4 * KIB, NULL, &w);
  ok(dst->ops->zero(dst, &io) == 1 && !w.done, "zeroing a range is done at once (fallocate)");
  ok(pread(fd, buf, 4 * KIB, 8 * KIB) == 4 * KIB && buf[0] == 0 && buf[4 * KIB - 1] == 0 &&
     pread(fd, buf, 1, 12 * KIB) == 1 && buf[0] == data[12 * KIB], "the range reads as zeroes, the rest kept");
  close(fd);
  free(aligned);
  ok(dst->ops->flush(dst) == 0, "flush");
  ok(dst->ops->close(dst, err, sizeof err) == 0, "the destination closes");
  ok(src->ops->close(src, err, sizeof err) == 0, "the source closes");

  unlink(src_path);
  unlink(dst_path);
  rmdir(dir);
  return tap_done();
}
