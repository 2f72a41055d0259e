/* vhostfe_conn.c: the test frontend's vhost-user connection: messages with fds over the
 * unix socket, and the setup sequence a VMM runs (features, owner, config, memory table,
 * inflight region, rings) and its orderly end (GET_VRING_BASE on every ring). */
#include "vhostfe.h"
#include "virtio/vhost_user.h"
#include "virtio/inflight.h"

#include <errno.h>
#include <linux/virtio_config.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* A connected socket to PATH, or -errno (QUIET: no message). */
static int open_socket(const char *path, bool quiet)
{
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  if (strlen(path) >= sizeof(a.sun_path)) {
    FE_ERR("socket path too long: %s", path);
    return -ENAMETOOLONG;
  }
  strcpy(a.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
    int e = errno;
    if (!quiet)
      FE_ERR("connect %s: %s", path, strerror(e));
    if (fd >= 0)
      close(fd);
    return -e;
  }
  return fd;
}

int fe_connect(struct fe_dev *d, const struct fe_opts *o)
{
  memset(d, 0, sizeof(*d));
  d->o = o;
  d->sock = d->inflight_fd = d->mem.fd = -1;
  for (unsigned i = 0; i < FE_MAX_QUEUES; i++)
    d->vq[i].kick_fd = d->vq[i].call_fd = -1;
  d->sock = open_socket(o->socket, false);
  return d->sock < 0 ? d->sock : 0;
}

int fe_send(struct fe_dev *d, uint32_t req, const void *payload, uint32_t size, const int *fds,
            unsigned nfds, bool need_reply)
{
  struct vu_msg_hdr h = { req, VU_VERSION | (need_reply ? VU_FLAG_NEED_REPLY : 0), size };
  struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)payload, size } };
  union {
    char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
    struct cmsghdr align;
  } c;
  struct msghdr m = { .msg_iov = iov, .msg_iovlen = size ? 2 : 1 };
  if (nfds > VU_MAX_FDS)
    return -EINVAL;
  if (nfds) {
    memset(&c, 0, sizeof(c));
    m.msg_control = c.buf;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
  }
  ssize_t n = sendmsg(d->sock, &m, MSG_NOSIGNAL);
  if (n < 0)
    return -errno;
  return (size_t)n == sizeof(h) + size ? 0 : -EIO;
}

static int wait_readable(int fd, int ms)
{
  struct pollfd p = { fd, POLLIN, 0 };
  int r = poll(&p, 1, ms);
  if (r < 0)
    return -errno;
  return r == 0 ? -ETIMEDOUT : 0;
}

static int read_full(int fd, void *buf, size_t len, int ms)
{
  uint8_t *b = buf;
  while (len) {
    int r = wait_readable(fd, ms);
    if (r < 0)
      return r;
    ssize_t n = read(fd, b, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    if (n == 0)
      return -EPIPE;
    b += n;
    len -= (size_t)n;
  }
  return 0;
}

int fe_recv(struct fe_dev *d, uint32_t req, bool need_ack, uint32_t config_size,
            union vu_payload *out, int *fd)
{
  int ms = d->o->timeout_s * 1000;
  struct vu_msg msg;
  struct iovec iov = { &msg.hdr, sizeof(msg.hdr) };
  union {
    char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
    struct cmsghdr align;
  } c;
  struct msghdr m = {
    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf, .msg_controllen = sizeof(c.buf)
  };
  size_t nfds = 0;
  char err[160];
  if (fd)
    *fd = -1;
  int r = wait_readable(d->sock, ms);
  if (r < 0)
    return r;
  ssize_t n = recvmsg(d->sock, &m, MSG_CMSG_CLOEXEC | MSG_WAITALL);
  if (n < 0)
    return errno == ECONNRESET ? -EPIPE : -errno;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
      continue;
    int nf = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    int fds[VU_MAX_FDS];
    memcpy(fds, CMSG_DATA(cm), sizeof(int) * (size_t)nf);
    for (int i = 0; i < nf; i++, nfds++) {
      if (fd && *fd < 0)
        *fd = fds[i];
      else
        close(fds[i]);
    }
  }
  if ((size_t)n < sizeof(msg.hdr))
    return -EPIPE;
  if (msg.hdr.size > VU_MAX_PAYLOAD) {
    FE_ERR("the reply to %s says %u payload bytes", vu_request_name(req), msg.hdr.size);
    return -EPROTO;
  }
  r = read_full(d->sock, &msg.payload, msg.hdr.size, ms);
  if (r < 0)
    return r;
  if (vu_reply_check(req, need_ack, config_size, &msg, nfds, err, sizeof(err)) < 0) {
    FE_ERR("%s", err);
    return -EPROTO;
  }
  memcpy(out, &msg.payload, msg.hdr.size);
  return (int)msg.hdr.size;
}

int fe_wait_closed(struct fe_dev *d, int ms)
{
  char junk[4096];
  double end = fe_now() + ms / 1000.0;
  for (;;) {
    ssize_t n = recv(d->sock, junk, sizeof(junk), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno == ECONNRESET))
      return 1;
    if (n > 0)
      continue; /* stray bytes: drain them */
    if (errno != EAGAIN && errno != EINTR)
      return 1;
    int left = (int)((end - fe_now()) * 1000);
    if (left <= 0 || wait_readable(d->sock, left) < 0)
      return 0;
  }
}

/* A message without a reply of its own; with REPLY_ACK, ask for the ack and check it. */
static int set_msg(struct fe_dev *d, uint32_t req, const void *p, uint32_t size, const int *fds,
                   unsigned nfds)
{
  bool ack = fe_has_pf(d, VU_PROTOCOL_F_REPLY_ACK);
  int r = fe_send(d, req, p, size, fds, nfds, ack);
  if (r < 0) {
    FE_ERR("sending %s: %s", vu_request_name(req), strerror(-r));
    return -1;
  }
  if (!ack)
    return 0;
  union vu_payload reply;
  r = fe_recv(d, req, true, 0, &reply, NULL);
  if (r != (int)sizeof(reply.u64) || reply.u64 != 0) {
    FE_ERR("%s: %s", vu_request_name(req), r < 0 ? strerror(-r) : "the backend answered failure");
    return -1;
  }
  return 0;
}

static int get_u64(struct fe_dev *d, uint32_t req, const char *what, uint64_t *v)
{
  union vu_payload p;
  int r = fe_send(d, req, NULL, 0, NULL, 0, false);
  if (r == 0)
    r = fe_recv(d, req, false, 0, &p, NULL);
  if (r != (int)sizeof(*v)) {
    FE_ERR("%s: %s", what, r < 0 ? strerror(-r) : "wrong reply size");
    return -1;
  }
  *v = p.u64;
  return 0;
}

static int read_config(struct fe_dev *d, uint64_t offered)
{
  struct vu_config c = { .offset = 0, .size = 60 };
  union vu_payload p;
  int r = fe_send(d, VU_GET_CONFIG, &c, VU_CONFIG_HDR_SIZE + c.size, NULL, 0, false);
  if (r == 0)
    r = fe_recv(d, VU_GET_CONFIG, false, c.size, &p, NULL);
  if (r != VU_CONFIG_HDR_SIZE + 60 || p.config.size != 60) {
    FE_ERR("GET_CONFIG: %s", r < 0 ? strerror(-r) : "wrong reply size");
    return -1;
  }
  memcpy(&d->cfg, p.config.region, 60);
  d->capacity = d->cfg.capacity;
  d->blk_size = (offered >> VIRTIO_BLK_F_BLK_SIZE & 1) ? d->cfg.blk_size : 512;
  d->seg_max = (offered >> VIRTIO_BLK_F_SEG_MAX & 1) ? d->cfg.seg_max : 1;
  d->size_max = (offered >> VIRTIO_BLK_F_SIZE_MAX & 1) ? d->cfg.size_max : 0;
  if (d->blk_size < 512 || (d->blk_size & (d->blk_size - 1)) || d->seg_max == 0 ||
      d->capacity == 0) {
    FE_ERR("config: capacity %llu sectors, blk_size %u, seg_max %u: unusable",
           (unsigned long long)d->capacity, d->blk_size, d->seg_max);
    return -1;
  }
  return 0;
}

static int negotiate(struct fe_dev *d)
{
  const struct fe_opts *o = d->o;
  uint64_t offered, pf_offered = 0, pf = 0, max_queues = 1;
  if (get_u64(d, VU_GET_FEATURES, "GET_FEATURES", &offered) < 0)
    return -1;
  d->offered = offered;
  if (!(offered >> VIRTIO_F_VERSION_1 & 1) || !(offered >> VU_F_PROTOCOL_FEATURES & 1)) {
    FE_ERR("the backend offers features %#llx: no VERSION_1 or no protocol features",
           (unsigned long long)offered);
    return -1;
  }
  if (get_u64(d, VU_GET_PROTOCOL_FEATURES, "GET_PROTOCOL_FEATURES", &pf_offered) < 0)
    return -1;
  uint64_t pf_want =
      1ull << VU_PROTOCOL_F_MQ | 1ull << VU_PROTOCOL_F_REPLY_ACK | 1ull << VU_PROTOCOL_F_CONFIG;
  if (o->inflight)
    pf_want |= 1ull << VU_PROTOCOL_F_INFLIGHT_SHMFD;
  if (o->mem_slots)
    pf_want |= 1ull << VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS;
  pf = pf_offered & pf_want;
  uint64_t must =
      1ull << VU_PROTOCOL_F_CONFIG | (pf_want & (1ull << VU_PROTOCOL_F_INFLIGHT_SHMFD |
                                                 1ull << VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS));
  if ((pf & must) != must) {
    FE_ERR("the backend's protocol features %#llx lack some of %#llx",
           (unsigned long long)pf_offered, (unsigned long long)must);
    return -1;
  }
  if (fe_send(d, VU_SET_PROTOCOL_FEATURES, &pf, sizeof(pf), NULL, 0, false) < 0) {
    FE_ERR("SET_PROTOCOL_FEATURES: send failed");
    return -1;
  }
  d->proto_features = pf;
  if (fe_has_pf(d, VU_PROTOCOL_F_MQ) &&
      get_u64(d, VU_GET_QUEUE_NUM, "GET_QUEUE_NUM", &max_queues) < 0)
    return -1;
  if (set_msg(d, VU_SET_OWNER, NULL, 0, NULL, 0) < 0 || read_config(d, offered) < 0)
    return -1;
  if ((offered >> VIRTIO_BLK_F_MQ & 1) && d->cfg.num_queues < max_queues)
    max_queues = d->cfg.num_queues;
  if (o->queues > max_queues || (o->queues > 1 && !(offered >> VIRTIO_BLK_F_MQ & 1))) {
    FE_ERR("%u queues asked, the backend offers %llu", o->queues, (unsigned long long)max_queues);
    return -1;
  }
  uint64_t want =
      1ull << VIRTIO_F_VERSION_1 | 1ull << VU_F_PROTOCOL_FEATURES | 1ull << VIRTIO_BLK_F_SIZE_MAX |
      1ull << VIRTIO_BLK_F_SEG_MAX | 1ull << VIRTIO_BLK_F_RO | 1ull << VIRTIO_BLK_F_BLK_SIZE |
      1ull << VIRTIO_BLK_F_FLUSH | 1ull << VIRTIO_BLK_F_TOPOLOGY | 1ull << VIRTIO_BLK_F_MQ |
      1ull << VIRTIO_BLK_F_DISCARD | 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
  if (o->event_idx)
    want |= 1ull << VIRTIO_RING_F_EVENT_IDX;
  if (o->indirect)
    want |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
  d->features = offered & want;
  if (o->indirect && !fe_has(d, VIRTIO_RING_F_INDIRECT_DESC)) {
    FE_ERR("indirect descriptors asked, the backend does not offer them");
    return -1;
  }
  d->nqueues = o->queues;
  return set_msg(d, VU_SET_FEATURES, &d->features, sizeof(d->features), NULL, 0);
}

static int make_memory(struct fe_dev *d)
{
  int r = fe_mem_init(&d->mem, d->o->mem_size, d->o->regions);
  if (r < 0) {
    FE_ERR("guest memory of %llu bytes in %u regions: %s", (unsigned long long)d->o->mem_size,
           d->o->regions, strerror(-r));
    return -1;
  }
  return 0;
}

/* The size region I is announced with (the last one larger in a hostile mode). */
static uint64_t region_size(const struct fe_dev *d, unsigned i)
{
  return d->mem.r[i].size + (i + 1 == d->mem.nregions ? d->o->mem_claim_extra : 0);
}

static int share_memory(struct fe_dev *d)
{
  struct fe_mem *m = &d->mem;
  if (fe_has_pf(d, VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS)) {
    uint64_t slots;
    if (get_u64(d, VU_GET_MAX_MEM_SLOTS, "GET_MAX_MEM_SLOTS", &slots) < 0)
      return -1;
    if (slots < m->nregions) {
      FE_ERR("the backend takes %llu memory slots, %u needed", (unsigned long long)slots,
             m->nregions);
      return -1;
    }
    for (unsigned i = 0; i < m->nregions; i++) {
      struct vu_mem_reg mr = {
        0, { m->r[i].gpa, region_size(d, i), (uintptr_t)m->r[i].host, m->r[i].offset }
      };
      if (set_msg(d, VU_ADD_MEM_REG, &mr, sizeof(mr), &m->fd, 1) < 0)
        return -1;
    }
    return 0;
  }
  struct vu_memory t = { .nregions = m->nregions };
  int fds[FE_MAX_REGIONS];
  for (unsigned i = 0; i < m->nregions; i++) {
    t.regions[i] = (struct vu_mem_region){ m->r[i].gpa, region_size(d, i), (uintptr_t)m->r[i].host,
                                           m->r[i].offset };
    fds[i] = m->fd;
  }
  return set_msg(d, VU_SET_MEM_TABLE, &t, 8 + 32 * m->nregions, fds, m->nregions);
}

static int share_inflight(struct fe_dev *d)
{
  struct vu_inflight in = { 0, 0, (uint16_t)d->nqueues, (uint16_t)d->o->queue_size };
  int fd = -1;
  union vu_payload p;
  int r = fe_send(d, VU_GET_INFLIGHT_FD, &in, sizeof(in), NULL, 0, false);
  if (r == 0)
    r = fe_recv(d, VU_GET_INFLIGHT_FD, false, 0, &p, &fd);
  if (r == (int)sizeof(in))
    in = p.inflight;
  if (r != (int)sizeof(in) || fd < 0 || in.mmap_size == 0) {
    FE_ERR("GET_INFLIGHT_FD: %s", r < 0 ? strerror(-r) : "no fd or empty region");
    if (fd >= 0)
      close(fd);
    return -1;
  }
  d->inflight =
      mmap(NULL, in.mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)in.mmap_offset);
  if (d->inflight == MAP_FAILED) {
    d->inflight = NULL;
    FE_ERR("mapping the inflight region (%llu bytes): %s", (unsigned long long)in.mmap_size,
           strerror(errno));
    close(fd);
    return -1;
  }
  d->inflight_fd = fd;
  d->inflight_size = in.mmap_size;
  d->inflight_desc = in;
  return set_msg(d, VU_SET_INFLIGHT_FD, &in, sizeof(in), &fd, 1);
}

/* Hostile: an inflight area announced as 1 MiB of a memfd of 4 KiB (whether or not the
 * feature was negotiated). */
static int lie_inflight(struct fe_dev *d)
{
  struct vu_inflight in = { 1 << 20, 0, (uint16_t)d->nqueues, (uint16_t)d->o->queue_size };
  d->inflight_fd = memfd_create("vhostfe-inflight", MFD_CLOEXEC);
  if (d->inflight_fd < 0 || ftruncate(d->inflight_fd, 4096) < 0) {
    FE_ERR("inflight memfd: %s", strerror(errno));
    return -1;
  }
  return set_msg(d, VU_SET_INFLIGHT_FD, &in, sizeof(in), &d->inflight_fd, 1);
}

static int make_ring(struct fe_dev *d, unsigned i)
{
  struct fe_vq *q = &d->vq[i];
  int r = fe_vq_init(q, &d->mem, i, d->o->queue_size, fe_has(d, VIRTIO_RING_F_EVENT_IDX));
  if (r < 0) {
    FE_ERR("ring %u of %u entries: %s", i, d->o->queue_size, strerror(-r));
    return -1;
  }
  q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  q->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (q->kick_fd < 0 || q->call_fd < 0) {
    FE_ERR("eventfd: %s", strerror(errno));
    return -1;
  }
  return 0;
}

/* Hand ring I to the backend, its first available entry being BASE. */
static int start_ring(struct fe_dev *d, unsigned i, uint16_t base_idx)
{
  struct fe_vq *q = &d->vq[i];
  struct vhost_vring_state num = { i, q->num }, base = { i, base_idx };
  struct vhost_vring_addr a = {
    i, 0, (uintptr_t)q->vr.desc, (uintptr_t)q->vr.used, (uintptr_t)q->vr.avail, 0
  };
  uint64_t idx = i;
  if (set_msg(d, VU_SET_VRING_NUM, &num, sizeof(num), NULL, 0) < 0 ||
      set_msg(d, VU_SET_VRING_BASE, &base, sizeof(base), NULL, 0) < 0 ||
      set_msg(d, VU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0) < 0 ||
      set_msg(d, VU_SET_VRING_CALL, &idx, sizeof(idx), &q->call_fd, 1) < 0 ||
      set_msg(d, VU_SET_VRING_KICK, &idx, sizeof(idx), &q->kick_fd, 1) < 0)
    return -1;
  return 0;
}

static int enable_rings(struct fe_dev *d)
{
  for (unsigned i = 0; i < d->nqueues; i++) {
    struct vhost_vring_state on = { i, 1 };
    if (set_msg(d, VU_SET_VRING_ENABLE, &on, sizeof(on), NULL, 0) < 0)
      return -1;
  }
  return 0;
}

int fe_setup(struct fe_dev *d)
{
  if (negotiate(d) < 0 || make_memory(d) < 0 || share_memory(d) < 0)
    return -1;
  if (d->o->inflight_lie ? lie_inflight(d) < 0
                         : fe_has_pf(d, VU_PROTOCOL_F_INFLIGHT_SHMFD) && share_inflight(d) < 0)
    return -1;
  for (unsigned i = 0; i < d->nqueues; i++)
    if (make_ring(d, i) < 0 || start_ring(d, i, 0) < 0)
      return -1;
  if (enable_rings(d) < 0)
    return -1;
  if (d->o->verbose)
    fprintf(stderr,
            "vhostfe: features %#llx protocol %#llx, %llu sectors, blk_size %u, "
            "seg_max %u, %u queue(s) of %u\n",
            (unsigned long long)d->features, (unsigned long long)d->proto_features,
            (unsigned long long)d->capacity, d->blk_size, d->seg_max, d->nqueues, d->o->queue_size);
  return 0;
}

unsigned fe_inflight_marked(const struct fe_dev *d)
{
  unsigned n = 0;
  if (!d->inflight)
    return 0;
  for (unsigned q = 0; q < d->nqueues; q++) {
    const struct inflight_region *r =
        (const void *)((const char *)d->inflight +
                       q * INFLIGHT_QUEUE_STRIDE(d->inflight_desc.queue_size));
    for (unsigned i = 0; i < d->inflight_desc.queue_size; i++)
      n += __atomic_load_n(&r->desc[i].inflight, __ATOMIC_ACQUIRE) == 1;
  }
  return n;
}

/* One attempt at fe_reconnect(): connect, negotiate, share, restart the rings. */
static int reconnect_once(struct fe_dev *d, uint64_t features, uint64_t pf)
{
  if (d->sock >= 0)
    close(d->sock);
  if ((d->sock = open_socket(d->o->socket, true)) < 0)
    return -1;
  if (negotiate(d) < 0)
    return -1;
  if (d->features != features || d->proto_features != pf) {
    FE_ERR("reconnecting: features %#llx and protocol %#llx, before %#llx and %#llx",
           (unsigned long long)d->features, (unsigned long long)d->proto_features,
           (unsigned long long)features, (unsigned long long)pf);
    return -1;
  }
  if (share_memory(d) < 0)
    return -1;
  /* The same inflight area as before: the backend resubmits what it lists. */
  if (fe_has_pf(d, VU_PROTOCOL_F_INFLIGHT_SHMFD) &&
      set_msg(d, VU_SET_INFLIGHT_FD, &d->inflight_desc, sizeof(d->inflight_desc), &d->inflight_fd,
              1) < 0)
    return -1;
  /* As a VMM does after losing its backend: every ring restarts at its used index. */
  for (unsigned i = 0; i < d->nqueues; i++)
    if (start_ring(d, i, __atomic_load_n(&d->vq[i].vr.used->idx, __ATOMIC_ACQUIRE)) < 0)
      return -1;
  if (enable_rings(d) < 0)
    return -1;
  for (unsigned i = 0; i < d->nqueues; i++)
    fe_vq_kick(&d->vq[i]);
  return 0;
}

int fe_reconnect(struct fe_dev *d)
{
  uint64_t features = d->features, pf = d->proto_features;
  double end = fe_now() + d->o->timeout_s;
  /* the backend may be gone again while we set it up: retry until the time is up */
  while (reconnect_once(d, features, pf) < 0) {
    if (fe_now() > end) {
      FE_ERR("reconnecting to %s: no working backend within %d s", d->o->socket, d->o->timeout_s);
      return -1;
    }
    usleep(50 * 1000);
  }
  d->reconnects++;
  if (d->o->verbose)
    fprintf(stderr, "vhostfe: reconnected (%u)\n", d->reconnects);
  return 0;
}

void fe_close(struct fe_dev *d)
{
  if (d->sock >= 0)
    close(d->sock);
  d->sock = -1;
  for (unsigned i = 0; i < FE_MAX_QUEUES; i++)
    fe_vq_free(&d->vq[i]);
  if (d->inflight)
    munmap(d->inflight, d->inflight_size);
  if (d->inflight_fd >= 0)
    close(d->inflight_fd);
  d->inflight = NULL;
  d->inflight_fd = -1;
  fe_mem_free(&d->mem);
}

int fe_teardown(struct fe_dev *d)
{
  int rc = 0;
  for (unsigned i = 0; i < d->nqueues; i++) {
    struct vhost_vring_state s = { i, 0 };
    union vu_payload p;
    int r = fe_send(d, VU_GET_VRING_BASE, &s, sizeof(s), NULL, 0, false);
    if (r == 0)
      r = fe_recv(d, VU_GET_VRING_BASE, false, 0, &p, NULL);
    if (r == (int)sizeof(s))
      s = p.state;
    if (r != (int)sizeof(s)) {
      FE_ERR("GET_VRING_BASE %u: %s", i, r < 0 ? strerror(-r) : "wrong reply size");
      rc = -1;
    } else if (s.index != i || s.num != d->vq[i].avail_idx) {
      FE_ERR("GET_VRING_BASE %u: the backend answers ring %u at %u, %u were made available", i,
             s.index, s.num, d->vq[i].avail_idx);
      rc = -1;
    }
  }
  fe_close(d);
  return rc;
}
