/* test_protocol_header.c: the wire structs have the sizes and field offsets
 * the NBD spec gives (a packing mistake here breaks every peer). */
#include <stddef.h>

#include "proto/nbd-protocol.h"
#include "tap.h"

int main(void)
{
  ok(sizeof(struct nbd_request) == 28, "compact request is 28 bytes");
  ok(offsetof(struct nbd_request, count) == 24, "request length at byte 24");
  ok(offsetof(struct nbd_request_ext, count) == 24, "extended request length at byte 24");
  ok(sizeof(struct nbd_structured_reply) == 20, "structured reply header is 20 bytes");
  ok(offsetof(struct nbd_extended_reply, length) == 24, "extended reply length at byte 24");
  ok(offsetof(struct nbd_fixed_new_option_reply, replylen) == 16, "option reply length at 16");
  ok(NBD_REP_ERR_UNSUP == 0x80000001u, "NBD_REP_ERR_UNSUP value");
  ok(NBD_REPLY_TYPE_ERROR_OFFSET == 32770, "ERROR_OFFSET value");
  ok(NBD_MAGIC == 0x4e42444d41474943ull, "NBDMAGIC spells NBDMAGIC");
  return tap_done();
}
