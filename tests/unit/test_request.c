/* test_request.c: request decoding and validation (src/proto/request.c) and
 * the reply encoders (src/proto/reply.c). */
#include <errno.h>
#include <string.h>

#include "common/wire.h"
#include "proto/nbd-protocol.h"
#include "proto/reply.h"
#include "proto/request.h"
#include "tap.h"

static struct proto_export ex = {
  .name = "disk", .size = 1 << 20, .can_trim = 1, .can_zero = 1, .can_fast_zero = 1, .can_flush = 1,
  .can_fua = 1, .base_allocation = 1, .min_block = 512, .pref_block = 4096, .max_payload = 65536,
};

static size_t compact(uint8_t *b, uint16_t flags, uint16_t type, uint64_t off, uint32_t len)
{
  put_be32(b, NBD_REQUEST_MAGIC); put_be16(b + 4, flags); put_be16(b + 6, type);
  put_be64(b + 8, 0x1122334455667788ull); put_be64(b + 16, off); put_be32(b + 24, len);
  return 28;
}
static size_t extended(uint8_t *b, uint16_t flags, uint16_t type, uint64_t off, uint64_t len)
{
  put_be32(b, NBD_EXTENDED_REQUEST_MAGIC); put_be16(b + 4, flags); put_be16(b + 6, type);
  put_be64(b + 8, 42); put_be64(b + 16, off); put_be64(b + 24, len);
  return 32;
}

static uint32_t check(const struct proto_session *s, uint16_t flags, uint16_t type, uint64_t off, uint64_t len,
                      enum proto_payload_action *act)
{
  uint8_t b[32];
  struct proto_request r;
  if (s->extended) extended(b, flags, type, off, len); else compact(b, flags, type, off, (uint32_t)len);
  if (proto_request_decode(s, b, 32, &r) <= 0) return 0xdead;
  return proto_request_check(s, &r, act);
}

int main(void)
{
  struct proto_session s = { .export = &ex, .structured = 1, .strict_block_size = 1,
                             .meta_base_allocation = 1 };
  struct proto_request r;
  enum proto_payload_action act;
  uint8_t b[256];

  s.eflags = proto_export_eflags(&ex, 1);
  compact(b, 0, NBD_CMD_READ, 4096, 512);
  ok(proto_request_decode(&s, b, 27, &r) == 0, "27 bytes: need more");
  ok(proto_request_decode(&s, b, 28, &r) == 28 && r.offset == 4096 && r.length == 512
     && r.cookie == 0x1122334455667788ull && r.payload == 0, "compact read decoded");
  b[0] ^= 1;
  ok(proto_request_decode(&s, b, 28, &r) == -EPROTO, "wrong magic: -EPROTO");
  compact(b, 0, NBD_CMD_WRITE, 0, 4096);
  ok(proto_request_decode(&s, b, 28, &r) == 28 && r.payload == 4096, "compact write carries its payload");

  ok(check(&s, 0, NBD_CMD_READ, 0, 4096, &act) == 0 && act == PROTO_PAYLOAD_NONE, "aligned read ok");
  ok(check(&s, 0, NBD_CMD_READ, 1 << 20, 512, &act) == NBD_EINVAL, "read past end: EINVAL");
  ok(check(&s, 0, NBD_CMD_READ, UINT64_MAX - 100, 512, &act) == NBD_EINVAL, "offset overflow: EINVAL");
  ok(check(&s, 0, NBD_CMD_READ, 1, 512, &act) == NBD_EINVAL, "misaligned offset (strict): EINVAL");
  ok(check(&s, 0, NBD_CMD_READ, 0, 100, &act) == NBD_EINVAL, "misaligned length (strict): EINVAL");
  s.strict_block_size = 0;
  ok(check(&s, 0, NBD_CMD_READ, 1, 100, &act) == 0, "misaligned read accepted when not strict");
  s.strict_block_size = 1;
  ok(check(&s, 0, NBD_CMD_READ, 0, 131072, &act) == NBD_EINVAL, "read above max payload: EINVAL");
  ok(check(&s, 0, NBD_CMD_WRITE, 0, 131072, &act) == NBD_EINVAL && act == PROTO_PAYLOAD_DISCARD,
     "oversized write: EINVAL, payload discarded");
  ok(check(&s, 0, NBD_CMD_WRITE, 0, 4096, &act) == 0 && act == PROTO_PAYLOAD_RECEIVE, "write ok, receive payload");
  ok(check(&s, 0, 77, 0, 0, &act) == NBD_EINVAL, "unknown command: EINVAL");
  ok(check(&s, NBD_CMD_FLAG_REQ_ONE, NBD_CMD_READ, 0, 512, &act) == NBD_EINVAL, "REQ_ONE on read: EINVAL");
  ok(check(&s, NBD_CMD_FLAG_DF, NBD_CMD_READ, 0, 512, &act) == 0, "DF on read with structured ok");
  ok(check(&s, NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 0, 512, &act) == 0, "FUA write ok");
  ok(check(&s, NBD_CMD_FLAG_FAST_ZERO | NBD_CMD_FLAG_NO_HOLE, NBD_CMD_WRITE_ZEROES, 0, 1 << 20, &act) == 0,
     "write zeroes of whole export (beyond max payload) ok");
  ok(check(&s, 0, NBD_CMD_FLUSH, 5, 7, &act) == 0, "flush ignores reserved fields");
  ok(check(&s, NBD_CMD_FLAG_REQ_ONE, NBD_CMD_BLOCK_STATUS, 0, 1 << 20, &act) == 0, "block status ok");
  s.meta_base_allocation = 0;
  ok(check(&s, 0, NBD_CMD_BLOCK_STATUS, 0, 512, &act) == NBD_EINVAL, "block status without context: EINVAL");
  s.meta_base_allocation = 1;
  ex.read_only = 1;
  ok(check(&s, 0, NBD_CMD_WRITE, 0, 512, &act) == NBD_EPERM && act == PROTO_PAYLOAD_RECEIVE,
     "write on read-only: EPERM (payload still consumed)");
  ok(check(&s, 0, NBD_CMD_TRIM, 0, 512, &act) == NBD_EPERM, "trim on read-only: EPERM");
  ok(check(&s, 0, NBD_CMD_WRITE_ZEROES, 0, 512, &act) == NBD_EPERM, "zero on read-only: EPERM");
  ex.read_only = 0;

  /* Extended headers. */
  s.extended = 1; s.structured = 0;
  ok(proto_request_header_size(&s) == 32, "extended header 32 bytes");
  extended(b, NBD_CMD_FLAG_PAYLOAD_LEN, NBD_CMD_WRITE, 0, 1ull << 40);
  ok(proto_request_decode(&s, b, 32, &r) == -EPROTO, "extended payload above max: disconnect");
  ok(check(&s, NBD_CMD_FLAG_PAYLOAD_LEN, NBD_CMD_WRITE, 0, 4096, &act) == 0 && act == PROTO_PAYLOAD_RECEIVE,
     "extended write with PAYLOAD_LEN ok");
  ok(check(&s, 0, NBD_CMD_WRITE, 0, 4096, &act) == NBD_EINVAL && act == PROTO_PAYLOAD_NONE,
     "extended write without PAYLOAD_LEN: EINVAL, no payload");
  ok(check(&s, NBD_CMD_FLAG_PAYLOAD_LEN, NBD_CMD_BLOCK_STATUS, 0, 16, &act) == NBD_EINVAL
     && act == PROTO_PAYLOAD_DISCARD, "payload on block status: consumed, EINVAL");
  ok(check(&s, 0, NBD_CMD_TRIM, 0, 1ull << 33, &act) == NBD_EINVAL, "64-bit trim past end: EINVAL");
  ok(check(&s, 0, NBD_CMD_READ, 0, 4096, &act) == 0, "extended read ok");

  /* Replies. */
  struct proto_request rq = { .cookie = 7, .offset = 4096, .length = 8192 };
  ok(proto_reply_simple(b, 7, NBD_EIO) == 16 && get_be32(b) == NBD_SIMPLE_REPLY_MAGIC
     && get_be32(b + 4) == 5 && get_be64(b + 8) == 7, "simple reply");
  s.extended = 0; s.structured = 1;
  ok(proto_reply_offset_data(b, &s, &rq, 0, 4096, 1000) == 28 && get_be32(b) == NBD_STRUCTURED_REPLY_MAGIC
     && get_be16(b + 6) == NBD_REPLY_TYPE_OFFSET_DATA && get_be32(b + 16) == 1008 && get_be64(b + 20) == 4096,
     "structured OFFSET_DATA header");
  ok(proto_reply_offset_hole(b, &s, &rq, NBD_REPLY_FLAG_DONE, 8192, 4096) == 32 && get_be16(b + 4) == 1
     && get_be32(b + 16) == 12 && get_be32(b + 28) == 4096, "structured OFFSET_HOLE");
  size_t n = proto_reply_error_chunk(b, &s, &rq, NBD_REPLY_FLAG_DONE, NBD_EIO, "boom", 1, 5000);
  ok(n == 20 + 6 + 4 + 8 && get_be16(b + 6) == NBD_REPLY_TYPE_ERROR_OFFSET && get_be32(b + 16) == 18
     && get_be16(b + 24) == 4 && get_be64(b + 30) == 5000, "ERROR_OFFSET chunk");
  ok(proto_reply_status(b, &s, &rq, 0, NULL) == 20 && get_be16(b + 6) == NBD_REPLY_TYPE_NONE
     && get_be16(b + 4) == NBD_REPLY_FLAG_DONE, "structured success is NONE+DONE");
  struct proto_extent e[2] = { { 4096, 0 }, { 1ull << 20, NBD_STATE_HOLE | NBD_STATE_ZERO } };
  n = proto_reply_block_status(b, &s, &rq, 1, e, 2);
  ok(n == proto_block_status_size(&s, 2) && n == 20 + 4 + 16 && get_be32(b + 16) == 20 && get_be32(b + 20) == 1
     && get_be32(b + 32) == 1u << 20 && get_be32(b + 36) == 3, "BLOCK_STATUS chunk");
  s.extended = 1; s.structured = 0;
  n = proto_reply_block_status(b, &s, &rq, 1, e, 2);
  ok(n == 32 + 8 + 32 && get_be32(b) == NBD_EXTENDED_REPLY_MAGIC && get_be64(b + 16) == 4096
     && get_be64(b + 24) == 40 && get_be32(b + 36) == 2 && get_be64(b + 56) == 1u << 20, "BLOCK_STATUS_EXT chunk");
  ok(proto_reply_status(b, &s, &rq, NBD_EPERM, "read-only") == 32 + 6 + 9 && get_be16(b + 6) == NBD_REPLY_TYPE_ERROR,
     "extended error reply");
  s.extended = 0; s.structured = 0;
  ok(proto_reply_status(b, &s, &rq, NBD_EPERM, "x") == 16, "no chunks: simple reply");
  ok(proto_errno_to_nbd(-EROFS) == NBD_EPERM && proto_errno_to_nbd(EDQUOT) == NBD_ENOSPC
     && proto_errno_to_nbd(-EBADF) == NBD_EIO, "errno mapping");
  return tap_done();
}
