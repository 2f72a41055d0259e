/* fuzz_vu_handler.c: libFuzzer harness for shunt vhost's message state
 * machine (src/vhost/vu_handler.c) with fake side effects: a memory table
 * with fake host addresses, fake fds (numbers whose opening and closing are
 * tracked), queues that start and stop (draining when the input says so).
 * Invariants: every reply passes the front end's reply check
 * (vu_reply_check), every fd handed to the handler is closed exactly once
 * or still held by it, no fd it never got is closed, a queue starts only
 * with a size, addresses and a kick fd, nothing is handled while a
 * GET_VRING_BASE waits, and after the connection ends nothing leaks.
 * Input: a stream of messages, each: 1 control byte (bits 0-3: fd count mod
 * 10; bit 4: queue stops drain; bit 5: finish the drains now), the 12-byte
 * header (native byte order), then the payload (header size bytes, cut
 * short at the end of the input). */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "vhost/vu_handler.h"
#include "virtio/memtable.h"
#include "virtio/vhost_user.h"

#define FD_BASE 1000
#define MAX_FDS 4096

struct fake {
  struct memtable mt;
  bool open[MAX_FDS];
  int next_fd;
  bool drain;                      /* queue_stop answers 1 */
  bool started[VHOST_MAX_QUEUES];
  bool draining[VHOST_MAX_QUEUES];
  uint16_t base[VHOST_MAX_QUEUES];
};

static int fd_new(struct fake *f)
{
  int fd = f->next_fd++;
  FUZZ_CHECK(fd - FD_BASE < MAX_FDS);
  f->open[fd - FD_BASE] = true;
  return fd;
}

static void fd_close(struct fake *f, int fd)
{
  FUZZ_CHECK(fd >= FD_BASE && fd < f->next_fd);
  FUZZ_CHECK(f->open[fd - FD_BASE]);   /* never twice, never one it did not get */
  f->open[fd - FD_BASE] = false;
}

static int op_mem_add(void *ctx, const struct vu_mem_region *r, int fd)
{
  struct fake *f = ctx;
  void *fake_host = (void *)(uintptr_t)0x10000;
  fd_close(f, fd);
  return memtable_add(&f->mt, r, fake_host, fake_host, 0, NULL, 0);
}

static int op_mem_remove(void *ctx, const struct vu_mem_region *r)
{
  struct fake *f = ctx;
  struct mt_region out;
  return memtable_remove(&f->mt, r, &out);
}

static void op_mem_clear(void *ctx)
{
  struct fake *f = ctx;
  memtable_init(&f->mt);
}

static size_t op_get_config(void *ctx, uint8_t *buf, size_t len)
{
  (void)ctx;
  size_t n = len < 60 ? len : 60;
  memset(buf, 0xab, n);
  return n;
}

static int op_inflight_new(void *ctx, uint16_t nq, uint16_t qsize, int *fd, uint64_t *size)
{
  struct fake *f = ctx;
  FUZZ_CHECK(nq > 0 && nq <= VHOST_MAX_QUEUES && qsize > 0 && qsize <= VU_QUEUE_SIZE_MAX);
  *fd = fd_new(f);
  *size = (uint64_t)nq * qsize * 16 + 4096;
  return 0;
}

static int op_inflight_set(void *ctx, int fd, uint64_t size, uint64_t offset, uint16_t nq, uint16_t qsize)
{
  struct fake *f = ctx;
  (void)size; (void)offset;
  FUZZ_CHECK(nq > 0 && nq <= VHOST_MAX_QUEUES && qsize > 0);
  for (unsigned q = 0; q < VHOST_MAX_QUEUES; q++)
    FUZZ_CHECK(!f->started[q] && !f->draining[q]);
  fd_close(f, fd);
  return size & 1 ? -EINVAL : 0;
}

static int op_queue_start(void *ctx, unsigned q, const struct vu_vring_conf *vq)
{
  struct fake *f = ctx;
  FUZZ_CHECK(q < VHOST_MAX_QUEUES && !f->started[q] && !f->draining[q]);
  FUZZ_CHECK(vq->num && !(vq->num & (vq->num - 1)) && vq->num <= VU_QUEUE_SIZE_MAX);
  FUZZ_CHECK(vq->addr_set && vq->enabled);
  FUZZ_CHECK(vq->kick_fd >= FD_BASE && f->open[vq->kick_fd - FD_BASE]);
  FUZZ_CHECK(vq->call_fd < 0 || f->open[vq->call_fd - FD_BASE]);
  if (vq->addr.desc_user_addr & 1)
    return -EINVAL;   /* a ring outside guest memory */
  f->started[q] = true;
  f->base[q] = vq->base;
  return 0;
}

static int op_queue_stop(void *ctx, unsigned q, uint16_t *base)
{
  struct fake *f = ctx;
  FUZZ_CHECK(q < VHOST_MAX_QUEUES && f->started[q] && !f->draining[q]);
  f->started[q] = false;
  if (f->drain) {
    f->draining[q] = true;
    return 1;
  }
  *base = (uint16_t)(f->base[q] + 7);
  return 0;
}

static void op_queue_set_call(void *ctx, unsigned q, int call_fd)
{
  struct fake *f = ctx;
  FUZZ_CHECK(q < VHOST_MAX_QUEUES && f->started[q]);
  FUZZ_CHECK(call_fd < 0 || f->open[call_fd - FD_BASE]);
}

static void op_close_fd(void *ctx, int fd)
{
  fd_close(ctx, fd);
}

static const struct vu_handler_ops fake_ops = {
  .mem_add = op_mem_add,
  .mem_remove = op_mem_remove,
  .mem_clear = op_mem_clear,
  .get_config = op_get_config,
  .inflight_new = op_inflight_new,
  .inflight_set = op_inflight_set,
  .queue_start = op_queue_start,
  .queue_stop = op_queue_stop,
  .queue_set_call = op_queue_set_call,
  .close_fd = op_close_fd,
};

/* A reply must pass the front end's check for the request it answers. */
static void check_reply(const struct vu_msg *req, const struct vu_msg *reply, int reply_fd, bool ack)
{
  char err[256];
  uint32_t csize = req->hdr.request == VU_GET_CONFIG ? req->payload.config.size : 0;
  int rc = vu_reply_check(req->hdr.request, ack, csize, reply, reply_fd >= 0 ? 1 : 0, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "bad reply: %s\n", err);
  FUZZ_CHECK(rc == 0);
}

/* Every drain in progress ends now; a waiting GET_VRING_BASE gets its reply. */
static void finish_drains(struct fake *f, struct vu_handler *h)
{
  for (unsigned q = 0; q < VHOST_MAX_QUEUES; q++) {
    struct vu_msg reply;
    if (!f->draining[q])
      continue;
    f->draining[q] = false;
    bool was_waiting = h->waiting && h->wait_q == q;
    enum vu_result r = vu_handler_queue_stopped(h, q, (uint16_t)(f->base[q] + 3), &reply);
    FUZZ_CHECK(r == (was_waiting ? VU_REPLY : VU_NO_REPLY));
    if (r == VU_REPLY) {
      FUZZ_CHECK(reply.hdr.request == VU_GET_VRING_BASE && reply.payload.state.index == q);
      FUZZ_CHECK(reply.payload.state.num == (uint16_t)(f->base[q] + 3));
    }
  }
  FUZZ_CHECK(!h->waiting);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static struct fake f;
  static struct vu_handler h;
  struct vu_handler_setup offer = {
    .features = VU_BIT(VIRTIO_F_VERSION_1) | VU_BIT(VIRTIO_RING_F_EVENT_IDX) | VU_BIT(VU_F_PROTOCOL_FEATURES),
    .protocol_features = VU_BIT(VU_PROTOCOL_F_MQ) | VU_BIT(VU_PROTOCOL_F_REPLY_ACK) | VU_BIT(VU_PROTOCOL_F_CONFIG) |
                         VU_BIT(VU_PROTOCOL_F_INFLIGHT_SHMFD) | VU_BIT(VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS),
    .nqueues = 4,
    .max_mem_slots = 8,
  };
  size_t off = 0;
  bool closed = false;

  memset(&f, 0, sizeof f);
  f.next_fd = FD_BASE;
  memtable_init(&f.mt);
  vu_handler_init(&h, &offer, &fake_ops, &f);
  while (!closed && size - off >= 1 + VU_HDR_SIZE) {
    uint8_t ctl = data[off];
    size_t nfds = (ctl & 0xf) % 10, plen;
    int fds[10], reply_fd;
    struct vu_msg msg, reply;
    enum vu_result r;
    bool ack;

    f.drain = ctl & 0x10;
    if ((ctl & 0x20) || h.waiting)
      finish_drains(&f, &h);
    memcpy(&msg.hdr, data + off + 1, VU_HDR_SIZE);
    off += 1 + VU_HDR_SIZE;
    if (msg.hdr.size > VU_MAX_PAYLOAD)
      break;   /* the connection refuses it before reading a payload */
    plen = msg.hdr.size < size - off ? msg.hdr.size : size - off;
    msg.hdr.size = (uint32_t)plen;
    memset(&msg.payload, 0, sizeof msg.payload);
    memcpy(&msg.payload, data + off, plen);
    off += plen;
    if (nfds > VU_MAX_FDS)
      nfds = VU_MAX_FDS;   /* the connection refuses more */
    for (size_t i = 0; i < nfds; i++)
      fds[i] = fd_new(&f);
    ack = (msg.hdr.flags & VU_FLAG_NEED_REPLY) && (h.protocol_features & VU_BIT(VU_PROTOCOL_F_REPLY_ACK));
    r = vu_handler_handle(&h, &msg, fds, nfds, &reply, &reply_fd);
    switch (r) {
    case VU_REPLY:
      check_reply(&msg, &reply, reply_fd, ack);
      if (reply_fd >= 0)
        fd_close(&f, reply_fd);   /* the connection closes it after sending */
      break;
    case VU_WAIT:
      FUZZ_CHECK(msg.hdr.request == VU_GET_VRING_BASE && h.waiting && f.draining[h.wait_q]);
      break;
    case VU_NO_REPLY:
      FUZZ_CHECK(!ack || msg.hdr.request == VU_GET_VRING_BASE);
      break;
    case VU_CLOSE:
      closed = true;
      break;
    }
    FUZZ_CHECK(h.nregions == f.mt.n);
  }
  vu_handler_shutdown(&h);
  finish_drains(&f, &h);
  for (unsigned q = 0; q < VHOST_MAX_QUEUES; q++)
    FUZZ_CHECK(!f.started[q]);
  for (int fd = FD_BASE; fd < f.next_fd; fd++)
    FUZZ_CHECK(!f.open[fd - FD_BASE]);   /* nothing leaks */
  return 0;
}
