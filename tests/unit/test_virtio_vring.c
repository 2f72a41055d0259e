/* test_virtio_vring.c: the memory table (src/virtio/memtable.c) and the split
 * virtqueue (src/virtio/vring.c) on a fake VM's memory: normal and indirect
 * chains, splitting at region boundaries, every rejection (the chain fails or
 * the queue breaks), used ring contents, and the notification decisions with
 * and without RING_EVENT_IDX. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tap.h"
#include "virtio_guest.h"

#define FEAT_ALL (VU_BIT(VIRTIO_RING_F_EVENT_IDX) | VU_BIT(VIRTIO_RING_F_INDIRECT_DESC) | VU_BIT(VIRTIO_F_VERSION_1))

static struct iovec iov[64];

static void test_memtable(void)
{
  struct memtable mt;
  struct mt_region out;
  static uint8_t buf[0x2000];
  uint64_t contig;
  char err[160];
  struct vu_mem_region r = { 0x1000, 0x2000, 0x500000, 0 };

  memtable_init(&mt);
  ok(memtable_add(&mt, &r, buf, buf, sizeof buf, err, sizeof err) == 0, "a region is added");
  r = (struct vu_mem_region){ 0x2000, 0x1000, 0x600000, 0 };
  ok(memtable_check(&mt, &r, err, sizeof err) == -EEXIST, "an overlapping region is refused: %s", err);
  r = (struct vu_mem_region){ 0x3000, 0, 0x600000, 0 };
  ok(memtable_check(&mt, &r, err, sizeof err) == -EINVAL, "a region of size 0 is refused: %s", err);
  r = (struct vu_mem_region){ UINT64_MAX - 0xfff, 0x2000, 0x600000, 0 };
  ok(memtable_check(&mt, &r, err, sizeof err) == -EINVAL, "a guest range that wraps is refused: %s", err);
  r = (struct vu_mem_region){ 0x10000, 0x1000, UINT64_MAX - 10, 0 };
  ok(memtable_check(&mt, &r, err, sizeof err) == -EINVAL, "a user range that wraps is refused");
  r = (struct vu_mem_region){ 0x10000, 0x1000, 0, UINT64_MAX - 10 };
  ok(memtable_check(&mt, &r, err, sizeof err) == -EINVAL, "an mmap offset that wraps is refused");
  ok(memtable_gpa(&mt, 0x1000, &contig) == (void *)buf && contig == 0x2000, "gpa of the first byte, whole region contiguous");
  ok(memtable_gpa(&mt, 0x2ffe, &contig) == (void *)(buf + 0x1ffe) && contig == 2, "gpa near the end: 2 bytes contiguous");
  ok(memtable_gpa(&mt, 0x3000, &contig) == NULL && contig == 0, "gpa one past the end is not mapped");
  ok(memtable_gpa(&mt, 0xfff, &contig) == NULL, "gpa one before the start is not mapped");
  ok(memtable_gpa_range(&mt, 0x2000, 0x1000) != NULL && memtable_gpa_range(&mt, 0x2000, 0x1001) == NULL,
     "a range is translated only when it fits the region");
  ok(memtable_gpa_range(&mt, 0x2000, 0) == NULL, "a range of length 0 is refused");
  ok(memtable_uaddr_range(&mt, 0x500010, 16) == (void *)(buf + 16), "user address translated");
  ok(memtable_uaddr_range(&mt, 0x501ff0, 0x20) == NULL, "user range past the region refused");
  r = (struct vu_mem_region){ 0x1000, 0x2000, 0x500000, 12345 };
  ok(memtable_remove(&mt, &r, &out) == 0 && out.host == buf && mt.n == 0,
     "REM_MEM_REG removes by guest address, user address and size");
  ok(memtable_remove(&mt, &r, &out) == -ENOENT, "removing it again: -ENOENT");
  for (unsigned i = 0; i < VU_MEM_SLOTS_MAX; i++) {
    r = (struct vu_mem_region){ 0x1000 * (uint64_t)i, 0x1000, 0, 0 };
    memtable_add(&mt, &r, buf, NULL, 0, NULL, 0);
  }
  r = (struct vu_mem_region){ 0x1000000, 0x1000, 0, 0 };
  ok(mt.n == VU_MEM_SLOTS_MAX && memtable_check(&mt, &r, err, sizeof err) == -ENOSPC,
     "a full table refuses one more region: %s", err);
}

static void test_setup(void)
{
  struct guest g;

  ok(guest_init(&g, 8, FEAT_ALL) == 0, "a queue of 8 is set up: %s", g.q.why);
  ok(vring_setup(&g.q, &g.mt, 6, G_UADDR + G_DESC, G_UADDR + G_AVAIL, G_UADDR + G_USED, 0, 0) == -EINVAL,
     "queue size 6 is refused: %s", g.q.why);
  ok(vring_setup(&g.q, &g.mt, 65536, G_UADDR + G_DESC, G_UADDR + G_AVAIL, G_UADDR + G_USED, 0, 0) == -EINVAL,
     "queue size 65536 is refused");
  ok(vring_setup(&g.q, &g.mt, 8, G_UADDR + G_DESC + 8, G_UADDR + G_AVAIL, G_UADDR + G_USED, 0, 0) == -EINVAL,
     "a misaligned descriptor table is refused: %s", g.q.why);
  ok(vring_setup(&g.q, &g.mt, 8, G_UADDR + G_DESC, G_UADDR + G_AVAIL, G_UADDR + G_USED + 2, 0, 0) == -EINVAL,
     "a misaligned used ring is refused: %s", g.q.why);
  ok(vring_setup(&g.q, &g.mt, 8, G_UADDR + G_REGION - 64, G_UADDR + G_AVAIL, G_UADDR + G_USED, 0, 0) == -EINVAL,
     "a descriptor table across a region boundary is refused: %s", g.q.why);
  ok(vring_setup(&g.q, &g.mt, 8, 0x1000, G_UADDR + G_AVAIL, G_UADDR + G_USED, 0, 0) == -EINVAL,
     "a descriptor table outside the user addresses is refused");
  {
    struct memtable mt2;
    struct vu_mem_region a = { 0, G_REGION, G_UADDR, 0 };
    uint8_t *copy = calloc(1, G_REGION);
    memtable_init(&mt2);
    memtable_add(&mt2, &a, copy, copy, G_REGION, NULL, 0);
    vring_setup(&g.q, &g.mt, 8, G_UADDR + G_DESC, G_UADDR + G_AVAIL, G_UADDR + G_USED, 0, 0);
    ok(vring_remap(&g.q, &mt2) == 0 && (uint8_t *)g.q.desc == copy + G_DESC && g.q.mt == &mt2,
       "after a table change the rings are found at their new host address");
    memtable_remove(&mt2, &a, NULL);
    ok(vring_remap(&g.q, &mt2) == -EIO && g.q.broken && strstr(g.q.why, "descriptor table"),
       "rings no longer mapped break the queue: %s", g.q.why);
    vring_push(&g.q, 0, 0);
    ok(!vring_need_notify(&g.q) && !vring_kick_enable(&g.q), "a queue without rings pushes and notifies nothing");
    free(copy);
  }
  g_used(&g)->idx = htole16(5);
  ok(vring_setup(&g.q, &g.mt, 8, G_UADDR + G_DESC, G_UADDR + G_AVAIL, G_UADDR + G_USED, 0, 3) == 0
     && g.q.used_idx == 5 && vring_base(&g.q) == 3, "setup reads the used index and takes the base");
  vring_rewind_to_used(&g.q);
  ok(vring_base(&g.q) == 5, "rewinding to the used index");
  guest_free(&g);
}

static void test_chains(void)
{
  struct guest g;
  struct vring_chain c;
  struct vring_desc *ind;

  guest_init(&g, 8, FEAT_ALL);
  ok(vring_pop(&g.q, iov, 64, 1 << 20, &c) == 0, "an empty queue pops nothing");

  /* header (readable) -> data across the region boundary (writable) -> status. */
  g_set_desc(g_desc(&g, 0), 0, 0x10000, 16, VRING_DESC_F_NEXT, 1);
  g_set_desc(g_desc(&g, 0), 1, G_REGION - 0x100, 0x1000, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
  g_set_desc(g_desc(&g, 0), 2, 0x30000, 1, VRING_DESC_F_WRITE, 0);
  g_offer(&g, 0);
  ok(vring_avail_count(&g.q) == 1, "one chain available");
  ok(vring_pop(&g.q, iov, 64, 1 << 20, &c) == 1, "a direct chain pops");
  ok(c.head == 0 && c.n_out == 1 && c.n_in == 3 && c.out_bytes == 16 && c.in_bytes == 0x1001,
     "readable 1 segment 16 bytes, writable 3 segments 0x1001 bytes (head %u, %u/%u, %llu/%llu)",
     c.head, c.n_out, c.n_in, (unsigned long long)c.out_bytes, (unsigned long long)c.in_bytes);
  ok(iov[0].iov_base == g_host(&g, 0x10000) && iov[0].iov_len == 16, "the header segment is in host memory");
  ok(iov[1].iov_base == g_host(&g, G_REGION - 0x100) && iov[1].iov_len == 0x100
     && iov[2].iov_base == g_host(&g, G_REGION) && iov[2].iov_len == 0xf00,
     "the data buffer is split at the region boundary into two host pieces");
  ok(iov[3].iov_base == g_host(&g, 0x30000) && iov[3].iov_len == 1, "the status byte last");
  ok(vring_pop(&g.q, iov, 64, 1 << 20, &c) == 0, "then nothing more");

  /* A zero-length descriptor takes no segment. */
  g_set_desc(g_desc(&g, 0), 3, 0x10000, 0, VRING_DESC_F_NEXT, 4);
  g_set_desc(g_desc(&g, 0), 4, 0x11000, 8, 0, 0);
  g_offer(&g, 3);
  ok(vring_pop(&g.q, iov, 64, 1 << 20, &c) == 1 && c.n_out == 1 && c.out_bytes == 8,
     "a zero-length descriptor takes no segment");

  /* Indirect: head 5 points at a 3-entry table at guest 0x40000. */
  ind = g_host(&g, 0x40000);
  g_set_desc(ind, 0, 0x10000, 16, VRING_DESC_F_NEXT, 1);
  g_set_desc(ind, 1, 0x50000, 512, VRING_DESC_F_NEXT, 2);
  g_set_desc(ind, 2, 0x60000, 1, VRING_DESC_F_WRITE, 0);
  g_set_desc(g_desc(&g, 0), 5, 0x40000, 3 * 16, VRING_DESC_F_INDIRECT, 0);
  g_offer(&g, 5);
  ok(vring_pop(&g.q, iov, 64, 1 << 20, &c) == 1, "an indirect chain pops: %s", g.q.why);
  ok(c.head == 5 && c.n_out == 2 && c.n_in == 1 && c.out_bytes == 528 && c.in_bytes == 1,
     "its readable and writable parts come from the indirect table");
  ok(iov[1].iov_base == g_host(&g, 0x50000) && iov[2].iov_base == g_host(&g, 0x60000), "indirect buffers in host memory");

  /* Used ring contents. */
  vring_push(&g.q, 5, 1);
  vring_push(&g.q, 0, 0x1001);
  ok(le16toh(g_used(&g)->idx) == 2 && le32toh(g_used(&g)->ring[0].id) == 5 && le32toh(g_used(&g)->ring[0].len) == 1
     && le32toh(g_used(&g)->ring[1].id) == 0 && le32toh(g_used(&g)->ring[1].len) == 0x1001,
     "the used ring holds {5, 1} then {0, 0x1001}, index 2");
  ok(!g.q.broken, "the queue is not broken");
  guest_free(&g);
}

/* Offer a chain built by build(), pop it, expect -EINVAL with `why` in the
 * reason, and the queue still usable. */
static void expect_bad(struct guest *g, uint16_t head, unsigned max_iov, uint64_t max_bytes,
                       const char *what, const char *why)
{
  struct vring_chain c;
  int rc;

  g_offer(g, head);
  rc = vring_pop(&g->q, iov, max_iov, max_bytes, &c);
  ok(rc == -EINVAL && c.head == head && strstr(g->q.why, why) && !g->q.broken,
     "%s fails the chain, not the queue: %s", what, g->q.why);
}

static void test_rejections(void)
{
  struct guest g;
  struct vring_chain c;
  struct vring_desc *ind;

  guest_init(&g, 8, FEAT_ALL);
  g_set_desc(g_desc(&g, 0), 0, 0x100000, 16, 0, 0);
  expect_bad(&g, 0, 64, 1 << 20, "a buffer past guest memory", "outside the VM's memory");
  g_set_desc(g_desc(&g, 0), 0, G_REGION * 2 - 8, 16, 0, 0);
  expect_bad(&g, 0, 64, 1 << 20, "a buffer running off the last region", "outside");
  g_set_desc(g_desc(&g, 0), 0, UINT64_MAX - 7, 16, 0, 0);
  expect_bad(&g, 0, 64, 1 << 20, "a buffer whose address wraps", "outside");
  g_set_desc(g_desc(&g, 0), 0, 0x10000, 0xffffffffu, VRING_DESC_F_NEXT, 1);
  g_set_desc(g_desc(&g, 0), 1, 0x10000, 0xffffffffu, 0, 0);
  expect_bad(&g, 0, 64, UINT64_MAX, "lengths past guest memory", "outside");
  g_set_desc(g_desc(&g, 0), 0, 0x10000, 0x800, VRING_DESC_F_NEXT, 1);
  g_set_desc(g_desc(&g, 0), 1, 0x20000, 0x801, 0, 0);
  expect_bad(&g, 0, 64, 0x1000, "a chain over the byte bound", "more than 4096 bytes");
  g_set_desc(g_desc(&g, 0), 0, 0x10000, 16, VRING_DESC_F_NEXT, 1);
  g_set_desc(g_desc(&g, 0), 1, 0x20000, 16, VRING_DESC_F_NEXT, 0);
  expect_bad(&g, 0, 64, 1 << 20, "a descriptor loop", "a loop");
  for (unsigned i = 0; i < 8; i++)
    g_set_desc(g_desc(&g, 0), i, 0x10000 + 0x100 * i, 16, VRING_DESC_F_NEXT, (uint16_t)(i + 1));
  g_set_desc(g_desc(&g, 0), 7, 0x17000, 16, 0, 0);
  expect_bad(&g, 0, 4, 1 << 20, "a chain of 8 segments with room for 4", "more than 4 segments");
  g_set_desc(g_desc(&g, 0), 0, G_REGION - 8, 16, 0, 0);
  expect_bad(&g, 0, 1, 1 << 20, "a buffer split at a boundary with room for 1 segment", "more than 1 segments");
  g_set_desc(g_desc(&g, 0), 0, 0x10000, 16, VRING_DESC_F_NEXT, 9);
  expect_bad(&g, 0, 64, 1 << 20, "a next index past the table", "next index 9");
  g_set_desc(g_desc(&g, 0), 0, 0x10000, 16, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
  g_set_desc(g_desc(&g, 0), 1, 0x20000, 16, 0, 0);
  expect_bad(&g, 0, 64, 1 << 20, "readable after writable", "readable descriptor after a writable");

  ind = g_host(&g, 0x40000);
  g_set_desc(ind, 0, 0x41000, 16, VRING_DESC_F_INDIRECT, 0);
  g_set_desc(g_desc(&g, 0), 0, 0x40000, 16, VRING_DESC_F_INDIRECT, 0);
  expect_bad(&g, 0, 64, 1 << 20, "a nested indirect descriptor", "inside an indirect table");
  g_set_desc(g_desc(&g, 0), 0, 0x40000, 20, VRING_DESC_F_INDIRECT, 0);
  expect_bad(&g, 0, 64, 1 << 20, "an indirect table of 20 bytes", "indirect table of 20 bytes");
  g_set_desc(g_desc(&g, 0), 0, 0x40000, 0, VRING_DESC_F_INDIRECT, 0);
  expect_bad(&g, 0, 64, 1 << 20, "an indirect table of 0 bytes", "indirect table of 0 bytes");
  g_set_desc(g_desc(&g, 0), 0, 0x40000, 16 * 32769u, VRING_DESC_F_INDIRECT, 0);
  expect_bad(&g, 0, 64, 1 << 20, "an indirect table of 32769 entries", "indirect table of");
  g_set_desc(g_desc(&g, 0), 0, G_REGION - 16, 32, VRING_DESC_F_INDIRECT, 0);
  expect_bad(&g, 0, 64, 1 << 20, "an indirect table across regions", "not inside one memory region");
  g_set_desc(g_desc(&g, 0), 0, 0x40000, 32, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
  expect_bad(&g, 0, 64, 1 << 20, "an indirect descriptor with NEXT", "not alone");
  g_set_desc(g_desc(&g, 0), 0, 0x10000, 16, VRING_DESC_F_NEXT, 1);
  g_set_desc(g_desc(&g, 0), 1, 0x40000, 32, VRING_DESC_F_INDIRECT, 0);
  expect_bad(&g, 0, 64, 1 << 20, "an indirect descriptor after a direct one", "not alone");
  g_set_desc(ind, 0, 0x10000, 16, VRING_DESC_F_NEXT, 1);
  g_set_desc(ind, 1, 0x10000, 16, VRING_DESC_F_NEXT, 0);
  g_set_desc(g_desc(&g, 0), 0, 0x40000, 32, VRING_DESC_F_INDIRECT, 0);
  expect_bad(&g, 0, 64, 1 << 20, "a loop inside an indirect table", "longer than its indirect table");
  g_set_desc(ind, 1, 0x10000, 16, VRING_DESC_F_NEXT, 2);
  expect_bad(&g, 0, 64, 1 << 20, "an indirect next index past its table", "next index 2");

  /* Where a refused chain's status byte would be. */
  g_set_desc(g_desc(&g, 0), 0, 0x10000, 16, VRING_DESC_F_NEXT, 1);
  g_set_desc(g_desc(&g, 0), 1, 0x100000, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
  g_set_desc(g_desc(&g, 0), 2, 0x30000, 4, VRING_DESC_F_WRITE, 0);
  g_offer(&g, 0);
  ok(vring_pop(&g.q, iov, 64, 1 << 20, &c) == -EINVAL
     && vring_chain_last_writable(&g.q, 0) == g_host(&g, 0x30003) && strstr(g.q.why, "outside"),
     "a chain refused for a data buffer still has its last writable byte (reason kept: %s)", g.q.why);
  g_set_desc(g_desc(&g, 0), 2, 0x100000, 4, VRING_DESC_F_WRITE, 0);
  ok(vring_chain_last_writable(&g.q, 0) == NULL, "a last writable byte outside memory: none");
  g_set_desc(g_desc(&g, 0), 2, UINT64_MAX - 1, 4, VRING_DESC_F_WRITE, 0);
  ok(vring_chain_last_writable(&g.q, 0) == NULL, "a last writable buffer that wraps: none");
  g_set_desc(g_desc(&g, 0), 2, 0x30000, 4, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0);
  ok(vring_chain_last_writable(&g.q, 0) == NULL, "a looping chain: none");
  g_set_desc(g_desc(&g, 0), 1, 0x20000, 16, VRING_DESC_F_NEXT, 2);
  g_set_desc(g_desc(&g, 0), 2, 0x30000, 4, 0, 0);
  ok(vring_chain_last_writable(&g.q, 0) == NULL, "a chain with nothing writable: none");
  ok(vring_chain_last_writable(&g.q, 8) == NULL, "a head past the queue: none");

  /* The queue still works after all that. */
  g_set_desc(g_desc(&g, 0), 0, 0x10000, 16, 0, 0);
  g_offer(&g, 0);
  ok(vring_pop(&g.q, iov, 64, 1 << 20, &c) == 1, "a good chain still pops after bad ones");
  guest_free(&g);

  /* Indirect without the feature. */
  guest_init(&g, 8, VU_BIT(VIRTIO_RING_F_EVENT_IDX));
  ind = g_host(&g, 0x40000);
  g_set_desc(ind, 0, 0x10000, 16, 0, 0);
  g_set_desc(g_desc(&g, 0), 0, 0x40000, 16, VRING_DESC_F_INDIRECT, 0);
  expect_bad(&g, 0, 64, 1 << 20, "an indirect descriptor without the feature", "not negotiated");
  guest_free(&g);

  /* The queue breaks: a head past the queue. */
  guest_init(&g, 8, FEAT_ALL);
  g_offer(&g, 8);
  ok(vring_pop(&g.q, iov, 64, 1 << 20, &c) == -EIO && g.q.broken && strstr(g.q.why, "head 8"),
     "a head index past the queue breaks it: %s", g.q.why);
  g_set_desc(g_desc(&g, 0), 0, 0x10000, 16, 0, 0);
  g_offer(&g, 0);
  ok(vring_pop(&g.q, iov, 64, 1 << 20, &c) == -EIO && vring_avail_count(&g.q) == 0,
     "a broken queue pops nothing more");
  guest_free(&g);

  /* The queue breaks: the available index jumps by more than the size. */
  guest_init(&g, 8, FEAT_ALL);
  g_avail(&g)->idx = htole16(9);
  ok(vring_pop(&g.q, iov, 64, 1 << 20, &c) == -EIO && g.q.broken && strstr(g.q.why, "jumped from 0 to 9"),
     "an available index 9 ahead in a queue of 8 breaks it: %s", g.q.why);
  guest_free(&g);
  guest_init(&g, 8, FEAT_ALL);
  g_avail(&g)->idx = htole16(8);
  g_set_desc(g_desc(&g, 0), 0, 0x10000, 16, 0, 0);
  ok(vring_avail_count(&g.q) == 8 && vring_pop(&g.q, iov, 64, 1 << 20, &c) == 1, "exactly 8 ahead is fine");
  guest_free(&g);
}

static void test_notify(void)
{
  struct guest g;
  struct vring_chain c;

  /* With EVENT_IDX. */
  guest_init(&g, 8, FEAT_ALL);
  for (unsigned i = 0; i < 4; i++) {
    g_set_desc(g_desc(&g, 0), i, 0x10000, 16, 0, 0);
    g_offer(&g, (uint16_t)i);
  }
  vring_pop(&g.q, iov, 64, 1 << 20, &c);
  vring_push(&g.q, c.head, 0);
  ok(vring_need_notify(&g.q), "event idx: the first completion notifies");
  g_set_used_event(&g, 5);
  vring_pop(&g.q, iov, 64, 1 << 20, &c);
  vring_push(&g.q, c.head, 0);
  ok(!vring_need_notify(&g.q), "used index 2, driver waits for 6: no notification");
  ok(!vring_need_notify(&g.q), "nothing pushed since: no notification");
  g_set_used_event(&g, 2);
  vring_pop(&g.q, iov, 64, 1 << 20, &c);
  vring_push(&g.q, c.head, 0);
  ok(vring_need_notify(&g.q), "used index passes 3 with used_event 2: notification");
  g_set_used_event(&g, 2);
  vring_pop(&g.q, iov, 64, 1 << 20, &c);
  vring_push(&g.q, c.head, 0);
  ok(!vring_need_notify(&g.q), "used_event already passed before: no second notification");
  ok(!vring_kick_enable(&g.q) && g_avail_event(&g) == 4, "kick enable writes avail_event = 4, nothing pending");
  g_set_desc(g_desc(&g, 0), 4, 0x10000, 16, 0, 0);
  g_offer(&g, 4);
  ok(vring_kick_enable(&g.q), "kick enable sees a chain that arrived meanwhile");
  guest_free(&g);

  /* Without EVENT_IDX: the flags. */
  guest_init(&g, 8, 0);
  g_set_desc(g_desc(&g, 0), 0, 0x10000, 16, 0, 0);
  g_offer(&g, 0);
  vring_pop(&g.q, iov, 64, 1 << 20, &c);
  vring_push(&g.q, c.head, 0);
  ok(vring_need_notify(&g.q), "no event idx: notify by default");
  g_avail(&g)->flags = htole16(VRING_AVAIL_F_NO_INTERRUPT);
  ok(!vring_need_notify(&g.q), "no event idx: NO_INTERRUPT suppresses it");
  vring_kick_disable(&g.q);
  ok(le16toh(g_used(&g)->flags) & VRING_USED_F_NO_NOTIFY, "kick disable sets NO_NOTIFY");
  ok(!vring_kick_enable(&g.q) && !(le16toh(g_used(&g)->flags) & VRING_USED_F_NO_NOTIFY),
     "kick enable clears it");
  guest_free(&g);
}

int main(void)
{
  test_memtable();
  test_setup();
  test_chains();
  test_rejections();
  test_notify();
  return tap_done();
}
