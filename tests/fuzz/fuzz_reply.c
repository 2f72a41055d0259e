/* fuzz_reply.c: libFuzzer harness for libshunt's reply parsing (src/proto/reply_decode.c):
 * simple replies, structured and extended chunks (OFFSET_DATA/HOLE, BLOCK_STATUS
 * and _EXT, ERROR/ERROR_OFFSET), driven as the client's receive path uses them:
 * decode a header, check the chunk against its request, decode the payload,
 * and place data in a buffer of the request's length.  Also option replies.
 * Input: byte 0 = mode: bit 0 structured, bit 1 extended, bits 2-4 command,
 * bit 7 option-reply stream; bytes 1-8 request offset, 9-12 request length
 * (big-endian); the rest = the server's bytes. */
#include <errno.h>

#include "proto/option.h"
#include "proto/reply.h"
#include "proto/request.h"
#include "fuzz_common.h"

static const uint16_t cmds[8] = {
  NBD_CMD_READ, NBD_CMD_READ, NBD_CMD_BLOCK_STATUS, NBD_CMD_BLOCK_STATUS,
  NBD_CMD_WRITE, NBD_CMD_FLUSH, NBD_CMD_TRIM, NBD_CMD_WRITE_ZEROES,
};

/* Option replies: header, then a payload the client bounds before reading. */
static void option_replies(uint32_t want, const uint8_t *p, size_t len)
{
  while (len >= 20) {
    uint32_t reply, rlen;
    if (proto_opt_reply_decode(p, want, &reply, &rlen) < 0)
      break;
    FUZZ_CHECK(get_be64(p) == NBD_REP_MAGIC && get_be32(p + 8) == want);
    FUZZ_CHECK(proto_rep_name(reply) != NULL);
    p += 20;
    len -= 20;
    if (rlen > len)
      break;
    p += rlen;
    len -= rlen;
  }
}

static void chunk_payload(const struct proto_reply *r, bool ext, uint64_t req_off, uint64_t req_len,
                          const uint8_t *pl, size_t plen, uint8_t *dst)
{
  uint64_t rel, n;

  switch (r->type) {
  case NBD_REPLY_TYPE_NONE:
    FUZZ_CHECK(plen == 0);
    break;
  case NBD_REPLY_TYPE_OFFSET_DATA:
    FUZZ_CHECK(plen > 8 && plen - 8 <= req_len);
    if (proto_chunk_data_decode(pl, plen, req_off, req_len, &rel, &n) == 0) {
      FUZZ_CHECK(n == plen - 8 && rel <= req_len && n <= req_len - rel);
      if (dst)
        memcpy(dst + rel, pl + 8, n);
    }
    break;
  case NBD_REPLY_TYPE_OFFSET_HOLE:
    FUZZ_CHECK(plen == 12);
    if (proto_chunk_hole_decode(pl, plen, req_off, req_len, &rel, &n) == 0) {
      FUZZ_CHECK(n > 0 && rel <= req_len && n <= req_len - rel);
      if (dst)
        memset(dst + rel, 0, n);
    }
    break;
  case NBD_REPLY_TYPE_BLOCK_STATUS:
  case NBD_REPLY_TYPE_BLOCK_STATUS_EXT: {
    bool et = r->type == NBD_REPLY_TYPE_BLOCK_STATUS_EXT;
    size_t hs = proto_bs_head_size(et), ds = proto_bs_desc_size(et);
    uint32_t ctx, flags;
    uint64_t nd, total = 0;
    FUZZ_CHECK(et == ext);
    if (plen < hs || proto_bs_head_decode(pl, plen, et, &ctx, &nd) < 0)
      break;
    FUZZ_CHECK(nd >= 1 && nd <= PROTO_MAX_EXTENTS && hs + nd * ds == plen);
    for (uint64_t i = 0; i < nd; i++) {
      uint64_t l;
      if (proto_bs_desc_decode(pl + hs + i * ds, et, &l, &flags) < 0)
        break;
      FUZZ_CHECK(l > 0);
      if (__builtin_add_overflow(total, l, &total))
        break;
    }
    break;
  }
  default: {
    struct proto_chunk_error e;
    FUZZ_CHECK(r->type & NBD_REPLY_TYPE_ERROR_BIT);
    FUZZ_CHECK(plen >= 6 && plen <= PROTO_MAX_ERROR_CHUNK);
    if (proto_chunk_error_decode(pl, plen, r->type, &e) < 0)
      break;
    FUZZ_CHECK(e.error != 0 && e.msglen <= plen - 6 && e.msg == (const char *)pl + 6);
    if (e.has_offset)
      FUZZ_CHECK(r->type == NBD_REPLY_TYPE_ERROR_OFFSET && 6u + e.msglen + 8u == plen);
    FUZZ_CHECK(proto_nbd_to_errno(e.error) > 0);
    break;
  }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  bool structured, ext;
  uint16_t cmd;
  uint64_t req_off, req_len;
  const uint8_t *p;
  size_t len;
  uint8_t *dst = NULL;

  if (size < 13)
    return 0;
  structured = data[0] & 1;
  ext = data[0] & 2;
  cmd = cmds[(data[0] >> 2) & 7];
  req_off = get_be64(data + 1);
  req_len = get_be32(data + 9);
  p = data + 13;
  len = size - 13;
  if (data[0] & 0x80) {
    option_replies((data[0] >> 2) & 15, p, len);
    return 0;
  }
  /* A client's READ buffer has the request's length; keep it small here. */
  if (cmd == NBD_CMD_READ && req_len <= (1u << 20))
    dst = malloc(req_len ? req_len : 1);

  while (len > 0) {
    struct proto_reply r;
    size_t need;
    const char *why = NULL;
    int rc = proto_reply_decode(p, len, ext, structured, &r, &need);

    if (rc == 1) {
      FUZZ_CHECK(need > len && need <= 32);
      break;
    }
    if (rc < 0) {
      FUZZ_CHECK(rc == -EPROTO);
      break;
    }
    FUZZ_CHECK(rc == 0 && need <= len);
    FUZZ_CHECK(need == (ext ? 32u : r.chunk ? 20u : 16u));
    FUZZ_CHECK(!ext || r.chunk);
    FUZZ_CHECK(structured || ext || !r.chunk);
    p += need;
    len -= need;
    if (!r.chunk) {
      FUZZ_CHECK(r.length == 0);
      if (cmd == NBD_CMD_READ && r.error == 0) {
        if (req_len > len)
          break;
        if (dst)
          memcpy(dst, p, req_len);
        p += req_len;
        len -= req_len;
      }
      continue;
    }
    if (proto_chunk_check(&r, cmd, ext, req_off, req_len, &why) < 0) {
      FUZZ_CHECK(why != NULL);
      break;
    }
    FUZZ_CHECK(why == NULL);
    if (r.length > len)
      break;   /* the client would wait for more */
    chunk_payload(&r, ext, req_off, req_len, p, (size_t)r.length, dst);
    p += r.length;
    len -= (size_t)r.length;
  }
  free(dst);
  return 0;
}
