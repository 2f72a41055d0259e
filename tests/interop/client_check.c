/* client_check.c: drives libshunt against a real NBD server and prints TAP
 * lines; the tests/interop/client_*.sh scripts start nbdkit, qemu-nbd or
 * nbd-server and run it.  Usage:
 *   client_check [--connections N] [--errors] [--delay-ms N] [--expect-conns N] URI
 * --errors: the server fails every read with EIO and every write with ENOSPC.
 * --delay-ms: the server delays each read by N ms (checks requests overlap). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
  int n;
  uint64_t next, data, zero;
  bool contiguous;
};

static void on_extent(void *user, uint64_t off, uint64_t len, uint32_t flags)
{
  struct extents *e = user;
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
  struct shunt_stats st;
  shunt_get_stats(h, &st);
  ok(st.errors == 18, "error counter: %llu", (unsigned long long)st.errors);
}

int main(int argc, char **argv)
{
  static const struct option lo[] = {
    { "connections", required_argument, NULL, 'c' }, { "errors", no_argument, NULL, 'e' },
    { "delay-ms", required_argument, NULL, 'd' }, { "expect-conns", required_argument, NULL, 'x' },
    { NULL, 0, NULL, 0 },
  };
  struct shunt_options o = { 0 };
  bool errors = false;
  int delay_ms = 0, expect_conns = 0, ch;
  while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (ch) {
    case 'c': o.connections = (unsigned)atoi(optarg); break;
    case 'e': errors = true; break;
    case 'd': delay_ms = atoi(optarg); break;
    case 'x': expect_conns = atoi(optarg); break;
    default: return 2;
    }
  }
  if (optind != argc - 1)
    return 2;
  const char *uri = argv[optind];
  struct shunt_handle *h;
  char err[512];
  int r = shunt_connect(&h, uri, &o, err, sizeof err);
  ok(r == 0, "connect %s%s%s", uri, r ? ": " : "", r ? err : "");
  if (r) {
    printf("1..%d\n", n_tests);
    return 1;
  }
  const struct shunt_info *in = shunt_get_info(h);
  printf("# size %llu flags 0x%x structured %d extended %d block_status %d conns %u "
         "blocks %u/%u/%u export_name_fallback %d\n", (unsigned long long)in->size, in->eflags,
         in->structured, in->extended, in->block_status, in->connections, in->min_block,
         in->pref_block, in->max_block, in->used_export_name);
  ok(in->size >= 8 << 20, "export is at least 8 MiB");
  if (expect_conns)
    ok((int)in->connections == expect_conns, "%u connections open (expected %d)",
       in->connections, expect_conns);
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

  /* Scattered read: 333 small iovecs in reverse memory order. */
  size_t len = 333 * 97;
  struct iovec iov[333];
  memset(rbuf, 0xee, len);
  for (int i = 0; i < 333; i++) {
    iov[i].iov_base = rbuf + (size_t)(332 - i) * 97;
    iov[i].iov_len = 97;
  }
  r = shunt_preadv(h, iov, 333, 12345, 0);
  bool same = r == 0;
  for (int i = 0; same && i < 333; i++)
    same = !memcmp(iov[i].iov_base, w + 12345 + (size_t)i * 97, 97);
  ok(same && shunt_payload_bytes_copied(h) == 0,
     "read into 333 scattered iovecs is correct; payload bytes copied: %llu",
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
  struct shunt_stats st;
  shunt_get_stats(h, &st);
  ok(zero, "sparse region reads as zeroes (%llu bytes came as holes, %llu chunks so far)",
     (unsigned long long)st.hole_bytes, (unsigned long long)st.chunks);

  /* A read across the end of the written data into never-written space: servers
   * that split sparse reads send a data chunk and a hole chunk for it. */
  {
    struct shunt_stats before;
    shunt_get_stats(h, &before);
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
    shunt_get_stats(h, &st);
    ok(good && st.payload_bytes_copied == 0,
       "read across data and hole into %zu scattered iovecs: %llu chunks, %llu hole bytes, "
       "0 bytes copied", n + 1, (unsigned long long)(st.chunks - before.chunks),
       (unsigned long long)(st.hole_bytes - before.hole_bytes));
    free(v);
  }

  if (in->can_zero) {
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
  if (in->can_trim) {
    r = shunt_trim(h, 1 << 20, 65536, 0);
    ok(r == 0, "TRIM succeeds%s%s", r ? ": " : "", r ? shunt_last_error(h) : "");
    r = shunt_pread(h, rbuf, 4096, (1 << 20) + 65536, 0);
    ok(r == 0 && !memcmp(rbuf, w + (1 << 20) + 65536, 4096), "data after the trimmed range intact");
  } else {
    skip("server does not offer TRIM", "TRIM");
  }
  if (in->can_fua)
    ok(shunt_pwrite(h, w, 4096, 0, SHUNT_CMD_FUA) == 0, "FUA write");
  if (in->can_flush)
    ok(shunt_flush(h) == 0, "FLUSH");
  else
    skip("server does not offer FLUSH", "FLUSH");

  if (in->block_status) {
    struct extents e = { .contiguous = true };
    r = shunt_block_status(h, 0, 8 << 20, 0, on_extent, &e);
    ok(r == 0 && e.contiguous && e.n >= 1, "block status: %d contiguous extents up to %llu",
       e.n, (unsigned long long)e.next);
    ok(e.data >= (1 << 20), "written area reported as data (%llu data, %llu zero bytes)",
       (unsigned long long)e.data, (unsigned long long)e.zero);
  } else {
    skip("server did not negotiate base:allocation", "block status");
  }

  /* Errors that never reach the server. */
  r = shunt_pread(h, rbuf, 4096, in->size - 100, 0);
  ok(r == -EINVAL && strstr(shunt_last_error(h), "beyond the end"), "read past the end: %s",
     shunt_last_error(h));
  shunt_get_stats(h, &st);
  ok(st.payload_bytes_copied == 0 && st.errors == 0, "no request failed; bytes copied %llu",
     (unsigned long long)st.payload_bytes_copied);
  shunt_close(h);
  free(w);
  free(rbuf);
  printf("1..%d\n", n_tests);
  return n_failed != 0;
}
