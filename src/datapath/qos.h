/* qos.h: the per-device scheduler (iosched.h) as the front ends use it.
 * Every export whose data live on one device (the same block device, or
 * files on one file system: st_dev) shares one struct dp_device, whatever
 * worker thread its connections run on; a front end's source of requests
 * (a connection, or all connections of one client address or TLS identity
 * to one export) is a struct dp_flow.  Front ends hand READ, WRITE, FLUSH,
 * TRIM, WRITE_ZEROES and CACHE to dp_submit() instead of dp_execute(): the
 * request waits in its flow's queue until the scheduler lets it into the
 * device, then runs on its own worker (posted there when another worker's
 * completion let it in).  A request counts against the device from then
 * until request_finish(), or until it waits for its own connection's
 * buffers (dp_qos_waiting). */
#ifndef SHUNT_DATAPATH_QOS_H
#define SHUNT_DATAPATH_QOS_H

#include <stdbool.h>
#include <stdint.h>

#include "datapath/iosched.h"

struct dp_export;
struct json;
struct request;
struct request_sink;

/* How flows are formed (--qos-key). */
enum dp_qos_key { DP_QOS_KEY_CONN, DP_QOS_KEY_ADDR, DP_QOS_KEY_TLS };

/* Server-wide settings, set once before exports are set up. */
struct dp_qos_config {
  bool off;                       /* --qos=off: requests go straight to their data path */
  enum dp_qos_key key;
  struct sched_config dev;        /* --device-iops, --device-bw */
};
extern struct dp_qos_config dp_qos;

/* Scheduling state of a request (struct request's qos_state): not
 * scheduled yet, waiting in its flow's queue, let in but not yet started
 * on its loop, running on the device, done with it. */
enum { DP_QOS_NONE, DP_QOS_QUEUED, DP_QOS_STARTING, DP_QOS_ADMITTED, DP_QOS_DONE };

struct dp_device;

struct dp_flow {
  struct sched_flow sf;           /* under its device's lock */
  struct dp_device *dev;
  const struct dp_export *export;
  char *key;                      /* NULL: one connection's own flow */
  unsigned refs;                  /* under the device's lock */
  struct dp_flow *next;           /* the device's flows */
};

/* Join dx to its device's scheduler (datapath_setup does, from the
 * backend's file; a backend without a file gets a device of its own).
 * With dp_qos.off, nothing.  Returns 0 or -ENOMEM. */
int dp_qos_join(struct dp_export *dx);

/* Leave it (export close: no request in flight). */
void dp_qos_leave(struct dp_export *dx);

/* New parameters for dx's flows (a configuration reload): its flows now
 * open take them at once (queued requests keep their place; a raised limit
 * lets them in at the latest at the next timer tick), new flows too. */
void dp_qos_set(struct dp_export *dx, const struct sched_params *p);

/* A flow of export dx for a new source of requests: key NULL for one of
 * its own, else the flow of that key (shared, counted).  NULL when dx is
 * not scheduled (dp_qos.off) or on ENOMEM (then its requests go
 * unscheduled).  Its parameters are dx's (dp_export.qos). */
struct dp_flow *dp_flow_get(struct dp_export *dx, const char *key);

/* Drop a flow got from dp_flow_get (the source is gone: none of its
 * requests waits in the queue any more). */
void dp_flow_put(struct dp_flow *f);

/* sink is going away (its connection failed, or its client hung up
 * without NBD_CMD_DISC): its requests still queued in flow f never enter
 * the device.  Each is answered NBD_ESHUTDOWN at once (a request whose
 * payload never came is just finished), on the caller's loop, which must
 * be the sink's.  Requests already let in run to their end, and so does a
 * WRITE on a path that writes its payload as it arrives (its early writes
 * may be running).  Returns how many were cancelled.  With f NULL
 * (unscheduled), nothing. */
unsigned dp_flow_cancel(struct dp_flow *f, const struct request_sink *sink);

/* Run r (validated; a WRITE's payload complete in r->buf) once its
 * device lets it in: now when it may go at once, else later on r's loop.
 * Requests without a flow (r->flow NULL) and commands that do not reach
 * the device (BLOCK_STATUS, unknown ones) go to dp_execute() at once. */
void dp_submit(struct request *r);

/* A WRITE's payload has got bytes in r->buf: the sink's data path may
 * write them (payload_progress).  These early writes go unscheduled (they
 * run at the client's sending pace); the WRITE waits for its device at
 * dp_submit(), with the rest of its payload, costed at its whole length.
 * So a client that stops sending in the middle of a payload holds no place
 * in the device.  Only for paths with payload_progress. */
void dp_submit_progress(struct request *r, uint64_t got);

/* The payload will never complete: like the sink's data path's
 * payload_abort (true: request_finish() follows later), also for a request
 * still waiting to be let in. */
bool dp_submit_abort(struct request *r);

/* r's device work is over (request_finish): the device may let in more. */
void dp_qos_done(struct request *r);

/* r waits for buffers or pipes its own connection holds (its client does
 * not read its replies): it leaves the device's count, so that it never
 * keeps other flows out; its remaining chunks follow its client's pace. */
void dp_qos_waiting(struct request *r);

/* For the stats, in the current JSON object: the object "scheduler" of
 * dx's device (its adaptive depth, the ceiling while flows contend, busy
 * flows, whether they stand evenly, the requests in flight and queued;
 * absent when dx is not scheduled), and the array "flows" of dx's flows
 * now open (key, weight, queued, in flight, requests, bytes, time
 * throttled, queue delay quantiles). */
void dp_qos_json(struct json *j, const struct dp_export *dx);

#endif
