/* datapath.h: how request bytes move between backend and socket.  A data path
 * executes a validated request and answers it through server/request.h.
 * `copy` (read into a buffer, then send) is the baseline; issue 3 adds
 * splice and direct paths as further entries of the same table. */
#ifndef SHUNT_DATAPATH_DATAPATH_H
#define SHUNT_DATAPATH_DATAPATH_H

#include <stddef.h>

struct request;

struct datapath {
  const char *name;
  /* Execute r (already validated; WRITE payload already in r->buf).  Must
   * end with request_finish() or request_reply_status(), possibly later. */
  void (*execute)(struct request *r);
  /* Optional: the buffer for a READ's data or a WRITE's payload (len bytes),
   * e.g. from a registered arena; NULL means out of memory.  When absent,
   * conn.c uses malloc/free.  free_buffer gets back what alloc_buffer gave. */
  void *(*alloc_buffer)(struct request *r, size_t len);
  void (*free_buffer)(struct request *r, void *buf);
};

/* The data path called name, or NULL. */
const struct datapath *datapath_find(const char *name);

/* The baseline path (src/datapath/copy.c). */
extern const struct datapath datapath_copy;

#endif
