/* backend.c: choosing a backend by name and the helpers every backend shares. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"

int backend_open(const char *kind, const char *path, bool read_only,
                 struct backend **out, char *err, size_t errlen)
{
  return backend_open_opts(kind, path, read_only, NULL, out, err, errlen);
}

int backend_open_opts(const char *kind, const char *path, bool read_only,
                      const struct backend_options *o, struct backend **out,
                      char *err, size_t errlen)
{
  bool rbd = kind && !strcmp(kind, "rbd");

  if (o && !rbd && backend_rbd_options_set(o->rbd)) {
    snprintf(err, errlen, "ceph-conf, ceph-id, ceph-cluster and lock are options of backend=rbd");
    return -EINVAL;
  }
  if (!kind || !strcmp(kind, "file") || rbd) {
    if (o && (o->allow_overcommit || o->max_memory)) {
      snprintf(err, errlen, "allow-overcommit and max-memory are options of backend=memory");
      return -EINVAL;
    }
    if (!rbd)
      return backend_file_open(path, read_only, out, err, errlen);
#ifdef SHUNT_HAVE_RBD
    return backend_rbd_open(path, read_only, o ? o->rbd : NULL, out, err, errlen);
#else
    snprintf(err, errlen, "backend=rbd: this shunt was built without librbd (meson setup -Drbd=enabled)");
    return -ENOTSUP;
#endif
  }
  if (!strcmp(kind, "memory"))
    return backend_memory_open(path, read_only, o, out, err, errlen);
  snprintf(err, errlen, "unknown backend '%s' (file, memory, rbd)", kind);
  return -EINVAL;
}

static int rbd_set_str(char **dst, const char *v, const char *key, const char *who, char *err, size_t errlen)
{
  char *s;

  if (!*v) {
    snprintf(err, errlen, "%s: empty value for option '%s'", who, key);
    return -EINVAL;
  }
  if (!(s = strdup(v))) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  free(*dst);
  *dst = s;
  return 0;
}

int backend_rbd_set_option(struct backend_rbd_options *o, const char *key, const char *value,
                           const char *who, char *err, size_t errlen)
{
  char **dst = !strcmp(key, "ceph-conf") ? &o->conf : !strcmp(key, "ceph-id") ? &o->id
              : !strcmp(key, "ceph-cluster") ? &o->cluster : NULL;

  if (dst) {
    if (!value) {
      snprintf(err, errlen, "%s: option '%s' needs a value", who, key);
      return -EINVAL;
    }
    return rbd_set_str(dst, value, key, who, err, errlen);
  }
  if (!strcmp(key, "lock")) {
    if (value && (!strcmp(value, "exclusive") || !strcmp(value, "auto"))) {
      o->lock_exclusive = !strcmp(value, "exclusive");
      return 0;
    }
    snprintf(err, errlen, "%s: bad value '%s' for option 'lock' (exclusive or auto)", who, value ? value : "");
    return -EINVAL;
  }
  return 1;
}

bool backend_rbd_options_set(const struct backend_rbd_options *o)
{
  return o && (o->conf || o->id || o->cluster || o->lock_exclusive);
}

void backend_rbd_options_free(struct backend_rbd_options *o)
{
  free(o->conf);
  free(o->id);
  free(o->cluster);
  memset(o, 0, sizeof *o);
}

void backend_close(struct backend *b)
{
  if (b)
    b->ops->close(b);
}

void backend_submit(struct backend *b, struct engine *e, struct bio *io)
{
  io->be = b;
  io->eng = e;
  io->progress = 0;
  io->stage = 0;
  if (io->type == BIO_EXTENTS && !b->extents_remote) {
    /* Local and cheap (lseek, a page table): answered here, the same way
     * for every such backend. */
    size_t n = 0;
    int r = b->ops->extents ? b->ops->extents(b, io->offset, io->length, io->buf, io->count, &n)
                            : -ENOTSUP;
    io->count = r < 0 ? 0 : n;
    backend_complete_later(io, r);
    return;
  }
  b->ops->submit(b, e, io);
}

static void complete_trampoline(struct engine_op *op, int res, uint32_t flags)
{
  struct bio *io = (struct bio *)((char *)op - offsetof(struct bio, op));
  (void)flags;
  io->complete(io, res);
}

void backend_complete_later(struct bio *io, int res)
{
  io->op.cb = complete_trampoline;
  engine_defer(io->eng, &io->op, res);
}
