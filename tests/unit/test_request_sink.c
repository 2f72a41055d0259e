/* test_request_sink.c: the request layer and the data paths driven by a
 * front end of the test's own, with no NBD connection and no server code
 * linked: a request_sink that collects reply bytes in memory.  WRITE, READ,
 * FLUSH, BLOCK_STATUS and an unknown command on a memory export through
 * dp_execute(): the reply bytes, base:allocation states made from the
 * backend's extent flags (also from a backend that answers them later, as
 * a BIO_EXTENTS bio: the map, REQ_ONE, the fallback on an error), a lent
 * payload buffer left to its lender, and every request freed once, through
 * the sink. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "common/macros.h"
#include "common/wire.h"
#include "datapath/datapath.h"
#include "datapath/dpexport.h"
#include "datapath/request.h"
#include "engine/engine.h"
#include "proto/nbd-protocol.h"
#include "tap.h"

static struct engine eng;

struct fake {
  struct request_sink sink;
  struct sendq_item *head, **tail;
  uint8_t out[256 << 10];
  size_t outlen;
  bool overflow;
  unsigned freed, failed, send_failed, lent_back;
};

static struct fake *fake_of(struct request_sink *s) { return container_of(s, struct fake, sink); }

static void fake_push(struct request_sink *s, struct sendq_item *it)
{
  struct fake *f = fake_of(s);
  it->next = NULL;
  *f->tail = it;
  f->tail = &it->next;
}

static void fake_release(struct request_sink *s, struct sendq_item *it) { (void)s; it->hold = false; }
static void fake_send_failed(struct request_sink *s, int err) { (void)err; fake_of(s)->send_failed++; }
static void fake_fail(struct request_sink *s, struct request *r) { (void)r; fake_of(s)->failed++; }

static void fake_freed(struct request_sink *s, struct request *r)
{
  struct fake *f = fake_of(s);
  f->freed++;
  if (r->buf_lender)
    f->lent_back++;
}

static const struct request_sink_ops fake_ops = {
  .push = fake_push, .release = fake_release, .send_failed = fake_send_failed,
  .fail = fake_fail, .freed = fake_freed,
};

/* "Send" the items at the head of the queue that are ready, in order. */
static void drain(struct fake *f)
{
  while (f->head && !f->head->hold) {
    struct sendq_item *it = f->head;
    f->head = it->next;
    if (!f->head)
      f->tail = &f->head;
    for (int i = 0; i < it->niov; i++) {
      if (f->outlen + it->iov[i].iov_len > sizeof f->out) {
        f->overflow = true;
        continue;
      }
      memcpy(f->out + f->outlen, it->iov[i].iov_base, it->iov[i].iov_len);
      f->outlen += it->iov[i].iov_len;
    }
    it->done(it, 0);
  }
}

/* Execute r and run the loop until it is freed; true when it was, once. */
static bool run(struct fake *f, struct request *r)
{
  unsigned before = f->freed;

  f->outlen = 0;
  dp_execute(r);
  for (int turn = 0; turn < 20000 && f->freed == before; turn++) {
    engine_poll(&eng);
    drain(f);
    if (f->freed == before)
      usleep(100);
  }
  return f->freed == before + 1 && !f->overflow;
}

static struct request *req(struct fake *f, uint16_t type, uint64_t off, uint64_t len, uint64_t cookie)
{
  struct proto_request h = { .type = type, .cookie = cookie, .offset = off, .length = len,
                             .payload = type == NBD_CMD_WRITE ? len : 0 };
  return request_new(&f->sink, &h);
}

/* A backend whose allocation map is "remote": the memory backend's, given
 * as a BIO_EXTENTS bio completed on a later loop turn (or failing with
 * remote_err). */
static struct backend *inner;
static int remote_err, remote_submits;

static void remote_submit(struct backend *b, struct engine *e, struct bio *io)
{
  size_t n = 0;
  int res;

  (void)b;
  if (io->type != BIO_EXTENTS) {
    backend_submit(inner, e, io);
    return;
  }
  remote_submits++;
  res = remote_err ? remote_err : inner->ops->extents(inner, io->offset, io->length, io->buf, io->count, &n);
  io->count = n;
  backend_complete_later(io, res);
}

static bool simple_reply(const uint8_t *p, uint32_t error, uint64_t cookie)
{
  return get_be32(p) == NBD_SIMPLE_REPLY_MAGIC && get_be32(p + 4) == error && get_be64(p + 8) == cookie;
}

int main(void)
{
  static struct fake f;
  static uint8_t lent[4096];
  struct proto_session simple = { 0 }, structured = { .structured = true, .meta_base_allocation = true };
  struct dp_export dx;
  struct backend *b = NULL;
  struct request *r;
  char err[256];
  uint8_t *data;

  ok(engine_init(&eng, 64, 0) == 0, "engine");
  ok(backend_open("memory", "1M", false, &b, err, sizeof err) == 0, "memory backend");
  ok(datapath_setup(&dx, b, &(struct dp_export_setup){ .name = "mem", .path = "1M" }, err, sizeof err) == 0
     && dx.datapath == &datapath_copy, "storage side set up without a server: copy path");
  f.tail = &f.head;
  f.sink = (struct request_sink){ .ops = &fake_ops, .eng = &eng, .session = &simple, .export = &dx,
                                  .dp = dx.datapath, .peer = "test" };

  r = req(&f, NBD_CMD_WRITE, 4096, 8192, 1);
  ok(r && (r->buf = malloc(8192)), "WRITE request with its payload buffer");
  memset(r->buf, 0xab, 8192);
  ok(run(&f, r) && f.outlen == 16 && simple_reply(f.out, 0, 1), "WRITE: one simple reply, request freed");

  r = req(&f, NBD_CMD_READ, 4096, 8192, 2);
  ok(r && (r->buf = malloc(8192)), "READ request with its buffer");
  data = f.out + 16;
  ok(run(&f, r) && f.outlen == 16 + 8192 && simple_reply(f.out, 0, 2) && data[0] == 0xab && data[8191] == 0xab,
     "READ: header and the written bytes");

  memset(lent, 0xcd, sizeof lent);
  r = req(&f, NBD_CMD_WRITE, 0, sizeof lent, 3);
  r->buf = lent;
  r->buf_lender = lent;
  ok(run(&f, r) && simple_reply(f.out, 0, 3) && f.lent_back == 1,
     "WRITE from a lent buffer: the lender takes it back (the request layer does not free it)");

  ok(run(&f, req(&f, NBD_CMD_FLUSH, 0, 0, 4)) && f.outlen == 16 && simple_reply(f.out, 0, 4), "FLUSH");
  ok(run(&f, req(&f, 99, 0, 0, 5)) && f.outlen == 16 && simple_reply(f.out, NBD_EINVAL, 5),
     "unknown command: EINVAL");

  /* [0, 12K) is written, the rest of 64K never: trimming [0, 4K) leaves
   * a hole, data, a hole. */
  f.sink.session = &structured;
  ok(run(&f, req(&f, NBD_CMD_TRIM, 0, 4096, 6)) && f.outlen == 20 && get_be32(f.out) == NBD_STRUCTURED_REPLY_MAGIC,
     "TRIM of [0, 4K): a structured status reply");
  ok(run(&f, req(&f, NBD_CMD_BLOCK_STATUS, 0, 65536, 7)) && f.outlen == 20 + 4 + 3 * 8,
     "BLOCK_STATUS: one chunk of three descriptors (%zu bytes)", f.outlen);
  const uint8_t *p = f.out;
  ok(get_be32(p) == NBD_STRUCTURED_REPLY_MAGIC && get_be16(p + 6) == NBD_REPLY_TYPE_BLOCK_STATUS
     && get_be64(p + 8) == 7 && get_be32(p + 20) == PROTO_META_BASE_ALLOCATION_ID,
     "BLOCK_STATUS chunk header, base:allocation context");
  ok(get_be32(p + 24) == 4096 && get_be32(p + 28) == (NBD_STATE_HOLE | NBD_STATE_ZERO)
     && get_be32(p + 32) == 8192 && get_be32(p + 36) == 0
     && get_be32(p + 40) == 65536 - 12288 && get_be32(p + 44) == (NBD_STATE_HOLE | NBD_STATE_ZERO),
     "descriptors: hole (trimmed), data, hole, as NBD states");

  /* The same map from a backend that answers BIO_EXTENTS later. */
  struct backend_ops rops = *b->ops;
  struct backend remote = *b;
  inner = b;
  rops.submit = remote_submit;
  remote.ops = &rops;
  remote.extents_remote = true;
  dx.backend = &remote;
  ok(run(&f, req(&f, NBD_CMD_BLOCK_STATUS, 0, 65536, 8)) && f.outlen == 20 + 4 + 3 * 8 && remote_submits == 1
     && get_be64(p + 8) == 8 && get_be32(p + 24) == 4096 && get_be32(p + 28) == (NBD_STATE_HOLE | NBD_STATE_ZERO)
     && get_be32(p + 32) == 8192 && get_be32(p + 36) == 0 && get_be32(p + 40) == 65536 - 12288,
     "BLOCK_STATUS through BIO_EXTENTS: the same three descriptors");
  struct request *one = req(&f, NBD_CMD_BLOCK_STATUS, 4096, 65536, 9);
  one->hdr.flags = NBD_CMD_FLAG_REQ_ONE;
  ok(run(&f, one) && f.outlen == 20 + 4 + 8 && get_be32(p + 24) == 8192 && get_be32(p + 28) == 0,
     "BIO_EXTENTS with REQ_ONE: one descriptor");
  remote_err = -EIO;
  ok(run(&f, req(&f, NBD_CMD_BLOCK_STATUS, 0, 65536, 10)) && f.outlen == 20 + 4 + 8 && get_be64(p + 8) == 10
     && get_be32(p + 24) == 65536 && get_be32(p + 28) == 0,
     "BIO_EXTENTS failing: one descriptor over the whole range, status 0");
  dx.backend = b;

  ok(f.freed == 10 && f.failed == 0 && f.send_failed == 0 && f.head == NULL,
     "every request freed once through the sink; nothing failed or left queued");
  dp_export_close(&dx);
  engine_fini(&eng);
  return tap_done();
}
