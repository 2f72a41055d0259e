/* test_virtio_vhost_user.c: vu_msg_check() and vu_reply_check()
 * (src/virtio/vhost_user.c): well-formed requests pass, each malformed one is
 * refused with -EPROTO and a reason, requests not served here with
 * -EOPNOTSUPP. */
#include <errno.h>
#include <string.h>

#include "tap.h"
#include "virtio/vhost_user.h"

static char err[256];

static int check(uint32_t req, uint32_t flags, uint32_t size, size_t nfds, const union vu_payload *p)
{
  struct vu_msg m;

  memset(&m, 0, sizeof m);
  m.hdr = (struct vu_msg_hdr){ req, flags, size };
  if (p)
    m.payload = *p;
  err[0] = 0;
  return vu_msg_check(&m, nfds, err, sizeof err);
}

static void test_fixed_sizes(void)
{
  union vu_payload p = { .u64 = 0 };

  ok(check(VU_GET_FEATURES, 1, 0, 0, NULL) == 0, "GET_FEATURES with no payload passes");
  ok(check(VU_GET_FEATURES, 1 | VU_FLAG_NEED_REPLY, 0, 0, NULL) == 0, "NEED_REPLY is allowed");
  ok(check(VU_GET_FEATURES, 1, 8, 0, NULL) == -EPROTO && strstr(err, "GET_FEATURES") &&
     strstr(err, "8 bytes"), "GET_FEATURES with 8 bytes is refused: %s", err);
  ok(check(VU_SET_FEATURES, 1, 8, 0, &p) == 0, "SET_FEATURES with a u64 passes");
  ok(check(VU_SET_FEATURES, 1, 4, 0, &p) == -EPROTO, "SET_FEATURES with 4 bytes is refused: %s", err);
  ok(check(VU_SET_FEATURES, 1, 8, 1, &p) == -EPROTO && strstr(err, "1 file descriptors"),
     "SET_FEATURES with an fd is refused: %s", err);
  ok(check(VU_SET_VRING_NUM, 1, 8, 0, &p) == 0, "SET_VRING_NUM with a vring state passes");
  ok(check(VU_SET_VRING_ADDR, 1, 40, 0, &p) == 0, "SET_VRING_ADDR with 40 bytes passes");
  ok(check(VU_SET_VRING_ADDR, 1, 32, 0, &p) == -EPROTO, "SET_VRING_ADDR with 32 bytes is refused: %s", err);
  ok(check(VU_GET_VRING_BASE, 1, 8, 0, &p) == 0, "GET_VRING_BASE passes");
  ok(check(VU_SET_INFLIGHT_FD, 1, 24, 1, &p) == 0, "SET_INFLIGHT_FD with 24 bytes and an fd passes");
  ok(check(VU_SET_INFLIGHT_FD, 1, 24, 0, &p) == -EPROTO, "SET_INFLIGHT_FD without fd is refused: %s", err);
  ok(check(VU_GET_INFLIGHT_FD, 1, 24, 0, &p) == 0, "GET_INFLIGHT_FD passes");
  ok(check(VU_ADD_MEM_REG, 1, 40, 1, &p) == 0, "ADD_MEM_REG with one fd passes");
  ok(check(VU_ADD_MEM_REG, 1, 40, 0, &p) == -EPROTO, "ADD_MEM_REG without fd is refused: %s", err);
  ok(check(VU_REM_MEM_REG, 1, 40, 0, &p) == 0 && check(VU_REM_MEM_REG, 1, 40, 1, &p) == 0,
     "REM_MEM_REG with no fd or one stray fd passes");
  ok(check(VU_REM_MEM_REG, 1, 40, 2, &p) == -EPROTO, "REM_MEM_REG with two fds is refused: %s", err);
  ok(check(VU_SET_BACKEND_REQ_FD, 1, 0, 1, NULL) == 0, "SET_BACKEND_REQ_FD with an fd passes");
}

static void test_header(void)
{
  ok(check(VU_SET_OWNER, 0, 0, 0, NULL) == -EPROTO && strstr(err, "version 0"),
     "version 0 is refused: %s", err);
  ok(check(VU_SET_OWNER, 2, 0, 0, NULL) == -EPROTO, "version 2 is refused: %s", err);
  ok(check(VU_SET_OWNER, 1 | VU_FLAG_REPLY, 0, 0, NULL) == -EPROTO && strstr(err, "reply flag"),
     "a request with the reply flag is refused: %s", err);
  ok(check(VU_SET_OWNER, 1, (uint32_t)VU_MAX_PAYLOAD + 1, 0, NULL) == -EPROTO,
     "a payload larger than any message is refused: %s", err);
  ok(check(0, 1, 0, 0, NULL) == -EOPNOTSUPP && strstr(err, "unknown request 0"),
     "request 0 is unknown: %s", err);
  ok(check(VU_REQUEST_MAX, 1, 0, 0, NULL) == -EOPNOTSUPP, "request %u is unknown: %s",
     VU_REQUEST_MAX, err);
  ok(check(0xffffffffu, 1, 0, 0, NULL) == -EOPNOTSUPP, "request 0xffffffff is unknown");
  ok(check(VU_POSTCOPY_ADVISE, 1, 0, 0, NULL) == -EOPNOTSUPP && strstr(err, "POSTCOPY_ADVISE"),
     "POSTCOPY_ADVISE is not supported: %s", err);
  ok(check(VU_IOTLB_MSG, 1, sizeof(struct vhost_iotlb_msg), 0, NULL) == -EOPNOTSUPP,
     "IOTLB_MSG is not supported");
  ok(!strcmp(vu_request_name(VU_SET_MEM_TABLE), "SET_MEM_TABLE") && !strcmp(vu_request_name(99), "UNKNOWN"),
     "request names");
}

static void test_vring_fd(void)
{
  union vu_payload p;

  p.u64 = 3;
  ok(check(VU_SET_VRING_KICK, 1, 8, 1, &p) == 0, "SET_VRING_KICK ring 3 with an fd passes");
  ok(check(VU_SET_VRING_KICK, 1, 8, 0, &p) == -EPROTO, "SET_VRING_KICK without fd or NOFD is refused: %s", err);
  p.u64 = 3 | VU_VRING_NOFD;
  ok(check(VU_SET_VRING_CALL, 1, 8, 0, &p) == 0, "SET_VRING_CALL with NOFD and no fd passes");
  ok(check(VU_SET_VRING_CALL, 1, 8, 1, &p) == -EPROTO, "SET_VRING_CALL with NOFD and an fd is refused: %s", err);
  p.u64 = 0x200;
  ok(check(VU_SET_VRING_ERR, 1, 8, 1, &p) == -EPROTO && strstr(err, "0x200"),
     "SET_VRING_ERR with an unused bit set is refused: %s", err);
}

static void test_mem_table(void)
{
  union vu_payload p;

  memset(&p, 0, sizeof p);
  p.memory.nregions = 2;
  ok(check(VU_SET_MEM_TABLE, 1, 8 + 2 * 32, 2, &p) == 0, "SET_MEM_TABLE with 2 regions and 2 fds passes");
  ok(check(VU_SET_MEM_TABLE, 1, 8 + 2 * 32, 1, &p) == -EPROTO, "2 regions with 1 fd are refused: %s", err);
  ok(check(VU_SET_MEM_TABLE, 1, 8 + 8 * 32, 2, &p) == -EPROTO && strstr(err, "2 regions"),
     "2 regions in a full-size payload are refused: %s", err);
  ok(check(VU_SET_MEM_TABLE, 1, 4, 0, &p) == -EPROTO, "a payload shorter than the table header is refused: %s", err);
  p.memory.nregions = 8;
  ok(check(VU_SET_MEM_TABLE, 1, 8 + 8 * 32, 8, &p) == 0, "8 regions pass");
  p.memory.nregions = 9;
  ok(check(VU_SET_MEM_TABLE, 1, 8 + 8 * 32, 8, &p) == -EPROTO && strstr(err, "9 regions"),
     "9 regions are refused: %s", err);
  p.memory.nregions = 0;
  ok(check(VU_SET_MEM_TABLE, 1, 8, 0, &p) == -EPROTO, "0 regions are refused: %s", err);
}

static void test_config(void)
{
  union vu_payload p;

  memset(&p, 0, sizeof p);
  p.config.size = 60;
  ok(check(VU_GET_CONFIG, 1, 12 + 60, 0, &p) == 0, "GET_CONFIG of 60 bytes passes");
  ok(check(VU_GET_CONFIG, 1, 12 + 59, 0, &p) == -EPROTO, "a config payload that disagrees with its size is refused: %s", err);
  ok(check(VU_GET_CONFIG, 1, 8, 0, &p) == -EPROTO, "a payload shorter than the config header is refused: %s", err);
  p.config.offset = 200;
  ok(check(VU_SET_CONFIG, 1, 12 + 60, 0, &p) == -EPROTO && strstr(err, "offset 200"),
     "a config range past 256 bytes is refused: %s", err);
  p.config.offset = 0xffffffffu;
  ok(check(VU_SET_CONFIG, 1, 12 + 60, 0, &p) == -EPROTO, "an offset that wraps is refused");
  p.config.offset = 196;
  ok(check(VU_SET_CONFIG, 1, 12 + 60, 0, &p) == 0, "a config range ending at 256 passes");
  p.config.flags = 2;
  ok(check(VU_SET_CONFIG, 1, 12 + 60, 0, &p) == -EPROTO, "config flags 2 are refused: %s", err);
  p.config.flags = 0;
  p.config.size = 300;
  p.config.offset = 0;
  ok(check(VU_SET_CONFIG, 1, 12 + 256, 0, &p) == -EPROTO, "a config size over 256 is refused: %s", err);
}

static void test_replies(void)
{
  struct vu_msg r;

  memset(&r, 0, sizeof r);
  r.hdr = (struct vu_msg_hdr){ VU_GET_FEATURES, 1 | VU_FLAG_REPLY, 8 };
  ok(vu_reply_check(VU_GET_FEATURES, false, 0, &r, 0, err, sizeof err) == 0, "GET_FEATURES reply passes");
  r.hdr.flags = 1;
  ok(vu_reply_check(VU_GET_FEATURES, false, 0, &r, 0, err, sizeof err) == -EPROTO, "a reply without the reply flag is refused: %s", err);
  r.hdr = (struct vu_msg_hdr){ VU_GET_QUEUE_NUM, 1 | VU_FLAG_REPLY, 8 };
  ok(vu_reply_check(VU_GET_FEATURES, false, 0, &r, 0, err, sizeof err) == -EPROTO, "a reply to another request is refused: %s", err);
  r.hdr = (struct vu_msg_hdr){ VU_SET_MEM_TABLE, 1 | VU_FLAG_REPLY, 8 };
  ok(vu_reply_check(VU_SET_MEM_TABLE, true, 0, &r, 0, err, sizeof err) == 0, "an acknowledgement passes");
  ok(vu_reply_check(VU_SET_MEM_TABLE, false, 0, &r, 0, err, sizeof err) == -EPROTO, "a reply nobody asked for is refused: %s", err);
  r.hdr = (struct vu_msg_hdr){ VU_GET_CONFIG, 1 | VU_FLAG_REPLY, 12 + 60 };
  r.payload.config.size = 60;
  ok(vu_reply_check(VU_GET_CONFIG, false, 60, &r, 0, err, sizeof err) == 0, "GET_CONFIG reply of the size asked passes");
  r.hdr.size = 0;
  ok(vu_reply_check(VU_GET_CONFIG, false, 60, &r, 0, err, sizeof err) == 0, "an empty GET_CONFIG reply (failure) passes");
  r.hdr.size = 12 + 20;
  ok(vu_reply_check(VU_GET_CONFIG, false, 60, &r, 0, err, sizeof err) == -EPROTO, "GET_CONFIG reply of another size is refused: %s", err);
  r.hdr = (struct vu_msg_hdr){ VU_GET_INFLIGHT_FD, 1 | VU_FLAG_REPLY, 24 };
  ok(vu_reply_check(VU_GET_INFLIGHT_FD, false, 0, &r, 1, err, sizeof err) == 0, "GET_INFLIGHT_FD reply with an fd passes");
  ok(vu_reply_check(VU_GET_INFLIGHT_FD, false, 0, &r, 0, err, sizeof err) == -EPROTO, "GET_INFLIGHT_FD reply without fd is refused: %s", err);
  r.hdr = (struct vu_msg_hdr){ VU_GET_VRING_BASE, 1 | VU_FLAG_REPLY, 8 };
  ok(vu_reply_check(VU_GET_VRING_BASE, false, 0, &r, 0, err, sizeof err) == 0, "GET_VRING_BASE reply passes");
}

int main(void)
{
  ok(VU_MAX_PAYLOAD >= 12 + VU_CONFIG_SPACE_MAX && VU_MAX_PAYLOAD >= 8 + 8 * 32,
     "the payload bound (%zu) holds the largest config and memory table", VU_MAX_PAYLOAD);
  test_fixed_sizes();
  test_header();
  test_vring_fd();
  test_mem_table();
  test_config();
  test_replies();
  return tap_done();
}
