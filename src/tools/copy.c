/* copy.c: `shunt copy SRC DST` between files, block devices and NBD URIs in any
 * direction.  Sparse-aware (holes are neither read nor written; zeroes go as
 * WRITE_ZEROES or stay holes), parallel (multi-conn, many requests in flight),
 * with a progress bar and --json.  Both sides are endpoints (endpoint.h): this
 * file plans the source's extents, runs requests through slots, checks data
 * for zeroes and picks the kernel-moved paths the endpoints offer: payload
 * through a pipe per slot (spliced in and out) when the source can fill one
 * and the destination drain it, sendfile when the source has a file
 * descriptor and the destination can send from one.  Then only the first
 * PROBE_BYTES of each request pass through user memory, to spot zero blocks. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"
#include "common/uri.h"
#include "common/macros.h"
#include "common/units.h"
#include "common/log.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "tools/connect.h"
#include "tools/copy_progress.h"
#include "tools/copy_stream.h"
#include "tools/endpoint.h"

#define EXTENT_BATCH (UINT64_C(1) << 30)   /* plan this much of the source at a time */
#define MAX_ZERO_REQ (UINT64_C(1) << 30)   /* one WRITE_ZEROES at most */
#define PROBE_BYTES 4096                   /* zero check before the kernel moves the rest */

struct extent {
  uint64_t off, len;
  bool zero;
};

struct copy;

struct slot {
  struct copy *cp;
  unsigned char *buf;
  uint64_t off, len;       /* the request */
  struct ep_io io;         /* its operation in flight */
  bool busy;
  bool probing;            /* reading the first bytes only: sendfile the rest if data */
  int pipe[2];             /* the payload's pipe, or -1 */
  uint64_t pipe_from, piped; /* the pipe holds request bytes [pipe_from, +piped) */
};

struct copy {
  struct endpoint *src, *dst;
  struct extent *ext;
  size_t next, n, cap;
  uint64_t planned;        /* source extents known up to here */
  struct slot *slots;
  unsigned nslots, busy;
  uint64_t req_size;
  bool sparse, target_is_zero, flush, json;
  struct copy_progress progress;
  bool direct;             /* write file destinations with O_DIRECT where aligned */
  bool splice_src;         /* payload through the slots' pipes */
  bool sendfile_src;       /* the destination sends from the source's descriptor */
  uint64_t probe;          /* bytes checked for zeroes in user memory (0: none) */
  uint64_t data_bytes, zero_bytes, skipped_bytes, done_bytes, requests;
  uint64_t spliced_bytes, sendfile_bytes; /* data the kernel moved past user memory */
  int error;
  char errmsg[1024];
};

static void usage(FILE *f)
{
  fprintf(f,
    "usage: shunt copy [OPTIONS] SRC DST\n"
    "\n"
    "Copy between files, block devices and NBD URIs (nbd://, nbd+unix://; nbds://\n"
    "and nbds+unix:// over TLS) in any direction.  Holes in SRC are neither read\n"
    "nor written: a new or regular DST\n"
    "file keeps them as holes, an NBD DST gets WRITE_ZEROES.  Blocks read as all\n"
    "zeroes are treated the same way unless --no-sparse.  SRC and DST may not be\n"
    "the same file or the same export.\n"
    "\n"
    "  -C, --connections N   NBD connections per URI when the server allows (4)\n"
    "  -R, --requests N      requests in flight (64)\n"
    "  -S, --request-size N  bytes per request (256K; capped by the server)\n"
    "      --no-sparse       copy every byte as data\n"
    "      --no-splice       move every byte through user memory (no splice or\n"
    "                        sendfile; for comparison)\n"
    "      --no-direct       write a file or block device DST through the page\n"
    "                        cache (default: O_DIRECT for aligned writes, up to half\n"
    "                        the requests in flight; the overflow is buffered)\n"
    "      --target-is-zero  DST already reads as zeroes: skip zero ranges\n"
    "      --flush           flush DST (NBD FLUSH or fsync) at the end\n"
    "      --reconnect N     after a dropped NBD connection, reconnect up to N times\n"
    "                        (with backoff) and retry the requests in flight (NBD to\n"
    "                        NBD then moves the payload through user memory)\n"
    "      --src-failover URI, --dst-failover URI\n"
    "                        another URI of SRC's or DST's export (another gateway\n"
    "                        of a shared disk; repeat for more): a lost connection\n"
    "                        is re-established on the next URI, round robin, and\n"
    "                        its requests resent (implies --reconnect 10)\n"
    "      --json            print a JSON summary on stdout\n"
    "      --progress        force the progress bar (default: when stderr is a tty)\n"
    "      --progress=FD     write the progress to descriptor FD as lines\n"
    "                        \"PERCENT/100\" (as nbdcopy), for programs\n"
    "      --no-progress     never show the bar\n"
    "  -V, --version         print the version\n"
    "  -h, --help            this text\n"
    "\n"
    "SRC or DST may be '-': standard input or output, read or written in order\n"
    "(no holes, one connection); e.g. shunt copy nbd://host/disk - | gzip >disk.gz\n"
    "\n"
    "Exit status: 0 on success, 1 on any error, 2 on bad usage.\n");
}

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void set_error(struct copy *cp, int err, const char *fmt, const char *a, const char *b)
{
  if (cp->error)
    return;
  cp->error = err ? err : -EIO;
  snprintf(cp->errmsg, sizeof cp->errmsg, fmt, a, b);
}

static unsigned reconnect_tries;

static int add_extent(struct copy *cp, uint64_t off, uint64_t len, bool zero)
{
  if (!len)
    return 0;
  if (!cp->sparse)
    zero = false;
  if (cp->n && cp->ext[cp->n - 1].zero == zero && cp->ext[cp->n - 1].off + cp->ext[cp->n - 1].len == off) {
    cp->ext[cp->n - 1].len += len;
    return 0;
  }
  if (cp->n == cp->cap) {
    size_t c = cp->cap ? cp->cap * 2 : 256;
    struct extent *e = realloc(cp->ext, c * sizeof *e);
    if (!e)
      return -ENOMEM;
    cp->ext = e;
    cp->cap = c;
  }
  cp->ext[cp->n++] = (struct extent){ off, len, zero };
  return 0;
}

struct bs_collect {
  struct copy *cp;
  uint64_t end;
  uint64_t reached;
  int err;
};

static void on_extent(void *user, uint64_t off, uint64_t len, bool zero)
{
  struct bs_collect *b = user;
  if (off >= b->end)
    return;
  if (len > b->end - off)
    len = b->end - off;
  if (add_extent(b->cp, off, len, zero) < 0)
    b->err = -ENOMEM;
  b->reached = off + len;
}

/* Learn the next batch of the source's extents (drops the consumed ones).
 * What the source cannot tell about is data. */
static int plan_more(struct copy *cp)
{
  uint64_t size = cp->src->size;
  if (cp->next) {
    memmove(cp->ext, cp->ext + cp->next, (cp->n - cp->next) * sizeof *cp->ext);
    cp->n -= cp->next;
    cp->next = 0;
  }
  uint64_t start = cp->planned;
  uint64_t end = size - start < EXTENT_BATCH ? size : start + EXTENT_BATCH;
  if (start >= size)
    return 0;
  struct bs_collect b = { .cp = cp, .end = end, .reached = start };
  while (cp->sparse && b.reached < end) {
    uint64_t before = b.reached;
    int r = cp->src->ops->extents(cp->src, b.reached, end - b.reached, on_extent, &b);
    if (r == -ENOTSUP)
      break;
    if (r < 0) {
      set_error(cp, r, "%s%s", cp->src->errmsg, "");
      return r;
    }
    if (b.err)
      return b.err;
    if (b.reached == before)
      break;
  }
  if (b.reached < end && add_extent(cp, b.reached, end - b.reached, false) < 0)
    return -ENOMEM;
  cp->planned = end;
  return 0;
}

/* Take the next piece of work: at most max bytes of one extent. */
static bool next_work(struct copy *cp, uint64_t max_data, uint64_t *off, uint64_t *len, bool *zero)
{
  while (cp->next == cp->n) {
    if (cp->planned >= cp->src->size || cp->error)
      return false;
    if (plan_more(cp) < 0) {
      if (!cp->error)
        set_error(cp, -ENOMEM, "%s%s", "out of memory", "");
      return false;
    }
  }
  struct extent *e = &cp->ext[cp->next];
  uint64_t lim = e->zero ? MAX_ZERO_REQ : max_data;
  *off = e->off;
  *zero = e->zero;
  *len = e->len < lim ? e->len : lim;
  e->off += *len;
  e->len -= *len;
  if (!e->len)
    cp->next++;
  return true;
}

static void slot_free(struct slot *s)
{
  s->busy = false;
  s->cp->busy--;
}

/* The slot's operation on request bytes [off, off + len). */
static struct ep_io *slot_io(struct slot *s, uint64_t off, uint64_t len, ep_done_fn done)
{
  s->io = (struct ep_io){ .off = off, .len = len, .buf = s->buf + (off - s->off),
                          .pipe_rfd = -1, .pipe_wfd = -1, .src_fd = -1,
                          .done = done, .user = s };
  return &s->io;
}

/* A write, zeroing or sendfile of the slot finished: the request is done. */
static void on_write_done(struct ep_io *io, int err, const char *msg)
{
  struct slot *s = io->user;
  struct copy *cp = s->cp;
  if (err)
    set_error(cp, err, "%s%s", msg, "");
  else
    cp->done_bytes += io->len;
  cp->requests++;
  slot_free(s);
}

/* Make the slot's range of the destination read as zeroes; frees the slot
 * when done. */
static void dst_zero(struct copy *cp, struct slot *s)
{
  cp->zero_bytes += s->len;
  if (cp->dst->fresh || cp->target_is_zero) {
    cp->skipped_bytes += s->len;
    cp->done_bytes += s->len;
    slot_free(s);
    return;
  }
  int r = cp->dst->ops->zero(cp->dst, slot_io(s, s->off, s->len, on_write_done));
  if (r == 1)
    cp->done_bytes += s->len;
  else if (r < 0)
    set_error(cp, r, "%s%s", cp->dst->errmsg, "");
  if (r != 0)
    slot_free(s);
}

/* Move the slot's piped bytes into its buffer (for a full zero check, or a
 * destination that cannot take them from the pipe). */
static int pipe_to_buf(struct copy *cp, struct slot *s)
{
  for (uint64_t got = 0; got < s->piped;) {
    ssize_t n = read(s->pipe[0], s->buf + s->pipe_from + got, s->piped - got);
    if (n <= 0) {
      int e = n < 0 ? -errno : -EIO;
      if (e == -EINTR)
        continue;
      set_error(cp, e, "read from pipe: %s%s", strerror(-e), "");
      return e;
    }
    got += (uint64_t)n;
  }
  s->piped = 0;
  return 0;
}

/* Data for the slot is in its buffer and pipe: send it to the destination. */
static void data_ready(struct slot *s)
{
  struct copy *cp = s->cp;
  if (cp->sparse) {
    /* Only the bytes in user memory are looked at; when they are all zero,
     * the piped rest is fetched to decide. */
    bool zero = is_zero(s->buf, s->piped ? s->pipe_from : s->len);
    if (zero && s->piped) {
      if (pipe_to_buf(cp, s) < 0) {
        slot_free(s);
        return;
      }
      zero = is_zero(s->buf + s->pipe_from, s->len - s->pipe_from);
    }
    if (zero) {
      dst_zero(cp, s);
      return;
    }
  }
  if (s->piped && !(cp->dst->caps & EP_WRITE_PIPE) && pipe_to_buf(cp, s) < 0) {
    slot_free(s);
    return;
  }
  cp->data_bytes += s->len;
  struct ep_io *io = slot_io(s, s->off, s->len, on_write_done);
  if (s->piped) {
    io->pipe_rfd = s->pipe[0];
    io->pipe_from = s->pipe_from;
    io->piped = s->piped;
  }
  int r = cp->dst->ops->write(cp->dst, io);
  if (r < 0) {
    set_error(cp, r, "%s%s", cp->dst->errmsg, "");
    slot_free(s);
  }
}

/* The destination sends the slot's range from the source's descriptor. */
static void send_file(struct copy *cp, struct slot *s)
{
  cp->data_bytes += s->len;
  cp->sendfile_bytes += s->len;
  struct ep_io *io = slot_io(s, s->off, s->len, on_write_done);
  io->src_fd = cp->src->fd;
  io->src_off = s->off;
  int r = cp->dst->ops->write_from_fd(cp->dst, io);
  if (r < 0) {
    set_error(cp, r, "%s%s", cp->dst->errmsg, "");
    slot_free(s);
  }
}

/* Read request bytes [from, len) of the slot. */
static void read_from(struct copy *cp, struct slot *s, uint64_t from);

static void on_read_done(struct ep_io *io, int err, const char *msg)
{
  struct slot *s = io->user;
  struct copy *cp = s->cp;
  if (err) {
    set_error(cp, err, "%s%s", msg, "");
    slot_free(s);
    return;
  }
  if (s->probing) {
    /* The probe is read: data goes by sendfile, zeroes are read in full. */
    s->probing = false;
    if (!is_zero(s->buf, io->len)) {
      cp->requests++;
      send_file(cp, s);
    } else {
      read_from(cp, s, io->len);
    }
    return;
  }
  cp->requests++;
  s->piped = io->piped;
  cp->spliced_bytes += io->piped;
  data_ready(s);
}

static void read_from(struct copy *cp, struct slot *s, uint64_t from)
{
  uint64_t to = s->probing ? MIN(cp->probe, s->len) : s->len;
  struct ep_io *io = slot_io(s, s->off + from, to - from, on_read_done);
  if (cp->splice_src) {
    s->pipe_from = MIN(cp->probe, s->len);
    io->pipe_wfd = s->pipe[1];
    io->pipe_from = s->pipe_from;
  }
  int r = cp->src->ops->read(cp->src, io);
  if (r < 0) {
    set_error(cp, r, "%s%s", cp->src->errmsg, "");
    slot_free(s);
  }
}

static void start_slot(struct copy *cp, struct slot *s, uint64_t off, uint64_t len)
{
  s->busy = true;
  s->off = off;
  s->len = len;
  cp->busy++;
  s->piped = 0;
  s->probing = false;
  if (cp->sendfile_src && !cp->probe) {
    send_file(cp, s);
    return;
  }
  s->probing = cp->sendfile_src && cp->probe < len;
  read_from(cp, s, 0);
}

static void fill(struct copy *cp)
{
  for (unsigned i = 0; i < cp->nslots && !cp->error; i++) {
    struct slot *s = &cp->slots[i];
    if (s->busy)
      continue;
    uint64_t off, len;
    bool zero;
    if (!next_work(cp, cp->req_size, &off, &len, &zero))
      return;
    if (zero) {
      s->busy = true;
      s->off = off;
      s->len = len;
      cp->busy++;
      dst_zero(cp, s);
    } else {
      start_slot(cp, s, off, len);
    }
    if (!s->busy)
      i--; /* the slot was freed at once (synchronous path): reuse it */
  }
}

static int run(struct copy *cp)
{
  struct endpoint *eps[2] = { cp->src, cp->dst };
  for (;;) {
    if (!cp->error)
      fill(cp);
    if (cp->busy == 0 && (cp->error || (cp->next == cp->n && cp->planned >= cp->src->size)))
      break;
    if (cp->busy == 0)
      continue;
    struct pollfd pfd[2 * EP_MAX_POLLFDS];
    unsigned np[2], total = 0;
    int reaped = 0;
    for (int i = 0; i < 2; i++)
      if (eps[i]->ops->submit(eps[i]) < 0)
        set_error(cp, -EIO, "%s%s", eps[i]->errmsg, "");
    for (int i = 0; i < 2; i++) {
      np[i] = eps[i]->ops->pollfds(eps[i], pfd + total, EP_MAX_POLLFDS);
      total += np[i];
    }
    for (int i = 0; i < 2; i++) {
      int r = eps[i]->ops->reap(eps[i]);
      if (r < 0)
        set_error(cp, r, "%s%s", eps[i]->errmsg, "");
      else
        reaped += r;
    }
    if (reaped > 0)
      continue; /* completions were already waiting */
    if (poll(pfd, total, cp->progress.bar ? 250 : -1) < 0 && errno != EINTR) {
      set_error(cp, -errno, "poll: %s%s", strerror(errno), "");
      break;
    }
    for (unsigned i = 0, at = 0; i < 2; at += np[i], i++)
      if (eps[i]->ops->process(eps[i], pfd + at, np[i]) < 0)
        set_error(cp, -EIO, "%s%s", eps[i]->errmsg, "");
    copy_progress_update(&cp->progress, cp->done_bytes);
  }
  copy_progress_finish(&cp->progress, cp->done_bytes, !cp->error);
  return cp->error;
}

int cmd_copy(int argc, char **argv)
{
  enum { O_NOSPARSE = 256, O_TZ, O_FLUSH, O_JSON, O_PROGRESS, O_NOPROGRESS, O_RECONNECT,
         O_NOSPLICE, O_NODIRECT, O_SRC_FAILOVER, O_DST_FAILOVER };
  static const struct option lo[] = {
    { "connections", required_argument, NULL, 'C' }, { "requests", required_argument, NULL, 'R' },
    { "request-size", required_argument, NULL, 'S' }, { "no-sparse", no_argument, NULL, O_NOSPARSE },
    { "target-is-zero", no_argument, NULL, O_TZ }, { "flush", no_argument, NULL, O_FLUSH },
    { "json", no_argument, NULL, O_JSON }, { "progress", optional_argument, NULL, O_PROGRESS },
    { "no-progress", no_argument, NULL, O_NOPROGRESS }, { "help", no_argument, NULL, 'h' },
    { "reconnect", required_argument, NULL, O_RECONNECT },
    { "no-splice", no_argument, NULL, O_NOSPLICE },
    { "no-direct", no_argument, NULL, O_NODIRECT },
    { "src-failover", required_argument, NULL, O_SRC_FAILOVER },
    { "dst-failover", required_argument, NULL, O_DST_FAILOVER },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
  };
  struct copy cp = { .sparse = true, .direct = true, .req_size = 256 * 1024 };
  uint64_t conns = 4, reqs = 64;
  int progress_opt = -1, progress_fd = -1, c;
  bool splice = true;
  struct tools_failover src_fail = { .n = 0 }, dst_fail = { .n = 0 };
  while ((c = cli_getopt(argc, argv, "C:R:S:Vh", lo)) != -1) {
    switch (c) {
    case 'C':
      if (units_parse_size(optarg, &conns) < 0 || conns < 1 || conns > 64) {
        return cli_usage_error("copy", "bad --connections '%s' (1..64)", optarg);
      }
      break;
    case 'R':
      if (units_parse_size(optarg, &reqs) < 0 || reqs < 1 || reqs > 1024) {
        return cli_usage_error("copy", "bad --requests '%s' (1..1024)", optarg);
      }
      break;
    case 'S':
      if (units_parse_size(optarg, &cp.req_size) < 0 || cp.req_size < 512 ||
          cp.req_size > (UINT64_C(64) << 20)) {
        return cli_usage_error("copy", "bad --request-size '%s' (512..64M)", optarg);
      }
      break;
    case O_RECONNECT: {
      uint64_t v;
      if (units_parse_size(optarg, &v) < 0 || v > 1000) {
        return cli_usage_error("copy", "bad --reconnect '%s' (0..1000)", optarg);
      }
      reconnect_tries = (unsigned)v;
      break;
    }
    case O_SRC_FAILOVER: case O_DST_FAILOVER:
      if (tools_failover_add(c == O_SRC_FAILOVER ? &src_fail : &dst_fail, "copy",
                             c == O_SRC_FAILOVER ? "--src-failover" : "--dst-failover", optarg))
        return 2;
      break;
    case O_NOSPARSE: cp.sparse = false; break;
    case O_NOSPLICE: splice = false; break;
    case O_NODIRECT: cp.direct = false; break;
    case O_TZ: cp.target_is_zero = true; break;
    case O_FLUSH: cp.flush = true; break;
    case O_JSON: cp.json = true; break;
    case O_PROGRESS: {
      uint64_t fd;
      if (!optarg) {
        progress_opt = 1;
      } else if (units_parse_size(optarg, &fd) < 0 || fd > INT32_MAX || fcntl((int)fd, F_GETFD) < 0) {
        return cli_usage_error("copy", "--progress=%s: not an open file descriptor", optarg);
      } else {
        progress_fd = (int)fd;
      }
      break;
    }
    case O_NOPROGRESS: progress_opt = 0; break;
    case 'V': return cli_version();
    case 'h': usage(stdout); return 0;
    default: return 2;
    }
  }
  if (optind != argc - 2)
    return cli_usage_error("copy", "expected SRC and DST, not %d argument%s", argc - optind,
                           argc - optind == 1 ? "" : "s");
  if (src_fail.n && !nbd_uri_is_nbd(argv[optind]))
    return cli_usage_error("copy", "--src-failover: SRC '%s' is not an NBD URI", argv[optind]);
  if (dst_fail.n && !nbd_uri_is_nbd(argv[optind + 1]))
    return cli_usage_error("copy", "--dst-failover: DST '%s' is not an NBD URI", argv[optind + 1]);
  bool bar = progress_opt >= 0 ? progress_opt : (isatty(2) && !cp.json);
  if (!strcmp(argv[optind], "-") || !strcmp(argv[optind + 1], "-")) {
    struct copy_stream_params csp = { .request_size = cp.req_size, .flush = cp.flush,
                                      .bar = bar, .progress_fd = progress_fd,
                                      .reconnect = reconnect_tries,
                                      .src_failover = &src_fail, .dst_failover = &dst_fail };
    if (cp.json)
      return cli_usage_error("copy", "--json is not available with '-'");
    return copy_stream(argv[optind], argv[optind + 1], &csp);
  }
  int rc = 1;
  double t0 = now_s();
  char err[1024];
  const char *dst_name = argv[optind + 1];
  uint64_t direct_bytes = 0;
  cp.nslots = (unsigned)reqs;
  struct endpoint_params sp = { .connections = (unsigned)conns, .reconnect = reconnect_tries,
                                .depth = cp.nslots * 2, .failover = &src_fail };
  if (endpoint_open(&cp.src, argv[optind], &sp, err, sizeof err) < 0) {
    log_msg(LOG_ERROR, NULL, NULL, "%s", err);
    goto out;
  }
  struct endpoint_params dp = sp;
  dp.write = true;
  dp.failover = &dst_fail;
  dp.size = cp.src->size;
  dp.direct = cp.direct;
  /* O_DIRECT for up to half the requests in flight: while the disk keeps up,
   * every write bypasses the page cache; when it falls behind, the overflow
   * goes to the page cache instead of waiting (costs a copy, keeps the pace). */
  dp.direct_max = cp.nslots / 2 ? cp.nslots / 2 : 1;
  dp.source = cp.src;
  if (endpoint_open(&cp.dst, dst_name, &dp, err, sizeof err) < 0) {
    log_msg(LOG_ERROR, NULL, NULL, "%s", err);
    goto out;
  }
  if (cp.dst->size < cp.src->size) {
    log_msg(LOG_ERROR, NULL, NULL, "%s (%llu bytes) is smaller than %s (%llu bytes)",
            cp.dst->name, (unsigned long long)cp.dst->size, cp.src->name,
            (unsigned long long)cp.src->size);
    goto out;
  }
  copy_progress_start(&cp.progress, bar, progress_fd, cp.src->size);
  cp.req_size = MIN(cp.req_size, cp.src->max_req);
  cp.req_size = MIN(cp.req_size, cp.dst->max_req);
  cp.slots = calloc(cp.nslots, sizeof *cp.slots);
  if (!cp.slots)
    goto oom;
  for (unsigned i = 0; i < cp.nslots; i++)
    cp.slots[i].pipe[0] = cp.slots[i].pipe[1] = -1;
  /* A write whose pipe bytes were partly sent cannot be resent after a
   * reconnect: the endpoints offer pipes only when that cannot happen. */
  cp.splice_src = splice && (cp.src->caps & EP_READ_PIPE) && (cp.dst->caps & EP_WRITE_PIPE);
  cp.sendfile_src = splice && cp.src->fd >= 0 && (cp.dst->caps & EP_WRITE_FROM_FD);
  cp.probe = cp.sparse ? PROBE_BYTES : 0;
  for (unsigned i = 0; i < cp.nslots; i++) {
    struct slot *s = &cp.slots[i];
    s->cp = &cp;
    if (!(s->buf = aligned_alloc(4096, ROUND_UP(cp.req_size, 4096))))
      goto oom;
    if (cp.splice_src) {
      if (pipe2(s->pipe, O_CLOEXEC) < 0) {
        log_msg(LOG_ERROR, NULL, NULL, "pipe: %s", strerror(errno));
        goto out;
      }
      /* Room for a whole request; if the kernel refuses, bytes that do not
       * fit land in the buffer instead. */
      if (fcntl(s->pipe[1], F_SETPIPE_SZ, (int)cp.req_size) < 0)
        (void)fcntl(s->pipe[1], F_SETPIPE_SZ, 1 << 20);
    }
  }
  if (run(&cp) == 0 && cp.flush) {
    int r = cp.dst->ops->flush(cp.dst);
    if (r < 0)
      set_error(&cp, r, "flush %s: %s", cp.dst->name, cp.dst->errmsg);
  }
  direct_bytes = cp.dst->direct_bytes;
  int r = endpoint_close(cp.dst, err, sizeof err);
  cp.dst = NULL;
  if (r < 0)
    set_error(&cp, r, "%s%s", err, "");
  if (cp.error)
    log_msg(LOG_ERROR, NULL, NULL, "%s", cp.errmsg);
  rc = cp.error ? 1 : 0;
  if (cp.json) {
    double dt = now_s() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    struct json j;
    json_init_file(&j, stdout);
    json_object(&j, NULL, JSON_BLOCK);
    json_string(&j, "source", cp.src->name);
    json_string(&j, "destination", dst_name);
    json_uint(&j, "size", cp.src->size);
    json_uint(&j, "copied_bytes", cp.done_bytes);
    json_uint(&j, "data_bytes", cp.data_bytes);
    json_uint(&j, "zero_bytes", cp.zero_bytes);
    json_uint(&j, "zero_bytes_skipped", cp.skipped_bytes);
    json_uint(&j, "spliced_bytes", cp.spliced_bytes);
    json_uint(&j, "sendfile_bytes", cp.sendfile_bytes);
    json_uint(&j, "direct_bytes", direct_bytes);
    json_uint(&j, "requests", cp.requests);
    json_double(&j, "seconds", dt, 3);
    json_double(&j, "mib_per_second", dt > 0 ? (double)cp.done_bytes / dt / 1048576 : 0, 1);
    json_double(&j, "cpu_user_seconds",
                (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6, 3);
    json_double(&j, "cpu_system_seconds",
                (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6, 3);
    json_bool(&j, "flushed", cp.flush && !cp.error);
    json_string(&j, "error", cp.error ? cp.errmsg : NULL);
    json_end(&j);
    if (json_finish(&j) < 0 && !rc) {
      log_msg(LOG_ERROR, NULL, NULL, "writing the JSON summary failed");
      rc = 1;
    }
  }
  goto out;
oom:
  log_msg(LOG_ERROR, NULL, NULL, "out of memory");
  rc = 1;
out:
  endpoint_close(cp.src, NULL, 0);
  endpoint_close(cp.dst, NULL, 0);
  for (unsigned i = 0; cp.slots && i < cp.nslots; i++) {
    free(cp.slots[i].buf);
    for (int k = 0; k < 2; k++)
      if (cp.slots[i].pipe[k] >= 0)
        close(cp.slots[i].pipe[k]);
  }
  free(cp.slots);
  free(cp.ext);
  return rc;
}
