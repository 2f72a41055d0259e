/* test_client_wire.c: libshunt's pure wire code: request encoding, reply header
 * decoding, chunk validation against the request, block status and error chunk
 * decoding, and the iovec slicing used for direct placement. */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "client/client.h"
#include "proto/nbd-protocol.h"
#include "tap.h"

static size_t put_chunk(unsigned char *b, bool ext, uint16_t flags, uint16_t type,
                        uint64_t cookie, uint64_t off, uint64_t len)
{
  if (ext) {
    struct nbd_extended_reply r = { htobe32(NBD_EXTENDED_REPLY_MAGIC), htobe16(flags),
                                    htobe16(type), htobe64(cookie), htobe64(off), htobe64(len) };
    memcpy(b, &r, sizeof r);
    return sizeof r;
  }
  struct nbd_structured_reply r = { htobe32(NBD_STRUCTURED_REPLY_MAGIC), htobe16(flags),
                                    htobe16(type), htobe64(cookie), htobe32((uint32_t)len) };
  memcpy(b, &r, sizeof r);
  return sizeof r;
}

int main(void)
{
  unsigned char b[64];
  struct nbd_reply r;
  size_t need;
  const char *why;

  /* Requests. */
  ok(nbd_request_encode(b, false, 1, NBD_CMD_WRITE, 7, 4096, 512) == 28 &&
     be32toh(*(uint32_t *)b) == NBD_REQUEST_MAGIC && be32toh(*(uint32_t *)(b + 24)) == 512 &&
     be64toh(*(uint64_t *)(b + 8)) == 7, "compact request encoding");
  ok(nbd_request_encode(b, true, 0, NBD_CMD_TRIM, 9, 1, UINT64_C(1) << 40) == 32 &&
     be32toh(*(uint32_t *)b) == NBD_EXTENDED_REQUEST_MAGIC &&
     be64toh(*(uint64_t *)(b + 24)) == UINT64_C(1) << 40, "extended request has 64-bit length");

  /* Simple reply: 16 bytes; a short buffer asks for more. */
  struct nbd_simple_reply s = { htobe32(NBD_SIMPLE_REPLY_MAGIC), htobe32(NBD_EIO), htobe64(42) };
  memcpy(b, &s, sizeof s);
  ok(nbd_reply_decode(b, 3, false, true, &r, &need) == 1, "3 bytes: need more");
  ok(nbd_reply_decode(b, 16, false, true, &r, &need) == 0 && !r.chunk && r.error == NBD_EIO &&
     r.cookie == 42 && need == 16, "simple reply decoded");
  ok(nbd_reply_decode(b, 16, true, true, &r, &need) == -EPROTO,
     "simple reply rejected with extended headers");

  /* Structured chunk: 16 bytes are not enough, 20 are. */
  put_chunk(b, false, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA, 5, 0, 108);
  ok(nbd_reply_decode(b, 16, false, true, &r, &need) == 1 && need == 20, "chunk needs 20 bytes");
  ok(nbd_reply_decode(b, 20, false, true, &r, &need) == 0 && r.chunk && r.length == 108 &&
     r.type == NBD_REPLY_TYPE_OFFSET_DATA && (r.flags & NBD_REPLY_FLAG_DONE), "chunk decoded");
  ok(nbd_reply_decode(b, 20, false, false, &r, &need) == -EPROTO,
     "structured chunk without negotiating structured replies");
  put_chunk(b, true, 0, NBD_REPLY_TYPE_OFFSET_HOLE, 5, 4096, 12);
  ok(nbd_reply_decode(b, 32, true, true, &r, &need) == 0 && r.offset == 4096 && r.length == 12,
     "extended chunk decoded");
  memset(b, 0xab, 16);
  ok(nbd_reply_decode(b, 16, false, true, &r, &need) == -EPROTO, "bad magic");

  /* Chunk checks against the request (offset 4096, length 100). */
  struct nbd_reply c = { .chunk = true, .type = NBD_REPLY_TYPE_OFFSET_DATA, .length = 108 };
  ok(nbd_chunk_check(&c, NBD_CMD_READ, false, 4096, 100, &why) == 0, "data chunk fits");
  c.length = 109;
  ok(nbd_chunk_check(&c, NBD_CMD_READ, false, 4096, 100, &why) == -EPROTO, "data chunk too long");
  c.length = 8;
  ok(nbd_chunk_check(&c, NBD_CMD_READ, false, 4096, 100, &why) == -EPROTO, "empty data chunk");
  c.length = 20;
  ok(nbd_chunk_check(&c, NBD_CMD_WRITE, false, 4096, 100, &why) == -EPROTO, "data chunk for a write");
  c.type = NBD_REPLY_TYPE_BLOCK_STATUS_EXT;
  ok(nbd_chunk_check(&c, NBD_CMD_BLOCK_STATUS, false, 0, 100, &why) == -EPROTO,
     "extended block status without extended headers");
  c.type = NBD_REPLY_TYPE_NONE;
  c.length = 0;
  ok(nbd_chunk_check(&c, NBD_CMD_READ, false, 0, 100, &why) == -EPROTO, "NONE without DONE");
  c.type = 77;
  ok(nbd_chunk_check(&c, NBD_CMD_READ, false, 0, 100, &why) == -EPROTO, "unknown type");
  c.type = NBD_REPLY_TYPE_ERROR;
  c.length = 100000;
  ok(nbd_chunk_check(&c, NBD_CMD_READ, false, 0, 100, &why) == -EPROTO, "huge error chunk");
  c = (struct nbd_reply){ .chunk = true, .type = NBD_REPLY_TYPE_NONE, .flags = 1, .offset = 5 };
  ok(nbd_chunk_check(&c, NBD_CMD_FLUSH, true, 0, 0, &why) == -EPROTO,
     "extended reply for another offset");

  /* Data and hole payload ranges. */
  uint64_t rel, len, off = htobe64(4096 + 50);
  ok(nbd_chunk_data_decode(&off, 8 + 50, 4096, 100, &rel, &len) == 0 && rel == 50 && len == 50,
     "data at the end of the request");
  ok(nbd_chunk_data_decode(&off, 8 + 51, 4096, 100, &rel, &len) == -EPROTO, "data past the end");
  off = htobe64(4095);
  ok(nbd_chunk_data_decode(&off, 8 + 1, 4096, 100, &rel, &len) == -EPROTO, "data before the start");
  off = htobe64(UINT64_MAX - 2);
  ok(nbd_chunk_data_decode(&off, 8 + 10, 4096, 100, &rel, &len) == -EPROTO, "offset overflow");
  struct nbd_chunk_offset_hole hole = { htobe64(4096), htobe32(100) };
  ok(nbd_chunk_hole_decode(&hole, 12, 4096, 100, &rel, &len) == 0 && rel == 0 && len == 100,
     "hole covering the request");
  hole.length = 0;
  ok(nbd_chunk_hole_decode(&hole, 12, 4096, 100, &rel, &len) == -EPROTO, "zero-length hole");

  /* Error chunks. */
  unsigned char e[32];
  struct nbd_chunk_error_info ei;
  uint32_t err = htobe32(NBD_ENOSPC);
  uint16_t ml = htobe16(4);
  memcpy(e, &err, 4); memcpy(e + 4, &ml, 2); memcpy(e + 6, "full", 4);
  ok(nbd_chunk_error_decode(e, 10, NBD_REPLY_TYPE_ERROR, &ei) == 0 && ei.error == NBD_ENOSPC &&
     ei.msglen == 4 && !memcmp(ei.msg, "full", 4), "error chunk with a message");
  ok(nbd_chunk_error_decode(e, 9, NBD_REPLY_TYPE_ERROR, &ei) == -EPROTO, "message longer than chunk");
  uint64_t eo = htobe64(777);
  memcpy(e + 10, &eo, 8);
  ok(nbd_chunk_error_decode(e, 18, NBD_REPLY_TYPE_ERROR_OFFSET, &ei) == 0 && ei.has_offset &&
     ei.offset == 777, "ERROR_OFFSET carries its offset");
  ok(nbd_error_to_errno(NBD_ENOSPC) == ENOSPC && nbd_error_to_errno(12345) == EIO, "errno mapping");

  /* Block status. */
  uint32_t head[2] = { htobe32(3), htobe32(2) };
  uint32_t ctx;
  uint64_t nd;
  ok(nbd_bs_head_decode(head, 4 + 16, false, &ctx, &nd) == 0 && ctx == 3 && nd == 2, "bs head");
  ok(nbd_bs_head_decode(head, 4 + 12, false, &ctx, &nd) == -EPROTO, "bs length not a multiple");
  ok(nbd_bs_head_decode(head, 4, false, &ctx, &nd) == -EPROTO, "bs with no descriptor");
  ok(nbd_bs_head_decode(head, 8 + 32, true, &ctx, &nd) == 0 && nd == 2, "ext bs head count matches");
  ok(nbd_bs_head_decode(head, 8 + 48, true, &ctx, &nd) == -EPROTO, "ext bs count mismatch");
  struct nbd_block_descriptor d = { htobe32(4096), htobe32(NBD_STATE_HOLE | NBD_STATE_ZERO) };
  uint32_t fl;
  ok(nbd_bs_desc_decode(&d, false, &len, &fl) == 0 && len == 4096 && fl == 3, "descriptor");
  d.length = 0;
  ok(nbd_bs_desc_decode(&d, false, &len, &fl) == -EPROTO, "zero-length descriptor");
  struct nbd_block_descriptor_ext dx = { htobe64(UINT64_C(1) << 33), htobe64(UINT64_C(1) << 32) };
  ok(nbd_bs_desc_decode(&dx, true, &len, &fl) == -EPROTO, "64-bit status rejected for base:");

  /* Option replies. */
  struct nbd_fixed_new_option_reply o = { htobe64(NBD_REP_MAGIC), htobe32(NBD_OPT_GO),
                                          htobe32(NBD_REP_ACK), htobe32(0) };
  uint32_t rep, rl;
  ok(nbd_opt_reply_decode(&o, NBD_OPT_GO, &rep, &rl) == 0 && rep == NBD_REP_ACK, "option ACK");
  ok(nbd_opt_reply_decode(&o, NBD_OPT_LIST, &rep, &rl) == -EPROTO, "reply to another option");

  /* iovec slices. */
  char m[100];
  struct iovec iov[3] = { { m, 10 }, { m + 10, 30 }, { m + 40, 60 } }, out[4];
  int n = sh_iov_slice(iov, 3, 5, 40, out, 4);
  ok(n == 3 && out[0].iov_base == m + 5 && out[0].iov_len == 5 && out[1].iov_len == 30 &&
     out[2].iov_base == m + 40 && out[2].iov_len == 5, "slice spanning three iovecs");
  n = sh_iov_slice(iov, 3, 40, 60, out, 4);
  ok(n == 1 && out[0].iov_base == m + 40 && out[0].iov_len == 60, "slice of the last iovec");
  n = sh_iov_slice(iov, 3, 0, 100, out, 2);
  ok(n == 2 && out[1].iov_len == 30, "slice bounded by max");
  return tap_done();
}
