/* test_memio.c: requests whose payload is the caller's memory (r->mem_iov),
 * as a memory front end (vhost) makes them, driven through dp_execute() by
 * a fake front end whose sink answers with ops->done.  On a file in a
 * directory of the real disk (O_DIRECT works there, not on tmpfs), for
 * every data path: scattered segments (page-aligned, sector-aligned,
 * unaligned, mixed) written and read back against a model of the file at
 * aligned and unaligned offsets, FUA, FLUSH, TRIM, WRITE_ZEROES, requests
 * out of range or malformed, EIO from a file that shrank under the export,
 * many requests sharing blocks in flight at once; done() called exactly
 * once per request, before it is freed, with the right status, and no
 * reply bytes pushed.  Direct I/O (the direct path and
 * auto's): nothing copied for aligned segments, bounced bytes counted;
 * memory registered as fixed buffers used (READV_FIXED where the kernel has
 * it, one READ_FIXED per segment otherwise), and the unregistered fallback.
 * Also a memory backend (one bio per segment). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/backend.h"
#include "common/macros.h"
#include "datapath/datapath.h"
#include "datapath/dpexport.h"
#include "datapath/dpworker.h"
#include "datapath/memreg.h"
#include "datapath/request.h"
#include "engine/engine.h"
#include "proto/nbd-protocol.h"
#include "tap.h"

#define FILE_SIZE (1u << 20)
#define GUEST_SIZE (1u << 20)
#define NELEMS(a) (sizeof (a) / sizeof (a)[0])

static struct engine eng;
static char dir[] = "/var/tmp/shunt-memio.XXXXXX";
static char img[256];
static uint8_t model[FILE_SIZE];      /* what the file holds */
static uint8_t *guest;                /* the front end's memory */

struct fake {
  struct request_sink sink;
  unsigned done, freed, pushed, bad;
  unsigned errors;                    /* done() with a non-zero status */
  bool many;                          /* several requests in flight: no order checks */
  uint32_t status;
  struct request *last;
};

static struct fake *fake_of(struct request_sink *s) { return container_of(s, struct fake, sink); }

static void fake_push(struct request_sink *s, struct sendq_item *it) { (void)it; fake_of(s)->pushed++; }
static void fake_release(struct request_sink *s, struct sendq_item *it) { (void)it; fake_of(s)->pushed++; }
static void fake_send_failed(struct request_sink *s, int err) { (void)err; fake_of(s)->pushed++; }
static void fake_fail(struct request_sink *s, struct request *r) { (void)r; fake_of(s)->pushed++; }

static void fake_done(struct request_sink *s, struct request *r, uint32_t err)
{
  struct fake *f = fake_of(s);
  if (!f->many && (r != f->last || f->done != f->freed))
    f->bad++;   /* done twice, or for a request freed already */
  f->done++;
  f->errors += err != 0;
  f->status = err;
}

static void fake_freed(struct request_sink *s, struct request *r)
{
  struct fake *f = fake_of(s);
  if (!f->many && (r != f->last || f->done != f->freed + 1))
    f->bad++;   /* freed before done */
  f->freed++;
}

static const struct request_sink_ops fake_ops = {
  .push = fake_push, .release = fake_release, .send_failed = fake_send_failed,
  .fail = fake_fail, .freed = fake_freed, .done = fake_done,
};

/* Execute a request and run the loop until it is freed.  Returns its
 * status, or UINT32_MAX when it was not answered once and freed once. */
static uint32_t run(struct fake *f, uint16_t type, uint16_t flags, uint64_t off, uint64_t len,
                    const struct iovec *iov, unsigned niov)
{
  struct proto_request h = { .type = type, .flags = flags, .offset = off, .length = len };
  unsigned d0 = f->done, f0 = f->freed, p0 = f->pushed, b0 = f->bad;
  struct request *r = request_new(&f->sink, &h);

  if (!r)
    return UINT32_MAX;
  r->mem_iov = iov;
  r->mem_niov = niov;
  f->last = r;
  dp_execute(r);
  for (int turn = 0; turn < 200000 && f->freed == f0; turn++) {
    engine_poll(&eng);
    if (f->freed == f0)
      usleep(50);
  }
  if (f->done != d0 + 1 || f->freed != f0 + 1 || f->pushed != p0 || f->bad != b0)
    return UINT32_MAX;
  return f->status;
}

/* Segments of the guest memory: {guest offset, length} pairs. */
struct layout {
  const char *name;
  unsigned n;
  struct { size_t at, len; } s[6];
};

static const struct layout layouts[] = {
  { "page-aligned", 3, { { 0, 4096 }, { 16384, 8192 }, { 40960, 4096 } } },
  { "sector-aligned", 3, { { 65536 + 1536, 512 }, { 65536 + 8192, 1024 }, { 65536 + 16384 + 512, 2560 } } },
  { "unaligned", 3, { { 131072 + 1, 100 }, { 131072 + 4096 + 7, 3000 }, { 131072 + 12288 + 3, 996 } } },
  { "mixed", 4, { { 196608, 4096 }, { 196608 + 8192 + 5, 4091 }, { 196608 + 16384 + 1, 5 },
                  { 196608 + 20480, 8192 } } },
};

static unsigned make_iov(const struct layout *l, struct iovec *iov, uint64_t *len)
{
  *len = 0;
  for (unsigned i = 0; i < l->n; i++) {
    iov[i] = (struct iovec){ guest + l->s[i].at, l->s[i].len };
    *len += l->s[i].len;
  }
  return l->n;
}

static unsigned seed = 1;

/* Write the layout's segments (fresh bytes) at off; mirror into the model. */
static uint32_t write_layout(struct fake *f, const struct layout *l, uint64_t off, uint16_t flags)
{
  struct iovec iov[6] = { { 0 } };
  uint64_t len, pos = off;
  unsigned n = make_iov(l, iov, &len);

  for (unsigned i = 0; i < n; i++) {
    uint8_t *p = iov[i].iov_base;
    for (size_t k = 0; k < iov[i].iov_len; k++)
      p[k] = (uint8_t)(rand_r(&seed) | 1);
    memcpy(model + pos, p, iov[i].iov_len);
    pos += iov[i].iov_len;
  }
  return run(f, NBD_CMD_WRITE, flags, off, len, iov, n);
}

/* Read the layout's segments at off (filled with junk first); true when
 * they then hold what the model says. */
static bool read_layout(struct fake *f, const struct layout *l, uint64_t off)
{
  struct iovec iov[6] = { { 0 } };
  uint64_t len, pos = off;
  unsigned n = make_iov(l, iov, &len);

  for (unsigned i = 0; i < n; i++)
    memset(iov[i].iov_base, 0xee, iov[i].iov_len);
  if (run(f, NBD_CMD_READ, 0, off, len, iov, n) != 0)
    return false;
  for (unsigned i = 0; i < n; i++) {
    if (memcmp(iov[i].iov_base, model + pos, iov[i].iov_len))
      return false;
    pos += iov[i].iov_len;
  }
  return true;
}

static uint64_t ld(const stat_t *s) { return atomic_load(s); }
/* The export's counters (the one place that knows where they live). */
static const struct dp_stats *st(const struct dp_export *dx) { return &dx->stats; }
static uint64_t copied(const struct dp_export *dx) { return ld(&st(dx)->copied_read) + ld(&st(dx)->copied_write); }
static uint64_t auto_reads(const struct dp_export *dx, int kind) { return ld(&st(dx)->auto_reads[kind]); }

/* The file as the model says, read with pread: what the exports wrote. */
static bool file_matches(void)
{
  static uint8_t buf[FILE_SIZE];
  int fd = open(img, O_RDONLY);
  bool same = fd >= 0 && pread(fd, buf, FILE_SIZE, 0) == FILE_SIZE && !memcmp(buf, model, FILE_SIZE);
  if (fd >= 0)
    close(fd);
  return same;
}

static void common_cases(struct fake *f, struct dp_export *dx, const char *dp)
{
  static const uint64_t offsets[] = { 8192, 4096 * 20 + 512, 4096 * 40 + 100 };
  struct iovec one = { guest, 4096 };

  (void)dx;

  for (size_t o = 0; o < NELEMS(offsets); o++)
    for (size_t i = 0; i < NELEMS(layouts); i++) {
      uint64_t off = offsets[o] + i * 65536;
      ok(write_layout(f, &layouts[i], off, 0) == 0 && read_layout(f, &layouts[i], off),
         "%s: %s segments written and read back at %llu", dp, layouts[i].name, (unsigned long long)off);
      /* read back through another layout too */
      const struct layout *other = &layouts[(i + 1) % NELEMS(layouts)];
      ok(read_layout(f, other, off), "%s: read at %llu as %s segments", dp, (unsigned long long)off, other->name);
    }
  ok(write_layout(f, &layouts[3], 500000, NBD_CMD_FLAG_FUA) == 0 && read_layout(f, &layouts[3], 500000),
     "%s: FUA write", dp);
  ok(run(f, NBD_CMD_FLUSH, 0, 0, 0, NULL, 0) == 0, "%s: FLUSH", dp);
  ok(run(f, NBD_CMD_WRITE_ZEROES, 0, 8192, 8192, NULL, 0) == 0, "%s: WRITE_ZEROES", dp);
  memset(model + 8192, 0, 8192);
  ok(run(f, NBD_CMD_TRIM, 0, 4096 * 20, 4096 * 4, NULL, 0) == 0, "%s: TRIM", dp);
  memset(model + 4096 * 20, 0, 4096 * 4);
  ok(read_layout(f, &layouts[0], 8192) && read_layout(f, &layouts[2], 4096 * 20),
     "%s: zeroed and trimmed ranges read as zeroes", dp);
  ok(run(f, NBD_CMD_READ, 0, FILE_SIZE - 2048, 4096, &one, 1) == NBD_EINVAL, "%s: READ past the end: EINVAL", dp);
  ok(run(f, NBD_CMD_WRITE, 0, FILE_SIZE - 2048, 4096, &one, 1) == NBD_ENOSPC, "%s: WRITE past the end: ENOSPC", dp);
  ok(run(f, NBD_CMD_WRITE_ZEROES, 0, UINT64_MAX - 10, 4096, NULL, 0) == NBD_ENOSPC,
     "%s: WRITE_ZEROES with an offset that overflows: ENOSPC", dp);
  ok(run(f, NBD_CMD_READ, 0, 0, 8192, &one, 1) == NBD_EINVAL, "%s: segments shorter than the length: EINVAL", dp);
  ok(run(f, NBD_CMD_BLOCK_STATUS, 0, 0, 4096, NULL, 0) == NBD_EINVAL, "%s: BLOCK_STATUS: EINVAL", dp);
  ok(run(f, NBD_CMD_READ, 0, 0, 0, NULL, 0) == 0, "%s: empty READ", dp);
  /* The last bytes of the file, unaligned. */
  struct iovec tail = { guest + 300000, 3000 };
  memset(guest + 300000, 0x5a, 3000);
  memset(model + FILE_SIZE - 3000, 0x5a, 3000);
  ok(run(f, NBD_CMD_WRITE, 0, FILE_SIZE - 3000, 3000, &tail, 1) == 0 && read_layout(f, &layouts[2], FILE_SIZE - 4096),
     "%s: the file's last 3000 bytes", dp);
  /* A file that shrank under the export: reading its lost end fails. */
  struct iovec big[2] = { { guest, 8192 }, { guest + 16384 + 1, 4096 } };
  int fd = open(img, O_RDWR);
  ok(fd >= 0 && ftruncate(fd, FILE_SIZE / 2) == 0, "%s: the file shrinks to half", dp);
  ok(run(f, NBD_CMD_READ, 0, FILE_SIZE / 2 + 4096, 8192 + 4096, big, 2) == NBD_EIO,
     "%s: a READ of what the file lost: EIO, never zeroes", dp);
  ok(run(f, NBD_CMD_READ, 0, FILE_SIZE / 2 - 8192, 8192 + 4096, big, 2) == NBD_EIO,
     "%s: a READ across the file's new end: EIO", dp);
  ok(fd >= 0 && ftruncate(fd, FILE_SIZE) == 0, "%s: the file grows back", dp);
  if (fd >= 0)
    close(fd);
  memset(model + FILE_SIZE / 2, 0, FILE_SIZE / 2);
  ok(file_matches(), "%s: the file holds what was written", dp);
}

/* Many WRITEs in flight at once, packed end to end from offset 409600 + 512
 * so that neighbours share blocks: 12 of 3072 bytes (sector-aligned, so
 * O_DIRECT where the file system takes sectors), then 12 of 3000 (unaligned:
 * read-modify-written), each from a page-aligned segment of 2048 bytes and
 * an unaligned one (bounced).  The direct writes' range lock orders them.
 * Then READs of the same, in flight at once too.  True when each was
 * answered once, without error, and the memory and the file then hold
 * every write. */
static bool many_in_flight(struct fake *f, const char *dp)
{
  enum { N = 24, S0 = 2048 };
  static struct iovec iov[N][2];
  static uint64_t off[N];
  unsigned d0 = f->done, f0 = f->freed, e0 = f->errors, p0 = f->pushed;
  uint64_t pos = 409600 + 512;

  for (unsigned k = 0; k < N; k++) {
    size_t len = k < N / 2 ? 3072 : 3000;
    uint8_t *page = guest + 401408 + k * 16384;   /* page-aligned */
    off[k] = pos;
    pos += len;
    iov[k][0] = (struct iovec){ page, S0 };
    iov[k][1] = (struct iovec){ page + 8192 + 1, len - S0 };
  }
  f->many = true;
  for (int pass = 0; pass < 2; pass++) {
    unsigned want = f->freed + N;
    for (unsigned k = 0; k < N; k++) {
      for (unsigned j = 0; j < 2; j++) {
        uint8_t *b = iov[k][j].iov_base;
        uint64_t at = off[k] + (j ? S0 : 0);
        if (pass == 0) {
          for (size_t x = 0; x < iov[k][j].iov_len; x++)
            b[x] = (uint8_t)(rand_r(&seed) | 1);
          memcpy(model + at, b, iov[k][j].iov_len);
        } else {
          memset(b, 0xee, iov[k][j].iov_len);
        }
      }
      struct proto_request h = { .type = pass ? NBD_CMD_READ : NBD_CMD_WRITE, .offset = off[k],
                                 .length = iov[k][0].iov_len + iov[k][1].iov_len };
      struct request *r = request_new(&f->sink, &h);
      if (!r)
        return false;
      r->mem_iov = iov[k];
      r->mem_niov = 2;
      dp_execute(r);
    }
    for (int turn = 0; turn < 200000 && f->freed < want; turn++) {
      engine_poll(&eng);
      if (f->freed < want)
        usleep(50);
    }
  }
  f->many = false;
  bool same = true;
  for (unsigned k = 0; k < N; k++)
    for (unsigned j = 0; j < 2; j++)
      same = same && !memcmp(iov[k][j].iov_base, model + off[k] + (j ? S0 : 0), iov[k][j].iov_len);
  bool once = f->done == d0 + 2 * N && f->freed == f0 + 2 * N && f->errors == e0 && f->pushed == p0;
  if (!once)
    printf("# %s: %u done, %u freed, %u errors, %u pushed\n", dp, f->done - d0, f->freed - f0, f->errors - e0,
           f->pushed - p0);
  return same && once && file_matches();
}

static uint64_t fixed_ios(const struct dp_export *dx) { return ld(&st(dx)->mem_fixed_ios); }

/* Direct I/O: what is copied, and fixed buffers on registered memory. */
static void direct_cases(struct fake *f, struct dp_export *dx, const char *dp, bool registered, unsigned want_fixed)
{
  uint64_t c0 = copied(dx), x0 = fixed_ios(dx);

  ok(write_layout(f, &layouts[0], 8192, 0) == 0 && read_layout(f, &layouts[0], 8192) && copied(dx) == c0,
     "%s: page-aligned segments at an aligned offset: nothing copied", dp);
  ok(registered ? fixed_ios(dx) > x0 && (!want_fixed || fixed_ios(dx) == x0 + want_fixed) : fixed_ios(dx) == x0,
     "%s: %s (%llu fixed I/Os)", dp,
     registered ? "registered memory: fixed-buffer I/O" : "unregistered memory: plain READV/WRITEV",
     (unsigned long long)(fixed_ios(dx) - x0));
  c0 = copied(dx);
  ok(write_layout(f, &layouts[1], 4096 * 30, 0) == 0 && read_layout(f, &layouts[1], 4096 * 30)
     && (dx->dio_off_align > 512 || copied(dx) == c0),
     "%s: sector-aligned segments: nothing copied where O_DIRECT takes 512-byte sectors (%u)", dp,
     dx->dio_off_align);
  c0 = copied(dx);
  ok(write_layout(f, &layouts[2], 8192, 0) == 0 && read_layout(f, &layouts[2], 8192) && copied(dx) == c0 + 2 * 4096,
     "%s: unaligned segments bounced, their bytes counted as copied (%llu)", dp,
     (unsigned long long)(copied(dx) - c0));
  c0 = copied(dx);
  ok(write_layout(f, &layouts[3], 8192, 0) == 0 && read_layout(f, &layouts[3], 8192) && copied(dx) == c0 + 2 * 4096,
     "%s: mixed segments: only the unaligned run bounced (%llu)", dp, (unsigned long long)(copied(dx) - c0));
  c0 = copied(dx);
  ok(write_layout(f, &layouts[0], 8192 + 100, NBD_CMD_FLAG_FUA) == 0 && read_layout(f, &layouts[0], 8192 + 100)
     && copied(dx) > c0, "%s: an unaligned offset: written read-modify-write, copies counted", dp);
  ok(file_matches(), "%s: the file holds what was written", dp);
}

static int setup(struct dp_export *dx, const char *path, const char *kind, const char *dp)
{
  struct backend *b;
  char err[256];
  memset(dx, 0, sizeof *dx);
  int r = backend_open(kind, path, false, &b, err, sizeof err);
  if (r < 0) {
    printf("# %s\n", err);
    return r;
  }
  r = datapath_setup(dx, b, &(struct dp_export_setup){ .name = dp, .path = path, .datapath = dp }, err, sizeof err);
  if (r < 0)
    printf("# %s\n", err);
  return r;
}

static bool direct_works(const char *path)
{
  int fd = open(path, O_RDONLY | O_DIRECT);
  if (fd < 0)
    return false;
  close(fd);
  return true;
}

int main(void)
{
  static const char *const paths[] = { "copy", "splice", "mmap", "direct", "auto" };
  static struct fake f;
  static struct dp_share share;
  struct dp_export dx;
  void *g = NULL;
  int fd;

  ok(engine_init(&eng, 64, 0) == 0, "engine");
  ok(posix_memalign(&g, 4096, GUEST_SIZE) == 0, "guest memory");
  guest = g;
  if (!mkdtemp(dir)) {
    ok(0, "mkdtemp: %s", strerror(errno));
    return tap_done();
  }
  snprintf(img, sizeof img, "%s/disk.img", dir);
  fd = open(img, O_CREAT | O_RDWR, 0600);
  ok(fd >= 0 && ftruncate(fd, FILE_SIZE) == 0, "image %s", img);
  close(fd);
  bool direct = direct_works(img);

  /* Registered before the worker's arena exists: the arena joins the table. */
  ok(dp_mem_register(&eng, guest, GUEST_SIZE) == 0, "guest memory registered as fixed buffers");
  ok(dp_mem_register(&eng, guest, GUEST_SIZE) == -EEXIST, "registered twice: EEXIST");
  ok(dp_mem_register(&eng, NULL, 4096) == -EINVAL && dp_mem_register(&eng, guest, 0) == -EINVAL,
     "nothing to register: EINVAL");

  for (size_t p = 0; p < NELEMS(paths); p++) {
    bool is_direct = !strcmp(paths[p], "direct");
    if (!direct && is_direct) {
      printf("ok %d - direct # SKIP O_DIRECT does not work in %s\n", ++tap_n, dir);
      continue;
    }
    ok(setup(&dx, img, "file", paths[p]) == 0, "%s export", paths[p]);
    /* Half the paths with a share of the worker's arena, half without. */
    f = (struct fake){ .sink = { .ops = &fake_ops, .eng = &eng, .export = &dx, .dp = dx.datapath,
                                 .share = p % 2 ? NULL : &share, .peer = "test" } };
    common_cases(&f, &dx, paths[p]);
    ok(many_in_flight(&f, paths[p]), "%s: 24 WRITEs sharing blocks in flight at once, then 24 READs", paths[p]);
    if (is_direct) {
      /* Three segments of one registered piece: one READV_FIXED/WRITEV_FIXED
       * each way where the kernel has them. */
      direct_cases(&f, &dx, "direct", true, dp_mem_vec_fixed(&eng) ? 2 : 6);
      dp_mem_unregister(&eng, guest);
      direct_cases(&f, &dx, "direct, unregistered", false, 0);
      ok(dp_mem_register(&eng, guest, GUEST_SIZE) == 0, "registered again");
      f.sink.share = NULL;
      dp_mem_no_vec_fixed(&eng);
      direct_cases(&f, &dx, "direct, no arena share, one fixed I/O per segment", true, 6);
    }
    if (!strcmp(paths[p], "auto") && dx.direct_fd >= 0) {
      /* Uncached ranges go O_DIRECT, cached ones through the page cache. */
      fd = open(img, O_RDONLY);
      ok(fd >= 0 && fdatasync(fd) == 0 && posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0, "page cache dropped");
      if (fd >= 0)
        close(fd);
      uint64_t d0 = auto_reads(&dx, DP_DIRECT), c0 = auto_reads(&dx, DP_COPY);
      ok(read_layout(&f, &layouts[0], 4096 * 50) && auto_reads(&dx, DP_DIRECT) == d0 + 1,
         "auto: an uncached READ goes O_DIRECT");
      struct iovec v = { guest + 300000, 4096 };
      fd = open(img, O_RDONLY);
      ok(fd >= 0 && pread(fd, guest + 300000, 65536, 4096 * 60) == 65536, "a range read into the page cache");
      if (fd >= 0)
        close(fd);
      ok(run(&f, NBD_CMD_READ, 0, 4096 * 61, 4096, &v, 1) == 0 && !memcmp(guest + 300000, model + 4096 * 61, 4096)
         && auto_reads(&dx, DP_COPY) == c0 + 1, "auto: a cached READ goes through the page cache");
      direct_cases(&f, &dx, "auto", true, 0);
    }
    if (is_direct) {
      /* Registered in 64 KiB pieces: a segment across two pieces goes as
       * plain READV, those inside one piece as fixed I/O. */
      dp_mem_unregister(&eng, guest);
      dp_mem_piece_max = 65536;
      ok(dp_mem_register(&eng, guest, GUEST_SIZE) == 0, "registered again in 64 KiB pieces");
      struct iovec v[3] = { { guest + 65536 - 4096, 8192 }, { guest + 4096, 4096 }, { guest + 131072, 4096 } };
      uint64_t x0 = fixed_ios(&dx);
      for (int i = 0; i < 3; i++)
        memset(v[i].iov_base, 0xee, v[i].iov_len);
      ok(run(&f, NBD_CMD_READ, 0, 4096 * 10, 16384, v, 3) == 0 && !memcmp(v[0].iov_base, model + 4096 * 10, 8192)
         && !memcmp(v[1].iov_base, model + 4096 * 12, 4096) && !memcmp(v[2].iov_base, model + 4096 * 13, 4096),
         "a READ with a segment across two registered pieces");
      ok(fixed_ios(&dx) == x0 + 2, "the two segments inside one piece each went as fixed I/O (%llu)",
         (unsigned long long)(fixed_ios(&dx) - x0));
      dp_mem_piece_max = DP_MEM_PIECE_MAX;
    }
    dp_export_close(&dx);
  }
  dp_mem_unregister(&eng, guest);

  /* A memory backend: no file, one bio per segment. */
  ok(setup(&dx, "1M", "memory", "copy") == 0, "memory export");
  f = (struct fake){ .sink = { .ops = &fake_ops, .eng = &eng, .export = &dx, .dp = dx.datapath, .peer = "test" } };
  memset(model, 0, sizeof model);
  ok(write_layout(&f, &layouts[3], 4096 + 3, 0) == 0 && read_layout(&f, &layouts[2], 4096 + 3),
     "memory backend: scattered write and read back");
  ok(copied(&dx) == 16384 + 4096, "memory backend: the backend's copies counted (%llu)",
     (unsigned long long)copied(&dx));
  dp_export_close(&dx);

  unlink(img);
  rmdir(dir);
  free(g);
  engine_fini(&eng);
  return tap_done();
}
