/* reply_decode.c: reply and chunk decoding for the client's side (see reply.h):
 * "Simple reply message", "Structured reply chunk message", "Extended reply
 * chunk message" and "Structured reply types" in the NBD spec.  Every length
 * that came off the wire is checked here, overflow-safe. */
#include <errno.h>
#include <string.h>

#include "common/wire.h"
#include "proto/nbd-protocol.h"
#include "proto/reply.h"

size_t proto_reply_min_header(bool extended)
{
  return extended ? sizeof(struct nbd_extended_reply) : sizeof(struct nbd_simple_reply);
}

int proto_reply_decode(const uint8_t *buf, size_t len, bool extended, bool structured,
                       struct proto_reply *r, size_t *need)
{
  memset(r, 0, sizeof *r);
  *need = proto_reply_min_header(extended);
  if (len < 4)
    return 1;
  uint32_t magic = get_be32(buf);
  if (extended) {
    /* Spec: with extended headers every reply is an extended chunk. */
    if (magic != NBD_EXTENDED_REPLY_MAGIC)
      return -EPROTO;
    *need = sizeof(struct nbd_extended_reply);
    if (len < *need)
      return 1;
    r->chunk = true;
    r->flags = get_be16(buf + 4);
    r->type = get_be16(buf + 6);
    r->cookie = get_be64(buf + 8);
    r->offset = get_be64(buf + 16);
    r->length = get_be64(buf + 24);
    return 0;
  }
  if (magic == NBD_SIMPLE_REPLY_MAGIC) {
    *need = sizeof(struct nbd_simple_reply);
    if (len < *need)
      return 1;
    r->error = get_be32(buf + 4);
    r->cookie = get_be64(buf + 8);
    return 0;
  }
  if (magic == NBD_STRUCTURED_REPLY_MAGIC && structured) {
    *need = sizeof(struct nbd_structured_reply);
    if (len < *need)
      return 1;
    r->chunk = true;
    r->flags = get_be16(buf + 4);
    r->type = get_be16(buf + 6);
    r->cookie = get_be64(buf + 8);
    r->length = get_be32(buf + 16);
    return 0;
  }
  return -EPROTO;
}

int proto_chunk_check(const struct proto_reply *r, uint16_t cmd, bool extended,
                      uint64_t req_offset, uint64_t req_len, const char **why)
{
  *why = NULL;
  if (extended && r->offset != req_offset) {
    *why = "extended reply names another offset than the request's";
    return -EPROTO;
  }
  /* Unknown flags are not forbidden, but none besides DONE are defined: ignored. */
  switch (r->type) {
  case NBD_REPLY_TYPE_NONE:
    if (r->length != 0 || !(r->flags & NBD_REPLY_FLAG_DONE)) {
      *why = "NONE chunk with a payload or without the DONE flag";
      return -EPROTO;
    }
    return 0;
  case NBD_REPLY_TYPE_OFFSET_DATA:
    if (cmd != NBD_CMD_READ) { *why = "OFFSET_DATA chunk for a non-read"; return -EPROTO; }
    if (r->length <= sizeof(struct nbd_chunk_offset_data) ||
        r->length - sizeof(struct nbd_chunk_offset_data) > req_len) {
      *why = "OFFSET_DATA chunk length out of range";
      return -EPROTO;
    }
    return 0;
  case NBD_REPLY_TYPE_OFFSET_HOLE:
    if (cmd != NBD_CMD_READ) { *why = "OFFSET_HOLE chunk for a non-read"; return -EPROTO; }
    if (r->length != sizeof(struct nbd_chunk_offset_hole)) {
      *why = "OFFSET_HOLE chunk of the wrong length";
      return -EPROTO;
    }
    return 0;
  case NBD_REPLY_TYPE_BLOCK_STATUS:
  case NBD_REPLY_TYPE_BLOCK_STATUS_EXT:
    if (cmd != NBD_CMD_BLOCK_STATUS) {
      *why = "BLOCK_STATUS chunk for another command";
      return -EPROTO;
    }
    if ((r->type == NBD_REPLY_TYPE_BLOCK_STATUS_EXT) != extended) {
      *why = "BLOCK_STATUS chunk type does not match the negotiated headers";
      return -EPROTO;
    }
    return 0;
  default:
    if (r->type & NBD_REPLY_TYPE_ERROR_BIT) {
      if (r->length < sizeof(struct nbd_chunk_error) || r->length > PROTO_MAX_ERROR_CHUNK) {
        *why = "error chunk length out of range";
        return -EPROTO;
      }
      return 0;
    }
    *why = "unknown chunk type";
    return -EPROTO;
  }
}

/* [off, off + len) within the request's range: *rel = off - req_offset. */
static int inside(uint64_t off, uint64_t len, uint64_t req_offset, uint64_t req_len,
                  uint64_t *rel)
{
  if (off < req_offset)
    return -EPROTO;
  uint64_t r = off - req_offset;
  if (r > req_len || len > req_len - r)
    return -EPROTO;
  *rel = r;
  return 0;
}

int proto_chunk_data_decode(const uint8_t *prefix, uint64_t chunk_len, uint64_t req_offset,
                            uint64_t req_len, uint64_t *rel, uint64_t *len)
{
  if (chunk_len <= sizeof(struct nbd_chunk_offset_data))
    return -EPROTO;
  *len = chunk_len - sizeof(struct nbd_chunk_offset_data);
  return inside(get_be64(prefix), *len, req_offset, req_len, rel);
}

int proto_chunk_hole_decode(const uint8_t *payload, uint64_t chunk_len, uint64_t req_offset,
                            uint64_t req_len, uint64_t *rel, uint64_t *len)
{
  if (chunk_len != sizeof(struct nbd_chunk_offset_hole))
    return -EPROTO;
  *len = get_be32(payload + 8);
  if (*len == 0)
    return -EPROTO;
  return inside(get_be64(payload), *len, req_offset, req_len, rel);
}

int proto_chunk_error_decode(const uint8_t *payload, size_t len, uint16_t type,
                             struct proto_chunk_error *e)
{
  const size_t hs = sizeof(struct nbd_chunk_error);
  memset(e, 0, sizeof *e);
  if (len < hs)
    return -EPROTO;
  e->error = get_be32(payload);
  e->msglen = get_be16(payload + 4);
  if (e->error == 0 || e->msglen > len - hs || e->msglen > PROTO_MAX_ERROR_MESSAGE)
    return -EPROTO;
  e->msg = (const char *)payload + hs;
  if (type == NBD_REPLY_TYPE_ERROR_OFFSET) {
    if (len - hs - e->msglen != 8)
      return -EPROTO;
    e->has_offset = true;
    e->offset = get_be64(payload + hs + e->msglen);
  }
  return 0;
}

size_t proto_bs_head_size(bool ext_type)
{
  return ext_type ? sizeof(struct nbd_chunk_block_status_ext_head) : 4;
}

size_t proto_bs_desc_size(bool ext_type)
{
  return ext_type ? sizeof(struct nbd_block_descriptor_ext) : sizeof(struct nbd_block_descriptor);
}

int proto_bs_head_decode(const uint8_t *head, uint64_t chunk_len, bool ext_type,
                         uint32_t *context_id, uint64_t *ndesc)
{
  size_t hs = proto_bs_head_size(ext_type), ds = proto_bs_desc_size(ext_type);
  if (chunk_len < hs + ds || (chunk_len - hs) % ds)
    return -EPROTO;
  *context_id = get_be32(head);
  *ndesc = (chunk_len - hs) / ds;
  if (*ndesc > PROTO_MAX_EXTENTS)
    return -EPROTO;
  if (ext_type && get_be32(head + 4) != *ndesc)
    return -EPROTO;
  return 0;
}

int proto_bs_desc_decode(const uint8_t *desc, bool ext_type, uint64_t *length, uint32_t *flags)
{
  if (ext_type) {
    *length = get_be64(desc);
    uint64_t st = get_be64(desc + 8);
    if (st >> 32)
      return -EPROTO;
    *flags = (uint32_t)st;
  } else {
    *length = get_be32(desc);
    *flags = get_be32(desc + 4);
  }
  return *length ? 0 : -EPROTO;
}
