/* vhostfe_fuzz.c: --hostile fuzz. Each round sets up a fresh device and fills its descriptor
 * table, some indirect tables, request headers and the avail ring with random values, biased
 * towards chains that look almost right (a header, data, a status byte) with one thing wrong:
 * an address in a hole, past the end or wrapping, a length of 0 or 4 GiB, a loop, a stray
 * flag. The device may scribble over any of this memory, rings included. The backend must
 * survive every round; then a fresh connection must do verified I/O.
 * The requests that happen to be valid write random data anywhere on the disk. */
#include "vhostfe.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_DATA (256u * 1024) /* guest memory for headers, data and indirect tables */

struct fuzz {
  uint64_t rng;
  struct fe_dev *d;
  uint8_t *data;
  uint64_t data_gpa;
  uint64_t used, closed, chains;
};

static uint64_t rnd(struct fuzz *z, uint64_t n) { return n ? fe_rand(&z->rng) % n : 0; }

static uint32_t pick_len(struct fuzz *z)
{
  switch (rnd(z, 8)) {
  case 0: return 0;
  case 1: return 1;
  case 2: return 16;
  case 3: return (uint32_t)(0xffffffffu - rnd(z, 16));
  case 4: return (uint32_t)rnd(z, 1u << 21);
  default: return (uint32_t)(512 * (1 + rnd(z, 16)));
  }
}

static uint64_t pick_addr(struct fuzz *z, uint32_t len)
{
  const struct fe_mem *m = &z->d->mem;
  const struct fe_region *last = &m->r[m->nregions - 1];
  switch (rnd(z, 10)) {
  case 0: return last->gpa + last->size - rnd(z, 4096); /* straddles the end */
  case 1: return fe_mem_gpa_end(m) + rnd(z, 1u << 20);  /* past every region */
  case 2: return UINT64_MAX - rnd(z, 4096);             /* wraps */
  case 3: return m->r[0].gpa + rnd(z, 65536);           /* the rings themselves */
  case 4: return fe_rand(&z->rng);
  default: /* inside the data area (or running off its end) */
    return z->data_gpa + rnd(z, FUZZ_DATA - (len < FUZZ_DATA ? len : 0) + 1);
  }
}

static void random_desc(struct fuzz *z, struct vring_desc *t, unsigned i, unsigned n)
{
  uint32_t len = pick_len(z);
  uint16_t flags = 0;
  if (rnd(z, 10) < 6)
    flags |= VRING_DESC_F_NEXT;
  if (rnd(z, 2))
    flags |= VRING_DESC_F_WRITE;
  if (rnd(z, 12) == 0)
    flags |= VRING_DESC_F_INDIRECT;
  if (rnd(z, 20) == 0)
    flags |= (uint16_t)fe_rand(&z->rng);
  t[i].addr = pick_addr(z, len);
  t[i].len = len;
  t[i].flags = flags;
  t[i].next = (uint16_t)(rnd(z, 10) ? (i + 1 + rnd(z, 3)) % n : fe_rand(&z->rng));
}

/* A chain that looks right (header, data, status), or right but for one random descriptor. */
static void plausible_chain(struct fuzz *z, struct vring_desc *t, unsigned at, unsigned n)
{
  static const uint32_t types[] = {
    VIRTIO_BLK_T_IN,      VIRTIO_BLK_T_OUT,          VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID,
    VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES, 0x7fffffff
  };
  uint64_t off = rnd(z, FUZZ_DATA / 16 - 1) * 16;
  struct virtio_blk_outhdr *h = (void *)(z->data + off);
  h->type = types[rnd(z, sizeof(types) / sizeof(types[0]))];
  h->sector = rnd(z, 4) ? rnd(z, z->d->capacity + 16) : fe_rand(&z->rng);
  unsigned hd = at % n, dd = (at + 1) % n, sd = (at + 2) % n;
  uint32_t dlen = (uint32_t)(512 * (1 + rnd(z, 8)));
  t[hd] = (struct vring_desc){ z->data_gpa + off, 16, VRING_DESC_F_NEXT, (uint16_t)dd };
  t[dd] = (struct vring_desc){ z->data_gpa + rnd(z, FUZZ_DATA - dlen), dlen,
                               VRING_DESC_F_NEXT |
                                   (h->type == VIRTIO_BLK_T_IN ? VRING_DESC_F_WRITE : 0),
                               (uint16_t)sd };
  t[sd] = (struct vring_desc){ z->data_gpa + rnd(z, FUZZ_DATA), 1, VRING_DESC_F_WRITE, 0 };
  if (rnd(z, 2)) /* half of them broken in one place, half valid requests */
    random_desc(z, t, (unsigned[]){ hd, dd, sd }[rnd(z, 3)], n);
}

/* Up to WAIT_MS for the device to use COUNT chains or to close the connection. */
static void watch(struct fuzz *z, struct fe_vq *q, uint16_t count, int wait_ms)
{
  double end = fe_now() + wait_ms / 1000.0;
  for (;;) {
    uint16_t used = __atomic_load_n(&q->vr.used->idx, __ATOMIC_ACQUIRE);
    int left = (int)((end - fe_now()) * 1000);
    if (used == count || left <= 0) {
      z->used += used <= count ? used : count; /* the device may have scribbled over it */
      return;
    }
    struct pollfd p[2] = { { q->call_fd, POLLIN, 0 }, { z->d->sock, POLLIN, 0 } };
    if (poll(p, 2, left < 10 ? left : 10) > 0) {
      uint64_t v;
      if (p[0].revents & POLLIN && read(p[0].fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        perror("vhostfe: call eventfd");
      if (p[1].revents && fe_wait_closed(z->d, 0)) {
        z->closed++;
        used = __atomic_load_n(&q->vr.used->idx, __ATOMIC_ACQUIRE);
        z->used += used <= count ? used : count;
        return;
      }
    }
  }
}

static int fuzz_round(struct fuzz *z, const struct fe_opts *fo)
{
  struct fe_dev d;
  z->d = &d;
  if (fe_connect(&d, fo) < 0 || fe_setup(&d) < 0) {
    fe_close(&d);
    return -1;
  }
  struct fe_vq *q = &d.vq[0];
  unsigned n = q->num;
  z->data = fe_mem_alloc(&d.mem, (unsigned)rnd(z, d.mem.nregions), FUZZ_DATA, 4096, &z->data_gpa);
  if (!z->data) {
    FE_ERR("fuzz: guest memory too small");
    fe_close(&d);
    return -1;
  }
  for (uint32_t i = 0; i < FUZZ_DATA; i += 8) {
    uint64_t x = fe_rand(&z->rng);
    memcpy(z->data + i, &x, 8);
  }
  for (unsigned i = 0; i < n; i++)
    random_desc(z, q->vr.desc, i, n);
  for (unsigned i = 0; i < n; i += 3)
    if (rnd(z, 3))
      plausible_chain(z, q->vr.desc, i, n);
  /* some indirect tables made of plausible chains, in the data area */
  for (unsigned k = 0; k < 4; k++) {
    uint64_t off = rnd(z, FUZZ_DATA / 16 - 16) * 16;
    plausible_chain(z, (struct vring_desc *)(z->data + off), 0, 3);
    unsigned i = (unsigned)rnd(z, n);
    q->vr.desc[i] = (struct vring_desc){ z->data_gpa + off, 48, VRING_DESC_F_INDIRECT, 0 };
  }
  uint16_t count = (uint16_t)(1 + rnd(z, n));
  for (uint16_t i = 0; i < count; i++)
    fe_vq_add_raw_head(q, (uint16_t)(rnd(z, 16) ? rnd(z, n) : fe_rand(&z->rng)));
  fe_vq_set_avail_idx(q, rnd(z, 50) ? count : (uint16_t)fe_rand(&z->rng));
  z->chains += count;
  fe_vq_kick(q);
  watch(z, q, count, 50);
  fe_close(&d); /* no GET_VRING_BASE: the ring may never drain */
  return 0;
}

int fe_fuzz(const struct fe_opts *o, int backend_pid, uint64_t rounds)
{
  struct fe_opts fo = *o;
  struct fuzz z = { .rng = o->seed * 2 + 1 };
  struct fe_dev probe;
  uint64_t done = 0;
  fo.queues = 1;
  fo.timeout_s = 5;
  fo.inflight = fo.mem_slots = false;
  /* indirect descriptors when the backend offers them */
  if (fe_connect(&probe, &fo) == 0 && fe_setup(&probe) == 0)
    fo.indirect = probe.offered >> VIRTIO_RING_F_INDIRECT_DESC & 1;
  fe_close(&probe);
  bool alive = true;
  for (; done < rounds && alive; done++) {
    fo.event_idx = rnd(&z, 2);
    if (fuzz_round(&z, &fo) < 0 && !fe_process_alive(backend_pid))
      break;
    alive = fe_process_alive(backend_pid);
  }
  bool fresh = alive && fe_fresh_check(o) == 0;
  alive = alive && fe_process_alive(backend_pid);
  bool ok = alive && fresh && done == rounds;
  if (!alive)
    FE_ERR("fuzz: the backend (pid %d) is gone after round %llu", backend_pid,
           (unsigned long long)done);
  else if (!fresh)
    FE_ERR("fuzz: a fresh connection afterwards could not do verified I/O");
  printf("{\"mode\":\"hostile\",\"kind\":\"fuzz\",\"result\":\"%s\",\"rounds\":%llu,"
         "\"chains\":%llu,\"used\":%llu,\"closed\":%llu,\"backend_alive\":%s,"
         "\"fresh_connection_verified\":%s}\n",
         ok ? "ok" : "fail", (unsigned long long)done, (unsigned long long)z.chains,
         (unsigned long long)z.used, (unsigned long long)z.closed, alive ? "true" : "false",
         fresh ? "true" : "false");
  fflush(stdout);
  return ok ? 0 : 1;
}
