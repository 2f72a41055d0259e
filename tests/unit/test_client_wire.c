/* test_client_wire.c: the protocol codec as libshunt uses it (src/proto/):
 * request encoding, reply header
 * decoding, chunk validation against the request, block status and error chunk
 * decoding, and the iovec slicing used for direct placement. */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "client/client.h"
#include "proto/nbd-protocol.h"
#include "proto/option.h"
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
  struct proto_reply r;
  size_t need;
  const char *why;

  /* Requests. */
  ok(proto_request_encode(b, false, 1, NBD_CMD_WRITE, 7, 4096, 512) == 28 &&
     be32toh(*(uint32_t *)b) == NBD_REQUEST_MAGIC && be32toh(*(uint32_t *)(b + 24)) == 512 &&
     be64toh(*(uint64_t *)(b + 8)) == 7, "compact request encoding");
  ok(proto_request_encode(b, true, 0, NBD_CMD_TRIM, 9, 1, UINT64_C(1) << 40) == 32 &&
     be32toh(*(uint32_t *)b) == NBD_EXTENDED_REQUEST_MAGIC &&
     be64toh(*(uint64_t *)(b + 24)) == UINT64_C(1) << 40, "extended request has 64-bit length");

  /* Simple reply: 16 bytes; a short buffer asks for more. */
  struct nbd_simple_reply s = { htobe32(NBD_SIMPLE_REPLY_MAGIC), htobe32(NBD_EIO), htobe64(42) };
  memcpy(b, &s, sizeof s);
  ok(proto_reply_decode(b, 3, false, true, &r, &need) == 1, "3 bytes: need more");
  ok(proto_reply_decode(b, 16, false, true, &r, &need) == 0 && !r.chunk && r.error == NBD_EIO &&
     r.cookie == 42 && need == 16, "simple reply decoded");
  ok(proto_reply_decode(b, 16, true, true, &r, &need) == -EPROTO,
     "simple reply rejected with extended headers");

  /* Structured chunk: 16 bytes are not enough, 20 are. */
  put_chunk(b, false, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA, 5, 0, 108);
  ok(proto_reply_decode(b, 16, false, true, &r, &need) == 1 && need == 20, "chunk needs 20 bytes");
  ok(proto_reply_decode(b, 20, false, true, &r, &need) == 0 && r.chunk && r.length == 108 &&
     r.type == NBD_REPLY_TYPE_OFFSET_DATA && (r.flags & NBD_REPLY_FLAG_DONE), "chunk decoded");
  ok(proto_reply_decode(b, 20, false, false, &r, &need) == -EPROTO,
     "structured chunk without negotiating structured replies");
  put_chunk(b, true, 0, NBD_REPLY_TYPE_OFFSET_HOLE, 5, 4096, 12);
  ok(proto_reply_decode(b, 32, true, true, &r, &need) == 0 && r.offset == 4096 && r.length == 12,
     "extended chunk decoded");
  memset(b, 0xab, 16);
  ok(proto_reply_decode(b, 16, false, true, &r, &need) == -EPROTO, "bad magic");

  /* Chunk checks against the request (offset 4096, length 100). */
  struct proto_reply c = { .chunk = true, .type = NBD_REPLY_TYPE_OFFSET_DATA, .length = 108 };
  ok(proto_chunk_check(&c, NBD_CMD_READ, false, 4096, 100, &why) == 0, "data chunk fits");
  c.length = 109;
  ok(proto_chunk_check(&c, NBD_CMD_READ, false, 4096, 100, &why) == -EPROTO, "data chunk too long");
  c.length = 8;
  ok(proto_chunk_check(&c, NBD_CMD_READ, false, 4096, 100, &why) == -EPROTO, "empty data chunk");
  c.length = 20;
  ok(proto_chunk_check(&c, NBD_CMD_WRITE, false, 4096, 100, &why) == -EPROTO, "data chunk for a write");
  c.type = NBD_REPLY_TYPE_BLOCK_STATUS_EXT;
  ok(proto_chunk_check(&c, NBD_CMD_BLOCK_STATUS, false, 0, 100, &why) == -EPROTO,
     "extended block status without extended headers");
  c.type = NBD_REPLY_TYPE_NONE;
  c.length = 0;
  ok(proto_chunk_check(&c, NBD_CMD_READ, false, 0, 100, &why) == -EPROTO, "NONE without DONE");
  c.type = 77;
  ok(proto_chunk_check(&c, NBD_CMD_READ, false, 0, 100, &why) == -EPROTO, "unknown type");
  c.type = NBD_REPLY_TYPE_ERROR;
  c.length = 100000;
  ok(proto_chunk_check(&c, NBD_CMD_READ, false, 0, 100, &why) == -EPROTO, "huge error chunk");
  c = (struct proto_reply){ .chunk = true, .type = NBD_REPLY_TYPE_NONE, .flags = 1, .offset = 5 };
  ok(proto_chunk_check(&c, NBD_CMD_FLUSH, true, 0, 0, &why) == -EPROTO,
     "extended reply for another offset");

  /* Data and hole payload ranges. */
  uint64_t rel, len, off = htobe64(4096 + 50);
  ok(proto_chunk_data_decode((const uint8_t *)&off, 8 + 50, 4096, 100, &rel, &len) == 0 && rel == 50 && len == 50,
     "data at the end of the request");
  ok(proto_chunk_data_decode((const uint8_t *)&off, 8 + 51, 4096, 100, &rel, &len) == -EPROTO, "data past the end");
  off = htobe64(4095);
  ok(proto_chunk_data_decode((const uint8_t *)&off, 8 + 1, 4096, 100, &rel, &len) == -EPROTO, "data before the start");
  off = htobe64(UINT64_MAX - 2);
  ok(proto_chunk_data_decode((const uint8_t *)&off, 8 + 10, 4096, 100, &rel, &len) == -EPROTO, "offset overflow");
  struct nbd_chunk_offset_hole hole = { htobe64(4096), htobe32(100) };
  ok(proto_chunk_hole_decode((const uint8_t *)&hole, 12, 4096, 100, &rel, &len) == 0 && rel == 0 && len == 100,
     "hole covering the request");
  hole.length = 0;
  ok(proto_chunk_hole_decode((const uint8_t *)&hole, 12, 4096, 100, &rel, &len) == -EPROTO, "zero-length hole");

  /* Error chunks. */
  unsigned char e[32];
  struct proto_chunk_error ei;
  uint32_t err = htobe32(NBD_ENOSPC);
  uint16_t ml = htobe16(4);
  memcpy(e, &err, 4); memcpy(e + 4, &ml, 2); memcpy(e + 6, "full", 4);
  ok(proto_chunk_error_decode(e, 10, NBD_REPLY_TYPE_ERROR, &ei) == 0 && ei.error == NBD_ENOSPC &&
     ei.msglen == 4 && !memcmp(ei.msg, "full", 4), "error chunk with a message");
  ok(proto_chunk_error_decode(e, 9, NBD_REPLY_TYPE_ERROR, &ei) == -EPROTO, "message longer than chunk");
  uint64_t eo = htobe64(777);
  memcpy(e + 10, &eo, 8);
  ok(proto_chunk_error_decode(e, 18, NBD_REPLY_TYPE_ERROR_OFFSET, &ei) == 0 && ei.has_offset &&
     ei.offset == 777, "ERROR_OFFSET carries its offset");
  ok(proto_nbd_to_errno(NBD_ENOSPC) == ENOSPC && proto_nbd_to_errno(12345) == EIO, "errno mapping");

  /* Block status. */
  uint32_t head[2] = { htobe32(3), htobe32(2) };
  uint32_t ctx;
  uint64_t nd;
  ok(proto_bs_head_decode((const uint8_t *)head, 4 + 16, false, &ctx, &nd) == 0 && ctx == 3 && nd == 2, "bs head");
  ok(proto_bs_head_decode((const uint8_t *)head, 4 + 12, false, &ctx, &nd) == -EPROTO, "bs length not a multiple");
  ok(proto_bs_head_decode((const uint8_t *)head, 4, false, &ctx, &nd) == -EPROTO, "bs with no descriptor");
  ok(proto_bs_head_decode((const uint8_t *)head, 8 + 32, true, &ctx, &nd) == 0 && nd == 2, "ext bs head count matches");
  ok(proto_bs_head_decode((const uint8_t *)head, 8 + 48, true, &ctx, &nd) == -EPROTO, "ext bs count mismatch");
  struct nbd_block_descriptor d = { htobe32(4096), htobe32(NBD_STATE_HOLE | NBD_STATE_ZERO) };
  uint32_t fl;
  ok(proto_bs_desc_decode((const uint8_t *)&d, false, &len, &fl) == 0 && len == 4096 && fl == 3, "descriptor");
  d.length = 0;
  ok(proto_bs_desc_decode((const uint8_t *)&d, false, &len, &fl) == -EPROTO, "zero-length descriptor");
  struct nbd_block_descriptor_ext dx = { htobe64(UINT64_C(1) << 33), htobe64(UINT64_C(1) << 32) };
  ok(proto_bs_desc_decode((const uint8_t *)&dx, true, &len, &fl) == -EPROTO, "64-bit status rejected for base:");

  /* Option replies. */
  struct nbd_fixed_new_option_reply o = { htobe64(NBD_REP_MAGIC), htobe32(NBD_OPT_GO),
                                          htobe32(NBD_REP_ACK), htobe32(0) };
  uint32_t rep, rl;
  ok(proto_opt_reply_decode((const uint8_t *)&o, NBD_OPT_GO, &rep, &rl) == 0 && rep == NBD_REP_ACK, "option ACK");
  ok(proto_opt_reply_decode((const uint8_t *)&o, NBD_OPT_LIST, &rep, &rl) == -EPROTO, "reply to another option");

  /* Handshake messages: what the server's side encodes, the client's side
   * decodes, with the byte layout of the spec's structs. */
  uint8_t hb[PROTO_EXPORT_NAME_REPLY_FULL];
  uint16_t gf, ef;
  uint32_t opt, ol, mn, pr, mx;
  uint64_t sz;
  proto_greeting_encode(hb, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
  ok(!memcmp(hb, "NBDMAGICIHAVEOPT\0\3", 18) && proto_greeting_decode(hb, &gf) == 0 && gf == 3,
     "greeting round trip");
  hb[8] = 0;
  ok(proto_greeting_decode(hb, &gf) == -EPROTONOSUPPORT, "oldstyle greeting refused");
  proto_opt_encode(hb, NBD_OPT_GO, 77);
  ok(proto_opt_decode(hb, &opt, &ol) == 0 && opt == NBD_OPT_GO && ol == 77, "option header round trip");
  hb[0] ^= 1;
  ok(proto_opt_decode(hb, &opt, &ol) == -EPROTO, "option header with a bad magic");
  proto_opt_reply_encode(hb, NBD_OPT_INFO, NBD_REP_ERR_UNKNOWN, 5);
  ok(!memcmp(hb, &(struct nbd_fixed_new_option_reply){ htobe64(NBD_REP_MAGIC), htobe32(NBD_OPT_INFO),
                   htobe32(NBD_REP_ERR_UNKNOWN), htobe32(5) }, PROTO_OPT_REPLY_SIZE) &&
     proto_opt_reply_decode(hb, NBD_OPT_INFO, &rep, &rl) == 0 && rep == NBD_REP_ERR_UNKNOWN && rl == 5,
     "option reply round trip");
  proto_info_export_encode(hb, UINT64_C(1) << 40, 0x1234);
  ok(proto_info_export_decode(hb, PROTO_INFO_EXPORT_SIZE, &sz, &ef) == 0 && sz == UINT64_C(1) << 40 &&
     ef == 0x1234, "NBD_INFO_EXPORT round trip");
  ok(proto_info_export_decode(hb, PROTO_INFO_EXPORT_SIZE - 1, &sz, &ef) == -EPROTO,
     "NBD_INFO_EXPORT of the wrong length");
  proto_info_block_size_encode(hb, 512, 4096, 1 << 25);
  ok(proto_info_block_size_decode(hb, PROTO_INFO_BLOCK_SIZE_SIZE, &mn, &pr, &mx) == 0 && mn == 512 &&
     pr == 4096 && mx == 1 << 25, "NBD_INFO_BLOCK_SIZE round trip");
  memset(hb, 0xff, sizeof hb);
  ok(proto_export_name_reply_encode(hb, 99, 7, false) == PROTO_EXPORT_NAME_REPLY_FULL &&
     hb[133] == 0 && proto_export_name_reply_encode(hb, 99, 7, true) == PROTO_EXPORT_NAME_REPLY_SHORT,
     "EXPORT_NAME reply with and without zeroes");
  proto_export_name_reply_decode(hb, &sz, &ef);
  ok(sz == 99 && ef == 7, "EXPORT_NAME reply decodes");
  ok(!strcmp(proto_rep_name(NBD_REP_ERR_EXT_HEADER_REQD), "ERR_EXT_HEADER_REQD") &&
     !strcmp(proto_command_spec_name(NBD_CMD_WRITE_ZEROES), "WRITE_ZEROES") &&
     !strcmp(proto_command_spec_name(NBD_CMD_RESIZE), "UNKNOWN"), "names");

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
