/* fuzz_vring.c: libFuzzer harness for the virtqueue and virtio-blk parsing
 * (src/virtio/vring.c, virtio_blk.c, inflight.c, memtable.c): the input is a
 * VM's whole memory (its rings, descriptors, buffers and in-flight area) plus
 * the queue's state; every chain is popped until the queue is empty or
 * broken, each returned segment is read and written in full (the regions are
 * separate allocations of their exact size, so ASan sees any byte outside),
 * parsed as a virtio-blk request and completed; then the in-flight area is
 * recovered and its heads reread.
 * Input: byte 0: bit 0 RING_EVENT_IDX, bit 1 INDIRECT_DESC, bits 2-4 queue
 * size log2 (1..128), bit 5 read-only device, bit 6 4096-byte blocks;
 * byte 1: bits 0-5 segment bound - 1, bits 6-7 byte bound (512, 4 KiB,
 * 64 KiB, 1 MiB); bytes 2-3: the first index to pop (little-endian); byte 4:
 * the device's capacity in sectors (0-255, small so that requests reach its
 * end); the rest fills guest memory: region A (guest 0x0, 8 KiB: descriptor table at 0,
 * available ring at 0x800, used ring at 0x1000), region B (guest 0x2000,
 * 8 KiB, adjacent to A in the guest, elsewhere on the host), region C (guest
 * 0x100000, 4 KiB: also the in-flight area). */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "virtio/inflight.h"
#include "virtio/virtio_blk.h"
#include "virtio/vring.h"

#define UADDR_BASE 0x10000000ull

static const struct { uint64_t gpa, size; } layout[3] = {
  { 0x0, 0x2000 }, { 0x2000, 0x2000 }, { 0x100000, 0x1000 },
};
static uint8_t *host[3];

/* Every segment lies inside one region's allocation. */
static void check_iov(const struct iovec *iov, unsigned n)
{
  for (unsigned i = 0; i < n; i++) {
    uintptr_t b = (uintptr_t)iov[i].iov_base;
    int inside = 0;
    FUZZ_CHECK(iov[i].iov_len > 0);
    for (int r = 0; r < 3; r++)
      if (b >= (uintptr_t)host[r] && iov[i].iov_len <= layout[r].size
          && b - (uintptr_t)host[r] <= layout[r].size - iov[i].iov_len)
        inside = 1;
    FUZZ_CHECK(inside);
  }
}

/* Read every byte of the readable segments, write every writable one. */
static void touch(struct iovec *iov, const struct vring_chain *c)
{
  volatile uint8_t sum = 0;
  uint64_t out = 0, in = 0;

  for (unsigned i = 0; i < c->n_out; i++) {
    for (size_t k = 0; k < iov[i].iov_len; k++)
      sum ^= ((uint8_t *)iov[i].iov_base)[k];
    out += iov[i].iov_len;
  }
  for (unsigned i = c->n_out; i < c->n_out + c->n_in; i++) {
    memset(iov[i].iov_base, 0x5a, iov[i].iov_len);
    in += iov[i].iov_len;
  }
  FUZZ_CHECK(out == c->out_bytes && in == c->in_bytes);
  (void)sum;
}

/* A request accepted on p, reaching sector end, is accepted on a device that
 * ends exactly there and refused on one a sector shorter. */
static void check_edge(const struct vblk_params *p, const struct iovec *saved, const struct vring_chain *c,
                       uint64_t end)
{
  struct vblk_params q = *p;
  struct iovec iov[64];
  struct vblk_seg segs[8];
  struct vblk_req r;

  q.capacity = end;
  memcpy(iov, saved, (c->n_out + c->n_in) * sizeof *iov);
  FUZZ_CHECK(vblk_parse(&q, iov, c, segs, 8, &r) == VIRTIO_BLK_S_OK);
  q.capacity = end - 1;
  memcpy(iov, saved, (c->n_out + c->n_in) * sizeof *iov);
  FUZZ_CHECK(vblk_parse(&q, iov, c, segs, 8, &r) == VIRTIO_BLK_S_IOERR);
}

static void serve(struct vring_q *q, const struct vblk_params *p, struct iovec *iov, unsigned max_iov,
                  uint64_t max_bytes, struct vring_chain *c, int rc)
{
  struct iovec saved[64];
  struct vblk_seg segs[8];
  struct vblk_req r;
  uint32_t id_len = 0;
  int st;

  if (rc == -EINVAL) {
    uint8_t *status;
    struct iovec one;
    FUZZ_CHECK(c->head < q->num && c->n_out == 0 && c->n_in == 0);
    status = vring_chain_last_writable(q, c->head);
    if (status) {
      one.iov_base = status;
      one.iov_len = 1;
      check_iov(&one, 1);
      *status = VIRTIO_BLK_S_IOERR;
    }
    vring_push(q, c->head, status ? 1 : 0);
    return;
  }
  FUZZ_CHECK(rc == 1);
  FUZZ_CHECK(c->head < q->num && c->n_out + c->n_in <= max_iov);
  FUZZ_CHECK(c->out_bytes + c->in_bytes <= max_bytes);
  check_iov(iov, c->n_out + c->n_in);
  touch(iov, c);
  memcpy(saved, iov, (c->n_out + c->n_in) * sizeof *iov);
  st = vblk_parse(p, iov, c, segs, 8, &r);
  if (st < 0) {
    FUZZ_CHECK(st == -EINVAL);
    vring_push(q, c->head, 0);
    return;
  }
  FUZZ_CHECK(st == VIRTIO_BLK_S_OK || st == VIRTIO_BLK_S_IOERR || st == VIRTIO_BLK_S_UNSUPP);
  check_iov(r.data, r.ndata);
  if (st == VIRTIO_BLK_S_OK) {
    if (r.type == VIRTIO_BLK_T_IN || r.type == VIRTIO_BLK_T_OUT) {
      uint64_t len = 0;
      for (unsigned i = 0; i < r.ndata; i++)
        len += r.data[i].iov_len;
      FUZZ_CHECK(len == r.len && r.len % 512 == 0 && r.len > 0);
      FUZZ_CHECK(r.sector <= p->capacity && r.len / 512 <= p->capacity - r.sector);
      FUZZ_CHECK(r.type == VIRTIO_BLK_T_IN || !p->read_only);
      check_edge(p, saved, c, r.sector + r.len / 512);
    }
    if (r.type == VIRTIO_BLK_T_DISCARD || r.type == VIRTIO_BLK_T_WRITE_ZEROES) {
      FUZZ_CHECK(r.nseg >= 1 && r.nseg <= 8);
      uint64_t end = 0;
      for (unsigned i = 0; i < r.nseg; i++) {
        FUZZ_CHECK(segs[i].num_sectors > 0 && segs[i].sector <= p->capacity
                   && segs[i].num_sectors <= p->capacity - segs[i].sector);
        if (segs[i].sector + segs[i].num_sectors > end)
          end = segs[i].sector + segs[i].num_sectors;
      }
      check_edge(p, saved, c, end);
    }
    if (r.type == VIRTIO_BLK_T_GET_ID)
      id_len = vblk_fill_id(&r, p->serial);
  }
  vblk_set_status(&r, (uint8_t)st);
  vring_push(q, c->head, vblk_used_len(&r, (uint8_t)st, id_len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct memtable mt;
  struct vring_q q;
  struct vring_chain c;
  struct iovec iov[64];
  struct inflight_q iq;
  struct inflight_entry heads[128];
  struct vblk_params p = {
    .capacity = 64, .blk_size = 512, .seg_max = 62, .num_queues = 1, .flush = true, .discard = true,
    .write_zeroes = true, .max_discard_sectors = 32, .max_discard_seg = 4, .max_write_zeroes_sectors = 32,
    .max_write_zeroes_seg = 4, .serial = "fuzz",
  };
  static const uint64_t byte_bounds[4] = { 512, 4096, 65536, 1 << 20 };
  uint64_t features = 0, max_bytes;
  unsigned num, max_iov, n;
  uint16_t base;
  size_t off = 5;
  int rc;

  if (size < 5)
    return 0;
  features |= (data[0] & 1) ? VU_BIT(VIRTIO_RING_F_EVENT_IDX) : 0;
  features |= (data[0] & 2) ? VU_BIT(VIRTIO_RING_F_INDIRECT_DESC) : 0;
  num = 1u << ((data[0] >> 2) & 7);
  p.read_only = data[0] & 0x20;
  p.blk_size = (data[0] & 0x40) ? 4096 : 512;
  max_iov = (data[1] & 63) + 1;
  max_bytes = byte_bounds[data[1] >> 6];
  base = (uint16_t)(data[2] | data[3] << 8);
  p.capacity = data[4];

  memtable_init(&mt);
  for (int r = 0; r < 3; r++) {
    struct vu_mem_region d = { layout[r].gpa, layout[r].size, UADDR_BASE + layout[r].gpa, 0 };
    size_t k = size > off ? size - off : 0;
    host[r] = calloc(1, layout[r].size);
    FUZZ_CHECK(host[r] != NULL);
    if (k > layout[r].size)
      k = layout[r].size;
    memcpy(host[r], data + off, k);
    off += k;
    FUZZ_CHECK(memtable_add(&mt, &d, host[r], host[r], layout[r].size, NULL, 0) == 0);
  }

  rc = vring_setup(&q, &mt, num, UADDR_BASE + 0x0, UADDR_BASE + 0x800, UADDR_BASE + 0x1000, features, base);
  FUZZ_CHECK(rc == 0);
  for (unsigned i = 0; i < 3 * num + 8; i++) {
    rc = vring_pop(&q, iov, max_iov, max_bytes, &c);
    if (rc == 0 || rc == -EIO) {
      FUZZ_CHECK(rc == 0 || q.broken);
      break;
    }
    serve(&q, &p, iov, max_iov, max_bytes, &c, rc);
    vring_need_notify(&q);
  }
  vring_kick_enable(&q);
  vring_kick_disable(&q);

  /* Region C doubles as the in-flight area, hostile contents included. */
  if (inflight_attach(&iq, host[2], layout[2].size, 1, (uint16_t)num, 0, num) == 0) {
    n = inflight_recover(&iq, q.used_idx, num, heads, 128);
    FUZZ_CHECK(n <= num);
    for (unsigned i = 0; i < n; i++) {
      FUZZ_CHECK(heads[i].head < num);
      FUZZ_CHECK(i == 0 || heads[i - 1].counter <= heads[i].counter);
      rc = vring_chain_at(&q, heads[i].head, iov, max_iov, max_bytes, &c);
      if (rc == 1) {
        check_iov(iov, c.n_out + c.n_in);
        touch(iov, &c);
      }
      FUZZ_CHECK(rc == 1 || rc == -EINVAL || rc == -EIO);
    }
    if (n < num) {
      FUZZ_CHECK(inflight_mark(&iq, 0) == 0);
      FUZZ_CHECK(inflight_put_begin(&iq, 0) == 0 && inflight_put_end(&iq, 0, q.used_idx) == 0);
    }
  }
  for (int r = 0; r < 3; r++)
    free(host[r]);
  return 0;
}
