/* request.c: request header encoding, decoding and validation ("Request
 * message", "Request types" and "Error values" in the NBD spec). */
#include <errno.h>

#include "common/checked.h"
#include "common/wire.h"
#include "proto/nbd-protocol.h"
#include "proto/request.h"

size_t proto_request_header_size(const struct proto_session *s)
{
  return s->extended ? sizeof(struct nbd_request_ext) : sizeof(struct nbd_request);
}

size_t proto_request_encode(uint8_t *buf, bool extended, uint16_t flags, uint16_t type,
                            uint64_t cookie, uint64_t offset, uint64_t count)
{
  put_be32(buf, extended ? NBD_EXTENDED_REQUEST_MAGIC : NBD_REQUEST_MAGIC);
  put_be16(buf + 4, flags);
  put_be16(buf + 6, type);
  put_be64(buf + 8, cookie);
  put_be64(buf + 16, offset);
  if (extended) {
    put_be64(buf + 24, count);
    return sizeof(struct nbd_request_ext);
  }
  put_be32(buf + 24, (uint32_t)count);
  return sizeof(struct nbd_request);
}

int proto_request_decode(const struct proto_session *s, const uint8_t *in, size_t len,
                         struct proto_request *req)
{
  size_t hs = proto_request_header_size(s);

  if (len < hs)
    return 0;
  req->flags = get_be16(in + 4);
  req->type = get_be16(in + 6);
  req->cookie = get_be64(in + 8);
  req->offset = get_be64(in + 16);
  if (s->extended) {
    if (get_be32(in) != NBD_EXTENDED_REQUEST_MAGIC)
      return -EPROTO;
    req->length = get_be64(in + 24);
    if (req->flags & NBD_CMD_FLAG_PAYLOAD_LEN) {
      /* "A server SHOULD initiate hard disconnect if a client sets the
       * NBD_CMD_FLAG_PAYLOAD_LEN flag and uses a length larger than a
       * server's advertised or default maximum payload length". */
      if (req->length > s->export->max_payload)
        return -EPROTO;
      req->payload = req->length;
    } else {
      req->payload = 0;
    }
  } else {
    if (get_be32(in) != NBD_REQUEST_MAGIC)
      return -EPROTO;
    req->length = get_be32(in + 24);
    req->payload = req->type == NBD_CMD_WRITE ? req->length : 0;
  }
  return (int)hs;
}

/* Command flags each command accepts (FUA is valid for all commands). */
static uint16_t allowed_flags(const struct proto_session *s, uint16_t type)
{
  uint16_t f = NBD_CMD_FLAG_FUA;

  switch (type) {
  case NBD_CMD_READ:
    if (s->structured || s->extended)
      f |= NBD_CMD_FLAG_DF;
    break;
  case NBD_CMD_WRITE:
    if (s->extended)
      f |= NBD_CMD_FLAG_PAYLOAD_LEN;
    break;
  case NBD_CMD_WRITE_ZEROES:
    f |= NBD_CMD_FLAG_NO_HOLE;
    if (s->eflags & NBD_FLAG_SEND_FAST_ZERO)
      f |= NBD_CMD_FLAG_FAST_ZERO;
    break;
  case NBD_CMD_BLOCK_STATUS:
    f |= NBD_CMD_FLAG_REQ_ONE;
    break;
  default:
    break;
  }
  return f;
}

uint32_t proto_request_check(const struct proto_session *s, const struct proto_request *req,
                             enum proto_payload_action *action)
{
  const struct proto_export *ex = s->export;
  uint32_t align = s->strict_block_size ? ex->min_block : 1;

  /* The payload is consumed whatever the verdict, so the stream stays in sync. */
  if (req->payload == 0)
    *action = PROTO_PAYLOAD_NONE;
  else if (req->type == NBD_CMD_WRITE && req->payload <= ex->max_payload)
    *action = PROTO_PAYLOAD_RECEIVE;
  else
    *action = PROTO_PAYLOAD_DISCARD;

  switch (req->type) {
  case NBD_CMD_READ: case NBD_CMD_WRITE: case NBD_CMD_DISC: case NBD_CMD_FLUSH:
  case NBD_CMD_TRIM: case NBD_CMD_CACHE: case NBD_CMD_WRITE_ZEROES: case NBD_CMD_BLOCK_STATUS:
    break;
  default:
    return NBD_EINVAL;
  }
  if (req->flags & ~allowed_flags(s, req->type))
    return NBD_EINVAL;
  if (*action == PROTO_PAYLOAD_DISCARD)
    return NBD_EINVAL;  /* oversized WRITE, or a payload on a command without one */
  if (req->type == NBD_CMD_WRITE && s->extended && !(req->flags & NBD_CMD_FLAG_PAYLOAD_LEN))
    return NBD_EINVAL;  /* "the flag MUST be set for NBD_CMD_WRITE" */
  if (req->type == NBD_CMD_DISC || req->type == NBD_CMD_FLUSH)
    return 0;           /* offset and length are reserved: not checked */

  /* The session may be read-only on a writable export (an access rule). */
  if ((ex->read_only || (s->eflags & NBD_FLAG_READ_ONLY)) && (req->type == NBD_CMD_WRITE || req->type == NBD_CMD_TRIM
                        || req->type == NBD_CMD_WRITE_ZEROES))
    return NBD_EPERM;
  if (!range_within(req->offset, req->length, ex->size))
    return NBD_EINVAL;
  if (!is_aligned(req->offset, align) || !is_aligned(req->length, align))
    return NBD_EINVAL;
  switch (req->type) {
  case NBD_CMD_READ:
    /* A read's reply payload is bounded by the maximum payload; larger reads
     * are refused up front (the spec permits NBD_EOVERFLOW or EINVAL). */
    if (req->length > ex->max_payload)
      return NBD_EINVAL;
    break;
  case NBD_CMD_TRIM:
    if (!ex->can_trim)
      return NBD_EINVAL;
    break;
  case NBD_CMD_WRITE_ZEROES:
    if (!ex->can_zero)
      return NBD_EINVAL;
    break;
  case NBD_CMD_BLOCK_STATUS:
    /* "Servers SHOULD reply with NBD_EINVAL to clients sending
     * NBD_CMD_BLOCK_STATUS without selecting at least one metadata context". */
    if (!s->meta_base_allocation || !(s->structured || s->extended))
      return NBD_EINVAL;
    break;
  default:
    break;
  }
  return 0;
}

const char *proto_command_name(uint16_t type)
{
  static const char *const names[] = {
    "read", "write", "disc", "flush", "trim", "cache", "write_zeroes", "block_status",
  };
  return type < sizeof names / sizeof names[0] ? names[type] : "unknown";
}

const char *proto_command_spec_name(uint16_t type)
{
  static const char *const names[] = {
    "READ", "WRITE", "DISC", "FLUSH", "TRIM", "CACHE", "WRITE_ZEROES", "BLOCK_STATUS",
  };
  return type < sizeof names / sizeof names[0] ? names[type] : "UNKNOWN";
}

uint32_t proto_errno_to_nbd(int err)
{
  if (err < 0)
    err = -err;
  switch (err) {
  case 0: return 0;
  case EPERM: case EROFS: case EACCES: return NBD_EPERM;
  case ENOMEM: return NBD_ENOMEM;
  case EINVAL: return NBD_EINVAL;
  case ENOSPC: case EDQUOT: case EFBIG: return NBD_ENOSPC;
  case EOVERFLOW: return NBD_EOVERFLOW;
  case ENOTSUP: return NBD_ENOTSUP;
  case ESHUTDOWN: return NBD_ESHUTDOWN;
  default: return NBD_EIO;
  }
}

int proto_nbd_to_errno(uint32_t nbd_error)
{
  switch (nbd_error) {
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
