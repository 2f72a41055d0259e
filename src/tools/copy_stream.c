/* copy_stream.c: `shunt copy` to or from standard input/output (see
 * copy_stream.h).  The other side is an NBD export (libshunt's synchronous
 * calls) or a file; bytes go through one buffer, in order. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/uri.h"
#include "shunt/shunt.h"
#include "tools/cli.h"
#include "tools/connect.h"
#include "tools/copy_progress.h"
#include "tools/copy_stream.h"

struct side {
  const char *name;          /* as given; "-" for stdin/stdout */
  struct shunt_handle *h;    /* an NBD export, or NULL */
  int fd;                    /* a file, stdin or stdout, or -1 */
  bool stream;               /* stdin or stdout: no offsets, no size */
  uint64_t size;             /* the export's or file's size (0 for a stream) */
  bool can_zero;             /* NBD WRITE_ZEROES for all-zero blocks */
};

/* Open one side for reading (the source) or writing.  Returns 0, or an exit
 * status with the error reported. */
static int open_side(struct side *s, const char *name, bool write, const struct copy_stream_params *p)
{
  struct stat st;
  char err[512];

  *s = (struct side){ .name = name, .fd = -1 };
  if (!strcmp(name, "-")) {
    s->stream = true;
    s->fd = write ? STDOUT_FILENO : STDIN_FILENO;
    if (write && isatty(s->fd))
      return cli_usage_error("copy", "standard output is a terminal: redirect it (shunt copy SRC - >FILE)");
    return 0;
  }
  if (nbd_uri_is_nbd(name)) {
    struct tools_conn_opts o = { .reconnect = p->reconnect,
                                 .failover = write ? p->dst_failover : p->src_failover };
    if (tools_connect(&s->h, name, &o, err, sizeof err) < 0) {
      log_msg(LOG_ERROR, NULL, NULL, "%s", err);
      return 1;
    }
    if (write && shunt_get_flag(s->h, SHUNT_IS_READ_ONLY) == 1) {
      log_msg(LOG_ERROR, NULL, NULL, "%s: the export is read-only", name);
      return 1;
    }
    s->size = (uint64_t)shunt_get_size(s->h);
    s->can_zero = shunt_get_flag(s->h, SHUNT_CAN_ZERO) == 1;
    return 0;
  }
  s->fd = open(name, write ? O_WRONLY | O_CREAT | O_CLOEXEC : O_RDONLY | O_CLOEXEC, 0644);
  if (s->fd < 0 || fstat(s->fd, &st) < 0) {
    log_msg(LOG_ERROR, NULL, NULL, "%s: %s", name, strerror(errno));
    return 1;
  }
  if (S_ISBLK(st.st_mode)) {
    if (ioctl(s->fd, BLKGETSIZE64, &s->size) < 0) {
      log_msg(LOG_ERROR, NULL, NULL, "%s: BLKGETSIZE64: %s", name, strerror(errno));
      return 1;
    }
  } else if (S_ISREG(st.st_mode)) {
    /* A file written from stdin holds what stdin held, as with cat >FILE. */
    if (write && ftruncate(s->fd, 0) < 0) {
      log_msg(LOG_ERROR, NULL, NULL, "%s: %s", name, strerror(errno));
      return 1;
    }
    s->size = write ? UINT64_MAX : (uint64_t)st.st_size;
  } else {
    log_msg(LOG_ERROR, NULL, NULL, "%s: neither a regular file nor a block device", name);
    return 1;
  }
  return 0;
}

static void close_side(struct side *s)
{
  if (s->h)
    shunt_close(s->h);
  if (s->fd > STDERR_FILENO)
    close(s->fd);
}

/* Read up to len bytes at off: how many (0 at the end), or -1 (reported). */
static ssize_t read_side(struct side *s, unsigned char *buf, size_t len, uint64_t off)
{
  size_t got = 0;

  if (s->h) {
    if (shunt_pread(s->h, buf, len, off, 0) < 0) {
      log_msg(LOG_ERROR, NULL, NULL, "%s: %s", s->name, shunt_last_error(s->h));
      return -1;
    }
    return (ssize_t)len;
  }
  /* A pipe hands out what it has: fill the buffer unless input ends. */
  while (got < len) {
    ssize_t n = s->stream ? read(s->fd, buf + got, len - got) : pread(s->fd, buf + got, len - got, (off_t)(off + got));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      log_msg(LOG_ERROR, NULL, NULL, "%s: %s", s->stream ? "standard input" : s->name, strerror(errno));
      return -1;
    }
    if (n == 0)
      break;
    got += (size_t)n;
  }
  return (ssize_t)got;
}

static bool all_zero(const unsigned char *buf, size_t len)
{
  return len == 0 || (buf[0] == 0 && memcmp(buf, buf + 1, len - 1) == 0);
}

/* Write len bytes at off: 0 or -1 (reported). */
static int write_side(struct side *s, const unsigned char *buf, size_t len, uint64_t off)
{
  size_t put = 0;

  if (s->h) {
    int r = s->can_zero && all_zero(buf, len) ? shunt_zero(s->h, off, len, 0)
                                              : shunt_pwrite(s->h, buf, len, off, 0);
    if (r < 0)
      log_msg(LOG_ERROR, NULL, NULL, "%s: %s", s->name, shunt_last_error(s->h));
    return r < 0 ? -1 : 0;
  }
  while (put < len) {
    ssize_t n = s->stream ? write(s->fd, buf + put, len - put) : pwrite(s->fd, buf + put, len - put, (off_t)(off + put));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      log_msg(LOG_ERROR, NULL, NULL, "%s: %s", s->stream ? "standard output" : s->name, strerror(errno));
      return -1;
    }
    put += (size_t)n;
  }
  return 0;
}

static int flush_side(struct side *s)
{
  if (s->h && shunt_flush(s->h) < 0) {
    log_msg(LOG_ERROR, NULL, NULL, "flush %s: %s", s->name, shunt_last_error(s->h));
    return -1;
  }
  if (!s->h && !s->stream && fsync(s->fd) < 0) {
    log_msg(LOG_ERROR, NULL, NULL, "flush %s: %s", s->name, strerror(errno));
    return -1;
  }
  return 0;
}

int copy_stream(const char *src_name, const char *dst_name, const struct copy_stream_params *p)
{
  struct side src, dst;
  struct copy_progress prog;
  unsigned char *buf = NULL;
  uint64_t off = 0, req = p->request_size;
  int rc;

  if (!strcmp(src_name, "-") && !strcmp(dst_name, "-"))
    return cli_usage_error("copy", "SRC and DST cannot both be '-'");
  if ((rc = open_side(&src, src_name, false, p)) != 0) {
    close_side(&src);
    return rc;
  }
  if ((rc = open_side(&dst, dst_name, true, p)) != 0)
    goto out;
  rc = 1;
  for (const struct side *s = &src; s; s = s == &src ? &dst : NULL)
    if (s->h && (uint64_t)shunt_get_block_size(s->h, SHUNT_BLOCK_MAX) < req)
      req = (uint64_t)shunt_get_block_size(s->h, SHUNT_BLOCK_MAX);
  if (!dst.stream && !src.stream && src.size > dst.size) {
    log_msg(LOG_ERROR, NULL, NULL, "%s (%llu bytes) is smaller than %s (%llu bytes)", dst_name,
            (unsigned long long)dst.size, src_name, (unsigned long long)src.size);
    goto out;
  }
  if (!(buf = malloc(req))) {
    log_msg(LOG_ERROR, NULL, NULL, "out of memory");
    goto out;
  }
  copy_progress_start(&prog, p->bar, p->progress_fd, src.stream ? 0 : src.size);
  for (;;) {
    size_t want = src.stream || src.size - off > req ? req : (size_t)(src.size - off);
    ssize_t n;
    if (want == 0 || (n = read_side(&src, buf, want, off)) == 0)
      break;
    if (n < 0)
      goto done;
    if (!dst.stream && (uint64_t)n > dst.size - off) {
      log_msg(LOG_ERROR, NULL, NULL, "%s: more input than the %llu bytes it holds", dst_name,
              (unsigned long long)dst.size);
      goto done;
    }
    if (write_side(&dst, buf, (size_t)n, off) < 0)
      goto done;
    off += (uint64_t)n;
    copy_progress_update(&prog, off);
  }
  rc = p->flush && flush_side(&dst) < 0 ? 1 : 0;
done:
  copy_progress_finish(&prog, off, rc == 0);
out:
  free(buf);
  close_side(&src);
  close_side(&dst);
  return rc;
}
