/* endpoint_nbd.c: an NBD export as a `shunt copy` endpoint (see endpoint.h),
 * through libshunt's asynchronous requests.  Over plain sockets payloads can
 * move by splice (to and from the caller's pipes) and sendfile (from a file);
 * over TLS, or with reconnect for pipes (a write whose pipe bytes were partly
 * sent cannot be resent), they go through memory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "shunt/shunt.h"
#include "tools/connect.h"
#include "tools/endpoint.h"

#define ZERO_CHUNK (1u << 20)

struct nbd_ep {
  struct endpoint e;
  struct shunt_handle *h;
  unsigned char *zeros;      /* ZERO_CHUNK zero bytes, for writing zeroes */
};

static struct nbd_ep *nbd_ep(struct endpoint *e)
{
  return container_of(e, struct nbd_ep, e);
}

static void on_done(const struct shunt_result *r)
{
  struct ep_io *io = r->user;
  if (r->cmd == SHUNT_READ)
    io->piped = r->piped;
  io->done(io, r->error, r->message);
}

/* A request submitted (cookie > 0) or refused (its message kept). */
static int submitted(struct nbd_ep *n, int64_t cookie)
{
  if (cookie >= 0)
    return 0;
  snprintf(n->e.errmsg, sizeof n->e.errmsg, "%s", shunt_last_error(n->h));
  return (int)cookie;
}

static int nbd_read(struct endpoint *e, struct ep_io *io)
{
  struct nbd_ep *n = nbd_ep(e);
  struct iovec v = { io->buf, io->len };
  io->piped = 0;
  if (io->pipe_wfd >= 0)
    return submitted(n, shunt_aio_pread_pipe(n->h, &v, 1, io->off, 0, io->pipe_wfd, io->pipe_from,
                                             on_done, io));
  return submitted(n, shunt_aio_pread(n->h, &v, 1, io->off, 0, on_done, io));
}

static int nbd_write(struct endpoint *e, struct ep_io *io)
{
  struct nbd_ep *n = nbd_ep(e);
  struct iovec v = { io->buf, io->len };
  if (io->pipe_rfd >= 0 && io->piped)
    return submitted(n, shunt_aio_pwrite_pipe(n->h, &v, 1, io->off, 0, io->pipe_rfd,
                                              io->pipe_from, io->piped, on_done, io));
  return submitted(n, shunt_aio_pwrite(n->h, &v, 1, io->off, 0, on_done, io));
}

static int nbd_write_from_fd(struct endpoint *e, struct ep_io *io)
{
  struct nbd_ep *n = nbd_ep(e);
  return submitted(n, shunt_aio_pwrite_file(n->h, io->src_fd, io->src_off, io->len, io->off, 0,
                                            on_done, io));
}

static int nbd_zero(struct endpoint *e, struct ep_io *io)
{
  struct nbd_ep *n = nbd_ep(e);
  if (shunt_get_flag(n->h, SHUNT_CAN_ZERO) == 1)
    return submitted(n, shunt_aio_zero(n->h, io->off, io->len, 0, on_done, io));
  /* The server cannot zero: write zeroes. */
  if (!n->zeros && !(n->zeros = calloc(1, ZERO_CHUNK))) {
    snprintf(e->errmsg, sizeof e->errmsg, "out of memory");
    return -ENOMEM;
  }
  uint64_t chunk = MIN((uint64_t)ZERO_CHUNK, e->max_req);
  for (uint64_t p = 0; p < io->len;) {
    uint64_t l = MIN(io->len - p, chunk);
    int r = shunt_pwrite(n->h, n->zeros, l, io->off + p, 0);
    if (r < 0) {
      snprintf(e->errmsg, sizeof e->errmsg, "%s", shunt_last_error(n->h));
      return r;
    }
    p += l;
  }
  return 1;
}

struct extents_ctx {
  ep_extent_fn fn;
  void *user;
};

static void on_extent(void *user, const char *context, uint64_t off, uint64_t len,
                      uint32_t flags)
{
  struct extents_ctx *c = user;
  if (!strcmp(context, "base:allocation"))
    c->fn(c->user, off, len, flags & SHUNT_EXTENT_ZERO);
}

static int nbd_extents(struct endpoint *e, uint64_t off, uint64_t len, ep_extent_fn fn,
                       void *user)
{
  struct nbd_ep *n = nbd_ep(e);
  struct extents_ctx c = { fn, user };
  if (shunt_can_meta_context(n->h, "base:allocation") != 1)
    return -ENOTSUP;
  int r = shunt_block_status(n->h, off, len, 0, on_extent, &c);
  if (r < 0)
    snprintf(e->errmsg, sizeof e->errmsg, "%s", shunt_last_error(n->h));
  return r;
}

static int nbd_flush(struct endpoint *e)
{
  struct nbd_ep *n = nbd_ep(e);
  int r = shunt_flush(n->h);
  if (r < 0)
    snprintf(e->errmsg, sizeof e->errmsg, "%s", shunt_last_error(n->h));
  return r;
}

static int nbd_nothing(struct endpoint *e)
{
  (void)e;
  return 0;
}

static unsigned nbd_pollfds(struct endpoint *e, struct pollfd *pfd, unsigned max)
{
  return shunt_pollfds(nbd_ep(e)->h, pfd, max);
}

static int nbd_process(struct endpoint *e, const struct pollfd *pfd, unsigned count)
{
  struct nbd_ep *n = nbd_ep(e);
  int r = shunt_pollfds_process(n->h, pfd, count);
  if (r < 0)
    snprintf(e->errmsg, sizeof e->errmsg, "%s", shunt_last_error(n->h));
  return r;
}

static int nbd_close(struct endpoint *e, char *err, size_t errlen)
{
  struct nbd_ep *n = nbd_ep(e);
  (void)err;
  (void)errlen;
  shunt_close(n->h);
  free(n->zeros);
  free(n);
  return 0;
}

static const struct endpoint_ops nbd_ops = {
  .read = nbd_read,
  .write = nbd_write,
  .write_from_fd = nbd_write_from_fd,
  .zero = nbd_zero,
  .extents = nbd_extents,
  .flush = nbd_flush,
  .submit = nbd_nothing,
  .reap = nbd_nothing,
  .pollfds = nbd_pollfds,
  .process = nbd_process,
  .close = nbd_close,
};

int endpoint_open_nbd(struct endpoint **ep, const char *name, const struct endpoint_params *p,
                      char *err, size_t errlen)
{
  struct nbd_ep *n = calloc(1, sizeof *n);
  if (!n) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  n->e.ops = &nbd_ops;
  n->e.name = name;
  n->e.fd = -1;
  struct tools_conn_opts o = { .connections = p->connections, .reconnect = p->reconnect,
                               .failover = p->failover };
  if (tools_connect(&n->h, name, &o, err, errlen) < 0) {
    free(n);
    return -1;
  }
  n->e.size = (uint64_t)shunt_get_size(n->h);
  n->e.max_req = (uint64_t)shunt_get_block_size(n->h, SHUNT_BLOCK_MAX);
  if (p->write && shunt_get_flag(n->h, SHUNT_IS_READ_ONLY) == 1) {
    snprintf(err, errlen, "%s: export is read-only", name);
    nbd_close(&n->e, NULL, 0);
    return -1;
  }
  /* splice and sendfile need plain sockets (not TLS: nbds://). */
  if (strncmp(name, "nbds", 4) != 0) {
    n->e.caps = EP_WRITE_FROM_FD;
    if (p->reconnect == 0 && !(p->failover && p->failover->n)) /* see tools_handle() */
      n->e.caps |= EP_READ_PIPE | EP_WRITE_PIPE;
  }
  *ep = &n->e;
  return 0;
}
