/* reply.c: reply encoders ("Simple reply message", "Structured reply chunk
 * message", "Extended reply chunk message", "Structured reply types"). */
#include <string.h>

#include "common/wire.h"
#include "proto/nbd-protocol.h"
#include "proto/reply.h"

size_t proto_reply_simple(uint8_t *buf, uint64_t cookie, uint32_t nbd_error)
{
  put_be32(buf, NBD_SIMPLE_REPLY_MAGIC);
  put_be32(buf + 4, nbd_error);
  put_be64(buf + 8, cookie);
  return 16;
}

size_t proto_reply_chunk(uint8_t *buf, const struct proto_session *s, const struct proto_request *req,
                         uint16_t flags, uint16_t type, uint64_t payload_len)
{
  if (s->extended) {
    put_be32(buf, NBD_EXTENDED_REPLY_MAGIC);
    put_be16(buf + 4, flags);
    put_be16(buf + 6, type);
    put_be64(buf + 8, req->cookie);
    put_be64(buf + 16, req->offset);   /* "MUST match the request" */
    put_be64(buf + 24, payload_len);
    return 32;
  }
  put_be32(buf, NBD_STRUCTURED_REPLY_MAGIC);
  put_be16(buf + 4, flags);
  put_be16(buf + 6, type);
  put_be64(buf + 8, req->cookie);
  put_be32(buf + 16, (uint32_t)payload_len);
  return 20;
}

size_t proto_reply_offset_data(uint8_t *buf, const struct proto_session *s, const struct proto_request *req,
                               uint16_t flags, uint64_t offset, uint32_t data_len)
{
  size_t n = proto_reply_chunk(buf, s, req, flags, NBD_REPLY_TYPE_OFFSET_DATA, 8 + (uint64_t)data_len);
  put_be64(buf + n, offset);
  return n + 8;
}

size_t proto_reply_offset_hole(uint8_t *buf, const struct proto_session *s, const struct proto_request *req,
                               uint16_t flags, uint64_t offset, uint32_t hole_len)
{
  size_t n = proto_reply_chunk(buf, s, req, flags, NBD_REPLY_TYPE_OFFSET_HOLE, 12);
  put_be64(buf + n, offset);
  put_be32(buf + n + 8, hole_len);
  return n + 12;
}

size_t proto_reply_error_chunk(uint8_t *buf, const struct proto_session *s, const struct proto_request *req,
                               uint16_t flags, uint32_t nbd_error, const char *msg,
                               int with_offset, uint64_t error_offset)
{
  size_t ml = msg ? strnlen(msg, PROTO_REPLY_MSG_MAX) : 0;
  size_t plen = 6 + ml + (with_offset ? 8 : 0);
  size_t n = proto_reply_chunk(buf, s, req, flags,
                               with_offset ? NBD_REPLY_TYPE_ERROR_OFFSET : NBD_REPLY_TYPE_ERROR, plen);

  put_be32(buf + n, nbd_error ? nbd_error : NBD_EIO);  /* "error (MUST be nonzero)" */
  put_be16(buf + n + 4, (uint16_t)ml);
  if (ml)
    memcpy(buf + n + 6, msg, ml);
  if (with_offset)
    put_be64(buf + n + 6 + ml, error_offset);
  return n + plen;
}

size_t proto_reply_status(uint8_t *buf, const struct proto_session *s, const struct proto_request *req,
                          uint32_t nbd_error, const char *msg)
{
  if (!proto_uses_chunks(s))
    return proto_reply_simple(buf, req->cookie, nbd_error);
  if (nbd_error)
    return proto_reply_error_chunk(buf, s, req, NBD_REPLY_FLAG_DONE, nbd_error, msg, 0, 0);
  return proto_reply_chunk(buf, s, req, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, 0);
}

size_t proto_block_status_size(const struct proto_session *s, size_t n)
{
  return s->extended ? 32 + 8 + 16 * n : 20 + 4 + 8 * n;
}

size_t proto_reply_block_status(uint8_t *buf, const struct proto_session *s, const struct proto_request *req,
                                uint32_t context_id, const struct proto_extent *ext, size_t n)
{
  size_t pos;

  if (s->extended) {
    pos = proto_reply_chunk(buf, s, req, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS_EXT, 8 + 16 * (uint64_t)n);
    put_be32(buf + pos, context_id);
    put_be32(buf + pos + 4, (uint32_t)n);
    pos += 8;
    for (size_t i = 0; i < n; i++, pos += 16) {
      put_be64(buf + pos, ext[i].length);
      put_be64(buf + pos + 8, ext[i].flags);
    }
    return pos;
  }
  pos = proto_reply_chunk(buf, s, req, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS, 4 + 8 * (uint64_t)n);
  put_be32(buf + pos, context_id);
  pos += 4;
  for (size_t i = 0; i < n; i++, pos += 8) {
    put_be32(buf + pos, (uint32_t)ext[i].length);
    put_be32(buf + pos + 4, ext[i].flags);
  }
  return pos;
}
