/* request.h: transmission requests, compact (28-byte) and extended (32-byte):
 * encoding (the client's side), decoding and validating (the server's side),
 * and the NBD error numbers both sides map to and from errno.  Pure: the caller
 * owns the bytes and the socket; these functions only say what the bytes mean
 * and which NBD error applies. */
#ifndef SHUNT_PROTO_REQUEST_H
#define SHUNT_PROTO_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/session.h"

/* One decoded request header. */
struct proto_request {
  uint16_t flags;
  uint16_t type;
  uint64_t cookie;
  uint64_t offset;
  uint64_t length;   /* effect length (for WRITE: the data length) */
  uint64_t payload;  /* bytes of payload that follow the header on the wire */
};

/* What the caller must do with the payload that follows a header. */
enum proto_payload_action {
  PROTO_PAYLOAD_NONE,     /* no payload */
  PROTO_PAYLOAD_RECEIVE,  /* receive it (WRITE data, <= max payload) */
  PROTO_PAYLOAD_DISCARD,  /* read and throw it away in bounded chunks, then reply with the error */
};

/* Size of a request header in this session: 28 (compact) or 32 (extended). */
size_t proto_request_header_size(const struct proto_session *s);

/* Decode one header from in[0..len).  Returns the header size consumed,
 * 0 when more bytes are needed, or -EPROTO when the client broke the protocol
 * so badly that the connection must be dropped (wrong magic; an extended
 * payload larger than the maximum payload, as "Request message" advises). */
int proto_request_decode(const struct proto_session *s, const uint8_t *in, size_t len,
                         struct proto_request *req);

/* Validate a decoded request against the session and its export.
 * Returns 0 when it may be executed, else the NBD error (NBD_EINVAL, NBD_EPERM,
 * ...) to reply with.  *action says how to treat the payload either way. */
uint32_t proto_request_check(const struct proto_session *s, const struct proto_request *req,
                             enum proto_payload_action *action);

/* Encode a request header into buf (32 bytes room): extended (32 bytes, 64-bit
 * count) or compact (28 bytes, count truncated to 32 bits: the caller keeps it
 * in range).  Returns the size written. */
size_t proto_request_encode(uint8_t *buf, bool extended, uint16_t flags, uint16_t type,
                            uint64_t cookie, uint64_t offset, uint64_t count);

/* Human-readable name of a command ("read", "write", ...), or "unknown". */
const char *proto_command_name(uint16_t type);

/* The command's name as the spec spells it ("READ", "WRITE_ZEROES", ...), or
 * "UNKNOWN". */
const char *proto_command_spec_name(uint16_t type);

/* Map a host errno (positive or negative) to an NBD error value. */
uint32_t proto_errno_to_nbd(int err);

/* Map an NBD error value to a positive host errno (unknown values become EIO). */
int proto_nbd_to_errno(uint32_t nbd_error);

#endif
