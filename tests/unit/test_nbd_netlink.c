/* test_nbd_netlink.c: the generic-netlink messages for the kernel nbd driver, byte by
 * byte (what the kernel would parse), and the parsing of kernel answers, malformed
 * ones included. The real exchange with the kernel is tested in the VM tier. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <linux/genetlink.h>
#include <linux/nbd-netlink.h>
#include <linux/netlink.h>

#include "tools/nbd-netlink.h"
#include "tap.h"

/* A tiny independent writer for the kernel's side of the conversation. */
struct w {
  uint8_t b[512];
  size_t n;
};

static size_t w_raw(struct w *w, const void *p, size_t n)
{
  size_t at = w->n;
  memcpy(w->b + w->n, p, n);
  w->n += n;
  while (w->n % 4)
    w->b[w->n++] = 0;
  return at;
}
static size_t w_attr(struct w *w, uint16_t type, const void *p, uint16_t n)
{
  uint16_t h[2] = { (uint16_t)(4 + n), type };
  size_t at = w_raw(w, h, 4);
  if (n)
    w_raw(w, p, n);
  return at;
}
static void w_close(struct w *w, size_t at) /* fix a nest's length */
{
  uint16_t len = (uint16_t)(w->n - at);
  memcpy(w->b + at, &len, 2);
}
static size_t w_msg(struct w *w, uint16_t type, uint32_t seq, uint8_t cmd)
{
  struct nlmsghdr h = { .nlmsg_type = type, .nlmsg_seq = seq };
  struct genlmsghdr g = { .cmd = cmd, .version = 1 };
  size_t at = w_raw(w, &h, sizeof h);
  w_raw(w, &g, sizeof g);
  return at;
}
static void w_msg_end(struct w *w, size_t at)
{
  uint32_t len = (uint32_t)(w->n - at);
  memcpy(w->b + at, &len, 4);
}
static void w_ack(struct w *w, uint32_t seq, int32_t err)
{
  struct nlmsghdr h = { .nlmsg_len = 36, .nlmsg_type = NLMSG_ERROR, .nlmsg_seq = seq };
  struct nlmsghdr orig = { 0 };
  w_raw(w, &h, sizeof h);
  w_raw(w, &err, 4);
  w_raw(w, &orig, sizeof orig);
}

static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static void test_encode_connect(void)
{
  uint8_t m[512];
  size_t len = 0;
  int fds[2] = { 5, 7 };
  struct nbd_nl_config c = {
    .index = -1, .size_bytes = 1ull << 30, .block_size = 4096, .server_flags = 0x10d,
    .timeout_s = 30, .dead_conn_timeout_s = 60, .fds = fds, .nfds = 2,
  };
  ok(nbd_nl_encode_connect(m, sizeof m, 0x1d, 42, &c, &len) == 0, "connect encodes");
  /* 16 nlmsghdr + 4 genl + 5 u64 attributes (12 each) + sockets nest (4 + 2 * 12). */
  ok(len == 108, "connect is 108 bytes (got %zu)", len);
  ok(rd32(m) == 108, "nlmsg_len is the message length");
  ok(rd16(m + 4) == 0x1d, "nlmsg_type is the resolved family");
  ok(rd16(m + 6) == (NLM_F_REQUEST | NLM_F_ACK), "request asks for an ack");
  ok(rd32(m + 8) == 42, "seq as given");
  ok(m[16] == NBD_CMD_CONNECT && m[17] == NBD_GENL_VERSION, "genl cmd CONNECT, version 1");
  /* No NBD_ATTR_INDEX with index -1: the kernel picks a device. */
  const uint8_t *a = m + 20;
  struct { uint16_t type; uint64_t v; } want[] = {
    { NBD_ATTR_SIZE_BYTES, 1ull << 30 }, { NBD_ATTR_BLOCK_SIZE_BYTES, 4096 },
    { NBD_ATTR_SERVER_FLAGS, 0x10d }, { NBD_ATTR_TIMEOUT, 30 },
    { NBD_ATTR_DEAD_CONN_TIMEOUT, 60 },
  };
  int good = 1;
  for (size_t i = 0; i < 5; i++, a += 12)
    good &= rd16(a) == 12 && rd16(a + 2) == want[i].type && rd64(a + 4) == want[i].v;
  ok(good, "size, block size, flags, timeout, dead timeout as u64 attributes in order");
  ok(rd16(a) == 28 && rd16(a + 2) == (NBD_ATTR_SOCKETS | NLA_F_NESTED), "sockets nest, 28 bytes");
  ok(rd16(a + 4) == 12 && rd16(a + 6) == (NBD_SOCK_ITEM | NLA_F_NESTED) &&
     rd16(a + 8) == 8 && rd16(a + 10) == NBD_SOCK_FD && rd32(a + 12) == 5, "first socket item: fd 5");
  ok(rd16(a + 16) == 12 && rd32(a + 24) == 7, "second socket item: fd 7");

  c.index = 3;
  c.backend = "nbd://h/x";
  c.client_flags = NBD_NL_CFLAG_DISCONNECT_ON_CLOSE;
  ok(nbd_nl_encode_connect(m, sizeof m, 0x1d, 43, &c, &len) == 0, "connect with index encodes");
  ok(rd16(m + 22) == NBD_ATTR_INDEX && rd32(m + 24) == 3, "index attribute comes first");
  /* 108 + index (8) + client flags (12) + backend (4 + 10 padded to 12 = 16). */
  ok(len == 144, "with index, client flags and backend: 144 bytes (got %zu)", len);
  ok(nbd_nl_encode_connect(m, 100, 0x1d, 43, &c, &len) == -ENOBUFS, "too small a buffer: -ENOBUFS");
}

static void test_encode_invalid(void)
{
  uint8_t m[2048];
  size_t len;
  int fds[NBD_NL_MAX_SOCKETS + 1] = { 0 };
  struct nbd_nl_config c = { .index = -1, .size_bytes = 1 << 20, .fds = fds, .nfds = 1 };
  ok(nbd_nl_encode_connect(m, sizeof m, 1, 1, &c, &len) == 0, "minimal connect encodes");
  c.nfds = 0;
  ok(nbd_nl_encode_connect(m, sizeof m, 1, 1, &c, &len) == -EINVAL, "no socket: -EINVAL");
  c.nfds = NBD_NL_MAX_SOCKETS + 1;
  ok(nbd_nl_encode_connect(m, sizeof m, 1, 1, &c, &len) == -EINVAL, "too many sockets: -EINVAL");
  c.nfds = 1;
  fds[0] = -1;
  ok(nbd_nl_encode_connect(m, sizeof m, 1, 1, &c, &len) == -EINVAL, "negative fd: -EINVAL");
  fds[0] = 3;
  c.size_bytes = 0;
  ok(nbd_nl_encode_connect(m, sizeof m, 1, 1, &c, &len) == -EINVAL, "size 0: -EINVAL");
  c.size_bytes = 1 << 20;
  c.block_size = 1000;
  ok(nbd_nl_encode_connect(m, sizeof m, 1, 1, &c, &len) == -EINVAL, "block size 1000: -EINVAL");
  c.block_size = 256;
  ok(nbd_nl_encode_connect(m, sizeof m, 1, 1, &c, &len) == -EINVAL, "block size 256: -EINVAL");
  c.block_size = 0;
  c.index = -2;
  ok(nbd_nl_encode_connect(m, sizeof m, 1, 1, &c, &len) == -EINVAL, "index -2: -EINVAL");
  c.index = -1;
  ok(nbd_nl_encode_reconfigure(m, sizeof m, 1, 1, &c, &len) == -EINVAL, "reconfigure needs an index");
  char big[NBD_NL_MAX_BACKEND + 1];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  c.backend = big;
  ok(nbd_nl_encode_connect(m, sizeof m, 1, 1, &c, &len) == -ENAMETOOLONG, "overlong backend refused");
}

static void test_encode_small(void)
{
  uint8_t m[128];
  size_t len;
  ok(nbd_nl_encode_getfamily(m, sizeof m, 9, &len) == 0 && len == 28, "getfamily: 28 bytes");
  ok(rd16(m + 4) == GENL_ID_CTRL && m[16] == CTRL_CMD_GETFAMILY, "getfamily goes to the controller");
  ok(rd16(m + 20) == 8 && rd16(m + 22) == CTRL_ATTR_FAMILY_NAME && !memcmp(m + 24, "nbd", 4),
     "family name \"nbd\" with its NUL");

  ok(nbd_nl_encode_disconnect(m, sizeof m, 0x1d, 5, 2, &len) == 0 && len == 28, "disconnect: 28 bytes");
  ok(m[16] == NBD_CMD_DISCONNECT && rd16(m + 22) == NBD_ATTR_INDEX && rd32(m + 24) == 2,
     "disconnect names the index");
  ok(nbd_nl_encode_status(m, sizeof m, 0x1d, 6, -1, &len) == 0 && len == 20, "status of all: no attributes");
  ok(nbd_nl_encode_status(m, sizeof m, 0x1d, 6, 4, &len) == 0 && len == 28 && rd32(m + 24) == 4,
     "status of one device names it");

  int fd = 9;
  struct nbd_nl_config c = { .index = 1, .fds = &fd, .nfds = 1, .dead_conn_timeout_s = 5 };
  ok(nbd_nl_encode_reconfigure(m, sizeof m, 0x1d, 7, &c, &len) == 0, "reconfigure encodes");
  /* 20 + index 8 + dead timeout 12 + sockets (4 + 12). */
  ok(len == 56 && m[16] == NBD_CMD_RECONFIGURE, "reconfigure: 56 bytes (got %zu)", len);
  ok(rd16(m + 22) == NBD_ATTR_INDEX && rd32(m + 24) == 1 &&
     rd16(m + 30) == NBD_ATTR_DEAD_CONN_TIMEOUT && rd64(m + 32) == 5 &&
     rd16(m + 42) == (NBD_ATTR_SOCKETS | NLA_F_NESTED) && rd32(m + 52) == 9,
     "reconfigure: index, dead timeout, the new socket");
  c.nfds = 0;
  c.dead_conn_timeout_s = 0;
  c.send_client_flags = true;
  ok(nbd_nl_encode_reconfigure(m, sizeof m, 0x1d, 7, &c, &len) == 0 && len == 40 &&
     rd16(m + 30) == NBD_ATTR_CLIENT_FLAGS && rd64(m + 32) == 0,
     "reconfigure can clear the client flags");
}

static void test_parse(void)
{
  struct w w = { 0 };
  struct nbd_nl_reply r = { 0 };
  uint32_t idx = 3;

  /* CONNECT's reply then its ack, in one datagram. */
  size_t m = w_msg(&w, 0x1d, 11, NBD_CMD_CONNECT);
  w_attr(&w, NBD_ATTR_INDEX, &idx, 4);
  w_msg_end(&w, m);
  w_ack(&w, 11, 0);
  ok(nbd_nl_parse(w.b, w.n, 11, 0x1d, &r) == 0, "connect reply parses");
  ok(r.acked && r.error == 0 && r.has_index && r.index == 3, "acked, index 3");

  /* An error ack. */
  w.n = 0;
  w_ack(&w, 12, -EBUSY);
  r = (struct nbd_nl_reply){ 0 };
  ok(nbd_nl_parse(w.b, w.n, 12, 0x1d, &r) == 0 && r.acked && r.error == -EBUSY, "error ack: -EBUSY");
  r = (struct nbd_nl_reply){ 0 };
  ok(nbd_nl_parse(w.b, w.n, 13, 0x1d, &r) == 0 && !r.acked, "another seq's ack is not ours");

  /* The controller's answer to GETFAMILY. */
  w.n = 0;
  m = w_msg(&w, GENL_ID_CTRL, 1, CTRL_CMD_NEWFAMILY);
  w_attr(&w, CTRL_ATTR_FAMILY_NAME, "nbd", 4);
  uint16_t fam = 0x21;
  w_attr(&w, CTRL_ATTR_FAMILY_ID, &fam, 2);
  size_t groups = w_attr(&w, CTRL_ATTR_MCAST_GROUPS | NLA_F_NESTED, NULL, 0);
  size_t g1 = w_attr(&w, 1 | NLA_F_NESTED, NULL, 0);
  uint32_t other = 4, gid = 9;
  w_attr(&w, CTRL_ATTR_MCAST_GRP_ID, &other, 4);
  w_attr(&w, CTRL_ATTR_MCAST_GRP_NAME, "other", 6);
  w_close(&w, g1);
  size_t g2 = w_attr(&w, 2 | NLA_F_NESTED, NULL, 0);
  w_attr(&w, CTRL_ATTR_MCAST_GRP_NAME, "nbd_mc_group", 13);
  w_attr(&w, CTRL_ATTR_MCAST_GRP_ID, &gid, 4);
  w_close(&w, g2);
  w_close(&w, groups);
  w_msg_end(&w, m);
  w_ack(&w, 1, 0);
  r = (struct nbd_nl_reply){ 0 };
  ok(nbd_nl_parse(w.b, w.n, 1, 0, &r) == 0 && r.acked, "family reply parses");
  ok(r.family_id == 0x21 && r.mcast_group == 9, "family id 0x21, nbd_mc_group id 9 (not 'other')");

  /* STATUS: three devices, room for two. */
  w.n = 0;
  m = w_msg(&w, 0x21, 5, NBD_CMD_STATUS);
  size_t list = w_attr(&w, NBD_ATTR_DEVICE_LIST | NLA_F_NESTED, NULL, 0);
  for (uint32_t i = 0; i < 3; i++) {
    size_t item = w_attr(&w, NBD_DEVICE_ITEM | NLA_F_NESTED, NULL, 0);
    uint8_t conn = i == 1;
    w_attr(&w, NBD_DEVICE_INDEX, &i, 4);
    w_attr(&w, NBD_DEVICE_CONNECTED, &conn, 1);
    w_close(&w, item);
  }
  w_close(&w, list);
  w_msg_end(&w, m);
  w_ack(&w, 5, 0);
  struct nbd_nl_device devs[2] = { { 99, true }, { 99, true } };
  r = (struct nbd_nl_reply){ .devs = devs, .max_devs = 2 };
  ok(nbd_nl_parse(w.b, w.n, 5, 0x21, &r) == 0 && r.acked, "status reply parses");
  ok(r.ndevs == 3, "three devices reported (got %zu)", r.ndevs);
  ok(devs[0].index == 0 && !devs[0].connected && devs[1].index == 1 && devs[1].connected,
     "nbd0 free, nbd1 connected");

  /* A LINK_DEAD multicast event carries seq 0. */
  w.n = 0;
  m = w_msg(&w, 0x21, 0, NBD_CMD_LINK_DEAD);
  idx = 7;
  w_attr(&w, NBD_ATTR_INDEX, &idx, 4);
  w_msg_end(&w, m);
  r = (struct nbd_nl_reply){ 0 };
  ok(nbd_nl_parse(w.b, w.n, UINT32_MAX, 0x21, &r) == 0 && r.link_dead && r.has_index && r.index == 7,
     "LINK_DEAD event names nbd7");
  r = (struct nbd_nl_reply){ 0 };
  ok(nbd_nl_parse(w.b, w.n, UINT32_MAX, 0x22, &r) == 0 && !r.link_dead, "another family's message is ignored");

  /* Malformed input. */
  uint8_t bad[64];
  memcpy(bad, w.b, w.n);
  r = (struct nbd_nl_reply){ 0 };
  ok(nbd_nl_parse(bad, w.n - 4, UINT32_MAX, 0x21, &r) == -EBADMSG, "message longer than the datagram: -EBADMSG");
  uint32_t tiny = 8;
  memcpy(bad, &tiny, 4);
  ok(nbd_nl_parse(bad, w.n, UINT32_MAX, 0x21, &r) == -EBADMSG, "nlmsg_len below the header: -EBADMSG");
  memcpy(bad, w.b, w.n);
  uint16_t over = 40;
  memcpy(bad + 20, &over, 2);
  ok(nbd_nl_parse(bad, w.n, UINT32_MAX, 0x21, &r) == -EBADMSG, "attribute past the message: -EBADMSG");
  uint16_t small = 3;
  memcpy(bad + 20, &small, 2);
  ok(nbd_nl_parse(bad, w.n, UINT32_MAX, 0x21, &r) == -EBADMSG, "attribute below its header: -EBADMSG");
  uint16_t short_u32 = 6;
  memcpy(bad + 20, &short_u32, 2);
  ok(nbd_nl_parse(bad, w.n, UINT32_MAX, 0x21, &r) == -EBADMSG, "u32 attribute with 2 bytes: -EBADMSG");
  w.n = 0;
  struct nlmsghdr h = { .nlmsg_len = 18, .nlmsg_type = NLMSG_ERROR, .nlmsg_seq = 1 };
  w_raw(&w, &h, sizeof h);
  ok(nbd_nl_parse(w.b, 18, 1, 0x21, &r) == -EBADMSG, "truncated error message: -EBADMSG");
  ok(nbd_nl_parse(w.b, 10, 1, 0x21, &r) == 0, "a fragment shorter than a header is ignored");
}

/* Every truncation and many random corruptions of a valid STATUS + family + event
 * datagram parse without reading outside the buffer (ASan checks) and without storing
 * more devices than there is room for. */
static void test_parse_mutations(void)
{
  struct w w = { 0 };
  size_t m = w_msg(&w, 0x21, 5, NBD_CMD_STATUS);
  size_t list = w_attr(&w, NBD_ATTR_DEVICE_LIST | NLA_F_NESTED, NULL, 0);
  for (uint32_t i = 0; i < 4; i++) {
    size_t item = w_attr(&w, NBD_DEVICE_ITEM | NLA_F_NESTED, NULL, 0);
    uint8_t conn = 1;
    w_attr(&w, NBD_DEVICE_INDEX, &i, 4);
    w_attr(&w, NBD_DEVICE_CONNECTED, &conn, 1);
    w_close(&w, item);
  }
  w_close(&w, list);
  w_msg_end(&w, m);
  m = w_msg(&w, GENL_ID_CTRL, 5, CTRL_CMD_NEWFAMILY);
  size_t groups = w_attr(&w, CTRL_ATTR_MCAST_GROUPS | NLA_F_NESTED, NULL, 0);
  size_t g = w_attr(&w, 1 | NLA_F_NESTED, NULL, 0);
  w_attr(&w, CTRL_ATTR_MCAST_GRP_NAME, "nbd_mc_group", 13);
  w_close(&w, g);
  w_close(&w, groups);
  w_msg_end(&w, m);
  w_ack(&w, 5, 0);

  int overflow = 0, accepted = 0;
  for (size_t len = 0; len <= w.n; len++) {
    uint8_t *copy = malloc(len ? len : 1); /* exact size: ASan sees any overread */
    memcpy(copy, w.b, len);
    struct nbd_nl_device devs[2];
    struct nbd_nl_reply r = { .devs = devs, .max_devs = 2 };
    if (nbd_nl_parse(copy, len, 5, 0x21, &r) == 0)
      accepted++;
    free(copy);
  }
  uint32_t seed = 12345;
  for (int round = 0; round < 20000; round++) {
    uint8_t *copy = malloc(w.n);
    memcpy(copy, w.b, w.n);
    for (int k = 0; k < 1 + round % 4; k++) {
      seed = seed * 1103515245u + 12345u;
      copy[(seed >> 8) % w.n] = (uint8_t)(seed >> 20);
    }
    struct { struct nbd_nl_device d[2], sentinel; } devs = { .sentinel = { 0xdeadbeef, true } };
    struct nbd_nl_reply r = { .devs = devs.d, .max_devs = 2 };
    (void)nbd_nl_parse(copy, w.n, 5, 0x21, &r);
    overflow |= devs.sentinel.index != 0xdeadbeef;
    free(copy);
  }
  ok(accepted > 0, "truncations at every length parse or fail cleanly (%d accepted)", accepted);
  ok(!overflow, "20000 corrupted datagrams parse within their bounds");
}

int main(void)
{
  test_encode_connect();
  test_encode_invalid();
  test_encode_small();
  test_parse();
  test_parse_mutations();
  return tap_done();
}
