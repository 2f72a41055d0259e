/* rbd.c: the `rbd` backend: an image (or one of its snapshots) in a Ceph
 * cluster, through librbd's asynchronous API.  librbd finishes requests on its
 * own threads; each completion is posted to the engine of the worker that
 * submitted it (engine_post: a short list and an eventfd the ring reads), so
 * a bio completes on its own worker.  librbd's calls that have no
 * asynchronous form and wait for the cluster (diff iterate for BIO_EXTENTS,
 * taking the lock for lock=exclusive, reopening after blocklisting) run on
 * one helper thread of the backend's, never on a worker's loop.  One cluster
 * connection and one image handle serve every connection to the export. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rados/librados.h>
#include <rbd/librbd.h>

#include "backend/backend.h"

/* A client without op timeouts in its ceph.conf gets these (seconds): an OSD
 * or monitor that stops answering fails requests instead of hanging them. */
#define RBD_DEFAULT_OP_TIMEOUT "30"
/* Without fast-diff, allocation is read object by object: at most this many
 * bytes per extents() call. */
#define RBD_SLOW_DIFF_MAX (UINT64_C(256) << 20)
/* lock=exclusive: a write without the lock retries taking it at most this often. */
#define RBD_LOCK_RETRY_NS 1000000000LL
/* A blocklisted client reopens at most this often. */
#define RBD_REOPEN_MIN_NS 1000000000LL

/* One connection to the cluster and the image opened through it.  A
 * blocklisted connection is replaced; the old one is kept (bios may still
 * hold it) and closed with the backend. */
struct rbd_handle {
  rados_t cluster;
  rados_ioctx_t ioctx;
  rbd_image_t image;
  struct rbd_handle *retired_next;
};

struct rbd_priv {
  char *pool, *image, *snap;
  struct backend_rbd_options opt;
  bool fast_diff;
  _Atomic(struct rbd_handle *) cur;
  pthread_mutex_t reopen_lock;    /* reopening; the retired list */
  struct rbd_handle *retired;
  int64_t reopened_ns;
  atomic_bool lock_held;          /* lock=exclusive: this gateway owns the lock */
  _Atomic int64_t lock_tried_ns;
  /* The helper thread (started by the first job, joined at close) and its
   * work, under jobs_lock: bios (BIO_EXTENTS; a write that first takes the
   * lock), and a handle to replace after blocklisting. */
  pthread_mutex_t jobs_lock;
  pthread_cond_t jobs_cond;
  struct bio *jobs, **jobs_tail;
  struct rbd_handle *reopen_h;
  bool helper_started, helper_stop;
  pthread_t helper;
};

static int64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void handle_close(struct rbd_handle *h, bool release_lock)
{
  if (h->image) {
    if (release_lock)
      rbd_lock_release(h->image);
    rbd_close(h->image);
  }
  if (h->ioctx)
    rados_ioctx_destroy(h->ioctx);
  if (h->cluster)
    rados_shutdown(h->cluster);
  free(h);
}

/* Give the client op timeouts unless its configuration has them. */
static void set_default_timeouts(rados_t cl)
{
  static const char *const keys[] = { "rados_osd_op_timeout", "rados_mon_op_timeout" };
  char v[64];

  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (rados_conf_get(cl, keys[i], v, sizeof v) == 0 && strtod(v, NULL) == 0)
      rados_conf_set(cl, keys[i], RBD_DEFAULT_OP_TIMEOUT);
}

static int handle_connect(const struct rbd_priv *p, bool read_only, struct rbd_handle **out,
                          char *err, size_t errlen);

/* Connect and open the image.  Returns 0 or -errno with a message in err.
 * The threads librados and librbd start take no signals: the process's
 * SIGTERM or SIGHUP must reach the thread that waits for it, not kill the
 * process from a thread that has them unblocked. */
static void block_signals(sigset_t *old)
{
  sigset_t all;

  sigfillset(&all);
  sigdelset(&all, SIGSEGV); sigdelset(&all, SIGBUS); sigdelset(&all, SIGFPE);
  sigdelset(&all, SIGILL); sigdelset(&all, SIGABRT);
  pthread_sigmask(SIG_BLOCK, &all, old);
}

static int handle_open(const struct rbd_priv *p, bool read_only, struct rbd_handle **out,
                       char *err, size_t errlen)
{
  sigset_t old;
  int r;

  block_signals(&old);
  r = handle_connect(p, read_only, out, err, errlen);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return r;
}

static int handle_connect(const struct rbd_priv *p, bool read_only, struct rbd_handle **out,
                          char *err, size_t errlen)
{
  struct rbd_handle *h = calloc(1, sizeof *h);
  char name[256];
  int r;

  if (!h) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  snprintf(name, sizeof name, "client.%s", p->opt.id ? p->opt.id : "admin");
  if ((r = rados_create2(&h->cluster, p->opt.cluster ? p->opt.cluster : "ceph", name, 0)) < 0) {
    h->cluster = NULL;
    snprintf(err, errlen, "rbd: cannot create a Ceph client %s: %s", name, strerror(-r));
    goto fail;
  }
  if ((r = rados_conf_read_file(h->cluster, p->opt.conf)) < 0) {
    snprintf(err, errlen, "rbd: cannot read %s: %s", p->opt.conf ? p->opt.conf : "a ceph.conf "
             "($CEPH_CONF, /etc/ceph/$cluster.conf, ~/.ceph/$cluster.conf)", strerror(-r));
    goto fail;
  }
  rados_conf_parse_env(h->cluster, NULL);   /* CEPH_ARGS */
  set_default_timeouts(h->cluster);
  if ((r = rados_connect(h->cluster)) < 0) {
    char to[64] = "?";
    rados_conf_get(h->cluster, "client_mount_timeout", to, sizeof to);
    snprintf(err, errlen, "rbd: cannot connect to the Ceph cluster as %s (client_mount_timeout %.0f s): %s",
             name, strtod(to, NULL), strerror(-r));
    rados_shutdown(h->cluster);
    h->cluster = NULL;
    goto fail;
  }
  if ((r = rados_ioctx_create(h->cluster, p->pool, &h->ioctx)) < 0) {
    h->ioctx = NULL;
    snprintf(err, errlen, r == -ENOENT ? "rbd: no pool '%s' in the cluster" : "rbd: pool '%s': %s",
             p->pool, strerror(-r));
    goto fail;
  }
  r = read_only ? rbd_open_read_only(h->ioctx, p->image, &h->image, p->snap)
                : rbd_open(h->ioctx, p->image, &h->image, NULL);
  if (r < 0) {
    h->image = NULL;
    if (r == -ENOENT)
      snprintf(err, errlen, p->snap ? "rbd: no image '%s/%s' with a snapshot '%s'" : "rbd: no image '%s/%s'",
               p->pool, p->image, p->snap);
    else
      snprintf(err, errlen, "rbd: cannot open image '%s/%s': %s", p->pool, p->image, strerror(-r));
    goto fail;
  }
  *out = h;
  return 0;
fail:
  handle_close(h, false);
  return r;
}

/* lock=exclusive: take the image's lock; librbd then refuses to hand it over. */
static int take_lock(struct rbd_priv *p, struct rbd_handle *h)
{
  int r = rbd_lock_acquire(h->image, RBD_LOCK_MODE_EXCLUSIVE);
  atomic_store(&p->lock_tried_ns, now_ns());
  atomic_store(&p->lock_held, r == 0);
  return r;
}

/* A blocklisted client's requests all fail: connect again (once for every
 * bio that saw it on handle h).  On the helper thread: connecting waits for
 * the cluster (up to client_mount_timeout). */
static void reopen(struct backend *b, struct rbd_handle *h)
{
  struct rbd_priv *p = b->priv;
  struct rbd_handle *nh;
  char err[256];

  pthread_mutex_lock(&p->reopen_lock);
  if (atomic_load(&p->cur) == h && now_ns() - p->reopened_ns >= RBD_REOPEN_MIN_NS) {
    p->reopened_ns = now_ns();
    if (handle_open(p, b->read_only, &nh, err, sizeof err) == 0) {
      if (p->opt.lock_exclusive)
        take_lock(p, nh);
      h->retired_next = p->retired;
      p->retired = h;
      atomic_store(&p->cur, nh);
      fprintf(stderr, "shunt: rbd %s/%s: the client was blocklisted; reopened the image\n", p->pool, p->image);
    } else {
      fprintf(stderr, "shunt: rbd %s/%s: the client was blocklisted; reopening failed: %s\n",
              p->pool, p->image, err);
    }
  }
  pthread_mutex_unlock(&p->reopen_lock);
}

static void rbd_start(struct bio *io, enum bio_type op);
static void ask_reopen(struct backend *b, struct rbd_handle *h);

/* On the worker (posted by aio_done): finish the bio or start its next step. */
static void rbd_finish(struct engine_op *op, int res, uint32_t flags)
{
  struct bio *io = (struct bio *)((char *)op - offsetof(struct bio, op));
  (void)flags;

  io->eng->pending--;
  if (res == -ESHUTDOWN) {   /* librados's EBLOCKLISTED */
    ask_reopen(io->be, (struct rbd_handle *)(uintptr_t)io->progress);
    res = -EIO;
  }
  if (res == -ETIMEDOUT)
    res = -EIO;
  /* FUA: the write is acknowledged once a flush after it completed. */
  if (res == 0 && io->stage == 0 && (io->flags & BIO_FUA) && io->type != BIO_READ && io->type != BIO_FLUSH) {
    io->stage = 1;
    rbd_start(io, BIO_FLUSH);
    return;
  }
  io->complete(io, res);
}

/* On one of librbd's threads: hand the result to the bio's worker. */
static void aio_done(rbd_completion_t c, void *arg)
{
  struct bio *io = arg;
  ssize_t r = rbd_aio_get_return_value(c);
  int res = 0;

  rbd_aio_release(c);
  if (r < 0)
    res = (int)r;
  else if (io->type == BIO_READ && io->stage == 0 && (uint64_t)r != io->length)
    res = -EIO;   /* past the end of an image that shrank */
  io->op.cb = rbd_finish;
  engine_post(io->eng, &io->op, res);
}

/* Hand one request to librbd (op: the bio's own type, or FLUSH for FUA). */
static void rbd_start(struct bio *io, enum bio_type op)
{
  struct rbd_priv *p = io->be->priv;
  struct rbd_handle *h = atomic_load(&p->cur);
  rbd_completion_t c;
  int r;

  io->progress = (uintptr_t)h;
  if ((r = rbd_aio_create_completion(io, aio_done, &c)) < 0) {
    backend_complete_later(io, r);
    return;
  }
  switch (op) {
  case BIO_READ:
    r = rbd_aio_read(h->image, io->offset, io->length, io->buf, c);
    break;
  case BIO_WRITE:
    r = rbd_aio_write(h->image, io->offset, io->length, io->buf, c);
    break;
  case BIO_FLUSH:
    r = rbd_aio_flush(h->image, c);
    break;
  case BIO_TRIM:
    r = rbd_aio_discard(h->image, io->offset, io->length, c);
    break;
  case BIO_ZERO:
    /* Reads back as zeroes either way; NO_HOLE keeps the range allocated. */
    r = rbd_aio_write_zeroes(h->image, io->offset, io->length, c,
                             (io->flags & BIO_NO_HOLE) ? RBD_WRITE_ZEROES_FLAG_THICK_PROVISION : 0, 0);
    break;
  default:
    r = -EINVAL;
    break;
  }
  if (r < 0) {
    rbd_aio_release(c);
    backend_complete_later(io, r);
    return;
  }
  io->eng->pending++;   /* the worker waits for the post */
}

/* Turning rbd_diff_iterate2's runs of data into extents. */
struct diff_walk {
  uint64_t pos, end;
  struct backend_extent *ext;
  size_t max, n;
  bool full;
};

static void walk_add(struct diff_walk *w, uint64_t len, uint32_t flags)
{
  if (len == 0 || w->full)
    return;
  if (w->n && w->ext[w->n - 1].flags == flags) {
    w->ext[w->n - 1].length += len;
  } else if (w->n == w->max) {
    w->full = true;
    return;
  } else {
    w->ext[w->n].length = len;
    w->ext[w->n].flags = flags;
    w->n++;
  }
  w->pos += len;
}

static int diff_cb(uint64_t off, size_t len, int exists, void *arg)
{
  struct diff_walk *w = arg;
  uint64_t end = off + len;

  if (end > w->end)
    end = w->end;
  if (off < w->pos)
    off = w->pos;
  if (off >= end)
    return 0;
  walk_add(w, off - w->pos, BACKEND_EXTENT_HOLE | BACKEND_EXTENT_ZERO);
  walk_add(w, end - off, exists ? 0 : BACKEND_EXTENT_HOLE | BACKEND_EXTENT_ZERO);
  return w->full ? -ECANCELED : 0;
}

/* The allocation map from offset on through handle h, as extents() gives
 * it, but with librados's errors as they are (-ETIMEDOUT, -ESHUTDOWN).
 * Waits for the cluster. */
static int diff_extents(struct backend *b, struct rbd_handle *h, uint64_t offset, uint64_t length,
                        struct backend_extent *ext, size_t max, size_t *n)
{
  struct rbd_priv *p = b->priv;
  uint64_t size = __atomic_load_n(&b->size, __ATOMIC_RELAXED);
  struct diff_walk w = { .pos = offset, .ext = ext, .max = max };
  int r;

  if (offset >= size || max == 0)
    return -EIO;
  if (length > size - offset)
    length = size - offset;
  if (!p->fast_diff && length > RBD_SLOW_DIFF_MAX)
    length = RBD_SLOW_DIFF_MAX;
  w.end = offset + length;
  r = rbd_diff_iterate2(h->image, NULL, offset, length, 1, p->fast_diff, diff_cb, &w);
  if (r < 0 && !(r == -ECANCELED && w.full))
    return r;
  if (!w.full)
    walk_add(&w, w.end - w.pos, BACKEND_EXTENT_HOLE | BACKEND_EXTENT_ZERO);
  *n = w.n;
  return w.n ? 0 : -EIO;
}

/* Synchronous, for callers off the loops (the data paths use BIO_EXTENTS:
 * extents_remote). */
static int rbd_extents(struct backend *b, uint64_t offset, uint64_t length,
                       struct backend_extent *ext, size_t max, size_t *n)
{
  struct rbd_priv *p = b->priv;
  int r = diff_extents(b, atomic_load(&p->cur), offset, length, ext, max, n);

  return r == -ETIMEDOUT || r == -ESHUTDOWN ? -EIO : r;
}

/* ---- The helper thread: librbd's calls that wait for the cluster ---- */

/* On the worker (posted by the helper): a write that waited for the lock
 * starts now, or fails when another client still holds it. */
static void rbd_locked(struct engine_op *op, int res, uint32_t flags)
{
  struct bio *io = (struct bio *)((char *)op - offsetof(struct bio, op));
  (void)flags;

  io->eng->pending--;
  if (res < 0)
    io->complete(io, res);
  else
    rbd_start(io, io->type);
}

/* On the helper thread: io's call to the cluster, then io back to its
 * worker (BIO_EXTENTS through rbd_finish, as an aio would). */
static void helper_run(struct backend *b, struct bio *io)
{
  struct rbd_priv *p = b->priv;
  struct rbd_handle *h = atomic_load(&p->cur);
  int res;

  if (io->type == BIO_EXTENTS) {
    size_t n = 0;
    res = diff_extents(b, h, io->offset, io->length, io->buf, io->count, &n);
    io->count = res < 0 ? 0 : n;
    io->progress = (uintptr_t)h;
    io->op.cb = rbd_finish;
  } else {   /* lock=exclusive: a write, once this gateway holds the lock */
    res = atomic_load(&p->lock_held) || take_lock(p, h) == 0 ? 0 : -EROFS;
    io->op.cb = rbd_locked;
  }
  engine_post(io->eng, &io->op, res);
}

static void *helper_main(void *arg)
{
  struct backend *b = arg;
  struct rbd_priv *p = b->priv;

  pthread_mutex_lock(&p->jobs_lock);
  for (;;) {
    struct bio *io = p->jobs;
    struct rbd_handle *h = p->reopen_h;

    if (io) {
      if (!(p->jobs = io->next))
        p->jobs_tail = &p->jobs;
      pthread_mutex_unlock(&p->jobs_lock);
      helper_run(b, io);
    } else if (p->helper_stop) {
      break;
    } else if (h) {
      p->reopen_h = NULL;
      pthread_mutex_unlock(&p->jobs_lock);
      reopen(b, h);
    } else {
      pthread_cond_wait(&p->jobs_cond, &p->jobs_lock);
      continue;
    }
    pthread_mutex_lock(&p->jobs_lock);
  }
  pthread_mutex_unlock(&p->jobs_lock);
  return NULL;
}

/* Start the helper thread unless it runs (jobs_lock held).  Like librados's
 * threads it takes no signals (see handle_open).  Returns 0 or -errno. */
static int helper_start(struct backend *b)
{
  struct rbd_priv *p = b->priv;
  sigset_t old;
  int r;

  if (p->helper_started)
    return 0;
  block_signals(&old);
  r = pthread_create(&p->helper, NULL, helper_main, b);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (r)
    return -r;
  p->helper_started = true;
  return 0;
}

/* Hand io to the helper thread; its worker waits for the post.  Returns 0
 * or -errno (the thread could not start: io is not queued). */
static int helper_queue(struct backend *b, struct bio *io)
{
  struct rbd_priv *p = b->priv;
  int r;

  pthread_mutex_lock(&p->jobs_lock);
  if ((r = helper_start(b)) == 0) {
    io->next = NULL;
    *p->jobs_tail = io;
    p->jobs_tail = &io->next;
    pthread_cond_signal(&p->jobs_cond);
  }
  pthread_mutex_unlock(&p->jobs_lock);
  if (r == 0)
    io->eng->pending++;
  return r;
}

/* A bio saw handle h blocklisted: the helper thread reopens the image. */
static void ask_reopen(struct backend *b, struct rbd_handle *h)
{
  struct rbd_priv *p = b->priv;
  int r;

  if (atomic_load(&p->cur) != h)
    return;   /* reopened already */
  pthread_mutex_lock(&p->jobs_lock);
  if ((r = helper_start(b)) == 0) {
    p->reopen_h = h;
    pthread_cond_signal(&p->jobs_cond);
  }
  pthread_mutex_unlock(&p->jobs_lock);
  if (r < 0)
    fprintf(stderr, "shunt: rbd %s/%s: the client was blocklisted; cannot start a thread to reopen "
            "the image: %s\n", p->pool, p->image, strerror(-r));
}

/* Stop the helper thread (the backend is closing: no bio is queued). */
static void helper_stop(struct rbd_priv *p)
{
  bool started;

  pthread_mutex_lock(&p->jobs_lock);
  p->helper_stop = true;
  started = p->helper_started;
  pthread_cond_signal(&p->jobs_cond);
  pthread_mutex_unlock(&p->jobs_lock);
  if (started)
    pthread_join(p->helper, NULL);
}

/* lock=exclusive without the lock: true for the one bio that may try to
 * take it again now (at most once a second; the others fail meanwhile). */
static bool lock_retry_due(struct rbd_priv *p)
{
  int64_t t = atomic_load(&p->lock_tried_ns), now = now_ns();

  return now - t >= RBD_LOCK_RETRY_NS && atomic_compare_exchange_strong(&p->lock_tried_ns, &t, now);
}

static void rbd_submit(struct backend *b, struct engine *e, struct bio *io)
{
  struct rbd_priv *p = b->priv;
  (void)e;

  switch (io->type) {
  case BIO_CACHE:
    backend_complete_later(io, 0);   /* librbd reads on demand; nothing to warm */
    return;
  case BIO_EXTENTS:   /* rbd_diff_iterate2 has no asynchronous form */
    if (helper_queue(b, io) < 0)
      backend_complete_later(io, -EAGAIN);
    return;
  case BIO_WRITE: case BIO_TRIM: case BIO_ZERO:
    if (b->read_only) {
      backend_complete_later(io, -EROFS);
      return;
    }
    if (io->type == BIO_ZERO && (io->flags & BIO_FAST_ZERO)) {
      backend_complete_later(io, -ENOTSUP);
      return;
    }
    if (p->opt.lock_exclusive && !atomic_load(&p->lock_held)) {
      /* Another client holds the lock: fail, or first try to take it. */
      if (!lock_retry_due(p) || helper_queue(b, io) < 0)
        backend_complete_later(io, -EROFS);
      return;
    }
    break;
  default:
    break;
  }
  rbd_start(io, io->type);
}

static int rbd_flush_sync(struct backend *b)
{
  struct rbd_priv *p = b->priv;
  return b->read_only ? 0 : rbd_flush(atomic_load(&p->cur)->image);
}

static int rbd_refresh(struct backend *b)
{
  struct rbd_priv *p = b->priv;
  uint64_t size;
  int r = rbd_get_size(atomic_load(&p->cur)->image, &size);

  if (r == 0)
    __atomic_store_n(&b->size, size, __ATOMIC_RELAXED);
  return r;
}

static void priv_free(struct rbd_priv *p)
{
  free(p->pool);
  backend_rbd_options_free(&p->opt);
  pthread_mutex_destroy(&p->reopen_lock);
  pthread_mutex_destroy(&p->jobs_lock);
  pthread_cond_destroy(&p->jobs_cond);
  free(p);
}

static void rbd_backend_close(struct backend *b)
{
  struct rbd_priv *p = b->priv;
  struct rbd_handle *h;

  helper_stop(p);
  h = atomic_load(&p->cur);
  handle_close(h, atomic_load(&p->lock_held));
  while ((h = p->retired)) {
    p->retired = h->retired_next;
    handle_close(h, false);
  }
  priv_free(p);
  free(b);
}

static const struct backend_ops rbd_ops = {
  .name = "rbd",
  .submit = rbd_submit,
  .extents = rbd_extents,
  .flush_sync = rbd_flush_sync,
  .refresh = rbd_refresh,
  .close = rbd_backend_close,
};

/* Split POOL/IMAGE[@SNAP] into p's pool, image and snap (one allocation). */
static int parse_spec(struct rbd_priv *p, const char *spec, char *err, size_t errlen)
{
  char *slash, *at;

  if (!(p->pool = strdup(spec))) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  slash = strchr(p->pool, '/');
  if (!slash || slash == p->pool || !slash[1] || strchr(slash + 1, '/')) {
    snprintf(err, errlen, "rbd: '%s' is not POOL/IMAGE[@SNAP]", spec);
    return -EINVAL;
  }
  *slash = '\0';
  p->image = slash + 1;
  if ((at = strchr(p->image, '@'))) {
    *at = '\0';
    p->snap = at + 1;
    if (!*p->snap || at == p->image) {
      snprintf(err, errlen, "rbd: '%s' is not POOL/IMAGE[@SNAP]", spec);
      return -EINVAL;
    }
  }
  return 0;
}

static int copy_opts(struct backend_rbd_options *dst, const struct backend_rbd_options *o)
{
  if (!o)
    return 0;
  dst->lock_exclusive = o->lock_exclusive;
  if ((o->conf && !(dst->conf = strdup(o->conf))) || (o->id && !(dst->id = strdup(o->id))) ||
      (o->cluster && !(dst->cluster = strdup(o->cluster))))
    return -ENOMEM;
  return 0;
}

int backend_rbd_open(const char *spec, bool read_only, const struct backend_rbd_options *o,
                     struct backend **out, char *err, size_t errlen)
{
  struct backend *b = calloc(1, sizeof *b);
  struct rbd_priv *p = calloc(1, sizeof *p);
  struct rbd_handle *h;
  uint64_t features = 0, size = 0;
  int r;

  if (!b || !p) {
    free(b); free(p);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  pthread_mutex_init(&p->reopen_lock, NULL);
  pthread_mutex_init(&p->jobs_lock, NULL);
  pthread_cond_init(&p->jobs_cond, NULL);
  p->jobs_tail = &p->jobs;
  if ((r = parse_spec(p, spec, err, errlen)) < 0)
    goto fail;
  if ((r = copy_opts(&p->opt, o)) < 0) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  if (p->snap)
    read_only = true;   /* a snapshot cannot be written */
  if (p->opt.lock_exclusive && read_only) {
    snprintf(err, errlen, "rbd: lock=exclusive is for a writable image, not a snapshot or a read-only export");
    r = -EINVAL;
    goto fail;
  }
  if ((r = handle_open(p, read_only, &h, err, errlen)) < 0)
    goto fail;
  atomic_store(&p->cur, h);
  if ((r = rbd_get_size(h->image, &size)) < 0 || (r = rbd_get_features(h->image, &features)) < 0) {
    snprintf(err, errlen, "rbd: image '%s/%s': %s", p->pool, p->image, strerror(-r));
    handle_close(h, false);
    goto fail;
  }
  p->fast_diff = (features & RBD_FEATURE_FAST_DIFF) != 0;
  if (p->opt.lock_exclusive) {
    if (!(features & RBD_FEATURE_EXCLUSIVE_LOCK)) {
      snprintf(err, errlen, "rbd: lock=exclusive: image '%s/%s' lacks the exclusive-lock feature "
               "(rbd feature enable %s/%s exclusive-lock)", p->pool, p->image, p->pool, p->image);
      handle_close(h, false);
      r = -EINVAL;
      goto fail;
    }
    if ((r = take_lock(p, h)) < 0)
      fprintf(stderr, "shunt: rbd %s/%s: lock=exclusive: another client holds the lock (%s); "
              "writes fail with EROFS until this gateway takes it\n", p->pool, p->image, strerror(-r));
  }
  b->ops = &rbd_ops;
  b->priv = p;
  b->fd = -1;
  b->extents_remote = true;   /* rbd_diff_iterate2: a round trip to the cluster */
  b->size = size;
  b->read_only = read_only;
  b->can_flush = b->can_cache = true;
  b->can_trim = b->can_zero = !read_only;
  b->can_fast_zero = false;
  b->rotational = false;
  *out = b;
  return 0;
fail:
  priv_free(p);
  free(b);
  return r;
}
