/* test_virtio_inflight.c: the in-flight area (src/virtio/inflight.c): its
 * layout, mark / done / recover in submission order, a restart between
 * pushing a used element and recording it, a hostile area, and a whole
 * restart with a queue: chains popped before it are resubmitted, then new
 * ones pop. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tap.h"
#include "virtio/inflight.h"
#include "virtio_guest.h"

static uint8_t area[4096] __attribute__((aligned(64)));
static struct inflight_entry out[64];

/* Complete head fully: begin, used index advanced, end. */
static void complete(struct inflight_q *q, uint16_t head, uint16_t *used)
{
  inflight_put_begin(q, head);
  (*used)++;
  inflight_put_end(q, head, *used);
}

static void test_layout(void)
{
  struct inflight_q q;

  ok(inflight_area_size(2, 8) == 2 * 192, "2 queues of 8: 2 x 192 bytes (16 + 8 x 16, 64-aligned)");
  ok(inflight_area_size(1, 256) == 16 + 256 * 16 + 48, "1 queue of 256: %llu bytes",
     (unsigned long long)inflight_area_size(1, 256));
  ok(inflight_area_size(0, 8) == 0 && inflight_area_size(2, 0) == 0 && inflight_area_size(1, 32769) == 0,
     "0 queues, queue size 0 or 32769: no area");
  memset(area, 0xaa, sizeof area);
  inflight_area_init(area, 2, 8);
  ok(((struct inflight_region *)(void *)(area + 192))->version == 1
     && ((struct inflight_region *)(void *)(area + 192))->desc_num == 8 && area[191] == 0 && area[384] == 0xaa,
     "init: each queue's header at version 1, desc_num 8, nothing past the area");
  ok(inflight_attach(&q, area, 384, 2, 8, 1, 8) == 0, "queue 1 attaches");
  ok(inflight_attach(&q, area, 383, 2, 8, 1, 8) == -EINVAL, "an area one byte short is refused");
  ok(inflight_attach(&q, area, 384, 2, 8, 2, 8) == -EINVAL, "queue index 2 of 2 is refused");
  ok(inflight_attach(&q, area, 384, 2, 8, 0, 16) == -EINVAL, "a ring larger than the area's queue size is refused");
  ((struct inflight_region *)(void *)area)->desc_num = 4;
  ok(inflight_attach(&q, area, 384, 2, 8, 0, 8) == -EINVAL, "a queue header with another desc_num is refused");
  ((struct inflight_region *)(void *)area)->version = 0;
  ok(inflight_attach(&q, area, 384, 2, 8, 0, 8) == 0 && q.r->desc_num == 8 && q.r->version == 1,
     "a queue at version 0 is initialised on attach");
  ok(inflight_mark(&q, 8) == -EINVAL && inflight_put_begin(&q, 8) == -EINVAL, "head 8 of 8 is refused");
}

static void test_order(void)
{
  struct inflight_q q, q2;
  uint16_t used = 0;
  unsigned n;

  inflight_area_init(area, 1, 8);
  inflight_attach(&q, area, sizeof area, 1, 8, 0, 8);
  inflight_mark(&q, 3);
  inflight_mark(&q, 1);
  inflight_mark(&q, 5);
  inflight_mark(&q, 0);
  complete(&q, 1, &used);
  complete(&q, 0, &used);
  /* Restart. */
  inflight_attach(&q2, area, sizeof area, 1, 8, 0, 8);
  n = inflight_recover(&q2, used, 8, out, 64);
  ok(n == 2 && out[0].head == 3 && out[1].head == 5, "recover lists 3 then 5, in submission order (%u)", n);
  inflight_mark(&q2, 7);
  ok(q2.r->desc[7].counter > out[1].counter, "a new mark numbers after the recovered ones");

  /* Submission order differs from index order. */
  inflight_area_init(area, 1, 8);
  inflight_attach(&q, area, sizeof area, 1, 8, 0, 8);
  used = 0;
  inflight_mark(&q, 6);
  inflight_mark(&q, 2);
  inflight_mark(&q, 4);
  complete(&q, 2, &used);
  inflight_attach(&q2, area, sizeof area, 1, 8, 0, 8);
  n = inflight_recover(&q2, used, 8, out, 64);
  ok(n == 2 && out[0].head == 6 && out[1].head == 4, "recover lists 6 then 4");

  /* A restart after the used element was pushed, before it was recorded. */
  inflight_area_init(area, 1, 8);
  inflight_attach(&q, area, sizeof area, 1, 8, 0, 8);
  used = 0;
  inflight_mark(&q, 3);
  inflight_mark(&q, 1);
  inflight_put_begin(&q, 1);
  used++;   /* the used ring got head 1; the record did not */
  inflight_attach(&q2, area, sizeof area, 1, 8, 0, 8);
  n = inflight_recover(&q2, used, 8, out, 64);
  ok(n == 1 && out[0].head == 3 && q2.r->used_idx == 1 && q2.r->desc[1].inflight == 0,
     "a push not yet recorded is repaired: only 3 is resubmitted");

  /* Nothing in flight. */
  inflight_area_init(area, 1, 8);
  inflight_attach(&q2, area, sizeof area, 1, 8, 0, 8);
  ok(inflight_recover(&q2, 0, 8, out, 64) == 0, "a fresh area has nothing to resubmit");
}

static void test_hostile(void)
{
  struct inflight_q q;
  struct inflight_region *r = (struct inflight_region *)(void *)area;
  unsigned n;

  inflight_area_init(area, 1, 16);
  for (unsigned i = 0; i < 16; i++) {
    r->desc[i].inflight = (uint8_t)(i % 3 == 0 ? 1 : i % 3 == 1 ? 2 : 0);
    r->desc[i].next = (uint16_t)(0xfff0 + i);
    r->desc[i].counter = UINT64_MAX - i;
  }
  r->last_batch_head = 0xffff;
  r->used_idx = 0x1234;
  inflight_attach(&q, area, sizeof area, 1, 16, 0, 8);
  n = inflight_recover(&q, 0, 8, out, 64);
  ok(n == 3 && out[0].head == 6 && out[1].head == 3 && out[2].head == 0,
     "garbage in the area: only flagged heads below the ring size, by counter (%u)", n);
  ok(r->desc[9].inflight == 0 && r->desc[12].inflight == 0, "flagged entries past the ring are cleared");
  r->last_batch_head = 2;
  r->desc[2].next = 2;   /* a loop in the batch list */
  r->used_idx = 0;
  n = inflight_recover(&q, 40000, 8, out, 64);
  ok(r->used_idx == 40000, "a looping batch list with a huge batch is walked a bounded number of times");
}

/* A restart with a queue: 3 chains popped, 1 completed; the restarted side
 * resubmits the other 2, then pops the next new one. */
static void test_restart(void)
{
  struct guest g;
  struct inflight_q q;
  struct vring_chain c;
  struct iovec iov[8];
  uint16_t used_idx;
  unsigned n;

  guest_init(&g, 8, VU_BIT(VIRTIO_RING_F_EVENT_IDX));
  inflight_area_init(area, 1, 8);
  inflight_attach(&q, area, sizeof area, 1, 8, 0, 8);
  for (unsigned i = 0; i < 4; i++) {
    g_set_desc(g_desc(&g, 0), i, 0x10000 + 0x1000 * i, 16, 0, 0);
    g_offer(&g, (uint16_t)i);
  }
  for (unsigned i = 0; i < 3; i++) {
    vring_pop(&g.q, iov, 8, 1 << 20, &c);
    inflight_mark(&q, c.head);
  }
  inflight_put_begin(&q, 1);
  vring_push(&g.q, 1, 1);
  inflight_put_end(&q, 1, g.q.used_idx);
  /* The back-end dies; the front-end restores last_avail = used index. */
  used_idx = le16toh(g_used(&g)->idx);
  ok(vring_setup(&g.q, &g.mt, 8, G_UADDR + G_DESC, G_UADDR + G_AVAIL, G_UADDR + G_USED,
                 VU_BIT(VIRTIO_RING_F_EVENT_IDX), used_idx) == 0, "the queue is set up again at base %u", used_idx);
  inflight_attach(&q, area, sizeof area, 1, 8, 0, 8);
  n = inflight_recover(&q, g.q.used_idx, 8, out, 64);
  ok(n == 2 && out[0].head == 0 && out[1].head == 2, "heads 0 and 2 are resubmitted");
  ok(vring_chain_at(&g.q, out[0].head, iov, 8, 1 << 20, &c) == 1 && iov[0].iov_base == g_host(&g, 0x10000)
     && vring_chain_at(&g.q, out[1].head, iov, 8, 1 << 20, &c) == 1 && iov[0].iov_base == g_host(&g, 0x12000),
     "their chains are read again from the descriptor table");
  ok(vring_chain_at(&g.q, 8, iov, 8, 1 << 20, &c) == -EINVAL && !g.q.broken, "a resubmitted head past the queue fails alone");
  vring_set_base(&g.q, (uint16_t)(g.q.used_idx + n));
  ok(vring_pop(&g.q, iov, 8, 1 << 20, &c) == 1 && c.head == 3, "then the next new chain (head 3) pops");
  ok(vring_pop(&g.q, iov, 8, 1 << 20, &c) == 0, "and nothing else");
  guest_free(&g);
}

int main(void)
{
  test_layout();
  test_order();
  test_hostile();
  test_restart();
  return tap_done();
}
