/* nbd-netlink.c: generic-netlink messages for the kernel nbd driver: building them,
 * parsing the kernel's answers (every length checked against the buffer), and the
 * request/ack exchange over an AF_NETLINK socket. See nbd-netlink.h. */
#include "tools/nbd-netlink.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>

#include <linux/genetlink.h>
#include <linux/nbd-netlink.h>
#include <linux/netlink.h>

/* ---- Building messages ---- */

/* A message under construction in the caller's buffer; err latches the first error. */
struct nlbuf {
  uint8_t *p;
  size_t cap, len;
  int err;
};

/* Reserve n bytes (padded to 4, zeroed); NULL (and err set) when they do not fit. */
static void *nlbuf_reserve(struct nlbuf *b, size_t n)
{
  size_t padded = NLA_ALIGN(n);
  if (b->err)
    return NULL;
  if (padded < n || padded > b->cap - b->len) {
    b->err = -ENOBUFS;
    return NULL;
  }
  void *at = b->p + b->len;
  memset(at, 0, padded);
  b->len += padded;
  return at;
}

static void put_attr(struct nlbuf *b, uint16_t type, const void *data, size_t n)
{
  struct nlattr *a = nlbuf_reserve(b, NLA_HDRLEN + n);
  if (!a)
    return;
  a->nla_len = (uint16_t)(NLA_HDRLEN + n);
  a->nla_type = type;
  memcpy((uint8_t *)a + NLA_HDRLEN, data, n);
}

static void put_u32(struct nlbuf *b, uint16_t type, uint32_t v) { put_attr(b, type, &v, sizeof v); }
static void put_u64(struct nlbuf *b, uint16_t type, uint64_t v) { put_attr(b, type, &v, sizeof v); }

/* Open a nested attribute; returns its offset for nest_end (or SIZE_MAX on error). */
static size_t nest_start(struct nlbuf *b, uint16_t type)
{
  size_t off = b->len;
  struct nlattr *a = nlbuf_reserve(b, NLA_HDRLEN);
  if (!a)
    return SIZE_MAX;
  a->nla_type = type | NLA_F_NESTED;
  return off;
}

static void nest_end(struct nlbuf *b, size_t off)
{
  if (b->err || off == SIZE_MAX)
    return;
  if (b->len - off > UINT16_MAX) {
    b->err = -ENOBUFS;
    return;
  }
  ((struct nlattr *)(b->p + off))->nla_len = (uint16_t)(b->len - off);
}

/* Start a generic-netlink request: nlmsghdr + genlmsghdr. */
static void msg_begin(struct nlbuf *b, void *buf, size_t cap, uint16_t type, uint32_t seq,
                      uint8_t cmd, uint8_t version)
{
  *b = (struct nlbuf){ .p = buf, .cap = cap };
  struct nlmsghdr *h = nlbuf_reserve(b, NLMSG_HDRLEN);
  struct genlmsghdr *g = nlbuf_reserve(b, GENL_HDRLEN);
  if (!h || !g)
    return;
  h->nlmsg_type = type;
  h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  h->nlmsg_seq = seq;
  g->cmd = cmd;
  g->version = version;
}

static int msg_end(struct nlbuf *b, size_t *len)
{
  if (b->err)
    return b->err;
  if (b->len > UINT32_MAX)
    return -ENOBUFS;
  ((struct nlmsghdr *)b->p)->nlmsg_len = (uint32_t)b->len;
  *len = b->len;
  return 0;
}

int nbd_nl_encode_getfamily(void *buf, size_t cap, uint32_t seq, size_t *len)
{
  struct nlbuf b;
  msg_begin(&b, buf, cap, GENL_ID_CTRL, seq, CTRL_CMD_GETFAMILY, 1);
  put_attr(&b, CTRL_ATTR_FAMILY_NAME, NBD_GENL_FAMILY_NAME, sizeof NBD_GENL_FAMILY_NAME);
  return msg_end(&b, len);
}

static int check_fds(const struct nbd_nl_config *cfg)
{
  if (cfg->nfds > NBD_NL_MAX_SOCKETS || (cfg->nfds && !cfg->fds))
    return -EINVAL;
  for (size_t i = 0; i < cfg->nfds; i++)
    if (cfg->fds[i] < 0)
      return -EINVAL;
  return 0;
}

static void put_sockets(struct nlbuf *b, const struct nbd_nl_config *cfg)
{
  if (!cfg->nfds)
    return;
  size_t socks = nest_start(b, NBD_ATTR_SOCKETS);
  for (size_t i = 0; i < cfg->nfds; i++) {
    size_t item = nest_start(b, NBD_SOCK_ITEM);
    put_u32(b, NBD_SOCK_FD, (uint32_t)cfg->fds[i]);
    nest_end(b, item);
  }
  nest_end(b, socks);
}

static void put_backend(struct nlbuf *b, const struct nbd_nl_config *cfg)
{
  if (cfg->backend)
    put_attr(b, NBD_ATTR_BACKEND_IDENTIFIER, cfg->backend, strlen(cfg->backend) + 1);
}

int nbd_nl_encode_connect(void *buf, size_t cap, uint16_t family, uint32_t seq,
                          const struct nbd_nl_config *cfg, size_t *len)
{
  int r = check_fds(cfg);
  if (r)
    return r;
  if (!cfg->size_bytes || !cfg->nfds || cfg->index < -1)
    return -EINVAL;
  if (cfg->block_size && (cfg->block_size < 512 || (cfg->block_size & (cfg->block_size - 1))))
    return -EINVAL;
  if (cfg->backend && strlen(cfg->backend) >= NBD_NL_MAX_BACKEND)
    return -ENAMETOOLONG;

  struct nlbuf b;
  msg_begin(&b, buf, cap, family, seq, NBD_CMD_CONNECT, NBD_GENL_VERSION);
  if (cfg->index >= 0)
    put_u32(&b, NBD_ATTR_INDEX, (uint32_t)cfg->index);
  put_u64(&b, NBD_ATTR_SIZE_BYTES, cfg->size_bytes);
  if (cfg->block_size)
    put_u64(&b, NBD_ATTR_BLOCK_SIZE_BYTES, cfg->block_size);
  put_u64(&b, NBD_ATTR_SERVER_FLAGS, cfg->server_flags);
  if (cfg->client_flags)
    put_u64(&b, NBD_ATTR_CLIENT_FLAGS, cfg->client_flags);
  if (cfg->timeout_s)
    put_u64(&b, NBD_ATTR_TIMEOUT, cfg->timeout_s);
  if (cfg->dead_conn_timeout_s)
    put_u64(&b, NBD_ATTR_DEAD_CONN_TIMEOUT, cfg->dead_conn_timeout_s);
  put_backend(&b, cfg);
  put_sockets(&b, cfg);
  return msg_end(&b, len);
}

int nbd_nl_encode_reconfigure(void *buf, size_t cap, uint16_t family, uint32_t seq,
                              const struct nbd_nl_config *cfg, size_t *len)
{
  int r = check_fds(cfg);
  if (r)
    return r;
  if (cfg->index < 0)
    return -EINVAL;
  if (cfg->backend && strlen(cfg->backend) >= NBD_NL_MAX_BACKEND)
    return -ENAMETOOLONG;

  struct nlbuf b;
  msg_begin(&b, buf, cap, family, seq, NBD_CMD_RECONFIGURE, NBD_GENL_VERSION);
  put_u32(&b, NBD_ATTR_INDEX, (uint32_t)cfg->index);
  if (cfg->timeout_s)
    put_u64(&b, NBD_ATTR_TIMEOUT, cfg->timeout_s);
  if (cfg->dead_conn_timeout_s)
    put_u64(&b, NBD_ATTR_DEAD_CONN_TIMEOUT, cfg->dead_conn_timeout_s);
  if (cfg->client_flags || cfg->send_client_flags)
    put_u64(&b, NBD_ATTR_CLIENT_FLAGS, cfg->client_flags);
  put_backend(&b, cfg);
  put_sockets(&b, cfg);
  return msg_end(&b, len);
}

int nbd_nl_encode_disconnect(void *buf, size_t cap, uint16_t family, uint32_t seq,
                             uint32_t index, size_t *len)
{
  struct nlbuf b;
  msg_begin(&b, buf, cap, family, seq, NBD_CMD_DISCONNECT, NBD_GENL_VERSION);
  put_u32(&b, NBD_ATTR_INDEX, index);
  return msg_end(&b, len);
}

int nbd_nl_encode_status(void *buf, size_t cap, uint16_t family, uint32_t seq,
                         int32_t index, size_t *len)
{
  if (index < -1)
    return -EINVAL;
  struct nlbuf b;
  msg_begin(&b, buf, cap, family, seq, NBD_CMD_STATUS, NBD_GENL_VERSION);
  if (index >= 0)
    put_u32(&b, NBD_ATTR_INDEX, (uint32_t)index);
  return msg_end(&b, len);
}

/* ---- Parsing what the kernel sends ---- */

/* Walk the attributes in p[0..len): calls fn for each, stops at its first error.
 * Trailing bytes shorter than an attribute header are padding; anything else that does
 * not fit is -EBADMSG. */
typedef int (*attr_fn)(uint16_t type, const uint8_t *data, size_t n, void *ctx);

static int walk_attrs(const uint8_t *p, size_t len, attr_fn fn, void *ctx)
{
  size_t off = 0;
  while (len - off >= NLA_HDRLEN) {
    struct nlattr a;
    memcpy(&a, p + off, sizeof a);
    if (a.nla_len < NLA_HDRLEN || a.nla_len > len - off)
      return -EBADMSG;
    int r = fn(a.nla_type & NLA_TYPE_MASK, p + off + NLA_HDRLEN, a.nla_len - NLA_HDRLEN, ctx);
    if (r)
      return r;
    size_t step = NLA_ALIGN((size_t)a.nla_len);
    if (step > len - off)
      break; /* the last attribute's padding may be omitted */
    off += step;
  }
  return 0;
}

static int get_u32(const uint8_t *data, size_t n, uint32_t *v)
{
  if (n < sizeof *v)
    return -EBADMSG;
  memcpy(v, data, sizeof *v);
  return 0;
}

static int device_attr(uint16_t type, const uint8_t *data, size_t n, void *ctx)
{
  struct nbd_nl_device *d = ctx;
  if (type == NBD_DEVICE_INDEX)
    return get_u32(data, n, &d->index);
  if (type == NBD_DEVICE_CONNECTED) {
    if (n < 1)
      return -EBADMSG;
    d->connected = data[0] != 0;
  }
  return 0;
}

static int device_list_attr(uint16_t type, const uint8_t *data, size_t n, void *ctx)
{
  struct nbd_nl_reply *r = ctx;
  if (type != NBD_DEVICE_ITEM)
    return 0;
  struct nbd_nl_device d = { 0 };
  int e = walk_attrs(data, n, device_attr, &d);
  if (e)
    return e;
  if (r->devs && r->ndevs < r->max_devs)
    r->devs[r->ndevs] = d;
  r->ndevs++;
  return 0;
}

static int nbd_attr(uint16_t type, const uint8_t *data, size_t n, void *ctx)
{
  struct nbd_nl_reply *r = ctx;
  if (type == NBD_ATTR_INDEX) {
    r->has_index = true;
    return get_u32(data, n, &r->index);
  }
  if (type == NBD_ATTR_DEVICE_LIST)
    return walk_attrs(data, n, device_list_attr, r);
  return 0;
}

/* A multicast group: its name and id, matched against "nbd_mc_group". */
struct mcgrp {
  bool is_nbd;
  uint32_t id;
};

static int mcgrp_attr(uint16_t type, const uint8_t *data, size_t n, void *ctx)
{
  struct mcgrp *g = ctx;
  if (type == CTRL_ATTR_MCAST_GRP_NAME)
    g->is_nbd = n >= sizeof NBD_GENL_MCAST_GROUP_NAME &&
                !memcmp(data, NBD_GENL_MCAST_GROUP_NAME, sizeof NBD_GENL_MCAST_GROUP_NAME);
  else if (type == CTRL_ATTR_MCAST_GRP_ID)
    return get_u32(data, n, &g->id);
  return 0;
}

static int mcgrps_attr(uint16_t type, const uint8_t *data, size_t n, void *ctx)
{
  struct nbd_nl_reply *r = ctx;
  struct mcgrp g = { 0 };
  (void)type; /* each group is nested under its position number */
  int e = walk_attrs(data, n, mcgrp_attr, &g);
  if (e)
    return e;
  if (g.is_nbd)
    r->mcast_group = g.id;
  return 0;
}

static int ctrl_attr(uint16_t type, const uint8_t *data, size_t n, void *ctx)
{
  struct nbd_nl_reply *r = ctx;
  if (type == CTRL_ATTR_FAMILY_ID) {
    if (n < sizeof r->family_id)
      return -EBADMSG;
    memcpy(&r->family_id, data, sizeof r->family_id);
  } else if (type == CTRL_ATTR_MCAST_GROUPS) {
    return walk_attrs(data, n, mcgrps_attr, r);
  }
  return 0;
}

int nbd_nl_parse(const void *buf, size_t len, uint32_t seq, uint16_t family,
                 struct nbd_nl_reply *r)
{
  const uint8_t *p = buf;
  size_t off = 0;
  while (len - off >= NLMSG_HDRLEN) {
    struct nlmsghdr h;
    memcpy(&h, p + off, sizeof h);
    if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > len - off)
      return -EBADMSG;
    const uint8_t *body = p + off + NLMSG_HDRLEN;
    size_t blen = h.nlmsg_len - NLMSG_HDRLEN;
    bool ours = h.nlmsg_seq == seq;

    if (h.nlmsg_type == NLMSG_ERROR) {
      int32_t err;
      if (blen < sizeof err)
        return -EBADMSG;
      memcpy(&err, body, sizeof err);
      if (ours) {
        r->acked = true;
        r->error = err > 0 ? -EPROTO : err;
      }
    } else if (h.nlmsg_type == NLMSG_DONE) {
      if (ours)
        r->acked = true;
    } else if (h.nlmsg_type >= NLMSG_MIN_TYPE) {
      if (blen < GENL_HDRLEN)
        return -EBADMSG;
      struct genlmsghdr g;
      memcpy(&g, body, sizeof g);
      const uint8_t *attrs = body + GENL_HDRLEN;
      size_t alen = blen - GENL_HDRLEN;
      int e = 0;
      if (h.nlmsg_type == GENL_ID_CTRL && ours && g.cmd == CTRL_CMD_NEWFAMILY) {
        e = walk_attrs(attrs, alen, ctrl_attr, r);
      } else if (family && h.nlmsg_type == family) {
        if (g.cmd == NBD_CMD_LINK_DEAD) {
          r->link_dead = true;
          e = walk_attrs(attrs, alen, nbd_attr, r);
        } else if (ours) {
          e = walk_attrs(attrs, alen, nbd_attr, r);
        }
      }
      if (e)
        return e;
    }
    size_t step = NLMSG_ALIGN((size_t)h.nlmsg_len);
    if (step > len - off)
      break;
    off += step;
  }
  return 0;
}

/* ---- Talking to the kernel ---- */

/* Receive one datagram into a buffer sized to it (the caller frees *out). */
static int recv_msg(int fd, uint8_t **out, size_t *len)
{
  ssize_t n;
  do
    n = recv(fd, NULL, 0, MSG_PEEK | MSG_TRUNC);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return errno == EAGAIN ? -ETIMEDOUT : -errno;
  size_t want = n > 0 ? (size_t)n : 1;
  uint8_t *buf = malloc(want);
  if (!buf)
    return -ENOMEM;
  do
    n = recv(fd, buf, want, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    int e = -errno;
    free(buf);
    return e;
  }
  *out = buf;
  *len = (size_t)n;
  return 0;
}

/* Send one request and read until its ack, accumulating the answer into *r. */
static int transact(struct nbd_nl *nl, const void *msg, size_t len, struct nbd_nl_reply *r)
{
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  uint32_t seq = ((const struct nlmsghdr *)msg)->nlmsg_seq;
  ssize_t n;
  do
    n = sendto(nl->fd, msg, len, 0, (struct sockaddr *)&kernel, sizeof kernel);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return -errno;
  if ((size_t)n != len)
    return -EMSGSIZE;
  while (!r->acked) {
    uint8_t *buf;
    size_t blen;
    int e = recv_msg(nl->fd, &buf, &blen);
    if (e)
      return e;
    e = nbd_nl_parse(buf, blen, seq, nl->family, r);
    free(buf);
    if (e)
      return e;
  }
  return r->error;
}

int nbd_nl_open(struct nbd_nl *nl)
{
  *nl = (struct nbd_nl){ .fd = -1 };
  nl->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
  if (nl->fd < 0)
    return -errno;
  struct sockaddr_nl local = { .nl_family = AF_NETLINK };
  /* The kernel answers within the request's sendmsg; a missing answer is a bug, but
   * should not hang the caller forever. */
  struct timeval tv = { .tv_sec = 30 };
  int ext_ack = 1;
  if (bind(nl->fd, (struct sockaddr *)&local, sizeof local) < 0 ||
      setsockopt(nl->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) {
    int e = -errno;
    nbd_nl_close(nl);
    return e;
  }
  /* Longer error reports where the kernel has them; harmless where it has not. */
  (void)setsockopt(nl->fd, SOL_NETLINK, NETLINK_EXT_ACK, &ext_ack, sizeof ext_ack);
  nl->seq = (uint32_t)time(NULL);

  uint8_t msg[128];
  size_t len;
  struct nbd_nl_reply r = { 0 };
  int e = nbd_nl_encode_getfamily(msg, sizeof msg, ++nl->seq, &len);
  if (!e)
    e = transact(nl, msg, len, &r);
  if (!e && !r.family_id)
    e = -ENOENT;
  if (e) {
    nbd_nl_close(nl);
    return e;
  }
  nl->family = r.family_id;
  nl->mcast_group = r.mcast_group;
  return 0;
}

void nbd_nl_close(struct nbd_nl *nl)
{
  if (nl->fd >= 0)
    close(nl->fd);
  nl->fd = -1;
}

/* Room for a CONNECT with NBD_NL_MAX_SOCKETS sockets and a full backend string. */
#define NBD_NL_MSG_MAX (512 + NBD_NL_MAX_SOCKETS * 16 + NBD_NL_MAX_BACKEND)

int nbd_nl_connect(struct nbd_nl *nl, const struct nbd_nl_config *cfg, uint32_t *index)
{
  uint8_t msg[NBD_NL_MSG_MAX];
  size_t len;
  struct nbd_nl_reply r = { 0 };
  int e = nbd_nl_encode_connect(msg, sizeof msg, nl->family, ++nl->seq, cfg, &len);
  if (!e)
    e = transact(nl, msg, len, &r);
  if (e)
    return e;
  if (!r.has_index) {
    if (cfg->index < 0)
      return -EPROTO;
    r.index = (uint32_t)cfg->index;
  }
  *index = r.index;
  return 0;
}

int nbd_nl_reconfigure(struct nbd_nl *nl, const struct nbd_nl_config *cfg)
{
  uint8_t msg[NBD_NL_MSG_MAX];
  size_t len;
  struct nbd_nl_reply r = { 0 };
  int e = nbd_nl_encode_reconfigure(msg, sizeof msg, nl->family, ++nl->seq, cfg, &len);
  return e ? e : transact(nl, msg, len, &r);
}

int nbd_nl_disconnect(struct nbd_nl *nl, uint32_t index)
{
  uint8_t msg[64];
  size_t len;
  struct nbd_nl_reply r = { 0 };
  int e = nbd_nl_encode_disconnect(msg, sizeof msg, nl->family, ++nl->seq, index, &len);
  return e ? e : transact(nl, msg, len, &r);
}

int nbd_nl_status(struct nbd_nl *nl, int32_t index, struct nbd_nl_device *devs,
                  size_t max, size_t *n)
{
  uint8_t msg[64];
  size_t len;
  struct nbd_nl_reply r = { .devs = devs, .max_devs = max };
  int e = nbd_nl_encode_status(msg, sizeof msg, nl->family, ++nl->seq, index, &len);
  if (!e)
    e = transact(nl, msg, len, &r);
  if (e)
    return e;
  *n = r.ndevs;
  return 0;
}

int nbd_nl_subscribe(struct nbd_nl *nl)
{
  if (!nl->mcast_group)
    return -ENOENT;
  if (setsockopt(nl->fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &nl->mcast_group,
                 sizeof nl->mcast_group) < 0)
    return -errno;
  return 0;
}

int nbd_nl_next_event(struct nbd_nl *nl, int timeout_ms, uint32_t *index)
{
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    int wait = timeout_ms;
    if (timeout_ms >= 0) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      long long spent = (now.tv_sec - start.tv_sec) * 1000LL + (now.tv_nsec - start.tv_nsec) / 1000000;
      if (spent >= timeout_ms)
        return -ETIMEDOUT;
      wait = (int)(timeout_ms - spent);
    }
    struct pollfd pfd = { .fd = nl->fd, .events = POLLIN };
    int pr = poll(&pfd, 1, wait);
    if (pr < 0 && errno != EINTR)
      return -errno;
    if (pr <= 0)
      continue;
    uint8_t *buf;
    size_t blen;
    int e = recv_msg(nl->fd, &buf, &blen);
    if (e)
      return e;
    /* No request is outstanding on an event handle: only events are taken. */
    struct nbd_nl_reply r = { 0 };
    e = nbd_nl_parse(buf, blen, UINT32_MAX, nl->family, &r);
    free(buf);
    if (e)
      return e;
    if (r.link_dead && r.has_index) {
      *index = r.index;
      return 0;
    }
  }
}
