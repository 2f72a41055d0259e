/* client_copy_splice.c: libshunt's kernel-moved payloads against a real NBD
 * server (tests/interop/client_copy_splice.sh starts it): shunt_aio_pread_pipe
 * with a pipe that holds the whole request and with one that does not,
 * shunt_aio_pwrite_pipe (iovec bytes in the pipe's range must not be sent),
 * shunt_aio_pwrite_file, reads across a hole, and argument checks.  Prints TAP.
 * Usage: client_copy_splice [--expect-full-pipe] URI   (export >= 8 MiB, writable)
 * --expect-full-pipe: the server answers each read with one in-order chunk, so a
 * big enough pipe must receive some of the bytes from pipe_from on. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <shunt/shunt.h>

#include "../unit/tap.h"


#define MIB (1u << 20)

static unsigned char pat(uint64_t off, unsigned seed)
{
  return (unsigned char)(off * 131 + (off >> 9) + seed * 17 + 1);
}

static void fill(unsigned char *p, size_t len, uint64_t off, unsigned seed)
{
  for (size_t i = 0; i < len; i++)
    p[i] = pat(off + i, seed);
}

static int check(const unsigned char *p, size_t len, uint64_t off, unsigned seed)
{
  for (size_t i = 0; i < len; i++)
    if (p[i] != pat(off + i, seed))
      return 0;
  return 1;
}

struct done {
  int finished, error;
  uint64_t piped;
};

static void on_done(const struct shunt_result *r)
{
  struct done *d = r->user;
  d->finished = 1;
  d->error = r->error;
  d->piped = r->piped;
}

static int wait_done(struct shunt_handle *h, struct done *d)
{
  while (!d->finished) {
    int r = shunt_poll(h, 10000);
    if (r < 0)
      return r;
  }
  return d->error;
}

static int read_all(int fd, unsigned char *p, size_t len)
{
  size_t got = 0;
  while (got < len) {
    ssize_t n = read(fd, p + got, len - got);
    if (n <= 0)
      return -1;
    got += (size_t)n;
  }
  return 0;
}

/* Read len bytes at off through a pipe of pipe_size bytes from pipe_from on;
 * put the whole request together in out.  Returns piped or -errno. */
static int64_t pipe_read(struct shunt_handle *h, unsigned char *out, size_t len, uint64_t off,
                         uint64_t pipe_from, int pipe_size)
{
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0)
    return -errno;
  if (fcntl(p[1], F_SETPIPE_SZ, pipe_size) < 0) {
    close(p[0]);
    close(p[1]);
    return -errno;
  }
  memset(out, 0xee, len);
  struct iovec v = { out, len };
  struct done d = { 0 };
  int64_t r = shunt_aio_pread_pipe(h, &v, 1, off, 0, p[1], pipe_from, on_done, &d);
  if (r >= 0)
    r = wait_done(h, &d);
  if (r >= 0 && read_all(p[0], out + pipe_from, d.piped) < 0)
    r = -EIO;
  if (r >= 0)
    r = (int64_t)d.piped;
  close(p[0]);
  close(p[1]);
  return r;
}

int main(int argc, char **argv)
{
  bool full = false;
  static const struct option lo[] = { { "expect-full-pipe", no_argument, NULL, 'f' },
                                      { NULL, 0, NULL, 0 } };
  int ch;
  while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    if (ch != 'f')
      return 2;
    full = true;
  }
  if (optind != argc - 1) {
    fprintf(stderr, "usage: client_copy_splice [--expect-full-pipe] URI\n");
    return 2;
  }
  const char *uri = argv[optind];
  struct shunt_handle *h = shunt_create();
  if (!h || shunt_connect_uri(h, uri) < 0) {
    printf("Bail out! %s\n", h ? shunt_last_error(h) : "out of memory");
    return 1;
  }
  size_t len = MIB; /* pipes hold 1 MiB at most (pipe-max-size) */
  unsigned char *buf = malloc(4 * MIB), *in = malloc(4 * MIB);
  if (!buf || !in)
    return 1;

  /* Known data at [0, 4 MiB). */
  fill(buf, 4 * MIB, 0, 1);
  ok(shunt_pwrite(h, buf, 4 * MIB, 0, 0) == 0, "pattern written");

  int64_t piped = pipe_read(h, in, len, 4096, 4096, MIB);
  ok(piped >= 0 && check(in, len, 4096, 1), "pread_pipe, big pipe: data right (%lld piped)",
     (long long)piped);
  if (full)
    /* Not every byte, nor a fixed share: each socket fragment takes a pipe
     * buffer (a 1 MiB pipe has 256), and fragments are often much smaller
     * than a page (47-82% of the bytes went through in repeated runs). */
    ok(piped > 0, "pread_pipe, big pipe: bytes from pipe_from on went through the pipe "
       "(%lld of %zu)", (long long)piped, len - 4096);
  piped = pipe_read(h, in, len, 0, 0, 4096);
  ok(piped >= 0 && check(in, len, 0, 1), "pread_pipe, one-page pipe: data right (%lld piped)",
     (long long)piped);
  ok(piped >= 0 && piped < (int64_t)len, "pread_pipe, one-page pipe: the rest went to the "
     "iovecs (%lld of %zu piped)", (long long)piped, len);
  piped = pipe_read(h, in, len, 0, len, MIB);
  ok(piped == 0 && check(in, len, 0, 1), "pread_pipe from the end: all in the iovecs");

  /* pwrite_pipe: [4096, len - 4096) from the pipe; the iovecs hold garbage there. */
  int p[2];
  ok(pipe2(p, O_CLOEXEC) == 0 && fcntl(p[1], F_SETPIPE_SZ, MIB) >= 0, "pipe for a write");
  fill(buf, len, 4 * MIB, 2);
  ssize_t w = -1;
  if (fcntl(p[1], F_SETFL, O_NONBLOCK) == 0) /* never block the test on a small pipe */
    w = write(p[1], buf + 4096, len - 8192);
  memset(buf + 4096, 0xaa, len - 8192);
  struct iovec v = { buf, len };
  struct done d = { 0 };
  int64_t r = shunt_aio_pwrite_pipe(h, &v, 1, 4 * MIB, 0, p[0], 4096, len - 8192, on_done, &d);
  ok(w == (ssize_t)(len - 8192) && r > 0 && wait_done(h, &d) == 0, "pwrite_pipe completes");
  ok(shunt_pread(h, in, len, 4 * MIB, 0) == 0 && check(in, len, 4 * MIB, 2),
     "pwrite_pipe: the export has the pipe's bytes in its range, the iovecs' elsewhere");
  char c;
  ok(fcntl(p[0], F_SETFL, O_NONBLOCK) == 0 && read(p[0], &c, 1) < 0 && errno == EAGAIN,
     "pwrite_pipe consumed exactly its bytes from the pipe");

  /* pwrite_file: 1 MiB from an unaligned file offset. */
  char tmpl[] = "/tmp/shunt-splice.XXXXXX";
  int fd = mkstemp(tmpl);
  unlink(tmpl);
  fill(buf, 2 * MIB, 0, 3);
  ok(fd >= 0 && pwrite(fd, buf, 2 * MIB, 0) == 2 * MIB, "source file written");
  memset(&d, 0, sizeof d);
  r = shunt_aio_pwrite_file(h, fd, 12345, MIB, 6 * MIB, 0, on_done, &d);
  ok(r > 0 && wait_done(h, &d) == 0, "pwrite_file completes");
  ok(shunt_pread(h, in, MIB, 6 * MIB, 0) == 0 && check(in, MIB, 12345, 3),
     "pwrite_file: the export has the file's bytes");

  /* A read across zeroes (a hole where the server knows one) through a pipe. */
  if (shunt_get_flag(h, SHUNT_CAN_ZERO) == 1)
    ok(shunt_zero(h, 5 * MIB, MIB / 2, 0) == 0, "zero [5M, 5.5M)");
  else
    ok(shunt_pwrite(h, memset(in, 0, MIB / 2), MIB / 2, 5 * MIB, 0) == 0, "zeroes written");
  piped = pipe_read(h, in, MIB, 5 * MIB - MIB / 4, 4096, MIB);
  int good = piped >= 0;
  for (size_t i = 0; good && i < MIB; i++) {
    uint64_t o = 5 * MIB - MIB / 4 + i;
    unsigned char want = o < 5 * MIB ? pat(o, 2) : 0; /* [5M, 6M) was never written */
    good = in[i] == want;
  }
  ok(good, "pread_pipe across zeroes: data right (%lld piped)", (long long)piped);

  /* Argument checks. */
  ok(shunt_aio_pread_pipe(h, &v, 1, 0, 0, -1, 0, NULL, NULL) == -EINVAL, "pread_pipe: bad fd");
  ok(shunt_aio_pread_pipe(h, &v, 1, 0, 0, p[1], len + 1, NULL, NULL) == -EINVAL,
     "pread_pipe: pipe_from past the end");
  ok(shunt_aio_pwrite_pipe(h, &v, 1, 0, 0, p[0], 4096, len, NULL, NULL) == -EINVAL,
     "pwrite_pipe: range past the end");
  ok(shunt_aio_pwrite_file(h, -1, 0, 4096, 0, 0, NULL, NULL) == -EINVAL, "pwrite_file: bad fd");

  uint64_t copied = shunt_payload_bytes_copied(h), errs = shunt_get_stat(h, SHUNT_STAT_ERRORS);
  ok(copied == 0 && errs == 0, "no payload copied by the library, no "
     "errors (%llu copied, %llu errors)", (unsigned long long)copied, (unsigned long long)errs);
  /* A pipe short of the promised bytes fails the connection, never spins. */
  struct shunt_handle *h2 = shunt_create();
  int q[2];
  if (h2 && shunt_connect_uri(h2, uri) == 0 && pipe2(q, O_CLOEXEC) == 0) {
    ssize_t qw = write(q[1], buf, 4096);
    struct iovec v2 = { buf, 8192 };
    memset(&d, 0, sizeof d);
    r = shunt_aio_pwrite_pipe(h2, &v2, 1, 0, 0, q[0], 0, 8192, on_done, &d);
    for (int rounds = 0; r > 0 && !d.finished && rounds < 100; rounds++)
      shunt_poll(h2, 100);
    ok(qw == 4096 && d.finished && d.error < 0,
       "pwrite_pipe from a pipe short of its bytes fails (%s) instead of spinning",
       d.finished ? strerror(-d.error) : "still in flight");
    close(q[0]);
    close(q[1]);
  } else {
    ok(0, "second handle and pipe: %s", h2 ? shunt_last_error(h2) : "out of memory");
  }
  shunt_close(h2);
  close(p[0]);
  close(p[1]);
  if (fd >= 0)
    close(fd);
  shunt_close(h);
  free(buf);
  free(in);
  return tap_done();
}
