/* backend.c: choosing a backend by name and the helpers every backend shares. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
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
  if (!kind || !strcmp(kind, "file")) {
    if (o && (o->allow_overcommit || o->max_memory)) {
      snprintf(err, errlen, "allow-overcommit and max-memory are options of backend=memory");
      return -EINVAL;
    }
    return backend_file_open(path, read_only, out, err, errlen);
  }
  if (!strcmp(kind, "memory"))
    return backend_memory_open(path, read_only, o, out, err, errlen);
  snprintf(err, errlen, "unknown backend '%s' (file, memory)", kind);
  return -EINVAL;
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
