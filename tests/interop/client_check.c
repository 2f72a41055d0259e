/* client_check.c: drives libshunt against a real NBD server and prints TAP
 * lines; the tests/interop/client_*.sh scripts start nbdkit, qemu-nbd or
 * nbd-server and run it.  Usage:
 *   client_check [OPTIONS] URI
 *   client_check [OPTIONS] --socket PATH        (shunt_connect_socket on a unix socket)
 *   client_check [OPTIONS] --command CMD ARG... (shunt_connect_command)
 * --connections N, --expect-conns N: connections wanted, and expected open.
 * --errors: the server fails every read with EIO and every write with ENOSPC.
 * --delay-ms: the server delays each read by N ms (checks requests overlap).
 * --export NAME: the export to ask for with --socket and --command.
 * --context NAME (repeatable): request that meta context too and check that
 *   block status reports extents of it covering the range asked for.
 * --absent-context NAME: request a context the server does not know: it is
 *   not agreed, and block status reports base:allocation alone.
 * --expect-cache: the server must offer NBD_CMD_CACHE. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <shunt/shunt.h>

static int n_tests, n_failed;
#define ok(cond, ...)                                                 \
  do {                                                                \
    int c_ = !!(cond);                                                \
    printf("%s %d - ", c_ ? "ok" : "not ok", ++n_tests);              \
    printf(__VA_ARGS__);                                              \
    printf("\n");                                                     \
    if (!c_)                                                          \
      n_failed++;                                                     \
    fflush(stdout);                                                   \
  } while (0)
#define skip(why, ...)                                                \
  do {                                                                \
    printf("ok %d - ", ++n_tests);                                    \
    printf(__VA_ARGS__);                                              \
    printf(" # SKIP %s\n", why);                                      \
  } while (0)

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned char pat(uint64_t off)
{
  return (unsigned char)(off * 31 + (off >> 12) + 1);
}

struct count {
  int done, errors, last_error;
  char msg[512];
};

static void on_done(const struct shunt_result *r)
{
  struct count *c = r->user;
  c->done++;
  if (r->error) {
    c->errors++;
    c->last_error = r->error;
    snprintf(c->msg, sizeof c->msg, "%s", r->message);
  }
}

struct extents {
  const char *context;       /* the context counted; others are ignored */
  int n, others;
  uint64_t next, data, zero;
  bool contiguous;
};

static void on_extent(void *user, const char *context, uint64_t off, uint64_t len,
                      uint32_t flags)
{
  struct extents *e = user;
  if (strcmp(context, e->context)) {
    e->others++;
    return;
  }
  if (e->n && off != e->next)
    e->contiguous = false;
  if (!e->n && off != 0)
    e->contiguous = false;
  e->next = off + len;
  e->n++;
  if (flags & SHUNT_EXTENT_ZERO)
    e->zero += len;
  else
    e->data += len;
}

static void check_errors(struct shunt_handle *h, const char *uri)
{
  unsigned char buf[4096] = { 0 };
  int r = shunt_pread(h, buf, sizeof buf, 0, 0);
  ok(r == -EIO && strstr(shunt_last_error(h), uri) &&
     strstr(shunt_last_error(h), "READ 4096 bytes at offset 0"),
     "failing read returns EIO naming server and request: %s", shunt_last_error(h));
  r = shunt_pwrite(h, buf, sizeof buf, 4096, 0);
  ok(r == -ENOSPC && strstr(shunt_last_error(h), "WRITE 4096 bytes at offset 4096"),
     "failing write returns ENOSPC: %s", shunt_last_error(h));
  struct count c = { 0 };
  for (int i = 0; i < 16; i++) {
    struct iovec v = { buf, 512 };
    shunt_aio_pread(h, &v, 1, (uint64_t)i * 512, 0, on_done, &c);
  }
  double end = now() + 10;
  while (c.done < 16 && now() < end && shunt_poll(h, 1000) >= 0)
    ;
  ok(c.done == 16 && c.errors == 16 && c.last_error == -EIO,
     "16 async reads all fail with EIO (%d/%d)", c.errors, c.done);
  ok(shunt_flush(h) == 0, "connection still usable after errors (flush ok)");
  uint64_t errs = shunt_get_stat(h, SHUNT_STAT_ERRORS);
  ok(errs == 18, "error counter: %llu", (unsigned long long)errs);
}

/* A socket connected to the unix socket path, or -1. */
static int unix_connect(const char *path)
{
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || strlen(path) >= sizeof a.sun_path)
    return -1;
  memcpy(a.sun_path, path, strlen(path) + 1);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Block status of every extra context: extents of it cover [0, len). */
static void check_contexts(struct shunt_handle *h, char **ctx, int nctx, uint64_t len)
{
  for (int i = 0; i < nctx; i++) {
    int can = shunt_can_meta_context(h, ctx[i]);
    ok(can == 1, "the server agreed to meta context %s (%d)", ctx[i], can);
    if (can != 1)
      continue;
    struct extents e = { .context = ctx[i], .contiguous = true };
    int r = shunt_block_status(h, 0, len, 0, on_extent, &e);
    ok(r == 0 && e.n >= 1 && e.contiguous && e.next >= len,
       "block status of %s: %d contiguous extents up to %llu (%d of other contexts)%s%s",
       ctx[i], e.n, (unsigned long long)e.next, e.others, r ? ": " : "",
       r ? shunt_last_error(h) : "");
  }
  ok(shunt_can_meta_context(h, "no:such-context") == 0, "an unrequested context is not agreed");
}

/* NBD_CMD_CACHE when offered, -ENOTSUP when not. */
static void check_cache(struct shunt_handle *h, bool expect)
{
  int can = shunt_get_flag(h, SHUNT_CAN_CACHE);
  if (expect)
    ok(can == 1, "the server offers CACHE");
  int r = shunt_cache(h, 0, 1 << 20);
  if (can == 1)
    ok(r == 0, "CACHE 1 MiB%s%s", r ? ": " : "", r ? shunt_last_error(h) : "");
  else
    ok(r == -ENOTSUP, "CACHE refused locally when not offered (%d)", r);
  struct count c = { 0 };
  int64_t k = shunt_aio_cache(h, 4096, 8192, on_done, &c);
  while (k > 0 && c.done == 0 && shunt_poll(h, 1000) >= 0)
    ;
  if (can == 1)
    ok(k > 0 && c.done == 1 && c.errors == 0, "asynchronous CACHE completes");
}

int main(int argc, char **argv)
{
  static const struct option lo[] = {
    { "connections", required_argument, NULL, 'c' }, { "errors", no_argument, NULL, 'e' },
    { "delay-ms", required_argument, NULL, 'd' }, { "expect-conns", required_argument, NULL, 'x' },
    { "socket", required_argument, NULL, 's' }, { "command", no_argument, NULL, 'C' },
    { "export", required_argument, NULL, 'n' }, { "context", required_argument, NULL, 'm' },
    { "expect-cache", no_argument, NULL, 'k' },
    { "absent-context", required_argument, NULL, 'a' },
    { NULL, 0, NULL, 0 },
  };
  bool errors = false, command = false, expect_cache = false;
  const char *sock = NULL, *export = NULL, *absent = NULL;
  char *ctx[8];
  int delay_ms = 0, expect_conns = 0, nctx = 0, ch, r;
  unsigned conns = 1;
  while ((ch = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
    switch (ch) {
    case 'c': conns = (unsigned)atoi(optarg); break;
    case 'e': errors = true; break;
    case 'd': delay_ms = atoi(optarg); break;
    case 'x': expect_conns = atoi(optarg); break;
    case 's': sock = optarg; break;
    case 'C': command = true; break;
    case 'n': export = optarg; break;
    case 'm': if (nctx < 8) ctx[nctx++] = optarg; break;
    case 'k': expect_cache = true; break;
    case 'a': absent = optarg; break;
    default: return 2;
    }
  }
  if (command ? optind >= argc : sock ? optind != argc : optind != argc - 1)
    return 2;
  const char *uri = command ? argv[optind] : sock ? sock : argv[optind];
  struct shunt_handle *h = shunt_create();
  if (!h)
    return 1;
  r = shunt_set_connections(h, conns);
  for (int i = 0; r == 0 && i < nctx; i++)
    r = shunt_add_meta_context(h, ctx[i]);
  if (r == 0 && export)
    r = shunt_set_export_name(h, export);
  if (r == 0 && absent)
    r = shunt_add_meta_context(h, absent);
  ok(r == 0, "configure the handle (%d connections, %d extra contexts)", conns, nctx);
  ok(shunt_get_size(h) == -ENOTCONN && shunt_get_uri(h) == NULL,
     "getters report -ENOTCONN before connecting");
  if (r == 0 && command) {
    r = shunt_connect_command(h, argv + optind);
  } else if (r == 0 && sock) {
    int fd = unix_connect(sock);
    r = fd < 0 ? -errno : shunt_connect_socket(h, fd);
  } else if (r == 0) {
    r = shunt_connect_uri(h, uri);
  }
  ok(r == 0, "connect %s%s%s", uri, r ? ": " : "", r ? shunt_last_error(h) : "");
  if (r) {
    shunt_close(h);
    printf("1..%d\n", n_tests);
    return 1;
  }
  ok(shunt_set_connections(h, 2) == -EISCONN, "setters refuse once connected");
  uint64_t size = (uint64_t)shunt_get_size(h);
  unsigned nconns = shunt_get_connections(h);
  printf("# size %llu flags 0x%x structured %d extended %d block_status %d conns %u "
         "blocks %lld/%lld/%lld export_name_fallback %d server %s\n", (unsigned long long)size,
         shunt_get_transmission_flags(h), shunt_get_flag(h, SHUNT_HAS_STRUCTURED_REPLIES),
         shunt_get_flag(h, SHUNT_HAS_EXTENDED_HEADERS), shunt_get_flag(h, SHUNT_HAS_META_CONTEXT),
         nconns, (long long)shunt_get_block_size(h, SHUNT_BLOCK_MIN),
         (long long)shunt_get_block_size(h, SHUNT_BLOCK_PREFERRED),
         (long long)shunt_get_block_size(h, SHUNT_BLOCK_MAX),
         shunt_get_flag(h, SHUNT_USED_EXPORT_NAME), shunt_get_uri(h));
  ok(size >= 8 << 20, "export is at least 8 MiB");
  if (expect_conns)
    ok((int)nconns == expect_conns, "%u connections open (expected %d)", nconns, expect_conns);
  if (errors) {
    check_errors(h, uri);
    shunt_close(h);
    printf("1..%d\n", n_tests);
    return n_failed != 0;
  }

  /* Write 2 MiB of pattern, read it back whole. */
  size_t big = 2 << 20;
  unsigned char *w = malloc(big), *rbuf = malloc(big);
  for (size_t i = 0; i < big; i++)
    w[i] = pat(i);
  r = shunt_pwrite(h, w, big, 0, 0);
  ok(r == 0, "write 2 MiB%s%s", r ? ": " : "", r ? shunt_last_error(h) : "");
  memset(rbuf, 0, big);
  r = shunt_pread(h, rbuf, big, 0, 0);
  ok(r == 0 && !memcmp(w, rbuf, big), "read back 2 MiB");

  /* Scattered read: 333 small iovecs in reverse memory order, of odd sizes at an
   * odd offset; a server with a minimum block size gets 384 of 96 bytes at an
   * offset and of a length it accepts (multiples of 4096). */
  bool aligned = shunt_get_block_size(h, SHUNT_BLOCK_MIN) > 1;
  int niov = aligned ? 384 : 333;
  size_t step = aligned ? 96 : 97, len = (size_t)niov * step;
  uint64_t from = aligned ? 12288 : 12345;
  struct iovec iov[384];
  memset(rbuf, 0xee, len);
  for (int i = 0; i < niov; i++) {
    iov[i].iov_base = rbuf + (size_t)(niov - 1 - i) * step;
    iov[i].iov_len = step;
  }
  r = shunt_preadv(h, iov, niov, from, 0);
  bool same = r == 0;
  for (int i = 0; same && i < niov; i++)
    same = !memcmp(iov[i].iov_base, w + from + (size_t)i * step, step);
  ok(same && shunt_payload_bytes_copied(h) == 0,
     "read into %d scattered iovecs is correct; payload bytes copied: %llu", niov,
     (unsigned long long)shunt_payload_bytes_copied(h));

  /* 128 reads in flight at once. */
  static unsigned char bufs[128][4096];
  struct count c = { 0 };
  double t0 = now();
  int sub = 0;
  for (int i = 0; i < 128; i++) {
    struct iovec v = { bufs[i], 4096 };
    sub += shunt_aio_pread(h, &v, 1, (uint64_t)((i * 37) % 500) * 4096, 0, on_done, &c) > 0;
  }
  unsigned peak = shunt_in_flight(h);
  while (c.done < sub && now() < t0 + 20 && shunt_poll(h, 1000) >= 0)
    ;
  double dt = now() - t0;
  same = c.done == 128 && c.errors == 0;
  if (!same)
    printf("# done %d, errors %d: %s\n", c.done, c.errors, c.msg);
  for (int i = 0; same && i < 128; i++) {
    same = !memcmp(bufs[i], w + (size_t)((i * 37) % 500) * 4096, 4096);
    if (!same) {
      int k = 0;
      while (bufs[i][k] == w[(size_t)((i * 37) % 500) * 4096 + k])
        k++;
      printf("# read %d (offset %d) differs from byte %d\n", i, ((i * 37) % 500) * 4096, k);
    }
  }
  ok(same && peak == 128, "128 concurrent reads correct (peak in flight %u, %.3f s)", peak, dt);
  if (delay_ms) {
    /* 128 reads of delay_ms each, one at a time, would take 128 * delay_ms. */
    ok(dt < 128.0 * delay_ms / 1000 / 4, "delayed reads overlap: %.3f s for 128 x %d ms", dt,
       delay_ms);
  }

  /* Sparse read: beyond what we wrote, a fresh export reads as zeroes. */
  memset(rbuf, 0xee, 65536);
  r = shunt_pread(h, rbuf, 65536, 6 << 20, 0);
  bool zero = r == 0;
  for (size_t i = 0; zero && i < 65536; i++)
    zero = rbuf[i] == 0;
  ok(zero, "sparse region reads as zeroes (%llu bytes came as holes, %llu chunks so far)",
     (unsigned long long)shunt_get_stat(h, SHUNT_STAT_HOLE_BYTES),
     (unsigned long long)shunt_get_stat(h, SHUNT_STAT_CHUNKS));

  /* A read across the end of the written data into never-written space: servers
   * that split sparse reads send a data chunk and a hole chunk for it. */
  {
    uint64_t chunks0 = shunt_get_stat(h, SHUNT_STAT_CHUNKS);
    uint64_t holes0 = shunt_get_stat(h, SHUNT_STAT_HOLE_BYTES);
    size_t span = 1 << 20, n = 250, piece = span / n;
    struct iovec *v = calloc(n + 1, sizeof *v);
    memset(rbuf, 0xee, span);
    for (size_t i = 0; i < n; i++) {
      v[i].iov_base = rbuf + span - (i + 1) * piece;
      v[i].iov_len = piece;
    }
    v[n].iov_base = rbuf + span - n * piece - (span - n * piece);
    v[n].iov_len = span - n * piece;
    r = shunt_preadv(h, v, (int)(n + 1), big - span / 2, 0);
    bool good = r == 0;
    for (size_t i = 0; good && i <= n; i++) {
      uint64_t at = (uint64_t)i * piece; /* offset within the read */
      for (size_t k = 0; good && k < v[i].iov_len; k++) {
        uint64_t pos = big - span / 2 + at + k;
        unsigned char want = pos < big ? w[pos] : 0;
        good = ((unsigned char *)v[i].iov_base)[k] == want;
      }
    }
    ok(good && shunt_payload_bytes_copied(h) == 0,
       "read across data and hole into %zu scattered iovecs: %llu chunks, %llu hole bytes, "
       "0 bytes copied", n + 1,
       (unsigned long long)(shunt_get_stat(h, SHUNT_STAT_CHUNKS) - chunks0),
       (unsigned long long)(shunt_get_stat(h, SHUNT_STAT_HOLE_BYTES) - holes0));
    free(v);
  }

  if (shunt_get_flag(h, SHUNT_CAN_ZERO) == 1) {
    r = shunt_zero(h, 131072, 65536, 0);
    memset(rbuf, 0xee, 65536 * 3);
    int r2 = shunt_pread(h, rbuf, 65536 * 3, 65536, 0);
    zero = r == 0 && r2 == 0 && !memcmp(rbuf, w + 65536, 65536) &&
           !memcmp(rbuf + 131072, w + 196608, 65536);
    for (size_t i = 65536; zero && i < 131072; i++)
      zero = rbuf[i] == 0;
    ok(zero, "WRITE_ZEROES zeroes exactly its range%s%s", r ? ": " : "",
       r ? shunt_last_error(h) : "");
  } else {
    skip("server does not offer WRITE_ZEROES", "WRITE_ZEROES");
  }
  if (shunt_get_flag(h, SHUNT_CAN_TRIM) == 1) {
    r = shunt_trim(h, 1 << 20, 65536, 0);
    ok(r == 0, "TRIM succeeds%s%s", r ? ": " : "", r ? shunt_last_error(h) : "");
    r = shunt_pread(h, rbuf, 4096, (1 << 20) + 65536, 0);
    ok(r == 0 && !memcmp(rbuf, w + (1 << 20) + 65536, 4096), "data after the trimmed range intact");
  } else {
    skip("server does not offer TRIM", "TRIM");
  }
  if (shunt_get_flag(h, SHUNT_CAN_FUA) == 1)
    ok(shunt_pwrite(h, w, 4096, 0, SHUNT_CMD_FUA) == 0, "FUA write");
  if (shunt_get_flag(h, SHUNT_CAN_FLUSH) == 1)
    ok(shunt_flush(h) == 0, "FLUSH");
  else
    skip("server does not offer FLUSH", "FLUSH");

  if (shunt_can_meta_context(h, "base:allocation") == 1) {
    struct extents e = { .context = "base:allocation", .contiguous = true };
    r = shunt_block_status(h, 0, 8 << 20, 0, on_extent, &e);
    ok(r == 0 && e.contiguous && e.n >= 1, "block status: %d contiguous extents up to %llu",
       e.n, (unsigned long long)e.next);
    ok(e.data >= (1 << 20), "written area reported as data (%llu data, %llu zero bytes)",
       (unsigned long long)e.data, (unsigned long long)e.zero);
  } else {
    skip("server did not negotiate base:allocation", "block status");
  }
  check_contexts(h, ctx, nctx, 8 << 20);
  if (absent) {
    struct extents e = { .context = "base:allocation", .contiguous = true };
    int can = shunt_can_meta_context(h, absent);
    r = shunt_block_status(h, 0, 1 << 20, 0, on_extent, &e);
    ok(can == 0 && r == 0 && e.n >= 1 && e.others == 0,
       "%s, unknown to the server, is not agreed (%d); block status reports only "
       "base:allocation (%d extents, %d of other contexts)", absent, can, e.n, e.others);
  }
  check_cache(h, expect_cache);

  /* Errors that never reach the server. */
  r = shunt_pread(h, rbuf, 4096, size - 100, 0);
  ok(r == -EINVAL && strstr(shunt_last_error(h), "beyond the end"), "read past the end: %s",
     shunt_last_error(h));
  ok(shunt_payload_bytes_copied(h) == 0 && shunt_get_stat(h, SHUNT_STAT_ERRORS) == 0,
     "no request failed; bytes copied %llu", (unsigned long long)shunt_payload_bytes_copied(h));
  shunt_close(h);
  free(w);
  free(rbuf);
  printf("1..%d\n", n_tests);
  return n_failed != 0;
}
