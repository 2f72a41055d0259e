/* wire.c: pure encode/decode of the NBD client side of the wire (see wire.h).
 * Every length that came off the wire is checked here, overflow-safe, before the
 * connection code trusts it. */
#include "client/wire.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "proto/nbd-protocol.h"

size_t nbd_request_encode(void *buf, bool extended, uint16_t flags, uint16_t type,
                          uint64_t cookie, uint64_t offset, uint64_t count)
{
  if (extended) {
    struct nbd_request_ext r = {
      .magic = htobe32(NBD_EXTENDED_REQUEST_MAGIC), .flags = htobe16(flags),
      .type = htobe16(type), .cookie = htobe64(cookie), .offset = htobe64(offset),
      .count = htobe64(count),
    };
    memcpy(buf, &r, sizeof r);
    return sizeof r;
  }
  struct nbd_request r = {
    .magic = htobe32(NBD_REQUEST_MAGIC), .flags = htobe16(flags), .type = htobe16(type),
    .cookie = htobe64(cookie), .offset = htobe64(offset), .count = htobe32((uint32_t)count),
  };
  memcpy(buf, &r, sizeof r);
  return sizeof r;
}

size_t nbd_reply_min_header(bool extended)
{
  return extended ? sizeof(struct nbd_extended_reply) : sizeof(struct nbd_simple_reply);
}

int nbd_reply_decode(const void *buf, size_t len, bool extended, bool structured,
                     struct nbd_reply *r, size_t *need)
{
  uint32_t magic;
  memset(r, 0, sizeof *r);
  *need = nbd_reply_min_header(extended);
  if (len < 4)
    return 1;
  memcpy(&magic, buf, 4);
  magic = be32toh(magic);
  if (extended) {
    /* Spec: with extended headers every reply is an extended chunk. */
    if (magic != NBD_EXTENDED_REPLY_MAGIC)
      return -EPROTO;
    *need = sizeof(struct nbd_extended_reply);
    if (len < *need)
      return 1;
    struct nbd_extended_reply e;
    memcpy(&e, buf, sizeof e);
    r->chunk = true;
    r->flags = be16toh(e.flags);
    r->type = be16toh(e.type);
    r->cookie = be64toh(e.cookie);
    r->offset = be64toh(e.offset);
    r->length = be64toh(e.length);
    return 0;
  }
  if (magic == NBD_SIMPLE_REPLY_MAGIC) {
    *need = sizeof(struct nbd_simple_reply);
    if (len < *need)
      return 1;
    struct nbd_simple_reply s;
    memcpy(&s, buf, sizeof s);
    r->error = be32toh(s.error);
    r->cookie = be64toh(s.cookie);
    return 0;
  }
  if (magic == NBD_STRUCTURED_REPLY_MAGIC && structured) {
    *need = sizeof(struct nbd_structured_reply);
    if (len < *need)
      return 1;
    struct nbd_structured_reply s;
    memcpy(&s, buf, sizeof s);
    r->chunk = true;
    r->flags = be16toh(s.flags);
    r->type = be16toh(s.type);
    r->cookie = be64toh(s.cookie);
    r->length = be32toh(s.length);
    return 0;
  }
  return -EPROTO;
}

int nbd_chunk_check(const struct nbd_reply *r, uint16_t cmd, bool extended,
                    uint64_t req_offset, uint64_t req_len, const char **why)
{
  *why = NULL;
  if (extended && r->offset != req_offset) {
    *why = "extended reply names another offset than the request's";
    return -EPROTO;
  }
  if (r->flags & ~(uint16_t)NBD_REPLY_FLAG_DONE) {
    /* Unknown flags are not forbidden, but none are defined: ignore them. */
  }
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
      if (r->length < sizeof(struct nbd_chunk_error) || r->length > NBD_CLIENT_MAX_ERROR_CHUNK) {
        *why = "error chunk length out of range";
        return -EPROTO;
      }
      return 0;
    }
    *why = "unknown chunk type";
    return -EPROTO;
  }
}

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

int nbd_chunk_data_decode(const void *prefix, uint64_t chunk_len, uint64_t req_offset,
                          uint64_t req_len, uint64_t *rel, uint64_t *len)
{
  uint64_t off;
  if (chunk_len <= 8)
    return -EPROTO;
  memcpy(&off, prefix, 8);
  *len = chunk_len - 8;
  return inside(be64toh(off), *len, req_offset, req_len, rel);
}

int nbd_chunk_hole_decode(const void *payload, uint64_t chunk_len, uint64_t req_offset,
                          uint64_t req_len, uint64_t *rel, uint64_t *len)
{
  struct nbd_chunk_offset_hole h;
  if (chunk_len != sizeof h)
    return -EPROTO;
  memcpy(&h, payload, sizeof h);
  *len = be32toh(h.length);
  if (*len == 0)
    return -EPROTO;
  return inside(be64toh(h.offset), *len, req_offset, req_len, rel);
}

int nbd_chunk_error_decode(const void *payload, size_t len, uint16_t type,
                           struct nbd_chunk_error_info *e)
{
  struct nbd_chunk_error h;
  memset(e, 0, sizeof *e);
  if (len < sizeof h)
    return -EPROTO;
  memcpy(&h, payload, sizeof h);
  e->error = be32toh(h.error);
  e->msglen = be16toh(h.msglen);
  if (e->error == 0 || e->msglen > len - sizeof h || e->msglen > NBD_CLIENT_MAX_MESSAGE)
    return -EPROTO;
  e->msg = (const char *)payload + sizeof h;
  if (type == NBD_REPLY_TYPE_ERROR_OFFSET) {
    if (len - sizeof h - e->msglen != 8)
      return -EPROTO;
    uint64_t o;
    memcpy(&o, e->msg + e->msglen, 8);
    e->has_offset = true;
    e->offset = be64toh(o);
  }
  return 0;
}

size_t nbd_bs_head_size(bool ext_type) { return ext_type ? 8 : 4; }
size_t nbd_bs_desc_size(bool ext_type) { return ext_type ? 16 : 8; }

int nbd_bs_head_decode(const void *head, uint64_t chunk_len, bool ext_type,
                       uint32_t *context_id, uint64_t *ndesc)
{
  size_t hs = nbd_bs_head_size(ext_type), ds = nbd_bs_desc_size(ext_type);
  uint32_t v;
  if (chunk_len < hs + ds || (chunk_len - hs) % ds)
    return -EPROTO;
  memcpy(&v, head, 4);
  *context_id = be32toh(v);
  *ndesc = (chunk_len - hs) / ds;
  if (*ndesc > NBD_CLIENT_MAX_EXTENTS)
    return -EPROTO;
  if (ext_type) {
    memcpy(&v, (const char *)head + 4, 4);
    if (be32toh(v) != *ndesc)
      return -EPROTO;
  }
  return 0;
}

int nbd_bs_desc_decode(const void *desc, bool ext_type, uint64_t *length, uint32_t *flags)
{
  if (ext_type) {
    struct nbd_block_descriptor_ext d;
    memcpy(&d, desc, sizeof d);
    *length = be64toh(d.length);
    uint64_t st = be64toh(d.status_flags);
    if (st >> 32)
      return -EPROTO;
    *flags = (uint32_t)st;
  } else {
    struct nbd_block_descriptor d;
    memcpy(&d, desc, sizeof d);
    *length = be32toh(d.length);
    *flags = be32toh(d.status_flags);
  }
  return *length ? 0 : -EPROTO;
}

int nbd_error_to_errno(uint32_t e)
{
  switch (e) {
  case NBD_EPERM: return EPERM;
  case NBD_EIO: return EIO;
  case NBD_ENOMEM: return ENOMEM;
  case NBD_EINVAL: return EINVAL;
  case NBD_ENOSPC: return ENOSPC;
  case NBD_EOVERFLOW: return EOVERFLOW;
  case NBD_ENOTSUP: return ENOTSUP;
  case NBD_ESHUTDOWN: return ESHUTDOWN;
  default: return EIO;
  }
}

int nbd_opt_reply_decode(const void *buf, uint32_t want_option, uint32_t *reply, uint32_t *len)
{
  struct nbd_fixed_new_option_reply r;
  memcpy(&r, buf, sizeof r);
  if (be64toh(r.magic) != NBD_REP_MAGIC || be32toh(r.option) != want_option)
    return -EPROTO;
  *reply = be32toh(r.reply);
  *len = be32toh(r.replylen);
  return 0;
}

void nbd_opt_encode(void *buf, uint32_t option, uint32_t len)
{
  struct nbd_option o = {
    .version = htobe64(NBD_NEW_VERSION), .option = htobe32(option), .optlen = htobe32(len),
  };
  memcpy(buf, &o, sizeof o);
}

const char *nbd_cmd_name(uint16_t cmd)
{
  switch (cmd) {
  case NBD_CMD_READ: return "READ";
  case NBD_CMD_WRITE: return "WRITE";
  case NBD_CMD_DISC: return "DISC";
  case NBD_CMD_FLUSH: return "FLUSH";
  case NBD_CMD_TRIM: return "TRIM";
  case NBD_CMD_CACHE: return "CACHE";
  case NBD_CMD_WRITE_ZEROES: return "WRITE_ZEROES";
  case NBD_CMD_BLOCK_STATUS: return "BLOCK_STATUS";
  default: return "UNKNOWN";
  }
}

const char *nbd_rep_name(uint32_t reply)
{
  switch (reply) {
  case NBD_REP_ACK: return "ACK";
  case NBD_REP_SERVER: return "SERVER";
  case NBD_REP_INFO: return "INFO";
  case NBD_REP_META_CONTEXT: return "META_CONTEXT";
  case NBD_REP_ERR_UNSUP: return "ERR_UNSUP";
  case NBD_REP_ERR_POLICY: return "ERR_POLICY (forbidden by server policy)";
  case NBD_REP_ERR_INVALID: return "ERR_INVALID";
  case NBD_REP_ERR_PLATFORM: return "ERR_PLATFORM";
  case NBD_REP_ERR_TLS_REQD: return "ERR_TLS_REQD (server requires TLS)";
  case NBD_REP_ERR_UNKNOWN: return "ERR_UNKNOWN (no such export)";
  case NBD_REP_ERR_SHUTDOWN: return "ERR_SHUTDOWN";
  case NBD_REP_ERR_BLOCK_SIZE_REQD: return "ERR_BLOCK_SIZE_REQD";
  case NBD_REP_ERR_TOO_BIG: return "ERR_TOO_BIG";
  case NBD_REP_ERR_EXT_HEADER_REQD: return "ERR_EXT_HEADER_REQD";
  default: return "unknown reply";
  }
}
