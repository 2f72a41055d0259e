/* test_backend.c: both backends through a real io_uring engine: writes read
 * back, trim and zero leave zeroes and holes (extents, also as a BIO_EXTENTS
 * bio), FUA and flush work,
 * fast zero answers at once, a file that shrinks under the backend gives EIO
 * past its new end, a BIO_NOWAIT read is served from the page cache or says
 * -EAGAIN (how much it read) without waiting, the memory backend's walks cost what is allocated (a
 * 16 TiB export) and its cap gives ENOSPC, and the send queue delivers
 * everything in order across short sends. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "common/sysmem.h"
#include "engine/engine.h"
#include "engine/sendq.h"
#include "datapath/datapath.h"
#include "proto/nbd-protocol.h"
#include "tap.h"

static struct engine eng;
static int done_count, last_res;

static void on_complete(struct bio *io, int res)
{
  (void)io;
  done_count++;
  last_res = res;
}

static bool one_done(void *arg)
{
  (void)arg;
  return done_count > 0;
}

/* Submit one bio and run the loop until it completes; returns its result. */
static int run_bio(struct backend *b, enum bio_type type, unsigned flags, void *buf, uint64_t off, uint64_t len)
{
  struct bio io = { .type = type, .flags = flags, .buf = buf, .offset = off, .length = len,
                    .complete = on_complete };
  done_count = 0;
  backend_submit(b, &eng, &io);
  if (done_count)
    return -999;   /* completed inside submit: forbidden */
  engine_run(&eng, one_done, NULL);
  return last_res;
}

static enum bio_type round_trip_type(int i) { return i ? BIO_ZERO : BIO_TRIM; }

static void exercise(struct backend *b, const char *what)
{
  uint8_t *w = malloc(1 << 20), *r = malloc(1 << 20), *z = calloc(1, 1 << 20);
  struct backend_extent ext[16];
  size_t n = 0;

  memset(w, 0x5a, 1 << 20);
  ok(run_bio(b, BIO_WRITE, 0, w, 1 << 20, 1 << 20) == 0, "%s: 1 MiB write", what);
  ok(run_bio(b, BIO_READ, 0, r, 1 << 20, 1 << 20) == 0 && !memcmp(r, w, 1 << 20), "%s: reads back", what);
  ok(run_bio(b, BIO_WRITE, BIO_FUA, w, 100, 1000) == 0, "%s: unaligned FUA write", what);
  ok(run_bio(b, BIO_READ, 0, r, 0, 4096) == 0 && r[99] == 0 && r[100] == 0x5a && r[1099] == 0x5a && r[1100] == 0,
     "%s: unaligned write lands exactly", what);
  ok(run_bio(b, BIO_FLUSH, 0, NULL, 0, 0) == 0, "%s: flush", what);
  ok(b->ops->extents(b, 0, 4 << 20, ext, 16, &n) == 0 && n >= 2 && !(ext[0].flags & BACKEND_EXTENT_HOLE),
     "%s: extents start with data (n=%zu)", what, n);
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++) sum += ext[i].length;
  ok(sum == 4 << 20 && (ext[n - 1].flags == (BACKEND_EXTENT_HOLE | BACKEND_EXTENT_ZERO)), "%s: extents cover the range, end in a hole", what);
  ok(run_bio(b, BIO_TRIM, 0, NULL, 1 << 20, 512 << 10) == 0, "%s: trim", what);
  ok(run_bio(b, BIO_ZERO, 0, NULL, 1 << 20, 1 << 20) == 0, "%s: zero", what);
  ok(run_bio(b, BIO_READ, 0, r, 1 << 20, 1 << 20) == 0 && !memcmp(r, z, 1 << 20), "%s: zeroed range reads zeroes", what);
  ok(b->ops->extents(b, 1 << 20, 1 << 20, ext, 16, &n) == 0 && n == 1 && ext[0].flags == (BACKEND_EXTENT_HOLE | BACKEND_EXTENT_ZERO),
     "%s: zeroed range is a hole", what);
  ok(run_bio(b, BIO_ZERO, BIO_NO_HOLE | BIO_FUA, NULL, 1 << 20, 64 << 10) == 0, "%s: zero with NO_HOLE, FUA", what);
  ok(run_bio(b, BIO_READ, 0, r, 1 << 20, 64 << 10) == 0 && !memcmp(r, z, 64 << 10), "%s: still zeroes", what);
  if (strcmp(what, "memory"))
    ok(b->ops->extents(b, 1 << 20, 64 << 10, ext, 16, &n) == 0 && !(ext[0].flags & BACKEND_EXTENT_HOLE),
       "%s: NO_HOLE range is allocated", what);
  else   /* an absent page reads as zeroes and reserves nothing either */
    ok(b->ops->extents(b, 1 << 20, 64 << 10, ext, 16, &n) == 0 && n == 1
       && ext[0].flags == (BACKEND_EXTENT_HOLE | BACKEND_EXTENT_ZERO), "%s: NO_HOLE zeroes allocate no pages", what);
  int fz = run_bio(b, BIO_ZERO, BIO_FAST_ZERO, NULL, 2 << 20, 1 << 20);
  ok(fz == 0 || fz == -ENOTSUP, "%s: fast zero succeeds or says ENOTSUP (%d)", what, fz);
  ok(run_bio(b, BIO_CACHE, 0, NULL, 0, 1 << 20) == 0, "%s: cache", what);
  /* Extents asked for twice (the second answer may come from a cache) must
   * still see a hole that TRIM or WRITE_ZEROES punched in between. */
  ok(run_bio(b, BIO_WRITE, 0, w, 4 << 20, 1 << 20) == 0, "%s: write at 4 MiB", what);
  for (int round = 0; round < 2; round++) {
    ok(b->ops->extents(b, 4 << 20, 1 << 20, ext, 16, &n) == 0 && n == 1 && ext[0].flags == 0
       && ext[0].length == 1 << 20, "%s: written range is one data extent (%d)", what, round);
    ok(b->ops->extents(b, (4 << 20) + 4096, 8192, ext, 16, &n) == 0 && n == 1 && ext[0].flags == 0
       && ext[0].length == 8192, "%s: a piece inside it is data, clipped to the query (%d)", what, round);
  }
  ok(run_bio(b, round_trip_type(0), 0, NULL, (4 << 20) + (256 << 10), 256 << 10) == 0, "%s: trim inside it", what);
  ok(b->ops->extents(b, 4 << 20, 1 << 20, ext, 16, &n) == 0 && n == 3 && ext[0].flags == 0
     && ext[0].length == 256 << 10 && ext[1].flags == (BACKEND_EXTENT_HOLE | BACKEND_EXTENT_ZERO) && ext[2].flags == 0,
     "%s: after the trim: data, hole, data (n=%zu)", what, n);
  ok(b->ops->extents(b, 4 << 20, 64 << 10, ext, 16, &n) == 0 && n == 1 && ext[0].flags == 0,
     "%s: the data before the hole is still data", what);
  /* BIO_EXTENTS: the same map, answered on a later loop turn. */
  struct backend_extent bext[16];
  struct bio bio = { .type = BIO_EXTENTS, .buf = bext, .count = 16, .offset = 4 << 20, .length = 1 << 20,
                     .complete = on_complete };
  b->ops->extents(b, 4 << 20, 1 << 20, ext, 16, &n);
  done_count = 0;
  backend_submit(b, &eng, &bio);
  ok(done_count == 0, "%s: BIO_EXTENTS does not complete inside submit", what);
  engine_run(&eng, one_done, NULL);
  bool same = last_res == 0 && bio.count == n;
  for (size_t i = 0; same && i < n; i++)
    same = bext[i].length == ext[i].length && bext[i].flags == ext[i].flags;
  ok(same && n == 3,
     "%s: BIO_EXTENTS gives extents()'s map (n=%zu)", what, bio.count);
  bio.count = 1;
  done_count = 0;
  backend_submit(b, &eng, &bio);
  engine_run(&eng, one_done, NULL);
  ok(last_res == 0 && bio.count == 1 && bext[0].length == 256 << 10, "%s: BIO_EXTENTS with room for one", what);
  ok(run_bio(b, round_trip_type(1), 0, NULL, 4 << 20, 128 << 10) == 0, "%s: zero the start", what);
  ok(b->ops->extents(b, 4 << 20, 64 << 10, ext, 16, &n) == 0 && n == 1
     && ext[0].flags == (BACKEND_EXTENT_HOLE | BACKEND_EXTENT_ZERO), "%s: zeroed start is a hole now", what);
  free(w); free(r); free(z);
}

/* ---- memory backend: cost, cap ---- */
#define TiB (UINT64_C(1) << 40)

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct backend_memory_stats mstats(struct backend *b)
{
  struct backend_memory_stats st = { 0 };
  backend_memory_stats(b, &st);
  return st;
}

/* A 16 TiB export with three pages: whole-export extents and TRIM visit a
 * few page-table nodes, not 2^32 pages (which took 13-26 s). */
static void memory_huge(void)
{
  struct backend_options o = { .allow_overcommit = true };
  struct backend_extent ext[16];
  struct backend *b;
  char err[256];
  size_t n = 0;
  uint8_t page[4096];
  uint64_t steps;
  double t;

  memset(page, 0x77, sizeof page);
  ok(backend_open_opts("memory", "16T", false, &o, &b, err, sizeof err) == 0 && b->size == 16 * TiB,
     "memory: 16T export opens with allow-overcommit (%s)", b ? "" : err);
  ok(run_bio(b, BIO_WRITE, 0, page, 0, 4096) == 0 && run_bio(b, BIO_WRITE, 0, page, TiB, 4096) == 0
     && run_bio(b, BIO_WRITE, 0, page, 16 * TiB - 4096, 4096) == 0, "memory 16T: three pages written");
  ok(mstats(b).bytes == 3 * 4096, "memory 16T: three pages allocated (%llu bytes)",
     (unsigned long long)mstats(b).bytes);
  steps = mstats(b).walk_steps;
  t = now_s();
  int r = b->ops->extents(b, 0, 16 * TiB, ext, 16, &n);
  t = now_s() - t;
  ok(r == 0 && n == 5 && ext[0].flags == 0 && ext[0].length == 4096
     && ext[1].flags == (BACKEND_EXTENT_HOLE | BACKEND_EXTENT_ZERO) && ext[1].length == TiB - 4096
     && ext[2].flags == 0 && ext[2].length == 4096 && ext[3].length == 15 * TiB - 8192
     && ext[4].flags == 0 && ext[4].length == 4096, "memory 16T: whole-export extents: data, hole, data, hole, data (n=%zu)", n);
  steps = mstats(b).walk_steps - steps;
  ok(steps < 200, "memory 16T: ... visiting %llu page-table nodes (a few per allocated page)", (unsigned long long)steps);
  ok(t < 2.0, "memory 16T: ... in %.3f s (milliseconds, not the seconds of a walk over every page)", t);
  steps = mstats(b).walk_steps;
  t = now_s();
  r = run_bio(b, BIO_TRIM, 0, NULL, 0, 16 * TiB);
  t = now_s() - t;
  steps = mstats(b).walk_steps - steps;
  ok(r == 0 && mstats(b).bytes == 0, "memory 16T: whole-export TRIM frees every page");
  ok(steps < 200 && t < 2.0, "memory 16T: ... visiting %llu nodes, in %.3f s", (unsigned long long)steps, t);
  ok(mstats(b).table_bytes < 16 << 10, "memory 16T: the emptied page table shrank back (%llu bytes)",
     (unsigned long long)mstats(b).table_bytes);
  ok(b->ops->extents(b, 0, 16 * TiB, ext, 16, &n) == 0 && n == 1 && ext[0].length == 16 * TiB
     && ext[0].flags == (BACKEND_EXTENT_HOLE | BACKEND_EXTENT_ZERO), "memory 16T: one hole after it");
  ok(run_bio(b, BIO_ZERO, BIO_NO_HOLE, NULL, 0, 16 * TiB) == 0 && mstats(b).bytes == 0,
     "memory 16T: whole-export WRITE_ZEROES with NO_HOLE allocates nothing");
  ok(mstats(b).max_bytes == sys_memory_limit() / 2 / 4096 * 4096,
     "memory 16T: default cap: half of the memory the process may use");
  backend_close(b);

  ok(backend_open_opts("memory", "16T", false, NULL, &b, err, sizeof err) == -EINVAL
     && strstr(err, "allow-overcommit"), "memory: 16T without allow-overcommit refused, naming the option");
  o = (struct backend_options){ .max_memory = UINT64_C(1) << 50 };
  ok(backend_open_opts("memory", "64M", false, &o, &b, err, sizeof err) == -EINVAL,
     "memory: max-memory beyond the machine's memory refused without allow-overcommit");
  ok(backend_open_opts("memory", "16T", true, NULL, &b, err, sizeof err) == 0, "memory: a read-only 16T export allocates nothing: opens");
  backend_close(b);
  o = (struct backend_options){ .max_memory = 1 << 20 };
  ok(backend_open_opts("file", "/dev/null", false, &o, &b, err, sizeof err) == -EINVAL,
     "file backend: memory options refused");
}

/* The cap: a write that needs a page beyond it fails with ENOSPC; the
 * export goes on (reads, writes to allocated pages, and new pages once
 * TRIM freed some). */
static void memory_cap(void)
{
  struct backend_options o = { .max_memory = 1 << 20 };
  struct backend *b;
  char err[256];
  uint8_t *w = malloc(2 << 20), *r = malloc(2 << 20);

  memset(w, 0x42, 2 << 20);
  ok(backend_open_opts("memory", "64M", false, &o, &b, err, sizeof err) == 0 && mstats(b).max_bytes == 1 << 20,
     "memory cap: 64M export, max-memory 1M");
  ok(run_bio(b, BIO_WRITE, 0, w, 0, 1 << 20) == 0, "memory cap: 1 MiB fits");
  ok(run_bio(b, BIO_WRITE, 0, w, 8 << 20, 4096) == -ENOSPC, "memory cap: one page more: ENOSPC");
  ok(run_bio(b, BIO_WRITE, 0, w, 16 << 20, 2 << 20) == -ENOSPC && mstats(b).bytes == 1 << 20,
     "memory cap: a 2 MiB write: ENOSPC, allocation stays at the cap");
  ok(run_bio(b, BIO_WRITE, 0, w, 4096, 8192) == 0, "memory cap: rewriting allocated pages works");
  ok(run_bio(b, BIO_ZERO, BIO_NO_HOLE, NULL, 32 << 20, 1 << 20) == 0, "memory cap: NO_HOLE zeroes need no pages: work at the cap");
  ok(run_bio(b, BIO_READ, 0, r, 0, 1 << 20) == 0 && !memcmp(r, w, 1 << 20), "memory cap: reads work");
  ok(run_bio(b, BIO_TRIM, 0, NULL, 0, 512 << 10) == 0 && mstats(b).bytes == 512 << 10, "memory cap: TRIM frees half");
  ok(run_bio(b, BIO_WRITE, 0, w, 8 << 20, 512 << 10) == 0, "memory cap: then new pages fit again");
  ok(run_bio(b, BIO_WRITE, 0, w, 9 << 20, 4096) == -ENOSPC, "memory cap: ... up to the cap");
  backend_close(b);
  free(w); free(r);
}

/* Random writes and trims on a 2 GiB export (a three-level page table)
 * against a plain array of "page present": every extents answer and the
 * allocation count agree with the model. */
static void memory_model(void)
{
  enum { NPAGES = 512 << 10 };
  static uint8_t present[NPAGES];
  struct backend_extent ext[64];
  struct backend *b;
  char err[256];
  uint8_t page[4096] = { 1 };
  unsigned seed = 12345, bad = 0, calls = 0;
  size_t n;

  ok(backend_open("memory", "2G", false, &b, err, sizeof err) == 0, "memory model: 2G export");
  for (int round = 0; round < 400 && !bad; round++) {
    uint64_t pg = (uint64_t)rand_r(&seed) % NPAGES, cnt = 1 + (uint64_t)rand_r(&seed) % 3000;
    if (pg + cnt > NPAGES) cnt = NPAGES - pg;
    if (rand_r(&seed) % 3) {   /* write a few pages around pg */
      for (uint64_t i = 0; i < cnt && i < 40; i += 1 + rand_r(&seed) % 3) {
        bad += run_bio(b, BIO_WRITE, 0, page, (pg + i) * 4096, 4096) != 0;
        present[pg + i] = 1;
      }
    } else {                   /* trim [pg, pg + cnt) */
      bad += run_bio(b, BIO_TRIM, 0, NULL, pg * 4096, cnt * 4096) != 0;
      memset(present + pg, 0, cnt);
    }
    uint64_t off = (uint64_t)rand_r(&seed) % ((uint64_t)NPAGES * 4096), len = 1 + (uint64_t)rand_r(&seed) % (64 << 20);
    if (off + len > (uint64_t)NPAGES * 4096) len = (uint64_t)NPAGES * 4096 - off;
    if (b->ops->extents(b, off, len, ext, 64, &n) < 0 || n == 0) { bad++; break; }
    calls++;
    uint64_t pos = off;
    for (size_t i = 0; i < n && !bad; i++) {
      if (ext[i].length == 0 || (i && ext[i].flags == ext[i - 1].flags)) bad++;
      for (uint64_t q = pos; q < pos + ext[i].length && !bad; q = (q / 4096 + 1) * 4096)
        if (present[q / 4096] != !(ext[i].flags & BACKEND_EXTENT_HOLE)) bad++;
      pos += ext[i].length;
    }
    if (pos > off + len || (n < 64 && pos != off + len)) bad++;
  }
  uint64_t want = 0;
  for (unsigned i = 0; i < NPAGES; i++) want += present[i];
  ok(!bad && calls == 400, "memory model: 400 rounds of writes/trims, extents agree with the model (%u bad)", bad);
  ok(mstats(b).bytes == want * 4096, "memory model: allocation agrees (%llu pages)", (unsigned long long)want);
  backend_close(b);
}

/* The file shrinks under the backend (someone truncates the image): what is
 * past the new end is gone, not zeroes: reads fail with EIO, extents stop at
 * the new end. */
static void file_shrunk(const char *path)
{
  struct backend_extent ext[16];
  struct backend *b;
  char err[256];
  uint8_t *buf = malloc(1 << 20);
  size_t n = 0;

  memset(buf, 0x33, 1 << 20);
  ok(backend_open("file", path, false, &b, err, sizeof err) == 0 && b->size == 8 << 20, "shrunk: 8 MiB file opens");
  ok(run_bio(b, BIO_WRITE, 0, buf, 0, 1 << 20) == 0 && run_bio(b, BIO_WRITE, 0, buf, 6 << 20, 1 << 20) == 0,
     "shrunk: data at 0 and at 6 MiB");
  ok(truncate(path, 3 << 20) == 0, "shrunk: the file is truncated to 3 MiB under the backend");
  ok(run_bio(b, BIO_READ, 0, buf, 6 << 20, 64 << 10) == -EIO, "shrunk: a read past the new end: EIO");
  ok(run_bio(b, BIO_READ, 0, buf, (3 << 20) - 4096, 8192) == -EIO, "shrunk: a read across the new end: EIO");
  ok(run_bio(b, BIO_READ, 0, buf, 0, 4096) == 0 && buf[0] == 0x33, "shrunk: below the new end reads");
  uint64_t sum = 0;
  int r = b->ops->extents(b, 0, 8 << 20, ext, 16, &n);
  for (size_t i = 0; i < n; i++) sum += ext[i].length;
  ok(r == 0 && sum == 3 << 20 && ext[0].flags == 0 && ext[n - 1].flags == (BACKEND_EXTENT_HOLE | BACKEND_EXTENT_ZERO),
     "shrunk: extents describe up to the new end only (%llu bytes in %zu)", (unsigned long long)sum, n);
  ok(b->ops->extents(b, 5 << 20, 1 << 20, ext, 16, &n) == -EIO, "shrunk: extents past the new end: EIO");
  backend_close(b);
  free(buf);
}

/* BIO_NOWAIT: a read of cached pages completes; one of pages not cached
 * says -EAGAIN at once, after reading the cached ones before them
 * (io.progress); without the flag the same read waits for the disk. */
static void file_nowait(const char *path)
{
  struct backend *b;
  char err[256];
  uint8_t *w = malloc(64 << 10), *r = malloc(64 << 10);
  int fd = open(path, O_RDONLY);

  for (int i = 0; i < 64 << 10; i++)
    w[i] = (uint8_t)(i * 7 + 1);
  ok(fd >= 0 && backend_open("file", path, false, &b, err, sizeof err) == 0, "nowait: file opens");
  ok(run_bio(b, BIO_WRITE, 0, w, 0, 64 << 10) == 0 && run_bio(b, BIO_FLUSH, 0, NULL, 0, 0) == 0,
     "nowait: 64 KiB written and flushed");
  /* Our own descriptor reads without readahead: only what it reads is cached. */
  posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
  ok(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0 && pread(fd, r, 8192, 0) == 8192,
     "nowait: the file dropped from the page cache, its first 8 KiB read back into it");
  struct bio io = { .type = BIO_READ, .flags = BIO_NOWAIT, .buf = r, .offset = 0, .length = 16384,
                    .complete = on_complete };
  done_count = 0;
  memset(r, 0, 64 << 10);
  backend_submit(b, &eng, &io);
  engine_run(&eng, one_done, NULL);
  if (last_res == -EOPNOTSUPP) {
    printf("ok %d - nowait # SKIP the file system of %s refuses RWF_NOWAIT reads\n", ++tap_n, path);
  } else {
    ok(last_res == -EAGAIN && io.progress == 8192 && !memcmp(r, w, 8192),
       "nowait: 16 KiB, half cached: -EAGAIN after the 8192 cached bytes (%d, %llu)", last_res,
       (unsigned long long)io.progress);
    ok(run_bio(b, BIO_READ, 0, r, 0, 16384) == 0 && !memcmp(r, w, 16384), "nowait: without the flag it reads");
    memset(r, 0, 16384);
    ok(run_bio(b, BIO_READ, BIO_NOWAIT, r, 0, 16384) == 0 && !memcmp(r, w, 16384),
       "nowait: read again (cached now), it completes");
  }
  backend_close(b);
  close(fd);
  free(w); free(r);
}

/* ---- send queue ---- */
struct item { struct sendq_item sq; int *sent; };
static void item_done(struct sendq_item *it, int err) { if (!err) ++*((struct item *)it)->sent; }
static bool idle(void *arg) { return sendq_idle(arg); }

int main(void)
{
  struct backend *b;
  char err[256], path[] = "/tmp/shunt-backend-XXXXXX";
  int fd;

  ok(engine_init(&eng, 64, 0) == 0, "engine");
  ok(backend_open("memory", "8M", false, &b, err, sizeof err) == 0 && b->size == 8 << 20, "memory backend opens");
  exercise(b, "memory");
  backend_close(b);
  memory_huge();
  memory_cap();
  memory_model();
  ok(dp_extent_state(0) == 0 && dp_extent_state(BACKEND_EXTENT_ZERO) == NBD_STATE_ZERO
     && dp_extent_state(BACKEND_EXTENT_HOLE | BACKEND_EXTENT_ZERO) == (NBD_STATE_HOLE | NBD_STATE_ZERO),
     "extent flags map to base:allocation states where replies are built");

  fd = mkstemp(path);
  ok(fd >= 0 && ftruncate(fd, 8 << 20) == 0, "sparse file");
  close(fd);
  ok(backend_open("file", path, false, &b, err, sizeof err) == 0 && b->size == 8 << 20, "file backend opens");
  exercise(b, "file");
  backend_close(b);
  ok(backend_open("file", path, true, &b, err, sizeof err) == 0 && b->read_only && !b->can_trim, "read-only file backend");
  backend_close(b);
  file_nowait(path);
  file_shrunk(path);
  unlink(path);
  ok(backend_open("file", "/nonexistent/x", false, &b, err, sizeof err) == -ENOENT && strstr(err, "/nonexistent/x"),
     "missing file: ENOENT, message names it");
  ok(backend_open("memory", "lots", false, &b, err, sizeof err) == -EINVAL, "bad memory size refused");

  /* Send queue: 200 items of 3000 bytes through a socket with a tiny buffer,
   * so sends come back short; the reader checks order. */
  int sv[2], sent = 0, sz = 4096;
  ok(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  static struct item items[200];
  static uint8_t data[200][3000];
  struct sendq q;
  sendq_init(&q, &eng, sv[0], true, NULL);
  for (int i = 0; i < 200; i++) {
    memset(data[i], i, sizeof data[i]);
    items[i].sq.iov[0] = (struct iovec){ data[i], 1000 };
    items[i].sq.iov[1] = (struct iovec){ data[i] + 1000, 2000 };
    items[i].sq.niov = 2;
    items[i].sq.done = item_done;
    items[i].sent = &sent;
    sendq_push(&q, &items[i].sq);
  }
  pid_t pid = fork();
  if (pid == 0) {
    static uint8_t in[200 * 3000];
    size_t got = 0;
    close(sv[0]);
    while (got < sizeof in) {
      ssize_t k = read(sv[1], in + got, sizeof in - got > 777 ? 777 : sizeof in - got);
      if (k <= 0) _exit(2);
      got += k;
      usleep(50);
    }
    for (size_t i = 0; i < sizeof in; i++)
      if (in[i] != (uint8_t)(i / 3000)) _exit(3);
    _exit(0);
  }
  close(sv[1]);
  engine_run(&eng, idle, &q);
  int st;
  waitpid(pid, &st, 0);
  ok(sent == 200 && q.bytes_sent == 600000, "send queue: all 200 items sent (%d, %llu bytes)", sent, q.bytes_sent);
  ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "send queue: bytes arrive whole and in order");
  close(sv[0]);
  engine_fini(&eng);
  return tap_done();
}
