/* wire.h: the client side of the NBD wire format, pure (bytes in, decoded struct
 * out): request encoding, reply and chunk header decoding, chunk payload checks,
 * option reply decoding.  No I/O, no allocation: the fuzzers (tests/fuzz) call
 * these directly. */
#ifndef SHUNT_CLIENT_WIRE_H
#define SHUNT_CLIENT_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest payload of an error chunk we accept: error + msglen + message + offset. */
#define NBD_CLIENT_MAX_ERROR_CHUNK (6u + NBD_CLIENT_MAX_MESSAGE + 8u)
#define NBD_CLIENT_MAX_MESSAGE 4096u
/* Spec: servers SHOULD NOT send more than 2^20 extents per chunk. */
#define NBD_CLIENT_MAX_EXTENTS (1u << 20)

/* A decoded reply header: a simple reply, or one structured/extended chunk. */
struct nbd_reply {
  bool chunk;          /* structured or extended chunk (else simple reply) */
  uint32_t error;      /* simple reply: NBD error number (0 = success) */
  uint16_t flags;      /* chunk: NBD_REPLY_FLAG_* */
  uint16_t type;       /* chunk: NBD_REPLY_TYPE_* */
  uint64_t cookie;
  uint64_t offset;     /* extended chunk: the request's offset (else 0) */
  uint64_t length;     /* chunk: payload length that follows (else 0) */
};

/* Encode a request header into buf (32 bytes room).  Returns its size (28 or 32). */
size_t nbd_request_encode(void *buf, bool extended, uint16_t flags, uint16_t type,
                          uint64_t cookie, uint64_t offset, uint64_t count);

/* Bytes the next reply header needs before any decoding (16 compact, 32 extended). */
size_t nbd_reply_min_header(bool extended);

/* Decode a reply header from buf[0..len).  Returns 0 when decoded (*need = its
 * size), 1 when more bytes are needed (*need = the total header size), or
 * -EPROTO for a bad magic (including a simple reply when extended headers are
 * in use and a chunk whose extended/compact kind does not match). */
int nbd_reply_decode(const void *buf, size_t len, bool extended, bool structured,
                     struct nbd_reply *r, size_t *need);

/* Validate a chunk header against the request it answers (cmd is NBD_CMD_*,
 * req_len its length).  Returns 0 or -EPROTO; *why says what was wrong. */
int nbd_chunk_check(const struct nbd_reply *r, uint16_t cmd, bool extended,
                    uint64_t req_offset, uint64_t req_len, const char **why);

/* OFFSET_DATA: decode the 8-byte offset prefix of a chunk with payload length
 * chunk_len and check [offset, offset + chunk_len - 8) lies inside the request.
 * *rel gets the offset relative to the request, *len the data length. */
int nbd_chunk_data_decode(const void *prefix, uint64_t chunk_len, uint64_t req_offset,
                          uint64_t req_len, uint64_t *rel, uint64_t *len);

/* OFFSET_HOLE: decode the 12-byte payload and check it lies inside the request. */
int nbd_chunk_hole_decode(const void *payload, uint64_t chunk_len, uint64_t req_offset,
                          uint64_t req_len, uint64_t *rel, uint64_t *len);

/* An error chunk (any type with bit 15): payload[0..len). */
struct nbd_chunk_error_info {
  uint32_t error;      /* NBD error number, nonzero */
  const char *msg;     /* points into the payload; NOT NUL-terminated */
  uint16_t msglen;
  bool has_offset;     /* ERROR_OFFSET */
  uint64_t offset;
};
int nbd_chunk_error_decode(const void *payload, size_t len, uint16_t type,
                           struct nbd_chunk_error_info *e);

/* Block status: the head (context id, and for the extended type the descriptor
 * count) is 4 or 8 bytes; descriptors are 8 or 16 bytes.  head_decode checks the
 * chunk length against the type and returns the number of descriptors. */
size_t nbd_bs_head_size(bool ext_type);
size_t nbd_bs_desc_size(bool ext_type);
int nbd_bs_head_decode(const void *head, uint64_t chunk_len, bool ext_type,
                       uint32_t *context_id, uint64_t *ndesc);
/* Decode one descriptor; fails with -EPROTO for a zero length or a status that
 * does not fit 32 bits. */
int nbd_bs_desc_decode(const void *desc, bool ext_type, uint64_t *length, uint32_t *flags);

/* Map an NBD error number to a positive errno (unknown ones become EIO). */
int nbd_error_to_errno(uint32_t nbd_error);

/* Option reply header (20 bytes): returns 0 or -EPROTO for a bad magic or an
 * option that is not the one we sent. */
int nbd_opt_reply_decode(const void *buf, uint32_t want_option, uint32_t *reply,
                         uint32_t *len);

/* Encode an option header (16 bytes). */
void nbd_opt_encode(void *buf, uint32_t option, uint32_t len);

/* A readable name for an NBD_CMD_* and an NBD_REP_ERR_* value. */
const char *nbd_cmd_name(uint16_t cmd);
const char *nbd_rep_name(uint32_t reply);

#endif
