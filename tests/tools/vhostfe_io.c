/* vhostfe_io.c: the test frontend's virtio-blk requests: slots in guest memory (header,
 * status byte, indirect table, data buffer), chains built from them, the completion loop
 * over the call eventfds, and the two workloads on top: verified random I/O and the
 * benchmark loop. */
#include "vhostfe.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/virtio_config.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FE_MAX_DSEG           16 /* data segments per request at most */
#define FE_GEN_UNKNOWN        UINT32_MAX
#define FE_VERIFY_MAX_SECTORS (64ull << 21) /* 64 GiB: 512 MiB of generations */

struct fe_req {
  unsigned q; /* its queue */
  bool busy;
  uint32_t type;   /* VIRTIO_BLK_T_* */
  uint64_t sector; /* 512-byte units */
  uint32_t len;    /* data bytes (IN/OUT/DISCARD/WRITE_ZEROES range) */
  uint32_t gen;    /* OUT: the write's generation */
  uint32_t flags;  /* WRITE_ZEROES: VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP */
  struct virtio_blk_outhdr *hdr;
  uint8_t *status;
  struct vring_desc *table;
  uint64_t table_gpa;
  uint8_t *buf; /* data (or the discard/write-zeroes segment, GET_ID's answer) */
  unsigned npieces;
  uint8_t *piece[FE_MAX_DSEG];
  uint32_t piece_len[FE_MAX_DSEG];
};

struct fe_io {
  struct fe_dev *d;
  unsigned qd, dseg;
  bool indirect;
  struct fe_req *reqs; /* nqueues * qd */
  unsigned total_inflight;
};

static int io_init(struct fe_io *io, struct fe_dev *d, unsigned qd, uint32_t buf_cap)
{
  memset(io, 0, sizeof(*io));
  io->d = d;
  io->qd = qd;
  io->indirect = fe_has(d, VIRTIO_RING_F_INDIRECT_DESC);
  io->dseg = d->seg_max < FE_MAX_DSEG ? d->seg_max : FE_MAX_DSEG;
  if (!io->indirect && io->dseg + 2 > d->o->queue_size)
    io->dseg = d->o->queue_size - 2;
  io->reqs = calloc((size_t)d->nqueues * qd, sizeof(*io->reqs));
  if (!io->reqs)
    return -1;
  for (unsigned q = 0; q < d->nqueues; q++)
    for (unsigned s = 0; s < qd; s++) {
      struct fe_req *r = &io->reqs[q * qd + s];
      unsigned region = q * qd + s;
      uint64_t gpa;
      r->q = q;
      r->hdr = fe_mem_alloc(&d->mem, region, sizeof(*r->hdr), 16, &gpa);
      r->status = fe_mem_alloc(&d->mem, region, 1, 1, &gpa);
      r->table = fe_mem_alloc(&d->mem, region, (FE_MAX_DSEG + 2) * 16, 16, &r->table_gpa);
      r->buf = fe_mem_alloc(&d->mem, region, buf_cap, 4096, &gpa);
      if (!r->hdr || !r->status || !r->table || !r->buf) {
        FE_ERR("guest memory (%llu MiB) too small for %u queue(s) x %u requests of %u bytes",
               (unsigned long long)(d->mem.size >> 20), d->nqueues, qd, buf_cap);
        free(io->reqs);
        io->reqs = NULL;
        return -1;
      }
    }
  return 0;
}

/* Build R's chain and add it to its queue (not yet published). 0 or -ENOSPC. */
static int io_submit(struct fe_io *io, struct fe_req *r)
{
  struct fe_seg segs[FE_MAX_DSEG + 2];
  struct fe_dev *d = io->d;
  unsigned n = 0;
  r->hdr->type = r->type;
  r->hdr->ioprio = 0;
  r->hdr->sector = r->sector;
  *r->status = 0xff;
  segs[n++] = (struct fe_seg){ fe_mem_gpa(&d->mem, r->hdr), sizeof(*r->hdr), false };
  if (r->type == VIRTIO_BLK_T_IN || r->type == VIRTIO_BLK_T_OUT) {
    for (unsigned i = 0; i < r->npieces; i++)
      segs[n++] = (struct fe_seg){ fe_mem_gpa(&d->mem, r->piece[i]), r->piece_len[i],
                                   r->type == VIRTIO_BLK_T_IN };
  } else if (r->type == VIRTIO_BLK_T_GET_ID) {
    segs[n++] = (struct fe_seg){ fe_mem_gpa(&d->mem, r->buf), VIRTIO_BLK_ID_BYTES, true };
  } else if (r->type == VIRTIO_BLK_T_DISCARD || r->type == VIRTIO_BLK_T_WRITE_ZEROES) {
    struct virtio_blk_discard_write_zeroes *z = (void *)r->buf;
    z->sector = r->sector;
    z->num_sectors = r->len / 512;
    z->flags = r->flags;
    r->hdr->sector = 0;
    segs[n++] = (struct fe_seg){ fe_mem_gpa(&d->mem, z), sizeof(*z), false };
  }
  segs[n++] = (struct fe_seg){ fe_mem_gpa(&d->mem, r->status), 1, true };
  bool indirect = io->indirect && n > 2;
  if (!indirect && n > d->o->queue_size) {
    FE_ERR("a request of %u descriptors does not fit a ring of %u", n, d->o->queue_size);
    exit(1);
  }
  int rc = fe_vq_add(&d->vq[r->q], segs, n, r, indirect ? r->table : NULL, r->table_gpa);
  if (rc == 0) {
    r->busy = true;
    io->total_inflight++;
  }
  return rc;
}

static void io_publish(struct fe_io *io)
{
  for (unsigned q = 0; q < io->d->nqueues; q++)
    if (fe_vq_publish(&io->d->vq[q]))
      fe_vq_kick(&io->d->vq[q]);
}

/* True when a used element is waiting on some queue. */
static bool any_used(struct fe_dev *d)
{
  for (unsigned q = 0; q < d->nqueues; q++)
    if (__atomic_load_n(&d->vq[q].vr.used->idx, __ATOMIC_ACQUIRE) != d->vq[q].last_used)
      return true;
  return false;
}

typedef int (*fe_complete_fn)(struct fe_io *io, struct fe_req *r, uint32_t used_len, void *arg);

/* Wait for completions and hand each to DONE; returns how many (0 after a reconnect), or -1
 * (timeout, closed connection, or DONE failed). */
static int io_reap(struct fe_io *io, fe_complete_fn done, void *arg)
{
  struct fe_dev *d = io->d;
  struct pollfd p[FE_MAX_QUEUES + 1];
  int got = 0;
  for (;;) {
    for (unsigned q = 0; q < d->nqueues; q++) {
      struct fe_req *r;
      uint32_t len;
      while ((r = fe_vq_get_used(&d->vq[q], &len))) {
        r->busy = false;
        io->total_inflight--;
        got++;
        if (done(io, r, len, arg) < 0)
          return -1;
      }
    }
    if (got)
      return got;
    bool pending = false;
    for (unsigned q = 0; q < d->nqueues; q++)
      pending |= fe_vq_arm(&d->vq[q]);
    if (pending)
      continue;
    for (unsigned q = 0; q < d->nqueues; q++)
      p[q] = (struct pollfd){ d->vq[q].call_fd, POLLIN, 0 };
    /* the socket too: a backend that closes it will not complete anything */
    p[d->nqueues] = (struct pollfd){ d->sock, POLLIN, 0 };
    int n = poll(p, d->nqueues + 1, d->o->timeout_s * 1000);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      FE_ERR("no completion within %d s (%u requests in flight)", d->o->timeout_s,
             io->total_inflight);
      return -1;
    }
    /* Closed: what it completed before closing still counts (fe_vq_arm said none). */
    if (p[d->nqueues].revents && fe_wait_closed(d, 0) && !any_used(d)) {
      if (d->o->check_close) {
        unsigned taken = fe_inflight_marked(d);
        if (taken) {
          FE_ERR("the backend closed the connection with %u of the requests it took unanswered",
                 taken);
          return -1;
        }
        d->closes_checked++;
      }
      if (d->o->reconnect) {
        if (fe_reconnect(d) < 0)
          return -1;
        return 0;
      }
      FE_ERR("the backend closed the connection (%u requests in flight)", io->total_inflight);
      return -1;
    }
    for (unsigned q = 0; q < d->nqueues; q++) {
      uint64_t v;
      if (p[q].revents & POLLIN && read(p[q].fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        perror("vhostfe: call eventfd");
    }
  }
}

static int drop_done(struct fe_io *io, struct fe_req *r, uint32_t used_len, void *arg)
{
  (void)io, (void)r, (void)used_len, (void)arg;
  return 0;
}

/* After a failure: let what is in flight complete (as a guest that stops would) before the
 * device is stopped; gives up on a timeout or a closed connection. */
static void io_drain(struct fe_io *io)
{
  while (io->reqs && io->total_inflight && io_reap(io, drop_done, NULL) >= 0)
    ;
}

static struct fe_req *free_slot(struct fe_io *io, unsigned q)
{
  for (unsigned s = 0; s < io->qd; s++)
    if (!io->reqs[q * io->qd + s].busy)
      return &io->reqs[q * io->qd + s];
  return NULL;
}

/* ---- verified random I/O ---- */

struct fe_verify {
  const struct fe_verify_opts *v;
  uint64_t rng, seed;
  uint32_t *gen; /* per 512-byte sector: 0 zeroes, FE_GEN_UNKNOWN, or a write */
  uint32_t next_gen;
  uint32_t max_bs;  /* largest request: --max-bs within size_max, whole blocks */
  uint64_t sectors; /* the part of the disk verified (all of it up to 64 GiB) */
  uint8_t *tmp;
  unsigned smoke_n; /* smoke: requests issued so far */
  uint64_t n[16];   /* completed requests per type */
  uint64_t bytes_read, bytes_written, refused, unknown_sectors, get_id_unsupported;
  bool ro;
};

static uint64_t splitmix(uint64_t x)
{
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static void fill_sector(const struct fe_verify *f, uint64_t sector, uint32_t gen, uint8_t *out)
{
  if (gen == 0) {
    memset(out, 0, 512);
    return;
  }
  for (unsigned w = 0; w < 64; w++) {
    uint64_t x = splitmix(f->seed ^ sector * 0xd1b54a32d192ed03ull ^ (uint64_t)gen << 40 ^ w);
    memcpy(out + w * 8, &x, 8);
  }
}

/* Scatter the request's data over 1..dseg pieces of its buffer, at odd offsets. */
static void place_pieces(struct fe_io *io, struct fe_verify *f, struct fe_req *r)
{
  unsigned max = io->dseg, n = 1 + (unsigned)(fe_rand(&f->rng) % max);
  if (n > r->len)
    n = r->len;
  uint32_t left = r->len, at = (uint32_t)(fe_rand(&f->rng) % 64);
  r->npieces = n;
  for (unsigned i = 0; i < n; i++) {
    uint32_t l = i + 1 == n ? left : 1 + (uint32_t)(fe_rand(&f->rng) % (left - (n - 1 - i)));
    if (l > left - (n - 1 - i))
      l = left - (n - 1 - i);
    /* Mostly a sector-aligned split; sometimes any byte count. */
    if (fe_rand(&f->rng) % 4 && l > 512 && i + 1 < n)
      l &= ~511u;
    r->piece[i] = r->buf + at;
    r->piece_len[i] = l;
    left -= l;
    at += l + (uint32_t)(fe_rand(&f->rng) % 2 ? 0 : fe_rand(&f->rng) % 64);
  }
}

static bool overlaps_inflight(struct fe_io *io, uint64_t sector, uint32_t len, bool write)
{
  uint64_t end = sector + len / 512;
  for (unsigned i = 0; i < io->d->nqueues * io->qd; i++) {
    struct fe_req *o = &io->reqs[i];
    if (!o->busy || o->type == VIRTIO_BLK_T_FLUSH)
      continue;
    bool o_write = o->type != VIRTIO_BLK_T_IN;
    if (!write && !o_write)
      continue;
    if (sector < o->sector + o->len / 512 && o->sector < end)
      return true;
  }
  return false;
}

static uint32_t pick_type(struct fe_io *io, struct fe_verify *f)
{
  struct fe_dev *d = io->d;
  unsigned x = (unsigned)(fe_rand(&f->rng) % 100);
  if (f->ro)
    return x < 80 ? VIRTIO_BLK_T_IN : x < 95 ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_FLUSH;
  if (x < 2)
    return VIRTIO_BLK_T_GET_ID;
  if (x < 45)
    return VIRTIO_BLK_T_IN;
  if (x < 85)
    return VIRTIO_BLK_T_OUT;
  if (x < 90 && fe_has(d, VIRTIO_BLK_F_FLUSH))
    return VIRTIO_BLK_T_FLUSH;
  if (x < 95 && x >= 90 && fe_has(d, VIRTIO_BLK_F_DISCARD))
    return VIRTIO_BLK_T_DISCARD;
  if (x >= 95 && fe_has(d, VIRTIO_BLK_F_WRITE_ZEROES))
    return VIRTIO_BLK_T_WRITE_ZEROES;
  return VIRTIO_BLK_T_IN;
}

/* A random range for R (type already set) that no in-flight request conflicts with;
 * false when none was found in a few tries. */
static bool pick_range(struct fe_io *io, struct fe_verify *f, struct fe_req *r)
{
  struct fe_dev *d = io->d;
  uint32_t unit = d->blk_size / 512, max_units = f->max_bs / d->blk_size;
  uint64_t total_units = f->sectors / unit;
  if (r->type == VIRTIO_BLK_T_DISCARD || r->type == VIRTIO_BLK_T_WRITE_ZEROES) {
    uint32_t align = r->type == VIRTIO_BLK_T_DISCARD ? d->cfg.discard_sector_alignment : 0;
    uint32_t maxs = r->type == VIRTIO_BLK_T_DISCARD ? d->cfg.max_discard_sectors
                                                    : d->cfg.max_write_zeroes_sectors;
    if (align > unit && align % unit == 0)
      unit = align;
    if (maxs && maxs / unit < max_units)
      max_units = maxs / unit;
    total_units = f->sectors / unit;
  }
  if (max_units == 0 || total_units == 0)
    return false;
  if (max_units > total_units)
    max_units = (uint32_t)total_units;
  for (int tries = 0; tries < 16; tries++) {
    uint32_t units = 1 + (uint32_t)(fe_rand(&f->rng) % (fe_rand(&f->rng) % 2 ? 8 : max_units));
    if (units > max_units)
      units = max_units;
    uint64_t start = fe_rand(&f->rng) % (total_units - units + 1);
    r->sector = start * unit;
    r->len = units * unit * 512;
    if (!overlaps_inflight(io, r->sector, r->len, r->type != VIRTIO_BLK_T_IN))
      return true;
  }
  return false;
}

static int verify_read(struct fe_verify *f, struct fe_req *r)
{
  uint8_t expect[512];
  uint32_t at = 0;
  for (unsigned i = 0; i < r->npieces; i++) {
    memcpy(f->tmp + at, r->piece[i], r->piece_len[i]);
    at += r->piece_len[i];
  }
  for (uint32_t s = 0; s < r->len / 512; s++) {
    uint32_t g = f->gen[r->sector + s];
    if (g == FE_GEN_UNKNOWN) {
      f->unknown_sectors++;
      continue;
    }
    fill_sector(f, r->sector + s, g, expect);
    if (memcmp(expect, f->tmp + s * 512, 512) == 0)
      continue;
    unsigned b = 0;
    while (expect[b] == f->tmp[s * 512 + b])
      b++;
    FE_ERR("MISMATCH: queue %u read of %u bytes at sector %" PRIu64 ": byte %" PRIu64
           " of the disk is 0x%02x, expected 0x%02x (%s%u)",
           r->q, r->len, r->sector, (r->sector + s) * 512 + b, f->tmp[s * 512 + b], expect[b],
           g ? "written by write #" : "zeroes, generation ", g);
    return -1;
  }
  return 0;
}

static const char *type_name(uint32_t t)
{
  switch (t) {
  case VIRTIO_BLK_T_IN: return "read";
  case VIRTIO_BLK_T_OUT: return "write";
  case VIRTIO_BLK_T_FLUSH: return "flush";
  case VIRTIO_BLK_T_DISCARD: return "discard";
  case VIRTIO_BLK_T_WRITE_ZEROES: return "write-zeroes";
  case VIRTIO_BLK_T_GET_ID: return "get-id";
  default: return "request";
  }
}

/* GET_ID's answer: --serial's text, NUL-padded to 20 bytes (not terminated at 20). */
static int check_id(struct fe_verify *f, const struct fe_req *r)
{
  char want[VIRTIO_BLK_ID_BYTES] = { 0 };
  if (!f->v->serial)
    return 0;
  memcpy(want, f->v->serial, strnlen(f->v->serial, sizeof(want)));
  if (memcmp(want, r->buf, sizeof(want)) == 0)
    return 0;
  FE_ERR("GET_ID answered \"%.*s\", expected \"%.*s\"", VIRTIO_BLK_ID_BYTES, (char *)r->buf,
         VIRTIO_BLK_ID_BYTES, want);
  return -1;
}

static int verify_done(struct fe_io *io, struct fe_req *r, uint32_t used_len, void *arg)
{
  struct fe_verify *f = arg;
  uint8_t st = *r->status;
  (void)io;
  if (used_len < 1) {
    FE_ERR("queue %u: %s at sector %" PRIu64 " came back with used length 0", r->q,
           type_name(r->type), r->sector);
    return -1;
  }
  if (f->ro && r->type == VIRTIO_BLK_T_OUT) {
    if (st != VIRTIO_BLK_S_IOERR) {
      FE_ERR("read-only device: a write at sector %" PRIu64 " answered status %u, not IOERR",
             r->sector, st);
      return -1;
    }
    f->refused++;
    return 0;
  }
  if (r->type == VIRTIO_BLK_T_GET_ID && st == VIRTIO_BLK_S_UNSUPP) {
    f->get_id_unsupported++;
    return 0;
  }
  if (st != VIRTIO_BLK_S_OK) {
    FE_ERR("queue %u: %s of %u bytes at sector %" PRIu64 " failed: status %u%s", r->q,
           type_name(r->type), r->len, r->sector, st,
           st == 0xff ? " (status byte not written)" : "");
    return -1;
  }
  f->n[r->type & 15]++;
  uint32_t g = 0;
  switch (r->type) {
  case VIRTIO_BLK_T_IN: f->bytes_read += r->len; return verify_read(f, r);
  case VIRTIO_BLK_T_OUT:
    f->bytes_written += r->len;
    g = r->gen;
    break;
  case VIRTIO_BLK_T_DISCARD: g = FE_GEN_UNKNOWN; break;
  case VIRTIO_BLK_T_WRITE_ZEROES: g = 0; break;
  case VIRTIO_BLK_T_GET_ID: return check_id(f, r);
  default: return 0;
  }
  for (uint32_t s = 0; s < r->len / 512; s++)
    f->gen[r->sector + s] = g;
  return 0;
}

/* Prepare the next request in slot R; false when no conflict-free range was found. */
static bool verify_next(struct fe_io *io, struct fe_verify *f, struct fe_req *r, bool smoke)
{
  if (smoke) {
    /* writes to disjoint ranges, then reads of the same ranges, one at a time */
    unsigned half = (unsigned)f->v->requests / 2, k = f->smoke_n % half;
    uint32_t unit = io->d->blk_size / 512;
    r->type = f->smoke_n < half ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
    r->sector = (uint64_t)k * 256 / unit * unit % (f->sectors / unit * unit);
    r->len = (uint32_t)(1 + fe_rand(&f->rng) % (f->max_bs / io->d->blk_size)) * io->d->blk_size;
    if (r->sector + r->len / 512 > f->sectors)
      r->len = (uint32_t)(f->sectors - r->sector) * 512;
    f->smoke_n++;
  } else {
    r->type = pick_type(io, f);
    if (r->type != VIRTIO_BLK_T_FLUSH && r->type != VIRTIO_BLK_T_GET_ID && !pick_range(io, f, r))
      return false;
  }
  r->flags = 0;
  if (r->type == VIRTIO_BLK_T_GET_ID)
    memset(r->buf, 0xa5, VIRTIO_BLK_ID_BYTES);
  if (r->type == VIRTIO_BLK_T_FLUSH || r->type == VIRTIO_BLK_T_GET_ID) {
    r->sector = 0;
    r->len = 0;
    r->npieces = 0;
  } else if (r->type == VIRTIO_BLK_T_WRITE_ZEROES) {
    if (io->d->cfg.write_zeroes_may_unmap && fe_rand(&f->rng) % 2)
      r->flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
  } else if (r->type == VIRTIO_BLK_T_IN || r->type == VIRTIO_BLK_T_OUT) {
    place_pieces(io, f, r);
    if (r->type == VIRTIO_BLK_T_OUT) {
      r->gen = ++f->next_gen;
      for (uint32_t s = 0; s < r->len / 512; s++)
        fill_sector(f, r->sector + s, r->gen, f->tmp + s * 512);
      uint32_t at = 0;
      for (unsigned i = 0; i < r->npieces; i++) {
        memcpy(r->piece[i], f->tmp + at, r->piece_len[i]);
        at += r->piece_len[i];
      }
    } else {
      for (unsigned i = 0; i < r->npieces; i++)
        memset(r->piece[i], 0xa5, r->piece_len[i]);
    }
  }
  return true;
}

static void print_verify_summary(struct fe_dev *d, const struct fe_verify *f, int rc, unsigned qd,
                                 uint64_t completed, double seconds)
{
  printf("{\"mode\":\"verify\",\"result\":\"%s\",\"queues\":%u,\"qd\":%u,\"indirect\":%s,"
         "\"event_idx\":%s,\"regions\":%u,\"ro\":%s,\"requests\":%" PRIu64 ",\"reads\":%" PRIu64
         ",\"writes\":%" PRIu64 ",\"flushes\":%" PRIu64 ",\"discards\":%" PRIu64
         ",\"write_zeroes\":%" PRIu64 ",\"get_id\":%" PRIu64 ",\"get_id_unsupported\":%" PRIu64
         ",\"refused_writes\":%" PRIu64 ",\"bytes_read\":%" PRIu64 ",\"bytes_written\":%" PRIu64
         ",\"unverified_sectors_read\":%" PRIu64 ",\"reconnects\":%u,\"closes_checked\":%u,\"capacity_sectors\":%" PRIu64
         ",\"blk_size\":%u,\"seg_max\":%u,\"num_queues\":%u,\"seconds\":%.3f}\n",
         rc ? "fail" : "ok", d->nqueues, qd,
         fe_has(d, VIRTIO_RING_F_INDIRECT_DESC) ? "true" : "false",
         fe_has(d, VIRTIO_RING_F_EVENT_IDX) ? "true" : "false", d->mem.nregions,
         f->ro ? "true" : "false", completed, f->n[VIRTIO_BLK_T_IN], f->n[VIRTIO_BLK_T_OUT],
         f->n[VIRTIO_BLK_T_FLUSH], f->n[VIRTIO_BLK_T_DISCARD], f->n[VIRTIO_BLK_T_WRITE_ZEROES],
         f->n[VIRTIO_BLK_T_GET_ID], f->get_id_unsupported, f->refused, f->bytes_read,
         f->bytes_written, f->unknown_sectors, d->reconnects, d->closes_checked, d->capacity, d->blk_size, d->seg_max,
         fe_has(d, VIRTIO_BLK_F_MQ) ? d->cfg.num_queues : 1, seconds);
  fflush(stdout);
}

static int run_verify(struct fe_dev *d, const struct fe_verify_opts *v, bool smoke, bool print)
{
  struct fe_io io = { 0 };
  struct fe_verify f = { .v = v, .rng = d->o->seed * 2 + 1, .seed = d->o->seed };
  uint64_t submitted = 0, completed = 0;
  int rc = 1;
  double t0 = fe_now();
  unsigned qd = smoke ? 1 : d->o->qd;
  /* every piece of a request within the device's size_max: no request larger than it */
  uint32_t max_bs = d->size_max && d->size_max < v->max_bs ? d->size_max : v->max_bs;
  max_bs = max_bs / d->blk_size * d->blk_size;
  f.max_bs = max_bs;
  f.ro = fe_has(d, VIRTIO_BLK_F_RO);
  if (max_bs == 0 || (v->expect_ro && !f.ro) || (f.ro && !v->expect_ro && !smoke)) {
    FE_ERR("%s", max_bs == 0 ? "--max-bs is below the block size"
                 : f.ro      ? "the device is read-only (VIRTIO_BLK_F_RO): say --expect-ro"
                             : "--expect-ro, but the device does not offer VIRTIO_BLK_F_RO");
    return 1;
  }
  /* the generations of a very large disk would not fit: verify its first 64 GiB */
  f.sectors = d->capacity < FE_VERIFY_MAX_SECTORS ? d->capacity : FE_VERIFY_MAX_SECTORS;
  f.gen = malloc(f.sectors * sizeof(*f.gen));
  f.tmp = malloc(max_bs);
  if (!f.gen || !f.tmp || io_init(&io, d, qd, max_bs + FE_MAX_DSEG * 64 + 64) < 0)
    goto out;
  /* Unless the disk is known to start zeroed, what is on it is not known until written. */
  for (uint64_t s = 0; s < f.sectors; s++)
    f.gen[s] = d->o->assume_zero ? 0 : FE_GEN_UNKNOWN;
  uint64_t at_reconnect = 0; /* completed when the last reconnect happened */
  unsigned reconnects = 0;
  bool ready = false;
  for (;;) {
    if (d->reconnects != reconnects) {
      reconnects = d->reconnects;
      at_reconnect = completed;
      ready = false; /* the ready file again once a request completed */
    }
    /* --min-reconnects: go on until they happened, then 100 requests more */
    bool more =
        d->reconnects < v->min_reconnects || (v->min_reconnects && completed - at_reconnect < 100);
    uint64_t target = more ? UINT64_MAX : v->requests;
    if (completed >= target)
      break;
    bool added = false;
    for (unsigned q = 0; q < d->nqueues && submitted < target; q++) {
      struct fe_req *r;
      while (submitted < target && (r = free_slot(&io, q))) {
        if (!verify_next(&io, &f, r, smoke))
          break;
        if (io_submit(&io, r) < 0)
          break;
        submitted++;
        added = true;
      }
    }
    if (added)
      io_publish(&io);
    if (io.total_inflight == 0) {
      FE_ERR("nothing could be submitted (every range conflicts?)");
      goto out;
    }
    int n = io_reap(&io, verify_done, &f);
    if (n < 0)
      goto out;
    completed += (uint64_t)n;
    if (!ready && completed > at_reconnect && v->ready_file) {
      FILE *rf = fopen(v->ready_file, "w");
      if (rf)
        fclose(rf);
      ready = true;
    }
  }
  rc = 0;
out:
  if (rc)
    io_drain(&io);
  if (print)
    print_verify_summary(d, &f, rc, qd, completed, fe_now() - t0);
  free(io.reqs);
  free(f.gen);
  free(f.tmp);
  return rc;
}

int fe_verify(struct fe_dev *d, const struct fe_verify_opts *v)
{
  return run_verify(d, v, false, true);
}

int fe_smoke(struct fe_dev *d)
{
  struct fe_verify_opts v = { .requests = 16,
                              .max_bs = 65536,
                              .expect_ro = fe_has(d, VIRTIO_BLK_F_RO) };
  return run_verify(d, &v, true, false);
}

/* ---- benchmark loop ---- */

struct fe_bench {
  const struct fe_bench_opts *b;
  uint64_t rng, cursor, done, errors;
  uint32_t type;
};

/* The backend's CPU time so far (user + system, every thread), in seconds; -1 if unknown. */
static double backend_cpu(int pid)
{
  char path[64], buf[1024];
  if (pid <= 0)
    return -1;
  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  FILE *fp = fopen(path, "r");
  if (!fp)
    return -1;
  size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
  fclose(fp);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  unsigned long long ut, st;
  /* after the name: state(3) ... utime(14) stime(15) */
  if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
    return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int bench_done(struct fe_io *io, struct fe_req *r, uint32_t used_len, void *arg)
{
  struct fe_bench *f = arg;
  (void)io;
  (void)used_len;
  if (*r->status != VIRTIO_BLK_S_OK) {
    FE_ERR("queue %u: %s at sector %" PRIu64 " failed: status %u", r->q, type_name(r->type),
           r->sector, *r->status);
    f->errors++;
    return -1;
  }
  f->done++;
  return 0;
}

static void bench_next(struct fe_io *io, struct fe_bench *f, struct fe_req *r)
{
  uint64_t units = io->d->capacity * 512 / f->b->bs;
  r->type = f->type;
  if (strcmp(f->b->rw, "read") == 0)
    r->sector = (f->cursor++ % units) * (f->b->bs / 512);
  else
    r->sector = fe_rand(&f->rng) % units * (f->b->bs / 512);
  r->len = f->b->bs;
  /* one descriptor, or pieces of the device's size_max */
  uint32_t max = io->d->size_max ? io->d->size_max : r->len;
  r->npieces = 0;
  for (uint32_t at = 0; at < r->len; at += max) {
    r->piece[r->npieces] = r->buf + at;
    r->piece_len[r->npieces++] = r->len - at < max ? r->len - at : max;
  }
}

int fe_bench(struct fe_dev *d, const struct fe_bench_opts *b)
{
  struct fe_io io;
  struct fe_bench f = { .b = b, .rng = d->o->seed * 2 + 1 };
  int rc = 1;
  if (strcmp(b->rw, "randread") == 0 || strcmp(b->rw, "read") == 0)
    f.type = VIRTIO_BLK_T_IN;
  else if (strcmp(b->rw, "randwrite") == 0)
    f.type = VIRTIO_BLK_T_OUT;
  else {
    FE_ERR("--rw %s: randread, randwrite or read", b->rw);
    return 2;
  }
  if (b->bs == 0 || b->bs % d->blk_size || (uint64_t)b->bs > d->capacity * 512) {
    FE_ERR("--bs %u: a multiple of the block size (%u) within the disk", b->bs, d->blk_size);
    return 2;
  }
  uint32_t pieces = d->size_max ? (b->bs + d->size_max - 1) / d->size_max : 1;
  if (io_init(&io, d, d->o->qd, b->bs) < 0)
    return 1;
  if (pieces > io.dseg) {
    FE_ERR("--bs %u needs %u segments of the device's size_max %u; it takes %u", b->bs, pieces,
           d->size_max, io.dseg);
    free(io.reqs);
    return 2;
  }
  for (unsigned i = 0; i < d->nqueues * io.qd; i++)
    for (uint32_t j = 0; j < b->bs; j += 8) {
      uint64_t x = fe_rand(&f.rng);
      memcpy(io.reqs[i].buf + j, &x, 8);
    }
  double cpu0 = backend_cpu(b->backend_pid), t0 = fe_now(), t1 = t0;
  uint64_t submitted = 0;
  bool stop = false;
  for (;;) {
    bool added = false;
    stop = stop || (b->requests ? submitted >= b->requests : fe_now() - t0 >= b->seconds);
    for (unsigned q = 0; q < d->nqueues && !stop; q++) {
      struct fe_req *r;
      while ((!b->requests || submitted < b->requests) && (r = free_slot(&io, q))) {
        bench_next(&io, &f, r);
        if (io_submit(&io, r) < 0)
          break;
        submitted++;
        added = true;
      }
    }
    if (added)
      io_publish(&io);
    if (io.total_inflight == 0)
      break;
    if (io_reap(&io, bench_done, &f) < 0)
      goto out;
  }
  t1 = fe_now();
  rc = 0;
out:
  if (rc)
    io_drain(&io);
  double cpu1 = backend_cpu(b->backend_pid), secs = t1 - t0;
  double cpu = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;
  double gib = (double)f.done * b->bs / (1024.0 * 1024 * 1024);
  printf("{\"mode\":\"bench\",\"result\":\"%s\",\"rw\":\"%s\",\"bs\":%u,\"qd\":%u,\"queues\":%u,"
         "\"requests\":%" PRIu64 ",\"seconds\":%.3f,\"iops\":%.0f,\"mib_s\":%.1f",
         rc ? "fail" : "ok", b->rw, b->bs, io.qd, d->nqueues, f.done, secs,
         secs > 0 ? f.done / secs : 0, secs > 0 ? gib * 1024 / secs : 0);
  if (cpu >= 0)
    printf(",\"backend_cpu_s\":%.3f,\"backend_cpu_us_per_req\":%.2f,\"backend_cpu_s_per_gib\":%.3f",
           cpu, f.done ? cpu * 1e6 / (double)f.done : 0, gib > 0 ? cpu / gib : 0);
  printf("}\n");
  fflush(stdout);
  free(io.reqs);
  return rc;
}
