/* remote.c: an NBD export as a device's source (see remote.h).  libshunt
 * says which descriptors it waits for (shunt_pollfds); each is polled on
 * the worker's ring, and a poll that fires is handed back with its events
 * (shunt_pollfds_process), which runs the completion callbacks. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "common/macros.h"
#include "shunt/shunt.h"
#include "vhost/remote.h"
#include "vhost/vworker.h"

int vremote_open(struct vremote *r, const char *uri, char *err, size_t errlen)
{
  /* One connection per queue; a dropped one is reconnected and its
   * requests resent (NBD commands are idempotent). */
  int e;

  memset(r, 0, sizeof *r);
  if (!(r->h = shunt_create())) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  if ((e = shunt_set_reconnect(r->h, 30, 100)) == 0)
    e = shunt_connect_uri(r->h, uri);
  if (e < 0) {
    snprintf(err, errlen, "%s", shunt_last_error(r->h));
    shunt_close(r->h);
    r->h = NULL;
  }
  return e;
}

void vremote_close(struct vremote *r)
{
  shunt_close(r->h);
  r->h = NULL;
}

static void poll_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct vremote_poll *p = container_of(op, struct vremote_poll, op);
  struct vremote *r = p->r;
  (void)flags;

  p->armed = false;
  if (p->cancelled)
    return;
  if (res > 0) {
    struct pollfd pfd = { .fd = p->fd, .events = p->events, .revents = (short)res };
    shunt_pollfds_process(r->h, &pfd, 1);
  }
  vremote_drive(r, r->eng);
}

static void cancel(struct vremote *r, struct vremote_poll *p)
{
  struct io_uring_sqe *sqe = engine_sqe(r->eng, &engine_ignore_op);

  io_uring_prep_poll_remove(sqe, (__u64)(uintptr_t)&p->op);
  p->cancelled = true;
}

void vremote_drive(struct vremote *r, struct engine *e)
{
  struct pollfd pfd[VREMOTE_POLLS];
  bool want[VREMOTE_POLLS] = { false };
  unsigned n;

  r->eng = e;
  n = shunt_pollfds(r->h, pfd, VREMOTE_POLLS);   /* also sends what is queued */
  if (shunt_in_flight(r->h) == 0)
    n = 0;   /* nothing to wait for: no poll stays armed (a worker can end) */
  for (unsigned i = 0; i < n; i++) {
    int keep = -1, free_slot = -1;
    for (unsigned k = 0; k < VREMOTE_POLLS; k++) {
      struct vremote_poll *p = &r->p[k];
      if (p->armed && !p->cancelled && p->fd == pfd[i].fd && p->events == pfd[i].events && !want[k])
        keep = (int)k;
      else if (!p->armed && free_slot < 0)
        free_slot = (int)k;
    }
    if (keep >= 0) {
      want[keep] = true;
    } else if (free_slot >= 0) {
      struct vremote_poll *p = &r->p[free_slot];
      struct io_uring_sqe *sqe = engine_sqe(e, &p->op);
      *p = (struct vremote_poll){ .op.cb = poll_cb, .r = r, .fd = pfd[i].fd, .events = pfd[i].events,
                                  .armed = true };
      io_uring_prep_poll_add(sqe, p->fd, (unsigned)p->events);
      want[free_slot] = true;
    }
  }
  for (unsigned k = 0; k < VREMOTE_POLLS; k++)
    if (r->p[k].armed && !r->p[k].cancelled && !want[k])
      cancel(r, &r->p[k]);
}
