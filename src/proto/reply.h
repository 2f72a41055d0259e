/* reply.h: encoders for transmission replies: simple, structured and extended
 * headers, OFFSET_DATA/OFFSET_HOLE, BLOCK_STATUS(_EXT), ERROR/ERROR_OFFSET.
 * Each writes into a caller buffer of a documented maximum size and returns
 * the number of bytes written; payload data itself is never copied. */
#ifndef SHUNT_PROTO_REPLY_H
#define SHUNT_PROTO_REPLY_H

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

#endif
