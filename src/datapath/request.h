/* request.h: one request in flight, and the small API a data path uses to
 * answer it: allocate reply items, queue them, finish.  A front end (the NBD
 * server's connection, src/server/conn.c) creates requests against its
 * request_sink: the sink's ops are how the request layer tells the front end
 * to queue reply bytes, that a reply cannot be completed, or that a request
 * is freed.  The request layer owns the request's memory and frees it once
 * every queued reply item is done and the data path has finished.
 * A memory front end (vhost: the payload is a VM's pages) sets ops->done
 * instead of encoding replies: its requests carry their payload in
 * r->mem_iov and are answered with a status only. */
#ifndef SHUNT_DATAPATH_REQUEST_H
#define SHUNT_DATAPATH_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "backend/backend.h"
#include "datapath/iosched.h"
#include "datapath/stats.h"
#include "engine/sendq.h"
#include "proto/reply.h"
#include "proto/request.h"
#include "proto/session.h"

struct datapath;
struct dp_export;
struct dp_flow;
struct dp_share;
struct request;
struct request_sink;

/* What a front end does for the requests of one sink.  Each op runs on the
 * sink's engine loop. */
struct request_sink_ops {
  /* Queue item it (iovecs, or zero-copy/splice fields; it->done and
   * it->hold set) on the front end's way out, in order. */
  void (*push)(struct request_sink *s, struct sendq_item *it);
  /* A held item (pushed with hold set) may go out now. */
  void (*release)(struct request_sink *s, struct sendq_item *it);
  /* An item could not be sent (err < 0): the way out is broken. */
  void (*send_failed)(struct request_sink *s, int err);
  /* r's reply can no longer be completed (part of it went out): the front
   * end must fail, so that its client sees the error. */
  void (*fail)(struct request_sink *s, struct request *r);
  /* r is about to be freed (its buffers and items already are): release
   * what the front end holds for it (r->buf_lender, r->cost). */
  void (*freed)(struct request_sink *s, struct request *r);
  /* Memory front ends only: r is answered with status nbd_error (0 =
   * success; a READ's data is already in r->mem_iov).  When a sink sets
   * done, no reply bytes are encoded or pushed for its requests (push,
   * release, send_failed and fail are never called); the request is freed
   * after done returns (freed() is still called).  Runs exactly once per
   * request that reached dp_execute(). */
  void (*done)(struct request_sink *s, struct request *r, uint32_t nbd_error);
};

/* A source of requests (one NBD connection, say).  The front end embeds it
 * and fills it before its first request_new(); requests copy these. */
struct request_sink {
  const struct request_sink_ops *ops;
  struct engine *eng;                  /* the loop its requests run on */
  const struct proto_session *session; /* how replies are encoded; NULL for a sink
                                        * with ops->done (no replies are encoded) */
  struct dp_export *export;
  const struct datapath *dp;           /* the path executing its requests */
  struct dp_share *share;              /* its part of its worker's pipes and arena;
                                        * may be NULL (then its requests take no arena) */
  const char *peer;                    /* who it serves, for log messages */
  struct dp_flow *flow;                /* its flow in the device's scheduler (qos.h), or NULL */
};

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
  struct request_sink *sink;
  struct engine *eng;                  /* the sink's loop */
  const struct proto_session *session;
  struct dp_export *export;            /* the export's storage side */
  const struct datapath *dp;           /* the path executing it */
  struct proto_request hdr;
  void *buf;                           /* payload buffer: WRITE data, READ data, BLOCK_STATUS reply */
  /* The front end's memory (a VM's pages): a READ lands in it, a WRITE is
   * taken from it; NULL for NBD requests.  Set after request_new(), before
   * dp_execute(); its lengths sum to hdr.length; the memory stays valid
   * until ops->done.  r->buf stays NULL (the data paths may use it). */
  const struct iovec *mem_iov;
  unsigned mem_niov;
  size_t buflen;
  bool buf_from_datapath;              /* buf came from dp->alloc_buffer */
  size_t buf_pooled;                   /* buf came from the worker's buffer pool for this
                                        * many bytes (request_pool_buffer); 0: it did not */
  void *buf_lender;                    /* the front end's: buf lies in this memory of its own
                                        * (e.g. a receive buffer), which stays put until the
                                        * request is freed; not freed here */
  size_t cost;                         /* the front end's: bytes it counts for this request */
  struct dp_share *share;              /* the sink's part of its worker's pipes and arena */
  struct bio bio;                      /* the main backend operation */
  /* A READ on the copy path: set (by auto) to read from the page cache
   * only first (BIO_NOWAIT).  Called once, when the page cache did not hold
   * all of it (res -EAGAIN) or the file refuses such reads (-EOPNOTSUPP);
   * the rest is then read as usual (copy.c).  NULL: plain reads. */
  void (*read_missed)(struct request *r, int res);
  struct reply_item status_item;       /* always available, for status and error replies */
  struct reply_item *items;            /* request_items() array */
  size_t nitems;
  unsigned unsent;                     /* queued items not yet sent */
  bool finished;                       /* the data path queued its last item */
  void *dp_priv;                       /* for the data path; freed with free() with the request */
  void *buf_base;                      /* for the data path: what alloc_buffer really allocated */
  size_t buf_alloc;
  struct dp_times times;               /* phase timestamps (stats.h) */
  /* The device's scheduler (qos.h): */
  struct dp_flow *flow;                /* the sink's flow; NULL: not scheduled */
  struct sched_req qos_req;
  struct engine_op qos_op;             /* runs it on its loop once let in */
  uint8_t qos_state;                   /* DP_QOS_NONE, _QUEUED, _STARTING, _ADMITTED, _DONE */
  bool qos_abort;                      /* finish it without executing once let in */
  struct dp_stats *stats;              /* its worker's slot of the export's stats */
  uint32_t error;                      /* the first NBD error its reply carries (0: none) */
  bool answered;                       /* a reply was queued or a status given: counted when freed */
};

/* A new request with header hdr from sink s (the export's request counters
 * go up; its completion, error and latency are counted when it is freed,
 * if it was answered).  NULL on ENOMEM. */
struct request *request_new(struct request_sink *s, const struct proto_request *hdr);

/* Give r its READ data or WRITE payload buffer of len bytes in r->buf:
 * from its data path's alloc_buffer when the path has one, else from the
 * worker's buffer pool (request_pool_buffer).  Returns r->buf, NULL on
 * ENOMEM.  Freed with the request. */
void *request_alloc_buffer(struct request *r, size_t len);

/* Give r a buffer of len bytes in r->buf from its worker's buffer pool
 * (dpworker.h, bufpool.h): a READ's pages faulted in already, a WRITE
 * payload's as it arrives.  Returns r->buf, NULL on ENOMEM.  Returned to
 * the pool when the request is freed. */
void *request_pool_buffer(struct request *r, size_t len);

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

/* Note that r's reply carries NBD error nbd_error (an error chunk; the
 * stats count the request under its first error).  request_reply_status
 * notes its own. */
void request_note_error(struct request *r, uint32_t nbd_error);

/* Queue item it as prepared by the caller (it->sq.iov/niov, zc, splice). */
void request_push(struct request *r, struct reply_item *it, bool held);

/* A held item is ready (its iovecs or splice may have been set since). */
void request_release(struct request *r, struct reply_item *it);

/* A reply can no longer be completed (e.g. a read failed in the middle of
 * a simple reply whose header went out): the front end fails. */
void request_fail_connection(struct request *r);

/* The data path has queued everything: the request is freed once sent
 * (also a request that never reached a data path, e.g. one whose payload
 * never arrived: freed at once, without a reply). */
void request_finish(struct request *r);

/* Send the whole reply for a request without data (status or error) and
 * finish.  msg may be NULL; it goes into structured error chunks.  For a
 * sink with ops->done: done(nbd_error) instead, then the request is freed. */
void request_reply_status(struct request *r, uint32_t nbd_error, const char *msg);

#endif
