/* test_virtio_blk.c: virtio-blk request parsing (src/virtio/virtio_blk.c) on
 * chains popped from a fake VM's queue: IN, OUT, FLUSH, GET_ID, DISCARD,
 * WRITE_ZEROES, headers split across descriptors, each malformed request and
 * its status, the features and the configuration space. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tap.h"
#include "virtio/virtio_blk.h"
#include "virtio_guest.h"

static struct guest g;
static struct iovec iov[64];
static struct vblk_seg segs[8];
static struct vblk_params dev = {
  .capacity = 2048, .blk_size = 512, .seg_max = 62, .num_queues = 2, .flush = true,
  .discard = true, .write_zeroes = true, .write_zeroes_may_unmap = true,
  .max_discard_sectors = 1024, .max_discard_seg = 4, .max_write_zeroes_sectors = 1024,
  .max_write_zeroes_seg = 4, .serial = "serial-1",
};

struct buf {
  uint64_t gpa;
  uint32_t len;
  bool writable;
};

/* Write a request header at guest gpa. */
static void put_hdr(uint64_t gpa, uint32_t type, uint64_t sector)
{
  struct virtio_blk_outhdr h = { htole32(type), 0, htole64(sector) };
  memcpy(g_host(&g, gpa), &h, sizeof h);
}

static void put_seg(uint64_t gpa, uint64_t sector, uint32_t num, uint32_t flags)
{
  struct virtio_blk_discard_write_zeroes w = { htole64(sector), htole32(num), htole32(flags) };
  memcpy(g_host(&g, gpa), &w, sizeof w);
}

/* Offer the chain b[0..n) at descriptor 0, pop it and parse it. */
static int submit(const struct vblk_params *p, const struct buf *b, unsigned n, struct vblk_req *r)
{
  struct vring_chain c;

  for (unsigned i = 0; i < n; i++)
    g_set_desc(g_desc(&g, 0), i, b[i].gpa, b[i].len,
               (uint16_t)((b[i].writable ? VRING_DESC_F_WRITE : 0) | (i + 1 < n ? VRING_DESC_F_NEXT : 0)),
               (uint16_t)(i + 1));
  g_offer(&g, 0);
  if (vring_pop(&g.q, iov, 64, 1 << 20, &c) != 1)
    return -1000;
  return vblk_parse(p, iov, &c, segs, 8, r);
}

static void test_io(void)
{
  struct vblk_req r;
  int rc;

  put_hdr(0x10000, VIRTIO_BLK_T_IN, 8);
  rc = submit(&dev, (struct buf[]){ { 0x10000, 16, 0 }, { 0x20000, 4096, 1 }, { 0x30000, 1, 1 } }, 3, &r);
  ok(rc == VIRTIO_BLK_S_OK && r.type == VIRTIO_BLK_T_IN && r.sector == 8 && r.ndata == 1 && r.len == 4096
     && r.data[0].iov_base == g_host(&g, 0x20000) && r.status == g_host(&g, 0x30000),
     "IN: header, one data segment, status byte in its own descriptor");
  vblk_set_status(&r, VIRTIO_BLK_S_OK);
  ok(*(uint8_t *)g_host(&g, 0x30000) == 0 && vblk_used_len(&r, 0, 0) == 4097, "IN used length: data + status");
  ok(vblk_used_len(&r, VIRTIO_BLK_S_IOERR, 0) == 1, "a failed IN used length: the status byte");

  rc = submit(&dev, (struct buf[]){ { 0x10000, 16, 0 }, { G_REGION - 512, 1025, 1 } }, 2, &r);
  ok(rc == VIRTIO_BLK_S_OK && r.len == 1024 && r.ndata == 2 && r.data[1].iov_len == 512
     && r.status == (uint8_t *)g_host(&g, G_REGION + 512),
     "IN: data and status in one descriptor split across regions");

  put_hdr(0x10000, VIRTIO_BLK_T_OUT, 16);
  rc = submit(&dev, (struct buf[]){ { 0x10000, 16 + 1024, 0 }, { 0x30000, 1, 1 } }, 2, &r);
  ok(rc == VIRTIO_BLK_S_OK && r.type == VIRTIO_BLK_T_OUT && r.sector == 16 && r.ndata == 1 && r.len == 1024
     && r.data[0].iov_base == g_host(&g, 0x10010) && r.data[0].iov_len == 1024,
     "OUT: data following the header in the same descriptor");
  ok(vblk_used_len(&r, 0, 0) == 1, "OUT used length: the status byte");

  /* The header split 5 + 11 over two descriptors. */
  put_hdr(0x11000, VIRTIO_BLK_T_OUT, 0x123);
  memmove(g_host(&g, 0x12000), g_host(&g, 0x11005), 11);
  rc = submit(&dev, (struct buf[]){ { 0x11000, 5, 0 }, { 0x12000, 11, 0 }, { 0x13000, 512, 0 }, { 0x30000, 1, 1 } },
              4, &r);
  ok(rc == VIRTIO_BLK_S_OK && r.sector == 0x123 && r.ndata == 1 && r.len == 512
     && r.data[0].iov_base == g_host(&g, 0x13000), "a header spanning two descriptors is copied out");

  put_hdr(0x10000, VIRTIO_BLK_T_FLUSH, 0);
  rc = submit(&dev, (struct buf[]){ { 0x10000, 16, 0 }, { 0x30000, 1, 1 } }, 2, &r);
  ok(rc == VIRTIO_BLK_S_OK && r.type == VIRTIO_BLK_T_FLUSH, "FLUSH");
  {
    struct vblk_params p = dev;
    p.flush = false;
    rc = submit(&p, (struct buf[]){ { 0x10000, 16, 0 }, { 0x30000, 1, 1 } }, 2, &r);
    ok(rc == VIRTIO_BLK_S_UNSUPP, "FLUSH without the feature: UNSUPP");
  }

  put_hdr(0x10000, VIRTIO_BLK_T_GET_ID, 0);
  memset(g_host(&g, 0x20000), 0xff, 32);
  rc = submit(&dev, (struct buf[]){ { 0x10000, 16, 0 }, { 0x20000, 20, 1 }, { 0x30000, 1, 1 } }, 3, &r);
  ok(rc == VIRTIO_BLK_S_OK && r.type == VIRTIO_BLK_T_GET_ID && r.len == 20, "GET_ID");
  {
    uint32_t n = vblk_fill_id(&r, dev.serial);
    uint8_t want[20] = "serial-1";
    ok(n == 20 && !memcmp(g_host(&g, 0x20000), want, 20) && *(uint8_t *)g_host(&g, 0x20014) == 0xff,
       "GET_ID writes the serial zero-padded to 20 bytes, nothing past");
    ok(vblk_used_len(&r, 0, n) == 21, "GET_ID used length 21");
  }
  rc = submit(&dev, (struct buf[]){ { 0x10000, 16, 0 }, { 0x20000, 8, 1 }, { 0x30000, 1, 1 } }, 3, &r);
  ok(rc == VIRTIO_BLK_S_OK && vblk_fill_id(&r, "a-serial-longer-than-twenty") == 8
     && !memcmp(g_host(&g, 0x20000), "a-serial", 8), "GET_ID into 8 bytes writes 8");
}

static void test_segments(void)
{
  struct vblk_req r;
  int rc;

  put_hdr(0x10000, VIRTIO_BLK_T_DISCARD, 0);
  put_seg(0x10010, 0, 8, 0);
  put_seg(0x10020, 1000, 24, 0);
  rc = submit(&dev, (struct buf[]){ { 0x10000, 48, 0 }, { 0x30000, 1, 1 } }, 2, &r);
  ok(rc == VIRTIO_BLK_S_OK && r.type == VIRTIO_BLK_T_DISCARD && r.nseg == 2 && segs[0].sector == 0
     && segs[0].num_sectors == 8 && segs[1].sector == 1000 && segs[1].num_sectors == 24,
     "DISCARD with 2 segments");
  /* Segments spanning descriptors: header + 8 bytes, then the other 8. */
  memmove(g_host(&g, 0x14000), g_host(&g, 0x10018), 24);
  rc = submit(&dev, (struct buf[]){ { 0x10000, 24, 0 }, { 0x14000, 24, 0 }, { 0x30000, 1, 1 } }, 3, &r);
  ok(rc == VIRTIO_BLK_S_OK && r.nseg == 2 && segs[1].sector == 1000, "DISCARD segments split across descriptors");
  put_seg(0x10010, 0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
  rc = submit(&dev, (struct buf[]){ { 0x10000, 32, 0 }, { 0x30000, 1, 1 } }, 2, &r);
  ok(rc == VIRTIO_BLK_S_UNSUPP, "DISCARD with the unmap flag: UNSUPP");
  put_seg(0x10010, 2040, 16, 0);
  rc = submit(&dev, (struct buf[]){ { 0x10000, 32, 0 }, { 0x30000, 1, 1 } }, 2, &r);
  ok(rc == VIRTIO_BLK_S_IOERR, "DISCARD past the capacity: IOERR");
  put_seg(0x10010, UINT64_MAX - 3, 8, 0);
  rc = submit(&dev, (struct buf[]){ { 0x10000, 32, 0 }, { 0x30000, 1, 1 } }, 2, &r);
  ok(rc == VIRTIO_BLK_S_IOERR, "DISCARD whose end wraps: IOERR");
  put_seg(0x10010, 0, 1025, 0);
  rc = submit(&dev, (struct buf[]){ { 0x10000, 32, 0 }, { 0x30000, 1, 1 } }, 2, &r);
  ok(rc == VIRTIO_BLK_S_IOERR, "DISCARD over max_discard_sectors: IOERR");
  put_seg(0x10010, 0, 0, 0);
  rc = submit(&dev, (struct buf[]){ { 0x10000, 32, 0 }, { 0x30000, 1, 1 } }, 2, &r);
  ok(rc == VIRTIO_BLK_S_IOERR, "DISCARD of 0 sectors: IOERR");
  for (unsigned i = 0; i < 5; i++)
    put_seg(0x10010 + 16 * i, 8 * i, 8, 0);
  rc = submit(&dev, (struct buf[]){ { 0x10000, 16 + 5 * 16, 0 }, { 0x30000, 1, 1 } }, 2, &r);
  ok(rc == VIRTIO_BLK_S_IOERR, "DISCARD with 5 segments, max 4: IOERR");
  rc = submit(&dev, (struct buf[]){ { 0x10000, 16 + 20, 0 }, { 0x30000, 1, 1 } }, 2, &r);
  ok(rc == VIRTIO_BLK_S_IOERR, "DISCARD with 20 bytes of segments: IOERR");
  rc = submit(&dev, (struct buf[]){ { 0x10000, 16, 0 }, { 0x30000, 1, 1 } }, 2, &r);
  ok(rc == VIRTIO_BLK_S_IOERR, "DISCARD without segments: IOERR");
  {
    struct vblk_params p = dev;
    p.discard = false;
    rc = submit(&p, (struct buf[]){ { 0x10000, 32, 0 }, { 0x30000, 1, 1 } }, 2, &r);
    ok(rc == VIRTIO_BLK_S_UNSUPP, "DISCARD without the feature: UNSUPP");
    p = dev;
    p.read_only = true;
    rc = submit(&p, (struct buf[]){ { 0x10000, 32, 0 }, { 0x30000, 1, 1 } }, 2, &r);
    ok(rc == VIRTIO_BLK_S_IOERR, "DISCARD on a read-only device: IOERR");
  }

  put_hdr(0x10000, VIRTIO_BLK_T_WRITE_ZEROES, 0);
  put_seg(0x10010, 64, 64, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
  rc = submit(&dev, (struct buf[]){ { 0x10000, 32, 0 }, { 0x30000, 1, 1 } }, 2, &r);
  ok(rc == VIRTIO_BLK_S_OK && r.nseg == 1 && segs[0].sector == 64 && segs[0].num_sectors == 64
     && segs[0].flags == VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP, "WRITE_ZEROES with UNMAP");
  put_seg(0x10010, 64, 64, 2);
  rc = submit(&dev, (struct buf[]){ { 0x10000, 32, 0 }, { 0x30000, 1, 1 } }, 2, &r);
  ok(rc == VIRTIO_BLK_S_UNSUPP, "WRITE_ZEROES with an unknown flag: UNSUPP");
}

static void test_malformed(void)
{
  struct vblk_req r;
  int rc;

  put_hdr(0x10000, VIRTIO_BLK_T_IN, 0);
  rc = submit(&dev, (struct buf[]){ { 0x10000, 16, 0 }, { 0x20000, 512, 0 } }, 2, &r);
  ok(rc == -EINVAL, "no writable byte: nothing to answer (-EINVAL)");
  *(uint8_t *)g_host(&g, 0x30000) = 0xee;
  rc = submit(&dev, (struct buf[]){ { 0x10000, 8, 0 }, { 0x30000, 1, 1 } }, 2, &r);
  ok(rc == VIRTIO_BLK_S_IOERR && r.status == g_host(&g, 0x30000), "a header of 8 bytes: IOERR, status known");
  rc = submit(&dev, (struct buf[]){ { 0x10000, 16, 0 }, { 0x20000, 100, 1 }, { 0x30000, 1, 1 } }, 3, &r);
  ok(rc == VIRTIO_BLK_S_IOERR, "IN of 100 bytes: IOERR");
  rc = submit(&dev, (struct buf[]){ { 0x10000, 16, 0 }, { 0x30000, 1, 1 } }, 2, &r);
  ok(rc == VIRTIO_BLK_S_IOERR, "IN without data: IOERR");
  put_hdr(0x10000, VIRTIO_BLK_T_IN, 2047);
  rc = submit(&dev, (struct buf[]){ { 0x10000, 16, 0 }, { 0x20000, 1024, 1 }, { 0x30000, 1, 1 } }, 3, &r);
  ok(rc == VIRTIO_BLK_S_IOERR, "IN past the capacity: IOERR");
  put_hdr(0x10000, VIRTIO_BLK_T_IN, 2046);
  rc = submit(&dev, (struct buf[]){ { 0x10000, 16, 0 }, { 0x20000, 1024, 1 }, { 0x30000, 1, 1 } }, 3, &r);
  ok(rc == VIRTIO_BLK_S_OK, "IN of the last two sectors: OK");
  put_hdr(0x10000, VIRTIO_BLK_T_IN, UINT64_MAX);
  rc = submit(&dev, (struct buf[]){ { 0x10000, 16, 0 }, { 0x20000, 512, 1 }, { 0x30000, 1, 1 } }, 3, &r);
  ok(rc == VIRTIO_BLK_S_IOERR, "IN at sector 2^64-1: IOERR");
  put_hdr(0x10000, VIRTIO_BLK_T_OUT, 0);
  {
    struct vblk_params p = dev;
    p.read_only = true;
    rc = submit(&p, (struct buf[]){ { 0x10000, 16 + 512, 0 }, { 0x30000, 1, 1 } }, 2, &r);
    ok(rc == VIRTIO_BLK_S_IOERR, "OUT on a read-only device: IOERR");
    p = dev;
    p.blk_size = 4096;
    put_hdr(0x10000, VIRTIO_BLK_T_OUT, 1);
    rc = submit(&p, (struct buf[]){ { 0x10000, 16 + 4096, 0 }, { 0x30000, 1, 1 } }, 2, &r);
    ok(rc == VIRTIO_BLK_S_IOERR, "OUT at sector 1 with 4096-byte blocks: IOERR");
    put_hdr(0x10000, VIRTIO_BLK_T_OUT, 8);
    rc = submit(&p, (struct buf[]){ { 0x10000, 16 + 512, 0 }, { 0x30000, 1, 1 } }, 2, &r);
    ok(rc == VIRTIO_BLK_S_IOERR, "OUT of 512 bytes with 4096-byte blocks: IOERR");
    rc = submit(&p, (struct buf[]){ { 0x10000, 16 + 4096, 0 }, { 0x30000, 1, 1 } }, 2, &r);
    ok(rc == VIRTIO_BLK_S_OK, "OUT of 4096 bytes at sector 8 with 4096-byte blocks: OK");
  }
  put_hdr(0x10000, 99, 0);
  rc = submit(&dev, (struct buf[]){ { 0x10000, 16, 0 }, { 0x30000, 1, 1 } }, 2, &r);
  ok(rc == VIRTIO_BLK_S_UNSUPP, "type 99: UNSUPP");
  put_hdr(0x10000, VIRTIO_BLK_T_SCSI_CMD, 0);
  rc = submit(&dev, (struct buf[]){ { 0x10000, 16, 0 }, { 0x30000, 1, 1 } }, 2, &r);
  ok(rc == VIRTIO_BLK_S_UNSUPP, "SCSI_CMD: UNSUPP");
}

static void test_config(void)
{
  struct virtio_blk_config cfg;
  uint64_t f = vblk_features(&dev);
  struct vblk_params p = dev;

  ok((f & VU_BIT(VIRTIO_F_VERSION_1)) && (f & VU_BIT(VIRTIO_RING_F_EVENT_IDX)) && (f & VU_BIT(VIRTIO_RING_F_INDIRECT_DESC))
     && (f & VU_BIT(VIRTIO_BLK_F_FLUSH)) && (f & VU_BIT(VIRTIO_BLK_F_DISCARD)) && (f & VU_BIT(VIRTIO_BLK_F_WRITE_ZEROES))
     && (f & VU_BIT(VIRTIO_BLK_F_MQ)) && !(f & VU_BIT(VIRTIO_BLK_F_RO)), "features of a writable device");
  p.read_only = true;
  f = vblk_features(&p);
  ok((f & VU_BIT(VIRTIO_BLK_F_RO)) && !(f & VU_BIT(VIRTIO_BLK_F_DISCARD)) && !(f & VU_BIT(VIRTIO_BLK_F_WRITE_ZEROES)),
     "a read-only device offers RO, no discard or write zeroes");
  vblk_config_fill(&dev, &cfg);
  ok(le64toh(cfg.capacity) == 2048 && le32toh(cfg.blk_size) == 512 && le32toh(cfg.seg_max) == 62
     && le16toh(cfg.num_queues) == 2 && le32toh(cfg.max_discard_sectors) == 1024 && le32toh(cfg.max_discard_seg) == 4
     && le32toh(cfg.max_write_zeroes_sectors) == 1024 && le32toh(cfg.max_write_zeroes_seg) == 4
     && cfg.write_zeroes_may_unmap == 1 && le32toh(cfg.discard_sector_alignment) == 1 && cfg.wce == 1,
     "config space from the parameters");
}

int main(void)
{
  guest_init(&g, 8, VU_BIT(VIRTIO_RING_F_EVENT_IDX) | VU_BIT(VIRTIO_RING_F_INDIRECT_DESC));
  test_io();
  test_segments();
  test_malformed();
  test_config();
  ok(!g.q.broken, "the queue never broke");
  guest_free(&g);
  return tap_done();
}
