/* option.c: handshake message encoding and decoding (see option.h). */
#include "proto/option.h"

#include <errno.h>
#include <string.h>

#include "common/wire.h"
#include "proto/nbd-protocol.h"

_Static_assert(PROTO_GREETING_SIZE == sizeof(struct nbd_new_handshake), "greeting");
_Static_assert(PROTO_OPT_SIZE == sizeof(struct nbd_option), "option");
_Static_assert(PROTO_OPT_REPLY_SIZE == sizeof(struct nbd_fixed_new_option_reply), "option reply");
_Static_assert(PROTO_INFO_EXPORT_SIZE == sizeof(struct nbd_info_export), "info export");
_Static_assert(PROTO_INFO_BLOCK_SIZE_SIZE == sizeof(struct nbd_info_block_size), "info block size");
_Static_assert(PROTO_EXPORT_NAME_REPLY_FULL == sizeof(struct nbd_export_name_reply), "export name");

void proto_greeting_encode(uint8_t *buf, uint16_t gflags)
{
  put_be64(buf, NBD_MAGIC);
  put_be64(buf + 8, NBD_NEW_VERSION);
  put_be16(buf + 16, gflags);
}

int proto_greeting_decode(const uint8_t *buf, uint16_t *gflags)
{
  if (get_be64(buf) != NBD_MAGIC)
    return -EPROTO;
  if (get_be64(buf + 8) != NBD_NEW_VERSION)
    return -EPROTONOSUPPORT;
  *gflags = get_be16(buf + 16);
  return 0;
}

void proto_opt_encode(uint8_t *buf, uint32_t option, uint32_t len)
{
  put_be64(buf, NBD_NEW_VERSION);
  put_be32(buf + 8, option);
  put_be32(buf + 12, len);
}

int proto_opt_decode(const uint8_t *buf, uint32_t *option, uint32_t *len)
{
  if (get_be64(buf) != NBD_NEW_VERSION)
    return -EPROTO;
  *option = get_be32(buf + 8);
  *len = get_be32(buf + 12);
  return 0;
}

void proto_opt_reply_encode(uint8_t *buf, uint32_t option, uint32_t reply, uint32_t len)
{
  put_be64(buf, NBD_REP_MAGIC);
  put_be32(buf + 8, option);
  put_be32(buf + 12, reply);
  put_be32(buf + 16, len);
}

int proto_opt_reply_decode(const uint8_t *buf, uint32_t want_option, uint32_t *reply,
                           uint32_t *len)
{
  if (get_be64(buf) != NBD_REP_MAGIC || get_be32(buf + 8) != want_option)
    return -EPROTO;
  *reply = get_be32(buf + 12);
  *len = get_be32(buf + 16);
  return 0;
}

void proto_info_export_encode(uint8_t *buf, uint64_t size, uint16_t eflags)
{
  put_be16(buf, NBD_INFO_EXPORT);
  put_be64(buf + 2, size);
  put_be16(buf + 10, eflags);
}

int proto_info_export_decode(const uint8_t *buf, size_t len, uint64_t *size, uint16_t *eflags)
{
  if (len != PROTO_INFO_EXPORT_SIZE || get_be16(buf) != NBD_INFO_EXPORT)
    return -EPROTO;
  *size = get_be64(buf + 2);
  *eflags = get_be16(buf + 10);
  return 0;
}

void proto_info_block_size_encode(uint8_t *buf, uint32_t minimum, uint32_t preferred,
                                  uint32_t maximum)
{
  put_be16(buf, NBD_INFO_BLOCK_SIZE);
  put_be32(buf + 2, minimum);
  put_be32(buf + 6, preferred);
  put_be32(buf + 10, maximum);
}

int proto_info_block_size_decode(const uint8_t *buf, size_t len, uint32_t *minimum,
                                 uint32_t *preferred, uint32_t *maximum)
{
  if (len != PROTO_INFO_BLOCK_SIZE_SIZE || get_be16(buf) != NBD_INFO_BLOCK_SIZE)
    return -EPROTO;
  *minimum = get_be32(buf + 2);
  *preferred = get_be32(buf + 6);
  *maximum = get_be32(buf + 10);
  return 0;
}

int proto_info_type(const uint8_t *buf, size_t len, uint16_t *type)
{
  if (len < 2)
    return -EPROTO;
  *type = get_be16(buf);
  return 0;
}

size_t proto_export_name_reply_encode(uint8_t *buf, uint64_t size, uint16_t eflags,
                                      bool no_zeroes)
{
  put_be64(buf, size);
  put_be16(buf + 8, eflags);
  if (no_zeroes)
    return PROTO_EXPORT_NAME_REPLY_SHORT;
  memset(buf + PROTO_EXPORT_NAME_REPLY_SHORT, 0,
         PROTO_EXPORT_NAME_REPLY_FULL - PROTO_EXPORT_NAME_REPLY_SHORT);
  return PROTO_EXPORT_NAME_REPLY_FULL;
}

void proto_export_name_reply_decode(const uint8_t *buf, uint64_t *size, uint16_t *eflags)
{
  *size = get_be64(buf);
  *eflags = get_be16(buf + 8);
}

const char *proto_rep_name(uint32_t reply)
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
