/* request.h: one NBD request in flight on a connection, and the small API a
 * data path (src/datapath/) uses to answer it: allocate reply items, queue
 * them on the connection's send queue, finish.  The connection (conn.c) owns
 * the request's memory and frees it once every queued reply byte is sent. */
#ifndef SHUNT_SERVER_REQUEST_H
#define SHUNT_SERVER_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "datapath/stats.h"
#include "engine/sendq.h"
#include "proto/reply.h"
#include "proto/request.h"
#include "proto/session.h"

struct conn;
struct dp_share;
struct dp_export;
struct request;
struct rxbuf;

/* One piece of a reply: an encoded header plus an optional data iovec. */
struct reply_item {
  struct sendq_item sq;
  struct request *req;
  /* Optional: runs when the item is done (sent, or the queue failed), before
   * the request may be freed: a data path returns the item's pipe or buffer. */
  void (*release)(struct reply_item *it, int err);
  bool payload;                        /* its data counts as payload sent (phase times) */
  uint8_t hdr[PROTO_REPLY_HDR_MAX];
};

struct request {
  struct conn *conn;
  struct engine *eng;                  /* the connection's worker loop */
  const struct proto_session *session;
  struct dp_export *export;            /* the export's storage side */
  struct proto_request hdr;
  void *buf;                           /* payload buffer: WRITE data, READ data, BLOCK_STATUS reply */
  size_t buflen;
  bool buf_from_datapath;              /* buf came from datapath->alloc_buffer */
  struct rxbuf *rx_pin;                /* conn.c: a small WRITE's buf lies in this receive buffer,
                                        * which stays put until the request is freed */
  size_t cost;                         /* bytes counted against the connection's in-flight cap */
  struct dp_share *share;              /* the connection's part of its worker's pipes and arena */
  struct bio bio;                      /* the main backend operation */
  struct reply_item status_item;       /* always available, for status and error replies */
  struct reply_item *items;            /* request_items() array */
  size_t nitems;
  unsigned unsent;                     /* queued items not yet sent */
  bool finished;                       /* the data path queued its last item */
  void *dp_priv;                       /* for the data path; freed with free() with the request */
  void *buf_base;                      /* for the data path: what alloc_buffer really allocated */
  size_t buf_alloc;
  struct dp_times times;               /* phase timestamps (stats.h) */
};

/* Allocate n reply items for this request (once per request).  NULL on ENOMEM. */
struct reply_item *request_items(struct request *r, size_t n);

/* Queue item it: its header bytes hdr[0..hdr_len) then data[0..data_len). */
void request_send(struct request *r, struct reply_item *it, size_t hdr_len,
                  const void *data, size_t data_len);

/* Like request_send, but the item is held in the send queue (nothing after
 * it goes out) until request_release(): streams a reply in order while its
 * pieces are still being read.  Set it->sq.zc / splice fields before. */
void request_send_held(struct request *r, struct reply_item *it, size_t hdr_len,
                       const void *data, size_t data_len);

/* Queue item it as prepared by the caller (it->sq.iov/niov, zc, splice). */
void request_push(struct request *r, struct reply_item *it, bool held);

/* A held item is ready (its iovecs or splice may have been set since). */
void request_release(struct request *r, struct reply_item *it);

/* A reply can no longer be completed (e.g. a read failed in the middle of
 * a simple reply whose header went out): cut the connection. */
void request_fail_connection(struct request *r);

/* The data path has queued everything: the request is freed once sent. */
void request_finish(struct request *r);

/* Send the whole reply for a request without data (status or error) and
 * finish.  msg may be NULL; it goes into structured error chunks. */
void request_reply_status(struct request *r, uint32_t nbd_error, const char *msg);

#endif
