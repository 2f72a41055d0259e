/* fuzz_requests.h: drive proto_request_decode() + proto_request_check() over a
 * byte stream the way conn.c does (header, then the payload the verdict says
 * to receive or discard), checking every verdict against the export and
 * encoding the replies the server would send.  Shared by fuzz_request.c and,
 * after a handshake reaches transmission, fuzz_handshake.c. */
#ifndef SHUNT_FUZZ_REQUESTS_H
#define SHUNT_FUZZ_REQUESTS_H

#include <errno.h>

#include "fuzz_common.h"
#include "proto/reply.h"
#include "proto/request.h"

static const char fuzz_long_msg[] =
  "a message longer than PROTO_REPLY_MSG_MAX, so that the encoder must truncate it "
  "rather than overflow the header buffer it was given by the data path";

/* Encode the replies a data path could send for an accepted request, and check
 * each fits the buffer size reply.h documents. */
static inline void fuzz_encode_replies(const struct proto_session *s, const struct proto_request *req,
                                       uint8_t knob)
{
  uint8_t hdr[PROTO_REPLY_HDR_MAX];
  size_t n;

  n = proto_reply_status(hdr, s, req, 0, NULL);
  FUZZ_CHECK(n <= sizeof hdr && (n == 16 || n == 20 || n == 32));
  n = proto_reply_status(hdr, s, req, NBD_EIO, fuzz_long_msg);
  FUZZ_CHECK(n <= sizeof hdr);
  if (!proto_uses_chunks(s))
    return;
  n = proto_reply_error_chunk(hdr, s, req, 0, NBD_EIO, fuzz_long_msg, 1, req->offset);
  FUZZ_CHECK(n <= sizeof hdr);
  if (req->type == NBD_CMD_READ) {
    n = proto_reply_offset_data(hdr, s, req, 0, req->offset, (uint32_t)req->length);
    FUZZ_CHECK(n <= sizeof hdr);
    n = proto_reply_offset_hole(hdr, s, req, NBD_REPLY_FLAG_DONE, req->offset, (uint32_t)req->length);
    FUZZ_CHECK(n <= sizeof hdr);
  }
  if (req->type == NBD_CMD_BLOCK_STATUS) {
    size_t next = (req->flags & NBD_CMD_FLAG_REQ_ONE) ? 1 : 1 + (size_t)knob * 4;   /* up to 1021 */
    struct proto_extent *ext = calloc(next, sizeof *ext);
    size_t sz = proto_block_status_size(s, next);
    uint8_t *buf = malloc(sz);
    FUZZ_CHECK(ext && buf);
    for (size_t i = 0; i < next; i++)
      ext[i] = (struct proto_extent){ .length = req->length / next + 1, .flags = (uint32_t)(i & 3) };
    n = proto_reply_block_status(buf, s, req, PROTO_META_BASE_ALLOCATION_ID, ext, next);
    FUZZ_CHECK(n == sz);
    free(buf);
    free(ext);
  }
}

/* Check one verdict against what the export and session allow. */
static inline void fuzz_check_verdict(const struct proto_session *s, const struct proto_request *req,
                                      uint32_t err, enum proto_payload_action act)
{
  const struct proto_export *ex = s->export;

  FUZZ_CHECK(act == PROTO_PAYLOAD_NONE || act == PROTO_PAYLOAD_RECEIVE || act == PROTO_PAYLOAD_DISCARD);
  FUZZ_CHECK((act == PROTO_PAYLOAD_NONE) == (req->payload == 0));
  if (act == PROTO_PAYLOAD_RECEIVE)
    FUZZ_CHECK(req->type == NBD_CMD_WRITE && req->payload == req->length && req->payload <= ex->max_payload);
  if (s->extended)
    FUZZ_CHECK(req->payload <= ex->max_payload);   /* larger is a hard disconnect */
  if (err) {
    FUZZ_CHECK(err == NBD_EINVAL || err == NBD_EPERM);
    return;
  }
  FUZZ_CHECK(act != PROTO_PAYLOAD_DISCARD);
  FUZZ_CHECK(req->type <= NBD_CMD_BLOCK_STATUS && req->type != 8);
  FUZZ_CHECK(!(req->flags & ~(NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_DF
                              | NBD_CMD_FLAG_REQ_ONE | NBD_CMD_FLAG_FAST_ZERO
                              | NBD_CMD_FLAG_PAYLOAD_LEN)));
  if (req->flags & NBD_CMD_FLAG_DF)
    FUZZ_CHECK(req->type == NBD_CMD_READ && (s->structured || s->extended));
  if (req->flags & NBD_CMD_FLAG_FAST_ZERO)
    FUZZ_CHECK(req->type == NBD_CMD_WRITE_ZEROES && (s->eflags & NBD_FLAG_SEND_FAST_ZERO));
  if (req->type == NBD_CMD_WRITE && s->extended)
    FUZZ_CHECK(req->flags & NBD_CMD_FLAG_PAYLOAD_LEN);
  if (req->type == NBD_CMD_DISC || req->type == NBD_CMD_FLUSH)
    return;
  /* What conn.c and the data paths rely on from here on. */
  FUZZ_CHECK(req->offset <= ex->size && req->length <= ex->size - req->offset);
  if (req->type == NBD_CMD_READ || req->type == NBD_CMD_WRITE)
    FUZZ_CHECK(req->length <= ex->max_payload);   /* conn.c allocates this much */
  if (req->type == NBD_CMD_WRITE || req->type == NBD_CMD_TRIM || req->type == NBD_CMD_WRITE_ZEROES)
    FUZZ_CHECK(!ex->read_only);
  if (req->type == NBD_CMD_TRIM)
    FUZZ_CHECK(ex->can_trim);
  if (req->type == NBD_CMD_WRITE_ZEROES)
    FUZZ_CHECK(ex->can_zero);
  if (req->type == NBD_CMD_BLOCK_STATUS)
    FUZZ_CHECK(s->meta_base_allocation && (s->structured || s->extended));
  if (s->strict_block_size && ex->min_block > 1)
    FUZZ_CHECK(req->offset % ex->min_block == 0 && req->length % ex->min_block == 0);
}

/* Run the transmission phase over in[0..len).  Returns the number of requests
 * decoded. */
static inline unsigned fuzz_requests(const struct proto_session *s, const uint8_t *in, size_t len)
{
  size_t hsz = proto_request_header_size(s);
  unsigned nreq = 0;

  FUZZ_CHECK(hsz == (s->extended ? 32u : 28u));
  while (len > 0) {
    struct proto_request req;
    enum proto_payload_action act;
    uint32_t err;
    int n;

    memset(&req, 0xa5, sizeof req);
    n = proto_request_decode(s, in, len, &req);
    if (n == 0) {
      FUZZ_CHECK(len < hsz);
      break;
    }
    if (n < 0) {
      FUZZ_CHECK(n == -EPROTO);
      break;   /* conn.c disconnects */
    }
    FUZZ_CHECK((size_t)n == hsz);
    nreq++;
    err = proto_request_check(s, &req, &act);
    fuzz_check_verdict(s, &req, err, act);
    FUZZ_CHECK(proto_command_name(req.type) != NULL);
    if (!err)
      fuzz_encode_replies(s, &req, in[hsz - 1]);
    in += hsz;
    len -= hsz;
    if (req.type == NBD_CMD_DISC && !err)
      break;
    /* The payload (received or discarded) follows; conn.c never holds more
     * than the receive buffer of it unless it was accepted. */
    if (req.payload >= len)
      break;
    in += req.payload;
    len -= (size_t)req.payload;
  }
  return nreq;
}

#endif
