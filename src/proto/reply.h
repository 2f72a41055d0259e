/* reply.h: transmission replies: simple, structured and extended headers,
 * OFFSET_DATA/OFFSET_HOLE, BLOCK_STATUS(_EXT), ERROR/ERROR_OFFSET.
 * The encoders (reply.c, the server's side) write into a caller buffer of a
 * documented maximum size and return the number of bytes written; payload data
 * itself is never copied.  The decoders (reply_decode.c, the client's side)
 * check every length that came off the wire, overflow-safe, before a caller
 * trusts it; no I/O, no allocation (the fuzzers call them directly). */
#ifndef SHUNT_PROTO_REPLY_H
#define SHUNT_PROTO_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/request.h"
#include "proto/session.h"

/* Room any single encoded header below needs (extended header + offset/hole
 * or error prefix + the longest error message we send + error offset). */
#define PROTO_REPLY_MSG_MAX 120
#define PROTO_REPLY_HDR_MAX (32 + 6 + PROTO_REPLY_MSG_MAX + 8)

/* One block status extent. */
struct proto_extent {
  uint64_t length;
  uint32_t flags;   /* NBD_STATE_HOLE | NBD_STATE_ZERO */
};

/* True when replies to this session use chunks (structured or extended). */
static inline int proto_uses_chunks(const struct proto_session *s)
{
  return s->structured || s->extended;
}

/* Simple reply header (16 bytes).  For a successful simple READ reply, the
 * data follows it. */
size_t proto_reply_simple(uint8_t *buf, uint64_t cookie, uint32_t nbd_error);

/* A chunk header, structured (20 bytes) or extended (32 bytes) as the session
 * negotiated; req supplies the cookie and (extended) the offset. */
size_t proto_reply_chunk(uint8_t *buf, const struct proto_session *s, const struct proto_request *req,
                         uint16_t flags, uint16_t type, uint64_t payload_len);

/* OFFSET_DATA header and its 8-byte offset; data_len bytes of data follow. */
size_t proto_reply_offset_data(uint8_t *buf, const struct proto_session *s, const struct proto_request *req,
                               uint16_t flags, uint64_t offset, uint32_t data_len);

/* A complete OFFSET_HOLE chunk. */
size_t proto_reply_offset_hole(uint8_t *buf, const struct proto_session *s, const struct proto_request *req,
                               uint16_t flags, uint64_t offset, uint32_t hole_len);

/* A complete ERROR chunk (or ERROR_OFFSET when with_offset), message
 * truncated to PROTO_REPLY_MSG_MAX bytes. */
size_t proto_reply_error_chunk(uint8_t *buf, const struct proto_session *s, const struct proto_request *req,
                               uint16_t flags, uint32_t nbd_error, const char *msg,
                               int with_offset, uint64_t error_offset);

/* The whole reply for a request that ends without data: a simple reply when
 * chunks are not in use, NBD_REPLY_TYPE_NONE on success, an ERROR chunk on
 * failure (always DONE).  Needs PROTO_REPLY_HDR_MAX bytes. */
size_t proto_reply_status(uint8_t *buf, const struct proto_session *s, const struct proto_request *req,
                          uint32_t nbd_error, const char *msg);

/* Bytes a BLOCK_STATUS(_EXT) chunk with n extents occupies, header included. */
size_t proto_block_status_size(const struct proto_session *s, size_t n);

/* Encode a complete BLOCK_STATUS chunk (BLOCK_STATUS_EXT when extended) with
 * the DONE flag, into buf of at least proto_block_status_size(s, n) bytes.
 * Compact extents longer than 32 bits are clamped by the caller. */
size_t proto_reply_block_status(uint8_t *buf, const struct proto_session *s, const struct proto_request *req,
                                uint32_t context_id, const struct proto_extent *ext, size_t n);

/* ---- Decoding (the client's side) ---- */

/* Largest error message and error chunk payload (error + msglen + message +
 * offset) a decoder accepts. */
#define PROTO_MAX_ERROR_MESSAGE 4096u
#define PROTO_MAX_ERROR_CHUNK (6u + PROTO_MAX_ERROR_MESSAGE + 8u)
/* Spec: servers SHOULD NOT send more than 2^20 extents per chunk. */
#define PROTO_MAX_EXTENTS (1u << 20)

/* A decoded reply header: a simple reply, or one structured/extended chunk. */
struct proto_reply {
  bool chunk;          /* structured or extended chunk (else simple reply) */
  uint32_t error;      /* simple reply: NBD error number (0 = success) */
  uint16_t flags;      /* chunk: NBD_REPLY_FLAG_* */
  uint16_t type;       /* chunk: NBD_REPLY_TYPE_* */
  uint64_t cookie;
  uint64_t offset;     /* extended chunk: the request's offset (else 0) */
  uint64_t length;     /* chunk: payload length that follows (else 0) */
};

/* Bytes the next reply header needs before any decoding (16 compact, 32 extended). */
size_t proto_reply_min_header(bool extended);

/* Decode a reply header from buf[0..len).  Returns 0 when decoded (*need = its
 * size), 1 when more bytes are needed (*need = the total header size), or
 * -EPROTO for a bad magic (including a simple reply when extended headers are
 * in use and a chunk whose extended/compact kind does not match). */
int proto_reply_decode(const uint8_t *buf, size_t len, bool extended, bool structured,
                       struct proto_reply *r, size_t *need);

/* Validate a chunk header against the request it answers (cmd is NBD_CMD_*,
 * req_len its length).  Returns 0 or -EPROTO; *why says what was wrong. */
int proto_chunk_check(const struct proto_reply *r, uint16_t cmd, bool extended,
                      uint64_t req_offset, uint64_t req_len, const char **why);

/* OFFSET_DATA: decode the 8-byte offset prefix of a chunk with payload length
 * chunk_len and check [offset, offset + chunk_len - 8) lies inside the request.
 * *rel gets the offset relative to the request, *len the data length. */
int proto_chunk_data_decode(const uint8_t *prefix, uint64_t chunk_len, uint64_t req_offset,
                            uint64_t req_len, uint64_t *rel, uint64_t *len);

/* OFFSET_HOLE: decode the 12-byte payload and check it lies inside the request. */
int proto_chunk_hole_decode(const uint8_t *payload, uint64_t chunk_len, uint64_t req_offset,
                            uint64_t req_len, uint64_t *rel, uint64_t *len);

/* An error chunk (any type with bit 15): payload[0..len). */
struct proto_chunk_error {
  uint32_t error;      /* NBD error number, nonzero */
  const char *msg;     /* points into the payload; NOT NUL-terminated */
  uint16_t msglen;
  bool has_offset;     /* ERROR_OFFSET */
  uint64_t offset;
};
int proto_chunk_error_decode(const uint8_t *payload, size_t len, uint16_t type,
                             struct proto_chunk_error *e);

/* Block status: the head (context id, and for the extended type the descriptor
 * count) is 4 or 8 bytes; descriptors are 8 or 16 bytes.  head_decode checks the
 * chunk length against the type and returns the number of descriptors. */
size_t proto_bs_head_size(bool ext_type);
size_t proto_bs_desc_size(bool ext_type);
int proto_bs_head_decode(const uint8_t *head, uint64_t chunk_len, bool ext_type,
                         uint32_t *context_id, uint64_t *ndesc);
/* Decode one descriptor; fails with -EPROTO for a zero length or a status that
 * does not fit 32 bits. */
int proto_bs_desc_decode(const uint8_t *desc, bool ext_type, uint64_t *length, uint32_t *flags);

#endif
