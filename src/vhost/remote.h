/* remote.h: a device whose source is an NBD export (nbd://, nbds://,
 * nbd+unix://): one libshunt connection per queue, opened at start-up and
 * kept across frontends, each driven by the worker that serves its queue:
 * its sockets are polled on that worker's ring while requests are in
 * flight.  Reads are received straight into the guest's pages (libshunt's
 * iovec placement), writes sent from them; libshunt reconnects a dropped
 * connection and resends what was in flight. */
#ifndef SHUNT_VHOST_REMOTE_H
#define SHUNT_VHOST_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

struct shunt_handle;

#define VREMOTE_POLLS 8

struct vremote;

struct vremote_poll {
  struct engine_op op;
  struct vremote *r;
  int fd;
  short events;
  bool armed;                  /* its completion is still to come */
  bool cancelled;              /* not wanted any more: its completion is ignored */
};

/* One queue's connection. */
struct vremote {
  struct shunt_handle *h;
  struct engine *eng;          /* the loop that drives it (its queue's worker) */
  struct vremote_poll p[VREMOTE_POLLS];
};

/* Connect r to uri (blocking: at start-up).  Returns 0 or -errno with a
 * message in err. */
int vremote_open(struct vremote *r, const char *uri, char *err, size_t errlen);

/* Close it (no request in flight, no poll armed: after the workers ended). */
void vremote_close(struct vremote *r);

/* After submitting requests or processing completions, on engine e's
 * thread: send what is queued and keep the sockets polled while requests
 * are in flight (completion callbacks run from those polls). */
void vremote_drive(struct vremote *r, struct engine *e);

#endif
