/* vconn.c: a frontend connection (see vconn.h): message I/O on the worker's
 * ring (a poll for readability, then non-blocking recvmsg of the header
 * with its fds and of the payload), the side effects of the message state
 * machine (the ops of vu_handler.h), and the connection's end: queues stop
 * and drain, then guest memory is unmapped and the device accepts again. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"
#include "datapath/datapath.h"
#include "vhost/blkconfig.h"
#include "vhost/device.h"
#include "vhost/guardmem.h"
#include "vhost/queue.h"
#include "vhost/vconn.h"
#include "vhost/vworker.h"
#include "virtio/inflight.h"

static void conn_read(struct vconn *c);
static void conn_close(struct vconn *c);
static void conn_maybe_free(struct vconn *c);

/* ---- guest memory ---- */

/* Can [offset, offset + len) of fd be mapped without a SIGBUS waiting in
 * it?  The fd must be a regular file (a memfd, a file on hugetlbfs or
 * /dev/shm) that long; it is sealed against shrinking where it allows (a
 * memfd qemu made with seal=on is sealed already).  0 or -errno with a
 * reason in why. */
static int check_fd_extent(int fd, uint64_t offset, uint64_t len, const char **why)
{
  struct stat st;
  uint64_t end;
  int seals;

  if (fstat(fd, &st) < 0) {
    *why = "cannot stat its fd";
    return -errno;
  }
  if (!S_ISREG(st.st_mode)) {
    *why = "its fd is not a memory file";
    return -EINVAL;
  }
  if (__builtin_add_overflow(offset, len, &end) || end > (uint64_t)st.st_size) {
    *why = "it extends past the end of its fd";
    return -EINVAL;
  }
  seals = fcntl(fd, F_GET_SEALS);
  if (seals >= 0 && !(seals & F_SEAL_SHRINK))
    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK);   /* refused when F_SEAL_SEAL is set: nothing to do then */
  return 0;
}

static void region_unmap(struct vconn *c, struct mt_region *r)
{
  (void)c;
  guardmem_remove(r->map_base);
  munmap(r->map_base, r->map_len);
}

/* Unmap what was removed while queues ran, once none runs. */
static void retired_release(struct vconn *c)
{
  if (c->nqueues_alive)
    return;
  for (unsigned i = 0; i < c->nretired; i++)
    region_unmap(c, &c->retired[i]);
  c->nretired = 0;
}

/* Drop a region removed from the table.  While a queue runs it may still
 * hold pointers into it (its rings, requests in flight): the mapping stays
 * until no queue runs.  The caller made sure there is room to keep it. */
static void region_drop(struct vconn *c, struct mt_region *r)
{
  c->mt_dirty = true;
  if (c->nqueues_alive) {
    c->retired[c->nretired++] = *r;
    return;
  }
  region_unmap(c, r);
}

/* Room to keep n more regions mapped until no queue runs. */
static bool retire_room(const struct vconn *c, unsigned n)
{
  return !c->nqueues_alive || c->nretired + n <= VU_MEM_SLOTS_MAX;
}

static int op_mem_add(void *ctx, const struct vu_mem_region *d, int fd)
{
  struct vconn *c = ctx;
  long page = sysconf(_SC_PAGESIZE);
  uint64_t off, lead, len;
  char err[160];
  void *base;
  int r;
  const char *why;

  if ((r = memtable_check(&c->mt, d, err, sizeof err)) < 0) {
    log_msg(LOG_WARN, c->peer, c->d->cfg->socket, "memory region refused: %s", err);
    close(fd);
    return r;
  }
  if ((r = check_fd_extent(fd, d->mmap_offset, d->size, &why)) < 0) {
    log_msg(LOG_WARN, c->peer, c->d->cfg->socket, "memory region gpa 0x%llx size %llu at offset %llu refused: %s",
            (unsigned long long)d->guest_addr, (unsigned long long)d->size,
            (unsigned long long)d->mmap_offset, why);
    close(fd);
    return r;
  }
  /* Map from the page holding mmap_offset: the region need not start on a page. */
  off = d->mmap_offset & ~(uint64_t)(page - 1);
  lead = d->mmap_offset - off;
  len = d->size + lead;   /* no overflow: memtable_check bounded offset + size */
  if (len > SIZE_MAX)
    return close(fd), -EINVAL;
  base = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, (off_t)off);
  r = base == MAP_FAILED ? -errno : 0;
  close(fd);
  if (r < 0) {
    log_msg(LOG_WARN, c->peer, c->d->cfg->socket, "cannot map a memory region of %llu bytes: %s",
            (unsigned long long)d->size, strerror(-r));
    return r;
  }
  if ((r = memtable_add(&c->mt, d, (uint8_t *)base + lead, base, len, err, sizeof err)) < 0) {
    log_msg(LOG_WARN, c->peer, c->d->cfg->socket, "memory region refused: %s", err);
    munmap(base, (size_t)len);
    return r;
  }
  if (guardmem_add(base, (size_t)len) < 0)
    log_msg(LOG_WARN, c->peer, c->d->cfg->socket, "too many guest memory regions to guard: a frontend that "
            "shrinks this one's file could stop the process");
  c->mt_dirty = true;
  log_msg(LOG_DEBUG, c->peer, c->d->cfg->socket, "memory region gpa 0x%llx size %llu mapped",
          (unsigned long long)d->guest_addr, (unsigned long long)d->size);
  return 0;
}

static int op_mem_remove(void *ctx, const struct vu_mem_region *d)
{
  struct vconn *c = ctx;
  struct mt_region out;
  int r;

  if (!retire_room(c, 1)) {
    log_msg(LOG_WARN, c->peer, c->d->cfg->socket, "memory region removal refused: %d regions removed "
            "while queues run are still mapped", VU_MEM_SLOTS_MAX);
    return -EBUSY;
  }
  if ((r = memtable_remove(&c->mt, d, &out)) == 0)
    region_drop(c, &out);
  return r;
}

static void op_mem_clear(void *ctx)
{
  struct vconn *c = ctx;

  if (!retire_room(c, c->mt.n)) {
    /* The table cannot be replaced safely while queues run: the frontend
     * is dropped (its queues drain, then everything is unmapped). */
    log_msg(LOG_WARN, c->peer, c->d->cfg->socket, "memory table replaced too often while queues run: "
            "dropping the frontend");
    c->fatal = true;
    return;
  }
  while (c->mt.n) {
    struct mt_region out;
    struct vu_mem_region d = { .guest_addr = c->mt.r[0].gpa, .size = c->mt.r[0].size,
                               .user_addr = c->mt.r[0].uaddr, .mmap_offset = c->mt.r[0].mmap_offset };
    if (memtable_remove(&c->mt, &d, &out) < 0)
      break;
    region_drop(c, &out);
  }
}

static size_t op_get_config(void *ctx, uint8_t *buf, size_t len)
{
  struct vconn *c = ctx;
  return vhost_blk_config(c->d, buf, len);
}

/* ---- the in-flight region ---- */

static void inflight_unmap(struct vconn *c)
{
  if (c->inflight) {
    guardmem_remove(c->inflight);
    munmap(c->inflight, c->inflight_len);
  }
  c->inflight = NULL;
  c->inflight_len = 0;
}

static int op_inflight_new(void *ctx, uint16_t nq, uint16_t qsize, int *fd, uint64_t *size)
{
  struct vconn *c = ctx;
  uint64_t len = inflight_area_size(nq, qsize);
  void *p;
  int mfd, r;

  if (len == 0)
    return -EINVAL;
  mfd = memfd_create("shunt-vhost-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (mfd < 0)
    return -errno;
  if (ftruncate(mfd, (off_t)len) < 0 || (p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0)) == MAP_FAILED) {
    r = -errno;
    close(mfd);
    return r;
  }
  /* The frontend keeps it: it must not be able to shrink it under us. */
  fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  inflight_unmap(c);
  inflight_area_init(p, nq, qsize);
  c->inflight = p;
  c->inflight_len = len;
  c->inflight_nq = nq;
  c->inflight_qsize = qsize;
  *fd = mfd;
  *size = len;
  return 0;
}

static int op_inflight_set(void *ctx, int fd, uint64_t size, uint64_t offset, uint16_t nq, uint16_t qsize)
{
  struct vconn *c = ctx;
  uint64_t want = inflight_area_size(nq, qsize);
  const char *why;
  void *p;
  int r;

  if (want == 0 || size < want || offset % (uint64_t)sysconf(_SC_PAGESIZE) || size > SIZE_MAX) {
    close(fd);
    return -EINVAL;
  }
  if ((r = check_fd_extent(fd, offset, size, &why)) < 0) {
    log_msg(LOG_WARN, c->peer, c->d->cfg->socket, "in-flight region of %llu bytes refused: %s",
            (unsigned long long)size, why);
    close(fd);
    return r;
  }
  p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)offset);
  r = p == MAP_FAILED ? -errno : 0;
  close(fd);
  if (r < 0)
    return r;
  inflight_unmap(c);
  guardmem_add(p, (size_t)size);
  c->inflight = p;
  c->inflight_len = size;
  c->inflight_nq = nq;
  c->inflight_qsize = qsize;
  return 0;
}

/* ---- queues ---- */

static int op_queue_start(void *ctx, unsigned q, const struct vu_vring_conf *vq)
{
  struct vconn *c = ctx;
  int r = vqueue_start(c, q, vq, &c->q[q]);

  if (r == 0) {
    c->nqueues_alive++;
    c->q_stopping[q] = false;
  }
  return r;
}

static int op_queue_stop(void *ctx, unsigned q, uint16_t *base)
{
  struct vconn *c = ctx;
  (void)base;
  c->q_stopping[q] = true;
  vqueue_stop(c->q[q]);
  return 1;   /* always later: it stops on its own worker */
}

static void op_queue_set_call(void *ctx, unsigned q, int call_fd)
{
  struct vconn *c = ctx;
  if (c->q[q] && !c->q_stopping[q])
    vqueue_set_call(c->q[q], call_fd);
}

/* The running queues take the new memory table. */
static void mem_publish(struct vconn *c)
{
  if (!c->mt_dirty)
    return;
  c->mt_dirty = false;
  for (unsigned i = 0; i < VHOST_MAX_QUEUES; i++)
    if (c->q[i] && !c->q_stopping[i])
      vqueue_set_mem(c->q[i], &c->mt);
}

static void op_close_fd(void *ctx, int fd)
{
  (void)ctx;
  close(fd);
}

static void op_log(void *ctx, int level, const char *msg)
{
  struct vconn *c = ctx;
  log_msg(level, c->peer, c->d->cfg->socket, "%s", msg);
}

static const struct vu_handler_ops conn_ops = {
  .mem_add = op_mem_add,
  .mem_remove = op_mem_remove,
  .mem_clear = op_mem_clear,
  .get_config = op_get_config,
  .inflight_new = op_inflight_new,
  .inflight_set = op_inflight_set,
  .queue_start = op_queue_start,
  .queue_stop = op_queue_stop,
  .queue_set_call = op_queue_set_call,
  .close_fd = op_close_fd,
  .log = op_log,
};

/* ---- messages ---- */

/* Send a reply (with fd when >= 0, closed afterwards).  Replies are small:
 * a socket that cannot take one at once is a frontend that does not read
 * its replies, and the connection ends. */
static int send_reply(struct vconn *c, const struct vu_msg *reply, int fd)
{
  union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } ctl;
  struct iovec iov[2] = {
    { .iov_base = (void *)&reply->hdr, .iov_len = VU_HDR_SIZE },
    { .iov_base = (void *)&reply->payload, .iov_len = reply->hdr.size },
  };
  struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
  ssize_t n;

  if (fd >= 0) {
    struct cmsghdr *cm;
    memset(&ctl, 0, sizeof ctl);
    mh.msg_control = ctl.buf;
    mh.msg_controllen = sizeof ctl.buf;
    cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof fd);
  }
  n = sendmsg(c->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (fd >= 0)
    close(fd);
  if (n != (ssize_t)(VU_HDR_SIZE + reply->hdr.size)) {
    log_msg(LOG_WARN, c->peer, c->d->cfg->socket, "reply to %s not sent: %s", vu_request_name(reply->hdr.request),
            n < 0 ? strerror(errno) : "the frontend does not read its replies");
    return -EIO;
  }
  return 0;
}

static void drop_fds(struct vconn *c)
{
  for (size_t i = 0; i < c->nfds; i++)
    close(c->fds[i]);
  c->nfds = 0;
}

/* Receive into buf (at most len bytes) without blocking, keeping the fds
 * that come along (at most VU_MAX_FDS per message; more are closed, and the
 * message is then refused).  Returns bytes, 0 at EOF, -EAGAIN, -errno. */
static ssize_t recv_part(struct vconn *c, void *buf, size_t len, bool *surplus)
{
  union { char buf[CMSG_SPACE(VU_MAX_FDS * sizeof(int))]; struct cmsghdr align; } ctl;
  struct iovec iov = { .iov_base = buf, .iov_len = len };
  struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                       .msg_controllen = sizeof ctl.buf };
  ssize_t n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

  if (n < 0)
    return -errno;
  if (mh.msg_flags & MSG_CTRUNC)
    *surplus = true;   /* the kernel dropped the fds that did not fit */
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
      continue;
    size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
      if (c->nfds < VU_MAX_FDS) {
        c->fds[c->nfds++] = fd;
      } else {
        close(fd);
        *surplus = true;
      }
    }
  }
  return n;
}

static void arm_poll(struct vconn *c)
{
  struct io_uring_sqe *sqe = engine_sqe(&c->d->w->eng, &c->poll_op);
  io_uring_prep_poll_add(sqe, c->fd, POLLIN);
  c->poll_armed = true;
}

static void poll_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct vconn *c = container_of(op, struct vconn, poll_op);
  (void)flags;

  c->poll_armed = false;
  if (c->closing) {
    conn_maybe_free(c);
    return;
  }
  if (res < 0 && res != -EINTR) {
    log_msg(LOG_WARN, c->peer, c->d->cfg->socket, "poll failed: %s", strerror(-res));
    conn_close(c);
    return;
  }
  conn_read(c);
}

static void resume_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct vconn *c = container_of(op, struct vconn, resume_op);
  (void)res; (void)flags;

  c->resume_armed = false;
  if (c->closing)
    conn_maybe_free(c);
  else if (!c->h.waiting && !c->poll_armed)
    conn_read(c);
}

/* A whole message is in c->msg: handle it.  Returns false when the
 * connection ends. */
static bool dispatch(struct vconn *c)
{
  struct vu_msg reply;
  int reply_fd;
  enum vu_result res;

  log_msg(LOG_DEBUG, c->peer, c->d->cfg->socket, "%s, %u bytes, %zu fds", vu_request_name(c->msg.hdr.request),
          c->msg.hdr.size, c->nfds);
  c->dispatching = true;
  res = vu_handler_handle(&c->h, &c->msg, c->fds, c->nfds, &reply, &reply_fd);
  c->dispatching = false;
  c->nfds = 0;   /* the handler owns them now */
  c->got = 0;
  mem_publish(c);
  if (c->fatal) {
    if (res == VU_REPLY && reply_fd >= 0)
      close(reply_fd);
    return false;
  }
  switch (res) {
  case VU_NO_REPLY:
  case VU_WAIT:
    return true;
  case VU_REPLY:
    return send_reply(c, &reply, reply_fd) == 0;
  case VU_CLOSE:
    break;
  }
  return false;
}

/* Read and handle messages until the socket has no more, a reply must wait
 * for a queue to drain, or the connection ends. */
static void conn_read(struct vconn *c)
{
  while (!c->closing && !c->h.waiting) {
    bool surplus = false;
    size_t want;
    char *dst;
    ssize_t n;

    if (c->got >= VU_HDR_SIZE) {
      if (c->msg.hdr.size > VU_MAX_PAYLOAD) {
        log_msg(LOG_WARN, c->peer, c->d->cfg->socket, "%s with a payload of %u bytes (at most %zu): "
                "dropping the frontend", vu_request_name(c->msg.hdr.request), c->msg.hdr.size, VU_MAX_PAYLOAD);
        conn_close(c);
        return;
      }
      if (c->got == VU_HDR_SIZE + c->msg.hdr.size) {
        if (!dispatch(c)) {
          conn_close(c);
          return;
        }
        continue;
      }
      dst = (char *)&c->msg.payload + (c->got - VU_HDR_SIZE);
      want = VU_HDR_SIZE + c->msg.hdr.size - c->got;
    } else {
      dst = (char *)&c->msg.hdr + c->got;
      want = VU_HDR_SIZE - c->got;
    }
    n = recv_part(c, dst, want, &surplus);
    if (surplus) {
      log_msg(LOG_WARN, c->peer, c->d->cfg->socket, "more than %d file descriptors with one message: "
              "dropping the frontend", VU_MAX_FDS);
      conn_close(c);
      return;
    }
    if (n == -EAGAIN || n == -EWOULDBLOCK) {
      arm_poll(c);
      return;
    }
    if (n == -EINTR)
      continue;
    if (n <= 0) {
      if (n < 0)
        log_msg(LOG_INFO, c->peer, c->d->cfg->socket, "frontend connection failed: %s", strerror((int)-n));
      else
        log_msg(LOG_INFO, c->peer, c->d->cfg->socket, "frontend disconnected%s",
                c->got ? " in the middle of a message" : "");
      conn_close(c);
      return;
    }
    c->got += (size_t)n;
  }
}

/* ---- start and end ---- */

int vconn_start(struct vdev *d, int fd)
{
  static atomic_uint frontends;
  struct vconn *c = calloc(1, sizeof *c);
  struct vu_handler_setup offer;

  if (!c) {
    close(fd);
    return -ENOMEM;
  }
  c->d = d;
  c->fd = fd;
  snprintf(c->peer, sizeof c->peer, "frontend#%u", atomic_fetch_add(&frontends, 1) + 1);
  c->poll_op.cb = poll_cb;
  c->resume_op.cb = resume_cb;
  c->lost_at_start = guardmem_repaired();
  memtable_init(&c->mt);
  vhost_blk_offer(d, &offer);
  vu_handler_init(&c->h, &offer, &conn_ops, c);
  d->conn = c;
  log_msg(LOG_INFO, c->peer, d->cfg->socket, "frontend connected");
  conn_read(c);
  return 0;
}

static void conn_close(struct vconn *c)
{
  if (c->closing)
    return;
  c->closing = true;
  drop_fds(c);
  vu_handler_shutdown(&c->h);
  if (c->poll_armed) {
    engine_cancel(&c->d->w->eng, &c->poll_op);
  }
  /* The socket stays open until the queues drained (conn_maybe_free): the
   * frontend sees every request the back end took answered before it sees
   * the connection end, on SIGTERM as on any other close. */
  conn_maybe_free(c);
}

/* Free the connection once nothing refers to it any more: no queue, no
 * armed operation, not inside the handler. */
static void conn_maybe_free(struct vconn *c)
{
  struct vdev *d = c->d;

  if (!c->closing || c->nqueues_alive || c->poll_armed || c->resume_armed || c->dispatching)
    return;
  op_mem_clear(c);
  retired_release(c);
  inflight_unmap(c);
  close(c->fd);
  if (guardmem_repaired() != c->lost_at_start)
    log_msg(LOG_WARN, c->peer, d->cfg->socket, "%llu pages of guest memory vanished while this frontend was "
            "connected (its memory file shrank): they were replaced with zero pages",
            (unsigned long long)(guardmem_repaired() - c->lost_at_start));
  log_msg(LOG_DEBUG, c->peer, d->cfg->socket, "frontend state released");
  free(c);
  vdev_conn_closed(d);
}

void vconn_stop(struct vconn *c)
{
  conn_close(c);
}

void vconn_queue_drained(struct vconn *c, unsigned index, uint16_t base)
{
  struct vu_msg reply;

  c->q[index] = NULL;
  c->q_stopping[index] = false;
  c->nqueues_alive--;
  retired_release(c);
  if (c->closing) {
    vu_handler_queue_stopped(&c->h, index, base, &reply);
    conn_maybe_free(c);
    return;
  }
  if (vu_handler_queue_stopped(&c->h, index, base, &reply) == VU_REPLY) {
    if (send_reply(c, &reply, -1) < 0) {
      conn_close(c);
      return;
    }
    /* Go on with the messages that waited (on the next loop turn: this runs
     * inside a request's completion). */
    if (!c->resume_armed && !c->poll_armed) {
      c->resume_armed = true;
      engine_defer(&c->d->w->eng, &c->resume_op, 0);
    }
  }
}
