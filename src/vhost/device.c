/* device.c: a device's source and its socket's accepts (see device.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/backend.h"
#include "common/log.h"
#include "common/macros.h"
#include "datapath/datapath.h"
#include "datapath/qos.h"
#include "shunt/shunt.h"
#include "vhost/blkconfig.h"
#include "vhost/device.h"
#include "vhost/remote.h"
#include "vhost/vconn.h"
#include "vhost/vhost.h"
#include "vhost/vworker.h"

/* A source must be a regular file or a block device: a FIFO would block the
 * start, and a character device or socket has no size. */
static int check_source(const struct vhost_dev_config *cfg, char *err, size_t errlen)
{
  struct stat st;

  if (stat(cfg->source, &st) < 0) {
    int r = -errno;
    snprintf(err, errlen, "'%s': %s: %s", cfg->socket, cfg->source, strerror(errno));
    return r;
  }
  if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))
    return 0;
  snprintf(err, errlen, "'%s': %s is not a regular file or block device", cfg->socket, cfg->source);
  return -EINVAL;
}

static int open_source(struct vdev *d, const char *datapath, char *err, size_t errlen)
{
  const struct vhost_dev_config *cfg = d->cfg;
  struct backend *b;
  char berr[256];
  struct backend_options bo = { .rbd = &cfg->rbd };
  int r = backend_open_opts(cfg->backend ? cfg->backend : "file", cfg->source, cfg->read_only, &bo, &b,
                            berr, sizeof berr);

  if (r < 0) {
    snprintf(err, errlen, "'%s': %s", cfg->socket, berr);
    return r;
  }
  if (b->read_only && !cfg->read_only) {
    snprintf(err, errlen, "'%s': %s can only be read (a snapshot): add ,ro", cfg->socket, cfg->source);
    backend_close(b);
    return -EROFS;
  }
  struct dp_export_setup ds = { .name = cfg->socket, .path = cfg->source, .datapath = datapath,
                                .read_only = cfg->read_only, .qos = cfg->qos };
  d->dx_open = true;
  if ((r = datapath_setup(&d->dx, b, &ds, berr, sizeof berr)) < 0)
    snprintf(err, errlen, "'%s': %s", cfg->socket, berr);
  return r;
}

/* An NBD export: one connection per queue, now (blocking, at start-up). */
static int open_remote(struct vdev *d, char *err, size_t errlen)
{
  const struct vhost_dev_config *cfg = d->cfg;
  char cerr[512];
  int r;

  if (!(d->remote = calloc(d->nqueues, sizeof *d->remote)) || dp_export_stats_init(&d->dx) < 0) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  for (unsigned i = 0; i < d->nqueues; i++)
    if ((r = vremote_open(&d->remote[i], cfg->source, cerr, sizeof cerr)) < 0) {
      snprintf(err, errlen, "'%s': %s", cfg->socket, cerr);
      return r;
    }
  d->size = (uint64_t)shunt_get_size(d->remote[0].h);
  if (shunt_get_flag(d->remote[0].h, SHUNT_IS_READ_ONLY) == 1 && !cfg->read_only) {
    snprintf(err, errlen, "'%s': %s is read-only: add ',ro'", cfg->socket, cfg->source);
    return -EROFS;
  }
  return 0;
}

int vdev_open(struct vdev *d, struct vhost *vh, const struct vhost_dev_config *cfg, char *err, size_t errlen)
{
  int r;

  memset(d, 0, sizeof *d);
  d->vh = vh;
  d->cfg = cfg;
  d->listen_fd = -1;
  d->nqueues = cfg->queues ? cfg->queues : vh->nworkers;
  if (d->nqueues > VHOST_MAX_QUEUES)
    d->nqueues = VHOST_MAX_QUEUES;
  d->blk_size = 512;
  if (vhost_source_is_uri(cfg->source)) {
    if ((r = open_remote(d, err, errlen)) < 0) {
      vdev_close(d);   /* what open_remote got so far */
      return r;
    }
    vhost_blk_params(d, &d->blk);
    log_msg(LOG_INFO, NULL, cfg->socket, "%s, %llu bytes%s, %u queue%s, one NBD connection each", cfg->source,
            (unsigned long long)d->size, cfg->read_only ? ", read-only" : "", d->nqueues, d->nqueues == 1 ? "" : "s");
    return 0;
  }
  bool rbd = cfg->backend && !strcmp(cfg->backend, "rbd");
  if (!rbd && (r = check_source(cfg, err, errlen)) < 0)
    return r;
  /* An rbd image has no file descriptor: its bytes go through buffers (copy). */
  r = open_source(d, cfg->datapath ? cfg->datapath : rbd ? "copy" : "direct", err, errlen);
  if (r < 0 && !cfg->datapath && !rbd) {
    /* direct is the default, not a demand: a file system without O_DIRECT
     * (tmpfs) is served through the page cache instead. */
    log_msg(LOG_WARN, NULL, cfg->socket, "%s; using datapath=copy", err);
    dp_export_close(&d->dx);
    d->dx_open = false;
    r = open_source(d, "copy", err, errlen);
  }
  if (r < 0)
    return r;
  d->size = d->dx.backend->size;
  d->flow = dp_flow_get(&d->dx, NULL);   /* NULL with --qos=off: unscheduled */
  if (d->dx.backend->size % 512)
    log_msg(LOG_WARN, NULL, cfg->socket, "%s: size %llu is not a multiple of 512: the last %llu bytes are "
            "not reachable by the guest", cfg->source, (unsigned long long)d->dx.backend->size,
            (unsigned long long)(d->dx.backend->size % 512));
  vhost_blk_params(d, &d->blk);
  log_msg(LOG_INFO, NULL, cfg->socket, "%s, %llu bytes%s, data path %s, %u queue%s", cfg->source,
          (unsigned long long)d->dx.backend->size, cfg->read_only ? ", read-only" : "",
          d->dx.datapath->name, d->nqueues, d->nqueues == 1 ? "" : "s");
  return 0;
}

static void accept_cb(struct engine_op *op, int res, uint32_t flags);

static void arm_accept(struct vdev *d)
{
  struct io_uring_sqe *sqe = engine_sqe(&d->w->eng, &d->accept_op);
  io_uring_prep_accept(sqe, d->listen_fd, NULL, NULL, SOCK_CLOEXEC);
  d->accept_armed = true;
}

static void finish_stop(struct vdev *d)
{
  if (d->done || d->conn || d->accept_armed)
    return;
  d->done = true;
  vworker_device_done(d->w);
}

static void accept_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct vdev *d = container_of(op, struct vdev, accept_op);
  (void)flags;

  d->accept_armed = false;
  if (d->stopping) {
    if (res >= 0)
      close(res);
    finish_stop(d);
    return;
  }
  if (res < 0) {
    if (res != -EINTR && res != -ECONNABORTED && res != -EAGAIN)
      log_msg(LOG_WARN, NULL, d->cfg->socket, "accept failed: %s", strerror(-res));
    arm_accept(d);
    return;
  }
  atomic_fetch_add(&d->connections, 1);
  if (vconn_start(d, res) < 0) {
    log_msg(LOG_WARN, NULL, d->cfg->socket, "frontend refused: out of memory for its state");
    arm_accept(d);
  }
  /* Accepting again waits until this frontend leaves (vdev_conn_closed). */
}

void vdev_start(struct vdev *d)
{
  d->accept_op.cb = accept_cb;
  arm_accept(d);
}

void vdev_stop(struct vdev *d)
{
  if (d->stopping)
    return;
  d->stopping = true;
  if (d->accept_armed) {
    engine_cancel(&d->w->eng, &d->accept_op);
  }
  if (d->conn)
    vconn_stop(d->conn);
  finish_stop(d);
}

void vdev_conn_closed(struct vdev *d)
{
  d->conn = NULL;
  if (d->stopping)
    finish_stop(d);
  else
    arm_accept(d);
}

void vdev_close(struct vdev *d)
{
  dp_flow_put(d->flow);
  d->flow = NULL;
  if (d->dx_open || d->dx.stats)
    dp_export_close(&d->dx);   /* also a remote device's stats slots */
  d->dx_open = false;
  if (d->remote) {
    for (unsigned i = 0; i < d->nqueues; i++)
      if (d->remote[i].h) {
        shunt_flush(d->remote[i].h);
        vremote_close(&d->remote[i]);
      }
    free(d->remote);
    d->remote = NULL;
  }
}
